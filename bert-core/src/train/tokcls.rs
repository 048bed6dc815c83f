//! Token classification (NER): the encoder, then `classifier` on every real token, mean
//! cross-entropy over the labelled tokens (`-100` elsewhere, as HF aligns labels to the first
//! word piece), and the backward by hand.

use alloc::format;
use alloc::string::String;

use super::dropout;
use super::encoder::{
    check_trainable, encoder_backward, encoder_forward, encoder_grads, encoder_slots, weight,
};
use super::ops::linear_backward;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::heads::BertForTokenClassification;
use crate::model::Batch;
use crate::pretraining::IGNORE_INDEX;

/// Dropout on every packed row before a per-token head (training mode, when `on` and the
/// step's classifier dropout is): `ws.head_in` = `ws.x` · mask, element (packed row, j) of the
/// classifier's stream. Returns whether it ran; the head's backward then masks `ws.dx` with
/// `ws.masks.classifier`.
pub(super) fn token_head_dropout(ws: &mut TrainWorkspace, t: usize, h: usize, on: bool) -> bool {
    match ws.dropout.filter(|d| on && d.classifier > 0.0) {
        Some(d) => {
            let mask = &mut ws.masks.classifier[..t * h];
            let p = (d.seed, dropout::CLASSIFIER_STREAM, d.classifier);
            dropout::fill_rows(mask, &ws.packed[..t], h, p);
            ws.head_in[..t * h].copy_from_slice(&ws.x[..t * h]);
            dropout::apply(&mut ws.head_in[..t * h], mask);
            true
        }
        None => false,
    }
}

/// Training for [`BertForTokenClassification`].
#[derive(Debug)]
pub struct TokClsTrainer<'m, 'a> {
    model: &'m BertForTokenClassification<'a>,
}

impl<'m, 'a> TokClsTrainer<'m, 'a> {
    /// A trainer for `model` (a post-norm family, f32 weights, no prediction head before the
    /// classifier).
    pub fn new(model: &'m BertForTokenClassification<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        if model.transform.is_some() {
            return Err(Error::Unsupported {
                field: "model_type",
                value: String::from("a prediction head before the classifier"),
                supported: "BERT's token classifier",
            });
        }
        Ok(TokClsTrainer { model })
    }

    /// The gradient buffers, named as PyTorch names them.
    pub fn grads(&self) -> Grads {
        let mut g = Grads::default();
        encoder_grads(&self.model.bert, &mut g);
        let (l, h) = (
            self.model.classifier.out_features(),
            self.model.classifier.in_features(),
        );
        g.push(String::from("classifier.weight"), &[l, h]);
        g.push(String::from("classifier.bias"), &[l]);
        g
    }

    /// Buffers for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<TrainWorkspace> {
        let labels = self.model.classifier.out_features();
        TrainWorkspace::new(&self.model.bert, labels, max_batch, max_seq)
    }

    /// The mean cross-entropy over labelled tokens (`labels` `[batch * seq]`, padded layout,
    /// [`IGNORE_INDEX`] where a token has no label), and every parameter's gradient, added to
    /// `grads`.
    pub fn loss_and_grads(
        &self,
        batch: &Batch<'_>,
        labels: &[i64],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<f32> {
        let m = self.model;
        let (h, classes) = (m.bert.config.hidden_size, m.classifier.out_features());
        if labels.len() != batch.num_tokens() {
            return Err(Error::LengthMismatch {
                what: "token labels",
                len: labels.len(),
                expected: batch.num_tokens(),
            });
        }
        if batch.batch_size > ws.max_batch || batch.seq_len > ws.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (batch.batch_size, batch.seq_len),
                capacity: (ws.max_batch, ws.max_seq),
            });
        }
        let t = encoder_forward(&m.bert, batch, ws)?;
        let dropped = token_head_dropout(ws, t, h, true);
        let input = if dropped { &ws.head_in } else { &ws.x };
        m.classifier
            .forward(input, t, &mut ws.logits, &mut ws.lanes[0].gemm);
        // Cross-entropy over the labelled packed rows; its gradient in the same pass.
        let counted = (0..t)
            .filter(|&r| labels[ws.packed[r] as usize] != IGNORE_INDEX)
            .count();
        if counted == 0 {
            return Err(Error::InvalidInput(format!(
                "no labelled token in the batch (every label is {IGNORE_INDEX})"
            )));
        }
        let mut total = 0.0f64;
        for r in 0..t {
            let label = labels[ws.packed[r] as usize];
            let row = &ws.logits[r * classes..(r + 1) * classes];
            let grad = &mut ws.dlogits[r * classes..(r + 1) * classes];
            if label == IGNORE_INDEX {
                grad.fill(0.0);
                continue;
            }
            let target = usize::try_from(label)
                .ok()
                .filter(|&l| l < classes)
                .ok_or(Error::LabelOutOfRange { label, classes })?;
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&v| libm::exp(v as f64 - max)).sum();
            total += max + libm::log(sum) - row[target] as f64;
            for (j, g) in grad.iter_mut().enumerate() {
                let p = libm::exp(row[j] as f64 - max) / sum;
                let y = if j == target { 1.0 } else { 0.0 };
                *g = ((p - y) / counted as f64) as f32;
            }
        }
        let w = encoder_slots(&m.bert);
        let (gw, gb) = grads.pair(w, w + 1);
        linear_backward(
            if dropped { &ws.head_in } else { &ws.x },
            weight(&m.classifier)?,
            &ws.dlogits,
            t,
            h,
            classes,
            Some((&mut ws.dx, false)),
            gw,
            Some(gb),
            &mut ws.lanes[0].gemm,
        );
        if dropped {
            dropout::apply(&mut ws.dx[..t * h], &ws.masks.classifier);
        }
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok((total / counted as f64) as f32)
    }
}
