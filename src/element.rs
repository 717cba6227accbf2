//! The ground floor of the element types: what every accumulator needs to know about an
//! element, and nothing about the accumulators.
//!
//! [`Element`] is sealed: it lives in a private module, so no other crate can implement it, and
//! through it no other crate can implement [`Sample`](crate::Sample). The accumulators above
//! this file (`limbs.rs`, `running.rs`, `float_sum.rs`, `fixed_summary.rs`) are parameterised
//! by these traits; `sample.rs`, at the top, ties each element type to its accumulators.

use std::fmt::Debug;

/// A primitive number a moving average can hold, as the bits of one `u64` (for storage in an
/// atomic).
pub trait Element: Copy + PartialEq + Debug + Send + Sync + 'static {
    /// The element's bits, zero-extended to 64.
    fn to_bits(self) -> u64;

    /// Inverse of [`to_bits`](Element::to_bits): the element whose bits these are.
    fn from_bits(bits: u64) -> Self;
}

/// A primitive integer of at most 64 bits.
pub trait Integer: Element {
    /// The value, exactly.
    fn widen(self) -> i128;
}

/// An IEEE binary float.
pub trait Float: Element {
    /// Its bit format.
    type Format: FloatFormat;
}

/// The bit format of an IEEE binary float, and where its value lands in the limbs
/// (`limbs.rs`).
pub trait FloatFormat: Copy + Debug + Send + Sync + 'static {
    /// Bits of the stored significand.
    const MANT: u32;
    /// The exponent field, all ones.
    const EXP_MASK: u64;
    /// Limb `i` counts units of `2^(32 i - BIAS)`: `BIAS` places the smallest subnormal at
    /// bit 0 of limb 0.
    const BIAS: i32;
    /// Limbs holding digits: enough for the largest finite value times `2^30`.
    const NUMERIC: usize;
    /// All limbs: the numeric ones, then the NaN, `+inf` and `-inf` counters.
    const LIMBS: usize = Self::NUMERIC + 3;
}

/// The format of `f64`: 52-bit significand, 11-bit exponent.
#[derive(Debug, Clone, Copy)]
pub struct Binary64;

impl FloatFormat for Binary64 {
    const MANT: u32 = 52;
    const EXP_MASK: u64 = 0x7ff;
    const BIAS: i32 = 1074;
    const NUMERIC: usize = 66;
}

/// The format of `f32`: 23-bit significand, 8-bit exponent.
#[derive(Debug, Clone, Copy)]
pub struct Binary32;

impl FloatFormat for Binary32 {
    const MANT: u32 = 23;
    const EXP_MASK: u64 = 0xff;
    const BIAS: i32 = 149;
    const NUMERIC: usize = 10;
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl Element for $t {
            #[inline(always)]
            fn to_bits(self) -> u64 {
                self as u64
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                bits as $t
            }
        }

        impl Integer for $t {
            #[inline(always)]
            fn widen(self) -> i128 {
                self as i128
            }
        }
    )*};
}

integer!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! float {
    ($t:ty, $bits:ty, $format:ty) => {
        impl Element for $t {
            #[inline(always)]
            fn to_bits(self) -> u64 {
                u64::from(<$t>::to_bits(self))
            }
            #[inline(always)]
            fn from_bits(bits: u64) -> Self {
                <$t>::from_bits(bits as $bits)
            }
        }

        impl Float for $t {
            type Format = $format;
        }
    };
}

float!(f64, u64, Binary64);
float!(f32, u32, Binary32);
