//! The accumulator of one group or one window frame.

use datafusion::arrow::array::{ArrayRef, AsArray, ListArray};
use datafusion::common::{internal_err, Result, ScalarValue};
use datafusion::logical_expr::Accumulator;
use mavg::Sample;

use crate::input::{
    for_each_state, for_each_value, state_error, Exact, ExactInput, States, SumValue,
};
use crate::Kind;

/// Exact `SUM` or `AVG` of one group, or of one sliding window frame: the exact sum of the
/// non-NULL values and their count.
#[derive(Debug)]
pub(crate) struct ExactAccumulator<A: ExactInput> {
    sum: Exact<A>,
    count: u64,
    kind: Kind,
}

impl<A: ExactInput> ExactAccumulator<A> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            sum: Exact::<A>::new(),
            count: 0,
            kind,
        }
    }
}

impl<A: ExactInput> Accumulator for ExactAccumulator<A> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let sum = &mut self.sum;
        self.count += for_each_value(values[0].as_primitive::<A>(), |v| sum.add(v));
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let sum = &mut self.sum;
        let removed = for_each_value(values[0].as_primitive::<A>(), |v| sum.remove(v));
        match self.count.checked_sub(removed) {
            Some(count) => self.count = count,
            None => return internal_err!("exact aggregate: retracted more values than were added"),
        }
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        true
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.kind {
            Kind::Sum => {
                <A::Native as Sample>::Sum::scalar((self.count > 0).then(|| self.sum.sum()))
            }
            Kind::Avg => Ok(ScalarValue::Float64(self.sum.mean(self.count))),
        }
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = States::with_capacity(1, 4);
        state.push(self.count, |words| self.sum.write_state(words));
        state.finish_scalars()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (sum, count) = (&mut self.sum, &mut self.count);
        for_each_state::<&ListArray>(states, |_, n, words| {
            sum.merge_state(words).map_err(state_error)?;
            *count += n;
            Ok(())
        })
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }
}
