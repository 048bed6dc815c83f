//! x86-64 kernels: AVX2+FMA, AVX-512F, and AVX-512 VNNI (int8 dot products).
//!
//! Each type can only be reached through [`super::isa::isa`] / [`super::isa::available`],
//! which hand it out only when the CPU has its features; each kernel also asserts its features
//! before it runs, so calling one on the wrong CPU panics instead of executing an illegal
//! instruction.

use core::arch::x86_64::*;

use super::isa::{
    check_tile, F32WriteOut, I8WriteOut, Isa, TileRows, I8_K_GROUP, MAX_MR, MAX_TILE,
};

macro_rules! has {
    ($($f:tt),+) => {{
        #[cfg(feature = "std")]
        { true $(&& std::is_x86_feature_detected!($f))+ }
        #[cfg(not(feature = "std"))]
        { true $(&& cfg!(target_feature = $f))+ }
    }};
}

/// `check()` asked once and kept in `cell` (0 unknown, 1 no, 2 yes): the kernels assert their
/// features on every call, and one load is cheaper than asking for each feature again.
#[inline(always)]
pub(super) fn once(cell: &core::sync::atomic::AtomicU8, check: fn() -> bool) -> bool {
    use core::sync::atomic::Ordering::Relaxed;
    match cell.load(Relaxed) {
        0 => {
            let yes = check();
            cell.store(1 + u8::from(yes), Relaxed);
            yes
        }
        v => v == 2,
    }
}

/// AVX2 + FMA (Haswell, Zen 1 and later).
pub struct Avx2(());
/// AVX-512F + BW (Skylake-X, Zen 4 and later); int8 through the AVX2 kernel.
pub struct Avx512(());
/// AVX-512 with VNNI (`vpdpbusd`: four int8 products summed per instruction).
pub struct Avx512Vnni(());

impl Avx2 {
    pub(crate) const INSTANCE: Avx2 = Avx2(());
    /// Whether this CPU (or, without `std`, this build's target) has AVX2 and FMA.
    pub fn detected() -> bool {
        static CACHE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
        once(&CACHE, || has!("avx2", "fma"))
    }
}

impl Avx512 {
    pub(crate) const INSTANCE: Avx512 = Avx512(());
    /// Whether this CPU (or build target) has AVX-512F/BW plus AVX2 and FMA.
    pub fn detected() -> bool {
        static CACHE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
        once(&CACHE, || has!("avx512f", "avx512bw", "avx2", "fma"))
    }
}

impl Avx512Vnni {
    pub(crate) const INSTANCE: Avx512Vnni = Avx512Vnni(());
    /// Whether this CPU (or build target) has AVX-512 VNNI as well.
    pub fn detected() -> bool {
        static CACHE: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
        once(&CACHE, || {
            has!("avx512f", "avx512bw", "avx512vnni", "avx2", "fma")
        })
    }
}

impl Isa for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }
    fn f32_tile(&self) -> (usize, usize) {
        (6, 16)
    }
    fn f32_kernel(&self, k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
        assert!(Self::detected() && check_tile(k, &a, 6, 16, panel.len()));
        // SAFETY: AVX2 and FMA are present (asserted); check_tile proved that rows 0..6 hold
        // `k` elements at stride `col_stride` and that the panel holds `k * 16` floats; `out`
        // holds MAX_TILE >= 6 * 16 floats.
        unsafe {
            f32_6x16(
                k,
                a.row_ptrs(),
                a.col_stride,
                panel.as_ptr(),
                out.as_mut_ptr(),
            )
        }
    }
    fn i8_tile(&self) -> (usize, usize) {
        (4, 16)
    }
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        i8_avx2(k, a, panel, out)
    }
}

fn i8_avx2(k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
    assert!(Avx2::detected() && check_tile(k, &a, 4, 16, panel.len()));
    assert!(k.is_multiple_of(I8_K_GROUP) && a.col_stride == 1);
    // SAFETY: AVX2 is present; rows 0..4 hold `k` bytes, the panel `k * 16` bytes (checked);
    // `out` holds MAX_TILE >= 4 * 16 i32.
    unsafe { i8_4x16(k, a.row_ptrs(), panel.as_ptr(), out.as_mut_ptr()) }
}

impl Isa for Avx512 {
    fn name(&self) -> &'static str {
        "avx512"
    }
    fn f32_tile(&self) -> (usize, usize) {
        (8, 32)
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
        (4, 16)
    }
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        i8_avx2(k, a, panel, out)
    }
}

pub(super) fn f32_avx512_write(
    k: usize,
    a: TileRows<'_, f32>,
    panel: &[f32],
    out: F32WriteOut<'_>,
) {
    assert!(Avx512::detected() && check_tile(k, &a, 8, 32, panel.len()) && out.fits(8, 32));
    // SAFETY: AVX-512F is present; rows 0..8 hold `k` elements at stride `col_stride`, the
    // panel `k * 32` floats (checked); every row's 32 outputs and the biases are in bounds.
    unsafe { f32_8x32_write(k, a.row_ptrs(), a.col_stride, panel.as_ptr(), out) }
}

pub(super) fn f32_avx512(k: usize, a: TileRows<'_, f32>, panel: &[f32], out: &mut [f32; MAX_TILE]) {
    assert!(Avx512::detected() && check_tile(k, &a, 8, 32, panel.len()));
    // SAFETY: AVX-512F is present; rows 0..8 hold `k` elements at stride `col_stride`, the
    // panel `k * 32` floats (checked); `out` holds MAX_TILE >= 8 * 32 floats.
    unsafe {
        f32_8x32(
            k,
            a.row_ptrs(),
            a.col_stride,
            panel.as_ptr(),
            out.as_mut_ptr(),
        )
    }
}

impl Isa for Avx512Vnni {
    fn name(&self) -> &'static str {
        "avx512vnni"
    }
    fn f32_tile(&self) -> (usize, usize) {
        (8, 32)
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
        (8, 32)
    }
    fn i8_unsigned_weights(&self) -> bool {
        true
    }
    fn i8_kernel(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: &mut [i32; MAX_TILE]) {
        assert!(Self::detected() && check_tile(k, &a, 8, 32, panel.len()));
        assert!(k.is_multiple_of(I8_K_GROUP) && a.col_stride == 1);
        // SAFETY: AVX-512F/BW/VNNI are present; rows 0..8 hold `k` bytes, the panel `k * 32`
        // bytes (checked); `out` holds MAX_TILE >= 8 * 32 i32.
        unsafe { i8_8x32_vnni(k, a.row_ptrs(), panel.as_ptr(), out.as_mut_ptr()) }
    }
    fn i8_kernel_write(&self, k: usize, a: TileRows<'_, i8>, panel: &[i8], out: I8WriteOut<'_>) {
        assert!(Self::detected() && check_tile(k, &a, 8, 32, panel.len()));
        assert!(k.is_multiple_of(I8_K_GROUP) && a.col_stride == 1 && out.fits(8, 32));
        // SAFETY: AVX-512F/BW/VNNI are present; rows 0..8 hold `k` bytes, the panel `k * 32`
        // bytes (checked); every row's 32 outputs, the 32 weight scales and biases are in
        // bounds (`fits`).
        unsafe { i8_8x32_vnni_write(k, a.row_ptrs(), panel.as_ptr(), out) }
    }
}

/// # Safety
/// AVX2+FMA present; `a[r]` valid for `k` reads at stride `cs` (r < 6); `b` for `16 k` reads;
/// `out` for 96 writes.
#[target_feature(enable = "avx2,fma")]
unsafe fn f32_6x16(k: usize, a: [*const f32; MAX_MR], cs: usize, b: *const f32, out: *mut f32) {
    let mut c = [[_mm256_setzero_ps(); 2]; 6];
    for p in 0..k {
        // SAFETY: p < k, within the caller's bounds.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(b.add(p * 16)),
                _mm256_loadu_ps(b.add(p * 16 + 8)),
            )
        };
        for r in 0..6 {
            // SAFETY: as above.
            let x = _mm256_set1_ps(unsafe { *a[r].add(p * cs) });
            c[r][0] = _mm256_fmadd_ps(x, b0, c[r][0]);
            c[r][1] = _mm256_fmadd_ps(x, b1, c[r][1]);
        }
    }
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 16 + 16 <= 96.
        unsafe {
            _mm256_storeu_ps(out.add(r * 16), row[0]);
            _mm256_storeu_ps(out.add(r * 16 + 8), row[1]);
        }
    }
}

/// The 8 × 32 f32 sums, in registers.
///
/// # Safety
/// AVX-512F present; `a[r]` valid for `k` reads at stride `cs` (r < 8); `b` for `32 k` reads.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn f32_8x32_sums(
    k: usize,
    a: [*const f32; MAX_MR],
    cs: usize,
    b: *const f32,
) -> [[__m512; 2]; 8] {
    let mut c = [[_mm512_setzero_ps(); 2]; 8];
    for p in 0..k {
        // SAFETY: p < k, within the caller's bounds.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_ps(b.add(p * 32)),
                _mm512_loadu_ps(b.add(p * 32 + 16)),
            )
        };
        for r in 0..8 {
            // SAFETY: as above.
            let x = _mm512_set1_ps(unsafe { *a[r].add(p * cs) });
            c[r][0] = _mm512_fmadd_ps(x, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(x, b1, c[r][1]);
        }
    }
    c
}

/// # Safety
/// AVX-512F present; `a[r]` valid for `k` reads at stride `cs` (r < 8); `b` for `32 k` reads;
/// `out` for 256 writes.
#[target_feature(enable = "avx512f")]
unsafe fn f32_8x32(k: usize, a: [*const f32; MAX_MR], cs: usize, b: *const f32, out: *mut f32) {
    // SAFETY: the caller's contract.
    let c = unsafe { f32_8x32_sums(k, a, cs, b) };
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 32 + 32 <= 256.
        unsafe {
            _mm512_storeu_ps(out.add(r * 32), row[0]);
            _mm512_storeu_ps(out.add(r * 32 + 16), row[1]);
        }
    }
}

/// # Safety
/// As [`f32_8x32`] for `a` and `b`; `out` passed [`F32WriteOut::fits`] for 8 × 32.
#[target_feature(enable = "avx512f")]
unsafe fn f32_8x32_write(
    k: usize,
    a: [*const f32; MAX_MR],
    cs: usize,
    b: *const f32,
    out: F32WriteOut<'_>,
) {
    // SAFETY: the caller's contract.
    let c = unsafe { f32_8x32_sums(k, a, cs, b) };
    // SAFETY: `fits` was checked.
    unsafe { write_f32_tile(&c, out) }
}

/// Write 8 × 32 f32 sums out as [`F32WriteOut::write`] does, from registers.
///
/// # Safety
/// AVX-512F present; `out` passed [`F32WriteOut::fits`] for 8 × 32.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn write_f32_tile(c: &[[__m512; 2]; 8], out: F32WriteOut<'_>) {
    let alpha = _mm512_set1_ps(out.alpha);
    let bias = out.bias.map(|b| {
        // SAFETY: `fits` checked 32 biases.
        unsafe {
            [
                _mm512_loadu_ps(b.as_ptr()),
                _mm512_loadu_ps(b.as_ptr().add(16)),
            ]
        }
    });
    let dst = out.dst.as_mut_ptr();
    for (r, row) in c.iter().enumerate() {
        for (half, &sums) in row.iter().enumerate() {
            let v = _mm512_mul_ps(alpha, sums);
            // SAFETY: row r's 32 outputs start at rows[r] and lie in `dst` (`fits`).
            let p = unsafe { dst.add(out.rows[r] + 16 * half) };
            // SAFETY: as above.
            unsafe { finish(p, v, out.accumulate, bias.map(|b| b[half])) };
        }
    }
}

/// Store `v` at `p`: as it is, plus `bias`, or (`accumulate`) plus what `p` holds.
///
/// # Safety
/// AVX-512F present; `p` valid for 16 reads and writes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn finish(p: *mut f32, v: __m512, accumulate: bool, bias: Option<__m512>) {
    let v = match (accumulate, bias) {
        // SAFETY: the caller's contract.
        (true, _) => _mm512_add_ps(unsafe { _mm512_loadu_ps(p) }, v),
        (false, Some(b)) => _mm512_add_ps(v, b),
        (false, None) => v,
    };
    // SAFETY: the caller's contract.
    unsafe { _mm512_storeu_ps(p, v) };
}

/// Four consecutive int8 values of a row as one little-endian i32 (for broadcasting).
///
/// # Safety
/// `p` valid for 4 reads.
#[inline(always)]
unsafe fn load4(p: *const i8) -> i32 {
    // SAFETY: the caller's contract; read_unaligned has no alignment requirement.
    unsafe { (p as *const i32).read_unaligned() }
}

/// int8 with AVX2: `maddubs(|x|, sign(w, x))` gives exact `x·w` pair sums (|x|, |w| ≤ 127
/// keeps them below i16's limit), widened to i32 by `madd` with ones.
///
/// # Safety
/// AVX2 present; `a[r]` valid for `k` reads (r < 4); `b` for `16 k`; `out` for 64 writes.
#[target_feature(enable = "avx2")]
unsafe fn i8_4x16(k: usize, a: [*const i8; MAX_MR], b: *const i8, out: *mut i32) {
    let ones = _mm256_set1_epi16(1);
    let mut c = [[_mm256_setzero_si256(); 2]; 4];
    for g in 0..k / 4 {
        // SAFETY: g * 64 + 64 <= 16 k.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_si256(b.add(g * 64) as *const __m256i),
                _mm256_loadu_si256(b.add(g * 64 + 32) as *const __m256i),
            )
        };
        for r in 0..4 {
            // SAFETY: g * 4 + 4 <= k.
            let x = _mm256_set1_epi32(unsafe { load4(a[r].add(g * 4)) });
            let ax = _mm256_abs_epi8(x);
            let p0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(b0, x));
            let p1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(b1, x));
            c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(p0, ones));
            c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(p1, ones));
        }
    }
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 16 + 16 <= 64.
        unsafe {
            _mm256_storeu_si256(out.add(r * 16) as *mut __m256i, row[0]);
            _mm256_storeu_si256(out.add(r * 16 + 8) as *mut __m256i, row[1]);
        }
    }
}

/// [`i8_8x32_vnni`]'s sums rescaled and written out from the registers, each step rounded as
/// [`I8WriteOut::write`] rounds it.
///
/// # Safety
/// As [`i8_8x32_vnni`]; `out` passed [`I8WriteOut::fits`] for 8 × 32.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn i8_8x32_vnni_write(k: usize, a: [*const i8; MAX_MR], b: *const i8, out: I8WriteOut<'_>) {
    // SAFETY: the caller's contract.
    let c = unsafe { i8_8x32_vnni_sums(k, a, b) };
    // SAFETY: `fits` checked 32 weight scales.
    let w = unsafe {
        [
            _mm512_loadu_ps(out.w.as_ptr()),
            _mm512_loadu_ps(out.w.as_ptr().add(16)),
        ]
    };
    let (scales, shifts, out) = (out.scale, out.shift, out.out);
    let bias = out.bias.map(|b| {
        // SAFETY: `fits` checked 32 biases.
        unsafe {
            [
                _mm512_loadu_ps(b.as_ptr()),
                _mm512_loadu_ps(b.as_ptr().add(16)),
            ]
        }
    });
    let dst = out.dst.as_mut_ptr();
    for (r, row) in c.iter().enumerate() {
        let (scale, shift) = (_mm512_set1_ps(scales[r]), _mm512_set1_epi32(shifts[r]));
        for (half, &sums) in row.iter().enumerate() {
            let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums, shift));
            let v = _mm512_mul_ps(_mm512_mul_ps(v, scale), w[half]);
            // SAFETY: row r's 32 outputs start at rows[r] and lie in `dst` (`fits`); `alpha`
            // is 1 (the product above is the value).
            unsafe {
                finish(
                    dst.add(out.rows[r] + 16 * half),
                    v,
                    out.accumulate,
                    bias.map(|b| b[half]),
                )
            };
        }
    }
}

/// The 8 × 32 i32 sums of [`i8_8x32_vnni`], in registers.
///
/// # Safety
/// As [`i8_8x32_vnni`] for `a` and `b`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn i8_8x32_vnni_sums(k: usize, a: [*const i8; MAX_MR], b: *const i8) -> [[__m512i; 2]; 8] {
    let mut c = [[_mm512_setzero_si512(); 2]; 8];
    for g in 0..k / 4 {
        // Ask for the panel 8 groups ahead (a hint: prefetching past the end is harmless).
        let ahead = b.wrapping_add(g * 128 + 1024);
        _mm_prefetch::<_MM_HINT_T0>(ahead);
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64));
        // SAFETY: g * 128 + 128 <= 32 k.
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_si512(b.add(g * 128) as *const __m512i),
                _mm512_loadu_si512(b.add(g * 128 + 64) as *const __m512i),
            )
        };
        for r in 0..8 {
            // SAFETY: g * 4 + 4 <= k.
            let x = _mm512_set1_epi32(unsafe { load4(a[r].add(g * 4)) });
            c[r][0] = _mm512_dpbusd_epi32(c[r][0], b0, x);
            c[r][1] = _mm512_dpbusd_epi32(c[r][1], b1, x);
        }
    }
    c
}

/// int8 with VNNI: `vpdpbusd` multiplies the unsigned packed weights (`w + 128`) by the
/// broadcast signed activations, four products per lane; the driver removes `128 · Σ x`.
///
/// # Safety
/// AVX-512F/BW/VNNI present; `a[r]` valid for `k` reads (r < 8); `b` for `32 k`; `out` for
/// 256 writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn i8_8x32_vnni(k: usize, a: [*const i8; MAX_MR], b: *const i8, out: *mut i32) {
    // SAFETY: the caller's contract.
    let c = unsafe { i8_8x32_vnni_sums(k, a, b) };
    for (r, row) in c.iter().enumerate() {
        // SAFETY: r * 32 + 32 <= 256.
        unsafe {
            _mm512_storeu_si512(out.add(r * 32) as *mut __m512i, row[0]);
            _mm512_storeu_si512(out.add(r * 32 + 16) as *mut __m512i, row[1]);
        }
    }
}
