//! Loom models of `ShardedAverage`'s relaxed order (`ShardedAverage::relaxed`): every outcome
//! loom can produce must be explained by one total order of the adds that the relaxed contract
//! allows (`reference::Relaxed`): each thread's order kept, adds separated by an ordering point
//! in that order, and an add ordered before one that happened before it by fewer than `slack`
//! places.
//!
//! A thread's first add claims a shard, which is an ordering point, so a batch of tickets can
//! outlive another thread's add only if both threads had claimed their shards before the batch
//! was drawn; and batches start at one ticket and double each time one is used up, so a thread
//! holds a ticket to spare only after its second add. The models that need a batch drawn
//! before an ordering point and used after it therefore take turns (`wait_for`): a second
//! thread adds first, then the main thread adds `1, 2` (tickets 1 and `2..=3`, so ticket 3 is
//! to spare), then the second thread adds again, then comes the ordering point, then the main
//! thread adds 3.
//!
//! A thread's exit is an ordering point too, but loom runs thread-local destructors (where the
//! lease releases the shard) after `join` returns, and the only way another thread can learn
//! of a release is to claim the released shard, itself an ordering point: no loom model can
//! tell a release that orders from one that does not. `tests/exit.rs` checks it with std
//! threads, whose `join` waits for the destructors.
//!
//! Run with `loom-tests/run` (or see `notes/verification.md` for the flags).
#![cfg(loom)]

mod harness;
mod reference;

use harness::{assert_exact, spawn_pushes};
use loom::sync::atomic::{AtomicU64, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;
use mavg::ShardedAverage;
use reference::{window_after, Relaxed};

/// Large enough that two threads draw batches of two tickets (`slack / (2 * shards)`).
const SLACK: usize = 8;

/// Waits until the threads' shared turn is `k`.
fn wait_for(turn: &AtomicU64, k: u64) {
    while turn.load(SeqCst) != k {
        thread::yield_now();
    }
}

/// The main thread and a second thread add concurrently; the main thread joins the other and
/// reads. No ordering point is known to separate their adds, so any interleaving is allowed,
/// and the window must be exactly the last `window` elements of one. The main thread draws
/// batches of 1 and 2 tickets and uses 2 of the 3, so the ticket space has a hole that reads
/// must count around. (Two shards are allocated up front: linking one under loom multiplies
/// the executions, and the strict models cover it.)
#[test]
fn two_writers_final_state() {
    for window in 2..=3 {
        let threads = vec![vec![1i64, 2], vec![10]];
        let allowed = Relaxed::new(threads.clone(), window, SLACK).final_windows();
        reference::model(
            &format!("relaxed::two_writers_final_state window {window}"),
            2,
            move || {
                let m =
                    Arc::new(ShardedAverage::<i64>::relaxed_with_shards(window, SLACK, 2).unwrap());
                let h = spawn_pushes(&m, threads[1].clone());
                threads[0].iter().for_each(|&v| m.push(v));
                h.join().unwrap();
                let w = m.to_vec();
                assert!(
                    allowed.contains(&w),
                    "window {window}: {w:?} not in {allowed:?}"
                );
                assert_exact(&m, &w);
            },
        );
    }
}

/// The adds of [`reader_during_adds`] and [`ordering_points_retire_a_stale_batch`]: the second
/// thread adds 10, the main thread `1, 2`, the second thread 20, then comes an ordering point,
/// then the main thread adds 3 (and in the first model, the second thread adds 30 meanwhile).
fn turns_spec(window: usize, other: &[i64]) -> Relaxed<i64> {
    Relaxed::new(vec![vec![1i64, 2, 3], other.to_vec()], window, SLACK)
        // The main thread's first add, after 10 returned.
        .order_point(&[10], &[1, 2, 3])
        // 20 starts after 1 and 2 returned, with no ordering point between.
        .happens_before(&[1, 2], &other[1..])
        // The ordering point: 20 returned before it, 3 starts after it.
        .order_point(&[10, 1, 2, 20], &[3])
}

/// The turns of [`turns_spec`] up to the ordering point, in a relaxed moving average of
/// `window`: a second thread adds 10, the main thread `1, 2`, the second thread 20, runs
/// `then_20` and hands the turn back, then runs `last` and ends. Returns, on the main thread
/// once it has the turn back, the moving average, the turn counter (which the model keeps
/// until it ends, as it keeps the moving average) and the second thread.
fn take_turns(
    window: usize,
    then_20: impl FnOnce(&ShardedAverage<i64>) + Send + 'static,
    last: impl FnOnce(&ShardedAverage<i64>) + Send + 'static,
) -> (
    Arc<ShardedAverage<i64>>,
    Arc<AtomicU64>,
    thread::JoinHandle<()>,
) {
    let m = Arc::new(ShardedAverage::<i64>::relaxed(window, SLACK).unwrap());
    let turn = Arc::new(AtomicU64::new(0));
    let h = {
        let (m, turn) = (m.clone(), turn.clone());
        thread::spawn(move || {
            m.push(10);
            turn.store(1, SeqCst);
            wait_for(&turn, 2);
            m.push(20);
            then_20(&m);
            turn.store(3, SeqCst);
            last(&m);
        })
    };
    wait_for(&turn, 1);
    m.push(1);
    m.push(2);
    turn.store(2, SeqCst);
    wait_for(&turn, 3);
    (m, turn, h)
}

/// A read runs while the second thread adds 30, after it added 20: the read is an ordering
/// point, so the main thread's add after it, which would otherwise use its ticket to spare
/// (drawn before 20's), must be ordered after 20. The read returns at most `window` elements
/// in the order's order, none out of the window when it began, and the final window must come
/// from the same order as the read. Fails with `--cfg mavg_planted_bug="stale_batch"`.
#[test]
fn reader_during_adds() {
    let window = 3;
    let spec = turns_spec(window, &[10, 20, 30]);
    assert!(!spec.allows(&[10, 1, 2, 3, 20, 30]));
    let orders = spec.orders();
    reference::model("relaxed::reader_during_adds", 2, move || {
        let (m, _turn, h) = take_turns(window, |_| {}, |m| m.push(30));
        let seen = m.to_vec();
        m.push(3);
        h.join().unwrap();
        let w = m.to_vec();
        let explained = orders.iter().any(|o| {
            window_after(o, window) == w
                && spec
                    .reads(o, &[10, 1, 2, 20], &[10, 1, 2, 20, 30])
                    .contains(&seen)
        });
        assert!(
            explained,
            "read {seen:?} then final {w:?}: no allowed order explains both"
        );
        assert_exact(&m, &w);
    });
}

/// The ordering point between the second thread's add of 20 and the main thread's add of 3 is
/// `flush()` by the main thread, or a read by the second thread: 3 must come after 20, though
/// the main thread holds a ticket drawn before 20's. Fails with
/// `--cfg mavg_planted_bug="stale_batch"`.
#[test]
fn ordering_points_retire_a_stale_batch() {
    let window = 2;
    let spec = turns_spec(window, &[10, 20]);
    assert!(!spec.allows(&[10, 1, 2, 3, 20]));
    let allowed = spec.final_windows();
    for read in [false, true] {
        let allowed = allowed.clone();
        let how = if read { "a read" } else { "flush" };
        reference::model(
            &format!("relaxed::ordering_points_retire_a_stale_batch ({how})"),
            2,
            move || {
                let then_20 = move |m: &ShardedAverage<i64>| {
                    if read {
                        assert_eq!(m.len(), 2);
                    }
                };
                let (m, _turn, h) = take_turns(window, then_20, |_| {});
                if !read {
                    m.flush();
                }
                m.push(3);
                h.join().unwrap();
                let w = m.to_vec();
                assert!(allowed.contains(&w), "{how}: {w:?} not in {allowed:?}");
                assert_exact(&m, &w);
            },
        );
    }
}

/// A thread's first add is an ordering point: the main thread adds `1, 2`, a second thread
/// adds 10 and is joined, a third thread adds 20 and is joined, then the main thread adds 3,
/// which must be ordered after 10 (10 returned before the third thread's first add, and 3
/// started after it). The second thread's exit, which would order them too, may come after 3
/// under loom. Fails with `--cfg mavg_planted_bug="first_add_unordered"`.
#[test]
fn first_add_orders_later_adds() {
    let window = 3;
    let spec = Relaxed::new(vec![vec![1i64, 2, 3], vec![10], vec![20]], window, SLACK)
        // The second and third threads' first adds, after 1 and 2 returned.
        .order_point(&[1, 2], &[10, 20, 3])
        // The third thread's first add, after 10 returned.
        .order_point(&[10], &[20, 3])
        .happens_before(&[20], &[3]);
    assert!(!spec.allows(&[1, 2, 3, 10, 20]));
    let allowed = spec.final_windows();
    reference::model("relaxed::first_add_orders_later_adds", 3, move || {
        let m = Arc::new(ShardedAverage::<i64>::relaxed(window, SLACK).unwrap());
        m.push(1);
        m.push(2);
        spawn_pushes(&m, vec![10]).join().unwrap();
        spawn_pushes(&m, vec![20]).join().unwrap();
        m.push(3);
        let w = m.to_vec();
        assert!(allowed.contains(&w), "{w:?} not in {allowed:?}");
        assert_exact(&m, &w);
    });
}
