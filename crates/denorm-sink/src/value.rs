//! Values between denorm's datums and the SQL sinks' columns, both ways.
//!
//! | view type | PostgreSQL column | SQLite column |
//! |---|---|---|
//! | `Bool` | `boolean` | `INTEGER` (0/1) |
//! | `Int` | `bigint` | `INTEGER` |
//! | `Float` | `double precision` | `REAL` |
//! | `Text` | `text` | `TEXT` |
//! | `Json` | `json` (the text as written, not `jsonb`) | `TEXT` |
//! | `Numeric` | `numeric` (exact, scale kept) | `TEXT` (exact decimal text) |
//! | `Date` / `Timestamp` / `TimestampTz` | `date` / `timestamp` / `timestamptz` | `TEXT` (ISO 8601, as SQLite's date functions read it) |
//! | `Uuid` | `uuid` | `TEXT` |
//! | `Interval` | `interval` | `TEXT` (PostgreSQL's text, `1 day 02:00:00`) |
//! | `Any`, `Null` (SQLite's untyped values) | `text` (the value's text) | no type (the value keeps its storage class) |

use denorm_types::{Datum, ScalarType, Value};

/// The PostgreSQL column type of a view column.
pub fn postgres_type(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Bool => "boolean",
        ScalarType::Int => "bigint",
        ScalarType::Float => "double precision",
        ScalarType::Json => "json",
        ScalarType::Numeric => "numeric",
        ScalarType::Date => "date",
        ScalarType::Timestamp => "timestamp",
        ScalarType::TimestampTz => "timestamptz",
        ScalarType::Uuid => "uuid",
        ScalarType::Interval => "interval",
        ScalarType::Text | ScalarType::Null | ScalarType::Any | ScalarType::Unsupported => "text",
    }
}

/// The SQLite column type (and so affinity) of a view column.
pub fn sqlite_type(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Bool | ScalarType::Int => "INTEGER",
        ScalarType::Float => "REAL",
        ScalarType::Text
        | ScalarType::Json
        | ScalarType::Numeric
        | ScalarType::Date
        | ScalarType::Timestamp
        | ScalarType::TimestampTz
        | ScalarType::Uuid
        | ScalarType::Interval => "TEXT",
        ScalarType::Null | ScalarType::Any | ScalarType::Unsupported => "",
    }
}

/// A value's PostgreSQL text (COPY and `::text` form); `None` for NULL.
pub fn pg_text(value: &Datum<'_>) -> Option<String> {
    Some(match value {
        Datum::Null => return None,
        Datum::Bool(b) => if *b { "t" } else { "f" }.to_owned(),
        Datum::Int(i) => i.to_string(),
        Datum::Float(f) if f.is_nan() => "NaN".to_owned(),
        Datum::Float(f) if f.is_infinite() => if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned(),
        Datum::Float(f) => format!("{f:?}"),
        Datum::Text(t) => t.to_string(),
        Datum::Blob(b) => {
            let mut hex = String::from("\\x");
            denorm_types::json::write_hex(&mut hex, b);
            hex
        }
        other => other.pg_text().unwrap_or_default(),
    })
}

/// Parses a column's PostgreSQL text back into a value of type `ty`.
pub fn from_pg_text(ty: ScalarType, text: &str) -> Option<Value> {
    if let Some(parsed) = denorm_types::pgtext::parse(ty, text) {
        return parsed.ok();
    }
    Some(match ty {
        ScalarType::Bool => Datum::Bool(text == "t"),
        ScalarType::Int => Datum::Int(text.parse().ok()?),
        ScalarType::Float => Datum::Float(match text {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse().ok()?,
        }),
        _ => Datum::owned_text(text),
    })
}

/// A value as a PostgreSQL column of type `ty` stores it: untyped SQLite
/// values (`Any`) and values of another class than the column's are kept as
/// their text, so reading the sink back gives this.
pub fn pg_stored(ty: ScalarType, value: &Datum<'_>) -> Value {
    let fits = matches!(
        (ty, value),
        (_, Datum::Null)
            | (ScalarType::Bool, Datum::Bool(_))
            | (ScalarType::Int, Datum::Int(_))
            | (ScalarType::Float, Datum::Float(_))
            | (ScalarType::Text | ScalarType::Json, Datum::Text(_))
            | (ScalarType::Numeric, Datum::Numeric(_))
            | (ScalarType::Date, Datum::Date(_))
            | (ScalarType::Timestamp, Datum::Timestamp(_))
            | (ScalarType::TimestampTz, Datum::TimestampTz(_))
            | (ScalarType::Uuid, Datum::Uuid(_))
            | (ScalarType::Interval, Datum::Interval(_))
    );
    if fits {
        return value.clone().into_owned();
    }
    match (ty, value) {
        (ScalarType::Float, Datum::Int(i)) => Datum::Float(*i as f64),
        (ScalarType::Int | ScalarType::Bool | ScalarType::Float, _) => value.clone().into_owned(),
        _ => Datum::owned_text(pg_text(value).unwrap_or_default()),
    }
}

/// A value as a SQLite column of type `ty` stores it (its affinity: an
/// INTEGER column keeps an integral REAL as an integer, a REAL column an
/// integer as a REAL); the other types are written as their text.
pub fn sqlite_stored(ty: ScalarType, value: &Datum<'_>) -> Value {
    match (ty, value) {
        (ScalarType::Int | ScalarType::Bool, Datum::Float(f))
            if f.fract() == 0.0 && f.abs() < 9.2e18 && (*f as i64) as f64 == *f =>
        {
            Datum::Int(*f as i64)
        }
        (ScalarType::Float, Datum::Int(i)) => Datum::Float(*i as f64),
        (_, Datum::Numeric(_) | Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_) | Datum::Uuid(_)) => {
            Datum::owned_text(value.pg_text().unwrap_or_default())
        }
        _ => value.clone().into_owned(),
    }
}

/// A SQLite value read back as a datum of the view's type `ty`.
pub fn from_sqlite(ty: ScalarType, value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Datum::Null,
        ValueRef::Integer(i) if ty == ScalarType::Bool => Datum::Bool(i != 0),
        ValueRef::Integer(i) => Datum::Int(i),
        ValueRef::Real(f) => Datum::Float(f),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            match denorm_types::pgtext::parse(ty, &text) {
                Some(Ok(parsed)) => parsed,
                _ => Datum::owned_text(text.into_owned()),
            }
        }
        ValueRef::Blob(b) => Datum::Blob(b.to_vec().into()),
    }
}

/// A datum as a SQLite value to bind.
pub fn to_sqlite(value: &Datum<'_>) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Datum::Null => V::Null,
        Datum::Bool(b) => V::Integer(i64::from(*b)),
        Datum::Int(i) => V::Integer(*i),
        Datum::Float(f) => V::Real(*f),
        Datum::Text(t) => V::Text(t.to_string()),
        Datum::Blob(b) => V::Blob(b.to_vec()),
        other => V::Text(other.pg_text().unwrap_or_default()),
    }
}

/// An identifier quoted for SQL (`"a""b"`).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::numeric;

    #[test]
    fn postgres_text_round_trips() {
        let values = [
            (ScalarType::Int, Datum::Int(-42)),
            (ScalarType::Float, Datum::Float(0.1)),
            (ScalarType::Float, Datum::Float(f64::INFINITY)),
            (ScalarType::Bool, Datum::Bool(true)),
            (ScalarType::Numeric, Datum::Numeric(numeric::parse("1.50").unwrap())),
            (ScalarType::Timestamp, Datum::Timestamp(1_700_000_000_123_456)),
            (ScalarType::Date, Datum::Date(19_000)),
            (ScalarType::Text, Datum::text("a\tb\\c")),
        ];
        for (ty, value) in values {
            let text = pg_text(&value).unwrap();
            assert_eq!(from_pg_text(ty, &text), Some(value.clone()), "{text}");
        }
    }

    #[test]
    fn sqlite_affinity_is_applied_before_comparing() {
        assert_eq!(sqlite_stored(ScalarType::Int, &Datum::Float(3.0)), Datum::Int(3));
        assert_eq!(sqlite_stored(ScalarType::Int, &Datum::Float(3.5)), Datum::Float(3.5));
        assert_eq!(sqlite_stored(ScalarType::Float, &Datum::Int(2)), Datum::Float(2.0));
        assert_eq!(pg_stored(ScalarType::Any, &Datum::Int(2)), Datum::text("2"));
    }
}
