//! Sinks: the maintained views written where the application already reads
//! (tables of its PostgreSQL or SQLite database, Redis, …), exactly once.
//!
//! ```text
//!  engine thread ──publish──► Publisher (readers)
//!        │
//!        └─ SinkHub::committed(position, changes) ── never blocks ──┐
//!                                                                  ▼
//!        one bounded queue + one thread per sink ──► Sink::apply (one transaction:
//!        (full: the queue is dropped, the sink is       the changes + the positions)
//!         behind and rebuilds from the published state)
//! ```
//!
//! [`contract`] is what a kind of sink implements ([`Sink`]); [`hub`] runs
//! every configured sink ([`SinkHub`]); [`sqlite`] and [`postgres`] are the
//! table sinks.

pub mod contract;
pub mod feed;
pub mod hub;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod value;

pub use contract::{ColumnSpec, ErrorKind, Sink, SinkBatch, SinkError, ViewSpec};
pub use hub::{PartChanges, Reconciled, SinkConfig, SinkHub, SinkState, QUEUE_ROWS};
