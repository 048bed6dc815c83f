//! The encoder's share of training, common to every head: the forward over packed real tokens
//! with everything the backward needs saved, the backward from `ws.dx` (the gradient of the
//! last hidden states) down to the embedding tables, and the encoder's gradient buffers.

use alloc::format;

use super::dropout;
use super::ops::gelu_backward;
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::model::saves::LayerMasks;
use crate::model::{Batch, BertModel, Sequences};
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
    let (h, heads) = (c.hidden_size, c.num_attention_heads);
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
    let drop = ws.dropout;
    let hidden = drop.filter(|d| d.hidden > 0.0);
    let attention = drop.filter(|d| d.attention > 0.0);
    let lanes = ws.lanes.len();
    let sequences = Sequences {
        offsets: &ws.offsets[..=batch.batch_size],
        mask_bias: None,
    };
    for (l, (layer, saved)) in bert
        .encoder
        .layer
        .iter()
        .zip(ws.layers.iter_mut())
        .enumerate()
    {
        // This step's dropout masks for the layer (allocated once dropout is on), then the layer.
        let masks = match ws.masks.layers.get_mut(l).filter(|_| drop.is_some()) {
            Some([m_probs, m_attn, m_ffn]) => {
                let [s_probs, s_attn, s_ffn] = dropout::layer_streams(l);
                if let Some(d) = attention {
                    let rows = (sequences.offsets, &ws.packed[..t]);
                    let spec = (d.seed, s_probs, d.attention);
                    attention_mask(par, lanes, m_probs, batch.seq_len, rows, heads, spec);
                }
                if let Some(d) = hidden {
                    for (mask, stream) in [(&mut *m_attn, s_attn), (&mut *m_ffn, s_ffn)] {
                        let spec = (d.seed, stream, d.hidden);
                        let mask = &mut mask[..t * h];
                        threads::fill_rows(par, lanes, mask, &ws.packed[..t], h, spec);
                    }
                }
                LayerMasks {
                    probs: attention.map(|_| &m_probs[..]),
                    attention: hidden.map(|_| &m_attn[..t * h]),
                    ffn: hidden.map(|_| &m_ffn[..t * h]),
                }
            }
            None => LayerMasks::default(),
        };
        let buffers = saved.buffers(masks);
        layer.run(par, &mut ws.lanes, &sequences, t, &mut ws.x, buffers);
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
        let [q, k, v] = saved.qkv();
        threads::attention_backward(
            par,
            shape,
            (q, k, v, &saved.probs, &ws.dctx),
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
