//! The engine's one boundary with a source database: [`ChangeSource`].
//!
//! Both sources (SQLite triggers, PostgreSQL logical replication) are
//! normalized to one shape here, so the session loop in [`super`] knows
//! nothing about either:
//!
//! ```text
//!  open(config, catalog, spec) ─► Box<dyn ChangeSource>
//!      snapshot(progress)  → Snapshot { position, tables }        (consistent at position)
//!      poll(wait, wanted)  → Idle | Changes(Batch) | Progress(position) | SchemaChanged
//!                            (Batch = committed transactions; Progress = nothing captured up to position)
//!      release(position)   → the source may forget what is at or below position (published)
//!      resume(position)    → reconnect after a transient error, keeping the engine's state
//!      lag()               → replication slot figures, when the source has a slot
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use denorm_source::postgres::{self, Lag, Names, PgCapture};
use denorm_source::sqlite::{self, CaptureSpec, Snapshot, SnapshotProgress, SqliteCapture, Wakeup};
use denorm_source::SourceError;
use denorm_types::{Catalog, Diff, Position, Row};

use crate::config::SourceConfig;

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
    /// Changes that could not be decoded: `(table, where, why)`.
    pub undecodable: Vec<(String, String, String)>,
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
    /// The replication slot's lag, for sources that have one.
    fn lag(&mut self) -> Option<Result<Lag, SourceError>>;
    /// A position in the source's own notation, for logs.
    fn describe(&self, position: Position) -> String;
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
        SourceConfig::Sqlite(s) => {
            let capture = SqliteCapture::open(&s.path, catalog, spec)?;
            let wakeup = capture.wakeup()?;
            Ok(Box::new(SqliteSource { capture, wakeup }))
        }
        SourceConfig::Postgres(p) => {
            let capture = PgCapture::open(&p.url, catalog, spec, &names(p))?;
            let lag = LagReader::start(p.url.clone(), p.slot.clone());
            Ok(Box::new(PostgresSource { capture, lag }))
        }
    }
}

pub fn names(config: &crate::config::PostgresSource) -> Names {
    Names { publication: config.publication.clone(), slot: config.slot.clone() }
}

struct SqliteSource {
    capture: SqliteCapture,
    wakeup: Wakeup,
}

impl ChangeSource for SqliteSource {
    fn snapshot(&mut self, progress: &mut dyn FnMut(SnapshotProgress<'_>)) -> Result<Snapshot, SourceError> {
        self.capture.snapshot(progress)
    }

    /// SQLite positions are change-log ids of captured changes only: an
    /// application's position is reached by its own change, so `wanted`
    /// needs no answer.
    fn poll(&mut self, wait: Duration, _wanted: &dyn Fn() -> Option<Position>) -> Result<Polled, SourceError> {
        self.wakeup.wait(wait)?;
        Ok(match self.capture.poll()? {
            sqlite::Poll::Idle => Polled::Idle,
            sqlite::Poll::SchemaChanged { tables } => Polled::SchemaChanged { tables },
            sqlite::Poll::Changes(batch) => Polled::Changes(Batch {
                position: batch.position,
                head: batch.head,
                truncated: Vec::new(),
                tables: batch.tables,
                commits: batch.commits.into_iter().map(|c| (c.table, c.committed_at)).collect(),
                undecodable: batch
                    .undecodable
                    .into_iter()
                    .map(|u| (u.table, format!("change-log seq {}", u.seq.0), u.reason.to_string()))
                    .collect(),
            }),
        })
    }

    /// Deletes applied change-log rows.
    fn release(&mut self, upto: Position) -> Result<(), SourceError> {
        self.capture.release(upto).map(drop)
    }

    /// Deleting log rows takes SQLite's write lock: not more often than
    /// this, so that denorm's own writes do not compete with the
    /// application's.
    fn release_interval(&self) -> Duration {
        Duration::from_millis(500)
    }

    fn can_resume(&self) -> bool {
        false
    }

    fn resume(&mut self, _at: Position) -> Result<(), SourceError> {
        unreachable!("SqliteSource cannot resume: can_resume is false")
    }

    fn lag(&mut self) -> Option<Result<Lag, SourceError>> {
        None
    }

    fn describe(&self, position: Position) -> String {
        format!("change-log seq {}", position.0)
    }
}

struct PostgresSource {
    capture: PgCapture,
    lag: LagReader,
}

/// Reads the slot's lag every [`LAG_EVERY`] on a thread and connection of
/// its own: the query waits for the server, which under load can take long
/// enough to delay the follow loop (freshness) if it ran there.
struct LagReader {
    latest: Arc<Mutex<Option<Result<Lag, SourceError>>>>,
    stop: Arc<AtomicBool>,
}

/// How often [`LagReader`] reads the lag.
const LAG_EVERY: Duration = Duration::from_secs(1);

impl LagReader {
    fn start(url: String, slot: String) -> LagReader {
        let latest = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (latest.clone(), stop.clone());
        let spawned = std::thread::Builder::new().name("denorm-lag".into()).spawn(move || {
            let server = postgres::redact(&url);
            let mut client = None;
            while !stopped.load(Ordering::SeqCst) {
                let result = match client.as_mut() {
                    Some(c) => postgres::read_lag(c, &server, &slot),
                    None => postgres::connect(&url).and_then(|mut c| {
                        let lag = postgres::read_lag(&mut c, &server, &slot);
                        client = Some(c);
                        lag
                    }),
                };
                if result.as_ref().is_err_and(|e| e.is_transient()) {
                    client = None; // reconnect next time
                }
                *shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                let until = Instant::now() + LAG_EVERY;
                while Instant::now() < until && !stopped.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the thread that reads the replication slot's lag; it is not shown");
        }
        LagReader { latest, stop }
    }

    /// The latest reading, once.
    fn take(&self) -> Option<Result<Lag, SourceError>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl Drop for LagReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl ChangeSource for PostgresSource {
    fn snapshot(&mut self, progress: &mut dyn FnMut(SnapshotProgress<'_>)) -> Result<Snapshot, SourceError> {
        self.capture.snapshot(progress)
    }

    fn poll(&mut self, wait: Duration, wanted: &dyn Fn() -> Option<Position>) -> Result<Polled, SourceError> {
        Ok(match self.capture.poll_wanting(wait, wanted)? {
            postgres::Poll::Idle => Polled::Idle,
            postgres::Poll::Progress(position) => Polled::Progress(position),
            postgres::Poll::SchemaChanged { tables } => Polled::SchemaChanged { tables },
            postgres::Poll::Changes(batch) => {
                let commits = batch.commits;
                Polled::Changes(Batch {
                    position: batch.position,
                    // The server's WAL end runs ahead of every captured
                    // commit (other tables, checkpoints): the stream's
                    // position is the last commit it delivered.
                    head: batch.position,
                    truncated: batch.truncated,
                    tables: batch.tables,
                    commits,
                    undecodable: batch
                        .undecodable
                        .into_iter()
                        .map(|u| (u.table, format!("LSN {}", postgres::format_lsn(u.position)), u.reason.to_string()))
                        .collect(),
                })
            }
        })
    }

    /// Acknowledges to the server (standby status update; the capture sends
    /// at most one every 10 ms).
    fn release(&mut self, upto: Position) -> Result<(), SourceError> {
        self.capture.release(upto)
    }

    fn release_interval(&self) -> Duration {
        Duration::ZERO
    }

    fn can_resume(&self) -> bool {
        true
    }

    fn resume(&mut self, at: Position) -> Result<(), SourceError> {
        self.capture.resume(at)
    }

    /// The latest reading of the lag thread (`None` until there is a new one).
    fn lag(&mut self) -> Option<Result<Lag, SourceError>> {
        self.lag.take()
    }

    fn describe(&self, position: Position) -> String {
        format!("LSN {}", postgres::format_lsn(position))
    }
}
