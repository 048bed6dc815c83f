//! The pooled head every sentence-level task shares (classification, NSP): `[CLS]` rows →
//! a dense layer and its activation (BERT's tanh pooler; RoBERTa's and XLM-R's
//! `classifier.dense` + tanh, ELECTRA's + GELU, DistilBERT's `pre_classifier` + ReLU) → a
//! linear head → mean cross-entropy, forward and backward, with dropout where each family's
//! head has it.

use alloc::string::String;
use alloc::vec;

use super::dropout::{self, Dropout};
use super::encoder::{push_linear, push_norm, weight};
use super::ops::{activation_backward, linear_backward};
use super::slots::{Counter, Pair};
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::model::{BertModel, BertPooler};
use crate::nn::Linear;

fn pooler<'s>(bert: &'s BertModel<'_>) -> Result<&'s BertPooler<'s>> {
    bert.pooler.as_ref().ok_or_else(|| Error::MissingTensor {
        tried: vec![String::from("pooler.dense.weight")],
    })
}

/// The classifier dropout of this step, when `classifier` asks for it and it is on.
fn classifier_dropout(ws: &TrainWorkspace, classifier: bool) -> Option<Dropout> {
    ws.dropout.filter(|d| classifier && d.classifier > 0.0)
}

/// Whether the family's classification head drops out its input row before its dense layer
/// (RoBERTa, XLM-R and ELECTRA's `ClassificationHead`; not BERT's pooler nor DistilBERT).
fn input_dropout(bert: &BertModel<'_>) -> bool {
    let family = bert.config.arch.family;
    crate::families::names(family).classifier.dense.is_some()
        && !matches!(
            family,
            crate::arch::Family::DistilBert | crate::arch::Family::ModernBert
        )
}

/// The dense layer's input: the first tokens' rows, or their dropped copy.
fn dense_input(bert: &BertModel<'_>, ws: &TrainWorkspace, classifier: bool) -> bool {
    input_dropout(bert) && classifier_dropout(ws, classifier).is_some()
}

/// `logits[b] = head(dropout(act(dense(dropout_in(x[first row of b])))))` into `ws.logits`
/// (`act`: tanh, or the family's head activation; `dropout_in` only in RoBERTa's, XLM-R's and
/// ELECTRA's heads; both dropouts when `classifier` and the workspace has dropout on: a
/// classifier, not NSP), saving `ws.cls` (and `ws.cls_in`), `ws.pooled_pre` (before a
/// non-tanh activation), `ws.pooled` (and the dropped copy); returns the mean cross-entropy
/// against `labels`.
pub(crate) fn pooled_forward(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    labels: &[i64],
    bsz: usize,
    classifier: bool,
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
    let p = pooler(bert)?;
    for b in 0..bsz {
        let rows = ws.offsets[b]..ws.offsets[b + 1];
        let dst = &mut ws.cls[b * h..(b + 1) * h];
        if p.mean {
            // The mean of the sequence's rows (its real tokens), as HF's mean pooling.
            dst.fill(0.0);
            for row in ws.x[rows.start * h..rows.end * h].chunks_exact(h) {
                dst.iter_mut().zip(row).for_each(|(d, x)| *d += x);
            }
            dst.iter_mut().for_each(|d| *d /= rows.len() as f32);
        } else {
            dst.copy_from_slice(&ws.x[rows.start * h..(rows.start + 1) * h]);
        }
    }
    let n = bsz * h;
    let x: &[f32] = match classifier_dropout(ws, classifier).filter(|_| input_dropout(bert)) {
        Some(d) => {
            let stream = dropout::CLASSIFIER_INPUT_STREAM;
            for (i, m) in ws.masks.classifier_input[..n].iter_mut().enumerate() {
                *m = dropout::factor(d.seed, stream, i as u64, d.classifier);
            }
            ws.cls_in[..n].copy_from_slice(&ws.cls[..n]);
            dropout::apply(&mut ws.cls_in[..n], &ws.masks.classifier_input);
            &ws.cls_in
        }
        None => &ws.cls,
    };
    p.dense
        .forward(x, bsz, &mut ws.pooled, &mut ws.lanes[0].gemm);
    match p.activation {
        None => ws.pooled[..n].iter_mut().for_each(|v| *v = libm::tanhf(*v)),
        Some(act) => {
            ws.pooled_pre[..n].copy_from_slice(&ws.pooled[..n]);
            crate::kernels::activate_in_place(act, &mut ws.pooled[..n]);
        }
    }
    if let Some(norm) = &p.norm {
        let tr = &mut ws.transform;
        let (xhat, rstd) = (&mut tr.xhat[..n], &mut tr.rstd[..bsz]);
        super::ops::layer_norm_save(
            &mut ws.pooled[..n],
            &norm.weight,
            &norm.bias,
            norm.eps,
            xhat,
            rstd,
        );
    }
    let input: &[f32] = match classifier_dropout(ws, classifier) {
        Some(d) => {
            let n = bsz * h;
            for (i, m) in ws.masks.classifier[..n].iter_mut().enumerate() {
                *m = dropout::factor(d.seed, dropout::CLASSIFIER_STREAM, i as u64, d.classifier);
            }
            ws.head_in[..n].copy_from_slice(&ws.pooled[..n]);
            dropout::apply(&mut ws.head_in[..n], &ws.masks.classifier);
            &ws.head_in
        }
        None => &ws.pooled,
    };
    head.forward(input, bsz, &mut ws.logits, &mut ws.lanes[0].gemm);
    crate::pretraining::cross_entropy(&ws.logits[..bsz * classes], classes, labels)
}

/// The backward of [`pooled_forward`]: the pooler's gradients (its dense layer's, its norm's)
/// and the head's into their `slots`; the pooled rows' gradient added to `ws.dx`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pooled_backward(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    labels: &[i64],
    bsz: usize,
    classifier: bool,
    slots: &PooledSlots,
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
    let dropped = classifier_dropout(ws, classifier).is_some();
    let (gw, gb) = slots.out.of(grads);
    linear_backward(
        if dropped { &ws.head_in } else { &ws.pooled },
        weight(head)?,
        &ws.dlogits,
        bsz,
        h,
        classes,
        Some((&mut ws.dpooled, false)),
        gw,
        gb,
        &mut ws.lanes[0].gemm,
    );
    if dropped {
        dropout::apply(&mut ws.dpooled[..bsz * h], &ws.masks.classifier);
    }
    let p = pooler(bert)?;
    let n = bsz * h;
    if let (Some(norm), Some(pair)) = (&p.norm, slots.norm) {
        // The norm's backward into dcls (free until the dense layer's), then swapped back.
        let (gw, gb) = pair.of(grads);
        let tr = &ws.transform;
        super::threads::layer_norm_backward(
            ws.par,
            1,
            (&ws.dpooled[..n], &tr.xhat[..n], &tr.rstd[..bsz]),
            &norm.weight,
            &mut ws.dcls[..n],
            false,
            gw,
            gb,
        );
        core::mem::swap(&mut ws.dpooled, &mut ws.dcls);
    }
    match p.activation {
        None => {
            for (g, p) in ws.dpooled[..n].iter_mut().zip(&ws.pooled[..n]) {
                *g *= 1.0 - p * p;
            }
        }
        Some(act) => {
            let backward = activation_backward(act).ok_or_else(|| unsupported_pooler(bert))?;
            backward(&mut ws.dpooled[..n], &ws.pooled_pre[..n]);
        }
    }
    let dropped_input = dense_input(bert, ws, classifier);
    let (gw, gb) = slots.dense.of(grads);
    linear_backward(
        if dropped_input { &ws.cls_in } else { &ws.cls },
        weight(&p.dense)?,
        &ws.dpooled,
        bsz,
        h,
        h,
        Some((&mut ws.dcls, false)),
        gw,
        gb,
        &mut ws.lanes[0].gemm,
    );
    if dropped_input {
        dropout::apply(&mut ws.dcls[..n], &ws.masks.classifier_input);
    }
    for b in 0..bsz {
        let rows = ws.offsets[b]..ws.offsets[b + 1];
        let g = &ws.dcls[b * h..(b + 1) * h];
        // The first row's gradient, or the mean's share of every row's.
        let (rows, share) = match p.mean {
            true => (rows.clone(), 1.0 / rows.len() as f32),
            false => (rows.start..rows.start + 1, 1.0),
        };
        for row in ws.dx[rows.start * h..rows.end * h].chunks_exact_mut(h) {
            match p.mean {
                true => row.iter_mut().zip(g).for_each(|(d, g)| *d += g * share),
                false => row.iter_mut().zip(g).for_each(|(d, g)| *d += g),
            }
        }
    }
    Ok(())
}

fn unsupported_pooler(bert: &BertModel<'_>) -> Error {
    Error::Unsupported {
        field: "model_type",
        value: alloc::format!("{:?}", bert.config.arch.family),
        supported: "a pooled head with tanh, GELU or ReLU before a sentence-level head \
                    in training",
    }
}

/// A pooler training has the backward of: a dense layer and tanh (BERT, RoBERTa, XLM-R),
/// GELU (ELECTRA, ModernBERT) or ReLU (DistilBERT), then an optional norm (ModernBERT), over
/// the first token or the mean of the tokens.
pub(crate) fn check_pooler(bert: &BertModel<'_>) -> Result<()> {
    let ok = bert.pooler.as_ref().is_some_and(|p| {
        p.activation
            .is_none_or(|a| activation_backward(a).is_some())
    });
    if ok {
        Ok(())
    } else {
        Err(unsupported_pooler(bert))
    }
}

/// Gradient slots of a pooled head: the pooler's dense layer and norm, then the output layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PooledSlots {
    pub(crate) dense: Pair,
    pub(crate) norm: Option<Pair>,
    pub(crate) out: Pair,
}

impl PooledSlots {
    /// BERT's pooler and an output layer at their own slots (both with biases, no norm).
    pub(crate) fn separate(dense: usize, out: usize) -> Self {
        PooledSlots {
            dense: Pair {
                weight: dense,
                bias: Some(dense + 1),
            },
            norm: None,
            out: Pair {
                weight: out,
                bias: Some(out + 1),
            },
        }
    }
}

impl PooledSlots {
    /// The slots [`pooled_grads`] gives a head whose first slot is `base`.
    pub(crate) fn after(
        bert: &BertModel<'_>,
        classifier: &Linear<'_>,
        base: usize,
    ) -> Result<Self> {
        let p = pooler(bert)?;
        let mut c = Counter(base);
        Ok(PooledSlots {
            dense: c.take(p.dense.bias.is_some()),
            norm: p
                .norm
                .as_ref()
                .map(|_| c.take(bert.config.arch.heads.norm_bias)),
            out: c.take(classifier.bias.is_some()),
        })
    }
}

/// A sentence classifier's head gradients after the encoder's, `p` its pooler, named as the
/// family's `*ForSequenceClassification` names them, at the slots [`PooledSlots::after`] gives.
pub(crate) fn pooled_grads(
    bert: &BertModel<'_>,
    p: &BertPooler<'_>,
    classifier: &Linear<'_>,
    g: &mut Grads,
) {
    let names = crate::families::names(bert.config.arch.family);
    let (dense, out) = head_names(bert);
    push_linear(g, &dense, &p.dense, p.dense.bias.is_some());
    if let (Some(_), Some(name)) = (&p.norm, names.classifier.norm) {
        let width = p.dense.out_features();
        push_norm(g, name, width, bert.config.arch.heads.norm_bias);
    }
    push_linear(g, &out, classifier, classifier.bias.is_some());
}

/// The gradient names of a sentence-level head's dense layer and output layer, as the
/// family's `*ForSequenceClassification` names them (BERT: its pooler and `classifier`).
pub(crate) fn head_names(bert: &BertModel<'_>) -> (String, String) {
    let names = crate::families::names(bert.config.arch.family);
    let dense = match names.classifier.dense {
        Some(d) => String::from(d),
        None => alloc::format!("{}pooler.dense", names.prefix),
    };
    (dense, String::from(names.classifier.out))
}
