//! CUDA kernels (feature `cuda`) against the scalar reference. Without the NVRTC library the
//! compile test prints why it skips; without a GPU the device test does. Neither needs a CUDA
//! toolkit at build time.
#![cfg(feature = "cuda")]

use t0_kernels::cuda::{self, AttentionShape, CudaKernels, ENTRY_POINTS, SOURCES};
use t0_kernels::{AttentionArgs, BiasView, Kernels, ScalarKernels, WeightView};

#[test]
fn nvrtc_compiles_every_module_for_sm80_and_sm90() {
    if !cuda::nvrtc_available() {
        eprintln!("skipped: the NVRTC library (libnvrtc.so.12) was not found; `pip install nvidia-cuda-nvrtc-cu12` and put its lib/ directory on LD_LIBRARY_PATH");
        return;
    }
    assert_eq!(SOURCES.len(), ENTRY_POINTS.len());
    for (module, entries) in ENTRY_POINTS {
        for arch in ["sm_80", "sm_90"] {
            let ptx = cuda::compile(module, arch).unwrap_or_else(|e| panic!("{e}"));
            for e in *entries {
                assert!(ptx.contains(&format!(".entry {e}(")), "{module} for {arch}: no entry point {e}");
            }
            assert!(ptx.contains(&format!(".target {arch}")), "{module}: not compiled for {arch}");
        }
    }
    assert!(cuda::compile("nope", "sm_80").is_err());
    assert!(cuda::compile("norm", "sm_12").is_err());
}

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn close(got: &[f32], want: &[f32], rel: f32, abs: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= rel * w.abs() + abs, "{what}: element {i} got {g} want {w}");
    }
}

#[test]
fn device_kernels_match_the_reference() {
    if cuda::device_count() == 0 {
        eprintln!("skipped: no CUDA device (driver library found: {})", cuda::driver_available());
        return;
    }
    let gpu = CudaKernels::new(0).unwrap_or_else(|e| panic!("{e}"));
    let cpu = ScalarKernels;

    for (m, n, k) in [(1, 1, 1), (1, 33, 7), (3, 100, 1023), (8, 257, 2048), (2, 64, 5120)] {
        let (x, w) = (vals(m * k, 1), vals(n * k, 2));
        let abs: f32 = 1e-5 * k as f32;
        let mut want = vec![0.0; m * n];
        cpu.matmul(&x, m, &WeightView::f32(&w, n, k), &mut want);
        let (dx, dw) = (gpu.upload(&x).unwrap(), gpu.upload(&w).unwrap());
        let mut dy = gpu.zeros(m * n).unwrap();
        gpu.gemv_f32(&dx, m, &dw, n, k, &mut dy).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, abs, &format!("gemv_f32 {m}x{n}x{k}"));

        let wb: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
        cpu.matmul(&x, m, &WeightView::bf16(&wb, n, k), &mut want);
        let bits: Vec<u16> = wb.iter().map(|b| b.to_bits()).collect();
        let dwb = gpu.upload(&bits).unwrap();
        gpu.gemv_bf16(&dx, m, &dwb, n, k, &mut dy).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, abs, &format!("gemv_bf16 {m}x{n}x{k}"));
    }

    for (rows, cols) in [(1, 1), (3, 7), (5, 2048), (2, 33)] {
        let (x, wt) = (vals(rows * cols, 3), vals(cols, 4));
        let mut want = vec![0.0; rows * cols];
        for r in 0..rows {
            cpu.rms_norm(&x[r * cols..][..cols], &wt, 1e-6, &mut want[r * cols..][..cols]);
        }
        let (dx, dwt) = (gpu.upload(&x).unwrap(), gpu.upload(&wt).unwrap());
        let mut dy = gpu.zeros(rows * cols).unwrap();
        gpu.rms_norm(&dx, &dwt, &mut dy, rows, cols, 1e-6).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, 1e-6, &format!("rms_norm {rows}x{cols}"));

        let mut s = x.iter().map(|v| v * 20.0).collect::<Vec<_>>();
        let mut ds = gpu.upload(&s).unwrap();
        gpu.softmax(&mut ds, rows, cols).unwrap();
        let arg = gpu.argmax(&gpu.upload(&s).unwrap(), rows, cols).unwrap();
        for r in 0..rows {
            let row = &s[r * cols..][..cols];
            let best = row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
            assert_eq!(arg[r] as usize, best, "argmax row {r}");
            cpu.softmax(&mut s[r * cols..][..cols]);
        }
        close(&gpu.download(&ds).unwrap(), &s, 2e-6, 1e-7, &format!("softmax {rows}x{cols}"));
    }

    for (rows, ff) in [(1, 1), (3, 5120), (2, 33)] {
        let gu: Vec<f32> = vals(rows * 2 * ff, 5).iter().map(|v| v * 4.0).collect();
        let mut want = Vec::new();
        for r in 0..rows {
            let mut gate = gu[r * 2 * ff..][..ff].to_vec();
            cpu.gated_activation(t0_kernels::activation::Activation::GeluNew, &mut gate, &gu[r * 2 * ff + ff..][..ff]);
            want.extend(gate);
        }
        let dgu = gpu.upload(&gu).unwrap();
        let mut dout = gpu.zeros(rows * ff).unwrap();
        gpu.gated_gelu(&dgu, &mut dout, rows, ff).unwrap();
        close(&gpu.download(&dout).unwrap(), &want, 1e-5, 1e-6, &format!("gated_gelu {rows}x{ff}"));
    }

    for (heads, d, q_len, kv_len, q_pos0, causal) in
        [(1, 1, 1, 1, 0, false), (4, 64, 3, 17, 14, true), (32, 64, 1, 40, 39, true), (2, 33, 9, 9, 0, false)]
    {
        let inner = heads * d;
        let q: Vec<f32> = vals(q_len * inner, 6).iter().map(|v| v * 4.0).collect();
        let (k, v) = (vals(heads * kv_len * d, 7), vals(heads * kv_len * d, 8));
        // Bias by relative distance, as the CPU kernel reads it, and densely for the GPU.
        let stride = q_pos0 + q_len + kv_len;
        let table = vals(heads * stride, 9);
        let view = BiasView { values: &table, head_stride: stride, offset: q_pos0 + q_len };
        let mut dense = vec![0.0; heads * q_len * kv_len];
        for h in 0..heads {
            for i in 0..q_len {
                for j in 0..kv_len {
                    dense[(h * q_len + i) * kv_len + j] = view.get(h, q_pos0 + i, j);
                }
            }
        }
        let mask: Vec<f32> = (0..kv_len).map(|j| if j % 5 == 3 { f32::MIN } else { 0.0 }).collect();
        let args = AttentionArgs {
            q: &q,
            k: &k,
            v: &v,
            heads,
            d_kv: d,
            q_len,
            kv_len,
            q_row_stride: inner,
            kv_head_stride: kv_len * d,
            kv_row_stride: d,
            q_pos0,
            causal,
            bias: Some(view),
            mask: Some(&mask),
        };
        let mut want = vec![0.0; q_len * inner];
        cpu.attention(&args, &mut want);
        let mut dout = gpu.zeros(q_len * inner).unwrap();
        let (dq, dk, dv) = (gpu.upload(&q).unwrap(), gpu.upload(&k).unwrap(), gpu.upload(&v).unwrap());
        let (db, dm) = (gpu.upload(&dense).unwrap(), gpu.upload(&mask).unwrap());
        let shape = AttentionShape { heads, d, q_len, kv_len, q_pos0, causal };
        gpu.attention(&dq, &dk, &dv, Some(&db), Some(&dm), &mut dout, shape).unwrap();
        close(
            &gpu.download(&dout).unwrap(),
            &want,
            2e-5,
            2e-5,
            &format!("attention h{heads} d{d} q{q_len} kv{kv_len}"),
        );
    }

    // Bad sizes are errors, not launches.
    let small = gpu.zeros(4).unwrap();
    let mut out = gpu.zeros(4).unwrap();
    assert!(gpu.gemv_f32(&small, 1, &small, 4, 8, &mut out).is_err());
    assert!(gpu.gemv_f32(&small, 9, &small, 1, 1, &mut out).is_err());
}
