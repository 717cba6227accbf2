//! Multi-threaded tests of the shared implementations, `MutexAverage` and `ShardedAverage`.
//!
//! Every thread adds a distinct, recognisable sequence: the value encodes the thread and the
//! index of the add within the thread. Once adds stop, the contract (`src/traits.rs`) says the
//! window is the last `N` adds of one total order consistent with each thread's order, shown in
//! that order; so the tests check, from `to_vec()` alone:
//!
//! * every element is one that was added, at most once;
//! * each thread's elements appear in increasing index order;
//! * each thread's elements form a suffix of its sequence (contiguous, ending with its last
//!   add), which, with the per-thread order, is exactly "the last `N` of some interleaving";
//! * when `N` is at least the number of adds, the window is a permutation of all of them;
//! * `len`, `sum`, `average`, `oldest`, `newest` and `get` agree with the reference model over
//!   those elements (sums exact, averages correctly rounded).
//!
//! Reads that run during adds are checked against what each implementation documents:
//! `MutexAverage` reads are linearizable; `ShardedAverage` reads are exact over a set of
//! elements each of which was in the window during the read.
//!
//! `ShardedAverage::relaxed` (the relaxed order) gets the same check at quiescence, reads and
//! flushes from another thread during the adds, a check that a flush orders the adds on either
//! side of it, and a check that memory stays bounded when nothing reads. (`tests/relaxed.rs`
//! decides exactly which windows its contract allows for small histories of turns.)

mod model;

use std::sync::atomic::{
    AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{mpsc, Arc, Barrier};

use mavg::{MutexAverage, ShardedAverage, SharedMovingAverage};
use model::*;
use rayon::prelude::*;

const MIRI: bool = cfg!(miri);

// ---------------------------------------------------------------------------------------------
// Recognisable values
// ---------------------------------------------------------------------------------------------

/// Sample types whose values encode `(thread, index)`.
trait Tagged: RefSample {
    fn tag(thread: usize, index: usize) -> Self;
    /// `(thread, index)` if `self` is a value `tag` produces.
    fn untag(self) -> Option<(usize, usize)>;
}

const SPREAD: usize = 1_000_000;

/// Non-integral, of both signs: thread `t` adds `±(t * 10^6 + i + 0.5)`.
impl Tagged for f64 {
    fn tag(t: usize, i: usize) -> f64 {
        let x = (t * SPREAD + i) as f64 + 0.5;
        if t % 2 == 1 {
            -x
        } else {
            x
        }
    }

    fn untag(self) -> Option<(usize, usize)> {
        let a = self.abs() - 0.5;
        if !(0.0..1e15).contains(&a) || a.fract() != 0.0 {
            return None;
        }
        let k = a as usize;
        let (t, i) = (k / SPREAD, k % SPREAD);
        (Self::tag(t, i).to_bits() == self.to_bits()).then_some((t, i))
    }
}

/// Large, of both signs, so that window sums leave `i64`'s range.
impl Tagged for i64 {
    fn tag(t: usize, i: usize) -> i64 {
        let x = (t * SPREAD + i) as i64 * 1_000_000_007 + 3;
        if t % 2 == 1 {
            -x
        } else {
            x
        }
    }

    fn untag(self) -> Option<(usize, usize)> {
        let a = self.unsigned_abs().checked_sub(3)?;
        if a % 1_000_000_007 != 0 {
            return None;
        }
        let k = (a / 1_000_000_007) as usize;
        let (t, i) = (k / SPREAD, k % SPREAD);
        (Self::tag(t, i) == self).then_some((t, i))
    }
}

impl Tagged for u32 {
    fn tag(t: usize, i: usize) -> u32 {
        u32::try_from(t * SPREAD + i).unwrap()
    }

    fn untag(self) -> Option<(usize, usize)> {
        let k = self as usize;
        Some((k / SPREAD, k % SPREAD))
    }
}

fn value_range<T: Tagged>(threads: usize, per_thread: usize) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for t in 0..threads {
        for i in [0, per_thread - 1] {
            let x = sample_as_f64(T::tag(t, i));
            lo = lo.min(x);
            hi = hi.max(x);
        }
    }
    (lo, hi)
}

/// The exact value of a finite sample, correctly rounded to `f64`.
fn sample_as_f64<T: RefSample>(x: T) -> f64 {
    match x.exact() {
        Exact::Finite(v) => round_exact(&v, 1, T::SCALE),
        _ => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------------
// Writers and readers at once
// ---------------------------------------------------------------------------------------------

/// The writer and reader threads of a [`writers_and_readers`] run that are still running.
struct Live {
    writers: AtomicUsize,
    readers: AtomicUsize,
}

impl Live {
    fn writers_done(&self) -> bool {
        self.writers.load(SeqCst) == 0
    }

    fn readers_done(&self) -> bool {
        self.readers.load(SeqCst) == 0
    }
}

/// Decrements a counter when dropped, also while unwinding, so that a thread whose assertion
/// fails still counts itself out and the threads waiting for it stop.
struct CountDown<'a>(&'a AtomicUsize);

impl Drop for CountDown<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Threads that only burn CPU while readers read, so that the OS preempts readers in the
/// middle of reads while writers run on: the reads that must notice overwritten data.
const BURNERS: usize = if MIRI { 0 } else { 3 };

fn burn_while_positive(counter: &AtomicUsize) {
    let mut x = 0u64;
    while counter.load(SeqCst) > 0 {
        for _ in 0..1000 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
}

/// Runs `write(t, live)` on `writers` threads and `read(r, live)` on `readers` threads, all
/// released at once by one barrier, and `burners` threads that burn CPU until the readers are
/// done. Each writer and reader counts itself out of `live` when it returns or panics, so
/// writers may run until the readers are done, or readers until the writers are (not both).
/// Returns what each reader returned, in order, once every thread is joined (so its
/// thread-locals, among them a `ShardedAverage` shard's lease, are gone); a panic is passed on.
fn writers_and_readers<R: Send>(
    writers: usize,
    readers: usize,
    burners: usize,
    write: impl Fn(usize, &Live) + Sync,
    read: impl Fn(usize, &Live) -> R + Sync,
) -> Vec<R> {
    let live = Live {
        writers: AtomicUsize::new(writers),
        readers: AtomicUsize::new(readers),
    };
    let start = Barrier::new(writers + readers);
    std::thread::scope(|s| {
        let (live, start, write, read) = (&live, &start, &write, &read);
        let others: Vec<_> = (0..writers)
            .map(|t| {
                s.spawn(move || {
                    let _leave = CountDown(&live.writers);
                    start.wait();
                    write(t, live);
                })
            })
            .chain((0..burners).map(|_| s.spawn(move || burn_while_positive(&live.readers))))
            .collect();
        let read_handles: Vec<_> = (0..readers)
            .map(|r| {
                s.spawn(move || {
                    let _leave = CountDown(&live.readers);
                    start.wait();
                    read(r, live)
                })
            })
            .collect();
        let reads: Vec<_> = read_handles.into_iter().map(|h| h.join()).collect();
        let others: Vec<_> = others.into_iter().map(|h| h.join()).collect();
        let reads: Vec<R> = reads
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        others
            .into_iter()
            .for_each(|r| r.unwrap_or_else(|e| std::panic::resume_unwind(e)));
        reads
    })
}

/// A writer for [`writers_and_readers`]: writer `t` adds `value(t, 0..most)` until the readers
/// are done, and stores in `done[t]` how many of its adds have returned.
fn add_until_readers_done<'a, T, M: SharedMovingAverage<Item = T>>(
    m: &'a M,
    done: &'a [AtomicUsize],
    most: usize,
    value: impl Fn(usize, usize) -> T + Sync + 'a,
) -> impl Fn(usize, &Live) + Sync + 'a {
    move |t, live| {
        for i in 0..most {
            if live.readers_done() {
                break;
            }
            m.push(value(t, i));
            done[t].store(i + 1, SeqCst);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The check at quiescence
// ---------------------------------------------------------------------------------------------

/// Checks `m` after `pushed[t]` adds from each thread `t` (sequence `tag(t, 0..pushed[t])`),
/// all finished, with no clear.
fn check_quiescent<T: Tagged, M: SharedMovingAverage<Item = T>>(
    name: &str,
    m: &M,
    pushed: &[usize],
) -> Result<(), String> {
    let window = m.window();
    let total: usize = pushed.iter().sum();
    let v = m.to_vec();
    let ctx = |e: String| format!("{name} {} window {window}, pushed {pushed:?}: {e}", T::NAME);
    if v.len() != window.min(total) {
        return Err(ctx(format!("to_vec() has {} elements", v.len())));
    }
    if m.len() != v.len() {
        return Err(ctx(format!(
            "len() {} != to_vec().len() {}",
            m.len(),
            v.len()
        )));
    }
    let mut per_thread: Vec<Vec<usize>> = vec![Vec::new(); pushed.len()];
    for &x in &v {
        match x.untag() {
            Some((t, i)) if t < pushed.len() && i < pushed[t] => per_thread[t].push(i),
            _ => return Err(ctx(format!("{x:?} was never added"))),
        }
    }
    for (t, indices) in per_thread.iter().enumerate() {
        // A suffix, in order: exactly pushed[t] - k .. pushed[t].
        let k = indices.len();
        let suffix: Vec<usize> = (pushed[t] - k..pushed[t]).collect();
        if *indices != suffix {
            return Err(ctx(format!(
                "thread {t}'s elements are not an in-order suffix of its adds: {}",
                abbreviate(indices)
            )));
        }
    }
    if window >= total && per_thread.iter().zip(pushed).any(|(ix, &p)| ix.len() != p) {
        return Err(ctx("the window must hold every add".into()));
    }
    // The reads agree with each other and with the exact reference over the elements.
    let mut model = Model::new(window);
    v.iter().for_each(|&x| model.push(x));
    check_all_reads(m, &model).map_err(ctx)
}

/// Adds `tag(t, 0..per_thread)` from `threads` threads released at once, yielding now and then
/// so that the threads interleave even on few cores.
fn push_from_threads<T: Tagged, M: SharedMovingAverage<Item = T>>(
    m: &M,
    threads: std::ops::Range<usize>,
    per_thread: usize,
) {
    let first = threads.start;
    let write = |k: usize, _: &Live| {
        for i in 0..per_thread {
            m.push(T::tag(first + k, i));
            if i % 97 == 0 {
                std::thread::yield_now();
            }
        }
    };
    writers_and_readers(threads.len(), 0, 0, write, |_, _| ());
}

fn per_thread_adds() -> usize {
    if MIRI {
        20
    } else {
        2_000
    }
}

fn stress_threads<T: Tagged, M: SharedMovingAverage<Item = T>>(name: &str) {
    let p = per_thread_adds();
    let configs: &[(usize, &[usize])] = if MIRI {
        &[(2, &[1, 7, 40]), (3, &[64])]
    } else {
        &[
            (2, &[1, 64, 129, 4_000]),
            (4, &[7, 192, 1_000, 8_010]),
            (8, &[3, 65, 256, 16_000]),
        ]
    };
    for &(threads, windows) in configs {
        for &w in windows {
            let m = M::with_window(w).unwrap();
            push_from_threads::<T, M>(&m, 0..threads, p);
            check_quiescent(name, &m, &vec![p; threads]).unwrap();
            // A second round on the same moving average, from new threads (for
            // ShardedAverage, they take over the shards of the threads that exited).
            push_from_threads::<T, M>(&m, threads..2 * threads, p / 2);
            let pushed: Vec<usize> = (0..2 * threads)
                .map(|t| if t < threads { p } else { p / 2 })
                .collect();
            check_quiescent(name, &m, &pushed).unwrap();
        }
    }
}

/// One `#[test]` per entry, named `$name`, that runs `$check::<T, $imp<T>>("$imp")` for each
/// listed element type `T` (attributes before an entry go to its test).
macro_rules! tests_per_implementation {
    ($check:ident: $($(#[$attr:meta])* $name:ident => $imp:ident [$($t:ty),*]),* $(,)?) => {$(
        #[test]
        $(#[$attr])*
        fn $name() {
            $($check::<$t, $imp<$t>>(stringify!($imp));)*
        }
    )*};
}

tests_per_implementation!(stress_threads:
    scoped_threads_mutex => MutexAverage [f64, i64, u32],
    scoped_threads_sharded => ShardedAverage [f64, i64, u32],
);

/// The same through a rayon pool with more threads than cores: each task is one "thread" of
/// the check (a task runs start to finish on one worker).
fn stress_rayon<T: Tagged, M: SharedMovingAverage<Item = T>>(name: &str) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(if MIRI { 2 } else { 8 })
        .build()
        .unwrap();
    let tasks = if MIRI { 3 } else { 12 };
    let p = per_thread_adds();
    for w in [1, 64, 191, 1_000, tasks * p] {
        let m = M::with_window(w).unwrap();
        pool.install(|| {
            (0..tasks).into_par_iter().for_each(|t| {
                for i in 0..p {
                    m.push(T::tag(t, i));
                }
            })
        });
        check_quiescent(name, &m, &vec![p; tasks]).unwrap();
    }
}

tests_per_implementation!(stress_rayon:
    #[cfg_attr(
        miri,
        ignore = "rayon uses integer-to-pointer casts, which -Zmiri-strict-provenance (.ci/miri) rejects"
    )]
    rayon_mutex => MutexAverage [f64, i64, u32],
    #[cfg_attr(
        miri,
        ignore = "rayon uses integer-to-pointer casts, which -Zmiri-strict-provenance (.ci/miri) rejects"
    )]
    rayon_sharded => ShardedAverage [f64, i64, u32],
);

// ---------------------------------------------------------------------------------------------
// Reads during adds
// ---------------------------------------------------------------------------------------------

/// While `writers` threads add, `readers` threads read continuously and check what holds for
/// any set of elements that were in the window: the average is never NaN and lies within the
/// smallest and largest value added, the length and `to_vec()` stay within the window, every
/// element read is one that was added, and each thread's elements are in its order.
fn reads_during_adds<T: Tagged, M: SharedMovingAverage<Item = T>>(
    name: &str,
    window: usize,
    writers: usize,
    readers: usize,
) {
    let p = if MIRI { 30 } else { 20_000 };
    let m = M::with_window(window).unwrap();
    let (lo, hi) = value_range::<T>(writers, p);
    let write = |t: usize, _: &Live| {
        for i in 0..p {
            m.push(T::tag(t, i));
        }
    };
    // Each reader returns how many reads it made; the last starts after the writers finished.
    let read = |r: usize, live: &Live| {
        let mut reads = 0usize;
        loop {
            let last = live.writers_done();
            if let Some(a) = m.average() {
                assert!(!a.is_nan(), "{name}: NaN average");
                assert!(
                    lo <= a && a <= hi,
                    "{name}: average {a} outside [{lo}, {hi}]"
                );
            }
            assert!(m.len() <= window, "{name}: len {} > {window}", m.len());
            let sum = T::sum_value(m.sum());
            if let SumValue::Float(f) = sum {
                assert!(f.is_finite(), "{name}: sum {f}");
            }
            if r % 2 == 0 {
                let v = m.to_vec();
                assert!(v.len() <= window, "{name}: to_vec has {} elements", v.len());
                let mut next = vec![0usize; writers];
                for x in v {
                    let (t, i) = x
                        .untag()
                        .filter(|&(t, i)| t < writers && i < p)
                        .unwrap_or_else(|| panic!("{name}: {x:?} was never added"));
                    assert!(i >= next[t], "{name}: thread {t}'s elements out of order");
                    next[t] = i + 1;
                }
            } else {
                for x in [m.oldest(), m.newest(), m.get(0), m.get(window / 2)]
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        x.untag().is_some_and(|(t, i)| t < writers && i < p),
                        "{name}: {x:?} was never added"
                    );
                }
            }
            reads += 1;
            if last {
                return reads;
            }
        }
    };
    let reads = writers_and_readers(writers, readers, 0, write, read);
    assert!(reads.iter().sum::<usize>() >= readers);
    check_quiescent(name, &m, &vec![p; writers]).unwrap();
}

#[test]
fn reads_during_adds_sharded() {
    let configs: &[(usize, usize, usize)] = if MIRI {
        &[(1, 2, 1), (64, 3, 2)]
    } else {
        &[
            (1, 2, 1),
            (64, 3, 2),
            (100, 2, 2),
            (193, 6, 2),
            (1000, 4, 4),
        ]
    };
    for &(w, writers, readers) in configs {
        reads_during_adds::<f64, ShardedAverage<f64>>("ShardedAverage", w, writers, readers);
        reads_during_adds::<i64, ShardedAverage<i64>>("ShardedAverage", w, writers, readers);
        reads_during_adds::<u32, ShardedAverage<u32>>("ShardedAverage", w, writers, readers);
    }
}

#[test]
fn reads_during_adds_mutex() {
    for (w, writers, readers) in [(1, 2, 1), (64, 3, 2), (1000, 4, 4)] {
        reads_during_adds::<f64, MutexAverage<f64>>("MutexAverage", w, writers, readers);
        reads_during_adds::<i64, MutexAverage<i64>>("MutexAverage", w, writers, readers);
    }
}

/// Bit `b` of a `u64` window sum stands for one element; each writer uses its own 30 bits,
/// cyclically: writer `t`'s add `i` is `2^(32 t + i % 30)`. A window of at most 30 elements
/// holds distinct bits, so the exact `u64` sum tells exactly which elements a read summed.
fn bit_of(t: usize, i: usize) -> u64 {
    1 << (32 * t + i % 30)
}

/// Whether the set bits of the 30-bit `mask` form one cyclic run.
fn is_cyclic_run(mask: u64) -> bool {
    let k = mask.count_ones();
    if k == 0 || k == 30 {
        return true;
    }
    (0..30).any(|start| {
        let run = (0..k).fold(0u64, |acc, j| acc | 1 << ((start + j) % 30));
        run == mask
    })
}

/// For `ShardedAverage`, a read is exact over the elements that were in the window when it
/// loaded the ticket counter, less those whose add had drawn its ticket but not published
/// yet: at most one per writer, and always that writer's newest. So after every writer has
/// added more than `N` elements, each read's sum is made of one contiguous run per writer, and
/// `N - writers <= count <= N`. For `MutexAverage` (linearizable) the count is exactly `N`.
fn sums_during_adds_are_exact<M: SharedMovingAverage<Item = u64>>(
    name: &str,
    window: usize,
    writers: usize,
    slack: usize,
) {
    assert!(window <= 30 && writers <= 2);
    let p = if MIRI { 80 } else { 100_000 };
    // Writers add at least `p` elements each, and go on until the reader has checked this many
    // reads made while they were adding (fast adds would otherwise finish first).
    let min_checks = if MIRI { 2 } else { 1_000 };
    let m = M::with_window(window).unwrap();
    let started = AtomicUsize::new(0);
    let checks = AtomicUsize::new(0);
    let write = |t: usize, live: &Live| {
        for i in 0..window + 1 {
            m.push(bit_of(t, i));
        }
        started.fetch_add(1, SeqCst);
        let mut i = window + 1;
        // Also stops if the reader failed, which would never reach `min_checks`.
        while i < p || (checks.load(Relaxed) < min_checks && !live.readers_done()) {
            m.push(bit_of(t, i));
            i += 1;
        }
    };
    // The one reader returns how many reads it checked.
    let read = |_: usize, live: &Live| {
        while started.load(SeqCst) < writers && !live.writers_done() {
            std::hint::spin_loop();
        }
        let mut checked = 0usize;
        while !live.writers_done() {
            let sum = m.sum();
            let bits = u64::try_from(sum).unwrap();
            let count = bits.count_ones() as usize;
            assert!(
                count <= window && count + slack >= window,
                "{name}: a read summed {count} elements of a full window of {window}: {bits:#x}"
            );
            for t in 0..writers {
                let mask = (bits >> (32 * t)) & ((1 << 30) - 1);
                assert!(
                    is_cyclic_run(mask),
                    "{name}: writer {t}'s elements in one read are not contiguous: {mask:#032b}"
                );
            }
            checked += 1;
            checks.store(checked, Relaxed);
        }
        checked
    };
    let checked = writers_and_readers(writers, 1, 0, write, read)[0];
    assert!(checked >= min_checks);
    // Quiescent: exactly the last `window` adds of some interleaving.
    let v = m.to_vec();
    assert_eq!(v.len(), window);
    assert_eq!(m.sum(), v.iter().map(|&x| x as i128).sum::<i128>());
}

#[test]
fn sharded_sums_during_adds_cover_elements_in_the_window() {
    let windows: &[usize] = if MIRI { &[1, 5] } else { &[1, 2, 5, 17, 30] };
    for &w in windows {
        sums_during_adds_are_exact::<ShardedAverage<u64>>("ShardedAverage", w, 1, 1);
        sums_during_adds_are_exact::<ShardedAverage<u64>>("ShardedAverage", w, 2, 2);
    }
}

#[test]
fn mutex_sums_during_adds_are_linearizable() {
    for w in [1, 5, 30] {
        sums_during_adds_are_exact::<MutexAverage<u64>>("MutexAverage", w, 1, 0);
        sums_during_adds_are_exact::<MutexAverage<u64>>("MutexAverage", w, 2, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// Shard reuse
// ---------------------------------------------------------------------------------------------

#[test]
fn shards_are_reused_by_threads_that_come_and_go() {
    let w = 300;
    let m = ShardedAverage::<i64>::new(w).unwrap();
    assert_eq!(m.shard_count(), 1, "one shard is allocated up front");
    let mut model = Model::new(w);
    let rounds = if MIRI { 4 } else { 50 };
    // Sequential short-lived threads, each joined (so its thread-locals, and with them its
    // claim on the shard, are gone) before the next starts: they all share the one shard.
    for t in 0..rounds {
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..37 {
                    m.push(i64::tag(t, i));
                }
            })
            .join()
            .unwrap();
        });
        (0..37).for_each(|i| model.push(i64::tag(t, i)));
        assert_eq!(m.shard_count(), 1, "after thread {t}");
        // Adds that do not overlap in time: exactly what RingAverage would hold.
        check_all_reads(&m, &model).unwrap();
    }
    // Batches of four concurrent threads: never more than four shards.
    for round in 0..rounds / 5 {
        let write = |t: usize, _: &Live| {
            for i in 0..100 {
                m.push(i64::tag(100 + 4 * round + t, i));
            }
        };
        writers_and_readers(4, 0, 0, write, |_, _| ());
        assert!(
            m.shard_count() <= 4,
            "{} shards after round {round}",
            m.shard_count()
        );
        let pushed: Vec<usize> = (0..100 + 4 * round + 4)
            .map(|t| if t >= 100 + 4 * round { 100 } else { 0 })
            .collect();
        // The window (300) holds only this round's 400 adds' last 300.
        check_quiescent("ShardedAverage", &m, &pushed).unwrap();
    }
    // Reserved shards are used before any is added.
    let m = ShardedAverage::<u32>::with_shards(64, 3).unwrap();
    for t in 0..rounds {
        std::thread::scope(|s| s.spawn(|| m.push(t as u32)).join().unwrap());
        assert_eq!(m.shard_count(), 3);
    }
    assert_eq!(m.len(), rounds.min(64));
    assert_eq!(m.newest(), Some(rounds as u32 - 1));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "rayon uses integer-to-pointer casts, which -Zmiri-strict-provenance (.ci/miri) rejects"
)]
fn shards_stay_bounded_under_a_rayon_pool() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let m = ShardedAverage::<u32>::new(500).unwrap();
    for round in 0..if MIRI { 2 } else { 20 } {
        pool.install(|| {
            (0..16usize).into_par_iter().for_each(|t| {
                for i in 0..50 {
                    m.push(u32::tag(16 * round + t, i));
                }
            })
        });
        assert!(m.shard_count() <= 4, "{} shards", m.shard_count());
    }
}

#[test]
fn many_averages_from_long_lived_threads() {
    // Long-lived threads keep their leases on averages that were dropped; averages created
    // later (possibly at the same address) must not be confused with them. Each round the test
    // thread creates an average, three worker threads add to it at once, and it is checked
    // and dropped.
    let workers = 3;
    let rounds = if MIRI { 4 } else { 200 };
    let per_worker = 40;
    std::thread::scope(|s| {
        let (ack_tx, ack_rx) = mpsc::channel::<()>();
        let senders: Vec<mpsc::Sender<Round>> = (0..workers)
            .map(|t| {
                let (tx, rx) = mpsc::channel::<Round>();
                let ack = ack_tx.clone();
                s.spawn(move || {
                    for (sharded, mutex) in rx {
                        for i in 0..per_worker {
                            sharded.push(i64::tag(t, i));
                            mutex.push(i64::tag(t, i));
                        }
                        drop((sharded, mutex));
                        ack.send(()).unwrap();
                    }
                });
                tx
            })
            .collect();
        for k in 0..rounds {
            let w = 1 + k % 130;
            let sharded = Arc::new(ShardedAverage::<i64>::new(w).unwrap());
            let mutex = Arc::new(MutexAverage::<i64>::new(w).unwrap());
            for tx in &senders {
                tx.send((Arc::clone(&sharded), Arc::clone(&mutex))).unwrap();
            }
            for _ in 0..workers {
                ack_rx.recv().unwrap();
            }
            check_quiescent("ShardedAverage", &*sharded, &vec![per_worker; workers]).unwrap();
            check_quiescent("MutexAverage", &*mutex, &vec![per_worker; workers]).unwrap();
            assert!(sharded.shard_count() <= workers);
        }
    });
}

type Round = (Arc<ShardedAverage<i64>>, Arc<MutexAverage<i64>>);

#[test]
fn one_thread_keeps_many_averages_apart() {
    // One thread adds to many averages in an order unrelated to their creation, drops some and
    // creates more: its leases are found by id among many, purged once their averages are
    // gone, and never confused with those of other averages.
    let count = if MIRI { 40 } else { 3_000 };
    let window = 4;
    let mut live: Vec<(usize, ShardedAverage<u64>)> = (0..count)
        .map(|k| (k, ShardedAverage::new(window).unwrap()))
        .collect();
    for round in 0..3u64 {
        // A fixed permutation of the averages (stride coprime to the count).
        let n = live.len();
        for j in 0..n {
            let (k, m) = &live[(j * 7 + round as usize) % n];
            m.push(*k as u64 * 10 + round);
        }
        for (k, m) in &live {
            let expected: Vec<u64> = (0..=round).map(|r| *k as u64 * 10 + r).collect();
            assert_eq!(m.to_vec(), expected, "average {k} after round {round}");
            assert_eq!(m.shard_count(), 1, "average {k}");
        }
        // Drop every third average and create as many new ones, which get larger ids.
        let next = count + round as usize * count;
        live.retain(|(k, _)| k % 3 != round as usize % 3 || *k >= count);
        let added = n - live.len();
        live.extend((0..added).map(|i| {
            let m = ShardedAverage::new(window).unwrap();
            for r in 0..=round {
                m.push((next + i) as u64 * 10 + r);
            }
            (next + i, m)
        }));
    }
}

// ---------------------------------------------------------------------------------------------
// clear() during adds
// ---------------------------------------------------------------------------------------------

/// "Removes every element added before the call; adds that run concurrently with it may or
/// may not be removed." Each writer announces an add before it starts and after it returns;
/// the clearing thread notes which adds had returned before it called `clear()` and which had
/// not started when `clear()` returned. At quiescence (window larger than every add), the
/// former must be gone and the latter all present.
fn clear_during_adds<T: Tagged, M: SharedMovingAverage<Item = T>>(name: &str) {
    let writers = 3;
    let p = if MIRI { 40 } else { 6_000 };
    for round in 0..if MIRI { 1 } else { 6 } {
        let m = M::with_window(writers * p + 5).unwrap();
        let started: Vec<AtomicUsize> = (0..writers).map(|_| AtomicUsize::new(0)).collect();
        let done: Vec<AtomicUsize> = (0..writers).map(|_| AtomicUsize::new(0)).collect();
        let write = |t: usize, _: &Live| {
            for i in 0..p {
                started[t].store(i + 1, SeqCst);
                m.push(T::tag(t, i));
                done[t].store(i + 1, SeqCst);
                if i % 31 == 0 {
                    // Interleave the writers even on few cores.
                    std::thread::yield_now();
                }
            }
        };
        // Clears somewhere in the middle of the adds; returns the adds that had returned
        // before the call and those that had started when it returned.
        let clear = |_: usize, live: &Live| {
            let threshold = (round + 1) * writers * p / 8;
            while done.iter().map(|d| d.load(SeqCst)).sum::<usize>() < threshold
                && !live.writers_done()
            {
                std::thread::yield_now();
            }
            let before: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            SharedMovingAverage::clear(&m);
            let after: Vec<usize> = started.iter().map(|d| d.load(SeqCst)).collect();
            (before, after)
        };
        let (before, after) = writers_and_readers(writers, 1, 0, write, clear).remove(0);
        let v = m.to_vec();
        let mut present = vec![vec![false; p]; writers];
        let mut next = vec![0usize; writers];
        for &x in &v {
            let (t, i) = x.untag().filter(|&(t, i)| t < writers && i < p).unwrap();
            assert!(
                i >= before[t],
                "{name}: thread {t}'s add {i} returned before clear() was called but survived it"
            );
            assert!(i >= next[t], "{name}: thread {t}'s elements out of order");
            next[t] = i + 1;
            present[t][i] = true;
        }
        for t in 0..writers {
            let a = after[t];
            if let Some(i) = (a..p).find(|&i| !present[t][i]) {
                panic!("{name}: thread {t}'s add {i} started after clear() returned but is gone");
            }
        }
        let mut model = Model::new(m.window());
        v.iter().for_each(|&x| model.push(x));
        check_all_reads(&m, &model).unwrap();
    }
}

tests_per_implementation!(clear_during_adds:
    clear_during_adds_sharded => ShardedAverage [f64, i64, u32],
    clear_during_adds_mutex => MutexAverage [f64, i64],
);

// ---------------------------------------------------------------------------------------------
// Reads during adds, identified exactly
// ---------------------------------------------------------------------------------------------

/// Writer `t`'s add `i`: a pseudo-random 20-bit number, shifted by 40 bits for writer 1, so
/// that a window sum (at most 1000 elements) splits exactly into the two writers' parts.
fn run_value(t: usize, i: usize) -> u64 {
    let mut z = (t as u64) << 32 | i as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z & 0xf_ffff) << (40 * t)
}

/// The element counts `b - a` of the runs `a..b` of writer `t`'s adds, with `b` in `tops` and
/// at most `window` long, whose sum is `s`.
fn run_lengths(
    prefix: &[u128],
    s: u128,
    tops: std::ops::RangeInclusive<usize>,
    window: usize,
) -> Vec<usize> {
    let mut lengths = Vec::new();
    if s == 0 {
        lengths.push(0);
    }
    for b in tops {
        if b >= prefix.len() {
            break;
        }
        for a in b.saturating_sub(window)..b {
            if prefix[b] - prefix[a] == s {
                lengths.push(b - a);
            }
        }
    }
    lengths
}

/// Two writers add pseudo-random values while two readers read sums, with CPU-burning threads
/// besides, so that the OS preempts readers in the middle of reads while the writers run on
/// (the reads that must notice overwritten data and start over). Every sum read must be, for
/// each writer, the sum of a contiguous run `a..b` of its adds, where `b` is no earlier than
/// the adds it had completed before the read began and no later than one past those completed
/// after the read; and the runs together must hold between `N - slack` and `N` elements once
/// the window is full (`slack`: adds that had drawn a ticket but not published, at most one per
/// writer for ShardedAverage; zero for the linearizable MutexAverage). A read that used
/// overwritten slots or checkpoints would almost surely give a sum with no such decomposition.
fn sums_during_adds_are_runs<M: SharedMovingAverage<Item = u64>>(
    name: &str,
    window: usize,
    slack: usize,
) {
    const WRITERS: usize = 2;
    const READERS: usize = 2;
    let most = if MIRI { 300 } else { 1_000_000 };
    let reads_each = if MIRI { 5 } else { 1_500 };
    let prefix: Vec<Vec<u128>> = (0..WRITERS)
        .map(|t| {
            let mut acc = 0u128;
            std::iter::once(0)
                .chain((0..most).map(|i| {
                    acc += u128::from(run_value(t, i));
                    acc
                }))
                .collect()
        })
        .collect();
    let m = M::with_window(window).unwrap();
    let done: Vec<AtomicUsize> = (0..WRITERS).map(|_| AtomicUsize::new(0)).collect();
    let read = |_: usize, _: &Live| {
        for _ in 0..reads_each {
            let before: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            let sum = u128::try_from(m.sum()).unwrap();
            let after: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            let parts = [sum & ((1 << 40) - 1), sum & !((1 << 40) - 1)];
            let lengths: Vec<Vec<usize>> = (0..WRITERS)
                .map(|t| {
                    let l = run_lengths(&prefix[t], parts[t], before[t]..=after[t] + 1, window);
                    assert!(
                        !l.is_empty(),
                        "{name}, window {window}: sum {sum:#x} is not made of a run of \
                         writer {t}'s adds ending in {}..={}",
                        before[t],
                        after[t] + 1
                    );
                    l
                })
                .collect();
            if before.iter().sum::<usize>() >= window {
                // The window was full when the read began.
                let ok = lengths[0].iter().any(|&a| {
                    lengths[1]
                        .iter()
                        .any(|&b| a + b <= window && a + b + slack >= window)
                });
                assert!(
                    ok,
                    "{name}, window {window}: a read summed runs of {:?} + {:?} elements",
                    lengths[0], lengths[1]
                );
            }
        }
    };
    let write = add_until_readers_done(&m, &done, most, run_value);
    writers_and_readers(WRITERS, READERS, BURNERS, write, read);
    // At quiescence: exactly the last `N` adds, one run per writer ending with its last add.
    let ends: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
    let sum = u128::try_from(m.sum()).unwrap();
    let parts = [sum & ((1 << 40) - 1), sum & !((1 << 40) - 1)];
    let counts: Vec<Vec<usize>> = (0..WRITERS)
        .map(|t| run_lengths(&prefix[t], parts[t], ends[t]..=ends[t], window))
        .collect();
    let full = window.min(ends.iter().sum());
    assert!(
        counts[0]
            .iter()
            .any(|&a| counts[1].iter().any(|&b| a + b == full)),
        "{name}: at quiescence the window is not the last {full} adds: {counts:?}, {ends:?}"
    );
    assert_eq!(m.len(), full);
}

#[test]
fn sharded_sums_during_adds_are_sums_of_runs() {
    for w in [1, 20, 100, 700] {
        sums_during_adds_are_runs::<ShardedAverage<u64>>("ShardedAverage", w, 2);
    }
}

#[test]
fn mutex_sums_during_adds_are_sums_of_runs() {
    for w in [1, 100] {
        sums_during_adds_are_runs::<MutexAverage<u64>>("MutexAverage", w, 0);
    }
}

/// `to_vec()` while adds are in flight. The documented guarantee for `ShardedAverage` ("the
/// window's elements at the moment the read loaded the ticket counter, less those whose add
/// had drawn its ticket but not yet published the element") means: each writer's elements
/// form a contiguous run of its adds, in order, that ends no earlier than the adds it had
/// completed before the read (if the run is not empty) and no later than one past those it
/// had completed after; and, once the window is full, there are between `N - writers` and `N`
/// of them (exactly `N` for the linearizable `MutexAverage`). Reading a whole window takes
/// long enough that writers often overwrite what a read is reading, which the read must notice.
fn to_vec_during_adds<M: SharedMovingAverage<Item = f64>>(
    name: &str,
    window: usize,
    writers: usize,
    slack: usize,
) {
    let most = if MIRI { 300 } else { 1_000_000 };
    let reads_each = if MIRI { 4 } else { 300 };
    let readers = 2;
    let m = M::with_window(window).unwrap();
    let done: Vec<AtomicUsize> = (0..writers).map(|_| AtomicUsize::new(0)).collect();
    let read = |_: usize, _: &Live| {
        for _ in 0..reads_each {
            let before: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            let v = m.to_vec();
            let after: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            let mut runs: Vec<Vec<usize>> = vec![Vec::new(); writers];
            for &x in &v {
                match x.untag() {
                    Some((t, i)) if t < writers && i <= after[t] => runs[t].push(i),
                    _ => panic!("{name}: {x:?} was never added"),
                }
            }
            for (t, run) in runs.iter().enumerate() {
                if let (Some(&a), Some(&b)) = (run.first(), run.last()) {
                    assert!(
                        run.iter().copied().eq(a..=b),
                        "{name}, window {window}: writer {t}'s elements in one read are not \
                         a contiguous run of its adds: {}",
                        abbreviate(run)
                    );
                    assert!(
                        b + 1 >= before[t],
                        "{name}, window {window}: writer {t}'s run ends at {b}, but it had \
                         completed {} adds before the read",
                        before[t]
                    );
                }
            }
            if before.iter().sum::<usize>() >= window {
                assert!(
                    v.len() <= window && v.len() + slack >= window,
                    "{name}, window {window}: a read of a full window returned {} elements",
                    v.len()
                );
            }
        }
    };
    let write = add_until_readers_done(&m, &done, most, f64::tag);
    writers_and_readers(writers, readers, BURNERS, write, read);
    let ends: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
    check_quiescent(name, &m, &ends).unwrap();
}

#[test]
fn sharded_to_vec_during_adds_is_the_window_less_unpublished_adds() {
    let configs: &[(usize, usize)] = if MIRI {
        &[(5, 1), (70, 2)]
    } else {
        &[(1, 1), (64, 1), (700, 1), (3, 2), (300, 2), (1000, 3)]
    };
    for &(w, writers) in configs {
        to_vec_during_adds::<ShardedAverage<f64>>("ShardedAverage", w, writers, writers);
    }
}

#[test]
fn mutex_to_vec_during_adds_is_linearizable() {
    for (w, writers) in [(1, 1), (300, 2)] {
        to_vec_during_adds::<MutexAverage<f64>>("MutexAverage", w, writers, 0);
    }
}

/// A writer's shard read last, behind 63 shards of threads that added once and exited: the
/// writer adds many elements while a read walks the other shards, so reads must notice that
/// the part of the writer's shard they search no longer reaches back to the window's start
/// (and start over), never return part of the window. With one writer, the documented
/// guarantee leaves exactly the last `N` adds or the last `N` but the newest.
#[test]
fn sharded_reads_behind_many_idle_shards_see_the_whole_window() {
    let window = 100;
    let idle = if MIRI { 3 } else { 63 };
    let most = if MIRI { 300 } else { 300_000 };
    let reads_each = if MIRI { 3 } else { 200 };
    let m = ShardedAverage::<f64>::new(window).unwrap();
    let done = AtomicUsize::new(0);
    let readers_left = AtomicUsize::new(2);
    let barrier = Barrier::new(idle);
    std::thread::scope(|s| {
        let (claimed_tx, claimed_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (m, done, readers_left) = (&m, &done, &readers_left);
        s.spawn(move || {
            // Claims the preallocated shard: the oldest, which reads visit last.
            m.push(f64::tag(0, 0));
            done.store(1, SeqCst);
            claimed_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            for i in 1..most {
                if readers_left.load(SeqCst) == 0 {
                    break;
                }
                m.push(f64::tag(0, i));
                done.store(i + 1, SeqCst);
            }
        });
        claimed_rx.recv().unwrap();
        // Idle threads alive at the same time, so each links a shard of its own.
        let handles: Vec<_> = (1..=idle)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    m.push(f64::tag(t, 0));
                    barrier.wait();
                })
            })
            .collect();
        handles.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(m.shard_count(), idle + 1);
        go_tx.send(()).unwrap();
        for _ in 0..2 {
            s.spawn(move || {
                let _leave = CountDown(readers_left);
                // Wait until only the writer's adds are in the window.
                while done.load(SeqCst) <= window {
                    std::thread::yield_now();
                }
                for _ in 0..reads_each {
                    let before = done.load(SeqCst);
                    let v = m.to_vec();
                    let after = done.load(SeqCst);
                    assert!(
                        v.len() + 1 >= window,
                        "a read returned {} of the window's {window} elements",
                        v.len()
                    );
                    // Only the writer's adds are in the window now, as one run a..=b.
                    let run: Vec<usize> = v
                        .iter()
                        .map(|&x| match x.untag() {
                            Some((0, i)) if i <= after => i,
                            _ => panic!("{x:?} cannot be in the window"),
                        })
                        .collect();
                    let (a, b) = (run[0], run[run.len() - 1]);
                    assert!(
                        run.iter().copied().eq(a..=b),
                        "not a contiguous run: {}",
                        abbreviate(&run)
                    );
                    assert!(b + 1 >= before, "the run ends at {b} < {before}");
                    assert!(
                        run.len() == window || run.len() == window - 1,
                        "a read returned {} of the window's {window} elements: {a}..={b}",
                        run.len()
                    );
                }
            });
        }
    });
    let ends: Vec<usize> = std::iter::once(done.load(SeqCst))
        .chain(std::iter::repeat_n(1, idle))
        .collect();
    check_quiescent("ShardedAverage", &m, &ends).unwrap();
}

/// Threads that stay alive but stop adding give their blocks back: eight threads take turns
/// adding bursts of several windows to one average, each keeping its shard after its burst
/// (they all wait on a barrier at the end), and reads while and after they add stay exact. A
/// shard that holds on to its blocks would need about a window of blocks per thread; stealing
/// keeps the total near one window.
#[test]
fn idle_shards_give_their_blocks_back() {
    // At least 256, so that blocks hold 64 elements.
    let window = if MIRI { 256 } else { 4096 };
    let burst = 3 * window;
    let threads = 8;
    let m = ShardedAverage::<u64>::new(window).unwrap();
    let turn = AtomicUsize::new(0);
    let all_done = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (m, turn, all_done) = (&m, &turn, &all_done);
            s.spawn(move || {
                while turn.load(SeqCst) != t {
                    std::thread::yield_now();
                }
                for i in 0..burst {
                    m.push((t * burst + i) as u64);
                }
                // Every element of the window is this thread's last burst.
                let first = (t * burst + burst - window) as u64;
                let expected: Vec<u64> = (first..first + window as u64).collect();
                assert_eq!(m.to_vec(), expected, "thread {t}");
                assert_eq!(
                    m.sum(),
                    expected.iter().map(|&x| i128::from(x)).sum::<i128>()
                );
                turn.store(t + 1, SeqCst);
                all_done.wait();
            });
        }
    });
    assert_eq!(m.shard_count(), threads);
    // A block is 64 slots of 16 bytes plus 24 bytes of checkpoint and link; the window needs
    // `window / 64` of them, each shard a few more. Without stealing, each idle shard would
    // keep about `window / 64` blocks: eight times the window.
    let block = 64 * 16 + 24;
    let blocks = (m.memory_bytes() - threads * 1024) / block;
    let bound = 2 * window / 64 + 4 * threads;
    assert!(
        blocks <= bound,
        "{blocks} blocks in use for a window of {} blocks",
        window / 64
    );
}

// ---------------------------------------------------------------------------------------------
// The relaxed order
// ---------------------------------------------------------------------------------------------

/// No index: a writer never saw that announcement.
const NEVER: usize = usize::MAX;

/// Four writers add tagged values to a relaxed `ShardedAverage` while another thread (the
/// *orderer*) reads and flushes. Writer `t` adds `p (t + 2) / 5` elements, then (for `t > 0`)
/// waits until it sees writer `t - 1`'s announcement, then adds `p / 5` more, so that every
/// run has adds ordered by a flush. Once a writer has finished, the orderer calls `flush()` and
/// then announces it, and each writer notes the first of its adds that started after it saw an
/// announcement.
///
/// Reads during the adds must be exact over at most `N` elements, each of which had started
/// before the read ended and had not left the window when it began (fewer than `N` of its own
/// thread's later adds had returned), with each thread's elements in its order. Once the
/// writers are joined: `len == min(total, N)`, the elements are an in-order suffix of each
/// thread's adds, the sum and average are exact over them (`check_quiescent`), and every
/// element a writer added after seeing an announcement is ordered after every element of the
/// writer announced.
fn relaxed_adds_with_reads_and_flushes<T: Tagged>(window: usize, slack: usize, shards: usize) {
    const WRITERS: usize = 4;
    let p = if MIRI { 10 } else { 1_000 };
    let first: Vec<usize> = (0..WRITERS).map(|t| p * (t + 2) / 5).collect();
    let tail = p / 5;
    let name = format!("ShardedAverage::relaxed({window}, {slack}), {shards} shards");
    let m = ShardedAverage::<T>::relaxed_with_shards(window, slack, shards).unwrap();
    let (lo, hi) = value_range::<T>(WRITERS, p + tail);
    let atomics =
        |n: usize, v: usize| -> Vec<AtomicUsize> { (0..n).map(|_| AtomicUsize::new(v)).collect() };
    let started = atomics(WRITERS, 0);
    let done = atomics(WRITERS, 0);
    let finished = atomics(WRITERS, 0);
    let announced = atomics(WRITERS, 0);
    // `after[b * WRITERS + a]`: the first of writer b's adds that started after it saw writer
    // a's announcement.
    let after = atomics(WRITERS * WRITERS, NEVER);
    let write = |t: usize, live: &Live| {
        let mut seen = [false; WRITERS];
        let mut add = |i: usize| {
            for (a, seen) in seen.iter_mut().enumerate() {
                if !*seen && announced[a].load(SeqCst) == 1 {
                    *seen = true;
                    after[t * WRITERS + a].store(i, SeqCst);
                }
            }
            started[t].store(i + 1, SeqCst);
            m.push(T::tag(t, i));
            done[t].store(i + 1, SeqCst);
            if i % 61 == 0 {
                std::thread::yield_now();
            }
        };
        (0..first[t]).for_each(&mut add);
        // (Stops waiting if the orderer failed.)
        while t > 0 && announced[t - 1].load(SeqCst) == 0 && !live.readers_done() {
            std::thread::yield_now();
        }
        (first[t]..first[t] + tail).for_each(add);
        finished[t].store(1, SeqCst);
    };
    let read = |_: usize, live: &Live| {
        let mut reads = 0usize;
        loop {
            let last = live.writers_done();
            for a in 0..WRITERS {
                if announced[a].load(SeqCst) == 0 && finished[a].load(SeqCst) == 1 {
                    // Every add of writer `a` returned before this flush.
                    m.flush();
                    announced[a].store(1, SeqCst);
                }
            }
            let before: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
            match reads % 4 {
                0 => {
                    let v = m.to_vec();
                    let begun: Vec<usize> = started.iter().map(|s| s.load(SeqCst)).collect();
                    assert!(v.len() <= window, "{name}: to_vec has {} elements", v.len());
                    let mut next = [0usize; WRITERS];
                    for x in v {
                        let (t, i) = x
                            .untag()
                            .filter(|&(t, i)| t < WRITERS && i < begun[t])
                            .unwrap_or_else(|| panic!("{name}: {x:?} had not been added"));
                        assert!(i >= next[t], "{name}: thread {t}'s elements out of order");
                        assert!(
                            i + window >= before[t],
                            "{name}: thread {t}'s element {i} had left the window before the \
                             read began ({} of its adds had returned)",
                            before[t]
                        );
                        next[t] = i + 1;
                    }
                }
                1 => m.flush(),
                2 => {
                    assert!(m.len() <= window, "{name}: len {}", m.len());
                    if let Some(a) = m.average() {
                        assert!(
                            lo <= a && a <= hi,
                            "{name}: average {a} outside [{lo}, {hi}]"
                        );
                    }
                    if let SumValue::Float(f) = T::sum_value(m.sum()) {
                        assert!(f.is_finite(), "{name}: sum {f}");
                    }
                }
                _ => {
                    for x in [m.oldest(), m.newest(), m.get(0), m.get(window / 2)]
                        .into_iter()
                        .flatten()
                    {
                        assert!(
                            x.untag().is_some_and(|(t, _)| t < WRITERS),
                            "{name}: {x:?} was never added"
                        );
                    }
                }
            }
            reads += 1;
            if last {
                return reads;
            }
            std::thread::yield_now();
        }
    };
    writers_and_readers(WRITERS, 1, 0, write, read);
    let pushed: Vec<usize> = done.iter().map(|d| d.load(SeqCst)).collect();
    check_quiescent(&name, &m, &pushed).unwrap();
    // Where each element is in the order.
    let v = m.to_vec();
    let mut positions: Vec<Vec<(usize, usize)>> = vec![Vec::new(); WRITERS];
    for (k, x) in v.iter().enumerate() {
        let (t, i) = x.untag().unwrap();
        positions[t].push((i, k));
    }
    for b in 0..WRITERS {
        for a in (0..WRITERS).filter(|&a| a != b) {
            let first = after[b * WRITERS + a].load(SeqCst);
            if b == a + 1 {
                assert_ne!(
                    first, NEVER,
                    "{name}: writer {b} never saw writer {a} announced"
                );
            }
            let last_of_a = positions[a].iter().map(|&(_, k)| k).max();
            let first_of_b = positions[b]
                .iter()
                .filter(|&&(i, _)| i >= first)
                .map(|&(_, k)| k)
                .min();
            if let (Some(last_of_a), Some(first_of_b)) = (last_of_a, first_of_b) {
                assert!(
                    last_of_a < first_of_b,
                    "{name}: writer {b}'s adds from {first} on followed a flush after all of \
                     writer {a}'s adds, but one is ordered before one of writer {a}'s: \
                     {}",
                    abbreviate(&v)
                );
            }
        }
    }
}

#[test]
fn relaxed_adds_with_reads_and_flushes_from_another_thread() {
    if MIRI {
        // Each `get` of the final check costs a fraction of a second under Miri: small windows.
        relaxed_adds_with_reads_and_flushes::<f64>(5, 6, 1);
        relaxed_adds_with_reads_and_flushes::<i64>(24, 64, 4);
        return;
    }
    // Windows of 4,000 hold every add (3,600), so that the order of all of them is checked.
    let configs: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (7, 6, 1),
        (300, 6, 4),
        (4_000, 6, 1),
        (7, 64, 4),
        (300, 64, 1),
        (4_000, 64, 4),
        (300, 4_096, 4),
        (4_000, 1 << 20, 1),
    ];
    for &(window, slack, shards) in configs {
        relaxed_adds_with_reads_and_flushes::<f64>(window, slack, shards);
        relaxed_adds_with_reads_and_flushes::<i64>(window, slack, shards);
    }
}

/// Memory in the relaxed order stays bounded by the window with no reads at all: two threads
/// add 36 windows' worth of elements between them (16 under Miri), and nothing reads, so
/// nothing but the adds themselves makes the shards evict (by their own count, at most `N`
/// elements each, and by the bound an add refreshes once per batch when it has fallen `N / 2`
/// behind). A shard holds at most `N / B + 4` blocks of `B` elements; the pool hands out up to
/// `R` blocks (the shard table's length) before it steals, and grows by a quarter after a
/// search that finds nothing to steal. The blocks in use are checked at the end of each phase
/// (the threads wait, holding their shards: `memory_bytes` is not a read) and after the
/// threads exit: without eviction they would grow to 36 windows' worth (16), against a bound
/// of under three (five).
#[test]
fn relaxed_memory_stays_bounded_without_reads() {
    // `B = 64` from windows of 256 on; Miri, whose adds take milliseconds, gets a window of
    // 32 with `B = 8` (a quarter of the window rounded up to a power of two).
    let (window, b): (usize, usize) = if MIRI { (32, 8) } else { (4096, 64) };
    let threads = 2;
    let phases = if MIRI { 4 } else { 6 };
    let per_phase = if MIRI { 2 * window } else { 3 * window };
    // `B` slots of 16 bytes, and a checkpoint of two limbs (for `i64`) and a link.
    let block = b * 16 + 24;
    let window_blocks = window / b;
    let table = (window_blocks + 4).next_power_of_two();
    let bound = threads * (window_blocks + 4) + table / 4 + threads;
    let slacks: &[usize] = if MIRI {
        &[8, 1 << 20]
    } else {
        &[8, 4_096, 1 << 20]
    };
    for &slack in slacks {
        let m = ShardedAverage::<i64>::relaxed(window, slack).unwrap();
        let blocks = || {
            let empty = ShardedAverage::<i64>::relaxed_with_shards(window, slack, m.shard_count())
                .unwrap()
                .memory_bytes();
            // Each shard of the empty average holds one block.
            (m.memory_bytes() - empty) / block + m.shard_count()
        };
        let phase_done = Barrier::new(threads + 1);
        let measured = Barrier::new(threads + 1);
        let mut seen = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (m, phase_done, measured) = (&m, &phase_done, &measured);
                    s.spawn(move || {
                        for phase in 0..phases {
                            for i in 0..per_phase {
                                m.push(i64::tag(t, phase * per_phase + i));
                                if i % 499 == 0 {
                                    std::thread::yield_now();
                                }
                            }
                            phase_done.wait();
                            measured.wait();
                        }
                    })
                })
                .collect();
            for _ in 0..phases {
                phase_done.wait();
                seen.push(blocks());
                measured.wait();
            }
            handles.into_iter().for_each(|h| h.join().unwrap());
        });
        seen.push(blocks());
        assert_eq!(m.shard_count(), threads);
        assert!(
            seen.iter().all(|&b| b <= bound),
            "slack {slack}: blocks in use {seen:?}, bound {bound}, the window fills \
             {window_blocks}"
        );
        // Adds have stopped: the window is exactly the last N elements of the order. (Under
        // Miri, where each `get` of the check costs a fraction of a second, the length only.)
        let name = format!("ShardedAverage::relaxed(_, {slack})");
        if MIRI {
            assert_eq!(m.to_vec().len(), window, "{name}");
        } else {
            check_quiescent(&name, &m, &[phases * per_phase; 2]).unwrap();
        }
    }
}
