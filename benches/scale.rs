//! Service scale: memory against threads and window, per-key use, construction.
//!
//! `cargo bench --bench scale` prints Markdown tables. Each measurement runs in a fresh child
//! process (this binary, re-run with `MAVG_SCALE_CASE` set), so that resident memory is not
//! confused by what earlier cases freed but the allocator kept.
//!
//! * **threads**: `n` threads alive at once (they wait on a barrier before exiting) add to one
//!   moving average of `f64`, either one element each (`once`) or together four windows
//!   (`fill`). Reported: the growth of the process's resident set (RSS, from `/proc/self/statm`)
//!   between before construction and after every thread has added, less the same figure for a
//!   control run that spawns the threads and adds nothing (their stacks), and
//!   `memory_bytes()` where the type has it.
//! * **keys**: one moving average of `u64` per key, window 16, keys `0..K` in a `Vec` built
//!   up front (`ShardedAverage` and `MutexAverage`), or inserted on first add into a
//!   `Mutex<HashMap<u64, RingAverage>>` or a map striped over 64 mutexes. `t` threads each
//!   make `ADDS_PER_THREAD` adds to keys drawn uniformly; reported: adds per second (wall
//!   time of all threads), and resident bytes per key once every key has been added to.
//! * **first adds**: one thread adds once to each of 100,000 `ShardedAverage`s (window 16):
//!   total time, and the time of the last 1,000 first adds.
//! * **construction**: `ShardedAverage::<f64>::new(2^27)` and `new(2^30)`: time, RSS growth,
//!   and the result.
//!
//! Linux only (it reads `/proc`); elsewhere RSS reads as 0.

mod common;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

use mavg::{MovingAverage, MutexAverage, RingAverage, ShardedAverage, SharedMovingAverage};

use common::XorShift;

const ADDS_PER_THREAD: usize = 4_000_000;
const THREAD_COUNTS: [usize; 5] = [1, 2, 8, 64, 256];
/// The window of each per-key average.
const KEY_WINDOW: usize = 16;

/// The chart's data, for `benches/summarize.py --memory-json` to draw: resident MB against
/// threads alive at once, one series per line.
fn chart_json(series: &[(String, Vec<f64>)]) -> String {
    let threads = THREAD_COUNTS.map(|t| t.to_string()).join(", ");
    let lines: Vec<String> = series
        .iter()
        .map(|(name, mb)| {
            let mb: Vec<String> = mb.iter().map(|v| format!("{v:.3}")).collect();
            format!("    {{\"name\": \"{name}\", \"mb\": [{}]}}", mb.join(", "))
        })
        .collect();
    format!(
        "{{\n  \"threads\": [{threads}],\n  \"series\": [\n{}\n  ]\n}}\n",
        lines.join(",\n")
    )
}

fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn mb(bytes: f64) -> String {
    format!("{:.2}", bytes / 1e6)
}

/// Runs `f` on `n` threads alive at once; returns the RSS growth measured while they are all
/// still alive, after each has run.
fn with_threads(n: usize, f: impl Fn(usize) + Sync) -> usize {
    let before = rss();
    let done = Barrier::new(n + 1);
    let measured = Barrier::new(n + 1);
    let mut after = 0;
    std::thread::scope(|s| {
        for i in 0..n {
            let (f, done, measured) = (&f, &done, &measured);
            s.spawn(move || {
                f(i);
                done.wait();
                measured.wait();
            });
        }
        done.wait();
        after = rss();
        measured.wait();
    });
    after.saturating_sub(before)
}

fn case_threads(kind: &str, n: usize, window: usize, mode: &str) -> String {
    let adds = |n: usize| match mode {
        "once" => 1,
        _ => (4 * window).div_ceil(n),
    };
    let (grown, bytes) = match kind {
        "none" => (with_threads(n, |_| {}), None),
        "ShardedAverage" => {
            let m = ShardedAverage::<f64>::new(window).unwrap();
            let grown = with_threads(n, |i| {
                for k in 0..adds(n) {
                    m.push((i * 7 + k) as f64 * 0.5);
                }
            });
            (grown, Some(m.memory_bytes()))
        }
        "MutexAverage" => {
            let m = MutexAverage::<f64>::new(window).unwrap();
            let grown = with_threads(n, |i| {
                for k in 0..adds(n) {
                    SharedMovingAverage::push(&m, (i * 7 + k) as f64 * 0.5);
                }
            });
            (grown, None)
        }
        "RingAverage" => {
            let before = rss();
            let mut m = RingAverage::<f64>::new(window).unwrap();
            for k in 0..adds(1) {
                MovingAverage::push(&mut m, k as f64 * 0.5);
            }
            (rss().saturating_sub(before), None)
        }
        _ => unreachable!("{kind}"),
    };
    format!("{grown} {}", bytes.map_or("-".into(), |b| b.to_string()))
}

/// Adds `x` to key `k`'s ring, creating it on the key's first add.
fn add_to_ring(map: &mut HashMap<usize, RingAverage<u64>>, k: usize, x: u64) {
    let ring = map
        .entry(k)
        .or_insert_with(|| RingAverage::new(KEY_WINDOW).unwrap());
    MovingAverage::push(ring, x);
}

/// One shard of a striped map: a mutex-guarded `HashMap`.
type Stripe<K, V> = crossbeam_utils::CachePadded<Mutex<HashMap<K, V>>>;

fn case_keys(kind: &str, keys: usize, threads: usize) -> String {
    let before = rss();
    let run = |add: &(dyn Fn(usize, u64) + Sync)| {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15 ^ (t as u64 + 1));
                    for i in 0..ADDS_PER_THREAD {
                        add((rng.next_u64() % keys as u64) as usize, i as u64);
                    }
                });
            }
        });
        start.elapsed()
    };
    let touch_all = |add: &(dyn Fn(usize, u64) + Sync)| {
        for k in 0..keys {
            add(k, 1);
        }
    };
    // Adds to every key once (so that memory per key is that of a used average), then runs
    // the timed adds; returns their wall time and the resident growth.
    let measure = |add: &(dyn Fn(usize, u64) + Sync)| {
        touch_all(add);
        let elapsed = run(add);
        (elapsed, rss() - before)
    };
    let (elapsed, grown) = match kind {
        "ShardedAverage" => {
            let v: Vec<ShardedAverage<u64>> = (0..keys)
                .map(|_| ShardedAverage::new(KEY_WINDOW).unwrap())
                .collect();
            measure(&|k: usize, x: u64| v[k].push(x))
        }
        "MutexAverage" => {
            let v: Vec<MutexAverage<u64>> = (0..keys)
                .map(|_| MutexAverage::new(KEY_WINDOW).unwrap())
                .collect();
            measure(&|k: usize, x: u64| SharedMovingAverage::push(&v[k], x))
        }
        "Mutex<HashMap<RingAverage>>" => {
            let map: Mutex<HashMap<usize, RingAverage<u64>>> = Mutex::new(HashMap::new());
            measure(&|k: usize, x: u64| add_to_ring(&mut map.lock().unwrap(), k, x))
        }
        "striped map of RingAverage" => {
            let hasher = RandomState::new();
            let stripes: Vec<Stripe<usize, RingAverage<u64>>> =
                (0..64).map(|_| Default::default()).collect();
            measure(&|k: usize, x: u64| {
                let stripe = &stripes[(hasher.hash_one(k) % 64) as usize];
                add_to_ring(&mut stripe.lock().unwrap(), k, x);
            })
        }
        _ => unreachable!("{kind}"),
    };
    let mops = (threads * ADDS_PER_THREAD) as f64 / elapsed.as_secs_f64() / 1e6;
    format!("{mops:.2} {}", grown / keys)
}

fn case_first_adds() -> String {
    const AVERAGES: usize = 100_000;
    let before = rss();
    let v: Vec<ShardedAverage<u64>> = (0..AVERAGES)
        .map(|_| ShardedAverage::new(16).unwrap())
        .collect();
    let start = Instant::now();
    let mut last = start;
    for (i, m) in v.iter().enumerate() {
        if i == AVERAGES - 1_000 {
            last = Instant::now();
        }
        m.push(i as u64);
    }
    let total = start.elapsed();
    let tail = last.elapsed();
    format!(
        "{:.1} {:.0} {}",
        total.as_secs_f64() * 1e3,
        tail.as_secs_f64() * 1e9 / 1_000.0,
        (rss() - before) / AVERAGES
    )
}

fn case_construct(log2: u32) -> String {
    let before = rss();
    let start = Instant::now();
    let m = ShardedAverage::<f64>::new(1 << log2);
    let elapsed = start.elapsed();
    let grown = rss() - before;
    let result = match &m {
        Ok(_) => "Ok".to_string(),
        Err(e) => format!("Err({e})"),
    };
    format!(
        "{:.0} {} {}",
        elapsed.as_secs_f64() * 1e6,
        grown,
        result.replace(' ', "_")
    )
}

fn run_case(case: &str) -> String {
    let args: Vec<&str> = case.split(',').collect();
    match args[0] {
        "threads" => case_threads(
            args[1],
            args[2].parse().unwrap(),
            args[3].parse().unwrap(),
            args[4],
        ),
        "keys" => case_keys(args[1], args[2].parse().unwrap(), args[3].parse().unwrap()),
        "first_adds" => case_first_adds(),
        "construct" => case_construct(args[1].parse().unwrap()),
        other => panic!("unknown case {other}"),
    }
}

/// Resident bytes grown for a `MutexAverage` and a `ShardedAverage` that `n` threads add to
/// (the threads' own stacks subtracted), and the sharded one's `memory_bytes()`.
fn shared_memory(n: usize, window: usize, mode: &str) -> (f64, f64, f64) {
    let grown = |kind: &str| -> Vec<f64> {
        child(&format!("threads,{kind},{n},{window},{mode}"))
            .iter()
            .map(|v| v.parse().unwrap_or(f64::NAN))
            .collect()
    };
    let control = grown("none")[0];
    let mutex = grown("MutexAverage")[0];
    let sharded = grown("ShardedAverage");
    (
        (mutex - control).max(0.0),
        (sharded[0] - control).max(0.0),
        sharded[1],
    )
}

/// Runs one case in a child process and returns its output line, split on spaces.
fn child(case: &str) -> Vec<String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("MAVG_SCALE_CASE", case)
        .output()
        .unwrap();
    assert!(out.status.success(), "{case}: {:?}", out);
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

fn main() {
    if let Ok(case) = std::env::var("MAVG_SCALE_CASE") {
        println!("{}", run_case(&case));
        return;
    }
    // `cargo bench` passes `--bench`; any other argument selects tables by name.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let want = |t: &str| only.is_empty() || only.iter().any(|o| t.contains(o.as_str()));

    // (series name, value per thread count) for the chart of window 100,000.
    let mut chart: Vec<(String, Vec<f64>)> = Vec::new();
    if want("threads") {
        println!("## Memory against threads (f64; MB of resident memory grown, threads' stacks subtracted; memory_bytes)\n");
        for window in [1_024, 100_000] {
            for mode in ["once", "fill"] {
                println!("window {window}, each thread adds {mode}\n");
                println!("| threads | RingAverage | MutexAverage | ShardedAverage | ShardedAverage memory_bytes |");
                println!("| ---: | ---: | ---: | ---: | ---: |");
                let ring: f64 = child(&format!("threads,RingAverage,1,{window},{mode}"))[0]
                    .parse()
                    .unwrap();
                let (mut mutexes, mut shardeds) = (Vec::new(), Vec::new());
                for n in THREAD_COUNTS {
                    let (mutex, sharded, bytes) = shared_memory(n, window, mode);
                    println!(
                        "| {n} | {} | {} | {} | {} |",
                        mb(ring),
                        mb(mutex),
                        mb(sharded),
                        mb(bytes)
                    );
                    mutexes.push(mutex);
                    shardeds.push(sharded);
                }
                println!();
                if window == 100_000 {
                    if mode == "fill" {
                        chart.push(("RingAverage".into(), vec![ring; THREAD_COUNTS.len()]));
                        chart.push(("MutexAverage".into(), mutexes));
                    }
                    chart.push((format!("ShardedAverage, each thread adds {mode}"), shardeds));
                }
            }
        }
    }
    if !chart.is_empty() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/memory_threads.json");
        std::fs::write(&path, chart_json(&chart)).unwrap();
        println!("(chart data written to {})\n", path.display());
    }
    if want("window") {
        println!("## Memory against the window (f64, 2 threads fill four windows; MB resident, memory_bytes for ShardedAverage)\n");
        println!("| window | RingAverage | MutexAverage | ShardedAverage | ShardedAverage memory_bytes |");
        println!("| ---: | ---: | ---: | ---: | ---: |");
        for window in [1_000, 10_000, 100_000, 1_000_000, 10_000_000] {
            let ring: f64 = child(&format!("threads,RingAverage,1,{window},fill"))[0]
                .parse()
                .unwrap();
            let (mutex, sharded, bytes) = shared_memory(2, window, "fill");
            println!(
                "| {window} | {} | {} | {} | {} |",
                mb(ring),
                mb(mutex),
                mb(sharded),
                mb(bytes)
            );
        }
        println!();
    }
    if want("keys") {
        println!("## Per-key averages (u64, window 16, 1,000,000 keys, {ADDS_PER_THREAD} adds per thread to uniform keys)\n");
        println!("| structure | Madds/s, 1 thread | Madds/s, 2 threads | resident bytes per key |");
        println!("| --- | ---: | ---: | ---: |");
        for kind in [
            "ShardedAverage",
            "MutexAverage",
            "Mutex<HashMap<RingAverage>>",
            "striped map of RingAverage",
        ] {
            let one = child(&format!("keys,{kind},1000000,1"));
            let two = child(&format!("keys,{kind},1000000,2"));
            println!("| {kind} | {} | {} | {} |", one[0], two[0], one[1]);
        }
        println!();
    }
    if want("first") {
        let r = child("first_adds");
        println!("## First adds\n");
        println!(
            "one thread, 100,000 ShardedAverage<u64> (window 16): {} ms in total, last 1,000 first adds {} ns each, {} resident bytes per average\n",
            r[0], r[1], r[2]
        );
    }
    if want("construct") {
        println!("## Construction\n");
        println!("| call | time (us) | RSS grown (bytes) | result |");
        println!("| --- | ---: | ---: | --- |");
        for log2 in [27, 30] {
            let r = child(&format!("construct,{log2}"));
            let result = r[2].replace('_', " ");
            println!(
                "| ShardedAverage::<f64>::new(2^{log2}) | {} | {} | {result} |",
                r[0], r[1]
            );
        }
        println!();
    }
}
