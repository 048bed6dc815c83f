//! Pipelines shaped like HF's: each takes text and returns what `transformers.pipeline(...)`
//! returns, computed by the core's model.
//!
//! Every pipeline has one shape, the [`Pipeline`] trait: `run(&inputs, &options)` for a batch
//! (threaded, length-bucketed, results in input order) and `run_one(input, &options)` for one
//! input. All of them stand on [`crate::Bert::forward_batches`], which keeps their workspaces
//! between calls. A failed input is reported as [`crate::Error::Item`] with its position.
//!
//! ```
//! use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
//! use bert_std::Pipeline;
//!
//! let fm = FillMask::default_model()?; // SPLADE-tiny, fetched once on first use
//! let outs = fm.run(&["a [MASK] of tea", "the [MASK] is red"], &FillMaskOptions { top_k: 3 })?;
//! assert_eq!(outs.len(), 2);
//! assert_eq!(outs[0].masks[0].candidates.len(), 3);
//! # Ok::<(), bert_std::Error>(())
//! ```

use crate::error::Result;

/// What every pipeline is: inputs in, one output per input.
pub trait Pipeline {
    /// One input (a text, a pair of texts, a question and its context).
    type Input<'a>;
    /// The result for one input.
    type Output;
    /// Call-time settings (`top_k`, aggregation, QA windows, ...), with HF's defaults.
    type Options: Default;

    /// Run every input (batched and threaded); results in input order.
    fn run(&self, inputs: &[Self::Input<'_>], options: &Self::Options)
        -> Result<Vec<Self::Output>>;

    /// Run one input.
    fn run_one(&self, input: Self::Input<'_>, options: &Self::Options) -> Result<Self::Output> {
        let mut out = self.run(std::slice::from_ref(&input), options)?;
        Ok(out.remove(0))
    }
}

pub mod classification;
pub mod embeddings;
pub mod fill_mask;
pub mod ner;
pub mod nsp;
pub mod qa;
pub mod rerank;
pub mod sparse;

/// Softmax of a row (max-subtracted), in f32 as the reference pipelines compute it.
pub fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// `1 / (1 + e^-x)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    let cmp = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, cmp);
        idx.truncate(k);
    }
    idx.sort_by(cmp);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[0.1, 0.5, 0.5, 0.2], 3), vec![1, 2, 3]);
        assert_eq!(top_k(&[1.0], 5), vec![0]);
        let p = softmax(&[1.0, 2.0, 3.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6 && p[2] > p[1]);
    }
}
