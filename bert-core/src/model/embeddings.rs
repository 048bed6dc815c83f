//! The embeddings: word + token type + position, then LayerNorm.

use alloc::format;

use super::*;
use crate::config::BertConfig;
use crate::error::Result;
use crate::nn::{Embedding, LayerNorm};
use crate::weights::Weights;

/// `BertEmbeddings`: word + token type + position embeddings, then LayerNorm.
#[derive(Debug, Clone)]
pub struct BertEmbeddings<'a> {
    /// `word_embeddings` `[vocab_size, hidden]`.
    pub word_embeddings: Embedding<'a>,
    /// `position_embeddings` `[max_position_embeddings, hidden]`.
    pub position_embeddings: Embedding<'a>,
    /// `token_type_embeddings` `[type_vocab_size, hidden]`.
    pub token_type_embeddings: Embedding<'a>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
}

impl<'a> BertEmbeddings<'a> {
    /// Load `{p}embeddings.*`.
    pub fn load(w: &Weights<'a>, p: &str, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(BertEmbeddings {
            word_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.word_embeddings"),
                c.vocab_size,
                h,
            )?,
            position_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.position_embeddings"),
                c.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.token_type_embeddings"),
                c.type_vocab_size,
                h,
            )?,
            layer_norm: LayerNorm::load(
                w,
                &format!("{p}embeddings.LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
        })
    }

    /// `out[t] = LayerNorm(word[id] + token_type[type] + position[pos])` for every token of a
    /// validated batch (padding included). `row` is one hidden-width scratch row.
    pub fn forward(&self, batch: &Batch<'_>, out: &mut [f32], row: &mut [f32]) {
        self.forward_tokens(batch, 0..batch.num_tokens(), out, row);
    }

    /// The same for the given token indices (into the padded `[batch * seq]` layout) only,
    /// written to consecutive rows of `out`. Positions are the tokens' places in their padded
    /// rows, as HF's default `position_ids`.
    pub fn forward_tokens(
        &self,
        batch: &Batch<'_>,
        tokens: impl ExactSizeIterator<Item = usize>,
        out: &mut [f32],
        row: &mut [f32],
    ) {
        let h = self.word_embeddings.dim();
        let n = tokens.len();
        for (t, dst) in tokens.zip(out.chunks_exact_mut(h)) {
            let position = t % batch.seq_len;
            let token_type = batch.token_type_ids.map_or(0, |tt| tt[t]) as usize;
            self.word_embeddings
                .lookup_into(batch.input_ids[t] as usize, dst);
            self.token_type_embeddings.add_into(token_type, dst, row);
            self.position_embeddings.add_into(position, dst, row);
        }
        self.layer_norm.forward(&mut out[..n * h]);
    }
}
