//! CUDA kernels (feature `cuda`) against the scalar reference. Without the NVRTC library the
//! compile test prints why it skips; without a GPU the device test does (unless
//! `T0_REQUIRE_CUDA` is set: then it fails). Neither needs a CUDA toolkit at build time; on a
//! machine without a GPU, `tools/cudasim/run.sh` runs the device test on the CPU.
#![cfg(feature = "cuda")]

use t0_kernels::cuda::{self, CudaAttention, CudaKernels, ENTRY_POINTS, ROW_SUMMARY_MAX_K, SOURCES};
use t0_kernels::logit_edit::{apply_edits, Edit};
use t0_kernels::row_summary::row_summary;
use t0_kernels::{Activation, AttentionArgs, BiasView, Kernels, ScalarKernels, WeightView};

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
    // The tensor-core GEMM is mma.sync from sm_80 on; below, it compiles to a trap (never
    // launched: `has_bf16_tensor_cores` is false there).
    for arch in ["sm_80", "sm_90"] {
        assert!(cuda::compile("gemm", arch).unwrap().contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"));
    }
    let old = cuda::compile("gemm", "sm_75").unwrap_or_else(|e| panic!("{e}"));
    assert!(old.contains(".entry gemm_bf16_tc(") && !old.contains("mma.sync"));
    assert!(cuda::compile("nope", "sm_80").is_err());
    assert!(cuda::compile("norm", "sm_12").is_err());
}

/// Every module's PTX through `ptxas`, the assembler the driver runs on it at load time, when
/// one is found (`T0_PTXAS`, else `ptxas` on the PATH; pip's `nvidia-cuda-nvcc-cu12` ships
/// one): the machine code a GPU would load, for sm_80 and sm_90, with no register spilled in
/// any kernel (a spill puts a hot loop's values in local memory).
#[test]
fn ptxas_assembles_every_module_without_spills() {
    let ptxas = std::env::var("T0_PTXAS").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "ptxas".into());
    if !cuda::nvrtc_available() {
        eprintln!("skipped: the NVRTC library was not found");
        return;
    }
    if std::process::Command::new(&ptxas).arg("--version").output().is_err() {
        eprintln!(
            "skipped: no ptxas (`pip install nvidia-cuda-nvcc-cu12`, then T0_PTXAS=…/nvidia/cuda_nvcc/bin/ptxas)"
        );
        return;
    }
    let dir = std::env::temp_dir().join(format!("t0-ptxas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (module, _) in ENTRY_POINTS {
        for arch in ["sm_80", "sm_90"] {
            let ptx = dir.join(format!("{module}-{arch}.ptx"));
            std::fs::write(&ptx, cuda::compile(module, arch).unwrap_or_else(|e| panic!("{e}"))).unwrap();
            let out = std::process::Command::new(&ptxas)
                .args([&format!("-arch={arch}"), "-v", "-o"])
                .arg(dir.join("out.cubin"))
                .arg(&ptx)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "ptxas {module} for {arch}:\n{log}");
            let spills = log
                .lines()
                .filter(|l| l.contains("spill") && !l.contains(" 0 bytes spill stores, 0 bytes spill loads"));
            assert_eq!(spills.count(), 0, "{module} for {arch} spills registers:\n{log}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
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
        let found = cuda::driver_available();
        assert!(
            std::env::var_os("T0_REQUIRE_CUDA").is_none(),
            "T0_REQUIRE_CUDA is set, but no device (driver library found: {found})"
        );
        eprintln!("skipped: no CUDA device (driver library found: {found})");
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
        gpu.gemv_f32(&dx.as_view(), m, &dw.as_view(), n, k, &mut dy.as_view_mut()).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, abs, &format!("gemv_f32 {m}x{n}x{k}"));

        let wb: Vec<half::bf16> = w.iter().map(|&v| half::bf16::from_f32(v)).collect();
        cpu.matmul(&x, m, &WeightView::bf16(&wb, n, k), &mut want);
        let bits: Vec<u16> = wb.iter().map(|b| b.to_bits()).collect();
        let dwb = gpu.upload(&bits).unwrap();
        gpu.gemv_bf16(&dx.as_view(), m, &dwb.as_view(), n, k, &mut dy.as_view_mut()).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, abs, &format!("gemv_bf16 {m}x{n}x{k}"));

        let wh: Vec<half::f16> = w.iter().map(|&v| half::f16::from_f32(v)).collect();
        cpu.matmul(&x, m, &WeightView::f16(&wh, n, k), &mut want);
        let bits: Vec<u16> = wh.iter().map(|b| b.to_bits()).collect();
        let dwh = gpu.upload(&bits).unwrap();
        gpu.gemv_f16(&dx.as_view(), m, &dwh.as_view(), n, k, &mut dy.as_view_mut()).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, abs, &format!("gemv_f16 {m}x{n}x{k}"));
    }

    // The bf16 tensor-core GEMM (longer inputs) and the activation rounding it takes: against
    // the reference on bf16-rounded activations (each product exact in f32, sums in another
    // order), edges of every tile shape included.
    let round: Vec<f32> = [1.0, 1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -2.5e-40, 3.4e38, f32::INFINITY, f32::NAN]
        .into_iter()
        .chain(vals(1000, 20))
        .collect();
    let mut bits = gpu.zeros_u16(round.len()).unwrap();
    gpu.round_bf16(&gpu.upload(&round).unwrap().as_view(), round.len(), &mut bits.as_view_mut()).unwrap();
    for (got, v) in gpu.download(&bits).unwrap().iter().zip(&round) {
        let want = half::bf16::from_f32(*v);
        assert!(*got == want.to_bits() || (v.is_nan() && half::bf16::from_bits(*got).is_nan()), "round_bf16({v})");
    }
    if gpu.has_bf16_tensor_cores() {
        // k a multiple of 8 with both matrices on 16 bytes takes the 16-byte staging; k = 7, 1023
        // and a matrix that starts 2 bytes in (the last number: leading elements) take the other.
        let shapes = [(9, 33, 7, 0), (64, 64, 64, 0), (65, 130, 1023, 0), (100, 257, 2048, 0), (17, 5, 16, 0)];
        for (m, n, k, skip) in shapes.into_iter().chain([(300, 96, 40, 0), (70, 70, 24, 0), (33, 65, 48, 1)]) {
            let x: Vec<f32> = vals(m * k, 21).iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
            let wb: Vec<half::bf16> = vals(n * k, 22).iter().map(|&v| half::bf16::from_f32(v)).collect();
            let mut want = vec![0.0; m * n];
            cpu.matmul(&x, m, &WeightView::bf16(&wb, n, k), &mut want);
            let xb: Vec<u16> = x.iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
            let wbits: Vec<u16> = wb.iter().map(|b| b.to_bits()).collect();
            let mut dy = gpu.zeros(m * n).unwrap();
            let xb = [vec![0u16; skip], xb].concat();
            let (dx, dw) = (gpu.upload(&xb).unwrap(), gpu.upload(&wbits).unwrap());
            gpu.gemm_bf16(&dx.slice(skip..), m, &dw.as_view(), n, k, &mut dy.as_view_mut()).unwrap();
            let what = format!("gemm_bf16 {m}x{n}x{k} (x {skip} elements in)");
            close(&gpu.download(&dy).unwrap(), &want, 1e-5, 1e-5 * k as f32, &what);
        }
        let mut small = gpu.zeros(4).unwrap();
        let one = gpu.zeros_u16(4).unwrap();
        // 3 × 2 activations in a buffer of 4: an error, not a launch.
        assert!(gpu.gemm_bf16(&one.as_view(), 3, &one.as_view(), 2, 2, &mut small.as_view_mut()).is_err());
    } else {
        eprintln!("gemm_bf16 not checked: {} has no bf16 tensor cores", gpu.arch());
    }

    for (rows, cols) in [(1, 1), (3, 7), (5, 2048), (2, 33)] {
        let (x, wt) = (vals(rows * cols, 3), vals(cols, 4));
        let mut want = vec![0.0; rows * cols];
        for r in 0..rows {
            cpu.rms_norm(&x[r * cols..][..cols], &wt, 1e-6, &mut want[r * cols..][..cols]);
        }
        let (dx, dwt) = (gpu.upload(&x).unwrap(), gpu.upload(&wt).unwrap());
        let mut dy = gpu.zeros(rows * cols).unwrap();
        gpu.rms_norm(&dx.as_view(), &dwt.as_view(), &mut dy.as_view_mut(), rows, cols, 1e-6).unwrap();
        close(&gpu.download(&dy).unwrap(), &want, 1e-5, 1e-6, &format!("rms_norm {rows}x{cols}"));
        // The fused residual add + norm: the same bits as the two launches.
        let r = vals(rows * cols, 9);
        let (mut acc1, mut acc2) = (gpu.upload(&r).unwrap(), gpu.upload(&r).unwrap());
        let (mut y1, mut y2) = (gpu.zeros(rows * cols).unwrap(), gpu.zeros(rows * cols).unwrap());
        gpu.add_inplace(&mut acc1.as_view_mut(), &dx.as_view(), rows * cols).unwrap();
        gpu.rms_norm(&acc1.as_view(), &dwt.as_view(), &mut y1.as_view_mut(), rows, cols, 1e-6).unwrap();
        gpu.add_rms_norm(
            &mut acc2.as_view_mut(),
            &dx.as_view(),
            &dwt.as_view(),
            &mut y2.as_view_mut(),
            rows,
            cols,
            1e-6,
        )
        .unwrap();
        assert_eq!(gpu.download(&acc1).unwrap(), gpu.download(&acc2).unwrap(), "add_rms_norm {rows}x{cols}: residual");
        assert_eq!(gpu.download(&y1).unwrap(), gpu.download(&y2).unwrap(), "add_rms_norm {rows}x{cols}: norm");

        let mut s = x.iter().map(|v| v * 20.0).collect::<Vec<_>>();
        let mut ds = gpu.upload(&s).unwrap();
        gpu.softmax(&mut ds.as_view_mut(), rows, cols).unwrap();
        let arg = gpu.argmax(&gpu.upload(&s).unwrap().as_view(), rows, cols).unwrap();
        for r in 0..rows {
            let row = &s[r * cols..][..cols];
            let best = row.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0;
            assert_eq!(arg[r] as usize, best, "argmax row {r}");
            cpu.softmax(&mut s[r * cols..][..cols]);
        }
        close(&gpu.download(&ds).unwrap(), &s, 2e-6, 1e-7, &format!("softmax {rows}x{cols}"));
    }

    // Row summaries: values on a coarse grid (many ties), a -inf, a NaN, k past the row's end,
    // targets in and out of range.
    for (rows, cols, k) in [(1, 1, 3), (3, 7, 5), (2, 1023, 8), (4, 32128, 9), (2, 300, 256)] {
        let mut x: Vec<f32> = vals(rows * cols, 11).iter().map(|v| (v * 8.0).round() * 0.5).collect();
        if cols > 3 {
            x[1] = f32::NEG_INFINITY;
            x[2] = f32::NAN;
        }
        let targets: Vec<u32> = (0..rows).map(|r| if r == 1 { cols as u32 } else { (r * 5 % cols) as u32 }).collect();
        let got = gpu.row_summaries(&gpu.upload(&x).unwrap().as_view(), rows, cols, k, &targets).unwrap();
        for (r, g) in got.iter().enumerate() {
            let row = &x[r * cols..][..cols];
            let want = row_summary(row, k, Some(targets[r]));
            let what = format!("row_summary {rows}x{cols} k {k} row {r}");
            assert_eq!(g.top, want.top, "{what}: top");
            assert!(g.target == want.target || (g.target.is_nan() && want.target.is_nan()), "{what}: target");
            let (a, b) = (g.log_sum_exp, want.log_sum_exp);
            assert!(
                a == b || (a - b).abs() <= 2e-6 * b.abs().max(1.0) || (a.is_nan() && b.is_nan()),
                "{what}: lse {a} vs {b}"
            );
        }
        let none = gpu.row_summaries(&gpu.upload(&x).unwrap().as_view(), rows, cols, 0, &[]).unwrap();
        assert!(none.iter().all(|s| s.top.is_empty() && s.target.is_nan()));
    }
    assert!(gpu.row_summaries(&gpu.upload(&[0.0f32; 4]).unwrap().as_view(), 1, 4, ROW_SUMMARY_MAX_K + 1, &[]).is_err());

    // The logits processors' edits: penalties on both signs, zeros, -inf and NaN, bans, at
    // scattered indices (1, 7, 33, 1023 edits), bit for bit against the reference; bad edits
    // are refused, not launched.
    for (len, n) in [(1, 1), (40, 7), (300, 33), (32128 * 2, 1023)] {
        let mut x: Vec<f32> = vals(len, 13).iter().map(|v| v * 9.0 - 3.0).collect();
        x[0] = if len > 1 { 0.0 } else { -2.5 };
        if len > 3 {
            (x[1], x[2], x[3]) = (f32::NEG_INFINITY, f32::NAN, -0.0);
        }
        let edits: Vec<(u32, Edit)> = (0..n)
            .map(|j| {
                let i = (j * 7919 % len) as u32;
                (i, if j % 5 == 4 { Edit::Ban } else { Edit::Penalty([1.3, 0.7, 2.0, 1.0][j % 4]) })
            })
            .collect();
        let mut dx = gpu.upload(&x).unwrap();
        gpu.edit_logits(&mut dx.as_view_mut(), &edits).unwrap();
        apply_edits(&mut x, &edits);
        let got = gpu.download(&dx).unwrap();
        if let Some(i) = (0..len).find(|&i| got[i].to_bits() != x[i].to_bits()) {
            panic!("edit_logits {len} values, {n} edits: [{i}] = {} on the device, {} in the reference", got[i], x[i]);
        }
    }
    let mut dx = gpu.upload(&[1.0f32; 4]).unwrap();
    assert!(gpu.edit_logits(&mut dx.as_view_mut(), &[(4, Edit::Ban)]).is_err());
    assert!(gpu.edit_logits(&mut dx.as_view_mut(), &[(1, Edit::Ban), (1, Edit::Ban)]).is_err());
    assert!(gpu.edit_logits(&mut dx.as_view_mut(), &[(1, Edit::Penalty(-1.0))]).is_err());
    assert_eq!(gpu.download(&dx).unwrap(), vec![1.0f32; 4]);

    for act in [Activation::GeluNew, Activation::Relu, Activation::Silu] {
        for (rows, ff) in [(1, 1), (3, 5120), (2, 33)] {
            let gu: Vec<f32> = vals(rows * 2 * ff, 5).iter().map(|v| v * 4.0).collect();
            let mut want = Vec::new();
            for r in 0..rows {
                let mut gate = gu[r * 2 * ff..][..ff].to_vec();
                cpu.gated_activation(act, &mut gate, &gu[r * 2 * ff + ff..][..ff]);
                want.extend(gate);
            }
            let dgu = gpu.upload(&gu).unwrap();
            let mut dout = gpu.zeros(rows * ff).unwrap();
            gpu.gated_act(act, &dgu.as_view(), &mut dout.as_view_mut(), rows, ff).unwrap();
            close(&gpu.download(&dout).unwrap(), &want, 1e-5, 1e-6, &format!("gated {act:?} {rows}x{ff}"));

            let mut plain = gu.clone();
            cpu.activation(act, &mut plain);
            let mut dx = gpu.upload(&gu).unwrap();
            gpu.act_inplace(act, &mut dx.as_view_mut(), gu.len()).unwrap();
            close(&gpu.download(&dx).unwrap(), &plain, 1e-5, 1e-6, &format!("{act:?} {}", gu.len()));
        }
    }

    // (…, batch, keys shared by the batch): several problems per launch, as a decode step's rows
    // (own caches) and the beams of one input (one encoder output) run.
    for (heads, d, q_len, kv_len, q_pos0, causal, batch, shared) in [
        (1, 1, 1, 1, 0, false, 1, false),
        (4, 64, 3, 17, 14, true, 1, false),
        (32, 64, 1, 40, 39, true, 1, false),
        (2, 33, 9, 9, 0, false, 1, false),
        (32, 64, 1, 40, 39, true, 5, false),
        (4, 64, 1, 17, 0, false, 3, true),
        (2, 33, 9, 9, 2, true, 2, false),
    ] {
        let inner = heads * d;
        // Queries inside wider rows (as in `[q | k | v]`), keys in a cache with spare capacity.
        let (q_stride, cap) = (3 * inner, kv_len + 5);
        let (q_bs, kv_bs) = (q_len * q_stride + 7, if shared { 0 } else { heads * cap * d + 3 });
        let q: Vec<f32> = vals(batch * q_bs, 6).iter().map(|v| v * 4.0).collect();
        let kv_total = (batch - 1) * kv_bs + heads * cap * d;
        let (k, v) = (vals(kv_total, 7), vals(kv_total, 8));
        let stride = q_pos0 + q_len + kv_len;
        let table = vals(heads * stride, 9);
        let view = BiasView { values: &table, head_stride: stride, offset: q_pos0 + q_len };
        let mask: Vec<f32> = (0..kv_len).map(|j| if j % 5 == 3 { f32::MIN } else { 0.0 }).collect();
        let mut want = vec![0.0; batch * q_len * inner];
        for (t, want_t) in want.chunks_exact_mut(q_len * inner).enumerate() {
            let args = AttentionArgs {
                q: &q[t * q_bs..],
                k: &k[t * kv_bs..],
                v: &v[t * kv_bs..],
                heads,
                d_kv: d,
                q_len,
                kv_len,
                q_row_stride: q_stride,
                kv_head_stride: cap * d,
                kv_row_stride: d,
                q_pos0,
                causal,
                bias: Some(view),
                mask: Some(&mask),
            };
            cpu.attention(&args, want_t);
        }
        let mut dout = gpu.zeros(batch * q_len * inner).unwrap();
        let (dq, dk, dv) = (gpu.upload(&q).unwrap(), gpu.upload(&k).unwrap(), gpu.upload(&v).unwrap());
        let (db, dm) = (gpu.upload(&table).unwrap(), gpu.upload(&mask).unwrap());
        let (dq, dk, dv, db, dm) = (dq.as_view(), dk.as_view(), dv.as_view(), db.as_view(), dm.as_view());
        let a = CudaAttention {
            q: &dq,
            k: &dk,
            v: &dv,
            heads,
            d,
            q_len,
            kv_len,
            q_pos0,
            causal,
            q_row_stride: q_stride,
            kv_head_stride: cap * d,
            kv_row_stride: d,
            bias: Some((&db, stride, q_pos0 + q_len)),
            mask: Some(&dm),
            q_pos_at: None,
            batch,
            q_batch_stride: q_bs,
            kv_batch_stride: kv_bs,
        };
        gpu.attention(&a, &mut dout.as_view_mut()).unwrap();
        close(
            &gpu.download(&dout).unwrap(),
            &want,
            2e-5,
            2e-5,
            &format!("attention h{heads} d{d} q{q_len} kv{kv_len} batch{batch}"),
        );
        // One problem more than the buffers hold is an error, not a launch.
        let over = CudaAttention { batch: batch + 1, ..a };
        assert!(gpu.attention(&over, &mut gpu.zeros((batch + 1) * q_len * inner).unwrap().as_view_mut()).is_err());
    }

    // Residual add, scale, embedding, the KV-cache append.
    let (x, y) = (vals(1000, 10), vals(1000, 11));
    let mut dx = gpu.upload(&x).unwrap();
    gpu.add_inplace(&mut dx.as_view_mut(), &gpu.upload(&y).unwrap().as_view(), 999).unwrap();
    gpu.scale_inplace(&mut dx.as_view_mut(), 1000, 0.5).unwrap();
    let want: Vec<f32> = (0..1000).map(|i| if i < 999 { (x[i] + y[i]) * 0.5 } else { x[i] * 0.5 }).collect();
    close(&gpu.download(&dx).unwrap(), &want, 0.0, 0.0, "add + scale");
    let table = vals(7 * 33, 12);
    let dtable = gpu.upload(&table).unwrap();
    let mut demb = gpu.zeros(3 * 33).unwrap();
    gpu.embedding(&dtable.as_view(), 33, &[6, 0, 6], &mut demb.as_view_mut()).unwrap();
    let want: Vec<f32> = [6, 0, 6].iter().flat_map(|&r| table[r * 33..(r + 1) * 33].to_vec()).collect();
    close(&gpu.download(&demb).unwrap(), &want, 0.0, 0.0, "embedding");
    assert!(gpu.embedding(&dtable.as_view(), 33, &[7], &mut demb.as_view_mut()).is_err());
    // The same rows from f32-coded ids in device memory; an id past the table writes nothing.
    let mut demb2 = gpu.upload(&vec![9.0f32; 4 * 33]).unwrap();
    let ids = gpu.upload(&[6.0f32, 0.0, 6.0, 7.0]).unwrap();
    gpu.embedding_coded(&dtable.as_view(), 33, &ids.as_view(), 4, &mut demb2.as_view_mut()).unwrap();
    let got = gpu.download(&demb2).unwrap();
    close(&got[..3 * 33], &want, 0.0, 0.0, "embedding from device ids");
    assert!(got[3 * 33..].iter().all(|&v| v == 9.0), "an id past the table writes nothing");
    let (rows, heads, d, cap, pos) = (2, 3, 5, 4, 2);
    let qkv = vals(rows * 3 * heads * d, 13);
    let (mut dk, mut dv) = (gpu.zeros(rows * heads * cap * d).unwrap(), gpu.zeros(rows * heads * cap * d).unwrap());
    let dqkv = gpu.upload(&qkv).unwrap();
    let at = |p: usize| gpu.upload(&[p as f32]).unwrap();
    let (dqv, pos_at) = (dqkv.as_view(), at(pos));
    gpu.kv_append(&dqv, &mut dk.as_view_mut(), &mut dv.as_view_mut(), rows, heads, d, cap, &pos_at.as_view()).unwrap();
    let (gk, gv) = (gpu.download(&dk).unwrap(), gpu.download(&dv).unwrap());
    for r in 0..rows {
        for h in 0..heads {
            for c in 0..d {
                let at = ((r * heads + h) * cap + pos) * d + c;
                let src = r * 3 * heads * d + h * d + c;
                assert_eq!((gk[at], gv[at]), (qkv[src + heads * d], qkv[src + 2 * heads * d]), "kv_append");
            }
        }
    }
    // A position past the cache writes nothing.
    let past = at(cap);
    gpu.kv_append(&dqv, &mut dk.as_view_mut(), &mut dv.as_view_mut(), rows, heads, d, cap, &past.as_view()).unwrap();
    assert_eq!((gpu.download(&dk).unwrap(), gpu.download(&dv).unwrap()), (gk, gv), "kv_append past the cache");

    // Decode attention with the position read on the device (kv_len = the capacity, causality
    // hides the rest) gives the same bits as with the position given (kv_len = position + 1).
    let (rows, heads, d, cap, pos) = (2, 3, 5, 9, 4);
    let inner = heads * d;
    let (q, kc, vc) = (vals(rows * 3 * inner, 14), vals(rows * heads * cap * d, 15), vals(rows * heads * cap * d, 16));
    let bias = vals(heads * cap, 17);
    let (dq, dk, dv, db) =
        (gpu.upload(&q).unwrap(), gpu.upload(&kc).unwrap(), gpu.upload(&vc).unwrap(), gpu.upload(&bias).unwrap());
    let (dq, dk, dv, db, pos_at) = (dq.as_view(), dk.as_view(), dv.as_view(), db.as_view(), at(pos));
    let pos_view = pos_at.as_view();
    let given = CudaAttention {
        q: &dq,
        k: &dk,
        v: &dv,
        heads,
        d,
        q_len: 1,
        kv_len: pos + 1,
        q_pos0: pos,
        causal: true,
        q_row_stride: 3 * inner,
        kv_head_stride: cap * d,
        kv_row_stride: d,
        bias: Some((&db, cap, cap - 1)),
        mask: None,
        q_pos_at: None,
        batch: rows,
        q_batch_stride: 3 * inner,
        kv_batch_stride: heads * cap * d,
    };
    let on_device = CudaAttention { kv_len: cap, q_pos0: 0, q_pos_at: Some(&pos_view), ..given };
    let (mut o1, mut o2) = (gpu.zeros(rows * inner).unwrap(), gpu.zeros(rows * inner).unwrap());
    gpu.attention(&given, &mut o1.as_view_mut()).unwrap();
    gpu.attention(&on_device, &mut o2.as_view_mut()).unwrap();
    assert_eq!(gpu.download(&o1).unwrap(), gpu.download(&o2).unwrap(), "attention, position on the device");
    let not_causal = CudaAttention { causal: false, ..on_device };
    assert!(gpu.attention(&not_causal, &mut o2.as_view_mut()).is_err());

    // Bad sizes are errors, not launches.
    let small = gpu.zeros(4).unwrap();
    let mut out = gpu.zeros(4).unwrap();
    assert!(gpu.gemv_f32(&small.as_view(), 1, &small.as_view(), 4, 8, &mut out.as_view_mut()).is_err());
    assert!(gpu.gemv_f32(&small.as_view(), 9, &small.as_view(), 1, 1, &mut out.as_view_mut()).is_err());
}
