//! DistilBERT (`model_type: distilbert`): its own config keys and tensor names, no token
//! types, no pooler; the same post-LayerNorm layer as BERT (`sa_layer_norm(out_lin(attn) +
//! x)`, then `output_layer_norm(lin2(act(lin1(h))) + h)`).

use alloc::string::String;

use serde_json::{Map, Value};

use super::{ClassifierNames, MaskedLmNames, TensorNames};
use crate::activation::Activation;

/// `distilbert.` in task checkpoints.
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "distilbert.",
    word_embeddings: "embeddings.word_embeddings",
    position_embeddings: "embeddings.position_embeddings",
    token_type_embeddings: "",
    embeddings_norm: "embeddings.LayerNorm",
    embeddings_project: None,
    layers: "transformer.layer",
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_out: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    intermediate: "ffn.lin1",
    output: "ffn.lin2",
    output_norm: "output_layer_norm",
    pooler: None,
    final_norm: None,
    // pre_classifier + ReLU on the first token, then classifier.
    classifier: ClassifierNames {
        dense: Some("pre_classifier"),
        activation: Some(Activation::Relu),
        norm: None,
        out: "classifier",
    },
    // vocab_transform, the config's activation, vocab_layer_norm, vocab_projector (tied).
    masked_lm: MaskedLmNames {
        dense: "vocab_transform",
        norm: "vocab_layer_norm",
        decoder: "vocab_projector",
        bias: ["vocab_projector.bias", "vocab_projector.bias"],
        activation: None,
    },
};

/// DistilBERT's keys under BERT's names (`dim` → `hidden_size`, ...), so that one parser
/// validates every family. Keys already present are left alone.
pub(crate) fn translate_config(raw: &mut Map<String, Value>) {
    for (from, to) in [
        ("dim", "hidden_size"),
        ("n_layers", "num_hidden_layers"),
        ("n_heads", "num_attention_heads"),
        ("hidden_dim", "intermediate_size"),
        ("activation", "hidden_act"),
    ] {
        if let Some(v) = raw.get(from).cloned() {
            raw.entry(to).or_insert(v);
        }
    }
    // DistilBERT's LayerNorms use 1e-12, like BERT's default; it has no token types.
    raw.entry("layer_norm_eps").or_insert(Value::from(1e-12));
    raw.insert("type_vocab_size".into(), Value::from(1));
}
