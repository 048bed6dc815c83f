//! The task heads of HF's `modeling_bert.py`, each on top of the shared [`BertModel`]:
//! [`BertForMaskedLM`], [`BertForNextSentencePrediction`], [`BertForPreTraining`],
//! [`BertForSequenceClassification`], [`BertForTokenClassification`],
//! [`BertForQuestionAnswering`]. Tensor names are HF's (`cls.predictions.*`,
//! `cls.seq_relationship.*`, `classifier.*`, `qa_outputs.*`).

use alloc::format;
use alloc::string::String;

use crate::config::BertConfig;
use crate::error::{Error, Result};
pub(crate) use crate::model::HeadParts;
use crate::model::{Batch, BertModel, BertPooler, HeadBuffers, Workspace};

mod masked_lm;
use crate::nn::{LayerNorm, Linear};
use crate::weights::Weights;
pub use masked_lm::{BertForMaskedLM, BertLMPredictionHead, BertPredictionHeadTransform};

/// Row-major logits living in a [`Workspace`], with their shape.
#[derive(Debug, Clone, Copy)]
pub struct Logits<'w> {
    /// The values.
    pub data: &'w [f32],
    /// `[batch, classes]` or `[batch, seq, classes]` (`[batch, seq]` for QA start/end).
    pub shape: [usize; 3],
    /// How many entries of `shape` are used (2 or 3).
    pub rank: usize,
}

impl<'w> Logits<'w> {
    pub(crate) fn new(data: &'w [f32], dims: &[usize]) -> Self {
        let mut shape = [1; 3];
        shape[..dims.len()].copy_from_slice(dims);
        Logits {
            data: &data[..dims.iter().product::<usize>()],
            shape,
            rank: dims.len(),
        }
    }

    /// The used dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.shape[..self.rank]
    }

    /// Size of the last dimension.
    pub fn last_dim(&self) -> usize {
        self.shape[self.rank - 1]
    }

    /// Row `i` over the last dimension (e.g. the class scores of one token).
    pub fn row(&self, i: usize) -> &'w [f32] {
        let n = self.last_dim();
        &self.data[i * n..(i + 1) * n]
    }
}

/// The prediction head a family runs before its token-level classifiers (ModernBERT's
/// `head`), if it has one.
fn token_transform<'a>(
    c: &BertConfig,
    w: &Weights<'a>,
) -> Result<Option<BertPredictionHeadTransform<'a>>> {
    let n = &crate::families::names(c.arch.family).classifier;
    match (c.arch.heads.transform_tokens, n.dense, n.norm) {
        (true, Some(dense), Some(norm)) => Ok(Some(BertPredictionHeadTransform::load(
            w,
            c,
            dense,
            norm,
            n.activation,
            c.hidden_size,
        )?)),
        _ => Ok(None),
    }
}

/// `BertForNextSentencePrediction`: `[IsNext, NotNext]` logits from the pooled output.
#[derive(Debug, Clone)]
pub struct BertForNextSentencePrediction<'a> {
    /// `bert` (with pooler).
    pub bert: BertModel<'a>,
    /// `cls.seq_relationship`.
    pub seq_relationship: Linear<'a>,
}

impl<'a> BertForNextSentencePrediction<'a> {
    /// Load from HF names.
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        Ok(BertForNextSentencePrediction {
            bert: BertModel::load_with_pooler(config, w)?,
            seq_relationship: Linear::load(w, "cls.seq_relationship", config.hidden_size, 2)?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        pooled_head_workspace(&self.bert, &self.seq_relationship, max_batch, max_seq)
    }

    /// `logits` `[batch, 2]`: index 0 = "B follows A" (IsNext), 1 = random (HF's convention).
    pub fn forward<'w>(&self, batch: &Batch<'_>, ws: &'w mut Workspace) -> Result<Logits<'w>> {
        pooled_head_forward(&self.bert, &self.seq_relationship, batch, ws)
    }
}

fn pooled_head_workspace(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    b: usize,
    s: usize,
) -> Result<Workspace> {
    let buffers = HeadBuffers {
        output: b.saturating_mul(head.out_features()),
        work: 0,
        gemm: head.gemm_needs(b),
    };
    Workspace::new(bert, b, s, buffers)
}

fn pooled_head_forward<'w>(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    batch: &Batch<'_>,
    ws: &'w mut Workspace,
) -> Result<Logits<'w>> {
    bert.forward_for_head(batch, ws)?;
    let HeadParts {
        pooled,
        output: out,
        scratch,
        ..
    } = ws.head_parts();
    head.forward(pooled, batch.batch_size, out, scratch);
    Ok(Logits::new(out, &[batch.batch_size, head.out_features()]))
}

/// What [`BertForPreTraining::forward`] returns.
#[derive(Debug, Clone, Copy)]
pub struct PreTrainingOutput<'w> {
    /// `[batch, seq, vocab]`.
    pub prediction_logits: Logits<'w>,
    /// `[batch, 2]`.
    pub seq_relationship_logits: Logits<'w>,
}

/// `BertForPreTraining`: the MLM head and the NSP head together.
#[derive(Debug, Clone)]
pub struct BertForPreTraining<'a> {
    /// `bert` (with pooler).
    pub bert: BertModel<'a>,
    /// `cls.predictions`.
    pub predictions: BertLMPredictionHead<'a>,
    /// `cls.seq_relationship`.
    pub seq_relationship: Linear<'a>,
}

impl<'a> BertForPreTraining<'a> {
    /// Load from HF names.
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        Ok(BertForPreTraining {
            bert: BertModel::load_with_pooler(config, w)?,
            predictions: BertLMPredictionHead::load(w, config)?,
            seq_relationship: Linear::load(w, "cls.seq_relationship", config.hidden_size, 2)?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        let mut head = self
            .predictions
            .buffers(&self.bert, max_batch.saturating_mul(max_seq));
        head.output = head.output.saturating_add(max_batch.saturating_mul(2));
        head.gemm = head.gemm.max(self.seq_relationship.gemm_needs(max_batch));
        Workspace::new(&self.bert, max_batch, max_seq, head)
    }

    /// Both heads' logits.
    pub fn forward<'w>(
        &self,
        batch: &Batch<'_>,
        ws: &'w mut Workspace,
    ) -> Result<PreTrainingOutput<'w>> {
        self.bert.forward_for_head(batch, ws)?;
        let (t, b) = (batch.num_tokens(), batch.batch_size);
        let v = self.bert.config.vocab_size;
        let HeadParts {
            hidden,
            pooled,
            output: out,
            work: transformed,
            scratch,
            ..
        } = ws.head_parts();
        let (mlm, nsp) = out.split_at_mut(t * v);
        let we = &self.bert.embeddings.word_embeddings.weight;
        self.predictions
            .forward(we, hidden, t, mlm, transformed, scratch);
        self.seq_relationship.forward(pooled, b, nsp, scratch);
        Ok(PreTrainingOutput {
            prediction_logits: Logits::new(mlm, &[b, batch.seq_len, v]),
            seq_relationship_logits: Logits::new(nsp, &[b, 2]),
        })
    }
}

/// `BertForSequenceClassification`: `classifier(pooled)`, `[batch, num_labels]`.
#[derive(Debug, Clone)]
pub struct BertForSequenceClassification<'a> {
    /// `bert` (with pooler).
    pub bert: BertModel<'a>,
    /// `classifier`.
    pub classifier: Linear<'a>,
}

impl<'a> BertForSequenceClassification<'a> {
    /// Load from HF names; `num_labels` comes from the config's `id2label` / `num_labels`.
    /// BERT classifies its pooler output; RoBERTa, ELECTRA and DistilBERT pool the first token
    /// with their head's own dense layer and activation, which becomes the pooler here.
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        let n = &crate::families::names(config.arch.family).classifier;
        let style = &config.arch.heads;
        let h = config.hidden_size;
        let bert = match n.dense {
            None => BertModel::load_with_pooler(config, w)?,
            Some(dense) => {
                let mut bert = BertModel::load(config, w)?;
                bert.pooler = Some(BertPooler {
                    dense: Linear::load_with_bias(w, dense, h, h, style.dense_bias)?,
                    activation: n.activation.or(style.activation),
                    norm: n
                        .norm
                        .map(|name| {
                            LayerNorm::load_with_bias(
                                w,
                                name,
                                h,
                                config.layer_norm_eps,
                                style.norm_bias,
                            )
                        })
                        .transpose()?,
                    mean: style.mean_pooling,
                });
                bert
            }
        };
        Ok(BertForSequenceClassification {
            bert,
            classifier: Linear::load(w, n.out, h, config.num_labels())?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        pooled_head_workspace(&self.bert, &self.classifier, max_batch, max_seq)
    }

    /// `logits` `[batch, num_labels]`.
    pub fn forward<'w>(&self, batch: &Batch<'_>, ws: &'w mut Workspace) -> Result<Logits<'w>> {
        pooled_head_forward(&self.bert, &self.classifier, batch, ws)
    }

    /// The label name of class `id`.
    pub fn label(&self, id: usize) -> Option<&str> {
        self.bert.config.id2label.get(id).map(String::as_str)
    }
}

/// `BertForTokenClassification`: `classifier(hidden)`, `[batch, seq, num_labels]`.
#[derive(Debug, Clone)]
pub struct BertForTokenClassification<'a> {
    /// `bert` (pooler unused).
    pub bert: BertModel<'a>,
    /// The prediction head before the classifier (ModernBERT), if any.
    pub transform: Option<BertPredictionHeadTransform<'a>>,
    /// `classifier`.
    pub classifier: Linear<'a>,
}

impl<'a> BertForTokenClassification<'a> {
    /// Load from HF names.
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        let mut bert = BertModel::load(config, w)?;
        bert.pooler = None;
        Ok(BertForTokenClassification {
            bert,
            transform: token_transform(config, w)?,
            classifier: Linear::load(w, "classifier", config.hidden_size, config.num_labels())?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        token_head_workspace(
            &self.bert,
            &self.classifier,
            self.transform.as_ref(),
            max_batch,
            max_seq,
        )
    }

    /// `logits` `[batch, seq, num_labels]`.
    pub fn forward<'w>(&self, batch: &Batch<'_>, ws: &'w mut Workspace) -> Result<Logits<'w>> {
        self.bert.forward_for_head(batch, ws)?;
        let HeadParts {
            hidden,
            output: out,
            work,
            scratch,
            ..
        } = ws.head_parts();
        let t = batch.num_tokens();
        let input: &[f32] = match &self.transform {
            None => hidden,
            Some(tr) => {
                tr.forward(hidden, t, work, scratch);
                work
            }
        };
        self.classifier.forward(input, t, out, scratch);
        let l = self.classifier.out_features();
        Ok(Logits::new(out, &[batch.batch_size, batch.seq_len, l]))
    }

    /// The label name of class `id`.
    pub fn label(&self, id: usize) -> Option<&str> {
        self.bert.config.id2label.get(id).map(String::as_str)
    }
}

fn token_head_workspace(
    bert: &BertModel<'_>,
    head: &Linear<'_>,
    transform: Option<&BertPredictionHeadTransform<'_>>,
    b: usize,
    s: usize,
) -> Result<Workspace> {
    let tokens = b.checked_mul(s).ok_or_else(|| Error::ResourceLimit {
        what: format!("workspace of {b} x {s} tokens"),
        limit: usize::MAX,
    })?;
    let width = if transform.is_some() {
        head.out_features().max(head.in_features())
    } else {
        head.out_features()
    };
    let gemm = transform.map_or(head.gemm_needs(tokens), |t| {
        head.gemm_needs(tokens).max(t.dense.gemm_needs(tokens))
    });
    let buffers = HeadBuffers {
        output: tokens.saturating_mul(head.out_features()),
        work: tokens.saturating_mul(width),
        gemm,
    };
    Workspace::new(bert, b, s, buffers)
}

/// What [`BertForQuestionAnswering::forward`] returns.
#[derive(Debug, Clone, Copy)]
pub struct QuestionAnsweringOutput<'w> {
    /// `[batch, seq]`: score of each token as the answer's first token.
    pub start_logits: Logits<'w>,
    /// `[batch, seq]`: score of each token as the answer's last token.
    pub end_logits: Logits<'w>,
}

/// `BertForQuestionAnswering`: `qa_outputs(hidden)` split into start and end logits.
#[derive(Debug, Clone)]
pub struct BertForQuestionAnswering<'a> {
    /// `bert` (pooler unused).
    pub bert: BertModel<'a>,
    /// The prediction head before the span classifier (ModernBERT), if any.
    pub transform: Option<BertPredictionHeadTransform<'a>>,
    /// `qa_outputs` `[2, hidden]` (ModernBERT: `classifier`).
    pub qa_outputs: Linear<'a>,
}

impl<'a> BertForQuestionAnswering<'a> {
    /// Load from HF names.
    pub fn load(config: &BertConfig, w: &Weights<'a>) -> Result<Self> {
        let mut bert = BertModel::load(config, w)?;
        bert.pooler = None;
        let transform = token_transform(config, w)?;
        let name = if transform.is_some() {
            "classifier"
        } else {
            "qa_outputs"
        };
        Ok(BertForQuestionAnswering {
            bert,
            transform,
            qa_outputs: Linear::load(w, name, config.hidden_size, 2)?,
        })
    }

    /// A workspace for up to `max_batch` x `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        token_head_workspace(
            &self.bert,
            &self.qa_outputs,
            self.transform.as_ref(),
            max_batch,
            max_seq,
        )
    }

    /// Start and end logits, each `[batch, seq]`.
    pub fn forward<'w>(
        &self,
        batch: &Batch<'_>,
        ws: &'w mut Workspace,
    ) -> Result<QuestionAnsweringOutput<'w>> {
        self.bert.forward_for_head(batch, ws)?;
        let t = batch.num_tokens();
        let HeadParts {
            hidden,
            output: pairs,
            work,
            scratch,
            ..
        } = ws.head_parts();
        let split: &mut [f32] = match &self.transform {
            None => {
                self.qa_outputs.forward(hidden, t, pairs, scratch);
                work
            }
            Some(tr) => {
                tr.forward(hidden, t, work, scratch);
                self.qa_outputs.forward(work, t, pairs, scratch);
                hidden
            }
        };
        let (start, end) = split[..2 * t].split_at_mut(t);
        for (i, p) in pairs[..2 * t].chunks_exact(2).enumerate() {
            start[i] = p[0];
            end[i] = p[1];
        }
        let dims = [batch.batch_size, batch.seq_len];
        Ok(QuestionAnsweringOutput {
            start_logits: Logits::new(start, &dims),
            end_logits: Logits::new(end, &dims),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn logits_rows() {
        let data = vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let l = Logits::new(&data, &[1, 2, 3]);
        assert_eq!(l.dims(), &[1, 2, 3]);
        assert_eq!(l.row(1), &[3.0, 4.0, 5.0]);
    }
}
