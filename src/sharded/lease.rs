//! Which shard each thread writes to.
//!
//! A thread's first add to a [`ShardedAverage`](crate::ShardedAverage) claims a shard: an
//! unowned one if the list has one (left by a thread that exited), a new one otherwise. The
//! thread records the claim in a thread-local lease, which releases the shard when the thread
//! exits. So each shard has one writer at a time, and the number of shards is the largest
//! number of threads that held one at the same time, never the number of threads
//! that ever added.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::Ordering::Relaxed;

use crossbeam_utils::CachePadded;

use super::claim::{release, Claim};
use super::clock::Clock;
use super::planted;
use crate::sample::Sample;
use crate::sync::{thread_local_key, Arc, AtomicBool};

/// A thread's claim on one shard of one moving average, kept for the thread's life.
pub(crate) struct Lease {
    /// The moving average's unique id (ids are never reused, unlike addresses).
    pub(crate) average_id: u64,
    /// The claimed shard, as [`Claim::into_raw`] gives it; turned back into a claim only by the
    /// moving average with id `average_id`, which keeps its shards alive as long as it lives.
    pub(crate) shard: *const (),
    /// The shard's `claimed` flag, kept alive even if the moving average is dropped first.
    claimed: Arc<AtomicBool>,
    /// In the relaxed order, the clock whose floor the release raises: giving up a shard is an
    /// ordering point.
    clock: Option<Arc<CachePadded<Clock>>>,
}

impl Lease {
    /// Keeps `claim` until the lease is dropped.
    pub(crate) fn new<T: Sample>(
        average_id: u64,
        claim: Claim<'_, T>,
        clock: Option<Arc<CachePadded<Clock>>>,
    ) -> Self {
        let (shard, claimed) = claim.into_raw();
        Lease {
            average_id,
            shard,
            claimed,
            clock,
        }
    }

    /// Whether the moving average this lease belongs to was dropped: the shard held the
    /// other reference to the flag.
    fn is_orphan(&self) -> bool {
        Arc::strong_count(&self.claimed) == 1
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(clock) = &self.clock {
            // Giving up a shard is an ordering point (`planted::RELEASE_ORDERS`).
            if planted::RELEASE_ORDERS {
                clock.order_point();
            }
        }
        release(&self.claimed);
    }
}

/// Hashes moving-average ids, which are distinct counter values the crate hands out (not
/// input an attacker chooses): one multiplication by a 64-bit odd constant spreads them over
/// the high bits, which is where `HashMap` looks.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A thread's leases by moving-average id, with the last one used remembered: a thread that
/// adds to one moving average finds its shard at the first comparison, and one that adds to
/// many (a map of per-key averages) with one hash lookup. Leases of moving averages that were
/// dropped are purged when the map has doubled since the last purge, so a first add costs
/// `O(1)` amortized, never `O(k)` for `k` leases.
#[derive(Default)]
struct Leases {
    by_average: HashMap<u64, Lease, BuildHasherDefault<IdHasher>>,
    /// The moving-average id and shard of the lease used last.
    last: Option<(u64, *const ())>,
    /// Purge orphans when the map reaches this many leases.
    purge_at: usize,
}

thread_local_key! {
    static LEASES: RefCell<Leases> = RefCell::new(Leases::default());
}

/// The thread's lease list is gone: the thread is exiting, and its thread-local storage is
/// being destroyed.
#[derive(Debug)]
pub(crate) struct ThreadExiting;

/// The shard the current thread holds in the moving average with id `average_id` (as
/// [`Claim::into_raw`] gave it), after taking a lease with `claim` if it holds none. Leases of
/// moving averages that no longer exist are dropped once the map has doubled since the last
/// purge.
///
/// `Err(ThreadExiting)` when the thread's lease list is gone (`claim` was not called).
#[inline]
pub(crate) fn get_or_claim<E>(
    average_id: u64,
    claim: impl FnOnce() -> Result<Lease, E>,
) -> Result<Result<*const (), E>, ThreadExiting> {
    LEASES
        .try_with(|leases| {
            let mut leases = leases.borrow_mut();
            if let Some((id, shard)) = leases.last {
                if id == average_id {
                    return Ok(shard);
                }
            }
            let shard = match leases.by_average.get(&average_id) {
                Some(lease) => lease.shard,
                None => {
                    let lease = claim()?;
                    let shard = lease.shard;
                    leases.insert(lease);
                    shard
                }
            };
            leases.last = Some((average_id, shard));
            Ok(shard)
        })
        .map_err(|_| ThreadExiting)
}

impl Leases {
    fn insert(&mut self, lease: Lease) {
        if self.by_average.len() >= self.purge_at {
            self.by_average.retain(|_, l| !l.is_orphan());
            self.purge_at = (2 * self.by_average.len()).max(16);
        }
        self.by_average.insert(lease.average_id, lease);
    }
}

/// How many leases the current thread keeps, for tests of the purge.
#[cfg(test)]
pub(crate) fn count() -> usize {
    LEASES.with(|leases| leases.borrow().by_average.len())
}

/// The shard the current thread holds in the moving average with id `average_id`, for tests.
#[cfg(test)]
pub(crate) fn held(average_id: u64) -> Option<*const ()> {
    LEASES.with(|leases| {
        let leases = leases.borrow();
        leases.by_average.get(&average_id).map(|l| l.shard)
    })
}

/// Ids for moving averages, unique for the life of the process.
pub(crate) fn next_average_id() -> u64 {
    // Only uniqueness matters, which a Relaxed read-modify-write gives.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Relaxed)
}
