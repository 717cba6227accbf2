//! The window of a read in the relaxed order, found by counting elements.
//!
//! The relaxed order's ticket counter has holes, so the window is not the tickets
//! `[to - N, to)` but the `N` elements with the highest stamps: a read bisects the stamps for
//! the highest `from` such that the shards' views hold `N` elements in `[from, to)`, counting
//! each shard's by binary search. The design note ([`crate::design`], *The relaxed order*,
//! *Reads find the window by counting*) has the details.

use super::exact_read::{StartOver, View};
use crate::sample::Sample;

/// Finds the start of the window of the `rank` newest elements with stamps in `[floor, to)`
/// among those the views show: the highest `from >= floor` such that at least `rank` of
/// them (or all) lie in `[from, to)`. `hint` is a guess at or below the answer (the start a
/// recent read found); any value is correct, a close one is fast. Writes each view's range of
/// elements in `[from, to)` to `ranges`.
///
/// `StartOver` if elements the views no longer show (retired blocks) could lie in the window:
/// the read must start over (the design note, *The relaxed order*, shows that the retry does
/// not find them again).
pub(crate) fn select<T: Sample>(
    views: &[View<'_, T>],
    floor: u64,
    hint: u64,
    to: u64,
    rank: u64,
    ranges: &mut [(u64, u64)],
) -> Result<u64, StartOver> {
    debug_assert_eq!(views.len(), ranges.len());
    // `ranges[i].1` is the end of view `i`'s elements below `to`, and `ranges[i].0` its first
    // element at or above the lower bound `low`, where at least `rank` elements lie (or
    // `low == floor`).
    for (view, range) in views.iter().zip(ranges.iter_mut()) {
        let hi = view.partition(view.oldest(), view.published, to);
        *range = (view.oldest(), hi);
    }
    let count = |ranges: &[(u64, u64)]| ranges.iter().map(|&(lo, hi)| hi - lo).sum::<u64>();
    let narrow = |ranges: &mut [(u64, u64)], uppers: Option<&[u64]>, stamp: u64| {
        for (i, (view, range)) in views.iter().zip(ranges.iter_mut()).enumerate() {
            let upper = uppers.map_or(range.1, |u| u[i]);
            range.0 = view.partition(range.0, upper, stamp);
        }
    };
    let mut low = floor;
    if hint > floor {
        let mut guess = ranges.to_vec();
        narrow(&mut guess, None, hint);
        if count(&guess) >= rank {
            low = hint;
            ranges.copy_from_slice(&guess);
        } else {
            narrow(ranges, None, floor);
        }
    } else {
        narrow(ranges, None, floor);
    }
    if count(ranges) > rank {
        // Bisect the stamps in `(low, high)`: `low` has at least `rank` elements at or above
        // it, `high` fewer (at most `to - high` can lie in `[high, to)`). The ranges narrow
        // with each step, so each binary search is short.
        let mut high = (to + 1).saturating_sub(rank).max(low + 1);
        let mut uppers: Vec<u64> = ranges.iter().map(|r| r.1).collect();
        narrow_uppers(views, ranges, &mut uppers, high);
        // The window rarely moves far between reads: try just above `low` first.
        let mut probe = low + 1;
        while high - low > 1 {
            let mut trial = ranges.to_vec();
            narrow(&mut trial, Some(&uppers), probe);
            if count(&trial) >= rank {
                low = probe;
                ranges.copy_from_slice(&trial);
            } else {
                high = probe;
                for (upper, t) in uppers.iter_mut().zip(&trial) {
                    *upper = t.0;
                }
            }
            probe = low + (high - low) / 2;
        }
    }
    let hidden = views
        .iter()
        .zip(ranges.iter())
        .any(|(view, &(lo, _))| lo == view.oldest() && view.oldest() > 0);
    if hidden {
        // Every element the view shows is in the window, so retired ones may be too.
        return Err(StartOver);
    }
    Ok(low)
}

/// Sets each view's `uppers[i]` to its first element at or above `stamp`, searching
/// `ranges[i]`.
fn narrow_uppers<T: Sample>(
    views: &[View<'_, T>],
    ranges: &[(u64, u64)],
    uppers: &mut [u64],
    stamp: u64,
) {
    for ((view, &(lo, hi)), upper) in views.iter().zip(ranges).zip(uppers.iter_mut()) {
        *upper = view.partition(lo, hi, stamp);
    }
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
    select(views, from, from, to, rank, &mut inner).ok()?;
    views
        .iter()
        .zip(&inner)
        .enumerate()
        .filter(|(_, (_, &(lo, hi)))| lo < hi)
        .map(|(i, (view, &(lo, _)))| (view.ticket(lo), i, lo))
        .min()
        .map(|(_, i, seq)| (i, seq))
}
