//! The one error type of bert-core. Every message names what was wrong and where, so that a user
//! can act on it ("tensor X: expected [384, 384] f32, found [384, 128] f16").

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::tensor::Dtype;

/// Everything that can go wrong in bert-core. Nothing a file or a user controls panics: it ends
/// up here. Variants a caller may want to act on (truncate and retry, skip a sequence, grow a
/// workspace) are typed; `InvalidInput` is left for mistakes a caller only reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A JSON document (config.json or a safetensors header) did not parse.
    Json {
        /// Which document ("config.json", "safetensors header").
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// The buffer ends before the data it announces.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        have: u64,
    },
    /// A safetensors header claims more bytes than the limit (a resource bomb or a broken file).
    HeaderTooLarge {
        /// Header length the file claims.
        len: u64,
        /// Largest header accepted.
        limit: u64,
    },
    /// The safetensors header is valid JSON but not a valid safetensors header.
    InvalidHeader(String),
    /// Two tensors' byte ranges overlap.
    OverlappingTensors {
        /// The tensor that starts first.
        first: String,
        /// The tensor that starts inside it.
        second: String,
    },
    /// A tensor's dtype string is not one safetensors defines.
    UnknownDtype {
        /// The tensor.
        name: String,
        /// The dtype string found.
        dtype: String,
    },
    /// A tensor the model needs is not in any of the weight files.
    MissingTensor {
        /// The names that were tried, in order.
        tried: Vec<String>,
    },
    /// A tensor has a dtype the model cannot use here.
    WrongDtype {
        /// The tensor.
        name: String,
        /// What would have been accepted.
        expected: &'static str,
        /// What was found.
        found: Dtype,
    },
    /// A tensor's shape does not match what the config implies.
    WrongShape {
        /// The tensor.
        name: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
        /// Its dtype.
        dtype: Dtype,
    },
    /// A required config field is missing.
    ConfigMissing {
        /// The field.
        field: &'static str,
    },
    /// A config field has a value that is out of range or inconsistent.
    ConfigInvalid {
        /// The field.
        field: &'static str,
        /// The value found.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A config field names something this library does not implement.
    Unsupported {
        /// The field.
        field: &'static str,
        /// The value found.
        value: String,
        /// What is supported.
        supported: &'static str,
    },
    /// The caller's input is invalid in a way no variant below names.
    InvalidInput(String),
    /// A batch with no sequences or no positions.
    EmptyBatch,
    /// A sequence is longer than the model's position table: truncate or split it.
    SequenceTooLong {
        /// Its length.
        len: usize,
        /// `max_position_embeddings`.
        max: usize,
    },
    /// A sequence whose attention mask is all zeros (nothing to attend to).
    EmptySequence {
        /// Its index in the batch.
        sequence: usize,
    },
    /// An id (token, token type, mask value) is outside its table.
    IdOutOfRange {
        /// Which input ("input_ids", "token_type_ids", "attention_mask").
        what: &'static str,
        /// Sequence index.
        sequence: usize,
        /// Position in the sequence.
        position: usize,
        /// The id found.
        value: u32,
        /// The first value not allowed.
        limit: usize,
        /// What the limit is ("vocab_size", "type_vocab_size", ...).
        limit_name: &'static str,
    },
    /// An input slice has the wrong length for the batch shape.
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The length the batch shape implies.
        expected: usize,
    },
    /// A class label outside `0..classes` (and not the ignore index).
    LabelOutOfRange {
        /// The label.
        label: i64,
        /// Number of classes.
        classes: usize,
    },
    /// A requested size (workspace buffer, positions) is over a limit; nothing was allocated.
    ResourceLimit {
        /// What was asked for.
        what: String,
        /// The largest accepted.
        limit: usize,
    },
    /// The workspace was sized for fewer tokens than this batch needs.
    WorkspaceTooSmall {
        /// Batch size and sequence length asked for.
        needed: (usize, usize),
        /// Batch size and sequence length the workspace holds.
        capacity: (usize, usize),
    },
}

/// `Result` with bert-core's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

fn list(f: &mut fmt::Formatter<'_>, items: &[usize]) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    f.write_str("]")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Json { what, message } => write!(f, "{what}: invalid JSON: {message}"),
            Error::Truncated { what, needed, have } => write!(
                f,
                "{what}: file is truncated: needs {needed} bytes, has {have}"
            ),
            Error::HeaderTooLarge { len, limit } => write!(
                f,
                "safetensors header claims {len} bytes, more than the limit of {limit}"
            ),
            Error::InvalidHeader(m) => write!(f, "invalid safetensors header: {m}"),
            Error::OverlappingTensors { first, second } => write!(
                f,
                "invalid safetensors file: tensors {first} and {second} overlap"
            ),
            Error::UnknownDtype { name, dtype } => {
                write!(f, "tensor {name}: unknown dtype {dtype:?}")
            }
            Error::MissingTensor { tried } => {
                write!(f, "missing tensor: none of ")?;
                for (i, t) in tried.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, " is in the weights")
            }
            Error::WrongDtype {
                name,
                expected,
                found,
            } => write!(f, "tensor {name}: expected dtype {expected}, found {found}"),
            Error::WrongShape {
                name,
                expected,
                found,
                dtype,
            } => {
                write!(f, "tensor {name}: expected ")?;
                list(f, expected)?;
                write!(f, ", found ")?;
                list(f, found)?;
                write!(f, " {dtype}")
            }
            Error::ConfigMissing { field } => {
                write!(f, "config.json: required field {field:?} is missing")
            }
            Error::ConfigInvalid {
                field,
                value,
                reason,
            } => write!(f, "config.json: {field} = {value}: {reason}"),
            Error::Unsupported {
                field,
                value,
                supported,
            } => write!(
                f,
                "config.json: {field} = {value} is not supported (supported: {supported})"
            ),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::EmptyBatch => f.write_str("invalid input: empty batch"),
            Error::SequenceTooLong { len, max } => write!(
                f,
                "sequence length {len} exceeds max_position_embeddings {max}; truncate or split the text"
            ),
            Error::EmptySequence { sequence } => write!(
                f,
                "sequence {sequence} has no real token (its attention_mask is all zeros)"
            ),
            Error::IdOutOfRange {
                what,
                sequence,
                position,
                value,
                limit,
                limit_name,
            } => write!(
                f,
                "{what}[{sequence}][{position}] = {value} is not below {limit_name} {limit}"
            ),
            Error::LengthMismatch { what, len, expected } => {
                write!(f, "{what} has {len} elements, expected {expected}")
            }
            Error::LabelOutOfRange { label, classes } => {
                write!(f, "label {label} is not in 0..{classes}")
            }
            Error::ResourceLimit { what, limit } => {
                write!(f, "{what} exceeds the limit of {limit}; use smaller batches")
            }
            Error::WorkspaceTooSmall { needed, capacity } => write!(
                f,
                "workspace holds batch {} x seq {}, but batch {} x seq {} was given",
                capacity.0, capacity.1, needed.0, needed.1
            ),
        }
    }
}

impl core::error::Error for Error {}
