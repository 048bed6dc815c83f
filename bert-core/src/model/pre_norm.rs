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
use crate::nn::{layer_norm_save, LayerNorm, Linear};
use crate::parallel::Parallel;
use crate::weights::Weights;

/// One pre-norm layer.
#[derive(Debug, Clone)]
pub struct PreNormLayer<'a> {
    /// `attn_norm` (`None` in the first layer, whose input is already normalized).
    pub attn_norm: Option<LayerNorm<'a>>,
    /// `attn.Wqkv`: `[3 * hidden, hidden]`, the query, key and value rows stacked, run as one
    /// product (trained as one parameter, as PyTorch holds it).
    pub qkv: Linear<'a>,
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
        let (window, rope_theta) = pre.layer(index);
        let ffn = if pre.gated { 2 * i } else { i };
        Ok(PreNormLayer {
            attn_norm: if index == 0 {
                None
            } else {
                Some(ln(n.attention_norm)?)
            },
            qkv: lin(n.query, h, 3 * h)?,
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
    pub(crate) fn linears(&self) -> [&Linear<'a>; 4] {
        [&self.qkv, &self.attention_out, &self.mlp_in, &self.mlp_out]
    }

    /// The same, mutably (for prepacking).
    pub(crate) fn linears_mut(&mut self) -> [&mut Linear<'a>; 4] {
        [
            &mut self.qkv,
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
        let sequences = Sequences {
            offsets: &offsets[..=batch_size],
            mask_bias: (!*remove_padding).then_some(&mask_bias[..]),
        };
        let buffers = PreNormBuffers {
            qkv,
            context,
            attention_output,
            intermediate,
            train: None,
        };
        let positions = (&packed_tokens[..t], seq_len);
        self.run(*parallel, threads, &sequences, positions, hidden, buffers);
    }

    /// The layer over the packed rows of `hidden` (one per position in `positions`: each
    /// row's index in the padded batch, and the padded length), in place: the one forward of
    /// inference and training. With `buffers.train` it keeps what the backward
    /// ([`crate::train`]) needs: the normed inputs of both blocks with their LayerNorm saves,
    /// the rotated queries and keys, the probabilities, the product before the gate.
    pub(crate) fn run(
        &self,
        par: &dyn Parallel,
        threads: &mut [ThreadScratch],
        sequences: &Sequences<'_>,
        (positions, seq_len): (&[u32], usize),
        hidden: &mut [f32],
        buffers: PreNormBuffers<'_>,
    ) {
        let PreNormBuffers {
            qkv,
            context,
            attention_output,
            intermediate,
            train,
        } = buffers;
        let t = positions.len();
        let h = self.attention_out.out_features();
        let (mut normed1, mut norm1, probs, mut normed2, mut norm2, gated) = match train {
            Some(tb) => (
                Some(tb.normed1),
                Some(tb.norm1),
                Some((tb.probs, tb.masks)),
                Some(tb.normed2),
                Some(tb.norm2),
                Some((tb.gated, tb.masks)),
            ),
            None => (None, None, None, None, None, None),
        };
        // normed = attn_norm(x) (the first layer takes x as it is).
        let normed: &[f32] = match (&self.attn_norm, normed1.take()) {
            (None, None) => &hidden[..t * h],
            (None, Some(keep)) => {
                keep[..t * h].copy_from_slice(&hidden[..t * h]);
                keep
            }
            (Some(norm), dst) => {
                let dst = dst.unwrap_or(&mut *attention_output);
                normalize(norm, &hidden[..t * h], &mut dst[..t * h], norm1.take());
                dst
            }
        };
        let qkv = &mut qkv[..t * 3 * h];
        linear_rows(par, &self.qkv, normed, t, qkv, Epilogue::None, threads);
        for part in [0, h] {
            let at = (positions, seq_len);
            rotate(
                &mut qkv[part..],
                3 * h,
                at,
                self.shape,
                self.rope_theta,
                false,
            );
        }
        let out_mask = probs.as_ref().and_then(|(_, m)| m.attention);
        let probs = probs.map(|(probs, m)| ProbsSave {
            probs,
            mask: m.probs,
        });
        let all = 0..sequences.offsets.len() - 1;
        let qkv = Qkv::fused(qkv, h);
        attention_rows(
            par, self.shape, sequences, all, None, qkv, context, probs, threads,
        );
        // x1 = x + dropout(Wo(context)), into attention_output.
        let x1 = &mut attention_output[..t * h];
        match out_mask {
            None => {
                let residual = Epilogue::AddResidual(&hidden[..t * h]);
                linear_rows(par, &self.attention_out, context, t, x1, residual, threads);
            }
            Some(mask) => {
                let none = Epilogue::None;
                linear_rows(par, &self.attention_out, context, t, x1, none, threads);
                apply_mask(x1, &mask[..t * h]);
                Epilogue::AddResidual(&hidden[..t * h]).apply(x1);
            }
        }
        // normed2 = mlp_norm(x1), into context (or its save).
        let normed2 = normed2.take().unwrap_or(&mut *context);
        normalize(&self.mlp_norm, x1, &mut normed2[..t * h], norm2.take());
        let ffn = self.mlp_in.out_features();
        let wi = &mut intermediate[..t * ffn];
        linear_rows(par, &self.mlp_in, normed2, t, wi, Epilogue::None, threads);
        let inner = self.mlp_out.in_features();
        // act(input) * gate: in place, or (training) beside the product it keeps.
        let gated: &[f32] = match gated {
            None => {
                gate(wi, inner, self.gated, self.activation);
                wi
            }
            Some((dst, masks)) => {
                let dst = &mut dst[..t * inner];
                gate_into(wi, dst, inner, self.gated, self.activation);
                if let Some(mask) = masks.ffn {
                    apply_mask(dst, &mask[..t * inner]);
                }
                dst
            }
        };
        // x2 = x1 + Wo(act(input) * gate), into hidden.
        let residual = Epilogue::AddResidual(x1);
        linear_rows(par, &self.mlp_out, gated, t, hidden, residual, threads);
    }
}

/// `dst = norm(src)`: the inference kernel's, or with `save` in f64 with the normalized rows
/// and inverse deviations kept (as training computes every LayerNorm).
fn normalize(norm: &LayerNorm<'_>, src: &[f32], dst: &mut [f32], save: Option<NormSave<'_>>) {
    dst.copy_from_slice(src);
    match save {
        None => norm.forward(dst),
        Some(NormSave { xhat, rstd }) => {
            let rows = dst.len() / norm.weight.len();
            let (xhat, rstd) = (&mut xhat[..dst.len()], &mut rstd[..rows]);
            layer_norm_save(dst, &norm.weight, &norm.bias, norm.eps, xhat, rstd);
        }
    }
}

/// `dst[t, inner] = act(input) * gate` of `src`'s `[t, 2 * inner]` rows `[input | gate]`
/// (without gating, `act(src)`), leaving `src` as it is: the forward [`gate`] computes in
/// place, element for element the same.
fn gate_into(src: &[f32], dst: &mut [f32], inner: usize, gated: bool, act: Activation) {
    if !gated {
        dst.copy_from_slice(&src[..dst.len()]);
        crate::kernels::activate_in_place(act, dst);
        return;
    }
    for (row, out) in src.chunks_exact(2 * inner).zip(dst.chunks_exact_mut(inner)) {
        let (input, gate) = row.split_at(inner);
        for ((o, &x), &g) in out.iter_mut().zip(input).zip(gate) {
            *o = crate::kernels::activate(act, x) * g;
        }
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
/// head's pair `(x[i], x[i + d/2])` at angle `pos * theta^(-2i/d)`, over the first
/// `heads · d` values of rows `stride` apart (one row per position). With `inverse`, the
/// rotation back (the angle negated): the backward of the forward rotation, which is
/// orthogonal.
pub(crate) fn rotate(
    x: &mut [f32],
    stride: usize,
    (positions, seq_len): (&[u32], usize),
    shape: AttentionShape,
    theta: f32,
    inverse: bool,
) {
    let (heads, d) = (shape.heads, shape.head_dim);
    let half = d / 2;
    for (r, &token) in positions.iter().enumerate() {
        let row = &mut x[r * stride..r * stride + heads * d];
        let pos = (token as usize % seq_len) as f32;
        for i in 0..half {
            let inv_freq = 1.0 / libm::powf(theta, (2 * i) as f32 / d as f32);
            let angle = pos * inv_freq;
            let (sin, cos) = (libm::sinf(angle), libm::cosf(angle));
            let sin = if inverse { -sin } else { sin };
            for head in row.chunks_exact_mut(d) {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos - b * sin;
                head[i + half] = b * cos + a * sin;
            }
        }
    }
}
