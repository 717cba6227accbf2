//! The element types a moving average can hold, each wired to its exact accumulator
//! (`exact.rs`), its running sum (`running.rs`) and its shard summary.

use std::fmt::Debug;

use crate::exact::{
    accumulate_float, add_int_digits, int_limbs_value, int_mean, int_mean_any, narrow_digits,
    non_finite, round_float_limbs, signed_digits, unsigned_digits, FloatFormat, LimbSum, Limbs,
    Span, F32, F64,
};
use crate::fixed::{
    cell_add, cell_merge_state, fixed_mean, grid_word, unit_of, FixedSummary, Reciprocal,
};
use crate::float_sum::FloatSum;
use crate::running::{IntSum, RunningSum, Summary};
use crate::state::{float_state_max, read_int_state, write_int_state};

/// What the crate needs of an element type beyond [`Sample`]. Sealed: the module is private,
/// so only this crate implements it and none of its items is public API.
pub(crate) mod sealed {
    use super::{Limbs, Span};

    /// An element's exact accumulator, running sum and shard summary, and its bits.
    pub trait Element: Copy + Send + Sync + 'static {
        /// The accumulator: an array of limbs (`exact.rs`).
        type Limbs: Limbs;

        /// The running sum a single-owner window keeps.
        type Running;

        /// What a shard publishes about its recent elements.
        type Summary;

        /// Number of limbs that hold digits (the rest are counters of non-finite values).
        const NUMERIC_LIMBS: usize;

        /// Adds `self` to the limbs and returns the range of numeric limbs it touched.
        fn add_to(self, limbs: &mut Self::Limbs) -> Span;

        /// Removes `self` from the limbs and returns the range of numeric limbs it touched.
        fn sub_from(self, limbs: &mut Self::Limbs) -> Span;

        /// The element as the bits of one `u64`, for storage in an atomic.
        fn to_bits(self) -> u64;

        /// Inverse of [`to_bits`](Element::to_bits).
        fn from_bits(bits: u64) -> Self;
    }
}

use sealed::Element;

/// An element type of a moving average: every primitive integer up to 64 bits, `f32` and
/// `f64`.
///
/// The trait is sealed. Each type brings an exact accumulator (see the crate documentation,
/// *How it works*): integer sums are exact `i128`s, float sums are the exact sum of the window
/// rounded once to `f64`.
pub trait Sample:
    Element<Limbs: LimbSum<Self>, Running: RunningSum<Self>, Summary: Summary<Self>> + PartialEq + Debug
{
    /// What [`MovingAverage::sum`](crate::MovingAverage::sum) returns: `i128` for integers
    /// (exact, never overflows), `f64` for floats (the exact sum, correctly rounded).
    type Sum: Copy + PartialEq + Debug + Send + Sync + 'static;
}

/// Implements [`Sample`] for integer types given how a value splits into limb digits.
///
/// Integers of at most 32 bits are one digit: `N <= 2^30` values below `2^32` in magnitude keep
/// the limb below `2^62`. 64-bit integers are two: a low unsigned 32-bit digit and a high digit
/// that carries the sign (for signed types).
macro_rules! int {
    ($limbs:literal, $digits:expr => $($t:ty),*) => {$(
        impl Element for $t {
            type Limbs = [i64; $limbs];
            type Running = IntSum;
            type Summary = IntSum;
            const NUMERIC_LIMBS: usize = $limbs;

            #[inline(always)]
            fn add_to(self, limbs: &mut [i64; $limbs]) -> Span {
                add_int_digits(limbs, $digits(self), false)
            }
            #[inline(always)]
            fn sub_from(self, limbs: &mut [i64; $limbs]) -> Span {
                add_int_digits(limbs, $digits(self), true)
            }
            #[inline(always)]
            fn to_bits(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                bits as $t
            }
        }

        impl Sample for $t {
            type Sum = i128;
        }

        impl LimbSum<$t> for [i64; $limbs] {
            #[inline]
            fn exact_sum(&self, _: Span) -> i128 {
                int_limbs_value(self)
            }
            #[inline]
            fn exact_mean(&self, _: Span, n: u64) -> f64 {
                int_mean(int_limbs_value(self), n, n as i64 as f64)
            }
        }

        impl RunningSum<$t> for IntSum {
            fn empty(_: u64, _: bool) -> Self {
                IntSum(0)
            }

            #[inline(always)]
            fn add(&mut self, new: $t) {
                self.0 += new as i128;
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                self.0 += new as i128 - old as i128;
            }
            #[inline]
            fn sum(&self) -> i128 {
                self.0
            }
            #[inline]
            fn mean(&self, n: u64, nf: f64) -> f64 {
                int_mean(self.0, n, nf)
            }
            #[inline(always)]
            fn remove(&mut self, old: $t) {
                self.0 -= old as i128;
            }
            #[inline]
            fn merge(&mut self, other: &Self) {
                self.0 += other.0;
            }
            fn normalize(&mut self) {}
            const MAX_STATE_LEN: usize = 2;
            fn write_state(&self, out: &mut Vec<i64>) {
                write_int_state(self.0, out);
            }
            fn read_state(words: &[i64]) -> Option<Self> {
                read_int_state(words).map(IntSum)
            }
            #[inline(always)]
            fn cell_add(value: $t, fixed: &mut i128, _: &mut u32) -> bool {
                // 2^64 additions of 64-bit values cannot overflow: as for `IntSum`.
                *fixed += value as i128;
                true
            }
            fn cell_merge_state(words: &[i64], fixed: &mut i128, _: &mut u32) -> bool {
                let Some(v) = read_int_state(words) else {
                    return false;
                };
                match fixed.checked_add(v) {
                    Some(sum) => *fixed = sum,
                    None => return false,
                }
                true
            }
            fn cell_mean(fixed: i128, _: u32, n: u64) -> f64 {
                int_mean_any(fixed, n)
            }
            fn cell_sum(fixed: i128, _: u32) -> i128 {
                fixed
            }
            fn cell_state(fixed: i128, _: u32, out: &mut Vec<i64>) {
                write_int_state(fixed, out);
            }
            fn from_cell(fixed: i128, _: u32) -> Self {
                IntSum(fixed)
            }
            fn mean_of(&self, n: u64) -> f64 {
                int_mean_any(self.0, n)
            }
        }

        impl Summary<$t> for IntSum {
            const EMPTY: Self = IntSum(0);
            const WORDS: usize = 2;

            #[inline(always)]
            fn add(&mut self, x: $t) {
                self.0 += x as i128;
            }
            #[inline(always)]
            fn remove(&mut self, x: $t) {
                self.0 -= x as i128;
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                self.0 += new as i128 - old as i128;
            }
            #[inline]
            fn merge(&mut self, other: &Self) {
                self.0 += other.0;
            }
            #[inline]
            fn mean(&self, n: u64) -> Option<f64> {
                Some(int_mean(self.0, n, n as i64 as f64))
            }
            #[inline]
            fn sum(&self) -> Option<i128> {
                Some(self.0)
            }
            #[inline(always)]
            fn to_words(&self) -> [u64; 3] {
                [self.0 as u64, (self.0 >> 64) as u64, 0]
            }
            #[inline(always)]
            fn from_words(w: [u64; 3]) -> Self {
                IntSum(i128::from(w[0]) | (i128::from(w[1] as i64) << 64))
            }
        }
    )*};
}

int!(1, |x| narrow_digits(x as i64) => i8, i16, i32, u8, u16, u32);
int!(2, signed_digits => i64);
int!(2, unsigned_digits => u64);
#[cfg(target_pointer_width = "64")]
int!(2, |x| signed_digits(x as i64) => isize);
#[cfg(target_pointer_width = "64")]
int!(2, |x| unsigned_digits(x as u64) => usize);
#[cfg(not(target_pointer_width = "64"))]
int!(1, |x| narrow_digits(x as i64) => isize, usize);

/// Implements [`Sample`] for an IEEE binary float type, given its bit format (`exact.rs`) and
/// the length of its limb array, `F::LIMBS`.
macro_rules! float {
    ($t:ty, $bits:ty, $format:ty, limbs = $limbs:literal) => {
        const _: () = assert!(<$format as FloatFormat>::LIMBS == $limbs);

        impl Element for $t {
            type Limbs = [i64; $limbs];
            type Running = FloatSum<$format, $limbs>;
            type Summary = FixedSummary<$format>;
            const NUMERIC_LIMBS: usize = <$format as FloatFormat>::NUMERIC;

            #[inline(always)]
            fn add_to(self, limbs: &mut [i64; $limbs]) -> Span {
                accumulate_float::<$format, $limbs>(u64::from(<$t>::to_bits(self)), limbs, false)
            }
            #[inline(always)]
            fn sub_from(self, limbs: &mut [i64; $limbs]) -> Span {
                accumulate_float::<$format, $limbs>(u64::from(<$t>::to_bits(self)), limbs, true)
            }
            #[inline(always)]
            fn to_bits(self) -> u64 {
                u64::from(<$t>::to_bits(self))
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                <$t>::from_bits(bits as $bits)
            }
        }

        impl Sample for $t {
            type Sum = f64;
        }

        impl LimbSum<$t> for [i64; $limbs] {
            #[inline]
            fn exact_sum(&self, span: Span) -> f64 {
                non_finite(self, <$format as FloatFormat>::NUMERIC).unwrap_or_else(|| {
                    round_float_limbs(self, span, <$format as FloatFormat>::BIAS, 1)
                })
            }
            #[inline]
            fn exact_mean(&self, span: Span, n: u64) -> f64 {
                non_finite(self, <$format as FloatFormat>::NUMERIC).unwrap_or_else(|| {
                    round_float_limbs(self, span, <$format as FloatFormat>::BIAS, n)
                })
            }
        }

        impl Summary<$t> for FixedSummary<$format> {
            const EMPTY: Self = FixedSummary::EMPTY;
            const WORDS: usize = 3;

            #[inline(always)]
            fn add(&mut self, x: $t) {
                self.update(x.to_bits().into(), false);
            }
            #[inline(always)]
            fn remove(&mut self, x: $t) {
                self.update(x.to_bits().into(), true);
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                self.update(old.to_bits().into(), true);
                self.update(new.to_bits().into(), false);
            }
            #[inline]
            fn merge(&mut self, other: &Self) {
                FixedSummary::merge(self, other);
            }
            #[inline]
            fn mean(&self, n: u64) -> Option<f64> {
                FixedSummary::mean(self, n)
            }
            #[inline]
            fn sum(&self) -> Option<f64> {
                FixedSummary::mean(self, 1)
            }
            #[inline]
            fn mean_by(&self, r: &Reciprocal) -> Option<f64> {
                FixedSummary::mean_by(self, r)
            }
            fn cleared(&self) -> Self {
                FixedSummary::cleared(self)
            }
            #[inline(always)]
            fn wants_grid(&self, x: $t) -> bool {
                FixedSummary::wants_grid(self, x.to_bits().into())
            }
            fn place_grid(&mut self, x: $t, shared: &crate::sync::AtomicU64) {
                self.place(x.to_bits().into(), shared);
            }
            fn grid_word(window: u64) -> u64 {
                grid_word::<$format>(window)
            }
            #[inline(always)]
            fn to_words(&self) -> [u64; 3] {
                FixedSummary::to_words(self)
            }
            #[inline(always)]
            fn from_words(w: [u64; 3]) -> Self {
                FixedSummary::from_words(w)
            }
        }

        impl RunningSum<$t> for FloatSum<$format, $limbs> {
            fn empty(elements: u64, window: bool) -> Self {
                FloatSum::empty(elements, window)
            }
            #[inline(always)]
            fn add(&mut self, new: $t) {
                FloatSum::add(self, new.to_bits().into());
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                FloatSum::replace(self, old.to_bits().into(), new.to_bits().into());
            }
            #[inline]
            fn sum(&self) -> f64 {
                FloatSum::mean(self, 1, 1.0)
            }
            #[inline]
            fn mean(&self, n: u64, nf: f64) -> f64 {
                FloatSum::mean(self, n, nf)
            }
            #[inline(always)]
            fn mean_by(&self, r: &Reciprocal, _: f64) -> f64 {
                FloatSum::mean_by(self, r)
            }
            #[inline(always)]
            fn remove(&mut self, old: $t) {
                FloatSum::remove(self, old.to_bits().into());
            }
            fn merge(&mut self, other: &Self) {
                FloatSum::merge(self, other);
            }
            fn normalize(&mut self) {
                FloatSum::normalize(self);
            }
            const MAX_STATE_LEN: usize = float_state_max(<$format as FloatFormat>::NUMERIC);
            fn write_state(&self, out: &mut Vec<i64>) {
                FloatSum::write_state(self, out);
            }
            fn read_state(words: &[i64]) -> Option<Self> {
                FloatSum::read_state(words)
            }
            #[inline(always)]
            fn cell_add(value: $t, fixed: &mut i128, grid: &mut u32) -> bool {
                cell_add::<$format>(value.to_bits().into(), fixed, grid)
            }
            fn cell_merge_state(words: &[i64], fixed: &mut i128, grid: &mut u32) -> bool {
                cell_merge_state::<$format>(words, fixed, grid)
            }
            fn cell_mean(fixed: i128, grid: u32, n: u64) -> f64 {
                fixed_mean(fixed, unit_of::<$format>(grid), n, n as f64)
            }
            fn cell_sum(fixed: i128, grid: u32) -> f64 {
                fixed_mean(fixed, unit_of::<$format>(grid), 1, 1.0)
            }
            fn cell_state(fixed: i128, grid: u32, out: &mut Vec<i64>) {
                FloatSum::<$format, $limbs>::write_fixed_state(fixed, grid, out);
            }
            fn from_cell(fixed: i128, grid: u32) -> Self {
                FloatSum::from_cell(fixed, grid)
            }
            fn mean_of(&self, n: u64) -> f64 {
                FloatSum::mean(self, n, n as f64)
            }
            #[inline(always)]
            fn regrid_due(&self) -> bool {
                FloatSum::regrid_due(self)
            }
            fn rebuild(&mut self, first: &[$t], second: &[$t]) {
                let bits = first.iter().chain(second).map(|x| u64::from(x.to_bits()));
                FloatSum::rebuild(self, bits);
            }
        }
    };
}

float!(f64, u64, F64, limbs = 69);
float!(f32, u32, F32, limbs = 13);
