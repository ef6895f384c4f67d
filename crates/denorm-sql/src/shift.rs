//! `LAG(value [, offset [, default]]) OVER (PARTITION BY … ORDER BY …)` and
//! `LEAD(…)` in the select list of a query that does not group: each call
//! becomes one `TopK` that keeps every row and appends the value `offset`
//! rows away in its partition (see [`denorm_expr::Numbering::Shift`]).
//!
//! ```text
//!  FROM/WHERE row ─► Map(row ++ value, default, partition/order terms) ─► TopK(shift 1) ─► … ─► TopK(shift n)
//!                    the select list reads call i as the column TopK i appends
//! ```
//!
//! The calls may sit anywhere in a select item's expression
//! (`price - LAG(price) OVER (…)`): the [`Lowerer`] reads each call's AST
//! node as its column. The neighbour of a row is only the source's when the
//! partition and order terms identify a row (end the ORDER BY with the
//! primary key), as for `ROW_NUMBER()`. The offset is an integer constant
//! (PostgreSQL takes a negative one as the other direction; SQLite refuses
//! it); the default is any expression over the row, typed with the value
//! as COALESCE's branches are.

use denorm_expr::{Expr, Numbering, Plan, Shift, SortKey};
use denorm_types::Dialect;
use sqlparser::ast::{self, SelectItem};

use crate::expr::Lowerer;
use crate::select::Context;
use crate::source::location;
use crate::types::{unify_all, Typed};
use crate::{Location, PlanError};

const TOTAL_ORDER_HINT: &str =
    "end the ORDER BY with the primary key as a tie-breaker, e.g. LAG(price) OVER (PARTITION BY item ORDER BY day, id)";

/// A planned call's node and the column holding its value.
pub(crate) type Column<'q> = (&'q ast::Expr, Typed);

/// One `LAG`/`LEAD` call of a select list.
#[derive(Debug)]
pub(crate) struct Call<'q> {
    /// The call's node, which the select list's lowering replaces.
    pub expr: &'q ast::Expr,
    pub function: &'q ast::Function,
    pub lead: bool,
    pub at: Option<Location>,
}

impl Call<'_> {
    fn name(&self) -> &'static str {
        if self.lead {
            "LEAD()"
        } else {
            "LAG()"
        }
    }
}

/// Whether `f` is a `LAG`/`LEAD` window call (`Some(true)` for LEAD).
pub(crate) fn direction(f: &ast::Function) -> Option<bool> {
    f.over.as_ref()?;
    let [ast::ObjectNamePart::Identifier(i)] = f.name.0.as_slice() else { return None };
    match i.value.to_ascii_lowercase().as_str() {
        "lag" => Some(false),
        "lead" => Some(true),
        _ => None,
    }
}

/// Every `LAG`/`LEAD` call in `select`'s list, found without recursion
/// through the expression shapes a select item is made of.
pub(crate) fn find<'q>(select: &'q ast::Select, cx: &Context<'_, '_>) -> Vec<Call<'q>> {
    use ast::Expr as E;
    let mut stack: Vec<&ast::Expr> = select
        .projection
        .iter()
        .rev()
        .filter_map(|item| match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect();
    let mut calls = Vec::new();
    while let Some(e) = stack.pop() {
        match e {
            E::Function(f) => {
                if let Some(lead) = direction(f) {
                    let at = cx.view.tokens.start_of(e).and_then(location).or(Some(cx.view.location));
                    calls.push(Call { expr: e, function: f, lead, at });
                } else if let ast::FunctionArguments::List(list) = &f.args {
                    stack.extend(list.args.iter().rev().filter_map(|a| match a {
                        ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                        _ => None,
                    }));
                }
            }
            E::BinaryOp { left, right, .. } => stack.extend([&**right, &**left]),
            E::UnaryOp { expr, .. }
            | E::Nested(expr)
            | E::IsNull(expr)
            | E::IsNotNull(expr)
            | E::Cast { expr, .. }
            | E::Collate { expr, .. } => stack.push(expr),
            E::IsDistinctFrom(a, b) | E::IsNotDistinctFrom(a, b) => stack.extend([&**b, &**a]),
            E::InList { expr, list, .. } => {
                stack.extend(list.iter().rev());
                stack.push(expr);
            }
            E::Between { expr, low, high, .. } => stack.extend([&**high, &**low, &**expr]),
            E::Like { expr, pattern, .. } | E::ILike { expr, pattern, .. } => stack.extend([&**pattern, &**expr]),
            E::Case { operand, conditions, else_result, .. } => {
                stack.extend(else_result.as_deref());
                stack.extend(conditions.iter().rev().flat_map(|w| [&w.result, &w.condition]));
                stack.extend(operand.as_deref());
            }
            _ => {}
        }
    }
    calls
}

/// A planned call: its shift over the input and the result's type.
struct Planned {
    partition: Vec<usize>,
    order: Vec<SortKey>,
    shift: Shift,
    typed: Typed,
}

/// `input` with one `TopK` per call, and each call's node with the column
/// holding its value (for [`Lowerer::windows`]).
pub(crate) fn plan<'q>(
    input: Plan,
    calls: &[Call<'q>],
    lw: &Lowerer<'_, '_>,
    cx: &Context<'_, '_>,
) -> Result<(Plan, Vec<Column<'q>>), PlanError> {
    if calls.is_empty() {
        return Ok((input, Vec::new()));
    }
    let width = input.arity();
    let mut extra: Vec<Expr> = Vec::new();
    let mut column = |e: Expr| match e {
        Expr::Column(c) => c,
        e => {
            extra.push(e);
            width + extra.len() - 1
        }
    };
    let mut planned = Vec::new();
    for call in calls {
        let spec = spec(call)?;
        let (value, offset, default) = arguments(call, lw, cx)?;
        let shift = Shift { value: column(value.expr.clone()), offset, default: default.map(|d| column(d.expr)) };
        let (partition, order) = crate::window::lower_spec(spec, lw, cx, &mut column)?;
        planned.push(Planned { partition, order, shift, typed: value });
    }
    let mut plan = if extra.is_empty() {
        input
    } else {
        let exprs = (0..width).map(Expr::Column).chain(extra).collect();
        Plan::Map { input: Box::new(input), exprs }
    };
    let mut columns = Vec::new();
    for (call, p) in calls.iter().zip(planned) {
        check_total(&plan, &p.partition, &p.order, call, cx)?;
        let at = plan.arity();
        plan = Plan::TopK {
            input: Box::new(plan),
            partition: p.partition,
            order: p.order,
            limit: usize::MAX,
            rank: true,
            numbering: Numbering::Shift(p.shift),
        };
        let value = Typed::new(Expr::Column(at), p.typed.ty, true).narrowed(p.typed.narrow).without_affinity(true);
        columns.push((call.expr, value));
    }
    Ok((plan, columns))
}

/// The call's inline window; named windows are refused.
fn spec<'q>(call: &Call<'q>) -> Result<&'q ast::WindowSpec, PlanError> {
    let f = call.function;
    let plain = matches!(f.parameters, ast::FunctionArguments::None)
        && f.filter.is_none()
        && f.null_treatment.is_none()
        && f.within_group.is_empty();
    if !plain {
        return Err(PlanError::new(format!("this form of {} is not supported", call.name()), call.at)
            .detail("FILTER, IGNORE NULLS and WITHIN GROUP are not maintained"));
    }
    match &f.over {
        Some(ast::WindowType::WindowSpec(spec)) if spec.window_name.is_none() => Ok(spec),
        _ => Err(PlanError::new(format!("named windows are not supported in {}", call.name()), call.at)
            .hint("write the window inline: OVER (PARTITION BY … ORDER BY …)")),
    }
}

/// The value (typed with the default, as COALESCE types its branches), the
/// signed offset and the default.
fn arguments(
    call: &Call<'_>,
    lw: &Lowerer<'_, '_>,
    cx: &Context<'_, '_>,
) -> Result<(Typed, i64, Option<Typed>), PlanError> {
    let name = call.name();
    let args: Vec<&ast::Expr> = match &call.function.args {
        ast::FunctionArguments::List(list) if list.duplicate_treatment.is_none() && list.clauses.is_empty() => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(PlanError::new(format!("{name} takes plain arguments"), call.at)),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    let (value, offset, default) = match args.as_slice() {
        [v] => (*v, None, None),
        [v, o] => (*v, Some(*o), None),
        [v, o, d] => (*v, Some(*o), Some(*d)),
        _ => {
            return Err(PlanError::new(format!("{name} takes 1 to 3 arguments (value, offset, default)"), call.at)
                .hint("e.g. LAG(price, 1, 0) OVER (PARTITION BY item ORDER BY day, id)"))
        }
    };
    let n = match offset {
        None => 1,
        Some(o) => integer(o).ok_or_else(|| {
            PlanError::new(format!("{name}'s offset must be an integer constant"), lw.at(o))
                .detail("an offset that varies per row is not maintained")
        })?,
    };
    if n < 0 && cx.dialect == Dialect::Sqlite {
        return Err(PlanError::new(format!("{name}'s offset must be a non-negative integer"), call.at)
            .detail("SQLite raises an error for a negative offset")
            .hint(if call.lead { "use LAG for rows before" } else { "use LEAD for rows after" }));
    }
    let signed = if call.lead { n } else { n.checked_neg().unwrap_or(i64::MAX) };
    let value_t = lw.lower(value, 0)?;
    let Some(default) = default else { return Ok((value_t, signed, None)) };
    let default_t = lw.lower(default, 0)?;
    let (mut items, ty) = unify_all(vec![value_t, default_t], name, cx.dialect, call.at)?;
    // PostgreSQL: an integer and a bigint default meet as a bigint.
    let narrow = Typed::all_narrow(&items);
    let default_t = items.pop().map(|t| Typed { ty, ..t }.narrowed(narrow));
    let value_t = items.pop().map(|t| Typed { ty, ..t }.narrowed(narrow)).unwrap_or_else(Typed::null);
    Ok((value_t, signed, default_t))
}

fn integer(e: &ast::Expr) -> Option<i64> {
    match e {
        ast::Expr::Nested(inner) => integer(inner),
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Minus, expr } => integer(expr).and_then(i64::checked_neg),
        ast::Expr::UnaryOp { op: ast::UnaryOperator::Plus, expr } => integer(expr),
        _ => None,
    }
}

/// Refuses an order under which two rows of a partition may tie (their
/// neighbours would be the source's choice).
fn check_total(
    input: &Plan,
    partition: &[usize],
    order: &[SortKey],
    call: &Call<'_>,
    cx: &Context<'_, '_>,
) -> Result<(), PlanError> {
    if crate::window::identifies_rows(input, partition, order, cx) {
        return Ok(());
    }
    Err(PlanError::new(format!("{}'s ORDER BY does not identify a row within its partition", call.name()), call.at)
        .detail("rows that tie have their neighbours in an unspecified order, so the view could differ from the source")
        .hint(TOTAL_ORDER_HINT))
}
