//! aarch64 NEON kernels (NEON is part of every aarch64 target this crate builds for; the type
//! exists only when the build enables it).

use core::arch::aarch64::*;

use super::isa::{check_tile, Isa, TileRows, I8_K_GROUP, MAX_MR, MAX_TILE};

/// Advanced SIMD (NEON): f32 FMA and int8 widening multiplies.
pub struct Neon(());

impl Neon {
    pub(crate) const INSTANCE: Neon = Neon(());
}

impl Isa for Neon {
    fn name(&self) -> &'static str {
        "neon"
    }
    fn f32_tile(&self) -> (usize, usize) {
        (8, 8)
    }
    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
        assert!(check_tile(k, &a, 8, 8, panel.len()));
        // SAFETY: NEON is enabled for this build (the type exists only then); check_tile
        // proved rows 0..8 hold k elements at stride col_stride and the panel 8 k floats; `out`
        // holds MAX_TILE >= 64 floats.
        unsafe {
            f32_8x8(
                k,
                a.row_ptrs(),
                a.col_stride,
                panel.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
    fn i8_tile(&self) -> (usize, usize) {
        (4, 8)
    }
    /// `smull` of the broadcast four activations with four columns' four weights (i16 products,
    /// exact for |values| ≤ 127), pairwise-accumulated into i32 with `sadalp`; the two partial
    /// sums per column are added at the end.
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        assert!(check_tile(k, &a, 4, 8, panel.len()));
        assert!(k.is_multiple_of(I8_K_GROUP) && a.col_stride == 1);
        // SAFETY: NEON is enabled for this build; rows 0..4 hold k bytes and the panel 8 k
        // bytes (checked); `out` holds MAX_TILE >= 32 i32.
        unsafe { i8_4x8(k, a.row_ptrs(), panel.as_ptr(), out.as_mut_ptr()) }
    }
}

/// # Safety
/// NEON present; `rows[r]` valid for `k` reads at stride `cs` (r < 8); `b` for `8 k` reads;
/// `o` for 64 writes.
#[target_feature(enable = "neon")]
unsafe fn f32_8x8(k: usize, rows: [*const f32; MAX_MR], cs: usize, b: *const f32, o: *mut f32) {
    let mut c = [[vdupq_n_f32(0.0); 2]; 8];
    for p in 0..k {
        // SAFETY: p < k, within the caller's bounds.
        unsafe {
            let b0 = vld1q_f32(b.add(p * 8));
            let b1 = vld1q_f32(b.add(p * 8 + 4));
            for r in 0..8 {
                let x = vdupq_n_f32(*rows[r].add(p * cs));
                c[r][0] = vfmaq_f32(c[r][0], b0, x);
                c[r][1] = vfmaq_f32(c[r][1], b1, x);
            }
        }
    }
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 8 + 8 <= 64.
        unsafe {
            vst1q_f32(o.add(r * 8), row[0]);
            vst1q_f32(o.add(r * 8 + 4), row[1]);
        }
    }
}

/// # Safety
/// NEON present; `rows[r]` valid for `k` reads (r < 4); `b` for `8 k` reads; `o` for 32 writes.
#[target_feature(enable = "neon")]
unsafe fn i8_4x8(k: usize, rows: [*const i8; MAX_MR], b: *const i8, o: *mut i32) {
    let mut c = [[vdupq_n_s32(0); 4]; 4];
    for g in 0..k / 4 {
        // SAFETY: g * 32 + 32 <= 8 k and g * 4 + 4 <= k.
        unsafe {
            let b0 = vld1q_s8(b.add(g * 32));
            let b1 = vld1q_s8(b.add(g * 32 + 16));
            for r in 0..4 {
                let x4 = (rows[r].add(g * 4) as *const i32).read_unaligned();
                let x = vreinterpretq_s8_s32(vdupq_n_s32(x4));
                let xl = vget_low_s8(x);
                c[r][0] = vpadalq_s16(c[r][0], vmull_s8(xl, vget_low_s8(b0)));
                c[r][1] = vpadalq_s16(c[r][1], vmull_high_s8(x, b0));
                c[r][2] = vpadalq_s16(c[r][2], vmull_s8(xl, vget_low_s8(b1)));
                c[r][3] = vpadalq_s16(c[r][3], vmull_high_s8(x, b1));
            }
        }
    }
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 8 + 8 <= 32.
        unsafe {
            vst1q_s32(o.add(r * 8), vpaddq_s32(row[0], row[1]));
            vst1q_s32(o.add(r * 8 + 4), vpaddq_s32(row[2], row[3]));
        }
    }
}
