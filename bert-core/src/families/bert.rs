//! BERT (`model_type: bert`): HF's `modeling_bert.py` names.

use super::{ClassifierNames, MaskedLmNames, TensorNames};

/// `bert.` in task checkpoints.
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "bert.",
    word_embeddings: "embeddings.word_embeddings",
    position_embeddings: "embeddings.position_embeddings",
    token_type_embeddings: "embeddings.token_type_embeddings",
    embeddings_norm: "embeddings.LayerNorm",
    embeddings_project: None,
    layers: "encoder.layer",
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_out: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    intermediate: "intermediate.dense",
    output: "output.dense",
    output_norm: "output.LayerNorm",
    pooler: Some("pooler.dense"),
    final_norm: None,
    classifier: ClassifierNames {
        dense: None,
        activation: None,
        norm: None,
        out: "classifier",
    },
    masked_lm: MaskedLmNames {
        dense: "cls.predictions.transform.dense",
        norm: "cls.predictions.transform.LayerNorm",
        decoder: "cls.predictions.decoder",
        bias: ["cls.predictions.bias", "cls.predictions.decoder.bias"],
        activation: None,
    },
};
