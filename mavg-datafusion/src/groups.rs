//! The accumulator of many groups at once, for `GROUP BY`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use mavg::Sample;

use crate::input::{for_each_state, state_arrays, state_error, Exact, ExactInput, SumValue};
use crate::Kind;

/// The exact sum of one group's non-NULL values and their count, side by side so that an
/// update touches one place.
#[derive(Debug)]
struct Group<A: ExactInput> {
    sum: Exact<A>,
    count: u64,
}

/// Exact `SUM` or `AVG` of every group, indexed by group.
#[derive(Debug)]
pub(crate) struct ExactGroupsAccumulator<A: ExactInput> {
    groups: Vec<Group<A>>,
    kind: Kind,
}

impl<A: ExactInput> ExactGroupsAccumulator<A> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            groups: Vec::new(),
            kind,
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        if self.groups.len() < total_num_groups {
            self.groups.resize_with(total_num_groups, || Group {
                sum: Exact::<A>::new(),
                count: 0,
            });
        }
    }
}

/// Whether row `i` passes the optional `FILTER (WHERE ...)` of the aggregate.
#[inline]
fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
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
        if values.null_count() == 0 && opt_filter.is_none() {
            for (&g, &v) in group_indices.iter().zip(raw.iter()) {
                let group = &mut self.groups[g];
                group.sum.add(v);
                group.count += 1;
            }
        } else {
            for (i, (&g, &v)) in group_indices.iter().zip(raw.iter()).enumerate() {
                if values.is_valid(i) && selected(opt_filter, i) {
                    let group = &mut self.groups[g];
                    group.sum.add(v);
                    group.count += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        let groups = groups.iter();
        match self.kind {
            Kind::Sum => <A::Native as Sample>::Sum::array(
                groups.map(|g| (g.count > 0).then(|| g.sum.sum())).collect(),
            ),
            Kind::Avg => Ok(Arc::new(
                groups
                    .map(|g| g.sum.mean(g.count))
                    .collect::<Float64Array>(),
            )),
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        let mut words = Vec::with_capacity(groups.len() * Exact::<A>::STATE_LEN);
        for g in &groups {
            g.sum.write_state(&mut words);
        }
        let counts = groups.iter().map(|g| g.count).collect();
        state_arrays(counts, words, Exact::<A>::STATE_LEN)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let groups = &mut self.groups;
        for_each_state(values, Exact::<A>::STATE_LEN, |row, n, words| {
            let group = &mut groups[group_indices[row]];
            group.sum.merge_state(words).map_err(state_error)?;
            group.count += n;
            Ok(())
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<A>();
        let mut empty = Vec::with_capacity(Exact::<A>::STATE_LEN);
        Exact::<A>::new().write_state(&mut empty);
        let mut words = Vec::with_capacity(values.len() * Exact::<A>::STATE_LEN);
        let mut counts = Vec::with_capacity(values.len());
        for (i, &v) in values.values().iter().enumerate() {
            if values.is_valid(i) && selected(opt_filter, i) {
                let mut one = Exact::<A>::new();
                one.add(v);
                one.write_state(&mut words);
                counts.push(1);
            } else {
                words.extend_from_slice(&empty);
                counts.push(0);
            }
        }
        state_arrays(counts, words, Exact::<A>::STATE_LEN)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<Group<A>>()
    }
}
