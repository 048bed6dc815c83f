//! A model whose weights stay in the file: the safetensors files are memory-mapped (or read,
//! where mmap is unwanted) and the core's model borrows them zero-copy. [`LoadedModel`] owns
//! both; `self_cell` ties the borrow to the owner without `unsafe` here.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use bert_core::weights::AlignedBytes;
use bert_core::{
    BertConfig, BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining,
    BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification, BertModel,
    Weights,
};
use memmap2::Mmap;
use std::io::Read;

use crate::error::{Error, Result};
use crate::model_dir::ModelDir;

/// The bytes of one weight file.
pub enum WeightBytes {
    /// Memory-mapped: pages come from the page cache, shared between processes.
    Mapped(Mmap),
    /// Read into memory (an 8-byte aligned buffer, so that the weights are still borrowed).
    Read(AlignedBytes),
}

impl Deref for WeightBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WeightBytes::Mapped(m) => m,
            WeightBytes::Read(v) => v,
        }
    }
}

impl WeightBytes {
    /// Map (or read) a file.
    pub fn open(path: &Path, mmap: bool) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        if !mmap {
            let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
            let len = usize::try_from(len).map_err(|_| {
                Error::file(path, "file is larger than this machine's address space")
            })?;
            let mut bytes = AlignedBytes::zeroed(len);
            file.read_exact(bytes.as_mut_bytes())
                .map_err(|e| Error::io(path, e))?;
            return Ok(WeightBytes::Read(bytes));
        }
        // SAFETY: the mapping is read-only and private to this process. memmap2 requires the
        // caller to promise the file is not modified while mapped; a model file being rewritten
        // under a running process is outside what we support (as for every mmap-based loader),
        // and is documented on `LoadOptions::mmap`. Nothing else in the process writes to it.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(WeightBytes::Mapped(map))
    }
}

/// Which model class to build: HF's `architectures` names map onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `BertModel` (hidden states, pooler).
    Base,
    /// `BertForMaskedLM`.
    MaskedLm,
    /// `BertForNextSentencePrediction`.
    NextSentence,
    /// `BertForPreTraining`.
    PreTraining,
    /// `BertForSequenceClassification`.
    SequenceClassification,
    /// `BertForTokenClassification`.
    TokenClassification,
    /// `BertForQuestionAnswering`.
    QuestionAnswering,
}

impl Task {
    /// The task of an HF architecture name (`BertForMaskedLM`, `RobertaForSequenceClassification`,
    /// `DistilBertModel`, ...).
    pub fn from_architecture(name: &str) -> Option<Task> {
        match name {
            "BertForNextSentencePrediction" => return Some(Task::NextSentence),
            "BertForPreTraining" => return Some(Task::PreTraining),
            _ => {}
        }
        let head = [
            "Bert",
            "Roberta",
            "XLMRoberta",
            "Electra",
            "DistilBert",
            "ModernBert",
        ]
        .iter()
        .find_map(|family| name.strip_prefix(family))?;
        Some(match head {
            "Model" => Task::Base,
            "ForMaskedLM" => Task::MaskedLm,
            "ForSequenceClassification" => Task::SequenceClassification,
            "ForTokenClassification" => Task::TokenClassification,
            "ForQuestionAnswering" => Task::QuestionAnswering,
            _ => return None,
        })
    }

    /// The task the config's `architectures` names (BertModel when none is given).
    pub fn of_config(config: &BertConfig) -> Result<Task> {
        match config.architectures.first() {
            None => Ok(Task::Base),
            Some(a) => Task::from_architecture(a).ok_or_else(|| {
                let family = config.arch.family.model_type();
                if config.arch.family == bert_core::Family::Bert {
                    Error::Model(format!(
                        "architecture {a:?} is not a BERT model bert-rs knows"
                    ))
                } else {
                    Error::Model(format!(
                        "architecture {a:?}: the {family} encoder runs (as its base model, for \
                         embeddings), its task heads are not supported yet"
                    ))
                }
            }),
        }
    }
}

/// The core model of each task, borrowing the weight bytes.
pub enum TaskModel<'a> {
    /// See [`Task::Base`].
    Base(BertModel<'a>),
    /// See [`Task::MaskedLm`].
    MaskedLm(BertForMaskedLM<'a>),
    /// See [`Task::NextSentence`].
    NextSentence(BertForNextSentencePrediction<'a>),
    /// See [`Task::PreTraining`].
    PreTraining(BertForPreTraining<'a>),
    /// See [`Task::SequenceClassification`].
    SequenceClassification(BertForSequenceClassification<'a>),
    /// See [`Task::TokenClassification`].
    TokenClassification(BertForTokenClassification<'a>),
    /// See [`Task::QuestionAnswering`].
    QuestionAnswering(BertForQuestionAnswering<'a>),
}

impl<'a> TaskModel<'a> {
    fn load(task: Task, config: &BertConfig, w: &Weights<'a>) -> bert_core::Result<Self> {
        Ok(match task {
            Task::Base => TaskModel::Base(BertModel::load(config, w)?),
            Task::MaskedLm => TaskModel::MaskedLm(BertForMaskedLM::load(config, w)?),
            Task::NextSentence => {
                TaskModel::NextSentence(BertForNextSentencePrediction::load(config, w)?)
            }
            Task::PreTraining => TaskModel::PreTraining(BertForPreTraining::load(config, w)?),
            Task::SequenceClassification => {
                TaskModel::SequenceClassification(BertForSequenceClassification::load(config, w)?)
            }
            Task::TokenClassification => {
                TaskModel::TokenClassification(BertForTokenClassification::load(config, w)?)
            }
            Task::QuestionAnswering => {
                TaskModel::QuestionAnswering(BertForQuestionAnswering::load(config, w)?)
            }
        })
    }

    /// The encoder underneath the head, mutably.
    pub fn bert_mut(&mut self) -> &mut BertModel<'a> {
        match self {
            TaskModel::Base(m) => m,
            TaskModel::MaskedLm(m) => &mut m.bert,
            TaskModel::NextSentence(m) => &mut m.bert,
            TaskModel::PreTraining(m) => &mut m.bert,
            TaskModel::SequenceClassification(m) => &mut m.bert,
            TaskModel::TokenClassification(m) => &mut m.bert,
            TaskModel::QuestionAnswering(m) => &mut m.bert,
        }
    }

    /// The encoder underneath the head.
    pub fn bert(&self) -> &BertModel<'a> {
        match self {
            TaskModel::Base(m) => m,
            TaskModel::MaskedLm(m) => &m.bert,
            TaskModel::NextSentence(m) => &m.bert,
            TaskModel::PreTraining(m) => &m.bert,
            TaskModel::SequenceClassification(m) => &m.bert,
            TaskModel::TokenClassification(m) => &m.bert,
            TaskModel::QuestionAnswering(m) => &m.bert,
        }
    }
}

impl TaskModel<'_> {
    /// A workspace for up to `max_batch` x `max_seq` tokens with this head's buffers; for the
    /// masked LM, `extra` > 0 sizes it for [`BertForMaskedLM::forward_at`] at that many
    /// positions instead of vocabulary logits at every token.
    pub fn workspace(
        &self,
        max_batch: usize,
        max_seq: usize,
        extra: usize,
    ) -> bert_core::Result<bert_core::Workspace> {
        match self {
            TaskModel::Base(m) => m.workspace(max_batch, max_seq),
            TaskModel::MaskedLm(m) if extra > 0 => m.workspace_at(max_batch, max_seq, extra),
            TaskModel::MaskedLm(m) => m.workspace(max_batch, max_seq),
            TaskModel::NextSentence(m) => m.workspace(max_batch, max_seq),
            TaskModel::PreTraining(m) => m.workspace(max_batch, max_seq),
            TaskModel::SequenceClassification(m) => m.workspace(max_batch, max_seq),
            TaskModel::TokenClassification(m) => m.workspace(max_batch, max_seq),
            TaskModel::QuestionAnswering(m) => m.workspace(max_batch, max_seq),
        }
    }
}

/// A core model a pipeline runs: picked out of a [`TaskModel`] once, in one place
/// ([`crate::Bert::forward_batches`]), so that pipelines are written against the head's type.
pub trait Head<'a>: Sized + Sync {
    /// What the head is called in an error ("masked-LM", ...).
    const NAME: &'static str;
    /// The head inside `model`, if the model was loaded with it.
    fn select<'m>(model: &'m TaskModel<'a>) -> Option<&'m Self>;
}

macro_rules! heads {
    ($($ty:ident => $name:literal: $($variant:ident($bind:ident) => $expr:expr),+;)+) => {$(
        impl<'a> Head<'a> for $ty<'a> {
            const NAME: &'static str = $name;
            fn select<'m>(model: &'m TaskModel<'a>) -> Option<&'m Self> {
                match model {
                    $(TaskModel::$variant($bind) => Some($expr),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    )+};
}

heads! {
    BertModel => "encoder":
        Base(m) => m, MaskedLm(m) => &m.bert, NextSentence(m) => &m.bert,
        PreTraining(m) => &m.bert, SequenceClassification(m) => &m.bert,
        TokenClassification(m) => &m.bert, QuestionAnswering(m) => &m.bert;
    BertForMaskedLM => "masked-LM": MaskedLm(m) => m;
    BertForNextSentencePrediction => "next-sentence": NextSentence(m) => m;
    BertForSequenceClassification => "sequence-classification": SequenceClassification(m) => m;
    BertForTokenClassification => "token-classification": TokenClassification(m) => m;
    BertForQuestionAnswering => "question-answering": QuestionAnswering(m) => m;
}

self_cell::self_cell!(
    struct Cell {
        owner: Vec<WeightBytes>,
        #[covariant]
        dependent: TaskModel,
    }
);

/// A loaded model: owns the weight bytes, lends the core model.
pub struct LoadedModel {
    cell: Cell,
    task: Task,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("task", &self.task)
            .finish()
    }
}

impl LoadedModel {
    /// Load `dir`'s weights as `task`. With `mmap`, the files are mapped, not read.
    pub fn load(dir: &ModelDir, task: Task, mmap: bool) -> Result<Self> {
        let bytes = dir
            .weight_files
            .iter()
            .map(|p| WeightBytes::open(p, mmap))
            .collect::<Result<Vec<_>>>()?;
        Self::from_bytes(bytes, &dir.config, task).map_err(|e| match e {
            Error::Core(source) => Error::Weights {
                path: dir.root.clone(),
                source,
            },
            other => other,
        })
    }

    /// Load `dir`'s weights converted to `dtype` in memory (the file is left as it is).
    pub fn load_converted(
        dir: &ModelDir,
        task: Task,
        dtype: bert_core::quantize::QuantDtype,
    ) -> Result<Self> {
        let files = dir
            .weight_files
            .iter()
            .map(|p| WeightBytes::open(p, true))
            .collect::<Result<Vec<_>>>()?;
        let buffers: Vec<&[u8]> = files.iter().map(|b| &**b).collect();
        let converted =
            bert_core::quantize::quantize(&buffers, dtype).map_err(|source| Error::Weights {
                path: dir.root.clone(),
                source,
            })?;
        let bytes = WeightBytes::Read(AlignedBytes::copy_from(&converted));
        Self::from_bytes(vec![bytes], &dir.config, task).map_err(|e| match e {
            Error::Core(source) => Error::Weights {
                path: dir.root.clone(),
                source,
            },
            other => other,
        })
    }

    /// Build from weight bytes already in hand.
    pub fn from_bytes(bytes: Vec<WeightBytes>, config: &BertConfig, task: Task) -> Result<Self> {
        let cell = Cell::try_new(bytes, |owner| {
            let buffers: Vec<&[u8]> = owner.iter().map(|b| &**b).collect();
            let weights = Weights::from_buffers(&buffers)?;
            TaskModel::load(task, config, &weights)
        })?;
        Ok(LoadedModel { cell, task })
    }

    /// The task it was loaded for.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The core model.
    pub fn model(&self) -> &TaskModel<'_> {
        self.cell.borrow_dependent()
    }

    /// Pack the encoder's weights once for the kernels in use ([`BertModel::prepack`]):
    /// faster, most of all for small batches, for one f32 copy of the encoder's linear weights
    /// in memory (int8 weights are left as they are).
    pub fn prepack(&mut self) {
        self.prepack_as(bert_core::kernels::Precision::Stored);
    }

    /// [`prepack`](Self::prepack) for products in `precision` ([`BertModel::prepack_as`]).
    pub fn prepack_as(&mut self, precision: bert_core::kernels::Precision) {
        self.cell
            .with_dependent_mut(|_, model| model.bert_mut().prepack_as(precision));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures_of_every_family_map_to_tasks() {
        assert_eq!(Task::from_architecture("BertModel"), Some(Task::Base));
        assert_eq!(
            Task::from_architecture("XLMRobertaForSequenceClassification"),
            Some(Task::SequenceClassification)
        );
        assert_eq!(
            Task::from_architecture("DistilBertForMaskedLM"),
            Some(Task::MaskedLm)
        );
        assert_eq!(
            Task::from_architecture("ElectraForQuestionAnswering"),
            Some(Task::QuestionAnswering)
        );
        assert_eq!(
            Task::from_architecture("BertForPreTraining"),
            Some(Task::PreTraining)
        );
        assert_eq!(
            Task::from_architecture("ModernBertForTokenClassification"),
            Some(Task::TokenClassification)
        );
        assert_eq!(Task::from_architecture("ElectraForPreTraining"), None);
        assert_eq!(Task::from_architecture("GPT2LMHeadModel"), None);
    }
}
