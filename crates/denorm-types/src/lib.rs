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

pub mod affinity;
pub mod clock;
mod datum;
pub mod interval;
pub mod json;
pub mod numeric;
pub mod pgtext;
mod row;
mod schema;
pub mod sqlite_float;
pub mod temporal;

pub use datum::{parse_uuid, write_uuid, Datum, Value};
pub use row::{DatumIter, Row, RowPacker, RowRef};
pub use schema::{Catalog, Collation, ColumnSchema, Dialect, ScalarType, TableSchema};

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

/// Sums the diffs of equal rows and drops rows whose diffs cancel out; the
/// result is sorted by row.
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

/// Batches at least this long are consolidated by hashing rather than sorting.
const HASH_CONSOLIDATE_FROM: usize = 32;

/// Like [`consolidate`], but in no particular order: large batches are
/// consolidated in one hashing pass (each row hashed once, compared only with
/// rows of equal hash) instead of O(n log n) byte comparisons.
pub fn consolidate_unordered(changes: &mut Vec<(Row, Diff)>) {
    if changes.len() < HASH_CONSOLIDATE_FROM {
        consolidate(changes);
        return;
    }
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let hashes: Vec<u64> = changes.iter().map(|(row, _)| hasher.hash_one(row.as_bytes())).collect();
    // Indexes of the first occurrence of each distinct row; later copies add
    // their diff to it and are left with 0, which the final retain drops.
    let mut first: hashbrown::HashTable<usize> = hashbrown::HashTable::with_capacity(changes.len());
    for read in 0..changes.len() {
        let hash = hashes[read];
        let found = first.find(hash, |&i| changes[i].0 == changes[read].0).copied();
        match found {
            Some(i) => {
                changes[i].1 += changes[read].1;
                changes[read].1 = 0;
            }
            None => {
                first.insert_unique(hash, read, |&i| hashes[i]);
            }
        }
    }
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

    #[test]
    fn consolidate_unordered_agrees_with_consolidate() {
        let rows: Vec<Row> = (0..50).map(|i| Row::pack([Datum::Int(i % 17)])).collect();
        let mut changes: Vec<(Row, Diff)> =
            rows.iter().enumerate().map(|(i, r)| (r.clone(), (i % 5) as Diff - 2)).collect();
        let mut sorted = changes.clone();
        consolidate(&mut sorted);
        consolidate_unordered(&mut changes);
        changes.sort();
        assert_eq!(changes, sorted);
    }
}
