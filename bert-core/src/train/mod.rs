//! Training: a backward pass written by hand, layer by layer, beside the forward, as llm.c does
//! it. The forward saves what the backward needs in a [`workspace::TrainWorkspace`] sized once per
//! (batch, seq); products go through the project's kernels; gradients land in [`Grads`], one
//! buffer per parameter, named as PyTorch names them.
//!
//! Status: sequence classification ([`seqcls`]), token classification ([`tokcls`]), extractive
//! QA ([`qa`]), masked LM and MLM + NSP pre-training ([`pretrain`], tied decoder) on the
//! post-norm (BERT-family) encoder, sharing one encoder backward and one pooled-head backward;
//! dropout off, one thread; exact to `torch.autograd` (tests/golden_train.rs), with AdamW, the
//! linear warm-up/decay schedule and gradient clipping ([`optim`]) matching PyTorch over 20
//! steps. Dropout and threads in the backward are the next steps.

pub mod dropout;
mod encoder;
pub mod ops;
pub mod optim;
pub mod params;
mod pooled;
pub mod pretrain;
pub mod qa;
pub mod seqcls;
mod threads;
pub mod tokcls;
pub mod workspace;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// One gradient buffer per parameter, in a fixed order, with PyTorch's parameter names.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    values: Vec<Vec<f32>>,
}

impl Grads {
    /// Add a zeroed buffer for parameter `name` of `shape`; returns its index.
    pub(crate) fn push(&mut self, name: String, shape: &[usize]) -> usize {
        self.names.push(name);
        self.values.push(vec![0.0; shape.iter().product()]);
        self.shapes.push(shape.to_vec());
        self.values.len() - 1
    }

    /// Every (name, shape), in order: what a checkpoint of the parameters holds.
    pub fn layout(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.shapes.iter().map(Vec::as_slice))
    }

    /// The gradient of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(&self.values[i])
    }

    /// Every (name, gradient).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[f32])> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.values.iter().map(Vec::as_slice))
    }

    /// Set every gradient to zero (before accumulating a new batch).
    pub fn zero(&mut self) {
        self.values.iter_mut().for_each(|v| v.fill(0.0));
    }

    /// Multiply every gradient by `factor` (e.g. `1 / n` after accumulating `n` batches).
    pub fn scale(&mut self, factor: f32) {
        self.values
            .iter_mut()
            .for_each(|v| v.iter_mut().for_each(|g| *g *= factor));
    }

    pub(crate) fn slot(&mut self, i: usize) -> &mut [f32] {
        &mut self.values[i]
    }

    /// Two slots at once (a weight and its bias).
    pub(crate) fn pair(&mut self, w: usize, b: usize) -> (&mut [f32], &mut [f32]) {
        debug_assert!(w < b);
        let (lo, hi) = self.values.split_at_mut(b);
        (&mut lo[w], &mut hi[0])
    }
}
