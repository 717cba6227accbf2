//! The planted bugs: every synchronization the sharded average relies on that a build can
//! weaken, so that the loom models can show they catch its absence.
//!
//! Building with `--cfg mavg_planted_bug="NAME"` switches one of the constants below; the code
//! reads only these constants, never the `cfg` itself. In a normal build each is the correct
//! value, a constant the compiler folds away. `loom-tests/run` builds each bug and requires the
//! model named here to fail; `notes/verification.md` (*Planted bugs*) has what each run shows.
//! The names are also listed, for `check-cfg`, in `[lints.rust]` of `Cargo.toml` and
//! `loom-tests/Cargo.toml`.

use std::sync::atomic::Ordering::{self, Relaxed, Release, SeqCst};

/// The ordering of the store of the even version that publishes an element: Release.
/// `relaxed_publish` makes it Relaxed (caught by `sharded::reader_during_adds_f64`).
pub(super) const PUBLISH: Ordering = if cfg!(mavg_planted_bug = "relaxed_publish") {
    Relaxed
} else {
    Release
};

/// The ordering of a ticket draw in the strict order. Release, with Acquire for
/// [`TICKET_LOAD`], is what reads need, and Relaxed is not enough; both are SeqCst because loom
/// explores hundreds of times fewer executions with them, at no cost on x86 (design note,
/// *Orderings of the ticket counter*). `relaxed_tickets` makes both Relaxed (caught by
/// `sharded::reader_during_block_reuse`).
pub(super) const TICKET_DRAW: Ordering = if cfg!(mavg_planted_bug = "relaxed_tickets") {
    Relaxed
} else {
    SeqCst
};

/// The ordering of a reader's load of the strict order's ticket counter: SeqCst, as
/// [`TICKET_DRAW`] says; `relaxed_tickets` makes it Relaxed.
pub(super) const TICKET_LOAD: Ordering = if cfg!(mavg_planted_bug = "relaxed_tickets") {
    Relaxed
} else {
    SeqCst
};

/// Whether exact readers check that the blocks they read were not reused. `no_retire_check`
/// removes the check (caught by `sharded::reader_during_block_retirement` and
/// `sharded::reader_during_block_reuse`).
pub(super) const CHECK_RETIRED: bool = !cfg!(mavg_planted_bug = "no_retire_check");

/// Whether the owning thread checks that the blocks it read while evicting were not stolen.
/// `no_owner_check` removes the check (caught by
/// `sharded::owner_resumes_while_its_blocks_are_stolen`).
pub(super) const CHECK_OWNER: bool = !cfg!(mavg_planted_bug = "no_owner_check");

/// Whether adds issue the Release fence between taking (or retiring) blocks and writing them.
/// `no_take_fence` removes it (caught by `sharded::reader_during_block_reuse`).
pub(super) const TAKE_FENCE: bool = !cfg!(mavg_planted_bug = "no_take_fence");

/// Whether fast readers check that no add ran during their read (the sequence lock's second
/// load of the version). `no_summary_check` removes the check (caught by
/// `sharded::fast_read_during_block_retirement`).
pub(super) const CHECK_SUMMARY: bool = !cfg!(mavg_planted_bug = "no_summary_check");

/// Whether fast readers check that no block they read was retired (stolen) during their read:
/// a steal does not change the version. `no_fast_retire_check` removes the check (caught by
/// `sharded::fast_read_during_steal`).
pub(super) const CHECK_FAST_RETIRED: bool = !cfg!(mavg_planted_bug = "no_fast_retire_check");

/// Whether an add of the relaxed order gives up a batch drawn before the last ordering point
/// (the floor). `stale_batch` ignores the floor (caught by
/// `relaxed::ordering_points_retire_a_stale_batch`).
pub(super) const CHECK_FLOOR: bool = !cfg!(mavg_planted_bug = "stale_batch");

/// Whether a thread's first add (claiming a shard) is an ordering point of the relaxed order.
/// `first_add_unordered` skips it (caught by `relaxed::first_add_orders_later_adds`).
pub(super) const FIRST_ADD_ORDERS: bool = !cfg!(mavg_planted_bug = "first_add_unordered");

/// Whether a thread's exit (its lease releasing the shard) is an ordering point of the relaxed
/// order. `release_unordered` skips it (caught by `exit::thread_exit_orders_later_adds`, a std
/// test: loom cannot show a thread's exit).
pub(super) const RELEASE_ORDERS: bool = !cfg!(mavg_planted_bug = "release_unordered");
