//! The element types a moving average can hold, and how each is summed exactly.

use std::fmt::Debug;

use crate::estimate::Estimate;
use crate::exact::{
    add_float_digits, carry_limbs, int_limbs_value, int_mean, int_mean_any, is_carried,
    round_float_limbs, Span,
};
use crate::running::{estimate_of, FloatExact, FloatSum, IntSum, RunningSum, Summary};

mod private {
    pub trait Sealed {}
}

/// A fixed-size array of limbs: the exact accumulator of one [`Sample`] type.
///
/// An implementation detail of [`Sample`], public only because it appears in its signature.
#[doc(hidden)]
pub trait Limbs: Copy + Debug + Send + Sync + 'static + AsRef<[i64]> + AsMut<[i64]> {
    /// All limbs zero: the sum of no elements.
    const ZERO: Self;
}

impl<const L: usize> Limbs for [i64; L] {
    const ZERO: Self = [0; L];
}

/// An element type of a moving average: every primitive integer up to 64 bits, `f32` and
/// `f64`.
///
/// The trait is sealed. Each type brings an exact accumulator (see the crate documentation,
/// *How it works*): integer sums are exact `i128`s, float sums are the exact sum of the window
/// rounded once to `f64`.
pub trait Sample: Copy + PartialEq + Debug + Send + Sync + 'static + private::Sealed {
    /// What [`MovingAverage::sum`](crate::MovingAverage::sum) returns: `i128` for integers
    /// (exact, never overflows), `f64` for floats (the exact sum, correctly rounded).
    type Sum: Copy + PartialEq + Debug + Send + Sync + 'static;

    #[doc(hidden)]
    type Limbs: Limbs;

    #[doc(hidden)]
    /// The running sum a single-owner window keeps.
    type Running: RunningSum<Self>;

    #[doc(hidden)]
    /// What a shard publishes about its recent elements.
    type Summary: Summary<Self>;

    #[doc(hidden)]
    /// Number of limbs that hold digits (the rest are counters of non-finite values).
    const NUMERIC_LIMBS: usize;

    #[doc(hidden)]
    /// Adds `self` to the limbs and returns the range of numeric limbs it touched.
    fn add_to(self, limbs: &mut Self::Limbs) -> Span;

    #[doc(hidden)]
    /// Removes `self` from the limbs and returns the range of numeric limbs it touched.
    fn sub_from(self, limbs: &mut Self::Limbs) -> Span;

    #[doc(hidden)]
    /// The sum encoded by the limbs, given the range of numeric limbs that may be nonzero.
    fn sum_of(limbs: &Self::Limbs, span: Span) -> Self::Sum;

    #[doc(hidden)]
    /// The mean of `n >= 1` elements whose exact sum the limbs encode.
    fn mean_of(limbs: &Self::Limbs, span: Span, n: u64) -> f64;

    #[doc(hidden)]
    /// The sample as the bits of one `u64`, for storage in an atomic.
    fn to_bits(self) -> u64;

    #[doc(hidden)]
    /// Inverse of [`to_bits`](Sample::to_bits).
    fn from_bits(bits: u64) -> Self;
}

/// Implements [`Sample`] for integer types given how a value splits into limb digits.
///
/// Integers of at most 32 bits are one digit: `N <= 2^30` values below `2^32` in magnitude keep
/// the limb below `2^62`. 64-bit integers are two: a low unsigned 32-bit digit and a high digit
/// that carries the sign (for signed types).
macro_rules! int {
    ($limbs:literal, $digits:expr => $($t:ty),*) => {$(
        impl private::Sealed for $t {}
        impl Sample for $t {
            type Sum = i128;
            type Limbs = [i64; $limbs];
            type Running = IntSum;
            type Summary = IntSum;
            const NUMERIC_LIMBS: usize = $limbs;

            #[inline(always)]
            fn add_to(self, limbs: &mut [i64; $limbs]) -> Span {
                let digits: [i64; $limbs] = $digits(self);
                for (limb, digit) in limbs.iter_mut().zip(digits) {
                    *limb = limb.wrapping_add(digit);
                }
                Span { lo: 0, hi: $limbs - 1 }
            }
            #[inline(always)]
            fn sub_from(self, limbs: &mut [i64; $limbs]) -> Span {
                let digits: [i64; $limbs] = $digits(self);
                for (limb, digit) in limbs.iter_mut().zip(digits) {
                    *limb = limb.wrapping_sub(digit);
                }
                Span { lo: 0, hi: $limbs - 1 }
            }
            #[inline]
            fn sum_of(limbs: &[i64; $limbs], _: Span) -> i128 {
                int_limbs_value(limbs)
            }
            #[inline]
            fn mean_of(limbs: &[i64; $limbs], _: Span, n: u64) -> f64 {
                int_mean(int_limbs_value(limbs), n, n as i64 as f64)
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

        impl RunningSum<$t> for IntSum {
            const EMPTY: Self = IntSum(0);

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
            fn mean(&self, n: u64, nf: f64, _: f64) -> f64 {
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
            const STATE_LEN: usize = 2;
            fn write_state(&self, out: &mut Vec<i64>) {
                out.extend([self.0 as i64, (self.0 >> 64) as i64]);
            }
            fn read_state(words: &[i64]) -> Option<Self> {
                match *words {
                    [lo, hi] => Some(IntSum(i128::from(lo as u64) | (i128::from(hi) << 64))),
                    _ => None,
                }
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
            fn maintenance_due(&self) -> bool {
                false
            }
            fn maintain(&mut self) -> bool {
                false
            }
            fn seed(limbs: &[i64; $limbs]) -> Self {
                IntSum(int_limbs_value(limbs))
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

/// One digit: the value itself.
#[inline(always)]
fn narrow_digits(v: i64) -> [i64; 1] {
    [v]
}

/// A 64-bit signed value as a low unsigned and a high signed 32-bit digit.
#[inline(always)]
fn signed_digits(v: i64) -> [i64; 2] {
    [i64::from(v as u32), v >> 32]
}

/// A 64-bit unsigned value as two unsigned 32-bit digits.
#[inline(always)]
fn unsigned_digits(v: u64) -> [i64; 2] {
    [i64::from(v as u32), (v >> 32) as i64]
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

/// Index of the NaN counter among a float's limbs; `+inf` and `-inf` follow it.
const fn nan_counter(numeric: usize) -> usize {
    numeric
}

/// What non-finite elements in the window make of the sum and mean, if any: NaN if the window
/// holds a NaN or both infinities, otherwise the infinity it holds.
#[inline]
fn non_finite(limbs: &[i64], numeric: usize) -> Option<f64> {
    let i = nan_counter(numeric);
    let (nan, pos, neg) = (limbs[i], limbs[i + 1], limbs[i + 2]);
    if nan != 0 || (pos != 0 && neg != 0) {
        Some(f64::NAN)
    } else if pos != 0 {
        Some(f64::INFINITY)
    } else if neg != 0 {
        Some(f64::NEG_INFINITY)
    } else {
        None
    }
}

/// IEEE binary floats. A finite value is `m * 2^(p - BIAS)` with `m < 2^(MANT + 1)` and `p`
/// the biased exponent less one (zero for subnormals), so `p` counts bit positions from the
/// smallest subnormal and selects the limb.
macro_rules! float {
    ($t:ty, $bits:ty, limbs = $limbs:literal, numeric = $numeric:literal,
     mant = $mant:literal, exp_mask = $emask:literal, bias = $bias:literal) => {
        impl private::Sealed for $t {}
        impl Sample for $t {
            type Sum = f64;
            type Limbs = [i64; $limbs];
            type Running = FloatSum<$limbs>;
            type Summary = Estimate;
            const NUMERIC_LIMBS: usize = $numeric;

            #[inline(always)]
            fn add_to(self, limbs: &mut [i64; $limbs]) -> Span {
                accumulate::<$limbs>(u64::from(self.to_bits()), limbs, false)
            }
            #[inline(always)]
            fn sub_from(self, limbs: &mut [i64; $limbs]) -> Span {
                accumulate::<$limbs>(u64::from(self.to_bits()), limbs, true)
            }
            #[inline]
            fn sum_of(limbs: &[i64; $limbs], span: Span) -> f64 {
                non_finite(limbs, $numeric)
                    .unwrap_or_else(|| round_float_limbs(limbs, span, $bias, 1))
            }
            #[inline]
            fn mean_of(limbs: &[i64; $limbs], span: Span, n: u64) -> f64 {
                non_finite(limbs, $numeric)
                    .unwrap_or_else(|| round_float_limbs(limbs, span, $bias, n))
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

        impl FloatLayout for [i64; $limbs] {
            const MANT: u32 = $mant;
            const EXP_MASK: u64 = $emask;
            const NUMERIC: usize = $numeric;
        }

        impl FloatExact for FloatSum<$limbs> {
            const BIAS: i32 = $bias;

            fn non_finite(&self) -> Option<f64> {
                non_finite(&self.limbs, $numeric)
            }

            fn limbs_and_span(&self) -> (&[i64], Span) {
                (&self.limbs, self.span)
            }

            #[inline(always)]
            fn estimate(&self) -> &Estimate {
                &self.estimate
            }

            #[inline(always)]
            fn estimate_mut(&mut self) -> &mut Estimate {
                &mut self.estimate
            }
        }

        impl Summary<$t> for Estimate {
            const EMPTY: Self = Estimate::ZERO;
            const WORDS: usize = 3;

            #[inline(always)]
            fn add(&mut self, x: $t) {
                Estimate::replace(self, 0.0, f64::from(x));
            }
            #[inline(always)]
            fn remove(&mut self, x: $t) {
                Estimate::replace(self, f64::from(x), 0.0);
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                Estimate::replace(self, f64::from(old), f64::from(new));
            }
            #[inline]
            fn merge(&mut self, other: &Self) {
                Estimate::merge(self, other);
            }
            #[inline]
            fn mean(&self, n: u64) -> Option<f64> {
                // Through i64: one instruction (n <= 2^30).
                let n = n as i64 as f64;
                Estimate::mean(self, n, 1.0 / n)
            }
            #[inline]
            fn sum(&self) -> Option<f64> {
                Estimate::sum(self)
            }
            #[inline(always)]
            fn maintenance_due(&self) -> bool {
                Estimate::maintenance_due(self)
            }
            fn maintain(&mut self) -> bool {
                self.renormalize();
                self.needs_seed()
            }
            fn seed(limbs: &[i64; $limbs]) -> Self {
                let non_finite = non_finite(limbs, $numeric).is_some();
                estimate_of(limbs, Span::full($numeric), $bias, non_finite)
            }
            #[inline(always)]
            fn to_words(&self) -> [u64; 3] {
                Estimate::to_words(*self)
            }
            #[inline(always)]
            fn from_words(w: [u64; 3]) -> Self {
                Estimate::from_words(w)
            }
        }

        impl RunningSum<$t> for FloatSum<$limbs> {
            const EMPTY: Self = FloatSum {
                limbs: [0; $limbs],
                span: Span::EMPTY,
                estimate: Estimate::ZERO,
            };

            #[inline(always)]
            fn add(&mut self, new: $t) {
                let touched = new.add_to(&mut self.limbs);
                self.span.cover(touched.lo, touched.hi);
                self.estimate.replace(0.0, f64::from(new));
                if self.estimate.maintenance_due() {
                    self.maintain();
                }
            }
            #[inline(always)]
            fn replace(&mut self, old: $t, new: $t) {
                old.sub_from(&mut self.limbs);
                let touched = new.add_to(&mut self.limbs);
                self.span.cover(touched.lo, touched.hi);
                // Non-finite values go in too: they poison the estimate until maintenance
                // re-seeds it, after they have left.
                self.estimate.replace(f64::from(old), f64::from(new));
                if self.estimate.maintenance_due() {
                    self.maintain();
                }
            }
            #[inline]
            fn sum(&self) -> f64 {
                self.certified_sum()
            }
            #[inline]
            fn mean(&self, n: u64, nf: f64, inv: f64) -> f64 {
                self.certified_mean(n, nf, inv)
            }
            #[inline(always)]
            fn remove(&mut self, old: $t) {
                let touched = old.sub_from(&mut self.limbs);
                self.span.cover(touched.lo, touched.hi);
                self.estimate.replace(f64::from(old), 0.0);
                if self.estimate.maintenance_due() {
                    self.maintain();
                }
            }
            fn merge(&mut self, other: &Self) {
                for (limb, theirs) in self.limbs.iter_mut().zip(&other.limbs) {
                    *limb = limb.wrapping_add(*theirs);
                }
                if other.span.lo <= other.span.hi {
                    self.span.cover(other.span.lo, other.span.hi);
                }
                self.estimate.merge(&other.estimate);
                self.maintain();
            }
            fn normalize(&mut self) {
                self.span = carry_limbs(&mut self.limbs[..$numeric]);
            }
            const STATE_LEN: usize = $limbs;
            fn write_state(&self, out: &mut Vec<i64>) {
                let mut limbs = self.limbs;
                carry_limbs(&mut limbs[..$numeric]);
                out.extend_from_slice(&limbs);
            }
            fn read_state(words: &[i64]) -> Option<Self> {
                let limbs: [i64; $limbs] = words.try_into().ok()?;
                if !is_carried(&limbs[..$numeric]) {
                    return None;
                }
                let mut sum = FloatSum {
                    limbs,
                    span: Span::EMPTY,
                    estimate: Estimate::ZERO,
                };
                sum.span = carry_limbs(&mut sum.limbs[..$numeric]);
                sum.estimate = estimate_of(
                    &sum.limbs,
                    sum.span,
                    $bias,
                    non_finite(&sum.limbs, $numeric).is_some(),
                );
                Some(sum)
            }
            fn mean_of(&self, n: u64) -> f64 {
                if n <= crate::MAX_WINDOW as u64 {
                    let nf = n as f64;
                    self.certified_mean(n, nf, 1.0 / nf)
                } else {
                    self.exact(n)
                }
            }
        }
    };
}

/// Bit layout of the float a limb array belongs to.
trait FloatLayout {
    const MANT: u32;
    const EXP_MASK: u64;
    const NUMERIC: usize;
}

/// Adds or removes one float given by its bits. Non-finite values move a counter; finite ones
/// add their digits.
#[inline(always)]
fn accumulate<const L: usize>(bits: u64, limbs: &mut [i64; L], remove: bool) -> Span
where
    [i64; L]: FloatLayout,
{
    let mant = <[i64; L] as FloatLayout>::MANT;
    let exp_mask = <[i64; L] as FloatLayout>::EXP_MASK;
    let numeric = <[i64; L] as FloatLayout>::NUMERIC;
    let sign = (bits >> (mant + exp_mask.count_ones())) & 1 == 1;
    let e = (bits >> mant) & exp_mask;
    let frac = bits & ((1u64 << mant) - 1);
    if e == exp_mask {
        let counter = nan_counter(numeric)
            + match (frac != 0, sign) {
                (true, _) => 0,
                (false, false) => 1,
                (false, true) => 2,
            };
        let delta = if remove { -1 } else { 1 };
        limbs[counter] = limbs[counter].wrapping_add(delta);
        return Span::EMPTY;
    }
    let (m, p) = if e == 0 {
        (frac, 0)
    } else {
        (frac | (1u64 << mant), (e - 1) as u32)
    };
    let lo = add_float_digits(limbs, m, p, sign != remove);
    Span { lo, hi: lo + 2 }
}

float!(
    f64,
    u64,
    limbs = 69,
    numeric = 66,
    mant = 52,
    exp_mask = 0x7ff,
    bias = 1074
);
float!(
    f32,
    u32,
    limbs = 13,
    numeric = 10,
    mant = 23,
    exp_mask = 0xff,
    bias = 149
);
