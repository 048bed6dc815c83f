//! The training steps of a distillation: the student model over its first weights, the core's
//! [`DistillTrainer`] on padded batches of the texts' ids, the shared epoch loop (shuffles,
//! AdamW, states for `--resume`), and a sentence-transformers directory as each checkpoint.

use std::path::Path;

use bert_core::train::distill::{DistillTrainer, SentenceEncoder};
use bert_core::train::Grads;
use bert_core::{Batch, Weights};

use super::setup::{Prepared, Student};
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
        let mut ws = trainer.workspace(t.batch_size, data.max_len)?;
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
        examples: data.texts.len(),
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
            let b = batch.batch(chunk.len());
            Ok(DistillTrainer::new(model)?.loss_and_grads(&b, &batch.targets, &mut ws, grads)?)
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
}

impl Padding {
    /// The texts `chunk`, right-padded to the longest, and their targets.
    fn fill(
        &mut self,
        data: &Prepared,
        targets: &super::teacher::TeacherEmbeddings,
        chunk: &[usize],
    ) {
        self.seq = chunk.iter().map(|&i| data.ids[i].len()).max().unwrap_or(1);
        self.ids.clear();
        self.mask.clear();
        self.targets.clear();
        for &i in chunk {
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
    fn batch(&self, rows: usize) -> Batch<'_> {
        Batch {
            input_ids: &self.ids,
            attention_mask: Some(&self.mask),
            token_type_ids: None,
            batch_size: rows,
            seq_len: self.seq,
        }
    }
}
