//! One encoder layer: attention, then the feed-forward block, as HF names them.

use alloc::format;

use super::*;
use crate::config::{Activation, BertConfig};
use crate::error::Result;
use crate::families::TensorNames;
use crate::nn::{LayerNorm, Linear};
use crate::parallel::Parallel;
use crate::weights::Weights;

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
    /// `query`, `key` and `value` as one product (outputs side by side), packed by
    /// [`BertModel::prepack`]: the input is read, and for int8 or bf16 products quantized or
    /// rounded, once instead of three times. Its values are the three layers' exactly.
    pub(crate) fused_qkv: Option<Linear<'static>>,
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
    /// Load `{prefix}.*` (prefix like `encoder.layer.3`) by the family's names.
    pub fn load(w: &Weights<'a>, prefix: &str, c: &BertConfig, n: &TensorNames) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let lin = |name: &str, i_f, o_f| Linear::load(w, &format!("{prefix}.{name}"), i_f, o_f);
        let ln = |name: &str| LayerNorm::load(w, &format!("{prefix}.{name}"), h, eps);
        Ok(BertLayer {
            attention: BertAttention {
                self_attention: BertSelfAttention {
                    query: lin(n.query, h, h)?,
                    key: lin(n.key, h, h)?,
                    value: lin(n.value, h, h)?,
                    num_attention_heads: c.num_attention_heads,
                    attention_head_size: c.head_dim(),
                    fused_qkv: None,
                },
                output: BertSelfOutput {
                    dense: lin(n.attention_out, h, h)?,
                    layer_norm: ln(n.attention_norm)?,
                },
            },
            intermediate: BertIntermediate {
                dense: lin(n.intermediate, h, i)?,
                intermediate_act_fn: c.hidden_act,
            },
            output: BertOutput {
                dense: lin(n.output, i, h)?,
                layer_norm: ln(n.output_norm)?,
            },
        })
    }

    pub(crate) fn linears(&self) -> [&Linear<'a>; 6] {
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
    pub(crate) fn forward(&self, t: usize, batch_size: usize, ws: &mut Workspace) {
        let Workspace {
            hidden,
            qkv,
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
        let sequences = Sequences {
            offsets: &offsets[..=batch_size],
            mask_bias: (!*remove_padding).then_some(&mask_bias[..]),
        };
        let buffers = LayerBuffers {
            qkv,
            context,
            attention_output,
            intermediate,
            train: None,
        };
        self.run(*parallel, threads, &sequences, t, hidden, buffers);
    }

    /// The layer over the `t` packed rows of `hidden`, in place: the one forward of inference
    /// and training. With `buffers.train` (whose buffers the products then write, see
    /// [`PostNormSaved::buffers`]) it keeps what [`backward`](crate::train) needs and applies
    /// the step's dropout masks; the weights must then be unpacked, as loaded.
    pub(crate) fn run(
        &self,
        par: &dyn Parallel,
        threads: &mut [ThreadScratch],
        sequences: &Sequences<'_>,
        t: usize,
        hidden: &mut [f32],
        buffers: LayerBuffers<'_>,
    ) {
        let LayerBuffers {
            qkv,
            context,
            attention_output,
            intermediate,
            train,
        } = buffers;
        let sa = &self.attention.self_attention;
        let h = sa.query.out_features();
        let (masks, mut train) = match train {
            Some(tb) => (tb.masks, Some(tb)),
            None => (LayerMasks::default(), None),
        };
        // The input: `hidden` itself (the last product overwrites it), or a copy training keeps.
        let x_in: &[f32] = match train.as_mut() {
            Some(tb) => {
                let x_in = core::mem::take(&mut tb.x_in);
                x_in[..t * h].copy_from_slice(&hidden[..t * h]);
                x_in
            }
            None => hidden,
        };
        let qkv = self.project_qkv(par, x_in, t, qkv, threads, train.is_some());
        let shape = AttentionShape {
            heads: sa.num_attention_heads,
            head_dim: sa.attention_head_size,
            window: None,
        };
        let probs = train.as_mut().map(|tb| ProbsSave {
            probs: core::mem::take(&mut tb.probs),
            mask: masks.probs,
        });
        let all = 0..sequences.offsets.len() - 1;
        attention_rows(
            par, shape, sequences, all, None, qkv, context, probs, threads,
        );
        let (mut norm1, mut norm2, mut activated) = match train {
            Some(tb) => (Some(tb.norm1), Some(tb.norm2), Some(tb.activated)),
            None => (None, None, None),
        };
        let out = &self.attention.output;
        let add_norm = LayerEpilogue::AddNorm {
            dropout: masks.attention,
            residual: x_in,
            norm: &out.layer_norm,
            save: norm1.take(),
        };
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
        let act = LayerEpilogue::Activation {
            act: inter.intermediate_act_fn,
            activated: activated.as_deref_mut(),
        };
        linear_rows(
            par,
            &inter.dense,
            attention_output,
            t,
            intermediate,
            act,
            threads,
        );
        let ffn_in: &[f32] = activated.map_or(intermediate, |a| a);
        let add_norm = LayerEpilogue::AddNorm {
            dropout: masks.ffn,
            residual: attention_output,
            norm: &self.output.layer_norm,
            save: norm2.take(),
        };
        linear_rows(
            par,
            &self.output.dense,
            ffn_in,
            t,
            hidden,
            add_norm,
            threads,
        );
    }

    /// Q, K and V of the `t` rows of `x` into `out`: one fused product where
    /// [`BertModel::prepack`] stacked them, else three (always three when `saving`: training
    /// reads them apart and must see the weights as loaded).
    fn project_qkv<'o>(
        &self,
        par: &dyn Parallel,
        x: &[f32],
        t: usize,
        out: &'o mut [f32],
        threads: &mut [ThreadScratch],
        saving: bool,
    ) -> Qkv<'o> {
        let sa = &self.attention.self_attention;
        let h = sa.query.out_features();
        match &sa.fused_qkv {
            Some(fused) if !saving => {
                let out = &mut out[..t * 3 * h];
                linear_rows(par, fused, x, t, out, Epilogue::None, threads);
                Qkv::fused(out, h)
            }
            _ => {
                let linears = [&sa.query, &sa.key, &sa.value];
                let [q, k, v] = separate_qkv(par, linears, x, t, out, threads);
                Qkv::separate(q, k, v, h)
            }
        }
    }
}
