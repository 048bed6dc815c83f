//! Structured round trip, as the safetensors crate's own fuzzing does: arbitrary tensors
//! (names, dtypes, shapes, bytes) and metadata → `serialize` → `SafeTensors::parse` give back
//! the same names, dtypes, shapes, bytes and metadata; and the core's loader (`Weights`)
//! accepts the file. `serialize` refuses only what it must (a repeated name, the reserved
//! `__metadata__`); everything it writes parses.
#![no_main]
use std::collections::BTreeMap;

use bert_core::safetensors::{serialize, SafeTensors};
use bert_core::tensor::Dtype;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const DTYPES: [Dtype; 15] = [
    Dtype::Bool,
    Dtype::U8,
    Dtype::I8,
    Dtype::I16,
    Dtype::U16,
    Dtype::I32,
    Dtype::U32,
    Dtype::I64,
    Dtype::U64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::F32,
    Dtype::F64,
    Dtype::F8E4M3,
    Dtype::F8E5M2,
];

#[derive(Debug, Arbitrary)]
struct Tensor {
    name: String,
    dtype: u8,
    shape: Vec<u8>,
    fill: u8,
}

#[derive(Debug, Arbitrary)]
struct File {
    tensors: Vec<Tensor>,
    metadata: Vec<(String, String)>,
}

fuzz_target!(|file: File| {
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors
        .iter()
        .take(16)
        .map(|t| {
            let dtype = DTYPES[usize::from(t.dtype) % DTYPES.len()];
            // Up to 4 dims of 0..=5: tensors of up to 625 elements keep the target past 10,000
            // runs a second under ASan, and reach every dtype size, empty tensors and scalars.
            let shape: Vec<usize> = t.shape.iter().take(4).map(|&d| usize::from(d % 6)).collect();
            let n = shape.iter().product::<usize>() * dtype.size();
            let bytes = (0..n).map(|i| t.fill.wrapping_add(i as u8)).collect();
            (t.name.clone(), dtype, shape, bytes)
        })
        .collect();
    let views: Vec<(&str, Dtype, &[usize], &[u8])> =
        tensors.iter().map(|(n, d, s, b)| (n.as_str(), *d, &s[..], &b[..])).collect();
    let metadata: BTreeMap<&str, &str> =
        file.metadata.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let meta: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, *v)).collect();
    let names: std::collections::BTreeSet<&str> = views.iter().map(|v| v.0).collect();
    let bytes = match serialize(&views, &meta) {
        Ok(bytes) => bytes,
        Err(e) => {
            let reserved = names.contains("__metadata__");
            assert!(names.len() < views.len() || reserved, "refused tensors with distinct names: {e}");
            return;
        }
    };
    let st = SafeTensors::parse(&bytes).expect("what serialize writes parses");
    assert_eq!(st.len(), views.len());
    for (name, dtype, shape, data) in &views {
        let (d, s, b) = st.tensor_data(name).expect("every tensor is there");
        assert_eq!((d, s, b), (*dtype, *shape, *data), "{name}");
    }
    let got: BTreeMap<&str, &str> = st.metadata().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, metadata);
    let weights = bert_core::Weights::from_buffers(&[&bytes]).expect("the loader takes it");
    let _ = weights;
});
