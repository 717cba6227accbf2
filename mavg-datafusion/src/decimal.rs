//! `exact_sum` and `exact_avg` of `DECIMAL(p, s)`: the exact sum of the scaled integers in a
//! 256-bit integer, returned at the input's scale; the mean rounded once, half to even, at four
//! more digits of scale (as DataFusion's `avg` of decimals adds four).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Decimal128Array, Decimal256Array, UInt64Array,
};
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Decimal256Type};
use datafusion::common::{exec_datafusion_err, exec_err, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo};

use crate::groups::{GroupSumsOf, GroupsOf};
use crate::input::{for_each_state, selected_rows, SumColumn};
use crate::Kind;

/// The largest precision of `DECIMAL`, and of the results.
const PRECISION: u8 = 38;

/// The result type of `exact_sum` or `exact_avg` over `DECIMAL(_, scale)`.
pub(crate) fn result_type(kind: Kind, scale: i8) -> DataType {
    DataType::Decimal128(PRECISION, result_scale(kind, scale))
}

fn result_scale(kind: Kind, scale: i8) -> i8 {
    match kind {
        Kind::Sum => scale,
        Kind::Avg => scale.saturating_add(4).min(PRECISION as i8),
    }
}

/// The state's `sum` field type: the 256-bit sum at the input's scale.
pub(crate) fn sum_state_type(scale: i8) -> DataType {
    DataType::Decimal256(76, scale)
}

/// The result of one group: NULL without values, otherwise the sum, or the mean rounded half
/// to even; an error if it needs more than 38 digits.
fn result(kind: Kind, scale: i8, sum: i256, count: u64) -> Result<Option<i128>> {
    if count == 0 {
        return Ok(None);
    }
    let value = match kind {
        Kind::Sum => sum,
        Kind::Avg => {
            let up = (result_scale(kind, scale) - scale) as u32;
            let ten = i256::from_i128(10).wrapping_pow(up);
            let num = sum
                .checked_mul(ten)
                .ok_or_else(|| exec_datafusion_err!("exact_avg: the sum is too large to scale"))?;
            let n = i256::from_i128(i128::from(count));
            let (q, r) = (num.wrapping_div(n), num.wrapping_rem(n));
            let twice = r.wrapping_abs().wrapping_mul(i256::from_i128(2));
            let odd = q.as_i128() & 1 == 1;
            if twice > n || (twice == n && odd) {
                q.wrapping_add(num.signum())
            } else {
                q
            }
        }
    };
    let max = i256::from_i128(10i128.pow(PRECISION as u32) - 1);
    match value.to_i128() {
        Some(v) if value.wrapping_abs() <= max => Ok(Some(v)),
        _ => exec_err!(
            "exact_{}: the exact result {value} does not fit DECIMAL(38, {})",
            if kind == Kind::Sum { "sum" } else { "avg" },
            result_scale(kind, scale)
        ),
    }
}

impl<'a> SumColumn<'a> for &'a Decimal256Array {
    const STATE: &'static str = "exact decimal state";
    const HALF_NULL: &'static str = "is malformed";
    const NO_VALUES: &'static str = "is malformed";
    type Sum = i256;
    type Rows = Self;

    fn typed(sums: &'a ArrayRef) -> Option<Self> {
        sums.as_primitive_opt::<Decimal256Type>()
    }

    fn rows(self) -> Result<Self> {
        Ok(self)
    }

    #[inline]
    fn sum(rows: &Self, row: usize) -> Result<i256> {
        Ok(rows.value(row))
    }
}

/// The state columns of many groups; NULL for a group without values.
fn states(scale: i8, sums: &[i256], counts: &[u64]) -> Result<Vec<ArrayRef>> {
    let sums: Decimal256Array = sums
        .iter()
        .zip(counts)
        .map(|(&s, &n)| (n > 0).then_some(s))
        .collect();
    let counts: UInt64Array = counts.iter().map(|&n| (n > 0).then_some(n)).collect();
    Ok(vec![
        Arc::new(counts),
        Arc::new(sums.with_precision_and_scale(76, scale)?),
    ])
}

/// Exact `SUM` or `AVG` of one group or sliding frame of decimals.
#[derive(Debug)]
pub(crate) struct DecimalAccumulator {
    sum: i256,
    count: u64,
    kind: Kind,
    scale: i8,
}

impl DecimalAccumulator {
    pub(crate) fn new(kind: Kind, scale: i8) -> Self {
        Self {
            sum: i256::ZERO,
            count: 0,
            kind,
            scale,
        }
    }

    /// Adds (or with `retract` removes) the non-NULL values; returns how many there were.
    fn apply(&mut self, values: &ArrayRef, retract: bool) -> u64 {
        let values = values.as_primitive::<Decimal128Type>();
        let mut n = 0;
        for v in values.iter().flatten() {
            // 2^64 values of an i128 sum below 2^192, far inside 2^255.
            let v = i256::from_i128(v);
            self.sum = if retract {
                self.sum.wrapping_sub(v)
            } else {
                self.sum.wrapping_add(v)
            };
            n += 1;
        }
        n
    }
}

impl Accumulator for DecimalAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.count += self.apply(&values[0], false);
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let removed = self.apply(&values[0], true);
        self.count = self.count.checked_sub(removed).ok_or_else(|| {
            exec_datafusion_err!("exact aggregate: retracted more values than were added")
        })?;
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let v = result(self.kind, self.scale, self.sum, self.count)?;
        Ok(ScalarValue::Decimal128(
            v,
            PRECISION,
            result_scale(self.kind, self.scale),
        ))
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        states(self.scale, &[self.sum], &[self.count])?
            .iter()
            .map(|c| ScalarValue::try_from_array(c, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_state::<&Decimal256Array>(states, |_, n, s| {
            self.sum = self.sum.wrapping_add(s);
            self.count += n;
            Ok(())
        })
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}

/// Exact `SUM` or `AVG` of every group of decimals.
pub(crate) type DecimalGroupsAccumulator = GroupsOf<DecimalSums>;

impl DecimalGroupsAccumulator {
    pub(crate) fn new(kind: Kind, scale: i8) -> Self {
        Self::with_sums(DecimalSums {
            sums: Vec::new(),
            kind,
            scale,
        })
    }
}

/// The 256-bit sums of many groups of decimals, and which aggregate they are for.
#[derive(Debug)]
pub(crate) struct DecimalSums {
    sums: Vec<i256>,
    kind: Kind,
    scale: i8,
}

impl GroupSumsOf for DecimalSums {
    type Input = Decimal128Type;
    type Column<'a> = &'a Decimal256Array;

    fn resize(&mut self, groups: usize) {
        if self.sums.len() < groups {
            self.sums.resize(groups, i256::ZERO);
        }
    }

    #[inline]
    fn add(&mut self, g: usize, v: i128) {
        self.sums[g] = self.sums[g].wrapping_add(i256::from_i128(v));
    }

    fn take(&mut self, emit_to: EmitTo) -> Self {
        Self {
            sums: emit_to.take_needed(&mut self.sums),
            kind: self.kind,
            scale: self.scale,
        }
    }

    fn evaluate(&self, counts: &[u64]) -> Result<ArrayRef> {
        let values = self
            .sums
            .iter()
            .zip(counts)
            .map(|(&s, &n)| result(self.kind, self.scale, s, n))
            .collect::<Result<Decimal128Array>>()?;
        Ok(Arc::new(values.with_precision_and_scale(
            PRECISION,
            result_scale(self.kind, self.scale),
        )?))
    }

    fn state(&self, counts: &[u64]) -> Result<Vec<ArrayRef>> {
        states(self.scale, &self.sums, counts)
    }

    fn merge<'a>(&mut self, g: usize, s: <Self::Column<'a> as SumColumn<'a>>::Sum) -> Result<()> {
        self.sums[g] = self.sums[g].wrapping_add(s);
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &Decimal128Array,
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = selected_rows(values, opt_filter);
        let counts: Vec<u64> = (0..values.len())
            .map(|i| u64::from(rows.as_ref().is_none_or(|r| r.value(i))))
            .collect();
        let sums: Vec<i256> = values
            .values()
            .iter()
            .map(|&v| i256::from_i128(v))
            .collect();
        states(self.scale, &sums, &counts)
    }

    fn heap_size(&self) -> usize {
        self.sums.capacity() * size_of::<i256>()
    }
}
