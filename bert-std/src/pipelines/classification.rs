//! Text classification, as HF's `TextClassificationPipeline`: labels from `id2label`, softmax
//! (sigmoid for `multi_label_classification` or a single label, raw for `regression`), sorted,
//! top-k.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::loaded::{Task, TaskModel};
use crate::pipelines::{sigmoid, softmax};
use crate::runtime::{Bert, LoadOptions};

/// One label and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

    fn scores(&self, logits: &[f32]) -> Vec<f32> {
        let config = &self.bert.dir.config;
        match config.problem_type.as_deref() {
            Some("regression") => logits.to_vec(),
            Some("multi_label_classification") => logits.iter().map(|&x| sigmoid(x)).collect(),
            _ if config.num_labels() == 1 => logits.iter().map(|&x| sigmoid(x)).collect(),
            _ => softmax(logits),
        }
    }

    /// Labels of one text (or pair), best first; `top_k` `None` = all.
    pub fn classify(
        &self,
        text: &str,
        pair: Option<&str>,
        top_k: Option<usize>,
    ) -> Result<Vec<LabelScore>> {
        Ok(self.classify_batch(&[(text, pair)], top_k)?.remove(0))
    }

    /// [`classify`](Self::classify) for many inputs, batched and threaded.
    pub fn classify_batch(
        &self,
        inputs: &[(&str, Option<&str>)],
        top_k: Option<usize>,
    ) -> Result<Vec<Vec<LabelScore>>> {
        let encodings = inputs
            .iter()
            .enumerate()
            .map(|(i, (t, p))| {
                self.bert
                    .encode(t, *p, usize::MAX)
                    .map_err(|e| Error::Input(format!("text {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let TaskModel::SequenceClassification(model) = self.bert.model() else {
            return Err(Error::Model(
                "not loaded for sequence classification".into(),
            ));
        };
        let labels = &self.bert.dir.config.id2label;
        self.bert.run_batched(&encodings, |padded, _| {
            let mut ws = model.workspace(padded.batch, padded.seq)?;
            ws.set_parallelism(rayon::current_num_threads(), &crate::batching::RayonJoin);
            let logits = model.forward(&padded.batch(), &mut ws)?;
            Ok((0..padded.batch)
                .map(|i| {
                    let mut out: Vec<LabelScore> = self
                        .scores(logits.row(i))
                        .into_iter()
                        .zip(labels)
                        .map(|(score, label)| LabelScore {
                            label: label.clone(),
                            score,
                        })
                        .collect();
                    out.sort_by(|a, b| b.score.total_cmp(&a.score));
                    out.truncate(top_k.unwrap_or(usize::MAX));
                    out
                })
                .collect())
        })
    }
}
