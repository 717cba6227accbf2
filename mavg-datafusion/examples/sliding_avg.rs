//! A 4-row moving average in SQL, with DataFusion's built-in `avg` next to `exact_avg`.
//!
//! The table is a sensor reading around 20 with one spike of `1e17` (a glitch). A running
//! float sum that adds the incoming row and subtracts the outgoing one rounds every reading
//! added while the spike is in the frame to a multiple of 16, and that error stays in the sum
//! after the spike has left. `exact_avg` retracts the spike exactly.
//!
//! Run with `cargo run -p mavg-datafusion --example sliding_avg`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

const ROWS: i64 = 10_000;

#[tokio::main]
async fn main() -> Result<()> {
    // Readings 20.00, 20.25, ..., 21.75 repeating, and a spike at t = 5.
    let t: Vec<i64> = (0..ROWS).collect();
    let x: Vec<f64> = t
        .iter()
        .map(|&t| {
            if t == 5 {
                1e17
            } else {
                20.0 + (t % 8) as f64 * 0.25
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("x", DataType::Float64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(t)),
            Arc::new(Float64Array::from(x)),
        ],
    )?;

    let ctx = SessionContext::new();
    mavg_datafusion::register(&ctx);
    ctx.register_table(
        "readings",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
    )?;

    let df = ctx
        .sql(
            "SELECT t, x, avg(x) OVER w AS builtin_avg, exact_avg(x) OVER w AS exact_avg \
             FROM readings \
             WINDOW w AS (ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) \
             ORDER BY t",
        )
        .await?;
    let batches = df.collect().await?;
    let shown: Vec<RecordBatch> = batches
        .iter()
        .scan(0, |seen, b| {
            let keep = b.slice(0, b.num_rows().min(16usize.saturating_sub(*seen)));
            *seen += keep.num_rows();
            Some(keep)
        })
        .filter(|b| b.num_rows() > 0)
        .collect();
    println!("The first 16 rows (frame: 3 PRECEDING AND CURRENT ROW):");
    println!("{}", pretty_format_batches(&shown)?);

    // Every row after the spike has left the frame (t >= 9): how far is each average from the
    // true mean of its frame? The frame values are multiples of 1/4 below 32, so the true mean
    // is exactly representable and `exact_avg` must equal it.
    let (mut builtin_wrong, mut exact_wrong, mut worst) = (0, 0, 0f64);
    for b in &batches {
        let t = b.column(0).as_primitive::<Int64Type>();
        let builtin = b.column(2).as_primitive::<Float64Type>();
        let exact = b.column(3).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let t = t.value(i);
            if t < 9 {
                continue;
            }
            let truth = (t - 3..=t)
                .map(|s| 20.0 + (s % 8) as f64 * 0.25)
                .sum::<f64>()
                / 4.0;
            if builtin.is_null(i) || builtin.value(i) != truth {
                builtin_wrong += 1;
                worst = worst.max((builtin.value(i) - truth).abs());
            }
            if exact.is_null(i) || exact.value(i) != truth {
                exact_wrong += 1;
            }
        }
    }
    let after = ROWS - 9;
    println!("Rows after the spike left the frame: {after}");
    println!("  built-in avg wrong on {builtin_wrong} rows (largest error {worst})");
    println!("  exact_avg    wrong on {exact_wrong} rows");
    assert_eq!(exact_wrong, 0, "exact_avg must be exact");
    Ok(())
}
