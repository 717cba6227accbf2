//! One consumer stage of the pipeline in `notes/analytics-backend.md`, timed per event.
//!
//! Each worker thread owns one partition of serialized records, as the collectors write them to
//! the log, and per record: (1) decodes and validates it (bounds, enums, UTF-8); (2) looks its
//! id up in an in-memory set of 64-bit fingerprints covering the last hour, in two generations
//! (events created over an hour before they arrive go to the late path, where the store would
//! be asked; here they are counted); (3) counts events and revenue per merchant and 15-minute
//! UTC bucket; (4) copies the row into an insert batch, cut every 65,536 rows. Not timed or not
//! done: generating the input, the log client, the late path, compressing and sending batches.
//!
//! The crate's part is a guard, not a metric: the hottest merchants are salted over every
//! partition, and all workers push each of their events' lag (receive minus creation time) into
//! one shared `ShardedAverage` of the last 1,024 per merchant; a rise flags offline replays or
//! skewed clocks. `--guard 0` turns it off. Only `std` and the crate are used.
//!
//! ```text
//! cargo run --release --example ingest -- --events 2000000 --merchants 100000 --threads 2
//! ```

use std::collections::HashSet;
use std::time::Instant;

use mavg::ShardedAverage;

const HORIZON_MS: u64 = 3_600_000; // in-memory dedup horizon
const BUCKET_MS: u64 = 900_000; // 15 minutes: every UTC offset in use is a multiple of it
const BATCH_ROWS: u64 = 65_536;
const GUARD_WINDOW: usize = 1_024;
const USAGE: &str =
    "usage: ingest [--events N] [--merchants N] [--threads N] [--hot N] [--guard 0|1]";

/// Events, merchants, threads (one partition each), hot (salted) merchants, guard on or off.
fn parse_args() -> Result<[u64; 5], String> {
    let (mut c, mut args) = ([2_000_000, 100_000, 2, 16, 1], std::env::args().skip(1));
    while let Some(flag) = args.next() {
        let flags = ["--events", "--merchants", "--threads", "--hot", "--guard"];
        let i = flags.iter().position(|f| *f == flag).ok_or(USAGE)?;
        let value = args.next().ok_or(USAGE)?;
        let bad = format!("bad value {value:?} for {flag}");
        c[i] = value.parse().map_err(|_| bad)?;
    }
    let [events, merchants, threads, hot, guard] = c;
    let m = merchants.clamp(1, 1 << 24);
    Ok([
        events.max(1),
        m,
        threads.clamp(1, 64),
        hot.min(m),
        guard.min(1),
    ])
}

/// A finalizer-style mixer: partition keys and id fingerprints.
fn mix(x: u64) -> u64 {
    let x = (x ^ (x >> 33)).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    (x ^ (x >> 33)).wrapping_mul(0xC4CE_B9FE_1A85_EC53) ^ (x >> 29)
}

/// A deterministic generator (xorshift64*), for the input only. Kept here rather than shared
/// with the benches: an example is one self-contained file a reader can copy.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        (self.below(1 << 53) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Record layout: u16 length; id (16 bytes, big-endian, UUIDv7-like: creation ms in the top 48
/// bits); varint merchant; varint receive ms; varint amount (paise); kind, device, country (2),
/// user (8); u8-length path; u16-length properties (JSON text).
struct Event<'a> {
    id: u128,
    merchant: u32,
    received_ms: u64,
    amount: u64,
    fixed: &'a [u8], // kind, device, country, user: copied to the batch as they are
    path: &'a str,
    props: &'a str,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a>(&'a [u8]);
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let (head, tail) = self.0.split_at_checked(n).ok_or("truncated record")?;
        self.0 = tail;
        Ok(head)
    }
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.take(1)?[0];
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint too long")
    }
    /// A string preceded by its length in `n` little-endian bytes.
    fn text(&mut self, n: usize) -> Result<&'a str, &'static str> {
        let bytes = self.take(n)?;
        let len = bytes.iter().rev().fold(0, |l, &b| l << 8 | b as usize);
        std::str::from_utf8(self.take(len)?).map_err(|_| "invalid UTF-8")
    }
}

/// Decodes and validates the record at the front of `buf`; returns it and the bytes used.
fn decode(buf: &[u8]) -> Result<(Event<'_>, usize), &'static str> {
    let mut outer = Reader(buf);
    let len = u16::from_le_bytes([outer.take(1)?[0], outer.take(1)?[0]]) as usize;
    let mut r = Reader(outer.take(len)?);
    let event = Event {
        id: u128::from_be_bytes(r.take(16)?.try_into().unwrap()),
        merchant: u32::try_from(r.varint()?).map_err(|_| "merchant out of range")?,
        received_ms: r.varint()?,
        amount: r.varint()?,
        fixed: r.take(12)?,
        path: r.text(1)?,
        props: r.text(2)?,
    };
    let f = event.fixed;
    if f[0] > 3 || f[1] > 2 || !f[2..4].iter().all(u8::is_ascii_uppercase) || !r.0.is_empty() {
        return Err("invalid field");
    }
    Ok((event, len + 2))
}

/// The input (not timed): Zipf(1.1) merchants; 1% of events created up to 3 days before they
/// arrive (offline devices); 1% sent again 1 s to 10 min later with the same id (retries).
/// Returns one buffer per partition and the expected (fresh, duplicate, late) counts.
fn generate([events, merchants, threads, hot, _]: [u64; 5]) -> (Vec<Vec<u8>>, [u64; 3]) {
    let weights: Vec<f64> = (1..=merchants).map(|i| (i as f64).powf(-1.1)).collect();
    let (total, mut acc) = (weights.iter().sum::<f64>(), 0.0);
    let cdf: Vec<f64> = weights.iter().map(|w| (acc += w / total, acc).1).collect();
    let (t0, mut rng, mut stream) = (1_780_000_000_000, Rng(0x2545_F491_4F6C_DD1D), Vec::new());
    for i in 0..events {
        let received: u64 = t0 + i * 3 * HORIZON_MS / events;
        let lag = match rng.below(100) {
            0 => rng.below(3 * 86_400_000),
            _ => (-rng.unit().ln() * 800.0) as u64,
        };
        let id = u128::from(received - lag) << 80 | u128::from(rng.below(u64::MAX)) << 16;
        let u = rng.unit();
        let merchant = cdf.partition_point(|&p| p < u).min(cdf.len() - 1) as u64;
        stream.push((received, id, merchant));
        if rng.below(100) == 0 {
            stream.push((received + 1_000 + rng.below(600_000), id, merchant));
        }
    }
    stream.sort_unstable_by_key(|&(received, id, _)| (received, id));
    let (mut seen, mut expected) = (HashSet::new(), [0u64; 3]);
    let mut parts = vec![Vec::new(); threads as usize];
    let paths: Vec<&str> = "/ /cart /checkout /product/ /search?q= /offer/"
        .split(' ')
        .collect();
    for &(received, id, merchant) in &stream {
        let late = received - (id >> 80) as u64 > HORIZON_MS;
        let class = if late { 2 } else { (!seen.insert(id)) as usize };
        expected[class] += 1;
        // The hottest merchants are salted over every partition, the others keyed by merchant.
        let key = mix(if merchant < hot { id as u64 } else { merchant });
        let (out, mut r) = (&mut parts[(key % threads) as usize], Rng(id as u64 | 1));
        let path = format!("{}{}", paths[r.below(6) as usize], r.below(1000));
        let source = ["google", "direct", "whatsapp", "email"][r.below(4) as usize];
        let (campaign, version, w, h) = (r.below(50), r.below(40), r.below(1200), r.below(1800));
        let utm = format!(r#""utm_source":"{source}","utm_campaign":"sale{campaign}""#);
        let props = format!(r#"{{{utm},"app_version":"5.{version}","screen":"{w}x{h}"}}"#);
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&id.to_be_bytes());
        for v in [merchant, received, r.below(500_000)] {
            put_varint(out, v);
        }
        out.extend_from_slice(&[r.below(4) as u8, r.below(3) as u8, b'I', b'N']);
        out.extend_from_slice(&r.below(u64::MAX).to_le_bytes());
        out.push(path.len() as u8);
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(props.len() as u16).to_le_bytes());
        out.extend_from_slice(props.as_bytes());
        let len = (out.len() - start - 2) as u16;
        out[start..start + 2].copy_from_slice(&len.to_le_bytes());
    }
    (parts, expected)
}

/// Open-addressing set of 64-bit fingerprints (0 marks an empty slot), sized for one
/// generation at under half full, as a deployment sizes it from the partition's peak rate.
struct IdSet(Vec<u64>);
impl IdSet {
    /// The slot holding `f`, or the empty slot where it would go.
    fn slot(&self, f: u64) -> usize {
        let mask = self.0.len() - 1;
        let mut i = f as usize & mask;
        while self.0[i] != 0 && self.0[i] != f {
            i = (i + 1) & mask;
        }
        i
    }
}

/// Counts: fresh, duplicates, late, batches, batch bytes, dedup set bytes, buckets, busy ns.
type Counts = [u64; 8];

/// The consumer loop over one partition; `guard[m]` is hot merchant `m`'s lag average.
fn consume(part: &[u8], merchants: usize, guard: &[ShardedAverage<u64>]) -> Result<Counts, String> {
    let start = Instant::now();
    // At least twice the partition's ids per hour: records are about 140 B, the input spans 3 h.
    let slots = (part.len() / 150).next_power_of_two();
    let (mut current, mut previous) = (IdSet(vec![0; slots]), IdSet(vec![0; slots]));
    // Per merchant, its open buckets: (bucket, events, revenue), newest last.
    let mut buckets: Vec<Vec<(u64, u64, u64)>> = vec![Vec::new(); merchants];
    let (mut n, mut generation_end, mut pos, mut batch) = ([0; 8], 0, 0, Vec::new());
    while pos < part.len() {
        let (e, used) = decode(&part[pos..])?;
        pos += used;
        if e.received_ms >= generation_end {
            // A copy arriving within 1 h of the first is always found, within 2 h often.
            previous = std::mem::replace(&mut current, previous);
            current.0.fill(0);
            generation_end = e.received_ms - e.received_ms % HORIZON_MS + HORIZON_MS;
        }
        let created_ms = (e.id >> 80) as u64;
        let lag = e.received_ms.saturating_sub(created_ms);
        if lag > HORIZON_MS {
            n[2] += 1; // its first copy may be older than the sets: the store is asked
            continue;
        }
        let f = mix(e.id as u64 ^ mix((e.id >> 64) as u64)) | 1;
        let slot = current.slot(f);
        if current.0[slot] == f || previous.0[previous.slot(f)] == f {
            n[1] += 1;
            continue;
        }
        current.0[slot] = f;
        n[0] += 1;
        if let Some(average) = guard.get(e.merchant as usize) {
            average.push(lag);
        }
        let (open, bucket) = (&mut buckets[e.merchant as usize], created_ms / BUCKET_MS);
        match open.iter_mut().rev().find(|b| b.0 == bucket) {
            Some(b) => (b.1, b.2) = (b.1 + 1, b.2 + e.amount),
            None => open.push((bucket, 1, e.amount)),
        }
        batch.extend_from_slice(&e.merchant.to_le_bytes());
        batch.extend_from_slice(&created_ms.to_le_bytes());
        batch.extend_from_slice(&e.amount.to_le_bytes());
        batch.extend_from_slice(e.fixed);
        for text in [e.path, e.props] {
            batch.extend_from_slice(&(text.len() as u16).to_le_bytes());
            batch.extend_from_slice(text.as_bytes());
        }
        if n[0] % BATCH_ROWS == 0 {
            // Here the batch is compressed and inserted with a token made of the partition and
            // the batch's offset range, so that the store drops a batch replayed after a crash.
            (n[3], n[4]) = (n[3] + 1, n[4] + batch.len() as u64);
            batch.clear();
        }
    }
    n[3] += u64::from(!batch.is_empty());
    n[4] += batch.len() as u64;
    n[5] = 16 * slots as u64;
    n[6] = buckets.iter().map(|b| b.len() as u64).sum();
    n[7] = start.elapsed().as_nanos() as u64;
    Ok(n)
}

fn main() -> Result<(), String> {
    let c @ [_, merchants, threads, hot, guard_on] = parse_args()?;
    let t = Instant::now();
    let (parts, expected) = generate(c);
    let (records, twice) = (expected.iter().sum::<u64>(), expected[1]);
    let size = parts.iter().map(Vec::len).sum::<usize>() as u64 / records;
    let secs = t.elapsed().as_secs_f64();
    println!("input: {records} records ({twice} sent twice), {size} B each, partitions: {threads}");
    println!("  {merchants} merchants, top {hot} salted; generated in {secs:.1} s (not timed)");
    let new = |_| ShardedAverage::new(GUARD_WINDOW).map_err(|e| e.to_string());
    let guard = (0..hot * guard_on)
        .map(new)
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let counts = std::thread::scope(|s| {
        let guard = &guard;
        let spawn = |p| s.spawn(move || consume(p, merchants as usize, guard));
        let workers: Vec<_> = parts.iter().map(Vec::as_slice).map(spawn).collect();
        let results = workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"));
        results.collect::<Result<Vec<_>, _>>()
    })?;
    let secs = start.elapsed().as_secs_f64();
    let n: Counts = std::array::from_fn(|i| counts.iter().map(|c| c[i]).sum());
    let (rate, ns) = (records as f64 / secs / 1e6, n[7] as f64 / records as f64);
    println!(
        "consumed in {secs:.3} s: {rate:.2} M records/s; {ns:.0} ns of thread time per record"
    );
    let (row, sets) = (n[4] / n[0].max(1), n[5] as f64 / 1e6);
    println!(
        "  {} insert batches, {row} B per row; dedup sets {sets:.1} MB",
        n[3]
    );
    println!("  {} (merchant, 15-minute) buckets", n[6]);
    for (m, average) in guard.iter().enumerate().take(3) {
        let (mean, len) = (average.average().unwrap_or(0.0), average.len());
        println!("  lag guard of merchant {m}: {mean:.0} ms over its last {len} events");
    }
    let guard_bytes: usize = guard.iter().map(ShardedAverage::memory_bytes).sum();
    println!(
        "  guard memory: {guard_bytes} B for {} merchants",
        guard.len()
    );
    let [fresh, dups, late] = [n[0], n[1], n[2]];
    println!("  fresh {fresh} + duplicates dropped {dups} + late path {late} = {records}");
    if [fresh, dups, late] != expected {
        return Err(format!(
            "check failed: expected fresh, duplicates, late {expected:?}"
        ));
    }
    println!("check OK: each fresh id batched once, each duplicate within the horizon dropped");
    Ok(())
}
