//! Arrow string arrays from Python without a copy, through the Arrow C data interface
//! (`__arrow_c_array__` gives an `arrow_schema` and an `arrow_array` capsule). Only what the
//! pipelines take is read: `utf8` (`u`, 32-bit offsets) and `large_utf8` (`U`, 64-bit offsets),
//! without nulls. The strings borrow the array's buffers, which the capsules keep alive.

use std::ffi::{c_char, c_void, CStr};

use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::BertError;

/// `struct ArrowSchema` of the C data interface.
#[repr(C)]
struct ArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut ArrowSchema,
    dictionary: *mut ArrowSchema,
    release: Option<unsafe extern "C" fn(*mut ArrowSchema)>,
    private_data: *mut c_void,
}

/// `struct ArrowArray` of the C data interface.
#[repr(C)]
struct ArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut ArrowArray,
    dictionary: *mut ArrowArray,
    release: Option<unsafe extern "C" fn(*mut ArrowArray)>,
    private_data: *mut c_void,
}

fn pointer<T>(capsule: &Bound<'_, PyCapsule>, name: &CStr) -> PyResult<*const T> {
    let found = capsule.name()?;
    if found != Some(name) {
        return Err(BertError::new_err(format!(
            "expected an Arrow {name:?} capsule, got {found:?}"
        )));
    }
    let p = capsule.pointer() as *const T;
    if p.is_null() {
        return Err(BertError::new_err("an empty Arrow capsule"));
    }
    Ok(p)
}

/// The strings of an Arrow string array, borrowed from its buffers (valid while the capsules
/// are).
pub(crate) fn strings<'c>(
    schema: &'c Bound<'_, PyCapsule>,
    array: &'c Bound<'_, PyCapsule>,
) -> PyResult<Vec<&'c str>> {
    let s = pointer::<ArrowSchema>(schema, c"arrow_schema")?;
    let a = pointer::<ArrowArray>(array, c"arrow_array")?;
    // SAFETY: the capsules are named as the C data interface names them, so they point to a
    // live ArrowSchema and ArrowArray that the producer keeps until the capsules are freed; the
    // caller holds both capsules for the lifetime 'c of the returned strings. Nothing is
    // written through the pointers.
    let (s, a) = unsafe { (&*s, &*a) };
    if s.release.is_none() || a.release.is_none() {
        return Err(BertError::new_err(
            "an Arrow structure that was already released",
        ));
    }
    // SAFETY: `format` is a NUL-terminated string owned by the schema (spec: never null).
    let format = unsafe { CStr::from_ptr(s.format) }.to_bytes();
    let wide = match format {
        b"u" => false,
        b"U" => true,
        other => {
            return Err(BertError::new_err(format!(
                "expected an Arrow string array (utf8 or large_utf8), got format {:?}",
                String::from_utf8_lossy(other)
            )))
        }
    };
    if a.null_count != 0 {
        return Err(BertError::new_err(format!(
            "the Arrow array has {} null values; give every row a text",
            a.null_count
        )));
    }
    let (len, offset) = (a.length as usize, a.offset as usize);
    if a.n_buffers != 3 || a.buffers.is_null() {
        return Err(BertError::new_err("a string array must have 3 buffers"));
    }
    // SAFETY: a string array has exactly 3 buffers (validity, offsets, data), checked above;
    // `buffers` points to them.
    let (offsets, data) = unsafe { (*a.buffers.add(1), *a.buffers.add(2)) };
    if len == 0 {
        return Ok(Vec::new());
    }
    if offsets.is_null() {
        return Err(BertError::new_err("a string array without offsets"));
    }
    let offset_at = |i: usize| -> usize {
        // SAFETY: the offsets buffer holds offset + length + 1 entries of the format's width
        // (the C data interface's layout for utf8 / large_utf8); i <= offset + length.
        unsafe {
            if wide {
                *(offsets as *const i64).add(i) as usize
            } else {
                *(offsets as *const i32).add(i) as usize
            }
        }
    };
    let (first, last) = (offset_at(offset), offset_at(offset + len));
    let bytes: &'c [u8] = if last == first {
        &[]
    } else {
        // SAFETY: the data buffer holds at least `last` bytes (the last offset is its valid
        // length), it is not modified while the array lives, and the capsules outlive 'c.
        unsafe { std::slice::from_raw_parts(data as *const u8, last) }
    };
    (offset..offset + len)
        .map(|i| {
            let (b, e) = (offset_at(i), offset_at(i + 1));
            if b > e || e > bytes.len() {
                return Err(BertError::new_err(format!("bad Arrow offsets at row {i}")));
            }
            std::str::from_utf8(&bytes[b..e])
                .map_err(|_| BertError::new_err(format!("row {i} is not UTF-8")))
        })
        .collect()
}
