//! The elementwise kernels: LayerNorm (fused with the residual add), activations, softmax.
//!
//! Each is plain Rust written to vectorize (lane-wise partial sums, branch-free math from
//! [`super::math`]) and compiled twice more on x86-64 — for AVX-512 and for AVX2 — with the
//! copy for this CPU picked at each call (`multiversion!` in [`super`]). Other targets get the build's own
//! target features (NEON on aarch64).

use crate::activation::Activation;

use super::math;

/// Lanes of the partial sums (one AVX-512 register of f32).
const LANES: usize = 16;

/// Sum with [`LANES`] partial sums (vectorizes; the order differs from a serial sum only in
/// rounding).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `x = exp(x - m)` in place, returning the new values' [`sum`] (the same partial sums in the
/// same order, so the same bits, in one pass instead of two).
#[inline(always)]
fn exp_and_sum(x: &mut [f32], m: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = math::exp(*v - m);
            *a += *v;
        }
    }
    let mut tail = 0.0f32;
    for v in chunks.into_remainder() {
        *v = math::exp(*v - m);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ (x - mean)²` with [`LANES`] partial sums.
#[inline(always)]
fn sum_sq_dev(x: &[f32], mean: f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += (v - mean) * (v - mean);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element with [`LANES`] partial maxima.
#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

#[inline(always)]
fn normalize_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let var = sum_sq_dev(row, mean) / n;
    let inv = 1.0 / libm::sqrtf(var + eps);
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

multiversion! {
    /// LayerNorm over each row of `x` (`[rows, width]`), in place, as `torch.nn.LayerNorm`:
    /// biased variance, `(x - mean) / sqrt(var + eps) * gamma + beta`.
    pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
        for row in x.chunks_exact_mut(gamma.len()) {
            normalize_row(row, gamma, beta, eps);
        }
    }
}

multiversion! {
    /// `x = LayerNorm(x + residual)`, the "add & norm" that ends each BERT sub-layer, one row
    /// at a time (the row stays in cache between the add and the normalization).
    pub fn add_layer_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let width = gamma.len();
        for (row, res) in x.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
            for (v, r) in row.iter_mut().zip(res) {
                *v += r;
            }
            normalize_row(row, gamma, beta, eps);
        }
    }
}

/// `sqrt(2 / pi)`, the tanh-GELU constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// One activation value, as HF's `ACT2FN[name]` (erf / tanh / exp from [`math`], within 1e-6
/// of libm's).
#[inline(always)]
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + math::erf(x * core::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + math::tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
        }
        Activation::Relu => x.max(0.0),
        Activation::Silu => x / (1.0 + math::exp(-x)),
    }
}

multiversion! {
    /// Apply `act` to every element of `x`, in place (one loop per activation, so each
    /// vectorizes).
    pub fn activate_in_place(act: Activation, x: &mut [f32]) {
        match act {
            Activation::Gelu => x.iter_mut().for_each(|v| *v = activate(Activation::Gelu, *v)),
            Activation::GeluTanh => x
                .iter_mut()
                .for_each(|v| *v = activate(Activation::GeluTanh, *v)),
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Silu => x.iter_mut().for_each(|v| *v = activate(Activation::Silu, *v)),
        }
    }
}

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let m = max(row);
    let inv = 1.0 / exp_and_sum(row, m);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

multiversion! {
    /// Softmax of one row, in place (max-subtracted, as torch does).
    pub fn softmax_in_place(row: &mut [f32]) {
        softmax_row(row)
    }
}

multiversion! {
    /// Softmax of every `width`-long row of `x`, in place.
    pub fn softmax_rows(x: &mut [f32], width: usize) {
        for row in x.chunks_exact_mut(width) {
            softmax_row(row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_sum_is_exp_then_sum_bit_for_bit() {
        for width in [1, 5, 16, 17, 40, 128] {
            let x: alloc::vec::Vec<f32> =
                (0..width).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
            let m = max(&x);
            let mut fused = x.clone();
            let s = exp_and_sum(&mut fused, m);
            let separate: alloc::vec::Vec<f32> = x.iter().map(|v| math::exp(v - m)).collect();
            assert_eq!(fused, separate, "width {width}");
            assert_eq!(s.to_bits(), sum(&separate).to_bits(), "width {width}");
        }
    }
}
