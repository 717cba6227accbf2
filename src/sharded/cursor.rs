//! A reader's cursor over one shard: its elements by seq, looked up through the shard's table.
//!
//! Both reads use it, the exact read (`exact_read.rs`) and the fast read (`fast_read.rs`). It
//! loads without ordering, and remembers the lowest block it looked up: whatever it returns is
//! valid only if the read's validation says no block it read was reused (each read validates
//! in its own way).

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;

use super::pool::{Block, Pool, Slot};
use super::shard::Shard;
use crate::sample::Sample;

/// Reads a shard's slots by seq, remembering the last block looked up: walks touch one or two
/// blocks, and the table and pool lookups cost more than the slot load.
pub(super) struct Cursor<'a, T: Sample> {
    shard: &'a Shard<T>,
    pool: &'a Pool,
    /// The shard's block number and slots of the last lookup (`u64::MAX`: none yet).
    block: Cell<u64>,
    slots: Cell<&'a [Slot]>,
    /// The lowest block looked up (`u64::MAX`: none yet), which the exact read checks against
    /// `retired_below` when it ends.
    lowest_block: Cell<u64>,
}

impl<'a, T: Sample> Cursor<'a, T> {
    #[inline]
    pub(super) fn new(shard: &'a Shard<T>, pool: &'a Pool) -> Self {
        Cursor {
            shard,
            pool,
            block: Cell::new(u64::MAX),
            slots: Cell::new(&[]),
            lowest_block: Cell::new(u64::MAX),
        }
    }

    /// The shard read.
    #[inline]
    pub(super) fn shard(&self) -> &'a Shard<T> {
        self.shard
    }

    /// The ticket (stamp) of element `seq`.
    #[inline(always)]
    pub(super) fn ticket(&self, seq: u64) -> u64 {
        self.slot(seq).ticket.load(Relaxed)
    }

    /// The value of element `seq`.
    #[inline(always)]
    pub(super) fn value(&self, seq: u64) -> T {
        T::from_bits(self.slot(seq).value.load(Relaxed))
    }

    /// The slot of element `seq`, in the block the table named for it when the cursor last
    /// looked that block up.
    #[inline(always)]
    fn slot(&self, seq: u64) -> &'a Slot {
        let shift = self.shard.geometry.shift;
        let j = seq >> shift;
        if j != self.block.get() {
            self.slots.set(self.shard.slots(self.pool, j));
            self.block.set(j);
            self.lowest_block.set(self.lowest_block.get().min(j));
        }
        &self.slots.get()[(seq & ((1 << shift) - 1)) as usize]
    }

    /// The shard's block `j` with its checkpoint, as the table says now, recorded as read.
    pub(super) fn block(&self, j: u64) -> Block<'a> {
        self.lowest_block.set(self.lowest_block.get().min(j));
        // Table entries only ever hold blocks taken from the pool, whose segments exist.
        self.shard
            .block(self.pool, j)
            .expect("table entries name taken blocks")
    }

    /// The lowest block read so far (`u64::MAX`: none).
    pub(super) fn lowest_block(&self) -> u64 {
        self.lowest_block.get()
    }
}
