//! The relaxed order's clock: its ticket counter, and the batches of tickets a thread draws at
//! once to stamp its next adds.
//!
//! An add touches shared memory only to load two words written rarely, the counter and the
//! *floor* that ordering points raise; it draws a new batch (one `fetch_add`) when its batch is
//! used up, older than an ordering point, or more than the slack behind the counter. Tickets
//! given up leave holes in the counter, so reads find the window by counting elements
//! (`select.rs`). The mechanism, the batch sizes, the contract and its proof are in the design
//! note ([`crate::design`], *The relaxed order*). (The strict order's counter is a plain
//! `fetch_add(1)` per add, in `ShardedAverage` itself.)

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::planted;
use crate::sync::AtomicU64;

/// The words every add loads and rarely writes, on one cache line of their own.
pub(crate) struct Clock {
    /// The next ticket to hand out: every ticket drawn is below it.
    pub(crate) next_ticket: AtomicU64,
    /// Tickets below this are never used again: raised to the counter at ordering points.
    floor: AtomicU64,
    /// Elements with stamps below this have left the window for good (a lower bound, raised
    /// by relaxed reads; see `select.rs`). Unused in the strict order.
    out_below: AtomicU64,
    /// The number of shards linked: sizes the batches.
    shards: AtomicU64,
    /// The slack `D`, at least 1.
    slack: u64,
}

/// A thread's current batch of tickets; part of its shard's writer state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batch {
    /// The next ticket to use.
    next: u64,
    /// The end of the batch (exclusive).
    end: u64,
    /// The size of the batch, doubled each time one is used up.
    size: u64,
}

impl Batch {
    /// No batch: the first add draws one.
    pub(crate) const NONE: Batch = Batch {
        next: 0,
        end: 0,
        size: 0,
    };
}

impl Clock {
    pub(crate) fn new(slack: u64) -> Self {
        debug_assert!(
            slack > 0,
            "a slack of 0 is the strict order, which has no clock"
        );
        Clock {
            next_ticket: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            out_below: AtomicU64::new(0),
            shards: AtomicU64::new(0),
            slack,
        }
    }

    pub(crate) fn slack(&self) -> u64 {
        self.slack
    }

    /// Counts a shard linked to the moving average.
    pub(crate) fn shard_linked(&self) {
        // Relaxed: sizes batches, any recent value will do.
        self.shards.fetch_add(1, Relaxed);
    }

    /// The largest batch of tickets a thread draws: `D / (2 S)` for `S` shards, so that `S`
    /// threads adding at similar rates each use theirs up before it expires.
    fn batch_limit(&self) -> u64 {
        let shards = self.shards.load(Relaxed).max(1);
        (self.slack / (2 * shards)).max(1)
    }

    /// A stamp for one add, from the thread's `batch`, drawing a new batch when the current one
    /// is used up, expired, or older than an ordering point.
    #[inline(always)]
    pub(crate) fn stamp(&self, batch: &mut Batch) -> u64 {
        // Relaxed: ordering points need only coherence. An add that happens after an ordering
        // point loads a floor at least as high as the one it stored (write-read coherence), and
        // a `fetch_add` that happens after the ordering point's load of the counter returns at
        // least the value that load saw (design note, *The relaxed order*).
        let floor = self.floor.load(Relaxed);
        let now = self.next_ticket.load(Relaxed);
        let ordered = batch.next >= floor || !planted::CHECK_FLOOR;
        if batch.next < batch.end && ordered && batch.next.saturating_add(self.slack) >= now {
            let stamp = batch.next;
            batch.next += 1;
            return stamp;
        }
        self.draw(batch)
    }

    #[cold]
    #[inline(never)]
    fn draw(&self, batch: &mut Batch) -> u64 {
        // A batch used up earns one twice its size; one given up early is followed by one the
        // size of what was used of it (a power of two), so that tickets given up are at most
        // twice those used of the batch before (design note).
        let used = batch.size - (batch.end - batch.next);
        let size = if batch.next == batch.end {
            used * 2
        } else {
            used.next_power_of_two()
        }
        .clamp(1, self.batch_limit());
        let base = self.next_ticket.fetch_add(size, Relaxed);
        *batch = Batch {
            next: base + 1,
            end: base + size,
            size,
        };
        base
    }

    /// An ordering point: no batch drawn before it is used after it. Returns the ticket
    /// counter it read: every element added before the ordering point has a stamp below it.
    pub(crate) fn order_point(&self) -> u64 {
        let to = self.next_ticket.load(Relaxed);
        // The load first: without adds since the last ordering point, no write.
        if self.floor.load(Relaxed) < to {
            self.floor.fetch_max(to, Relaxed);
        }
        to
    }

    /// The stamp below which elements have left the window for good.
    #[inline(always)]
    pub(crate) fn out_below(&self) -> u64 {
        // Acquire pairs with the Release in `raise_out_below`: whoever retires blocks on the
        // strength of this bound orders the read that found it before the retirement, so a
        // reader that sees the retirement sees at least the elements that read saw
        // (`select.rs`).
        self.out_below.load(Acquire)
    }

    /// Raises the bound to `stamp`, the start of the window a read found.
    pub(crate) fn raise_out_below(&self, stamp: u64) {
        if self.out_below.load(Relaxed) < stamp {
            // Release pairs with the Acquire in `out_below`.
            self.out_below.fetch_max(stamp, Release);
        }
    }
}
