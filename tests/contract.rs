//! The `MovingAverage` contract (`src/traits.rs`), tested literally against the model in
//! `tests/model` (reads recomputed by the exact oracle of `mavg_testkit::oracle`) for all three
//! implementations.
//!
//! * Property tests run random sequences of adds, clears and every read against
//!   `RingAverage`, `MutexAverage` and `ShardedAverage` through one generic function, for every
//!   sample type, with adversarial values (huge, tiny, subnormal, cancelling, overflowing,
//!   NaN, infinities, signed zeros, integer extremes). Windows include the sizes around the
//!   sharded implementation's 64-element checkpoint blocks and `N + 192` slot rings, and
//!   bursts wrap those rings several times.
//! * The same tests run `ShardedAverage` in the relaxed order (`ShardedAverage::relaxed`, slack
//!   5 and 4096, through the newtype [`Relaxed`]): with one thread adding, its window must be
//!   exactly the strict one.
//! * A second property test drives the shared implementations from several threads that take
//!   turns (adds that do not overlap in time), which the contract says must match
//!   `RingAverage` exactly; for `ShardedAverage` this reads across several shards. (Only in
//!   the strict order: turns are where the relaxed order may differ, which `tests/relaxed.rs`
//!   decides.)
//! * Deterministic tests pin the headline promises: no drift after `1e17`, exactness after ten
//!   million mixed-magnitude adds, NaN and infinities leaving no trace, empty windows; and the
//!   rounding cases random values seldom hit: ties decided by an element a thousand binary
//!   digits below the result, and means of a few subnormals.
//!
//! Sums and averages are compared bit for bit (NaN by `is_nan`; an exactly-zero result with
//! `==`, since an exact zero has no sign: see `mavg_testkit::oracle::Rounded`). Elements are
//! compared bit for bit, so `-0.0` must come back as `-0.0` and a NaN's payload must survive.

mod model;

use std::sync::mpsc;

use mavg::{
    MovingAverage, MutexAverage, RingAverage, Sample, ShardedAverage, SharedMovingAverage,
    WindowError,
};
use mavg_testkit::float::{next_away, next_down, next_up, pow2, pow2_f32};
use mavg_testkit::XorShift;
use model::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, RngAlgorithm};

// ---------------------------------------------------------------------------------------------
// The relaxed order, from one thread
// ---------------------------------------------------------------------------------------------

/// `ShardedAverage::relaxed(window, SLACK)` behind the traits, so that every generic test runs
/// it. One thread adds, so batches of tickets are its own and every add is in order: the window
/// must be exactly the strict one. Batches of tickets grow up to `slack / 2` for one shard: a
/// slack of 5 gives batches of 1 and 2 tickets, 4096 batches of up to 2048, so that the
/// stamps have holes wherever reads (ordering points) end batches early and reads must find
/// the window by counting elements.
struct Relaxed<T: Sample, const SLACK: usize>(ShardedAverage<T>);

const SMALL_SLACK: usize = 5;
const LARGE_SLACK: usize = 4096;

impl<T: Sample, const SLACK: usize> MovingAverage for Relaxed<T, SLACK> {
    type Item = T;

    fn with_window(window: usize) -> Result<Self, WindowError> {
        let m = ShardedAverage::relaxed(window, SLACK)?;
        assert_eq!(m.slack(), SLACK);
        Ok(Relaxed(m))
    }

    fn window(&self) -> usize {
        self.0.window()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn is_full(&self) -> bool {
        self.0.is_full()
    }

    fn sum(&self) -> T::Sum {
        self.0.sum()
    }

    fn average(&self) -> Option<f64> {
        self.0.average()
    }

    fn oldest(&self) -> Option<T> {
        self.0.oldest()
    }

    fn newest(&self) -> Option<T> {
        self.0.newest()
    }

    fn get(&self, index: usize) -> Option<T> {
        self.0.get(index)
    }

    fn to_vec(&self) -> Vec<T> {
        self.0.to_vec()
    }

    fn push(&mut self, value: T) {
        MovingAverage::push(&mut self.0, value);
    }

    fn clear(&mut self) {
        MovingAverage::clear(&mut self.0);
    }
}

impl<T: Sample, const SLACK: usize> SharedMovingAverage for Relaxed<T, SLACK> {
    fn push(&self, value: T) {
        SharedMovingAverage::push(&self.0, value);
    }

    fn clear(&self) {
        SharedMovingAverage::clear(&self.0);
    }
}

/// The names of the two relaxed implementations in failure messages.
const RELAXED_SMALL: &str = "ShardedAverage::relaxed(_, 5)";
const RELAXED_LARGE: &str = "ShardedAverage::relaxed(_, 4096)";

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
        // A failing case is shrunk for at most 30 s.
        max_shrink_iters: 2048,
        max_shrink_time: 30_000,
        // ChaCha, the default, dominates the run time in debug builds.
        rng_algorithm: RngAlgorithm::XorShift,
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
        pow2(1023),
        -(pow2(1023)),
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
        pow2(33),
        -(pow2(33)),
        pow2(-1000),
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
        pow2_f32(-140),
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::INFINITY,
        f32::NEG_INFINITY,
    ]
}

/// `Arb` for a float type (`$bits` its bits, `$small` a type of small integers it holds):
/// specials, any value, any bit pattern, small integers, and magnitudes spread over the whole
/// finite range (a random exponent below the all-ones one); bursts mix in the `$tiny` values
/// (subnormals and the smallest normal, so that means underflow or round a fraction of an ulp).
macro_rules! arb_float {
    ($($t:ty, $bits:ty, $small:ty, $specials:expr, [$($tiny:expr),* $(,)?];)*) => {$(
        impl Arb for $t {
            fn value() -> BoxedStrategy<$t> {
                const SIGN: u32 = <$bits>::BITS - 1;
                const MANT: u32 = <$t>::MANTISSA_DIGITS - 1;
                const EXP_ALL_ONES: $bits = (1 << (SIGN - MANT)) - 1;
                prop_oneof![
                    4 => prop::sample::select($specials),
                    2 => any::<$t>(),
                    1 => any::<$bits>().prop_map(<$t>::from_bits),
                    2 => (-8 as $small..8).prop_map(<$t>::from),
                    2 => (any::<bool>(), 0..EXP_ALL_ONES, any::<$bits>()).prop_map(
                        |(neg, e, m)| {
                            let sign = <$bits>::from(neg) << SIGN;
                            <$t>::from_bits(sign | (e << MANT) | (m >> (SIGN - MANT + 1)))
                        }
                    ),
                ]
                .boxed()
            }

            fn burst() -> BoxedStrategy<Vec<$t>> {
                let tiny = vec![$($tiny),*];
                float_burst(Self::value(), prop::sample::select(tiny).boxed())
            }
        }
    )*};
}
arb_float! {
    f64, u64, i32, f64_specials(), [
        f64::from_bits(1), -f64::from_bits(1), f64::from_bits(2), -f64::from_bits(3),
        f64::from_bits(5), -f64::from_bits(0x000f_ffff_ffff_ffff), -f64::MIN_POSITIVE,
    ];
    // f32 means are rounded to f64, far below f32's subnormals: they never underflow.
    f32, u32, i16, f32_specials(), [
        f32::from_bits(1), -f32::from_bits(1), -f32::from_bits(3), -f32::MIN_POSITIVE,
    ];
}

fn float_burst<T: Arb + std::ops::Neg<Output = T>>(
    value: BoxedStrategy<T>,
    tiny: BoxedStrategy<T>,
) -> BoxedStrategy<Vec<T>> {
    prop_oneof![
        prop::collection::vec(value.clone(), 1..MAX_BURST),
        (value.clone(), 1..MAX_BURST).prop_map(|(x, n)| vec![x; n]),
        // Exact cancellation: x, -x pairs (alternating signs).
        prop::collection::vec(value.clone(), 1..MAX_BURST / 2)
            .prop_map(|xs| xs.into_iter().flat_map(|x| [x, -x]).collect()),
        // Zeros of either sign, then one value, often tiny: the window's mean underflows (to
        // a zero that keeps the sign of the exact mean) or rounds a fraction of an ulp.
        (
            prop_oneof![value.clone(), tiny],
            1..MAX_BURST,
            any::<bool>()
        )
            .prop_map(|(x, n, negative)| {
                let zero = if negative { -T::small(0) } else { T::small(0) };
                std::iter::repeat_n(zero, n)
                    .chain(std::iter::once(x))
                    .collect()
            }),
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
    /// The window's length and capacity, which `len`, `is_empty`, `is_full` and `window` read.
    Size {
        len: usize,
        window: usize,
    },
    Sum(ExpectedSum),
    Average(Option<Rounded>),
    Element(Option<T>),
    ToVec(Vec<T>),
    /// After a burst of adds: length, sum and average.
    Burst(usize, ExpectedSum, Option<Rounded>),
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
                let t = Total::of(&model.to_vec());
                let e = Expect::Burst(
                    model.len(),
                    t.expected_sum(T::IS_FLOAT),
                    t.expected_average(),
                );
                total = Some(t);
                Some(e)
            }
            Op::Clear => {
                model.clear();
                total = None;
                None
            }
            Op::Read(r) => Some(match r {
                Read::Len | Read::IsEmpty | Read::IsFull | Read::Window => Expect::Size {
                    len: model.len(),
                    window: model.window(),
                },
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
fn check_read<T: RefSample, M: MovingAverage<Item = T>>(
    m: &M,
    read: Read,
    expect: &Expect<T>,
) -> Result<(), String> {
    let ok = match (read, expect) {
        (Read::Len, Expect::Size { len, .. }) => m.len() == *len,
        (Read::IsEmpty, Expect::Size { len, .. }) => m.is_empty() == (*len == 0),
        (Read::IsFull, Expect::Size { len, window }) => m.is_full() == (len == window),
        (Read::Window, Expect::Size { window, .. }) => m.window() == *window,
        (Read::Sum, Expect::Sum(s)) => s.matches(T::sum_value(m.sum())),
        (Read::Average, Expect::Average(a)) => average_matches(*a, m.average()),
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

/// Checks length, sum and average after a burst of adds.
fn check_after_burst<T: RefSample, M: MovingAverage<Item = T>>(
    m: &M,
    expect: Option<&Expect<T>>,
) -> Result<(), String> {
    let Some(Expect::Burst(len, sum, average)) = expect else {
        unreachable!("a burst has an expectation");
    };
    let (actual_sum, actual_average) = (m.sum(), m.average());
    let average_ok = average_matches(*average, actual_average);
    if m.len() == *len && sum.matches(T::sum_value(actual_sum)) && average_ok {
        Ok(())
    } else {
        Err(format!(
            "after the burst: len() = {}, sum() = {actual_sum:?}, average() = \
             {actual_average:?}; expected {len}, {sum:?}, {average:?}",
            m.len()
        ))
    }
}

/// Runs the operations on a fresh `M` and checks every read, the length after every burst and
/// clear, and every read at the end.
fn run<T: RefSample, M: MovingAverage<Item = T>>(
    name: &str,
    window: usize,
    ops: &[Op<T>],
    expects: &[Option<Expect<T>>],
) -> Result<(), TestCaseError> {
    let mut m = M::with_window(window).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::new(window);
    check_all_reads(&m, &model).map_err(|e| TestCaseError::fail(format!("{name}, fresh: {e}")))?;
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
                check_after_burst(&m, expect.as_ref()).map_err(context)?;
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
    run::<T, Relaxed<T, SMALL_SLACK>>(RELAXED_SMALL, window, ops, &expects)?;
    run::<T, Relaxed<T, LARGE_SLACK>>(RELAXED_LARGE, window, ops, &expects)?;
    Ok(())
}

/// One property test per sample type, `name: type`: each runs `cases` random scenarios from
/// `scenario::<type>()` through `check::<type>`.
macro_rules! property_per_type {
    ($cases:expr, $scenario:ident, $check:ident => $($name:ident: $t:ty),* $(,)?) => {
        proptest! {
            #![proptest_config(config($cases))]
            $(
                #[test]
                fn $name((window, ops) in $scenario::<$t>()) {
                    $check::<$t>(window, &ops)?;
                }
            )*
        }
    };
}

// Fewer cases for the integer types whose extremes the wider types already cover.
property_per_type!(64, scenario, check_all_implementations =>
    contract_f64: f64,
    contract_f32: f32,
);
property_per_type!(32, scenario, check_all_implementations =>
    contract_i64: i64,
    contract_u64: u64,
    contract_i8: i8,
    contract_u32: u32,
);
property_per_type!(8, scenario, check_all_implementations =>
    contract_i16: i16,
    contract_i32: i32,
    contract_u8: u8,
    contract_u16: u16,
    contract_isize: isize,
    contract_usize: usize,
);

// ---------------------------------------------------------------------------------------------
// Adds from several threads that take turns
// ---------------------------------------------------------------------------------------------

/// Worker threads besides the test's own thread.
const WORKERS: usize = 3;

#[derive(Clone, Debug)]
enum TurnOp<T> {
    /// Thread `0..WORKERS` (a worker) or `WORKERS` (the test thread) adds these, while every
    /// other thread waits.
    PushFrom(usize, Vec<T>),
    Clear,
    Read(Read),
}

fn turn_scenario<T: Arb>() -> impl Strategy<Value = (usize, Vec<TurnOp<T>>)> {
    let op = prop_oneof![
        12 => (0..=WORKERS, prop::collection::vec(T::value(), 1..8))
            .prop_map(|(t, xs)| TurnOp::PushFrom(t, xs)),
        2 => (0..=WORKERS, T::burst()).prop_map(|(t, xs)| TurnOp::PushFrom(t, xs)),
        1 => Just(TurnOp::Clear),
        10 => read_strategy().prop_map(TurnOp::Read),
    ];
    (window_strategy(), prop::collection::vec(op, 1..MAX_OPS / 3))
}

/// The contract: "a history of adds that do not overlap in time (one thread, or threads that
/// synchronize between adds) produces exactly the elements, sum and average that
/// `RingAverage` produces for the same sequence". Each add here happens on the thread the
/// operation names and is acknowledged over a channel before the next operation starts.
fn run_turns<T: RefSample, M: SharedMovingAverage<Item = T>>(
    name: &str,
    window: usize,
    ops: &[TurnOp<T>],
) -> Result<(), TestCaseError> {
    let plain: Vec<Op<T>> = ops
        .iter()
        .map(|op| match op {
            TurnOp::PushFrom(_, xs) => Op::Burst(xs.clone()),
            TurnOp::Clear => Op::Clear,
            TurnOp::Read(r) => Op::Read(*r),
        })
        .collect();
    let expects = expectations(window, &plain);
    let m = M::with_window(window).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::new(window);
    std::thread::scope(|s| {
        let (ack_tx, ack_rx) = mpsc::channel::<()>();
        let senders: Vec<mpsc::Sender<Vec<T>>> = (0..WORKERS)
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Vec<T>>();
                let ack = ack_tx.clone();
                let m = &m;
                s.spawn(move || {
                    for batch in rx {
                        for x in batch {
                            SharedMovingAverage::push(m, x);
                        }
                        ack.send(()).unwrap();
                    }
                });
                tx
            })
            .collect();
        // Returning drops `senders`, which ends the workers.
        for (i, (op, expect)) in ops.iter().zip(&expects).enumerate() {
            let context = |e: String| {
                TestCaseError::fail(format!(
                    "{name} ({}), window {window}, op #{i} {op:?}: {e}",
                    T::NAME
                ))
            };
            match op {
                TurnOp::PushFrom(t, xs) => {
                    if *t == WORKERS {
                        xs.iter().for_each(|&x| SharedMovingAverage::push(&m, x));
                    } else {
                        senders[*t].send(xs.clone()).unwrap();
                        ack_rx.recv().unwrap();
                    }
                    xs.iter().for_each(|&x| model.push(x));
                    check_after_burst(&m, expect.as_ref()).map_err(context)?;
                }
                TurnOp::Clear => {
                    SharedMovingAverage::clear(&m);
                    model.clear();
                }
                TurnOp::Read(r) => {
                    check_read(&m, *r, expect.as_ref().unwrap()).map_err(context)?;
                }
            }
        }
        check_all_reads(&m, &model)
            .map_err(|e| TestCaseError::fail(format!("{name}, at the end: {e}")))
    })
}

fn check_turns<T: RefSample>(window: usize, ops: &[TurnOp<T>]) -> Result<(), TestCaseError> {
    run_turns::<T, MutexAverage<T>>("MutexAverage", window, ops)?;
    run_turns::<T, ShardedAverage<T>>("ShardedAverage", window, ops)
}

property_per_type!(24, turn_scenario, check_turns =>
    turns_f64: f64,
    turns_i64: i64,
    turns_u32: u32,
);

// ---------------------------------------------------------------------------------------------
// Deterministic tests
// ---------------------------------------------------------------------------------------------

/// Runs `f` for the three implementations of `MovingAverage<Item = T>`, and `ShardedAverage`
/// in the relaxed order with a small and a large slack.
macro_rules! for_each_impl {
    ($t:ty, $f:ident) => {
        $f::<RingAverage<$t>>("RingAverage");
        $f::<MutexAverage<$t>>("MutexAverage");
        $f::<ShardedAverage<$t>>("ShardedAverage");
        $f::<Relaxed<$t, SMALL_SLACK>>(RELAXED_SMALL);
        $f::<Relaxed<$t, LARGE_SLACK>>(RELAXED_LARGE);
    };
}

const WINDOWS: &[usize] = &[
    1, 2, 3, 5, 63, 64, 65, 100, 127, 128, 129, 191, 192, 193, 255, 256, 257, 1000,
];

fn feed<T: RefSample, M: MovingAverage<Item = T>>(m: &mut M, model: &mut Model<T>, xs: &[T]) {
    for &x in xs {
        m.push(x);
        model.push(x);
    }
}

/// A new `M` over a window of `w`, and its model.
fn new_with_model<M: MovingAverage>(w: usize) -> (M, Model<M::Item>)
where
    M::Item: RefSample,
{
    (M::with_window(w).unwrap(), Model::new(w))
}

fn assert_matches<T: RefSample, M: MovingAverage<Item = T>>(name: &str, m: &M, model: &Model<T>) {
    if let Err(e) = check_all_reads(m, model) {
        panic!("{name}: {e}");
    }
}

#[test]
fn empty_window_has_no_average_and_a_zero_sum() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        for &w in WINDOWS {
            let (mut m, mut model) = new_with_model::<M>(w);
            assert_eq!(m.average(), None, "{name}");
            assert_eq!(m.sum(), 0.0, "{name}");
            assert!(m.is_empty() && !m.is_full() && m.len() == 0, "{name}");
            assert_eq!(
                (m.oldest(), m.newest(), m.get(0)),
                (None, None, None),
                "{name}"
            );
            assert!(m.to_vec().is_empty(), "{name}");
            feed(&mut m, &mut model, &[f64::NAN, 1.0, f64::INFINITY]);
            m.clear();
            model.clear();
            assert_eq!(m.average(), None, "{name}: after clear");
            assert_eq!(m.sum(), 0.0, "{name}: after clear");
            assert_matches(name, &m, &model);
            // Still usable after the clear, with the same window.
            feed(&mut m, &mut model, &[2.0, 4.0]);
            assert_matches(name, &m, &model);
        }
    }
    fn check_int<M: MovingAverage<Item = i64>>(name: &str) {
        let mut m = M::with_window(3).unwrap();
        assert_eq!((m.sum(), m.average()), (0, None), "{name}");
        m.push(i64::MIN);
        m.clear();
        assert_eq!((m.sum(), m.average(), m.len()), (0, None, 0), "{name}");
    }
    for_each_impl!(f64, check);
    for_each_impl!(i64, check_int);
}

#[test]
fn a_huge_value_that_left_the_window_leaves_the_average_exactly_one() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        for &w in WINDOWS {
            for big in [1e17, -1e17, 1e300, f64::MAX, pow2(60) + pow2(8)] {
                let mut m = M::with_window(w).unwrap();
                m.push(big);
                for _ in 0..w {
                    m.push(1.0);
                }
                assert_eq!(m.average(), Some(1.0), "{name}, window {w}, after {big:e}");
                assert_eq!(m.sum(), w as f64, "{name}, window {w}, after {big:e}");
                // Many huge values in and out, several ring wraps.
                for _ in 0..3 * w + 200 {
                    m.push(big);
                }
                for _ in 0..w {
                    m.push(1.0);
                }
                assert_eq!(m.average(), Some(1.0), "{name}, window {w}, after {big:e}s");
            }
        }
    }
    fn check_f32<M: MovingAverage<Item = f32>>(name: &str) {
        for &w in WINDOWS {
            let mut m = M::with_window(w).unwrap();
            m.extend_from(&[1e17f32, f32::MAX, -f32::MAX]);
            for _ in 0..w {
                m.push(1.0);
            }
            assert_eq!(m.average(), Some(1.0), "{name}, window {w}");
            assert_eq!(m.sum(), w as f64, "{name}, window {w}");
        }
    }
    for_each_impl!(f64, check);
    for_each_impl!(f32, check_f32);
}

/// Adds a slice through `MovingAverage::push` (the crate's `Extend` impls are tested in
/// `extend_adds_in_order`).
trait ExtendFrom<T> {
    fn extend_from(&mut self, xs: &[T]);
}

impl<T: RefSample, M: MovingAverage<Item = T>> ExtendFrom<T> for M {
    fn extend_from(&mut self, xs: &[T]) {
        xs.iter().for_each(|&x| self.push(x));
    }
}

#[test]
fn documented_examples_are_exact() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        let mut m = M::with_window(3).unwrap();
        m.extend_from(&[0.1, 0.2, 0.3]);
        assert_eq!(m.average(), Some(0.2), "{name}");
        let mut m = M::with_window(3).unwrap();
        m.extend_from(&[1e17, 1.0, 1.0, 1.0]);
        assert_eq!(m.sum(), 3.0, "{name}");
        let mut m = M::with_window(3).unwrap();
        m.extend_from(&[-1.5, 0.25, -3.0]);
        assert_eq!(m.sum(), -4.25, "{name}");
        m.extend_from(&[f64::MAX, f64::MAX]);
        assert_eq!(
            m.sum(),
            f64::INFINITY,
            "{name}: the exact sum is above the range"
        );
        // The exact mean (-3 + 2 MAX) / 3 is finite, though the naive sum overflows.
        let expected = expected_average(&[-3.0, f64::MAX, f64::MAX]).unwrap();
        assert!(expected.value.is_finite());
        assert!(expected.matches(m.average().unwrap()), "{name}");
    }
    fn check_i64<M: MovingAverage<Item = i64>>(name: &str) {
        let mut m = M::with_window(2).unwrap();
        m.extend_from(&[i64::MAX, i64::MAX, i64::MAX]);
        assert_eq!(m.sum(), 2 * i64::MAX as i128, "{name}");
        assert_eq!(m.average(), Some(i64::MAX as f64), "{name}");
    }
    for_each_impl!(f64, check);
    for_each_impl!(i64, check_i64);
}

#[test]
fn means_below_the_smallest_subnormal_round_correctly_with_their_sign() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        let tiny = f64::from_bits(1);
        let cases: [(&[f64], f64); 7] = [
            (&[-tiny, 0.0, 0.0], -0.0),    // -1/3 ulp rounds to zero, keeping the sign
            (&[tiny, -0.0, -0.0], 0.0),    // +1/3 ulp
            (&[-tiny, 0.0], -0.0),         // -1/2 ulp: a tie, to the even zero
            (&[-tiny, -tiny, 0.0], -tiny), // -2/3 ulp
            (&[3.0 * tiny, 0.0], 2.0 * tiny), // 3/2 ulp: a tie, to the even 2 ulp
            (&[5.0 * tiny, 0.0], 2.0 * tiny), // 5/2 ulp: a tie, to the even 2 ulp
            (
                &[f64::MIN_POSITIVE, -tiny, 0.0],
                f64::from_bits((1 << 52) / 3),
            ),
        ];
        for (xs, expected) in cases {
            let mut m = M::with_window(xs.len()).unwrap();
            m.extend_from(xs);
            let oracle = expected_average(xs).unwrap();
            assert_eq!(oracle.value.to_bits(), expected.to_bits(), "oracle, {xs:?}");
            assert_eq!(
                m.average().map(f64::to_bits),
                Some(expected.to_bits()),
                "{name}: {xs:?} -> {:?}",
                m.average()
            );
        }
    }
    for_each_impl!(f64, check);
}

/// Checks `m` against the model, and pins the model's sum and average to the bits of `sum`
/// and `average`, so that a case also fails if the oracle were wrong.
fn assert_rounds_to<T: RefSample, M: MovingAverage<Item = T>>(
    name: &str,
    m: &M,
    model: &Model<T>,
    (sum, average): (f64, f64),
) {
    let window = abbreviate(&model.to_vec());
    let oracle = (model.expected_sum(), model.expected_average());
    assert_float_reads(
        &format!("oracle for {window}"),
        oracle,
        (sum, Some(average)),
    );
    assert_matches(name, m, model);
}

/// Panics unless the reads `(sum, average)` of a float moving average are the `expected` ones
/// (`what` names them in the message).
fn assert_float_reads(
    what: &str,
    (expected_sum, expected_average): (ExpectedSum, Option<Rounded>),
    (sum, average): (f64, Option<f64>),
) {
    assert!(
        expected_sum.matches(SumValue::Float(sum)),
        "{what}: sum {sum:e}, expected {expected_sum:?}"
    );
    assert!(
        average_matches(expected_average, average),
        "{what}: average {average:?}, expected {expected_average:?}"
    );
}

/// Windows whose exact sum and mean lie halfway between two `f64`s but for one tiny element
/// a thousand binary digits lower (or in the lowest digit): the tiny element alone decides
/// the rounding, so it must reach the sticky bit through every digit in between. Once a zero
/// evicts it, the sum and mean are exact ties and go to even, the other way.
#[test]
fn ties_decided_only_by_a_tiny_element_round_away_from_even_until_it_leaves() {
    /// A window in push order, its sum and mean, and its sum and mean once a zero has evicted
    /// the first element (the tiny one).
    struct Case {
        window: Vec<f64>,
        with_tiny: (f64, f64),
        without: (f64, f64),
    }
    fn cases(tiny: f64) -> [Case; 3] {
        let (e53, e54, e55) = (pow2(53), pow2(54), pow2(55));
        [
            // 2^55 + 4 and 2^53 + 1 are ties that go down to even; +tiny breaks them up.
            Case {
                window: vec![tiny, e54, e54, 4.0],
                with_tiny: (e55 + 8.0, e53 + 2.0),
                without: (e55, e53),
            },
            // 2^55 + 12 and 2^53 + 3 are ties that go up to even; -tiny breaks them down.
            Case {
                window: vec![-tiny, e54, e54, 12.0],
                with_tiny: (e55 + 8.0, e53 + 2.0),
                without: (e55 + 16.0, e53 + 4.0),
            },
            // The sum 2^53 + 1 alone is a tie (its mean, (2^53 + 1) / 3, is an integer).
            Case {
                window: vec![tiny, e53, 1.0],
                with_tiny: (e53 + 2.0, 3002399751580331.0),
                without: (e53, 3002399751580331.0),
            },
        ]
    }
    /// Every case and its negation; `to_t` converts the cases' elements exactly.
    fn check<T: RefSample, M: MovingAverage<Item = T>>(
        name: &str,
        tinies: &[f64],
        to_t: fn(f64) -> T,
    ) {
        for &tiny in tinies {
            for case in cases(tiny) {
                for sign in [1.0, -1.0] {
                    let name = format!("{name}, tiny {tiny:e}, sign {sign}");
                    let xs: Vec<T> = case.window.iter().map(|&x| to_t(sign * x)).collect();
                    let signed = |(sum, mean): (f64, f64)| (sign * sum, sign * mean);
                    let (mut m, mut model) = new_with_model::<M>(xs.len());
                    feed(&mut m, &mut model, &xs);
                    assert_rounds_to(&name, &m, &model, signed(case.with_tiny));
                    feed(&mut m, &mut model, &[to_t(0.0)]);
                    assert_rounds_to(&name, &m, &model, signed(case.without));
                }
            }
        }
    }
    macro_rules! all {
        ($t:ty, $tinies:expr, $to_t:expr) => {
            check::<$t, RingAverage<$t>>("RingAverage", $tinies, $to_t);
            check::<$t, MutexAverage<$t>>("MutexAverage", $tinies, $to_t);
            check::<$t, ShardedAverage<$t>>("ShardedAverage", $tinies, $to_t);
            check::<$t, Relaxed<$t, SMALL_SLACK>>(RELAXED_SMALL, $tinies, $to_t);
            check::<$t, Relaxed<$t, LARGE_SLACK>>(RELAXED_LARGE, $tinies, $to_t);
        };
    }
    all!(f64, &[pow2(-1000), pow2(-1074), pow2(-60)], |x| x);
    // f32's smallest subnormal, 2^-149, is as far below as f32 goes.
    all!(f32, &[pow2(-149), pow2(-100)], |x| x as f32);
}

/// Means of a few subnormals `k t` (`t` the smallest subnormal of the element type) must be
/// rounded once. For `f64`, rounding first to `t / 2` and then to `t` turns 2/3, 3/5, 4/3 and
/// 10/3 into ties that then go the wrong way, and 3/2 is a true tie that goes to even. For `f32`,
/// the mean is an `f64` far finer than `t`: the sum (exact in `f64`) divided by the count in
/// one IEEE division is the correctly rounded mean.
#[test]
fn means_of_subnormals_are_rounded_once() {
    /// `(k for each element, the mean in units of t rounded to an integer)`.
    const CASES: [(&[u64], u64); 7] = [
        (&[1, 1, 1], 1),       // exactly 1
        (&[1, 2], 2),          // 3/2: a tie, to the even 2
        (&[1, 0, 0], 0),       // 1/3
        (&[2, 0, 0], 1),       // 2/3
        (&[4, 0, 0], 1),       // 4/3
        (&[10, 0, 0], 3),      // 10/3
        (&[1, 1, 1, 0, 0], 1), // 3/5
    ];
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        for (ks, mean) in CASES {
            for sign in [1.0, -1.0] {
                let xs: Vec<f64> = ks.iter().map(|&k| sign * f64::from_bits(k)).collect();
                let sum = sign * f64::from_bits(ks.iter().sum());
                let (mut m, mut model) = new_with_model::<M>(xs.len());
                feed(&mut m, &mut model, &xs);
                // A negative mean that rounds to zero is -0.0.
                assert_rounds_to(name, &m, &model, (sum, sign * f64::from_bits(mean)));
            }
        }
    }
    fn check_f32<M: MovingAverage<Item = f32>>(name: &str) {
        for (ks, _) in CASES {
            for sign in [1.0f32, -1.0] {
                let xs: Vec<f32> = ks
                    .iter()
                    .map(|&k| sign * f32::from_bits(k as u32))
                    .collect();
                let sum = f64::from(sign * f32::from_bits(ks.iter().sum::<u64>() as u32));
                let (mut m, mut model) = new_with_model::<M>(xs.len());
                feed(&mut m, &mut model, &xs);
                assert_rounds_to(name, &m, &model, (sum, sum / xs.len() as f64));
            }
        }
    }
    for_each_impl!(f64, check);
    for_each_impl!(f32, check_f32);
}

#[test]
fn extend_adds_in_order() {
    let xs: Vec<f64> = (0..300).map(|i| f64::from(i) * 0.75 - 100.0).collect();
    for w in [1, 7, 64, 129, 1000] {
        let mut model = Model::new(w);
        xs.iter().for_each(|&x| model.push(x));

        let mut ring = RingAverage::new(w).unwrap();
        ring.extend(xs.iter().copied());
        assert_matches("RingAverage (Extend)", &ring, &model);

        let new_mutex = || MutexAverage::new(w).unwrap();
        extend_owned_and_shared("MutexAverage", new_mutex, &xs, &model);
        let new_sharded = || ShardedAverage::new(w).unwrap();
        extend_owned_and_shared("ShardedAverage", new_sharded, &xs, &model);
        for slack in [SMALL_SLACK, LARGE_SLACK] {
            let new_relaxed = || ShardedAverage::relaxed(w, slack).unwrap();
            extend_owned_and_shared("ShardedAverage::relaxed", new_relaxed, &xs, &model);
        }
    }
}

/// Extends a new moving average from `make` with `xs`, once owned and once through a shared
/// reference, and compares each with `model`.
fn extend_owned_and_shared<M>(name: &str, make: impl Fn() -> M, xs: &[f64], model: &Model<f64>)
where
    M: MovingAverage<Item = f64> + Extend<f64>,
    for<'a> &'a M: Extend<f64>,
{
    let mut owned = make();
    owned.extend(xs.iter().copied());
    assert_matches(&format!("{name} (Extend)"), &owned, model);
    let m = make();
    let mut shared = &m;
    shared.extend(xs.iter().copied());
    assert_matches(&format!("&{name} (Extend)"), &m, model);
}

/// `normal`, or `miri` under Miri, whose interpreter is slow.
fn sized(normal: (usize, usize), miri: (usize, usize)) -> (usize, usize) {
    if cfg!(miri) {
        miri
    } else {
        normal
    }
}

/// A finite `f64` of random sign whose magnitude lies between about `1e-300` and `1e300`
/// (binary exponents -996..=995), every significand bit random.
fn mixed_magnitude(rng: &mut XorShift) -> f64 {
    let r = rng.next_u64();
    let exponent = 1023 - 996 + (r % (996 + 995 + 1));
    let sign = (r >> 63) << 63;
    let x = f64::from_bits(sign | (exponent << 52) | (rng.next_u64() >> 12));
    debug_assert!((1e-300..=1e300).contains(&x.abs()));
    x
}

#[test]
fn ten_million_mixed_magnitude_adds_stay_exact() {
    let (adds, window) = sized((10_000_000, 1000), (2_000, 100));
    let mut ring = RingAverage::<f64>::new(window).unwrap();
    let sharded = ShardedAverage::<f64>::new(window).unwrap();
    let mut model = Model::new(window);
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let early = [
        1,
        2,
        63,
        64,
        65,
        window - 1,
        window,
        window + 1,
        2 * window + 191,
    ];
    for i in 1..=adds {
        let x = mixed_magnitude(&mut rng);
        ring.push(x);
        sharded.push(x);
        model.push(x);
        if (i <= 2 * window + 191 && early.contains(&i)) || i % (adds / 16) == 0 {
            let expected = (model.expected_sum(), model.expected_average());
            for (name, reads) in [
                ("RingAverage", (ring.sum(), ring.average())),
                ("ShardedAverage", (sharded.sum(), sharded.average())),
            ] {
                assert_float_reads(&format!("{name} after {i} adds"), expected, reads);
            }
        }
    }
    assert_matches("RingAverage", &ring, &model);
    assert_matches("ShardedAverage", &sharded, &model);
}

/// The same in the relaxed order, for a tenth of the adds (in a debug build its reads cost
/// more, and its sums are the strict order's machinery): one thread, so exactly the strict
/// window, read every `adds / 64` adds so that reads end batches and leave holes in the stamps.
#[test]
fn a_million_mixed_magnitude_adds_stay_exact_in_the_relaxed_order() {
    let (adds, window) = sized((1_000_000, 1000), (2_000, 100));
    for (name, slack) in [(RELAXED_SMALL, SMALL_SLACK), (RELAXED_LARGE, LARGE_SLACK)] {
        let relaxed = ShardedAverage::<f64>::relaxed(window, slack).unwrap();
        let mut model = Model::new(window);
        let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
        for i in 1..=adds {
            let x = mixed_magnitude(&mut rng);
            relaxed.push(x);
            model.push(x);
            if i % (adds / 64) == 0 || [1, 2, 63, 64, 65, window, window + 1].contains(&i) {
                let expected = (model.expected_sum(), model.expected_average());
                let reads = (relaxed.sum(), relaxed.average());
                assert_float_reads(&format!("{name} after {i} adds"), expected, reads);
            }
        }
        assert_matches(name, &relaxed, &model);
    }
}

#[test]
fn a_nan_that_left_the_window_leaves_no_trace() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        for &w in WINDOWS {
            let (mut m, mut model) = new_with_model::<M>(w);
            let finite: Vec<f64> = (0..w).map(|i| 0.1 * i as f64 - 7.25).collect();
            feed(&mut m, &mut model, &[1e300, f64::NAN]);
            assert!(m.average().unwrap().is_nan() && m.sum().is_nan(), "{name}");
            feed(&mut m, &mut model, &finite[..w - 1]);
            assert!(m.average().unwrap().is_nan(), "{name}: the NaN is still in");
            feed(&mut m, &mut model, &finite[w - 1..]);
            // The window now holds exactly `finite`.
            assert_matches(name, &m, &model);
            let mut fresh = M::with_window(w).unwrap();
            fresh.extend_from(&finite);
            assert_eq!(
                m.sum().to_bits(),
                fresh.sum().to_bits(),
                "{name}, window {w}"
            );
            assert_eq!(
                m.average().map(f64::to_bits),
                fresh.average().map(f64::to_bits)
            );
        }
    }
    fn check_f32<M: MovingAverage<Item = f32>>(name: &str) {
        let (mut m, mut model) = new_with_model::<M>(2);
        feed(&mut m, &mut model, &[f32::NAN, 0.1, 0.2]);
        assert_matches(name, &m, &model);
        assert_eq!(
            m.average(),
            Some((0.1f32 as f64 + 0.2f32 as f64) / 2.0),
            "{name}"
        );
    }
    for_each_impl!(f64, check);
    for_each_impl!(f32, check_f32);
}

#[test]
fn infinities_that_left_the_window_leave_no_trace() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        for &w in WINDOWS.iter().filter(|&&w| w >= 2) {
            let (mut m, mut model) = new_with_model::<M>(w);
            feed(&mut m, &mut model, &[f64::INFINITY]);
            assert_eq!(m.sum(), f64::INFINITY, "{name}");
            assert_eq!(m.average(), Some(f64::INFINITY), "{name}");
            feed(&mut m, &mut model, &[f64::NEG_INFINITY]);
            assert!(
                m.sum().is_nan() && m.average().unwrap().is_nan(),
                "{name}: both signs"
            );
            // Push until +inf leaves: only -inf remains.
            let ones = vec![1.0; w - 1];
            feed(&mut m, &mut model, &ones[..w - 2]);
            assert!(m.sum().is_nan(), "{name}");
            feed(&mut m, &mut model, &[f64::MAX]);
            assert_eq!(m.sum(), f64::NEG_INFINITY, "{name}, window {w}");
            assert_eq!(m.average(), Some(f64::NEG_INFINITY), "{name}, window {w}");
            assert_matches(name, &m, &model);
            // And -inf leaves: finite elements only, the window is [1.0 x (w - 2), MAX, MAX].
            // Its exact sum is out of range (+inf, not NaN from the infinity that left) and
            // its exact mean is finite.
            feed(&mut m, &mut model, &[f64::MAX]);
            assert_matches(name, &m, &model);
            assert_eq!(m.sum(), f64::INFINITY, "{name}, window {w}");
            assert!(m.average().unwrap().is_finite(), "{name}, window {w}");
            feed(&mut m, &mut model, &vec![0.5; w]);
            assert_eq!(m.average(), Some(0.5), "{name}, window {w}");
            assert_eq!(m.sum(), 0.5 * w as f64, "{name}, window {w}");
        }
    }
    for_each_impl!(f64, check);
}

#[test]
fn elements_come_back_bit_for_bit() {
    fn check<M: MovingAverage<Item = f64>>(name: &str) {
        let xs = [
            -0.0,
            f64::from_bits(0x7ff8_0000_0000_1234),
            f64::from_bits(0xfff8_0000_0000_0001),
            f64::from_bits(1),
            f64::NEG_INFINITY,
        ];
        let (mut m, mut model) = new_with_model::<M>(xs.len());
        feed(&mut m, &mut model, &xs);
        assert_matches(name, &m, &model);
        assert_eq!(m.get(0).unwrap().to_bits(), (-0.0f64).to_bits(), "{name}");
    }
    fn check_i8<M: MovingAverage<Item = i8>>(name: &str) {
        let (mut m, mut model) = new_with_model::<M>(4);
        feed(&mut m, &mut model, &[i8::MIN, -1, i8::MAX, 0, -1]);
        assert_matches(name, &m, &model);
        assert_eq!(m.sum(), i8::MAX as i128 - 2, "{name}");
    }
    for_each_impl!(f64, check);
    for_each_impl!(i8, check_i8);
}

#[test]
fn integer_extremes_in_a_large_window_are_exact() {
    let w = if cfg!(miri) { 300 } else { 1 << 16 };
    fn check<T: RefSample, M: MovingAverage<Item = T>>(name: &str, w: usize, xs: &[T]) {
        let (mut m, mut model) = new_with_model::<M>(w);
        for _ in 0..(w + 5).div_ceil(xs.len()) {
            feed(&mut m, &mut model, xs);
        }
        let items = model.to_vec();
        check_sum(m.sum(), &items).unwrap_or_else(|e| panic!("{name}: {e}"));
        check_average(m.average(), &items).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.len(), w, "{name}");
        assert!(same_option(m.oldest(), model.oldest()), "{name}");
        assert!(same_option(m.newest(), model.newest()), "{name}");
    }
    macro_rules! all {
        ($t:ty, $xs:expr) => {
            check::<$t, RingAverage<$t>>("RingAverage", w, $xs);
            check::<$t, MutexAverage<$t>>("MutexAverage", w, $xs);
            check::<$t, ShardedAverage<$t>>("ShardedAverage", w, $xs);
            // (Its reads cost more in a debug build: the large slack only, for this window.)
            check::<$t, Relaxed<$t, LARGE_SLACK>>(RELAXED_LARGE, w, $xs);
        };
    }
    all!(u64, &[u64::MAX]);
    all!(i64, &[i64::MIN]);
    all!(i64, &[i64::MAX]);
    all!(i64, &[i64::MIN, i64::MAX, i64::MIN]);
    all!(u32, &[u32::MAX]);
    all!(i32, &[i32::MIN]);
    all!(i8, &[i8::MIN, i8::MIN, 3]);
    all!(u64, &[u64::MAX, 0, u64::MAX - 1, 1 << 53, (1 << 53) + 1]);
    all!(f64, &[f64::MAX, f64::MAX, -f64::from_bits(1)]);
    all!(f64, &[f64::MIN, 1e-300, -f64::MAX]);
}

#[test]
fn long_histories_wrap_every_ring() {
    fn check<T: RefSample, M: MovingAverage<Item = T>>(
        name: &str,
        value: impl Fn(usize) -> T,
        assert_reads: fn(&str, &M, &Model<T>),
    ) {
        for &w in WINDOWS {
            let (mut m, mut model) = new_with_model::<M>(w);
            let adds = if cfg!(miri) { 2 * w + 5 } else { 20 * w + 700 };
            for i in 0..adds {
                m.push(value(i));
                model.push(value(i));
                if i % (w + 191) == 0 || i + 1 == adds {
                    assert_reads(name, &m, &model);
                }
            }
        }
    }
    macro_rules! all {
        ($t:ty, $f:expr) => {
            check::<$t, RingAverage<$t>>("RingAverage", $f, assert_matches);
            check::<$t, MutexAverage<$t>>("MutexAverage", $f, assert_matches);
            check::<$t, ShardedAverage<$t>>("ShardedAverage", $f, assert_matches);
            check::<$t, Relaxed<$t, SMALL_SLACK>>(RELAXED_SMALL, $f, assert_matches_sampled);
            check::<$t, Relaxed<$t, LARGE_SLACK>>(RELAXED_LARGE, $f, assert_matches_sampled);
        };
    }
    all!(i64, |i| i as i64 * 0x1_0000_0001 - (1 << 40));
    all!(u8, |i| (i * 7) as u8);
    all!(f64, |i| (i as f64 - 1000.5) * 1e-3);
    all!(f32, |i| f32::from_bits(
        (i as u32).wrapping_mul(0x0010_0001) % 0x7f80_0000
    ));
}

/// [`assert_matches`] with `get` at a few indices rather than every one: in the relaxed order
/// each `get` searches for the window's start, which in a debug build costs tens of
/// microseconds, too much for every element of every window of a long history. `to_vec`
/// still checks every element.
fn assert_matches_sampled<T: RefSample, M: MovingAverage<Item = T>>(
    name: &str,
    m: &M,
    model: &Model<T>,
) {
    let items = model.to_vec();
    let v = m.to_vec();
    assert!(
        same_slice(&v, &items),
        "{name}: to_vec() = {}, expected {}",
        abbreviate(&v),
        abbreviate(&items)
    );
    assert_eq!(m.len(), items.len(), "{name}: len()");
    assert_eq!(m.is_full(), model.is_full(), "{name}: is_full()");
    check_sum(m.sum(), &items).unwrap_or_else(|e| panic!("{name}: {e}"));
    check_average(m.average(), &items).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(same_option(m.oldest(), model.oldest()), "{name}: oldest()");
    assert!(same_option(m.newest(), model.newest()), "{name}: newest()");
    let n = items.len();
    for i in [
        0,
        1,
        n / 3,
        n / 2,
        n.saturating_sub(2),
        n.saturating_sub(1),
        n,
        usize::MAX,
    ] {
        assert!(same_option(m.get(i), model.get(i)), "{name}: get({i})");
    }
}

// ---------------------------------------------------------------------------------------------
// Crate bug: a negative exact float sum equal to minus a power of two at a 32-bit digit
// boundary reads as zero.
// ---------------------------------------------------------------------------------------------

/// A negative exact sum of `-2^(32 (hi + 1))` in limb units has all digits zero and a final
/// carry of `-1`: the sign digit must take part in the negation, or the sum reads as `0.0`
/// (a bug found by these tests, fixed in `src/exact.rs`). For `RingAverage` / `MutexAverage`
/// it takes 8192 copies of `-2^33` (digit position 32*32+31 in units of 2^-1074, so the
/// span's top limb is 34 and the sum `-2^46` is `-2^(32*35 - 1074)`).
#[test]
fn negative_power_of_two_sum_at_a_digit_boundary_ring() {
    let (w, x, sum) = (8192, -(pow2(33)), -(pow2(46)));
    check_copies::<RingAverage<f64>>("RingAverage", w, x, sum);
    check_copies::<MutexAverage<f64>>("MutexAverage", w, x, sum);
}

/// Fills a window of `w` with copies of `x`: the sum must read `sum`, the average `x`, and
/// every read must agree with the model.
fn check_copies<M: MovingAverage<Item = f64>>(name: &str, w: usize, x: f64, sum: f64) {
    let (mut m, mut model) = new_with_model::<M>(w);
    feed(&mut m, &mut model, &vec![x; w]);
    assert_eq!(m.sum(), sum, "{name}");
    assert_eq!(m.average(), Some(x), "{name}");
    assert_matches(name, &m, &model);
}

/// The same for `ShardedAverage` (strict, and relaxed with the large slack), whose reads use the full span of 66 limbs:
/// the exact sum `-2^1038` (32768 copies of `-2^1023`) must read as `-inf` with average
/// `-2^1023`.
#[test]
fn negative_power_of_two_sum_at_a_digit_boundary_sharded() {
    let (w, x, sum) = (32768, -(pow2(1023)), f64::NEG_INFINITY);
    check_copies::<ShardedAverage<f64>>("ShardedAverage", w, x, sum);
    check_copies::<Relaxed<f64, LARGE_SLACK>>(RELAXED_LARGE, w, x, sum);
}

// ---------------------------------------------------------------------------------------------
// The oracle, checked against IEEE arithmetic (one correctly rounded operation each)
// ---------------------------------------------------------------------------------------------

#[test]
fn oracle_agrees_with_ieee_addition_and_division() {
    let mut rng = XorShift::new(12345);
    let interesting = f64_specials()
        .into_iter()
        .filter(|x| x.is_finite())
        .collect::<Vec<_>>();
    let n = if cfg!(miri) { 50 } else { 20_000 };
    for i in 0..n {
        let pick = |rng: &mut XorShift| match rng.next_u64() % 4 {
            0 => interesting[(rng.next_u64() % interesting.len() as u64) as usize],
            1 => f64::from_bits(rng.next_u64() % 0x0020_0000_0000_0000), // subnormal and tiny normal
            2 => mixed_magnitude(rng),
            _ => loop {
                let x = f64::from_bits(rng.next_u64());
                if x.is_finite() {
                    break x;
                }
            },
        };
        let (x, y) = (pick(&mut rng), pick(&mut rng));
        // Near-cancellation too.
        let y = if i % 5 == 0 && next_away(x).is_finite() {
            -next_away(x)
        } else {
            y
        };
        let exact = exact_f64(x) + exact_f64(y);
        let got = round_exact(&exact, 1, 1074);
        let want = x + y;
        if want == 0.0 {
            assert_eq!(got, 0.0, "{x:e} + {y:e}");
        } else {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{x:e} + {y:e}: {got:e} vs {want:e}"
            );
        }
    }
    for _ in 0..n {
        let a = (rng.next_u64() >> 11) as i64 * if rng.next_u64() % 2 == 0 { 1 } else { -1 };
        let b = (rng.next_u64() >> (11 + rng.next_u64() % 50)).max(1);
        let got = round_exact(&num_bigint::BigInt::from(a), b, 0);
        assert_eq!(got.to_bits(), (a as f64 / b as f64).to_bits(), "{a} / {b}");
    }
    // Overflow boundary: MAX + half an ulp of MAX ties to infinity, just below stays MAX.
    let max = exact_f64(f64::MAX);
    let half_ulp = big_pow2(970);
    assert_eq!(
        round_exact(&(&max + &half_ulp), 1, 1074 - 1074),
        f64::INFINITY
    );
    let scaled_half_ulp = half_ulp << 1074u32;
    assert_eq!(
        round_exact(&(&max + &scaled_half_ulp - 1), 1, 1074),
        f64::MAX
    );
    assert_eq!(
        round_exact(&(&max + &scaled_half_ulp), 1, 1074),
        f64::INFINITY
    );
    assert_eq!(
        round_exact(&-(&max + &scaled_half_ulp), 1, 1074),
        f64::NEG_INFINITY
    );
    // Underflow: half the smallest subnormal ties to (signed) zero, above it rounds up.
    assert_eq!(round_exact(&1.into(), 2, 1074).to_bits(), 0);
    assert_eq!(
        round_exact(&(-1).into(), 2, 1074).to_bits(),
        (-0.0f64).to_bits()
    );
    assert_eq!(round_exact(&3.into(), 4, 1074), f64::from_bits(1));
    assert_eq!(round_exact(&3.into(), 2, 1074), f64::from_bits(2));
    // f32 decoding agrees with the f64 decoding of the same value.
    for _ in 0..n {
        let x = f32::from_bits(rng.next_u64() as u32);
        if x.is_finite() {
            let Exact::Finite(v32) = x.exact() else {
                unreachable!()
            };
            assert_eq!(v32 << (1074 - 149), exact_f64(f64::from(x)), "{x:e}");
        }
    }
    assert_eq!(next_down(next_up(1.0)), 1.0);
    assert_eq!(next_up(f64::MAX), f64::INFINITY);
    assert_eq!(next_up(0.0), f64::from_bits(1));
}
