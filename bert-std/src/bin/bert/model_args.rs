//! Which model a command runs and how it is loaded, from the command line: `--model` or the
//! command's default model (fetched, or for the project's own task models trained, on first
//! use), `--dtype` and the load options. Shared by every subcommand's module, and importing
//! none of them.

use std::path::{Path, PathBuf};

use bert_std::batching::BatchOptions;
use bert_std::task_models::{student, DefaultTask, StderrProgress};
use bert_std::{Error, LoadOptions, Result};

use crate::RunArgs;

/// The model directory: `--model`, else the default model (fetched on first use), else an
/// error that says what kind of model the command needs. `--model minilm-student` is the
/// project's own student, distilled into the model cache first when `yes` (or when the user
/// says so at a prompt on a terminal).
pub fn model_path(
    given: Option<&Path>,
    default: Option<&str>,
    what: &str,
    yes: bool,
) -> Result<PathBuf> {
    if let Some(p) = given.filter(|p| student::is_named(p)) {
        if student::cached().is_none() && (yes || ask(student::NAME, student::ABOUT)) {
            return student::ensure(&mut StderrProgress::new());
        }
        return bert_std::runtime::model_path(p);
    }
    match (given, default) {
        (Some(p), _) => bert_std::runtime::model_path(p),
        (None, Some(name)) => bert_std::fetch::ensure_model(name),
        (None, None) => Err(Error::Input(format!(
            "this command needs a {what} model: pass --model DIR or set BERT_MODEL"
        ))),
    }
}

/// The model directory of a task the project trains its own model for: `--model`, else that
/// model from the model cache, else trained there now when `yes` (or when the user says so at a
/// prompt on a terminal), else an error that says how to get it.
pub fn task_model_path(given: Option<&Path>, task: DefaultTask, yes: bool) -> Result<PathBuf> {
    if let Some(p) = given {
        return bert_std::runtime::model_path(p);
    }
    if let Some(dir) = task.cached() {
        return Ok(dir);
    }
    if yes || ask(task.name(), task.about()) {
        return task.ensure(&mut StderrProgress::new());
    }
    Err(Error::Input(format!(
        "no --model given, and the project's own model for this task ({}: {}) is not trained \
         yet; run again with --yes to train it once into the model cache, or pass --model DIR",
        task.name(),
        task.about()
    )))
}

/// Whether the user, at a terminal, says yes to making the project's own model `name` now.
fn ask(name: &str, about: &str) -> bool {
    use std::io::{IsTerminal, Write};
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprint!("the project's own {name} model is not made yet: {about}. Make it now? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// The weights' storage at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightDtype {
    /// As stored in the file.
    F32,
    /// Converted to f16 at load.
    F16,
    /// Converted to int8 (per-output-channel scales) at load.
    Int8,
    /// Converted to bf16 at load, and products in bf16 with f32 sums (`vdpbf16ps` on CPUs
    /// with AVX512-BF16).
    Bf16,
}

impl WeightDtype {
    /// The conversion to do at load, if any.
    pub fn convert(self) -> Option<bert_core::quantize::QuantDtype> {
        match self {
            WeightDtype::F32 => None,
            WeightDtype::F16 => Some(bert_core::quantize::QuantDtype::F16),
            WeightDtype::Int8 => Some(bert_core::quantize::QuantDtype::Int8),
            WeightDtype::Bf16 => Some(bert_core::quantize::QuantDtype::BF16),
        }
    }
}

/// Load options from the command line.
pub fn options(run: &RunArgs) -> LoadOptions {
    LoadOptions {
        dtype: run.dtype.convert(),
        threads: run.threads,
        batch: BatchOptions {
            batch_size: run.batch_size,
            ..BatchOptions::default()
        },
        check_weights: run.check,
        ..LoadOptions::default()
    }
}
