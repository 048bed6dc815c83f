//! The backward of one pre-norm layer (ModernBERT), written beside the forward it reverses,
//! [`PreNormLayer::run`]: that forward is
//!
//! ```text
//! n1      = attn_norm(x)            (x itself in the first layer)
//! q, k, v = n1 Wqkvᵀ                (one product; + bias where the config has one)
//! q, k    = rot(q), rot(k)          rotary, by each token's position
//! ctx     = softmax(q kᵀ / √d) v    per sequence and head, within the window on local layers
//! x1      = x + ctx Woᵀ
//! n2      = mlp_norm(x1)
//! [a | b] = n2 Wiᵀ
//! g       = act(a) · b
//! out     = x1 + g Wo2ᵀ
//! ```
//!
//! and [`ffn`] then [`attention`] walk it back from `ws.dx` (the gradient of `out`) to the
//! gradient of `x`, left in `ws.dx`, into the layer's [`PreNormSlots`].

use super::ops::ActivationBackward;
use super::post_norm::masked;
use super::slots::{weight, PreNormSlots};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::Result;
use crate::model::pre_norm::rotate;
use crate::model::PreNormLayer;

/// One pre-norm layer's part of a backward step.
pub(crate) struct PreNormStep<'a> {
    pub(crate) layer: &'a PreNormLayer<'a>,
    /// Its index (its saves in the workspace).
    pub(crate) index: usize,
    pub(crate) slots: PreNormSlots,
    /// Packed rows.
    pub(crate) tokens: usize,
    /// Sequences in the batch (their packed rows at `ws.offsets`).
    pub(crate) sequences: usize,
    /// The padded length (each packed row's position is its index modulo it).
    pub(crate) seq_len: usize,
    /// The backward of the feed-forward activation.
    pub(crate) activation: ActivationBackward,
    /// Which of this step's dropouts were on: after the attention's output product, on the
    /// gated product, on the attention probabilities (their masks in `ws.masks.layers`).
    pub(crate) dropout: [bool; 3],
}

/// The feed-forward block backward: the output product, the gate, the input product and
/// `mlp_norm`; `ws.dx` becomes the gradient of `x1` (its residual included).
pub(crate) fn ffn(s: &PreNormStep<'_>, ws: &mut TrainWorkspace, grads: &mut Grads) -> Result<()> {
    let (layer, t) = (s.layer, s.tokens);
    let h = layer.attention_out.out_features();
    let (inner, ffn) = (layer.mlp_out.in_features(), layer.mlp_in.out_features());
    let par = ws.par;
    let saved = &ws.pre_layers[s.index];
    // d g = d out · Wo2 (the residual's share stays in dx).
    let (gw, gb) = s.slots.mlp_out.of(grads);
    threads::linear_backward(
        par,
        &saved.gated,
        weight(&layer.mlp_out)?,
        &ws.dx,
        (t, inner, h),
        Some((&mut ws.dgated[..t * inner], false)),
        gw,
        gb,
        &mut ws.lanes,
    );
    if let Some(m) = ws.masks.layers.get(s.index).filter(|_| s.dropout[1]) {
        super::dropout::apply(&mut ws.dgated[..t * inner], &m[2][..t * inner]);
    }
    gate_backward(
        &ws.dgated[..t * inner],
        &saved.wi[..t * ffn],
        &mut ws.du[..t * ffn],
        layer,
        s.activation,
    );
    // d n2 = d[a | b] · Wi, into da.
    let (gw, gb) = s.slots.mlp_in.of(grads);
    threads::linear_backward(
        par,
        &saved.normed2,
        weight(&layer.mlp_in)?,
        &ws.du,
        (t, h, ffn),
        Some((&mut ws.da[..t * h], false)),
        gw,
        gb,
        &mut ws.lanes,
    );
    // d x1 += mlp_norm's backward of d n2.
    let (gw, gb) = s.slots.mlp_norm.of(grads);
    threads::layer_norm_backward(
        par,
        ws.lanes.len(),
        (&ws.da[..t * h], &saved.xhat2[..t * h], &saved.rstd2[..t]),
        &layer.mlp_norm.weight,
        &mut ws.dx[..t * h],
        true,
        gw,
        gb,
    );
    Ok(())
}

/// `d[a | b]` from `d g` for `g = act(a) · b` (rows of `wi` are `[a | b]`): `da = dg · b ·
/// act′(a)`, `db = dg · act(a)`; without gating, `du = dg · act′(u)`.
fn gate_backward(
    dg: &[f32],
    wi: &[f32],
    du: &mut [f32],
    layer: &PreNormLayer<'_>,
    act: ActivationBackward,
) {
    if !layer.gated {
        du.copy_from_slice(dg);
        act(du, wi);
        return;
    }
    let inner = layer.mlp_out.in_features();
    for ((g, row), out) in dg
        .chunks_exact(inner)
        .zip(wi.chunks_exact(2 * inner))
        .zip(du.chunks_exact_mut(2 * inner))
    {
        let (a, b) = row.split_at(inner);
        let (da, db) = out.split_at_mut(inner);
        for j in 0..inner {
            da[j] = g[j] * b[j];
            db[j] = g[j] * crate::kernels::activate(layer.activation, a[j]);
        }
        act(da, a);
    }
}

/// The attention block backward, from `ws.dx` (the gradient of `x1`): the output product,
/// attention per sequence and head, the rotation, `Wqkv` and `attn_norm`; `ws.dx` becomes the
/// gradient of the layer's input `x` (its residual included).
pub(crate) fn attention(
    s: &PreNormStep<'_>,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let (layer, t) = (s.layer, s.tokens);
    let shape = layer.shape;
    let (heads, d) = (shape.heads, shape.head_dim);
    let h = heads * d;
    let par = ws.par;
    let saved = &ws.pre_layers[s.index];
    let masks = ws.masks.layers.get(s.index);
    // Through the output's dropout (dq is free until the attention backward).
    let dy: &[f32] = match masks.filter(|_| s.dropout[0]) {
        Some(m) => {
            masked(&mut ws.dq[..t * h], &ws.dx[..t * h], &m[1]);
            &ws.dq
        }
        None => &ws.dx,
    };
    let (gw, gb) = s.slots.attention_out.of(grads);
    threads::linear_backward(
        par,
        &saved.ctx,
        weight(&layer.attention_out)?,
        dy,
        (t, h, h),
        Some((&mut ws.dctx, false)),
        gw,
        gb,
        &mut ws.lanes,
    );
    let qkv = &saved.qkv[..t * 3 * h];
    let heads_shape = threads::Heads {
        offsets: &ws.offsets[..=s.sequences],
        heads,
        d,
        h,
        scale: 1.0 / libm::sqrtf(d as f32),
        qkv_stride: 3 * h,
    };
    threads::attention_backward(
        par,
        heads_shape,
        (qkv, &qkv[h..], &qkv[2 * h..], &saved.probs, &ws.dctx),
        masks.filter(|_| s.dropout[2]).map(|m| &m[0][..]),
        (&mut ws.dq, &mut ws.dk, &mut ws.dv),
        &mut ws.lanes,
    );
    // The rotation back: dq, dk of the products before it.
    let positions = (&ws.packed[..t], s.seq_len);
    for dy in [&mut ws.dq, &mut ws.dk] {
        rotate(
            &mut dy[..t * h],
            h,
            positions,
            shape,
            layer.rope_theta,
            true,
        );
    }
    // d n1 = [dq | dk | dv] · Wqkv, into da; each third's rows of Wqkv's gradient.
    let w = weight(&layer.qkv)?;
    let (gw, mut gb) = s.slots.qkv.of(grads);
    for (j, dy) in [&ws.dq, &ws.dk, &ws.dv].into_iter().enumerate() {
        let rows = j * h * h..(j + 1) * h * h;
        let db = gb.as_deref_mut().map(|b| &mut b[j * h..(j + 1) * h]);
        threads::linear_backward(
            par,
            &saved.normed1,
            &w[rows.clone()],
            dy,
            (t, h, h),
            Some((&mut ws.da, j > 0)),
            &mut gw[rows],
            db,
            &mut ws.lanes,
        );
    }
    // d x += attn_norm's backward of d n1 (the first layer's n1 is x).
    match (&layer.attn_norm, s.slots.attn_norm) {
        (Some(norm), Some(slots)) => {
            let (gw, gb) = slots.of(grads);
            threads::layer_norm_backward(
                par,
                ws.lanes.len(),
                (&ws.da[..t * h], &saved.xhat1[..t * h], &saved.rstd1[..t]),
                &norm.weight,
                &mut ws.dx[..t * h],
                true,
                gw,
                gb,
            );
        }
        _ => {
            let dn = &ws.da[..t * h];
            ws.dx[..t * h].iter_mut().zip(dn).for_each(|(a, b)| *a += b);
        }
    }
    Ok(())
}
