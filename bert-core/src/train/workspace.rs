//! The training workspace: every activation the backward needs and every gradient scratch
//! buffer, allocated once per (batch, seq) shape.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::dropout::{Dropout, Masks};
use crate::arch::Block;
use crate::error::{Error, Result};
use crate::kernels::GemmNeeds;
use crate::model::saves::{PostNormSaved, PreNormSaved};
use crate::model::BertModel;
use crate::model::ThreadScratch;
use crate::parallel::{Parallel, Sequential};

/// Every buffer of a training step, allocated once for up to (`max_batch`, `max_seq`).
pub struct TrainWorkspace {
    pub(crate) max_batch: usize,
    pub(crate) max_seq: usize,
    pub(crate) offsets: Vec<usize>,
    pub(crate) packed: Vec<u32>,
    /// One embedding-width row of scratch (a table row being added).
    pub(crate) row: Vec<f32>,
    pub(crate) emb_xhat: Vec<f32>,
    pub(crate) emb_rstd: Vec<f32>,
    /// The embeddings after LayerNorm and dropout, the projection's input (ELECTRA's narrower
    /// tables); empty without a projection.
    pub(crate) emb_out: Vec<f32>,
    /// Post-norm layers' saves (empty for a pre-norm model).
    pub(crate) layers: Vec<PostNormSaved>,
    /// Pre-norm layers' saves (empty for a post-norm model).
    pub(crate) pre_layers: Vec<PreNormSaved>,
    /// The final norm's saves (pre-norm).
    pub(crate) final_norm: (Vec<f32>, Vec<f32>),
    pub(crate) x: Vec<f32>,
    pub(crate) cls: Vec<f32>,
    /// The first tokens' rows after the head's input dropout (RoBERTa, ELECTRA).
    pub(crate) cls_in: Vec<f32>,
    /// The pooler's dense output before its activation (GELU and ReLU heads).
    pub(crate) pooled_pre: Vec<f32>,
    pub(crate) pooled: Vec<f32>,
    pub(crate) logits: Vec<f32>,
    pub(crate) dx: Vec<f32>,
    pub(crate) da: Vec<f32>,
    pub(crate) dctx: Vec<f32>,
    pub(crate) dq: Vec<f32>,
    pub(crate) dk: Vec<f32>,
    pub(crate) dv: Vec<f32>,
    /// `[tokens, feed-forward width]`: the gradient of the intermediate product (before a gate).
    pub(crate) du: Vec<f32>,
    /// `[tokens, intermediate]`: the gradient of a gated block's gated product (pre-norm).
    pub(crate) dgated: Vec<f32>,
    /// A per-token prediction head's saves (ModernBERT's `head`: dense, activation, norm),
    /// `[tokens, hidden]` each (empty for families without one).
    pub(crate) transform: TransformSaved,
    pub(crate) dcls: Vec<f32>,
    pub(crate) dpooled: Vec<f32>,
    pub(crate) dlogits: Vec<f32>,
    /// One per thread; the first serves the one-thread parts.
    pub(crate) lanes: Vec<ThreadScratch>,
    pub(crate) par: &'static dyn Parallel,
    needs: GemmNeeds,
    /// Training-mode dropout of the current step, if on.
    pub(crate) dropout: Option<Dropout>,
    /// Its masks (allocated the first time dropout is turned on).
    pub(crate) masks: Masks,
    /// The classifier's input after dropout.
    pub(crate) head_in: Vec<f32>,
    /// Scratch of a loss over pairs of sequences (similarities, norms), grown on first use.
    pub(crate) pair_scratch: Vec<f32>,
    /// (layers, rows × hidden, attention probabilities) at capacity, for the masks.
    /// (layers, rows × hidden, rows × the feed-forward mask's width, attention
    /// probabilities) at capacity, for the masks.
    sizes: (usize, usize, usize, usize),
}

impl core::fmt::Debug for TrainWorkspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrainWorkspace")
            .field("max_batch", &self.max_batch)
            .field("max_seq", &self.max_seq)
            .field("threads", &self.lanes.len())
            .finish_non_exhaustive()
    }
}

impl TrainWorkspace {
    /// Buffers for `bert` under a head of `labels` outputs (per sequence or per token), at up
    /// to `max_batch` sequences of up to `max_seq` tokens.
    pub fn new(
        bert: &BertModel<'_>,
        labels: usize,
        max_batch: usize,
        max_seq: usize,
    ) -> Result<Self> {
        let c = &bert.config;
        let (h, i, heads) = (c.hidden_size, c.intermediate_size, c.num_attention_heads);
        let t = max_batch
            .checked_mul(max_seq)
            .filter(|&t| t <= crate::model::MAX_BUFFER_ELEMENTS / c.feed_forward_width().max(3 * h))
            .ok_or_else(|| Error::ResourceLimit {
                what: format!("training workspace of {max_batch} x {max_seq} tokens"),
                limit: crate::model::MAX_BUFFER_ELEMENTS,
            })?;
        let probs = max_batch * heads * max_seq * max_seq;
        // The deepest product: a token count, a sequence, or a layer's widest side (a gated
        // block's input product is `2 × intermediate` wide, the depth of its backward).
        let needs = GemmNeeds {
            rows: t,
            depth: h.max(c.feed_forward_width()).max(t).max(max_seq),
            int8: false,
        };
        let ffn = c.feed_forward_width();
        let (layers, pre_layers, final_norm) = match c.arch.block {
            Block::PostNorm => {
                let layer = PostNormSaved::new(t, h, i, probs);
                (
                    vec![layer; c.num_hidden_layers],
                    Vec::new(),
                    Default::default(),
                )
            }
            Block::PreNorm(_) => {
                let layer = PreNormSaved::new(t, h, (ffn, i), probs);
                let norm = (vec![0.0; t * h], vec![0.0; t]);
                (Vec::new(), vec![layer; c.num_hidden_layers], norm)
            }
        };
        let pooler_norm = bert.pooler.as_ref().is_some_and(|p| p.norm.is_some());
        let transform = match c.arch.heads.transform_tokens || pooler_norm {
            true => TransformSaved::new(t, h),
            false => TransformSaved::default(),
        };
        Ok(TrainWorkspace {
            max_batch,
            max_seq,
            offsets: vec![0; max_batch + 1],
            packed: vec![0; t],
            row: vec![0.0; bert.embeddings.width()],
            emb_xhat: vec![0.0; t * h],
            emb_rstd: vec![0.0; t],
            emb_out: match bert.embeddings.project {
                Some(_) => vec![0.0; t * bert.embeddings.width()],
                None => Vec::new(),
            },
            layers,
            pre_layers,
            final_norm,
            x: vec![0.0; t * h],
            cls: vec![0.0; max_batch * h],
            cls_in: vec![0.0; max_batch * h],
            pooled_pre: vec![0.0; max_batch * h],
            pooled: vec![0.0; max_batch * h],
            logits: vec![0.0; t * labels],
            dx: vec![0.0; t * h],
            da: vec![0.0; t * h],
            dctx: vec![0.0; t * h],
            dq: vec![0.0; t * h],
            dk: vec![0.0; t * h],
            dv: vec![0.0; t * h],
            du: vec![0.0; t * ffn],
            dgated: match c.arch.block {
                Block::PreNorm(_) => vec![0.0; t * i],
                Block::PostNorm => Vec::new(),
            },
            transform,
            dcls: vec![0.0; max_batch * h],
            dpooled: vec![0.0; max_batch * h],
            dlogits: vec![0.0; t * labels],
            lanes: vec![ThreadScratch::for_training(needs, max_seq * max_seq)],
            par: &Sequential,
            needs,
            dropout: None,
            masks: Masks::default(),
            head_in: Vec::new(),
            pair_scratch: Vec::new(),
            sizes: (c.num_hidden_layers, t * h, t * ffn_mask_width(c), probs),
        })
    }

    /// Training-mode dropout for the next steps (`None`: evaluation mode, as `model.eval()`);
    /// give each step its own seed. The masks are allocated once, the first time.
    pub fn set_dropout(&mut self, dropout: Option<Dropout>) {
        let on = dropout.filter(|d| {
            let embedding = d.embedding.unwrap_or(0.0);
            [d.hidden, d.attention, d.classifier, embedding]
                .iter()
                .any(|&p| p > 0.0)
        });
        if on.is_some() && self.head_in.is_empty() {
            let (layers, rows_h, rows_ffn, probs) = self.sizes;
            self.masks = Masks::new(layers, (rows_h, rows_ffn), probs, rows_h);
            self.head_in = vec![0.0; rows_h];
        }
        self.dropout = on;
    }

    /// Run the step's products on `threads` threads through `parallel` (one buffer set per
    /// thread, made here, once). Results are bit-identical for every thread count.
    pub fn set_threads(&mut self, threads: usize, parallel: &'static dyn Parallel) {
        let threads = threads.clamp(1, 256);
        let dprobs = self.max_seq * self.max_seq;
        self.lanes.truncate(threads);
        while self.lanes.len() < threads {
            self.lanes
                .push(ThreadScratch::for_training(self.needs, dprobs));
        }
        self.par = parallel;
    }
}

/// The width of a layer's feed-forward dropout mask: the hidden width after a post-norm
/// layer's output product, the intermediate width on a pre-norm layer's gated product.
fn ffn_mask_width(c: &crate::BertConfig) -> usize {
    match c.arch.block {
        Block::PostNorm => c.hidden_size,
        Block::PreNorm(_) => c.intermediate_size,
    }
}

/// What a per-token prediction head (dense, activation, norm; ModernBERT's `head`) keeps for
/// its backward, for up to `tokens` rows: the dense output before the activation, the
/// normalized rows and inverse deviations, the head's output.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransformSaved {
    pub(crate) pre: Vec<f32>,
    pub(crate) xhat: Vec<f32>,
    pub(crate) rstd: Vec<f32>,
    pub(crate) out: Vec<f32>,
}

impl TransformSaved {
    fn new(tokens: usize, width: usize) -> Self {
        TransformSaved {
            pre: vec![0.0; tokens * width],
            xhat: vec![0.0; tokens * width],
            rstd: vec![0.0; tokens],
            out: vec![0.0; tokens * width],
        }
    }
}
