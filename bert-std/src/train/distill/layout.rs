//! A student written as a sentence-transformers directory: the encoder as an HF `BertModel`
//! (`config.json`, `model.safetensors`, the tokenizer files), `modules.json` with `Transformer`
//! → `Pooling` (mean) → `Dense` (the projection, identity activation; when there is one) →
//! `Normalize`, each module's folder, `sentence_bert_config.json` and
//! `config_sentence_transformers.json`. Written as one set ([`AtomicFiles`]).

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::atomic::AtomicFiles;
use crate::error::{Error, Result};
use crate::train::checkpoint::{f32_safetensors, loss_svg, Param, TOKENIZER_FILES};

/// The parameter name prefix of the projection in training.
pub const PROJECTION: &str = "projection";

/// Where a student's files come from besides its parameters.
#[derive(Debug, Clone, Copy)]
pub struct Layout<'a> {
    /// The folder holding the student's tokenizer files (the pruned vocabulary).
    pub tokenizer: &'a Path,
    /// The student's `config.json`.
    pub config: &'a Map<String, Value>,
    /// `max_seq_length` of `sentence_bert_config.json`.
    pub max_seq_length: usize,
}

fn pretty(v: &impl serde::Serialize) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::Input(format!("JSON: {e}")))
}

/// Write the student `params` (the projection's as `projection.*`) to `out`.
pub fn save_student(
    out: &Path,
    layout: &Layout<'_>,
    params: &[Param<'_>],
    losses: &[f32],
) -> Result<()> {
    let is_dense = |p: &&Param<'_>| p.0 .0.starts_with(&format!("{PROJECTION}."));
    let encoder: Vec<Param<'_>> = params.iter().filter(|p| !is_dense(p)).copied().collect();
    let dense: Vec<Param<'_>> = params
        .iter()
        .filter(is_dense)
        .map(|&((name, shape), v)| {
            let linear = if name.ends_with(".weight") {
                "linear.weight"
            } else {
                "linear.bias"
            };
            ((linear, shape), v)
        })
        .collect();
    let hidden = layout
        .config
        .get("hidden_size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    for dir in ["", "1_Pooling", "2_Dense"] {
        let d = out.join(dir);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let mut files = AtomicFiles::default();
    for name in TOKENIZER_FILES {
        let src = layout.tokenizer.join(name);
        if src.is_file() {
            files.copy(&src, &out.join(name))?;
        }
    }
    files.write(out.join("config.json"), &pretty(layout.config)?)?;
    files.write(
        out.join("model.safetensors"),
        &f32_safetensors(encoder.into_iter())?,
    )?;
    files.write(out.join("loss_curve.svg"), loss_svg(losses).as_bytes())?;
    let mut modules = vec![
        json!({"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}),
        json!({"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}),
    ];
    if let Some(((_, shape), _)) = dense.iter().find(|p| p.0 .0 == "linear.weight") {
        modules.push(json!({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}));
        let config = json!({
            "in_features": shape[1],
            "out_features": shape[0],
            "bias": true,
            "activation_function": "torch.nn.modules.linear.Identity",
        });
        files.write(out.join("2_Dense/config.json"), &pretty(&config)?)?;
        files.write(
            out.join("2_Dense/model.safetensors"),
            &f32_safetensors(dense.into_iter())?,
        )?;
    }
    let n = modules.len();
    modules.push(json!({"idx": n, "name": n.to_string(), "path": format!("{n}_Normalize"), "type": "sentence_transformers.models.Normalize"}));
    files.write(out.join("modules.json"), &pretty(&modules)?)?;
    let pooling = json!({
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": false,
        "pooling_mode_mean_tokens": true,
        "pooling_mode_max_tokens": false,
        "pooling_mode_mean_sqrt_len_tokens": false,
        "pooling_mode_weightedmean_tokens": false,
        "pooling_mode_lasttoken": false,
        "include_prompt": true,
    });
    files.write(out.join("1_Pooling/config.json"), &pretty(&pooling)?)?;
    let st = json!({"max_seq_length": layout.max_seq_length, "do_lower_case": false});
    files.write(out.join("sentence_bert_config.json"), &pretty(&st)?)?;
    let cst = json!({"prompts": {}, "default_prompt_name": null, "similarity_fn_name": "cosine"});
    files.write(
        out.join("config_sentence_transformers.json"),
        &pretty(&cst)?,
    )?;
    files.commit()
}
