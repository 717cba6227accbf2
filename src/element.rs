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

/// The IEEE binary format with a `MANT`-bit stored significand and an `EXP`-bit exponent, whose
/// values times `2^30` fit in `NUMERIC` limbs.
#[derive(Debug, Clone, Copy)]
pub struct Binary<const MANT: u32, const EXP: u32, const NUMERIC: usize>;

impl<const MANT: u32, const EXP: u32, const NUMERIC: usize> FloatFormat
    for Binary<MANT, EXP, NUMERIC>
{
    const MANT: u32 = MANT;
    const EXP_MASK: u64 = (1 << EXP) - 1;
    // The exponent bias less one (subnormals share the lowest binade), plus the significand.
    const BIAS: i32 = (1 << (EXP - 1)) - 2 + MANT as i32;
    const NUMERIC: usize = NUMERIC;
}

/// The format of `f64`.
pub(crate) type Binary64 = Binary<52, 11, 66>;

/// The format of `f32`.
pub(crate) type Binary32 = Binary<23, 8, 10>;

const _: () = assert!(Binary64::BIAS == 1074 && Binary32::BIAS == 149);

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
