use std::fmt;

/// The largest window any implementation accepts: `2^30` elements.
///
/// The exact accumulators add 32-bit digits into 64-bit counters without carrying; this bound
/// keeps every counter's true value below `2^62`, so wrapping arithmetic stays exact (see
/// `notes/design.md`). A window this large already takes 8 GiB for `f64` samples.
///
/// # Examples
///
/// ```
/// use mavg::{RingAverage, WindowError, MAX_WINDOW};
///
/// let err = RingAverage::<u8>::new(MAX_WINDOW + 1).unwrap_err();
/// assert_eq!(err, WindowError::TooLarge { requested: MAX_WINDOW + 1, max: MAX_WINDOW });
/// ```
pub const MAX_WINDOW: usize = 1 << 30;

/// Why a moving average could not be created.
///
/// Every constructor in the crate returns this instead of panicking or aborting, and a failed
/// construction allocates nothing that outlives the call.
///
/// # Examples
///
/// ```
/// use mavg::{MutexAverage, WindowError};
///
/// match MutexAverage::<f64>::new(0) {
///     Err(WindowError::Zero) => {}
///     other => panic!("expected a zero-window error, got {other:?}"),
/// }
/// assert_eq!(
///     WindowError::Zero.to_string(),
///     "a moving-average window must hold at least one element"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowError {
    /// A window of zero elements was requested. A moving average needs at least one element.
    Zero,
    /// The window is larger than [`MAX_WINDOW`], the largest window for which
    /// the crate's exact sums are proven not to overflow.
    TooLarge {
        /// The window that was asked for.
        requested: usize,
        /// The largest window accepted.
        max: usize,
    },
    /// The allocator could not provide the memory the window needs.
    Alloc {
        /// The window that was asked for.
        requested: usize,
        /// How many bytes the structure needed: the window's storage (a whole shard for
        /// [`ShardedAverage`](crate::ShardedAverage)), not necessarily the one request that failed.
        bytes: usize,
    },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::Zero => {
                f.write_str("a moving-average window must hold at least one element")
            }
            WindowError::TooLarge { requested, max } => {
                write!(
                    f,
                    "window of {requested} elements exceeds the maximum of {max}"
                )
            }
            WindowError::Alloc { requested, bytes } => write!(
                f,
                "could not allocate {bytes} bytes for a window of {requested} elements"
            ),
        }
    }
}

impl std::error::Error for WindowError {}

/// Why an add to a [`ShardedAverage`](crate::ShardedAverage) could not be made: it needed
/// memory (a shard for the calling thread, or a block for the shard's elements) that the
/// allocator could not provide. Nothing was added, and the average is as it was.
///
/// [`ShardedAverage::try_push`](crate::ShardedAverage::try_push) returns it;
/// [`push`](crate::SharedMovingAverage::push) panics with it. It converts into
/// [`WindowError::Alloc`], so `?` works in functions that also create averages.
///
/// # Examples
///
/// ```
/// use mavg::{ShardedAverage, WindowError};
///
/// fn fill(values: &[f64]) -> Result<ShardedAverage<f64>, WindowError> {
///     let m = ShardedAverage::new(values.len().max(1))?;
///     for &x in values {
///         m.try_push(x)?; // an AllocError becomes WindowError::Alloc
///     }
///     Ok(m)
/// }
/// assert_eq!(fill(&[1.0, 2.0])?.average(), Some(1.5));
/// # Ok::<(), WindowError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocError {
    window: usize,
    bytes: usize,
}

impl AllocError {
    pub(crate) fn new(window: usize, bytes: usize) -> Self {
        AllocError { window, bytes }
    }

    /// How many bytes the add needed: a whole shard, which is what the allocator was asked
    /// for (or the block within it).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{AllocError, ShardedAverage};
    ///
    /// fn push_or_log(m: &ShardedAverage<u32>, x: u32) {
    ///     if let Err(e) = m.try_push(x) {
    ///         eprintln!("dropped {x}: {} bytes not available", e.bytes());
    ///     }
    /// }
    /// # push_or_log(&ShardedAverage::new(4).unwrap(), 1);
    /// # let _: Option<AllocError> = None;
    /// ```
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The window of the average the add was for.
    ///
    /// # Examples
    ///
    /// ```
    /// fn describe(e: &mavg::AllocError) -> String {
    ///     format!("an average over {} elements could not grow", e.window())
    /// }
    /// # let _ = describe;
    /// ```
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not allocate {} bytes to add to a moving average of window {}",
            self.bytes, self.window
        )
    }
}

impl std::error::Error for AllocError {}

impl From<AllocError> for WindowError {
    fn from(e: AllocError) -> Self {
        WindowError::Alloc {
            requested: e.window,
            bytes: e.bytes,
        }
    }
}

/// Checks a requested window against the limits every implementation shares.
pub(crate) fn check_window(window: usize) -> Result<(), WindowError> {
    if window == 0 {
        Err(WindowError::Zero)
    } else if window > MAX_WINDOW {
        Err(WindowError::TooLarge {
            requested: window,
            max: MAX_WINDOW,
        })
    } else {
        Ok(())
    }
}

/// Why words could not be read back as the state of an [`ExactSum`](crate::ExactSum).
///
/// # Examples
///
/// ```
/// use mavg::{ExactSum, StateError};
///
/// assert_eq!(ExactSum::<i32>::from_state(&[1, 0]).unwrap_err(), StateError::NotCanonical);
/// assert_eq!(
///     ExactSum::<i32>::from_state(&[1, 2, 3]).unwrap_err(),
///     StateError::TooLong { max: 2, found: 3 }
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// More words than the state of a sum of this type can have.
    TooLong {
        /// [`ExactSum::MAX_STATE_LEN`](crate::ExactSum::MAX_STATE_LEN) for the type.
        max: usize,
        /// The number of words given.
        found: usize,
    },
    /// The words are not a state that [`ExactSum::write_state`](crate::ExactSum::write_state)
    /// writes: a digit out of range, a redundant word, or a value the type cannot sum.
    NotCanonical,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::TooLong { max, found } => write!(
                f,
                "an exact-sum state has at most {max} words for this type, not {found}"
            ),
            StateError::NotCanonical => {
                f.write_str("the words are not an exact-sum state written by this crate")
            }
        }
    }
}

impl std::error::Error for StateError {}
