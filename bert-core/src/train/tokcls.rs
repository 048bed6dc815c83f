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
use super::transform;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::heads::{BertForTokenClassification, BertPredictionHeadTransform};
use crate::model::{Batch, BertModel};
use crate::nn::Linear;
use crate::pretraining::IGNORE_INDEX;

/// Dropout on every packed row before a per-token classifier (training mode, when `on` and
/// the step's classifier dropout is): `ws.head_in` = `ws.x` (or, `transformed`, the
/// prediction head's output) · mask, element (packed row, j) of the classifier's stream.
/// Returns whether it ran; the head's backward then masks the classifier's input gradient
/// with `ws.masks.classifier`.
pub(super) fn token_head_dropout(
    ws: &mut TrainWorkspace,
    t: usize,
    (h, on): (usize, bool),
    transformed: bool,
) -> bool {
    match ws.dropout.filter(|d| on && d.classifier > 0.0) {
        Some(d) => {
            let mask = &mut ws.masks.classifier[..t * h];
            let p = (d.seed, dropout::CLASSIFIER_STREAM, d.classifier);
            dropout::fill_rows(mask, &ws.packed[..t], h, p);
            let from = if transformed {
                &ws.transform.out
            } else {
                &ws.x
            };
            ws.head_in[..t * h].copy_from_slice(&from[..t * h]);
            dropout::apply(&mut ws.head_in[..t * h], mask);
            true
        }
        None => false,
    }
}

/// What a token-level classifier reads: the encoder's rows, their dropped copy, or a
/// prediction head's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeadInput {
    Hidden,
    Dropped,
    Transformed,
}

/// `ws.logits = classifier(input)` over the `t` packed rows.
pub(super) fn classifier_forward(
    classifier: &Linear<'_>,
    input: HeadInput,
    t: usize,
    ws: &mut TrainWorkspace,
) {
    let TrainWorkspace {
        x,
        head_in,
        transform,
        logits,
        lanes,
        ..
    } = ws;
    let x = input.rows(x, head_in, &transform.out);
    classifier.forward(x, t, logits, &mut lanes[0].gemm);
}

impl HeadInput {
    /// The rows this input names, of the workspace's encoder output, dropped copy and
    /// prediction-head output.
    fn rows<'w>(self, x: &'w [f32], dropped: &'w [f32], transformed: &'w [f32]) -> &'w [f32] {
        match self {
            HeadInput::Hidden => x,
            HeadInput::Dropped => dropped,
            HeadInput::Transformed => transformed,
        }
    }
}

/// Runs what comes between the encoder and a token-level classifier: the prediction head
/// (ModernBERT), or dropout when `dropout` and the step has it on.
pub(super) fn head_input(
    transform: Option<&BertPredictionHeadTransform<'_>>,
    t: usize,
    (h, dropout): (usize, bool),
    ws: &mut TrainWorkspace,
) -> HeadInput {
    match transform {
        Some(tr) => {
            transform::forward(tr, t, ws);
            match token_head_dropout(ws, t, (h, dropout), true) {
                true => HeadInput::Dropped,
                false => HeadInput::Transformed,
            }
        }
        None if token_head_dropout(ws, t, (h, dropout), false) => HeadInput::Dropped,
        None => HeadInput::Hidden,
    }
}

/// The backward of a token-level classifier from `ws.dlogits` (and of what [`head_input`]
/// ran before it) into its gradients (after the encoder's) and `ws.dx`.
pub(super) fn head_backward(
    bert: &BertModel<'_>,
    (transform, classifier): (Option<&BertPredictionHeadTransform<'_>>, &Linear<'_>),
    t: usize,
    input: HeadInput,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let (h, classes) = (classifier.in_features(), classifier.out_features());
    let base = encoder_slots(bert);
    let (tr_slots, out) = match transform {
        Some(tr) => {
            let (s, next) = transform::slots(bert, tr, base);
            (Some(s), next)
        }
        None => (None, base),
    };
    let (gw, gb) = grads.pair(out, out + 1);
    let x = input.rows(&ws.x, &ws.head_in, &ws.transform.out);
    // The classifier's input gradient: into dx, or into da for the transform's backward.
    let dx = match transform {
        Some(_) => &mut ws.da,
        None => &mut ws.dx,
    };
    linear_backward(
        x,
        weight(classifier)?,
        &ws.dlogits,
        t,
        h,
        classes,
        Some((dx, false)),
        gw,
        Some(gb),
        &mut ws.lanes[0].gemm,
    );
    if input == HeadInput::Dropped {
        let dx = match transform {
            Some(_) => &mut ws.da,
            None => &mut ws.dx,
        };
        dropout::apply(&mut dx[..t * h], &ws.masks.classifier);
    }
    if let (Some(tr), Some(slots)) = (transform, tr_slots) {
        transform::backward(tr, t, &slots, ws, grads)?;
    }
    Ok(())
}

/// Training for [`BertForTokenClassification`].
#[derive(Debug)]
pub struct TokClsTrainer<'m, 'a> {
    model: &'m BertForTokenClassification<'a>,
}

impl<'m, 'a> TokClsTrainer<'m, 'a> {
    /// A trainer for `model` (f32 weights; ModernBERT's prediction head before the
    /// classifier included).
    pub fn new(model: &'m BertForTokenClassification<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        if let Some(tr) = &model.transform {
            transform::check(&model.bert, tr)?;
        }
        Ok(TokClsTrainer { model })
    }

    /// The gradient buffers, named as PyTorch names them.
    pub fn grads(&self) -> Grads {
        let mut g = Grads::default();
        encoder_grads(&self.model.bert, &mut g);
        if let Some(tr) = &self.model.transform {
            transform::push_grads(&self.model.bert, tr, &mut g);
        }
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
        let input = head_input(m.transform.as_ref(), t, (h, true), ws);
        classifier_forward(&m.classifier, input, t, ws);
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
        head_backward(
            &m.bert,
            (m.transform.as_ref(), &m.classifier),
            t,
            input,
            ws,
            grads,
        )?;
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok((total / counted as f64) as f32)
    }
}
