//! [`SqliteSource`]: the SQLite capture behind the
//! [`ChangeSource`](crate::ChangeSource) contract — a [`SqliteCapture`] plus
//! its [`Wakeup`] (`poll` waits for a wake-up, then reads the change log).

use std::path::Path;
use std::time::Duration;

use denorm_types::{Catalog, Position, Value};

use super::{CaptureSpec, ChangeBatch, Poll, Snapshot, SnapshotProgress, SqliteCapture, Wakeup};
use crate::postgres::Lag;
use crate::{Batch, ChangeSource, KeyRead, Polled, Resync, SourceError};

/// A SQLite database captured by triggers, as a [`ChangeSource`].
#[derive(Debug)]
pub struct SqliteSource {
    capture: SqliteCapture,
    wakeup: Wakeup,
}

impl SqliteSource {
    /// Installs capture (WAL mode, triggers) of `spec` in the database at
    /// `path` and starts watching it for changes.
    pub fn open(path: &Path, catalog: &Catalog, spec: &CaptureSpec) -> Result<SqliteSource, SourceError> {
        let capture = SqliteCapture::open(path, catalog, spec)?;
        let wakeup = capture.wakeup()?;
        Ok(SqliteSource { capture, wakeup })
    }
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
            Poll::Idle => Polled::Idle,
            Poll::SchemaChanged { tables } => Polled::SchemaChanged { tables },
            Poll::Changes(batch) => Polled::Changes(contract_batch(batch)),
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

    /// A failed poll consumed nothing (its read transaction rolled back):
    /// the next one reads on from the same position.
    fn can_resume(&self) -> bool {
        true
    }

    /// Nothing to reconnect: the next poll retries the read.
    fn resume(&mut self, _at: Position) -> Result<(), SourceError> {
        Ok(())
    }

    fn identity(&mut self) -> Result<String, SourceError> {
        Ok(self.capture.identity())
    }

    fn follow_from(&mut self, at: Position) -> Result<Option<String>, SourceError> {
        self.capture.follow_from(at)
    }

    fn lag(&mut self) -> Option<Result<Lag, SourceError>> {
        None
    }

    fn describe(&self, position: Position) -> String {
        format!("change-log seq {}", position.0)
    }

    fn read_key(&mut self, table: &str, key: &[(String, Value)]) -> Result<KeyRead, SourceError> {
        self.capture.read_key(table, key)
    }

    fn follow_reading(&mut self, at: Position, fresh: &[String]) -> Result<Result<Resync, String>, SourceError> {
        Ok(self.capture.follow_reading(at, fresh)?.map(|r| Resync {
            position: r.position,
            changes: contract_batch(r.changes),
            tables: r.tables,
        }))
    }
}

/// A capture batch as the contract carries it.
fn contract_batch(batch: ChangeBatch) -> Batch {
    Batch {
        position: batch.position,
        head: batch.head,
        truncated: Vec::new(),
        tables: batch.tables,
        commits: batch.commits.into_iter().map(|c| (c.table, c.committed_at)).collect(),
        undecodable: batch
            .undecodable
            .into_iter()
            .map(|u| crate::Undecodable {
                at: format!("change-log seq {}", u.seq.0),
                position: u.seq,
                reason: u.reason.to_string(),
                table: u.table,
                key: u.key,
                raw: u.raw,
            })
            .collect(),
        repaired: batch.repaired,
    }
}
