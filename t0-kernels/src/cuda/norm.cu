// T5's RMS norm (no mean, no bias): `y = x · rsqrt(mean(x²) + eps) · weight`, f32 throughout as
// HF computes it. One block per row. Launch: block 256, grid rows, 32 floats of shared memory.

extern "C" __global__ void rms_norm(const float* __restrict__ x, const float* __restrict__ weight,
                                    float* __restrict__ y, int cols, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) ss += xr[c] * xr[c];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = xr[c] * inv * weight[c];
}

// The residual add and the next block's norm in one pass: `acc += x`, then `y = rms_norm(acc)`.
// The same sums in the same order as add_inplace followed by rms_norm (bit for bit), one launch
// and one read of the row fewer. Launch: as rms_norm.
extern "C" __global__ void add_rms_norm(float* __restrict__ acc, const float* __restrict__ x,
                                        const float* __restrict__ weight, float* __restrict__ y, int cols,
                                        float eps) {
    __shared__ float scratch[32];
    float* ar = acc + (size_t)blockIdx.x * cols;
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* yr = y + (size_t)blockIdx.x * cols;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        const float v = ar[c] + xr[c];
        ar[c] = v;
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) yr[c] = ar[c] * inv * weight[c];
}
