//! EXISTS and scalar aggregate subqueries correlated by conditions other
//! than equalities, evaluated over the domain of the outer values they read.

use denorm_expr::{Aggregate, BinaryOp, Expr, JoinKind, Plan};
use denorm_types::{Datum, ScalarType};
use sqlparser::ast::{self, SelectItem};

use super::correlation::{identifiers, knows, one, Inner};
use super::{
    aggregate_value, boolean, coalesce_zero, count, nested_in_aggregate, split_having, Build, Lowered, Step,
    Subqueries, CORRELATION_HINT,
};
use crate::expr::{Clause, Lowerer};
use crate::scope::Scope;
use crate::select::plan_select;
use crate::PlanError;

/// The row count of an `EXISTS` whose correlation includes terms other than
/// equalities (`l2.suppkey <> l1.suppkey`); see [`domain_right`].
pub(super) fn exists_residual(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
) -> Result<Expr, PlanError> {
    if inner.grouped() {
        return Err(PlanError::new(
            "a grouped subquery cannot be correlated by conditions other than equalities",
            inner.at,
        )
        .hint(CORRELATION_HINT));
    }
    let select = inner.rebuild(vec![one()], false, false);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    let terms = Terms { scope: &scope, residual: &inner.residual };
    let (first, key_count) = domain_right(lw, subqueries, inner, terms, body.input, Vec::new(), vec![count(None)])?;
    Ok(coalesce_zero(Expr::Column(first + key_count)))
}

/// A scalar aggregate subquery (no GROUP BY) whose correlation includes
/// terms other than equalities: its aggregates computed per domain tuple.
pub(super) fn scalar_aggregate_residual(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    item: SelectItem,
) -> Lowered {
    let mut select = inner.rebuild(vec![item], false, false);
    select.projection.truncate(1);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    let (reduce, having) = split_having(body.input);
    let Plan::Reduce { input, aggregates, group_key } = reduce else { return Err(nested_in_aggregate(inner.at)) };
    let Plan::Map { input: rows, exprs: arguments } = *input else { return Err(nested_in_aggregate(inner.at)) };
    if !group_key.is_empty() {
        return Err(nested_in_aggregate(inner.at));
    }
    let residual: Vec<&ast::Expr> = inner.residual.iter().chain(&inner.outer_only).copied().collect();
    let terms = Terms { scope: &scope, residual: &residual };
    let (first, key_count) = domain_right(lw, subqueries, inner, terms, *rows, arguments, aggregates.clone())?;
    let value = &body.items[0].typed;
    Ok(aggregate_value(subqueries, inner, value, having, &aggregates, (0, first), first + key_count))
}

/// The planned subquery's scope and the correlated terms that are not
/// equalities.
#[derive(Clone, Copy)]
struct Terms<'t, 'q, 'c> {
    scope: &'t Scope<'c>,
    residual: &'t [&'q ast::Expr],
}

/// Joins, per distinct tuple of the outer values the subquery reads (its
/// domain), the aggregates of the inner rows that match it: on the
/// equalities, with the other terms as the join's residual. `rows` is the
/// subquery's FROM row (filtered by its own WHERE); `aggregates` read
/// `extra`, expressions over it. Returns the placeholder of the right
/// side's first column and the number of key columns before the
/// aggregates.
///
/// ```text
///  domain = Distinct(keys, outer values read)     a nullable value's key: (v IS NULL, coalesce(v, filler))
///  right  = Reduce aggregates by keys (domain ⋈[equalities, residual] inner rows)
///  outer  ⟕ right on keys
/// ```
fn domain_right(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    terms: Terms<'_, '_, '_>,
    rows: Plan,
    extra: Vec<Expr>,
    mut aggregates: Vec<Aggregate>,
) -> Result<(usize, usize), PlanError> {
    let scope = terms.scope;
    let residual = residual_condition(lw, subqueries, terms)?;
    subqueries.scope.subquery_reads.borrow_mut().extend(scope.dependencies(inner.cx.catalog));
    let inner_width = scope.arity();
    let columns = residual.columns();
    let inner_columns: Vec<usize> = columns.iter().copied().filter(|&c| c < inner_width).collect();
    let outer_columns: Vec<usize> = columns.iter().filter(|&&c| c >= inner_width).map(|&c| c - inner_width).collect();
    let keys = domain_keys(inner, subqueries.scope, &outer_columns)?;
    let key_count = keys.len();
    let payload: Vec<Expr> = outer_columns.iter().map(|&q| Expr::Column(q)).collect();
    let eq = inner.pairs.len();
    // Inner rows: [equality inner values, inner columns the residual reads,
    // extra], over the planned subquery's FROM row.
    let inner_lw = Lowerer { scope, clause: Clause::Where, grouping: None, subqueries: None, ..*lw };
    let mut projected = Vec::with_capacity(eq + inner_columns.len() + extra.len());
    for p in &inner.pairs {
        projected.push(inner_lw.lower(&p.inner_ast, 0)?.expr);
    }
    projected.extend(inner_columns.iter().map(|&c| Expr::Column(c)));
    projected.extend(extra);
    let inner_rows = Plan::Map { input: Box::new(rows), exprs: projected };
    // Over [domain keys, domain payload, inner rows].
    let mut residual = residual;
    let domain_width = key_count + payload.len();
    let position = |list: &[usize], c: usize| list.iter().position(|&x| x == c).unwrap_or_default();
    residual.remap_columns(&|c| match c < inner_width {
        true => domain_width + eq + position(&inner_columns, c),
        false => key_count + position(&outer_columns, c - inner_width),
    });
    let extra_at = domain_width + eq + inner_columns.len();
    for a in &mut aggregates {
        if let Some(arg) = &mut a.arg {
            arg.remap_columns(&|c| extra_at + c);
        }
    }
    let width = key_count + aggregates.len();
    let build = Build(Box::new(move |domain: Plan| {
        let joined = Plan::Join {
            left: Box::new(domain),
            right: Box::new(inner_rows),
            kind: JoinKind::Inner,
            left_key: (0..eq).collect(),
            right_key: (0..eq).collect(),
            residual: Some(residual),
        };
        Plan::Reduce { input: Box::new(joined), group_key: (0..key_count).collect(), aggregates }
    }));
    let appended = subqueries.push(Step::Append(keys), key_count);
    let keys = (appended..appended + key_count).collect();
    let first = subqueries.push(Step::Domain { keys, payload, build }, width);
    Ok((first, key_count))
}

/// The non-equality correlated terms as one condition over the subquery's
/// FROM row followed by the outer row (names resolve inner first), each
/// column they read marked where the view's reads are collected.
fn residual_condition(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    terms: Terms<'_, '_, '_>,
) -> Result<Expr, PlanError> {
    let scope = terms.scope;
    let mut combined = Scope::default();
    combined.catalog = scope.catalog;
    for r in scope.relations.iter().chain(subqueries.scope.relations.iter()) {
        combined.push_derived(r.name.clone(), r.table.clone().into_owned(), Vec::new(), r.outer);
    }
    let residual_lw = Lowerer { scope: &combined, clause: Clause::Where, grouping: None, subqueries: None, ..*lw };
    let mut out: Option<Expr> = None;
    for c in terms.residual {
        for idents in identifiers(c) {
            // Errors are reported by the lowering below.
            let _ = match knows(scope, idents) {
                true => scope.resolve(idents),
                false => subqueries.scope.resolve(idents),
            };
        }
        let t = residual_lw.lower_condition(c, "WHERE", 0)?.expr;
        out = Some(match out {
            None => t,
            Some(prev) => Expr::binary(BinaryOp::And, prev, t),
        });
    }
    Ok(out.unwrap_or(boolean(true)))
}

/// The domain's key: the equalities' outer values, then each outer column
/// the residual reads (a nullable one as `(v IS NULL, coalesce(v, filler))`,
/// since a join key never matches NULL).
fn domain_keys(inner: &Inner<'_, '_, '_>, outer: &Scope<'_>, outer_columns: &[usize]) -> Result<Vec<Expr>, PlanError> {
    let mut keys: Vec<Expr> = inner.outer_keys();
    for &q in outer_columns {
        let (ty, nullable) = outer_column_type(outer, q);
        if !nullable {
            keys.push(Expr::Column(q));
            continue;
        }
        let Some(filler) = filler(ty) else {
            return Err(PlanError::new(
                format!("a correlated condition on a nullable {ty} column cannot be decorrelated"),
                inner.at,
            )
            .hint(CORRELATION_HINT));
        };
        keys.push(Expr::IsNull(Box::new(Expr::Column(q))));
        keys.push(Expr::Coalesce(vec![Expr::Column(q), Expr::Literal(filler)]));
    }
    Ok(keys)
}

/// The type and nullability of the outer row's column `position`.
fn outer_column_type(scope: &Scope<'_>, position: usize) -> (ScalarType, bool) {
    for (r, relation) in scope.relations.iter().enumerate() {
        let width = relation.table.columns.len();
        if position >= relation.offset && position < relation.offset + width {
            let c = &scope.relations[r].table.columns[position - relation.offset];
            return (c.ty, c.nullable || relation.outer);
        }
    }
    (ScalarType::Null, true)
}

/// A value of `ty` standing for NULL beside an `IS NULL` flag in a join key.
fn filler(ty: ScalarType) -> Option<Datum<'static>> {
    match ty {
        ScalarType::Int => Some(Datum::Int(0)),
        ScalarType::Float => Some(Datum::Float(0.0)),
        ScalarType::Text => Some(Datum::Text("".into())),
        ScalarType::Bool => Some(Datum::Bool(false)),
        _ => None,
    }
}
