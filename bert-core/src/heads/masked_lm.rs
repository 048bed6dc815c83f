//! The masked-LM head (`BertPredictionHeadTransform` → `BertLMPredictionHead`) and
//! [`BertForMaskedLM`], for every family (names from [`crate::families`]).

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;

use super::{HeadParts, Logits};
use crate::activation::Activation;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels::{self, GemmNeeds, GemmScratch};
use crate::model::{Batch, BertModel, HeadBuffers, Workspace};
use crate::nn::{linear, LayerNorm, Linear};
use crate::weights::{Matrix, Weights};

/// `BertPredictionHeadTransform`: dense, activation, LayerNorm.
#[derive(Debug, Clone)]
pub struct BertPredictionHeadTransform<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
    /// `transform_act_fn`.
    pub transform_act_fn: Activation,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
}

impl<'a> BertPredictionHeadTransform<'a> {
    /// `dense` (hidden → `width`), the activation (`activation`, else the architecture's head
    /// activation, else `hidden_act`), then the norm; biases as the architecture's heads have
    /// them.
    pub fn load(
        w: &Weights<'a>,
        c: &BertConfig,
        dense: &str,
        norm: &str,
        activation: Option<Activation>,
        width: usize,
    ) -> Result<Self> {
        let style = &c.arch.heads;
        Ok(BertPredictionHeadTransform {
            dense: Linear::load_with_bias(w, dense, c.hidden_size, width, style.dense_bias)?,
            transform_act_fn: activation.or(style.activation).unwrap_or(c.hidden_act),
            layer_norm: LayerNorm::load_with_bias(
                w,
                norm,
                width,
                c.layer_norm_eps,
                style.norm_bias,
            )?,
        })
    }

    /// `out[t, width] = norm(act(dense(x)))` for `t` rows.
    pub(crate) fn forward(&self, x: &[f32], t: usize, out: &mut [f32], scratch: &mut GemmScratch) {
        let n = self.dense.out_features();
        self.dense.forward(x, t, out, scratch);
        kernels::activate_in_place(self.transform_act_fn, &mut out[..t * n]);
        self.layer_norm.forward(&mut out[..t * n]);
    }
}

/// `BertLMPredictionHead`: transform, then the decoder to the vocabulary.
#[derive(Debug, Clone)]
pub struct BertLMPredictionHead<'a> {
    /// `transform`.
    pub transform: BertPredictionHeadTransform<'a>,
    /// `decoder.weight` `[vocab, hidden]`; `None` when tied to the word embeddings (the checkpoint
    /// does not store it, as HF does not when `tie_word_embeddings`).
    pub decoder: Option<Matrix<'a>>,
    /// `bias` (= `decoder.bias`) `[vocab]`.
    pub bias: Cow<'a, [f32]>,
}

impl<'a> BertLMPredictionHead<'a> {
    /// Load the family's masked-LM head (`cls.predictions.*` for BERT, `lm_head.*` for
    /// RoBERTa, ...); the decoder is tied to the word embeddings when the checkpoint does not
    /// store it. Its width is the word embeddings' (ELECTRA's generator projects down to it).
    pub fn load(w: &Weights<'a>, c: &BertConfig) -> Result<Self> {
        let n = &crate::families::names(c.arch.family).masked_lm;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let e = c.arch.embedding_size.unwrap_or(h);
        let decoder_name = format!("{}.weight", n.decoder);
        let decoder = if w.contains(&decoder_name) {
            Some(w.matrix(&decoder_name, v, e)?)
        } else {
            None
        };
        let style = &c.arch.heads;
        let bias = match n.bias.iter().find(|b| w.contains(b)) {
            Some(name) => w.vector(name, v)?,
            None if !style.decoder_bias => Cow::Owned(alloc::vec![0.0; v]),
            None => {
                return Err(Error::MissingTensor {
                    tried: n.bias.iter().map(|b| String::from(*b)).collect(),
                })
            }
        };
        Ok(BertLMPredictionHead {
            transform: BertPredictionHeadTransform::load(w, c, n.dense, n.norm, n.activation, e)?,
            decoder,
            bias,
        })
    }

    pub(crate) fn buffers(&self, bert: &BertModel<'_>, tokens: usize) -> HeadBuffers {
        let c = &bert.config;
        HeadBuffers {
            output: tokens.saturating_mul(c.vocab_size),
            work: tokens.saturating_mul(c.hidden_size),
            gemm: self
                .transform
                .dense
                .gemm_needs(tokens)
                .max(GemmNeeds::for_weight(
                    self.decoder
                        .as_ref()
                        .unwrap_or(&bert.embeddings.word_embeddings.weight),
                    tokens,
                )),
        }
    }

    /// `logits[t, vocab]` from `hidden[t, hidden]`; `transformed` is `[t, hidden]` scratch.
    pub(crate) fn forward(
        &self,
        word_embeddings: &Matrix<'_>,
        hidden: &[f32],
        tokens: usize,
        logits: &mut [f32],
        transformed: &mut [f32],
        scratch: &mut GemmScratch,
    ) {
        self.transform.forward(hidden, tokens, transformed, scratch);
        let decoder = self.decoder.as_ref().unwrap_or(word_embeddings);
        linear(
            decoder,
            Some(&self.bias),
            transformed,
            tokens,
            logits,
            scratch,
        );
    }
}

/// `BertForMaskedLM`: token logits over the vocabulary.
#[derive(Debug, Clone)]
pub struct BertForMaskedLM<'a> {
    /// `bert`.
    pub bert: BertModel<'a>,
    /// `cls.predictions`.
    pub predictions: BertLMPredictionHead<'a>,
}

impl<'a> BertForMaskedLM<'a> {
    /// Load from HF names (`bert.*`, `cls.predictions.*`; decoder tied when absent).
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        Ok(BertForMaskedLM {
            bert: BertModel::load(config, w)?,
            predictions: BertLMPredictionHead::load(w, config)?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        let head = self
            .predictions
            .buffers(&self.bert, max_batch.saturating_mul(max_seq));
        Workspace::new(&self.bert, max_batch, max_seq, head)
    }

    /// `logits` `[batch, seq, vocab]`.
    pub fn forward<'w>(&self, batch: &Batch<'_>, ws: &'w mut Workspace) -> Result<Logits<'w>> {
        self.bert.forward_for_head(batch, ws)?;
        let t = batch.num_tokens();
        let HeadParts {
            hidden,
            output: logits,
            work: transformed,
            scratch,
            ..
        } = ws.head_parts();
        let we = &self.bert.embeddings.word_embeddings.weight;
        self.predictions
            .forward(we, hidden, t, logits, transformed, scratch);
        let v = self.bert.config.vocab_size;
        Ok(Logits::new(logits, &[batch.batch_size, batch.seq_len, v]))
    }
}

impl BertForMaskedLM<'_> {
    /// A workspace for [`forward_at`](Self::forward_at): up to `max_batch` x `max_seq` tokens,
    /// of which up to `max_positions` get vocabulary logits.
    pub fn workspace_at(
        &self,
        max_batch: usize,
        max_seq: usize,
        max_positions: usize,
    ) -> Result<Workspace> {
        let mut head = self.predictions.buffers(&self.bert, max_positions);
        head.work = head.work.saturating_mul(2);
        Workspace::new(&self.bert, max_batch, max_seq, head)
    }

    /// Vocabulary logits `[positions.len(), vocab]` only at the given token positions (indices
    /// into the flattened `[batch * seq]` tokens), e.g. the `[MASK]`s of a fill-mask query. The
    /// full `[batch, seq, vocab]` tensor is never built.
    pub fn forward_at<'w>(
        &self,
        batch: &Batch<'_>,
        positions: &[usize],
        ws: &'w mut Workspace,
    ) -> Result<Logits<'w>> {
        let (p, t) = (positions.len(), batch.num_tokens());
        if let Some(&bad) = positions.iter().find(|&&i| i >= t) {
            return Err(Error::InvalidInput(format!(
                "position {bad} is outside the batch's {t} tokens"
            )));
        }
        let (h, v) = (self.bert.config.hidden_size, self.bert.config.vocab_size);
        if ws.head_output.len() < p * v || ws.head_work.len() < 2 * p * h {
            return Err(Error::ResourceLimit {
                what: format!("{p} positions (use workspace_at with enough positions)"),
                limit: ws.head_output.len() / v,
            });
        }
        self.bert.forward_for_head(batch, ws)?;
        let HeadParts {
            hidden,
            output: logits,
            work,
            scratch,
            ..
        } = ws.head_parts();
        let (gathered, transformed) = work.split_at_mut(p * h);
        for (dst, &i) in gathered.chunks_exact_mut(h).zip(positions) {
            dst.copy_from_slice(&hidden[i * h..(i + 1) * h]);
        }
        let we = &self.bert.embeddings.word_embeddings.weight;
        self.predictions
            .forward(we, gathered, p, logits, transformed, scratch);
        Ok(Logits::new(logits, &[p, v]))
    }
}
