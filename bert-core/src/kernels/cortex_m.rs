//! Cortex-M DSP-extension kernels (ARMv7E-M: Cortex-M4, M7; ARMv8-M Mainline with DSP),
//! enabled by the crate feature `cortex-m-dsp` (the build cannot detect the extension). The
//! int8 kernel sign-extends byte pairs with `SXTB16` and multiplies and adds two pairs per
//! instruction with `SMLAD`; f32 products use the portable kernel (the FPU is scalar).

use core::arch::asm;

use super::isa::{check_tile, Isa, TileRows, I8_K_GROUP, MAX_TILE};
use super::scalar::Scalar;

/// Kernels for cores with the DSP extension.
pub struct CortexMDsp(());

impl CortexMDsp {
    pub(crate) const INSTANCE: CortexMDsp = CortexMDsp(());
}

const MR: usize = 2;
const NR: usize = 4;

/// Bytes 0 and 2 of `x`, sign-extended to two i16 halves.
#[inline(always)]
fn sxtb16(x: u32) -> u32 {
    let r;
    // SAFETY: SXTB16 reads one register and writes another; no memory, no flags.
    unsafe {
        asm!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// Bytes 1 and 3 of `x`, sign-extended to two i16 halves.
#[inline(always)]
fn sxtb16_ror8(x: u32) -> u32 {
    let r;
    // SAFETY: as `sxtb16`, with the operand rotated by 8 bits first.
    unsafe {
        asm!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `acc + a.lo · b.lo + a.hi · b.hi` (signed 16-bit halves).
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: SMLAD reads three registers and writes one; no memory. It may set the sticky Q
    // flag on overflow, which nothing here reads (and the sums cannot overflow: |x|, |w| ≤ 127
    // over at most KC_I8 values).
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// Unaligned little-endian word at byte `at` of `s`.
#[inline(always)]
fn word(s: &[i8], at: usize) -> u32 {
    let b = &s[at..at + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

/// `Σ a[i]·b[i]` over two int8 rows of equal length, four pairs per two `SMLAD`s (the
/// row-wise products' dot, `super::int8::dot_i8`, on this core). Exact: integer sums.
#[inline(always)]
pub(super) fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let mut acc = 0i32;
    let mut p = 0;
    while p + 4 <= n {
        let (x, y) = (word(a, p), word(b, p));
        acc = smlad(sxtb16(x), sxtb16(y), acc);
        acc = smlad(sxtb16_ror8(x), sxtb16_ror8(y), acc);
        p += 4;
    }
    acc + (p..n)
        .map(|i| i32::from(a[i]) * i32::from(b[i]))
        .sum::<i32>()
}

/// `dots[r] = q[r · depth + span] · w[span]` for `r < rows ≤ 4`: each word of the weight row
/// is loaded and sign-extended once for four rows, the four sums kept in registers (with fewer
/// rows, row 0 stands in for the missing ones and their sums are dropped). Exact: integer sums.
#[inline(never)]
pub(super) fn dot_i8_rows(
    q: &[i8],
    depth: usize,
    rows: usize,
    span: core::ops::Range<usize>,
    w: &[i8],
    dots: &mut [i32; 4],
) {
    let w = &w[span.clone()];
    let row = |r: usize| {
        let r = if r < rows { r } else { 0 };
        &q[r * depth + span.start..r * depth + span.end]
    };
    let (x0, x1, x2, x3) = (row(0), row(1), row(2), row(3));
    let words = w.len() / 4;
    let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
    let load = |s: &[i8], i: usize| {
        // SAFETY: callers pass i < words = w.len() / 4, and every row slice is as long as `w`
        // (all cut to the span), so bytes 4i..4i+4 lie inside `s`; ARMv7E-M loads unaligned
        // words from normal memory.
        unsafe { s.as_ptr().add(4 * i).cast::<u32>().read_unaligned() }
    };
    for i in 0..words {
        let y = load(w, i);
        let (ye, yo) = (sxtb16(y), sxtb16_ror8(y));
        let v = load(x0, i);
        a0 = smlad(sxtb16_ror8(v), yo, smlad(sxtb16(v), ye, a0));
        let v = load(x1, i);
        a1 = smlad(sxtb16_ror8(v), yo, smlad(sxtb16(v), ye, a1));
        let v = load(x2, i);
        a2 = smlad(sxtb16_ror8(v), yo, smlad(sxtb16(v), ye, a2));
        let v = load(x3, i);
        a3 = smlad(sxtb16_ror8(v), yo, smlad(sxtb16(v), ye, a3));
    }
    let sums = [a0, a1, a2, a3];
    for (r, (d, x)) in dots.iter_mut().zip([x0, x1, x2, x3]).enumerate().take(rows) {
        let tail: i32 = (4 * words..w.len())
            .map(|p| i32::from(x[p]) * i32::from(w[p]))
            .sum();
        *d = sums[r] + tail;
    }
}

impl Isa for CortexMDsp {
    fn name(&self) -> &'static str {
        "cortex-m-dsp"
    }
    fn f32_tile(&self) -> (usize, usize) {
        Scalar.f32_tile()
    }
    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
        Scalar.f32_kernel(k, a, panel, out)
    }
    fn i8_tile(&self) -> (usize, usize) {
        (MR, NR)
    }
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        assert!(check_tile(k, &a, MR, NR, panel.len()) && k.is_multiple_of(I8_K_GROUP));
        assert!(a.col_stride == 1);
        let word = |b: &[i8]| u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8]);
        let mut acc = [[0i32; NR]; MR];
        for (g, group) in panel
            .chunks_exact(NR * I8_K_GROUP)
            .take(k / I8_K_GROUP)
            .enumerate()
        {
            let mut x = [(0u32, 0u32); MR];
            for (r, xr) in x.iter_mut().enumerate() {
                let v = word(&a.a[a.row_start[r] + g * I8_K_GROUP..]);
                *xr = (sxtb16(v), sxtb16_ror8(v));
            }
            for (j, w) in group.chunks_exact(I8_K_GROUP).enumerate() {
                let v = word(w);
                let (we, wo) = (sxtb16(v), sxtb16_ror8(v));
                for (r, &(xe, xo)) in x.iter().enumerate() {
                    acc[r][j] = smlad(xo, wo, smlad(xe, we, acc[r][j]));
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            out[r * NR..(r + 1) * NR].copy_from_slice(row);
        }
    }
}
