//! Next-sentence prediction (needs a checkpoint with the NSP head, e.g. bert-base-uncased).
//!
//!     cargo run --release --example nsp -- --model DIR "The cat sat on the mat." "It was very comfortable."

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, required_model};

#[derive(Parser)]
struct Args {
    /// Sentence A.
    #[arg(default_value = "The cat sat on the mat.")]
    a: String,
    /// Sentence B.
    #[arg(default_value = "It was very comfortable.")]
    b: String,
    /// A model directory with the NSP head (BertForPreTraining / BertForNextSentencePrediction).
    #[arg(long)]
    model: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let dir = required_model(
        args.model,
        "next-sentence-prediction (e.g. bert-base-uncased)",
    );
    let nsp = exit_on_error(NextSentencePrediction::load(&dir, LoadOptions::default()));
    let p = exit_on_error(nsp.run_one((&args.a, &args.b), &()));
    println!(
        "P(B follows A) = {:.4}   (logits {:?})",
        p.is_next, p.logits
    );
}
