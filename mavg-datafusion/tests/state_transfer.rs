//! The partial state as a distributed engine moves it: several "workers" aggregate parts of
//! the data, their states travel as Arrow IPC streams with the declared state schema, and a
//! final accumulator merges them. The result must equal the exact reference whatever the
//! split.

mod kit;

use std::io::Cursor;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, RecordBatch, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, Int64Type, Schema, UInt64Type,
};
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDF, EmitTo};
use datafusion::physical_expr::expressions::col;
use kit::float_sum_avg;
use mavg_datafusion::{exact_avg_udaf, exact_sum_udaf};
use mavg_testkit::float::same_value;

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
                same_value(got, want),
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
            same_value(means.value(g), want),
            "group {g}: {} != {want}",
            means.value(g)
        );
    }
    Ok(())
}

/// The state of `udaf` over `values` (in groups `indices`), as `convert_to_state` writes it
/// when partial aggregation is skipped, and as `state` writes it after `update_batch`.
fn grouped_states(
    udaf: &AggregateUDF,
    values: &Float64Array,
    indices: &[usize],
    groups: usize,
    filter: Option<&BooleanArray>,
) -> Result<(Vec<ArrayRef>, Vec<ArrayRef>)> {
    let input = [Arc::new(values.clone()) as ArrayRef];
    let acc = with_args(udaf, |a| udaf.create_groups_accumulator(a))??;
    let converted = acc.convert_to_state(&input, filter)?;
    let mut acc = with_args(udaf, |a| udaf.create_groups_accumulator(a))??;
    acc.update_batch(&input, indices, filter, groups)?;
    Ok((converted, acc.state(EmitTo::All)?))
}

/// Bytes of a state batch per row: the count, the list offsets and validity, and the words.
fn bytes_per_row(columns: &[ArrayRef]) -> f64 {
    let bytes: usize = columns.iter().map(|c| c.get_array_memory_size()).sum();
    bytes as f64 / columns[0].len() as f64
}

/// Doubles within `2^40` of each other: their states are a few words, not a fixed 69.
#[test]
fn states_of_nearby_doubles_are_small() -> Result<()> {
    let udaf = exact_sum_udaf();
    let rows = 10_000;
    let xs: Vec<f64> = (0..rows)
        .map(|i| (i as f64 * 0.618).fract() * [1e-3, 1.0, 1e6][i % 3] + 1.0)
        .collect();
    let values = Float64Array::from(xs);
    let indices: Vec<usize> = (0..rows).map(|i| i % 1000).collect();
    let (converted, state) = grouped_states(&udaf, &values, &indices, 1000, None)?;
    // The words alone: at most 4 per state (a header and three data words).
    for columns in [&converted, &state] {
        let lists = columns[1].as_list::<i32>();
        let longest = (0..lists.len())
            .map(|r| lists.value_length(r))
            .max()
            .unwrap();
        assert!(longest <= 4, "{longest} words");
    }
    let (one, many) = (bytes_per_row(&converted), bytes_per_row(&state));
    println!("state bytes per row: {one:.1} (one value), {many:.1} (ten values)");
    assert!(
        one <= 64.0 && many <= 64.0,
        "{one} and {many} bytes per row"
    );
    Ok(())
}

/// NULL and filtered-out rows give NULL state rows, not states of nothing; such rows merge to
/// nothing, and a group without values evaluates to NULL.
#[test]
fn null_and_filtered_rows_give_null_states() -> Result<()> {
    let udaf = exact_sum_udaf();
    let values = Float64Array::from(vec![Some(1.5), None, Some(2.5), Some(4.0)]);
    // The third filter value is NULL over a set value bit: it must not select the row.
    let filter = BooleanArray::new(
        BooleanBuffer::from(vec![true, true, true, false]),
        Some(NullBuffer::from(vec![true, true, false, true])),
    );
    let (converted, _) = grouped_states(&udaf, &values, &[0, 1, 2, 3], 4, Some(&filter))?;
    let nulls: Vec<bool> = (0..4).map(|r| converted[0].is_null(r)).collect();
    assert_eq!(nulls, [false, true, true, true]);
    assert_eq!(
        (0..4).map(|r| converted[1].is_null(r)).collect::<Vec<_>>(),
        nulls
    );
    let mut last = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
    last.merge_batch(&converted, &[0, 1, 2, 3], 4)?;
    let sums = last.evaluate(EmitTo::All)?;
    let sums = sums.as_primitive::<Float64Type>();
    assert_eq!(
        sums.iter().collect::<Vec<_>>(),
        [Some(1.5), None, None, None]
    );
    Ok(())
}

/// `convert_to_state` and `update_batch` + `state` agree: merged, they give the reference.
/// The state arrays arrive sliced, as a batch split by a repartition would.
#[test]
fn converted_and_sliced_states_merge_exactly() -> Result<()> {
    let xs = values();
    let udaf = exact_avg_udaf();
    let groups = 4;
    let indices: Vec<usize> = (0..xs.len()).map(|i| i % groups).collect();
    let values = Float64Array::from(xs.clone());
    let (converted, _) = grouped_states(&udaf, &values, &indices, groups, None)?;
    let mut last = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
    let mut start = 0;
    for len in [1, 0, 37, 100, usize::MAX] {
        let len = len.min(xs.len() - start);
        let slice: Vec<ArrayRef> = converted.iter().map(|c| c.slice(start, len)).collect();
        last.merge_batch(&slice, &indices[start..start + len], groups)?;
        start += len;
    }
    let means = last.evaluate(EmitTo::All)?;
    let means = means.as_primitive::<Float64Type>();
    for g in 0..groups {
        let members: Vec<Option<f64>> = (g..xs.len()).step_by(groups).map(|i| xs[i]).collect();
        let want = float_sum_avg(&members).unwrap().1;
        assert!(same_value(means.value(g), want), "group {g}");
    }
    Ok(())
}

/// `EmitTo::First(n)` (grouping on sorted input) hands out the first groups and renumbers
/// the rest, including groups whose sums left the fixed-point form.
#[test]
fn emitting_the_first_groups_keeps_the_rest() -> Result<()> {
    let udaf = exact_sum_udaf();
    let mut acc = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
    let values = Float64Array::from(vec![1.0, 1e300, 2.0, f64::NAN, 3.0, 1e-300, 0.25]);
    let input = [Arc::new(values) as ArrayRef];
    acc.update_batch(&input, &[0, 1, 2, 3, 4, 5, 0], None, 6)?;
    let first = acc.evaluate(EmitTo::First(2))?;
    let first = first.as_primitive::<Float64Type>();
    assert_eq!(first.values().to_vec(), [1.25, 1e300]);
    // The remaining groups are now 0..4; group 0 (was 2) takes another value.
    acc.update_batch(&input[..], &[0, 0, 0, 0, 0, 0, 0], None, 4)?;
    let rest = acc.evaluate(EmitTo::All)?;
    let rest = rest.as_primitive::<Float64Type>();
    let want0 = float_sum_avg(&[
        Some(2.0),
        Some(1.0),
        Some(1e300),
        Some(2.0),
        Some(f64::NAN),
        Some(3.0),
        Some(1e-300),
        Some(0.25),
    ])
    .unwrap()
    .0;
    assert!(same_value(rest.value(0), want0));
    assert!(rest.value(1).is_nan());
    assert_eq!(rest.value(2), 3.0);
    assert_eq!(rest.value(3), 1e-300);
    Ok(())
}

/// States that are not what the functions write are errors, never wrong sums.
#[test]
fn malformed_states_are_errors() -> Result<()> {
    let udaf = exact_sum_udaf();
    let values = Float64Array::from(vec![1.0, 2.0]);
    let (good, _) = grouped_states(&udaf, &values, &[0, 1], 2, None)?;
    let counts = good[0].as_primitive::<UInt64Type>();
    let lists = good[1].as_list::<i32>();
    let attempts: Vec<(&str, Vec<ArrayRef>)> = vec![
        (
            "half NULL",
            vec![
                Arc::new(UInt64Array::from(vec![None, Some(1)])),
                good[1].clone(),
            ],
        ),
        (
            "count zero",
            vec![Arc::new(UInt64Array::from(vec![0, 1])), good[1].clone()],
        ),
        (
            "lengths differ",
            vec![Arc::new(counts.slice(0, 1)), good[1].clone()],
        ),
        (
            "a redundant word",
            vec![
                good[0].clone(),
                Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
                    Some(
                        lists
                            .value(0)
                            .as_primitive::<Int64Type>()
                            .iter()
                            .chain([Some(0)])
                            .collect::<Vec<_>>(),
                    ),
                    Some(vec![]),
                ])),
            ],
        ),
    ];
    for (what, columns) in attempts {
        let mut last = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
        let err = last
            .merge_batch(&columns, &[0, 1], 2)
            .expect_err(what)
            .to_string();
        assert!(err.contains("exact aggregate state"), "{what}: {err}");
    }
    Ok(())
}

/// `size()` counts what the groups hold: 40 bytes a group (sum and count), and more for the
/// few that need all the limbs.
#[test]
fn size_accounts_for_every_group() -> Result<()> {
    let udaf = exact_sum_udaf();
    let mut acc = with_args(&udaf, |a| udaf.create_groups_accumulator(a))??;
    let groups = 100_000;
    let values = Float64Array::from((0..groups).map(|i| i as f64).collect::<Vec<_>>());
    let indices: Vec<usize> = (0..groups).collect();
    acc.update_batch(&[Arc::new(values) as ArrayRef], &indices, None, groups)?;
    let size = acc.size();
    assert!((40 * groups..=48 * groups + 4096).contains(&size), "{size}");
    Ok(())
}
