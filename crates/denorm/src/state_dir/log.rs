//! The change log: the stored rows' changes since the last checkpoint, so
//! that a restart after a `kill -9` loads the checkpoint (taken at log
//! sequence `S`) and applies exactly the changes after it instead of
//! replaying every stored row (`engine/checkpoint.rs`).
//!
//! ```text
//!  state.redb
//!   log      seq u64 → position u64 · per table: name, its rows' changes (row, diff)
//!   meta     "log_seq"   → u64   the last sequence number given out
//!            "log_start" → u64   every row change after it is in `log` (keys > log_start)
//! ```
//!
//! Each entry is written by [`StateDir::apply`] in the batch's own commit,
//! and holds the **effective** change of the stored multiset (new count −
//! old count per row: a truncation retracts every row, a retraction of a
//! row not held is not in it), which is exactly what the views are given.
//! Anything else that changes the rows without a log entry (a snapshot, a
//! reshape, logging turned off) moves `log_start` to the current sequence:
//! no checkpoint taken before it can be used. [`StateDir::forget_log`]
//! deletes the entries a durable checkpoint holds.
//!
//! Invariant: **the entries with keys in `(S, log_seq]` are all present
//! when `log_start ≤ S ≤ log_seq`**, so a checkpoint at `S` plus them is
//! the input at the stored position; the checkpoint's per-table checksums
//! plus the entries' must also equal the stored ones (checked at load).

use denorm_core::checkpoint::{CheckpointError, Reader, Writer};
use denorm_types::{Diff, Position};
use redb::TableDefinition;

use super::{row_hash, store_error, StateDir, StateError, TableChanges, META};

pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");

/// Changes of the stored rows after a checkpoint's log sequence.
#[derive(Debug, Default, PartialEq)]
pub struct LoggedChanges {
    /// Per log entry: its position and its tables' changes, in order.
    pub entries: Vec<(Position, TableChanges)>,
}

impl LoggedChanges {
    /// `sums` (per-table checksums at the checkpoint) moved by every entry.
    pub fn sums_after(
        &self,
        sums: &std::collections::BTreeMap<String, u64>,
    ) -> std::collections::BTreeMap<String, u64> {
        let mut out = sums.clone();
        for (_, tables) in &self.entries {
            for (table, changes) in tables {
                let sum = out.entry(table.clone()).or_default();
                for (row, diff) in changes {
                    *sum = sum.wrapping_add(row_hash(row.as_bytes()).wrapping_mul(*diff as u64));
                }
            }
        }
        out
    }

    /// Every entry's changes as one batch: per table (first-seen order),
    /// consolidated.
    pub fn merged(self) -> TableChanges {
        let mut out: TableChanges = Vec::new();
        for (_, tables) in self.entries {
            for (table, changes) in tables {
                match out.iter_mut().find(|(t, _)| *t == table) {
                    Some((_, all)) => all.extend(changes),
                    None => out.push((table, changes)),
                }
            }
        }
        for (_, changes) in &mut out {
            denorm_types::consolidate(changes);
        }
        out.retain(|(_, changes)| !changes.is_empty());
        out
    }

    pub fn rows(&self) -> usize {
        self.entries.iter().flat_map(|(_, t)| t).map(|(_, c)| c.len()).sum()
    }
}

/// One entry being encoded while [`StateDir::apply`] writes its rows.
pub(super) struct Entry {
    w: Writer,
    tables: u64,
    /// Where the current table starts, where its change count goes, and
    /// the count so far.
    open: Option<(usize, usize, u64)>,
}

impl Entry {
    pub(super) fn new(position: Position) -> Entry {
        let mut w = Writer::default();
        w.u64(position.0);
        w.count(0);
        Entry { w, tables: 0, open: None }
    }

    pub(super) fn table(&mut self, name: &str) {
        self.close();
        let start = self.w.buf.len();
        self.w.str(name);
        self.open = Some((start, self.w.buf.len(), 0));
        self.w.count(0);
    }

    pub(super) fn change(&mut self, row: &[u8], diff: Diff) {
        if diff == 0 {
            return;
        }
        self.w.bytes(row);
        self.w.i64(diff);
        if let Some((_, _, n)) = &mut self.open {
            *n += 1;
        }
    }

    fn close(&mut self) {
        if let Some((start, at, n)) = self.open.take() {
            if n == 0 {
                // No change: the table's name and count are dropped.
                self.w.buf.truncate(start);
            } else {
                self.w.buf[at..at + 8].copy_from_slice(&n.to_le_bytes());
                self.tables += 1;
            }
        }
    }

    /// The encoded entry, `None` when it holds no change.
    pub(super) fn finish(mut self) -> Option<Vec<u8>> {
        self.close();
        (self.tables > 0).then(|| {
            self.w.buf[8..16].copy_from_slice(&self.tables.to_le_bytes());
            self.w.buf
        })
    }
}

fn decode(bytes: &[u8]) -> Result<(Position, TableChanges), CheckpointError> {
    let mut r = Reader::new(bytes);
    let position = Position(r.u64()?);
    let mut tables = Vec::new();
    for _ in 0..r.count()? {
        let name = r.str()?.to_string();
        tables.push((name, r.changes()?));
    }
    if !r.at_end() {
        return Err(CheckpointError::Corrupt("bytes after a change-log entry".into()));
    }
    Ok((position, tables))
}

impl StateDir {
    /// The last log sequence number given out: a checkpoint taken now
    /// holds every logged change up to it.
    pub fn log_seq(&self) -> u64 {
        self.log_seq
    }

    /// Turns the change log on (the default) or off. Off: no entry is
    /// written and every batch that changes rows moves `log_start` past
    /// it (no checkpoint can then be completed by the log).
    pub fn set_logging(&mut self, on: bool) -> Result<(), StateError> {
        self.logging = on;
        if !on {
            self.forget_log(self.log_seq)?;
        }
        Ok(())
    }

    /// The logged changes after sequence `after` (a checkpoint's), `None`
    /// when the log does not hold all of them (it starts later, or `after`
    /// is ahead of it: a checkpoint of rows that were not made durable).
    pub fn changes_after(&self, after: u64) -> Result<Option<LoggedChanges>, StateError> {
        if after < self.log_start || after > self.log_seq {
            return Ok(None);
        }
        let tx = self.db.begin_read().map_err(store_error(&self.dir, "reading the change log"))?;
        let t = match tx.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) if after == self.log_seq => {
                return Ok(Some(LoggedChanges::default()))
            }
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(store_error(&self.dir, "reading the change log")(e)),
        };
        let mut out = LoggedChanges::default();
        let mut expected = after + 1;
        for entry in t.range(after + 1..).map_err(store_error(&self.dir, "reading the change log"))? {
            let (seq, bytes) = entry.map_err(store_error(&self.dir, "reading the change log"))?;
            if seq.value() != expected {
                return Ok(None);
            }
            expected += 1;
            match decode(bytes.value()) {
                Ok(decoded) => out.entries.push(decoded),
                Err(_) => return Ok(None),
            }
        }
        Ok((expected == self.log_seq + 1).then_some(out))
    }

    /// Deletes the log entries up to `upto` (held by a durable checkpoint);
    /// a checkpoint older than it can no longer be completed. Not durable
    /// by itself (a crash keeps more entries, which is harmless).
    pub fn forget_log(&mut self, upto: u64) -> Result<(), StateError> {
        let upto = upto.min(self.log_seq);
        if upto <= self.log_start {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "truncating the change log"))?;
        tx.set_durability(redb::Durability::None);
        {
            let mut t = tx.open_table(LOG).map_err(store_error(&self.dir, "truncating the change log"))?;
            t.retain_in(..=upto, |_, _| false).map_err(store_error(&self.dir, "truncating the change log"))?;
            let mut meta = tx.open_table(META).map_err(store_error(&self.dir, "truncating the change log"))?;
            meta.insert("log_start", upto.to_le_bytes().as_slice())
                .map_err(store_error(&self.dir, "truncating the change log"))?;
        }
        tx.commit().map_err(store_error(&self.dir, "truncating the change log"))?;
        self.log_start = upto;
        self.pending = true;
        Ok(())
    }
}

/// Reads `log_seq` and `log_start` from the metadata (0 when absent: a
/// directory written before the log existed starts its log empty).
pub(super) fn read_meta(meta: &impl redb::ReadableTable<&'static str, &'static [u8]>) -> (u64, u64) {
    let get = |key: &str| {
        meta.get(key).ok().flatten().and_then(|v| v.value().try_into().ok()).map(u64::from_le_bytes).unwrap_or(0)
    };
    (get("log_seq"), get("log_start"))
}

/// Writes `log_seq` and `log_start` into `meta`.
pub(super) fn write_meta(
    meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    seq: u64,
    start: u64,
) -> Result<(), redb::StorageError> {
    meta.insert("log_seq", seq.to_le_bytes().as_slice())?;
    meta.insert("log_start", start.to_le_bytes().as_slice())?;
    Ok(())
}
