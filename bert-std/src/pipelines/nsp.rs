//! Next-sentence prediction: the probability that B follows A.

use std::path::Path;

use serde::Serialize;

use bert_core::BertForNextSentencePrediction;

use crate::check::finite;
use crate::error::Result;
use crate::loaded::Task;
use crate::pipelines::{softmax, Pipeline};
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
}

impl Pipeline for NextSentencePrediction {
    /// (A, B).
    type Input<'a> = (&'a str, &'a str);
    type Output = NspPrediction;
    type Options = ();

    fn run(&self, pairs: &[(&str, &str)], _: &()) -> Result<Vec<NspPrediction>> {
        let encodings = self
            .bert
            .encode_all(pairs, |(a, b)| self.bert.encode(a, Some(b), usize::MAX))?;
        self.bert.forward_batches(
            &encodings,
            |_| 0,
            |model: &BertForNextSentencePrediction<'_>, padded, ws, _| {
                let logits = model.forward(&padded.core_batch(), ws)?;
                (0..padded.rows)
                    .map(|i| {
                        let l = logits.row(i);
                        finite(l, "logits")?;
                        Ok(NspPrediction {
                            is_next: softmax(l)[0],
                            logits: [l[0], l[1]],
                        })
                    })
                    .collect()
            },
        )
    }
}
