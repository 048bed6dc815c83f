//! Where the encoder's gradients are in [`Grads`](super::Grads), and the f32 weight view the
//! backward needs: shared by the encoder's step, its layers' backward and the embeddings'.

use alloc::format;

use crate::arch::{Block, PreNorm};
use crate::error::{Error, Result};
use crate::model::BertModel;
use crate::nn::Linear;

/// Indices of one post-norm layer's parameters in [`Grads`](super::Grads).
pub(crate) const PER_LAYER: usize = 16;

/// A parameter's gradient slot and its bias's, when it has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pair {
    pub(crate) weight: usize,
    pub(crate) bias: Option<usize>,
}

impl Pair {
    /// The gradients of the weight and of the bias, if any.
    pub(crate) fn of<'g>(
        &self,
        grads: &'g mut super::Grads,
    ) -> (&'g mut [f32], Option<&'g mut [f32]>) {
        match self.bias {
            Some(b) => {
                let (w, b) = grads.pair(self.weight, b);
                (w, Some(b))
            }
            None => (grads.slot(self.weight), None),
        }
    }
}

/// Hands out slots in order: a weight, then its bias when there is one.
pub(crate) struct Counter(pub(crate) usize);

impl Counter {
    pub(crate) fn take(&mut self, bias: bool) -> Pair {
        let weight = self.0;
        self.0 += 1 + usize::from(bias);
        Pair {
            weight,
            bias: bias.then_some(weight + 1),
        }
    }
}

/// Where the encoder's gradients are in [`Grads`](super::Grads), in the order of the model's
/// parameters: the word table (slot 0), the position and token-type tables where the family
/// has them, the embeddings' norm, every layer ([`PER_LAYER`] per post-norm layer;
/// [`PreNormSlots`] for pre-norm ones), the final norm (pre-norm), then ELECTRA's projection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderSlots {
    pub(crate) position: Option<usize>,
    pub(crate) token_type: Option<usize>,
    /// The embeddings' norm.
    pub(crate) norm: Pair,
    /// The first layer's first slot.
    pub(crate) layers: usize,
    /// Slots of the first layer and of each later one (a pre-norm first layer has no norm).
    layer_len: (usize, usize),
    /// The norm after the last layer (pre-norm).
    pub(crate) final_norm: Option<Pair>,
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
        let mut count = Counter(next);
        let (norm, layer_len) = match &bert.config.arch.block {
            Block::PostNorm => (count.take(true), (PER_LAYER, PER_LAYER)),
            Block::PreNorm(pre) => (
                count.take(pre.norm_bias),
                (PreNormSlots::len(pre, true), PreNormSlots::len(pre, false)),
            ),
        };
        let layers = count.0;
        let n = bert.config.num_hidden_layers;
        count.0 += if n == 0 {
            0
        } else {
            layer_len.0 + (n - 1) * layer_len.1
        };
        let final_norm = match &bert.config.arch.block {
            Block::PreNorm(pre) if bert.encoder.final_norm.is_some() => {
                Some(count.take(pre.norm_bias))
            }
            _ => None,
        };
        let project = e.project.as_ref().map(|_| count.take(true).weight);
        EncoderSlots {
            position,
            token_type,
            norm,
            layers,
            layer_len,
            final_norm,
            project,
            end: count.0,
        }
    }

    /// Layer `l`'s first slot.
    pub(crate) fn layer(&self, l: usize) -> usize {
        match l {
            0 => self.layers,
            _ => self.layers + self.layer_len.0 + (l - 1) * self.layer_len.1,
        }
    }
}

/// The gradient slots of one pre-norm layer, in PyTorch's order of its parameters:
/// `attn_norm` (not in the first layer), `attn.Wqkv`, `attn.Wo`, `mlp_norm`, `mlp.Wi`,
/// `mlp.Wo`; biases where the config has them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PreNormSlots {
    pub(crate) attn_norm: Option<Pair>,
    pub(crate) qkv: Pair,
    pub(crate) attention_out: Pair,
    pub(crate) mlp_norm: Pair,
    pub(crate) mlp_in: Pair,
    pub(crate) mlp_out: Pair,
}

impl PreNormSlots {
    /// The slots of a layer whose first slot is `base`.
    pub(crate) fn at(base: usize, pre: &PreNorm, first: bool) -> Self {
        let mut c = Counter(base);
        PreNormSlots {
            attn_norm: (!first).then(|| c.take(pre.norm_bias)),
            qkv: c.take(pre.biases),
            attention_out: c.take(pre.biases),
            mlp_norm: c.take(pre.norm_bias),
            mlp_in: c.take(pre.biases),
            mlp_out: c.take(pre.biases),
        }
    }

    /// How many slots a layer has.
    fn len(pre: &PreNorm, first: bool) -> usize {
        let last = Self::at(0, pre, first).mlp_out;
        last.bias.unwrap_or(last.weight) + 1
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
