//! The device kernels, compiled at run time by NVRTC: everything of the forward pass that is not
//! a matrix product (those go to cuBLAS). One CUDA source, one function per step, each mirroring
//! the CPU code in `bert_core::kernels` / `bert_core::model`.

/// CUDA C source of the kernels (f32 throughout; f16 weights are widened on upload).
pub const SOURCE: &str = r#"
extern "C" {

// out[t, :] = word[ids[t]] + token_type[types[t]] + position[t % seq]   (one block per token)
__global__ void embed(const int* ids, const int* types, float* out,
                      const float* word, const float* position, const float* token_type,
                      int seq, int hidden) {
    int t = blockIdx.x;
    int id = ids[t], ty = types[t], pos = t % seq;
    for (int j = threadIdx.x; j < hidden; j += blockDim.x) {
        out[(size_t)t * hidden + j] = word[(size_t)id * hidden + j]
            + token_type[(size_t)ty * hidden + j] + position[(size_t)pos * hidden + j];
    }
}

// Block-wide sum (blockDim.x a multiple of 32, at most 1024).
__device__ float block_sum(float v, float* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    int warps = blockDim.x / 32;
    v = (threadIdx.x < warps) ? shared[threadIdx.x] : 0.0f;
    if (warp == 0) {
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    return shared[0];
}

// x[r] = LayerNorm(x[r] + bias + residual[r]) * gamma + beta; flags: 1 add bias, 2 add
// residual. One block per row; torch's biased variance.
__global__ void add_layer_norm(float* x, const float* bias, const float* residual,
                               const float* gamma, const float* beta, int width, float eps,
                               int flags) {
    __shared__ float shared[32];
    float* row = x + (size_t)blockIdx.x * width;
    const float* res = residual + (size_t)blockIdx.x * width;
    float s = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float v = row[j] + ((flags & 1) ? bias[j] : 0.0f) + ((flags & 2) ? res[j] : 0.0f);
        row[j] = v;
        s += v;
    }
    float mean = block_sum(s, shared) / width;
    float d = 0.0f;
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        float c = row[j] - mean;
        d += c * c;
    }
    float inv = rsqrtf(block_sum(d, shared) / width + eps);
    for (int j = threadIdx.x; j < width; j += blockDim.x) {
        row[j] = (row[j] - mean) * inv * gamma[j] + beta[j];
    }
}

// x[i] = act(x[i] + bias[i % width]); act: 0 gelu (erf), 1 gelu (tanh), 2 relu, 3 silu, 4 tanh,
// 5 none.
__global__ void bias_act(float* x, const float* bias, long long total, int width, int act) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    float v = x[i] + bias[i % width];
    switch (act) {
        case 0: v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)); break;
        case 1: v = 0.5f * v * (1.0f + tanhf(0.7978845608f * (v + 0.044715f * v * v * v))); break;
        case 2: v = fmaxf(v, 0.0f); break;
        case 3: v = v / (1.0f + expf(-v)); break;
        case 4: v = tanhf(v); break;
        default: break;
    }
    x[i] = v;
}

// Softmax of each `seq`-long row of scores [heads * seq, seq] of one sequence, with HF's
// additive mask (keep[k] == 0: the key gets -FLT_MAX added, torch.finfo(float32).min). One
// block per row.
__global__ void masked_softmax(float* scores, const int* keep, int seq) {
    __shared__ float shared[32];
    float* row = scores + (size_t)blockIdx.x * seq;
    float m = -3.402823466e38f;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) {
        float v = row[j] + (keep[j] ? 0.0f : -3.402823466e38f);
        row[j] = v;
        m = fmaxf(m, v);
    }
    // Block max through the sum helper's shared memory.
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffff, m, o));
    __syncthreads();
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
        float mm = shared[0];
        for (int w = 1; w < blockDim.x / 32; w++) mm = fmaxf(mm, shared[w]);
        shared[0] = mm;
    }
    __syncthreads();
    m = shared[0];
    float s = 0.0f;
    for (int j = threadIdx.x; j < seq; j += blockDim.x) {
        float e = expf(row[j] - m);
        row[j] = e;
        s += e;
    }
    float inv = 1.0f / block_sum(s, shared);
    for (int j = threadIdx.x; j < seq; j += blockDim.x) row[j] *= inv;
}

}
"#;

/// `add_layer_norm`'s flag: add `bias`.
pub const WITH_BIAS: i32 = 1;
/// `add_layer_norm`'s flag: add `residual`.
pub const WITH_RESIDUAL: i32 = 2;

/// `bias_act`'s activation codes.
pub mod act {
    /// GELU with erf.
    pub const GELU: i32 = 0;
    /// GELU, tanh approximation.
    pub const GELU_TANH: i32 = 1;
    /// ReLU.
    pub const RELU: i32 = 2;
    /// SiLU.
    pub const SILU: i32 = 3;
    /// tanh (the pooler).
    pub const TANH: i32 = 4;
    /// Bias only.
    pub const NONE: i32 = 5;
}
