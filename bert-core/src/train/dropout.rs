//! Dropout in training mode, where HF's BERT has it: after the embeddings' LayerNorm, on the
//! attention probabilities, on the attention output and the feed-forward output before their
//! residual sums (`hidden_dropout_prob`, `attention_probs_dropout_prob` from config.json), and
//! before a classifier (`classifier_dropout`, else `hidden_dropout_prob`).
//!
//! Each kept element is scaled by `1 / (1 - p)`, as `torch.nn.Dropout`. Whether an element is
//! kept is a pure function of (seed, stream, index) ([`keep`]), the index counted in the padded
//! `[batch, seq, ...]` layout HF uses: the masks do not depend on the thread count, a resumed
//! run redraws them alike, and a PyTorch script can rebuild them to check the gradients.

use alloc::vec;
use alloc::vec::Vec;

/// Dropout probabilities and the step's seed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// On hidden states (embeddings, attention output, feed-forward output).
    pub hidden: f32,
    /// On attention probabilities.
    pub attention: f32,
    /// Before a classifier head.
    pub classifier: f32,
    /// After the embeddings, when it differs from `hidden` (ModernBERT's `embedding_dropout`;
    /// there `hidden` is `mlp_dropout`, on the gated product before the feed-forward's output
    /// layer, and `attention` is also on the attention's output).
    pub embedding: Option<f32>,
    /// The seed of this step's masks (change it every step).
    pub seed: u64,
}

/// The stream of the embeddings' mask.
pub const EMBEDDINGS_STREAM: u64 = 0;
/// The stream of the classifier's mask.
pub const CLASSIFIER_STREAM: u64 = 1 << 20;
/// The stream of the mask on a sentence-level head's input (RoBERTa's and ELECTRA's
/// classification heads drop out the first token's row before their dense layer too).
pub const CLASSIFIER_INPUT_STREAM: u64 = CLASSIFIER_STREAM + 1;

/// The streams of layer `l`: attention probabilities, attention output, feed-forward output.
pub fn layer_streams(l: usize) -> [u64; 3] {
    let b = 1 + 3 * l as u64;
    [b, b + 1, b + 2]
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether element `index` of `stream` survives dropout with probability `p` under `seed`:
/// a uniform draw in [0, 1) from SplitMix64 of the three, kept when ≥ `p`.
pub fn keep(seed: u64, stream: u64, index: u64, p: f32) -> bool {
    let z = splitmix64(
        seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03),
    );
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64) >= p as f64
}

/// The multiplier of an element: `1 / (1 - p)` when kept, 0 when dropped.
pub fn factor(seed: u64, stream: u64, index: u64, p: f32) -> f32 {
    if keep(seed, stream, index, p) {
        1.0 / (1.0 - p)
    } else {
        0.0
    }
}

/// The masks of one step (multipliers), in the layouts of the saved activations.
#[derive(Debug, Clone, Default)]
pub(crate) struct Masks {
    pub(crate) embeddings: Vec<f32>,
    /// Per layer: attention probabilities (as `PostNormSaved::probs`), attention output, FFN
    /// output (a pre-norm layer's: the gated product, `[tokens, intermediate]`).
    pub(crate) layers: Vec<[Vec<f32>; 3]>,
    pub(crate) classifier: Vec<f32>,
    /// On the first token's rows before a classification head's dense layer.
    pub(crate) classifier_input: Vec<f32>,
}

impl Masks {
    pub(crate) fn new(
        layers: usize,
        (rows_h, ffn): (usize, usize),
        probs: usize,
        head: usize,
    ) -> Self {
        Masks {
            embeddings: vec![0.0; rows_h],
            layers: (0..layers)
                .map(|_| [vec![0.0; probs], vec![0.0; rows_h], vec![0.0; ffn]])
                .collect(),
            classifier: vec![0.0; head],
            classifier_input: vec![0.0; head],
        }
    }
}

/// `x[r, j] *= mask` for the packed rows: element `(packed[r], j)` of `stream`.
pub(crate) fn fill_rows(
    mask: &mut [f32],
    packed: &[u32],
    h: usize,
    (seed, stream, p): (u64, u64, f32),
) {
    for (r, row) in mask.chunks_exact_mut(h).take(packed.len()).enumerate() {
        let base = packed[r] as u64 * h as u64;
        for (j, m) in row.iter_mut().enumerate() {
            *m = factor(seed, stream, base + j as u64, p);
        }
    }
}

/// `a[i] *= m[i]`.
pub(crate) fn apply(a: &mut [f32], m: &[f32]) {
    crate::model::saves::apply_mask(a, m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_about_one_minus_p_and_depends_on_every_input() {
        let kept = (0..20_000u64).filter(|&i| keep(7, 3, i, 0.1)).count();
        assert!((17_600..18_400).contains(&kept), "{kept}");
        let same = |s: u64, st: u64| (0..64u64).map(|i| keep(s, st, i, 0.5)).collect::<Vec<_>>();
        assert_ne!(same(1, 0), same(2, 0));
        assert_ne!(same(1, 0), same(1, 1));
        assert!((0..1000u64).all(|i| keep(5, 0, i, 0.0)));
        assert_eq!(factor(1, 1, 1, 0.0), 1.0);
    }
}
