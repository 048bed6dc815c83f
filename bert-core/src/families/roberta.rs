//! RoBERTa and XLM-RoBERTa (`model_type: roberta`, `xlm-roberta`): BERT's module names under
//! `roberta.`; positions offset by the padding index (see
//! [`PositionScheme::PaddingOffset`](crate::arch::PositionScheme)), one token type.

use super::TensorNames;

/// `roberta.` in task checkpoints (XLM-RoBERTa's too).
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "roberta.",
    ..super::bert::NAMES
};
