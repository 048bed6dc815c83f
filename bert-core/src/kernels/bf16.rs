//! bf16 compute: products with bfloat16 inputs (weights and activations rounded to bf16) and
//! f32 sums, as AVX512-BF16's `vdpbf16ps` and Arm's `BFDOT` compute them.
//!
//! - [`to_bf16`] / [`widen`]: the conversions (round to nearest, ties to even).
//! - [`portable_kernel`]: the reference register tile every [`Isa`] gets by default; the x86
//!   `vdpbf16ps` kernel is tested against it.
//! - [`pack_weight`] and `gemm_bf16`: the packed-weight layout and the driver. The left
//!   operand is rounded to bf16 one block of rows at a time into the caller's scratch, so a
//!   product allocates nothing.
//!
//! Layout: `k` is rounded up to even (zero-padded); a panel holds `[k / 2][NR][2]`: the two
//! consecutive depth values of one column side by side, which is what one 32-bit lane of
//! `vdpbf16ps` multiplies by a broadcast activation pair.

use super::gemm::{depth_block, tile_rows, tile_write_out, Cols, Init, MC, NC};
use super::isa::{check_tile, Isa, TileRows, MAX_TILE};
use super::{MatMut, MatRef};
use crate::tensor::Matrix;

/// `x` rounded to bfloat16 (nearest, ties to even; NaN stays NaN), as raw bits.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    if x.is_nan() {
        ((bits >> 16) | 0x40) as u16
    } else {
        rounded as u16
    }
}

/// The f32 value of bf16 bits (exact).
#[inline(always)]
pub fn widen(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// The reference bf16 tile `(mr, nr)`: `out[r][j] = Σ_p a[r][p] · b[p][j]` over bf16 inputs,
/// each pair added as `vdpbf16ps` does (odd then even product, each rounded into the f32 sum).
/// `k` is even, `a`'s column stride 1, the panel `[k / 2][nr][2]`.
pub fn portable_kernel(
    (mr, nr): (usize, usize),
    k: usize,
    a: TileRows<'_, u16>,
    panel: &[u16],
    out: &mut [f32; MAX_TILE],
) {
    assert!(check_tile(k, &a, mr, nr, panel.len()) && k.is_multiple_of(2) && a.col_stride == 1);
    out[..mr * nr].fill(0.0);
    for (g, pairs) in panel.chunks_exact(2 * nr).take(k / 2).enumerate() {
        for r in 0..mr {
            let x = &a.a[a.row_start[r] + 2 * g..][..2];
            let (x0, x1) = (widen(x[0]), widen(x[1]));
            for (o, w) in out[r * nr..(r + 1) * nr]
                .iter_mut()
                .zip(pairs.chunks_exact(2))
            {
                *o += x1 * widen(w[1]);
                *o += x0 * widen(w[0]);
            }
        }
    }
}

/// Depth of a packed bf16 weight: `k` rounded up to even.
pub fn packed_depth(k: usize) -> usize {
    k.div_ceil(2) * 2
}

/// Pack `weight` (`[n, k]`, any dtype) as bf16 panels of width `nr`: column blocks of [`NC`],
/// each holding its depth blocks of [`depth_block`] one after the other, each of those `nc / nr` panels
/// laid out `[kc / 2][nr][2]`. Returns `round_up(n, nr) · packed_depth(k)` values.
pub fn pack_weight(weight: &Matrix<'_>, nr: usize) -> alloc::vec::Vec<u16> {
    let (n, k) = (weight.rows, weight.cols);
    let depth = packed_depth(k);
    let mut out = alloc::vec![0u16; n.div_ceil(nr) * nr * depth];
    let mut row = alloc::vec![0.0f32; k];
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        let width = nc.div_ceil(nr) * nr;
        let block = &mut out[jc * depth..jc * depth + width * depth];
        for j in 0..nc {
            weight.row_into(jc + j, &mut row);
            let (jp, jj) = (j / nr, j % nr);
            for pc in (0..depth).step_by(depth_block(depth)) {
                let kc = depth_block(depth).min(depth - pc);
                let panel = &mut block[width * pc + jp * kc * nr..][..kc * nr];
                for (p, &v) in row[pc..(pc + kc).min(k)].iter().enumerate() {
                    panel[(p / 2) * 2 * nr + 2 * jj + p % 2] = to_bf16(v);
                }
            }
        }
    }
    out
}

/// Round rows `r0..r0 + rows` of `x` to bf16 into `out` (`rows · depth`, zero-padded);
/// inlined into each x86 copy of [`gemm_bf16`] so that it vectorizes.
#[inline(always)]
fn round_rows(x: MatRef<'_>, r0: usize, rows: usize, depth: usize, out: &mut [u16]) {
    for (r, dst) in out.chunks_exact_mut(depth).take(rows).enumerate() {
        let base = (r0 + r) * x.row_stride;
        if x.col_stride == 1 {
            for (d, &v) in dst.iter_mut().zip(&x.data[base..base + x.cols]) {
                *d = to_bf16(v);
            }
        } else {
            for (p, d) in dst[..x.cols].iter_mut().enumerate() {
                *d = to_bf16(x.data[base + p * x.col_stride]);
            }
        }
        dst[x.cols..].fill(0);
    }
}

multiversion! {
/// `dst (=|+=) alpha · lhs · Wᵀ`, columns `cols_out` of it, for a weight packed by
/// [`pack_weight`] (`panels`, width `isa.bf16_tile().1`, logical `[n, k]`), rounding `lhs` to bf16 one [`MC`]-row block at a
/// time into `act` (at least `MC · packed_depth(k)` long).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_bf16(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    weight: (&[u16], usize),
    init: Init<'_>,
    alpha: f32,
    cols_out: Cols,
    act: &mut [u16],
) {
    let (panels, n) = weight;
    let (mr, nr) = isa.bf16_tile();
    let (m, depth) = (lhs.rows, packed_depth(lhs.cols));
    let mut tile = [0.0f32; MAX_TILE];
    for ic in (0..m).step_by(MC) {
        let rows_here = MC.min(m - ic);
        let act = &mut act[..rows_here * depth];
        round_rows(lhs, ic, rows_here, depth, act);
        for jc in cols_out.blocks() {
            let width = NC.min(n - jc).div_ceil(nr) * nr;
            let column_block = &panels[jc * depth..jc * depth + width * depth];
            let block = depth_block(depth);
            for pc in (0..depth).step_by(block) {
                let kc = block.min(depth - pc);
                let pack = &column_block[width * pc..width * (pc + kc)];
                let first = if pc == 0 { Some(init) } else { None };
                for i0 in (0..rows_here).step_by(mr) {
                    let rows = mr.min(rows_here - i0);
                    let row_start = tile_rows(i0, rows, rows_here, depth, pc);
                    let a = TileRows {
                        a: act,
                        row_start: &row_start,
                        col_stride: 1,
                    };
                    for (jp, j0, cols) in cols_out.panels(jc, width, nr) {
                        let panel = &pack[jp * kc * nr..][..kc * nr];
                        let at =
                            |r: usize| (ic + i0 + r) * dst.row_stride + j0 - cols_out.start;
                        let out =
                            tile_write_out(&mut *dst.data, (rows, cols), at, alpha, first, j0);
                        if rows == mr && cols == nr {
                            // A whole tile: the kernel writes it out itself.
                            isa.bf16_kernel_write(kc, a, panel, out);
                        } else {
                            isa.bf16_kernel(kc, a, panel, &mut tile);
                            out.write(&tile, (rows, cols), nr);
                        }
                    }
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::tests::pseudo;
    use crate::kernels::gemm::{matmul_with, GemmNeeds, GemmScratch, PackedWeight, Precision};
    use crate::kernels::{isa, Rhs};
    use crate::tensor::Storage;
    use alloc::borrow::Cow;

    #[test]
    fn rounding_is_to_nearest_even_and_keeps_specials() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(
            widen(to_bf16(1.0 + 1.0 / 512.0)),
            1.0,
            "a tie rounds to even"
        );
        assert_eq!(widen(to_bf16(1.0 + 3.0 / 512.0)), 1.0 + 4.0 / 512.0);
        assert_eq!(widen(to_bf16(-2.5)), -2.5);
        assert!(widen(to_bf16(f32::NAN)).is_nan());
        assert_eq!(widen(to_bf16(f32::INFINITY)), f32::INFINITY);
        for &x in &[0.1f32, -3.7, 1e-3, 12345.0] {
            let y = widen(to_bf16(x));
            assert!(((y - x) / x).abs() <= 1.0 / 256.0, "{x} -> {y}");
            assert_eq!(
                y,
                half::bf16::from_f32(x).to_f32(),
                "same as the half crate"
            );
        }
    }

    /// Every shape edge: odd depth, a depth over one block, widths that do not fill a panel.
    #[test]
    fn bf16_products_match_a_reference_on_rounded_inputs() {
        let shapes: &[(usize, usize, usize)] = if cfg!(miri) {
            &[(3, 5, 7)]
        } else {
            &[
                (1, 1, 1),
                (3, 5, 7),
                (17, 33, 40),
                (9, 600, 300),
                (100, 64, 70),
            ]
        };
        for &(m, k, n) in shapes {
            let x = pseudo(m * k, 1);
            let w = pseudo(n * k, 2);
            let weight = Matrix {
                storage: Storage::F32(Cow::Borrowed(&w)),
                rows: n,
                cols: k,
            };
            for isa_ in crate::kernels::isa::available() {
                let packed = PackedWeight::with_precision(isa_, &weight, Precision::Bf16);
                let mut scratch = GemmScratch::new(GemmNeeds::for_weight(&weight, m));
                let mut got = alloc::vec![0.5f32; m * n];
                let lhs = MatRef::dense(&x, m, k);
                let dst = MatMut::dense(&mut got, m, n);
                matmul_with(
                    isa_,
                    dst,
                    lhs,
                    Rhs::PackedT(&packed),
                    true,
                    2.0,
                    &mut scratch,
                );
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|p| {
                                let a = widen(to_bf16(x[i * k + p])) as f64;
                                a * widen(to_bf16(w[j * k + p])) as f64
                            })
                            .sum();
                        let want = 0.5 + 2.0 * want;
                        let got = got[i * n + j] as f64;
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()) * (k as f64).sqrt(),
                            "{} {m}x{k}x{n} [{i},{j}]: {got} vs {want}",
                            isa_.name()
                        );
                    }
                }
            }
        }
        let _ = isa();
    }
}
