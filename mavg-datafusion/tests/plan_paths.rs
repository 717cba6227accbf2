//! The ways DataFusion's planner can run `exact_sum` and `exact_avg`, each checked against the
//! exact reference (`mavg_testkit::oracle`), with the plan's own metrics showing that the path was
//! taken: grouping on sorted input (`EmitTo::First`), spilling under a memory limit, skipped
//! partial aggregation, NaN and infinities through merges, `FILTER` with NULL filter values,
//! `DISTINCT` next to other aggregates, `ROWS`, `RANGE` and `GROUPS` frames over random batch
//! sizes, and empty input.

mod kit;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Float64Array, Int64Array, RecordBatch,
};
use datafusion::arrow::datatypes::Decimal128Type;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, SessionConfig, SessionContext};
use kit::{assert_float, assert_rows, float_sum_avg, floats, ints, query, sums_and_means};
use mavg_testkit::XorShift;

/// Values of many magnitudes that cancel, NULLs, and now and then a non-finite value.
fn value(gen: &mut XorShift, non_finite: bool) -> Option<f64> {
    let r = gen.next_u64();
    let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
    Some(match (r >> 1) % 16 {
        0 => return None,
        1 => sign * 1e300,
        2 => sign * 2f64.powi(60),
        3 if non_finite => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][(r >> 8) as usize % 3],
        4 => sign * 5e-324 * ((r >> 8) % 100) as f64,
        _ => sign * ((r >> 11) | 1) as f64 * 2f64.powi((r >> 4) as i32 % 80 - 60),
    })
}

/// A table `t(id, k, g, x, y)`: `k` a sort key with duplicates, `g` a group, `x` the values,
/// `y` a nullable filter column; split into `parts` partitions of batches of random sizes.
struct Table {
    ids: Vec<i64>,
    keys: Vec<i64>,
    groups: Vec<i64>,
    xs: Vec<Option<f64>>,
    ys: Vec<Option<i64>>,
}

impl Table {
    fn new(rows: usize, groups: u64, non_finite: bool, seed: u64) -> Table {
        let mut gen = XorShift::new(seed);
        let mut key = 0;
        let mut t = Table {
            ids: (0..rows as i64).collect(),
            keys: Vec::new(),
            groups: Vec::new(),
            xs: Vec::new(),
            ys: Vec::new(),
        };
        for _ in 0..rows {
            key += gen.below(3) as i64; // a third of the rows repeat the key before them
            t.keys.push(key);
            t.groups.push(gen.below(groups) as i64);
            t.xs.push(value(&mut gen, non_finite));
            t.ys.push((gen.below(5) != 0).then(|| gen.below(3) as i64 - 1));
        }
        t
    }

    fn batch(&self) -> RecordBatch {
        RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from(self.ids.clone())) as ArrayRef,
            ),
            ("k", Arc::new(Int64Array::from(self.keys.clone()))),
            ("g", Arc::new(Int64Array::from(self.groups.clone()))),
            ("x", Arc::new(Float64Array::from(self.xs.clone()))),
            ("y", Arc::new(Int64Array::from(self.ys.clone()))),
        ])
        .unwrap()
    }

    /// Registers the table in `parts` partitions of consecutive rows (in `id` and `k` order),
    /// in batches of random sizes from 1 to 300 rows.
    fn register(&self, ctx: &SessionContext, parts: usize, sorted_on: Option<&str>, seed: u64) {
        let batch = self.batch();
        let mut gen = XorShift::new(seed);
        let rows = batch.num_rows();
        let per_part = rows.div_ceil(parts).max(1);
        let partitions: Vec<Vec<RecordBatch>> = (0..parts)
            .map(|p| {
                let (mut s, end) = ((p * per_part).min(rows), ((p + 1) * per_part).min(rows));
                let mut batches = Vec::new();
                while s < end {
                    let len = (1 + gen.below(300) as usize).min(end - s);
                    batches.push(batch.slice(s, len));
                    s += len;
                }
                batches
            })
            .collect();
        let mut table = MemTable::try_new(batch.schema(), partitions).unwrap();
        if let Some(column) = sorted_on {
            table = table.with_sort_order(vec![vec![col(column).sort(true, false)]]);
        }
        ctx.register_table("t", Arc::new(table)).unwrap();
    }

    /// The values of each group's rows that pass `keep`.
    fn members(&self, keep: impl Fn(usize) -> bool) -> HashMap<i64, Vec<Option<f64>>> {
        let mut members: HashMap<i64, Vec<Option<f64>>> = HashMap::new();
        for i in (0..self.xs.len()).filter(|&i| keep(i)) {
            members.entry(self.groups[i]).or_default().push(self.xs[i]);
        }
        members
    }
}

fn session(config: SessionConfig) -> SessionContext {
    let ctx = SessionContext::new_with_config(config);
    mavg_datafusion::register(&ctx);
    ctx
}

/// The text of `EXPLAIN ANALYZE sql`: the plan with its metrics.
async fn explain_analyze(ctx: &SessionContext, sql: &str) -> Result<String> {
    let out = query(ctx, &format!("EXPLAIN ANALYZE {sql}")).await?;
    let plans = out.column(1).as_string::<i32>();
    Ok(plans.iter().flatten().collect::<Vec<_>>().join("\n"))
}

/// The sum of the values of metric `name` over the plan's operators.
fn metric(plan: &str, name: &str) -> u64 {
    plan.match_indices(&format!("{name}="))
        .map(|(at, m)| {
            let digits: String = plan[at + m.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<u64>().unwrap_or(0)
        })
        .sum()
}

/// Runs `SELECT g, exact_sum(x) AS s, exact_avg(x) AS a FROM t GROUP BY g ORDER BY g` (with
/// the given aggregate suffix, e.g. a `FILTER`) and checks every group against the reference.
async fn check_grouped(
    ctx: &SessionContext,
    t: &Table,
    suffix: &str,
    keep: impl Fn(usize) -> bool,
) -> Result<()> {
    let sql = format!(
        "SELECT g, exact_sum(x) {suffix} AS s, exact_avg(x) {suffix} AS a FROM t GROUP BY g \
         ORDER BY g"
    );
    let out = query(ctx, &sql).await?;
    let members = t.members(keep);
    let groups = ints(&out, "g");
    assert_eq!(groups.len(), t.groups.iter().collect::<HashSet<_>>().len());
    assert_rows(
        &out,
        "g",
        |g| format!("{sql}: group {g}"),
        |g| float_sum_avg(members.get(&g).map_or(&[][..], Vec::as_slice)),
    );
    Ok(())
}

/// On input sorted by the grouping key, groups are emitted as soon as they are complete
/// (`EmitTo::First`), and the rest are renumbered.
#[tokio::test]
async fn grouping_on_sorted_input_emits_early() -> Result<()> {
    let t = Table::new(5000, 1, true, 1);
    // Group by the sort key itself: many small groups, in order.
    let t = Table {
        groups: t.keys.clone(),
        ..t
    };
    let ctx = session(
        SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(64),
    );
    t.register(&ctx, 1, Some("g"), 2);
    let sql = "SELECT g, exact_sum(x) AS s FROM t GROUP BY g";
    let plan = explain_analyze(&ctx, sql).await?;
    assert!(plan.contains("ordering_mode=Sorted"), "{plan}");
    check_grouped(&ctx, &t, "", |_| true).await
}

/// Under a memory limit the final aggregation spills its states to disk, sorted, and merges
/// them back.
#[tokio::test]
async fn spilling_under_a_memory_limit_is_exact() -> Result<()> {
    let t = Table::new(60_000, 20_000, true, 3);
    // Each spilling operator gets a fair share of 4 MB, whatever the order they run in.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(4 << 20)))
        .build_arc()?;
    let mut config = SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(512);
    // The merge of spilled runs reserves this up front; the default (10 MB) exceeds the limit.
    config.options_mut().execution.sort_spill_reservation_bytes = 256 << 10;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    mavg_datafusion::register(&ctx);
    t.register(&ctx, 2, None, 4);
    let sql = "SELECT g, exact_sum(x) AS s, exact_avg(x) AS a FROM t GROUP BY g";
    let plan = explain_analyze(&ctx, sql).await?;
    assert!(metric(&plan, "spill_count") > 0, "no spill: {plan}");
    check_grouped(&ctx, &t, "", |_| true).await
}

/// With the probe thresholds at zero, partial aggregation is skipped (`convert_to_state`),
/// as the plan's `skipped_aggregation_rows` shows; NaN and infinities pass through the states.
#[tokio::test]
async fn skipped_partial_aggregation_is_exact() -> Result<()> {
    let t = Table::new(6000, 3000, true, 5);
    let mut config = SessionConfig::new()
        .with_target_partitions(4)
        .with_batch_size(100);
    let options = &mut config.options_mut().execution;
    options.skip_partial_aggregation_probe_rows_threshold = 1;
    options.skip_partial_aggregation_probe_ratio_threshold = 0.0;
    let ctx = session(config);
    t.register(&ctx, 4, None, 6);
    let sql = "SELECT g, exact_sum(x) AS s FROM t GROUP BY g";
    let plan = explain_analyze(&ctx, sql).await?;
    assert!(metric(&plan, "skipped_aggregation_rows") > 0, "{plan}");
    check_grouped(&ctx, &t, "", |_| true).await?;
    check_grouped(&ctx, &t, "FILTER (WHERE y > 0)", |i| t.ys[i] > Some(0)).await
}

/// NaN and infinities in groups, merged across partitions: NaN if a group holds a NaN or
/// both infinities, otherwise its infinity; the other groups stay exact.
#[tokio::test]
async fn non_finite_values_through_merges() -> Result<()> {
    let t = Table::new(3000, 60, true, 7);
    assert!(t.xs.iter().flatten().any(|x| x.is_nan()));
    for parts in [1, 3] {
        let ctx = session(SessionConfig::new().with_target_partitions(parts));
        t.register(&ctx, parts, None, 8);
        check_grouped(&ctx, &t, "", |_| true).await?;
    }
    Ok(())
}

/// `FILTER (WHERE ...)` whose condition is NULL for some rows (they do not count), with and
/// without `GROUP BY`.
#[tokio::test]
async fn filters_with_null_conditions() -> Result<()> {
    let t = Table::new(3000, 7, false, 9);
    let ctx = session(SessionConfig::new().with_target_partitions(2));
    t.register(&ctx, 2, None, 10);
    let keep = |i: usize| t.ys[i] == Some(1);
    check_grouped(&ctx, &t, "FILTER (WHERE y = 1)", keep).await?;
    let out = query(
        &ctx,
        "SELECT exact_sum(x) FILTER (WHERE y = 1) AS s, exact_avg(x) FILTER (WHERE y = 1) AS a \
         FROM t",
    )
    .await?;
    let all: Vec<Option<f64>> = (0..t.xs.len())
        .filter(|&i| keep(i))
        .map(|i| t.xs[i])
        .collect();
    let want = float_sum_avg(&all);
    assert_float("sum", floats(&out, "s")[0], want.map(|w| w.0));
    assert_float("avg", floats(&out, "a")[0], want.map(|w| w.1));
    Ok(())
}

/// `DISTINCT` next to other aggregates (which DataFusion cannot rewrite into a grouping on
/// the argument), with and without `GROUP BY`.
#[tokio::test]
async fn distinct_next_to_other_aggregates() -> Result<()> {
    let ctx = session(SessionConfig::new().with_target_partitions(2));
    let values = "(VALUES (1, 1e16, 'a'), (1, 1.0, 'a'), (1, 1e16, 'a'), (2, -1e16, 'b'), \
                  (3, 1.0, 'b'), (NULL, NULL, 'b')) AS t(i, x, k)";
    let out = query(
        &ctx,
        &format!(
            "SELECT exact_sum(DISTINCT i) AS si, exact_avg(DISTINCT x) AS ax, \
             exact_sum(DISTINCT x) AS sx, count(*) AS n FROM {values}"
        ),
    )
    .await?;
    let si = out
        .column_by_name("si")
        .unwrap()
        .as_primitive::<Decimal128Type>();
    assert_eq!(si.value(0), 6);
    assert_eq!(floats(&out, "sx"), [Some(1.0)]);
    assert_eq!(floats(&out, "ax"), [Some(1.0 / 3.0)]);
    let out = query(
        &ctx,
        &format!(
            "SELECT k, exact_sum(DISTINCT x) AS sx, exact_sum(x) AS s, exact_avg(DISTINCT i) AS ai \
             FROM {values} GROUP BY k ORDER BY k"
        ),
    )
    .await?;
    assert_eq!(floats(&out, "sx"), [Some(1e16 + 1.0), Some(-1e16 + 1.0)]);
    assert_eq!(floats(&out, "s"), [Some(2e16 + 1.0), Some(-1e16 + 1.0)]);
    assert_eq!(floats(&out, "ai"), [Some(1.0), Some(2.5)]);
    Ok(())
}

/// The frame of row `i` under each frame unit, as the rows in it.
fn frame_rows(t: &Table, unit: &str, i: usize, before: i64, after: i64) -> Vec<usize> {
    let n = t.xs.len() as i64;
    let at = i as i64;
    match unit {
        "ROWS" => ((at - before).max(0)..=(at + after).min(n - 1))
            .map(|j| j as usize)
            .collect(),
        "RANGE" => (0..t.xs.len())
            .filter(|&j| (t.keys[i] - before..=t.keys[i] + after).contains(&t.keys[j]))
            .collect(),
        "GROUPS" => {
            // Peer groups numbered in key order (the keys never decrease).
            let ranks: Vec<i64> = t
                .keys
                .iter()
                .scan((0, t.keys[0]), |(rank, last), &k| {
                    *rank += i64::from(k != *last);
                    *last = k;
                    Some(*rank)
                })
                .collect();
            (0..t.xs.len())
                .filter(|&j| (ranks[i] - before..=ranks[i] + after).contains(&ranks[j]))
                .collect()
        }
        _ => unreachable!(),
    }
}

/// Random `ROWS`, `RANGE` (with duplicate keys) and `GROUPS` frames over batches of random
/// sizes, row by row against the reference.
#[tokio::test]
async fn random_frames_of_every_unit() -> Result<()> {
    let t = Table::new(700, 1, true, 11);
    let mut gen = XorShift::new(12);
    for round in 0..9 {
        let unit = ["ROWS", "RANGE", "GROUPS"][round % 3];
        let (before, after) = (gen.below(40) as i64, gen.below(4) as i64);
        let ctx = session(
            SessionConfig::new()
                .with_target_partitions(1)
                .with_batch_size(97),
        );
        t.register(&ctx, 1, Some("k"), round as u64);
        let over =
            format!("OVER (ORDER BY k {unit} BETWEEN {before} PRECEDING AND {after} FOLLOWING)");
        let order = if unit == "ROWS" { "ORDER BY id" } else { "" };
        let sql = format!(
            "SELECT id, exact_sum(x) {over} AS s, exact_avg(x) {over} AS a FROM \
             (SELECT * FROM t {order}) ORDER BY id"
        );
        let out = query(&ctx, &sql).await?;
        let want = |id: i64| {
            let frame: Vec<Option<f64>> = frame_rows(&t, unit, id as usize, before, after)
                .into_iter()
                .map(|j| t.xs[j])
                .collect();
            float_sum_avg(&frame)
        };
        assert_rows(&out, "id", |id| format!("{sql}: row {id}"), want);
    }
    Ok(())
}

/// No rows: NULL without `GROUP BY`, no groups with it, no rows from a window.
#[tokio::test]
async fn empty_input() -> Result<()> {
    let t = Table::new(100, 3, false, 13);
    let ctx = session(SessionConfig::new().with_target_partitions(2));
    t.register(&ctx, 2, None, 14);
    let out = query(
        &ctx,
        "SELECT exact_sum(x) AS s, exact_avg(x) AS a FROM t WHERE id < 0",
    )
    .await?;
    assert_eq!(sums_and_means(&out), (vec![None], vec![None]));
    let out = query(
        &ctx,
        "SELECT exact_sum(i) AS s FROM t, (VALUES (1)) AS v(i) WHERE id < 0",
    )
    .await?;
    let s = out.column_by_name("s").unwrap();
    assert!(s
        .as_any()
        .downcast_ref::<Decimal128Array>()
        .unwrap()
        .is_null(0));
    let out = query(
        &ctx,
        "SELECT g, exact_sum(x) AS s FROM t WHERE id < 0 GROUP BY g",
    )
    .await?;
    assert_eq!(out.num_rows(), 0);
    let out = query(
        &ctx,
        "SELECT exact_avg(x) OVER (ORDER BY id ROWS 3 PRECEDING) AS a FROM t WHERE id < 0",
    )
    .await?;
    assert_eq!(out.num_rows(), 0);
    Ok(())
}
