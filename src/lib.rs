#![doc = include_str!("../README.md")]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod estimate;
mod exact;
mod exact_sum;
#[cfg(test)]
mod fast_path_tests;
mod mutex;
mod ring;
mod round;
mod running;
mod sample;
mod sharded;
mod sync;
mod traits;

pub use error::{StateError, WindowError};
#[doc(hidden)]
pub use estimate::Estimate;
#[doc(hidden)]
pub use exact::Span;
pub use exact_sum::ExactSum;
pub use mutex::MutexAverage;
pub use ring::RingAverage;
#[doc(hidden)]
pub use running::{FloatSum, IntSum, RunningSum, Summary};
#[doc(hidden)]
pub use sample::Limbs;
pub use sample::Sample;
pub use sharded::ShardedAverage;
pub use traits::{MovingAverage, SharedMovingAverage};

/// The largest window any implementation accepts: `2^30` elements.
///
/// The exact accumulators add 32-bit digits into 64-bit counters without carrying; this bound
/// keeps every counter's true value below `2^62`, so wrapping arithmetic stays exact (see
/// `notes/design.md`). A window this large already takes 8 GiB for `f64` samples.
pub const MAX_WINDOW: usize = 1 << 30;

#[doc = include_str!("../notes/design.md")]
pub mod design {}
