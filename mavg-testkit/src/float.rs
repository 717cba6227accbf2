//! Float helpers built from bits: powers of two (exact, unlike `powi` under Miri, which
//! randomizes it), neighbouring floats, the ulp, and the comparisons the tests use.

/// `2^k` as an `f64`, built from its bits, for `-1074 <= k <= 1023` (subnormals included).
pub fn pow2(k: i32) -> f64 {
    assert!((-1074..=1023).contains(&k), "2^{k} is not a finite f64");
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1 << (k + 1074))
    }
}

/// `2^k` as an `f32`, for `-149 <= k <= 127`: [`pow2`] narrowed, which is exact there.
pub fn pow2_f32(k: i32) -> f32 {
    assert!((-149..=127).contains(&k), "2^{k} is not a finite f32");
    pow2(k) as f32
}

/// `x * 2^e` in steps that stay within the normal exponent range (approximate near underflow).
pub fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e as i32)
}

/// The smallest `f64` above the non-negative `x` (`+inf` above `f64::MAX`), by bits; both
/// zeros step to the smallest subnormal.
pub fn next_up(x: f64) -> f64 {
    assert!(
        x >= 0.0 && x.is_finite(),
        "next_up({x}) wants a finite x >= 0"
    );
    f64::from_bits((x.to_bits() & !(1 << 63)) + 1)
}

/// The largest `f64` below the positive `x`, by bits.
pub fn next_down(x: f64) -> f64 {
    assert!(x > 0.0, "next_down({x}) wants x > 0");
    f64::from_bits(x.to_bits() - 1)
}

/// The `f64` next to the finite `x` away from zero (`next_up` mirrored for negatives).
pub fn next_away(x: f64) -> f64 {
    if x < 0.0 {
        -next_up(-x)
    } else {
        next_up(x)
    }
}

/// The gap above `|q|` (a finite double).
pub fn ulp(q: f64) -> f64 {
    let a = q.abs();
    f64::from_bits(a.to_bits() + 1) - a
}

/// Of `a` and `a + ulp(a)` (positive), the one with an even significand: where a tie between
/// them rounds.
pub fn even_of(a: f64) -> f64 {
    if a.to_bits() & 1 == 0 {
        a
    } else {
        a + ulp(a)
    }
}

/// The same bits, except that all NaNs are equal (so `-0.0` and `0.0` differ).
pub fn same_bits(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// The same value as the SQL tests mean it: the same bits, except that NaNs are all equal and
/// so are the two zeros.
pub fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan())
        || (a == b && a.is_sign_negative() == b.is_sign_negative())
        || (a == 0.0 && b == 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_and_neighbours() {
        assert_eq!(pow2(0), 1.0);
        assert_eq!(pow2(-1074), f64::from_bits(1));
        assert_eq!(pow2(1023), f64::MAX / (2.0 - f64::EPSILON));
        assert_eq!(pow2_f32(-149), f32::from_bits(1));
        assert_eq!(pow2_f32(127), f32::MAX / (2.0 - f32::EPSILON));
        assert_eq!(ldexp(1.0, 2000), f64::INFINITY);
        assert_eq!(ldexp(1.0, -1074), f64::from_bits(1));
        assert_eq!(ldexp(3.0, 1000), 3.0 * pow2(1000));
        assert_eq!(next_down(next_up(1.0)), 1.0);
        assert_eq!(next_up(f64::MAX), f64::INFINITY);
        assert_eq!(next_up(-0.0), f64::from_bits(1));
        assert_eq!(next_away(-1.0), -next_up(1.0));
        assert_eq!(ulp(1.0), f64::EPSILON);
        assert_eq!(ulp(-1.0), f64::EPSILON);
        assert_eq!(even_of(1.0), 1.0);
        assert_eq!(even_of(next_up(1.0)), 1.0 + 2.0 * f64::EPSILON);
        assert!(same_bits(f64::NAN, -f64::NAN) && !same_bits(0.0, -0.0));
        assert!(same_value(f64::NAN, -f64::NAN) && same_value(0.0, -0.0));
        assert!(!same_value(1.0, next_up(1.0)));
    }
}
