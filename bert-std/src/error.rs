//! The error type of bert-std: every variant says what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong in bert-std.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the core: weights, config, shapes, inputs.
    #[error(transparent)]
    Core(#[from] bert_core::Error),
    /// The core refused a model directory's weights or config (kept typed: match on `source`).
    #[error("{}: {source}", path.display())]
    Weights {
        /// The model directory.
        path: PathBuf,
        /// The core's error.
        source: bert_core::Error,
    },
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
    /// The model cannot serve this request (wrong head, no `[MASK]` token, ...).
    #[error("{0}")]
    Model(String),
    /// The caller's input is invalid (empty text, no `[MASK]`, ...).
    #[error("{0}")]
    Input(String),
    /// A default model could not be fetched.
    #[error("{0}")]
    Fetch(String),
    /// One input of a batch call failed; `index` is its position in the call's input slice.
    #[error("input {index}: {source}")]
    Item {
        /// Position of the input in the slice given to the call.
        index: usize,
        /// What is wrong with it.
        source: Box<Error>,
    },
    /// A size the caller controls is over its limit.
    #[error("{what} = {value} is over the limit of {max}{hint}")]
    Limit {
        /// What was asked for ("threads", "batch size", ...).
        what: &'static str,
        /// The value asked for.
        value: usize,
        /// The largest value accepted.
        max: usize,
        /// What to do instead (starts with "; " when not empty).
        hint: String,
    },
    /// The model produced NaN or infinite values: its weights are probably corrupt.
    #[error(
        "the model produced non-finite values (NaN or infinity) in its {what}; its weights may \
         be corrupt (check them with `bert info --check --model DIR`)"
    )]
    NonFinite {
        /// Which output ("logits", "embedding", ...).
        what: &'static str,
    },
    /// Weights hold NaN or infinite values (found by [`crate::check::check_weights`]).
    #[error("{}: tensor {tensor} holds {count} non-finite values (NaN or infinity)", path.display())]
    NonFiniteWeights {
        /// The weight file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// How many of its values are not finite.
        count: usize,
    },
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

    /// Tag an error with the position of the input it belongs to.
    pub fn at(self, index: usize) -> Self {
        Error::Item {
            index,
            source: Box::new(self),
        }
    }

    /// The error without the input position [`Error::Item`] adds (what to show next to a line
    /// number that already says which input it was).
    pub fn without_index(&self) -> &Error {
        match self {
            Error::Item { source, .. } => source.without_index(),
            other => other,
        }
    }

    pub(crate) fn tokenizer(e: impl std::fmt::Display) -> Self {
        Error::Tokenizer(e.to_string())
    }
}

/// `text` quoted for an error message: at most 80 characters, cut with its length named, so that
/// a 50,000-character input does not become a 50,000-character message.
pub fn quote(text: &str) -> String {
    const MAX: usize = 80;
    let n = text.chars().count();
    if n <= MAX {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(MAX).collect();
    format!("{head:?}… ({n} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_short_and_errors_drop_their_index() {
        assert_eq!(quote("a b"), "\"a b\"");
        let long = "x".repeat(50_000);
        let q = quote(&long);
        assert!(q.len() < 120 && q.ends_with("(50000 characters)"), "{q}");
        let e = Error::Input("empty text".into()).at(3);
        assert_eq!(e.to_string(), "input 3: empty text");
        assert_eq!(e.without_index().to_string(), "empty text");
    }
}
