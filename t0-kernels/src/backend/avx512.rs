//! The AVX-512 implementation (F/BW/VL/DQ; VNNI for int8 when present).

simd_kernels! {
    /// Kernels for AVX-512 CPUs: 16-lane element-wise ops and attention; matmul with a 14 × 32
    /// GEMM tile, row-streaming GEMV, bf16 widened in registers, int8 via VNNI `vpdpbusd` (or
    /// the AVX2 tile without VNNI).
    Avx512Kernels,
    label = "avx512",
    features = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c",
    vec = crate::simd::avx512::F32x16,
    isa = crate::matmul::avx512::Avx512
}
