//! Next-sentence prediction: the probability that B follows A.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::loaded::{Task, TaskModel};
use crate::pipelines::softmax;
use crate::runtime::{Bert, LoadOptions};

/// The verdict on one (A, B) pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NspPrediction {
    /// Probability that B is the sentence after A (softmax of the logits, index 0).
    pub is_next: f32,
    /// The raw `[IsNext, NotNext]` logits.
    pub logits: [f32; 2],
}

/// The NSP pipeline.
#[derive(Debug)]
pub struct NextSentencePrediction {
    /// The model (`BertForNextSentencePrediction`, or `BertForPreTraining`).
    pub bert: Bert,
}

impl NextSentencePrediction {
    /// Load a model directory whose checkpoint has the NSP head (`cls.seq_relationship`).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(NextSentencePrediction {
            bert: Bert::load(path, Task::NextSentence, options)?,
        })
    }

    /// Score one pair.
    pub fn predict(&self, a: &str, b: &str) -> Result<NspPrediction> {
        Ok(self.predict_batch(&[(a, b)])?.remove(0))
    }

    /// Score many pairs (batched, threaded).
    pub fn predict_batch(&self, pairs: &[(&str, &str)]) -> Result<Vec<NspPrediction>> {
        let encodings = pairs
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                self.bert
                    .encode(a, Some(b), usize::MAX)
                    .map_err(|e| Error::Input(format!("pair {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let TaskModel::NextSentence(model) = self.bert.model() else {
            return Err(Error::Model(
                "not loaded for next-sentence prediction".into(),
            ));
        };
        self.bert.run_batched(&encodings, |padded, _| {
            let mut ws = model.workspace(padded.batch, padded.seq)?;
            ws.set_parallelism(rayon::current_num_threads(), &crate::batching::RayonJoin);
            let logits = model.forward(&padded.batch(), &mut ws)?;
            Ok((0..padded.batch)
                .map(|i| {
                    let l = logits.row(i);
                    NspPrediction {
                        is_next: softmax(l)[0],
                        logits: [l[0], l[1]],
                    }
                })
                .collect())
        })
    }
}
