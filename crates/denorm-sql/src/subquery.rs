//! Subqueries in expressions — `EXISTS (…)`, `x [NOT] IN (SELECT …)` and
//! scalar `(SELECT …)` in WHERE, the SELECT list and HAVING — decorrelated
//! into joins the core maintains (Neumann & Kemper, "Unnesting Arbitrary
//! Queries"; Materialize and Feldera do the same).
//!
//! ```text
//!  clause input ─► [Map: + correlation values] ─► LeftJoin on the correlation ─► … ─► Filter / Map
//!                                                   │ right side: at most one row per correlation value
//!  EXISTS        Reduce count(*) by corr over the inner rows      → coalesce(count, 0) > 0
//!  x IN (y)      Distinct (y, corr), joined on (x, corr)         → matched, and when x or y may be
//!                Reduce count(*), count(y) by corr over it          NULL: empty? NULL y? (SQL's
//!                                                                    three-valued IN / NOT IN)
//!  (SELECT agg)  the inner's Reduce, grouped by corr             → the item over its aggregates,
//!                                                                    COUNTs coalesced to 0 (an empty
//!                                                                    group has no Reduce row)
//!  (SELECT x)    the inner rows, proven unique on corr           → x (NULL when there is none)
//! ```
//!
//! The correlation is the inner WHERE's top-level AND terms of the form
//! `inner_expr = outer_expr` (one side reading only the subquery's tables,
//! the other only the outer query's); the other terms stay in the inner
//! query. Because every right side has at most one row per correlation
//! value, the LEFT JOIN keeps each outer row exactly once (duplicates of
//! the outer bag included), and the subquery's value is an expression over
//! the joined columns — valid anywhere: under OR, in CASE, negated.
//!
//! Planning a clause registers the joins as [`Step`]s whose new columns are
//! numbered from a placeholder; [`Subqueries::apply`] then joins them to the
//! clause's input (the FROM row for WHERE and an ungrouped SELECT list, the
//! Reduce output for HAVING and a grouped SELECT list) and renumbers the
//! clause's expressions.
//!
//! `EXISTS`, `IN`, aggregate and `ORDER BY … LIMIT 1` scalar subqueries also
//! take other correlated terms (`l2.suppkey <> l1.suppkey`, `q.id < p.id`): they are then evaluated
//! once per distinct tuple of the outer values they read (see `domain.rs`),
//! but an EXISTS or a COUNT whose only such term is one `inner <> outer`
//! is counted with state linear in the inner rows (see `not_equal.rs`). In
//! EXISTS a term on outer columns alone is taken out instead:
//! `(o IS TRUE) AND EXISTS (…)`.
//!
//! Refused, with a hint: in grouped subqueries and scalar subqueries that are
//! not aggregates, a correlated term other than such an equality;
//! a reference to the outer query outside the inner WHERE; in HAVING and a
//! grouped SELECT list, correlation other than equalities with GROUP BY
//! expressions (or aggregates) of the outer query;
//! a scalar subquery that may return several rows; subqueries in JOIN … ON,
//! GROUP BY and aggregate arguments; correlation reaching past the
//! enclosing query (unless it names a value the enclosing subquery equates
//! with its own column: `p.author_id = u.id … (SELECT … WHERE r.user_id =
//! u.id)` reads `p.author_id` there).

use std::cell::{Cell, RefCell};
use std::fmt;

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, JoinKind, Plan, SortKey};
use denorm_types::{clock, Collation, Datum, Dialect, ScalarType};
use sqlparser::ast::{self, SelectItem};

use crate::expr::{not, Clause, Lowerer};
use crate::key::properties;
use crate::scope::Scope;
use crate::select::{finish, Context};
use crate::types::{self, coerce_literal, Typed};
use crate::{Location, PlanError};

mod correlation;
mod domain;
mod not_equal;

use correlation::{decorrelate, one, plan_inner, Inner};
use domain::{exists_residual, first_row_residual, in_residual, scalar_aggregate_residual};
use not_equal::{exists_not_equal, scalar_count_not_equal};

/// Columns a clause's subqueries add are numbered from here until
/// [`Subqueries::apply`] knows the width of the input they join.
const PLACEHOLDER: usize = 1 << 30;

/// Subqueries in expressions nested deeper than this are refused.
const MAX_NESTING: usize = 16;

const CORRELATION_HINT: &str = "correlate with equalities in the subquery's WHERE (inner_column = outer_column, \
     joined by AND); move conditions on outer columns alone out of the subquery, or join a grouped subquery in FROM";

type Lowered = Result<Typed, PlanError>;

/// One join (or projection) a clause's subqueries add to its input.
#[derive(Debug)]
enum Step {
    /// Appends the values as columns (correlation values that are not
    /// columns, used as join keys).
    Append(Vec<Expr>),
    /// LEFT JOIN a relation with at most one row per `right_key` value.
    Join { right: Plan, left_key: Vec<usize>, right_key: Vec<usize> },
    /// LEFT JOIN on `keys` a relation built from the domain: the distinct
    /// rows of `keys` (columns of the input) then `payload` (expressions
    /// over it).
    Domain { keys: Vec<usize>, payload: Vec<Expr>, build: Build },
}

/// Builds a right side from its domain.
struct Build(Box<dyn FnOnce(Plan) -> Plan>);

impl fmt::Debug for Build {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Build")
    }
}

/// The subqueries of one clause of one query, planned while the clause is
/// lowered and joined to its input by [`Subqueries::apply`].
pub(crate) struct Subqueries<'a, 'c> {
    cx: Context<'a, 'c>,
    /// The query's relations: where outer references resolve and where
    /// the subqueries' reads are recorded.
    scope: &'a Scope<'c>,
    /// Whether the clause's input is a Reduce output (HAVING, a grouped
    /// SELECT list), not the FROM row: correlation then reads GROUP BY
    /// expressions and aggregates.
    over_groups: bool,
    steps: RefCell<Vec<Step>>,
    /// Columns the pending steps add.
    width: Cell<usize>,
    /// The placeholder of the engine's clock once a call read it: every
    /// current-time call of the clause reads the one joined row.
    clock: Cell<Option<usize>>,
}

impl fmt::Debug for Subqueries<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subqueries").field("over_groups", &self.over_groups).field("steps", &self.steps).finish()
    }
}

impl<'a, 'c> Subqueries<'a, 'c> {
    pub fn new(cx: Context<'a, 'c>, scope: &'a Scope<'c>) -> Self {
        Subqueries {
            cx,
            scope,
            over_groups: false,
            steps: RefCell::new(Vec::new()),
            width: Cell::new(0),
            clock: Cell::new(None),
        }
    }

    /// For the clauses over a Reduce output (grouped SELECT list, HAVING).
    pub fn grouped(&self) -> Self {
        Subqueries { over_groups: true, ..Subqueries::new(self.cx, self.scope) }
    }

    /// Registers a step adding `width` columns; returns the placeholder of
    /// the first.
    fn push(&self, step: Step, width: usize) -> usize {
        let first = PLACEHOLDER + self.width.get();
        self.width.set(self.width.get() + width);
        self.steps.borrow_mut().push(step);
        first
    }

    /// The placeholder of the first column of the engine's clock (see
    /// [`denorm_types::clock`]), joined on no key like an uncorrelated
    /// scalar subquery: one row, so each input row is kept once, and the
    /// core maintains a comparison with it as an ordered `ScalarFilter`.
    pub fn clock(&self) -> usize {
        if let Some(first) = self.clock.get() {
            return first;
        }
        let get = Plan::Get { table: clock::TABLE.to_string(), arity: clock::ARITY };
        let first = self.join(get, Vec::new(), Vec::new());
        self.clock.set(Some(first));
        first
    }

    /// Join key columns holding `values`: a column as it is, any other
    /// expression appended.
    fn key_columns(&self, values: Vec<Expr>) -> Vec<usize> {
        values
            .into_iter()
            .map(|v| match v {
                Expr::Column(c) => c,
                other => self.push(Step::Append(vec![other]), 1),
            })
            .collect()
    }

    /// LEFT JOINs `right` (at most one row per `right_key` value); returns
    /// the placeholder of its first column.
    fn join(&self, right: Plan, left_key: Vec<usize>, right_key: Vec<usize>) -> usize {
        let width = right.arity();
        self.push(Step::Join { right, left_key, right_key }, width)
    }

    /// Filters `input` by a WHERE `predicate` over its columns and the
    /// pending subqueries': the AND terms that read no subquery filter the
    /// input before the subqueries are joined, so that their domains and
    /// joins hold only the rows that can pass (TPC-H q21: the late lines of
    /// one nation's suppliers, not every line), the others after.
    pub fn apply_where(&self, input: Plan, predicate: Expr) -> Plan {
        let mut terms = Vec::new();
        conjuncts(predicate, &mut terms);
        let (before, after): (Vec<Expr>, Vec<Expr>) =
            terms.into_iter().partition(|t| t.columns().iter().all(|&c| c < PLACEHOLDER));
        let input = match conjoin(before) {
            Some(predicate) => Plan::Filter { input: Box::new(input), predicate },
            None => input,
        };
        let mut predicate = conjoin(after);
        let input = self.apply(input, predicate.iter_mut());
        match predicate {
            Some(predicate) => Plan::Filter { input: Box::new(input), predicate },
            None => input,
        }
    }

    /// Joins the pending subqueries to `input` and renumbers `exprs` (the
    /// clause's lowered expressions) to read their columns.
    pub fn apply<'e>(&self, input: Plan, exprs: impl IntoIterator<Item = &'e mut Expr>) -> Plan {
        let steps = std::mem::take(&mut *self.steps.borrow_mut());
        self.width.set(0);
        self.clock.set(None);
        let base = input.arity();
        let place = |c: usize| if c >= PLACEHOLDER { base + (c - PLACEHOLDER) } else { c };
        // Domains are taken from the input, not from the joins of earlier
        // steps: appended columns that read only the input are computed
        // there again (`over_input`).
        let input_plan = input.clone();
        let mut over_input: Vec<Option<Expr>> = Vec::new();
        let mut plan = input;
        for step in steps {
            plan = match step {
                Step::Append(mut values) => {
                    values.iter_mut().for_each(|v| v.remap_columns(&place));
                    over_input.resize(plan.arity() - base, None);
                    over_input.extend(values.iter().map(|v| v.columns().iter().all(|&c| c < base).then(|| v.clone())));
                    let exprs = (0..plan.arity()).map(Expr::Column).chain(values).collect();
                    Plan::Map { input: Box::new(plan), exprs }
                }
                Step::Join { right, left_key, right_key } => Plan::Join {
                    left: Box::new(plan),
                    right: Box::new(right),
                    kind: JoinKind::Left,
                    left_key: left_key.into_iter().map(place).collect(),
                    right_key,
                    residual: None,
                },
                Step::Domain { keys, mut payload, build } => {
                    let keys: Vec<usize> = keys.into_iter().map(place).collect();
                    payload.iter_mut().for_each(|v| v.remap_columns(&place));
                    let exprs: Vec<Expr> = keys.iter().map(|&k| Expr::Column(k)).chain(payload).collect();
                    let from_input = |e: &Expr| match e {
                        Expr::Column(k) if *k >= base => over_input.get(k - base).cloned().flatten(),
                        e => e.columns().iter().all(|&c| c < base).then(|| e.clone()),
                    };
                    let domain_rows = match exprs.iter().map(from_input).collect::<Option<Vec<Expr>>>() {
                        Some(exprs) => Plan::Map { input: Box::new(input_plan.clone()), exprs },
                        None => Plan::Map { input: Box::new(plan.clone()), exprs },
                    };
                    let domain = Plan::Distinct { input: Box::new(domain_rows) };
                    Plan::Join {
                        left: Box::new(plan),
                        right: Box::new((build.0)(domain)),
                        kind: JoinKind::Left,
                        right_key: (0..keys.len()).collect(),
                        left_key: keys,
                        residual: None,
                    }
                }
            };
        }
        for e in exprs {
            e.remap_columns(&place);
        }
        plan
    }
}

/// The AND terms of `e`, left to right.
fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::Binary { op: BinaryOp::And, left, right } => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        e => out.push(e),
    }
}

/// `terms` joined by AND as they were written (nested to the left).
fn conjoin(terms: Vec<Expr>) -> Option<Expr> {
    terms.into_iter().reduce(|a, b| Expr::binary(BinaryOp::And, a, b))
}

/// The error for a subquery where none can be planned.
pub(crate) fn refusal(clause: Clause, at: Option<Location>) -> PlanError {
    let place = match clause {
        Clause::JoinOn => "in JOIN conditions",
        Clause::GroupBy => "in GROUP BY",
        Clause::AggregateArgument => "in aggregate arguments",
        Clause::Where | Clause::Select => "here",
    };
    PlanError::new(format!("subqueries are not supported {place}"), at)
        .hint("use the subquery in WHERE, the SELECT list or HAVING, or join its result as a subquery in FROM")
}

impl Lowerer<'_, '_> {
    /// `EXISTS (…)`, `x [NOT] IN (SELECT …)` or `(SELECT …)`.
    pub(crate) fn subquery(
        &self,
        subqueries: &Subqueries<'_, '_>,
        e: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Lowered {
        match e {
            ast::Expr::Exists { subquery, negated } => exists(self, subqueries, subquery, *negated, at),
            ast::Expr::InSubquery { expr, subquery, negated } => {
                let needle = self.lower(expr, d)?;
                in_subquery(self, subqueries, needle, subquery, *negated, at)
            }
            ast::Expr::Subquery(q) => scalar(self, subqueries, q, at),
            _ => Err(PlanError::new("not a subquery (bug)", at)),
        }
    }
}

fn count(arg: Option<Expr>) -> Aggregate {
    Aggregate { func: AggregateFunc::Count, arg }
}

fn coalesce_zero(e: Expr) -> Expr {
    Expr::Coalesce(vec![e, Expr::Literal(Datum::Int(0))])
}

fn boolean(b: bool) -> Expr {
    Expr::Literal(Datum::Bool(b))
}

/// `[NOT] EXISTS (…)`: the number of inner rows per correlation value.
fn exists(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    q: &ast::Query,
    negated: bool,
    at: Option<Location>,
) -> Lowered {
    let (q, paging) = take_paging(q, at)?;
    if paging.limit == Some(0) {
        return Err(PlanError::new("LIMIT 0 in an EXISTS subquery is not supported", at)
            .hint("such a subquery never has a row: leave the EXISTS out"));
    }
    let inner = decorrelate(lw, subqueries, &q, at, false, &[])?;
    if inner.global_aggregate() {
        return Err(PlanError::new("EXISTS over an aggregate without GROUP BY is not supported", at)
            .detail("such a subquery has exactly one row (unless HAVING removes it)")
            .hint("write the condition on the aggregate as a scalar subquery: (SELECT count(*) FROM …) > 0"));
    }
    let mut e = match (inner.residual.is_empty(), &inner.not_equal) {
        (true, _) => exists_rows(subqueries, &inner)?,
        (false, Some(ne)) if !inner.grouped() => exists_not_equal(lw, subqueries, &inner, ne)?,
        (false, _) => exists_residual(lw, subqueries, &inner)?,
    };
    // A term on outer columns alone holds for all inner rows or none:
    // EXISTS (… WHERE o AND r) is (o IS TRUE) AND EXISTS (… WHERE r).
    let outer_lw = Lowerer { scope: subqueries.scope, clause: Clause::Where, subqueries: None, ..*lw };
    for c in inner.outer_only.iter().rev() {
        let o = outer_lw.lower_condition(c, "WHERE", 0)?.expr;
        e = Expr::binary(BinaryOp::And, Expr::Coalesce(vec![o, boolean(false)]), e);
    }
    let e = Typed::new(e, ScalarType::Bool, false);
    Ok(if negated { not(e) } else { e })
}

/// Whether the correlation value has inner rows (FALSE when none).
fn exists_rows(subqueries: &Subqueries<'_, '_>, inner: &Inner<'_, '_, '_>) -> Result<Expr, PlanError> {
    inner.check_group_positions()?;
    let select = inner.rebuild(vec![one()], inner.grouped(), false);
    let (scope, body) = plan_inner(subqueries, inner, &select)?;
    let finished = finish(body, &select, &scope, &inner.cx)?;
    let c = inner.pairs.len();
    let reduce =
        Plan::Reduce { input: Box::new(finished.plan), group_key: (1..=c).collect(), aggregates: vec![count(None)] };
    let right = flags(reduce, c, vec![positive(Expr::Column(c))]);
    let keys = subqueries.key_columns(inner.outer_keys());
    let first = subqueries.join(right, keys, (0..c).collect());
    Ok(or_false(Expr::Column(first + c)))
}

/// `plan`'s first `keys` columns, then `flags` over its row. Counts turned
/// into flags change only when a flag flips: the Map's output is
/// consolidated, so a count that moves between positive values re-joins no
/// outer row.
fn flags(plan: Plan, keys: usize, flags: Vec<Expr>) -> Plan {
    let exprs = (0..keys).map(Expr::Column).chain(flags).collect();
    Plan::Map { input: Box::new(plan), exprs }
}

fn positive(e: Expr) -> Expr {
    Expr::binary(BinaryOp::Gt, e, Expr::Literal(Datum::Int(0)))
}

/// A flag of a LEFT JOINed row, FALSE when there is none.
fn or_false(e: Expr) -> Expr {
    Expr::Coalesce(vec![e, boolean(false)])
}

/// `x [NOT] IN (SELECT y …)` with SQL's three-valued result.
fn in_subquery(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    needle: Typed,
    q: &ast::Query,
    negated: bool,
    at: Option<Location>,
) -> Lowered {
    let (q, paging) = take_paging(q, at)?;
    if paging.limit.is_some() {
        return Err(PlanError::new("LIMIT in an IN subquery is not supported", at)
            .hint("the rows a LIMIT keeps depend on the order; select them in a subquery in FROM with ROW_NUMBER()"));
    }
    let inner = decorrelate(lw, subqueries, &q, at, true, &[])?;
    let item = inner.item("a subquery after IN")?;
    let e = if inner.global_aggregate() {
        // One row: `x IN (v)` is `x = v`.
        let value = scalar_aggregate(lw, subqueries, &inner, item)?;
        lw.apply_binary(BinaryOp::Eq, needle, value, at)?
    } else if inner.not_equality.is_some() {
        in_residual(lw, subqueries, &inner, needle, item)?
    } else {
        in_matches(lw, subqueries, &inner, needle, item)?
    };
    Ok(if negated { not(e) } else { e })
}

/// `x IN (SELECT y …)` correlated by equalities: y's distinct values per
/// correlation value, matched on (x, correlation); when x or y may be NULL,
/// also the counts of inner rows and of non-NULL y per correlation value.
fn in_matches(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    needle: Typed,
    item: SelectItem,
) -> Lowered {
    let at = inner.at;
    inner.check_group_positions()?;
    let select = inner.rebuild(vec![item.clone()], inner.grouped(), true);
    let (scope, body) = plan_inner(subqueries, inner, &select)?;
    let mut finished = finish(body, &select, &scope, &inner.cx)?;
    let y = &finished.columns[0];
    let y = Typed::new(Expr::Column(0), crate::func::outside_subquery(y.ty, lw.dialect), y.nullable)
        .collated(y.collation, false)
        .without_affinity(y.no_affinity);
    let collation = types::comparison_collation(&needle, &y);
    if collation != y.own_collation() && y.ty == ScalarType::Text {
        // Matched under a collation: the subquery's values deduplicated by
        // their key (planned again over `y COLLATE c`), the needle keyed.
        let select = inner.rebuild(vec![collated_item(item, collation)], inner.grouped(), true);
        let (scope, body) = plan_inner(subqueries, inner, &select)?;
        finished = finish(body, &select, &scope, &inner.cx)?;
    }
    let needle = types::collation_key(needle, collation);
    let needle = same_type(needle, &y, at)?;
    let c = inner.pairs.len();
    let nullable = needle.nullable || y.nullable;
    let mut values = vec![needle.expr];
    values.extend(inner.outer_keys());
    let keys = subqueries.key_columns(values);
    let matched_at = subqueries.join(finished.plan.clone(), keys.clone(), (0..=c).collect());
    // y is never NULL in a matched row: NULL matches no join key.
    let matched = not(Typed::new(Expr::IsNull(Box::new(Expr::Column(matched_at))), ScalarType::Bool, false)).expr;
    if !nullable {
        return Ok(Typed::new(matched, ScalarType::Bool, false));
    }
    let counts = Plan::Reduce {
        input: Box::new(finished.plan),
        group_key: (1..=c).collect(),
        aggregates: vec![count(None), count(Some(Expr::Column(0)))],
    };
    let facts = flags(counts, c, in_flags(Expr::Column(c), Expr::Column(c + 1)));
    let f = subqueries.join(facts, keys[1..].to_vec(), (0..c).collect());
    Ok(three_valued_in(matched, Expr::Column(f + c), Expr::Column(f + c + 1), Expr::Column(keys[0])))
}

/// The select item `y` as `(y) COLLATE c` (its alias kept).
fn collated_item(item: SelectItem, c: Collation) -> SelectItem {
    let collate = |e: ast::Expr| crate::expr::collation_key_ast(e, c);
    match item {
        SelectItem::UnnamedExpr(e) => SelectItem::UnnamedExpr(collate(e)),
        SelectItem::ExprWithAlias { expr, alias } => SelectItem::ExprWithAlias { expr: collate(expr), alias },
        other => other,
    }
}

/// `needle` checked against the subquery's values `y` (a PostgreSQL string
/// literal read as y's type): matching is a join or an equality on one type.
fn same_type(needle: Typed, y: &Typed, at: Option<Location>) -> Lowered {
    let needle = coerce_literal(needle, y.ty, at)?;
    if needle.ty != y.ty && needle.ty != ScalarType::Null && y.ty != ScalarType::Null {
        return Err(PlanError::new(format!("IN compares {} with a subquery of {}", needle.ty, y.ty), at)
            .detail("the subquery's values are matched by a join, whose keys must have one type")
            .hint("CAST one side to the other's type"));
    }
    Ok(needle)
}

/// The flags `IN` reads from the number of inner rows and of those with a
/// non-NULL value: some row; some NULL value.
fn in_flags(rows: Expr, values: Expr) -> Vec<Expr> {
    vec![positive(rows.clone()), Expr::binary(BinaryOp::Gt, rows, values)]
}

/// SQL's `x IN (subquery)` from three flags of LEFT JOINed rows (NULL when
/// absent): a match; some inner row; some NULL value. TRUE on a match; else
/// FALSE over no rows; else NULL when x is NULL or some value is NULL; else
/// FALSE.
fn three_valued_in(matched: Expr, some_row: Expr, some_null: Expr, needle: Expr) -> Typed {
    let null = Expr::Literal(Datum::Null);
    let branches = vec![
        (or_false(matched), boolean(true)),
        (Expr::Not(Box::new(or_false(some_row))), boolean(false)),
        (Expr::IsNull(Box::new(needle)), null.clone()),
        (or_false(some_null), null),
    ];
    Typed::new(Expr::Case { branches, otherwise: Box::new(boolean(false)) }, ScalarType::Bool, true)
}

/// `(SELECT …)` as a value.
fn scalar(lw: &Lowerer<'_, '_>, subqueries: &Subqueries<'_, '_>, q: &ast::Query, at: Option<Location>) -> Lowered {
    let (q, paging) = take_paging(q, at)?;
    let inner = decorrelate(lw, subqueries, &q, at, true, &paging.order)?;
    let item = inner.item("a scalar subquery")?;
    let refuse = |detail: &str| {
        PlanError::new("a scalar subquery must return at most one row", at).detail(detail.to_string()).hint(
            "aggregate the value (e.g. SELECT max(x) …), correlate on a key of the subquery's table \
             (WHERE t.id = outer.t_id), or take the first row with ORDER BY … LIMIT 1",
        )
    };
    match paging.limit {
        Some(0) => return Err(refuse("LIMIT 0 leaves no row; write NULL")),
        Some(k) if k > 1 => return Err(refuse("PostgreSQL fails on a second row, SQLite takes the first")),
        _ => {}
    }
    if inner.global_aggregate() {
        return scalar_aggregate(lw, subqueries, &inner, item);
    }
    if inner.grouped() {
        inner.equalities_only()?;
        return Err(refuse("with GROUP BY it returns one row per group"));
    }
    let first_row = paging.limit == Some(1) && !paging.order.is_empty();
    if first_row && inner.not_equality.is_some() {
        return first_row_residual(lw, subqueries, &inner, item, &paging.order);
    }
    inner.equalities_only()?;
    let mut select = inner.rebuild(vec![item], false, false);
    if first_row {
        order_items(&mut select, &paging.order);
    }
    let (scope, body) = plan_inner(subqueries, &inner, &select)?;
    let finished = finish(body, &select, &scope, &inner.cx)?;
    let c = inner.pairs.len();
    let correlation: Vec<usize> = (1..=c).collect();
    let right = match first_row {
        true => first_row_per_correlation(finished.plan, &finished.columns, c, &paging.order, &inner, lw)?,
        false if properties(&finished.plan, inner.cx.catalog).is_unique(&correlation) => finished.plan,
        false => {
            return Err(refuse(
                "denorm cannot prove that it does: PostgreSQL fails on a second row, SQLite takes the first",
            ))
        }
    };
    let column = &finished.columns[0];
    let ty = crate::func::outside_subquery(column.ty, lw.dialect);
    let keys = subqueries.key_columns(inner.outer_keys());
    let first = subqueries.join(right, keys, correlation);
    Ok(Typed::new(Expr::Column(first), ty, true).narrowed(column.narrow).without_affinity(column.no_affinity))
}

/// ORDER BY … LIMIT 1 of a scalar subquery over `plan` ([value,
/// correlation (`c`), order terms]): the first row per correlation value,
/// as [value, correlation]. The order must identify a row (the sources
/// pick among ties in an unspecified order).
fn first_row_per_correlation(
    plan: Plan,
    columns: &[crate::OutputColumn],
    c: usize,
    terms: &[ast::OrderByExpr],
    inner: &Inner<'_, '_, '_>,
    lw: &Lowerer<'_, '_>,
) -> Result<Plan, PlanError> {
    let mut order = Vec::with_capacity(terms.len());
    for (i, term) in terms.iter().enumerate() {
        order.push(sort_key(term, columns[1 + c + i].ty, 1 + c + i, lw.dialect, inner.at)?);
    }
    let identity: Vec<usize> = (1..=c + terms.len()).collect();
    if !properties(&plan, inner.cx.catalog).is_unique(&identity) {
        return Err(ties(inner.at));
    }
    let top = Plan::TopK {
        input: Box::new(plan),
        partition: (1..=c).collect(),
        order,
        limit: 1,
        rank: false,
        numbering: denorm_expr::Numbering::RowNumber,
    };
    Ok(Plan::Map { input: Box::new(top), exprs: (0..=c).map(Expr::Column).collect() })
}

/// One ORDER BY term of a first-row subquery, ordering `column` (of type
/// `ty`); NULLs where the dialect puts them unless the term says.
fn sort_key(
    term: &ast::OrderByExpr,
    ty: ScalarType,
    column: usize,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<SortKey, PlanError> {
    let descending = match &term.options.sort {
        None | Some(ast::OrderBySort::Asc) => false,
        Some(ast::OrderBySort::Desc) => true,
        Some(ast::OrderBySort::Using(_)) => {
            return Err(PlanError::new("ORDER BY … USING is not supported", at).hint("write ASC or DESC"))
        }
    };
    if !matches!(ty, ScalarType::Int | ScalarType::Float | ScalarType::Text | ScalarType::Bool) {
        return Err(PlanError::new(format!("cannot order by a value of type {ty}"), at));
    }
    let nulls_first = term.options.nulls_first.unwrap_or(match dialect {
        Dialect::Sqlite => !descending,
        Dialect::Postgres => descending,
    });
    Ok(SortKey { column, descending, nulls_first })
}

fn ties(at: Option<Location>) -> PlanError {
    PlanError::new("the ORDER BY of a scalar subquery with LIMIT 1 must identify a row", at)
        .detail("rows that tie on it come in an unspecified order, so the sources may pick any of them")
        .hint("end the ORDER BY with the primary key of the subquery's table")
}

/// The ORDER BY terms of a first-row subquery as select items after
/// `select`'s own.
fn order_items(select: &mut ast::Select, terms: &[ast::OrderByExpr]) {
    select.projection.extend(terms.iter().enumerate().map(|(i, o)| SelectItem::ExprWithAlias {
        expr: o.expr.clone(),
        alias: ast::Ident::new(format!("__denorm_order_{i}")),
    }));
}

/// ORDER BY and LIMIT taken off a subquery in an expression.
struct Paging {
    order: Vec<ast::OrderByExpr>,
    /// `None` without LIMIT (or with LIMIT ALL).
    limit: Option<u64>,
}

/// `q` without its ORDER BY and LIMIT, and those.
fn take_paging(q: &ast::Query, at: Option<Location>) -> Result<(ast::Query, Paging), PlanError> {
    let mut q = q.clone();
    let order = match q.order_by.take() {
        None => Vec::new(),
        Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(terms), interpolate: None }) => terms,
        Some(_) => return Err(PlanError::new("this ORDER BY is not supported in a subquery", at)),
    };
    if order.iter().any(|o| o.with_fill.is_some()) {
        return Err(PlanError::new("WITH FILL is not supported", at));
    }
    let limit = match q.limit_clause.take() {
        None => None,
        Some(ast::LimitClause::LimitOffset { limit: None, offset: None, limit_by }) if limit_by.is_empty() => None,
        Some(ast::LimitClause::LimitOffset { limit: Some(e), offset: None, limit_by }) if limit_by.is_empty() => {
            Some(limit_value(&e).ok_or_else(|| {
                PlanError::new(format!("LIMIT {e} is not supported in a subquery"), at).hint("write an integer literal")
            })?)
        }
        Some(_) => {
            return Err(PlanError::new("OFFSET is not supported in a subquery in an expression", at)
                .hint("select the rows in a subquery in FROM with ROW_NUMBER()"))
        }
    };
    Ok((q, Paging { order, limit }))
}

fn limit_value(e: &ast::Expr) -> Option<u64> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        ast::Expr::Nested(inner) => limit_value(inner),
        _ => None,
    }
}

/// A subquery with aggregates and no GROUP BY: grouped by its correlation,
/// joined, and its item evaluated over the joined aggregates, where an
/// absent group (no inner rows) counts 0 and aggregates NULL.
fn scalar_aggregate(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    item: SelectItem,
) -> Lowered {
    if inner.not_equality.is_some() {
        if let (Some(ne), true) = (&inner.not_equal, inner.outer_only.is_empty()) {
            if let Some(value) = scalar_count_not_equal(lw, subqueries, inner, ne, item.clone())? {
                return Ok(value);
            }
        }
        return scalar_aggregate_residual(lw, subqueries, inner, item);
    }
    let select = inner.rebuild(vec![item], true, false);
    let select = ast::Select { projection: select.projection[..1].to_vec(), ..select };
    let (_, body) = plan_inner(subqueries, inner, &select)?;
    let (reduce, having) = split_having(body.input);
    let Plan::Reduce { aggregates, group_key, .. } = &reduce else { return Err(nested_in_aggregate(inner.at)) };
    // The Reduce groups by the correlation expressions, deduplicated.
    let mut groups: Vec<&Expr> = Vec::new();
    let mut right_key = Vec::new();
    for p in &inner.pairs {
        let g = groups.iter().position(|g| **g == p.inner.expr).unwrap_or_else(|| {
            groups.push(&p.inner.expr);
            groups.len() - 1
        });
        right_key.push(g);
    }
    let g = group_key.len();
    let keys = subqueries.key_columns(inner.outer_keys());
    let aggregates = aggregates.clone();
    let first = subqueries.join(reduce, keys, right_key);
    let value = &body.items[0].typed;
    Ok(aggregate_value(subqueries, inner, value, having, &aggregates, (g, first), first + g))
}

/// A grouped plan's Reduce and its HAVING predicate.
fn split_having(plan: Plan) -> (Plan, Option<Expr>) {
    match plan {
        Plan::Filter { input, predicate } => (*input, Some(predicate)),
        plan => (plan, None),
    }
}

fn nested_in_aggregate(at: Option<Location>) -> PlanError {
    PlanError::new("a subquery inside a scalar subquery's SELECT list or HAVING is not supported", at)
        .hint("compute the inner value in a subquery in FROM")
}

/// The scalar subquery's item (over a Reduce output: `groups.0` group
/// columns, now at `groups.1`, then `aggregates`, now at `first_aggregate`)
/// over the joined columns: an absent group has COUNTs 0 (coalesced in an
/// appended column) and other aggregates NULL; HAVING false makes it NULL.
fn aggregate_value(
    subqueries: &Subqueries<'_, '_>,
    inner: &Inner<'_, '_, '_>,
    value: &Typed,
    having: Option<Expr>,
    aggregates: &[Aggregate],
    groups: (usize, usize),
    first_aggregate: usize,
) -> Typed {
    let (g, first_group) = groups;
    let counts: Vec<usize> = (0..aggregates.len())
        .filter(|&j| matches!(aggregates[j].func, AggregateFunc::Count | AggregateFunc::CountDistinct))
        .collect();
    let zeroed: Vec<Expr> = counts.iter().map(|&j| coalesce_zero(Expr::Column(first_aggregate + j))).collect();
    let coalesced = if zeroed.is_empty() { 0 } else { subqueries.push(Step::Append(zeroed), counts.len()) };
    let place = |k: usize| match (k < g, counts.iter().position(|&j| k == g + j)) {
        (true, _) => first_group + k,
        (false, Some(i)) => coalesced + i,
        (false, None) => first_aggregate + (k - g),
    };
    let mut expr = value.expr.clone();
    expr.remap_columns(&place);
    let reads_group = value.expr.columns().iter().any(|&k| k < g);
    let nullable = value.nullable || having.is_some() || reads_group;
    if let Some(mut predicate) = having {
        predicate.remap_columns(&place);
        expr = Expr::Case { branches: vec![(predicate, expr)], otherwise: Box::new(Expr::Literal(Datum::Null)) };
    }
    let ty = crate::func::outside_subquery(value.ty, inner.cx.dialect);
    // SQLite: the subquery's value keeps its expression's affinity (none
    // for an aggregate's).
    let no_affinity = !crate::types::has_affinity(value);
    Typed::new(expr, ty, nullable).narrowed(value.narrow).without_affinity(no_affinity)
}
