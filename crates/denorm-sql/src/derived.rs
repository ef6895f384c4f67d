//! Subqueries in FROM (derived tables) and the top-k form.
//!
//! ```text
//!  FROM (SELECT …) AS h            the subquery planned on its own (its own scope), then
//!                                  a relation like a table: its output columns, typed;
//!                                  keyed by its proven key; reading what the subquery reads
//!
//!  SELECT … FROM (SELECT …, ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) AS rn FROM t) AS r
//!  WHERE rn <= 10                  TopK(10 per p by o) inside the relation; the bound
//!                                  conjunct is consumed by it
//! ```
//!
//! A ranked subquery needs a bound on its row number among the outer
//! WHERE's top-level AND terms — `rn <= k`, `rn < k`, `rn = 1`,
//! `rn BETWEEN 1 AND k` (or mirrored, `k >= rn`), k an integer literal —
//! since maintaining every row's number would renumber a whole partition
//! on each change. Several bounds take the smallest; `rn = k` and
//! `rn BETWEEN j AND k` bound at k and stay as filters. Other conditions on
//! `rn` are ordinary filters over the top k. A ranked subquery cannot be
//! the right side of a LEFT JOIN (the bound would have to keep unmatched
//! rows). `RANK()` and `DENSE_RANK()` take the same bounds (the plan's
//! `TopK` carries the numbering).

use denorm_expr::Plan;
use denorm_types::{ColumnSchema, Dialect, TableSchema};
use sqlparser::ast;

use crate::query::plan_query;
use crate::scope::Scope;
use crate::select::{finish, plan_select, query_select, Context};
use crate::source::location;
use crate::{Location, OutputColumn, PlanError, TableDependency, ViewKey};

/// Subqueries in FROM nested deeper than this are refused.
const MAX_NESTING: usize = 16;

const BOUND_HINT: &str =
    "add e.g. WHERE rn <= 10 to the query around the subquery (also rn < k, rn = 1, rn BETWEEN 1 AND k)";

/// A planned subquery in FROM (or WITH query).
#[derive(Debug, Clone)]
pub(crate) struct Derived {
    /// The relation the outer query sees, named by the alias.
    pub schema: TableSchema,
    pub plan: Plan,
    pub reads: Vec<TableDependency>,
    /// For a ranked subquery: its row number column and the call's position.
    pub rank: Option<(usize, Option<Location>)>,
    /// Each output column's collation (SQLite keeps a column's collation
    /// through a subquery in FROM).
    pub collations: Vec<Option<denorm_types::Collation>>,
    /// Which output columns are PostgreSQL `smallint`/`integer`.
    pub narrow: Vec<bool>,
    /// Which output columns have no SQLite affinity (see
    /// [`crate::types::Typed::no_affinity`]).
    pub no_affinity: Vec<bool>,
}

pub(crate) fn plan_derived(
    subquery: &ast::Query,
    alias: &str,
    cx: &Context<'_, '_>,
    at: Option<Location>,
) -> Result<Derived, PlanError> {
    if cx.depth >= MAX_NESTING {
        return Err(PlanError::new(
            format!("subqueries in FROM are nested too deeply (more than {MAX_NESTING} levels)"),
            at,
        ));
    }
    let start = crate::query::query_start(subquery).unwrap_or(cx.start);
    let inner = Context { start, depth: cx.depth + 1, operand: false, ..*cx };
    let plain = matches!(&*subquery.body, ast::SetExpr::Select(_))
        && subquery.with.is_none()
        && subquery.order_by.is_none()
        && subquery.limit_clause.is_none();
    if !plain {
        // WITH, UNION/EXCEPT/INTERSECT, ORDER BY … LIMIT: a whole query.
        let planned = plan_query(subquery, &inner)?;
        let schema = relation_schema(alias, &planned.columns, &planned.key, cx.dialect);
        let collations = planned.columns.iter().map(|c| c.collation).collect();
        let narrow = planned.columns.iter().map(|c| c.narrow).collect();
        let no_affinity = planned.columns.iter().map(|c| c.no_affinity).collect();
        let reads = planned.reads;
        return Ok(Derived { schema, plan: planned.plan, reads, rank: None, collations, narrow, no_affinity });
    }
    let select = query_select(subquery, &inner)?;
    let (scope, body) = plan_select(select, &inner)?;
    let rank = body.window.as_ref().map(|w| (w.item, w.at));
    let finished = finish(body, select, &scope, &inner)?;
    let schema = relation_schema(alias, &finished.columns, &finished.key, cx.dialect);
    let collations = finished.columns.iter().map(|c| c.collation).collect();
    let narrow = finished.columns.iter().map(|c| c.narrow).collect();
    let no_affinity = finished.columns.iter().map(|c| c.no_affinity).collect();
    let reads = scope.dependencies(cx.catalog);
    Ok(Derived { schema, plan: finished.plan, reads, rank, collations, narrow, no_affinity })
}

/// How the outer query sees a subquery's output: typed columns, keyed by
/// its proven key.
fn relation_schema(alias: &str, columns: &[OutputColumn], key: &ViewKey, dialect: Dialect) -> TableSchema {
    let columns = columns
        .iter()
        .map(|c| {
            let ty = crate::func::outside_subquery(c.ty, dialect);
            ColumnSchema { name: c.name.clone(), ty, nullable: c.nullable }
        })
        .collect();
    let primary_key = if key.proven_unique { key.columns.clone() } else { Vec::new() };
    TableSchema { name: alias.to_string(), columns, primary_key, unique_keys: Vec::new() }
}

/// The `TopK` limit for the ranked relation `relation` (its row number at
/// `column`) from the outer WHERE, and the conjuncts it makes redundant.
pub(crate) fn bound<'q>(
    relation: usize,
    (column, function): (usize, &str),
    rank_at: Option<Location>,
    conjuncts: &[&'q ast::Expr],
    scope: &Scope<'_>,
) -> Result<(usize, Vec<&'q ast::Expr>), PlanError> {
    let position = scope.relations[relation].offset + column;
    let is_rank = |e: &ast::Expr| {
        let idents = match strip(e) {
            ast::Expr::Identifier(i) => std::slice::from_ref(i),
            ast::Expr::CompoundIdentifier(v) => v.as_slice(),
            _ => return false,
        };
        scope.resolve(idents).is_ok_and(|c| c.position == position && c.merged.is_none())
    };
    let mut limit: Option<usize> = None;
    let mut consumed = Vec::new();
    for &c in conjuncts {
        let Some((k, exact)) = conjunct_bound(c, &is_rank) else { continue };
        limit = Some(limit.map_or(k, |l| l.min(k)));
        if exact {
            consumed.push(c);
        }
    }
    let rn = &scope.relations[relation].table.columns[column].name;
    let name = &scope.relations[relation].name;
    match limit {
        Some(limit) => Ok((limit, consumed)),
        None => {
            Err(PlanError::new(format!("{function} of subquery \"{name}\" needs a bound in the outer WHERE"), rank_at)
                .detail(format!(
                    "denorm maintains the first k rows of each partition; no condition {name}.{rn} <= k was found"
                ))
                .hint(BOUND_HINT))
        }
    }
}

/// `(k, exact)`: the conjunct keeps only row numbers up to k; `exact` when
/// it keeps all of them (so the `TopK` makes it redundant).
fn conjunct_bound(e: &ast::Expr, is_rank: &dyn Fn(&ast::Expr) -> bool) -> Option<(usize, bool)> {
    use ast::BinaryOperator as B;
    let clamp = |k: i64| usize::try_from(k.max(0)).unwrap_or(usize::MAX);
    match strip(e) {
        ast::Expr::BinaryOp { left, op, right } => {
            let (op, k) = if is_rank(left) {
                (op.clone(), integer(right)?)
            } else if is_rank(right) {
                let mirrored = match op {
                    B::GtEq => B::LtEq,
                    B::Gt => B::Lt,
                    B::Eq => B::Eq,
                    _ => return None,
                };
                (mirrored, integer(left)?)
            } else {
                return None;
            };
            match op {
                B::LtEq => Some((clamp(k), true)),
                B::Lt => Some((clamp(k.saturating_sub(1)), true)),
                B::Eq => Some((clamp(k), k <= 1)),
                _ => None,
            }
        }
        ast::Expr::Between { expr, negated: false, low, high } if is_rank(expr) => {
            let (low, high) = (integer(low)?, integer(high)?);
            Some((clamp(high), low <= 1))
        }
        _ => None,
    }
}

fn strip(mut e: &ast::Expr) -> &ast::Expr {
    while let ast::Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

fn integer(e: &ast::Expr) -> Option<i64> {
    match strip(e) {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => integer(expr).map(|k| -k),
        _ => None,
    }
}

/// Sets the `TopK` limit of a ranked subquery's plan (`Map` over `TopK`, as
/// [`finish`] builds it).
pub(crate) fn set_limit(plan: &mut Plan, k: usize) {
    if let Plan::Map { input, .. } = plan {
        if let Plan::TopK { limit, .. } = &mut **input {
            *limit = k;
            return;
        }
    }
    unreachable!("a ranked subquery plans as Map over TopK (bug)")
}

/// `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()`: the ranking a ranked
/// subquery's plan (`Map` over `TopK`) computes, for messages.
pub(crate) fn ranking_name(plan: Option<&Plan>) -> &'static str {
    match plan {
        Some(Plan::Map { input, .. }) => match &**input {
            Plan::TopK { numbering, .. } => crate::window::sql_name(*numbering),
            _ => "ROW_NUMBER()",
        },
        _ => "ROW_NUMBER()",
    }
}

/// Where a subquery in FROM starts, for errors about it.
pub(crate) fn subquery_location(q: &ast::Query) -> Option<Location> {
    match &*q.body {
        ast::SetExpr::Select(s) => location(s.select_token.0.span.start),
        _ => None,
    }
}
