//! The building blocks of the model, named after `torch.nn`: [`Linear`], [`LayerNorm`],
//! [`Embedding`]. Each loads itself from [`Weights`] and runs on caller-provided buffers.

use alloc::borrow::Cow;
use alloc::format;

use crate::error::Result;
use crate::kernels::{self, GemmNeeds, GemmScratch, MatMut, MatRef, PackedWeight, Precision, Rhs};
use crate::weights::{Matrix, Weights};

/// `y = x Wᵀ + b`, with `W` stored `[out_features, in_features]` in any [`Storage`](crate::weights::Storage) dtype.
#[derive(Debug, Clone)]
pub struct Linear<'a> {
    /// `[out_features, in_features]`.
    pub weight: Matrix<'a>,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<Cow<'a, [f32]>>,
    /// The weight packed ahead of time for the kernels, after [`prepack`](Self::prepack).
    pub packed: Option<PackedWeight>,
}

impl<'a> Linear<'a> {
    /// Load `{prefix}.weight` `[out, in]` and `{prefix}.bias` `[out]`.
    pub fn load(
        w: &Weights<'a>,
        prefix: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Self> {
        Ok(Linear {
            weight: w.matrix(&format!("{prefix}.weight"), out_features, in_features)?,
            bias: Some(w.vector(&format!("{prefix}.bias"), out_features)?),
            packed: None,
        })
    }

    /// Load `{prefix}.weight`, and `{prefix}.bias` when `bias` (layers configured without
    /// biases, as ModernBERT's, have none).
    pub fn load_with_bias(
        w: &Weights<'a>,
        prefix: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
    ) -> Result<Self> {
        if bias {
            return Self::load(w, prefix, in_features, out_features);
        }
        Ok(Linear {
            weight: w.matrix(&format!("{prefix}.weight"), out_features, in_features)?,
            bias: None,
            packed: None,
        })
    }

    /// Output rows `start..end` as a layer of their own (a fused `Wqkv` split into Q, K and
    /// V): borrowed from the same weights, no copy where they were borrowed.
    pub fn rows(&self, start: usize, end: usize) -> Linear<'a> {
        Linear {
            weight: self.weight.rows(start, end),
            bias: self.bias.as_ref().map(|b| match b {
                Cow::Borrowed(s) => Cow::Borrowed(&s[start..end]),
                Cow::Owned(v) => Cow::Owned(v[start..end].to_vec()),
            }),
            packed: None,
        }
    }

    /// The layers `parts` as one (their outputs side by side, in order: a fused Q, K, V
    /// projection), owning a copy of their weights; `None` when their inputs or weight types
    /// differ, or only some have a bias.
    pub fn stack(parts: &[&Linear<'_>]) -> Option<Linear<'static>> {
        let weights: alloc::vec::Vec<&Matrix<'_>> = parts.iter().map(|l| &l.weight).collect();
        let weight = Matrix::stack_rows(&weights)?;
        let bias = if parts.iter().all(|l| l.bias.is_none()) {
            None
        } else {
            let mut b = alloc::vec::Vec::with_capacity(weight.rows);
            for l in parts {
                b.extend_from_slice(l.bias.as_deref()?);
            }
            Some(Cow::Owned(b))
        };
        Some(Linear {
            weight,
            bias,
            packed: None,
        })
    }

    /// This layer with its unpacked weight dropped (kept: its shape and storage type), after
    /// [`prepack`](Self::prepack): for an owned copy whose panels serve every product (the
    /// panels were packed for the instruction set in use, which is picked once per process).
    pub(crate) fn without_unpacked_weight(mut self) -> Self {
        assert!(self.packed.is_some(), "pack the layer first");
        // No rows of the same storage type; `rows` and `cols` stay.
        self.weight.storage = self.weight.rows(0, 0).storage;
        self
    }

    /// Input width.
    pub fn in_features(&self) -> usize {
        self.weight.cols
    }

    /// Output width.
    pub fn out_features(&self) -> usize {
        self.weight.rows
    }

    /// What [`forward`](Self::forward) on `rows` rows needs from a [`GemmScratch`].
    pub fn gemm_needs(&self, rows: usize) -> GemmNeeds {
        GemmNeeds::for_weight(&self.weight, rows)
    }

    /// Pack the weight once for the kernels in use, so that products skip packing. Costs
    /// `in · out` f32 of memory for f32 / f16 / bf16 weights, `in · out` bytes for int8.
    pub fn prepack(&mut self) {
        self.prepack_as(Precision::Stored);
    }

    /// Pack the weight once for products in `precision` ([`Precision::Bf16`]: bf16 panels,
    /// `in · out` bf16 values).
    pub fn prepack_as(&mut self, precision: Precision) {
        self.packed = Some(PackedWeight::with_precision(
            kernels::isa(),
            &self.weight,
            precision,
        ));
    }

    /// `out[rows, out_features] = x[rows, in_features] · Wᵀ + b`.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], scratch: &mut GemmScratch) {
        linear_rhs(self.rhs(), self.bias.as_deref(), x, rows, out, scratch);
    }

    /// Output columns `cols` of [`forward`](Self::forward) (`cols.start` a multiple of
    /// [`kernels::COLUMN_ALIGN`]) into `out` (`rows × cols.len()`, any row stride): each
    /// column gets the value `forward` gives it, so two threads can share a product of a few
    /// rows.
    pub fn forward_cols(
        &self,
        x: &[f32],
        rows: usize,
        out: MatMut<'_>,
        cols: core::ops::Range<usize>,
        scratch: &mut GemmScratch,
    ) {
        let k = self.in_features();
        let x = MatRef::dense(&x[..rows * k], rows, k);
        let bias = self.bias.as_deref();
        kernels::matmul_bias_cols(out, x, self.rhs(), bias, cols, scratch);
    }

    fn rhs(&self) -> Rhs<'_> {
        match &self.packed {
            Some(p) if p.fits(kernels::isa()) => Rhs::PackedT(p),
            _ => Rhs::WeightT(&self.weight),
        }
    }
}

/// `out[rows, n] = x[rows, k] · weightᵀ + bias`, for `weight` `[n, k]` in any storage dtype
/// (f16 / bf16 widened while packing, int8 through the int8 kernel).
pub fn linear(
    weight: &Matrix<'_>,
    bias: Option<&[f32]>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    scratch: &mut GemmScratch,
) {
    linear_rhs(Rhs::WeightT(weight), bias, x, rows, out, scratch);
}

fn linear_rhs(
    rhs: Rhs<'_>,
    bias: Option<&[f32]>,
    x: &[f32],
    rows: usize,
    out: &mut [f32],
    scratch: &mut GemmScratch,
) {
    let (k, n) = match rhs {
        Rhs::WeightT(w) => (w.cols, w.rows),
        Rhs::PackedT(p) => p.shape_kn(),
        Rhs::Dense(b) => (b.rows, b.cols),
    };
    kernels::gemm::matmul_bias(
        MatMut::dense(&mut out[..rows * n], rows, n),
        MatRef::dense(&x[..rows * k], rows, k),
        rhs,
        bias,
        scratch,
    );
}

/// `torch.nn.LayerNorm` over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm<'a> {
    /// Scale (`weight`, legacy `gamma`).
    pub weight: Cow<'a, [f32]>,
    /// Shift (`bias`, legacy `beta`).
    pub bias: Cow<'a, [f32]>,
    /// Epsilon added to the variance.
    pub eps: f32,
}

impl<'a> LayerNorm<'a> {
    /// Load `{prefix}.weight` / `{prefix}.bias` (or `gamma` / `beta`).
    pub fn load(w: &Weights<'a>, prefix: &str, width: usize, eps: f32) -> Result<Self> {
        Ok(LayerNorm {
            weight: w.vector(&format!("{prefix}.weight"), width)?,
            bias: w.vector(&format!("{prefix}.bias"), width)?,
            eps,
        })
    }

    /// Load `{prefix}.weight`, and the bias when `bias` (else a zero shift, as
    /// `nn.LayerNorm(bias=False)`).
    pub fn load_with_bias(
        w: &Weights<'a>,
        prefix: &str,
        width: usize,
        eps: f32,
        bias: bool,
    ) -> Result<Self> {
        if bias {
            return Self::load(w, prefix, width, eps);
        }
        Ok(LayerNorm {
            weight: w.vector(&format!("{prefix}.weight"), width)?,
            bias: Cow::Owned(alloc::vec![0.0; width]),
            eps,
        })
    }

    /// Normalise every row of `x` in place.
    pub fn forward(&self, x: &mut [f32]) {
        kernels::layer_norm(x, &self.weight, &self.bias, self.eps);
    }

    /// `x = LayerNorm(x + residual)`.
    pub fn forward_residual(&self, x: &mut [f32], residual: &[f32]) {
        kernels::add_layer_norm(x, residual, &self.weight, &self.bias, self.eps);
    }
}

/// `torch.nn.Embedding`: a lookup table of `[num_embeddings, dim]` rows.
#[derive(Debug, Clone)]
pub struct Embedding<'a> {
    /// The table.
    pub weight: Matrix<'a>,
}

impl<'a> Embedding<'a> {
    /// Load `{prefix}.weight` `[num, dim]`.
    pub fn load(w: &Weights<'a>, prefix: &str, num: usize, dim: usize) -> Result<Self> {
        Ok(Embedding {
            weight: w.matrix(&format!("{prefix}.weight"), num, dim)?,
        })
    }

    /// Rows in the table.
    pub fn num_embeddings(&self) -> usize {
        self.weight.rows
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.weight.cols
    }

    /// Copy row `index` into `out`. The caller has checked `index < num_embeddings()`.
    pub fn lookup_into(&self, index: usize, out: &mut [f32]) {
        self.weight.row_into(index, out);
    }

    /// Add row `index` to `out`.
    pub fn add_into(&self, index: usize, out: &mut [f32], tmp: &mut [f32]) {
        self.weight.row_into(index, tmp);
        for (o, t) in out.iter_mut().zip(tmp.iter()) {
            *o += t;
        }
    }
}

/// LayerNorm over rows of `x` (in place), saving the normalized rows (`xhat`) and each row's
/// `1 / sqrt(var + eps)` for the backward. Variance is the biased one, as `torch.nn.LayerNorm`.
pub fn layer_norm_save(
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    xhat: &mut [f32],
    rstd: &mut [f32],
) {
    let w = gamma.len();
    for ((row, zh), r) in x
        .chunks_exact_mut(w)
        .zip(xhat.chunks_exact_mut(w))
        .zip(rstd.iter_mut())
    {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / w as f64;
        let var = row
            .iter()
            .map(|&v| (v as f64 - mean) * (v as f64 - mean))
            .sum::<f64>()
            / w as f64;
        let inv = 1.0 / libm::sqrt(var + eps as f64);
        *r = inv as f32;
        for (i, v) in row.iter_mut().enumerate() {
            let z = ((*v as f64 - mean) * inv) as f32;
            zh[i] = z;
            *v = z * gamma[i] + beta[i];
        }
    }
}
