//! A HuggingFace model directory as found on disk: `config.json`, `model.safetensors` (or a
//! sharded `model.safetensors.index.json`), the tokenizer files, and for sentence-transformers
//! checkpoints `modules.json` + `1_Pooling/config.json` (+ `sentence_bert_config.json`).

use std::fs;
use std::path::{Path, PathBuf};

use bert_core::BertConfig;
use serde_json::Value;

use crate::error::{Error, Result};

/// How token vectors become one sentence vector (sentence-transformers' `Pooling` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolingMode {
    /// The `[CLS]` token's vector.
    Cls,
    /// Mean over real (unmasked) tokens.
    Mean,
    /// Element-wise max over real tokens.
    Max,
    /// Sum over real tokens divided by `sqrt(count)`.
    MeanSqrtLen,
    /// The last real token's vector (`pooling_mode_lasttoken`).
    LastToken,
}

/// Sentence-embedding settings of a model directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooling {
    /// The pooling mode.
    pub mode: PoolingMode,
    /// L2-normalise the pooled vector (a `Normalize` module follows the pooling).
    pub normalize: bool,
    /// `max_seq_length` of `sentence_bert_config.json`, if any: longer texts are truncated.
    pub max_seq_length: Option<usize>,
    /// Whether a prompt's tokens are pooled with the text's (`include_prompt` of the pooling
    /// config; sentence-transformers' default, true).
    pub include_prompt: bool,
    /// `Dense` modules after the pooling, in order (before `Normalize`).
    pub dense: Vec<std::sync::Arc<crate::st_dense::Dense>>,
}

impl Default for Pooling {
    /// Mean pooling, not normalised: sentence-transformers' default for a plain BERT.
    fn default() -> Self {
        Pooling {
            mode: PoolingMode::Mean,
            normalize: false,
            max_seq_length: None,
            include_prompt: true,
            dense: Vec::new(),
        }
    }
}

/// The prompts of a sentence-transformers model (`config_sentence_transformers.json`): texts
/// put before the input, by name, and the one used when none is named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prompts {
    /// Prompt text by name (`{"query": "query: ", ...}`).
    pub prompts: std::collections::BTreeMap<String, String>,
    /// The prompt used when a request names none (`default_prompt_name`).
    pub default_prompt_name: Option<String>,
}

impl Prompts {
    /// The prompt text for `name`, else the default one, else none; a name the model does not
    /// have is an error that lists those it has.
    pub fn resolve(&self, name: Option<&str>) -> Result<Option<&str>> {
        let Some(name) = name.or(self.default_prompt_name.as_deref()) else {
            return Ok(None);
        };
        self.prompts
            .get(name)
            .map(|p| Some(p.as_str()))
            .ok_or_else(|| {
                let known: Vec<&str> = self.prompts.keys().map(String::as_str).collect();
                Error::Input(format!(
                    "prompt {name:?} is not one of this model's prompts ({})",
                    if known.is_empty() {
                        "it has none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }
}

/// The files of a model directory besides `config.json` and the weights: tokenizer and
/// sentence-transformers pooling files, each optional.
pub const SIDE_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "2_Dense/config.json",
    "2_Dense/model.safetensors",
];

/// Refuse to derive a model directory (a quantized or pruned copy) into its own input.
pub(crate) fn refuse_output_in_place(input: &Path, output: &Path) -> Result<()> {
    if output.exists() && fs::canonicalize(output).ok() == fs::canonicalize(input).ok() {
        return Err(Error::Input(
            "the output directory must differ from the input".into(),
        ));
    }
    Ok(())
}

/// Start writing a derived model directory: create `output` and stage into `files` a copy of
/// `config.json` and of every [`SIDE_FILES`] entry `input` has, except those named in
/// `rewritten` (the ones the caller writes itself). Nothing in `output` is replaced before
/// `files` is committed.
pub(crate) fn stage_derived_dir(
    input: &Path,
    output: &Path,
    rewritten: &[&str],
    files: &mut crate::atomic::AtomicFiles,
) -> Result<()> {
    fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    for name in std::iter::once(&"config.json").chain(SIDE_FILES) {
        let src = input.join(name);
        if !src.is_file() || rewritten.contains(name) {
            continue;
        }
        let dst = output.join(name);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        files.copy(&src, &dst)?;
    }
    Ok(())
}

pub(crate) fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::file(path, format!("invalid JSON: {e}")))
}

/// The files of one model directory, checked and parsed.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// The directory.
    pub root: PathBuf,
    /// The parsed, validated `config.json`.
    pub config: BertConfig,
    /// The safetensors files holding the weights (one, or the shards of an index).
    pub weight_files: Vec<PathBuf>,
    /// Sentence-embedding settings (sentence-transformers directories), else the default.
    pub pooling: Pooling,
    /// Prompts (sentence-transformers directories), else none.
    pub prompts: Prompts,
}

impl ModelDir {
    /// Open and check a model directory.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        if !root.is_dir() {
            return Err(Error::file(
                &root,
                "not a directory (expected a HF model directory)",
            ));
        }
        let config_path = root.join("config.json");
        if !config_path.is_file() {
            return Err(Error::file(
                &config_path,
                "not found: a HF model directory has config.json, model.safetensors and tokenizer files",
            ));
        }
        let text = fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config =
            BertConfig::from_json(&text).map_err(|e| Error::file(&config_path, e.to_string()))?;
        let weight_files = Self::find_weights(&root)?;
        let pooling = Self::read_pooling(&root)?;
        let prompts = Self::read_prompts(&root)?;
        Ok(ModelDir {
            root,
            config,
            weight_files,
            pooling,
            prompts,
        })
    }

    fn find_weights(root: &Path) -> Result<Vec<PathBuf>> {
        let single = root.join("model.safetensors");
        if single.is_file() {
            return Ok(vec![single]);
        }
        let index = root.join("model.safetensors.index.json");
        if index.is_file() {
            let json = read_json(&index)?;
            let map = json
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| Error::file(&index, "no weight_map object"))?;
            let mut files: Vec<PathBuf> = Vec::new();
            for v in map.values() {
                let name = v
                    .as_str()
                    .filter(|n| {
                        // A file name in this folder: not empty (that names the folder itself,
                        // found by fuzz/model_dir), no separators, not hidden or `..`.
                        !n.is_empty()
                            && !n.contains('/')
                            && !n.contains('\\')
                            && !n.starts_with('.')
                    })
                    .ok_or_else(|| Error::file(&index, format!("bad shard name {v}")))?;
                let path = root.join(name);
                if !files.contains(&path) {
                    files.push(path);
                }
            }
            return Ok(files);
        }
        let hint = if root.join("pytorch_model.bin").exists() {
            "only pytorch_model.bin is here; bert-rs reads safetensors (convert it with \
             `python -c \"import torch; from safetensors.torch import save_file; \
             save_file(torch.load('pytorch_model.bin'), 'model.safetensors')\"`)"
        } else {
            "no model.safetensors (or model.safetensors.index.json) in this directory"
        };
        Err(Error::file(root, hint))
    }

    fn read_prompts(root: &Path) -> Result<Prompts> {
        let path = root.join("config_sentence_transformers.json");
        if !path.is_file() {
            return Ok(Prompts::default());
        }
        let json = read_json(&path)?;
        let mut prompts = Prompts::default();
        if let Some(map) = json.get("prompts").and_then(Value::as_object) {
            for (name, text) in map {
                let text = text.as_str().ok_or_else(|| {
                    Error::file(&path, format!("prompt {name:?} is not a string"))
                })?;
                prompts.prompts.insert(name.clone(), text.to_string());
            }
        }
        prompts.default_prompt_name = json
            .get("default_prompt_name")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(name) = &prompts.default_prompt_name {
            if !prompts.prompts.contains_key(name) {
                return Err(Error::file(
                    &path,
                    format!("default_prompt_name {name:?} is not one of its prompts"),
                ));
            }
        }
        Ok(prompts)
    }

    fn read_pooling(root: &Path) -> Result<Pooling> {
        let mut pooling = Pooling::default();
        let modules_path = root.join("modules.json");
        if !modules_path.is_file() {
            return Ok(pooling);
        }
        let modules = read_json(&modules_path)?;
        let modules = modules
            .as_array()
            .ok_or_else(|| Error::file(&modules_path, "expected a list of modules"))?;
        for m in modules {
            let kind = m.get("type").and_then(Value::as_str).unwrap_or("");
            let path = m.get("path").and_then(Value::as_str).unwrap_or("");
            // A module folder inside the model directory, never a path out of it.
            let inside = Path::new(path)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !inside && (kind.ends_with(".Pooling") || kind.ends_with(".Dense")) {
                return Err(Error::file(
                    &modules_path,
                    format!("module path {path:?} is not a folder inside the model directory"),
                ));
            }
            if kind.ends_with(".Normalize") {
                pooling.normalize = true;
            } else if kind.ends_with(".Dense") {
                let dense = crate::st_dense::Dense::load(&root.join(path))?;
                pooling.dense.push(std::sync::Arc::new(dense));
            } else if kind.ends_with(".Pooling") {
                let cfg_path = root.join(path).join("config.json");
                let cfg = read_json(&cfg_path)?;
                let on = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
                pooling.include_prompt = cfg
                    .get("include_prompt")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                pooling.mode = match () {
                    _ if on("pooling_mode_cls_token") => PoolingMode::Cls,
                    _ if on("pooling_mode_max_tokens") => PoolingMode::Max,
                    _ if on("pooling_mode_mean_sqrt_len_tokens") => PoolingMode::MeanSqrtLen,
                    _ if on("pooling_mode_mean_tokens") => PoolingMode::Mean,
                    _ if on("pooling_mode_lasttoken") => PoolingMode::LastToken,
                    _ => {
                        return Err(Error::file(
                            &cfg_path,
                            "no supported pooling mode (cls, mean, max, mean_sqrt_len, lasttoken) is on",
                        ))
                    }
                };
            } else if !kind.ends_with(".Transformer") {
                return Err(Error::file(
                    &modules_path,
                    format!("unsupported sentence-transformers module {kind:?}"),
                ));
            }
        }
        let st_config = root.join("sentence_bert_config.json");
        if st_config.is_file() {
            pooling.max_seq_length = read_json(&st_config)?
                .get("max_seq_length")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
        }
        Ok(pooling)
    }
}
