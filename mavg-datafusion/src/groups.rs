//! The accumulator of many groups at once, for `GROUP BY`.

use std::mem;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array, ListArray};
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use mavg::Sample;

use crate::input::{
    for_each_state, selected_rows, state_error, Exact, ExactGroups, ExactInput, States, SumValue,
};
use crate::Kind;

/// Exact `SUM` or `AVG` of every group: the groups' exact sums side by side (32 bytes each,
/// see [`mavg::GroupSums`]) and their counts of non-NULL values.
#[derive(Debug)]
pub(crate) struct ExactGroupsAccumulator<A: ExactInput> {
    sums: ExactGroups<A>,
    counts: Vec<u64>,
    kind: Kind,
}

impl<A: ExactInput> ExactGroupsAccumulator<A> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            sums: ExactGroups::<A>::new(),
            counts: Vec::new(),
            kind,
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        self.sums.resize(total_num_groups);
        if self.counts.len() < total_num_groups {
            self.counts.resize(total_num_groups, 0);
        }
    }

    /// The sums and counts of the groups `emit_to` names, removed from the accumulator.
    fn take(&mut self, emit_to: EmitTo) -> (ExactGroups<A>, Vec<u64>) {
        let sums = match emit_to {
            EmitTo::All => mem::take(&mut self.sums),
            EmitTo::First(n) => self.sums.take_first(n),
        };
        (sums, emit_to.take_needed(&mut self.counts))
    }
}

impl<A: ExactInput> GroupsAccumulator for ExactGroupsAccumulator<A> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let values = values[0].as_primitive::<A>();
        let raw = values.values();
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        match selected_rows(values, opt_filter) {
            None => {
                for (&g, &v) in group_indices.iter().zip(raw.iter()) {
                    sums.add(g, v);
                    counts[g] += 1;
                }
            }
            Some(rows) => {
                for i in rows.set_indices() {
                    let g = group_indices[i];
                    sums.add(g, raw[i]);
                    counts[g] += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, counts) = self.take(emit_to);
        let groups = counts.iter().enumerate();
        match self.kind {
            Kind::Sum => <A::Native as Sample>::Sum::array(
                groups.map(|(g, &n)| (n > 0).then(|| sums.sum(g))).collect(),
            ),
            Kind::Avg => Ok(Arc::new(
                groups
                    .map(|(g, &n)| sums.mean(g, n))
                    .collect::<Float64Array>(),
            )),
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, counts) = self.take(emit_to);
        let mut states = States::with_capacity(counts.len(), 4);
        for (g, &n) in counts.iter().enumerate() {
            states.push(n, |words| sums.write_state(g, words));
        }
        states.finish()
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        for_each_state::<&ListArray>(values, |row, n, words| {
            let g = group_indices[row];
            sums.merge_state(g, words).map_err(state_error)?;
            counts[g] += n;
            Ok(())
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<A>();
        let raw = values.values();
        let mut states = States::with_capacity(values.len(), 3);
        match selected_rows(values, opt_filter) {
            None => {
                for &v in raw.iter() {
                    states.push(1, |words| Exact::<A>::write_state_of(v, words));
                }
            }
            Some(rows) => {
                for (i, &v) in raw.iter().enumerate() {
                    let n = u64::from(rows.value(i));
                    states.push(n, |words| Exact::<A>::write_state_of(v, words));
                }
            }
        }
        states.finish()
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.sums.heap_size() + self.counts.capacity() * size_of::<u64>()
    }
}
