//! The blocks that hold every shard's elements, drawn from one pool per moving average.
//!
//! A shard stores its elements in blocks of `B` slots. It takes a block from the pool when it
//! starts one and gives it back once every element in it has left the window, so the blocks in
//! use hold about the window, however many shards there are: memory follows the window, not the
//! number of threads.
//!
//! Blocks are never returned to the allocator while the moving average lives: a block that went
//! back to the pool is reused, by any shard, and a reader that still looks at it detects the
//! reuse through the shard's `retired_below` mark (see `shard.rs`) and starts over. Every word
//! of a block is an atomic, so reading a reused block is a stale read, never undefined
//! behaviour, and no reader has to be waited for before a block is reused: the reason this
//! module needs no epoch-based reclamation.
//!
//! # Layout
//!
//! Blocks are numbered `0, 1, 2, ...` and live in segments: segment 0 holds the first `F`
//! blocks (`F` is a power of two, enough for one shard's share of a full window), segment
//! `k >= 1` the next `F * 2^(k-1)`. Segments are allocated zeroed on first use and never move,
//! so a block number resolves to the same memory for the pool's whole life, and a block's
//! pages are committed only once a shard writes to it.
//!
//! # The free list
//!
//! Returned blocks form a lock-free stack (Treiber's), linked through `next_free`. The head
//! packs the top block's number plus one (zero for empty) with a 32-bit tag that every
//! successful push and pop increments, so a pop that was preempted while the same block was
//! popped and pushed back fails its compare-exchange instead of installing a stale link. (The
//! tag would have to wrap around, 2^32 pool operations during one pop, for that to fail.)

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::sync::{AtomicPtr, AtomicU64};

/// One element: its global ticket and its bits.
pub(crate) struct Slot {
    /// The element's global ticket: its place in the order of all adds.
    pub(crate) ticket: AtomicU64,
    /// The element's bits ([`Element::to_bits`](crate::element::Element::to_bits)).
    pub(crate) value: AtomicU64,
}

/// Types whose all-zero bytes are a valid value: atomics of integers, and structs of them.
///
/// # Safety
///
/// Implementors must be valid, initialized values when every byte is zero, and have no drop
/// glue that could observe a difference from values created by `new(0)`.
pub(crate) unsafe trait Zeroable {
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
/// reserving a large window costs no time and commits memory only as it is written.
#[cfg(not(loom))]
pub(crate) fn zeroed<T: Zeroable>(len: usize) -> Option<Box<[T]>> {
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
pub(crate) fn zeroed<T: Zeroable>(len: usize) -> Option<Box<[T]>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.extend((0..len).map(|_| T::zero()));
    Some(v.into_boxed_slice())
}

/// A block: `B` slots and the shard's exact prefix sum up to the block's first slot.
#[derive(Clone, Copy)]
pub(crate) struct Block<'a> {
    pub(crate) slots: &'a [Slot],
    pub(crate) checkpoint: &'a [AtomicU64],
}

/// Blocks `first .. first + len` of the pool, contiguous in memory.
struct Segment {
    slots: Box<[Slot]>,
    checkpoints: Box<[AtomicU64]>,
    /// The free list's links: the number plus one of the block below, zero at the bottom.
    next_free: Box<[AtomicU64]>,
}

/// Segments 0 to 32 cover every block number below `2^32 * F`, more than the free list's
/// 32-bit numbers can name.
const SEGMENTS: usize = 33;

pub(crate) struct Pool {
    segments: [AtomicPtr<Segment>; SEGMENTS],
    /// log2 of `F`, the blocks in segment 0.
    first_shift: u32,
    /// Slots per block (a power of two).
    block: usize,
    /// Checkpoint words per block.
    limbs: usize,
    /// Blocks handed out from the segments so far; the next fresh block's number.
    fresh: AtomicU64,
    /// The free list's head: tag in the high 32 bits, top block number plus one in the low.
    free: AtomicU64,
}

/// The pool ran out of memory, or of block numbers.
#[derive(Debug)]
pub(crate) struct Exhausted;

impl Pool {
    /// A pool of blocks of `block` slots and `limbs` checkpoint words, with segment 0
    /// (`first` blocks, a power of two) reserved now. `None` if that reservation fails.
    pub(crate) fn new(block: usize, limbs: usize, first: usize) -> Option<Self> {
        debug_assert!(block.is_power_of_two() && first.is_power_of_two());
        let pool = Pool {
            segments: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            first_shift: first.trailing_zeros(),
            block,
            limbs,
            fresh: AtomicU64::new(0),
            free: AtomicU64::new(0),
        };
        pool.segment(0)?;
        Some(pool)
    }

    /// Bytes one block takes.
    pub(crate) fn block_bytes(&self) -> usize {
        Self::bytes_per_block(self.block, self.limbs)
    }

    /// Bytes a block of `block` slots and `limbs` checkpoint words takes, with its link.
    pub(crate) fn bytes_per_block(block: usize, limbs: usize) -> usize {
        block * std::mem::size_of::<Slot>() + (limbs + 1) * 8
    }

    /// Bytes of the blocks handed out so far: the most blocks ever in use at once, which are
    /// the ones whose pages were written.
    pub(crate) fn bytes_in_use(&self) -> usize {
        self.fresh.load(Relaxed) as usize * self.block_bytes()
    }

    /// The segment holding block `number`, and the block's index inside it.
    #[inline]
    fn locate(&self, number: u64) -> (usize, usize) {
        let q = number >> self.first_shift;
        if q == 0 {
            (0, number as usize)
        } else {
            let k = 64 - q.leading_zeros() as usize;
            (
                k,
                (number - ((1u64 << self.first_shift) << (k - 1))) as usize,
            )
        }
    }

    /// Blocks in segment `k`.
    fn segment_len(&self, k: usize) -> usize {
        (1usize << self.first_shift) << k.saturating_sub(1)
    }

    /// Segment `k`, allocated if it was not yet; `None` if the allocation fails.
    fn segment(&self, k: usize) -> Option<&Segment> {
        // Acquire pairs with the AcqRel compare-exchange below: the segment's zeroed memory is
        // visible before its address is.
        let mut ptr = self.segments[k].load(Acquire);
        if ptr.is_null() {
            let len = self.segment_len(k);
            let segment = Box::new(Segment {
                slots: zeroed(len.checked_mul(self.block)?)?,
                checkpoints: zeroed(len.checked_mul(self.limbs)?)?,
                next_free: zeroed(len)?,
            });
            let new = Box::into_raw(segment);
            // AcqRel: Release publishes our segment; Acquire sees the winner's if we lose.
            match self.segments[k].compare_exchange(ptr, new, AcqRel, Acquire) {
                Ok(_) => ptr = new,
                Err(current) => {
                    // SAFETY: `new` came from `Box::into_raw` above and was never shared.
                    drop(unsafe { Box::from_raw(new) });
                    ptr = current;
                }
            }
        }
        // SAFETY: installed segments are freed only by `Drop`, which has exclusive access.
        Some(unsafe { &*ptr })
    }

    /// Block `number`, or `None` if no block of that number was ever handed out (a reader that
    /// loaded a number from a table entry being rewritten may ask; it then starts over).
    #[inline]
    pub(crate) fn block(&self, number: u64) -> Option<Block<'_>> {
        let (segment, i) = self.installed(number)?;
        let l = self.limbs;
        Some(Block {
            slots: segment.slots.get(i * self.block..(i + 1) * self.block)?,
            checkpoint: segment.checkpoints.get(i * l..(i + 1) * l)?,
        })
    }

    /// The slots of block `number`: [`block`](Self::block) without the checkpoint.
    #[inline]
    pub(crate) fn slots(&self, number: u64) -> Option<&[Slot]> {
        let (segment, i) = self.installed(number)?;
        segment.slots.get(i * self.block..(i + 1) * self.block)
    }

    /// The installed segment holding block `number`, and the block's index in it; `None` if
    /// that segment was never allocated. (Unlike [`segment`](Self::segment), never allocates.)
    #[inline(always)]
    fn installed(&self, number: u64) -> Option<(&Segment, usize)> {
        let (k, i) = self.locate(number);
        // Acquire, as in `segment`.
        let ptr = self.segments.get(k)?.load(Acquire);
        // SAFETY: installed segments are freed only by `Drop`.
        Some((unsafe { ptr.as_ref()? }, i))
    }

    /// The free-list link of block `number`, which was handed out and so exists.
    fn link(&self, number: u64) -> &AtomicU64 {
        let (k, i) = self.locate(number);
        let segment = self
            .segment(k)
            .expect("a handed-out block's segment exists");
        &segment.next_free[i]
    }

    /// Takes the most recently returned block, if any.
    ///
    /// The caller must issue a Release fence between taking a block (from here, from
    /// [`take_fresh`](Self::take_fresh) or by stealing it) and its first store to the block:
    /// that fence is what tells a reader of the block's previous shard that it was reused (see
    /// `shard.rs`).
    pub(crate) fn take_free(&self) -> Option<u64> {
        // Acquire pairs with the Release of the push that returned the block: the link read
        // below, and the returning shard's `retired_below` update, happen before our use.
        let mut head = self.free.load(Acquire);
        while head as u32 != 0 {
            let top = u64::from(head as u32 - 1);
            let below = self.link(top).load(Relaxed);
            let new = (head >> 32).wrapping_add(1) << 32 | below;
            // Acquire on both outcomes, as the first load: a failure hands us the head the next
            // attempt reads the link of and takes.
            match self.free.compare_exchange_weak(head, new, Acquire, Acquire) {
                Ok(_) => return Some(top),
                Err(current) => head = current,
            }
        }
        None
    }

    /// Takes a block never used before, allocating its segment if needed.
    pub(crate) fn take_fresh(&self) -> Result<u64, Exhausted> {
        // Only uniqueness matters for fresh numbers.
        let number = self.fresh.fetch_add(1, Relaxed);
        if number >= u64::from(u32::MAX) {
            return Err(Exhausted);
        }
        let (k, _) = self.locate(number);
        self.segment(k).ok_or(Exhausted)?;
        Ok(number)
    }

    /// Blocks handed out fresh so far.
    pub(crate) fn fresh_count(&self) -> u64 {
        self.fresh.load(Relaxed)
    }

    /// Returns a block whose elements have all left the window.
    pub(crate) fn give_back(&self, number: u64) {
        let mut head = self.free.load(Relaxed);
        loop {
            self.link(number).store(head & u64::from(u32::MAX), Relaxed);
            let new = (head >> 32).wrapping_add(1) << 32 | (number + 1);
            // Release pairs with the Acquire in `take_free`; each successful compare-exchange
            // continues the release sequence, so a later taker synchronizes with every push
            // below it, not only the last.
            match self.free.compare_exchange_weak(head, new, Release, Relaxed) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for segment in &self.segments {
            let ptr = segment.load(Relaxed);
            if !ptr.is_null() {
                // SAFETY: installed by `segment` from `Box::into_raw`, freed once, here, where
                // the pool is no longer shared.
                drop(unsafe { Box::from_raw(ptr) });
            }
        }
    }
}
