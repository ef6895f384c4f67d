//! PostgreSQL column types as denorm values: [`PgType`] maps a type OID to
//! a [`ScalarType`] and decodes the type's *text* output format, which both
//! the snapshot (`COPY … TO STDOUT`, text format, unescaped by
//! [`split_copy_line`]) and the change stream (pgoutput's 't' columns)
//! carry. One decoder for both is what makes a snapshot row and its later
//! retraction byte-identical.
//!
//! | PostgreSQL | denorm value | JSON |
//! |---|---|---|
//! | boolean | `Bool` | `true` |
//! | smallint, integer, bigint | `Int` | `42` |
//! | real, double precision | `Float` | `0.1`, NaN/±Infinity as strings |
//! | numeric | `Numeric` (exact decimal, display scale kept: see `denorm_types::numeric`) | `1.50` |
//! | text, varchar, char(n), name | `Text` (char(n) keeps its padding; the catalog marks it RTRIM) | `"…"` |
//! | date | `Date` (days; `infinity` kept) | `"2024-05-01"` |
//! | timestamp | `Timestamp` (µs) | `"2024-05-01T10:00:00.5"` |
//! | timestamptz | `TimestampTz` (µs UTC) | `"2024-05-01T10:00:00.5+00:00"` |
//! | uuid | `Uuid` (16 bytes) | `"a0eebc99-…"` |
//! | interval | `Interval` (months, days, µs; read from ISO 8601) | `"1 day 02:00:00"` (PostgreSQL's own text) |
//! | json, jsonb | `Text` of type JSON, the server's text | embedded as it is |
//!
//! A numeric NaN or ±Infinity, or one beyond 28 digits after the point or
//! 29 before it, is refused with [`ValueError::Numeric`], naming the column:
//! denorm never rounds it. Any other type is [`PgType::Unsupported`]: the
//! catalog keeps the column so that only views reading it are refused (by
//! the planner); its values are never decoded (unread columns are NULL).
//!
//! Adding a type is one [`PgType`] variant: its OID in [`PgType::from_oid`],
//! its scalar type, and its arm in [`PgType::decode`]. Both sessions set
//! `DateStyle = ISO`, `TimeZone = UTC`, `extra_float_digits = 3` and
//! `client_encoding = UTF8`, so output formats do not depend on the server's
//! defaults.

use std::borrow::Cow;

use denorm_types::numeric::NumericError;
use denorm_types::pgtext::{self, TextError};
use denorm_types::{Datum, ScalarType};

/// The session settings under which text output is decoded; sent at
/// connection start-up on both the snapshot and the replication connection.
pub(crate) const SESSION_SETTINGS: [(&str, &str); 5] = [
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, YMD"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("IntervalStyle", "iso_8601"),
];

/// A PostgreSQL type denorm reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Varchar,
    /// `char(n)`: the value keeps its blank padding, as PostgreSQL outputs it.
    Bpchar,
    Name,
    Numeric,
    Date,
    Timestamp,
    TimestampTz,
    Uuid,
    /// `interval`, sent as ISO 8601 (`IntervalStyle = iso_8601`).
    Interval,
    Json,
    Jsonb,
    /// A type denorm has no value for, by OID: readable by no view.
    Unsupported(u32),
}

impl PgType {
    /// The type of a column with type OID `oid` ([`PgType::Unsupported`]
    /// when denorm has no value for it).
    pub fn from_oid(oid: u32) -> PgType {
        Self::supported(oid).unwrap_or(PgType::Unsupported(oid))
    }

    /// The type of a column with type OID `oid`, or `None` when denorm has
    /// no value for it.
    pub fn supported(oid: u32) -> Option<PgType> {
        Some(match oid {
            16 => PgType::Bool,
            21 => PgType::Int2,
            23 => PgType::Int4,
            20 => PgType::Int8,
            700 => PgType::Float4,
            701 => PgType::Float8,
            25 => PgType::Text,
            1043 => PgType::Varchar,
            1042 => PgType::Bpchar,
            19 => PgType::Name,
            1700 => PgType::Numeric,
            1082 => PgType::Date,
            1114 => PgType::Timestamp,
            1184 => PgType::TimestampTz,
            2950 => PgType::Uuid,
            1186 => PgType::Interval,
            114 => PgType::Json,
            3802 => PgType::Jsonb,
            _ => return None,
        })
    }

    pub fn scalar_type(self) -> ScalarType {
        match self {
            PgType::Bool => ScalarType::Bool,
            PgType::Int2 | PgType::Int4 | PgType::Int8 => ScalarType::Int,
            PgType::Float4 | PgType::Float8 => ScalarType::Float,
            PgType::Text | PgType::Varchar | PgType::Bpchar | PgType::Name => ScalarType::Text,
            PgType::Numeric => ScalarType::Numeric,
            PgType::Date => ScalarType::Date,
            PgType::Timestamp => ScalarType::Timestamp,
            PgType::TimestampTz => ScalarType::TimestampTz,
            PgType::Uuid => ScalarType::Uuid,
            PgType::Interval => ScalarType::Interval,
            PgType::Json | PgType::Jsonb => ScalarType::Json,
            PgType::Unsupported(_) => ScalarType::Unsupported,
        }
    }

    /// Decodes the text output of a value of this type.
    pub fn decode(self, text: &[u8]) -> Result<Datum<'_>, ValueError> {
        let invalid = || ValueError::Invalid { ty: self, text: String::from_utf8_lossy(text).into_owned() };
        let text = std::str::from_utf8(text).map_err(|_| ValueError::NotUtf8)?;
        match self {
            PgType::Bool => match text {
                "t" => Ok(Datum::Bool(true)),
                "f" => Ok(Datum::Bool(false)),
                _ => Err(invalid()),
            },
            PgType::Int2 | PgType::Int4 | PgType::Int8 => text.parse().map(Datum::Int).map_err(|_| invalid()),
            PgType::Float4 | PgType::Float8 => decode_float(text).map(Datum::Float).ok_or_else(invalid),
            PgType::Text | PgType::Varchar | PgType::Bpchar | PgType::Name | PgType::Json | PgType::Jsonb => {
                Ok(Datum::Text(Cow::Borrowed(text)))
            }
            PgType::Numeric
            | PgType::Date
            | PgType::Timestamp
            | PgType::TimestampTz
            | PgType::Uuid
            | PgType::Interval => match pgtext::parse(self.scalar_type(), text) {
                Some(Ok(v)) => Ok(v),
                Some(Err(TextError::Numeric(NumericError::NotFinite | NumericError::OutOfRange))) => {
                    Err(ValueError::Numeric { text: text.to_string() })
                }
                _ => Err(invalid()),
            },
            PgType::Unsupported(oid) => Err(ValueError::Unsupported { oid }),
        }
    }
}

fn decode_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Why a column value cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{text:?} is not a valid {ty:?} value")]
    Invalid { ty: PgType, text: String },
    #[error("the value is not valid UTF-8")]
    NotUtf8,
    #[error("the value is in binary format, which denorm does not request")]
    Binary,
    #[error("an unchanged TOASTed value arrived without the old row to take it from; set REPLICA IDENTITY FULL")]
    UnchangedWithoutOldRow,
    #[error("the row has {actual} columns where the table has {expected}")]
    Width { expected: usize, actual: usize },
    #[error("a COPY line is malformed: {0}")]
    Copy(&'static str),
    #[error("numeric value {text} cannot be held exactly by denorm (NaN, Infinity, more than 28 digits after the point or 29 before it); round it in the source (e.g. a numeric(p, s) column with s <= 28) or leave the column out of the views")]
    Numeric { text: String },
    #[error("a value of type OID {oid}, which denorm cannot read")]
    Unsupported { oid: u32 },
    #[error("column {column}: {source}")]
    Column {
        column: String,
        #[source]
        source: Box<ValueError>,
    },
}

impl ValueError {
    /// The value's text as the server sent it, when the error keeps it.
    pub fn raw_text(&self) -> Option<&str> {
        match self {
            ValueError::Invalid { text, .. } | ValueError::Numeric { text } => Some(text),
            ValueError::Column { source, .. } => source.raw_text(),
            _ => None,
        }
    }
}

/// Splits one line of `COPY … TO STDOUT` text format (without its newline)
/// into its fields: `None` for `\N` (NULL), the unescaped bytes otherwise
/// (borrowed when the field has no escape).
pub fn split_copy_line<'a>(line: &'a [u8], out: &mut Vec<Option<Cow<'a, [u8]>>>) -> Result<(), ValueError> {
    out.clear();
    for field in line.split(|&b| b == b'\t') {
        let mut scratch = Vec::new();
        let value = match copy_field(field, &mut scratch)? {
            None => None,
            Some(_) if field.contains(&b'\\') => Some(Cow::Owned(scratch)),
            Some(_) => Some(Cow::Borrowed(field)),
        };
        out.push(value);
    }
    Ok(())
}

/// One field of a COPY text line: `None` for `\N`, else its value, borrowed
/// from `field` or unescaped into `scratch`.
pub fn copy_field<'a>(field: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Option<&'a [u8]>, ValueError> {
    if field == b"\\N" {
        Ok(None)
    } else if field.contains(&b'\\') {
        scratch.clear();
        unescape(field, scratch)?;
        Ok(Some(scratch.as_slice()))
    } else {
        Ok(Some(field))
    }
}

/// COPY text format escapes: `\b \f \n \r \t \v \\`, `\` and 1–3 octal
/// digits, `\x` and 1–2 hex digits; any other escaped character is itself.
fn unescape(field: &[u8], out: &mut Vec<u8>) -> Result<(), ValueError> {
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let &escaped = field.get(i).ok_or(ValueError::Copy("a field ends with a backslash"))?;
        i += 1;
        match escaped {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut value = u32::from(escaped - b'0');
                for _ in 0..2 {
                    match field.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            value = value * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(value as u8);
            }
            b'x' if field.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut value = 0u8;
                for _ in 0..2 {
                    match field.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            value = value * 16 + d as u8;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(value);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dead-letter queue's raw value: the failing column's text, through
    /// the column wrapper; none where the error keeps no text.
    #[test]
    fn raw_text_of_a_value_error() {
        let numeric = ValueError::Numeric { text: "NaN".into() };
        let wrapped = ValueError::Column { column: "price".into(), source: Box::new(numeric) };
        assert_eq!(wrapped.raw_text(), Some("NaN"));
        assert_eq!(ValueError::NotUtf8.raw_text(), None);
    }

    #[test]
    fn decodes_text_output() {
        let cases: &[(PgType, &str, Datum<'static>)] = &[
            (PgType::Bool, "t", Datum::Bool(true)),
            (PgType::Bool, "f", Datum::Bool(false)),
            (PgType::Int2, "-32768", Datum::Int(-32768)),
            (PgType::Int8, "9223372036854775807", Datum::Int(i64::MAX)),
            (PgType::Float8, "0.1", Datum::Float(0.1)),
            (PgType::Float4, "1.00000001e+30", Datum::Float(1.00000001e30)),
            (PgType::Float8, "Infinity", Datum::Float(f64::INFINITY)),
            (PgType::Float8, "-Infinity", Datum::Float(f64::NEG_INFINITY)),
            (PgType::Text, "ünïcode", Datum::text("ünïcode")),
            (PgType::Bpchar, "ab  ", Datum::text("ab  ")),
            (PgType::Varchar, "", Datum::text("")),
            (
                PgType::Interval,
                "P1Y2M-3DT4H5M6.5S",
                Datum::Interval(denorm_types::interval::Interval { months: 14, days: -3, micros: 14_706_500_000 }),
            ),
            (PgType::Interval, "PT0S", Datum::Interval(denorm_types::interval::Interval::default())),
        ];
        for (ty, text, want) in cases {
            assert_eq!(ty.decode(text.as_bytes()).as_ref(), Ok(want), "{ty:?} {text}");
        }
        assert!(matches!(PgType::Float8.decode(b"NaN"), Ok(Datum::Float(f)) if f.is_nan()));
    }

    #[test]
    fn decodes_the_postgres_types() {
        let text = |ty: PgType, s: &str| ty.decode(s.as_bytes()).map(|d| d.pg_text().unwrap_or_else(|| d.to_string()));
        let cases = [
            (PgType::Numeric, "1.50", "1.50"),
            (PgType::Numeric, "-12345678901234567890.12345678", "-12345678901234567890.12345678"),
            (PgType::Numeric, "0", "0"),
            (PgType::Date, "2024-02-29", "2024-02-29"),
            (PgType::Date, "0044-03-15 BC", "0044-03-15 BC"),
            (PgType::Date, "infinity", "infinity"),
            (PgType::Timestamp, "2024-05-01 10:11:12.000001", "2024-05-01 10:11:12.000001"),
            (PgType::TimestampTz, "2024-05-01 10:11:12.5+00", "2024-05-01 10:11:12.5+00"),
            (PgType::TimestampTz, "-infinity", "-infinity"),
            (PgType::Uuid, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        ];
        for (ty, input, want) in cases {
            assert_eq!(text(ty, input), Ok(want.to_string()), "{ty:?} {input}");
        }
        assert_eq!(PgType::Jsonb.decode(r#"{"a": "é"}"#.as_bytes()), Ok(Datum::text(r#"{"a": "é"}"#)));
        for bad in ["NaN", "Infinity", "0.00000000000000000000000000001", "100000000000000000000000000000"] {
            assert!(matches!(PgType::Numeric.decode(bad.as_bytes()), Err(ValueError::Numeric { .. })), "{bad}");
        }
        assert!(matches!(PgType::Date.decode(b"2024-02-30"), Err(ValueError::Invalid { .. })));
        assert_eq!(PgType::Unsupported(600).decode(b"(1,2)"), Err(ValueError::Unsupported { oid: 600 }));
    }

    #[test]
    fn refuses_invalid_values() {
        let cases: &[(PgType, &[u8])] = &[
            (PgType::Bool, b"true"),
            (PgType::Int4, b"1.5"),
            (PgType::Int8, b"99999999999999999999"),
            (PgType::Float8, b"x"),
        ];
        for (ty, text) in cases {
            assert!(matches!(ty.decode(text), Err(ValueError::Invalid { .. })), "{ty:?}");
        }
        assert_eq!(PgType::Text.decode(b"\xff"), Err(ValueError::NotUtf8));
    }

    #[test]
    fn maps_type_oids() {
        let cases = [
            (16, Some(ScalarType::Bool)),
            (21, Some(ScalarType::Int)),
            (23, Some(ScalarType::Int)),
            (20, Some(ScalarType::Int)),
            (700, Some(ScalarType::Float)),
            (701, Some(ScalarType::Float)),
            (25, Some(ScalarType::Text)),
            (1043, Some(ScalarType::Text)),
            (1042, Some(ScalarType::Text)),
            (19, Some(ScalarType::Text)),
            (1700, Some(ScalarType::Numeric)),
            (1082, Some(ScalarType::Date)),
            (1114, Some(ScalarType::Timestamp)),
            (1184, Some(ScalarType::TimestampTz)),
            (2950, Some(ScalarType::Uuid)),
            (114, Some(ScalarType::Json)),
            (3802, Some(ScalarType::Json)),
            (600, None),  // point
            (1007, None), // int4[]
        ];
        for (oid, want) in cases {
            assert_eq!(PgType::supported(oid).map(PgType::scalar_type), want, "oid {oid}");
        }
        assert_eq!(PgType::from_oid(600), PgType::Unsupported(600));
        assert_eq!(PgType::from_oid(600).scalar_type(), ScalarType::Unsupported);
    }

    #[test]
    fn splits_copy_lines() {
        type Fields = Vec<Option<&'static [u8]>>;
        let cases: &[(&[u8], Fields)] = &[
            (b"1\tada", vec![Some(b"1"), Some(b"ada")]),
            (b"1\t\\N\t", vec![Some(b"1"), None, Some(b"")]),
            (b"a\\tb\\nc\\\\d", vec![Some(b"a\tb\nc\\d")]),
            (b"\\101\\x42\\7x", vec![Some(b"AB\x07x")]),
            (b"\\b\\f\\r\\v\\q", vec![Some(b"\x08\x0c\r\x0bq")]),
            (b"\\\\N", vec![Some(b"\\N")]),
        ];
        let mut out = Vec::new();
        for (line, want) in cases {
            split_copy_line(line, &mut out).unwrap();
            let got: Vec<Option<&[u8]>> = out.iter().map(|f| f.as_deref()).collect();
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(line));
        }
        assert_eq!(split_copy_line(b"a\\", &mut out), Err(ValueError::Copy("a field ends with a backslash")));
    }
}
