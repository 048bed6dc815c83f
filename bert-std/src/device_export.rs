//! `bert export-device DIR OUT`: one blob a microcontroller reads in place
//! ([`bert_core::device_blob`]): the model's `config.json`, its WordPiece vocabulary compiled
//! with the basic tokenizer's options into compact tables ([`bert_core::wordpiece::device`]),
//! and its weights, int8 unless asked otherwise.

use std::path::Path;

use bert_core::device_blob::DeviceModel;
use bert_core::quantize::{quantize, QuantDtype};
use bert_core::safetensors::SafeTensors;
use bert_core::wordpiece::{device, BasicOptions};
use bert_core::Dtype;

use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::ModelDir;

/// What [`export_device`] wrote, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceExport {
    /// The whole blob.
    pub total: usize,
    /// The weights section.
    pub weights: usize,
    /// The compiled vocabulary.
    pub vocab: usize,
    /// `vocab.txt` as it was.
    pub vocab_txt: usize,
}

/// Writes the device blob of the model directory `input` to the file `output` (atomically):
/// weights quantized to `dtype` (`None`: as they are; int8 weights stay as they are).
pub fn export_device(
    input: &Path,
    output: &Path,
    dtype: Option<QuantDtype>,
) -> Result<DeviceExport> {
    let dir = ModelDir::open(input)?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p, e));
    let config = read(&input.join("config.json"))?;
    let (vocab_txt, options) = vocabulary(input)?;
    let compiled =
        device::compile(&vocab_txt, options).map_err(|e| Error::file(input, e.to_string()))?;
    let bytes = dir
        .weight_files
        .iter()
        .map(|p| WeightBytes::open(p, true))
        .collect::<Result<Vec<_>>>()?;
    let buffers: Vec<&[u8]> = bytes.iter().map(|b| &**b).collect();
    let already_int8 = buffers.len() == 1
        && SafeTensors::parse(buffers[0])
            .map(|f| {
                f.names()
                    .any(|n| f.tensor(n).is_some_and(|t| t.dtype == Dtype::I8))
            })
            .unwrap_or(false);
    let weights = match dtype {
        Some(QuantDtype::Int8) if already_int8 => buffers[0].to_vec(),
        Some(d) => quantize(&buffers, d).map_err(|e| Error::file(input, e.to_string()))?,
        None if buffers.len() == 1 => buffers[0].to_vec(),
        None => {
            return Err(Error::Input(
                "the weights are sharded: give --dtype to write them as one file".into(),
            ))
        }
    };
    let blob = DeviceModel::write(&config, &compiled, &weights);
    // Read back as the device will, so a blob that is written is one that loads.
    DeviceModel::parse(&blob).map_err(|e| Error::file(output, format!("does not load: {e}")))?;
    write_atomic(output, &blob)?;
    Ok(DeviceExport {
        total: blob.len(),
        weights: weights.len(),
        vocab: compiled.len(),
        vocab_txt: vocab_txt.len(),
    })
}

/// `vocab.txt` and the basic tokenizer's options from `tokenizer_config.json` (HF's defaults
/// where it is silent).
fn vocabulary(dir: &Path) -> Result<(Vec<u8>, BasicOptions)> {
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return Err(Error::file(
            dir,
            "no vocab.txt: the device tokenizer is BERT's WordPiece and reads vocab.txt",
        ));
    }
    let bytes = std::fs::read(&vocab).map_err(|e| Error::io(&vocab, e))?;
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg: serde_json::Value = if cfg_path.is_file() {
        let text = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        serde_json::from_slice(&text).map_err(|e| Error::file(&cfg_path, e.to_string()))?
    } else {
        serde_json::Value::Null
    };
    let flag = |k: &str| cfg.get(k).and_then(serde_json::Value::as_bool);
    let options = BasicOptions {
        lowercase: flag("do_lower_case").unwrap_or(true),
        strip_accents: flag("strip_accents"),
        tokenize_chinese_chars: flag("tokenize_chinese_chars").unwrap_or(true),
    };
    Ok((bytes, options))
}
