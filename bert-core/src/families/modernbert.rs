//! ModernBERT (`model_type: modernbert`): a pre-norm encoder with rotary positions (one theta
//! for global layers, one for local ones), a fused `Wqkv`, a GeGLU feed-forward, no biases,
//! LayerNorms without bias, every `global_attn_every_n_layers`-th layer global and the others
//! attending within `local_attention / 2` positions, and a final norm. Its own key names.

use alloc::format;
use alloc::string::String;

use serde_json::{Map, Value};

use super::{ClassifierNames, MaskedLmNames, TensorNames};
use crate::activation::Activation;
use crate::arch::{HeadStyle, PreNorm};
use crate::error::{Error, Result};

/// `model.` in task checkpoints.
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "model.",
    word_embeddings: "embeddings.tok_embeddings",
    position_embeddings: "",
    token_type_embeddings: "",
    embeddings_norm: "embeddings.norm",
    embeddings_project: None,
    layers: "layers",
    query: "attn.Wqkv",
    key: "attn.Wqkv",
    value: "attn.Wqkv",
    attention_out: "attn.Wo",
    attention_norm: "attn_norm",
    intermediate: "mlp.Wi",
    output: "mlp.Wo",
    output_norm: "mlp_norm",
    pooler: None,
    final_norm: Some("final_norm"),
    classifier: ClassifierNames {
        dense: Some("head.dense"),
        activation: None,
        norm: Some("head.norm"),
        out: "classifier",
    },
    masked_lm: MaskedLmNames {
        dense: "head.dense",
        norm: "head.norm",
        decoder: "decoder",
        bias: ["decoder.bias", "decoder.bias"],
        activation: None,
    },
};

/// ModernBERT's keys under BERT's names, so that one parser validates every family.
pub(crate) fn translate_config(raw: &mut Map<String, Value>) {
    for (from, to) in [
        ("hidden_activation", "hidden_act"),
        ("norm_eps", "layer_norm_eps"),
    ] {
        if let Some(v) = raw.get(from).cloned() {
            raw.entry(to).or_insert(v);
        }
    }
    raw.entry("layer_norm_eps").or_insert(Value::from(1e-5));
    raw.insert("type_vocab_size".into(), Value::from(1));
}

fn number(raw: &Map<String, Value>, path: &[&str]) -> Option<f64> {
    let mut v = raw.get(path[0])?;
    for k in &path[1..] {
        v = v.get(k)?;
    }
    v.as_f64()
}

/// The pre-norm block's settings from a ModernBERT config: gating, the global/local pattern
/// (checked against `layer_types` when given), the window and the rotary thetas.
pub(crate) fn parse_pre_norm(raw: &Map<String, Value>, layers: usize) -> Result<PreNorm> {
    let every = raw
        .get("global_attn_every_n_layers")
        .and_then(Value::as_u64)
        .unwrap_or(3)
        .max(1) as usize;
    if let Some(types) = raw.get("layer_types").and_then(Value::as_array) {
        for (i, t) in types.iter().enumerate() {
            let want = if i.is_multiple_of(every) {
                "full_attention"
            } else {
                "sliding_attention"
            };
            if t.as_str() != Some(want) {
                return Err(Error::Unsupported {
                    field: "layer_types",
                    value: format!("{t} at layer {i} of {layers}"),
                    supported: "every global_attn_every_n_layers-th layer full_attention, the others sliding_attention",
                });
            }
        }
    }
    let window = raw
        .get("local_attention")
        .and_then(Value::as_u64)
        .unwrap_or(128) as usize;
    let theta = |kind: &str, legacy: &str, default: f64| {
        number(raw, &["rope_parameters", kind, "rope_theta"])
            .or_else(|| number(raw, &[legacy]))
            .unwrap_or(default) as f32
    };
    let flag = |k: &str, default: bool| raw.get(k).and_then(Value::as_bool).unwrap_or(default);
    let biases = flag("attention_bias", false);
    if biases != flag("mlp_bias", false) {
        return Err(Error::Unsupported {
            field: "mlp_bias",
            value: format!("{}", !biases),
            supported: "the same as attention_bias",
        });
    }
    Ok(PreNorm {
        gated: true,
        global_every: every,
        half_window: window / 2,
        global_theta: theta("full_attention", "global_rope_theta", 160_000.0),
        local_theta: theta("sliding_attention", "local_rope_theta", 10_000.0),
        biases,
        norm_bias: flag("norm_bias", false),
    })
}

/// The task heads' settings: `classifier_activation`, `classifier_bias`, `norm_bias`,
/// `decoder_bias`, `classifier_pooling` (`cls` or `mean`).
pub(crate) fn parse_heads(raw: &Map<String, Value>) -> Result<HeadStyle> {
    let name = raw
        .get("classifier_activation")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    let activation = Activation::from_hf(name).ok_or_else(|| Error::Unsupported {
        field: "classifier_activation",
        value: format!("{name:?}"),
        supported: Activation::SUPPORTED,
    })?;
    let pooling = raw
        .get("classifier_pooling")
        .and_then(Value::as_str)
        .unwrap_or("cls");
    if pooling != "cls" && pooling != "mean" {
        return Err(Error::Unsupported {
            field: "classifier_pooling",
            value: format!("{pooling:?}"),
            supported: "cls, mean",
        });
    }
    let flag = |k: &str, default: bool| raw.get(k).and_then(Value::as_bool).unwrap_or(default);
    Ok(HeadStyle {
        activation: Some(activation),
        dense_bias: flag("classifier_bias", false),
        norm_bias: flag("norm_bias", false),
        decoder_bias: flag("decoder_bias", true),
        mean_pooling: pooling == "mean",
        transform_tokens: true,
    })
}
