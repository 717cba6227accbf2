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

/// The contract of the relaxed order (`ShardedAverage::relaxed`) for a few adds with distinct
/// values: one total order of the adds that keeps each thread's order, in which
///
/// * an add that returned before an ordering point (a read, `clear`, `flush`, a thread's first
///   add, a thread's exit) is before every add that started after it (`order_point`);
/// * an add `y` that happens after an add `x` with no ordering point between them may be
///   before `x`, by fewer than `slack` places (`happens_before`).
///
/// A model states the ordering points and the happens-before edges its own synchronization
/// establishes (those it cannot be sure of stay out: the check is then more permissive, never
/// wrong); the reference enumerates the orders they allow.
#[derive(Debug, Clone)]
pub struct Relaxed<T> {
    threads: Vec<Vec<T>>,
    pub window: usize,
    slack: usize,
    /// `(x, y)`: `x` is before `y` in every allowed order.
    ordered: Vec<(T, T)>,
    /// `(x, y)`: `x` happens before `y`; `y` may be before `x` by fewer than `slack` places.
    happens_before: Vec<(T, T)>,
}

impl<T: Copy + PartialEq + std::fmt::Debug> Relaxed<T> {
    /// The adds of each thread, in its own order (values distinct across all threads).
    pub fn new(threads: Vec<Vec<T>>, window: usize, slack: usize) -> Self {
        let all: Vec<T> = threads.iter().flatten().copied().collect();
        for (i, x) in all.iter().enumerate() {
            assert!(!all[..i].contains(x), "values must be distinct: {x:?}");
        }
        Relaxed {
            threads,
            window,
            slack,
            ordered: Vec::new(),
            happens_before: Vec::new(),
        }
    }

    /// An ordering point that every add in `before` returned before (happens-before) and every
    /// add in `after` started after.
    pub fn order_point(mut self, before: &[T], after: &[T]) -> Self {
        for &x in before {
            for &y in after {
                self.ordered.push((x, y));
                self.happens_before.push((x, y));
            }
        }
        self
    }

    /// Every add in `before` happens before every add in `after`, with no ordering point known
    /// between them.
    pub fn happens_before(mut self, before: &[T], after: &[T]) -> Self {
        for &x in before {
            for &y in after {
                self.happens_before.push((x, y));
            }
        }
        self
    }

    /// Whether `order` (every add once) is one the contract allows.
    pub fn allows(&self, order: &[T]) -> bool {
        let pos = |v: T| {
            order
                .iter()
                .position(|&x| x == v)
                .expect("an add of the model")
        };
        let per_thread = self
            .threads
            .iter()
            .all(|t| t.windows(2).all(|w| pos(w[0]) < pos(w[1])));
        per_thread
            && self.ordered.iter().all(|&(x, y)| pos(x) < pos(y))
            && self
                .happens_before
                .iter()
                .all(|&(x, y)| pos(y) > pos(x) || pos(x) - pos(y) < self.slack)
    }

    /// Every allowed total order.
    pub fn orders(&self) -> Vec<Vec<T>> {
        interleavings(&self.threads)
            .into_iter()
            .filter(|o| self.allows(o))
            .collect()
    }

    /// The windows allowed once every add has finished: the last `window` of each allowed
    /// order.
    pub fn final_windows(&self) -> Vec<Vec<T>> {
        let mut out = Vec::new();
        for order in self.orders() {
            push_unique(&mut out, window_after(&order, self.window));
        }
        out
    }

    /// What a read concurrent with adds may return if the adds end up in `order`: at most
    /// `window` elements, in `order`'s order, each in `started` (adds that may have started
    /// before the read ended) and none out of the window when the read began (`window` adds
    /// of `done`, those known complete when it began, after it in `order`).
    pub fn reads(&self, order: &[T], done: &[T], started: &[T]) -> Vec<Vec<T>> {
        let pos = |v: T| {
            order
                .iter()
                .position(|&x| x == v)
                .expect("an add of the model")
        };
        let candidates: Vec<T> = order
            .iter()
            .copied()
            .filter(|&e| {
                started.contains(&e)
                    && done.iter().filter(|&&f| pos(f) > pos(e)).count() < self.window
            })
            .collect();
        let mut out = Vec::new();
        for mask in 0u32..(1 << candidates.len()) {
            if mask.count_ones() as usize <= self.window {
                let sub = (0..candidates.len())
                    .filter(|i| mask >> i & 1 == 1)
                    .map(|i| candidates[i])
                    .collect();
                push_unique(&mut out, sub);
            }
        }
        out
    }
}
