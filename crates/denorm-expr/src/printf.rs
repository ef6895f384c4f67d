//! SQLite's `printf(format, …)` / `format(…)` for the common conversions:
//! `%d %i %x %X %f %s %c %%` with the flags `- + space 0`, a width and a
//! precision. The planner refuses a format that uses anything else
//! ([`check`]), so evaluation never meets an unknown conversion.
//!
//! Arguments convert as SQLite's `sqlite3_value_int64`/`_double`/`_text`
//! do; missing arguments read as NULL (0, 0.0, empty text). A precision
//! on `%s` counts bytes, as SQLite's does, but never cuts a character in
//! two (SQLite would produce invalid UTF-8 there).

use denorm_types::Datum;

use crate::scalar::{double, fixed_digits, int64, text};

/// One conversion of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    /// `+` or ` ` before a non-negative number.
    sign: Option<char>,
    width: usize,
    precision: Option<usize>,
    conversion: char,
}

/// A piece of a parsed format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'f> {
    Literal(&'f str),
    Conversion(Spec),
}

/// Largest width or precision accepted (SQLite allows more, but a view's
/// row would not want it).
const MAX_WIDTH: usize = 1000;

fn parse(format: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = format;
    while let Some(at) = rest.find('%') {
        if at > 0 {
            pieces.push(Piece::Literal(&rest[..at]));
        }
        let (spec, len) = conversion(&rest[at + 1..])?;
        match spec {
            Some(spec) => pieces.push(Piece::Conversion(spec)),
            None => pieces.push(Piece::Literal("%")),
        }
        rest = &rest[at + 1 + len..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Literal(rest));
    }
    Ok(pieces)
}

/// Parses the text after a `%`: the spec (`None` for `%%`) and its length.
fn conversion(s: &str) -> Result<(Option<Spec>, usize), String> {
    let b = s.as_bytes();
    let mut spec = Spec { left: false, zero: false, sign: None, width: 0, precision: None, conversion: 'd' };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' => spec.left = true,
            b'0' => spec.zero = true,
            b'+' => spec.sign = Some('+'),
            b' ' if spec.sign.is_none() => spec.sign = Some(' '),
            b' ' => {}
            _ => break,
        }
        i += 1;
    }
    let number = |i: &mut usize| -> Result<usize, String> {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        let n: usize = s[start..*i].parse().unwrap_or(0);
        if n > MAX_WIDTH {
            return Err(format!("a width or precision above {MAX_WIDTH} is not supported"));
        }
        Ok(n)
    };
    spec.width = number(&mut i)?;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        spec.precision = Some(number(&mut i)?);
    }
    let Some(c) = s[i..].chars().next() else { return Err("the format ends with a lone %".to_string()) };
    match c {
        '%' if i == 0 => Ok((None, 1)),
        'd' | 'i' | 'x' | 'X' | 'f' | 's' => Ok((Some(Spec { conversion: c, ..spec }), i + 1)),
        'c' if spec.precision.is_none() => Ok((Some(Spec { conversion: c, ..spec }), i + 1)),
        other => Err(format!("the conversion %{}{other} is not supported", &s[..i])),
    }
}

/// Checks a format written in a view: `Err` names what is not supported.
pub fn check(format: &str) -> Result<(), String> {
    parse(format).map(|_| ())
}

/// `printf(format, args…)`; `None` when the format is not supported (the
/// planner refuses such formats when they are literals).
pub(crate) fn printf(format: &str, args: &[Datum<'_>]) -> Option<String> {
    let pieces = parse(format).ok()?;
    let mut out = String::new();
    let mut next = args.iter();
    for piece in pieces {
        match piece {
            Piece::Literal(l) => out.push_str(l),
            Piece::Conversion(spec) => {
                let arg = next.next().unwrap_or(&Datum::Null);
                write(&mut out, spec, arg);
            }
        }
    }
    Some(out)
}

fn write(out: &mut String, spec: Spec, arg: &Datum<'_>) {
    let (prefix, body) = match spec.conversion {
        'd' | 'i' => {
            let v = int64(arg);
            let prefix = if v < 0 { Some('-') } else { spec.sign };
            (prefix, v.unsigned_abs().to_string())
        }
        'x' => (None, format!("{:x}", int64(arg) as u64)),
        'X' => (None, format!("{:X}", int64(arg) as u64)),
        'f' => {
            let x = double(arg);
            let prefix = if x < 0.0 { Some('-') } else { spec.sign };
            let body = if x.is_infinite() {
                "Inf".to_string()
            } else {
                fixed_digits(x.abs(), spec.precision.unwrap_or(6), 16)
            };
            (prefix, body)
        }
        's' => {
            let t = text(arg).unwrap_or_default();
            let t = match spec.precision {
                Some(p) if p < t.len() => {
                    let mut end = p;
                    while !t.is_char_boundary(end) {
                        end -= 1;
                    }
                    t[..end].to_string()
                }
                _ => t.into_owned(),
            };
            return pad(out, spec, None, &t, false);
        }
        _ => {
            let c = text(arg).and_then(|t| t.chars().next()).unwrap_or('\0');
            return pad(out, spec, None, &c.to_string(), false);
        }
    };
    let numeric = matches!(spec.conversion, 'd' | 'i' | 'x' | 'X');
    let body = match spec.precision {
        Some(p) if numeric && body.len() < p => format!("{}{body}", "0".repeat(p - body.len())),
        _ => body,
    };
    pad(out, spec, prefix, &body, true)
}

/// Pads to the width: spaces on the left (right with `-`), or zeros after
/// the sign for a number with `0`.
fn pad(out: &mut String, spec: Spec, prefix: Option<char>, body: &str, number: bool) {
    let len = body.len() + usize::from(prefix.is_some());
    let fill = spec.width.saturating_sub(len);
    if spec.left {
        out.extend(prefix);
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && number {
        out.extend(prefix);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(body);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.extend(prefix);
        out.push_str(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let args = [Datum::Int(-42), Datum::text("abc"), Datum::Float(3.14258)];
        let cases = [
            ("%d|%s|%.2f", "-42|abc|3.14"),
            ("%5d|%-5s|%08.3f", "  -42|abc  |0003.143"),
            ("%05d%%", "-0042%"),
            ("%x %c", "ffffffffffffffd6 a"),
            ("%.2s %d", "-4 0"),
        ];
        for (format, want) in cases {
            assert_eq!(printf(format, &args).as_deref(), Some(want), "{format}");
        }
        assert!(check("%e").is_err());
        assert!(check("%*d").is_err());
        assert!(check("50%").is_err());
    }
}
