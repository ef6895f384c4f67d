//! Reading the change log into a [`ChangeBatch`]: the SQL that reads it and
//! the pure decoding of its rows (a change is applied whole or reported in
//! [`ChangeBatch::undecodable`], never half-applied or dropped).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use denorm_types::{Datum, Diff, Position, Row, RowPacker, Value};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use super::capture::Table;
use super::decode::{decode_row, DecodeError};
use super::triggers;

/// The changes of whole committed transactions, in log order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeBatch {
    /// The batch's end: the last `seq` it covers, a transaction boundary.
    pub position: Position,
    /// The log's last assigned `seq` when the batch was read. Equal to
    /// `position` (a poll reads the whole log); compare it with the position
    /// the engine has published to measure lag.
    pub head: Position,
    /// Per captured table that changed (sorted by name): full-width rows,
    /// -1 for an old row, +1 for a new one (an update is both).
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
    /// Distinct `(table, committed_at)` pairs, for freshness measurement.
    pub commits: Vec<CommitTime>,
    /// Logged changes that could not be decoded; none of them is in `tables`.
    pub undecodable: Vec<Undecodable>,
    /// Changes of tables not captured (left by stale triggers), skipped.
    pub skipped: usize,
}

/// When a change of `table` was made: unix seconds, millisecond resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct CommitTime {
    pub table: String,
    pub committed_at: f64,
}

/// A logged change that could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Undecodable {
    pub seq: Position,
    pub table: String,
    pub reason: DecodeError,
}

/// Feeds the log rows with `from < seq <= to` to `batch`, in order.
pub(super) fn read_log(
    conn: &Connection,
    from: Position,
    to: Position,
    batch: &mut BatchBuilder<'_>,
) -> rusqlite::Result<()> {
    let sql = format!(
        "SELECT seq, tbl, old, new, committed_at FROM {} WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
        triggers::LOG_TABLE
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let bound = |p: Position| i64::try_from(p.0).unwrap_or(i64::MAX);
    let mut rows = stmt.query([bound(from), bound(to)])?;
    while let Some(row) = rows.next()? {
        let seq = Position(row.get::<_, i64>(0)?.max(0) as u64);
        let table = match row.get_ref(1)? {
            ValueRef::Text(t) => String::from_utf8_lossy(t),
            other => Cow::Owned(format!("{other:?}")),
        };
        let change = LoggedChange {
            seq,
            table: &table,
            old: log_text(row.get_ref(2)?),
            new: log_text(row.get_ref(3)?),
            committed_at: row.get_ref(4)?.as_f64().ok(),
        };
        batch.add(change);
    }
    Ok(())
}

/// The text of a log's `old`/`new` column: `None` for NULL.
fn log_text(value: ValueRef<'_>) -> Result<Option<&str>, DecodeError> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| DecodeError::InvalidUtf8),
        ValueRef::Integer(_) => Err(DecodeError::NotText { kind: "integer" }),
        ValueRef::Real(_) => Err(DecodeError::NotText { kind: "real" }),
        ValueRef::Blob(_) => Err(DecodeError::NotText { kind: "blob" }),
    }
}

/// One row of the change log, as read.
#[derive(Debug)]
struct LoggedChange<'a> {
    seq: Position,
    table: &'a str,
    old: Result<Option<&'a str>, DecodeError>,
    new: Result<Option<&'a str>, DecodeError>,
    committed_at: Option<f64>,
}

/// Turns log rows into a [`ChangeBatch`]; pure.
pub(super) struct BatchBuilder<'a> {
    tables: &'a [Table],
    by_name: &'a HashMap<String, usize>,
    changes: Vec<Vec<(Row, Diff)>>,
    commits: Vec<CommitTime>,
    seen_commits: HashSet<(usize, u64)>,
    undecodable: Vec<Undecodable>,
    skipped: usize,
    packer: RowPacker,
}

impl<'a> BatchBuilder<'a> {
    pub(super) fn new(tables: &'a [Table], by_name: &'a HashMap<String, usize>) -> Self {
        BatchBuilder {
            tables,
            by_name,
            changes: vec![Vec::new(); tables.len()],
            commits: Vec::new(),
            seen_commits: HashSet::new(),
            undecodable: Vec::new(),
            skipped: 0,
            packer: RowPacker::new(),
        }
    }

    fn add(&mut self, change: LoggedChange<'_>) {
        let Some(&index) = self.by_name.get(change.table) else {
            self.skipped += 1;
            return;
        };
        match self.decode(index, &change) {
            Ok((old, new, committed_at)) => {
                let rows = &mut self.changes[index];
                rows.extend(old.map(|r| (r, -1)));
                rows.extend(new.map(|r| (r, 1)));
                if self.seen_commits.insert((index, committed_at.to_bits())) {
                    self.commits.push(CommitTime { table: self.tables[index].name.clone(), committed_at });
                }
            }
            Err(reason) => {
                self.undecodable.push(Undecodable { seq: change.seq, table: change.table.to_string(), reason })
            }
        }
    }

    /// Both rows of a change, or why not: a change is applied whole or not
    /// at all.
    fn decode(
        &mut self,
        index: usize,
        change: &LoggedChange<'_>,
    ) -> Result<(Option<Row>, Option<Row>, f64), DecodeError> {
        let table = &self.tables[index];
        let (old, new) = (change.old.clone()?, change.new.clone()?);
        if old.is_none() && new.is_none() {
            return Err(DecodeError::NoRow);
        }
        let committed_at = change.committed_at.ok_or(DecodeError::NotText { kind: "non-numeric committed_at" })?;
        let old = old.map(|text| full_row(table, text, &mut self.packer)).transpose()?;
        let new = new.map(|text| full_row(table, text, &mut self.packer)).transpose()?;
        Ok((old, new, committed_at))
    }

    pub(super) fn finish(self, position: Position) -> ChangeBatch {
        let tables = self
            .tables
            .iter()
            .zip(self.changes)
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(t, rows)| (t.name.clone(), rows))
            .collect();
        ChangeBatch {
            position,
            head: position,
            tables,
            commits: self.commits,
            undecodable: self.undecodable,
            skipped: self.skipped,
        }
    }
}

/// Decodes a logged row and widens it to the table's width.
fn full_row(table: &Table, text: &str, packer: &mut RowPacker) -> Result<Row, DecodeError> {
    let values = decode_row(text, table.logged.len())?;
    Ok(pack_full_row(table.width, &table.logged, &values, packer))
}

/// The row of `width` columns holding `values` at the `logged` positions
/// (ascending) and NULL elsewhere.
fn pack_full_row(width: usize, logged: &[usize], values: &[Value], packer: &mut RowPacker) -> Row {
    let mut next = 0;
    for column in 0..width {
        if logged.get(next) == Some(&column) {
            packer.push(&values[next]);
            next += 1;
        } else {
            packer.push(&Datum::Null);
        }
    }
    packer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::capture::plan_tables;
    use crate::sqlite::{CaptureSpec, CapturedTable};
    use denorm_types::{Catalog, ColumnSchema, ScalarType, TableSchema};

    fn catalog() -> Catalog {
        let columns = ["id", "name", "email"]
            .iter()
            .map(|c| ColumnSchema { name: c.to_string(), ty: ScalarType::Int, nullable: true })
            .collect();
        let mut catalog = Catalog::new();
        catalog.add(TableSchema { name: "users".into(), columns, primary_key: vec![0], unique_keys: vec![] });
        catalog
    }

    #[test]
    fn unlogged_columns_are_null_in_full_rows() {
        let mut packer = RowPacker::new();
        let row = pack_full_row(4, &[1, 3], &[Datum::Int(7), Datum::owned_text("x")], &mut packer);
        assert_eq!(row, Row::pack([Datum::Null, Datum::Int(7), Datum::Null, Datum::text("x")]));
        assert_eq!(pack_full_row(2, &[], &[], &mut packer), Row::pack([Datum::Null, Datum::Null]));
    }

    #[test]
    fn batch_builder_applies_whole_changes_and_reports_the_rest() {
        let spec = CaptureSpec { tables: vec![CapturedTable::new("users", ["id", "name"])] };
        let tables = plan_tables(&catalog(), &spec).unwrap();
        let by_name = tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let mut batch = BatchBuilder::new(&tables, &by_name);
        let change = |seq, table, old, new| LoggedChange {
            seq: Position(seq),
            table,
            old: Ok(old),
            new: Ok(new),
            committed_at: Some(10.5),
        };
        batch.add(change(1, "users", None, Some("1,'ada'")));
        batch.add(change(2, "users", Some("1,'ada'"), Some("2,'ada'")));
        batch.add(change(3, "users", Some("2,'ada'"), Some("2")));
        batch.add(change(4, "gone", None, Some("1")));
        batch.add(change(5, "users", None, None));
        let out = batch.finish(Position(5));
        let row = |id, name: &str| Row::pack([Datum::Int(id), Datum::text(name), Datum::Null]);
        assert_eq!(
            out.tables,
            vec![("users".to_string(), vec![(row(1, "ada"), 1), (row(1, "ada"), -1), (row(2, "ada"), 1)])]
        );
        assert_eq!(out.skipped, 1);
        let reasons: Vec<(u64, &DecodeError)> = out.undecodable.iter().map(|u| (u.seq.0, &u.reason)).collect();
        assert_eq!(reasons, vec![(3, &DecodeError::ColumnCount { expected: 2, found: 1 }), (5, &DecodeError::NoRow)]);
        assert_eq!(out.commits, vec![CommitTime { table: "users".into(), committed_at: 10.5 }]);
    }
}
