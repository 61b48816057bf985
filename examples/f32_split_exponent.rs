//! An experiment: can f32 decode read fewer bytes and still be exact?
//!
//! A decode step is memory-bound: it streams every weight once. This example stores f32 weights
//! losslessly in 3.5 bytes instead of 4 and measures whether decoding them costs less than the
//! bytes it saves, on this machine, with two threads streaming from DRAM.
//!
//! The layout (per 32-row panel, per input feature `k`, 112 bytes instead of 128):
//! - the low 16 bits of each weight (64 bytes),
//! - bits 16..24 (32 bytes),
//! - a 4-bit code for the top byte (sign and the exponent's upper seven bits), two per byte
//!   (16 bytes). Each panel has a 16-entry table of top bytes: entry 0 is 0 (the weight +0.0),
//!   entries 1..15 are the panel's fifteen most frequent top bytes. A weight whose top byte is not
//!   in the table is stored as +0.0 and listed, with its exact value, in the panel's escapes;
//!   the kernel patches it in before it multiplies, so the result is bit for bit the one the
//!   plain f32 kernel computes.
//!
//! On AVX2 one k-step decodes with one `vpshufb` (the table), two byte and four word unpacks:
//! eight shuffles for 32 weights. Each layout has two kernels: k in order with four 8-lane
//! accumulators, and the library's decode order (`STREAMS=2`: the two halves of k side by side,
//! added last); each split kernel's sums are checked bit for bit against its plain twin.
//!
//! ```sh
//! cargo run --release --example f32_split_exponent                # 5120 x 2048 (T0_3B's FFN in), M = 1, from DRAM
//! STREAMS=2 cargo run --release --example f32_split_exponent      # the library's two-stream order
//! PF=1 cargo run --release --example f32_split_exponent           # one stream, split kernel prefetching 4 KiB ahead
//! cargo run --release --example f32_split_exponent -- 256 2048 1  # one 256 x 2048 copy: from cache
//! ```
//!
//! Arguments: rows, cols, bytes the plain copies span (default 1 GiB). Twenty rounds alternate
//! the plain kernel, the split kernel and a plain read of DRAM; the first is dropped. What it
//! measured is in docs/kernels.md ("An f32 layout in 3.5 bytes").

fn main() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        x86::run();
        return;
    }
    println!("this experiment needs x86-64 with AVX2 and FMA");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::time::Instant;

    use t0_kernels::F32Buf;

    const PANEL: usize = 32;
    const STEP: usize = 112;

    /// Weights as plain k-major f32 panels (what `PackedWeight` F32 holds).
    struct Plain {
        panels: usize,
        cols: usize,
        data: F32Buf,
    }

    /// The same weights, 3.5 bytes each.
    struct Split {
        panels: usize,
        cols: usize,
        data: F32Buf,
        luts: Vec<[u8; 16]>,
        /// Escapes of panel `p`: `esc[esc_start[p]..esc_start[p + 1]]`, `(k·32 + row, value)`, by k.
        esc_start: Vec<usize>,
        esc: Vec<(u32, f32)>,
    }

    /// Byte offsets of k-step `k`'s three planes inside its panel: the step's 112 bytes are its
    /// low halves, bits 16..24 and the codes, one step after the other. (Four steps as one
    /// 448-byte block of aligned planes ran slower here, in cache and from DRAM.)
    fn offsets(k: usize) -> [usize; 3] {
        let base = k * STEP;
        [base, base + 64, base + 96]
    }

    /// Where row `r` (0..32) of a panel sits in the planes, so that the unpacks give rows in order.
    fn slot(r: usize) -> usize {
        let (g, l) = (r / 8, r % 8);
        if l < 4 {
            4 * g + l
        } else {
            16 + 4 * g + l - 4
        }
    }

    fn pack_plain(w: &[f32], rows: usize, cols: usize) -> Plain {
        let panels = rows.div_ceil(PANEL);
        let mut data = F32Buf::zeroed(panels * cols * PANEL);
        for r in 0..rows {
            let (p, j) = (r / PANEL, r % PANEL);
            for k in 0..cols {
                data[(p * cols + k) * PANEL + j] = w[r * cols + k];
            }
        }
        Plain { panels, cols, data }
    }

    fn pack_split(w: &[f32], rows: usize, cols: usize) -> Split {
        let panels = rows.div_ceil(PANEL);
        // On 2 MiB pages, like the library's packed weights (bytes viewed through an f32 buffer).
        let mut buf = F32Buf::zeroed(panels * cols * STEP / 4);
        // SAFETY: the buffer holds exactly this many bytes, and u8 has no invalid values.
        let data = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), panels * cols * STEP) };
        let (mut luts, mut esc_start, mut esc) = (Vec::new(), vec![0], Vec::new());
        for p in 0..panels {
            let bits = |j: usize, k: usize| {
                let r = p * PANEL + j;
                if r < rows {
                    w[r * cols + k].to_bits()
                } else {
                    0
                }
            };
            let mut count = [0usize; 256];
            for k in 0..cols {
                for j in 0..PANEL {
                    let b = bits(j, k);
                    if b != 0 {
                        count[(b >> 24) as usize] += 1;
                    }
                }
            }
            let mut order: Vec<usize> = (0..256).filter(|&t| count[t] > 0).collect();
            order.sort_by_key(|&t| std::cmp::Reverse(count[t]));
            let mut lut = [0u8; 16];
            let mut code = [0u8; 256];
            for (i, &t) in order.iter().take(15).enumerate() {
                lut[i + 1] = t as u8;
                code[t] = i as u8 + 1;
            }
            luts.push(lut);
            for k in 0..cols {
                let step = &mut data[p * cols * STEP..];
                let [oa, ob, oc] = offsets(k);
                for j in 0..PANEL {
                    let b = bits(j, k);
                    let c = code[(b >> 24) as usize];
                    if b == 0 {
                        continue; // +0.0: all planes zero, code 0
                    }
                    if c == 0 {
                        esc.push(((k * PANEL + j) as u32, f32::from_bits(b)));
                        continue;
                    }
                    let s = slot(j);
                    let (half, within) = (s / 16, s % 16);
                    let a = (within / 8) * 32 + half * 16 + (within % 8) * 2;
                    step[oa + a..oa + a + 2].copy_from_slice(&(b as u16).to_le_bytes());
                    step[ob + s] = (b >> 16) as u8;
                    step[oc + s % 16] |= c << (4 * (s / 16));
                }
            }
            esc_start.push(esc.len());
        }
        Split { panels, cols, data: buf, luts, esc_start, esc }
    }

    /// y[32p..32p+32] for panels `ps`, plain.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_plain(w: &Plain, x: &[f32], ps: std::ops::Range<usize>, y: &mut [f32]) {
        for p in ps {
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut pb = w.data.as_ptr().add(p * w.cols * PANEL);
            for &xk in &x[..w.cols] {
                let xv = _mm256_set1_ps(xk);
                for (g, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(xv, _mm256_loadu_ps(pb.add(8 * g)), *a);
                }
                pb = pb.add(PANEL);
            }
            for (g, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(y.as_mut_ptr().add(p * PANEL + 8 * g), *a);
            }
        }
    }

    /// The 32 weights of one k-step, rows in order.
    #[inline(always)]
    unsafe fn decode_step(panel: *const u8, k: usize, lut: __m256i) -> [__m256; 4] {
        let [oa, ob, oc] = offsets(k);
        decode_at(panel, [oa, ob, oc], lut)
    }

    /// [`decode_step`] from the block at `blk`, step `i` of it (constant offsets once unrolled).
    #[inline(always)]
    unsafe fn decode_at(panel: *const u8, [oa, ob, oc]: [usize; 3], lut: __m256i) -> [__m256; 4] {
        let nib = _mm_set1_epi8(0x0f);
        let a0 = _mm256_loadu_si256(panel.add(oa).cast());
        let a1 = _mm256_loadu_si256(panel.add(oa + 32).cast());
        let b2 = _mm256_loadu_si256(panel.add(ob).cast());
        let c = _mm_loadu_si128(panel.add(oc).cast());
        let codes = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(c, 4), nib), _mm_and_si128(c, nib));
        let top = _mm256_shuffle_epi8(lut, codes);
        let (plo, phi) = (_mm256_unpacklo_epi8(b2, top), _mm256_unpackhi_epi8(b2, top));
        [
            _mm256_castsi256_ps(_mm256_unpacklo_epi16(a0, plo)),
            _mm256_castsi256_ps(_mm256_unpackhi_epi16(a0, plo)),
            _mm256_castsi256_ps(_mm256_unpacklo_epi16(a1, phi)),
            _mm256_castsi256_ps(_mm256_unpackhi_epi16(a1, phi)),
        ]
    }

    /// A panel's escapes from index `e` on, as they come up in k order.
    struct Escapes<'a> {
        esc: &'a [(u32, f32)],
        e: usize,
        next: usize,
    }

    impl<'a> Escapes<'a> {
        fn new(esc: &'a [(u32, f32)], e: usize) -> Self {
            Self { esc, e, next: esc.get(e).map_or(usize::MAX, |v| v.0 as usize / PANEL) }
        }

        /// Puts the exact values of k-step `k`'s escapes into `v` (call when `k == self.next`).
        #[cold]
        #[inline(never)]
        unsafe fn patch(&mut self, k: usize, v: &mut [__m256; 4]) {
            let mut rows = [0.0f32; PANEL];
            for (g, vg) in v.iter().enumerate() {
                _mm256_storeu_ps(rows.as_mut_ptr().add(8 * g), *vg);
            }
            while self.e < self.esc.len() && self.esc[self.e].0 as usize / PANEL == k {
                rows[self.esc[self.e].0 as usize % PANEL] = self.esc[self.e].1;
                self.e += 1;
            }
            self.next = self.esc.get(self.e).map_or(usize::MAX, |v| v.0 as usize / PANEL);
            for (g, vg) in v.iter_mut().enumerate() {
                *vg = _mm256_loadu_ps(rows.as_ptr().add(8 * g));
            }
        }
    }

    /// y[32p..32p+32] for panels `ps`, from the split layout.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_split<const PF: usize>(w: &Split, x: &[f32], ps: std::ops::Range<usize>, y: &mut [f32]) {
        for p in ps {
            let lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(w.luts[p].as_ptr().cast()));
            let mut esc = Escapes::new(&w.esc[w.esc_start[p]..w.esc_start[p + 1]], 0);
            let mut acc = [_mm256_setzero_ps(); 4];
            let pb = w.data.as_ptr().cast::<u8>().add(p * w.cols * STEP);
            for (k, &xk) in x[..w.cols].iter().enumerate() {
                if PF > 0 {
                    _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PF + k * STEP).cast());
                    _mm_prefetch::<_MM_HINT_T0>(pb.wrapping_add(PF + k * STEP + 64).cast());
                }
                let mut v = decode_step(pb, k, lut);
                if k == esc.next {
                    esc.patch(k, &mut v);
                }
                let xv = _mm256_set1_ps(xk);
                for (a, vg) in acc.iter_mut().zip(v) {
                    *a = _mm256_fmadd_ps(xv, vg, *a);
                }
            }
            for (g, a) in acc.iter().enumerate() {
                _mm256_storeu_ps(y.as_mut_ptr().add(p * PANEL + 8 * g), *a);
            }
        }
    }

    /// The library's decode order (`tile_f32_2s_1`): the two halves of k as two streams side by
    /// side, their sums added last.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_plain2(w: &Plain, x: &[f32], ps: std::ops::Range<usize>, y: &mut [f32]) {
        let kh = w.cols / 2;
        for p in ps {
            let (mut lo, mut hi) = ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
            let b = w.data.as_ptr().add(p * w.cols * PANEL);
            for k in 0..kh {
                let (x0, x1) = (_mm256_set1_ps(x[k]), _mm256_set1_ps(x[kh + k]));
                let (b0, b1) = (b.add(k * PANEL), b.add((kh + k) * PANEL));
                for g in 0..4 {
                    lo[g] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0.add(8 * g)), lo[g]);
                    hi[g] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b1.add(8 * g)), hi[g]);
                }
            }
            if w.cols > 2 * kh {
                let x1 = _mm256_set1_ps(x[w.cols - 1]);
                let b1 = b.add((w.cols - 1) * PANEL);
                for (g, h) in hi.iter_mut().enumerate() {
                    *h = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b1.add(8 * g)), *h);
                }
            }
            for g in 0..4 {
                _mm256_storeu_ps(y.as_mut_ptr().add(p * PANEL + 8 * g), _mm256_add_ps(lo[g], hi[g]));
            }
        }
    }

    /// [`gemv_plain2`]'s order from the split layout.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemv_split2(w: &Split, x: &[f32], ps: std::ops::Range<usize>, y: &mut [f32]) {
        let kh = w.cols / 2;
        for p in ps {
            let lut = _mm256_broadcastsi128_si256(_mm_loadu_si128(w.luts[p].as_ptr().cast()));
            let list = &w.esc[w.esc_start[p]..w.esc_start[p + 1]];
            let mid = list.partition_point(|v| (v.0 as usize / PANEL) < kh);
            let (mut e0, mut e1) = (Escapes::new(list, 0), Escapes::new(list, mid));
            if mid == 0 {
                e0.next = usize::MAX;
            }
            let (mut lo, mut hi) = ([_mm256_setzero_ps(); 4], [_mm256_setzero_ps(); 4]);
            let b = w.data.as_ptr().cast::<u8>().add(p * w.cols * STEP);
            for k in 0..kh {
                let (x0, x1) = (_mm256_set1_ps(x[k]), _mm256_set1_ps(x[kh + k]));
                let mut v0 = decode_step(b, k, lut);
                let mut v1 = decode_step(b, kh + k, lut);
                if k == e0.next {
                    e0.patch(k, &mut v0);
                    if e0.e >= mid {
                        e0.next = usize::MAX;
                    }
                }
                if kh + k == e1.next {
                    e1.patch(kh + k, &mut v1);
                }
                for g in 0..4 {
                    lo[g] = _mm256_fmadd_ps(x0, v0[g], lo[g]);
                    hi[g] = _mm256_fmadd_ps(x1, v1[g], hi[g]);
                }
            }
            if w.cols > 2 * kh {
                let k = w.cols - 1;
                let mut v1 = decode_step(b, k, lut);
                if k == e1.next {
                    e1.patch(k, &mut v1);
                }
                let x1 = _mm256_set1_ps(x[k]);
                for (h, vg) in hi.iter_mut().zip(v1) {
                    *h = _mm256_fmadd_ps(x1, vg, *h);
                }
            }
            for g in 0..4 {
                _mm256_storeu_ps(y.as_mut_ptr().add(p * PANEL + 8 * g), _mm256_add_ps(lo[g], hi[g]));
            }
        }
    }

    /// Runs `f(copy, panels, y)` on two threads, each over its half of the panels of every copy.
    fn two_threads<W: Sync>(
        ws: &[W],
        reps: usize,
        panels: usize,
        x: &[f32],
        f: unsafe fn(&W, &[f32], std::ops::Range<usize>, &mut [f32]),
    ) {
        let half = panels / 2;
        std::thread::scope(|s| {
            for t in 0..2 {
                let ps = if t == 0 { 0..half } else { half..panels };
                s.spawn(move || {
                    let mut y = vec![0.0f32; panels * PANEL];
                    for _ in 0..reps {
                        for w in ws {
                            // SAFETY: AVX2 and FMA were detected in main.
                            unsafe { f(w, x, ps.clone(), &mut y) };
                        }
                    }
                    std::hint::black_box(&y);
                });
            }
        });
    }

    /// Gaussian weights (Box-Muller over a xorshift), T5-init-like scale.
    fn gaussian(n: usize, std: f32, seed: u64) -> Vec<f32> {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (next(), next());
                ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32 * std
            })
            .collect()
    }

    pub fn run() {
        let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
        let (n, k) = (args.first().copied().unwrap_or(5120), args.get(1).copied().unwrap_or(2048));
        // Total bytes the copies span: 1 GiB (from DRAM) unless given (e.g. 4 MiB: from cache).
        let span = args.get(2).copied().unwrap_or(1 << 30);
        if n == 0 || k == 0 || span == 0 {
            eprintln!("rows, cols and span must be positive");
            std::process::exit(2);
        }
        let w = gaussian(n * k, 0.02, 0x9e3779b97f4a7c15);
        let x = gaussian(k, 1.0, 7);
        let plain = pack_plain(&w, n, k);
        let split = pack_split(&w, n, k);
        let (pb, sb) = (plain.data.len() * 4, split.data.len() * 4 + split.esc.len() * 8 + split.luts.len() * 16);
        println!(
            "weight {n} x {k}: plain {:.1} MB, split {:.1} MB ({:.3} bytes/weight), {} escapes ({:.1e} of the weights)",
            pb as f64 / 1e6,
            sb as f64 / 1e6,
            sb as f64 / (n * k) as f64,
            split.esc.len(),
            split.esc.len() as f64 / (n * k) as f64
        );
        // Bit for bit: both kernels, all panels, one thread.
        let (mut y0, mut y1) = (vec![0.0f32; plain.panels * PANEL], vec![0.0f32; plain.panels * PANEL]);
        // SAFETY: AVX2 and FMA were detected in main.
        unsafe {
            gemv_plain(&plain, &x, 0..plain.panels, &mut y0);
            gemv_split::<0>(&split, &x, 0..split.panels, &mut y1);
        }
        let same = y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits());
        println!("split == plain bit for bit (one stream): {same}");
        assert!(same, "the split kernel must reproduce the plain one exactly");
        // SAFETY: as above.
        unsafe {
            gemv_plain2(&plain, &x, 0..plain.panels, &mut y0);
            gemv_split2(&split, &x, 0..split.panels, &mut y1);
        }
        let same = y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits());
        println!("split == plain bit for bit (two streams): {same}");
        assert!(same, "the split kernel must reproduce the plain one exactly");

        let copies_p = span.div_ceil(pb);
        let reps = ((1usize << 30) / (copies_p * pb)).max(1);
        let ps: Vec<Plain> = (0..copies_p).map(|_| pack_plain(&w, n, k)).collect();
        let ss: Vec<Split> = (0..copies_p).map(|_| pack_split(&w, n, k)).collect();
        let pf: usize = std::env::var("PF").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let two = std::env::var("STREAMS").is_ok_and(|v| v == "2");
        let plain_fn: unsafe fn(&Plain, &[f32], std::ops::Range<usize>, &mut [f32]) =
            if two { gemv_plain2 } else { gemv_plain };
        let split_fn: unsafe fn(&Split, &[f32], std::ops::Range<usize>, &mut [f32]) = match pf {
            _ if two => gemv_split2,
            0 => gemv_split::<0>,
            _ => gemv_split::<4096>,
        };
        let read_buf = t0_kernels::F32Buf::zeroed((1usize << 30) / 4);
        let (mut rp, mut rs, mut rr) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..20 {
            let t = Instant::now();
            two_threads(&ps, reps, plain.panels, &x, plain_fn);
            let tp = t.elapsed().as_secs_f64();
            let t = Instant::now();
            two_threads(&ss, reps, split.panels, &x, split_fn);
            let ts = t.elapsed().as_secs_f64();
            let gbs = t0_kernels::roofline::read_bandwidth_gbs(&read_buf, 1);
            if round > 0 {
                rr.push(gbs);
                rp.push((reps * copies_p * n * k) as f64 / tp / 1e9);
                rs.push((reps * copies_p * n * k) as f64 / ts / 1e9);
            }
        }
        rp.sort_by(f64::total_cmp);
        rs.sort_by(f64::total_cmp);
        rr.sort_by(f64::total_cmp);
        let med = |r: &[f64]| r[r.len() / 2];
        println!(
            "plain read of DRAM, same rounds: median {:.1} GB/s, range {:.1}-{:.1}",
            med(&rr),
            rr[0],
            rr[rr.len() - 1]
        );
        println!(
            "plain: median {:.2} G weights/s ({:.1} GB/s read), range {:.2}-{:.2}",
            med(&rp),
            med(&rp) * 4.0,
            rp[0],
            rp[rp.len() - 1]
        );
        println!(
            "split: median {:.2} G weights/s ({:.1} GB/s read), range {:.2}-{:.2}",
            med(&rs),
            med(&rs) * sb as f64 / (n * k) as f64,
            rs[0],
            rs[rs.len() - 1]
        );
        println!("split / plain weights per second: {:.3}", med(&rs) / med(&rp));
    }
}
