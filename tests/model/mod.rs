//! A naive model of the `MovingAverage` contract (`src/traits.rs`), written without any of the
//! crate's code or techniques: the window is a `VecDeque` of the last `N` elements, and every
//! read is recomputed from scratch by the exact oracle of `mavg_testkit::oracle` (big-integer
//! sums, correctly rounded means, the contract's rule for non-finite floats).
//!
//! What is here needs `mavg`: the oracle's element types as `mavg::Sample`s, the model of a
//! window, and the comparison of every read of an implementation with it. Shared by every
//! integration test file through `mod model;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt::Debug;

use mavg::Sample;
pub use mavg_testkit::oracle::*;

/// The element types the model knows: every `mavg::Sample`, with the crate's `T::Sum` erased.
pub trait RefSample: Sample + ExactValue {
    /// Erases the crate's `Sum` type.
    fn sum_value(sum: Self::Sum) -> SumValue;
}

macro_rules! ref_sample {
    ($variant:ident: $($t:ty),*) => {$(
        impl RefSample for $t {
            fn sum_value(sum: Self::Sum) -> SumValue {
                SumValue::$variant(sum)
            }
        }
    )*};
}
ref_sample!(Int: i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
ref_sample!(Float: f64, f32);

/// Checks a `sum()` against the exact sum of `elements`.
pub fn check_sum<T: RefSample>(actual: T::Sum, elements: &[T]) -> Result<(), String> {
    let expected = expected_sum(elements);
    if expected.matches(T::sum_value(actual)) {
        Ok(())
    } else {
        Err(format!(
            "{}: sum() = {actual:?}, expected {expected:?} for {} elements {}",
            T::NAME,
            elements.len(),
            abbreviate(elements)
        ))
    }
}

/// Checks an `average()` against the exact mean of `elements`.
pub fn check_average<T: RefSample>(actual: Option<f64>, elements: &[T]) -> Result<(), String> {
    let expected = expected_average(elements);
    if average_matches(expected, actual) {
        Ok(())
    } else {
        Err(format!(
            "{}: average() = {actual:?}, expected {expected:?} for {} elements {}",
            T::NAME,
            elements.len(),
            abbreviate(elements)
        ))
    }
}

pub fn same_slice<T: RefSample>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x.same(y))
}

pub fn same_option<T: RefSample>(a: Option<T>, b: Option<T>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.same(y),
        _ => false,
    }
}

/// A short rendering of a long element list for failure messages.
pub fn abbreviate<T: Debug>(elements: &[T]) -> String {
    if elements.len() <= 24 {
        format!("{elements:?}")
    } else {
        format!(
            "{:?} .. {:?}",
            &elements[..12],
            &elements[elements.len() - 12..]
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------------------------

/// The contract, literally: the last `window` elements pushed since the last clear, oldest
/// first.
#[derive(Clone, Debug)]
pub struct Model<T> {
    window: usize,
    items: VecDeque<T>,
}

impl<T: RefSample> Model<T> {
    pub fn new(window: usize) -> Self {
        assert!(window >= 1);
        Model {
            window,
            items: VecDeque::new(),
        }
    }

    pub fn push(&mut self, value: T) {
        if self.items.len() == self.window {
            self.items.pop_front();
        }
        self.items.push_back(value);
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.items.len() == self.window
    }

    pub fn oldest(&self) -> Option<T> {
        self.items.front().copied()
    }

    pub fn newest(&self) -> Option<T> {
        self.items.back().copied()
    }

    pub fn get(&self, index: usize) -> Option<T> {
        self.items.get(index).copied()
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().copied().collect()
    }

    pub fn expected_sum(&self) -> ExpectedSum {
        expected_sum(&self.to_vec())
    }

    pub fn expected_average(&self) -> Option<Rounded> {
        expected_average(&self.to_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing an implementation with the model.
// ---------------------------------------------------------------------------------------------

/// Compares every read of `m` with `model`: window, len, is_empty, is_full, sum, average,
/// oldest, newest, get (every index, one past the end and `usize::MAX`) and to_vec.
pub fn check_all_reads<T: RefSample, M: mavg::MovingAverage<Item = T>>(
    m: &M,
    model: &Model<T>,
) -> Result<(), String> {
    let items = model.to_vec();
    let fail = |what: &str, actual: String, expected: String| {
        Err(format!(
            "{}: {what} = {actual}, expected {expected}; window {} holds {} elements {}",
            T::NAME,
            model.window(),
            items.len(),
            abbreviate(&items)
        ))
    };
    let sizes = [
        (
            "window()",
            m.window().to_string(),
            model.window().to_string(),
        ),
        ("len()", m.len().to_string(), model.len().to_string()),
        (
            "is_empty()",
            m.is_empty().to_string(),
            model.is_empty().to_string(),
        ),
        (
            "is_full()",
            m.is_full().to_string(),
            model.is_full().to_string(),
        ),
    ];
    for (what, actual, expected) in sizes {
        if actual != expected {
            return fail(what, actual, expected);
        }
    }
    let total = Total::of(&items);
    let sum = total.expected_sum(T::IS_FLOAT);
    let actual_sum = m.sum();
    if !sum.matches(T::sum_value(actual_sum)) {
        return fail("sum()", format!("{actual_sum:?}"), format!("{sum:?}"));
    }
    let average = total.expected_average();
    let actual_average = m.average();
    if !average_matches(average, actual_average) {
        return fail(
            "average()",
            format!("{actual_average:?}"),
            format!("{average:?}"),
        );
    }
    // oldest, newest, then get at every index, one past the end and `usize::MAX`.
    let ends = [
        ("oldest()".to_string(), m.oldest(), model.oldest()),
        ("newest()".to_string(), m.newest(), model.newest()),
    ];
    let indexed = (0..=items.len())
        .chain([usize::MAX])
        .map(|i| (format!("get({i})"), m.get(i), model.get(i)));
    for (what, actual, expected) in ends.into_iter().chain(indexed) {
        if !same_option(actual, expected) {
            return fail(&what, format!("{actual:?}"), format!("{expected:?}"));
        }
    }
    let v = m.to_vec();
    if !same_slice(&v, &items) {
        return fail("to_vec()", abbreviate(&v), abbreviate(&items));
    }
    Ok(())
}
