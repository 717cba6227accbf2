//! `ExactSum` against the reference: adds and removes in any order, merges of any partition,
//! and states that travel through their words.

mod reference;

use mavg::{ExactSum, Sample, StateError};
use proptest::prelude::*;
use reference::*;

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
        prop_assert_eq!(words.len(), ExactSum::<T>::STATE_LEN);
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
    assert_eq!(ExactSum::<f64>::STATE_LEN, 69);
    assert_eq!(ExactSum::<f32>::STATE_LEN, 13);
    assert_eq!(ExactSum::<u16>::STATE_LEN, 2);
    let err = ExactSum::<f64>::from_state(&[0; 13]).unwrap_err();
    assert_eq!(
        err,
        StateError::Length {
            expected: 69,
            found: 13
        }
    );
    assert!(err.to_string().contains("69"));
    let mut words = vec![0; 69];
    words[65] = i64::MAX;
    assert_eq!(
        ExactSum::<f64>::from_state(&words).unwrap_err(),
        StateError::NotCanonical
    );
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
