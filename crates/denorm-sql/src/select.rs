//! One view's SELECT → [`ViewDef`].
//!
//! ```text
//!  ungrouped:  Get/Join tree ─► [Filter WHERE] ─► Map(select list) ─► [Distinct]
//!  grouped:    Get/Join tree ─► [Filter WHERE] ─► Map(group exprs ++ aggregate args)
//!              ─► Reduce(group_key 0..g, aggregates over columns g..) ─► [Filter HAVING]
//!              ─► Map(select list) ─► [Distinct]
//! ```
//!
//! A query is grouped when it has GROUP BY, HAVING, or an aggregate in its
//! SELECT list; without GROUP BY it is a global aggregate (one row).

use std::cell::RefCell;

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, Func, Plan, SortKey};
use denorm_types::{Catalog, Dialect, ScalarType};
use sqlparser::ast::{self, GroupByExpr, SelectItem};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Location as SqlLocation, Token, TokenWithSpan};

use crate::expr::{is_aggregate, Clause, Grouping, Lowerer};
use crate::feed::{plan_feed, Places, Rel};
use crate::from::{conjuncts, plan_from};
use crate::key::{properties, Properties};
use crate::names::{alias_name, bare_column, postgres_name, sqlite_name, strip_set_quantifier};
use crate::order::{self, Ordering};
use crate::query::{plan_query, Cte, Planned};
use crate::scope::Scope;
use crate::shift;
use crate::source::{location, Source};
use crate::statement::{DeclaredKey, ViewStatement};
use crate::subquery::Subqueries;
use crate::types::{self, Typed};
use crate::window;
use crate::{KeyOrigin, Location, OutputColumn, PlanError, ReadOrder, ViewDef, ViewKey};

const PAGING_HINT: &str = "order and page at read time with ?order=…&limit=…";
const FEED_HINT: &str =
    "a feed is ordered by its order_by option and paged at read time; define this query as a view of its own";

/// One output column while planning.
#[derive(Debug)]
pub(crate) struct Item {
    pub typed: Typed,
    pub name: String,
    pub at: Option<Location>,
}

/// The plan below the final Map, the select list over its output, and for
/// grouped queries the group expressions (Reduce columns 0..g). A ranked
/// subquery's items read the row number as the column right after `input`'s.
#[derive(Debug)]
pub(crate) struct Body<'q> {
    pub input: Plan,
    pub items: Vec<Item>,
    pub groups: Option<Vec<&'q ast::Expr>>,
    pub window: Option<Window>,
    /// The query's ORDER BY over `items` then `hidden` (see [`crate::order`]).
    pub ordering: Ordering,
    /// (group column, the `Reduce` column an item shows instead): a group
    /// of text under a collation shows one of its rows' values (see
    /// [`representatives`]).
    pub shown: Vec<(usize, usize)>,
}

/// `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …)` over a [`Body`]'s input;
/// its `TopK` limit comes from the outer query's WHERE.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub partition: Vec<usize>,
    pub order: Vec<SortKey>,
    /// The select item holding the row number.
    pub item: usize,
    pub at: Option<Location>,
    /// ROW_NUMBER(), RANK() or DENSE_RANK().
    pub numbering: denorm_expr::Numbering,
}

/// Everything one query's planning reads: the view, and for a subquery in
/// FROM where its SELECT starts.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a, 'c> {
    pub view: &'a ViewStatement,
    pub catalog: &'c Catalog,
    pub dialect: Dialect,
    pub source: &'a Source<'a>,
    /// Where this query's SELECT starts.
    pub start: SqlLocation,
    /// Subqueries in FROM around this query (0 for the view's own SELECT).
    pub depth: usize,
    /// The WITH queries in scope, innermost last (see [`crate::query`]).
    pub ctes: &'a [Cte],
    /// An operand of UNION/EXCEPT/INTERSECT: its output names are checked
    /// on the compound's columns instead.
    pub operand: bool,
    /// The query has a LIMIT (its ORDER BY is a top-N, not the read order).
    pub limited: bool,
    /// A subquery in an expression (IN, EXISTS, scalar) or inside one: its
    /// rows are compared with the outer query's, so a column grouped or
    /// deduplicated under a collation holds the key. Any other query (the
    /// view's own, a subquery in FROM or WITH) shows a row's value there,
    /// which an enclosing query compares under the column's collation.
    pub compared: bool,
}

impl Context<'_, '_> {
    /// Whether the view may read the current time: it is refreshed on a
    /// schedule, so its state changes only at refreshes, each computed at
    /// one instant (see [`denorm_types::clock`]).
    pub fn reads_clock(&self) -> bool {
        matches!(self.view.refresh, crate::Refresh::Every(_))
    }
}

/// A planned query: what a view or a derived table is made of.
#[derive(Debug)]
pub(crate) struct Finished {
    pub plan: Plan,
    pub columns: Vec<OutputColumn>,
    pub key: ViewKey,
    /// (output column, hidden column after the others): where the ORDER BY
    /// must sort by the hidden one instead (a `SELECT DISTINCT … ORDER BY
    /// … LIMIT` column that shows a row's value sorts by its collation key).
    pub sort_keys: Vec<(usize, usize)>,
}

pub(crate) fn plan_view(
    view: &ViewStatement,
    catalog: &Catalog,
    dialect: Dialect,
    source: &Source<'_>,
) -> Result<ViewDef, PlanError> {
    let cx = Context {
        view,
        catalog,
        dialect,
        source,
        start: view.select_start,
        depth: 0,
        ctes: &[],
        operand: false,
        limited: false,
        compared: false,
    };
    if view.feed.is_none() {
        let mut def = view_def(view, plan_query(&view.query, &cx)?);
        def.indexes = resolve_indexes(view, &def.columns)?;
        return Ok(def);
    }
    let select = query_select(&view.query, &cx)?;
    let (scope, body) = plan_select(select, &cx)?;
    if let (Some(_), Some(derived)) = (&view.feed, scope.relations.iter().find(|r| r.derived.is_some())) {
        return Err(PlanError::new("a feed view cannot read a subquery in FROM", cx.keyword(&[Keyword::FROM]))
            .detail(format!("\"{}\" is a subquery", derived.name))
            .hint("a feed joins source tables; define the subquery's rows as their own view"));
    }
    if view.feed.is_some() && !scope.subquery_reads.borrow().is_empty() {
        return Err(PlanError::new("a feed view cannot use subqueries in expressions", Some(view.location))
            .hint("a feed joins source tables; define the subquery's rows as their own view"));
    }
    let finished = finish(body, select, &scope, &cx)?;
    if finished.plan.reads_clock() {
        return Err(PlanError::new("a feed view cannot read the current time", Some(view.location))
            .hint("filter the feed's rows by time when reading, or define a view refreshed on a schedule"));
    }
    let reads = scope.dependencies(catalog);
    let (plan, columns, key) = (finished.plan, finished.columns, finished.key);
    let planned = Planned { plan, columns, key, order: vec![], order_collations: vec![], reads, sort_keys: Vec::new() };
    let mut def = view_def(view, planned);
    if let Some(options) = &view.feed {
        let rels: Vec<Rel> = scope
            .relations
            .iter()
            .map(|r| Rel {
                name: r.name.clone(),
                table: r.table.name.clone(),
                columns: r.table.columns.iter().map(|c| c.name.clone()).collect(),
                offset: r.offset,
            })
            .collect();
        let places = Places { left_join: cx.keyword(&[Keyword::LEFT]) };
        def.feed = Some(plan_feed(&def, options, &rels, places, catalog)?);
    }
    def.indexes = resolve_indexes(view, &def.columns)?;
    Ok(def)
}

/// `WITH (index = …)`'s column names → output column indexes.
fn resolve_indexes(view: &ViewStatement, columns: &[crate::OutputColumn]) -> Result<Vec<Vec<usize>>, PlanError> {
    let (indexes, at) = &view.indexes;
    indexes
        .iter()
        .map(|names| {
            names
                .iter()
                .map(|name| {
                    columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)).ok_or_else(|| {
                        let known: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                        PlanError::new(format!("index column \"{name}\" is not an output column of the view"), *at)
                            .hint(format!("output columns: {}", known.join(", ")))
                    })
                })
                .collect()
        })
        .collect()
}

fn view_def(view: &ViewStatement, planned: Planned) -> ViewDef {
    ViewDef {
        name: view.name.clone(),
        columns: planned.columns,
        key: planned.key,
        max_staleness: view.max_staleness,
        on_stale: view.on_stale,
        refresh: view.refresh,
        plan: planned.plan,
        dependencies: planned.reads,
        select_sql: view.select_sql.clone(),
        location: view.location,
        feed: None,
        order: planned
            .order
            .iter()
            .enumerate()
            .map(|(i, &k)| ReadOrder { collation: planned.order_collations.get(i).copied().flatten(), ..k.into() })
            .collect(),
        indexes: Vec::new(),
    }
}

/// One SELECT (the view's, or a subquery's in FROM) → its scope and body.
pub(crate) fn plan_select<'q, 'c>(
    select: &'q ast::Select,
    cx: &Context<'_, 'c>,
) -> Result<(Scope<'c>, Body<'q>), PlanError> {
    plan_select_ordered(select, &[], cx)
}

/// [`plan_select`] with the query's ORDER BY terms resolved into the body.
pub(crate) fn plan_select_ordered<'q, 'c>(
    select: &'q ast::Select,
    order_by: &'q [ast::OrderByExpr],
    cx: &Context<'_, 'c>,
) -> Result<(Scope<'c>, Body<'q>), PlanError> {
    let (view, dialect) = (cx.view, cx.dialect);
    let fallback = Some(view.location);
    check_select(select, cx)?;
    let from_at = cx.keyword(&[Keyword::FROM]);
    let (scope, mut input, ranked) = plan_from(&select.from, select.selection.as_ref(), cx, from_at.or(fallback))?;
    let subqueries = Subqueries::new(*cx, &scope);
    let base = Lowerer {
        scope: &scope,
        statement: &view.tokens,
        dialect,
        clause: Clause::Where,
        grouping: None,
        fallback,
        subqueries: Some(&subqueries),
        windows: &[],
        clock: cx.reads_clock(),
    };
    // An error here does not stop planning: the select list's errors are
    // reported beside it.
    let mut found = Vec::new();
    match where_predicate(select.selection.as_ref(), &ranked, &base) {
        Ok(Some(predicate)) => input = subqueries.apply_where(input, predicate),
        Ok(None) => {}
        Err(e) => found.push(e),
    }
    let rest = (|| -> Result<Body<'q>, PlanError> {
        let group_exprs = group_by(select, cx)?;
        let namer = Namer::new(select, &scope, cx);
        let grouped = !group_exprs.is_empty() || select.having.is_some() || has_aggregate(select);
        if let (Some(feed), 0) = (&view.feed, cx.depth) {
            if grouped {
                let at = if group_exprs.is_empty() { feed.partition_at } else { cx.keyword(&[Keyword::GROUP]) };
                return Err(PlanError::new("a feed view cannot be grouped (GROUP BY, HAVING or aggregates)", at)
                    .hint("a feed fans rows out to partitions; define the aggregate as its own view"));
            }
            if select.distinct.is_some() {
                return Err(PlanError::new(
                    "DISTINCT is not supported in a feed view",
                    cx.keyword(&[Keyword::DISTINCT]),
                )
                .hint("a feed keeps one row per edge and content row, as the join does"));
            }
        }
        let window = window::find(select, cx)?;
        let shifts = shift::find(select, cx);
        if let Some(call) = shifts.first() {
            if let Some(w) = &window {
                return Err(PlanError::new(
                    format!("{} beside LAG()/LEAD() in one SELECT is not supported", w.name()),
                    w.at,
                )
                .hint("rank in a subquery of its own: FROM (SELECT …, ROW_NUMBER() OVER (…) AS rn FROM …) AS ranked"));
            }
            if grouped {
                return Err(PlanError::new("LAG()/LEAD() in a grouped query is not supported", call.at).hint(
                    "group in a subquery of its own and shift its rows: SELECT g.*, LAG(total) OVER (ORDER BY day) FROM (SELECT day, SUM(x) AS total … GROUP BY day) AS g",
                ));
            }
        }
        if let (Some(w), 0) = (&window, cx.depth) {
            return Err(PlanError::new(
                format!("{} is only supported in a subquery in FROM, bounded by the outer WHERE", w.name()),
                w.at,
            )
            .hint(window::TOP_K_FORM));
        }
        let body = match window {
            Some(w) => {
                if grouped || select.distinct.is_some() {
                    let at = if grouped {
                        cx.keyword(&[Keyword::GROUP, Keyword::HAVING])
                    } else {
                        cx.keyword(&[Keyword::DISTINCT])
                    };
                    let at = if grouped && group_exprs.is_empty() && select.having.is_none() { w.at } else { at };
                    let what = format!("{} in a grouped or DISTINCT query is not supported", w.name());
                    return Err(PlanError::new(what, at).hint(
                        "group in a subquery of its own and rank its rows: FROM (SELECT …, ROW_NUMBER() OVER (…) AS rn FROM (SELECT … GROUP BY …) AS g) AS ranked",
                    ));
                }
                let lowerer = base.scalar(Clause::Select);
                let mut items = lower_items(&lowerer, select, &namer, Some(w.index))?;
                let (input, window) = window::plan(input, &w, &lowerer, cx)?;
                let rank = input.arity();
                items[window.item].typed =
                    Typed::new(Expr::Column(rank), ScalarType::Int, false).without_affinity(true);
                Body {
                    input,
                    items,
                    groups: None,
                    window: Some(window),
                    ordering: Ordering::default(),
                    shown: Vec::new(),
                }
            }
            None if grouped => {
                let shows_rows = !cx.compared && !cx.operand;
                let shows = Shows { rows: shows_rows, limited: cx.limited };
                plan_grouped(&base, select, input, group_exprs, order_by, &namer, shows)?
            }
            None => {
                let (input, windows) = shift::plan(input, &shifts, &base.scalar(Clause::Select), cx)?;
                let lowerer = Lowerer { clause: Clause::Select, windows: &windows, ..base };
                let mut items = lower_items(&lowerer, select, &namer, None)?;
                let mut ordering = order::resolve(order_by, &items, &lowerer, select.distinct.is_some())?;
                let exprs = items.iter_mut().chain(ordering.hidden.iter_mut()).map(|i| &mut i.typed.expr);
                let input = subqueries.apply(input, exprs);
                Body { input, items, groups: None, window: None, ordering, shown: Vec::new() }
            }
        };
        if !cx.operand {
            check_duplicate_names(&body.items, cx)?;
        }
        Ok(body)
    })();
    match (rest, PlanError::combine(found)) {
        (Ok(body), None) => Ok((scope, body)),
        (Ok(_), Some(e)) => Err(e),
        (Err(e), earlier) => Err(e.joined(earlier.into_iter().collect())),
    }
}

/// WHERE without the row-number bounds that became a `TopK` limit.
fn where_predicate(
    selection: Option<&ast::Expr>,
    ranked: &[&ast::Expr],
    lw: &Lowerer<'_, '_>,
) -> Result<Option<Expr>, PlanError> {
    let Some(w) = selection else { return Ok(None) };
    if ranked.is_empty() {
        return Ok(Some(lw.lower_condition(w, "WHERE", 0)?.expr));
    }
    let mut out: Option<Expr> = None;
    for c in conjuncts(w).into_iter().filter(|c| !ranked.iter().any(|r| std::ptr::eq(*r, *c))) {
        let t = lw.lower_condition(c, "WHERE", 0)?.expr;
        out = Some(match out {
            None => t,
            Some(prev) => Expr::binary(BinaryOp::And, prev, t),
        });
    }
    Ok(out)
}

impl Context<'_, '_> {
    /// The first keyword of `keywords` at this query's parenthesis depth, or
    /// the statement.
    pub(crate) fn keyword(&self, keywords: &[Keyword]) -> Option<Location> {
        let start = (self.start.line, self.start.column);
        let mut depth = 0i64;
        let tokens = self.view.tokens.tokens.iter().filter(|t| (t.span.start.line, t.span.start.column) >= start);
        for t in tokens {
            match &t.token {
                Token::LParen => depth += 1,
                Token::RParen if depth == 0 => break,
                Token::RParen => depth -= 1,
                Token::Word(w) if depth == 0 && w.quote_style.is_none() && keywords.contains(&w.keyword) => {
                    return location(t.span.start).or(Some(self.view.location));
                }
                _ => {}
            }
        }
        Some(self.view.location)
    }
}

/// The one SELECT of a plain query (a feed view's, or a plain subquery's):
/// WITH, ORDER BY, LIMIT and set operations are planned by
/// [`crate::query`] everywhere else, so they are refused here as in a feed.
pub(crate) fn query_select<'q>(q: &'q ast::Query, cx: &Context<'_, '_>) -> Result<&'q ast::Select, PlanError> {
    if let Some(with) = &q.with {
        return Err(PlanError::new("WITH is not supported in a feed view", location(with.with_token.0.span.start))
            .hint(FEED_HINT));
    }
    if q.order_by.is_some() {
        return Err(
            PlanError::new("ORDER BY is not supported in a feed view", cx.keyword(&[Keyword::ORDER])).hint(FEED_HINT)
        );
    }
    if q.limit_clause.is_some() {
        let at = cx.keyword(&[Keyword::LIMIT, Keyword::OFFSET]);
        return Err(PlanError::new("LIMIT and OFFSET are not supported in a feed view", at).hint(FEED_HINT));
    }
    if q.fetch.is_some() {
        return Err(PlanError::new("FETCH is not supported in a view", cx.keyword(&[Keyword::FETCH])).hint(PAGING_HINT));
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
    match &*q.body {
        ast::SetExpr::Select(s) => Ok(s),
        ast::SetExpr::Query(inner) => query_select(inner, cx),
        ast::SetExpr::SetOperation { op, .. } => {
            let at = cx.keyword(&[Keyword::UNION, Keyword::INTERSECT, Keyword::EXCEPT, Keyword::MINUS]);
            Err(PlanError::new(format!("{op} is not supported in a feed view"), at).hint(FEED_HINT))
        }
        ast::SetExpr::Values(_) => Err(PlanError::new("VALUES is not supported in a view", Some(cx.view.location))),
        _ => Err(PlanError::new("a view must be defined by a SELECT", Some(cx.view.location))),
    }
}

fn check_select(s: &ast::Select, cx: &Context<'_, '_>) -> Result<(), PlanError> {
    if s.projection.is_empty() {
        return Err(PlanError::new("a view must have at least one column", location(s.select_token.0.span.start)));
    }
    if let Some(ast::Distinct::On(_)) = s.distinct {
        return Err(PlanError::new("DISTINCT ON is not supported", cx.keyword(&[Keyword::DISTINCT]))
            .hint("use GROUP BY with MIN/MAX"));
    }
    if s.top.is_some() {
        return Err(PlanError::new("TOP is not supported in a view", cx.keyword(&[Keyword::TOP])).hint(PAGING_HINT));
    }
    if s.into.is_some() {
        return Err(PlanError::new("SELECT INTO is not supported", cx.keyword(&[Keyword::INTO])));
    }
    if !s.named_window.is_empty() {
        return Err(PlanError::new("named windows (WINDOW …) are not supported", cx.keyword(&[Keyword::WINDOW]))
            .hint("write each window inline: OVER (PARTITION BY … ORDER BY …)"));
    }
    if s.qualify.is_some() {
        return Err(PlanError::new("QUALIFY is not supported", cx.keyword(&[Keyword::QUALIFY])));
    }
    let exotic = s.exclude.is_some()
        || !s.lateral_views.is_empty()
        || s.prewhere.is_some()
        || !s.connect_by.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || s.value_table_mode.is_some()
        || s.select_modifiers.is_some()
        || s.flavor != ast::SelectFlavor::Standard;
    if exotic {
        return Err(PlanError::new("this SELECT clause is not supported", location(s.select_token.0.span.start)));
    }
    Ok(())
}

fn group_by<'q>(select: &'q ast::Select, cx: &Context<'_, '_>) -> Result<&'q [ast::Expr], PlanError> {
    match &select.group_by {
        GroupByExpr::All(_) => Err(PlanError::new("GROUP BY ALL is not supported", cx.keyword(&[Keyword::GROUP]))
            .hint("list the grouping expressions")),
        GroupByExpr::Expressions(_, modifiers) if !modifiers.is_empty() => {
            Err(PlanError::new("GROUPING SETS, ROLLUP and CUBE are not supported", cx.keyword(&[Keyword::GROUP]))
                .hint("define one view per grouping"))
        }
        GroupByExpr::Expressions(exprs, _) => Ok(exprs),
    }
}

/// Whether the SELECT list or HAVING calls an aggregate (outside window
/// functions), found without recursion.
pub(crate) fn has_aggregate(select: &ast::Select) -> bool {
    use ast::Expr as E;
    let mut stack: Vec<&ast::Expr> = select
        .projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .chain(select.having.as_ref())
        .collect();
    while let Some(e) = stack.pop() {
        match e {
            E::Function(f) if f.over.is_none() && is_aggregate(f) => return true,
            E::Function(f) => {
                if let ast::FunctionArguments::List(list) = &f.args {
                    stack.extend(list.args.iter().filter_map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    }));
                }
            }
            E::BinaryOp { left, right, .. } => stack.extend([&**left, &**right]),
            E::UnaryOp { expr, .. } | E::Nested(expr) | E::IsNull(expr) | E::IsNotNull(expr) | E::Cast { expr, .. } => {
                stack.push(expr)
            }
            E::InList { expr, list, .. } => {
                stack.push(expr);
                stack.extend(list);
            }
            E::InSubquery { expr, .. } => stack.push(expr),
            E::Between { expr, low, high, .. } => stack.extend([&**expr, &**low, &**high]),
            E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => stack.extend([&**expr, &**pattern]),
            E::Case { operand, conditions, else_result, .. } => {
                stack.extend(operand.as_deref());
                stack.extend(conditions.iter().flat_map(|w| [&w.condition, &w.result]));
                stack.extend(else_result.as_deref());
            }
            _ => {}
        }
    }
    false
}

/// Default output names (see [`crate::names`]).
struct Namer<'a, 'c> {
    scope: &'a Scope<'c>,
    dialect: Dialect,
    source: &'a Source<'a>,
    /// Each select item's tokens, when they line up with the projection.
    items: Option<Vec<Vec<&'a TokenWithSpan>>>,
}

impl<'a, 'c> Namer<'a, 'c> {
    fn new(select: &ast::Select, scope: &'a Scope<'c>, cx: &'a Context<'a, '_>) -> Self {
        let mut items = cx.view.tokens.comma_list(select.select_token.0.span.end, &[Keyword::FROM]);
        if select.distinct.is_some() {
            strip_set_quantifier(&mut items);
        }
        let items = (items.len() == select.projection.len()).then_some(items);
        Namer { scope, dialect: cx.dialect, source: cx.source, items }
    }

    fn name(&self, e: &ast::Expr, index: usize) -> String {
        if let Some(column) = bare_column(e).and_then(|idents| self.scope.resolve(idents).ok()) {
            return column.name;
        }
        match self.dialect {
            Dialect::Postgres => postgres_name(e),
            Dialect::Sqlite => self
                .items
                .as_ref()
                .and_then(|items| sqlite_name(items.get(index)?, self.source))
                .unwrap_or_else(|| e.to_string()),
        }
    }
}

/// The select list; the item at `window` (a ROW_NUMBER() call) is only
/// named, its expression left for the caller.
fn lower_items(
    lw: &Lowerer<'_, '_>,
    select: &ast::Select,
    namer: &Namer<'_, '_>,
    window: Option<usize>,
) -> Result<Vec<Item>, PlanError> {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for (index, item) in select.projection.iter().enumerate() {
        if window == Some(index) {
            let (name, at) = match item {
                SelectItem::ExprWithAlias { alias, .. } => (alias_name(alias, lw.dialect), location(alias.span.start)),
                SelectItem::UnnamedExpr(e) => (namer.name(e, index), lw.at(e)),
                _ => unreachable!("a window item is an expression"),
            };
            items.push(Item { typed: Typed::null(), name, at });
            continue;
        }
        // Each item's error is collected: independent items report theirs too.
        if let Err(e) = lower_item(lw, item, index, namer, &mut items) {
            errors.push(e);
        }
    }
    if let Some(e) = PlanError::combine(errors) {
        return Err(e);
    }
    Ok(items)
}

/// One select item's columns appended to `items`.
fn lower_item(
    lw: &Lowerer<'_, '_>,
    item: &SelectItem,
    index: usize,
    namer: &Namer<'_, '_>,
    items: &mut Vec<Item>,
) -> Result<(), PlanError> {
    match item {
        SelectItem::UnnamedExpr(e) => {
            let typed = lw.lower(e, 0)?;
            items.push(Item { typed, name: namer.name(e, index), at: lw.at(e) });
        }
        SelectItem::ExprWithAlias { expr, alias } => {
            let typed = lw.lower(expr, 0)?;
            items.push(Item { typed, name: alias_name(alias, lw.dialect), at: location(alias.span.start) });
        }
        SelectItem::ExprWithAliases { expr, .. } => {
            return Err(PlanError::new("multiple aliases for one expression are not supported", lw.at(expr)))
        }
        SelectItem::Wildcard(options) => {
            let relations: Vec<usize> = (0..lw.scope.relations.len()).collect();
            items.extend(wildcard(lw, options, &relations, true)?);
        }
        SelectItem::QualifiedWildcard(kind, options) => {
            let relation = qualified_relation(lw, kind, options)?;
            items.extend(wildcard(lw, options, &[relation], false)?);
        }
    }
    Ok(())
}

fn qualified_relation(
    lw: &Lowerer<'_, '_>,
    kind: &ast::SelectItemQualifiedWildcardKind,
    options: &ast::WildcardAdditionalOptions,
) -> Result<usize, PlanError> {
    let at = location(options.wildcard_token.0.span.start);
    let ast::SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
        return Err(PlanError::new("this wildcard is not supported", at));
    };
    let [ast::ObjectNamePart::Identifier(ident)] = name.0.as_slice() else {
        return Err(PlanError::new(format!("qualified name {name}.* is not supported"), at));
    };
    lw.scope.relation(&ident.value).ok_or_else(|| {
        PlanError::new(format!("missing FROM-clause entry for table \"{}\"", ident.value), location(ident.span.start))
    })
}

/// `*` or `t.*`: every column of the relations, in schema order; with
/// `merge` (`*`), as [`Scope::star`] lists them (a USING / NATURAL pair once).
fn wildcard(
    lw: &Lowerer<'_, '_>,
    options: &ast::WildcardAdditionalOptions,
    relations: &[usize],
    merge: bool,
) -> Result<Vec<Item>, PlanError> {
    let at = location(options.wildcard_token.0.span.start);
    let o = options;
    if o.opt_ilike.is_some()
        || o.opt_exclude.is_some()
        || o.opt_except.is_some()
        || o.opt_replace.is_some()
        || o.opt_rename.is_some()
        || o.opt_alias.is_some()
    {
        return Err(PlanError::new("wildcard modifiers (EXCLUDE, EXCEPT, REPLACE, RENAME) are not supported", at));
    }
    let lw = Lowerer { fallback: at, ..*lw };
    let mut items = Vec::new();
    let columns: Vec<(usize, usize, String)> = if merge && !lw.scope.star.is_empty() {
        lw.scope.star.clone()
    } else {
        let table = |r: usize| &lw.scope.relations[r].table;
        let all = |r: usize| table(r).columns.iter().enumerate().map(move |(c, col)| (r, c, col.name.clone()));
        relations.iter().flat_map(|&r| all(r)).collect()
    };
    for (r, c, name) in columns {
        let typed = lw.lower_position(r, c, merge)?;
        items.push(Item { typed, name, at });
    }
    Ok(items)
}

fn plan_grouped<'q>(
    base: &Lowerer<'_, '_>,
    select: &'q ast::Select,
    input: Plan,
    group_exprs: &'q [ast::Expr],
    order_by: &[ast::OrderByExpr],
    namer: &Namer<'_, '_>,
    shows: Shows,
) -> Result<Body<'q>, PlanError> {
    let group_lowerer = base.scalar(Clause::GroupBy);
    let (mut groups, mut asts): (Vec<Typed>, Vec<&ast::Expr>) = (Vec::new(), Vec::new());
    let mut written = Vec::new();
    for e in group_exprs {
        let target = group_target(e, select, base)?;
        let t = group_lowerer.lower(target, 0)?;
        // Text under a collation groups by its collation key.
        let (collation, explicit) = (t.collation, t.explicit);
        let keyed = types::collation_key(t.clone(), t.own_collation()).collated(collation, explicit);
        if !groups.iter().any(|g| g.expr == keyed.expr) {
            groups.push(keyed);
            written.push(t.expr);
            asts.push(target);
        }
    }
    let grouping = RefCell::new(Grouping { groups, written, ..Grouping::default() });
    // Subqueries in the SELECT list and HAVING join the Reduce output.
    let subqueries = base.subqueries.map(Subqueries::grouped);
    let lowerer =
        Lowerer { grouping: Some(&grouping), clause: Clause::Select, subqueries: subqueries.as_ref(), ..*base };
    let mut items = lower_items(&lowerer, select, namer, None)?;
    let mut having = select.having.as_ref().map(|h| lowerer.lower_condition(h, "HAVING", 0)).transpose()?;
    let mut ordering = order::resolve(order_by, &items, &lowerer, select.distinct.is_some())?;
    let shown = match shows.rows {
        true => representatives(&mut items, &mut ordering, &grouping, base.dialect, shows.limited),
        false => Vec::new(),
    };
    let g = grouping.into_inner();
    let width = g.groups.len();
    let exprs: Vec<Expr> = g.groups.into_iter().map(|t| t.expr).chain(g.args).collect();
    let aggregates = g.aggregates.iter().map(|a| Aggregate { func: a.func, arg: a.input(width) }).collect();
    let map = Plan::Map { input: Box::new(input), exprs };
    let mut plan = Plan::Reduce { input: Box::new(map), group_key: (0..width).collect(), aggregates };
    if let Some(subqueries) = &subqueries {
        let exprs = items
            .iter_mut()
            .chain(ordering.hidden.iter_mut())
            .map(|i| &mut i.typed.expr)
            .chain(having.iter_mut().map(|h| &mut h.expr));
        plan = subqueries.apply(plan, exprs);
    }
    if let Some(predicate) = having {
        plan = Plan::Filter { input: Box::new(plan), predicate: predicate.expr };
    }
    Ok(Body { input: plan, items, groups: Some(asts), window: None, ordering, shown })
}

/// A query's output (the view's own, a subquery's in FROM or WITH) shows, for a group of text under a collation
/// (SQLite's NOCASE/RTRIM: `GROUP BY city`), the least of its rows' values
/// bytewise (`MIN(city COLLATE BINARY)`, kept exactly as rows come and go)
/// instead of the collation key: SQLite shows a row's value (the first in
/// its scan order), so a group whose rows all spell it alike shows that
/// spelling in both; an enclosing query compares it under the column's
/// collation, which it carries. A subquery in an expression keeps the key
/// (its rows are compared as keys: [`Context::compared`]).
///
/// A column the ORDER BY sorts by shows the representative too: without
/// LIMIT the read order sorts it under its collation (`denorm-serve`
/// `collate.rs`); with LIMIT the top-N sorts by the key, a hidden column.
///
/// A group of values equal but spelled apart ([`has_spellings`]: SQLite's
/// `1` and `1.0`, `0.0` and `-0.0`; PostgreSQL's `'1 day'` and `'24
/// hours'`, `1.5` and `1.50`) shows the least spelling among its current
/// rows the same way (`MIN(x)`: the core's MIN keeps spellings apart,
/// integer before double, `-0.0` before `0.0`, intervals by months, days,
/// time, numerics by scale), not the value of the row that created it.
fn representatives(
    items: &mut [Item],
    ordering: &mut Ordering,
    grouping: &RefCell<Grouping>,
    dialect: Dialect,
    limited: bool,
) -> Vec<(usize, usize)> {
    let mut shown = Vec::new();
    let width = items.len();
    for (n, item) in items.iter_mut().enumerate() {
        let Expr::Column(i) = item.typed.expr else { continue };
        let mut g = grouping.borrow_mut();
        let Some(written) = g.written.get(i).filter(|_| i < g.groups.len()).cloned() else { continue };
        let group = &g.groups[i];
        let (ty, nullable) = (group.ty, group.nullable);
        let collated = written != group.expr && ty == ScalarType::Text;
        let spelled = written == group.expr && has_spellings(group, dialect);
        if !(collated || spelled) {
            continue;
        }
        if collated && limited && ordering.order.iter().any(|k| k.column == n) {
            let hidden = width + ordering.hidden.len();
            ordering.hidden.push(Item { typed: item.typed.clone(), name: String::new(), at: item.at });
            ordering.order.iter_mut().filter(|k| k.column == n).for_each(|k| k.column = hidden);
        }
        let column = g.register(AggregateFunc::Min, Some(written), ty, nullable);
        item.typed.expr = Expr::Column(column);
        shown.push((i, column));
    }
    // Other expressions over a spelled group column (`typeof(x)`, `x * 2`)
    // read the same representative; over a collated one (`city || '!'`)
    // too, but where they compare it (`city = 'x'`), which is planned
    // against the key, they keep the key (see `show_representatives`).
    for item in items.iter_mut().filter(|item| !matches!(item.typed.expr, Expr::Column(_))) {
        let mut spelled_reps: Vec<(usize, usize)> = Vec::new();
        let mut collated_reps: Vec<(usize, usize)> = Vec::new();
        for i in item.typed.expr.columns() {
            let mut g = grouping.borrow_mut();
            let Some(written) = g.written.get(i).filter(|_| i < g.groups.len()).cloned() else { continue };
            let group = &g.groups[i];
            let spelled = written == group.expr && has_spellings(group, dialect);
            let collated = written != group.expr && group.ty == ScalarType::Text;
            let known = |reps: &[(usize, usize)]| reps.iter().any(|(c, _)| *c == i);
            if !(spelled || collated) || known(&spelled_reps) || known(&collated_reps) {
                continue;
            }
            let (ty, nullable) = (group.ty, group.nullable);
            let rep = match shown.iter().find(|(c, _)| *c == i) {
                Some((_, r)) => *r,
                None => g.register(AggregateFunc::Min, Some(written), ty, nullable),
            };
            if spelled { &mut spelled_reps } else { &mut collated_reps }.push((i, rep));
        }
        item.typed.expr.remap_columns(&|c| spelled_reps.iter().find(|(i, _)| *i == c).map_or(c, |(_, r)| *r));
        show_representatives(&mut item.typed.expr, &collated_reps);
    }
    shown
}

fn is_comparison(op: BinaryOp) -> bool {
    use BinaryOp::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq)
}

/// `e` with each collated group column (`reps`: group column,
/// representative column) read as its representative where `e` shows or
/// transforms its value (`city || '!'`, `upper(city)`), and kept as the
/// collation key where `e` compares it (an operand of `=`/`<`/…, IN,
/// NULLIF, SQLite's scalar min/max, a collation key): those comparisons
/// were planned against the key, under the column's collation.
fn show_representatives(e: &mut Expr, reps: &[(usize, usize)]) {
    if reps.is_empty() {
        return;
    }
    let compared = |e: &Expr| matches!(e, Expr::Column(_));
    match e {
        Expr::Column(c) => {
            if let Some((_, r)) = reps.iter().find(|(i, _)| i == c) {
                *c = *r;
            }
        }
        Expr::Literal(_) => {}
        Expr::Binary { op, left, right } if is_comparison(*op) => {
            for side in [left, right] {
                if !compared(side) {
                    show_representatives(side, reps);
                }
            }
        }
        Expr::InList { expr, list } => {
            for side in std::iter::once(&mut **expr).chain(list.iter_mut()) {
                if !compared(side) {
                    show_representatives(side, reps);
                }
            }
        }
        Expr::NullIf(..) | Expr::Call { func: Func::CollationKey(_) | Func::Min | Func::Max, .. } => {}
        Expr::Not(x) | Expr::Negate(x) | Expr::IsNull(x) | Expr::Cast { expr: x, .. } => show_representatives(x, reps),
        Expr::Binary { left, right, .. } | Expr::Like { expr: left, pattern: right, .. } => {
            show_representatives(left, reps);
            show_representatives(right, reps);
        }
        Expr::Case { branches, otherwise } => {
            for (condition, value) in branches {
                show_representatives(condition, reps);
                show_representatives(value, reps);
            }
            show_representatives(otherwise, reps);
        }
        Expr::Coalesce(args) | Expr::Call { args, .. } | Expr::List(args) => {
            args.iter_mut().for_each(|a| show_representatives(a, reps));
        }
    }
}

/// Whether values of `t` that group together (equal keys) can show apart:
/// SQLite's untyped values (`1`, `1.0`) and computed doubles (`-0.0`; a
/// REAL column stores `-0.0` as `0.0`), PostgreSQL's doubles, numerics and
/// intervals.
pub(crate) fn has_spellings(t: &Typed, dialect: Dialect) -> bool {
    match (dialect, t.ty) {
        (_, ScalarType::Any) => true,
        (Dialect::Sqlite, ScalarType::Float) => !matches!(t.expr, Expr::Column(_)),
        (Dialect::Postgres, ScalarType::Float | ScalarType::Numeric | ScalarType::Interval) => true,
        _ => false,
    }
}

/// Whether a grouped SELECT's group columns show a row's value (`rows`:
/// not a subquery in an expression, nor a set operation's operand) and
/// whether it has a LIMIT.
#[derive(Debug, Clone, Copy)]
struct Shows {
    rows: bool,
    limited: bool,
}

/// `GROUP BY 2` is the second select item; `GROUP BY total` names an output
/// alias when no input column is called `total` (both as in the sources).
fn group_target<'q>(
    e: &'q ast::Expr,
    select: &'q ast::Select,
    lw: &Lowerer<'_, '_>,
) -> Result<&'q ast::Expr, PlanError> {
    let item_expr = |item: &'q SelectItem| match item {
        SelectItem::UnnamedExpr(x) | SelectItem::ExprWithAlias { expr: x, .. } => Some(x),
        _ => None,
    };
    match e {
        ast::Expr::Value(v) => {
            let ast::Value::Number(n, _) = &v.value else { return Ok(e) };
            let Ok(position) = n.parse::<usize>() else { return Ok(e) };
            let item = position.checked_sub(1).and_then(|i| select.projection.get(i));
            item.and_then(item_expr)
                .ok_or_else(|| PlanError::new(format!("GROUP BY position {n} is not in select list"), lw.at(e)))
        }
        ast::Expr::Identifier(ident) if lw.scope.resolve(std::slice::from_ref(ident)).is_err() => {
            let aliased = select.projection.iter().find_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if alias.value.eq_ignore_ascii_case(&ident.value) => {
                    Some(expr)
                }
                _ => None,
            });
            Ok(aliased.unwrap_or(e))
        }
        _ => Ok(e),
    }
}

pub(crate) fn check_duplicate_names(items: &[Item], cx: &Context<'_, '_>) -> Result<(), PlanError> {
    let within = match cx.depth {
        0 => format!("view {}", cx.view.name),
        _ => "a subquery in FROM".to_string(),
    };
    for (i, item) in items.iter().enumerate() {
        if items[..i].iter().any(|other| other.name.eq_ignore_ascii_case(&item.name)) {
            return Err(PlanError::new(
                format!("column name \"{}\" appears more than once in {within}", item.name),
                item.at,
            )
            .hint("give one of the columns another name with AS"));
        }
    }
    Ok(())
}

/// The final Map and Distinct (over the `TopK` of a ranked subquery, its
/// limit still to be set), the key, and the output columns.
pub(crate) fn finish(
    body: Body<'_>,
    select: &ast::Select,
    scope: &Scope<'_>,
    cx: &Context<'_, '_>,
) -> Result<Finished, PlanError> {
    let distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
    // DISTINCT compares text under its collation: the output is the key.
    let output = |t: &Typed| match distinct {
        true => types::collation_key(t.clone(), t.own_collation()).expr,
        false => t.expr.clone(),
    };
    let exprs: Vec<Expr> = body.items.iter().map(|i| output(&i.typed)).collect();
    let wrap = |input: Plan, exprs: Vec<Expr>| {
        let map = Plan::Map { input: Box::new(input), exprs };
        if distinct {
            Plan::Distinct { input: Box::new(map) }
        } else {
            map
        }
    };
    let input = match &body.window {
        Some(w) => Plan::TopK {
            input: Box::new(body.input.clone()),
            partition: w.partition.clone(),
            order: w.order.clone(),
            limit: 0,
            rank: true,
            numbering: w.numbering,
        },
        None => body.input.clone(),
    };
    // A group's representative stands for its group column: the view is
    // keyed and proven unique as if it showed the key.
    let unshown = |e: &Expr| match body.shown.iter().find(|(_, r)| *e == Expr::Column(*r)) {
        Some((g, _)) => Expr::Column(*g),
        None => e.clone(),
    };
    let key_exprs: Vec<Expr> = exprs.iter().map(unshown).collect();
    let props = properties(&wrap(input.clone(), key_exprs.clone()), cx.catalog);
    let key = view_key(&body, &key_exprs, &props, distinct, scope, cx)?;
    // SQLite has no boolean values: comparisons come back as 0 and 1.
    let sqlite = cx.dialect == Dialect::Sqlite;
    let mut columns = Vec::with_capacity(body.items.len());
    let mut final_exprs = Vec::with_capacity(body.items.len());
    for (item, expr) in body.items.iter().zip(exprs) {
        let (expr, ty) = match item.typed.ty {
            ScalarType::Bool if sqlite => (Expr::Cast { expr: Box::new(expr), to: ScalarType::Int }, ScalarType::Int),
            ty => (expr, ty),
        };
        final_exprs.push(expr);
        // A character(n) column keeps its mark for an enclosing query.
        let collation = if item.typed.bpchar { Some(denorm_types::Collation::Rtrim) } else { item.typed.collation };
        let narrow = item.typed.narrow && ty == ScalarType::Int;
        let no_affinity = !crate::types::has_affinity(&item.typed);
        let nullable = item.typed.nullable;
        columns.push(OutputColumn { name: item.name.clone(), ty, nullable, collation, narrow, no_affinity });
    }
    // ORDER BY expressions outside the select list ride along after it.
    final_exprs.extend(body.ordering.hidden.iter().map(|i| i.typed.expr.clone()));
    // Ordered without LIMIT, the read order sorts the shown values under
    // their collations (`denorm-serve` `collate.rs`).
    // With LIMIT, a shown column sorts by its key, kept in a hidden column.
    let read_order = !cx.limited && body.ordering.hidden.is_empty();
    let (plan, sort_keys) = match distinct && !cx.compared && !cx.operand {
        true if body.ordering.order.is_empty() || read_order || cx.limited => {
            let spelled = body.items.iter().map(|i| has_spellings(&i.typed, cx.dialect)).collect();
            let sorted: Vec<usize> = match cx.limited {
                true => body.ordering.order.iter().map(|k| k.column).collect(),
                false => Vec::new(),
            };
            distinct_showing_rows(input, final_exprs, spelled, &sorted)
        }
        _ => (wrap(input, final_exprs), Vec::new()),
    };
    Ok(Finished { plan, columns, key, sort_keys })
}

/// The view's own `SELECT DISTINCT` when some column deduplicates text
/// under a collation (its expression is the collation key): grouped by the
/// columns, each such column showing the least of its rows' values bytewise
/// instead of the key, as [`representatives`] does for GROUP BY (SQLite
/// shows the first row it scans; a value spelled one way shows that
/// spelling in both), and so does each column whose equal values can be
/// spelled apart (`spelled`, see [`has_spellings`]: the least spelling
/// among the current rows, not the first row's). Otherwise `Distinct` over
/// the columns. `spelled` has one entry per selected column; `exprs` may
/// go on with hidden ORDER BY terms, which stay as they are. Each column of
/// `sorted` that shows a row's value also keeps its key, in a hidden
/// column after all the others, for a LIMIT to sort by (returned as
/// (column, hidden column)).
fn distinct_showing_rows(
    input: Plan,
    exprs: Vec<Expr>,
    spelled: Vec<bool>,
    sorted: &[usize],
) -> (Plan, Vec<(usize, usize)>) {
    let selected = spelled.len();
    let raws: Vec<(usize, Expr)> = exprs
        .iter()
        .enumerate()
        .take(selected)
        .filter_map(|(j, e)| match e {
            Expr::Call { func: Func::CollationKey(_), args } if args.len() == 1 => Some((j, args[0].clone())),
            e if spelled.get(j) == Some(&true) => Some((j, e.clone())),
            _ => None,
        })
        .collect();
    if raws.is_empty() {
        return (Plan::Distinct { input: Box::new(Plan::Map { input: Box::new(input), exprs }) }, Vec::new());
    }
    let width = exprs.len();
    let aggregates =
        (0..raws.len()).map(|k| Aggregate { func: AggregateFunc::Min, arg: Some(Expr::Column(width + k)) }).collect();
    let mut all = exprs;
    all.extend(raws.iter().map(|(_, raw)| raw.clone()));
    let map = Plan::Map { input: Box::new(input), exprs: all };
    let reduce = Plan::Reduce { input: Box::new(map), group_key: (0..width).collect(), aggregates };
    let mut shown: Vec<Expr> = (0..width)
        .map(|j| match raws.iter().position(|(c, _)| *c == j) {
            Some(k) => Expr::Column(width + k),
            None => Expr::Column(j),
        })
        .collect();
    let mut sort_keys = Vec::new();
    for &j in sorted {
        if raws.iter().any(|(c, _)| *c == j) && !sort_keys.iter().any(|(c, _)| *c == j) {
            sort_keys.push((j, shown.len()));
            shown.push(Expr::Column(j));
        }
    }
    (Plan::Map { input: Box::new(reduce), exprs: shown }, sort_keys)
}

fn view_key(
    body: &Body<'_>,
    exprs: &[Expr],
    props: &Properties,
    distinct: bool,
    scope: &Scope<'_>,
    cx: &Context<'_, '_>,
) -> Result<ViewKey, PlanError> {
    let output_of = |input_column: usize| exprs.iter().position(|e| *e == Expr::Column(input_column));
    if let (Some(declared), 0) = (&cx.view.key, cx.depth) {
        return declared_key(declared, body, exprs, props, distinct, cx);
    }
    let derived = match &body.groups {
        Some(groups) => {
            (0..groups.len()).map(output_of).collect::<Option<Vec<usize>>>().map(|c| (c, KeyOrigin::GroupBy))
        }
        None => {
            let pk = scope.relations.first().map(|r| r.table.primary_key.as_slice()).unwrap_or_default();
            let columns = (!pk.is_empty()).then(|| pk.iter().map(|&c| output_of(c)).collect::<Option<Vec<usize>>>());
            columns.flatten().filter(|c| props.is_unique(c)).map(|c| (c, KeyOrigin::PrimaryKey))
        }
    };
    Ok(match derived {
        Some((columns, origin)) => {
            let proven_unique = props.is_unique(&columns);
            ViewKey { columns, origin, proven_unique }
        }
        None => {
            let columns: Vec<usize> = (0..exprs.len()).collect();
            let proven_unique = props.is_unique(&columns);
            ViewKey { columns, origin: KeyOrigin::AllColumns, proven_unique }
        }
    })
}

fn declared_key(
    declared: &DeclaredKey,
    body: &Body<'_>,
    exprs: &[Expr],
    props: &Properties,
    distinct: bool,
    cx: &Context<'_, '_>,
) -> Result<ViewKey, PlanError> {
    let names: Vec<&str> = body.items.iter().map(|i| i.name.as_str()).collect();
    let mut columns = Vec::with_capacity(declared.names.len());
    for n in &declared.names {
        let position =
            names.iter().position(|x| x == n).or_else(|| names.iter().position(|x| x.eq_ignore_ascii_case(n)));
        let position = position.ok_or_else(|| {
            PlanError::new(format!("key column \"{n}\" is not a column of view {}", cx.view.name), declared.location)
                .hint(format!("the view's columns are: {}", names.join(", ")))
        })?;
        columns.push(position);
    }
    let proven_unique = props.is_unique(&columns);
    let grouped_by = body.groups.as_ref().filter(|g| !g.is_empty());
    if !proven_unique && (grouped_by.is_some() || distinct) {
        let identity: Vec<String> = match grouped_by {
            Some(groups) => groups
                .iter()
                .enumerate()
                .map(|(i, g)| match exprs.iter().position(|e| *e == Expr::Column(i)) {
                    Some(j) => names[j].to_string(),
                    None => g.to_string(),
                })
                .collect(),
            None => names.iter().map(|n| n.to_string()).collect(),
        };
        return Err(PlanError::new(
            format!("key ({}) does not identify a row of view {}", declared.names.join(", "), cx.view.name),
            declared.location,
        )
        .detail(format!("the view has one row per ({})", identity.join(", ")))
        .hint("declare a key that includes all of these columns, or leave key out"));
    }
    Ok(ViewKey { columns, origin: KeyOrigin::Declared, proven_unique })
}
