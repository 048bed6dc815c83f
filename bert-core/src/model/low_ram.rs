//! The low-RAM forward, for parts with a few hundred KB of RAM (TFLite Micro's way: one arena
//! the caller gives, sized in advance): one sequence at a time, every weight read where it lies
//! (int8 in flash included; nothing packed), Q / attention / FFN one block of
//! [`ROW_BLOCK`] rows at a time (no `[tokens, intermediate]` activation, no `seq × seq` scores:
//! one query row's scores at a time), and only the mean-pooled vector at the end.
//!
//! What stays for every token is the hidden state and the keys and values (`3 · tokens ·
//! hidden` f32); [`LowRamPlan::arena_len`] counts the rest, from the shape alone, in a `const
//! fn`, so firmware can size a `static` arena at compile time.
//!
//! ```
//! use bert_core::model::low_ram::{sentence_embedding, LowRamPlan};
//! # let (config, file) = bert_core::model::low_ram::doc_model();
//! # let weights = bert_core::Weights::from_buffers(&[&file]).unwrap();
//! # let model = bert_core::BertModel::load(&config, &weights).unwrap();
//! // For a model of hidden 4, FFN 8, at most 6 tokens:
//! const ARENA: usize = LowRamPlan::new(4, 8, 6).arena_len();
//! let mut arena = [0.0f32; ARENA];
//! let out = sentence_embedding(&model, &[1, 2, 3], &mut arena)?;
//! assert_eq!(out.mean.len(), 4);
//! # Ok::<(), bert_core::Error>(())
//! ```

use alloc::format;

use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels;
use crate::kernels::rowwise::{self, product};
use crate::nn::Linear;

use super::layer::BertLayer;
use super::rows::Epilogue;
use super::{Batch, BertModel};

/// Rows computed together (the products' row block).
pub const ROW_BLOCK: usize = rowwise::ROWS;

/// The sizes the arena is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowRamPlan {
    /// `hidden_size`.
    pub hidden: usize,
    /// The FFN's width (`intermediate_size`).
    pub intermediate: usize,
    /// Most tokens a sequence may have.
    pub max_tokens: usize,
}

impl LowRamPlan {
    /// The plan for a model of this hidden and FFN width, at up to `max_tokens` tokens.
    pub const fn new(hidden: usize, intermediate: usize, max_tokens: usize) -> Self {
        LowRamPlan {
            hidden,
            intermediate,
            max_tokens,
        }
    }

    /// The plan for `config` at up to `max_tokens` tokens.
    pub fn of(config: &BertConfig, max_tokens: usize) -> Self {
        Self::new(config.hidden_size, config.feed_forward_width(), max_tokens)
    }

    /// f32 elements of the arena: hidden states, keys and values of every token; a block's
    /// queries (later its attention output), context and FFN activation; one row of scores;
    /// a row for the embeddings; the products' scratch.
    pub const fn arena_len(&self) -> usize {
        let (t, h, i, r) = (self.max_tokens, self.hidden, self.intermediate, ROW_BLOCK);
        let widest = if h > i { h } else { i };
        3 * t * h + 2 * r * h + r * i + t + h + rowwise::scratch_len(r, widest)
    }

    /// Bytes of the arena.
    pub const fn arena_bytes(&self) -> usize {
        4 * self.arena_len()
    }
}

/// What [`sentence_embedding`] returns: views into the arena.
#[derive(Debug)]
pub struct LowRamOutput<'w> {
    /// `[tokens, hidden]`: the last layer's hidden states.
    pub last_hidden_state: &'w [f32],
    /// `[hidden]`: their mean (sentence-transformers' mean pooling of one unpadded sequence).
    pub mean: &'w [f32],
}

/// The arena cut into its buffers.
struct Arena<'w> {
    hidden: &'w mut [f32],
    keys: &'w mut [f32],
    values: &'w mut [f32],
    block: &'w mut [f32],
    context: &'w mut [f32],
    ffn: &'w mut [f32],
    scores: &'w mut [f32],
    row: &'w mut [f32],
    scratch: &'w mut [f32],
}

fn take<'w>(rest: &mut &'w mut [f32], n: usize) -> &'w mut [f32] {
    let (head, tail) = core::mem::take(rest).split_at_mut(n);
    *rest = tail;
    head
}

impl<'w> Arena<'w> {
    fn cut(plan: LowRamPlan, arena: &'w mut [f32]) -> Self {
        let (t, h, i, r) = (plan.max_tokens, plan.hidden, plan.intermediate, ROW_BLOCK);
        let mut rest = arena;
        Arena {
            hidden: take(&mut rest, t * h),
            keys: take(&mut rest, t * h),
            values: take(&mut rest, t * h),
            block: take(&mut rest, r * h),
            context: take(&mut rest, r * h),
            ffn: take(&mut rest, r * i),
            scores: take(&mut rest, t),
            row: take(&mut rest, h),
            scratch: rest,
        }
    }
}

/// Why `model` cannot run in the low-RAM mode, if it cannot.
fn check_model(model: &BertModel<'_>) -> Result<()> {
    let unsupported = |value: &str| Error::Unsupported {
        field: "low-RAM forward",
        value: value.into(),
        supported: "post-norm (BERT-style) encoders whose weights are kept, not only packed",
    };
    if !model.encoder.pre_norm.is_empty() {
        return Err(unsupported("a pre-norm (ModernBERT-style) encoder"));
    }
    let kept = |l: &Linear<'_>| l.weight.storage.len() == l.weight.rows * l.weight.cols;
    let layers_kept = model
        .encoder
        .layer
        .iter()
        .all(|l| l.linears().into_iter().all(kept));
    if !layers_kept || !model.embeddings.project.as_ref().is_none_or(kept) {
        return Err(unsupported(
            "a model whose weights were dropped after packing",
        ));
    }
    Ok(())
}

/// Run `model` over one sequence `input_ids` (token type 0, no padding) inside `arena`
/// (at least [`LowRamPlan::arena_len`] of the model's plan for this many tokens): its last
/// hidden states and their mean. Allocates nothing.
pub fn sentence_embedding<'w>(
    model: &BertModel<'_>,
    input_ids: &[u32],
    arena: &'w mut [f32],
) -> Result<LowRamOutput<'w>> {
    check_model(model)?;
    let c = &model.config;
    let t = input_ids.len();
    let batch = Batch::single(input_ids);
    batch.validate(c)?;
    let plan = LowRamPlan::of(c, t);
    if arena.len() < plan.arena_len() {
        return Err(Error::InvalidInput(format!(
            "the low-RAM arena holds {} f32 values; {t} tokens need {}",
            arena.len(),
            plan.arena_len()
        )));
    }
    let mut a = Arena::cut(plan, arena);
    embed(model, &batch, &mut a);
    for layer in &model.encoder.layer {
        layer_forward(layer, t, &mut a);
    }
    let h = c.hidden_size;
    let mean = &mut a.row[..h];
    mean.fill(0.0);
    for token in a.hidden[..t * h].chunks_exact(h) {
        mean.iter_mut().zip(token).for_each(|(m, x)| *m += x);
    }
    mean.iter_mut().for_each(|m| *m /= t as f32);
    Ok(LowRamOutput {
        last_hidden_state: &a.hidden[..t * h],
        mean,
    })
}

/// The embeddings of every token into `a.hidden`, a block at a time when they are projected
/// up (ELECTRA's narrower tables).
fn embed(model: &BertModel<'_>, batch: &Batch<'_>, a: &mut Arena<'_>) {
    let e = &model.embeddings;
    let t = batch.num_tokens();
    let h = model.config.hidden_size;
    let Some(project) = &e.project else {
        return e.forward_tokens(batch, 0..t, a.hidden, a.row);
    };
    let width = e.width();
    for r0 in (0..t).step_by(ROW_BLOCK) {
        let rows = ROW_BLOCK.min(t - r0);
        e.forward_tokens(batch, r0..r0 + rows, a.block, a.row);
        let out = &mut a.hidden[r0 * h..(r0 + rows) * h];
        let bias = project.bias.as_deref();
        product(&project.weight, bias, a.block, rows, out, a.scratch);
        debug_assert!(width <= h);
    }
}

/// `linear` over `rows` rows of `x` into `out`, a row block at a time.
fn linear_blocks(linear: &Linear<'_>, x: &[f32], rows: usize, out: &mut [f32], s: &mut [f32]) {
    let (k, n) = (linear.in_features(), linear.out_features());
    let bias = linear.bias.as_deref();
    for r0 in (0..rows).step_by(ROW_BLOCK) {
        let m = ROW_BLOCK.min(rows - r0);
        let o = &mut out[r0 * n..(r0 + m) * n];
        product(&linear.weight, bias, &x[r0 * k..(r0 + m) * k], m, o, s);
    }
}

/// One post-norm layer over the `t` rows of `a.hidden`, in place: the keys and values of
/// every row first, then each block of rows through attention and the FFN.
fn layer_forward(layer: &BertLayer<'_>, t: usize, a: &mut Arena<'_>) {
    let sa = &layer.attention.self_attention;
    let h = sa.query.out_features();
    let i = layer.intermediate.dense.out_features();
    linear_blocks(&sa.key, a.hidden, t, a.keys, a.scratch);
    linear_blocks(&sa.value, a.hidden, t, a.values, a.scratch);
    for r0 in (0..t).step_by(ROW_BLOCK) {
        let m = ROW_BLOCK.min(t - r0);
        let rows = r0 * h..(r0 + m) * h;
        let (queries, context) = (&mut a.block[..m * h], &mut a.context[..m * h]);
        linear_blocks(&sa.query, &a.hidden[rows.clone()], m, queries, a.scratch);
        for (q, ctx) in queries.chunks_exact(h).zip(context.chunks_exact_mut(h)) {
            attend(
                sa.num_attention_heads,
                q,
                &a.keys[..t * h],
                &a.values[..t * h],
                a.scores,
                ctx,
            );
        }
        // The attention output (over the queries, no longer needed) + residual, normalized.
        let attention = &mut a.block[..m * h];
        linear_blocks(
            &layer.attention.output.dense,
            context,
            m,
            attention,
            a.scratch,
        );
        let norm = &layer.attention.output.layer_norm;
        Epilogue::AddNorm(&a.hidden[rows.clone()], norm).apply(attention);
        let ffn = &mut a.ffn[..m * i];
        linear_blocks(&layer.intermediate.dense, attention, m, ffn, a.scratch);
        Epilogue::Activation(layer.intermediate.intermediate_act_fn).apply(ffn);
        // This block's rows are no longer read (keys and values are done): overwrite them.
        let out = &mut a.hidden[rows];
        linear_blocks(&layer.output.dense, ffn, m, out, a.scratch);
        Epilogue::AddNorm(attention, &layer.output.layer_norm).apply(out);
    }
}

/// `softmax(q Kᵀ / sqrt(d)) V` for one query row, every head, into `context`; `scores` holds
/// one head's row at a time.
fn attend(
    heads: usize,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scores: &mut [f32],
    context: &mut [f32],
) {
    let h = q.len();
    let d = h / heads;
    let t = keys.len() / h;
    let scale = 1.0 / libm::sqrtf(d as f32);
    let scores = &mut scores[..t];
    for head in 0..heads {
        let span = head * d..(head + 1) * d;
        for (j, s) in scores.iter_mut().enumerate() {
            let k = &keys[j * h + span.start..j * h + span.end];
            *s = scale
                * q[span.clone()]
                    .iter()
                    .zip(k)
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
        }
        kernels::softmax_in_place(scores);
        let ctx = &mut context[span.clone()];
        ctx.fill(0.0);
        for (j, &p) in scores.iter().enumerate() {
            let v = &values[j * h + span.start..j * h + span.end];
            ctx.iter_mut().zip(v).for_each(|(c, v)| *c += p * v);
        }
    }
}

/// The tiny model of the doc example (hidden 4, FFN 8, 6 positions), as a config and a
/// safetensors file.
#[doc(hidden)]
pub fn doc_model() -> (BertConfig, alloc::vec::Vec<u8>) {
    super::tiny::tiny_model_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quantize::{quantize, QuantDtype};
    use crate::weights::Weights;
    use alloc::vec;

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn the_low_ram_forward_gives_the_normal_forwards_hidden_states() {
        let (config, f32_file) = doc_model();
        let int8_file = quantize(&[&f32_file], QuantDtype::Int8).unwrap();
        // Six tokens: a full row block and a partial one.
        let ids = [1, 2, 3, 4, 5, 6];
        for (file, tolerance) in [(&f32_file, 1e-5), (&int8_file, 1e-4)] {
            let weights = Weights::from_buffers(&[file]).unwrap();
            let model = BertModel::load(&config, &weights).unwrap();
            let mut ws = model.workspace(1, ids.len()).unwrap();
            let want = model.forward(&Batch::single(&ids), &mut ws).unwrap();
            let want = want.last_hidden_state.to_vec();
            let mut arena = vec![0.0; LowRamPlan::of(&config, ids.len()).arena_len()];
            let got = sentence_embedding(&model, &ids, &mut arena).unwrap();
            let d = max_diff(got.last_hidden_state, &want);
            assert!(d <= tolerance, "max abs diff {d}");
            let mean: vec::Vec<f32> = (0..4)
                .map(|c| want.chunks(4).map(|r| r[c]).sum::<f32>() / ids.len() as f32)
                .collect();
            assert!(max_diff(got.mean, &mean) <= tolerance);
        }
    }

    #[test]
    fn a_short_arena_or_a_bad_id_is_an_error_not_a_panic() {
        let (config, file) = doc_model();
        let weights = Weights::from_buffers(&[&file]).unwrap();
        let model = BertModel::load(&config, &weights).unwrap();
        let need = LowRamPlan::of(&config, 3).arena_len();
        let mut arena = vec![0.0; need - 1];
        let err = sentence_embedding(&model, &[1, 2, 3], &mut arena).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let mut arena = vec![0.0; need];
        assert!(sentence_embedding(&model, &[1, 2, 99], &mut arena).is_err());
        assert!(sentence_embedding(&model, &[], &mut arena).is_err());
    }
}
