//! The row-wise int8 product as this core computes it (`SMLAD`, four rows per weight word)
//! against an integer oracle written out here, on shapes the student does not have: one to
//! four rows, depths that leave a tail of one to three bytes, and two activation groups. The
//! results must be the same bits (integer sums, then the same f32 steps in the same order).

use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

use bert_core::kernels::gemm::KC_I8;
use bert_core::kernels::int8::quantize_rows;
use bert_core::kernels::isa::I8_K_GROUP;
use bert_core::kernels::rowwise::{product, scratch_len};
use bert_core::kernels::MatRef;
use bert_core::weights::{Matrix, Storage};

/// Whether every shape agrees bit for bit; the first that does not is returned.
pub fn rowwise_matches_oracle() -> Result<(), (usize, usize, usize)> {
    let mut seed = 11u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    for (rows, k, n) in [(1, 7, 3), (2, 33, 5), (3, 66, 4), (4, 300, 3), (4, 64, 9)] {
        let x: Vec<f32> = (0..rows * k).map(|_| next()).collect();
        let w: Vec<i8> = (0..n * k).map(|_| (next() * 254.0) as i8).collect();
        let scales: Vec<f32> = (0..n).map(|_| 0.01 + next().abs() * 0.01).collect();
        let bias: Vec<f32> = (0..n).map(|_| next()).collect();
        let weight = Matrix {
            rows: n,
            cols: k,
            storage: Storage::I8 {
                values: Cow::Borrowed(&w),
                scales: Cow::Borrowed(&scales),
            },
        };
        let mut got = vec![0.0f32; rows * n];
        let mut scratch = vec![0.0f32; scratch_len(rows, k)];
        product(&weight, Some(&bias), &x, rows, &mut got, &mut scratch);

        let depth = k.div_ceil(I8_K_GROUP) * I8_K_GROUP;
        let groups = depth.div_ceil(KC_I8);
        let mut q = vec![0i8; rows * depth];
        let (mut act, mut sums) = (vec![0.0f32; rows * groups], vec![0i32; rows * groups]);
        quantize_rows(
            MatRef::dense(&x, rows, k),
            depth,
            &mut q,
            &mut act,
            &mut sums,
        );
        for i in 0..rows {
            for j in 0..n {
                let mut o = -0.0f32;
                for g in 0..groups {
                    let dot: i32 = (g * KC_I8..((g + 1) * KC_I8).min(k))
                        .map(|p| i32::from(q[i * depth + p]) * i32::from(w[j * k + p]))
                        .sum();
                    o += dot as f32 * act[i * groups + g];
                }
                if (o * scales[j] + bias[j]).to_bits() != got[i * n + j].to_bits() {
                    return Err((rows, k, n));
                }
            }
        }
    }
    Ok(())
}
