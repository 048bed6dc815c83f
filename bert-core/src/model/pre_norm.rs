//! The pre-norm layer (ModernBERT's `ModernBertEncoderLayer`): `x + Wo(attention(norm(x)))`
//! with rotary queries and keys and a local window on some layers, then
//! `x + Wo(act(input) * gate)` of `Wi(norm(x))`. Runs on the same workspace, row scheduler
//! and attention as the post-norm layer.

use alloc::format;

use super::*;
use crate::activation::Activation;
use crate::arch::PreNorm;
use crate::config::BertConfig;
use crate::error::Result;
use crate::families::TensorNames;
use crate::nn::{LayerNorm, Linear};
use crate::weights::Weights;

/// One pre-norm layer.
#[derive(Debug, Clone)]
pub struct PreNormLayer<'a> {
    /// `attn_norm` (`None` in the first layer, whose input is already normalized).
    pub attn_norm: Option<LayerNorm<'a>>,
    /// Rows `0..H` of `Wqkv`.
    pub query: Linear<'a>,
    /// Rows `H..2H` of `Wqkv`.
    pub key: Linear<'a>,
    /// Rows `2H..3H` of `Wqkv`.
    pub value: Linear<'a>,
    /// `attn.Wo`.
    pub attention_out: Linear<'a>,
    /// `mlp_norm`.
    pub mlp_norm: LayerNorm<'a>,
    /// `mlp.Wi`: `[2 * intermediate, hidden]` when gated (input, then gate).
    pub mlp_in: Linear<'a>,
    /// `mlp.Wo`.
    pub mlp_out: Linear<'a>,
    /// The feed-forward activation.
    pub activation: Activation,
    /// `act(input) * gate`, or plain `act(x)`.
    pub gated: bool,
    /// Heads, head width and local window.
    pub(crate) shape: AttentionShape,
    /// Rotary theta of this layer.
    pub rope_theta: f32,
}

impl<'a> PreNormLayer<'a> {
    /// Load layer `index` at `{prefix}` by the family's names.
    pub fn load(
        w: &Weights<'a>,
        prefix: &str,
        c: &BertConfig,
        n: &TensorNames,
        index: usize,
        pre: &PreNorm,
    ) -> Result<Self> {
        let (h, i, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps);
        let lin = |name: &str, i_f, o_f| {
            Linear::load_with_bias(w, &format!("{prefix}.{name}"), i_f, o_f, pre.biases)
        };
        let ln = |name: &str| {
            LayerNorm::load_with_bias(w, &format!("{prefix}.{name}"), h, eps, pre.norm_bias)
        };
        let qkv = lin(n.query, h, 3 * h)?;
        let (window, rope_theta) = pre.layer(index);
        let ffn = if pre.gated { 2 * i } else { i };
        Ok(PreNormLayer {
            attn_norm: if index == 0 {
                None
            } else {
                Some(ln(n.attention_norm)?)
            },
            query: qkv.rows(0, h),
            key: qkv.rows(h, 2 * h),
            value: qkv.rows(2 * h, 3 * h),
            attention_out: lin(n.attention_out, h, h)?,
            mlp_norm: ln(n.output_norm)?,
            mlp_in: lin(n.intermediate, h, ffn)?,
            mlp_out: lin(n.output, i, h)?,
            activation: c.hidden_act,
            gated: pre.gated,
            shape: AttentionShape {
                heads: c.num_attention_heads,
                head_dim: c.head_dim(),
                window,
            },
            rope_theta,
        })
    }

    /// The layer's products, in order.
    pub(crate) fn linears(&self) -> [&Linear<'a>; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attention_out,
            &self.mlp_in,
            &self.mlp_out,
        ]
    }

    /// The same, mutably (for prepacking).
    pub(crate) fn linears_mut(&mut self) -> [&mut Linear<'a>; 6] {
        [
            &mut self.query,
            &mut self.key,
            &mut self.value,
            &mut self.attention_out,
            &mut self.mlp_in,
            &mut self.mlp_out,
        ]
    }

    /// One layer over the `t` packed rows of `ws.hidden`, in place; `seq_len` gives each
    /// packed row its position (its index in its padded row).
    pub(crate) fn forward(&self, t: usize, batch_size: usize, seq_len: usize, ws: &mut Workspace) {
        let Workspace {
            hidden,
            qkv,
            context,
            attention_output,
            intermediate,
            mask_bias,
            offsets,
            packed_tokens,
            remove_padding,
            threads,
            parallel,
            ..
        } = ws;
        let par = *parallel;
        let h = self.query.out_features();
        // normed = attn_norm(x) (the first layer takes x as it is).
        let normed: &[f32] = match &self.attn_norm {
            None => &hidden[..t * h],
            Some(norm) => {
                attention_output[..t * h].copy_from_slice(&hidden[..t * h]);
                norm.forward(&mut attention_output[..t * h]);
                &attention_output[..t * h]
            }
        };
        let linears = [&self.query, &self.key, &self.value];
        let [query, key, value] = separate_qkv(par, linears, normed, t, qkv, threads);
        let positions = &packed_tokens[..t];
        rotate(
            &mut query[..t * h],
            positions,
            seq_len,
            self.shape,
            self.rope_theta,
        );
        rotate(
            &mut key[..t * h],
            positions,
            seq_len,
            self.shape,
            self.rope_theta,
        );
        let sequences = Sequences {
            offsets: &offsets[..=batch_size],
            mask_bias: (!*remove_padding).then_some(&mask_bias[..]),
        };
        let qkv = Qkv::separate(query, key, value, h);
        attention_rows(
            par,
            self.shape,
            &sequences,
            0..batch_size,
            None,
            qkv,
            context,
            None,
            threads,
        );
        // x1 = x + Wo(context), into attention_output.
        let residual = Epilogue::AddResidual(&hidden[..t * h]);
        linear_rows(
            par,
            &self.attention_out,
            context,
            t,
            attention_output,
            residual,
            threads,
        );
        // context = mlp_norm(x1).
        context[..t * h].copy_from_slice(&attention_output[..t * h]);
        self.mlp_norm.forward(&mut context[..t * h]);
        let ffn = self.mlp_in.out_features();
        linear_rows(
            par,
            &self.mlp_in,
            context,
            t,
            intermediate,
            Epilogue::None,
            threads,
        );
        let inner = self.mlp_out.in_features();
        gate(
            &mut intermediate[..t * ffn],
            inner,
            self.gated,
            self.activation,
        );
        // x2 = x1 + Wo(act(input) * gate), into hidden.
        let residual = Epilogue::AddResidual(&attention_output[..t * h]);
        linear_rows(
            par,
            &self.mlp_out,
            intermediate,
            t,
            hidden,
            residual,
            threads,
        );
    }
}

/// `[t, 2 * inner]` rows of `[input | gate]` become `[t, inner]` rows of `act(input) * gate`,
/// in place (row `r` is written at `r * inner`, never past what is still to be read); without
/// gating, `act` in place.
fn gate(x: &mut [f32], inner: usize, gated: bool, act: Activation) {
    if !gated {
        crate::kernels::activate_in_place(act, x);
        return;
    }
    let rows = x.len() / (2 * inner);
    for r in 0..rows {
        for j in 0..inner {
            let input = x[r * 2 * inner + j];
            let g = x[r * 2 * inner + inner + j];
            x[r * inner + j] = crate::kernels::activate(act, input) * g;
        }
    }
}

/// Rotary position embedding, as HF's `apply_rotary_pos_emb` with `rotate_half`: for each
/// head's pair `(x[i], x[i + d/2])` at angle `pos * theta^(-2i/d)`.
fn rotate(x: &mut [f32], positions: &[u32], seq_len: usize, shape: AttentionShape, theta: f32) {
    let (heads, d) = (shape.heads, shape.head_dim);
    let half = d / 2;
    for (row, &token) in x.chunks_exact_mut(heads * d).zip(positions) {
        let pos = (token as usize % seq_len) as f32;
        for i in 0..half {
            let inv_freq = 1.0 / libm::powf(theta, (2 * i) as f32 / d as f32);
            let angle = pos * inv_freq;
            let (sin, cos) = (libm::sinf(angle), libm::cosf(angle));
            for head in row.chunks_exact_mut(d) {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos - b * sin;
                head[i + half] = b * cos + a * sin;
            }
        }
    }
}
