//! Broken and hostile inputs give typed errors that name the problem; never a panic.
mod common;

use bert_core::safetensors::{serialize, MAX_HEADER_LEN};
use bert_core::weights::{AlignedBytes, Storage};
use bert_core::*;
use common::*;
use half::{bf16, f16};

/// (name, dtype, shape, bytes) of every tensor in a file.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

fn entries(bytes: &[u8]) -> Vec<Entry> {
    let st = SafeTensors::parse(bytes).unwrap();
    st.names()
        .map(|n| {
            let t = st.tensor(n).unwrap();
            (n.to_string(), t.dtype, t.shape.to_vec(), t.data.to_vec())
        })
        .collect()
}

fn build(entries: &[Entry]) -> Vec<u8> {
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = entries
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    serialize(&refs, &[]).unwrap()
}

/// A raw file from a header string and a data section.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn minilm() -> (BertConfig, Vec<u8>) {
    load_model_files("all-minilm-l6-v2")
}

fn load_err(config: &BertConfig, bytes: &[u8]) -> Error {
    match Weights::from_buffers(&[bytes]).and_then(|w| BertModel::load(config, &w).map(|_| ())) {
        Ok(()) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn truncated_file() {
    let (config, bytes) = minilm();
    let e = load_err(&config, &bytes[..bytes.len() / 2]);
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    let e = SafeTensors::parse(&bytes[..5]).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    assert!(SafeTensors::parse(&[]).is_err());
}

#[test]
fn header_length_beyond_file_or_limit() {
    let mut bytes = 1000u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let e = SafeTensors::parse(&bytes).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Truncated {
                needed: 1008,
                have: 10,
                ..
            }
        ),
        "{e}"
    );
    // A header that claims terabytes is refused before anything is read or allocated.
    let bytes = (1u64 << 40).to_le_bytes();
    let e = SafeTensors::parse(&bytes).unwrap_err();
    assert_eq!(
        e,
        Error::HeaderTooLarge {
            len: 1 << 40,
            limit: MAX_HEADER_LEN
        }
    );
}

#[test]
fn overlapping_offsets() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let e = SafeTensors::parse(&raw_file(header, &[0u8; 12])).unwrap_err();
    assert_eq!(
        e,
        Error::OverlappingTensors {
            first: "a".into(),
            second: "b".into()
        }
    );
}

#[test]
fn inconsistent_or_out_of_bounds_offsets() {
    // Size disagrees with the shape.
    let header = r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let e = SafeTensors::parse(&raw_file(header, &[0u8; 8])).unwrap_err();
    assert!(matches!(e, Error::InvalidHeader(_)), "{e}");
    // Points past the end of the file.
    let header = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let e = SafeTensors::parse(&raw_file(header, &[0u8; 8])).unwrap_err();
    assert!(matches!(e, Error::Truncated { .. }), "{e}");
    // A shape whose byte size overflows.
    let header = r#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}}"#;
    let e = SafeTensors::parse(&raw_file(header, &[0u8; 16])).unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
    // Unknown dtype.
    let header = r#"{"a":{"dtype":"F7","shape":[1],"data_offsets":[0,1]}}"#;
    let e = SafeTensors::parse(&raw_file(header, &[0u8; 1])).unwrap_err();
    assert!(matches!(e, Error::UnknownDtype { .. }), "{e}");
}

#[test]
fn bad_json() {
    let e = SafeTensors::parse(&raw_file("{not json", &[])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Json {
                what: "safetensors header",
                ..
            }
        ),
        "{e}"
    );
    let e = SafeTensors::parse(&raw_file("[1, 2]", &[])).unwrap_err();
    assert!(matches!(e, Error::InvalidHeader(_)), "{e}");
    let e = BertConfig::from_json("{\"hidden_size\": 384,").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Json {
                what: "config.json",
                ..
            }
        ),
        "{e}"
    );
    assert!(BertConfig::from_json("[]").is_err());
}

#[test]
fn wrong_dtype_names_the_tensor() {
    let (config, bytes) = minilm();
    let mut es = entries(&bytes);
    let name = "encoder.layer.2.attention.self.key.weight";
    let e = es.iter_mut().find(|e| e.0 == name).unwrap();
    e.1 = Dtype::I32; // same byte size, wrong type
    let e = load_err(&config, &build(&es));
    assert_eq!(
        e,
        Error::WrongDtype {
            name: name.into(),
            expected: "F32, F16 or BF16",
            found: Dtype::I32
        }
    );
}

#[test]
fn wrong_shape_names_the_tensor_and_both_shapes() {
    let (config, bytes) = minilm();
    let mut es = entries(&bytes);
    let name = "encoder.layer.3.attention.self.query.weight";
    let e = es.iter_mut().find(|e| e.0 == name).unwrap();
    e.2 = vec![384, 128];
    e.3.truncate(384 * 128 * 4);
    let e = load_err(&config, &build(&es));
    assert_eq!(
        e.to_string(),
        "tensor encoder.layer.3.attention.self.query.weight: expected [384, 384], found [384, 128] F32"
    );
}

#[test]
fn missing_tensor_names_what_was_tried() {
    let (config, bytes) = minilm();
    let mut es = entries(&bytes);
    es.retain(|e| e.0 != "encoder.layer.5.output.LayerNorm.weight");
    let e = load_err(&config, &build(&es));
    assert_eq!(
        e,
        Error::MissingTensor {
            tried: vec![
                "encoder.layer.5.output.LayerNorm.weight".into(),
                "encoder.layer.5.output.LayerNorm.gamma".into()
            ]
        }
    );
    // A head whose own weights are absent.
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let e = BertForQuestionAnswering::load(&config, &weights).unwrap_err();
    assert!(e.to_string().contains("qa_outputs.weight"), "{e}");
    let (tiny, tiny_bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&tiny_bytes]).unwrap();
    let e = BertForSequenceClassification::load(&tiny, &weights).unwrap_err();
    assert!(e.to_string().contains("bert.pooler.dense.weight"), "{e}");
}

fn config_with(field: &str, value: &str) -> Result<BertConfig> {
    let text = std::fs::read_to_string(model_dir("all-minilm-l6-v2").join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v[field] = serde_json::from_str(value).unwrap();
    BertConfig::from_json(&v.to_string())
}

#[test]
fn unsupported_or_invalid_config_values_name_the_field() {
    let e = config_with("hidden_act", "\"gelu_10\"").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                field: "hidden_act",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("gelu_10") && e.to_string().contains("gelu_new"),
        "{e}"
    );
    let e = config_with("position_embedding_type", "\"relative_key\"").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                field: "position_embedding_type",
                ..
            }
        ),
        "{e}"
    );
    let e = config_with("model_type", "\"gpt2\"").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                field: "model_type",
                ..
            }
        ),
        "{e}"
    );
    let e = config_with("num_attention_heads", "7").unwrap_err();
    assert!(
        matches!(
            e,
            Error::ConfigInvalid {
                field: "num_attention_heads",
                ..
            }
        ),
        "{e}"
    );
    let e = config_with("hidden_size", "-1").unwrap_err();
    assert!(
        matches!(
            e,
            Error::ConfigInvalid {
                field: "hidden_size",
                ..
            }
        ),
        "{e}"
    );
    let e = config_with("vocab_size", "100000000000").unwrap_err();
    assert!(
        matches!(
            e,
            Error::ConfigInvalid {
                field: "vocab_size",
                ..
            }
        ),
        "{e}"
    );
    let e = config_with("is_decoder", "true").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                field: "is_decoder",
                ..
            }
        ),
        "{e}"
    );
    let e = BertConfig::from_json(r#"{"model_type": "bert"}"#).unwrap_err();
    assert_eq!(
        e,
        Error::ConfigMissing {
            field: "vocab_size"
        }
    );
    let e = config_with("id2label", r#"{"0": "a", "2": "b"}"#).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ConfigInvalid {
                field: "id2label",
                ..
            }
        ),
        "{e}"
    );
    // Every supported activation parses.
    for act in ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"] {
        assert!(
            config_with("hidden_act", &format!("\"{act}\"")).is_ok(),
            "{act}"
        );
    }
}

#[test]
fn bad_batches_are_errors() {
    let (config, bytes) = minilm();
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let mut ws = model.workspace(2, 8).unwrap();
    let ids = [101u32, 2023, 102];
    let cases: Vec<(Batch<'_>, &str)> = vec![
        (Batch::new(&[], 0, 0), "empty batch"),
        (Batch::new(&ids, 1, 4), "input_ids has 3 elements"),
        (
            Batch::single(&[101, 40_000, 102]),
            "input_ids[0][1] = 40000 is not below vocab_size",
        ),
        (
            Batch::single(&ids).with_token_type_ids(&[0, 2, 0]),
            "token_type_ids[0][1] = 2",
        ),
        (
            Batch::single(&ids).with_attention_mask(&[1, 1]),
            "attention_mask has 2 elements",
        ),
        (
            Batch::single(&ids).with_attention_mask(&[1, 7, 1]),
            "attention_mask[0][1] = 7",
        ),
    ];
    for (batch, want) in cases {
        let e = model.forward(&batch, &mut ws).unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want:?})");
    }
    let long = vec![101u32; 513];
    let e = model.forward(&Batch::single(&long), &mut ws).unwrap_err();
    assert!(
        e.to_string()
            .contains("exceeds max_position_embeddings 512"),
        "{e}"
    );
    let nine = [101u32; 9];
    let e = model.forward(&Batch::single(&nine), &mut ws).unwrap_err();
    assert_eq!(
        e,
        Error::WorkspaceTooSmall {
            needed: (1, 9),
            capacity: (2, 8)
        }
    );
    assert!(model.workspace(0, 8).is_err());
}

#[test]
fn zero_copy_when_aligned_and_correct_when_not() {
    let (config, bytes) = minilm();
    // An 8-byte aligned copy: every weight is borrowed from the buffer.
    let aligned = AlignedBytes::copy_from(&bytes);
    let aligned: &[u8] = &aligned;
    // The same bytes at an address that is not 4-aligned (picked from the real address).
    let mut shifted = vec![0u8; bytes.len() + 4];
    let off = (0..4)
        .find(|o| !(shifted.as_ptr() as usize + o).is_multiple_of(4))
        .unwrap();
    shifted[off..off + bytes.len()].copy_from_slice(&bytes);
    let unaligned = &shifted[off..off + bytes.len()];

    let golden = Golden::open("minilm.safetensors");
    let inputs = golden.inputs("pair");
    let mut results = Vec::new();
    for (buf, borrowed) in [(aligned, true), (unaligned, false)] {
        let weights = Weights::from_buffers(&[buf]).unwrap();
        let model = BertModel::load(&config, &weights).unwrap();
        let q = &model.encoder.layer[0]
            .attention
            .self_attention
            .query
            .weight
            .storage;
        assert_eq!(q.is_borrowed(), borrowed);
        let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        results.push(out.last_hidden_state.to_vec());
    }
    assert_eq!(
        results[0], results[1],
        "alignment does not change a single bit"
    );
}

/// Convert every float tensor with `f`, keeping the shape.
fn convert(es: &[Entry], dtype: Dtype, f: impl Fn(f32) -> Vec<u8>) -> Vec<Entry> {
    es.iter()
        .map(|(n, d, s, b)| {
            if *d != Dtype::F32 {
                return (n.clone(), *d, s.clone(), b.clone());
            }
            let data = b
                .chunks_exact(4)
                .flat_map(|c| f(f32::from_le_bytes(c.try_into().unwrap())))
                .collect();
            (n.clone(), dtype, s.clone(), data)
        })
        .collect()
}

#[test]
fn f16_and_bf16_weights_compute_what_their_f32_widening_computes() {
    let (config, bytes) = minilm();
    let es = entries(&bytes);
    let golden = Golden::open("minilm.safetensors");
    let inputs = golden.inputs("batch");
    let run = |file: &[u8]| {
        let weights = Weights::from_buffers(&[file]).unwrap();
        let model = BertModel::load(&config, &weights).unwrap();
        let is_f16 = matches!(
            model.encoder.layer[0].intermediate.dense.weight.storage,
            Storage::F16(_)
        );
        let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        (out.last_hidden_state.to_vec(), is_f16)
    };
    let half_file = build(&convert(&es, Dtype::F16, |x| {
        f16::from_f32(x).to_le_bytes().to_vec()
    }));
    let widened = build(&convert(&es, Dtype::F32, |x| {
        f16::from_f32(x).to_f32().to_le_bytes().to_vec()
    }));
    let (h, is_f16) = run(&half_file);
    assert!(is_f16, "f16 weights stay f16 in memory");
    let (w, _) = run(&widened);
    // Same math: f16 is widened while packing, into the very panels f32 weights give.
    assert_eq!(h, w, "f16 storage vs its f32 widening");

    let bf_file = build(&convert(&es, Dtype::BF16, |x| {
        bf16::from_f32(x).to_le_bytes().to_vec()
    }));
    let widened = build(&convert(&es, Dtype::F32, |x| {
        bf16::from_f32(x).to_f32().to_le_bytes().to_vec()
    }));
    let (b, _) = run(&bf_file);
    let (w, _) = run(&widened);
    assert_eq!(b, w, "bf16 storage vs its f32 widening");

    // And the task-level effect of storing MiniLM in f16 (the f16 kernels' issue states
    // tolerances; this records it): hidden states stay close to HF's f32.
    let (want, _) = golden.f32("batch.last_hidden_state");
    let d = max_abs_diff(
        &real_rows(&h, &inputs.mask),
        &real_rows(&want, &inputs.mask),
    );
    eprintln!("MiniLM f16 storage vs HF f32: max abs diff {d:.3e}");
    assert!(d < 2e-2, "{d}");
}

#[test]
fn config_prints_like_transformers() {
    let text = std::fs::read_to_string(model_dir("all-minilm-l6-v2").join("config.json")).unwrap();
    let config = BertConfig::from_json(&text).unwrap();
    let printed = config.to_string();
    assert!(
        printed.starts_with("BertConfig {\n  \"_name_or_path\""),
        "{printed}"
    );
    assert!(printed.contains("\"hidden_size\": 384,"), "{printed}");
    assert!(printed.contains("\"vocab_size\": 30522\n}"), "{printed}");
}

#[test]
fn absurd_workspaces_are_refused_before_allocating() {
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    // 1M x 512 tokens x 30522 logits would be ~64 TB.
    let e = model.workspace(1 << 20, 512).unwrap_err();
    assert!(e.to_string().contains("exceeds"), "{e}");
    let e = model.workspace(usize::MAX, usize::MAX).unwrap_err();
    assert!(matches!(e, Error::ResourceLimit { .. }), "{e}");
    assert!(model.bert.workspace(usize::MAX / 2, 3).is_err());
}
