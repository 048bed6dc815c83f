//! The backward of one post-norm layer (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT), written
//! beside the forward it reverses, [`BertLayer::run`]: that forward is
//!
//! ```text
//! q, k, v = x Wqᵀ, x Wkᵀ, x Wvᵀ                  (+ biases)
//! ctx     = softmax(q kᵀ / √d) · mask₀ · v        per sequence and head
//! y1      = LN1(drop₁(ctx Woᵀ + bo) + x)
//! g       = act(u),  u = y1 Wiᵀ + bi
//! out     = LN2(drop₂(g Wo2ᵀ + bo2) + y1)
//! ```
//!
//! and [`ffn`] then [`attention`] walk it back from `ws.dx` (the gradient of `out`) to the
//! gradient of `x`, left in `ws.dx`. The layer's gradients are the 16 slots from `base`, in
//! the order [`encoder_grads`](super::encoder::encoder_grads) pushes them.

use super::ops::ActivationBackward;
use super::slots::weight;
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::Result;
use crate::model::BertLayer;

/// One layer's part of a backward step.
pub(crate) struct LayerStep<'a> {
    pub(crate) layer: &'a BertLayer<'a>,
    /// Its index (its saves and masks in the workspace).
    pub(crate) index: usize,
    /// Its first gradient slot.
    pub(crate) base: usize,
    /// Packed rows.
    pub(crate) tokens: usize,
    /// Sequences in the batch (their packed rows at `ws.offsets`).
    pub(crate) sequences: usize,
    /// Attention heads and their width.
    pub(crate) heads: (usize, usize),
    /// The backward of the feed-forward activation.
    pub(crate) activation: ActivationBackward,
    /// Which of this step's dropouts were on: hidden after the attention output (DistilBERT has
    /// none there), hidden after the feed-forward output, on the attention probabilities.
    pub(crate) dropout: [bool; 3],
}

/// `out = dy * mask`.
pub(super) fn masked(out: &mut [f32], dy: &[f32], mask: &[f32]) {
    for ((o, g), m) in out.iter_mut().zip(dy).zip(mask) {
        *o = g * m;
    }
}

/// The feed-forward block backward: LN2, its dropout, the output product, the activation and
/// the intermediate product; `ws.dx` becomes the gradient of `y1` (its residual included).
pub(crate) fn ffn(s: &LayerStep<'_>, ws: &mut TrainWorkspace, grads: &mut Grads) -> Result<()> {
    let (layer, base, t) = (s.layer, s.base, s.tokens);
    let h = layer.output.layer_norm.weight.len();
    let par = ws.par;
    let saved = &ws.layers[s.index];
    let masks = ws.masks.layers.get(s.index);
    // LN2: dx (d out) -> da (d of drop₂(g Wo2ᵀ + bo2) + y1)
    let (gw, gb) = grads.pair(base + 14, base + 15);
    threads::layer_norm_backward(
        par,
        ws.lanes.len(),
        (&ws.dx[..t * h], &saved.xhat2[..t * h], &saved.rstd2[..t]),
        &layer.output.layer_norm.weight,
        &mut ws.da[..t * h],
        false,
        gw,
        Some(gb),
    );
    let out = &layer.output.dense;
    let iw = out.in_features();
    // Through drop₂ (dq is free until the attention backward).
    let dy: &[f32] = match masks.filter(|_| s.dropout[1]) {
        Some(m) => {
            masked(&mut ws.dq[..t * h], &ws.da[..t * h], &m[2]);
            &ws.dq
        }
        None => &ws.da,
    };
    let (gw, gb) = grads.pair(base + 12, base + 13);
    let du = Some((&mut ws.du[..], false));
    threads::linear_backward(
        par,
        &saved.g,
        weight(out)?,
        dy,
        (t, iw, h),
        du,
        gw,
        Some(gb),
        &mut ws.lanes,
    );
    let lanes = ws.lanes.len();
    let act = s.activation;
    threads::zip_map(par, lanes, &mut ws.du[..t * iw], &saved.u, &act);
    // d y1 = da (the residual) + du Wi
    ws.dx[..t * h].copy_from_slice(&ws.da[..t * h]);
    let (gw, gb) = grads.pair(base + 10, base + 11);
    threads::linear_backward(
        par,
        &saved.y1,
        weight(&layer.intermediate.dense)?,
        &ws.du,
        (t, h, iw),
        Some((&mut ws.dx, true)),
        gw,
        Some(gb),
        &mut ws.lanes,
    );
    Ok(())
}

/// The attention block backward, from `ws.dx` (the gradient of `y1`): LN1, its dropout, the
/// output product, attention per sequence and head, and Q, K, V; `ws.dx` becomes the gradient
/// of the layer's input `x` (its residual included).
pub(crate) fn attention(
    s: &LayerStep<'_>,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let (a, base, t) = (&s.layer.attention, s.base, s.tokens);
    let (heads, d) = s.heads;
    let h = heads * d;
    let shape = threads::Heads {
        offsets: &ws.offsets[..=s.sequences],
        heads,
        d,
        h,
        scale: 1.0 / libm::sqrtf(d as f32),
        qkv_stride: h,
    };
    let par = ws.par;
    let saved = &ws.layers[s.index];
    let masks = ws.masks.layers.get(s.index);
    // LN1: dx (d y1) -> da (d of drop₁(ctx Woᵀ + bo) + x)
    let (gw, gb) = grads.pair(base + 8, base + 9);
    threads::layer_norm_backward(
        par,
        ws.lanes.len(),
        (&ws.dx[..t * h], &saved.xhat1[..t * h], &saved.rstd1[..t]),
        &a.output.layer_norm.weight,
        &mut ws.da[..t * h],
        false,
        gw,
        Some(gb),
    );
    ws.dx[..t * h].copy_from_slice(&ws.da[..t * h]);
    let dy: &[f32] = match masks.filter(|_| s.dropout[0]) {
        Some(m) => {
            masked(&mut ws.dq[..t * h], &ws.da[..t * h], &m[1]);
            &ws.dq
        }
        None => &ws.da,
    };
    let (gw, gb) = grads.pair(base + 6, base + 7);
    threads::linear_backward(
        par,
        &saved.ctx,
        weight(&a.output.dense)?,
        dy,
        (t, h, h),
        Some((&mut ws.dctx, false)),
        gw,
        Some(gb),
        &mut ws.lanes,
    );
    let [q, k, v] = saved.qkv();
    threads::attention_backward(
        par,
        shape,
        (q, k, v, &saved.probs, &ws.dctx),
        masks.filter(|_| s.dropout[2]).map(|m| &m[0][..]),
        (&mut ws.dq, &mut ws.dk, &mut ws.dv),
        &mut ws.lanes,
    );
    let sa = &a.self_attention;
    for (j, (lin, dy)) in [(&sa.query, &ws.dq), (&sa.key, &ws.dk), (&sa.value, &ws.dv)]
        .into_iter()
        .enumerate()
    {
        let (gw, gb) = grads.pair(base + 2 * j, base + 2 * j + 1);
        threads::linear_backward(
            par,
            &saved.x_in,
            weight(lin)?,
            dy,
            (t, h, h),
            Some((&mut ws.dx, true)),
            gw,
            Some(gb),
            &mut ws.lanes,
        );
    }
    Ok(())
}
