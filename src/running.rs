//! The exact running sum of a single-owner window, and its reads.
//!
//! Integers keep an `i128`: `2^30` elements below `2^64` in magnitude cannot overflow it, so
//! adding and evicting are one wide addition each, and a mean whose sum is below `2^53` in
//! magnitude is one conversion and one division. Floats keep a fixed-point `i128` for the
//! elements on its grid and exact limbs for the rest (`float_sum.rs`).

use std::fmt::Debug;

use crate::fixed::Reciprocal;
use crate::sample::Sample;

/// The exact running sum of a window: one per [`Sample`] type.
pub trait RunningSum<T: Sample>: Clone + Debug + Send + Sync + 'static {
    /// The mean of a full window of `r.n()` elements, `nf` being that as an `f64`: as
    /// [`mean`](Self::mean), without a division for floats.
    #[inline(always)]
    fn mean_by(&self, r: &Reciprocal, nf: f64) -> f64 {
        self.mean(r.n(), nf)
    }

    /// The sum of no elements, for at most `elements` at once: a window's size, or
    /// [`FREE`](crate::float_sum::FREE) for sums that are not windows (`window` false).
    fn empty(elements: u64, window: bool) -> Self;

    /// Adds an element.
    fn add(&mut self, new: T);

    /// Removes `old`, which was added before and not removed since, and adds `new`.
    fn replace(&mut self, old: T, new: T);

    /// The exact sum, rounded once for floats.
    fn sum(&self) -> T::Sum;

    /// The correctly rounded mean of the `n >= 1` elements summed; `nf` is `n` as an `f64`
    /// (callers keep it, so that a read converts nothing).
    fn mean(&self, n: u64, nf: f64) -> f64;

    /// Removes an element: the inverse of [`add`](Self::add).
    fn remove(&mut self, old: T);

    /// Adds every element of `other`. Both must have room for one more update.
    fn merge(&mut self, other: &Self);

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
    fn cell_sum(fixed: i128, grid: u32) -> T::Sum;

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

/// The running sum of an integer window: exact in an `i128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntSum(pub(crate) i128);

/// What a shard of a [`ShardedAverage`](crate::ShardedAverage) publishes about a range of its
/// own elements: their exact sum for integers, a fixed-point sum and a count of the elements off
/// its grid for floats (`fixed.rs`), in three words that readers load under the shard's sequence
/// lock. Every operation is exact and linear, so readers adjust and add summaries freely.
pub trait Summary<T: Sample>: Copy + Debug + Send + Sync + 'static {
    /// The summary of no elements.
    const EMPTY: Self;

    /// How many of the three words of [`to_words`](Self::to_words) carry information.
    const WORDS: usize;

    /// Adds an element.
    fn add(&mut self, x: T);

    /// Removes an element that was added.
    fn remove(&mut self, x: T);

    /// Removes `old` and adds `new`.
    fn replace(&mut self, old: T, new: T);

    /// Adds the summary of a disjoint set of elements.
    fn merge(&mut self, other: &Self);

    /// The correctly rounded mean of the `n >= 1` elements, if the summary can give it.
    fn mean(&self, n: u64) -> Option<f64>;

    /// The sum, if the summary can give it (exact for integers, correctly rounded for floats).
    fn sum(&self) -> Option<T::Sum>;

    /// As [`mean`](Self::mean) for `r.n()` elements, dividing by multiplying (floats).
    #[inline(always)]
    fn mean_by(&self, r: &Reciprocal) -> Option<f64> {
        self.mean(r.n())
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

    fn to_words(&self) -> [u64; 3];

    fn from_words(words: [u64; 3]) -> Self;
}

/// Counts of the slow paths taken by this thread, for tests that report how often reads left
/// the fixed-point path.
#[cfg(test)]
pub(crate) mod stats {
    use std::cell::Cell;

    std::thread_local! {
        /// Reads that rounded the exact limbs (elements off the grid, or non-finite ones).
        pub(crate) static EXACT: Cell<u64> = const { Cell::new(0) };
        /// Reads that ended in the exact division `div_round`: limb reads with a nonzero finite
        /// sum, and fixed-point reads that fell back (ties, subnormal results).
        pub(crate) static DIVISIONS: Cell<u64> = const { Cell::new(0) };
        /// Windows that chose the grid of their fixed-point sum again.
        pub(crate) static REGRIDS: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count(key: &'static std::thread::LocalKey<Cell<u64>>) {
        key.with(|c| c.set(c.get() + 1));
    }

    /// This thread's `(EXACT, DIVISIONS, REGRIDS)` so far.
    pub(crate) fn snapshot() -> (u64, u64, u64) {
        (
            EXACT.with(Cell::get),
            DIVISIONS.with(Cell::get),
            REGRIDS.with(Cell::get),
        )
    }
}
