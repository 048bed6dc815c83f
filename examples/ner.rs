//! Named-entity recognition (needs a BertForTokenClassification checkpoint, e.g. a CoNLL-03 model).
//!
//!     cargo run --release --example ner -- --model DIR "Angela Merkel met Emmanuel Macron in Paris."

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::ner::{Aggregation, NerOptions, TokenClassification};
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, required_model};

#[derive(Parser)]
struct Args {
    /// Text.
    #[arg(default_value = "Angela Merkel met Emmanuel Macron in Paris.")]
    text: String,
    /// A token-classification model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// none, simple, first, average or max.
    #[arg(long, default_value = "simple")]
    aggregation: String,
}

fn main() {
    let args = Args::parse();
    let dir = required_model(args.model, "token-classification (NER)");
    let aggregation: Aggregation = exit_on_error(args.aggregation.parse());
    let ner = exit_on_error(TokenClassification::load(&dir, LoadOptions::default()));
    for e in exit_on_error(ner.run_one(&args.text, &NerOptions { aggregation })) {
        println!(
            "{:<6} {:.4}  {:?} [{}..{}]",
            e.label, e.score, e.word, e.start, e.end
        );
    }
}
