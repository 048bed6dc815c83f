//! Extractive QA: the encoder, `qa_outputs` on every real token giving start and end logits,
//! and `(CE(start) + CE(end)) / 2` over each sequence's real tokens (HF's loss, whose softmax
//! also runs over padding positions: the two agree on batches without padding), with the
//! backward by hand.

use alloc::format;

use super::encoder::{check_trainable, encoder_backward, encoder_forward, encoder_grads};
use super::tokcls::{classifier_forward, head_backward, head_input};
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::arch::Family;
use crate::error::{Error, Result};
use crate::heads::BertForQuestionAnswering;
use crate::model::Batch;

/// Training for [`BertForQuestionAnswering`].
#[derive(Debug)]
pub struct QaTrainer<'m, 'a> {
    model: &'m BertForQuestionAnswering<'a>,
}

impl<'m, 'a> QaTrainer<'m, 'a> {
    /// A trainer for `model` (f32 weights; ModernBERT's prediction head before the span
    /// classifier included).
    pub fn new(model: &'m BertForQuestionAnswering<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        if let Some(tr) = &model.transform {
            super::transform::check(&model.bert, tr)?;
        }
        Ok(QaTrainer { model })
    }

    /// The gradient buffers, named as PyTorch names them.
    pub fn grads(&self) -> Grads {
        let mut g = Grads::default();
        let m = self.model;
        encoder_grads(&m.bert, &mut g);
        // ModernBERT's span classifier is `classifier`, after its prediction head.
        let name = match &m.transform {
            Some(tr) => {
                super::transform::push_grads(&m.bert, tr, &mut g);
                "classifier"
            }
            None => "qa_outputs",
        };
        let h = m.qa_outputs.in_features();
        g.push(format!("{name}.weight"), &[2, h]);
        g.push(format!("{name}.bias"), &[2]);
        g
    }

    /// Buffers for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<TrainWorkspace> {
        TrainWorkspace::new(&self.model.bert, 2, max_batch, max_seq)
    }

    /// The loss of answer spans (`starts[b]`, `ends[b]`: token positions in sequence `b`), and
    /// every parameter's gradient, added to `grads`.
    pub fn loss_and_grads(
        &self,
        batch: &Batch<'_>,
        starts: &[usize],
        ends: &[usize],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<f32> {
        let m = self.model;
        let h = m.bert.config.hidden_size;
        let bsz = batch.batch_size;
        if starts.len() != bsz || ends.len() != bsz {
            return Err(Error::LengthMismatch {
                what: "answer positions",
                len: starts.len().min(ends.len()),
                expected: bsz,
            });
        }
        if bsz > ws.max_batch || batch.seq_len > ws.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (bsz, batch.seq_len),
                capacity: (ws.max_batch, ws.max_seq),
            });
        }
        let t = encoder_forward(&m.bert, batch, ws)?;
        // DistilBERT drops out the hidden states before `qa_outputs` (`qa_dropout`), and
        // ModernBERT its prediction head's output before `classifier`; the other families' QA
        // heads have no dropout.
        let family = m.bert.config.arch.family;
        let dropped = matches!(family, Family::DistilBert | Family::ModernBert);
        let input = head_input(m.transform.as_ref(), t, (h, dropped), ws);
        classifier_forward(&m.qa_outputs, input, t, ws);
        let mut total = 0.0f64;
        for b in 0..bsz {
            let (r0, r1) = (ws.offsets[b], ws.offsets[b + 1]);
            for (column, target) in [(0usize, starts[b]), (1, ends[b])] {
                // The packed row of the target position (positions count real tokens).
                let Some(row) = (r0..r1).find(|&r| ws.packed[r] as usize % batch.seq_len == target)
                else {
                    return Err(Error::InvalidInput(format!(
                        "sequence {b}: answer position {target} is not a real token"
                    )));
                };
                let value = |r: usize| ws.logits[r * 2 + column] as f64;
                let max = (r0..r1).map(value).fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = (r0..r1).map(|r| libm::exp(value(r) - max)).sum();
                total += max + libm::log(sum) - value(row);
                for r in r0..r1 {
                    let p = libm::exp(value(r) - max) / sum;
                    let y = if r == row { 1.0 } else { 0.0 };
                    ws.dlogits[r * 2 + column] = ((p - y) / (2 * bsz) as f64) as f32;
                }
            }
        }
        let head = (m.transform.as_ref(), &m.qa_outputs);
        head_backward(&m.bert, head, t, input, ws, grads)?;
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok((total / (2 * bsz) as f64) as f32)
    }
}
