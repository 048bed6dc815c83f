//! `bert quantize IN_DIR OUT_DIR --dtype int8|f16|bf16`: a model directory with its 2-D weights
//! stored as int8 (per-output-channel scales), f16 or bf16, loadable zero-copy like any other
//! (layout: `bert_core::quantize`). Config, tokenizer and pooling files are copied.

use std::path::Path;

use bert_core::quantize::{quantize, QuantDtype};

use crate::atomic::AtomicFiles;
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::{refuse_output_in_place, stage_derived_dir, ModelDir};

/// The storage `bert quantize` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantizeTo {
    /// int8 with one scale per output channel.
    Int8,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl From<QuantizeTo> for QuantDtype {
    fn from(d: QuantizeTo) -> Self {
        match d {
            QuantizeTo::Int8 => QuantDtype::Int8,
            QuantizeTo::F16 => QuantDtype::F16,
            QuantizeTo::Bf16 => QuantDtype::BF16,
        }
    }
}

/// Parse `int8` / `f16` / `bf16`.
pub fn parse_dtype(s: &str) -> Result<QuantDtype> {
    match s {
        "int8" | "i8" => Ok(QuantDtype::Int8),
        "f16" | "fp16" => Ok(QuantDtype::F16),
        "bf16" | "bfloat16" => Ok(QuantDtype::BF16),
        _ => Err(Error::Input(format!(
            "unknown dtype {s:?}: use int8, f16 or bf16"
        ))),
    }
}

/// Write a quantized copy of the model directory `input` into `output` (created; must not be
/// the input). Returns (bytes of weights before, after).
pub fn quantize_dir(input: &Path, output: &Path, dtype: QuantDtype) -> Result<(u64, u64)> {
    let dir = ModelDir::open(input)?;
    refuse_output_in_place(input, output)?;
    let bytes = dir
        .weight_files
        .iter()
        .map(|p| WeightBytes::open(p, true))
        .collect::<Result<Vec<_>>>()?;
    let before: u64 = bytes.iter().map(|b| b.len() as u64).sum();
    let buffers: Vec<&[u8]> = bytes.iter().map(|b| &**b).collect();
    let quantized = quantize(&buffers, dtype).map_err(|e| Error::file(input, e.to_string()))?;
    // The files are written as one set: every one in full before any replaces its target, so
    // a failed (full disk, read-only folder) or killed run leaves what was there.
    let mut files = AtomicFiles::default();
    const DENSE: &str = "2_Dense/model.safetensors";
    stage_derived_dir(input, output, &[DENSE], &mut files)?;
    files.write(output.join("model.safetensors"), &quantized)?;
    let (mut before, mut after) = (before, quantized.len() as u64);
    // A sentence-transformers `Dense` module's weights, quantized the same way.
    let dense = input.join(DENSE);
    if dense.is_file() {
        let bytes = std::fs::read(&dense).map_err(|e| Error::io(&dense, e))?;
        let q = quantize(&[&bytes], dtype).map_err(|e| Error::file(&dense, e.to_string()))?;
        files.write(output.join(DENSE), &q)?;
        (before, after) = (before + bytes.len() as u64, after + q.len() as u64);
    }
    files.commit()?;
    Ok((before, after))
}
