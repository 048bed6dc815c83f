//! Fine-tuning a sequence classifier, as the seed's SST-2 chapter does: a base encoder plus a
//! new classification head (weights N(0, 0.02), bias 0, as HF initializes it), AdamW with HF's
//! decay groups, a linear warm-up then decay, gradient clipping at 1.0, seeded shuffling;
//! accuracy on a held-out set against the majority class; a checkpoint (an HF model directory)
//! after every epoch.

use std::path::{Path, PathBuf};

use bert_core::pretraining::Rng;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::{BertForSequenceClassification, Weights};

use super::data::Example;
use crate::batching::Padded;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
use crate::tokenizer::Tokenizer;

/// Training settings (the seed's defaults: lr 2e-5, weight decay 0.01, 10% warm-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Examples per forward and backward pass.
    pub batch_size: usize,
    /// Batches whose gradients are averaged before each optimizer step (gradient
    /// accumulation: an effective batch of `batch_size × grad_accum`).
    pub grad_accum: usize,
    /// Longest input in tokens (longer ones are truncated).
    pub max_seq_len: usize,
    /// Seed of the head's initialization and of the shuffling.
    pub seed: u64,
    /// Share of the steps spent warming up.
    pub warmup_ratio: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Continue from the trainer state an interrupted run left in the output directory (if
    /// any), with the same settings and data; the result equals an uninterrupted run's.
    pub resume: bool,
    /// Training-mode dropout as config.json sets it (`hidden_dropout_prob`, ...), as HF's
    /// `model.train()`; off: every step in evaluation mode.
    pub dropout: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 3,
            lr: 2e-5,
            batch_size: 16,
            grad_accum: 1,
            max_seq_len: 128,
            seed: 42,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            resume: false,
            dropout: true,
        }
    }
}

/// One training step, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// 1-based step.
    pub step: usize,
    /// Steps in all.
    pub total: usize,
    /// The batch's loss.
    pub loss: f32,
    /// The learning rate used.
    pub lr: f32,
    /// Examples in the batch.
    pub examples: usize,
}

/// What a training run gives.
#[derive(Debug, Clone)]
pub struct Report {
    /// The labels, by class id.
    pub labels: Vec<String>,
    /// The loss of every step.
    pub losses: Vec<f32>,
    /// Held-out accuracy after training.
    pub accuracy: f32,
    /// The majority class's share of the held-out set (the baseline).
    pub majority: f32,
    /// Held-out examples.
    pub eval_examples: usize,
    /// The predicted label of each held-out example.
    pub predictions: Vec<String>,
    /// Where the model was written.
    pub out: PathBuf,
}

/// Fine-tune the encoder in `base` on `train`, evaluate on `eval`, write the model to `out`.
pub fn train_classifier(
    base: &Path,
    train: &[Example],
    eval: &[Example],
    o: &TrainOptions,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<Report> {
    if train.is_empty() || o.batch_size == 0 || o.epochs == 0 {
        return Err(Error::Input(
            "nothing to train: no examples, batches or epochs".into(),
        ));
    }
    let dir = ModelDir::open(base)?;
    let tokenizer = Tokenizer::from_dir(&dir.root)?;
    let labels: Vec<String> = train
        .iter()
        .chain(eval)
        .map(|e| e.label.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let class = |l: &str| {
        labels
            .iter()
            .position(|x| x == l)
            .map_or(-100, |i| i as i64)
    };
    let (raw, config) = super::head_config(&dir, "BertForSequenceClassification", &labels)?;
    let (h, n) = (config.hidden_size, labels.len());
    let mut rng = Rng::new(o.seed);
    let head = super::new_classifier(&mut rng, n, h)?;
    let files = super::open_weights(&dir)?;
    let mut buffers: Vec<&[u8]> = files.iter().map(|f| &**f).collect();
    buffers.push(&head);
    let weights = Weights::from_buffers(&buffers)?;
    let mut model = BertForSequenceClassification::load(&config, &weights)?;
    let (mut grads, mut ws) = {
        let trainer = SeqClsTrainer::new(&model)?;
        (
            trainer.grads(),
            trainer.workspace(o.batch_size, o.max_seq_len)?,
        )
    };
    ws.set_threads(rayon::current_num_threads(), &crate::batching::RayonJoin);
    let encode =
        |e: &Example| tokenizer.encode_truncated(&e.text, e.pair.as_deref(), o.max_seq_len);
    let train_enc = train.iter().map(encode).collect::<Result<Vec<_>>>()?;
    let pad = tokenizer.special.pad;
    let run = super::Run {
        options: o,
        examples: train.len(),
        base: &dir,
        config: &raw,
        out,
    };
    let losses = run.epochs(
        &mut model,
        &mut rng,
        &mut grads,
        |model, step, chunk, grads| {
            ws.set_dropout(super::dropout_at(&raw, o, step));
            let encs: Vec<_> = chunk.iter().map(|&i| &train_enc[i]).collect();
            let padded = Padded::new(&encs, pad);
            let y: Vec<i64> = chunk.iter().map(|&i| class(&train[i].label)).collect();
            Ok(SeqClsTrainer::new(model)?.loss_and_grads(
                &padded.core_batch(),
                &y,
                &mut ws,
                grads,
            )?)
        },
        &mut progress,
    )?;
    // Held-out accuracy with the inference path.
    let mut correct = 0;
    let mut counts = vec![0usize; n];
    let mut predictions = Vec::with_capacity(eval.len());
    let mut ws = model.workspace(o.batch_size, o.max_seq_len)?;
    for chunk in eval.chunks(o.batch_size) {
        let encs = chunk.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let refs: Vec<_> = encs.iter().collect();
        let padded = Padded::new(&refs, pad);
        let logits = model.forward(&padded.core_batch(), &mut ws)?;
        for (i, e) in chunk.iter().enumerate() {
            let row = logits.row(i);
            let best = (0..n)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            let want = class(&e.label);
            predictions.push(labels[best].clone());
            correct += usize::from(best as i64 == want);
            if want >= 0 {
                counts[want as usize] += 1;
            }
        }
    }
    let m = eval.len().max(1) as f32;
    Ok(Report {
        labels,
        losses,
        accuracy: correct as f32 / m,
        majority: counts.iter().copied().max().unwrap_or(0) as f32 / m,
        eval_examples: eval.len(),
        predictions,
        out: out.to_path_buf(),
    })
}

/// A seeded split into (train, held-out): `eval_share` of the examples go to the held-out set.
pub fn split(examples: &[Example], eval_share: f32, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let k = ((examples.len() as f32) * eval_share).round() as usize;
    let (eval, train) = order.split_at(k.min(examples.len()));
    (
        train.iter().map(|&i| examples[i].clone()).collect(),
        eval.iter().map(|&i| examples[i].clone()).collect(),
    )
}
