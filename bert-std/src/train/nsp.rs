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

use bert_core::rng::Rng;
use bert_core::safetensors::serialize;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::workspace::TrainWorkspace;
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForSequenceClassification, Dtype, Weights};

use super::fine_tune::{fine_tune, new_classifier, new_linear, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use super::pretrain::{held_out_nsp, train_and_held_pairs, Corpus, Pair};
use crate::batching::{Padded, RayonJoin};
use crate::error::Result;
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
        return new_classifier(rng, 2, hidden);
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
    super::pretrain::require_nsp_head(base)?;
    let mut task = NextSentence {
        base,
        corpora: (train, eval),
        had_head: false,
        items: Vec::new(),
        held: Vec::new(),
        pad: 0,
        accuracy_before: None,
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    let (accuracy, majority) = held_out_nsp(out, &task.held)?;
    Ok(NspReport {
        losses,
        pairs: task.items.len(),
        eval_pairs: task.held.len(),
        accuracy_before: task.accuracy_before,
        accuracy,
        majority,
        out: out.to_path_buf(),
    })
}

/// NSP on the shared loop: the sequence-classification step with two labels, the head started
/// from the base's NSP head (and a pooler made where the base has none), saved as NSP's.
struct NextSentence<'d> {
    base: &'d Path,
    corpora: (&'d Corpus, &'d Corpus),
    had_head: bool,
    items: Vec<Pair>,
    held: Vec<Pair>,
    pad: u32,
    accuracy_before: Option<f32>,
}

impl FineTune for NextSentence<'_> {
    type Model<'w> = BertForSequenceClassification<'w>;
    type Workspace = TrainWorkspace;
    const HEAD: &'static str = "NextSentencePrediction";

    fn labels(&self) -> Vec<String> {
        vec!["IsNext".to_string(), "NotNext".to_string()]
    }

    fn new_heads(
        &mut self,
        base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        self.had_head = base.contains(&format!("{HEAD}.weight"));
        let h = init.config.hidden_size;
        let mut heads = vec![starting_head(base, h, rng)?];
        // A base without a pooler (a masked LM) gets one as HF initializes it.
        let pooler = format!("{}pooler.dense", base.encoder_prefix());
        if !base.contains(&format!("{pooler}.weight")) {
            heads.push(new_linear(rng, &pooler, h, h)?);
        }
        Ok(heads)
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForSequenceClassification::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, _: &BertConfig, o: &TrainOptions) -> Result<usize> {
        let mut pair_rng = Rng::new(o.seed ^ 0x9a1);
        (self.items, self.held) =
            train_and_held_pairs(tok, self.corpora, o.max_seq_len, &mut pair_rng)?;
        self.pad = tok.special.pad;
        Ok(self.items.len())
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, TrainWorkspace)> {
        let trainer = SeqClsTrainer::new(model)?;
        let mut grads = trainer.grads();
        // Saved (and decayed: a bias is still a bias) under NSP's names.
        for part in ["weight", "bias"] {
            grads.rename(&format!("classifier.{part}"), &format!("{HEAD}.{part}"));
        }
        let mut ws = trainer.workspace(o.batch_size, o.max_seq_len)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((grads, ws))
    }

    fn before(&mut self, _: &Self::Model<'_>, _: &mut TrainWorkspace) -> Result<()> {
        if self.had_head {
            self.accuracy_before = Some(held_out_nsp(self.base, &self.held)?.0);
        }
        Ok(())
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut TrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        // HF's NSP head has no dropout of its own (the encoder's stays).
        ws.set_dropout(batch.dropout.map(|mut d| {
            d.classifier = 0.0;
            d
        }));
        let encs: Vec<_> = batch.chunk.iter().map(|&i| &self.items[i].enc).collect();
        let padded = Padded::new(&encs, self.pad);
        let y: Vec<i64> = batch.chunk.iter().map(|&i| self.items[i].label).collect();
        Ok(SeqClsTrainer::new(model)?.loss_and_grads(&padded.core_batch(), &y, ws, grads)?)
    }
}
