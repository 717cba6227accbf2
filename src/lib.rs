// The README links to the notes by reference; these definitions come first, so they win in the
// crate documentation, where the README's relative paths would not resolve.
#![doc = "[notes/analytics-backend.md]: https://docs.rs/crate/mavg/latest/source/notes/analytics-backend.md\n[notes/benchmarks.md]: https://docs.rs/crate/mavg/latest/source/notes/benchmarks.md\n[notes/datafusion.md]: https://docs.rs/crate/mavg/latest/source/notes/datafusion.md\n[notes/design.md]: crate::design\n[notes/map.md]: https://docs.rs/crate/mavg/latest/source/notes/map.md\n[notes/verification.md]: https://docs.rs/crate/mavg/latest/source/notes/verification.md"]
#![doc = include_str!("../README.md")]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

mod element;
mod error;
mod exact_sum;
mod fixed;
mod fixed_summary;
mod float_sum;
mod group_sums;
mod inherent;
mod limbs;
mod mutex;
mod ring;
mod round;
mod running;
mod sample;
mod sharded;
mod state;
#[cfg(test)]
mod stats;
mod sync;
mod traits;

pub use error::{AllocError, StateError, WindowError, MAX_WINDOW};
pub use exact_sum::ExactSum;
pub use group_sums::GroupSums;
pub use mutex::MutexAverage;
pub use ring::RingAverage;
pub use sample::Sample;
pub use sharded::ShardedAverage;
pub use traits::{MovingAverage, SharedMovingAverage};

#[doc = include_str!("../notes/design.md")]
pub mod design {}
