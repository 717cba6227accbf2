//! A certified running estimate of an exact sum: how most reads avoid the exact accumulator.
//!
//! This is Ziv's strategy, as used by correctly rounded math libraries: compute a cheap
//! approximation together with a rigorous bound on its error, and return it only when the bound
//! proves that it rounds to the same `f64` as the exact result; otherwise take the exact path.
//!
//! Next to the exact limbs, a float moving average keeps a double-double `hi + lo` that tracks
//! the window's exact sum `S`, and `err`, an upper bound on `|S - (hi + lo)|` (up to a factor of
//! `1 + 2^-20`, see [`Estimate::mean`]). An add is two error-free `TwoSum`s (Knuth), one rounded
//! addition into `lo`, and a bound update: about twenty flops and no branch. A read divides by
//! `n` with a correction step, computes the exact residual `S' - q n` of its candidate `q`, and
//! compares the residual plus `err` with half the gap between `q` and its neighbours. The proof
//! that a certified `q` is the correctly rounded mean, for every history, is in
//! `notes/design.md` (*The certified fast path*).
//!
//! The owner re-seeds the estimate from the exact limbs when its bound has grown too loose to
//! certify (after huge values left the window, after overflow, NaN or infinities, or after
//! `MAX_UPDATES` updates), so the bound never grows without limit.

/// `2^-51`: four times the unit roundoff. Each rounding in an update is bounded by `2^-53` times
/// its result; the extra factor of four also covers the rounding of the bound's own terms,
/// including products that fall into the subnormal range.
const BOUND_FACTOR: f64 = 1.0 / (1u64 << 51) as f64;

/// Updates after which the owner must re-seed. The bound `err` is itself a rounded sum of two
/// terms per update, fewer than `2^33` while the count stays below `2^32`, so it undercounts by
/// a factor of at most `(1 - 2^-53)^(2^33) > 1 - 2^-20`; [`Estimate::mean`] allows for that.
pub(crate) const MAX_UPDATES: u32 = 1 << 31;

/// An estimate is healthy while `err <= |hi| * HEALTHY`: then a read's certificate fails for
/// want of precision with a probability of about `2^-27` (it needs about `2^-53 |S|`).
const HEALTHY: f64 = 1.0 / (1u128 << 80) as f64;

/// Half an ulp shrunk by `1 - 2^-16`: an exponent field lowered by 54 (53 + 1 for the leading
/// one of the mantissa below) with the top 15 mantissa bits set is `2^(E-53) * (1 - 2^-16)`.
const SHRINK_MANTISSA: u64 = 0x7fff << 37;
const EXP_MASK: u64 = 0x7ff << 52;
const MANT_MASK: u64 = (1 << 52) - 1;

/// Windows below this use a product split in two exact halves for the residual; larger ones
/// split both factors (Dekker's product), unless the target has an `fma` instruction.
const SPLIT_LIMIT: f64 = (1u64 << 26) as f64;

/// A double-double estimate `hi + lo` of an exact sum, with a rigorous error bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    hi: f64,
    lo: f64,
    /// `|S - (hi + lo)| <= err * (1 + 2^-20)`, or `err` is NaN or infinite (no claim).
    err: f64,
    /// Updates since the estimate was seeded.
    updates: u32,
    /// `updates` at the last renormalization.
    renormalized_at: u32,
}

/// `a + b` as a rounded sum and its exact error (Knuth's TwoSum; exact unless `a + b`
/// overflows, and then the error is NaN or infinite).
#[inline(always)]
pub(crate) fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    let e = (a - (s - bb)) + (b - bb);
    (s, e)
}

impl Estimate {
    /// The sum of no elements, exactly.
    pub(crate) const ZERO: Estimate = Estimate {
        hi: 0.0,
        lo: 0.0,
        err: 0.0,
        updates: 0,
        renormalized_at: 0,
    };

    /// An estimate that certifies nothing until it is re-seeded.
    pub(crate) const POISONED: Estimate = Estimate {
        hi: f64::NAN,
        lo: 0.0,
        err: f64::NAN,
        updates: 0,
        renormalized_at: 0,
    };

    /// Seeds an estimate of `S = (-1)^neg * (mag + tail) * 2^exp`, with `tail` in `[0, 1)`,
    /// `mag > 0`, and `mag >= 2^96` whenever the tail may be nonzero.
    pub(crate) fn seed(neg: bool, mag: u128, exp: i32) -> Estimate {
        let bits = 128 - mag.leading_zeros() as i32;
        // Keep the top 53 bits in `hi` (exact), the rest of `mag` in `lo` (rounded once).
        let shift = (bits - 53).max(0);
        let hi = (mag >> shift) as u64 as f64;
        let rest = mag & ((1u128 << shift) - 1);
        let lo = rest as f64;
        // In units of 2^exp: lo's rounding is at most half an ulp of a number below 2^shift,
        // so at most 2^(shift - 54), and the tail is below 1; both together are below
        // 2^(1 + max(shift - 52, 0)). Doubling that, or taking 2^-1072 if larger, also covers
        // the two scalings below, each exact unless it rounds into the subnormals (by at most
        // 2^-1075).
        let units = 2 + (shift - 52).max(0);
        let err = pow2_saturating(exp + units).max(pow2_saturating(-1072));
        let sign = if neg { -1.0 } else { 1.0 };
        Estimate {
            hi: sign * scale(hi, exp + shift),
            lo: sign * scale(lo, exp),
            err,
            updates: 0,
            renormalized_at: 0,
        }
    }

    /// Replaces `old` by `new` in the estimated sum (either may be `0.0`: a pure add or remove).
    ///
    /// Non-finite values make the estimate certify nothing until it is re-seeded.
    #[inline(always)]
    pub(crate) fn replace(&mut self, old: f64, new: f64) {
        let (s, t1) = two_sum(self.hi, new);
        let (s, t2) = two_sum(s, -old);
        // The two additions below round; each error is at most 2^-53 times its result.
        let tail = t1 + t2;
        let lo = self.lo + tail;
        self.err += (tail.abs() + lo.abs()) * BOUND_FACTOR;
        self.hi = s;
        self.lo = lo;
        self.updates += 1;
    }

    /// Whether the owner should re-seed: the bound is too loose for reads to certify, or was
    /// lost (NaN, infinity, overflow), or the update count reached its limit.
    #[inline]
    pub(crate) fn needs_seed(&self) -> bool {
        let mag = self.hi.abs();
        !(self.err <= mag * HEALTHY && mag <= f64::MAX) || self.updates >= MAX_UPDATES
    }

    /// Whether the owner should call [`renormalize`](Self::renormalize) and check
    /// [`needs_seed`](Self::needs_seed): once 64 updates were made since the last time. (A
    /// shard's add can make several updates, so a test of `updates % 64` could step over every
    /// multiple of 64 and never re-seed.)
    #[inline(always)]
    pub(crate) fn maintenance_due(&self) -> bool {
        self.updates.wrapping_sub(self.renormalized_at) >= 64
    }

    /// Renormalizes `hi + lo` (exactly) so that `lo` stays small; call now and then.
    #[inline]
    pub(crate) fn renormalize(&mut self) {
        let (hi, lo) = two_sum(self.hi, self.lo);
        self.hi = hi;
        self.lo = lo;
        self.renormalized_at = self.updates;
    }

    /// Adds another estimate of a disjoint set of elements (for sums over shards).
    #[inline]
    pub(crate) fn merge(&mut self, other: &Estimate) {
        let (s, t1) = two_sum(self.hi, other.hi);
        let tail = t1 + other.lo;
        let lo = self.lo + tail;
        self.err += other.err + (tail.abs() + lo.abs()) * BOUND_FACTOR;
        self.hi = s;
        self.lo = lo;
        self.updates = self.updates.max(other.updates).saturating_add(1);
    }

    /// The correctly rounded `S / n` if the estimate can prove it, `None` otherwise.
    ///
    /// `n` is the element count (`1 <= n <= 2^30`) as an `f64`, `inv` is `1 / n` rounded (any
    /// approximation is safe; a good one makes certification likely).
    #[inline(always)]
    pub(crate) fn mean(&self, n: f64, inv: f64) -> Option<f64> {
        // Exact renormalization: h + l = hi + lo, |l| <= ulp(h) / 2.
        let (h, l) = two_sum(self.hi, self.lo);
        // A candidate within a few ulps of h / n, then one correction step.
        let q0 = h * inv;
        let q = q0 + (residual(h, q0, n) + l) * inv;
        // rho = h + l - q n, with one rounding (the residual itself is exact).
        let rho = residual(h, q, n) + l;
        certified(q, rho.abs() + self.err, n)
    }

    /// The correctly rounded sum, if the estimate can prove it.
    #[inline(always)]
    pub(crate) fn sum(&self) -> Option<f64> {
        let (h, l) = two_sum(self.hi, self.lo);
        certified(h, l.abs() + self.err, 1.0)
    }

    /// The estimate as three words, for a shard to publish.
    #[inline(always)]
    pub(crate) fn to_words(self) -> [u64; 3] {
        [self.hi.to_bits(), self.lo.to_bits(), self.err.to_bits()]
    }

    /// An estimate published by a shard's owner. Its update count is not published: the owner
    /// checks after every add once 64 updates were made, and one add makes at most one update
    /// per element it evicts, and a shard's summary covers at most the window and the new
    /// element; so the count is below `MAX_UPDATES + 2^30 + 65 < 2^32 - 2^20`, which the bound
    /// allows for (see
    /// [`MAX_UPDATES`]), and is taken as that, leaving room for a reader's own updates.
    #[inline(always)]
    pub(crate) fn from_words(w: [u64; 3]) -> Estimate {
        Estimate {
            hi: f64::from_bits(w[0]),
            lo: f64::from_bits(w[1]),
            err: f64::from_bits(w[2]),
            updates: u32::MAX - (1 << 20),
            renormalized_at: u32::MAX - (1 << 20),
        }
    }
}

/// `h - q n`, exactly, for `q` within a few ulps of `h / n` (not near overflow or underflow;
/// outside that range the certificate fails anyway).
///
/// With an `fma` instruction, one fused multiply-add (the instruction rounds correctly; the
/// library function `f64::mul_add` calls when there is none may not). Without, for
/// `n < 2^26`, `q` is split into its top 27 bits and the rest: both products are exact,
/// `h - qh n` is exact by Sterbenz's lemma (`qh n` is within a factor of `1 + 2^-25` of `h`),
/// and the last subtraction is exact because its result is representable. For larger `n`,
/// [`residual_dekker`].
#[inline(always)]
fn residual(h: f64, q: f64, n: f64) -> f64 {
    if cfg!(target_feature = "fma") {
        (-q).mul_add(n, h)
    } else if n < SPLIT_LIMIT {
        residual_split(h, q, n)
    } else {
        residual_dekker(h, q, n)
    }
}

/// `h - q n` exactly without an `fma`, for any `n` below `2^53`: Dekker's exact product
/// `q n = p + e` (Veltkamp splits of both factors into halves of at most 26 bits, whose four
/// products are exact), then `h - p`, exact by Sterbenz's lemma, less `e`, exact because the
/// result is representable (as for [`residual_split`]).
#[inline(never)]
fn residual_dekker(h: f64, q: f64, n: f64) -> f64 {
    fn split(a: f64) -> (f64, f64) {
        // 2^27 + 1: the high half keeps 26 bits, the low half the rest, with its sign.
        let c = 134_217_729.0 * a;
        let high = c - (c - a);
        (high, a - high)
    }
    let p = q * n;
    let (qh, ql) = split(q);
    let (nh, nl) = split(n);
    let e = ((qh * nh - p) + qh * nl + ql * nh) + ql * nl;
    (h - p) - e
}

#[inline(always)]
fn residual_split(h: f64, q: f64, n: f64) -> f64 {
    let qh = f64::from_bits(q.to_bits() & !((1u64 << 26) - 1));
    let ql = q - qh;
    (h - qh * n) - ql * n
}

/// The certificate: `q` if `bound` (an upper bound on `|S - q n|` up to the factors proved in
/// `notes/design.md`) is below `n` times half the gap from `q` to its nearer neighbour, shrunk
/// by `1 - 2^-16`. Fails for zero, subnormal and tiny `q` (the shifted exponent wraps to a
/// negative number), for infinities and for NaN (every comparison with NaN is false).
#[inline(always)]
fn certified(q: f64, bound: f64, n: f64) -> Option<f64> {
    let bits = q.to_bits();
    // A power of two has a gap below it half the gap above it.
    let below = u64::from(bits & MANT_MASK == 0);
    let half_gap =
        f64::from_bits((bits & EXP_MASK).wrapping_sub((54 + below) << 52) | SHRINK_MANTISSA);
    (bound <= n * half_gap).then_some(q)
}

/// `2^e`, saturating to 0 below the subnormals and to infinity above `f64::MAX`.
fn pow2_saturating(e: i32) -> f64 {
    scale(1.0, e)
}

/// `x * 2^e`, rounded once (exact unless the result overflows or is subnormal).
fn scale(x: f64, e: i32) -> f64 {
    let step = |x: f64, e: i32| x * f64::from_bits(((e + 1023) as u64) << 52);
    let mut x = x;
    let mut e = e;
    // Steps of at most 2^±1000 keep each factor normal; three steps cover any exponent the
    // accumulators produce (below 2^±3300).
    while e > 1000 {
        x = step(x, 1000);
        e -= 1000;
        if x.is_infinite() {
            return x;
        }
    }
    while e < -1000 {
        x = step(x, -1000);
        e += 1000;
        if x == 0.0 {
            return x;
        }
    }
    step(x, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_of(values: &[f64]) -> (f64, f64) {
        // Values here are small integers times a power of two: plain sums are exact.
        let s: f64 = values.iter().sum();
        (s, 0.0)
    }

    #[test]
    fn residual_split_is_exact() {
        for &(h, n) in &[
            (1.0f64, 3.0f64),
            (1.0, 3.0),
            (1e300, 1_000.0),
            (123456.789, 1024.0),
            (-7.25e-300, 999.0),
            (0.1, 67_108_863.0),
        ] {
            let q: f64 = h / n;
            for q in [
                q,
                f64::from_bits(q.to_bits() + 1),
                f64::from_bits(q.to_bits() - 1),
            ] {
                assert_eq!(residual_split(h, q, n), (-q).mul_add(n, h), "{h} {n} {q}");
            }
        }
    }

    /// `h - q n` in exact integer arithmetic, for finite normal `h` and `q` of either sign and
    /// integer `n`, as a float (it is representable in every case used here).
    fn residual_oracle(h: f64, q: f64, n: u64) -> f64 {
        let parts = |x: f64| {
            let b = x.to_bits();
            let e = ((b >> 52) & 0x7ff) as i32;
            let m = ((b & ((1 << 52) - 1)) | (1 << 52)) as i128;
            (if x < 0.0 { -m } else { m }, e - 1075)
        };
        let ((mh, eh), (mq, eq)) = (parts(h), parts(q));
        let low = eh.min(eq);
        let r = (mh << (eh - low)) - mq * n as i128 * (1i128 << (eq - low));
        r as f64 * f64::from_bits(((low + 1023) as u64) << 52)
    }

    #[test]
    fn residuals_are_exact_for_every_window() {
        let mut x = 0x243f_6a88_85a3_08d3u64;
        for n in [
            3u64,
            1000,
            (1 << 26) - 1,
            1 << 26,
            (1 << 26) + 1,
            67108865,
            (1 << 30) - 3,
            1 << 30,
        ] {
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let h = (1.0 + (x >> 12) as f64 / (1u64 << 52) as f64)
                    * if x & 1 == 0 { 1e10 } else { -3e-5 };
                let q0 = h / n as f64;
                for q in [
                    q0,
                    f64::from_bits(q0.to_bits() + 1),
                    f64::from_bits(q0.to_bits() - 1),
                ] {
                    let want = residual_oracle(h, q, n);
                    assert_eq!(residual_dekker(h, q, n as f64), want, "{h:e} {q:e} {n}");
                    if n < 1 << 26 {
                        assert_eq!(residual_split(h, q, n as f64), want, "{h:e} {q:e} {n}");
                    }
                }
            }
        }
        // The case the platform's fma got wrong where it is emulated in extended precision.
        let (n, hi, lo) = (67108865.0, 8.513533493403707e25, 8112398335.984865);
        let mut e = Estimate::ZERO;
        e.replace(0.0, hi);
        e.replace(0.0, lo);
        // 0x1.19b06ebe398dfp+60, the correctly rounded mean.
        let want = f64::from_bits(0x43b1_9b06_ebe3_98df);
        assert_eq!(e.mean(n, 1.0 / n).unwrap_or(want), want);
        let mut exact = crate::ExactSum::<f64>::new();
        exact.add(hi);
        exact.add(lo);
        assert_eq!(
            exact.mean(67108865),
            Some(want),
            "the expected value itself"
        );
    }

    #[test]
    fn maintenance_is_due_after_64_updates_however_they_come() {
        let mut e = Estimate::ZERO;
        // A shard's add that evicts two elements makes three updates: counts 3, 6, ..., 63,
        // 66, ... never hit a multiple of 64 exactly at a check.
        let mut checks = 0;
        for add in 1..=30 {
            for _ in 0..3 {
                e.replace(0.0, 1.0);
            }
            if e.maintenance_due() {
                checks += 1;
                e.renormalize();
                assert!(add * 3 >= 64 * checks);
            }
        }
        assert_eq!(checks, 1, "90 updates, one renormalization due (after 66)");
    }

    #[test]
    fn just_below_a_power_of_two_the_gap_halves() {
        // Window 3 over [q, 2q, next_down(3 * 2^-54)] with q = 1 - 2^-53: the mean lies a hair
        // below the midpoint of q and 1.0, so it rounds to q; without the correction for the
        // smaller gap below a power of two, the certificate would accept 1.0.
        let q = 1.0 - p2(-53);
        let third = f64::from_bits((3.0 * p2(-54)).to_bits() - 1);
        for scale in [p2(-40), 1.0, p2(300)] {
            let mut e = Estimate::ZERO;
            for x in [q, 2.0 * q, third] {
                e.replace(0.0, x * scale);
            }
            if let Some(mean) = e.mean(3.0, 1.0 / 3.0) {
                assert_eq!(mean, q * scale);
            }
        }
    }

    #[test]
    fn an_exact_estimate_certifies_representable_means() {
        let mut e = Estimate::ZERO;
        for x in [1.0, 2.0, 3.0, 6.0] {
            e.replace(0.0, x);
        }
        assert_eq!(exact_of(&[1.0, 2.0, 3.0, 6.0]), (12.0, 0.0));
        assert_eq!(e.err, 0.0);
        assert_eq!(e.mean(4.0, 0.25), Some(3.0));
        assert_eq!(e.sum(), Some(12.0));
        // 12 / 5 is not representable; the certificate still finds the nearest double.
        assert_eq!(e.mean(5.0, 1.0 / 5.0), Some(2.4));
    }

    #[test]
    fn ties_and_zero_are_left_to_the_exact_path() {
        // 2^53 + 1 lies exactly between two doubles.
        let mut e = Estimate::ZERO;
        e.replace(0.0, 9007199254740992.0);
        e.replace(0.0, 1.0);
        assert_eq!(e.sum(), None);
        assert_eq!(Estimate::ZERO.mean(1.0, 1.0), None);
        assert_eq!(Estimate::ZERO.sum(), None);
    }

    #[test]
    fn non_finite_values_poison_until_reseeded() {
        let mut e = Estimate::ZERO;
        e.replace(0.0, 1.0);
        e.replace(0.0, f64::NAN);
        assert_eq!(e.mean(2.0, 0.5), None);
        assert!(e.needs_seed());
        let mut e = Estimate::ZERO;
        e.replace(0.0, f64::MAX);
        e.replace(0.0, f64::MAX);
        assert_eq!(e.sum(), None);
        assert!(e.needs_seed());
        assert!(Estimate::POISONED.needs_seed());
    }

    #[test]
    fn cancellation_loosens_the_bound_and_a_seed_restores_it() {
        let mut e = Estimate::ZERO;
        e.replace(0.0, 1e17);
        for _ in 0..100 {
            e.replace(0.0, 0.1);
        }
        e.replace(1e17, 0.0);
        // The estimate may still be right, but its bound refers to 1e17's ulps.
        assert!(e.needs_seed());
        let seeded = Estimate::seed(false, 1u128 << 100, -100);
        assert_eq!(seeded.sum(), Some(1.0));
        assert!(!seeded.needs_seed());
    }

    /// `2^e` for a normal exponent, from its bits (Miri randomizes `powi`).
    fn p2(e: i32) -> f64 {
        f64::from_bits(((e + 1023) as u64) << 52)
    }

    #[test]
    fn seeds_are_within_their_bound() {
        // mag = 2^100 + 2^99 + 2^46 + 1, exp = -60: S = 1.5 * 2^40 + 2^-14 + 2^-60, a quarter
        // ulp above 1.5 * 2^40.
        let mag = (1u128 << 100) + (1u128 << 99) + (1u128 << 46) + 1;
        let e = Estimate::seed(true, mag, -60);
        assert_eq!(e.hi, -1.5 * p2(40));
        assert_eq!(e.lo, -(p2(-14) + p2(-60)));
        assert!(e.err >= p2(-60) + p2(-61));
        assert!(!e.needs_seed());
        assert_eq!(e.sum(), Some(-1.5 * p2(40)));
        // The same a hair from the midpoint 1.5 * 2^40 + 2^-13: no certificate.
        let mag = (1u128 << 100) + (1u128 << 99) + (1u128 << 47) + 1;
        assert_eq!(Estimate::seed(false, mag, -60).sum(), None);
    }

    #[test]
    fn scaling_saturates() {
        assert_eq!(scale(1.0, 2000), f64::INFINITY);
        assert_eq!(scale(1.0, -2000), 0.0);
        assert_eq!(scale(3.0, -1074 - 1), f64::from_bits(2)); // 1.5 ulp rounds to even (2)
        assert_eq!(scale(1.0, -1074), f64::from_bits(1));
        assert_eq!(scale(1.0, 1023), p2(1023));
        assert_eq!(scale(1.0, -1022), p2(-1022));
    }
}
