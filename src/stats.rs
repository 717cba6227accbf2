//! Counts of the slow paths that reads of float sums take, per thread, for the tests that
//! report how often reads left the fixed-point path.

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
