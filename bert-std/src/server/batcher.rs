//! What the server's models do: the [`Model`] a server runs, the [`Work`] of one request (or of
//! several merged into one batch: same task and options) and what it gives back ([`Done`], cut
//! back per request). The queue and the worker that batches requests are in
//! [`super::scheduler`].

use crate::error::{Error, Result};
use crate::pipelines::classification::{ClassifyOptions, LabelScore, TextClassification};
use crate::pipelines::embeddings::{EmbedInput, EmbedOptions, SentenceEmbeddings};
use crate::pipelines::fill_mask::{FillMask, FillMaskOptions, FillMaskOutput};
use crate::pipelines::ner::{Aggregation, Entity, NerOptions, TokenClassification};
use crate::pipelines::qa::{Answer, QaOptions, QuestionAnswering};
use crate::pipelines::sparse::{SparseEmbeddings, SparseVector};
use crate::pipelines::Pipeline;
use crate::runtime::Bert;

/// The model a server runs, loaded for its task.
#[derive(Debug)]
pub enum Model {
    /// Sentence embeddings (`/embed`, `/v1/embeddings`, `/embed_all`, `/similarity`).
    Embed(SentenceEmbeddings),
    /// SPLADE sparse embeddings (`/embed_sparse`).
    Sparse(SparseEmbeddings),
    /// Sequence classification (`/predict`, `/rerank`).
    Classify(TextClassification),
    /// Fill-mask (`/fill-mask`).
    FillMask(FillMask),
    /// Token classification (`/ner`).
    Ner(TokenClassification),
    /// Question answering (`/qa`).
    Qa(QuestionAnswering),
}

impl Model {
    /// The model underneath.
    pub fn bert(&self) -> &Bert {
        match self {
            Model::Embed(p) => &p.bert,
            Model::Sparse(p) => &p.bert,
            Model::Classify(p) => &p.bert,
            Model::FillMask(p) => &p.bert,
            Model::Ner(p) => &p.bert,
            Model::Qa(p) => &p.bert,
        }
    }

    /// The longest input in tokens: the position limit, or a sentence-transformers model's
    /// `max_seq_length` when smaller (longer inputs are cut there).
    pub fn max_input_length(&self) -> usize {
        match self {
            Model::Embed(p) => p.max_input_length(),
            _ => self.bert().max_len(),
        }
    }

    /// The task's name, as `--task` spells it.
    pub fn task(&self) -> &'static str {
        match self {
            Model::Embed(_) => "embed",
            Model::Sparse(_) => "sparse-embed",
            Model::Classify(_) => "classify",
            Model::FillMask(_) => "fill-mask",
            Model::Ner(_) => "ner",
            Model::Qa(_) => "qa",
        }
    }

    /// Run one piece of work (several requests' inputs, merged).
    pub fn run(&self, work: &Work) -> Result<Done> {
        Ok(match (self, work) {
            (
                Model::Embed(p),
                Work::Embed {
                    inputs,
                    options,
                    tokens,
                },
            ) => {
                let refs: Vec<EmbedInput<'_>> = inputs.iter().map(EmbedItem::as_input).collect();
                if *tokens {
                    Done::EmbedAll(p.embed_tokens(&refs, options)?)
                } else {
                    Done::Embed(p.embed_inputs(&refs, options)?)
                }
            }
            (Model::Sparse(p), Work::Sparse { texts, options }) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Done::Sparse(p.embed_sparse(&refs, options)?)
            }
            (Model::Classify(p), Work::Classify { inputs, options }) => {
                let refs: Vec<(&str, Option<&str>)> = inputs
                    .iter()
                    .map(|(a, b)| (a.as_str(), b.as_deref()))
                    .collect();
                Done::Classify(p.run(&refs, options)?)
            }
            (Model::FillMask(p), Work::FillMask { texts, top_k }) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                Done::FillMask(p.run(&refs, &FillMaskOptions { top_k: *top_k })?)
            }
            (Model::Ner(p), Work::Ner { texts, aggregation }) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let o = NerOptions {
                    aggregation: *aggregation,
                };
                Done::Ner(p.run(&refs, &o)?)
            }
            (Model::Qa(p), Work::Qa { inputs, options }) => {
                let refs: Vec<(&str, &str)> = inputs
                    .iter()
                    .map(|(q, c)| (q.as_str(), c.as_str()))
                    .collect();
                Done::Qa(p.run(&refs, options)?)
            }
            _ => {
                return Err(Error::Input(format!(
                    "this server runs the {} task",
                    self.task()
                )))
            }
        })
    }
}

/// One input to embed, as a request gives it: a text, or token ids.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum EmbedItem {
    /// A text.
    Text(String),
    /// Token ids, taken as they are.
    Ids(Vec<u32>),
}

impl EmbedItem {
    /// The pipeline's view of it.
    pub fn as_input(&self) -> EmbedInput<'_> {
        match self {
            EmbedItem::Text(t) => EmbedInput::Text(t),
            EmbedItem::Ids(ids) => EmbedInput::Ids(ids),
        }
    }
}

/// The inputs of one request (or of several merged), with their options.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Inputs to embed.
    Embed {
        /// The texts or token ids.
        inputs: Vec<EmbedItem>,
        /// Prompt and truncation side.
        options: EmbedOptions,
        /// Every token's vector (`/embed_all`) instead of one pooled vector.
        tokens: bool,
    },
    /// Texts to embed as sparse vectors.
    Sparse {
        /// The texts.
        texts: Vec<String>,
        /// Prompt and truncation side.
        options: EmbedOptions,
    },
    /// Texts (or pairs) to classify.
    Classify {
        /// (text, pair) inputs.
        inputs: Vec<(String, Option<String>)>,
        /// Labels per input, raw scores, truncation side.
        options: ClassifyOptions,
    },
    /// Texts with `[MASK]`.
    FillMask {
        /// The texts.
        texts: Vec<String>,
        /// Candidates per mask.
        top_k: usize,
    },
    /// Texts for NER.
    Ner {
        /// The texts.
        texts: Vec<String>,
        /// Token grouping.
        aggregation: Aggregation,
    },
    /// Questions with their contexts.
    Qa {
        /// (question, context) inputs.
        inputs: Vec<(String, String)>,
        /// Windows and answers.
        options: QaOptions,
    },
}

impl Work {
    /// Number of inputs.
    pub fn len(&self) -> usize {
        match self {
            Work::Embed { inputs, .. } => inputs.len(),
            Work::Sparse { texts, .. } | Work::FillMask { texts, .. } | Work::Ner { texts, .. } => {
                texts.len()
            }
            Work::Classify { inputs, .. } => inputs.len(),
            Work::Qa { inputs, .. } => inputs.len(),
        }
    }

    /// No inputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `other` can share a forward pass with this (same task, same options).
    pub(crate) fn fits_with(&self, other: &Work) -> bool {
        match (self, other) {
            (
                Work::Embed {
                    options: a,
                    tokens: x,
                    ..
                },
                Work::Embed {
                    options: b,
                    tokens: y,
                    ..
                },
            ) => a == b && x == y,
            (Work::Sparse { options: a, .. }, Work::Sparse { options: b, .. }) => a == b,
            (Work::Classify { options: a, .. }, Work::Classify { options: b, .. }) => a == b,
            (Work::FillMask { top_k: a, .. }, Work::FillMask { top_k: b, .. }) => a == b,
            (Work::Ner { aggregation: a, .. }, Work::Ner { aggregation: b, .. }) => a == b,
            (Work::Qa { options: a, .. }, Work::Qa { options: b, .. }) => a == b,
            _ => false,
        }
    }

    /// Append `other`'s inputs (same task and options: checked by [`fits_with`](Self::fits_with)
    /// when the batch was formed).
    pub(crate) fn absorb(&mut self, other: Work) {
        match (self, other) {
            (Work::Embed { inputs, .. }, Work::Embed { inputs: more, .. }) => inputs.extend(more),
            (Work::Sparse { texts, .. }, Work::Sparse { texts: more, .. })
            | (Work::FillMask { texts, .. }, Work::FillMask { texts: more, .. })
            | (Work::Ner { texts, .. }, Work::Ner { texts: more, .. }) => texts.extend(more),
            (Work::Classify { inputs, .. }, Work::Classify { inputs: more, .. }) => {
                inputs.extend(more)
            }
            (Work::Qa { inputs, .. }, Work::Qa { inputs: more, .. }) => inputs.extend(more),
            _ => {}
        }
    }
}

/// Results, in the order of the work's inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// One vector per input.
    Embed(Vec<Vec<f32>>),
    /// Every token's vector, per input.
    EmbedAll(Vec<Vec<Vec<f32>>>),
    /// One sparse vector per text.
    Sparse(Vec<SparseVector>),
    /// Labels per input.
    Classify(Vec<Vec<LabelScore>>),
    /// Masks per text.
    FillMask(Vec<FillMaskOutput>),
    /// Entities per text.
    Ner(Vec<Vec<Entity>>),
    /// Answers per question.
    Qa(Vec<Vec<Answer>>),
}

impl Done {
    /// Cut merged results back into one `Done` per request (`counts`: inputs per request).
    pub(crate) fn split(self, counts: &[usize]) -> Vec<Done> {
        fn cut<T>(mut v: Vec<T>, counts: &[usize], wrap: fn(Vec<T>) -> Done) -> Vec<Done> {
            let mut out = Vec::with_capacity(counts.len());
            for &n in counts {
                let rest = v.split_off(n.min(v.len()));
                out.push(wrap(v));
                v = rest;
            }
            out
        }
        match self {
            Done::Embed(v) => cut(v, counts, Done::Embed),
            Done::EmbedAll(v) => cut(v, counts, Done::EmbedAll),
            Done::Sparse(v) => cut(v, counts, Done::Sparse),
            Done::Classify(v) => cut(v, counts, Done::Classify),
            Done::FillMask(v) => cut(v, counts, Done::FillMask),
            Done::Ner(v) => cut(v, counts, Done::Ner),
            Done::Qa(v) => cut(v, counts, Done::Qa),
        }
    }
}
