//! The training steps of a distillation: the student model over its first weights, the core's
//! [`DistillTrainer`] on padded batches of the texts' ids, the shared epoch loop (shuffles,
//! AdamW, states for `--resume`), and a sentence-transformers directory as each checkpoint.

use std::path::Path;

use bert_core::train::distill::{DistillTrainer, InBatchPairs, SentenceEncoder};
use bert_core::train::Grads;
use bert_core::{Batch, Weights};

use super::setup::{Prepared, Student};
use super::teacher::TeacherEmbeddings;
use super::{layout, serialize_f32, DistillOptions, PROJECTION};
use crate::batching::RayonJoin;
use crate::error::Result;
use crate::model_dir::ModelDir;
use crate::task_models::Progress;
use crate::train::checkpoint::Param;
use crate::train::epochs::Run;
use crate::train::fine_tune::dropout_at;

/// Train `student` on `data`, writing checkpoints to `out`; returns the loss of every step.
pub(super) fn train(
    o: &DistillOptions,
    data: &Prepared,
    student: &Student,
    out: &Path,
    progress: &mut (dyn Progress + Send),
) -> Result<Vec<f32>> {
    let t = &o.train;
    let bytes = serialize_f32(&student.tensors)?;
    let weights = Weights::from_buffers(&[&bytes])?;
    let projection = (student.projection > 0).then_some((PROJECTION, student.projection));
    let mut model = SentenceEncoder::load(&student.config, &weights, projection)?;
    let (mut grads, mut ws) = {
        let trainer = DistillTrainer::new(&model)?;
        // A pair is two texts: a batch of pairs holds twice as many sequences.
        let rows = if data.pairs.is_empty() {
            t.batch_size
        } else {
            2 * t.batch_size
        };
        let mut ws = trainer.workspace(rows, data.max_len)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        (trainer.grads_named(PROJECTION), ws)
    };
    let layout = layout::Layout {
        tokenizer: &data.vocab_dir,
        config: &student.raw,
        max_seq_length: data.max_len,
    };
    let save = |params: &[Param<'_>], losses: &[f32]| {
        let mut all = params.to_vec();
        all.extend(
            student
                .fixed
                .iter()
                .map(|(n, s, v)| ((n.as_str(), s.as_slice()), v.as_slice())),
        );
        layout::save_student(out, &layout, &all, losses)
    };
    let base = ModelDir::open(&data.vocab_dir)?;
    let run = Run {
        options: t,
        examples: data.items(),
        base: &base,
        config: &student.raw,
        out,
        save: Some(&save),
        state_every: o.state_every,
    };
    let mut batch = Padding::default();
    let mut step =
        |model: &SentenceEncoder<'_>, index: usize, chunk: &[usize], grads: &mut Grads| {
            ws.set_dropout(dropout_at(&student.raw, t, index));
            batch.fill(data, &student.targets, chunk);
            let b = batch.batch();
            let trainer = DistillTrainer::new(model)?;
            if batch.pairs.is_empty() {
                return Ok(trainer.loss_and_grads(&b, &batch.targets, &mut ws, grads)?);
            }
            let pairs = InBatchPairs {
                pairs: &batch.pairs,
                scale: o.pairs.scale,
                weight: o.pairs.weight,
            };
            let (mse, ranking) =
                trainer.loss_and_grads_with_pairs(&b, &batch.targets, &pairs, &mut ws, grads)?;
            Ok(mse + ranking)
        };
    let mut rng = student.rng.clone();
    run.epochs(&mut model, &mut rng, &mut grads, &mut step, &mut |s| {
        progress.step(s)
    })
}

/// One padded batch's buffers, reused from step to step.
#[derive(Default)]
struct Padding {
    ids: Vec<u32>,
    mask: Vec<u32>,
    targets: Vec<f32>,
    seq: usize,
    /// The texts of the batch, in row order.
    texts: Vec<usize>,
    /// The batch's pairs, as rows.
    pairs: Vec<(usize, usize)>,
}

impl Padding {
    /// The items `chunk` (a text, or a pair of texts: see [`Prepared::items`]) as rows,
    /// right-padded to the longest, with their targets.
    fn fill(&mut self, data: &Prepared, targets: &TeacherEmbeddings, chunk: &[usize]) {
        self.texts.clear();
        self.pairs.clear();
        let n = data.texts.len();
        for &item in chunk {
            if item < n {
                self.texts.push(item);
            } else {
                let (a, b) = data.pairs[item - n];
                self.pairs.push((self.texts.len(), self.texts.len() + 1));
                self.texts.extend([a, b]);
            }
        }
        self.seq = self
            .texts
            .iter()
            .map(|&i| data.ids[i].len())
            .max()
            .unwrap_or(1);
        self.ids.clear();
        self.mask.clear();
        self.targets.clear();
        for &i in &self.texts {
            let row = &data.ids[i];
            let pad = self.seq - row.len();
            self.ids.extend_from_slice(row);
            self.ids.extend(std::iter::repeat_n(data.pad, pad));
            self.mask.extend(std::iter::repeat_n(1u32, row.len()));
            self.mask.extend(std::iter::repeat_n(0u32, pad));
            self.targets.extend_from_slice(targets.row(i));
        }
    }

    /// The core's view of it.
    fn batch(&self) -> Batch<'_> {
        Batch {
            input_ids: &self.ids,
            attention_mask: Some(&self.mask),
            token_type_ids: None,
            batch_size: self.texts.len(),
            seq_len: self.seq,
        }
    }
}
