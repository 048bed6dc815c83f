//! Fill-mask, as HF's `FillMaskPipeline`: for each `[MASK]`, the top-k tokens with their
//! probability, the token's text and the sentence with it filled in.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::loaded::{Task, TaskModel};
use crate::pipelines::{softmax, top_k};
use crate::runtime::{Bert, LoadOptions};

/// One candidate for one `[MASK]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

    /// Predictions for each `[MASK]` of one text (outer: masks in order; inner: top-k).
    pub fn fill(&self, text: &str, top_k: usize) -> Result<Vec<Vec<FillMaskPrediction>>> {
        Ok(self.fill_batch(&[text], top_k)?.remove(0))
    }

    /// [`fill`](Self::fill) for many texts, batched and threaded.
    pub fn fill_batch(
        &self,
        texts: &[&str],
        k: usize,
    ) -> Result<Vec<Vec<Vec<FillMaskPrediction>>>> {
        if k == 0 {
            return Err(Error::Input("top_k must be at least 1".into()));
        }
        let encodings = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let e = self
                    .bert
                    .encode(t, None, usize::MAX)
                    .map_err(|e| Error::Input(format!("text {i}: {e}")))?;
                if !e.get_ids().contains(&self.mask_id) {
                    return Err(Error::Input(format!(
                        "text {i}: no [MASK] token in {t:?} (after truncation to {} tokens)",
                        self.bert.max_len()
                    )));
                }
                Ok(e)
            })
            .collect::<Result<Vec<_>>>()?;
        let TaskModel::MaskedLm(model) = self.bert.model() else {
            return Err(Error::Model("not loaded as a masked LM".into()));
        };
        let tok = &self.bert.tokenizer;
        let vocab = self.bert.dir.config.vocab_size;
        self.bert.run_batched(&encodings, |padded, _| {
            let positions: Vec<usize> = (0..padded.ids.len())
                .filter(|&i| padded.ids[i] == self.mask_id && padded.mask[i] == 1)
                .collect();
            let mut ws = model.workspace_at(padded.batch, padded.seq, positions.len())?;
            ws.set_parallelism(rayon::current_num_threads(), &crate::batching::RayonJoin);
            let logits = model.forward_at(&padded.batch(), &positions, &mut ws)?;
            let mut per_row: Vec<Vec<Vec<FillMaskPrediction>>> = vec![Vec::new(); padded.batch];
            let s = padded.seq;
            for (p, &pos) in positions.iter().enumerate() {
                let row = pos / s;
                let ids = &padded.ids[row * s..(row + 1) * s];
                let single_mask = ids.iter().filter(|&&x| x == self.mask_id).count() == 1;
                let probs = softmax(logits.row(p));
                debug_assert_eq!(probs.len(), vocab);
                let mut preds = Vec::with_capacity(k);
                for t in top_k(&probs, k) {
                    let token = t as u32;
                    let mut filled: Vec<u32> = ids.to_vec();
                    filled[pos % s] = token;
                    filled.retain(|&x| x != tok.special.pad);
                    preds.push(FillMaskPrediction {
                        score: probs[t],
                        token,
                        token_str: tok.decode(&[token], false)?,
                        sequence: tok.decode(&filled, single_mask)?,
                    });
                }
                per_row[row].push(preds);
            }
            Ok(per_row)
        })
    }
}
