//! What the benchmark binaries share: the criterion settings, the input values and their
//! pseudo-random generator.
//!
//! The values are generated once, before anything is timed, by a small xorshift64* generator
//! with a fixed seed, so every run (and every implementation within a run) sees the same
//! sequence.

#![allow(dead_code)] // each binary uses part of it

use std::sync::LazyLock;
use std::time::Duration;

use criterion::Criterion;

/// Number of precomputed values; a power of two so that the index wraps with a mask.
pub const VALUES: usize = 1 << 12;
/// `i & MASK` indexes [`F64S`] and [`I64S`].
pub const MASK: usize = VALUES - 1;

/// The windows every single-thread benchmark and the memory table run at.
pub const WINDOWS: [usize; 3] = [16, 1024, 1_000_000];

/// The tests' xorshift64* generator, from the workspace's test kit (examples keep their own,
/// so that an example stays one self-contained file for a reader who copies it).
pub use mavg_testkit::XorShift;

/// Latencies in `[0, 1000)` with full 53-bit mantissas (most values use all of them).
pub static F64S: LazyLock<Vec<f64>> = LazyLock::new(|| {
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    (0..VALUES)
        .map(|_| (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 1000.0)
        .collect()
});

/// Integer latencies in `[0, 1_000_000)` (nanoseconds, say).
pub static I64S: LazyLock<Vec<i64>> = LazyLock::new(|| {
    let mut rng = XorShift::new(0xd1b5_4a32_d192_ed03);
    (0..VALUES)
        .map(|_| (rng.next_u64() % 1_000_000) as i64)
        .collect()
});

/// Criterion settings sized so that `cargo bench` (both binaries) takes well under 15 minutes
/// on a 2-core machine. Command-line flags (`--save-baseline`, `--baseline`, a filter, ...)
/// still apply on top.
pub fn config(warm_up: Duration, measure: Duration, samples: usize) -> Criterion {
    Criterion::default()
        .warm_up_time(warm_up)
        .measurement_time(measure)
        .sample_size(samples)
        .nresamples(20_000)
        .configure_from_args()
}
