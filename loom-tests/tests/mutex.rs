//! Loom models of `MutexAverage`: reads are linearizable, so every read must return exactly
//! a window that existed after some prefix of some order of the adds.
#![cfg(loom)]

mod harness;
mod reference;

use harness::{during_adds, spawn_pushes};
use loom::sync::Arc;
use mavg::MutexAverage;
use reference::{final_windows, int_mean, intermediate_windows};

#[test]
fn two_writers_and_a_reader() {
    let window = 2;
    let threads = vec![vec![1i64, 2], vec![10]];
    let intermediate = intermediate_windows(&threads, window);
    let finals = final_windows(&threads, window);
    // Reads are linearizable: each returns a window that existed.
    let during = move |m: &MutexAverage<i64>| {
        let seen = m.to_vec();
        assert!(intermediate.contains(&seen), "read {seen:?}");
        let avg = m.average();
        assert!(intermediate.iter().any(|w| int_mean(w) == avg), "{avg:?}");
    };
    let after = move |m: &MutexAverage<i64>| {
        let w = m.to_vec();
        assert!(finals.contains(&w), "{w:?}");
        assert_eq!(m.average(), int_mean(&w));
        assert_eq!(m.sum(), w.iter().map(|&x| i128::from(x)).sum::<i128>());
    };
    let new = move || MutexAverage::<i64>::new(window).unwrap();
    during_adds("two_writers_and_a_reader", 3, new, threads, during, after);
}

#[test]
fn clear_during_adds() {
    reference::model("clear_during_adds", 3, || {
        let m = Arc::new(MutexAverage::<i64>::new(3).unwrap());
        let h = spawn_pushes(&m, vec![1, 2]);
        m.clear();
        h.join().unwrap();
        let w = m.to_vec();
        assert!([vec![], vec![2], vec![1, 2]].contains(&w), "{w:?}");
    });
}
