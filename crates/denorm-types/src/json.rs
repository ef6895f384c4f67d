//! JSON text exactly as the source databases' JSON functions write it.
//!
//! A [`ScalarType::Json`](crate::ScalarType::Json) value is a
//! [`Datum::Text`] holding JSON text in the source's own layout (so it equals
//! byte for byte what `json_object(…)` returns there, and can be embedded raw
//! in an enclosing document or HTTP response). NULL stays SQL NULL.
//!
//! | | SQLite | PostgreSQL (`json`, not `jsonb`) |
//! |---|---|---|
//! | array | `[1,"a",null]` | `[1, "a", null]` |
//! | object | `{"a":1,"b":2}` | `{"a" : 1, "b" : 2}`; `json_object_agg`: `{ "a" : 1, "b" : 2 }` |
//! | integer | `42` | `42` |
//! | double | `%!.17g` shortened when shorter digits round-trip: `0.1`, `1.0`, `1.0e+300`, `0.33333333333333332`, ±infinity `9.0e+999` | shortest round-trip: `0.1`, `1`, `1e+300`; NaN/Infinity as strings |
//! | text | `"…"` with `\" \\ \b \f \n \r \t` and `\u00XX` for other controls | same |
//! | boolean | (SQLite has none: `1`/`0`) | `true`/`false` |
//! | numeric | — | the exact number with its scale: `1.50` |
//! | date / timestamp / timestamptz | — | `"2024-05-01"`, `"2024-05-01T10:00:00.5"`, `"2024-05-01T10:00:00.5+00:00"` (`to_json`'s ISO 8601; `"infinity"`) |
//! | uuid | — | `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"` |
//!
//! SQLite derives a double's 18 leading digits with its own approximate
//! decimal conversion (`sqlite3FpDecode`); here they are exact, so in rare
//! cases the 17th digit may differ by one. The value parses to the same or
//! the adjacent double.

use crate::{Datum, Dialect};

/// Appends `s` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if c < ' ' => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push_str(escape);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends one SQL value as a JSON value. `raw` marks a value of type JSON:
/// its text is embedded as it is; other text becomes a JSON string.
pub fn write_datum(out: &mut String, d: &Datum<'_>, raw: bool, dialect: Dialect) {
    match d {
        Datum::Null => out.push_str("null"),
        Datum::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Datum::Int(i) => out.push_str(&i.to_string()),
        Datum::Float(x) => write_float(out, *x, dialect),
        Datum::Text(t) if raw => out.push_str(t),
        Datum::Text(t) => write_string(out, t),
        Datum::Numeric(n) => crate::numeric::write(out, *n),
        Datum::Date(d) => {
            out.push('"');
            crate::temporal::write_json_date(out, *d);
            out.push('"');
        }
        Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            out.push('"');
            crate::temporal::write_json_timestamp(out, *t, matches!(d, Datum::TimestampTz(_)));
            out.push('"');
        }
        Datum::Uuid(u) => {
            out.push('"');
            crate::write_uuid(out, u);
            out.push('"');
        }
        // PostgreSQL's text (`IntervalStyle = postgres`): `"1 day 02:00:00"`.
        Datum::Interval(i) => {
            out.push('"');
            crate::interval::write(out, *i);
            out.push('"');
        }
        // SQLite's JSON functions refuse a BLOB (the evaluator fails the view
        // first); anywhere else it is PostgreSQL's bytea text, `"\\x00ff"`.
        Datum::Blob(b) => {
            out.push_str("\"\\\\x");
            write_hex(out, b);
            out.push('"');
        }
    }
}

/// Appends `bytes` as lower-case hexadecimal digits.
pub fn write_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// Appends a double as the dialect's JSON functions print it.
pub fn write_float(out: &mut String, x: f64, dialect: Dialect) {
    match dialect {
        Dialect::Sqlite => write_sqlite_float(out, x),
        Dialect::Postgres => write_postgres_float(out, x),
    }
}

/// SQLite's text for a double wherever it converts one to text (`CAST(x AS
/// TEXT)`, `x || ''`, a text function's argument): `printf("%!.17g")`, the
/// same digits as its JSON output, but infinities as `Inf`/`-Inf`.
pub fn sqlite_float_text(x: f64) -> String {
    if x.is_infinite() {
        return if x < 0.0 { "-Inf" } else { "Inf" }.to_string();
    }
    let mut out = String::new();
    write_sqlite_float(&mut out, x);
    out
}

/// Significant digits (no leading or trailing zeros) and the decimal
/// exponent of the first digit: `x = 0.d1d2… × 10^(point)`.
struct Decimal {
    digits: Vec<u8>,
    point: i32,
}

impl Decimal {
    /// The shortest digits that read back as `x` (finite, > 0).
    fn shortest(x: f64) -> Decimal {
        Self::parse_scientific(&format!("{x:e}"))
    }

    fn parse_scientific(s: &str) -> Decimal {
        let (mantissa, exponent) = s.split_once('e').expect("scientific notation");
        let exponent: i32 = exponent.parse().expect("an exponent");
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect();
        while digits.len() > 1 && digits.last() == Some(&0) {
            digits.pop();
        }
        Decimal { digits, point: exponent + 1 }
    }

    fn value(&self) -> f64 {
        let text: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        format!("0.{text}e{}", self.point).parse().unwrap_or(f64::NAN)
    }
}

/// SQLite's `printf("%!.17g")` of a double (its JSON functions' format).
fn write_sqlite_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("null");
        return;
    }
    if x < 0.0 {
        out.push('-');
    }
    let x = x.abs();
    if x.is_infinite() {
        out.push_str("9.0e+999");
        return;
    }
    if x == 0.0 {
        out.push_str("0.0");
        return;
    }
    let decimal = sqlite_digits(x);
    // `%g` with precision 17: exponent form below 1e-4 or from 1e17.
    let exponent = decimal.point - 1;
    let text: String = decimal.digits.iter().map(|d| char::from(b'0' + d)).collect();
    if !(-4..=16).contains(&exponent) {
        out.push_str(&text[..1]);
        out.push('.');
        out.push_str(if text.len() > 1 { &text[1..] } else { "0" });
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    } else {
        write_positional(out, &text, decimal.point, ".0");
    }
}

/// `digits` with the decimal point after `point` digits; `bare` is appended
/// when the number would otherwise have no fractional part.
fn write_positional(out: &mut String, digits: &str, point: i32, bare: &str) {
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(digits);
    } else {
        let point = point as usize;
        if digits.len() > point {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        } else {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
            out.push_str(bare);
        }
    }
}

/// The digits `sqlite3FpDecode(x, 17, 20)` keeps: 18 digits, rounded to 17,
/// unless a run of 9s or 0s from the 15th digit on can be rounded away and
/// the shorter text still reads back as `x`.
fn sqlite_digits(x: f64) -> Decimal {
    // SQLite's own digits (18 or 19 of them, the 18th not always correctly
    // rounded): its text is made from these, not from the exact ones.
    let (z, point) = crate::sqlite_float::decimal(x, 18);
    let full = Decimal { digits: z.clone(), point };
    let shorter = |keep: usize, round_up: bool| -> Option<Decimal> {
        let mut digits = z[..keep].to_vec();
        let mut point = full.point;
        if round_up {
            crate::sqlite_float::round_up(&mut digits, &mut point);
        }
        if digits.is_empty() {
            digits.push(1);
            point += 1;
        }
        let d = Decimal { digits, point };
        (d.value() == x).then_some(d)
    };
    let candidate = if z[15] == 9 && z[14] == 9 {
        let mut jj = 14;
        while jj > 0 && z[jj - 1] == 9 {
            jj -= 1;
        }
        shorter(jj, true)
    } else if full.point >= z.len() as i32 || (z[15] == 0 && z[14] == 0 && z[13] == 0) {
        let mut jj = 13;
        while jj > 1 && z[jj - 1] == 0 {
            jj -= 1;
        }
        shorter(jj, false)
    } else {
        None
    };
    let mut decimal = candidate.unwrap_or_else(|| {
        // Round the 18 digits to 17 (a second rounding, as SQLite does).
        let mut digits = z[..17].to_vec();
        let mut point = full.point;
        if z[17] >= 5 {
            let mut i = 17;
            loop {
                if i == 0 {
                    digits.insert(0, 1);
                    point += 1;
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
        Decimal { digits, point }
    });
    while decimal.digits.len() > 1 && decimal.digits.last() == Some(&0) {
        decimal.digits.pop();
    }
    decimal
}

/// PostgreSQL's `float8out` (shortest round-trip digits, `%g`-style layout
/// with exponents below -4 or from 15); non-finite values are JSON strings.
fn write_postgres_float(out: &mut String, x: f64) {
    if x.is_nan() {
        out.push_str("\"NaN\"");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" });
        return;
    }
    if x.is_sign_negative() && x != 0.0 {
        out.push('-');
    }
    let x = x.abs();
    if x == 0.0 {
        out.push('0');
        return;
    }
    let decimal = Decimal::shortest(x);
    let exponent = decimal.point - 1;
    let text: String = decimal.digits.iter().map(|d| char::from(b'0' + d)).collect();
    if !(-4..15).contains(&exponent) {
        out.push_str(&text[..1]);
        if text.len() > 1 {
            out.push('.');
            out.push_str(&text[1..]);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    } else {
        write_positional(out, &text, decimal.point, "");
    }
}

/// The punctuation of one JSON construct in one dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub open: &'static str,
    pub separator: &'static str,
    /// Between an object member's key and value.
    pub colon: &'static str,
    pub close: &'static str,
}

/// Which function builds the text (PostgreSQL lays them out differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construct {
    /// `json_array`, `json_build_array`, `json_group_array`, `json_agg`.
    Array,
    /// `json_object`, `json_build_object`.
    Object,
    /// `json_group_object`, `json_object_agg`.
    ObjectAggregate,
}

impl Construct {
    pub fn layout(self, dialect: Dialect) -> Layout {
        match (dialect, self) {
            (Dialect::Sqlite, Construct::Array) => Layout { open: "[", separator: ",", colon: "", close: "]" },
            (Dialect::Sqlite, _) => Layout { open: "{", separator: ",", colon: ":", close: "}" },
            (Dialect::Postgres, Construct::Array) => Layout { open: "[", separator: ", ", colon: "", close: "]" },
            (Dialect::Postgres, Construct::Object) => Layout { open: "{", separator: ", ", colon: " : ", close: "}" },
            (Dialect::Postgres, Construct::ObjectAggregate) => {
                Layout { open: "{ ", separator: ", ", colon: " : ", close: " }" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x, Dialect::Sqlite);
        s
    }

    fn postgres(x: f64) -> String {
        let mut s = String::new();
        write_float(&mut s, x, Dialect::Postgres);
        s
    }

    /// Expected texts printed by SQLite 3.54 (`SELECT json_array(…)`).
    #[test]
    fn doubles_print_as_sqlite_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1e300, "1.0e+300"),
            (1.0 / 3.0, "0.33333333333333332"),
            (2.0 / 3.0, "0.66666666666666663"),
            (100.0, "100.0"),
            (1e14, "100000000000000.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "10000000000000000.0"),
            (1e17, "1.0e+17"),
            (1.25e16, "12500000000000000.0"),
            (3e16, "30000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (12345678901234567.0, "12345678901234568.0"),
            (1.2345678901234568e20, "1.2345678901234568e+20"),
            (-0.0, "0.0"),
            (2.5e-7, "2.5e-07"),
            (1e-5, "1.0e-05"),
            (0.0001, "0.0001"),
            (0.000123, "0.000123"),
            (9007199254740993.0, "9007199254740992.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123456.789, "123456.789"),
            (5e-324, "4.9406564584124654e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (1e100 / 3.0, "3.3333333333333332e+99"),
            (1.0 / 7.0, "0.14285714285714285"),
            (1e-10 / 3.0, "3.3333333333333335e-11"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (f64::INFINITY, "9.0e+999"),
            (f64::NEG_INFINITY, "-9.0e+999"),
            (1.1, "1.1"),
            (4.35, "4.35"),
            (0.07, "0.07"),
            (-2.5, "-2.5"),
            (1e23, "1.0e+23"),
        ];
        for &(x, want) in cases {
            assert_eq!(sqlite(x), want, "{x:e}");
        }
    }

    #[test]
    fn doubles_print_as_postgres_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (1.0, "1"),
            (1e300, "1e+300"),
            (1e15, "1e+15"),
            (1e14, "100000000000000"),
            (1e-5, "1e-05"),
            (-2.5, "-2.5"),
            (f64::NAN, "\"NaN\""),
        ];
        for &(x, want) in cases {
            assert_eq!(postgres(x), want, "{x:e}");
        }
    }

    #[test]
    fn strings_escape_as_sqlite_escapes_them() {
        let mut s = String::new();
        write_string(&mut s, "x\"\\\u{1}\u{7f}\u{2028}é\u{1f}\t\n\r\u{8}\u{c}/");
        assert_eq!(s, "\"x\\\"\\\\\\u0001\u{7f}\u{2028}é\\u001f\\t\\n\\r\\b\\f/\"");
    }

    #[test]
    fn raw_json_is_embedded_and_text_is_quoted() {
        let mut s = String::new();
        write_datum(&mut s, &Datum::text("[1]"), true, Dialect::Sqlite);
        write_datum(&mut s, &Datum::text("[1]"), false, Dialect::Sqlite);
        write_datum(&mut s, &Datum::Null, false, Dialect::Sqlite);
        write_datum(&mut s, &Datum::Bool(true), false, Dialect::Postgres);
        assert_eq!(s, "[1]\"[1]\"nulltrue");
    }
}
