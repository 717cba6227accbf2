//! A naive reference model of the `MovingAverage` contract (`src/traits.rs`), written without
//! any of the crate's code or techniques:
//!
//! * the window is a `VecDeque` of the last `N` elements;
//! * every read recomputes the window's exact sum from scratch with `num-bigint`: integers are
//!   summed as `BigInt`s, finite floats are decoded from their bits into exact integers scaled
//!   by `2^1074` (`f64`) or `2^149` (`f32`) and summed;
//! * the exact sum and the exact mean `sum / (n * 2^scale)` are rounded to `f64` by an
//!   independent correct-rounding oracle ([`round_exact`]) that brackets the rational between
//!   two neighbouring `f64`s by exact cross-multiplication and decides by comparing with the
//!   exact midpoint (ties to even, overflow to infinity beyond the `f64::MAX` rounding
//!   boundary, subnormals and signed zeros handled);
//! * non-finite floats follow the contract's rule: NaN while the window holds a NaN or both
//!   infinities, the infinity while it holds infinities of one sign only.
//!
//! Shared by every integration test file through `mod reference;`.
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt::Debug;

use mavg::Sample;
use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, ToPrimitive, Zero};

/// The exact value of one element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exact {
    /// A finite element, as an integer: the element times `2^T::SCALE`.
    Finite(BigInt),
    Nan,
    PosInf,
    NegInf,
}

/// What a `sum()` returns, with the crate's `T::Sum` erased.
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

/// The expected `sum()`.
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

/// The element types the reference knows: every `mavg::Sample`.
pub trait RefSample: Sample {
    /// Finite elements are integers once multiplied by `2^SCALE`.
    const SCALE: u32;
    const IS_FLOAT: bool;
    const NAME: &'static str;
    /// The element's exact value.
    fn exact(self) -> Exact;
    /// Erases the crate's `Sum` type.
    fn sum_value(sum: Self::Sum) -> SumValue;
    /// Bit-for-bit identity (floats: same bits, so `-0.0 != 0.0` and a NaN equals itself).
    fn same(self, other: Self) -> bool;
    /// A small value of the type.
    fn small(x: u8) -> Self;
}

macro_rules! ref_int {
    ($($t:ty),*) => {$(
        impl RefSample for $t {
            const SCALE: u32 = 0;
            const IS_FLOAT: bool = false;
            const NAME: &'static str = stringify!($t);
            fn exact(self) -> Exact {
                Exact::Finite(BigInt::from(self))
            }
            fn sum_value(sum: Self::Sum) -> SumValue {
                SumValue::Int(sum)
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
ref_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

impl RefSample for f64 {
    const SCALE: u32 = 1074;
    const IS_FLOAT: bool = true;
    const NAME: &'static str = "f64";
    fn exact(self) -> Exact {
        exact_float(self.to_bits(), 52, 11)
    }
    fn sum_value(sum: f64) -> SumValue {
        SumValue::Float(sum)
    }
    fn same(self, other: Self) -> bool {
        self.to_bits() == other.to_bits()
    }
    fn small(x: u8) -> Self {
        Self::from(x)
    }
}

impl RefSample for f32 {
    const SCALE: u32 = 149;
    const IS_FLOAT: bool = true;
    const NAME: &'static str = "f32";
    fn exact(self) -> Exact {
        exact_float(u64::from(self.to_bits()), 23, 8)
    }
    fn sum_value(sum: f64) -> SumValue {
        SumValue::Float(sum)
    }
    fn same(self, other: Self) -> bool {
        self.to_bits() == other.to_bits()
    }
    fn small(x: u8) -> Self {
        Self::from(x)
    }
}

/// The exact value of an IEEE binary float given by its bits, its fraction width and its
/// exponent width, in units of the smallest subnormal: `frac` for a subnormal, `(2^mant + frac)
/// << (e - 1)` for a normal number.
fn exact_float(bits: u64, mant: u32, exp_bits: u32) -> Exact {
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

/// The exact contents of a window, summarized.
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
    pub fn of<T: RefSample>(elements: &[T]) -> Total {
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

    /// The contract's rule for non-finite elements, if any is in the window.
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
    fn rounded(&self, divisor: u64) -> Rounded {
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

    /// The contract's `sum()`: exact `i128` for integers, the exact sum rounded once for
    /// floats.
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

    /// The contract's `average()`: `None` when empty, else the exact mean rounded once.
    pub fn expected_average(&self) -> Option<Rounded> {
        (self.n > 0).then(|| self.rounded(self.n as u64))
    }
}

pub fn expected_sum<T: RefSample>(elements: &[T]) -> ExpectedSum {
    Total::of(elements).expected_sum(T::IS_FLOAT)
}

pub fn expected_average<T: RefSample>(elements: &[T]) -> Option<Rounded> {
    Total::of(elements).expected_average()
}

/// Checks a `sum()` against the exact sum of `elements`.
pub fn check_sum<T: RefSample>(actual: T::Sum, elements: &[T]) -> Result<(), String> {
    let expected = expected_sum(elements);
    if expected.matches(T::sum_value(actual)) {
        Ok(())
    } else {
        Err(format!(
            "{}: sum() = {actual:?}, expected {expected:?} for {} elements {}",
            T::NAME,
            elements.len(),
            abbreviate(elements)
        ))
    }
}

/// Checks an `average()` against the exact mean of `elements`.
pub fn check_average<T: RefSample>(actual: Option<f64>, elements: &[T]) -> Result<(), String> {
    let expected = expected_average(elements);
    let ok = match (expected, actual) {
        (None, None) => true,
        (Some(e), Some(a)) => e.matches(a),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: average() = {actual:?}, expected {expected:?} for {} elements {}",
            T::NAME,
            elements.len(),
            abbreviate(elements)
        ))
    }
}

pub fn same_slice<T: RefSample>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x.same(y))
}

pub fn same_option<T: RefSample>(a: Option<T>, b: Option<T>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.same(y),
        _ => false,
    }
}

/// A short rendering of a long element list for failure messages.
pub fn abbreviate<T: Debug>(elements: &[T]) -> String {
    if elements.len() <= 24 {
        format!("{elements:?}")
    } else {
        format!(
            "{:?} .. {:?}",
            &elements[..12],
            &elements[elements.len() - 12..]
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The correct-rounding oracle.
// ---------------------------------------------------------------------------------------------

/// Bits of `f64::MAX`; positive finite `f64`s are ordered as their bits, and `MAX_BITS + 1` are
/// the bits of `+inf`.
const MAX_BITS: u64 = 0x7fef_ffff_ffff_ffff;

/// The smallest `f64` above the non-negative `x` (`+inf` above `f64::MAX`), by bits.
pub fn next_up(x: f64) -> f64 {
    assert!(x >= 0.0 && x.is_finite());
    f64::from_bits((x.to_bits() & !(1 << 63)) + 1)
}

/// The largest `f64` below the positive `x`, by bits.
pub fn next_down(x: f64) -> f64 {
    assert!(x > 0.0);
    f64::from_bits(x.to_bits() - 1)
}

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

/// `x * 2^e` in steps that stay within the normal exponent range (approximate near underflow).
fn ldexp(mut x: f64, mut e: i64) -> f64 {
    while e > 1000 {
        x *= exp2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= exp2(-1000);
        e += 1000;
    }
    x * exp2(e as i32)
}

/// `2^k` as an `f64`, built from its bits (exact, unlike `powi` under Miri), for
/// `-1074 <= k <= 1023`.
pub fn exp2(k: i32) -> f64 {
    assert!((-1074..=1023).contains(&k));
    if k >= -1022 {
        f64::from_bits(((k + 1023) as u64) << 52)
    } else {
        f64::from_bits(1 << (k + 1074))
    }
}

/// `2^k` as an `f32`, for `-149 <= k <= 127`.
pub fn exp2_f32(k: i32) -> f32 {
    assert!((-149..=127).contains(&k));
    if k >= -126 {
        f32::from_bits(((k + 127) as u32) << 23)
    } else {
        f32::from_bits(1 << (k + 149))
    }
}

/// `2^k` as a `BigInt`.
pub fn pow2(k: u32) -> BigInt {
    BigInt::one() << k
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

/// The contract, literally: the last `window` elements pushed since the last clear, oldest
/// first.
#[derive(Clone, Debug)]
pub struct Model<T> {
    window: usize,
    items: VecDeque<T>,
}

impl<T: RefSample> Model<T> {
    pub fn new(window: usize) -> Self {
        assert!(window >= 1);
        Model {
            window,
            items: VecDeque::new(),
        }
    }

    pub fn push(&mut self, value: T) {
        if self.items.len() == self.window {
            self.items.pop_front();
        }
        self.items.push_back(value);
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.items.len() == self.window
    }

    pub fn oldest(&self) -> Option<T> {
        self.items.front().copied()
    }

    pub fn newest(&self) -> Option<T> {
        self.items.back().copied()
    }

    pub fn get(&self, index: usize) -> Option<T> {
        self.items.get(index).copied()
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().copied().collect()
    }

    pub fn expected_sum(&self) -> ExpectedSum {
        expected_sum(&self.to_vec())
    }

    pub fn expected_average(&self) -> Option<Rounded> {
        expected_average(&self.to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing an implementation with the model.
// ---------------------------------------------------------------------------------------------

/// Compares every read of `m` with `model`: window, len, is_empty, is_full, sum, average,
/// oldest, newest, get (every index, one past the end and `usize::MAX`) and to_vec.
pub fn check_all_reads<T: RefSample, M: mavg::MovingAverage<Item = T>>(
    m: &M,
    model: &Model<T>,
) -> Result<(), String> {
    let items = model.to_vec();
    let fail = |what: &str, actual: String, expected: String| {
        Err(format!(
            "{}: {what} = {actual}, expected {expected}; window {} holds {} elements {}",
            T::NAME,
            model.window(),
            items.len(),
            abbreviate(&items)
        ))
    };
    if m.window() != model.window() {
        return fail(
            "window()",
            m.window().to_string(),
            model.window().to_string(),
        );
    }
    if m.len() != model.len() {
        return fail("len()", m.len().to_string(), model.len().to_string());
    }
    if m.is_empty() != model.is_empty() {
        return fail(
            "is_empty()",
            m.is_empty().to_string(),
            model.is_empty().to_string(),
        );
    }
    if m.is_full() != model.is_full() {
        return fail(
            "is_full()",
            m.is_full().to_string(),
            model.is_full().to_string(),
        );
    }
    let total = Total::of(&items);
    let sum = total.expected_sum(T::IS_FLOAT);
    let actual_sum = m.sum();
    if !sum.matches(T::sum_value(actual_sum)) {
        return fail("sum()", format!("{actual_sum:?}"), format!("{sum:?}"));
    }
    let average = total.expected_average();
    let actual_average = m.average();
    let average_ok = match (average, actual_average) {
        (None, None) => true,
        (Some(e), Some(a)) => e.matches(a),
        _ => false,
    };
    if !average_ok {
        return fail(
            "average()",
            format!("{actual_average:?}"),
            format!("{average:?}"),
        );
    }
    if !same_option(m.oldest(), model.oldest()) {
        return fail(
            "oldest()",
            format!("{:?}", m.oldest()),
            format!("{:?}", model.oldest()),
        );
    }
    if !same_option(m.newest(), model.newest()) {
        return fail(
            "newest()",
            format!("{:?}", m.newest()),
            format!("{:?}", model.newest()),
        );
    }
    for i in (0..=items.len()).chain([usize::MAX]) {
        if !same_option(m.get(i), model.get(i)) {
            return fail(
                &format!("get({i})"),
                format!("{:?}", m.get(i)),
                format!("{:?}", model.get(i)),
            );
        }
    }
    let v = m.to_vec();
    if !same_slice(&v, &items) {
        return fail("to_vec()", abbreviate(&v), abbreviate(&items));
    }
    Ok(())
}
