//! The exact sums an average keeps as elements come and go, as traits over the element type:
//! [`LinearSum`] (what they share), [`RunningSum`] (a window's or an `ExactSum`'s sum) and
//! [`Summary`] (what a shard publishes), with the integer sum, [`IntSum`], that serves as both.
//!
//! Integers keep an `i128`: `2^30` elements below `2^64` in magnitude cannot overflow it, so
//! adding and evicting are one wide addition each, and a mean whose sum is below `2^53` in
//! magnitude is one conversion and one division. Floats keep a fixed-point `i128` for the
//! elements on its grid and exact limbs for the rest (`float_sum.rs`); their shard summary is
//! in `fixed_summary.rs`.

use std::fmt::Debug;

use crate::element::Integer;
use crate::fixed::Reciprocal;
use crate::round::{int_mean, int_mean_any};
use crate::state::{read_int_state, write_int_state};

/// What the running sums and the shard summaries have in common: an exact sum of elements that
/// is linear, so elements go in and out in any order and sums of disjoint sets add.
pub trait LinearSum<T>: Debug + Send + Sync + 'static {
    /// What the sum of `T`s is: `i128` for integers, `f64` for floats.
    type Sum;

    /// Adds an element.
    fn add(&mut self, x: T);

    /// Removes an element that was added before and not removed since: the inverse of
    /// [`add`](Self::add).
    fn remove(&mut self, x: T);

    /// Removes `old`, which was added before and not removed since, and adds `new`.
    #[inline(always)]
    fn replace(&mut self, old: T, new: T) {
        self.remove(old);
        self.add(new);
    }

    /// Adds every element of `other`, a sum of a disjoint set of elements.
    fn merge(&mut self, other: &Self);
}

/// The exact running sum of a window, or of any number of elements (an
/// [`ExactSum`](crate::ExactSum)): one per element type.
pub trait RunningSum<T>: LinearSum<T> + Clone {
    /// The mean of a full window of `r.n()` elements, `nf` being that as an `f64`: as
    /// [`mean`](Self::mean), without a division for floats.
    #[inline(always)]
    fn mean_by(&self, r: &Reciprocal, nf: f64) -> f64 {
        self.mean(r.n(), nf)
    }

    /// The sum of no elements, for at most `elements` at once: a window's size, or
    /// [`FREE`](crate::float_sum::FREE) for sums that are not windows (`window` false).
    fn empty(elements: u64, window: bool) -> Self;

    /// The exact sum, rounded once for floats.
    fn sum(&self) -> Self::Sum;

    /// The correctly rounded mean of the `n >= 1` elements summed; `nf` is `n` as an `f64`
    /// (callers keep it, so that a read converts nothing).
    fn mean(&self, n: u64, nf: f64) -> f64;

    /// Propagates carries between the limbs without changing the value, so that the sum can
    /// take [`MAX_WINDOW`](crate::MAX_WINDOW) more updates.
    fn normalize(&mut self);

    /// The most words [`write_state`](Self::write_state) appends (`state.rs`).
    const MAX_STATE_LEN: usize;

    /// Appends the sum's canonical words: equal sums give equal words.
    fn write_state(&self, out: &mut Vec<i64>);

    /// The sum whose canonical words these are, or `None` if they are not canonical.
    fn read_state(words: &[i64]) -> Option<Self>;

    /// Adds `value` to the free fixed-point sum `fixed` on grid `grid` of one group of a
    /// [`GroupSums`](crate::GroupSums), placing the grid if it is unset; `false`, changing
    /// nothing, if the value does not fit there (off the grid, non-finite, or an `i128`
    /// overflow).
    fn cell_add(value: T, fixed: &mut i128, grid: &mut u32) -> bool;

    /// Adds the sum whose canonical words these are to a group's fixed-point sum, if it fits
    /// there; `false`, changing nothing, otherwise (including words that are not canonical).
    fn cell_merge_state(words: &[i64], fixed: &mut i128, grid: &mut u32) -> bool;

    /// The correctly rounded `fixed * unit(grid) / n` of a group, for any `n >= 1`.
    fn cell_mean(fixed: i128, grid: u32, n: u64) -> f64;

    /// The exact sum of a group, rounded once for floats.
    fn cell_sum(fixed: i128, grid: u32) -> Self::Sum;

    /// Appends the canonical words of a group's fixed-point sum.
    fn cell_state(fixed: i128, grid: u32, out: &mut Vec<i64>);

    /// A free sum holding a group's fixed-point sum, for the groups that leave their cell.
    fn from_cell(fixed: i128, grid: u32) -> Self;

    /// The correctly rounded mean of `n >= 1` elements, for any `n`.
    fn mean_of(&self, n: u64) -> f64;

    /// Whether a window should call [`rebuild`](Self::rebuild) (float windows whose elements
    /// moved off the grid of their fixed-point sum).
    #[inline(always)]
    fn regrid_due(&self) -> bool {
        false
    }

    /// Sums the window's elements, `first` then `second`, again from nothing (floats: on a
    /// grid chosen for them).
    fn rebuild(&mut self, _first: &[T], _second: &[T]) {}
}

/// What a shard of a [`ShardedAverage`](crate::ShardedAverage) publishes about a range of its
/// own elements: their exact sum for integers, a fixed-point sum and a count of the elements off
/// its grid for floats (`fixed.rs`), in three words that readers load under the shard's sequence
/// lock. Every operation is exact and linear, so readers adjust and add summaries freely.
pub trait Summary<T>: LinearSum<T> + Copy {
    /// The summary of no elements.
    const EMPTY: Self;

    /// How many of the three words of [`to_words`](Self::to_words) carry information.
    const WORDS: usize;

    /// The correctly rounded mean of the `n >= 1` elements, if the summary can give it
    /// (floats: none of them is off the grid).
    fn try_mean(&self, n: u64) -> Option<f64>;

    /// The sum, if the summary can give it (exact for integers, correctly rounded for floats).
    fn try_sum(&self) -> Option<Self::Sum>;

    /// As [`try_mean`](Self::try_mean) for `r.n()` elements, dividing by multiplying (floats).
    #[inline(always)]
    fn try_mean_by(&self, r: &Reciprocal) -> Option<f64> {
        self.try_mean(r.n())
    }

    /// The summary of no elements, on this one's grid (floats).
    fn cleared(&self) -> Self {
        Self::EMPTY
    }

    /// Whether [`place_grid`](Self::place_grid) must run before `x` is added.
    #[inline(always)]
    fn wants_grid(&self, _x: T) -> bool {
        false
    }

    /// Places the grid of the average's summaries, kept in `shared` (floats).
    fn place_grid(&mut self, _x: T, _shared: &crate::sync::AtomicU64) {}

    /// The word an average keeps for [`place_grid`](Self::place_grid), for a window of
    /// `window` elements.
    fn grid_word(_window: u64) -> u64 {
        0
    }

    /// The summary as three words, for a shard to publish under its sequence lock.
    fn to_words(&self) -> [u64; 3];

    /// Inverse of [`to_words`](Self::to_words).
    fn from_words(words: [u64; 3]) -> Self;
}

/// The sum of integers, exact in an `i128`: both the running sum of an integer window and the
/// summary a shard publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntSum(pub(crate) i128);

impl<T: Integer> LinearSum<T> for IntSum {
    type Sum = i128;

    #[inline(always)]
    fn add(&mut self, x: T) {
        self.0 += x.widen();
    }
    #[inline(always)]
    fn remove(&mut self, x: T) {
        self.0 -= x.widen();
    }
    #[inline(always)]
    fn replace(&mut self, old: T, new: T) {
        self.0 += new.widen() - old.widen();
    }
    #[inline]
    fn merge(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

impl<T: Integer> RunningSum<T> for IntSum {
    fn empty(_: u64, _: bool) -> Self {
        IntSum(0)
    }
    #[inline]
    fn sum(&self) -> i128 {
        self.0
    }
    #[inline]
    fn mean(&self, n: u64, nf: f64) -> f64 {
        int_mean(self.0, n, nf)
    }
    fn normalize(&mut self) {}
    const MAX_STATE_LEN: usize = 2;
    fn write_state(&self, out: &mut Vec<i64>) {
        write_int_state(self.0, out);
    }
    fn read_state(words: &[i64]) -> Option<Self> {
        read_int_state(words).map(IntSum)
    }
    #[inline(always)]
    fn cell_add(value: T, fixed: &mut i128, _: &mut u32) -> bool {
        // 2^64 additions of 64-bit values cannot overflow an i128.
        *fixed += value.widen();
        true
    }
    fn cell_merge_state(words: &[i64], fixed: &mut i128, _: &mut u32) -> bool {
        match read_int_state(words).and_then(|v| fixed.checked_add(v)) {
            Some(sum) => {
                *fixed = sum;
                true
            }
            None => false,
        }
    }
    fn cell_mean(fixed: i128, _: u32, n: u64) -> f64 {
        int_mean_any(fixed, n)
    }
    fn cell_sum(fixed: i128, _: u32) -> i128 {
        fixed
    }
    fn cell_state(fixed: i128, _: u32, out: &mut Vec<i64>) {
        write_int_state(fixed, out);
    }
    fn from_cell(fixed: i128, _: u32) -> Self {
        IntSum(fixed)
    }
    fn mean_of(&self, n: u64) -> f64 {
        int_mean_any(self.0, n)
    }
}

impl<T: Integer> Summary<T> for IntSum {
    const EMPTY: Self = IntSum(0);
    const WORDS: usize = 2;

    #[inline]
    fn try_mean(&self, n: u64) -> Option<f64> {
        Some(int_mean(self.0, n, n as i64 as f64))
    }
    #[inline]
    fn try_sum(&self) -> Option<i128> {
        Some(self.0)
    }
    #[inline(always)]
    fn to_words(&self) -> [u64; 3] {
        [self.0 as u64, (self.0 >> 64) as u64, 0]
    }
    #[inline(always)]
    fn from_words(w: [u64; 3]) -> Self {
        IntSum(i128::from(w[0]) | (i128::from(w[1] as i64) << 64))
    }
}
