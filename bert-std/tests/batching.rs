//! Threaded, length-bucketed batching gives the results of one-at-a-time runs, in input order.
mod common;

use bert_std::batching::BatchOptions;
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::{LoadOptions, Pipeline};
use common::*;

fn texts() -> Vec<String> {
    let words = "the quick brown fox jumps over the lazy dog while rust compiles bert models fast";
    let w: Vec<&str> = words.split(' ').collect();
    (0..37)
        .map(|i| w[..1 + (i * 7) % w.len()].join(" ") + &format!(" {i}"))
        .collect()
}

fn options(threads: usize, batch_size: usize, sort: bool) -> LoadOptions {
    LoadOptions {
        threads,
        batch: BatchOptions {
            batch_size,
            sort_by_length: sort,
        },
        ..LoadOptions::default()
    }
}

#[test]
fn batched_embeddings_equal_one_at_a_time_and_keep_order() {
    let texts = texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let single = SentenceEmbeddings::load(minilm(), options(1, 1, false)).unwrap();
    let alone: Vec<Vec<f32>> = refs
        .iter()
        .map(|t| single.run_one(t, &()).unwrap())
        .collect();
    let mut runs = Vec::new();
    for (threads, bs, sort) in [(1, 8, true), (2, 8, true), (2, 32, false), (2, 5, true)] {
        let st = SentenceEmbeddings::load(minilm(), options(threads, bs, sort)).unwrap();
        assert_eq!(st.bert.threads(), threads);
        let got = st.embed(&refs).unwrap();
        let worst = got
            .iter()
            .zip(&alone)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0f32, f32::max);
        eprintln!(
            "threads {threads}, batch {bs}, sorted {sort}: max diff vs one-at-a-time {worst:.2e}"
        );
        // Padding changes the matmul's row count, so the rounding may differ in the last bits.
        assert!(worst <= 1e-5, "{worst}");
        runs.push(((bs, sort), got));
    }
    // The same batches on 1 or 2 threads: bit-identical.
    assert_eq!(runs[0].1, runs[1].1);
}

#[test]
fn batched_fill_mask_equals_one_at_a_time() {
    let texts = [
        "The capital of France is [MASK].",
        "A [MASK] sat on the [MASK].",
        "I [MASK] you.",
    ];
    let fm = FillMask::load(splade(), options(2, 2, true)).unwrap();
    let o = FillMaskOptions { top_k: 3 };
    let batched = fm.run(&texts, &o).unwrap();
    for (t, b) in texts.iter().zip(&batched) {
        let alone = fm.run_one(t, &o).unwrap();
        assert_eq!(alone.masks.len(), b.masks.len());
        let flat = |o: &bert_std::pipelines::fill_mask::FillMaskOutput| {
            o.masks
                .iter()
                .flat_map(|m| m.candidates.clone())
                .collect::<Vec<_>>()
        };
        for (x, y) in flat(&alone).iter().zip(&flat(b)) {
            assert_eq!((x.token, &x.sequence), (y.token, &y.sequence));
            assert!((x.score - y.score).abs() < 1e-6);
        }
    }
}
