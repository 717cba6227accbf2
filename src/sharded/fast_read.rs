//! The fast read of one shard: the summary its writer published, adjusted by a few elements at
//! either end, read under the sequence lock.
//!
//! A [`Snapshot`] loads the version (Acquire), the summary and the retirement mark, walks at
//! most [`MAX_SUMMARY_STEPS`] elements, and is valid only if, after an Acquire fence, the
//! version and the mark are unchanged. The strict order adjusts one shard at a time
//! ([`Shard::summary`]); the relaxed order trims the snapshots of every shard together
//! (`ShardedAverage::summarize_relaxed`). The design note ([`crate::design`], *Read: the fast
//! path*) has why it is consistent.

use std::sync::atomic::Ordering::{Acquire, Relaxed};

use super::cursor::Cursor;
use super::planted;
use super::pool::Pool;
use super::shard::Shard;
use crate::running::{LinearSum, Summary};
use crate::sample::Sample;
use crate::sync::fence;

/// Most elements a reader adds to or removes from a shard's summary before it gives up on the
/// summary and reads the shard the exact way.
const MAX_SUMMARY_STEPS: u32 = 64;

impl<T: Sample> Shard<T> {
    /// The published summary's words, loaded Relaxed: the caller validates them against
    /// `version` (a sequence-lock read).
    #[inline]
    fn published_summary(&self) -> T::Summary {
        let mut words = [0; 3];
        for (w, word) in words
            .iter_mut()
            .zip(&self.seqlock.summary[..T::Summary::WORDS])
        {
            *w = word.load(Relaxed);
        }
        <T::Summary as Summary<T>>::from_words(words)
    }

    /// The summary of this shard's elements with tickets in `[from, to)`, and their number,
    /// from the published summary adjusted by at most [`MAX_SUMMARY_STEPS`] elements at either
    /// end; `None` if an add ran during the read or the adjustment would be longer.
    #[inline]
    pub(crate) fn summary(&self, pool: &Pool, from: u64, to: u64) -> Option<(T::Summary, u64)> {
        let mut snapshot = Snapshot::open(self, pool)?;
        let (start, end) = (snapshot.lo, snapshot.hi);
        if end > 0 && snapshot.cursor.ticket(end - 1) < from {
            // The shard's thread stopped adding while others went on: nothing it holds is in
            // the window. (Its newest element's block is never retired: a steal leaves the two
            // newest blocks, the writer the blocks from the one before `start`'s.)
            let empty = <T::Summary as Summary<T>>::EMPTY;
            return snapshot.validate().then_some((empty, 0));
        }
        if snapshot.oldest > start {
            // Blocks the summary covers were stolen (or `retired_below` is from a later add).
            return None;
        }
        snapshot.summary = self.published_summary();
        // Elements at the end that were added after the read loaded `to`.
        snapshot.drop_newer(to)?;
        let hi = snapshot.hi;
        if snapshot.lo < hi && snapshot.cursor.ticket(snapshot.lo) < from {
            if snapshot.cursor.ticket(hi - 1) < from {
                // The shard's thread stopped adding while others went on: nothing it holds is
                // in the window.
                snapshot.summary = snapshot.summary.cleared();
                snapshot.lo = hi;
            }
            // Elements that left the window through other shards' adds.
            while snapshot.lo < hi && snapshot.cursor.ticket(snapshot.lo) < from {
                snapshot.drop_oldest()?;
            }
        } else if snapshot.lo == hi && hi < end {
            // Everything summarized is newer than `to`; older elements may lie in the window.
            return None;
        } else {
            // Elements the writer dropped that are still in this read's window (`to` was loaded
            // before the writer's last add drew its ticket). Blocks below `oldest` may have been
            // reused: finding the window's start there means giving up.
            while snapshot.lo > 0 && snapshot.cursor.ticket(snapshot.lo - 1) >= from {
                if snapshot.lo == snapshot.oldest {
                    return None;
                }
                snapshot.add_older()?;
            }
        }
        let found = (snapshot.summary, snapshot.hi - snapshot.lo);
        snapshot.validate().then_some(found)
    }

    /// The published summary of this shard, trimmed to the elements with stamps below `to`,
    /// for the fast read of the relaxed order (see [`Snapshot`]); `None` if an add is running
    /// or the trim would walk more than [`MAX_SUMMARY_STEPS`] elements.
    #[inline]
    pub(crate) fn snapshot<'a>(&'a self, pool: &'a Pool, to: u64) -> Option<Snapshot<'a, T>> {
        let mut snapshot = Snapshot::open(self, pool)?;
        if snapshot.oldest > snapshot.lo {
            // Blocks the summary covers were stolen.
            return None;
        }
        snapshot.summary = self.published_summary();
        snapshot.drop_newer(to)?;
        Some(snapshot)
    }
}

/// One shard's published summary of its elements `lo .. hi`, which a fast read adjusts to the
/// window; valid only if [`validate`] says so after the read.
///
/// [`validate`]: Self::validate
pub(crate) struct Snapshot<'a, T: Sample> {
    cursor: Cursor<'a, T>,
    /// The version and retirement mark loaded first, checked again by `validate`.
    version: u64,
    retired: u64,
    /// The first element not retired.
    oldest: u64,
    /// The elements summarized.
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    pub(crate) summary: T::Summary,
    /// Elements this snapshot may still add to or remove from the summary.
    budget: u32,
}

impl<'a, T: Sample> Snapshot<'a, T> {
    /// Starts a fast read of `shard`: the version, `start` and the retirement mark, with the
    /// summary not loaded yet (empty) over elements `start .. version / 2`. `None` if an add is
    /// running.
    #[inline(always)]
    fn open(shard: &'a Shard<T>, pool: &'a Pool) -> Option<Self> {
        let seqlock = &*shard.seqlock;
        // Pairs with the Release store that ends an add (`Shard::push`): the summary, `start`,
        // the table and the slots of the elements below `end` are those that add wrote (or
        // later ones, which `validate` detects).
        let version = seqlock.version.load(Acquire);
        if version % 2 == 1 {
            return None;
        }
        let end = version / 2;
        let start = seqlock.start.load(Relaxed);
        let retired = seqlock.retired_below.load(Relaxed);
        if start > end {
            // Written by a later add: the validation at the end would fail.
            return None;
        }
        Some(Snapshot {
            cursor: Cursor::new(shard, pool),
            version,
            retired,
            oldest: retired << shard.geometry.shift,
            lo: start,
            hi: end,
            summary: <T::Summary as Summary<T>>::EMPTY,
            budget: MAX_SUMMARY_STEPS,
        })
    }

    /// Spends one step of the walking budget; `None` if it is used up.
    #[inline]
    fn step(&mut self) -> Option<()> {
        self.budget = self.budget.checked_sub(1)?;
        Some(())
    }

    /// Removes from the summary the newest elements while their stamps are at or above `to`
    /// (added after the read loaded `to`); `None` past the walking budget.
    #[inline(always)]
    fn drop_newer(&mut self, to: u64) -> Option<()> {
        let start = self.lo;
        while self.hi > start && self.cursor.ticket(self.hi - 1) >= to {
            self.step()?;
            self.hi -= 1;
            let value = self.cursor.value(self.hi);
            self.summary.remove(value);
        }
        Some(())
    }

    /// Adds element `lo - 1` to the summary (`lo > 0`); `None` past the walking budget.
    #[inline]
    fn add_older(&mut self) -> Option<()> {
        self.step()?;
        self.lo -= 1;
        let value = self.cursor.value(self.lo);
        self.summary.add(value);
        Some(())
    }

    /// The stamp of element `lo` (`lo < hi`).
    #[inline]
    pub(crate) fn oldest_stamp(&mut self) -> u64 {
        self.cursor.ticket(self.lo)
    }

    /// Removes element `lo` from the summary; `None` past the walking budget.
    #[inline]
    pub(crate) fn drop_oldest(&mut self) -> Option<()> {
        self.step()?;
        let value = self.cursor.value(self.lo);
        self.summary.remove(value);
        self.lo += 1;
        Some(())
    }

    /// Whether every element of the shard below `lo` has a stamp below `stamp`; `None` if the
    /// one below `lo` was retired, so that it cannot be told.
    #[inline]
    pub(crate) fn older_below(&mut self, stamp: u64) -> Option<bool> {
        if self.lo == 0 {
            return Some(true);
        }
        if self.lo == self.oldest {
            return None;
        }
        Some(self.cursor.ticket(self.lo - 1) < stamp)
    }

    /// Whether no add ran on the shard and no block of it was retired since the snapshot
    /// began: then everything it read is what the adds up to `version` wrote.
    #[inline]
    pub(crate) fn validate(&self) -> bool {
        let seqlock = &*self.cursor.shard().seqlock;
        // Pairs with the Release fence in `Shard::push`: if any load of the read saw a store of
        // a later add, the load below sees that add's odd version (or a later one); if it saw
        // a store of a block's next user, the second load sees the block retired.
        fence(Acquire);
        seqlock.version.load(Relaxed) == self.version
            && (seqlock.retired_below.load(Relaxed) == self.retired || !planted::CHECK_FAST_RETIRED)
            || !planted::CHECK_SUMMARY
    }
}
