//! Weight quantization: rewrite a safetensors file so that every 2-D float weight (linear layers
//! and embedding tables) is stored as f16, or as int8 with one f32 scale per row (per output
//! channel). Biases and LayerNorm parameters stay f32. The result loads zero-copy like any
//! other file; the model code does not change.
//!
//! int8 layout: `X` (I8, `[rows, cols]`) and `X_scale` (F32, `[rows]`), with
//! `scale = max|row| / 127` and `q = round(w / scale)` in `-127..=127`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use half::f16;

use crate::error::{Error, Result};
use crate::safetensors::{serialize, Dtype, SafeTensors};
use crate::weights::Weights;

/// The storage a quantized file uses for 2-D weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantDtype {
    /// IEEE half precision.
    F16,
    /// bfloat16 (round to nearest even). Loading with it also runs the products in bf16
    /// where the weights are packed (see [`crate::kernels::Precision::Bf16`]).
    BF16,
    /// int8, per-row f32 scales.
    Int8,
}

impl QuantDtype {
    /// `"f16"`, `"bf16"` or `"int8"`.
    pub fn name(self) -> &'static str {
        match self {
            QuantDtype::F16 => "f16",
            QuantDtype::BF16 => "bf16",
            QuantDtype::Int8 => "int8",
        }
    }
}

/// Quantize one row to int8: returns the scale and writes the values.
pub fn quantize_row(row: &[f32], out: &mut Vec<u8>) -> f32 {
    let max = row.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    out.extend(
        row.iter()
            .map(|&w| libm::roundf(w / scale).clamp(-127.0, 127.0) as i8 as u8),
    );
    scale
}

/// Rewrite every safetensors buffer of a model into one quantized safetensors file.
pub fn quantize(buffers: &[&[u8]], dtype: QuantDtype) -> Result<Vec<u8>> {
    let files = buffers
        .iter()
        .map(|b| SafeTensors::parse(b))
        .collect::<Result<Vec<_>>>()?;
    let mut names: Vec<String> = files
        .iter()
        .flat_map(|f| f.names().map(String::from))
        .collect();
    names.sort();
    names.dedup();
    let weights = Weights::new(files);
    let mut out: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in names {
        let (src_dtype, shape, bytes) =
            weights
                .raw_tensor(&name)
                .ok_or_else(|| Error::MissingTensor {
                    tried: alloc::vec![name.clone()],
                })?;
        let is_float = matches!(src_dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16);
        if !is_float || shape.len() != 2 {
            out.push((name, src_dtype, shape.to_vec(), bytes.to_vec()));
            continue;
        }
        let (rows, cols) = (shape[0], shape[1]);
        let storage = weights.tensor(&name, shape)?;
        let mut row = alloc::vec![0.0f32; cols];
        match dtype {
            QuantDtype::F16 => {
                let mut data = Vec::with_capacity(rows * cols * 2);
                for r in 0..rows {
                    storage.read_f32(r * cols, &mut row);
                    data.extend(row.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()));
                }
                out.push((name, Dtype::F16, shape.to_vec(), data));
            }
            QuantDtype::BF16 => {
                let mut data = Vec::with_capacity(rows * cols * 2);
                for r in 0..rows {
                    storage.read_f32(r * cols, &mut row);
                    data.extend(
                        row.iter()
                            .flat_map(|&x| crate::kernels::bf16::to_bf16(x).to_le_bytes()),
                    );
                }
                out.push((name, Dtype::BF16, shape.to_vec(), data));
            }
            QuantDtype::Int8 => {
                let mut data = Vec::with_capacity(rows * cols);
                let mut scales = Vec::with_capacity(rows * 4);
                for r in 0..rows {
                    storage.read_f32(r * cols, &mut row);
                    scales.extend(quantize_row(&row, &mut data).to_le_bytes());
                }
                out.push((
                    format!("{name}_scale"),
                    Dtype::F32,
                    alloc::vec![rows],
                    scales,
                ));
                out.push((name, Dtype::I8, shape.to_vec(), data));
            }
        }
    }
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = out
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.as_slice(), b.as_slice()))
        .collect();
    serialize(
        &refs,
        &[("format", "pt"), ("bert-rs.quantized", dtype.name())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::AlignedBytes;

    #[test]
    fn int8_rows_round_trip_within_half_a_step() {
        let row = [0.5f32, -1.27, 0.0, 1.0];
        let mut q = Vec::new();
        let scale = quantize_row(&row, &mut q);
        assert!((scale - 0.01).abs() < 1e-7);
        for (&w, &b) in row.iter().zip(&q) {
            let back = f32::from(b as i8) * scale;
            assert!((back - w).abs() <= scale / 2.0 + 1e-7, "{w} -> {back}");
        }
        let mut z = Vec::new();
        assert_eq!(quantize_row(&[0.0; 3], &mut z), 1.0);
        assert_eq!(z, [0, 0, 0]);
    }

    #[test]
    fn quantized_files_load_as_int8_and_f16() {
        let w: Vec<u8> = [0.5f32, -0.25, 1.0, 2.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let b: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let file = serialize(
            &[
                ("l.weight", Dtype::F32, &[2, 2], &w),
                ("l.bias", Dtype::F32, &[2], &b),
            ],
            &[],
        )
        .unwrap();
        for (dtype, want) in [
            (QuantDtype::Int8, Dtype::I8),
            (QuantDtype::F16, Dtype::F16),
            (QuantDtype::BF16, Dtype::BF16),
        ] {
            let q = quantize(&[&file], dtype).unwrap();
            // An 8-byte aligned copy (a Vec<u8> promises no alignment), as an mmap would be.
            let q = AlignedBytes::copy_from(&q);
            let weights = Weights::from_buffers(&[&q]).unwrap();
            let m = weights.matrix("l.weight", 2, 2).unwrap();
            assert_eq!(m.storage.dtype(), want);
            assert!(m.storage.is_borrowed(), "{dtype:?} is zero-copy");
            let got = m.storage.to_f32();
            for (g, e) in got.iter().zip([0.5f32, -0.25, 1.0, 2.0]) {
                assert!((g - e).abs() < 0.01, "{g} vs {e}");
            }
            assert_eq!(&*weights.vector("l.bias", 2).unwrap(), &[1.0, 2.0]);
        }
    }

    #[test]
    fn int8_without_scales_or_in_1d_is_an_error() {
        let file = serialize(
            &[
                ("m", Dtype::I8, &[2, 2], &[1, 2, 3, 4]),
                ("v", Dtype::I8, &[2], &[1, 2]),
            ],
            &[],
        )
        .unwrap();
        let w = Weights::from_buffers(&[&file]).unwrap();
        assert!(matches!(
            w.matrix("m", 2, 2),
            Err(Error::MissingTensor { .. })
        ));
        assert!(matches!(w.vector("v", 2), Err(Error::WrongDtype { .. })));
    }
}
