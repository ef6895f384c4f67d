//! PostgreSQL date and time arithmetic:
//!
//! ```text
//!  date ± integer            → date       (Func::DatePlusDays)
//!  date − date               → integer    (Func::DateMinusDate)
//!  date|timestamp ± interval → timestamp  (Func::PlusInterval when the interval is a constant:
//!  interval + date|timestamp                INTERVAL '90 days', '1 mon'::interval, INTERVAL '3' DAY;
//!                                           else Func::TimestampPlusInterval)
//!  timestamp − timestamp     → interval   (Func::TimestampMinus; also timestamptz − timestamptz,
//!                                           a date beside a timestamp read as a timestamp)
//!  interval ± interval       → interval   (Func::IntervalPlus / IntervalMinus)
//!  interval * number, number * interval, interval / number → interval (IntervalMul / IntervalDiv)
//! ```
//!
//! `timestamptz ± interval` depends on the session's time zone (days and
//! months cross DST changes) and is refused, but for a constant interval of
//! hours, minutes and seconds alone (`now() - INTERVAL '1 hour'`: a
//! timestamptz, by Func::PlusInterval); as is `timestamptz − date` (the
//! date is read in the session's time zone).

use denorm_expr::{BinaryOp, Expr, Func, Interval};
use denorm_types::ScalarType;
use sqlparser::ast;

use crate::types::Typed;
use crate::{Location, PlanError};

const TIME_ZONE_HINT: &str = "CAST both sides to the same type (timestamp or timestamptz)";

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
    PlanError::new("an interval must be a constant literal or an interval expression", at)
        .detail("CAST of a text to interval is only read at plan time, from a literal")
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
        // Hours, minutes, seconds: the same span in every time zone
        // (`now() - INTERVAL '1 hour'`).
        ScalarType::TimestampTz if interval.months == 0 && interval.days == 0 => {
            let expr = Expr::Call { func: Func::PlusInterval(interval), args: vec![value.expr] };
            Ok(Typed::new(expr, ScalarType::TimestampTz, value.nullable))
        }
        ScalarType::TimestampTz => Err(PlanError::new("timestamptz ± interval is not supported", at)
            .detail("days and months are added in the session's time zone, which denorm does not know")
            .hint(
                "write the interval in hours (INTERVAL '24 hours'), use a timestamp (without time zone) column, \
                   or compare against a timestamptz constant",
            )),
        ty => Err(PlanError::new(
            format!("operator does not exist: {ty} {} interval", if subtract { "-" } else { "+" }),
            at,
        )),
    }
}

/// `date ± integer`, `date − date`, `timestamp − timestamp`, and the
/// interval operators; `None` when no side is a date, timestamp or interval.
pub(crate) fn arithmetic(
    op: BinaryOp,
    left: &Typed,
    right: &Typed,
    at: Option<Location>,
) -> Option<Result<Typed, PlanError>> {
    use ScalarType::{Date, Float, Int, Interval, Null, Numeric, Timestamp, TimestampTz};
    let nullable = left.nullable || right.nullable;
    let call = |func, args: Vec<Expr>, ty| Some(Ok(Typed::new(Expr::Call { func, args }, ty, nullable)));
    let negated = |e: &Expr| Expr::binary(BinaryOp::Sub, Expr::Literal(denorm_types::Datum::Int(0)), e.clone());
    match (op, left.ty, right.ty) {
        (BinaryOp::Add, Date, Int) => call(Func::DatePlusDays, vec![left.expr.clone(), right.expr.clone()], Date),
        (BinaryOp::Add, Int, Date) => call(Func::DatePlusDays, vec![right.expr.clone(), left.expr.clone()], Date),
        (BinaryOp::Sub, Date, Int) => call(Func::DatePlusDays, vec![left.expr.clone(), negated(&right.expr)], Date),
        (BinaryOp::Sub, Date, Date) => {
            let expr = Expr::Call { func: Func::DateMinusDate, args: vec![left.expr.clone(), right.expr.clone()] };
            // PostgreSQL's date - date is an integer (SUM of it a bigint).
            Some(Ok(Typed::new(expr, Int, nullable).narrowed(true)))
        }
        (BinaryOp::Sub, Timestamp | Date, Timestamp) | (BinaryOp::Sub, Timestamp, Date) | (BinaryOp::Sub, TimestampTz, TimestampTz) => {
            call(Func::TimestampMinus, vec![left.expr.clone(), right.expr.clone()], Interval)
        }
        (BinaryOp::Sub, TimestampTz, Date | Timestamp) | (BinaryOp::Sub, Date | Timestamp, TimestampTz) => {
            Some(Err(PlanError::new(
                format!("{} - {} is not supported", left.ty, right.ty),
                at,
            )
            .detail("the value without a time zone is read in the session's time zone, which denorm does not know")
            .hint(TIME_ZONE_HINT)))
        }
        (BinaryOp::Add, Interval, Interval | Null) | (BinaryOp::Add, Null, Interval) => {
            call(Func::IntervalPlus, vec![left.expr.clone(), right.expr.clone()], Interval)
        }
        (BinaryOp::Sub, Interval, Interval | Null) | (BinaryOp::Sub, Null, Interval) => {
            call(Func::IntervalMinus, vec![left.expr.clone(), right.expr.clone()], Interval)
        }
        (BinaryOp::Add, Date | Timestamp, Interval) => {
            call(Func::TimestampPlusInterval, vec![left.expr.clone(), right.expr.clone()], Timestamp)
        }
        (BinaryOp::Add, Interval, Date | Timestamp) => {
            call(Func::TimestampPlusInterval, vec![right.expr.clone(), left.expr.clone()], Timestamp)
        }
        (BinaryOp::Sub, Date | Timestamp, Interval) => {
            let negated = Expr::Call { func: Func::IntervalNegate, args: vec![right.expr.clone()] };
            call(Func::TimestampPlusInterval, vec![left.expr.clone(), negated], Timestamp)
        }
        (BinaryOp::Add | BinaryOp::Sub, TimestampTz, Interval) | (BinaryOp::Add, Interval, TimestampTz) => {
            Some(Err(PlanError::new("timestamptz ± interval is not supported", at)
                .detail("days and months are added in the session's time zone, which denorm does not know")
                .hint("use a timestamp (without time zone) column")))
        }
        (BinaryOp::Mul, Interval, Int | Float | Numeric | Null) => {
            call(Func::IntervalMul, vec![left.expr.clone(), right.expr.clone()], Interval)
        }
        (BinaryOp::Mul, Int | Float | Numeric | Null, Interval) => {
            call(Func::IntervalMul, vec![right.expr.clone(), left.expr.clone()], Interval)
        }
        (BinaryOp::Div, Interval, Int | Float | Numeric | Null) => {
            call(Func::IntervalDiv, vec![left.expr.clone(), right.expr.clone()], Interval)
        }
        (op, Interval, other) | (op, other, Interval) => Some(Err(PlanError::new(
            format!("operator does not exist: {} {} {}", left.ty, op.symbol(), right.ty),
            at,
        )
        .hint(format!("an interval is added to a date, a timestamp or an interval, and multiplied or divided by a number, not combined with {other}")))),
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
