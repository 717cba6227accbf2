//! An exact oracle with `num-bigint`, written without any of the crate's code or techniques:
//!
//! * finite floats are decoded from their bits into exact integers scaled by `2^1074` (`f64`)
//!   or `2^149` (`f32`), integers are taken as they are, and a sum of them is an exact
//!   `BigInt` ([`Total`]);
//! * the exact sum and the exact mean `sum / (n * 2^scale)` are rounded to `f64` by an
//!   independent correct-rounding oracle ([`round_exact`]) that brackets the rational between
//!   two neighbouring `f64`s by exact cross-multiplication and decides by comparing with the
//!   exact midpoint (ties to even, overflow to infinity beyond the `f64::MAX` rounding
//!   boundary, subnormals and signed zeros handled);
//! * non-finite floats follow the crate's contract: NaN while the values hold a NaN or both
//!   infinities, the infinity while they hold infinities of one sign only.

use std::cmp::Ordering;

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, ToPrimitive, Zero};

use crate::float::ldexp;

/// The exact value of one element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exact {
    /// A finite element, as an integer: the element times `2^SCALE`.
    Finite(BigInt),
    Nan,
    PosInf,
    NegInf,
}

/// A sum as an implementation returns it: exact `i128` for integers, `f64` for floats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SumValue {
    Int(i128),
    Float(f64),
}

/// A correctly rounded `f64`, remembering whether the exact value was zero.
///
/// An exact rational zero has no sign; the contract only asks for "the exact sum rounded
/// once", so for an exactly-zero sum or mean either `+0.0` or `-0.0` is accepted (the crate
/// returns `+0.0`; a naive `-0.0 + -0.0` would give `-0.0`). Every other result, including a
/// nonzero mean that underflows to a signed zero, must match bit for bit.
#[derive(Clone, Copy, Debug)]
pub struct Rounded {
    pub value: f64,
    pub exact_zero: bool,
}

impl Rounded {
    /// Whether `actual` is this result: NaN for NaN, `==` for an exact zero, bits otherwise.
    pub fn matches(&self, actual: f64) -> bool {
        if self.value.is_nan() {
            actual.is_nan()
        } else if self.exact_zero {
            actual == 0.0
        } else {
            actual.to_bits() == self.value.to_bits()
        }
    }
}

/// Whether an average read (`None` when empty) is the expected one.
pub fn average_matches(expected: Option<Rounded>, actual: Option<f64>) -> bool {
    match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => e.matches(a),
        _ => false,
    }
}

/// The expected sum.
#[derive(Clone, Copy, Debug)]
pub enum ExpectedSum {
    Int(i128),
    Float(Rounded),
}

impl ExpectedSum {
    pub fn matches(&self, actual: SumValue) -> bool {
        match (self, actual) {
            (ExpectedSum::Int(e), SumValue::Int(a)) => *e == a,
            (ExpectedSum::Float(e), SumValue::Float(a)) => e.matches(a),
            _ => false,
        }
    }
}

/// The element types the oracle knows: the primitive integers and floats.
pub trait ExactValue: Copy + std::fmt::Debug {
    /// Finite elements are integers once multiplied by `2^SCALE`.
    const SCALE: u32;
    const IS_FLOAT: bool;
    const NAME: &'static str;
    /// The element's exact value.
    fn exact(self) -> Exact;
    /// Bit-for-bit identity (floats: same bits, so `-0.0 != 0.0` and a NaN equals itself).
    fn same(self, other: Self) -> bool;
    /// A small value of the type.
    fn small(x: u8) -> Self;
}

macro_rules! exact_int {
    ($($t:ty),*) => {$(
        impl ExactValue for $t {
            const SCALE: u32 = 0;
            const IS_FLOAT: bool = false;
            const NAME: &'static str = stringify!($t);
            fn exact(self) -> Exact {
                Exact::Finite(BigInt::from(self))
            }
            fn same(self, other: Self) -> bool {
                self == other
            }
            fn small(x: u8) -> Self {
                x as $t
            }
        }
    )*};
}
exact_int!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! exact_float {
    ($($t:ty, $scale:expr, $mant:expr, $exp_bits:expr);*) => {$(
        impl ExactValue for $t {
            const SCALE: u32 = $scale;
            const IS_FLOAT: bool = true;
            const NAME: &'static str = stringify!($t);
            fn exact(self) -> Exact {
                exact_float(u64::from(self.to_bits()), $mant, $exp_bits)
            }
            fn same(self, other: Self) -> bool {
                self.to_bits() == other.to_bits()
            }
            fn small(x: u8) -> Self {
                Self::from(x)
            }
        }
    )*};
}
exact_float!(f64, 1074, 52, 11; f32, 149, 23, 8);

/// The exact value of an IEEE binary float given by its bits, its fraction width and its
/// exponent width, in units of the smallest subnormal: `frac` for a subnormal, `(2^mant + frac)
/// << (e - 1)` for a normal number.
pub fn exact_float(bits: u64, mant: u32, exp_bits: u32) -> Exact {
    let negative = bits >> (mant + exp_bits) & 1 == 1;
    let exp_mask = (1u64 << exp_bits) - 1;
    let e = (bits >> mant) & exp_mask;
    let frac = bits & ((1u64 << mant) - 1);
    if e == exp_mask {
        return if frac != 0 {
            Exact::Nan
        } else if negative {
            Exact::NegInf
        } else {
            Exact::PosInf
        };
    }
    let scaled = if e == 0 {
        BigUint::from(frac)
    } else {
        BigUint::from(frac | (1u64 << mant)) << (e - 1)
    };
    Exact::Finite(signed(negative, scaled))
}

/// The finite `x` in units of `2^-1074`.
pub fn exact_f64(x: f64) -> BigInt {
    match x.exact() {
        Exact::Finite(v) => v,
        other => panic!("{x} is {other:?}"),
    }
}

fn signed(negative: bool, magnitude: BigUint) -> BigInt {
    let sign = if magnitude.is_zero() {
        Sign::NoSign
    } else if negative {
        Sign::Minus
    } else {
        Sign::Plus
    };
    BigInt::from_biguint(sign, magnitude)
}

/// `2^k` as a `BigInt`.
pub fn big_pow2(k: u32) -> BigInt {
    BigInt::one() << k
}

/// A list of values summarized exactly.
#[derive(Clone, Debug)]
pub struct Total {
    /// Exact sum of the finite elements, times `2^SCALE`.
    pub sum: BigInt,
    pub scale: u32,
    pub n: usize,
    pub nan: usize,
    pub pos_inf: usize,
    pub neg_inf: usize,
}

impl Total {
    /// Sums `elements` from scratch.
    pub fn of<T: ExactValue>(elements: &[T]) -> Total {
        let mut total = Total {
            sum: BigInt::zero(),
            scale: T::SCALE,
            n: elements.len(),
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
        };
        for &x in elements {
            match x.exact() {
                Exact::Finite(v) => total.sum += v,
                Exact::Nan => total.nan += 1,
                Exact::PosInf => total.pos_inf += 1,
                Exact::NegInf => total.neg_inf += 1,
            }
        }
        total
    }

    /// The contract's rule for non-finite elements, if any is present.
    pub fn non_finite(&self) -> Option<f64> {
        if self.nan > 0 || (self.pos_inf > 0 && self.neg_inf > 0) {
            Some(f64::NAN)
        } else if self.pos_inf > 0 {
            Some(f64::INFINITY)
        } else if self.neg_inf > 0 {
            Some(f64::NEG_INFINITY)
        } else {
            None
        }
    }

    /// `sum / (divisor * 2^scale)`, correctly rounded, or the non-finite result.
    pub fn rounded(&self, divisor: u64) -> Rounded {
        match self.non_finite() {
            Some(v) => Rounded {
                value: v,
                exact_zero: false,
            },
            None => Rounded {
                value: round_exact(&self.sum, divisor, self.scale),
                exact_zero: self.sum.is_zero(),
            },
        }
    }

    /// The contract's sum: exact `i128` for integers, the exact sum rounded once for floats.
    pub fn expected_sum(&self, is_float: bool) -> ExpectedSum {
        if is_float {
            ExpectedSum::Float(self.rounded(1))
        } else {
            ExpectedSum::Int(
                self.sum
                    .to_i128()
                    .expect("an integer window's exact sum fits in i128"),
            )
        }
    }

    /// The contract's average: `None` when empty, else the exact mean rounded once.
    pub fn expected_average(&self) -> Option<Rounded> {
        (self.n > 0).then(|| self.rounded(self.n as u64))
    }
}

/// The exact sum of `elements`, rounded once for floats.
pub fn expected_sum<T: ExactValue>(elements: &[T]) -> ExpectedSum {
    Total::of(elements).expected_sum(T::IS_FLOAT)
}

/// The exact mean of `elements` rounded once; `None` when there is none.
pub fn expected_average<T: ExactValue>(elements: &[T]) -> Option<Rounded> {
    Total::of(elements).expected_average()
}

// ---------------------------------------------------------------------------------------------
// The correct-rounding oracle.
// ---------------------------------------------------------------------------------------------

/// Bits of `f64::MAX`; positive finite `f64`s are ordered as their bits, and `MAX_BITS + 1` are
/// the bits of `+inf`.
const MAX_BITS: u64 = 0x7fef_ffff_ffff_ffff;

/// The exact value of the non-negative `f64` with these bits, times `2^1074`. For
/// `MAX_BITS + 1` (`+inf`) this is `2^(1024 + 1074)`: the value the exponent field would give
/// `2^1024`, which is exactly what the overflow boundary needs.
fn scaled_bits(bits: u64) -> BigUint {
    debug_assert!(bits <= MAX_BITS + 1);
    let e = bits >> 52;
    let frac = bits & ((1u64 << 52) - 1);
    if e == 0 {
        BigUint::from(frac)
    } else {
        BigUint::from(frac | (1u64 << 52)) << (e - 1)
    }
}

/// `num / (divisor * 2^scale)` rounded to the nearest `f64`, ties to even; `+0.0` when `num` is
/// zero, a zero with `num`'s sign when a nonzero quotient underflows, an infinity when the
/// quotient reaches the overflow boundary `2^1024 - 2^970`.
///
/// The quotient `x` is bracketed as `f(b) <= |x| < f(b + 1)` for consecutive bit patterns `b`,
/// starting from an approximate candidate and walking by one bit pattern at a time (every
/// comparison exact: `|num| * 2^(1074 - scale)` against `f(b) * 2^1074 * divisor`), then
/// compared with the exact midpoint `(f(b) + f(b + 1)) / 2`.
pub fn round_exact(num: &BigInt, divisor: u64, scale: u32) -> f64 {
    assert!(divisor >= 1);
    assert!(scale <= 1074);
    if num.is_zero() {
        return 0.0;
    }
    let negative = num.sign() == Sign::Minus;
    let divisor_big = BigUint::from(divisor);
    // |x| = target / (2^1074 * divisor), so |x| compared with f(b) is target compared with
    // scaled_bits(b) * divisor.
    let target: BigUint = num.magnitude() << (1074 - scale);
    let cmp_at = |b: u64| (scaled_bits(b) * &divisor_big).cmp(&target);

    let mut b = approximate_bits(num.magnitude(), divisor, scale);
    let mut steps = 0;
    // Walk down while f(b) > |x|, then up while f(b + 1) <= |x|.
    while b > 0 && cmp_at(b) == Ordering::Greater {
        b -= 1;
        steps += 1;
        if steps > 64 {
            b = bisect(&cmp_at);
            break;
        }
    }
    while b < MAX_BITS && cmp_at(b + 1) != Ordering::Greater {
        b += 1;
        steps += 1;
        if steps > 64 {
            b = bisect(&cmp_at);
            break;
        }
    }
    debug_assert!(cmp_at(b) != Ordering::Greater);
    debug_assert!(b == MAX_BITS || cmp_at(b + 1) == Ordering::Greater);

    // Compare 2|x| with f(b) + f(b + 1); above MAX the upper neighbour is the boundary 2^1024,
    // so the midpoint is the overflow threshold and a tie there goes to infinity, whose
    // notional significand (2^1024 = 2^52 * 2^972) is even, like any tie to the even side.
    let midpoint = (scaled_bits(b) + scaled_bits(b + 1)) * &divisor_big;
    let twice: BigUint = &target << 1u32;
    let up = match twice.cmp(&midpoint) {
        Ordering::Less => false,
        Ordering::Greater => true,
        Ordering::Equal => b & 1 == 1,
    };
    let magnitude = f64::from_bits(if up { b + 1 } else { b });
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// The largest bit pattern `b` in `[0, MAX_BITS]` with `f(b) <= |x|`, by bisection.
fn bisect(cmp_at: &impl Fn(u64) -> Ordering) -> u64 {
    let (mut lo, mut hi) = (0u64, MAX_BITS);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if cmp_at(mid) == Ordering::Greater {
            hi = mid - 1;
        } else {
            lo = mid;
        }
    }
    lo
}

/// Bits of an `f64` near `magnitude / (divisor * 2^scale)`, clamped to the finite range; only a
/// starting point for the exact walk.
fn approximate_bits(magnitude: &BigUint, divisor: u64, scale: u32) -> u64 {
    let bits = magnitude.bits();
    let (top, exp) = if bits > 64 {
        (
            (magnitude >> (bits - 64)).to_u64().unwrap(),
            (bits - 64) as i64,
        )
    } else {
        (magnitude.to_u64().unwrap(), 0)
    };
    let approx = ldexp(top as f64 / divisor as f64, exp - i64::from(scale));
    if approx.is_infinite() {
        MAX_BITS
    } else {
        approx.to_bits().min(MAX_BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::float::{next_up, pow2};

    #[test]
    fn rounding_ties_overflow_underflow_and_non_finite_rules() {
        // 1 + 2^-53 is the midpoint above 1: ties to the even 1; 3 * 2^-53 more rounds up.
        let one = exact_f64(1.0);
        assert_eq!(round_exact(&(&one + exact_f64(pow2(-53))), 1, 1074), 1.0);
        let above = &one + exact_f64(3.0 * pow2(-53));
        assert_eq!(round_exact(&above, 1, 1074), next_up(next_up(1.0)));
        // Integers over a count: 1 / 3 and -7 / 2 as IEEE divides them.
        assert_eq!(round_exact(&BigInt::from(1), 3, 0), 1.0 / 3.0);
        assert_eq!(round_exact(&BigInt::from(-7), 2, 0), -3.5);
        // Twice f64::MAX overflows; half the smallest subnormal ties to a signed zero.
        let twice_max = exact_f64(f64::MAX) * 2;
        assert_eq!(round_exact(&twice_max, 1, 1074), f64::INFINITY);
        assert_eq!(round_exact(&-twice_max, 1, 1074), f64::NEG_INFINITY);
        assert_eq!(
            round_exact(&BigInt::from(-1), 2, 1074).to_bits(),
            (-0.0f64).to_bits()
        );
        // f32 values decode to the same exact value as their f64 widening.
        let Exact::Finite(x) = 0.1f32.exact() else {
            unreachable!()
        };
        assert_eq!(x << (1074 - 149), exact_f64(f64::from(0.1f32)));
        // The contract's non-finite rule, and an exact zero that may read as either zero.
        let nan = Total::of(&[f64::INFINITY, 1.0, f64::NEG_INFINITY]);
        assert!(nan.expected_average().unwrap().value.is_nan());
        let inf = Total::of(&[f64::INFINITY, 1.0, f64::INFINITY]);
        assert_eq!(inf.rounded(1).value, f64::INFINITY);
        let zero = Total::of(&[-0.0, -0.0]);
        assert!(zero.expected_sum(true).matches(SumValue::Float(-0.0)));
        assert!(average_matches(zero.expected_average(), Some(0.0)));
        assert!(average_matches(None, None) && !average_matches(None, Some(0.0)));
        assert!(
            matches!(expected_sum(&[i64::MAX, i64::MAX]), ExpectedSum::Int(s) if s == 2 * i128::from(i64::MAX))
        );
        assert_eq!(big_pow2(70), BigInt::from(1u128 << 70));
    }
}
