//! The planner: `CREATE MATERIALIZED VIEW` text → [`ViewDef`]s holding typed
//! logical [`Plan`]s, or every error found, each with its position.
//!
//! ```text
//!  views.sql ──sqlparser──► AST ──resolve names & types (Catalog, Dialect)──► Plan + key + options
//! ```
//!
//! Everything the core cannot maintain exactly is refused here, never at
//! runtime.

mod expr;
mod from;
mod func;
mod key;
mod names;
mod scope;
mod select;
mod source;
mod statement;
mod types;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use denorm_expr::Plan;
use denorm_types::{Catalog, Dialect, ScalarType};

/// A line:column position in the views file (1-based), as sqlparser reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Location {
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A plan-time error in PostgreSQL's primary / detail / hint style.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PlanError {
    /// What went wrong, one line, lower case, no trailing period.
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
    pub location: Option<Location>,
    /// The view being planned, when the error belongs to one.
    pub view: Option<String>,
}

impl PlanError {
    /// The full multi-line report, e.g.
    /// `error: window functions are not supported (views.sql:4:12)` followed
    /// by `  view: …`, `  detail: …` and `  hint: …` lines when present.
    pub fn render(&self, file: &str) -> String {
        let mut out = format!("error: {}", self.message);
        match self.location {
            Some(l) => out.push_str(&format!(" ({file}:{l})")),
            None => out.push_str(&format!(" ({file})")),
        }
        if let Some(v) = &self.view {
            out.push_str(&format!("\n  view: {v}"));
        }
        if let Some(d) = &self.detail {
            out.push_str(&format!("\n  detail: {d}"));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("\n  hint: {h}"));
        }
        out
    }
}

impl PlanError {
    /// A user error at `location`, to be completed with the builders below.
    pub(crate) fn new(message: impl Into<String>, location: Option<Location>) -> Self {
        PlanError { message: message.into(), detail: None, hint: None, location, view: None }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// One output column of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputColumn {
    pub name: String,
    pub ty: ScalarType,
    pub nullable: bool,
}

/// Where a view's key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `WITH (key = '…')`.
    Declared,
    /// The GROUP BY columns.
    GroupBy,
    /// The driving table's primary key, projected and proven unique.
    PrimaryKey,
    /// No key could be derived: the view is a multiset keyed by all columns.
    AllColumns,
}

/// The columns that identify a row of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewKey {
    /// Output column positions.
    pub columns: Vec<usize>,
    pub origin: KeyOrigin,
    /// True when the planner proved that no two rows share the key; otherwise
    /// the engine checks it at runtime and reports a violation on the view.
    pub proven_unique: bool,
}

/// Source columns whose changes update a view (the seed's "what triggers an
/// update to the copy").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDependency {
    pub table: String,
    pub columns: Vec<String>,
}

/// A planned view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDef {
    pub name: String,
    pub columns: Vec<OutputColumn>,
    pub key: ViewKey,
    pub max_staleness: Option<Duration>,
    pub plan: Plan,
    pub dependencies: Vec<TableDependency>,
    /// The defining SELECT exactly as written, runnable on the source.
    pub select_sql: String,
    /// Where the CREATE statement starts.
    pub location: Location,
}

/// Plans every `CREATE MATERIALIZED VIEW` statement in `sql` against the
/// source tables in `catalog`, with `dialect`'s semantics. Returns all views,
/// or every error found (planning goes on past a bad view to report the rest).
pub fn plan_views(sql: &str, catalog: &Catalog, dialect: Dialect) -> Result<Vec<ViewDef>, Vec<PlanError>> {
    let source = source::Source::new(sql);
    let statements = statement::split(&source).map_err(|e| vec![e])?;
    let mut views = Vec::new();
    let mut errors = Vec::new();
    let mut names = HashSet::new();
    for st in statements {
        let view = match statement::parse(st, &source) {
            Ok(view) => view,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        if !names.insert(view.name.to_lowercase()) {
            let e = PlanError::new(format!("view \"{}\" is defined more than once", view.name), view.name_location)
                .hint("give each view its own name");
            errors.push(PlanError { view: Some(view.name.clone()), ..e });
            continue;
        }
        match select::plan_view(&view, catalog, dialect, &source) {
            Ok(def) => views.push(def),
            Err(e) => errors.push(PlanError { view: Some(view.name.clone()), ..e }),
        }
    }
    if errors.is_empty() {
        Ok(views)
    } else {
        Err(errors)
    }
}
