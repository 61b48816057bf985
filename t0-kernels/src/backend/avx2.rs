//! The AVX2 + FMA implementation.

simd_kernels! {
    /// Kernels for AVX2 + FMA CPUs: 8-lane element-wise ops and attention; matmul with a 6 × 16
    /// GEMM tile, row-streaming GEMV, bf16 widened in registers, int8 via `vpmaddubsw`.
    Avx2Kernels,
    label = "avx2",
    features = "avx2,fma,f16c",
    vec = crate::simd::avx2::F32x8,
    isa = crate::matmul::avx2::Avx2
}
