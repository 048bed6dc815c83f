//! Batching throughput on all-MiniLM-L6-v2 (real weights):
//! - 1 thread vs 2 threads at batch 32 (64 sequences of 128 tokens);
//! - a mixed-length batch (8..128 tokens): padded in input order vs length-bucketed.
//!
//! `cargo bench -p bert-std --bench batching` prints criterion's timings, then a summary of
//! medians and the ratios. Not a test: nothing here asserts a time.

use std::time::Instant;

use criterion::{criterion_group, Criterion, Throughput};

use bert_std::batching::BatchOptions;
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::LoadOptions;

fn model_dir() -> std::path::PathBuf {
    let root = std::env::var_os("BERT_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"));
    bert_std::fetch::ensure_model_in(bert_std::fetch::MINILM, &root).expect("MiniLM")
}

fn load(threads: usize, sort_by_length: bool) -> SentenceEmbeddings {
    let options = LoadOptions {
        threads,
        batch: BatchOptions {
            batch_size: 32,
            sort_by_length,
        },
        ..LoadOptions::default()
    };
    SentenceEmbeddings::load(model_dir(), options).expect("load")
}

/// `n` texts of about `words` words each (each word is one token for this vocabulary).
fn texts(n: usize, words: impl Fn(usize) -> usize) -> Vec<String> {
    (0..n).map(|i| vec!["word"; words(i)].join(" ")).collect()
}

fn full_length() -> Vec<String> {
    texts(64, |_| 126) // + [CLS], [SEP] = 128 tokens
}

fn mixed_length() -> Vec<String> {
    // Lengths 8..128 tokens, shuffled so that input order pads badly.
    texts(64, |i| 6 + (i * 37) % 121)
}

fn bench(c: &mut Criterion) {
    let full = full_length();
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("threads@batch32");
    g.sample_size(10)
        .throughput(Throughput::Elements(full.len() as u64));
    for threads in [1, 2] {
        let st = load(threads, true);
        g.bench_function(format!("{threads}-thread"), |b| {
            b.iter(|| st.embed(&full).unwrap())
        });
    }
    g.finish();
    let mixed = mixed_length();
    let mixed: Vec<&str> = mixed.iter().map(String::as_str).collect();
    let mut g = c.benchmark_group("mixed-length");
    g.sample_size(10)
        .throughput(Throughput::Elements(mixed.len() as u64));
    for (name, sort) in [("padded", false), ("bucketed", true)] {
        let st = load(1, sort);
        g.bench_function(name, |b| b.iter(|| st.embed(&mixed).unwrap()));
    }
    g.finish();
}

fn median_secs(f: impl Fn()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..5)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[2]
}

fn summary() {
    let full = full_length();
    let full: Vec<&str> = full.iter().map(String::as_str).collect();
    let mixed = mixed_length();
    let mixed: Vec<&str> = mixed.iter().map(String::as_str).collect();
    let (one, two) = (load(1, true), load(2, true));
    let t1 = median_secs(|| drop(one.embed(&full).unwrap()));
    let t2 = median_secs(|| drop(two.embed(&full).unwrap()));
    let padded = load(1, false);
    let tp = median_secs(|| drop(padded.embed(&mixed).unwrap()));
    let tb = median_secs(|| drop(one.embed(&mixed).unwrap()));
    let n = full.len() as f64;
    println!("\nsummary (MiniLM-L6, medians of 5):");
    println!(
        "  batch 32 x 128 tokens: 1 thread {:.1} seq/s, 2 threads {:.1} seq/s, ratio {:.2}x",
        n / t1,
        n / t2,
        t1 / t2
    );
    println!(
        "  mixed 8..128 tokens:   padded {:.1} seq/s, bucketed {:.1} seq/s, ratio {:.2}x",
        n / tp,
        n / tb,
        tp / tb
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
