//! One thread's shard: a ring of ticketed elements and checkpoints of its exact prefix sums.
//!
//! A shard is written by exactly one thread at a time, its owner (see `lease.rs`), and read by
//! any number of readers without locks. The owner's writes follow a sequence-lock discipline
//! adapted to a ring: readers never wait for the owner; they check, after reading, that what
//! they read cannot have been overwritten, and start over otherwise.
//!
//! # What the fields encode
//!
//! The owner numbers its elements `0, 1, 2, ...` (the element's *seq*). Element `seq` lives in
//! `slots[seq % cap]` with the global ticket that orders it among all threads' elements.
//! `published` is the number of elements whose slot is fully written. Checkpoint `j` is the
//! exact prefix sum of elements `0 .. j * BLOCK` of this shard (wrapping limbs, see
//! `exact.rs`), stored in `checkpoints[(j % rounds) * limbs ..]`. The exact sum of elements
//! `lo .. hi` is then `prefix(hi) - prefix(lo)`, where `prefix(k)` is checkpoint `k / BLOCK`
//! plus at most `BLOCK - 1` elements.
//!
//! # Overwrite detection
//!
//! Slot `seq % cap` is next written for element `seq + cap`; the owner starts writing it only
//! after `published` has reached `seq + cap`. Checkpoint `j`'s storage is next written for
//! checkpoint `j + rounds`, during the add of element `(j + rounds) * BLOCK - 1`, so only
//! after `published` has reached that. A reader loads `published` (Acquire) before reading,
//! reads with Relaxed loads, issues an Acquire fence and loads `published` again. Every add
//! begins with a Release fence that orders the previous add's `published` store before the
//! add's own data stores. If any data load observed an overwrite, that fence synchronizes
//! with the reader's Acquire fence, so the second load of `published` sees the value the owner
//! had stored before overwriting, and the reader discards what it read.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::exact::Span;
use crate::running::Summary;
use crate::sample::Limbs;
use crate::sync::{fence, AtomicBool, AtomicU64, UnsafeCell};
use crate::{Sample, WindowError};

/// Elements per checkpoint. Small under loom so that models reach checkpoints and ring wraps
/// in a few adds.
#[cfg(not(loom))]
pub(crate) const BLOCK: u64 = 64;
#[cfg(loom)]
pub(crate) const BLOCK: u64 = 2;

/// The ordering of the store that publishes an element. Release is required; building with
/// `--cfg mavg_planted_bug="relaxed_publish"` weakens it, so that the loom models can show
/// they catch the bug (see `notes/verification.md`).
#[cfg(not(mavg_planted_bug = "relaxed_publish"))]
const PUBLISH: std::sync::atomic::Ordering = Release;
#[cfg(mavg_planted_bug = "relaxed_publish")]
const PUBLISH: std::sync::atomic::Ordering = Relaxed;

/// Whether readers check for overwrites; `--cfg mavg_planted_bug="no_overwrite_check"`
/// removes the check, which the loom models must catch.
const CHECK_OVERWRITES: bool = !cfg!(mavg_planted_bug = "no_overwrite_check");

/// Whether fast readers check that no add ran during their read; building with
/// `--cfg mavg_planted_bug="no_summary_check"` removes the check, which the loom models must
/// catch.
const CHECK_SUMMARY: bool = !cfg!(mavg_planted_bug = "no_summary_check");

/// Sizes shared by all shards of one moving average.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// The window `N`.
    pub(crate) window: u64,
    /// Slots per shard: the window, plus a block so that a prefix can start a block early,
    /// plus a block for the window's start to be searched below, plus a block of tolerance
    /// for adds that complete while a reader reads.
    pub(crate) cap: u64,
    /// How many of the newest elements a reader searches for the window's start.
    pub(crate) visible: u64,
    /// Checkpoints per shard.
    pub(crate) rounds: u64,
}

impl Geometry {
    pub(crate) fn new(window: usize) -> Self {
        let window = window as u64;
        let cap = window + 3 * BLOCK;
        Geometry {
            window,
            cap,
            visible: window + BLOCK,
            rounds: cap.div_ceil(BLOCK) + 3,
        }
    }

    /// Heap bytes of one shard holding samples of type `T`.
    pub(crate) fn shard_bytes<T: Sample>(&self) -> usize {
        let limbs = std::mem::size_of::<T::Limbs>();
        std::mem::size_of::<CachePadded<Shard<T>>>()
            + self.cap as usize * std::mem::size_of::<Slot>()
            + self.rounds as usize * limbs
    }
}

/// One element: its global ticket and its bits.
struct Slot {
    ticket: AtomicU64,
    value: AtomicU64,
}

/// Types whose all-zero bytes are a valid value: atomics of integers, and structs of them.
///
/// # Safety
///
/// Implementors must be valid, initialized values when every byte is zero, and have no drop
/// glue that could observe a difference from values created by `new(0)`.
unsafe trait Zeroable {
    /// The same value built without the allocator trick (under loom, whose atomics are not
    /// plain integers).
    #[cfg_attr(not(loom), allow(dead_code))]
    fn zero() -> Self;
}

// SAFETY: `AtomicU64` has the in-memory representation of `u64` (std documents it), so zero
// bytes are `AtomicU64::new(0)`.
unsafe impl Zeroable for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
}

// SAFETY: two `AtomicU64`s (see above); zero bytes are a slot with ticket 0 and value 0.
unsafe impl Zeroable for Slot {
    fn zero() -> Self {
        Slot {
            ticket: AtomicU64::new(0),
            value: AtomicU64::new(0),
        }
    }
}

/// `len` zero values, or `None` if the memory cannot be had. Outside loom the allocation is
/// zeroed by the allocator, which for large sizes maps fresh pages without touching them, so
/// constructing a large window costs no time and commits memory only as it is written.
#[cfg(not(loom))]
fn zeroed<T: Zeroable>(len: usize) -> Option<Box<[T]>> {
    let layout = std::alloc::Layout::array::<T>(len).ok()?;
    if layout.size() == 0 {
        return Some(Vec::new().into_boxed_slice());
    }
    // SAFETY: the layout has a nonzero size.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<T>();
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` comes from the global allocator with the layout of `[T; len]`, which is the
    // layout `Box<[T]>` frees with; its `len` elements are zero bytes, valid values of `T`
    // (`T: Zeroable`); and nothing else refers to the allocation.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, len)) })
}

/// Under loom, atomics are model objects: build each one.
#[cfg(loom)]
fn zeroed<T: Zeroable>(len: usize) -> Option<Box<[T]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.extend((0..len).map(|_| T::zero()));
    Some(v.into_boxed_slice())
}

/// State only the owner touches.
struct Owner<T: Sample> {
    /// Exact sum of every element this shard ever held (wrapping limbs).
    sum: T::Limbs,
    /// Summary of elements `start .. count`: the ones that may still be in the window.
    summary: T::Summary,
    /// The oldest element the summary covers.
    start: u64,
    /// `start % cap`.
    start_slot: usize,
    /// Elements added so far (`version / 2` outside an add).
    count: u64,
    /// `count % cap`, kept to avoid a division per add.
    slot: usize,
    /// Index of the next checkpoint's storage: `(count / BLOCK + 1) % rounds`.
    checkpoint: usize,
}

/// What readers load first and last: the sequence lock and the summary it guards.
struct Published {
    /// Twice the number of elements fully written, plus one while an add is writing.
    version: AtomicU64,
    /// The oldest element the summary covers; it covers `start .. version / 2`.
    start: AtomicU64,
    /// The summary's words ([`Summary::to_words`]).
    summary: [AtomicU64; 3],
}

pub(crate) struct Shard<T: Sample> {
    published: CachePadded<Published>,
    slots: Box<[Slot]>,
    checkpoints: Box<[AtomicU64]>,
    owner: UnsafeCell<Owner<T>>,
    /// Set while a thread owns the shard; shared with that thread's lease.
    pub(crate) claimed: Arc<AtomicBool>,
    /// The shard added to the list before this one; written once, before publication.
    pub(crate) next: *mut CachePadded<Shard<T>>,
    geometry: Geometry,
}

/// The shard was overwritten while being read: the read must start over.
#[derive(Debug)]
pub(crate) struct Stale;

impl<T: Sample> Shard<T> {
    /// An empty shard, claimed or not, allocated fallibly.
    pub(crate) fn new(geometry: Geometry, claimed: bool) -> Result<Self, WindowError> {
        let limbs = T::Limbs::ZERO.as_ref().len();
        let alloc_error = || WindowError::Alloc {
            requested: geometry.window as usize,
            bytes: geometry.shard_bytes::<T>(),
        };
        // Zeroed and untouched: pages are committed as the ring fills. Slots start at ticket 0
        // and checkpoint 0, the empty prefix, is all zeros.
        let slots = zeroed::<Slot>(geometry.cap as usize).ok_or_else(alloc_error)?;
        let words = geometry.rounds as usize * limbs;
        let checkpoints = zeroed::<AtomicU64>(words).ok_or_else(alloc_error)?;
        let empty = <T::Summary as Summary<T>>::EMPTY.to_words();
        Ok(Shard {
            published: CachePadded::new(Published {
                version: AtomicU64::new(0),
                start: AtomicU64::new(0),
                summary: empty.map(AtomicU64::new),
            }),
            slots,
            checkpoints,
            owner: UnsafeCell::new(Owner {
                sum: T::Limbs::ZERO,
                summary: <T::Summary as Summary<T>>::EMPTY,
                start: 0,
                start_slot: 0,
                count: 0,
                slot: 0,
                checkpoint: 1,
            }),
            claimed: Arc::new(AtomicBool::new(claimed)),
            next: std::ptr::null_mut(),
            geometry,
        })
    }

    /// Claims an unowned shard for the calling thread.
    pub(crate) fn try_claim(&self) -> bool {
        // Acquire pairs with the Release store in `Lease::drop`: the previous owner's writes to
        // `owner` happen before ours.
        !self.claimed.load(Relaxed)
            && self
                .claimed
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
    }

    /// Gives up ownership; pairs with the Acquire in [`try_claim`](Self::try_claim).
    pub(crate) fn release(&self) {
        self.claimed.store(false, Release);
    }

    /// Appends an element with its global ticket, and drops from the summary the elements with
    /// tickets below `evict_below`, which no read that sees this add can count.
    ///
    /// # Safety
    ///
    /// The calling thread must own the shard (have claimed it and not released it), so that
    /// no other thread runs `push` on it at the same time.
    #[inline]
    pub(crate) unsafe fn push(&self, ticket: u64, value: T, evict_below: u64) {
        // SAFETY: the caller owns the shard, so this is the only access to `owner`; ownership
        // passed between threads through the Acquire/Release pair on `claimed`.
        self.owner
            .with_mut(|owner| unsafe { self.push_owned(&mut *owner, ticket, value, evict_below) });
    }

    #[inline(always)]
    fn push_owned(&self, owner: &mut Owner<T>, ticket: u64, value: T, evict_below: u64) {
        let published = &*self.published;
        // Odd: the add is writing. The fast read discards what it read if it sees this value
        // (or any store below); the exact read takes it as `count` elements published.
        // Release, not Relaxed: a reader that loads this value must see the elements below
        // `count`, and a later Relaxed store would not continue the release sequence of the
        // previous add's even store (C++20 and loom drop same-thread stores from it).
        published.version.store(2 * owner.count + 1, Release);
        // Orders the store above (and the previous add's stores) before the stores below, which
        // may overwrite data a reader is reading: pairs with the Acquire fence in `read` and in
        // `summary`.
        fence(Release);
        let slot = &self.slots[owner.slot];
        slot.ticket.store(ticket, Relaxed);
        slot.value.store(value.to_bits(), Relaxed);
        owner.slot += 1;
        if owner.slot as u64 == self.geometry.cap {
            owner.slot = 0;
        }
        value.add_to(&mut owner.sum);
        owner.count += 1;
        if owner.count % BLOCK == 0 {
            let limbs = owner.sum.as_ref();
            let base = owner.checkpoint * limbs.len();
            let words = &self.checkpoints[base..base + limbs.len()];
            for (word, &limb) in words.iter().zip(limbs) {
                word.store(limb as u64, Relaxed);
            }
            owner.checkpoint += 1;
            if owner.checkpoint as u64 == self.geometry.rounds {
                owner.checkpoint = 0;
            }
        }
        self.summarize(owner, value, evict_below);
        published.start.store(owner.start, Relaxed);
        let words = owner.summary.to_words();
        for (word, &w) in published.summary.iter().zip(&words[..T::Summary::WORDS]) {
            word.store(w, Relaxed);
        }
        // Pairs with the Acquire loads at the start of `read` and `summary`: a reader that sees
        // the new version sees the slot, checkpoint and summary written above.
        published.version.store(2 * owner.count, PUBLISH);
    }

    /// Adds the new element to the summary and evicts the old ones; the first eviction and the
    /// add are one update.
    #[inline(always)]
    fn summarize(&self, owner: &mut Owner<T>, value: T, evict_below: u64) {
        let mut pending = Some(value);
        // The new element's ticket is at least `evict_below`, so the loop stops at it.
        while self.slots[owner.start_slot].ticket.load(Relaxed) < evict_below {
            let old = T::from_bits(self.slots[owner.start_slot].value.load(Relaxed));
            match pending.take() {
                Some(new) => owner.summary.replace(old, new),
                None => owner.summary.remove(old),
            }
            owner.start += 1;
            owner.start_slot += 1;
            if owner.start_slot as u64 == self.geometry.cap {
                owner.start_slot = 0;
            }
        }
        if let Some(new) = pending {
            owner.summary.add(new);
        }
        if owner.summary.maintenance_due() && owner.summary.maintain() {
            self.reseed(owner);
        }
    }

    /// Re-seeds the summary from the exact sum of elements `start .. count`: the running sum
    /// less the prefix at `start`.
    #[cold]
    #[inline(never)]
    fn reseed(&self, owner: &mut Owner<T>) {
        // At most `window` elements lie in `start .. count` (their tickets are distinct and in
        // the window of the last add), so the checkpoint and slots read here are intact.
        let mut limbs = owner.sum;
        let j = owner.start / BLOCK;
        let len = limbs.as_ref().len();
        let base = (j % self.geometry.rounds) as usize * len;
        for (limb, word) in limbs
            .as_mut()
            .iter_mut()
            .zip(&self.checkpoints[base..base + len])
        {
            *limb = limb.wrapping_sub(word.load(Relaxed) as i64);
        }
        for seq in j * BLOCK..owner.start {
            let bits = self.slots[(seq % self.geometry.cap) as usize]
                .value
                .load(Relaxed);
            T::from_bits(bits).sub_from(&mut limbs);
        }
        owner.summary = <T::Summary as Summary<T>>::seed(&limbs);
    }

    /// Runs `f` on a consistent view of the shard, or reports that the shard moved on while
    /// `f` read it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View<'_, T>) -> R) -> Result<R, Stale> {
        // Pairs with the Release store in `push_owned`: elements below `c0` are fully written.
        let c0 = self.published.version.load(Acquire) / 2;
        let view = View {
            shard: self,
            published: c0,
            min_seq: std::cell::Cell::new(c0),
            min_checkpoint: std::cell::Cell::new(c0 / BLOCK),
        };
        let result = f(&view);
        // Pairs with the Release fence at the start of `push_owned`: if a load above saw an
        // overwrite, the load below sees the count that preceded it.
        fence(Acquire);
        let c1 = self.published.version.load(Relaxed) / 2;
        let g = &self.geometry;
        let slots_intact = c1 < view.min_seq.get() + g.cap;
        let checkpoints_intact = c1 + 1 < (view.min_checkpoint.get() + g.rounds) * BLOCK;
        if (slots_intact && checkpoints_intact) || !CHECK_OVERWRITES {
            Ok(result)
        } else {
            Err(Stale)
        }
    }
}

/// Most elements a reader adds to or removes from a shard's summary before it gives up on the
/// summary and reads the shard the exact way.
const WALK: u32 = 64;

impl<T: Sample> Shard<T> {
    /// The summary of this shard's elements with tickets in `[from, to)`, and their number,
    /// from the published summary adjusted by at most [`WALK`] elements at either end; `None`
    /// if an add ran during the read or the adjustment would be longer.
    #[inline]
    pub(crate) fn summary(&self, from: u64, to: u64) -> Option<(T::Summary, u64)> {
        let published = &*self.published;
        // Pairs with the Release store that ends an add: the summary, `start` and the slots of
        // the elements below `end` are those that add wrote (or later ones, detected below).
        let version = published.version.load(Acquire);
        if version % 2 == 1 {
            return None;
        }
        let end = version / 2;
        let start = published.start.load(Relaxed);
        if start > end {
            // Written by a later add: the check at the end would fail.
            return None;
        }
        let mut words = [0; 3];
        for (w, word) in words
            .iter_mut()
            .zip(&published.summary[..T::Summary::WORDS])
        {
            *w = word.load(Relaxed);
        }
        let mut summary = <T::Summary as Summary<T>>::from_words(words);
        let cap = self.geometry.cap;
        let slot = |seq: u64| &self.slots[(seq % cap) as usize];
        let ticket = |seq: u64| slot(seq).ticket.load(Relaxed);
        let value = |seq: u64| T::from_bits(slot(seq).value.load(Relaxed));
        let mut budget = WALK;
        let mut step = || {
            budget = budget.checked_sub(1)?;
            Some(())
        };
        // Elements at the end that were added after the read loaded `to`.
        let mut hi = end;
        while hi > start && ticket(hi - 1) >= to {
            step()?;
            hi -= 1;
            summary.remove(value(hi));
        }
        let mut lo = start;
        if lo < hi && ticket(lo) < from {
            // Elements that left the window through other shards' adds.
            while lo < hi && ticket(lo) < from {
                step()?;
                summary.remove(value(lo));
                lo += 1;
            }
        } else if lo == hi && hi < end {
            // Everything summarized is newer than `to`; older elements may lie in the window.
            return None;
        } else {
            // Elements the owner dropped that are still in this read's window (`to` was loaded
            // before the owner's last add drew its ticket). Slots below `end - cap` may be
            // overwritten: finding the window's start there means giving up.
            let oldest = end.saturating_sub(cap);
            while lo > 0 && ticket(lo - 1) >= from {
                if lo == oldest {
                    return None;
                }
                step()?;
                lo -= 1;
                summary.add(value(lo));
            }
        }
        // Pairs with the Release fence at the start of `push_owned`: if any load above saw a
        // store of a later add, the load below sees that add's odd version (or a later one).
        fence(Acquire);
        let unchanged = published.version.load(Relaxed) == version;
        (unchanged || !CHECK_SUMMARY).then_some((summary, hi - lo))
    }
}

/// A reader's view of one shard: elements `..published`, validated when the read ends.
pub(crate) struct View<'a, T: Sample> {
    shard: &'a Shard<T>,
    /// Elements published when the read began.
    pub(crate) published: u64,
    min_seq: std::cell::Cell<u64>,
    min_checkpoint: std::cell::Cell<u64>,
}

impl<T: Sample> View<'_, T> {
    fn slot(&self, seq: u64) -> &Slot {
        debug_assert!(seq < self.published);
        self.min_seq.set(self.min_seq.get().min(seq));
        &self.shard.slots[(seq % self.shard.geometry.cap) as usize]
    }

    pub(crate) fn ticket(&self, seq: u64) -> u64 {
        self.slot(seq).ticket.load(Relaxed)
    }

    pub(crate) fn value(&self, seq: u64) -> T {
        T::from_bits(self.slot(seq).value.load(Relaxed))
    }

    /// The range of elements, searched among the newest `visible`, whose tickets lie in
    /// `[from, to)`; `Stale` if older elements than those searched could lie in it too.
    pub(crate) fn range(&self, from: u64, to: u64) -> Result<(u64, u64), Stale> {
        let start = self.published.saturating_sub(self.shard.geometry.visible);
        let lo = self.partition(start, self.published, from);
        let hi = self.partition(lo, self.published, to);
        if lo == start && start > 0 {
            // Every searched element is at or past `from`, so older ones may be too. It means
            // the shard added at least `BLOCK` elements with tickets past `to` since `to` was
            // read (at most `to - from <= window` elements lie in the range).
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

    /// Adds (or subtracts) the exact sum of this shard's elements `0 .. k` to `limbs`.
    pub(crate) fn add_prefix(&self, k: u64, limbs: &mut T::Limbs, negative: bool) {
        let j = k / BLOCK;
        self.min_checkpoint.set(self.min_checkpoint.get().min(j));
        let out = limbs.as_mut();
        let base = (j % self.shard.geometry.rounds) as usize * out.len();
        let words = &self.shard.checkpoints[base..base + out.len()];
        for (limb, word) in out.iter_mut().zip(words) {
            let w = word.load(Relaxed) as i64;
            *limb = if negative {
                limb.wrapping_sub(w)
            } else {
                limb.wrapping_add(w)
            };
        }
        for seq in j * BLOCK..k {
            let v = self.value(seq);
            if negative {
                v.sub_from(limbs);
            } else {
                let _: Span = v.add_to(limbs);
            }
        }
    }
}
