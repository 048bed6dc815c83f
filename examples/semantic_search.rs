//! Semantic search with all-MiniLM-L6-v2: the README's main job. Over a small built-in corpus,
//! or your own documents with `--corpus` (text files split at blank lines, `.jsonl` with a
//! "text" field, or a directory of them; for large corpora build an index once with
//! `bert index` and query it with `bert search`).
//!
//!     cargo run --release --example semantic_search -- "how do I keep my plants alive?"
//!     cargo run --release --example semantic_search -- --corpus notes/ "what did we decide?"

use clap::Parser;
use std::path::PathBuf;

use bert_std::index::{read_corpus, Index};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
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
    /// Your documents: text files, .jsonl files or directories of them (default: a built-in
    /// corpus of 12 sentences).
    #[arg(long)]
    corpus: Vec<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::MINILM));
    let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
    let (ids, texts): (Vec<String>, Vec<String>) = if args.corpus.is_empty() {
        CORPUS
            .iter()
            .map(|t| (String::new(), t.to_string()))
            .unzip()
    } else {
        exit_on_error(read_corpus(&args.corpus, 180))
            .into_iter()
            .map(|p| (p.id, p.text))
            .unzip()
    };
    if texts.is_empty() {
        eprintln!("error: the corpus has no passages");
        std::process::exit(1);
    }
    eprintln!("embedding {} passages ...", texts.len());
    let vectors: Vec<f32> = exit_on_error(st.embed(&texts)).concat();
    let index = exit_on_error(Index::new(
        dir.display().to_string(),
        st.dim(),
        ids,
        texts,
        vectors,
    ));
    let queries: Vec<&str> = args.queries.iter().map(String::as_str).collect();
    let q = exit_on_error(st.embed(&queries));
    for (query, qv) in queries.iter().zip(&q) {
        println!("query: {query}");
        for hit in index.search(qv, args.top_k) {
            let id = &index.ids[hit.row];
            let sep = if id.is_empty() { "" } else { "  " };
            println!("  {:.4}  {id}{sep}{}", hit.score, index.texts[hit.row]);
        }
    }
}
