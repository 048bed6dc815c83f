//! A linear classifier trained on frozen sentence embeddings: the part of a model a
//! microcontroller can learn in its own RAM. `logits = W·x + b`; the loss is softmax
//! cross-entropy averaged over the batch (`torch.nn.CrossEntropyLoss`), its backward written
//! out beside the forward; the update is the core's [`AdamW`]. Steps are full-batch from zero
//! weights, so a device and a host that run the same steps on the same embeddings end with the
//! same bits (the firmware in `firmware/stm32f405-student` checks exactly that).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::optim::AdamW;
use super::Grads;
use crate::error::{Error, Result};
use crate::kernels::math::exp;

/// `classes` rows of `dim` weights and a bias per class (PyTorch's `nn.Linear(dim, classes)`).
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// Input width.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// `[classes, dim]`, row-major.
    pub weight: Vec<f32>,
    /// `[classes]`.
    pub bias: Vec<f32>,
}

impl LinearHead {
    /// All weights and biases zero (the training's deterministic start).
    pub fn zeros(dim: usize, classes: usize) -> Self {
        LinearHead {
            dim,
            classes,
            weight: vec![0.0; dim * classes],
            bias: vec![0.0; classes],
        }
    }

    /// `out[c] = W[c]·x + b[c]`, summed in index order.
    pub fn logits(&self, x: &[f32], out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate().take(self.classes) {
            let row = &self.weight[c * self.dim..(c + 1) * self.dim];
            let dot = row.iter().zip(x).fold(0.0f32, |acc, (w, x)| acc + w * x);
            *o = dot + self.bias[c];
        }
    }

    /// The class with the largest logit (the first of equals), given a `classes`-long buffer.
    pub fn predict(&self, x: &[f32], logits: &mut [f32]) -> usize {
        self.logits(x, logits);
        (0..self.classes).fold(0, |best, c| if logits[c] > logits[best] { c } else { best })
    }
}

/// What training a [`LinearHead`] keeps between steps: its gradients, AdamW's moments, and one
/// row of logits. Everything is allocated here, once.
#[derive(Debug, Clone)]
pub struct HeadTraining {
    grads: Grads,
    adam: AdamW,
    logits: Vec<f32>,
}

impl HeadTraining {
    /// Zero gradients and moments for `head`; AdamW with torch's defaults and `weight_decay`
    /// on the weight only (HF's groups: never on biases).
    pub fn new(head: &LinearHead, weight_decay: f32) -> Self {
        let mut grads = Grads::default();
        grads.push("classifier.weight".into(), &[head.classes, head.dim]);
        grads.push("classifier.bias".into(), &[head.classes]);
        let adam = AdamW::new(&grads, weight_decay);
        HeadTraining {
            grads,
            adam,
            logits: vec![0.0; head.classes],
        }
    }

    /// The gradients of the last step (`classifier.weight`, `classifier.bias`).
    pub fn grads(&self) -> &Grads {
        &self.grads
    }

    /// One full-batch step on `features` (`[labels.len(), dim]`): the mean cross-entropy
    /// before the update, then `W`, `b` moved by AdamW at learning rate `lr`.
    pub fn step(
        &mut self,
        head: &mut LinearHead,
        features: &[f32],
        labels: &[u32],
        lr: f32,
    ) -> Result<f32> {
        let loss = self.backward(head, features, labels)?;
        let mut params = [head.weight.as_mut_slice(), head.bias.as_mut_slice()];
        self.adam.step(&mut params, &self.grads, lr);
        Ok(loss)
    }

    /// The mean cross-entropy and its gradients (into `self.grads`), without an update.
    pub fn backward(&mut self, head: &LinearHead, features: &[f32], labels: &[u32]) -> Result<f32> {
        let (n, d, k) = (labels.len(), head.dim, head.classes);
        if n == 0 || features.len() != n * d {
            return Err(Error::InvalidInput(format!(
                "{} feature values for {n} labels of width {d}",
                features.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&y| y as usize >= k) {
            return Err(Error::InvalidInput(format!(
                "label {bad} for a head of {k} classes"
            )));
        }
        self.grads.zero();
        let (dw, db) = self.grads.pair(0, 1);
        let mut loss = 0.0f32;
        for (x, &y) in features.chunks_exact(d).zip(labels) {
            // Forward: logits, then a softmax that subtracts the largest logit.
            head.logits(x, &mut self.logits);
            let max = self.logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
            let mut total = 0.0f32;
            for l in self.logits.iter_mut() {
                *l = exp(*l - max);
                total += *l;
            }
            let p_true = self.logits[y as usize] / total;
            loss -= libm::logf(p_true);
            // Backward: dlogits = (softmax − onehot) / n; dW += dlogits ⊗ x; db += dlogits.
            for (c, p) in self.logits.iter().enumerate() {
                let g = (p / total - f32::from(u8::from(c == y as usize))) / n as f32;
                db[c] += g;
                for (w, xi) in dw[c * d..(c + 1) * d].iter_mut().zip(x) {
                    *w += g * xi;
                }
            }
        }
        Ok(loss / n as f32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two separable clusters: training lowers the loss and classifies them.
    #[test]
    fn learns_two_clusters_and_rejects_bad_labels() {
        let features = [1.0, 0.1, 0.9, -0.1, -1.0, 0.2, -0.8, 0.0];
        let labels = [0, 0, 1, 1];
        let mut head = LinearHead::zeros(2, 2);
        let mut training = HeadTraining::new(&head, 0.01);
        let first = training.step(&mut head, &features, &labels, 0.1).unwrap();
        assert!((first - core::f32::consts::LN_2).abs() < 1e-6, "{first}");
        let mut last = first;
        for _ in 0..20 {
            last = training.step(&mut head, &features, &labels, 0.1).unwrap();
        }
        assert!(last < first / 4.0, "{first} -> {last}");
        let mut logits = [0.0; 2];
        for (x, &y) in features.chunks(2).zip(&labels) {
            assert_eq!(head.predict(x, &mut logits), y as usize);
        }
        assert!(training
            .step(&mut head, &features, &[0, 0, 2, 1], 0.1)
            .is_err());
        assert!(training
            .step(&mut head, &features[..3], &labels, 0.1)
            .is_err());
        assert!(training.step(&mut head, &[], &[], 0.1).is_err());
    }
}
