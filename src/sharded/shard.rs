//! One thread's shard: its elements in blocks from the pool, with checkpoints of its exact
//! prefix sums.
//!
//! A shard is written by exactly one thread at a time, its owner (see `lease.rs`), and read by
//! any number of readers without locks. Readers never wait for the owner; they check, after
//! reading, that nothing they read was reused, and start over otherwise.
//!
//! # What the fields encode
//!
//! The owner numbers its elements `0, 1, 2, ...` (the element's *seq*). Element `seq` lives in
//! slot `seq % B` of the shard's block `seq / B`, with the global ticket that orders it among
//! all threads' elements. The shard's block `j` is pool block `table[j % R]`, and its checkpoint
//! is the exact prefix sum of elements `0 .. j * B` of this shard (wrapping limbs, see
//! `exact.rs`). The exact sum of elements `lo .. hi` is then `prefix(hi) - prefix(lo)`, where
//! `prefix(k)` is block `k / B`'s checkpoint plus at most `B - 1` elements. A block is written
//! once while the shard holds it: its checkpoint when the shard starts it (as the previous block
//! fills), then each slot by the add of that slot's element.
//!
//! # Retirement
//!
//! Once every element of the shard's block `j` has left the window, the owner stores
//! `retired_below = j + 1` and gives the block back to the pool, from which any shard may take
//! it. Readers validate against `retired_below` after an Acquire fence, and whoever takes a
//! block issues a Release fence before writing it; the design note ([`crate::design`], *Why the
//! read is consistent: retirement*) has the case analysis.

use std::cell::Cell;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crossbeam_utils::CachePadded;

use super::clock::Batch;
use super::pool::{zeroed, Block, Exhausted, Pool, Slot};
use crate::error::WindowError;
use crate::limbs::{LimbRange, LimbSum, Limbs};
use crate::running::{LinearSum, Summary};
use crate::sample::Sample;
use crate::sync::{fence, Arc, AtomicBool, AtomicU64, UnsafeCell};

/// The ordering of the store that publishes an element. Release is required; building with
/// `--cfg mavg_planted_bug="relaxed_publish"` weakens it, so that the loom models can show
/// they catch the bug (see `notes/verification.md`).
#[cfg(not(mavg_planted_bug = "relaxed_publish"))]
const PUBLISH: std::sync::atomic::Ordering = Release;
#[cfg(mavg_planted_bug = "relaxed_publish")]
const PUBLISH: std::sync::atomic::Ordering = Relaxed;

/// Whether readers check that the blocks they read were not reused;
/// `--cfg mavg_planted_bug="no_retire_check"` removes the check, which the loom models must
/// catch.
const CHECK_RETIRED: bool = !cfg!(mavg_planted_bug = "no_retire_check");

/// Whether the owner checks that the blocks it read while evicting were not stolen;
/// `--cfg mavg_planted_bug="no_owner_check"` removes the check, which the loom models must
/// catch.
const CHECK_OWNER: bool = !cfg!(mavg_planted_bug = "no_owner_check");

/// Whether adds issue the Release fence between taking (or retiring) blocks and writing
/// them; `--cfg mavg_planted_bug="no_take_fence"` removes it, which the loom models must catch.
const TAKE_FENCE: bool = !cfg!(mavg_planted_bug = "no_take_fence");

/// Whether fast readers check that no add ran during their read; building with
/// `--cfg mavg_planted_bug="no_summary_check"` removes the check, which the loom models must
/// catch.
const CHECK_SUMMARY: bool = !cfg!(mavg_planted_bug = "no_summary_check");

/// Whether fast readers check that no block they read was retired (stolen) during their
/// read: a steal does not change the owner's `version`. `--cfg
/// mavg_planted_bug="no_fast_retire_check"` removes the check, which the loom models must catch.
const CHECK_FAST_RETIRED: bool = !cfg!(mavg_planted_bug = "no_fast_retire_check");

/// Sizes shared by all shards of one moving average.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// The window `N`.
    pub(crate) window: u64,
    /// log2 of `B`, the slots per block and elements per checkpoint.
    shift: u32,
    /// `R - 1`, for the table of `R` block numbers per shard (a power of two, at least
    /// `ceil(N / B) + 4`: the blocks a shard can hold at once, see `retire`).
    table_mask: u64,
}

impl Geometry {
    pub(crate) fn new(window: usize) -> Self {
        let window = window as u64;
        // Blocks of 64 slots (2 under loom, so models retire blocks within a few adds), smaller
        // for small windows so that a small moving average stays small.
        let most = if cfg!(loom) { 2 } else { 64 };
        let block = (window.next_power_of_two() / 4).clamp(2, most);
        let table = (window.div_ceil(block) + 4).next_power_of_two();
        Geometry {
            window,
            shift: block.trailing_zeros(),
            table_mask: table - 1,
        }
    }

    /// Slots per block.
    pub(crate) fn block(&self) -> u64 {
        1 << self.shift
    }

    /// Entries in each shard's table, which is also enough blocks for one shard holding the
    /// whole window: the size of the pool's first segment.
    pub(crate) fn table(&self) -> usize {
        self.table_mask as usize + 1
    }

    /// Heap bytes of one shard, blocks aside.
    pub(crate) fn shard_bytes<T: Sample>(&self) -> usize {
        std::mem::size_of::<CachePadded<Shard<T>>>() + self.table() * 8
    }
}

/// State only the owner touches.
struct Owner<T: Sample> {
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

/// The first slot of a block, kept by the owner so that an add does not look its blocks up in
/// the table and the pool each time.
///
/// It points into a pool segment, which lives until the pool is dropped; the pool outlives the
/// shards (the moving average frees its shards first), and the owner dereferences it only in
/// `push`, whose caller passes that pool. A block the owner still points to may have been
/// stolen and reused: reading it is then a stale read of atomics, which the owner's
/// validation in `evict` detects, as for a fresh lookup.
#[derive(Clone, Copy)]
struct SlotsPtr(*const Slot);

impl SlotsPtr {
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

/// What readers load first and last: the sequence lock, the summary it guards, and the
/// retirement mark.
struct Published {
    /// Twice the number of elements fully written, plus one while an add is writing.
    version: AtomicU64,
    /// The oldest element the summary covers; it covers `start .. version / 2`.
    start: AtomicU64,
    /// The summary's words ([`Summary::to_words`]).
    summary: [AtomicU64; 3],
    /// The shard's blocks below this one may have been reused.
    retired_below: AtomicU64,
}

/// One thread's elements, written by the thread holding its [`Claim`], read by anyone.
pub(crate) struct Shard<T: Sample> {
    /// What readers load first and last, on its own cache line: the owner writes it once per
    /// add, and readers of other shards should not share its line.
    published: CachePadded<Published>,
    /// The pool block of the shard's block `j`, at `j % R`.
    table: Box<[AtomicU64]>,
    /// The owner's private state, touched only by `push`.
    owner: UnsafeCell<Owner<T>>,
    /// Set while a thread owns the shard; shared with that thread's lease.
    pub(crate) claimed: Arc<AtomicBool>,
    /// The shard added to the list before this one; written once, before publication.
    pub(crate) next: *mut CachePadded<Shard<T>>,
    /// The moving average's sizes, copied into each shard so that reads need no other pointer.
    geometry: Geometry,
}

// SAFETY: a shard is shared through `&` between its owner and any number of readers. Readers
// and non-owners touch only atomics (`published`, `table`, `claimed`) and `geometry`, which is
// never written. `owner`, the one cell, is accessed only by `push`, which runs on the thread
// holding the shard's `Claim` (one thread at a time; a claim passes between threads through
// the Release/Acquire pair on `claimed`). The raw pointers are `next`, written before the shard
// is published and only read after, and the owner's `SlotsPtr`s into the pool, which outlives
// the shard.
unsafe impl<T: Sample> Sync for Shard<T> {}
// SAFETY: nothing in a shard belongs to a thread: it may be dropped by any thread, and its
// raw pointers point into the pool and the shard list of the moving average that owns it.
unsafe impl<T: Sample> Send for Shard<T> {}

/// The calling thread's ownership of one shard: the right to add to it. Made only by
/// [`Claim::try_new`]; dropping it releases the shard, and [`Lease`](super::lease::Lease)
/// keeps one for as long as the thread lives.
pub(crate) struct Claim<'a, T: Sample> {
    shard: &'a CachePadded<Shard<T>>,
}

impl<'a, T: Sample> Claim<'a, T> {
    /// Claims an unowned shard for the calling thread.
    pub(crate) fn try_new(shard: &'a CachePadded<Shard<T>>) -> Option<Self> {
        // Acquire pairs with the Release in `release`: the previous owner's writes to `owner`
        // happen before ours.
        let free = !shard.claimed.load(Relaxed)
            && shard
                .claimed
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok();
        // Built only on success: dropping a claim releases the shard.
        if free {
            Some(Claim { shard })
        } else {
            None
        }
    }

    /// The claimed shard.
    pub(crate) fn shard(&self) -> &'a CachePadded<Shard<T>> {
        self.shard
    }

    /// Adds an element to the claimed shard (see [`Shard::push`]).
    ///
    /// # Safety
    ///
    /// `pool` must be the pool the shard was created with.
    #[inline]
    pub(crate) unsafe fn push(
        &self,
        pool: &Pool,
        grid: &AtomicU64,
        value: T,
        take: impl FnOnce() -> Result<u64, Exhausted>,
        draw: impl FnOnce(&mut Batch) -> (u64, u64),
    ) -> Result<(), Exhausted> {
        // SAFETY: holding the claim makes this thread the shard's owner; the caller vouches
        // for the pool.
        unsafe { self.shard.push(pool, grid, value, take, draw) }
    }

    /// Keeps the claim beyond this borrow: the shard, as the pointer [`from_raw`] takes, and
    /// its `claimed` flag, which the holder must clear (with Release) to release it.
    ///
    /// [`from_raw`]: Self::from_raw
    pub(crate) fn into_raw(self) -> (*const (), Arc<AtomicBool>) {
        let shard = self.shard;
        std::mem::forget(self);
        (std::ptr::from_ref(shard).cast(), shard.claimed.clone())
    }

    /// The claim that [`into_raw`](Self::into_raw) kept, borrowed: dropping it does not
    /// release the shard.
    ///
    /// # Safety
    ///
    /// `shard` must come from `into_raw` on a `Claim<T>` (so it points to a
    /// `CachePadded<Shard<T>>`) whose flag was not cleared since, and the shard must outlive
    /// `'a` (its moving average is alive).
    #[inline]
    pub(crate) unsafe fn from_raw(shard: *const ()) -> std::mem::ManuallyDrop<Self> {
        // SAFETY: the caller guarantees the pointer's type and that the shard is alive.
        let shard = unsafe { &*shard.cast::<CachePadded<Shard<T>>>() };
        std::mem::ManuallyDrop::new(Claim { shard })
    }
}

impl<T: Sample> Drop for Claim<'_, T> {
    fn drop(&mut self) {
        release(&self.shard.claimed);
    }
}

/// Gives up a shard's ownership; pairs with the Acquire in [`Claim::try_new`].
pub(crate) fn release(claimed: &AtomicBool) {
    claimed.store(false, Release);
}

/// Reads a shard's slots by seq, remembering the last block looked up: walks touch one or two
/// blocks, and the table and pool lookups cost more than the slot load.
struct Cursor<'a, T: Sample> {
    shard: &'a Shard<T>,
    pool: &'a Pool,
    /// The shard's block number and slots of the last lookup (`u64::MAX`: none yet).
    block: u64,
    slots: &'a [Slot],
}

impl<'a, T: Sample> Cursor<'a, T> {
    fn new(shard: &'a Shard<T>, pool: &'a Pool) -> Self {
        Cursor {
            shard,
            pool,
            block: u64::MAX,
            slots: &[],
        }
    }

    #[inline(always)]
    fn ticket(&mut self, seq: u64) -> u64 {
        self.slot(seq).ticket.load(Relaxed)
    }

    #[inline(always)]
    fn value(&mut self, seq: u64) -> T {
        T::from_bits(self.slot(seq).value.load(Relaxed))
    }

    /// The slot of element `seq`, in the block the table names for it now.
    #[inline(always)]
    fn slot(&mut self, seq: u64) -> &'a Slot {
        let shift = self.shard.geometry.shift;
        let j = seq >> shift;
        if j != self.block {
            self.slots = self.shard.slots(self.pool, j);
            self.block = j;
        }
        &self.slots[(seq & ((1 << shift) - 1)) as usize]
    }
}

/// The shard was changed while being read: the read must start over.
#[derive(Debug)]
pub(crate) struct Stale;

impl<T: Sample> Shard<T> {
    /// An empty, unclaimed shard, allocated fallibly, with `first`, a block just taken from
    /// `pool`, as its first block. On error the caller still holds `first`.
    pub(crate) fn new(geometry: Geometry, pool: &Pool, first: u64) -> Result<Self, WindowError> {
        let table = zeroed::<AtomicU64>(geometry.table()).ok_or(WindowError::Alloc {
            requested: geometry.window as usize,
            bytes: geometry.shard_bytes::<T>(),
        })?;
        // The block may have been another shard's: its readers must see it was retired before
        // they can see our writes (see `retire`).
        if TAKE_FENCE {
            fence(Release);
        }
        let block = pool.block(first).expect("a taken block exists");
        for word in block.checkpoint {
            // Checkpoint 0 is the empty prefix.
            word.store(0, Relaxed);
        }
        table[0].store(first, Relaxed);
        let empty = <T::Summary as Summary<T>>::EMPTY.to_words();
        Ok(Shard {
            published: CachePadded::new(Published {
                version: AtomicU64::new(0),
                start: AtomicU64::new(0),
                summary: empty.map(AtomicU64::new),
                retired_below: AtomicU64::new(0),
            }),
            table,
            owner: UnsafeCell::new(Owner {
                sum: T::Limbs::ZERO,
                summary: <T::Summary as Summary<T>>::EMPTY,
                start: 0,
                count: 0,
                current: SlotsPtr::of(block.slots),
                start_block: (u64::MAX, SlotsPtr(std::ptr::null())),
                spare: None,
                retired: 0,
                batch: Batch::NONE,
            }),
            claimed: Arc::new(AtomicBool::new(false)),
            next: std::ptr::null_mut(),
            geometry,
        })
    }

    /// The pool block of the shard's block `j`, as the table says now.
    #[inline(always)]
    fn block<'p>(&self, pool: &'p Pool, j: u64) -> Option<Block<'p>> {
        pool.block(self.table[(j & self.geometry.table_mask) as usize].load(Relaxed))
    }

    /// The slots of the shard's block `j`, as the table says now.
    #[inline(always)]
    fn slots<'p>(&self, pool: &'p Pool, j: u64) -> &'p [Slot] {
        let number = self.table[(j & self.geometry.table_mask) as usize].load(Relaxed);
        // Table entries only ever hold blocks taken from the pool, whose segments exist.
        pool.slots(number).expect("table entries name taken blocks")
    }

    /// Appends an element: takes a block with `take` if the add will need one, then calls
    /// `draw` for the element's global ticket and the ticket below which elements have left
    /// the window of every read that sees this add, adds the element and drops from the
    /// summary the elements that left.
    ///
    /// On error (no block could be had), `draw` was not called and nothing changed.
    ///
    /// # Safety
    ///
    /// The calling thread must own the shard, so that no other thread runs `push` on it at
    /// the same time (the callers are [`Claim`]'s methods), and `pool` must be the pool the
    /// shard was created with.
    #[inline]
    unsafe fn push(
        &self,
        pool: &Pool,
        grid: &AtomicU64,
        value: T,
        take: impl FnOnce() -> Result<u64, Exhausted>,
        draw: impl FnOnce(&mut Batch) -> (u64, u64),
    ) -> Result<(), Exhausted> {
        // SAFETY: the caller owns the shard, so this is the only access to `owner`; ownership
        // passed between threads through the Acquire/Release pair on `claimed`.
        self.owner.with_mut(|owner| {
            self.push_owned(unsafe { &mut *owner }, pool, grid, value, take, draw)
        })
    }

    #[inline(always)]
    fn push_owned(
        &self,
        owner: &mut Owner<T>,
        pool: &Pool,
        grid: &AtomicU64,
        value: T,
        take: impl FnOnce() -> Result<u64, Exhausted>,
        draw: impl FnOnce(&mut Batch) -> (u64, u64),
    ) -> Result<(), Exhausted> {
        // `B` is a power of two: masks, not divisions, on the add path.
        let in_block = self.geometry.block() - 1;
        if (owner.count + 1) & in_block == 0 && owner.spare.is_none() {
            // This add fills the block: have the next one before drawing a ticket.
            owner.spare = Some(take()?);
        }
        if owner.summary.wants_grid(value) {
            // Before the ticket, like taking a block: the add cannot fail after it.
            owner.summary.place_grid(value, grid);
        }
        let (ticket, evict_below) = draw(&mut owner.batch);
        let published = &*self.published;
        // Odd: the add is writing. The fast read discards what it read if it sees this value
        // (or any store below); the exact read takes it as `count` elements published.
        // Release, not Relaxed: a reader that loads this value must see the elements below
        // `count`, and a later Relaxed store would not continue the release sequence of the
        // previous add's even store (C++20 and loom drop same-thread stores from it).
        published.version.store(2 * owner.count + 1, Release);
        self.evict(owner, pool, value, evict_below);
        // Orders the stores above (this add's `retired_below`, and the previous add's stores)
        // and the taking of blocks before the stores below, which may write to a block another
        // shard's readers are still reading: pairs with the Acquire fence in `read` and in
        // `summary`.
        if TAKE_FENCE {
            fence(Release);
        }
        // SAFETY: `pool` is the shard's pool (the caller of `push` guarantees it), alive here.
        let slot = unsafe { owner.current.slot(owner.count & in_block) };
        slot.ticket.store(ticket, Relaxed);
        slot.value.store(value.to_bits(), Relaxed);
        owner.sum.add(value);
        owner.count += 1;
        if owner.count & in_block == 0 {
            let next = owner.spare.take().expect("taken before the ticket");
            let limbs = owner.sum.as_ref();
            let block = pool.block(next).expect("a taken block exists");
            for (word, &limb) in block.checkpoint.iter().zip(limbs) {
                word.store(limb as u64, Relaxed);
            }
            let j = owner.count >> self.geometry.shift;
            // The entry's previous block, `j - R`, was retired (`retire` keeps at most `R - 1`
            // blocks).
            debug_assert!(owner.retired + self.geometry.table() as u64 > j);
            self.table[(j & self.geometry.table_mask) as usize].store(next, Relaxed);
            owner.current = SlotsPtr::of(block.slots);
        }
        published.start.store(owner.start, Relaxed);
        let words = owner.summary.to_words();
        for (word, &w) in published.summary.iter().zip(&words[..T::Summary::WORDS]) {
            word.store(w, Relaxed);
        }
        // Pairs with the Acquire loads at the start of `read` and `summary`: a reader that sees
        // the new version sees the slot, checkpoint, table entry and summary written above.
        published.version.store(2 * owner.count, PUBLISH);
        Ok(())
    }

    /// Adds the new element to the summary and evicts the elements with tickets below
    /// `evict_below`; the first eviction and the add are one update. Retires the blocks the
    /// evictions emptied. (Only the summary: the slot and the exact sum are written after the
    /// add's Release fence.)
    ///
    /// Other shards may steal this shard's oldest blocks at any time (see [`steal`](Self::steal)),
    /// so the owner validates its own reads as readers do: it loads `retired_below`, reads,
    /// issues an Acquire fence and loads it again. If a block it read was stolen meanwhile, what
    /// it read may belong to the block's next user: it starts over from the exact sum, at the
    /// first block not stolen.
    #[inline(always)]
    fn evict(&self, owner: &mut Owner<T>, pool: &Pool, value: T, evict_below: u64) {
        let shift = self.geometry.shift;
        let published = &*self.published;
        let mut resync = false;
        loop {
            // Acquire pairs with the AcqRel compare-exchange of a steal: nothing needed from the
            // stealer but the number, and the fence below does the validating.
            let retired = published.retired_below.load(Acquire);
            owner.retired = owner.retired.max(retired);
            if resync || retired << shift > owner.start {
                // Blocks this shard's summary still covered were stolen: their elements had
                // left the window, and the exact sum less the checkpoint of the first block not
                // stolen is the sum of everything after them.
                owner.start = retired << shift;
                self.reseed(owner, pool);
            }
            let first_read = owner.start >> shift;
            let mut pending = Some(value);
            let in_block = self.geometry.block() - 1;
            while owner.start < owner.count {
                let j = owner.start >> shift;
                if owner.start_block.0 != j {
                    owner.start_block = (j, SlotsPtr::of(self.slots(pool, j)));
                }
                // SAFETY: `pool` is the shard's pool (the caller of `push` guarantees it).
                let slot = unsafe { owner.start_block.1.slot(owner.start & in_block) };
                // Out of the window: a stamp below `evict_below`, or (in the relaxed order,
                // where stamps are not dense) `N` published elements of this shard after it.
                if slot.ticket.load(Relaxed) >= evict_below
                    && owner.start + self.geometry.window >= owner.count
                {
                    break;
                }
                let old = T::from_bits(slot.value.load(Relaxed));
                match pending.take() {
                    Some(new) => owner.summary.replace(old, new),
                    None => owner.summary.remove(old),
                }
                owner.start += 1;
            }
            if let Some(new) = pending {
                owner.summary.add(new);
            }
            // Pairs with the Release fence of whoever wrote a stolen block after taking it: if a
            // load above saw such a write, the load below sees the steal.
            fence(Acquire);
            let retired = published.retired_below.load(Relaxed);
            if retired <= first_read || !CHECK_OWNER {
                break;
            }
            resync = true;
        }
        if (owner.start >> shift) > owner.retired + 1 {
            self.retire(owner, pool);
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
    fn retire(&self, owner: &mut Owner<T>, pool: &Pool) {
        let keep = (owner.start >> self.geometry.shift) - 1;
        while owner.retired < keep {
            let j = owner.retired;
            let number = self.table[(j & self.geometry.table_mask) as usize].load(Relaxed);
            // A compare-exchange, not a store: a steal may retire the same block. Whoever
            // moves the mark past `j` owns the block. AcqRel as in `steal`.
            match self
                .published
                .retired_below
                .compare_exchange(j, j + 1, AcqRel, Acquire)
            {
                Ok(_) => {
                    owner.retired = j + 1;
                    match owner.spare {
                        None => owner.spare = Some(number),
                        Some(_) => pool.give_back(number),
                    }
                }
                Err(current) => owner.retired = current,
            }
        }
    }

    /// Retires this shard's oldest block for another shard, if every element in it has left
    /// the window for good (stamps below `out_below`, or `N` newer elements in this shard) and
    /// it is not one of the two newest: lets shards whose threads stopped adding give their
    /// memory back.
    /// Returns the block, now the caller's.
    ///
    /// Safe to call from any thread at any time: the owner detects the steal (see `evict`).
    ///
    /// With `idle_only`, only a shard whose newest element is below `out_below` is stolen
    /// from: one whose thread stopped adding. (In the relaxed order the bound lags the window,
    /// and an active owner retires its own blocks at its next add; a steal from it would only
    /// make it re-seed.)
    pub(crate) fn steal(&self, pool: &Pool, out_below: u64, idle_only: bool) -> Option<u64> {
        let published = &*self.published;
        // Acquire pairs with the Release store that ends an add: the table entries and slots
        // of the elements below `count` are written.
        let count = published.version.load(Acquire) / 2;
        let j = published.retired_below.load(Acquire);
        if j + 2 > count >> self.geometry.shift {
            return None;
        }
        if idle_only {
            // The newest element's block is never retired while the shard holds it.
            let newest = count - 1;
            let slots = self.slots(pool, newest >> self.geometry.shift);
            let in_block = (newest & (self.geometry.block() - 1)) as usize;
            if slots[in_block].ticket.load(Relaxed) >= out_below {
                return None;
            }
        }
        let number = self.table[(j & self.geometry.table_mask) as usize].load(Relaxed);
        // The oldest element that would remain, the first of block `j + 1`, must have left the
        // window too: a reader that finds the oldest remaining element in its window cannot
        // tell whether retired ones are, and starts over with a newer ticket counter, which
        // then puts that element out of it (see `View::range`). The owner's own retirement
        // keeps the same rule.
        let next = self.block(pool, j + 1)?;
        let first = (j + 1) << self.geometry.shift;
        if next.slots[0].ticket.load(Relaxed) >= out_below && first + self.geometry.window >= count
        {
            return None;
        }
        // If the block was retired and reused since `j` was loaded, the mark moved and this
        // fails. AcqRel: Release so that whoever later takes the block from us orders the mark
        // before its writes (through our own fence before writing, or the pool's Release);
        // Acquire to order the reads above before our use.
        published
            .retired_below
            .compare_exchange(j, j + 1, AcqRel, Relaxed)
            .ok()
            .map(|_| number)
    }

    /// Sums elements `start .. count` into the summary again, after blocks it covered were
    /// stolen. (They are in the blocks from `start`'s on, which the shard holds: see `retire`.)
    #[cold]
    #[inline(never)]
    fn reseed(&self, owner: &mut Owner<T>, pool: &Pool) {
        let shift = self.geometry.shift;
        let in_block = self.geometry.block() - 1;
        let mut summary = owner.summary.cleared();
        let mut k = owner.start;
        while k < owner.count {
            let slots = self.slots(pool, k >> shift);
            let end = owner.count.min((k | in_block) + 1);
            for slot in &slots[(k & in_block) as usize..=((end - 1) & in_block) as usize] {
                summary.add(T::from_bits(slot.value.load(Relaxed)));
            }
            k = end;
        }
        owner.summary = summary;
    }

    /// Runs `f` on a consistent view of the shard, or reports that the shard moved on while
    /// `f` read it.
    pub(crate) fn read<R>(
        &self,
        pool: &Pool,
        f: impl FnOnce(&View<'_, T>) -> R,
    ) -> Result<R, Stale> {
        let view = self.open(pool);
        let result = f(&view);
        view.validate().map(|()| result)
    }

    /// Starts a read of the shard: the view is consistent if [`View::validate`] says so once
    /// the reader is done with it.
    pub(crate) fn open<'a>(&'a self, pool: &'a Pool) -> View<'a, T> {
        let published = &*self.published;
        // Pairs with the Release store in `push_owned`: elements below `c0` are fully written.
        let c0 = published.version.load(Acquire) / 2;
        // Acquire pairs with the compare-exchange that retired the block below: if `range`
        // finds a retired element could be in the window, the retry's load of the ticket
        // counter is at least the one the retirement was decided on.
        let retired = published.retired_below.load(Acquire);
        View {
            shard: self,
            pool,
            published: c0,
            oldest: (retired << self.geometry.shift).min(c0),
            min_block: Cell::new(u64::MAX),
        }
    }
}

/// Most elements a reader adds to or removes from a shard's summary before it gives up on the
/// summary and reads the shard the exact way.
const WALK: u32 = 64;

impl<T: Sample> Shard<T> {
    /// The published summary's words, loaded Relaxed: the caller validates them against
    /// `version` (a sequence-lock read).
    fn published_summary(&self) -> T::Summary {
        let mut words = [0; 3];
        for (w, word) in words
            .iter_mut()
            .zip(&self.published.summary[..T::Summary::WORDS])
        {
            *w = word.load(Relaxed);
        }
        <T::Summary as Summary<T>>::from_words(words)
    }

    /// The summary of this shard's elements with tickets in `[from, to)`, and their number,
    /// from the published summary adjusted by at most [`WALK`] elements at either end; `None`
    /// if an add ran during the read or the adjustment would be longer.
    #[inline]
    pub(crate) fn summary(&self, pool: &Pool, from: u64, to: u64) -> Option<(T::Summary, u64)> {
        let published = &*self.published;
        // Pairs with the Release store that ends an add: the summary, `start`, the table and the
        // slots of the elements below `end` are those that add wrote (or later ones, detected
        // below).
        let version = published.version.load(Acquire);
        if version % 2 == 1 {
            return None;
        }
        let end = version / 2;
        let start = published.start.load(Relaxed);
        let retired = published.retired_below.load(Relaxed);
        let oldest = retired << self.geometry.shift;
        if start > end {
            // Written by a later add: the check at the end would fail.
            return None;
        }
        let mut cursor = Cursor::new(self, pool);
        let validated = |found| {
            // Pairs with the Release fence in `push_owned`: if any load above saw a store of a
            // later add, the load below sees that add's odd version (or a later one); if it
            // saw a store of a block's next user, the second load sees the block retired.
            fence(Acquire);
            let unchanged = published.version.load(Relaxed) == version
                && (published.retired_below.load(Relaxed) == retired || !CHECK_FAST_RETIRED);
            (unchanged || !CHECK_SUMMARY).then_some(found)
        };
        if end > 0 && cursor.ticket(end - 1) < from {
            // The shard's thread stopped adding while others went on: nothing it holds is in
            // the window. (Its newest element's block is never retired: a steal leaves the two
            // newest blocks, the owner the blocks from the one before `start`'s.)
            return validated((<T::Summary as Summary<T>>::EMPTY, 0));
        }
        if oldest > start {
            // Blocks the summary covers were stolen (or `retired_below` is from a later add).
            return None;
        }
        let mut summary = self.published_summary();
        let mut budget = WALK;
        let mut step = || {
            budget = budget.checked_sub(1)?;
            Some(())
        };
        // Elements at the end that were added after the read loaded `to`.
        let mut hi = end;
        while hi > start && cursor.ticket(hi - 1) >= to {
            step()?;
            hi -= 1;
            summary.remove(cursor.value(hi));
        }
        let mut lo = start;
        if lo < hi && cursor.ticket(lo) < from {
            if cursor.ticket(hi - 1) < from {
                // The shard's thread stopped adding while others went on: nothing it holds is
                // in the window.
                summary = summary.cleared();
                lo = hi;
            }
            // Elements that left the window through other shards' adds.
            while lo < hi && cursor.ticket(lo) < from {
                step()?;
                summary.remove(cursor.value(lo));
                lo += 1;
            }
        } else if lo == hi && hi < end {
            // Everything summarized is newer than `to`; older elements may lie in the window.
            return None;
        } else {
            // Elements the owner dropped that are still in this read's window (`to` was loaded
            // before the owner's last add drew its ticket). Blocks below `oldest` may have been
            // reused: finding the window's start there means giving up.
            while lo > 0 && cursor.ticket(lo - 1) >= from {
                if lo == oldest {
                    return None;
                }
                step()?;
                lo -= 1;
                summary.add(cursor.value(lo));
            }
        }
        validated((summary, hi - lo))
    }
}

impl<T: Sample> Shard<T> {
    /// The published summary of this shard, trimmed to the elements with stamps below `to`,
    /// for the fast read of the relaxed order (see [`Snapshot`]); `None` if an add is running
    /// or the trim would walk more than [`WALK`] elements.
    #[inline]
    pub(crate) fn snapshot<'a>(&'a self, pool: &'a Pool, to: u64) -> Option<Snapshot<'a, T>> {
        let published = &*self.published;
        // Pairs with the Release store that ends an add, as in `summary`.
        let version = published.version.load(Acquire);
        if version % 2 == 1 {
            return None;
        }
        let end = version / 2;
        let start = published.start.load(Relaxed);
        let retired = published.retired_below.load(Relaxed);
        let oldest = retired << self.geometry.shift;
        if start > end || oldest > start {
            // Written by a later add, or blocks the summary covers were stolen.
            return None;
        }
        let mut snapshot = Snapshot {
            cursor: Cursor::new(self, pool),
            version,
            retired,
            oldest,
            lo: start,
            hi: end,
            summary: self.published_summary(),
            budget: WALK,
        };
        while snapshot.hi > start && snapshot.cursor.ticket(snapshot.hi - 1) >= to {
            snapshot.step()?;
            snapshot.hi -= 1;
            let value = snapshot.cursor.value(snapshot.hi);
            snapshot.summary.remove(value);
        }
        Some(snapshot)
    }
}

/// One shard's published summary of its elements `lo .. hi`, which the relaxed fast read trims
/// from below until the shards together hold the window; valid only if [`validate`] says so
/// after the read.
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

impl<T: Sample> Snapshot<'_, T> {
    fn step(&mut self) -> Option<()> {
        self.budget = self.budget.checked_sub(1)?;
        Some(())
    }

    /// The stamp of element `lo` (`lo < hi`).
    pub(crate) fn oldest_stamp(&mut self) -> u64 {
        self.cursor.ticket(self.lo)
    }

    /// Removes element `lo` from the summary; `None` past the walking budget.
    pub(crate) fn drop_oldest(&mut self) -> Option<()> {
        self.step()?;
        let value = self.cursor.value(self.lo);
        self.summary.remove(value);
        self.lo += 1;
        Some(())
    }

    /// Whether every element of the shard below `lo` has a stamp below `stamp`; `None` if the
    /// one below `lo` was retired, so that it cannot be told.
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
    pub(crate) fn validate(&self) -> bool {
        let published = &*self.cursor.shard.published;
        // Pairs with the Release fence in `push_owned`, as in `summary`.
        fence(Acquire);
        published.version.load(Relaxed) == self.version
            && (published.retired_below.load(Relaxed) == self.retired || !CHECK_FAST_RETIRED)
            || !CHECK_SUMMARY
    }
}

/// A reader's view of one shard: elements `oldest .. published`, validated when the read
/// ends.
pub(crate) struct View<'a, T: Sample> {
    shard: &'a Shard<T>,
    pool: &'a Pool,
    /// Elements published when the read began.
    pub(crate) published: u64,
    /// The oldest element not retired when the read began.
    oldest: u64,
    /// The lowest block read, checked against `retired_below` when the read ends.
    min_block: Cell<u64>,
}

impl<'a, T: Sample> View<'a, T> {
    /// The shard's block `j`, recorded as read.
    fn block(&self, j: u64) -> Block<'a> {
        self.min_block.set(self.min_block.get().min(j));
        // Table entries only ever hold blocks taken from the pool, whose segments exist.
        self.shard
            .block(self.pool, j)
            .expect("table entries name taken blocks")
    }

    fn slot(&self, seq: u64) -> &'a Slot {
        debug_assert!(seq < self.published);
        let block = self.block(seq >> self.shard.geometry.shift);
        &block.slots[(seq & (self.shard.geometry.block() - 1)) as usize]
    }

    pub(crate) fn ticket(&self, seq: u64) -> u64 {
        self.slot(seq).ticket.load(Relaxed)
    }

    pub(crate) fn value(&self, seq: u64) -> T {
        T::from_bits(self.slot(seq).value.load(Relaxed))
    }

    /// The range of elements, searched among those not retired, whose tickets lie in
    /// `[from, to)`; `Stale` if retired elements could lie in it too.
    pub(crate) fn range(&self, from: u64, to: u64) -> Result<(u64, u64), Stale> {
        let start = self.oldest;
        let lo = self.partition(start, self.published, from);
        let hi = self.partition(lo, self.published, to);
        if lo == start && start > 0 {
            // Every searched element is at or past `from`, so retired ones may be too. A
            // block is retired only once the element after it, `start`, has a ticket below
            // `to' - N` for a ticket counter `to'` loaded before the retirement (by the owner's
            // add or the steal). Our `to` is older than that, and the retry's load of the
            // counter is at least `to'` (the Acquire load of `retired_below` orders it), so
            // the retry finds `start` out of its window: one retry per retirement seen.
            return Err(Stale);
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
    pub(crate) fn validate(&self) -> Result<(), Stale> {
        // Pairs with the Release fence in `push_owned` (and in `Shard::new`): if a load through
        // the view saw a block's next use, the load below sees that the block was retired.
        fence(Acquire);
        let retired = self.shard.published.retired_below.load(Relaxed);
        if self.min_block.get() >= retired || !CHECK_RETIRED {
            Ok(())
        } else {
            Err(Stale)
        }
    }

    /// The oldest element not retired when the view was opened.
    pub(crate) fn oldest(&self) -> u64 {
        self.oldest
    }

    /// Adds (or subtracts) the exact sum of this shard's elements `0 .. k` to `limbs`.
    pub(crate) fn add_prefix(&self, k: u64, limbs: &mut T::Limbs, negative: bool) {
        let shift = self.shard.geometry.shift;
        let block = self.block(k >> shift);
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
