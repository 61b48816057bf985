// cudasim: the device side. The fake NVRTC (cudasim.cpp) prepends this header to a kernel
// source it has rewritten (inline PTX turned into calls below, dynamic shared memory into a
// pointer) and compiles the result with the host's C++ compiler into a shared object. Each CUDA
// thread of a block runs as a fiber on the launching thread; `__syncthreads`, warp shuffles and
// `mma.sync` switch fibers until every thread of the block (or lane of the warp) has arrived, so
// a missing barrier, a barrier in divergent code or a shuffle with exited lanes shows as a
// deadlock or an error instead of a silent race. x86-64 Linux only (the fiber switch is
// assembly). A test tool, not part of the product: see tools/cudasim/README.md.

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace t0sim {

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

// What cudasim.cpp passes to a launch.
struct LaunchDims {
    unsigned grid[3];
    unsigned block[3];
    unsigned dynamic_shared;
    unsigned order;   // 0 forward, 1 reverse, 2 shuffled (seeded by `seed`), 3/4 warp by warp
    unsigned seed;
    char* error;      // 512 bytes for a message
};

enum State { RUNNABLE, WAIT_BLOCK, WAIT_WARP, DONE };

struct Fiber {
    void* sp;
    State state;
    unsigned long long wait_gen;
    int lane, warp;
    dim3 tid;
};

struct Warp {
    unsigned long long gen;
    int arrived, live, size;
    // Values the lanes bring to a warp collective, double-buffered by the collective's parity
    // (a lane can be at most one collective ahead of the slowest).
    unsigned long long slots[2][32][8];
};

constexpr int MAX_THREADS = 1024;
constexpr size_t STACK_BYTES = 32 * 1024;

// One launch at a time per process (cudasim.cpp serialises launches), so plain globals.
static Fiber g_fibers[MAX_THREADS];
static Warp g_warps[MAX_THREADS / 32];
static char* g_stacks = nullptr;
static void* g_sched_sp = nullptr;
static Fiber* g_cur = nullptr;
static int g_live = 0, g_bar_arrived = 0;
static unsigned long long g_bar_gen = 0;
static dim3 g_blockIdx, g_blockDim, g_gridDim;
static char* g_dyn_shared = nullptr;
static const LaunchDims* g_launch = nullptr;
static void (*g_body)(void*) = nullptr;
static void* g_body_arg = nullptr;
static bool g_failed = false;
// The scheduling pass in progress: fibers g_order[g_lo..g_hi) (or, warp by warp, the lanes
// themselves), the one at g_pos running; fibers that block hand over to the next runnable one.
static int g_order[MAX_THREADS];
static unsigned g_lo = 0, g_hi = 0, g_pos = 0;
static int g_slot_mode = 0;  // 0: g_order[o], 1: o, 2: lanes backwards
static int g_remaining = 0;

[[noreturn]] static void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace t0sim

extern "C" {
__attribute__((visibility("hidden"))) void t0sim_switch(void** save_sp, void* to_sp);
__attribute__((visibility("hidden"))) void t0sim_trampoline();
__attribute__((visibility("hidden"), noreturn)) void t0sim_fiber_main(t0sim::Fiber* f);
}

// Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp,
// and resumes the context saved at to_sp. (MXCSR and the x87 control word are shared: kernels
// never change them.)
asm(R"(
    .text
    .p2align 4
    .hidden t0sim_switch
    .type t0sim_switch,@function
t0sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size t0sim_switch, .-t0sim_switch

    .p2align 4
    .hidden t0sim_trampoline
    .type t0sim_trampoline,@function
t0sim_trampoline:
    movq %r12, %rdi
    call t0sim_fiber_main
    ud2
    .size t0sim_trampoline, .-t0sim_trampoline
)");

namespace t0sim {

static void fail(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(g_launch->error, 512, "block (%u,%u,%u) thread (%u,%u,%u): %s", g_blockIdx.x, g_blockIdx.y,
             g_blockIdx.z, g_cur ? g_cur->tid.x : 0, g_cur ? g_cur->tid.y : 0, g_cur ? g_cur->tid.z : 0, msg);
    g_failed = true;
    // Park this fiber for good; the scheduler sees the failure and abandons the launch.
    if (g_cur) {
        g_cur->state = DONE;
        t0sim_switch(&g_cur->sp, g_sched_sp);
    }
    abort();  // not reached from a fiber
}

static bool runnable(const Fiber& f);

// Makes `f` the running fiber, saving the current context at `save`.
static inline void enter(Fiber& f, void** save) {
    g_cur = &f;
    f.state = RUNNABLE;
    t0sim_switch(save, f.sp);
}

static inline unsigned slot(unsigned o) {
    return g_slot_mode == 0 ? (unsigned)g_order[o] : (g_slot_mode == 1 ? o : g_hi - 1 - (o - g_lo));
}

// The current fiber has blocked (or exited): switch straight to the next runnable fiber of the
// pass, or back to the scheduler at the end of it.
static void yield() {
    Fiber* me = g_cur;
    for (unsigned o = g_pos + 1; o < g_hi; ++o) {
        Fiber& f = g_fibers[slot(o)];
        if (&f == me || !runnable(f)) continue;
        g_pos = o;
        enter(f, &me->sp);
        return;  // resumed: whoever switched here set g_cur
    }
    t0sim_switch(&me->sp, g_sched_sp);
}

static inline Warp& my_warp() { return g_warps[g_cur->warp]; }

// __syncthreads: every thread of the block that has not exited.
static void sync_block() {
    const unsigned long long g = g_bar_gen;
    if (++g_bar_arrived == g_live) {
        g_bar_gen++;
        g_bar_arrived = 0;
        return;
    }
    g_cur->state = WAIT_BLOCK;
    g_cur->wait_gen = g;
    yield();
}

// A warp collective: every lane of the warp arrives with up to 8 words in `in`; returns the
// slots of this collective (all lanes' words) once all have. Lanes that exited make it an error
// (their mask bits name threads that are gone).
static unsigned long long (*warp_exchange(const unsigned long long* in, int words))[8] {
    Warp& w = my_warp();
    if (w.live != w.size) fail("warp collective with %d of the warp's %d lanes exited", w.size - w.live, w.size);
    const unsigned long long g = w.gen;
    auto slots = w.slots[g & 1];
    for (int i = 0; i < words; ++i) slots[g_cur->lane][i] = in[i];
    if (++w.arrived == w.size) {
        w.gen++;
        w.arrived = 0;
    } else {
        g_cur->state = WAIT_WARP;
        g_cur->wait_gen = g;
        yield();
    }
    return slots;
}

template <class T>
static T shfl_from(T v, int src) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    unsigned long long word = 0;
    memcpy(&word, &v, sizeof(T));
    auto slots = warp_exchange(&word, 1);
    if (src < 0 || src >= my_warp().size) src = g_cur->lane;
    T out;
    memcpy(&out, &slots[src][0], sizeof(T));
    return out;
}

static inline void check_mask(unsigned mask) {
    const int size = my_warp().size;
    const unsigned full = size == 32 ? 0xffffffffu : ((1u << size) - 1);
    if ((mask & full) != full) fail("warp collective with a partial mask %#x (cudasim models full warps only)", mask);
}

static inline float float_from_bits(unsigned b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline float f16_to_f32(unsigned short h) {
    const unsigned sign = (unsigned)(h & 0x8000) << 16;
    unsigned exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    unsigned bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        // Subnormal half: normalise.
        int e = -1;
        do {
            man <<= 1;
            ++e;
        } while ((man & 0x400) == 0);
        bits = sign | ((unsigned)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    return float_from_bits(bits);
}

static inline float bf16_lo(unsigned w) { return float_from_bits(w << 16); }
static inline float bf16_hi(unsigned w) { return float_from_bits(w & 0xffff0000u); }

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c — fragment layout from the PTX
// ISA ("Matrix Fragments for mma.m16n8k16 with floating point type"): groupID g = lane >> 2,
// t = lane % 4; A element i (of 8, two per register, low half first) sits at row g (+8 for
// i in {2,3,6,7}) and column 2t + (i & 1) (+8 for i >= 4); B element i at row 2t + (i & 1) (+8 for
// i >= 2), column g; C/D element i at row g (+8 for i >= 2), column 2t + (i & 1).
static void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
    unsigned long long in[6];
    for (int i = 0; i < 4; ++i) in[i] = a[i];
    for (int i = 0; i < 2; ++i) in[4 + i] = b[i];
    auto slots = warp_exchange(in, 6);
    if (my_warp().size != 32) fail("mma.sync in a partial warp");
    auto A = [&](int row, int col) {
        const int lane = (row & 7) * 4 + (col & 7) / 2;
        const int reg = (row >= 8 ? 1 : 0) + (col >= 8 ? 2 : 0);
        const unsigned w = (unsigned)slots[lane][reg];
        return (col & 1) ? bf16_hi(w) : bf16_lo(w);
    };
    auto B = [&](int row, int col) {
        const int lane = col * 4 + (row & 7) / 2;
        const unsigned w = (unsigned)slots[lane][4 + (row >= 8 ? 1 : 0)];
        return (row & 1) ? bf16_hi(w) : bf16_lo(w);
    };
    const int g = g_cur->lane >> 2, t = g_cur->lane & 3;
    for (int i = 0; i < 4; ++i) {
        const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
        // Products of bf16 are exact in f32; the tensor core's order of additions is its own.
        double s = c[i];
        for (int kk = 0; kk < 16; ++kk) s += (double)A(row, kk) * (double)B(kk, col);
        d[i] = (float)s;
    }
}

// Runs the whole grid of a launch on the calling thread.
template <class... Args>
struct Kernel {
    void (*fn)(Args...);
    std::tuple<std::decay_t<Args>...> args;
};

template <class K>
static void call_kernel(void* p) {
    K* k = static_cast<K*>(p);
    std::apply(k->fn, k->args);
}

static void init_fiber(int i) {
    // Stack tops staggered by 17 cache lines a fiber, so that they do not all fall in the same
    // cache sets (switching between fibers touches each top in turn).
    char* top = g_stacks + (size_t)(i + 1) * STACK_BYTES - (size_t)(i * 17 % 128) * 64;
    top = (char*)((uintptr_t)top & ~(uintptr_t)15);
    // What t0sim_switch pops: r15 r14 r13 r12 rbx rbp, then the return address; after the
    // `ret`, the stack pointer is 16-byte aligned as a call expects.
    unsigned long long* sp = (unsigned long long*)(top - 64) + 1;
    sp[0] = sp[1] = sp[2] = 0;                       // r15 r14 r13
    sp[3] = (unsigned long long)&g_fibers[i];        // r12: the fiber, for the trampoline
    sp[4] = sp[5] = 0;                               // rbx rbp
    sp[6] = (unsigned long long)&t0sim_trampoline;   // return address
    g_fibers[i].sp = sp;
    g_fibers[i].state = RUNNABLE;
    g_fibers[i].wait_gen = 0;
}

static bool runnable(const Fiber& f) {
    switch (f.state) {
    case RUNNABLE: return true;
    case WAIT_BLOCK: return g_bar_gen > f.wait_gen;
    case WAIT_WARP: return g_warps[f.warp].gen > f.wait_gen;
    default: return false;
    }
}

static int run_grid(const LaunchDims* d, void (*body)(void*), void* arg) {
    g_launch = d;
    g_failed = false;
    d->error[0] = 0;
    const unsigned nthreads = d->block[0] * d->block[1] * d->block[2];
    if (nthreads == 0 || nthreads > (unsigned)MAX_THREADS) {
        snprintf(d->error, 512, "block of %u threads", nthreads);
        return 1;
    }
    if (!g_stacks) {
        g_stacks = (char*)aligned_alloc(64, (size_t)MAX_THREADS * STACK_BYTES);
        if (!g_stacks) {
            snprintf(d->error, 512, "out of memory for fiber stacks");
            return 1;
        }
    }
    static char* dyn = nullptr;
    static size_t dyn_cap = 0;
    if (d->dynamic_shared > dyn_cap) {
        free(dyn);
        dyn_cap = d->dynamic_shared;
        dyn = (char*)aligned_alloc(128, (dyn_cap + 127) & ~(size_t)127);
    }
    g_dyn_shared = dyn;
    g_body = body;
    g_body_arg = arg;
    g_gridDim = {d->grid[0], d->grid[1], d->grid[2]};
    g_blockDim = {d->block[0], d->block[1], d->block[2]};
    unsigned rng = d->seed * 2654435761u + 12345u;
    for (unsigned bz = 0; bz < d->grid[2]; ++bz)
        for (unsigned by = 0; by < d->grid[1]; ++by)
            for (unsigned bx = 0; bx < d->grid[0]; ++bx) {
                g_blockIdx = {bx, by, bz};
                // Shared memory starts as garbage on a device: make reads before writes visible.
                if (d->dynamic_shared) memset(g_dyn_shared, 0xff, d->dynamic_shared);
                const int warps = (int)((nthreads + 31) / 32);
                for (int w = 0; w < warps; ++w) {
                    Warp& wp = g_warps[w];
                    wp.gen = 0;
                    wp.arrived = 0;
                    wp.size = (int)std::min<unsigned>(32, nthreads - 32 * w);
                    wp.live = wp.size;
                }
                for (unsigned i = 0; i < nthreads; ++i) {
                    Fiber& f = g_fibers[i];
                    f.lane = (int)(i & 31);
                    f.warp = (int)(i >> 5);
                    f.tid = {i % d->block[0], (i / d->block[0]) % d->block[1], i / (d->block[0] * d->block[1])};
                    init_fiber((int)i);
                    g_order[i] = (int)i;
                }
                if (d->order == 1) {
                    for (unsigned i = 0; i < nthreads / 2; ++i) std::swap(g_order[i], g_order[nthreads - 1 - i]);
                }
                g_live = (int)nthreads;
                g_bar_arrived = 0;
                g_bar_gen = 0;
                g_remaining = (int)nthreads;
                while (g_remaining > 0) {
                    if (d->order == 2) {
                        for (unsigned i = nthreads - 1; i > 0; --i) {
                            rng = rng * 1103515245u + 12345u;
                            std::swap(g_order[i], g_order[(rng >> 8) % (i + 1)]);
                        }
                    }
                    bool progress = false;
                    // Orders 3 and 4 run one warp as far as it goes before the next (forward or
                    // backward): warps racing ahead, which is what a missing barrier needs.
                    const bool greedy = d->order >= 3;
                    g_slot_mode = greedy ? (d->order == 4 ? 2 : 1) : 0;
                    const unsigned groups = greedy ? (unsigned)warps : 1;
                    for (unsigned gi = 0; gi < groups; ++gi) {
                        const unsigned w = d->order == 4 ? groups - 1 - gi : gi;
                        g_lo = greedy ? 32 * w : 0;
                        g_hi = greedy ? std::min(nthreads, 32 * w + 32) : nthreads;
                        bool again = true;
                        while (again) {
                            again = false;
                            for (g_pos = g_lo; g_pos < g_hi; ++g_pos) {
                                Fiber& f = g_fibers[slot(g_pos)];
                                if (!runnable(f)) continue;
                                enter(f, &g_sched_sp);
                                g_cur = nullptr;
                                if (g_failed) return 1;
                                progress = true;
                                again = greedy;
                            }
                        }
                    }
                    if (!progress) {
                        int at_block = 0, at_warp = 0;
                        for (unsigned i = 0; i < nthreads; ++i) {
                            at_block += g_fibers[i].state == WAIT_BLOCK;
                            at_warp += g_fibers[i].state == WAIT_WARP;
                        }
                        snprintf(d->error, 512,
                                 "block (%u,%u,%u): deadlock: %d threads wait at __syncthreads, %d at a warp "
                                 "collective, %d exited (a barrier in divergent code?)",
                                 bx, by, bz, at_block, at_warp, (int)nthreads - g_remaining);
                        return 1;
                    }
                }
            }
    return 0;
}

template <class... Args, size_t... I>
static int launch_impl(void (*fn)(Args...), const LaunchDims* d, void** params, std::index_sequence<I...>) {
    Kernel<Args...> k{fn, std::tuple<std::decay_t<Args>...>(*static_cast<std::decay_t<Args>*>(params[I])...)};
    return run_grid(d, &call_kernel<Kernel<Args...>>, &k);
}

template <class... Args>
static int launch(void (*fn)(Args...), const LaunchDims* d, void** params) {
    return launch_impl(fn, d, params, std::index_sequence_for<Args...>{});
}

template <class... Args>
static int arg_sizes(void (*)(Args...), unsigned long* sizes, int cap) {
    const unsigned long s[] = {sizeof(std::decay_t<Args>)..., 0};
    const int n = (int)sizeof...(Args);
    for (int i = 0; i < n && i < cap; ++i) sizes[i] = s[i];
    return n;
}

}  // namespace t0sim

extern "C" void t0sim_fiber_main(t0sim::Fiber* f) {
    using namespace t0sim;
    g_body(g_body_arg);
    f->state = DONE;
    --g_remaining;
    --g_live;
    Warp& w = g_warps[f->warp];
    --w.live;
    if (w.arrived > 0) fail("a lane exited while its warp waits at a collective");
    // Threads that exit no longer count at __syncthreads (as on sm_70 and later).
    if (g_bar_arrived > 0 && g_bar_arrived == g_live) {
        g_bar_gen++;
        g_bar_arrived = 0;
    }
    yield();
    abort();
}

// The CUDA C surface the kernels use.
using t0sim::dim3;
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define threadIdx (t0sim::g_cur->tid)
#define blockIdx (t0sim::g_blockIdx)
#define blockDim (t0sim::g_blockDim)
#define gridDim (t0sim::g_gridDim)
#define warpSize 32

static inline void __syncthreads() { t0sim::sync_block(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) {
    t0sim::check_mask(mask);
    unsigned long long z = 0;
    t0sim::warp_exchange(&z, 1);
}
[[noreturn]] static inline void __trap() { t0sim::fail("__trap()"); }

namespace t0sim {
// The shuffles' common part: a full mask, 32-wide, then the value of lane `src` (out of range:
// the lane's own, as __shfl_up/down_sync give).
template <class T>
static inline T shuffle(unsigned mask, T v, int src, int width) {
    check_mask(mask);
    if (width != 32) fail("shuffle width %d (cudasim models 32)", width);
    return shfl_from(v, src);
}
}  // namespace t0sim

template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    return t0sim::shuffle(mask, v, t0sim::g_cur->lane ^ lane_mask, width);
}
template <class T>
static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return t0sim::shuffle(mask, v, t0sim::g_cur->lane + (int)delta, width);
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    return t0sim::shuffle(mask, v, t0sim::g_cur->lane - (int)delta, width);
}
template <class T>
static inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    return t0sim::shuffle(mask, v, src & 31, width);
}

static inline float __int_as_float(int i) { return t0sim::float_from_bits((unsigned)i); }
static inline float __uint_as_float(unsigned i) { return t0sim::float_from_bits(i); }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline unsigned __float_as_uint(float f) { unsigned i; memcpy(&i, &f, 4); return i; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
using std::max;
using std::min;
