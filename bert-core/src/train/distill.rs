//! Sentence-embedding distillation, forward with saved activations and backward by hand: the
//! student's encoder → mean pooling over the real tokens (sentence-transformers' `Pooling`) →
//! an optional `Dense` projection (identity activation, to the teacher's width) → mean squared
//! error against the teacher's embeddings (`torch.nn.MSELoss()`, as sentence-transformers'
//! `MSELoss` for model distillation).
//!
//! ```
//! use bert_core::train::distill::{DistillTrainer, SentenceEncoder};
//! use bert_core::{Batch, BertConfig, Weights};
//! # let (config, bytes) = bert_core::train::distill::doc_model();
//! let weights = Weights::from_buffers(&[&bytes])?;
//! let config = BertConfig::from_json(&config)?;
//! let student = SentenceEncoder::load(&config, &weights, Some(("projection", 6)))?;
//! let trainer = DistillTrainer::new(&student)?;
//! let mut grads = trainer.grads();
//! let mut ws = trainer.workspace(1, 4)?;
//! let teacher = [0.5f32; 6]; // one target embedding per sequence
//! let loss = trainer.loss_and_grads(&Batch::single(&[2, 5, 3]), &teacher, &mut ws, &mut grads)?;
//! assert!(loss > 0.0);
//! # Ok::<(), bert_core::Error>(())
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::encoder::{
    check_trainable, encoder_backward, encoder_forward, encoder_grads, encoder_slots, weight,
};
use super::ops::linear_backward;
use super::params::{bert_params, linear, Parameters, Visit};
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::model::{Batch, BertModel};
use crate::nn::Linear;
use crate::weights::Weights;

/// A sentence encoder as sentence-transformers builds one: the encoder, mean pooling over the
/// real tokens, then an optional linear projection (`Dense` with the identity activation).
#[derive(Debug)]
pub struct SentenceEncoder<'a> {
    /// The encoder (a pooler, if the checkpoint has one, is not used).
    pub bert: BertModel<'a>,
    /// `[out, hidden]` and its bias, if the embedding is projected.
    pub projection: Option<Linear<'a>>,
}

impl<'a> SentenceEncoder<'a> {
    /// The encoder, and `projection` = (name, width) as `{name}.weight` `[width, hidden]` and
    /// `{name}.bias` when given.
    pub fn load(
        config: &BertConfig,
        weights: &Weights<'a>,
        projection: Option<(&str, usize)>,
    ) -> Result<Self> {
        let bert = BertModel::load(config, weights)?;
        let projection = projection
            .map(|(name, width)| Linear::load(weights, name, config.hidden_size, width))
            .transpose()?;
        Ok(SentenceEncoder { bert, projection })
    }

    /// The embedding's width: the projection's, else the hidden size.
    pub fn width(&self) -> usize {
        self.projection
            .as_ref()
            .map_or(self.bert.config.hidden_size, Linear::out_features)
    }
}

impl Parameters for SentenceEncoder<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let SentenceEncoder { bert, projection } = self;
        bert_params(bert, false, visit)?;
        if let Some(p) = projection {
            linear(p, visit)?;
        }
        Ok(())
    }
}

/// An in-batch ranking loss over pairs of the batch's sequences (sentence-transformers'
/// `MultipleNegativesRankingLoss`): for each pair (anchor, positive), the cross-entropy of
/// `scale × cosine(anchor, positive of every pair)` with its own positive as the answer, mean
/// over pairs, times `weight`, added to the mean squared error.
#[derive(Debug, Clone, Copy)]
pub struct InBatchPairs<'p> {
    /// (anchor row, positive row) of the batch.
    pub pairs: &'p [(usize, usize)],
    /// The cosines' scale (sentence-transformers' default: 20).
    pub scale: f32,
    /// The loss's weight beside the mean squared error.
    pub weight: f32,
}

/// The loss of [`InBatchPairs`] on the embeddings `y` (`[rows, width]`); adds its gradient to
/// `dy`. `scratch` is grown to `pairs² + rows` floats once.
pub fn in_batch_pairs_loss(
    y: &[f32],
    width: usize,
    p: &InBatchPairs<'_>,
    dy: &mut [f32],
    scratch: &mut Vec<f32>,
) -> Result<f32> {
    let rows = y.len() / width.max(1);
    let n = p.pairs.len();
    if n == 0 {
        return Ok(0.0);
    }
    if let Some(&(a, b)) = p.pairs.iter().find(|&&(a, b)| a >= rows || b >= rows) {
        return Err(Error::InvalidInput(format!(
            "pair ({a}, {b}) in a batch of {rows} sequences"
        )));
    }
    if scratch.len() < n * n + rows {
        scratch.resize(n * n + rows, 0.0);
    }
    let (sims, norms) = scratch.split_at_mut(n * n);
    let row = |i: usize| &y[i * width..(i + 1) * width];
    for (i, norm) in norms[..rows].iter_mut().enumerate() {
        *norm = libm::sqrtf(row(i).iter().map(|v| v * v).sum::<f32>()).max(1e-12);
    }
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for (i, &(a, _)) in p.pairs.iter().enumerate() {
        for (j, &(_, b)) in p.pairs.iter().enumerate() {
            sims[i * n + j] = p.scale * dot(row(a), row(b)) / (norms[a] * norms[b]);
        }
    }
    // Softmax over each anchor's row, then dL/dsim = (softmax - onehot) * weight / n.
    let mut loss = 0.0f64;
    for i in 0..n {
        let r = &mut sims[i * n..(i + 1) * n];
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = r.iter().map(|&v| libm::exp((v - max) as f64)).sum();
        loss += max as f64 + libm::log(sum) - r[i] as f64;
        for (j, v) in r.iter_mut().enumerate() {
            let soft = (libm::exp((*v - max) as f64) / sum) as f32;
            *v = (soft - if i == j { 1.0 } else { 0.0 }) * p.weight / n as f32;
        }
    }
    // sim_ij = scale · âᵢ·b̂ⱼ; d/dx of x̂ = (g − x̂ (x̂·g)) / ‖x‖.
    let add = |target: usize, other: usize, g: f32, dy: &mut [f32]| {
        let (x, o) = (row(target), row(other));
        let (nx, no) = (norms[target], norms[other]);
        let c = dot(x, o) / (nx * no);
        let k = g * p.scale / nx;
        for ((d, &xv), &ov) in dy[target * width..(target + 1) * width]
            .iter_mut()
            .zip(x)
            .zip(o)
        {
            *d += k * (ov / no - c * xv / nx);
        }
    };
    for (i, &(a, _)) in p.pairs.iter().enumerate() {
        for (j, &(_, b)) in p.pairs.iter().enumerate() {
            let g = sims[i * n + j];
            add(a, b, g, dy);
            add(b, a, g, dy);
        }
    }
    Ok((loss / n as f64) as f32 * p.weight)
}

/// Training for [`SentenceEncoder`] against a teacher's embeddings.
#[derive(Debug)]
pub struct DistillTrainer<'m, 'a> {
    model: &'m SentenceEncoder<'a>,
    /// The projection's gradient slot, if any.
    projection_slot: usize,
}

impl<'m, 'a> DistillTrainer<'m, 'a> {
    /// A trainer for `model`: f32 weights (either block; the goldens cover BERT and
    /// ELECTRA students).
    pub fn new(model: &'m SentenceEncoder<'a>) -> Result<Self> {
        check_trainable(&model.bert)?;
        let projection_slot = encoder_slots(&model.bert);
        Ok(DistillTrainer {
            model,
            projection_slot,
        })
    }

    /// The gradient buffers, named as PyTorch names them (the projection as `{name}` was
    /// loaded: its name is given here).
    pub fn grads_named(&self, projection: &str) -> Grads {
        let mut g = Grads::default();
        encoder_grads(&self.model.bert, &mut g);
        g.strip_prefix(crate::families::names(self.model.bert.config.arch.family).prefix);
        if let Some(p) = &self.model.projection {
            let (n, k) = (p.out_features(), p.in_features());
            g.push(format!("{projection}.weight"), &[n, k]);
            g.push(format!("{projection}.bias"), &[n]);
        }
        g
    }

    /// [`grads_named`](Self::grads_named) with the projection called `projection`.
    pub fn grads(&self) -> Grads {
        self.grads_named("projection")
    }

    /// Buffers for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<TrainWorkspace> {
        // The projected embeddings ([batch, width]) live in the logits buffer, which holds
        // `rows × labels`: ask for enough labels that `max_batch × width` fits.
        let width = self.model.width();
        TrainWorkspace::new(
            &self.model.bert,
            width.div_ceil(max_seq.max(1)),
            max_batch,
            max_seq,
        )
    }

    /// The embeddings of the last [`forward`](Self::forward), `[batch, width]`.
    pub fn embeddings<'w>(&self, ws: &'w TrainWorkspace, batch_size: usize) -> &'w [f32] {
        let width = self.model.width();
        match self.model.projection {
            Some(_) => &ws.logits[..batch_size * width],
            None => &ws.pooled[..batch_size * width],
        }
    }

    /// The mean squared error of `batch`'s embeddings against `targets` (`[batch, width]`,
    /// row-major), and every parameter's gradient, added to `grads`.
    pub fn loss_and_grads(
        &self,
        batch: &Batch<'_>,
        targets: &[f32],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<f32> {
        let loss = self.forward(batch, targets, ws)?;
        self.backward(batch, targets, ws, grads)?;
        Ok(loss)
    }

    /// [`loss_and_grads`](Self::loss_and_grads) plus the loss of `pairs`: returns (mean
    /// squared error, pair loss), the gradient of their sum added to `grads`.
    pub fn loss_and_grads_with_pairs(
        &self,
        batch: &Batch<'_>,
        targets: &[f32],
        pairs: &InBatchPairs<'_>,
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<(f32, f32)> {
        let mse = self.forward(batch, targets, ws)?;
        let pair_loss = self.backward_with(batch, targets, Some(pairs), ws, grads)?;
        Ok((mse, pair_loss))
    }

    /// The forward pass, saving activations: mean pooling, the projection; returns the mean
    /// squared error against `targets`.
    pub fn forward(
        &self,
        batch: &Batch<'_>,
        targets: &[f32],
        ws: &mut TrainWorkspace,
    ) -> Result<f32> {
        let m = self.model;
        let (h, width, bsz) = (m.bert.config.hidden_size, m.width(), batch.batch_size);
        batch.validate(&m.bert.config)?;
        if bsz > ws.max_batch || batch.seq_len > ws.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (bsz, batch.seq_len),
                capacity: (ws.max_batch, ws.max_seq),
            });
        }
        if targets.len() != bsz * width {
            return Err(Error::LengthMismatch {
                what: "teacher embeddings",
                len: targets.len(),
                expected: bsz * width,
            });
        }
        encoder_forward(&m.bert, batch, ws)?;
        for b in 0..bsz {
            let (r0, r1) = (ws.offsets[b], ws.offsets[b + 1]);
            let pooled = &mut ws.pooled[b * h..(b + 1) * h];
            pooled.fill(0.0);
            for row in ws.x[r0 * h..r1 * h].chunks_exact(h) {
                pooled.iter_mut().zip(row).for_each(|(p, x)| *p += x);
            }
            let n = (r1 - r0) as f32;
            pooled.iter_mut().for_each(|p| *p /= n);
        }
        if let Some(p) = &m.projection {
            p.forward(
                &ws.pooled[..bsz * h],
                bsz,
                &mut ws.logits,
                &mut ws.lanes[0].gemm,
            );
        }
        let out = self.embeddings(ws, bsz);
        let total: f64 = out
            .iter()
            .zip(targets)
            .map(|(&y, &t)| {
                let e = (y - t) as f64;
                e * e
            })
            .sum();
        Ok((total / (bsz * width) as f64) as f32)
    }

    /// The backward of the last [`forward`](Self::forward), added to `grads`.
    pub fn backward(
        &self,
        batch: &Batch<'_>,
        targets: &[f32],
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<()> {
        self.backward_with(batch, targets, None, ws, grads)
            .map(|_| ())
    }

    /// The backward of the mean squared error and, if given, the pair loss (returned).
    fn backward_with(
        &self,
        batch: &Batch<'_>,
        targets: &[f32],
        pairs: Option<&InBatchPairs<'_>>,
        ws: &mut TrainWorkspace,
        grads: &mut Grads,
    ) -> Result<f32> {
        let m = self.model;
        let (h, width, bsz) = (m.bert.config.hidden_size, m.width(), batch.batch_size);
        let scale = 2.0 / (bsz * width) as f32;
        let n = bsz * width;
        let out = match m.projection {
            Some(_) => &ws.logits[..n],
            None => &ws.pooled[..n],
        };
        for ((d, &y), &t) in ws.dlogits[..n].iter_mut().zip(out).zip(targets) {
            *d = scale * (y - t);
        }
        let pair_loss = match pairs {
            Some(p) => {
                in_batch_pairs_loss(out, width, p, &mut ws.dlogits[..n], &mut ws.pair_scratch)?
            }
            None => 0.0,
        };
        let dy = &ws.dlogits[..n];
        match &m.projection {
            Some(p) => {
                let (gw, gb) = grads.pair(self.projection_slot, self.projection_slot + 1);
                linear_backward(
                    &ws.pooled,
                    weight(p)?,
                    dy,
                    bsz,
                    h,
                    width,
                    Some((&mut ws.dpooled, false)),
                    gw,
                    Some(gb),
                    &mut ws.lanes[0].gemm,
                );
            }
            None => ws.dpooled[..n].copy_from_slice(dy),
        }
        // Mean pooling: every real row of a sequence gets its pooled gradient over its length.
        for b in 0..bsz {
            let (r0, r1) = (ws.offsets[b], ws.offsets[b + 1]);
            let inv = 1.0 / (r1 - r0) as f32;
            let g = &ws.dpooled[b * h..(b + 1) * h];
            for row in ws.dx[r0 * h..r1 * h].chunks_exact_mut(h) {
                row.iter_mut().zip(g).for_each(|(d, &g)| *d = g * inv);
            }
        }
        encoder_backward(&m.bert, batch, ws, grads)?;
        Ok(pair_loss)
    }
}

/// A tiny seeded BERT (2 layers, hidden 8) with a 6-wide projection, for the doc example.
#[doc(hidden)]
pub fn doc_model() -> (String, Vec<u8>) {
    use crate::safetensors::{serialize, Dtype};
    let config = r#"{"vocab_size": 8, "hidden_size": 8, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 8,
        "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#;
    let mut rng = crate::rng::Rng::new(3);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, fill: Option<f32>| {
        let n: usize = shape.iter().product();
        let bytes = (0..n)
            .flat_map(|_| {
                let v = fill.unwrap_or_else(|| (rng.next_f64() as f32 - 0.5) * 0.4);
                v.to_le_bytes()
            })
            .collect();
        tensors.push((name, shape, bytes));
    };
    for (name, rows) in [("word", 8), ("position", 8), ("token_type", 2)] {
        add(
            format!("embeddings.{name}_embeddings.weight"),
            alloc::vec![rows, 8],
            None,
        );
    }
    let norm = |add: &mut dyn FnMut(String, Vec<usize>, Option<f32>), p: &str| {
        add(format!("{p}.LayerNorm.weight"), alloc::vec![8], Some(1.0));
        add(format!("{p}.LayerNorm.bias"), alloc::vec![8], Some(0.0));
    };
    norm(&mut add, "embeddings");
    for l in 0..2 {
        let p = format!("encoder.layer.{l}");
        for (name, n, k) in [
            ("attention.self.query", 8, 8),
            ("attention.self.key", 8, 8),
            ("attention.self.value", 8, 8),
            ("attention.output.dense", 8, 8),
            ("intermediate.dense", 16, 8),
            ("output.dense", 8, 16),
        ] {
            add(format!("{p}.{name}.weight"), alloc::vec![n, k], None);
            add(format!("{p}.{name}.bias"), alloc::vec![n], None);
        }
        norm(&mut add, &format!("{p}.attention.output"));
        norm(&mut add, &format!("{p}.output"));
    }
    add(String::from("projection.weight"), alloc::vec![6, 8], None);
    add(String::from("projection.bias"), alloc::vec![6], None);
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = tensors
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, &s[..], &b[..]))
        .collect();
    (
        String::from(config),
        serialize(&views, &[]).expect("a valid file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// The analytic gradient of a few parameters against central differences of the loss.
    #[test]
    fn gradients_match_finite_differences() {
        let (config, bytes) = doc_model();
        let config = BertConfig::from_json(&config).unwrap();
        let weights = Weights::from_buffers(&[&bytes]).unwrap();
        let mut model = SentenceEncoder::load(&config, &weights, Some(("projection", 6))).unwrap();
        let ids = [2u32, 5, 3, 1, 4, 0];
        let mask = [1u32, 1, 1, 1, 1, 0];
        let batch = Batch {
            input_ids: &ids,
            attention_mask: Some(&mask),
            token_type_ids: None,
            batch_size: 2,
            seq_len: 3,
        };
        let targets: Vec<f32> = (0..12).map(|i| (i as f32 * 0.37).sin()).collect();
        let (grads, loss) = {
            let trainer = DistillTrainer::new(&model).unwrap();
            let mut grads = trainer.grads();
            let mut ws = trainer.workspace(2, 3).unwrap();
            let loss = trainer
                .loss_and_grads(&batch, &targets, &mut ws, &mut grads)
                .unwrap();
            (grads, loss)
        };
        assert!(loss > 0.0);
        let names: Vec<String> = grads.layout().map(|(n, _)| String::from(n)).collect();
        let loss_at = |model: &SentenceEncoder<'_>| {
            let trainer = DistillTrainer::new(model).unwrap();
            let mut ws = trainer.workspace(2, 3).unwrap();
            trainer.forward(&batch, &targets, &mut ws).unwrap() as f64
        };
        // Every tensor at three places; under Miri (slow: ~30 s a loss) one place of every
        // fifth tensor.
        let every = if cfg!(miri) { 5 } else { 1 };
        for (pi, name) in names.iter().enumerate().step_by(every) {
            let want = grads.get(name).unwrap().to_vec();
            let places = [0usize, want.len() / 2, want.len() - 1];
            for &k in &places[..if cfg!(miri) { 1 } else { 3 }] {
                let eps = 1e-2f32;
                let mut at = |delta: f32| {
                    let mut params = model.param_list().unwrap();
                    params[pi][k] += delta;
                    drop(params);
                    loss_at(&model)
                };
                let up = at(eps);
                let down = at(-2.0 * eps);
                at(eps);
                let numeric = (up - down) / (2.0 * eps as f64);
                let diff = (numeric - want[k] as f64).abs();
                assert!(
                    diff < 2e-3 + 2e-2 * numeric.abs(),
                    "{name}[{k}]: analytic {} vs numeric {numeric}",
                    want[k]
                );
            }
        }
    }

    #[test]
    fn pair_loss_gradient_matches_finite_differences() {
        let y: Vec<f32> = (0..5 * 4)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let pairs = [(0, 1), (2, 3), (4, 0)];
        let p = InBatchPairs {
            pairs: &pairs,
            scale: 5.0,
            weight: 0.7,
        };
        let mut scratch = Vec::new();
        let mut dy = vec![0.0f32; y.len()];
        let loss = in_batch_pairs_loss(&y, 4, &p, &mut dy, &mut scratch).unwrap();
        assert!(loss > 0.0);
        for k in 0..y.len() {
            let at = |delta: f32| {
                let mut y2 = y.clone();
                y2[k] += delta;
                let mut d = vec![0.0f32; y.len()];
                in_batch_pairs_loss(&y2, 4, &p, &mut d, &mut Vec::new()).unwrap() as f64
            };
            let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
            assert!(
                (numeric - dy[k] as f64).abs() < 2e-3,
                "{k}: {} vs {numeric}",
                dy[k]
            );
        }
        let bad = InBatchPairs {
            pairs: &[(0, 9)],
            ..p
        };
        assert!(in_batch_pairs_loss(&y, 4, &bad, &mut dy, &mut scratch).is_err());
    }

    #[test]
    fn wrong_target_count_is_an_error() {
        let (config, bytes) = doc_model();
        let config = BertConfig::from_json(&config).unwrap();
        let weights = Weights::from_buffers(&[&bytes]).unwrap();
        let model = SentenceEncoder::load(&config, &weights, None).unwrap();
        let trainer = DistillTrainer::new(&model).unwrap();
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(1, 4).unwrap();
        let err = trainer
            .loss_and_grads(&Batch::single(&[2, 5]), &[0.0; 3], &mut ws, &mut grads)
            .unwrap_err();
        assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
    }
}
