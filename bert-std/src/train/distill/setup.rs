//! Everything a distillation needs before its first step: the texts' pruned-vocabulary token
//! ids and the teacher's embeddings of them ([`prepare`]); the student's config, first weights
//! and training targets ([`student`]).

use std::path::{Path, PathBuf};

use bert_core::rng::Rng;
use bert_core::{BertConfig, Weights};
use rayon::prelude::*;
use serde_json::{Map, Value};

use super::cut::{from_teacher, Teacher};
use super::student::{self, StudentShape, Tensor};
use super::teacher::{self, TeacherEmbeddings};
use super::{linalg, DistillOptions, Init, Projection, PROJECTION};
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
use crate::task_models::Progress;
use crate::tokenizer::Tokenizer;

/// The corpus, ready to train on.
pub(super) struct Prepared {
    /// The texts.
    pub texts: Vec<String>,
    /// The pruned teacher (its tokenizer files are the student's).
    pub vocab_dir: PathBuf,
    /// Tokens in the student's vocabulary.
    pub vocab: usize,
    /// Each text's token ids with the student's vocabulary, cut to `max_len`.
    pub ids: Vec<Vec<u32>>,
    /// The padding id.
    pub pad: u32,
    /// The longest input.
    pub max_len: usize,
    /// The teacher's embeddings of the texts.
    pub targets: TeacherEmbeddings,
    /// (question, passage) pairs trained on, as indices into `texts` (empty: none).
    pub pairs: Vec<(usize, usize)>,
}

impl Prepared {
    /// Training items: every text alone, then every pair.
    pub fn items(&self) -> usize {
        self.texts.len() + self.pairs.len()
    }
}

/// Prune the teacher's vocabulary on `texts` into `work/vocab`, embed them with the teacher
/// (or read the embeddings back from the cache), and tokenize them for the student.
pub(super) fn prepare(
    teacher: &Path,
    texts: Vec<String>,
    o: &DistillOptions,
    work: &Path,
    progress: &mut (dyn Progress + Send),
) -> Result<Prepared> {
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
    let max_len = o.train.max_seq_len.min(o.shape.max_positions);
    let tok = Tokenizer::from_dir(&vocab_dir)?;
    let ids = texts
        .par_iter()
        .map(|text| {
            Ok(tok
                .encode_truncated(text, None, max_len)?
                .get_ids()
                .to_vec())
        })
        .collect::<Result<_>>()?;
    Ok(Prepared {
        texts,
        vocab_dir,
        vocab: pruned.vocab.1,
        ids,
        pad: tok.special.pad,
        max_len,
        targets,
        pairs: Vec::new(),
    })
}

/// The student before its first step.
pub(super) struct Student {
    /// Its `config.json`.
    pub raw: Map<String, Value>,
    /// The same, parsed.
    pub config: BertConfig,
    /// Its trained tensors' first values.
    pub tensors: Vec<Tensor>,
    /// Tensors saved with it but not trained (the fixed `Dense` layer of [`Projection::Pca`]).
    pub fixed: Vec<Tensor>,
    /// What it is trained to give for each text, `[texts, width]`.
    pub targets: TeacherEmbeddings,
    /// The learned projection's width (0: none).
    pub projection: usize,
    /// The run's generator after drawing the first weights (the epochs' shuffles go on
    /// from it).
    pub rng: Rng,
}

impl Student {
    /// Its trained parameters.
    pub fn parameters(&self) -> usize {
        self.tensors.iter().map(|(_, _, v)| v.len()).sum()
    }
}

/// The student's config, first weights and targets.
pub(super) fn student(teacher: &Path, o: &DistillOptions, data: &Prepared) -> Result<Student> {
    let teacher_dir = ModelDir::open(teacher)?;
    let mut raw = o.shape.config(&teacher_dir.config.raw, data.vocab);
    raw.insert("type_vocab_size".into(), 2.into());
    let config = BertConfig::from_map(raw.clone())?;
    let width = data.targets.width;
    let hidden = o.shape.hidden;
    if o.projection == Projection::None && width != hidden {
        return Err(Error::Input(format!(
            "the student is {hidden} wide and the teacher's embeddings {width}: use a projection"
        )));
    }
    // Under `Pca` the targets become coordinates in the teacher's top directions, and the
    // basis is saved as a fixed `Dense` layer back to the teacher's space; static init starts
    // from the same directions.
    let wants_basis = o.projection == Projection::Pca || o.init == Init::Static;
    if wants_basis && hidden > width {
        return Err(Error::Input(format!(
            "--projection pca and --init static: the student ({hidden} wide) must not be wider \
             than the teacher's embeddings ({width})"
        )));
    }
    let pca =
        wants_basis.then(|| linalg::principal_directions_f32(&data.targets.data, width, hidden));
    let start = match (&pca, o.init) {
        (Some(b), Init::Static) => Some(student::StaticStart {
            rows: teacher::token_rows(teacher, &data.vocab_dir, b)?,
            projection: b.transpose(),
        }),
        _ => None,
    };
    let (targets, fixed) = match (o.projection, pca) {
        (Projection::Pca, Some(b)) => {
            // The saved `Dense` layer: weight = basisᵀ ([teacher width, hidden]), bias 0.
            let w = b.transpose().data.iter().map(|&x| x as f32).collect();
            let fixed = vec![
                (format!("{PROJECTION}.weight"), vec![b.cols, b.rows], w),
                (
                    format!("{PROJECTION}.bias"),
                    vec![b.cols],
                    vec![0.0; b.cols],
                ),
            ];
            (teacher::in_basis(&data.targets, &b), fixed)
        }
        _ => (data.targets.clone(), Vec::new()),
    };
    // Targets scaled to a root mean square of 1 per element, the scale of the student's
    // LayerNorm outputs: the final Normalize module makes the scale irrelevant to the
    // embeddings, and the student need not shrink its outputs first.
    let targets = teacher::unit_rms(targets);
    let projection = if o.projection == Projection::Learned {
        width
    } else {
        0
    };
    let vocab_dir = &data.vocab_dir;
    let pruned_bytes =
        std::fs::read(vocab_dir.join("model.safetensors")).map_err(|e| Error::io(vocab_dir, e))?;
    let pruned_weights = Weights::from_buffers(&[&pruned_bytes])?;
    let pruned_config = BertConfig::from_json(
        &std::fs::read_to_string(vocab_dir.join("config.json"))
            .map_err(|e| Error::io(vocab_dir, e))?,
    )?;
    let mut rng = Rng::new(o.train.seed);
    let tensors = init_tensors(
        &o.shape,
        o.init,
        &pruned_weights,
        &pruned_config,
        projection,
        start.as_ref(),
        &mut rng,
    )?;
    Ok(Student {
        raw,
        config,
        tensors,
        fixed,
        targets,
        projection,
        rng,
    })
}

/// The student's first tensors (bare BERT names, then `projection.weight` / `.bias` when
/// `projection` > 0), for `vocab` tokens whose teacher rows are `teacher`'s word embeddings
/// (already cut to the student's vocabulary).
fn init_tensors(
    shape: &StudentShape,
    init: Init,
    teacher: &Weights<'_>,
    teacher_config: &bert_core::BertConfig,
    projection: usize,
    start: Option<&student::StaticStart>,
    rng: &mut Rng,
) -> Result<Vec<Tensor>> {
    let t = Teacher::new(teacher);
    let word = t.get("embeddings.word_embeddings.weight")?;
    let vocab = word.rows;
    if shape.factorized() && init != Init::Random {
        return Err(Error::Input(
            "a student with narrower embedding tables starts from random weights (--init random)"
                .into(),
        ));
    }
    match (init, start) {
        (Init::Random, _) => Ok(student::random(shape, vocab, projection, rng)),
        (Init::Teacher, _) => from_teacher(shape, &t, teacher_config, word, projection),
        (Init::Static, None) => Err(Error::Input("static init needs its token vectors".into())),
        (Init::Static, Some(start)) => {
            let mut tensors = student::random(shape, vocab, projection, rng);
            for (name, shape, values) in tensors.iter_mut() {
                let from = match name.as_str() {
                    "embeddings.word_embeddings.weight" => &start.rows,
                    "projection.weight" => &start.projection,
                    _ => continue,
                };
                if [from.rows, from.cols] != shape[..] {
                    return Err(Error::Input(format!(
                        "static init: {name} is {shape:?}, the start is {}x{}",
                        from.rows, from.cols
                    )));
                }
                *values = from.data.iter().map(|&x| x as f32).collect();
            }
            Ok(tensors)
        }
    }
}
