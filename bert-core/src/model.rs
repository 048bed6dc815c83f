//! The BERT encoder, one struct per module of HF's `modeling_bert.py` and with its names, so
//! the math can be checked line by line: [`BertEmbeddings`] → [`BertEncoder`] (a stack of
//! [`BertLayer`] = [`BertAttention`] + [`BertIntermediate`] + [`BertOutput`]) → [`BertPooler`].
//!
//! `forward` runs entirely inside a [`Workspace`] the caller created once for a maximum
//! (batch, sequence) shape: no layer allocates.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::config::{Activation, BertConfig};
use crate::error::{Error, Result};
use crate::kernels::{self, GemmNeeds, GemmScratch, MatMut, MatRef, Rhs};
use crate::nn::{Embedding, LayerNorm, Linear};
use crate::parallel::{Parallel, Sequential};
use crate::weights::Weights;

/// The value HF adds to the attention scores of masked keys: `torch.finfo(float32).min`.
pub const MASKED_SCORE_BIAS: f32 = f32::MIN;

/// One padded batch of token ids, row-major `[batch_size, seq_len]`, as a tokenizer produces.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    /// Token ids.
    pub input_ids: &'a [u32],
    /// Segment ids (0 for sentence A, 1 for sentence B); all zeros when `None`.
    pub token_type_ids: Option<&'a [u32]>,
    /// 1 for real tokens, 0 for padding; all ones when `None`.
    pub attention_mask: Option<&'a [u32]>,
    /// Number of sequences.
    pub batch_size: usize,
    /// Tokens per sequence (padded length).
    pub seq_len: usize,
}

impl<'a> Batch<'a> {
    /// A batch of `batch_size` sequences of `seq_len` ids each, no padding, one segment.
    pub fn new(input_ids: &'a [u32], batch_size: usize, seq_len: usize) -> Self {
        Batch {
            input_ids,
            token_type_ids: None,
            attention_mask: None,
            batch_size,
            seq_len,
        }
    }

    /// A single sequence.
    pub fn single(input_ids: &'a [u32]) -> Self {
        Self::new(input_ids, 1, input_ids.len())
    }

    /// With segment ids.
    pub fn with_token_type_ids(mut self, token_type_ids: &'a [u32]) -> Self {
        self.token_type_ids = Some(token_type_ids);
        self
    }

    /// With an attention mask.
    pub fn with_attention_mask(mut self, attention_mask: &'a [u32]) -> Self {
        self.attention_mask = Some(attention_mask);
        self
    }

    /// Number of token positions (`batch_size * seq_len`).
    pub fn num_tokens(&self) -> usize {
        self.batch_size * self.seq_len
    }

    /// Check every id and shape against `config`.
    pub fn validate(&self, config: &BertConfig) -> Result<()> {
        if self.batch_size == 0 || self.seq_len == 0 {
            return Err(Error::EmptyBatch);
        }
        if self.seq_len > config.max_position_embeddings {
            return Err(Error::SequenceTooLong {
                len: self.seq_len,
                max: config.max_position_embeddings,
            });
        }
        let n = self
            .batch_size
            .checked_mul(self.seq_len)
            .ok_or_else(|| Error::ResourceLimit {
                what: format!("batch {} x seq {}", self.batch_size, self.seq_len),
                limit: usize::MAX,
            })?;
        let check = |what: &'static str, v: &[u32], limit: usize, limit_name: &'static str| {
            if v.len() != n {
                return Err(Error::LengthMismatch {
                    what,
                    len: v.len(),
                    expected: n,
                });
            }
            if let Some(i) = v.iter().position(|&x| x as usize >= limit) {
                return Err(Error::IdOutOfRange {
                    what,
                    sequence: i / self.seq_len,
                    position: i % self.seq_len,
                    value: v[i],
                    limit,
                    limit_name,
                });
            }
            Ok::<(), Error>(())
        };
        check("input_ids", self.input_ids, config.vocab_size, "vocab_size")?;
        if let Some(t) = self.token_type_ids {
            check(
                "token_type_ids",
                t,
                config.type_vocab_size,
                "type_vocab_size",
            )?;
        }
        if let Some(m) = self.attention_mask {
            check("attention_mask", m, 2, "the mask values (0 or 1): limit")?;
        }
        Ok(())
    }
}

/// What each thread of a forward pass owns: matmul scratch and an attention score block.
#[derive(Debug, Clone)]
pub struct ThreadScratch {
    gemm: GemmScratch,
    scores: Vec<f32>,
}

/// Every buffer a forward pass needs, allocated once for a maximum (batch, seq) shape and reused.
#[derive(Clone)]
pub struct Workspace {
    max_batch: usize,
    max_seq: usize,
    hidden: Vec<f32>,
    query: Vec<f32>,
    key: Vec<f32>,
    value: Vec<f32>,
    context: Vec<f32>,
    attention_output: Vec<f32>,
    intermediate: Vec<f32>,
    mask_bias: Vec<f32>,
    /// For each packed token, its index in the padded `[batch * seq]` layout.
    packed_tokens: Vec<u32>,
    /// Packed row range of each sequence: sequence `b` is rows `offsets[b]..offsets[b + 1]`.
    offsets: Vec<usize>,
    remove_padding: bool,
    row: Vec<f32>,
    pooled: Vec<f32>,
    /// One per thread; `threads[0]` also serves the pooler and the heads.
    threads: Vec<ThreadScratch>,
    parallel: &'static dyn Parallel,
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
            hidden: vec![0.0; th],
            query: vec![0.0; th],
            key: vec![0.0; th],
            value: vec![0.0; th],
            context: vec![0.0; th],
            attention_output: vec![0.0; th],
            intermediate: vec![0.0; sized(&[t, c.intermediate_size])?],
            mask_bias: vec![0.0; t],
            packed_tokens: vec![0; t],
            offsets: vec![0; max_batch + 1],
            remove_padding: true,
            row: vec![0.0; c.hidden_size],
            pooled: vec![0.0; sized(&[max_batch, c.hidden_size])?],
            threads: vec![ThreadScratch {
                gemm: GemmScratch::new(model.gemm_needs(max_batch, t).max(head.gemm)),
                scores: vec![0.0; sized(&[max_seq, max_seq])?],
            }],
            parallel: &Sequential,
            head_output: vec![0.0; sized(&[head.output])?],
            head_work: vec![0.0; sized(&[head.work])?],
        })
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
        let first = self.threads[0].clone();
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

    fn check(&self, batch: &Batch<'_>) -> Result<()> {
        if batch.batch_size > self.max_batch || batch.seq_len > self.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (batch.batch_size, batch.seq_len),
                capacity: (self.max_batch, self.max_seq),
            });
        }
        Ok(())
    }
}

/// `BertEmbeddings`: word + token type + position embeddings, then LayerNorm.
#[derive(Debug, Clone)]
pub struct BertEmbeddings<'a> {
    /// `word_embeddings` `[vocab_size, hidden]`.
    pub word_embeddings: Embedding<'a>,
    /// `position_embeddings` `[max_position_embeddings, hidden]`.
    pub position_embeddings: Embedding<'a>,
    /// `token_type_embeddings` `[type_vocab_size, hidden]`.
    pub token_type_embeddings: Embedding<'a>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
}

impl<'a> BertEmbeddings<'a> {
    /// Load `{p}embeddings.*`.
    pub fn load(w: &Weights<'a>, p: &str, c: &BertConfig) -> Result<Self> {
        let h = c.hidden_size;
        Ok(BertEmbeddings {
            word_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.word_embeddings"),
                c.vocab_size,
                h,
            )?,
            position_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.position_embeddings"),
                c.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: Embedding::load(
                w,
                &format!("{p}embeddings.token_type_embeddings"),
                c.type_vocab_size,
                h,
            )?,
            layer_norm: LayerNorm::load(
                w,
                &format!("{p}embeddings.LayerNorm"),
                h,
                c.layer_norm_eps,
            )?,
        })
    }

    /// `out[t] = LayerNorm(word[id] + token_type[type] + position[pos])` for every token of a
    /// validated batch (padding included). `row` is one hidden-width scratch row.
    pub fn forward(&self, batch: &Batch<'_>, out: &mut [f32], row: &mut [f32]) {
        self.forward_tokens(batch, 0..batch.num_tokens(), out, row);
    }

    /// The same for the given token indices (into the padded `[batch * seq]` layout) only,
    /// written to consecutive rows of `out`. Positions are the tokens' places in their padded
    /// rows, as HF's default `position_ids`.
    pub fn forward_tokens(
        &self,
        batch: &Batch<'_>,
        tokens: impl ExactSizeIterator<Item = usize>,
        out: &mut [f32],
        row: &mut [f32],
    ) {
        let h = self.word_embeddings.dim();
        let n = tokens.len();
        for (t, dst) in tokens.zip(out.chunks_exact_mut(h)) {
            let position = t % batch.seq_len;
            let token_type = batch.token_type_ids.map_or(0, |tt| tt[t]) as usize;
            self.word_embeddings
                .lookup_into(batch.input_ids[t] as usize, dst);
            self.token_type_embeddings.add_into(token_type, dst, row);
            self.position_embeddings.add_into(position, dst, row);
        }
        self.layer_norm.forward(&mut out[..n * h]);
    }
}

/// `BertSelfAttention`: multi-head scaled dot-product attention with HF's additive mask.
#[derive(Debug, Clone)]
pub struct BertSelfAttention<'a> {
    /// `query`.
    pub query: Linear<'a>,
    /// `key`.
    pub key: Linear<'a>,
    /// `value`.
    pub value: Linear<'a>,
    /// Number of heads.
    pub num_attention_heads: usize,
    /// Width of one head.
    pub attention_head_size: usize,
}

/// `BertSelfOutput`: dense, then LayerNorm of (dense + input).
#[derive(Debug, Clone)]
pub struct BertSelfOutput<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
}

/// `BertAttention` = self-attention + its output projection.
#[derive(Debug, Clone)]
pub struct BertAttention<'a> {
    /// `self`.
    pub self_attention: BertSelfAttention<'a>,
    /// `output`.
    pub output: BertSelfOutput<'a>,
}

/// `BertIntermediate`: dense to `intermediate_size`, then the activation.
#[derive(Debug, Clone)]
pub struct BertIntermediate<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
    /// `intermediate_act_fn`.
    pub intermediate_act_fn: Activation,
}

/// `BertOutput`: dense back to `hidden_size`, then LayerNorm of (dense + attention output).
#[derive(Debug, Clone)]
pub struct BertOutput<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
    /// `LayerNorm`.
    pub layer_norm: LayerNorm<'a>,
}

/// `BertLayer`: attention, then the feed-forward block.
#[derive(Debug, Clone)]
pub struct BertLayer<'a> {
    /// `attention`.
    pub attention: BertAttention<'a>,
    /// `intermediate`.
    pub intermediate: BertIntermediate<'a>,
    /// `output`.
    pub output: BertOutput<'a>,
}

impl<'a> BertLayer<'a> {
    /// Load `{prefix}.*` (prefix like `encoder.layer.3`).
    pub fn load(w: &Weights<'a>, prefix: &str, c: &BertConfig) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let lin = |name: &str, i_f, o_f| Linear::load(w, &format!("{prefix}.{name}"), i_f, o_f);
        let ln = |name: &str| LayerNorm::load(w, &format!("{prefix}.{name}"), h, eps);
        Ok(BertLayer {
            attention: BertAttention {
                self_attention: BertSelfAttention {
                    query: lin("attention.self.query", h, h)?,
                    key: lin("attention.self.key", h, h)?,
                    value: lin("attention.self.value", h, h)?,
                    num_attention_heads: c.num_attention_heads,
                    attention_head_size: c.head_dim(),
                },
                output: BertSelfOutput {
                    dense: lin("attention.output.dense", h, h)?,
                    layer_norm: ln("attention.output.LayerNorm")?,
                },
            },
            intermediate: BertIntermediate {
                dense: lin("intermediate.dense", h, i)?,
                intermediate_act_fn: c.hidden_act,
            },
            output: BertOutput {
                dense: lin("output.dense", i, h)?,
                layer_norm: ln("output.LayerNorm")?,
            },
        })
    }

    fn linears(&self) -> [&Linear<'a>; 6] {
        let a = &self.attention;
        [
            &a.self_attention.query,
            &a.self_attention.key,
            &a.self_attention.value,
            &a.output.dense,
            &self.intermediate.dense,
            &self.output.dense,
        ]
    }

    /// One layer over the `t` packed rows of `ws.hidden`, in place.
    fn forward(&self, t: usize, batch_size: usize, ws: &mut Workspace) {
        let Workspace {
            hidden,
            query,
            key,
            value,
            context,
            attention_output,
            intermediate,
            mask_bias,
            offsets,
            remove_padding,
            threads,
            parallel,
            ..
        } = ws;
        let par = *parallel;
        let sa = &self.attention.self_attention;
        let hidden_in = &hidden[..];
        for (linear, out) in [
            (&sa.query, &mut **query),
            (&sa.key, &mut **key),
            (&sa.value, &mut **value),
        ] {
            linear_rows(par, linear, hidden_in, t, out, Epilogue::None, threads);
        }
        let sequences = Sequences {
            offsets: &offsets[..=batch_size],
            mask_bias: (!*remove_padding).then_some(&mask_bias[..]),
        };
        let qkv = [&query[..], &key[..], &value[..]];
        let all = 0..batch_size;
        attention_rows(par, sa, &sequences, all, None, qkv, context, threads);

        let out = &self.attention.output;
        let add_norm = Epilogue::AddNorm(hidden_in, &out.layer_norm);
        linear_rows(
            par,
            &out.dense,
            context,
            t,
            attention_output,
            add_norm,
            threads,
        );
        let inter = &self.intermediate;
        let act = Epilogue::Activation(inter.intermediate_act_fn);
        linear_rows(
            par,
            &inter.dense,
            attention_output,
            t,
            intermediate,
            act,
            threads,
        );
        let add_norm = Epilogue::AddNorm(attention_output, &self.output.layer_norm);
        linear_rows(
            par,
            &self.output.dense,
            intermediate,
            t,
            hidden,
            add_norm,
            threads,
        );
    }
}

/// What follows a linear layer on the same rows, while they are in cache.
#[derive(Clone, Copy)]
enum Epilogue<'a> {
    None,
    /// The activation, elementwise.
    Activation(Activation),
    /// `LayerNorm(out + residual)` (the residual's rows match the output's).
    AddNorm(&'a [f32], &'a LayerNorm<'a>),
}

impl<'a> Epilogue<'a> {
    fn apply(self, out: &mut [f32]) {
        match self {
            Epilogue::None => {}
            Epilogue::Activation(act) => kernels::activate_in_place(act, out),
            Epilogue::AddNorm(residual, norm) => norm.forward_residual(out, &residual[..out.len()]),
        }
    }

    /// The epilogues of the first `at` output elements and of the rest.
    fn split(self, at: usize) -> (Self, Self) {
        match self {
            Epilogue::AddNorm(residual, norm) => {
                let (a, b) = residual.split_at(at);
                (Epilogue::AddNorm(a, norm), Epilogue::AddNorm(b, norm))
            }
            other => (other, other),
        }
    }
}

/// Fewest rows worth handing to another thread.
const MIN_ROWS_PER_THREAD: usize = 16;

/// `out = epilogue(x · Wᵀ + b)` for `rows` rows, split by rows over `threads` halves at a time.
fn linear_rows(
    par: &dyn Parallel,
    linear: &Linear<'_>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    epilogue: Epilogue<'_>,
    threads: &mut [ThreadScratch],
) {
    let (k, n) = (linear.in_features(), linear.out_features());
    if threads.len() < 2 || rows < 2 * MIN_ROWS_PER_THREAD {
        linear.forward(x, rows, out, &mut threads[0].gemm);
        epilogue.apply(&mut out[..rows * n]);
        return;
    }
    let (t1, t2) = threads.split_at_mut(threads.len() / 2);
    let r1 = rows * t1.len() / (t1.len() + t2.len());
    let (x1, x2) = x[..rows * k].split_at(r1 * k);
    let (o1, o2) = out[..rows * n].split_at_mut(r1 * n);
    let (e1, e2) = epilogue.split(r1 * n);
    par.join(
        &mut || linear_rows(par, linear, x1, r1, o1, e1, t1),
        &mut || linear_rows(par, linear, x2, rows - r1, o2, e2, t2),
    );
}

/// Where each sequence's rows are in the packed token matrix.
struct Sequences<'a> {
    /// Sequence `b` is rows `offsets[b]..offsets[b + 1]`.
    offsets: &'a [usize],
    /// With padding kept: the additive mask (`[batch * seq]`, 0 or [`MASKED_SCORE_BIAS`]).
    mask_bias: Option<&'a [f32]>,
}

/// Attention for sequences `seqs` (all their query rows, or only `query_rows` of a single
/// sequence), into `context`, which starts at the first row computed. Split over `threads` by
/// sequences (balanced by tokens) or, for one sequence, by query rows.
#[allow(clippy::too_many_arguments)]
fn attention_rows(
    par: &dyn Parallel,
    sa: &BertSelfAttention<'_>,
    sequences: &Sequences<'_>,
    seqs: core::ops::Range<usize>,
    query_rows: Option<core::ops::Range<usize>>,
    qkv: [&[f32]; 3],
    context: &mut [f32],
    threads: &mut [ThreadScratch],
) {
    let h = sa.num_attention_heads * sa.attention_head_size;
    let o = sequences.offsets;
    let rows = query_rows.clone().unwrap_or(0..o[seqs.end] - o[seqs.start]);
    if threads.len() >= 2 && rows.len() >= 2 * MIN_ROWS_PER_THREAD {
        let (t1, t2) = threads.split_at_mut(threads.len() / 2);
        if seqs.len() >= 2 {
            // Split the sequences where the first half's share of tokens is reached.
            let target = o[seqs.start] + rows.len() * t1.len() / (t1.len() + t2.len());
            let mid = (seqs.start + 1..seqs.end)
                .find(|&b| o[b] >= target)
                .unwrap_or(seqs.end - 1);
            let (c1, c2) = context.split_at_mut((o[mid] - o[seqs.start]) * h);
            par.join(
                &mut || attention_rows(par, sa, sequences, seqs.start..mid, None, qkv, c1, t1),
                &mut || attention_rows(par, sa, sequences, mid..seqs.end, None, qkv, c2, t2),
            );
        } else {
            let mid = rows.start + rows.len() * t1.len() / (t1.len() + t2.len());
            let (c1, c2) = context.split_at_mut((mid - rows.start) * h);
            let (q1, q2) = (Some(rows.start..mid), Some(mid..rows.end));
            par.join(
                &mut || attention_rows(par, sa, sequences, seqs.clone(), q1.clone(), qkv, c1, t1),
                &mut || attention_rows(par, sa, sequences, seqs.clone(), q2.clone(), qkv, c2, t2),
            );
        }
        return;
    }
    let mut context_row = 0;
    for b in seqs {
        let s = o[b + 1] - o[b];
        let q = query_rows.clone().unwrap_or(0..s);
        let out = &mut context[context_row * h..];
        self_attention(sa, sequences, b, q.clone(), qkv, out, &mut threads[0]);
        context_row += q.len();
    }
}

/// `softmax(Q Kᵀ / sqrt(d) [+ mask]) V` for query rows `rows` of sequence `b`, every head,
/// into `context` (which starts at the first of those rows). Each sequence attends only within
/// its own rows; with padding removed there is nothing to mask.
fn self_attention(
    sa: &BertSelfAttention<'_>,
    sequences: &Sequences<'_>,
    b: usize,
    rows: core::ops::Range<usize>,
    [query, key, value]: [&[f32]; 3],
    context: &mut [f32],
    scratch: &mut ThreadScratch,
) {
    let d = sa.attention_head_size;
    let h = sa.num_attention_heads * d;
    let scale = 1.0 / libm::sqrtf(d as f32);
    let (r0, s) = (
        sequences.offsets[b],
        sequences.offsets[b + 1] - sequences.offsets[b],
    );
    let m = rows.len();
    let ThreadScratch { gemm, scores } = scratch;
    let scores = &mut scores[..m * s];
    for head in 0..sa.num_attention_heads {
        let keys = r0 * h + head * d;
        let queries = keys + rows.start * h;
        kernels::matmul(
            MatMut::dense(scores, m, s),
            head_slice(query, queries, m, d, h),
            Rhs::Dense(head_slice(key, keys, s, d, h).t()),
            false,
            scale,
            gemm,
        );
        if let Some(bias) = sequences.mask_bias {
            let bias = &bias[b * s..(b + 1) * s];
            for row in scores.chunks_exact_mut(s) {
                row.iter_mut().zip(bias).for_each(|(x, m)| *x += m);
            }
        }
        kernels::softmax_rows(scores, s);
        kernels::matmul(
            MatMut {
                data: &mut context[head * d..],
                rows: m,
                cols: d,
                row_stride: h,
            },
            MatRef::dense(scores, m, s),
            Rhs::Dense(head_slice(value, keys, s, d, h)),
            false,
            1.0,
            gemm,
        );
    }
}

/// The `[seq, head_dim]` block of one head inside a `[.., hidden]` buffer.
fn head_slice(buf: &[f32], base: usize, seq: usize, head_dim: usize, hidden: usize) -> MatRef<'_> {
    MatRef {
        data: &buf[base..],
        rows: seq,
        cols: head_dim,
        row_stride: hidden,
        col_stride: 1,
    }
}

/// `BertEncoder`: the stack of layers.
#[derive(Debug, Clone)]
pub struct BertEncoder<'a> {
    /// `layer`.
    pub layer: Vec<BertLayer<'a>>,
}

/// `BertPooler`: `tanh(dense(hidden[CLS]))`.
#[derive(Debug, Clone)]
pub struct BertPooler<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
}

/// What [`BertModel::forward`] returns: views into the workspace.
#[derive(Debug, Clone, Copy)]
pub struct BertModelOutput<'w> {
    /// `[batch, seq, hidden]`, row-major.
    pub last_hidden_state: &'w [f32],
    /// `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<&'w [f32]>,
    /// Batch size.
    pub batch_size: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Hidden width.
    pub hidden_size: usize,
}

/// `BertModel`: embeddings, encoder and (optionally) pooler.
#[derive(Debug, Clone)]
pub struct BertModel<'a> {
    /// The validated config.
    pub config: BertConfig,
    /// `embeddings`.
    pub embeddings: BertEmbeddings<'a>,
    /// `encoder`.
    pub encoder: BertEncoder<'a>,
    /// `pooler`; absent in checkpoints saved without one (token classification, QA, some MLMs).
    pub pooler: Option<BertPooler<'a>>,
}

impl<'a> BertModel<'a> {
    /// Load the encoder from `weights` (with or without the `bert.` prefix). The pooler is
    /// loaded when present.
    pub fn load(config: &BertConfig, weights: &Weights<'a>) -> Result<Self> {
        let p = weights.encoder_prefix();
        let embeddings = BertEmbeddings::load(weights, p, config)?;
        let layer = (0..config.num_hidden_layers)
            .map(|i| BertLayer::load(weights, &format!("{p}encoder.layer.{i}"), config))
            .collect::<Result<Vec<_>>>()?;
        let pooler_name = format!("{p}pooler.dense");
        let pooler = if weights.contains(&format!("{pooler_name}.weight")) {
            Some(BertPooler {
                dense: Linear::load(
                    weights,
                    &pooler_name,
                    config.hidden_size,
                    config.hidden_size,
                )?,
            })
        } else {
            None
        };
        Ok(BertModel {
            config: config.clone(),
            embeddings,
            encoder: BertEncoder { layer },
            pooler,
        })
    }

    /// Like [`load`](Self::load), but a missing pooler is an error (for heads that need it).
    pub fn load_with_pooler(config: &BertConfig, weights: &Weights<'a>) -> Result<Self> {
        let model = Self::load(config, weights)?;
        if model.pooler.is_none() {
            return Err(Error::MissingTensor {
                tried: vec![format!("{}pooler.dense.weight", weights.encoder_prefix())],
            });
        }
        Ok(model)
    }

    /// What the encoder's and pooler's products need from the matmul scratch, for up to
    /// `max_batch` sequences and `max_tokens` tokens.
    pub(crate) fn gemm_needs(&self, max_batch: usize, max_tokens: usize) -> GemmNeeds {
        let c = &self.config;
        let attention = GemmNeeds {
            rows: max_tokens,
            depth: c.hidden_size.max(c.max_position_embeddings),
            int8: false,
        };
        self.encoder
            .layer
            .iter()
            .flat_map(|l| l.linears())
            .map(|l| l.gemm_needs(max_tokens))
            .chain(self.pooler.as_ref().map(|p| p.dense.gemm_needs(max_batch)))
            .fold(attention, GemmNeeds::max)
    }

    /// Pack every encoder and pooler weight once for the kernels in use (see
    /// [`Linear::prepack`]): faster products, most of all for small batches, for one more copy
    /// of the encoder's linear weights in memory (f32 panels for f32 / f16 / bf16 weights, int8
    /// panels for int8 ones).
    pub fn prepack(&mut self) {
        for layer in &mut self.encoder.layer {
            let a = &mut layer.attention;
            for l in [
                &mut a.self_attention.query,
                &mut a.self_attention.key,
                &mut a.self_attention.value,
                &mut a.output.dense,
                &mut layer.intermediate.dense,
                &mut layer.output.dense,
            ] {
                l.prepack();
            }
        }
        if let Some(p) = &mut self.pooler {
            p.dense.prepack();
        }
    }

    /// A workspace for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        Workspace::new(self, max_batch, max_seq, HeadBuffers::default())
    }

    /// Bytes of weights this model holds (whatever their dtype).
    pub fn weight_bytes(&self) -> usize {
        let e = &self.embeddings;
        let mut n = e.word_embeddings.weight.size_in_bytes()
            + e.position_embeddings.weight.size_in_bytes()
            + e.token_type_embeddings.weight.size_in_bytes();
        for l in &self.encoder.layer {
            n += l
                .linears()
                .iter()
                .map(|x| x.weight.size_in_bytes())
                .sum::<usize>();
        }
        n + self
            .pooler
            .as_ref()
            .map_or(0, |p| p.dense.weight.size_in_bytes())
    }

    /// Run embeddings and every layer; the result is left in the workspace's hidden buffer in
    /// the padded `[batch * seq, hidden]` layout (padding rows zero when padding is removed).
    fn encode(&self, batch: &Batch<'_>, ws: &mut Workspace) -> Result<()> {
        batch.validate(&self.config)?;
        ws.check(batch)?;
        let t = batch.num_tokens();
        let h = self.config.hidden_size;
        let keep = |i: usize| batch.attention_mask.is_none_or(|m| m[i] != 0);
        let mut n = 0;
        ws.offsets[0] = 0;
        for b in 0..batch.batch_size {
            let row = b * batch.seq_len..(b + 1) * batch.seq_len;
            if !row.clone().any(keep) {
                return Err(Error::EmptySequence { sequence: b });
            }
            for i in row {
                if keep(i) || !ws.remove_padding {
                    ws.packed_tokens[n] = i as u32;
                    n += 1;
                }
                ws.mask_bias[i] = if keep(i) { 0.0 } else { MASKED_SCORE_BIAS };
            }
            ws.offsets[b + 1] = n;
        }
        let tokens = ws.packed_tokens[..n].iter().map(|&i| i as usize);
        self.embeddings
            .forward_tokens(batch, tokens, &mut ws.hidden, &mut ws.row);
        for layer in &self.encoder.layer {
            layer.forward(n, batch.batch_size, ws);
        }
        if n < t {
            unpack_rows(&mut ws.hidden[..t * h], &ws.packed_tokens[..n], h);
        }
        Ok(())
    }

    /// `tanh(dense(hidden[b, 0]))` for each sequence, into `ws.pooled`.
    fn pool(&self, batch: &Batch<'_>, ws: &mut Workspace) -> bool {
        let Some(pooler) = &self.pooler else {
            return false;
        };
        let h = self.config.hidden_size;
        let s = batch.seq_len;
        for b in 0..batch.batch_size {
            ws.context[b * h..(b + 1) * h].copy_from_slice(&ws.hidden[b * s * h..b * s * h + h]);
        }
        pooler.dense.forward(
            &ws.context,
            batch.batch_size,
            &mut ws.pooled,
            &mut ws.threads[0].gemm,
        );
        for v in &mut ws.pooled[..batch.batch_size * h] {
            *v = libm::tanhf(*v);
        }
        true
    }

    /// The forward pass: `last_hidden_state` and, with a pooler, `pooler_output`.
    pub fn forward<'w>(
        &self,
        batch: &Batch<'_>,
        ws: &'w mut Workspace,
    ) -> Result<BertModelOutput<'w>> {
        self.encode(batch, ws)?;
        let pooled = self.pool(batch, ws);
        let (t, b, h) = (
            batch.num_tokens(),
            batch.batch_size,
            self.config.hidden_size,
        );
        Ok(BertModelOutput {
            last_hidden_state: &ws.hidden[..t * h],
            pooler_output: pooled.then(|| &ws.pooled[..b * h]),
            batch_size: b,
            seq_len: batch.seq_len,
            hidden_size: h,
        })
    }

    /// Run the encoder (and pooler) for a head, which then reads [`Workspace`] buffers.
    pub(crate) fn forward_for_head(&self, batch: &Batch<'_>, ws: &mut Workspace) -> Result<()> {
        self.encode(batch, ws)?;
        self.pool(batch, ws);
        Ok(())
    }
}

/// Move packed row `p` to row `packed_tokens[p]` for every `p`, and zero the other rows.
/// In place: indices only grow (`packed_tokens[p] >= p`), so going from the last row down never
/// overwrites a row that has yet to move.
fn unpack_rows(x: &mut [f32], packed_tokens: &[u32], width: usize) {
    let mut next_real = x.len() / width;
    for (p, &t) in packed_tokens.iter().enumerate().rev() {
        let t = t as usize;
        x[(t + 1) * width..next_real * width].fill(0.0);
        if t != p {
            x.copy_within(p * width..(p + 1) * width, t * width);
        }
        next_real = t;
    }
    x[..next_real * width].fill(0.0);
}

/// Split borrows of a [`Workspace`] for the task heads.
pub(crate) struct HeadParts<'w> {
    /// `[tokens, hidden]` encoder output.
    pub hidden: &'w [f32],
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
            hidden: &self.hidden,
            pooled: &self.pooled,
            output: &mut self.head_output,
            work: &mut self.head_work,
            scratch: &mut self.threads[0].gemm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::{serialize, Dtype};
    use alloc::string::String;

    /// A 1-layer, hidden-4 BERT with deterministic weights: small enough for Miri.
    fn tiny_model_file() -> (BertConfig, Vec<u8>) {
        let config = BertConfig::from_json(
            r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
                "intermediate_size": 8, "max_position_embeddings": 6, "type_vocab_size": 2}"#,
        )
        .unwrap();
        let shapes: [(&str, &[usize]); 16] = [
            ("embeddings.word_embeddings.weight", &[10, 4]),
            ("embeddings.position_embeddings.weight", &[6, 4]),
            ("embeddings.token_type_embeddings.weight", &[2, 4]),
            ("embeddings.LayerNorm.weight", &[4]),
            ("embeddings.LayerNorm.bias", &[4]),
            ("encoder.layer.0.attention.self.query.weight", &[4, 4]),
            ("encoder.layer.0.attention.self.query.bias", &[4]),
            ("encoder.layer.0.attention.self.key.weight", &[4, 4]),
            ("encoder.layer.0.attention.self.key.bias", &[4]),
            ("encoder.layer.0.attention.self.value.weight", &[4, 4]),
            ("encoder.layer.0.attention.self.value.bias", &[4]),
            ("encoder.layer.0.attention.output.dense.weight", &[4, 4]),
            ("encoder.layer.0.attention.output.dense.bias", &[4]),
            ("encoder.layer.0.attention.output.LayerNorm.weight", &[4]),
            ("encoder.layer.0.attention.output.LayerNorm.bias", &[4]),
            ("encoder.layer.0.intermediate.dense.weight", &[8, 4]),
        ];
        let more: [(&str, &[usize]); 5] = [
            ("encoder.layer.0.intermediate.dense.bias", &[8]),
            ("encoder.layer.0.output.dense.weight", &[4, 8]),
            ("encoder.layer.0.output.dense.bias", &[4]),
            ("encoder.layer.0.output.LayerNorm.weight", &[4]),
            ("encoder.layer.0.output.LayerNorm.bias", &[4]),
        ];
        let mut seed = 1u32;
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
            .iter()
            .chain(more.iter())
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let bytes = (0..n)
                    .flat_map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        ((seed >> 16) as f32 / 65536.0 - 0.5).to_le_bytes()
                    })
                    .collect();
                (String::from(*name), shape.to_vec(), bytes)
            })
            .collect();
        let refs: Vec<(&str, Dtype, &[usize], &[u8])> = data
            .iter()
            .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
            .collect();
        (config, serialize(&refs, &[]).unwrap())
    }

    #[test]
    fn tiny_model_runs_and_padding_is_masked() {
        let (config, file) = tiny_model_file();
        let weights = Weights::from_buffers(&[&file]).unwrap();
        let model = BertModel::load(&config, &weights).unwrap();
        assert!(model.pooler.is_none());
        let mut ws = model.workspace(2, 5).unwrap();
        let alone = model
            .forward(&Batch::new(&[1, 2, 3], 1, 3), &mut ws)
            .unwrap()
            .last_hidden_state
            .to_vec();
        assert!(alone.iter().all(|x| x.is_finite()));
        let ids = [1, 2, 3, 0, 0, 4, 5, 6, 7, 8];
        let mask = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1];
        let batch = Batch::new(&ids, 2, 5).with_attention_mask(&mask);
        let out = model.forward(&batch, &mut ws).unwrap();
        let d = alone
            .iter()
            .zip(&out.last_hidden_state[..12])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-5, "padding leaked into real tokens: {d}");
    }
}
