//! Fine-tuning extractive QA, as the seed's QA chapter and HF's `run_qa.py` do it: each question
//! and its passage are cut into the same overlapping windows the QA pipeline scores at inference;
//! a window that holds the whole answer is labelled with the answer's first and last token, the
//! others with `[CLS]` (position 0, "not here"); a new `qa_outputs` head is trained with the
//! encoder on `(CE(start) + CE(end)) / 2`. The held-out score is SQuAD's exact match and token F1
//! of what the saved checkpoint answers through [`QuestionAnswering`], next to a word-overlap
//! baseline ([`overlap_baseline`]).

use std::path::{Path, PathBuf};

use bert_core::rng::Rng;
use bert_core::train::qa::QaTrainer;
use bert_core::train::workspace::TrainWorkspace;
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForQuestionAnswering, Weights};
use tokenizers::Encoding;

use super::fine_tune::{fine_tune, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use super::qa_data::{exact_match, overlap_baseline, token_f1, QaExample};
use crate::batching::{Padded, RayonJoin};
use crate::error::Result;
use crate::pipelines::qa::{QaOptions, QuestionAnswering};
use crate::runtime::LoadOptions;
use crate::tokenizer::Tokenizer;
use crate::Pipeline;

/// How questions become training windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QaWindows {
    /// Overlap between windows in tokens (at most half the window is used).
    pub doc_stride: usize,
    /// Share of the windows without the answer that are kept (labelled `[CLS]`), drawn with the
    /// run's seed.
    pub negative_share: f32,
    /// Most windows holding the answer kept per question (the first ones); long passages
    /// (NarrativeQA's ~730 tokens) hold an answer in two or three overlapping windows.
    pub answer_windows: usize,
}

impl Default for QaWindows {
    fn default() -> Self {
        QaWindows {
            doc_stride: 128,
            negative_share: 0.1,
            answer_windows: usize::MAX,
        }
    }
}

/// What a QA training run gives.
#[derive(Debug, Clone)]
pub struct QaReport {
    /// Every step's loss.
    pub losses: Vec<f32>,
    /// Training windows used, and how many of them hold the answer.
    pub windows: (usize, usize),
    /// Held-out questions.
    pub eval_questions: usize,
    /// Held-out exact match and token F1 (SQuAD definitions, best over the reference answers).
    pub exact_match: f32,
    /// See `exact_match`.
    pub f1: f32,
    /// The baseline's exact match and F1 on the same questions.
    pub baseline: (f32, f32),
    /// The model's answer to each held-out question.
    pub predictions: Vec<String>,
    /// Where the model was written.
    pub out: PathBuf,
}

/// The windows of one question (as the QA pipeline cuts them) with the answer's first and last
/// token in each, or `(0, 0)` (`[CLS]`) where the window does not hold the whole answer (every
/// window of an unanswerable question).
pub fn labelled_windows(
    tok: &Tokenizer,
    ex: &QaExample,
    max_seq_len: usize,
    doc_stride: usize,
) -> Result<Vec<(Encoding, usize, usize)>> {
    let windows = tok.encode_windows(&ex.question, &ex.passage, max_seq_len, doc_stride)?;
    if ex.is_impossible() {
        return Ok(windows.into_iter().map(|enc| (enc, 0, 0)).collect());
    }
    Ok(windows
        .into_iter()
        .map(|enc| {
            let context: Vec<usize> = (0..enc.len())
                .filter(|&t| enc.get_sequence_ids()[t] == Some(1))
                .collect();
            let offsets = enc.get_offsets();
            let (first, last) = match (context.first(), context.last()) {
                (Some(&f), Some(&l)) => (f, l),
                _ => return (enc, 0, 0),
            };
            if offsets[first].0 > ex.start || offsets[last].1 < ex.end {
                return (enc, 0, 0);
            }
            // The last token starting at or before the answer, the first ending at or after it.
            let start = context
                .iter()
                .rev()
                .find(|&&t| offsets[t].0 <= ex.start)
                .copied()
                .unwrap_or(first);
            let end = context
                .iter()
                .find(|&&t| offsets[t].1 >= ex.end)
                .copied()
                .unwrap_or(last);
            (enc, start, end.max(start))
        })
        .collect())
}

/// Fine-tune `base` for extractive QA on `train` (windows as [`QaWindows`] says), score it on
/// `eval` through the QA pipeline, write the model to `out`.
pub fn train_qa(
    base: &Path,
    train: &[QaExample],
    eval: &[QaExample],
    o: &TrainOptions,
    w: &QaWindows,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<QaReport> {
    let mut task = Reader {
        train,
        windows: *w,
        items: Vec::new(),
        answer_windows: 0,
        pad: 0,
        shape: (o.max_seq_len, w.doc_stride),
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    let (max_seq_len, doc_stride) = task.shape;
    let score = evaluate_qa(out, eval, max_seq_len, doc_stride)?;
    Ok(QaReport {
        losses,
        windows: (task.items.len(), task.answer_windows),
        eval_questions: eval.len(),
        exact_match: score.exact_match,
        f1: score.f1,
        baseline: score.baseline,
        predictions: score.predictions,
        out: out.to_path_buf(),
    })
}

/// Extractive QA on the shared loop: a new `qa_outputs` head; windows cut as the pipeline cuts
/// them, labelled with the answer's first and last token (or `[CLS]`).
struct Reader<'d> {
    train: &'d [QaExample],
    windows: QaWindows,
    /// Training windows: encoding, start, end.
    items: Vec<(Encoding, usize, usize)>,
    /// Windows that hold their answer.
    answer_windows: usize,
    pad: u32,
    /// (window length, stride), cut to what the model holds.
    shape: (usize, usize),
}

impl FineTune for Reader<'_> {
    type Model<'w> = BertForQuestionAnswering<'w>;
    type Workspace = TrainWorkspace;
    const HEAD: &'static str = "QuestionAnswering";

    fn labels(&self) -> Vec<String> {
        vec!["LABEL_0".to_string(), "LABEL_1".to_string()]
    }

    fn new_heads(
        &mut self,
        _base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(vec![init.token_head(rng, "qa_outputs", 2)?])
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForQuestionAnswering::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, config: &BertConfig, o: &TrainOptions) -> Result<usize> {
        let max_seq_len = o.max_seq_len.min(config.max_position_embeddings);
        let doc_stride = self.windows.doc_stride.min(max_seq_len / 2);
        self.shape = (max_seq_len, doc_stride);
        let mut sample = Rng::new(o.seed ^ 0x0a11);
        for (i, ex) in self.train.iter().enumerate() {
            let mut holding = 0;
            for (enc, s, e) in
                labelled_windows(tok, ex, max_seq_len, doc_stride).map_err(|e| e.at(i))?
            {
                // An unanswerable question's windows are kept as answer windows are (its
                // answer is `[CLS]`), as HF trains SQuAD v2.
                let keep = if s > 0 || ex.is_impossible() {
                    holding += 1;
                    holding <= self.windows.answer_windows
                } else {
                    (sample.next_f64() as f32) < self.windows.negative_share
                };
                if keep {
                    self.answer_windows += usize::from(s > 0);
                    self.items.push((enc, s, e));
                }
            }
        }
        self.pad = tok.special.pad;
        Ok(self.items.len())
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, TrainWorkspace)> {
        let trainer = QaTrainer::new(model)?;
        let mut ws = trainer.workspace(o.batch_size, self.shape.0)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((trainer.grads(), ws))
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut TrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        ws.set_dropout(batch.dropout);
        let encs: Vec<&Encoding> = batch.chunk.iter().map(|&i| &self.items[i].0).collect();
        let padded = Padded::new(&encs, self.pad);
        let starts: Vec<usize> = batch.chunk.iter().map(|&i| self.items[i].1).collect();
        let ends: Vec<usize> = batch.chunk.iter().map(|&i| self.items[i].2).collect();
        Ok(QaTrainer::new(model)?.loss_and_grads(
            &padded.core_batch(),
            &starts,
            &ends,
            ws,
            grads,
        )?)
    }
}

/// A QA model's held-out score.
#[derive(Debug, Clone)]
pub struct QaScore {
    /// SQuAD exact match (best over the reference answers), averaged.
    pub exact_match: f32,
    /// SQuAD token F1, averaged.
    pub f1: f32,
    /// The word-overlap baseline's (exact match, F1) on the same questions.
    pub baseline: (f32, f32),
    /// The model's answer to each question.
    pub predictions: Vec<String>,
}

/// Score the QA model in `model` on `eval` through the QA pipeline (windows of `max_seq_len`
/// tokens overlapping by `doc_stride`), next to [`overlap_baseline`].
pub fn evaluate_qa(
    model: &Path,
    eval: &[QaExample],
    max_seq_len: usize,
    doc_stride: usize,
) -> Result<QaScore> {
    let qa = QuestionAnswering::load(model, LoadOptions::default())?;
    let options = QaOptions {
        max_seq_len: Some(max_seq_len),
        doc_stride: Some(doc_stride),
        // SQuAD v2: "" is an answer when the data has unanswerable questions.
        handle_impossible_answer: eval.iter().any(QaExample::is_impossible),
        ..QaOptions::default()
    };
    let inputs: Vec<(&str, &str)> = eval
        .iter()
        .map(|e| (e.question.as_str(), e.passage.as_str()))
        .collect();
    let predictions: Vec<String> = qa
        .run(&inputs, &options)?
        .into_iter()
        .map(|a| a.into_iter().next().map(|a| a.answer).unwrap_or_default())
        .collect();
    let score = |answer: &dyn Fn(usize) -> String| {
        let (mut em, mut f1) = (0.0f32, 0.0f32);
        for (i, e) in eval.iter().enumerate() {
            let a = answer(i);
            em += f32::from(u8::from(exact_match(&a, &e.answers)));
            f1 += token_f1(&a, &e.answers);
        }
        let n = eval.len().max(1) as f32;
        (em / n, f1 / n)
    };
    let (exact_match, f1) = score(&|i| predictions[i].clone());
    let baseline = score(&|i| overlap_baseline(&eval[i].question, &eval[i].passage));
    Ok(QaScore {
        exact_match,
        f1,
        baseline,
        predictions,
    })
}
