//! Static typing rules shared by every expression form.
//!
//! The planner types every expression before the view exists, so both
//! databases' silent conversions are refused rather than imitated: SQLite
//! compares `'1' = 1` by column affinity and evaluates `'a' + 1` as `1`;
//! PostgreSQL resolves `unknown` literals by context. denorm asks for an
//! explicit CAST instead, which then means the same thing everywhere.

use denorm_expr::{BinaryOp, Expr};
use denorm_types::{Datum, Dialect, ScalarType};

use crate::{Location, PlanError};

/// A lowered expression with its static type and whether it may be NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub expr: Expr,
    pub ty: ScalarType,
    pub nullable: bool,
}

impl Typed {
    pub fn new(expr: Expr, ty: ScalarType, nullable: bool) -> Self {
        Typed { expr, ty, nullable }
    }

    pub fn null() -> Self {
        Typed::new(Expr::Literal(Datum::Null), ScalarType::Null, true)
    }
}

/// SQLite has no boolean type: a comparison is the integer 0 or 1 wherever a
/// number is expected (`SUM(x > 0)`, `(a < b) + 1`). Elsewhere unchanged.
pub(crate) fn bool_as_int(t: Typed, dialect: Dialect) -> Typed {
    if dialect == Dialect::Sqlite && t.ty == ScalarType::Bool {
        let expr = Expr::Cast { expr: Box::new(t.expr), to: ScalarType::Int };
        return Typed::new(expr, ScalarType::Int, t.nullable);
    }
    t
}

/// The common type of two branches (CASE, COALESCE): NULL joins anything,
/// an integer joins a double as a double (values are not cast: integers stay
/// integers, as in SQLite).
pub(crate) fn unify(a: ScalarType, b: ScalarType) -> Option<ScalarType> {
    use ScalarType::*;
    match (a, b) {
        (Null, t) | (t, Null) => Some(t),
        (x, y) if x == y => Some(x),
        (Int, Float) | (Float, Int) => Some(Float),
        _ => None,
    }
}

/// Whether `=`/`<` may compare the two types: both numeric, both text or
/// both boolean; NULL compares with anything.
pub(crate) fn comparable(a: ScalarType, b: ScalarType) -> bool {
    use ScalarType::*;
    matches!((a, b), (Null, _) | (_, Null) | (Text, Text) | (Bool, Bool)) || (a.is_numeric() && b.is_numeric())
}

/// Checks and coerces both sides of a comparison (SQLite: booleans compare
/// as integers with numbers).
pub(crate) fn comparison_operands(
    left: Typed,
    right: Typed,
    symbol: &str,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Typed, Typed), PlanError> {
    let (left, right) = if dialect == Dialect::Sqlite && (left.ty == ScalarType::Bool) != (right.ty == ScalarType::Bool) {
        (bool_as_int(left, dialect), bool_as_int(right, dialect))
    } else {
        (left, right)
    };
    if comparable(left.ty, right.ty) {
        return Ok((left, right));
    }
    Err(operator_error(symbol, left.ty, right.ty, at))
}

pub(crate) fn operator_error(symbol: &str, left: ScalarType, right: ScalarType, at: Option<Location>) -> PlanError {
    PlanError::new(format!("operator does not exist: {left} {symbol} {right}"), at).hint(
        "CAST one side explicitly, e.g. CAST(x AS INTEGER); denorm does not reproduce SQLite's implicit conversions",
    )
}

/// A condition (WHERE, HAVING, ON, CASE WHEN, AND/OR/NOT operands). In
/// SQLite a number is true when non-zero, so `WHERE flags` becomes
/// `flags <> 0`; PostgreSQL requires a boolean.
pub(crate) fn condition(t: Typed, context: &str, dialect: Dialect, at: Option<Location>) -> Result<Typed, PlanError> {
    match t.ty {
        ScalarType::Bool | ScalarType::Null => Ok(t),
        ty if ty.is_numeric() && dialect == Dialect::Sqlite => {
            let expr = Expr::binary(BinaryOp::NotEq, t.expr, Expr::Literal(Datum::Int(0)));
            Ok(Typed::new(expr, ScalarType::Bool, t.nullable))
        }
        ty => Err(PlanError::new(format!("argument of {context} must be type boolean, not type {ty}"), at)),
    }
}

/// Unifies the types of several branches; in SQLite booleans among numbers
/// become integers first.
pub(crate) fn unify_all(
    mut items: Vec<Typed>,
    construct: &str,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Vec<Typed>, ScalarType), PlanError> {
    if dialect == Dialect::Sqlite && items.iter().any(|t| t.ty.is_numeric()) {
        items = items.into_iter().map(|t| bool_as_int(t, dialect)).collect();
    }
    let mut ty = ScalarType::Null;
    for t in &items {
        ty = unify(ty, t.ty).ok_or_else(|| {
            PlanError::new(format!("{construct} types {ty} and {} cannot be matched", t.ty), at)
                .hint("CAST the branches to a common type")
        })?;
    }
    Ok((items, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScalarType::*;

    #[test]
    fn unification_table() {
        let cases = [
            (Int, Int, Some(Int)),
            (Int, Float, Some(Float)),
            (Null, Text, Some(Text)),
            (Text, Int, None),
            (Bool, Int, None),
            (Bool, Null, Some(Bool)),
        ];
        for (a, b, want) in cases {
            assert_eq!(unify(a, b), want, "{a} {b}");
            assert_eq!(unify(b, a), want, "{b} {a}");
        }
    }

    #[test]
    fn comparability_table() {
        assert!(comparable(Int, Float));
        assert!(comparable(Text, Null));
        assert!(!comparable(Text, Int));
        assert!(!comparable(Bool, Int));
    }

    #[test]
    fn sqlite_numbers_are_conditions() {
        let t = Typed::new(Expr::Column(0), Int, false);
        let c = condition(t.clone(), "WHERE", Dialect::Sqlite, None).unwrap();
        assert_eq!(c.expr.to_string(), "(#0 <> 0)");
        let e = condition(t, "WHERE", Dialect::Postgres, None).unwrap_err();
        assert_eq!(e.message, "argument of WHERE must be type boolean, not type integer");
    }
}
