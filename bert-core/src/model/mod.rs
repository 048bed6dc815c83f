//! The BERT encoder, one struct per module of HF's `modeling_bert.py` and with its names, so
//! the math can be checked line by line: [`BertEmbeddings`] → [`BertEncoder`] (a stack of
//! [`BertLayer`] = [`BertAttention`] + [`BertIntermediate`] + [`BertOutput`]) → [`BertPooler`].
//!
//! `forward` runs entirely inside a [`Workspace`] the caller created once for a maximum
//! (batch, sequence) shape: no layer allocates.
//!
//! Module by job: [`batch`] (inputs), [`workspace`] (buffers), [`embeddings`], [`layer`],
//! `rows` (the row scheduler and fused epilogues), `attention`; this file holds the
//! model itself (load, encode, pool).

mod attention;
pub mod batch;
pub mod embeddings;
pub mod layer;
pub mod low_ram;
pub mod pre_norm;
mod rows;
pub(crate) mod saves;
mod tiny;
pub mod workspace;

pub use batch::{Batch, MASKED_SCORE_BIAS};
pub use embeddings::BertEmbeddings;
pub use layer::{
    BertAttention, BertIntermediate, BertLayer, BertOutput, BertSelfAttention, BertSelfOutput,
};
pub use pre_norm::PreNormLayer;
pub(crate) use workspace::HeadParts;
pub use workspace::{HeadBuffers, ThreadScratch, Workspace, MAX_BUFFER_ELEMENTS};

use attention::*;

use rows::*;
use saves::*;

pub(crate) use attention::Sequences;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::arch::Block;
use crate::config::BertConfig;
use crate::error::{Error, Result};
use crate::kernels::{GemmNeeds, Precision};
use crate::nn::Linear;
use crate::weights::Weights;

/// `BertEncoder`: the stack of layers.
#[derive(Debug, Clone)]
pub struct BertEncoder<'a> {
    /// `layer`: post-norm (BERT-style) layers.
    pub layer: Vec<BertLayer<'a>>,
    /// Pre-norm (ModernBERT-style) layers; a model has one kind or the other, as its
    /// [`Architecture`](crate::arch::Architecture)'s `block` says.
    pub pre_norm: Vec<PreNormLayer<'a>>,
    /// The norm after the last layer (pre-norm models).
    pub final_norm: Option<crate::nn::LayerNorm<'a>>,
}

/// `BertPooler`: `tanh(dense(hidden[CLS]))`.
#[derive(Debug, Clone)]
pub struct BertPooler<'a> {
    /// `dense`.
    pub dense: Linear<'a>,
    /// The activation after `dense`: `None` is BERT's tanh; the classification heads of other
    /// families that pool the first token the same way bring theirs (RoBERTa: tanh through
    /// `None`, ELECTRA: GELU, DistilBERT: ReLU).
    pub activation: Option<crate::activation::Activation>,
    /// A norm after the activation (ModernBERT's prediction head).
    pub norm: Option<crate::nn::LayerNorm<'a>>,
    /// Pool the mean of the real tokens instead of the first token.
    pub mean: bool,
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
    /// Load the encoder of `config`'s family from `weights` (with or without the family's
    /// prefix, `bert.`, `roberta.`, ...), by the family's tensor names
    /// ([`crate::families`]). The pooler is loaded when the family has one and the checkpoint
    /// stores it.
    pub fn load(config: &BertConfig, weights: &Weights<'a>) -> Result<Self> {
        let names = crate::families::names(config.arch.family);
        let p = weights.encoder_prefix();
        let embeddings = BertEmbeddings::load(weights, p, config, names)?;
        let prefix = |i: usize| format!("{p}{}.{i}", names.layers);
        let (layer, pre_norm) = match &config.arch.block {
            Block::PostNorm => (
                (0..config.num_hidden_layers)
                    .map(|i| BertLayer::load(weights, &prefix(i), config, names))
                    .collect::<Result<Vec<_>>>()?,
                Vec::new(),
            ),
            Block::PreNorm(pre) => (
                Vec::new(),
                (0..config.num_hidden_layers)
                    .map(|i| PreNormLayer::load(weights, &prefix(i), config, names, i, pre))
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        let final_norm = match (names.final_norm, &config.arch.block) {
            (Some(name), Block::PreNorm(pre)) => Some(crate::nn::LayerNorm::load_with_bias(
                weights,
                &format!("{p}{name}"),
                config.hidden_size,
                config.layer_norm_eps,
                pre.norm_bias,
            )?),
            _ => None,
        };
        let pooler_name = format!("{p}{}", names.pooler.unwrap_or("pooler.dense"));
        let pooler = if names.pooler.is_some() && weights.contains(&format!("{pooler_name}.weight"))
        {
            Some(BertPooler {
                activation: None,
                norm: None,
                mean: false,
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
            encoder: BertEncoder {
                layer,
                pre_norm,
                final_norm,
            },
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
            .chain(self.encoder.pre_norm.iter().flat_map(|l| l.linears()))
            .map(|l| l.gemm_needs(max_tokens))
            .chain(self.pooler.as_ref().map(|p| p.dense.gemm_needs(max_batch)))
            .chain(
                self.embeddings
                    .project
                    .as_ref()
                    .map(|p| p.gemm_needs(max_tokens)),
            )
            .fold(attention, GemmNeeds::max)
    }

    /// The widest output of the encoder's linear layers.
    pub(crate) fn widest_output(&self) -> usize {
        self.encoder
            .layer
            .iter()
            .flat_map(|l| {
                l.linears()
                    .into_iter()
                    .chain(&l.attention.self_attention.fused_qkv)
            })
            .chain(self.encoder.pre_norm.iter().flat_map(|l| l.linears()))
            .map(Linear::out_features)
            .max()
            .unwrap_or(0)
    }

    /// Pack every encoder and pooler weight once for the kernels in use (see
    /// [`Linear::prepack`]): faster products, most of all for small batches, for one more copy
    /// of the encoder's linear weights in memory (f32 panels for f32 / f16 / bf16 weights, int8
    /// panels for int8 ones).
    pub fn prepack(&mut self) {
        self.prepack_as(Precision::Stored);
    }

    /// [`prepack`](Self::prepack) for products in `precision`: with [`Precision::Bf16`] every
    /// encoder and pooler product runs with bf16 inputs and f32 sums (attention's score and
    /// context products, LayerNorm, softmax and the heads stay f32).
    pub fn prepack_as(&mut self, precision: Precision) {
        for layer in &mut self.encoder.layer {
            let a = &mut layer.attention;
            let sa = &mut a.self_attention;
            // Q, K and V as one product where their weights stack (same storage type).
            match Linear::stack(&[&sa.query, &sa.key, &sa.value]) {
                Some(mut qkv) => {
                    qkv.prepack_as(precision);
                    sa.fused_qkv = Some(qkv.without_unpacked_weight());
                }
                None => {
                    for l in [&mut sa.query, &mut sa.key, &mut sa.value] {
                        l.prepack_as(precision);
                    }
                }
            }
            for l in [
                &mut a.output.dense,
                &mut layer.intermediate.dense,
                &mut layer.output.dense,
            ] {
                l.prepack_as(precision);
            }
        }
        if let Some(p) = &mut self.pooler {
            p.dense.prepack_as(precision);
        }
        if let Some(p) = &mut self.embeddings.project {
            p.prepack_as(precision);
        }
        for layer in &mut self.encoder.pre_norm {
            for l in layer.linears_mut() {
                l.prepack_as(precision);
            }
        }
    }

    /// A workspace for up to `max_batch` sequences of up to `max_seq` tokens.
    pub fn workspace(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        Workspace::new(self, max_batch, max_seq, HeadBuffers::default())
    }

    /// Bytes of the weight copies packed for the kernels ([`prepack`](Self::prepack)), held in
    /// RAM beside the stored weights (which a memory-mapped or in-place load leaves where they
    /// are); 0 before packing.
    pub fn packed_bytes(&self) -> usize {
        let size = |l: &Linear<'_>| {
            l.packed
                .as_ref()
                .map_or(0, crate::kernels::PackedWeight::size_in_bytes)
        };
        let mut n = 0;
        for layer in &self.encoder.layer {
            n += layer.linears().iter().map(|l| size(l)).sum::<usize>();
            n += layer
                .attention
                .self_attention
                .fused_qkv
                .as_ref()
                .map_or(0, size);
        }
        for layer in &self.encoder.pre_norm {
            n += layer.linears().iter().map(|l| size(l)).sum::<usize>();
        }
        n + self.pooler.as_ref().map_or(0, |p| size(&p.dense))
            + self.embeddings.project.as_ref().map_or(0, size)
    }

    /// Bytes of weights this model holds (whatever their dtype).
    pub fn weight_bytes(&self) -> usize {
        let e = &self.embeddings;
        let mut n = e.word_embeddings.weight.size_in_bytes()
            + e.position_embeddings
                .as_ref()
                .map_or(0, |t| t.weight.size_in_bytes())
            + e.token_type_embeddings
                .as_ref()
                .map_or(0, |t| t.weight.size_in_bytes())
            + e.project.as_ref().map_or(0, |p| p.weight.size_in_bytes());
        for l in &self.encoder.layer {
            n += l
                .linears()
                .iter()
                .map(|x| x.weight.size_in_bytes())
                .sum::<usize>();
        }
        for l in &self.encoder.pre_norm {
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
        self.embeddings.embed_into(
            batch,
            tokens,
            &mut ws.hidden,
            &mut ws.context,
            &mut ws.row,
            &mut ws.threads[0].gemm,
        );
        for layer in &self.encoder.layer {
            layer.forward(n, batch.batch_size, ws);
        }
        for layer in &self.encoder.pre_norm {
            layer.forward(n, batch.batch_size, batch.seq_len, ws);
        }
        if let Some(norm) = &self.encoder.final_norm {
            norm.forward(&mut ws.hidden[..n * h]);
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
            let dst = &mut ws.context[b * h..(b + 1) * h];
            if pooler.mean {
                // The mean of the real tokens (mask 1), as HF's `classifier_pooling="mean"`.
                dst.fill(0.0);
                let mut count = 0usize;
                for t in 0..s {
                    if batch.attention_mask.is_none_or(|m| m[b * s + t] != 0) {
                        let row = &ws.hidden[(b * s + t) * h..(b * s + t + 1) * h];
                        dst.iter_mut().zip(row).for_each(|(d, x)| *d += x);
                        count += 1;
                    }
                }
                dst.iter_mut().for_each(|d| *d /= count.max(1) as f32);
            } else {
                dst.copy_from_slice(&ws.hidden[b * s * h..b * s * h + h]);
            }
        }
        pooler.dense.forward(
            &ws.context,
            batch.batch_size,
            &mut ws.pooled,
            &mut ws.threads[0].gemm,
        );
        let pooled = &mut ws.pooled[..batch.batch_size * h];
        match pooler.activation {
            None => pooled.iter_mut().for_each(|v| *v = libm::tanhf(*v)),
            Some(act) => crate::kernels::activate_in_place(act, pooled),
        }
        if let Some(norm) = &pooler.norm {
            norm.forward(pooled);
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

#[cfg(test)]
mod tests {
    use super::tiny::tiny_model_file;
    use super::*;

    /// Hidden states of `model` on a 2-sequence batch with padding.
    fn hidden_states(model: &BertModel<'_>) -> Vec<f32> {
        let mut ws = model.workspace(2, 5).unwrap();
        let ids = [1, 2, 3, 0, 0, 4, 5, 6, 7, 8];
        let mask = [1, 1, 1, 0, 0, 1, 1, 1, 1, 1];
        let batch = Batch::new(&ids, 2, 5).with_attention_mask(&mask);
        let out = model.forward(&batch, &mut ws).unwrap();
        out.last_hidden_state.to_vec()
    }

    #[test]
    fn fused_qkv_gives_the_three_products_values_bit_for_bit() {
        use crate::quantize::{quantize, QuantDtype};
        let (config, f32_file) = tiny_model_file();
        let int8_file = quantize(&[&f32_file], QuantDtype::Int8).unwrap();
        for (file, precision) in [
            (&f32_file, Precision::Stored),
            (&f32_file, Precision::Bf16),
            (&int8_file, Precision::Stored),
        ] {
            let weights = Weights::from_buffers(&[file]).unwrap();
            let mut fused = BertModel::load(&config, &weights).unwrap();
            fused.prepack_as(precision);
            let mut separate = fused.clone();
            for layer in &mut separate.encoder.layer {
                let sa = &mut layer.attention.self_attention;
                assert!(sa.fused_qkv.take().is_some(), "prepack fuses Q, K and V");
                for l in [&mut sa.query, &mut sa.key, &mut sa.value] {
                    l.prepack_as(precision);
                }
            }
            assert_eq!(
                hidden_states(&fused),
                hidden_states(&separate),
                "{precision:?}"
            );
        }
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
