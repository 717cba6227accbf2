//! `ExactSum` and `GroupSums` against the exact oracle (`tests/model`, `mavg_testkit::oracle`):
//! adds and removes in any order, merges of any partition, and states that travel through their
//! words.

mod model;

use mavg::{ExactSum, GroupSums, Sample, StateError};
use model::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op<T> {
    Add(T),
    /// Removes the held value at this index (modulo the number held).
    Remove(usize),
}

fn ops<T: Arbitrary + Clone + std::fmt::Debug + 'static>() -> impl Strategy<Value = Vec<Op<T>>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<T>().prop_map(Op::Add),
            2 => any::<usize>().prop_map(Op::Remove),
        ],
        0..300,
    )
}

/// Runs the operations on one sum, checking every read against the values held.
fn run<T: RefSample>(ops: &[Op<T>]) -> Result<Vec<T>, TestCaseError> {
    let mut sum = ExactSum::<T>::new();
    let mut held = Vec::new();
    for op in ops {
        match *op {
            Op::Add(x) => {
                sum.add(x);
                held.push(x);
            }
            Op::Remove(i) if !held.is_empty() => {
                let x = held.swap_remove(i % held.len());
                sum.remove(x);
            }
            Op::Remove(_) => {}
        }
        check_sum(sum.sum(), &held).map_err(TestCaseError::fail)?;
        check_average(sum.mean(held.len() as u64), &held).map_err(TestCaseError::fail)?;
    }
    Ok(held)
}

/// Splits the values into `parts` sums, merges them through their states in reverse order,
/// and checks the merged sum and that its state is the state of one sum of everything.
fn check_partitions<T: RefSample>(values: &[T], parts: usize) -> Result<(), TestCaseError> {
    let mut whole = ExactSum::<T>::new();
    values.iter().for_each(|&x| whole.add(x));
    let mut partial = vec![ExactSum::<T>::new(); parts];
    for (i, &x) in values.iter().enumerate() {
        partial[i % parts].add(x);
    }
    let mut merged = ExactSum::<T>::new();
    let mut words = Vec::new();
    for p in partial.iter().rev() {
        words.clear();
        p.write_state(&mut words);
        prop_assert!(words.len() <= ExactSum::<T>::MAX_STATE_LEN);
        merged
            .merge_state(&words)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    check_sum(merged.sum(), values).map_err(TestCaseError::fail)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    merged.write_state(&mut a);
    whole.write_state(&mut b);
    prop_assert_eq!(a, b);
    let mut direct = ExactSum::<T>::new();
    partial.iter().for_each(|p| direct.merge(p));
    check_sum(direct.sum(), values).map_err(TestCaseError::fail)?;
    Ok(())
}

/// Sums the values in `groups` groups of a `GroupSums` (value `i` in group `i % groups`) and
/// checks each group's sum, mean and state against an `ExactSum` of the same values; then
/// merges the states of both into a second `GroupSums` in reverse, and splits it with
/// `take_first`.
fn check_groups<T: RefSample>(
    values: &[T],
    groups: usize,
    first: usize,
) -> Result<(), TestCaseError> {
    let mut sums = GroupSums::<T>::new();
    sums.resize(groups);
    let mut exact = vec![ExactSum::<T>::new(); groups];
    let mut members = vec![Vec::new(); groups];
    for (i, &x) in values.iter().enumerate() {
        sums.add(i % groups, x);
        exact[i % groups].add(x);
        members[i % groups].push(x);
    }
    let mut merged = GroupSums::<T>::new();
    merged.resize(groups);
    let (mut a, mut b, mut one) = (Vec::new(), Vec::new(), Vec::new());
    for g in (0..groups).rev() {
        check_sum(sums.sum(g), &members[g]).map_err(TestCaseError::fail)?;
        let n = members[g].len() as u64;
        prop_assert_eq!(
            sums.mean(g, n).map(f64::to_bits),
            exact[g].mean(n).map(f64::to_bits)
        );
        a.clear();
        b.clear();
        sums.write_state(g, &mut a);
        exact[g].write_state(&mut b);
        prop_assert_eq!(&a, &b);
        // Every value's own state, merged one by one, then the group's state again.
        for &x in &members[g] {
            one.clear();
            ExactSum::write_state_of(x, &mut one);
            let mut single = ExactSum::<T>::new();
            single.add(x);
            b.clear();
            single.write_state(&mut b);
            prop_assert_eq!(&one, &b);
            merged
                .merge_state(g, &one)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        merged
            .merge_state(g, &a)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let doubled: Vec<T> = members[g].iter().chain(&members[g]).copied().collect();
        check_sum(merged.sum(g), &doubled).map_err(TestCaseError::fail)?;
    }
    let rest_sums: Vec<_> = (first.min(groups)..groups).map(|g| merged.sum(g)).collect();
    let first_sums: Vec<_> = (0..first.min(groups)).map(|g| merged.sum(g)).collect();
    let taken = merged.take_first(first);
    prop_assert_eq!(taken.len(), first.min(groups));
    prop_assert_eq!(
        (0..taken.len()).map(|g| taken.sum(g)).collect::<Vec<_>>(),
        first_sums
    );
    prop_assert_eq!(
        (0..merged.len()).map(|g| merged.sum(g)).collect::<Vec<_>>(),
        rest_sums
    );
    Ok(())
}

macro_rules! exact_sum_tests {
    ($($name:ident: $t:ty),*) => {$(
        mod $name {
            use super::*;

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 64 }))]

                #[test]
                fn adds_and_removes_match_the_reference(ops in ops::<$t>()) {
                    run::<$t>(&ops)?;
                }

                #[test]
                fn every_partition_merges_to_the_same_state(
                    ops in ops::<$t>(),
                    parts in 1usize..9,
                ) {
                    let held = run::<$t>(&ops)?;
                    check_partitions::<$t>(&held, parts)?;
                }

                #[test]
                fn groups_match_exact_sums(
                    ops in ops::<$t>(),
                    groups in 1usize..6,
                    first in 0usize..7,
                ) {
                    let held = run::<$t>(&ops)?;
                    check_groups::<$t>(&held, groups, first)?;
                }
            }
        }
    )*};
}

exact_sum_tests!(f64s: f64, f32s: f32, i64s: i64, u64s: u64, i32s: i32, u8s: u8);

#[test]
fn a_retracted_huge_value_leaves_the_exact_remainder() {
    let mut s = ExactSum::<f64>::new();
    s.add(2f64.powi(54));
    s.add(1.0);
    s.remove(2f64.powi(54));
    assert_eq!(s.sum(), 1.0);
    assert_eq!(s.mean(1), Some(1.0));
}

#[test]
fn non_finite_values_poison_until_removed() {
    let mut s = ExactSum::<f32>::new();
    s.add(1.5);
    s.add(f32::INFINITY);
    assert_eq!(s.sum(), f64::INFINITY);
    s.add(f32::NEG_INFINITY);
    assert!(s.sum().is_nan());
    s.remove(f32::INFINITY);
    s.remove(f32::NEG_INFINITY);
    assert_eq!(s.sum(), 1.5);
    s.add(f32::NAN);
    assert!(s.mean(2).unwrap().is_nan());
    s.remove(f32::NAN);
    assert_eq!(s.mean(1), Some(1.5));
}

#[test]
fn state_lengths_and_errors() {
    assert_eq!(ExactSum::<f64>::MAX_STATE_LEN, 38);
    assert_eq!(ExactSum::<f32>::MAX_STATE_LEN, 10);
    assert_eq!(ExactSum::<u16>::MAX_STATE_LEN, 2);
    let err = ExactSum::<f64>::from_state(&[0; 39]).unwrap_err();
    assert_eq!(err, StateError::TooLong { max: 38, found: 39 });
    assert!(err.to_string().contains("38"));
    // A top word past the largest sum the limbs hold, and one that only extends the sign.
    for words in [vec![65, i64::MAX], vec![0, 1, 0], vec![1 << 16]] {
        assert_eq!(
            ExactSum::<f64>::from_state(&words).unwrap_err(),
            StateError::NotCanonical,
            "{words:?}"
        );
        let mut groups = GroupSums::<f64>::new();
        groups.resize(1);
        groups.add(0, 1.0);
        assert!(groups.merge_state(0, &words).is_err());
        assert_eq!(groups.sum(0), 1.0);
    }
}

/// States of doubles within `2^40` of each other take at most four words.
#[test]
fn states_of_nearby_doubles_are_short() {
    let mut s = ExactSum::<f64>::new();
    let mut x = 1.0f64;
    for i in 0..100_000u32 {
        x = (x * 1.618_033_988_749_895) % 1024.0 + f64::from(i % 7) * 1e-9;
        s.add(x * [1.0, 2f64.powi(-30), 0.001][(i % 3) as usize]);
    }
    let mut words = Vec::new();
    s.write_state(&mut words);
    assert!(words.len() <= 4, "{words:?}");
}

/// Words from real states with one word changed: a group takes them exactly when an
/// `ExactSum` does, with the same result.
#[test]
fn groups_and_sums_agree_on_every_state() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..20_000 {
        let mut s = ExactSum::<f64>::new();
        for _ in 0..(next() % 4) {
            let bits = next();
            s.add(f64::from_bits(bits >> (next() % 3)));
        }
        let mut words = Vec::new();
        s.write_state(&mut words);
        if !words.is_empty() && next() % 2 == 0 {
            let i = (next() % words.len() as u64) as usize;
            words[i] ^= 1 << (next() % 64);
        }
        let from_state = ExactSum::<f64>::from_state(&words);
        let mut groups = GroupSums::<f64>::new();
        groups.resize(1);
        if next() % 2 == 0 {
            groups.add(0, 0.75);
        }
        let before = groups.sum(0);
        let merged = groups.merge_state(0, &words);
        assert_eq!(merged.is_ok(), from_state.is_ok(), "{words:?}");
        match from_state {
            Ok(other) => {
                let mut expected = ExactSum::<f64>::new();
                expected.add(before);
                expected.merge(&other);
                assert_eq!(
                    groups.sum(0).to_bits(),
                    expected.sum().to_bits(),
                    "{words:?}"
                );
            }
            Err(_) => assert_eq!(groups.sum(0).to_bits(), before.to_bits()),
        }
    }
}

#[test]
fn integer_sums_beyond_i64() {
    let mut s = ExactSum::<u64>::new();
    for _ in 0..4 {
        s.add(u64::MAX);
    }
    assert_eq!(s.sum(), 4 * i128::from(u64::MAX));
    assert_eq!(s.mean(4), Some(u64::MAX as f64));
    fn sum_type<T: Sample<Sum = i128>>(_: &ExactSum<T>) {}
    sum_type(&s);
}
