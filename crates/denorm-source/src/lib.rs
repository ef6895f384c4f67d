//! Sources: turn a database's change log into ordered batches of row changes,
//! each batch ending on a committed-transaction boundary.
//!
//! ```text
//!  source database ──read_catalog──► Catalog (planner input)
//!                  ──SqliteCapture─► Snapshot at a position, then ChangeBatches
//!                                    (whole committed transactions, in order)
//! ```
//!
//! SQLite is captured through triggers that append every change to a
//! change-log table in the database itself, so any process may write it
//! with a stock SQLite (3.38 or later) and no change to the application:
//! see [`sqlite::capture`].
//!
//! PostgreSQL is captured by logical replication: [`postgres::PgCapture`]
//! creates a slot with an exported snapshot, reads the tables inside it,
//! then streams committed transactions decoded from `pgoutput`, and
//! acknowledges only what the caller released. It has the same shape
//! (`open`, `snapshot`, `poll`, `release`), plus `resume` to continue a
//! stream after a dropped connection without a new snapshot and `lag` for
//! the WAL the slot holds: see [`postgres::capture`]. `scripts/postgres
//! start` runs a server for its tests.
//!
//! ```
//! use denorm_source::sqlite::{self, CaptureSpec, CapturedTable, Poll, SqliteCapture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.db");
//! let app = rusqlite::Connection::open(&path)?;
//! app.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")?;
//!
//! let catalog = sqlite::read_catalog(&sqlite::open_read_only(&path)?)?;
//! // The views read users.id and users.name.
//! let spec = CaptureSpec { tables: vec![CapturedTable::new("users", ["id", "name"])] };
//! let mut capture = SqliteCapture::open(&path, &catalog, &spec)?; // WAL mode + triggers
//! let snapshot = capture.snapshot(&mut |p| eprintln!("{} of ~{} rows", p.rows_read, p.estimated_total))?;
//! assert_eq!(snapshot.tables[0].1.len(), 0);
//!
//! app.execute("INSERT INTO users VALUES (1, 'ada', 'ada@example.com')", [])?;
//! let Poll::Changes(batch) = capture.poll()? else { panic!("expected a change") };
//! let (table, rows) = &batch.tables[0];
//! assert_eq!(table, "users");
//! // Full table width; email is read by no view, so it is NULL.
//! assert_eq!(rows[0].0.unpack(), [1i64.into(), "ada".into(), denorm_types::Datum::Null]);
//! assert_eq!(rows[0].1, 1);
//! capture.release(batch.position)?; // once applied and published
//! # Ok(())
//! # }
//! ```
//!
//! The engine drives either capture through one contract, [`ChangeSource`]
//! (see [`contract`](crate::ChangeSource)), opened by [`open`] from a
//! [`SourceConfig`]; every [`SourceError`] answers
//! [`kind`](SourceError::kind): [`ErrorKind::Transient`] (retry later) or
//! [`ErrorKind::Definite`] (something must change first):
//!
//! ```text
//! open(config) → snapshot → apply it → release(snapshot.position)
//! loop: match poll(wait, wanted)
//!         Idle | Progress(p)  → (publish at p)
//!         Changes(batch)      → apply, publish at batch.position, release(batch.position)
//!         SchemaChanged{..}   → re-read the catalog, re-plan, open again, snapshot again
//!       on Err(e): e.kind() == Transient → resume or retry with backoff; Definite → stop with the fix
//! ```

mod contract;
mod error;
pub mod postgres;
mod redact;
pub mod sqlite;

pub use contract::{
    open, read_catalog, Batch, ChangeSource, KeyRead, Polled, PostgresConfig, Resync, SourceConfig, SqliteConfig,
    Undecodable,
};
pub use error::{ErrorKind, SourceError};
pub use redact::redact;
pub use sqlite::{CaptureSpec, CapturedTable, Snapshot, SnapshotProgress};
