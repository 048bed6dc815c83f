//! Sentence embeddings with the model directory's pooling (sentence-transformers' `Pooling` and
//! `Normalize` modules). Padding is masked out of every pooling mode.

use std::path::Path;

use bert_core::BertModel;

use tokenizers::Encoding;

use crate::check::finite;
use crate::error::{Error, Result};
use crate::loaded::Task;
use crate::model_dir::{Pooling, PoolingMode};
use crate::pipelines::Pipeline;
use crate::runtime::{Bert, LoadOptions};
use crate::tokenizer::Side;

/// The sentence-embedding pipeline.
#[derive(Debug)]
pub struct SentenceEmbeddings {
    /// The model.
    pub bert: Bert,
}

/// Pool `[seq, hidden]` token vectors whose `mask` is 1 into one vector, then the `Dense`
/// modules and the normalization, if any.
pub fn pool(hidden: &[f32], mask: &[u32], h: usize, pooling: &Pooling) -> Result<Vec<f32>> {
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
        PoolingMode::LastToken => {
            if let Some(r) = rows().next_back() {
                out.copy_from_slice(r);
            }
        }
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
    for dense in &pooling.dense {
        out = dense.forward(&out)?;
    }
    if pooling.normalize {
        l2_normalize(&mut out);
    }
    Ok(out)
}

/// Scale to unit length, as sentence-transformers' `Normalize` (`x / max(‖x‖, 1e-12)`).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|o| *o /= norm);
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

    /// The default model, all-MiniLM-L6-v2 (384 dimensions, mean pooling, normalized), fetched
    /// into the model cache on first use (see [`crate::fetch`]) or taken from `$BERT_MODEL`.
    ///
    /// ```
    /// use bert_std::pipelines::embeddings::SentenceEmbeddings;
    ///
    /// let model = SentenceEmbeddings::default_model()?;
    /// let vectors = model.embed(&["A man is eating food.", "Someone eats."])?;
    /// assert_eq!(vectors[0].len(), 384);
    /// # Ok::<(), bert_std::Error>(())
    /// ```
    pub fn default_model() -> Result<Self> {
        Self::load(
            crate::resolve_model(None, crate::fetch::MINILM)?,
            LoadOptions::default(),
        )
    }

    /// Width of the embeddings (the last `Dense` module's, if any, else the hidden size).
    pub fn dim(&self) -> usize {
        let pooling = &self.bert.dir.pooling;
        pooling
            .dense
            .last()
            .map_or(self.bert.dir.config.hidden_size, |d| d.out_features)
    }

    /// Embed texts (`&[&str]`, `&[String]`, ...): batched, threaded, in input order. Texts
    /// longer than the model's `max_seq_length` (sentence-transformers) or position limit are
    /// truncated. The same as [`Pipeline::run`].
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        self.run(&texts, &())
    }

    /// The longest input in tokens: the model's `max_seq_length` (sentence-transformers) or
    /// position limit, whichever is smaller.
    pub fn max_input_length(&self) -> usize {
        let max = self.bert.max_len();
        self.bert
            .dir
            .pooling
            .max_seq_length
            .map_or(max, |m| m.min(max))
    }

    /// The encodings of `inputs` under `options`, and how many leading tokens of each the
    /// pooling leaves out (a prompt's, when the model's pooling excludes it).
    fn encodings(
        &self,
        inputs: &[EmbedInput<'_>],
        options: &EmbedOptions,
    ) -> Result<(Vec<Encoding>, usize)> {
        let prompt = self
            .bert
            .dir
            .prompts
            .resolve(options.prompt_name.as_deref())?;
        let max_len = self.max_input_length();
        let tok = &self.bert.tokenizer;
        let encode = |input: &EmbedInput<'_>| match input {
            EmbedInput::Text(t) if t.trim().is_empty() => Err(Error::Input("empty text".into())),
            EmbedInput::Text(t) => {
                let text = prompt.map_or_else(|| t.to_string(), |p| format!("{p}{t}"));
                tok.encode_truncated_from(&text, None, max_len, options.truncation)
            }
            EmbedInput::Ids([]) => Err(Error::Input("empty list of token ids".into())),
            EmbedInput::Ids(ids) => tok.encode_ids(ids, max_len, options.truncation),
        };
        let encodings = self.bert.encode_all(inputs, encode)?;
        // sentence-transformers leaves `[CLS]` and the prompt's tokens out of the pooling when
        // `include_prompt` is false (its `prompt_length`: the prompt's tokens with `[CLS]`).
        let skip = match prompt {
            Some(p) if !self.bert.dir.pooling.include_prompt => {
                tok.encode(p, None)?.len().saturating_sub(1)
            }
            _ => 0,
        };
        Ok((encodings, skip))
    }

    /// Embed texts or token ids with a prompt and a truncation side: one pooled vector each
    /// (normalized when the model's pipeline normalizes).
    pub fn embed_inputs(
        &self,
        inputs: &[EmbedInput<'_>],
        options: &EmbedOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let (encodings, skip) = self.encodings(inputs, options)?;
        let pooling = &self.bert.dir.pooling;
        let h = self.bert.dir.config.hidden_size;
        self.bert.forward_batches(
            &encodings,
            |_| 0,
            |model: &BertModel<'_>, padded, ws, _| {
                let out = model.forward(&padded.core_batch(), ws)?;
                let s = padded.seq;
                (0..padded.rows)
                    .map(|b| {
                        let mut mask = padded.mask[b * s..(b + 1) * s].to_vec();
                        mask.iter_mut().take(skip).for_each(|m| *m = 0);
                        let v = pool(
                            &out.last_hidden_state[b * s * h..(b + 1) * s * h],
                            &mask,
                            h,
                            pooling,
                        )?;
                        finite(&v, "embedding")?;
                        Ok(v)
                    })
                    .collect()
            },
        )
    }

    /// Every token's vector (the last hidden state, special tokens included) of each input, as
    /// text-embeddings-inference's `/embed_all` gives them.
    pub fn embed_tokens(
        &self,
        inputs: &[EmbedInput<'_>],
        options: &EmbedOptions,
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let (encodings, _) = self.encodings(inputs, options)?;
        let h = self.bert.dir.config.hidden_size;
        self.bert.forward_batches(
            &encodings,
            |_| 0,
            |model: &BertModel<'_>, padded, ws, _| {
                let out = model.forward(&padded.core_batch(), ws)?;
                let s = padded.seq;
                (0..padded.rows)
                    .map(|b| {
                        let rows = &out.last_hidden_state[b * s * h..(b + 1) * s * h];
                        finite(rows, "token embedding")?;
                        let mask = &padded.mask[b * s..(b + 1) * s];
                        Ok(rows
                            .chunks_exact(h)
                            .zip(mask)
                            .filter(|(_, &m)| m != 0)
                            .map(|(r, _)| r.to_vec())
                            .collect())
                    })
                    .collect()
            },
        )
    }
}

/// One input to embed: a text, or token ids taken as they are (no special tokens added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmbedInput<'a> {
    /// A text.
    Text(&'a str),
    /// Token ids.
    Ids(&'a [u32]),
}

/// How inputs become embeddings (text-embeddings-inference's request options).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmbedOptions {
    /// The prompt put before every text: one of the model's prompts by name
    /// (`config_sentence_transformers.json`), else its default prompt, if any.
    pub prompt_name: Option<String>,
    /// Which end of a too-long input is cut.
    pub truncation: Side,
}

impl Pipeline for SentenceEmbeddings {
    type Input<'a> = &'a str;
    type Output = Vec<f32>;
    type Options = ();

    fn run(&self, texts: &[&str], _: &()) -> Result<Vec<Vec<f32>>> {
        let inputs: Vec<EmbedInput<'_>> = texts.iter().map(|t| EmbedInput::Text(t)).collect();
        self.embed_inputs(&inputs, &EmbedOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pooling_mode_skips_padding() {
        // Three tokens of width 2; the last one is padding.
        let hidden = [1.0, 2.0, 3.0, -4.0, 100.0, 100.0];
        let mask = [1, 1, 0];
        let pooled = |mode, normalize| {
            pool(
                &hidden,
                &mask,
                2,
                &Pooling {
                    mode,
                    normalize,
                    max_seq_length: None,
                    include_prompt: true,
                    dense: Vec::new(),
                },
            )
            .unwrap()
        };
        assert_eq!(pooled(PoolingMode::Cls, false), [1.0, 2.0]);
        assert_eq!(pooled(PoolingMode::LastToken, false), [3.0, -4.0]);
        assert_eq!(pooled(PoolingMode::Mean, false), [2.0, -1.0]);
        assert_eq!(pooled(PoolingMode::Max, false), [3.0, 2.0]);
        let s = pooled(PoolingMode::MeanSqrtLen, false);
        assert!((s[0] - 4.0 / 2f32.sqrt()).abs() < 1e-6);
        assert_eq!(pooled(PoolingMode::LastToken, true), [0.6, -0.8]);
    }
}
