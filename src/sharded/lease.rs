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
use std::sync::Arc;

use crate::sync::{thread_local_key, AtomicBool};

/// A thread's claim on one shard of one moving average.
pub(crate) struct Lease {
    /// The moving average's unique id (ids are never reused, unlike addresses).
    pub(crate) owner: u64,
    /// The claimed shard; dereferenced only through the moving average with id `owner`,
    /// which keeps its shards alive as long as it lives.
    pub(crate) shard: *const (),
    /// The shard's `claimed` flag, kept alive even if the moving average is dropped first.
    claimed: Arc<AtomicBool>,
}

impl Lease {
    pub(crate) fn new(owner: u64, shard: *const (), claimed: Arc<AtomicBool>) -> Self {
        Lease {
            owner,
            shard,
            claimed,
        }
    }

    /// Whether the moving average this lease belongs to was dropped.
    fn is_orphan(&self) -> bool {
        Arc::strong_count(&self.claimed) == 1
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Release pairs with the Acquire of the next owner's claim: our writes to the shard
        // happen before theirs.
        self.claimed
            .store(false, std::sync::atomic::Ordering::Release);
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
    by_owner: HashMap<u64, Lease, BuildHasherDefault<IdHasher>>,
    /// The owner id and shard of the lease used last.
    last: Option<(u64, *const ())>,
    /// Purge orphans when the map reaches this many leases.
    purge_at: usize,
}

thread_local_key! {
    static LEASES: RefCell<Leases> = RefCell::new(Leases::default());
}

/// The shard the current thread holds in moving average `owner`, if any.
///
/// `Err(())` when the thread's lease list is gone (the thread is exiting).
#[inline]
pub(crate) fn find(owner: u64) -> Result<Option<*const ()>, ()> {
    try_with(|leases| {
        let mut leases = leases.borrow_mut();
        if let Some((id, shard)) = leases.last {
            if id == owner {
                return Some(shard);
            }
        }
        let shard = leases.by_owner.get(&owner)?.shard;
        leases.last = Some((owner, shard));
        Some(shard)
    })
}

/// Records a new lease, dropping leases of moving averages that no longer exist once the map
/// has doubled since the last purge.
///
/// Returns the lease back if the thread's lease list is gone.
pub(crate) fn insert(lease: Lease) -> Result<(), Lease> {
    let mut lease = Some(lease);
    let stored = try_with(|leases| {
        let mut leases = leases.borrow_mut();
        if leases.by_owner.len() >= leases.purge_at {
            leases.by_owner.retain(|_, l| !l.is_orphan());
            leases.purge_at = (2 * leases.by_owner.len()).max(16);
        }
        let lease = lease.take().expect("taken once");
        leases.last = Some((lease.owner, lease.shard));
        leases.by_owner.insert(lease.owner, lease);
    });
    match stored {
        Ok(()) => Ok(()),
        Err(()) => Err(lease.take().expect("not taken when the list is gone")),
    }
}

fn try_with<R>(f: impl FnOnce(&RefCell<Leases>) -> R) -> Result<R, ()> {
    LEASES.try_with(f).map_err(|_| ())
}

/// Ids for moving averages, unique for the life of the process.
pub(crate) fn next_owner_id() -> u64 {
    // Only uniqueness matters, which a Relaxed read-modify-write gives.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, Relaxed)
}
