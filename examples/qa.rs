//! Extractive question answering (needs a BertForQuestionAnswering checkpoint, e.g. a SQuAD model).
//!
//!     cargo run --release --example qa -- --model DIR "Who wrote it?" "The book was written by ..."

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, required_model};

#[derive(Parser)]
struct Args {
    /// The question.
    #[arg(default_value = "Who wrote the book?")]
    question: String,
    /// The context (any length: long contexts are split into overlapping windows).
    #[arg(
        default_value = "The book was written by a retired sailor in 1952. It sold over a million copies."
    )]
    context: String,
    /// A question-answering model directory.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Answers to show.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
}

fn main() {
    let args = Args::parse();
    let dir = required_model(args.model, "question-answering (e.g. SQuAD)");
    let qa = exit_on_error(QuestionAnswering::load(&dir, LoadOptions::default()));
    let options = QaOptions {
        top_k: args.top_k,
        ..QaOptions::default()
    };
    for a in exit_on_error(qa.run_one((&args.question, &args.context), &options)) {
        println!("{:.4}  {:?} [{}..{}]", a.score, a.answer, a.start, a.end);
    }
}
