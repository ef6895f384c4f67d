//! The state directory (`[engine] state_dir`): the captured input rows, kept
//! durably so that a restart resumes from the source position they are at
//! instead of reading every captured table again.
//!
//! ```text
//!  <config stem>.state/state.redb            (one redb file, one writer: this process)
//!   meta     "format"   → u32     FORMAT (this module's version of the layout)
//!            "identity" → text    the source: SQLite path + the id its capture stores,
//!                                 PostgreSQL system_identifier + slot name
//!            "shape"    → text    per captured table: its columns and types, the captured ones
//!            "position" → u64     every change at or below it is in the rows, none above
//!            "sum/<t>"  → u64     multiset checksum of table t's rows (see `row_hash`)
//!   rows/<t>  packed row bytes → count   (a multiset: tables need no primary key)
//!   dlq       id → JSON of a dead-letter entry (format 2; absent in format 1,
//!             read as empty)
//!
//!  Formats 1 and 2 (every double in the row encoding's tag 7) are migrated
//!  when opened: their rows re-packed in place, the change log dropped
//!  (`migrate.rs`).
//!   log       seq → the rows' changes since the last checkpoint (see [`log`];
//!             with meta "log_seq", "log_start"; absent: an empty log)
//! ```
//!
//! **What is kept: the captured input rows, not the operators' state.** Every
//! view is a function of them, so a restart replays them into the dataflow
//! as its snapshot (no source read), a changed view definition needs only
//! them, and a TRUNCATE is a retraction of the stored rows. The cost is the
//! dataflow's build time at each start (measured in BENCHMARKS.md), unless
//! the checkpoint beside this file (the operators' state, written at
//! SIGTERM: `engine/checkpoint.rs`) was taken of exactly these rows; that
//! start opens this file with [`StateDir::open_without_rows`].
//!
//! **Why redb.** One file, ACID transactions, copy-on-write B-trees with
//! checksummed commit slots, a stable and versioned file format, pure Rust,
//! and exactly the durability split the engine needs: each batch commits
//! with [`Durability::None`] (no fsync; lost on a crash, never torn), and a
//! [`Durability::Immediate`] commit every `DURABLE_EVERY` persists every
//! commit before it. fjall (an LSM with a journal) writes faster but needs
//! compaction threads and a directory of files; the engine's write rate is
//! bounded by the source's, where redb's single writer is not the limit.
//! Durable commits use redb's *quick repair* (the allocator state is saved
//! with the commit, two-phase): reopening after a `kill -9` does not walk
//! the whole file (at 10M rows that walk took longer than the restart
//! itself; BENCHMARKS.md). Row contents are verified by this module's own
//! checksums at every load instead.
//!
//! # Invariants
//!
//! * **One atomic write per batch**: a batch's row changes and its end
//!   position commit together, so the stored rows always equal the source's
//!   captured tables at the stored position.
//! * **The source is released only up to [`StateDir::durable`]** (the
//!   position of the last fsynced commit): after a crash the directory
//!   reopens at that position or later, and the source still holds every
//!   change above it. That makes a `kill -9` anywhere exactly-once.
//! * **Anything unexpected rebuilds**: a format or identity mismatch, a
//!   changed capture spec, a redb error, a checksum that does not match the
//!   rows read, is logged with the reason; the directory is emptied and the
//!   engine snapshots the source again. Another process holding the file is
//!   not that: it is an error (two engines on one directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use denorm_serve::dlq::DeadLetter;
use denorm_source::CaptureSpec;
use denorm_types::{Catalog, Diff, Position, Row, RowRef};
use redb::{Database, DatabaseError, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle};

mod log;
mod migrate;
pub use log::LoggedChanges;

/// The layout's version: bump it when the meaning of any key or value
/// changes, and keep `tests/fixtures/state-v1` opening (see the tests).
/// Format 2 added the `dlq` table (absent in format 1: no dead letters);
/// format 3 the rows' short decimal doubles: directories of formats 1 and
/// 2 have their rows re-packed in place when opened ([`migrate`]).
pub const FORMAT: u32 = 3;
/// The formats this module reads (older ones once migrated to it).
const READS: [u32; 1] = [FORMAT];
/// The dead-letter queue: id → JSON of a [`DeadLetter`].
const DLQ: TableDefinition<u64, &[u8]> = TableDefinition::new("dlq");
/// The state file inside the directory.
const FILE: &str = "state.redb";
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why the state directory cannot be used (beyond "rebuild": these stop
/// the engine or the write).
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state directory {} is in use by another process\n  hint: two denorm processes cannot share a state \
         directory; stop the other one or set [engine] state_dir",
        dir.display()
    )]
    InUse { dir: PathBuf },
    #[error("cannot use state directory {}: {what}", dir.display())]
    Io {
        dir: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("state directory {}: {what}", dir.display())]
    Store {
        dir: PathBuf,
        what: String,
        #[source]
        source: Box<redb::Error>,
    },
}

/// Per table, its rows with a multiplicity (stored) or a diff (changes).
pub type TableChanges = Vec<(String, Vec<(Row, Diff)>)>;

/// What the directory held for this source and spec.
#[derive(Debug, Default, PartialEq)]
pub struct Stored {
    pub position: Position,
    /// Per captured table (spec order), its rows and their multiplicities.
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
}

impl Stored {
    pub fn rows(&self) -> usize {
        self.tables.iter().map(|(_, rows)| rows.len()).sum()
    }
}

/// An open state directory: see the module documentation.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    db: Database,
    /// Retractions of rows the input did not hold, found by the last
    /// [`StateDir::apply`]: `(table, row, how many too many)`.
    absent: Vec<(String, Row, Diff)>,
    /// Per stored table, its running multiset checksum.
    sums: BTreeMap<String, u64>,
    position: Position,
    durable: Position,
    /// Commits since the last durable one.
    pending: bool,
    /// The change log ([`log`]): the last sequence number given out, the
    /// one after which every change is logged, and whether batches log.
    log_seq: u64,
    log_start: u64,
    logging: bool,
}

/// The outcome of [`StateDir::open`].
#[derive(Debug)]
pub enum Opened {
    /// Valid for this source and spec: the rows at the stored position.
    Resume(StateDir, Stored),
    /// Empty (new, or emptied for `reason`): [`StateDir::reset`] it with a
    /// snapshot.
    Rebuild(StateDir, String),
    /// For this source, but the captured tables changed (added, dropped,
    /// recreated with other columns): the stored rows of the tables whose
    /// shape is unchanged, at the stored position. The others must be read
    /// from the source ([`crate::engine::partial`]), then
    /// [`StateDir::reshape`]d in; or [`StateDir::reset`] with a snapshot.
    Reshape(StateDir, Stored),
}

impl Opened {
    /// The directory, whatever it opened as.
    pub fn state(&self) -> &StateDir {
        match self {
            Opened::Resume(state, _) | Opened::Rebuild(state, _) | Opened::Reshape(state, _) => state,
        }
    }
}

impl StateDir {
    /// Opens (creating it when missing) the state directory `dir` for the
    /// source `identity` capturing `spec`, and reads what it holds. A
    /// directory that does not match or fails a check is logged, emptied
    /// and returned as [`Opened::Rebuild`].
    pub fn open(dir: &Path, identity: &str, shape: &str) -> Result<Opened, StateError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir, "creating it"))?;
        let loaded = std::panic::catch_unwind(|| load(dir, identity, shape));
        let reason = match loaded {
            Ok(Ok(Loaded::Valid(state, stored))) => return Ok(Opened::Resume(state, stored)),
            Ok(Ok(Loaded::Reshape(state, stored))) => return Ok(Opened::Reshape(state, stored)),
            Ok(Ok(Loaded::Empty(state))) => return Ok(Opened::Rebuild(state, "the state directory is new".into())),
            Ok(Ok(Loaded::Invalid(reason))) => reason,
            Ok(Err(e @ StateError::InUse { .. })) => return Err(e),
            Ok(Err(e)) => crate::engine::error_chain(&e),
            Err(_) => "reading it panicked (a corrupt file)".to_string(),
        };
        tracing::warn!(dir = %dir.display(), %reason, "state directory unusable; it is emptied and rebuilt from a snapshot of the source");
        let file = dir.join(FILE);
        // The dead-letter queue outlives a rebuild (a schema change of a
        // captured table is one) when it can still be read.
        let kept = std::panic::catch_unwind(|| builder().open(&file).ok().and_then(|db| read_dead_letters(&db).ok()))
            .ok()
            .flatten()
            .unwrap_or_default();
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StateError::Io {
                    dir: dir.into(),
                    what: "removing the unusable state file".into(),
                    source: e,
                })
            }
            _ => {}
        }
        let db = create(dir)?;
        let mut state = StateDir::new(dir, db);
        for letter in &kept {
            state.put_dead_letter(letter)?;
        }
        Ok(Opened::Rebuild(state, reason))
    }

    /// Opens the directory as [`StateDir::open`] does but reads no rows:
    /// the stored checksums are taken as they are (the rows are not
    /// verified against them). `None` when it is not valid for `identity`
    /// and `shape` (nothing is changed then: [`StateDir::open`] it). For a
    /// restart from a checkpoint of the same rows (`engine/checkpoint.rs`).
    pub fn open_without_rows(dir: &Path, identity: &str, shape: &str) -> Result<Option<StateDir>, StateError> {
        match std::panic::catch_unwind(|| load_checked(dir, identity, shape, false)) {
            Ok(Ok(Loaded::Valid(state, _))) => Ok(Some(state)),
            Ok(Err(e @ StateError::InUse { .. })) => Err(e),
            _ => Ok(None),
        }
    }

    /// Per stored table, its multiset checksum (see [`row_hash`]).
    pub fn sums(&self) -> &BTreeMap<String, u64> {
        &self.sums
    }

    fn new(dir: &Path, db: Database) -> StateDir {
        StateDir {
            dir: dir.to_path_buf(),
            db,
            absent: Vec::new(),
            sums: BTreeMap::new(),
            position: Position(0),
            durable: Position(0),
            pending: false,
            log_seq: 0,
            log_start: 0,
            logging: true,
        }
    }

    /// Replaces everything with `tables` (a snapshot of the source at
    /// `position`: rows with their multiplicities, repeats allowed) for
    /// `identity` and `shape`, durably. Each table's rows are dropped once
    /// written: the snapshot shrinks while redb's write grows.
    pub fn reset(
        &mut self,
        identity: &str,
        shape: &str,
        position: Position,
        tables: Vec<(String, Vec<(Row, Diff)>)>,
    ) -> Result<(), StateError> {
        let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "starting the snapshot write"))?;
        tx.set_quick_repair(true);
        let names: Vec<String> =
            tx.list_tables().map_err(store_error(&self.dir, "listing tables"))?.map(|t| t.name().to_string()).collect();
        for name in names.into_iter().filter(|n| n != DLQ.name()) {
            tx.delete_table(TableDefinition::<&[u8], u64>::new(&name))
                .map_err(store_error(&self.dir, "emptying the state"))?;
        }
        let mut sums = BTreeMap::new();
        for (table, mut rows) in tables {
            // Sorted runs insert fastest into the B-tree; equal rows merge.
            // Sorted in place: no second vector of the table's rows.
            rows.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let name = rows_table(&table);
            let mut t = tx
                .open_table(TableDefinition::<&[u8], u64>::new(&name))
                .map_err(store_error(&self.dir, "writing rows"))?;
            let mut sum = 0u64;
            let mut rest = &rows[..];
            while let Some((first, _)) = rest.first() {
                let bytes = first.as_bytes();
                let equal = rest.iter().take_while(|(row, _)| row.as_bytes() == bytes).count();
                let count = rest[..equal].iter().fold(0u64, |count, (_, n)| count.wrapping_add(*n as u64));
                rest = &rest[equal..];
                if (1..=Diff::MAX as u64).contains(&count) {
                    sum = sum.wrapping_add(row_hash(bytes).wrapping_mul(count));
                    t.insert(bytes, count).map_err(store_error(&self.dir, "writing rows"))?;
                }
            }
            drop(t);
            sums.insert(table, sum);
        }
        {
            let mut meta = tx.open_table(META).map_err(store_error(&self.dir, "writing the metadata"))?;
            let mut put = |key: &str, value: &[u8]| meta.insert(key, value).map(drop);
            put("format", &FORMAT.to_le_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            put("identity", identity.as_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            put("shape", shape.as_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            put("position", &position.0.to_le_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            for (table, sum) in &sums {
                put(&sum_key(table), &sum.to_le_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            }
            // The rows changed without a log entry: no checkpoint before
            // this applies.
            log::write_meta(&mut meta, self.log_seq + 1, self.log_seq + 1)
                .map_err(store_error(&self.dir, "writing the metadata"))?;
        }
        tx.commit().map_err(store_error(&self.dir, "committing the snapshot"))?;
        self.log_seq += 1;
        self.log_start = self.log_seq;
        self.sums = sums;
        self.position = position;
        self.durable = position;
        self.pending = false;
        Ok(())
    }

    /// Takes the shape `shape` at `position`: the stored tables not kept
    /// (`kept`: those still valid) are emptied, `fresh` tables (read from
    /// the source at `position`) written; one commit, not yet durable.
    pub fn reshape(
        &mut self,
        shape: &str,
        kept: &[String],
        position: Position,
        fresh: &[(String, Vec<Row>)],
    ) -> Result<(), StateError> {
        let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "starting a reshape"))?;
        tx.set_durability(Durability::None);
        let keep: Vec<String> = kept.iter().map(|t| rows_table(t)).collect();
        let names: Vec<String> =
            tx.list_tables().map_err(store_error(&self.dir, "listing tables"))?.map(|t| t.name().to_string()).collect();
        for name in names.iter().filter(|n| n.starts_with("rows/") && !keep.contains(n)) {
            tx.delete_table(TableDefinition::<&[u8], u64>::new(name)).map_err(store_error(&self.dir, "reshaping"))?;
        }
        self.sums.retain(|table, _| kept.contains(table));
        for (table, rows) in fresh {
            let mut t = tx
                .open_table(TableDefinition::<&[u8], u64>::new(&rows_table(table)))
                .map_err(store_error(&self.dir, "writing rows"))?;
            let mut sum = 0u64;
            for row in rows {
                let bytes = row.as_bytes();
                let old = t.get(bytes).map_err(store_error(&self.dir, "reading rows"))?.map_or(0, |c| c.value());
                t.insert(bytes, old + 1).map_err(store_error(&self.dir, "writing rows"))?;
                sum = sum.wrapping_add(row_hash(bytes));
            }
            self.sums.insert(table.clone(), sum);
        }
        {
            let mut meta = tx.open_table(META).map_err(store_error(&self.dir, "writing the metadata"))?;
            let names: Vec<String> = meta
                .iter()
                .map_err(store_error(&self.dir, "reading the metadata"))?
                .filter_map(|e| e.ok().map(|(k, _)| k.value().to_string()))
                .filter(|k| k.starts_with("sum/"))
                .collect();
            for key in names {
                meta.remove(key.as_str()).map_err(store_error(&self.dir, "writing the metadata"))?;
            }
            let mut put = |key: &str, value: &[u8]| meta.insert(key, value).map(drop);
            put("shape", shape.as_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            put("position", &position.0.to_le_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            for (table, sum) in &self.sums {
                put(&sum_key(table), &sum.to_le_bytes()).map_err(store_error(&self.dir, "writing the metadata"))?;
            }
            log::write_meta(&mut meta, self.log_seq + 1, self.log_seq + 1)
                .map_err(store_error(&self.dir, "writing the metadata"))?;
        }
        tx.delete_table(log::LOG).map_err(store_error(&self.dir, "reshaping"))?;
        tx.commit().map_err(store_error(&self.dir, "committing a reshape"))?;
        self.log_seq += 1;
        self.log_start = self.log_seq;
        self.position = position;
        self.pending = true;
        Ok(())
    }

    /// Applies one batch: `truncated` tables are emptied first (their rows
    /// are returned, to be retracted from the views), then `tables`'
    /// changes, and the position moves to `position`; one commit, not yet
    /// durable (see [`make_durable`](Self::make_durable)).
    pub fn apply(
        &mut self,
        position: Position,
        truncated: &[String],
        tables: &[(String, Vec<(Row, Diff)>)],
    ) -> Result<TableChanges, StateError> {
        let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "starting a batch write"))?;
        tx.set_durability(Durability::None);
        let mut retracted = Vec::new();
        let mut entry = log::Entry::new(position);
        for table in truncated {
            let name = rows_table(table);
            let mut t = tx
                .open_table(TableDefinition::<&[u8], u64>::new(&name))
                .map_err(store_error(&self.dir, "truncating"))?;
            let mut rows = Vec::new();
            entry.table(table);
            for stored in t.iter().map_err(store_error(&self.dir, "truncating"))? {
                let (row, count) = stored.map_err(store_error(&self.dir, "truncating"))?;
                entry.change(row.value(), -(count.value() as Diff));
                rows.push((stored_row(row.value()), -(count.value() as Diff)));
            }
            t.retain(|_, _| false).map_err(store_error(&self.dir, "truncating"))?;
            self.sums.insert(table.clone(), 0);
            retracted.push((table.clone(), rows));
        }
        for (table, changes) in tables {
            let name = rows_table(table);
            let mut t = tx
                .open_table(TableDefinition::<&[u8], u64>::new(&name))
                .map_err(store_error(&self.dir, "writing rows"))?;
            let sum = self.sums.entry(table.clone()).or_default();
            entry.table(table);
            for (row, diff) in changes {
                let bytes = row.as_bytes();
                let old = t.get(bytes).map_err(store_error(&self.dir, "reading rows"))?.map_or(0, |c| c.value());
                // A retraction of a row the store does not hold (a forged log
                // row) keeps the count at 0 and is reported (`take_absent`):
                // the engine keeps it out of the views (dead-letter queue).
                let wanted = old as i128 + *diff as i128;
                if wanted < 0 {
                    self.absent.push((table.clone(), row.clone(), (-wanted).min(Diff::MAX as i128) as Diff));
                }
                let new = wanted.max(0) as u64;
                entry.change(bytes, new.wrapping_sub(old) as Diff);
                *sum = sum.wrapping_add(row_hash(bytes).wrapping_mul(new.wrapping_sub(old)));
                if new == 0 {
                    t.remove(bytes).map_err(store_error(&self.dir, "writing rows"))?;
                } else {
                    t.insert(bytes, new).map_err(store_error(&self.dir, "writing rows"))?;
                }
            }
        }
        {
            let mut meta = tx.open_table(META).map_err(store_error(&self.dir, "writing the metadata"))?;
            let touched = truncated.iter().chain(tables.iter().map(|(t, _)| t));
            for table in touched {
                let sum = self.sums.get(table).copied().unwrap_or(0);
                meta.insert(sum_key(table).as_str(), sum.to_le_bytes().as_slice())
                    .map_err(store_error(&self.dir, "writing the metadata"))?;
            }
            meta.insert("position", position.0.to_le_bytes().as_slice())
                .map_err(store_error(&self.dir, "writing the metadata"))?;
            if let Some(bytes) = entry.finish() {
                let seq = self.log_seq + 1;
                let start = if self.logging {
                    let mut log = tx.open_table(log::LOG).map_err(store_error(&self.dir, "writing the change log"))?;
                    log.insert(seq, bytes.as_slice()).map_err(store_error(&self.dir, "writing the change log"))?;
                    self.log_start
                } else {
                    seq
                };
                log::write_meta(&mut meta, seq, start).map_err(store_error(&self.dir, "writing the metadata"))?;
                self.log_seq = seq;
                self.log_start = start;
            }
        }
        tx.commit().map_err(store_error(&self.dir, "committing a batch"))?;
        self.position = position;
        self.pending = true;
        Ok(retracted)
    }

    /// The retractions of rows the stored input did not hold, found by the
    /// batches applied since the last call: `(table, row, excess)`. The
    /// stored rows never count them (counts stop at 0); the caller must
    /// keep them out of the views (a forged or replayed delete).
    pub fn take_absent(&mut self) -> Vec<(String, Row, Diff)> {
        std::mem::take(&mut self.absent)
    }

    /// The dead-letter entries kept (empty for a format-1 directory).
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, String> {
        read_dead_letters(&self.db)
    }

    /// Keeps `letter` (made durable with the next durable commit).
    pub fn put_dead_letter(&mut self, letter: &DeadLetter) -> Result<(), StateError> {
        let json = serde_json::to_vec(letter).unwrap_or_default();
        self.dlq_write(|t| t.insert(letter.id, json.as_slice()).map(drop))
    }

    /// Forgets the entry `id`.
    pub fn remove_dead_letter(&mut self, id: u64) -> Result<(), StateError> {
        self.dlq_write(|t| t.remove(id).map(drop))
    }

    fn dlq_write(
        &mut self,
        write: impl FnOnce(&mut redb::Table<'_, u64, &'static [u8]>) -> Result<(), redb::StorageError>,
    ) -> Result<(), StateError> {
        let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "starting a dead-letter write"))?;
        tx.set_durability(Durability::None);
        {
            let mut t = tx.open_table(DLQ).map_err(store_error(&self.dir, "writing the dead-letter queue"))?;
            write(&mut t).map_err(store_error(&self.dir, "writing the dead-letter queue"))?;
        }
        tx.commit().map_err(store_error(&self.dir, "committing the dead-letter queue"))?;
        self.pending = true;
        Ok(())
    }

    /// Moves the stored position to `position` with no row change (the
    /// source reported nothing captured up to it).
    pub fn advance(&mut self, position: Position) -> Result<(), StateError> {
        if position <= self.position {
            return Ok(());
        }
        self.apply(position, &[], &[]).map(drop)
    }

    /// Persists every commit so far (fsync) when there is any; returns the
    /// durable position, up to which the source may be released.
    pub fn make_durable(&mut self) -> Result<Position, StateError> {
        if self.pending {
            let mut tx = self.db.begin_write().map_err(store_error(&self.dir, "starting a durable commit"))?;
            tx.set_durability(Durability::Immediate);
            tx.set_quick_repair(true);
            tx.commit().map_err(store_error(&self.dir, "committing durably"))?;
            self.pending = false;
            self.durable = self.position;
        }
        Ok(self.durable)
    }

    /// The position of the last durable commit.
    pub fn durable(&self) -> Position {
        self.durable
    }

    /// The position of the last commit.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Rewrites the file without its free pages (commits without fsync
    /// leave pages that only a durable commit frees); the file shrinks.
    pub fn compact(&mut self) -> Result<(), StateError> {
        self.make_durable()?;
        self.db.compact().map_err(store_error(&self.dir, "compacting"))?;
        Ok(())
    }

    /// The rows stored for `tables` at the current position (a read
    /// transaction beside the writer): a live reload builds added views from
    /// them, and a heal trial computes a failed view on them, without
    /// reading the source.
    pub fn rows_of(&self, tables: &[String]) -> Result<Stored, StateError> {
        let tx = self.db.begin_read().map_err(store_error(&self.dir, "reading rows"))?;
        let mut stored = Stored { position: self.position, tables: Vec::with_capacity(tables.len()) };
        for table in tables {
            let rows = read_rows(&tx, table).map_err(|what| StateError::Io {
                dir: self.dir.clone(),
                what: what.clone(),
                source: std::io::Error::other(what),
            })?;
            stored.tables.push((table.clone(), rows));
        }
        Ok(stored)
    }

    /// The state file's size in bytes.
    pub fn file_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.join(FILE)).map_or(0, |m| m.len())
    }
}

/// The dead-letter queue of a state directory no process holds, for
/// `denorm dlq` while `denorm run` is stopped.
#[derive(Debug)]
pub struct DeadLetterFile {
    dir: PathBuf,
    db: Option<Database>,
}

impl DeadLetterFile {
    /// Opens the directory's file ([`StateError::InUse`] while a running
    /// denorm holds it); a directory without one has an empty queue.
    pub fn open(dir: &Path) -> Result<DeadLetterFile, StateError> {
        let file = dir.join(FILE);
        if !file.exists() {
            return Ok(DeadLetterFile { dir: dir.into(), db: None });
        }
        match builder().open(&file) {
            Ok(db) => Ok(DeadLetterFile { dir: dir.into(), db: Some(db) }),
            Err(DatabaseError::DatabaseAlreadyOpen) => Err(StateError::InUse { dir: dir.into() }),
            Err(e) => Err(StateError::Store {
                dir: dir.into(),
                what: "opening the state file".into(),
                source: Box::new(e.into()),
            }),
        }
    }

    /// The entries, oldest first.
    pub fn list(&self) -> Result<Vec<DeadLetter>, StateError> {
        let Some(db) = &self.db else { return Ok(Vec::new()) };
        read_dead_letters(db).map_err(|what| StateError::Io {
            dir: self.dir.clone(),
            what,
            source: std::io::Error::other("the dead-letter queue is unreadable"),
        })
    }

    /// Removes the entries `ids` (one durable commit); the ids that had
    /// no entry.
    pub fn remove(&mut self, ids: &[u64]) -> Result<Vec<u64>, StateError> {
        let Some(db) = &self.db else { return Ok(ids.to_vec()) };
        let mut tx = db.begin_write().map_err(store_error(&self.dir, "starting a dead-letter write"))?;
        tx.set_quick_repair(true);
        let mut missing = Vec::new();
        {
            let mut t = tx.open_table(DLQ).map_err(store_error(&self.dir, "writing the dead-letter queue"))?;
            for &id in ids {
                if t.remove(id).map_err(store_error(&self.dir, "writing the dead-letter queue"))?.is_none() {
                    missing.push(id);
                }
            }
        }
        tx.commit().map_err(store_error(&self.dir, "committing the dead-letter queue"))?;
        Ok(missing)
    }
}

/// The dead-letter entries in `db` (none for a format-1 file).
fn read_dead_letters(db: &Database) -> Result<Vec<DeadLetter>, String> {
    let tx = db.begin_read().map_err(|e| format!("cannot read the state directory: {e}"))?;
    let t = match tx.open_table(DLQ) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read the dead-letter queue: {e}")),
    };
    let mut out = Vec::new();
    for entry in t.iter().map_err(|e| format!("cannot read the dead-letter queue: {e}"))? {
        let (_, value) = entry.map_err(|e| format!("cannot read the dead-letter queue: {e}"))?;
        match serde_json::from_slice::<DeadLetter>(value.value()) {
            Ok(letter) => out.push(letter),
            Err(e) => tracing::warn!(error = %e, "a dead-letter entry cannot be read; it is skipped"),
        }
    }
    Ok(out)
}

enum Loaded {
    Valid(StateDir, Stored),
    Reshape(StateDir, Stored),
    Empty(StateDir),
    Invalid(String),
}

/// Opens the file and reads everything, checking format, identity, spec
/// and checksums.
fn load(dir: &Path, identity: &str, shape: &str) -> Result<Loaded, StateError> {
    load_checked(dir, identity, shape, true)
}

/// [`load`], reading and checking the rows only when `rows` is set (else
/// the stored checksums are kept as they are and no rows are returned).
fn load_checked(dir: &Path, identity: &str, shape: &str, rows: bool) -> Result<Loaded, StateError> {
    let file = dir.join(FILE);
    let existed = file.exists();
    let db = match builder().create(&file) {
        Ok(db) => db,
        Err(DatabaseError::DatabaseAlreadyOpen) => return Err(StateError::InUse { dir: dir.into() }),
        Err(e) => return Ok(Loaded::Invalid(format!("cannot open {}: {e}", file.display()))),
    };
    let mut state = StateDir::new(dir, db);
    if let Err(reason) = migrate::repack_old_rows(&state.db, identity, rows) {
        return Ok(Loaded::Invalid(reason));
    }
    let tx = match state.db.begin_read() {
        Ok(tx) => tx,
        Err(e) => return Ok(Loaded::Invalid(format!("cannot read it: {e}"))),
    };
    let meta = match tx.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) if !existed => {
            drop(tx);
            return Ok(Loaded::Empty(state));
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Ok(Loaded::Invalid("it holds no metadata (an interrupted first snapshot)".into()))
        }
        Err(e) => return Ok(Loaded::Invalid(format!("cannot read its metadata: {e}"))),
    };
    let get = |key: &str| -> Result<Option<Vec<u8>>, String> {
        meta.get(key).map(|v| v.map(|v| v.value().to_vec())).map_err(|e| format!("cannot read {key}: {e}"))
    };
    let check = || -> Result<(Position, Option<String>), String> {
        let format = get("format")?.and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        if !format.is_some_and(|f| READS.contains(&f)) {
            return Err(format!("its format is {format:?}, this denorm reads {READS:?}"));
        }
        let stored = get("identity")?.unwrap_or_default();
        if stored != identity.as_bytes() {
            return Err(format!("it belongs to another source ({}), not {identity}", String::from_utf8_lossy(&stored)));
        }
        // Another shape: the tables whose line is unchanged stay usable
        // (see `Opened::Reshape`).
        let stored = String::from_utf8_lossy(&get("shape")?.unwrap_or_default()).into_owned();
        let reshaped = (stored != shape).then_some(stored);
        let position = get("position")?.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        position.map(|p| (Position(p), reshaped)).ok_or_else(|| "it holds no position".to_string())
    };
    let (position, reshaped) = match check() {
        Ok(checked) => checked,
        Err(reason) => return Ok(Loaded::Invalid(reason)),
    };
    let kept: Vec<&str> = match &reshaped {
        None => tables_of(shape).collect(),
        Some(stored) => crate::engine::partial::unchanged_tables(stored, shape),
    };
    let mut stored = Stored { position, tables: Vec::new() };
    for name in kept {
        let expected = match get(&sum_key(name)) {
            Ok(sum) => sum.and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(0),
            Err(reason) => return Ok(Loaded::Invalid(reason)),
        };
        if !rows {
            state.sums.insert(name.to_string(), expected);
            continue;
        }
        let rows = match read_rows(&tx, name) {
            Ok(rows) => rows,
            Err(reason) => return Ok(Loaded::Invalid(reason)),
        };
        let sum =
            rows.iter().fold(0u64, |s, (row, n)| s.wrapping_add(row_hash(row.as_bytes()).wrapping_mul(*n as u64)));
        if sum != expected {
            return Ok(Loaded::Invalid(format!(
                "the rows of table {} fail their checksum ({sum:#x}, stored {expected:#x})",
                name
            )));
        }
        state.sums.insert(name.to_string(), sum);
        stored.tables.push((name.to_string(), rows));
    }
    (state.log_seq, state.log_start) = log::read_meta(&meta);
    drop(meta);
    drop(tx);
    state.position = position;
    state.durable = position;
    match reshaped {
        None => Ok(Loaded::Valid(state, stored)),
        Some(_) => Ok(Loaded::Reshape(state, stored)),
    }
}

fn read_rows(tx: &redb::ReadTransaction, table: &str) -> Result<Vec<(Row, Diff)>, String> {
    let name = rows_table(table);
    let t = match tx.open_table(TableDefinition::<&[u8], u64>::new(&name)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read table {table}: {e}")),
    };
    let mut rows = Vec::with_capacity(t.len().unwrap_or(0) as usize);
    for entry in t.iter().map_err(|e| format!("cannot read table {table}: {e}"))? {
        let (row, count) = entry.map_err(|e| format!("cannot read table {table}: {e}"))?;
        let count = count.value();
        if count == 0 || count > Diff::MAX as u64 {
            return Err(format!("table {table} holds a row with count {count}"));
        }
        rows.push((stored_row(row.value()), count as Diff));
    }
    Ok(rows)
}

/// redb's page cache for the state directory. redb's default (1 GiB)
/// keeps every page the snapshot wrote resident: at TPC-H SF 0.05 the
/// process grew by 113 MB (1.7× the source file) once the snapshot was
/// written (`cargo bench -p denorm --bench tpch_run`). The directory is
/// written as a log and read whole only at a restart, so a small cache
/// costs neither path anything measurable.
const CACHE_BYTES: usize = 16 << 20;

/// How every handle on the state file is opened (see [`CACHE_BYTES`]).
fn builder() -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(CACHE_BYTES);
    builder
}

fn create(dir: &Path) -> Result<Database, StateError> {
    match builder().create(dir.join(FILE)) {
        Ok(db) => Ok(db),
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(StateError::InUse { dir: dir.into() }),
        Err(e) => Err(StateError::Store {
            dir: dir.into(),
            what: "creating the state file".into(),
            source: Box::new(e.into()),
        }),
    }
}

fn store_error<E: Into<redb::Error>>(dir: &Path, what: &str) -> impl FnOnce(E) -> StateError {
    let dir = dir.to_path_buf();
    let what = what.to_string();
    move |e| StateError::Store { dir, what, source: Box::new(e.into()) }
}

fn io_error(dir: &Path, what: &str) -> impl FnOnce(std::io::Error) -> StateError {
    let dir = dir.to_path_buf();
    let what = what.to_string();
    move |source| StateError::Io { dir, what, source }
}

/// A row as stored: its packed bytes (checked by the table's checksum
/// before any is decoded).
fn stored_row(bytes: &[u8]) -> Row {
    RowRef::from_prefix(bytes, bytes.len()).to_row()
}

fn rows_table(table: &str) -> String {
    format!("rows/{table}")
}

fn sum_key(table: &str) -> String {
    format!("sum/{table}")
}

/// What the stored rows depend on besides the source's identity: per
/// captured table (one line each, in `spec` order) its name, every column
/// with its type and nullability (a row is full table width), the primary
/// key, and the columns captured (the others are NULL in every row).
/// Rows stored under another shape cannot be used.
pub fn shape(catalog: &Catalog, spec: &CaptureSpec) -> String {
    let lines: Vec<String> = spec
        .tables
        .iter()
        .map(|t| {
            let columns: Vec<String> = catalog.get(&t.name).map_or_else(Vec::new, |schema| {
                schema
                    .columns
                    .iter()
                    .map(|c| format!("{} {}{}", c.name, c.ty, if c.nullable { "" } else { " not null" }))
                    .collect()
            });
            let key = catalog.get(&t.name).map_or_else(Vec::new, |schema| schema.primary_key.clone());
            format!("{}\t{}\tkey {:?}\tcaptured {}", t.name, columns.join(", "), key, t.columns.join(", "))
        })
        .collect();
    lines.join("\n")
}

/// The table names of a [`shape`].
fn tables_of(shape: &str) -> impl Iterator<Item = &str> {
    shape.lines().filter_map(|line| line.split('\t').next()).filter(|name| !name.is_empty())
}

/// A row's contribution to its table's multiset checksum (the sum over
/// rows of hash × count, wrapping): FNV-1a over the bytes, then
/// SplitMix64's finalizer. Fixed forever (part of [`FORMAT`]).
pub fn row_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_source::CapturedTable;
    use denorm_types::{ColumnSchema, Datum, ScalarType, TableSchema};

    fn spec(columns: &[&str]) -> String {
        let catalog = {
            let mut catalog = Catalog::new();
            catalog.add(TableSchema {
                name: "t".into(),
                columns: ["id", "name", "email"]
                    .map(|name| ColumnSchema { name: name.into(), ty: ScalarType::Text, nullable: true })
                    .to_vec(),
                primary_key: vec![],
                unique_keys: vec![],
            });
            catalog
        };
        shape(&catalog, &CaptureSpec { tables: vec![CapturedTable::new("t", columns.iter().copied())] })
    }

    fn row(id: i64, name: &str) -> Row {
        Row::pack([Datum::Int(id), Datum::text(name)])
    }

    fn ones(rows: Vec<Row>) -> Vec<(Row, Diff)> {
        rows.into_iter().map(|r| (r, 1)).collect()
    }

    fn sorted(mut rows: Vec<(Row, Diff)>) -> Vec<(Row, Diff)> {
        rows.sort();
        rows
    }

    fn resume(dir: &Path, identity: &str, spec: &str) -> (StateDir, Stored) {
        match StateDir::open(dir, identity, spec).unwrap() {
            Opened::Resume(state, stored) => (state, stored),
            Opened::Rebuild(_, reason) => panic!("expected to resume, rebuilt: {reason}"),
            Opened::Reshape(..) => panic!("expected to resume, reshaped"),
        }
    }

    fn rebuild_reason(dir: &Path, identity: &str, spec: &str) -> String {
        match StateDir::open(dir, identity, spec).unwrap() {
            Opened::Resume(_, stored) => panic!("expected a rebuild, resumed at {:?}", stored.position),
            Opened::Rebuild(_, reason) => reason,
            Opened::Reshape(..) => panic!("expected a rebuild, reshaped"),
        }
    }

    /// The change log against the stored multisets it links: for random
    /// batches (duplicates, retractions of rows not held, truncations) and
    /// a "checkpoint" (the rows and checksums at a log sequence) taken at
    /// every sequence, the rows then plus the logged changes after it equal
    /// the rows stored now, and so do the checksums; after a reopen too.
    /// Forgetting the log, a snapshot, a reshape or logging off makes older
    /// sequences unusable (`None`), never wrong.
    #[test]
    fn the_change_log_links_every_checkpoint_to_the_stored_rows() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&["id", "name"]);
        let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &spec).unwrap() else { panic!() };
        state.reset("src", &spec, Position(1), vec![("t".into(), ones(vec![row(1, "a"), row(2, "b")]))]).unwrap();
        let rows_now = |state: &StateDir| sorted(state.rows_of(&["t".into()]).unwrap().tables.remove(0).1);
        let mut checkpoints = vec![(state.log_seq(), rows_now(&state), state.sums().clone())];
        let mut rng = 7u64;
        let mut next = move |n: u64| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        for i in 0..60u64 {
            let truncated: Vec<String> = if next(15) == 0 { vec!["t".into()] } else { vec![] };
            let changes: Vec<(Row, Diff)> = (0..next(5))
                .map(|_| (row(next(6) as i64, ["a", "b"][next(2) as usize]), [1, 1, -1, 2, -2][next(5) as usize]))
                .collect();
            state.apply(Position(2 + i), &truncated, &[("t".into(), changes)]).unwrap();
            state.take_absent();
            checkpoints.push((state.log_seq(), rows_now(&state), state.sums().clone()));
        }
        state.make_durable().unwrap();
        let check = |state: &StateDir, from: usize| {
            for (seq, rows, sums) in &checkpoints[from..] {
                let changes = state.changes_after(*seq).unwrap().expect("the log holds every change since");
                assert_eq!(&changes.sums_after(sums), state.sums(), "sequence {seq}");
                let mut all = rows.clone();
                all.extend(changes.merged().into_iter().flat_map(|(_, c)| c));
                denorm_types::consolidate(&mut all);
                assert_eq!(sorted(all), rows_now(state), "sequence {seq}");
            }
        };
        check(&state, 0);
        drop(state);
        let (mut state, _) = resume(dir.path(), "src", &spec);
        check(&state, 0);
        let (kept_seq, ..) = checkpoints[30];
        state.forget_log(kept_seq).unwrap();
        assert_eq!(state.changes_after(kept_seq - 1).unwrap(), None);
        assert_eq!(state.changes_after(state.log_seq() + 1).unwrap(), None);
        check(&state, 30);
        state.set_logging(false).unwrap();
        state.apply(Position(100), &[], &[("t".into(), vec![(row(9, "z"), 1)])]).unwrap();
        assert_eq!(state.changes_after(kept_seq).unwrap(), None);
        state.set_logging(true).unwrap();
        let seq = state.log_seq();
        state.apply(Position(101), &[], &[("t".into(), vec![(row(9, "z"), -1)])]).unwrap();
        assert_eq!(state.changes_after(seq).unwrap().unwrap().rows(), 1);
        state.reset("src", &spec, Position(102), Vec::new()).unwrap();
        assert_eq!(state.changes_after(seq).unwrap(), None);
        assert_eq!(state.changes_after(state.log_seq()).unwrap(), Some(LoggedChanges::default()));
    }

    /// Snapshot, batches (duplicates, a retraction to zero), a truncation:
    /// what reopens equals a model multiset, at the last durable position.
    #[test]
    fn batches_reopen_as_the_model_multiset() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&["id", "name"]);
        let Opened::Rebuild(mut state, reason) = StateDir::open(dir.path(), "src", &spec).unwrap() else {
            panic!("a new directory resumed")
        };
        assert!(reason.contains("new"), "{reason}");
        state
            .reset("src", &spec, Position(5), vec![("t".into(), ones(vec![row(1, "a"), row(1, "a"), row(2, "b")]))])
            .unwrap();
        let none = state.apply(Position(7), &[], &[("t".into(), vec![(row(2, "b"), -1), (row(3, "c"), 1)])]).unwrap();
        assert!(none.is_empty());
        state.apply(Position(9), &[], &[("t".into(), vec![(row(1, "a"), -1)])]).unwrap();
        assert_eq!(state.durable(), Position(5));
        assert_eq!(state.make_durable().unwrap(), Position(9));
        drop(state);
        let (mut state, stored) = resume(dir.path(), "src", &spec);
        assert_eq!(stored.position, Position(9));
        assert_eq!(stored.tables[0].1, sorted(vec![(row(1, "a"), 1), (row(3, "c"), 1)]));
        let retracted = state.apply(Position(10), &["t".into()], &[("t".into(), vec![(row(4, "d"), 1)])]).unwrap();
        assert_eq!(sorted(retracted[0].1.clone()), sorted(vec![(row(1, "a"), -1), (row(3, "c"), -1)]));
        state.make_durable().unwrap();
        drop(state);
        let (_, stored) = resume(dir.path(), "src", &spec);
        assert_eq!(stored.tables[0].1, vec![(row(4, "d"), 1)]);
    }

    /// Another source, a changed capture spec: rebuilt with the reason.
    /// A retraction beyond what the store holds is reported once (the
    /// count stays a multiset); dead letters survive a reopen and a reset
    /// (a new snapshot keeps the queue) and can be removed.
    #[test]
    fn absent_retractions_and_dead_letters() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&["id", "name"]);
        let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &spec).unwrap() else { panic!() };
        state.reset("src", &spec, Position(1), vec![("t".into(), ones(vec![row(1, "a")]))]).unwrap();
        let changes = vec![(row(1, "a"), -1), (row(1, "a"), -1), (row(9, "z"), -1), (row(9, "z"), 1)];
        state.apply(Position(2), &[], &[("t".into(), changes)]).unwrap();
        // In order: the second delete of (1, a) and the delete of (9, z)
        // before its insert retract what the store does not hold.
        let absent = vec![("t".to_string(), row(1, "a"), 1), ("t".to_string(), row(9, "z"), 1)];
        assert_eq!(state.take_absent(), absent);
        assert!(state.take_absent().is_empty());
        let letter = |id: u64| DeadLetter {
            id,
            table: "t".into(),
            key: format!("id={id}"),
            position: 2,
            reason: "r".into(),
            raw: vec![0xff, 0],
            at: 1.0,
            retries: 0,
        };
        state.put_dead_letter(&letter(0)).unwrap();
        state.put_dead_letter(&letter(1)).unwrap();
        state.remove_dead_letter(0).unwrap();
        state.make_durable().unwrap();
        drop(state);
        let (mut state, stored) = resume(dir.path(), "src", &spec);
        assert_eq!(stored.tables[0].1, vec![(row(9, "z"), 1)], "counts never go below 0");
        assert_eq!(state.dead_letters().unwrap(), vec![letter(1)]);
        state.reset("src", &spec, Position(3), Vec::new()).unwrap();
        assert_eq!(state.dead_letters().unwrap(), vec![letter(1)], "a new snapshot keeps the queue");
        state.make_durable().unwrap();
        drop(state);
        let other = self::spec(&["id"]);
        let Opened::Reshape(state, _) = StateDir::open(dir.path(), "src", &other).unwrap() else { panic!() };
        assert_eq!(state.dead_letters().unwrap(), vec![letter(1)], "a reshape (the captured shape changed) keeps it");
    }

    #[test]
    fn identity_and_spec_mismatches_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        let spec1 = spec(&["id", "name"]);
        let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &spec1).unwrap() else { panic!() };
        state.reset("src", &spec1, Position(1), vec![("t".into(), ones(vec![row(1, "a")]))]).unwrap();
        drop(state);
        assert!(rebuild_reason(dir.path(), "other", &spec1).contains("another source"));
        // The mismatch emptied it: even the right identity now rebuilds.
        assert!(rebuild_reason(dir.path(), "src", &spec1).contains("no metadata"));
        let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &spec1).unwrap() else { panic!() };
        state.reset("src", &spec1, Position(1), vec![("t".into(), ones(vec![row(1, "a")]))]).unwrap();
        drop(state);
        let Opened::Reshape(_, stored) = StateDir::open(dir.path(), "src", &spec(&["id", "name", "email"])).unwrap()
        else {
            panic!("another shape of the same source reshapes")
        };
        assert_eq!((stored.position, stored.tables), (Position(1), vec![]), "its only table changed: nothing kept");
    }

    /// Another shape of the same source keeps the rows of the tables whose
    /// shape line is unchanged; `reshape` drops the others, writes the rows
    /// read again, and the directory then resumes in the new shape.
    #[test]
    fn a_reshape_keeps_unchanged_tables() {
        let dir = tempfile::tempdir().unwrap();
        let t = spec(&["id", "name"]);
        let u = t.replace("t\t", "u\t");
        let both = format!("{t}\n{u}");
        let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &both).unwrap() else { panic!() };
        let tables = vec![("t".to_string(), ones(vec![row(1, "a")])), ("u".to_string(), ones(vec![row(2, "b")]))];
        state.reset("src", &both, Position(4), tables).unwrap();
        drop(state);
        let changed = format!("{t}\n{}", spec(&["id"]).replace("t\t", "u\t"));
        let Opened::Reshape(mut state, stored) = StateDir::open(dir.path(), "src", &changed).unwrap() else {
            panic!("expected a reshape")
        };
        assert_eq!(stored.tables, vec![("t".to_string(), ones(vec![row(1, "a")]))], "u changed: only t kept");
        state.reshape(&changed, &["t".to_string()], Position(4), &[("u".to_string(), vec![row(3, "c")])]).unwrap();
        state.apply(Position(6), &[], &[("t".into(), vec![(row(5, "e"), 1)])]).unwrap();
        state.make_durable().unwrap();
        drop(state);
        let (_, stored) = resume(dir.path(), "src", &changed);
        assert_eq!(stored.position, Position(6));
        assert_eq!(
            stored.tables,
            vec![
                ("t".to_string(), sorted(ones(vec![row(1, "a"), row(5, "e")]))),
                ("u".to_string(), ones(vec![row(3, "c")]))
            ]
        );
        let only_t = resume_or_reshape(dir.path(), &t);
        assert_eq!(only_t, vec!["t".to_string()], "u no longer captured: t kept");
    }

    fn resume_or_reshape(dir: &Path, shape: &str) -> Vec<String> {
        match StateDir::open(dir, "src", shape).unwrap() {
            Opened::Reshape(_, stored) => stored.tables.into_iter().map(|(t, _)| t).collect(),
            _ => panic!("expected a reshape"),
        }
    }

    /// Flipped or truncated bytes anywhere in the file: never a panic,
    /// never wrong rows: either the exact rows or a rebuild.
    #[test]
    fn corrupt_files_rebuild_or_read_exactly() {
        let spec = spec(&["id", "name"]);
        let rows: Vec<Row> = (0..300).map(|i| row(i, &format!("name number {i} long enough for the heap"))).collect();
        let expected: Vec<(Row, Diff)> = sorted(rows.iter().map(|r| (r.clone(), 1)).collect());
        let pristine = {
            let dir = tempfile::tempdir().unwrap();
            let Opened::Rebuild(mut state, _) = StateDir::open(dir.path(), "src", &spec).unwrap() else { panic!() };
            state.reset("src", &spec, Position(3), vec![("t".into(), ones(rows.clone()))]).unwrap();
            drop(state);
            std::fs::read(dir.path().join(FILE)).unwrap()
        };
        let mut rebuilt = 0;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for case in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let mut bytes = pristine.clone();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % bytes.len() as u64) as usize;
            if case % 4 == 0 {
                bytes.truncate(at);
            } else {
                for b in &mut bytes[at..(at + 16).min(pristine.len())] {
                    *b ^= 0x5a;
                }
            }
            std::fs::write(dir.path().join(FILE), &bytes).unwrap();
            match StateDir::open(dir.path(), "src", &spec).unwrap() {
                Opened::Resume(_, stored) => assert_eq!(sorted(stored.tables[0].1.clone()), expected, "case {case}"),
                Opened::Rebuild(_, _) => rebuilt += 1,
                // A corrupted shape: no table's rows are kept.
                Opened::Reshape(_, stored) => {
                    assert!(stored.tables.is_empty(), "case {case}");
                    rebuilt += 1;
                }
            }
        }
        assert!(rebuilt > 0, "no corruption was detected in 40 cases");
    }

    /// A second open of a directory in use is an error, not a rebuild.
    #[test]
    fn a_directory_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(&["id"]);
        let _first = StateDir::open(dir.path(), "src", &spec).unwrap();
        let err = StateDir::open(dir.path(), "src", &spec).unwrap_err();
        assert!(matches!(err, StateError::InUse { .. }), "{err}");
    }

    const FIXTURE_IDENTITY: &str = "sqlite /fixture/app.db capture 0123456789abcdef";

    /// The fixture's shape and rows: a keyed table and a table without a key
    /// whose rows repeat, with NULL, doubles, long text and blobs.
    fn fixture() -> (String, Position, Vec<(String, Vec<Row>)>) {
        let mut catalog = Catalog::new();
        let column = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: true };
        catalog.add(TableSchema {
            name: "items".into(),
            columns: vec![
                column("id", ScalarType::Int),
                column("name", ScalarType::Text),
                column("price", ScalarType::Float),
            ],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog.add(TableSchema {
            name: "tags".into(),
            columns: vec![column("item_id", ScalarType::Int), column("tag", ScalarType::Text)],
            primary_key: vec![],
            unique_keys: vec![],
        });
        let spec = CaptureSpec {
            tables: vec![
                CapturedTable::new("items", ["id", "name", "price"]),
                CapturedTable::new("tags", ["item_id", "tag"]),
            ],
        };
        let items = (0..50)
            .map(|i| {
                let name = if i % 7 == 0 {
                    Datum::Null
                } else {
                    Datum::owned_text(format!("item {i} with a name longer than inline"))
                };
                Row::pack([Datum::Int(i), name, Datum::Float(i as f64 * 0.5)])
            })
            .collect();
        let tags = (0..30)
            .map(|i| Row::pack([Datum::Int(i % 5), Datum::text(["a", "b", "a\u{0}b"][i as usize % 3])]))
            .collect();
        (shape(&catalog, &spec), Position(42), vec![("items".into(), items), ("tags".into(), tags)])
    }

    /// Writes `tests/fixtures/state-v1/state.redb`. Run by hand, once per
    /// format version: `cargo test -p denorm --lib write_v1_fixture -- --ignored`.
    #[test]
    #[ignore]
    fn write_v1_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1");
        let _ = std::fs::remove_file(dir.join(FILE));
        let (shape, position, tables) = fixture();
        let Opened::Rebuild(mut state, _) = StateDir::open(&dir, FIXTURE_IDENTITY, &shape).unwrap() else { panic!() };
        let tables: Vec<(String, Vec<(Row, Diff)>)> = tables.into_iter().map(|(t, rows)| (t, ones(rows))).collect();
        state.reset(FIXTURE_IDENTITY, &shape, position, tables).unwrap();
        state.compact().unwrap();
    }

    /// The format-1 directory committed under `tests/fixtures/state-v1`
    /// opens with every row (the test a future format must keep passing,
    /// by reading v1 or migrating it).
    #[test]
    fn opens_the_v1_fixture() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1").join(FILE);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&file, dir.path().join(FILE)).unwrap();
        let (shape, position, tables) = fixture();
        let (_, stored) = resume(dir.path(), FIXTURE_IDENTITY, &shape);
        assert_eq!(stored.position, position);
        let want: Vec<(String, Vec<(Row, Diff)>)> = tables
            .into_iter()
            .map(|(table, rows)| {
                let mut counts: BTreeMap<Row, Diff> = BTreeMap::new();
                for row in rows {
                    *counts.entry(row).or_default() += 1;
                }
                (table, sorted(counts.into_iter().collect()))
            })
            .collect();
        let got: Vec<(String, Vec<(Row, Diff)>)> =
            stored.tables.into_iter().map(|(table, rows)| (table, sorted(rows))).collect();
        assert_eq!(got, want);
        assert!(want[1].1.iter().any(|(_, n)| *n == 2), "the fixture holds repeated rows");
        let (state, _) = resume(dir.path(), FIXTURE_IDENTITY, &shape);
        assert_eq!(state.dead_letters().unwrap(), vec![], "format 1 has no dead-letter queue");
    }

    /// A format-1 or format-2 directory (doubles in tag 7; the v1 fixture,
    /// and the same marked format 2) is re-packed when opened: it is
    /// format 3 after, its change log starts after the migration (no
    /// earlier checkpoint completes), a row arriving today retracts the
    /// migrated row it equals, and it reopens with its checksums. An open
    /// without rows leaves an old directory as it is and declines it.
    #[test]
    fn v1_and_v2_directories_are_repacked_to_todays_rows() {
        for format in migrate::OLD {
            repacks_a_directory_of_format(format);
        }
    }

    /// An old directory whose rows fail their checksum is not re-packed:
    /// it is rebuilt, with the reason.
    #[test]
    fn an_old_directory_failing_its_checksum_rebuilds() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1").join(FILE);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&file, dir.path().join(FILE)).unwrap();
        {
            let db = Database::open(dir.path().join(FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert(sum_key("items").as_str(), 7u64.to_le_bytes().as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let (shape, _, _) = fixture();
        let reason = rebuild_reason(dir.path(), FIXTURE_IDENTITY, &shape);
        assert!(reason.contains("items fail their checksum"), "{reason}");
    }

    fn repacks_a_directory_of_format(old: u32) {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state-v1").join(FILE);
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(&file, dir.path().join(FILE)).unwrap();
        {
            let db = Database::open(dir.path().join(FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META).unwrap().insert("format", old.to_le_bytes().as_slice()).unwrap();
            tx.commit().unwrap();
        }
        let (shape, _, tables) = fixture();
        assert!(StateDir::open_without_rows(dir.path(), FIXTURE_IDENTITY, &shape).unwrap().is_none());
        let (mut state, stored) = resume(dir.path(), FIXTURE_IDENTITY, &shape);
        let format = {
            let tx = state.db.begin_read().unwrap();
            let meta = tx.open_table(META).unwrap();
            let bytes = meta.get("format").unwrap().unwrap().value().to_vec();
            u32::from_le_bytes(bytes.try_into().unwrap())
        };
        assert_eq!(format, FORMAT);
        assert_eq!(state.changes_after(0).unwrap(), None);
        assert_eq!(state.changes_after(state.log_seq()).unwrap(), Some(LoggedChanges::default()));
        let (_, items) = &stored.tables[0];
        let priced = tables[0].1[3].clone();
        assert_eq!(priced.get(2), Datum::Float(1.5));
        assert!(items.contains(&(priced.clone(), 1)));
        state.apply(Position(43), &[], &[("items".into(), vec![(priced.clone(), -1)])]).unwrap();
        assert_eq!(state.take_absent(), vec![]);
        state.make_durable().unwrap();
        let sums = state.sums().clone();
        drop(state);
        let (state, stored) = resume(dir.path(), FIXTURE_IDENTITY, &shape);
        assert_eq!(state.sums(), &sums);
        assert_eq!(stored.position, Position(43));
        assert!(!stored.tables[0].1.iter().any(|(row, _)| *row == priced));
        assert_eq!(stored.tables[0].1.len(), 49);
    }

    /// The checksum is a multiset hash: order-independent, count-aware.
    #[test]
    fn row_hash_is_fixed() {
        assert_eq!(row_hash(b""), row_hash(b""));
        assert_ne!(row_hash(b"a"), row_hash(b"b"));
        // Part of the format: this value must never change.
        assert_eq!(row_hash(b"denorm"), 0x87f8_f835_ffb1_f00e);
    }
}
