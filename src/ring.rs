//! A single-threaded ring buffer with an exact running sum.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::check_window;
use crate::error::WindowError;
use crate::fixed::Reciprocal;
use crate::running::{LinearSum, RunningSum};
use crate::sample::Sample;
use crate::sync::{store_mut, AtomicU64};
use crate::traits::MovingAverage;

/// A moving average for one owner: a ring buffer of the last `N` elements and an exact
/// running sum.
///
/// Adding is O(1) with no allocation, no integer division and no branch on the values beyond
/// classifying a float; reading the average is O(1) (it rounds the exact sum once). All memory,
/// `N * size_of::<T>()` bytes plus the accumulator (16 to 624 bytes), is allocated, fallibly,
/// by the constructor.
///
/// # Examples
///
/// ```
/// use mavg::RingAverage;
///
/// let mut latencies = RingAverage::<f64>::new(3)?;
/// latencies.extend([12.0, 15.0, 1e17, 10.0, 11.0, 12.0]);
/// // 1e17 came and went; the average is exactly that of the last three.
/// assert_eq!(latencies.average(), Some(11.0));
/// assert_eq!(latencies.to_vec(), [10.0, 11.0, 12.0]);
/// # Ok::<(), mavg::WindowError>(())
/// ```
pub struct RingAverage<T: Sample> {
    /// The elements in add order from `head`, wrapping; grows to `window` and then stays.
    buf: Vec<T>,
    /// Index of the oldest element once `buf` is full (0 before).
    head: usize,
    window: usize,
    /// `window` as an `f64` and its reciprocal: reads of a full window convert nothing and
    /// divide by multiplying.
    window_f64: f64,
    reciprocal: Reciprocal,
    /// Exact sum of `buf` (for floats, a fixed-point sum and limbs).
    sum: T::Running,
    /// The bits of the last average read since the last change, or [`NO_AVERAGE`]: a read of
    /// an unchanged window is one load. Reads through `&self` cannot overlap a change (which
    /// takes `&mut self` and resets it), and concurrent readers store the same value, so
    /// Relaxed suffices.
    last_average: AtomicU64,
}

/// A NaN payload that no read returns (the crate's NaN results are `f64::NAN`).
const NO_AVERAGE: u64 = 0x7ff8_0000_dead_beef;

impl<T: Sample> Clone for RingAverage<T> {
    fn clone(&self) -> Self {
        RingAverage {
            buf: self.buf.clone(),
            head: self.head,
            window: self.window,
            window_f64: self.window_f64,
            reciprocal: self.reciprocal,
            sum: self.sum.clone(),
            last_average: AtomicU64::new(self.last_average.load(Relaxed)),
        }
    }
}

impl<T: Sample> RingAverage<T> {
    /// Creates an empty moving average over the last `window` elements, allocating all of its
    /// memory.
    ///
    /// # Errors
    ///
    /// [`WindowError::Zero`] for a window of zero, [`WindowError::TooLarge`] above
    /// [`MAX_WINDOW`](crate::MAX_WINDOW), [`WindowError::Alloc`] if the allocation fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{RingAverage, WindowError};
    ///
    /// let ok = RingAverage::<u64>::new(1024);
    /// assert!(ok.is_ok());
    /// assert!(matches!(RingAverage::<u64>::new(usize::MAX), Err(WindowError::TooLarge { .. })));
    /// ```
    pub fn new(window: usize) -> Result<Self, WindowError> {
        check_window(window)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(window)
            .map_err(|_| WindowError::Alloc {
                requested: window,
                bytes: window.saturating_mul(std::mem::size_of::<T>()),
            })?;
        Ok(Self {
            buf,
            head: 0,
            window,
            window_f64: window as f64,
            reciprocal: Reciprocal::new(window as u64),
            sum: T::Running::empty(window as u64, true),
            last_average: AtomicU64::new(NO_AVERAGE),
        })
    }

    /// Adds an element like [`push`](MovingAverage::push), and returns the element it evicted,
    /// if the window was full (the name follows `crossbeam`'s `ArrayQueue::force_push`).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::RingAverage;
    ///
    /// let mut m = RingAverage::new(2)?;
    /// assert_eq!(m.force_push(1u8), None);
    /// assert_eq!(m.force_push(2), None);
    /// assert_eq!(m.force_push(3), Some(1));
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    #[inline(always)]
    pub fn force_push(&mut self, value: T) -> Option<T> {
        store_mut(&mut self.last_average, NO_AVERAGE);
        if self.buf.len() < self.window {
            // Within the capacity reserved by `new`: never reallocates.
            self.buf.push(value);
            self.sum.add(value);
            if self.sum.regrid_due() {
                self.rebuild();
            }
            None
        } else {
            let head = self.head;
            let old = std::mem::replace(&mut self.buf[head], value);
            self.head = if head + 1 == self.window { 0 } else { head + 1 };
            self.sum.replace(old, value);
            if self.sum.regrid_due() {
                self.rebuild();
            }
            Some(old)
        }
    }

    /// Sums the elements again on a grid chosen for them (`float_sum.rs`).
    #[cold]
    #[inline(never)]
    fn rebuild(&mut self) {
        let (newer, older) = self.buf.split_at(self.head);
        self.sum.rebuild(older, newer);
    }

    /// The elements oldest first, as two slices (the second is empty until the ring wraps).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::RingAverage;
    ///
    /// let mut m = RingAverage::new(3)?;
    /// m.extend([1, 2, 3, 4]);
    /// let (a, b) = m.as_slices();
    /// assert_eq!([a, b].concat(), [2, 3, 4]);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    #[must_use]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let (newer, older) = self.buf.split_at(self.head);
        (older, newer)
    }

    /// An iterator over the elements, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::RingAverage;
    ///
    /// let mut m = RingAverage::new(2)?;
    /// m.extend([1, 2, 3]);
    /// assert_eq!(m.iter().copied().max(), Some(3));
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + '_ {
        let (a, b) = self.as_slices();
        a.iter().chain(b.iter())
    }

    /// The exact sum, rounded only for floats.
    #[inline]
    pub(crate) fn sum_value(&self) -> T::Sum {
        self.sum.sum()
    }

    /// The cached average, or a new one.
    #[inline(always)]
    pub(crate) fn average_value(&self) -> Option<f64> {
        let last = self.last_average.load(Relaxed);
        if last != NO_AVERAGE {
            return Some(f64::from_bits(last));
        }
        self.compute_average()
    }

    #[inline]
    fn compute_average(&self) -> Option<f64> {
        let n = self.buf.len();
        let mean = if n == self.window {
            self.sum.mean_by(&self.reciprocal, self.window_f64)
        } else if n > 0 {
            self.sum.mean(n as u64, n as f64)
        } else {
            return None;
        };
        self.last_average.store(mean.to_bits(), Relaxed);
        Some(mean)
    }

    pub(crate) fn element(&self, index: usize) -> Option<T> {
        if index >= self.buf.len() {
            return None;
        }
        let mut i = self.head + index;
        if i >= self.window {
            i -= self.window;
        }
        Some(self.buf[i])
    }
}

crate::inherent::inherent_methods!(owned RingAverage, panics: "Never.");

impl<T: Sample> MovingAverage for RingAverage<T> {
    type Item = T;

    fn with_window(window: usize) -> Result<Self, WindowError> {
        Self::new(window)
    }

    #[inline]
    fn window(&self) -> usize {
        self.window
    }

    #[inline]
    fn len(&self) -> usize {
        self.buf.len()
    }

    #[inline]
    fn sum(&self) -> T::Sum {
        self.sum_value()
    }

    #[inline]
    fn average(&self) -> Option<f64> {
        self.average_value()
    }

    fn oldest(&self) -> Option<T> {
        self.element(0)
    }

    fn newest(&self) -> Option<T> {
        self.buf.len().checked_sub(1).and_then(|i| self.element(i))
    }

    fn get(&self, index: usize) -> Option<T> {
        self.element(index)
    }

    fn to_vec(&self) -> Vec<T> {
        let (a, b) = self.as_slices();
        [a, b].concat()
    }

    #[inline]
    fn push(&mut self, value: T) {
        self.force_push(value);
    }

    /// Removes every element, keeping the allocation.
    fn clear(&mut self) {
        self.buf.clear();
        self.head = 0;
        self.sum = T::Running::empty(self.window as u64, true);
        store_mut(&mut self.last_average, NO_AVERAGE);
    }
}

impl<T: Sample> Extend<T> for RingAverage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            self.force_push(value);
        }
    }
}

/// Prints the window's size and average and its oldest 16 elements, so that
/// printing a window of a million elements prints a line.
impl<T: Sample> fmt::Debug for RingAverage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingAverage")
            .field("window", &self.window)
            .field("len", &self.buf.len())
            .field("average", &self.average_value())
            .field("elements", &Oldest(self))
            .finish()
    }
}

/// How many elements `Debug` prints.
const DEBUG_ELEMENTS: usize = 16;

/// The oldest [`DEBUG_ELEMENTS`] elements of a ring, then `..` if there are more.
struct Oldest<'a, T: Sample>(&'a RingAverage<T>);

impl<T: Sample> fmt::Debug for Oldest<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        list.entries(self.0.iter().take(DEBUG_ELEMENTS));
        if self.0.buf.len() > DEBUG_ELEMENTS {
            list.finish_non_exhaustive()
        } else {
            list.finish()
        }
    }
}

/// The ring's fixed-point float path (and so `MutexAverage`'s, which wraps a ring) against the
/// pure exact path, bit for bit: `src/ring/fast_path_tests.rs`.
#[cfg(test)]
mod fast_path_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_at_most_sixteen_elements() {
        let mut ring = RingAverage::new(1000).unwrap();
        ring.extend(0..1000u32);
        let text = format!("{ring:?}");
        assert!(text.contains("elements: [0, 1, 2,"), "{text}");
        assert!(text.contains("15, ..]"), "{text}");
        assert!(!text.contains(", 16"), "{text}");

        let mut small = RingAverage::new(3).unwrap();
        small.extend([1u8, 2]);
        assert_eq!(
            format!("{small:?}"),
            "RingAverage { window: 3, len: 2, average: Some(1.5), elements: [1, 2] }"
        );
    }
}
