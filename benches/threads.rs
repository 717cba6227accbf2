//! Several threads at once: add throughput, and a mixed workload with 1% reads.
//!
//! Groups `push/threads` and `mixed/threads` (every 100th operation of each thread is an
//! `average()`, the other 99 are adds), at 1, 2, 4 and 8 threads on a window of 1024 `f64`
//! latencies, for [`MutexAverage`], [`ShardedAverage`] and, as the floor that any design giving
//! adds one global order pays, a bare shared `AtomicU64::fetch_add` counter (in `mixed`, its
//! reads are plain loads of the counter). A fourth row, `per_thread`, increments one
//! cache-padded counter per thread: nothing is shared, so it is the ceiling, and it shows
//! whether the threads actually ran in parallel on the shared machine during the run.
//!
//! # How it is timed
//!
//! Following the shape of hawkw/sharded-slab's benchmarks: each call of criterion's
//! `iter_custom` spawns the worker threads, which wait on a `std::sync::Barrier`; the main
//! thread waits on it too, takes the start time when the barrier releases everyone, and the
//! end time when the last worker reaches a second barrier. Thread creation is not timed.
//!
//! **Each thread performs `iters` operations**, so one criterion iteration is `threads`
//! operations run in parallel, and the group's throughput is set to
//! `Throughput::Elements(threads)`: criterion's elements per second is the total throughput
//! of all threads. (The time per iteration is therefore the wall time of `threads`
//! operations, not of one.) With 4 and 8 threads the 2-core machine is oversubscribed.
//!
//! The structure under test is created once per benchmark, filled to a full window, and
//! reused by every sample; the `ShardedAverage` is created with one shard per thread, and the
//! shards are reclaimed by the next sample's threads when the previous ones exit (the shard
//! count at the end of each benchmark is printed on stderr).
//!
//! The relaxed order ([`ShardedAverage::relaxed`], slack [`SLACK`]) is the row
//! `ShardedAverage_relaxed`; the plain `ShardedAverage` row is the strict order of `new`.
//!
//! # Fixed-time runs
//!
//! `MAVG_FIXED=1 cargo bench --bench threads` runs each implementation for a fixed time
//! ([`FIXED_MS`] ms) at 1, 2 and 4 threads, [`FIXED_RUNS`] times, and prints the median total
//! adds per second, the spread of the runs, and each thread's share of the adds in the median
//! run, for two loops: the tight loop of `push/threads`, and a service-like loop with
//! [`WORK`] rounds of integer arithmetic (a few tens of ns) between adds. The implementations
//! alternate within each round of runs, so slow drifts of the shared machine hit all alike.
//!
//! # Memory table
//!
//! `MAVG_MEMORY=1 cargo bench --bench threads` prints the bytes of state per window element
//! of each implementation (measured: `size_of` plus allocated capacity, and
//! `ShardedAverage::memory_bytes()` at 1, 2, 4 and 8 shards) and exits without benchmarking.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::CachePadded;
use mavg::{MutexAverage, RingAverage, ShardedAverage, SharedMovingAverage};

use common::{F64S, MASK, WINDOWS};

const WINDOW: usize = 1024;
const THREADS: [usize; 4] = [1, 2, 4, 8];
/// In `mixed`, every `READ_EVERY`-th operation is a read.
const READ_EVERY: u64 = 100;
/// The relaxed order's slack in the benchmarks: batches of up to `4096 / (2 S)` tickets.
const SLACK: usize = 4096;
/// Length of one fixed-time run, in milliseconds.
const FIXED_MS: u64 = 300;
/// Fixed-time runs per implementation and loop; the median is reported.
const FIXED_RUNS: usize = 3;
/// Rounds of xorshift between two adds in the service-like loop.
const WORK: u32 = 24;

/// The implementations under test, as the worker threads see them.
trait Shared: Sync {
    /// Adds `v`; `thread` is the calling worker's index.
    fn add(&self, thread: usize, v: f64);
    fn read(&self, thread: usize) -> f64;
}

impl Shared for MutexAverage<f64> {
    #[inline]
    fn add(&self, _: usize, v: f64) {
        SharedMovingAverage::push(self, v);
    }
    #[inline]
    fn read(&self, _: usize) -> f64 {
        self.average().unwrap_or(0.0)
    }
}

impl Shared for ShardedAverage<f64> {
    #[inline]
    fn add(&self, _: usize, v: f64) {
        self.push(v);
    }
    #[inline]
    fn read(&self, _: usize) -> f64 {
        self.average().unwrap_or(0.0)
    }
}

/// The floor: one contended read-modify-write per add, nothing else.
struct FetchAdd(CachePadded<AtomicU64>);

impl Shared for FetchAdd {
    #[inline]
    fn add(&self, _: usize, _: f64) {
        self.0.fetch_add(1, SeqCst);
    }
    #[inline]
    fn read(&self, _: usize) -> f64 {
        self.0.load(SeqCst) as f64
    }
}

/// The ceiling, and a check that the threads really ran in parallel: each thread increments
/// its own cache-padded counter, so no cache line is written by two threads. Total throughput
/// should grow with threads up to the number of free cores; if it does not, the machine was
/// busy and the other rows at that thread count are not a contention measurement.
struct PerThread(Vec<CachePadded<AtomicU64>>);

impl PerThread {
    fn new(threads: usize) -> Self {
        PerThread(
            (0..threads)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        )
    }
}

impl Shared for PerThread {
    #[inline]
    fn add(&self, thread: usize, _: f64) {
        self.0[thread].fetch_add(1, SeqCst);
    }
    #[inline]
    fn read(&self, thread: usize) -> f64 {
        self.0[thread].load(SeqCst) as f64
    }
}

/// Runs `iters` operations on each of `threads` threads released together; returns the wall
/// time from the release to the last thread's finish.
fn run<S: Shared>(subject: &S, threads: usize, iters: u64, mixed: bool) -> Duration {
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (start, end) = (&start, &end);
            s.spawn(move || {
                let values: &[f64] = &F64S;
                // Each thread walks the values from its own offset.
                let mut i = t * 997;
                start.wait();
                if mixed {
                    let mut until_read = READ_EVERY;
                    for _ in 0..iters {
                        until_read -= 1;
                        if until_read == 0 {
                            until_read = READ_EVERY;
                            black_box(subject.read(t));
                        } else {
                            subject.add(t, values[i & MASK]);
                            i = i.wrapping_add(1);
                        }
                    }
                } else {
                    for _ in 0..iters {
                        subject.add(t, values[i & MASK]);
                        i = i.wrapping_add(1);
                    }
                }
                end.wait();
            });
        }
        start.wait();
        let t0 = Instant::now();
        end.wait();
        t0.elapsed()
    })
}

/// One benchmark of `subject`, named `name`, with `threads` threads adding (and reading, if
/// `mixed`).
fn bench<S: Shared>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    threads: usize,
    mixed: bool,
    subject: &S,
) {
    g.bench_with_input(BenchmarkId::new(name, threads), &threads, |b, &n| {
        b.iter_custom(|iters| run(subject, n, iters, mixed))
    });
}

/// Fills the window of `m` from a thread of its own, which has ended on return.
fn fill_elsewhere(mut m: &ShardedAverage<f64>) {
    std::thread::scope(|s| {
        s.spawn(move || m.extend(F64S.iter().copied().take(WINDOW)));
    });
}

fn threads(c: &mut Criterion) {
    for (group, mixed) in [("push/threads", false), ("mixed/threads", true)] {
        let mut g = c.benchmark_group(group);
        for threads in THREADS {
            g.throughput(Throughput::Elements(threads as u64));

            let mutex = MutexAverage::<f64>::new(WINDOW).unwrap();
            (&mutex).extend(F64S.iter().copied().take(WINDOW));
            bench(&mut g, "MutexAverage", threads, mixed, &mutex);

            let sharded = ShardedAverage::<f64>::with_shards(WINDOW, threads).unwrap();
            fill_elsewhere(&sharded);
            bench(&mut g, "ShardedAverage", threads, mixed, &sharded);
            // A thread's shard is released by a thread-local destructor, which may still be
            // running when the next sample's threads start; those then link a new shard.
            eprintln!(
                "{group}: ShardedAverage with {threads} threads ended with {} shards",
                sharded.shard_count()
            );

            let relaxed =
                ShardedAverage::<f64>::relaxed_with_shards(WINDOW, SLACK, threads).unwrap();
            fill_elsewhere(&relaxed);
            bench(&mut g, "ShardedAverage_relaxed", threads, mixed, &relaxed);

            let floor = FetchAdd(CachePadded::new(AtomicU64::new(0)));
            bench(&mut g, "fetch_add", threads, mixed, &floor);

            let ceiling = PerThread::new(threads);
            bench(&mut g, "per_thread", threads, mixed, &ceiling);
        }
        g.finish();
    }
}

/// The bytes of a `RingAverage` of `window` values: the struct (which holds the exact
/// accumulator inline) plus the buffer, whose capacity `new` reserves exactly.
fn ring_bytes<T: mavg::Sample>(window: usize) -> usize {
    let ring = RingAverage::<T>::new(window).unwrap();
    size_of_val(&ring) + ring.window() * size_of::<T>()
}

/// The bytes of a `MutexAverage` of `window` values: the struct plus the buffer.
fn mutex_bytes<T: mavg::Sample>(window: usize) -> usize {
    let mutex = MutexAverage::<T>::new(window).unwrap();
    size_of_val(&mutex) + window * size_of::<T>()
}

/// Prints the memory table (markdown) for `notes/benchmarks.md`.
fn print_memory() {
    fn row(name: &str, ty: &str, window: usize, bytes: usize) {
        println!(
            "| {name} | {ty} | {window} | {bytes} | {:.2} |",
            bytes as f64 / window as f64
        );
    }
    println!("| implementation | type | window | bytes | bytes per element |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for window in WINDOWS {
        row("RingAverage", "f64", window, ring_bytes::<f64>(window));
        row("RingAverage", "i64", window, ring_bytes::<i64>(window));
        row("MutexAverage", "f64", window, mutex_bytes::<f64>(window));
        row("MutexAverage", "i64", window, mutex_bytes::<i64>(window));
        for shards in [1, 2, 4, 8] {
            let name = format!(
                "ShardedAverage, {shards} shard{}",
                if shards > 1 { "s" } else { "" }
            );
            let m = ShardedAverage::<f64>::with_shards(window, shards).unwrap();
            assert_eq!(m.shard_count(), shards);
            row(&name, "f64", window, m.memory_bytes());
            let m = ShardedAverage::<i64>::with_shards(window, shards).unwrap();
            row(&name, "i64", window, m.memory_bytes());
        }
        // The naive baseline: a VecDeque with the window's capacity and a running sum.
        let naive = std::sync::Mutex::new((
            std::collections::VecDeque::<f64>::with_capacity(window),
            0.0f64,
        ));
        let cap = naive.lock().unwrap().0.capacity();
        row(
            "Mutex<VecDeque> (naive)",
            "f64",
            window,
            size_of_val(&naive) + cap * size_of::<f64>(),
        );
    }
}

/// Some integer work standing in for what a service does between two adds.
#[inline]
fn work(mut x: u64) -> u64 {
    for _ in 0..WORK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// One fixed-time run: `threads` threads add (with `work` between adds if `service`) until
/// [`FIXED_MS`] have passed. Returns the total adds per second and each thread's adds.
fn fixed<S: Shared>(subject: &S, threads: usize, service: bool) -> (f64, Vec<u64>) {
    use std::sync::atomic::AtomicBool;
    let start = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (start, stop) = (&start, &stop);
                s.spawn(move || {
                    let values: &[f64] = &F64S;
                    let mut i = t * 997;
                    let mut x = 0x9e37_79b9_7f4a_7c15 ^ t as u64;
                    let mut adds = 0u64;
                    start.wait();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for _ in 0..256 {
                            if service {
                                x = work(x);
                                subject.add(t, values[(x as usize) & MASK]);
                            } else {
                                subject.add(t, values[i & MASK]);
                                i = i.wrapping_add(1);
                            }
                        }
                        adds += 256;
                    }
                    black_box(x);
                    adds
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_millis(FIXED_MS));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let adds: Vec<u64> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        let secs = t0.elapsed().as_secs_f64();
        (adds.iter().sum::<u64>() as f64 / secs, adds)
    })
}

/// Prints the fixed-time table (markdown) for `notes/benchmarks.md`.
fn print_fixed() {
    println!("| loop | threads | implementation | M adds/s (median) | runs (min..max) | shares of the median run |");
    println!("| --- | ---: | --- | ---: | ---: | --- |");
    for service in [false, true] {
        for threads in [1, 2, 4] {
            let mutex = MutexAverage::<f64>::new(WINDOW).unwrap();
            let strict = ShardedAverage::<f64>::with_shards(WINDOW, threads).unwrap();
            let relaxed =
                ShardedAverage::<f64>::relaxed_with_shards(WINDOW, SLACK, threads).unwrap();
            let ceiling = PerThread::new(threads);
            let floor = FetchAdd(CachePadded::new(AtomicU64::new(0)));
            let names = [
                "MutexAverage",
                "ShardedAverage (strict)",
                "ShardedAverage (relaxed)",
                "fetch_add",
                "per_thread",
            ];
            let mut runs: Vec<Vec<(f64, Vec<u64>)>> = vec![Vec::new(); names.len()];
            for _ in 0..FIXED_RUNS {
                runs[0].push(fixed(&mutex, threads, service));
                runs[1].push(fixed(&strict, threads, service));
                runs[2].push(fixed(&relaxed, threads, service));
                runs[3].push(fixed(&floor, threads, service));
                runs[4].push(fixed(&ceiling, threads, service));
            }
            for (name, mut r) in names.iter().zip(runs) {
                r.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (median, adds) = &r[r.len() / 2];
                let total: u64 = adds.iter().sum();
                let shares: Vec<String> = adds
                    .iter()
                    .map(|&a| format!("{:.0}%", 100.0 * a as f64 / total as f64))
                    .collect();
                println!(
                    "| {} | {threads} | {name} | {:.1} | {:.1}..{:.1} | {} |",
                    if service { "service-like" } else { "tight" },
                    median / 1e6,
                    r[0].0 / 1e6,
                    r[r.len() - 1].0 / 1e6,
                    shares.join(" ")
                );
            }
        }
    }
}

fn main() {
    if std::env::var_os("MAVG_MEMORY").is_some() {
        print_memory();
        return;
    }
    if std::env::var_os("MAVG_FIXED").is_some() {
        print_fixed();
        return;
    }
    let mut c = common::config(Duration::from_millis(700), Duration::from_secs(2), 20);
    threads(&mut c);
    c.final_summary();
}
