//! The HuggingFace `config.json` of a BERT model, parsed and validated once: everything
//! downstream trusts it.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use crate::arch::{Architecture, Block, Family, HeadStyle, PositionScheme};
use crate::error::{Error, Result};

pub use crate::activation::Activation;

/// Upper bounds that keep a hostile config from asking for absurd allocations.
pub mod limits {
    /// Largest hidden / intermediate size accepted.
    pub const MAX_WIDTH: usize = 1 << 16;
    /// Largest vocabulary accepted.
    pub const MAX_VOCAB: usize = 1 << 22;
    /// Largest number of layers accepted.
    pub const MAX_LAYERS: usize = 1024;
    /// Largest number of positions accepted.
    pub const MAX_POSITIONS: usize = 1 << 16;
    /// Largest number of labels accepted.
    pub const MAX_LABELS: usize = 1 << 16;
}

/// A validated BERT configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embeddings).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; divides `hidden_size`.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer and the MLM transform.
    pub hidden_act: Activation,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// The padding token id.
    pub pad_token_id: u32,
    /// Classification labels, index = class id (from `id2label`, or `LABEL_i`).
    pub id2label: Vec<String>,
    /// `problem_type` (e.g. `multi_label_classification`), if given.
    pub problem_type: Option<String>,
    /// `architectures`, as given.
    pub architectures: Vec<String>,
    /// The family and what sets it apart (positions, token types, embedding width).
    pub arch: Architecture,
    /// The whole JSON document, for [`Display`](fmt::Display) and for fields the model does not use.
    pub raw: serde_json::Map<String, Value>,
}

fn get_usize(raw: &serde_json::Map<String, Value>, field: &'static str) -> Result<Option<usize>> {
    match raw.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| Error::ConfigInvalid {
                field,
                value: v.to_string(),
                reason: "must be a non-negative integer",
            }),
    }
}

fn require(raw: &serde_json::Map<String, Value>, field: &'static str) -> Result<usize> {
    get_usize(raw, field)?.ok_or(Error::ConfigMissing { field })
}

fn in_range(field: &'static str, value: usize, max: usize) -> Result<usize> {
    if value == 0 {
        return Err(Error::ConfigInvalid {
            field,
            value: value.to_string(),
            reason: "must be at least 1",
        });
    }
    if value > max {
        return Err(Error::ConfigInvalid {
            field,
            value: value.to_string(),
            reason: "is larger than this library accepts (see config::limits)",
        });
    }
    Ok(value)
}

fn get_str<'a>(
    raw: &'a serde_json::Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>> {
    match raw.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(Error::ConfigInvalid {
            field,
            value: v.to_string(),
            reason: "must be a string",
        }),
    }
}

fn flag(raw: &serde_json::Map<String, Value>, field: &'static str) -> bool {
    matches!(raw.get(field), Some(Value::Bool(true)))
}

impl BertConfig {
    /// Parse `config.json` text.
    pub fn from_json(text: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            what: "config.json",
            message: e.to_string(),
        })?;
        match value {
            Value::Object(map) => Self::from_map(map),
            _ => Err(Error::Json {
                what: "config.json",
                message: "top level is not an object".to_string(),
            }),
        }
    }

    /// Validate an already parsed JSON object.
    pub fn from_map(mut raw: serde_json::Map<String, Value>) -> Result<Self> {
        let family = match get_str(&raw, "model_type")? {
            None => Family::Bert,
            Some(model_type) => {
                Family::from_model_type(model_type).ok_or_else(|| Error::Unsupported {
                    field: "model_type",
                    value: format!("{model_type:?}"),
                    supported: Family::SUPPORTED,
                })?
            }
        };
        match family {
            Family::DistilBert => crate::families::translate_distilbert_config(&mut raw),
            Family::ModernBert => crate::families::translate_modernbert_config(&mut raw),
            _ => {}
        }
        for field in ["is_decoder", "add_cross_attention"] {
            if flag(&raw, field) {
                return Err(Error::Unsupported {
                    field: if field == "is_decoder" {
                        "is_decoder"
                    } else {
                        "add_cross_attention"
                    },
                    value: "true".to_string(),
                    supported: "false (encoder-only BERT)",
                });
            }
        }
        let vocab_size = in_range(
            "vocab_size",
            require(&raw, "vocab_size")?,
            limits::MAX_VOCAB,
        )?;
        let hidden_size = in_range(
            "hidden_size",
            require(&raw, "hidden_size")?,
            limits::MAX_WIDTH,
        )?;
        let num_hidden_layers = in_range(
            "num_hidden_layers",
            require(&raw, "num_hidden_layers")?,
            limits::MAX_LAYERS,
        )?;
        let num_attention_heads = in_range(
            "num_attention_heads",
            require(&raw, "num_attention_heads")?,
            limits::MAX_WIDTH,
        )?;
        if hidden_size % num_attention_heads != 0 {
            return Err(Error::ConfigInvalid {
                field: "num_attention_heads",
                value: num_attention_heads.to_string(),
                reason: "must divide hidden_size",
            });
        }
        let intermediate_size = in_range(
            "intermediate_size",
            require(&raw, "intermediate_size")?,
            limits::MAX_WIDTH,
        )?;
        let act_name = get_str(&raw, "hidden_act")?.unwrap_or("gelu");
        let hidden_act = Activation::from_hf(act_name).ok_or_else(|| Error::Unsupported {
            field: "hidden_act",
            value: format!("{act_name:?}"),
            supported: Activation::SUPPORTED,
        })?;
        let max_position_embeddings = in_range(
            "max_position_embeddings",
            get_usize(&raw, "max_position_embeddings")?.unwrap_or(512),
            limits::MAX_POSITIONS,
        )?;
        let type_vocab_size = in_range(
            "type_vocab_size",
            get_usize(&raw, "type_vocab_size")?.unwrap_or(2),
            limits::MAX_VOCAB,
        )?;
        let layer_norm_eps = match raw.get("layer_norm_eps") {
            None | Some(Value::Null) => 1e-12,
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x.is_finite() && x < 1.0 => x as f32,
                _ => {
                    return Err(Error::ConfigInvalid {
                        field: "layer_norm_eps",
                        value: v.to_string(),
                        reason: "must be a number in (0, 1)",
                    })
                }
            },
        };
        let pad = get_usize(&raw, "pad_token_id")?.unwrap_or(0);
        let pad_token_id = u32::try_from(pad)
            .ok()
            .filter(|&p| (p as usize) < vocab_size)
            .ok_or(Error::ConfigInvalid {
                field: "pad_token_id",
                value: pad.to_string(),
                reason: "must be a token id below vocab_size",
            })?;
        if let Some(pet) = get_str(&raw, "position_embedding_type")? {
            if pet != "absolute" {
                return Err(Error::Unsupported {
                    field: "position_embedding_type",
                    value: format!("{pet:?}"),
                    supported: "absolute",
                });
            }
        }
        let arch = Self::parse_arch(
            &raw,
            family,
            hidden_size,
            num_hidden_layers,
            pad_token_id as usize,
        )?;
        let id2label = Self::parse_labels(&raw)?;
        let problem_type = get_str(&raw, "problem_type")?.map(|s| s.to_string());
        if let Some(pt) = &problem_type {
            if !matches!(
                pt.as_str(),
                "single_label_classification" | "multi_label_classification" | "regression"
            ) {
                return Err(Error::Unsupported {
                    field: "problem_type",
                    value: format!("{pt:?}"),
                    supported:
                        "single_label_classification, multi_label_classification, regression",
                });
            }
        }
        let architectures = match raw.get("architectures") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| s.to_string())
                        .ok_or_else(|| Error::ConfigInvalid {
                            field: "architectures",
                            value: v.to_string(),
                            reason: "must be a list of strings",
                        })
                })
                .collect::<Result<_>>()?,
            Some(v) => {
                return Err(Error::ConfigInvalid {
                    field: "architectures",
                    value: v.to_string(),
                    reason: "must be a list of strings",
                })
            }
        };
        Ok(BertConfig {
            vocab_size,
            hidden_size,
            num_hidden_layers,
            num_attention_heads,
            intermediate_size,
            hidden_act,
            max_position_embeddings,
            type_vocab_size,
            layer_norm_eps,
            pad_token_id,
            id2label,
            problem_type,
            architectures,
            arch,
            raw,
        })
    }

    /// What sets the family apart: positions, token types, the embedding width.
    fn parse_arch(
        raw: &serde_json::Map<String, Value>,
        family: Family,
        hidden_size: usize,
        layers: usize,
        pad_token_id: usize,
    ) -> Result<Architecture> {
        let positions = match family {
            Family::Roberta | Family::XlmRoberta => PositionScheme::PaddingOffset {
                padding_idx: pad_token_id,
            },
            Family::ModernBert => PositionScheme::Rotary,
            _ => PositionScheme::Absolute,
        };
        let block = match family {
            Family::ModernBert => Block::PreNorm(crate::families::parse_pre_norm(raw, layers)?),
            _ => Block::PostNorm,
        };
        let embedding_size = match (family, get_usize(raw, "embedding_size")?) {
            (Family::Electra, Some(e)) if e != hidden_size => {
                Some(in_range("embedding_size", e, hidden_size)?)
            }
            _ => None,
        };
        let heads = match family {
            Family::ModernBert => crate::families::parse_modernbert_heads(raw)?,
            _ => HeadStyle::BERT,
        };
        Ok(Architecture {
            family,
            positions,
            token_types: !matches!(family, Family::DistilBert | Family::ModernBert),
            embedding_size,
            block,
            heads,
        })
    }

    /// Width of the feed-forward layer's output before any gating: `2 × intermediate_size`
    /// for a gated (GeGLU) block, `intermediate_size` otherwise.
    pub fn feed_forward_width(&self) -> usize {
        match self.arch.block {
            Block::PreNorm(p) if p.gated => 2 * self.intermediate_size,
            _ => self.intermediate_size,
        }
    }

    /// The longest sequence the model takes: the position table's length (RoBERTa's first
    /// positions are taken by the padding offset).
    pub fn max_sequence_length(&self) -> usize {
        // (Rotary positions have no table, but HF still bounds them by this.)
        self.max_position_embeddings
            .saturating_sub(self.arch.first_position())
    }

    /// `id2label` (keys "0".."n-1"), else `num_labels` generic labels, else HF's default of 2.
    fn parse_labels(raw: &serde_json::Map<String, Value>) -> Result<Vec<String>> {
        let num_labels = get_usize(raw, "num_labels")?;
        let Some(map) = raw.get("id2label").filter(|v| !v.is_null()) else {
            let n = in_range("num_labels", num_labels.unwrap_or(2), limits::MAX_LABELS)?;
            return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
        };
        let bad = |reason| Error::ConfigInvalid {
            field: "id2label",
            value: map.to_string(),
            reason,
        };
        let obj = map.as_object().ok_or_else(|| bad("must be an object"))?;
        let n = in_range("num_labels", obj.len(), limits::MAX_LABELS)?;
        let mut by_id: BTreeMap<usize, String> = BTreeMap::new();
        for (k, v) in obj {
            let id: usize = k
                .parse()
                .map_err(|_| bad("keys must be class ids 0..n-1"))?;
            let label = v.as_str().ok_or_else(|| bad("values must be strings"))?;
            by_id.insert(id, label.to_string());
        }
        if by_id.keys().copied().ne(0..n) {
            return Err(bad("keys must be exactly the class ids 0..n-1"));
        }
        if let Some(declared) = num_labels {
            if declared != n {
                return Err(Error::ConfigInvalid {
                    field: "num_labels",
                    value: declared.to_string(),
                    reason: "disagrees with the number of entries in id2label",
                });
            }
        }
        Ok(by_id.into_values().collect())
    }

    /// Number of classification labels.
    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The class id of `label`, if the config names it.
    pub fn label2id(&self, label: &str) -> Option<usize> {
        self.id2label.iter().position(|l| l == label)
    }
}

/// Prints like transformers' `print(config)`: `BertConfig { ...sorted JSON... }`.
impl fmt::Display for BertConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string_pretty(&self.raw).map_err(|_| fmt::Error)?;
        write!(f, "BertConfig {json}")
    }
}
