//! PostgreSQL's text form of the types beyond SQLite's, both ways: the
//! source decodes column values with [`parse`], the fallback reads query
//! results with it and writes key values with [`literal`], and the HTTP API
//! parses `?col=eq.…` by the column's type with it.

use crate::numeric::{self, NumericError};
use crate::{temporal, Datum, ScalarType, Value};

/// Why a text is not a value of a type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("invalid input syntax for type {0}")]
    Syntax(ScalarType),
    #[error(transparent)]
    Numeric(#[from] NumericError),
}

/// Parses the text of a `numeric`, `date`, `timestamp`, `timestamptz` or
/// `uuid` value (PostgreSQL's output, or an ISO 8601 literal); `None` for
/// the other types, whose text the caller reads itself.
pub fn parse(ty: ScalarType, text: &str) -> Option<Result<Value, TextError>> {
    let syntax = || TextError::Syntax(ty);
    Some(match ty {
        ScalarType::Numeric => numeric::parse(text).map(Datum::Numeric).map_err(|e| match e {
            NumericError::Syntax => syntax(),
            e => TextError::Numeric(e),
        }),
        ScalarType::Date => temporal::parse_date(text).map(Datum::Date).ok_or_else(syntax),
        ScalarType::Timestamp => temporal::parse_timestamp(text).map(Datum::Timestamp).ok_or_else(syntax),
        ScalarType::TimestampTz => temporal::parse_timestamptz(text).map(Datum::TimestampTz).ok_or_else(syntax),
        ScalarType::Uuid => crate::parse_uuid(text).map(Datum::Uuid).ok_or_else(syntax),
        // ISO 8601 (the source sessions' IntervalStyle) or PostgreSQL's own
        // input syntax (the `postgres` output style among it).
        ScalarType::Interval => crate::interval::parse_iso8601(text)
            .or_else(|| crate::interval::parse(text, "second").ok())
            .map(Datum::Interval)
            .ok_or_else(syntax),
        _ => return None,
    })
}

/// A value as a PostgreSQL literal of its own type (`'2024-05-01'::date`).
pub fn literal(value: &Datum<'_>) -> String {
    let quoted = |text: &str, ty: &str| format!("'{}'::{ty}", text.replace('\'', "''"));
    match value {
        Datum::Null => "NULL".to_string(),
        Datum::Bool(b) => b.to_string(),
        Datum::Int(i) => i.to_string(),
        Datum::Float(f) if f.is_finite() => format!("{f:?}::float8"),
        Datum::Float(f) => quoted(&format!("{f}").replace("inf", "Infinity"), "float8"),
        Datum::Text(t) => quoted(t, "text"),
        Datum::Numeric(n) => quoted(&numeric::to_string(*n), "numeric"),
        Datum::Date(_) => quoted(&value.pg_text().unwrap_or_default(), "date"),
        Datum::Timestamp(_) => quoted(&value.pg_text().unwrap_or_default(), "timestamp"),
        Datum::TimestampTz(_) => quoted(&value.pg_text().unwrap_or_default(), "timestamptz"),
        Datum::Uuid(_) => quoted(&value.pg_text().unwrap_or_default(), "uuid"),
        Datum::Interval(_) => quoted(&value.pg_text().unwrap_or_default(), "interval"),
        Datum::Blob(b) => {
            let mut hex = String::from("\\x");
            crate::json::write_hex(&mut hex, b);
            quoted(&hex, "bytea")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_quotes() {
        let cases = [
            (ScalarType::Numeric, "-1.50", "'-1.50'::numeric"),
            (ScalarType::Date, "2024-05-01", "'2024-05-01'::date"),
            (ScalarType::Timestamp, "2024-05-01 10:00:00.25", "'2024-05-01 10:00:00.25'::timestamp"),
            (ScalarType::TimestampTz, "2024-05-01 12:00:00+02", "'2024-05-01 10:00:00+00'::timestamptz"),
            (
                ScalarType::Uuid,
                "{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}",
                "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid",
            ),
        ];
        for (ty, text, want) in cases {
            let v = parse(ty, text).unwrap().unwrap();
            assert_eq!(literal(&v), want);
        }
        let interval = parse(ScalarType::Interval, "P1DT-2H").unwrap().unwrap();
        assert_eq!(literal(&interval), "'1 day -02:00:00'::interval");
        assert_eq!(parse(ScalarType::Interval, "1 day -02:00:00"), Some(Ok(interval)));
        assert_eq!(parse(ScalarType::Date, "x"), Some(Err(TextError::Syntax(ScalarType::Date))));
        assert_eq!(parse(ScalarType::Numeric, "NaN"), Some(Err(TextError::Numeric(NumericError::NotFinite))));
        assert_eq!(parse(ScalarType::Text, "x"), None);
        assert_eq!(crate::parse_uuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11").map(|_| ()), Some(()));
        assert_eq!(crate::parse_uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1"), None);
        assert_eq!(crate::parse_uuid("-a0eebc999c0b4ef8bb6d6bb9bd380a11"), None);
    }
}
