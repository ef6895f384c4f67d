//! How SQLite reads text as a number. SQLite types values, not columns: an
//! INTEGER column may hold `'abc'`, and every operator converts such values
//! by one of three rules (checked against SQLite 3.54's `vdbe.c`,
//! `vdbemem.c` and `util.c`):
//!
//! | rule | SQLite | used by | `'12'` | `'1.5x'` | `'abc'` |
//! |------|--------|---------|--------|----------|---------|
//! | [`numeric`] | `computeNumericType` | `+ - * / %`, unary `-` | 12 | 1.5 | 0 |
//! | [`numeric_affinity`] | `applyNumericAffinity` | `SUM`/`AVG`/`TOTAL` (`sqlite3_value_numeric_type`) | 12 | text | text |
//! | [`real`] | `sqlite3_value_double` | `abs()`, truth values, a text SUM operand | 12.0 | 1.5 | 0.0 |
//!
//! [`summand`] combines the last two as `SUM` does: `'12'` adds the integer
//! 12, `'1.5x'` the double 1.5 (and the sum becomes a double).
//!
//! All three parse the longest prefix of the form
//! `[space][+-](digits[.digits]|.digits)[(e|E)[+-]digits]` after leading
//! spaces; "clean" means nothing but spaces follows it. SQLite's own decimal
//! conversion keeps only the first 19 significant digits; denorm's is
//! correctly rounded, so the two can differ in the last bit for longer
//! inputs.

use crate::{Datum, Value};

/// SQLite's `sqlite3Isspace`: ASCII space, \t, \n, \v, \f, \r.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The result of reading a number off the front of a text.
struct Prefix {
    value: f64,
    /// Whether any prefix is a number at all.
    found: bool,
    /// A decimal point or an exponent was read.
    fraction: bool,
    /// Nothing but spaces follows the number.
    clean: bool,
}

/// SQLite's `sqlite3AtoF`.
fn parse(text: &str) -> Prefix {
    let bytes = text.as_bytes();
    let mut at = bytes.iter().take_while(|&&b| is_space(b)).count();
    let start = at;
    if matches!(bytes.get(at), Some(b'+' | b'-')) {
        at += 1;
    }
    let digits = |at: usize| bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = digits(at);
    at += whole;
    let mut fraction = false;
    let mut found = whole > 0;
    if bytes.get(at) == Some(&b'.') {
        let decimals = digits(at + 1);
        if decimals > 0 || whole > 0 {
            at += 1 + decimals;
            found = true;
            fraction = true;
        }
    }
    if !found {
        return Prefix { value: 0.0, found: false, fraction: false, clean: false };
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        let exponent = digits(at + 1 + sign);
        if exponent > 0 {
            at += 1 + sign + exponent;
            fraction = true;
        }
    }
    let clean = bytes[at..].iter().all(|&b| is_space(b));
    Prefix { value: decimal(&text[start..at]), found, fraction, clean }
}

/// The double nearest to a decimal of the form `[+-]digits[.digits][e[+-]digits]`
/// (either side of the point may be empty, not both).
fn decimal(number: &str) -> f64 {
    let (mantissa, exponent) = match number.find(['e', 'E']) {
        Some(e) => (&number[..e], &number[e + 1..]),
        None => (number, "0"),
    };
    let (sign, mantissa) = match mantissa.as_bytes().first() {
        Some(b'-') => ("-", &mantissa[1..]),
        Some(b'+') => ("", &mantissa[1..]),
        _ => ("", mantissa),
    };
    let (whole, decimals) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // An exponent past any double's range saturates; keep the digits short.
    let exponent: i64 = exponent.parse().unwrap_or(if exponent.starts_with('-') { -100_000 } else { 100_000 });
    let exponent = exponent.clamp(-100_000, 100_000);
    let whole = if whole.is_empty() { "0" } else { whole };
    let decimals = if decimals.is_empty() { "0" } else { decimals };
    format!("{sign}{whole}.{decimals}e{exponent}").parse().unwrap_or(0.0)
}

/// SQLite's `sqlite3Atoi64`: the integer (saturated) and its return code:
/// -1 no digits, 0 an integer in range, 1 text after it, 2 too large (or 3
/// for exactly 2^63).
fn atoi64(text: &str) -> (i64, i8) {
    let bytes = text.as_bytes();
    let mut at = bytes.iter().take_while(|&&b| is_space(b)).count();
    let negative = bytes.get(at) == Some(&b'-');
    if matches!(bytes.get(at), Some(b'+' | b'-')) {
        at += 1;
    }
    let start = at;
    while bytes.get(at) == Some(&b'0') {
        at += 1;
    }
    let digits = bytes[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut magnitude: u128 = 0;
    for &d in &bytes[at..at + digits.min(20)] {
        magnitude = magnitude * 10 + u128::from(d - b'0');
    }
    let mut rc = if digits == 0 && at == start {
        -1
    } else if bytes[at + digits..].iter().all(|&b| is_space(b)) {
        0
    } else {
        1
    };
    let limit = if negative { 1u128 << 63 } else { (1u128 << 63) - 1 };
    if digits > 19 || magnitude > limit {
        rc = if digits == 19 && magnitude == 1u128 << 63 { 3 } else { 2 };
        return (if negative { i64::MIN } else { i64::MAX }, rc);
    }
    let value = if negative { (magnitude as i128).wrapping_neg() as i64 } else { magnitude as i64 };
    (value, rc)
}

/// Text as an arithmetic operand (`computeNumericType`): an integer when it
/// reads as one (text after it allowed), else the double of its numeric
/// prefix (0 without one: `'abc' + 1` is 1).
pub fn numeric(text: &str) -> Value {
    let prefix = parse(text);
    let (int, rc) = atoi64(text);
    let integral = !prefix.fraction && if prefix.clean { rc == 0 } else { rc <= 1 };
    if integral {
        Datum::Int(int)
    } else {
        Datum::Float(prefix.value)
    }
}

/// Text under NUMERIC affinity (`applyNumericAffinity`, as `SUM` sees its
/// operand): a number only when the whole text is one (spaces around
/// allowed), an integer when it has neither point nor exponent and fits;
/// `None` when the text stays text.
pub fn numeric_affinity(text: &str) -> Option<Value> {
    let prefix = parse(text);
    if !prefix.clean {
        return None;
    }
    if !prefix.fraction {
        let as_int = prefix.value as i64;
        if as_int as f64 == prefix.value && prefix.value.abs() < 9.2e18 {
            return Some(Datum::Int(as_int));
        }
        if let (int, 0) = atoi64(text) {
            return Some(Datum::Int(int));
        }
    }
    Some(Datum::Float(prefix.value))
}

/// What SQLite's `SUM`/`AVG` add for a text value: the number it is under
/// NUMERIC affinity, else (text stays text) its double, which makes the sum
/// a double.
pub fn summand(text: &str) -> Value {
    numeric_affinity(text).unwrap_or_else(|| Datum::Float(real(text)))
}

/// Text as a double (`sqlite3_value_double`): its numeric prefix, 0.0
/// without one.
pub fn real(text: &str) -> f64 {
    let prefix = parse(text);
    if prefix.found {
        prefix.value
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each text with what [`numeric`] and [`numeric_affinity`] make of it
    /// (Rust's `{:?}` of the value, or "text"); the test below checks the
    /// same texts against SQLite itself.
    const CASES: &[(&str, &str, &str)] = &[
        ("12", "12", "12"),
        ("  12  ", "12", "12"),
        ("-7", "-7", "-7"),
        ("+7", "7", "7"),
        ("007", "7", "7"),
        ("12abc", "12", "text"),
        ("1.5x", "1.5", "text"),
        ("1.5", "1.5", "1.5"),
        ("1e3", "1000.0", "1000.0"),
        ("1e", "1", "text"),
        ("1e+", "1", "text"),
        (".5", "0.5", "0.5"),
        ("-.5", "-0.5", "-0.5"),
        ("5.", "5.0", "5.0"),
        (".", "0", "text"),
        ("abc", "0", "text"),
        ("", "0", "text"),
        ("-", "0", "text"),
        ("- 5", "0", "text"),
        ("0x10", "0", "text"),
        ("9223372036854775807", "9223372036854775807", "9223372036854775807"),
        ("9223372036854775808", "9.223372036854776e18", "9.223372036854776e18"),
        ("-9223372036854775808", "-9223372036854775808", "-9223372036854775808"),
        ("99999999999999999999x", "1e20", "text"),
        ("\u{b}3", "3", "3"),
        ("inf", "0", "text"),
        ("1e999", "inf", "inf"),
        ("0.1e1", "1.0", "1.0"),
    ];

    fn show(v: &Value) -> String {
        match v {
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => format!("{f:?}"),
            _ => "text".to_string(),
        }
    }

    #[test]
    fn table_of_conversions() {
        for (text, arithmetic, affinity) in CASES {
            assert_eq!(show(&numeric(text)), *arithmetic, "numeric({text:?})");
            let got = numeric_affinity(text).map_or("text".to_string(), |v| show(&v));
            assert_eq!(got, *affinity, "numeric_affinity({text:?})");
        }
    }

    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Datum::Float(x), Datum::Float(y)) => x.to_bits() == y.to_bits(),
            _ => a == b,
        }
    }

    fn from_sqlite(v: rusqlite::types::Value) -> Value {
        match v {
            rusqlite::types::Value::Integer(i) => Datum::Int(i),
            rusqlite::types::Value::Real(f) => Datum::Float(f),
            other => panic!("not a number: {other:?}"),
        }
    }

    /// Against the bundled SQLite: `x + 0` (arithmetic), `sum(x)` (the
    /// affinity SUM applies, a text operand read as a double) and `abs(x)`.
    #[test]
    fn conversions_agree_with_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let sql = "SELECT ?1 + 0, (SELECT sum(v) FROM (SELECT ?1 AS v)), abs(?1)";
        for (text, _, _) in CASES {
            let (plus, sum, abs): (rusqlite::types::Value, rusqlite::types::Value, f64) =
                conn.query_row(sql, [text], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            let (plus, sum) = (from_sqlite(plus), from_sqlite(sum));
            assert!(same(&numeric(text), &plus), "{text:?} + 0: SQLite {plus:?}, denorm {:?}", numeric(text));
            let ours = summand(text);
            assert!(same(&ours, &sum), "sum({text:?}): SQLite {sum:?}, denorm {ours:?}");
            assert_eq!(real(text).abs().to_bits(), abs.to_bits(), "abs({text:?})");
        }
    }
}
