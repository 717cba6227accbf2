//! The add path: what the thread holding a shard's claim does to append an element, evict the
//! elements that left the window and give back the blocks they emptied.
//!
//! Only that thread runs this code on a given shard, so its state ([`WriterState`]) is plain
//! memory; everything readers see goes through atomics, published by the sequence lock of
//! [`SeqLock`](super::shard::SeqLock). The steps and their orderings are in the design note
//! ([`crate::design`], *Add* and *Orderings*).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use super::clock::Batch;
use super::planted;
use super::pool::{Exhausted, Pool, Slot};
use super::shard::Shard;
use crate::limbs::{LimbSum, Limbs};
use crate::running::{LinearSum, Summary};
use crate::sample::Sample;
use crate::sync::{fence, AtomicU64};

/// One add's element, and what the moving average lends the add: the pool the shard was
/// created with, the grid of the shards' summaries (floats, `fixed.rs`), how to take a block
/// and how to draw the element's ticket.
pub(crate) struct Add<'a, T, Take, Draw> {
    pub(crate) pool: &'a Pool,
    pub(crate) grid: &'a AtomicU64,
    pub(crate) value: T,
    /// Takes a block; called, before `draw`, if the add will need one.
    pub(crate) take: Take,
    /// Returns the element's global ticket and the ticket below which elements have left the
    /// window of every read that sees this add.
    pub(crate) draw: Draw,
}

/// State only the writing thread touches.
pub(super) struct WriterState<T: Sample> {
    /// Exact sum of every element this shard ever held (wrapping limbs).
    sum: T::Limbs,
    /// Summary of elements `start .. count`: the ones that may still be in the window.
    summary: T::Summary,
    /// The oldest element the summary covers.
    start: u64,
    /// Elements added so far (`version / 2` outside an add).
    count: u64,
    /// The slots of the block holding element `count`'s slot.
    current: SlotsPtr,
    /// The shard's block `start / B` and its slots, as last looked up (`u64::MAX`: none).
    start_block: (u64, SlotsPtr),
    /// A block taken ahead for the next block, so that an add never fails after drawing its
    /// ticket.
    spare: Option<u64>,
    /// The shard's blocks below this one were given back (the value of `retired_below`).
    retired: u64,
    /// The tickets this thread stamps its next adds with, in the relaxed order.
    batch: Batch,
}

impl<T: Sample> WriterState<T> {
    /// The state of an empty shard whose first block has `slots`.
    pub(super) fn new(slots: &[Slot]) -> Self {
        WriterState {
            sum: T::Limbs::ZERO,
            summary: <T::Summary as Summary<T>>::EMPTY,
            start: 0,
            count: 0,
            current: SlotsPtr::of(slots),
            start_block: (u64::MAX, SlotsPtr(std::ptr::null())),
            spare: None,
            retired: 0,
            batch: Batch::NONE,
        }
    }
}

/// The first slot of a block, kept by the writer so that an add does not look its blocks up in
/// the table and the pool each time.
///
/// It points into a pool segment, which lives until the pool is dropped; the pool outlives the
/// shards (the moving average frees its shards first), and the writer dereferences it only in
/// `push`, whose caller passes that pool. A block the writer still points to may have been
/// stolen and reused: reading it is then a stale read of atomics, which the writer's
/// validation in `evict` detects, as for a fresh lookup.
#[derive(Clone, Copy)]
struct SlotsPtr(*const Slot);

impl SlotsPtr {
    #[inline]
    fn of(slots: &[Slot]) -> Self {
        SlotsPtr(slots.as_ptr())
    }

    /// The slot at `index` (below `B`).
    ///
    /// # Safety
    ///
    /// The pool the pointer came from must be alive (see the type's documentation).
    #[inline(always)]
    unsafe fn slot<'a>(self, index: u64) -> &'a Slot {
        // SAFETY: `index < B` keeps the pointer within the block's `B` slots, in a segment the
        // caller guarantees is alive; slots are atomics, valid to share.
        unsafe { &*self.0.add(index as usize) }
    }
}

impl<T: Sample> Shard<T> {
    /// Appends `add.value`: takes a block with `add.take` if the add will need one, then
    /// calls `add.draw` for the element's global ticket and the ticket below which elements
    /// have left the window of every read that sees this add, adds the element and drops from
    /// the summary the elements that left.
    ///
    /// On error (no block could be had), `draw` was not called and nothing changed.
    ///
    /// # Safety
    ///
    /// `writer` must be this shard's writer state, borrowed by the thread that owns the shard
    /// (the caller is [`Claim::push`](super::claim::Claim::push)), and `add.pool` must be the
    /// pool the shard was created with.
    #[inline(always)]
    pub(super) unsafe fn push<Take, Draw>(
        &self,
        writer: &mut WriterState<T>,
        add: Add<'_, T, Take, Draw>,
    ) -> Result<(), Exhausted>
    where
        Take: FnOnce() -> Result<u64, Exhausted>,
        Draw: FnOnce(&mut Batch) -> (u64, u64),
    {
        let Add {
            pool,
            grid,
            value,
            take,
            draw,
        } = add;
        // `B` is a power of two: masks, not divisions, on the add path.
        let in_block = self.geometry.block() - 1;
        if (writer.count + 1) & in_block == 0 && writer.spare.is_none() {
            // This add fills the block: have the next one before drawing a ticket.
            writer.spare = Some(take()?);
        }
        if writer.summary.wants_grid(value) {
            // Before the ticket, like taking a block: the add cannot fail after it.
            writer.summary.place_grid(value, grid);
        }
        let (ticket, evict_below) = draw(&mut writer.batch);
        let seqlock = &*self.seqlock;
        // Odd: the add is writing. The fast read discards what it read if it sees this value
        // (or any store below); the exact read takes it as `count` elements published.
        // Release, not Relaxed: pairs with the Acquire load of `version` in `Shard::open`,
        // since a reader that loads this value must see the elements below `count`, and a
        // later Relaxed store would not continue the release sequence of the previous add's
        // even store (C++20 and loom drop same-thread stores from it).
        seqlock.version.store(2 * writer.count + 1, Release);
        self.evict(writer, pool, value, evict_below);
        // Orders the stores above (this add's `retired_below`, and the previous add's stores)
        // and the taking of blocks before the stores below, which may write to a block another
        // shard's readers are still reading: pairs with the Acquire fence of the readers'
        // validation (`View::validate`, `Snapshot::validate`) and of the writer's in `evict`.
        if planted::TAKE_FENCE {
            fence(Release);
        }
        // SAFETY: `pool` is the shard's pool (the caller guarantees it), alive here.
        let slot = unsafe { writer.current.slot(writer.count & in_block) };
        slot.ticket.store(ticket, Relaxed);
        slot.value.store(value.to_bits(), Relaxed);
        writer.sum.add(value);
        writer.count += 1;
        if writer.count & in_block == 0 {
            let next = writer.spare.take().expect("taken before the ticket");
            let limbs = writer.sum.as_ref();
            let block = pool.block(next).expect("a taken block exists");
            for (word, &limb) in block.checkpoint.iter().zip(limbs) {
                word.store(limb as u64, Relaxed);
            }
            let j = writer.count >> self.geometry.shift;
            // The entry's previous block, `j - R`, was retired (`retire` keeps at most `R - 1`
            // blocks).
            debug_assert!(writer.retired + self.geometry.table() as u64 > j);
            self.table[(j & self.geometry.table_mask) as usize].store(next, Relaxed);
            writer.current = SlotsPtr::of(block.slots);
        }
        seqlock.start.store(writer.start, Relaxed);
        let words = writer.summary.to_words();
        for (word, &w) in seqlock.summary.iter().zip(&words[..T::Summary::WORDS]) {
            word.store(w, Relaxed);
        }
        // Pairs with the Acquire loads of `version` that start a read (`Shard::open`,
        // `Snapshot::open`): a reader that sees the new version sees the slot, checkpoint,
        // table entry and summary written above.
        seqlock.version.store(2 * writer.count, planted::PUBLISH);
        Ok(())
    }

    /// Adds the new element to the summary and evicts the elements with tickets below
    /// `evict_below`; the first eviction and the add are one update. Retires the blocks the
    /// evictions emptied. (Only the summary: the slot and the exact sum are written after the
    /// add's Release fence.)
    ///
    /// Other shards may steal this shard's oldest blocks at any time (see [`steal`](Self::steal)),
    /// so the writer validates its own reads as readers do: it loads `retired_below`, reads,
    /// issues an Acquire fence and loads it again. If a block it read was stolen meanwhile, what
    /// it read may belong to the block's next user: it starts over from the exact sum, at the
    /// first block not stolen.
    #[inline(always)]
    fn evict(&self, writer: &mut WriterState<T>, pool: &Pool, value: T, evict_below: u64) {
        let shift = self.geometry.shift;
        let seqlock = &*self.seqlock;
        let mut resync = false;
        loop {
            // Acquire pairs with the AcqRel compare-exchange of a steal: nothing needed from the
            // stealer but the number, and the fence below does the validating.
            let retired = seqlock.retired_below.load(Acquire);
            writer.retired = writer.retired.max(retired);
            if resync || retired << shift > writer.start {
                // Blocks this shard's summary still covered were stolen: their elements had
                // left the window, and the exact sum less the checkpoint of the first block not
                // stolen is the sum of everything after them.
                writer.start = retired << shift;
                self.reseed(writer, pool);
            }
            let first_read = writer.start >> shift;
            let mut pending = Some(value);
            let in_block = self.geometry.block() - 1;
            while writer.start < writer.count {
                let j = writer.start >> shift;
                if writer.start_block.0 != j {
                    writer.start_block = (j, SlotsPtr::of(self.slots(pool, j)));
                }
                // SAFETY: `pool` is the shard's pool (the caller of `push` guarantees it).
                let slot = unsafe { writer.start_block.1.slot(writer.start & in_block) };
                // Out of the window: a stamp below `evict_below`, or (in the relaxed order,
                // where stamps are not dense) `N` published elements of this shard after it.
                if slot.ticket.load(Relaxed) >= evict_below
                    && writer.start + self.geometry.window >= writer.count
                {
                    break;
                }
                let old = T::from_bits(slot.value.load(Relaxed));
                match pending.take() {
                    Some(new) => writer.summary.replace(old, new),
                    None => writer.summary.remove(old),
                }
                writer.start += 1;
            }
            if let Some(new) = pending {
                writer.summary.add(new);
            }
            // Pairs with the Release fence of whoever wrote a stolen block after taking it: if a
            // load above saw such a write, the load below sees the steal.
            fence(Acquire);
            let retired = seqlock.retired_below.load(Relaxed);
            if retired <= first_read || !planted::CHECK_OWNER {
                break;
            }
            resync = true;
        }
        if (writer.start >> shift) > writer.retired + 1 {
            self.retire(writer, pool);
        }
    }

    /// Gives back the blocks below the one before `start`'s: every element in them has left
    /// the window. (The block before `start`'s is kept so that readers a few adds behind
    /// rarely find their window's start retired.)
    ///
    /// The shard then holds blocks `start / B - 1 ..= count / B` and at most one spare. Since
    /// the elements `start .. count` all lie in the last add's window, `count - start <= N`,
    /// so that is at most `N / B + 3` blocks, fewer than the table's `R` entries.
    #[cold]
    fn retire(&self, writer: &mut WriterState<T>, pool: &Pool) {
        let keep = (writer.start >> self.geometry.shift) - 1;
        while writer.retired < keep {
            let j = writer.retired;
            let number = self.table[(j & self.geometry.table_mask) as usize].load(Relaxed);
            // A compare-exchange, not a store: a steal may retire the same block. Whoever
            // moves the mark past `j` owns the block. AcqRel as in `steal`: Release so that
            // whoever takes the block after us orders the mark before its writes. On failure,
            // Acquire pairs with the steal's compare-exchange that moved the mark, as the load
            // at the start of `evict` does.
            match self
                .seqlock
                .retired_below
                .compare_exchange(j, j + 1, AcqRel, Acquire)
            {
                Ok(_) => {
                    writer.retired = j + 1;
                    match writer.spare {
                        None => writer.spare = Some(number),
                        Some(_) => pool.give_back(number),
                    }
                }
                Err(current) => writer.retired = current,
            }
        }
    }

    /// Sums elements `start .. count` into the summary again, after blocks it covered were
    /// stolen. (They are in the blocks from `start`'s on, which the shard holds: see `retire`.)
    #[cold]
    #[inline(never)]
    fn reseed(&self, writer: &mut WriterState<T>, pool: &Pool) {
        let shift = self.geometry.shift;
        let in_block = self.geometry.block() - 1;
        let mut summary = writer.summary.cleared();
        let mut k = writer.start;
        while k < writer.count {
            let slots = self.slots(pool, k >> shift);
            let end = writer.count.min((k | in_block) + 1);
            for slot in &slots[(k & in_block) as usize..=((end - 1) & in_block) as usize] {
                summary.add(T::from_bits(slot.value.load(Relaxed)));
            }
            k = end;
        }
        writer.summary = summary;
    }
}
