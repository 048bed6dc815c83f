//! [`Workspace`]: every buffer of a forward pass, allocated once for a maximum (batch, seq) shape, and the per-thread scratch.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::error::{Error, Result};
use crate::kernels::{GemmNeeds, GemmScratch};
use crate::parallel::{Parallel, Sequential};

/// What each thread of a forward pass owns: matmul scratch and an attention score block (in a
/// training step also the gradient of one attention block's probabilities).
#[derive(Debug, Clone)]
pub struct ThreadScratch {
    pub(crate) gemm: GemmScratch,
    /// One attention block's scores; in a training step, its probabilities after dropout.
    pub(crate) scores: Vec<f32>,
    /// The other half's columns of a product of a few rows split by columns (sized by
    /// [`Workspace::set_parallelism`]; empty on one thread).
    pub(crate) columns: Vec<f32>,
    /// The gradient of one attention block's probabilities (training only; empty otherwise).
    pub(crate) dprobs: Vec<f32>,
}

impl ThreadScratch {
    /// Scratch for inference: `scores` of `scores` elements.
    pub(crate) fn new(needs: GemmNeeds, scores: usize) -> Self {
        ThreadScratch {
            gemm: GemmScratch::new(needs),
            scores: vec![0.0; scores],
            columns: Vec::new(),
            dprobs: Vec::new(),
        }
    }

    /// Scratch for a training step's forward and backward: scores and their gradient of
    /// `block` elements (one attention block, `max_seq²`).
    pub(crate) fn for_training(needs: GemmNeeds, block: usize) -> Self {
        ThreadScratch {
            dprobs: vec![0.0; block],
            ..Self::new(needs, block)
        }
    }

    /// Bytes of its buffers.
    pub fn size_in_bytes(&self) -> usize {
        self.gemm.size_in_bytes() + 4 * (self.scores.len() + self.columns.len() + self.dprobs.len())
    }
}

/// Every buffer a forward pass needs, allocated once for a maximum (batch, seq) shape and reused.
#[derive(Clone)]
pub struct Workspace {
    pub(crate) max_batch: usize,
    pub(crate) max_seq: usize,
    /// The widest output of any linear layer of the encoder (sizes the column buffers).
    pub(crate) widest_output: usize,
    pub(crate) hidden: Vec<f32>,
    /// Q, K and V: three `[tokens, hidden]` thirds, or one `[tokens, 3 · hidden]` matrix
    /// where the layer runs them as one product (see [`Qkv`](super::attention::Qkv)).
    pub(crate) qkv: Vec<f32>,
    pub(crate) context: Vec<f32>,
    pub(crate) attention_output: Vec<f32>,
    pub(crate) intermediate: Vec<f32>,
    pub(crate) mask_bias: Vec<f32>,
    /// For each packed token, its index in the padded `[batch * seq]` layout.
    pub(crate) packed_tokens: Vec<u32>,
    /// Packed row range of each sequence: sequence `b` is rows `offsets[b]..offsets[b + 1]`.
    pub(crate) offsets: Vec<usize>,
    pub(crate) remove_padding: bool,
    pub(crate) row: Vec<f32>,
    pub(crate) pooled: Vec<f32>,
    /// One per thread; `threads[0]` also serves the pooler and the heads.
    pub(crate) threads: Vec<ThreadScratch>,
    pub(crate) parallel: &'static dyn Parallel,
    /// Buffers for the task heads (sized by the head that created the workspace).
    pub(crate) head_output: Vec<f32>,
    pub(crate) head_work: Vec<f32>,
}

/// Extra buffers a task head needs in the [`Workspace`], in f32 elements.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadBuffers {
    /// The head's results (logits, start/end pairs), in f32 elements.
    pub output: usize,
    /// Its intermediate values (the MLM transform, the QA split), in f32 elements.
    pub work: usize,
    /// What the head's own products need from the matmul scratch.
    pub gemm: GemmNeeds,
}

/// The largest single workspace buffer, in f32 elements (4 GiB): a larger request is a
/// mistake or a hostile config, and is refused before anything is allocated.
pub const MAX_BUFFER_ELEMENTS: usize = 1 << 30;

fn sized(parts: &[usize]) -> Result<usize> {
    parts
        .iter()
        .try_fold(1usize, |a, &b| a.checked_mul(b))
        .filter(|&n| n <= MAX_BUFFER_ELEMENTS)
        .ok_or_else(|| Error::ResourceLimit {
            what: format!("workspace buffer {parts:?} (elements)"),
            limit: MAX_BUFFER_ELEMENTS,
        })
}

impl core::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace")
            .field("max_batch", &self.max_batch)
            .field("max_seq", &self.max_seq)
            .field("remove_padding", &self.remove_padding)
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl Workspace {
    /// Buffers for `model` at up to `max_batch` sequences of up to `max_seq` tokens, plus what
    /// a task head asks for.
    pub fn new(
        model: &BertModel<'_>,
        max_batch: usize,
        max_seq: usize,
        head: HeadBuffers,
    ) -> Result<Self> {
        let c = &model.config;
        if max_batch == 0 || max_seq == 0 {
            return Err(Error::EmptyBatch);
        }
        let t = sized(&[max_batch, max_seq])?;
        let th = sized(&[t, c.hidden_size])?;
        Ok(Workspace {
            max_batch,
            max_seq,
            widest_output: model.widest_output(),
            hidden: vec![0.0; th],
            qkv: vec![0.0; sized(&[3, th])?],
            context: vec![0.0; th],
            attention_output: vec![0.0; th],
            intermediate: vec![0.0; sized(&[t, c.feed_forward_width()])?],
            mask_bias: vec![0.0; t],
            packed_tokens: vec![0; t],
            offsets: vec![0; max_batch + 1],
            remove_padding: true,
            row: vec![0.0; c.hidden_size],
            pooled: vec![0.0; sized(&[max_batch, c.hidden_size])?],
            threads: vec![ThreadScratch::new(
                model.gemm_needs(max_batch, t).max(head.gemm),
                sized(&[max_seq, max_seq])?,
            )],
            parallel: &Sequential,
            head_output: vec![0.0; sized(&[head.output])?],
            head_work: vec![0.0; sized(&[head.work])?],
        })
    }

    /// Bytes of every buffer this workspace holds (each thread's scratch included): the RAM a
    /// forward of up to its (batch, seq) shape needs beyond the weights.
    pub fn size_in_bytes(&self) -> usize {
        let f32s = self.hidden.len()
            + self.qkv.len()
            + self.context.len()
            + self.attention_output.len()
            + self.intermediate.len()
            + self.mask_bias.len()
            + self.row.len()
            + self.pooled.len()
            + self.head_output.len()
            + self.head_work.len();
        4 * f32s
            + 4 * self.packed_tokens.len()
            + core::mem::size_of::<usize>() * self.offsets.len()
            + self
                .threads
                .iter()
                .map(ThreadScratch::size_in_bytes)
                .sum::<usize>()
    }

    /// The largest (batch, seq) this workspace holds.
    pub fn capacity(&self) -> (usize, usize) {
        (self.max_batch, self.max_seq)
    }

    /// Split each forward pass over up to `threads` threads through `parallel` (rows of every
    /// linear layer, sequences or query rows of attention). Allocates the extra per-thread
    /// scratch now, so forward passes still allocate nothing. Results do not depend on the
    /// thread count.
    pub fn set_parallelism(&mut self, threads: usize, parallel: &'static dyn Parallel) {
        let mut first = self.threads[0].clone();
        if threads >= 2 {
            let rows = (2 * MIN_ROWS_PER_THREAD).min(self.max_batch * self.max_seq);
            first.columns = vec![0.0; rows * self.widest_output];
        }
        self.threads.resize(threads.max(1), first);
        self.parallel = parallel;
    }

    /// Threads a forward pass may use.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Padding-free execution (the default): the real tokens of every sequence are packed into
    /// one `[tokens, hidden]` matrix for the linear layers, attention runs per sequence over
    /// its real tokens only, and padding costs nothing. Off, every padded position is computed
    /// and masked with HF's additive bias, as transformers does (kept for comparison and
    /// benchmarks). Real tokens get the same values either way; padding positions of
    /// `last_hidden_state` are zero when padding is removed.
    pub fn set_remove_padding(&mut self, on: bool) {
        self.remove_padding = on;
    }

    /// Whether padding is removed (see [`set_remove_padding`](Self::set_remove_padding)).
    pub fn remove_padding(&self) -> bool {
        self.remove_padding
    }

    pub(crate) fn check(&self, batch: &Batch<'_>) -> Result<()> {
        if batch.batch_size > self.max_batch || batch.seq_len > self.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (batch.batch_size, batch.seq_len),
                capacity: (self.max_batch, self.max_seq),
            });
        }
        Ok(())
    }
}

/// Split borrows of a [`Workspace`] for the task heads.
pub(crate) struct HeadParts<'w> {
    /// `[tokens, hidden]` encoder output (a head may reuse it once it has read it).
    pub hidden: &'w mut [f32],
    /// `[batch, hidden]` pooler output (when the model has a pooler).
    pub pooled: &'w [f32],
    /// The head's results (logits, start/end pairs).
    pub output: &'w mut [f32],
    /// Its intermediate values (the MLM transform, the QA split).
    pub work: &'w mut [f32],
    /// Matmul scratch.
    pub scratch: &'w mut GemmScratch,
}

impl Workspace {
    /// Split borrows for the heads.
    pub(crate) fn head_parts(&mut self) -> HeadParts<'_> {
        HeadParts {
            hidden: &mut self.hidden,
            pooled: &self.pooled,
            output: &mut self.head_output,
            work: &mut self.head_work,
            scratch: &mut self.threads[0].gemm,
        }
    }
}
