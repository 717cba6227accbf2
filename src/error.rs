use std::fmt;

/// Why a moving average could not be created, or a thread's shard could not be allocated.
///
/// Every constructor in the crate returns this instead of panicking or aborting, and a failed
/// construction allocates nothing that outlives the call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowError {
    /// A window of zero elements was requested. A moving average needs at least one element.
    Zero,
    /// The window is larger than [`MAX_WINDOW`](crate::MAX_WINDOW), the largest window for which
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

/// Checks a requested window against the limits every implementation shares.
pub(crate) fn check_window(window: usize) -> Result<(), WindowError> {
    if window == 0 {
        Err(WindowError::Zero)
    } else if window > crate::MAX_WINDOW {
        Err(WindowError::TooLarge {
            requested: window,
            max: crate::MAX_WINDOW,
        })
    } else {
        Ok(())
    }
}
