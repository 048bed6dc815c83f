//! Semantic search with all-MiniLM-L6-v2 over a small built-in corpus: the README's main job.
//!
//!     cargo run --release --example semantic_search -- "how do I keep my plants alive?"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
use bert_std::LoadOptions;
use examples::{exit_on_error, model_or_default};

const CORPUS: &[&str] = &[
    "Water succulents only when the soil is completely dry.",
    "The central bank raised interest rates by a quarter point.",
    "Rust's borrow checker prevents data races at compile time.",
    "Fresh basil wilts quickly; keep it in a glass of water on the counter.",
    "The striker scored twice in the second half to win the cup final.",
    "Most houseplants need bright, indirect light and well-drained soil.",
    "A transformer encoder turns every token into a context-dependent vector.",
    "Mortgage payments rise when the base rate goes up.",
    "The museum's new wing displays Bronze Age jewellery from Crete.",
    "Use a thread pool to run independent batches in parallel.",
    "Marathon training plans build weekly mileage gradually.",
    "Photosynthesis converts light, water and carbon dioxide into sugar.",
];

#[derive(Parser)]
struct Args {
    /// Queries (several allowed).
    #[arg(default_values_t = ["how do I keep my plants alive?".to_string(), "what happens when rates go up?".to_string()])]
    queries: Vec<String>,
    /// A sentence-embedding model directory (default: all-MiniLM-L6-v2, fetched on first use).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Results per query.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::MINILM));
    let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
    let docs = exit_on_error(st.embed(CORPUS));
    let queries: Vec<&str> = args.queries.iter().map(String::as_str).collect();
    let q = exit_on_error(st.embed(&queries));
    for (query, qv) in queries.iter().zip(&q) {
        let mut scored: Vec<(f32, &str)> = docs
            .iter()
            .map(|d| cosine(qv, d))
            .zip(CORPUS.iter().copied())
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("query: {query}");
        for (score, doc) in scored.iter().take(args.top_k) {
            println!("  {score:.4}  {doc}");
        }
    }
}
