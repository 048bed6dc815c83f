//! Fill-mask, as HF's `FillMaskPipeline`: for each `[MASK]`, the top-k tokens with their
//! probability, the token's text and the sentence with it filled in.

use std::path::Path;

use serde::Serialize;

use bert_core::BertForMaskedLM;

use crate::batching::Padded;
use crate::check::finite;
use crate::error::{quote, Error, Result};
use crate::loaded::Task;
use crate::pipelines::{softmax, top_k, Pipeline};
use crate::runtime::{Bert, LoadOptions};

/// One candidate for one `[MASK]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub struct FillMaskPrediction {
    /// Probability.
    pub score: f32,
    /// Token id.
    pub token: u32,
    /// The token as text.
    pub token_str: String,
    /// The input with this token in place of the mask.
    pub sequence: String,
}

/// The candidates for one `[MASK]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub struct MaskCandidates {
    /// Index of the `[MASK]` among the text's tokens (with `[CLS]` at 0).
    pub token_index: usize,
    /// The top-k tokens, most probable first.
    pub candidates: Vec<FillMaskPrediction>,
}

/// The fill-mask result for one text: every `[MASK]`, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub struct FillMaskOutput {
    /// One entry per `[MASK]`.
    pub masks: Vec<MaskCandidates>,
}

/// Fill-mask settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillMaskOptions {
    /// Candidates per mask (HF's default 5).
    pub top_k: usize,
}

impl Default for FillMaskOptions {
    fn default() -> Self {
        FillMaskOptions { top_k: 5 }
    }
}

/// The fill-mask pipeline.
#[derive(Debug)]
pub struct FillMask {
    /// The model (a `BertForMaskedLM`).
    pub bert: Bert,
    mask_id: u32,
}

impl FillMask {
    /// Load a masked-LM model directory.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let bert = Bert::load(path, Task::MaskedLm, options)?;
        let mask_id = bert
            .tokenizer
            .special
            .mask
            .ok_or_else(|| Error::Model("the tokenizer has no [MASK] token".into()))?;
        Ok(FillMask { bert, mask_id })
    }

    /// The default masked LM (SPLADE-tiny; see the README for what it is good for), fetched on
    /// first use, or `$BERT_MODEL`.
    pub fn default_model() -> Result<Self> {
        Self::load(
            crate::resolve_model(None, crate::fetch::SPLADE_TINY)?,
            LoadOptions::default(),
        )
    }
}

impl Pipeline for FillMask {
    type Input<'a> = &'a str;
    type Output = FillMaskOutput;
    type Options = FillMaskOptions;

    fn run(&self, texts: &[&str], options: &FillMaskOptions) -> Result<Vec<FillMaskOutput>> {
        let k = options.top_k;
        if k == 0 {
            return Err(Error::Input("top_k must be at least 1".into()));
        }
        let encodings = self.bert.encode_all(texts, |t| {
            let e = self.bert.encode(t, None, usize::MAX)?;
            if !e.get_ids().contains(&self.mask_id) {
                return Err(Error::Input(format!(
                    "no [MASK] token in {} (after truncation to {} tokens)",
                    quote(t),
                    self.bert.max_len()
                )));
            }
            Ok(e)
        })?;
        let tok = &self.bert.tokenizer;
        let vocab = self.bert.dir.config.vocab_size;
        let mask_positions = |padded: &Padded| -> Vec<usize> {
            (0..padded.ids.len())
                .filter(|&i| padded.ids[i] == self.mask_id && padded.mask[i] == 1)
                .collect()
        };
        self.bert.forward_batches(
            &encodings,
            |padded| mask_positions(padded).len(),
            |model: &BertForMaskedLM<'_>, padded, ws, _| {
                let positions = mask_positions(padded);
                let logits = model.forward_at(&padded.core_batch(), &positions, ws)?;
                let mut per_row = vec![FillMaskOutput { masks: Vec::new() }; padded.rows];
                let s = padded.seq;
                for (p, &pos) in positions.iter().enumerate() {
                    let row = pos / s;
                    let ids = &padded.ids[row * s..(row + 1) * s];
                    let single_mask = ids.iter().filter(|&&x| x == self.mask_id).count() == 1;
                    finite(logits.row(p), "logits")?;
                    let probs = softmax(logits.row(p));
                    debug_assert_eq!(probs.len(), vocab);
                    let mut candidates = Vec::with_capacity(k);
                    for t in top_k(&probs, k) {
                        let token = t as u32;
                        let mut filled: Vec<u32> = ids.to_vec();
                        filled[pos % s] = token;
                        filled.retain(|&x| x != tok.special.pad);
                        candidates.push(FillMaskPrediction {
                            score: probs[t],
                            token,
                            token_str: tok.decode(&[token], false)?,
                            sequence: tok.decode(&filled, single_mask)?,
                        });
                    }
                    per_row[row].masks.push(MaskCandidates {
                        token_index: pos % s,
                        candidates,
                    });
                }
                Ok(per_row)
            },
        )
    }
}
