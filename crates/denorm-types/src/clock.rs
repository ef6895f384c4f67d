//! The engine's clock as a relation: views refreshed on a schedule
//! (`WITH (refresh = '1m')`) may read the current time (`now()`,
//! `current_date`, SQLite's `'now'`). The planner reads it from this one-row
//! input, joined like an uncorrelated scalar subquery; the engine feeds it
//! the wall-clock time once at the view's snapshot and again (the old row
//! retracted, the new one inserted) just before each refresh, so only what
//! reads the clock is recomputed, incrementally.
//!
//! Its one row: the time in milliseconds since 1970-01-01 UTC
//! (`epoch_ms`, an integer: SQLite's `'now'` has millisecond precision)
//! and the same instant as a PostgreSQL `timestamptz` (`at`).

use crate::{ColumnSchema, Datum, Row, ScalarType, TableSchema};

/// The clock's input name: a table of this name in the source is never
/// read by a scheduled view that reads the clock.
pub const TABLE: &str = "denorm$clock";

/// The column holding milliseconds since the Unix epoch (UTC).
pub const EPOCH_MS: usize = 0;
/// The column holding the same instant as a `timestamptz`.
pub const AT: usize = 1;
/// The number of columns.
pub const ARITY: usize = 2;

/// The clock's schema, for the catalog of a dataflow that reads it.
pub fn schema() -> TableSchema {
    let column = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: false };
    TableSchema {
        name: TABLE.into(),
        columns: vec![column("epoch_ms", ScalarType::Int), column("at", ScalarType::TimestampTz)],
        primary_key: Vec::new(),
        unique_keys: Vec::new(),
    }
}

/// The clock's row at `epoch_ms`.
pub fn row(epoch_ms: i64) -> Row {
    Row::pack([Datum::Int(epoch_ms), Datum::TimestampTz(epoch_ms.saturating_mul(1000))])
}

/// The wall-clock time in milliseconds since the Unix epoch.
pub fn wall_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_holds_one_instant_twice() {
        let row = row(1_700_000_000_123);
        assert_eq!(row.get(EPOCH_MS), Datum::Int(1_700_000_000_123));
        assert_eq!(row.get(AT), Datum::TimestampTz(1_700_000_000_123_000));
        assert_eq!(schema().columns.len(), ARITY);
    }
}
