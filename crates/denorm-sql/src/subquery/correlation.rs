//! Taking a subquery's correlation out of its WHERE: which names belong
//! to the outer query, and which AND terms are equalities `inner = outer`.

use denorm_expr::Expr;
use denorm_types::{Collation, ScalarType};
use sqlparser::ast::{self, GroupByExpr, SelectItem};

use super::{Subqueries, CORRELATION_HINT, MAX_NESTING};
use crate::expr::{Clause, Lowerer};
use crate::from::{conjuncts, plan_from};
use crate::scope::Scope;
use crate::select::{has_aggregate, plan_select, query_select, Body, Context};
use crate::source::location;
use crate::types::{coerce_literal, collation_key, comparison_collation, Typed};
use crate::{Location, PlanError};

/// One correlation equality `inner = outer`.
pub(super) struct Pair {
    pub inner_ast: ast::Expr,
    /// Over the subquery's FROM row (its type and identity).
    pub inner: Typed,
    /// Over the outer query's row.
    pub outer: Typed,
}

/// A subquery with its correlation taken out of its WHERE.
pub(super) struct Inner<'q, 'a, 'c> {
    pub cx: Context<'a, 'c>,
    pub select: &'q ast::Select,
    /// Its WHERE's AND terms that read only its own tables.
    pub local: Vec<ast::Expr>,
    pub pairs: Vec<Pair>,
    /// Correlated AND terms that are not equalities (only where the caller
    /// can plan them, else refused).
    pub residual: Vec<&'q ast::Expr>,
    /// Correlated AND terms reading only the outer query's columns (with
    /// `residual`).
    pub outer_only: Vec<&'q ast::Expr>,
    /// Why the first of `residual` and `outer_only` is not a correlation
    /// equality, for forms that take none.
    pub not_equality: Option<PlanError>,
    /// When `residual` is one term `inner <> outer` (or `!=`): that term
    /// as the pair of its sides (typed and keyed as an equality would be),
    /// which `not_equal.rs` plans by counting.
    pub not_equal: Option<Pair>,
    pub at: Option<Location>,
}

impl Inner<'_, '_, '_> {
    pub fn grouped(&self) -> bool {
        !group_exprs(self.select).is_empty() || self.select.having.is_some() || has_aggregate(self.select)
    }

    /// A query with aggregates but no GROUP BY: exactly one row.
    pub fn global_aggregate(&self) -> bool {
        self.grouped() && group_exprs(self.select).is_empty()
    }

    /// The one expression selected (IN, scalar subqueries).
    pub fn item(&self, what: &str) -> Result<SelectItem, PlanError> {
        match self.select.projection.as_slice() {
            [item @ (SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. })] => Ok(item.clone()),
            _ => Err(PlanError::new(format!("{what} must select exactly one column"), self.at)
                .hint("select one expression, e.g. (SELECT max(x) FROM …)")),
        }
    }

    /// The select with its local WHERE, `projection` (then the correlation
    /// expressions, named apart), the correlation added to a GROUP BY when
    /// `group` and DISTINCT when `distinct`.
    pub fn rebuild(&self, projection: Vec<SelectItem>, group: bool, distinct: bool) -> ast::Select {
        let mut s = self.select.clone();
        s.selection = self.local.iter().cloned().reduce(|a, b| ast::Expr::BinaryOp {
            left: Box::new(a),
            op: ast::BinaryOperator::And,
            right: Box::new(b),
        });
        let correlation = self.pairs.iter().enumerate().map(|(i, p)| SelectItem::ExprWithAlias {
            expr: p.inner_ast.clone(),
            alias: ast::Ident::new(format!("__denorm_correlation_{i}")),
        });
        s.projection = projection.into_iter().chain(correlation).collect();
        if group {
            if let GroupByExpr::Expressions(exprs, _) = &mut s.group_by {
                exprs.extend(self.pairs.iter().map(|p| p.inner_ast.clone()));
            }
        }
        s.distinct = distinct.then_some(ast::Distinct::Distinct);
        s
    }

    /// Refuses `GROUP BY 2` where the select list is rewritten.
    pub fn check_group_positions(&self) -> Result<(), PlanError> {
        for e in group_exprs(self.select) {
            if let ast::Expr::Value(v) = e {
                if let ast::Value::Number(..) = v.value {
                    return Err(PlanError::new("GROUP BY positions are not supported in a subquery here", self.at)
                        .hint("name the grouping expression instead of its position"));
                }
            }
        }
        Ok(())
    }

    /// Refuses correlated terms other than equalities.
    pub fn equalities_only(&self) -> Result<(), PlanError> {
        match &self.not_equality {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    pub fn outer_keys(&self) -> Vec<Expr> {
        self.pairs.iter().map(|p| p.outer.expr.clone()).collect()
    }
}

fn group_exprs(select: &ast::Select) -> &[ast::Expr] {
    match &select.group_by {
        GroupByExpr::Expressions(exprs, _) => exprs,
        GroupByExpr::All(_) => &[],
    }
}

pub(super) fn one() -> SelectItem {
    SelectItem::ExprWithAlias {
        expr: ast::Expr::value(ast::Value::Number("1".into(), false)),
        alias: ast::Ident::new("__denorm_one"),
    }
}

/// Plans a rebuilt subquery and records what it reads.
pub(super) fn plan_inner<'q, 'c>(
    subqueries: &Subqueries<'_, 'c>,
    inner: &Inner<'_, '_, 'c>,
    select: &'q ast::Select,
) -> Result<(Scope<'c>, Body<'q>), PlanError> {
    let (scope, body) = plan_select(select, &inner.cx)?;
    subqueries.scope.subquery_reads.borrow_mut().extend(scope.dependencies(inner.cx.catalog));
    Ok((scope, body))
}

/// Splits the subquery's WHERE into local terms and correlation equalities.
pub(super) fn decorrelate<'q, 'a, 'c>(
    lw: &Lowerer<'_, 'c>,
    subqueries: &Subqueries<'a, 'c>,
    query: &'q ast::Query,
    at: Option<Location>,
    projection_matters: bool,
    order: &[ast::OrderByExpr],
) -> Result<Inner<'q, 'a, 'c>, PlanError> {
    let outer_cx = subqueries.cx;
    if outer_cx.depth >= MAX_NESTING {
        return Err(PlanError::new(format!("subqueries are nested too deeply (more than {MAX_NESTING} levels)"), at));
    }
    let start = match &*query.body {
        ast::SetExpr::Select(s) => s.select_token.0.span.start,
        _ => outer_cx.start,
    };
    let cx = Context { start, depth: outer_cx.depth + 1, compared: true, ..outer_cx };
    let select = query_select(query, &cx)?;
    // Only its names matter here (the WHERE, read with the outer query's
    // names, is planned once split).
    let (scope, _, _) = plan_from(&select.from, None, &cx, at)?;
    let split = split_where(lw, subqueries, select, &scope, at)?;
    let mut others: Vec<&ast::Expr> = group_exprs(select).iter().chain(select.having.as_ref()).collect();
    if projection_matters {
        others.extend(select.projection.iter().filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        }));
    }
    others.extend(order.iter().map(|o| &o.expr));
    for e in others {
        if let Some(first) = outer_references(e, &scope, subqueries.scope).first() {
            return Err(PlanError::new(
                format!("a subquery can refer to the outer query's column {first} only in its WHERE"),
                lw.at(e).or(at),
            )
            .hint(CORRELATION_HINT));
        }
    }
    // Over groups the pairs' outer sides are Reduce columns, not names.
    let through = if subqueries.over_groups { &[][..] } else { &split.pairs[..] };
    let mut local = Vec::with_capacity(split.local.len());
    for c in &split.local {
        let mut c = (*c).clone();
        Nested { inner: &scope, outer: subqueries.scope, pairs: through, names: Vec::new() }.expr(&mut c);
        check_nested(&c, &scope, subqueries.scope, at)?;
        local.push(c);
    }
    let Split { pairs, residual, outer_only, not_equality, not_equal, .. } = split;
    Ok(Inner { cx, select, local, pairs, residual, outer_only, not_equality, not_equal, at })
}

/// A subquery's WHERE terms by what they read.
struct Split<'q> {
    local: Vec<&'q ast::Expr>,
    pairs: Vec<Pair>,
    residual: Vec<&'q ast::Expr>,
    outer_only: Vec<&'q ast::Expr>,
    not_equality: Option<PlanError>,
    not_equal: Option<Pair>,
}

fn split_where<'q>(
    lw: &Lowerer<'_, '_>,
    subqueries: &Subqueries<'_, '_>,
    select: &'q ast::Select,
    scope: &Scope<'_>,
    at: Option<Location>,
) -> Result<Split<'q>, PlanError> {
    let outer = subqueries.scope;
    let inner_lw = Lowerer {
        scope,
        statement: lw.statement,
        dialect: lw.dialect,
        clause: Clause::Where,
        grouping: None,
        fallback: at,
        subqueries: None,
        windows: &[],
        clock: lw.clock,
    };
    // Over a Reduce output, outer values are GROUP BY expressions or
    // aggregates, lowered as in the outer SELECT list.
    let over_groups = subqueries.over_groups;
    let clause = if over_groups { Clause::Select } else { Clause::Where };
    let outer_lw = Lowerer { scope: outer, clause, grouping: lw.grouping, subqueries: None, ..*lw };
    let mut split = Split {
        local: Vec::new(),
        pairs: Vec::new(),
        residual: Vec::new(),
        outer_only: Vec::new(),
        not_equality: None,
        not_equal: None,
    };
    for c in select.selection.as_ref().map(conjuncts).unwrap_or_default() {
        let refs = outer_references(c, scope, outer);
        let Some(first) = refs.first() else {
            split.local.push(c);
            continue;
        };
        match pair(c, scope, outer, &inner_lw, &outer_lw, first) {
            Ok(p) => split.pairs.push(p),
            Err(PairError::NotEquality(_)) if over_groups => {
                return Err(PlanError::new(
                    format!("this correlated condition on {first} cannot be decorrelated over groups"),
                    lw.at(c).or(at),
                )
                .detail("in HAVING and a grouped SELECT list, a subquery is joined on equalities between its own expressions and GROUP BY expressions or aggregates")
                .hint("compute the correlated value in WHERE or in a subquery in FROM, then group"))
            }
            Err(PairError::NotEquality(e)) => {
                split.not_equality.get_or_insert(e);
                match identifiers(c).len() == refs.len() {
                    true => split.outer_only.push(c),
                    false => split.residual.push(c),
                }
            }
            Err(PairError::Other(e)) => return Err(e),
        }
    }
    if let [term] = split.residual[..] {
        split.not_equal = not_equal(term, scope, outer, &inner_lw, &outer_lw);
    }
    Ok(split)
}

/// `inner <> outer` (or `!=`, either way round) as the pair of an
/// equality `inner = outer`; `None` for any other term, or when the sides
/// would not make a join key (the domain plan then evaluates the term).
fn not_equal(
    c: &ast::Expr,
    inner: &Scope<'_>,
    outer: &Scope<'_>,
    inner_lw: &Lowerer<'_, '_>,
    outer_lw: &Lowerer<'_, '_>,
) -> Option<Pair> {
    let mut e = c;
    while let ast::Expr::Nested(x) = e {
        e = x;
    }
    let ast::Expr::BinaryOp { left, op: ast::BinaryOperator::NotEq, right } = e else { return None };
    let equality = ast::Expr::BinaryOp { left: left.clone(), op: ast::BinaryOperator::Eq, right: right.clone() };
    pair(&equality, inner, outer, inner_lw, outer_lw, "").ok()
}

enum PairError {
    /// The term is not an equality between an inner and an outer side.
    NotEquality(PlanError),
    Other(PlanError),
}

impl From<PlanError> for PairError {
    fn from(e: PlanError) -> Self {
        PairError::Other(e)
    }
}

/// `inner = outer` (either way round) as a correlation pair.
fn pair(
    c: &ast::Expr,
    inner: &Scope<'_>,
    outer: &Scope<'_>,
    inner_lw: &Lowerer<'_, '_>,
    outer_lw: &Lowerer<'_, '_>,
    first: &str,
) -> Result<Pair, PairError> {
    let at = outer_lw.at(c);
    let refuse = || {
        PlanError::new(format!("this correlated condition on {first} cannot be decorrelated"), at)
            .detail(
                "IN and scalar subqueries are joined on equalities between an inner and an outer expression; \
                 EXISTS also takes other correlated conditions",
            )
            .hint(CORRELATION_HINT)
    };
    let mut e = c;
    while let ast::Expr::Nested(x) = e {
        e = x;
    }
    let ast::Expr::BinaryOp { left, op: ast::BinaryOperator::Eq, right } = e else {
        return Err(PairError::NotEquality(refuse()));
    };
    // (reads the subquery's tables, reads the outer query's)
    let side = |x: &ast::Expr| {
        let (all, outer_refs) = (identifiers(x).len(), outer_references(x, inner, outer).len());
        (all > outer_refs, outer_refs > 0)
    };
    let (inner_ast, outer_ast) = match (side(left), side(right)) {
        ((true, false), (false, true)) => (&**left, &**right),
        ((false, true), (true, false)) => (&**right, &**left),
        _ => return Err(PairError::NotEquality(refuse())),
    };
    let inner_t = inner_lw.lower(inner_ast, 0)?;
    let outer_t = outer_lw.lower(outer_ast, 0)?;
    let outer_t = coerce_literal(outer_t, inner_t.ty, at)?;
    if inner_t.ty != outer_t.ty {
        return Err(PairError::Other(
            PlanError::new(format!("correlated equality compares {} with {}", inner_t.ty, outer_t.ty), at)
                .detail("a correlation is a join key, and join keys must have one type")
                .hint("CAST one side to the other's type"),
        ));
    }
    let collation = match std::ptr::eq(inner_ast, &**left) {
        true => comparison_collation(&inner_t, &outer_t),
        false => comparison_collation(&outer_t, &inner_t),
    };
    let differs = collation != inner_t.own_collation();
    if (collation != Collation::Binary || differs) && inner_t.ty == ScalarType::Text {
        // Both sides keyed by their collation key: the subquery is planned
        // over `inner COLLATE c` (grouped and deduplicated by the key), the
        // outer side joins with its key. The outer side is then no column,
        // so no nested subquery reads the inner side in its place.
        let inner_ast = crate::expr::collation_key_ast(inner_ast.clone(), collation);
        let (inner, outer) = (collation_key(inner_t, collation), collation_key(outer_t, collation));
        return Ok(Pair { inner_ast, inner, outer });
    }
    Ok(Pair { inner_ast: inner_ast.clone(), inner: inner_t, outer: outer_t })
}

/// Names in `e` (outside nested subqueries) that the subquery's tables do
/// not have but the outer query's do, as written.
fn outer_references(e: &ast::Expr, inner: &Scope<'_>, outer: &Scope<'_>) -> Vec<String> {
    identifiers(e)
        .into_iter()
        .filter(|idents| !knows(inner, idents) && knows(outer, idents))
        .map(|idents| idents.iter().map(|i| i.value.as_str()).collect::<Vec<_>>().join("."))
        .collect()
}

pub(super) fn knows(scope: &Scope<'_>, idents: &[ast::Ident]) -> bool {
    match idents {
        [column] => scope.relations.iter().any(|r| r.table.column_index(&column.value).is_some()),
        [relation, _] => scope.relation(&relation.value).is_some(),
        _ => false,
    }
}

/// The column references in `e`, not descending into subqueries, found
/// without recursion.
pub(super) fn identifiers(e: &ast::Expr) -> Vec<&[ast::Ident]> {
    walk(e).0
}

/// The column references in `e` and the subqueries it holds, not
/// descending into those, found without recursion.
fn walk(e: &ast::Expr) -> (Vec<&[ast::Ident]>, Vec<&ast::Query>) {
    use ast::Expr as E;
    let mut out = Vec::new();
    let mut queries = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match e {
            E::Subquery(q) | E::Exists { subquery: q, .. } => queries.push(&**q),
            E::InSubquery { expr, subquery, .. } => {
                stack.push(expr);
                queries.push(&**subquery);
            }
            E::Identifier(i) => out.push(std::slice::from_ref(i)),
            E::CompoundIdentifier(v) => out.push(v.as_slice()),
            E::Nested(x)
            | E::UnaryOp { expr: x, .. }
            | E::IsNull(x)
            | E::IsNotNull(x)
            | E::IsTrue(x)
            | E::IsNotTrue(x)
            | E::IsFalse(x)
            | E::IsNotFalse(x)
            | E::IsUnknown(x)
            | E::IsNotUnknown(x)
            | E::Cast { expr: x, .. }
            | E::Collate { expr: x, .. }
            | E::Extract { expr: x, .. }
            | E::Ceil { expr: x, .. }
            | E::Floor { expr: x, .. } => stack.push(x),
            E::BinaryOp { left, right, .. }
            | E::IsDistinctFrom(left, right)
            | E::IsNotDistinctFrom(left, right)
            | E::AnyOp { left, right, .. }
            | E::AllOp { left, right, .. } => stack.extend([&**left, &**right]),
            E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } | E::SimilarTo { expr, pattern, .. } => {
                stack.extend([&**expr, &**pattern])
            }
            E::InList { expr, list, .. } => {
                stack.push(expr);
                stack.extend(list);
            }
            E::Between { expr, low, high, .. } => stack.extend([&**expr, &**low, &**high]),
            E::Case { operand, conditions, else_result, .. } => {
                stack.extend(operand.as_deref());
                stack.extend(conditions.iter().flat_map(|w| [&w.condition, &w.result]));
                stack.extend(else_result.as_deref());
            }
            E::Substring { expr, substring_from, substring_for, .. } => {
                stack.push(expr);
                stack.extend(substring_from.as_deref());
                stack.extend(substring_for.as_deref());
            }
            E::Trim { expr, trim_what, .. } => {
                stack.push(expr);
                stack.extend(trim_what.as_deref());
            }
            E::Tuple(items) => stack.extend(items),
            E::Function(f) => {
                if let ast::FunctionArguments::List(list) = &f.args {
                    for a in &list.args {
                        let (ast::FunctionArg::Unnamed(arg)
                        | ast::FunctionArg::Named { arg, .. }
                        | ast::FunctionArg::ExprNamed { arg, .. }) = a;
                        if let ast::FunctionArgExpr::Expr(x) = arg {
                            stack.push(x);
                        }
                    }
                }
                if let Some(filter) = &f.filter {
                    stack.push(filter);
                }
            }
            _ => {}
        }
    }
    (out, queries)
}

/// Refuses a subquery nested in `c` (a term of the subquery's WHERE) that
/// names a table of the query two levels out: only the enclosing query's
/// tables can be correlated.
fn check_nested(c: &ast::Expr, inner: &Scope<'_>, outer: &Scope<'_>, at: Option<Location>) -> Result<(), PlanError> {
    for q in walk(c).1 {
        let ast::SetExpr::Select(nested) = &*q.body else { continue };
        let names: Vec<String> = nested
            .from
            .iter()
            .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
            .filter_map(factor_name)
            .collect();
        let exprs =
            nested.selection.iter().chain(nested.having.iter()).chain(nested.projection.iter().filter_map(|item| {
                match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
                    _ => None,
                }
            }));
        for e in exprs {
            for idents in identifiers(e) {
                let [relation, column] = idents else { continue };
                let own = names.iter().any(|n| n.eq_ignore_ascii_case(&relation.value));
                if !own && inner.relation(&relation.value).is_none() && outer.relation(&relation.value).is_some() {
                    return Err(PlanError::new(
                        format!(
                            "a subquery inside a subquery cannot refer to {}.{} of the query two levels out",
                            relation.value, column.value
                        ),
                        location(relation.span.start).or(at),
                    )
                    .hint("correlate the middle subquery with that table and use its own column instead (p.author_id = u.id, then p.author_id inside)"));
                }
            }
        }
    }
    Ok(())
}

/// The name a FROM item is visible by.
fn factor_name(f: &ast::TableFactor) -> Option<String> {
    match f {
        ast::TableFactor::Table { alias: Some(a), .. } | ast::TableFactor::Derived { alias: Some(a), .. } => {
            Some(a.name.value.clone())
        }
        ast::TableFactor::Table { name, .. } => name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone()),
        _ => None,
    }
}

/// Rewrites, inside the subqueries nested in a term of the subquery's
/// WHERE, `o.c` naming the query two levels out by the inner side of a
/// correlation equality `inner = o.c`: rows of the subquery have equal
/// values there, so the nested subquery correlates with its enclosing one.
struct Nested<'s, 'c> {
    inner: &'s Scope<'c>,
    outer: &'s Scope<'c>,
    pairs: &'s [Pair],
    /// The FROM names of the nested subqueries around the expression.
    names: Vec<Vec<String>>,
}

impl Nested<'_, '_> {
    fn expr(&mut self, e: &mut ast::Expr) {
        use ast::Expr as E;
        match e {
            E::CompoundIdentifier(idents) if !self.names.is_empty() => {
                if let Some(replacement) = self.replacement(idents) {
                    *e = replacement;
                }
            }
            E::Subquery(q) | E::Exists { subquery: q, .. } => self.query(q),
            E::InSubquery { expr, subquery, .. } => {
                self.expr(expr);
                self.query(subquery);
            }
            E::Nested(x) | E::UnaryOp { expr: x, .. } | E::IsNull(x) | E::IsNotNull(x) | E::Cast { expr: x, .. } => {
                self.expr(x)
            }
            E::BinaryOp { left, right, .. } => {
                self.expr(left);
                self.expr(right);
            }
            E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => {
                self.expr(expr);
                self.expr(pattern);
            }
            E::InList { expr, list, .. } => {
                self.expr(expr);
                list.iter_mut().for_each(|x| self.expr(x));
            }
            E::Between { expr, low, high, .. } => {
                self.expr(expr);
                self.expr(low);
                self.expr(high);
            }
            E::Case { operand, conditions, else_result, .. } => {
                operand.iter_mut().for_each(|x| self.expr(x));
                for w in conditions {
                    self.expr(&mut w.condition);
                    self.expr(&mut w.result);
                }
                else_result.iter_mut().for_each(|x| self.expr(x));
            }
            _ => {}
        }
    }

    fn query(&mut self, q: &mut ast::Query) {
        let ast::SetExpr::Select(s) = &mut *q.body else { return };
        let names = s
            .from
            .iter()
            .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
            .filter_map(factor_name)
            .collect();
        self.names.push(names);
        if let Some(w) = &mut s.selection {
            self.expr(w);
        }
        if let Some(h) = &mut s.having {
            self.expr(h);
        }
        for item in &mut s.projection {
            if let SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } = item {
                self.expr(x);
            }
        }
        self.names.pop();
    }

    /// The inner side of the correlation equality whose outer side is
    /// `rel.col` of the query two levels out, unless a nested subquery
    /// has a table of that name or of the replacement's.
    fn replacement(&self, idents: &[ast::Ident]) -> Option<ast::Expr> {
        let [relation, column] = idents else { return None };
        let shadowed = |name: &str| self.names.iter().flatten().any(|n| n.eq_ignore_ascii_case(name));
        if shadowed(&relation.value) || self.inner.relation(&relation.value).is_some() {
            return None;
        }
        let r = self.outer.relation(&relation.value)?;
        let rel = &self.outer.relations[r];
        let position = rel.offset + rel.table.column_index(&column.value)?;
        let pair = self.pairs.iter().find(|p| p.outer.expr == Expr::Column(position))?;
        // An unqualified name could resolve in the nested subquery itself.
        let clashes = identifiers(&pair.inner_ast).iter().any(|i| i.len() != 2 || shadowed(&i[0].value));
        (!clashes).then(|| ast::Expr::Nested(Box::new(pair.inner_ast.clone())))
    }
}
