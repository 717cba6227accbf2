//! The test table: several Parquet files (so several partitions) whose DOUBLE
//! values make a float sum depend on the order of the additions.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;

pub const TABLE: &str = "readings";
pub const FILES: usize = 6;
pub const ROWS_PER_FILE: usize = 1_500;
/// Ordinary rows fall into groups `0..GROUPS`.
pub const GROUPS: i64 = 7;
/// A group of three rows in three different files with known exact results:
/// x = 1e16, 1.0, -1e16 and n = i64::MAX three times.
pub const KNOWN_GROUP: i64 = 100;

/// Values whose float sum changes with the order of the additions: huge
/// values that cancel, and small ones that vanish next to them.
const X_VALUES: [f64; 10] = [
    1e16,
    -1e16,
    1.0,
    0.1,
    -0.1,
    0.3,
    1e-7,
    123_456.789,
    -2.5e15,
    9_007_199_254_740_991.0,
];

/// Large BIGINTs: group sums exceed i64, so `exact_sum` returns DECIMAL(38, 0).
const N_VALUES: [i64; 6] = [
    1 << 62,
    -(1 << 61),
    1,
    -7,
    i64::MAX,
    3_000_000_000_000_000_000,
];

/// Writes the table as `FILES` Parquet files into `dir`; returns the row count.
pub fn write_table(dir: &Path) -> Result<usize> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int64, false),
        Field::new("t", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut rows = 0;
    for file in 0..FILES {
        let (mut g, mut t, mut x, mut n) = (vec![], vec![], vec![], vec![]);
        for i in 0..ROWS_PER_FILE {
            // Rows of one group spread over all files, so over all partitions.
            let row = (file * ROWS_PER_FILE + i) as i64;
            g.push(row % GROUPS);
            t.push(row);
            let r = rng.next();
            x.push((!r.is_multiple_of(20)).then(|| X_VALUES[(r >> 8) as usize % X_VALUES.len()]));
            n.push((!r.is_multiple_of(17)).then(|| N_VALUES[(r >> 24) as usize % N_VALUES.len()]));
        }
        if file % 2 == 0 {
            let k = file / 2;
            g.push(KNOWN_GROUP);
            t.push(k as i64);
            x.push(Some([1e16, 1.0, -1e16][k]));
            n.push(Some(i64::MAX));
        }
        rows += g.len();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(g)),
                Arc::new(Int64Array::from(t)),
                Arc::new(Float64Array::from(x)),
                Arc::new(Int64Array::from(n)),
            ],
        )
        .context("building a record batch")?;
        let path = dir.join(format!("part-{file}.parquet"));
        let out = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = ArrowWriter::try_new(out, schema.clone(), None)
            .with_context(|| format!("writing {}", path.display()))?;
        writer.write(&batch)?;
        writer.close()?;
    }
    Ok(rows)
}

/// Deterministic pseudo-random numbers, so every run uses the same table.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
