//! RoBERTa and XLM-RoBERTa (`model_type: roberta`, `xlm-roberta`): BERT's module names under
//! `roberta.`; positions offset by the padding index (see
//! [`PositionScheme::PaddingOffset`](crate::arch::PositionScheme)), one token type.

use super::{ClassifierNames, MaskedLmNames, TensorNames};
use crate::activation::Activation;

/// `roberta.` in task checkpoints (XLM-RoBERTa's too).
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "roberta.",
    // RobertaClassificationHead: dense + tanh on <s>, then out_proj (no pooler).
    classifier: ClassifierNames {
        dense: Some("classifier.dense"),
        activation: None,
        norm: None,
        out: "classifier.out_proj",
    },
    // RobertaLMHead: dense, exact GELU, layer_norm, decoder (+ bias).
    masked_lm: MaskedLmNames {
        dense: "lm_head.dense",
        norm: "lm_head.layer_norm",
        decoder: "lm_head.decoder",
        bias: ["lm_head.bias", "lm_head.decoder.bias"],
        activation: Some(Activation::Gelu),
    },
    ..super::bert::NAMES
};
