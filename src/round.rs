//! Correct rounding of an exact quotient to `f64`.
//!
//! The exact accumulators hand over a sum as a 128-bit magnitude, a binary exponent and a
//! sticky bit that says whether anything nonzero lies below the magnitude's last bit. Dividing
//! that by the element count `n` and rounding once, to nearest with ties to even, gives the
//! correctly rounded mean; with `n = 1` it gives the correctly rounded sum. Integer sums, exact in
//! an `i128`, take one IEEE division when they are small enough to be exact in an `f64`.

/// Returns `(-1)^neg * (mag + tail) * 2^exp / n` rounded to nearest, ties to even, where
/// `tail` lies in `[0, 1)` and is nonzero exactly when `sticky` is set.
///
/// Requires `n >= 1` and, when `sticky` is set, `mag >= 2^96` for `n <= 2^32` and
/// `mag >= 2^127` for larger `n`, so that the integer quotient keeps at least 63 significant
/// bits and everything below its 55th bit may be folded into a sticky bit.
pub(crate) fn div_round(neg: bool, mut mag: u128, mut exp: i32, sticky: bool, n: u64) -> f64 {
    debug_assert!(n >= 1);
    if mag == 0 {
        debug_assert!(!sticky);
        return 0.0;
    }
    if !sticky {
        // Nothing lies below the last bit, so the magnitude may be shifted up for free.
        let lz = mag.leading_zeros();
        mag <<= lz;
        exp -= lz as i32;
    }
    debug_assert!(mag >> 96 != 0);
    let (q, r) = if n <= 1 << 32 {
        div_small(mag, n)
    } else {
        // Only sums over more than 2^32 elements (ExactSum) come here: rare enough for the
        // 128-bit library division.
        debug_assert!(mag >> 127 != 0);
        (mag / u128::from(n), mag % u128::from(n) != 0)
    };
    // (mag + tail) / n = q + (r + tail) / n with 0 <= r + tail < n: the fractional part is
    // nonzero exactly when r or tail is.
    let magnitude = round_scaled(q, exp, sticky || r);
    if neg {
        -magnitude
    } else {
        magnitude
    }
}

/// `(mag / n, mag % n)` for `1 <= n <= 2^32`, as three 64-bit divisions, each with a dividend
/// below `2^64` (the remainder carried in is below `n`): much cheaper than a general 128-bit
/// division.
#[inline]
fn div_small(mag: u128, n: u64) -> (u128, bool) {
    debug_assert!((1..=1 << 32).contains(&n));
    let high = (mag >> 64) as u64;
    let (q2, r) = (high / n, high % n);
    let mid = (r << 32) | ((mag >> 32) as u64 & 0xffff_ffff);
    let (q1, r) = (mid / n, mid % n);
    let low = (r << 32) | (mag as u64 & 0xffff_ffff);
    let (q0, r) = (low / n, low % n);
    let q = (u128::from(q2) << 64) | (u128::from(q1) << 32) | u128::from(q0);
    (q, r != 0)
}

/// Rounds `(q + tail) * 2^exp` to the nearest `f64`, where `q >= 2^55` and `tail` in `[0, 1)`
/// is nonzero exactly when `sticky` is set.
fn round_scaled(q: u128, exp: i32, sticky: bool) -> f64 {
    debug_assert!(q >> 55 != 0);
    let bits = 128 - q.leading_zeros() as i32;
    let top = exp + bits - 1;
    if top > 1023 {
        return f64::INFINITY;
    }
    // Exponent of the last bit the result keeps: 53 significant bits, or fewer below the
    // normal range, where the last bit is pinned at 2^-1074.
    let lsb = (top - 52).max(-1074);
    let shift = lsb - exp;
    debug_assert!(shift >= 3);
    if shift > 128 {
        // Less than half of the smallest subnormal.
        return 0.0;
    }
    let (kept, rem, half) = if shift == 128 {
        (0, q, 1u128 << 127)
    } else {
        (q >> shift, q & ((1u128 << shift) - 1), 1u128 << (shift - 1))
    };
    let round_up = rem > half || (rem == half && (sticky || kept & 1 == 1));
    // At most 2^53, so the conversion (through u64: one instruction, not a 128-bit library
    // call) is exact; the scaling below is exact unless it overflows,
    // and overflow to infinity is the correctly rounded answer.
    let m = (kept + u128::from(round_up)) as u64 as f64;
    if lsb >= -1022 {
        m * pow2(lsb)
    } else {
        // Two exact steps: the result is a subnormal whose last bit is at least 2^-1074.
        m * pow2(lsb + 64) * pow2(-64)
    }
}

/// `2^e` for `e` in the normal exponent range.
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The correctly rounded mean of an exact integer sum over `n <= 2^30` elements; `nf` is `n`
/// as an `f64`.
#[inline]
pub(crate) fn int_mean(sum: i128, n: u64, nf: f64) -> f64 {
    // Fast path: |sum| <= 2^53, so both operands are exact in f64 and one IEEE division is
    // correctly rounded. The conversion goes through i64, one instruction.
    if (sum + (1 << 53)) as u128 <= 1 << 54 {
        sum as i64 as f64 / nf
    } else {
        div_round(sum < 0, sum.unsigned_abs(), 0, false, n)
    }
}

/// The correctly rounded mean of an exact integer sum over any number `n >= 1` of elements.
pub(crate) fn int_mean_any(sum: i128, n: u64) -> f64 {
    if n <= 1 << 53 {
        // `n` is exact in f64.
        int_mean(sum, n, n as f64)
    } else {
        div_round(sum < 0, sum.unsigned_abs(), 0, false, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_below_2_pow_53_match_ieee_division() {
        // Both operands are exact in f64, so IEEE division is correctly rounded.
        for s in [1u128, 2, 3, 7, 10, 1 << 40, (1 << 53) - 1, 123_456_789] {
            for n in [1u64, 2, 3, 7, 10, 1000, 1 << 30] {
                assert_eq!(
                    div_round(false, s, 0, false, n),
                    s as f64 / n as f64,
                    "{s}/{n}"
                );
                assert_eq!(div_round(true, s, 0, false, n), -(s as f64) / n as f64);
            }
        }
    }

    #[test]
    fn small_division_matches_u128_division() {
        let mags = [
            u128::MAX,
            u128::MAX - 12345,
            1u128 << 127,
            (1u128 << 96) + 7,
            0xdead_beef_0123_4567_89ab_cdef_fedc_ba98,
        ];
        for mag in mags {
            for n in [
                1u64,
                2,
                3,
                7,
                1000,
                1023,
                1024,
                (1 << 30) - 1,
                1 << 30,
                1 << 32,
            ] {
                let (q, r) = div_small(mag, n);
                assert_eq!(q, mag / u128::from(n), "{mag} / {n}");
                assert_eq!(r, mag % u128::from(n) != 0, "{mag} % {n}");
            }
        }
    }

    #[test]
    fn ties_go_to_even() {
        // 2^53 + 1 lies halfway between 2^53 and 2^53 + 2: ties to even gives 2^53.
        assert_eq!(
            div_round(false, (1 << 53) + 1, 0, false, 1),
            9007199254740992.0
        );
        // 2^53 + 3 lies halfway between 2^53 + 2 and 2^53 + 4: even is 2^53 + 4.
        assert_eq!(
            div_round(false, (1 << 53) + 3, 0, false, 1),
            9007199254740996.0
        );
        // A sticky bit breaks the tie upward.
        assert_eq!(
            div_round(false, ((1u128 << 53) + 1) << 60, -60, true, 1),
            9007199254740994.0
        );
    }

    #[test]
    fn overflow_and_subnormals() {
        assert_eq!(div_round(false, 1, 1024, false, 1), f64::INFINITY);
        assert_eq!(div_round(false, 1, 1023, false, 2), pow2(1022));
        assert_eq!(div_round(false, 1, -1074, false, 1), f64::from_bits(1));
        assert_eq!(div_round(false, 3, -1074, false, 2), f64::from_bits(2)); // 1.5 -> 2 (even)
        assert_eq!(div_round(false, 1, -1074, false, 2), 0.0); // 0.5 ulp -> 0 (even)
        assert_eq!(div_round(false, 3, -1076, false, 1), f64::from_bits(1)); // 0.75 ulp -> 1
        assert_eq!(div_round(false, 1, -1076, false, 1), 0.0); // 0.25 ulp -> 0
        let max_mantissa = (1u128 << 53) - 1;
        assert_eq!(div_round(false, max_mantissa, 971, false, 1), f64::MAX);
        // The midpoint between f64::MAX and 2^1024 is a tie whose even neighbour is 2^1024.
        assert_eq!(
            div_round(false, (max_mantissa << 1) | 1, 970, false, 1),
            f64::INFINITY
        );
    }
}
