//! PostgreSQL's `interval`: [`Interval`] (months, days and microseconds,
//! kept apart as PostgreSQL keeps them: a month is not a number of days),
//! read from text as PostgreSQL 15's `interval_in` reads it ([`parse`]:
//! units and their abbreviations, fractions spilling into smaller units,
//! `hh:mm:ss`, `ago`) or from its ISO 8601 output ([`parse_iso8601`], the
//! form the source sessions ask for), written as PostgreSQL writes it under
//! `IntervalStyle = postgres` ([`write`]: `1 year 2 mons -3 days +04:05:06.5`),
//! and compared as PostgreSQL compares intervals: by their span with a month
//! of 30 days and a day of 24 hours ([`Interval::span`]), so `'1 day'`
//! equals `'24 hours'`.

use std::cmp::Ordering;

/// A PostgreSQL interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interval {
    pub months: i32,
    pub days: i32,
    pub micros: i64,
}

/// Microseconds per day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

impl Interval {
    /// `-interval`, or `None` when a field has no negation.
    pub fn negated(self) -> Option<Interval> {
        Some(Interval {
            months: self.months.checked_neg()?,
            days: self.days.checked_neg()?,
            micros: self.micros.checked_neg()?,
        })
    }

    /// The span PostgreSQL compares (`interval_cmp_value`): months of 30
    /// days, days of 24 hours, in microseconds.
    pub fn span(self) -> i128 {
        (i128::from(self.months) * 30 + i128::from(self.days)) * i128::from(MICROS_PER_DAY) + i128::from(self.micros)
    }

    /// PostgreSQL's order of intervals (by [`Interval::span`]).
    pub fn pg_cmp(self, other: Interval) -> Ordering {
        self.span().cmp(&other.span())
    }

    /// The one interval of each span that equality keys hold (GROUP BY,
    /// DISTINCT, join keys): whole days and the time of day, no months
    /// (`'1 mon'` keys as `'30 days'`, `'25 hours'` as `'1 day 01:00:00'`;
    /// the form `timestamp - timestamp` gives). Months absorb whole 30-day
    /// runs only when the days would not fit.
    pub fn key_form(self) -> Interval {
        let span = self.span();
        let day = i128::from(MICROS_PER_DAY);
        let days = span / day;
        let clamp = |v: i128| v.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
        let months = if i32::try_from(days).is_ok() { 0 } else { clamp(days / 30) };
        let rest = clamp(days - months * 30);
        // Beyond about 5.8 million years of span no key form exists; such
        // intervals key as they are.
        match i64::try_from(span - (months * 30 + rest) * day) {
            Ok(micros) => Interval { months: months as i32, days: rest as i32, micros },
            Err(_) => self,
        }
    }
}

const MICROS_PER_SECOND: f64 = 1_000_000.0;

/// A unit of an interval literal.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    /// Months per unit (year 12, decade 120, …).
    Months(i64),
    /// Days per unit (day 1, week 7).
    Days(i64),
    /// Microseconds per unit.
    Micros(i64),
}

fn unit(name: &str) -> Option<Unit> {
    Some(match name.to_ascii_lowercase().as_str() {
        "y" | "yr" | "yrs" | "year" | "years" => Unit::Months(12),
        "dec" | "decs" | "decade" | "decades" => Unit::Months(120),
        "c" | "cent" | "century" | "centuries" => Unit::Months(1200),
        "mil" | "mils" | "millennium" | "millennia" => Unit::Months(12_000),
        "mon" | "mons" | "month" | "months" => Unit::Months(1),
        "w" | "week" | "weeks" => Unit::Days(7),
        "d" | "day" | "days" => Unit::Days(1),
        "h" | "hr" | "hrs" | "hour" | "hours" => Unit::Micros(3_600_000_000),
        "m" | "min" | "mins" | "minute" | "minutes" => Unit::Micros(60_000_000),
        "s" | "sec" | "secs" | "second" | "seconds" => Unit::Micros(1_000_000),
        "ms" | "msec" | "msecs" | "millisecond" | "milliseconds" => Unit::Micros(1_000),
        "us" | "usec" | "usecs" | "microsecond" | "microseconds" => Unit::Micros(1),
        _ => return None,
    })
}

/// The unit of `INTERVAL '…' <field>` (a bare number takes it).
pub fn field_unit(field: &str) -> Option<&'static str> {
    Some(match field.to_ascii_lowercase().as_str() {
        "year" => "year",
        "month" => "month",
        "day" => "day",
        "hour" => "hour",
        "minute" => "minute",
        "second" => "second",
        _ => return None,
    })
}

/// Fields being summed, wide enough to check for overflow once.
#[derive(Default)]
struct Sum {
    months: i64,
    days: i64,
    micros: i128,
}

impl Sum {
    /// `value` (integer part `whole`, fraction `fraction` of the same sign)
    /// of `unit`, spilling fractions as PostgreSQL does.
    fn add(&mut self, whole: i64, fraction: f64, unit: Unit) -> Option<()> {
        match unit {
            Unit::Months(per) => {
                self.months = self.months.checked_add(whole.checked_mul(per)?)?;
                if per == 1 {
                    // A fraction of a month is 30 days (then time).
                    self.spill_days(fraction * 30.0)?;
                } else {
                    self.months = self.months.checked_add((fraction * per as f64).round_ties_even() as i64)?;
                }
            }
            Unit::Days(per) => {
                self.days = self.days.checked_add(whole.checked_mul(per)?)?;
                self.spill_days(fraction * per as f64)?;
            }
            Unit::Micros(per) => {
                let micros = i128::from(whole) * i128::from(per) + (fraction * per as f64).round_ties_even() as i128;
                self.micros = self.micros.checked_add(micros)?;
            }
        }
        Some(())
    }

    /// Whole days of `days` to days, the rest to microseconds.
    fn spill_days(&mut self, days: f64) -> Option<()> {
        let whole = days.trunc();
        self.days = self.days.checked_add(whole as i64)?;
        let micros = ((days - whole) * MICROS_PER_DAY as f64).round_ties_even() as i128;
        self.micros = self.micros.checked_add(micros)?;
        Some(())
    }

    fn finish(self, negate: bool) -> Option<Interval> {
        let sign = if negate { -1 } else { 1 };
        Some(Interval {
            months: i32::try_from(self.months.checked_mul(sign)?).ok()?,
            days: i32::try_from(self.days.checked_mul(sign)?).ok()?,
            micros: i64::try_from(self.micros.checked_mul(i128::from(sign))?).ok()?,
        })
    }
}

/// Parses an interval literal; `bare` is the unit a number without one
/// takes (seconds unless `INTERVAL '…' DAY` etc. says).
pub fn parse(text: &str, bare: &str) -> Result<Interval, String> {
    let bad = || format!("invalid input syntax for type interval: \"{text}\"");
    let mut sum = Sum::default();
    let mut negate = false;
    let mut tokens = text.split_whitespace().peekable();
    if tokens.peek() == Some(&"@") {
        tokens.next();
    }
    let mut seen_any = false;
    while let Some(token) = tokens.next() {
        if negate {
            return Err(bad());
        }
        if token.eq_ignore_ascii_case("ago") {
            if !seen_any {
                return Err(bad());
            }
            negate = true;
            continue;
        }
        seen_any = true;
        if token.contains(':') {
            time(token, &mut sum).ok_or_else(bad)?;
            continue;
        }
        let split = token.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(token.len());
        let (number, glued) = token.split_at(split);
        let name = if glued.is_empty() {
            match tokens.peek() {
                Some(next) if unit(next).is_some() => tokens.next().unwrap_or(bare),
                _ => bare,
            }
        } else {
            glued
        };
        let unit = unit(name).ok_or_else(bad)?;
        let (whole, fraction) = number_parts(number).ok_or_else(bad)?;
        sum.add(whole, fraction, unit).ok_or_else(|| "interval out of range".to_string())?;
    }
    if !seen_any {
        return Err(bad());
    }
    sum.finish(negate).ok_or_else(|| "interval out of range".to_string())
}

/// `[+-]digits[.digits]` as (integer part, signed fraction).
fn number_parts(number: &str) -> Option<(i64, f64)> {
    let (negative, digits) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !ok(int) || !ok(frac) {
        return None;
    }
    let whole: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let fraction: f64 = if frac.is_empty() { 0.0 } else { format!("0.{frac}").parse().ok()? };
    Some(if negative { (-whole, -fraction) } else { (whole, fraction) })
}

/// `[+-]hh:mm[:ss[.ffffff]]` (or `mm:ss.fff` when the second part has a
/// fraction) added to `sum`.
fn time(token: &str, sum: &mut Sum) -> Option<()> {
    let (negative, rest) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let int =
        |s: &str| -> Option<i64> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())? };
    let seconds = |s: &str| -> Option<i128> {
        let (whole, frac) = number_parts(s)?;
        if whole < 0 || frac < 0.0 {
            return None;
        }
        Some(i128::from(whole) * 1_000_000 + (frac * MICROS_PER_SECOND).round_ties_even() as i128)
    };
    let micros = match parts.as_slice() {
        [m, s] if s.contains('.') => i128::from(int(m)?) * 60_000_000 + seconds(s)?,
        [h, m] => (i128::from(int(h)?) * 60 + i128::from(int(m)?)) * 60_000_000,
        [h, m, s] => (i128::from(int(h)?) * 60 + i128::from(int(m)?)) * 60_000_000 + seconds(s)?,
        _ => return None,
    };
    sum.micros = sum.micros.checked_add(if negative { -micros } else { micros })?;
    Some(())
}

/// Parses PostgreSQL's ISO 8601 interval output (`IntervalStyle =
/// iso_8601`): `P[nY][nM][nD][T[nH][nM][n[.f]S]]`, each number signed
/// (`P-1Y2M-3DT-4H-5M-6.5S`), `PT0S` for zero.
pub fn parse_iso8601(text: &str) -> Option<Interval> {
    let rest = text.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut out = Interval::default();
    let mut any = false;
    for (number, unit) in designators(date)? {
        let n: i32 = number.parse().ok()?;
        match unit {
            'Y' => out.months = out.months.checked_add(n.checked_mul(12)?)?,
            'M' => out.months = out.months.checked_add(n)?,
            'D' => out.days = n,
            _ => return None,
        }
        any = true;
    }
    for (number, unit) in time.map(designators).unwrap_or(Some(Vec::new()))? {
        let micros: i64 = match unit {
            'H' => number.parse::<i64>().ok()?.checked_mul(3_600_000_000)?,
            'M' => number.parse::<i64>().ok()?.checked_mul(60_000_000)?,
            'S' => seconds_micros(number)?,
            _ => return None,
        };
        out.micros = out.micros.checked_add(micros)?;
        any = true;
    }
    any.then_some(out)
}

/// `[-]digits[.digits]` seconds as microseconds.
fn seconds_micros(number: &str) -> Option<i64> {
    let (negative, digits) = match number.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, number),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let fraction: i64 = if fraction.is_empty() { 0 } else { format!("{fraction:0<6}").parse().ok()? };
    let micros = whole.checked_mul(1_000_000)?.checked_add(fraction)?;
    Some(if negative { -micros } else { micros })
}

/// `1Y-2M3D` as `[("1", 'Y'), ("-2", 'M'), ("3", 'D')]`.
fn designators(text: &str) -> Option<Vec<(&str, char)>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if c.is_ascii_alphabetic() {
            if i == start {
                return None;
            }
            out.push((&text[start..i], c));
            start = i + 1;
        }
    }
    (start == text.len()).then_some(out)
}

/// Appends `i` as PostgreSQL writes an interval under `IntervalStyle =
/// postgres` (`EncodeInterval`): `1 year 2 mons 3 days 04:05:06`, a sign
/// on a part after a negative one (`-1 days +02:00:00`), `00:00:00` for zero.
pub fn write(out: &mut String, i: Interval) {
    use std::fmt::Write;
    let (years, months) = (i.months / 12, i.months % 12);
    let mut is_zero = true;
    let mut is_before = false;
    for (value, unit) in [(i64::from(years), "year"), (i64::from(months), "mon"), (i64::from(i.days), "day")] {
        if value == 0 {
            continue;
        }
        let space = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let plural = if value != 1 { "s" } else { "" };
        let _ = write!(out, "{space}{plus}{value} {unit}{plural}");
        is_before = value < 0;
        is_zero = false;
    }
    let hours = i.micros / 3_600_000_000;
    let minutes = i.micros / 60_000_000 % 60;
    let seconds = i.micros / 1_000_000 % 60;
    let fraction = i.micros % 1_000_000;
    if is_zero || i.micros != 0 {
        let negative = i.micros < 0;
        let space = if is_zero { "" } else { " " };
        let sign = if negative {
            "-"
        } else if is_before {
            "+"
        } else {
            ""
        };
        let _ = write!(
            out,
            "{space}{sign}{:02}:{:02}:{:02}",
            hours.unsigned_abs(),
            minutes.unsigned_abs(),
            seconds.unsigned_abs()
        );
        if fraction != 0 {
            let digits = format!("{:06}", fraction.unsigned_abs());
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
    }
}

/// [`write`] into a new string.
pub fn to_string(i: Interval) -> String {
    let mut out = String::new();
    write(&mut out, i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
    }

    proptest! {
        /// No text panics the parsers.
        #[test]
        fn never_panics(text in "[-+@ 0-9.:a-zA-Z]{0,40}") {
            let _ = parse(&text, "second");
            let _ = parse(&text, "day");
            let _ = parse_iso8601(&text);
        }

        /// The key form has the same span, and equal spans have one key form.
        #[test]
        fn key_form_keeps_the_span(months in -1_000_000_000..1_000_000_000i32, days in any::<i32>(), micros in any::<i64>()) {
            let i = iv(months, days, micros);
            prop_assert_eq!(i.key_form().span(), i.span());
            let shifted = iv(months, days.saturating_sub(1), micros.saturating_add(MICROS_PER_DAY));
            if shifted.span() == i.span() {
                prop_assert_eq!(shifted.key_form(), i.key_form());
            }
        }
    }

    #[test]
    fn literals_read_as_postgresql_reads_them() {
        let hour = 3_600_000_000;
        let cases = [
            ("90 days", iv(0, 90, 0)),
            ("1 year 2 mons 3 days 04:05:06", iv(14, 3, 4 * hour + 5 * 60_000_000 + 6_000_000)),
            ("1.5 days", iv(0, 1, 12 * hour)),
            ("1.5 weeks", iv(0, 10, 12 * hour)),
            ("1.5 months", iv(1, 15, 0)),
            ("1.5 years", iv(18, 0, 0)),
            ("-2 hours 30 minutes", iv(0, 0, -2 * hour + 30 * 60_000_000)),
            ("3 days ago", iv(0, -3, 0)),
            ("@ 1 day", iv(0, 1, 0)),
            ("1day", iv(0, 1, 0)),
            ("90", iv(0, 0, 90_000_000)),
            ("-01:30", iv(0, 0, -90 * 60_000_000)),
            ("1 MONTH", iv(1, 0, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text, "second"), Ok(want), "{text}");
        }
        assert_eq!(parse("90", "day"), Ok(iv(0, 90, 0)));
        assert_eq!(parse("2562047 hours 1 us", "second"), Ok(iv(0, 0, 2_562_047 * hour + 1)));
        assert!(parse("3000000000 years", "second").is_err());
        for bad in ["", "days", "1 fortnight", "1 day ago ago", "P1D", "1:2:3:4"] {
            assert!(parse(bad, "second").is_err(), "{bad}");
        }
    }

    #[test]
    fn written_as_postgresql_writes_it() {
        let hour = 3_600_000_000;
        let cases = [
            (iv(0, 0, 0), "00:00:00"),
            (iv(14, 3, 4 * hour + 5 * 60_000_000 + 6_500_000), "1 year 2 mons 3 days 04:05:06.5"),
            (iv(-1, 0, 0), "-1 mons"),
            (iv(0, -1, 2 * hour), "-1 days +02:00:00"),
            (iv(12, 1, -1), "1 year 1 day -00:00:00.000001"),
            (iv(-25, 1, 0), "-2 years -1 mons +1 day"),
            (iv(0, 59, 23 * hour), "59 days 23:00:00"),
            (iv(0, 0, 100 * hour), "100:00:00"),
        ];
        for (i, want) in cases {
            assert_eq!(to_string(i), want);
        }
    }

    #[test]
    fn iso8601_output_reads_back() {
        let hour = 3_600_000_000;
        let cases = [
            ("PT0S", iv(0, 0, 0)),
            ("P1Y2M3DT4H5M6.5S", iv(14, 3, 4 * hour + 5 * 60_000_000 + 6_500_000)),
            ("P-1Y-2M3DT-4H-5M-6.000001S", iv(-14, 3, -(4 * hour + 5 * 60_000_000 + 6_000_001))),
            ("P59DT23H", iv(0, 59, 23 * hour)),
            ("PT-0.5S", iv(0, 0, -500_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_iso8601(text), Some(want), "{text}");
        }
        for bad in ["", "P", "1D", "PT", "P1X", "PTS", "P1.5D"] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn compared_by_span() {
        assert_eq!(iv(0, 1, 0).pg_cmp(iv(0, 0, 24 * 3_600_000_000)), Ordering::Equal);
        assert_eq!(iv(1, 0, 0).pg_cmp(iv(0, 30, 0)), Ordering::Equal);
        assert_eq!(iv(1, 0, 0).pg_cmp(iv(0, 31, 0)), Ordering::Less);
        assert_eq!(iv(0, 1, 0).key_form(), iv(0, 0, 24 * 3_600_000_000).key_form());
        assert_eq!(iv(1, 0, 0).key_form(), iv(0, 30, 0));
    }
}
