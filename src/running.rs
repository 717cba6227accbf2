//! The exact running sum of a single-owner window, and its reads.
//!
//! Integers keep an `i128`: `2^30` elements below `2^64` in magnitude cannot overflow it, so
//! adding and evicting are one wide addition each, and a mean whose sum is below `2^53` in
//! magnitude is one conversion and one division. Floats keep the exact limbs (the source of
//! truth, `exact.rs`) and a certified estimate next to them (`estimate.rs`), which answers
//! almost every read; the limbs answer the rest and re-seed the estimate.

use std::fmt::Debug;

use crate::estimate::Estimate;
use crate::exact::{float_top, Span};
use crate::sample::Sample;

/// The exact running sum of a window: one per [`Sample`] type.
pub trait RunningSum<T: Sample>: Clone + Debug + Send + Sync + 'static {
    /// The sum of no elements.
    const EMPTY: Self;

    /// Adds an element.
    fn add(&mut self, new: T);

    /// Removes `old`, which was added before and not removed since, and adds `new`.
    fn replace(&mut self, old: T, new: T);

    /// The exact sum, rounded once for floats.
    fn sum(&self) -> T::Sum;

    /// The correctly rounded mean of the `n >= 1` elements summed; `nf` is `n` as an `f64`,
    /// `inv` approximates `1 / n` (callers keep both, so that a read converts nothing).
    fn mean(&self, n: u64, nf: f64, inv: f64) -> f64;

    /// Removes an element: the inverse of [`add`](Self::add).
    fn remove(&mut self, old: T);

    /// Adds every element of `other`. Both must have room for one more update.
    fn merge(&mut self, other: &Self);

    /// Propagates carries between the limbs without changing the value, so that the sum can
    /// take [`MAX_WINDOW`](crate::MAX_WINDOW) more updates.
    fn normalize(&mut self);

    /// The number of words [`write_state`](Self::write_state) appends.
    const STATE_LEN: usize;

    /// Appends the sum's canonical words: equal sums give equal words.
    fn write_state(&self, out: &mut Vec<i64>);

    /// The sum whose canonical words these are, or `None` if they are not canonical.
    fn read_state(words: &[i64]) -> Option<Self>;

    /// The correctly rounded mean of `n >= 1` elements, for any `n`.
    fn mean_of(&self, n: u64) -> f64;
}

/// The running sum of an integer window: exact in an `i128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntSum(pub(crate) i128);

/// The running sum of a float window with `L` limbs (`exact.rs`), the range of limbs that may
/// be nonzero, and the certified estimate.
#[derive(Debug, Clone)]
pub struct FloatSum<const L: usize> {
    pub(crate) limbs: [i64; L],
    pub(crate) span: Span,
    pub(crate) estimate: Estimate,
}

/// An estimate seeded from exact float limbs `[span]` (weights `2^(32 i - bias)`): exact zero
/// for a zero sum, and one that certifies nothing while `non_finite` elements are counted.
pub(crate) fn estimate_of(limbs: &[i64], span: Span, bias: i32, non_finite: bool) -> Estimate {
    if non_finite {
        return Estimate::POISONED;
    }
    match float_top(limbs, span, bias) {
        Some(top) => Estimate::seed(top.neg, top.mag, top.exp),
        None => Estimate::ZERO,
    }
}

/// How a float accumulator reads its exact value (the limb weights and where the counters of
/// non-finite values are), and the reads and maintenance built on it.
pub(crate) trait FloatExact {
    /// Limb `i` counts units of `2^(32 i - BIAS)`.
    const BIAS: i32;
    /// What the non-finite counters make of the sum and mean, if any are nonzero.
    fn non_finite(&self) -> Option<f64>;
    fn limbs_and_span(&self) -> (&[i64], Span);
    fn estimate(&self) -> &Estimate;
    fn estimate_mut(&mut self) -> &mut Estimate;

    /// The exact path: the non-finite counters, then the exact limbs rounded once.
    #[cold]
    #[inline(never)]
    fn exact(&self, n: u64) -> f64 {
        #[cfg(test)]
        stats::count(&stats::EXACT);
        if let Some(v) = self.non_finite() {
            return v;
        }
        let (limbs, span) = self.limbs_and_span();
        let Some(top) = float_top(limbs, span, Self::BIAS) else {
            return 0.0;
        };
        #[cfg(test)]
        stats::count(&stats::DIVISIONS);
        top.div_round(n)
    }

    /// Renormalizes the estimate, and re-seeds it from the limbs if its bound is too loose.
    #[cold]
    #[inline(never)]
    fn maintain(&mut self) {
        self.estimate_mut().renormalize();
        if !self.estimate().needs_seed() {
            return;
        }
        #[cfg(test)]
        stats::count(&stats::SEEDS);
        // Poisoned while non-finite elements are in the window: retried at the next
        // maintenance, until the last of them has left.
        let (limbs, span) = self.limbs_and_span();
        let seed = estimate_of(limbs, span, Self::BIAS, self.non_finite().is_some());
        *self.estimate_mut() = seed;
    }

    /// The sum through the certificate, or the exact path.
    #[inline(always)]
    fn certified_sum(&self) -> f64 {
        match self.estimate().sum() {
            Some(s) => s,
            None => self.exact(1),
        }
    }

    /// The mean through the certificate, or the exact path.
    #[inline(always)]
    fn certified_mean(&self, n: u64, nf: f64, inv: f64) -> f64 {
        match self.estimate().mean(nf, inv) {
            Some(q) => q,
            None => self.exact(n),
        }
    }
}

/// What a shard of a [`ShardedAverage`](crate::ShardedAverage) publishes about a range of its
/// own elements: their exact sum for integers, a certified estimate of it for floats, in
/// three words that readers load under the shard's sequence lock.
pub trait Summary<T: Sample>: Copy + Debug + Send + Sync + 'static {
    /// The summary of no elements.
    const EMPTY: Self;

    /// How many of the three words of [`to_words`](Self::to_words) carry information.
    const WORDS: usize;

    /// Adds an element.
    fn add(&mut self, x: T);

    /// Removes an element that was added.
    fn remove(&mut self, x: T);

    /// Removes `old` and adds `new`.
    fn replace(&mut self, old: T, new: T);

    /// Adds the summary of a disjoint set of elements.
    fn merge(&mut self, other: &Self);

    /// The correctly rounded mean of the `n >= 1` elements, if the summary can prove it.
    fn mean(&self, n: u64) -> Option<f64>;

    /// The sum, if the summary can prove it (exact for integers, correctly rounded for floats).
    fn sum(&self) -> Option<T::Sum>;

    /// Whether the owner should call [`maintain`](Self::maintain) now (every 64 updates).
    fn maintenance_due(&self) -> bool;

    /// Renormalizes; returns whether the summary must be re-seeded from the exact sum.
    fn maintain(&mut self) -> bool;

    /// The summary of the elements whose exact sum the limbs encode.
    fn seed(limbs: &T::Limbs) -> Self;

    fn to_words(&self) -> [u64; 3];

    fn from_words(words: [u64; 3]) -> Self;
}

/// Counts of the slow paths taken by this thread, for tests that report how often the
/// certificate failed.
#[cfg(test)]
pub(crate) mod stats {
    use std::cell::Cell;

    std::thread_local! {
        /// Reads that took the exact path (the certificate failed or could not apply).
        pub(crate) static EXACT: Cell<u64> = const { Cell::new(0) };
        /// Exact-path reads that rounded the exact limbs (all but those answered by the
        /// non-finite counters or a zero sum).
        pub(crate) static DIVISIONS: Cell<u64> = const { Cell::new(0) };
        /// Re-seeds of the estimate from the exact limbs (or attempts, while non-finite
        /// elements are in the window).
        pub(crate) static SEEDS: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) fn count(key: &'static std::thread::LocalKey<Cell<u64>>) {
        key.with(|c| c.set(c.get() + 1));
    }

    /// This thread's `(EXACT, DIVISIONS, SEEDS)` so far.
    pub(crate) fn snapshot() -> (u64, u64, u64) {
        (
            EXACT.with(Cell::get),
            DIVISIONS.with(Cell::get),
            SEEDS.with(Cell::get),
        )
    }
}
