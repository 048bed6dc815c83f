//! Cross-encoder reranking: a query and its candidate passages through a sequence-
//! classification head as (query, passage) pairs; passages come back sorted by relevance. The
//! relevance is the score of the model's last label (the only one of a single-logit
//! cross-encoder, passed through a sigmoid; "relevant" of a two-label one, after a softmax), as
//! sentence-transformers' `CrossEncoder` and text-embeddings-inference's `/rerank` read it.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipelines::classification::TextClassification;
use crate::pipelines::Pipeline;
use crate::runtime::LoadOptions;

/// One passage's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Index of the passage in the input.
    pub index: usize,
    /// Relevance to the query.
    pub score: f32,
}

/// The rerank pipeline.
#[derive(Debug)]
pub struct Reranker {
    /// The cross-encoder.
    pub classifier: TextClassification,
}

impl Reranker {
    /// Load a cross-encoder (a sequence-classification model directory).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(Reranker {
            classifier: TextClassification::load(path, options)?,
        })
    }

    /// The relevance of each (query, passage) pair, in input order.
    pub fn scores(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>> {
        let relevant = self
            .classifier
            .bert
            .dir
            .config
            .id2label
            .last()
            .cloned()
            .ok_or_else(|| Error::Model("the model has no labels".into()))?;
        let pairs: Vec<(&str, Option<&str>)> = passages.iter().map(|p| (query, Some(*p))).collect();
        Ok(self
            .classifier
            .run(&pairs, &Default::default())?
            .into_iter()
            .map(|labels| {
                labels
                    .iter()
                    .find(|l| l.label == relevant)
                    .map_or(0.0, |l| l.score)
            })
            .collect())
    }
}

impl Pipeline for Reranker {
    /// (query, candidate passages).
    type Input<'a> = (&'a str, &'a [&'a str]);
    /// Every passage, most relevant first.
    type Output = Vec<Ranked>;
    type Options = ();

    fn run(&self, inputs: &[(&str, &[&str])], _: &()) -> Result<Vec<Vec<Ranked>>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, (query, passages))| {
                let scores = self.scores(query, passages).map_err(|e| e.at(i))?;
                let mut ranked: Vec<Ranked> = scores
                    .into_iter()
                    .enumerate()
                    .map(|(index, score)| Ranked { index, score })
                    .collect();
                ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
                Ok(ranked)
            })
            .collect()
    }
}
