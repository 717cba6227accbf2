//! Exact reference sums and means computed with big integers, independently of the core
//! crate: every finite `f64` is an integer multiple of `2^-1074`, so a sum of them is an exact
//! big integer in those units, and the quotient of two big integers is rounded to the nearest
//! `f64` (ties to even) by long division.

#![allow(dead_code)]

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{ToPrimitive, Zero};

/// `x` (finite) in units of `2^-1074`.
pub fn scaled(x: f64) -> BigInt {
    assert!(x.is_finite());
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1 << 52) - 1);
    let (mant, e) = if exp == 0 {
        (frac, 0)
    } else {
        (frac | (1 << 52), exp - 1)
    };
    let mag = BigInt::from(mant) << e;
    if bits >> 63 == 1 {
        -mag
    } else {
        mag
    }
}

/// `num / den` rounded to the nearest `f64`, ties to even; overflow gives an infinity.
pub fn ratio_to_f64(num: &BigInt, den: &BigUint) -> f64 {
    assert!(!den.is_zero());
    if num.is_zero() {
        return 0.0;
    }
    let neg = num.sign() == Sign::Minus;
    let a = num.magnitude();
    // 2^e <= a / den < 2^(e + 1)
    let mut e = a.bits() as i64 - den.bits() as i64;
    let at_least = |e: i64| {
        if e >= 0 {
            *a >= den << (e as u64)
        } else {
            (a << ((-e) as u64)) >= *den
        }
    };
    if !at_least(e) {
        e -= 1;
    }
    // Weight of the last significand bit: 53 bits for normal numbers, fixed below.
    let mut ulp = (e - 52).max(-1074);
    let (n, d) = if ulp >= 0 {
        (a.clone(), den << (ulp as u64))
    } else {
        (a << ((-ulp) as u64), den.clone())
    };
    let q = &n / &d;
    let r = &n - &q * &d;
    let mut q = q.to_u64().expect("at most 53 bits");
    let twice = r << 1u32;
    if twice > d || (twice == d && q & 1 == 1) {
        q += 1;
    }
    if q == 1 << 53 {
        q >>= 1;
        ulp += 1;
    }
    let sign = u64::from(neg) << 63;
    let bits = if q >= 1 << 52 {
        let exp = ulp + 52;
        if exp > 1023 {
            return if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
        }
        (((exp + 1023) as u64) << 52) | (q - (1 << 52))
    } else {
        q
    };
    f64::from_bits(sign | bits)
}

/// The correctly rounded sum and mean of the non-NULL values, with the crate's contract for
/// NaN and infinities; `None` when there is no non-NULL value.
pub fn float_sum_avg(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let nan = present.iter().any(|x| x.is_nan());
    let pos = present.contains(&f64::INFINITY);
    let neg = present.contains(&f64::NEG_INFINITY);
    if nan || (pos && neg) {
        return Some((f64::NAN, f64::NAN));
    }
    if pos {
        return Some((f64::INFINITY, f64::INFINITY));
    }
    if neg {
        return Some((f64::NEG_INFINITY, f64::NEG_INFINITY));
    }
    let total: BigInt = present.iter().map(|&x| scaled(x)).sum();
    let unit = BigUint::from(1u8) << 1074u32;
    let n = BigUint::from(present.len());
    Some((
        ratio_to_f64(&total, &unit),
        ratio_to_f64(&total, &(unit * n)),
    ))
}

/// The exact sum and the correctly rounded mean of the non-NULL integers; `None` when there is
/// no non-NULL value.
pub fn int_sum_avg(values: &[Option<i128>]) -> Option<(i128, f64)> {
    let present: Vec<i128> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let total: i128 = present.iter().sum();
    let mean = ratio_to_f64(&BigInt::from(total), &BigUint::from(present.len()));
    Some((total, mean))
}

/// Equal as the tests mean it: the same bits, except that NaNs are all equal and so are the
/// two zeros.
pub fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan())
        || (a == b && a.is_sign_negative() == b.is_sign_negative())
        || (a == 0.0 && b == 0.0)
}
