//! The portable reference kernels: plain Rust, no target features. Every SIMD kernel is tested
//! against these.

use super::isa::{check_tile, Isa, TileRows, I8_K_GROUP, MAX_TILE};

/// Portable kernels for any target.
pub struct Scalar;

const F32_MR: usize = 4;
const F32_NR: usize = 8;
const I8_MR: usize = 4;
const I8_NR: usize = 8;

impl Isa for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }

    fn f32_tile(&self) -> (usize, usize) {
        (F32_MR, F32_NR)
    }

    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
        assert!(check_tile(k, &a, F32_MR, F32_NR, panel.len()));
        let mut acc = [[0.0f32; F32_NR]; F32_MR];
        for (p, b) in panel.chunks_exact(F32_NR).take(k).enumerate() {
            for (r, row) in acc.iter_mut().enumerate() {
                let x = a.a[a.row_start[r] + p * a.col_stride];
                for (c, w) in row.iter_mut().zip(b) {
                    *c += x * w;
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            out[r * F32_NR..(r + 1) * F32_NR].copy_from_slice(row);
        }
    }

    fn i8_tile(&self) -> (usize, usize) {
        (I8_MR, I8_NR)
    }

    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        assert!(check_tile(k, &a, I8_MR, I8_NR, panel.len()) && k.is_multiple_of(I8_K_GROUP));
        let mut acc = [[0i32; I8_NR]; I8_MR];
        for (g, group) in panel
            .chunks_exact(I8_NR * I8_K_GROUP)
            .take(k / I8_K_GROUP)
            .enumerate()
        {
            for (r, row) in acc.iter_mut().enumerate() {
                let x = &a.a[a.row_start[r] + g * I8_K_GROUP..][..I8_K_GROUP];
                for (c, w) in row.iter_mut().zip(group.chunks_exact(I8_K_GROUP)) {
                    *c += x
                        .iter()
                        .zip(w)
                        .map(|(&x, &w)| i32::from(x) * i32::from(w))
                        .sum::<i32>();
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            out[r * I8_NR..(r + 1) * I8_NR].copy_from_slice(row);
        }
    }
}
