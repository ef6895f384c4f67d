//! Values on the wire: each view column's PostgreSQL type (OID), and its
//! datums in the text or binary format the client asks for, column by
//! column; parameters from either format to text.
//!
//! | column type | OID | text | binary |
//! |---|---|---|---|
//! | Int | int8 | `42` | 8 bytes big-endian |
//! | Float | float8 | PostgreSQL's shortest exact (`1.5`, `1e+16`, `NaN`) | IEEE 754 |
//! | Numeric | numeric | exact with its scale (`1.50`) | base-10000 digits |
//! | Bool | bool | `t`/`f` | 1 byte |
//! | Text, Any, Null | text | as is | UTF-8 |
//! | Json | json | the JSON text | the JSON text |
//! | Date, Timestamp, TimestampTz | date, timestamp, timestamptz | ISO | days / µs since 2000-01-01 |
//! | Uuid | uuid | `a0eebc99-…` | 16 bytes |
//!
//! A SQLite column may hold a value of another storage class than its
//! declared type: in text format it is sent as its text; in binary format
//! an integral double in an integer column is sent as the integer, an
//! integer in a double column as the double, and anything else is an
//! error (`22P03`) rather than bytes the client would misread.

use bytes::{BufMut, BytesMut};
use denorm_types::{json, write_uuid, Datum, Dialect, ScalarType};
use pgwire::api::results::FieldFormat;
use pgwire::api::Type;
use pgwire::messages::data::DataRow;
use postgres_types::{FromSql, ToSql};

use super::sql::{SqlError, INVALID_TEXT};

/// Microseconds and days between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

pub const INVALID_BINARY: &str = "22P03";

/// The PostgreSQL type a view column is described as.
pub fn pg_type(ty: ScalarType) -> Type {
    match ty {
        ScalarType::Bool => Type::BOOL,
        ScalarType::Int => Type::INT8,
        ScalarType::Float => Type::FLOAT8,
        ScalarType::Json => Type::JSON,
        ScalarType::Numeric => Type::NUMERIC,
        ScalarType::Date => Type::DATE,
        ScalarType::Timestamp => Type::TIMESTAMP,
        ScalarType::TimestampTz => Type::TIMESTAMPTZ,
        ScalarType::Uuid => Type::UUID,
        ScalarType::Interval => Type::INTERVAL,
        ScalarType::Text | ScalarType::Null | ScalarType::Any | ScalarType::Unsupported => Type::TEXT,
    }
}

/// The array type of a column type's [`pg_type`] (`col = ANY($1)`).
pub fn array_type(ty: ScalarType) -> Type {
    let element = pg_type(ty);
    [
        (Type::BOOL, Type::BOOL_ARRAY),
        (Type::INT8, Type::INT8_ARRAY),
        (Type::FLOAT8, Type::FLOAT8_ARRAY),
        (Type::JSON, Type::JSON_ARRAY),
        (Type::NUMERIC, Type::NUMERIC_ARRAY),
        (Type::DATE, Type::DATE_ARRAY),
        (Type::TIMESTAMP, Type::TIMESTAMP_ARRAY),
        (Type::TIMESTAMPTZ, Type::TIMESTAMPTZ_ARRAY),
        (Type::UUID, Type::UUID_ARRAY),
        (Type::INTERVAL, Type::INTERVAL_ARRAY),
    ]
    .into_iter()
    .find(|(e, _)| *e == element)
    .map_or(Type::TEXT_ARRAY, |(_, array)| array)
}

/// One data row: `datums` are the row's values in output order, `types`
/// and `formats` the output columns' types and formats.
pub fn data_row(datums: &[&Datum<'_>], types: &[ScalarType], formats: &[FieldFormat]) -> Result<DataRow, SqlError> {
    let mut out = BytesMut::with_capacity(16 * datums.len());
    for ((datum, ty), format) in datums.iter().zip(types).zip(formats) {
        if datum.is_null() {
            out.put_i32(-1);
            continue;
        }
        let at = out.len();
        out.put_i32(0);
        match format {
            FieldFormat::Text => write_text(&mut out, datum),
            FieldFormat::Binary => write_binary(&mut out, datum, *ty)?,
        }
        let length =
            i32::try_from(out.len() - at - 4).map_err(|_| SqlError::new("54000", "a value is longer than 2 GiB"))?;
        out[at..at + 4].copy_from_slice(&length.to_be_bytes());
    }
    Ok(DataRow::new(out, i16::try_from(datums.len()).unwrap_or(i16::MAX)))
}

/// A datum's PostgreSQL text output.
pub fn text(datum: &Datum<'_>) -> String {
    let mut out = BytesMut::new();
    write_text(&mut out, datum);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_text(out: &mut BytesMut, datum: &Datum<'_>) {
    match datum {
        Datum::Null => {}
        Datum::Bool(b) => out.put_u8(if *b { b't' } else { b'f' }),
        Datum::Int(i) => out.put_slice(i.to_string().as_bytes()),
        Datum::Float(x) => out.put_slice(float_text(*x).as_bytes()),
        Datum::Text(t) => out.put_slice(t.as_bytes()),
        Datum::Blob(b) => {
            let mut hex = String::from("\\x");
            json::write_hex(&mut hex, b);
            out.put_slice(hex.as_bytes());
        }
        Datum::Uuid(u) => {
            let mut s = String::new();
            write_uuid(&mut s, u);
            out.put_slice(s.as_bytes());
        }
        Datum::Numeric(_) | Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_) | Datum::Interval(_) => {
            out.put_slice(datum.pg_text().unwrap_or_default().as_bytes())
        }
    }
}

/// PostgreSQL's `float8out` (extra_float_digits ≥ 1): the shortest text
/// that reads back exactly, in exponent form below 1e-4 and from 1e15.
pub fn float_text(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let sci = format!("{x:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if x != 0.0 && !(-4..15).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let mut s = String::new();
        json::write_float(&mut s, x, Dialect::Postgres);
        s
    }
}

fn write_binary(out: &mut BytesMut, datum: &Datum<'_>, ty: ScalarType) -> Result<(), SqlError> {
    let mismatch = || {
        SqlError::new(INVALID_BINARY, format!("the value {datum} does not fit its column's type {ty} in binary format"))
            .hint("the source stored a value of another type in this column; request text format for it")
    };
    match (pg_type(ty), datum) {
        (t, _) if t == Type::TEXT || t == Type::JSON => write_text(out, datum),
        (Type::BOOL, Datum::Bool(b)) => out.put_u8(u8::from(*b)),
        (Type::INT8, Datum::Int(i)) => out.put_i64(*i),
        (Type::INT8, Datum::Float(x)) if x.fract() == 0.0 && x.abs() < 9.2e18 => out.put_i64(*x as i64),
        (Type::FLOAT8, Datum::Float(x)) => out.put_f64(*x),
        (Type::FLOAT8, Datum::Int(i)) => out.put_f64(*i as f64),
        (Type::NUMERIC, Datum::Numeric(n)) => {
            n.to_sql(&Type::NUMERIC, out).map_err(|e| SqlError::new(INVALID_BINARY, e.to_string()))?;
        }
        (Type::DATE, Datum::Date(d)) => out.put_i32(match *d {
            i32::MAX | i32::MIN => *d,
            d => d - PG_EPOCH_DAYS,
        }),
        (Type::TIMESTAMP, Datum::Timestamp(t)) | (Type::TIMESTAMPTZ, Datum::TimestampTz(t)) => out.put_i64(match *t {
            i64::MAX | i64::MIN => *t,
            t => t - PG_EPOCH_MICROS,
        }),
        (Type::UUID, Datum::Uuid(u)) => out.put_slice(u),
        // interval_send: microseconds, days, months.
        (Type::INTERVAL, Datum::Interval(i)) => {
            out.put_i64(i.micros);
            out.put_i32(i.days);
            out.put_i32(i.months);
        }
        _ => return Err(mismatch()),
    }
    Ok(())
}

/// A parameter as text, whatever its format: binary parameters of the
/// usual types are decoded by their declared type (`ty`).
pub fn param_text(bytes: &[u8], binary: bool, ty: &Type) -> Result<String, SqlError> {
    let bad = |e: String| SqlError::new(INVALID_BINARY, format!("cannot read a binary {} parameter: {e}", ty.name()));
    if !binary {
        return String::from_utf8(bytes.to_vec()).map_err(|_| SqlError::new(INVALID_TEXT, "a parameter is not UTF-8"));
    }
    type Decoded = Result<String, Box<dyn std::error::Error + Sync + Send>>;
    let decode = |f: fn(&[u8]) -> Decoded| f(bytes).map_err(|e| bad(e.to_string()));
    match *ty {
        Type::INT2 => decode(|b| i16::from_sql(&Type::INT2, b).map(|v| v.to_string())),
        Type::INT4 => decode(|b| i32::from_sql(&Type::INT4, b).map(|v| v.to_string())),
        Type::INT8 => decode(|b| i64::from_sql(&Type::INT8, b).map(|v| v.to_string())),
        Type::FLOAT4 => decode(|b| f32::from_sql(&Type::FLOAT4, b).map(|v| f64::from(v).to_string())),
        Type::FLOAT8 => decode(|b| f64::from_sql(&Type::FLOAT8, b).map(|v| format!("{v:?}"))),
        Type::BOOL => decode(|b| bool::from_sql(&Type::BOOL, b).map(|v| v.to_string())),
        Type::NUMERIC => {
            decode(|b| rust_decimal::Decimal::from_sql(&Type::NUMERIC, b).map(denorm_types::numeric::to_string))
        }
        Type::DATE => decode(|b| {
            let days = i32::from_sql(&Type::DATE, b)?;
            Ok(Datum::Date(days.saturating_add(PG_EPOCH_DAYS)).pg_text().unwrap_or_default())
        }),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_sql(&Type::INT8, bytes).map_err(|e| bad(e.to_string()))?;
            let micros = micros.saturating_add(PG_EPOCH_MICROS);
            let datum = if *ty == Type::TIMESTAMP { Datum::Timestamp(micros) } else { Datum::TimestampTz(micros) };
            Ok(datum.pg_text().unwrap_or_default())
        }
        ref t if matches!(t.kind(), postgres_types::Kind::Array(_)) => binary_array_text(bytes).map_err(bad),
        Type::INTERVAL => {
            let field = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(|| bad("not 16 bytes".into()));
            let micros = i64::from_be_bytes(field(0, 8)?.try_into().unwrap_or_default());
            let days = i32::from_be_bytes(field(8, 4)?.try_into().unwrap_or_default());
            let months = i32::from_be_bytes(field(12, 4)?.try_into().unwrap_or_default());
            Ok(text(&Datum::Interval(denorm_types::interval::Interval { months, days, micros })))
        }
        Type::UUID => {
            <[u8; 16]>::try_from(bytes).map(|u| text(&Datum::Uuid(u))).map_err(|_| bad("not 16 bytes".into()))
        }
        _ => String::from_utf8(bytes.to_vec()).map_err(|_| bad("not UTF-8 text".into())),
    }
}

/// A binary one-dimensional array parameter as PostgreSQL's text form
/// (`{"1","2",NULL}`), each element decoded by the array's element type.
fn binary_array_text(bytes: &[u8]) -> Result<String, String> {
    let mut at = 0;
    let mut word = |n: usize| -> Result<&[u8], String> {
        let part = bytes.get(at..at + n).ok_or("the array is truncated")?;
        at += n;
        Ok(part)
    };
    let int = |b: &[u8]| i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let dimensions = int(word(4)?);
    let _has_nulls = word(4)?;
    let element = Type::from_oid(u32::from_be_bytes(word(4)?.try_into().map_err(|_| "bad element type")?))
        .ok_or("unknown element type")?;
    if dimensions == 0 {
        return Ok("{}".into());
    }
    if dimensions != 1 {
        return Err("only one-dimensional arrays are supported".into());
    }
    let length = int(word(4)?);
    let _lower_bound = word(4)?;
    let mut items = Vec::new();
    for _ in 0..length.max(0) {
        let size = int(word(4)?);
        if size < 0 {
            items.push("NULL".to_owned());
            continue;
        }
        let value = param_text(word(size as usize)?, true, &element).map_err(|e| e.message)?;
        items.push(format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\"")));
    }
    Ok(format!("{{{}}}", items.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interval column: type `interval`, PostgreSQL's text, and
    /// `interval_send`'s 16 bytes (µs, days, months) read back as a
    /// binary parameter.
    #[test]
    fn intervals_in_text_and_binary() {
        let i = denorm_types::interval::Interval { months: 14, days: -3, micros: 14_706_500_000 };
        assert_eq!(pg_type(ScalarType::Interval), Type::INTERVAL);
        assert_eq!(text(&Datum::Interval(i)), "1 year 2 mons -3 days +04:05:06.5");
        let mut out = BytesMut::new();
        write_binary(&mut out, &Datum::Interval(i), ScalarType::Interval).unwrap();
        assert_eq!(out.len(), 16);
        assert_eq!(param_text(&out, true, &Type::INTERVAL).unwrap(), "1 year 2 mons -3 days +04:05:06.5");
    }

    #[test]
    fn floats_print_as_postgresql_does() {
        let cases = [
            (1.5, "1.5"),
            (3.0, "3"),
            (-0.25, "-0.25"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (x, want) in cases {
            assert_eq!(float_text(x), want, "{x:?}");
        }
    }

    fn row(datum: Datum<'_>, ty: ScalarType, format: FieldFormat) -> Result<Vec<u8>, SqlError> {
        data_row(&[&datum], &[ty], &[format]).map(|r| r.data[4..].to_vec())
    }

    #[test]
    fn binary_values_decode_with_postgres_types() {
        let n = denorm_types::numeric::parse("-12.50").unwrap();
        let bytes = row(Datum::Numeric(n), ScalarType::Numeric, FieldFormat::Binary).unwrap();
        assert_eq!(rust_decimal::Decimal::from_sql(&Type::NUMERIC, &bytes).unwrap().to_string(), "-12.50");
        let bytes = row(Datum::Int(-7), ScalarType::Int, FieldFormat::Binary).unwrap();
        assert_eq!(i64::from_sql(&Type::INT8, &bytes).unwrap(), -7);
        let bytes = row(Datum::Float(2.0), ScalarType::Int, FieldFormat::Binary).unwrap();
        assert_eq!(i64::from_sql(&Type::INT8, &bytes).unwrap(), 2);
        let bytes = row(Datum::Date(PG_EPOCH_DAYS + 1), ScalarType::Date, FieldFormat::Binary).unwrap();
        assert_eq!(i32::from_sql(&Type::DATE, &bytes).unwrap(), 1);
        assert_eq!(row(Datum::text("x"), ScalarType::Int, FieldFormat::Binary).unwrap_err().code, INVALID_BINARY);
        assert_eq!(row(Datum::text("x"), ScalarType::Int, FieldFormat::Text).unwrap(), b"x");
        assert_eq!(row(Datum::Bool(true), ScalarType::Bool, FieldFormat::Text).unwrap(), b"t");
        let null = data_row(&[&Datum::Null], &[ScalarType::Int], &[FieldFormat::Binary]).unwrap();
        assert_eq!(null.data.to_vec(), (-1i32).to_be_bytes());
    }

    #[test]
    fn binary_parameters_read_as_text() {
        let mut buf = BytesMut::new();
        42i32.to_sql(&Type::INT4, &mut buf).unwrap();
        assert_eq!(param_text(&buf, true, &Type::INT4).unwrap(), "42");
        let mut buf = BytesMut::new();
        rust_decimal::Decimal::new(150, 2).to_sql(&Type::NUMERIC, &mut buf).unwrap();
        assert_eq!(param_text(&buf, true, &Type::NUMERIC).unwrap(), "1.50");
        assert_eq!(param_text(b"eu", false, &Type::UNKNOWN).unwrap(), "eu");
        assert_eq!(param_text(&0i64.to_be_bytes(), true, &Type::TIMESTAMP).unwrap(), "2000-01-01 00:00:00");
        assert!(param_text(b"ab", true, &Type::INT8).is_err());
        let mut buf = BytesMut::new();
        vec![Some(3i64), None, Some(-1)].to_sql(&Type::INT8_ARRAY, &mut buf).unwrap();
        assert_eq!(param_text(&buf, true, &Type::INT8_ARRAY).unwrap(), r#"{"3",NULL,"-1"}"#);
        let mut buf = BytesMut::new();
        vec!["a\"b,c"].to_sql(&Type::TEXT_ARRAY, &mut buf).unwrap();
        let text = param_text(&buf, true, &Type::TEXT_ARRAY).unwrap();
        assert_eq!(super::super::sql::parse_array(&text).unwrap(), vec![Some("a\"b,c".to_owned())]);
    }
}
