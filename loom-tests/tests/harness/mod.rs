//! What the loom models do alike: threads that add, and the main thread reading while they run.

#![allow(dead_code)]

use loom::sync::Arc;
use loom::thread;
use mavg::{ShardedAverage, SharedMovingAverage};

use crate::reference::int_mean;

/// Starts a thread that adds `values` to `m`, in order.
pub fn spawn_pushes<M>(m: &Arc<M>, values: Vec<M::Item>) -> thread::JoinHandle<()>
where
    M: SharedMovingAverage + Send + 'static,
    M::Item: Send,
{
    let m = m.clone();
    thread::spawn(move || {
        for v in values {
            m.push(v);
        }
    })
}

/// Runs the loom model `name` (see [`crate::reference::model`]) in which each of `threads`
/// adds its values in order, in a thread of its own, to the moving average `new` makes, while
/// the main thread runs `during`; the main thread then joins them and runs `after`.
pub fn during_adds<M>(
    name: &str,
    preemptions: usize,
    new: impl Fn() -> M + Send + Sync + 'static,
    threads: Vec<Vec<M::Item>>,
    during: impl Fn(&M) + Send + Sync + 'static,
    after: impl Fn(&M) + Send + Sync + 'static,
) where
    M: SharedMovingAverage + Send + 'static,
    M::Item: Send + Sync,
{
    crate::reference::model(name, preemptions, move || {
        let m = Arc::new(new());
        let hs: Vec<_> = threads
            .iter()
            .map(|t| spawn_pushes(&m, t.clone()))
            .collect();
        during(&m);
        hs.into_iter().for_each(|h| h.join().unwrap());
        after(&m);
    });
}

/// Once adds have stopped, every read agrees with the window `w`: length, exact sum, correctly
/// rounded mean, and element access in order.
pub fn assert_exact(m: &ShardedAverage<i64>, w: &[i64]) {
    assert_eq!(m.len(), w.len());
    assert_eq!(m.sum(), w.iter().map(|&x| i128::from(x)).sum::<i128>());
    assert_eq!(m.average(), int_mean(w));
    assert_eq!(m.oldest(), w.first().copied());
    assert_eq!(m.newest(), w.last().copied());
    for (i, &x) in w.iter().enumerate() {
        assert_eq!(m.get(i), Some(x), "get({i}) of {w:?}");
    }
    assert_eq!(m.get(w.len()), None);
}
