//! `exact_avg` against DataFusion's built-in `avg`, measured in the same run:
//!
//! * `window`: 1,000,000 rows, `AVG(x) OVER (ORDER BY t ROWS BETWEEN 999 PRECEDING AND
//!   CURRENT ROW)` (a sliding frame of 1,000 rows; the table is declared sorted on `t`, so no
//!   sort is timed);
//! * `group_by`: 10,000,000 rows into 1,000 groups, `SELECT g, AVG(x) ... GROUP BY g`, over
//!   two partitions.
//!
//! Criterion reports the time of one whole query; divide by the row count for the time per
//! row (the throughput line shows rows per second).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{col, SessionConfig, SessionContext};
use tokio::runtime::Runtime;

/// Values of a realistic spread: six significant digits at different scales.
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = state >> 33;
            (r % 1_000_000) as f64 * [0.001, 0.1, 10.0][(r % 3) as usize]
        })
        .collect()
}

/// A session with the exact functions and table `t(t, g, x)` of `rows` rows in `partitions`
/// partitions of batches of 8,192 rows.
fn session(rows: usize, groups: i64, partitions: usize, sorted: bool) -> SessionContext {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("g", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
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
                            Arc::new(Float64Array::from(x[s..e].to_vec())),
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
    let ctx = SessionContext::new_with_config(config);
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

fn window(c: &mut Criterion) {
    const ROWS: usize = 1_000_000;
    let rt = Runtime::new().unwrap();
    let ctx = session(ROWS, 1, 1, true);
    let mut group = c.benchmark_group("window_1M_rows_frame_1000");
    group.throughput(Throughput::Elements(ROWS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for f in ["avg", "exact_avg"] {
        let sql = format!(
            "SELECT {f}(x) OVER (ORDER BY t ROWS BETWEEN 999 PRECEDING AND CURRENT ROW) FROM t"
        );
        assert_eq!(run(&rt, &ctx, &sql), ROWS);
        group.bench_function(f, |b| b.iter(|| black_box(run(&rt, &ctx, &sql))));
    }
    group.finish();
}

fn group_by(c: &mut Criterion) {
    const ROWS: usize = 10_000_000;
    let rt = Runtime::new().unwrap();
    let ctx = session(ROWS, 1000, 2, false);
    let mut group = c.benchmark_group("group_by_10M_rows_1000_groups");
    group.throughput(Throughput::Elements(ROWS as u64));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    for f in ["avg", "exact_avg", "sum", "exact_sum"] {
        let sql = format!("SELECT g, {f}(x) FROM t GROUP BY g");
        assert_eq!(run(&rt, &ctx, &sql), 1000);
        group.bench_function(f, |b| b.iter(|| black_box(run(&rt, &ctx, &sql))));
    }
    group.finish();
}

criterion_group!(benches, window, group_by);
criterion_main!(benches);
