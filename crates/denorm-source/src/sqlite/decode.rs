//! Decoding the change log's row text: the inverse of the triggers'
//! `quote(NEW.a) || ',' || quote(NEW.b) || …`.
//!
//! SQLite's `quote()` renders (checked against SQLite 3.40 and 3.54):
//!
//! ```text
//!  NULL              NULL
//!  INTEGER           -9223372036854775808        decimal, no sign for positives
//!  REAL              1.0  0.1  1.0e+16  4.94065645841247e-324  1.79769313486231562234e+308
//!                    Inf  -Inf (3.40)  9.0e+999  -9.0e+999 (newer)
//!  TEXT              'it''s'                     quotes doubled, anything else verbatim
//!  BLOB              X'00FF'                     upper-case hex digit pairs
//!  TEXT with NUL     TX'610062'                  the triggers' own form: the bytes, as a BLOB
//! ```
//!
//! A REAL always carries a `.` or an exponent (the `!` flag of SQLite's
//! printf), so `1.0` stays a double and never becomes the integer 1. `quote()`
//! prints a double with 15 significant digits when they read back exactly,
//! else with 20, so every finite double round-trips.
//!
//! Traps: text is cut at its first NUL character by `quote()` (SQLite's C
//! string handling), so the triggers log text holding `\0` as `T` followed
//! by `quote()` of its bytes, which round-trips; NaN cannot be stored in
//! SQLite at all (it becomes NULL).

use denorm_types::{Datum, Value};

/// Why a logged change could not be decoded. The change is reported to the
/// caller (never applied, never silently dropped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed logged row at byte {offset}: expected {expected}")]
    Syntax { offset: usize, expected: &'static str },

    #[error("malformed number {text:?} in logged column {column}")]
    Number { column: usize, text: String },

    #[error("logged row has {found} columns, the capture installed logs {expected}")]
    ColumnCount { expected: usize, found: usize },

    #[error("logged row is a {kind} value, not text (was the change log written by hand?)")]
    NotText { kind: &'static str },

    #[error("logged row text is not valid UTF-8")]
    InvalidUtf8,

    #[error("change has neither an old nor a new row")]
    NoRow,
}

/// Decodes one logged row: `expected` comma-separated `quote()` renderings.
/// The empty text is the row with no columns (a table whose views read no
/// column, e.g. only `COUNT(*)`).
pub fn decode_row(text: &str, expected: usize) -> Result<Vec<Value>, DecodeError> {
    let mut values = Vec::with_capacity(expected);
    if !text.is_empty() {
        let mut parser = Parser { text, at: 0 };
        loop {
            values.push(parser.value(values.len())?);
            if !parser.separator()? {
                break;
            }
        }
    }
    if values.len() != expected {
        return Err(DecodeError::ColumnCount { expected, found: values.len() });
    }
    Ok(values)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn syntax(&self, expected: &'static str) -> DecodeError {
        DecodeError::Syntax { offset: self.at, expected }
    }

    /// Consumes a `,` (true) or the end of the text (false).
    fn separator(&mut self) -> Result<bool, DecodeError> {
        match self.rest().as_bytes().first() {
            None => Ok(false),
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(_) => Err(self.syntax("',' or the end of the row")),
        }
    }

    fn value(&mut self, column: usize) -> Result<Value, DecodeError> {
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.text_value();
        }
        if rest.starts_with("X'") || rest.starts_with("x'") {
            return self.blob_value();
        }
        if rest.starts_with("TX'") {
            // Text holding NUL, logged as its bytes (see the triggers).
            self.at += 1;
            return match self.blob_value()? {
                Datum::Blob(bytes) => {
                    String::from_utf8(bytes.into_owned()).map(Datum::owned_text).map_err(|_| DecodeError::InvalidUtf8)
                }
                other => Ok(other),
            };
        }
        let len = rest.find(',').unwrap_or(rest.len());
        let token = &rest[..len];
        let value = match token {
            "" => return Err(self.syntax("a value")),
            "NULL" => Datum::Null,
            _ => number(token).ok_or_else(|| DecodeError::Number { column, text: token.to_string() })?,
        };
        self.at += len;
        Ok(value)
    }

    /// An `X'…'` literal: pairs of hex digits.
    fn blob_value(&mut self) -> Result<Value, DecodeError> {
        let body = &self.text[self.at + 2..];
        let Some(end) = body.find('\'') else {
            self.at = self.text.len();
            return Err(self.syntax("a closing quote"));
        };
        let hex = &body.as_bytes()[..end];
        let digit = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let bytes: Option<Vec<u8>> = if hex.len() % 2 == 0 {
            hex.chunks(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
        } else {
            None
        };
        let Some(bytes) = bytes else {
            self.at += 2;
            return Err(self.syntax("pairs of hexadecimal digits"));
        };
        self.at += 2 + end + 1;
        Ok(Datum::Blob(bytes.into()))
    }

    /// A `'…'` literal with `''` standing for one quote.
    fn text_value(&mut self) -> Result<Value, DecodeError> {
        let body_start = self.at + 1;
        let mut text = String::new();
        let mut from = body_start;
        loop {
            let Some(q) = self.text[from..].find('\'') else {
                self.at = self.text.len();
                return Err(self.syntax("a closing quote"));
            };
            text.push_str(&self.text[from..from + q]);
            let after = from + q + 1;
            if self.text[after..].starts_with('\'') {
                text.push('\'');
                from = after + 1;
            } else {
                self.at = after;
                return Ok(Datum::owned_text(text));
            }
        }
    }
}

/// An INTEGER or REAL rendering; `None` when the token is neither.
fn number(token: &str) -> Option<Value> {
    match token {
        "Inf" | "+Inf" => return Some(Datum::Float(f64::INFINITY)),
        "-Inf" => return Some(Datum::Float(f64::NEG_INFINITY)),
        _ => {}
    }
    // Rust's parsers also accept "inf" and "NaN": admit only what quote() prints.
    if !token.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E')) {
        return None;
    }
    if token.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        token.parse::<f64>().ok().map(Datum::Float)
    } else {
        token.parse::<i64>().ok().map(Datum::Int)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rusqlite::Connection;

    fn t(s: &str) -> Value {
        Datum::owned_text(s)
    }

    #[test]
    fn decodes_every_rendering() {
        let cases: Vec<(&str, usize, Vec<Value>)> = vec![
            ("", 0, vec![]),
            ("NULL", 1, vec![Datum::Null]),
            ("1,-2,0", 3, vec![Datum::Int(1), Datum::Int(-2), Datum::Int(0)]),
            ("9223372036854775807,-9223372036854775808", 2, vec![Datum::Int(i64::MAX), Datum::Int(i64::MIN)]),
            ("1.0", 1, vec![Datum::Float(1.0)]),
            ("-0.0", 1, vec![Datum::Float(-0.0)]),
            ("1.0e+16,4.94065645841247e-324", 2, vec![Datum::Float(1e16), Datum::Float(5e-324)]),
            ("1.79769313486231562234e+308", 1, vec![Datum::Float(f64::MAX)]),
            ("Inf,-Inf", 2, vec![Datum::Float(f64::INFINITY), Datum::Float(f64::NEG_INFINITY)]),
            ("9.0e+999,-9.0e+999", 2, vec![Datum::Float(f64::INFINITY), Datum::Float(f64::NEG_INFINITY)]),
            ("'it''s','a,b','',NULL", 4, vec![t("it's"), t("a,b"), t(""), Datum::Null]),
            ("'''',''''''", 2, vec![t("'"), t("''")]),
            ("'line\nbreak','żółw 🐢'", 2, vec![t("line\nbreak"), t("żółw 🐢")]),
            ("'NULL',NULL", 2, vec![t("NULL"), Datum::Null]),
            ("X'00FF',X''", 2, vec![Datum::Blob(vec![0, 255].into()), Datum::Blob(vec![].into())]),
        ];
        for (text, expected, values) in cases {
            let got = decode_row(text, expected).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(got.len(), values.len(), "{text:?}");
            for (g, v) in got.iter().zip(&values) {
                assert!(same(g, v), "{text:?}: got {g:?}, want {v:?}");
            }
        }
    }

    #[test]
    fn refuses_malformed_rows() {
        use DecodeError::*;
        let cases: Vec<(&str, usize, DecodeError)> = vec![
            ("1,2", 3, ColumnCount { expected: 3, found: 2 }),
            ("", 1, ColumnCount { expected: 1, found: 0 }),
            ("1", 0, ColumnCount { expected: 0, found: 1 }),
            ("X'0'", 1, Syntax { offset: 2, expected: "pairs of hexadecimal digits" }),
            ("1,X'0G'", 2, Syntax { offset: 4, expected: "pairs of hexadecimal digits" }),
            ("X'00", 1, Syntax { offset: 4, expected: "a closing quote" }),
            ("'open", 1, Syntax { offset: 5, expected: "a closing quote" }),
            ("'a'b", 1, Syntax { offset: 3, expected: "',' or the end of the row" }),
            ("1,", 2, Syntax { offset: 2, expected: "a value" }),
            (",1", 2, Syntax { offset: 0, expected: "a value" }),
            ("abc", 1, Number { column: 0, text: "abc".into() }),
            ("NaN", 1, Number { column: 0, text: "NaN".into() }),
            ("inf", 1, Number { column: 0, text: "inf".into() }),
            ("99999999999999999999", 1, Number { column: 0, text: "99999999999999999999".into() }),
            ("1.2.3", 1, Number { column: 0, text: "1.2.3".into() }),
            ("null", 1, Number { column: 0, text: "null".into() }),
        ];
        for (text, expected, error) in cases {
            assert_eq!(decode_row(text, expected), Err(error), "{text:?}");
        }
    }

    /// Bitwise equality for doubles (so -0.0 and 0.0 differ), as `Row`
    /// identity sees them.
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Datum::Float(x), Datum::Float(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Datum::Null),
            any::<i64>().prop_map(Datum::Int),
            prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(0), Just(-1)].prop_map(Datum::Int),
            // Every bit pattern but NaN: subnormals, -0.0, huge, infinities.
            any::<u64>()
                .prop_map(f64::from_bits)
                .prop_filter("SQLite stores NaN as NULL", |f| !f.is_nan())
                .prop_map(Datum::Float),
            prop_oneof![Just(-0.0), Just(5e-324), Just(f64::MAX), Just(f64::INFINITY), Just(1.0), Just(1e16)]
                .prop_map(Datum::Float),
            ".{0,12}".prop_map(Datum::owned_text),
            // quote() cuts text at NUL: the triggers log such text as bytes.
            "[a\0']{0,6}".prop_map(Datum::owned_text),
            proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Datum::Blob(b.into())),
            "[',\n ab]{0,8}".prop_map(Datum::owned_text),
        ]
    }

    proptest! {
        /// What the triggers' encoding (SQLite's own quote(), text with
        /// NUL as its bytes) prints for bound values decodes to the same
        /// values, bit for bit.
        #[test]
        fn round_trips_sqlite_quote(values in proptest::collection::vec(any_value(), 0..6)) {
            let conn = Connection::open_in_memory().unwrap();
            let text = sqlite_quote(&conn, &values);
            let decoded = decode_row(&text, values.len()).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
            for (d, v) in decoded.iter().zip(&values) {
                prop_assert!(same(d, &expected_after_sqlite(v)), "{:?}: decoded {:?}, bound {:?}", text, d, v);
            }
        }
    }

    /// SQLite's printf drops the sign of -0.0 ("0.0"); that is the value the
    /// log carries.
    fn expected_after_sqlite(v: &Value) -> Value {
        match v {
            Datum::Float(x) if *x == 0.0 => Datum::Float(0.0),
            other => other.clone(),
        }
    }

    fn sqlite_quote(conn: &Connection, values: &[Value]) -> String {
        if values.is_empty() {
            return String::new();
        }
        let sql: Vec<String> =
            (1..=values.len()).map(|i| super::super::triggers::encode_value(&format!("?{i}"))).collect();
        let sql = sql.join("||','||");
        let params: Vec<rusqlite::types::Value> = values.iter().map(crate::sqlite::to_sql_value).collect();
        conn.query_row(&format!("SELECT {sql}"), rusqlite::params_from_iter(params), |r| r.get(0)).unwrap()
    }
}
