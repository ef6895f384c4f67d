//! Reading the change log into a [`ChangeBatch`]: the SQL that reads it and
//! the pure decoding of its rows (a change is applied whole or reported in
//! [`ChangeBatch::undecodable`], never half-applied or dropped).
//!
//! One exception keeps a key repairable: a row image holding text that is
//! not UTF-8 never enters the input (its insert or update is reported, with
//! its raw bytes and key), so a later change whose *old* image is that bad
//! row and whose new one decodes is applied as the new row alone (an insert;
//! a delete applies nothing), and one whose new image is bad while the old
//! decodes retracts the old row (the bad value is reported). The keys so
//! repaired are in [`ChangeBatch::repaired`].

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
    /// Logged changes that could not be decoded; none of them is in `tables`
    /// (but the old row of an update to a non-UTF-8 value is retracted).
    pub undecodable: Vec<Undecodable>,
    /// `(table, key)` of rows whose non-UTF-8 image was replaced or deleted
    /// by a later change in this batch (see the module docs).
    pub repaired: Vec<(String, String)>,
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
    /// The row's primary key as text (`id=4`), read from the logged row
    /// with invalid UTF-8 replaced; the whole logged text without a key.
    pub key: String,
    /// The logged row's bytes (the image that failed: the new one when
    /// it did).
    pub raw: Vec<u8>,
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
            old_raw: raw_bytes(row.get_ref(2)?),
            new_raw: raw_bytes(row.get_ref(3)?),
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

/// The bytes of a log's `old`/`new` column (empty for NULL or a number).
fn raw_bytes(value: ValueRef<'_>) -> &[u8] {
    match value {
        ValueRef::Text(b) | ValueRef::Blob(b) => b,
        _ => &[],
    }
}

/// One row of the change log, as read.
#[derive(Debug)]
struct LoggedChange<'a> {
    seq: Position,
    table: &'a str,
    old: Result<Option<&'a str>, DecodeError>,
    new: Result<Option<&'a str>, DecodeError>,
    old_raw: &'a [u8],
    new_raw: &'a [u8],
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
    repaired: Vec<(String, String)>,
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
            repaired: Vec::new(),
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
            Ok((old, new, committed_at)) => self.push(index, old, new, committed_at),
            Err(reason) => {
                let raw = match (&change.old, &change.new) {
                    (_, Err(_)) => change.new_raw,
                    (Err(_), _) => change.old_raw,
                    _ if !change.new_raw.is_empty() => change.new_raw,
                    _ => change.old_raw,
                };
                let key = key_text(&self.tables[index], raw);
                let repaired = reason == DecodeError::InvalidUtf8 && self.repair(index, &change, &key);
                if !repaired {
                    let (seq, table) = (change.seq, change.table.to_string());
                    self.undecodable.push(Undecodable { seq, table, reason, key, raw: raw.to_vec() });
                }
            }
        }
    }

    fn push(&mut self, index: usize, old: Option<Row>, new: Option<Row>, committed_at: f64) {
        let rows = &mut self.changes[index];
        rows.extend(old.map(|r| (r, -1)));
        rows.extend(new.map(|r| (r, 1)));
        if self.seen_commits.insert((index, committed_at.to_bits())) {
            self.commits.push(CommitTime { table: self.tables[index].name.clone(), committed_at });
        }
    }

    /// A change one of whose images is not UTF-8 (see the module docs):
    /// the image that decodes is applied alone, as the bad one never
    /// entered the input. True when the key is repaired by it (the bad old
    /// row replaced or deleted); false when the change is still to report.
    fn repair(&mut self, index: usize, change: &LoggedChange<'_>, key: &str) -> bool {
        let Some(committed_at) = change.committed_at else { return false };
        let table = &self.tables[index];
        match (&change.old, &change.new) {
            (Err(DecodeError::InvalidUtf8), Ok(new)) => {
                let Ok(new) = new.map(|text| full_row(table, text, &mut self.packer)).transpose() else {
                    return false;
                };
                self.repaired.push((table.name.clone(), key.to_string()));
                if new.is_some() {
                    self.push(index, None, new, committed_at);
                }
                true
            }
            // A good row updated to a bad value: it leaves the input, the
            // bad value is reported.
            (Ok(Some(old)), Err(DecodeError::InvalidUtf8)) => {
                if let Ok(old) = full_row(table, old, &mut self.packer) {
                    self.push(index, Some(old), None, committed_at);
                }
                false
            }
            _ => false,
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
            repaired: self.repaired,
            skipped: self.skipped,
        }
    }
}

/// The primary key of a logged row as text (`id=4`, invalid UTF-8
/// replaced), or the whole row's text when a key column is not logged or
/// the row does not decode.
fn key_text(table: &Table, raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut key: Vec<(usize, &str)> =
        table.fingerprint.iter().filter(|c| c.pk > 0).map(|c| (c.pk, c.name.as_str())).collect();
    key.sort_unstable();
    let Ok(values) = decode_row(&text, table.logged.len()) else { return text.into_owned() };
    let mut parts = Vec::with_capacity(key.len());
    for (_, name) in &key {
        let Some(i) = table.logged_names.iter().position(|n| n == name) else { return text.into_owned() };
        parts.push(format!("{name}={}", values[i]));
    }
    if parts.is_empty() {
        text.into_owned()
    } else {
        parts.join(",")
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
        let change = |seq, table, old: Option<&'static str>, new: Option<&'static str>| LoggedChange {
            seq: Position(seq),
            table,
            old: Ok(old),
            new: Ok(new),
            old_raw: old.map_or(&[], str::as_bytes),
            new_raw: new.map_or(&[], str::as_bytes),
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

    /// A row image that is not UTF-8 never enters the input: its insert is
    /// reported with its key and bytes; an update of a good row to a bad
    /// value retracts the good row; the change that replaces the bad image
    /// inserts the new row alone and repairs the key.
    #[test]
    fn invalid_utf8_rows_stay_out_and_their_fix_repairs_the_key() {
        let spec = CaptureSpec { tables: vec![CapturedTable::new("users", ["id", "name"])] };
        let tables = plan_tables(&catalog(), &spec).unwrap();
        let by_name = tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let mut batch = BatchBuilder::new(&tables, &by_name);
        let bad: &[u8] = b"3,'c\xff'";
        let text = |t: &'static str| Ok(Some(t));
        let change = |seq, old, new, old_raw, new_raw| LoggedChange {
            seq: Position(seq),
            table: "users",
            old,
            new,
            old_raw,
            new_raw,
            committed_at: Some(1.0),
        };
        batch.add(change(1, Ok(None), Err(DecodeError::InvalidUtf8), &[], bad));
        batch.add(change(2, text("1,'ada'"), Err(DecodeError::InvalidUtf8), b"1,'ada'", b"1,'a\xff'"));
        batch.add(change(3, Err(DecodeError::InvalidUtf8), text("3,'cat'"), bad, b"3,'cat'"));
        let out = batch.finish(Position(3));
        let row = |id, name: &str| Row::pack([Datum::Int(id), Datum::text(name), Datum::Null]);
        assert_eq!(out.tables, vec![("users".to_string(), vec![(row(1, "ada"), -1), (row(3, "cat"), 1)])]);
        let reported: Vec<(u64, &[u8])> = out.undecodable.iter().map(|u| (u.seq.0, u.raw.as_slice())).collect();
        assert_eq!(reported, vec![(1, bad), (2, &b"1,'a\xff'"[..])]);
        let key = &out.undecodable[0].key;
        assert!(key.starts_with("3,'c"), "without the installed key, the row's text: {key}");
        assert_eq!(out.repaired, vec![("users".to_string(), key.clone())], "the same key as reported");
    }
}
