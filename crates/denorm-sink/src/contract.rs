//! The contract every kind of sink implements: [`Sink`], the views it is
//! given ([`ViewSpec`]), one committed batch ([`SinkBatch`]) and the errors
//! ([`SinkError`], each [`ErrorKind::Transient`] or [`ErrorKind::Definite`]).
//!
//! Invariants a sink keeps:
//! - `apply` writes a batch's changes **and** the batch's position of every
//!   view it advances in one atomic unit (a transaction, `MULTI/EXEC`), so
//!   the stored position always says exactly which batches the stored rows
//!   hold: a crash anywhere resumes exactly once.
//! - `rebuild` replaces a view's rows and position atomically: readers of
//!   the target never see it half-built.
//! - `open` reports each view's stored position (`None`: unknown, the
//!   target is missing or was made by something else), and never drops
//!   data it did not write.
//! - A sink is used from one thread at a time (the hub's runner); it may
//!   block, the engine never waits for it.

use denorm_types::{Diff, Position, Row, ScalarType};

/// One output column of a view, as a sink creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub ty: ScalarType,
    /// Whether the column may hold NULL (a key column that may is still
    /// part of the key: NULLs compare equal there).
    pub nullable: bool,
}

/// A view as a sink sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ViewSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
    /// Indexes of the key columns: at most one row per key. A view keyed by
    /// all its columns in order is a multiset ([`ViewSpec::is_multiset`]).
    pub key: Vec<usize>,
    /// A feed view's partition column (`WITH (partition_by = …)`).
    pub partition_by: Option<usize>,
    /// A feed view's order (`order_by`) or the view's `ORDER BY`: column
    /// index and whether it is descending.
    pub order: Vec<(usize, bool)>,
    /// Secondary indexes the view asks for (`WITH (index = 'a, b; c')`):
    /// each a list of column indexes.
    pub indexes: Vec<Vec<usize>>,
    /// Set when the spec is one part of a feed view (a feed is written as
    /// three: see [`crate::feed`]).
    pub feed: Option<crate::feed::FeedSpec>,
}

impl ViewSpec {
    /// Whether rows may repeat (the view is keyed by all its columns in
    /// order): a sink stores each distinct row with its multiplicity.
    pub fn is_multiset(&self) -> bool {
        self.key.len() == self.columns.len() && self.key.iter().enumerate().all(|(i, &k)| i == k)
    }
}

/// One committed batch for one sink: per view of the sink (in the order
/// given to [`Sink::open`]), its consolidated changes.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkBatch {
    /// The source position the batch brings the views to.
    pub position: Position,
    /// Commit time (unix seconds) of the oldest source transaction in the
    /// batch, when known (for the sink's lag).
    pub committed_at: Option<f64>,
    /// Per view: `None` leaves the view (rows and position) untouched — it
    /// failed in the engine; `Some(changes)` applies the changes
    /// (consolidated: each row once, diff ≠ 0; a keyed view's update is
    /// `(old, -1), (new, +1)`) and stores `position` as its position, also
    /// when there are no changes.
    pub views: Vec<Option<Vec<(Row, Diff)>>>,
}

impl SinkBatch {
    /// Changes in the batch, all views together.
    pub fn changes(&self) -> usize {
        self.views.iter().flatten().map(Vec::len).sum()
    }
}

/// A target the maintained views are written to (one `[[sink]]` entry).
pub trait Sink: Send + std::fmt::Debug {
    /// The sink's kind as configured (`"postgres"`, `"sqlite"`, `"redis"`).
    fn kind(&self) -> &'static str;

    /// Connects and prepares the target for `views` (creates what is
    /// missing: tables, the positions store) and returns each view's stored
    /// position, `None` when unknown (then the hub rebuilds it). Called
    /// again after an error: it must be idempotent.
    fn open(&mut self, views: &[ViewSpec]) -> Result<Vec<Option<Position>>, SinkError>;

    /// Applies one batch atomically together with the positions of the
    /// views it advances (see [`SinkBatch::views`]).
    fn apply(&mut self, batch: &SinkBatch) -> Result<(), SinkError>;

    /// Replaces view `view`'s rows by `rows` (each distinct row with its
    /// multiplicity) and its position by `position`, atomically.
    fn rebuild(
        &mut self,
        view: usize,
        rows: &mut dyn Iterator<Item = (&Row, Diff)>,
        position: Position,
    ) -> Result<(), SinkError>;

    /// The rows the target holds for view `view` (each distinct row with its
    /// multiplicity, any order), decoded with the view's column types: for
    /// reconciling the sink with the view.
    fn read(&mut self, view: usize) -> Result<Vec<(Row, Diff)>, SinkError>;

    /// The rows the target holds for view `view` under each of `keys` (a
    /// key: the view's key columns packed in order), as [`Sink::read`]
    /// gives them: for the reconcile sampler. The default reads everything
    /// and keeps the rows of those keys.
    fn read_keys(&mut self, view: usize, key: &[usize], keys: &[Row]) -> Result<Vec<(Row, Diff)>, SinkError> {
        let wanted: std::collections::HashSet<&Row> = keys.iter().collect();
        let rows = self.read(view)?;
        Ok(rows.into_iter().filter(|(row, _)| wanted.contains(&Row::pack(key.iter().map(|&k| row.get(k))))).collect())
    }

    /// Consecutive queued batches are merged into one `apply` up to this
    /// many changes (a batch larger by itself is applied whole): a target
    /// shared with other writers keeps its transactions short with a lower
    /// limit. Default [`crate::hub::MERGE_ROWS`].
    fn merge_limit(&self) -> usize {
        crate::hub::MERGE_ROWS
    }

    /// A row of view `view` as [`Sink::read`] gives it back once written
    /// (a column type may convert values: SQLite's affinity, PostgreSQL's
    /// text for untyped values). Reconcile compares the view's rows through
    /// this, so conversions are not drift. The default keeps the row.
    fn stored(&self, view: usize, row: &Row) -> Row {
        let _ = view;
        row.clone()
    }
}

/// Whether a sink error may pass by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing condition (a lost connection, a server restarting, a busy
    /// database): the hub retries with backoff.
    Transient,
    /// Retrying fails the same way until something is changed (a privilege,
    /// a conflicting table, a type the target cannot hold): the message says
    /// what. The hub still retries, at its longest wait.
    Definite,
}

/// A boxed error from a driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a sink.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target cannot be reached (connecting, or the connection broke).
    #[error("cannot reach {target}")]
    Unreachable {
        target: String,
        #[source]
        source: BoxError,
    },
    /// A statement failed for a passing reason (busy, serialization, shutdown).
    #[error("{action} on {target} failed; retrying")]
    Transient {
        target: String,
        action: String,
        #[source]
        source: BoxError,
    },
    /// A statement failed and will fail again until something is changed.
    #[error("{action} on {target} failed ({hint})")]
    Definite {
        target: String,
        action: String,
        hint: String,
        #[source]
        source: Option<BoxError>,
    },
    /// The view cannot be written to this kind of sink.
    #[error("view \"{view}\" cannot be written to a {kind} sink: {reason}")]
    Unsupported { kind: &'static str, view: String, reason: String },
}

impl SinkError {
    /// Whether retrying may succeed. Every variant answers (no catch-all).
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::Unreachable { .. } | SinkError::Transient { .. } => ErrorKind::Transient,
            SinkError::Definite { .. } | SinkError::Unsupported { .. } => ErrorKind::Definite,
        }
    }

    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

/// An error and its causes on one line (for logs and `/health`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiset_is_keyed_by_all_columns_in_order() {
        let column = |name: &str| ColumnSpec { name: name.into(), ty: ScalarType::Int, nullable: true };
        let mut spec = ViewSpec {
            name: "v".into(),
            columns: vec![column("a"), column("b")],
            key: vec![0, 1],
            ..Default::default()
        };
        assert!(spec.is_multiset());
        spec.key = vec![0];
        assert!(!spec.is_multiset());
    }

    #[test]
    fn errors_are_classified() {
        let transient = SinkError::Unreachable { target: "db".into(), source: "refused".into() };
        assert_eq!(transient.kind(), ErrorKind::Transient);
        let definite = SinkError::Unsupported { kind: "sqlite", view: "v".into(), reason: "feed".into() };
        assert_eq!(definite.kind(), ErrorKind::Definite);
        assert_eq!(error_chain(&transient), "cannot reach db: refused");
    }
}
