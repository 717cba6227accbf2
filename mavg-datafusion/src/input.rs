//! The input types the exact aggregates accept, what their sums become in Arrow, and the
//! Arrow form of the exact state.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Decimal128Array, Float64Array,
    Int64Array, ListArray, PrimitiveArray, UInt64Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{exec_datafusion_err, exec_err, internal_err, Result, ScalarValue};
use mavg::{ExactSum, GroupSums, Sample};

/// Precision of the `DECIMAL(38, 0)` that integer sums are returned as.
pub(crate) const DECIMAL_PRECISION: u8 = 38;

/// The largest magnitude `DECIMAL(38, 0)` holds: `10^38 - 1`.
const DECIMAL_MAX: u128 = 10u128.pow(38) - 1;

/// What the exact sum of one input type is (`i128` for integers, `f64` for floats) and how it
/// becomes an Arrow value.
pub(crate) trait SumValue: Copy + Debug + Send + Sync + 'static {
    /// The SQL type of `exact_sum` over this input.
    fn sum_type() -> DataType;
    /// One sum as a scalar; `None` is SQL NULL.
    fn scalar(sum: Option<Self>) -> Result<ScalarValue>;
    /// Many sums as an array; `None` is SQL NULL.
    fn array(sums: Vec<Option<Self>>) -> Result<ArrayRef>;
}

/// The exact integer sum as a `DECIMAL(38, 0)`, or an error if it needs more than 38 digits.
fn decimal(sum: i128) -> Result<i128> {
    if sum.unsigned_abs() > DECIMAL_MAX {
        return exec_err!("exact_sum: the exact sum {sum} does not fit DECIMAL(38, 0)");
    }
    Ok(sum)
}

impl SumValue for i128 {
    fn sum_type() -> DataType {
        DataType::Decimal128(DECIMAL_PRECISION, 0)
    }

    fn scalar(sum: Option<Self>) -> Result<ScalarValue> {
        Ok(ScalarValue::Decimal128(
            sum.map(decimal).transpose()?,
            DECIMAL_PRECISION,
            0,
        ))
    }

    fn array(sums: Vec<Option<Self>>) -> Result<ArrayRef> {
        let sums = sums
            .into_iter()
            .map(|s| s.map(decimal).transpose())
            .collect::<Result<Decimal128Array>>()?;
        Ok(Arc::new(
            sums.with_precision_and_scale(DECIMAL_PRECISION, 0)?,
        ))
    }
}

impl SumValue for f64 {
    fn sum_type() -> DataType {
        DataType::Float64
    }

    fn scalar(sum: Option<Self>) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(sum))
    }

    fn array(sums: Vec<Option<Self>>) -> Result<ArrayRef> {
        Ok(Arc::new(Float64Array::from(sums)))
    }
}

/// An Arrow primitive type whose values the exact accumulator takes: every integer type up to
/// 64 bits, `Float32` and `Float64`.
pub(crate) trait ExactInput:
    ArrowPrimitiveType<Native: Sample<Sum: SumValue>> + Debug + Send + Sync
{
}

impl<A> ExactInput for A where
    A: ArrowPrimitiveType<Native: Sample<Sum: SumValue>> + Debug + Send + Sync
{
}

/// The exact accumulator of an input type.
pub(crate) type Exact<A> = ExactSum<<A as ArrowPrimitiveType>::Native>;

/// The exact accumulator of many groups of an input type.
pub(crate) type ExactGroups<A> = GroupSums<<A as ArrowPrimitiveType>::Native>;

/// Runs `$body` with `$A` naming the Arrow type of `$dt`, one of the accepted input types.
macro_rules! with_input_type {
    ($dt:expr, $A:ident => $body:expr) => {
        $crate::input::with_input_type!(@match $dt, $A, $body;
            Int8 Int8Type, Int16 Int16Type, Int32 Int32Type, Int64 Int64Type,
            UInt8 UInt8Type, UInt16 UInt16Type, UInt32 UInt32Type, UInt64 UInt64Type,
            Float32 Float32Type, Float64 Float64Type)
    };
    (@match $dt:expr, $A:ident, $body:expr; $($variant:ident $arrow:ident),*) => {{
        use datafusion::arrow::datatypes as dt;
        match $dt {
            $(
                dt::DataType::$variant => {
                    type $A = dt::$arrow;
                    $body
                }
            )*
            other => {
                return datafusion::common::internal_err!(
                    "exact aggregate called with input type {other} after coercion"
                );
            }
        }
    }};
}
pub(crate) use with_input_type;

/// The type a SQL argument is cast to before it is summed, or `None` if it is not accepted.
///
/// Integer and float types are taken as they are; `Float16` widens exactly to `Float32`;
/// `DECIMAL` of up to 38 digits is summed at its scale (32- and 64-bit decimals widen to 128
/// bits); an untyped `NULL` becomes `Int64`; a dictionary is summed by its values.
pub(crate) fn coerced_input(data_type: &DataType) -> Option<DataType> {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float32
        | DataType::Float64 => Some(data_type.clone()),
        DataType::Float16 => Some(DataType::Float32),
        DataType::Decimal128(_, _) => Some(data_type.clone()),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => Some(DataType::Decimal128(*p, *s)),
        DataType::Null => Some(DataType::Int64),
        DataType::Dictionary(_, values) => coerced_input(values),
        _ => None,
    }
}

/// The sum type of an accepted input type.
pub(crate) fn sum_type(input: &DataType) -> Result<DataType> {
    Ok(with_input_type!(input, A => <<A as ArrowPrimitiveType>::Native as Sample>::Sum::sum_type()))
}

/// The item field of the state's word lists.
fn word_field() -> FieldRef {
    Arc::new(Field::new_list_field(DataType::Int64, false))
}

/// The Arrow type of the state's `sum` field: a list of the words of
/// [`ExactSum::write_state`] (a few for most sums).
pub(crate) fn words_type() -> DataType {
    DataType::List(word_field())
}

/// The state columns `count` and `sum` of many rows, being written. A row without values is
/// NULL in both.
pub(crate) struct States {
    counts: Vec<u64>,
    valid: NullBufferBuilder,
    words: Vec<i64>,
    offsets: Vec<i32>,
}

impl States {
    /// Room for `rows` rows of about `words` words each.
    pub(crate) fn with_capacity(rows: usize, words: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        States {
            counts: Vec::with_capacity(rows),
            valid: NullBufferBuilder::new(rows),
            words: Vec::with_capacity(rows * words),
            offsets,
        }
    }

    /// Appends the state of `count` values whose sum `write` writes; NULL if `count` is 0.
    #[inline]
    pub(crate) fn push(&mut self, count: u64, write: impl FnOnce(&mut Vec<i64>)) {
        if count == 0 {
            self.counts.push(0);
            self.valid.append_null();
        } else {
            self.counts.push(count);
            self.valid.append_non_null();
            write(&mut self.words);
        }
        // Checked in `finish`: every offset is at most the final length.
        self.offsets.push(self.words.len() as i32);
    }

    /// The two state columns.
    pub(crate) fn finish(mut self) -> Result<Vec<ArrayRef>> {
        if i32::try_from(self.words.len()).is_err() {
            return exec_err!(
                "exact aggregate: {} state words do not fit one Arrow list array; use smaller \
                 batches",
                self.words.len()
            );
        }
        let nulls = self.valid.finish();
        let lists = ListArray::try_new(
            word_field(),
            OffsetBuffer::new(ScalarBuffer::from(self.offsets)),
            Arc::new(Int64Array::from(self.words)),
            nulls.clone(),
        )?;
        Ok(vec![
            Arc::new(UInt64Array::new(ScalarBuffer::from(self.counts), nulls)),
            Arc::new(lists),
        ])
    }

    /// The state of one row, as scalars.
    pub(crate) fn finish_scalars(self) -> Result<Vec<ScalarValue>> {
        self.finish()?
            .iter()
            .map(|column| ScalarValue::try_from_array(column, 0))
            .collect()
    }
}

/// The `sum` column of a state batch, as [`for_each_state`] reads it: the word lists of
/// [`States`] (`&ListArray`) or the 256-bit sums of decimals (`&Decimal256Array`).
pub(crate) trait SumColumn<'a>: Array + Copy + Sized {
    /// The name of the state in errors.
    const STATE: &'static str;
    /// What a row that is NULL in one column only is, in errors.
    const HALF_NULL: &'static str;
    /// What a row that counts no values is, in errors.
    const NO_VALUES: &'static str;
    /// The sum of one row.
    type Sum;
    /// What reads the rows' sums.
    type Rows;

    /// The column as this type, or `None` if it is of another type.
    fn typed(sums: &'a ArrayRef) -> Option<Self>;
    /// The reader of the rows' sums (once the column is known to be as long as the counts).
    fn rows(self) -> Result<Self::Rows>;
    /// The sum of the non-NULL row `row`.
    fn sum(rows: &Self::Rows, row: usize) -> Result<Self::Sum>;
}

impl<'a> SumColumn<'a> for &'a ListArray {
    const STATE: &'static str = "exact aggregate state";
    const HALF_NULL: &'static str = "is half NULL";
    const NO_VALUES: &'static str = "counts no values";
    type Sum = &'a [i64];
    /// The offsets of this (possibly sliced) array, into the whole of the words.
    type Rows = (&'a [i32], &'a [i64]);

    fn typed(sums: &'a ArrayRef) -> Option<Self> {
        sums.as_list_opt::<i32>()
    }

    fn rows(self) -> Result<Self::Rows> {
        let words = self
            .values()
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| {
                exec_datafusion_err!(
                    "exact aggregate state: words are {}",
                    self.values().data_type()
                )
            })?
            .values();
        Ok((self.value_offsets(), words))
    }

    #[inline]
    fn sum(&(offsets, words): &Self::Rows, row: usize) -> Result<Self::Sum> {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        match words.get(start..end) {
            Some(words) => Ok(words),
            None => exec_err!("exact aggregate state: row {row} lies outside its words"),
        }
    }
}

/// Calls `merge(row, count, sum)` for each non-NULL row of the state columns `count` and
/// `sum` (as [`States`] or the decimal accumulators write them); rejects columns of other
/// types or lengths, rows where only one of the two is NULL, and a count of zero.
pub(crate) fn for_each_state<'a, C: SumColumn<'a>>(
    states: &'a [ArrayRef],
    mut merge: impl FnMut(usize, u64, C::Sum) -> Result<()>,
) -> Result<()> {
    let state = C::STATE;
    let [counts, sums] = states else {
        return internal_err!("{state} has {} columns, not 2", states.len());
    };
    let counts = counts
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| exec_datafusion_err!("{state}: count is {}", counts.data_type()))?;
    let sums = C::typed(sums)
        .ok_or_else(|| exec_datafusion_err!("{state}: sum is {}", sums.data_type()))?;
    if counts.len() != sums.len() {
        return exec_err!("{state}: {} counts for {} sums", counts.len(), sums.len());
    }
    let rows = sums.rows()?;
    for row in 0..counts.len() {
        match (counts.is_null(row), sums.is_null(row)) {
            (true, true) => continue,
            (false, false) => {}
            _ => return exec_err!("{state}: row {row} {}", C::HALF_NULL),
        }
        let n = counts.value(row);
        if n == 0 {
            return exec_err!("{state}: row {row} {}", C::NO_VALUES);
        }
        merge(row, n, C::sum(&rows, row)?)?;
    }
    Ok(())
}

/// Calls `f` on every non-NULL value of `values`, in order; returns how many there were.
#[inline]
pub(crate) fn for_each_value<A: ArrowPrimitiveType>(
    values: &PrimitiveArray<A>,
    mut f: impl FnMut(A::Native),
) -> u64 {
    let raw = values.values();
    match values.nulls().filter(|nulls| nulls.null_count() > 0) {
        None => {
            raw.iter().for_each(|&v| f(v));
            raw.len() as u64
        }
        Some(nulls) => {
            let mut n = 0;
            for i in nulls.valid_indices() {
                f(raw[i]);
                n += 1;
            }
            n
        }
    }
}

/// The rows of `values` to sum: non-NULL and, with a `FILTER (WHERE ...)`, selected by it
/// (a NULL filter value does not select). `None` if that is every row.
pub(crate) fn selected_rows(
    values: &dyn Array,
    filter: Option<&BooleanArray>,
) -> Option<BooleanBuffer> {
    let valid = values
        .logical_nulls()
        .filter(|n| n.null_count() > 0)
        .map(|n| n.into_inner());
    let chosen = filter.map(|f| match f.nulls() {
        Some(nulls) if nulls.null_count() > 0 => f.values() & nulls.inner(),
        _ => f.values().clone(),
    });
    match (valid, chosen) {
        (None, None) => None,
        (Some(v), None) => Some(v),
        (None, Some(c)) => Some(c),
        (Some(v), Some(c)) => Some(&v & &c),
    }
}

/// Calls `add(group, value)` for each row of `values` to sum (see [`selected_rows`]), in
/// order, `group_indices` giving the rows' groups.
#[inline]
pub(crate) fn for_each_grouped_value<A: ArrowPrimitiveType>(
    values: &PrimitiveArray<A>,
    group_indices: &[usize],
    opt_filter: Option<&BooleanArray>,
    mut add: impl FnMut(usize, A::Native),
) {
    let raw = values.values();
    match selected_rows(values, opt_filter) {
        None => {
            for (&g, &v) in group_indices.iter().zip(raw.iter()) {
                add(g, v);
            }
        }
        Some(rows) => {
            for i in rows.set_indices() {
                add(group_indices[i], raw[i]);
            }
        }
    }
}

/// Merges each non-NULL row of a state batch (see [`for_each_state`]) into its group, whose
/// index `group_indices` gives: `merge(group, sum)`, then the row's count added to `counts`.
pub(crate) fn merge_group_states<'a, C: SumColumn<'a>>(
    states: &'a [ArrayRef],
    group_indices: &[usize],
    counts: &mut [u64],
    mut merge: impl FnMut(usize, C::Sum) -> Result<()>,
) -> Result<()> {
    for_each_state::<C>(states, |row, n, sum| {
        let g = group_indices[row];
        merge(g, sum)?;
        counts[g] += n;
        Ok(())
    })
}

/// Turns a state decoding error of the core crate into an execution error.
pub(crate) fn state_error(e: mavg::StateError) -> datafusion::error::DataFusionError {
    exec_datafusion_err!("exact aggregate state: {e}")
}
