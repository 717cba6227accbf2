//! What the SQL tests share: a query run into one batch, its columns read back, the expected
//! sums and means of a column with NULLs (from the exact oracle of `mavg_testkit::oracle`), and
//! floats compared as `mavg_testkit::float::same_value` does. The generator is
//! `mavg_testkit::XorShift`.

#![allow(dead_code)]

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use mavg_testkit::float::same_value;
use mavg_testkit::oracle::{round_exact, Total};

/// Runs `sql` and returns its rows as one batch.
pub async fn query(ctx: &SessionContext, sql: &str) -> Result<RecordBatch> {
    let df = ctx.sql(sql).await?;
    let schema = df.schema().inner().clone();
    let batches = df.collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

pub fn floats(batch: &RecordBatch, column: &str) -> Vec<Option<f64>> {
    let array = batch.column_by_name(column).unwrap();
    array.as_primitive::<Float64Type>().iter().collect()
}

pub fn decimals(batch: &RecordBatch, column: &str) -> Vec<Option<i128>> {
    let array = batch.column_by_name(column).unwrap();
    array.as_primitive::<Decimal128Type>().iter().collect()
}

pub fn ints(batch: &RecordBatch, column: &str) -> Vec<i64> {
    let array = batch.column_by_name(column).unwrap();
    array.as_primitive::<Int64Type>().values().to_vec()
}

/// Panics unless `got` and `want` are both NULL or the same float (`same_value`).
pub fn assert_float(what: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) if same_value(g, w) => {}
        _ => panic!("{what}: got {got:?}, expected {want:?}"),
    }
}

/// Panics unless the sum and the mean `got` are the reference's `want` (NULL for `None`),
/// as `assert_float` sees them; they are named "`what` sum" and "`what` avg".
pub fn assert_sum_avg(what: &str, got: (Option<f64>, Option<f64>), want: Option<(f64, f64)>) {
    assert_float(&format!("{what} sum"), got.0, want.map(|w| w.0));
    assert_float(&format!("{what} avg"), got.1, want.map(|w| w.1));
}

/// Checks every row of `out`, in order: the floats `s` and `a` of the row whose `key` column
/// holds `k` are the sum and the mean `want(k)` (`assert_sum_avg`, the row named `what(k)`).
pub fn assert_rows(
    out: &RecordBatch,
    key: &str,
    what: impl Fn(i64) -> String,
    want: impl Fn(i64) -> Option<(f64, f64)>,
) {
    let (sums, avgs) = sums_and_means(out);
    for (row, k) in ints(out, key).into_iter().enumerate() {
        assert_sum_avg(&what(k), (sums[row], avgs[row]), want(k));
    }
}

/// The float columns `s` and `a` of `out`: the sums and the means.
pub fn sums_and_means(out: &RecordBatch) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    (floats(out, "s"), floats(out, "a"))
}

/// The correctly rounded sum and mean of the non-NULL values, with the crate's contract for
/// NaN and infinities; `None` when there is no non-NULL value.
pub fn float_sum_avg(values: &[Option<f64>]) -> Option<(f64, f64)> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    let total = Total::of(&present);
    let mean = total.expected_average()?;
    Some((total.rounded(1).value, mean.value))
}

/// The exact sum and the correctly rounded mean of the non-NULL integers; `None` when there is
/// no non-NULL value.
pub fn int_sum_avg(values: &[Option<i128>]) -> Option<(i128, f64)> {
    let present: Vec<i128> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let total: i128 = present.iter().sum();
    let mean = round_exact(&total.into(), present.len() as u64, 0);
    Some((total, mean))
}
