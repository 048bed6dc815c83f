//! Fine-tuning in Rust on the core's hand-written backward pass ([`bert_core::train`]):
//! classification data ([`data`]), the training loop ([`classify`]) and HF-directory
//! checkpoints ([`checkpoint`]). `bert train classify` is the command-line face.
//!
//! Status: sequence classification (single texts or pairs) and token classification (NER,
//! [`ner`]) on BERT-block encoders. QA and MLM + NSP training, dropout, resuming and a
//! multi-threaded backward are not done yet.

pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod ner;

use std::collections::BTreeMap;

use bert_core::pretraining::Rng;
use bert_core::safetensors::serialize;
use bert_core::{BertConfig, Dtype};

use crate::error::Result;
use crate::model_dir::ModelDir;

/// The base model's config with a task head's fields: `architectures`, `id2label`,
/// `label2id`, `num_labels`. Returns the JSON (for the checkpoint) and the parsed config.
pub(crate) fn head_config(
    dir: &ModelDir,
    architecture: &str,
    labels: &[String],
) -> Result<(serde_json::Map<String, serde_json::Value>, BertConfig)> {
    let mut raw = dir.config.raw.clone();
    let id2label: BTreeMap<String, &String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l))
        .collect();
    let label2id: BTreeMap<&String, usize> =
        labels.iter().enumerate().map(|(i, l)| (l, i)).collect();
    raw.insert("architectures".into(), serde_json::json!([architecture]));
    raw.insert("id2label".into(), serde_json::json!(id2label));
    raw.insert("label2id".into(), serde_json::json!(label2id));
    raw.insert("num_labels".into(), serde_json::json!(labels.len()));
    let config = BertConfig::from_map(raw.clone())?;
    Ok((raw, config))
}

/// A new `classifier` (`[n, hidden]`, weights N(0, 0.02) and bias 0, as HF initializes a head)
/// as safetensors bytes, drawn from `rng`.
pub(crate) fn new_classifier(rng: &mut Rng, n: usize, hidden: usize) -> Result<Vec<u8>> {
    let w: Vec<u8> = (0..n * hidden)
        .flat_map(|_| {
            let (u1, u2) = (rng.next_f64().max(1e-12), rng.next_f64());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            ((z * 0.02) as f32).to_le_bytes()
        })
        .collect();
    let b = vec![0u8; n * 4];
    Ok(serialize(
        &[
            ("classifier.weight", Dtype::F32, &[n, hidden], &w),
            ("classifier.bias", Dtype::F32, &[n], &b),
        ],
        &[],
    )?)
}
