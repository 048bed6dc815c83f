//! Plain tensor data the kernels work on and every other module names: element types
//! ([`Dtype`]), weight storage ([`Storage`]) and row-major matrices ([`Matrix`]). A leaf module:
//! it imports nothing of the crate, so that the kernels, the weights loader, the safetensors
//! parser and the error type all depend on it and not on each other.

use alloc::borrow::Cow;
use alloc::vec;
use core::fmt;

use half::{bf16, f16, slice::HalfFloatSliceExt};

/// Element types that safetensors defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// Boolean, one byte.
    Bool,
    /// Unsigned 8-bit.
    U8,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Unsigned 16-bit.
    U16,
    /// Signed 32-bit.
    I32,
    /// Unsigned 32-bit.
    U32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 64-bit.
    U64,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// 8-bit float, e4m3.
    F8E4M3,
    /// 8-bit float, e5m2.
    F8E5M2,
}

impl Dtype {
    /// Parse the header's dtype string.
    pub fn parse(s: &str) -> Option<Dtype> {
        Some(match s {
            "BOOL" => Dtype::Bool,
            "U8" => Dtype::U8,
            "I8" => Dtype::I8,
            "I16" => Dtype::I16,
            "U16" => Dtype::U16,
            "I32" => Dtype::I32,
            "U32" => Dtype::U32,
            "I64" => Dtype::I64,
            "U64" => Dtype::U64,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F32" => Dtype::F32,
            "F64" => Dtype::F64,
            "F8_E4M3" => Dtype::F8E4M3,
            "F8_E5M2" => Dtype::F8E5M2,
            _ => return None,
        })
    }

    /// The header's spelling of this dtype.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::I16 => "I16",
            Dtype::U16 => "U16",
            Dtype::I32 => "I32",
            Dtype::U32 => "U32",
            Dtype::I64 => "I64",
            Dtype::U64 => "U64",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::F8E4M3 => "F8_E4M3",
            Dtype::F8E5M2 => "F8_E5M2",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 | Dtype::F8E4M3 | Dtype::F8E5M2 => 1,
            Dtype::I16 | Dtype::U16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The elements of a weight tensor, in the dtype the file has. Borrowed from the file when its
/// bytes are aligned for the type (and the target is little-endian), copied otherwise.
#[derive(Debug, Clone)]
pub enum Storage<'a> {
    /// 32-bit floats.
    F32(Cow<'a, [f32]>),
    /// IEEE half floats; widened to f32 tile by tile inside the matmul.
    F16(Cow<'a, [f16]>),
    /// bfloat16; widened to f32 tile by tile inside the matmul.
    BF16(Cow<'a, [bf16]>),
    /// int8 with one f32 scale per row (per output channel): `w[r][c] = values[r][c] * scales[r]`.
    /// Stored as tensor `X` (I8, `[rows, cols]`) plus `X_scale` (F32, `[rows]`).
    I8 {
        /// The quantized values, row-major.
        values: Cow<'a, [i8]>,
        /// One scale per row.
        scales: Cow<'a, [f32]>,
    },
}

impl Storage<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F16(v) => v.len(),
            Storage::BF16(v) => v.len(),
            Storage::I8 { values, .. } => values.len(),
        }
    }

    /// Bytes the storage occupies (values, plus scales for int8).
    pub fn size_in_bytes(&self) -> usize {
        match self {
            Storage::I8 { values, scales } => values.len() + 4 * scales.len(),
            other => other.len() * other.dtype().size(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dtype of the elements.
    pub fn dtype(&self) -> Dtype {
        match self {
            Storage::F32(_) => Dtype::F32,
            Storage::F16(_) => Dtype::F16,
            Storage::BF16(_) => Dtype::BF16,
            Storage::I8 { .. } => Dtype::I8,
        }
    }

    /// True when the elements are borrowed from the file (zero-copy).
    pub fn is_borrowed(&self) -> bool {
        matches!(
            self,
            Storage::F32(Cow::Borrowed(_))
                | Storage::F16(Cow::Borrowed(_))
                | Storage::BF16(Cow::Borrowed(_))
                | Storage::I8 {
                    values: Cow::Borrowed(_),
                    ..
                }
        )
    }

    /// Widen `self[start..start + out.len()]` into `out`.
    pub fn read_f32(&self, start: usize, out: &mut [f32]) {
        let end = start + out.len();
        match self {
            Storage::F32(v) => out.copy_from_slice(&v[start..end]),
            Storage::F16(v) => v[start..end].convert_to_f32_slice(out),
            Storage::BF16(v) => v[start..end].convert_to_f32_slice(out),
            Storage::I8 { values, scales } => {
                // One scale per row: walk the rows the range touches, not a division per value.
                let cols = (values.len() / scales.len().max(1)).max(1);
                let (mut i, mut rest) = (start, &mut out[..]);
                while !rest.is_empty() {
                    let len = (cols - i % cols).min(rest.len());
                    let (o, tail) = rest.split_at_mut(len);
                    let scale = scales[i / cols];
                    for (o, &v) in o.iter_mut().zip(&values[i..i + len]) {
                        *o = f32::from(v) * scale;
                    }
                    (i, rest) = (i + len, tail);
                }
            }
        }
    }

    /// All elements as f32, borrowed when they already are.
    pub fn to_f32(&self) -> Cow<'_, [f32]> {
        match self {
            Storage::F32(v) => Cow::Borrowed(v),
            _ => {
                let mut out = vec![0.0; self.len()];
                self.read_f32(0, &mut out);
                Cow::Owned(out)
            }
        }
    }
}

/// A row-major `[rows, cols]` weight matrix (PyTorch's `[out_features, in_features]` layout).
#[derive(Debug, Clone)]
pub struct Matrix<'a> {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// The elements.
    pub storage: Storage<'a>,
}

impl<'a> Matrix<'a> {
    /// Rows `start..end` as a matrix of their own, borrowing where the storage is borrowed.
    pub fn rows(&self, start: usize, end: usize) -> Matrix<'a> {
        fn cut<'a, T: Clone>(v: &Cow<'a, [T]>, a: usize, b: usize) -> Cow<'a, [T]> {
            match v {
                Cow::Borrowed(s) => Cow::Borrowed(&s[a..b]),
                Cow::Owned(o) => Cow::Owned(o[a..b].to_vec()),
            }
        }
        let (a, b) = (start * self.cols, end * self.cols);
        let storage = match &self.storage {
            Storage::F32(v) => Storage::F32(cut(v, a, b)),
            Storage::F16(v) => Storage::F16(cut(v, a, b)),
            Storage::BF16(v) => Storage::BF16(cut(v, a, b)),
            Storage::I8 { values, scales } => Storage::I8 {
                values: cut(values, a, b),
                scales: cut(scales, start, end),
            },
        };
        Matrix {
            rows: end - start,
            cols: self.cols,
            storage,
        }
    }
}

impl Matrix<'_> {
    /// The rows of `parts`, one after the other, as one owned matrix (a fused Q, K, V
    /// projection); `None` when they differ in width or storage type.
    pub fn stack_rows(parts: &[&Matrix<'_>]) -> Option<Matrix<'static>> {
        fn cat<'p, T: Clone + 'p>(
            parts: impl Iterator<Item = Option<&'p [T]>>,
        ) -> Option<Cow<'static, [T]>> {
            let mut out = alloc::vec::Vec::new();
            for p in parts {
                out.extend_from_slice(p?);
            }
            Some(Cow::Owned(out))
        }
        let first = parts.first()?;
        if parts.iter().any(|m| m.cols != first.cols) {
            return None;
        }
        let storage = match &first.storage {
            Storage::F32(_) => Storage::F32(cat(parts.iter().map(|m| match &m.storage {
                Storage::F32(v) => Some(&v[..]),
                _ => None,
            }))?),
            Storage::F16(_) => Storage::F16(cat(parts.iter().map(|m| match &m.storage {
                Storage::F16(v) => Some(&v[..]),
                _ => None,
            }))?),
            Storage::BF16(_) => Storage::BF16(cat(parts.iter().map(|m| match &m.storage {
                Storage::BF16(v) => Some(&v[..]),
                _ => None,
            }))?),
            Storage::I8 { .. } => Storage::I8 {
                values: cat(parts.iter().map(|m| match &m.storage {
                    Storage::I8 { values, .. } => Some(&values[..]),
                    _ => None,
                }))?,
                scales: cat(parts.iter().map(|m| match &m.storage {
                    Storage::I8 { scales, .. } => Some(&scales[..]),
                    _ => None,
                }))?,
            },
        };
        Some(Matrix {
            rows: parts.iter().map(|m| m.rows).sum(),
            cols: first.cols,
            storage,
        })
    }

    /// Widen row `r` into `out` (`out.len() == cols`).
    pub fn row_into(&self, r: usize, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.cols);
        self.storage.read_f32(r * self.cols, out);
    }

    /// Bytes the elements (and int8 scales) occupy.
    pub fn size_in_bytes(&self) -> usize {
        self.storage.size_in_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_rows_read_as_the_parts_in_order() {
        let a = Matrix {
            rows: 1,
            cols: 2,
            storage: Storage::I8 {
                values: Cow::Owned(alloc::vec![1, 2]),
                scales: Cow::Owned(alloc::vec![0.5]),
            },
        };
        let b = Matrix {
            rows: 2,
            cols: 2,
            storage: Storage::I8 {
                values: Cow::Owned(alloc::vec![3, 4, 5, 6]),
                scales: Cow::Owned(alloc::vec![2.0, -1.0]),
            },
        };
        let m = Matrix::stack_rows(&[&a, &b]).unwrap();
        let mut out = alloc::vec![0.0; 6];
        m.storage.read_f32(0, &mut out);
        assert_eq!((m.rows, m.cols), (3, 2));
        assert_eq!(out, [0.5, 1.0, 6.0, 8.0, -5.0, -6.0]);
        let f = Matrix {
            rows: 1,
            cols: 2,
            storage: Storage::F32(Cow::Owned(alloc::vec![1.0, 2.0])),
        };
        assert!(Matrix::stack_rows(&[&a, &f]).is_none(), "mixed storage");
        let wide = Matrix {
            rows: 1,
            cols: 1,
            storage: Storage::F32(Cow::Owned(alloc::vec![1.0])),
        };
        assert!(Matrix::stack_rows(&[&f, &wide]).is_none(), "mixed widths");
    }

    #[test]
    fn int8_reads_use_each_rows_scale_across_row_boundaries() {
        let values: alloc::vec::Vec<i8> = (0..12).map(|v| v as i8 - 6).collect();
        let scales = [0.5f32, 2.0, -1.0];
        let s = Storage::I8 {
            values: Cow::Owned(values.clone()),
            scales: Cow::Owned(scales.to_vec()),
        };
        for start in 0..12 {
            for len in 0..=12 - start {
                let mut out = alloc::vec![0.0f32; len];
                s.read_f32(start, &mut out);
                for (i, o) in (start..).zip(&out) {
                    assert_eq!(
                        *o,
                        f32::from(values[i]) * scales[i / 4],
                        "start {start} len {len}"
                    );
                }
            }
        }
    }
}
