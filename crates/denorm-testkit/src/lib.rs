//! The differential-testing harness: run the same workload on a real
//! reference database and on the engine, and compare every view with the
//! database's own answer to the view's SELECT.
//!
//! ```text
//!  Workload (proptest) ──► SqliteReference (rusqlite, real SQL) ──► SELECT results ─┐
//!            │                  │ old/new rows of every change                      ├─► same_rows()
//!            └──────────────────┴──► SourceBatch ──► Dataflow ──► view rows ────────┘
//! ```

pub mod alloc;
mod compare;
mod harness;
mod reference;
mod sqlite;
pub mod tpch;
mod workload;
pub mod writes;

pub use compare::{canonical_json, normalize_json, same_rows, Mismatch};
pub use harness::{at_time, Differential};
pub use reference::{reference_sql, BY_RULE, REFERENCE_SQL};
pub use sqlite::SqliteReference;
pub use workload::{apply_workload, Op, TableChanges, TableSpec, WorkloadError};
