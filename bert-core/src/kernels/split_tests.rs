//! A product split by columns ([`matmul_bias_cols`](super::gemm::matmul_bias_cols)) gives every
//! column bit for bit what the whole product gives, for every instruction set, every weight
//! form (f32, f16, int8 and bf16 panels, packed or not) and row counts on both sides of the
//! few-rows path.

use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

use super::gemm::tests::pseudo;
use super::gemm::{matmul_bias_cols_with, matmul_with, GemmNeeds, GemmScratch, Precision};
use super::isa::available;
use super::{MatMut, MatRef, PackedWeight, Rhs, COLUMN_ALIGN};
use crate::tensor::{Matrix, Storage};

#[test]
fn column_windows_match_the_whole_product_bit_for_bit() {
    let (k, n) = if cfg!(miri) { (4, 40) } else { (70, 300) };
    let w = pseudo(n * k, 1);
    let bias = pseudo(n, 2);
    let f16s: Vec<half::f16> = w.iter().map(|&x| half::f16::from_f32(x)).collect();
    let values: Vec<i8> = (0..n * k).map(|i| (i * 7 % 255) as i8).collect();
    let scales: Vec<f32> = (0..n).map(|j| 0.01 + j as f32 * 1e-4).collect();
    let weights = [
        Matrix {
            storage: Storage::F32(Cow::Borrowed(&w)),
            rows: n,
            cols: k,
        },
        Matrix {
            storage: Storage::F16(Cow::Borrowed(&f16s)),
            rows: n,
            cols: k,
        },
        Matrix {
            storage: Storage::I8 {
                values: Cow::Borrowed(&values),
                scales: Cow::Borrowed(&scales),
            },
            rows: n,
            cols: k,
        },
    ];
    let rows: &[usize] = if cfg!(miri) { &[5] } else { &[1, 3, 9, 40] };
    let splits: Vec<usize> = [0, 1, 2, 4, 8]
        .iter()
        .map(|c| c * COLUMN_ALIGN)
        .filter(|&c| c <= n)
        .collect();
    for isa in available() {
        for weight in &weights {
            let packed = [
                PackedWeight::with_precision(isa, weight, Precision::Stored),
                PackedWeight::with_precision(isa, weight, Precision::Bf16),
            ];
            let rhs = [
                Rhs::WeightT(weight),
                Rhs::PackedT(&packed[0]),
                Rhs::PackedT(&packed[1]),
            ];
            for &m in rows {
                let x = pseudo(m * k, 3);
                let lhs = MatRef::dense(&x, m, k);
                let mut scratch = GemmScratch::new(GemmNeeds::for_weight(weight, m));
                for rhs in rhs {
                    let mut whole = vec![0.0f32; m * n];
                    matmul_with(
                        isa,
                        MatMut::dense(&mut whole, m, n),
                        lhs,
                        rhs,
                        false,
                        1.0,
                        &mut scratch,
                    );
                    whole
                        .chunks_exact_mut(n)
                        .for_each(|r| r.iter_mut().zip(&bias).for_each(|(o, b)| *o += b));
                    for &c in &splits {
                        let mut left = vec![f32::NAN; m * c];
                        let mut right = vec![f32::NAN; m * (n - c)];
                        for (out, range) in [(&mut left, 0..c), (&mut right, c..n)] {
                            let width = range.len();
                            let dst = MatMut::dense(out, m, width);
                            let b = Some(&bias[..]);
                            matmul_bias_cols_with(isa, dst, lhs, rhs, b, range, &mut scratch);
                        }
                        for i in 0..m {
                            let got = left[i * c..(i + 1) * c]
                                .iter()
                                .chain(&right[i * (n - c)..(i + 1) * (n - c)]);
                            for (j, (g, w)) in got.zip(&whole[i * n..(i + 1) * n]).enumerate() {
                                assert_eq!(
                                    g.to_bits(),
                                    w.to_bits(),
                                    "{} m {m} split {c} [{i},{j}]",
                                    isa.name()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
