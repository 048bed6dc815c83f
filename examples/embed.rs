//! Sentence embeddings (the model directory's pooling; MiniLM by default).
//!
//!     cargo run --release --example embed -- "first sentence" "second sentence"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
use bert_std::LoadOptions;
use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Texts to embed.
    #[arg(default_values_t = ["A man is eating food.".to_string(), "A man is eating a piece of bread.".to_string(), "The girl is carrying a baby.".to_string()])]
    texts: Vec<String>,
    /// Model directory (default: all-MiniLM-L6-v2).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::MINILM));
    let st = exit_on_error(SentenceEmbeddings::load(&dir, LoadOptions::default()));
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let embs = exit_on_error(st.embed(&texts));
    for (t, e) in texts.iter().zip(&embs) {
        println!("{t:?}: dim {}, first values {:?}", e.len(), &e[..4]);
    }
    for i in 0..embs.len() {
        for j in i + 1..embs.len() {
            println!("cosine({i}, {j}) = {:.4}", cosine(&embs[i], &embs[j]));
        }
    }
}
