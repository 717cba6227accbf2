//! A thread's claim on a shard: the right to add to it, held by one thread at a time.
//!
//! A claim is taken by flipping the shard's `claimed` flag with an Acquire compare-exchange and
//! given up by a Release store of `false`, so each writer's adds happen before the next
//! writer's. A thread keeps its claim in a lease (`lease.rs`) for as long as it lives.

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crossbeam_utils::CachePadded;

use super::clock::Batch;
use super::pool::Exhausted;
use super::shard::Shard;
use super::writer::Add;
use crate::sample::Sample;
use crate::sync::{Arc, AtomicBool};

/// The calling thread's ownership of one shard: the right to add to it. Made only by
/// [`Claim::try_new`]; dropping it releases the shard, and [`Lease`](super::lease::Lease)
/// keeps one for as long as the thread lives.
pub(crate) struct Claim<'a, T: Sample> {
    shard: &'a CachePadded<Shard<T>>,
}

impl<'a, T: Sample> Claim<'a, T> {
    /// Claims an unowned shard for the calling thread.
    pub(crate) fn try_new(shard: &'a CachePadded<Shard<T>>) -> Option<Self> {
        // Acquire pairs with the Release in `release`: the previous owner's writes to the
        // shard's `writer` state happen before ours.
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
    #[inline]
    pub(crate) fn shard(&self) -> &'a CachePadded<Shard<T>> {
        self.shard
    }

    /// Adds an element to the claimed shard (see [`Shard::push`]).
    ///
    /// # Safety
    ///
    /// `add.pool` must be the pool the shard was created with.
    #[inline]
    pub(crate) unsafe fn push(
        &self,
        add: Add<
            '_,
            T,
            impl FnOnce() -> Result<u64, Exhausted>,
            impl FnOnce(&mut Batch) -> (u64, u64),
        >,
    ) -> Result<(), Exhausted> {
        let shard = self.shard;
        // SAFETY: holding the claim makes this thread the shard's owner, so this is the only
        // access to the shard's `writer` state (ownership passed between threads through the
        // Acquire/Release pair on `claimed`); the caller vouches for the pool.
        shard
            .writer
            .with_mut(|writer| unsafe { shard.push(&mut *writer, add) })
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
