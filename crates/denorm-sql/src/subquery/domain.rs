//! EXISTS, IN and scalar aggregate subqueries correlated by conditions
//! other than equalities, evaluated over the domain of the outer values
//! they read.

use denorm_expr::{Aggregate, BinaryOp, Expr, JoinKind, Plan, SortKey};
use denorm_types::{Datum, ScalarType};
use sqlparser::ast::{self, SelectItem};

use super::correlation::{identifiers, knows, one, Inner};
use super::{
    aggregate_value, boolean, count, in_flags, nested_in_aggregate, or_false, order_items, positive, same_type,
    sort_key, split_having, three_valued_in, ties, Build, Lowered, Step, Subqueries, CORRELATION_HINT,
};
use crate::expr::{Clause, Lowerer};
use crate::key::properties;
use crate::scope::Scope;
use crate::select::plan_select;
use crate::types::Typed;
use crate::PlanError;

/// Aggregate arguments read the domain's carried values from here on.
const OUTER_VALUE: usize = 1 << 20;

/// Whether an `EXISTS` whose correlation includes terms other than
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
    let (first, key_count) = domain_right(
        lw,
        subqueries,
        inner,
        terms,
        Computed {
            rows: body.input,
            extra: Vec::new(),
            values: Vec::new(),
            aggregates: vec![count(None)],
            flags: vec![positive(Expr::Column(0))],
            first: None,
        },
    )?;
    Ok(or_false(Expr::Column(first + key_count)))
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
    let (first, key_count) = domain_right(
        lw,
        subqueries,
        inner,
        terms,
        Computed {
            rows: *rows,
            extra: arguments,
            values: Vec::new(),
            aggregates: aggregates.clone(),
            flags: Vec::new(),
            first: None,
        },
    )?;
    let value = &body.items[0].typed;
    Ok(aggregate_value(subqueries, inner, value, having, &aggregates, (0, first), first + key_count))
}

/// `x [NOT] IN (SELECT y …)` whose correlation includes terms other than
/// equalities: per domain tuple (x carried in it) the inner rows, those
/// with a non-NULL y, and those with y = x are counted, and SQL's
/// three-valued IN follows from the counts.
pub(super) fn in_residual(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    needle: Typed,
    item: SelectItem,
) -> Lowered {
    let at = inner.at;
    if inner.grouped() {
        return Err(PlanError::new("a grouped subquery cannot be correlated by conditions other than equalities", at)
            .hint(CORRELATION_HINT));
    }
    let mut select = inner.rebuild(vec![item], false, false);
    select.projection.truncate(1);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    let y = body.items[0].typed.clone();
    let collation = crate::types::comparison_collation(&needle, &y);
    let (y, needle) = (crate::types::collation_key(y, collation), crate::types::collation_key(needle, collation));
    let needle = same_type(needle, &y, at)?;
    let residual: Vec<&ast::Expr> = inner.residual.iter().chain(&inner.outer_only).copied().collect();
    let terms = Terms { scope: &scope, residual: &residual };
    let equal = Expr::Case {
        branches: vec![(
            Expr::binary(BinaryOp::Eq, Expr::Column(0), Expr::Column(OUTER_VALUE)),
            Expr::Literal(Datum::Int(1)),
        )],
        otherwise: Box::new(Expr::Literal(Datum::Null)),
    };
    let aggregates = vec![count(None), count(Some(Expr::Column(0))), count(Some(equal))];
    let x = needle.expr.clone();
    let mut flags = in_flags(Expr::Column(0), Expr::Column(1));
    flags.push(positive(Expr::Column(2)));
    let computed =
        Computed { rows: body.input, extra: vec![y.expr], values: vec![needle], aggregates, flags, first: None };
    let (first, key_count) = domain_right(lw, subqueries, inner, terms, computed)?;
    let (some_row, some_null, matched) = (first + key_count, first + key_count + 1, first + key_count + 2);
    Ok(three_valued_in(Expr::Column(matched), Expr::Column(some_row), Expr::Column(some_null), x))
}

/// A scalar subquery's `ORDER BY … LIMIT 1` row whose correlation includes
/// terms other than equalities ("the previous post": `q.id < p.id ORDER BY
/// q.id DESC LIMIT 1`): the first inner row per domain tuple. The order,
/// with the equalities' inner values, must identify an inner row.
pub(super) fn first_row_residual(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    item: SelectItem,
    terms: &[ast::OrderByExpr],
) -> Lowered {
    let at = inner.at;
    let mut select = inner.rebuild(vec![item], false, false);
    select.projection.truncate(1);
    order_items(&mut select, terms);
    let (scope, body) = plan_select(&select, &inner.cx)?;
    let value = body.items[0].typed.clone();
    let mut extra = vec![value.expr.clone()];
    let mut order = Vec::with_capacity(terms.len());
    for (i, term) in terms.iter().enumerate() {
        let t = &body.items[1 + i].typed;
        order.push(sort_key(term, t.ty, 1 + i, lw.dialect, at)?);
        extra.push(t.expr.clone());
    }
    let inner_lw = Lowerer { scope: &scope, clause: Clause::Where, grouping: None, subqueries: None, ..*lw };
    let mut identity = Vec::with_capacity(inner.pairs.len() + terms.len());
    for p in &inner.pairs {
        identity.push(inner_lw.lower(&p.inner_ast, 0)?.expr);
    }
    identity.extend(extra[1..].iter().cloned());
    let width = identity.len();
    let identified = Plan::Map { input: Box::new(body.input.clone()), exprs: identity };
    if !properties(&identified, inner.cx.catalog).is_unique(&(0..width).collect::<Vec<usize>>()) {
        return Err(ties(at));
    }
    let residual: Vec<&ast::Expr> = inner.residual.iter().chain(&inner.outer_only).copied().collect();
    let terms = Terms { scope: &scope, residual: &residual };
    let computed = Computed {
        rows: body.input,
        extra,
        values: Vec::new(),
        aggregates: Vec::new(),
        flags: Vec::new(),
        first: Some(order),
    };
    let (first, key_count) = domain_right(lw, subqueries, inner, terms, computed)?;
    let ty = crate::func::outside_subquery(value.ty, lw.dialect);
    Ok(Typed::new(Expr::Column(first + key_count), ty, true).narrowed(value.narrow))
}

/// What the right side computes per domain tuple (see [`domain_right`]).
struct Computed {
    /// The subquery's FROM row, filtered by its own WHERE.
    rows: Plan,
    extra: Vec<Expr>,
    values: Vec<Typed>,
    aggregates: Vec<Aggregate>,
    /// Over the aggregates (`Column(j)` is aggregate j): the right side's
    /// columns after the key, flags that change less often than the
    /// aggregates; empty for the aggregates themselves.
    flags: Vec<Expr>,
    /// Instead of aggregates: `extra[0]` of the first inner row per domain
    /// tuple in this order (its columns index `extra`).
    first: Option<Vec<SortKey>>,
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
/// `extra`, expressions over it (`Column(i)` is `extra[i]`), and `values`,
/// outer expressions carried by the domain (`Column(OUTER_VALUE + j)` is
/// `values[j]`). Returns the placeholder of the right
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
    computed: Computed,
) -> Result<(usize, usize), PlanError> {
    let Computed { rows, extra, values, mut aggregates, mut flags, first } = computed;
    let scope = terms.scope;
    let residual = residual_condition(lw, subqueries, terms)?;
    subqueries.scope.subquery_reads.borrow_mut().extend(scope.dependencies(inner.cx.catalog));
    let inner_width = scope.arity();
    let columns = residual.columns();
    let inner_columns: Vec<usize> = columns.iter().copied().filter(|&c| c < inner_width).collect();
    let outer_columns: Vec<usize> = columns.iter().filter(|&&c| c >= inner_width).map(|&c| c - inner_width).collect();
    // The outer values the domain carries: the columns the residual reads,
    // then `values`.
    let carried: Vec<Typed> = outer_columns
        .iter()
        .map(|&q| {
            let (ty, nullable) = outer_column_type(subqueries.scope, q);
            Typed::new(Expr::Column(q), ty, nullable)
        })
        .chain(values)
        .collect();
    let keys = domain_keys(inner, &carried)?;
    let key_count = keys.len();
    let payload: Vec<Expr> = carried.into_iter().map(|t| t.expr).collect();
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
    let values_at = key_count + outer_columns.len();
    for a in &mut aggregates {
        if let Some(arg) = &mut a.arg {
            arg.remap_columns(&|c| if c >= OUTER_VALUE { values_at + (c - OUTER_VALUE) } else { extra_at + c });
        }
    }
    flags.iter_mut().for_each(|f| f.remap_columns(&|j| key_count + j));
    let first = first
        .map(|order| order.into_iter().map(|k| SortKey { column: extra_at + k.column, ..k }).collect::<Vec<SortKey>>());
    let width = key_count
        + match (&first, flags.is_empty()) {
            (Some(_), _) => 1,
            (None, true) => aggregates.len(),
            (None, false) => flags.len(),
        };
    let build = Build(Box::new(move |domain: Plan| {
        let joined = Plan::Join {
            left: Box::new(domain),
            right: Box::new(inner_rows),
            kind: JoinKind::Inner,
            left_key: (0..eq).collect(),
            right_key: (0..eq).collect(),
            residual: Some(residual),
        };
        if let Some(order) = first {
            let top = Plan::TopK {
                input: Box::new(joined),
                partition: (0..key_count).collect(),
                order,
                limit: 1,
                rank: false,
                numbering: denorm_expr::Numbering::RowNumber,
            };
            return super::flags(top, key_count, vec![Expr::Column(extra_at)]);
        }
        let reduce = Plan::Reduce { input: Box::new(joined), group_key: (0..key_count).collect(), aggregates };
        match flags.is_empty() {
            true => reduce,
            false => super::flags(reduce, key_count, flags),
        }
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
        combined.set_collations(r.collations.clone());
        combined.set_narrow(r.narrow.clone());
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

/// The domain's key: the equalities' outer values, then each carried
/// outer value (a nullable one as `(v IS NULL, coalesce(v, filler))`, since
/// a join key never matches NULL).
fn domain_keys(inner: &Inner<'_, '_, '_>, carried: &[Typed]) -> Result<Vec<Expr>, PlanError> {
    let mut keys: Vec<Expr> = inner.outer_keys();
    for v in carried {
        if !v.nullable {
            keys.push(v.expr.clone());
            continue;
        }
        let Some(filler) = filler(v.ty) else {
            return Err(PlanError::new(
                format!("a correlated condition on a nullable {} value cannot be decorrelated", v.ty),
                inner.at,
            )
            .hint(CORRELATION_HINT));
        };
        keys.push(Expr::IsNull(Box::new(v.expr.clone())));
        keys.push(Expr::Coalesce(vec![v.expr.clone(), Expr::Literal(filler)]));
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
