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

// The block's best (value, index) pair, the larger value first and the lower index on ties,
// from each thread's candidate (bv, bi); every thread gets it back in (bv, bi). best_v and
// best_i are blockDim.x (at most 256) entries of shared memory.
__device__ __forceinline__ void block_argmax(float& bv, int& bi, float* best_v, int* best_i) {
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int h = blockDim.x >> 1; h > 0; h >>= 1) {
        if (threadIdx.x < h) {
            const float v = best_v[threadIdx.x + h];
            const int i = best_i[threadIdx.x + h];
            if (v > best_v[threadIdx.x] || (v == best_v[threadIdx.x] && i < best_i[threadIdx.x])) {
                best_v[threadIdx.x] = v;
                best_i[threadIdx.x] = i;
            }
        }
        __syncthreads();
    }
    bv = best_v[0];
    bi = best_i[0];
    // Every thread has read the result before the arrays are written again.
    __syncthreads();
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
    block_argmax(bv, bi, best_v, best_i);
    if (threadIdx.x == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

// What decoding needs from each row of logits without the row itself (see row_summary.rs):
// out[row] holds 2 + 2k floats: the log-sum-exp, the value at targets[row] (NaN when it is
// out of range), then k values and k indices (int bits) of the largest entries, largest first,
// equal values in index order, NaN never (index -1 once a row has no more). The top entries
// come from k rounds of a block arg-max over the entries after the previous pick in that order,
// each round reading the row from L2: meant for small k (beam search, top-k sampling).
// One block of 256 threads per row.
extern "C" __global__ void row_summary(const float* __restrict__ x, int cols, int k,
                                       const int* __restrict__ targets, float* __restrict__ out) {
    __shared__ float scratch[32];
    __shared__ float best_v[256];
    __shared__ int best_i[256];
    const float* xr = x + (size_t)blockIdx.x * cols;
    float* o = out + (size_t)blockIdx.x * (2 + 2 * (size_t)k);
    float mx = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    mx = block_max(mx, scratch);
    float s = 0.0f;
    if (mx != -INFINITY) {
        for (int c = threadIdx.x; c < cols; c += blockDim.x) s += expf(xr[c] - mx);
    }
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) {
        o[0] = mx == -INFINITY ? -INFINITY : mx + logf(s);
        const int t = targets[blockIdx.x];
        o[1] = (t >= 0 && t < cols) ? xr[t] : __int_as_float(0x7fc00000);
    }
    // The previous pick: every entry comes after (+inf, -1).
    float pv = INFINITY;
    int pi = -1;
    for (int r = 0; r < k; ++r) {
        float bv = -INFINITY;
        int bi = 0x7fffffff;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float v = xr[c];
            const bool after = v < pv || (v == pv && c > pi);
            if (after && (v > bv || (v == bv && c < bi))) { bv = v; bi = c; }
        }
        block_argmax(bv, bi, best_v, best_i);
        pv = bv;
        pi = bi;
        if (threadIdx.x == 0) {
            o[2 + r] = pv;
            o[2 + k + r] = __int_as_float(pi == 0x7fffffff ? -1 : pi);
        }
    }
}

// The logits processors' edits (see logit_edit.rs), one thread per edited entry: code[i] is
// HF's repetition penalty p (x·p when x < 0, else x / p, IEEE division as on the CPU) or 0 for
// a ban (-inf). Every index is distinct and inside x (checked by the caller).
// Launch: block 256, grid ceil(n / 256).
extern "C" __global__ void edit_logits(float* __restrict__ x, const unsigned* __restrict__ index,
                                       const float* __restrict__ code, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float* v = x + index[i];
    const float p = code[i];
    *v = p == 0.0f ? -INFINITY : (*v < 0.0f ? *v * p : *v / p);
}
