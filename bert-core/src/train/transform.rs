//! The prediction head some families run on every token before a token-level classifier
//! (ModernBERT's `head`: `norm(act(dense(x)))`), forward with its saves and backward, shared by
//! token classification and QA.

use alloc::format;

use super::encoder::{push_linear, push_norm, weight};
use super::ops::activation_backward;
use super::slots::{Counter, Pair};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::heads::BertPredictionHeadTransform;
use crate::model::BertModel;

/// The gradient slots of a transform: its dense layer, then its norm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TransformSlots {
    pub(crate) dense: Pair,
    pub(crate) norm: Pair,
}

/// The transform's gradient buffers (after the encoder's), named as the family names them.
pub(crate) fn push_grads(
    bert: &BertModel<'_>,
    tr: &BertPredictionHeadTransform<'_>,
    g: &mut Grads,
) {
    let names = &crate::families::names(bert.config.arch.family).classifier;
    let dense = names.dense.unwrap_or("head.dense");
    let norm = names.norm.unwrap_or("head.norm");
    push_linear(g, dense, &tr.dense, tr.dense.bias.is_some());
    let width = tr.dense.out_features();
    push_norm(g, norm, width, bert.config.arch.heads.norm_bias);
}

/// The slots [`push_grads`] gives a transform whose first slot is `base`, and the next free one.
pub(crate) fn slots(
    bert: &BertModel<'_>,
    tr: &BertPredictionHeadTransform<'_>,
    base: usize,
) -> (TransformSlots, usize) {
    let mut c = Counter(base);
    let dense = c.take(tr.dense.bias.is_some());
    let norm = c.take(bert.config.arch.heads.norm_bias);
    (TransformSlots { dense, norm }, c.0)
}

/// A transform training has the backward of (an activation it knows, a norm as wide as the
/// dense layer, which keeps the hidden width).
pub(crate) fn check(bert: &BertModel<'_>, tr: &BertPredictionHeadTransform<'_>) -> Result<()> {
    let h = bert.config.hidden_size;
    if activation_backward(tr.transform_act_fn).is_none() || tr.dense.out_features() != h {
        return Err(Error::Unsupported {
            field: "classifier_activation",
            value: format!("{:?}", tr.transform_act_fn),
            supported: "gelu, gelu_new or relu in a hidden-wide prediction head",
        });
    }
    Ok(())
}

/// `ws.transform.out = norm(act(dense(ws.x)))` over the `t` packed rows, saving the dense
/// output and the norm's rows and deviations.
pub(crate) fn forward(tr: &BertPredictionHeadTransform<'_>, t: usize, ws: &mut TrainWorkspace) {
    let h = tr.dense.out_features();
    let n = t * h;
    let par = ws.par;
    let saved = &mut ws.transform;
    threads::linear_forward(
        par,
        &tr.dense,
        &ws.x[..t * tr.dense.in_features()],
        t,
        &mut saved.pre,
        &mut ws.lanes,
    );
    saved.out[..n].copy_from_slice(&saved.pre[..n]);
    crate::kernels::activate_in_place(tr.transform_act_fn, &mut saved.out[..n]);
    let ln = &tr.layer_norm;
    threads::layer_norm_save(
        par,
        ws.lanes.len(),
        &mut saved.out[..n],
        (&ln.weight, &ln.bias, ln.eps),
        &mut saved.xhat[..n],
        &mut saved.rstd[..t],
    );
}

/// The backward of [`forward`] from `ws.da` (the gradient of its output) into its gradients
/// and `ws.dx` (overwritten: the gradient of the encoder's last hidden states).
pub(crate) fn backward(
    tr: &BertPredictionHeadTransform<'_>,
    t: usize,
    slots: &TransformSlots,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let h = tr.dense.out_features();
    let k = tr.dense.in_features();
    let n = t * h;
    let par = ws.par;
    let saved = &ws.transform;
    let (gw, gb) = slots.norm.of(grads);
    threads::layer_norm_backward(
        par,
        ws.lanes.len(),
        (&ws.da[..n], &saved.xhat[..n], &saved.rstd[..t]),
        &tr.layer_norm.weight,
        &mut ws.dctx[..n],
        false,
        gw,
        gb,
    );
    let act = activation_backward(tr.transform_act_fn).ok_or_else(|| Error::Unsupported {
        field: "classifier_activation",
        value: format!("{:?}", tr.transform_act_fn),
        supported: "gelu, gelu_new or relu",
    })?;
    act(&mut ws.dctx[..n], &saved.pre[..n]);
    let (gw, gb) = slots.dense.of(grads);
    threads::linear_backward(
        par,
        &ws.x[..t * k],
        weight(&tr.dense)?,
        &ws.dctx[..n],
        (t, k, h),
        Some((&mut ws.dx[..t * k], false)),
        gw,
        gb,
        &mut ws.lanes,
    );
    Ok(())
}
