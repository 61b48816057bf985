// Decode GEMV, `y[i, r] = x[i, :] · w[r, :]` for i < m ≤ 8 rows of x and every row r of the
// row-major [n, k] weight w (HF layout). One warp per weight row: the warp streams the row once
// (16-byte loads where the row allows) and dots it with all m rows of x, so the weight — the
// whole cost at decode — is read exactly once. Launch: block 256 threads (8 warps), grid
// ceil(n / 8).

#define GEMV_MAX_M 8

extern "C" __global__ void gemv_f32(const float* __restrict__ x, int m, const float* __restrict__ w,
                                    float* __restrict__ y, int n, int k) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= n) return;
    const float* wr = w + (size_t)r * k;
    float acc[GEMV_MAX_M];
    for (int i = 0; i < GEMV_MAX_M; ++i) acc[i] = 0.0f;
    if ((k & 3) == 0) {
        const float4* w4 = reinterpret_cast<const float4*>(wr);
        // Unrolled so that each lane has several weight loads in flight: a 2048-row matrix is
        // only ~16 warps per SM, too few to cover the memory's latency one load at a time.
#pragma unroll 4
        for (int c = lane; c < (k >> 2); c += 32) {
            const float4 v = w4[c];
            for (int i = 0; i < m; ++i) {
                const float4 a = reinterpret_cast<const float4*>(x + (size_t)i * k)[c];
                acc[i] += v.x * a.x + v.y * a.y + v.z * a.z + v.w * a.w;
            }
        }
    } else {
        for (int c = lane; c < k; c += 32) {
            const float v = wr[c];
            for (int i = 0; i < m; ++i) acc[i] += v * x[(size_t)i * k + c];
        }
    }
    for (int i = 0; i < m; ++i) {
        const float s = warp_sum(acc[i]);
        if (lane == 0) y[(size_t)i * n + r] = s;
    }
}

// 16-bit weights (bf16 or IEEE half bits, widened to f32; the sums are f32 as in gemv_f32).
template <bool HALF>
__device__ __forceinline__ float widen16(unsigned short b) {
    return HALF ? f16_to_f32(b) : bf16_to_f32(b);
}

template <bool HALF>
__device__ __forceinline__ void gemv_16bit(const float* __restrict__ x, int m, const unsigned short* __restrict__ w,
                                           float* __restrict__ y, int n, int k) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= n) return;
    const unsigned short* wr = w + (size_t)r * k;
    float acc[GEMV_MAX_M];
    for (int i = 0; i < GEMV_MAX_M; ++i) acc[i] = 0.0f;
    if ((k & 7) == 0) {
        // 8 weights (16 bytes) per load; the activations as two 16-byte loads where x is
        // aligned to them (the same products, summed in the same order either way).
        const uint4* w8 = reinterpret_cast<const uint4*>(wr);
        const bool x16 = ((size_t)x & 15) == 0;
        // Unrolled so that each lane has several weight loads in flight: a 2048-row matrix is
        // only ~16 warps per SM, too few to cover the memory's latency one load at a time.
#pragma unroll 4
        for (int c = lane; c < (k >> 3); c += 32) {
            const uint4 v = w8[c];
            const unsigned int words[4] = {v.x, v.y, v.z, v.w};
            float f[8];
            for (int t = 0; t < 4; ++t) {
                f[2 * t] = widen16<HALF>((unsigned short)(words[t] & 0xffffu));
                f[2 * t + 1] = widen16<HALF>((unsigned short)(words[t] >> 16));
            }
            for (int i = 0; i < m; ++i) {
                const float* a = x + (size_t)i * k + 8 * c;
                float av[8];
                if (x16) {
                    const float4 a0 = reinterpret_cast<const float4*>(a)[0];
                    const float4 a1 = reinterpret_cast<const float4*>(a)[1];
                    av[0] = a0.x; av[1] = a0.y; av[2] = a0.z; av[3] = a0.w;
                    av[4] = a1.x; av[5] = a1.y; av[6] = a1.z; av[7] = a1.w;
                } else {
                    for (int t = 0; t < 8; ++t) av[t] = a[t];
                }
                float s = 0.0f;
                for (int t = 0; t < 8; ++t) s += f[t] * av[t];
                acc[i] += s;
            }
        }
    } else {
        for (int c = lane; c < k; c += 32) {
            const float v = widen16<HALF>(wr[c]);
            for (int i = 0; i < m; ++i) acc[i] += v * x[(size_t)i * k + c];
        }
    }
    for (int i = 0; i < m; ++i) {
        const float s = warp_sum(acc[i]);
        if (lane == 0) y[(size_t)i * n + r] = s;
    }
}

extern "C" __global__ void gemv_bf16(const float* __restrict__ x, int m, const bf16_bits* __restrict__ w,
                                     float* __restrict__ y, int n, int k) {
    gemv_16bit<false>(x, m, w, y, n, k);
}

extern "C" __global__ void gemv_f16(const float* __restrict__ x, int m, const f16_bits* __restrict__ w,
                                    float* __restrict__ y, int n, int k) {
    gemv_16bit<true>(x, m, w, y, n, k);
}
