//! The pooled head every sentence-level task shares (classification, NSP): `[CLS]` rows →
//! `tanh(Linear)` (BERT's pooler) → a linear head → mean cross-entropy, forward and backward.

use alloc::string::String;
use alloc::vec;

use super::encoder::weight;
use super::ops::linear_backward;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::model::{BertModel, BertPooler};
use crate::nn::Linear;

fn pooler<'s>(bert: &'s BertModel<'_>) -> Result<&'s BertPooler<'s>> {
    bert.pooler.as_ref().ok_or(Error::MissingTensor {
        tried: vec![String::from("pooler.dense.weight")],
    })
}

/// `logits[b] = head(tanh(pooler(x[first row of b])))` into `ws.logits`, saving `ws.cls` and
/// `ws.pooled`; returns the mean cross-entropy against `labels`.
pub(crate) fn pooled_forward(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    labels: &[i64],
    bsz: usize,
    ws: &mut TrainWorkspace,
) -> Result<f32> {
    let h = bert.config.hidden_size;
    let classes = head.out_features();
    if labels.len() != bsz {
        return Err(Error::LengthMismatch {
            what: "labels",
            len: labels.len(),
            expected: bsz,
        });
    }
    for b in 0..bsz {
        let r0 = ws.offsets[b];
        ws.cls[b * h..(b + 1) * h].copy_from_slice(&ws.x[r0 * h..(r0 + 1) * h]);
    }
    pooler(bert)?
        .dense
        .forward(&ws.cls, bsz, &mut ws.pooled, &mut ws.lanes[0].gemm);
    ws.pooled[..bsz * h]
        .iter_mut()
        .for_each(|v| *v = libm::tanhf(*v));
    head.forward(&ws.pooled, bsz, &mut ws.logits, &mut ws.lanes[0].gemm);
    crate::pretraining::cross_entropy(&ws.logits[..bsz * classes], classes, labels)
}

/// The backward of [`pooled_forward`]: the pooler's gradients into slots `pooler_slot`,
/// `pooler_slot + 1`, the head's into `head_slot`, `head_slot + 1`; the `[CLS]` rows' gradient
/// added to `ws.dx`.
pub(crate) fn pooled_backward(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    labels: &[i64],
    bsz: usize,
    (pooler_slot, head_slot): (usize, usize),
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let h = bert.config.hidden_size;
    let classes = head.out_features();
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
    let (gw, gb) = grads.pair(head_slot, head_slot + 1);
    linear_backward(
        &ws.pooled,
        weight(head)?,
        &ws.dlogits,
        bsz,
        h,
        classes,
        Some((&mut ws.dpooled, false)),
        gw,
        Some(gb),
        &mut ws.lanes[0].gemm,
    );
    for (g, p) in ws.dpooled[..bsz * h].iter_mut().zip(&ws.pooled[..bsz * h]) {
        *g *= 1.0 - p * p;
    }
    let (gw, gb) = grads.pair(pooler_slot, pooler_slot + 1);
    linear_backward(
        &ws.cls,
        weight(&pooler(bert)?.dense)?,
        &ws.dpooled,
        bsz,
        h,
        h,
        Some((&mut ws.dcls, false)),
        gw,
        Some(gb),
        &mut ws.lanes[0].gemm,
    );
    for b in 0..bsz {
        let r0 = ws.offsets[b];
        ws.dx[r0 * h..(r0 + 1) * h]
            .iter_mut()
            .zip(&ws.dcls[b * h..(b + 1) * h])
            .for_each(|(d, g)| *d += g);
    }
    Ok(())
}

/// BERT's tanh pooler (no activation or norm of another family, no mean pooling), or an error.
pub(crate) fn check_tanh_pooler(bert: &BertModel<'_>) -> Result<()> {
    let tanh = bert
        .pooler
        .as_ref()
        .is_some_and(|p| p.activation.is_none() && p.norm.is_none() && !p.mean);
    if tanh {
        Ok(())
    } else {
        Err(Error::Unsupported {
            field: "model_type",
            value: alloc::format!("{:?}", bert.config.arch.family),
            supported: "training runs BERT's tanh pooler before a sentence-level head so far",
        })
    }
}
