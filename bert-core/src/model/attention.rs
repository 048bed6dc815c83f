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
    save: Option<ProbsSave<'_>>,
    threads: &mut [ThreadScratch],
) {
    let h = shape.heads * shape.head_dim;
    let o = sequences.offsets;
    let rows = query_rows.clone().unwrap_or(0..o[seqs.end] - o[seqs.start]);
    // Saved probabilities are whole `[heads, n, n]` blocks: sequences are not cut by rows.
    let splits = seqs.len() >= 2 || save.is_none();
    if threads.len() >= 2 && rows.len() >= 2 * MIN_ROWS_PER_THREAD && splits {
        let (t1, t2) = threads.split_at_mut(threads.len() / 2);
        if seqs.len() >= 2 {
            // Split the sequences where the first half's share of tokens is reached.
            let target = o[seqs.start] + rows.len() * t1.len() / (t1.len() + t2.len());
            let mid = (seqs.start + 1..seqs.end)
                .find(|&b| o[b] >= target)
                .unwrap_or(seqs.end - 1);
            let (c1, c2) = context.split_at_mut((o[mid] - o[seqs.start]) * h);
            let at = probs_between(sequences, seqs.start..mid, shape.heads);
            let (mut s1, mut s2) = match save.map(|s| s.split_at(at)) {
                Some((a, b)) => (Some(a), Some(b)),
                None => (None, None),
            };
            let (first, second) = (seqs.start..mid, mid..seqs.end);
            par.join(
                &mut || {
                    let (s, f) = (s1.take(), first.clone());
                    attention_rows(par, shape, sequences, f, None, qkv, c1, s, t1)
                },
                &mut || {
                    let (s, r) = (s2.take(), second.clone());
                    attention_rows(par, shape, sequences, r, None, qkv, c2, s, t2)
                },
            );
        } else {
            let mid = rows.start + rows.len() * t1.len() / (t1.len() + t2.len());
            let (c1, c2) = context.split_at_mut((mid - rows.start) * h);
            let (q1, q2) = (Some(rows.start..mid), Some(mid..rows.end));
            par.join(
                &mut || {
                    let (s, q) = (seqs.clone(), q1.clone());
                    attention_rows(par, shape, sequences, s, q, qkv, c1, None, t1)
                },
                &mut || {
                    let (s, q) = (seqs.clone(), q2.clone());
                    attention_rows(par, shape, sequences, s, q, qkv, c2, None, t2)
                },
            );
        }
        return;
    }
    let mut context_row = 0;
    let mut save = save;
    for b in seqs {
        let s = o[b + 1] - o[b];
        let q = query_rows.clone().unwrap_or(0..s);
        let out = &mut context[context_row * h..];
        // This sequence's saved probabilities, the rest left for the next.
        let mine = save.take().map(|sv| {
            let (mine, rest) = sv.split_at(shape.heads * s * s);
            save = Some(rest);
            mine
        });
        self_attention(
            shape,
            sequences,
            b,
            q.clone(),
            qkv,
            out,
            mine,
            &mut threads[0],
        );
        context_row += q.len();
    }
}

/// Attention probabilities of sequences `seqs` (`heads · n²` each).
fn probs_between(sequences: &Sequences<'_>, seqs: core::ops::Range<usize>, heads: usize) -> usize {
    let o = sequences.offsets;
    seqs.map(|b| heads * (o[b + 1] - o[b]).pow(2)).sum()
}

/// `softmax(Q Kᵀ / sqrt(d) [+ mask]) V` for query rows `rows` of sequence `b`, every head,
/// into `context` (which starts at the first of those rows). Each sequence attends only within
/// its own rows; with padding removed there is nothing to mask. With `save` (all rows of the
/// sequence), the probabilities are computed in the save's `[heads, n, n]` block and the
/// context from them times the save's dropout mask.
#[allow(clippy::too_many_arguments)]
fn self_attention(
    shape: AttentionShape,
    sequences: &Sequences<'_>,
    b: usize,
    rows: core::ops::Range<usize>,
    qkv: Qkv<'_>,
    context: &mut [f32],
    mut save: Option<ProbsSave<'_>>,
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
    let stride = qkv.row_stride;
    for head in 0..shape.heads {
        let keys = r0 * stride + head * d;
        let queries = keys + rows.start * stride;
        let mask = save.as_ref().and_then(|sv| sv.mask);
        let (block, dropped) = match save.as_mut() {
            Some(sv) => (
                &mut sv.probs[head * m * s..(head + 1) * m * s],
                Some(&mut scores[..m * s]),
            ),
            None => (&mut scores[..m * s], None),
        };
        kernels::matmul(
            MatMut::dense(block, m, s),
            head_slice(qkv.query, queries, m, d, stride),
            Rhs::Dense(head_slice(qkv.key, keys, s, d, stride).t()),
            false,
            scale,
            gemm,
        );
        if let Some(bias) = sequences.mask_bias {
            let bias = &bias[b * s..(b + 1) * s];
            for row in block.chunks_exact_mut(s) {
                row.iter_mut().zip(bias).for_each(|(x, m)| *x += m);
            }
        }
        if let Some(w) = shape.window {
            // Local attention: a query sees keys at most `w` positions away.
            for (i, row) in block.chunks_exact_mut(s).enumerate() {
                let q = rows.start + i;
                for (j, x) in row.iter_mut().enumerate() {
                    if q.abs_diff(j) > w {
                        *x = MASKED_SCORE_BIAS;
                    }
                }
            }
        }
        kernels::softmax_rows(block, s);
        // Dropout on the probabilities: the context from the dropped copy, the saved ones kept.
        let probs: &[f32] = match (mask, dropped) {
            (Some(mask), Some(dropped)) => {
                let mask = &mask[head * m * s..(head + 1) * m * s];
                for ((o, p), k) in dropped.iter_mut().zip(&*block).zip(mask) {
                    *o = p * k;
                }
                dropped
            }
            _ => block,
        };
        kernels::matmul(
            MatMut {
                data: &mut context[head * d..],
                rows: m,
                cols: d,
                row_stride: h,
            },
            MatRef::dense(probs, m, s),
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
