//! Arbitrary bytes as a `bert index` file and as its resumable `.partial` companion: an index
//! or a clear error, never a panic; an index that loads searches (exact and HNSW) with results
//! in range, best first; partial records read back are whole.
#![no_main]
use std::path::Path;

use bert_std::index::{Hnsw, Index, Partial};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&dim, bytes)) = data.split_first() else { return };
    let dim = usize::from(dim % 16) + 1;
    let (records, good) = Partial::read_records(bytes, dim);
    assert!(good as usize <= bytes.len());
    assert!(records.iter().all(|(_, v)| v.len() == dim));

    let Ok(index) = Index::from_bytes(bytes, Path::new("index.safetensors")) else { return };
    if index.is_empty() || index.len() > 256 {
        return;
    }
    let query: Vec<f32> = (0..index.vector(0).len()).map(|i| (i as f32).sin()).collect();
    let hits = index.search(&query, 5);
    assert!(hits.len() <= 5.min(index.len()));
    assert!(hits.iter().all(|h| h.row < index.len()));
    assert!(hits.windows(2).all(|w| !(w[0].score < w[1].score)));
    let hnsw = Hnsw::build(&index);
    let approx = hnsw.search(&index, &query, 5);
    assert!(approx.iter().all(|h| h.row < index.len()));
});
