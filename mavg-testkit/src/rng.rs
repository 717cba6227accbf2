//! The one pseudo-random generator of the tests and benchmarks: xorshift64* (Vigna 2016),
//! deterministic and without a dependency, so that a failure reproduces from its seed.
//! Property tests use proptest's generators instead; this one drives the long fixed-seed runs.

/// The golden-ratio constant: the replacement for a zero seed, and the multiplier
/// [`XorShift::mixed`] spreads a small seed with.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// xorshift64*: 64 bits of state, the xorshift steps, and a multiplication on output.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Starts from `seed` as the state. A zero state would stay zero forever, so a zero seed is
    /// replaced.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 { GOLDEN } else { seed })
    }

    /// Starts from `seed` spread over all 64 bits (times the golden ratio, low bit set), so that
    /// the small consecutive seeds of a loop give unrelated first outputs.
    pub fn mixed(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(GOLDEN) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * crate::float::pow2(-53)
    }

    /// In `[0, n)` (by remainder: the bias is negligible for the small `n` of the tests).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One element of `xs`, which must not be empty.
    pub fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn zero_seed_is_replaced_and_sequences_repeat() {
        let mut zero = XorShift::new(0);
        assert_ne!(zero.next_u64(), 0);
        let (mut a, mut b) = (XorShift::mixed(3), XorShift::mixed(3));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        for _ in 0..1000 {
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            assert!(a.below(7) < 7);
        }
    }
}
