//! Sequence classification, forward with saved activations and backward by hand: embeddings →
//! post-norm layers → tanh pooler → classifier → mean cross-entropy. Padding-free: the rows are
//! the real tokens of every sequence, attention runs per sequence.

use alloc::format;
use alloc::string::String;
use alloc::vec;

use super::encoder::{
    check_trainable, encoder_backward, encoder_forward, encoder_grads, weight, EMBEDDINGS,
    PER_LAYER,
};
use super::ops::linear_backward;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::heads::BertForSequenceClassification;
use crate::model::Batch;

/// Training for [`BertForSequenceClassification`].
#[derive(Debug)]
pub struct SeqClsTrainer<'m, 'a> {
    model: &'m BertForSequenceClassification<'a>,
}

impl<'m, 'a> SeqClsTrainer<'m, 'a> {
    /// A trainer for `model`: BERT's block (post-norm, absolute positions, token types, the
    /// tanh pooler) with f32 weights.
    pub fn new(model: &'m BertForSequenceClassification<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        let tanh_pooler = model
            .bert
            .pooler
            .as_ref()
            .is_some_and(|p| p.activation.is_none() && p.norm.is_none() && !p.mean);
        if !tanh_pooler {
            return Err(Error::Unsupported {
                field: "model_type",
                value: format!("{:?}", model.bert.config.arch.family),
                supported: "training runs BERT's tanh pooler before the classifier so far",
            });
        }
        Ok(SeqClsTrainer { model })
    }

    /// The gradient buffers, one per parameter, named as PyTorch names them.
    pub fn grads(&self) -> Grads {
        let m = self.model;
        let c = &m.bert.config;
        let p = crate::families::names(c.arch.family).prefix;
        let mut g = Grads::default();
        encoder_grads(&m.bert, &mut g);
        let h = c.hidden_size;
        g.push(format!("{p}pooler.dense.weight"), &[h, h]);
        g.push(format!("{p}pooler.dense.bias"), &[h]);
        let labels = m.classifier.out_features();
        g.push(String::from("classifier.weight"), &[labels, h]);
        g.push(String::from("classifier.bias"), &[labels]);
        g
    }

    /// Buffers for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<TrainWorkspace> {
        let labels = self.model.classifier.out_features();
        TrainWorkspace::new(&self.model.bert, labels, max_batch, max_seq)
    }

    /// The mean cross-entropy of `batch` against `labels` (one class per sequence), and its
    /// gradient with respect to every parameter, added to `grads`.
    pub fn loss_and_grads(
        &self,
        batch: &Batch<'_>,
        labels: &[i64],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<f32> {
        let loss = self.forward(batch, labels, ws)?;
        self.backward(batch, labels, ws, grads)?;
        Ok(loss)
    }

    /// The forward pass, saving activations; returns the mean cross-entropy.
    pub fn forward(
        &self,
        batch: &Batch<'_>,
        labels: &[i64],
        ws: &mut TrainWorkspace,
    ) -> Result<f32> {
        let m = self.model;
        let c = &m.bert.config;
        batch.validate(c)?;
        if batch.batch_size > ws.max_batch || batch.seq_len > ws.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (batch.batch_size, batch.seq_len),
                capacity: (ws.max_batch, ws.max_seq),
            });
        }
        let classes = m.classifier.out_features();
        if labels.len() != batch.batch_size {
            return Err(Error::LengthMismatch {
                what: "labels",
                len: labels.len(),
                expected: batch.batch_size,
            });
        }
        let h = c.hidden_size;
        encoder_forward(&m.bert, batch, ws)?;
        // pooled = tanh(cls Wpᵀ + bp); logits = pooled Wcᵀ + bc.
        let bsz = batch.batch_size;
        for b in 0..bsz {
            let r0 = ws.offsets[b];
            ws.cls[b * h..(b + 1) * h].copy_from_slice(&ws.x[r0 * h..(r0 + 1) * h]);
        }
        let pooler = m.bert.pooler.as_ref().ok_or(Error::MissingTensor {
            tried: vec![String::from("pooler.dense.weight")],
        })?;
        pooler
            .dense
            .forward(&ws.cls, bsz, &mut ws.pooled, &mut ws.gemm);
        ws.pooled[..bsz * h]
            .iter_mut()
            .for_each(|v| *v = libm::tanhf(*v));
        m.classifier
            .forward(&ws.pooled, bsz, &mut ws.logits, &mut ws.gemm);
        let logits = &ws.logits[..bsz * classes];
        crate::pretraining::cross_entropy(logits, classes, labels)
    }

    /// The backward of the last [`forward`](Self::forward), added to `grads`.
    pub fn backward(
        &self,
        batch: &Batch<'_>,
        labels: &[i64],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<()> {
        let m = self.model;
        let c = &m.bert.config;
        let h = c.hidden_size;
        let bsz = batch.batch_size;
        let t = ws.offsets[bsz];
        let classes = m.classifier.out_features();
        let layers = m.bert.encoder.layer.len();
        let cls_w = EMBEDDINGS + layers * PER_LAYER + 2;
        // dlogits = (softmax - onehot) / B
        for (b, &label) in labels.iter().enumerate().take(bsz) {
            let row = &ws.logits[b * classes..(b + 1) * classes];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&v| libm::exp(v as f64 - max)).sum();
            for (j, g) in ws.dlogits[b * classes..(b + 1) * classes]
                .iter_mut()
                .enumerate()
            {
                let p = libm::exp(row[j] as f64 - max) / sum;
                let y = if label == j as i64 { 1.0 } else { 0.0 };
                *g = ((p - y) / bsz as f64) as f32;
            }
        }
        let (gw, gb) = grads.pair(cls_w, cls_w + 1);
        linear_backward(
            &ws.pooled,
            weight(&m.classifier)?,
            &ws.dlogits,
            bsz,
            h,
            classes,
            Some((&mut ws.dpooled, false)),
            gw,
            Some(gb),
            &mut ws.gemm,
        );
        for (g, p) in ws.dpooled[..bsz * h].iter_mut().zip(&ws.pooled[..bsz * h]) {
            *g *= 1.0 - p * p;
        }
        let pooler = m.bert.pooler.as_ref().ok_or(Error::MissingTensor {
            tried: vec![String::from("pooler.dense.weight")],
        })?;
        let pw = cls_w - 2;
        let (gw, gb) = grads.pair(pw, pw + 1);
        linear_backward(
            &ws.cls,
            weight(&pooler.dense)?,
            &ws.dpooled,
            bsz,
            h,
            h,
            Some((&mut ws.dcls, false)),
            gw,
            Some(gb),
            &mut ws.gemm,
        );
        ws.dx[..t * h].fill(0.0);
        for b in 0..bsz {
            let r0 = ws.offsets[b];
            ws.dx[r0 * h..(r0 + 1) * h].copy_from_slice(&ws.dcls[b * h..(b + 1) * h]);
        }
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok(())
    }
}
