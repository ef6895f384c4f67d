//! A whole query around the SELECTs that [`crate::select`] plans: `WITH`,
//! set operations, and `ORDER BY … LIMIT n OFFSET m`.
//!
//! ```text
//!  WITH s AS (…)        each CTE planned like a subquery in FROM, in order (a CTE
//!                       sees the ones before it); a reference stands for a copy of
//!                       its plan, so two references build one shared sub-graph
//!  a UNION ALL b        Union [a, b]
//!  a UNION b            Distinct(Union [a, b])
//!  a EXCEPT ALL b       Threshold(Union [a, Negate b])                (PostgreSQL)
//!  a EXCEPT b           Threshold(Union [Distinct a, Negate Distinct b])
//!                       (a chain extends the one Union: max(0, max(0, x) − c) = max(0, x − c))
//!  a INTERSECT ALL b    Union [b, Negate Threshold(Union [b, Negate a])]  (PostgreSQL)
//!                       min(a, b), the smaller operand written twice
//!  a INTERSECT b        the same over Distinct a, Distinct b
//!  ORDER BY … LIMIT n   TopK(n, no partition) ─► Map(output columns)
//!    OFFSET m           TopK(n + m, row number) ─► Filter(row number > m) ─► Map
//!  ORDER BY (no LIMIT)  nothing in the plan: the view's read order (ViewDef::order)
//! ```
//!
//! Operator precedence follows the dialect: PostgreSQL binds INTERSECT
//! tighter than UNION and EXCEPT; SQLite applies all of them left to right.
//! Branch column types unify as CASE branches do (an integer meets a double
//! as a double; PostgreSQL also casts the integers, SQLite keeps them);
//! names come from the first branch.
//!
//! At the LIMIT boundary rows that tie on the ORDER BY are kept in the order
//! of their encoded bytes (a source may return any of them): order by a
//! unique column last to make the view match the source exactly.
//!
//! `VALUES` lists are constant operands (see [`crate::values`]).
//! `WITH RECURSIVE`, `OFFSET` without `LIMIT`, non-literal
//! limits, more than 64 set operators (each adds plan depth), and in SQLite
//! a deduplicating set operation over an integer and a double column (SQLite
//! keeps either of 1 and 1.0) are refused with a hint.

use denorm_expr::{BinaryOp, Expr, Func, Plan, SortKey};
use denorm_types::{Catalog, Collation, Datum, Dialect, ScalarType, TableSchema};
use sqlparser::ast::{self, SetExpr, SetOperator, SetQuantifier};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::Token;

use crate::derived::{plan_derived, Derived};
use crate::names::alias_name;
use crate::order;
use crate::select::{check_duplicate_names, finish, plan_select_ordered, Context, Item};
use crate::source::location;
use crate::types::unify;
use crate::types::Typed;
use crate::{KeyOrigin, Location, OutputColumn, PlanError, TableDependency, ViewKey};

/// Set operators in one query, at most (each adds operators to the graph).
const MAX_SET_OPERATIONS: usize = 64;

const LIMIT_HINT: &str = "write LIMIT and OFFSET as integer literals, e.g. ORDER BY total DESC LIMIT 10";

/// A `WITH` query, planned; each reference in FROM reads a copy of it.
#[derive(Debug, Clone)]
pub(crate) struct Cte {
    /// Lower-cased.
    pub name: String,
    pub derived: Derived,
}

/// A planned query.
#[derive(Debug)]
pub(crate) struct Planned {
    pub plan: Plan,
    pub columns: Vec<OutputColumn>,
    pub key: ViewKey,
    /// The top-level ORDER BY over output columns (see `ViewDef::order`).
    pub order: Vec<SortKey>,
    /// Per term of `order` (or empty: none), the collation it sorts text
    /// under: [`plan_body`] gives every text term's, [`plan_query`] keeps
    /// only those that are not the column's own (`ReadOrder::collation`).
    pub order_collations: Vec<Option<Collation>>,
    pub reads: Vec<TableDependency>,
    /// Where a LIMIT sorts by a hidden column instead (see
    /// [`crate::select::Finished::sort_keys`]).
    pub sort_keys: Vec<(usize, usize)>,
}

/// The operand of a set operation, or a whole compound.
#[derive(Debug)]
struct Branch {
    plan: Plan,
    columns: Vec<OutputColumn>,
    reads: Vec<TableDependency>,
    /// No row appears twice.
    set: bool,
}

pub(crate) fn plan_query(q: &ast::Query, cx: &Context<'_, '_>) -> Result<Planned, PlanError> {
    check_clauses(q, cx)?;
    let ctes;
    let cx = match &q.with {
        Some(with) => {
            ctes = plan_ctes(with, cx)?;
            Context { ctes: &ctes, ..*cx }
        }
        None => *cx,
    };
    let (limit, offset) = paging(q, &cx)?;
    let cx = Context { limited: limit.is_some(), ..cx };
    let Planned { mut plan, columns, key, mut order, order_collations, reads, sort_keys } =
        plan_body(&q.body, order_terms(q, &cx)?, &cx)?;
    let width = columns.len();
    let mut read_collations = vec![None; order.len()];
    if limit.is_none() && cx.depth == 0 {
        // Reads sort a term's column under the collation it names
        // (`denorm-serve` `collate.rs`, `OrderTerm::collation`): a term
        // sorting by the key of an output column under a collation is that
        // column under it; one naming BINARY over a collated column reads
        // the column bytewise.
        for (i, k) in order.iter_mut().enumerate() {
            let read = match collated_output(&plan, k.column, &columns) {
                Some((j, c)) => {
                    k.column = j;
                    Some(c)
                }
                None if k.column < width => order_collations.get(i).copied().flatten(),
                None => None,
            };
            let own = |c: Collation| columns.get(k.column).is_some_and(|o| o.collation.unwrap_or_default() == c);
            read_collations[i] = read.filter(|c| !own(*c));
        }
    }
    if limit.is_none() && cx.depth == 0 {
        // Reads order rows by their stored values: a character(n) column
        // by its padded value (see `bpchar_sort_key`).
        for k in &mut order {
            if let Some(c) = bpchar_sort_key(&plan, k.column, width) {
                k.column = c;
            }
        }
    }
    if let Some(limit) = limit {
        let mut top_order = order.clone();
        for k in &mut top_order {
            if let Some((_, hidden)) = sort_keys.iter().find(|(c, _)| *c == k.column) {
                k.column = *hidden;
            }
        }
        plan = top_n(plan, top_order, limit, offset);
    }
    if plan.arity() > width {
        match &mut plan {
            // Read-order terms all name output columns by now (else refused
            // below): a hidden column computed beside them is dropped.
            Plan::Map { exprs, .. } if limit.is_none() && cx.depth == 0 => exprs.truncate(width),
            _ => plan = Plan::Map { input: Box::new(plan), exprs: (0..width).map(Expr::Column).collect() },
        }
    }
    let visible = order.iter().take_while(|k| k.column < width).count();
    if visible < order.len() && limit.is_none() && cx.depth == 0 {
        let at = cx.keyword(&[Keyword::ORDER]);
        return Err(PlanError::new("ORDER BY without LIMIT can only order by output columns", at)
            .detail("without LIMIT the ORDER BY is the order reads return rows in, so it must be read from the view")
            .hint("add the expression to the select list, or add a LIMIT"));
    }
    let order = order.into_iter().take(visible).collect();
    read_collations.truncate(visible);
    Ok(Planned { plan, columns, key, order, order_collations: read_collations, reads, sort_keys: Vec::new() })
}

fn order_terms<'q>(q: &'q ast::Query, cx: &Context<'_, '_>) -> Result<&'q [ast::OrderByExpr], PlanError> {
    match q.order_by.as_ref().map(|o| &o.kind) {
        None => Ok(&[]),
        Some(ast::OrderByKind::Expressions(terms)) => Ok(terms),
        Some(ast::OrderByKind::All(_)) => {
            Err(PlanError::new("ORDER BY ALL is not supported", cx.keyword(&[Keyword::ORDER]))
                .hint("list the columns to order by"))
        }
    }
}

/// The query's SELECT or compound, with its ORDER BY resolved (over hidden
/// columns after the output ones, for a SELECT).
fn plan_body(body: &SetExpr, terms: &[ast::OrderByExpr], cx: &Context<'_, '_>) -> Result<Planned, PlanError> {
    if let SetExpr::Select(s) = body {
        let (scope, body) = plan_select_ordered(s, terms, cx)?;
        if let Some(w) = &body.window {
            return Err(PlanError::new(
                format!(
                    "{} is only supported in a plain subquery in FROM, bounded by the outer WHERE",
                    crate::window::sql_name(w.numbering)
                ),
                w.at,
            )
            .hint(crate::window::TOP_K_FORM));
        }
        let order = body.ordering.order.clone();
        let order_collations = body.ordering.collations.clone();
        let finished = finish(body, s, &scope, cx)?;
        let reads = scope.dependencies(cx.catalog);
        let (plan, columns, key, sort_keys) = (finished.plan, finished.columns, finished.key, finished.sort_keys);
        return Ok(Planned { plan, columns, key, order, order_collations, reads, sort_keys });
    }
    let branch = plan_compound(body, cx)?;
    if !cx.operand {
        let at = Some(cx.view.location);
        let items: Vec<Item> =
            branch.columns.iter().map(|c| Item { typed: Typed::null(), name: c.name.clone(), at }).collect();
        check_duplicate_names(&items, cx)?;
    }
    let at_of = |e: &ast::Expr| cx.view.tokens.start_of(e).and_then(location);
    let order = order::resolve_output(terms, &branch.columns, cx.dialect, at_of)?;
    let key = compound_key(&branch, cx)?;
    let (plan, columns, reads) = (branch.plan, branch.columns, branch.reads);
    Ok(Planned { plan, columns, key, order, order_collations: Vec::new(), reads, sort_keys: Vec::new() })
}

/// The first `limit` rows by `order` after skipping `offset`, with the
/// input's columns (and a row number after them when `offset` > 0).
fn top_n(input: Plan, order: Vec<SortKey>, limit: usize, offset: usize) -> Plan {
    let arity = input.arity();
    let limit = limit.saturating_add(offset);
    let top = Plan::TopK {
        input: Box::new(input),
        partition: Vec::new(),
        order,
        limit,
        rank: offset > 0,
        numbering: denorm_expr::Numbering::RowNumber,
    };
    if offset == 0 {
        return top;
    }
    let skipped = i64::try_from(offset).unwrap_or(i64::MAX);
    let predicate = Expr::binary(BinaryOp::Gt, Expr::Column(arity), Expr::Literal(Datum::Int(skipped)));
    Plan::Filter { input: Box::new(top), predicate }
}

fn check_clauses(q: &ast::Query, cx: &Context<'_, '_>) -> Result<(), PlanError> {
    if let Some(fetch) = &q.fetch {
        let at = cx.keyword(&[Keyword::FETCH]);
        if cx.dialect == Dialect::Sqlite {
            return Err(PlanError::new("FETCH is not supported by SQLite", at).hint("write LIMIT n [OFFSET m]"));
        }
        if fetch.with_ties || fetch.percent {
            return Err(PlanError::new("FETCH … WITH TIES and FETCH … PERCENT are not supported", at)
                .hint("write FETCH FIRST n ROWS ONLY, or LIMIT n"));
        }
    }
    if !q.locks.is_empty() {
        return Err(PlanError::new(
            "FOR UPDATE and FOR SHARE are not supported in a view",
            cx.keyword(&[Keyword::FOR]),
        ));
    }
    if q.for_clause.is_some() || q.settings.is_some() || q.format_clause.is_some() || !q.pipe_operators.is_empty() {
        return Err(PlanError::new("this query clause is not supported in a view", Some(cx.view.location)));
    }
    Ok(())
}

/// LIMIT (`None`: no limit) and OFFSET.
fn paging(q: &ast::Query, cx: &Context<'_, '_>) -> Result<(Option<usize>, usize), PlanError> {
    let (limit, offset) = match &q.limit_clause {
        None if q.fetch.is_none() => return Ok((None, 0)),
        None => (None, None),
        Some(ast::LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return Err(PlanError::new("LIMIT BY is not supported", cx.keyword(&[Keyword::BY])));
            }
            (limit.as_ref(), offset.as_ref().map(|o| &o.value))
        }
        Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit), Some(offset)),
    };
    let limit_at = cx.keyword(&[Keyword::LIMIT]);
    let offset_at = cx.keyword(&[Keyword::OFFSET]).or(limit_at);
    let mut limit = limit.map(|e| integer(e, "LIMIT", limit_at, cx.dialect)).transpose()?.flatten();
    if let Some(fetch) = &q.fetch {
        // FETCH FIRST [n] ROWS ONLY (PostgreSQL): LIMIT n, 1 without n.
        let at = cx.keyword(&[Keyword::FETCH]);
        if limit.is_some() {
            return Err(PlanError::new("a query cannot have both LIMIT and FETCH", at));
        }
        limit = match &fetch.quantity {
            Some(e) => integer(e, "FETCH", at, cx.dialect)?,
            None => Some(1),
        };
    }
    let offset = offset.map(|e| integer(e, "OFFSET", offset_at, cx.dialect)).transpose()?.flatten().unwrap_or(0);
    if limit.is_none() && offset > 0 {
        return Err(PlanError::new("OFFSET without LIMIT is not supported", offset_at)
            .detail("denorm maintains a bounded number of leading rows")
            .hint("add a LIMIT, e.g. LIMIT 100 OFFSET 10"));
    }
    Ok((limit, offset))
}

/// An integer literal as a row count; `None` for SQLite's negative "no
/// limit" (a negative OFFSET is 0 there).
fn integer(e: &ast::Expr, clause: &str, at: Option<Location>, dialect: Dialect) -> Result<Option<usize>, PlanError> {
    let (negative, inner) = match e {
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => (true, &**expr),
        e => (false, e),
    };
    let value = match inner {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let Some(value) = value else {
        return Err(PlanError::new(format!("{clause} must be an integer literal in a view"), at).hint(LIMIT_HINT));
    };
    match (negative && value > 0, dialect) {
        (false, _) => Ok(Some(usize::try_from(value).unwrap_or(usize::MAX))),
        (true, Dialect::Sqlite) if clause == "OFFSET" => Ok(Some(0)),
        (true, Dialect::Sqlite) => Ok(None),
        (true, Dialect::Postgres) => Err(PlanError::new(format!("{clause} must not be negative"), at)),
    }
}

/// Plans the CTEs of `with` in order; each sees the ones before it and the
/// enclosing query's.
fn plan_ctes(with: &ast::With, cx: &Context<'_, '_>) -> Result<Vec<Cte>, PlanError> {
    let at = location(with.with_token.0.span.start);
    if with.recursive {
        return Err(PlanError::new("WITH RECURSIVE is not supported", at)
            .detail("a recursive query has no incremental maintenance in denorm")
            .hint("maintain the recursion's input as a view and compute the closure when reading"));
    }
    let mut ctes: Vec<Cte> = cx.ctes.to_vec();
    let outer = ctes.len();
    for cte in &with.cte_tables {
        let name = &cte.alias.name;
        let name_at = location(name.span.start);
        if ctes[outer..].iter().any(|c| c.name.eq_ignore_ascii_case(&name.value)) {
            return Err(PlanError::new(
                format!("WITH query name \"{}\" specified more than once", name.value),
                name_at,
            )
            .hint("give each WITH query its own name"));
        }
        if cte.from.is_some() {
            return Err(PlanError::new("WITH … FROM is not supported", name_at));
        }
        let inner = Context { ctes: &ctes, ..*cx };
        let mut derived = plan_derived(&cte.query, &name.value, &inner, name_at)?;
        rename_columns(&mut derived.schema, &cte.alias.columns, name_at, "WITH query", cx.dialect)?;
        ctes.push(Cte { name: name.value.to_lowercase(), derived });
    }
    Ok(ctes)
}

/// `WITH s (a, b) AS (…)` or `FROM (…) AS s (a, b)`: the first columns of a
/// CTE (`what` is "WITH query") or subquery ("table") renamed, the rest kept.
pub(crate) fn rename_columns(
    schema: &mut TableSchema,
    names: &[ast::TableAliasColumnDef],
    at: Option<Location>,
    what: &str,
    dialect: Dialect,
) -> Result<(), PlanError> {
    if dialect == Dialect::Sqlite && !names.is_empty() && what == "table" {
        return Err(PlanError::new("SQLite does not accept column names after a FROM item's alias", at)
            .hint("name the columns inside the subquery with AS"));
    }
    if names.len() > schema.columns.len() {
        return Err(PlanError::new(
            format!(
                "{what} \"{}\" has {} columns available but {} columns specified",
                schema.name,
                schema.columns.len(),
                names.len()
            ),
            at,
        ));
    }
    for (column, def) in schema.columns.iter_mut().zip(names) {
        if def.data_type.is_some() {
            return Err(PlanError::new(format!("column types in a {what} column list are not supported"), at));
        }
        column.name = alias_name(&def.name, dialect);
    }
    Ok(())
}

/// A FROM item naming a CTE: its relation under the alias (or its name).
pub(crate) fn cte_relation(
    cte: &Cte,
    alias: Option<&ast::TableAlias>,
    dialect: Dialect,
) -> Result<(Derived, String), PlanError> {
    let mut derived = cte.derived.clone();
    let visible = match alias {
        Some(a) => {
            derived.schema.name = a.name.value.clone();
            rename_columns(&mut derived.schema, &a.columns, location(a.name.span.start), "table", dialect)?;
            a.name.value.clone()
        }
        None => cte.name.clone(),
    };
    derived.schema.name = visible.clone();
    Ok((derived, visible.to_ascii_lowercase()))
}

/// A UNION/EXCEPT/INTERSECT (or a parenthesized query) as one branch.
fn plan_compound(body: &SetExpr, cx: &Context<'_, '_>) -> Result<Branch, PlanError> {
    let mut operands = Vec::new();
    let mut operators = Vec::new();
    flatten(body, &mut operands, &mut operators)?;
    let places = operator_locations(cx);
    let at = |i: usize| places.get(i).copied().flatten().or(Some(cx.view.location));
    let mut branches = operands.into_iter().map(|o| plan_operand(o, cx));
    let first = branches.next().unwrap_or_else(|| Err(PlanError::new("empty query", Some(cx.view.location))))?;
    if cx.dialect == Dialect::Sqlite {
        // SQLite gives every compound operator the same precedence.
        let mut acc = first;
        for (i, (branch, &(op, quantifier))) in branches.zip(&operators).enumerate() {
            acc = combine(op, quantifier, acc, branch?, at(i), cx)?;
        }
        return Ok(acc);
    }
    // PostgreSQL: INTERSECT first, then UNION and EXCEPT left to right.
    let mut terms: Vec<(Branch, usize)> = vec![(first, usize::MAX)];
    for (i, (branch, &(op, quantifier))) in branches.zip(&operators).enumerate() {
        let branch = branch?;
        if op == SetOperator::Intersect {
            let (left, before) = terms.pop().expect("one term at least");
            terms.push((combine(op, quantifier, left, branch, at(i), cx)?, before));
        } else {
            terms.push((branch, i));
        }
    }
    let mut terms = terms.into_iter();
    let (mut acc, _) = terms.next().expect("one term at least");
    for (branch, i) in terms {
        let (op, quantifier) = operators[i];
        acc = combine(op, quantifier, acc, branch, at(i), cx)?;
    }
    Ok(acc)
}

/// The operands and operators of a compound in written order (an
/// in-order walk; parenthesized queries stay operands). A long chain is a
/// left-deep tree: its left spine is walked in a loop (the count is checked
/// on the way down, so a chain of thousands stops at the limit without
/// recursing that deep); right operands nest only by precedence.
fn flatten<'q>(
    e: &'q SetExpr,
    operands: &mut Vec<&'q SetExpr>,
    operators: &mut Vec<(SetOperator, SetQuantifier)>,
) -> Result<(), PlanError> {
    let too_many = || {
        PlanError::new(format!("more than {MAX_SET_OPERATIONS} UNION/EXCEPT/INTERSECT operators in one query"), None)
            .hint("split the query into several views")
    };
    let mut spine = Vec::new();
    let mut leftmost = e;
    while let SetExpr::SetOperation { op, set_quantifier, left, right } = leftmost {
        spine.push((*op, *set_quantifier, &**right));
        if operators.len() + spine.len() > MAX_SET_OPERATIONS {
            return Err(too_many());
        }
        leftmost = left;
    }
    operands.push(leftmost);
    for (op, quantifier, right) in spine.into_iter().rev() {
        operators.push((op, quantifier));
        if operators.len() > MAX_SET_OPERATIONS {
            return Err(too_many());
        }
        flatten(right, operands, operators)?;
    }
    Ok(())
}

/// Where each set operator of this query level is written, in order.
fn operator_locations(cx: &Context<'_, '_>) -> Vec<Option<Location>> {
    let start = (cx.start.line, cx.start.column);
    let mut depth = 0i64;
    let mut out = Vec::new();
    let keywords = [Keyword::UNION, Keyword::EXCEPT, Keyword::INTERSECT, Keyword::MINUS];
    for t in cx.view.tokens.tokens.iter().filter(|t| (t.span.start.line, t.span.start.column) >= start) {
        match &t.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Word(w) if depth == 0 && w.quote_style.is_none() && keywords.contains(&w.keyword) => {
                out.push(location(t.span.start))
            }
            _ => {}
        }
    }
    out
}

/// Where a query's own clauses start: its WITH, else its first SELECT
/// (keywords are looked up from there at its parenthesis depth).
pub(crate) fn query_start(q: &ast::Query) -> Option<sqlparser::tokenizer::Location> {
    if let Some(with) = &q.with {
        return Some(with.with_token.0.span.start);
    }
    let mut body = &*q.body;
    loop {
        match body {
            SetExpr::Select(s) => return Some(s.select_token.0.span.start),
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Values(v) => return v.rows.first().map(|r| r.opening_token.0.span.start),
            _ => return None,
        }
    }
}

/// One operand: a SELECT or a parenthesized query.
fn plan_operand(e: &SetExpr, cx: &Context<'_, '_>) -> Result<Branch, PlanError> {
    match e {
        SetExpr::Select(s) => {
            let inner = Context { start: s.select_token.0.span.start, depth: cx.depth + 1, operand: true, ..*cx };
            let (scope, body) = plan_select_ordered(s, &[], &inner)?;
            if let Some(w) = &body.window {
                let name = crate::window::sql_name(w.numbering);
                return Err(PlanError::new(format!("{name} is not supported in a UNION, EXCEPT or INTERSECT"), w.at)
                    .hint(crate::window::TOP_K_FORM));
            }
            let finished = finish(body, s, &scope, &inner)?;
            let set = finished.key.proven_unique;
            Ok(Branch { plan: finished.plan, columns: finished.columns, reads: scope.dependencies(cx.catalog), set })
        }
        SetExpr::Query(q) => {
            let start = query_start(q).unwrap_or(cx.start);
            let inner = Context { start, depth: cx.depth + 1, operand: true, ..*cx };
            let planned = plan_query(q, &inner)?;
            let set = planned.key.proven_unique;
            Ok(Branch { plan: planned.plan, columns: planned.columns, reads: planned.reads, set })
        }
        SetExpr::Values(values) => {
            let (plan, columns) = crate::values::plan_values(values, cx)?;
            let set = crate::key::properties(&plan, cx.catalog).is_unique(&(0..columns.len()).collect::<Vec<_>>());
            Ok(Branch { plan, columns, reads: Vec::new(), set })
        }
        _ => Err(PlanError::new("this query is not supported in a view", Some(cx.view.location))),
    }
}

fn combine(
    op: SetOperator,
    quantifier: SetQuantifier,
    left: Branch,
    right: Branch,
    at: Option<Location>,
    cx: &Context<'_, '_>,
) -> Result<Branch, PlanError> {
    let (name, all) = operator(op, quantifier, at, cx.dialect)?;
    if left.columns.len() != right.columns.len() {
        return Err(PlanError::new(format!("each {name} query must have the same number of columns"), at).detail(
            format!("the left side has {} columns, the right side {}", left.columns.len(), right.columns.len()),
        ));
    }
    let (mut columns, casts) = unify_columns(&left.columns, &right.columns, name, at, cx.dialect)?;
    // EXCEPT keeps left rows only; INTERSECT rows are on both sides.
    for (c, (l, r)) in columns.iter_mut().zip(left.columns.iter().zip(&right.columns)) {
        c.nullable = match op {
            SetOperator::Except => l.nullable,
            SetOperator::Intersect => l.nullable && r.nullable,
            _ => c.nullable,
        };
    }
    if cx.dialect == Dialect::Sqlite && !(all && op == SetOperator::Union) {
        mixed_numbers(&left.columns, &right.columns, name, at)?;
    }
    let (mut l, mut r) = (cast(left.plan, &casts.0), cast(right.plan, &casts.1));
    if cx.dialect == Dialect::Postgres {
        (l, r) = bpchar_as_text(l, r, &mut columns, &left.columns, &right.columns);
    }
    let mut reads = left.reads;
    merge_reads(&mut reads, right.reads, cx.catalog);
    // Rows compare under each column's collation (PostgreSQL's
    // character(n): without trailing blanks), each such column showing a
    // row's value (`compound_keyed.rs`).
    let keyed = match all {
        true => Vec::new(),
        false => collation_keys(&columns),
    };
    if !keyed.is_empty() {
        let plan = crate::compound_keyed::combine(op, l, r, &keyed, columns.len());
        return Ok(Branch { plan, columns, reads, set: true });
    }
    // PostgreSQL's EXCEPT/INTERSECT ALL compare character(n) columns
    // without trailing blanks too, and show the left operand's padding.
    let padded = collation_keys(&columns);
    if all && op != SetOperator::Union && !padded.is_empty() {
        let keyed: Vec<usize> = padded.iter().map(|(j, _)| *j).collect();
        let counted = |l: Plan, r: Plan| match op {
            SetOperator::Except => except(l, r),
            _ => intersect(l, r),
        };
        let plan = crate::compound_keyed::combine_all(l, r, &keyed, columns.len(), counted);
        return Ok(Branch { plan, columns, reads, set: false });
    }
    // With ALL (UNION ALL) rows compare as they are.
    let (left_set, right_set) = (left.set, right.set);
    let (plan, set) = match (op, all) {
        (SetOperator::Union, true) => (union_all(l, r), false),
        (SetOperator::Union, false) => (Plan::Distinct { input: Box::new(union_all(undistinct(l), r)) }, true),
        (SetOperator::Except, true) => (except(l, r), false),
        (SetOperator::Except, false) => (except(distinct(l, left_set), distinct(r, right_set)), true),
        (SetOperator::Intersect, true) => (intersect(l, r), false),
        (_, false) => (intersect(distinct(l, left_set), distinct(r, right_set)), true),
        (SetOperator::Minus, true) => unreachable!("refused above"),
    };
    Ok(Branch { plan, columns, reads, set })
}

/// The operator's name and whether it keeps duplicates (ALL), if the
/// dialect has it.
fn operator(
    op: SetOperator,
    quantifier: SetQuantifier,
    at: Option<Location>,
    dialect: Dialect,
) -> Result<(&'static str, bool), PlanError> {
    let name = match op {
        SetOperator::Union => "UNION",
        SetOperator::Except => "EXCEPT",
        SetOperator::Intersect => "INTERSECT",
        SetOperator::Minus => return Err(PlanError::new("MINUS is not supported", at).hint("write EXCEPT")),
    };
    let all = match quantifier {
        SetQuantifier::All => true,
        SetQuantifier::Distinct | SetQuantifier::None => false,
        _ => return Err(PlanError::new(format!("{name} BY NAME is not supported"), at).hint("list the columns")),
    };
    if all && op != SetOperator::Union && dialect == Dialect::Sqlite {
        return Err(PlanError::new(format!("{name} ALL is not supported by SQLite"), at)
            .hint(format!("SQLite has only {name}, which removes duplicate rows")));
    }
    Ok((name, all))
}

fn negate(p: Plan) -> Plan {
    Plan::Negate { input: Box::new(p) }
}

/// `a UNION ALL b`, extending a Union on the left rather than nesting.
fn union_all(a: Plan, b: Plan) -> Plan {
    match a {
        Plan::Union { mut inputs } => {
            inputs.push(b);
            Plan::Union { inputs }
        }
        a => Plan::Union { inputs: vec![a, b] },
    }
}

/// `Distinct(Union …)` → `Union …`: a UNION's distinct step is redone above.
fn undistinct(p: Plan) -> Plan {
    match p {
        Plan::Distinct { input } if matches!(*input, Plan::Union { .. }) => *input,
        p => p,
    }
}

fn distinct(p: Plan, set: bool) -> Plan {
    if set {
        p
    } else {
        Plan::Distinct { input: Box::new(p) }
    }
}

/// `max(0, a − b)`; a chain stays flat, since `max(0, max(0, x) − b)` is
/// `max(0, x − b)` for `b` without negative multiplicities.
fn except(a: Plan, b: Plan) -> Plan {
    match a {
        Plan::Threshold { input } if matches!(*input, Plan::Union { .. }) => {
            let Plan::Union { mut inputs } = *input else { unreachable!("matched above") };
            inputs.push(negate(b));
            Plan::Threshold { input: Box::new(Plan::Union { inputs }) }
        }
        a => Plan::Threshold { input: Box::new(Plan::Union { inputs: vec![a, negate(b)] }) },
    }
}

/// `min(a, b)` as `b − max(0, b − a)` (or the mirror image): the smaller
/// operand is the one written twice, so a chain of INTERSECTs grows the
/// plan linearly (the graph builds equal sub-plans once either way).
fn intersect(a: Plan, b: Plan) -> Plan {
    let (once, twice) = if size(&a) >= size(&b) { (a, b) } else { (b, a) };
    Plan::Union { inputs: vec![twice.clone(), negate(except(twice, once))] }
}

/// Nodes in the plan tree.
fn size(plan: &Plan) -> usize {
    match plan {
        Plan::Get { .. } | Plan::Values { .. } => 1,
        Plan::Filter { input, .. }
        | Plan::Map { input, .. }
        | Plan::Reduce { input, .. }
        | Plan::Distinct { input }
        | Plan::TopK { input, .. }
        | Plan::Negate { input }
        | Plan::Threshold { input } => 1 + size(input),
        Plan::Join { left, right, .. } => 1 + size(left) + size(right),
        Plan::Union { inputs } => 1 + inputs.iter().map(size).sum::<usize>(),
    }
}

/// Per-side casts (column, type) to the unified column types.
type Casts = (Vec<(usize, ScalarType)>, Vec<(usize, ScalarType)>);

fn unify_columns(
    left: &[OutputColumn],
    right: &[OutputColumn],
    name: &str,
    at: Option<Location>,
    dialect: Dialect,
) -> Result<(Vec<OutputColumn>, Casts), PlanError> {
    let mut columns = Vec::with_capacity(left.len());
    let mut casts: Casts = (Vec::new(), Vec::new());
    for (i, (l, r)) in left.iter().zip(right).enumerate() {
        let Some(ty) = unify(l.ty, r.ty) else {
            return Err(PlanError::new(format!("{name} types {} and {} cannot be matched", l.ty, r.ty), at)
                .detail(format!("column {} (\"{}\")", i + 1, l.name))
                .hint("CAST one side to the other's type"));
        };
        // PostgreSQL converts the values to the common type; SQLite keeps them.
        if dialect == Dialect::Postgres {
            for (side, from) in [(&mut casts.0, l.ty), (&mut casts.1, r.ty)] {
                if from != ty && from != ScalarType::Null {
                    side.push((i, ty));
                }
            }
        }
        // SQLite: a compound's column takes the leftmost operand's collation.
        let collation = l.collation.or(r.collation);
        // PostgreSQL: integer meets bigint as bigint (a NULL column takes
        // the other side's type).
        let narrow_side = |c: &OutputColumn| c.narrow || c.ty == ScalarType::Null;
        let narrow = ty == ScalarType::Int && narrow_side(l) && narrow_side(r);
        let nullable = l.nullable || r.nullable;
        // SQLite: the leftmost operand's affinity, as its collation.
        let no_affinity = l.no_affinity;
        columns.push(OutputColumn { name: l.name.clone(), ty, nullable, collation, narrow, no_affinity });
    }
    Ok((columns, casts))
}

/// The output column whose value the hidden ORDER BY column `column` of
/// `plan` (a `Map`, under a `Distinct` for SELECT DISTINCT) computes the
/// key of under a collation, with that collation.
fn collated_output(plan: &Plan, column: usize, columns: &[OutputColumn]) -> Option<(usize, Collation)> {
    let plan = match plan {
        Plan::Distinct { input } => input,
        plan => plan,
    };
    let Plan::Map { exprs, .. } = plan else { return None };
    if column < columns.len() {
        return None;
    }
    let Expr::Call { func: Func::CollationKey(c), args } = exprs.get(column)? else { return None };
    let [x] = args.as_slice() else { return None };
    (0..columns.len()).find(|&j| exprs[j] == *x).map(|j| (j, *c))
}

/// The output column (below `width`) whose `character(n)` value stripped of
/// its trailing blanks `plan` (as in [`collated_output`]) computes as the
/// hidden ORDER BY column `column`.
fn bpchar_sort_key(plan: &Plan, column: usize, width: usize) -> Option<usize> {
    let plan = match plan {
        Plan::Distinct { input } => input,
        plan => plan,
    };
    let Plan::Map { exprs, .. } = plan else { return None };
    if column < width {
        return None;
    }
    match exprs.get(column)? {
        Expr::Call { func: Func::Trim(denorm_expr::TrimSide::Trailing), args } => match args.as_slice() {
            [x, Expr::Literal(blank)] if *blank == Datum::text(" ") => exprs[..width].iter().position(|e| e == x),
            _ => None,
        },
        _ => None,
    }
}

/// The text columns whose collation (the compound's, see [`unify_columns`])
/// is not BINARY, with it.
fn collation_keys(columns: &[OutputColumn]) -> Vec<(usize, Collation)> {
    let keyed = |(i, c): (usize, &OutputColumn)| {
        let collation = c.collation.unwrap_or_default();
        (collation != Collation::Binary && c.ty == ScalarType::Text).then_some((i, collation))
    };
    columns.iter().enumerate().filter_map(keyed).collect()
}

/// PostgreSQL resolves `text` then `character(n)` to text (the first type,
/// each converting implicitly to the other), the `character(n)` side read
/// without its trailing blanks: such columns of `r` are stripped and lose
/// the mark in `columns`. (`character(n)` then `text` is `character`: the
/// text compared without trailing blanks, as the mark already says.)
fn bpchar_as_text(
    l: Plan,
    r: Plan,
    columns: &mut [OutputColumn],
    left: &[OutputColumn],
    right: &[OutputColumn],
) -> (Plan, Plan) {
    let marked = |c: &OutputColumn| c.collation.is_some_and(|c| c != Collation::Binary);
    let mixed: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].ty == ScalarType::Text && !marked(&left[i]) && marked(&right[i]))
        .collect();
    if mixed.is_empty() {
        return (l, r);
    }
    let strip = |plan: Plan, side: &[OutputColumn]| {
        let exprs = (0..plan.arity())
            .map(|i| match mixed.contains(&i) && marked(&side[i]) {
                true => Expr::Call {
                    func: Func::Trim(denorm_expr::TrimSide::Trailing),
                    args: vec![Expr::Column(i), Expr::Literal(Datum::text(" ").into_owned())],
                },
                false => Expr::Column(i),
            })
            .collect();
        Plan::Map { input: Box::new(plan), exprs }
    };
    for &i in &mixed {
        columns[i].collation = None;
    }
    (l, strip(r, right))
}

/// SQLite compares 1 and 1.0 as equal and keeps either when it removes
/// duplicates (`SELECT 1 UNION SELECT 1.0` is 1.0, the other way round 1):
/// an integer column meeting a double one is refused there.
fn mixed_numbers(
    left: &[OutputColumn],
    right: &[OutputColumn],
    name: &str,
    at: Option<Location>,
) -> Result<(), PlanError> {
    use ScalarType::{Float, Int};
    for (i, (l, r)) in left.iter().zip(right).enumerate() {
        if matches!((l.ty, r.ty), (Int, Float) | (Float, Int)) {
            return Err(PlanError::new(
                format!("{name} of an integer and a double column is not supported in SQLite"),
                at,
            )
            .detail(format!(
                "column {} (\"{}\"): SQLite treats 1 and 1.0 as one row and keeps either value",
                i + 1,
                l.name
            ))
            .hint("CAST both sides AS REAL (or both AS INTEGER)"));
        }
    }
    Ok(())
}

fn cast(plan: Plan, casts: &[(usize, ScalarType)]) -> Plan {
    if casts.is_empty() {
        return plan;
    }
    let exprs = (0..plan.arity())
        .map(|c| match casts.iter().find(|(i, _)| *i == c) {
            Some(&(_, to)) => Expr::Cast { expr: Box::new(Expr::Column(c)), to },
            None => Expr::Column(c),
        })
        .collect();
    Plan::Map { input: Box::new(plan), exprs }
}

/// `b`'s reads added to `a`'s, columns in schema order.
fn merge_reads(a: &mut Vec<TableDependency>, b: Vec<TableDependency>, catalog: &Catalog) {
    for dep in b {
        match a.iter_mut().find(|d| d.table.eq_ignore_ascii_case(&dep.table)) {
            Some(d) => {
                d.columns.extend(dep.columns.into_iter().filter(|c| !d.columns.contains(c)).collect::<Vec<_>>());
                if let Some(schema) = catalog.get(&d.table) {
                    let read = &d.columns;
                    let ordered = schema.columns.iter().filter(|c| read.contains(&c.name)).map(|c| c.name.clone());
                    d.columns = ordered.collect();
                }
            }
            None => a.push(dep),
        }
    }
}

/// A compound's key: all columns, proven unique unless it is a bag (UNION
/// ALL, EXCEPT ALL, INTERSECT ALL); a declared key is checked at runtime
/// unless it covers every column of a set.
fn compound_key(branch: &Branch, cx: &Context<'_, '_>) -> Result<ViewKey, PlanError> {
    let all: Vec<usize> = (0..branch.columns.len()).collect();
    let (Some(declared), 0) = (&cx.view.key, cx.depth) else {
        return Ok(ViewKey { columns: all, origin: KeyOrigin::AllColumns, proven_unique: branch.set });
    };
    let names: Vec<&str> = branch.columns.iter().map(|c| c.name.as_str()).collect();
    let mut columns = Vec::new();
    for n in &declared.names {
        let position =
            names.iter().position(|x| x == n).or_else(|| names.iter().position(|x| x.eq_ignore_ascii_case(n)));
        columns.push(position.ok_or_else(|| {
            PlanError::new(format!("key column \"{n}\" is not a column of view {}", cx.view.name), declared.location)
                .hint(format!("the view's columns are: {}", names.join(", ")))
        })?);
    }
    let proven_unique = branch.set && all.iter().all(|c| columns.contains(c));
    Ok(ViewKey { columns, origin: KeyOrigin::Declared, proven_unique })
}
