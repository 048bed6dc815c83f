//! The embeddings: word + token type (where the family has them) + position (by the family's
//! [`PositionScheme`]), then LayerNorm, then (ELECTRA) a projection to the hidden width.

use alloc::format;

use super::*;
use crate::arch::{Block, PositionScheme};
use crate::config::BertConfig;
use crate::error::Result;
use crate::families::TensorNames;
use crate::kernels::GemmScratch;
use crate::nn::{Embedding, LayerNorm, Linear};
use crate::weights::Weights;

/// `BertEmbeddings` (and its RoBERTa, ELECTRA, DistilBERT counterparts).
#[derive(Debug, Clone)]
pub struct BertEmbeddings<'a> {
    /// `word_embeddings` `[vocab_size, embedding width]`.
    pub word_embeddings: Embedding<'a>,
    /// `position_embeddings` `[max_position_embeddings, embedding width]`; `None` with rotary
    /// positions (applied inside attention instead).
    pub position_embeddings: Option<Embedding<'a>>,
    /// `token_type_embeddings` `[type_vocab_size, embedding width]`; `None` without segments.
    pub token_type_embeddings: Option<Embedding<'a>>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
    /// ELECTRA's `embeddings_project` (embedding width → hidden width), when they differ.
    pub project: Option<Linear<'a>>,
    /// How position ids are found.
    pub positions: PositionScheme,
}

impl<'a> BertEmbeddings<'a> {
    /// Load the embeddings under prefix `p` with the family's names.
    pub fn load(w: &Weights<'a>, p: &str, c: &BertConfig, names: &TensorNames) -> Result<Self> {
        let e = c.arch.embedding_size.unwrap_or(c.hidden_size);
        let table = |name: &str, rows| Embedding::load(w, &format!("{p}{name}"), rows, e);
        let token_type_embeddings = if c.arch.token_types {
            Some(table(names.token_type_embeddings, c.type_vocab_size)?)
        } else {
            None
        };
        let project = match (c.arch.embedding_size, names.embeddings_project) {
            (Some(e), Some(name)) => {
                Some(Linear::load(w, &format!("{p}{name}"), e, c.hidden_size)?)
            }
            _ => None,
        };
        let position_embeddings = match c.arch.positions {
            PositionScheme::Rotary => None,
            _ => Some(table(names.position_embeddings, c.max_position_embeddings)?),
        };
        let norm_bias = match c.arch.block {
            Block::PreNorm(pre) => pre.norm_bias,
            Block::PostNorm => true,
        };
        Ok(BertEmbeddings {
            word_embeddings: table(names.word_embeddings, c.vocab_size)?,
            position_embeddings,
            token_type_embeddings,
            layer_norm: LayerNorm::load_with_bias(
                w,
                &format!("{p}{}", names.embeddings_norm),
                e,
                c.layer_norm_eps,
                norm_bias,
            )?,
            project,
            positions: c.arch.positions,
        })
    }

    /// Width of the embedding tables (the hidden width but for ELECTRA's narrower ones).
    pub fn width(&self) -> usize {
        self.word_embeddings.dim()
    }

    /// `out[t] = LayerNorm(word[id] + token_type[type] + position[pos])` for every token of a
    /// validated batch (padding included), at the embedding width. `row` is one scratch row.
    pub fn forward(&self, batch: &Batch<'_>, out: &mut [f32], row: &mut [f32]) {
        self.forward_tokens(batch, 0..batch.num_tokens(), out, row);
    }

    /// The position id of token `t` (an index into the padded `[batch * seq]` layout).
    pub(crate) fn position(&self, batch: &Batch<'_>, t: usize) -> usize {
        match self.positions {
            PositionScheme::Absolute | PositionScheme::Rotary => t % batch.seq_len,
            PositionScheme::PaddingOffset { padding_idx } => {
                let pad = padding_idx as u32;
                if batch.input_ids[t] == pad {
                    return padding_idx;
                }
                let start = t - t % batch.seq_len;
                let earlier = batch.input_ids[start..t]
                    .iter()
                    .filter(|&&id| id != pad)
                    .count();
                padding_idx + 1 + earlier
            }
        }
    }

    /// The same for the given token indices (into the padded `[batch * seq]` layout) only,
    /// written to consecutive rows of `out` at the embedding width.
    pub fn forward_tokens(
        &self,
        batch: &Batch<'_>,
        tokens: impl ExactSizeIterator<Item = usize>,
        out: &mut [f32],
        row: &mut [f32],
    ) {
        let n = tokens.len();
        self.sum_tokens(batch, tokens, out, row);
        self.layer_norm.forward(&mut out[..n * self.width()]);
    }

    /// `word[id] + token_type[type] + position[pos]` (the tables the family has) for the given
    /// tokens, into consecutive rows of `out`: the embeddings before their LayerNorm (which a
    /// training step computes itself, keeping what its backward needs).
    pub(crate) fn sum_tokens(
        &self,
        batch: &Batch<'_>,
        tokens: impl Iterator<Item = usize>,
        out: &mut [f32],
        row: &mut [f32],
    ) {
        let row = &mut row[..self.width()];
        for (t, dst) in tokens.zip(out.chunks_exact_mut(self.width())) {
            self.word_embeddings
                .lookup_into(batch.input_ids[t] as usize, dst);
            if let Some(tt) = &self.token_type_embeddings {
                let token_type = batch.token_type_ids.map_or(0, |ids| ids[t]) as usize;
                tt.add_into(token_type, dst, row);
            }
            if let Some(pe) = &self.position_embeddings {
                pe.add_into(self.position(batch, t), dst, row);
            }
        }
    }

    /// Embed `tokens` into `hidden` (`[n, hidden]`); with a projection, the embedding-width
    /// rows go through `scratch` (`[n, embedding width]`) first.
    pub(crate) fn embed_into(
        &self,
        batch: &Batch<'_>,
        tokens: impl ExactSizeIterator<Item = usize>,
        hidden: &mut [f32],
        scratch: &mut [f32],
        row: &mut [f32],
        gemm: &mut GemmScratch,
    ) {
        let n = tokens.len();
        match &self.project {
            None => self.forward_tokens(batch, tokens, hidden, row),
            Some(project) => {
                self.forward_tokens(batch, tokens, scratch, row);
                project.forward(scratch, n, hidden, gemm);
            }
        }
    }
}
