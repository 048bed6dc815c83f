//! The matrix-multiply driver, shared by every instruction set: cache blocking, packing of the
//! right-hand operand (which is where f16 / bf16 weights are widened), the f32 driver and the
//! few-rows path, dispatch to the int8 ([`super::int8`]) and bf16 ([`super::bf16`]) drivers,
//! column windows, and the write-out (scale, accumulate, edges). The register tiles come from
//! the [`Isa`] chosen once in [`super::isa::isa`].
//!
//! Every buffer lives in a caller-provided [`GemmScratch`], so a product allocates nothing.

use alloc::vec;
use alloc::vec::Vec;

pub use super::int8::quantize_rows;
use super::int8::{dot_i8_groups, gemm_i8, I8Weight};
use super::isa::{F32WriteOut, Isa, TileRows, I8_K_GROUP, MAX_MR, MAX_TILE};
use super::packed::Panels;
pub use super::packed::{PackedWeight, Precision};
use super::{MatMut, MatRef};
use crate::tensor::{Matrix, Storage};

/// Deepest packed block of the right-hand operand (f32 and bf16 elements); a product's
/// block is [`depth_block`]. Each block ends in a write-out of the output tile, so on x86-64,
/// whose L2 feeds the tiles' weight panels fast enough, a deep block pays. 1536 against 512
/// on Zen 5, 2 threads, interleaved runs: bert-base 1 × 128 +4% (f32) and +4-8% (bf16),
/// MiniLM 1 × 128 and 32 × 128 +2%, bert-base 32 × 128 level. Elsewhere (NEON, Cortex-M:
/// small caches, and a KC-long scratch row) it stays 512.
pub const KC: usize = if cfg!(target_arch = "x86_64") {
    1536
} else {
    512
};

/// The depth block of a product with `k`-long sums: [`KC`] up to `2 · KC`, 512 beyond. Each
/// block's partial sum is added to the output separately, so long sums (a vocabulary-wide
/// decoder's backward, k = 30522) keep 512-deep blocks for their accuracy: with 1536 there,
/// the SPLADE masked LM's gradients drift from 6.2e-6 to 1.2e-5 of torch's.
#[inline(always)]
pub const fn depth_block(k: usize) -> usize {
    if k <= 2 * KC {
        KC
    } else {
        512
    }
}

/// Width of one packed block of the right-hand operand (a multiple of every kernel's `NR`).
pub const NC: usize = 256;
/// Rows of the output kept in cache across the depth blocks (a multiple of every `MR`).
pub const MC: usize = 96;
/// Depth of one packed int8 block (a multiple of [`I8_K_GROUP`]), and the group size of the
/// activation quantization: each row gets one scale per block of this many values, which
/// keeps an outlier from flattening a whole 1536-wide row. The i32 sums of a block cannot
/// overflow (128 · 255 · 127 < 2³¹).
pub const KC_I8: usize = 256;

/// The right-hand operand `B` (logical `[k, n]`) of `C = A · B`.
#[derive(Clone, Copy)]
pub enum Rhs<'a> {
    /// An f32 view.
    Dense(MatRef<'a>),
    /// `B = Wᵀ` for a weight `W` stored `[n, k]` in any dtype: f32, f16 and bf16 are widened
    /// while packing; int8 runs the int8 kernel on dynamically quantized activations.
    WeightT(&'a Matrix<'a>),
    /// `B = Wᵀ` for a weight packed ahead of time ([`PackedWeight`]): no packing per product.
    PackedT(&'a PackedWeight),
}

/// What one product needs from a [`GemmScratch`]: the rows and depth of its left operand,
/// and whether it is an int8 product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GemmNeeds {
    /// Rows of the left operand (int8 only: they are quantized all at once).
    pub rows: usize,
    /// Depth `k`.
    pub depth: usize,
    /// Whether an int8 weight is involved.
    pub int8: bool,
}

impl GemmNeeds {
    /// The needs of `x[rows, W.cols] · Wᵀ`.
    pub fn for_weight(weight: &Matrix<'_>, rows: usize) -> Self {
        GemmNeeds {
            rows,
            depth: weight.cols,
            int8: matches!(weight.storage, Storage::I8 { .. }),
        }
    }

    /// Enough for both.
    pub fn max(self, other: Self) -> Self {
        GemmNeeds {
            rows: self.rows.max(other.rows),
            depth: self.depth.max(other.depth),
            int8: self.int8 || other.int8,
        }
    }
}

/// Packing buffers and quantized activations for [`matmul`], sized once.
#[derive(Debug, Clone)]
pub struct GemmScratch {
    pack_f32: Vec<f32>,
    row_f32: Vec<f32>,
    pub(super) pack_i8: Vec<i8>,
    pub(super) act_i8: Vec<i8>,
    pub(super) act_scales: Vec<f32>,
    pub(super) act_sums: Vec<i32>,
    /// One [`MC`]-row block of the left operand rounded to bf16 (bf16 products).
    act_bf16: Vec<u16>,
}

pub(super) fn round_up(x: usize, to: usize) -> usize {
    x.div_ceil(to) * to
}

impl GemmScratch {
    /// Buffers for products described by `needs`.
    pub fn new(needs: GemmNeeds) -> Self {
        let (q_rows, q_depth) = if needs.int8 {
            (needs.rows, round_up(needs.depth, I8_K_GROUP))
        } else {
            (0, 0)
        };
        GemmScratch {
            pack_f32: vec![0.0; needs.depth.max(1) * NC],
            row_f32: vec![0.0; KC],
            pack_i8: vec![0; q_depth * NC],
            act_i8: vec![0; q_rows * q_depth],
            act_scales: vec![0.0; q_rows * q_depth.div_ceil(KC_I8)],
            act_sums: vec![0; q_rows * q_depth.div_ceil(KC_I8)],
            act_bf16: vec![0; MC * super::bf16::packed_depth(needs.depth)],
        }
    }

    /// Bytes held.
    pub fn size_in_bytes(&self) -> usize {
        4 * (self.pack_f32.len() + self.row_f32.len() + 2 * self.act_scales.len())
            + self.pack_i8.len()
            + self.act_i8.len()
            + 2 * self.act_bf16.len()
    }
}

/// `dst = alpha · lhs · rhs`, or `dst += alpha · lhs · rhs` when `accumulate`.
///
/// Panics if shapes disagree, a view reaches past its slice, or `scratch` was sized for less:
/// bugs of the caller inside this crate, never a consequence of user input.
pub fn matmul(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    accumulate: bool,
    alpha: f32,
    scratch: &mut GemmScratch,
) {
    matmul_with(super::isa::isa(), dst, lhs, rhs, accumulate, alpha, scratch)
}

/// `dst = lhs · rhs + bias` (one bias value per column), the product of a linear layer: the
/// bias is added in the write-out, so the output is written once, never pre-filled.
pub fn matmul_bias(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    bias: Option<&[f32]>,
    scratch: &mut GemmScratch,
) {
    let init = bias.map_or(Init::Zero, Init::Bias);
    let n = dst.cols;
    product(
        super::isa::isa(),
        dst,
        lhs,
        rhs,
        init,
        1.0,
        Cols::all(n),
        scratch,
    )
}

/// Columns that a split product may start at: every kernel's `NR` divides it.
pub const COLUMN_ALIGN: usize = super::isa::MAX_NR;

/// Columns `cols` of `lhs · rhs + bias` into `dst` (`dst.cols == cols.len()`; `bias`, if
/// any, covers every column of the product), so that two threads can share one product of a
/// few rows by columns. `cols.start` must be a multiple of [`COLUMN_ALIGN`]. Each column gets
/// the same value as from [`matmul_bias`].
pub fn matmul_bias_cols(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    bias: Option<&[f32]>,
    cols: core::ops::Range<usize>,
    scratch: &mut GemmScratch,
) {
    matmul_bias_cols_with(super::isa::isa(), dst, lhs, rhs, bias, cols, scratch)
}

/// [`matmul_bias_cols`] with a given instruction set.
pub(crate) fn matmul_bias_cols_with(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    bias: Option<&[f32]>,
    cols: core::ops::Range<usize>,
    scratch: &mut GemmScratch,
) {
    assert!(
        cols.start.is_multiple_of(COLUMN_ALIGN) && cols.start <= cols.end,
        "matmul: column window"
    );
    let init = bias.map_or(Init::Zero, Init::Bias);
    let cols = Cols {
        start: cols.start,
        end: cols.end,
    };
    product(isa, dst, lhs, rhs, init, 1.0, cols, scratch)
}

/// The columns of the full product a call computes (`start` a multiple of every `NR`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cols {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

impl Cols {
    fn all(n: usize) -> Self {
        Cols { start: 0, end: n }
    }

    /// The column blocks of [`NC`] that hold these columns.
    #[inline(always)]
    pub(crate) fn blocks(self) -> core::iter::StepBy<core::ops::Range<usize>> {
        (self.start / NC * NC..self.end).step_by(NC)
    }

    /// The panels of the block at `jc` (`width` columns packed, panels of `nr`) that hold
    /// these columns: (panel index, first column, columns of it to write).
    #[inline(always)]
    pub(crate) fn panels(
        self,
        jc: usize,
        width: usize,
        nr: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..width / nr)
            .map(move |jp| (jp, jc + jp * nr))
            .filter(move |&(_, j0)| j0 >= self.start && j0 < self.end)
            .map(move |(jp, j0)| (jp, j0, nr.min(self.end - j0)))
    }
}

/// What the output starts from.
#[derive(Clone, Copy)]
pub(crate) enum Init<'a> {
    /// Zero: `dst = alpha · A · B`.
    Zero,
    /// Its current value: `dst += alpha · A · B`.
    Keep,
    /// A bias per column: `dst = alpha · A · B + bias`.
    Bias(&'a [f32]),
}

/// [`matmul`] with a given instruction set (tests compare every one with the scalar kernels).
pub fn matmul_with(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    accumulate: bool,
    alpha: f32,
    scratch: &mut GemmScratch,
) {
    let init = if accumulate { Init::Keep } else { Init::Zero };
    let n = dst.cols;
    product(isa, dst, lhs, rhs, init, alpha, Cols::all(n), scratch)
}

#[allow(clippy::too_many_arguments)]
fn product(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs: Rhs<'_>,
    init: Init<'_>,
    alpha: f32,
    cols: Cols,
    scratch: &mut GemmScratch,
) {
    let (k, n) = match rhs {
        Rhs::Dense(b) => (b.rows, b.cols),
        Rhs::WeightT(w) => (w.cols, w.rows),
        Rhs::PackedT(p) => {
            assert!(p.fits(isa), "matmul: weight packed for another kernel");
            p.shape_kn()
        }
    };
    let m = lhs.rows;
    assert_eq!(lhs.cols, k, "matmul: inner dimensions differ");
    assert!(cols.end <= n, "matmul: column window");
    let width = cols.end - cols.start;
    assert!(dst.rows == m && dst.cols == width, "matmul: output shape");
    if m == 0 || width == 0 {
        return;
    }
    assert!(
        (m - 1) * dst.row_stride + width <= dst.data.len(),
        "matmul: output view out of bounds"
    );
    if let Init::Bias(b) = init {
        assert_eq!(b.len(), n, "matmul: bias length");
    }
    if k == 0 {
        for r in 0..m {
            let d = &mut dst.data[r * dst.row_stride..][..width];
            match init {
                Init::Zero => d.fill(0.0),
                Init::Keep => {}
                Init::Bias(b) => d.copy_from_slice(&b[cols.start..cols.end]),
            }
        }
        return;
    }
    assert!(
        lhs.last_index() < lhs.data.len(),
        "matmul: lhs out of bounds"
    );
    if let Rhs::WeightT(w) = rhs {
        if m <= GEMV_ROWS && lhs.col_stride == 1 {
            return gemv(dst, lhs, w, init, alpha, cols, scratch);
        }
    }
    match rhs {
        Rhs::WeightT(Matrix {
            storage: Storage::I8 { values, scales },
            ..
        }) => {
            let weight = I8Weight {
                values,
                scales,
                packed: false,
                unsigned: isa.i8_unsigned_weights(),
            };
            gemm_i8(isa, dst, lhs, (weight, n), init, alpha, cols, scratch)
        }
        Rhs::PackedT(PackedWeight {
            panels: Panels::Bf16(panels),
            n,
            ..
        }) => super::bf16::gemm_bf16(
            isa,
            dst,
            lhs,
            (panels, *n),
            init,
            alpha,
            cols,
            &mut scratch.act_bf16,
        ),
        Rhs::PackedT(p) => match p.int8() {
            Some(weight) => gemm_i8(isa, dst, lhs, (weight, n), init, alpha, cols, scratch),
            None => gemm_f32(isa, dst, lhs, (rhs, n), init, alpha, cols, scratch),
        },
        _ => gemm_f32(isa, dst, lhs, (rhs, n), init, alpha, cols, scratch),
    }
}

/// The write-out of a tile's first `rows` rows and `cols` columns, row `r` starting at
/// `at(r)` in `dst` and column 0 being output column `j0`: over what the output starts from on
/// the first depth block (`first`), added to it on later ones (`None`).
#[inline(always)]
pub(crate) fn tile_write_out<'a>(
    dst: &'a mut [f32],
    (rows, cols): (usize, usize),
    at: impl Fn(usize) -> usize,
    alpha: f32,
    first: Option<Init<'a>>,
    j0: usize,
) -> F32WriteOut<'a> {
    F32WriteOut {
        rows: core::array::from_fn(|r| if r < rows { at(r) } else { 0 }),
        alpha,
        bias: match first {
            Some(Init::Bias(b)) => Some(&b[j0..j0 + cols]),
            _ => None,
        },
        accumulate: matches!(first, None | Some(Init::Keep)),
        dst,
    }
}

/// Row starts of a tile at row `i0`, repeating the last real row for unused rows.
pub(crate) fn tile_rows(
    i0: usize,
    rows: usize,
    m: usize,
    row_stride: usize,
    offset: usize,
) -> [usize; MAX_MR] {
    core::array::from_fn(|r| (i0 + r.min(rows - 1)).min(m - 1) * row_stride + offset)
}

multiversion! {
/// The f32 driver (compiled per x86 level too, so the write-out and packing vectorize).
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    isa: &dyn Isa,
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    rhs_n: (Rhs<'_>, usize),
    init: Init<'_>,
    alpha: f32,
    cols_out: Cols,
    scratch: &mut GemmScratch,
) {
    let (rhs, n) = rhs_n;
    let (mr, nr) = isa.f32_tile();
    let (m, k) = (lhs.rows, lhs.cols);
    let mut tile = [0.0f32; MAX_TILE];
    for jc in cols_out.blocks() {
        let nc = NC.min(n - jc);
        let width = round_up(nc, nr);
        // The whole column block, every depth block after the other.
        let column_block: &[f32] = match rhs {
            Rhs::PackedT(p) => p.column_block(jc),
            _ => {
                let pack = &mut scratch.pack_f32[..width * k];
                pack_column_block_f32(rhs, k, jc, nc, nr, pack, &mut scratch.row_f32);
                pack
            }
        };
        // A block of rows goes through every depth block while its output stays in cache.
        for ic in (0..m).step_by(MC) {
          let rows_end = (ic + MC).min(m);
          let block = depth_block(k);
          for pc in (0..k).step_by(block) {
            let kc = block.min(k - pc);
            let pack = &column_block[width * pc..width * (pc + kc)];
            let first = if pc == 0 { Some(init) } else { None };
            for i0 in (ic..rows_end).step_by(mr) {
                let rows = mr.min(rows_end - i0);
                let row_start = tile_rows(i0, rows, m, lhs.row_stride, pc * lhs.col_stride);
                let a = TileRows {
                    a: lhs.data,
                    row_start: &row_start,
                    col_stride: lhs.col_stride,
                };
                for (jp, j0, cols) in cols_out.panels(jc, width, nr) {
                    let panel = &pack[jp * kc * nr..][..kc * nr];
                    let at = |r: usize| (i0 + r) * dst.row_stride + j0 - cols_out.start;
                    let out = tile_write_out(&mut *dst.data, (rows, cols), at, alpha, first, j0);
                    if rows == mr && cols == nr {
                        // A whole tile: the kernel writes it out itself.
                        isa.f32_kernel_write(kc, a, panel, out);
                    } else {
                        isa.f32_kernel(kc, a, panel, &mut tile);
                        out.write(&tile, (rows, cols), nr);
                    }
                }
            }
          }
        }
    }
}
}

/// Up to this many rows, a product with an unpacked weight reads the weight's rows directly
/// (dot products) instead of packing it: packing costs as much as the arithmetic when it is
/// used for so few rows (the pooler, classifier heads, fill-mask's few `[MASK]` positions).
pub const GEMV_ROWS: usize = 4;

/// Lanes of the dot products' partial sums.
pub(super) const DOT_LANES: usize = 16;

#[inline(always)]
pub(super) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (ca, cb) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
/// `dst = init + alpha · lhs · Wᵀ` for a few rows, one weight row at a time (f16 / bf16 rows
/// widened a block at a time; int8 rows against the rows quantized as in [`gemm_i8`]).
fn gemv(
    dst: MatMut<'_>,
    lhs: MatRef<'_>,
    weight: &Matrix<'_>,
    init: Init<'_>,
    alpha: f32,
    cols: Cols,
    scratch: &mut GemmScratch,
) {
    let (m, k) = (lhs.rows, lhs.cols);
    let row = |i: usize| &lhs.data[i * lhs.row_stride..][..k];
    let mut out = [0.0f32; GEMV_ROWS];
    let quantized = if let Storage::I8 { .. } = weight.storage {
        let depth = round_up(k, I8_K_GROUP);
        let groups = depth.div_ceil(KC_I8);
        let act = &mut scratch.act_i8[..m * depth];
        let (scales, sums) = (&mut scratch.act_scales[..m * groups], &mut scratch.act_sums[..m * groups]);
        quantize_rows(lhs, depth, act, scales, sums);
        Some((depth, groups))
    } else {
        None
    };
    for j in cols.start..cols.end {
        match (&weight.storage, quantized) {
            (Storage::I8 { values, scales }, Some((depth, groups))) => {
                let w = &values[j * k..(j + 1) * k];
                for (i, o) in out[..m].iter_mut().enumerate() {
                    let x = &scratch.act_i8[i * depth..i * depth + k];
                    let s = &scratch.act_scales[i * groups..(i + 1) * groups];
                    *o = dot_i8_groups(x, w, s) * scales[j];
                }
            }
            (Storage::F32(w), _) => {
                let w = &w[j * k..(j + 1) * k];
                for (i, o) in out[..m].iter_mut().enumerate() {
                    *o = dot_f32(row(i), w);
                }
            }
            (storage, _) => {
                out[..m].fill(0.0);
                let block = depth_block(k);
                for p0 in (0..k).step_by(block) {
                    let len = block.min(k - p0);
                    let w = &mut scratch.row_f32[..len];
                    storage.read_f32(j * k + p0, w);
                    for (i, o) in out[..m].iter_mut().enumerate() {
                        *o += dot_f32(&row(i)[p0..p0 + len], w);
                    }
                }
            }
        }
        for (i, &o) in out[..m].iter().enumerate() {
            let d = &mut dst.data[i * dst.row_stride + j - cols.start];
            *d = match init {
                Init::Zero => alpha * o,
                Init::Keep => *d + alpha * o,
                Init::Bias(b) => alpha * o + b[j],
            };
        }
    }
}
}

/// Pack the column block `jc..jc + nc` of `B` (logical `[k, n]`) into `out`
/// (`round_up(nc, nr) · k` long): its depth blocks of [`depth_block`] one after the other, each as
/// [`pack_f32`] lays it out. Used per product and, once, by [`PackedWeight`].
#[inline(always)]
pub(super) fn pack_column_block_f32(
    rhs: Rhs<'_>,
    k: usize,
    jc: usize,
    nc: usize,
    nr: usize,
    out: &mut [f32],
    row: &mut [f32],
) {
    let (width, block) = (round_up(nc, nr), depth_block(k));
    for pc in (0..k).step_by(block) {
        let kc = block.min(k - pc);
        pack_f32(
            rhs,
            pc,
            kc,
            jc,
            nc,
            nr,
            &mut out[width * pc..width * (pc + kc)],
            row,
        );
    }
}

/// Pack `B[pc..pc+kc, jc..jc+nc]` as `nc / nr` panels of `[kc][nr]`, zero-padded on the right.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pack_f32(
    rhs: Rhs<'_>,
    pc: usize,
    kc: usize,
    jc: usize,
    nc: usize,
    nr: usize,
    pack: &mut [f32],
    row: &mut [f32],
) {
    for (jp, panel) in pack.chunks_exact_mut(kc * nr).enumerate() {
        let j0 = jc + jp * nr;
        let cols = nr.min(jc + nc - j0);
        if cols < nr {
            panel.fill(0.0);
        }
        match rhs {
            Rhs::Dense(b) if b.col_stride == 1 => {
                // Rows of B are contiguous (attention's V): copy.
                for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                    let base = (pc + p) * b.row_stride + j0;
                    out[..cols].copy_from_slice(&b.data[base..base + cols]);
                }
            }
            Rhs::Dense(b) if b.row_stride == 1 => {
                // Columns of B are contiguous (attention's Kᵀ): read each column once.
                for j in 0..cols {
                    let base = pc + (j0 + j) * b.col_stride;
                    for (p, &v) in b.data[base..base + kc].iter().enumerate() {
                        panel[p * nr + j] = v;
                    }
                }
            }
            Rhs::Dense(b) => {
                for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                    let base = (pc + p) * b.row_stride + j0 * b.col_stride;
                    for (j, o) in out[..cols].iter_mut().enumerate() {
                        *o = b.data[base + j * b.col_stride];
                    }
                }
            }
            Rhs::PackedT(_) => unreachable!("packed weights are not packed again"),
            Rhs::WeightT(w) => {
                let row = &mut row[..kc];
                for j in 0..cols {
                    w.storage.read_f32((j0 + j) * w.cols + pc, row);
                    for (p, &v) in row.iter().enumerate() {
                        panel[p * nr + j] = v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "gemm_tests.rs"]
pub(crate) mod tests;
