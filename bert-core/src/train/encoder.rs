//! The encoder's share of training, common to every head: the forward over packed real tokens
//! with everything the backward needs saved, the backward from `ws.dx` (the gradient of the
//! last hidden states) down to the embedding tables, and the encoder's gradient buffers.

use alloc::format;

use super::dropout::{self, Dropout};
use super::ops::gelu_backward;
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::kernels;
use crate::model::{Batch, BertModel};
use crate::nn::Linear;

/// Indices of one layer's parameters in [`Grads`].
pub(crate) const PER_LAYER: usize = 16;
/// Embeddings: word, position, token type, LayerNorm weight and bias.
pub(crate) const EMBEDDINGS: usize = 5;

/// An f32 weight, or an error saying training needs one.
pub(crate) fn weight<'s>(l: &'s Linear<'_>) -> Result<&'s [f32]> {
    match &l.weight.storage {
        crate::tensor::Storage::F32(v) => Ok(v),
        other => Err(Error::Unsupported {
            field: "dtype",
            value: format!("{}", other.dtype()),
            supported: "F32 weights for training",
        }),
    }
}

/// The encoder's gradient buffers (embeddings, then every layer), first in [`Grads`].
pub(crate) fn encoder_grads(bert: &BertModel<'_>, g: &mut Grads) {
    let c = &bert.config;
    let p = crate::families::names(c.arch.family).prefix;
    let e = &bert.embeddings;
    g.push(
        format!("{p}embeddings.word_embeddings.weight"),
        &[e.word_embeddings.weight.rows, e.width()],
    );
    let positions = e.position_embeddings.as_ref().map_or(0, |t| t.weight.rows);
    g.push(
        format!("{p}embeddings.position_embeddings.weight"),
        &[positions, e.width()],
    );
    let types = e
        .token_type_embeddings
        .as_ref()
        .map_or(0, |t| t.weight.rows);
    g.push(
        format!("{p}embeddings.token_type_embeddings.weight"),
        &[types, e.width()],
    );
    g.push(format!("{p}embeddings.LayerNorm.weight"), &[e.width()]);
    g.push(format!("{p}embeddings.LayerNorm.bias"), &[e.width()]);
    for (l, layer) in bert.encoder.layer.iter().enumerate() {
        let base = format!("{p}encoder.layer.{l}");
        let a = &layer.attention;
        for (name, lin) in [
            ("attention.self.query", &a.self_attention.query),
            ("attention.self.key", &a.self_attention.key),
            ("attention.self.value", &a.self_attention.value),
            ("attention.output.dense", &a.output.dense),
        ] {
            g.push(
                format!("{base}.{name}.weight"),
                &[lin.weight.rows, lin.weight.cols],
            );
            g.push(format!("{base}.{name}.bias"), &[lin.out_features()]);
        }
        g.push(
            format!("{base}.attention.output.LayerNorm.weight"),
            &[c.hidden_size],
        );
        g.push(
            format!("{base}.attention.output.LayerNorm.bias"),
            &[c.hidden_size],
        );
        for (name, lin) in [
            ("intermediate.dense", &layer.intermediate.dense),
            ("output.dense", &layer.output.dense),
        ] {
            g.push(
                format!("{base}.{name}.weight"),
                &[lin.weight.rows, lin.weight.cols],
            );
            g.push(format!("{base}.{name}.bias"), &[lin.out_features()]);
        }
        g.push(format!("{base}.output.LayerNorm.weight"), &[c.hidden_size]);
        g.push(format!("{base}.output.LayerNorm.bias"), &[c.hidden_size]);
    }
    if let Some(project) = &e.project {
        let name = crate::families::names(c.arch.family)
            .embeddings_project
            .unwrap_or("embeddings_project");
        g.push(format!("{p}{name}.weight"), &[c.hidden_size, e.width()]);
        g.push(format!("{p}{name}.bias"), &[project.out_features()]);
    }
}

/// Gradient slots of the encoder (embeddings, every layer, the embeddings' projection if
/// any): a head's parameters come after them.
pub(crate) fn encoder_slots(bert: &BertModel<'_>) -> usize {
    let project = if bert.embeddings.project.is_some() {
        2
    } else {
        0
    };
    EMBEDDINGS + bert.encoder.layer.len() * PER_LAYER + project
}

/// Embeddings and every layer over the real tokens of `batch`, packed; saves activations.
/// Returns the number of packed rows; `ws.x` holds the last hidden states.
pub(crate) fn encoder_forward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    ws: &mut TrainWorkspace,
) -> Result<usize> {
    let c = &bert.config;
    let (h, heads, d) = (c.hidden_size, c.num_attention_heads, c.head_dim());
    // Pack the real tokens.
    let keep = |i: usize| batch.attention_mask.is_none_or(|mk| mk[i] != 0);
    let mut t = 0;
    for b in 0..batch.batch_size {
        ws.offsets[b] = t;
        for i in b * batch.seq_len..(b + 1) * batch.seq_len {
            if keep(i) {
                ws.packed[t] = i as u32;
                t += 1;
            }
        }
        if t == ws.offsets[b] {
            return Err(Error::EmptySequence { sequence: b });
        }
    }
    ws.offsets[batch.batch_size] = t;
    super::embeddings::forward(&bert.embeddings, batch, t, ws)?;
    let par = ws.par;
    let scale = 1.0 / libm::sqrtf(d as f32);
    let shape = threads::Heads {
        offsets: &ws.offsets[..=batch.batch_size],
        heads,
        d,
        h,
        scale,
    };
    let drop = ws.dropout;
    let hidden = drop.filter(|d| d.hidden > 0.0);
    let lanes = ws.lanes.len();
    let rows = |mask: &mut [f32], stream: u64, d: Dropout| {
        let spec = (d.seed, stream, d.hidden);
        threads::fill_rows(par, lanes, &mut mask[..t * h], &ws.packed[..t], h, spec);
    };
    for (l, (layer, saved)) in bert
        .encoder
        .layer
        .iter()
        .zip(ws.layers.iter_mut())
        .enumerate()
    {
        let [s_probs, s_attn, s_ffn] = dropout::layer_streams(l);
        let a = &layer.attention;
        saved.x_in[..t * h].copy_from_slice(&ws.x[..t * h]);
        let x_in = &saved.x_in[..t * h];
        let sa = &a.self_attention;
        threads::linear_forward(par, &sa.query, x_in, t, &mut saved.q, &mut ws.lanes);
        threads::linear_forward(par, &sa.key, x_in, t, &mut saved.k, &mut ws.lanes);
        threads::linear_forward(par, &sa.value, x_in, t, &mut saved.v, &mut ws.lanes);
        let probs_mask = match drop.filter(|d| d.attention > 0.0) {
            Some(d) => {
                let m = &mut ws.masks.layers[l][0];
                let rows = (&ws.offsets[..=batch.batch_size], &ws.packed[..t]);
                attention_mask(
                    par,
                    ws.lanes.len(),
                    m,
                    batch.seq_len,
                    rows,
                    heads,
                    (d.seed, s_probs, d.attention),
                );
                Some(&ws.masks.layers[l][0][..])
            }
            None => None,
        };
        threads::attention_forward(
            par,
            shape,
            (&saved.q, &saved.k, &saved.v, probs_mask),
            &mut saved.probs,
            &mut saved.ctx,
            &mut ws.lanes,
        );
        // y1 = LN1(ctx Woᵀ + bo + x_in)
        threads::linear_forward(
            par,
            &a.output.dense,
            &saved.ctx,
            t,
            &mut saved.y1,
            &mut ws.lanes,
        );
        if let Some(d) = hidden {
            rows(&mut ws.masks.layers[l][1], s_attn, d);
            dropout::apply(&mut saved.y1[..t * h], &ws.masks.layers[l][1]);
        }
        saved.y1[..t * h]
            .iter_mut()
            .zip(x_in)
            .for_each(|(y, x)| *y += x);
        let n1 = &a.output.layer_norm;
        threads::layer_norm_save(
            par,
            ws.lanes.len(),
            &mut saved.y1[..t * h],
            (&n1.weight, &n1.bias, n1.eps),
            &mut saved.xhat1[..t * h],
            &mut saved.rstd1[..t],
        );
        // g = gelu(y1 Wiᵀ + bi)
        let inter = &layer.intermediate.dense;
        let iw = inter.out_features();
        threads::linear_forward(par, inter, &saved.y1, t, &mut saved.u, &mut ws.lanes);
        saved.g[..t * iw].copy_from_slice(&saved.u[..t * iw]);
        threads::chunks(par, ws.lanes.len(), &mut saved.g[..t * iw], &|c| {
            kernels::activate_in_place(Activation::Gelu, c)
        });
        // x = LN2(g Wo2ᵀ + bo2 + y1)
        let out = &layer.output.dense;
        threads::linear_forward(par, out, &saved.g, t, &mut ws.x, &mut ws.lanes);
        if let Some(d) = hidden {
            rows(&mut ws.masks.layers[l][2], s_ffn, d);
            dropout::apply(&mut ws.x[..t * h], &ws.masks.layers[l][2]);
        }
        ws.x[..t * h]
            .iter_mut()
            .zip(&saved.y1[..t * h])
            .for_each(|(y, x)| *y += x);
        let n2 = &layer.output.layer_norm;
        threads::layer_norm_save(
            par,
            ws.lanes.len(),
            &mut ws.x[..t * h],
            (&n2.weight, &n2.bias, n2.eps),
            &mut saved.xhat2[..t * h],
            &mut saved.rstd2[..t],
        );
    }
    Ok(t)
}

/// The backward from `ws.dx` (`[t, hidden]`, the gradient of the last hidden states) through
/// every layer and the embeddings, into `grads`.
pub(crate) fn encoder_backward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let c = &bert.config;
    let (h, heads, d) = (c.hidden_size, c.num_attention_heads, c.head_dim());
    let t = ws.offsets[batch.batch_size];
    let scale = 1.0 / libm::sqrtf(d as f32);
    let par = ws.par;
    let shape = threads::Heads {
        offsets: &ws.offsets[..=batch.batch_size],
        heads,
        d,
        h,
        scale,
    };
    let drop = ws.dropout;
    let hidden = drop.is_some_and(|d| d.hidden > 0.0);
    for (l, (layer, saved)) in bert.encoder.layer.iter().zip(&ws.layers).enumerate().rev() {
        let base = EMBEDDINGS + l * PER_LAYER;
        let masks = ws.masks.layers.get(l);
        let a = &layer.attention;
        // LN2: dx (dy2) -> da (d of g Wo2ᵀ + bo2 + y1)
        let n2 = &layer.output.layer_norm;
        {
            let (gw, gb) = grads.pair(base + 14, base + 15);
            threads::layer_norm_backward(
                par,
                ws.lanes.len(),
                (&ws.dx[..t * h], &saved.xhat2[..t * h], &saved.rstd2[..t]),
                &n2.weight,
                &mut ws.da[..t * h],
                false,
                gw,
                gb,
            );
        }
        let out = &layer.output.dense;
        let iw = out.in_features();
        // Through the FFN output's dropout (dq is free until the attention backward).
        let dy: &[f32] = match masks.filter(|_| hidden) {
            Some(m) => {
                masked(&mut ws.dq[..t * h], &ws.da[..t * h], &m[2]);
                &ws.dq
            }
            None => &ws.da,
        };
        let (gw, gb) = grads.pair(base + 12, base + 13);
        threads::linear_backward(
            par,
            &saved.g,
            weight(out)?,
            dy,
            (t, iw, h),
            Some((&mut ws.du, false)),
            gw,
            Some(gb),
            &mut ws.lanes,
        );
        threads::zip_map(
            par,
            ws.lanes.len(),
            &mut ws.du[..t * iw],
            &saved.u,
            &gelu_backward,
        );
        // dy1 = da (residual) + du Wi
        ws.dx[..t * h].copy_from_slice(&ws.da[..t * h]);
        let inter = &layer.intermediate.dense;
        let (gw, gb) = grads.pair(base + 10, base + 11);
        threads::linear_backward(
            par,
            &saved.y1,
            weight(inter)?,
            &ws.du,
            (t, h, iw),
            Some((&mut ws.dx, true)),
            gw,
            Some(gb),
            &mut ws.lanes,
        );
        // LN1: dx (dy1) -> da (d of ctx Woᵀ + bo + x_in)
        let n1 = &a.output.layer_norm;
        {
            let (gw, gb) = grads.pair(base + 8, base + 9);
            threads::layer_norm_backward(
                par,
                ws.lanes.len(),
                (&ws.dx[..t * h], &saved.xhat1[..t * h], &saved.rstd1[..t]),
                &n1.weight,
                &mut ws.da[..t * h],
                false,
                gw,
                gb,
            );
        }
        ws.dx[..t * h].copy_from_slice(&ws.da[..t * h]);
        let dy: &[f32] = match masks.filter(|_| hidden) {
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
        // Attention, per sequence and head.
        threads::attention_backward(
            par,
            shape,
            (&saved.q, &saved.k, &saved.v, &saved.probs, &ws.dctx),
            masks
                .filter(|_| drop.is_some_and(|d| d.attention > 0.0))
                .map(|m| &m[0][..]),
            (&mut ws.dq, &mut ws.dk, &mut ws.dv),
            &mut ws.lanes,
        );
        for (j, (lin, dy)) in [
            (&a.self_attention.query, &ws.dq),
            (&a.self_attention.key, &ws.dk),
            (&a.self_attention.value, &ws.dv),
        ]
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
    }
    // The embeddings: the projection (if any), dropout, LayerNorm, the tables' rows.
    let project = EMBEDDINGS + bert.encoder.layer.len() * PER_LAYER;
    super::embeddings::backward(&bert.embeddings, batch, t, project, ws, grads)
}

/// `out = dy * mask`.
fn masked(out: &mut [f32], dy: &[f32], mask: &[f32]) {
    for ((o, g), m) in out.iter_mut().zip(dy).zip(mask) {
        *o = g * m;
    }
}

/// The attention-probability masks of every sequence and head, in the layout of
/// `LayerSaved::probs`; element `(b, head, i, j)` of the padded `[batch, heads, seq, seq]`.
/// Groups of sequences on `threads` threads (each element is a pure function of its index).
fn attention_mask(
    par: &dyn crate::parallel::Parallel,
    threads: usize,
    mask: &mut [f32],
    seq_len: usize,
    (offsets, packed): (&[usize], &[u32]),
    heads: usize,
    spec: (u64, u64, f32),
) {
    let sequences = offsets.len() - 1;
    if threads >= 2 && sequences >= 2 {
        let cut = sequences / 2;
        let at: usize = (0..cut)
            .map(|b| heads * (offsets[b + 1] - offsets[b]).pow(2))
            .sum();
        let (m1, m2) = mask.split_at_mut(at);
        let half = threads / 2;
        par.join(
            &mut || {
                let rows = (&offsets[..=cut], packed);
                attention_mask(par, half, m1, seq_len, rows, heads, spec)
            },
            &mut || {
                let rows = (&offsets[cut..], packed);
                attention_mask(par, threads - half, m2, seq_len, rows, heads, spec)
            },
        );
        return;
    }
    let (seed, stream, p) = spec;
    let sl = seq_len as u64;
    let mut k = 0;
    for b in 0..sequences {
        let rows = offsets[b]..offsets[b + 1];
        // The sequence's index in the batch, and its real tokens' padded positions.
        let sequence = packed[rows.start] as u64 / sl;
        let pos = |r: usize| packed[r] as u64 % sl;
        for hd in 0..heads as u64 {
            let base = (sequence * heads as u64 + hd) * sl * sl;
            for i in rows.clone() {
                for j in rows.clone() {
                    mask[k] = dropout::factor(seed, stream, base + pos(i) * sl + pos(j), p);
                    k += 1;
                }
            }
        }
    }
}

/// Training runs BERT's block so far: post-norm, absolute positions, token types, embeddings
/// no wider than the hidden width (ELECTRA's narrower ones projected up), exact GELU.
pub(crate) fn check_trainable(bert: &BertModel<'_>) -> Result<()> {
    let arch = &bert.config.arch;
    let emb = &bert.embeddings;
    if arch.block != crate::arch::Block::PostNorm
        || arch.positions != crate::arch::PositionScheme::Absolute
        || emb.token_type_embeddings.is_none()
        || emb.width() > bert.config.hidden_size
        || bert.config.hidden_act != Activation::Gelu
    {
        return Err(Error::Unsupported {
            field: "model_type",
            value: format!("{:?}", arch.family),
            supported:
                "training runs BERT's block (absolute positions, token types, exact GELU) so far",
        });
    }
    Ok(())
}
