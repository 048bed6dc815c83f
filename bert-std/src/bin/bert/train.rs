//! `bert train classify`: fine-tune a sequence classifier (see `bert_std::train`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use bert_std::fetch::MINILM;
use bert_std::train::classify::{split, train_classifier, TrainOptions};
use bert_std::train::data::read_classification;
use bert_std::{Error, Result};

use crate::commands::model_path;

/// What to train.
#[derive(Subcommand)]
pub enum TrainKind {
    /// A sequence classifier (texts or text pairs → labels), e.g. IMDB sentiment or BoolQ.
    Classify(ClassifyArgs),
    /// A token classifier (NER) from CoNLL-style data (`word ... TAG` per line, blank lines
    /// between sentences); scored by entity-level F1.
    Ner(NerArgs),
}

/// `bert train ner`.
#[derive(Args)]
pub struct NerArgs {
    /// The base model directory (default: all-MiniLM-L6-v2).
    #[arg(long, env = "BERT_MODEL")]
    pub model: Option<PathBuf>,
    /// Training data, CoNLL style.
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out data (default: 20% of the sentences of --data, split with --seed).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Where to write the model.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-5)]
    pub lr: f32,
    /// Sentences per step (1..=256).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Longest sentence in tokens (longer ones are skipped and counted).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Seed of the head, the shuffling and the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `bert train classify`.
#[derive(Args)]
pub struct ClassifyArgs {
    /// The base model directory (default: all-MiniLM-L6-v2).
    #[arg(long, env = "BERT_MODEL")]
    pub model: Option<PathBuf>,
    /// Training data: CSV with `text,label` columns, or JSON Lines with "text" (+ "pair") and
    /// "label" (BoolQ's "question", "passage", "answer" too).
    #[arg(long)]
    pub data: PathBuf,
    /// Held-out data in the same forms (default: 20% of --data, split with --seed).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Where to write the model (an HF directory, replaced file by file atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the training data.
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-5)]
    pub lr: f32,
    /// Examples per step (1..=256).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Longest input in tokens (longer ones are truncated).
    #[arg(long, default_value_t = 128)]
    pub max_seq_len: usize,
    /// Seed of the head's initialization, the shuffling and the split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f32,
    /// AdamW's weight decay (not on biases and LayerNorm weights).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
}

/// Run `bert train ...`.
pub fn train(kind: TrainKind) -> Result<ExitCode> {
    let a = match kind {
        TrainKind::Classify(a) => a,
        TrainKind::Ner(a) => return train_ner(a),
    };
    if a.batch_size == 0 || a.batch_size > 256 || a.epochs == 0 || a.epochs > 1000 {
        return Err(Error::Input(
            "--batch-size must be in 1..=256 and --epochs in 1..=1000".into(),
        ));
    }
    if !(a.lr > 0.0 && a.lr < 1.0 && (0.0..1.0).contains(&a.warmup_ratio)) {
        return Err(Error::Input(
            "--lr must be in (0, 1) and --warmup-ratio in [0, 1)".into(),
        ));
    }
    let base = model_path(a.model.as_deref(), Some(MINILM), "base")?;
    let data = read_classification(&a.data)?;
    for (line, why) in &data.skipped {
        eprintln!("skipped {}:{line}: {why}", a.data.display());
    }
    let (train, eval) = match &a.eval {
        Some(p) => {
            let e = read_classification(p)?;
            for (line, why) in &e.skipped {
                eprintln!("skipped {}:{line}: {why}", p.display());
            }
            (data.examples, e.examples)
        }
        None => split(&data.examples, 0.2, a.seed),
    };
    eprintln!(
        "training on {} examples ({} lines skipped), evaluating on {}",
        train.len(),
        data.skipped.len(),
        eval.len()
    );
    let options = TrainOptions {
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        seed: a.seed,
        warmup_ratio: a.warmup_ratio,
        weight_decay: a.weight_decay,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut seen = 0usize;
    let report = train_classifier(&base, &train, &eval, &options, &a.out, |s| {
        seen += s.examples;
        bar.set_length(s.total as u64);
        bar.set_position(s.step as u64);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.1} ex/s",
            s.loss,
            s.lr,
            seen as f64 / started.elapsed().as_secs_f64().max(1e-9)
        ));
    })?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "trained {} steps in {secs:.1} s ({:.1} examples/s); held-out accuracy {:.3} on {} \
         examples (majority class {:.3}); model and loss_curve.svg in {}",
        report.losses.len(),
        seen as f64 / secs.max(1e-9),
        report.accuracy,
        report.eval_examples,
        report.majority,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn train_ner(a: NerArgs) -> Result<ExitCode> {
    use bert_std::train::ner::{read_conll, train_ner};
    if a.batch_size == 0 || a.batch_size > 256 || a.epochs == 0 || a.epochs > 1000 {
        return Err(Error::Input(
            "--batch-size must be in 1..=256 and --epochs in 1..=1000".into(),
        ));
    }
    let base = model_path(a.model.as_deref(), Some(MINILM), "base")?;
    let sentences = read_conll(&a.data)?;
    let (train, eval) = match &a.eval {
        Some(p) => (sentences, read_conll(p)?),
        None => {
            let cut = sentences.len() - sentences.len() / 5;
            let mut order: Vec<usize> = (0..sentences.len()).collect();
            let mut rng = bert_core::pretraining::Rng::new(a.seed ^ 0x5eed);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let pick = |r: &[usize]| r.iter().map(|&i| sentences[i].clone()).collect::<Vec<_>>();
            (pick(&order[..cut]), pick(&order[cut..]))
        }
    };
    eprintln!(
        "training on {} sentences, evaluating on {}",
        train.len(),
        eval.len()
    );
    let options = TrainOptions {
        epochs: a.epochs,
        lr: a.lr,
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        seed: a.seed,
        ..TrainOptions::default()
    };
    let started = Instant::now();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    let report = train_ner(&base, &train, &eval, &options, &a.out, |s| {
        bar.set_length(s.total as u64);
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {:.4} lr {:.2e}", s.loss, s.lr));
    })?;
    bar.finish_and_clear();
    eprintln!(
        "trained {} steps in {:.1} s ({} sentences over --max-seq-len skipped); held-out \
         entity F1 {:.3}; model and loss_curve.svg in {}",
        report.losses.len(),
        started.elapsed().as_secs_f64(),
        report.too_long,
        report.f1,
        report.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
