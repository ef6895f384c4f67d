//! PostgreSQL's `numeric` as [`Datum::Numeric`](crate::Datum::Numeric): an
//! exact decimal ([`rust_decimal::Decimal`]: a 96-bit integer mantissa and a
//! scale of 0–28 digits after the point) that keeps PostgreSQL's *display
//! scale*: `1.50` stays `1.50`, and equals `1.5` in comparisons, keys and
//! joins (see [`key_form`]).
//!
//! Arithmetic is done here on the mantissas in 128-bit integers, exactly, with
//! PostgreSQL's result scales: `+`/`-` the larger input scale, `*` the sum of
//! the scales, `/` and AVG the scale of `select_div_scale` (at least 16
//! significant digits, never less than either input's scale), rounded half
//! away from zero. A result that does not fit (more than 28 digits after the
//! point, or a magnitude of 2^96 ≈ 7.9e28 and beyond) is an error, never a
//! rounded value: [`NumericError::OutOfRange`].
//!
//! Not representable, and refused with an error naming the value: `NaN`,
//! `Infinity` and `-Infinity` (PostgreSQL 14+), and values with more than 28
//! digits after the point or 29 and more before it.

use std::cmp::Ordering;
use std::fmt;

pub use rust_decimal::Decimal;

/// The largest mantissa magnitude: 2^96 − 1.
const MAX_MANTISSA: i128 = (1 << 96) - 1;
/// The largest scale (digits after the point).
pub const MAX_SCALE: u32 = 28;

/// Why a numeric value or result cannot be represented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NumericError {
    #[error("numeric value out of denorm's range (at most 28 digits after the point and a magnitude below 7.9e28)")]
    OutOfRange,
    #[error("numeric NaN and Infinity cannot be represented by denorm")]
    NotFinite,
    #[error("invalid input syntax for type numeric")]
    Syntax,
    #[error("division by zero")]
    DivisionByZero,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Builds a decimal from a mantissa and a scale, refusing what does not fit.
/// Zero has no sign.
pub fn from_parts(mantissa: i128, scale: u32) -> Result<Decimal, NumericError> {
    if scale > MAX_SCALE || mantissa.abs() > MAX_MANTISSA {
        return Err(NumericError::OutOfRange);
    }
    Decimal::try_from_i128_with_scale(mantissa, scale).map_err(|_| NumericError::OutOfRange)
}

/// Parses PostgreSQL's numeric input: optional sign, digits with an
/// optional point, an optional exponent; surrounding spaces allowed.
/// `NaN`/`Infinity` are [`NumericError::NotFinite`].
pub fn parse(text: &str) -> Result<Decimal, NumericError> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "nan" | "infinity" | "+infinity" | "-infinity" | "inf" | "+inf" | "-inf") {
        return Err(NumericError::NotFinite);
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut mantissa: i128 = 0;
    let mut digits = 0usize;
    let mut frac_digits: i64 = 0;
    let mut seen_point = false;
    let mut overflow = false;
    while i < bytes.len() {
        match bytes[i] {
            b'0'..=b'9' => {
                digits += 1;
                match mantissa.checked_mul(10).and_then(|m| m.checked_add(i128::from(bytes[i] - b'0'))) {
                    Some(m) => mantissa = m,
                    None => overflow = true,
                }
                if seen_point {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits == 0 {
        return Err(NumericError::Syntax);
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let rest = &t[i + 1..];
        exponent = rest.parse().map_err(|_| NumericError::Syntax)?;
        i = bytes.len();
        if exponent.abs() > 1000 {
            return Err(NumericError::OutOfRange);
        }
    }
    if i != bytes.len() {
        return Err(NumericError::Syntax);
    }
    if overflow {
        return Err(NumericError::OutOfRange);
    }
    let mut scale = frac_digits - exponent;
    if scale < 0 {
        mantissa = mantissa
            .checked_mul(pow10((-scale) as u32).ok_or(NumericError::OutOfRange)?)
            .ok_or(NumericError::OutOfRange)?;
        scale = 0;
    }
    let scale = u32::try_from(scale).map_err(|_| NumericError::OutOfRange)?;
    from_parts(if negative { -mantissa } else { mantissa }, scale)
}

/// The value with its display scale, as PostgreSQL writes it (`1.50`, `-3`,
/// `0.000`).
pub fn write(out: &mut String, d: Decimal) {
    use std::fmt::Write;
    let _ = write!(out, "{}", Display(d));
}

/// Formats like PostgreSQL's numeric output (no negative zero).
struct Display(Decimal);

impl fmt::Display for Display {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        let mantissa = d.mantissa();
        let scale = d.scale() as usize;
        let digits = mantissa.unsigned_abs().to_string();
        if mantissa < 0 {
            f.write_str("-")?;
        }
        if scale == 0 {
            return f.write_str(&digits);
        }
        let padded =
            if digits.len() <= scale { format!("{}{digits}", "0".repeat(scale + 1 - digits.len())) } else { digits };
        let point = padded.len() - scale;
        write!(f, "{}.{}", &padded[..point], &padded[point..])
    }
}

/// The value as text.
pub fn to_string(d: Decimal) -> String {
    Display(d).to_string()
}

/// `a + b` (or `a - b` when `subtract`), exact, at the larger scale.
pub fn add(a: Decimal, b: Decimal, subtract: bool) -> Result<Decimal, NumericError> {
    let scale = a.scale().max(b.scale());
    let ma = a.mantissa().checked_mul(pow10(scale - a.scale()).ok_or(NumericError::OutOfRange)?);
    let mb = b.mantissa().checked_mul(pow10(scale - b.scale()).ok_or(NumericError::OutOfRange)?);
    let (Some(ma), Some(mb)) = (ma, mb) else { return Err(NumericError::OutOfRange) };
    let m = if subtract { ma.checked_sub(mb) } else { ma.checked_add(mb) };
    from_parts(m.ok_or(NumericError::OutOfRange)?, scale)
}

/// `a * b`, exact, at the sum of the scales.
pub fn mul(a: Decimal, b: Decimal) -> Result<Decimal, NumericError> {
    let m = a.mantissa().checked_mul(b.mantissa()).ok_or(NumericError::OutOfRange)?;
    from_parts(m, a.scale() + b.scale())
}

/// The base-10000 weight and first base-10000 digit of a non-zero value, as
/// PostgreSQL's `select_div_scale` reads them; (0, 0) for zero.
fn weight_and_first_digit(d: Decimal) -> (i64, i128) {
    let m = d.mantissa().unsigned_abs();
    if m == 0 {
        return (0, 0);
    }
    let digits = m.to_string().len() as i64;
    let exponent = digits - 1 - i64::from(d.scale());
    let weight = exponent.div_euclid(4);
    let shift = i64::from(d.scale()) + 4 * weight;
    let first = if shift >= 0 { m / 10u128.pow(shift as u32) } else { m * 10u128.pow((-shift) as u32) };
    (weight, first as i128)
}

/// PostgreSQL's result scale of `a / b` (`select_div_scale` in numeric.c).
pub fn div_scale(a: Decimal, b: Decimal) -> i64 {
    let (w1, f1) = weight_and_first_digit(a);
    let (w2, f2) = weight_and_first_digit(b);
    let mut qweight = w1 - w2;
    if f1 <= f2 {
        qweight -= 1;
    }
    let rscale = 16 - qweight * 4;
    rscale.max(i64::from(a.scale())).max(i64::from(b.scale())).clamp(0, 1000)
}

/// `a / b` at [`div_scale`], rounded half away from zero.
pub fn div(a: Decimal, b: Decimal) -> Result<Decimal, NumericError> {
    if b.is_zero() {
        return Err(NumericError::DivisionByZero);
    }
    let rscale = div_scale(a, b);
    if rscale > i64::from(MAX_SCALE) {
        return Err(NumericError::OutOfRange);
    }
    // q = a.m / 10^sa / (b.m / 10^sb) * 10^rscale = a.m * 10^(rscale + sb - sa) / b.m
    let e = rscale + i64::from(b.scale()) - i64::from(a.scale());
    let (mut n, mut dn) = (a.mantissa(), b.mantissa());
    if e >= 0 {
        n = n.checked_mul(pow10(e as u32).ok_or(NumericError::OutOfRange)?).ok_or(NumericError::OutOfRange)?;
    } else {
        dn = dn.checked_mul(pow10((-e) as u32).ok_or(NumericError::OutOfRange)?).ok_or(NumericError::OutOfRange)?;
    }
    from_parts(div_round(n, dn), rscale as u32)
}

/// `n / d` rounded half away from zero (d ≠ 0, no overflow: |d| ≥ 1).
fn div_round(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.unsigned_abs() >= d.unsigned_abs() - r.unsigned_abs() {
        if (n < 0) != (d < 0) {
            q - 1
        } else {
            q + 1
        }
    } else {
        q
    }
}

/// `a % b` (PostgreSQL: the sign of `a`, at the larger scale).
pub fn rem(a: Decimal, b: Decimal) -> Result<Decimal, NumericError> {
    if b.is_zero() {
        return Err(NumericError::DivisionByZero);
    }
    let scale = a.scale().max(b.scale());
    let ma = a.mantissa().checked_mul(pow10(scale - a.scale()).ok_or(NumericError::OutOfRange)?);
    let mb = b.mantissa().checked_mul(pow10(scale - b.scale()).ok_or(NumericError::OutOfRange)?);
    let (Some(ma), Some(mb)) = (ma, mb) else { return Err(NumericError::OutOfRange) };
    from_parts(ma % mb, scale)
}

/// `-a`.
pub fn negate(a: Decimal) -> Decimal {
    from_parts(-a.mantissa(), a.scale()).unwrap_or(a)
}

/// The value rounded half away from zero to an integer, if it fits i64
/// (PostgreSQL's cast of numeric to bigint).
pub fn to_i64(a: Decimal) -> Option<i64> {
    let rounded = div_round(a.mantissa(), pow10(a.scale())?);
    i64::try_from(rounded).ok()
}

/// The nearest double (PostgreSQL converts through the text form).
pub fn to_f64(a: Decimal) -> f64 {
    to_string(a).parse().unwrap_or(f64::NAN)
}

/// PostgreSQL's cast of a double to numeric: the value printed with 15
/// significant digits (`%.15g`), read back; NaN and infinities refused.
pub fn from_f64(x: f64) -> Result<Decimal, NumericError> {
    if !x.is_finite() {
        return Err(NumericError::NotFinite);
    }
    if x == 0.0 {
        return Ok(Decimal::ZERO);
    }
    let s = format!("{x:.14e}");
    let (mantissa, exponent) = s.split_once('e').ok_or(NumericError::Syntax)?;
    let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
    parse(&format!("{mantissa}e{exponent}"))
}

/// An integer as a numeric of scale 0.
pub fn from_i64(i: i64) -> Decimal {
    Decimal::from(i)
}

/// The form SQL-equal values share: trailing zeros dropped (`1.50` → `1.5`),
/// so that `1.5 = 1.50` in keys, joins and DISTINCT.
pub fn key_form(a: Decimal) -> Decimal {
    let mut m = a.mantissa();
    let mut scale = a.scale();
    while scale > 0 && m % 10 == 0 {
        m /= 10;
        scale -= 1;
    }
    from_parts(m, scale).unwrap_or(a)
}

/// Appends bytes whose lexicographic order is the numeric order (display
/// scale ignored: `1.5` and `1.50` give the same bytes), prefix-free: a sign
/// class (1 negative, 2 zero, 3 positive), then for non-zero values the
/// decimal exponent of the first digit + 128 and the significant digits as
/// bytes 1–10 ended by 0, all inverted for negative values.
pub fn write_sort_key(a: Decimal, out: &mut Vec<u8>) {
    let mantissa = a.mantissa();
    if mantissa == 0 {
        out.push(0x02);
        return;
    }
    out.push(if mantissa < 0 { 0x01 } else { 0x03 });
    let start = out.len();
    let digits = mantissa.unsigned_abs().to_string();
    // value = 0.d1d2… × 10^exponent; |exponent| ≤ 29.
    let exponent = digits.len() as i32 - a.scale() as i32;
    out.push((exponent + 128) as u8);
    out.extend(digits.trim_end_matches('0').bytes().map(|b| b - b'0' + 1));
    out.push(0);
    if mantissa < 0 {
        out[start..].iter_mut().for_each(|b| *b = !*b);
    }
}

/// Numeric comparison, ignoring display scale.
pub fn cmp(a: Decimal, b: Decimal) -> Ordering {
    a.cmp(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Decimal {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_and_writes_with_display_scale() {
        let cases = [
            ("1.50", "1.50"),
            ("-0.00", "0.00"),
            ("  42 ", "42"),
            (".5", "0.5"),
            ("5.", "5"),
            ("+7", "7"),
            ("1.50e1", "15.0"),
            ("1e3", "1000"),
            ("-12345678901234567890.12345678", "-12345678901234567890.12345678"),
            ("0.0000000000000000000000000001", "0.0000000000000000000000000001"),
            ("79228162514264337593543950335", "79228162514264337593543950335"),
        ];
        for (text, want) in cases {
            assert_eq!(to_string(n(text)), want, "{text}");
        }
        assert_eq!(parse("NaN"), Err(NumericError::NotFinite));
        assert_eq!(parse("-Infinity"), Err(NumericError::NotFinite));
        assert_eq!(parse("79228162514264337593543950336"), Err(NumericError::OutOfRange));
        assert_eq!(parse("0.00000000000000000000000000001"), Err(NumericError::OutOfRange));
        assert_eq!(parse("1e29"), Err(NumericError::OutOfRange));
        for bad in ["", "-", "1.2.3", "1x", "e5", "1e"] {
            assert_eq!(parse(bad), Err(NumericError::Syntax), "{bad}");
        }
    }

    #[test]
    fn arithmetic_keeps_postgres_scales() {
        let s = |r: Result<Decimal, NumericError>| r.map(to_string);
        assert_eq!(s(add(n("1.50"), n("2.1"), false)), Ok("3.60".into()));
        assert_eq!(s(add(n("1.50"), n("1.5"), true)), Ok("0.00".into()));
        assert_eq!(s(mul(n("1.50"), n("-2.1"))), Ok("-3.150".into()));
        assert_eq!(s(div(n("1.0"), n("3"))), Ok("0.33333333333333333333".into()));
        assert_eq!(s(div(n("5.50"), n("3"))), Ok("1.8333333333333333".into()));
        assert_eq!(s(div(n("2"), n("3"))), Ok("0.66666666666666666667".into()));
        assert_eq!(s(div(n("-2"), n("3"))), Ok("-0.66666666666666666667".into()));
        assert_eq!(s(div(n("123456789"), n("7"))), Ok("17636684.142857142857".into()));
        assert_eq!(s(div(n("0.00012"), n("7"))), Ok("0.000017142857142857142857".into()));
        assert_eq!(s(div(n("1"), n("0"))), Err(NumericError::DivisionByZero));
        assert_eq!(s(rem(n("-7.5"), n("2"))), Ok("-1.5".into()));
        assert_eq!(s(mul(n("0.00000000000001"), n("0.000000000000001"))), Err(NumericError::OutOfRange));
        assert_eq!(s(add(n("79228162514264337593543950335"), n("1"), false)), Err(NumericError::OutOfRange));
        assert_eq!(to_i64(n("2.5")), Some(3));
        assert_eq!(to_i64(n("-2.5")), Some(-3));
        assert_eq!(to_i64(n("2.49")), Some(2));
        assert_eq!(s(from_f64(0.1)), Ok("0.1".into()));
        assert_eq!(s(from_f64(1e20)), Ok("100000000000000000000".into()));
        assert_eq!(s(from_f64(-1.25)), Ok("-1.25".into()));
        assert_eq!(to_f64(n("0.1")), 0.1);
        assert_eq!(to_string(key_form(n("1.500"))), "1.5");
        assert_eq!(to_string(key_form(n("100"))), "100");
    }
}
