//! API skeleton (implementation in progress).

use denorm_types::{Catalog, Dialect, Diff, Position, Row};
use denorm_expr::Plan;

/// One atomic step of the source: every change of one or more committed
/// transactions, grouped by table, and the position the source is at after
/// them. Updates are a retraction of the old row and an insertion of the new.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    pub position: Position,
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewId(pub usize);

/// A view's consolidated changes for one batch.
#[derive(Debug, Clone)]
pub struct ViewOutput {
    pub view: ViewId,
    pub changes: Vec<(Row, Diff)>,
}

/// A runtime failure that stops one view (others go on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("key violation: two rows share key {key}")]
    KeyViolation { key: String },
    #[error("{0}")]
    Eval(String),
}

#[derive(Debug, Clone)]
pub struct BatchOutput {
    pub position: Position,
    pub views: Vec<ViewOutput>,
    /// Views that failed during this batch.
    pub errors: Vec<(ViewId, ViewError)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown source table {0}")]
    UnknownTable(String),
}

/// The seam a parallel runtime replaces: apply one batch, get every view's changes.
pub trait Runtime {
    fn apply(&mut self, batch: &SourceBatch) -> BatchOutput;
}

/// The single-threaded runtime: one operator DAG shared by all views.
#[derive(Debug)]
pub struct Dataflow {
    _catalog: Catalog,
    _dialect: Dialect,
}

impl Dataflow {
    pub fn new(catalog: Catalog, dialect: Dialect) -> Self {
        Dataflow { _catalog: catalog, _dialect: dialect }
    }

    /// Adds a view before the first batch. `key` is the view's key columns;
    /// when `check_key` is set, two live rows with one key fail the view.
    pub fn add_view(&mut self, name: &str, plan: &Plan, key: Vec<usize>, check_key: bool) -> Result<ViewId, BuildError> {
        let _ = (name, plan, key, check_key);
        unimplemented!()
    }

    /// The current contents of a view, with multiplicities.
    pub fn view_rows(&self, view: ViewId) -> Vec<(Row, Diff)> {
        let _ = view;
        unimplemented!()
    }

    /// The error that stopped a view, if any.
    pub fn view_error(&self, view: ViewId) -> Option<&ViewError> {
        let _ = view;
        unimplemented!()
    }
}
