//! SPLADE sparse embeddings: a masked-LM head's vocabulary logits turned into one weight per
//! term, `max over tokens of log(1 + ReLU(logits))` (the core's
//! [`forward_sparse`](bert_core::BertForMaskedLM::forward_sparse)), kept as the non-zero terms,
//! heaviest first. The pinned SPLADE-tiny is such a model.

use std::path::Path;

use bert_core::BertForMaskedLM;
use serde::Serialize;

use tokenizers::Encoding;

use crate::check::finite;
use crate::error::{Error, Result};
use crate::loaded::Task;
use crate::pipelines::embeddings::EmbedOptions;
use crate::pipelines::{top_k, Pipeline};
use crate::runtime::{Bert, LoadOptions};

/// The sparse vector of one text: parallel lists, heaviest term first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SparseVector {
    /// Vocabulary ids.
    pub indices: Vec<u32>,
    /// Their weights (> 0).
    pub values: Vec<f32>,
    /// The terms as text.
    pub terms: Vec<String>,
}

/// Sparse-embedding settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SparseOptions {
    /// Keep only the `top_k` heaviest terms (`None`: every non-zero term).
    pub top_k: Option<usize>,
}

/// The SPLADE pipeline.
#[derive(Debug)]
pub struct SparseEmbeddings {
    /// The model (a `BertForMaskedLM`).
    pub bert: Bert,
}

impl SparseEmbeddings {
    /// Load a masked-LM model directory.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(SparseEmbeddings {
            bert: Bert::load(path, Task::MaskedLm, options)?,
        })
    }

    /// SPLADE-tiny, fetched on first use, or `$BERT_MODEL`.
    pub fn default_model() -> Result<Self> {
        Self::load(
            crate::resolve_model(None, crate::fetch::SPLADE_TINY)?,
            LoadOptions::default(),
        )
    }
}

impl Pipeline for SparseEmbeddings {
    type Input<'a> = &'a str;
    type Output = SparseVector;
    type Options = SparseOptions;

    fn run(&self, texts: &[&str], options: &SparseOptions) -> Result<Vec<SparseVector>> {
        if options.top_k == Some(0) {
            return Err(Error::Input("top_k must be at least 1".into()));
        }
        let encodings = self
            .bert
            .encode_all(texts, |t| self.bert.encode(t, None, usize::MAX))?;
        self.sparse(&encodings, options.top_k)
    }
}

impl SparseEmbeddings {
    /// Every non-zero term of each text, heaviest first, with a prompt (one of the model's, by
    /// name) put before the text and long texts cut at `options.truncation`, as
    /// text-embeddings-inference's `/embed_sparse` does.
    pub fn embed_sparse(
        &self,
        texts: &[&str],
        options: &EmbedOptions,
    ) -> Result<Vec<SparseVector>> {
        let prompt = self
            .bert
            .dir
            .prompts
            .resolve(options.prompt_name.as_deref())?;
        let encodings = self.bert.encode_all(texts, |t| {
            if t.trim().is_empty() {
                return Err(Error::Input("empty text".into()));
            }
            let text = prompt.map_or_else(|| t.to_string(), |p| format!("{p}{t}"));
            self.bert
                .encode_from(&text, None, usize::MAX, options.truncation)
        })?;
        self.sparse(&encodings, None)
    }

    fn sparse(&self, encodings: &[Encoding], top: Option<usize>) -> Result<Vec<SparseVector>> {
        let v = self.bert.dir.config.vocab_size;
        let tok = &self.bert.tokenizer;
        let weights: Vec<Vec<f32>> = self.bert.forward_batches(
            encodings,
            |_| bert_core::sparse::SPARSE_ROWS,
            |model: &BertForMaskedLM<'_>, padded, ws, _| {
                let mut out = vec![0.0f32; padded.rows * v];
                model.forward_sparse(&padded.core_batch(), ws, &mut out)?;
                finite(&out, "sparse weights")?;
                Ok(out.chunks_exact(v).map(<[f32]>::to_vec).collect())
            },
        )?;
        weights
            .into_iter()
            .map(|w| {
                let nonzero = w.iter().filter(|&&x| x > 0.0).count();
                let k = top.unwrap_or(nonzero).min(nonzero);
                let indices: Vec<u32> = top_k(&w, k).into_iter().map(|i| i as u32).collect();
                Ok(SparseVector {
                    values: indices.iter().map(|&i| w[i as usize]).collect(),
                    terms: indices
                        .iter()
                        .map(|&i| tok.id_to_token(i).unwrap_or_default())
                        .collect(),
                    indices,
                })
            })
            .collect()
    }
}
