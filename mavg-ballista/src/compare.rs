//! Query results as exact values: doubles by their bits, decimals by their
//! unscaled integer, so that "equal" means bit for bit.

use std::fmt;

use anyhow::{bail, Result};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    /// `f64::to_bits`: tells 0.0 from -0.0 and compares NaN payloads.
    F64(u64),
    /// Unscaled value, precision, scale.
    Decimal(i128, u8, i8),
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cell::Null => f.write_str("NULL"),
            Cell::Int(v) => write!(f, "{v}"),
            Cell::UInt(v) => write!(f, "{v}"),
            Cell::F64(bits) => write!(f, "{:?} (0x{bits:016x})", f64::from_bits(bits)),
            Cell::Decimal(v, _, 0) => write!(f, "{v}"),
            Cell::Decimal(v, _, s) => write!(f, "{v}e-{s}"),
        }
    }
}

/// A result: column names with types, and rows of exact cells.
pub struct Table {
    pub columns: Vec<(String, DataType)>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Table> {
        let Some(first) = batches.first() else {
            return Ok(Table {
                columns: vec![],
                rows: vec![],
            });
        };
        let columns = first
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let mut rows = vec![];
        for batch in batches {
            let base = rows.len();
            rows.extend((0..batch.num_rows()).map(|_| Vec::with_capacity(batch.num_columns())));
            for col in batch.columns() {
                for (i, row) in rows[base..].iter_mut().enumerate() {
                    row.push(cell(col.as_ref(), i)?);
                }
            }
        }
        Ok(Table { columns, rows })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _)| n == name)
    }

    /// Describes the first difference from `other`, or `None` when both are
    /// the same bit for bit (column names and types included).
    pub fn first_difference(&self, other: &Table) -> Option<String> {
        if self.columns != other.columns {
            return Some(format!(
                "columns differ: {:?} vs {:?}",
                self.columns, other.columns
            ));
        }
        if self.rows.len() != other.rows.len() {
            return Some(format!(
                "row counts differ: {} vs {}",
                self.rows.len(),
                other.rows.len()
            ));
        }
        for (r, (a, b)) in self.rows.iter().zip(&other.rows).enumerate() {
            for (c, (x, y)) in a.iter().zip(b).enumerate() {
                if x != y {
                    return Some(format!("row {r}, column {}: {x} vs {y}", self.columns[c].0));
                }
            }
        }
        None
    }

    /// How many cells differ from `other` (same shape assumed).
    pub fn differing_cells(&self, other: &Table) -> usize {
        self.rows
            .iter()
            .zip(&other.rows)
            .map(|(a, b)| a.iter().zip(b).filter(|(x, y)| x != y).count())
            .sum()
    }
}

fn cell(col: &dyn Array, i: usize) -> Result<Cell> {
    if col.is_null(i) {
        return Ok(Cell::Null);
    }
    Ok(match col.data_type() {
        DataType::Int64 => Cell::Int(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt64 => Cell::UInt(col.as_primitive::<UInt64Type>().value(i)),
        DataType::Float64 => Cell::F64(col.as_primitive::<Float64Type>().value(i).to_bits()),
        DataType::Decimal128(p, s) => Cell::Decimal(
            col.as_primitive::<datafusion::arrow::datatypes::Decimal128Type>()
                .value(i),
            *p,
            *s,
        ),
        other => bail!("no exact comparison for column type {other}"),
    })
}
