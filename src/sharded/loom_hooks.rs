//! Entry points for the loom models (`loom-tests/`), which must reach parts of a read or of an
//! add that the API does not expose on their own. Not part of the API: they exist only in
//! builds with `--cfg loom`, which also swap the crate's atomics for loom's, and are hidden
//! from the documentation.
//!
//! * [`exact_average`](ShardedAverage::exact_average) and
//!   [`fast_average`](ShardedAverage::fast_average): one read path each. `average` takes the
//!   fast read and falls back to the exact one, so a model of it would check the exact read
//!   only where the fast one gives up, and the fast read's extra loads would multiply the
//!   exact read's executions.
//! * [`steal_from_the_start`](ShardedAverage::steal_from_the_start): stealing starts only once
//!   the pool has handed out a window's worth of fresh blocks, more adds than a model can
//!   afford.

use std::sync::atomic::Ordering::Relaxed;

use super::ShardedAverage;
use crate::sample::Sample;

impl<T: Sample> ShardedAverage<T> {
    /// The exact read of the average alone.
    #[doc(hidden)]
    pub fn exact_average(&self) -> Option<f64> {
        self.exact_mean()
    }

    /// The fast read of the average alone: `None` if it gave up, `Some(None)` for an empty
    /// window.
    #[doc(hidden)]
    pub fn fast_average(&self) -> Option<Option<f64>> {
        self.fast_mean()
    }

    /// Lets shards steal blocks from the first block on.
    #[doc(hidden)]
    pub fn steal_from_the_start(&self) {
        // Relaxed, as every access to the threshold: a heuristic; any value is safe.
        self.steal_above.store(0, Relaxed);
    }
}
