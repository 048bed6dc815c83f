//! The encoder's share of training, common to every head: the forward over packed real tokens
//! with everything the backward needs saved, the backward from `ws.dx` (the gradient of the
//! last hidden states) down to the embedding tables, and the encoder's gradient buffers.

use alloc::format;

use super::dropout::{self, Dropout};
use super::ops::activation_backward;
use super::ops::ActivationBackward;
use super::post_norm::{self, LayerStep};
use super::pre_norm::{self, PreNormStep};
pub(crate) use super::slots::{weight, EncoderSlots};
use super::slots::{Pair, PreNormSlots};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::arch::{Block, PreNorm};
use crate::error::{Error, Result};
use crate::model::saves::LayerMasks;
use crate::model::{Batch, BertModel, Sequences};

/// The encoder's gradient buffers (embeddings, then every layer), first in [`Grads`], named
/// by the family's tensor names as PyTorch names the parameters of a task model, in the
/// order of [`EncoderSlots`].
pub(crate) fn encoder_grads(bert: &BertModel<'_>, g: &mut Grads) {
    let c = &bert.config;
    let n = crate::families::names(c.arch.family);
    let p = n.prefix;
    let e = &bert.embeddings;
    let w = e.width();
    let norm_bias = match &c.arch.block {
        Block::PostNorm => true,
        Block::PreNorm(pre) => pre.norm_bias,
    };
    g.push(
        format!("{p}{}.weight", n.word_embeddings),
        &[e.word_embeddings.weight.rows, w],
    );
    if let Some(t) = &e.position_embeddings {
        let name = format!("{p}{}.weight", n.position_embeddings);
        g.push(name, &[t.weight.rows, w]);
    }
    if let Some(t) = &e.token_type_embeddings {
        let name = format!("{p}{}.weight", n.token_type_embeddings);
        g.push(name, &[t.weight.rows, w]);
    }
    push_norm(g, &format!("{p}{}", n.embeddings_norm), w, norm_bias);
    for (l, layer) in bert.encoder.layer.iter().enumerate() {
        let base = format!("{p}{}.{l}", n.layers);
        let [q, k, v, o, i, out] = layer.linears();
        let norms = [n.attention_norm, n.output_norm];
        for (name, lin, norm) in [
            (n.query, q, None),
            (n.key, k, None),
            (n.value, v, None),
            (n.attention_out, o, Some(norms[0])),
            (n.intermediate, i, None),
            (n.output, out, Some(norms[1])),
        ] {
            push_linear(g, &format!("{base}.{name}"), lin, true);
            if let Some(norm) = norm {
                push_norm(g, &format!("{base}.{norm}"), c.hidden_size, true);
            }
        }
    }
    if let Block::PreNorm(pre) = &c.arch.block {
        for (l, layer) in bert.encoder.pre_norm.iter().enumerate() {
            let base = format!("{p}{}.{l}", n.layers);
            let (h, nb, b) = (c.hidden_size, pre.norm_bias, pre.biases);
            if layer.attn_norm.is_some() {
                push_norm(g, &format!("{base}.{}", n.attention_norm), h, nb);
            }
            push_linear(g, &format!("{base}.{}", n.query), &layer.qkv, b);
            push_linear(
                g,
                &format!("{base}.{}", n.attention_out),
                &layer.attention_out,
                b,
            );
            push_norm(g, &format!("{base}.{}", n.output_norm), h, nb);
            push_linear(g, &format!("{base}.{}", n.intermediate), &layer.mlp_in, b);
            push_linear(g, &format!("{base}.{}", n.output), &layer.mlp_out, b);
        }
        if let (Some(name), Some(_)) = (n.final_norm, &bert.encoder.final_norm) {
            push_norm(g, &format!("{p}{name}"), c.hidden_size, pre.norm_bias);
        }
    }
    if let Some(project) = &e.project {
        let name = n.embeddings_project.unwrap_or("embeddings_project");
        push_linear(g, &format!("{p}{name}"), project, true);
    }
}

/// A linear layer's gradient buffers: `{name}.weight` and, with `bias`, `{name}.bias`; their
/// slots.
pub(crate) fn push_linear(
    g: &mut Grads,
    name: &str,
    lin: &crate::nn::Linear<'_>,
    bias: bool,
) -> Pair {
    let (rows, cols) = (lin.weight.rows, lin.weight.cols);
    Pair {
        weight: g.push(format!("{name}.weight"), &[rows, cols]),
        bias: bias.then(|| g.push(format!("{name}.bias"), &[rows])),
    }
}

/// A norm's gradient buffers: `{name}.weight` and, with `bias`, `{name}.bias`; their slots.
pub(crate) fn push_norm(g: &mut Grads, name: &str, width: usize, bias: bool) -> Pair {
    Pair {
        weight: g.push(format!("{name}.weight"), &[width]),
        bias: bias.then(|| g.push(format!("{name}.bias"), &[width])),
    }
}

/// Gradient slots of the encoder (embeddings, every layer, the embeddings' projection if
/// any): a head's parameters come after them.
pub(crate) fn encoder_slots(bert: &BertModel<'_>) -> usize {
    EncoderSlots::of(bert).end
}

/// Embeddings and every layer over the real tokens of `batch`, packed; saves activations.
/// Returns the number of packed rows; `ws.x` holds the last hidden states.
pub(crate) fn encoder_forward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    ws: &mut TrainWorkspace,
) -> Result<usize> {
    let c = &bert.config;
    // Every id in range (a token type the model has no row for is an error, not a panic).
    batch.validate(c)?;
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
    match &c.arch.block {
        Block::PostNorm => post_norm_layers(bert, batch, t, ws),
        Block::PreNorm(_) => pre_norm_layers(bert, batch, t, ws),
    }
    Ok(t)
}

/// Every post-norm layer over the `t` packed rows of `ws.x`, with this step's dropout masks.
fn post_norm_layers(bert: &BertModel<'_>, batch: &Batch<'_>, t: usize, ws: &mut TrainWorkspace) {
    let c = &bert.config;
    let par = ws.par;
    let sequences = Sequences {
        offsets: &ws.offsets[..=batch.batch_size],
        mask_bias: None,
    };
    let drops = ws.dropout.map(|d| LayerDrops::of(c, d));
    for (l, (layer, saved)) in bert
        .encoder
        .layer
        .iter()
        .zip(ws.layers.iter_mut())
        .enumerate()
    {
        let rows = (sequences.offsets, &ws.packed[..t], batch.seq_len);
        let m = ws.masks.layers.get_mut(l);
        let masks = draw_layer_masks(par, ws.lanes.len(), m, (l, drops), rows, c);
        let buffers = saved.buffers(masks);
        layer.run(par, &mut ws.lanes, &sequences, t, &mut ws.x, buffers);
    }
}

/// Every pre-norm layer over the `t` packed rows of `ws.x`, then the final norm, saving, with
/// ModernBERT's dropouts: on the attention probabilities and the attention output
/// (`attention_dropout`), and on the gated product (`mlp_dropout`, here `hidden`).
fn pre_norm_layers(bert: &BertModel<'_>, batch: &Batch<'_>, t: usize, ws: &mut TrainWorkspace) {
    let c = &bert.config;
    let h = c.hidden_size;
    let par = ws.par;
    let sequences = Sequences {
        offsets: &ws.offsets[..=batch.batch_size],
        mask_bias: None,
    };
    let drops = ws.dropout.map(|d| LayerDrops::of(c, d));
    let positions = (&ws.packed[..t], batch.seq_len);
    for (l, (layer, saved)) in bert
        .encoder
        .pre_norm
        .iter()
        .zip(ws.pre_layers.iter_mut())
        .enumerate()
    {
        let rows = (sequences.offsets, &ws.packed[..t], batch.seq_len);
        let m = ws.masks.layers.get_mut(l);
        let masks = draw_layer_masks(par, ws.lanes.len(), m, (l, drops), rows, c);
        let buffers = saved.buffers(masks);
        layer.run(
            par,
            &mut ws.lanes,
            &sequences,
            positions,
            &mut ws.x,
            buffers,
        );
    }
    if let Some(norm) = &bert.encoder.final_norm {
        let (xhat, rstd) = &mut ws.final_norm;
        threads::layer_norm_save(
            par,
            ws.lanes.len(),
            &mut ws.x[..t * h],
            (&norm.weight, &norm.bias, norm.eps),
            &mut xhat[..t * h],
            &mut rstd[..t],
        );
    }
}

/// Which of a layer's dropouts are on this step: the attention probabilities' (its
/// probability), and two over the packed rows, after the attention's output product and in
/// the feed-forward block (each its probability and the mask's width).
#[derive(Debug, Clone, Copy)]
struct LayerDrops {
    /// The step's seed.
    seed: u64,
    probs: Option<f32>,
    out: Option<(f32, usize)>,
    ffn: Option<(f32, usize)>,
}

impl LayerDrops {
    /// Where the family's layers drop out under `d`. Post-norm: `attention` on the
    /// probabilities, `hidden` after the attention output (not DistilBERT's) and after the
    /// feed-forward output. Pre-norm (ModernBERT): `attention` on the probabilities and after
    /// the attention output, `hidden` (its `mlp_dropout`) on the gated product.
    fn of(c: &crate::BertConfig, d: Dropout) -> Self {
        let on = |p: f32| (p > 0.0).then_some(p);
        let h = c.hidden_size;
        let (out, ffn) = match c.arch.block {
            Block::PostNorm => (
                on(d.hidden).filter(|_| attention_output_dropout(c.arch.family)),
                (on(d.hidden), h),
            ),
            Block::PreNorm(_) => (on(d.attention), (on(d.hidden), c.intermediate_size)),
        };
        LayerDrops {
            seed: d.seed,
            probs: on(d.attention),
            out: out.map(|p| (p, h)),
            ffn: ffn.0.map(|p| (p, ffn.1)),
        }
    }

    /// Which masks the backward applies: after the attention output, in the feed-forward
    /// block, on the probabilities (none without dropout).
    fn applied(c: &crate::BertConfig, d: Option<Dropout>) -> [bool; 3] {
        d.map(|d| Self::of(c, d)).map_or([false; 3], |l| {
            [l.out.is_some(), l.ffn.is_some(), l.probs.is_some()]
        })
    }
}

/// Layer `l`'s masks for this step, drawn into `m` (probabilities, attention output,
/// feed-forward) from the layer's streams ([`dropout::layer_streams`]) over the packed rows
/// `rows` (sequence offsets, padded indices, padded length); none without dropout.
fn draw_layer_masks<'m>(
    par: &dyn crate::parallel::Parallel,
    lanes: usize,
    m: Option<&'m mut [alloc::vec::Vec<f32>; 3]>,
    (l, drops): (usize, Option<LayerDrops>),
    (offsets, packed, seq_len): (&[usize], &[u32], usize),
    c: &crate::BertConfig,
) -> LayerMasks<'m> {
    let (Some(m), Some(drops)) = (m, drops) else {
        return LayerMasks::default();
    };
    let (t, seed) = (packed.len(), drops.seed);
    let [m_probs, m_out, m_ffn] = m;
    let [s_probs, s_out, s_ffn] = dropout::layer_streams(l);
    if let Some(p) = drops.probs {
        let heads = c.num_attention_heads;
        let spec = (seed, s_probs, p);
        attention_mask(par, lanes, m_probs, seq_len, (offsets, packed), heads, spec);
    }
    for (mask, stream, drop) in [
        (&mut *m_out, s_out, drops.out),
        (&mut *m_ffn, s_ffn, drops.ffn),
    ] {
        if let Some((p, width)) = drop {
            let mask = &mut mask[..t * width];
            threads::fill_rows(par, lanes, mask, packed, width, (seed, stream, p));
        }
    }
    LayerMasks {
        probs: drops.probs.map(|_| &m_probs[..]),
        attention: drops.out.map(|(_, w)| &m_out[..t * w]),
        ffn: drops.ffn.map(|(_, w)| &m_ffn[..t * w]),
    }
}

/// The backward from `ws.dx` (`[t, hidden]`, the gradient of the last hidden states) through
/// every layer ([`post_norm`](super::post_norm), in reverse) and the embeddings, into `grads`.
pub(crate) fn encoder_backward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let c = &bert.config;
    let (heads, d) = (c.num_attention_heads, c.head_dim());
    let t = ws.offsets[batch.batch_size];
    let slots = EncoderSlots::of(bert);
    let activation = activation_backward(c.hidden_act).ok_or_else(|| unsupported_act(bert))?;
    let dropout = LayerDrops::applied(c, ws.dropout);
    for (index, layer) in bert.encoder.layer.iter().enumerate().rev() {
        let step = LayerStep {
            layer,
            index,
            base: slots.layer(index),
            tokens: t,
            sequences: batch.batch_size,
            heads: (heads, d),
            activation,
            dropout,
        };
        post_norm::ffn(&step, ws, grads)?;
        post_norm::attention(&step, ws, grads)?;
    }
    if let Block::PreNorm(pre) = &c.arch.block {
        pre_norm_backward(bert, batch, (pre, &slots, activation), ws, grads)?;
    }
    // The embeddings: the projection (if any), dropout, LayerNorm, the tables' rows.
    super::embeddings::backward(bert, batch, t, &slots, ws, grads)
}

/// The pre-norm encoder's backward from `ws.dx` (the gradient of the final norm's output):
/// the final norm, then every layer ([`pre_norm`](super::pre_norm), in reverse).
fn pre_norm_backward(
    bert: &BertModel<'_>,
    batch: &Batch<'_>,
    (pre, slots, activation): (&PreNorm, &EncoderSlots, ActivationBackward),
    ws: &mut TrainWorkspace,
    grads: &mut Grads,
) -> Result<()> {
    let h = bert.config.hidden_size;
    let t = ws.offsets[batch.batch_size];
    let dropout = LayerDrops::applied(&bert.config, ws.dropout);
    if let (Some(norm), Some(pair)) = (&bert.encoder.final_norm, slots.final_norm) {
        let (gw, gb) = pair.of(grads);
        let (xhat, rstd) = &ws.final_norm;
        threads::layer_norm_backward(
            ws.par,
            ws.lanes.len(),
            (&ws.dx[..t * h], &xhat[..t * h], &rstd[..t]),
            &norm.weight,
            &mut ws.da[..t * h],
            false,
            gw,
            gb,
        );
        ws.dx[..t * h].copy_from_slice(&ws.da[..t * h]);
    }
    for (index, layer) in bert.encoder.pre_norm.iter().enumerate().rev() {
        let step = PreNormStep {
            layer,
            index,
            slots: PreNormSlots::at(slots.layer(index), pre, index == 0),
            tokens: t,
            sequences: batch.batch_size,
            seq_len: batch.seq_len,
            activation,
            dropout,
        };
        pre_norm::ffn(&step, ws, grads)?;
        pre_norm::attention(&step, ws, grads)?;
    }
    Ok(())
}

/// The attention-probability masks of every sequence and head, in the layout of
/// `PostNormSaved::probs`; element `(b, head, i, j)` of the padded `[batch, heads, seq, seq]`.
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

/// Whether the family's attention block drops out its output projection before the residual
/// (all but DistilBERT, whose `MultiHeadSelfAttention` has no dropout there).
fn attention_output_dropout(family: crate::arch::Family) -> bool {
    family != crate::arch::Family::DistilBert
}

fn unsupported_act(bert: &BertModel<'_>) -> Error {
    Error::Unsupported {
        field: "hidden_act",
        value: format!("{:?}", bert.config.hidden_act),
        supported: "gelu, gelu_new (tanh) or relu for training",
    }
}

/// Training runs both blocks (post-norm: BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT;
/// pre-norm: ModernBERT) with f32 weights and an activation it has the backward of.
pub(crate) fn check_trainable(bert: &BertModel<'_>) -> Result<()> {
    activation_backward(bert.config.hidden_act).ok_or_else(|| unsupported_act(bert))?;
    // The workspace's embedding-width buffers are sized by the hidden width: ELECTRA's
    // embeddings are narrower (projected up), never wider.
    if bert.embeddings.width() > bert.config.hidden_size {
        return Err(Error::Unsupported {
            field: "embedding_size",
            value: format!("{}", bert.embeddings.width()),
            supported: "at most hidden_size for training",
        });
    }
    Ok(())
}
