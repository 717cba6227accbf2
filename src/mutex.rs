//! A ring buffer behind a mutex: the simple shared implementation.

use std::fmt;
use std::sync::PoisonError;

use crate::error::WindowError;
use crate::ring::RingAverage;
use crate::sample::Sample;
use crate::sync::Mutex;
use crate::traits::{MovingAverage, SharedMovingAverage};

/// A [`RingAverage`] behind a mutex: shared by any number of threads, every operation
/// linearizable.
///
/// Each add and each read takes the lock once. Under contention the lock is the bottleneck (see
/// the crate documentation, *Performance*); [`ShardedAverage`](crate::ShardedAverage) is the
/// lock-free alternative.
///
/// A thread that panics while holding the lock cannot leave the ring half-updated: the only
/// code that runs under the lock is the crate's own, which completes every update before any
/// point where it could panic. The mutex's poison flag is therefore ignored, and the structure
/// stays usable and exact after a panic elsewhere (for example in the iterator passed to
/// [`Extend`], whose elements are added one lock at a time).
///
/// # Examples
///
/// ```
/// use mavg::MutexAverage;
///
/// let m = MutexAverage::<i64>::new(100)?;
/// std::thread::scope(|s| {
///     s.spawn(|| (0..50).for_each(|x| m.push(x)));
///     s.spawn(|| (50..100).for_each(|x| m.push(x)));
/// });
/// assert_eq!(m.sum(), (0..100).sum::<i64>() as i128);
/// assert_eq!(m.average(), Some(49.5));
/// # Ok::<(), mavg::WindowError>(())
/// ```
pub struct MutexAverage<T: Sample> {
    ring: Mutex<RingAverage<T>>,
    window: usize,
}

impl<T: Sample> MutexAverage<T> {
    /// Creates an empty moving average over the last `window` elements, allocating all of its
    /// memory.
    ///
    /// # Errors
    ///
    /// As [`RingAverage::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{MutexAverage, WindowError};
    ///
    /// assert_eq!(MutexAverage::<f32>::new(0).unwrap_err(), WindowError::Zero);
    /// ```
    pub fn new(window: usize) -> Result<Self, WindowError> {
        Ok(Self {
            ring: Mutex::new(RingAverage::new(window)?),
            window,
        })
    }

    /// Runs `f` on the ring under the lock: several reads that must agree with one another.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::MutexAverage;
    ///
    /// let m = MutexAverage::new(4)?;
    /// m.push(3u32);
    /// let (len, sum) = m.with(|ring| (ring.iter().count(), ring.iter().sum::<u32>()));
    /// assert_eq!((len, sum), (1, 3));
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn with<R>(&self, f: impl FnOnce(&RingAverage<T>) -> R) -> R {
        f(&self.lock())
    }

    /// Consumes the mutex and returns the ring buffer inside, with the same window and
    /// elements.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::MutexAverage;
    ///
    /// let m = MutexAverage::new(2)?;
    /// for x in [1u8, 2, 3] {
    ///     m.push(x);
    /// }
    /// let ring = m.into_inner();
    /// assert_eq!(ring.to_vec(), [2, 3]);
    /// assert_eq!(ring.window(), 2);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    #[must_use]
    pub fn into_inner(self) -> RingAverage<T> {
        self.ring
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> crate::sync::MutexGuard<'_, RingAverage<T>> {
        // Poison is ignored: see the type's documentation.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

crate::inherent::inherent_methods!(shared MutexAverage, panics: "Never: a lock poisoned by a panic elsewhere is taken over (see the type's documentation).");

impl<T: Sample> MovingAverage for MutexAverage<T> {
    type Item = T;

    fn with_window(window: usize) -> Result<Self, WindowError> {
        Self::new(window)
    }

    fn window(&self) -> usize {
        self.window
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn sum(&self) -> T::Sum {
        self.lock().sum_value()
    }

    fn average(&self) -> Option<f64> {
        self.lock().average_value()
    }

    fn oldest(&self) -> Option<T> {
        self.lock().oldest()
    }

    fn newest(&self) -> Option<T> {
        self.lock().newest()
    }

    fn get(&self, index: usize) -> Option<T> {
        self.lock().element(index)
    }

    fn to_vec(&self) -> Vec<T> {
        self.lock().to_vec()
    }

    crate::inherent::exclusive_through_shared!();
}

impl<T: Sample> SharedMovingAverage for MutexAverage<T> {
    #[inline]
    fn push(&self, value: T) {
        self.lock().push(value);
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

impl<T: Sample> Extend<T> for MutexAverage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

/// Adds through a shared reference, one lock per element, so that other threads interleave.
impl<T: Sample> Extend<T> for &MutexAverage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            SharedMovingAverage::push(*self, value);
        }
    }
}

impl<T: Sample> fmt::Debug for MutexAverage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ring.try_lock() {
            Ok(ring) => fmt::Debug::fmt(&*ring, f),
            Err(_) => f
                .debug_struct("MutexAverage")
                .field("window", &self.window)
                .finish_non_exhaustive(),
        }
    }
}
