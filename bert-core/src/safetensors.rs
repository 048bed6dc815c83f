//! Zero-copy safetensors parsing from a borrowed `&[u8]`.
//!
//! Layout: 8 bytes little-endian header length `N`, then `N` bytes of JSON
//! (`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`),
//! then the data section; offsets are relative to its start. The bytes may live in flash or an
//! mmap: nothing is copied, and tensor data is handed out as `&[u8]` of any alignment.
//!
//! Every check that protects later code happens here, once: header length within the file and
//! under [`MAX_HEADER_LEN`], known dtypes, `shape` product × dtype size == byte length (with
//! overflow checks), ranges inside the data section, no two tensors overlapping.

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

fn to_usize(v: &serde_json::Value, what: &str, name: &str) -> Result<usize> {
    v.as_u64()
        .and_then(|x| usize::try_from(x).ok())
        .ok_or_else(|| {
            invalid(format!(
                "tensor {name}: {what} must be a non-negative integer"
            ))
        })
}

impl<'a> SafeTensors<'a> {
    /// Parse and validate a safetensors buffer. Nothing is copied but the header's names.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
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
        let header_end = header_end as usize;
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
            tensors.insert(
                name,
                Entry {
                    dtype,
                    shape,
                    begin,
                    end,
                },
            );
        }
        // No two non-empty tensors may share bytes.
        let mut ranges: Vec<(&str, usize, usize)> = tensors
            .iter()
            .filter(|(_, e)| e.end > e.begin)
            .map(|(n, e)| (n.as_str(), e.begin, e.end))
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
        Ok(SafeTensors {
            data,
            tensors,
            metadata,
        })
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

/// Serialize tensors (name, dtype, shape, little-endian bytes) into a safetensors buffer, in the
/// given order, with optional `__metadata__`. The header is padded with spaces to a multiple of 8
/// bytes so that every tensor in the data section starts 8-byte aligned if the buffer does.
pub fn serialize(
    tensors: &[(&str, Dtype, &[usize], &[u8])],
    metadata: &[(&str, &str)],
) -> Result<Vec<u8>> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let meta = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        header.insert("__metadata__".to_string(), serde_json::Value::Object(meta));
    }
    let mut offset = 0usize;
    for (name, dtype, shape, data) in tensors {
        let numel: usize = shape.iter().product();
        if numel * dtype.size() != data.len() {
            return Err(Error::InvalidInput(format!(
                "tensor {name}: {} bytes for shape {shape:?} of {dtype}",
                data.len()
            )));
        }
        let entry = serde_json::json!({
            "dtype": dtype.as_str(),
            "shape": shape,
            "data_offsets": [offset, offset + data.len()],
        });
        if header.insert(name.to_string(), entry).is_some() {
            return Err(Error::InvalidInput(format!("tensor {name} given twice")));
        }
        offset += data.len();
    }
    let mut json = serde_json::to_string(&header).map_err(|e| Error::Json {
        what: "safetensors header",
        message: e.to_string(),
    })?;
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    for (_, _, _, data) in tensors {
        out.extend_from_slice(data);
    }
    Ok(out)
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
    fn empty_tensors_and_zero_dims_are_fine() {
        let file = serialize(&[("e", Dtype::F32, &[0, 4], &[])], &[]).unwrap();
        let st = SafeTensors::parse(&file).unwrap();
        assert_eq!(st.tensor("e").unwrap().numel(), 0);
    }
}
