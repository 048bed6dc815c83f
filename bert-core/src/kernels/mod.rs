//! The numeric kernels: matrix multiply, LayerNorm, activations, softmax. Plain functions over
//! slices; the caller owns every buffer.
//!
//! - [`isa`](mod@isa): the [`Isa`] trait (f32, int8 and bf16 register tiles), one implementation per
//!   instruction set ([`scalar`], `x86` (AVX2, AVX-512, AVX-512 VNNI), `aarch64` (NEON)),
//!   picked once per process.
//! - [`gemm`]: the shared driver (blocking, packing; int8 in [`int8`], bf16 in [`bf16`]) that turns
//!   those tiles into [`matmul`].
//!
//! Matrices are row-major `f32` slices with an explicit row stride, so that a head's slice of a
//! `[tokens, hidden]` buffer can be used in place.

/// Define `pub fn $name(args)` from a body, plus AVX-512 and AVX2 copies of it on x86-64.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn portable($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                /// # Safety
                /// AVX-512F/BW, AVX2 and FMA present.
                #[target_feature(enable = "avx512f,avx512bw,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { portable($($arg),*) }
                /// # Safety
                /// AVX2 and FMA present.
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { portable($($arg),*) }
                if crate::kernels::x86::Avx512::detected() {
                    // SAFETY: the features were detected on the line above.
                    return unsafe { avx512($($arg),*) };
                }
                if crate::kernels::x86::Avx2::detected() {
                    // SAFETY: the features were detected on the line above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            portable($($arg),*)
        }
    };
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
pub mod aarch64;
pub mod bf16;
#[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
pub mod cortex_m;
pub mod elementwise;
pub mod gemm;
pub mod int8;
pub mod isa;
pub mod math;
pub mod packed;
pub mod rowwise;
pub mod scalar;
#[cfg(test)]
mod split_tests;
#[cfg(target_arch = "x86_64")]
pub mod x86;
#[cfg(target_arch = "x86_64")]
pub mod x86_bf16;

pub use elementwise::{
    activate, activate_in_place, add_layer_norm, layer_norm, softmax_in_place, softmax_rows,
};
pub use gemm::{
    matmul, matmul_bias, matmul_bias_cols, GemmNeeds, GemmScratch, PackedWeight, Precision, Rhs,
    COLUMN_ALIGN,
};
pub use isa::{isa, isa_name, Isa};

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

    pub(crate) fn last_index(&self) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

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
