//! Zero-copy safetensors parsing from a borrowed `&[u8]`.
//!
//! Layout: 8 bytes little-endian header length `N`, then `N` bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
//! then the data section; offsets are relative to its start. The bytes may live in flash or an
//! mmap: nothing is copied, and tensor data is handed out as `&[u8]` of any alignment.
//!
//! The audited `safetensors` crate (HuggingFace's, `no_std` + `alloc`) decides whether a file
//! is valid and writes every file the project writes ([`serialize`]). Around it, this module
//! keeps the project's own layer: the resource limits checked before the crate sees the bytes
//! (header length within the file and under [`MAX_HEADER_LEN`]), the typed errors a caller can
//! act on, and, when the crate rejects a file, a diagnosis that names the tensor and what is
//! wrong with it (`shape` product × dtype size == byte length, ranges inside the data section,
//! no two tensors overlapping, known dtypes) instead of the crate's terser message.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, Result};

/// The largest header accepted (the safetensors format's own limit): 100 MB.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

pub use crate::tensor::Dtype;

/// One tensor of a safetensors file: its name, dtype, shape and raw little-endian bytes.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    /// The tensor's name in the header.
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions, outermost first.
    pub shape: &'a [usize],
    /// The bytes (exactly `shape.product() * dtype.size()` of them), any alignment.
    pub data: &'a [u8],
}

impl TensorView<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A parsed safetensors file that borrows its bytes.
#[derive(Debug)]
pub struct SafeTensors<'a> {
    data: &'a [u8],
    tensors: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidHeader(msg.into())
}

#[cfg_attr(target_os = "none", allow(dead_code))]
fn to_usize(v: &serde_json::Value, what: &str, name: &str) -> Result<usize> {
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| {
            invalid(format!(
                "tensor {name}: {what} must be a non-negative integer"
            ))
        })
}

/// Our dtype for the crate's; `None` for the ones the project has no use for.
fn from_crate_dtype(d: safetensors::Dtype) -> Option<Dtype> {
    use safetensors::Dtype as D;
    Some(match d {
        D::BOOL => Dtype::Bool,
        D::U8 => Dtype::U8,
        D::I8 => Dtype::I8,
        D::I16 => Dtype::I16,
        D::U16 => Dtype::U16,
        D::I32 => Dtype::I32,
        D::U32 => Dtype::U32,
        D::I64 => Dtype::I64,
        D::U64 => Dtype::U64,
        D::F16 => Dtype::F16,
        D::BF16 => Dtype::BF16,
        D::F32 => Dtype::F32,
        D::F64 => Dtype::F64,
        D::F8_E4M3 => Dtype::F8E4M3,
        D::F8_E5M2 => Dtype::F8E5M2,
        _ => return None,
    })
}

fn to_crate_dtype(d: Dtype) -> safetensors::Dtype {
    use safetensors::Dtype as D;
    match d {
        Dtype::Bool => D::BOOL,
        Dtype::U8 => D::U8,
        Dtype::I8 => D::I8,
        Dtype::I16 => D::I16,
        Dtype::U16 => D::U16,
        Dtype::I32 => D::I32,
        Dtype::U32 => D::U32,
        Dtype::I64 => D::I64,
        Dtype::U64 => D::U64,
        Dtype::F16 => D::F16,
        Dtype::BF16 => D::BF16,
        Dtype::F32 => D::F32,
        Dtype::F64 => D::F64,
        Dtype::F8E4M3 => D::F8_E4M3,
        Dtype::F8E5M2 => D::F8_E5M2,
    }
}

impl<'a> SafeTensors<'a> {
    /// Parse and validate a safetensors buffer: the project's limits first, then the
    /// `safetensors` crate's validation; a rejected file gets a precise, typed error. Nothing is
    /// copied but the header's names.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let header_end = Self::check_limits(bytes)?;
        let (n, meta) = match safetensors::SafeTensors::read_metadata(bytes) {
            Ok(ok) => ok,
            Err(e) => {
                // The crate said no: find out what, naming the tensor where we can. Not on
                // bare metal, where the diagnosis (a second, JSON-value parse: 13 KB of a
                // microcontroller's flash) would outweigh a message for a blob that the host
                // checked when it wrote it (`bert export-device`).
                #[cfg(not(target_os = "none"))]
                Self::diagnose(bytes)?;
                return Err(invalid(format!("rejected by the safetensors crate: {e}")));
            }
        };
        debug_assert_eq!(8 + n, header_end);
        let data = &bytes[8 + n..];
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let dtype = from_crate_dtype(info.dtype).ok_or_else(|| Error::UnknownDtype {
                name: name.clone(),
                dtype: format!("{:?}", info.dtype),
            })?;
            let (begin, end) = info.data_offsets;
            tensors.insert(
                name,
                Entry {
                    dtype,
                    shape: info.shape.clone(),
                    begin,
                    end,
                },
            );
        }
        let metadata = meta
            .metadata()
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(SafeTensors {
            data,
            tensors,
            metadata,
        })
    }

    /// The resource limits, checked before any parser reads the header: 8 bytes of length,
    /// a header of at most [`MAX_HEADER_LEN`] bytes that lies inside the buffer. Returns where
    /// the header ends.
    fn check_limits(bytes: &[u8]) -> Result<usize> {
        let have = bytes.len() as u64;
        let len_bytes: [u8; 8] =
            bytes
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or(Error::Truncated {
                    what: "safetensors header length",
                    needed: 8,
                    have,
                })?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_LEN {
            return Err(Error::HeaderTooLarge {
                len: header_len,
                limit: MAX_HEADER_LEN,
            });
        }
        let header_end = 8 + header_len;
        if header_end > have {
            return Err(Error::Truncated {
                what: "safetensors header",
                needed: header_end,
                have,
            });
        }
        // header_end <= bytes.len(), so it fits in usize.
        Ok(header_end as usize)
    }

    /// Why a file the crate rejected is invalid, as a typed error naming the tensor; `Ok` when
    /// none of the checks below finds the fault (the caller then reports the crate's message).
    #[cfg_attr(target_os = "none", allow(dead_code))]
    fn diagnose(bytes: &[u8]) -> Result<()> {
        let header_end = Self::check_limits(bytes)?;
        let have = bytes.len() as u64;
        let header = core::str::from_utf8(&bytes[8..header_end])
            .map_err(|_| invalid("header is not UTF-8"))?;
        if !header.trim_start().starts_with('{') {
            return Err(invalid("header is not a JSON object"));
        }
        let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(header)
            .map_err(|e| Error::Json {
                what: "safetensors header",
                message: e.to_string(),
            })?;
        let data = &bytes[header_end..];
        let mut tensors = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in json {
            if name == "__metadata__" {
                let map = value
                    .as_object()
                    .ok_or_else(|| invalid("__metadata__ must be an object"))?;
                for (k, v) in map {
                    let v = v
                        .as_str()
                        .ok_or_else(|| invalid(format!("__metadata__.{k} must be a string")))?;
                    metadata.insert(k.clone(), v.to_string());
                }
                continue;
            }
            let obj = value
                .as_object()
                .ok_or_else(|| invalid(format!("tensor {name}: entry must be an object")))?;
            let dtype_str = obj
                .get("dtype")
                .and_then(|d| d.as_str())
                .ok_or_else(|| invalid(format!("tensor {name}: missing dtype")))?;
            let dtype = Dtype::parse(dtype_str).ok_or_else(|| Error::UnknownDtype {
                name: name.clone(),
                dtype: dtype_str.to_string(),
            })?;
            let shape = obj
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or_else(|| invalid(format!("tensor {name}: missing shape")))?
                .iter()
                .map(|d| to_usize(d, "shape", &name))
                .collect::<Result<Vec<usize>>>()?;
            let offsets = obj
                .get("data_offsets")
                .and_then(|s| s.as_array())
                .filter(|a| a.len() == 2)
                .ok_or_else(|| {
                    invalid(format!("tensor {name}: data_offsets must be [begin, end]"))
                })?;
            let begin = to_usize(&offsets[0], "data_offsets", &name)?;
            let end = to_usize(&offsets[1], "data_offsets", &name)?;
            if begin > end {
                return Err(invalid(format!("tensor {name}: data_offsets begin > end")));
            }
            let nbytes = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| invalid(format!("tensor {name}: shape overflows")))?;
            if end - begin != nbytes {
                return Err(invalid(format!(
                    "tensor {name}: {} bytes between data_offsets, but shape {:?} of {dtype} needs {nbytes}",
                    end - begin,
                    shape
                )));
            }
            if end > data.len() {
                return Err(Error::Truncated {
                    what: "safetensors tensor data",
                    needed: header_end as u64 + end as u64,
                    have,
                });
            }
            tensors.insert(name, (begin, end));
        }
        // No two non-empty tensors may share bytes.
        let mut ranges: Vec<(&str, usize, usize)> = tensors
            .iter()
            .filter(|(_, (begin, end))| end > begin)
            .map(|(n, &(begin, end))| (n.as_str(), begin, end))
            .collect();
        ranges.sort_by_key(|r| (r.1, r.2));
        for w in ranges.windows(2) {
            if w[1].1 < w[0].2 {
                return Err(Error::OverlappingTensors {
                    first: w[0].0.to_string(),
                    second: w[1].0.to_string(),
                });
            }
        }
        Ok(())
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let (key, e) = self.tensors.get_key_value(name)?;
        Some(TensorView {
            name: key.as_str(),
            dtype: e.dtype,
            shape: &e.shape,
            data: &self.data[e.begin..e.end],
        })
    }

    /// The tensor called `name`, borrowing the file's bytes for `'a` (not the parser).
    pub fn tensor_data(&self, name: &str) -> Option<(Dtype, &[usize], &'a [u8])> {
        let e = self.tensors.get(name)?;
        Some((e.dtype, &e.shape, &self.data[e.begin..e.end]))
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|k| k.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// The `__metadata__` string map.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }
}

/// One tensor handed to the `safetensors` crate's writer.
struct Out<'t> {
    dtype: Dtype,
    shape: &'t [usize],
    data: &'t [u8],
}

impl safetensors::View for Out<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        to_crate_dtype(self.dtype)
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> alloc::borrow::Cow<'_, [u8]> {
        alloc::borrow::Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Serialize tensors (name, dtype, shape, little-endian bytes) into a safetensors buffer, with
/// optional `__metadata__`, through the `safetensors` crate (which orders the tensors by
/// alignment, then name, and pads the header so that every tensor starts 8-byte aligned if the
/// buffer does). Sizes that do not match their shape and names given twice are typed errors.
pub fn serialize(
    tensors: &[(&str, Dtype, &[usize], &[u8])],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut seen = BTreeMap::new();
    for (name, dtype, shape, data) in tensors {
        let expected = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .ok_or_else(|| Error::ResourceLimit {
                what: format!("tensor {name} of shape {shape:?}"),
                limit: usize::MAX,
            })?;
        if expected != data.len() {
            return Err(Error::InvalidInput(format!(
                "tensor {name}: {} bytes for shape {shape:?} of {dtype}",
                data.len()
            )));
        }
        if seen.insert(*name, ()).is_some() {
            return Err(Error::InvalidInput(format!("tensor {name} given twice")));
        }
        if *name == "__metadata__" {
            // The header's key for the metadata map: a tensor of that name makes a file no
            // reader can parse (found by fuzz/safetensors_roundtrip).
            return Err(Error::InvalidInput(
                "\"__metadata__\" is reserved in safetensors; it cannot name a tensor".into(),
            ));
        }
    }
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        (
            *name,
            Out {
                dtype: *dtype,
                shape,
                data,
            },
        )
    });
    let info = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    safetensors::serialize(views, info)
        .map_err(|e| Error::InvalidInput(format!("safetensors writer: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn serialize_then_parse_round_trips() {
        let a = f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let b = vec![7u8, 8, 9];
        let file = serialize(
            &[("a", Dtype::F32, &[2, 3], &a), ("b", Dtype::U8, &[3], &b)],
            &[("format", "pt")],
        )
        .unwrap();
        let st = SafeTensors::parse(&file).unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st.metadata().get("format").map(String::as_str), Some("pt"));
        let t = st.tensor("a").unwrap();
        assert_eq!(
            (t.dtype, t.shape, t.data),
            (Dtype::F32, &[2usize, 3][..], &a[..])
        );
        assert_eq!(t.numel(), 6);
        assert_eq!(st.tensor("b").unwrap().data, &b[..]);
        assert!(st.tensor("c").is_none());
        assert_eq!(st.names().collect::<Vec<_>>(), ["a", "b"]);
        // The data section starts 8-byte aligned relative to the buffer.
        assert_eq!((file.len() - a.len() - b.len()) % 8, 0);
    }

    #[test]
    fn every_prefix_of_a_valid_file_is_an_error_not_a_panic() {
        let a = f32_bytes(&[1.0, 2.0]);
        let file = serialize(&[("a", Dtype::F32, &[2], &a)], &[]).unwrap();
        for cut in 0..file.len() {
            assert!(
                SafeTensors::parse(&file[..cut]).is_err(),
                "prefix of {cut} bytes"
            );
        }
        assert!(SafeTensors::parse(&file).is_ok());
    }

    #[test]
    fn the_metadata_key_cannot_name_a_tensor() {
        // Found by fuzz/safetensors_roundtrip: this was written, and the file did not parse.
        let e = serialize(&[("__metadata__", Dtype::U8, &[1], &[0])], &[]).unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");
    }

    #[test]
    fn empty_tensors_and_zero_dims_are_fine() {
        let file = serialize(&[("e", Dtype::F32, &[0, 4], &[])], &[]).unwrap();
        let st = SafeTensors::parse(&file).unwrap();
        assert_eq!(st.tensor("e").unwrap().numel(), 0);
    }

    fn raw_file(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.resize(out.len() + data_len, 0);
        out
    }

    #[test]
    fn the_crate_decides_and_our_diagnosis_names_the_tensor() {
        // A gap between two tensors: our own checks would pass it, the crate does not.
        let gap = raw_file(
            r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}"#,
            6,
        );
        let e = SafeTensors::parse(&gap).unwrap_err();
        assert!(
            e.to_string().contains("rejected by the safetensors crate"),
            "{e}"
        );
        // A size that does not match the shape: the diagnosis names the tensor.
        let bad = raw_file(
            r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            8,
        );
        let e = SafeTensors::parse(&bad).unwrap_err();
        assert!(e.to_string().contains("tensor w: 8 bytes"), "{e}");
        // An unknown dtype is typed.
        let q4 = raw_file(
            r#"{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#,
            1,
        );
        assert!(matches!(
            SafeTensors::parse(&q4),
            Err(Error::UnknownDtype { .. })
        ));
    }
}
