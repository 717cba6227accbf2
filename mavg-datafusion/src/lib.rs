//! Exact `SUM` and `AVG` for [Apache DataFusion](https://datafusion.apache.org): the aggregate
//! functions `exact_sum(x)` and `exact_avg(x)`, built on [`mavg::ExactSum`].
//!
//! * Integer sums are exact; float sums and every mean are the exact value rounded once to
//!   `f64` (round to nearest, ties to even). The result does not depend on the order of the
//!   rows, on how the table is split into partitions, or on which rows left a window frame
//!   before.
//! * Sliding window frames (`OVER (... ROWS BETWEEN k PRECEDING AND CURRENT ROW)`) cost O(1)
//!   per row: a value leaving the frame is retracted exactly, so a large value that passed
//!   through the frame leaves no trace behind it.
//! * `GROUP BY` runs in two phases; the partial state is the exact sum itself (a few `Int64`
//!   words, see [`mavg::ExactSum::write_state`]) and a count, so partial results merge
//!   exactly. Groups take 40 bytes each ([`mavg::GroupSums`] and a count).
//!
//! | function | argument | result |
//! | --- | --- | --- |
//! | `exact_sum(x)` | `TINYINT` .. `BIGINT`, unsigned integers | `DECIMAL(38, 0)`, exact |
//! | `exact_sum(x)` | `REAL`, `DOUBLE` (and `Float16`) | `DOUBLE`, the correctly rounded exact sum |
//! | `exact_sum(x)` | `DECIMAL(p, s)`, `p <= 38` | `DECIMAL(38, s)`, exact |
//! | `exact_avg(x)` | integers, floats | `DOUBLE`, the correctly rounded exact mean |
//! | `exact_avg(x)` | `DECIMAL(p, s)`, `p <= 38` | `DECIMAL(38, s + 4)`, the exact mean rounded half to even |
//!
//! NULLs are ignored, and a group or frame without a non-NULL value gives NULL. A NaN among
//! the values, or both infinities, gives NaN; infinities of one sign give that infinity; once
//! such values have left a sliding frame, the result is exact again. A decimal result beyond
//! 38 digits is an execution error. Other argument types (strings, dates, ...) are rejected
//! when the query is planned.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> datafusion::error::Result<()> {
//! use datafusion::prelude::SessionContext;
//!
//! let ctx = SessionContext::new();
//! mavg_datafusion::register(&ctx);
//! let batches = ctx
//!     .sql("SELECT exact_sum(x) AS s, exact_avg(x) AS a \
//!           FROM (VALUES (1e16), (1.0), (-1e16)) AS t(x)")
//!     .await?
//!     .collect()
//!     .await?;
//! let row = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
//! assert!(row.contains("| 1.0 | 0.3333333333333333 |"), "{row}");
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod accumulator;
mod decimal;
mod distinct;
mod groups;
mod input;

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{not_impl_err, plan_err, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::aggregate_doc_sections::DOC_SECTION_GENERAL;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{format_state_name, AggregateOrderSensitivity};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, Expr, GroupsAccumulator,
    ReversedUDAF, SetMonotonicity, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use accumulator::ExactAccumulator;
use decimal::{DecimalAccumulator, DecimalGroupsAccumulator};
use distinct::{values_field, DistinctAccumulator};
use groups::ExactGroupsAccumulator;
use input::{coerced_input, sum_type, with_input_type, words_type};

/// Which aggregate an [`ExactAggregate`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Sum,
    Avg,
}

/// The aggregate function `exact_sum` or `exact_avg`: an [`AggregateUDFImpl`] to wrap in an
/// [`AggregateUDF`] (see [`exact_sum_udaf`] and [`exact_avg_udaf`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExactAggregate {
    kind: Kind,
    signature: Signature,
}

impl ExactAggregate {
    /// `exact_sum(x)`: the exact sum of the non-NULL values.
    pub fn sum() -> Self {
        Self::new(Kind::Sum)
    }

    /// `exact_avg(x)`: the correctly rounded mean of the non-NULL values.
    pub fn avg() -> Self {
        Self::new(Kind::Avg)
    }

    fn new(kind: Kind) -> Self {
        Self {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    /// `DISTINCT` over decimals where DataFusion cannot plan it as a grouping.
    fn no_distinct_decimal<T>(&self) -> Result<T> {
        not_impl_err!(
            "{}(DISTINCT ...) of DECIMAL next to other DISTINCT aggregates is not supported; \
             use a subquery with SELECT DISTINCT",
            self.name()
        )
    }

    fn input_type(&self, fields: &[FieldRef]) -> Result<DataType> {
        match fields {
            [field] => Ok(field.data_type().clone()),
            _ => plan_err!("{} takes one argument, got {}", self.name(), fields.len()),
        }
    }
}

impl AggregateUDFImpl for ExactAggregate {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Sum => "exact_sum",
            Kind::Avg => "exact_avg",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!(
                "{} takes one argument, got {}",
                self.name(),
                arg_types.len()
            );
        };
        match coerced_input(arg) {
            Some(input) => Ok(vec![input]),
            None => plan_err!(
                "{} does not support argument type {arg}: it takes integers (up to 64 bits), \
                 Float32/Float64 and DECIMAL up to 38 digits; CAST the argument to DOUBLE, BIGINT \
                 or DECIMAL",
                self.name()
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [input] = arg_types else {
            return plan_err!(
                "{} takes one argument, got {}",
                self.name(),
                arg_types.len()
            );
        };
        match (self.kind, input) {
            (kind, DataType::Decimal128(_, scale)) => Ok(decimal::result_type(kind, *scale)),
            (Kind::Sum, _) => sum_type(input),
            (Kind::Avg, _) => Ok(DataType::Float64),
        }
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let input = self.input_type(args.expr_fields)?;
        let kind = self.kind;
        if let DataType::Decimal128(_, scale) = input {
            if args.is_distinct {
                return self.no_distinct_decimal();
            }
            return Ok(Box::new(DecimalAccumulator::new(kind, scale)));
        }
        if args.is_distinct {
            return Ok(
                with_input_type!(&input, A => Box::new(DistinctAccumulator::<A>::new(kind))),
            );
        }
        Ok(with_input_type!(&input, A => Box::new(ExactAccumulator::<A>::new(kind))))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let input = self.input_type(args.input_fields)?;
        let sum_state = match input {
            DataType::Decimal128(_, _) if args.is_distinct => return self.no_distinct_decimal(),
            DataType::Decimal128(_, scale) => decimal::sum_state_type(scale),
            _ => words_type(),
        };
        if args.is_distinct {
            return Ok(vec![Field::new(
                format_state_name(args.name, "distinct values"),
                DataType::List(values_field(&input)),
                true,
            )
            .into()]);
        }
        Ok(vec![
            Field::new(
                format_state_name(args.name, "count"),
                DataType::UInt64,
                true,
            )
            .into(),
            Field::new(format_state_name(args.name, "sum"), sum_state, true).into(),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let input = self.input_type(args.expr_fields)?;
        let kind = self.kind;
        if let DataType::Decimal128(_, scale) = input {
            return Ok(Box::new(DecimalGroupsAccumulator::new(kind, scale)));
        }
        Ok(with_input_type!(&input, A => Box::new(ExactGroupsAccumulator::<A>::new(kind))))
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::Identical
    }

    fn set_monotonicity(&self, data_type: &DataType) -> SetMonotonicity {
        // Adding a row adds a value that is at least zero only for unsigned sums; a mean can
        // move either way.
        match (self.kind, data_type) {
            (
                Kind::Sum,
                DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64,
            ) => SetMonotonicity::Increasing,
            _ => SetMonotonicity::NotMonotonic,
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(match self.kind {
            Kind::Sum => &SUM_DOC,
            Kind::Avg => &AVG_DOC,
        })
    }
}

/// The documentation of an aggregate of one `expression`: what it returns, how it is
/// called, an example in SQL and the two functions related to it.
fn documentation(
    description: &str,
    syntax: &str,
    example: &str,
    related: [&str; 2],
) -> Documentation {
    let [first, second] = related;
    Documentation::builder(DOC_SECTION_GENERAL, description, syntax)
        .with_sql_example(example)
        .with_argument(
            "expression",
            "An integer (up to 64 bits), floating-point or DECIMAL column or expression.",
        )
        .with_related_udf(first)
        .with_related_udf(second)
        .build()
}

/// What `SHOW FUNCTIONS` and generated docs say of `exact_sum`.
static SUM_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    documentation(
        "Returns the exact sum of the non-NULL values: for integers an exact DECIMAL(38, 0), for \
         DECIMAL(p, s) an exact DECIMAL(38, s), for floats the exact sum rounded once to DOUBLE, whatever the order of the rows, the \
         partitioning, or the values that left a sliding window frame. NaN, or infinities of \
         both signs, give NaN; infinities of one sign give that infinity.",
        "exact_sum(expression)",
        "```sql\n> SELECT exact_sum(x) FROM (VALUES (1e16), (1.0), (-1e16)) AS t(x);\n\
         -- 1.0, where a running DOUBLE sum in this order gives 0.0\n```",
        ["exact_avg", "sum"],
    )
});

/// What `SHOW FUNCTIONS` and generated docs say of `exact_avg`.
static AVG_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    documentation(
        "Returns the mean of the non-NULL values: the exact sum divided by the count and rounded \
         once, as a DOUBLE (for DECIMAL(p, s), as a DECIMAL(38, s + 4), half to even), whatever the order of the rows, the partitioning, or the values that \
         left a sliding window frame.",
        "exact_avg(expression)",
        "```sql\n> SELECT exact_avg(x) FROM (VALUES (1e16), (1.0), (-1e16)) AS t(x);\n\
         -- 0.3333333333333333, where a running DOUBLE sum in this order gives 0.0\n```",
        ["exact_sum", "avg"],
    )
});

/// The aggregate function `exact_sum(x)`, ready to register with
/// [`SessionContext::register_udaf`] or a `SessionStateBuilder`.
pub fn exact_sum_udaf() -> AggregateUDF {
    AggregateUDF::from(ExactAggregate::sum())
}

/// The aggregate function `exact_avg(x)`, ready to register with
/// [`SessionContext::register_udaf`] or a `SessionStateBuilder`.
pub fn exact_avg_udaf() -> AggregateUDF {
    AggregateUDF::from(ExactAggregate::avg())
}

/// Registers `exact_sum` and `exact_avg` with a session, for SQL and the DataFrame API.
pub fn register(ctx: &SessionContext) {
    ctx.register_udaf(exact_sum_udaf());
    ctx.register_udaf(exact_avg_udaf());
}

/// Registers `exact_sum` and `exact_avg` with any function registry: a `SessionState` being
/// built, for example the one each executor of a distributed engine creates, which must know
/// the functions by name to run the plan fragments it receives.
pub fn register_in(registry: &mut dyn FunctionRegistry) -> Result<()> {
    registry.register_udaf(Arc::new(exact_sum_udaf()))?;
    registry.register_udaf(Arc::new(exact_avg_udaf()))?;
    Ok(())
}

/// The expression `exact_sum(expr)`, for the DataFrame API.
pub fn exact_sum(expr: Expr) -> Expr {
    exact_sum_udaf().call(vec![expr])
}

/// The expression `exact_avg(expr)`, for the DataFrame API.
pub fn exact_avg(expr: Expr) -> Expr {
    exact_avg_udaf().call(vec![expr])
}
