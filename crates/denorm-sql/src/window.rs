//! `ROW_NUMBER()`, `RANK()` or `DENSE_RANK()` `OVER (PARTITION BY … ORDER BY
//! …)` in the select list of a subquery in FROM: the top-k form (see
//! [`crate::derived`] for the bound).
//!
//! ```text
//!  FROM/WHERE row ─► Map(row ++ computed partition/order terms) ─► TopK(k, numbering) ─► Map(select list)
//! ```
//!
//! The row number needs a total order to be the source's: SQL leaves the
//! order of rows that tie on ORDER BY unspecified, so for `ROW_NUMBER()` the
//! partition and order terms together must identify a row (end the ORDER BY
//! with the primary key). `RANK()` and `DENSE_RANK()` give tied rows one
//! number, so any order is deterministic; `rk <= k` then keeps every row
//! tied at the k-th place. NULLs sort as the dialect does when the term does
//! not say: first ascending in SQLite, last ascending in PostgreSQL.

use denorm_expr::{Expr, Numbering, Plan, SortKey};
use denorm_types::Dialect;
use sqlparser::ast::{self, SelectItem};

use crate::expr::Lowerer;
use crate::key::properties;
use crate::select::{Context, Window};
use crate::source::location;
use crate::types::Typed;
use crate::{Location, PlanError};

/// The supported top-k form, for hints.
pub(crate) const TOP_K_FORM: &str = "write top-k per group as SELECT … FROM (SELECT …, ROW_NUMBER() OVER (PARTITION BY … ORDER BY …, id) AS rn FROM …) AS ranked WHERE rn <= 10";

const TOTAL_ORDER_HINT: &str = "end the ORDER BY with the primary key as a tie-breaker, e.g. ORDER BY rating DESC, id";

/// The window item of a subquery's select list.
#[derive(Debug)]
pub(crate) struct Found<'q> {
    /// Its position in the select list.
    pub index: usize,
    pub spec: &'q ast::WindowSpec,
    pub at: Option<Location>,
    pub numbering: Numbering,
}

impl Found<'_> {
    /// The function's name as SQL spells it, for messages.
    pub(crate) fn name(&self) -> &'static str {
        sql_name(self.numbering)
    }
}

pub(crate) fn sql_name(numbering: Numbering) -> &'static str {
    match numbering {
        Numbering::RowNumber => "ROW_NUMBER()",
        Numbering::Rank => "RANK()",
        Numbering::DenseRank => "DENSE_RANK()",
        Numbering::Shift(s) if s.offset < 0 => "LAG()",
        Numbering::Shift(_) => "LEAD()",
    }
}

/// The one `ROW_NUMBER()` / `RANK()` / `DENSE_RANK()` `OVER (…)` item of
/// `select`, if any; other window calls and shapes are refused with their
/// position.
pub(crate) fn find<'q>(select: &'q ast::Select, cx: &Context<'_, '_>) -> Result<Option<Found<'q>>, PlanError> {
    let mut found: Option<Found<'q>> = None;
    for (index, item) in select.projection.iter().enumerate() {
        let expr = match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            _ => continue,
        };
        let mut e = expr;
        while let ast::Expr::Nested(inner) = e {
            e = inner;
        }
        let ast::Expr::Function(f) = e else { continue };
        let Some(over) = &f.over else { continue };
        if crate::shift::direction(f).is_some() {
            continue;
        }
        let at = cx.view.tokens.start_of(expr).and_then(location).or(Some(cx.view.location));
        let (spec, numbering) = ranking(f, over, at)?;
        if found.is_some() {
            return Err(PlanError::new("only one ranking window function per subquery is supported", at)
                .hint("rank in one window; nest subqueries for a second ranking"));
        }
        found = Some(Found { index, spec, at, numbering });
    }
    Ok(found)
}

fn ranking<'q>(
    f: &'q ast::Function,
    over: &'q ast::WindowType,
    at: Option<Location>,
) -> Result<(&'q ast::WindowSpec, Numbering), PlanError> {
    let name = match f.name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(i)] => i.value.to_ascii_lowercase(),
        _ => f.name.to_string(),
    };
    let numbering = match name.as_str() {
        "row_number" => Numbering::RowNumber,
        "rank" => Numbering::Rank,
        "dense_rank" => Numbering::DenseRank,
        _ => {
            return Err(PlanError::new(format!("window function {}() is not supported", name.to_uppercase()), at)
                .detail("only ROW_NUMBER(), RANK() and DENSE_RANK() are maintained, for top-k per group")
                .hint(TOP_K_FORM))
        }
    };
    let fname = sql_name(numbering);
    let no_args = match &f.args {
        ast::FunctionArguments::None => true,
        ast::FunctionArguments::List(list) => list.args.is_empty() && list.clauses.is_empty(),
        ast::FunctionArguments::Subquery(_) => false,
    };
    let plain = matches!(f.parameters, ast::FunctionArguments::None)
        && f.filter.is_none()
        && f.null_treatment.is_none()
        && f.within_group.is_empty();
    if !no_args || !plain {
        return Err(PlanError::new(format!("{fname} takes no arguments or clauses"), at));
    }
    let ast::WindowType::WindowSpec(spec) = over else {
        return Err(PlanError::new("named windows are not supported", at)
            .hint("write the window inline: OVER (PARTITION BY … ORDER BY …)"));
    };
    if spec.window_name.is_some() || spec.window_frame.is_some() {
        return Err(PlanError::new(format!("window names and frames are not supported in {fname}"), at)
            .hint("write OVER (PARTITION BY … ORDER BY …)"));
    }
    if spec.order_by.is_empty() {
        let refused = PlanError::new(format!("{fname} needs an ORDER BY"), at);
        return Err(match numbering {
            Numbering::RowNumber => {
                refused.detail("without one, the source numbers rows in an unspecified order").hint(TOTAL_ORDER_HINT)
            }
            _ => refused
                .detail("without one every row ranks 1, so the bound keeps every row")
                .hint("write OVER (PARTITION BY … ORDER BY rating DESC)"),
        });
    }
    Ok((spec, numbering))
}

/// The plan below the `TopK`: `input` with any computed partition and
/// order terms appended, and the window over its columns.
pub(crate) fn plan(
    input: Plan,
    found: &Found<'_>,
    lw: &Lowerer<'_, '_>,
    cx: &Context<'_, '_>,
) -> Result<(Plan, Window), PlanError> {
    let width = input.arity();
    let mut extra: Vec<Expr> = Vec::new();
    let mut column = |e: Expr| match e {
        Expr::Column(c) => c,
        e => {
            extra.push(e);
            width + extra.len() - 1
        }
    };
    let (partition, order) = lower_spec(found.spec, lw, cx, &mut column)?;
    let input = if extra.is_empty() {
        input
    } else {
        let exprs = (0..width).map(Expr::Column).chain(extra).collect();
        Plan::Map { input: Box::new(input), exprs }
    };
    if found.numbering == Numbering::RowNumber {
        check_total(&input, &partition, &order, found, cx)?;
    }
    Ok((input, Window { partition, order, item: found.index, at: found.at, numbering: found.numbering }))
}

/// The PARTITION BY and ORDER BY of `spec` as input columns: each term
/// lowered over the row, placed by `column` (a column read in place, other
/// expressions appended). Text under a collation partitions and sorts by
/// its collation key; NULLs go where the dialect puts them unless the term
/// says.
pub(crate) fn lower_spec(
    spec: &ast::WindowSpec,
    lw: &Lowerer<'_, '_>,
    cx: &Context<'_, '_>,
    column: &mut dyn FnMut(Expr) -> usize,
) -> Result<(Vec<usize>, Vec<SortKey>), PlanError> {
    // Text under a collation partitions and sorts by its collation key.
    let keyed = |t: Typed| {
        let c = t.own_collation();
        crate::types::collation_key(t, c)
    };
    let mut partition = Vec::new();
    for e in &spec.partition_by {
        partition.push(column(keyed(lw.lower(e, 0)?).expr));
    }
    let mut order = Vec::new();
    for term in &spec.order_by {
        let at = lw.at(&term.expr);
        let descending = match &term.options.sort {
            None | Some(ast::OrderBySort::Asc) => false,
            Some(ast::OrderBySort::Desc) => true,
            Some(ast::OrderBySort::Using(_)) => {
                return Err(PlanError::new("ORDER BY … USING is not supported", at).hint("write ASC or DESC"))
            }
        };
        if term.with_fill.is_some() {
            return Err(PlanError::new("WITH FILL is not supported", at));
        }
        // PostgreSQL sorts character(n) without its trailing blanks.
        let t = crate::types::strip_bpchar(keyed(lw.lower(&term.expr, 0)?));
        crate::order::orderable(t.ty, at)?;
        let nulls_first = term.options.nulls_first.unwrap_or(match cx.dialect {
            Dialect::Sqlite => !descending,
            Dialect::Postgres => descending,
        });
        order.push(SortKey { column: column(t.expr), descending, nulls_first });
    }
    Ok((partition, order))
}

/// Whether `partition` and `order` together identify a row of `input`
/// (no two rows of a partition can tie), as the key properties prove it.
pub(crate) fn identifies_rows(input: &Plan, partition: &[usize], order: &[SortKey], cx: &Context<'_, '_>) -> bool {
    let terms: Vec<Expr> = partition.iter().copied().chain(order.iter().map(|k| k.column)).map(Expr::Column).collect();
    let width = terms.len();
    let projected = Plan::Map { input: Box::new(input.clone()), exprs: terms };
    properties(&projected, cx.catalog).is_unique(&(0..width).collect::<Vec<_>>())
}

/// Refuses an order under which two rows of a partition may tie.
fn check_total(
    input: &Plan,
    partition: &[usize],
    order: &[SortKey],
    found: &Found<'_>,
    cx: &Context<'_, '_>,
) -> Result<(), PlanError> {
    if identifies_rows(input, partition, order, cx) {
        return Ok(());
    }
    let at = found.spec.order_by.first().and_then(|t| cx.view.tokens.start_of(&t.expr)).and_then(location).or(found.at);
    Err(PlanError::new("ROW_NUMBER()'s ORDER BY does not identify a row within its partition", at)
        .detail("rows that tie are numbered in an unspecified order, so the view could differ from the source")
        .hint(TOTAL_ORDER_HINT))
}
