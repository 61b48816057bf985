//! One generic harness (in the spirit of ggml's `test-backend-ops`): every op × every
//! implementation this CPU can run, against the scalar reference, over awkward sizes
//! (1, 3, 7, 33, 1023 and random non-multiples of the vector widths) and unaligned sub-slices.
//!
//! Each op is a [`Case`]: it runs itself on one implementation and says how close two outputs
//! must be. Tolerances (per element, `b` = reference):
//! - matmul f32/bf16/f16 (raw or packed): `|a−b| ≤ 8·ε·√k·Σ_k|x·w| + 1e-30` (summation order);
//! - matmul int8 (packed): bit-identical (integer dot products, same quantisation steps);
//! - softmax: `2e-6·|b| + 1e-7`; log-softmax: `1e-5·max(1, |b|)`;
//! - RMS norm: `1e-5·|b| + 1e-6`;
//! - activations (relu, gelu_new, silu, gated): `1e-5·|b| + 1e-6·max(1, |x|)`;
//! - attention: `(2e-5 + 4ε·max_j Σ_d|q·k_j|)·Σ_j p_j·|v_j| + 2e-6` (the output is a weighted
//!   sum that can cancel, and each score carries its own rounding);
//! - add_assign, scale, embedding: bit-identical.

use proptest::prelude::*;
use t0_kernels::activation::Activation;
use t0_kernels::{available, AttentionArgs, BiasView, Kernels, PackDType, PackedWeight, ScalarKernels, WeightView};

/// One op invocation with its inputs.
trait Case: std::fmt::Debug {
    /// Runs the op on `k`; returns the output.
    fn run(&self, k: &dyn Kernels) -> Vec<f32>;
    /// Largest allowed `|got − want|` at element `i`.
    fn tolerance(&self, want: &[f32], i: usize) -> f32;
}

/// Runs `case` on every available implementation and compares with the scalar reference.
fn check_all(case: &dyn Case) -> Result<(), TestCaseError> {
    let want = case.run(&ScalarKernels);
    for k in available() {
        if k.name() == "scalar" {
            continue;
        }
        let got = case.run(k);
        prop_assert_eq!(got.len(), want.len());
        for i in 0..want.len() {
            let (g, w) = (got[i], want[i]);
            let tol = case.tolerance(&want, i);
            let ok = (g - w).abs() <= tol || (g.is_nan() && w.is_nan()) || g == w;
            prop_assert!(ok, "{}: element {} got {} want {} (tol {}) in {:?}", k.name(), i, g, w, tol, case);
        }
    }
    Ok(())
}

/// Sizes that stress tails: the listed awkward ones and random small ones.
fn size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(3), Just(7), Just(33), Just(1023), 1usize..80]
}

/// `len` values in `[-r, r]`, placed at `offset` inside a longer buffer (unaligned slices).
#[derive(Clone)]
struct Buf {
    data: Vec<f32>,
    offset: usize,
}
impl Buf {
    fn get(&self) -> &[f32] {
        &self.data[self.offset..]
    }
}
impl std::fmt::Debug for Buf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buf(len {}, offset {})", self.data.len() - self.offset, self.offset)
    }
}
fn buf(len: usize, r: f32) -> impl Strategy<Value = Buf> {
    (prop::collection::vec(-r..r, len + 3), 0usize..4).prop_map(move |(mut data, offset)| {
        data.truncate(len + offset);
        Buf { data, offset }
    })
}

// ---------------------------------------------------------------------------------------------
// matmul

#[derive(Clone, Copy, Debug, PartialEq)]
enum WKind {
    F32,
    Bf16,
    F16,
    PackedF32,
    PackedBf16,
    PackedInt8,
}

#[derive(Debug)]
struct MatmulCase {
    m: usize,
    n: usize,
    k: usize,
    x: Buf,
    w: Buf,
    kind: WKind,
    /// Row counts of the weights `w`'s rows are cut into: one part runs `matmul`, several
    /// `matmul_stacked` (whose result must be the matmul against the whole `w`).
    parts: Vec<usize>,
    /// `Σ_k |x·w|` per output, for the tolerance.
    #[allow(dead_code)]
    abs: Vec<f32>,
}

impl MatmulCase {
    fn new(m: usize, n: usize, k: usize, x: Buf, w: Buf, kind: WKind, parts: Vec<usize>) -> Self {
        let (xs, ws) = (x.get(), w.get());
        let mut abs = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k).map(|t| (xs[i * k + t] as f64 * ws[j * k + t] as f64).abs()).sum();
                abs[i * n + j] = s as f32;
            }
        }
        MatmulCase { m, n, k, x, w, kind, parts, abs }
    }
}

impl Case for MatmulCase {
    fn run(&self, kern: &dyn Kernels) -> Vec<f32> {
        let (m, n, k) = (self.m, self.n, self.k);
        let ws = self.w.get();
        let mut out = vec![f32::NAN; m * n];
        let bf: Vec<half::bf16> = ws.iter().map(|&v| half::bf16::from_f32(v)).collect();
        let hf: Vec<half::f16> = ws.iter().map(|&v| half::f16::from_f32(v)).collect();
        let bounds: Vec<(usize, usize)> = self
            .parts
            .iter()
            .scan(0, |r0, &rows| {
                *r0 += rows;
                Some((*r0 - rows, *r0))
            })
            .collect();
        let dtype = match self.kind {
            WKind::PackedF32 => Some(PackDType::F32),
            WKind::PackedBf16 => Some(PackDType::Bf16),
            WKind::PackedInt8 => Some(PackDType::Int8),
            _ => None,
        };
        let packed: Vec<PackedWeight> = match dtype {
            Some(d) => bounds.iter().map(|&(a, b)| PackedWeight::from_f32(&ws[a * k..b * k], b - a, k, d)).collect(),
            None => Vec::new(),
        };
        let views: Vec<WeightView<'_>> = bounds
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| match self.kind {
                WKind::F32 => WeightView::f32(&ws[a * k..b * k], b - a, k),
                WKind::Bf16 => WeightView::bf16(&bf[a * k..b * k], b - a, k),
                WKind::F16 => WeightView::f16(&hf[a * k..b * k], b - a, k),
                _ => packed[i].view(),
            })
            .collect();
        match &views[..] {
            [one] => kern.matmul(self.x.get(), m, one, &mut out),
            _ => kern.matmul_stacked(self.x.get(), m, &views, &mut out),
        }
        out
    }
    fn tolerance(&self, _want: &[f32], i: usize) -> f32 {
        if self.kind == WKind::PackedInt8 {
            0.0
        } else {
            8.0 * f32::EPSILON * (self.k as f32).sqrt() * self.abs[i] + 1e-30
        }
    }
}

fn wkind() -> impl Strategy<Value = WKind> {
    prop_oneof![
        Just(WKind::F32),
        Just(WKind::Bf16),
        Just(WKind::F16),
        Just(WKind::PackedF32),
        Just(WKind::PackedBf16),
        Just(WKind::PackedInt8)
    ]
}

fn matmul_case() -> impl Strategy<Value = MatmulCase> {
    let m = prop_oneof![1usize..=9, Just(14), Just(15), Just(17), Just(29), Just(33)];
    let n = prop_oneof![Just(1usize), Just(3), Just(7), Just(33), Just(64), Just(97), 1usize..70];
    let k = prop_oneof![Just(1usize), Just(3), Just(7), Just(33), Just(300), Just(1023), 1usize..80];
    (m, n, k, wkind()).prop_flat_map(|(m, n, k, kind)| {
        // No cut: one matmul; one to three cuts (anywhere, empty parts included): stacked.
        let cuts = prop::collection::vec(0..=n, 0..4);
        (buf(m * k, 2.0), buf(n * k, 1.0), cuts).prop_map(move |(x, w, mut cuts)| {
            cuts.sort_unstable();
            cuts.push(n);
            let parts = cuts.iter().scan(0, |prev, &c| Some(c - std::mem::replace(prev, c))).collect();
            MatmulCase::new(m, n, k, x, w, kind, parts)
        })
    })
}

// ---------------------------------------------------------------------------------------------
// softmax, log-softmax, RMS norm, activations, element-wise

#[derive(Debug)]
struct SoftmaxCase {
    x: Buf,
    log: bool,
}
impl Case for SoftmaxCase {
    fn run(&self, k: &dyn Kernels) -> Vec<f32> {
        let mut v = self.x.get().to_vec();
        if self.log {
            k.log_softmax(&mut v)
        } else {
            k.softmax(&mut v)
        }
        v
    }
    fn tolerance(&self, want: &[f32], i: usize) -> f32 {
        if self.log {
            1e-5 * want[i].abs().max(1.0)
        } else {
            2e-6 * want[i].abs() + 1e-7
        }
    }
}

#[derive(Debug)]
struct RmsNormCase {
    x: Buf,
    w: Buf,
    eps: f32,
}
impl Case for RmsNormCase {
    fn run(&self, k: &dyn Kernels) -> Vec<f32> {
        let mut out = vec![0.0; self.x.get().len()];
        k.rms_norm(self.x.get(), self.w.get(), self.eps, &mut out);
        out
    }
    fn tolerance(&self, want: &[f32], i: usize) -> f32 {
        1e-5 * want[i].abs() + 1e-6
    }
}

#[derive(Debug)]
struct ActivationCase {
    act: Activation,
    x: Buf,
    up: Option<Buf>,
}
impl Case for ActivationCase {
    fn run(&self, k: &dyn Kernels) -> Vec<f32> {
        let mut v = self.x.get().to_vec();
        match &self.up {
            Some(u) => {
                let n = v.len();
                k.gated_activation(self.act, &mut v, &u.get()[..n])
            }
            None => k.activation(self.act, &mut v),
        }
        v
    }
    fn tolerance(&self, want: &[f32], i: usize) -> f32 {
        let x = self.x.get()[i].abs().max(1.0);
        let u = self.up.as_ref().map_or(1.0, |u| u.get()[i].abs().max(1.0));
        1e-5 * want[i].abs() + 1e-6 * x * u
    }
}

#[derive(Debug)]
struct ElementwiseCase {
    a: Buf,
    b: Buf,
    s: f32,
    add: bool,
}
impl Case for ElementwiseCase {
    fn run(&self, k: &dyn Kernels) -> Vec<f32> {
        let mut v = self.a.get().to_vec();
        if self.add {
            let n = v.len();
            k.add_assign(&mut v, &self.b.get()[..n]);
        } else {
            k.scale(&mut v, self.s);
        }
        v
    }
    fn tolerance(&self, _: &[f32], _: usize) -> f32 {
        0.0
    }
}

#[derive(Debug)]
struct EmbeddingCase {
    table: Buf,
    rows: usize,
    cols: usize,
    ids: Vec<u32>,
    kind: WKind,
}
impl Case for EmbeddingCase {
    fn run(&self, k: &dyn Kernels) -> Vec<f32> {
        let t = self.table.get();
        let mut out = vec![0.0; self.ids.len() * self.cols];
        let bf: Vec<half::bf16> = t.iter().map(|&v| half::bf16::from_f32(v)).collect();
        match self.kind {
            WKind::F32 => k.embedding(&WeightView::f32(t, self.rows, self.cols), &self.ids, &mut out),
            WKind::Bf16 => k.embedding(&WeightView::bf16(&bf, self.rows, self.cols), &self.ids, &mut out),
            _ => {
                let p = PackedWeight::from_f32(t, self.rows, self.cols, PackDType::Int8);
                k.embedding(&p.view(), &self.ids, &mut out)
            }
        }
        out
    }
    fn tolerance(&self, _: &[f32], _: usize) -> f32 {
        0.0
    }
}

// ---------------------------------------------------------------------------------------------
// attention

#[derive(Debug)]
struct AttentionCase {
    heads: usize,
    d: usize,
    q_len: usize,
    kv_len: usize,
    q_pos0: usize,
    causal: bool,
    /// `true`: k/v laid out as a per-head cache; `false`: as a projection's output.
    cache_layout: bool,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    bias: Option<Vec<f32>>,
    mask: Option<Vec<f32>>,
    /// Per output element: the error scale, `(2e-5 + 4ε·max_j Σ_d|q·k_j|)·Σ_j p_j·|v_j|`.
    scale: Vec<f32>,
}
impl AttentionCase {
    fn bias_stride(&self) -> usize {
        self.q_pos0 + self.q_len + self.kv_len
    }

    /// Fills `scale`: the reference run with `|v|` gives `Σ_j p_j·|v_j|` (the probabilities
    /// do not depend on `v`), and the largest `Σ_d|q·k_j|` bounds each score's rounding.
    fn with_scale(mut self) -> Self {
        let v = std::mem::take(&mut self.v);
        self.v = v.iter().map(|x| x.abs()).collect();
        let abs_sum = self.run(&ScalarKernels);
        self.v = v;
        let (inner, d) = (self.heads * self.d, self.d);
        let (head_stride, row_stride) = self.kv_strides();
        self.scale = abs_sum
            .iter()
            .enumerate()
            .map(|(e, &s)| {
                let (i, h) = (e / inner, (e % inner) / d.max(1));
                let q = &self.q[i * inner + h * d..][..d];
                let score_abs = (0..self.kv_len)
                    .map(|j| {
                        let k = &self.k[h * head_stride + j * row_stride..][..d];
                        q.iter().zip(k).map(|(a, b)| (a * b).abs()).sum::<f32>()
                    })
                    .fold(0.0f32, f32::max);
                (2e-5 + 4.0 * f32::EPSILON * score_abs) * s
            })
            .collect();
        self
    }

    /// `(head stride, row stride)` of `k` and `v`.
    fn kv_strides(&self) -> (usize, usize) {
        if self.cache_layout {
            (self.kv_len * self.d, self.d)
        } else {
            (self.d, self.heads * self.d)
        }
    }
}
impl Case for AttentionCase {
    fn run(&self, kern: &dyn Kernels) -> Vec<f32> {
        let inner = self.heads * self.d;
        let (kv_head_stride, kv_row_stride) = self.kv_strides();
        let args = AttentionArgs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            heads: self.heads,
            d_kv: self.d,
            q_len: self.q_len,
            kv_len: self.kv_len,
            q_row_stride: inner,
            kv_head_stride,
            kv_row_stride,
            q_pos0: self.q_pos0,
            causal: self.causal,
            bias: self.bias.as_ref().map(|b| BiasView {
                values: b,
                head_stride: self.bias_stride(),
                offset: self.q_pos0 + self.q_len,
            }),
            mask: self.mask.as_deref(),
        };
        let mut out = vec![f32::NAN; self.q_len * inner];
        kern.attention(&args, &mut out);
        out
    }
    fn tolerance(&self, _want: &[f32], i: usize) -> f32 {
        self.scale[i] + 2e-6
    }
}

fn attention_case() -> impl Strategy<Value = AttentionCase> {
    let dims = (
        1usize..5,
        prop_oneof![Just(1usize), Just(3), Just(7), Just(16), Just(33), Just(64)],
        prop_oneof![Just(1usize), Just(2), Just(3), Just(9), Just(10), Just(11), Just(17)],
        prop_oneof![Just(1usize), Just(3), Just(7), Just(33), 1usize..40],
        0usize..4,
    );
    (dims, any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_flat_map(
        |((heads, d, q_len, kv_len, q_pos0), causal, cache_layout, with_bias, with_mask)| {
            let inner = heads * d;
            let stride = q_pos0 + q_len + kv_len;
            let kv = kv_len * inner;
            (
                prop::collection::vec(-1.0f32..1.0, q_len * inner),
                prop::collection::vec(-1.0f32..1.0, kv),
                prop::collection::vec(-1.0f32..1.0, kv),
                prop::collection::vec(-3.0f32..3.0, heads * stride),
                prop::collection::vec(prop_oneof![3 => Just(0.0f32), 1 => Just(f32::MIN)], kv_len),
            )
                .prop_map(move |(q, k, v, b, mut mask)| {
                    // Keep at least one visible key unmasked so no row is fully masked.
                    mask[0] = 0.0;
                    AttentionCase {
                        heads,
                        d,
                        q_len,
                        kv_len,
                        q_pos0,
                        causal,
                        cache_layout,
                        q: q.iter().map(|x| x * 4.0).collect(),
                        k,
                        v,
                        bias: with_bias.then_some(b),
                        mask: with_mask.then_some(mask),
                        scale: Vec::new(),
                    }
                    .with_scale()
                })
        },
    )
}

fn activation_kind() -> impl Strategy<Value = Activation> {
    prop_oneof![Just(Activation::Relu), Just(Activation::GeluNew), Just(Activation::Silu)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn matmul_matches_reference(case in matmul_case()) {
        check_all(&case)?;
    }

    #[test]
    fn softmax_matches_reference(x in size().prop_flat_map(|n| buf(n, 30.0)), log in any::<bool>()) {
        check_all(&SoftmaxCase { x, log })?;
    }

    #[test]
    fn rms_norm_matches_reference(
        (x, w) in (size(), 1usize..4).prop_flat_map(|(d, rows)| (buf(d * rows, 3.0), buf(d, 2.0))),
        eps in prop_oneof![Just(1e-6f32), Just(1e-5)],
    ) {
        check_all(&RmsNormCase { x, w, eps })?;
    }

    #[test]
    fn activations_match_reference(
        act in activation_kind(),
        (x, up) in size().prop_flat_map(|n| (buf(n, 12.0), buf(n, 3.0))),
        gated in any::<bool>(),
    ) {
        check_all(&ActivationCase { act, x, up: gated.then_some(up) })?;
    }

    #[test]
    fn elementwise_matches_reference(
        (a, b) in size().prop_flat_map(|n| (buf(n, 100.0), buf(n, 100.0))),
        s in -4.0f32..4.0,
        add in any::<bool>(),
    ) {
        check_all(&ElementwiseCase { a, b, s, add })?;
    }

    #[test]
    fn embedding_matches_reference(
        (rows, cols, table, ids) in (1usize..40, size()).prop_flat_map(|(rows, cols)| {
            (Just(rows), Just(cols), buf(rows * cols, 1.0), prop::collection::vec(0..rows as u32, 0..6))
        }),
        kind in prop_oneof![Just(WKind::F32), Just(WKind::Bf16), Just(WKind::PackedInt8)],
    ) {
        check_all(&EmbeddingCase { table, rows, cols, ids, kind })?;
    }

    #[test]
    fn attention_matches_reference(case in attention_case()) {
        check_all(&case)?;
    }
}

/// The GEMM blocking (several k-slices, several tiles, partial panels) at a larger shape than
/// the proptests reach, and decode-sized `m` over enough panels that each task runs several
/// (the int8 tiles then bring the next panel in while they run), as one weight and stacked.
#[test]
fn matmul_large_shapes_match_reference() {
    for (m, n, k) in [(37, 100, 700), (200, 40, 700), (5, 2100, 300), (8, 1100, 129), (2, 700, 1023)] {
        large_shape(m, n, k);
    }
}

fn large_shape(m: usize, n: usize, k: usize) {
    let x: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i * 104729) % 997) as f32 / 498.5 - 1.0).collect();
    for kind in [WKind::F32, WKind::Bf16, WKind::PackedF32, WKind::PackedBf16, WKind::PackedInt8] {
        // As one weight, and as three stacked (one empty) for `matmul_stacked`.
        for parts in [vec![n], vec![n / 3, 0, n - n / 3]] {
            let (x, w) = (Buf { data: x.clone(), offset: 0 }, Buf { data: w.clone(), offset: 0 });
            check_all(&MatmulCase::new(m, n, k, x, w, kind, parts)).unwrap();
        }
    }
}

/// Packed bf16 weights multiply bf16 activations: `1 + 2⁻⁹` rounds to 1 (nearest even) and
/// `1 + 3·2⁻⁹` to `1 + 2⁻⁷`, on every path (decode tiles, GEMM tiles, odd depths) and every
/// instruction set; f32 weights keep the activations as they are.
#[test]
fn packed_bf16_rounds_the_activations_to_bf16() {
    let (lo, hi) = (1.0 + 2f32.powi(-9), 1.0 + 3.0 * 2f32.powi(-9));
    for (m, n, k) in [(1, 3, 1), (2, 40, 7), (9, 33, 300), (33, 70, 513)] {
        let x: Vec<f32> = (0..m * k).map(|i| if i % 3 == 0 { lo } else { hi }).collect();
        let w = vec![1.0f32; n * k];
        // Row sums (exact in f32 in any order: at most 19 significant bits).
        let want = |lo: f32, hi: f32| -> Vec<f32> {
            (0..m)
                .flat_map(|i| vec![(0..k).map(|t| if (i * k + t) % 3 == 0 { lo } else { hi }).sum::<f32>(); n])
                .collect()
        };
        for kern in available() {
            let mut y = vec![0.0; m * n];
            kern.matmul(&x, m, &PackedWeight::from_f32(&w, n, k, PackDType::Bf16).view(), &mut y);
            assert_eq!(y, want(1.0, 1.0 + 2f32.powi(-7)), "bf16 {m}x{n}x{k} {}", kern.name());
            kern.matmul(&x, m, &PackedWeight::from_f32(&w, n, k, PackDType::F32).view(), &mut y);
            assert_eq!(y, want(lo, hi), "f32 {m}x{n}x{k} {}", kern.name());
        }
    }
}

/// Fully masked rows (every key at `f32::MIN`) become uniform, as in PyTorch.
#[test]
fn softmax_fully_masked_row_is_uniform() {
    for k in available() {
        let mut row = vec![f32::MIN; 37];
        k.softmax(&mut row);
        for v in row {
            assert!((v - 1.0 / 37.0).abs() < 1e-7, "{}: {v}", k.name());
        }
    }
}

#[test]
fn stacked_packing_equals_packing_the_concatenation() {
    let (k, ra, rb) = (37, 5, 40);
    let a: Vec<f32> = (0..ra * k).map(|i| ((i * 7919) % 97) as f32 / 13.0 - 3.0).collect();
    let b: Vec<f32> = (0..rb * k).map(|i| ((i * 104729) % 89) as f32 / 11.0 - 4.0).collect();
    let both: Vec<f32> = a.iter().chain(&b).copied().collect();
    let x: Vec<f32> = (0..3 * k).map(|i| (i % 13) as f32 / 5.0 - 1.0).collect();
    for dtype in [PackDType::F32, PackDType::Bf16, PackDType::Int8] {
        let stacked = PackedWeight::from_stacked(&[WeightView::f32(&a, ra, k), WeightView::f32(&b, rb, k)], dtype);
        let whole = PackedWeight::from_f32(&both, ra + rb, k, dtype);
        assert_eq!((stacked.rows(), stacked.cols()), (ra + rb, k));
        assert_eq!(stacked.bytes(), PackedWeight::bytes_for(ra + rb, k, dtype));
        for kern in available() {
            let (mut y1, mut y2) = (vec![0.0; 3 * (ra + rb)], vec![0.0; 3 * (ra + rb)]);
            kern.matmul(&x, 3, &stacked.view(), &mut y1);
            kern.matmul(&x, 3, &whole.view(), &mut y2);
            assert_eq!(y1, y2, "{dtype:?} {}", kern.name());
        }
    }
}

#[test]
fn int8_compensation_read_back_equals_the_packed_one() {
    struct Bytes(Vec<u8>);
    impl t0_kernels::SharedPanels for Bytes {
        fn panel_bytes(&self) -> &[u8] {
            &self.0
        }
    }
    for (rows, cols) in [(1, 1), (7, 33), (33, 7), (70, 1023)] {
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919) % 251) as f32 / 25.0 - 5.0).collect();
        let packed = PackedWeight::from_f32(&w, rows, cols, PackDType::Int8);
        let bytes = std::sync::Arc::new(Bytes(packed.panel_data().to_vec()));
        let back = PackedWeight::from_parts(PackDType::Int8, rows, cols, bytes, packed.scales().to_vec(), Vec::new())
            .expect("valid parts");
        assert_eq!(back.compensation(), packed.compensation(), "[{rows}, {cols}]");
        assert!(packed.compensation().iter().any(|&c| c != 0));
    }
}

/// With AVX-512 BF16 both bf16 GEMM paths are available (so the proptests above cover both):
/// `avx512` takes the one [`t0_kernels::cpu::bf16_dot_is_fast`] picks, the other is listed
/// under its own name.
#[test]
fn both_bf16_gemm_paths_are_listed_where_the_cpu_has_avx512_bf16() {
    use t0_kernels::cpu;
    let names: Vec<&str> = available().iter().map(|k| k.name()).collect();
    let alt: Vec<&&str> = names.iter().filter(|n| n.starts_with("avx512-bf16")).collect();
    if cpu::has_avx512() && cpu::has_avx512_bf16() {
        let other = if cpu::bf16_dot_is_fast() { "avx512-bf16widen" } else { "avx512-bf16dot" };
        assert_eq!(alt, [&other], "{names:?}");
        assert!(names.contains(&"avx512"), "{names:?}");
    } else {
        assert!(alt.is_empty(), "{names:?}");
    }
}
