//! Text classification, as HF's `TextClassificationPipeline`: labels from `id2label`, softmax
//! (sigmoid for `multi_label_classification` or a single label, raw for `regression`), sorted,
//! top-k.

use std::path::Path;

use serde::Serialize;

use bert_core::BertForSequenceClassification;

use crate::check::finite;
use crate::error::Result;
use crate::loaded::Task;
use crate::pipelines::{sigmoid, softmax, Pipeline};
use crate::runtime::{Bert, LoadOptions};
use crate::tokenizer::Side;

/// One label and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub struct LabelScore {
    /// The label (from `id2label`).
    pub label: String,
    /// Its score.
    pub score: f32,
}

/// The text-classification pipeline.
#[derive(Debug)]
pub struct TextClassification {
    /// The model (`BertForSequenceClassification`).
    pub bert: Bert,
}

impl TextClassification {
    /// Load a sequence-classification model directory.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(TextClassification {
            bert: Bert::load(path, Task::SequenceClassification, options)?,
        })
    }

    fn scores(&self, logits: &[f32], raw: bool) -> Vec<f32> {
        let config = &self.bert.dir.config;
        match config.problem_type.as_deref() {
            _ if raw => logits.to_vec(),
            Some("regression") => logits.to_vec(),
            Some("multi_label_classification") => logits.iter().map(|&x| sigmoid(x)).collect(),
            _ if config.num_labels() == 1 => logits.iter().map(|&x| sigmoid(x)).collect(),
            _ => softmax(logits),
        }
    }
}

/// Classification settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassifyOptions {
    /// Labels to return, best first (`None`: all).
    pub top_k: Option<usize>,
    /// The logits as they are, without softmax or sigmoid (HF's `function_to_apply="none"`,
    /// TEI's `raw_scores`).
    pub raw_scores: bool,
    /// Which end of a too-long input is cut.
    pub truncation: Side,
}

impl Pipeline for TextClassification {
    /// A text, or a pair of texts (a sentence-pair task).
    type Input<'a> = (&'a str, Option<&'a str>);
    type Output = Vec<LabelScore>;
    type Options = ClassifyOptions;

    fn run(
        &self,
        inputs: &[(&str, Option<&str>)],
        options: &ClassifyOptions,
    ) -> Result<Vec<Vec<LabelScore>>> {
        let encodings = self.bert.encode_all(inputs, |(t, p)| {
            self.bert.encode_from(t, *p, usize::MAX, options.truncation)
        })?;
        let labels = &self.bert.dir.config.id2label;
        self.bert.forward_batches(
            &encodings,
            |_| 0,
            |model: &BertForSequenceClassification<'_>, padded, ws, _| {
                let logits = model.forward(&padded.core_batch(), ws)?;
                (0..padded.rows)
                    .map(|i| {
                        finite(logits.row(i), "logits")?;
                        let mut out: Vec<LabelScore> = self
                            .scores(logits.row(i), options.raw_scores)
                            .into_iter()
                            .zip(labels)
                            .map(|(score, label)| LabelScore {
                                label: label.clone(),
                                score,
                            })
                            .collect();
                        out.sort_by(|a, b| b.score.total_cmp(&a.score));
                        out.truncate(options.top_k.unwrap_or(usize::MAX));
                        Ok(out)
                    })
                    .collect()
            },
        )
    }
}
