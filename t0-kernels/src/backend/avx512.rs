//! The AVX-512 implementation (F/BW/VL/DQ; VNNI for int8 when present).

simd_kernels! {
    /// Kernels for AVX-512 CPUs: 16-lane element-wise ops and attention; matmul with a 14 × 32
    /// GEMM tile, row-streaming GEMV, bf16 as `vdpbf16ps` where that out-runs f32 FMAs (else
    /// widened in registers), int8 via VNNI `vpdpbusd` (or the AVX2 tile without VNNI).
    Avx512Kernels,
    label = "avx512",
    features = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c",
    vec = crate::simd::avx512::F32x16,
    isa = crate::matmul::avx512::Avx512
}

impl Avx512Kernels {
    /// On CPUs with AVX-512 BF16, the kernels with the bf16 path that [`Avx512Kernels::new`]
    /// does not take (named `avx512-bf16dot` or `avx512-bf16widen`); `None` elsewhere. See
    /// [`crate::cpu::bf16_dot_is_fast`].
    pub fn alternative() -> Option<Self> {
        crate::matmul::avx512::Avx512::alternative().map(|isa| Avx512Kernels { isa })
    }
}
