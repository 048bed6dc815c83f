//! The row scheduler: a linear layer and its fused epilogue (activation, or residual + LayerNorm) split by rows over threads, or, for too few rows, by columns over two.

use super::*;
use crate::config::Activation;
use crate::kernels;
use crate::nn::{LayerNorm, Linear};
use crate::parallel::Parallel;

/// What follows a linear layer on the same rows, while they are in cache.
#[derive(Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    /// Nothing.
    None,
    /// The activation, elementwise.
    Activation(Activation),
    /// `LayerNorm(out + residual)` (the residual's rows match the output's).
    AddNorm(&'a [f32], &'a LayerNorm<'a>),
    /// `out + residual` (pre-norm layers).
    AddResidual(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    pub(crate) fn apply(self, out: &mut [f32]) {
        match self {
            Epilogue::None => {}
            Epilogue::Activation(act) => kernels::activate_in_place(act, out),
            Epilogue::AddNorm(residual, norm) => norm.forward_residual(out, &residual[..out.len()]),
            Epilogue::AddResidual(residual) => {
                let n = out.len();
                out.iter_mut()
                    .zip(&residual[..n])
                    .for_each(|(o, r)| *o += r)
            }
        }
    }

    /// The epilogues of the first `at` output elements and of the rest.
    pub(crate) fn split(self, at: usize) -> (Self, Self) {
        match self {
            Epilogue::AddNorm(residual, norm) => {
                let (a, b) = residual.split_at(at);
                (Epilogue::AddNorm(a, norm), Epilogue::AddNorm(b, norm))
            }
            Epilogue::AddResidual(residual) => {
                let (a, b) = residual.split_at(at);
                (Epilogue::AddResidual(a), Epilogue::AddResidual(b))
            }
            other => (other, other),
        }
    }
}

/// What follows a linear layer on whole rows of its output: [`Epilogue`] for inference,
/// [`LayerEpilogue`](super::saves::LayerEpilogue) when a training step keeps what its backward
/// needs. Cut with the rows when they are split over threads.
pub(crate) trait RowEpilogue: Sized + Send {
    /// Apply it to `out`, whole rows.
    fn apply_rows(self, out: &mut [f32]);
    /// The epilogues of the first `at` output elements (whole rows) and of the rest.
    fn split_at(self, at: usize) -> (Self, Self);
}

impl RowEpilogue for Epilogue<'_> {
    fn apply_rows(self, out: &mut [f32]) {
        self.apply(out)
    }

    fn split_at(self, at: usize) -> (Self, Self) {
        self.split(at)
    }
}

/// Fewest rows worth handing to another thread.
pub(crate) const MIN_ROWS_PER_THREAD: usize = 16;

/// Fewest multiply-adds of a product worth splitting over threads: below it (a small model's
/// layers at a few tokens) handing half to another thread costs more than it saves.
pub(crate) const MIN_MACS_TO_SPLIT: usize = 1 << 20;

/// `x` through query, key and value as three products (no epilogue) into the thirds of
/// `out`, which it returns in that order.
pub(crate) fn separate_qkv<'o>(
    par: &dyn Parallel,
    [query, key, value]: [&Linear<'_>; 3],
    x: &[f32],
    rows: usize,
    out: &'o mut [f32],
    threads: &mut [ThreadScratch],
) -> [&'o mut [f32]; 3] {
    let third = out.len() / 3;
    let (q, rest) = out.split_at_mut(third);
    let (k, v) = rest.split_at_mut(third);
    for (linear, out) in [(query, &mut *q), (key, &mut *k), (value, &mut *v)] {
        linear_rows(par, linear, x, rows, out, Epilogue::None, threads);
    }
    [q, k, v]
}

/// `out = epilogue(x · Wᵀ + b)` for `rows` rows, split by rows over `threads` halves at a time.
pub(crate) fn linear_rows<E: RowEpilogue>(
    par: &dyn Parallel,
    linear: &Linear<'_>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    epilogue: E,
    threads: &mut [ThreadScratch],
) {
    let (k, n) = (linear.in_features(), linear.out_features());
    if rows * k * n < MIN_MACS_TO_SPLIT {
        linear.forward(x, rows, out, &mut threads[0].gemm);
        epilogue.apply_rows(&mut out[..rows * n]);
        return;
    }
    let half = (n / 2).next_multiple_of(kernels::COLUMN_ALIGN);
    let by_columns = rows * (n - half.min(n)) <= threads.get(1).map_or(0, |t| t.columns.len());
    if threads.len() >= 2 && rows < 2 * MIN_ROWS_PER_THREAD && half < n && by_columns {
        return linear_columns(par, linear, x, rows, out, epilogue, threads, half);
    }
    if threads.len() < 2 || rows < 2 * MIN_ROWS_PER_THREAD {
        linear.forward(x, rows, out, &mut threads[0].gemm);
        epilogue.apply_rows(&mut out[..rows * n]);
        return;
    }
    let (t1, t2) = threads.split_at_mut(threads.len() / 2);
    let r1 = rows * t1.len() / (t1.len() + t2.len());
    let (x1, x2) = x[..rows * k].split_at(r1 * k);
    let (o1, o2) = out[..rows * n].split_at_mut(r1 * n);
    let (e1, e2) = epilogue.split_at(r1 * n);
    let (mut e1, mut e2) = (Some(e1), Some(e2));
    par.join(
        &mut || {
            if let Some(e1) = e1.take() {
                linear_rows(par, linear, x1, r1, o1, e1, t1)
            }
        },
        &mut || {
            if let Some(e2) = e2.take() {
                linear_rows(par, linear, x2, rows - r1, o2, e2, t2)
            }
        },
    );
}

/// A product of a few rows (too few to split by rows) on two threads by columns: the first
/// `half` columns straight into `out`, the rest into the second thread's own buffer, copied
/// beside them after; then the epilogue on whole rows. Every value is the one
/// [`Linear::forward`] gives.
#[allow(clippy::too_many_arguments)]
fn linear_columns<E: RowEpilogue>(
    par: &dyn Parallel,
    linear: &Linear<'_>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    epilogue: E,
    threads: &mut [ThreadScratch],
    half: usize,
) {
    let n = linear.out_features();
    let rest = n - half;
    let out = &mut out[..rows * n];
    let (first, second) = threads.split_at_mut(1);
    let (first, second) = (&mut first[0], &mut second[0]);
    par.join(
        &mut || {
            let dst = kernels::MatMut {
                data: &mut out[..],
                rows,
                cols: half,
                row_stride: n,
            };
            linear.forward_cols(x, rows, dst, 0..half, &mut first.gemm);
        },
        &mut || {
            let dst = kernels::MatMut::dense(&mut second.columns[..rows * rest], rows, rest);
            linear.forward_cols(x, rows, dst, half..n, &mut second.gemm);
        },
    );
    for (o, c) in out
        .chunks_exact_mut(n)
        .zip(second.columns.chunks_exact(rest))
    {
        o[half..].copy_from_slice(c);
    }
    epilogue.apply_rows(out);
}
