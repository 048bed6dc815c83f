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
use crate::model_dir::{self, ModelDir};

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
    let (blob, report) = device_blob(input, dtype)?;
    write_atomic(output, &blob)?;
    Ok(report)
}

/// The device blob of the model directory `input`, in memory, checked to load as the device
/// loads it (see [`export_device`]).
pub fn device_blob(input: &Path, dtype: Option<QuantDtype>) -> Result<(Vec<u8>, DeviceExport)> {
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
    DeviceModel::parse(&blob)
        .map_err(|e| Error::file(input, format!("its device blob does not load: {e}")))?;
    let report = DeviceExport {
        total: blob.len(),
        weights: weights.len(),
        vocab: compiled.len(),
        vocab_txt: vocab_txt.len(),
    };
    Ok((blob, report))
}

/// `vocab.txt` and the basic tokenizer's options from `tokenizer_config.json` (HF's defaults
/// where it is silent), or both from a `tokenizer.json` that is BERT's WordPiece.
fn vocabulary(dir: &Path) -> Result<(Vec<u8>, BasicOptions)> {
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return from_tokenizer_json(dir);
    }
    let bytes = std::fs::read(&vocab).map_err(|e| Error::io(&vocab, e))?;
    let cfg = read_json(&dir.join("tokenizer_config.json"))?;
    let flag = |k: &str| cfg.get(k).and_then(serde_json::Value::as_bool);
    let options = BasicOptions {
        lowercase: flag("do_lower_case").unwrap_or(true),
        strip_accents: flag("strip_accents"),
        tokenize_chinese_chars: flag("tokenize_chinese_chars").unwrap_or(true),
    };
    Ok((bytes, options))
}

/// A JSON file ([`model_dir::read_json`]), or `null` when there is none.
fn read_json(path: &Path) -> Result<serde_json::Value> {
    if !path.is_file() {
        return Ok(serde_json::Value::Null);
    }
    model_dir::read_json(path)
}

/// The vocabulary (as `vocab.txt` lines, by id) and options of a `tokenizer.json` whose model
/// is WordPiece with `##` continuations behind BERT's normalizer and pre-tokenizer.
fn from_tokenizer_json(dir: &Path) -> Result<(Vec<u8>, BasicOptions)> {
    let path = dir.join("tokenizer.json");
    let json = read_json(&path)?;
    let not_bert = |what: &str| {
        Error::file(
            &path,
            format!("{what}: the device tokenizer is BERT's WordPiece (or give a vocab.txt)"),
        )
    };
    if json.is_null() {
        return Err(Error::file(dir, "no vocab.txt or tokenizer.json: the device tokenizer needs BERT's WordPiece vocabulary"));
    }
    let model = &json["model"];
    if model["type"] != "WordPiece" || model["continuing_subword_prefix"] != "##" {
        return Err(not_bert("its model is not WordPiece with ## continuations"));
    }
    let norm = &json["normalizer"];
    if norm["type"] != "BertNormalizer"
        || norm["clean_text"] != true
        || json["pre_tokenizer"]["type"] != "BertPreTokenizer"
    {
        return Err(not_bert("its normalizer or pre-tokenizer is not BERT's"));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| not_bert("no vocabulary"))?;
    let mut by_id: Vec<(u64, &str)> = vocab
        .iter()
        .map(|(t, id)| id.as_u64().map(|id| (id, t.as_str())))
        .collect::<Option<_>>()
        .ok_or_else(|| not_bert("an id that is not a number"))?;
    by_id.sort();
    if by_id
        .iter()
        .enumerate()
        .any(|(i, (id, t))| *id != i as u64 || t.contains('\n'))
    {
        return Err(not_bert(
            "ids that are not 0, 1, 2, ... or a token with a line break",
        ));
    }
    let lines: String = by_id.iter().map(|(_, t)| format!("{t}\n")).collect();
    let options = BasicOptions {
        lowercase: norm["lowercase"].as_bool().unwrap_or(true),
        strip_accents: norm["strip_accents"].as_bool(),
        tokenize_chinese_chars: norm["handle_chinese_chars"].as_bool().unwrap_or(true),
    };
    Ok((lines.into_bytes(), options))
}
