//! Tight loops for the float read and add, against the old versions of the crate: one case per
//! run, printed as `<case> <ns per operation>`, the fastest of 31 repeats of 300,000 operations
//! (the minimum is the steadiest figure on a shared machine).
//!
//! ```text
//! cargo bench --bench tight -- ring_add_read:latency
//! ```
//!
//! Cases: `ring_add_read`, `ring_add`, `ring_read`, `sharded_add_read` (f64, `N = 1024`, with a
//! data family after a colon: `latency`, `half`, `uniform`, `adversarial`, `straddle`),
//! `ring_i64_add_read`,
//! `exact_add` (`ExactSum<f64>`), and the peers `yata_add_read`, `yata_add`, `single_add_read`.
//! The file uses only API that older versions have too, so it can be copied into a worktree of
//! one (with `mavg-testkit` and the peers as dev-dependencies) to time both in one
//! session; `notes/benchmarks.md` says how the figures there were taken.

use mavg::{RingAverage, Sample, ShardedAverage};
use mavg_testkit::XorShift;
use simple_moving_average::{SingleSumSMA, SMA};
use std::hint::black_box;
use std::time::Instant;
use yata::core::Method;
use yata::helpers::Peekable;

const N: usize = 1024;
const OPS: usize = 300_000;

fn data(family: &str) -> Vec<f64> {
    let mut r = XorShift::new(0x9e37_79b9_7f4a_7c15);
    (0..4096usize)
        .map(|i| match family {
            "half" => (i % 1000) as f64 * 0.5,
            // Latencies in seconds from nanosecond counts, 10 us to 2 s: full mantissas.
            "latency" => (10_000 + r.next_u64() % 2_000_000_000) as f64 * 1e-9,
            // As `benches/common`'s F64S: uniform in [0, 1000) with full mantissas.
            "uniform" => (r.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) * 1000.0,
            // +-1e300 and subnormals: nothing fits one grid, every read takes the limbs.
            "adversarial" => match i % 4 {
                0 => 1e300,
                1 => -1e300,
                2 => f64::from_bits(1 + r.next_u64() % 1000),
                _ => (r.next_u64() >> 11) as f64,
            },
            // Full-mantissa values spread over 120 binades: straddles any grid.
            "straddle" => {
                let e = (r.next_u64() % 120) as i32 - 60;
                (1.0 + (r.next_u64() >> 12) as f64 / (1u64 << 52) as f64) * 2f64.powi(e)
            }
            _ => panic!("family"),
        })
        .collect()
}

fn time(mut f: impl FnMut(usize)) -> f64 {
    let mut v: Vec<f64> = (0..31)
        .map(|_| {
            let t = Instant::now();
            for i in 0..OPS {
                f(i);
            }
            t.elapsed().as_nanos() as f64 / OPS as f64
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[0]
}

/// Pushes `values` cyclically into a full `RingAverage` of `N`, reading after each push.
fn ring_add_read<T: Sample>(values: &[T]) -> f64 {
    let mut m = RingAverage::<T>::new(N).unwrap();
    m.extend(values.iter().copied());
    time(|i| {
        let m = black_box(&mut m);
        m.push(values[i & 4095]);
        black_box(m.average());
    })
}

fn main() {
    // `cargo bench` passes `--bench`; the case is the first other argument.
    let case = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .expect("a case, e.g. ring_add_read:latency");
    let (what, family) = case.split_once(':').unwrap_or((&case, "latency"));
    let xs = data(family);
    let xi: Vec<i64> = (0..4096).map(|i| (i * 7919 % 1_000_000) as i64).collect();
    let ns = match what {
        "ring_add_read" => ring_add_read(&xs),
        "ring_add" => {
            let mut m = RingAverage::<f64>::new(N).unwrap();
            m.extend(xs.iter().copied());
            time(|i| {
                black_box(&mut m).push(xs[i & 4095]);
            })
        }
        "ring_read" => {
            let mut m = RingAverage::<f64>::new(N).unwrap();
            m.extend(xs.iter().copied());
            time(|_| {
                black_box(black_box(&m).average());
            })
        }
        "ring_i64_add_read" => ring_add_read(&xi),
        "sharded_add_read" => {
            let m = ShardedAverage::<f64>::new(N).unwrap();
            for &x in &xs {
                m.push(x);
            }
            time(|i| {
                let m = black_box(&m);
                m.push(xs[i & 4095]);
                black_box(m.average());
            })
        }
        "exact_add" => {
            let mut m = mavg::ExactSum::<f64>::new();
            time(|i| {
                black_box(&mut m).add(xs[i & 4095]);
            })
        }
        "yata_add_read" => {
            let mut m = yata::methods::SMA::new(N as u32, &0.0).unwrap();
            for &x in &xs {
                m.next(&x);
            }
            time(|i| {
                let m = black_box(&mut m);
                m.next(&xs[i & 4095]);
                black_box(m.peek());
            })
        }
        "yata_add" => {
            let mut m = yata::methods::SMA::new(N as u32, &0.0).unwrap();
            for &x in &xs {
                m.next(&x);
            }
            time(|i| {
                black_box(black_box(&mut m).next(&xs[i & 4095]));
            })
        }
        "single_add_read" => {
            let mut m = SingleSumSMA::<f64, f64, N>::new();
            for &x in &xs {
                m.add_sample(x);
            }
            time(|i| {
                let m = black_box(&mut m);
                m.add_sample(xs[i & 4095]);
                black_box(m.get_average());
            })
        }
        _ => panic!("case"),
    };
    println!("{case} {ns:.2}");
}
