//! The running sum of a float window: a fixed-point sum for the elements on its grid
//! (`fixed.rs`) and exact limbs (`limbs.rs`) for the rest.

use std::fmt;
use std::marker::PhantomData;

use crate::element::{Float, FloatFormat};
use crate::fixed::{
    cell_add, cell_merge_state, decompose, fixed_digits, fixed_mean, fixed_mean_by,
    fold_into_limbs, grid_around, grid_max, nonzero_finite, normal_on_grid, on_grid, shift_limit,
    unit_of, Reciprocal, GRID_UNSET,
};
use crate::limbs::{accumulate_float, carry_limbs, float_high_bits, non_finite, LimbRange};
use crate::running::{LinearSum, RunningSum};
use crate::state::{float_state_max, read_float_state, write_float_state};

/// A fixed-point sum below `2^96` in magnitude takes `2^30` more updates of a free sum without
/// reaching `2^127` ([`FREE`]).
const SETTLED: u128 = 1 << 96;

/// The exact sum of float elements of format `F` with `L` limbs.
///
/// Exact at all times: the value is `fixed * 2^(grid - BIAS)` plus the value of the limbs.
pub struct FloatSum<F, const L: usize> {
    /// The sum of the elements on the grid, in units of `2^(grid - BIAS)` (wrapping: exact while
    /// those elements are fewer than `elements`, see `fixed.rs`).
    fixed: i128,
    /// The grid, or [`GRID_UNSET`] until the first nonzero finite element.
    grid: u32,
    /// The largest position above the grid that an element on it may have.
    shift_limit: u32,
    /// Zero only while every limb is zero; otherwise the number of elements off the grid, or 1
    /// where that number is not known. Reads take the fixed-point path while it is zero.
    off_grid: i64,
    /// Updates off the grid since the grid was chosen, and how many make a window look for a
    /// better one (its size, doubled after each look that found none, up to `64 N`; never for
    /// free sums).
    off_grid_updates: u64,
    regrid_after: u64,
    /// The most elements the sum holds at once (the window), or [`FREE`] for free sums.
    elements: u64,
    limbs: [i64; L],
    /// The limbs that may be nonzero.
    span: LimbRange,
    format: PhantomData<fn() -> F>,
}

impl<F, const L: usize> Clone for FloatSum<F, L> {
    fn clone(&self) -> Self {
        FloatSum {
            limbs: self.limbs,
            format: PhantomData,
            ..*self
        }
    }
}

impl<F, const L: usize> fmt::Debug for FloatSum<F, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloatSum")
            .field("fixed", &self.fixed)
            .field("grid", &self.grid)
            .field("off_grid", &self.off_grid)
            .finish_non_exhaustive()
    }
}

/// Sums that are not windows never choose their grid again.
const NEVER: u64 = u64::MAX;

/// What free sums (no window) pass as their element count: between two carry propagations
/// they take at most `2^30` updates after a fixed-point sum below [`SETTLED`], and
/// `2^96 + 2^30 * 2^(MANT + 1 + shift_limit(2^31)) < 2^127`.
pub(crate) const FREE: u64 = 1 << 31;

impl<F: FloatFormat, const L: usize> FloatSum<F, L> {
    /// The sum of no elements, for windows of at most `elements <= 2^30` elements, or for free
    /// sums ([`FREE`]).
    pub(crate) fn empty(elements: u64, window: bool) -> Self {
        debug_assert!((1..=FREE).contains(&elements));
        FloatSum {
            fixed: 0,
            grid: GRID_UNSET,
            shift_limit: shift_limit::<F>(elements),
            off_grid: 0,
            off_grid_updates: 0,
            regrid_after: if window { elements } else { NEVER },
            elements,
            limbs: [0; L],
            span: LimbRange::EMPTY,
            format: PhantomData,
        }
    }

    /// The element with these bits as a multiple of the grid unit, if it is a normal float on
    /// the grid. (Zeros and subnormals take the cold path, which places subnormals on a grid at
    /// the bottom there.)
    #[inline(always)]
    fn on_grid(&self, bits: u64) -> Option<i128> {
        normal_on_grid::<F>(bits, self.grid, self.shift_limit)
    }

    #[inline(always)]
    pub(crate) fn add_bits(&mut self, bits: u64) {
        match self.on_grid(bits) {
            Some(v) => self.fixed = self.fixed.wrapping_add(v),
            None => self.off_grid_update(bits, false),
        }
    }

    #[inline(always)]
    pub(crate) fn remove_bits(&mut self, bits: u64) {
        match self.on_grid(bits) {
            Some(v) => self.fixed = self.fixed.wrapping_sub(v),
            None => self.off_grid_update(bits, true),
        }
    }

    #[inline(always)]
    pub(crate) fn replace_bits(&mut self, old: u64, new: u64) {
        match (self.on_grid(old), self.on_grid(new)) {
            (Some(o), Some(v)) => self.fixed = self.fixed.wrapping_add(v.wrapping_sub(o)),
            _ => {
                self.remove_bits(old);
                self.add_bits(new);
            }
        }
    }

    /// Adds or removes an element off the grid: a zero (nothing to do), the first nonzero
    /// finite element (which places the grid), or one for the limbs.
    #[cold]
    #[inline(never)]
    fn off_grid_update(&mut self, bits: u64, remove: bool) {
        let (sign, m, p) = decompose::<F>(bits);
        let finite = p < (F::EXP_MASK - 1) as u32;
        if finite && m == 0 {
            return;
        }
        if finite && self.grid == GRID_UNSET {
            // Nothing nonzero and finite was ever on a grid: every element so far is zero or
            // non-finite, off any grid, so a grid can be chosen now.
            self.grid = grid_around::<F>(m, p, self.shift_limit);
        }
        let shift = p.wrapping_sub(self.grid);
        if finite && shift <= self.shift_limit {
            // A subnormal on a grid at the bottom, or the first element.
            let v = on_grid(sign, m, shift);
            self.fixed = if remove {
                self.fixed.wrapping_sub(v)
            } else {
                self.fixed.wrapping_add(v)
            };
            return;
        }
        let touched = accumulate_float::<F, L>(bits, &mut self.limbs, remove);
        if touched.lo <= touched.hi {
            self.span.cover(touched.lo, touched.hi);
        }
        self.off_grid += if remove { -1 } else { 1 };
        self.off_grid_updates += 1;
        if self.fixed == 0 && self.grid < GRID_UNSET && self.off_grid_updates >= self.elements {
            // Nothing left on the grid (most likely): look again now, whatever the last looks
            // found.
            self.regrid_after = self.regrid_after.min(self.elements);
        }
        if self.off_grid == 0 {
            self.settle_off_grid();
        }
    }

    /// Keeps the invariant of `off_grid`: zero exactly when the limbs are all zero (then
    /// their span is empty); otherwise at least 1.
    fn settle_off_grid(&mut self) {
        if self.limbs.iter().all(|&l| l == 0) {
            self.off_grid = 0;
            self.span = LimbRange::EMPTY;
        } else {
            self.off_grid = self.off_grid.max(1);
        }
    }

    /// The correctly rounded mean of `n >= 1` elements; `nf` is `n` as an `f64`.
    #[inline(always)]
    pub(crate) fn rounded_mean(&self, n: u64, nf: f64) -> f64 {
        if self.off_grid == 0 {
            fixed_mean(self.fixed, unit_of::<F>(self.grid), n, nf)
        } else {
            self.exact(n)
        }
    }

    /// The mean of `r.n()` elements, dividing by multiplying with the reciprocal.
    #[inline(always)]
    pub(crate) fn rounded_mean_by(&self, r: &Reciprocal) -> f64 {
        if self.off_grid == 0 {
            fixed_mean_by(self.fixed, unit_of::<F>(self.grid), r)
        } else {
            self.exact(r.n())
        }
    }

    /// The limbs with the fixed-point sum added, and the span of those that may be nonzero.
    fn total_limbs(&self) -> ([i64; L], LimbRange) {
        let mut limbs = self.limbs;
        let mut span = self.span;
        if self.fixed != 0 {
            let (lo, hi) = fold_into_limbs::<F>(self.fixed, self.grid, &mut limbs);
            span.cover(lo, hi);
        }
        (limbs, span)
    }

    /// The exact path: the non-finite counters, then the limbs and the fixed-point sum rounded
    /// once.
    #[cold]
    #[inline(never)]
    fn exact(&self, n: u64) -> f64 {
        #[cfg(test)]
        crate::stats::count(&crate::stats::EXACT);
        if let Some(v) = non_finite(&self.limbs, F::NUMERIC) {
            return v;
        }
        let top = if self.fixed == 0 {
            float_high_bits(&self.limbs, self.span, F::BIAS)
        } else {
            let (limbs, span) = self.total_limbs();
            float_high_bits(&limbs, span, F::BIAS)
        };
        let Some(top) = top else {
            return 0.0;
        };
        #[cfg(test)]
        crate::stats::count(&crate::stats::DIVISIONS);
        top.div_round(n)
    }

    /// Whether a window should choose its grid again ([`rebuild`](Self::rebuild)): enough
    /// updates went off the grid since it was chosen.
    #[inline(always)]
    pub(crate) fn regrid_due(&self) -> bool {
        self.off_grid_updates >= self.regrid_after
    }

    /// A free sum holding the fixed-point sum `fixed` on grid `grid` of a group
    /// ([`GroupSums`](crate::GroupSums)), settled so that it takes `2^30` more updates.
    pub(crate) fn from_cell(fixed: i128, grid: u32) -> Self {
        let mut sum = FloatSum::empty(FREE, false);
        if fixed != 0 {
            sum.fixed = fixed;
            sum.grid = grid;
            sum.normalize();
        }
        sum
    }

    /// Chooses the grid again for the window's elements, given by their bits with the newest
    /// last, and sums them again if that puts more of them on the grid.
    ///
    /// The new grid covers every nonzero finite element if their positions fit within the
    /// shift limit, and otherwise centres on the newest element (data whose scale moved). A
    /// window looks after `N` updates off the grid, and after a look that found nothing better
    /// waits twice as long, up to `64 N`: `O(1)` per update amortized, however the data
    /// straddles the grid.
    #[cold]
    #[inline(never)]
    pub(crate) fn rebuild(&mut self, elements: impl DoubleEndedIterator<Item = u64> + Clone) {
        #[cfg(test)]
        crate::stats::count(&crate::stats::REGRIDS);
        let limit = self.shift_limit;
        let highest = grid_max::<F>(limit);
        let around_newest = match elements.clone().next_back() {
            Some(bits) if nonzero_finite::<F>(bits) => {
                let (_, m, p) = decompose::<F>(bits);
                grid_around::<F>(m, p, limit)
            }
            _ => GRID_UNSET,
        };
        // Nonzero finite elements: their range, and how many each grid holds.
        let (mut lo, mut hi, mut now, mut covered) = (u32::MAX, 0, 0u64, 0u64);
        let positions = elements
            .clone()
            .filter(|&bits| nonzero_finite::<F>(bits))
            .map(|bits| decompose::<F>(bits).2);
        for p in positions {
            lo = lo.min(p);
            hi = hi.max(p);
            now += u64::from(p.wrapping_sub(self.grid) <= limit);
            covered += u64::from(p.wrapping_sub(around_newest) <= limit);
        }
        let grid = if lo == u32::MAX {
            GRID_UNSET
        } else if hi - lo <= limit {
            lo.min(highest)
        } else if covered > now {
            around_newest
        } else {
            self.back_off();
            return;
        };
        *self = FloatSum::empty(self.elements, true);
        self.grid = grid;
        for bits in elements {
            self.add_bits(bits);
        }
        self.off_grid_updates = 0;
    }

    /// After a look that found nothing better: waits longer before looking again.
    fn back_off(&mut self) {
        self.off_grid_updates = 0;
        self.regrid_after = self.regrid_after.saturating_mul(2).min(64 * self.elements);
    }

    /// Adds every element of `other`, whose limbs must be carried.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (limb, theirs) in self.limbs.iter_mut().zip(&other.limbs) {
            *limb = limb.wrapping_add(*theirs);
        }
        if other.span.lo <= other.span.hi {
            self.span.cover(other.span.lo, other.span.hi);
        }
        if other.fixed != 0 {
            if self.fixed == 0 {
                self.grid = other.grid;
            }
            match self.fixed.checked_add(other.fixed) {
                Some(sum) if self.grid == other.grid && sum.unsigned_abs() < SETTLED => {
                    self.fixed = sum;
                }
                _ => {
                    let (lo, hi) = fold_into_limbs::<F>(other.fixed, other.grid, &mut self.limbs);
                    self.span.cover(lo, hi);
                }
            }
        }
        self.off_grid = self.off_grid.wrapping_add(other.off_grid);
        self.settle_off_grid();
    }

    /// Propagates the limbs' carries, and moves a fixed-point sum of `2^96` or more into them,
    /// so that the sum takes `2^30` more updates.
    pub(crate) fn normalize(&mut self) {
        if self.fixed.unsigned_abs() >= SETTLED {
            fold_into_limbs::<F>(self.fixed, self.grid, &mut self.limbs);
            self.fixed = 0;
        }
        self.span = carry_limbs(&mut self.limbs[..F::NUMERIC]);
        self.settle_off_grid();
    }

    /// Appends the canonical words of the whole sum (`state.rs`).
    pub(crate) fn write_state(&self, out: &mut Vec<i64>) {
        if self.off_grid == 0 {
            // The limbs are zero: the fixed-point sum's five digits say it all.
            Self::write_fixed_state(self.fixed, self.grid, out);
        } else {
            let numeric = F::NUMERIC;
            let counters = [
                self.limbs[numeric],
                self.limbs[numeric + 1],
                self.limbs[numeric + 2],
            ];
            let (mut limbs, _) = self.total_limbs();
            carry_limbs(&mut limbs[..numeric]);
            write_float_state(0, &limbs[..numeric], counters, out);
        }
    }

    /// Appends the canonical words of the fixed-point sum `fixed` on grid `grid` (any grid
    /// while `fixed` is zero).
    pub(crate) fn write_fixed_state(fixed: i128, grid: u32, out: &mut Vec<i64>) {
        if fixed == 0 {
            return;
        }
        // Most sums: the lowest set bit starts a digit run that fits two words.
        let tz = fixed.trailing_zeros();
        let odd = fixed >> tz;
        let bottom = grid + tz;
        if odd.unsigned_abs() < 1 << 96 {
            let w = odd << (bottom % 32);
            let (low, high) = (w as i64, (w >> 64) as i64);
            out.push(i64::from(bottom / 32));
            if high == low >> 63 {
                out.push(low);
            } else {
                out.extend([low, high]);
            }
            return;
        }
        let (idx, digits) = fixed_digits::<F>(fixed, grid.min(grid_max::<F>(0)));
        write_float_state(idx, &digits, [0; 3], out);
    }

    /// The sum whose canonical words these are, or `None` if they are not canonical.
    pub(crate) fn read_state(words: &[i64]) -> Option<Self> {
        let mut sum = FloatSum::empty(FREE, false);
        read_float_state(words, &mut sum.limbs, F::NUMERIC)?;
        sum.normalize();
        Some(sum)
    }
}

impl<T: Float, const L: usize> LinearSum<T> for FloatSum<T::Format, L> {
    type Sum = f64;

    #[inline(always)]
    fn add(&mut self, x: T) {
        self.add_bits(x.to_bits());
    }
    #[inline(always)]
    fn remove(&mut self, x: T) {
        self.remove_bits(x.to_bits());
    }
    #[inline(always)]
    fn replace(&mut self, old: T, new: T) {
        self.replace_bits(old.to_bits(), new.to_bits());
    }
    fn merge(&mut self, other: &Self) {
        FloatSum::merge(self, other);
    }
}

impl<T: Float, const L: usize> RunningSum<T> for FloatSum<T::Format, L> {
    fn empty(elements: u64, window: bool) -> Self {
        FloatSum::empty(elements, window)
    }
    #[inline]
    fn sum(&self) -> f64 {
        self.rounded_mean(1, 1.0)
    }
    #[inline]
    fn mean(&self, n: u64, nf: f64) -> f64 {
        self.rounded_mean(n, nf)
    }
    #[inline(always)]
    fn mean_by(&self, r: &Reciprocal, _: f64) -> f64 {
        self.rounded_mean_by(r)
    }
    fn normalize(&mut self) {
        FloatSum::normalize(self);
    }
    const MAX_STATE_LEN: usize = float_state_max(<T::Format as FloatFormat>::NUMERIC);
    fn write_state(&self, out: &mut Vec<i64>) {
        FloatSum::write_state(self, out);
    }
    fn read_state(words: &[i64]) -> Option<Self> {
        FloatSum::read_state(words)
    }
    #[inline(always)]
    fn cell_add(value: T, fixed: &mut i128, grid: &mut u32) -> bool {
        cell_add::<T::Format>(value.to_bits(), fixed, grid)
    }
    fn cell_merge_state(words: &[i64], fixed: &mut i128, grid: &mut u32) -> bool {
        cell_merge_state::<T::Format>(words, fixed, grid)
    }
    fn cell_mean(fixed: i128, grid: u32, n: u64) -> f64 {
        fixed_mean(fixed, unit_of::<T::Format>(grid), n, n as f64)
    }
    fn cell_sum(fixed: i128, grid: u32) -> f64 {
        fixed_mean(fixed, unit_of::<T::Format>(grid), 1, 1.0)
    }
    fn cell_state(fixed: i128, grid: u32, out: &mut Vec<i64>) {
        FloatSum::<T::Format, L>::write_fixed_state(fixed, grid, out);
    }
    fn from_cell(fixed: i128, grid: u32) -> Self {
        FloatSum::from_cell(fixed, grid)
    }
    fn mean_of(&self, n: u64) -> f64 {
        self.rounded_mean(n, n as f64)
    }
    #[inline(always)]
    fn regrid_due(&self) -> bool {
        FloatSum::regrid_due(self)
    }
    fn rebuild(&mut self, first: &[T], second: &[T]) {
        let bits = first.iter().chain(second).map(|x| x.to_bits());
        FloatSum::rebuild(self, bits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::Binary64;
    use mavg_testkit::XorShift;

    /// The short path of `write_fixed_state` writes what the general encoder writes.
    #[test]
    fn fixed_states_match_the_general_encoder() {
        let mut rng = XorShift::new(7);
        for _ in 0..if cfg!(miri) { 200 } else { 100_000 } {
            let magnitude = rng.next_u64() % 128;
            let fixed = ((u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) as i128)
                >> (127 - magnitude.min(126))
                << (rng.next_u64() % 8);
            let grid = (rng.next_u64() % u64::from(grid_max::<Binary64>(0))) as u32;
            let (mut short, mut general) = (Vec::new(), Vec::new());
            FloatSum::<Binary64, 69>::write_fixed_state(fixed, grid, &mut short);
            let (idx, digits) = fixed_digits::<Binary64>(fixed, grid);
            write_float_state(idx, &digits, [0; 3], &mut general);
            assert_eq!(short, general, "{fixed} on grid {grid}");
        }
    }
}
