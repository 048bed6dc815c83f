//! The encoder's share of training, common to every head: the forward over packed real tokens
//! with everything the backward needs saved, the backward from `ws.dx` (the gradient of the
//! last hidden states) down to the embedding tables, and the encoder's gradient buffers.

use alloc::format;

use super::dropout;
use super::ops::activation_backward;
use super::post_norm::{self, LayerStep};
pub(crate) use super::slots::{weight, EncoderSlots};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::model::saves::LayerMasks;
use crate::model::{Batch, BertModel, Sequences};

/// The encoder's gradient buffers (embeddings, then every layer), first in [`Grads`], named
/// by the family's tensor names as PyTorch names the parameters of a task model.
pub(crate) fn encoder_grads(bert: &BertModel<'_>, g: &mut Grads) {
    let c = &bert.config;
    let n = crate::families::names(c.arch.family);
    let p = n.prefix;
    let e = &bert.embeddings;
    let w = e.width();
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
    g.push(format!("{p}{}.weight", n.embeddings_norm), &[w]);
    g.push(format!("{p}{}.bias", n.embeddings_norm), &[w]);
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
            g.push(
                format!("{base}.{name}.weight"),
                &[lin.weight.rows, lin.weight.cols],
            );
            g.push(format!("{base}.{name}.bias"), &[lin.out_features()]);
            if let Some(norm) = norm {
                g.push(format!("{base}.{norm}.weight"), &[c.hidden_size]);
                g.push(format!("{base}.{norm}.bias"), &[c.hidden_size]);
            }
        }
    }
    if let Some(project) = &e.project {
        let name = n.embeddings_project.unwrap_or("embeddings_project");
        g.push(format!("{p}{name}.weight"), &[c.hidden_size, w]);
        g.push(format!("{p}{name}.bias"), &[project.out_features()]);
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
    let (h, heads) = (c.hidden_size, c.num_attention_heads);
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
                    // DistilBERT's attention block has no output dropout: no mask to draw.
                    let attn = attention_output_dropout(c.arch.family).then_some(&mut *m_attn);
                    let masks = attn.map(|m| (m, s_attn)).into_iter();
                    for (mask, stream) in masks.chain([(&mut *m_ffn, s_ffn)]) {
                        let spec = (d.seed, stream, d.hidden);
                        let mask = &mut mask[..t * h];
                        threads::fill_rows(par, lanes, mask, &ws.packed[..t], h, spec);
                    }
                }
                LayerMasks {
                    probs: attention.map(|_| &m_probs[..]),
                    attention: hidden
                        .filter(|_| attention_output_dropout(c.arch.family))
                        .map(|_| &m_attn[..t * h]),
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
    let drop = ws.dropout;
    let hidden = drop.is_some_and(|d| d.hidden > 0.0);
    let dropout = [
        hidden && attention_output_dropout(c.arch.family),
        hidden,
        drop.is_some_and(|d| d.attention > 0.0),
    ];
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
    // The embeddings: the projection (if any), dropout, LayerNorm, the tables' rows.
    super::embeddings::backward(bert, batch, t, &slots, ws, grads)
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

/// Training runs the post-norm block (BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT) with
/// f32 weights and an activation it has the backward of.
pub(crate) fn check_trainable(bert: &BertModel<'_>) -> Result<()> {
    let arch = &bert.config.arch;
    if arch.block != crate::arch::Block::PostNorm {
        return Err(Error::Unsupported {
            field: "model_type",
            value: format!("{:?}", arch.family),
            supported: "post-norm families (BERT, RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT) \
                        for training so far",
        });
    }
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
