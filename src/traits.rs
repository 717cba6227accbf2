//! The interface every moving average in the crate implements, and the contract behind it.

use crate::error::WindowError;
use crate::sample::Sample;

/// A moving average over the last `N` elements added: the window.
///
/// # Contract
///
/// Implementations must guarantee the following; callers may rely on it, and the crate's tests
/// check every implementation against a reference model that follows it literally.
///
/// * **Window.** The window holds the last `N = window()` elements added, oldest first. A
///   history of adds that do not overlap in time (one thread, or threads that synchronize
///   between adds) produces exactly the elements, sum and average that
///   [`RingAverage`](crate::RingAverage) produces for the same sequence. Concurrent adds are
///   ordered in one total order consistent with each thread's own order of adds (and with
///   any synchronization between threads); once adds stop, the window is the last `N` in that
///   order and element access shows them in it.
/// * **Integers are exact.** [`sum`](MovingAverage::sum) is the exact `i128` sum of the window
///   and [`average`](MovingAverage::average) the exact mean correctly rounded to `f64`, for any
///   window contents: no overflow, wraparound or panic.
/// * **Floats do not drift.** The sum is the exact sum of the window's elements rounded once to
///   `f64` (overflowing to an infinity only when the exact sum is out of `f64`'s range), and the
///   average is the exact mean rounded once, which is always finite for finite elements. Both
///   depend only on the elements currently in the window, never on ones that left it.
/// * **Non-finite floats** are accepted. While the window holds a NaN, or both infinities, the
///   sum and average are NaN; while it holds infinities of one sign only, they are that
///   infinity. Once the last such element leaves the window, the results are exact again.
/// * **Empty.** [`average`](MovingAverage::average) is `None`, never NaN, for an empty window,
///   and the sum is zero.
/// * **Concurrent reads** (for [`SharedMovingAverage`] implementations) are documented by each
///   implementation: [`MutexAverage`](crate::MutexAverage) reads are linearizable;
///   [`ShardedAverage`](crate::ShardedAverage) reads return exact results for a set of elements
///   each of which was in the window during the read.
///
/// # Examples
///
/// Code written against the trait works with every implementation:
///
/// ```
/// use mavg::{MovingAverage, MutexAverage, RingAverage, ShardedAverage};
///
/// fn last_three<M: MovingAverage<Item = u32>>() -> Option<f64> {
///     let mut m = M::with_window(3).unwrap();
///     for x in 1..=5 {
///         m.push(x);
///     }
///     assert_eq!(m.to_vec(), [3, 4, 5]);
///     m.average()
/// }
///
/// assert_eq!(last_three::<RingAverage<u32>>(), Some(4.0));
/// assert_eq!(last_three::<MutexAverage<u32>>(), Some(4.0));
/// assert_eq!(last_three::<ShardedAverage<u32>>(), Some(4.0));
/// ```
pub trait MovingAverage {
    /// The element type: one of the [`Sample`] types.
    type Item: Sample;

    /// Creates an empty moving average over the last `window` elements.
    ///
    /// # Errors
    ///
    /// [`WindowError::Zero`] for a window of zero, [`WindowError::TooLarge`] above
    /// [`MAX_WINDOW`](crate::MAX_WINDOW), [`WindowError::Alloc`] if the memory cannot be had.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage, WindowError};
    ///
    /// assert!(RingAverage::<f64>::with_window(100).is_ok());
    /// assert_eq!(RingAverage::<f64>::with_window(0).unwrap_err(), WindowError::Zero);
    /// ```
    fn with_window(window: usize) -> Result<Self, WindowError>
    where
        Self: Sized;

    /// The window size `N`: the most elements the moving average keeps.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// assert_eq!(RingAverage::<i64>::new(8).unwrap().window(), 8);
    /// ```
    #[must_use]
    fn window(&self) -> usize;

    /// The number of elements in the window: `min(N, elements added since the last clear)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.push(1u8);
    /// assert_eq!(m.len(), 1);
    /// m.extend([2, 3]);
    /// assert_eq!(m.len(), 2);
    /// ```
    #[must_use]
    fn len(&self) -> usize;

    /// Whether the window holds no element.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// assert!(m.is_empty());
    /// m.push(1i32);
    /// assert!(!m.is_empty());
    /// ```
    #[must_use]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the window holds `N` elements, so that the next add evicts the oldest.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(1).unwrap();
    /// assert!(!m.is_full());
    /// m.push(1i32);
    /// assert!(m.is_full());
    /// ```
    #[must_use]
    fn is_full(&self) -> bool {
        self.len() == self.window()
    }

    /// The sum of the elements in the window: exact for integers, the exact sum rounded once
    /// for floats.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.extend([i64::MAX, i64::MAX, i64::MAX]);
    /// assert_eq!(m.sum(), 2 * i64::MAX as i128);
    ///
    /// let mut f = RingAverage::new(3).unwrap();
    /// f.extend([1e17, 1.0, 1.0, 1.0]); // 1e17 has left the window
    /// assert_eq!(f.sum(), 3.0);
    /// ```
    #[must_use]
    fn sum(&self) -> <Self::Item as Sample>::Sum;

    /// The mean of the elements in the window, correctly rounded; `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(3).unwrap();
    /// assert_eq!(m.average(), None);
    /// m.extend([0.1, 0.2, 0.3]);
    /// assert_eq!(m.average(), Some(0.2)); // summing naively gives 0.20000000000000004
    /// ```
    #[must_use]
    fn average(&self) -> Option<f64>;

    /// The oldest element in the window, the next to be evicted.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.extend([1u16, 2, 3]);
    /// assert_eq!(m.oldest(), Some(2));
    /// ```
    #[must_use]
    fn oldest(&self) -> Option<Self::Item>;

    /// The most recently added element.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.extend([1u16, 2, 3]);
    /// assert_eq!(m.newest(), Some(3));
    /// ```
    #[must_use]
    fn newest(&self) -> Option<Self::Item>;

    /// The element at `index`, counted from the oldest (`0`) to the newest (`len() - 1`);
    /// `None` past the end.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(3).unwrap();
    /// m.extend([10i8, 20, 30, 40]);
    /// assert_eq!(m.get(0), Some(20));
    /// assert_eq!(m.get(2), Some(40));
    /// assert_eq!(m.get(3), None);
    /// ```
    #[must_use]
    fn get(&self, index: usize) -> Option<Self::Item>;

    /// A copy of the window, oldest first.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(3).unwrap();
    /// m.extend(1..=5u64);
    /// assert_eq!(m.to_vec(), [3, 4, 5]);
    /// ```
    #[must_use]
    fn to_vec(&self) -> Vec<Self::Item>;

    /// Adds an element, evicting the oldest if the window is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.push(f64::NAN);
    /// m.push(1.0);
    /// assert!(m.average().unwrap().is_nan());
    /// m.push(2.0); // the NaN leaves the window
    /// assert_eq!(m.average(), Some(1.5));
    /// ```
    fn push(&mut self, value: Self::Item);

    /// Removes every element; the window size is kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, RingAverage};
    ///
    /// let mut m = RingAverage::new(2).unwrap();
    /// m.push(1u32);
    /// m.clear();
    /// assert!(m.is_empty());
    /// assert_eq!(m.average(), None);
    /// ```
    fn clear(&mut self);
}

/// A [`MovingAverage`] that many threads can add to at once, through `&self`.
///
/// Implementors guarantee everything [`MovingAverage`] promises, with adds from any number of
/// threads ordered as its contract states, and document what a read that runs concurrently
/// with adds returns.
///
/// With both traits in scope, `x.push(v)` on a shared implementation resolves to this trait's
/// `&self` method.
///
/// # Examples
///
/// ```
/// use mavg::{MovingAverage, SharedMovingAverage, ShardedAverage};
///
/// let m = ShardedAverage::<u64>::new(1000).unwrap();
/// std::thread::scope(|s| {
///     for t in 0..4u64 {
///         let m = &m;
///         s.spawn(move || (0..100).for_each(|i| m.push(t * 100 + i)));
///     }
/// });
/// assert_eq!(m.len(), 400);
/// assert_eq!(m.sum(), (0..400).sum::<u64>() as i128);
/// ```
pub trait SharedMovingAverage: MovingAverage + Sync {
    /// Adds an element from any thread, evicting the oldest if the window is full.
    ///
    /// # Panics
    ///
    /// [`ShardedAverage`](crate::ShardedAverage) panics if the add needs memory that cannot
    /// be allocated (see its implementation of this method, and
    /// [`try_push`](crate::ShardedAverage::try_push)). [`MutexAverage`](crate::MutexAverage)
    /// never panics here.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, SharedMovingAverage, MutexAverage};
    ///
    /// let m = MutexAverage::new(2).unwrap();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| m.push(1.0));
    ///     s.spawn(|| m.push(3.0));
    /// });
    /// assert_eq!(m.average(), Some(2.0));
    /// ```
    fn push(&self, value: Self::Item);

    /// Removes every element added before the call; adds that run concurrently with it may or
    /// may not be removed.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MovingAverage, SharedMovingAverage, ShardedAverage};
    ///
    /// let m = ShardedAverage::new(4).unwrap();
    /// m.push(7i16);
    /// m.clear();
    /// assert!(m.is_empty());
    /// ```
    fn clear(&self);
}
