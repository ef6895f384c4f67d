//! UNION, EXCEPT and INTERSECT (without ALL; PostgreSQL's EXCEPT ALL and
//! INTERSECT ALL over `character(n)`: [`combine_all`]) over columns that compare
//! under a collation: SQLite's NOCASE/RTRIM text, PostgreSQL's
//! `character(n)` (equal without trailing blanks, whatever the widths:
//! `'ab  '::char(4)` is `'ab '::char(3)`). Rows are compared by the
//! collation keys, and each collated column shows a value a row holds, not
//! the key: the least bytewise among the rows of that key — both operands'
//! for UNION and INTERSECT, the left operand's for EXCEPT (the sources show
//! the first they scan, which depends on their scan order and, for
//! PostgreSQL's INTERSECT, on which operand it hashes; with one spelling
//! per key, as within one `character(n)` column, EXCEPT's is the one). One `Reduce` over both operands, grouped by the keyed row,
//! counting each side's rows:
//!
//! ```text
//!  Map [keyed row, raw values,                            1, 0] ─┐
//!  Map [keyed row, raw values (EXCEPT: NULL),              0, 1] ─┴ Union
//!    → Reduce by keyed row: MIN(raw)…, SUM(left), SUM(right)
//!    → Filter (EXCEPT: left > 0 AND right = 0; INTERSECT: both > 0)
//!    → Map [keyed row with the collated columns' MINs in place]
//! ```

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, Func, JoinKind, Plan, TrimSide};
use denorm_types::{Collation, Datum};
use sqlparser::ast::SetOperator;

/// `left op right` (without ALL), both of `width` columns, compared with
/// the columns of `keyed` under their collations.
pub(crate) fn combine(op: SetOperator, left: Plan, right: Plan, keyed: &[(usize, Collation)], width: usize) -> Plan {
    let right_raw = op != SetOperator::Except;
    let side = |plan: Plan, raw: bool, is_left: bool| {
        let mut exprs: Vec<Expr> = (0..width)
            .map(|j| match keyed.iter().find(|(k, _)| *k == j) {
                Some((_, c)) => Expr::Call { func: Func::CollationKey(*c), args: vec![Expr::Column(j)] },
                None => Expr::Column(j),
            })
            .collect();
        exprs.extend(keyed.iter().map(|(j, _)| if raw { Expr::Column(*j) } else { Expr::Literal(Datum::Null) }));
        exprs.push(Expr::Literal(Datum::Int(i64::from(is_left))));
        exprs.push(Expr::Literal(Datum::Int(i64::from(!is_left))));
        Plan::Map { input: Box::new(plan), exprs }
    };
    let both = Plan::Union { inputs: vec![side(left, true, true), side(right, right_raw, false)] };
    let n = keyed.len();
    let mut aggregates: Vec<Aggregate> =
        (0..n).map(|k| Aggregate { func: AggregateFunc::Min, arg: Some(Expr::Column(width + k)) }).collect();
    for c in [width + n, width + n + 1] {
        aggregates.push(Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(c)) });
    }
    let mut plan = Plan::Reduce { input: Box::new(both), group_key: (0..width).collect(), aggregates };
    let (lefts, rights) = (Expr::Column(width + n), Expr::Column(width + n + 1));
    let zero = || Expr::Literal(Datum::Int(0));
    let predicate = match op {
        SetOperator::Except => Some(Expr::binary(
            BinaryOp::And,
            Expr::binary(BinaryOp::Gt, lefts, zero()),
            Expr::binary(BinaryOp::Eq, rights, zero()),
        )),
        SetOperator::Intersect => Some(Expr::binary(
            BinaryOp::And,
            Expr::binary(BinaryOp::Gt, lefts, zero()),
            Expr::binary(BinaryOp::Gt, rights, zero()),
        )),
        _ => None,
    };
    if let Some(predicate) = predicate {
        plan = Plan::Filter { input: Box::new(plan), predicate };
    }
    let shown = (0..width)
        .map(|j| match keyed.iter().position(|(k, _)| *k == j) {
            Some(k) => Expr::Column(width + k),
            None => Expr::Column(j),
        })
        .collect();
    Plan::Map { input: Box::new(plan), exprs: shown }
}

/// PostgreSQL's EXCEPT ALL / INTERSECT ALL over `character(n)` columns
/// (`keyed`): rows compare without trailing blanks whatever the widths
/// (`'ab  '::char(4)` is `'ab '::char(3)`), counted as `counted` counts
/// them (`max(0, l − r)`, `min(l, r)` copies), and show the left operand's
/// value, as PostgreSQL does: the stripped value padded again to the left
/// operand's width, the longest of its values (a `character(n)` column
/// holds each value padded to n).
///
/// ```text
///  counted(Map [stripped row] left, Map [stripped row] right) ─┐
///  Reduce (no groups) MAX(length(left.c))…  ──────────────────┴ product
///    → Map [rpad(c, width)… in place]
/// ```
pub(crate) fn combine_all(
    left: Plan,
    right: Plan,
    keyed: &[usize],
    width: usize,
    counted: impl FnOnce(Plan, Plan) -> Plan,
) -> Plan {
    let stripped = |plan: Plan| {
        let exprs = (0..width)
            .map(|j| match keyed.contains(&j) {
                true => Expr::Call {
                    func: Func::Trim(TrimSide::Trailing),
                    args: vec![Expr::Column(j), Expr::Literal(Datum::text(" ").into_owned())],
                },
                false => Expr::Column(j),
            })
            .collect();
        Plan::Map { input: Box::new(plan), exprs }
    };
    let lengths = keyed.iter().map(|&j| Expr::Call { func: Func::Length, args: vec![Expr::Column(j)] }).collect();
    let widths = Plan::Reduce {
        input: Box::new(Plan::Map { input: Box::new(left.clone()), exprs: lengths }),
        group_key: Vec::new(),
        aggregates: (0..keyed.len())
            .map(|k| Aggregate { func: AggregateFunc::Max, arg: Some(Expr::Column(k)) })
            .collect(),
    };
    let rows = counted(stripped(left), stripped(right));
    let joined = Plan::Join {
        left: Box::new(rows),
        right: Box::new(widths),
        kind: JoinKind::Inner,
        left_key: Vec::new(),
        right_key: Vec::new(),
        residual: None,
    };
    let shown = (0..width)
        .map(|j| match keyed.iter().position(|&k| k == j) {
            Some(k) => Expr::Call { func: Func::Rpad, args: vec![Expr::Column(j), Expr::Column(width + k)] },
            None => Expr::Column(j),
        })
        .collect();
    Plan::Map { input: Box::new(joined), exprs: shown }
}
