//! Weight storage and loading: tensors borrowed from safetensors bytes (zero-copy where the
//! alignment allows), checked against the shapes the config implies, with HF's naming quirks
//! (the optional `bert.` prefix, legacy LayerNorm `gamma`/`beta`) resolved here and only here.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::safetensors::{Dtype, SafeTensors};
pub use crate::tensor::{Matrix, Storage};

/// Bytes held in an 8-byte aligned buffer, so that the tensors of a safetensors file read into
/// memory (rather than mapped) are borrowed zero-copy: a `Vec<u8>` promises no alignment.
#[derive(Debug, Clone, Default)]
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// `len` zero bytes, to be filled through [`as_mut_bytes`](Self::as_mut_bytes).
    pub fn zeroed(len: usize) -> Self {
        AlignedBytes {
            words: vec![0; len.div_ceil(8)],
            len,
        }
    }

    /// An aligned copy of `bytes`.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut out = Self::zeroed(bytes.len());
        out.as_mut_bytes().copy_from_slice(bytes);
        out
    }

    /// The bytes, writable.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.words)[..self.len]
    }
}

impl core::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// View little-endian bytes as `T`s without copying when aligned, else decode a copy.
fn cast_or_copy<'a, T: bytemuck::Pod>(bytes: &'a [u8], decode: fn(&[u8]) -> T) -> Cow<'a, [T]> {
    let size = core::mem::size_of::<T>();
    if cfg!(target_endian = "little") {
        if let Ok(v) = bytemuck::try_cast_slice::<u8, T>(bytes) {
            return Cow::Borrowed(v);
        }
    }
    Cow::Owned(bytes.chunks_exact(size).map(decode).collect())
}

fn decode_f32(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn storage_from_bytes<'a>(name: &str, dtype: Dtype, bytes: &'a [u8]) -> Result<Storage<'a>> {
    Ok(match dtype {
        Dtype::F32 => Storage::F32(cast_or_copy(bytes, decode_f32)),
        Dtype::F16 => Storage::F16(cast_or_copy(bytes, |b| {
            f16::from_bits(u16::from_le_bytes([b[0], b[1]]))
        })),
        Dtype::BF16 => Storage::BF16(cast_or_copy(bytes, |b| {
            bf16::from_bits(u16::from_le_bytes([b[0], b[1]]))
        })),
        found => {
            return Err(Error::WrongDtype {
                name: String::from(name),
                expected: "F32, F16 or BF16",
                found,
            })
        }
    })
}

/// A set of safetensors files (shards, or a base model plus a separate head file) looked up as
/// one. Tensor names follow HF; the family prefix of task models (`bert.`, ...) is detected once.
pub struct Weights<'a> {
    files: Vec<SafeTensors<'a>>,
    encoder_prefix: &'static str,
}

impl<'a> Weights<'a> {
    /// Combine parsed files. A name found in several files is taken from the first.
    pub fn new(files: Vec<SafeTensors<'a>>) -> Self {
        let mut w = Weights {
            files,
            encoder_prefix: "",
        };
        // A family's prefix is in use when its embeddings are stored under it.
        if let Some(p) = crate::families::PREFIXES.iter().find(|p| {
            let embeddings = format!("{p}embeddings.");
            w.files
                .iter()
                .any(|f| f.names().any(|n| n.starts_with(&embeddings)))
        }) {
            w.encoder_prefix = p;
        }
        w
    }

    /// Parse each buffer and combine them.
    pub fn from_buffers(buffers: &[&'a [u8]]) -> Result<Self> {
        let files = buffers
            .iter()
            .map(|b| SafeTensors::parse(b))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::new(files))
    }

    /// The prefix of the encoder's tensors: the family's (`"bert."`, `"roberta."`, ...) in task
    /// checkpoints, `""` in bare ones.
    pub fn encoder_prefix(&self) -> &'static str {
        self.encoder_prefix
    }

    fn raw(&self, name: &str) -> Option<(Dtype, &[usize], &'a [u8])> {
        self.files.iter().find_map(|f| f.tensor_data(name))
    }

    /// The raw dtype, shape and bytes of a tensor, by its exact name.
    pub fn raw_tensor(&self, name: &str) -> Option<(Dtype, &[usize], &'a [u8])> {
        self.raw(name)
    }

    /// The names to try for `name`: itself, then the legacy LayerNorm spelling.
    fn candidates(name: &str) -> Vec<String> {
        let mut c = vec![String::from(name)];
        if let Some(stem) = name.strip_suffix("LayerNorm.weight") {
            c.push(format!("{stem}LayerNorm.gamma"));
        } else if let Some(stem) = name.strip_suffix("LayerNorm.bias") {
            c.push(format!("{stem}LayerNorm.beta"));
        }
        c
    }

    /// True when a tensor of this name (or its legacy spelling) exists.
    pub fn contains(&self, name: &str) -> bool {
        Self::candidates(name).iter().any(|n| self.raw(n).is_some())
    }

    /// Find `name`, check its shape, and wrap its elements (zero-copy where possible).
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Storage<'a>> {
        let tried = Self::candidates(name);
        let (found_name, (dtype, found_shape, bytes)) = tried
            .iter()
            .find_map(|n| self.raw(n).map(|t| (n, t)))
            .ok_or_else(|| Error::MissingTensor {
                tried: tried.clone(),
            })?;
        if found_shape != shape {
            return Err(Error::WrongShape {
                name: found_name.clone(),
                expected: shape.to_vec(),
                found: found_shape.to_vec(),
                dtype,
            });
        }
        if dtype == Dtype::I8 {
            return self.int8(found_name, shape, bytes);
        }
        storage_from_bytes(found_name, dtype, bytes)
    }

    /// An int8 matrix `name` and its per-row scales `{name}_scale`.
    fn int8(&self, name: &str, shape: &[usize], bytes: &'a [u8]) -> Result<Storage<'a>> {
        if shape.len() != 2 {
            return Err(Error::WrongDtype {
                name: String::from(name),
                expected: "F32, F16 or BF16 (int8 is for 2-D weights only)",
                found: Dtype::I8,
            });
        }
        let scale_name = format!("{name}_scale");
        let (dtype, scale_shape, scale_bytes) =
            self.raw(&scale_name).ok_or_else(|| Error::MissingTensor {
                tried: vec![scale_name.clone()],
            })?;
        if scale_shape != [shape[0]] || dtype != Dtype::F32 {
            return Err(Error::WrongShape {
                name: scale_name,
                expected: vec![shape[0]],
                found: scale_shape.to_vec(),
                dtype,
            });
        }
        let scales = cast_or_copy(scale_bytes, decode_f32);
        Ok(Storage::I8 {
            values: Cow::Borrowed(bytemuck::cast_slice::<u8, i8>(bytes)),
            scales,
        })
    }

    /// A `[rows, cols]` matrix.
    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>> {
        Ok(Matrix {
            rows,
            cols,
            storage: self.tensor(name, &[rows, cols])?,
        })
    }

    /// A vector of `len` elements, as f32 (biases and norms are tiny: widened once if needed).
    pub fn vector(&self, name: &str, len: usize) -> Result<Cow<'a, [f32]>> {
        Ok(match self.tensor(name, &[len])? {
            Storage::F32(v) => v,
            other => Cow::Owned(other.to_f32().into_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::serialize;

    #[test]
    fn aligned_bytes_are_borrowed_and_unaligned_bytes_are_copied_with_the_same_values() {
        let values = [1.5f32, -2.25, 3.0, 1e-8];
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        // An f32-aligned buffer, and the same bytes at an address that is not 4-aligned (chosen
        // from the buffer's real address: a `Vec<u8>` promises no alignment).
        let aligned = AlignedBytes::copy_from(&bytes);
        let aligned_bytes: &[u8] = &aligned;
        let mut shifted = vec![0u8; bytes.len() + 4];
        let off = (0..4)
            .find(|o| !(shifted.as_ptr() as usize + o).is_multiple_of(4))
            .unwrap_or(1);
        shifted[off..off + bytes.len()].copy_from_slice(&bytes);
        let unaligned = &shifted[off..off + bytes.len()];
        for (buf, borrowed) in [(aligned_bytes, true), (unaligned, false)] {
            let s = storage_from_bytes("t", Dtype::F32, buf).unwrap();
            assert_eq!(s.is_borrowed(), borrowed);
            assert_eq!(&*s.to_f32(), &values[..]);
        }
    }

    #[test]
    fn half_precision_storage_widens_exactly() {
        let h: Vec<u8> = [1.0f32, -0.5, 65504.0]
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect();
        let s = storage_from_bytes("h", Dtype::F16, &h[1..]);
        assert!(s.is_ok(), "odd lengths are caught by the parser, not here");
        let s = storage_from_bytes("h", Dtype::F16, &h).unwrap();
        let mut out = [0.0f32; 2];
        s.read_f32(1, &mut out);
        assert_eq!(out, [-0.5, 65504.0]);
        let b: Vec<u8> = [3.0f32]
            .iter()
            .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
            .collect();
        assert_eq!(
            &*storage_from_bytes("b", Dtype::BF16, &b).unwrap().to_f32(),
            &[3.0]
        );
        assert!(matches!(
            storage_from_bytes("i", Dtype::I64, &[0; 8]),
            Err(Error::WrongDtype { .. })
        ));
    }

    #[test]
    fn legacy_layer_norm_names_and_prefix_are_resolved() {
        let one: Vec<u8> = 1.0f32.to_le_bytes().to_vec();
        let file = serialize(
            &[
                (
                    "bert.embeddings.word_embeddings.weight",
                    Dtype::F32,
                    &[1, 1],
                    &one,
                ),
                ("x.LayerNorm.gamma", Dtype::F32, &[1], &one),
            ],
            &[],
        )
        .unwrap();
        let w = Weights::from_buffers(&[&file]).unwrap();
        assert_eq!(w.encoder_prefix(), "bert.");
        assert!(w.contains("x.LayerNorm.weight"));
        assert!(!w.contains("x.LayerNorm.bias"));
        assert_eq!(&*w.vector("x.LayerNorm.weight", 1).unwrap(), &[1.0]);
        assert!(matches!(
            w.vector("x.LayerNorm.weight", 2),
            Err(Error::WrongShape { .. })
        ));
    }
}
