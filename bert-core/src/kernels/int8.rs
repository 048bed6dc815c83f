//! int8 products: per-row, per-group dynamic quantization of the activations
//! ([`quantize_rows`]), int8 weight panels (`[k / 4][NR][4]`, optionally stored `w + 128`),
//! the `gemm_i8` driver (exact i32 tiles, rescaled by activation and weight scales in the
//! write-out) and the dot products of the few-rows path. The blocking, the write-out and the
//! column windows are [`super::gemm`]'s.

use super::gemm::{
    round_up, tile_rows, tile_write_out, Cols, GemmScratch, Init, DOT_LANES, KC_I8, MC, NC,
};
use super::isa::{I8WriteOut, Isa, TileRows, I8_K_GROUP, MAX_TILE};
use super::{MatMut, MatRef};

/// Where the int8 driver finds its weight.
#[derive(Clone, Copy)]
pub(super) struct I8Weight<'a> {
    /// `[n, k]` row-major values (packed per product), or panels packed ahead of time.
    pub(super) values: &'a [i8],
    /// One scale per output channel.
    pub(super) scales: &'a [f32],
    /// Whether `values` are already panels.
    pub(super) packed: bool,
    /// Whether the panels hold `w + 128` (see [`Isa::i8_unsigned_weights`]).
    pub(super) unsigned: bool,
}

/// `Σ a[i]·b[i]`: `SMLAD` on Cortex-M cores with the DSP extension, else portable lanes the
/// compiler vectorizes. Integer sums: every version gives the same value.
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
    return super::cortex_m::dot_i8(a, b);
    #[cfg(not(all(target_arch = "arm", feature = "cortex-m-dsp")))]
    dot_i8_portable(a, b)
}

#[inline(always)]
#[cfg_attr(all(target_arch = "arm", feature = "cortex-m-dsp"), allow(dead_code))]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; DOT_LANES];
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += i32::from(x) * i32::from(y);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// One activation row quantized by [`quantize_rows`] (its first `k` values, `act_scales` one
/// per group of [`KC_I8`]) against one int8 weight row of `k` values: `Σ dot · scale` over the
/// groups, before the weight row's own scale (the few-rows products and the row-wise ones).
#[inline(always)]
pub(super) fn dot_i8_groups(x: &[i8], w: &[i8], act_scales: &[f32]) -> f32 {
    x.chunks(KC_I8)
        .zip(w.chunks(KC_I8))
        .zip(act_scales)
        .map(|((x, w), s)| dot_i8(x, w) as f32 * s)
        .sum::<f32>()
}

/// [`dot_i8_groups`] for up to four activation rows at once (row `r` of `q` starts at
/// `r · depth`, its group scales at `r · groups`), the weight row read once per word for all
/// of them: `out[r] = Σ_g dot_g · act_scale_g`, summed over the groups in order (the row-wise
/// products).
#[inline(always)]
pub(super) fn dot_i8_groups_rows(
    q: &[i8],
    depth: usize,
    rows: usize,
    w: &[i8],
    act_scales: &[f32],
    out: &mut [f32],
) {
    let k = w.len();
    let groups = depth.div_ceil(KC_I8);
    out[..rows].fill(-0.0);
    for (g, start) in (0..k).step_by(KC_I8).enumerate() {
        let span = start..(start + KC_I8).min(k);
        let mut dots = [0i32; 4];
        dot_i8_rows(q, depth, rows, span, w, &mut dots);
        for (r, (o, d)) in out[..rows].iter_mut().zip(dots).enumerate() {
            *o += d as f32 * act_scales[r * groups + g];
        }
    }
}

/// `dots[r] = q[r · depth + span] · w[span]` for `r < rows ≤ 4`.
#[inline(always)]
fn dot_i8_rows(
    q: &[i8],
    depth: usize,
    rows: usize,
    span: core::ops::Range<usize>,
    w: &[i8],
    dots: &mut [i32; 4],
) {
    #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
    return super::cortex_m::dot_i8_rows(q, depth, rows, span, w, dots);
    #[cfg(not(all(target_arch = "arm", feature = "cortex-m-dsp")))]
    for (r, d) in dots.iter_mut().enumerate().take(rows) {
        let x = &q[r * depth..];
        *d = dot_i8(&x[span.clone()], &w[span.clone()]);
    }
}

/// The same for int8 weights `[n, k]`: depth blocks of [`KC_I8`] over `k` rounded up to
/// [`I8_K_GROUP`], each as [`pack_i8`] lays it out.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn pack_column_block_i8(
    values: &[i8],
    k: usize,
    jc: usize,
    nc: usize,
    nr: usize,
    unsigned: bool,
    out: &mut [i8],
) {
    let (width, depth) = (round_up(nc, nr), round_up(k, I8_K_GROUP));
    for pc in (0..depth).step_by(KC_I8) {
        let kc = KC_I8.min(depth - pc);
        let block = &mut out[width * pc..width * (pc + kc)];
        pack_i8(values, k, pc, kc, jc, nc, nr, unsigned, block);
    }
}

/// Quantize each row of `x` to int8, one scale `max|x| / 127` (0 for zeros) per group of
/// [`KC_I8`] values, rounding to nearest (ties to even); `out` rows are `depth` long (≥
/// `x.cols`, a multiple of [`I8_K_GROUP`]), zero-padded; `scales` and `sums` (the sum of each
/// group's quantized values) are `[rows][depth / KC_I8 rounded up]`.
#[inline(always)]
pub fn quantize_rows(
    x: MatRef<'_>,
    depth: usize,
    out: &mut [i8],
    scales: &mut [f32],
    sums: &mut [i32],
) {
    /// 1.5 · 2²³: adding it rounds an f32 below 2²² to an integer, found in the low mantissa.
    const MAGIC: f32 = 12_582_912.0;
    let groups = depth.div_ceil(KC_I8);
    let mut gathered = [0.0f32; KC_I8];
    for (i, ((q, row_scales), row_sums)) in out
        .chunks_exact_mut(depth)
        .zip(scales.chunks_exact_mut(groups))
        .zip(sums.chunks_exact_mut(groups))
        .take(x.rows)
        .enumerate()
    {
        q[x.cols..].fill(0);
        for (g, (scale, sum)) in row_scales.iter_mut().zip(row_sums.iter_mut()).enumerate() {
            let start = g * KC_I8;
            let len = KC_I8.min(x.cols.saturating_sub(start));
            let base = i * x.row_stride + start * x.col_stride;
            let src: &[f32] = if x.col_stride == 1 {
                &x.data[base..base + len]
            } else {
                for (p, v) in gathered[..len].iter_mut().enumerate() {
                    *v = x.data[base + p * x.col_stride];
                }
                &gathered[..len]
            };
            // A comparison, not `f32::max`: the same value (no NaN reaches the accumulator),
            // without a call to `fmaxf` per element on cores without a max instruction.
            let amax = src
                .iter()
                .fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
            *scale = amax / 127.0;
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            for (q, v) in q[start..start + len].iter_mut().zip(src) {
                // |v · inv| <= 127, so the rounded value is exact in the low bits.
                *q = ((v * inv + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32) as i8;
            }
            *sum = q[start..start + len].iter().map(|&v| i32::from(v)).sum();
        }
    }
}

multiversion! {
/// The int8 driver: quantize the rows, pack, run the int8 tiles, rescale.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_i8(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    weight_n: (I8Weight<'_>, usize),
    init: Init<'_>,
    alpha: f32,
    cols_out: Cols,
    scratch: &mut GemmScratch,
) {
    let (weight, n) = weight_n;
    let w_scales = weight.scales;
    let (mr, nr) = isa.i8_tile();
    let (m, k) = (lhs.rows, lhs.cols);
    let depth = round_up(k, I8_K_GROUP);
    let act = &mut scratch.act_i8[..m * depth];
    let groups = depth.div_ceil(KC_I8);
    let act_scales = &mut scratch.act_scales[..m * groups];
    let act_sums = &mut scratch.act_sums[..m * groups];
    quantize_rows(lhs, depth, act, act_scales, act_sums);
    let offset = if weight.unsigned { 128 } else { 0 };
    let mut tile = [0i32; MAX_TILE];
    for jc in cols_out.blocks() {
        let nc = NC.min(n - jc);
        let width = round_up(nc, nr);
        let column_block: &[i8] = if weight.packed {
            &weight.values[jc * depth..jc * depth + width * depth]
        } else {
            let pack = &mut scratch.pack_i8[..width * depth];
            pack_column_block_i8(weight.values, k, jc, nc, nr, weight.unsigned, pack);
            pack
        };
        for ic in (0..m).step_by(MC) {
            let rows_end = (ic + MC).min(m);
            for pc in (0..depth).step_by(KC_I8) {
                let kc = KC_I8.min(depth - pc);
                let pack = &column_block[width * pc..width * (pc + kc)];
                let first = if pc == 0 { Some(init) } else { None };
                for i0 in (ic..rows_end).step_by(mr) {
                    let rows = mr.min(rows_end - i0);
                    let row_start = tile_rows(i0, rows, m, depth, pc);
                    let a = TileRows {
                        a: &*act,
                        row_start: &row_start,
                        col_stride: 1,
                    };
                    for (jp, j0, cols) in cols_out.panels(jc, width, nr) {
                        let panel = &pack[jp * kc * nr..][..kc * nr];
                        let at = |r: usize| (i0 + r) * dst.row_stride + j0 - cols_out.start;
                        // Rows past `rows` repeat the last one (never written).
                        let g = |r: usize| (i0 + r.min(rows - 1)) * groups + pc / KC_I8;
                        let out = I8WriteOut {
                            out: tile_write_out(&mut *dst.data, (rows, cols), at, 1.0, first, j0),
                            scale: core::array::from_fn(|r| alpha * act_scales[g(r)]),
                            shift: core::array::from_fn(|r| offset * act_sums[g(r)]),
                            w: &w_scales[j0..j0 + cols],
                        };
                        if rows == mr && cols == nr {
                            // A whole tile: the kernel writes it out itself.
                            isa.i8_kernel_write(kc, a, panel, out);
                        } else {
                            isa.i8_kernel(kc, a, panel, &mut tile);
                            out.write(&tile, (rows, cols), nr);
                        }
                    }
                }
            }
        }
    }
}
}

/// Pack `Wᵀ[pc..pc+kc, jc..jc+nc]` (W int8 `[n, k]`) as panels of `[kc / 4][nr][4]`,
/// zero-padded past `k` and past the last column; stored as `w + 128` when `unsigned`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_i8(
    w: &[i8],
    k: usize,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    nr: usize,
    unsigned: bool,
    pack: &mut [i8],
) {
    const G: usize = I8_K_GROUP;
    for (jp, panel) in pack.chunks_exact_mut(kc * nr).enumerate() {
        let j0 = jc + jp * nr;
        let cols = nr.min(jc + nc - j0);
        let real = k.saturating_sub(pc).min(kc);
        if cols < nr || real < kc {
            panel.fill(0);
        }
        for j in 0..cols {
            let src = &w[(j0 + j) * k + pc..][..real];
            for (g, chunk) in src.chunks(G).enumerate() {
                panel[(g * nr + j) * G..][..chunk.len()].copy_from_slice(chunk);
            }
        }
        if unsigned {
            // w + 128 as an unsigned byte is w's bit pattern with the top bit flipped.
            panel.iter_mut().for_each(|v| *v ^= i8::MIN);
        }
    }
}
