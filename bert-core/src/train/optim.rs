//! The optimizer side, as the seed and HF's `Trainer` do it: AdamW (decoupled weight decay,
//! bias correction, no decay on biases and LayerNorm weights), a linear warm-up then linear
//! decay of the learning rate, and global gradient-norm clipping (`clip_grad_norm_`).

use alloc::vec;
use alloc::vec::Vec;

use super::params::Parameters;
use super::Grads;
use crate::error::{Error, Result};
use crate::parallel::{Parallel, Sequential};

/// `torch.optim.AdamW` with HF's parameter groups.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// `(beta1, beta2)`.
    pub betas: (f32, f32),
    /// Added to the denominator.
    pub eps: f32,
    /// Decoupled weight decay (on the parameters that take it).
    pub weight_decay: f32,
    step: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    decays: Vec<bool>,
}

/// Whether a parameter takes weight decay: HF's `Trainer` exempts biases and norms, by its
/// patterns on the lower-cased name (`bias`, `layernorm`, `rmsnorm`, a `norm` or `*_norm`
/// part: BERT's `LayerNorm`, DistilBERT's `sa_layer_norm`, ModernBERT's `attn_norm`,
/// `final_norm`, `embeddings.norm`, `head.norm`).
pub fn takes_decay(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let exempt = ["bias", "layernorm", "rmsnorm"]
        .iter()
        .any(|p| name.contains(p))
        || name
            .split('.')
            .any(|part| part == "norm" || part.ends_with("_norm"));
    !exempt
}

impl AdamW {
    /// Moments for every parameter of `grads` (zero), torch's defaults (betas 0.9 / 0.999,
    /// eps 1e-8).
    pub fn new(grads: &Grads, weight_decay: f32) -> Self {
        let (m, decays): (Vec<Vec<f32>>, Vec<bool>) = grads
            .iter()
            .map(|(name, g)| (vec![0.0; g.len()], takes_decay(name)))
            .unzip();
        AdamW {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay,
            step: 0,
            v: m.clone(),
            m,
            decays,
        }
    }

    /// Updates taken so far.
    pub fn steps(&self) -> u32 {
        self.step as u32
    }

    /// Set the number of updates taken (when restoring a saved state).
    pub fn set_steps(&mut self, steps: u32) {
        self.step = steps.min(i32::MAX as u32) as i32;
    }

    /// The first and second moments of parameter `i` (in the order of the `Grads`).
    pub fn moments(&self, i: usize) -> (&[f32], &[f32]) {
        (&self.m[i], &self.v[i])
    }

    /// The same, writable (when restoring a saved state).
    pub fn moments_mut(&mut self, i: usize) -> (&mut [f32], &mut [f32]) {
        (&mut self.m[i], &mut self.v[i])
    }

    /// One update of every parameter (`params` in the order of `grads`) at learning rate `lr`.
    pub fn step(&mut self, params: &mut [&mut [f32]], grads: &Grads, lr: f32) {
        self.step_on(params, grads, lr, &Sequential, 1);
    }

    /// The same update, each large tensor cut in pieces over `threads` threads through
    /// `parallel` (every element is updated alone: the result is the one-thread result).
    pub fn step_on(
        &mut self,
        params: &mut [&mut [f32]],
        grads: &Grads,
        lr: f32,
        parallel: &dyn Parallel,
        threads: usize,
    ) {
        self.step += 1;
        let base = self.coefficients(lr);
        for (i, (p, (_, g))) in params.iter_mut().zip(grads.iter()).enumerate() {
            let c = base.with_decay(self.decays[i]);
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            update(parallel, threads, (p, m, v), g, &c);
        }
    }

    /// The same update, applied to `model`'s parameters as [`Parameters::visit_params`] hands
    /// them over: no list of them is made, so a training step allocates nothing. The shapes
    /// are checked against `grads` first; on a mismatch nothing is updated.
    pub fn step_params<M: Parameters + ?Sized>(
        &mut self,
        model: &mut M,
        grads: &Grads,
        lr: f32,
        parallel: &dyn Parallel,
        threads: usize,
    ) -> Result<()> {
        let mut grad_iter = grads.iter();
        let (mut count, mut mismatch) = (0, None);
        model.visit_params(&mut |p| {
            let want = grad_iter.next().map(|(_, g)| g.len());
            if mismatch.is_none() && want != Some(p.len()) {
                mismatch = Some((p.len(), want.unwrap_or(0)));
            }
            count += 1;
        })?;
        if let Some((len, expected)) = mismatch {
            return Err(Error::LengthMismatch {
                what: "parameter (against its gradient)",
                len,
                expected,
            });
        }
        if count != self.m.len() {
            return Err(Error::LengthMismatch {
                what: "parameters (against the gradients)",
                len: count,
                expected: self.m.len(),
            });
        }
        self.step += 1;
        let base = self.coefficients(lr);
        let mut grad_iter = grads.iter();
        let mut i = 0;
        model.visit_params(&mut |p| {
            if let Some((_, g)) = grad_iter.next() {
                let c = base.with_decay(self.decays[i]);
                let (m, v) = (&mut self.m[i], &mut self.v[i]);
                update(parallel, threads, (p, m, v), g, &c);
            }
            i += 1;
        })
    }

    /// This step's numbers at learning rate `lr` (after `step` is counted), for a parameter
    /// that takes weight decay.
    fn coefficients(&self, lr: f32) -> Coefficients {
        let (b1, b2) = self.betas;
        let bc1 = 1.0 - libm::powf(b1, self.step as f32);
        let bc2 = 1.0 - libm::powf(b2, self.step as f32);
        Coefficients {
            lr,
            wd: self.weight_decay,
            b1,
            b2,
            step_size: lr / bc1,
            bc2_sqrt: libm::sqrtf(bc2),
            eps: self.eps,
        }
    }
}

/// The numbers of one AdamW update of one tensor.
#[derive(Clone, Copy)]
struct Coefficients {
    lr: f32,
    wd: f32,
    b1: f32,
    b2: f32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
}

impl Coefficients {
    /// The same numbers for a parameter that takes weight decay (`decays`) or not.
    fn with_decay(self, decays: bool) -> Self {
        Coefficients {
            wd: if decays { self.wd } else { 0.0 },
            ..self
        }
    }
}

/// Fewest elements worth handing to another thread.
const MIN_PARALLEL: usize = 1 << 16;

/// AdamW on `p` with moments `m`, `v` and gradient `g`, halves on `threads` threads.
fn update(
    par: &dyn Parallel,
    threads: usize,
    (p, m, v): (&mut [f32], &mut [f32], &mut [f32]),
    g: &[f32],
    c: &Coefficients,
) {
    if threads < 2 || p.len() < 2 * MIN_PARALLEL {
        for j in 0..p.len() {
            p[j] *= 1.0 - c.lr * c.wd;
            m[j] = c.b1 * m[j] + (1.0 - c.b1) * g[j];
            v[j] = c.b2 * v[j] + (1.0 - c.b2) * g[j] * g[j];
            let denom = libm::sqrtf(v[j]) / c.bc2_sqrt + c.eps;
            p[j] -= c.step_size * m[j] / denom;
        }
        return;
    }
    let half = threads / 2;
    let cut = p.len() * half / threads;
    let (p1, p2) = p.split_at_mut(cut);
    let (m1, m2) = m.split_at_mut(cut);
    let (v1, v2) = v.split_at_mut(cut);
    let (g1, g2) = g.split_at(cut);
    par.join(&mut || update(par, half, (p1, m1, v1), g1, c), &mut || {
        update(par, threads - half, (p2, m2, v2), g2, c)
    });
}

/// HF's `get_linear_schedule_with_warmup`: the factor of the base learning rate at `step`
/// (0-based, before the step's update).
pub fn linear_schedule(step: usize, warmup: usize, total: usize) -> f32 {
    if step < warmup {
        return step as f32 / warmup.max(1) as f32;
    }
    let rest = total.saturating_sub(warmup).max(1);
    (total.saturating_sub(step) as f32 / rest as f32).max(0.0)
}

/// `torch.nn.utils.clip_grad_norm_`: scale every gradient by `max_norm / (norm + 1e-6)` when
/// the global L2 norm exceeds `max_norm`. Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f32) -> f32 {
    let squares: f64 = grads
        .iter()
        .map(|(_, g)| g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>())
        .sum();
    let norm = libm::sqrt(squares) as f32;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for i in 0..grads.iter().count() {
            grads.slot(i).iter_mut().for_each(|g| *g *= coef);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_and_groups_as_hf() {
        assert_eq!(linear_schedule(0, 2, 10), 0.0);
        assert_eq!(linear_schedule(1, 2, 10), 0.5);
        assert_eq!(linear_schedule(2, 2, 10), 1.0);
        assert_eq!(linear_schedule(6, 2, 10), 0.5);
        assert_eq!(linear_schedule(10, 2, 10), 0.0);
        assert!(takes_decay(
            "bert.encoder.layer.0.attention.self.query.weight"
        ));
        assert!(!takes_decay("bert.encoder.layer.0.output.LayerNorm.weight"));
        assert!(!takes_decay("classifier.bias"));
        // transformers' patterns on every family's norms (ModernBERT's are `*norm`).
        assert!(!takes_decay(
            "distilbert.transformer.layer.0.sa_layer_norm.weight"
        ));
        for norm in [
            "model.embeddings.norm.weight",
            "model.layers.1.attn_norm.weight",
            "model.layers.1.mlp_norm.weight",
            "model.final_norm.weight",
            "head.norm.weight",
        ] {
            assert!(!takes_decay(norm), "{norm}");
        }
        for weight in [
            "model.layers.1.attn.Wqkv.weight",
            "head.dense.weight",
            "model.embeddings.tok_embeddings.weight",
            "roberta.encoder.layer.0.attention.output.dense.weight",
        ] {
            assert!(takes_decay(weight), "{weight}");
        }
    }

    #[test]
    fn one_adamw_step_moves_each_weight_by_about_lr() {
        let mut g = Grads::default();
        g.push("w".into(), &[2]);
        g.slot(0).copy_from_slice(&[0.5, -2.0]);
        let mut opt = AdamW::new(&g, 0.0);
        let mut w = [1.0f32, 1.0];
        opt.step(&mut [&mut w[..]], &g, 0.1);
        // First step: m/sqrt(v) after bias correction is sign(g).
        assert!(
            (w[0] - 0.9).abs() < 1e-5 && (w[1] - 1.1).abs() < 1e-5,
            "{w:?}"
        );
        let mut g2 = g.clone();
        let n = clip_grad_norm(&mut g2, 1.0);
        assert!((n - 4.25f32.sqrt()).abs() < 1e-6);
        let clipped: f32 = g2
            .iter()
            .map(|(_, v)| v.iter().map(|x| x * x).sum::<f32>())
            .sum();
        assert!((clipped.sqrt() - 1.0).abs() < 1e-5);
    }

    /// Two parameters, as a model would hand them over.
    struct Two(Vec<f32>, Vec<f32>);

    impl Parameters for Two {
        fn visit_params<'s>(&'s mut self, visit: &mut dyn FnMut(&'s mut [f32])) -> Result<()> {
            visit(&mut self.0);
            visit(&mut self.1);
            Ok(())
        }
    }

    #[test]
    fn step_params_updates_as_step_and_refuses_other_shapes() {
        let mut g = Grads::default();
        g.push("dense.weight".into(), &[3]);
        g.push("dense.bias".into(), &[2]);
        g.slot(0).copy_from_slice(&[0.5, -2.0, 0.25]);
        g.slot(1).copy_from_slice(&[1.0, -0.125]);
        let (mut a, mut b) = (AdamW::new(&g, 0.01), AdamW::new(&g, 0.01));
        let mut listed = Two(vec![1.0, -1.0, 0.5], vec![0.25, 2.0]);
        let mut visited = Two(listed.0.clone(), listed.1.clone());
        for step in 0..3 {
            let lr = 0.1 / (step + 1) as f32;
            a.step(&mut [&mut listed.0[..], &mut listed.1[..]], &g, lr);
            b.step_params(&mut visited, &g, lr, &Sequential, 1).unwrap();
        }
        assert_eq!((listed.0, listed.1), (visited.0.clone(), visited.1.clone()));
        assert_eq!(b.steps(), 3);

        // Gradients of another shape: an error, and nothing moves.
        let mut other = Grads::default();
        other.push("dense.weight".into(), &[3]);
        other.push("dense.bias".into(), &[3]);
        let before = (visited.0.clone(), visited.1.clone());
        let mut c = AdamW::new(&other, 0.01);
        assert!(c
            .step_params(&mut visited, &other, 0.1, &Sequential, 1)
            .is_err());
        assert_eq!((visited.0.clone(), visited.1.clone()), before);
        assert_eq!(c.steps(), 0);
        // One parameter too few in the gradients.
        let mut short = Grads::default();
        short.push("dense.weight".into(), &[3]);
        let mut d = AdamW::new(&short, 0.01);
        assert!(d
            .step_params(&mut visited, &short, 0.1, &Sequential, 1)
            .is_err());
        assert_eq!((visited.0.clone(), visited.1.clone()), before);
    }
}
