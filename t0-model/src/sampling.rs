//! The sampler's random numbers: xoshiro256** seeded through SplitMix64. Written here (a few
//! lines) so that a seed gives the same samples in every version of t0-rs and on every platform.

/// A small, fast, reproducible generator (xoshiro256**, Blackman & Vigna).
///
/// ```
/// use t0_model::sampling::Rng;
/// let (mut a, mut b) = (Rng::new(7), Rng::new(7));
/// assert_eq!(a.next_f32(), b.next_f32());
/// ```
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is SplitMix64 applied to `seed`.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Draw an index from the distribution `softmax(scores)` (−∞ scores are never drawn).
    pub fn sample(&mut self, scores: &[f32]) -> usize {
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let total: f64 = scores.iter().map(|&s| ((s - max) as f64).exp()).sum();
        let target = self.next_f32() as f64 * total;
        let mut acc = 0.0f64;
        let mut last = 0;
        for (i, &s) in scores.iter().enumerate() {
            if s == f32::NEG_INFINITY {
                continue;
            }
            acc += ((s - max) as f64).exp();
            last = i;
            if acc > target {
                return i;
            }
        }
        last
    }
}
