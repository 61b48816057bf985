// Element-wise kernels of the T5 blocks. `act` codes: 0 ReLU, 1 gelu_new (HF's
// NewGELUActivation), 2 SiLU. `gated_act` reads rows of `[gate | up]` (2·ff wide, the stacked
// wi_0/wi_1 output) and writes `act(gate) · up` (ff wide). Launch (all but the embeddings and
// kv_append): block 256, grid ceil(count / 256).

__device__ __forceinline__ float apply_act(float x, int act) {
    if (act == 0) return fmaxf(x, 0.0f);
    if (act == 1) {
        // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        const float c = 0.7978845608028654f;
        return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
    }
    return x / (1.0f + expf(-x));
}

extern "C" __global__ void gated_act(const float* __restrict__ gate_up, float* __restrict__ out, int rows, int ff,
                                     int act) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * ff) return;
    const size_t r = i / ff, c = i % ff;
    const float g = gate_up[r * 2 * ff + c], u = gate_up[r * 2 * ff + ff + c];
    out[i] = apply_act(g, act) * u;
}

extern "C" __global__ void act_inplace(float* __restrict__ x, int count, int act) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] = apply_act(x[i], act);
}

// `x += y`, the residual stream.
extern "C" __global__ void add_inplace(float* __restrict__ x, const float* __restrict__ y, int count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] += y[i];
}

// `x *= s` (the tied head's d_model^-0.5).
extern "C" __global__ void scale_inplace(float* __restrict__ x, int count, float s) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) x[i] *= s;
}

// Embedding rows: out[t, :] = table[ids[t], :] (f32 table). Launch: block 256, grid (ceil(cols /
// 256), tokens). Ids were checked against the vocabulary on the host.
extern "C" __global__ void embedding_f32(const float* __restrict__ table, const int* __restrict__ ids,
                                         float* __restrict__ out, int cols) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < cols) out[(size_t)blockIdx.y * cols + c] = table[(size_t)ids[blockIdx.y] * cols + c];
}

// As embedding_f32, the ids read from device memory as f32-coded integers (a decode step's
// tokens, written before the step so that a recorded step replays with new ones); an id outside
// [0, vocab) writes nothing. Launch: block 256, grid (ceil(cols / 256), ids).
extern "C" __global__ void embedding_f32_coded(const float* __restrict__ table, const float* __restrict__ ids,
                                               float* __restrict__ out, int cols, int vocab) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const float f = ids[blockIdx.y];
    if (c >= cols || !(f >= 0.0f && f < (float)vocab)) return;
    out[(size_t)blockIdx.y * cols + c] = table[(size_t)(int)f * cols + c];
}

// The keys and values of `rows` rows of qkv (`[rows, q | k | v]`, each heads·d wide) written at
// position pos_at[0] (an f32-coded integer in device memory, so that a recorded decode step
// replays at later positions; outside [0, cap) nothing is written) of caches laid out
// [rows, heads, cap, d]. Launch: block 256, grid ceil(rows·heads·d / 256).
extern "C" __global__ void kv_append(const float* __restrict__ qkv, float* __restrict__ k, float* __restrict__ v,
                                     int rows, int heads, int d, int cap, const float* __restrict__ pos_at) {
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t inner = (size_t)heads * d;
    const float pf = pos_at[0];
    if (i >= (size_t)rows * inner || !(pf >= 0.0f && pf < (float)cap)) return;
    const int pos = (int)pf;
    const size_t r = i / inner, hc = i % inner, h = hc / d, c = hc % d;
    const size_t dst = ((r * heads + h) * cap + pos) * d + c;
    k[dst] = qkv[r * 3 * inner + inner + hc];
    v[dst] = qkv[r * 3 * inner + 2 * inner + hc];
}
