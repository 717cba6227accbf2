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

/// State only the owner touches.
struct Owner<T: Sample> {
    /// Exact sum of every element this shard ever held (wrapping limbs).
    sum: T::Limbs,
    /// Elements added so far (equal to `published` outside an add).
    count: u64,
    /// `count % cap`, kept to avoid a division per add.
    slot: usize,
    /// Index of the next checkpoint's storage: `(count / BLOCK + 1) % rounds`.
    checkpoint: usize,
}

pub(crate) struct Shard<T: Sample> {
    published: CachePadded<AtomicU64>,
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
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(geometry.cap as usize)
            .map_err(|_| alloc_error())?;
        slots.extend((0..geometry.cap).map(|_| Slot {
            ticket: AtomicU64::new(0),
            value: AtomicU64::new(0),
        }));
        let words = geometry.rounds as usize * limbs;
        let mut checkpoints = Vec::new();
        checkpoints
            .try_reserve_exact(words)
            .map_err(|_| alloc_error())?;
        // Checkpoint 0, the empty prefix, is all zeros.
        checkpoints.extend((0..words).map(|_| AtomicU64::new(0)));
        Ok(Shard {
            published: CachePadded::new(AtomicU64::new(0)),
            slots: slots.into_boxed_slice(),
            checkpoints: checkpoints.into_boxed_slice(),
            owner: UnsafeCell::new(Owner {
                sum: T::Limbs::ZERO,
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

    /// Appends an element with its global ticket.
    ///
    /// # Safety
    ///
    /// The calling thread must own the shard (have claimed it and not released it), so that
    /// no other thread runs `push` on it at the same time.
    #[inline]
    pub(crate) unsafe fn push(&self, ticket: u64, value: T) {
        // SAFETY: the caller owns the shard, so this is the only access to `owner`; ownership
        // passed between threads through the Acquire/Release pair on `claimed`.
        self.owner
            .with_mut(|owner| unsafe { self.push_owned(&mut *owner, ticket, value) });
    }

    #[inline(always)]
    fn push_owned(&self, owner: &mut Owner<T>, ticket: u64, value: T) {
        // Orders the previous add's `published` store before the stores below, which may
        // overwrite data a reader is reading: pairs with the Acquire fence in `read`.
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
        // Pairs with the Acquire load at the start of `read`: a reader that sees the new count
        // sees the slot and checkpoint written above.
        self.published.store(owner.count, PUBLISH);
    }

    /// Runs `f` on a consistent view of the shard, or reports that the shard moved on while
    /// `f` read it.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&View<'_, T>) -> R) -> Result<R, Stale> {
        // Pairs with the Release store in `push_owned`: elements below `c0` are fully written.
        let c0 = self.published.load(Acquire);
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
        let c1 = self.published.load(Relaxed);
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
