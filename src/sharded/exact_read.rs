//! The exact read of one shard: a view of its published elements, searched by ticket and summed
//! by prefix sums, validated when the read ends.
//!
//! A view never waits for the writer: it reads whatever the blocks hold, then checks, after an
//! Acquire fence, that no block it read was retired meanwhile; if one was, the read starts
//! over. The design note ([`crate::design`], *Read: the exact path* and *Why the read is
//! consistent: retirement*) has the argument.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::cursor::Cursor;
use super::planted;
use super::pool::Pool;
use super::shard::Shard;
use crate::limbs::{LimbRange, LimbSum};
use crate::sample::Sample;
use crate::sync::fence;

/// The shard was changed while being read, so that the read may have missed or misread
/// elements: the read must start over.
#[derive(Debug)]
pub(crate) struct StartOver;

/// A reader's view of one shard: elements `oldest .. published`, validated when the read
/// ends.
pub(crate) struct View<'a, T: Sample> {
    cursor: Cursor<'a, T>,
    /// Elements published when the read began.
    pub(crate) published: u64,
    /// The oldest element not retired when the read began.
    oldest: u64,
}

impl<T: Sample> View<'_, T> {
    /// The ticket (stamp) of element `seq`, below `published`.
    pub(crate) fn ticket(&self, seq: u64) -> u64 {
        debug_assert!(seq < self.published);
        self.cursor.ticket(seq)
    }

    /// The value of element `seq`, below `published`.
    pub(crate) fn value(&self, seq: u64) -> T {
        debug_assert!(seq < self.published);
        self.cursor.value(seq)
    }

    /// The range of elements, searched among those not retired, whose tickets lie in
    /// `[from, to)`; `StartOver` if retired elements could lie in it too.
    pub(crate) fn range(&self, from: u64, to: u64) -> Result<(u64, u64), StartOver> {
        let start = self.oldest;
        let lo = self.partition(start, self.published, from);
        let hi = self.partition(lo, self.published, to);
        if lo == start && start > 0 {
            // Every searched element is at or past `from`, so retired ones may be too. A
            // block is retired only once the element after it, `start`, has a ticket below
            // `to' - N` for a ticket counter `to'` loaded before the retirement (by the writer's
            // add or the steal). Our `to` is older than that, and the retry's load of the
            // counter is at least `to'` (the Acquire load of `retired_below` orders it), so
            // the retry finds `start` out of its window: one retry per retirement seen.
            return Err(StartOver);
        }
        Ok((lo, hi))
    }

    /// The first seq in `[lo, hi)` whose ticket is at least `ticket` (tickets increase with
    /// seq), or `hi`.
    pub(crate) fn partition(&self, mut lo: u64, mut hi: u64, ticket: u64) -> u64 {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.ticket(mid) < ticket {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Whether every block read through this view still held this shard's elements when the
    /// read ended.
    pub(crate) fn validate(&self) -> Result<(), StartOver> {
        // Pairs with the Release fence in `Shard::push` (and in `Shard::new`): if a load through
        // the view saw a block's next use, the load below sees that the block was retired.
        fence(Acquire);
        let retired = self.cursor.shard().seqlock.retired_below.load(Relaxed);
        if self.cursor.lowest_block() >= retired || !planted::CHECK_RETIRED {
            Ok(())
        } else {
            Err(StartOver)
        }
    }

    /// The oldest element not retired when the view was opened.
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Adds (or subtracts) the exact sum of this shard's elements `0 .. k` to `limbs`.
    pub(crate) fn add_prefix(&self, k: u64, limbs: &mut T::Limbs, negative: bool) {
        let shift = self.cursor.shard().geometry.shift;
        let block = self.cursor.block(k >> shift);
        let out = limbs.as_mut();
        for (limb, word) in out.iter_mut().zip(block.checkpoint) {
            let w = word.load(Relaxed) as i64;
            *limb = if negative {
                limb.wrapping_sub(w)
            } else {
                limb.wrapping_add(w)
            };
        }
        let first = (k >> shift) << shift;
        for slot in &block.slots[..(k - first) as usize] {
            let v = T::from_bits(slot.value.load(Relaxed));
            if negative {
                limbs.remove(v);
            } else {
                let _: LimbRange = limbs.add(v);
            }
        }
    }
}

impl<T: Sample> Shard<T> {
    /// Runs `f` on a consistent view of the shard, or reports that the shard moved on while
    /// `f` read it.
    pub(crate) fn read<R>(
        &self,
        pool: &Pool,
        f: impl FnOnce(&View<'_, T>) -> R,
    ) -> Result<R, StartOver> {
        let view = self.open(pool);
        let result = f(&view);
        view.validate().map(|()| result)
    }

    /// Starts a read of the shard: the view is consistent if [`View::validate`] says so once
    /// the reader is done with it.
    pub(crate) fn open<'a>(&'a self, pool: &'a Pool) -> View<'a, T> {
        let seqlock = &*self.seqlock;
        // Pairs with the Release store in `Shard::push`: elements below `published` are fully
        // written.
        let published = seqlock.version.load(Acquire) / 2;
        // Acquire pairs with the compare-exchange that retired the block below: if `range`
        // finds a retired element could be in the window, the retry's load of the ticket
        // counter is at least the one the retirement was decided on.
        let retired = seqlock.retired_below.load(Acquire);
        View {
            cursor: Cursor::new(self, pool),
            published,
            oldest: (retired << self.geometry.shift).min(published),
        }
    }
}
