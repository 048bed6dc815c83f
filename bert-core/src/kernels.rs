//! The numeric kernels: matrix multiply (through the `gemm` crate), LayerNorm, activations,
//! softmax. Plain functions over slices; the caller owns every buffer.
//!
//! Matrices are row-major `f32` slices with an explicit row stride, so that a head's slice of a
//! `[tokens, hidden]` buffer can be used in place.

use crate::config::Activation;

/// A strided, read-only view of a row-major matrix inside a slice.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    /// The elements; the view starts at index 0.
    pub data: &'a [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
    /// Distance between consecutive columns.
    pub col_stride: usize,
}

/// A strided, writable view of a row-major matrix inside a slice (column stride 1).
pub struct MatMut<'a> {
    /// The elements; the view starts at index 0.
    pub data: &'a mut [f32],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between consecutive rows.
    pub row_stride: usize,
}

impl<'a> MatRef<'a> {
    /// A dense row-major `[rows, cols]` matrix.
    pub fn dense(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no data moves).
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    fn last_index(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
        }
    }
}

impl<'a> MatMut<'a> {
    /// A dense row-major `[rows, cols]` matrix.
    pub fn dense(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` when `accumulate`), all scaled by `scale`.
///
/// Panics if the shapes disagree or a view reaches past its slice: both are bugs of the caller
/// inside this crate, never a consequence of user input.
pub fn matmul(dst: MatMut<'_>, lhs: MatRef<'_>, rhs: MatRef<'_>, accumulate: bool, scale: f32) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(dst.rows == m && dst.cols == n, "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    let dst_last = (m - 1) * dst.row_stride + (n - 1);
    assert!(
        dst_last < dst.data.len(),
        "matmul: output view out of bounds"
    );
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst.data[r * dst.row_stride..r * dst.row_stride + n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        lhs.last_index() < lhs.data.len(),
        "matmul: lhs view out of bounds"
    );
    assert!(
        rhs.last_index() < rhs.data.len(),
        "matmul: rhs view out of bounds"
    );
    // Strides are below the slice lengths (checked above), and slice lengths fit in isize.
    let s = |x: usize| x as isize;
    // SAFETY: every element gemm touches is `base + row * row_stride + col * col_stride` with
    // row < rows and col < cols of the view, which the three asserts above bound by the slice's
    // length; `dst` is a unique `&mut` borrow, so it cannot alias `lhs` or `rhs`; gemm reads
    // `dst` only when `read_dst` is true, and then every element it reads is initialised f32.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            s(dst.row_stride),
            accumulate,
            lhs.data.as_ptr(),
            s(lhs.col_stride),
            s(lhs.row_stride),
            rhs.data.as_ptr(),
            s(rhs.col_stride),
            s(rhs.row_stride),
            1.0,
            scale,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// LayerNorm over each row of `x` (`[rows, width]`), in place, as `torch.nn.LayerNorm`:
/// biased variance, `(x - mean) / sqrt(var + eps) * gamma + beta`.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let width = gamma.len();
    debug_assert_eq!(beta.len(), width);
    for row in x.chunks_exact_mut(width) {
        let n = width as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / libm::sqrtf(var + eps);
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// `x = LayerNorm(x + residual)`: the "add & norm" that ends each BERT sub-layer.
pub fn add_layer_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    debug_assert_eq!(x.len(), residual.len());
    for (v, r) in x.iter_mut().zip(residual) {
        *v += r;
    }
    layer_norm(x, gamma, beta, eps);
}

/// `sqrt(2 / pi)`, the tanh-GELU constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// One activation value, exactly as HF's `ACT2FN[name]`.
#[inline]
pub fn activate(act: Activation, x: f32) -> f32 {
    match act {
        Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * core::f32::consts::FRAC_1_SQRT_2)),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
        }
        Activation::Relu => x.max(0.0),
        Activation::Silu => x / (1.0 + libm::expf(-x)),
    }
}

/// Apply `act` to every element of `x`, in place.
pub fn activate_in_place(act: Activation, x: &mut [f32]) {
    for v in x {
        *v = activate(act, *v);
    }
}

/// Softmax of one row, in place (max-subtracted, as torch does).
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn matmul_matches_naive_on_odd_shapes() {
        for &(m, k, n) in &[(1, 1, 1), (7, 33, 5), (3, 1, 9), (17, 16, 1), (2, 64, 33)] {
            let a = pseudo(m * k, 1);
            let b = pseudo(k * n, 2);
            let mut c = vec![0.0; m * n];
            matmul(
                MatMut::dense(&mut c, m, n),
                MatRef::dense(&a, m, k),
                MatRef::dense(&b, k, n),
                false,
                1.0,
            );
            let want = naive(&a, &b, m, k, n);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-5, "{m}x{k}x{n}: {x} vs {y}");
            }
        }
    }

    #[test]
    fn matmul_transposed_accumulate_and_scale() {
        let (m, k, n) = (4, 6, 3);
        let a = pseudo(m * k, 3);
        let bt = pseudo(n * k, 4); // [n, k]
        let mut b = vec![0.0; k * n];
        for i in 0..n {
            for p in 0..k {
                b[p * n + i] = bt[i * k + p];
            }
        }
        let mut c = vec![1.0; m * n];
        matmul(
            MatMut::dense(&mut c, m, n),
            MatRef::dense(&a, m, k),
            MatRef::dense(&bt, n, k).t(),
            true,
            0.5,
        );
        let want = naive(&a, &b, m, k, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - (1.0 + 0.5 * y)).abs() < 1e-5);
        }
    }

    #[test]
    fn layer_norm_normalises() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        layer_norm(&mut x, &[1.0; 4], &[0.0; 4], 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }

    #[test]
    fn softmax_sums_to_one_and_survives_huge_negative_bias() {
        let mut row = vec![1.0, 2.0, f32::MIN, 3.0];
        softmax_in_place(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(row[2], 0.0);
    }
}
