//! The error type of bert-std: every variant says what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in bert-std.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// From the core: weights, config, shapes, inputs.
    #[error(transparent)]
    Core(#[from] bert_core::Error),
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file was read but its content is wrong (bad JSON, unsupported layout, ...).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The model cannot serve this request (wrong head, no [MASK] token, ...).
    #[error("{0}")]
    Model(String),
    /// The caller's input is invalid (empty text, no [MASK], ...).
    #[error("{0}")]
    Input(String),
    /// A default model could not be fetched.
    #[error("{0}")]
    Fetch(String),
}

/// `Result` with bert-std's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A content error in `path`.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
        }
    }

    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        Error::Tokenizer(e.to_string())
    }
}
