//! [`Batch`]: the token ids (and optional segment ids and mask) of one padded batch, checked against the config.

use alloc::format;

use crate::config::BertConfig;
use crate::error::{Error, Result};

/// The value HF adds to the attention scores of masked keys: `torch.finfo(float32).min`.
pub const MASKED_SCORE_BIAS: f32 = f32::MIN;

/// One padded batch of token ids, row-major `[batch_size, seq_len]`, as a tokenizer produces.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Token ids.
    pub input_ids: &'a [u32],
    /// Segment ids (0 for sentence A, 1 for sentence B); all zeros when `None`.
    pub token_type_ids: Option<&'a [u32]>,
    /// 1 for real tokens, 0 for padding; all ones when `None`.
    pub attention_mask: Option<&'a [u32]>,
    /// Number of sequences.
    pub batch_size: usize,
    /// Tokens per sequence (padded length).
    pub seq_len: usize,
}

impl<'a> Batch<'a> {
    /// A batch of `batch_size` sequences of `seq_len` ids each, no padding, one segment.
    pub fn new(input_ids: &'a [u32], batch_size: usize, seq_len: usize) -> Self {
        Batch {
            input_ids,
            token_type_ids: None,
            attention_mask: None,
            batch_size,
            seq_len,
        }
    }

    /// A single sequence.
    pub fn single(input_ids: &'a [u32]) -> Self {
        Self::new(input_ids, 1, input_ids.len())
    }

    /// With segment ids.
    pub fn with_token_type_ids(mut self, token_type_ids: &'a [u32]) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }

    /// With an attention mask.
    pub fn with_attention_mask(mut self, attention_mask: &'a [u32]) -> Self {
        self.attention_mask = Some(attention_mask);
        self
    }

    /// Number of token positions (`batch_size * seq_len`).
    pub fn num_tokens(&self) -> usize {
        self.batch_size * self.seq_len
    }

    /// Check every id and shape against `config`.
    pub fn validate(&self, config: &BertConfig) -> Result<()> {
        if self.batch_size == 0 || self.seq_len == 0 {
            return Err(Error::EmptyBatch);
        }
        if self.seq_len > config.max_sequence_length() {
            return Err(Error::SequenceTooLong {
                len: self.seq_len,
                max: config.max_sequence_length(),
            });
        }
        let n = self
            .batch_size
            .checked_mul(self.seq_len)
            .ok_or_else(|| Error::ResourceLimit {
                what: format!("batch {} x seq {}", self.batch_size, self.seq_len),
                limit: usize::MAX,
            })?;
        let check = |what: &'static str, v: &[u32], limit: usize, limit_name: &'static str| {
            if v.len() != n {
                return Err(Error::LengthMismatch {
                    what,
                    len: v.len(),
                    expected: n,
                });
            }
            if let Some(i) = v.iter().position(|&x| x as usize >= limit) {
                return Err(Error::IdOutOfRange {
                    what,
                    sequence: i / self.seq_len,
                    position: i % self.seq_len,
                    value: v[i],
                    limit,
                    limit_name,
                });
            }
            Ok::<(), Error>(())
        };
        check("input_ids", self.input_ids, config.vocab_size, "vocab_size")?;
        // A family without token types (DistilBERT, ModernBERT) ignores them.
        if let Some(t) = self.token_type_ids.filter(|_| config.arch.token_types) {
            check(
                "token_type_ids",
                t,
                config.type_vocab_size,
                "type_vocab_size",
            )?;
        }
        if let Some(m) = self.attention_mask {
            check("attention_mask", m, 2, "the mask values (0 or 1): limit")?;
        }
        Ok(())
    }
}
