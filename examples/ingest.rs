//! The crate in the consumer role of an analytics pipeline.
//!
//! Synthetic order events for many merchants, with a Zipf-like skew so that a few merchants
//! produce most of the traffic, are processed by several worker threads. Each worker plays the
//! part of one stream consumer and keeps:
//!
//! * per-minute rollups: a local `(merchant, minute) -> (count, sum)` map of mergeable partial
//!   aggregates, kept in event time, closed by a watermark with an allowed lateness, and flushed
//!   as an idempotent upsert keyed by `(merchant, minute, worker)`;
//! * live "last N orders" widgets: a [`ShardedAverage`] per hot merchant, shared by every worker,
//!   because a hot merchant's traffic is spread over several consumers (salted partition keys)
//!   and all of them push into the same average. `--avg mutex` swaps in [`MutexAverage`] as a
//!   baseline.
//!
//! Events are generated before the clock starts, so the rate printed (events per second and
//! the equivalent per day) covers processing only: no decoding or I/O. The rollups are checked
//! at the end: every event is in exactly one rollup row, or counted as late or future-dated.
//! The default run (10 M events) takes a few seconds; sizes come from the command line:
//!
//! ```text
//! cargo run --release --example ingest -- --events 2000000 --merchants 10000 --threads 2 --window 256
//! ```
//!
//! Only `std` and the crate are used: the PRNG (splitmix64 seeding an xorshift64*), the Zipf
//! sampler (inverse CDF over precomputed cumulative weights, binary search) and the hasher for the
//! rollup maps are written here.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use mavg::{MutexAverage, ShardedAverage, SharedMovingAverage};

const USAGE: &str = "usage: ingest [--events N] [--merchants N] [--threads N] [--window N] \
[--hot K] [--zipf S] [--minutes N] [--seed N] [--avg sharded|mutex]";

/// Watermark delay: the stream is assumed to be at most this far out of order (event time).
const OUT_OF_ORDER_MS: u64 = 5_000;
/// A minute stays open this long after the watermark passes its end; later events are dropped
/// from the live rollup and counted (in a deployment they go to a late-data topic and are folded
/// in by the correction path that rebuilds from the raw lake).
const ALLOWED_LATENESS_MS: u64 = 60_000;
/// Events stamped further than this ahead of the newest accepted event are quarantined instead
/// of opening rollup minutes far in the future (a collector checks against its own clock).
const FUTURE_TOLERANCE_MS: u64 = 10 * 60_000;
const MINUTE_MS: u64 = 60_000;

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

struct Config {
    events: u64,
    merchants: u32,
    threads: usize,
    window: usize,
    hot: u32,
    zipf: f64,
    minutes: u64,
    seed: u64,
    mutex: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            events: 10_000_000,
            merchants: 10_000,
            threads: 2,
            window: 256,
            hot: 100,
            zipf: 1.1,
            minutes: 60,
            seed: 42,
            mutex: false,
        }
    }
}

fn parse_args() -> Result<Config, String> {
    let mut cfg = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        const FLAGS: [&str; 9] = [
            "--events",
            "--merchants",
            "--threads",
            "--window",
            "--hot",
            "--zipf",
            "--minutes",
            "--seed",
            "--avg",
        ];
        if !FLAGS.contains(&flag.as_str()) {
            return Err(format!("unknown argument {flag}"));
        }
        let value = match inline {
            Some(v) => v,
            None => args
                .next()
                .ok_or_else(|| format!("missing value for {flag}"))?,
        };
        let bad = |what: &str| format!("invalid value {value:?} for {flag}: {what}");
        match flag.as_str() {
            "--events" => cfg.events = value.parse().map_err(|_| bad("expected an integer"))?,
            "--merchants" => {
                cfg.merchants = value.parse().map_err(|_| bad("expected an integer"))?
            }
            "--threads" => cfg.threads = value.parse().map_err(|_| bad("expected an integer"))?,
            "--window" => cfg.window = value.parse().map_err(|_| bad("expected an integer"))?,
            "--hot" => cfg.hot = value.parse().map_err(|_| bad("expected an integer"))?,
            "--zipf" => cfg.zipf = value.parse().map_err(|_| bad("expected a number"))?,
            "--minutes" => cfg.minutes = value.parse().map_err(|_| bad("expected an integer"))?,
            "--seed" => cfg.seed = value.parse().map_err(|_| bad("expected an integer"))?,
            "--avg" => {
                cfg.mutex = match value.as_str() {
                    "sharded" => false,
                    "mutex" => true,
                    _ => return Err(bad("expected sharded or mutex")),
                }
            }
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    if cfg.events == 0 {
        return Err("--events must be at least 1".into());
    }
    if cfg.merchants == 0 {
        return Err("--merchants must be at least 1".into());
    }
    if cfg.threads == 0 || cfg.threads > u16::MAX as usize {
        return Err("--threads must be between 1 and 65535".into());
    }
    if cfg.window == 0 {
        return Err("--window must be at least 1".into());
    }
    if !(cfg.zipf.is_finite() && cfg.zipf >= 0.0) {
        return Err("--zipf must be a finite number >= 0".into());
    }
    if cfg.minutes == 0 || cfg.minutes > 1_000_000 {
        return Err("--minutes must be between 1 and 1000000".into());
    }
    cfg.hot = cfg.hot.min(cfg.merchants);
    Ok(cfg)
}

// ---------------------------------------------------------------------------------------------
// Randomness: splitmix64 for seeding, xorshift64* for the streams, Zipf by inverse CDF
// ---------------------------------------------------------------------------------------------

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct XorShift64Star(u64);

impl XorShift64Star {
    fn seeded(seed: u64, stream: u64) -> Self {
        let mut s = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        let x = splitmix64(&mut s);
        XorShift64Star(if x == 0 { 0x2545_F491_4F6C_DD1D } else { x })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); the modulo bias is irrelevant at these sizes.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Merchant `i` (0-based rank) is drawn with probability proportional to `1 / (i + 1)^s`, so
/// merchant 0 is the busiest and the first K ids are the top K by expected volume.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for i in 0..n {
            acc += 1.0 / f64::from(i + 1).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut XorShift64Star) -> u32 {
        let u = rng.next_f64();
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u32
    }

    /// Expected share of traffic of the first `k` ranks.
    fn head_share(&self, k: u32) -> f64 {
        if k == 0 {
            0.0
        } else {
            self.cdf[k as usize - 1]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Event {
    /// Event time, milliseconds since the start of the simulated span.
    ts_ms: u64,
    merchant: u32,
    /// Order value in cents.
    cents: u32,
}

/// A merchant's typical order value, so that merchants' averages differ.
fn base_cents(merchant: u32) -> u64 {
    500 + u64::from(merchant.wrapping_mul(2_654_435_761) % 9_500)
}

/// Generates worker `w`'s share of the stream: global events `w, w + T, w + 2T, ...` in
/// (roughly) event-time order, as one consumer would see its partitions.
fn generate(cfg: &Config, zipf: &Zipf, worker: usize) -> Vec<Event> {
    let t = cfg.threads as u64;
    let w = worker as u64;
    let n = if w < cfg.events % t {
        cfg.events / t + 1
    } else {
        cfg.events / t
    };
    let span_ms = cfg.minutes * MINUTE_MS;
    let mut rng = XorShift64Star::seeded(cfg.seed, w + 1);
    let mut out = Vec::with_capacity(n as usize);
    for j in 0..n {
        let i = j * t + w;
        let nominal = (i as u128 * span_ms as u128 / cfg.events as u128) as u64;
        let roll = rng.below(100_000);
        let ts_ms = if roll == 0 {
            // 1 in 100,000: a future-dated event (bad client clock), two days ahead.
            nominal + 2 * 24 * 60 * MINUTE_MS
        } else if roll < 100 {
            // 1 in 1,000: a late event, delayed by up to three minutes (offline device, retry).
            nominal.saturating_sub(rng.below(180_000))
        } else {
            // Everything else is out of order by less than the watermark delay.
            nominal.saturating_sub(rng.below(OUT_OF_ORDER_MS))
        };
        let merchant = zipf.sample(&mut rng);
        let base = base_cents(merchant);
        let cents = (base + rng.below(base)) as u32;
        out.push(Event {
            ts_ms,
            merchant,
            cents,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Rollups
// ---------------------------------------------------------------------------------------------

/// An FxHash-style multiplicative hasher: the rollup keys are small integers, and SipHash would
/// dominate the per-event cost.
#[derive(Default, Clone, Copy)]
struct MulHasher(u64);

const MUL: u64 = 0x517C_C1B7_2722_0A95;

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(MUL);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(MUL);
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(n)).wrapping_mul(MUL);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(MUL);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<MulHasher>>;

/// A mergeable partial aggregate: partials for the same key from any number of workers, flushes
/// or replays combine by addition, and minute rows combine into hour and day rows the same way.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
struct Partial {
    count: u64,
    sum_cents: u64,
}

impl Partial {
    fn merge(&mut self, other: Partial) {
        self.count += other.count;
        self.sum_cents += other.sum_cents;
    }
}

/// Stands in for the serving store. Rows are keyed by `(merchant, minute, worker)` and written
/// with insert-or-replace, so a flush that is retried or replayed after a crash overwrites its
/// own earlier row instead of adding to it: the write is idempotent. Readers merge the workers'
/// rows for a `(merchant, minute)` at query time, which is what an aggregating table engine does
/// on merge.
type Sink = Mutex<FastMap<(u32, u32, u16), Partial>>;

#[derive(Default)]
struct WorkerStats {
    accepted: Partial,
    late_dropped: u64,
    future_quarantined: u64,
    flushes: u64,
}

fn flush(sink: &Sink, worker: u16, minute: u64, rows: FastMap<u32, Partial>) {
    if rows.is_empty() {
        return;
    }
    let minute = minute as u32;
    let mut store = sink.lock().expect("sink mutex poisoned");
    for (merchant, p) in rows {
        store.insert((merchant, minute, worker), p);
    }
}

/// One consumer: event-time minute rollups closed by a watermark, plus the shared hot-merchant
/// moving averages.
fn run_worker<A: SharedMovingAverage<Item = u64>>(
    worker: u16,
    events: &[Event],
    hot: &[A],
    sink: &Sink,
) -> WorkerStats {
    let mut stats = WorkerStats::default();
    // Open minutes, oldest first; `open[k]` holds minute `base_minute + k`.
    let mut open: VecDeque<FastMap<u32, Partial>> = VecDeque::new();
    let mut base_minute: u64 = 0;
    let mut max_ts: u64 = 0;

    for ev in events {
        if ev.ts_ms > max_ts + FUTURE_TOLERANCE_MS {
            stats.future_quarantined += 1;
            continue;
        }
        max_ts = max_ts.max(ev.ts_ms);

        // The live widget shows the last N orders in arrival order, late or not. Values are
        // integer cents: the crate keeps exact integer sums, and an integer shard is smaller
        // than an f64 one. (`MovingAverage` also has a `push`, taking `&mut self`; the shared
        // one takes `&self`.)
        if let Some(avg) = hot.get(ev.merchant as usize) {
            SharedMovingAverage::push(avg, u64::from(ev.cents));
        }

        let minute = ev.ts_ms / MINUTE_MS;
        if minute < base_minute {
            stats.late_dropped += 1;
        } else {
            let k = (minute - base_minute) as usize;
            while open.len() <= k {
                open.push_back(FastMap::default());
            }
            let p = open[k].entry(ev.merchant).or_default();
            p.count += 1;
            p.sum_cents += u64::from(ev.cents);
            stats.accepted.count += 1;
            stats.accepted.sum_cents += u64::from(ev.cents);
        }

        // Close every minute whose end plus the allowed lateness is behind the watermark.
        let watermark = max_ts.saturating_sub(OUT_OF_ORDER_MS);
        while (base_minute + 1) * MINUTE_MS + ALLOWED_LATENESS_MS <= watermark {
            if let Some(rows) = open.pop_front() {
                flush(sink, worker, base_minute, rows);
                stats.flushes += 1;
            }
            base_minute += 1;
        }
    }
    // End of input: the watermark jumps to +infinity and every open minute is flushed.
    while let Some(rows) = open.pop_front() {
        flush(sink, worker, base_minute, rows);
        stats.flushes += 1;
        base_minute += 1;
    }
    stats
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() -> ExitCode {
    let cfg = match parse_args() {
        Ok(cfg) => cfg,
        Err(msg) => {
            eprintln!("error: {msg}");
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };

    println!(
        "ingest: events {}, merchants {}, threads {}, window {}, hot {}, zipf s={}, span {} min, seed {}",
        group_digits(cfg.events),
        group_digits(u64::from(cfg.merchants)),
        cfg.threads,
        cfg.window,
        cfg.hot,
        cfg.zipf,
        cfg.minutes,
        cfg.seed
    );

    let zipf = Zipf::new(cfg.merchants, cfg.zipf);
    let gen_start = Instant::now();
    let streams: Vec<Vec<Event>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|w| {
                let (cfg, zipf) = (&cfg, &zipf);
                s.spawn(move || generate(cfg, zipf, w))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("generator panicked"))
            .collect()
    });
    let gen_secs = gen_start.elapsed().as_secs_f64();
    println!("generated in {gen_secs:.2} s (not timed below)");

    // Per-merchant moving averages are kept only for the `hot` busiest merchants: ids 0..hot,
    // which the Zipf ranks make the top `hot` by expected volume. A ShardedAverage costs a few
    // KB even at a small window (`memory_bytes`, printed below), and once the averages no longer
    // fit in cache every push slows; the tail rarely has a live widget open, and its numbers come
    // from the minute rollups instead. (For a million keys, a MutexAverage per key is the
    // cheaper choice; see the README.) Shards for every worker are reserved up front.
    let made = if cfg.mutex {
        (0..cfg.hot)
            .map(|_| MutexAverage::new(cfg.window))
            .collect::<Result<Vec<_>, _>>()
            .map(|hot| report(&cfg, &zipf, &streams, &hot, None))
    } else {
        (0..cfg.hot)
            .map(|_| ShardedAverage::with_shards(cfg.window, cfg.threads))
            .collect::<Result<Vec<_>, _>>()
            .map(|hot| {
                let bytes = hot.first().map(ShardedAverage::memory_bytes);
                report(&cfg, &zipf, &streams, &hot, bytes)
            })
    };
    match made {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "error: cannot create a moving average with window {}: {e}",
                cfg.window
            );
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs the workers over the generated streams, times them, checks the rollups and prints the
/// results. `avg_bytes` is the memory one hot merchant's moving average holds, if known.
fn report<A: SharedMovingAverage<Item = u64>>(
    cfg: &Config,
    zipf: &Zipf,
    streams: &[Vec<Event>],
    hot: &[A],
    avg_bytes: Option<usize>,
) -> ExitCode {
    let sink: Sink = Mutex::new(FastMap::default());
    let start = Instant::now();
    let stats: Vec<WorkerStats> = std::thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .enumerate()
            .map(|(w, events)| {
                let sink = &sink;
                s.spawn(move || run_worker(w as u16, events, hot, sink))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect()
    });
    let secs = start.elapsed().as_secs_f64();

    let rate = cfg.events as f64 / secs;
    println!(
        "processed in {secs:.3} s with {} hot averages: {:.2} M events/s = {:.0} billion events/day at this rate",
        if cfg.mutex { "mutex" } else { "sharded" },
        rate / 1e6,
        rate * 86_400.0 / 1e9
    );
    for (label, per_day) in [("5 billion/day", 5e9), ("10 billion/day", 10e9)] {
        let avg = per_day / 86_400.0;
        println!(
            "  {label}: {avg:.0} events/s average, {:.0} at a 3x peak = {:.1}% of this process's rate",
            avg * 3.0,
            avg * 3.0 / rate * 100.0
        );
    }

    // Check the rollups against what the workers accepted: nothing lost, nothing counted twice.
    let mut accepted = Partial::default();
    let (mut late, mut future, mut flushes) = (0, 0, 0);
    for st in &stats {
        accepted.merge(st.accepted);
        late += st.late_dropped;
        future += st.future_quarantined;
        flushes += st.flushes;
    }
    let store = sink.into_inner().expect("sink mutex poisoned");
    let written_rows = store.len();
    let mut per_minute: FastMap<(u32, u32), Partial> = FastMap::default();
    for (&(merchant, minute, _worker), &p) in &store {
        per_minute.entry((merchant, minute)).or_default().merge(p);
    }
    let mut per_merchant: FastMap<u32, Partial> = FastMap::default();
    let mut total = Partial::default();
    for (&(merchant, _minute), &p) in &per_minute {
        per_merchant.entry(merchant).or_default().merge(p);
        total.merge(p);
    }
    let ok = total == accepted && accepted.count + late + future == cfg.events;
    println!(
        "rollups: {} flushes wrote {} (merchant, minute, worker) rows = {} (merchant, minute) rows",
        group_digits(flushes),
        group_digits(written_rows as u64),
        group_digits(per_minute.len() as u64)
    );
    println!(
        "  check {}: {} in rollups + {} late (to correction path) + {} future-dated (quarantined) = {} events",
        if ok { "OK" } else { "FAILED" },
        group_digits(total.count),
        group_digits(late),
        group_digits(future),
        group_digits(cfg.events)
    );

    if !hot.is_empty() {
        let hot_events: u64 = (0..cfg.hot)
            .filter_map(|m| per_merchant.get(&m))
            .map(|p| p.count)
            .sum();
        println!(
            "hot merchants (top {}): {:.1}% of rolled-up events (Zipf expectation {:.1}%)",
            cfg.hot,
            hot_events as f64 / total.count.max(1) as f64 * 100.0,
            zipf.head_share(cfg.hot) * 100.0
        );
        if let Some(bytes) = avg_bytes {
            println!(
                "  memory: {} bytes per hot merchant's average ({} shards of window {}); {} for the top {}, {} if every one of {} merchants had one",
                group_digits(bytes as u64),
                cfg.threads,
                cfg.window,
                human_bytes(bytes as u64 * u64::from(cfg.hot)),
                cfg.hot,
                human_bytes(bytes as u64 * u64::from(cfg.merchants)),
                group_digits(u64::from(cfg.merchants))
            );
        }
        println!(
            "  merchant    events   mean order (rollup)   moving avg of last {}",
            cfg.window
        );
        for m in 0..cfg.hot.min(5) {
            let p = per_merchant.get(&m).copied().unwrap_or_default();
            let mean = p.sum_cents as f64 / p.count.max(1) as f64 / 100.0;
            let live = hot[m as usize]
                .average()
                .map_or_else(|| "-".to_string(), |a| format!("{:.2}", a / 100.0));
            println!(
                "  {m:>8} {:>9} {mean:>20.2} {live:>22}",
                group_digits(p.count)
            );
        }
    }

    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
