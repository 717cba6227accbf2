//! `exact_sum` and `exact_avg` in SQL, checked against exact big-integer references
//! (`mavg_testkit::oracle`): sliding frames, `PARTITION BY`, `GROUP BY` under several
//! partitionings, NULLs, NaN and infinities, integer extremes, and planning errors.

mod kit;

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, Decimal128Array, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, Int8Array, RecordBatch, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{col, SessionConfig, SessionContext};
use kit::{
    assert_float, assert_rows, assert_sum_avg, decimals, float_sum_avg, floats, int_sum_avg, ints,
    query, sums_and_means,
};
use mavg_datafusion::{exact_avg, exact_sum};
use mavg_testkit::oracle::{exact_f64, round_exact};
use mavg_testkit::XorShift;

/// A session with the functions registered, `partitions` target partitions and small batches,
/// so that even small tables are split and merged.
fn session(partitions: usize) -> SessionContext {
    session_with(SessionConfig::new().with_target_partitions(partitions))
}

fn session_with(config: SessionConfig) -> SessionContext {
    let ctx = SessionContext::new_with_config(config.with_batch_size(100));
    mavg_datafusion::register(&ctx);
    ctx
}

/// Registers `batch` as table `name`, its rows split into `parts` partitions of consecutive
/// rows, each in batches of at most 70 rows.
fn register(ctx: &SessionContext, name: &str, batch: RecordBatch, parts: usize) -> Result<()> {
    let rows = batch.num_rows();
    let per_part = rows.div_ceil(parts).max(1);
    let mut partitions = Vec::new();
    for p in 0..parts {
        let start = (p * per_part).min(rows);
        let end = ((p + 1) * per_part).min(rows);
        let mut batches = Vec::new();
        let mut s = start;
        while s < end {
            let len = 70.min(end - s);
            batches.push(batch.slice(s, len));
            s += len;
        }
        partitions.push(batches);
    }
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(batch.schema(), partitions)?),
    )?;
    Ok(())
}

/// Values that make float running sums drift: huge values that cancel, ones that vanish next to
/// them, values of wildly different magnitudes, subnormals, and NULLs.
fn nasty(gen: &mut XorShift, nulls: bool) -> Option<f64> {
    let r = gen.next_u64();
    let sign = if r & 1 == 0 { 1.0 } else { -1.0 };
    Some(match (r >> 1) % 12 {
        0 => sign * 2f64.powi(54),
        1 => 1.0,
        2 if nulls => return None,
        3 => sign * 1e300,
        4 => sign * 5e-324 * ((r >> 8) % 1000) as f64,
        5 => 0.1,
        6 => sign * 2f64.powi(100),
        _ => {
            let mantissa = ((r >> 11) | 1) as f64; // up to 53 bits
            let exp = ((r >> 4) % 120) as i32 - 100;
            sign * mantissa * 2f64.powi(exp)
        }
    })
}

fn float_batch(ids: &[i64], groups: &[i64], xs: &[Option<f64>]) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("g", Arc::new(Int64Array::from(groups.to_vec())) as ArrayRef),
        ("x", Arc::new(Float64Array::from(xs.to_vec())) as ArrayRef),
    ])
    .unwrap()
}

fn nasty_table(n: usize, seed: u64, groups: i64) -> (Vec<i64>, Vec<i64>, Vec<Option<f64>>) {
    let mut gen = XorShift::new(seed);
    let ids: Vec<i64> = (0..n as i64).collect();
    let gs: Vec<i64> = (0..n)
        .map(|_| (gen.next_u64() % groups as u64) as i64)
        .collect();
    let xs: Vec<Option<f64>> = (0..n).map(|_| nasty(&mut gen, true)).collect();
    (ids, gs, xs)
}

/// The frame bound text of `ROWS BETWEEN preceding PRECEDING AND ...`.
fn frame(preceding: usize, following: usize) -> String {
    let end = if following == 0 {
        "CURRENT ROW".to_string()
    } else {
        format!("{following} FOLLOWING")
    };
    format!("ROWS BETWEEN {preceding} PRECEDING AND {end}")
}

/// Checks `exact_sum` and `exact_avg` over a sliding frame of `xs` (ordered by position,
/// optionally partitioned by `groups`) against the reference, row by row.
async fn check_float_window(
    ids: &[i64],
    groups: &[i64],
    xs: &[Option<f64>],
    preceding: usize,
    following: usize,
    partition_by: bool,
    parts: usize,
) -> Result<()> {
    let ctx = session(parts);
    register(&ctx, "t", float_batch(ids, groups, xs), parts)?;
    let partition = if partition_by { "PARTITION BY g " } else { "" };
    let over = format!(
        "OVER ({partition}ORDER BY id {})",
        frame(preceding, following)
    );
    let sql =
        format!("SELECT id, exact_sum(x) {over} AS s, exact_avg(x) {over} AS a FROM t ORDER BY id");
    let out = query(&ctx, &sql).await?;
    assert_eq!(out.num_rows(), xs.len());
    let want = |id: i64| {
        let i = id as usize;
        // The rows of i's partition, in order, and i's place among them.
        let members: Vec<usize> = (0..xs.len())
            .filter(|&j| !partition_by || groups[j] == groups[i])
            .collect();
        let at = members.iter().position(|&j| j == i).unwrap();
        let lo = at.saturating_sub(preceding);
        let hi = (at + following).min(members.len() - 1);
        let frame: Vec<Option<f64>> = members[lo..=hi].iter().map(|&j| xs[j]).collect();
        float_sum_avg(&frame)
    };
    assert_rows(&out, "id", |id| format!("{sql}: row {id}"), want);
    Ok(())
}

#[tokio::test]
async fn sliding_frames_of_several_sizes_are_exact() -> Result<()> {
    let (ids, gs, xs) = nasty_table(1500, 1, 1);
    for preceding in [0, 1, 2, 7, 50, 400] {
        check_float_window(&ids, &gs, &xs, preceding, 0, false, 1).await?;
    }
    Ok(())
}

#[tokio::test]
async fn sliding_frames_reaching_forward_are_exact() -> Result<()> {
    let (ids, gs, xs) = nasty_table(800, 2, 1);
    check_float_window(&ids, &gs, &xs, 3, 2, false, 2).await?;
    check_float_window(&ids, &gs, &xs, 0, 9, false, 2).await?;

    // With distinct ids, a RANGE frame holds the same rows as the ROWS frame.
    let ctx = session(2);
    register(&ctx, "t", float_batch(&ids, &gs, &xs), 2)?;
    let out = query(
        &ctx,
        "SELECT exact_avg(x) OVER (ORDER BY id ROWS BETWEEN 5 PRECEDING AND 2 FOLLOWING) AS r, \
         exact_avg(x) OVER (ORDER BY id RANGE BETWEEN 5 PRECEDING AND 2 FOLLOWING) AS g \
         FROM t ORDER BY id",
    )
    .await?;
    let bits = |c| {
        floats(&out, c)
            .iter()
            .map(|x| x.map(f64::to_bits))
            .collect::<Vec<_>>()
    };
    assert_eq!(bits("r"), bits("g"));

    // A cumulative frame never retracts: every prefix.
    let out = query(
        &ctx,
        "SELECT exact_sum(x) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) \
         AS s FROM t ORDER BY id",
    )
    .await?;
    let sums = floats(&out, "s");
    for i in 0..xs.len() {
        let want = float_sum_avg(&xs[..=i]).map(|w| w.0);
        assert_float(&format!("prefix {i}"), sums[i], want);
    }
    Ok(())
}

#[tokio::test]
async fn sliding_frames_per_partition_are_exact() -> Result<()> {
    let (ids, gs, xs) = nasty_table(1200, 3, 5);
    for parts in [1, 2, 8] {
        check_float_window(&ids, &gs, &xs, 4, 0, true, parts).await?;
        check_float_window(&ids, &gs, &xs, 31, 0, true, parts).await?;
    }
    Ok(())
}

/// The sequence that breaks add-and-subtract running sums: after `2^54` leaves the frame,
/// the frame holds only ones.
#[tokio::test]
async fn a_large_value_leaving_the_frame_leaves_no_trace() -> Result<()> {
    let mut xs = vec![Some(2f64.powi(54))];
    xs.extend(std::iter::repeat_n(Some(1.0), 20));
    let ids: Vec<i64> = (0..xs.len() as i64).collect();
    let ctx = session(1);
    register(&ctx, "t", float_batch(&ids, &ids, &xs), 1)?;
    let out = query(
        &ctx,
        "SELECT exact_sum(x) OVER w AS s, exact_avg(x) OVER w AS a FROM t \
         WINDOW w AS (ORDER BY id ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) ORDER BY id",
    )
    .await?;
    let (sums, avgs) = sums_and_means(&out);
    assert_eq!(sums[1], Some(2f64.powi(54))); // 2^54 + 1 rounds to 2^54 (ties to even)
    assert_eq!(sums[2], Some(2f64.powi(54) + 2.0));
    for row in 4..xs.len() {
        assert_eq!(sums[row], Some(4.0), "row {row}");
        assert_eq!(avgs[row], Some(1.0), "row {row}");
    }
    Ok(())
}

/// Runs the sums and means of table `t` by group `g`, and checks each group against the
/// reference's sum and mean of its values (`xs` the values, `gs` their groups; `what(g)`
/// names a group); returns the result.
async fn check_groups(
    ctx: &SessionContext,
    gs: &[i64],
    xs: &[Option<f64>],
    what: impl Fn(i64) -> String,
) -> Result<RecordBatch> {
    let out = query(
        ctx,
        "SELECT g, exact_sum(x) AS s, exact_avg(x) AS a FROM t GROUP BY g ORDER BY g",
    )
    .await?;
    assert_rows(&out, "g", what, |g| {
        let members: Vec<Option<f64>> = (0..xs.len())
            .filter(|&j| gs[j] == g)
            .map(|j| xs[j])
            .collect();
        float_sum_avg(&members)
    });
    Ok(out)
}

/// `GROUP BY` under 1, 2 and 8 partitions (and as many target partitions): equal to the
/// reference, and bit-identical across partitionings.
#[tokio::test]
async fn group_by_is_exact_whatever_the_partitioning() -> Result<()> {
    let (ids, gs, xs) = nasty_table(6000, 4, 41);
    // The sums and means of the previous partitioning.
    let mut previous: Option<[Vec<Option<f64>>; 2]> = None;
    for parts in [1, 2, 8] {
        let ctx = session(parts);
        register(&ctx, "t", float_batch(&ids, &gs, &xs), parts)?;
        let out =
            check_groups(&ctx, &gs, &xs, |g| format!("{parts} partitions, group {g}")).await?;
        let (sums, avgs) = sums_and_means(&out);
        let bits = |v: &[Option<f64>]| v.iter().map(|x| x.map(f64::to_bits)).collect::<Vec<_>>();
        if let Some([ps, pa]) = &previous {
            assert_eq!(bits(ps), bits(&sums), "{parts} partitions: sums differ");
            assert_eq!(bits(pa), bits(&avgs), "{parts} partitions: means differ");
        }
        previous = Some([sums, avgs]);
    }
    Ok(())
}

/// Without `GROUP BY`: one accumulator per partition, merged through the serialized state.
#[tokio::test]
async fn whole_table_aggregate_is_exact_whatever_the_partitioning() -> Result<()> {
    let (ids, gs, xs) = nasty_table(3000, 5, 1);
    let want = float_sum_avg(&xs).unwrap();
    for parts in [1, 2, 8] {
        let ctx = session(parts);
        register(&ctx, "t", float_batch(&ids, &gs, &xs), parts)?;
        let out = query(&ctx, "SELECT exact_sum(x) AS s, exact_avg(x) AS a FROM t").await?;
        assert_sum_avg(
            &format!("{parts} partitions"),
            (floats(&out, "s")[0], floats(&out, "a")[0]),
            Some(want),
        );
    }
    Ok(())
}

/// With partial aggregation skipped at once, rows reach the final phase as one-value states
/// (`convert_to_state`).
#[tokio::test]
async fn group_by_with_partial_aggregation_skipped_is_exact() -> Result<()> {
    let (ids, gs, xs) = nasty_table(4000, 6, 2000);
    let mut config = SessionConfig::new().with_target_partitions(4);
    let options = &mut config.options_mut().execution;
    options.skip_partial_aggregation_probe_rows_threshold = 1;
    options.skip_partial_aggregation_probe_ratio_threshold = 0.0;
    let ctx = session_with(config);
    register(&ctx, "t", float_batch(&ids, &gs, &xs), 4)?;
    check_groups(&ctx, &gs, &xs, |g| format!("group {g}")).await?;
    Ok(())
}

/// `FILTER (WHERE ...)` and the DataFrame API.
#[tokio::test]
async fn filtered_aggregates_and_dataframe_api() -> Result<()> {
    let (ids, gs, xs) = nasty_table(2000, 7, 7);
    let ctx = session(2);
    register(&ctx, "t", float_batch(&ids, &gs, &xs), 2)?;
    let out = query(
        &ctx,
        "SELECT g, exact_sum(x) FILTER (WHERE id % 3 = 0) AS s FROM t GROUP BY g ORDER BY g",
    )
    .await?;
    let sums = floats(&out, "s");
    for (row, g) in ints(&out, "g").into_iter().enumerate() {
        let members: Vec<Option<f64>> = (0..xs.len())
            .filter(|&j| gs[j] == g && j % 3 == 0)
            .map(|j| xs[j])
            .collect();
        assert_float(
            &format!("group {g}"),
            sums[row],
            float_sum_avg(&members).map(|w| w.0),
        );
    }

    let df = ctx.table("t").await?.aggregate(
        vec![],
        vec![
            exact_sum(col("x")).alias("s"),
            exact_avg(col("x")).alias("a"),
        ],
    )?;
    let out = concat_batches(&df.schema().inner().clone(), &df.collect().await?)?;
    let want = float_sum_avg(&xs).unwrap();
    let got = (floats(&out, "s")[0], floats(&out, "a")[0]);
    assert_sum_avg("dataframe", got, Some(want));
    Ok(())
}

/// Registration into a `SessionState` (as a distributed engine's executors build one).
#[tokio::test]
async fn registration_in_a_session_state() -> Result<()> {
    let mut state = SessionStateBuilder::new().with_default_features().build();
    mavg_datafusion::register_in(&mut state)?;
    let ctx = SessionContext::new_with_state(state);
    let out = query(
        &ctx,
        "SELECT exact_sum(x) AS s, count(x) AS n FROM (VALUES (1e100), (1.0), (-1e100)) AS t(x)",
    )
    .await?;
    assert_eq!(floats(&out, "s"), [Some(1.0)]);
    // The built-in functions are still there.
    let n = out
        .column_by_name("n")
        .unwrap()
        .as_primitive::<Int64Type>()
        .value(0);
    assert_eq!(n, 3);
    Ok(())
}

#[tokio::test]
async fn nulls_are_ignored_and_all_null_gives_null() -> Result<()> {
    let xs = [
        None,
        Some(1.0),
        Some(2.0),
        None,
        None,
        None,
        Some(4.0),
        None,
    ];
    let ids: Vec<i64> = (0..xs.len() as i64).collect();
    let gs = [0, 0, 0, 1, 1, 1, 2, 2];
    let ctx = session(2);
    register(&ctx, "t", float_batch(&ids, &gs, &xs), 2)?;

    let out = query(
        &ctx,
        "SELECT g, exact_sum(x) AS s, exact_avg(x) AS a FROM t GROUP BY g ORDER BY g",
    )
    .await?;
    assert_eq!(floats(&out, "s"), [Some(3.0), None, Some(4.0)]);
    assert_eq!(floats(&out, "a"), [Some(1.5), None, Some(4.0)]);

    let out = query(
        &ctx,
        "SELECT exact_sum(x) OVER w AS s, exact_avg(x) OVER w AS a FROM t \
         WINDOW w AS (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) ORDER BY id",
    )
    .await?;
    let s = [
        None,
        Some(1.0),
        Some(3.0),
        Some(2.0),
        None,
        None,
        Some(4.0),
        Some(4.0),
    ];
    let a = [
        None,
        Some(1.0),
        Some(1.5),
        Some(2.0),
        None,
        None,
        Some(4.0),
        Some(4.0),
    ];
    assert_eq!(floats(&out, "s"), s);
    assert_eq!(floats(&out, "a"), a);

    let out = query(
        &ctx,
        "SELECT exact_sum(x) AS s, exact_avg(x) AS a FROM t WHERE x IS NULL",
    )
    .await?;
    assert_eq!(sums_and_means(&out), (vec![None], vec![None]));
    let out = query(&ctx, "SELECT exact_sum(NULL) AS s, exact_avg(NULL) AS a").await?;
    assert_eq!(
        (decimals(&out, "s"), floats(&out, "a")),
        (vec![None], vec![None])
    );
    Ok(())
}

#[tokio::test]
async fn nan_and_infinities_follow_the_contract_and_leave_the_frame() -> Result<()> {
    let inf = f64::INFINITY;
    let xs = [
        1.0,
        f64::NAN,
        2.0,
        3.0,
        4.0,
        inf,
        5.0,
        6.0,
        7.0,
        -inf,
        0.5,
        0.25,
        inf,
        -inf,
        1.0,
        2.0,
        3.0,
        1e308,
        1e308,
        1.0,
        2.0,
        3.0,
    ]
    .map(Some);
    let ids: Vec<i64> = (0..xs.len() as i64).collect();
    for preceding in [0, 1, 2] {
        check_float_window(&ids, &ids, &xs, preceding, 0, false, 1).await?;
    }
    // Spot checks with two rows per frame.
    let ctx = session(1);
    register(&ctx, "t", float_batch(&ids, &ids, &xs), 1)?;
    let out = query(
        &ctx,
        "SELECT exact_sum(x) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s \
         FROM t ORDER BY id",
    )
    .await?;
    let s = floats(&out, "s");
    assert!(s[1].unwrap().is_nan() && s[2].unwrap().is_nan());
    assert_eq!(s[3], Some(5.0)); // the NaN has left
    assert_eq!((s[5], s[6], s[7]), (Some(inf), Some(inf), Some(11.0)));
    assert!(s[13].unwrap().is_nan()); // inf and -inf
    assert_eq!(s[15], Some(3.0));
    assert_eq!(s[18], Some(inf)); // 2e308 overflows f64: rounds to +inf
    assert_eq!(s[19], Some(1e308 + 1.0));
    Ok(())
}

#[tokio::test]
async fn integer_types_at_their_extremes() -> Result<()> {
    let mut gen = XorShift::new(8);
    let n = 600;
    let pick = |gen: &mut XorShift, min: i128, max: i128| -> Option<i128> {
        let r = gen.next_u64();
        match r % 9 {
            0 => None,
            1 | 2 => Some(min),
            3 | 4 => Some(max),
            _ => Some(min + (r as i128 % (max - min + 1)).abs()),
        }
    };
    let types: [(&str, i128, i128); 8] = [
        ("i8", i8::MIN.into(), i8::MAX.into()),
        ("i16", i16::MIN.into(), i16::MAX.into()),
        ("i32", i32::MIN.into(), i32::MAX.into()),
        ("i64", i64::MIN.into(), i64::MAX.into()),
        ("u8", 0, u8::MAX.into()),
        ("u16", 0, u16::MAX.into()),
        ("u32", 0, u32::MAX.into()),
        ("u64", 0, u64::MAX.into()),
    ];
    let data: Vec<Vec<Option<i128>>> = types
        .iter()
        .map(|&(_, min, max)| (0..n).map(|_| pick(&mut gen, min, max)).collect())
        .collect();
    macro_rules! column {
        ($array:ty, $native:ty, $values:expr) => {
            Arc::new(<$array>::from(
                $values
                    .iter()
                    .map(|v| v.map(|v| v as $native))
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        };
    }
    let groups: Vec<i64> = (0..n).map(|i| (i % 4) as i64).collect();
    let ids: Vec<i64> = (0..n as i64).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("g", Arc::new(Int64Array::from(groups.clone())) as ArrayRef),
        ("i8", column!(Int8Array, i8, data[0])),
        ("i16", column!(Int16Array, i16, data[1])),
        ("i32", column!(Int32Array, i32, data[2])),
        ("i64", column!(Int64Array, i64, data[3])),
        ("u8", column!(UInt8Array, u8, data[4])),
        ("u16", column!(UInt16Array, u16, data[5])),
        ("u32", column!(UInt32Array, u32, data[6])),
        ("u64", column!(UInt64Array, u64, data[7])),
    ])?;
    let select: Vec<String> = types
        .iter()
        .map(|(c, _, _)| format!("exact_sum({c}) AS s_{c}, exact_avg({c}) AS a_{c}"))
        .collect();
    for parts in [1, 2, 8] {
        let ctx = session(parts);
        register(&ctx, "t", batch.clone(), parts)?;
        let sql = format!(
            "SELECT g, {} FROM t GROUP BY g ORDER BY g",
            select.join(", ")
        );
        let out = query(&ctx, &sql).await?;
        for (k, (c, _, _)) in types.iter().enumerate() {
            let field = out.schema().field_with_name(&format!("s_{c}"))?.clone();
            assert_eq!(field.data_type(), &DataType::Decimal128(38, 0));
            let (sums, avgs) = (
                decimals(&out, &format!("s_{c}")),
                floats(&out, &format!("a_{c}")),
            );
            for (row, g) in ints(&out, "g").into_iter().enumerate() {
                let members: Vec<Option<i128>> = (0..n)
                    .filter(|&j| groups[j] == g)
                    .map(|j| data[k][j])
                    .collect();
                let want = int_sum_avg(&members);
                assert_eq!(
                    sums[row],
                    want.map(|w| w.0),
                    "{c} group {g} sum, {parts} partitions"
                );
                assert_float(&format!("{c} group {g} avg"), avgs[row], want.map(|w| w.1));
            }
        }
    }

    // Sliding frames over 64-bit extremes: sums past the range of BIGINT, exactly.
    let ctx = session(1);
    register(&ctx, "t", batch, 1)?;
    for preceding in [1, 5, 40] {
        let over = format!("OVER (ORDER BY id {})", frame(preceding, 0));
        let sql = format!(
            "SELECT exact_sum(i64) {over} AS si, exact_avg(i64) {over} AS ai, \
             exact_sum(u64) {over} AS su, exact_avg(u64) {over} AS au FROM t ORDER BY id"
        );
        let out = query(&ctx, &sql).await?;
        for (k, s, a) in [(3, "si", "ai"), (7, "su", "au")] {
            let (sums, avgs) = (decimals(&out, s), floats(&out, a));
            for i in 0..n {
                let want = int_sum_avg(&data[k][i.saturating_sub(preceding)..=i]);
                assert_eq!(sums[i], want.map(|w| w.0), "{s} row {i}");
                assert_float(&format!("{a} row {i}"), avgs[i], want.map(|w| w.1));
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn sums_beyond_bigint_are_exact_decimals() -> Result<()> {
    let ctx = session(2);
    let values = vec![i64::MAX; 1000];
    let batch =
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(values)) as ArrayRef)])?;
    register(&ctx, "t", batch, 2)?;
    let out = query(&ctx, "SELECT exact_sum(v) AS s, exact_avg(v) AS a FROM t").await?;
    assert_eq!(decimals(&out, "s"), [Some(1000 * i128::from(i64::MAX))]);
    assert_eq!(floats(&out, "a"), [Some(i64::MAX as f64)]);
    Ok(())
}

#[tokio::test]
async fn float32_sums_are_exact_in_double() -> Result<()> {
    let mut gen = XorShift::new(9);
    let xs: Vec<Option<f32>> = (0..1000)
        .map(|_| nasty(&mut gen, true).map(|x| x as f32))
        .collect();
    let ids: Vec<i64> = (0..xs.len() as i64).collect();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("x", Arc::new(Float32Array::from(xs.clone())) as ArrayRef),
    ])?;
    let wide: Vec<Option<f64>> = xs.iter().map(|x| x.map(f64::from)).collect();
    let ctx = session(2);
    register(&ctx, "t", batch, 2)?;
    let out = query(&ctx, "SELECT exact_sum(x) AS s, exact_avg(x) AS a FROM t").await?;
    let field = out.schema().field_with_name("s")?.clone();
    assert_eq!(field.data_type(), &DataType::Float64);
    let want = float_sum_avg(&wide).unwrap();
    let got = (floats(&out, "s")[0], floats(&out, "a")[0]);
    assert_sum_avg("f32", got, Some(want));

    let out = query(
        &ctx,
        "SELECT exact_sum(x) OVER (ORDER BY id ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS s FROM t ORDER BY id",
    )
    .await?;
    let sums = floats(&out, "s");
    for i in 0..wide.len() {
        let want = float_sum_avg(&wide[i.saturating_sub(9)..=i]).map(|w| w.0);
        assert_float(&format!("f32 frame row {i}"), sums[i], want);
    }
    Ok(())
}

#[tokio::test]
async fn result_types() -> Result<()> {
    let ctx = session(1);
    let out = query(
        &ctx,
        "SELECT exact_sum(i8) AS a, exact_sum(u32) AS b, exact_sum(r) AS c, exact_sum(d) AS d, \
         exact_avg(i64) AS e, exact_avg(r) AS f \
         FROM (SELECT CAST(1 AS TINYINT) AS i8, CAST(1 AS INT UNSIGNED) AS u32, \
         CAST(1 AS REAL) AS r, 1.5 AS d, CAST(1 AS BIGINT) AS i64) AS t",
    )
    .await?;
    let types: Vec<DataType> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect();
    let decimal = DataType::Decimal128(38, 0);
    assert_eq!(
        types,
        [
            decimal.clone(),
            decimal,
            DataType::Float64,
            DataType::Float64,
            DataType::Float64,
            DataType::Float64
        ]
    );

    // Float16 widens exactly to Float32; a dictionary is summed by its values.
    let out = query(
        &ctx,
        "SELECT exact_sum(h) AS h, exact_avg(d) AS d FROM (VALUES \
         (arrow_cast(0.5, 'Float16'), arrow_cast(2, 'Dictionary(Int32, Int64)')), \
         (arrow_cast(65504, 'Float16'), arrow_cast(3, 'Dictionary(Int32, Int64)'))) AS t(h, d)",
    )
    .await?;
    assert_eq!(floats(&out, "h"), [Some(65504.5)]);
    assert_eq!(floats(&out, "d"), [Some(2.5)]);
    Ok(())
}

#[tokio::test]
async fn unsupported_types_are_planning_errors() -> Result<()> {
    let ctx = session(1);
    for arg in [
        "'text'",
        "CAST(1.5 AS DECIMAL(50, 2))",
        "true",
        "DATE '2024-01-01'",
    ] {
        for f in ["exact_sum", "exact_avg"] {
            let sql = format!("SELECT {f}({arg})");
            let err = match ctx.sql(&sql).await {
                Ok(df) => df.collect().await.expect_err(&sql),
                Err(e) => e,
            };
            let message = err.to_string();
            assert!(
                message.contains(&format!("{f} does not support argument type")),
                "{sql}: {message}"
            );
        }
    }
    let err = ctx
        .sql("SELECT exact_sum(1, 2)")
        .await
        .expect_err("two arguments");
    assert!(err.to_string().contains("exact_sum"), "{err}");
    Ok(())
}

/// `DECIMAL(p, s)`: the exact sum at scale `s` (`DECIMAL(38, s)`), the mean rounded half to
/// even at scale `s + 4`, in groups (also with partial aggregation skipped), whole tables and
/// sliding frames; sums beyond 38 digits on the way are exact, and a result beyond them is an
/// error.
#[tokio::test]
async fn decimals_are_summed_exactly_at_their_scale() -> Result<()> {
    let mut gen = XorShift::new(21);
    let n = 2000;
    // 33-digit values that cancel within each group (row 7 k + g has sign + for k % 10 == 0
    // and - for k % 10 == 1), so that no sum or mean passes 38 digits.
    let big = 15 * 10i128.pow(32);
    let values: Vec<Option<i128>> = (0..n)
        .map(|i| match ((i / 7) % 10, gen.next_u64() % 10) {
            (0, _) => Some(big),
            (1, _) => Some(-big),
            (_, 0) => None,
            _ => Some((gen.next_u64() % 2_000_000) as i128 - 1_000_000),
        })
        .collect();
    let groups: Vec<i64> = (0..n).map(|i| (i % 7) as i64).collect();
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())) as ArrayRef,
        ),
        ("g", Arc::new(Int64Array::from(groups.clone()))),
        (
            "x",
            Arc::new(Decimal128Array::from(values.clone()).with_precision_and_scale(38, 3)?),
        ),
    ])?;
    // The exact mean at scale 7 (the sum at scale 3 times 10^4 over n), half to even.
    let mean = |sum: i128, count: i128| {
        let num = sum * 10_000;
        let (q, r) = (num / count, num % count);
        let twice = 2 * r.abs();
        if twice > count || (twice == count && q % 2 != 0) {
            q + num.signum()
        } else {
            q
        }
    };
    for skip in [false, true] {
        let mut config = SessionConfig::new().with_target_partitions(3);
        if skip {
            let options = &mut config.options_mut().execution;
            options.skip_partial_aggregation_probe_rows_threshold = 1;
            options.skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let ctx = session_with(config);
        register(&ctx, "t", batch.clone(), 3)?;
        let out = query(
            &ctx,
            "SELECT g, exact_sum(x) AS s, exact_avg(x) AS a FROM t GROUP BY g ORDER BY g",
        )
        .await?;
        assert_eq!(
            out.schema().field_with_name("s")?.data_type(),
            &DataType::Decimal128(38, 3)
        );
        assert_eq!(
            out.schema().field_with_name("a")?.data_type(),
            &DataType::Decimal128(38, 7)
        );
        for (row, g) in ints(&out, "g").into_iter().enumerate() {
            let members: Vec<i128> = (0..n)
                .filter(|&i| groups[i] == g)
                .filter_map(|i| values[i])
                .collect();
            let sum: i128 = members.iter().sum();
            assert_eq!(decimals(&out, "s")[row], Some(sum), "group {g}");
            let avg = mean(sum, members.len() as i128);
            assert_eq!(decimals(&out, "a")[row], Some(avg), "group {g}");
        }
    }
    // A frame of 5 rows, sliding past the 33-digit values (their means at scale 7 take 38).
    let ctx = session(1);
    register(&ctx, "t", batch, 1)?;
    let over = "OVER (ORDER BY id ROWS BETWEEN 4 PRECEDING AND CURRENT ROW)";
    let out = query(
        &ctx,
        &format!("SELECT exact_sum(x) {over} AS s, exact_avg(x) {over} AS a FROM t ORDER BY id"),
    )
    .await?;
    for i in 0..n {
        let frame: Vec<i128> = values[i.saturating_sub(4)..=i]
            .iter()
            .flatten()
            .copied()
            .collect();
        let sum: i128 = frame.iter().sum();
        let want = (!frame.is_empty()).then_some(sum);
        assert_eq!(decimals(&out, "s")[i], want, "row {i}");
        let want = (!frame.is_empty()).then(|| mean(sum, frame.len() as i128));
        assert_eq!(decimals(&out, "a")[i], want, "row {i}");
    }
    // Ties at the mean's scale go to even: 3 / 32 = 0.09375 -> 0.0938, 1 / 32 -> 0.0312.
    for (ones, want) in [(3i32, 938), (1, 312), (-3, -938)] {
        let rows: Vec<String> = (0..32)
            .map(|i| {
                let v = if i < ones.abs() { ones.signum() } else { 0 };
                format!("(CAST({v} AS DECIMAL(10, 0)))")
            })
            .collect();
        let sql = format!(
            "SELECT exact_avg(x) AS a FROM (VALUES {}) AS t(x)",
            rows.join(", ")
        );
        assert_eq!(
            decimals(&query(&ctx, &sql).await?, "a"),
            [Some(want)],
            "{sql}"
        );
    }
    // Beyond 38 digits on the way, and back: exact.
    let out = query(
        &ctx,
        "SELECT exact_sum(x) AS s FROM (VALUES (CAST(9e37 AS DECIMAL(38, 0))), \
         (CAST(9e37 AS DECIMAL(38, 0))), (CAST(-9e37 AS DECIMAL(38, 0))), \
         (CAST(-9e37 AS DECIMAL(38, 0))), (CAST(5 AS DECIMAL(38, 0)))) AS t(x)",
    )
    .await?;
    assert_eq!(decimals(&out, "s"), [Some(5)]);
    // Beyond 38 digits at the end: an error, not a wrapped value.
    let err = query(
        &ctx,
        "SELECT exact_sum(x) AS s FROM (VALUES (CAST(9e37 AS DECIMAL(38, 0))), \
         (CAST(9e37 AS DECIMAL(38, 0)))) AS t(x)",
    )
    .await
    .expect_err("1.8e38 does not fit");
    assert!(
        err.to_string().contains("does not fit DECIMAL(38, 0)"),
        "{err}"
    );
    Ok(())
}

/// One `DISTINCT` argument is planned as a grouping on it; two need the distinct accumulator
/// (more in `plan_paths.rs`).
#[tokio::test]
async fn distinct() -> Result<()> {
    let ctx = session(2);
    let values = "(VALUES (1, 10), (1, 10), (2, 20), (2, 30)) AS t(x, y)";
    let out = query(
        &ctx,
        &format!("SELECT exact_sum(DISTINCT x) AS s FROM {values}"),
    )
    .await?;
    assert_eq!(decimals(&out, "s"), [Some(3)]);
    let sql =
        format!("SELECT exact_sum(DISTINCT x) AS s, exact_avg(DISTINCT y) AS a FROM {values}");
    let out = query(&ctx, &sql).await?;
    assert_eq!(decimals(&out, "s"), [Some(3)]);
    assert_eq!(floats(&out, "a"), [Some(20.0)]);
    Ok(())
}

/// `CAST(exact_sum(x) AS BIGINT)` is exact where the sum fits and an error where it does not.
#[tokio::test]
async fn casting_the_decimal_sum_to_bigint() -> Result<()> {
    let ctx = session(1);
    let values = vec![i64::MAX, i64::MAX, -i64::MAX];
    let batch =
        RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(values)) as ArrayRef)])?;
    register(&ctx, "t", batch, 1)?;
    let out = query(&ctx, "SELECT CAST(exact_sum(v) AS BIGINT) AS s FROM t").await?;
    assert_eq!(ints(&out, "s"), [i64::MAX]);
    let err = query(
        &ctx,
        "SELECT CAST(exact_sum(v) AS BIGINT) AS s FROM t WHERE v > 0",
    )
    .await
    .expect_err("2 * i64::MAX does not fit BIGINT");
    assert!(err.to_string().contains("out of range Int64"), "{err}");
    Ok(())
}

/// The oracle itself: where one IEEE operation is exact or correctly rounded, it agrees.
#[test]
fn reference_rounding_agrees_with_ieee_where_ieee_is_exact() {
    for &x in &[
        1.0,
        -0.1,
        5e-324,
        2.2250738585072014e-308,
        f64::MAX,
        3.0e-310,
        123456.789,
    ] {
        assert_eq!(round_exact(&exact_f64(x), 1, 1074), x);
    }
    // One division, correctly rounded by IEEE.
    for &(a, b) in &[
        (1.0, 3.0),
        (2.0, 7.0),
        (1e300, 7.0),
        (5e-324, 2.0),
        (1.5e-323, 2.0),
    ] {
        assert_eq!(
            round_exact(&exact_f64(a), b as u64, 1074),
            a / b,
            "{a} / {b}"
        );
    }
    // Overflow of the exact sum.
    let twice_max = exact_f64(f64::MAX) * 2;
    assert_eq!(round_exact(&twice_max, 1, 1074), f64::INFINITY);
}
