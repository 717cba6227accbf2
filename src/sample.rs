//! The public element trait, [`Sample`], and the one place that ties each element type to its
//! accumulators. The accumulators sit on the floors below and know only the element traits of
//! `element.rs`:
//!
//! | type | exact limbs (`limbs.rs`) | running sum | shard summary |
//! | --- | --- | --- | --- |
//! | integers up to 32 bits | `[i64; 1]` | `IntSum` (`running.rs`) | `IntSum` |
//! | `i64`, `u64`, `isize`, `usize` | `[i64; 2]` | `IntSum` | `IntSum` |
//! | `f32` | `[i64; 13]` | `FloatSum<Binary32, 13>` (`float_sum.rs`) | `FixedSummary<Binary32>` (`fixed_summary.rs`) |
//! | `f64` | `[i64; 69]` | `FloatSum<Binary64, 69>` | `FixedSummary<Binary64>` |

use std::fmt::Debug;

use crate::element::{Binary32, Binary64, Element};
use crate::fixed_summary::FixedSummary;
use crate::float_sum::FloatSum;
use crate::limbs::LimbSum;
use crate::running::{IntSum, RunningSum, Summary};

/// Each element type's accumulators. Sealed: the module is private, so only this crate
/// implements it and none of its items is public API.
pub(crate) mod sealed {
    /// An element type's accumulators: the bounds that tie them to the type are on
    /// [`Sample`](super::Sample), whose sum type they share.
    pub trait Accumulators: super::Element {
        /// Its exact limbs: the shards' prefix sums and every exact read.
        type Limbs;
        /// The running sum a single-owner window (and an `ExactSum`) keeps.
        type Running;
        /// What a shard publishes about its recent elements.
        type Summary;
    }
}

use sealed::Accumulators;

/// An element type of a moving average: every primitive integer up to 64 bits, `f32` and
/// `f64`.
///
/// The trait is sealed. Each type brings an exact accumulator (see the crate documentation,
/// *How it works*): integer sums are exact `i128`s, float sums are the exact sum of the window
/// rounded once to `f64`.
///
/// # Examples
///
/// A function generic over the element type:
///
/// ```
/// use mavg::{RingAverage, Sample};
///
/// fn last_sum<T: Sample>(values: &[T], window: usize) -> T::Sum {
///     let mut avg = RingAverage::new(window).unwrap();
///     for &v in values {
///         avg.push(v);
///     }
///     avg.sum()
/// }
///
/// assert_eq!(last_sum(&[i64::MAX, i64::MAX, 1], 2), i64::MAX as i128 + 1);
/// assert_eq!(last_sum(&[1e308, 1e308, -1e308], 3), 1e308);
/// ```
pub trait Sample:
    Element
    + Accumulators<
        Limbs: LimbSum<Self, Sum = Self::Sum>,
        Running: RunningSum<Self, Sum = Self::Sum>,
        Summary: Summary<Self, Sum = Self::Sum>,
    > + PartialEq
    + Debug
{
    /// What [`MovingAverage::sum`](crate::MovingAverage::sum) returns: `i128` for integers
    /// (exact, never overflows), `f64` for floats (the exact sum, correctly rounded).
    type Sum: Copy + PartialEq + Debug + Send + Sync + 'static;
}

macro_rules! sample {
    ($sum:ty, $running:ty, $summary:ty, $limbs:literal => $($t:ty),*) => {$(
        impl Accumulators for $t {
            type Limbs = [i64; $limbs];
            type Running = $running;
            type Summary = $summary;
        }

        impl Sample for $t {
            type Sum = $sum;
        }
    )*};
}

sample!(i128, IntSum, IntSum, 1 => i8, i16, i32, u8, u16, u32);
sample!(i128, IntSum, IntSum, 2 => i64, u64);
#[cfg(target_pointer_width = "64")]
sample!(i128, IntSum, IntSum, 2 => isize, usize);
#[cfg(not(target_pointer_width = "64"))]
sample!(i128, IntSum, IntSum, 1 => isize, usize);
sample!(f64, FloatSum<Binary32, 13>, FixedSummary<Binary32>, 13 => f32);
sample!(f64, FloatSum<Binary64, 69>, FixedSummary<Binary64>, 69 => f64);
