//! A service-shaped example: worker threads handle simulated requests and record each one's
//! latency into a shared moving average; a reporter thread prints the average of the last
//! 10,000 requests twice a second. Halfway through, the service degrades (a slow dependency
//! and a few pathological 30-second timeouts) and then recovers: the average follows, and
//! returns exactly to normal once the outliers have left the window.
//!
//! ```sh
//! cargo run --release --example latency            # 4 workers, 3 seconds
//! cargo run --release --example latency -- 8 5     # 8 workers, 5 seconds
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use mavg::ShardedAverage;

const WINDOW: usize = 10_000;

/// A small deterministic generator (SplitMix64), one per worker. Written out here rather than
/// shared with the benches or tests: an example stays one self-contained file that a reader can
/// copy.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One request's latency in milliseconds: heavy-tailed, typically 20 to 60 ms; slower while degraded,
/// with rare 30 s timeouts while degraded.
fn latency_ms(rng: &mut Rng, degraded: bool) -> f64 {
    let base = 20.0 * (-(1.0 - rng.unit()).ln() * 0.5).exp();
    if degraded {
        if rng.next_u64() % 5_000 == 0 {
            30_000.0
        } else {
            base * 3.0
        }
    } else {
        base
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let parse = |arg: Option<String>, default: u64, what: &str| -> u64 {
        match arg {
            None => default,
            Some(s) => s.parse().unwrap_or_else(|_| {
                eprintln!(
                    "usage: latency [WORKERS] [SECONDS]  ({what} must be a number, got {s:?})"
                );
                std::process::exit(2)
            }),
        }
    };
    let workers = parse(args.next(), 4, "WORKERS").max(1);
    let seconds = parse(args.next(), 3, "SECONDS").max(1);

    let latency = ShardedAverage::<f64>::new(WINDOW).expect("a 10,000-element window fits");
    let requests = AtomicU64::new(0);
    let degraded = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let run = Duration::from_secs(seconds);
    let start = Instant::now();

    std::thread::scope(|s| {
        for id in 0..workers {
            let (latency, requests, degraded, stop) = (&latency, &requests, &degraded, &stop);
            s.spawn(move || {
                let mut rng = Rng(id);
                while !stop.load(Relaxed) {
                    // A batch of "requests" between checks of the stop flag.
                    for _ in 0..1_000 {
                        latency.push(latency_ms(&mut rng, degraded.load(Relaxed)));
                    }
                    requests.fetch_add(1_000, Relaxed);
                }
            });
        }

        // The reporter: the main thread of the scope.
        let mut next_report = Duration::from_millis(500);
        while start.elapsed() < run {
            std::thread::sleep(Duration::from_millis(10));
            let elapsed = start.elapsed();
            // Degrade for the middle fifth of the run.
            let phase = elapsed.as_secs_f64() / run.as_secs_f64();
            degraded.store((0.4..0.6).contains(&phase), Relaxed);
            if elapsed >= next_report {
                next_report += Duration::from_millis(500);
                println!(
                    "{:>5.1}s  {:>11} requests  avg of last {:>6}: {:>9.3} ms  (newest {:>8.3} ms){}",
                    elapsed.as_secs_f64(),
                    requests.load(Relaxed),
                    latency.len(),
                    latency.average().unwrap_or(0.0),
                    latency.newest().unwrap_or(0.0),
                    if degraded.load(Relaxed) { "  degraded" } else { "" },
                );
            }
        }
        stop.store(true, Relaxed);
    });

    let total = requests.load(Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "done: {total} latencies recorded by {workers} workers in {secs:.2} s ({:.1} M/s), {} shards",
        total as f64 / secs / 1e6,
        latency.shard_count(),
    );
    // With no adds in flight the average is exact: check it against the elements themselves.
    let window = latency.to_vec();
    let fresh: f64 = window.iter().sum::<f64>() / window.len() as f64;
    let exact = latency.average().expect("the window is full");
    println!(
        "final average {exact:.6} ms over {} elements; a fresh naive sum gives {fresh:.6} ms",
        window.len()
    );
}
