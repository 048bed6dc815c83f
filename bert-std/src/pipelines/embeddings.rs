//! Sentence embeddings with the model directory's pooling (sentence-transformers' `Pooling` and
//! `Normalize` modules). Padding is masked out of every pooling mode.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::loaded::Task;
use crate::model_dir::{Pooling, PoolingMode};
use crate::runtime::{Bert, LoadOptions};

/// One embedding per text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    /// The vector.
    pub embedding: Vec<f32>,
}

/// The sentence-embedding pipeline.
#[derive(Debug)]
pub struct SentenceEmbeddings {
    /// The model.
    pub bert: Bert,
}

/// Pool `[seq, hidden]` token vectors whose `mask` is 1 into one vector.
pub fn pool(hidden: &[f32], mask: &[u32], h: usize, pooling: &Pooling) -> Vec<f32> {
    let mut out = vec![0.0f32; h];
    let rows = || {
        hidden
            .chunks_exact(h)
            .zip(mask)
            .filter(|(_, &m)| m != 0)
            .map(|(r, _)| r)
    };
    let count = mask.iter().filter(|&&m| m != 0).count().max(1) as f32;
    match pooling.mode {
        PoolingMode::Cls => out.copy_from_slice(&hidden[..h]),
        PoolingMode::Max => {
            out.fill(f32::NEG_INFINITY);
            for r in rows() {
                out.iter_mut().zip(r).for_each(|(o, &x)| *o = o.max(x));
            }
        }
        PoolingMode::Mean | PoolingMode::MeanSqrtLen => {
            for r in rows() {
                out.iter_mut().zip(r).for_each(|(o, &x)| *o += x);
            }
            let div = if pooling.mode == PoolingMode::Mean {
                count
            } else {
                count.sqrt()
            };
            out.iter_mut().for_each(|o| *o /= div);
        }
    }
    if pooling.normalize {
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.iter_mut().for_each(|o| *o /= norm);
    }
    out
}

/// Cosine similarity.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(1e-12)
}

impl SentenceEmbeddings {
    /// Load a model directory (any BERT checkpoint: only the encoder is used).
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(SentenceEmbeddings {
            bert: Bert::load(path, Task::Base, options)?,
        })
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.bert.dir.config.hidden_size
    }

    /// Embed one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = self.embed(&[text])?;
        Ok(v.remove(0))
    }

    /// Embed texts (batched, threaded; results in input order). Texts longer than the model's
    /// `max_seq_length` (sentence-transformers) or position limit are truncated.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        let pooling = &self.bert.dir.pooling;
        let max_len = pooling.max_seq_length.unwrap_or(usize::MAX);
        let encodings = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.bert
                    .encode(t, None, max_len)
                    .map_err(|e| Error::Input(format!("text {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let model = self.bert.model().bert();
        let h = self.dim();
        self.bert.run_batched(&encodings, |padded, _| {
            let mut ws = model.workspace(padded.batch, padded.seq)?;
            ws.set_parallelism(rayon::current_num_threads(), &crate::batching::RayonJoin);
            let out = model.forward(&padded.batch(), &mut ws)?;
            let s = padded.seq;
            Ok((0..padded.batch)
                .map(|b| {
                    pool(
                        &out.last_hidden_state[b * s * h..(b + 1) * s * h],
                        &padded.mask[b * s..(b + 1) * s],
                        h,
                        pooling,
                    )
                })
                .collect())
        })
    }
}
