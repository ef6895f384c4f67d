//! SQLite's core scalar functions (`func.c`), computed as SQLite computes
//! them for values of any storage class: a text function reads a number as
//! its text (`%!.17g` for doubles), a number function reads text by its
//! longest numeric prefix, NULL in gives NULL out unless the function says
//! otherwise (`hex`, `quote`, `char`, `typeof`).
//!
//! Known differences, all outside what SQLite's text can hold in Rust:
//! `char()` of a surrogate code point gives U+FFFD (SQLite writes the
//! invalid UTF-8 bytes); there are no BLOB values.

use std::borrow::Cow;
use std::cmp::Ordering;

use denorm_types::json::{self, sqlite_float_text};
use denorm_types::sqlite_float;
use denorm_types::{Datum, Dialect};

use crate::eval::{text_to_float, text_to_int, EvalError};
use crate::expr::{Func, TrimSide};
use crate::printf;

type Result<T> = std::result::Result<T, EvalError>;

/// `sqlite3_value_text`: the value's text, `None` for NULL.
pub(crate) fn text<'a>(d: &'a Datum<'_>) -> Option<Cow<'a, str>> {
    Some(match d {
        Datum::Null => return None,
        Datum::Text(t) => Cow::Borrowed(&**t),
        Datum::Int(i) => Cow::Owned(i.to_string()),
        Datum::Float(x) => Cow::Owned(sqlite_float_text(*x)),
        Datum::Bool(b) => Cow::Borrowed(if *b { "1" } else { "0" }),
        other => Cow::Owned(other.pg_text().unwrap_or_default()),
    })
}

/// `sqlite3_value_int64`: NULL is 0, a double truncates (saturating), text
/// reads its longest integer prefix.
pub(crate) fn int64(d: &Datum<'_>) -> i64 {
    match d {
        Datum::Int(i) => *i,
        Datum::Bool(b) => i64::from(*b),
        Datum::Float(x) if x.is_nan() => 0,
        Datum::Float(x) => *x as i64,
        Datum::Text(t) => match text_to_int(t, Dialect::Sqlite) {
            Ok(Datum::Int(i)) => i,
            _ => 0,
        },
        _ => 0,
    }
}

/// `sqlite3_value_double`: NULL is 0.0, text reads its longest numeric prefix.
pub(crate) fn double(d: &Datum<'_>) -> f64 {
    match d {
        Datum::Int(i) => *i as f64,
        Datum::Bool(b) => f64::from(u8::from(*b)),
        Datum::Float(x) => *x,
        Datum::Text(t) => match text_to_float(t, Dialect::Sqlite) {
            Ok(Datum::Float(x)) => x,
            _ => 0.0,
        },
        _ => 0.0,
    }
}

/// `sqlite3AtoF(z) > 0`: the whole text (spaces around allowed) is a number
/// `[+-]digits[.digits][e[+-]digits]` (or `.digits`).
pub(crate) fn whole_number(s: &str) -> Option<f64> {
    let t = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let b = t.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let mut n = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        n += digits(&mut i);
    }
    if n == 0 {
        return None;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    t.parse::<f64>().ok()
}

/// Evaluates one of SQLite's scalar functions over its evaluated arguments.
pub(crate) fn call<'r>(func: Func, args: Vec<Datum<'r>>) -> Result<Datum<'r>> {
    let null_in = args.iter().any(Datum::is_null);
    Ok(match func {
        Func::Typeof => Datum::text(type_name(&args[0])),
        Func::Hex => Datum::owned_text(hex(&args[0])),
        Func::Quote => Datum::owned_text(quote(&args[0])),
        Func::Char => Datum::owned_text(args.iter().map(|a| code_point(int64(a))).collect::<String>()),
        Func::Min | Func::Max if null_in => Datum::Null,
        Func::Min | Func::Max => extreme(func == Func::Min, args),
        Func::Sign => sign(&args[0]),
        Func::Unicode => match text(&args[0]).and_then(|t| t.chars().next()) {
            Some(c) => Datum::Int(i64::from(u32::from(c))),
            None => Datum::Null,
        },
        Func::Printf => match text(&args[0]) {
            Some(format) => printf::printf(&format, &args[1..]).map_or(Datum::Null, Datum::owned_text),
            None => Datum::Null,
        },
        Func::Date(kind) => crate::datetime::call(kind, &args)?,
        Func::JsonAccess(kind) => crate::json_path::access(kind, &args[0], &args[1])?,
        // SQLite's concat/concat_ws (3.44): NULLs skipped, numbers as text.
        Func::Concat => Datum::owned_text(args.iter().filter_map(text).collect::<String>()),
        Func::ConcatWs => match text(&args[0]) {
            Some(separator) => {
                let parts: Vec<Cow<'_, str>> = args[1..].iter().filter_map(text).collect();
                Datum::owned_text(parts.join(&*separator))
            }
            None => Datum::Null,
        },
        _ if null_in => Datum::Null,
        Func::Substr => {
            let t = text(&args[0]).unwrap_or_default();
            let length = args.get(2).map(int64);
            Datum::owned_text(substr(&t, int64(&args[1]), length))
        }
        Func::Trim(side) => {
            let t = text(&args[0]).unwrap_or_default();
            let set = args.get(1).map(|s| text(s).unwrap_or_default());
            Datum::owned_text(trim(&t, set.as_deref().unwrap_or(" "), side))
        }
        Func::Replace => return Ok(replace(args)),
        Func::Instr => {
            let (h, n) = (text(&args[0]).unwrap_or_default(), text(&args[1]).unwrap_or_default());
            Datum::Int(instr(&h, &n))
        }
        Func::Round => Datum::Float(round(double(&args[0]), args.get(1).map_or(0, int64))),
        Func::Length => Datum::Int(text(&args[0]).map_or(0, |t| t.chars().count() as i64)),
        Func::OctetLength => Datum::Int(text(&args[0]).map_or(0, |t| t.len() as i64)),
        other => {
            return Err(EvalError::InvalidArgument(format!("{}() is not one of SQLite's functions", other.name())))
        }
    })
}

fn type_name(d: &Datum<'_>) -> &'static str {
    match d {
        Datum::Null => "null",
        Datum::Int(_) | Datum::Bool(_) => "integer",
        Datum::Float(_) => "real",
        _ => "text",
    }
}

fn hex(d: &Datum<'_>) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let t = text(d).unwrap_or_default();
    let mut out = String::with_capacity(t.len() * 2);
    for b in t.bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

fn quote(d: &Datum<'_>) -> String {
    match d {
        Datum::Null => "NULL".to_string(),
        Datum::Float(x) => {
            let mut out = String::new();
            json::write_float(&mut out, *x, Dialect::Sqlite);
            out
        }
        Datum::Text(t) => format!("'{}'", t.replace('\'', "''")),
        other => text(other).unwrap_or_default().into_owned(),
    }
}

fn code_point(x: i64) -> char {
    u32::try_from(x).ok().filter(|&c| c <= 0x10ffff).and_then(char::from_u32).unwrap_or('\u{fffd}')
}

/// SQLite's comparison for scalar min/max: numbers before text, numbers
/// by value.
fn extreme<'r>(min: bool, args: Vec<Datum<'r>>) -> Datum<'r> {
    let mut best: Option<Datum<'r>> = None;
    for a in args {
        best = Some(match best {
            None => a,
            // min keeps the last of equal values, max the first (func.c's
            // `(cmp ^ mask) >= 0`).
            Some(b) if min && b.total_cmp(&a) != Ordering::Less => a,
            Some(b) if !min && b.total_cmp(&a) == Ordering::Less => a,
            Some(b) => b,
        });
    }
    best.unwrap_or(Datum::Null)
}

fn sign<'r>(d: &Datum<'_>) -> Datum<'r> {
    let x = match d {
        Datum::Int(i) => *i as f64,
        Datum::Bool(b) => f64::from(u8::from(*b)),
        Datum::Float(x) => *x,
        Datum::Text(t) => match whole_number(t) {
            Some(x) => x,
            None => return Datum::Null,
        },
        _ => return Datum::Null,
    };
    Datum::Int(if x < 0.0 {
        -1
    } else if x > 0.0 {
        1
    } else {
        0
    })
}

/// `substr(x, p1, p2)` exactly as func.c's `substrFunc` (characters).
fn substr(x: &str, p1: i64, p2: Option<i64>) -> String {
    let mut p1 = p1;
    let mut p2 = p2.unwrap_or(i64::MAX);
    if p1 < 0 {
        let len = x.chars().count() as i64;
        p1 += len;
        if p1 < 0 {
            p2 = if p2 < 0 { 0 } else { p2.saturating_add(p1) };
            p1 = 0;
        }
    } else if p1 > 0 {
        p1 -= 1;
    } else if p2 > 0 {
        p2 -= 1;
    }
    if p2 < 0 {
        if p2 < p1.saturating_neg() {
            p2 = p1;
        } else {
            p2 = p2.saturating_neg();
        }
        p1 -= p2;
    }
    let skip = usize::try_from(p1).unwrap_or(usize::MAX);
    let take = usize::try_from(p2).unwrap_or(usize::MAX);
    x.chars().skip(skip).take(take).collect()
}

fn trim<'a>(x: &'a str, set: &str, side: TrimSide) -> &'a str {
    if set.is_empty() {
        return x;
    }
    let in_set = |c: char| set.contains(c);
    match side {
        TrimSide::Both => x.trim_matches(in_set),
        TrimSide::Leading => x.trim_start_matches(in_set),
        TrimSide::Trailing => x.trim_end_matches(in_set),
    }
}

/// `replace(x, from, to)`: an empty `from` gives the text of `x`.
fn replace(args: Vec<Datum<'_>>) -> Datum<'_> {
    let pattern = text(&args[1]).unwrap_or_default().into_owned();
    if pattern.is_empty() {
        return Datum::owned_text(text(&args[0]).unwrap_or_default().into_owned());
    }
    let to = text(&args[2]).unwrap_or_default().into_owned();
    Datum::owned_text(text(&args[0]).unwrap_or_default().replace(&pattern, &to))
}

fn instr(haystack: &str, needle: &str) -> i64 {
    match haystack.find(needle) {
        Some(byte) => haystack[..byte].chars().count() as i64 + 1,
        None => 0,
    }
}

/// `round(x, n)`: to an integer by adding ±0.5 and truncating; to n digits
/// by printing `%!.nf` (SQLite rounds its 18-digit decimal expansion half
/// up) and reading it back.
pub(crate) fn round(x: f64, n: i64) -> f64 {
    let n = n.clamp(0, 30) as usize;
    if !(-4503599627370496.0..=4503599627370496.0).contains(&x) {
        return x;
    }
    if n == 0 {
        return (x + if x < 0.0 { -0.5 } else { 0.5 }) as i64 as f64;
    }
    fixed(x, n).parse().unwrap_or(x)
}

/// `printf("%!.nf", x)` as SQLite writes it (sign included).
fn fixed(x: f64, n: usize) -> String {
    let negative = x.is_sign_negative() && x != 0.0;
    let body = fixed_digits(x.abs(), n, 20);
    if negative {
        format!("-{body}")
    } else {
        body
    }
}

/// The digits of `printf("%.nf", x)` for finite `x >= 0`, as SQLite's
/// `sqlite3FpDecode` makes them: the 18 significant digits of `x`, rounded
/// half up at `n` digits after the point but to at most `max_significant`
/// digits (16 for `printf`, 20 for `round`'s `%!.nf`), zeros after.
pub(crate) fn fixed_digits(x: f64, n: usize, max_significant: usize) -> String {
    let (mut digits, mut point) = if x == 0.0 { (vec![0], 1) } else { sqlite_float::decimal(x, 18) };
    let keep = point + n as i32;
    if keep < 0 {
        digits = vec![0];
        point = 1;
    } else if (keep as usize) < digits.len() || digits.len() > max_significant {
        let keep = (keep as usize).min(max_significant);
        let round_up = digits.get(keep).is_some_and(|&d| d >= 5);
        digits.truncate(keep);
        if round_up {
            sqlite_float::round_up(&mut digits, &mut point);
        }
    }
    let digit = |i: i32| usize::try_from(i).ok().and_then(|i| digits.get(i)).map_or('0', |d| char::from(b'0' + d));
    let mut out = String::new();
    if point <= 0 {
        out.push('0');
    } else {
        out.extend((0..point).map(digit));
    }
    if n > 0 {
        out.push('.');
        out.extend((point..point + n as i32).map(digit));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substr_follows_func_c() {
        let cases = [
            ("hello", 2, Some(3), "ell"),
            ("hello", 0, Some(2), "h"),
            ("hello", -3, None, "llo"),
            ("hello", -3, Some(-2), "he"),
            ("hello", 3, Some(-2), "he"),
            ("hello", -9, Some(6), "he"),
            ("héllo", 2, Some(2), "él"),
            ("hello", 9, None, ""),
        ];
        for (x, p1, p2, want) in cases {
            assert_eq!(substr(x, p1, p2), want, "substr({x}, {p1}, {p2:?})");
        }
    }

    #[test]
    fn fixed_rounds_half_up_on_the_decimal_expansion() {
        assert_eq!(fixed(0.125, 2), "0.13");
        assert_eq!(fixed(2.5, 0), "3");
        assert_eq!(fixed(-0.001, 2), "-0.00");
        assert_eq!(fixed(9.5, 0), "10");
        assert_eq!(fixed(1234.5, 3), "1234.500");
        assert_eq!(round(2.5, 0), 3.0);
        assert_eq!(round(-2.5, 0), -3.0);
    }
}
