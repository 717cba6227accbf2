//! `exact_avg` against DataFusion's built-in `avg`, measured in the same run:
//!
//! * `window`: 1,000,000 rows, `AVG(x) OVER (ORDER BY t ROWS BETWEEN 999 PRECEDING AND
//!   CURRENT ROW)` (a sliding frame of 1,000 rows; the table is declared sorted on `t`, so no
//!   sort is timed);
//! * `group_by`: 10,000,000 rows into 1,000 groups, `SELECT g, AVG(x) ... GROUP BY g`, over
//!   two partitions.
//! * `high_cardinality`: 4,000,000 rows into 1,000,000 groups, 5% of the values NULL, with a
//!   `FILTER (WHERE ...)` that keeps three rows in four, over two partitions: the case where
//!   DataFusion skips partial aggregation. Before timing, each function's peak memory
//!   reservation (what the operators account to DataFusion's memory pool) is printed.
//!
//! Criterion reports the time of one whole query; divide by the row count for the time per
//! row (the throughput line shows rows per second).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, SessionConfig, SessionContext};
use mavg_testkit::XorShift;
use tokio::runtime::Runtime;

/// Values of a realistic spread: six significant digits at different scales.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = XorShift::new(seed);
    (0..n)
        .map(|_| {
            let r = rng.next_u64() >> 33;
            (r % 1_000_000) as f64 * [0.001, 0.1, 10.0][(r % 3) as usize]
        })
        .collect()
}

/// An unbounded memory pool that remembers the most it ever had reserved.
#[derive(Debug, Default)]
struct PeakPool {
    inner: UnboundedMemoryPool,
    peak: AtomicUsize,
}

impl PeakPool {
    fn note(&self) {
        self.peak
            .fetch_max(self.inner.reserved(), Ordering::Relaxed);
    }
}

impl std::fmt::Display for PeakPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak pool, {} bytes at most",
            self.peak.load(Ordering::Relaxed)
        )
    }
}

impl MemoryPool for PeakPool {
    fn name(&self) -> &str {
        "peak"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.inner.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.inner.unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.inner.grow(reservation, additional);
        self.note();
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.inner.shrink(reservation, shrink)
    }
    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.inner.try_grow(reservation, additional)?;
        self.note();
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.inner.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.inner.memory_limit()
    }
}

/// A session with the exact functions and table `t(t, g, x)` of `rows` rows in `partitions`
/// partitions of batches of 8,192 rows; a twentieth of `x` is NULL if `nulls`.
fn session(rows: usize, groups: i64, partitions: usize, sorted: bool) -> SessionContext {
    session_in(
        rows,
        groups,
        partitions,
        sorted,
        false,
        SessionContext::new_with_config,
    )
}

fn session_in(
    rows: usize,
    groups: i64,
    partitions: usize,
    sorted: bool,
    nulls: bool,
    new: impl FnOnce(SessionConfig) -> SessionContext,
) -> SessionContext {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("g", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
    ]));
    let x = values(rows, 42);
    let per_part = rows.div_ceil(partitions);
    let parts: Vec<Vec<RecordBatch>> = (0..partitions)
        .map(|p| {
            let (start, end) = (p * per_part, ((p + 1) * per_part).min(rows));
            (start..end)
                .step_by(8192)
                .map(|s| {
                    let e = (s + 8192).min(end);
                    let t: Vec<i64> = (s as i64..e as i64).collect();
                    let g: Vec<i64> = t.iter().map(|t| (t * 7919) % groups).collect();
                    RecordBatch::try_new(
                        schema.clone(),
                        vec![
                            Arc::new(Int64Array::from(t)),
                            Arc::new(Int64Array::from(g)),
                            Arc::new(Float64Array::from_iter(
                                (s..e).map(|i| (!nulls || i % 20 != 7).then_some(x[i])),
                            )),
                        ],
                    )
                    .unwrap()
                })
                .collect()
        })
        .collect();
    let mut table = MemTable::try_new(schema, parts).unwrap();
    if sorted {
        table = table.with_sort_order(vec![vec![col("t").sort(true, false)]]);
    }
    let config = SessionConfig::new().with_target_partitions(partitions);
    let ctx = new(config);
    mavg_datafusion::register(&ctx);
    ctx.register_table("t", Arc::new(table)).unwrap();
    ctx
}

/// Runs `sql` to the end and returns the number of result rows.
fn run(rt: &Runtime, ctx: &SessionContext, sql: &str) -> usize {
    rt.block_on(async {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches.iter().map(RecordBatch::num_rows).sum()
    })
}

/// Benchmarks each query `(f, sql)` as `f` in the group `name` (`rows` input rows a run, ten
/// samples over `seconds`), after `check(f, sql)` has run it once untimed.
fn bench_queries(
    c: &mut Criterion,
    name: &str,
    (rows, seconds): (usize, u64),
    (rt, ctx): (&Runtime, &SessionContext),
    queries: impl IntoIterator<Item = (&'static str, String)>,
    mut check: impl FnMut(&str, &str),
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(rows as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(seconds));
    for (f, sql) in queries {
        check(f, &sql);
        group.bench_function(f, |b| b.iter(|| black_box(run(rt, ctx, &sql))));
    }
    group.finish();
}

fn window(c: &mut Criterion) {
    const ROWS: usize = 1_000_000;
    let rt = Runtime::new().unwrap();
    let ctx = session(ROWS, 1, 1, true);
    let queries = ["avg", "exact_avg"].map(|f| {
        let sql = format!(
            "SELECT {f}(x) OVER (ORDER BY t ROWS BETWEEN 999 PRECEDING AND CURRENT ROW) FROM t"
        );
        (f, sql)
    });
    bench_queries(
        c,
        "window_1M_rows_frame_1000",
        (ROWS, 8),
        (&rt, &ctx),
        queries,
        |_, sql| {
            assert_eq!(run(&rt, &ctx, sql), ROWS);
        },
    );
}

fn group_by(c: &mut Criterion) {
    const ROWS: usize = 10_000_000;
    let rt = Runtime::new().unwrap();
    let ctx = session(ROWS, 1000, 2, false);
    let queries = ["avg", "exact_avg", "sum", "exact_sum"]
        .map(|f| (f, format!("SELECT g, {f}(x) FROM t GROUP BY g")));
    bench_queries(
        c,
        "group_by_10M_rows_1000_groups",
        (ROWS, 8),
        (&rt, &ctx),
        queries,
        |_, sql| {
            assert_eq!(run(&rt, &ctx, sql), 1000);
        },
    );
}

fn high_cardinality(c: &mut Criterion) {
    const ROWS: usize = 4_000_000;
    let rt = Runtime::new().unwrap();
    let pool = Arc::new(PeakPool::default());
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(pool.clone())
        .build_arc()
        .unwrap();
    let ctx = session_in(ROWS, 1_000_000, 2, false, true, |config| {
        SessionContext::new_with_config_rt(config, runtime)
    });
    let queries = ["sum", "exact_sum", "avg", "exact_avg"].map(|f| {
        let sql = format!("SELECT g, {f}(x) FILTER (WHERE t % 4 <> 1) FROM t GROUP BY g");
        (f, sql)
    });
    let name = "group_by_4M_rows_1M_groups_nulls_filter";
    bench_queries(c, name, (ROWS, 10), (&rt, &ctx), queries, |f, sql| {
        pool.peak.store(0, Ordering::Relaxed);
        assert_eq!(run(&rt, &ctx, sql), 1_000_000);
        println!(
            "peak memory reservation, {f}: {:.1} MB",
            pool.peak.load(Ordering::Relaxed) as f64 / 1e6
        );
    });
}

criterion_group!(benches, window, group_by, high_cardinality);
criterion_main!(benches);
