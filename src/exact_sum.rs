//! [`ExactSum`]: the crate's exact accumulator on its own, without a window.

use std::fmt;

use crate::error::StateError;
use crate::float_sum::FREE;
use crate::running::{LinearSum, RunningSum};
use crate::sample::Sample;

/// How many updates a sum takes between two carry propagations. Each update moves a limb by
/// less than `2^32`, so limbs whose carries were propagated stay below `2^62` in magnitude
/// for this many updates (see `notes/design.md`, *Exact sums*). Small in unit tests, so that
/// they cross it.
const UPDATES_BETWEEN_CARRIES: u32 = if cfg!(test) { 1 << 6 } else { 1 << 30 };

/// An exact sum of values that can be added and removed in any order: the accumulator behind
/// every moving average of the crate, for callers that keep their own windows, groups or
/// partitions (a query engine's sliding frames and partial aggregates, for example).
///
/// * **Exact.** [`sum`](Self::sum) is the exact `i128` sum for integers and the exact sum
///   rounded once to `f64` for floats; [`mean`](Self::mean) divides the exact sum and rounds
///   once. Neither depends on the order of the updates or on values that were removed: adding
///   `2^54`, then `1`, then removing `2^54` leaves exactly `1`.
/// * **O(1) updates.** [`add`](Self::add) and [`remove`](Self::remove) are a few integer
///   additions (for an `f64` usually a shift and one 128-bit addition, on the sum's grid);
///   reads round that fixed-point sum once, or the exact digits when values off the grid
///   were summed.
/// * **Mergeable.** [`merge`](Self::merge) adds another sum, and the canonical state words
///   ([`write_state`](Self::write_state), [`from_state`](Self::from_state)) let partial sums
///   computed elsewhere be combined exactly: any partition of the same values gives the same
///   sum, bit for bit.
/// * **Non-finite floats** follow the crate's contract: while the values summed include a
///   NaN, or both infinities, the sum and mean are NaN; while they include infinities of one
///   sign only, that infinity. Removing the last of them makes the results exact again.
///
/// `remove` is meant to undo an `add`. Removing a value that was never added is allowed and
/// exact too: the sum is then that of a signed collection of values.
///
/// # Limits
///
/// Integer sums are held in an `i128`, which cannot overflow before `2^64` updates of the
/// largest 64-bit values. A float sum stays exact while the sum of the magnitudes of the values
/// in it stays below `2^1060`, far beyond `f64::MAX` (about `2^1024`); past that it may wrap.
///
/// # Examples
///
/// ```
/// use mavg::ExactSum;
///
/// let mut s = ExactSum::new();
/// s.add(2f64.powi(54));
/// s.add(1.0);
/// s.remove(2f64.powi(54)); // a float running sum would be left with 0
/// assert_eq!(s.sum(), 1.0);
///
/// // Partial sums merge exactly, here through their serialized state.
/// let mut words = Vec::new();
/// let mut part = ExactSum::new();
/// part.add(0.1);
/// part.write_state(&mut words);
/// s.merge(&ExactSum::from_state(&words).unwrap());
/// assert_eq!(s.sum(), 1.1);
/// assert_eq!(s.mean(2), Some(0.55));
/// ```
#[derive(Clone)]
pub struct ExactSum<T: Sample> {
    sum: T::Running,
    /// Updates since the carries were last propagated.
    updates: u32,
}

impl<T: Sample> ExactSum<T> {
    /// The most `i64` words the serialized state of a sum of `T` takes: 2 for integers, 10
    /// for `f32`, 38 for `f64`. Most states are far shorter (see
    /// [`write_state`](Self::write_state)).
    pub const MAX_STATE_LEN: usize = <T::Running as RunningSum<T>>::MAX_STATE_LEN;

    /// The empty sum.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let s = ExactSum::<u64>::new();
    /// assert_eq!(s.sum(), 0);
    /// assert_eq!(s.mean(1), Some(0.0));
    /// ```
    #[must_use]
    pub fn new() -> Self {
        ExactSum {
            sum: T::Running::empty(FREE, false),
            updates: 0,
        }
    }

    /// Adds a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let mut s = ExactSum::new();
    /// for x in [1e100, 1.0, -1e100] {
    ///     s.add(x);
    /// }
    /// assert_eq!(s.sum(), 1.0);
    /// ```
    #[inline]
    pub fn add(&mut self, value: T) {
        self.count_update();
        self.sum.add(value);
    }

    /// Removes a value: the inverse of [`add`](Self::add). Removing a value that was never
    /// added subtracts it all the same: the sum is of values added less values removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let mut s = ExactSum::new();
    /// s.add(0.1);
    /// s.add(0.2);
    /// s.remove(0.1);
    /// assert_eq!(s.sum(), 0.2);
    /// ```
    #[inline]
    pub fn remove(&mut self, value: T) {
        self.count_update();
        self.sum.remove(value);
    }

    /// Adds every value summed in `other`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let (mut a, mut b) = (ExactSum::new(), ExactSum::new());
    /// a.add(i64::MAX);
    /// b.add(i64::MAX);
    /// a.merge(&b);
    /// assert_eq!(a.sum(), 2 * i64::MAX as i128);
    /// ```
    pub fn merge(&mut self, other: &Self) {
        if other.updates > 1 {
            let mut other = other.sum.clone();
            other.normalize();
            self.merge_carried(&other);
        } else {
            self.merge_carried(&other.sum);
        }
    }

    /// The sum: exact for integers, the exact sum rounded once for floats.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let mut s = ExactSum::new();
    /// for _ in 0..10 {
    ///     s.add(0.1);
    /// }
    /// // The exact sum of ten copies of the double nearest 0.1, rounded once.
    /// assert_eq!(s.sum(), 1.0);
    /// ```
    #[must_use]
    #[inline]
    pub fn sum(&self) -> T::Sum {
        self.sum.sum()
    }

    /// The exact sum divided by `n` and rounded once, for any `n >= 1`; `None` for `n = 0`.
    ///
    /// The sum does not count its values: callers pass the count they keep (for a mean, the
    /// number of values added less the number removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let mut s = ExactSum::new();
    /// s.add(1u32);
    /// s.add(2u32);
    /// assert_eq!(s.mean(2), Some(1.5));
    /// assert_eq!(s.mean(0), None);
    /// ```
    #[must_use]
    #[inline]
    pub fn mean(&self, n: u64) -> Option<f64> {
        (n > 0).then(|| self.sum.mean_of(n))
    }

    /// Appends the sum's state: at most [`MAX_STATE_LEN`](Self::MAX_STATE_LEN) words,
    /// canonical (equal sums give equal words, whatever values and partitions they came from),
    /// for [`from_state`](Self::from_state) or [`merge_state`](Self::merge_state) to read back,
    /// possibly in another process of the same crate version.
    ///
    /// The words are as short as the sum. An integer sum is its `i128` in the fewest
    /// two's-complement words: none for zero, one if it fits an `i64`. A float sum is exact in
    /// units of the smallest subnormal: a header word (the index of its lowest nonzero 32-bit
    /// digit, and whether counters of non-finite values follow), the sum from that digit up
    /// in the fewest two's-complement words, then the counts of NaNs, `+inf` and `-inf` if any
    /// is nonzero. The sum of `f64` values within `2^40` of each other takes three or four
    /// words; an empty sum, none.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let mut s = ExactSum::<f64>::new();
    /// let mut words = Vec::new();
    /// s.write_state(&mut words);
    /// assert!(words.is_empty());
    /// for x in [0.1, 1e6, 2.5e-3] {
    ///     s.add(x);
    /// }
    /// s.write_state(&mut words);
    /// assert!(words.len() <= 4);
    /// assert_eq!(ExactSum::<f64>::from_state(&words).unwrap().sum(), s.sum());
    /// ```
    pub fn write_state(&self, out: &mut Vec<i64>) {
        self.sum.write_state(out);
    }

    /// Appends the state of the sum of `value` alone: the words
    /// [`write_state`](Self::write_state) writes after one [`add`](Self::add) of it, without
    /// building the sum.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ExactSum;
    ///
    /// let (mut direct, mut built) = (Vec::new(), Vec::new());
    /// ExactSum::write_state_of(0.1f64, &mut direct);
    /// let mut s = ExactSum::new();
    /// s.add(0.1f64);
    /// s.write_state(&mut built);
    /// assert_eq!(direct, built);
    /// ```
    pub fn write_state_of(value: T, out: &mut Vec<i64>) {
        let (mut fixed, mut grid) = (0, crate::fixed::GRID_UNSET);
        if T::Running::cell_add(value, &mut fixed, &mut grid) {
            T::Running::cell_state(fixed, grid, out);
        } else {
            let mut one = Self::new();
            one.add(value);
            one.write_state(out);
        }
    }

    /// The sum whose state [`write_state`](Self::write_state) wrote.
    ///
    /// # Errors
    ///
    /// [`StateError::TooLong`] if `words` is longer than
    /// [`MAX_STATE_LEN`](Self::MAX_STATE_LEN), [`StateError::NotCanonical`] if the words are
    /// not a state `write_state` can write.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{ExactSum, StateError};
    ///
    /// assert_eq!(ExactSum::<i64>::from_state(&[]).unwrap().sum(), 0);
    /// assert_eq!(ExactSum::<i64>::from_state(&[7]).unwrap().sum(), 7);
    /// // 7 with a redundant sign word is not what write_state writes.
    /// assert_eq!(ExactSum::<i64>::from_state(&[7, 0]).unwrap_err(), StateError::NotCanonical);
    /// ```
    pub fn from_state(words: &[i64]) -> Result<Self, StateError> {
        if words.len() > Self::MAX_STATE_LEN {
            return Err(StateError::TooLong {
                max: Self::MAX_STATE_LEN,
                found: words.len(),
            });
        }
        let sum = T::Running::read_state(words).ok_or(StateError::NotCanonical)?;
        Ok(Self::from_running(sum))
    }

    /// A sum whose limbs are carried.
    pub(crate) fn from_running(sum: T::Running) -> Self {
        ExactSum { sum, updates: 1 }
    }

    /// Adds the sum whose state [`write_state`](Self::write_state) wrote, without building
    /// it first; on error, `self` is unchanged.
    ///
    /// # Errors
    ///
    /// As [`from_state`](Self::from_state).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{ExactSum, StateError};
    ///
    /// let mut part = ExactSum::new();
    /// part.add(-3i32);
    /// let mut words = Vec::new();
    /// part.write_state(&mut words);
    ///
    /// let mut total = ExactSum::new();
    /// total.add(5i32);
    /// total.merge_state(&words)?;
    /// assert_eq!(total.sum(), 2);
    /// assert_eq!(total.merge_state(&[1, 2, 3]), Err(StateError::TooLong { max: 2, found: 3 }));
    /// assert_eq!(total.sum(), 2);
    /// # Ok::<(), StateError>(())
    /// ```
    pub fn merge_state(&mut self, words: &[i64]) -> Result<(), StateError> {
        let other = Self::from_state(words)?;
        self.merge_carried(&other.sum);
        Ok(())
    }

    /// Counts one update, propagating the carries first if the limbs could otherwise grow
    /// past `2^62`.
    #[inline(always)]
    fn count_update(&mut self) {
        if self.updates >= UPDATES_BETWEEN_CARRIES {
            self.carry();
        }
        self.updates += 1;
    }

    #[cold]
    #[inline(never)]
    fn carry(&mut self) {
        self.sum.normalize();
        self.updates = 0;
    }

    /// Adds a sum whose limbs are carried: one update's worth of growth.
    fn merge_carried(&mut self, other: &T::Running) {
        self.count_update();
        self.sum.merge(other);
    }
}

impl<T: Sample> Default for ExactSum<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Sample> fmt::Debug for ExactSum<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExactSum")
            .field("sum", &self.sum())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mavg_testkit::float::pow2;

    #[test]
    fn carries_keep_long_streams_exact() {
        // Far more updates than UPDATES_BETWEEN_CARRIES under test, with values that move the
        // top limbs: the sum stays exact.
        let mut s = ExactSum::<f64>::new();
        let big = f64::MAX / 4.0;
        for _ in 0..1000 {
            s.add(big);
            s.add(1.0);
        }
        for _ in 0..1000 {
            s.remove(big);
        }
        assert_eq!(s.sum(), 1000.0);
        let mut i = ExactSum::<i64>::new();
        for _ in 0..1000 {
            i.add(i64::MIN);
        }
        assert_eq!(i.sum(), 1000 * i128::from(i64::MIN));
    }

    #[test]
    fn states_are_canonical_whatever_the_history() {
        let mut a = ExactSum::<f64>::new();
        let mut b = ExactSum::<f64>::new();
        for k in 0..500 {
            a.add(k as f64 * 0.1);
        }
        for k in (0..500).rev() {
            b.add(k as f64 * 0.1);
            b.add(1e300);
            b.remove(1e300);
        }
        let (mut wa, mut wb) = (Vec::new(), Vec::new());
        a.write_state(&mut wa);
        b.write_state(&mut wb);
        assert_eq!(wa, wb);
        assert!(wa.len() <= 4, "{wa:?}");
        assert_eq!(ExactSum::<f64>::from_state(&wa).unwrap().sum(), a.sum());
    }

    #[test]
    fn means_over_more_than_2_pow_32_values() {
        // A sum of 3 * 2^40 values of 1.5 (exactly representable), divided by their count.
        let mut s = ExactSum::<f64>::new();
        s.add(1.5 * 3.0 * pow2(40));
        assert_eq!(s.mean(3 << 40), Some(1.5));
        // 2^64 - 1 is odd: 1 / (2^64 - 1) rounds to 2^-64.
        let mut one = ExactSum::<u8>::new();
        one.add(1);
        assert_eq!(one.mean(u64::MAX), Some(pow2(-64)));
        assert_eq!(one.mean(0), None);
        // A sticky tail far below the top bits, divided by a large count.
        let mut t = ExactSum::<f64>::new();
        t.add(pow2(200));
        t.add(pow2(-200));
        let n = (1u64 << 33) + 1;
        assert_eq!(t.mean(n), Some(pow2(200) / n as f64));
    }

    #[test]
    fn bad_states_are_refused() {
        assert_eq!(
            ExactSum::<i32>::from_state(&[1, 2, 3]).unwrap_err(),
            StateError::TooLong { max: 2, found: 3 }
        );
        let words = [3, 1 << 32];
        assert_eq!(
            ExactSum::<f32>::from_state(&words).unwrap_err(),
            StateError::NotCanonical
        );
        let mut s = ExactSum::<f32>::new();
        s.add(1.0);
        assert!(s.merge_state(&words).is_err());
        assert_eq!(s.sum(), 1.0);
    }
}
