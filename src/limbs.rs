//! Exact, linear accumulation of samples in fixed-point limbs.
//!
//! Every sample type is accumulated into an array of `i64` limbs. Limb `i` counts units of
//! `2^(32 i)` (integers) or `2^(32 i - bias)` (floats), and each sample adds or subtracts
//! 32-bit digits: at most three digits for an `f64`, whose 53-bit significand shifted by up to
//! 31 bits spans 85 bits. No carry is ever propagated on the way in, so the accumulator is a
//! plain vector of wrapping integer counters:
//!
//! * adding and removing a sample are each a handful of integer additions, with no branch on
//!   the data beyond the float classification;
//! * the representation is linear, so sums of windows can be formed as differences of prefix
//!   accumulators, limb by limb, with wrapping arithmetic;
//! * it is exact: a window holds at most [`MAX_WINDOW`](crate::MAX_WINDOW) `= 2^30` samples,
//!   each contributing less than `2^32` to a limb, so the true value of every limb stays below
//!   `2^62` in magnitude and wrapping `i64` arithmetic (arithmetic modulo `2^64`) computes it
//!   exactly, whatever elements passed through before.
//!
//! Floats keep three more counters for NaN, `+inf` and `-inf`, which are linear in the same way.
//! Only reading turns limbs into a number: carries are propagated once, over the limbs that can
//! be nonzero, and the result is rounded once ([`crate::round`]).

use std::fmt::Debug;

use crate::element::{Binary32, Binary64, FloatFormat};
use crate::round::{div_round, int_mean};

/// A fixed-size array of limbs: the exact accumulator of one element type.
pub trait Limbs: Copy + Debug + Send + Sync + 'static + AsRef<[i64]> + AsMut<[i64]> {
    /// All limbs zero: the sum of no elements.
    const ZERO: Self;
}

impl<const L: usize> Limbs for [i64; L] {
    const ZERO: Self = [0; L];
}

/// The limbs of one element type `T`: how an element goes in and out, and the reads.
pub trait LimbSum<T>: Limbs {
    /// What the sum of `T`s is: `i128` for integers, `f64` for floats.
    type Sum;

    /// The limbs that hold digits (the rest count non-finite values).
    const NUMERIC: usize;

    /// Every numeric limb.
    const ALL: LimbRange = LimbRange::full(Self::NUMERIC);

    /// Adds an element and returns the range of numeric limbs it touched.
    fn add(&mut self, x: T) -> LimbRange;

    /// Removes an element and returns the range of numeric limbs it touched.
    fn remove(&mut self, x: T) -> LimbRange;

    /// The sum the limbs encode, given the range of numeric limbs that may be nonzero.
    fn exact_sum(&self, span: LimbRange) -> Self::Sum;

    /// The mean of `n >= 1` elements whose exact sum the limbs encode.
    fn exact_mean(&self, span: LimbRange, n: u64) -> f64;
}

/// A 64-bit signed value as a low unsigned and a high signed 32-bit digit.
#[inline(always)]
pub(crate) fn signed_digits(v: i64) -> [i64; 2] {
    [i64::from(v as u32), v >> 32]
}

/// A 64-bit unsigned value as two unsigned 32-bit digits.
#[inline(always)]
pub(crate) fn unsigned_digits(v: u64) -> [i64; 2] {
    [i64::from(v as u32), (v >> 32) as i64]
}

/// Adds (or, with `negative`, subtracts) an integer's digits; returns the limbs touched.
#[inline(always)]
pub(crate) fn add_int_digits<const L: usize>(
    limbs: &mut [i64; L],
    digits: [i64; L],
    negative: bool,
) -> LimbRange {
    for (limb, digit) in limbs.iter_mut().zip(digits) {
        *limb = if negative {
            limb.wrapping_sub(digit)
        } else {
            limb.wrapping_add(digit)
        };
    }
    LimbRange::full(L)
}

/// What non-finite elements make of the sum and mean, if any: NaN if the counters hold a NaN
/// or both infinities, otherwise the infinity they hold.
#[inline]
pub(crate) fn non_finite(limbs: &[i64], numeric: usize) -> Option<f64> {
    let (nan, pos, neg) = (limbs[numeric], limbs[numeric + 1], limbs[numeric + 2]);
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

/// Adds or removes one float of format `F` given by its bits. A finite value is
/// `m * 2^(p - BIAS)` with `m < 2^(MANT + 1)` and `p` the biased exponent less one (zero for
/// subnormals), so `p` counts bit positions from the smallest subnormal and selects the limb.
/// Non-finite values move a counter.
#[inline(always)]
pub(crate) fn accumulate_float<F: FloatFormat, const L: usize>(
    bits: u64,
    limbs: &mut [i64; L],
    remove: bool,
) -> LimbRange {
    let sign = (bits >> (F::MANT + F::EXP_MASK.count_ones())) & 1 == 1;
    let e = (bits >> F::MANT) & F::EXP_MASK;
    let frac = bits & ((1u64 << F::MANT) - 1);
    if e == F::EXP_MASK {
        let counter = F::NUMERIC
            + match (frac != 0, sign) {
                (true, _) => 0,
                (false, false) => 1,
                (false, true) => 2,
            };
        let delta = if remove { -1 } else { 1 };
        limbs[counter] = limbs[counter].wrapping_add(delta);
        return LimbRange::EMPTY;
    }
    let (m, p) = if e == 0 {
        (frac, 0)
    } else {
        (frac | (1u64 << F::MANT), (e - 1) as u32)
    };
    let lo = add_float_digits(limbs, m, p, sign != remove);
    LimbRange { lo, hi: lo + 2 }
}

/// The range of numeric limbs that may be nonzero, kept by single-owner accumulators so that
/// reads scan only the digits in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimbRange {
    pub(crate) lo: usize,
    pub(crate) hi: usize,
}

impl LimbRange {
    pub(crate) const EMPTY: LimbRange = LimbRange {
        lo: usize::MAX,
        hi: 0,
    };

    pub(crate) const fn full(limbs: usize) -> LimbRange {
        LimbRange {
            lo: 0,
            hi: limbs - 1,
        }
    }

    #[inline(always)]
    pub(crate) fn cover(&mut self, lo: usize, hi: usize) {
        self.lo = self.lo.min(lo);
        self.hi = self.hi.max(hi);
    }
}

/// Adds (or, with `negative`, subtracts) the finite float `m * 2^(p - bias)` to the limbs.
///
/// `m` is the integer significand (below `2^53`) and `p` the position of its last bit counted
/// from the smallest subnormal. Returns the lowest limb touched; the highest is that plus two.
#[inline(always)]
pub(crate) fn add_float_digits<const L: usize>(
    limbs: &mut [i64; L],
    m: u64,
    p: u32,
    negative: bool,
) -> usize {
    let idx = (p >> 5) as usize;
    let v = u128::from(m) << (p & 31);
    let d0 = i64::from(v as u32);
    let d1 = i64::from((v >> 32) as u32);
    let d2 = (v >> 64) as i64;
    if negative {
        limbs[idx] = limbs[idx].wrapping_sub(d0);
        limbs[idx + 1] = limbs[idx + 1].wrapping_sub(d1);
        limbs[idx + 2] = limbs[idx + 2].wrapping_sub(d2);
    } else {
        limbs[idx] = limbs[idx].wrapping_add(d0);
        limbs[idx + 1] = limbs[idx + 1].wrapping_add(d1);
        limbs[idx + 2] = limbs[idx + 2].wrapping_add(d2);
    }
    idx
}

/// The exact value of a float accumulator as its top 128 bits:
/// `(-1)^neg * (mag + tail) * 2^exp` with `tail` in `[0, 1)`, nonzero exactly when `sticky`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HighBits {
    pub(crate) neg: bool,
    /// At least `2^127`: its top bit is set.
    pub(crate) mag: u128,
    pub(crate) exp: i32,
    pub(crate) sticky: bool,
}

impl HighBits {
    /// The correctly rounded quotient by `n` (`n = 1`: the correctly rounded value).
    pub(crate) fn div_round(&self, n: u64) -> f64 {
        div_round(self.neg, self.mag, self.exp, self.sticky, n)
    }
}

/// The exact value of float limbs `[span.lo, span.hi]` (weights `2^(32 i - bias)`), or `None`
/// if it is zero.
pub(crate) fn float_high_bits(limbs: &[i64], span: LimbRange, bias: i32) -> Option<HighBits> {
    const MAX_DIGITS: usize = 72;
    if span.lo > span.hi {
        return None;
    }
    // Digits: the span, one carry digit, one sign digit.
    debug_assert!(span.hi + 3 <= MAX_DIGITS);
    let mut digits = [0u32; MAX_DIGITS];
    let mut carry: i64 = 0;
    for i in span.lo..=span.hi {
        // |limb| < 2^62 and |carry| < 2^31: no overflow.
        let v = limbs[i] + carry;
        digits[i] = v as u32;
        carry = v >> 32;
    }
    let mut top = span.hi;
    while carry != 0 && carry != -1 {
        top += 1;
        digits[top] = carry as u32;
        carry >>= 32;
    }
    let neg = carry == -1;
    if neg {
        // The final carry of -1 stands for infinitely many one digits above `top`; one of them
        // must take part in the negation, or a value of exactly -2^(32 (top + 1)), whose
        // digits are all zero, would come out as zero.
        top += 1;
        digits[top] = u32::MAX;
        // Two's complement over the digit string: digits below the lowest nonzero one stay 0.
        let mut borrow = true;
        for d in &mut digits[span.lo..=top] {
            if borrow {
                if *d != 0 {
                    *d = d.wrapping_neg();
                    borrow = false;
                }
            } else {
                *d = !*d;
            }
        }
    }
    let h = (span.lo..=top).rev().find(|&i| digits[i] != 0)?;
    // The top 128 bits, starting at the highest one bit, and a sticky bit for the rest.
    let digit = |j: usize| if h >= span.lo + j { digits[h - j] } else { 0 };
    let mut mag: u128 = 0;
    for j in 0..4 {
        mag = (mag << 32) | u128::from(digit(j));
    }
    // Below 32: the first digit is nonzero.
    let lz = mag.leading_zeros();
    let fifth = digit(4);
    if lz > 0 {
        mag = (mag << lz) | u128::from(fifth >> (32 - lz));
    }
    let sticky = (u64::from(fifth) << lz) as u32 != 0
        || (h >= span.lo + 5 && digits[span.lo..h - 4].iter().any(|&d| d != 0));
    Some(HighBits {
        neg,
        mag,
        exp: 32 * (h as i32 - 3) - bias - lz as i32,
        sticky,
    })
}

/// The value of float limbs rounded once: the correctly rounded `sum / n`.
pub(crate) fn round_float_limbs(limbs: &[i64], span: LimbRange, bias: i32, n: u64) -> f64 {
    float_high_bits(limbs, span, bias).map_or(0.0, |top| top.div_round(n))
}

/// Propagates carries through numeric limbs so that every limb but the top one lies in
/// `[0, 2^32)`, leaving the value unchanged; returns the range of limbs now nonzero.
///
/// The result is canonical: limbs of equal value carry to equal limbs.
pub(crate) fn carry_limbs(limbs: &mut [i64]) -> LimbRange {
    let top = limbs.len() - 1;
    let mut span = LimbRange::EMPTY;
    let mut carry = 0i64;
    for (i, limb) in limbs.iter_mut().enumerate() {
        // |limb| < 2^62 and |carry| < 2^31: no overflow.
        let v = limb.wrapping_add(carry);
        if i == top {
            *limb = v;
        } else {
            *limb = i64::from(v as u32);
            carry = v >> 32;
        }
        if *limb != 0 {
            span.cover(i, i);
        }
    }
    span
}

/// Whether numeric limbs are as [`carry_limbs`] leaves them, with the top limb below `2^62`
/// in magnitude.
pub(crate) fn is_carried(limbs: &[i64]) -> bool {
    let (top, rest) = limbs.split_last().expect("numeric limbs");
    top.unsigned_abs() < 1 << 62 && rest.iter().all(|&l| (0..1 << 32).contains(&l))
}

/// The exact value of integer limbs (weights `2^(32 i)`).
#[inline]
pub(crate) fn int_limbs_value(limbs: &[i64]) -> i128 {
    limbs
        .iter()
        .enumerate()
        .fold(0i128, |acc, (i, &l)| acc + (i128::from(l) << (32 * i)))
}

/// Integers of at most 32 bits are one digit: `N <= 2^30` values below `2^32` in magnitude keep
/// the limb below `2^62`. 64-bit integers are two: a low unsigned 32-bit digit and a high digit
/// that carries the sign (for signed types).
macro_rules! integer_limbs {
    ($limbs:literal, $digits:expr => $($t:ty),*) => {$(
        impl LimbSum<$t> for [i64; $limbs] {
            type Sum = i128;
            const NUMERIC: usize = $limbs;

            #[inline(always)]
            fn add(&mut self, x: $t) -> LimbRange {
                add_int_digits(self, $digits(x), false)
            }
            #[inline(always)]
            fn remove(&mut self, x: $t) -> LimbRange {
                add_int_digits(self, $digits(x), true)
            }
            #[inline]
            fn exact_sum(&self, _: LimbRange) -> i128 {
                int_limbs_value(self)
            }
            #[inline]
            fn exact_mean(&self, _: LimbRange, n: u64) -> f64 {
                int_mean(int_limbs_value(self), n, n as i64 as f64)
            }
        }
    )*};
}

integer_limbs!(1, |x| [x as i64] => i8, i16, i32, u8, u16, u32);
integer_limbs!(2, signed_digits => i64);
integer_limbs!(2, unsigned_digits => u64);
#[cfg(target_pointer_width = "64")]
integer_limbs!(2, |x| signed_digits(x as i64) => isize);
#[cfg(target_pointer_width = "64")]
integer_limbs!(2, |x| unsigned_digits(x as u64) => usize);
#[cfg(not(target_pointer_width = "64"))]
integer_limbs!(1, |x| [x as i64] => isize, usize);

/// The limbs of a float type: `F::LIMBS` of them, the last three counting NaN, `+inf` and
/// `-inf`.
macro_rules! float_limbs {
    ($t:ty, $format:ty, limbs = $limbs:literal) => {
        const _: () = assert!(<$format as FloatFormat>::LIMBS == $limbs);

        impl LimbSum<$t> for [i64; $limbs] {
            type Sum = f64;
            const NUMERIC: usize = <$format as FloatFormat>::NUMERIC;

            #[inline(always)]
            fn add(&mut self, x: $t) -> LimbRange {
                accumulate_float::<$format, $limbs>(u64::from(x.to_bits()), self, false)
            }
            #[inline(always)]
            fn remove(&mut self, x: $t) -> LimbRange {
                accumulate_float::<$format, $limbs>(u64::from(x.to_bits()), self, true)
            }
            #[inline]
            fn exact_sum(&self, span: LimbRange) -> f64 {
                self.exact_mean(span, 1)
            }
            #[inline]
            fn exact_mean(&self, span: LimbRange, n: u64) -> f64 {
                non_finite(self, <$format as FloatFormat>::NUMERIC).unwrap_or_else(|| {
                    round_float_limbs(self, span, <$format as FloatFormat>::BIAS, n)
                })
            }
        }
    };
}

float_limbs!(f64, Binary64, limbs = 69);
float_limbs!(f32, Binary32, limbs = 13);

#[cfg(test)]
mod tests {
    use super::*;

    fn value(limbs: &[i64], hi: usize) -> f64 {
        round_float_limbs(limbs, LimbRange { lo: 0, hi }, 0, 1)
    }

    #[test]
    fn negative_values_including_exact_powers_at_the_top_digit() {
        assert_eq!(value(&[-5, 0, 0], 0), -5.0);
        // All digits zero and a final carry of -1: exactly -2^32.
        assert_eq!(value(&[-(1 << 32), 0, 0], 0), -4294967296.0);
        assert_eq!(value(&[0, -(1 << 32), 0], 1), -18446744073709551616.0);
        assert_eq!(value(&[-1, 1, 0], 1), 4294967295.0);
        assert_eq!(value(&[1, -1, 0], 1), -4294967295.0);
        assert_eq!(value(&[0, 0, 0], 2), 0.0);
    }

    #[test]
    fn integer_limbs() {
        assert_eq!(int_limbs_value(&[-1, 1]), (1 << 32) - 1);
        assert_eq!(
            int_mean(i128::MAX / 2, 1 << 30, (1u64 << 30) as f64),
            (i128::MAX / 2) as f64 / (1u64 << 30) as f64
        );
        assert_eq!(int_mean(-7, 2, 2.0), -3.5);
    }
}
