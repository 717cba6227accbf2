//! What a shard of a [`ShardedAverage`](crate::ShardedAverage) of floats publishes about its
//! elements: their fixed-point sum on the average's one grid (`fixed.rs`), and how many are off
//! it.

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;

use crate::element::{Float, FloatFormat};
use crate::fixed::{
    decompose, fixed_mean, fixed_mean_by, grid_around, nonzero_finite, normal_on_grid, shift_limit,
    unit_of, Reciprocal, GRID_UNSET,
};
use crate::running::{LinearSum, Summary};
use crate::sync::AtomicU64;

/// What a shard of a [`ShardedAverage`](crate::ShardedAverage) of floats publishes about a
/// range of its elements: the fixed-point sum of those on the grid and the number of the others
/// (nonzero values off the grid and non-finite values). While that number is zero, the sum is
/// exact and a read rounds it once ([`fixed_mean`]); otherwise it takes the exact path.
///
/// The grid is shared by all the shards of an average, so that their summaries add: the first
/// nonzero finite element added through any shard places it ([`place`](Self::place)), and it
/// never moves. Before that, every element is zero or non-finite, and those are off every grid.
/// The sum wraps; it is exact for the at most `window` elements a read sums in the end, whose
/// shift limit the shared word carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedSummary<F> {
    fixed: i128,
    grid: u32,
    limit: u32,
    /// Elements off the grid, wrapping (a reader's adjustments may pass below zero on the way).
    off: u32,
    format: PhantomData<fn() -> F>,
}

impl<F: FloatFormat> FixedSummary<F> {
    pub(crate) const EMPTY: Self = FixedSummary {
        fixed: 0,
        grid: GRID_UNSET,
        limit: 0,
        off: 0,
        format: PhantomData,
    };

    /// Adds or removes the element with these bits. Normal values may be on the grid; zeros
    /// count nowhere; subnormals, non-finite values and normal values off the grid count as
    /// off it.
    #[inline(always)]
    pub(crate) fn update(&mut self, bits: u64, remove: bool) {
        if let Some(v) = normal_on_grid::<F>(bits, self.grid, self.limit) {
            self.fixed = if remove {
                self.fixed.wrapping_sub(v)
            } else {
                self.fixed.wrapping_add(v)
            };
        } else if bits << (64 - F::MANT - F::EXP_MASK.count_ones()) != 0 {
            self.off = if remove {
                self.off.wrapping_sub(1)
            } else {
                self.off.wrapping_add(1)
            };
        }
    }

    /// Places the grid: the average's, or one around this element if it has none yet (the
    /// first to place it wins).
    #[cold]
    #[inline(never)]
    pub(crate) fn place(&mut self, bits: u64, shared: &AtomicU64) {
        // Relaxed: the word is a value written once; nothing else is published with it.
        let mut word = shared.load(Relaxed);
        if word as u32 == GRID_UNSET {
            let limit = (word >> 32) as u32;
            let (_, m, p) = decompose::<F>(bits);
            let grid = grid_around::<F>(m, p, limit);
            let placed = u64::from(grid) | (u64::from(limit) << 32);
            word = match shared.compare_exchange(word, placed, Relaxed, Relaxed) {
                Ok(_) => placed,
                Err(current) => current,
            };
        }
        self.grid = word as u32;
        self.limit = (word >> 32) as u32;
    }
}

impl<T: Float> LinearSum<T> for FixedSummary<T::Format> {
    type Sum = f64;

    #[inline(always)]
    fn add(&mut self, x: T) {
        self.update(x.to_bits(), false);
    }
    #[inline(always)]
    fn remove(&mut self, x: T) {
        self.update(x.to_bits(), true);
    }
    /// Adds the summary of a disjoint set of elements (on the same grid, or none).
    fn merge(&mut self, other: &Self) {
        if self.grid == GRID_UNSET {
            self.grid = other.grid;
            self.limit = other.limit;
        } else if other.grid != GRID_UNSET && other.grid != self.grid {
            // Never: the grid is placed once per average. Certify nothing if it happened.
            self.off = self.off.wrapping_add(1 << 31);
        }
        self.fixed = self.fixed.wrapping_add(other.fixed);
        self.off = self.off.wrapping_add(other.off);
    }
}

impl<T: Float> Summary<T> for FixedSummary<T::Format> {
    const EMPTY: Self = Self::EMPTY;
    const WORDS: usize = 3;

    #[inline]
    fn try_mean(&self, n: u64) -> Option<f64> {
        let unit = unit_of::<T::Format>(self.grid);
        (self.off == 0).then(|| fixed_mean(self.fixed, unit, n, n as i64 as f64))
    }
    #[inline]
    fn try_sum(&self) -> Option<f64> {
        Summary::<T>::try_mean(self, 1)
    }
    #[inline]
    fn try_mean_by(&self, r: &Reciprocal) -> Option<f64> {
        (self.off == 0).then(|| fixed_mean_by(self.fixed, unit_of::<T::Format>(self.grid), r))
    }
    /// The summary of no elements, on this one's grid.
    fn cleared(&self) -> Self {
        FixedSummary {
            fixed: 0,
            off: 0,
            ..*self
        }
    }

    /// Whether the grid must be placed before the element with these bits is added: there is
    /// none yet and the element is nonzero and finite.
    #[inline(always)]
    fn wants_grid(&self, x: T) -> bool {
        self.grid == GRID_UNSET && nonzero_finite::<T::Format>(x.to_bits())
    }

    fn place_grid(&mut self, x: T, shared: &AtomicU64) {
        self.place(x.to_bits(), shared);
    }
    /// The grid in the low half ([`GRID_UNSET`] until placed), the shift limit for the
    /// window in the high half.
    fn grid_word(window: u64) -> u64 {
        u64::from(GRID_UNSET) | (u64::from(shift_limit::<T::Format>(window)) << 32)
    }
    #[inline(always)]
    fn to_words(&self) -> [u64; 3] {
        // The grid is below 2^11; 0xffff stands for none.
        let grid = if self.grid == GRID_UNSET {
            0xffff
        } else {
            self.grid
        };
        let meta = u64::from(self.off) | u64::from(grid) << 32 | u64::from(self.limit) << 48;
        [self.fixed as u64, (self.fixed >> 64) as u64, meta]
    }

    #[inline(always)]
    fn from_words(w: [u64; 3]) -> Self {
        let grid = (w[2] >> 32) as u32 & 0xffff;
        FixedSummary {
            fixed: i128::from(w[0]) | (i128::from(w[1] as i64) << 64),
            grid: if grid == 0xffff { GRID_UNSET } else { grid },
            limit: (w[2] >> 48) as u32,
            off: w[2] as u32,
            format: PhantomData,
        }
    }
}
