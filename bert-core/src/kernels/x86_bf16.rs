//! x86-64 with AVX512-BF16 (Zen 4 and later, Cooper Lake, Sapphire Rapids): `vdpbf16ps`
//! multiplies 32 bf16 pairs and adds each pair's two products to an f32 lane. f32 and int8
//! products are those of [`Avx512Vnni`].
//!
//! Reached only through [`super::isa::isa`] / [`super::isa::available`] when the CPU has the
//! features; the kernel asserts them too, so a wrong call panics instead of faulting.

use core::arch::x86_64::*;

use super::isa::{check_tile, F32WriteOut, I8WriteOut, Isa, TileRows, MAX_MR, MAX_TILE};
use super::x86::{f32_avx512, f32_avx512_write, write_f32_tile, Avx512Vnni};

/// AVX-512 with VNNI and BF16.
pub struct Avx512Bf16(());

/// Rows of the bf16 register tile (16 of the 32 vector registers hold sums).
const MR: usize = 8;
/// Columns of the bf16 register tile (two registers of 16 f32).
const NR: usize = 32;

impl Avx512Bf16 {
    pub(crate) const INSTANCE: Avx512Bf16 = Avx512Bf16(());
    /// Whether this CPU (or build target) has AVX-512 VNNI and BF16 as well.
    pub fn detected() -> bool {
        static CACHE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
        super::x86::once(&CACHE, || Avx512Vnni::detected() && has_bf16())
    }
}

fn has_bf16() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(feature = "std"))]
    {
        cfg!(target_feature = "avx512bf16")
    }
}

impl Isa for Avx512Bf16 {
    fn name(&self) -> &'static str {
        "avx512bf16"
    }
    fn f32_tile(&self) -> (usize, usize) {
        Avx512Vnni::INSTANCE.f32_tile()
    }
    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
        f32_avx512(k, a, panel, out)
    }
    fn f32_kernel_write(
        &self,
        k: usize,
        a: TileRows<'_, f32>,
        panel: &[f32],
        out: F32WriteOut<'_>,
    ) {
        f32_avx512_write(k, a, panel, out)
    }
    fn i8_tile(&self) -> (usize, usize) {
        Avx512Vnni::INSTANCE.i8_tile()
    }
    fn i8_unsigned_weights(&self) -> bool {
        Avx512Vnni::INSTANCE.i8_unsigned_weights()
    }
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        Avx512Vnni::INSTANCE.i8_kernel(k, a, panel, out)
    }
    fn i8_kernel_write(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: I8WriteOut<'_>) {
        Avx512Vnni::INSTANCE.i8_kernel_write(k, a, panel, out)
    }
    fn bf16_tile(&self) -> (usize, usize) {
        (MR, NR)
    }
    fn bf16_native(&self) -> bool {
        true
    }
    fn bf16_kernel(
        &self,
        k: usize,
        a: TileRows<'_, u16>,
        panel: &[u16],
        out: &mut [f32; MAX_TILE],
    ) {
        assert!(Self::detected() && check_tile(k, &a, MR, NR, panel.len()));
        assert!(k.is_multiple_of(2) && a.col_stride == 1);
        // SAFETY: AVX-512F and BF16 are present (asserted); rows 0..MR hold `k` values and the
        // panel `k * NR` (checked); `out` holds MAX_TILE >= MR * NR floats.
        unsafe { bf16_tile(k, a.row_ptrs(), panel.as_ptr(), out.as_mut_ptr()) }
    }
    fn bf16_kernel_write(
        &self,
        k: usize,
        a: TileRows<'_, u16>,
        panel: &[u16],
        out: F32WriteOut<'_>,
    ) {
        assert!(Self::detected() && check_tile(k, &a, MR, NR, panel.len()) && out.fits(MR, NR));
        assert!(k.is_multiple_of(2) && a.col_stride == 1);
        // SAFETY: AVX-512F and BF16 are present (asserted); rows 0..MR hold `k` values and the
        // panel `k * NR` (checked); every row's NR outputs and the biases are in bounds.
        unsafe { bf16_tile_write(k, a.row_ptrs(), panel.as_ptr(), out) }
    }
}

/// 32 bf16 values from 64 plain bytes.
#[inline(always)]
fn as_bf16(v: __m512i) -> __m512bh {
    // SAFETY: both types are 64 bytes of plain data with every bit pattern valid.
    unsafe { core::mem::transmute::<__m512i, __m512bh>(v) }
}

/// # Safety
/// AVX-512F and BF16 present; `a[r]` valid for `k` reads (r < MR, `k` even); `b` for `32 k`
/// reads; `out` for `MR * 32` writes.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_tile(k: usize, a: [*const u16; MAX_MR], b: *const u16, out: *mut f32) {
    // SAFETY: the caller's contract.
    let c = unsafe { bf16_sums(k, a, b) };
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 32 + 32 <= MR * 32.
        unsafe {
            _mm512_storeu_ps(out.add(r * NR), row[0]);
            _mm512_storeu_ps(out.add(r * NR + 16), row[1]);
        }
    }
}

/// # Safety
/// As [`bf16_tile`] for `a` and `b`; `out` passed [`F32WriteOut::fits`] for MR × NR.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bf16_tile_write(k: usize, a: [*const u16; MAX_MR], b: *const u16, out: F32WriteOut<'_>) {
    // SAFETY: the caller's contract.
    let c = unsafe { bf16_sums(k, a, b) };
    // SAFETY: `fits` was checked.
    unsafe { write_f32_tile(&c, out) }
}

/// The MR × NR sums of the bf16 tile, in registers.
///
/// # Safety
/// As [`bf16_tile`] for `a` and `b`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn bf16_sums(k: usize, a: [*const u16; MAX_MR], b: *const u16) -> [[__m512; 2]; MR] {
    let mut c = [[_mm512_setzero_ps(); 2]; MR];
    for g in 0..k / 2 {
        // SAFETY: g * 64 + 64 <= 32 k.
        let (b0, b1) = unsafe {
            (
                as_bf16(_mm512_loadu_si512(b.add(g * 64) as *const __m512i)),
                as_bf16(_mm512_loadu_si512(b.add(g * 64 + 32) as *const __m512i)),
            )
        };
        // Ask for the panel 16 pairs ahead (a hint: prefetching past the end is harmless).
        let ahead = b.wrapping_add(g * 64 + 1024) as *const i8;
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
        for r in 0..MR {
            // SAFETY: 2 g + 2 <= k values of row r; the pair is read unaligned as one i32.
            let pair = unsafe { (a[r].add(2 * g) as *const i32).read_unaligned() };
            let x = as_bf16(_mm512_set1_epi32(pair));
            c[r][0] = _mm512_dpbf16_ps(c[r][0], x, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], x, b1);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::bf16::{portable_kernel, to_bf16};
    use alloc::vec::Vec;

    /// The `vdpbf16ps` tile against the portable one, bit for bit (the portable kernel adds
    /// each pair in the same order), on every depth up to 40 and a long one.
    #[test]
    fn the_vdpbf16ps_tile_matches_the_portable_kernel() {
        if !Avx512Bf16::detected() {
            return; // skipped: this CPU has no AVX512-BF16
        }
        for k in (2..=40).step_by(2).chain([1024]) {
            let a: Vec<u16> = (0..MR * k)
                .map(|i| to_bf16(((i * 37 % 101) as f32 - 50.0) / 17.0))
                .collect();
            let panel: Vec<u16> = (0..NR * k)
                .map(|i| to_bf16(((i * 53 % 97) as f32 - 48.0) / 13.0))
                .collect();
            let rows: [usize; MAX_MR] = core::array::from_fn(|r| r.min(MR - 1) * k);
            let tile = TileRows {
                a: &a,
                row_start: &rows,
                col_stride: 1,
            };
            let (mut got, mut want) = ([0.0f32; MAX_TILE], [0.0f32; MAX_TILE]);
            Avx512Bf16::INSTANCE.bf16_kernel(k, tile, &panel, &mut got);
            portable_kernel((MR, NR), k, tile, &panel, &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate().take(MR * NR) {
                assert!(g == w, "k {k} [{i}]: {g} vs {w}");
            }
        }
    }
}
