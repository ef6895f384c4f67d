//! FROM and JOIN → a left-deep tree of equi-joins in FROM order.
//!
//! ```text
//!  FROM a JOIN b ON … LEFT JOIN c ON …      Join(left: Join(Get a, Get b), right: Get c)
//! ```
//!
//! Each ON is split into its conjuncts: equalities between a column of the
//! tables joined so far and a column of the new table become the join key;
//! everything else is the residual, evaluated over the concatenated row.
//!
//! A FROM item is a source table or a subquery with an alias (see
//! [`crate::derived`]); a subquery's plan stands where a `Get` would.

use denorm_expr::{BinaryOp, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Row, ScalarType, TableSchema};
use sqlparser::ast::{self, JoinConstraint, JoinOperator, TableFactor};
use sqlparser::keywords::Keyword;

use crate::derived::{bound, plan_derived, set_limit, subquery_location, Derived};
use crate::expr::{Clause, Lowerer};
use crate::scope::Scope;
use crate::select::Context;
use crate::source::{location, object_name_start};
use crate::{Location, PlanError};

const JOIN_KEYWORDS: &[Keyword] = &[
    Keyword::JOIN,
    Keyword::INNER,
    Keyword::LEFT,
    Keyword::RIGHT,
    Keyword::FULL,
    Keyword::OUTER,
    Keyword::CROSS,
    Keyword::NATURAL,
    Keyword::SEMI,
    Keyword::ANTI,
];

/// The FROM clause's relations and the plan reading them, and the WHERE
/// conjuncts (of `selection`) that became the limit of a ranked subquery.
pub(crate) fn plan_from<'q, 'c>(
    from: &[ast::TableWithJoins],
    selection: Option<&'q ast::Expr>,
    cx: &Context<'_, 'c>,
    fallback: Option<Location>,
) -> Result<(Scope<'c>, Plan, Vec<&'q ast::Expr>), PlanError> {
    let statement = &cx.view.tokens;
    let Some(first) = from.first() else {
        // No FROM: the select list is evaluated once, over one empty row.
        let mut scope = Scope::default();
        scope.catalog = Some(cx.catalog);
        return Ok((scope, Plan::Values { rows: vec![Row::empty()], arity: 0 }, Vec::new()));
    };
    if let Some(second) = from.get(1) {
        let at = factor_start(&second.relation).map(|l| statement.back(l, 1)).and_then(location).or(fallback);
        return Err(PlanError::new("comma-separated FROM lists are not supported", at)
            .hint("write JOIN … ON with an equality between the tables"));
    }
    let mut scope = Scope::default();
    scope.catalog = Some(cx.catalog);
    let mut ranked = Vec::new();
    let (relation, name) = relation(&first.relation, cx, &scope, fallback)?;
    let mut plan = push(&mut scope, relation, name, false, &mut ranked);
    for join in &first.joins {
        plan = plan_join(plan, join, cx, &mut scope, &mut ranked, fallback)?;
    }
    let conjuncts = selection.map(conjuncts).unwrap_or_default();
    let mut consumed = Vec::new();
    for (r, column, at) in ranked {
        let (limit, exact) = bound(r, column, at, &conjuncts, &scope)?;
        set_limit(relation_plan(&mut plan, r, scope.relations.len()), limit);
        consumed.extend(exact);
    }
    Ok((scope, plan, consumed))
}

/// One FROM item: a source table or a planned subquery.
enum Relation<'c> {
    Table(&'c TableSchema),
    Derived(Box<Derived>),
}

/// Adds `relation` to the scope; returns its plan. A ranked subquery is
/// noted with its row-number column and position in `ranked`.
fn push<'c>(
    scope: &mut Scope<'c>,
    relation: Relation<'c>,
    name: String,
    outer: bool,
    ranked: &mut Vec<(usize, usize, Option<Location>)>,
) -> Plan {
    match relation {
        Relation::Table(table) => {
            scope.push(name, table, outer);
            get(table)
        }
        Relation::Derived(d) => {
            let d = *d;
            if let Some((column, at)) = d.rank {
                ranked.push((scope.relations.len(), column, at));
            }
            scope.push_derived(name, d.schema, d.reads, outer);
            d.plan
        }
    }
}

/// The plan of relation `index` of `count` in a left-deep join tree.
fn relation_plan(plan: &mut Plan, index: usize, count: usize) -> &mut Plan {
    if count <= 1 {
        return plan;
    }
    let Plan::Join { left, right, .. } = plan else { unreachable!("a left-deep join tree (bug)") };
    if index + 1 == count {
        right
    } else {
        relation_plan(left, index, count - 1)
    }
}

fn get(table: &TableSchema) -> Plan {
    Plan::Get { table: table.name.clone(), arity: table.columns.len() }
}

fn factor_start(factor: &TableFactor) -> Option<sqlparser::tokenizer::Location> {
    match factor {
        TableFactor::Table { name, .. } => object_name_start(name),
        TableFactor::Derived { subquery, .. } => match &*subquery.body {
            ast::SetExpr::Select(s) => Some(s.select_token.0.span.start),
            _ => None,
        },
        _ => None,
    }
}

/// A table reference looked up in the catalog, or a subquery planned.
fn relation<'c>(
    factor: &TableFactor,
    cx: &Context<'_, 'c>,
    scope: &Scope<'_>,
    fallback: Option<Location>,
) -> Result<(Relation<'c>, String), PlanError> {
    let catalog = cx.catalog;
    let (name, alias) = match factor {
        TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version: None,
            with_ordinality: false,
            partitions,
            json_path: None,
            sample: None,
            index_hints,
        } if with_hints.is_empty() && partitions.is_empty() && index_hints.is_empty() => (name, alias),
        TableFactor::Derived { lateral, subquery, alias, sample } => {
            return derived_relation(*lateral, subquery, alias.as_ref(), sample.is_some(), cx, scope, fallback)
        }
        TableFactor::NestedJoin { .. } => {
            return Err(PlanError::new("parenthesized joins are not supported", fallback)
                .hint("write the joins one after the other: a JOIN b ON … JOIN c ON …"))
        }
        other => {
            let at = factor_start(other).and_then(location).or(fallback);
            return Err(PlanError::new("this FROM item is not supported; only table names and subqueries are", at));
        }
    };
    let at = object_name_start(name).and_then(location).or(fallback);
    let [ast::ObjectNamePart::Identifier(table_name)] = name.0.as_slice() else {
        return Err(PlanError::new(format!("qualified table name {name} is not supported"), at)
            .hint("name the table without its schema"));
    };
    if let Some(cte) = cx.ctes.iter().rev().find(|c| c.name.eq_ignore_ascii_case(&table_name.value)) {
        // A WITH query shadows a table of the same name.
        let (derived, visible) = crate::query::cte_relation(cte, alias.as_ref())?;
        check_unique_name(&visible, at, scope)?;
        return Ok((Relation::Derived(Box::new(derived)), visible));
    }
    let table = catalog.get(&table_name.value).ok_or_else(|| unknown_table(&table_name.value, catalog, at))?;
    if let Some(alias) = alias {
        if !alias.columns.is_empty() {
            return Err(PlanError::new("column aliases in FROM are not supported", location(alias.name.span.start)));
        }
    }
    let (visible, visible_at) = match alias {
        Some(a) => (a.name.value.clone(), location(a.name.span.start)),
        None => (table_name.value.clone(), at),
    };
    check_unique_name(&visible, visible_at, scope)?;
    Ok((Relation::Table(table), visible.to_ascii_lowercase()))
}

fn check_unique_name(visible: &str, at: Option<Location>, scope: &Scope<'_>) -> Result<(), PlanError> {
    if scope.relation(visible).is_some() {
        return Err(PlanError::new(format!("table name \"{visible}\" specified more than once"), at)
            .hint("give each occurrence its own alias"));
    }
    Ok(())
}

/// `(SELECT …) AS alias`.
fn derived_relation<'c>(
    lateral: bool,
    subquery: &ast::Query,
    alias: Option<&ast::TableAlias>,
    sampled: bool,
    cx: &Context<'_, 'c>,
    scope: &Scope<'_>,
    fallback: Option<Location>,
) -> Result<(Relation<'c>, String), PlanError> {
    let at = subquery_location(subquery).or(fallback);
    if lateral {
        return Err(PlanError::new("LATERAL subqueries are not supported", at)
            .hint("a subquery in FROM cannot refer to the tables before it; join its result instead"));
    }
    if sampled {
        return Err(PlanError::new("TABLESAMPLE is not supported", at));
    }
    let Some(alias) = alias else {
        return Err(PlanError::new("a subquery in FROM must have an alias", at).hint("write (SELECT …) AS name"));
    };
    if !alias.columns.is_empty() {
        return Err(PlanError::new("column aliases in FROM are not supported", location(alias.name.span.start))
            .hint("name the columns inside the subquery with AS"));
    }
    check_unique_name(&alias.name.value, location(alias.name.span.start), scope)?;
    let derived = plan_derived(subquery, &alias.name.value, cx, at)?;
    Ok((Relation::Derived(Box::new(derived)), alias.name.value.to_ascii_lowercase()))
}

fn unknown_table(name: &str, catalog: &Catalog, at: Option<Location>) -> PlanError {
    let known: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
    let hint = if known.is_empty() {
        "the source database has no tables".to_string()
    } else {
        format!("known tables: {}", known.join(", "))
    };
    PlanError::new(format!("table \"{name}\" does not exist"), at).hint(hint)
}

fn join_kind(op: &JoinOperator, at: Option<Location>) -> Result<(JoinKind, &JoinConstraint), PlanError> {
    let refuse =
        |what: &str, hint: &str| Err(PlanError::new(format!("{what} is not supported"), at).hint(hint.to_string()));
    let (kind, constraint) = match op {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (JoinKind::Inner, c),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (JoinKind::Left, c),
        JoinOperator::Right(_) | JoinOperator::RightOuter(_) => {
            return refuse("RIGHT JOIN", "swap the two tables and write LEFT JOIN")
        }
        JoinOperator::FullOuter(_) => {
            return refuse("FULL JOIN", "define the view with LEFT JOIN from the side that must be kept")
        }
        JoinOperator::CrossJoin(_) => {
            return refuse("CROSS JOIN", "write JOIN … ON with an equality between the tables")
        }
        _ => return refuse("this kind of join", "use JOIN … ON or LEFT JOIN … ON"),
    };
    match constraint {
        JoinConstraint::On(_) => Ok((kind, constraint)),
        JoinConstraint::Using(_) => refuse("JOIN … USING", "write ON a.col = b.col"),
        JoinConstraint::Natural => refuse("NATURAL JOIN", "write JOIN … ON a.col = b.col"),
        JoinConstraint::None => refuse("JOIN without ON", "write JOIN … ON a.col = b.col"),
    }
}

fn plan_join<'c>(
    left: Plan,
    join: &ast::Join,
    cx: &Context<'_, 'c>,
    scope: &mut Scope<'c>,
    ranked: &mut Vec<(usize, usize, Option<Location>)>,
    fallback: Option<Location>,
) -> Result<Plan, PlanError> {
    let (statement, dialect) = (&cx.view.tokens, cx.dialect);
    let join_at = factor_start(&join.relation)
        .map(|l| statement.back_over_keywords(l, JOIN_KEYWORDS))
        .and_then(location)
        .or(fallback);
    let (kind, constraint) = join_kind(&join.join_operator, join_at)?;
    let (relation, name) = relation(&join.relation, cx, scope, join_at)?;
    if let (Relation::Derived(d), JoinKind::Left) = (&relation, kind) {
        if let Some((_, at)) = d.rank {
            return Err(PlanError::new("a subquery with ROW_NUMBER() cannot be the right side of a LEFT JOIN", at)
                .detail("its row-number bound in WHERE would also drop the left rows it does not match")
                .hint("join it with JOIN, or make it the first table of FROM"));
        }
    }
    let left_arity = scope.arity();
    let right = push(scope, relation, name, kind == JoinKind::Left, ranked);
    let JoinConstraint::On(on) = constraint else { return Err(PlanError::new("JOIN without ON", join_at)) };
    let scope = &*scope;
    let lowerer = Lowerer {
        scope,
        statement,
        dialect,
        clause: Clause::JoinOn,
        grouping: None,
        fallback: join_at,
        subqueries: None,
    };
    let (mut left_key, mut right_key, mut residual) = (Vec::new(), Vec::new(), Vec::new());
    for conjunct in conjuncts(on) {
        match equi_pair(conjunct, scope, left_arity)? {
            Some((l, r)) => {
                left_key.push(l);
                right_key.push(r - left_arity);
            }
            None => residual.push(conjunct),
        }
    }
    if left_key.is_empty() {
        let at = statement.start_of(on).and_then(location).or(join_at);
        return Err(PlanError::new(
            "join conditions must include an equality between columns of the joined tables",
            at,
        )
        .hint("e.g. JOIN reviews r ON r.product_id = p.id; other conditions may follow with AND"));
    }
    Ok(Plan::Join {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        left_key,
        right_key,
        residual: residual_expr(&residual, &lowerer)?,
    })
}

/// The residual conjuncts as one condition.
fn residual_expr(conjuncts: &[&ast::Expr], lowerer: &Lowerer<'_, '_>) -> Result<Option<Expr>, PlanError> {
    let mut out: Option<Expr> = None;
    for c in conjuncts {
        let t = lowerer.lower_condition(c, "JOIN/ON", 0)?;
        out = Some(match out {
            None => t.expr,
            Some(prev) => Expr::binary(BinaryOp::And, prev, t.expr),
        });
    }
    Ok(out)
}

/// The conjuncts of `a AND (b AND c)`, left to right, without recursion.
pub(crate) fn conjuncts(on: &ast::Expr) -> Vec<&ast::Expr> {
    let mut out = Vec::new();
    let mut stack = vec![on];
    while let Some(e) = stack.pop() {
        match e {
            ast::Expr::Nested(inner) => stack.push(inner),
            ast::Expr::BinaryOp { left, op: ast::BinaryOperator::And, right } => {
                stack.push(right);
                stack.push(left);
            }
            _ => out.push(e),
        }
    }
    out
}

fn column_idents(e: &ast::Expr) -> Option<&[ast::Ident]> {
    match e {
        ast::Expr::Identifier(i) => Some(std::slice::from_ref(i)),
        ast::Expr::CompoundIdentifier(v) => Some(v),
        ast::Expr::Nested(inner) => column_idents(inner),
        _ => None,
    }
}

/// `l = r` between a column left of `left_arity` and one right of it, of the
/// same type (a hash join would not match 1 with 1.0, so mixed numeric
/// equalities stay in the residual).
fn equi_pair(e: &ast::Expr, scope: &Scope<'_>, left_arity: usize) -> Result<Option<(usize, usize)>, PlanError> {
    let ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } = e else { return Ok(None) };
    let (Some(l), Some(r)) = (column_idents(left), column_idents(right)) else { return Ok(None) };
    let (l, r) = (scope.resolve(l)?, scope.resolve(r)?);
    if l.ty != r.ty || l.ty == ScalarType::Null {
        return Ok(None);
    }
    Ok(match (l.position < left_arity, r.position < left_arity) {
        (true, false) => Some((l.position, r.position)),
        (false, true) => Some((r.position, l.position)),
        _ => None,
    })
}
