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

pub use error::{StateError, WindowError, MAX_WINDOW};
pub use exact_sum::ExactSum;
pub use mutex::MutexAverage;
pub use ring::RingAverage;
pub use sample::Sample;
pub use sharded::ShardedAverage;
pub use traits::{MovingAverage, SharedMovingAverage};

#[doc = include_str!("../notes/design.md")]
pub mod design {}
