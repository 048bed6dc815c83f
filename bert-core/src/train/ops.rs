//! The backward of each operation, beside what the forward saves for it: linear layers
//! (`dX = dY·W`, `dW += dYᵀ·X`, `db += Σ dY`) through the project's matmul kernels, LayerNorm,
//! the activations (exact GELU, GELU-tanh, ReLU) and softmax.

use crate::activation::Activation;
use crate::kernels::{self, GemmScratch, MatMut, MatRef, Rhs};

/// `out (+)= a · b` through the project's kernels (any strides).
pub fn mm(
    out: MatMut<'_>,
    a: MatRef<'_>,
    b: MatRef<'_>,
    accumulate: bool,
    scratch: &mut GemmScratch,
) {
    kernels::matmul(out, a, Rhs::Dense(b), accumulate, 1.0, scratch);
}

/// The backward of `y[t, n] = x[t, k] · Wᵀ + b` for `W` `[n, k]`: `dx` (`[t, k]`, overwritten
/// or accumulated), `dw += dyᵀ · x`, `db += Σ_rows dy`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    t: usize,
    k: usize,
    n: usize,
    dx: Option<(&mut [f32], bool)>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
    scratch: &mut GemmScratch,
) {
    if let Some((dx, accumulate)) = dx {
        mm(
            MatMut::dense(&mut dx[..t * k], t, k),
            MatRef::dense(&dy[..t * n], t, n),
            MatRef::dense(w, n, k),
            accumulate,
            scratch,
        );
    }
    mm(
        MatMut::dense(dw, n, k),
        MatRef::dense(&dy[..t * n], t, n).t(),
        MatRef::dense(&x[..t * k], t, k),
        true,
        scratch,
    );
    if let Some(db) = db {
        for row in dy[..t * n].chunks_exact(n) {
            db.iter_mut().zip(row).for_each(|(b, g)| *b += g);
        }
    }
}

pub use crate::nn::layer_norm_save;

/// The backward of LayerNorm: `dx = rstd · (dz − mean(dz) − xhat · mean(dz · xhat))` with
/// `dz = dy · γ`; `dγ += Σ dy · xhat`, `dβ += Σ dy`. `dx` may be accumulated into.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dy: &[f32],
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dx: &mut [f32],
    accumulate: bool,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let w = gamma.len();
    layer_norm_param_grads(dy, xhat, rstd.len(), dgamma, dbeta);
    for (((g, z), &r), out) in dy
        .chunks_exact(w)
        .zip(xhat.chunks_exact(w))
        .zip(rstd)
        .zip(dx.chunks_exact_mut(w))
    {
        layer_norm_dx_row(g, z, r, gamma, out, accumulate);
    }
}

/// LayerNorm's `dγ += Σ dy · xhat`, `dβ += Σ dy` over `rows` rows, in row order.
pub fn layer_norm_param_grads(
    dy: &[f32],
    xhat: &[f32],
    rows: usize,
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let w = dgamma.len();
    for (g, z) in dy.chunks_exact(w).zip(xhat.chunks_exact(w)).take(rows) {
        for i in 0..w {
            dgamma[i] += g[i] * z[i];
            dbeta[i] += g[i];
        }
    }
}

/// LayerNorm's `dγ += Σ dy · xhat` alone (a norm without a bias), the same sums as
/// [`layer_norm_param_grads`]'s.
pub(crate) fn layer_norm_gamma_grad(dy: &[f32], xhat: &[f32], rows: usize, dgamma: &mut [f32]) {
    let w = dgamma.len();
    for (g, z) in dy.chunks_exact(w).zip(xhat.chunks_exact(w)).take(rows) {
        for i in 0..w {
            dgamma[i] += g[i] * z[i];
        }
    }
}

/// One row of LayerNorm's `dx` (overwritten or accumulated).
pub fn layer_norm_dx_row(
    g: &[f32],
    z: &[f32],
    r: f32,
    gamma: &[f32],
    out: &mut [f32],
    accumulate: bool,
) {
    let w = gamma.len();
    let (mut mean_dz, mut mean_dz_z) = (0.0f64, 0.0f64);
    for i in 0..w {
        let dz = (g[i] * gamma[i]) as f64;
        mean_dz += dz;
        mean_dz_z += dz * z[i] as f64;
    }
    mean_dz /= w as f64;
    mean_dz_z /= w as f64;
    for i in 0..w {
        let dz = (g[i] * gamma[i]) as f64;
        let v = (r as f64 * (dz - mean_dz - z[i] as f64 * mean_dz_z)) as f32;
        if accumulate {
            out[i] += v;
        } else {
            out[i] = v;
        }
    }
}

/// `d/dx` of the exact GELU, `0.5 (1 + erf(x/√2)) + x · φ(x)`, in f32 as torch computes it
/// (branch-free `erf` and `exp`, so loops over it vectorize).
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    use crate::kernels::math::{erf, exp};
    /// `1 / √(2π)`.
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2));
    let pdf = exp(-0.5 * x * x) * INV_SQRT_2PI;
    cdf + x * pdf
}

/// `g[i] *= gelu'(u[i])`: the backward through GELU, in place on the incoming gradient.
pub fn gelu_backward(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        *g *= gelu_grad(u);
    }
}

/// `gelu_tanh'(x)` (`gelu(approximate="tanh")`, HF's `gelu_new`), as torch's backward
/// computes it.
pub fn gelu_tanh_grad(x: f32) -> f32 {
    /// `√(2/π)`.
    const BETA: f32 = 0.797_884_6;
    const KAPPA: f32 = 0.044_715;
    let inner = BETA * (x + KAPPA * x * x * x);
    let t = libm::tanhf(inner);
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * BETA * (1.0 + 3.0 * KAPPA * x * x)
}

/// `g[i] *= gelu_tanh'(u[i])`.
pub fn gelu_tanh_backward(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        *g *= gelu_tanh_grad(u);
    }
}

/// `g[i] = 0` where `u[i] <= 0`: the backward through ReLU.
pub fn relu_backward(g: &mut [f32], u: &[f32]) {
    for (g, &u) in g.iter_mut().zip(u) {
        if u <= 0.0 {
            *g = 0.0;
        }
    }
}

/// An activation's backward: `(gradient, the activation's input)`, the gradient in place.
pub type ActivationBackward = fn(&mut [f32], &[f32]);

/// The backward of `act` in place on the incoming gradient, given the activation's input;
/// `None` for an activation training does not have (SiLU).
pub fn activation_backward(act: Activation) -> Option<ActivationBackward> {
    match act {
        Activation::Gelu => Some(gelu_backward),
        Activation::GeluTanh => Some(gelu_tanh_backward),
        Activation::Relu => Some(relu_backward),
        Activation::Silu => None,
    }
}

/// The backward of a row softmax `p = softmax(s)`, in place on `dp`: `ds = p ⊙ (dp − Σ dp ⊙ p)`.
pub fn softmax_backward(p: &[f32], dp: &mut [f32], width: usize) {
    for (pr, dr) in p.chunks_exact(width).zip(dp.chunks_exact_mut(width)) {
        let dot: f64 = pr.iter().zip(dr.iter()).map(|(a, b)| (a * b) as f64).sum();
        for (d, &q) in dr.iter_mut().zip(pr) {
            *d = q * (*d - dot as f32);
        }
    }
}

/// The `[s, d]` block of one head inside a `[.., h]` buffer.
pub fn head(buf: &[f32], base: usize, s: usize, d: usize, h: usize) -> MatRef<'_> {
    MatRef {
        data: &buf[base..],
        rows: s,
        cols: d,
        row_stride: h,
        col_stride: 1,
    }
}

/// The same, writable.
pub fn head_mut(buf: &mut [f32], base: usize, s: usize, d: usize, h: usize) -> MatMut<'_> {
    MatMut {
        data: &mut buf[base..],
        rows: s,
        cols: d,
        row_stride: h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Central differences of a scalar function of one input.
    fn numeric(f: impl Fn(&[f32]) -> f64, x: &[f32], i: usize) -> f64 {
        let h = 1e-3f32;
        let (mut a, mut b) = (x.to_vec(), x.to_vec());
        a[i] += h;
        b[i] -= h;
        (f(&a) - f(&b)) / (2.0 * h as f64)
    }

    #[test]
    fn layer_norm_backward_matches_finite_differences() {
        let x = [0.3f32, -1.2, 2.0, 0.7, -0.1, 1.1];
        let gamma = [1.5f32, -0.5, 0.8];
        let beta = [0.1f32, 0.2, -0.3];
        let weights = [0.7f32, -1.3, 0.4, 2.0, 0.5, -0.9];
        let loss = |x: &[f32]| {
            let mut y = x.to_vec();
            let (mut z, mut r) = (vec![0.0; 6], vec![0.0; 2]);
            layer_norm_save(&mut y, &gamma, &beta, 1e-5, &mut z, &mut r);
            y.iter().zip(&weights).map(|(a, b)| (a * b) as f64).sum()
        };
        let mut y = x.to_vec();
        let (mut z, mut r) = (vec![0.0; 6], vec![0.0; 2]);
        layer_norm_save(&mut y, &gamma, &beta, 1e-5, &mut z, &mut r);
        let (mut dx, mut dg, mut db) = (vec![0.0; 6], vec![0.0; 3], vec![0.0; 3]);
        layer_norm_backward(&weights, &z, &r, &gamma, &mut dx, false, &mut dg, &mut db);
        for (i, &g) in dx.iter().enumerate() {
            let n = numeric(loss, &x, i);
            assert!((g as f64 - n).abs() < 2e-3, "{i}: {g} vs {n}");
        }
    }

    #[test]
    fn gelu_and_softmax_gradients() {
        for x in [-3.0f32, -0.5, 0.0, 0.7, 2.5] {
            let f = |v: f32| 0.5 * v as f64 * (1.0 + libm::erf(v as f64 / 2f64.sqrt()));
            let n = (f(x + 1e-3) - f(x - 1e-3)) / 2e-3;
            assert!((gelu_grad(x) as f64 - n).abs() < 1e-4);
        }
        // The f32 form against the f64 closed form over the range pre-activations take.
        let steps = if cfg!(miri) { 200 } else { 4000 };
        for i in 0..=steps {
            let x = -10.0 + i as f64 * 20.0 / steps as f64;
            let cdf = 0.5 * (1.0 + libm::erf(x / core::f64::consts::SQRT_2));
            let pdf = libm::exp(-0.5 * x * x) / libm::sqrt(2.0 * core::f64::consts::PI);
            let got = gelu_grad(x as f32) as f64;
            assert!((got - (cdf + x * pdf)).abs() < 2e-6, "gelu'({x}) = {got}");
        }
        let (mut g, u) = ([2.0f32, -1.0], [0.3f32, -1.2]);
        gelu_backward(&mut g, &u);
        assert_eq!(g, [2.0 * gelu_grad(0.3), -gelu_grad(-1.2)]);
        let p = [0.2f32, 0.5, 0.3];
        let mut d = [1.0f32, 1.0, 1.0];
        softmax_backward(&p, &mut d, 3);
        assert!(
            d.iter().all(|v| v.abs() < 1e-7),
            "a constant upstream has no gradient"
        );
    }
}
