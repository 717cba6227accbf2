//! `exact_sum(DISTINCT x)` and `exact_avg(DISTINCT x)` where DataFusion cannot rewrite them
//! into a grouping (next to other aggregates): the distinct values themselves, summed once at
//! the end.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray, PrimitiveArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, ToByteSlice};
use datafusion::common::{exec_datafusion_err, Result, ScalarValue};
use datafusion::logical_expr::Accumulator;
use mavg::Sample;

use crate::input::{for_each_value, Exact, ExactInput, SumValue};
use crate::Kind;

/// The item field of the state's value lists, of the input type.
pub(crate) fn values_field(input: &DataType) -> FieldRef {
    Arc::new(Field::new_list_field(input.clone(), false))
}

/// The bits of a value: distinct bits are distinct values, as in DataFusion's own `DISTINCT`
/// (so `0.0` and `-0.0`, or NaNs with different payloads, count twice; their sum is the same).
fn key<T: ToByteSlice>(v: T) -> u64 {
    let mut bytes = [0u8; 8];
    let b = v.to_byte_slice();
    bytes[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(bytes)
}

/// The distinct non-NULL values of one group, in the order first seen.
#[derive(Debug)]
pub(crate) struct DistinctAccumulator<A: ExactInput> {
    seen: HashSet<u64>,
    values: Vec<A::Native>,
    kind: Kind,
}

impl<A: ExactInput> DistinctAccumulator<A> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            seen: HashSet::new(),
            values: Vec::new(),
            kind,
        }
    }

    fn insert(&mut self, v: A::Native) {
        if self.seen.insert(key(v)) {
            self.values.push(v);
        }
    }
}

impl<A: ExactInput> Accumulator for DistinctAccumulator<A> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_value(values[0].as_primitive::<A>(), |v| self.insert(v));
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut sum = Exact::<A>::new();
        self.values.iter().for_each(|&v| sum.add(v));
        let n = self.values.len() as u64;
        match self.kind {
            Kind::Sum => <A::Native as Sample>::Sum::scalar((n > 0).then(|| sum.sum())),
            Kind::Avg => Ok(ScalarValue::Float64(sum.mean(n))),
        }
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = PrimitiveArray::<A>::from_iter_values(self.values.iter().copied());
        let list = ListArray::try_new(
            values_field(&A::DATA_TYPE),
            OffsetBuffer::from_lengths([values.len()]),
            Arc::new(values),
            None,
        )?;
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list_opt::<i32>().ok_or_else(|| {
            exec_datafusion_err!("exact DISTINCT state is {}", states[0].data_type())
        })?;
        for row in lists.iter().flatten() {
            let values = row.as_primitive_opt::<A>().ok_or_else(|| {
                exec_datafusion_err!("exact DISTINCT state holds {}", row.data_type())
            })?;
            for_each_value(values, |v| self.insert(v));
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.seen.capacity() * (size_of::<u64>() + 1)
            + self.values.capacity() * size_of::<A::Native>()
    }
}
