//! The lock-free sharded moving average: the list of shards and the reads that combine them.
//!
//! The parts, one file each: a shard's state and geometry (`shard.rs`), its add path
//! (`writer.rs`), a thread's claim on it (`claim.rs`) and the thread-local leases that keep
//! claims (`lease.rs`); the pool the shards' blocks come from (`pool.rs`); a reader's cursor
//! over a shard (`cursor.rs`), the exact read (`exact_read.rs`) and the fast read
//! (`fast_read.rs`) of one shard; the relaxed order's ticket batches (`clock.rs`) and how its
//! reads find the window (`select.rs`); the switches of the planted bugs that the loom models
//! must catch (`planted.rs`).
//!
//! The algorithm, the proof that reads are exact and consistent, the memory bound and every
//! ordering are in `notes/design.md` (published as [`crate::design`]), section *ShardedAverage*;
//! the code's comments point to it rather than repeat it.

mod claim;
mod clock;
mod cursor;
mod exact_read;
mod fast_read;
mod lease;
#[cfg(loom)]
mod loom_hooks;
mod planted;
mod pool;
mod select;
mod shard;
mod writer;

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crossbeam_utils::CachePadded;

use crate::error::{check_window, AllocError, WindowError};
use crate::fixed::Reciprocal;
use crate::limbs::{LimbRange, LimbSum, Limbs};
use crate::running::{LinearSum, Summary};
use crate::sample::Sample;
use crate::sync::{Arc, AtomicPtr, AtomicU64};
use crate::traits::{MovingAverage, SharedMovingAverage};

use claim::Claim;
use clock::{Batch, Clock};
use exact_read::{StartOver, View};
use fast_read::Snapshot;
use lease::{Lease, ThreadExiting};
use pool::{Exhausted, Pool};
use shard::{Geometry, Shard};
use writer::Add;

/// The most shards the fast read of the relaxed order handles; with more, reads take the exact
/// path.
const FAST_SHARDS: usize = 8;

/// A lock-free moving average that any number of threads add to at once.
///
/// [`new`](Self::new) gives the strict order: adds are ordered as they ran, each drawing a
/// ticket from one shared counter. [`relaxed`](Self::relaxed) lets adds of different threads
/// be ordered differently from how they ran, by fewer than a given slack, in return for adds
/// that touch shared memory once per batch, so that they scale with cores; the README's *The
/// relaxed order* states its contract.
///
/// # Progress and cost
///
/// * **Adds are wait-free** once the thread holds a shard, except one in `B` (64 for windows
///   of 256 and more) that starts a new block: one `fetch_add` on the shared ticket counter
///   (in the relaxed order, two loads of a rarely written line, and a `fetch_add` once per
///   batch), then a bounded number of writes to memory only this thread writes. Starting a block is
///   lock-free: a block is popped from a shared free list, stolen from an idle shard, or
///   allocated. A thread's first add to a given moving average claims a shard without locks
///   (an atomic compare-and-swap over the shard list), allocating one if none is free.
/// * **Reads are lock-free**: they never wait for an add. A read starts over only when a
///   block it was reading was retired during the read, which means other threads added.
/// * Reads take `O(S)` for `S` shards when every shard has added recently and no add is in
///   flight: each shard's published summary, adjusted by a few elements, and one rounding. Otherwise `O(S * (log N + 64 + L))`: they never scan the window. A shard whose
///   thread stopped adding while others went on costs nothing once all its elements have left
///   the window; while only some have, reads take the second path.
///
/// # Concurrent reads
///
/// In the strict order, a read that runs while adds are in flight returns exact results (exact sum, correctly
/// rounded mean) over a set of elements *each of which was in the window at the moment the read
/// loaded the ticket counter*: the window's elements at that moment, less those whose add had
/// drawn its ticket but not yet published the element. So a concurrent average always lies
/// between the smallest and the largest element that was in the window during the read, is
/// never NaN unless such an element is NaN, and is exact as soon as adds stop. It is not
/// linearizable: a read may miss an element whose add is still publishing, while including a
/// later one. In the relaxed order, a read returns the exact results of at most `N` elements,
/// each of which was in the window when the read began or was added during the read.
///
/// # Memory
///
/// Bounded by the window, not by the number of threads: elements live in blocks of `B` slots
/// drawn from one pool, and a block goes back to the pool once its elements have left the
/// window (or is stolen from a shard whose thread stopped adding). Memory is committed as the
/// window fills and stays at its high-water mark. The bound and its proof are in the design
/// note ([`crate::design`], *Memory bound*); [`memory_bytes`](ShardedAverage::memory_bytes)
/// reports what one moving average holds.
///
/// # Examples
///
/// ```
/// use mavg::ShardedAverage;
///
/// let latency = ShardedAverage::<f64>::new(1_000)?;
/// std::thread::scope(|s| {
///     for worker in 0..4 {
///         let latency = &latency;
///         s.spawn(move || {
///             for i in 0..500 {
///                 latency.push(f64::from(worker * 1_000 + i));
///             }
///         });
///     }
/// });
/// assert_eq!(latency.len(), 1_000);
/// let avg = latency.average().unwrap();
/// assert!((0.0..4_000.0).contains(&avg));
/// # Ok::<(), mavg::WindowError>(())
/// ```
pub struct ShardedAverage<T: Sample> {
    /// The strict order's ticket counter, and the clear mark: what every read loads first.
    tickets: CachePadded<Tickets>,
    /// In the relaxed order, its ticket counter and the words that go with it; shared with the
    /// leases, whose release is an ordering point. `None` in the strict order.
    relaxed: Option<Arc<CachePadded<Clock>>>,
    /// The most recently added shard; each links to the one added before it.
    head: AtomicPtr<CachePadded<Shard<T>>>,
    geometry: Geometry,
    /// The blocks every shard stores its elements in.
    pool: Pool,
    /// Shards steal blocks from each other only once the pool has handed out this many fresh
    /// ones; raised after a search that found nothing, so searches cost `O(1)` per block
    /// amortized.
    steal_above: AtomicU64,
    /// The grid of the shards' summaries (floats, `fixed.rs`): placed once, by the first
    /// nonzero finite element, and only read after.
    grid: AtomicU64,
    /// The reciprocal of the window: reads of a full window divide by multiplying.
    reciprocal: Reciprocal,
    /// Identifies this moving average in thread-local leases.
    id: u64,
    /// The shards are owned through `head`: `ShardedAverage` is `Send` and `Sync` because
    /// `Shard` is (see the argument on its `Sync` implementation).
    _shards: PhantomData<Shard<T>>,
}

/// The strict order's ticket counter and the clear mark, on one cache line: reads load both,
/// and clears are rare.
struct Tickets {
    /// The next ticket to hand out in the strict order: the number of adds that have started.
    next: AtomicU64,
    /// Elements with tickets (stamps, in the relaxed order) below this were cleared.
    cleared_below: AtomicU64,
}

impl<T: Sample> ShardedAverage<T> {
    /// Creates an empty moving average over the last `window` elements, with one shard
    /// allocated for the first thread that adds.
    ///
    /// # Errors
    ///
    /// [`WindowError::Zero`] for a window of zero, [`WindowError::TooLarge`] above
    /// [`MAX_WINDOW`](crate::MAX_WINDOW), [`WindowError::Alloc`] if the shard cannot be
    /// allocated.
    ///
    /// Room for the whole window is reserved here, allocated zeroed and not touched, so
    /// construction takes microseconds whatever the window, and memory is committed as the
    /// window fills. On a system that overcommits memory (Linux by default), the allocator may
    /// grant a window larger than the machine can hold; the process then fails later, when the
    /// kernel runs out of pages while the window fills (on Linux, the OOM killer), instead of
    /// getting [`WindowError::Alloc`] here. Where overcommit is off, or the request exceeds
    /// what the kernel's heuristic allows (`f64` windows of `2^30` ask for 53 GB of address
    /// space), the error comes here.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::{ShardedAverage, WindowError};
    ///
    /// assert!(ShardedAverage::<u32>::new(16).is_ok());
    /// assert_eq!(ShardedAverage::<u32>::new(0).unwrap_err(), WindowError::Zero);
    /// ```
    pub fn new(window: usize) -> Result<Self, WindowError> {
        Self::with_shards(window, 1)
    }

    /// Creates an empty moving average over the last `window` elements, allocating `shards`
    /// shards up front: enough for that many threads to add without allocating later.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new); nothing is left allocated on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<i64>::with_shards(1024, 8)?;
    /// assert_eq!(m.shard_count(), 8);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn with_shards(window: usize, shards: usize) -> Result<Self, WindowError> {
        Self::build(window, 0, shards)
    }

    /// Creates an empty moving average over the last `window` elements whose adds may be
    /// ordered differently from the order they ran in by fewer than `slack` places, in return
    /// for adds that scale with cores: a thread's add writes only its own shard, and touches
    /// shared memory once per batch of its adds, not once per add. A `slack` of 0 is the
    /// strict order of [`new`](Self::new).
    ///
    /// Every read, [`clear`](SharedMovingAverage::clear) and [`flush`](Self::flush) is an
    /// *ordering point*, and so are a thread's first add and its exit; adds separated by one
    /// are in the order they ran in. Between ordering points, an add `y` that starts after an
    /// add `x` returned may be ordered before `x`, by fewer than `slack` places. So the window
    /// differs from the last `window` adds only among its oldest `slack` or so elements, and
    /// once adds stop it is exactly the last `window` elements of the order: exact sums,
    /// correctly rounded means. The README, *The relaxed order*, states the contract in full;
    /// the design note ([`crate::design`]) proves it.
    ///
    /// Batches grow up to `slack / (2 S)` tickets for `S` shards, so that threads adding at
    /// similar rates use theirs up before they expire: the larger the slack, the less often
    /// threads touch the shared counter. A slack of 4,096 lets two threads draw batches of
    /// 1,024 tickets.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<u64>::relaxed(1_000, 4_096)?;
    /// std::thread::scope(|s| {
    ///     for t in 0..2 {
    ///         let m = &m;
    ///         s.spawn(move || (0..10_000).for_each(|i| m.push(t * 10_000 + i)));
    ///     }
    /// });
    /// // Adds have stopped: the window holds exactly the last 1,000 elements of the order,
    /// // which keeps each thread's own order.
    /// assert_eq!(m.len(), 1_000);
    /// let window = m.to_vec();
    /// for t in 0..2 {
    ///     let mine: Vec<_> = window.iter().filter(|&&v| v / 10_000 == t).collect();
    ///     assert!(mine.windows(2).all(|w| w[0] < w[1]));
    /// }
    ///
    /// // One thread, or adds separated by reads, give the strict window.
    /// (0..1_000).for_each(|i| m.push(i));
    /// assert_eq!(m.to_vec(), (0..1_000).collect::<Vec<_>>());
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn relaxed(window: usize, slack: usize) -> Result<Self, WindowError> {
        Self::build(window, slack, 1)
    }

    /// [`relaxed`](Self::relaxed), allocating `shards` shards up front as
    /// [`with_shards`](Self::with_shards) does.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<f64>::relaxed_with_shards(1024, 4_096, 4)?;
    /// assert_eq!((m.shard_count(), m.slack()), (4, 4_096));
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn relaxed_with_shards(
        window: usize,
        slack: usize,
        shards: usize,
    ) -> Result<Self, WindowError> {
        Self::build(window, slack, shards)
    }

    fn build(window: usize, slack: usize, shards: usize) -> Result<Self, WindowError> {
        check_window(window)?;
        let geometry = Geometry::new(window);
        let limbs = T::Limbs::ZERO.as_ref().len();
        // The first segment holds enough blocks for one shard holding the whole window; it is
        // reserved now, and its pages are committed as blocks are first used.
        let pool = Pool::new(geometry.block() as usize, limbs, geometry.table()).ok_or(
            WindowError::Alloc {
                requested: window,
                bytes: geometry.table() * Pool::bytes_per_block(geometry.block() as usize, limbs),
            },
        )?;
        let this = ShardedAverage {
            tickets: CachePadded::new(Tickets {
                next: AtomicU64::new(0),
                cleared_below: AtomicU64::new(0),
            }),
            relaxed: (slack > 0).then(|| Arc::new(CachePadded::new(Clock::new(slack as u64)))),
            head: AtomicPtr::new(std::ptr::null_mut()),
            geometry,
            pool,
            steal_above: AtomicU64::new(geometry.table() as u64),
            grid: AtomicU64::new(<T::Summary as Summary<T>>::grid_word(window as u64)),
            reciprocal: Reciprocal::new(window as u64),
            id: lease::next_average_id(),
            _shards: PhantomData,
        };
        for _ in 0..shards {
            // On error, `this` is dropped and frees the shards linked so far.
            this.new_shard()?;
        }
        Ok(this)
    }

    /// Adds an element, reporting instead of panicking if the calling thread needs a new
    /// shard or block and it cannot be allocated. On error nothing was added.
    ///
    /// # Errors
    ///
    /// [`AllocError`] if a new shard or block was needed and could not be allocated.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::new(4)?;
    /// m.try_push(2.5f32)?;
    /// assert_eq!(m.average(), Some(2.5));
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), AllocError> {
        let lease = || Ok(Lease::new(self.id, self.claim()?, self.lease_clock()));
        match lease::get_or_claim(self.id, lease) {
            Ok(Ok(shard)) => {
                // SAFETY: a lease with our id holds a claim on one of our shards, made by
                // `Claim::into_raw`, and our shards live as long as `self`.
                let claim = unsafe { Claim::<T>::from_raw(shard) };
                self.push_to(&claim, value)
            }
            Ok(Err(e)) => Err(e),
            // The thread is exiting and has no lease list: claim for this one add, and
            // release when `claim` drops.
            Err(ThreadExiting) => {
                #[cfg(test)]
                tests::ADDS_WITHOUT_LEASES.fetch_add(1, Relaxed);
                let claim = self.claim()?;
                let pushed = self.push_to(&claim, value);
                if let Some(clock) = self.lease_clock() {
                    // Releasing a shard is an ordering point.
                    clock.order_point();
                }
                pushed
            }
        }
    }

    /// The clock a lease raises the floor of when it releases its shard (relaxed order only).
    fn lease_clock(&self) -> Option<Arc<CachePadded<Clock>>> {
        self.relaxed.clone()
    }

    /// The relaxed order's clock; `None` in the strict order.
    #[inline(always)]
    fn clock(&self) -> Option<&Clock> {
        self.relaxed.as_deref().map(|clock| &**clock)
    }

    #[inline(always)]
    fn push_to(&self, claim: &Claim<'_, T>, value: T) -> Result<(), AllocError> {
        if let Some(clock) = self.clock() {
            return self.push_relaxed(clock, claim, value);
        }
        let window = self.geometry.window;
        let draw = |_: &mut Batch| {
            // Release (at least) pairs with readers' Acquire (at least) loads of the counter: a
            // reader that loads a counter past `ticket` sees this thread's earlier adds
            // published (design note, *Orderings of the ticket counter*). SeqCst in fact, see
            // `planted::TICKET_DRAW`.
            let ticket = self.tickets.next.fetch_add(1, planted::TICKET_DRAW);
            // Elements with tickets below this are outside the window of every read that loads
            // a ticket counter past `ticket`. (Clears are left to readers: after one, they walk
            // forward past the cleared elements, or take the exact read until the owner's own
            // window has moved past them.)
            (ticket, (ticket + 1).saturating_sub(window))
        };
        let take = || self.take_block(Some(claim.shard()));
        // SAFETY: every shard of this moving average was created with `self.pool`.
        unsafe { claim.push(self.add(value, take, draw)) }.map_err(|e| self.alloc_error(e))
    }

    /// An add in the relaxed order: stamped from the thread's batch of tickets, evicting what
    /// the last relaxed read found out of the window, and what has `N` newer elements of its
    /// own shard. (Adds do not look for the window's start themselves: a read touches every
    /// shard's lines, and done once per batch it cost two threads 40% of their throughput.)
    #[inline(always)]
    fn push_relaxed(
        &self,
        clock: &Clock,
        claim: &Claim<'_, T>,
        value: T,
    ) -> Result<(), AllocError> {
        let draw = |batch: &mut Batch| (clock.stamp(batch), clock.out_below());
        let take = || self.take_block(Some(claim.shard()));
        // SAFETY: every shard of this moving average was created with `self.pool`.
        let pushed = unsafe { claim.push(self.add(value, take, draw)) };
        pushed.map_err(|e| self.alloc_error(e))
    }

    /// An add of `value` to one of this moving average's shards.
    #[inline(always)]
    fn add<Take, Draw>(&self, value: T, take: Take, draw: Draw) -> Add<'_, T, Take, Draw> {
        Add {
            pool: &self.pool,
            grid: &self.grid,
            value,
            take,
            draw,
        }
    }

    fn alloc_error(&self, _: Exhausted) -> AllocError {
        AllocError::new(self.geometry.window as usize, self.pool.block_bytes())
    }

    /// Claims a free shard, linking a new one if there is none. In the relaxed order this is
    /// the ordering point of a thread's first add.
    fn claim(&self) -> Result<Claim<'_, T>, AllocError> {
        let claim = loop {
            if let Some(claim) = self.shards().find_map(Claim::try_new) {
                break claim;
            }
            // Another thread may claim the new shard first; then we look again.
            if let Some(claim) = Claim::try_new(self.new_shard()?) {
                break claim;
            }
        };
        if let Some(clock) = self.clock() {
            // The ordering point of the thread's first add (`planted::FIRST_ADD_ORDERS`).
            if planted::FIRST_ADD_ORDERS {
                clock.order_point();
            }
        }
        Ok(claim)
    }

    /// Links a new, unclaimed shard.
    fn new_shard(&self) -> Result<&CachePadded<Shard<T>>, AllocError> {
        let first = self.take_block(None).map_err(|e| self.alloc_error(e))?;
        match Shard::new(self.geometry, &self.pool, first) {
            Ok(shard) => Ok(self.link(shard)),
            Err(e) => {
                self.pool.give_back(first);
                Err(e)
            }
        }
    }

    /// Takes a block for shard `own` (`None`: a new shard): one returned to the pool, else one
    /// stolen from a shard whose thread stopped adding while its elements left the window,
    /// else a fresh one.
    fn take_block(&self, own: Option<&CachePadded<Shard<T>>>) -> Result<u64, Exhausted> {
        if let Some(number) = self.pool.take_free() {
            return Ok(number);
        }
        let fresh = self.pool.fresh_count();
        if fresh >= self.steal_above.load(Relaxed) {
            // Elements with stamps below this have left the window for good. In the strict
            // order, any counter value will do: a smaller one only finds fewer blocks out of
            // the window.
            let out_below = match self.clock() {
                None => {
                    let to = self.tickets.next.load(Relaxed);
                    to.saturating_sub(self.geometry.window)
                }
                Some(clock) => clock.out_below(),
            };
            let mut shards = 0;
            for shard in self.shards() {
                shards += 1;
                if own.is_some_and(|own| std::ptr::eq(own, shard)) {
                    continue;
                }
                let idle_only = self.relaxed.is_some();
                if let Some(number) = shard.steal(&self.pool, out_below, idle_only) {
                    return Ok(number);
                }
            }
            // Nothing to steal: let memory grow by a quarter, and a block per shard, before
            // searching again. (Relaxed: a heuristic; any value is safe.)
            self.steal_above
                .fetch_max(fresh + fresh / 4 + shards, Relaxed);
        }
        self.pool.take_fresh()
    }

    /// Pushes a shard onto the list and returns it.
    fn link(&self, shard: Shard<T>) -> &CachePadded<Shard<T>> {
        let node = Box::into_raw(Box::new(CachePadded::new(shard)));
        let mut head = self.head.load(Relaxed);
        loop {
            // SAFETY: `node` is not shared until the compare-exchange below succeeds.
            unsafe { (&mut *node).next = head };
            // Release pairs with the Acquire in `shards`: readers see the initialized shard.
            // The load of `head` and the failure ordering may be Relaxed: we never read the
            // shard `head` points to, and a reader that reaches it through our node still
            // synchronizes with its linker, because our successful compare-exchange continues
            // the release sequence of every earlier one on `head`.
            match self
                .head
                .compare_exchange_weak(head, node, Release, Relaxed)
            {
                Ok(_) => break,
                Err(current) => head = current,
            }
        }
        if let Some(clock) = self.clock() {
            clock.shard_linked();
        }
        // SAFETY: linked shards live until `Drop`.
        unsafe { &*node }
    }

    /// The shards, newest first.
    fn shards(&self) -> impl Iterator<Item = &CachePadded<Shard<T>>> + '_ {
        // Acquire pairs with the Release in `link`.
        let mut next = self.head.load(Acquire);
        std::iter::from_fn(move || {
            // SAFETY: linked shards live until `Drop`; `next` fields are written before the
            // shard is published and never after.
            let shard: &CachePadded<Shard<T>> = unsafe { next.as_ref()? };
            next = shard.next;
            Some(shard)
        })
    }

    /// Makes this moment an ordering point: every add that returned before the call is
    /// ordered before every add that starts after it. Reads and clears are ordering points
    /// already; call this where adds alone must be ordered, for example at the end of a phase
    /// of work whose threads then go on adding. Costs one write to a shared word, and each
    /// thread's next add draws a new batch of tickets. In the strict order, where every add is
    /// in order already, it does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<u32>::relaxed(4, 1_024)?;
    /// std::thread::scope(|s| {
    ///     // One phase: two threads add at once, their adds ordered within the slack.
    ///     s.spawn(|| (0..100).for_each(|i| m.push(i)));
    ///     (100..200).for_each(|i| m.push(i));
    /// });
    /// // The phase's threads returned before this: every add of the next phase is ordered
    /// // after all of theirs.
    /// m.flush();
    /// (1_000..1_004).for_each(|i| m.push(i));
    /// assert_eq!(m.to_vec(), [1_000, 1_001, 1_002, 1_003]);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn flush(&self) {
        if let Some(clock) = self.clock() {
            clock.order_point();
        }
    }

    /// How far an add may be ordered before one that returned before it started, in places:
    /// 0 for the strict order ([`new`](Self::new)), the `slack` given to
    /// [`relaxed`](Self::relaxed) otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// assert_eq!(ShardedAverage::<u8>::new(8)?.slack(), 0);
    /// assert_eq!(ShardedAverage::<u8>::relaxed(8, 64)?.slack(), 64);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn slack(&self) -> usize {
        self.clock().map_or(0, |clock| clock.slack() as usize)
    }

    /// The number of shards allocated: the most threads that held one at the same time (or the
    /// number reserved by [`with_shards`](Self::with_shards), if larger).
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<u64>::new(8)?;
    /// assert_eq!(m.shard_count(), 1);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn shard_count(&self) -> usize {
        self.shards().count()
    }

    /// Bytes in use: the structure, every shard's header and table, and the most blocks that
    /// were ever in use at once. It grows as the window fills, and stays at its high-water mark:
    /// blocks that leave the window are reused, not returned to the allocator.
    ///
    /// The first block segment, enough blocks for the whole window, is reserved (allocated
    /// zeroed) at construction but not counted: its pages are committed only as blocks are
    /// written.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::<f64>::new(1024)?;
    /// let empty = m.memory_bytes();
    /// assert!(empty < 20_000);
    /// for i in 0..10_000 {
    ///     m.push(f64::from(i));
    /// }
    /// // The window's 1,024 elements at 16 bytes each, plus a few blocks and checkpoints.
    /// let full = m.memory_bytes();
    /// assert!(full > empty + 1024 * 16 && full < 2 * 1024 * 16 + empty + 10_000);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.shard_count() * self.geometry.shard_bytes::<T>()
            + self.pool.bytes_in_use()
    }

    /// Runs one read: `visit` is called for each shard with the range of its elements in the
    /// window, on a fresh accumulator each time the read has to start over.
    fn read<A>(
        &self,
        init: impl Fn() -> A,
        mut visit: impl FnMut(&mut A, &View<'_, T>, (u64, u64), u64),
    ) -> A {
        if let Some(clock) = self.clock() {
            return self.relaxed_window(clock, |views, ranges, from, _| {
                let mut acc = init();
                for (view, &range) in views.iter().zip(ranges) {
                    visit(&mut acc, view, range, from);
                }
                acc
            });
        }
        loop {
            // Ticket first, then the clear mark: an element in `[from, to)` was in the window
            // when `to` was loaded. Acquire (at least) pairs with the Release of every draw
            // below `to` (each `fetch_add` continues the release sequence), so of those
            // elements only the last add of each thread may be missing; the clear mark needs no
            // ordering (design note, *Orderings of the ticket counter*). SeqCst in fact, see
            // `planted::TICKET_DRAW`.
            let to = self.tickets.next.load(planted::TICKET_LOAD);
            let from = to
                .saturating_sub(self.geometry.window)
                .max(self.tickets.cleared_below.load(Relaxed));
            let mut acc = init();
            let complete = self.shards().all(|shard| {
                shard
                    .read(&self.pool, |view| {
                        let range = view.range(from, to)?;
                        visit(&mut acc, view, range, from);
                        Ok::<(), StartOver>(())
                    })
                    .and_then(|r| r)
                    .is_ok()
            });
            if complete {
                return acc;
            }
        }
    }

    /// The fast read: each shard's published summary, adjusted to the window. `None` if any
    /// shard was being added to or needs a long adjustment; the exact read is then taken.
    fn summarize(&self) -> Option<(T::Summary, u64)> {
        if let Some(clock) = self.clock() {
            return self.summarize_relaxed(clock);
        }
        // As in `read`: an element in `[from, to)` was in the window when `to` was loaded.
        let to = self.tickets.next.load(planted::TICKET_LOAD);
        let from = to
            .saturating_sub(self.geometry.window)
            .max(self.tickets.cleared_below.load(Relaxed));
        let mut total = <T::Summary as Summary<T>>::EMPTY;
        let mut n = 0;
        for shard in self.shards() {
            let (summary, count) = shard.summary(&self.pool, from, to)?;
            total.merge(&summary);
            n += count;
        }
        Some((total, n))
    }

    /// The fast read in the relaxed order: the shards' published summaries, less their oldest
    /// elements until together they hold the window. `None` if any shard was being added to,
    /// the trim is long, an element below a summary could be in the window, or there are
    /// more than [`FAST_SHARDS`] shards; the exact read is then taken.
    ///
    /// Owners evict only elements that have left the window for good, so the summaries
    /// together usually hold the window and a few elements more; dropping the oldest of all
    /// until `N` remain, and checking that each shard's element below its summary is older
    /// than all of them, gives exactly the `N` highest stamps that the exact read finds.
    fn summarize_relaxed(&self, clock: &Clock) -> Option<(T::Summary, u64)> {
        let to = clock.order_point();
        let cleared = self.tickets.cleared_below.load(Relaxed);
        let mut snapshots: [Option<Snapshot<'_, T>>; FAST_SHARDS] = Default::default();
        let mut shards = 0;
        for shard in self.shards() {
            *snapshots.get_mut(shards)? = Some(shard.snapshot(&self.pool, to)?);
            shards += 1;
        }
        let snapshots = &mut snapshots[..shards];
        let mut n = 0;
        for snapshot in snapshots.iter_mut().flatten() {
            while snapshot.lo < snapshot.hi && snapshot.oldest_stamp() < cleared {
                snapshot.drop_oldest()?;
            }
            n += snapshot.hi - snapshot.lo;
        }
        while n > self.geometry.window {
            // Drop the oldest element of all.
            let mut oldest: Option<(u64, &mut Snapshot<'_, T>)> = None;
            for snapshot in snapshots.iter_mut().flatten() {
                if snapshot.lo < snapshot.hi {
                    let stamp = snapshot.oldest_stamp();
                    if oldest.as_ref().is_none_or(|(s, _)| stamp < *s) {
                        oldest = Some((stamp, snapshot));
                    }
                }
            }
            oldest?.1.drop_oldest()?;
            n -= 1;
        }
        // Everything below the summaries must lie below the window's oldest element (or below
        // the clear mark, when the window is not full).
        let from = if n == self.geometry.window {
            snapshots
                .iter_mut()
                .flatten()
                .filter(|s| s.lo < s.hi)
                .map(|s| s.oldest_stamp())
                .min()
                .unwrap_or(cleared)
        } else {
            cleared
        };
        let mut total = <T::Summary as Summary<T>>::EMPTY;
        for snapshot in snapshots.iter_mut().flatten() {
            if !snapshot.older_below(from)? {
                return None;
            }
            total.merge(&snapshot.summary);
        }
        if !snapshots.iter().flatten().all(Snapshot::validate) {
            return None;
        }
        clock.raise_out_below(from);
        Some((total, n))
    }

    /// Runs `f` on a consistent set of views of every shard, the range of each one's elements
    /// in the window of the relaxed order, the window's first stamp and the ticket counter the
    /// read loaded; starts over when a view turns out stale. The read is an ordering point. The
    /// window's start, once the views are validated, is a bound below which elements have left
    /// the window for good: shards evict by it.
    fn relaxed_window<R>(
        &self,
        clock: &Clock,
        mut f: impl FnMut(&[View<'_, T>], &[(u64, u64)], u64, u64) -> R,
    ) -> R {
        loop {
            let to = clock.order_point();
            let cleared = self.tickets.cleared_below.load(Relaxed);
            let views: Vec<View<'_, T>> = self.shards().map(|s| s.open(&self.pool)).collect();
            let mut ranges = vec![(0, 0); views.len()];
            let window = self.geometry.window;
            let hint = clock.out_below();
            let Ok(from) = select::select(&views, cleared, hint, to, window, &mut ranges) else {
                continue;
            };
            let result = f(&views, &ranges, from, to);
            if views.iter().all(|view| view.validate().is_ok()) {
                clock.raise_out_below(from);
                return result;
            }
        }
    }

    /// The fast read of the average: `None` if it gave up (an add ran on a shard, a long
    /// adjustment, or no certificate), `Some(None)` for an empty window.
    fn fast_mean(&self) -> Option<Option<f64>> {
        match self.summarize()? {
            (_, 0) => Some(None),
            (summary, n) if n == self.reciprocal.n() => {
                summary.try_mean_by(&self.reciprocal).map(Some)
            }
            (summary, n) => summary.try_mean(n).map(Some),
        }
    }

    /// The exact read of the average.
    fn exact_mean(&self) -> Option<f64> {
        let (sum, n) = self.total();
        (n > 0).then(|| sum.exact_mean(Self::full_span(), n))
    }

    fn total(&self) -> (T::Limbs, u64) {
        self.read(
            || (T::Limbs::ZERO, 0u64),
            |(sum, n), view, (lo, hi), _| {
                if lo < hi {
                    view.add_prefix(hi, sum, false);
                    view.add_prefix(lo, sum, true);
                    *n += hi - lo;
                }
            },
        )
    }

    /// Reads combine all shards, so every numeric limb may be nonzero.
    fn full_span() -> LimbRange {
        <T::Limbs as LimbSum<T>>::ALL
    }
}

crate::inherent::inherent_methods!(
    shared ShardedAverage,
    panics: "If the calling thread needs a new shard or block and the memory cannot be had; nothing is added. [`try_push`](Self::try_push) returns the [`AllocError`](crate::AllocError) instead."
);

impl<T: Sample> MovingAverage for ShardedAverage<T> {
    type Item = T;

    fn with_window(window: usize) -> Result<Self, WindowError> {
        Self::new(window)
    }

    crate::inherent::exclusive_through_shared!();

    fn window(&self) -> usize {
        self.geometry.window as usize
    }

    fn len(&self) -> usize {
        self.read(|| 0u64, |n, _, (lo, hi), _| *n += hi - lo) as usize
    }

    fn sum(&self) -> T::Sum {
        if let Some(sum) = self.summarize().and_then(|(summary, _)| summary.try_sum()) {
            return sum;
        }
        let (sum, _) = self.total();
        sum.exact_sum(Self::full_span())
    }

    fn average(&self) -> Option<f64> {
        self.fast_mean().unwrap_or_else(|| self.exact_mean())
    }

    fn oldest(&self) -> Option<T> {
        self.read(
            || None,
            |best: &mut Option<(u64, T)>, view, (lo, hi), _| {
                if lo < hi {
                    let ticket = view.ticket(lo);
                    if best.is_none_or(|(t, _)| ticket < t) {
                        *best = Some((ticket, view.value(lo)));
                    }
                }
            },
        )
        .map(|(_, v)| v)
    }

    fn newest(&self) -> Option<T> {
        self.read(
            || None,
            |best: &mut Option<(u64, T)>, view, (lo, hi), _| {
                if lo < hi {
                    let ticket = view.ticket(hi - 1);
                    if best.is_none_or(|(t, _)| ticket > t) {
                        *best = Some((ticket, view.value(hi - 1)));
                    }
                }
            },
        )
        .map(|(_, v)| v)
    }

    /// The element at position `index` of the window in ticket order; while adds are in
    /// flight, `None` also when the add that drew that position's ticket has not published it
    /// yet.
    fn get(&self, index: usize) -> Option<T> {
        if let Some(clock) = self.clock() {
            return self.relaxed_window(clock, |views, ranges, from, to| {
                let (i, seq) = select::nth(views, ranges, from, to, index as u64)?;
                Some(views[i].value(seq))
            });
        }
        self.read(
            || None,
            |found: &mut Option<T>, view, (lo, hi), from| {
                let Some(ticket) = from.checked_add(index as u64) else {
                    return;
                };
                let seq = view.partition(lo, hi, ticket);
                if seq < hi && view.ticket(seq) == ticket {
                    *found = Some(view.value(seq));
                }
            },
        )
    }

    fn to_vec(&self) -> Vec<T> {
        let mut tagged = self.read(Vec::new, |out, view, (lo, hi), _| {
            out.extend((lo..hi).map(|seq| (view.ticket(seq), view.value(seq))));
        });
        tagged.sort_unstable_by_key(|&(ticket, _)| ticket);
        tagged.into_iter().map(|(_, v)| v).collect()
    }
}

impl<T: Sample> SharedMovingAverage for ShardedAverage<T> {
    /// Adds an element.
    ///
    /// # Panics
    ///
    /// If this is the calling thread's first add and no shard is free, a shard is allocated;
    /// an add that starts a block may need to allocate one (a segment of the pool). If that
    /// allocation fails, this panics with the [`AllocError`], having added nothing. Use
    /// [`try_push`](ShardedAverage::try_push) to get the error instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use mavg::ShardedAverage;
    ///
    /// let m = ShardedAverage::new(2)?;
    /// m.push(1u8);
    /// m.push(2);
    /// m.push(3);
    /// assert_eq!(m.to_vec(), [2, 3]);
    /// # Ok::<(), mavg::WindowError>(())
    /// ```
    #[inline]
    fn push(&self, value: T) {
        if let Err(e) = self.try_push(value) {
            panic!("mavg: {e}");
        }
    }

    /// Removes every element whose add drew its ticket before the clear. Lock-free: the
    /// elements stay in their shards and leave the window by their tickets.
    fn clear(&self) {
        // Relaxed, as the reads: an add that happens before the clear drew a ticket below
        // `now`, and a read that happens after it loads `now` or a later mark (coherence).
        let now = match self.clock() {
            // An ordering point: adds that start after the clear are stamped at or above `now`.
            Some(clock) => clock.order_point(),
            None => self.tickets.next.load(Relaxed),
        };
        self.tickets.cleared_below.fetch_max(now, Relaxed);
    }
}

/// Adds through a shared reference, so several threads can extend at once.
impl<T: Sample> Extend<T> for &ShardedAverage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for value in iter {
            SharedMovingAverage::push(*self, value);
        }
    }
}

impl<T: Sample> Extend<T> for ShardedAverage<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        (&*self).extend(iter);
    }
}

impl<T: Sample> Drop for ShardedAverage<T> {
    fn drop(&mut self) {
        let mut next = self.head.load(Relaxed);
        while !next.is_null() {
            // SAFETY: every linked shard came from `Box::into_raw` in `link` and is freed once,
            // here, where no other reference to the moving average exists. Leases in other
            // threads still hold the address but never dereference it: no moving average
            // reuses this one's id.
            let shard = unsafe { Box::from_raw(next) };
            next = shard.next;
        }
    }
}

impl<T: Sample> fmt::Debug for ShardedAverage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardedAverage")
            .field("window", &self.geometry.window)
            .field("slack", &self.slack())
            .field("shards", &self.shard_count())
            .field("len", &self.len())
            .field("average", &self.average())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::thread;

    use super::*;

    /// Adds that ran while the adding thread's lease list was gone.
    pub(super) static ADDS_WITHOUT_LEASES: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn a_threads_lease_survives_its_adds_to_other_averages() {
        thread::spawn(|| {
            let a = ShardedAverage::<u32>::new(8).unwrap();
            a.push(1);
            let held = lease::held(a.id).expect("a lease after the first add");
            // Enough other averages, all alive, to force purges of the lease map.
            let others: Vec<_> = (0..if cfg!(miri) { 40 } else { 100 })
                .map(|_| ShardedAverage::<u32>::new(8).unwrap())
                .collect();
            for (i, other) in others.iter().enumerate() {
                other.push(i as u32);
                assert_eq!(lease::held(a.id), Some(held), "after adding to average {i}");
            }
            a.push(2);
            assert_eq!(lease::held(a.id), Some(held));
            assert_eq!(lease::count(), others.len() + 1);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn dropped_averages_do_not_grow_a_threads_lease_list() {
        thread::spawn(|| {
            let kept = ShardedAverage::<u32>::new(8).unwrap();
            kept.push(0);
            for i in 0..if cfg!(miri) { 100 } else { 1000 } {
                let m = ShardedAverage::<u32>::new(4).unwrap();
                m.push(i);
                // Purged when the map doubles: never more than twice the live leases, or 16.
                assert!(lease::count() <= 16, "{} leases after {i}", lease::count());
            }
            assert!(lease::held(kept.id).is_some());
        })
        .join()
        .unwrap();
    }

    /// Adds to a moving average from a thread-local destructor. Destructors run in an order
    /// the platform chooses, so each of two threads registers the guard and the lease list in
    /// a different order: in one of them the add runs after the lease list is gone.
    #[test]
    fn adds_from_thread_local_destructors_land_and_release_their_shard() {
        struct AddOnDrop(Arc<ShardedAverage<u64>>, u64);
        impl Drop for AddOnDrop {
            fn drop(&mut self) {
                self.0.push(self.1);
            }
        }
        std::thread_local! {
            static GUARD: RefCell<Option<AddOnDrop>> = const { RefCell::new(None) };
        }
        let m = Arc::new(ShardedAverage::<u64>::new(8).unwrap());
        let before = ADDS_WITHOUT_LEASES.load(Relaxed);
        for guard_first in [true, false] {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                let arm = || GUARD.with(|g| *g.borrow_mut() = Some(AddOnDrop(m.clone(), 7)));
                if guard_first {
                    arm();
                    m.push(1);
                } else {
                    m.push(1);
                    arm();
                }
            })
            .join()
            .unwrap();
        }
        assert_eq!(m.to_vec(), [1, 7, 1, 7]);
        assert!(ADDS_WITHOUT_LEASES.load(Relaxed) > before);
        // Both threads released the shard: a new thread claims it instead of linking another.
        thread::spawn({
            let m = Arc::clone(&m);
            move || m.push(2)
        })
        .join()
        .unwrap();
        assert_eq!(m.shard_count(), 1);
    }

    /// A shard whose thread stopped adding, whose elements all left the window and whose older
    /// blocks were stolen, costs the fast read nothing: it is skipped by its newest element
    /// instead of making every read take the exact path.
    #[test]
    fn fast_reads_skip_idle_shards_whose_blocks_were_stolen() {
        let window = 256;
        let m = ShardedAverage::<u64>::new(window).unwrap();
        let added = std::sync::Barrier::new(2);
        let done = std::sync::Barrier::new(2);
        let (shards, exact, fast) = std::thread::scope(|s| {
            // The other thread adds, then stays alive (holding its shard) until this one has
            // read.
            s.spawn(|| {
                (0..1_000).for_each(|i| m.push(i));
                added.wait();
                done.wait();
            });
            added.wait();
            // This thread's adds push the other shard's elements out of the window and, once
            // the pool has handed out a window's worth of fresh blocks, steal its older blocks.
            (0..5_000).for_each(|i| m.push(1_000_000 + i));
            let read = (m.shard_count(), m.exact_mean(), m.fast_mean());
            done.wait();
            read
        });
        assert_eq!(shards, 2);
        assert_eq!(exact, Some(1_000_000.0 + (4_744.0 + 4_999.0) / 2.0));
        assert_eq!(fast, Some(exact), "the fast read gave up");
    }

    /// After a NaN passes through a shard whose adds each evict several elements, the fast
    /// read answers again once it has left (the summaries count it exactly, with no
    /// maintenance to miss).
    #[test]
    fn fast_reads_return_after_a_nan_leaves_shards_that_evict_several_at_once() {
        for m in [
            ShardedAverage::<f64>::new(8).unwrap(),
            ShardedAverage::<f64>::relaxed(8, 4).unwrap(),
        ] {
            let turn = std::sync::Barrier::new(2);
            let rounds = if cfg!(miri) { 8 } else { 40 };
            std::thread::scope(|s| {
                s.spawn(|| {
                    for round in 0..rounds {
                        for i in 0..5 {
                            m.push(if round == 2 && i == 1 {
                                f64::NAN
                            } else {
                                0.25 * i as f64
                            });
                        }
                        turn.wait();
                        turn.wait();
                    }
                });
                for _ in 0..rounds {
                    turn.wait();
                    // Each of these adds evicts the other shard's elements that left, several
                    // at a time after the other thread's turn.
                    (0..5).for_each(|i| m.push(1.5 + i as f64));
                    if let Some(fast) = m.fast_mean() {
                        let bits = |x: Option<f64>| x.map(f64::to_bits);
                        assert_eq!(bits(fast), bits(m.exact_mean()));
                    }
                    turn.wait();
                }
                let exact = m.exact_mean().expect("nonempty");
                assert!(!exact.is_nan());
                assert_eq!(m.fast_mean(), Some(Some(exact)), "the fast read gave up");
            });
        }
    }
}
