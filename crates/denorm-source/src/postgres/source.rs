//! [`PostgresSource`]: the PostgreSQL capture behind the
//! [`ChangeSource`](crate::ChangeSource) contract — a [`PgCapture`] plus a
//! thread that reads the replication slot's lag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use denorm_types::{Catalog, Position, Value};

use super::{format_lsn, CaptureSpec, ChangeBatch, Lag, Names, PgCapture, Poll, Snapshot, SnapshotProgress};
use crate::{Batch, ChangeSource, KeyRead, Polled, Resync, SourceError};

/// A PostgreSQL database captured by logical replication, as a
/// [`ChangeSource`].
#[derive(Debug)]
pub struct PostgresSource {
    capture: PgCapture,
    lag: LagReader,
}

impl PostgresSource {
    /// Opens capture of `spec` (publication, slot) on the server at `url`
    /// and starts reading the slot's lag.
    pub fn open(
        url: &str,
        catalog: &Catalog,
        spec: &CaptureSpec,
        names: &Names,
    ) -> Result<PostgresSource, SourceError> {
        let capture = PgCapture::open(url, catalog, spec, names)?;
        let lag = LagReader::start(url.to_string(), names.slot.clone());
        Ok(PostgresSource { capture, lag })
    }
}

/// Reads the slot's lag every [`LAG_EVERY`] on a thread and connection of
/// its own: the query waits for the server, which under load can take long
/// enough to delay the follow loop (freshness) if it ran there.
#[derive(Debug)]
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
            let server = super::redact(&url);
            let mut client = None;
            while !stopped.load(Ordering::SeqCst) {
                let result = match client.as_mut() {
                    Some(c) => super::read_lag(c, &server, &slot),
                    None => super::connect(&url).and_then(|mut c| {
                        let lag = super::read_lag(&mut c, &server, &slot);
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
            Poll::Idle => Polled::Idle,
            Poll::Progress(position) => Polled::Progress(position),
            Poll::SchemaChanged { tables } => Polled::SchemaChanged { tables },
            Poll::Changes(batch) => Polled::Changes(contract_batch(batch)),
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

    fn identity(&mut self) -> Result<String, SourceError> {
        self.capture.identity()
    }

    fn follow_from(&mut self, at: Position) -> Result<Option<String>, SourceError> {
        self.capture.follow_from(at)
    }

    /// The latest reading of the lag thread (`None` until there is a new one).
    fn lag(&mut self) -> Option<Result<Lag, SourceError>> {
        self.lag.take()
    }

    fn describe(&self, position: Position) -> String {
        format!("LSN {}", format_lsn(position))
    }

    fn read_key(&mut self, table: &str, key: &[(String, Value)]) -> Result<KeyRead, SourceError> {
        self.capture.read_key(table, key)
    }

    /// The fresh tables read in a snapshot exported by a temporary slot,
    /// the kept slot's stream followed up to its point (see
    /// `capture/partial.rs`).
    fn follow_reading(&mut self, at: Position, fresh: &[String]) -> Result<Result<Resync, String>, SourceError> {
        Ok(self.capture.follow_reading(at, fresh)?.map(|read| Resync {
            position: read.position,
            changes: read.changes.map(contract_batch).unwrap_or_else(|| Batch {
                position: read.position,
                head: read.position,
                ..Batch::default()
            }),
            tables: read.tables,
        }))
    }
}

/// A capture batch as the contract carries it.
fn contract_batch(batch: ChangeBatch) -> Batch {
    Batch {
        position: batch.position,
        // The server's WAL end runs ahead of every captured commit (other
        // tables, checkpoints): the stream's position is the last commit
        // it delivered.
        head: batch.position,
        truncated: batch.truncated,
        tables: batch.tables,
        commits: batch.commits,
        undecodable: batch
            .undecodable
            .into_iter()
            .map(|u| undecodable(u.table, u.key, u.position, &u.reason))
            .collect(),
        repaired: Vec::new(),
    }
}

/// A change the stream could not decode, as the contract reports it: the
/// row's key (replica identity or primary key columns, as on SQLite) and,
/// as the raw value, the failing column's text.
fn undecodable(table: String, key: String, position: Position, reason: &super::ValueError) -> crate::Undecodable {
    let at = format!("LSN {}", format_lsn(position));
    let raw = reason.raw_text().unwrap_or_default().as_bytes().to_vec();
    crate::Undecodable { at, position, reason: reason.to_string(), key, raw, table }
}
