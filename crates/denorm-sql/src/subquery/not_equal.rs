//! EXISTS and COUNT subqueries correlated by equalities E and one term
//! `a <> x` (`a` over the subquery's row, `x` over the outer row), planned
//! by counting instead of per domain tuple (`domain.rs`, which joins each
//! outer tuple with every inner row of its equality group: quadratic per
//! group), so their state and work are linear in the inner rows whatever
//! the groups' sizes (TPC-H q21: the other suppliers of an order):
//!
//! ```text
//!  #{inner rows matching E with a <> x} = #{matching E, a NOT NULL} − #{matching E, a = x}
//!
//!  domain = Distinct (E outer values, x) of the outer rows, x NOT NULL
//!  rows   = the subquery's rows with a NOT NULL: [E inner values, a, COUNT arguments],
//!           semi-joined to the domain's E values (counts only for the outer rows' groups)
//!  all    = Reduce counts by E (rows)          same = Reduce counts by (E, a) (rows)
//!  right  = Map [domain, coalesce(all, 0) − coalesce(same, 0)]  (domain ⟕ all on E ⟕ same on (E, x))
//!  outer  ⟕ right on (E, x)                   EXISTS: the difference > 0, computed in the Map
//! ```
//!
//! SQL's three-valued logic: `a <> x` is unknown when `a` or `x` is NULL,
//! so such inner rows never count (they are filtered out of both counts)
//! and an outer row with a NULL `x` counts none (it finds no right row: its
//! EXISTS is FALSE, its COUNTs 0). The domain (one row per distinct
//! (E, x)) keeps EXISTS a flag: an inner change that flips no flag re-joins
//! no outer row.
//!
//! Only COUNT (of rows or of values) is subtracted: MIN/MAX have no
//! inverse, and a SUM's subtraction would not reproduce the source's
//! floating-point additions or mixed storage classes; `<`/`>` select
//! ranges, not one value; several non-equality terms, HAVING or GROUP BY
//! keep the domain plan. `IN` keeps it too (its three-valued result needs
//! the counts of NULL values among the other rows as well).

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, JoinKind, Plan};
use sqlparser::ast::SelectItem;

use super::correlation::{one, Inner, Pair};
use super::{aggregate_value, coalesce_zero, count, or_false, positive, Build, Step, Subqueries};
use crate::expr::{Clause, Lowerer};
use crate::scope::Scope;
use crate::select::plan_select;
use crate::types::Typed;
use crate::PlanError;

/// What the right side holds per domain tuple after its key.
#[derive(Clone, Copy)]
enum Output {
    /// Whether some inner row matches (EXISTS).
    Exists,
    /// Each COUNT over the matching inner rows.
    Counts,
}

/// `EXISTS (…)` correlated by equalities and `ne` (`a <> x`): whether the
/// rows matching the equalities with a non-NULL `a` outnumber those with
/// `a = x`.
pub(super) fn exists_not_equal(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    ne: &Pair,
) -> Result<Expr, PlanError> {
    let select = inner.rebuild(vec![one()], false, false);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    let counted = Counted { rows: body.input, arguments: Vec::new(), counts: vec![None], output: Output::Exists };
    let first = counted_right(lw, subqueries, inner, ne, &scope, counted)?;
    Ok(or_false(Expr::Column(first)))
}

/// A scalar subquery of COUNTs only (no GROUP BY, no HAVING) correlated by
/// equalities and `ne` (`a <> x`), each COUNT the difference of two;
/// `None` when it has other aggregates (the caller plans the domain).
pub(super) fn scalar_count_not_equal(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    ne: &Pair,
    item: SelectItem,
) -> Result<Option<Typed>, PlanError> {
    let mut select = inner.rebuild(vec![item], false, false);
    select.projection.truncate(1);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    // HAVING would be a Filter over the Reduce.
    let Plan::Reduce { input, aggregates, group_key } = body.input else { return Ok(None) };
    let plain_counts = aggregates.iter().all(|a| matches!(a.func, AggregateFunc::Count));
    let Plan::Map { input: rows, exprs: arguments } = *input else { return Ok(None) };
    if !group_key.is_empty() || !plain_counts {
        return Ok(None);
    }
    let counts = aggregates.iter().map(|a| a.arg.clone()).collect();
    let counted = Counted { rows: *rows, arguments, counts, output: Output::Counts };
    let first = counted_right(lw, subqueries, inner, ne, &scope, counted)?;
    let value = &body.items[0].typed;
    Ok(Some(aggregate_value(subqueries, inner, value, None, &aggregates, (0, first), first)))
}

/// What [`counted_right`] counts.
struct Counted {
    /// The subquery's FROM row, filtered by its own WHERE.
    rows: Plan,
    /// Expressions over `rows` that the counts read (`Column(i)` is
    /// `arguments[i]`).
    arguments: Vec<Expr>,
    /// Each COUNT's argument (`None`: COUNT(*)).
    counts: Vec<Option<Expr>>,
    output: Output,
}

/// Joins, per distinct (E outer values, x) of the outer rows, the counts
/// of the inner rows matching E with `a <> x` (see the module docs).
/// Returns the placeholder of the right side's first column after its key.
fn counted_right(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    ne: &Pair,
    scope: &Scope<'_>,
    counted: Counted,
) -> Result<usize, PlanError> {
    let Counted { rows, arguments, counts, output } = counted;
    let c = inner.pairs.len();
    let rows = counted_rows(lw, subqueries, inner, ne, scope, rows, arguments)?;
    let aggregates: Vec<Aggregate> = counts
        .into_iter()
        .map(|arg| {
            count(arg.map(|mut e| {
                e.remap_columns(&|i| c + 1 + i);
                e
            }))
        })
        .collect();
    let exprs = right_columns(c, aggregates.len(), output);
    let width = exprs.len();
    let build = Build(Box::new(move |domain: Plan| {
        let domain = Plan::Filter { input: Box::new(domain), predicate: not_null(Expr::Column(c)) };
        let rows = match c {
            0 => rows,
            _ => semi_join(rows, &domain, c),
        };
        let all =
            Plan::Reduce { input: Box::new(rows.clone()), group_key: (0..c).collect(), aggregates: aggregates.clone() };
        let same = Plan::Reduce { input: Box::new(rows), group_key: (0..=c).collect(), aggregates };
        let with_all = left_join(domain, all, (0..c).collect());
        let with_same = left_join(with_all, same, (0..=c).collect());
        Plan::Map { input: Box::new(with_same), exprs }
    }));
    let mut values = inner.outer_keys();
    values.push(ne.outer.expr.clone());
    let keys = subqueries.key_columns(values);
    let first = subqueries.push(Step::Domain { keys, payload: Vec::new(), build }, width);
    Ok(first + c + 1)
}

/// The subquery's `rows` as [E inner values, a, `arguments`], those with a
/// non-NULL `a`; what they read is recorded as the view's reads.
fn counted_rows(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    ne: &Pair,
    scope: &Scope<'_>,
    rows: Plan,
    arguments: Vec<Expr>,
) -> Result<Plan, PlanError> {
    let inner_lw = Lowerer { scope, clause: Clause::Where, grouping: None, subqueries: None, ..*lw };
    let c = inner.pairs.len();
    let mut projected = Vec::with_capacity(c + 1 + arguments.len());
    for p in &inner.pairs {
        projected.push(inner_lw.lower(&p.inner_ast, 0)?.expr);
    }
    projected.push(inner_lw.lower(&ne.inner_ast, 0)?.expr);
    projected.extend(arguments);
    // After lowering: the view reads what the subquery's sides read.
    subqueries.scope.subquery_reads.borrow_mut().extend(scope.dependencies(inner.cx.catalog));
    Ok(Plan::Filter {
        input: Box::new(Plan::Map { input: Box::new(rows), exprs: projected }),
        predicate: not_null(Expr::Column(c)),
    })
}

/// The right side's columns over [domain: E outer values (`c`), x][all: E,
/// `n` counts][same: E, a, `n` counts]: the domain, then each count's
/// difference (absent groups count 0), or for EXISTS whether the first is
/// positive.
fn right_columns(c: usize, n: usize, output: Output) -> Vec<Expr> {
    let key_count = c + 1;
    let (all_at, same_at) = (key_count + c, key_count + c + n + c + 1);
    let differences = (0..n).map(|k| {
        Expr::binary(BinaryOp::Sub, coalesce_zero(Expr::Column(all_at + k)), coalesce_zero(Expr::Column(same_at + k)))
    });
    let mut exprs: Vec<Expr> = (0..key_count).map(Expr::Column).collect();
    match output {
        Output::Exists => exprs.extend(differences.take(1).map(positive)),
        Output::Counts => exprs.extend(differences),
    }
    exprs
}

/// The inner `rows` whose first `c` columns (the equalities' inner values)
/// are some domain tuple's: the counts are kept only for the outer rows'
/// groups.
fn semi_join(rows: Plan, domain: &Plan, c: usize) -> Plan {
    let groups = Plan::Distinct {
        input: Box::new(Plan::Map { input: Box::new(domain.clone()), exprs: (0..c).map(Expr::Column).collect() }),
    };
    let width = rows.arity();
    let joined = Plan::Join {
        left: Box::new(rows),
        right: Box::new(groups),
        kind: JoinKind::Inner,
        left_key: (0..c).collect(),
        right_key: (0..c).collect(),
        residual: None,
    };
    Plan::Map { input: Box::new(joined), exprs: (0..width).map(Expr::Column).collect() }
}

/// `left ⟕ right` on `key` (the same columns of each side).
fn left_join(left: Plan, right: Plan, key: Vec<usize>) -> Plan {
    Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind: JoinKind::Left,
        left_key: key.clone(),
        right_key: key,
        residual: None,
    }
}

fn not_null(e: Expr) -> Expr {
    Expr::Not(Box::new(Expr::IsNull(Box::new(e))))
}
