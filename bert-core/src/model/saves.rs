//! What a training step's forward keeps for its backward. Training runs the same layer
//! forward as inference ([`BertLayer::run`](super::BertLayer)); given a [`PostNormSaved`] it
//! points the layer's outputs at these buffers and its fused epilogues
//! ([`LayerEpilogue`]) also write the normalized rows, the inverse deviations and the
//! activation's input. Without one, nothing here is touched and nothing is copied.

use alloc::vec;
use alloc::vec::Vec;

use super::rows::{Epilogue, RowEpilogue};
use crate::config::Activation;
use crate::kernels;
use crate::nn::{layer_norm_save, LayerNorm};

/// `a[i] *= m[i]`: a dropout mask (0 or `1 / (1 - p)`) on activations or their gradient.
pub(crate) fn apply_mask(a: &mut [f32], m: &[f32]) {
    a.iter_mut().zip(m).for_each(|(x, k)| *x *= k);
}

/// What one post-norm layer's forward keeps for its backward, at capacity.
#[derive(Debug, Clone, Default)]
pub(crate) struct PostNormSaved {
    /// The layer's input (the previous layer's output, which the next one overwrites).
    pub(crate) x_in: Vec<f32>,
    /// Q, K and V: three `[tokens, hidden]` thirds.
    pub(crate) qkv: Vec<f32>,
    /// The attention probabilities before dropout: per sequence, `[heads, n, n]`.
    pub(crate) probs: Vec<f32>,
    pub(crate) ctx: Vec<f32>,
    pub(crate) xhat1: Vec<f32>,
    pub(crate) rstd1: Vec<f32>,
    /// The attention block's output (after its LayerNorm).
    pub(crate) y1: Vec<f32>,
    /// The intermediate product before the activation.
    pub(crate) u: Vec<f32>,
    /// After the activation.
    pub(crate) g: Vec<f32>,
    pub(crate) xhat2: Vec<f32>,
    pub(crate) rstd2: Vec<f32>,
}

/// One layer's dropout masks for this step (each `None` when that dropout is off): the
/// attention probabilities' (in the layout of [`PostNormSaved::probs`]) and the two hidden
/// ones', on the attention output and the feed-forward output (`[tokens, hidden]`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LayerMasks<'m> {
    pub(crate) probs: Option<&'m [f32]>,
    pub(crate) attention: Option<&'m [f32]>,
    pub(crate) ffn: Option<&'m [f32]>,
}

impl PostNormSaved {
    /// Buffers for up to `tokens` packed rows of width `hidden`, an intermediate width of
    /// `intermediate`, and `probs` attention probabilities.
    pub(crate) fn new(tokens: usize, hidden: usize, intermediate: usize, probs: usize) -> Self {
        let th = tokens * hidden;
        PostNormSaved {
            x_in: vec![0.0; th],
            qkv: vec![0.0; 3 * th],
            probs: vec![0.0; probs],
            ctx: vec![0.0; th],
            xhat1: vec![0.0; th],
            rstd1: vec![0.0; tokens],
            y1: vec![0.0; th],
            u: vec![0.0; tokens * intermediate],
            g: vec![0.0; tokens * intermediate],
            xhat2: vec![0.0; th],
            rstd2: vec![0.0; tokens],
        }
    }

    /// Q, K and V (each `[capacity tokens, hidden]`).
    pub(crate) fn qkv(&self) -> [&[f32]; 3] {
        let third = self.qkv.len() / 3;
        [
            &self.qkv[..third],
            &self.qkv[third..2 * third],
            &self.qkv[2 * third..],
        ]
    }
}

/// Where the attention probabilities of the sequences being computed go (from the first
/// one's), and their dropout mask in the same layout; the context is then computed from the
/// probabilities times the mask.
pub(crate) struct ProbsSave<'s> {
    pub(crate) probs: &'s mut [f32],
    pub(crate) mask: Option<&'s [f32]>,
}

impl<'s> ProbsSave<'s> {
    /// The saves of the first `at` probabilities and of the rest.
    pub(crate) fn split_at(self, at: usize) -> (Self, Self) {
        let (p1, p2) = self.probs.split_at_mut(at);
        let (m1, m2) = split_opt(self.mask, at);
        (
            ProbsSave {
                probs: p1,
                mask: m1,
            },
            ProbsSave {
                probs: p2,
                mask: m2,
            },
        )
    }
}

/// The buffers one post-norm layer writes besides the hidden rows: the workspace's scratch in
/// inference; in a training step, a [`PostNormSaved`]'s, plus what only training keeps.
pub(crate) struct LayerBuffers<'s> {
    pub(crate) qkv: &'s mut [f32],
    pub(crate) context: &'s mut [f32],
    pub(crate) attention_output: &'s mut [f32],
    /// The intermediate product: activated in place in inference, kept as the activation's
    /// input in training.
    pub(crate) intermediate: &'s mut [f32],
    pub(crate) train: Option<TrainBuffers<'s>>,
}

/// What only a training step's forward writes, and its dropout masks.
pub(crate) struct TrainBuffers<'s> {
    pub(crate) x_in: &'s mut [f32],
    pub(crate) probs: &'s mut [f32],
    pub(crate) activated: &'s mut [f32],
    pub(crate) norm1: NormSave<'s>,
    pub(crate) norm2: NormSave<'s>,
    pub(crate) masks: LayerMasks<'s>,
}

impl PostNormSaved {
    /// The layer's buffers pointed at these saves, with this step's masks.
    pub(crate) fn buffers<'s>(&'s mut self, masks: LayerMasks<'s>) -> LayerBuffers<'s> {
        LayerBuffers {
            qkv: &mut self.qkv,
            context: &mut self.ctx,
            attention_output: &mut self.y1,
            intermediate: &mut self.u,
            train: Some(TrainBuffers {
                x_in: &mut self.x_in,
                probs: &mut self.probs,
                activated: &mut self.g,
                norm1: NormSave {
                    xhat: &mut self.xhat1,
                    rstd: &mut self.rstd1,
                },
                norm2: NormSave {
                    xhat: &mut self.xhat2,
                    rstd: &mut self.rstd2,
                },
                masks,
            }),
        }
    }
}

/// A LayerNorm's saves for its backward: the normalized rows and each row's `1 / σ`.
pub(crate) struct NormSave<'s> {
    pub(crate) xhat: &'s mut [f32],
    pub(crate) rstd: &'s mut [f32],
}

/// A post-norm layer's fused epilogues, for inference and training alike.
pub(crate) enum LayerEpilogue<'a> {
    /// The activation. With `activated`, the product (its input) stays where it was written
    /// and the activated copy goes to `activated`; without, it is activated in place.
    Activation {
        act: Activation,
        activated: Option<&'a mut [f32]>,
    },
    /// `LayerNorm(dropout(out) + residual)`. With `save`, in f64 with the normalized rows
    /// and inverse deviations kept (as training has always computed it); without, the
    /// inference kernel's ([`Epilogue::AddNorm`]).
    AddNorm {
        dropout: Option<&'a [f32]>,
        residual: &'a [f32],
        norm: &'a LayerNorm<'a>,
        save: Option<NormSave<'a>>,
    },
}

/// An optional slice (a dropout mask) cut at `at`, both halves `None` without one.
pub(crate) fn split_opt(s: Option<&[f32]>, at: usize) -> (Option<&[f32]>, Option<&[f32]>) {
    match s {
        Some(s) => {
            let (a, b) = s.split_at(at);
            (Some(a), Some(b))
        }
        None => (None, None),
    }
}

impl RowEpilogue for LayerEpilogue<'_> {
    fn apply_rows(self, out: &mut [f32]) {
        let n = out.len();
        match self {
            LayerEpilogue::Activation {
                act,
                activated: None,
            } => Epilogue::Activation(act).apply(out),
            LayerEpilogue::Activation {
                act,
                activated: Some(dst),
            } => {
                let dst = &mut dst[..n];
                dst.copy_from_slice(out);
                kernels::activate_in_place(act, dst);
            }
            LayerEpilogue::AddNorm {
                dropout,
                residual,
                norm,
                save,
            } => {
                if let Some(m) = dropout {
                    apply_mask(out, &m[..n]);
                }
                match save {
                    None => Epilogue::AddNorm(residual, norm).apply(out),
                    Some(NormSave { xhat, rstd }) => {
                        Epilogue::AddResidual(residual).apply(out);
                        let rows = n / norm.weight.len();
                        let (gamma, beta) = (&norm.weight, &norm.bias);
                        layer_norm_save(
                            out,
                            gamma,
                            beta,
                            norm.eps,
                            &mut xhat[..n],
                            &mut rstd[..rows],
                        );
                    }
                }
            }
        }
    }

    fn split_at(self, at: usize) -> (Self, Self) {
        match self {
            LayerEpilogue::Activation { act, activated } => {
                let (a, b) = match activated {
                    Some(dst) => {
                        let (a, b) = dst.split_at_mut(at);
                        (Some(a), Some(b))
                    }
                    None => (None, None),
                };
                (
                    LayerEpilogue::Activation { act, activated: a },
                    LayerEpilogue::Activation { act, activated: b },
                )
            }
            LayerEpilogue::AddNorm {
                dropout,
                residual,
                norm,
                save,
            } => {
                let (d1, d2) = split_opt(dropout, at);
                let (r1, r2) = residual.split_at(at);
                let (s1, s2) = match save {
                    Some(NormSave { xhat, rstd }) => {
                        let (x1, x2) = xhat.split_at_mut(at);
                        let (q1, q2) = rstd.split_at_mut(at / norm.weight.len());
                        (
                            Some(NormSave { xhat: x1, rstd: q1 }),
                            Some(NormSave { xhat: x2, rstd: q2 }),
                        )
                    }
                    None => (None, None),
                };
                (
                    LayerEpilogue::AddNorm {
                        dropout: d1,
                        residual: r1,
                        norm,
                        save: s1,
                    },
                    LayerEpilogue::AddNorm {
                        dropout: d2,
                        residual: r2,
                        norm,
                        save: s2,
                    },
                )
            }
        }
    }
}

/// What one pre-norm layer's forward keeps for its backward, at capacity.
#[derive(Debug, Clone, Default)]
pub(crate) struct PreNormSaved {
    /// `Wqkv`'s input: `attn_norm(x)`, or `x` itself in the first layer.
    pub(crate) normed1: Vec<f32>,
    pub(crate) xhat1: Vec<f32>,
    pub(crate) rstd1: Vec<f32>,
    /// `[tokens, 3 * hidden]`: the queries and keys after the rotation, the values.
    pub(crate) qkv: Vec<f32>,
    /// The attention probabilities: per sequence, `[heads, n, n]` (0 outside a local window).
    pub(crate) probs: Vec<f32>,
    pub(crate) ctx: Vec<f32>,
    /// `x + Wo(ctx)`: the feed-forward block's residual.
    pub(crate) x1: Vec<f32>,
    /// `mlp_norm(x1)`, `Wi`'s input.
    pub(crate) normed2: Vec<f32>,
    pub(crate) xhat2: Vec<f32>,
    pub(crate) rstd2: Vec<f32>,
    /// `Wi`'s output `[tokens, 2 * intermediate]` (input, then gate).
    pub(crate) wi: Vec<f32>,
    /// `act(input) * gate` `[tokens, intermediate]`, `Wo`'s input.
    pub(crate) gated: Vec<f32>,
}

impl PreNormSaved {
    /// Buffers for up to `tokens` packed rows of width `hidden`, a feed-forward product of
    /// `ffn` outputs gated down to `inner`, and `probs` attention probabilities.
    pub(crate) fn new(
        tokens: usize,
        hidden: usize,
        (ffn, inner): (usize, usize),
        probs: usize,
    ) -> Self {
        let th = tokens * hidden;
        PreNormSaved {
            normed1: vec![0.0; th],
            xhat1: vec![0.0; th],
            rstd1: vec![0.0; tokens],
            qkv: vec![0.0; 3 * th],
            probs: vec![0.0; probs],
            ctx: vec![0.0; th],
            x1: vec![0.0; th],
            normed2: vec![0.0; th],
            xhat2: vec![0.0; th],
            rstd2: vec![0.0; tokens],
            wi: vec![0.0; tokens * ffn],
            gated: vec![0.0; tokens * inner],
        }
    }

    /// The layer's buffers pointed at these saves, with this step's masks (the feed-forward
    /// one on the gated product, `[tokens, intermediate]`).
    pub(crate) fn buffers<'s>(&'s mut self, masks: LayerMasks<'s>) -> PreNormBuffers<'s> {
        PreNormBuffers {
            qkv: &mut self.qkv,
            context: &mut self.ctx,
            attention_output: &mut self.x1,
            intermediate: &mut self.wi,
            train: Some(PreNormTrain {
                normed1: &mut self.normed1,
                norm1: NormSave {
                    xhat: &mut self.xhat1,
                    rstd: &mut self.rstd1,
                },
                probs: &mut self.probs,
                normed2: &mut self.normed2,
                norm2: NormSave {
                    xhat: &mut self.xhat2,
                    rstd: &mut self.rstd2,
                },
                gated: &mut self.gated,
                masks,
            }),
        }
    }
}

/// The buffers one pre-norm layer writes besides the hidden rows: the workspace's scratch in
/// inference (the first norm's output in `attention_output`, the second's in `context`); in
/// a training step, a [`PreNormSaved`]'s.
pub(crate) struct PreNormBuffers<'s> {
    /// `[tokens, 3 * hidden]`.
    pub(crate) qkv: &'s mut [f32],
    pub(crate) context: &'s mut [f32],
    pub(crate) attention_output: &'s mut [f32],
    /// `Wi`'s output: gated in place in inference, kept in training.
    pub(crate) intermediate: &'s mut [f32],
    pub(crate) train: Option<PreNormTrain<'s>>,
}

/// What only a training step's pre-norm forward writes.
pub(crate) struct PreNormTrain<'s> {
    pub(crate) normed1: &'s mut [f32],
    pub(crate) norm1: NormSave<'s>,
    pub(crate) probs: &'s mut [f32],
    pub(crate) normed2: &'s mut [f32],
    pub(crate) norm2: NormSave<'s>,
    /// `act(input) * gate`, after the feed-forward dropout (what `mlp.Wo` reads).
    pub(crate) gated: &'s mut [f32],
    pub(crate) masks: LayerMasks<'s>,
}
