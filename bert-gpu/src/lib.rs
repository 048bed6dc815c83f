//! # bert-gpu
//!
//! BERT on CUDA through `cudarc`, with the CUDA libraries loaded at run time
//! (`dynamic-loading`): the crate builds on machines without any CUDA toolkit, and every entry
//! point checks for the driver, cuBLAS and NVRTC *before* cudarc touches them (cudarc panics when
//! it first loads a library that is absent), so a machine without CUDA gets a typed
//! [`GpuError`], never a panic.
//!
//! [`GpuBert`] runs the whole encoder on the device: weights uploaded once (f32; f16 / bf16 /
//! int8 weights are widened on upload), every matrix product through cuBLAS (`gemm` for the
//! linear layers and the pooler, `gemm_strided_batched` over heads for the attention scores and
//! context), everything else in small NVRTC kernels ([`kernels::SOURCE`]: embedding gather,
//! LayerNorm with bias and residual, bias + activation, masked softmax). One host→device copy in
//! (ids, segment ids, mask), one device→host copy out (hidden states and pooler output).
//!
//! Status: f32 only. It has run on an NVIDIA H200 (driver 580, CUDA 13): last_hidden_state
//! within 2.0e-6 of the CPU core on all-MiniLM-L6-v2; 2-3× PyTorch at small batches, slower at
//! large ones (see the project's issues). The parity test (`tests/parity.rs`) runs wherever
//! `probe` finds a device and skips with the reason elsewhere.
//!
//! ```
//! // On a machine without CUDA this is a typed error, never a panic.
//! match bert_gpu::probe() {
//!     Ok(info) => println!("a CUDA device is usable: {info:?}"),
//!     Err(e) => println!("no GPU: {e}"),
//! }
//! ```

pub mod kernels;

use std::sync::Arc;

use bert_core::config::Activation;
use bert_core::model::Batch;
use bert_core::nn::{LayerNorm, Linear};
use bert_core::weights::Matrix;
use bert_core::{BertConfig, BertModel};
use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg};

/// Why the GPU path cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpuError {
    /// The CUDA driver library (libcuda) cannot be loaded.
    #[error("no CUDA driver: libcuda could not be loaded (is an NVIDIA driver installed?)")]
    NoDriver,
    /// The driver loaded, but there is no usable device.
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    /// cuBLAS cannot be loaded.
    #[error("no cuBLAS: libcublas could not be loaded (install the CUDA 13 runtime libraries)")]
    NoCublas,
    /// NVRTC cannot be loaded.
    #[error("no NVRTC: libnvrtc could not be loaded (install the CUDA 13 runtime libraries)")]
    NoNvrtc,
    /// A CUDA call failed (allocation, copy, kernel compilation or launch, cuBLAS).
    #[error("CUDA error: {0}")]
    Cuda(String),
    /// The batch does not fit the model (ids out of range, wrong lengths, ...).
    #[error("bad input: {0}")]
    Input(String),
    /// The model's architecture description asks for something the device path does not do
    /// yet (read from `BertConfig::arch`, the same description the CPU encoder runs).
    #[error("not on the GPU yet: {0}")]
    Unsupported(String),
}

fn cuda<E: std::fmt::Debug>(e: E) -> GpuError {
    GpuError::Cuda(format!("{e:?}"))
}

/// What [`probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// Number of CUDA devices.
    pub count: usize,
    /// Name of device 0.
    pub name: String,
}

/// The libraries a GPU run needs, checked without letting cudarc panic.
fn check_libraries() -> Result<(), GpuError> {
    // SAFETY: `is_culib_present` only tries `dlopen` on the library's candidate names and drops
    // the handle; loading the vendor's CUDA libraries runs their initialisers, which are made to
    // be loaded into any process. No symbol is called.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(GpuError::NoDriver);
    }
    // SAFETY: as above, for libcublas.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(GpuError::NoCublas);
    }
    // SAFETY: as above, for libnvrtc.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::NoNvrtc);
    }
    Ok(())
}

/// Look for a CUDA device: the libraries first, then the driver's device count and name.
pub fn probe() -> Result<DeviceInfo, GpuError> {
    check_libraries()?;
    let count = cudarc::driver::CudaContext::device_count()
        .map_err(|e| GpuError::NoDevice(e.to_string()))?;
    if count < 1 {
        return Err(GpuError::NoDevice("the driver reports 0 devices".into()));
    }
    let ctx = cudarc::driver::CudaContext::new(0).map_err(|e| GpuError::NoDevice(e.to_string()))?;
    let name = ctx.name().map_err(|e| GpuError::NoDevice(e.to_string()))?;
    Ok(DeviceInfo {
        count: count as usize,
        name,
    })
}

/// A linear layer on the device: `W [out, in]` row-major, and its bias.
struct GpuLinear {
    weight: CudaSlice<f32>,
    bias: CudaSlice<f32>,
    in_features: usize,
    out_features: usize,
}

/// A LayerNorm on the device.
struct GpuNorm {
    gamma: CudaSlice<f32>,
    beta: CudaSlice<f32>,
    eps: f32,
}

/// One `BertLayer` on the device.
struct GpuLayer {
    query: GpuLinear,
    key: GpuLinear,
    value: GpuLinear,
    attention_output: GpuLinear,
    attention_norm: GpuNorm,
    intermediate: GpuLinear,
    activation: i32,
    output: GpuLinear,
    output_norm: GpuNorm,
}

/// The NVRTC functions.
struct Kernels {
    embed: CudaFunction,
    add_layer_norm: CudaFunction,
    bias_act: CudaFunction,
    masked_softmax: CudaFunction,
}

/// What [`GpuBert::forward`] returns (copied back to the host).
#[derive(Debug, Clone)]
pub struct GpuOutput {
    /// `[batch, seq, hidden]`.
    pub last_hidden_state: Vec<f32>,
    /// `[batch, hidden]`, when the model has a pooler.
    pub pooler_output: Option<Vec<f32>>,
}

/// The GPU model, built from the CPU [`BertModel`] (same weights, same config): switch with one
/// line, `GpuBert::new(&model)?.forward(&batch)?` instead of `model.forward(&batch, &mut ws)?`.
pub struct GpuBert {
    /// The device it runs on.
    pub device: DeviceInfo,
    config: BertConfig,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    kernels: Kernels,
    word_embeddings: CudaSlice<f32>,
    position_embeddings: CudaSlice<f32>,
    token_type_embeddings: CudaSlice<f32>,
    embedding_norm: GpuNorm,
    layers: Vec<GpuLayer>,
    pooler: Option<GpuLinear>,
}

impl std::fmt::Debug for GpuBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuBert")
            .field("device", &self.device)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

fn activation_code(act: Activation) -> i32 {
    match act {
        Activation::Gelu => kernels::act::GELU,
        Activation::GeluTanh => kernels::act::GELU_TANH,
        Activation::Relu => kernels::act::RELU,
        Activation::Silu => kernels::act::SILU,
    }
}

fn launch_1d(blocks: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Threads per block for row-wise kernels (a multiple of 32, at most 1024).
const ROW_THREADS: u32 = 256;

impl GpuBert {
    /// Upload `model` to device 0. Returns a typed error where there is no usable CUDA.
    pub fn new(model: &BertModel<'_>) -> Result<Self, GpuError> {
        let arch = &model.config.arch;
        let e = &model.embeddings;
        if arch.positions != bert_core::arch::PositionScheme::Absolute
            || e.project.is_some()
            || e.token_type_embeddings.is_none()
            || model
                .pooler
                .as_ref()
                .is_some_and(|p| p.activation.is_some())
        {
            return Err(GpuError::Unsupported(format!(
                "the {} family ({:?}); the device kernels cover BERT's absolute positions, \
                 token types and hidden-width embeddings",
                arch.family.model_type(),
                arch
            )));
        }
        let device = probe()?;
        let ctx = cudarc::driver::CudaContext::new(0).map_err(cuda)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(cuda)?;
        let ptx = cudarc::nvrtc::compile_ptx(kernels::SOURCE).map_err(cuda)?;
        let module = ctx.load_module(ptx).map_err(cuda)?;
        let function = |name: &str| module.load_function(name).map_err(cuda);
        let kernels = Kernels {
            embed: function("embed")?,
            add_layer_norm: function("add_layer_norm")?,
            bias_act: function("bias_act")?,
            masked_softmax: function("masked_softmax")?,
        };
        let matrix = |m: &Matrix<'_>| -> Result<CudaSlice<f32>, GpuError> {
            let mut host = vec![0.0f32; m.rows * m.cols];
            m.storage.read_f32(0, &mut host);
            stream.clone_htod(&host).map_err(cuda)
        };
        let vector = |v: &[f32]| stream.clone_htod(v).map_err(cuda);
        let linear = |l: &Linear<'_>| -> Result<GpuLinear, GpuError> {
            let zeros = vec![0.0f32; l.out_features()];
            Ok(GpuLinear {
                weight: matrix(&l.weight)?,
                bias: vector(l.bias.as_deref().unwrap_or(&zeros))?,
                in_features: l.in_features(),
                out_features: l.out_features(),
            })
        };
        let norm = |n: &LayerNorm<'_>| -> Result<GpuNorm, GpuError> {
            Ok(GpuNorm {
                gamma: vector(&n.weight)?,
                beta: vector(&n.bias)?,
                eps: n.eps,
            })
        };
        let e = &model.embeddings;
        let layers = model
            .encoder
            .layer
            .iter()
            .map(|l| {
                let a = &l.attention;
                Ok(GpuLayer {
                    query: linear(&a.self_attention.query)?,
                    key: linear(&a.self_attention.key)?,
                    value: linear(&a.self_attention.value)?,
                    attention_output: linear(&a.output.dense)?,
                    attention_norm: norm(&a.output.layer_norm)?,
                    intermediate: linear(&l.intermediate.dense)?,
                    activation: activation_code(l.intermediate.intermediate_act_fn),
                    output: linear(&l.output.dense)?,
                    output_norm: norm(&l.output.layer_norm)?,
                })
            })
            .collect::<Result<Vec<_>, GpuError>>()?;
        Ok(GpuBert {
            device,
            config: model.config.clone(),
            word_embeddings: matrix(&e.word_embeddings.weight)?,
            position_embeddings: matrix(
                &e.position_embeddings
                    .as_ref()
                    .ok_or_else(|| GpuError::Unsupported("no position table".into()))?
                    .weight,
            )?,
            token_type_embeddings: matrix(
                &e.token_type_embeddings
                    .as_ref()
                    .ok_or_else(|| GpuError::Unsupported("no token types".into()))?
                    .weight,
            )?,
            embedding_norm: norm(&e.layer_norm)?,
            layers,
            pooler: model
                .pooler
                .as_ref()
                .map(|p| linear(&p.dense))
                .transpose()?,
            stream,
            blas,
            kernels,
        })
    }

    /// `y[rows, out] = x[rows, in] · Wᵀ` (bias left to the epilogue kernels). Row-major
    /// `y = x Wᵀ` is column-major `yᵀ = W xᵀ`: cuBLAS sees `W` (stored `[out, in]` row-major,
    /// i.e. `Wᵀ` column-major) transposed, and `x` as it is. `x_row_stride` lets the pooler
    /// read every `seq`-th row.
    fn linear(
        &self,
        l: &GpuLinear,
        x: &CudaSlice<f32>,
        x_row_stride: usize,
        rows: usize,
        y: &mut CudaSlice<f32>,
    ) -> Result<(), GpuError> {
        let cfg = GemmConfig {
            transa: CUBLAS_OP_T,
            transb: CUBLAS_OP_N,
            m: l.out_features as i32,
            n: rows as i32,
            k: l.in_features as i32,
            alpha: 1.0f32,
            lda: l.in_features as i32,
            ldb: x_row_stride as i32,
            beta: 0.0f32,
            ldc: l.out_features as i32,
        };
        // SAFETY: W holds out·in floats (lda = in), x holds (rows - 1)·stride + in floats
        // (the callers size it so), y holds rows·out floats (ldc = out).
        unsafe { self.blas.gemm(cfg, &l.weight, x, y) }.map_err(cuda)
    }

    fn bias_act(
        &self,
        x: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        total: usize,
        width: usize,
        act: i32,
    ) -> Result<(), GpuError> {
        let (total_i, width_i) = (total as i64, width as i32);
        let mut launch = self.stream.launch_builder(&self.kernels.bias_act);
        launch
            .arg(x)
            .arg(bias)
            .arg(&total_i)
            .arg(&width_i)
            .arg(&act);
        // SAFETY: the kernel reads `bias[i % width]` and writes `x[i]` for i < total; both
        // buffers hold that many floats.
        unsafe { launch.launch(launch_1d(total.div_ceil(256), 256)) }.map_err(cuda)?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn add_layer_norm(
        &self,
        x: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
        residual: Option<&CudaSlice<f32>>,
        norm: &GpuNorm,
        rows: usize,
        width: usize,
    ) -> Result<(), GpuError> {
        let flags = kernels::WITH_BIAS | residual.map_or(0, |_| kernels::WITH_RESIDUAL);
        let width_i = width as i32;
        let mut launch = self.stream.launch_builder(&self.kernels.add_layer_norm);
        launch
            .arg(x)
            .arg(bias)
            .arg(residual.unwrap_or(&norm.gamma))
            .arg(&norm.gamma)
            .arg(&norm.beta)
            .arg(&width_i)
            .arg(&norm.eps)
            .arg(&flags);
        // SAFETY: one block per row of `width` floats in x (and residual, when flagged);
        // bias / gamma / beta hold `width` floats.
        unsafe { launch.launch(launch_1d(rows, ROW_THREADS)) }.map_err(cuda)?;
        Ok(())
    }

    /// The forward pass: `last_hidden_state` (and `pooler_output` with a pooler), as
    /// `bert_core::BertModel::forward` with padding kept (padded positions computed and masked,
    /// as HF).
    pub fn forward(&self, batch: &Batch<'_>) -> Result<GpuOutput, GpuError> {
        batch
            .validate(&self.config)
            .map_err(|e| GpuError::Input(e.to_string()))?;
        let c = &self.config;
        let (b, s, h) = (batch.batch_size, batch.seq_len, c.hidden_size);
        let (heads, d, inter) = (c.num_attention_heads, c.head_dim(), c.intermediate_size);
        let t = b * s;
        // One copy in: ids, segment ids, mask.
        let mut host: Vec<i32> = Vec::with_capacity(3 * t);
        host.extend(batch.input_ids.iter().map(|&x| x as i32));
        match batch.token_type_ids {
            Some(tt) => host.extend(tt.iter().map(|&x| x as i32)),
            None => host.extend(std::iter::repeat_n(0, t)),
        }
        match batch.attention_mask {
            Some(m) => host.extend(m.iter().map(|&x| x as i32)),
            None => host.extend(std::iter::repeat_n(1, t)),
        }
        let inputs = self.stream.clone_htod(&host).map_err(cuda)?;
        let (ids, types, keep) = (
            inputs.slice(0..t),
            inputs.slice(t..2 * t),
            inputs.slice(2 * t..3 * t),
        );

        let alloc = |n: usize| self.stream.alloc_zeros::<f32>(n).map_err(cuda);
        // The hidden states and the pooler output share one buffer, so one copy brings both out.
        let pooled_len = if self.pooler.is_some() { b * h } else { 0 };
        let mut out = alloc(t * h + pooled_len)?;
        let (mut q, mut k, mut v) = (alloc(t * h)?, alloc(t * h)?, alloc(t * h)?);
        let (mut context, mut attention) = (alloc(t * h)?, alloc(t * h)?);
        let mut intermediate = alloc(t * inter)?;
        let mut scores = alloc(heads * s * s)?;
        let mut hidden = alloc(t * h)?;

        let (s_i, h_i) = (s as i32, h as i32);
        let mut launch = self.stream.launch_builder(&self.kernels.embed);
        launch
            .arg(&ids)
            .arg(&types)
            .arg(&mut hidden)
            .arg(&self.word_embeddings)
            .arg(&self.position_embeddings)
            .arg(&self.token_type_embeddings)
            .arg(&s_i)
            .arg(&h_i);
        // SAFETY: one block per token; ids / types were validated against the table sizes, and
        // positions are below max_position_embeddings (validated seq_len).
        unsafe { launch.launch(launch_1d(t, ROW_THREADS)) }.map_err(cuda)?;
        let zero_bias = alloc(h)?;
        self.add_layer_norm(&mut hidden, &zero_bias, None, &self.embedding_norm, t, h)?;

        let scale = 1.0 / (d as f32).sqrt();
        for layer in &self.layers {
            self.linear(&layer.query, &hidden, h, t, &mut q)?;
            self.linear(&layer.key, &hidden, h, t, &mut k)?;
            self.linear(&layer.value, &hidden, h, t, &mut v)?;
            for (buf, l) in [
                (&mut q, &layer.query),
                (&mut k, &layer.key),
                (&mut v, &layer.value),
            ] {
                self.bias_act(buf, &l.bias, t * h, h, kernels::act::NONE)?;
            }
            for seq in 0..b {
                let base = seq * s * h;
                // scores[head] = Q_head · K_headᵀ · scale: column-major scoresᵀ = K Qᵀ.
                let cfg = StridedBatchedConfig {
                    gemm: GemmConfig {
                        transa: CUBLAS_OP_T,
                        transb: CUBLAS_OP_N,
                        m: s as i32,
                        n: s as i32,
                        k: d as i32,
                        alpha: scale,
                        lda: h as i32,
                        ldb: h as i32,
                        beta: 0.0,
                        ldc: s as i32,
                    },
                    batch_size: heads as i32,
                    stride_a: d as i64,
                    stride_b: d as i64,
                    stride_c: (s * s) as i64,
                };
                let (kv, qv) = (k.slice(base..), q.slice(base..));
                // SAFETY: head j reads K/Q rows of this sequence at column offset j·d (within
                // the hidden width) and writes its own s·s block of `scores`.
                unsafe { self.blas.gemm_strided_batched(cfg, &kv, &qv, &mut scores) }
                    .map_err(cuda)?;
                let keep_seq = keep.slice(seq * s..(seq + 1) * s);
                let mut launch = self.stream.launch_builder(&self.kernels.masked_softmax);
                launch.arg(&mut scores).arg(&keep_seq).arg(&s_i);
                // SAFETY: one block per score row (heads · s rows of s floats).
                unsafe { launch.launch(launch_1d(heads * s, ROW_THREADS)) }.map_err(cuda)?;
                // context_head = P · V_head: column-major contextᵀ = Vᵀ Pᵀ.
                let cfg = StridedBatchedConfig {
                    gemm: GemmConfig {
                        transa: CUBLAS_OP_N,
                        transb: CUBLAS_OP_N,
                        m: d as i32,
                        n: s as i32,
                        k: s as i32,
                        alpha: 1.0,
                        lda: h as i32,
                        ldb: s as i32,
                        beta: 0.0,
                        ldc: h as i32,
                    },
                    batch_size: heads as i32,
                    stride_a: d as i64,
                    stride_b: (s * s) as i64,
                    stride_c: d as i64,
                };
                let vv = v.slice(base..);
                let mut cv = context.slice_mut(base..);
                // SAFETY: head j reads its V columns and P block and writes its d columns of
                // this sequence's context rows.
                unsafe { self.blas.gemm_strided_batched(cfg, &vv, &scores, &mut cv) }
                    .map_err(cuda)?;
            }
            self.linear(&layer.attention_output, &context, h, t, &mut attention)?;
            let ao = &layer.attention_output;
            self.add_layer_norm(
                &mut attention,
                &ao.bias,
                Some(&hidden),
                &layer.attention_norm,
                t,
                h,
            )?;
            self.linear(&layer.intermediate, &attention, h, t, &mut intermediate)?;
            let im = &layer.intermediate;
            self.bias_act(
                &mut intermediate,
                &im.bias,
                t * inter,
                inter,
                layer.activation,
            )?;
            self.linear(&layer.output, &intermediate, inter, t, &mut hidden)?;
            let o = &layer.output;
            self.add_layer_norm(
                &mut hidden,
                &o.bias,
                Some(&attention),
                &layer.output_norm,
                t,
                h,
            )?;
        }
        self.stream
            .memcpy_dtod(&hidden, &mut out.slice_mut(0..t * h))
            .map_err(cuda)?;
        if let Some(pooler) = &self.pooler {
            // The [CLS] rows are every s-th row: a row stride of s·h.
            let mut pooled = alloc(b * h)?;
            self.linear(pooler, &hidden, s * h, b, &mut pooled)?;
            self.bias_act(&mut pooled, &pooler.bias, b * h, h, kernels::act::TANH)?;
            self.stream
                .memcpy_dtod(&pooled, &mut out.slice_mut(t * h..))
                .map_err(cuda)?;
        }
        // One copy out.
        let mut all = self.stream.clone_dtoh(&out).map_err(cuda)?;
        let pooler_output = self.pooler.as_ref().map(|_| all.split_off(t * h));
        Ok(GpuOutput {
            last_hidden_state: all,
            pooler_output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_a_typed_error_or_a_device_never_a_panic() {
        match probe() {
            Ok(info) => {
                eprintln!("CUDA device found: {info:?}");
                assert!(info.count >= 1);
            }
            Err(e) => {
                eprintln!("skipping GPU checks: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
}
