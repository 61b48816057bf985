//! Run-time CPU feature detection (cached by `std`).

/// AVX-512 F/BW/VL/DQ with FMA and F16C: what the `avx512` kernels require.
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512dq")
            && has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 VNNI (`vpdpbusd`), used by the `avx512` int8 kernels when present.
pub fn has_avx512_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 BF16 (`vdpbf16ps`).
pub fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether bf16 weights should run through AVX-512 BF16's `vdpbf16ps` rather than be widened to
/// f32 for FMAs: true on AMD CPUs with it (Zen 4 retires one 32-multiply-add `vdpbf16ps` per
/// cycle per core, twice its f32 FMA rate: 455 vs 225 GFLOP/s on two cores, `cargo bench -p
/// t0-kernels --bench peak`), false on Intel's (an Emerald Rapids Xeon ran it at half its f32
/// FMA rate: 191 vs 367 GFLOP/s on two cores) and wherever AVX-512 BF16 is missing. Both paths
/// multiply the same bf16-rounded activations; only the order of the f32 sums differs.
pub fn bf16_dot_is_fast() -> bool {
    has_avx512_bf16() && is_amd()
}

/// Whether the CPU's vendor string is AMD's (`AuthenticAMD`, or Hygon's Zen-based
/// `HygonGenuine`).
fn is_amd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // Leaf 0: the vendor string in ebx, edx, ecx.
        let r = std::arch::x86_64::__cpuid(0);
        let mut v = [0u8; 12];
        v[..4].copy_from_slice(&r.ebx.to_le_bytes());
        v[4..8].copy_from_slice(&r.edx.to_le_bytes());
        v[8..].copy_from_slice(&r.ecx.to_le_bytes());
        &v == b"AuthenticAMD" || &v == b"HygonGenuine"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX2 with FMA and F16C: what the `avx2` kernels require.
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A one-line summary of the features the kernels care about, for logs and benches.
pub fn summary() -> String {
    let flags = [
        ("avx2+fma+f16c", has_avx2()),
        ("avx512", has_avx512()),
        ("avx512vnni", has_avx512_vnni()),
        ("avx512bf16", has_avx512_bf16()),
        ("neon", cfg!(target_arch = "aarch64")),
    ];
    let on: Vec<&str> = flags.iter().filter(|f| f.1).map(|f| f.0).collect();
    if on.is_empty() {
        "none".to_string()
    } else {
        on.join(" ")
    }
}
