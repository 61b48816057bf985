// Multi-head attention for one layer, T5 style (no 1/√d scaling): for query row i and head h,
// `softmax_j(q·k_j + bias + mask[j]) · v_j`, keys j < kv_len (and j ≤ q_pos0 + i when causal),
// with the layouts of the CPU kernels' AttentionArgs: query i, head h at
// q[i·q_row_stride + h·d]; key j, head h at k[h·kv_head_stride + j·kv_row_stride] (the same for
// v), which covers a projection's output and a [heads, capacity, d] cache alike; the relative
// bias by distance, bias[h·bias_head_stride + bias_offset + j − (q_pos0 + i)] (read when
// has_bias); mask [kv_len] (read when has_mask); out [q_len, heads·d] densely. `batch` such
// problems run in one launch (the rows of a decode step): problem t reads its queries from
// q + t·q_batch_stride and its keys and values from k, v + t·kv_batch_stride (0: shared), shares
// the bias and mask, and writes out + t·q_len·heads·d. With has_q_pos_at, q_pos0 is read from
// q_pos_at[0] (an f32-coded integer in device memory: a decode step's position, so that a recorded
// step replays at later positions; kv_len is then the cache's capacity, causality keeps the keys
// after the position out). One block per (i, h, t): scores in dynamic
// shared memory (kv_len floats), so kv_len is bounded by the device's shared memory. Launch:
// block 128, grid (q_len, heads, batch), shared kv_len·4 + 128 bytes.

extern "C" __global__ void attention(const float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v, const float* __restrict__ bias,
                                     const float* __restrict__ mask, int has_bias, int has_mask,
                                     float* __restrict__ out, int heads, int d, int q_len, int kv_len,
                                     int q_pos0_arg, int causal, int q_row_stride, int kv_head_stride,
                                     int kv_row_stride, int bias_head_stride, int bias_offset,
                                     long long q_batch_stride, long long kv_batch_stride,
                                     const float* __restrict__ q_pos_at, int has_q_pos_at) {
    extern __shared__ float smem[];
    float* scratch = smem;          // 32 floats
    float* scores = smem + 32;      // kv_len floats
    const int i = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
    int q_pos0 = q_pos0_arg;
    if (has_q_pos_at) {
        // Out of range (never, from the model): position 0, inside every buffer.
        const float f = q_pos_at[0];
        q_pos0 = (f >= 0.0f && f <= (float)(kv_len - q_len)) ? (int)f : 0;
    }
    const float* qi = q + t * q_batch_stride + (size_t)i * q_row_stride + h * d;
    const float* kh = k + t * kv_batch_stride + (size_t)h * kv_head_stride;
    const float* vh = v + t * kv_batch_stride + (size_t)h * kv_head_stride;
    const int visible = causal ? min(kv_len, q_pos0 + i + 1) : kv_len;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    // One warp per key.
    for (int j = warp; j < visible; j += warps) {
        float s = 0.0f;
        for (int c = lane; c < d; c += 32) s += qi[c] * kh[(size_t)j * kv_row_stride + c];
        s = warp_sum(s);
        if (lane == 0) {
            if (has_bias) s += bias[(size_t)h * bias_head_stride + bias_offset + j - (q_pos0 + i)];
            if (has_mask) s += mask[j];
            scores[j] = s;
        }
    }
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) mx = fmaxf(mx, scores[j]);
    mx = block_max(mx, scratch);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) {
        const float e = mx == -INFINITY ? 1.0f : expf(scores[j] - mx);
        scores[j] = e;
        sum += e;
    }
    sum = block_sum(sum, scratch);
    const float inv = 1.0f / sum;
    __syncthreads();
    float* oi = out + ((size_t)t * q_len + i) * heads * d + h * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < visible; ++j) acc += scores[j] * vh[(size_t)j * kv_row_stride + c];
        oi[c] = acc * inv;
    }
}
