//! Next-sentence-prediction fine-tuning, as HF's `BertForNextSentencePrediction` trains: the NSP
//! cross-entropy alone on the pooled `[CLS]`, with no masking and no dropout before the head.
//! Pairs come from the same documents and the same core draw as pre-training
//! ([`create_nsp_examples_across_documents`](bert_core::pretraining::create_nsp_examples_across_documents)).
//! The head starts from the base model's `cls.seq_relationship` when it has one (a pre-trained
//! checkpoint, e.g. from `bert train pretrain`), else as HF initializes it, and so does the
//! pooler when the base has none. The step is the
//! sequence-classification trainer's with two labels (the same pooler and linear head, so the
//! same exact backward); the head is saved under NSP's name, so the checkpoint is an HF
//! `BertForNextSentencePrediction` directory that transformers and the NSP pipeline load.

use std::path::{Path, PathBuf};

use bert_core::pretraining::Rng;
use bert_core::safetensors::serialize;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::{BertForSequenceClassification, Dtype, Weights};

use super::classify::{Step, TrainOptions};
use super::pretrain::{held_out_nsp, train_and_held_pairs, Corpus};
use crate::batching::Padded;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
use crate::tokenizer::Tokenizer;

/// What an NSP fine-tuning run did.
#[derive(Debug, Clone)]
pub struct NspReport {
    /// Every step's loss.
    pub losses: Vec<f32>,
    /// Training pairs.
    pub pairs: usize,
    /// Held-out pairs.
    pub eval_pairs: usize,
    /// Held-out accuracy of the base model's NSP head before training (0.5-ish for a new head).
    pub accuracy_before: Option<f32>,
    /// Held-out accuracy of the saved model, through the NSP pipeline.
    pub accuracy: f32,
    /// The held-out share of the more frequent label (the baseline).
    pub majority: f32,
    /// Where the model was written.
    pub out: PathBuf,
}

/// The NSP head's names in an HF checkpoint.
const HEAD: &str = "cls.seq_relationship";

/// The head to start from, as `classifier.*` safetensors bytes: the base's NSP head, or a new
/// one (N(0, 0.02), bias 0).
fn starting_head(weights: &Weights<'_>, hidden: usize, rng: &mut Rng) -> Result<Vec<u8>> {
    let (w, b) = (format!("{HEAD}.weight"), format!("{HEAD}.bias"));
    if !(weights.contains(&w) && weights.contains(&b)) {
        return super::new_classifier(rng, 2, hidden);
    }
    // Shapes are checked by the lookups ([2, hidden] and [2]); any stored dtype is widened.
    let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let wb = bytes(&weights.tensor(&w, &[2, hidden])?.to_f32());
    let bb = bytes(&weights.vector(&b, 2)?);
    Ok(serialize(
        &[
            ("classifier.weight", Dtype::F32, &[2, hidden], &wb),
            ("classifier.bias", Dtype::F32, &[2], &bb),
        ],
        &[],
    )?)
}

/// Fine-tune `base` on the NSP pairs of `train`, score on those of `eval`, write an HF
/// `BertForNextSentencePrediction` directory to `out`.
pub fn train_nsp(
    base: &Path,
    train: &Corpus,
    eval: &Corpus,
    o: &TrainOptions,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<NspReport> {
    if o.batch_size == 0 || o.epochs == 0 {
        return Err(Error::Input(
            "NSP fine-tuning needs batches and epochs".into(),
        ));
    }
    let dir = ModelDir::open(base)?;
    let tok = Tokenizer::from_dir(&dir.root)?;
    let labels = ["IsNext".to_string(), "NotNext".to_string()];
    let (raw, config) = super::head_config(&dir, "BertForNextSentencePrediction", &labels)?;
    let mut rng = Rng::new(o.seed);
    let files = super::open_weights(&dir)?;
    let mut buffers: Vec<&[u8]> = files.iter().map(|f| &**f).collect();
    let base_weights = Weights::from_buffers(&buffers)?;
    let had_head = base_weights.contains(&format!("{HEAD}.weight"));
    let h = config.hidden_size;
    let head = starting_head(&base_weights, h, &mut rng)?;
    // A base without a pooler (a masked LM) gets one as HF initializes it.
    let pooler = format!("{}pooler.dense", base_weights.encoder_prefix());
    let new_pooler = if base_weights.contains(&format!("{pooler}.weight")) {
        None
    } else {
        Some(super::new_linear(&mut rng, &pooler, h, h)?)
    };
    buffers.push(&head);
    buffers.extend(new_pooler.as_deref());
    let weights = Weights::from_buffers(&buffers)?;
    let mut model = BertForSequenceClassification::load(&config, &weights)?;

    let mut pair_rng = Rng::new(o.seed ^ 0x9a1);
    let (data, held) = train_and_held_pairs(&tok, (train, eval), o.max_seq_len, &mut pair_rng)?;
    let accuracy_before = if had_head {
        Some(held_out_nsp(base, &held)?.0)
    } else {
        None
    };
    let (mut grads, mut ws) = {
        let trainer = SeqClsTrainer::new(&model)?;
        (
            trainer.grads(),
            trainer.workspace(o.batch_size, o.max_seq_len)?,
        )
    };
    // Saved (and decayed: a bias is still a bias) under NSP's names.
    for part in ["weight", "bias"] {
        grads.rename(&format!("classifier.{part}"), &format!("{HEAD}.{part}"));
    }
    ws.set_threads(rayon::current_num_threads(), &crate::batching::RayonJoin);
    let pad = tok.special.pad;
    let run = super::Run {
        options: o,
        examples: data.len(),
        base: &dir,
        config: &raw,
        out,
    };
    let losses = run.epochs(
        &mut model,
        &mut rng,
        &mut grads,
        |model, step, chunk, grads| {
            // HF's NSP head has no dropout of its own (the encoder's stays).
            let dropout = super::dropout_at(&raw, o, step).map(|mut d| {
                d.classifier = 0.0;
                d
            });
            ws.set_dropout(dropout);
            let encs: Vec<_> = chunk.iter().map(|&i| &data[i].enc).collect();
            let padded = Padded::new(&encs, pad);
            let y: Vec<i64> = chunk.iter().map(|&i| data[i].label).collect();
            Ok(SeqClsTrainer::new(model)?.loss_and_grads(
                &padded.core_batch(),
                &y,
                &mut ws,
                grads,
            )?)
        },
        &mut progress,
    )?;
    drop(model);
    let (accuracy, majority) = held_out_nsp(out, &held)?;
    Ok(NspReport {
        losses,
        pairs: data.len(),
        eval_pairs: held.len(),
        accuracy_before,
        accuracy,
        majority,
        out: out.to_path_buf(),
    })
}
