//! The training step's products over threads, as the inference forward splits them: the work
//! is cut in halves (rows of a product, output rows of a weight gradient, groups of sequences in
//! attention), each half with its own [`ThreadScratch`] (GEMM scratch and attention-gradient buffer), run
//! through [`Parallel::join`]. No element is computed differently from the one-thread path (the
//! same kernel, the same depth order), so the results are bit-identical for any thread count.

use super::ops::{
    head, head_mut, layer_norm_dx_row, layer_norm_gamma_grad, layer_norm_param_grads,
    softmax_backward,
};
use crate::kernels::{self, MatMut, MatRef, Rhs};
use crate::model::saves::split_opt;
use crate::model::ThreadScratch;
use crate::nn::Linear;
use crate::parallel::Parallel;

/// Fewest rows (or weight rows) worth handing to another thread.
const MIN_ROWS: usize = 16;

/// `out = x · Wᵀ + b` (`x` `[t, k]`), rows split over the lanes.
pub(crate) fn linear_forward(
    par: &dyn Parallel,
    lin: &Linear<'_>,
    x: &[f32],
    t: usize,
    out: &mut [f32],
    lanes: &mut [ThreadScratch],
) {
    let (k, n) = (lin.in_features(), lin.out_features());
    if lanes.len() < 2 || t < 2 * MIN_ROWS {
        lin.forward(x, t, out, &mut lanes[0].gemm);
        return;
    }
    let (l1, l2) = lanes.split_at_mut(lanes.len() / 2);
    let t1 = t * l1.len() / (l1.len() + l2.len());
    let (x1, x2) = x[..t * k].split_at(t1 * k);
    let (o1, o2) = out[..t * n].split_at_mut(t1 * n);
    par.join(
        &mut || linear_forward(par, lin, x1, t1, o1, l1),
        &mut || linear_forward(par, lin, x2, t - t1, o2, l2),
    );
}

/// `out (+)= a · b` for `a` `[t, k]` dense and any `b` `[k, n]`, rows of `a` and `out` split
/// over the lanes.
pub(crate) fn matmul_rows(
    par: &dyn Parallel,
    out: &mut [f32],
    a: &[f32],
    b: MatRef<'_>,
    t: usize,
    accumulate: bool,
    lanes: &mut [ThreadScratch],
) {
    let (k, n) = (b.rows, b.cols);
    if lanes.len() < 2 || t < 2 * MIN_ROWS {
        kernels::matmul(
            MatMut::dense(&mut out[..t * n], t, n),
            MatRef::dense(&a[..t * k], t, k),
            Rhs::Dense(b),
            accumulate,
            1.0,
            &mut lanes[0].gemm,
        );
        return;
    }
    let (l1, l2) = lanes.split_at_mut(lanes.len() / 2);
    let t1 = t * l1.len() / (l1.len() + l2.len());
    let (a1, a2) = a[..t * k].split_at(t1 * k);
    let (o1, o2) = out[..t * n].split_at_mut(t1 * n);
    par.join(
        &mut || matmul_rows(par, o1, a1, b, t1, accumulate, l1),
        &mut || matmul_rows(par, o2, a2, b, t - t1, accumulate, l2),
    );
}

/// `dw[n, k] += dyᵀ · x` for `dy` `[t, n]` (row stride `stride`, starting at column `col`) and
/// `x` `[t, k]`, the rows of `dw` split over the lanes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad(
    par: &dyn Parallel,
    dw: &mut [f32],
    dy: &[f32],
    (col, n, stride): (usize, usize, usize),
    x: &[f32],
    t: usize,
    k: usize,
    lanes: &mut [ThreadScratch],
) {
    if lanes.len() < 2 || n < 2 * MIN_ROWS {
        let dy = MatRef {
            data: &dy[col..],
            rows: t,
            cols: n,
            row_stride: stride,
            col_stride: 1,
        };
        kernels::matmul(
            MatMut::dense(&mut dw[..n * k], n, k),
            dy.t(),
            Rhs::Dense(MatRef::dense(&x[..t * k], t, k)),
            true,
            1.0,
            &mut lanes[0].gemm,
        );
        return;
    }
    let (l1, l2) = lanes.split_at_mut(lanes.len() / 2);
    let n1 = n * l1.len() / (l1.len() + l2.len());
    let (w1, w2) = dw[..n * k].split_at_mut(n1 * k);
    par.join(
        &mut || weight_grad(par, w1, dy, (col, n1, stride), x, t, k, l1),
        &mut || weight_grad(par, w2, dy, (col + n1, n - n1, stride), x, t, k, l2),
    );
}

/// The backward of `y[t, n] = x[t, k] · Wᵀ + b`: `dx` (`[t, k]`, overwritten or accumulated),
/// `dw += dyᵀ · x`, `db += Σ_rows dy`, over the lanes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear_backward(
    par: &dyn Parallel,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    (t, k, n): (usize, usize, usize),
    dx: Option<(&mut [f32], bool)>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    lanes: &mut [ThreadScratch],
) {
    if let Some((dx, accumulate)) = dx {
        matmul_rows(par, dx, dy, MatRef::dense(w, n, k), t, accumulate, lanes);
    }
    weight_grad(par, dw, dy, (0, n, n), x, t, k, lanes);
    if let Some(db) = db {
        for row in dy[..t * n].chunks_exact(n) {
            db.iter_mut().zip(row).for_each(|(b, g)| *b += g);
        }
    }
}

/// LayerNorm's backward with the rows' `dx` on `threads` threads; `dγ` and `dβ` (a norm
/// without a bias has none) summed on the calling thread in row order, as the one-thread pass
/// sums them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_backward(
    par: &dyn Parallel,
    threads: usize,
    (dy, xhat, rstd): (&[f32], &[f32], &[f32]),
    gamma: &[f32],
    dx: &mut [f32],
    accumulate: bool,
    dgamma: &mut [f32],
    dbeta: Option<&mut [f32]>,
) {
    match dbeta {
        Some(dbeta) => layer_norm_param_grads(dy, xhat, rstd.len(), dgamma, dbeta),
        None => layer_norm_gamma_grad(dy, xhat, rstd.len(), dgamma),
    }
    layer_norm_dx(par, threads, (dy, xhat, rstd), gamma, dx, accumulate);
}

fn layer_norm_dx(
    par: &dyn Parallel,
    threads: usize,
    (dy, xhat, rstd): (&[f32], &[f32], &[f32]),
    gamma: &[f32],
    dx: &mut [f32],
    accumulate: bool,
) {
    let (w, rows) = (gamma.len(), rstd.len());
    if threads < 2 || rows < 2 * MIN_ROWS {
        for (((g, z), &r), out) in dy
            .chunks_exact(w)
            .zip(xhat.chunks_exact(w))
            .zip(rstd)
            .zip(dx.chunks_exact_mut(w))
        {
            layer_norm_dx_row(g, z, r, gamma, out, accumulate);
        }
        return;
    }
    let half = threads / 2;
    let cut = rows * half / threads;
    let (y1, y2) = dy[..rows * w].split_at(cut * w);
    let (z1, z2) = xhat[..rows * w].split_at(cut * w);
    let (r1, r2) = rstd.split_at(cut);
    let (d1, d2) = dx[..rows * w].split_at_mut(cut * w);
    par.join(
        &mut || layer_norm_dx(par, half, (y1, z1, r1), gamma, d1, accumulate),
        &mut || layer_norm_dx(par, threads - half, (y2, z2, r2), gamma, d2, accumulate),
    );
}

/// LayerNorm over the rows of `x` in place, saving `xhat` and `rstd` ([`ops::layer_norm_save`]),
/// rows split over `threads` threads (each row alone: the same bits).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_save(
    par: &dyn Parallel,
    threads: usize,
    x: &mut [f32],
    (gamma, beta, eps): (&[f32], &[f32], f32),
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let (w, rows) = (gamma.len(), rstd.len());
    if threads < 2 || rows < 2 * MIN_ROWS {
        super::ops::layer_norm_save(&mut x[..rows * w], gamma, beta, eps, xhat, rstd);
        return;
    }
    let half = threads / 2;
    let cut = rows * half / threads;
    let (x1, x2) = x[..rows * w].split_at_mut(cut * w);
    let (z1, z2) = xhat[..rows * w].split_at_mut(cut * w);
    let (r1, r2) = rstd.split_at_mut(cut);
    let norm = (gamma, beta, eps);
    par.join(
        &mut || layer_norm_save(par, half, x1, norm, z1, r1),
        &mut || layer_norm_save(par, threads - half, x2, norm, z2, r2),
    );
}

/// [`dropout::fill_rows`](super::dropout::fill_rows) with the rows split over `threads`
/// threads (each element is a pure function of its index).
pub(crate) fn fill_rows(
    par: &dyn Parallel,
    threads: usize,
    mask: &mut [f32],
    packed: &[u32],
    h: usize,
    spec: (u64, u64, f32),
) {
    let rows = packed.len();
    if threads < 2 || rows < 2 * MIN_ROWS {
        super::dropout::fill_rows(&mut mask[..rows * h], packed, h, spec);
        return;
    }
    let half = threads / 2;
    let cut = rows * half / threads;
    let (m1, m2) = mask[..rows * h].split_at_mut(cut * h);
    let (p1, p2) = packed.split_at(cut);
    par.join(&mut || fill_rows(par, half, m1, p1, h, spec), &mut || {
        fill_rows(par, threads - half, m2, p2, h, spec)
    });
}

/// Fewest elements worth handing to another thread in an elementwise pass.
const MIN_ELEMENTS: usize = 4096;

/// `f(a_part, b_part)` over matching pieces of `a` and `b`, halves on `threads` threads
/// (`f` sees whole slices, so its loop can vectorize).
pub(crate) fn zip_map(
    par: &dyn Parallel,
    threads: usize,
    a: &mut [f32],
    b: &[f32],
    f: &(dyn Fn(&mut [f32], &[f32]) + Sync),
) {
    if threads < 2 || a.len() < 2 * MIN_ELEMENTS {
        f(a, b);
        return;
    }
    let half = threads / 2;
    let cut = a.len() * half / threads;
    let (a1, a2) = a.split_at_mut(cut);
    let (b1, b2) = b.split_at(cut);
    par.join(&mut || zip_map(par, half, a1, b1, f), &mut || {
        zip_map(par, threads - half, a2, b2, f)
    });
}

/// The shapes of one attention call: the packed rows' sequence offsets (absolute), heads,
/// head width, hidden width, score scale, and how far apart the rows of the saved queries,
/// keys and values are (`h` in three buffers, `3h` in one fused product's output).
#[derive(Clone, Copy)]
pub(crate) struct Heads<'o> {
    pub(crate) offsets: &'o [usize],
    pub(crate) heads: usize,
    pub(crate) d: usize,
    pub(crate) h: usize,
    pub(crate) scale: f32,
    pub(crate) qkv_stride: usize,
}

impl<'o> Heads<'o> {
    fn sequences(&self) -> usize {
        self.offsets.len() - 1
    }

    fn len(&self, b: usize) -> usize {
        self.offsets[b + 1] - self.offsets[b]
    }

    /// Where to cut the sequences in two for `share` of the work (Σ s²), and the halves.
    fn split(&self, share: f32) -> Option<(usize, Heads<'o>, Heads<'o>)> {
        let total: usize = (0..self.sequences()).map(|b| self.len(b).pow(2)).sum();
        let mut acc = 0;
        let cut = (0..self.sequences()).find(|&b| {
            acc += self.len(b).pow(2);
            acc as f32 >= share * total as f32
        })? + 1;
        if cut == 0 || cut >= self.sequences() {
            return None;
        }
        let (a, b) = (&self.offsets[..=cut], &self.offsets[cut..]);
        Some((
            cut,
            Heads {
                offsets: a,
                ..*self
            },
            Heads {
                offsets: b,
                ..*self
            },
        ))
    }

    /// Elements of `probs` for sequences `..cut`.
    fn probs_before(&self, cut: usize) -> usize {
        (0..cut).map(|b| self.heads * self.len(b).pow(2)).sum()
    }
}

/// What the attention backward reads: q, k, v, the probabilities (the group's) and `dctx`.
type Saved<'s> = (&'s [f32], &'s [f32], &'s [f32], &'s [f32], &'s [f32]);

/// The backward of [`attention_forward`]: from `dctx` to `dq`, `dk`, `dv` (the group's rows).
pub(crate) fn attention_backward(
    par: &dyn Parallel,
    s: Heads<'_>,
    (q, k, v, probs, dctx): Saved<'_>,
    mask: Option<&[f32]>,
    (dq, dk, dv): (&mut [f32], &mut [f32], &mut [f32]),
    lanes: &mut [ThreadScratch],
) {
    if lanes.len() >= 2 {
        let (l1, l2) = lanes.split_at_mut(lanes.len() / 2);
        if let Some((cut, a, b)) = s.split(l1.len() as f32 / (l1.len() + l2.len()) as f32) {
            let at = s.probs_before(cut);
            let (p1, p2) = probs.split_at(at);
            let (m1, m2) = split_opt(mask, at);
            let rows = (s.offsets[cut] - s.offsets[0]) * s.h;
            let (q1, q2) = dq.split_at_mut(rows);
            let (k1, k2) = dk.split_at_mut(rows);
            let (v1, v2) = dv.split_at_mut(rows);
            par.join(
                &mut || attention_backward(par, a, (q, k, v, p1, dctx), m1, (q1, k1, v1), l1),
                &mut || attention_backward(par, b, (q, k, v, p2, dctx), m2, (q2, k2, v2), l2),
            );
            return;
        }
    }
    let (h, d, stride) = (s.h, s.d, s.qkv_stride);
    let first = s.offsets[0];
    let ThreadScratch {
        gemm,
        dprobs,
        scores: dropped,
        ..
    } = &mut lanes[0];
    let mut poff = 0;
    for b in 0..s.sequences() {
        let (r0, n) = (s.offsets[b], s.len(b));
        for hd in 0..s.heads {
            let base = r0 * h + hd * d;
            let saved = r0 * stride + hd * d;
            let local = (r0 - first) * h + hd * d;
            let p = &probs[poff..poff + n * n];
            let m = mask.map(|m| &m[poff..poff + n * n]);
            // What multiplied v in the forward: the probabilities, after dropout if any.
            let used: &[f32] = match m {
                Some(m) => {
                    let out = &mut dropped[..n * n];
                    for ((o, x), k) in out.iter_mut().zip(p).zip(m) {
                        *o = x * k;
                    }
                    out
                }
                None => p,
            };
            let dp = &mut dprobs[..n * n];
            kernels::matmul(
                MatMut::dense(dp, n, n),
                head(dctx, base, n, d, h),
                Rhs::Dense(head(v, saved, n, d, stride).t()),
                false,
                1.0,
                gemm,
            );
            kernels::matmul(
                head_mut(dv, local, n, d, h),
                MatRef::dense(used, n, n).t(),
                Rhs::Dense(head(dctx, base, n, d, h)),
                false,
                1.0,
                gemm,
            );
            if let Some(m) = m {
                dp.iter_mut().zip(m).for_each(|(g, k)| *g *= k);
            }
            softmax_backward(p, dp, n);
            kernels::matmul(
                head_mut(dq, local, n, d, h),
                MatRef::dense(dp, n, n),
                Rhs::Dense(head(k, saved, n, d, stride)),
                false,
                s.scale,
                gemm,
            );
            kernels::matmul(
                head_mut(dk, local, n, d, h),
                MatRef::dense(dp, n, n).t(),
                Rhs::Dense(head(q, saved, n, d, stride)),
                false,
                s.scale,
                gemm,
            );
            poff += n * n;
        }
    }
}
