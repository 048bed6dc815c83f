//! The one place that knows about instruction sets: the [`Isa`] trait (two micro-kernels and
//! their tile shapes) and [`isa`], which picks the best implementation for this CPU once.
//!
//! Everything else — blocking, packing, quantizing activations, scaling, edges — is shared
//! code in [`super::gemm`], written once against this trait.

use core::sync::atomic::{AtomicU8, Ordering};

/// Most rows any micro-kernel handles at once.
pub const MAX_MR: usize = 12;
/// Most columns any micro-kernel handles at once.
pub const MAX_NR: usize = 32;
/// Elements of the largest register tile.
pub const MAX_TILE: usize = MAX_MR * MAX_NR;
/// The int8 kernels consume `k` in groups of this many values; packed panels are padded to it.
pub const I8_K_GROUP: usize = 4;

/// Where a micro-kernel reads the rows of its left operand.
///
/// Row `r` of the tile is `a[row_start[r] + p * col_stride]` for `p < k`. The driver repeats
/// the last real row for the tile's unused rows, so kernels never branch on edges.
#[derive(Clone, Copy)]
pub struct TileRows<'a, T> {
    /// The operand.
    pub a: &'a [T],
    /// Start of each of the tile's `MR` rows.
    pub row_start: &'a [usize; MAX_MR],
    /// Distance between consecutive `k` elements of a row.
    pub col_stride: usize,
}

/// One instruction set's micro-kernels.
///
/// Each computes a full `MR x NR` register tile from a packed right-hand panel and writes the
/// raw sums, row-major with row stride `NR`, to the start of `out`. Kernels check the bounds of
/// everything they read before they start (so a wrong driver panics, it cannot read out of
/// bounds).
pub trait Isa: Sync {
    /// A short name for logs and benchmarks (`avx512vnni`, `avx2`, `neon`, `scalar`).
    fn name(&self) -> &'static str;

    /// `(MR, NR)` of the f32 kernel.
    fn f32_tile(&self) -> (usize, usize);

    /// `out[r][j] = Σ_{p<k} a[r][p] · panel[p · NR + j]`.
    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]);

    /// [`f32_kernel`](Self::f32_kernel) for a whole `MR × NR` tile, then its write-out (see
    /// [`F32WriteOut`]). The default runs the two steps in plain Rust.
    fn f32_kernel_write(
        &self,
        k: usize,
        a: TileRows<'_, f32>,
        panel: &[f32],
        out: F32WriteOut<'_>,
    ) {
        let mut tile = [0.0f32; MAX_TILE];
        self.f32_kernel(k, a, panel, &mut tile);
        let (mr, nr) = self.f32_tile();
        out.write(&tile, (mr, nr), nr);
    }

    /// `(MR, NR)` of the int8 kernel.
    fn i8_tile(&self) -> (usize, usize);

    /// Whether this kernel wants its packed weights stored unsigned, as `w + 128` (the bit
    /// pattern `w ^ 0x80`): `vpdpbusd` multiplies unsigned by signed bytes. The driver then
    /// subtracts `128 · Σ a` itself.
    fn i8_unsigned_weights(&self) -> bool {
        false
    }

    /// `out[r][j] = Σ_{p<k} a[r][p] · b[p][j]` exactly, in i32, for activations in
    /// `-127..=127` and weights in `-127..=127` (or `1..=255` when
    /// [`i8_unsigned_weights`](Self::i8_unsigned_weights)). `k` is a multiple of
    /// [`I8_K_GROUP`]; the panel holds `b` as `[k / 4][NR][4]` (four consecutive `k` of one
    /// column together); `a`'s column stride is 1.
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]);

    /// [`i8_kernel`](Self::i8_kernel) for a whole `MR × NR` tile, then its write-out:
    /// `d[r][j] (= | +=) (out[r][j] - shift[r]) as f32 · scale[r] · w[j] (+ bias[j])`, with
    /// exactly that rounding (no fused multiply-add). The default runs the two steps in plain
    /// Rust; a kernel can write out from its registers instead.
    fn i8_kernel_write(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: I8WriteOut<'_>) {
        let mut tile = [0i32; MAX_TILE];
        self.i8_kernel(k, a, panel, &mut tile);
        let (mr, nr) = self.i8_tile();
        out.write(&tile, (mr, nr), nr);
    }

    /// `(MR, NR)` of the bf16 kernel.
    fn bf16_tile(&self) -> (usize, usize) {
        (4, 16)
    }

    /// Whether [`bf16_kernel`](Self::bf16_kernel) runs on bf16 hardware (otherwise it is the
    /// portable kernel, slower than f32 products).
    fn bf16_native(&self) -> bool {
        false
    }

    /// `out[r][j] = Σ_{p<k} a[r][p] · b[p][j]` over bf16 values (raw bits) with f32 sums. `k`
    /// is even; the panel holds `b` as `[k / 2][NR][2]`; `a`'s column stride is 1. The
    /// default is [`super::bf16::portable_kernel`].
    fn bf16_kernel(
        &self,
        k: usize,
        a: TileRows<'_, u16>,
        panel: &[u16],
        out: &mut [f32; MAX_TILE],
    ) {
        super::bf16::portable_kernel(self.bf16_tile(), k, a, panel, out)
    }

    /// [`bf16_kernel`](Self::bf16_kernel) for a whole `MR × NR` tile, then its write-out (see
    /// [`F32WriteOut`]). The default runs the two steps in plain Rust.
    fn bf16_kernel_write(
        &self,
        k: usize,
        a: TileRows<'_, u16>,
        panel: &[u16],
        out: F32WriteOut<'_>,
    ) {
        let mut tile = [0.0f32; MAX_TILE];
        self.bf16_kernel(k, a, panel, &mut tile);
        let (mr, nr) = self.bf16_tile();
        out.write(&tile, (mr, nr), nr);
    }
}

/// Where a whole f32-sum tile goes: `d[r][j] (= | +=) alpha · sum[r][j] (+ bias[j])`, with
/// exactly that rounding (no fused multiply-add).
pub struct F32WriteOut<'a> {
    /// The output matrix.
    pub dst: &'a mut [f32],
    /// Index in `dst` of each tile row's first column (rows at least `NR` apart).
    pub rows: [usize; MAX_MR],
    /// The product's scale.
    pub alpha: f32,
    /// Per column: a bias to add (`NR` values), where the output starts from it.
    pub bias: Option<&'a [f32]>,
    /// Add to what `dst` holds (a later depth block) instead of overwriting it.
    pub accumulate: bool,
}

impl F32WriteOut<'_> {
    /// The write-out in plain Rust of the first `rows` rows and `cols` columns of sums already
    /// in `tile` (row stride `nr`): whole tiles, and the edges no kernel writes itself.
    pub fn write(self, tile: &[f32; MAX_TILE], (rows, cols): (usize, usize), nr: usize) {
        for r in 0..rows {
            let d = &mut self.dst[self.rows[r]..][..cols];
            for (j, (d, &t)) in d.iter_mut().zip(&tile[r * nr..][..cols]).enumerate() {
                let v = self.alpha * t;
                *d = match (self.accumulate, self.bias) {
                    (true, _) => *d + v,
                    (false, Some(b)) => v + b[j],
                    (false, None) => v,
                };
            }
        }
    }

    /// Whether every row's `nr` columns lie inside `dst` and the bias holds `nr` values.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn fits(&self, mr: usize, nr: usize) -> bool {
        self.rows[..mr].iter().all(|&at| at + nr <= self.dst.len())
            && self.bias.is_none_or(|b| b.len() >= nr)
    }
}

/// Where [`Isa::i8_kernel_write`] writes a whole tile, and how it rescales it: the i32 sums
/// become `(sum - shift[r]) as f32 · scale[r] · w[j]`, which [`F32WriteOut`] (its `alpha` 1,
/// an exact product) then writes.
pub struct I8WriteOut<'a> {
    /// Where the rescaled values go (`alpha` 1).
    pub out: F32WriteOut<'a>,
    /// Per row: the activation scale (times the product's `alpha`).
    pub scale: [f32; MAX_MR],
    /// Per row: what to subtract from the i32 sums first (`128 · Σ a` for unsigned weights).
    pub shift: [i32; MAX_MR],
    /// Per column: the weight scale (`NR` values).
    pub w: &'a [f32],
}

impl I8WriteOut<'_> {
    /// The write-out in plain Rust of the first `rows` rows and `cols` columns of sums already
    /// in `tile` (row stride `nr`), as [`F32WriteOut::write`].
    pub fn write(self, tile: &[i32; MAX_TILE], (rows, cols): (usize, usize), nr: usize) {
        let mut values = [0.0f32; MAX_TILE];
        for r in 0..rows {
            let (scale, shift) = (self.scale[r], self.shift[r]);
            let t = &tile[r * nr..][..cols];
            for ((v, &t), &w) in values[r * nr..][..cols].iter_mut().zip(t).zip(self.w) {
                *v = (t - shift) as f32 * scale * w;
            }
        }
        self.out.write(&values, (rows, cols), nr);
    }

    /// [`F32WriteOut::fits`], and `nr` weight scales.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn fits(&self, mr: usize, nr: usize) -> bool {
        self.out.fits(mr, nr) && self.w.len() >= nr
    }
}

impl<T> TileRows<'_, T> {
    /// The tile's row starts as pointers (for kernels that read with raw pointers after
    /// [`check_tile`]); only checked rows may be dereferenced.
    #[cfg(any(
        target_arch = "x86_64",
        all(target_arch = "aarch64", target_feature = "neon")
    ))]
    pub(crate) fn row_ptrs(&self) -> [*const T; MAX_MR] {
        let base = self.a.as_ptr();
        core::array::from_fn(|r| base.wrapping_add(self.row_start[r]))
    }
}

/// Check what every kernel relies on before it reads anything; `Some(true)` is returned so
/// implementations can `assert!` the result in one line.
pub(crate) fn check_tile<T>(
    k: usize,
    a: &TileRows<'_, T>,
    mr: usize,
    nr: usize,
    panel_len: usize,
) -> bool {
    let rows_ok = a.row_start[..mr]
        .iter()
        .all(|&s| k == 0 || s + (k - 1) * a.col_stride < a.a.len());
    rows_ok && panel_len >= k * nr && mr <= MAX_MR && nr <= MAX_NR
}

const UNSET: u8 = u8::MAX;
static CHOSEN: AtomicU8 = AtomicU8::new(UNSET);

/// Every implementation this build contains, best first; [`isa`] takes the first the CPU runs.
/// An implementation and the check that the CPU runs it.
type Candidate = (&'static dyn Isa, fn() -> bool);

fn candidates() -> &'static [Candidate] {
    &[
        #[cfg(target_arch = "x86_64")]
        (
            &super::x86_bf16::Avx512Bf16::INSTANCE,
            super::x86_bf16::Avx512Bf16::detected,
        ),
        #[cfg(target_arch = "x86_64")]
        (
            &super::x86::Avx512Vnni::INSTANCE,
            super::x86::Avx512Vnni::detected,
        ),
        #[cfg(target_arch = "x86_64")]
        (&super::x86::Avx512::INSTANCE, super::x86::Avx512::detected),
        #[cfg(target_arch = "x86_64")]
        (&super::x86::Avx2::INSTANCE, super::x86::Avx2::detected),
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        (&super::aarch64::Neon::INSTANCE, || true),
        #[cfg(all(target_arch = "arm", feature = "cortex-m-dsp"))]
        (&super::cortex_m::CortexMDsp::INSTANCE, || true),
        (&super::scalar::Scalar, || true),
    ]
}

/// The implementation for this CPU, detected on first use and then fixed.
///
/// With the `std` feature x86 features are detected at run time; without it only what the
/// build targets (`-C target-feature` / `target-cpu`) is used.
pub fn isa() -> &'static dyn Isa {
    let all = candidates();
    let mut i = CHOSEN.load(Ordering::Relaxed);
    if i == UNSET {
        i = all.iter().position(|(_, ok)| ok()).unwrap_or(all.len() - 1) as u8;
        CHOSEN.store(i, Ordering::Relaxed);
    }
    all[usize::from(i).min(all.len() - 1)].0
}

/// Every implementation this CPU can run (for tests and benchmarks that compare them).
pub fn available() -> impl Iterator<Item = &'static dyn Isa> {
    candidates().iter().filter(|(_, ok)| ok()).map(|(k, _)| *k)
}

/// The name of [`isa`].
pub fn isa_name() -> &'static str {
    isa().name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_available_isa_is_picked_and_scalar_is_always_there() {
        let names: alloc::vec::Vec<_> = available().map(|i| i.name()).collect();
        assert_eq!(isa().name(), names[0]);
        assert_eq!(names.last(), Some(&"scalar"));
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        assert_eq!(isa_name(), "neon");
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_ne!(isa_name(), "scalar");
        }
    }
}
