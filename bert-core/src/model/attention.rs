//! Attention per sequence over its own packed rows (no padding to mask), split over threads by sequences or query rows.

use super::*;
use crate::kernels::{self, MatMut, MatRef, Rhs};
use crate::parallel::Parallel;

/// The attention of one layer: heads, head width, and the local window (`None`: global).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttentionShape {
    /// Number of heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// Keys at most this many positions from the query are seen (`None`: all).
    pub window: Option<usize>,
}

/// The queries, keys and values of every packed row: each `[tokens, hidden]` at `row_stride`
/// (`hidden` for three buffers, `3 · hidden` for one fused product's output).
#[derive(Clone, Copy)]
pub(crate) struct Qkv<'a> {
    pub(crate) query: &'a [f32],
    pub(crate) key: &'a [f32],
    pub(crate) value: &'a [f32],
    pub(crate) row_stride: usize,
}

impl<'a> Qkv<'a> {
    /// Three separate `[tokens, hidden]` buffers.
    pub(crate) fn separate(
        query: &'a [f32],
        key: &'a [f32],
        value: &'a [f32],
        hidden: usize,
    ) -> Self {
        Qkv {
            query,
            key,
            value,
            row_stride: hidden,
        }
    }

    /// One `[tokens, 3 · hidden]` matrix, rows `[q | k | v]`.
    pub(crate) fn fused(qkv: &'a [f32], hidden: usize) -> Self {
        Qkv {
            query: qkv,
            key: &qkv[hidden..],
            value: &qkv[2 * hidden..],
            row_stride: 3 * hidden,
        }
    }
}

/// Where each sequence's rows are in the packed token matrix.
pub(crate) struct Sequences<'a> {
    /// Sequence `b` is rows `offsets[b]..offsets[b + 1]`.
    pub(crate) offsets: &'a [usize],
    /// With padding kept: the additive mask (`[batch * seq]`, 0 or [`MASKED_SCORE_BIAS`]).
    pub(crate) mask_bias: Option<&'a [f32]>,
}

/// Attention for sequences `seqs` (all their query rows, or only `query_rows` of a single
/// sequence), into `context`, which starts at the first row computed. Split over `threads` by
/// sequences (balanced by tokens) or, for one sequence, by query rows.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_rows(
    par: &dyn Parallel,
    shape: AttentionShape,
    sequences: &Sequences<'_>,
    seqs: core::ops::Range<usize>,
    query_rows: Option<core::ops::Range<usize>>,
    qkv: Qkv<'_>,
    context: &mut [f32],
    threads: &mut [ThreadScratch],
) {
    let h = shape.heads * shape.head_dim;
    let o = sequences.offsets;
    let rows = query_rows.clone().unwrap_or(0..o[seqs.end] - o[seqs.start]);
    if threads.len() >= 2 && rows.len() >= 2 * MIN_ROWS_PER_THREAD {
        let (t1, t2) = threads.split_at_mut(threads.len() / 2);
        if seqs.len() >= 2 {
            // Split the sequences where the first half's share of tokens is reached.
            let target = o[seqs.start] + rows.len() * t1.len() / (t1.len() + t2.len());
            let mid = (seqs.start + 1..seqs.end)
                .find(|&b| o[b] >= target)
                .unwrap_or(seqs.end - 1);
            let (c1, c2) = context.split_at_mut((o[mid] - o[seqs.start]) * h);
            par.join(
                &mut || attention_rows(par, shape, sequences, seqs.start..mid, None, qkv, c1, t1),
                &mut || attention_rows(par, shape, sequences, mid..seqs.end, None, qkv, c2, t2),
            );
        } else {
            let mid = rows.start + rows.len() * t1.len() / (t1.len() + t2.len());
            let (c1, c2) = context.split_at_mut((mid - rows.start) * h);
            let (q1, q2) = (Some(rows.start..mid), Some(mid..rows.end));
            par.join(
                &mut || {
                    attention_rows(par, shape, sequences, seqs.clone(), q1.clone(), qkv, c1, t1)
                },
                &mut || {
                    attention_rows(par, shape, sequences, seqs.clone(), q2.clone(), qkv, c2, t2)
                },
            );
        }
        return;
    }
    let mut context_row = 0;
    for b in seqs {
        let s = o[b + 1] - o[b];
        let q = query_rows.clone().unwrap_or(0..s);
        let out = &mut context[context_row * h..];
        self_attention(shape, sequences, b, q.clone(), qkv, out, &mut threads[0]);
        context_row += q.len();
    }
}

/// `softmax(Q Kᵀ / sqrt(d) [+ mask]) V` for query rows `rows` of sequence `b`, every head,
/// into `context` (which starts at the first of those rows). Each sequence attends only within
/// its own rows; with padding removed there is nothing to mask.
fn self_attention(
    shape: AttentionShape,
    sequences: &Sequences<'_>,
    b: usize,
    rows: core::ops::Range<usize>,
    qkv: Qkv<'_>,
    context: &mut [f32],
    scratch: &mut ThreadScratch,
) {
    let d = shape.head_dim;
    let h = shape.heads * d;
    let scale = 1.0 / libm::sqrtf(d as f32);
    let (r0, s) = (
        sequences.offsets[b],
        sequences.offsets[b + 1] - sequences.offsets[b],
    );
    let m = rows.len();
    let ThreadScratch { gemm, scores, .. } = scratch;
    let scores = &mut scores[..m * s];
    let stride = qkv.row_stride;
    for head in 0..shape.heads {
        let keys = r0 * stride + head * d;
        let queries = keys + rows.start * stride;
        kernels::matmul(
            MatMut::dense(scores, m, s),
            head_slice(qkv.query, queries, m, d, stride),
            Rhs::Dense(head_slice(qkv.key, keys, s, d, stride).t()),
            false,
            scale,
            gemm,
        );
        if let Some(bias) = sequences.mask_bias {
            let bias = &bias[b * s..(b + 1) * s];
            for row in scores.chunks_exact_mut(s) {
                row.iter_mut().zip(bias).for_each(|(x, m)| *x += m);
            }
        }
        if let Some(w) = shape.window {
            // Local attention: a query sees keys at most `w` positions away.
            for (i, row) in scores.chunks_exact_mut(s).enumerate() {
                let q = rows.start + i;
                for (j, x) in row.iter_mut().enumerate() {
                    if q.abs_diff(j) > w {
                        *x = MASKED_SCORE_BIAS;
                    }
                }
            }
        }
        kernels::softmax_rows(scores, s);
        kernels::matmul(
            MatMut {
                data: &mut context[head * d..],
                rows: m,
                cols: d,
                row_stride: h,
            },
            MatRef::dense(scores, m, s),
            Rhs::Dense(head_slice(qkv.value, keys, s, d, stride)),
            false,
            1.0,
            gemm,
        );
    }
}

/// The `[seq, head_dim]` block of one head inside a buffer of rows `row_stride` apart.
fn head_slice(
    buf: &[f32],
    base: usize,
    seq: usize,
    head_dim: usize,
    row_stride: usize,
) -> MatRef<'_> {
    MatRef {
        data: &buf[base..],
        rows: seq,
        cols: head_dim,
        row_stride,
        col_stride: 1,
    }
}
