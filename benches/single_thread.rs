//! One thread: add, add+read and read, for the crate's three implementations and the peers.
//!
//! Groups are `add/<type>`, `add_read/<type>` and `read/<type>` for `f64` and `i64`; each
//! benchmark is `BenchmarkId::new(implementation, window)`, so criterion's report for a group
//! compares implementations at each window. One iteration is one operation
//! (`Throughput::Elements(1)`):
//!
//! * `add`: push one value into a full window (so it also evicts one);
//! * `add_read`: push one value, then read the average;
//! * `read`: read the average of a full window, nothing added.
//!
//! The values come from `common::F64S` / `common::I64S`, precomputed. Every structure is built
//! and filled (with `window + 32` values, see `FILL_EXTRA`) before timing starts. The structure
//! is passed through `black_box` on every operation, so that no implementation keeps its state
//! in registers across operations, as none could when called from real code.
//!
//! Peers (all drifting running sums unless said otherwise):
//!
//! * `SingleSumSMA` and `SumTreeSMA` from `simple_moving_average` (the window is a const
//!   generic: the structures for a window of 1,000,000 hold an 8 MB inline array, so they are
//!   built and boxed on a helper thread with a large stack and only ever used through the box);
//!   `SumTreeSMA` keeps a tree of partial sums, which does not drift (O(log N) per add);
//! * `movavg::MovAvg` (also a const generic window). For `f64` it re-sums the whole window on
//!   every add unless its `fastfloat` feature is on (it is not here), so its add is O(N); for
//!   `i64` it keeps a running sum with overflow checks;
//! * `ta::indicators::SimpleMovingAverage` (`f64` only; it has no way to read the average
//!   without adding, so it has no `read` benchmark and its `add_read` is one `next` call);
//! * `yata::methods::SMA` (`f64` only; `next` adds, `peek` reads; built with the
//!   `period_type_u32` feature, since its default `u8` period caps windows at 255);
//! * `Mutex<VecDeque>`: the naive shared baseline, a `VecDeque` and a running sum (drifting
//!   for `f64`, wrapping-free `i64` for small integers) behind `std::sync::Mutex`.

mod common;

use std::collections::VecDeque;
use std::hint::black_box;
use std::ops::{AddAssign, SubAssign};
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use mavg::{MutexAverage, RingAverage, ShardedAverage, SharedMovingAverage};
use num_traits::ToPrimitive;
use simple_moving_average::{SingleSumSMA, SumTreeSMA, SMA};
use yata::core::{Method, PeriodType};
use yata::helpers::Peekable;

use common::{F64S, I64S, MASK, WINDOWS};

/// The three operations measured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    AddRead,
    Read,
}

impl Op {
    fn group(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::AddRead => "add_read",
            Op::Read => "read",
        }
    }
}

/// What a benchmark needs from an implementation: adding, and reading the average if it can.
trait Subject<V>: Send + 'static {
    fn add(&mut self, v: V);

    /// The average, or `None` if the implementation has no read that does not add.
    fn read(&self) -> Option<f64>;

    fn add_read(&mut self, v: V) -> f64 {
        self.add(v);
        self.read().unwrap_or(f64::NAN)
    }
}

/// Implements [`Subject`] for each `impl[generics] Subject<V> for Type`, adding by `add` and
/// reading by `read` (closures over the structure and the value, inlined into the methods).
macro_rules! subjects {
    ($(
        impl[$($generics:tt)*] Subject<$v:ty> for $ty:ty {
            add: |$s:ident, $x:ident| $add:expr,
            read: |$r:ident| $read:expr $(,)?
        }
    )*) => {$(
        impl<$($generics)*> Subject<$v> for $ty {
            #[inline]
            fn add(&mut self, $x: $v) {
                let $s = self;
                $add;
            }
            #[inline]
            fn read(&self) -> Option<f64> {
                let $r = self;
                $read
            }
        }
    )*};
}

subjects! {
    impl[T: mavg::Sample] Subject<T> for RingAverage<T> {
        add: |s, v| s.push(v),
        read: |s| s.average(),
    }
    impl[T: mavg::Sample] Subject<T> for MutexAverage<T> {
        add: |s, v| SharedMovingAverage::push(&*s, v),
        read: |s| s.average(),
    }
    impl[T: mavg::Sample] Subject<T> for ShardedAverage<T> {
        add: |s, v| SharedMovingAverage::push(&*s, v),
        read: |s| s.average(),
    }
    impl[] Subject<f64> for yata::methods::SMA {
        add: |s, v| Method::next(s, &v),
        read: |s| Some(s.peek()),
    }
}

/// Implements [`Subject`] of `f64` and of `i64` for each peer `Type: add, read` whose window
/// is a const generic, adding by its method `add` and reading by `read`.
macro_rules! window_peers {
    ($($($ty:ident)::+: $add:ident, $read:ident;)*) => {
        subjects! {$(
            impl[const N: usize] Subject<f64> for $($ty)::+<f64, f64, N> {
                add: |s, v| s.$add(v),
                read: |s| Some(s.$read()),
            }
            impl[const N: usize] Subject<i64> for $($ty)::+<i64, i64, N> {
                add: |s, v| s.$add(v),
                read: |s| Some(s.$read() as f64),
            }
        )*}
    };
}

window_peers! {
    SingleSumSMA: add_sample, get_average;
    SumTreeSMA: add_sample, get_average;
    movavg::MovAvg: feed, get;
}

impl Subject<f64> for ta::indicators::SimpleMovingAverage {
    #[inline]
    fn add(&mut self, v: f64) {
        ta::Next::next(self, v);
    }
    fn read(&self) -> Option<f64> {
        None
    }
    #[inline]
    fn add_read(&mut self, v: f64) -> f64 {
        ta::Next::next(self, v)
    }
}

/// The naive shared moving average: a deque and a running sum behind a mutex.
struct Naive<T> {
    inner: Mutex<(VecDeque<T>, T)>,
    window: usize,
}

impl<T: Default> Naive<T> {
    fn new(window: usize) -> Self {
        Naive {
            inner: Mutex::new((VecDeque::with_capacity(window), T::default())),
            window,
        }
    }
}

impl<T> Subject<T> for Naive<T>
where
    T: Copy + Send + AddAssign + SubAssign + ToPrimitive + 'static,
{
    #[inline]
    fn add(&mut self, v: T) {
        let mut g = self.inner.lock().unwrap();
        let (buf, sum) = &mut *g;
        if buf.len() == self.window {
            *sum -= buf.pop_front().unwrap();
        }
        buf.push_back(v);
        *sum += v;
    }
    #[inline]
    fn read(&self) -> Option<f64> {
        let g = self.inner.lock().unwrap();
        // `to_f64` is the identity for `f64` and `as f64` for `i64`.
        (!g.0.is_empty()).then(|| g.1.to_f64().unwrap() / g.0.len() as f64)
    }
}

/// Every structure is filled with `window + FILL_EXTRA` values before it is timed: full, and
/// (for `ShardedAverage`, whose reads add up the elements since the last checkpoint of 64 at
/// both ends of the window) half-way between checkpoints rather than on one, the average case.
const FILL_EXTRA: usize = 32;

/// Builds a subject and fills its window on a helper thread with a 256 MiB stack, returning it
/// boxed: the const-generic peers at a window of 1,000,000 are 8 to 16 MB values, which would
/// overflow the main thread's stack if built there.
fn build<V: Copy + Send + Sync + 'static, S: Subject<V>>(
    window: usize,
    values: &'static [V],
    make: impl FnOnce() -> S + Send + 'static,
    prefilled: bool,
) -> Box<S> {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut s = Box::new(make());
            if !prefilled {
                for i in 0..window + FILL_EXTRA {
                    s.add(values[i & MASK]);
                }
            }
            s
        })
        .expect("spawn builder thread")
        .join()
        .expect("builder thread")
}

/// A `movavg::MovAvg` whose window is already full of `values`: filling it by `feed` would
/// re-sum the window on every add (O(N^2) for `f64` at N = 1,000,000).
fn movavg_full<T, const N: usize>(values: &'static [T]) -> movavg::MovAvg<T, T, N>
where
    T: num_traits::Num + num_traits::NumCast + Copy + movavg::MovAvgAccu<T>,
{
    let mut buf = [T::zero(); N];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = values[(i + FILL_EXTRA) & MASK];
    }
    movavg::MovAvg::new_init(buf, N)
}

/// Runs one benchmark of `op` on a subject built by `make`.
fn bench<V: Copy + Send + Sync + 'static, S: Subject<V>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    op: Op,
    name: &str,
    window: usize,
    values: &'static [V],
    make: impl FnOnce() -> S + Send + 'static,
    prefilled: bool,
) {
    let mut s = build(window, values, make, prefilled);
    if op == Op::Read && s.read().is_none() {
        return;
    }
    let id = BenchmarkId::new(name, window);
    // Start where the fill stopped, so the sequence continues as if pushed without a break.
    let mut i = window + FILL_EXTRA;
    match op {
        Op::Add => g.bench_function(id, |b| {
            b.iter(|| {
                let v = values[i & MASK];
                i = i.wrapping_add(1);
                black_box(&mut *s).add(black_box(v));
            })
        }),
        Op::AddRead => g.bench_function(id, |b| {
            b.iter(|| {
                let v = values[i & MASK];
                i = i.wrapping_add(1);
                black_box(black_box(&mut *s).add_read(black_box(v)))
            })
        }),
        Op::Read => g.bench_function(id, |b| b.iter(|| black_box(black_box(&*s).read()))),
    };
}

/// Registers one benchmark of `$op` per subject at window `$n`: the crate's three
/// implementations, the peers that take every element type, and the `extra` ones given as
/// `name => constructor`, in the row order of the reports. A macro, not a table: every subject
/// is its own type, and one trait object for all would add a dynamic call to what is measured.
macro_rules! bench_subjects {
    (
        $g:expr, $op:expr, $t:ty, $n:ident, $values:expr,
        extra: [$($name:literal => $make:expr),* $(,)?]
    ) => {{
        let (g, op, values): (_, _, &'static [$t]) = ($g, $op, $values);
        bench(g, op, "RingAverage", $n, values, || RingAverage::<$t>::new($n).unwrap(), false);
        bench(g, op, "MutexAverage", $n, values, || MutexAverage::<$t>::new($n).unwrap(), false);
        let sharded = || ShardedAverage::<$t>::new($n).unwrap();
        bench(g, op, "ShardedAverage", $n, values, sharded, false);
        let relaxed = || ShardedAverage::<$t>::relaxed($n, RELAXED_SLACK).unwrap();
        bench(g, op, "ShardedAverage_relaxed", $n, values, relaxed, false);
        bench(g, op, "SingleSumSMA", $n, values, SingleSumSMA::<$t, $t, $n>::new, false);
        bench(g, op, "SumTreeSMA", $n, values, SumTreeSMA::<$t, $t, $n>::new, false);
        // Built full (`prefilled`): filling it by adds would take O(N^2).
        bench(g, op, "movavg", $n, values, move || movavg_full::<$t, $n>(values), true);
        $(bench(g, op, $name, $n, values, $make, false);)*
        bench(g, op, "Mutex<VecDeque>", $n, values, || Naive::<$t>::new($n), false);
    }};
}

fn f64_window<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>, op: Op) {
    bench_subjects!(g, op, f64, N, &F64S, extra: [
        "ta" => || ta::indicators::SimpleMovingAverage::new(N).unwrap(),
        "yata" => || yata::methods::SMA::new(N as PeriodType, &0.0).unwrap(),
    ]);
}

fn i64_window<const N: usize>(g: &mut BenchmarkGroup<'_, WallTime>, op: Op) {
    bench_subjects!(g, op, i64, N, &I64S, extra: []);
}

/// Registers the benchmarks of one window of `op` on a group.
type Window = fn(&mut BenchmarkGroup<'_, WallTime>, Op);

/// The group `<op>/<ty>` (one operation per iteration) with the benchmarks of each window.
fn window_group(c: &mut Criterion, op: Op, ty: &str, windows: [Window; 3]) {
    let mut g = c.benchmark_group(format!("{}/{ty}", op.group()));
    g.throughput(Throughput::Elements(1));
    for window in windows {
        window(&mut g, op);
    }
    g.finish();
}

fn single_thread(c: &mut Criterion) {
    for op in [Op::Add, Op::AddRead, Op::Read] {
        let f64_windows: [Window; 3] = [
            f64_window::<{ WINDOWS[0] }>,
            f64_window::<{ WINDOWS[1] }>,
            f64_window::<{ WINDOWS[2] }>,
        ];
        window_group(c, op, "f64", f64_windows);
        let i64_windows: [Window; 3] = [
            i64_window::<{ WINDOWS[0] }>,
            i64_window::<{ WINDOWS[1] }>,
            i64_window::<{ WINDOWS[2] }>,
        ];
        window_group(c, op, "i64", i64_windows);
    }
}

/// Window of the special-case reads below.
const SPECIAL_N: usize = 1024;

/// The slack of the relaxed `ShardedAverage` rows (as in `benches/threads.rs`).
const RELAXED_SLACK: usize = 4096;

/// A window of `2^53` and `2^53 + 2` in turn: its mean, `2^53 + 1`, is a rounding tie, so
/// every read fails the certificate and takes the full exact path (the worst case).
fn tie_window() -> RingAverage<f64> {
    let mut m = RingAverage::new(SPECIAL_N).unwrap();
    for i in 0..SPECIAL_N + 32 {
        m.push(9007199254740992.0 + 2.0 * (i % 2) as f64);
    }
    assert_eq!(m.average(), Some(9007199254740992.0)); // the tie goes to even
    m
}

/// A `ShardedAverage` with two shards, filled by two threads taking turns (the steady state of
/// two busy workers): both shards hold half of the window.
fn two_shard_window(window: usize, slack: usize) -> ShardedAverage<f64> {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let m = ShardedAverage::relaxed_with_shards(window, slack, 2).unwrap();
    let turn = AtomicUsize::new(0);
    let total = 2 * window + 64;
    std::thread::scope(|s| {
        for t in 0..2 {
            let (m, turn) = (&m, &turn);
            s.spawn(move || loop {
                let i = turn.load(SeqCst);
                if i >= total {
                    break;
                }
                if i % 2 == t {
                    SharedMovingAverage::push(m, F64S[i & MASK]);
                    turn.store(i + 1, SeqCst);
                } else {
                    std::hint::spin_loop();
                }
            });
        }
    });
    assert_eq!(m.shard_count(), 2);
    m
}

/// Reads outside the common case: the worst case for the certificate, and a sharded read
/// over two shards.
fn special_reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_special/f64");
    g.throughput(Throughput::Elements(1));
    // Each step pushes the next of the alternating values, so the window stays a tie and
    // every read takes the full exact path.
    let mut tie = tie_window();
    let mut i = 0usize;
    g.bench_function(
        BenchmarkId::new("RingAverage_tie_add_read", SPECIAL_N),
        |b| {
            b.iter(|| {
                i += 1;
                let m = black_box(&mut tie);
                m.push(9007199254740992.0 + 2.0 * (i % 2) as f64);
                black_box(m.average())
            })
        },
    );
    for (name, slack) in [
        ("ShardedAverage_2_shards_read", 0),
        ("ShardedAverage_relaxed_2_shards_read", RELAXED_SLACK),
    ] {
        for window in [SPECIAL_N, 1_000_000] {
            let sharded = two_shard_window(window, slack);
            g.bench_function(BenchmarkId::new(name, window), |b| {
                b.iter(|| black_box(black_box(&sharded).average()))
            });
        }
    }
    g.finish();
}

fn main() {
    let mut c = common::config(Duration::from_millis(400), Duration::from_millis(1200), 30);
    single_thread(&mut c);
    special_reads(&mut c);
    c.final_summary();
}
