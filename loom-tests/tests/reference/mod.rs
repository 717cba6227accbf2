//! What the contract allows, enumerated from the ring-buffer reference over every order of
//! adds consistent with each thread's own order.

#![allow(dead_code)]

use std::collections::VecDeque;

/// Every interleaving of the threads' sequences that keeps each thread's order.
pub fn interleavings<T: Copy>(threads: &[Vec<T>]) -> Vec<Vec<T>> {
    fn go<T: Copy>(
        threads: &[Vec<T>],
        pos: &mut Vec<usize>,
        cur: &mut Vec<T>,
        out: &mut Vec<Vec<T>>,
    ) {
        let mut done = true;
        for t in 0..threads.len() {
            if pos[t] < threads[t].len() {
                done = false;
                cur.push(threads[t][pos[t]]);
                pos[t] += 1;
                go(threads, pos, cur, out);
                pos[t] -= 1;
                cur.pop();
            }
        }
        if done {
            out.push(cur.clone());
        }
    }
    let mut out = Vec::new();
    go(
        threads,
        &mut vec![0; threads.len()],
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// The ring buffer's window after adding `seq` in order.
pub fn window_after<T: Copy>(seq: &[T], window: usize) -> Vec<T> {
    let mut w = VecDeque::new();
    for &x in seq {
        if w.len() == window {
            w.pop_front();
        }
        w.push_back(x);
    }
    w.into_iter().collect()
}

fn push_unique<T: PartialEq>(out: &mut Vec<T>, x: T) {
    if !out.contains(&x) {
        out.push(x);
    }
}

/// Windows allowed once every add has finished: one per interleaving.
pub fn final_windows<T: Copy + PartialEq>(threads: &[Vec<T>], window: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    for order in interleavings(threads) {
        push_unique(&mut out, window_after(&order, window));
    }
    out
}

/// Windows that exist at some moment: after every prefix of every interleaving, the empty
/// prefix included. A linearizable read returns one of these exactly.
pub fn intermediate_windows<T: Copy + PartialEq>(threads: &[Vec<T>], window: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    for order in interleavings(threads) {
        for k in 0..=order.len() {
            push_unique(&mut out, window_after(&order[..k], window));
        }
    }
    out
}

/// Every subsequence of every intermediate window: what a sharded read may see (the window
/// when it loaded the ticket counter, less adds that had drawn a ticket but not published).
pub fn partial_windows<T: Copy + PartialEq>(threads: &[Vec<T>], window: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    for w in intermediate_windows(threads, window) {
        for mask in 0u32..(1 << w.len()) {
            let sub = (0..w.len())
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| w[i])
                .collect::<Vec<T>>();
            push_unique(&mut out, sub);
        }
    }
    out
}

/// The exact mean of small integers: one IEEE division of exact operands, correctly rounded.
pub fn int_mean(w: &[i64]) -> Option<f64> {
    (!w.is_empty()).then(|| w.iter().sum::<i64>() as f64 / w.len() as f64)
}

/// The mean of floats whose every partial sum is exact (the models use `2^60` and small
/// multiples of 256): one IEEE division of exact operands, correctly rounded.
pub fn float_mean(w: &[f64]) -> Option<f64> {
    (!w.is_empty()).then(|| w.iter().sum::<f64>() / w.len() as f64)
}

/// Runs a loom model with at most `preemptions` preemptions (lower if `LOOM_MAX_PREEMPTIONS`
/// says so) and prints how many executions loom explored, for `notes/verification.md`.
pub fn model<F: Fn() + Sync + Send + 'static>(name: &str, preemptions: usize, f: F) {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let start = std::time::Instant::now();
    // Reads of f64 checkpoints load 69 limbs each: more branches than loom's default 1,000.
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    let bound = builder
        .preemption_bound
        .map_or(preemptions, |b| b.min(preemptions));
    builder.preemption_bound = Some(bound);
    builder.check(move || {
        counter.fetch_add(1, Relaxed);
        f();
    });
    println!(
        "model {name}: {} executions at {bound} preemptions in {:.2?}",
        runs.load(Relaxed),
        start.elapsed()
    );
}
