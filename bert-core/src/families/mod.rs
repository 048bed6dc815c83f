//! One file per encoder family: how its `config.json` keys and its tensor names map onto the
//! family-neutral encoder ([`crate::model`]) and the [`Architecture`](crate::arch::Architecture)
//! description. A new family is one new file here plus one line in [`names`] (and one in
//! [`crate::arch::Family`]).

use crate::activation::Activation;
use crate::arch::Family;

mod bert;
mod distilbert;
mod electra;
mod modernbert;
mod roberta;

pub(crate) use distilbert::translate_config as translate_distilbert_config;
pub(crate) use modernbert::{
    parse_heads as parse_modernbert_heads, parse_pre_norm,
    translate_config as translate_modernbert_config,
};

/// Where a family keeps each tensor, relative to its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorNames {
    /// Prefix of the encoder inside task checkpoints (`bert.`, `roberta.`, ...).
    pub prefix: &'static str,
    /// `embeddings.word_embeddings`.
    pub word_embeddings: &'static str,
    /// `embeddings.position_embeddings` (families with a position table).
    pub position_embeddings: &'static str,
    /// `embeddings.token_type_embeddings` (families with token types).
    pub token_type_embeddings: &'static str,
    /// `embeddings.LayerNorm`.
    pub embeddings_norm: &'static str,
    /// `embeddings_project` (ELECTRA), if the family can have it.
    pub embeddings_project: Option<&'static str>,
    /// The layers' container (`encoder.layer`); layer `i` is `{layers}.{i}`.
    pub layers: &'static str,
    /// Inside a layer: the query projection (pre-norm families: the fused `Wqkv`, whose rows
    /// are query, key and value; `key` and `value` are then unused).
    pub query: &'static str,
    /// Key projection.
    pub key: &'static str,
    /// Value projection.
    pub value: &'static str,
    /// Attention output projection.
    pub attention_out: &'static str,
    /// LayerNorm after attention.
    pub attention_norm: &'static str,
    /// Feed-forward up projection.
    pub intermediate: &'static str,
    /// Feed-forward down projection.
    pub output: &'static str,
    /// LayerNorm after the feed-forward block.
    pub output_norm: &'static str,
    /// `pooler.dense` (families with a pooler).
    pub pooler: Option<&'static str>,
    /// The norm after the last layer (pre-norm families).
    pub final_norm: Option<&'static str>,
    /// The sequence-classification head.
    pub classifier: ClassifierNames,
    /// The masked-LM head.
    pub masked_lm: MaskedLmNames,
}

/// A sequence-classification head: the first token through `dense` and an activation (a
/// pooler; BERT uses the model's own), then `out` to the labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifierNames {
    /// The first-token projection; `None`: the encoder's pooler (BERT).
    pub dense: Option<&'static str>,
    /// Its activation; `None`: tanh (or the architecture's head activation).
    pub activation: Option<Activation>,
    /// A norm after the activation (ModernBERT's prediction head).
    pub norm: Option<&'static str>,
    /// The projection to the labels.
    pub out: &'static str,
}

/// A masked-LM head: `dense` → activation → `norm` → `decoder` (tied to the word embeddings
/// when the checkpoint does not store it) + bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskedLmNames {
    /// The transform's dense layer.
    pub dense: &'static str,
    /// The transform's LayerNorm.
    pub norm: &'static str,
    /// The decoder to the vocabulary.
    pub decoder: &'static str,
    /// Where the vocabulary bias may be, in order of preference.
    pub bias: [&'static str; 2],
    /// The transform's activation; `None`: the config's `hidden_act`.
    pub activation: Option<Activation>,
}

/// The tensor names of `family`.
pub fn names(family: Family) -> &'static TensorNames {
    match family {
        Family::Bert => &bert::NAMES,
        Family::Roberta | Family::XlmRoberta => &roberta::NAMES,
        Family::Electra => &electra::NAMES,
        Family::DistilBert => &distilbert::NAMES,
        Family::ModernBert => &modernbert::NAMES,
    }
}

/// Every family's encoder prefix, for detecting it in a checkpoint.
pub const PREFIXES: &[&str] = &["bert.", "roberta.", "electra.", "distilbert.", "model."];
