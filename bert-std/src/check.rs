//! Non-finite values: outputs are always checked (a NaN score is an error, never `null` in a
//! result), weights on request (`LoadOptions::check_weights`, `bert info --check`).

use bert_core::safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::ModelDir;

/// `Ok` when every value is finite, else [`Error::NonFinite`] naming `what`.
pub fn finite(values: &[f32], what: &'static str) -> Result<()> {
    if values.iter().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(Error::NonFinite { what })
    }
}

/// Read every floating-point tensor of the model directory's weight files; the first tensor
/// with a NaN or infinite value is an error. Returns the number of values checked.
pub fn check_weights(dir: &ModelDir) -> Result<u64> {
    let mut checked = 0u64;
    for path in &dir.weight_files {
        let bytes = WeightBytes::open(path, true)?;
        let file = SafeTensors::parse(&bytes).map_err(|source| Error::Weights {
            path: path.clone(),
            source,
        })?;
        let names: Vec<String> = file.names().map(str::to_string).collect();
        for name in names {
            let Some((dtype, _, data)) = file.tensor_data(&name) else {
                continue;
            };
            let bad = match dtype {
                Dtype::F32 => count_bad(data, 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                Dtype::F16 => count_bad(data, 2, |b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
                Dtype::BF16 => count_bad(data, 2, |b| {
                    f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
                }),
                _ => continue,
            };
            checked += (data.len() / dtype.size()) as u64;
            if bad > 0 {
                return Err(Error::NonFiniteWeights {
                    path: path.clone(),
                    tensor: name,
                    count: bad,
                });
            }
        }
    }
    Ok(checked)
}

fn count_bad(data: &[u8], width: usize, read: impl Fn(&[u8]) -> f32) -> usize {
    data.chunks_exact(width)
        .filter(|b| !read(b).is_finite())
        .count()
}

/// Only finiteness matters here: exponent all ones means infinity or NaN.
fn f16_to_f32(bits: u16) -> f32 {
    if bits & 0x7c00 == 0x7c00 {
        f32::NAN
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_names_what_is_not() {
        assert!(finite(&[1.0, -2.0], "logits").is_ok());
        let e = finite(&[1.0, f32::NAN], "logits").unwrap_err();
        assert!(e
            .to_string()
            .contains("non-finite values (NaN or infinity) in its logits"));
        assert_eq!(
            count_bad(&[0, 0x7c, 0, 0x3c], 2, |b| f16_to_f32(u16::from_le_bytes(
                [b[0], b[1]]
            ))),
            1
        );
    }
}
