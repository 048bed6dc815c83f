//! One encoder layer: attention, then the feed-forward block, as HF names them.

use alloc::format;

use super::*;
use crate::config::{Activation, BertConfig};
use crate::error::Result;
use crate::families::TensorNames;
use crate::nn::{LayerNorm, Linear};
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
        let par = *parallel;
        let sa = &self.attention.self_attention;
        let hidden_in = &hidden[..];
        let h = sa.query.out_features();
        let qkv = match &sa.fused_qkv {
            Some(fused) => {
                let out = &mut qkv[..t * 3 * h];
                linear_rows(par, fused, hidden_in, t, out, Epilogue::None, threads);
                Qkv::fused(qkv, h)
            }
            None => {
                let linears = [&sa.query, &sa.key, &sa.value];
                let [q, k, v] = separate_qkv(par, linears, hidden_in, t, qkv, threads);
                Qkv::separate(q, k, v, h)
            }
        };
        let sequences = Sequences {
            offsets: &offsets[..=batch_size],
            mask_bias: (!*remove_padding).then_some(&mask_bias[..]),
        };
        let all = 0..batch_size;
        let shape = AttentionShape {
            heads: sa.num_attention_heads,
            head_dim: sa.attention_head_size,
            window: None,
        };
        attention_rows(par, shape, &sequences, all, None, qkv, context, threads);

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
