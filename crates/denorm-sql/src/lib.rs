//! The planner: `CREATE MATERIALIZED VIEW` text → [`ViewDef`]s holding typed
//! logical [`Plan`]s, or every error found, each with its position.
//!
//! ```text
//!  views.sql ──split at `;`──► statements ──sqlparser──► AST
//!     ──resolve names & types (Catalog, Dialect)──► Plan + columns + key + dependencies
//! ```
//!
//! Everything the core cannot maintain exactly is refused here, never at
//! runtime: window functions (but the top-k form below), subqueries in
//! expressions that cannot be decorrelated into joins (see `subquery.rs`),
//! `WITH RECURSIVE`, and anything whose meaning differs between
//! SQLite and PostgreSQL in a way a plan cannot pin down.
//!
//! # Whole queries
//!
//! Around the SELECTs (see `query.rs`): `WITH` (non-recursive; a CTE is
//! planned like a subquery in FROM and shadows a table of its name; used
//! twice it builds one shared sub-graph), `UNION [ALL]`, `EXCEPT`,
//! `INTERSECT` (`EXCEPT ALL`/`INTERSECT ALL` in PostgreSQL only; SQLite
//! applies compound operators left to right, PostgreSQL binds INTERSECT
//! tighter), `ORDER BY … LIMIT n [OFFSET m]` maintained as a top-N, and
//! `ORDER BY` without LIMIT kept as [`ViewDef::order`], the order reads
//! return rows in. At the LIMIT boundary, rows tied on the ORDER BY are
//! kept by their encoded bytes (the source may keep any of them): end the
//! ORDER BY with a unique column. PostgreSQL's `OFFSET m ROWS FETCH FIRST
//! n ROWS ONLY` is `LIMIT n OFFSET m`. A SELECT without FROM reads one
//! empty row (`SELECT 1 AS one` is a constant view); `VALUES (…), (…)` is
//! a query or an operand of its own, columns named `column1`, ….
//!
//! # The current time
//!
//! `now()`, `current_date`, SQLite's `'now'` and the others change without
//! a change in the source: a view refreshed on every change refuses them
//! (the hint names `WITH (refresh = …)`). A view refreshed on a schedule
//! reads them from the engine's clock ([`denorm_types::clock`]), a one-row
//! input joined once per clause like an uncorrelated scalar subquery (see
//! `func.rs` `clock_call`, `subquery.rs` `Subqueries::clock`): at each
//! refresh the view is its query at that refresh's instant, one for every
//! call, to the millisecond, in UTC.
//!
//! # Collations (SQLite)
//!
//! A column's declared collation (`TEXT COLLATE NOCASE`, from
//! [`denorm_types::Catalog::collation`]) and `x COLLATE NOCASE|RTRIM|BINARY`
//! decide how text compares, by SQLite's rule: an explicit COLLATE on either
//! operand (left first), else the left operand's column, else the right's.
//! Under NOCASE or RTRIM the planner compares, groups, deduplicates and
//! sorts the collation key (`Func::CollationKey`), so a column that groups
//! or deduplicates under a collation holds the key (`paris` for `Paris`)
//! where it is compared (a subquery in an expression); in the rows a query
//! shows (the view's own, a subquery's in FROM or WITH) it, and expressions
//! over it, show the least of its group's values bytewise (`Paris` for a
//! group of `Paris` rows), which an enclosing query compares under the
//! collation the column carries.
//! MIN/MAX under a collation return a row's value, the least bytewise of
//! those tied with the extreme (`Func::ExtremeKey`); UNION/EXCEPT/INTERSECT
//! compare collated columns by key and show the least value of each key
//! (the left operand's for EXCEPT). A group of values equal but spelled
//! apart (SQLite's `1`/`1.0`, `-0.0`/`0.0`; PostgreSQL's numerics and
//! intervals) shows the least spelling among its current rows. Where the
//! source's choice among such values depends on its scan order, these are
//! the rules denorm follows. Reads (`?city=eq.paris`, `order=city`, the
//! view's ORDER BY without LIMIT) compare such columns under their
//! collation. Refused: ORDER BY without LIMIT under another collation than
//! the column's, ORDER BY of a compound over a collated column, COLLATE
//! inside an operand of an operator or a function, other collations.
//! PostgreSQL compares bytewise: `COLLATE "C"` or `"POSIX"` only.
//!
//! # Subqueries in FROM and top-k per group
//!
//! `FROM (SELECT …) AS alias` (also joined, `JOIN (SELECT …) AS a ON …`) is
//! planned by the same rules in its own scope (it cannot see the outer
//! tables), then read like a table: its output columns with their types and
//! nullability, keyed by its proven key (so `GROUP BY` inside makes the
//! group columns unique outside), and reading every source column it reads.
//! An alias is required; column aliases after it, LATERAL and ORDER BY /
//! LIMIT inside are refused.
//!
//! Top-k per group is written with `ROW_NUMBER()` in such a subquery and a
//! bound on it in the outer WHERE:
//!
//! ```sql
//! CREATE MATERIALIZED VIEW top_products AS
//! SELECT category, product_id, rating FROM (
//!   SELECT category, id AS product_id, rating,
//!          ROW_NUMBER() OVER (PARTITION BY category ORDER BY rating DESC, id) AS rn
//!   FROM products) AS ranked
//! WHERE rn <= 10;
//! ```
//!
//! * One `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()` `OVER (PARTITION BY …
//!   ORDER BY …)` per subquery, as a whole select item, in an ungrouped,
//!   non-DISTINCT subquery (rank a grouped query from a subquery around
//!   it). Other window functions, frames and named windows are refused.
//!   RANK and DENSE_RANK number tied rows alike (no unique ORDER BY needed)
//!   and the bound keeps every row tied at the boundary.
//! * ORDER BY terms take ASC/DESC and NULLS FIRST/LAST; without NULLS the
//!   dialect's default holds (SQLite: NULLs first ascending, last
//!   descending; PostgreSQL the reverse).
//! * For ROW_NUMBER the partition and order terms together must identify a
//!   row (SQL numbers tied rows in an unspecified order): end the ORDER BY
//!   with the primary key. Otherwise the view is refused, with that hint.
//! * The outer WHERE must bound the row number with a top-level AND term:
//!   `rn <= k`, `rn < k`, `rn = 1`, `rn BETWEEN 1 AND k` or mirrored
//!   (`k >= rn`), k an integer literal; `rn = k` and `rn BETWEEN j AND k`
//!   also work (maintained as the top k, then filtered). Selecting `rn` in
//!   the outer query gives the rank within the top k.
//! * A ranked subquery cannot be the right side of a LEFT JOIN.
//!
//! Maintenance keeps every row of each partition in order (O(log n) per
//! change) and emits only changes to the first k; see `denorm-core`'s
//! `TopK`.
//!
//! # Subqueries in expressions
//!
//! `[NOT] EXISTS (…)`, `x [NOT] IN (SELECT …)` (SQL's three-valued result)
//! and scalar `(SELECT …)` are accepted in WHERE, the SELECT list and HAVING,
//! nested, uncorrelated or correlated, and planned as LEFT JOINs to
//! relations with at most one row per correlation value (`subquery.rs`):
//!
//! ```sql
//! SELECT u.id, (SELECT COUNT(*) FROM posts p WHERE p.author_id = u.id) AS posts,
//!        (SELECT p.title FROM posts p WHERE p.author_id = u.id
//!         ORDER BY p.created_at DESC, p.id DESC LIMIT 1) AS latest_title
//! FROM users u
//! WHERE NOT EXISTS (SELECT 1 FROM bans b WHERE b.user_id = u.id)
//! ```
//!
//! * Correlation: the subquery's WHERE terms `inner = outer`; EXISTS, IN,
//!   aggregate and first-row scalar subqueries also take other terms
//!   (`l2.suppkey <> l1.suppkey`), evaluated per distinct tuple of the outer
//!   values read. In
//!   HAVING and a grouped SELECT list the outer side is a GROUP BY
//!   expression or an aggregate.
//! * A scalar subquery is an aggregate (COUNT over no rows is 0), provably
//!   one row (correlated on a key), or `ORDER BY … LIMIT 1` with an order
//!   that identifies a row.
//! * Refused with a hint: other correlations, outer references outside the
//!   subquery's WHERE, references two levels out (unless the middle
//!   subquery equates them with its own column), subqueries in JOIN … ON,
//!   GROUP BY and aggregate arguments, LIMIT in IN, OFFSET, feed views.
//!
//! ```
//! use denorm_sql::{plan_views, KeyOrigin};
//! use denorm_types::{Catalog, ColumnSchema, Dialect, ScalarType, TableSchema};
//!
//! let mut catalog = Catalog::new();
//! catalog.add(TableSchema {
//!     name: "reviews".into(),
//!     columns: vec![
//!         ColumnSchema { name: "id".into(), ty: ScalarType::Int, nullable: false },
//!         ColumnSchema { name: "product_id".into(), ty: ScalarType::Int, nullable: false },
//!         ColumnSchema { name: "rating".into(), ty: ScalarType::Int, nullable: false },
//!     ],
//!     primary_key: vec![0],
//!     unique_keys: vec![],
//! });
//! let sql = "CREATE MATERIALIZED VIEW stats WITH (max_staleness = '2s') AS
//!            SELECT product_id, COUNT(*) AS n, AVG(rating) AS avg_rating
//!            FROM reviews GROUP BY product_id";
//! let views = plan_views(sql, &catalog, Dialect::Sqlite).unwrap();
//! assert_eq!(views[0].key.origin, KeyOrigin::GroupBy);
//! assert_eq!(views[0].columns[2].ty, ScalarType::Float);
//!
//! let errors = plan_views("CREATE MATERIALIZED VIEW v AS SELECT id FROM review", &catalog, Dialect::Sqlite)
//!     .unwrap_err();
//! assert_eq!(errors[0].render("views.sql").lines().next(), Some("error: table \"review\" does not exist (views.sql:1:46)"));
//! ```
//!
//! # Typing
//!
//! Every expression gets a static [`ScalarType`] and nullability at plan time.
//! Column types come from the [`Catalog`]; `1` is an integer, `1.5` a double,
//! `'a'` text, `NULL` the null type that joins any other; `TRUE`/`FALSE` are
//! booleans in PostgreSQL and the integers 1/0 in SQLite.
//!
//! * `+ - * /` take numbers (integer op integer is an integer, a double
//!   makes a double); `%` takes integers only (the databases disagree on
//!   doubles).
//! * `||` needs a text operand; an integer operand is cast to text; in
//!   SQLite so is a double (as SQLite writes it: `1.0`, `1.0e+17`) or a
//!   value of a column without affinity; PostgreSQL's doubles and booleans
//!   are refused (denorm does not format them as PostgreSQL does).
//! * Comparisons, `IN`, `BETWEEN`, `NULLIF` and `CASE x WHEN` compare numbers
//!   with numbers, text with text, booleans with booleans. `'1' = 1` and
//!   `'a' + 1` are plan-time errors asking for an explicit CAST: SQLite would
//!   convert silently by column affinity, which denorm does not reproduce.
//! * Conditions (WHERE, HAVING, ON, CASE WHEN, AND/OR/NOT) are booleans; in
//!   SQLite a number is also accepted and read as a truth value (non-zero;
//!   text an INTEGER column holds by its numeric prefix).
//! * SQLite columns without affinity (no declared type, or `BLOB`) are
//!   [`ScalarType::Any`]: they compare with literals and expressions of any
//!   type (by storage class, then value) but not with a typed column or CAST
//!   (SQLite would convert them by its affinity first), and their
//!   arithmetic, `abs()` and SUM are doubles (holding integers or doubles,
//!   as SQLite computes them).
//! * CASE and COALESCE branches unify (integer with double gives double,
//!   without casting the values).
//! * Aggregates: COUNT is a non-null integer; SUM keeps an integer or double
//!   argument's type (SQLite also sums text and untyped values, typed
//!   double), AVG is a double, MIN/MAX keep their argument's type; all but
//!   COUNT may be NULL.
//! * In SQLite, booleans used as numbers (`SUM(x > 0)`) and boolean output
//!   columns become integers (`Cast { to: Int }`), as SQLite returns 0/1.
//!
//! # Dialect differences
//!
//! | | SQLite | PostgreSQL |
//! |---|---|---|
//! | `TRUE`, comparisons as output | integer 1/0 | boolean |
//! | number as a condition | non-zero is true | error |
//! | CAST of a double AS TEXT, double `\|\|` text | SQLite's text (`%!.17g`) | refused |
//! | LIKE | case-insensitive (ASCII) | case-sensitive; ILIKE case-insensitive |
//! | ILIKE, `x::type` | refused | accepted |
//! | LOWER/UPPER | ASCII only | all of Unicode |
//! | `/` and `%` by zero | NULL (result nullable) | runtime error |
//! | CAST AS BOOLEAN | integer (from integers only) | boolean |
//! | CAST AS REAL / DOUBLE / CHAR | accepted | refused (float4, no type, char(1)) |
//! | unaliased expression name | the text as written | `count`, `case`, `int4`, `?column?` … |
//! | unquoted alias | as written | lower-cased |

// `PlanError` (128 bytes: message, detail, hint, location, view and the
// boxed further errors) travels in every planning `Result`; errors are the
// cold path, so it is not boxed.
#![allow(clippy::result_large_err)]

mod compound_keyed;
mod date_arith;
mod derived;
mod expr;
mod feed;
mod from;
mod func;
mod key;
mod names;
mod order;
mod query;
mod scope;
mod select;
mod shift;
mod source;
mod statement;
mod subquery;

mod types;
mod values;
mod window;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use denorm_expr::{Plan, SortKey};
use denorm_types::{Catalog, Collation, Dialect, ScalarType};
pub use feed::{FeedDef, FeedOrder, FeedReference};

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
    /// Further independent errors found in the same view (other select
    /// items, the WHERE clause), reported after this one by [`plan_each`].
    /// Boxed: errors travel in `Result`s and must stay small.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<PlanError>>>,
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
        PlanError { message: message.into(), detail: None, hint: None, location, view: None, more: None }
    }

    /// The first of `errors` (in source order) carrying the others, or
    /// `None` when there are none.
    pub(crate) fn combine(errors: Vec<PlanError>) -> Option<PlanError> {
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        Some(first.joined(errors.collect()))
    }

    /// This error and `others`, the first in source order carrying the rest.
    pub(crate) fn joined(self, others: Vec<PlanError>) -> PlanError {
        let mut all: Vec<PlanError> = std::iter::once(self).chain(others).flat_map(PlanError::flatten).collect();
        all.sort_by_key(|e| e.location);
        all.dedup();
        let mut all = all.into_iter();
        match all.next() {
            Some(first) => {
                let more: Vec<PlanError> = all.collect();
                PlanError { more: (!more.is_empty()).then(|| Box::new(more)), ..first }
            }
            None => PlanError::new("internal error: no error to report (bug)", None),
        }
    }

    /// This error and the ones it carries, each on its own.
    fn flatten(mut self) -> Vec<PlanError> {
        let more = self.more.take().map(|m| *m).unwrap_or_default();
        std::iter::once(self).chain(more.into_iter().flat_map(PlanError::flatten)).collect()
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
    /// SQLite: the collation the column carries (a source column's declared
    /// one, or a `COLLATE`), `None` for other expressions. Where the view
    /// groups or deduplicates under a collation other than BINARY, the column
    /// holds the collation key or, in a view's own output, the least of the
    /// group's values (see ARCHITECTURE.md, "Collations").
    pub collation: Option<denorm_types::Collation>,
    /// PostgreSQL: the column is a `smallint`/`integer` rather than a
    /// `bigint` (denorm holds all three as [`ScalarType::Int`]); a query
    /// over the view as a subquery sums it as `bigint`, not `numeric`.
    pub narrow: bool,
    /// SQLite: the column has no type affinity (its expression is neither
    /// a column with one nor a CAST): a query over it as a subquery
    /// converts nothing when comparing it (see `types::has_affinity`).
    pub no_affinity: bool,
}

/// `WITH (on_stale = …)`: what a read gets while the view is beyond its
/// `max_staleness` budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnStale {
    /// Serve the view's rows anyway (the default); `/views` reports
    /// `within_sla: false`.
    #[default]
    Serve,
    /// Answer key lookups from the source with the defining query (the
    /// seeds' "fall back to the join on the normalized database").
    Fallback,
}

/// `WITH (refresh = …)`: when the view's published state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Refresh {
    /// On every committed change (the default).
    #[default]
    OnChange,
    /// On a schedule: source changes are gathered and applied together
    /// every period; readers see the last refreshed state in between.
    Every(Duration),
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

/// One term of a view's read order ([`ViewDef::order`]): an output column,
/// its direction, where NULLs go, and the collation its text sorts under
/// when the ORDER BY names one other than the column's own
/// (`ORDER BY title COLLATE NOCASE` over a BINARY column, `COLLATE BINARY`
/// over a NOCASE one); `None`: the column's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadOrder {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
    pub collation: Option<Collation>,
}

impl From<SortKey> for ReadOrder {
    fn from(k: SortKey) -> Self {
        ReadOrder { column: k.column, descending: k.descending, nulls_first: k.nulls_first, collation: None }
    }
}

impl fmt::Display for ReadOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = SortKey { column: self.column, descending: self.descending, nulls_first: self.nulls_first };
        match self.collation {
            Some(c) => write!(f, "{key} COLLATE {c}"),
            None => write!(f, "{key}"),
        }
    }
}

/// A planned view.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDef {
    pub name: String,
    pub columns: Vec<OutputColumn>,
    pub key: ViewKey,
    pub max_staleness: Option<Duration>,
    /// What readers get while the view is beyond `max_staleness`.
    pub on_stale: OnStale,
    /// When the view's published state is brought up to date.
    pub refresh: Refresh,
    pub plan: Plan,
    pub dependencies: Vec<TableDependency>,
    /// The defining SELECT exactly as written, runnable on the source.
    pub select_sql: String,
    /// Where the CREATE statement starts.
    pub location: Location,
    /// `WITH (partition_by = …)`: a feed view, maintained by the feed's
    /// plans instead of `plan` (which stays the defining query, e.g. for
    /// display); see [`FeedDef`].
    pub feed: Option<FeedDef>,
    /// The query's top-level `ORDER BY` over output columns: the order reads
    /// return rows in when they ask for none (empty: key order).
    pub order: Vec<ReadOrder>,
    /// `WITH (index = 'a, b; c')`: secondary indexes a table sink creates
    /// (each a list of output column indexes).
    pub indexes: Vec<Vec<usize>>,
}

/// Plans every `CREATE MATERIALIZED VIEW` statement in `sql` against the
/// source tables in `catalog`, with `dialect`'s semantics. Returns all views,
/// or every error found (planning goes on past a bad view to report the rest).
pub fn plan_views(sql: &str, catalog: &Catalog, dialect: Dialect) -> Result<Vec<ViewDef>, Vec<PlanError>> {
    let (views, errors) = plan_each(sql, catalog, dialect);
    if errors.is_empty() {
        Ok(views)
    } else {
        Err(errors)
    }
}

/// Like [`plan_views`], but keeps the views that plan beside the errors of
/// those that do not. A running engine uses it after a source schema change:
/// views the change breaks fail (each error names its view in
/// [`PlanError::view`]), the others go on.
pub fn plan_each(sql: &str, catalog: &Catalog, dialect: Dialect) -> (Vec<ViewDef>, Vec<PlanError>) {
    let source = source::Source::new(sql);
    let statements = match statement::split(&source) {
        Ok(statements) => statements,
        Err(e) => return (Vec::new(), vec![e]),
    };
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
            Err(e) => errors.extend(e.flatten().into_iter().map(|e| PlanError { view: Some(view.name.clone()), ..e })),
        }
    }
    (views, errors)
}
