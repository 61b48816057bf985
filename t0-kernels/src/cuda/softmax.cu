// Row softmax in place, max-subtracted. A row whose entries are all -inf becomes uniform (as
// the CPU kernels do). One block per row. Launch: block 256, grid rows.

extern "C" __global__ void softmax_rows(float* __restrict__ x, int cols) {
    __shared__ float scratch[32];
    float* xr = x + (size_t)blockIdx.x * cols;
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    mx = block_max(mx, scratch);
    if (mx == -INFINITY) {
        for (int c = threadIdx.x; c < cols; c += blockDim.x) xr[c] = 1.0f / (float)cols;
        return;
    }
    float s = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float e = expf(xr[c] - mx);
        xr[c] = e;
        s += e;
    }
    s = block_sum(s, scratch);
    const float inv = 1.0f / s;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) xr[c] *= inv;
}

// Greedy decoding on device: the index of each row's largest value (the first on ties, NaN
// never wins). One block per row, 256 threads.
extern "C" __global__ void argmax_rows(const float* __restrict__ x, int cols, int* __restrict__ out) {
    __shared__ float best_v[256];
    __shared__ int best_i[256];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = xr[c];
        if (v > bv || (v == bv && c < bi)) { bv = v; bi = c; }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x >> 1; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float v = best_v[threadIdx.x + s];
            const int i = best_i[threadIdx.x + s];
            if (v > best_v[threadIdx.x] || (v == best_v[threadIdx.x] && i < best_i[threadIdx.x])) {
                best_v[threadIdx.x] = v;
                best_i[threadIdx.x] = i;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = best_i[0] == 0x7fffffff ? 0 : best_i[0];
}
