//! ELECTRA (`model_type: electra`): BERT's module names under `electra.`, no pooler, and an
//! `embeddings_project` when `embedding_size` differs from `hidden_size`.

use super::{ClassifierNames, MaskedLmNames, TensorNames};
use crate::activation::Activation;

/// `electra.` in task checkpoints.
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "electra.",
    embeddings_project: Some("embeddings_project"),
    pooler: None,
    // ElectraClassificationHead: dense + GELU on the first token, then out_proj.
    classifier: ClassifierNames {
        dense: Some("classifier.dense"),
        activation: Some(Activation::Gelu),
        norm: None,
        out: "classifier.out_proj",
    },
    // The generator's head (ElectraForMaskedLM): hidden -> embedding width, GELU, LayerNorm,
    // then the tied generator_lm_head.
    masked_lm: MaskedLmNames {
        dense: "generator_predictions.dense",
        norm: "generator_predictions.LayerNorm",
        decoder: "generator_lm_head",
        bias: ["generator_lm_head.bias", "generator_lm_head.bias"],
        activation: Some(Activation::Gelu),
    },
    ..super::bert::NAMES
};
