//! The matmul driver against f64 references and against the scalar kernels, for every
//! instruction set of this CPU.

use super::*;
use crate::kernels::isa::available;
use crate::kernels::scalar::Scalar;
use alloc::borrow::Cow;
use alloc::format;
use half::f16;

/// `n` values in [-0.5, 0.5) from a seeded LCG (shared by the kernels' tests).
pub(crate) fn pseudo(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// `a[m,k] · b[k,n]` in f64.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                .sum::<f64>() as f32;
        }
    }
    c
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = x[r * cols + c];
        }
    }
    t
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Shapes with every edge: 1, 7, 33 rows; depths across KC and KC_I8 blocks and past the
/// long sums' limit of [`depth_block`]; widths
/// across NC blocks and every NR.
const SHAPES: &[(usize, usize, usize)] = if cfg!(miri) {
    &[(1, 7, 5), (7, 33, 17)]
} else {
    &[
        (1, 1, 1),
        (1, 384, 384),
        (7, 33, 5),
        (33, 384, 1536),
        (13, 1536, 384),
        (9, 600, 33),
        (2, 5, 300),
        (11, KC + 77, 40),
        (3, 2 * KC + 5, 20),
    ]
};

fn scratch_for(m: usize, k: usize) -> GemmScratch {
    GemmScratch::new(GemmNeeds {
        rows: m,
        depth: k,
        int8: true,
    })
}

#[test]
fn f32_kernels_match_f64_reference_on_odd_shapes() {
    for isa in available() {
        for &(m, k, n) in SHAPES {
            let a = pseudo(m * k, 1);
            let b = pseudo(k * n, 2);
            let want = naive(&a, &b, m, k, n);
            let mut scratch = scratch_for(m, k);
            // Dense B.
            let mut c = vec![0.0; m * n];
            let (dst, lhs) = (MatMut::dense(&mut c, m, n), MatRef::dense(&a, m, k));
            matmul_with(
                isa,
                dst,
                lhs,
                Rhs::Dense(MatRef::dense(&b, k, n)),
                false,
                1.0,
                &mut scratch,
            );
            let tol = 1e-5 * (k as f32).sqrt();
            assert!(
                max_diff(&c, &want) < tol,
                "{} dense {m}x{k}x{n}",
                isa.name()
            );
            // Transposed weight, accumulate onto 1 and scale by 0.5.
            let w = Matrix {
                rows: n,
                cols: k,
                storage: Storage::F32(Cow::Owned(transpose(&b, k, n))),
            };
            let mut c = vec![1.0; m * n];
            let (dst, lhs) = (MatMut::dense(&mut c, m, n), MatRef::dense(&a, m, k));
            matmul_with(isa, dst, lhs, Rhs::WeightT(&w), true, 0.5, &mut scratch);
            let want2: Vec<f32> = want.iter().map(|v| 1.0 + 0.5 * v).collect();
            assert!(
                max_diff(&c, &want2) < tol,
                "{} weight {m}x{k}x{n}",
                isa.name()
            );
        }
    }
}

#[test]
fn f16_weights_are_widened_while_packing() {
    // 17 rows: packed into panels; 3 rows: read row by row (the few-rows path).
    for m in [17, 3] {
        f16_weights_case(m);
    }
}

fn f16_weights_case(m: usize) {
    let (k, n) = if cfg!(miri) { (9, 5) } else { (600, 70) };
    let a = pseudo(m * k, 3);
    let wt = pseudo(n * k, 4);
    let halves: Vec<f16> = wt.iter().map(|&v| f16::from_f32(v)).collect();
    let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
    let want = naive(&a, &transpose(&widened, n, k), m, k, n);
    let w = Matrix {
        rows: n,
        cols: k,
        storage: Storage::F16(Cow::Owned(halves)),
    };
    for isa in available() {
        let mut c = vec![0.0; m * n];
        let mut scratch = scratch_for(m, k);
        let (dst, lhs) = (MatMut::dense(&mut c, m, n), MatRef::dense(&a, m, k));
        matmul_with(isa, dst, lhs, Rhs::WeightT(&w), false, 1.0, &mut scratch);
        assert!(max_diff(&c, &want) < 1e-4, "{}", isa.name());
    }
}

/// The int8 path's exact result: quantize the rows, integer dot products, rescale.
fn int8_reference(a: &[f32], m: usize, k: usize, q: &[i8], scales: &[f32], n: usize) -> Vec<f32> {
    let depth = round_up(k, I8_K_GROUP);
    let groups = depth.div_ceil(KC_I8);
    let mut aq = vec![0i8; m * depth];
    let mut sa = vec![0.0; m * groups];
    let mut sums = vec![0; m * groups];
    quantize_rows(MatRef::dense(a, m, k), depth, &mut aq, &mut sa, &mut sums);
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| {
                    let dot = i64::from(aq[i * depth + p]) * i64::from(q[j * k + p]);
                    dot as f32 * sa[i * groups + p / KC_I8]
                })
                .sum::<f32>()
                * scales[j];
        }
    }
    c
}

#[test]
fn int8_kernels_are_exact_integer_products_on_odd_shapes() {
    for isa in available() {
        for &(m, k, n) in SHAPES {
            let a = pseudo(m * k, 5);
            let q: Vec<i8> = pseudo(n * k, 6).iter().map(|v| (v * 254.0) as i8).collect();
            let scales: Vec<f32> = pseudo(n, 7).iter().map(|v| v.abs() + 0.01).collect();
            let want = int8_reference(&a, m, k, &q, &scales, n);
            let w = Matrix {
                rows: n,
                cols: k,
                storage: Storage::I8 {
                    values: Cow::Borrowed(&q),
                    scales: Cow::Borrowed(&scales),
                },
            };
            let mut c = vec![0.0; m * n];
            let mut scratch = scratch_for(m, k);
            let (dst, lhs) = (MatMut::dense(&mut c, m, n), MatRef::dense(&a, m, k));
            matmul_with(isa, dst, lhs, Rhs::WeightT(&w), false, 1.0, &mut scratch);
            let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            let d = max_diff(&c, &want);
            assert!(d <= 1e-5 * scale, "{} {m}x{k}x{n}: {d}", isa.name());
        }
    }
}

#[test]
fn bias_is_added_in_the_write_out_for_f32_packed_and_int8_weights() {
    let (m, k, n) = if cfg!(miri) {
        (3, 9, 5)
    } else {
        (19, 300, 300)
    };
    let a = pseudo(m * k, 11);
    let wt = pseudo(n * k, 12);
    let bias = pseudo(n, 13);
    let q: Vec<i8> = wt.iter().map(|v| (v * 254.0) as i8).collect();
    let scales = vec![0.01; n];
    let f32_weight = Matrix {
        rows: n,
        cols: k,
        storage: Storage::F32(Cow::Borrowed(&wt)),
    };
    let i8_weight = Matrix {
        rows: n,
        cols: k,
        storage: Storage::I8 {
            values: Cow::Borrowed(&q),
            scales: Cow::Borrowed(&scales),
        },
    };
    let packed = PackedWeight::new(&f32_weight);
    let packed_i8 = PackedWeight::new(&i8_weight);
    let mut scratch = scratch_for(m, k);
    for rhs in [
        Rhs::WeightT(&f32_weight),
        Rhs::PackedT(&packed),
        Rhs::WeightT(&i8_weight),
        Rhs::PackedT(&packed_i8),
    ] {
        let mut without = vec![0.0; m * n];
        let (dst, lhs) = (MatMut::dense(&mut without, m, n), MatRef::dense(&a, m, k));
        matmul_bias(dst, lhs, rhs, None, &mut scratch);
        let mut with = vec![f32::NAN; m * n];
        let (dst, lhs) = (MatMut::dense(&mut with, m, n), MatRef::dense(&a, m, k));
        matmul_bias(dst, lhs, rhs, Some(&bias), &mut scratch);
        for (r, (w, wo)) in with.chunks(n).zip(without.chunks(n)).enumerate() {
            for j in 0..n {
                assert!((w[j] - (wo[j] + bias[j])).abs() < 1e-5, "row {r} col {j}");
            }
        }
    }
    // Packed ahead of time or per product: the same bits.
    let mut per_product = vec![0.0; m * n];
    let mut prepacked = vec![0.0; m * n];
    let lhs = MatRef::dense(&a, m, k);
    matmul_bias(
        MatMut::dense(&mut per_product, m, n),
        lhs,
        Rhs::WeightT(&f32_weight),
        Some(&bias),
        &mut scratch,
    );
    matmul_bias(
        MatMut::dense(&mut prepacked, m, n),
        lhs,
        Rhs::PackedT(&packed),
        Some(&bias),
        &mut scratch,
    );
    assert_eq!(per_product, prepacked);
    let lhs = MatRef::dense(&a, m, k);
    matmul_bias(
        MatMut::dense(&mut per_product, m, n),
        lhs,
        Rhs::WeightT(&i8_weight),
        None,
        &mut scratch,
    );
    matmul_bias(
        MatMut::dense(&mut prepacked, m, n),
        lhs,
        Rhs::PackedT(&packed_i8),
        None,
        &mut scratch,
    );
    assert_eq!(per_product, prepacked, "int8");
}

#[test]
fn every_isa_agrees_with_scalar_on_strided_views() {
    // Attention-shaped: a head's [seq, d] slice of a [seq, hidden] buffer, times the
    // transpose of another head slice.
    let (s, d, h) = (37, 32, 96);
    let q = pseudo(s * h, 8);
    let kk = pseudo(s * h, 9);
    fn view(x: &[f32], (s, d, h): (usize, usize, usize)) -> MatRef<'_> {
        MatRef {
            data: &x[32..],
            rows: s,
            cols: d,
            row_stride: h,
            col_stride: 1,
        }
    }
    let shape = (s, d, h);
    let view = |x| view(x, shape);
    let (q, kk) = (&q[..], &kk[..]);
    let mut want = vec![0.0; s * s];
    let mut scratch = scratch_for(s, d);
    matmul_with(
        &Scalar,
        MatMut::dense(&mut want, s, s),
        view(q),
        Rhs::Dense(view(kk).t()),
        false,
        0.25,
        &mut scratch,
    );
    for isa in available() {
        let mut c = vec![0.0; s * s];
        matmul_with(
            isa,
            MatMut::dense(&mut c, s, s),
            view(q),
            Rhs::Dense(view(kk).t()),
            false,
            0.25,
            &mut scratch,
        );
        assert!(max_diff(&c, &want) < 1e-5, "{}", format!("{}", isa.name()));
    }
}

/// Every ISA's `i8_kernel_write` (its own write-out, from registers where it has one) gives the
/// bits of its `i8_kernel` followed by the portable write-out, in each of the three modes.
#[test]
fn int8_write_out_from_registers_matches_the_portable_write_out_bit_for_bit() {
    use crate::kernels::isa::{TileRows, MAX_MR, MAX_TILE};
    let k = if cfg!(miri) { 8 } else { 256 };
    for isa in available() {
        let (mr, nr) = isa.i8_tile();
        let a: Vec<i8> = pseudo(mr * k, 21)
            .iter()
            .map(|v| (v * 254.0) as i8)
            .collect();
        let panel: Vec<i8> = pseudo(k * nr, 22)
            .iter()
            .map(|v| (v * 254.0) as i8)
            .collect();
        let row_start: [usize; MAX_MR] = core::array::from_fn(|r| r.min(mr - 1) * k);
        let rows = TileRows {
            a: &a,
            row_start: &row_start,
            col_stride: 1,
        };
        let w = pseudo(nr, 23);
        let bias = pseudo(nr, 24);
        let start = pseudo(mr * (nr + 3), 25);
        for (with_bias, accumulate) in [(false, false), (true, false), (false, true)] {
            let out = |dst| {
                write_out(
                    dst,
                    (mr, nr),
                    &w,
                    with_bias.then_some(&bias[..]),
                    accumulate,
                )
            };
            let (mut want, mut got) = (start.clone(), start.clone());
            let mut tile = [0i32; MAX_TILE];
            isa.i8_kernel(k, rows, &panel, &mut tile);
            out(&mut want).write(&tile, (mr, nr), nr);
            isa.i8_kernel_write(k, rows, &panel, out(&mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&got),
                bits(&want),
                "{} bias {with_bias} accumulate {accumulate}",
                isa.name()
            );
        }
    }
}

/// The write-out of the test above: rows `nr + 3` apart, scales and shifts per row.
fn write_out<'a>(
    dst: &'a mut [f32],
    (mr, nr): (usize, usize),
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    accumulate: bool,
) -> crate::kernels::isa::I8WriteOut<'a> {
    crate::kernels::isa::I8WriteOut {
        out: crate::kernels::isa::F32WriteOut {
            dst,
            rows: core::array::from_fn(|r| r.min(mr - 1) * (nr + 3)),
            alpha: 1.0,
            bias,
            accumulate,
        },
        scale: core::array::from_fn(|r| 0.01 + r as f32 * 1e-3),
        shift: core::array::from_fn(|r| r as i32 * 37 - 100),
        w,
    }
}

/// Every ISA's `f32_kernel_write` and `bf16_kernel_write` give the bits of their kernel
/// followed by the portable write-out, in each of the three modes.
#[test]
fn f32_and_bf16_write_outs_from_registers_match_the_portable_write_out_bit_for_bit() {
    use crate::kernels::bf16::to_bf16;
    use crate::kernels::isa::{F32WriteOut, TileRows, MAX_MR, MAX_TILE};
    let k = if cfg!(miri) { 6 } else { 300 };
    let modes = [(false, false), (true, false), (false, true)];
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for isa in available() {
        for bf16 in [false, true] {
            let (mr, nr) = if bf16 {
                isa.bf16_tile()
            } else {
                isa.f32_tile()
            };
            let a = pseudo(mr * k, 31);
            let panel = pseudo(k * nr, 32);
            let (a16, panel16): (Vec<u16>, Vec<u16>) = (
                a.iter().map(|&v| to_bf16(v)).collect(),
                panel.iter().map(|&v| to_bf16(v)).collect(),
            );
            let row_start: [usize; MAX_MR] = core::array::from_fn(|r| r.min(mr - 1) * k);
            let bias = pseudo(nr, 33);
            let start = pseudo(mr * (nr + 5), 34);
            for (with_bias, accumulate) in modes {
                let out = |dst| F32WriteOut {
                    dst,
                    rows: core::array::from_fn(|r| r.min(mr - 1) * (nr + 5)),
                    alpha: 0.37,
                    bias: with_bias.then_some(&bias[..]),
                    accumulate,
                };
                let (mut want, mut got) = (start.clone(), start.clone());
                let mut tile = [0.0f32; MAX_TILE];
                if bf16 {
                    let rows = TileRows {
                        a: &a16[..],
                        row_start: &row_start,
                        col_stride: 1,
                    };
                    isa.bf16_kernel(k, rows, &panel16, &mut tile);
                    out(&mut want).write(&tile, (mr, nr), nr);
                    isa.bf16_kernel_write(k, rows, &panel16, out(&mut got));
                } else {
                    let rows = TileRows {
                        a: &a[..],
                        row_start: &row_start,
                        col_stride: 1,
                    };
                    isa.f32_kernel(k, rows, &panel, &mut tile);
                    out(&mut want).write(&tile, (mr, nr), nr);
                    isa.f32_kernel_write(k, rows, &panel, out(&mut got));
                }
                let name = isa.name();
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{name} bf16 {bf16} {with_bias} {accumulate}"
                );
            }
        }
    }
}
