//! PostgreSQL date and time arithmetic:
//!
//! ```text
//!  date ± integer            → date       (Func::DatePlusDays)
//!  date − date               → integer    (Func::DateMinusDate)
//!  date|timestamp ± interval → timestamp  (Func::PlusInterval, the interval a constant:
//!  interval + date|timestamp                INTERVAL '90 days', '1 mon'::interval, INTERVAL '3' DAY)
//! ```
//!
//! denorm has no interval values, so an interval is only accepted as a
//! constant operand of `+`/`-`; `timestamp − timestamp` and `age(…)`, which
//! produce intervals, are refused with a rewrite over `extract(epoch …)`.
//! `timestamptz ± interval` depends on the session's time zone (days and
//! months cross DST changes) and is refused.

use denorm_expr::{BinaryOp, Expr, Func, Interval};
use denorm_types::ScalarType;
use sqlparser::ast;

use crate::types::Typed;
use crate::{Location, PlanError};

const INTERVAL_HINT: &str =
    "denorm has no interval values: subtract epochs instead, extract(epoch from a) - extract(epoch from b) (seconds)";

/// The constant interval `e` writes, if it is one: `INTERVAL '…' [field]`
/// or `'…'::interval`.
pub(crate) fn interval_literal(e: &ast::Expr, at: Option<Location>) -> Option<Result<Interval, PlanError>> {
    let (value, field) = match strip(e) {
        ast::Expr::Interval(i) => {
            if i.last_field.is_some() || i.leading_precision.is_some() || i.fractional_seconds_precision.is_some() {
                return Some(Err(PlanError::new("this INTERVAL form is not supported", at)
                    .hint("write the interval as one literal, e.g. INTERVAL '1 day 02:00:00'")));
            }
            (&*i.value, i.leading_field.as_ref().map(ToString::to_string))
        }
        ast::Expr::Cast { expr, data_type: ast::DataType::Interval { fields: None, precision: None }, .. } => {
            (&**expr, None)
        }
        _ => return None,
    };
    let text = match strip(value) {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => s.clone(),
            ast::Value::Number(n, _) if field.is_some() => n.clone(),
            _ => return Some(Err(not_constant(at))),
        },
        _ => return Some(Err(not_constant(at))),
    };
    let bare = match &field {
        None => "second",
        Some(f) => match denorm_expr::interval::field_unit(f) {
            Some(unit) if text.trim().parse::<f64>().is_ok() => unit,
            _ => {
                return Some(Err(PlanError::new(format!("INTERVAL '{text}' {f} is not supported"), at)
                    .hint("write the unit inside the literal, e.g. INTERVAL '3 days'")))
            }
        },
    };
    Some(denorm_expr::interval::parse(&text, bare).map_err(|message| PlanError::new(message, at)))
}

fn not_constant(at: Option<Location>) -> PlanError {
    PlanError::new("an interval must be a constant literal", at)
        .detail("denorm has no interval values; only a constant interval can be added to a date or timestamp")
}

fn strip(mut e: &ast::Expr) -> &ast::Expr {
    while let ast::Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// `value ± interval` (`subtract` for `-`): a timestamp.
pub(crate) fn plus_interval(
    value: Typed,
    interval: Interval,
    subtract: bool,
    at: Option<Location>,
) -> Result<Typed, PlanError> {
    let interval = if subtract {
        interval.negated().ok_or_else(|| PlanError::new("interval out of range", at))?
    } else {
        interval
    };
    match value.ty {
        ScalarType::Date | ScalarType::Timestamp | ScalarType::Null => {
            let expr = Expr::Call { func: Func::PlusInterval(interval), args: vec![value.expr] };
            Ok(Typed::new(expr, ScalarType::Timestamp, value.nullable))
        }
        ScalarType::TimestampTz => Err(PlanError::new("timestamptz ± interval is not supported", at)
            .detail("days and months are added in the session's time zone, which denorm does not know")
            .hint("use a timestamp (without time zone) column, or compare against a timestamptz constant")),
        ty => Err(PlanError::new(
            format!("operator does not exist: {ty} {} interval", if subtract { "-" } else { "+" }),
            at,
        )),
    }
}

/// `date ± integer`, `date − date`; `timestamp − timestamp` is refused;
/// `None` when neither side is a date or timestamp.
pub(crate) fn arithmetic(
    op: BinaryOp,
    left: &Typed,
    right: &Typed,
    at: Option<Location>,
) -> Option<Result<Typed, PlanError>> {
    use ScalarType::{Date, Int, Timestamp, TimestampTz};
    let nullable = left.nullable || right.nullable;
    let call = |func, args: Vec<Expr>, ty| Some(Ok(Typed::new(Expr::Call { func, args }, ty, nullable)));
    let negated = |e: &Expr| Expr::binary(BinaryOp::Sub, Expr::Literal(denorm_types::Datum::Int(0)), e.clone());
    match (op, left.ty, right.ty) {
        (BinaryOp::Add, Date, Int) => call(Func::DatePlusDays, vec![left.expr.clone(), right.expr.clone()], Date),
        (BinaryOp::Add, Int, Date) => call(Func::DatePlusDays, vec![right.expr.clone(), left.expr.clone()], Date),
        (BinaryOp::Sub, Date, Int) => call(Func::DatePlusDays, vec![left.expr.clone(), negated(&right.expr)], Date),
        (BinaryOp::Sub, Date, Date) => {
            let expr = Expr::Call { func: Func::DateMinusDate, args: vec![left.expr.clone(), right.expr.clone()] };
            Some(Ok(Typed::new(expr, Int, nullable)))
        }
        (BinaryOp::Sub, Timestamp | TimestampTz | Date, Timestamp | TimestampTz)
        | (BinaryOp::Sub, Timestamp | TimestampTz, Date) => Some(Err(PlanError::new(
            format!("{} - {} gives an interval, which is not supported", left.ty, right.ty),
            at,
        )
        .hint(INTERVAL_HINT))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn literal(sql: &str) -> Option<Result<Interval, PlanError>> {
        let e = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap().parse_expr().unwrap();
        interval_literal(&e, None)
    }

    #[test]
    fn interval_forms() {
        let days = |d| Interval { months: 0, days: d, micros: 0 };
        assert_eq!(literal("INTERVAL '90 days'").unwrap().unwrap(), days(90));
        assert_eq!(literal("'90 days'::interval").unwrap().unwrap(), days(90));
        assert_eq!(literal("INTERVAL '3' DAY").unwrap().unwrap(), days(3));
        assert!(literal("INTERVAL '3 hours' DAY").unwrap().is_err());
        assert!(literal("INTERVAL '1' DAY TO SECOND").unwrap().is_err());
        assert!(literal("'soon'::interval").unwrap().is_err());
        assert!(literal("'90 days'").is_none());
    }
}
