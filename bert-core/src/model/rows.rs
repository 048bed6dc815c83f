//! The row scheduler: a linear layer and its fused epilogue (activation, or residual + LayerNorm) split by rows over threads.

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

/// Fewest rows worth handing to another thread.
pub(crate) const MIN_ROWS_PER_THREAD: usize = 16;

/// `out = epilogue(x · Wᵀ + b)` for `rows` rows, split by rows over `threads` halves at a time.
pub(crate) fn linear_rows(
    par: &dyn Parallel,
    linear: &Linear<'_>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
    threads: &mut [ThreadScratch],
) {
    let (k, n) = (linear.in_features(), linear.out_features());
    if threads.len() < 2 || rows < 2 * MIN_ROWS_PER_THREAD {
        linear.forward(x, rows, out, &mut threads[0].gemm);
        epilogue.apply(&mut out[..rows * n]);
        return;
    }
    let (t1, t2) = threads.split_at_mut(threads.len() / 2);
    let r1 = rows * t1.len() / (t1.len() + t2.len());
    let (x1, x2) = x[..rows * k].split_at(r1 * k);
    let (o1, o2) = out[..rows * n].split_at_mut(r1 * n);
    let (e1, e2) = epilogue.split(r1 * n);
    par.join(
        &mut || linear_rows(par, linear, x1, r1, o1, e1, t1),
        &mut || linear_rows(par, linear, x2, rows - r1, o2, e2, t2),
    );
}
