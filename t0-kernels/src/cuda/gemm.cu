// Tensor-core GEMM for bf16 weights (the encoder and prompts: m > GEMV_MAX_M rows), and the
// rounding of f32 activations to bf16 it takes.
//
// gemm_bf16_tc: y[i, r] = x[i, :] · w[r, :] for the row-major bf16 activations x [m, k] and the
// row-major bf16 weight w [n, k] (HF layout), f32 sums, written as f32 into y [m, n]. Each product
// is bf16 × bf16, exact in f32, as in the CPU's bf16 matmul (which rounds its activations to bf16
// too). `mma.sync.m16n8k16` (sm_80 and later): a block of 4 warps computes a 64 × 64 tile of y,
// each warp 32 × 32 (2 × 4 mma tiles), over k-steps of 32 staged in shared memory (when k is a
// multiple of 8 and both matrices start on 16 bytes — T5's shapes — with 16-byte loads, the next
// k-step fetched into registers while this one multiplies; otherwise element by element). Fragment
// coordinates (PTX ISA, "mma.m16n8k16" for 16-bit floating-point types), g = lane / 4,
// t = lane % 4: A's 4 registers hold (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); B's
// 2 registers hold k = 2t..2t+1 and 2t+8.. of column g; C holds (g, 2t..2t+1) and (g+8, 2t..).
// A pair of consecutive k is one 32-bit word of a row of x or of w, so both fragments are single
// shared-memory words. Launch: block 128, grid (ceil(n / 64), ceil(m / 64)), no dynamic shared
// memory.

#define TC_BM 64
#define TC_BN 64
#define TC_BK 32
// Row stride of the shared tiles in halves: 40 = 20 words, which spreads a fragment load's
// 32 lanes over all 32 banks.
#define TC_LD (TC_BK + 8)

__device__ __forceinline__ unsigned int tile_word(const unsigned short* tile, int row, int col) {
    return *reinterpret_cast<const unsigned int*>(tile + row * TC_LD + col);
}

// One k-step of 32 on the staged tiles: each warp's 2 × 4 mma tiles.
__device__ __forceinline__ void tc_step(const unsigned short* xs, const unsigned short* ws, float (&acc)[2][4][4],
                                        int wm, int wn, int g, int t) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    for (int kk = 0; kk < TC_BK; kk += 16) {
        unsigned int af[2][4], bfr[4][2];
        for (int a = 0; a < 2; ++a) {
            const int r = wm + a * 16 + g;
            af[a][0] = tile_word(xs, r, kk + 2 * t);
            af[a][1] = tile_word(xs, r + 8, kk + 2 * t);
            af[a][2] = tile_word(xs, r, kk + 2 * t + 8);
            af[a][3] = tile_word(xs, r + 8, kk + 2 * t + 8);
        }
        for (int b = 0; b < 4; ++b) {
            const int col = wn + b * 8 + g;
            bfr[b][0] = tile_word(ws, col, kk + 2 * t);
            bfr[b][1] = tile_word(ws, col, kk + 2 * t + 8);
        }
        for (int a = 0; a < 2; ++a)
            for (int b = 0; b < 4; ++b) {
                float* c = acc[a][b];
                asm volatile(
                    "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                    "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                    : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                    : "r"(af[a][0]), "r"(af[a][1]), "r"(af[a][2]), "r"(af[a][3]), "r"(bfr[b][0]),
                      "r"(bfr[b][1]));
            }
    }
#endif
}

// 16-byte chunks of a 64 × 32 slice: 4 per row, 256 per slice, 2 per thread of the block.
#define TC_CHUNKS_PER_THREAD 2

// Reads this thread's chunks of rows [r0, r0 + 64) × columns [k0, k0 + 32) of a row-major
// [rows, k] matrix of 16-bit values (zeros past its edges; k is a multiple of 8, so a chunk is
// inside or outside as a whole).
__device__ __forceinline__ void tc_fetch(const bf16_bits* __restrict__ src, int rows, int k, int r0, int k0,
                                         uint4 (&regs)[TC_CHUNKS_PER_THREAD]) {
    for (int i = 0; i < TC_CHUNKS_PER_THREAD; ++i) {
        const int q = threadIdx.x + i * 128, r = q >> 2, c = (q & 3) * 8;
        const int row = r0 + r, kc = k0 + c;
        regs[i] = (row < rows && kc < k) ? *reinterpret_cast<const uint4*>(src + (size_t)row * k + kc)
                                         : make_uint4(0u, 0u, 0u, 0u);
    }
}

__device__ __forceinline__ void tc_store(unsigned short* tile, const uint4 (&regs)[TC_CHUNKS_PER_THREAD]) {
    for (int i = 0; i < TC_CHUNKS_PER_THREAD; ++i) {
        const int q = threadIdx.x + i * 128, r = q >> 2, c = (q & 3) * 8;
        *reinterpret_cast<uint4*>(tile + r * TC_LD + c) = regs[i];
    }
}

extern "C" __global__ void gemm_bf16_tc(const bf16_bits* __restrict__ x, const bf16_bits* __restrict__ w,
                                        float* __restrict__ y, int m, int n, int k) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    __shared__ __align__(16) unsigned short xs[TC_BM * TC_LD];
    __shared__ __align__(16) unsigned short ws[TC_BN * TC_LD];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int bm = blockIdx.y * TC_BM, bn = blockIdx.x * TC_BN;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    float acc[2][4][4];
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 4; ++b)
            for (int c = 0; c < 4; ++c) acc[a][b][c] = 0.0f;
    if ((k & 7) == 0 && (((size_t)x | (size_t)w) & 15) == 0) {
        // Rows start on 16 bytes: stage with 16-byte loads, and fetch the next k-step into
        // registers while the tensor cores work on this one.
        uint4 rx[TC_CHUNKS_PER_THREAD], rw[TC_CHUNKS_PER_THREAD];
        tc_fetch(x, m, k, bm, 0, rx);
        tc_fetch(w, n, k, bn, 0, rw);
        for (int k0 = 0; k0 < k; k0 += TC_BK) {
            tc_store(xs, rx);
            tc_store(ws, rw);
            __syncthreads();
            if (k0 + TC_BK < k) {
                tc_fetch(x, m, k, bm, k0 + TC_BK, rx);
                tc_fetch(w, n, k, bn, k0 + TC_BK, rw);
            }
            tc_step(xs, ws, acc, wm, wn, g, t);
            __syncthreads();
        }
    } else {
        for (int k0 = 0; k0 < k; k0 += TC_BK) {
            // Stage a 64 × 32 slice of x and of w, zeros past the edges (consecutive threads read
            // consecutive k: coalesced).
            for (int i = tid; i < TC_BM * TC_BK; i += blockDim.x) {
                const int r = i / TC_BK, c = i % TC_BK, kc = k0 + c;
                const int xr = bm + r, wr = bn + r;
                xs[r * TC_LD + c] = (xr < m && kc < k) ? x[(size_t)xr * k + kc] : (unsigned short)0;
                ws[r * TC_LD + c] = (wr < n && kc < k) ? w[(size_t)wr * k + kc] : (unsigned short)0;
            }
            __syncthreads();
            tc_step(xs, ws, acc, wm, wn, g, t);
            __syncthreads();
        }
    }
    for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 4; ++b)
            for (int h = 0; h < 2; ++h) {
                const int row = bm + wm + a * 16 + g + 8 * h;
                const int col = bn + wn + b * 8 + 2 * t;
                if (row < m) {
                    if (col < n) y[(size_t)row * n + col] = acc[a][b][2 * h];
                    if (col + 1 < n) y[(size_t)row * n + col + 1] = acc[a][b][2 * h + 1];
                }
            }
#else
    __trap();  // The launcher never runs this below sm_80.
#endif
}

// out[i] = bf16(x[i]), round to nearest even (NaN stays NaN), as the CPU rounds its activations.
// Launch: one thread per element.
extern "C" __global__ void round_bf16(const float* __restrict__ x, bf16_bits* __restrict__ out, int count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= count) return;
    const unsigned int u = __float_as_uint(x[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        out[i] = (bf16_bits)((u >> 16) | 0x40u);
    } else {
        out[i] = (bf16_bits)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}
