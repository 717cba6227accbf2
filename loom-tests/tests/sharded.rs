//! Loom models of `ShardedAverage`: every outcome loom can produce must be one the ring-buffer
//! reference allows for some order of the adds consistent with each thread's own order.
//!
//! Run with `loom-tests/run` (or see `notes/verification.md` for the flags).
#![cfg(loom)]

mod harness;
mod reference;

use harness::{assert_exact, during_adds, spawn_pushes};
use loom::sync::Arc;
use loom::thread;
use mavg::ShardedAverage;
use reference::{final_windows, float_mean, int_mean, partial_windows};

/// 2^60: large enough that a drifting running sum would lose the small values beside it.
const BIG: f64 = 1_152_921_504_606_846_976.0;

/// Two writers, two adds each, window 1 to 3: the final window, sum, mean and element access
/// match one interleaving. Covers shard claiming by two threads and window wrap.
#[test]
fn two_writers_final_state_i64() {
    for window in 1..=3 {
        let threads = vec![vec![1i64, 2], vec![10, 20]];
        let allowed = final_windows(&threads, window);
        during_adds(
            &format!("two_writers_final_state_i64 window {window}"),
            3,
            move || ShardedAverage::<i64>::new(window).unwrap(),
            threads,
            |_| {},
            move |m| {
                let w = m.to_vec();
                assert!(
                    allowed.contains(&w),
                    "window {window}: {w:?} not in {allowed:?}"
                );
                assert_exact(m, &w);
            },
        );
    }
}

/// A reader runs while two threads add floats, one of them huge. Every value the exact read
/// returns is the exact mean (or the elements, in order) of a subset of a window that existed
/// during the read; once the writers are joined, the state is exact (through the fast read
/// too).
#[test]
fn reader_during_adds_f64() {
    let window = 2;
    let threads = vec![vec![BIG, 256.0], vec![512.0]];
    let partial = partial_windows(&threads, window);
    let finals = final_windows(&threads, window);
    during_adds(
        "reader_during_adds_f64",
        2,
        move || ShardedAverage::<f64>::new(window).unwrap(),
        threads,
        move |m| {
            let seen = m.to_vec();
            assert!(partial.contains(&seen), "read {seen:?}");
            let avg = m.exact_average();
            assert!(
                partial.iter().any(|w| float_mean(w) == avg),
                "average {avg:?} is the mean of no allowed subset"
            );
        },
        move |m| {
            let w = m.to_vec();
            assert!(finals.contains(&w), "final {w:?}");
            assert_eq!(m.exact_average(), float_mean(&w));
            assert_eq!(m.average(), float_mean(&w));
            assert_eq!(m.sum(), w.iter().sum::<f64>());
        },
    );
}

/// The average the exact (or fast) read may return while one writer adds `1, 2, ...` to a
/// window of 2, `completed` of them done when the read began: that of the window at some
/// ticket `T` at or after `completed`, less at most its newest element (the only one that can
/// be in flight with one writer).
fn wrap_allowed(avg: Option<f64>, completed: i64, adds: i64) -> bool {
    (completed..=adds).any(|t| {
        let full: Vec<i64> = ((t - 1).max(1)..=t).filter(|&v| v >= 1).collect();
        avg == int_mean(&full)
            || (t > completed && avg == int_mean(&full[..full.len().saturating_sub(1)]))
    })
}

/// One writer adds `1..=adds` to a window of 2; it adds the first `before` alone, then the rest
/// while the main thread runs `read`, which returns the average (`None` if the read gave up):
/// an allowed one for the elements completed when it began (`what` names it in a failure).
/// The writer's first adds do not race with anything, which keeps the model small while the
/// writer retires and reuses its blocks during the read.
fn run_wrap_model(
    name: &'static str,
    bound: usize,
    adds: i64,
    before: i64,
    what: &'static str,
    read: impl Fn(&ShardedAverage<i64>) -> Option<Option<f64>> + Send + Sync + 'static,
) {
    use loom::sync::atomic::{AtomicU64, Ordering::SeqCst};
    reference::model(name, bound, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(2).unwrap());
        let done = Arc::new(AtomicU64::new(0));
        let h = {
            let (m, done) = (m.clone(), done.clone());
            thread::spawn(move || {
                for v in 1..=adds {
                    m.push(v);
                    done.store(v as u64, SeqCst);
                }
            })
        };
        while (done.load(SeqCst) as i64) < before {
            thread::yield_now();
        }
        let completed = done.load(SeqCst) as i64;
        if let Some(avg) = read(&m) {
            assert!(
                wrap_allowed(avg, completed, adds),
                "{what} {avg:?} after {completed} completed adds"
            );
        }
        h.join().unwrap();
        assert_eq!(m.to_vec(), [adds - 1, adds]);
        assert_eq!(m.sum(), i128::from(2 * adds - 1));
        assert_eq!(m.fast_average(), Some(int_mean(&[adds - 1, adds])));
    });
}

/// One writer retires its shard's blocks (2 elements each under loom, window 2) and reuses them
/// as it goes on adding, while a reader runs the exact read: the reader meets rewritten slots
/// and checkpoints and must start over. (The model's name is from when shards were rings.)
#[test]
fn reader_during_block_retirement() {
    run_wrap_model("reader_during_block_retirement", 3, 16, 8, "average", |m| {
        Some(m.exact_average())
    });
}

/// The fast read while one writer retires and reuses its blocks: the shard's summary changes
/// under the reader, which walks slots that the writer may be rewriting. A fast read either
/// gives up or returns an allowed average.
#[test]
fn fast_read_during_block_retirement() {
    run_wrap_model(
        "fast_read_during_block_retirement",
        3,
        10,
        6,
        "fast average",
        |m| m.fast_average(),
    );
}

/// The fast read while `threads` add to a window of `window`: every average it returns is
/// `mean` of a subset of a window that existed during the read, as for the exact read. Once
/// the writers are joined the window is one an interleaving leaves, and `after` checks the
/// reads of it.
fn fast_read_during_adds<T>(
    name: &str,
    preemptions: usize,
    (window, threads): (usize, Vec<Vec<T>>),
    mean: fn(&[T]) -> Option<f64>,
    after: impl Fn(&ShardedAverage<T>, &[T]) + Send + Sync + 'static,
) where
    T: mavg::Sample + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    let partial = partial_windows(&threads, window);
    let finals = final_windows(&threads, window);
    let during = move |m: &ShardedAverage<T>| {
        if let Some(avg) = m.fast_average() {
            assert!(
                partial.iter().any(|w| mean(w) == avg),
                "fast average {avg:?} is the mean of no allowed subset"
            );
        }
    };
    let new = move || ShardedAverage::<T>::new(window).unwrap();
    during_adds(name, preemptions, new, threads, during, move |m| {
        let w = m.to_vec();
        assert!(finals.contains(&w), "final {w:?}");
        after(m, &w);
    });
}

/// The fast read while two threads add. Once the writers are joined it does not give up, and
/// it agrees with the exact read.
#[test]
fn fast_read_during_adds_i64() {
    let adds = (2, vec![vec![1i64, 2], vec![4]]);
    fast_read_during_adds("fast_read_during_adds_i64", 3, adds, int_mean, |m, w| {
        assert_eq!(m.fast_average(), Some(int_mean(w)));
        assert_eq!(m.average(), int_mean(w));
    });
}

/// The same with floats, where the fast read rounds the shards' fixed-point sums (on a grid the
/// first add places): `2^60` enters and leaves the window, so a sum that kept its trace would
/// be visibly wrong.
#[test]
fn fast_read_during_adds_f64() {
    let adds = (1, vec![vec![BIG, 256.0], vec![512.0]]);
    fast_read_during_adds("fast_read_during_adds_f64", 2, adds, float_mean, |m, w| {
        assert_eq!(m.average(), float_mean(w));
    });
}

/// Threads add and exit; a later thread may take over a shard a finished thread released
/// (the lease's Release store pairs with the claim's Acquire). Loom runs a thread's
/// thread-local destructors after `join` returns, so the third thread sometimes finds both
/// shards still claimed and links a third: the model checks the state is exact either way,
/// and that the hand-off path did run in some executions.
#[test]
fn shard_handoff() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let window = 3;
    let threads = vec![vec![1i64, 2], vec![3]];
    let allowed = final_windows(&threads, window);
    let handoffs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = handoffs.clone();
    reference::model("shard_handoff", 3, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(window).unwrap());
        let first = spawn_pushes(&m, threads[0].clone());
        let second = spawn_pushes(&m, threads[1].clone());
        first.join().unwrap();
        second.join().unwrap();
        spawn_pushes(&m, vec![4]).join().unwrap();
        let w = m.to_vec();
        let expect: Vec<Vec<i64>> = allowed
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.push(4);
                a.split_off(a.len().saturating_sub(window))
            })
            .collect();
        assert!(expect.contains(&w), "{w:?}");
        assert_eq!(m.sum(), w.iter().map(|&x| i128::from(x)).sum::<i128>());
        assert_eq!(m.average(), int_mean(&w));
        let shards = m.shard_count();
        assert!(shards <= 3, "{shards} shards");
        if shards < 3 {
            counter.fetch_add(1, Relaxed);
        }
    });
    assert!(handoffs.load(Relaxed) > 0, "no execution reused a shard");
}

/// `clear` runs concurrently with two adds: afterwards the window holds exactly the adds that
/// drew their tickets after the clear, a suffix of the thread's order.
#[test]
fn clear_during_adds() {
    let window = 3;
    reference::model("clear_during_adds", 3, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(window).unwrap());
        let h = spawn_pushes(&m, vec![1, 2]);
        m.clear();
        h.join().unwrap();
        let w = m.to_vec();
        assert!([vec![], vec![2], vec![1, 2]].contains(&w), "{w:?}");
        assert_eq!(m.len(), w.len());
        assert_eq!(m.sum(), w.iter().map(|&x| i128::from(x)).sum::<i128>());
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.average(), None);
    });
}

/// Element access while adds run: `get` and `newest` return elements that were pushed, and
/// `get(i)` of the final state returns the window in order.
#[test]
fn element_access_during_adds() {
    let window = 2;
    let threads = vec![vec![1i64, 2], vec![3]];
    let finals = final_windows(&threads, window);
    during_adds(
        "element_access_during_adds",
        2,
        move || ShardedAverage::<i64>::new(window).unwrap(),
        threads,
        |m| {
            for x in [m.get(1), m.oldest()].into_iter().flatten() {
                assert!([1, 2, 3].contains(&x), "read {x}");
            }
        },
        move |m| {
            let w: Vec<i64> = (0..window).filter_map(|i| m.get(i)).collect();
            assert!(finals.contains(&w), "{w:?}");
        },
    );
}

/// A block retired by one shard is taken by another while a reader is still inside it. The
/// main thread adds `1..=6` to a window of 2 (blocks of 2 elements under loom), which retires
/// its first block and gives it back to the pool; a second thread then adds two elements: its
/// new shard takes that block and its first add writes into it. A reader started after
/// the first two adds either never reads the block after its reuse or sees that it was retired
/// and starts over: every average it returns is the mean of a subset of a window that existed.
#[test]
fn reader_during_block_reuse() {
    let adds: Vec<i64> = vec![1, 2, 3, 4, 5, 6, 100, 200];
    // The window at each ticket `T >= 2` (the reader starts after two adds), less at most its
    // newest element (one add in flight at a time).
    let allowed: Vec<Option<f64>> = (2..=adds.len())
        .flat_map(|t| {
            let full = &adds[t - 2..t];
            [int_mean(full), int_mean(&full[..1])]
        })
        .collect();
    reference::model("reader_during_block_reuse", 3, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(2).unwrap());
        m.push(1);
        m.push(2);
        let reader = {
            let m = m.clone();
            thread::spawn(move || m.exact_average())
        };
        for v in 3..=6 {
            m.push(v);
        }
        spawn_pushes(&m, vec![100, 200]).join().unwrap();
        let avg = reader.join().unwrap();
        assert!(allowed.contains(&avg), "average {avg:?} is not allowed");
        assert_eq!(m.to_vec(), [100, 200]);
        assert_eq!(m.average(), Some(150.0));
    });
}

/// A shard's thread stops adding while its elements leave the window; another shard steals its
/// oldest block and writes into it while the first thread resumes and evicts from that block.
/// The main thread adds `1..=6` to a window of 6 (blocks of 2 under loom) and waits; a second
/// thread adds five elements, stealing the main thread's first block at its fourth add and
/// writing into it at its fifth, while the main thread adds two more. The owner must notice
/// the steal: the final window, its sum and both reads' averages are exact.
#[test]
fn owner_resumes_while_its_blocks_are_stolen() {
    use loom::sync::atomic::{AtomicU64, Ordering::SeqCst};
    let window = 6;
    let late = vec![10i64, 20, 30, 40, 50];
    let threads = vec![vec![7i64, 8], late.clone()];
    let finals: Vec<Vec<i64>> = reference::interleavings(&threads)
        .into_iter()
        .map(|order| reference::window_after(&order, window))
        .collect();
    reference::model("owner_resumes_while_its_blocks_are_stolen", 3, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(window).unwrap());
        m.steal_from_the_start();
        for v in 1..=6 {
            m.push(v);
        }
        let done = Arc::new(AtomicU64::new(0));
        let h = {
            let (m, done, late) = (m.clone(), done.clone(), late.clone());
            thread::spawn(move || {
                for (k, v) in late.into_iter().enumerate() {
                    m.push(v);
                    done.store(k as u64 + 1, SeqCst);
                }
            })
        };
        while done.load(SeqCst) < 3 {
            thread::yield_now();
        }
        m.push(7);
        m.push(8);
        h.join().unwrap();
        let w = m.to_vec();
        assert!(finals.contains(&w), "final {w:?}");
        assert_eq!(m.sum(), w.iter().map(|&x| i128::from(x)).sum::<i128>());
        assert_eq!(m.exact_average(), int_mean(&w));
        assert_eq!(m.fast_average(), Some(int_mean(&w)));
    });
}

/// The fast read while another shard steals a block of an idle shard and writes into it. The
/// main thread adds `1..=4` to a window of 3 (blocks of 2 under loom) and stops: its shard
/// summarizes elements `1..4` (values 2, 3, 4) and holds block 0, where element 1 is. A second
/// thread adds six elements; before its fourth it lets blocks be stolen, and its fourth add
/// steals the main thread's block 0 (element 2, the first of block 1, has left the window)
/// and its fifth and sixth write into it. A steal does not change the owner's `version`, so a
/// fast read that loaded the counter after the second thread's second add (its window still
/// holds element 3 of the main shard) and walks block 0 from the summary's start must see the
/// block retired (`retired_below`) and give up: otherwise it takes the new elements for the
/// idle shard's. Every average it returns is that of a window at a ticket at or after the
/// read began, less at most its newest element (one add in flight).
#[test]
fn fast_read_during_steal() {
    use loom::sync::atomic::{AtomicU64, Ordering::SeqCst};
    let window = 3;
    let mine = [1i64, 2, 3, 4];
    let late = [100i64, 200, 300, 400, 500, 600];
    let adds: Vec<i64> = mine.iter().chain(&late).copied().collect();
    let allowed: Vec<Option<f64>> = (6..=adds.len())
        .flat_map(|t| {
            let full = &adds[t - window..t];
            [int_mean(full), int_mean(&full[..window - 1])]
        })
        .collect();
    reference::model("fast_read_during_steal", 2, move || {
        let m = Arc::new(ShardedAverage::<i64>::new(window).unwrap());
        for v in mine {
            m.push(v);
        }
        let done = Arc::new(AtomicU64::new(0));
        let h = {
            let (m, done) = (m.clone(), done.clone());
            thread::spawn(move || {
                for (k, v) in late.into_iter().enumerate() {
                    if k == 2 {
                        // Earlier searches found nothing to steal and raised the threshold.
                        m.steal_from_the_start();
                    }
                    m.push(v);
                    done.store(k as u64 + 1, SeqCst);
                }
            })
        };
        while done.load(SeqCst) < 2 {
            thread::yield_now();
        }
        if let Some(avg) = m.fast_average() {
            assert!(
                allowed.contains(&avg),
                "fast average {avg:?} is not allowed"
            );
        }
        h.join().unwrap();
        assert_eq!(m.to_vec(), [400, 500, 600]);
        assert_eq!(m.fast_average(), Some(Some(500.0)));
        assert_eq!(m.exact_average(), Some(500.0));
    });
}
