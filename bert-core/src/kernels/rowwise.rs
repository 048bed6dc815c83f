//! Products that read the weight where it lies, one weight row at a time (PyTorch's
//! `[out_features, in_features]` layout, in any storage), for a block of at most
//! [`ROWS`] activation rows: nothing is packed and the only scratch is a slice the caller hands
//! over, sized by [`scratch_len`]. The low-RAM forward (`crate::model::low_ram`) runs every
//! product through here, so int8 weights in flash are read in place.
//!
//! int8 weights meet the activation rows quantized exactly as the packed int8 products do it
//! ([`quantize_rows`]: one scale per group of [`KC_I8`] values), so the results agree with them
//! to the order of the f32 rescaling sums.

use super::gemm::{dot_f32, KC_I8};
use super::int8::{dot_i8_groups_rows, quantize_rows};
use super::isa::I8_K_GROUP;
use super::MatRef;
use crate::tensor::{Matrix, Storage};

/// Most activation rows one product takes.
pub const ROWS: usize = 4;

/// f32 elements of scratch a product over up to `rows` rows of width `k` needs: the rows in
/// int8 (four to an f32), their group scales and sums, and one weight row widened to f32 (f16
/// and bf16 weights).
pub const fn scratch_len(rows: usize, k: usize) -> usize {
    let depth = k.div_ceil(I8_K_GROUP) * I8_K_GROUP;
    let groups = depth.div_ceil(KC_I8);
    rows * depth.div_ceil(4) + 2 * rows * groups + k
}

/// `out[i][j] = x[i] · W[j] (+ bias[j])` for the `rows` rows of `x` (`[rows, k]`, `rows ≤`
/// [`ROWS`]) into `out` (`[rows, n]`), `W` being `weight` (`[n, k]`).
///
/// # Panics
/// When `rows` is over [`ROWS`] or a slice is shorter than the shapes say (the caller sizes
/// them from the same config).
pub fn product(
    weight: &Matrix<'_>,
    bias: Option<&[f32]>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let (n, k) = (weight.rows, weight.cols);
    assert!(
        rows <= ROWS,
        "rowwise::product: {rows} rows (at most {ROWS})"
    );
    assert!(
        x.len() >= rows * k && out.len() >= rows * n,
        "rowwise::product: shapes"
    );
    let finish = |o: f32, j: usize| match bias {
        Some(b) => o + b[j],
        None => o,
    };
    match &weight.storage {
        Storage::I8 { values, scales } => {
            let depth = k.div_ceil(I8_K_GROUP) * I8_K_GROUP;
            let groups = depth.div_ceil(KC_I8);
            let (q, rest) = scratch.split_at_mut(rows * depth.div_ceil(4));
            let q: &mut [i8] = &mut bytemuck::cast_slice_mut::<f32, i8>(q)[..rows * depth];
            let (act_scales, rest) = rest.split_at_mut(rows * groups);
            let sums: &mut [i32] = bytemuck::cast_slice_mut(&mut rest[..rows * groups]);
            quantize_rows(MatRef::dense(x, rows, k), depth, q, act_scales, sums);
            let mut o = [0.0f32; ROWS];
            for j in 0..n {
                let w = &values[j * k..(j + 1) * k];
                dot_i8_groups_rows(q, depth, rows, w, act_scales, &mut o);
                for (i, o) in o.iter().enumerate().take(rows) {
                    out[i * n + j] = finish(o * scales[j], j);
                }
            }
        }
        Storage::F32(w) => {
            for j in 0..n {
                let w = &w[j * k..(j + 1) * k];
                for i in 0..rows {
                    out[i * n + j] = finish(dot_f32(&x[i * k..(i + 1) * k], w), j);
                }
            }
        }
        storage => {
            let w = &mut scratch[..k];
            for j in 0..n {
                storage.read_f32(j * k, w);
                for i in 0..rows {
                    out[i * n + j] = finish(dot_f32(&x[i * k..(i + 1) * k], w), j);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{matmul_bias, GemmNeeds, GemmScratch, MatMut, Rhs};
    use alloc::borrow::Cow;
    use alloc::vec;
    use alloc::vec::Vec;

    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (s >> 16) as f32 / 32768.0 - 1.0
            })
            .collect()
    }

    /// The packed products' answer for the same rows.
    fn reference(weight: &Matrix<'_>, bias: &[f32], x: &[f32], rows: usize) -> Vec<f32> {
        let (n, k) = (weight.rows, weight.cols);
        let mut out = vec![0.0; rows * n];
        let mut scratch = GemmScratch::new(GemmNeeds::for_weight(weight, rows));
        matmul_bias(
            MatMut::dense(&mut out, rows, n),
            MatRef::dense(x, rows, k),
            Rhs::WeightT(weight),
            Some(bias),
            &mut scratch,
        );
        out
    }

    #[test]
    fn rows_read_in_place_agree_with_the_packed_products() {
        // Odd widths: a depth that is not a multiple of the int8 group, two int8 groups
        // (narrower under Miri, which is slow).
        let shapes: &[(usize, usize)] = if cfg!(miri) {
            &[(5, 7), (2, 260)]
        } else {
            &[(5, 7), (3, 300)]
        };
        for &(n, k) in shapes {
            let w = values(n * k, 3);
            let bias = values(n, 5);
            let mut bytes = Vec::new();
            let scales: Vec<f32> = w
                .chunks(k)
                .map(|r| crate::quantize::quantize_row(r, &mut bytes))
                .collect();
            let q: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
            let int8 = Matrix {
                rows: n,
                cols: k,
                storage: Storage::I8 {
                    values: Cow::Borrowed(&q),
                    scales: Cow::Borrowed(&scales),
                },
            };
            let f32_weight = Matrix {
                rows: n,
                cols: k,
                storage: Storage::F32(Cow::Borrowed(&w)),
            };
            let f16: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
            let f16_weight = Matrix {
                rows: n,
                cols: k,
                storage: Storage::F16(Cow::Borrowed(&f16)),
            };
            for weight in [&f32_weight, &int8, &f16_weight] {
                for rows in 1..=ROWS {
                    let x = values(rows * k, 7 + rows as u32);
                    let mut out = vec![0.0; rows * n];
                    let mut scratch = vec![0.0; scratch_len(rows, k)];
                    product(weight, Some(&bias), &x, rows, &mut out, &mut scratch);
                    let want = reference(weight, &bias, &x, rows);
                    for (a, b) in out.iter().zip(&want) {
                        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
                    }
                }
            }
        }
    }
}
