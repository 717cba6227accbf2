//! The accumulator of many groups at once, for `GROUP BY`.

use std::fmt::Debug;
use std::mem;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Float64Array, ListArray, PrimitiveArray,
};
use datafusion::common::Result;
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use mavg::Sample;

use crate::input::{
    for_each_grouped_value, merge_group_states, selected_rows, state_error, Exact, ExactGroups,
    ExactInput, States, SumColumn, SumValue,
};
use crate::Kind;

/// The sums of many groups, which a [`GroupsOf`] keeps beside the groups' counts of non-NULL
/// values: exact sums of an input type ([`ExactSums`]) or 256-bit sums of decimals.
pub(crate) trait GroupSumsOf: Debug + Send + Sized + 'static {
    /// The Arrow type of the values summed.
    type Input: ArrowPrimitiveType;
    /// The state's `sum` column.
    type Column<'a>: SumColumn<'a>;

    /// Makes room for `groups` groups.
    fn resize(&mut self, groups: usize);
    /// Adds `v` to group `g`.
    fn add(&mut self, g: usize, v: <Self::Input as ArrowPrimitiveType>::Native);
    /// The sums of the groups `emit_to` names, removed.
    fn take(&mut self, emit_to: EmitTo) -> Self;
    /// The results of the groups, whose counts are `counts`.
    fn evaluate(&self, counts: &[u64]) -> Result<ArrayRef>;
    /// The state columns of the groups, whose counts are `counts`.
    fn state(&self, counts: &[u64]) -> Result<Vec<ArrayRef>>;
    /// Merges the sum of a state row into group `g`.
    fn merge<'a>(&mut self, g: usize, sum: <Self::Column<'a> as SumColumn<'a>>::Sum) -> Result<()>;
    /// The state of each row of `values` alone (no values where it is not selected).
    fn convert_to_state(
        &self,
        values: &PrimitiveArray<Self::Input>,
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>>;
    /// The bytes the sums hold on the heap.
    fn heap_size(&self) -> usize;
}

/// Exact `SUM` or `AVG` of every group: the groups' sums and their counts of non-NULL values.
#[derive(Debug)]
pub(crate) struct GroupsOf<S> {
    sums: S,
    counts: Vec<u64>,
}

impl<S: GroupSumsOf> GroupsOf<S> {
    pub(crate) fn with_sums(sums: S) -> Self {
        Self {
            sums,
            counts: Vec::new(),
        }
    }

    fn resize(&mut self, total_num_groups: usize) {
        self.sums.resize(total_num_groups);
        if self.counts.len() < total_num_groups {
            self.counts.resize(total_num_groups, 0);
        }
    }

    /// The sums and counts of the groups `emit_to` names, removed from the accumulator.
    fn take(&mut self, emit_to: EmitTo) -> (S, Vec<u64>) {
        (
            self.sums.take(emit_to),
            emit_to.take_needed(&mut self.counts),
        )
    }
}

impl<S: GroupSumsOf> GroupsAccumulator for GroupsOf<S> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (sums, counts) = (&mut self.sums, &mut self.counts);
        let values = values[0].as_primitive::<S::Input>();
        for_each_grouped_value(values, group_indices, opt_filter, |g, v| {
            sums.add(g, v);
            counts[g] += 1;
        });
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let (sums, counts) = self.take(emit_to);
        sums.evaluate(&counts)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let (sums, counts) = self.take(emit_to);
        sums.state(&counts)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let sums = &mut self.sums;
        merge_group_states::<S::Column<'_>>(values, group_indices, &mut self.counts, |g, s| {
            sums.merge(g, s)
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<S::Input>();
        self.sums.convert_to_state(values, opt_filter)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.sums.heap_size() + self.counts.capacity() * size_of::<u64>()
    }
}

/// Exact `SUM` or `AVG` of every group of an input type: the groups' exact sums side by side
/// (32 bytes each, see [`mavg::GroupSums`]) and their counts of non-NULL values.
pub(crate) type ExactGroupsAccumulator<A> = GroupsOf<ExactSums<A>>;

impl<A: ExactInput> ExactGroupsAccumulator<A> {
    pub(crate) fn new(kind: Kind) -> Self {
        Self::with_sums(ExactSums {
            sums: ExactGroups::<A>::new(),
            kind,
        })
    }
}

/// The exact sums of many groups of an input type, and which aggregate they are for.
#[derive(Debug)]
pub(crate) struct ExactSums<A: ExactInput> {
    sums: ExactGroups<A>,
    kind: Kind,
}

impl<A: ExactInput> GroupSumsOf for ExactSums<A> {
    type Input = A;
    type Column<'a> = &'a ListArray;

    fn resize(&mut self, groups: usize) {
        self.sums.resize(groups);
    }

    #[inline]
    fn add(&mut self, g: usize, v: A::Native) {
        self.sums.add(g, v);
    }

    fn take(&mut self, emit_to: EmitTo) -> Self {
        let sums = match emit_to {
            EmitTo::All => mem::take(&mut self.sums),
            EmitTo::First(n) => self.sums.take_first(n),
        };
        Self {
            sums,
            kind: self.kind,
        }
    }

    fn evaluate(&self, counts: &[u64]) -> Result<ArrayRef> {
        let sums = &self.sums;
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

    fn state(&self, counts: &[u64]) -> Result<Vec<ArrayRef>> {
        let mut states = States::with_capacity(counts.len(), 4);
        for (g, &n) in counts.iter().enumerate() {
            states.push(n, |words| self.sums.write_state(g, words));
        }
        states.finish()
    }

    fn merge<'a>(
        &mut self,
        g: usize,
        words: <Self::Column<'a> as SumColumn<'a>>::Sum,
    ) -> Result<()> {
        self.sums.merge_state(g, words).map_err(state_error)
    }

    fn convert_to_state(
        &self,
        values: &PrimitiveArray<A>,
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
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

    fn heap_size(&self) -> usize {
        self.sums.heap_size()
    }
}
