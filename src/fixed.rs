//! The fixed-point sum of floats: most windows' exact sum in one `i128`.
//!
//! A finite float is `m * 2^(p - BIAS)` with an integer significand `m < 2^(MANT + 1)` and `p`
//! its position counted from the smallest subnormal (`limbs.rs`). On a *grid* `g`, a float
//! with `g <= p <= g + shift_limit` is the integer `m << (p - g)` in units of `2^(g - BIAS)`,
//! below `2^(MANT + 1 + shift_limit)`. A window holds at most `E` elements, and the shift
//! limit is chosen so that `E` such integers sum to less than `2^127` in magnitude
//! ([`shift_limit`]): then an `i128` updated with wrapping arithmetic holds the exact sum of
//! the elements on the grid, whatever passed through before (the same argument as for the
//! limbs). Adding such an element is a shift and a 128-bit addition.
//!
//! Elements off the grid (too small, too large, non-finite) go to the exact limbs, which then
//! hold only those. While the limbs are zero, a read divides the fixed-point sum by `n` and
//! proves the rounding in integers ([`fixed_mean`]); otherwise it adds the fixed-point sum
//! into a copy of the limbs and rounds that once.

use crate::element::FloatFormat;
use crate::round::div_round;

/// The grid of a sum that has seen no nonzero finite value: every position is off it, since
/// `p - GRID_UNSET` wraps to at least `2^31`.
pub(crate) const GRID_UNSET: u32 = 1 << 31;

/// The largest shift `p - g` that keeps the sum of `elements` values on the grid below
/// `2^127` in magnitude: each is below `2^(MANT + 1 + shift)`, and `elements <= 2^k` of them
/// are below `2^(MANT + 1 + shift + k)`.
pub(crate) const fn shift_limit<F: FloatFormat>(elements: u64) -> u32 {
    let k = if elements <= 1 {
        0
    } else {
        64 - (elements - 1).leading_zeros()
    };
    // `elements <= 2^30` for every caller, so this is at least `127 - 54 - 30 = 43` for f64.
    127 - (F::MANT + 1) - k
}

/// The highest grid for format `F`: the non-finite values (position `EXP_MASK - 1`) stay off
/// it for any shift limit, and a fixed-point sum folded into the limbs at the grid fits in
/// them (five 32-bit digits from limb `g / 32`, see [`fold_into_limbs`]).
pub(crate) const fn grid_max<F: FloatFormat>(shift_limit: u32) -> u32 {
    let below_non_finite = (F::EXP_MASK - 1) as u32 - shift_limit - 1;
    let fits_limbs = 32 * (F::NUMERIC as u32 - 5) + 31;
    if below_non_finite < fits_limbs {
        below_non_finite
    } else {
        fits_limbs
    }
}

/// A float's sign, integer significand and position, from its bits (for any float, finite or
/// not: non-finite values have position `EXP_MASK - 1`).
#[inline(always)]
pub(crate) fn decompose<F: FloatFormat>(bits: u64) -> (bool, u64, u32) {
    let sign = (bits >> (F::MANT + F::EXP_MASK.count_ones())) & 1 == 1;
    let e = (bits >> F::MANT) & F::EXP_MASK;
    let normal = u64::from(e != 0);
    let m = (bits & ((1u64 << F::MANT) - 1)) | (normal << F::MANT);
    (sign, m, (e - normal) as u32)
}

/// The signed value of `m << shift`, for `shift <=` a [`shift_limit`]: exact in an `i128`.
#[inline(always)]
pub(crate) fn on_grid(sign: bool, m: u64, shift: u32) -> i128 {
    let v = i128::from(m) << shift;
    let s = -i128::from(sign);
    (v ^ s) - s
}

/// The element with these bits in units of grid `grid`, if it is a normal float at most
/// `limit` places above the grid: the add's test, a subtraction and a comparison. Zeros and
/// subnormals (biased exponent 0 wraps to a huge shift) and non-finite values (above
/// [`grid_max`]) are not; callers that put subnormals on a grid at the bottom test them apart.
#[inline(always)]
pub(crate) fn normal_on_grid<F: FloatFormat>(bits: u64, grid: u32, limit: u32) -> Option<i128> {
    let e = ((bits >> F::MANT) & F::EXP_MASK) as u32;
    let shift = e.wrapping_sub(1).wrapping_sub(grid);
    if shift > limit {
        return None;
    }
    let m = (bits & ((1 << F::MANT) - 1)) | (1 << F::MANT);
    let sign = -(((bits >> (F::MANT + F::EXP_MASK.count_ones())) & 1) as i64);
    // +-m fits an i64, and so an i128 shifted by at most the shift limit.
    Some(i128::from((m as i64 ^ sign) - sign) << shift)
}

/// Whether a float given by its bits is nonzero and finite.
#[inline(always)]
pub(crate) fn nonzero_finite<F: FloatFormat>(bits: u64) -> bool {
    let (_, m, p) = decompose::<F>(bits);
    m != 0 && p < (F::EXP_MASK - 1) as u32
}

/// A grid on which a first element of significand `m` at position `p` has about as much room
/// above as below: full-significand values from `2^(limit / 2)` times smaller to
/// `2^(limit / 2)` times larger fit.
pub(crate) fn grid_around<F: FloatFormat>(m: u64, p: u32, limit: u32) -> u32 {
    let top = p + 63 - m.leading_zeros();
    top.saturating_sub(F::MANT + limit / 2)
        .min(grid_max::<F>(limit))
}

/// The exponent of grid `grid`'s unit (any value for [`GRID_UNSET`], whose sums are zero).
#[inline(always)]
pub(crate) fn unit_of<F: FloatFormat>(grid: u32) -> i32 {
    (grid as i32).wrapping_sub(F::BIAS)
}

/// `2^e` for `e` in the normal exponent range, from its bits.
#[inline(always)]
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

const HIDDEN: u64 = 1 << 52;

/// The correctly rounded `fixed * 2^unit / n`: a fixed-point sum in units of `2^unit` divided
/// by its `n >= 1` elements; `nf` is `n` as an `f64` (rounded if `n > 2^53`).
///
/// The candidate `q` is the top bits of `|fixed|` rounded to 53, divided by `nf` and scaled:
/// within one and a half units in its last place of the exact quotient, so the correctly
/// rounded one is `q` or a neighbour. The residual `|fixed| - q n`, computed exactly in
/// integers, picks it: with `a = n * ulp(q)` (in the sum's units), `|2 r| < a` means `q`, and
/// `a < 2 r < 3 a` (`-3 a < 2 r < -a`) the neighbour above (below). Ties, residuals outside
/// those bounds, candidates next to a power of two (where the gap changes) and results outside
/// the normal range go to the exact division [`div_round`]. The proof is in
/// `notes/design.md` (*The fixed-point window*).
#[inline(always)]
pub(crate) fn fixed_mean(fixed: i128, unit: i32, n: u64, nf: f64) -> f64 {
    if fixed == 0 {
        return 0.0;
    }
    let neg = fixed < 0;
    let mag = fixed.unsigned_abs();
    let lz = mag.leading_zeros();
    // The top 64 bits, rounded to 53 (a carry out makes exactly 2^53, still exact).
    let top = ((mag << lz) >> 64) as u64;
    let rounded = ((top >> 10) + 1) >> 1;
    // mag ~ rounded * 2^(75 - lz), so the quotient is ~ rounded / n * 2^(unit + 75 - lz).
    let e = unit + 75 - lz as i32;
    if !(-1022..=1023).contains(&e) {
        return exact_mean(neg, mag, unit, n);
    }
    let q = rounded as i64 as f64 / nf * pow2(e);
    let bits = q.to_bits();
    let biased = (bits >> 52) as i32;
    // Zero, subnormal, infinite or NaN candidates: the exact division.
    if biased == 0 || biased == 0x7ff {
        return exact_mean(neg, mag, unit, n);
    }
    let m = (bits & (HIDDEN - 1)) | HIDDEN;
    // q = m * 2^lsb; in the sum's units, q n = m n 2^d.
    let d = biased - 1075 - unit;
    let mn = u128::from(m) * u128::from(n);
    // r = |fixed| - q n and a = n ulp(q), both scaled by 2^-d when d < 0 (exact: both sides
    // are then integers below 2^118); |r| < 2^127 since q is close, so wrapping is exact.
    let (r, a) = if d >= 0 {
        let d = d as u32;
        (mag.wrapping_sub(mn << d) as i128, i128::from(n) << d)
    } else {
        let d = (-d) as u32;
        ((mag << d).wrapping_sub(mn) as i128, i128::from(n))
    };
    let t = r.wrapping_mul(2);
    let k = i64::from(t > a) - i64::from(t < -a);
    let m2 = m as i64 + k;
    let settled = t != a && t != -a && t < 3 * a && t > -3 * a;
    if !(settled && m2 > HIDDEN as i64 && m2 < 2 * HIDDEN as i64) {
        return exact_mean(neg, mag, unit, n);
    }
    f64::from_bits(bits.wrapping_add(k as u64) | (u64::from(neg) << 63))
}

/// `1 / n` for a window's fixed size `n`, so that reads of a full window divide by
/// multiplying: `mu = floor((2^(127 + b) - 1) / n)` with `b` the bit length of `n`, so that
/// `2^127 <= mu < 2^128` and `2^(127 + b) / n = mu + delta` with `0 < delta < 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reciprocal {
    mu: u128,
    bits: u32,
    n: u64,
}

impl Reciprocal {
    /// The reciprocal of `1 <= n <= 2^32`.
    pub(crate) fn new(n: u64) -> Reciprocal {
        assert!((1..=1 << 32).contains(&n), "reciprocal of {n}");
        let bits = 64 - n.leading_zeros();
        let n128 = u128::from(n);
        // 2^(127 + b) - 1 = (2^(b-1) - 1) 2^128 + (2^128 - 1), divided by n in two 64-bit
        // steps; each partial dividend is below n 2^64, so each quotient digit fits 64 bits.
        let high = (1u128 << (bits - 1)) - 1;
        let step = (high << 64) | u128::from(u64::MAX);
        let (q_hi, r) = (step / n128, step % n128);
        let step = (r << 64) | u128::from(u64::MAX);
        let q_lo = step / n128;
        Reciprocal {
            mu: (q_hi << 64) | q_lo,
            bits,
            n,
        }
    }

    pub(crate) fn n(&self) -> u64 {
        self.n
    }
}

/// The correctly rounded `fixed * 2^unit / n`, by multiplying with the reciprocal of `n`.
///
/// With `|fixed|` shifted to `x` in `[2^127, 2^128)` by `lz` places, the exact quotient is
/// `Y * 2^(unit + 1 - lz - b)` where `Y = x (mu + delta) / 2^128`. Three 64-bit products give
/// `P`, the top 128 bits of `x mu` less under 3, so `P <= Y < P + 5`. Rounding `P` to 53 bits
/// at its top bit leaves `rem` below the kept bits and `half` at the rounding bit: every `Y`
/// in the interval rounds down if `rem + 5 <= half` and up if `rem > half`. Between the two
/// (ties among them) the exact division decides, as it does outside the normal range. The
/// proof is in `notes/design.md` (*The fixed-point window*).
#[inline(always)]
pub(crate) fn fixed_mean_by(fixed: i128, unit: i32, r: &Reciprocal) -> f64 {
    if fixed == 0 {
        return 0.0;
    }
    let neg = fixed < 0;
    let mag = fixed.unsigned_abs();
    let (mh, ml) = ((mag >> 64) as u64, mag as u64);
    // x = mag << lz in two words (shifts by less than 64; the branch follows the data's scale).
    let (lz, xh, xl) = if mh != 0 {
        let s = mh.leading_zeros();
        (s, (mh << s) | ((ml >> 1) >> (63 - s)), ml << s)
    } else {
        let s = ml.leading_zeros();
        (64 + s, ml << s, 0)
    };
    let (uh, ul) = ((r.mu >> 64) as u64, r.mu as u64);
    let wide = |a: u64, b: u64| u128::from(a) * u128::from(b);
    // At most (2^64 - 1)^2 + 2 (2^64 - 1) = 2^128 - 1: no overflow.
    let p = wide(xh, uh) + (wide(xh, ul) >> 64) + (wide(xl, uh) >> 64);
    let (ph, pl) = ((p >> 64) as u64, p as u64);
    // x, mu >= 2^127 make Y >= 2^126, so P >= 2^126 - 2: its top bit is bit 61 to 63 of `ph`
    // (two comparisons find it sooner than a bit scan),
    // and the 53 kept bits and the rounding bit lie in `ph`.
    let top = 61 + u32::from(ph >= 1 << 62) + u32::from(ph >= 1 << 63);
    let shift = top - 52;
    let keep = ph >> shift;
    let rem = (u128::from(ph & ((1 << shift) - 1)) << 64) | u128::from(pl);
    let half = u128::from(1u64 << (shift - 1)) << 64;
    let biased = (top + 64) as i32 + unit + 1 - lz as i32 - r.bits as i32 + 1023;
    if !(rem > half || rem + 5 <= half) || !(1..=2046).contains(&biased) {
        return exact_mean(neg, mag, unit, r.n);
    }
    // A carry out of the significand moves to the next binade, or to infinity, as it should.
    let bits = ((biased as u64) << 52) + (keep - HIDDEN) + u64::from(rem > half);
    f64::from_bits(bits | (u64::from(neg) << 63))
}

/// The exact division of a fixed-point sum, for what the integer certificate leaves.
#[cold]
#[inline(never)]
fn exact_mean(neg: bool, mag: u128, unit: i32, n: u64) -> f64 {
    #[cfg(test)]
    crate::stats::count(&crate::stats::DIVISIONS);
    div_round(neg, mag, unit, false, n)
}

/// The fixed-point sum `fixed` on grid `grid` (units of `2^(grid - BIAS)`) as five digits for
/// float limbs of format `F` (limb `i` counts `2^(32 i - BIAS)`), from limb `grid / 32`: four
/// unsigned 32-bit digits and a signed top one. The grid is at most [`grid_max`], so they fit.
pub(crate) fn fixed_digits<F: FloatFormat>(fixed: i128, grid: u32) -> (usize, [i64; 5]) {
    debug_assert!(grid <= grid_max::<F>(0));
    let s = grid % 32;
    // fixed * 2^s as 160 bits: a low u128 and a signed top digit.
    let low = (fixed as u128) << s;
    let top = if s == 0 {
        fixed >> 127
    } else {
        fixed >> (128 - s)
    } as i64;
    let digit = |j: u32| i64::from((low >> (32 * j)) as u32);
    (
        (grid / 32) as usize,
        [digit(0), digit(1), digit(2), digit(3), top],
    )
}

/// Adds the fixed-point sum `fixed` on grid `grid` to float limbs of format `F`; returns the
/// first and last limb touched.
pub(crate) fn fold_into_limbs<F: FloatFormat>(
    fixed: i128,
    grid: u32,
    limbs: &mut [i64],
) -> (usize, usize) {
    let (idx, digits) = fixed_digits::<F>(fixed, grid);
    for (limb, digit) in limbs[idx..idx + 5].iter_mut().zip(digits) {
        *limb = limb.wrapping_add(digit);
    }
    (idx, idx + 4)
}

/// The shift limit of a group's cell ([`GroupSums`](crate::GroupSums)): the widest that keeps
/// one element below `2^127`. Cells add with overflow checks instead of counting elements, so
/// they need no room for a window's worth.
const fn cell_limit<F: FloatFormat>() -> u32 {
    shift_limit::<F>(1)
}

/// Adds the float with these bits to a group's fixed-point sum `fixed` on grid `grid`, placing
/// the grid around the first nonzero finite value; `false`, changing nothing, for a value off
/// the grid, a non-finite one, or a sum that would overflow.
#[inline(always)]
pub(crate) fn cell_add<F: FloatFormat>(bits: u64, fixed: &mut i128, grid: &mut u32) -> bool {
    match normal_on_grid::<F>(bits, *grid, cell_limit::<F>()) {
        Some(v) => match fixed.checked_add(v) {
            Some(sum) => {
                *fixed = sum;
                true
            }
            None => false,
        },
        None => cell_add_cold::<F>(bits, fixed, grid),
    }
}

/// [`cell_add`] for zeros, subnormals, the first element and values off the grid.
#[cold]
#[inline(never)]
fn cell_add_cold<F: FloatFormat>(bits: u64, fixed: &mut i128, grid: &mut u32) -> bool {
    let (sign, m, p) = decompose::<F>(bits);
    if p >= (F::EXP_MASK - 1) as u32 {
        return false;
    }
    if m == 0 {
        return true;
    }
    let limit = cell_limit::<F>();
    let g = if *grid == GRID_UNSET {
        grid_around::<F>(m, p, limit)
    } else {
        *grid
    };
    let shift = p.wrapping_sub(g);
    if shift > limit {
        return false;
    }
    match fixed.checked_add(on_grid(sign, m, shift)) {
        Some(sum) => {
            (*fixed, *grid) = (sum, g);
            true
        }
        None => false,
    }
}

/// Adds the float sum whose canonical words these are (`state.rs`) to a group's fixed-point
/// sum, if it is finite, at most two data words, and lands on the grid (placing it if unset)
/// without overflow; `false`, changing nothing, otherwise, including for words that are not
/// canonical (the exact path then judges them).
pub(crate) fn cell_merge_state<F: FloatFormat>(
    words: &[i64],
    fixed: &mut i128,
    grid: &mut u32,
) -> bool {
    let (lo, w) = match *words {
        [] => return true,
        [header, w] => (header, i128::from(w)),
        [header, low, high] => (header, i128::from(low as u64) | (i128::from(high) << 64)),
        _ => return false,
    };
    // What the writer writes for a finite sum of two words at most: the header is the lowest
    // digit's index alone (no counters), that digit is nonzero, and a second word does more
    // than extend the sign of the first. The value then lands on a grid at most `grid_max`
    // below an `i128`, far inside the limbs.
    let minimal = match *words {
        [_, low, high] => high != low >> 63,
        _ => true,
    };
    if !(0..F::NUMERIC as i64).contains(&lo) || w as u32 == 0 || !minimal {
        return false;
    }
    let bottom = 32 * lo as u32;
    let limit = cell_limit::<F>();
    let g = if *grid == GRID_UNSET {
        let low_bit = bottom + w.trailing_zeros();
        let top = bottom + 127 - w.unsigned_abs().leading_zeros();
        low_bit
            .min(top.saturating_sub(F::MANT + limit / 2))
            .min(grid_max::<F>(limit))
    } else {
        *grid
    };
    let v = if bottom >= g {
        let up = bottom - g;
        match w.checked_shl(up) {
            Some(v) if up < 128 && v >> up == w => v,
            _ => return false,
        }
    } else {
        let down = g - bottom;
        if down >= 128 || w.trailing_zeros() < down {
            return false;
        }
        w >> down
    };
    let Some(sum) = fixed.checked_add(v) else {
        return false;
    };
    (*fixed, *grid) = (sum, g);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::element::{Binary32, Binary64};
    use mavg_testkit::XorShift;

    fn oracle(fixed: i128, unit: i32, n: u64) -> f64 {
        if fixed == 0 {
            0.0
        } else {
            div_round(fixed < 0, fixed.unsigned_abs(), unit, false, n)
        }
    }

    #[test]
    fn shift_limits_and_grids() {
        assert_eq!(shift_limit::<Binary64>(1), 74);
        assert_eq!(shift_limit::<Binary64>(2), 73);
        assert_eq!(shift_limit::<Binary64>(1024), 64);
        assert_eq!(shift_limit::<Binary64>(1025), 63);
        assert_eq!(shift_limit::<Binary64>(1 << 30), 44);
        assert_eq!(shift_limit::<Binary32>(1 << 30), 73);
        // Infinity (position 2046) is off every grid; f64::MAX (2045) is on the highest.
        let limit = shift_limit::<Binary64>(1);
        let g = grid_max::<Binary64>(limit);
        assert!(2046 - g > limit && 2045 - g <= limit);
        assert!(
            254 - grid_max::<Binary32>(shift_limit::<Binary32>(1)) > shift_limit::<Binary32>(1)
        );
        assert_eq!(
            decompose::<Binary64>(1.0f64.to_bits()),
            (false, 1 << 52, 1022)
        );
        assert_eq!(
            decompose::<Binary64>(f64::MIN_POSITIVE.to_bits()),
            (false, 1 << 52, 0)
        );
        assert_eq!(decompose::<Binary64>(5e-324f64.to_bits()), (false, 1, 0));
        assert_eq!(decompose::<Binary64>((-0.0f64).to_bits()), (true, 0, 0));
        assert_eq!(decompose::<Binary64>(f64::INFINITY.to_bits()).2, 2046);
        assert_eq!(
            decompose::<Binary32>(u64::from(1.5f32.to_bits())),
            (false, 3 << 22, 126)
        );
    }

    #[test]
    fn means_match_the_exact_division() {
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut mismatches = Vec::new();
        // Safe integer arithmetic: Miri runs a sample.
        let cases = if cfg!(miri) { 2_000 } else { 200_000u64 };
        for i in 0..cases {
            let bits = 1 + rng.next_u64() % 126;
            let mag =
                (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> (128 - bits);
            let fixed = if rng.next_u64() & 1 == 0 {
                mag as i128
            } else {
                -(mag as i128)
            };
            let n = match i % 4 {
                0 => 1 + rng.next_u64() % 1024,
                1 => 1 + rng.next_u64() % (1 << 30),
                2 => 1 << (rng.next_u64() % 31),
                _ => 1 + rng.next_u64() % 7,
            };
            let unit = -1100 + (rng.next_u64() % 2000) as i32;
            let got = fixed_mean(fixed, unit, n, n as f64);
            let want = oracle(fixed, unit, n);
            if got.to_bits() != want.to_bits() {
                mismatches.push((fixed, unit, n, got, want));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{:?}",
            &mismatches[..mismatches.len().min(5)]
        );
    }

    #[test]
    fn reciprocal_means_match_the_exact_division() {
        let mut rng = XorShift::new(0x1234_5678_9abc_def1);
        for n in (1..=70u64).chain([
            1000,
            1023,
            1024,
            1025,
            (1 << 26) + 1,
            (1 << 30) - 1,
            1 << 30,
            1 << 32,
        ]) {
            let r = Reciprocal::new(n);
            for _ in 0..if cfg!(miri) { 20 } else { 3_000 } {
                let bits = 1 + rng.next_u64() % 126;
                let mag =
                    (u128::from(rng.next_u64()) << 64 | u128::from(rng.next_u64())) >> (128 - bits);
                // Multiples of n too: exact quotients, and ties when n is even.
                let mag = match rng.next_u64() % 4 {
                    0 => (mag / u128::from(n)).max(1) * u128::from(n),
                    1 => (mag / u128::from(n)).max(1) * u128::from(n) + u128::from(n / 2),
                    _ => mag,
                };
                let fixed = if rng.next_u64() & 1 == 0 {
                    mag as i128
                } else {
                    -(mag as i128)
                };
                let unit = -1100 + (rng.next_u64() % 2000) as i32;
                let (got, want) = (fixed_mean_by(fixed, unit, &r), oracle(fixed, unit, n));
                assert_eq!(got.to_bits(), want.to_bits(), "{fixed} 2^{unit} / {n}");
            }
        }
    }

    #[test]
    fn every_branch_by_value() {
        let check = |fixed: i128, unit: i32, n: u64| {
            let want = oracle(fixed, unit, n);
            let got = fixed_mean(fixed, unit, n, n as f64);
            assert_eq!(got.to_bits(), want.to_bits(), "{fixed} 2^{unit} / {n}");
            if n <= 1 << 32 {
                let by = fixed_mean_by(fixed, unit, &Reciprocal::new(n));
                assert_eq!(
                    by.to_bits(),
                    want.to_bits(),
                    "{fixed} 2^{unit} / {n} by reciprocal"
                );
            }
            got
        };
        // Exact ties: (2^53 + 1) / 1 and 3 * (2^53 + 1) / 3 round to even.
        assert_eq!(check((1 << 53) + 1, 0, 1), 9007199254740992.0);
        assert_eq!(check(3 * ((1 << 53) + 1), 0, 3), 9007199254740992.0);
        assert_eq!(check(-3 * ((1 << 53) + 3), 0, 3), -9007199254740996.0);
        // Just below a power of two, where the gap halves: window 3 over q, 2q and
        // next_down(3 * 2^-54) with q = 1 - 2^-53, in units of 2^-107.
        let q = (1i128 << 107) - (1 << 54);
        let third = 3 * (1i128 << 53) - 4;
        assert_eq!(check(3 * q + third, -107, 3), 1.0 - f64::EPSILON / 2.0);
        assert_eq!(check(3 * q + third + 4, -107, 3), 1.0);
        assert_eq!(check(3 * q + third + 8, -107, 3), 1.0);
        // Powers of two and their neighbours.
        for k in [0, 1, 52, 53, 54, 100, 126] {
            for delta in [-2i128, -1, 0, 1, 2] {
                let v = (1i128 << k) + delta;
                if v > 0 {
                    for n in [1, 2, 3, 1023, 1 << 26, (1 << 26) + 1, 1 << 30] {
                        check(v, -30, n);
                        check(-v, 7, n);
                    }
                }
            }
        }
        // Means in (2^-969, 2^-968) and near the subnormals, and near overflow.
        check(3 << 100, -1070, 1);
        check(3 << 100, -1070, 5);
        check(1, -1074, 1);
        check(5, -1075, 2);
        check((1 << 120) - 1, 1000, 1);
        check((1 << 120) - 1, 904, 1);
        // Counts beyond 2^53: `nf` is rounded, the residual is not.
        check(u64::MAX as i128 * 3, 0, u64::MAX);
        check(i128::MAX, -10, (1 << 53) + 1);
    }

    #[test]
    fn folding_into_limbs_keeps_the_value() {
        use crate::limbs::{round_float_limbs, LimbRange};
        for (fixed, grid) in [
            (1i128, 0u32),
            (-1, 5),
            (i128::MAX, 31),
            (i128::MIN + 1, 33),
            (12345, 1971),
        ] {
            let mut limbs = [0i64; 69];
            let (lo, hi) = fold_into_limbs::<Binary64>(fixed, grid, &mut limbs);
            let got = round_float_limbs(&limbs, LimbRange { lo, hi }, 1074, 1);
            assert_eq!(
                got,
                oracle(fixed, grid as i32 - 1074, 1),
                "{fixed} on {grid}"
            );
        }
    }

    /// The branches of the fixed-point read, end to end through the public types.
    #[test]
    fn end_to_end_by_value() {
        use crate::{ExactSum, RingAverage};
        let p2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
        // Just below a power of two: window 3 over q, 2q, next_down(3 * 2^-54), at any scale.
        let q = 1.0 - p2(-53);
        let third = f64::from_bits((3.0 * p2(-54)).to_bits() - 1);
        for k in [-900, -60, 0, 1, 40, 900] {
            let mut m = RingAverage::<f64>::new(3).unwrap();
            for _ in 0..5 {
                m.extend([q * p2(k), 2.0 * q * p2(k), third * p2(k)]);
                assert_eq!(m.average(), Some(q * p2(k)), "scale 2^{k}");
            }
        }
        // An exact tie of the mean: (2^53 + 1) is halfway; ties go to even.
        let mut m = RingAverage::<f64>::new(2).unwrap();
        m.extend([p2(53), p2(53) + 2.0]);
        assert_eq!(m.average(), Some(p2(53)));
        m.extend([p2(53) + 2.0, p2(53) + 4.0]);
        assert_eq!(m.average(), Some(p2(53) + 4.0));
        // Means in (2^-969, 2^-968) and subnormal means.
        let mut m = RingAverage::<f64>::new(4).unwrap();
        m.extend([
            1.5 * p2(-969),
            1.25 * p2(-969),
            1.75 * p2(-969),
            1.0 * p2(-969),
        ]);
        assert_eq!(m.average(), Some(1.375 * p2(-969)));
        m.extend([5e-324, 5e-324, 0.0, 0.0]);
        assert_eq!(m.average(), Some(0.0));
        m.extend([1e-323, 1e-323, 1e-323, 5e-324]);
        assert_eq!(m.average(), Some(1e-323));
        // Counts of 2^26 and more through ExactSum, where the reads take any n.
        for n in [
            (1u64 << 26) - 1,
            1 << 26,
            (1 << 26) + 1,
            67108865,
            1 << 30,
            (1 << 40) + 3,
        ] {
            let mut s = ExactSum::<f64>::new();
            s.add(8.513533493403707e25);
            s.add(8112398335.984865);
            // The exact sum in units of 2^-20 (both values are multiples of it).
            let sum =
                ((8.513533493403707e25f64 as i128) << 20) + (8112398335.984865 * p2(20)) as i128;
            assert_eq!(s.mean(n), Some(oracle(sum, -20, n)), "n = {n}");
        }
    }
}
