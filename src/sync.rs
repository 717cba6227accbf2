//! The one place that decides whether the crate's atomics, cells, locks and thread-locals
//! come from `std` or from `loom`.
//!
//! Every synchronizing primitive in the crate is imported from here, so a build with
//! `RUSTFLAGS="--cfg loom"` model-checks the real code, not a copy of it. One exception: the
//! counter that hands out moving-average ids (`lease.rs`) is a `static` std atomic, because it
//! synchronizes nothing (only uniqueness matters) and loom's atomics cannot be statics.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// `loom::cell::UnsafeCell` under loom; a zero-cost wrapper with the same closure-based API
/// over `std::cell::UnsafeCell` otherwise.
#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a mutable pointer to the contents; the caller guarantees exclusivity.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// `thread_local!` from loom under loom (so each model execution gets fresh values), from std
/// otherwise.
macro_rules! thread_local_key {
    ($($tts:tt)+) => {
        #[cfg(loom)]
        loom::thread_local! { $($tts)+ }
        #[cfg(not(loom))]
        std::thread_local! { $($tts)+ }
    };
}
pub(crate) use thread_local_key;

/// Stores through `&mut`, without an atomic operation (std's `get_mut`, loom's `with_mut`).
#[inline(always)]
pub(crate) fn store_mut(atomic: &mut AtomicU64, value: u64) {
    #[cfg(not(loom))]
    {
        *atomic.get_mut() = value;
    }
    #[cfg(loom)]
    atomic.with_mut(|v| *v = value);
}
