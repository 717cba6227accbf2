//! The partial state as a distributed engine moves it: several "workers" aggregate parts of
//! the data, their states travel as Arrow IPC streams with the declared state schema, and a
//! final accumulator merges them. The result must equal the exact reference whatever the
//! split.

mod reference;

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDF, EmitTo};
use datafusion::physical_expr::expressions::col;
use mavg_datafusion::{exact_avg_udaf, exact_sum_udaf};
use reference::{float_sum_avg, same};

/// Calls `f` with the accumulator arguments of `udaf(x)` over a nullable `Float64` column.
fn with_args<R>(udaf: &AggregateUDF, f: impl FnOnce(AccumulatorArgs) -> R) -> Result<R> {
    let schema = Schema::new(vec![Field::new("x", DataType::Float64, true)]);
    let exprs = [col("x", &schema)?];
    let fields: [FieldRef; 1] = [Arc::new(schema.field(0).clone())];
    let args = AccumulatorArgs {
        return_field: Arc::new(Field::new(udaf.name(), DataType::Float64, true)),
        schema: &schema,
        ignore_nulls: false,
        order_bys: &[],
        is_reversed: false,
        name: udaf.name(),
        is_distinct: false,
        exprs: &exprs,
        expr_fields: &fields,
    };
    Ok(f(args))
}

/// The state schema that `udaf(x)` declares to the planner.
fn state_schema(udaf: &AggregateUDF) -> Result<Arc<Schema>> {
    let input: [FieldRef; 1] = [Arc::new(Field::new("x", DataType::Float64, true))];
    let fields = udaf.state_fields(StateFieldsArgs {
        name: udaf.name(),
        input_fields: &input,
        return_field: Arc::new(Field::new(udaf.name(), DataType::Float64, true)),
        ordering_fields: &[],
        is_distinct: false,
    })?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Sends state columns through an Arrow IPC stream, as a shuffle between processes would.
fn through_ipc(schema: Arc<Schema>, columns: Vec<ArrayRef>) -> Result<Vec<ArrayRef>> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let mut bytes = Vec::new();
    let mut writer = StreamWriter::try_new(&mut bytes, &schema)?;
    writer.write(&batch)?;
    writer.finish()?;
    drop(writer);
    let mut reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let received = reader.next().expect("one batch")?;
    Ok(received.columns().to_vec())
}

fn values() -> Vec<Option<f64>> {
    let mut v = vec![
        Some(2f64.powi(60)),
        Some(1.0),
        None,
        Some(-2f64.powi(60)),
        Some(0.1),
    ];
    for i in 0..500 {
        let x = (i as f64 * 0.37).sin() * 10f64.powi(i % 37 - 18);
        v.push(if i % 11 == 0 { None } else { Some(x) });
    }
    v.push(Some(1e300));
    v.push(Some(-1e300));
    v
}

#[test]
fn per_group_states_merge_exactly_after_ipc() -> Result<()> {
    let xs = values();
    let want = float_sum_avg(&xs).unwrap();
    for (udaf, want) in [(exact_sum_udaf(), want.0), (exact_avg_udaf(), want.1)] {
        let schema = state_schema(&udaf)?;
        for workers in [1, 3, 7] {
            let chunk = xs.len().div_ceil(workers);
            let mut shipped = Vec::new();
            for part in xs.chunks(chunk) {
                let mut acc = with_args(&udaf, |a| udaf.accumulator(a))??;
                acc.update_batch(&[Arc::new(Float64Array::from(part.to_vec())) as ArrayRef])?;
                shipped.push(acc.state()?);
            }
            // One state row per worker, column by column.
            let columns = (0..2)
                .map(|c| ScalarValue::iter_to_array(shipped.iter().map(|s| s[c].clone())))
                .collect::<Result<Vec<_>>>()?;
            let received = through_ipc(schema.clone(), columns)?;
            let mut last = with_args(&udaf, |a| udaf.accumulator(a))??;
            last.merge_batch(&received)?;
            let ScalarValue::Float64(Some(got)) = last.evaluate()? else {
                panic!("{}: no value", udaf.name());
            };
            assert!(
                same(got, want),
                "{} over {workers} workers: {got} != {want}",
                udaf.name()
            );
        }
    }
    Ok(())
}

#[test]
fn grouped_states_merge_exactly_after_ipc() -> Result<()> {
    let xs = values();
    let groups = 5;
    let group_of = |i: usize| (i * 7) % groups;
    let udaf = exact_avg_udaf();
    let schema = state_schema(&udaf)?;
    let mut last = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
    // Three workers, each with every group; worker w takes the rows i with i % 3 == w.
    for w in 0..3 {
        let rows: Vec<usize> = (0..xs.len()).filter(|i| i % 3 == w).collect();
        let values = Float64Array::from(rows.iter().map(|&i| xs[i]).collect::<Vec<_>>());
        let indices: Vec<usize> = rows.iter().map(|&i| group_of(i)).collect();
        let mut acc = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
        acc.update_batch(&[Arc::new(values) as ArrayRef], &indices, None, groups)?;
        let received = through_ipc(schema.clone(), acc.state(EmitTo::All)?)?;
        last.merge_batch(&received, &(0..groups).collect::<Vec<_>>(), groups)?;
    }
    let means = last.evaluate(EmitTo::All)?;
    let means = means.as_primitive::<Float64Type>();
    for g in 0..groups {
        let members: Vec<Option<f64>> = (0..xs.len())
            .filter(|&i| group_of(i) == g)
            .map(|i| xs[i])
            .collect();
        let want = float_sum_avg(&members).unwrap().1;
        assert!(
            same(means.value(g), want),
            "group {g}: {} != {want}",
            means.value(g)
        );
    }
    Ok(())
}
