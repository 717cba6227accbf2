//! The tests' one pseudo-random generator: xorshift64* (Vigna 2016), deterministic and without
//! a dependency, so that a failure reproduces from its seed. Property tests use proptest's
//! generators instead; this one drives the long fixed-seed runs.
//!
//! The benchmarks use this file too (`benches/common/mod.rs` includes it by path).

pub struct XorShift(u64);

impl XorShift {
    /// A zero state would stay zero forever, so a zero seed is replaced.
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
