//! The epoch loop every task shares: seeded shuffles, batches (with gradient accumulation),
//! clipping, the warmed-up and decayed learning rate, AdamW in place, progress, and after each
//! epoch a checkpoint and the trainer's state for `--resume`.

use std::path::Path;

use bert_core::rng::Rng;
use bert_core::train::optim::{linear_schedule, AdamW};
use bert_core::train::params::Parameters;
use bert_core::train::Grads;

use super::checkpoint::{save_checkpoint, Param};
use super::options::{Step, TrainOptions};
use super::state;
use crate::batching::RayonJoin;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;

/// Where and how a fine-tuning run goes: its settings, how many training examples, the base
/// model, the checkpoint's config and directory.
pub(crate) struct Run<'a> {
    /// Training settings.
    pub options: &'a TrainOptions,
    /// Training examples (the loop shuffles and batches their indices).
    pub examples: usize,
    /// The base model's directory (tokenizer files are copied from it).
    pub base: &'a ModelDir,
    /// The checkpoint's `config.json`.
    pub config: &'a serde_json::Map<String, serde_json::Value>,
    /// The checkpoint directory.
    pub out: &'a Path,
    /// How a checkpoint is written (default: [`save_checkpoint`], an HF directory with the
    /// base's tokenizer files and `config`).
    pub save: Option<&'a SaveFn<'a>>,
    /// Also save the trainer's state every this many steps within an epoch (0: only after
    /// each epoch), so that a killed run loses at most these steps.
    pub state_every: usize,
}

/// A checkpoint writer: every parameter in the trainer's order, and the loss of every step.
pub(crate) type SaveFn<'a> = dyn Fn(&[Param<'_>], &[f32]) -> Result<()> + Sync + 'a;

impl Run<'_> {
    /// The fine-tuning loop every task shares: per epoch a seeded Fisher-Yates shuffle of
    /// the examples' indices, then per batch: zero `grads`, `loss_and_grads`, clip the gradient
    /// norm at 1.0, AdamW at the linearly warmed-up and decayed rate, report `progress`; a
    /// checkpoint after every epoch, with the trainer's state ([`state`]) for `--resume` until
    /// the last. `params` lists the model's parameters in `grads`' order; `loss_and_grads`
    /// gets the batch's index, `step × grad_accum + k` (per-batch randomness a resumed run
    /// redraws alike).
    /// Returns the loss of every step.
    pub(crate) fn epochs<M: Parameters + Send>(
        &self,
        model: &mut M,
        rng: &mut Rng,
        grads: &mut Grads,
        loss_and_grads: impl FnMut(&M, usize, &[usize], &mut Grads) -> Result<f32> + Send,
        progress: &mut (impl FnMut(&Step) + Send),
    ) -> Result<Vec<f32>> {
        // The steps run on a worker of a pool of the current pool's size, so that the
        // products' joins stay inside it (no shared injector: no allocation, quick hand-offs).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .build()
            .map_err(|e| Error::Input(format!("cannot start the training threads: {e}")))?;
        pool.install(|| self.epochs_here(model, rng, grads, loss_and_grads, progress))
    }

    fn epochs_here<M: Parameters>(
        &self,
        model: &mut M,
        rng: &mut Rng,
        grads: &mut Grads,
        mut loss_and_grads: impl FnMut(&M, usize, &[usize], &mut Grads) -> Result<f32>,
        progress: &mut impl FnMut(&Step),
    ) -> Result<Vec<f32>> {
        let o = self.options;
        let mut opt = AdamW::new(grads, o.weight_decay);
        let accum = o.grad_accum.max(1);
        let total = self.examples.div_ceil(o.batch_size).div_ceil(accum) * o.epochs;
        let warmup = (o.warmup_ratio * total as f32) as usize;
        let mut order: Vec<usize> = (0..self.examples).collect();
        let mut losses = Vec::with_capacity(total);
        let mut step = 0;
        let mut first_epoch = 0;
        let state = self.out.join(state::STATE_FILE);
        if o.resume {
            let mut p = model.param_list()?;
            if let Some(r) = state::load_state(&state, o, self.examples, grads, &mut p, &mut opt)? {
                (first_epoch, step, losses) = (r.epochs_done, r.step, r.losses);
            }
        }
        let per_epoch = self.examples.div_ceil(o.batch_size).div_ceil(accum);
        for epoch in 0..o.epochs {
            // Every epoch's shuffle is drawn, resumed ones too, so the order stays the same.
            rng.shuffle(&mut order);
            if epoch < first_epoch {
                continue;
            }
            let threads = rayon::current_num_threads();
            // A state saved within this epoch: its first steps are done.
            let done_here = step.saturating_sub(epoch * per_epoch);
            for group in order.chunks(o.batch_size * accum).skip(done_here) {
                grads.zero_on(&RayonJoin, threads);
                // Gradient accumulation: the batches' gradients add up, then are averaged.
                let mut loss = 0.0;
                let batches = group.len().div_ceil(o.batch_size);
                for (k, chunk) in group.chunks(o.batch_size).enumerate() {
                    loss += loss_and_grads(model, step * accum + k, chunk, grads)? / batches as f32;
                }
                if batches > 1 {
                    grads.scale(1.0 / batches as f32);
                }
                grads.clip_norm_on(1.0, &RayonJoin, threads);
                let lr = o.lr * linear_schedule(step, warmup, total);
                opt.step_params(model, grads, lr, &RayonJoin, threads)?;
                step += 1;
                losses.push(loss);
                progress(&Step {
                    step,
                    total,
                    loss,
                    lr,
                    examples: group.len(),
                });
                let within = step - epoch * per_epoch;
                if self.state_every > 0
                    && within.is_multiple_of(self.state_every)
                    && within < per_epoch
                {
                    let params = model.param_list()?;
                    let done = (epoch, step);
                    state::save_state(
                        &state,
                        o,
                        self.examples,
                        done,
                        grads,
                        &params,
                        &opt,
                        &losses,
                    )?;
                }
            }
            let params = model.param_list()?;
            let list: Vec<Param<'_>> = grads.layout().zip(params.iter().map(|p| &**p)).collect();
            match self.save {
                Some(save) => save(&list, &losses)?,
                None => {
                    save_checkpoint(self.out, self.base, self.config, list.into_iter(), &losses)?
                }
            }
            if epoch + 1 < o.epochs {
                state::save_state(
                    &state,
                    o,
                    self.examples,
                    (epoch + 1, step),
                    grads,
                    &params,
                    &opt,
                    &losses,
                )?;
            } else if state.is_file() {
                // Done: the model directory is the result; the state is not needed any more.
                std::fs::remove_file(&state).map_err(|e| Error::io(&state, e))?;
            }
        }
        Ok(losses)
    }
}
