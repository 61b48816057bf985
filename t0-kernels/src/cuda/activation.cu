// Feed-forward activations, element-wise. `gated_gelu` reads rows of `[gate | up]` (2·ff wide,
// the fused wi_0/wi_1 output) and writes `gelu_new(gate) · up` (ff wide); `relu_inplace` is the
// original T5's. Launch: block 256, grid ceil(count / 256).

__device__ __forceinline__ float gelu_new(float x) {
    // HF's NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    const float c = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

extern "C" __global__ void gated_gelu(const float* __restrict__ gate_up, float* __restrict__ out, int rows, int ff) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * ff) return;
    const size_t r = i / ff, c = i % ff;
    const float g = gate_up[r * 2 * ff + c], u = gate_up[r * 2 * ff + ff + c];
    out[i] = gelu_new(g) * u;
}

extern "C" __global__ void relu_inplace(float* __restrict__ x, int count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] = fmaxf(x[i], 0.0f);
}

// `x += y`, the residual stream.
extern "C" __global__ void add_inplace(float* __restrict__ x, const float* __restrict__ y, int count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] += y[i];
}

// Embedding rows: out[t, :] = table[ids[t], :] (f32 table). Launch: block 256, grid (ceil(cols /
// 256), tokens). Ids were checked against the vocabulary on the host.
extern "C" __global__ void embedding_f32(const float* __restrict__ table, const int* __restrict__ ids,
                                         float* __restrict__ out, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < cols) out[(size_t)blockIdx.y * cols + c] = table[(size_t)ids[blockIdx.y] * cols + c];
}
