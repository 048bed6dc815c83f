//! Fine-tuning a sequence classifier, as the seed's SST-2 chapter does: a base encoder plus a
//! new classification head (weights N(0, 0.02), bias 0, as HF initializes it), AdamW with HF's
//! decay groups, a linear warm-up then decay, gradient clipping at 1.0, seeded shuffling;
//! accuracy on a held-out set against the majority class; a checkpoint (an HF model directory)
//! after every epoch.

use std::path::{Path, PathBuf};

use bert_core::rng::Rng;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::workspace::TrainWorkspace;
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForSequenceClassification, Weights};
use tokenizers::Encoding;

use super::data::Example;
use super::fine_tune::{fine_tune, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use crate::batching::{Padded, RayonJoin};
use crate::error::Result;
use crate::tokenizer::Tokenizer;

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
    let labels: Vec<String> = train
        .iter()
        .chain(eval)
        .map(|e| e.label.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut task = Classifier {
        train,
        eval,
        labels,
        items: Vec::new(),
        held: Vec::new(),
        pad: 0,
        shape: (o.batch_size, o.max_seq_len),
        predictions: Vec::new(),
        accuracy: 0.0,
        majority: 0.0,
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    Ok(Report {
        labels: task.labels,
        losses,
        accuracy: task.accuracy,
        majority: task.majority,
        eval_examples: eval.len(),
        predictions: task.predictions,
        out: out.to_path_buf(),
    })
}

/// Sequence classification on the shared loop: a new `classifier` head; the class of each
/// example; held-out accuracy with the inference path.
struct Classifier<'d> {
    train: &'d [Example],
    eval: &'d [Example],
    labels: Vec<String>,
    /// Training items: encoding and class.
    items: Vec<(Encoding, i64)>,
    /// Held-out items, alike.
    held: Vec<(Encoding, i64)>,
    pad: u32,
    /// (batch size, longest input) of the held-out forwards.
    shape: (usize, usize),
    predictions: Vec<String>,
    accuracy: f32,
    majority: f32,
}

impl Classifier<'_> {
    fn class(&self, label: &str) -> i64 {
        self.labels
            .iter()
            .position(|x| x == label)
            .map_or(-100, |i| i as i64)
    }
}

impl FineTune for Classifier<'_> {
    type Model<'w> = BertForSequenceClassification<'w>;
    type Workspace = TrainWorkspace;
    const HEAD: &'static str = "SequenceClassification";

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    /// The family's head: BERT's `classifier` over its pooler; RoBERTa's, XLM-R's and
    /// ELECTRA's `classifier.dense` + `classifier.out_proj`; DistilBERT's `pre_classifier` +
    /// `classifier` (each N(0, 0.02), biases 0, as transformers initializes them).
    fn new_heads(
        &mut self,
        _base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(vec![init.sentence_head(rng, self.labels.len())?])
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForSequenceClassification::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, _: &BertConfig, o: &TrainOptions) -> Result<usize> {
        let encode = |e: &Example| -> Result<(Encoding, i64)> {
            let enc = tok.encode_truncated(&e.text, e.pair.as_deref(), o.max_seq_len)?;
            Ok((enc, self.class(&e.label)))
        };
        let items = self.train.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let held = self.eval.iter().map(encode).collect::<Result<Vec<_>>>()?;
        (self.items, self.held, self.pad) = (items, held, tok.special.pad);
        Ok(self.items.len())
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, TrainWorkspace)> {
        let trainer = SeqClsTrainer::new(model)?;
        let mut ws = trainer.workspace(o.batch_size, o.max_seq_len)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((trainer.grads(), ws))
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut TrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        ws.set_dropout(batch.dropout);
        let encs: Vec<_> = batch.chunk.iter().map(|&i| &self.items[i].0).collect();
        let padded = Padded::new(&encs, self.pad);
        let y: Vec<i64> = batch.chunk.iter().map(|&i| self.items[i].1).collect();
        Ok(SeqClsTrainer::new(model)?.loss_and_grads(&padded.core_batch(), &y, ws, grads)?)
    }

    /// Held-out accuracy with the inference path.
    fn after(&mut self, model: &Self::Model<'_>, _: &mut TrainWorkspace) -> Result<()> {
        let n = self.labels.len();
        let (batch, max_seq) = self.shape;
        let (mut correct, mut counts) = (0, vec![0usize; n]);
        let mut ws = model.workspace(batch, max_seq)?;
        for chunk in self.held.chunks(batch) {
            let refs: Vec<_> = chunk.iter().map(|(e, _)| e).collect();
            let padded = Padded::new(&refs, self.pad);
            let logits = model.forward(&padded.core_batch(), &mut ws)?;
            for (i, &(_, want)) in chunk.iter().enumerate() {
                let row = logits.row(i);
                let best = (0..n)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap_or(0);
                self.predictions.push(self.labels[best].clone());
                correct += usize::from(best as i64 == want);
                if want >= 0 {
                    counts[want as usize] += 1;
                }
            }
        }
        let m = self.held.len().max(1) as f32;
        self.accuracy = correct as f32 / m;
        self.majority = counts.iter().copied().max().unwrap_or(0) as f32 / m;
        Ok(())
    }
}

/// A seeded split into (train, held-out): `eval_share` of the examples go to the held-out set.
pub fn split(examples: &[Example], eval_share: f32, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let mut rng = Rng::new(seed ^ 0x5eed);
    rng.shuffle(&mut order);
    let k = ((examples.len() as f32) * eval_share).round() as usize;
    let (eval, train) = order.split_at(k.min(examples.len()));
    (
        train.iter().map(|&i| examples[i].clone()).collect(),
        eval.iter().map(|&i| examples[i].clone()).collect(),
    )
}
