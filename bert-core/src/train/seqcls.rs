//! Sequence classification, forward with saved activations and backward by hand: embeddings →
//! layers → the family's pooled head → classifier → mean cross-entropy. Padding-free: the rows are
//! the real tokens of every sequence, attention runs per sequence.

use super::encoder::{
    check_trainable, encoder_backward, encoder_forward, encoder_grads, encoder_slots,
};
use super::pooled::{check_pooler, pooled_backward, pooled_forward, pooled_grads, PooledSlots};
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
    /// A trainer for `model`: any family (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT,
    /// ModernBERT) and its classification head, with f32 weights.
    pub fn new(model: &'m BertForSequenceClassification<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        check_pooler(&model.bert)?;
        Ok(SeqClsTrainer { model })
    }

    /// The gradient buffers, one per parameter, named as PyTorch names them.
    pub fn grads(&self) -> Grads {
        let m = self.model;
        let mut g = Grads::default();
        encoder_grads(&m.bert, &mut g);
        // `new` checked that the model has its pooler.
        if let Some(p) = &m.bert.pooler {
            pooled_grads(&m.bert, p, &m.classifier, &mut g);
        }
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
        encoder_forward(&m.bert, batch, ws)?;
        pooled_forward(&m.bert, &m.classifier, labels, batch.batch_size, true, ws)
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
        let h = m.bert.config.hidden_size;
        let bsz = batch.batch_size;
        let t = ws.offsets[bsz];
        let slots = PooledSlots::after(&m.bert, &m.classifier, encoder_slots(&m.bert))?;
        ws.dx[..t * h].fill(0.0);
        pooled_backward(&m.bert, &m.classifier, labels, bsz, true, &slots, ws, grads)?;
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok(())
    }
}
