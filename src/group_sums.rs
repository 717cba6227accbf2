//! [`GroupSums`]: exact sums of many groups at once, in flat vectors.

use std::fmt;
use std::mem;

use crate::error::StateError;
use crate::exact_sum::ExactSum;
use crate::fixed::GRID_UNSET;
use crate::running::RunningSum;
use crate::sample::Sample;

/// One group: a fixed-point sum on the group's own grid (integers: the `i128` sum), or the
/// index plus one of an [`ExactSum`] it moved to.
#[derive(Debug, Clone, Copy)]
struct Cell {
    fixed: i128,
    grid: u32,
    moved: usize,
}

const EMPTY: Cell = Cell {
    fixed: 0,
    grid: GRID_UNSET,
    moved: 0,
};

/// Exact sums of many groups, indexed `0..len()`: the accumulator of a query engine's
/// `GROUP BY`, with the guarantees of [`ExactSum`] at 32 bytes a group.
///
/// Each group keeps a fixed-point `i128` on a grid of its own, placed by its first nonzero
/// value: an [`add`](Self::add) on the grid is a shift and an overflow-checked 128-bit
/// addition. A group that meets a value off its grid (many binades away from its first one, a
/// NaN or an infinity) or would overflow the `i128` moves to an [`ExactSum`] of its own, with
/// the same result. Integer groups never move.
///
/// Sums, means and states are those of an [`ExactSum`] of the same values, bit for bit: a
/// group's [`write_state`](Self::write_state) can be read by
/// [`ExactSum::from_state`], and [`merge_state`](Self::merge_state) takes the states
/// [`ExactSum::write_state`] writes.
///
/// # Examples
///
/// ```
/// use mavg::GroupSums;
///
/// let mut sums = GroupSums::<f64>::new();
/// sums.resize(2);
/// for (group, x) in [(0, 2.5), (1, 1e16), (0, 0.25), (1, 1.0), (1, -1e16)] {
///     sums.add(group, x);
/// }
/// assert_eq!(sums.sum(0), 2.75);
/// assert_eq!(sums.sum(1), 1.0);
/// assert_eq!(sums.mean(1, 3), Some(1.0 / 3.0));
/// ```
#[derive(Clone)]
pub struct GroupSums<T: Sample> {
    cells: Vec<Cell>,
    moved: Vec<ExactSum<T>>,
}

impl<T: Sample> Default for GroupSums<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Sample> GroupSums<T> {
    /// No groups.
    ///
    /// # Examples
    ///
    /// ```
    /// let sums = mavg::GroupSums::<f64>::new();
    /// assert_eq!(sums.len(), 0);
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        GroupSums {
            cells: Vec::new(),
            moved: Vec::new(),
        }
    }

    /// The number of groups.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<i32>::new();
    /// sums.resize(3);
    /// assert_eq!(sums.len(), 3);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether there are no groups.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(mavg::GroupSums::<i32>::new().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Adds empty groups up to `groups` in all; never removes any.
    ///
    /// # Panics
    ///
    /// If the memory for `groups` groups (32 bytes each) cannot be allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<u8>::new();
    /// sums.resize(2);
    /// sums.resize(1);
    /// assert_eq!(sums.len(), 2);
    /// assert_eq!(sums.sum(1), 0);
    /// ```
    pub fn resize(&mut self, groups: usize) {
        if self.cells.len() < groups {
            self.cells.resize(groups, EMPTY);
        }
    }

    /// Adds `value` to group `group`.
    ///
    /// # Panics
    ///
    /// If `group >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<f32>::new();
    /// sums.resize(1);
    /// sums.add(0, f32::INFINITY);
    /// assert_eq!(sums.sum(0), f64::INFINITY);
    /// ```
    #[inline]
    pub fn add(&mut self, group: usize, value: T) {
        let cell = &mut self.cells[group];
        if cell.moved == 0 && T::Running::cell_add(value, &mut cell.fixed, &mut cell.grid) {
            return;
        }
        self.add_moved(group, value);
    }

    #[cold]
    #[inline(never)]
    fn add_moved(&mut self, group: usize, value: T) {
        let i = self.exact_of(group);
        self.moved[i].add(value);
    }

    /// The index in `moved` of the group's [`ExactSum`], moving the group there first if it
    /// has not moved yet.
    fn exact_of(&mut self, group: usize) -> usize {
        let cell = &mut self.cells[group];
        if cell.moved == 0 {
            let sum = T::Running::from_cell(cell.fixed, cell.grid);
            self.moved.push(ExactSum::from_running(sum));
            *cell = Cell {
                moved: self.moved.len(),
                ..EMPTY
            };
        }
        cell.moved - 1
    }

    /// The sum of group `group`: exact for integers, the exact sum rounded once for floats.
    ///
    /// # Panics
    ///
    /// If `group >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<i64>::new();
    /// sums.resize(1);
    /// sums.add(0, i64::MAX);
    /// sums.add(0, i64::MAX);
    /// assert_eq!(sums.sum(0), 2 * i128::from(i64::MAX));
    /// ```
    #[must_use]
    pub fn sum(&self, group: usize) -> T::Sum {
        let cell = &self.cells[group];
        match cell.moved {
            0 => T::Running::cell_sum(cell.fixed, cell.grid),
            i => self.moved[i - 1].sum(),
        }
    }

    /// The sum of group `group` divided by `n` and rounded once, for any `n >= 1`; `None` for
    /// `n = 0`. As with [`ExactSum::mean`], the caller keeps the count.
    ///
    /// # Panics
    ///
    /// If `group >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<u32>::new();
    /// sums.resize(1);
    /// sums.add(0, 1);
    /// sums.add(0, 2);
    /// assert_eq!(sums.mean(0, 2), Some(1.5));
    /// assert_eq!(sums.mean(0, 0), None);
    /// ```
    #[must_use]
    pub fn mean(&self, group: usize, n: u64) -> Option<f64> {
        let cell = &self.cells[group];
        (n > 0).then(|| match cell.moved {
            0 => T::Running::cell_mean(cell.fixed, cell.grid, n),
            i => self.moved[i - 1].mean(n).expect("n > 0"),
        })
    }

    /// Appends the state of group `group`: the words [`ExactSum::write_state`] writes for the
    /// same values.
    ///
    /// # Panics
    ///
    /// If `group >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{ExactSum, GroupSums};
    ///
    /// let mut sums = GroupSums::<f64>::new();
    /// sums.resize(1);
    /// sums.add(0, 2.5);
    /// let mut words = Vec::new();
    /// sums.write_state(0, &mut words);
    /// assert_eq!(ExactSum::<f64>::from_state(&words).unwrap().sum(), 2.5);
    /// ```
    pub fn write_state(&self, group: usize, out: &mut Vec<i64>) {
        let cell = &self.cells[group];
        match cell.moved {
            0 => T::Running::cell_state(cell.fixed, cell.grid, out),
            i => self.moved[i - 1].write_state(out),
        }
    }

    /// Adds to group `group` the sum whose state [`ExactSum::write_state`] (or
    /// [`write_state`](Self::write_state)) wrote; on error the group is unchanged.
    ///
    /// # Errors
    ///
    /// As [`ExactSum::from_state`].
    ///
    /// # Panics
    ///
    /// If `group >= len()`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{ExactSum, GroupSums};
    ///
    /// let mut part = ExactSum::<f64>::new();
    /// part.add(1e300);
    /// part.add(1.0);
    /// let mut words = Vec::new();
    /// part.write_state(&mut words);
    ///
    /// let mut sums = GroupSums::<f64>::new();
    /// sums.resize(1);
    /// sums.add(0, -1e300);
    /// sums.merge_state(0, &words).unwrap();
    /// assert_eq!(sums.sum(0), 1.0);
    /// assert!(sums.merge_state(0, &[1 << 20]).is_err());
    /// ```
    pub fn merge_state(&mut self, group: usize, words: &[i64]) -> Result<(), StateError> {
        let cell = &mut self.cells[group];
        if cell.moved == 0 && T::Running::cell_merge_state(words, &mut cell.fixed, &mut cell.grid) {
            return Ok(());
        }
        // Read the words before moving the group, so that an error leaves it as it was.
        let other = ExactSum::<T>::from_state(words)?;
        let i = self.exact_of(group);
        self.moved[i].merge(&other);
        Ok(())
    }

    /// Removes the first `n` groups (all if `n >= len()`) and returns them, numbered from 0;
    /// the others are renumbered from 0 in the same order.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<i8>::new();
    /// sums.resize(3);
    /// sums.add(0, 1);
    /// sums.add(2, 3);
    /// let first = sums.take_first(2);
    /// assert_eq!((first.len(), first.sum(0)), (2, 1));
    /// assert_eq!((sums.len(), sums.sum(0)), (1, 3));
    /// ```
    pub fn take_first(&mut self, n: usize) -> GroupSums<T> {
        if n >= self.cells.len() {
            return mem::take(self);
        }
        let rest = self.cells.split_off(n);
        let mut first = GroupSums {
            cells: mem::replace(&mut self.cells, rest),
            moved: Vec::new(),
        };
        if self.moved.is_empty() {
            return first;
        }
        // Share out the moved groups' sums by their new owners, renumbered.
        let mut moved: Vec<Option<ExactSum<T>>> =
            mem::take(&mut self.moved).into_iter().map(Some).collect();
        for (sums, cells) in [
            (&mut first.moved, &mut first.cells),
            (&mut self.moved, &mut self.cells),
        ] {
            for cell in cells.iter_mut().filter(|c| c.moved != 0) {
                sums.push(moved[cell.moved - 1].take().expect("one owner"));
                cell.moved = sums.len();
            }
        }
        first
    }

    /// The bytes the groups take on the heap, for memory accounting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut sums = mavg::GroupSums::<f64>::new();
    /// sums.resize(1000);
    /// assert!(sums.heap_size() >= 32_000);
    /// ```
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.cells.capacity() * size_of::<Cell>() + self.moved.capacity() * size_of::<ExactSum<T>>()
    }
}

impl<T: Sample> fmt::Debug for GroupSums<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupSums")
            .field("groups", &self.cells.len())
            .field("exact", &self.moved.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_32_bytes() {
        assert_eq!(size_of::<Cell>(), 32);
    }
}
