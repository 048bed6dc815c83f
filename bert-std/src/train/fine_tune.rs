//! The one fine-tuning skeleton: [`fine_tune`] runs any [`FineTune`] task. It opens the base
//! model and its tokenizer, writes the head's fields into the checkpoint's config, draws the new
//! head from the run's seed, loads the task's model over the base weights and the head, makes
//! the gradients and workspace, and runs the shared epoch loop ([`super::epochs`]: shuffles,
//! dropout seeds, accumulation, clipping, schedule, AdamW, checkpoints, resume). A task says
//! only what differs: its labels and head, its model, its training items and one batch's loss.

use std::collections::BTreeMap;
use std::path::Path;

use bert_core::rng::Rng;
use bert_core::safetensors::serialize;
use bert_core::train::dropout::Dropout;
use bert_core::train::params::Parameters;
use bert_core::train::Grads;
use bert_core::{BertConfig, Dtype, Weights};
use serde_json::{Map, Value};

use super::epochs::Run;
pub(crate) use super::init::{normal_bytes, HeadInit};
use super::options::{Step, TrainOptions};
use crate::error::{Error, Result};
use crate::loaded::WeightBytes;
use crate::model_dir::ModelDir;
use crate::tokenizer::Tokenizer;

/// What one task adds to the shared loop. Calls come in this order: [`labels`](Self::labels),
/// [`config`](Self::config), [`new_heads`](Self::new_heads), [`load`](Self::load),
/// [`prepare`](Self::prepare), [`trainer`](Self::trainer), [`before`](Self::before),
/// [`step`](Self::step) per batch, [`after`](Self::after).
pub(crate) trait FineTune: Send {
    /// The core's model of the task, borrowing the weights.
    type Model<'w>: Parameters + Send;
    /// The core trainer's workspace.
    type Workspace: Send;
    /// The head's part of the checkpoint's `architectures` entry (HF's class, after the
    /// family's prefix and `For`: `TokenClassification`).
    const HEAD: &'static str;

    /// The labels, in class order (`id2label`).
    fn labels(&self) -> Vec<String>;
    /// A change to the checkpoint's config.json beyond the head's fields.
    fn config(&self, _raw: &mut Map<String, Value>) {}
    /// The head tensors (safetensors files) to stack over the base's weights, drawn from the
    /// run's `rng` before anything else draws from it.
    fn new_heads(
        &mut self,
        base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>>;
    /// The model over the weights.
    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>>;
    /// Make the training items; returns how many there are (what the epochs shuffle).
    fn prepare(&mut self, tok: &Tokenizer, config: &BertConfig, o: &TrainOptions) -> Result<usize>;
    /// The gradient buffers (named as the checkpoint names them) and a workspace for `o`.
    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, Self::Workspace)>;
    /// Before the first step.
    fn before(&mut self, _model: &Self::Model<'_>, _ws: &mut Self::Workspace) -> Result<()> {
        Ok(())
    }
    /// One batch: the items `chunk`, batch number `index` (for per-batch randomness a resumed
    /// run draws alike), its dropout; returns the loss, its gradients added into `grads`.
    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut Self::Workspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32>;
    /// After the last step, with the trained model still in memory.
    fn after(&mut self, _model: &Self::Model<'_>, _ws: &mut Self::Workspace) -> Result<()> {
        Ok(())
    }
}

/// One batch of a step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch<'c> {
    /// The batch's number: `step × grad_accum + k`.
    pub index: usize,
    /// The items, by index.
    pub chunk: &'c [usize],
    /// Training-mode dropout for it (as config.json sets it), if on.
    pub dropout: Option<Dropout>,
}

/// Fine-tune the encoder in `base` on `task`, writing checkpoints to `out`. Returns the loss of
/// every step.
pub(crate) fn fine_tune<T: FineTune>(
    task: &mut T,
    base: &Path,
    o: &TrainOptions,
    out: &Path,
    progress: &mut (impl FnMut(&Step) + Send),
) -> Result<Vec<f32>> {
    if o.batch_size == 0 || o.epochs == 0 {
        return Err(Error::Input(
            "nothing to train: no batches or epochs".into(),
        ));
    }
    let dir = ModelDir::open(base)?;
    let tok = Tokenizer::from_dir(&dir.root)?;
    let (mut raw, config) = head_config(&dir, T::HEAD, &task.labels())?;
    task.config(&mut raw);
    let mut rng = Rng::new(o.seed);
    let files = open_weights(&dir)?;
    let mut buffers: Vec<&[u8]> = files.iter().map(|f| &**f).collect();
    let init = HeadInit::new(&raw, &config);
    let heads = task.new_heads(&Weights::from_buffers(&buffers)?, &init, &mut rng)?;
    buffers.extend(heads.iter().map(Vec::as_slice));
    let weights = Weights::from_buffers(&buffers)?;
    let mut model = T::load(&config, &weights)?;
    let examples = task.prepare(&tok, &config, o)?;
    if examples == 0 {
        return Err(Error::Input(
            "nothing to train: no training examples".into(),
        ));
    }
    let (mut grads, mut ws) = task.trainer(&model, o)?;
    task.before(&model, &mut ws)?;
    let run = Run {
        options: o,
        examples,
        base: &dir,
        config: &raw,
        out,
        save: None,
        state_every: 0,
    };
    let losses = run.epochs(
        &mut model,
        &mut rng,
        &mut grads,
        |model, index, chunk, grads| {
            let dropout = dropout_at(&raw, o, index);
            let batch = Batch {
                index,
                chunk,
                dropout,
            };
            task.step(model, &mut ws, batch, grads)
        },
        progress,
    )?;
    task.after(&model, &mut ws)?;
    Ok(losses)
}

/// The base model's config with a task head's fields: `architectures` (the family's class for
/// `head`, `RobertaForTokenClassification`), `id2label`, `label2id`, `num_labels`. Returns
/// the JSON (for the checkpoint) and the parsed config.
pub(crate) fn head_config(
    dir: &ModelDir,
    head: &str,
    labels: &[String],
) -> Result<(Map<String, Value>, BertConfig)> {
    let mut raw = dir.config.raw.clone();
    let family = BertConfig::from_map(raw.clone())?.arch.family;
    let architecture = format!("{}For{head}", family.class_prefix());
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
    let w = normal_bytes(rng, n * hidden);
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
/// the classifier's is `classifier_dropout`, else the hidden one; DistilBERT's keys are
/// `dropout`, `attention_dropout`, and `seq_classif_dropout` / `qa_dropout` for its sequence
/// classifier / QA head; ModernBERT's `embedding_dropout`, `attention_dropout`, `mlp_dropout`
/// and `classifier_dropout`, 0 when absent), or `None` when `on` is off.
pub(crate) fn dropout_at(
    config: &Map<String, Value>,
    o: &TrainOptions,
    step: usize,
) -> Option<Dropout> {
    let p = |k: &str| config.get(k).and_then(Value::as_f64);
    if !o.dropout {
        return None;
    }
    let seed = o.seed ^ (step as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93);
    if config.get("model_type").and_then(Value::as_str) == Some("modernbert") {
        // ModernBERT's own keys, each 0 unless set (as in every released config).
        let q = |k: &str| p(k).unwrap_or(0.0) as f32;
        return Some(Dropout {
            hidden: q("mlp_dropout"),
            attention: q("attention_dropout"),
            classifier: q("classifier_dropout"),
            embedding: Some(q("embedding_dropout")),
            seed,
        });
    }
    let hidden = p("hidden_dropout_prob").or(p("dropout")).unwrap_or(0.1) as f32;
    let attention = p("attention_probs_dropout_prob").or(p("attention_dropout"));
    // DistilBERT's sequence classifier has its own (`seq_classif_dropout`); a config that is
    // not a sequence classifier's has no `architectures` entry ending so.
    let head = config
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or("");
    let distilbert_key = if head.ends_with("ForSequenceClassification") {
        p("seq_classif_dropout")
    } else if head.ends_with("ForQuestionAnswering") {
        p("qa_dropout")
    } else {
        None
    };
    let classifier = p("classifier_dropout")
        .or(distilbert_key)
        .map_or(hidden, |x| x as f32);
    Some(Dropout {
        hidden,
        attention: attention.unwrap_or(0.1) as f32,
        classifier,
        embedding: None,
        seed,
    })
}

/// The base model's weight files, mapped, to stack under a new head's buffer.
pub(crate) fn open_weights(dir: &ModelDir) -> Result<Vec<WeightBytes>> {
    dir.weight_files
        .iter()
        .map(|p| WeightBytes::open(p, true))
        .collect()
}
