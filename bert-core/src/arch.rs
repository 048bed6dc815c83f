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
    /// `modernbert` (pre-norm, rotary, GeGLU, no biases, local/global attention).
    ModernBert,
}

impl Family {
    /// The `model_type`s this library runs.
    pub const SUPPORTED: &'static str =
        "bert, roberta, xlm-roberta, electra, distilbert, modernbert";

    /// The family of a `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        Some(match model_type {
            "bert" => Family::Bert,
            "roberta" => Family::Roberta,
            "xlm-roberta" => Family::XlmRoberta,
            "electra" => Family::Electra,
            "distilbert" => Family::DistilBert,
            "modernbert" => Family::ModernBert,
            _ => return None,
        })
    }

    /// The start of the family's transformers class names (`Roberta` in
    /// `RobertaForTokenClassification`).
    pub fn class_prefix(self) -> &'static str {
        match self {
            Family::Bert => "Bert",
            Family::Roberta => "Roberta",
            Family::XlmRoberta => "XLMRoberta",
            Family::Electra => "Electra",
            Family::DistilBert => "DistilBert",
            Family::ModernBert => "ModernBert",
        }
    }

    /// Its `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
            Family::Electra => "electra",
            Family::DistilBert => "distilbert",
            Family::ModernBert => "modernbert",
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
    /// No position table: rotary embeddings rotate queries and keys by the token's index in
    /// its row (see [`PreNorm`]'s thetas).
    Rotary,
}

/// How the layers are built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Block {
    /// BERT's: attention → dense → LayerNorm(+ residual) → MLP → LayerNorm(+ residual), with
    /// biases and separate Q/K/V.
    PostNorm,
    /// ModernBERT's: x + attention(norm(x)), then x + MLP(norm(x)), a final norm.
    PreNorm(PreNorm),
}

/// The pre-norm block's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreNorm {
    /// Gated feed-forward: `Wi` gives `[input | gate]`, the layer computes `act(input) * gate`.
    pub gated: bool,
    /// Layer `i` attends globally when `i % global_every == 0`, else locally.
    pub global_every: usize,
    /// A local layer's query attends to keys at most this many positions away.
    pub half_window: usize,
    /// Rotary theta of the global layers.
    pub global_theta: f32,
    /// Rotary theta of the local layers.
    pub local_theta: f32,
    /// Whether the linear layers have biases.
    pub biases: bool,
    /// Whether the LayerNorms have a bias.
    pub norm_bias: bool,
}

impl PreNorm {
    /// `(half window if local, rotary theta)` of layer `i`.
    pub fn layer(&self, i: usize) -> (Option<usize>, f32) {
        if i.is_multiple_of(self.global_every.max(1)) {
            (None, self.global_theta)
        } else {
            (Some(self.half_window), self.local_theta)
        }
    }
}

/// Everything the neutral encoder needs to know about a family beyond the sizes in
/// [`crate::BertConfig`]: positions, token types, embedding width, and the block (BERT's
/// post-norm layer, or ModernBERT's pre-norm one with its gating, windows and rotary thetas).
#[derive(Debug, Clone, Copy, PartialEq)]
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
    /// The layers.
    pub block: Block,
    /// How the task heads are built.
    pub heads: HeadStyle,
}

/// What differs in the task heads: ModernBERT puts a prediction head (dense, activation,
/// norm) before every classifier and may mean-pool for sequence classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadStyle {
    /// The prediction head's activation (`None`: the family's default).
    pub activation: Option<crate::activation::Activation>,
    /// Whether the head's dense layer has a bias.
    pub dense_bias: bool,
    /// Whether the head's norm has a bias.
    pub norm_bias: bool,
    /// Whether the masked-LM decoder has a bias.
    pub decoder_bias: bool,
    /// Sequence classification pools the mean of the real tokens (else the first token).
    pub mean_pooling: bool,
    /// Token classification and QA run the prediction head before their classifier.
    pub transform_tokens: bool,
}

impl HeadStyle {
    /// BERT's heads (and RoBERTa's, ELECTRA's, DistilBERT's).
    pub const BERT: HeadStyle = HeadStyle {
        activation: None,
        dense_bias: true,
        norm_bias: true,
        decoder_bias: true,
        mean_pooling: false,
        transform_tokens: false,
    };
}

impl Architecture {
    /// The description of a plain BERT.
    pub const BERT: Architecture = Architecture {
        family: Family::Bert,
        positions: PositionScheme::Absolute,
        token_types: true,
        embedding_size: None,
        block: Block::PostNorm,
        heads: HeadStyle::BERT,
    };

    /// The first position id a sequence uses (0, or `padding_idx + 1`).
    pub fn first_position(&self) -> usize {
        match self.positions {
            PositionScheme::Absolute | PositionScheme::Rotary => 0,
            PositionScheme::PaddingOffset { padding_idx } => padding_idx + 1,
        }
    }
}
