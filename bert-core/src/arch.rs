//! The architecture description that drives the family-neutral encoder: what differs between
//! encoder families once their tensors are named (the names are the families' business, see
//! [`crate::families`]). Parsed once from `config.json`'s `model_type` and family keys.

/// An encoder family, chosen from `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `bert`.
    Bert,
    /// `roberta` (positions offset by the padding index).
    Roberta,
    /// `xlm-roberta` (RoBERTa's layout).
    XlmRoberta,
    /// `electra` (discriminator encoder; embeddings narrower than the hidden size).
    Electra,
    /// `distilbert` (no token types, no pooler, its own names).
    DistilBert,
}

impl Family {
    /// The `model_type`s this library runs.
    pub const SUPPORTED: &'static str = "bert, roberta, xlm-roberta, electra, distilbert";

    /// The family of a `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        Some(match model_type {
            "bert" => Family::Bert,
            "roberta" => Family::Roberta,
            "xlm-roberta" => Family::XlmRoberta,
            "electra" => Family::Electra,
            "distilbert" => Family::DistilBert,
            _ => return None,
        })
    }

    /// Its `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
            Family::Electra => "electra",
            Family::DistilBert => "distilbert",
        }
    }
}

/// How a token's position id is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionScheme {
    /// Its index in its (padded) row, as BERT's default `position_ids`.
    Absolute,
    /// RoBERTa's `create_position_ids_from_input_ids`: `padding_idx + 1 + (number of earlier
    /// non-padding ids in the row)` for non-padding ids, `padding_idx` for padding ids.
    PaddingOffset {
        /// The padding token id (= `pad_token_id`).
        padding_idx: usize,
    },
}

/// Everything the neutral encoder needs to know about a family beyond the sizes in
/// [`crate::BertConfig`]. All families here are post-LayerNorm transformers with a GELU-type
/// MLP, biases and separate Q/K/V; pre-norm, gated feed-forward, rotary positions and
/// local attention (ModernBERT) are the next variants this description is meant to grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Architecture {
    /// The family.
    pub family: Family,
    /// Position ids.
    pub positions: PositionScheme,
    /// Whether the embeddings add a token-type (segment) table.
    pub token_types: bool,
    /// Width of the embeddings when it differs from `hidden_size` (ELECTRA): a linear
    /// `embeddings_project` follows the embedding LayerNorm.
    pub embedding_size: Option<usize>,
}

impl Architecture {
    /// The description of a plain BERT.
    pub const BERT: Architecture = Architecture {
        family: Family::Bert,
        positions: PositionScheme::Absolute,
        token_types: true,
        embedding_size: None,
    };

    /// The first position id a sequence uses (0, or `padding_idx + 1`).
    pub fn first_position(&self) -> usize {
        match self.positions {
            PositionScheme::Absolute => 0,
            PositionScheme::PaddingOffset { padding_idx } => padding_idx + 1,
        }
    }
}
