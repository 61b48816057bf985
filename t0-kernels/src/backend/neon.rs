//! The NEON (AArch64) implementation.

simd_kernels! {
    /// Kernels for AArch64 NEON: 4-lane element-wise ops and attention; matmul with a 6 × 16
    /// GEMM tile, row-streaming GEMV, bf16 widened in registers, int8 via `smull`/`sadalp`.
    NeonKernels,
    label = "neon",
    features = "neon",
    vec = crate::simd::neon::F32x4,
    isa = crate::matmul::neon::Neon
}
