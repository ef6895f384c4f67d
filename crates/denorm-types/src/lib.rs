//! denorm's vocabulary, shared by every layer: [`Datum`] values, packed
//! [`Row`]s, [`Diff`] weights, source [`Position`]s and table schemas.
//!
//! A collection is a multiset of rows; a change to it is a batch of
//! `(row, diff)` pairs where a positive diff inserts that many copies and a
//! negative one retracts them (a Z-set).
//!
//! ```
//! use denorm_types::{consolidate, Datum, Row};
//! let r = Row::pack([Datum::Int(1), Datum::text("ada")]);
//! let mut changes = vec![(r.clone(), 1), (r.clone(), -1), (r.clone(), 2)];
//! consolidate(&mut changes);
//! assert_eq!(changes, vec![(r, 2)]);
//! ```

mod datum;
mod row;
mod schema;

pub use datum::{Datum, Value};
pub use row::{DatumIter, Row, RowPacker};
pub use schema::{Catalog, ColumnSchema, Dialect, ScalarType, TableSchema};

use std::fmt;

/// The weight of a row in a change batch: copies inserted (> 0) or retracted (< 0).
pub type Diff = i64;

/// A point in a source's totally ordered change log (SQLite change-log id,
/// PostgreSQL LSN). Every published state is the source as of one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position(pub u64);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Sums the diffs of equal rows and drops rows whose diffs cancel out.
pub fn consolidate(changes: &mut Vec<(Row, Diff)>) {
    if changes.len() <= 1 {
        changes.retain(|(_, d)| *d != 0);
        return;
    }
    changes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut write = 0;
    for read in 0..changes.len() {
        if write > 0 && changes[write - 1].0 == changes[read].0 {
            changes[write - 1].1 += changes[read].1;
        } else {
            changes.swap(write, read);
            write += 1;
        }
    }
    changes.truncate(write);
    changes.retain(|(_, d)| *d != 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consolidate_sums_and_drops_zeros() {
        let a = Row::pack([Datum::Int(1)]);
        let b = Row::pack([Datum::Int(2)]);
        let mut v = vec![(b.clone(), 1), (a.clone(), 1), (b.clone(), -1), (a.clone(), 2)];
        consolidate(&mut v);
        assert_eq!(v, vec![(a, 3)]);
    }
}
