//! A thread's exit is an ordering point of the relaxed order, checked with std threads: loom
//! runs a thread's thread-local destructors, where its lease releases its shard, after `join`
//! returns, so no loom model can make the release happen before a later add without a claim of
//! the released shard, which is an ordering point of its own (see `tests/relaxed.rs`). std's
//! `join` returns after the destructors ran.
//!
//! Built without `--cfg loom`: `cargo test` runs it, and `loom-tests/run` runs it again with
//! `--cfg mavg_planted_bug="release_unordered"`, where it must fail.
#![cfg(not(loom))]

use std::sync::mpsc;
use std::thread;

use mavg::ShardedAverage;

/// A second thread adds 10, the main thread `1, 2` (tickets 1 and `2..=3`: ticket 3 is to
/// spare, drawn before the second thread's next add), the second thread adds 20 and exits, and
/// the main thread joins it and adds 3. The exit is an ordering point between 20 and 3, so 3
/// is the newest element; 20 may be ordered before 2 (no ordering point between them), so the
/// window of 2 is `[20, 3]` or `[2, 3]`, never `[3, 20]`.
#[test]
fn thread_exit_orders_later_adds() {
    let m = ShardedAverage::<i64>::relaxed(2, 8).unwrap();
    thread::scope(|s| {
        let (added, wait_added) = mpsc::channel();
        let (go, wait_go) = mpsc::channel();
        let m = &m;
        let other = s.spawn(move || {
            m.push(10);
            added.send(()).unwrap();
            wait_go.recv().unwrap();
            m.push(20);
        });
        wait_added.recv().unwrap();
        m.push(1);
        m.push(2);
        go.send(()).unwrap();
        other.join().unwrap();
        m.push(3);
    });
    let w = m.to_vec();
    assert!(w == [20, 3] || w == [2, 3], "{w:?}: 3 is not the newest");
}
