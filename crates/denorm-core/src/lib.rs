//! Incremental view maintenance: pure operators and the executor that drives
//! them.
//!
//! ```text
//!  SourceBatch ──► inputs (one per source table, shared) ──► operators ──► views
//!  (changes of        │ Filter/Map/Join/Reduce/Distinct: (row, diff) in,   │ keyed view state,
//!   committed txns)   │ consolidated (row, diff) out, state in place       │ key checked
//!                     └────────────── one DAG shared by all views ─────────┘
//! ```
//!
//! Operators know nothing of threads, I/O, clocks or sources. The executor
//! ([`Runtime`]) moves one batch through the graph in topological order, so
//! after every batch each view equals its query over the accumulated source.

mod executor;

pub use executor::{BatchOutput, BuildError, Dataflow, Runtime, SourceBatch, ViewError, ViewId, ViewOutput};
