//! Continued pre-training (MLM + NSP), as the seed's pre-training chapter describes it: documents
//! cut into sentences, NSP pairs drawn by the core ([`create_nsp_examples_across_documents`]:
//! the true next sentence, or a sentence of another document), fresh dynamic masking at every
//! step ([`mask_tokens`]: 15%, then 80/10/10), and the summed MLM + NSP loss through the core's
//! [`PreTrainer`]. Heads the base model lacks (MiniLM has neither) start as HF initializes them.
//! The checkpoint is an HF `BertForPreTraining` directory: the fill-mask and NSP pipelines load
//! it. Scored on held-out documents: NSP accuracy through the NSP pipeline, and the MLM loss
//! before and after training on the same masks.

use std::path::{Path, PathBuf};

use bert_core::pretraining::{
    create_nsp_examples_across_documents, mask_tokens, MaskingConfig, IGNORE_INDEX,
};
use bert_core::rng::Rng;
use bert_core::safetensors::serialize;
use bert_core::train::pretrain::{PreTrainWorkspace, PreTrainer};
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForPreTraining, Dtype, Weights};
use tokenizers::Encoding;

use super::fine_tune::{fine_tune, normal_bytes, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use crate::batching::{Padded, RayonJoin};
use crate::error::{Error, Result};
use crate::pipelines::nsp::NextSentencePrediction;
use crate::runtime::LoadOptions;
use crate::tokenizer::Tokenizer;
use crate::Pipeline;

pub use super::corpus::{parse_corpus, read_corpus, split_sentences, Corpus};

/// What a pre-training run gives.
#[derive(Debug, Clone)]
pub struct PretrainReport {
    /// Every step's total loss (MLM + NSP).
    pub losses: Vec<f32>,
    /// Every step's (MLM, NSP) parts.
    pub parts: Vec<(f32, f32)>,
    /// Training pairs.
    pub pairs: usize,
    /// Held-out pairs.
    pub eval_pairs: usize,
    /// Held-out NSP accuracy of the saved model, through the NSP pipeline.
    pub nsp_accuracy: f32,
    /// The held-out share of the more frequent NSP label (the baseline).
    pub nsp_majority: f32,
    /// Held-out MLM loss (same masks) before and after training.
    pub eval_mlm: (f32, f32),
    /// Where the model was written.
    pub out: PathBuf,
}

/// One NSP pair: A and B, encoded together, and the label (0: B follows A).
pub(super) struct Pair {
    pub(super) enc: Encoding,
    pub(super) label: i64,
    a: String,
    b: String,
}

/// (A, B) pairs of a corpus with their NSP labels, encoded.
fn pairs(tok: &Tokenizer, corpus: &Corpus, max_seq_len: usize, rng: &mut Rng) -> Result<Vec<Pair>> {
    let lengths: Vec<usize> = corpus.documents.iter().map(Vec::len).collect();
    let flat: Vec<&String> = corpus.documents.iter().flatten().collect();
    create_nsp_examples_across_documents(&lengths, rng)?
        .into_iter()
        .map(|p| {
            let (a, b) = (flat[p.a].clone(), flat[p.b].clone());
            let enc = tok.encode_truncated(&a, Some(&b), max_seq_len)?;
            Ok(Pair {
                enc,
                label: i64::from(p.label),
                a,
                b,
            })
        })
        .collect()
}

/// The NSP pairs of the training and the held-out documents, drawn in that order from `rng`;
/// an error names which set could not make any.
pub(super) fn train_and_held_pairs(
    tok: &Tokenizer,
    (train, eval): (&Corpus, &Corpus),
    max_seq_len: usize,
    rng: &mut Rng,
) -> Result<(Vec<Pair>, Vec<Pair>)> {
    let named = |what: &str, e: Error| match e {
        Error::Core(bert_core::Error::InvalidInput(m)) => Error::Input(format!(
            "the {what} documents cannot make NSP pairs ({m}); give more documents or --eval"
        )),
        other => other,
    };
    let data = pairs(tok, train, max_seq_len, rng).map_err(|e| named("training", e))?;
    let held = pairs(tok, eval, max_seq_len, rng).map_err(|e| named("held-out", e))?;
    Ok((data, held))
}

/// The pre-training heads `weights` lacks, as HF initializes them (dense and NSP weights
/// N(0, 0.02), biases 0, LayerNorm 1 and 0), as safetensors bytes.
fn missing_heads(weights: &Weights<'_>, h: usize, vocab: usize, rng: &mut Rng) -> Result<Vec<u8>> {
    let mut normal = |n: usize| normal_bytes(rng, n);
    let ones: Vec<u8> = (0..h).flat_map(|_| 1f32.to_le_bytes()).collect();
    let p = weights.encoder_prefix();
    let candidates: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
        (format!("{p}pooler.dense.weight"), vec![h, h], normal(h * h)),
        (format!("{p}pooler.dense.bias"), vec![h], vec![0; h * 4]),
        (
            "cls.predictions.transform.dense.weight".into(),
            vec![h, h],
            normal(h * h),
        ),
        (
            "cls.predictions.transform.dense.bias".into(),
            vec![h],
            vec![0; h * 4],
        ),
        (
            "cls.predictions.transform.LayerNorm.weight".into(),
            vec![h],
            ones,
        ),
        (
            "cls.predictions.transform.LayerNorm.bias".into(),
            vec![h],
            vec![0; h * 4],
        ),
        (
            "cls.predictions.bias".into(),
            vec![vocab],
            vec![0; vocab * 4],
        ),
        (
            "cls.seq_relationship.weight".into(),
            vec![2, h],
            normal(2 * h),
        ),
        ("cls.seq_relationship.bias".into(), vec![2], vec![0; 8]),
    ];
    let missing: Vec<_> = candidates
        .iter()
        .filter(|(n, _, _)| !weights.contains(n))
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
        .collect();
    Ok(serialize(&missing, &[])?)
}

/// Whether `base`'s family has BERT's NSP head: pre-training is MLM + NSP there, the masked
/// LM alone elsewhere ([`pretrain_masked_lm`](super::masked_lm::pretrain_masked_lm)).
pub fn has_nsp_head(base: &Path) -> Result<bool> {
    let dir = crate::model_dir::ModelDir::open(base)?;
    let config = BertConfig::from_map(dir.config.raw.clone())?;
    Ok(config.arch.family == bert_core::arch::Family::Bert)
}

/// An error unless `base` is a BERT, whose NSP head the MLM + NSP and NSP tasks train.
pub(super) fn require_nsp_head(base: &Path) -> Result<()> {
    if has_nsp_head(base)? {
        return Ok(());
    }
    Err(Error::Input(
        "this family has no NSP head: pre-train it with the masked LM alone \
         (`bert train pretrain` does; `masked_lm::pretrain_masked_lm` in the library)"
            .into(),
    ))
}

/// Pre-train `base` (MLM + NSP) on `train`, score on `eval`, write the model to `out`.
pub fn pretrain(
    base: &Path,
    train: &Corpus,
    eval: &Corpus,
    o: &TrainOptions,
    mlm_probability: f64,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<PretrainReport> {
    let data = MaskedPairs::new((train, eval), o, mlm_probability)?;
    require_nsp_head(base)?;
    let mut task = PreTraining {
        data,
        parts: Vec::new(),
        eval_mlm: (0.0, 0.0),
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    let (nsp_accuracy, nsp_majority) = held_out_nsp(out, &task.data.held)?;
    Ok(PretrainReport {
        losses,
        parts: task.parts,
        pairs: task.data.items.len(),
        eval_pairs: task.data.held.len(),
        nsp_accuracy,
        nsp_majority,
        eval_mlm: task.eval_mlm,
        out: out.to_path_buf(),
    })
}

/// The tokens masking needs.
#[derive(Debug, Clone, Copy, Default)]
struct Tokens {
    mask: u32,
    pad: u32,
    /// `[CLS]`, `[SEP]`, `[PAD]`: never masked.
    specials: [u32; 3],
    vocab: u32,
}

/// What pre-training with and without NSP share: the sentence pairs, drawn once, and their
/// masking: fresh masks every step (from the step's own seed), fixed ones for the held-out
/// MLM loss.
pub(super) struct MaskedPairs<'d> {
    corpora: (&'d Corpus, &'d Corpus),
    mlm_probability: f64,
    /// The most masked tokens a batch keeps (the workspace holds this many).
    pub(super) max_masked: usize,
    pub(super) items: Vec<Pair>,
    pub(super) held: Vec<Pair>,
    tokens: Tokens,
    seed: u64,
    batch_size: usize,
}

impl<'d> MaskedPairs<'d> {
    /// Nothing drawn yet; the MLM probability checked.
    pub(super) fn new(
        corpora: (&'d Corpus, &'d Corpus),
        o: &TrainOptions,
        mlm_probability: f64,
    ) -> Result<Self> {
        if !(0.01..=0.5).contains(&mlm_probability) {
            return Err(Error::Input(
                "pre-training needs an MLM probability in [0.01, 0.5]".into(),
            ));
        }
        let masked = (o.batch_size * o.max_seq_len) as f64 * mlm_probability * 1.5;
        Ok(MaskedPairs {
            corpora,
            mlm_probability,
            max_masked: masked as usize + 64,
            items: Vec::new(),
            held: Vec::new(),
            tokens: Tokens::default(),
            seed: o.seed,
            batch_size: o.batch_size,
        })
    }

    /// The tokenizer's masking tokens, and the training and held-out pairs; returns how many
    /// training pairs there are.
    pub(super) fn prepare(
        &mut self,
        tok: &Tokenizer,
        config: &BertConfig,
        o: &TrainOptions,
    ) -> Result<usize> {
        self.tokens = Tokens::of(tok, config)?;
        let mut pair_rng = Rng::new(o.seed ^ 0x9a1);
        (self.items, self.held) =
            train_and_held_pairs(tok, self.corpora, o.max_seq_len, &mut pair_rng)?;
        Ok(self.items.len())
    }

    fn batch(&self, chunk: &[&Pair], rng: &mut Rng) -> Result<(Padded, Vec<i64>, Vec<i64>)> {
        let shape = (self.mlm_probability, self.max_masked);
        masked_batch(self.tokens, shape, chunk, rng)
    }

    /// The masked batch of a step: its pairs, masks from the step's own seed (so that a
    /// resumed run draws them alike), the MLM and NSP labels.
    pub(super) fn step_batch(&self, batch: &Batch<'_>) -> Result<(Padded, Vec<i64>, Vec<i64>)> {
        let rows: Vec<_> = batch.chunk.iter().map(|&i| &self.items[i]).collect();
        let mut mask_rng =
            Rng::new(self.seed ^ (batch.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.batch(&rows, &mut mask_rng)
    }

    /// The held-out MLM loss on fixed masks (up to 256 pairs); `loss` gives one masked batch's
    /// (padded, MLM labels, NSP labels).
    pub(super) fn eval_mlm(
        &self,
        mut loss: impl FnMut(&Padded, &[i64], &[i64]) -> Result<f32>,
    ) -> Result<f32> {
        let mut mask_rng = Rng::new(self.seed ^ 0xe7a1);
        let (mut sum, mut n) = (0.0f64, 0usize);
        let refs: Vec<_> = self.held.iter().take(256).collect();
        for chunk in refs.chunks(self.batch_size) {
            let (padded, y, nsp) = self.batch(chunk, &mut mask_rng)?;
            let mlm = loss(&padded, &y, &nsp)?;
            let count = y.iter().filter(|&&l| l != IGNORE_INDEX).count();
            sum += f64::from(mlm) * count as f64;
            n += count;
        }
        Ok((sum / n.max(1) as f64) as f32)
    }
}

/// MLM + NSP on the shared loop: the heads the base lacks, the held-out MLM loss before and
/// after.
struct PreTraining<'d> {
    data: MaskedPairs<'d>,
    parts: Vec<(f32, f32)>,
    eval_mlm: (f32, f32),
}

impl Tokens {
    /// The tokenizer's mask, padding and special tokens, for a vocabulary of `config`'s size.
    fn of(tok: &Tokenizer, config: &BertConfig) -> Result<Self> {
        let s = &tok.special;
        let mask = s
            .mask
            .ok_or_else(|| Error::Input("the tokenizer has no [MASK] token".into()))?;
        Ok(Tokens {
            mask,
            pad: s.pad,
            specials: [s.cls, s.sep, s.pad],
            vocab: config.vocab_size as u32,
        })
    }
}

/// A masked batch of `chunk`: fresh masks from `rng` (at least one token, at most
/// `max_masked`), the MLM labels and the NSP labels.
fn masked_batch(
    t: Tokens,
    (mlm_probability, max_masked): (f64, usize),
    chunk: &[&Pair],
    rng: &mut Rng,
) -> Result<(Padded, Vec<i64>, Vec<i64>)> {
    {
        let masking = MaskingConfig {
            mlm_probability,
            mask_token_id: t.mask,
            vocab_size: t.vocab,
            special_token_ids: &t.specials,
        };
        let encs: Vec<&Encoding> = chunk.iter().map(|d| &d.enc).collect();
        let mut padded = Padded::new(&encs, t.pad);
        let mut y = vec![IGNORE_INDEX; padded.rows * padded.seq];
        for (r, e) in encs.iter().enumerate() {
            let span = r * padded.seq..r * padded.seq + e.len();
            let l = mask_tokens(&mut padded.ids[span.clone()], &masking, rng)?;
            y[span].copy_from_slice(&l);
        }
        let masked: Vec<usize> = (0..y.len()).filter(|&i| y[i] != IGNORE_INDEX).collect();
        if masked.is_empty() {
            // Mask the first ordinary token so that the MLM loss is defined.
            if let Some(i) =
                (0..y.len()).find(|&i| padded.mask[i] == 1 && !t.specials.contains(&padded.ids[i]))
            {
                y[i] = i64::from(padded.ids[i]);
                padded.ids[i] = t.mask;
            }
        }
        for &i in masked.iter().skip(max_masked) {
            padded.ids[i] = y[i] as u32;
            y[i] = IGNORE_INDEX;
        }
        let nsp: Vec<i64> = chunk.iter().map(|d| d.label).collect();
        Ok((padded, y, nsp))
    }
}

impl PreTraining<'_> {
    /// Held-out MLM loss on fixed masks.
    fn eval_mlm(&self, model: &BertForPreTraining<'_>, ws: &mut PreTrainWorkspace) -> Result<f32> {
        let trainer = PreTrainer::pretraining(model)?;
        self.data.eval_mlm(|padded, y, nsp| {
            Ok(trainer.loss(&padded.core_batch(), y, Some(nsp), ws)?.mlm)
        })
    }
}

impl FineTune for PreTraining<'_> {
    type Model<'w> = BertForPreTraining<'w>;
    type Workspace = PreTrainWorkspace;
    const HEAD: &'static str = "PreTraining";

    fn labels(&self) -> Vec<String> {
        vec!["LABEL_0".to_string(), "LABEL_1".to_string()]
    }

    fn config(&self, raw: &mut serde_json::Map<String, serde_json::Value>) {
        raw.insert("tie_word_embeddings".into(), serde_json::json!(true));
    }

    fn new_heads(
        &mut self,
        base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        let c = init.config;
        let heads = missing_heads(base, c.hidden_size, c.vocab_size, rng)?;
        Ok(vec![heads])
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForPreTraining::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, config: &BertConfig, o: &TrainOptions) -> Result<usize> {
        self.data.prepare(tok, config, o)
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, PreTrainWorkspace)> {
        let trainer = PreTrainer::pretraining(model)?;
        let mut ws = trainer.workspace(o.batch_size, o.max_seq_len, self.data.max_masked)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((trainer.grads(), ws))
    }

    fn before(&mut self, model: &Self::Model<'_>, ws: &mut PreTrainWorkspace) -> Result<()> {
        self.eval_mlm.0 = self.eval_mlm(model, ws)?;
        Ok(())
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut PreTrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let (padded, y, nsp) = self.data.step_batch(&batch)?;
        ws.set_dropout(batch.dropout);
        let loss = PreTrainer::pretraining(model)?.loss_and_grads(
            &padded.core_batch(),
            &y,
            Some(&nsp),
            ws,
            grads,
        )?;
        self.parts.push((loss.mlm, loss.nsp));
        Ok(loss.total)
    }

    fn after(&mut self, model: &Self::Model<'_>, ws: &mut PreTrainWorkspace) -> Result<()> {
        ws.set_dropout(None);
        self.eval_mlm.1 = self.eval_mlm(model, ws)?;
        Ok(())
    }
}

/// NSP accuracy on `held` of the checkpoint in `dir` as written, through the NSP pipeline, and
/// the share of the more frequent label (the baseline).
pub(super) fn held_out_nsp(dir: &Path, held: &[Pair]) -> Result<(f32, f32)> {
    let nsp = NextSentencePrediction::load(dir, LoadOptions::default())?;
    let inputs: Vec<(&str, &str)> = held.iter().map(|d| (d.a.as_str(), d.b.as_str())).collect();
    let predicted = nsp.run(&inputs, &())?;
    let correct = predicted
        .iter()
        .zip(held)
        .filter(|(p, d)| i64::from(p.is_next < 0.5) == d.label)
        .count();
    let positives = held.iter().filter(|d| d.label == 0).count();
    let n = held.len().max(1) as f32;
    Ok((
        correct as f32 / n,
        positives.max(held.len() - positives) as f32 / n,
    ))
}
