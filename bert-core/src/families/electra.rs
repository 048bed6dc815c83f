//! ELECTRA (`model_type: electra`): BERT's module names under `electra.`, no pooler, and an
//! `embeddings_project` when `embedding_size` differs from `hidden_size`.

use super::TensorNames;

/// `electra.` in task checkpoints.
pub(super) const NAMES: TensorNames = TensorNames {
    prefix: "electra.",
    embeddings_project: Some("embeddings_project"),
    pooler: None,
    ..super::bert::NAMES
};
