//! The machine's f32 FMA peak, measured: a loop of independent fused multiply-adds in the
//! widest vectors the CPU has, so that benchmark results can be read as a fraction of peak.

use std::time::Instant;

const ACCUMULATORS: usize = 12;
const ITERATIONS: usize = 20_000_000;

/// GFLOP/s (one FMA = 2 flops) of one thread, and of `threads` threads running at once.
pub fn fma_peak_gflops(threads: usize) -> (f64, f64) {
    let single = run(1);
    let all = run(threads.max(1));
    (single, all)
}

fn run(threads: usize) -> f64 {
    let start = Instant::now();
    let flops: f64 = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(one_thread)).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    flops / start.elapsed().as_secs_f64() / 1e9
}

/// Flops done by one thread's loop.
fn one_thread() -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F is present (checked on the line above).
            unsafe { x86::fma_avx512(ITERATIONS) };
            return (ITERATIONS * ACCUMULATORS * 16 * 2) as f64;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: AVX2 and FMA are present (checked on the line above).
            unsafe { x86::fma_avx2(ITERATIONS) };
            return (ITERATIONS * ACCUMULATORS * 8 * 2) as f64;
        }
    }
    let mut acc = [1.0f32; ACCUMULATORS];
    let (a, b) = std::hint::black_box((0.999_999f32, 1e-7f32));
    for _ in 0..ITERATIONS / 4 {
        for x in &mut acc {
            *x = x.mul_add(a, b);
        }
    }
    std::hint::black_box(acc);
    (ITERATIONS / 4 * ACCUMULATORS * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F present.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_avx512(iterations: usize) {
        let a = _mm512_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm512_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); super::ACCUMULATORS];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
    }

    /// # Safety
    /// AVX2 and FMA present.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_avx2(iterations: usize) {
        let a = _mm256_set1_ps(std::hint::black_box(0.999_999));
        let b = _mm256_set1_ps(std::hint::black_box(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); super::ACCUMULATORS];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        std::hint::black_box(acc);
    }
}
