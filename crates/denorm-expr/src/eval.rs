//! Expression evaluation with the source dialect's semantics.
//!
//! Where SQLite and PostgreSQL differ at runtime the dialect decides:
//!
//! | case                          | SQLite                         | PostgreSQL        |
//! |-------------------------------|--------------------------------|-------------------|
//! | integer `+ - *` overflow      | result becomes a double        | error             |
//! | division or `%` by zero       | NULL                           | error             |
//! | `CAST(3.7 AS INTEGER)`        | 3 (truncates; clamps at range) | 4 (rounds; error out of range) |
//! | `CAST('12abc' AS INTEGER)`    | 12 (longest numeric prefix)    | error             |
//! | `ABS(i64::MIN)`               | error                          | error             |
//!
//! Integer results never wrap silently.
//!
//! SQLite types values, not columns, so a value may not have its column's
//! type (`'abc'` in an INTEGER column): arithmetic and unary minus read text
//! as [`affinity::numeric`] (`'abc' / 2` is 0, `'12x' + 1` is 13), `abs()`
//! and truth values as [`affinity::real`] (`abs('abc')` is 0.0), exactly as
//! SQLite does.

use std::borrow::Cow;
use std::cmp::Ordering;

use denorm_types::json::{self, Construct};
use denorm_types::numeric::{self, Decimal, NumericError};
use denorm_types::{affinity, pgtext, temporal, Datum, Dialect, ScalarType};

use crate::expr::{BinaryOp, Expr, Func};

/// A runtime evaluation failure: it stops the view whose row caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("integer out of range")]
    IntegerOverflow,
    /// SQLite's `SUM` of integers whose total leaves the 64-bit range (its
    /// own message). See `operator/reduce.rs` in denorm-core for the one
    /// case where SQLite fails and denorm does not.
    #[error("integer overflow")]
    SumOverflow,
    #[error("division by zero")]
    DivisionByZero,
    #[error("invalid input for type {to}: {value}")]
    InvalidCast { value: String, to: ScalarType },
    /// A BLOB given to a JSON function (SQLite's own message).
    #[error("JSON cannot hold BLOB values")]
    JsonBlob,
    /// A NULL key for `json_object` (both sources fail) or PostgreSQL's
    /// `json_object_agg`.
    #[error("a JSON object key is NULL")]
    NullJsonKey,
    /// A numeric result denorm's exact decimal cannot hold (or a division
    /// by zero).
    #[error("{0}; CAST the operands to double precision in the view if an approximate result will do")]
    Numeric(NumericError),
    /// A value that makes a function read the clock or the machine's time
    /// zone (`date(x)` where x is `'now'`): a maintained view cannot follow it.
    #[error("{0} reads the clock or the time zone, which a maintained view cannot follow")]
    NotDeterministic(String),
    /// An argument the function rejects (PostgreSQL: `split_part(s, d, 0)`,
    /// a negative substring length, `make_date(2024, 2, 30)`).
    #[error("{0}")]
    InvalidArgument(String),
}

impl From<NumericError> for EvalError {
    fn from(e: NumericError) -> Self {
        match e {
            NumericError::DivisionByZero => EvalError::DivisionByZero,
            e => EvalError::Numeric(e),
        }
    }
}

type Result<T> = std::result::Result<T, EvalError>;

impl Expr {
    /// Evaluates over one row's datums.
    pub fn eval<'r>(&'r self, row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
        Ok(match self {
            Expr::Column(c) => row[*c].clone(),
            // Borrowed: a text literal is not copied per row.
            Expr::Literal(v) => v.borrowed(),
            Expr::Not(e) => match truth(&e.eval(row, dialect)?) {
                Some(b) => Datum::Bool(!b),
                None => Datum::Null,
            },
            Expr::Negate(e) => negate(e.eval(row, dialect)?, dialect)?,
            Expr::IsNull(e) => Datum::Bool(e.eval(row, dialect)?.is_null()),
            Expr::Binary { op: BinaryOp::And, left, right } => and(left, right, row, dialect)?,
            Expr::Binary { op: BinaryOp::Or, left, right } => or(left, right, row, dialect)?,
            Expr::Binary { op, left, right } => {
                binary(*op, left.eval(row, dialect)?, right.eval(row, dialect)?, dialect)?
            }
            Expr::Like { expr, pattern, case_insensitive, escape } => {
                match (as_text(expr.eval(row, dialect)?), as_text(pattern.eval(row, dialect)?)) {
                    (Datum::Text(t), Datum::Text(p)) => Datum::Bool(like(&t, &p, *case_insensitive, *escape)),
                    _ => Datum::Null,
                }
            }
            Expr::InList { expr, list } => in_list(expr, list, row, dialect)?,
            Expr::Case { branches, otherwise } => {
                for (cond, value) in branches {
                    if truth(&cond.eval(row, dialect)?) == Some(true) {
                        return value.eval(row, dialect);
                    }
                }
                otherwise.eval(row, dialect)?
            }
            Expr::Coalesce(args) => {
                for a in args {
                    let v = a.eval(row, dialect)?;
                    if !v.is_null() {
                        return Ok(v);
                    }
                }
                Datum::Null
            }
            Expr::NullIf(a, b) => {
                let a = a.eval(row, dialect)?;
                let b = b.eval(row, dialect)?;
                if a.sql_eq(&b) == Some(true) {
                    Datum::Null
                } else {
                    a
                }
            }
            Expr::Call { func, args } => call(*func, args, row, dialect)?,
            Expr::Cast { expr, to } => cast(expr.eval(row, dialect)?, *to, dialect)?,
            Expr::List(items) => match items.first() {
                Some(first) => first.eval(row, dialect)?,
                None => Datum::Null,
            },
        })
    }

    /// True when the predicate holds (FALSE and NULL both reject).
    pub fn holds(&self, row: &[Datum<'_>], dialect: Dialect) -> Result<bool> {
        Ok(truth(&self.eval(row, dialect)?) == Some(true))
    }
}

/// SQL truth value: booleans as they are, numbers true when non-zero
/// (SQLite), text as SQLite reads it as a double (only SQLite has text in a
/// boolean context), NULL unknown.
fn truth(d: &Datum<'_>) -> Option<bool> {
    match d {
        Datum::Null => None,
        Datum::Bool(b) => Some(*b),
        Datum::Int(i) => Some(*i != 0),
        Datum::Float(f) => Some(*f != 0.0),
        Datum::Text(t) => Some(affinity::real(t) != 0.0),
        Datum::Blob(b) => Some(affinity::real(&String::from_utf8_lossy(b)) != 0.0),
        Datum::Numeric(_)
        | Datum::Date(_)
        | Datum::Timestamp(_)
        | Datum::TimestampTz(_)
        | Datum::Uuid(_)
        | Datum::Interval(_) => Some(false),
    }
}

fn and<'r>(left: &'r Expr, right: &'r Expr, row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    let l = truth(&left.eval(row, dialect)?);
    if l == Some(false) {
        return Ok(Datum::Bool(false));
    }
    Ok(match (l, truth(&right.eval(row, dialect)?)) {
        (_, Some(false)) => Datum::Bool(false),
        (Some(true), Some(true)) => Datum::Bool(true),
        _ => Datum::Null,
    })
}

fn or<'r>(left: &'r Expr, right: &'r Expr, row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    let l = truth(&left.eval(row, dialect)?);
    if l == Some(true) {
        return Ok(Datum::Bool(true));
    }
    Ok(match (l, truth(&right.eval(row, dialect)?)) {
        (_, Some(true)) => Datum::Bool(true),
        (Some(false), Some(false)) => Datum::Bool(false),
        _ => Datum::Null,
    })
}

fn in_list<'r>(expr: &'r Expr, list: &'r [Expr], row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    let v = expr.eval(row, dialect)?;
    if v.is_null() {
        return Ok(Datum::Null);
    }
    let mut saw_null = false;
    for item in list {
        match v.sql_eq(&item.eval(row, dialect)?) {
            Some(true) => return Ok(Datum::Bool(true)),
            Some(false) => {}
            None => saw_null = true,
        }
    }
    Ok(if saw_null { Datum::Null } else { Datum::Bool(false) })
}

fn overflow<'r>(as_float: f64, dialect: Dialect) -> Result<Datum<'r>> {
    match dialect {
        Dialect::Sqlite => Ok(Datum::Float(as_float)),
        Dialect::Postgres => Err(EvalError::IntegerOverflow),
    }
}

fn negate<'r>(v: Datum<'r>, dialect: Dialect) -> Result<Datum<'r>> {
    match v {
        // SQLite computes `-x` as `0 - x`.
        Datum::Text(_) | Datum::Blob(_) if dialect == Dialect::Sqlite => {
            arithmetic(BinaryOp::Sub, Datum::Int(0), v, dialect)
        }
        Datum::Int(i) => match i.checked_neg() {
            Some(n) => Ok(Datum::Int(n)),
            None => overflow(-(i as f64), dialect),
        },
        Datum::Float(f) => Ok(Datum::Float(-f)),
        Datum::Numeric(n) => Ok(Datum::Numeric(numeric::negate(n))),
        other => Ok(other),
    }
}

fn binary<'r>(op: BinaryOp, l: Datum<'r>, r: Datum<'r>, dialect: Dialect) -> Result<Datum<'r>> {
    if l.is_null() || r.is_null() {
        return Ok(Datum::Null);
    }
    let ordering = |want: fn(Ordering) -> bool| Ok(Datum::Bool(want(l.total_cmp(&r))));
    match op {
        BinaryOp::Eq => ordering(|o| o == Ordering::Equal),
        BinaryOp::NotEq => ordering(|o| o != Ordering::Equal),
        BinaryOp::Lt => ordering(|o| o == Ordering::Less),
        BinaryOp::LtEq => ordering(|o| o != Ordering::Greater),
        BinaryOp::Gt => ordering(|o| o == Ordering::Greater),
        BinaryOp::GtEq => ordering(|o| o != Ordering::Less),
        BinaryOp::Concat => match (l, r) {
            (Datum::Text(a), Datum::Text(b)) => Ok(Datum::Text(Cow::Owned(format!("{a}{b}")))),
            (a, b) => Ok(Datum::owned_text(format!("{}{}", plain_text(&a), plain_text(&b)))),
        },
        BinaryOp::And | BinaryOp::Or => unreachable!("handled with short-circuit"),
        _ => arithmetic(op, l, r, dialect),
    }
}

/// A number or BLOB where SQLite reads text (`LIKE`, `lower()`,
/// `length()`: only SQLite's columns hold values of another type than
/// their own): a number's text as SQLite writes it, a BLOB's bytes
/// (invalid UTF-8 replaced: denorm's text is UTF-8).
fn as_text(d: Datum<'_>) -> Datum<'_> {
    match d {
        Datum::Blob(b) => Datum::owned_text(String::from_utf8_lossy(&b).into_owned()),
        Datum::Int(i) => Datum::owned_text(i.to_string()),
        Datum::Float(f) => Datum::owned_text(float_text(f, Dialect::Sqlite)),
        d => d,
    }
}

/// The text of a double: SQLite 3.54's `%!.17g` (shortest round trip, at
/// least one digit after the point: `1.0`, `1.0e+17`), exactly what its
/// JSON functions write; PostgreSQL's is never asked for (the planner
/// refuses that cast).
fn float_text(f: f64, dialect: Dialect) -> String {
    match dialect {
        Dialect::Sqlite if f.is_infinite() => if f > 0.0 { "Inf" } else { "-Inf" }.to_string(),
        Dialect::Sqlite => {
            let mut out = String::new();
            json::write_float(&mut out, f, Dialect::Sqlite);
            out
        }
        Dialect::Postgres => format!("{f:?}"),
    }
}

fn plain_text(d: &Datum<'_>) -> String {
    match d {
        Datum::Text(t) => t.to_string(),
        Datum::Blob(b) => String::from_utf8_lossy(b).into_owned(),
        // Only SQLite's columns hold a double where text is expected.
        Datum::Float(f) => float_text(*f, Dialect::Sqlite),
        other => other.pg_text().unwrap_or_else(|| other.to_string()),
    }
}

/// The exact decimal of an integer or numeric operand.
fn decimal(d: &Datum<'_>) -> Option<Decimal> {
    match d {
        Datum::Numeric(n) => Some(*n),
        Datum::Int(i) => Some(numeric::from_i64(*i)),
        _ => None,
    }
}

/// `numeric op numeric` (an integer operand is read as numeric, as
/// PostgreSQL resolves `integer + numeric`).
fn numeric_arithmetic<'r>(op: BinaryOp, a: Decimal, b: Decimal) -> Result<Datum<'r>> {
    let result = match op {
        BinaryOp::Add => numeric::add(a, b, false),
        BinaryOp::Sub => numeric::add(a, b, true),
        BinaryOp::Mul => numeric::mul(a, b),
        BinaryOp::Div => numeric::div(a, b),
        BinaryOp::Mod => numeric::rem(a, b),
        _ => unreachable!("not arithmetic: {op:?}"),
    };
    Ok(Datum::Numeric(result?))
}

/// An arithmetic operand: SQLite reads text as a number.
fn operand<'r>(d: Datum<'r>, dialect: Dialect) -> Datum<'r> {
    match d {
        Datum::Text(t) if dialect == Dialect::Sqlite => affinity::numeric(&t),
        // SQLite reads a BLOB's bytes as text.
        Datum::Blob(b) => affinity::numeric(&String::from_utf8_lossy(&b)),
        d => d,
    }
}

fn arithmetic<'r>(op: BinaryOp, l: Datum<'r>, r: Datum<'r>, dialect: Dialect) -> Result<Datum<'r>> {
    let (l, r) = (operand(l, dialect), operand(r, dialect));
    if let (Datum::Int(a), Datum::Int(b)) = (&l, &r) {
        return int_arithmetic(op, *a, *b, dialect);
    }
    if matches!(l, Datum::Numeric(_)) || matches!(r, Datum::Numeric(_)) {
        if let (Some(a), Some(b)) = (decimal(&l), decimal(&r)) {
            return numeric_arithmetic(op, a, b);
        }
    }
    let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
        return Ok(Datum::Null);
    };
    let result = match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        // SQLite's `%` over a double is the remainder of both operands
        // truncated to integers, as a double (`2.5 % 3` is 2.0).
        BinaryOp::Mod if dialect == Dialect::Sqlite => {
            let (a, b) = (a as i64, b as i64);
            if b == 0 {
                return zero_divisor(dialect);
            }
            (a % if b == -1 { 1 } else { b }) as f64
        }
        BinaryOp::Div | BinaryOp::Mod if b == 0.0 => return zero_divisor(dialect),
        BinaryOp::Div => a / b,
        BinaryOp::Mod => a % b,
        _ => unreachable!("not arithmetic: {op:?}"),
    };
    // SQLite turns NaN into NULL; PostgreSQL keeps it.
    if result.is_nan() && dialect == Dialect::Sqlite {
        return Ok(Datum::Null);
    }
    Ok(Datum::Float(result))
}

fn zero_divisor<'r>(dialect: Dialect) -> Result<Datum<'r>> {
    match dialect {
        Dialect::Sqlite => Ok(Datum::Null),
        Dialect::Postgres => Err(EvalError::DivisionByZero),
    }
}

fn int_arithmetic<'r>(op: BinaryOp, a: i64, b: i64, dialect: Dialect) -> Result<Datum<'r>> {
    let (checked, as_float) = match op {
        BinaryOp::Add => (a.checked_add(b), a as f64 + b as f64),
        BinaryOp::Sub => (a.checked_sub(b), a as f64 - b as f64),
        BinaryOp::Mul => (a.checked_mul(b), a as f64 * b as f64),
        BinaryOp::Div if b == 0 => return zero_divisor(dialect),
        BinaryOp::Div => (a.checked_div(b), a as f64 / b as f64),
        BinaryOp::Mod if b == 0 => return zero_divisor(dialect),
        // i64::MIN % -1 is 0 mathematically; only the machine instruction traps.
        BinaryOp::Mod => (Some(a.checked_rem(b).unwrap_or(0)), 0.0),
        _ => unreachable!("not arithmetic: {op:?}"),
    };
    match checked {
        Some(v) => Ok(Datum::Int(v)),
        None => overflow(as_float, dialect),
    }
}

fn call<'r>(func: Func, args: &'r [Expr], row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    match func {
        Func::JsonArray { raw } => return json_array(raw, args, row, dialect),
        Func::JsonObject { raw } => return json_object(raw, args, row, dialect),
        _ => {}
    }
    let sqlite_length = func == Func::Length && dialect == Dialect::Sqlite;
    let local =
        matches!(func, Func::Abs | Func::Lower { .. } | Func::Upper { .. } | Func::Length | Func::CollationKey(_))
            || matches!(func, Func::NumericAffinity { .. })
            || matches!(func, Func::ExtremeKey { .. } | Func::ExtremeValue { .. });
    if !local || sqlite_length {
        let values = args.iter().map(|a| a.eval(row, dialect)).collect::<Result<Vec<_>>>()?;
        // SQLite: the length of a BLOB is its number of bytes.
        if let (Func::Length, [Datum::Blob(b)]) = (func, values.as_slice()) {
            return Ok(Datum::Int(b.len() as i64));
        }
        let sqlite_concat = dialect == Dialect::Sqlite && matches!(func, Func::Concat | Func::ConcatWs);
        if is_postgres_function(func) && !sqlite_concat {
            return crate::pg::call(func, values);
        }
        return crate::scalar::call(func, values);
    }
    let v = match (func, args[0].eval(row, dialect)?) {
        (Func::Lower { .. } | Func::Upper { .. } | Func::Length, v) => as_text(v),
        (_, v) => v,
    };
    Ok(match (func, v) {
        (_, Datum::Null) => Datum::Null,
        (Func::Abs, Datum::Int(i)) => Datum::Int(i.checked_abs().ok_or(EvalError::IntegerOverflow)?),
        (Func::Abs, Datum::Float(f)) => Datum::Float(f.abs()),
        (Func::Abs, Datum::Numeric(n)) => Datum::Numeric(if n.is_sign_negative() { numeric::negate(n) } else { n }),
        // SQLite: abs() of text is the absolute value of its double.
        (Func::Abs, Datum::Text(t)) if dialect == Dialect::Sqlite => Datum::Float(affinity::real(&t).abs()),
        (Func::Abs, Datum::Blob(b)) => Datum::Float(affinity::real(&String::from_utf8_lossy(&b)).abs()),
        (Func::Lower { ascii_only }, Datum::Text(t)) => {
            Datum::Text(Cow::Owned(if ascii_only { t.to_ascii_lowercase() } else { crate::pg::map_case(&t, false) }))
        }
        (Func::Upper { ascii_only }, Datum::Text(t)) => {
            Datum::Text(Cow::Owned(if ascii_only { t.to_ascii_uppercase() } else { crate::pg::map_case(&t, true) }))
        }
        (Func::Length, Datum::Text(t)) => Datum::Int(t.chars().count() as i64),
        (Func::CollationKey(c), Datum::Text(t)) => Datum::Text(match c.key(&t) {
            Cow::Borrowed(k) if k.len() == t.len() => t,
            k => Cow::Owned(k.into_owned()),
        }),
        (Func::NumericAffinity { key }, Datum::Text(t)) => match affinity::numeric_affinity(&t) {
            Some(Datum::Float(f)) if key => integral_key(f),
            Some(number) => number,
            None => Datum::Text(t),
        },
        (Func::NumericAffinity { key: true }, Datum::Float(f)) => integral_key(f),
        (Func::ExtremeKey { collation, max }, v) => crate::extreme::encode(v, collation, max),
        (Func::ExtremeValue { max }, v) => crate::extreme::decode(v, max),
        (_, other) => other,
    })
}

/// A double as a join key beside integers: the integer when it is one
/// exactly (SQLite compares an integer with a double exactly).
fn integral_key<'r>(f: f64) -> Datum<'r> {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
        Datum::Int(f as i64)
    } else {
        Datum::Float(f)
    }
}

fn is_postgres_function(func: Func) -> bool {
    matches!(
        func,
        Func::Greatest
            | Func::Least
            | Func::PgSubstring
            | Func::Strpos
            | Func::SplitPart
            | Func::Concat
            | Func::ConcatWs
            | Func::Left
            | Func::Right
            | Func::PgRound
            | Func::MakeDate
            | Func::Reverse
            | Func::Repeat
            | Func::Lpad
            | Func::Rpad
            | Func::Initcap { .. }
            | Func::StartsWith
            | Func::DateTrunc(_)
            | Func::Extract(_)
            | Func::DatePart(_)
            | Func::ToChar
            | Func::DatePlusDays
            | Func::DateMinusDate
            | Func::PlusInterval(_)
    ) || crate::interval::computes(func)
}

fn is_raw(raw: u64, i: usize) -> bool {
    i < 64 && raw >> i & 1 == 1
}

fn json_array<'r>(raw: u64, args: &'r [Expr], row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    let layout = Construct::Array.layout(dialect);
    let mut out = String::from(layout.open);
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(layout.separator);
        }
        json::write_datum(&mut out, &json_value(a.eval(row, dialect)?)?, is_raw(raw, i), dialect);
    }
    out.push_str(layout.close);
    Ok(Datum::owned_text(out))
}

fn json_object<'r>(raw: u64, args: &'r [Expr], row: &[Datum<'r>], dialect: Dialect) -> Result<Datum<'r>> {
    let layout = Construct::Object.layout(dialect);
    let mut out = String::from(layout.open);
    for (i, pair) in args.chunks(2).enumerate() {
        if i > 0 {
            out.push_str(layout.separator);
        }
        match pair[0].eval(row, dialect)? {
            Datum::Text(key) => json::write_string(&mut out, &key),
            _ => return Err(EvalError::NullJsonKey),
        }
        out.push_str(layout.colon);
        let value = pair.get(1).map(|v| v.eval(row, dialect)).transpose()?.unwrap_or(Datum::Null);
        let value = json_value(value)?;
        json::write_datum(&mut out, &value, is_raw(raw, 2 * i + 1), dialect);
    }
    out.push_str(layout.close);
    Ok(Datum::owned_text(out))
}

/// A value a JSON function may hold: SQLite refuses BLOBs.
fn json_value(value: Datum<'_>) -> Result<Datum<'_>> {
    match value {
        Datum::Blob(_) => Err(EvalError::JsonBlob),
        v => Ok(v),
    }
}

fn invalid(value: &Datum<'_>, to: ScalarType) -> EvalError {
    EvalError::InvalidCast { value: value.to_string(), to }
}

/// Casts from and to the types beyond SQLite's (PostgreSQL only; the
/// planner refuses the casts PostgreSQL has not).
fn pg_cast<'r>(v: Datum<'r>, to: ScalarType) -> Result<Datum<'r>> {
    Ok(match (to, v) {
        (ScalarType::Text, v) => match v.pg_text() {
            Some(text) => Datum::owned_text(text),
            None => v,
        },
        (ScalarType::Numeric, Datum::Numeric(n)) => Datum::Numeric(n),
        (ScalarType::Numeric, Datum::Int(i)) => Datum::Numeric(numeric::from_i64(i)),
        (ScalarType::Numeric, Datum::Float(f)) => Datum::Numeric(numeric::from_f64(f)?),
        (ScalarType::Int, Datum::Numeric(n)) => Datum::Int(numeric::to_i64(n).ok_or(EvalError::IntegerOverflow)?),
        (ScalarType::Float, Datum::Numeric(n)) => Datum::Float(numeric::to_f64(n)),
        (ScalarType::Date, Datum::Date(d)) => Datum::Date(d),
        (ScalarType::Date, Datum::Timestamp(t) | Datum::TimestampTz(t)) => Datum::Date(temporal::timestamp_date(t)),
        (ScalarType::Timestamp, Datum::Date(d)) => Datum::Timestamp(temporal::date_timestamp(d)),
        (ScalarType::Timestamp, Datum::Timestamp(t) | Datum::TimestampTz(t)) => Datum::Timestamp(t),
        (ScalarType::TimestampTz, Datum::Date(d)) => Datum::TimestampTz(temporal::date_timestamp(d)),
        (ScalarType::TimestampTz, Datum::Timestamp(t) | Datum::TimestampTz(t)) => Datum::TimestampTz(t),
        (ScalarType::Uuid, Datum::Uuid(u)) => Datum::Uuid(u),
        (ScalarType::Interval, Datum::Interval(i)) => Datum::Interval(i),
        (to, Datum::Text(t)) => match pgtext::parse(to, &t) {
            Some(Ok(v)) => v,
            Some(Err(pgtext::TextError::Numeric(NumericError::OutOfRange | NumericError::NotFinite))) => {
                return Err(EvalError::Numeric(NumericError::OutOfRange))
            }
            _ => return Err(invalid(&Datum::Text(t), to)),
        },
        (to, v) => return Err(invalid(&v, to)),
    })
}

fn cast<'r>(v: Datum<'r>, to: ScalarType, dialect: Dialect) -> Result<Datum<'r>> {
    let beyond_sqlite = |d: &Datum<'_>| {
        matches!(
            d,
            Datum::Numeric(_)
                | Datum::Date(_)
                | Datum::Timestamp(_)
                | Datum::TimestampTz(_)
                | Datum::Uuid(_)
                | Datum::Interval(_)
        )
    };
    if !v.is_null()
        && (beyond_sqlite(&v)
            || matches!(
                to,
                ScalarType::Numeric
                    | ScalarType::Date
                    | ScalarType::Timestamp
                    | ScalarType::TimestampTz
                    | ScalarType::Uuid
                    | ScalarType::Interval
            ))
    {
        return pg_cast(v, to);
    }
    Ok(match (to, v) {
        (_, Datum::Null) | (ScalarType::Null, _) => Datum::Null,
        // The planner never casts to JSON; JSON text casts to text as it is.
        (ScalarType::Json, v) => v,
        (ScalarType::Int, Datum::Int(i)) => Datum::Int(i),
        (ScalarType::Int, Datum::Bool(b)) => Datum::Int(i64::from(b)),
        (ScalarType::Int, Datum::Float(f)) => float_to_int(f, dialect)?,
        (ScalarType::Int, Datum::Text(t)) => text_to_int(&t, dialect)?,
        // SQLite casts a BLOB by reading its bytes as text.
        (ScalarType::Int, Datum::Blob(b)) => text_to_int(&String::from_utf8_lossy(&b), dialect)?,
        (ScalarType::Float, Datum::Blob(b)) => text_to_float(&String::from_utf8_lossy(&b), dialect)?,
        (ScalarType::Text, Datum::Blob(b)) => Datum::owned_text(String::from_utf8_lossy(&b).into_owned()),
        (ScalarType::Float, Datum::Float(f)) => Datum::Float(f),
        (ScalarType::Float, Datum::Int(i)) => Datum::Float(i as f64),
        (ScalarType::Float, Datum::Bool(b)) => Datum::Float(f64::from(u8::from(b))),
        (ScalarType::Float, Datum::Text(t)) => text_to_float(&t, dialect)?,
        (ScalarType::Text, Datum::Text(t)) => Datum::Text(t),
        (ScalarType::Text, Datum::Int(i)) => Datum::owned_text(i.to_string()),
        (ScalarType::Text, Datum::Float(f)) => Datum::owned_text(float_text(f, dialect)),
        (ScalarType::Text, Datum::Bool(b)) => Datum::owned_text(if b { "true" } else { "false" }),
        (ScalarType::Bool, Datum::Bool(b)) => Datum::Bool(b),
        (ScalarType::Bool, Datum::Int(i)) => Datum::Bool(i != 0),
        (ScalarType::Bool, Datum::Float(f)) => Datum::Bool(f != 0.0),
        (ScalarType::Bool, Datum::Text(t)) => text_to_bool(&t).ok_or_else(|| invalid(&Datum::Text(t), to))?,
        (ScalarType::Unsupported, _) => Datum::Null,
        (to, v) => return Err(invalid(&v, to)),
    })
}

fn float_to_int<'r>(f: f64, dialect: Dialect) -> Result<Datum<'r>> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    match dialect {
        // SQLite truncates toward zero and saturates at the integer range.
        Dialect::Sqlite if f.is_nan() => Ok(Datum::Int(0)),
        Dialect::Sqlite => Ok(Datum::Int(f as i64)),
        Dialect::Postgres => {
            let r = f.round();
            if r.is_nan() || !(-LIMIT..LIMIT).contains(&r) {
                Err(EvalError::IntegerOverflow)
            } else {
                Ok(Datum::Int(r as i64))
            }
        }
    }
}

/// The longest prefix of `s` (after leading spaces) that parses as an integer
/// (SQLite), or the whole trimmed text (PostgreSQL).
pub(crate) fn text_to_int<'r>(s: &str, dialect: Dialect) -> Result<Datum<'r>> {
    match dialect {
        Dialect::Postgres => {
            s.trim().parse::<i64>().map(Datum::Int).map_err(|_| invalid(&Datum::text(s), ScalarType::Int))
        }
        Dialect::Sqlite => {
            let t = s.trim_start();
            let bytes = t.as_bytes();
            let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            match t[..end].parse::<i64>() {
                Ok(i) => Ok(Datum::Int(i)),
                Err(_) if end > 1 || (end == 1 && bytes[0].is_ascii_digit()) => {
                    // Too many digits: SQLite saturates.
                    Ok(Datum::Int(if bytes[0] == b'-' { i64::MIN } else { i64::MAX }))
                }
                Err(_) => Ok(Datum::Int(0)),
            }
        }
    }
}

pub(crate) fn text_to_float<'r>(s: &str, dialect: Dialect) -> Result<Datum<'r>> {
    match dialect {
        Dialect::Postgres => {
            s.trim().parse::<f64>().map(Datum::Float).map_err(|_| invalid(&Datum::text(s), ScalarType::Float))
        }
        Dialect::Sqlite => {
            let t = s.trim_start();
            let longest = (1..=t.len())
                .rev()
                .filter(|&i| t.is_char_boundary(i))
                .find_map(|i| t[..i].parse::<f64>().ok().filter(|_| !t[..i].ends_with(['n', 'N', 'f', 'F', 'y'])));
            Ok(Datum::Float(longest.unwrap_or(0.0)))
        }
    }
}

fn text_to_bool<'r>(s: &str) -> Option<Datum<'r>> {
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(Datum::Bool(true)),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(Datum::Bool(false)),
        _ => None,
    }
}

/// SQL LIKE: `%` matches any run of characters, `_` exactly one, `escape`
/// makes the next pattern character literal. Case folding, when asked, is
/// ASCII-only as in SQLite.
pub(crate) fn like(text: &str, pattern: &str, case_insensitive: bool, escape: Option<char>) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let eq = |a: char, b: char| if case_insensitive { a.eq_ignore_ascii_case(&b) } else { a == b };
    // Iterative matcher with one backtrack point (the last `%`), linear in
    // practice and never exponential.
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            let c = p[pi];
            if Some(c) == escape && pi + 1 < p.len() {
                if eq(p[pi + 1], t[ti]) {
                    ti += 1;
                    pi += 2;
                    continue;
                }
            } else if c == '%' {
                star = Some((pi, ti));
                pi += 1;
                continue;
            } else if c == '_' || eq(c, t[ti]) {
                ti += 1;
                pi += 1;
                continue;
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '%' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Value;

    fn lit(v: impl Into<Value>) -> Expr {
        Expr::Literal(v.into())
    }

    fn eval(e: &Expr, dialect: Dialect) -> Result<Value> {
        e.eval(&[], dialect).map(Datum::into_owned)
    }

    #[test]
    fn arithmetic_follows_the_dialect() {
        use BinaryOp::*;
        type Case = (BinaryOp, Value, Value, Result<Value>, Result<Value>);
        let cases: Vec<Case> = vec![
            (Add, 1.into(), 2.into(), Ok(3.into()), Ok(3.into())),
            (Div, 7.into(), 2.into(), Ok(3.into()), Ok(3.into())),
            (Div, (-7).into(), 2.into(), Ok((-3).into()), Ok((-3).into())),
            (Div, 7.into(), 0.into(), Ok(Datum::Null), Err(EvalError::DivisionByZero)),
            (Mod, 7.into(), 0.into(), Ok(Datum::Null), Err(EvalError::DivisionByZero)),
            (Mod, (-7).into(), 3.into(), Ok((-1).into()), Ok((-1).into())),
            (Add, i64::MAX.into(), 1.into(), Ok(9.223_372_036_854_776e18.into()), Err(EvalError::IntegerOverflow)),
            (Mul, 2.5.into(), 2.into(), Ok(5.0.into()), Ok(5.0.into())),
            (Mod, 2.5.into(), 3.into(), Ok(2.0.into()), Ok(2.5.into())),
            (Mod, 7.5.into(), (-2.0).into(), Ok(1.0.into()), Ok(1.5.into())),
            (Mod, 7.into(), 0.5.into(), Ok(Datum::Null), Ok(0.0.into())),
            (Add, Datum::Null, 1.into(), Ok(Datum::Null), Ok(Datum::Null)),
            (Concat, "a".into(), "b".into(), Ok("ab".into()), Ok("ab".into())),
            (Lt, 1.into(), 1.5.into(), Ok(true.into()), Ok(true.into())),
            (Eq, Datum::Null, Datum::Null, Ok(Datum::Null), Ok(Datum::Null)),
        ];
        for (op, a, b, sqlite, pg) in cases {
            let e = Expr::binary(op, lit(a.clone()), lit(b.clone()));
            assert_eq!(eval(&e, Dialect::Sqlite), sqlite, "sqlite {a} {op:?} {b}");
            assert_eq!(eval(&e, Dialect::Postgres), pg, "postgres {a} {op:?} {b}");
        }
    }

    /// A collation key compares bytewise as its text compares under the
    /// collation in SQLite; values other than text pass unchanged.
    #[test]
    fn collation_keys() {
        use denorm_types::Collation::*;
        let key = |c, v: Value| {
            let e = Expr::Call { func: Func::CollationKey(c), args: vec![Expr::Literal(v)] };
            e.eval(&[], Dialect::Sqlite).map(Datum::into_owned).unwrap()
        };
        let cases: Vec<(denorm_types::Collation, Value, Value)> = vec![
            (NoCase, "PaRiS".into(), "paris".into()),
            // ASCII only, as SQLite's NOCASE.
            (NoCase, "ÉCOLE_Z".into(), "École_z".into()),
            (Rtrim, "ab  ".into(), "ab".into()),
            // Only spaces: tabs and leading spaces stay.
            (Rtrim, " ab\t ".into(), " ab\t".into()),
            (Binary, "Ab ".into(), "Ab ".into()),
            (NoCase, 7.into(), 7.into()),
            (Rtrim, Datum::Null, Datum::Null),
        ];
        for (c, v, want) in cases {
            assert_eq!(key(c, v.clone()), want, "{c} key of {v:?}");
        }
        // NOCASE orders '_' (0x5F) before letters, as lower-casing does.
        let text = |v: Value| match v {
            Datum::Text(t) => t.into_owned(),
            other => panic!("{other:?}"),
        };
        assert!(text(key(NoCase, "_".into())) < text(key(NoCase, "A".into())));
    }

    /// Regression: SQLite keeps `'abc'` as text in an INTEGER column, and
    /// `a / b` over it was NULL (SQLite: 0), `abs(a)` was 'abc' (SQLite:
    /// 0.0). Text in arithmetic, `abs()` and truth values reads as SQLite
    /// reads it.
    #[test]
    fn text_in_numeric_contexts_converts_as_sqlite_does() {
        use BinaryOp::*;
        let col = |c| Expr::Column(c);
        let row: Vec<Value> = vec!["abc".into(), 2.into(), "12x".into(), " 1.5".into(), "0.0".into()];
        let eval = |e: &Expr| e.eval(&row, Dialect::Sqlite).map(Datum::into_owned);
        let abs = |e| Expr::Call { func: Func::Abs, args: vec![e] };
        let cases: Vec<(Expr, Value)> = vec![
            (Expr::binary(Div, col(0), col(1)), 0.into()),
            (abs(col(0)), 0.0.into()),
            (abs(Expr::Negate(Box::new(col(3)))), 1.5.into()),
            (Expr::binary(Add, col(2), col(1)), 14.into()),
            (Expr::binary(Mul, col(3), col(1)), 3.0.into()),
            (Expr::binary(Mod, col(2), lit(5)), 2.into()),
            (Expr::binary(Div, col(1), col(0)), Datum::Null),
            (Expr::Negate(Box::new(col(2))), (-12).into()),
            (Expr::Negate(Box::new(col(0))), 0.into()),
            (Expr::Not(Box::new(col(2))), false.into()),
            (Expr::Not(Box::new(col(4))), true.into()),
            (Expr::Not(Box::new(col(0))), true.into()),
        ];
        for (e, want) in cases {
            assert_eq!(eval(&e), Ok(want), "{e}");
        }
    }

    /// A BLOB (which SQLite lets a TEXT column hold) where SQLite reads
    /// text: its bytes; `length()` counts them.
    #[test]
    fn blobs_read_as_text_where_sqlite_reads_text() {
        let row: Vec<Value> = vec![Datum::Blob(b"Ab\xc3\xa9".to_vec().into())];
        let eval = |e: &Expr| e.eval(&row, Dialect::Sqlite).map(Datum::into_owned);
        let call = |func| Expr::Call { func, args: vec![Expr::Column(0)] };
        let like = Expr::Like {
            expr: Box::new(Expr::Column(0)),
            pattern: Box::new(lit("a%")),
            case_insensitive: true,
            escape: None,
        };
        let cases: Vec<(Expr, Value)> = vec![
            (call(Func::Length), 4.into()),
            (call(Func::Upper { ascii_only: true }), "ABé".into()),
            (Expr::binary(BinaryOp::Concat, Expr::Column(0), lit("!")), "Abé!".into()),
            (like, true.into()),
        ];
        for (e, want) in cases {
            assert_eq!(eval(&e), Ok(want), "{e}");
        }
    }

    #[test]
    fn three_valued_logic() {
        use BinaryOp::*;
        let t = || lit(true);
        let f = || lit(false);
        let n = || Expr::Literal(Datum::Null);
        let cases = [
            (Expr::binary(And, n(), f()), Datum::Bool(false)),
            (Expr::binary(And, n(), t()), Datum::Null),
            (Expr::binary(Or, n(), t()), Datum::Bool(true)),
            (Expr::binary(Or, n(), f()), Datum::Null),
            (Expr::Not(Box::new(n())), Datum::Null),
            (Expr::InList { expr: Box::new(lit(1)), list: vec![lit(2), n()] }, Datum::Null),
            (Expr::InList { expr: Box::new(lit(1)), list: vec![lit(2), lit(1.0)] }, Datum::Bool(true)),
            (Expr::InList { expr: Box::new(lit(1)), list: vec![lit(2)] }, Datum::Bool(false)),
            (Expr::NullIf(Box::new(lit(1)), Box::new(lit(1))), Datum::Null),
            (Expr::Coalesce(vec![n(), lit(2), lit(3)]), Datum::Int(2)),
        ];
        for (e, want) in cases {
            assert_eq!(eval(&e, Dialect::Sqlite).unwrap(), want, "{e}");
        }
    }

    #[test]
    fn casts_follow_the_dialect() {
        let cast = |v: Value, to| Expr::Cast { expr: Box::new(lit(v)), to };
        assert_eq!(eval(&cast(3.7.into(), ScalarType::Int), Dialect::Sqlite), Ok(3.into()));
        assert_eq!(eval(&cast(3.5.into(), ScalarType::Int), Dialect::Postgres), Ok(4.into()));
        assert_eq!(eval(&cast("12abc".into(), ScalarType::Int), Dialect::Sqlite), Ok(12.into()));
        assert!(eval(&cast("12abc".into(), ScalarType::Int), Dialect::Postgres).is_err());
        assert_eq!(eval(&cast(" 2.5x".into(), ScalarType::Float), Dialect::Sqlite), Ok(2.5.into()));
        assert_eq!(eval(&cast("x".into(), ScalarType::Float), Dialect::Sqlite), Ok(0.0.into()));
        assert_eq!(eval(&cast(42.into(), ScalarType::Text), Dialect::Sqlite), Ok("42".into()));
        // SQLite 3.54's text of a double (checked against it: `CAST(x AS TEXT)`).
        for (x, text) in [(1e16, "10000000000000000.0"), (1e17, "1.0e+17"), (0.1, "0.1"), (f64::NEG_INFINITY, "-Inf")] {
            assert_eq!(eval(&cast(x.into(), ScalarType::Text), Dialect::Sqlite), Ok(text.into()), "{x}");
        }
    }

    #[test]
    fn json_functions_write_the_sources_text() {
        let args = || vec![lit("a"), lit(0.1), lit("b"), Expr::Literal(Datum::Null), lit("c"), lit("[1]")];
        let object = |raw| Expr::Call { func: Func::JsonObject { raw }, args: args() };
        assert_eq!(eval(&object(0), Dialect::Sqlite), Ok(r#"{"a":0.1,"b":null,"c":"[1]"}"#.into()));
        assert_eq!(eval(&object(1 << 5), Dialect::Sqlite), Ok(r#"{"a":0.1,"b":null,"c":[1]}"#.into()));
        assert_eq!(eval(&object(1 << 5), Dialect::Postgres), Ok(r#"{"a" : 0.1, "b" : null, "c" : [1]}"#.into()));
        let array =
            Expr::Call { func: Func::JsonArray { raw: 0b10 }, args: vec![lit(1), lit("[2]"), lit(1.0), lit(true)] };
        assert_eq!(eval(&array, Dialect::Sqlite), Ok("[1,[2],1.0,true]".into()));
        assert_eq!(eval(&array, Dialect::Postgres), Ok("[1, [2], 1, true]".into()));
        let empty = Expr::Call { func: Func::JsonArray { raw: 0 }, args: vec![] };
        assert_eq!(eval(&empty, Dialect::Sqlite), Ok("[]".into()));
        let null_key = Expr::Call { func: Func::JsonObject { raw: 0 }, args: vec![Expr::Literal(Datum::Null), lit(1)] };
        assert_eq!(eval(&null_key, Dialect::Sqlite), Err(EvalError::NullJsonKey));
        // SQLite: "JSON cannot hold BLOB values".
        let blob = Expr::Literal(Datum::Blob(vec![1].into()));
        let with_blob = Expr::Call { func: Func::JsonArray { raw: 0 }, args: vec![lit(1), blob] };
        assert_eq!(eval(&with_blob, Dialect::Sqlite), Err(EvalError::JsonBlob));
    }

    #[test]
    fn like_patterns() {
        let cases = [
            ("hello", "h%o", false, true),
            ("hello", "H%", true, true),
            ("hello", "H%", false, false),
            ("hello", "h_llo", false, true),
            ("hello", "h_lo", false, false),
            ("", "%", false, true),
            ("abc", "%%c", false, true),
            ("a%c", "a\\%c", false, true),
            ("abc", "a\\%c", false, false),
            ("ÄB", "äb", true, false),
            ("mississippi", "%iss%ppi", false, true),
        ];
        for (t, p, ci, want) in cases {
            assert_eq!(like(t, p, ci, Some('\\')), want, "{t} LIKE {p}");
        }
    }
}
