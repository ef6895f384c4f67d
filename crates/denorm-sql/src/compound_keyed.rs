//! UNION, EXCEPT and INTERSECT (without ALL) over columns that compare
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

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, Func, Plan};
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
