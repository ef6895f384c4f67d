//! What a predicate is guessed to keep, and whether it can fail: the
//! knowledge the SQL planner (join order, restrictions implied by an OR)
//! and the core's state estimate share.

use crate::expr::{BinaryOp, Expr};

/// The fraction of rows `predicate` keeps, as query planners guess it: an
/// equality with a constant keeps one distinct value's share, an equality
/// of two columns the larger domain's, a range a third, a LIKE a tenth,
/// `IN (list)` the list's share; AND multiplies, OR adds (less the
/// overlap), NOT complements; anything else keeps a third. `distinct`
/// gives a column's number of distinct values (at least 1).
pub fn selectivity(predicate: &Expr, distinct: &dyn Fn(usize) -> f64) -> f64 {
    let column = |e: &Expr| if let Expr::Column(c) = e { Some(*c) } else { None };
    let constant = |e: &Expr| matches!(e, Expr::Literal(_));
    let equal = |left: &Expr, right: &Expr| match (column(left), column(right)) {
        (Some(a), Some(b)) => 1.0 / distinct(a).max(distinct(b)),
        (Some(c), None) if constant(right) => 1.0 / distinct(c),
        (None, Some(c)) if constant(left) => 1.0 / distinct(c),
        _ => 1.0 / 3.0,
    };
    let fraction = match predicate {
        Expr::Binary { op: BinaryOp::And, left, right } => selectivity(left, distinct) * selectivity(right, distinct),
        Expr::Binary { op: BinaryOp::Or, left, right } => {
            let (a, b) = (selectivity(left, distinct), selectivity(right, distinct));
            a + b - a * b
        }
        Expr::Not(inner) => 1.0 - selectivity(inner, distinct),
        Expr::Binary { op: BinaryOp::Eq, left, right } => equal(left, right),
        Expr::Binary { op: BinaryOp::NotEq, left, right } => 1.0 - equal(left, right),
        Expr::Binary { op: BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq, .. } => 1.0 / 3.0,
        Expr::Like { .. } => 0.1,
        Expr::InList { expr, list } => match column(expr) {
            Some(c) => list.len() as f64 / distinct(c),
            None => 1.0 / 3.0,
        },
        Expr::Literal(denorm_types::Value::Bool(true)) => 1.0,
        Expr::Literal(_) => 0.0,
        _ => 1.0 / 3.0,
    };
    fraction.clamp(0.0, 1.0)
}

/// Whether evaluating `e` can never raise an error, whatever the row: columns,
/// constants, comparisons, AND/OR/NOT, IS NULL, IN lists and LIKE with a
/// constant pattern over such expressions. A condition implied by another
/// (a restriction derived from an OR) may be evaluated on rows the original
/// never reaches, so only such conditions are derived.
pub fn error_free(e: &Expr) -> bool {
    match e {
        Expr::Column(_) | Expr::Literal(_) => true,
        Expr::Not(inner) | Expr::IsNull(inner) => error_free(inner),
        Expr::Binary { op, left, right } => {
            let comparison = matches!(
                op,
                BinaryOp::Eq
                    | BinaryOp::NotEq
                    | BinaryOp::Lt
                    | BinaryOp::LtEq
                    | BinaryOp::Gt
                    | BinaryOp::GtEq
                    | BinaryOp::And
                    | BinaryOp::Or
            );
            comparison && error_free(left) && error_free(right)
        }
        Expr::InList { expr, list } => error_free(expr) && list.iter().all(error_free),
        Expr::Like { expr, pattern, .. } => error_free(expr) && matches!(**pattern, Expr::Literal(_)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Value;

    fn eq(c: usize, v: i64) -> Expr {
        Expr::binary(BinaryOp::Eq, Expr::Column(c), Expr::Literal(Value::Int(v)))
    }

    #[test]
    fn guesses_compose() {
        let ten = |_| 10.0;
        assert_eq!(selectivity(&eq(0, 1), &ten), 0.1);
        let both = Expr::binary(BinaryOp::And, eq(0, 1), eq(1, 2));
        assert!((selectivity(&both, &ten) - 0.01).abs() < 1e-12);
        let either = Expr::binary(BinaryOp::Or, eq(0, 1), eq(0, 2));
        assert!((selectivity(&either, &ten) - 0.19).abs() < 1e-12);
    }

    #[test]
    fn only_comparisons_of_columns_and_constants_are_error_free() {
        assert!(error_free(&Expr::binary(BinaryOp::Or, eq(0, 1), Expr::IsNull(Box::new(Expr::Column(2))))));
        let division = Expr::binary(BinaryOp::Div, Expr::Column(0), Expr::Column(1));
        assert!(!error_free(&Expr::binary(BinaryOp::Gt, division, Expr::Literal(Value::Int(2)))));
    }
}
