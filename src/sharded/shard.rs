//! One thread's shard: what its writer publishes to readers, the table of its blocks in the
//! pool, and the sizes every shard of a moving average shares.
//!
//! A shard is written by one thread at a time, the one holding its [`Claim`](super::claim::Claim),
//! through the add path in `writer.rs`; any number of readers read it without locks
//! (`exact_read.rs`, `fast_read.rs`), and any thread may steal its oldest block
//! ([`Shard::steal`]). Element `seq` of a shard lives in slot `seq % B` of the shard's block
//! `seq / B`, which is pool block `table[(seq / B) % R]`; the block's checkpoint is the exact
//! prefix sum of the shard's elements below it. The layout is in the design note
//! ([`crate::design`], *Data*).
//!
//! Once every element of a block has left the window, the writer (or a thief) moves
//! `retired_below` past it and the block can be reused by any shard. Readers validate against
//! `retired_below` after an Acquire fence, and whoever takes a block issues a Release fence
//! before writing it; the design note (*Why the read is consistent: retirement*) has the case
//! analysis.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crossbeam_utils::CachePadded;

use super::planted;
use super::pool::{zeroed, Block, Pool, Slot};
use super::writer::WriterState;
use crate::error::AllocError;
use crate::running::Summary;
use crate::sample::Sample;
use crate::sync::{fence, Arc, AtomicBool, AtomicU64, UnsafeCell};

/// Sizes shared by all shards of one moving average.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// The window `N`.
    pub(crate) window: u64,
    /// log2 of `B`, the slots per block and elements per checkpoint.
    pub(super) shift: u32,
    /// `R - 1`, for the table of `R` block numbers per shard (a power of two, at least
    /// `ceil(N / B) + 4`: the blocks a shard can hold at once, see `retire`).
    pub(super) table_mask: u64,
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
    #[inline]
    pub(crate) fn block(&self) -> u64 {
        1 << self.shift
    }

    /// Entries in each shard's table, which is also enough blocks for one shard holding the
    /// whole window: the size of the pool's first segment.
    #[inline]
    pub(crate) fn table(&self) -> usize {
        self.table_mask as usize + 1
    }

    /// Heap bytes of one shard, blocks aside.
    pub(crate) fn shard_bytes<T: Sample>(&self) -> usize {
        std::mem::size_of::<CachePadded<Shard<T>>>() + self.table() * 8
    }
}

/// What readers load first and last: the sequence lock (`version`), the summary and `start`
/// it guards, and the retirement mark.
pub(super) struct SeqLock {
    /// Twice the number of elements fully written, plus one while an add is writing.
    pub(super) version: AtomicU64,
    /// The oldest element the summary covers; it covers `start .. version / 2`.
    pub(super) start: AtomicU64,
    /// The summary's words ([`Summary::to_words`]).
    pub(super) summary: [AtomicU64; 3],
    /// The shard's blocks below this one may have been reused.
    pub(super) retired_below: AtomicU64,
}

/// One thread's elements, written by the thread holding its claim, read by anyone.
pub(crate) struct Shard<T: Sample> {
    /// What readers load first and last, on its own cache line: the writer stores to it twice
    /// per add, and readers of other shards should not share its line.
    pub(super) seqlock: CachePadded<SeqLock>,
    /// The pool block of the shard's block `j`, at `j % R`.
    pub(super) table: Box<[AtomicU64]>,
    /// The writing thread's private state, touched only by `push`.
    pub(super) writer: UnsafeCell<WriterState<T>>,
    /// Set while a thread owns the shard; shared with that thread's lease.
    pub(crate) claimed: Arc<AtomicBool>,
    /// The shard added to the list before this one; written once, before publication.
    pub(crate) next: *mut CachePadded<Shard<T>>,
    /// The moving average's sizes, copied into each shard so that reads need no other pointer.
    pub(super) geometry: Geometry,
}

// SAFETY: a shard is shared through `&` between its writer and any number of readers. Readers
// and other threads touch only atomics (`seqlock`, `table`, `claimed`) and `geometry`, which is
// never written. `writer`, the one cell, is accessed only by `push`, which runs on the thread
// holding the shard's `Claim` (one thread at a time; a claim passes between threads through
// the Release/Acquire pair on `claimed`). The raw pointers are `next`, written before the shard
// is published and only read after, and the writer's `SlotsPtr`s into the pool, which outlives
// the shard.
unsafe impl<T: Sample> Sync for Shard<T> {}
// SAFETY: nothing in a shard belongs to a thread: it may be dropped by any thread, and its
// raw pointers point into the pool and the shard list of the moving average that owns it.
unsafe impl<T: Sample> Send for Shard<T> {}

impl<T: Sample> Shard<T> {
    /// An empty, unclaimed shard, allocated fallibly, with `first`, a block just taken from
    /// `pool`, as its first block. On error the caller still holds `first`.
    pub(crate) fn new(geometry: Geometry, pool: &Pool, first: u64) -> Result<Self, AllocError> {
        let table = zeroed::<AtomicU64>(geometry.table()).ok_or_else(|| {
            AllocError::new(geometry.window as usize, geometry.shard_bytes::<T>())
        })?;
        // The block may have been another shard's: its readers must see it was retired before
        // they can see our writes (see `retire`). Pairs with the Acquire fence of those readers'
        // validation (`View::validate`, `Snapshot::validate`, the writer's in `evict`).
        if planted::TAKE_FENCE {
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
            seqlock: CachePadded::new(SeqLock {
                version: AtomicU64::new(0),
                start: AtomicU64::new(0),
                summary: empty.map(AtomicU64::new),
                retired_below: AtomicU64::new(0),
            }),
            table,
            writer: UnsafeCell::new(WriterState::new(block.slots)),
            claimed: Arc::new(AtomicBool::new(false)),
            next: std::ptr::null_mut(),
            geometry,
        })
    }

    /// The pool block of the shard's block `j`, as the table says now.
    #[inline(always)]
    pub(super) fn block<'p>(&self, pool: &'p Pool, j: u64) -> Option<Block<'p>> {
        pool.block(self.table[(j & self.geometry.table_mask) as usize].load(Relaxed))
    }

    /// The slots of the shard's block `j`, as the table says now.
    #[inline(always)]
    pub(super) fn slots<'p>(&self, pool: &'p Pool, j: u64) -> &'p [Slot] {
        let number = self.table[(j & self.geometry.table_mask) as usize].load(Relaxed);
        // Table entries only ever hold blocks taken from the pool, whose segments exist.
        pool.slots(number).expect("table entries name taken blocks")
    }

    /// Retires this shard's oldest block for another shard, if every element in it has left
    /// the window for good (stamps below `out_below`, or `N` newer elements in this shard) and
    /// it is not one of the two newest: lets shards whose threads stopped adding give their
    /// memory back.
    /// Returns the block, now the caller's.
    ///
    /// Safe to call from any thread at any time: the writer detects the steal (see `evict`).
    ///
    /// With `idle_only`, only a shard whose newest element is below `out_below` is stolen
    /// from: one whose thread stopped adding. (In the relaxed order the bound lags the window,
    /// and an active writer retires its own blocks at its next add; a steal from it would only
    /// make it re-seed.)
    pub(crate) fn steal(&self, pool: &Pool, out_below: u64, idle_only: bool) -> Option<u64> {
        let seqlock = &*self.seqlock;
        // Acquire pairs with the Release store that ends an add: the table entries and slots
        // of the elements below `count` are written.
        let count = seqlock.version.load(Acquire) / 2;
        // Acquire pairs with the AcqRel compare-exchange that moved the mark to `j` (a retire
        // or an earlier steal): the block's previous retirement happens before ours.
        let j = seqlock.retired_below.load(Acquire);
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
        // then puts that element out of it (see `View::range`). The writer's own retirement
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
        seqlock
            .retired_below
            .compare_exchange(j, j + 1, AcqRel, Relaxed)
            .ok()
            .map(|_| number)
    }
}
