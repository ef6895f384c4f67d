//! Helpers shared by the benchmarks.

use denorm_types::{ColumnSchema, ScalarType, TableSchema};

/// `n` scaled by `DENORM_BENCH_SCALE` (default 1.0), at least 1.
pub fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

/// A table whose first column is the primary key.
pub fn table(name: &str, columns: &[(&str, ScalarType)]) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: columns.iter().map(|(n, t)| ColumnSchema { name: (*n).into(), ty: *t, nullable: true }).collect(),
        primary_key: vec![0],
        unique_keys: vec![],
    }
}
