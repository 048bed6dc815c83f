//! Fine-tuning in Rust on the core's hand-written backward pass ([`bert_core::train`]):
//! classification data ([`data`]), QA data ([`qa_data`]), the tasks ([`classify`], [`ner`],
//! [`qa`], [`pretrain`]) on one shared epoch loop (shuffle, step, clip, schedule, checkpoint) and
//! HF-directory checkpoints ([`checkpoint`]). `bert train classify|ner|qa|pretrain` is
//! the command-line face.
//!
//! Status: sequence classification (single texts or pairs), token classification (NER),
//! extractive QA and MLM + NSP pre-training on BERT-block encoders, on threads, resumable after
//! a kill at any moment (the last finished epoch is redone from its state). Dropout is not done
//! yet.

pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod ner;
pub mod nsp;
pub mod pretrain;
pub mod qa;
pub mod qa_data;
pub mod state;

use std::collections::BTreeMap;
use std::path::Path;

use bert_core::pretraining::Rng;
use bert_core::safetensors::serialize;
use bert_core::train::dropout::Dropout;
use bert_core::train::optim::{linear_schedule, AdamW};
use bert_core::train::params::Parameters;
use bert_core::train::Grads;
use bert_core::{BertConfig, Dtype};

use self::checkpoint::save_checkpoint;
use self::classify::{Step, TrainOptions};
use crate::batching::RayonJoin;
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::ModelDir;

/// The base model's config with a task head's fields: `architectures`, `id2label`,
/// `label2id`, `num_labels`. Returns the JSON (for the checkpoint) and the parsed config.
pub(crate) fn head_config(
    dir: &ModelDir,
    architecture: &str,
    labels: &[String],
) -> Result<(serde_json::Map<String, serde_json::Value>, BertConfig)> {
    let mut raw = dir.config.raw.clone();
    let id2label: BTreeMap<String, &String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), l))
        .collect();
    let label2id: BTreeMap<&String, usize> =
        labels.iter().enumerate().map(|(i, l)| (l, i)).collect();
    raw.insert("architectures".into(), serde_json::json!([architecture]));
    raw.insert("id2label".into(), serde_json::json!(id2label));
    raw.insert("label2id".into(), serde_json::json!(label2id));
    raw.insert("num_labels".into(), serde_json::json!(labels.len()));
    let config = BertConfig::from_map(raw.clone())?;
    Ok((raw, config))
}

/// A new `classifier` (`[n, hidden]`, weights N(0, 0.02) and bias 0, as HF initializes a head)
/// as safetensors bytes, drawn from `rng`.
pub(crate) fn new_classifier(rng: &mut Rng, n: usize, hidden: usize) -> Result<Vec<u8>> {
    new_linear(rng, "classifier", n, hidden)
}

/// A new linear head `{name}.weight` `[n, hidden]` (N(0, 0.02)) and `{name}.bias` (0) as
/// safetensors bytes, drawn from `rng`.
pub(crate) fn new_linear(rng: &mut Rng, name: &str, n: usize, hidden: usize) -> Result<Vec<u8>> {
    let w: Vec<u8> = (0..n * hidden)
        .flat_map(|_| {
            let (u1, u2) = (rng.next_f64().max(1e-12), rng.next_f64());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            ((z * 0.02) as f32).to_le_bytes()
        })
        .collect();
    let b = vec![0u8; n * 4];
    Ok(serialize(
        &[
            (&format!("{name}.weight"), Dtype::F32, &[n, hidden], &w),
            (&format!("{name}.bias"), Dtype::F32, &[n], &b),
        ],
        &[],
    )?)
}

/// Training-mode dropout for `step` as the model's config.json sets it (HF's defaults: 0.1;
/// the classifier's is `classifier_dropout`, else the hidden one), or `None` when `on` is off.
pub(crate) fn dropout_at(
    config: &serde_json::Map<String, serde_json::Value>,
    o: &TrainOptions,
    step: usize,
) -> Option<Dropout> {
    if !o.dropout {
        return None;
    }
    let p = |k: &str| config.get(k).and_then(serde_json::Value::as_f64);
    let hidden = p("hidden_dropout_prob").unwrap_or(0.1) as f32;
    Some(Dropout {
        hidden,
        attention: p("attention_probs_dropout_prob").unwrap_or(0.1) as f32,
        classifier: p("classifier_dropout").map_or(hidden, |x| x as f32),
        seed: o.seed ^ (step as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93),
    })
}

/// The base model's weight files, mapped, to stack under a new head's buffer.
pub(crate) fn open_weights(dir: &ModelDir) -> Result<Vec<WeightBytes>> {
    dir.weight_files
        .iter()
        .map(|p| WeightBytes::open(p, true))
        .collect()
}

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
}

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
        for epoch in 0..o.epochs {
            // Every epoch's shuffle is drawn, resumed ones too, so the order stays the same.
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            if epoch < first_epoch {
                continue;
            }
            let threads = rayon::current_num_threads();
            for group in order.chunks(o.batch_size * accum) {
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
            }
            let params = model.param_list()?;
            save_checkpoint(
                self.out,
                self.base,
                self.config,
                grads.layout().zip(params.iter().map(|p| &**p)),
                &losses,
            )?;
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
