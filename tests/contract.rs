//! The `MovingAverage` contract (`src/traits.rs`), tested literally against the reference model
//! in `tests/reference` for all three implementations.
//!
//! * Property tests run random sequences of adds, clears and every read against
//!   `RingAverage`, `MutexAverage` and `ShardedAverage` through one generic function, for every
//!   sample type, with adversarial values (huge, tiny, subnormal, cancelling, overflowing,
//!   NaN, infinities, signed zeros, integer extremes). Windows include the sizes around the
//!   sharded implementation's 64-element checkpoint blocks and `N + 192` slot rings, and
//!   bursts wrap those rings several times.
//! * A second property test drives the shared implementations from several threads that take
//!   turns (adds that do not overlap in time), which the contract says must match
//!   `RingAverage` exactly; for `ShardedAverage` this reads across several shards.
//! * Deterministic tests pin the headline promises: no drift after `1e17`, exactness after ten
//!   million mixed-magnitude adds, NaN and infinities leaving no trace, empty windows.
//!
//! Sums and averages are compared bit for bit (NaN by `is_nan`; an exactly-zero result with
//! `==`, since an exact zero has no sign: see `reference::Rounded`). Elements are compared bit
//! for bit, so `-0.0` must come back as `-0.0` and a NaN's payload must survive.

mod reference;

use std::collections::HashMap;
use std::sync::mpsc;

use mavg::{MovingAverage, MutexAverage, RingAverage, ShardedAverage, SharedMovingAverage};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use reference::*;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `PROPTEST_CASES` overrides the number of cases; Miri runs a couple of short cases.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) { 2 } else { cases });
    ProptestConfig {
        cases,
        failure_persistence: if cfg!(miri) {
            None
        } else {
            Some(Box::new(FileFailurePersistence::SourceParallel(
                "proptest-regressions",
            )))
        },
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// Longest operation sequence of one case.
const MAX_OPS: usize = if cfg!(miri) { 40 } else { 600 };
/// Longest burst of adds in one operation.
const MAX_BURST: usize = if cfg!(miri) { 40 } else { 400 };

// ---------------------------------------------------------------------------------------------
// Value strategies
// ---------------------------------------------------------------------------------------------

/// Sample types with adversarial value strategies.
trait Arb: RefSample {
    fn value() -> BoxedStrategy<Self>;
    /// Runs of adds: random values, one value repeated (sums that overflow, long runs of one
    /// exponent), and for signed types cancelling pairs `x, -x`.
    fn burst() -> BoxedStrategy<Vec<Self>>;
}

fn f64_specials() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        3.0,
        0.1,
        0.2,
        0.3,
        -0.1,
        1e17,
        -1e17,
        1e300,
        -1e300,
        1e308,
        -1e308,
        f64::MAX,
        f64::MIN,
        2f64.powi(1023),
        -(2f64.powi(1023)),
        f64::MAX / 3.0,
        f64::MIN_POSITIVE,
        -f64::MIN_POSITIVE,
        f64::from_bits(1),
        -f64::from_bits(1),
        f64::from_bits(3),
        f64::from_bits(0x000f_ffff_ffff_ffff),
        -f64::from_bits(0x000f_ffff_ffff_ffff),
        1e-300,
        -1e-310,
        f64::EPSILON,
        9007199254740992.0,
        9007199254740994.0,
        2f64.powi(33),
        -(2f64.powi(33)),
        2f64.powi(-1000),
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff8_0000_0000_1234),
        f64::from_bits(0xfff0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]
}

fn f32_specials() -> Vec<f32> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.1,
        0.2,
        0.3,
        3.0,
        1e17,
        -1e17,
        1e38,
        -1e38,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(1),
        f32::from_bits(0x007f_ffff),
        f32::EPSILON,
        16777216.0,
        16777218.0,
        2f32.powi(-140),
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]
}

impl Arb for f64 {
    fn value() -> BoxedStrategy<f64> {
        prop_oneof![
            4 => prop::sample::select(f64_specials()),
            2 => any::<f64>(),
            1 => any::<u64>().prop_map(f64::from_bits),
            2 => (-8i32..8).prop_map(f64::from),
            // Magnitudes spread over the whole finite range.
            2 => (any::<bool>(), 0u64..0x7ff, any::<u64>()).prop_map(|(neg, e, m)| {
                f64::from_bits((u64::from(neg) << 63) | (e << 52) | (m >> 12))
            }),
        ]
        .boxed()
    }

    fn burst() -> BoxedStrategy<Vec<f64>> {
        float_burst(Self::value())
    }
}

impl Arb for f32 {
    fn value() -> BoxedStrategy<f32> {
        prop_oneof![
            4 => prop::sample::select(f32_specials()),
            2 => any::<f32>(),
            1 => any::<u32>().prop_map(f32::from_bits),
            2 => (-8i16..8).prop_map(f32::from),
            2 => (any::<bool>(), 0u32..0xff, any::<u32>()).prop_map(|(neg, e, m)| {
                f32::from_bits((u32::from(neg) << 31) | (e << 23) | (m >> 9))
            }),
        ]
        .boxed()
    }

    fn burst() -> BoxedStrategy<Vec<f32>> {
        float_burst(Self::value())
    }
}

fn float_burst<T: Arb + std::ops::Neg<Output = T>>(
    value: BoxedStrategy<T>,
) -> BoxedStrategy<Vec<T>> {
    prop_oneof![
        prop::collection::vec(value.clone(), 1..MAX_BURST),
        (value.clone(), 1..MAX_BURST).prop_map(|(x, n)| vec![x; n]),
        // Exact cancellation: x, -x pairs (alternating signs).
        prop::collection::vec(value.clone(), 1..MAX_BURST / 2)
            .prop_map(|xs| xs.into_iter().flat_map(|x| [x, -x]).collect()),
        // A run of one value, then its negation: the sum climbs and cancels back.
        (value, 1..MAX_BURST / 2).prop_map(|(x, n)| {
            std::iter::repeat_n(x, n)
                .chain(std::iter::repeat_n(-x, n))
                .collect()
        }),
    ]
    .boxed()
}

macro_rules! arb_int {
    ($($t:ty),*) => {$(
        impl Arb for $t {
            fn value() -> BoxedStrategy<$t> {
                prop_oneof![
                    3 => prop::sample::select(vec![
                        <$t>::MIN,
                        <$t>::MAX,
                        <$t>::MIN.wrapping_add(1),
                        <$t>::MAX - 1,
                        0,
                        1,
                        (0 as $t).wrapping_sub(1),
                    ]),
                    3 => any::<$t>(),
                    1 => (0u8..16).prop_map(|x| x as $t),
                ]
                .boxed()
            }

            fn burst() -> BoxedStrategy<Vec<$t>> {
                prop_oneof![
                    prop::collection::vec(Self::value(), 1..MAX_BURST),
                    (Self::value(), 1..MAX_BURST).prop_map(|(x, n)| vec![x; n]),
                    // Extremes alternating: MIN, MAX, MIN, MAX, ...
                    (1..MAX_BURST).prop_map(|n| {
                        (0..n).map(|i| if i % 2 == 0 { <$t>::MIN } else { <$t>::MAX }).collect()
                    }),
                ]
                .boxed()
            }
        }
    )*};
}
arb_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Read {
    Len,
    IsEmpty,
    IsFull,
    Window,
    Sum,
    Average,
    Oldest,
    Newest,
    Get(usize),
    ToVec,
}

#[derive(Clone, Debug)]
enum Op<T> {
    Push(T),
    Burst(Vec<T>),
    Clear,
    Read(Read),
}

fn read_strategy() -> impl Strategy<Value = Read> {
    prop_oneof![
        1 => Just(Read::Len),
        1 => Just(Read::IsEmpty),
        1 => Just(Read::IsFull),
        1 => Just(Read::Window),
        3 => Just(Read::Sum),
        3 => Just(Read::Average),
        1 => Just(Read::Oldest),
        1 => Just(Read::Newest),
        2 => prop_oneof![0usize..80, 0usize..300, Just(usize::MAX)].prop_map(Read::Get),
        1 => Just(Read::ToVec),
    ]
}

fn op_strategy<T: Arb>() -> impl Strategy<Value = Op<T>> {
    prop_oneof![
        30 => T::value().prop_map(Op::Push),
        3 => T::burst().prop_map(Op::Burst),
        1 => Just(Op::Clear),
        16 => read_strategy().prop_map(Op::Read),
    ]
}

/// Windows 1..=70, and the sizes around the sharded implementation's 64-element blocks.
fn window_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 1usize..=70,
        1 => prop::sample::select(vec![63usize, 64, 65, 127, 128, 129, 191, 192, 193, 256]),
    ]
}

fn scenario<T: Arb>() -> impl Strategy<Value = (usize, Vec<Op<T>>)> {
    (
        window_strategy(),
        prop::collection::vec(op_strategy::<T>(), 1..MAX_OPS),
    )
}

/// What a read should return.
#[derive(Clone, Debug)]
enum Expect<T> {
    Len(usize),
    IsEmpty(bool),
    IsFull(bool),
    Window(usize),
    Sum(ExpectedSum),
    Average(Option<Rounded>),
    Element(Option<T>),
    ToVec(Vec<T>),
}

/// Runs the operations on the model once, recording what every read should return (the exact
/// sums are shared by the three implementations' runs).
fn expectations<T: RefSample>(window: usize, ops: &[Op<T>]) -> Vec<Option<Expect<T>>> {
    let mut model = Model::new(window);
    let mut total: Option<Total> = None;
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        let e = match op {
            Op::Push(x) => {
                model.push(*x);
                total = None;
                None
            }
            Op::Burst(xs) => {
                xs.iter().for_each(|&x| model.push(x));
                total = None;
                None
            }
            Op::Clear => {
                model.clear();
                total = None;
                None
            }
            Op::Read(r) => Some(match r {
                Read::Len => Expect::Len(model.len()),
                Read::IsEmpty => Expect::IsEmpty(model.is_empty()),
                Read::IsFull => Expect::IsFull(model.is_full()),
                Read::Window => Expect::Window(model.window()),
                Read::Sum => Expect::Sum(
                    total
                        .get_or_insert_with(|| Total::of(&model.to_vec()))
                        .expected_sum(T::IS_FLOAT),
                ),
                Read::Average => Expect::Average(
                    total
                        .get_or_insert_with(|| Total::of(&model.to_vec()))
                        .expected_average(),
                ),
                Read::Oldest => Expect::Element(model.oldest()),
                Read::Newest => Expect::Element(model.newest()),
                Read::Get(i) => Expect::Element(model.get(*i)),
                Read::ToVec => Expect::ToVec(model.to_vec()),
            }),
        };
        out.push(e);
    }
    out
}

/// Performs one read on `m` and compares it with the expectation.
fn check_read<T: RefSample, M: MovingAverage<T>>(
    m: &M,
    read: Read,
    expect: &Expect<T>,
) -> Result<(), String> {
    let ok = match (read, expect) {
        (Read::Len, Expect::Len(n)) => m.len() == *n,
        (Read::IsEmpty, Expect::IsEmpty(b)) => m.is_empty() == *b,
        (Read::IsFull, Expect::IsFull(b)) => m.is_full() == *b,
        (Read::Window, Expect::Window(n)) => m.window() == *n,
        (Read::Sum, Expect::Sum(s)) => s.matches(T::sum_value(m.sum())),
        (Read::Average, Expect::Average(a)) => match (a, m.average()) {
            (None, None) => true,
            (Some(e), Some(x)) => e.matches(x),
            _ => false,
        },
        (Read::Oldest, Expect::Element(e)) => same_option(m.oldest(), *e),
        (Read::Newest, Expect::Element(e)) => same_option(m.newest(), *e),
        (Read::Get(i), Expect::Element(e)) => same_option(m.get(i), *e),
        (Read::ToVec, Expect::ToVec(v)) => same_slice(&m.to_vec(), v),
        _ => unreachable!("expectation does not match the read"),
    };
    if ok {
        return Ok(());
    }
    let actual = match read {
        Read::Len => format!("{}", m.len()),
        Read::IsEmpty => format!("{}", m.is_empty()),
        Read::IsFull => format!("{}", m.is_full()),
        Read::Window => format!("{}", m.window()),
        Read::Sum => format!("{:?}", m.sum()),
        Read::Average => format!("{:?}", m.average()),
        Read::Oldest => format!("{:?}", m.oldest()),
        Read::Newest => format!("{:?}", m.newest()),
        Read::Get(i) => format!("{:?}", m.get(i)),
        Read::ToVec => abbreviate(&m.to_vec()),
    };
    Err(format!("{read:?} returned {actual}, expected {expect:?}"))
}

/// Runs the operations on a fresh `M` and checks every read, the length after every burst and
/// clear, and every read at the end.
fn run<T: RefSample, M: MovingAverage<T>>(
    name: &str,
    window: usize,
    ops: &[Op<T>],
    expects: &[Option<Expect<T>>],
) -> Result<(), TestCaseError> {
    let mut m = M::with_window(window).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::new(window);
    check_all_reads(&m, &model)
        .map_err(|e| TestCaseError::fail(format!("{name}, fresh: {e}")))?;
    for (i, (op, expect)) in ops.iter().zip(expects).enumerate() {
        let context = |e: String| {
            TestCaseError::fail(format!(
                "{name} ({}), window {window}, op #{i} {op:?}: {e}",
                T::NAME
            ))
        };
        match op {
            Op::Push(x) => {
                m.push(*x);
                model.push(*x);
            }
            Op::Burst(xs) => {
                xs.iter().for_each(|&x| {
                    m.push(x);
                    model.push(x);
                });
                if m.len() != model.len() {
                    return Err(context(format!("len() = {}, expected {}", m.len(), model.len())));
                }
            }
            Op::Clear => {
                m.clear();
                model.clear();
                if m.len() != 0 || m.average().is_some() {
                    return Err(context("not empty after clear()".into()));
                }
            }
            Op::Read(r) => {
                check_read(&m, *r, expect.as_ref().expect("a read has an expectation"))
                    .map_err(context)?;
            }
        }
    }
    check_all_reads(&m, &model).map_err(|e| TestCaseError::fail(format!("{name}, at the end: {e}")))
}

fn check_all_implementations<T: RefSample>(
    window: usize,
    ops: &[Op<T>],
) -> Result<(), TestCaseError> {
    let expects = expectations(window, ops);
    run::<T, RingAverage<T>>("RingAverage", window, ops, &expects)?;
    run::<T, MutexAverage<T>>("MutexAverage", window, ops, &expects)?;
    run::<T, ShardedAverage<T>>("ShardedAverage", window, ops, &expects)?;
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn contract_f64((window, ops) in scenario::<f64>()) {
        check_all_implementations::<f64>(window, &ops)?;
    }

    #[test]
    fn contract_f32((window, ops) in scenario::<f32>()) {
        check_all_implementations::<f32>(window, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn contract_i64((window, ops) in scenario::<i64>()) {
        check_all_implementations::<i64>(window, &ops)?;
    }

    #[test]
    fn contract_u64((window, ops) in scenario::<u64>()) {
        check_all_implementations::<u64>(window, &ops)?;
    }

    #[test]
    fn contract_i8((window, ops) in scenario::<i8>()) {
        check_all_implementations::<i8>(window, &ops)?;
    }

    #[test]
    fn contract_u32((window, ops) in scenario::<u32>()) {
        check_all_implementations::<u32>(window, &ops)?;
    }
}

proptest! {
    #![proptest_config(config(8))]

    #[test]
    fn contract_i16((window, ops) in scenario::<i16>()) {
        check_all_implementations::<i16>(window, &ops)?;
    }

    #[test]
    fn contract_i32((window, ops) in scenario::<i32>()) {
        check_all_implementations::<i32>(window, &ops)?;
    }

    #[test]
    fn contract_u8((window, ops) in scenario::<u8>()) {
        check_all_implementations::<u8>(window, &ops)?;
    }

    #[test]
    fn contract_u16((window, ops) in scenario::<u16>()) {
        check_all_implementations::<u16>(window, &ops)?;
    }

    #[test]
    fn contract_isize((window, ops) in scenario::<isize>()) {
        check_all_implementations::<isize>(window, &ops)?;
    }

    #[test]
    fn contract_usize((window, ops) in scenario::<usize>()) {
        check_all_implementations::<usize>(window, &ops)?;
    }
}
