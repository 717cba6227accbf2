//! What the SQL tests share: a deterministic generator, a query run into one batch, its
//! columns read back, and floats compared with the reference's notion of "the same".

#![allow(dead_code)]

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Decimal128Type, Float64Type, Int64Type};
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::reference::same;

/// A deterministic generator (SplitMix64).
pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

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

/// Panics unless `got` and `want` are both NULL or the same float (`reference::same`).
pub fn assert_float(what: &str, got: Option<f64>, want: Option<f64>) {
    match (got, want) {
        (None, None) => {}
        (Some(g), Some(w)) if same(g, w) => {}
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
