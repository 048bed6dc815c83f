//! Where the encoder's gradients are in [`Grads`](super::Grads), and the f32 weight view the
//! backward needs: shared by the encoder's step, its layers' backward and the embeddings'.

use alloc::format;

use crate::error::{Error, Result};
use crate::model::BertModel;
use crate::nn::Linear;

/// Indices of one layer's parameters in [`Grads`](super::Grads).
pub(crate) const PER_LAYER: usize = 16;

/// Where the encoder's gradients are in [`Grads`](super::Grads), in the order of the model's
/// parameters: the word table (slot 0), the position and token-type tables where the family
/// has them, the embeddings' LayerNorm, [`PER_LAYER`] per layer, then ELECTRA's projection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderSlots {
    pub(crate) position: Option<usize>,
    pub(crate) token_type: Option<usize>,
    /// The embeddings' LayerNorm weight (its bias is next).
    pub(crate) norm: usize,
    /// The first layer's first slot.
    pub(crate) layers: usize,
    /// The projection's weight (its bias next), when there is one.
    pub(crate) project: Option<usize>,
    /// One past the encoder's last slot: where a head's begin.
    pub(crate) end: usize,
}

impl EncoderSlots {
    pub(crate) fn of(bert: &BertModel<'_>) -> Self {
        let e = &bert.embeddings;
        let mut next = 1;
        let mut take = |present: bool| {
            present.then(|| {
                next += 1;
                next - 1
            })
        };
        let position = take(e.position_embeddings.is_some());
        let token_type = take(e.token_type_embeddings.is_some());
        let norm = next;
        let layers = norm + 2;
        let after = layers + bert.encoder.layer.len() * PER_LAYER;
        let project = e.project.as_ref().map(|_| after);
        EncoderSlots {
            position,
            token_type,
            norm,
            layers,
            project,
            end: after + if project.is_some() { 2 } else { 0 },
        }
    }

    /// Layer `l`'s first slot.
    pub(crate) fn layer(&self, l: usize) -> usize {
        self.layers + l * PER_LAYER
    }
}

/// An f32 weight, or an error saying training needs one.
pub(crate) fn weight<'s>(l: &'s Linear<'_>) -> Result<&'s [f32]> {
    match &l.weight.storage {
        crate::tensor::Storage::F32(v) => Ok(v),
        other => Err(Error::Unsupported {
            field: "dtype",
            value: format!("{}", other.dtype()),
            supported: "F32 weights for training",
        }),
    }
}
