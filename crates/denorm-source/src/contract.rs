//! The one boundary between the engine and a source database:
//! [`ChangeSource`], its [`Batch`] and [`Polled`] types, and [`open`] /
//! [`read_catalog`] over a [`SourceConfig`].
//!
//! Both sources (SQLite triggers, PostgreSQL logical replication) are
//! normalized to one shape here, so the engine's session loop knows nothing
//! about either; a third source is one new module implementing the trait
//! plus one arm in [`open`] and [`read_catalog`]:
//!
//! ```text
//!  open(config, catalog, spec) ─► Box<dyn ChangeSource>
//!      snapshot(progress)  → Snapshot { position, tables }        (consistent at position)
//!      poll(wait, wanted)  → Idle | Changes(Batch) | Progress(position) | SchemaChanged
//!                            (Batch = committed transactions; Progress = nothing captured up to position)
//!      release(position)   → the source may forget what is at or below position (published)
//!      resume(position)    → reconnect after a transient error, keeping the engine's state
//!      identity()          → names the database, for a state directory kept across restarts
//!      follow_from(position) → instead of snapshot: continue after a durably kept position
//!      lag()               → replication slot figures, when the source has a slot
//!      read_key(table, key) → KeyRead { position, rows } (one row's current images, consistent at position)
//!      follow_reading(position, tables) → Resync (instead of follow_from: some tables read again, the rest followed)
//! ```
//!
//! Every error is a [`SourceError`] whose [`kind`](SourceError::kind) says
//! whether retrying may succeed ([`ErrorKind::Transient`]) or something must
//! be changed first ([`ErrorKind::Definite`]).

use std::path::PathBuf;
use std::time::Duration;

use denorm_types::{Catalog, Diff, Position, Row, Value};

use crate::postgres::{self, Lag, Names};
use crate::sqlite::{self, CaptureSpec, Snapshot, SnapshotProgress};
use crate::SourceError;

/// Where the source database is and what denorm may call its objects:
/// the part of the binary's `[source]` configuration a source needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceConfig {
    Sqlite(SqliteConfig),
    Postgres(PostgresConfig),
}

/// A SQLite source: the database file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    pub path: PathBuf,
}

/// A PostgreSQL source: the connection URL (or `key=value` string) and the
/// replication slot and publication denorm owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    pub url: String,
    pub names: Names,
}

/// Committed transactions of the source, in order, as one batch.
#[derive(Debug, Default)]
pub struct Batch {
    /// The batch's end (a transaction boundary): SQLite's change-log `seq`,
    /// PostgreSQL's commit LSN (the end of the last commit record).
    pub position: Position,
    /// The latest position the source has seen, at or past `position`.
    pub head: Position,
    /// Tables emptied by TRUNCATE before the changes in `tables` (sorted).
    pub truncated: Vec<String>,
    /// Per changed table: full-width rows, -1 old, +1 new.
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
    /// `(table, commit time in unix seconds)` per changed table and
    /// commit, for freshness.
    pub commits: Vec<(String, f64)>,
    /// Changes that could not be decoded (none of them is in `tables`).
    pub undecodable: Vec<Undecodable>,
    /// `(table, key)` of rows reported undecodable before whose bad image a
    /// change in this batch replaced or deleted (SQLite: text that is not
    /// UTF-8): the key is exact again.
    pub repaired: Vec<(String, String)>,
}

/// A change the source could not decode, for the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Undecodable {
    pub table: String,
    /// Where, in the source's words (`change-log seq 5`, `LSN 0/16B3748`).
    pub at: String,
    pub position: Position,
    pub reason: String,
    /// The row's key as text (`id=4`) when it can be read, else the row.
    pub key: String,
    /// The value as the source gave it.
    pub raw: Vec<u8>,
}

impl Batch {
    /// The commit time of the batch's newest transaction.
    pub fn newest_commit(&self) -> Option<f64> {
        self.commits.iter().map(|(_, at)| *at).reduce(f64::max)
    }
}

/// What a poll found.
#[derive(Debug)]
pub enum Polled {
    /// Nothing new within the wait.
    Idle,
    Changes(Batch),
    /// Nothing captured committed between the last position handed out and
    /// this one (PostgreSQL: the stream is complete up to a keepalive's WAL
    /// end): the state may be published as of it.
    Progress(Position),
    /// Captured tables changed shape: re-plan and snapshot again.
    SchemaChanged {
        tables: Vec<String>,
    },
}

/// A source database's change stream, as the engine drives it.
pub trait ChangeSource {
    /// Reads every captured table at one position; [`poll`](Self::poll)
    /// continues from there.
    fn snapshot(&mut self, progress: &mut dyn FnMut(SnapshotProgress<'_>)) -> Result<Snapshot, SourceError>;
    /// Waits up to `wait` for committed changes. `wanted` tells the
    /// furthest position a reader waits for beyond the published one
    /// (read-your-writes): a source that can, reports
    /// [`Polled::Progress`] up to it promptly.
    fn poll(&mut self, wait: Duration, wanted: &dyn Fn() -> Option<Position>) -> Result<Polled, SourceError>;
    /// Everything at or below `upto` is applied and published.
    fn release(&mut self, upto: Position) -> Result<(), SourceError>;
    /// How often [`release`](Self::release) is worth calling.
    fn release_interval(&self) -> Duration;
    /// Whether [`resume`](Self::resume) can continue after a transient
    /// error without a new snapshot.
    fn can_resume(&self) -> bool;
    /// Reconnects and continues after `at` (the last published position).
    fn resume(&mut self, at: Position) -> Result<(), SourceError>;
    /// Names the source database for a state directory kept across
    /// restarts: the same database (and capture) gives the same name.
    fn identity(&mut self) -> Result<String, SourceError>;
    /// Instead of [`snapshot`](Self::snapshot): continues after `at`, for a
    /// caller that kept the captured tables as of `at` durably. `Ok(None)`
    /// when the source still holds every change above `at`;
    /// `Ok(Some(reason))` when it may not (then snapshot).
    fn follow_from(&mut self, at: Position) -> Result<Option<String>, SourceError>;
    /// The replication slot's lag, for sources that have one.
    fn lag(&mut self) -> Option<Result<Lag, SourceError>>;
    /// A position in the source's own notation, for logs.
    fn describe(&self, position: Position) -> String;
    /// Reads, in one consistent snapshot, the rows of captured `table`
    /// whose `key` columns (`(column, value)`) hold those values, decoded
    /// exactly as a snapshot decodes them (full width, uncaptured columns
    /// NULL). Between polls only (SQLite reads on the capture's
    /// connection). A value that cannot be decoded is an error.
    fn read_key(&mut self, table: &str, key: &[(String, Value)]) -> Result<KeyRead, SourceError>;
    /// Instead of [`follow_from`](Self::follow_from), for a caller that
    /// kept the captured tables as of `at` durably except the `fresh` ones
    /// (recreated or newly captured): reads those tables (and any whose
    /// capture had to be reinstalled) at one position L consistently with
    /// the stream, with the other tables' changes in (`at`, L], so the kept
    /// rows plus the changes plus the rows read are every captured table at
    /// L; the stream continues after L. `Ok(Err(reason))` when it cannot
    /// (then snapshot everything).
    fn follow_reading(&mut self, at: Position, fresh: &[String]) -> Result<Result<Resync, String>, SourceError>;
}

/// What [`ChangeSource::follow_reading`] read.
#[derive(Debug)]
pub struct Resync {
    pub position: Position,
    /// The changes in (kept position, `position`]: the other tables', and
    /// (PostgreSQL) the read tables' committed after the point they were
    /// read at. Applied after `tables`.
    pub changes: Batch,
    /// The tables read (they replace whatever was kept): at `position`, or
    /// at an earlier point whose later changes are in `changes`.
    pub tables: Vec<(String, Vec<Row>)>,
}

/// The rows [`ChangeSource::read_key`] found and the position they are at:
/// every change at or below `position` is in them, none above (SQLite: the
/// change log's last `seq` in the read transaction; PostgreSQL:
/// `pg_current_wal_insert_lsn()` read inside the REPEATABLE READ snapshot,
/// at or past the commit of every transaction the snapshot sees).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    pub position: Position,
    pub rows: Vec<Row>,
}

/// Reads the catalog of the configured source (which must exist).
pub fn read_catalog(config: &SourceConfig) -> Result<Catalog, SourceError> {
    match config {
        SourceConfig::Sqlite(s) => sqlite::read_catalog(&sqlite::open_read_only(&s.path)?),
        SourceConfig::Postgres(p) => postgres::read_catalog(&mut postgres::connect(&p.url)?),
    }
}

/// Opens capture of the tables and columns in `spec`, checked against
/// `catalog` (what the views were planned against).
pub fn open(
    config: &SourceConfig,
    catalog: &Catalog,
    spec: &CaptureSpec,
) -> Result<Box<dyn ChangeSource>, SourceError> {
    match config {
        SourceConfig::Sqlite(s) => Ok(Box::new(sqlite::SqliteSource::open(&s.path, catalog, spec)?)),
        SourceConfig::Postgres(p) => Ok(Box::new(postgres::PostgresSource::open(&p.url, catalog, spec, &p.names)?)),
    }
}
