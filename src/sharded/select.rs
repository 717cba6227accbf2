//! The window of a read in the relaxed order, found by counting elements.
//!
//! In the strict order tickets are dense, so the window is the tickets `[to - N, to)`. In the
//! relaxed order the ticket counter has holes (tickets of batches given up, and the unused
//! rest of the batches in use), so the window is the `N` elements with the highest stamps,
//! and a read finds where it starts: the highest stamp `from` such that the shards hold `N`
//! elements with stamps in `[from, to)`.
//!
//! Each shard's stamps increase with its seq, so the number of elements at or above a stamp is
//! a sum of binary searches. The search descends from `to - N` (at most `N` elements lie at or
//! above it, since stamps are unique): if `c < N` elements lie at or above the candidate, the
//! window starts at least `N - c` tickets lower, and never further, because each ticket holds
//! at most one element. Each step's count is at most `N`, so the descent never passes the
//! window's start, and each step skips the holes it found; the holes are at most two per
//! element (`clock.rs`), so a few steps suffice.

use super::shard::{Stale, View};
use crate::sample::Sample;

/// Finds the start of the window of the `rank` newest elements with stamps in `[floor, to)`
/// among those the views show: the highest `from >= floor` such that at least `rank` of
/// them (or all) lie in `[from, to)`. Writes each view's range of elements in `[from, to)` to
/// `ranges`.
///
/// `Stale` if elements the views no longer show (retired blocks) could lie in the window:
/// the read must start over (the design note, *The relaxed order*, shows that the retry does
/// not find them again).
pub(crate) fn select<T: Sample>(
    views: &[View<'_, T>],
    floor: u64,
    to: u64,
    rank: u64,
    ranges: &mut [(u64, u64)],
) -> Result<u64, Stale> {
    debug_assert_eq!(views.len(), ranges.len());
    let mut from = to.saturating_sub(rank).max(floor);
    for (view, range) in views.iter().zip(ranges.iter_mut()) {
        let hi = view.partition(view.oldest(), view.published, to);
        *range = (view.partition(view.oldest(), hi, from), hi);
    }
    loop {
        let count: u64 = ranges.iter().map(|&(lo, hi)| hi - lo).sum();
        if count >= rank || from == floor {
            break;
        }
        // `rank - count` more elements are needed, each at a ticket of its own below `from`.
        from = from.saturating_sub(rank - count).max(floor);
        for (view, range) in views.iter().zip(ranges.iter_mut()) {
            range.0 = view.partition(view.oldest(), range.0, from);
        }
    }
    let hidden = views
        .iter()
        .zip(ranges.iter())
        .any(|(view, &(lo, _))| lo == view.oldest() && view.oldest() > 0);
    if hidden {
        // Every element the view shows is in the window, so retired ones may be too.
        return Err(Stale);
    }
    Ok(from)
}

/// Among the views' elements in `ranges`, the view holding the one at `index` in stamp order,
/// and its seq.
pub(crate) fn nth<T: Sample>(
    views: &[View<'_, T>],
    ranges: &[(u64, u64)],
    from: u64,
    to: u64,
    index: u64,
) -> Option<(usize, u64)> {
    let count: u64 = ranges.iter().map(|&(lo, hi)| hi - lo).sum();
    let rank = count.checked_sub(index).filter(|&rank| rank > 0)?;
    // The element sought is the oldest of the `rank` newest: the start of their window.
    let mut inner = ranges.to_vec();
    select(views, from, to, rank, &mut inner).ok()?;
    views
        .iter()
        .zip(&inner)
        .enumerate()
        .filter(|(_, (_, &(lo, hi)))| lo < hi)
        .map(|(i, (view, &(lo, _)))| (view.ticket(lo), i, lo))
        .min()
        .map(|(_, i, seq)| (i, seq))
}
