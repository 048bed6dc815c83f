//! Text classification (needs a BertForSequenceClassification checkpoint, e.g. an SST-2 model).
//!
//!     cargo run --release --example classify -- --model DIR "A wonderful, moving film."

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::classification::TextClassification;
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, required_model};

#[derive(Parser)]
struct Args {
    /// Text to classify.
    #[arg(default_value = "A wonderful, moving film.")]
    text: String,
    /// A sequence-classification model directory.
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let dir = required_model(args.model, "sequence-classification");
    let clf = exit_on_error(TextClassification::load(&dir, LoadOptions::default()));
    for l in exit_on_error(clf.run_one((&args.text, None), &Default::default())) {
        println!("{:.4}  {}", l.score, l.label);
    }
}
