//! Trigger-based change capture for SQLite: [`SqliteCapture`].
//!
//! ```text
//!  any process, stock SQLite ≥ 3.38          denorm (this module)
//!  ─────────────────────────────────         ──────────────────────────────────────────
//!  INSERT/UPDATE/DELETE on users ──┐          open():  WAL mode, install triggers (1 tx)
//!                                  │ same tx  snapshot(): tables + last seq     (1 read tx)
//!   AFTER trigger _denorm_*_users ─┘          poll():  schema check + seq > pos (1 read tx)
//!   (BEFORE triggers: rows a REPLACE
//!    will delete → _denorm_pending)
//!        │ INSERT                                  │  ChangeBatch { tables: (Row, Diff)…,
//!        ▼                                         │                position, commits, … }
//!  _denorm_changes ◄───────────────────────────────┘
//!   seq  tbl    old          new          committed_at
//!   41   users  NULL         1,'ada'      1718000000.123
//!   42   users  1,'ada'      1,'Ada'      1718000000.125
//!        ▲
//!        └──── release(upto): DELETE seq <= upto, once the engine published it
//! ```
//!
//! Each trigger runs inside the writer's transaction, so a change is logged
//! if and only if it commits. Only the columns the views read are logged
//! (`quote(NEW.a)||','||…`, decoded by [`decode_row`](super::decode_row));
//! rows handed to the engine are full table width with the columns no view
//! reads set to NULL, in the snapshot and in the change stream alike, so an
//! insert and its later retraction are the same bytes.
//!
//! # Invariants
//!
//! * **Every read ends on a transaction boundary.** SQLite serializes
//!   writers and `seq` is assigned inside the writer's transaction, so a
//!   reader that sees `seq` N committed sees every `seq` < N too. Reading the
//!   whole log above the last position in one read transaction therefore
//!   yields whole committed transactions, and [`ChangeBatch::position`] is a
//!   transaction boundary.
//! * **Snapshot and log join exactly.** [`SqliteCapture::snapshot`] reads
//!   the tables and the last assigned `seq` in one read transaction: every
//!   change at or below it is in the snapshot, every change above it is not.
//! * **Positions never go back.** `seq` is `AUTOINCREMENT`: SQLite keeps the
//!   largest `seq` ever assigned in `sqlite_sequence`, so deleting released
//!   rows never makes it reuse a number (a plain rowid would).
//!
//! # Traps
//!
//! * **Millisecond clock.** `committed_at` is `(julianday('now') -
//!   2440587.5) * 86400.0`: SQLite's clock has millisecond resolution, and
//!   `unixepoch('subsec')` needs 3.42 while triggers must run on 3.38 (the
//!   stamp is taken when the change is made, a little before the commit).
//! * **DROP COLUMN.** SQLite refuses `ALTER TABLE … DROP COLUMN` of a column
//!   a trigger references: "error in trigger _denorm_insert_users after drop
//!   column: no such column: NEW.email". Triggers reference only columns the
//!   views read, so dropping any other column works. To drop a column a view
//!   reads, first change the views so that none reads it and restart denorm
//!   (its triggers are re-created without the column), or stop denorm, run
//!   [`uninstall`](super::uninstall), drop the column, and start it again.
//! * **The 12-step ALTER TABLE** (create new table, copy, drop old, rename)
//!   drops the old table's triggers with it. [`SqliteCapture::poll`] notices
//!   the missing triggers and returns [`Poll::SchemaChanged`]; changes made
//!   between the rebuild and the re-installation are not logged, which is why
//!   the caller must re-snapshot.
//! * **REPLACE deletes without DELETE triggers.** `INSERT OR REPLACE`,
//!   `REPLACE INTO`, `UPDATE OR REPLACE` and columns declared `ON CONFLICT
//!   REPLACE` delete the conflicting rows without firing DELETE triggers
//!   (unless the writer set `PRAGMA recursive_triggers = ON`), and this
//!   holds for tables without any key too: `INSERT OR REPLACE INTO t
//!   (rowid, …)` replaces by rowid. So every captured table also gets a
//!   `BEFORE INSERT` and a `BEFORE UPDATE` trigger that copy the rows
//!   conflicting with `NEW` (on the rowid, or the primary key of a WITHOUT
//!   ROWID table, and every UNIQUE index, under the index's collation) into
//!   `_denorm_pending`; the `AFTER INSERT` / `AFTER UPDATE` triggers, which
//!   only fire when the row was written, log those rows' deletion with the
//!   same `committed_at` (for rowid tables, only rows whose rowid is gone or
//!   taken by `NEW`). Ignored inserts and UPSERTs that update leave a few
//!   pending rows, cleared by the table's next BEFORE trigger; the DELETE
//!   trigger takes its row out of the pending table, so that a deletion that
//!   did fire it (`recursive_triggers = ON`) is logged once. Any writer on
//!   stock SQLite is captured, with no change to the application.
//!   Not followed: conflicts on UNIQUE indexes over expressions, and on
//!   partial ones of WITHOUT ROWID tables ([`SqliteCapture::open`] warns).
//! * **The cost of following REPLACE.** Per inserted row: one more trigger,
//!   a `DELETE` on the (near-empty) pending table, one indexed lookup for the
//!   rowid and per UNIQUE index (a NULL key finds nothing), and two more
//!   statements in the AFTER trigger, of which only the pending-table scan
//!   does work when nothing was replaced. Per deleted row: one `DELETE` on
//!   the pending table. An UPDATE pays the same as an insert only when it
//!   changes the rowid or a column of a UNIQUE index (a `WHEN` clause skips
//!   the others).
//! * **A failed `OR FAIL` statement** keeps the rows it wrote before the
//!   failing one, and their log rows, but SQLite skips its
//!   `sqlite_sequence` update: the position is the larger of that record
//!   and the log's largest `seq`, and [`SqliteCapture::release`] raises the
//!   record to what it deletes, so that no `seq` is reused.
//! * **`SET rowid = …`** changes an `INTEGER PRIMARY KEY` column without
//!   firing `UPDATE OF` that column: when the rowid alias is logged, the
//!   UPDATE trigger has no `OF` list (its `WHEN` clause still filters).
//! * **New UNIQUE indexes.** The triggers name the table's UNIQUE indexes:
//!   creating or dropping one on a captured table is a schema change
//!   ([`Poll::SchemaChanged`]), so that re-opening installs triggers that
//!   follow it.
//! * **Triggers are part of the application's writes.** A write fails if its
//!   trigger fails (disk full, `_denorm_changes` dropped by hand); use
//!   [`uninstall`](super::uninstall) to remove capture, never `DROP TABLE`.
//! * **WAL needs no exclusive lock, except once.** Readers and the writer
//!   never block each other in WAL mode. Switching a database *into* WAL
//!   mode (the first [`SqliteCapture::open`]) needs a moment with no other
//!   connection in a transaction; WAL mode then persists in the file.
//! * **Busy handling.** Installing waits up to [`INSTALL_BUSY_TIMEOUT`] for
//!   the write lock; [`SqliteCapture::release`] takes no lock when there is
//!   nothing new to delete, deletes at most [`RELEASE_BATCH`] rows per
//!   transaction (committed without fsync: `synchronous = NORMAL` on
//!   denorm's connection only), waits only [`RELEASE_BUSY_TIMEOUT`] per
//!   transaction and otherwise leaves the rest for its next call
//!   ([`SourceError::Busy`], transient, when nothing was deleted). Reads
//!   never wait for writers. A writer of the application that sets no busy
//!   timeout (a plain `sqlite3` shell) can still meet `database is locked`
//!   during those short transactions: it should set `PRAGMA busy_timeout`.
//! * **Text with NUL** would be cut at the NUL by `quote()`: the triggers
//!   log text holding a NUL byte as `T` + `quote()` of its bytes
//!   (`TX'610062'`), so it is the same value in the snapshot and the change
//!   stream (one `instr` over each logged text value per change).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use denorm_types::{Catalog, Datum, Position, Row, RowPacker, TableSchema, Value};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::batch::{read_log, BatchBuilder};
pub use super::batch::{ChangeBatch, CommitTime, Undecodable};
use super::triggers::{self, installed_triggers, last_seq, log_tables_exist, quote_ident, row_keys, RowKeys, Trigger};
use super::wakeup::Wakeup;
use super::{raw_columns, read_table, RawColumn};
use crate::error::is_busy;
use crate::SourceError;

/// How long [`SqliteCapture::open`] and [`uninstall`](super::uninstall) wait
/// for the write lock.
pub const INSTALL_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`SqliteCapture::release`] waits for the write lock.
pub const RELEASE_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// [`SqliteCapture::release`] deletes at most this many log rows per write
/// transaction, so that it never holds the write lock for long.
pub const RELEASE_BATCH: i64 = 1000;
/// How long reads wait when SQLite reports busy (WAL recovery, rare).
const READ_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// Rows between two snapshot progress reports.
const PROGRESS_EVERY: u64 = 10_000;

/// Which tables and columns the views read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSpec {
    pub tables: Vec<CapturedTable>,
}

/// One table the views read, and the columns they read from it, in any
/// order; `"*"` stands for every column (a view using `SELECT *`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedTable {
    pub name: String,
    pub columns: Vec<String>,
}

impl CapturedTable {
    pub fn new(name: impl Into<String>, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        CapturedTable { name: name.into(), columns: columns.into_iter().map(Into::into).collect() }
    }

    /// Every column of the table.
    pub fn all(name: impl Into<String>) -> Self {
        CapturedTable::new(name, ["*"])
    }
}

/// Progress of [`SqliteCapture::snapshot`], reported every few thousand rows
/// and after each table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapshotProgress<'a> {
    /// The table being read.
    pub table: &'a str,
    /// Rows read so far, over all tables.
    pub rows_read: u64,
    /// Estimated rows of all tables (`max(rowid)`, or `count(*)` for WITHOUT
    /// ROWID tables); may be off either way.
    pub estimated_total: u64,
}

/// The captured tables as of one position.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Every change at or below this position is in the rows; none above it.
    pub position: Position,
    /// Per captured table (by catalog name, sorted), its full-width rows.
    pub tables: Vec<(String, Vec<Row>)>,
}

/// What [`SqliteCapture::poll`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// No change since the last position.
    Idle,
    Changes(ChangeBatch),
    /// The named captured tables changed shape or lost their triggers. No
    /// change was consumed: re-read the catalog, re-plan, open a new capture
    /// and snapshot again.
    SchemaChanged {
        tables: Vec<String>,
    },
}

/// A captured table as installed.
#[derive(Debug, Clone)]
pub(super) struct Table {
    /// The catalog's name, which the triggers write into `tbl`.
    pub(super) name: String,
    /// Columns of the table.
    pub(super) width: usize,
    /// Positions of the logged columns, ascending.
    pub(super) logged: Vec<usize>,
    pub(super) logged_names: Vec<String>,
    pub(super) without_rowid: bool,
    /// Filled in by [`check_catalog`], from the keys.
    pub(super) triggers: Vec<Trigger>,
    /// The table's columns as installed, to tell schema changes that matter.
    pub(super) fingerprint: Vec<RawColumn>,
    /// Its rowid and UNIQUE indexes as installed: the replace-capture
    /// triggers depend on them.
    pub(super) keys: RowKeys,
}

/// Change capture of one SQLite database: see the module documentation.
#[derive(Debug)]
pub struct SqliteCapture {
    path: PathBuf,
    /// Snapshot and poll reads.
    reader: Connection,
    /// Installs triggers and releases applied changes.
    writer: Connection,
    tables: Vec<Table>,
    by_name: HashMap<String, usize>,
    /// `PRAGMA schema_version` as last checked good.
    schema_version: i64,
    position: Position,
    /// What [`release`](Self::release) deleted up to (0: nothing yet this
    /// life, so the first release also clears rows a previous one left).
    released: Position,
    /// The capture's id stored in the database (see [`identity`](Self::identity)).
    capture_id: String,
    /// Whether [`open`](Self::open) had to create or change the log or a
    /// trigger: changes made before may not have been logged.
    reinstalled: bool,
    /// The captured tables whose triggers [`open`](Self::open) had to
    /// (re)install, and whether it had to create the change log.
    installed_tables: Vec<String>,
    log_created: bool,
}

/// What [`SqliteCapture::follow_reading`] read.
#[derive(Debug)]
pub struct Resync {
    /// The change log's last `seq` in the read transaction.
    pub position: Position,
    /// The other tables' changes from the kept position to `position`.
    pub changes: ChangeBatch,
    /// The re-read tables' rows at `position`.
    pub tables: Vec<(String, Vec<Row>)>,
}

impl SqliteCapture {
    /// Opens `path` for capture: switches it to WAL mode and installs the
    /// change log and the triggers `spec` needs, dropping denorm triggers it
    /// no longer needs, in one transaction. Installing the same spec again
    /// changes nothing. The position starts at the log's last `seq`.
    ///
    /// `catalog` is what the views were planned against; when a captured
    /// table no longer matches it, this fails with
    /// [`SourceError::SchemaChanged`].
    pub fn open(path: &Path, catalog: &Catalog, spec: &CaptureSpec) -> Result<Self, SourceError> {
        let mut tables = plan_tables(catalog, spec)?;
        let mut writer = writable_connection(path)?;
        ensure_wal(&writer, path)?;
        let installed = install(&mut writer, path, catalog, &mut tables)?;
        let Installed { schema_version, position, capture_id, reinstalled, installed_tables, log_created } = installed;
        writer.busy_timeout(RELEASE_BUSY_TIMEOUT).map_err(sqlite_error(path, "setting the busy timeout"))?;
        // denorm's own commits (deleting applied log rows) need not reach
        // the disk before the lock is given back: a deletion lost to a power
        // failure only leaves rows at or below a position already read.
        // This connection's commits skip the fsync, which is most of the
        // time other writers could find the database locked by denorm.
        writer
            .execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(sqlite_error(path, "setting synchronous = NORMAL"))?;
        let reader = super::open_read_only(path)?;
        reader.busy_timeout(READ_BUSY_TIMEOUT).map_err(sqlite_error(path, "setting the busy timeout"))?;
        let by_name = tables.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(SqliteCapture {
            path: path.to_path_buf(),
            reader,
            writer,
            tables,
            by_name,
            schema_version,
            position,
            released: Position(0),
            capture_id,
            reinstalled,
            installed_tables,
            log_created,
        })
    }

    /// Reads every captured table and the log position in one read
    /// transaction, and moves the position there. `progress` hears of the
    /// rows read. Fails with [`SourceError::SchemaChanged`] when the tables
    /// changed since [`open`](Self::open).
    pub fn snapshot(&mut self, progress: &mut dyn FnMut(SnapshotProgress<'_>)) -> Result<Snapshot, SourceError> {
        let path = self.path.as_path();
        let tx = self.reader.transaction().map_err(sqlite_error(path, "starting the snapshot"))?;
        let changed = schema_changes(&tx, &self.tables, &mut self.schema_version)?;
        if !changed.is_empty() {
            return Err(SourceError::SchemaChanged { tables: changed });
        }
        let position = Position(last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?);
        let mut estimated_total = 0;
        for table in &self.tables {
            estimated_total += estimate_rows(&tx, table).map_err(sqlite_error(path, "estimating table sizes"))?;
        }
        let mut rows_read = 0;
        let mut tables = Vec::with_capacity(self.tables.len());
        for table in &self.tables {
            let before = rows_read;
            let mut report =
                |n: u64| progress(SnapshotProgress { table: &table.name, rows_read: before + n, estimated_total });
            let rows = read_rows(&tx, path, table, &[], &mut report)?;
            report(rows.len() as u64);
            rows_read += rows.len() as u64;
            tables.push((table.name.clone(), rows));
        }
        tx.commit().map_err(sqlite_error(path, "ending the snapshot"))?;
        self.position = position;
        Ok(Snapshot { position, tables })
    }

    /// The rows of captured `table` whose `key` columns hold the values,
    /// with the change log's last `seq`, in one read transaction (see
    /// [`ChangeSource::read_key`](crate::ChangeSource::read_key)); the
    /// capture's position does not move.
    pub fn read_key(&mut self, table: &str, key: &[(String, Value)]) -> Result<crate::KeyRead, SourceError> {
        let path = self.path.as_path();
        let captured = self
            .tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(table))
            .ok_or_else(|| SourceError::UnknownTable { table: table.to_string() })?;
        let tx = self.reader.transaction().map_err(sqlite_error(path, "starting to read a row"))?;
        let position = Position(last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?);
        let rows = read_rows(&tx, path, captured, key, &mut |_| {})?;
        tx.commit().map_err(sqlite_error(path, "ending the read of a row"))?;
        Ok(crate::KeyRead { position, rows })
    }

    /// Reads every logged change above the position in one read transaction
    /// and moves the position to its end. Checks first, in the same
    /// transaction, that the captured tables and their triggers are as
    /// installed.
    pub fn poll(&mut self) -> Result<Poll, SourceError> {
        let path = self.path.as_path();
        let tx = self.reader.transaction().map_err(sqlite_error(path, "starting to read the change log"))?;
        let changed = schema_changes(&tx, &self.tables, &mut self.schema_version)?;
        if !changed.is_empty() {
            return Ok(Poll::SchemaChanged { tables: changed });
        }
        let head = Position(last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?);
        if head < self.position {
            // The log was dropped and re-created (uninstalled by hand):
            // changes may be missing, only a new snapshot is safe.
            return Ok(Poll::SchemaChanged { tables: self.tables.iter().map(|t| t.name.clone()).collect() });
        }
        if head == self.position {
            return Ok(Poll::Idle);
        }
        let mut batch = BatchBuilder::new(&self.tables, &self.by_name);
        read_log(&tx, self.position, head, &mut batch).map_err(sqlite_error(path, "reading the change log"))?;
        tx.commit().map_err(sqlite_error(path, "ending the change-log read"))?;
        self.position = head;
        Ok(Poll::Changes(batch.finish(head)))
    }

    /// Deletes the log rows at or below `upto` (clamped to the position
    /// read so far, so unread changes are never lost); call it once those
    /// changes are applied and published. Returns the rows deleted.
    ///
    /// Other processes write this database, and each of denorm's write
    /// transactions is a moment in which a writer without a busy timeout
    /// fails with `database is locked`: a release with nothing new to
    /// delete takes no lock at all, and the rows go in transactions of at
    /// most [`RELEASE_BATCH`] each (short, without fsync, see
    /// [`open`](Self::open)). Each waits at most [`RELEASE_BUSY_TIMEOUT`]
    /// for the write lock; when it is not free, what was deleted so far is
    /// kept and returned, and the rest waits for the next call — or, when
    /// nothing could be deleted, this fails with the transient
    /// [`SourceError::Busy`]. Readers are never blocked.
    pub fn release(&mut self, upto: Position) -> Result<usize, SourceError> {
        let upto = upto.min(self.position);
        if upto <= self.released {
            return Ok(0);
        }
        let seq = i64::try_from(upto.0).unwrap_or(i64::MAX);
        let mut deleted = 0;
        loop {
            match release_batch(&mut self.writer, seq) {
                Ok(None) => break,
                Ok(Some(n)) => deleted += n,
                Err(e) if deleted > 0 && is_busy(&e) => return Ok(deleted),
                Err(e) => return Err(sqlite_error(&self.path, "releasing applied changes")(e)),
            }
        }
        self.released = upto;
        Ok(deleted)
    }

    /// Names this database for a state directory: its canonical path and
    /// the id its capture stores (made when capture is first installed).
    pub fn identity(&self) -> String {
        let path = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        format!("sqlite {} capture {}", path.display(), self.capture_id)
    }

    /// Continues after `at` without a snapshot, for a caller whose state
    /// (kept durably) is the captured tables as of `at`: `Ok(None)` when the
    /// change log still holds every change above `at`; `Ok(Some(reason))`
    /// when it may not (triggers were missing and re-installed at open, the
    /// log was re-created, or rows above `at` were deleted): snapshot then.
    pub fn follow_from(&mut self, at: Position) -> Result<Option<String>, SourceError> {
        if self.reinstalled {
            return Ok(Some(
                "capture was (re)installed at start: changes made while it was missing were not logged".into(),
            ));
        }
        let path = self.path.as_path();
        let tx = self.reader.transaction().map_err(sqlite_error(path, "starting to read the change log"))?;
        let head = last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?;
        let first = triggers::first_seq(&tx).map_err(sqlite_error(path, "reading the change-log start"))?;
        tx.commit().map_err(sqlite_error(path, "ending the change-log read"))?;
        let gap = log_gap(at, head, first);
        if gap.is_none() {
            self.position = at;
        }
        Ok(gap)
    }

    /// Instead of [`follow_from`](Self::follow_from), for a caller whose
    /// kept rows of the `fresh` tables are void (recreated, newly
    /// captured): in one read transaction at the log's last `seq` L, reads
    /// those tables and every table whose triggers [`open`](Self::open)
    /// (re)installed, plus the other tables' logged changes in (`at`, L];
    /// the position moves to L. `Ok(Err(reason))` when the log may not
    /// hold every change of the other tables above `at`.
    pub fn follow_reading(&mut self, at: Position, fresh: &[String]) -> Result<Result<Resync, String>, SourceError> {
        if self.log_created {
            return Ok(Err("the change log was created at start: changes made before were not logged".into()));
        }
        let reading: Vec<&Table> = self
            .tables
            .iter()
            .filter(|t| fresh.iter().chain(&self.installed_tables).any(|f| f.eq_ignore_ascii_case(&t.name)))
            .collect();
        let path = self.path.as_path();
        let tx = self.reader.transaction().map_err(sqlite_error(path, "starting to read the change log"))?;
        let head = last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?;
        let first = triggers::first_seq(&tx).map_err(sqlite_error(path, "reading the change-log start"))?;
        if let Some(gap) = log_gap(at, head, first) {
            return Ok(Err(gap));
        }
        let mut batch = BatchBuilder::new(&self.tables, &self.by_name);
        read_log(&tx, at, Position(head), &mut batch).map_err(sqlite_error(path, "reading the change log"))?;
        let mut changes = batch.finish(Position(head));
        let read = |name: &str| reading.iter().any(|t| t.name == name);
        changes.tables.retain(|(t, _)| !read(t));
        changes.commits.retain(|c| !read(&c.table));
        changes.undecodable.retain(|u| !read(&u.table));
        changes.repaired.retain(|(t, _)| !read(t));
        let mut tables = Vec::with_capacity(reading.len());
        for table in &reading {
            tables.push((table.name.clone(), read_rows(&tx, path, table, &[], &mut |_| {})?));
        }
        tx.commit().map_err(sqlite_error(path, "ending the read"))?;
        self.position = Position(head);
        Ok(Ok(Resync { position: Position(head), changes, tables }))
    }

    /// A [`Wakeup`] that blocks until the database may hold new committed
    /// changes.
    pub fn wakeup(&self) -> Result<Wakeup, SourceError> {
        Wakeup::new(&self.path)
    }

    /// The last position read: by [`snapshot`](Self::snapshot) or
    /// [`poll`](Self::poll), or the log's end at [`open`](Self::open).
    pub fn position(&self) -> Position {
        self.position
    }

    /// The database file captured.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Deletes the oldest log rows at or below `upto`, at most
/// [`RELEASE_BATCH`] of them, in one write transaction; `None` when there
/// are none left.
fn release_batch(conn: &mut Connection, upto: i64) -> rusqlite::Result<Option<usize>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let oldest: Option<i64> =
        tx.query_row(&format!("SELECT min(seq) FROM {}", triggers::LOG_TABLE), [], |r| r.get(0))?;
    let Some(oldest) = oldest.filter(|&oldest| oldest <= upto) else { return Ok(None) };
    let end = upto.min(oldest.saturating_add(RELEASE_BATCH - 1));
    let deleted = triggers::release(&tx, end)?;
    tx.commit()?;
    Ok(Some(deleted))
}

/// Maps a SQLite error met while doing `what` to a [`SourceError`]: busy
/// and locked are [`SourceError::Busy`], a read-only database
/// [`SourceError::ReadOnly`].
pub(crate) fn sqlite_error(path: &Path, what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SourceError {
    let path = path.to_path_buf();
    let what = what.into();
    move |source| {
        if is_busy(&source) {
            SourceError::Busy { path, what, source }
        } else if source.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            SourceError::ReadOnly { path }
        } else {
            SourceError::Capture { path, what, source }
        }
    }
}

/// Resolves the spec against the catalog: which columns each table logs.
pub(super) fn plan_tables(catalog: &Catalog, spec: &CaptureSpec) -> Result<Vec<Table>, SourceError> {
    let mut wanted: BTreeMap<String, (&TableSchema, Vec<usize>)> = BTreeMap::new();
    for captured in &spec.tables {
        let schema =
            catalog.get(&captured.name).ok_or_else(|| SourceError::UnknownTable { table: captured.name.clone() })?;
        let entry = wanted.entry(schema.name.clone()).or_insert_with(|| (schema, Vec::new()));
        for column in &captured.columns {
            if column == "*" {
                entry.1.extend(0..schema.columns.len());
                continue;
            }
            let index = schema
                .column_index(column)
                .ok_or_else(|| SourceError::UnknownColumn { table: schema.name.clone(), column: column.clone() })?;
            entry.1.push(index);
        }
    }
    Ok(wanted.into_values().map(|(schema, logged)| planned_table(schema, logged)).collect())
}

fn planned_table(schema: &TableSchema, mut logged: Vec<usize>) -> Table {
    logged.sort_unstable();
    logged.dedup();
    let logged_names: Vec<String> = logged.iter().map(|&i| schema.columns[i].name.clone()).collect();
    Table {
        name: schema.name.clone(),
        width: schema.columns.len(),
        triggers: Vec::new(),
        logged,
        logged_names,
        without_rowid: false,
        fingerprint: Vec::new(),
        keys: RowKeys::default(),
    }
}

impl Table {
    fn wanted_triggers(&self) -> Vec<Trigger> {
        let names: Vec<&str> = self.logged_names.iter().map(String::as_str).collect();
        triggers::table_triggers(&self.name, &names, &self.keys)
    }
}

fn read_keys(conn: &Connection, table: &str, without_rowid: bool) -> Result<RowKeys, SourceError> {
    row_keys(conn, table, without_rowid)
        .map_err(|source| SourceError::Introspect { what: format!("keys of table {table}"), source })
}

/// A read-write connection to an existing, writable database.
pub(crate) fn writable_connection(path: &Path) -> Result<Connection, SourceError> {
    let metadata = std::fs::metadata(path).map_err(|_| SourceError::NotFound { path: path.to_path_buf() })?;
    if !metadata.is_file() {
        return Err(SourceError::NotFound { path: path.to_path_buf() });
    }
    // Checked by hand too: root may open a file without write permission,
    // but a file marked read-only is not ours to change.
    if metadata.permissions().readonly() {
        return Err(SourceError::ReadOnly { path: path.to_path_buf() });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error(path, "opening the database"))?;
    conn.busy_timeout(INSTALL_BUSY_TIMEOUT).map_err(sqlite_error(path, "setting the busy timeout"))?;
    // Opening is lazy: the header is only read by the first statement.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(|source| {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase) {
            SourceError::NotADatabase { path: path.to_path_buf(), source }
        } else {
            sqlite_error(path, "reading the schema")(source)
        }
    })?;
    if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(SourceError::ReadOnly { path: path.to_path_buf() });
    }
    Ok(conn)
}

/// Switches to WAL mode unless the database is in it already (the mode is
/// stored in the file, so this happens once per database).
fn ensure_wal(conn: &Connection, path: &Path) -> Result<(), SourceError> {
    let mode = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, String>(0));
    let current = mode("PRAGMA journal_mode").map_err(sqlite_error(path, "reading the journal mode"))?;
    if current.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let new = mode("PRAGMA journal_mode = WAL").map_err(sqlite_error(path, "switching to WAL mode"))?;
    if !new.eq_ignore_ascii_case("wal") {
        return Err(SourceError::JournalMode { path: path.to_path_buf(), mode: new });
    }
    tracing::info!(path = %path.display(), "switched the database to WAL mode");
    Ok(())
}

/// Installs the triggers in one write transaction after checking the tables
/// still match the catalog; returns the schema version and the log position
/// right after.
/// What [`install`] found and did.
struct Installed {
    schema_version: i64,
    position: Position,
    capture_id: String,
    reinstalled: bool,
    installed_tables: Vec<String>,
    log_created: bool,
}

fn install(
    conn: &mut Connection,
    path: &Path,
    catalog: &Catalog,
    tables: &mut [Table],
) -> Result<Installed, SourceError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error(path, "starting to install the triggers"))?;
    check_catalog(&tx, catalog, tables)?;
    let wanted: Vec<Trigger> = tables.iter().flat_map(|t| t.triggers.iter().cloned()).collect();
    let present = installed_triggers(&tx).map_err(sqlite_error(path, "reading the triggers"))?;
    let log_created = !log_tables_exist(&tx).map_err(sqlite_error(path, "reading the change log"))?;
    let installed_tables: Vec<String> = tables
        .iter()
        .filter(|t| t.triggers.iter().any(|tr| present.get(&tr.name.to_ascii_lowercase()) != Some(&tr.sql)))
        .map(|t| t.name.clone())
        .collect();
    let changed = triggers::sync(&tx, &wanted).map_err(sqlite_error(path, "installing the triggers"))?;
    let version = schema_version(&tx).map_err(sqlite_error(path, "reading the schema version"))?;
    let position = Position(last_seq(&tx).map_err(sqlite_error(path, "reading the change-log position"))?);
    let capture_id = triggers::capture_id(&tx).map_err(sqlite_error(path, "reading the capture id"))?;
    tx.commit().map_err(sqlite_error(path, "committing the triggers"))?;
    if changed {
        tracing::info!(path = %path.display(), tables = tables.len(), "installed change-capture triggers");
    }
    Ok(Installed { schema_version: version, position, capture_id, reinstalled: changed, installed_tables, log_created })
}

/// Why the change log may not hold every change above `at` (its last
/// `seq` is `head`, its first `first`), if it may not.
fn log_gap(at: Position, head: u64, first: Option<u64>) -> Option<String> {
    match first {
        _ if head < at.0 => Some(format!("the change log ends at seq {head}, before seq {} (it was re-created)", at.0)),
        Some(first) if first > at.0 + 1 => {
            Some(format!("the change log starts at seq {first}: changes after seq {} were deleted", at.0))
        }
        None if head > at.0 => {
            Some(format!("the change log is empty up to seq {head}: changes after seq {} were deleted", at.0))
        }
        _ => None,
    }
}

/// Fails with [`SourceError::SchemaChanged`] naming every captured table
/// whose columns or primary key differ from `catalog`; records each table's
/// fingerprint, rowid-ness and keys, and the triggers they call for.
fn check_catalog(conn: &Connection, catalog: &Catalog, tables: &mut [Table]) -> Result<(), SourceError> {
    let mut changed = Vec::new();
    for table in tables.iter_mut() {
        let expected = catalog.get(&table.name).expect("planned tables come from the catalog");
        let Some(without_rowid) = without_rowid(conn, &table.name)? else {
            changed.push(table.name.clone());
            continue;
        };
        let actual = read_table(conn, &table.name, without_rowid)?;
        if actual.columns != expected.columns || actual.primary_key != expected.primary_key {
            changed.push(table.name.clone());
        }
        table.without_rowid = without_rowid;
        table.fingerprint = raw_columns(conn, &table.name)?;
        table.keys = read_keys(conn, &table.name, without_rowid)?;
        if !table.keys.unsupported.is_empty() {
            tracing::warn!(
                table = %table.name,
                indexes = ?table.keys.unsupported,
                "rows that INSERT OR REPLACE / UPDATE OR REPLACE delete for a conflict on these UNIQUE indexes \
                 (over expressions, or partial on a WITHOUT ROWID table) are not captured: views may keep them"
            );
        }
        table.triggers = table.wanted_triggers();
    }
    if changed.is_empty() {
        Ok(())
    } else {
        Err(SourceError::SchemaChanged { tables: changed })
    }
}

/// Whether the table is WITHOUT ROWID; `None` when there is no such table.
fn without_rowid(conn: &Connection, table: &str) -> Result<Option<bool>, SourceError> {
    conn.query_row("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1", [table], |r| r.get(0))
        .optional()
        .map_err(|source| SourceError::Introspect { what: format!("table {table}"), source })
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA schema_version", [], |r| r.get(0))
}

/// The captured tables whose columns or UNIQUE indexes changed or whose
/// triggers are missing or altered, when the schema version moved since `recorded`. A move that
/// leaves them all intact (an unrelated table or index) is accepted and
/// recorded.
fn schema_changes(conn: &Connection, tables: &[Table], recorded: &mut i64) -> Result<Vec<String>, SourceError> {
    let introspect = |source| SourceError::Introspect { what: "the schema version".into(), source };
    let version = schema_version(conn).map_err(introspect)?;
    if version == *recorded {
        return Ok(Vec::new());
    }
    let present = installed_triggers(conn).map_err(introspect)?;
    let log_present = log_tables_exist(conn).map_err(introspect)?;
    let mut changed = Vec::new();
    for table in tables {
        let triggers_intact = table.triggers.iter().all(|t| present.get(&t.name.to_ascii_lowercase()) == Some(&t.sql));
        // A new or dropped UNIQUE index changes which rows a REPLACE deletes.
        let intact = log_present
            && triggers_intact
            && raw_columns(conn, &table.name)? == table.fingerprint
            && read_keys(conn, &table.name, table.without_rowid)? == table.keys;
        if !intact {
            changed.push(table.name.clone());
        }
    }
    if changed.is_empty() {
        *recorded = version;
    }
    Ok(changed)
}

fn estimate_rows(conn: &Connection, table: &Table) -> rusqlite::Result<u64> {
    let sql = if table.without_rowid {
        format!("SELECT count(*) FROM {}", quote_ident(&table.name))
    } else {
        format!("SELECT max(_rowid_) FROM {}", quote_ident(&table.name))
    };
    conn.query_row(&sql, [], |r| {
        Ok(match r.get_ref(0)? {
            ValueRef::Integer(n) => n.max(0) as u64,
            _ => 0,
        })
    })
}

/// Every row of `table` whose `key` columns hold the values (none: every
/// row), full width, the unlogged columns NULL.
fn read_rows(
    conn: &Connection,
    path: &Path,
    table: &Table,
    key: &[(String, Value)],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Row>, SourceError> {
    let columns: Vec<String> = table.logged_names.iter().map(|c| quote_ident(c)).collect();
    let select = if columns.is_empty() { "0".to_string() } else { columns.join(", ") };
    let mut sql = format!("SELECT {select} FROM {}", quote_ident(&table.name));
    let conditions: Vec<String> =
        key.iter().enumerate().map(|(i, (column, _))| format!("{} IS ?{}", quote_ident(column), i + 1)).collect();
    if !conditions.is_empty() {
        sql = format!("{sql} WHERE {}", conditions.join(" AND "));
    }
    let what = || format!("reading table {}", table.name);
    let mut stmt = conn.prepare(&sql).map_err(sqlite_error(path, what()))?;
    let params: Vec<rusqlite::types::Value> = key.iter().map(|(_, value)| super::to_sql_value(value)).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(sqlite_error(path, what()))?;
    let mut packer = RowPacker::new();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sqlite_error(path, what())(e))? {
        let mut next = 0;
        for column in 0..table.width {
            if table.logged.get(next) == Some(&column) {
                let value = row.get_ref(next).map_err(|e| sqlite_error(path, what())(e))?;
                packer.push(&datum(value, table, next)?);
                next += 1;
            } else {
                packer.push(&Datum::Null);
            }
        }
        out.push(packer.finish());
        if out.len() as u64 % PROGRESS_EVERY == 0 {
            progress(out.len() as u64);
        }
    }
    Ok(out)
}

/// A SQLite value as a datum (text and BLOBs borrowed); non-UTF-8 text is
/// an error naming the table and column.
fn datum<'a>(value: ValueRef<'a>, table: &Table, logged: usize) -> Result<Datum<'a>, SourceError> {
    let column = || table.logged_names[logged].clone();
    match value {
        ValueRef::Null => Ok(Datum::Null),
        ValueRef::Integer(i) => Ok(Datum::Int(i)),
        ValueRef::Real(f) => Ok(Datum::Float(f)),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(|s| Datum::Text(Cow::Borrowed(s)))
            .map_err(|_| SourceError::InvalidText { table: table.name.clone(), column: column() }),
        ValueRef::Blob(bytes) => Ok(Datum::Blob(Cow::Borrowed(bytes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::{ColumnSchema, ScalarType};

    fn schema(name: &str, columns: &[&str]) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: columns
                .iter()
                .map(|c| ColumnSchema { name: c.to_string(), ty: ScalarType::Int, nullable: true })
                .collect(),
            primary_key: vec![0],
            unique_keys: vec![],
        }
    }

    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        catalog.add(schema("users", &["id", "name", "email"]));
        catalog.add(schema("posts", &["id", "body"]));
        catalog
    }

    #[test]
    fn plan_merges_orders_and_validates_columns() {
        let spec = CaptureSpec {
            tables: vec![
                CapturedTable::new("USERS", ["email", "id"]),
                CapturedTable::new("users", ["ID"]),
                CapturedTable::all("posts"),
            ],
        };
        let tables = plan_tables(&catalog(), &spec).unwrap();
        let got: Vec<(&str, &[usize])> = tables.iter().map(|t| (t.name.as_str(), t.logged.as_slice())).collect();
        assert_eq!(got, vec![("posts", &[0, 1][..]), ("users", &[0, 2][..])]);
        assert_eq!(tables[1].logged_names, vec!["id", "email"]);

        let unknown = CaptureSpec { tables: vec![CapturedTable::new("nope", ["id"])] };
        assert!(
            matches!(plan_tables(&catalog(), &unknown), Err(SourceError::UnknownTable { table }) if table == "nope")
        );
        let bad_column = CaptureSpec { tables: vec![CapturedTable::new("users", ["age"])] };
        assert!(matches!(
            plan_tables(&catalog(), &bad_column),
            Err(SourceError::UnknownColumn { table, column }) if table == "users" && column == "age"
        ));
    }
}
