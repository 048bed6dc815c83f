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

pub mod distill;
pub mod dropout;
mod embeddings;
mod encoder;
pub mod linear_head;
pub mod ops;
pub mod optim;
pub mod params;
mod pooled;
mod post_norm;
mod pre_norm;
pub mod pretrain;
pub mod qa;
pub mod seqcls;
mod slots;
mod threads;
pub mod tokcls;
mod transform;
pub mod workspace;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// `f` on every gradient, the large ones cut in pieces, on `threads` threads (elementwise
/// work: the pieces change nothing).
fn each_piece(
    par: &dyn crate::parallel::Parallel,
    threads: usize,
    values: &mut [Vec<f32>],
    f: &(dyn Fn(&mut [f32]) + Sync),
) {
    for v in values.iter_mut() {
        piece(par, threads, v, f);
    }
}

fn piece(
    par: &dyn crate::parallel::Parallel,
    threads: usize,
    v: &mut [f32],
    f: &(dyn Fn(&mut [f32]) + Sync),
) {
    if threads < 2 || v.len() < 1 << 17 {
        f(v);
        return;
    }
    let half = threads / 2;
    let (a, b) = v.split_at_mut(v.len() * half / threads);
    par.join(&mut || piece(par, half, a, f), &mut || {
        piece(par, threads - half, b, f)
    });
}

/// Each gradient's f64 sum of squares into `out`, gradients shared out over `threads` threads
/// in two halves of about equal size (each sum in its own element order).
fn squares(
    par: &dyn crate::parallel::Parallel,
    threads: usize,
    values: &[Vec<f32>],
    out: &mut [f64],
) {
    let total: usize = values.iter().map(Vec::len).sum();
    if threads < 2 || values.len() < 2 || total < 1 << 17 {
        for (v, o) in values.iter().zip(out.iter_mut()) {
            *o = v.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>();
        }
        return;
    }
    let mut acc = 0;
    let cut = values
        .iter()
        .position(|v| {
            acc += v.len();
            acc * 2 >= total
        })
        .map_or(1, |i| (i + 1).clamp(1, values.len() - 1));
    let (v1, v2) = values.split_at(cut);
    let (o1, o2) = out.split_at_mut(cut);
    let half = threads / 2;
    par.join(&mut || squares(par, half, v1, o1), &mut || {
        squares(par, threads - half, v2, o2)
    });
}

/// One gradient buffer per parameter, in a fixed order, with PyTorch's parameter names.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    values: Vec<Vec<f32>>,
    /// Each gradient's sum of squares, for clipping on threads without allocating.
    squares: Vec<f64>,
}

impl Grads {
    /// Add a zeroed buffer for parameter `name` of `shape`; returns its index.
    pub(crate) fn push(&mut self, name: String, shape: &[usize]) -> usize {
        self.names.push(name);
        self.squares.push(0.0);
        self.values.push(vec![0.0; shape.iter().product()]);
        self.shapes.push(shape.to_vec());
        self.values.len() - 1
    }

    /// Drop `prefix` from every name that has it (a bare encoder's checkpoint, as
    /// sentence-transformers saves one, has no `bert.`).
    pub(crate) fn strip_prefix(&mut self, prefix: &str) {
        for n in self.names.iter_mut() {
            if let Some(rest) = n.strip_prefix(prefix) {
                *n = String::from(rest);
            }
        }
    }

    /// Every (name, shape), in order: what a checkpoint of the parameters holds.
    pub fn layout(&self) -> impl Iterator<Item = (&str, &[usize])> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.shapes.iter().map(Vec::as_slice))
    }

    /// Call parameter `from` `to` instead (a head trained under one name and saved under
    /// another: a sequence classifier's `classifier` as NSP's `cls.seq_relationship`). False,
    /// and no change, when there is no `from`.
    pub fn rename(&mut self, from: &str, to: &str) -> bool {
        match self.names.iter().position(|n| n == from) {
            Some(i) => {
                self.names[i] = String::from(to);
                true
            }
            None => false,
        }
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

    /// [`zero`](Self::zero) on `threads` threads.
    pub fn zero_on(&mut self, parallel: &dyn crate::parallel::Parallel, threads: usize) {
        each_piece(parallel, threads, &mut self.values, &|v: &mut [f32]| {
            v.fill(0.0)
        });
    }

    /// `torch.nn.utils.clip_grad_norm_` on `threads` threads: each gradient's sum of squares
    /// (its own order) on its thread, their total in parameter order, then the scaling; the
    /// same bits as [`optim::clip_grad_norm`]. Returns the norm before clipping.
    pub fn clip_norm_on(
        &mut self,
        max_norm: f32,
        parallel: &dyn crate::parallel::Parallel,
        threads: usize,
    ) -> f32 {
        squares(parallel, threads, &self.values, &mut self.squares);
        let total: f64 = self.squares.iter().sum();
        let norm = libm::sqrt(total) as f32;
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            each_piece(parallel, threads, &mut self.values, &|v: &mut [f32]| {
                v.iter_mut().for_each(|g| *g *= coef)
            });
        }
        norm
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
