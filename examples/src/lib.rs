//! Helpers shared by the examples: where the model comes from, a tidy exit on errors, and the
//! machine's measured FMA peak (`peak`, for the benchmarks).

pub mod peak;

use std::path::PathBuf;

/// `--model DIR`, else `$BERT_MODEL`, else the default model `default_name` (fetched on first
/// use).
pub fn model_or_default(model: Option<PathBuf>, default_name: &str) -> bert_std::Result<PathBuf> {
    bert_std::resolve_model(model.as_deref(), default_name)
}

/// A model directory the user must supply (no such checkpoint can be fetched offline).
pub fn required_model(model: Option<PathBuf>, what: &str) -> PathBuf {
    match model.or_else(|| std::env::var_os(bert_std::runtime::MODEL_ENV).map(PathBuf::from)) {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => {
            eprintln!(
                "error: this example needs a {what} checkpoint (a HF model directory). None can be \
                 fetched on this offline machine; pass --model DIR or set BERT_MODEL=DIR."
            );
            std::process::exit(2);
        }
    }
}

/// Print an error and exit non-zero.
pub fn exit_on_error<T>(r: bert_std::Result<T>) -> T {
    r.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    })
}
