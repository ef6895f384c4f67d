//! PostgreSQL's constant intervals: `INTERVAL '1 year 2 mons 3 days
//! 04:05:06'` read as PostgreSQL 15's `interval_in` reads it (units and
//! their abbreviations, fractions spilling into smaller units, `hh:mm:ss`,
//! `ago`), and `timestamp + interval` computed as `timestamp_pl_interval`:
//! months first (the day clamped to the month's last), then days, then
//! microseconds.
//!
//! Intervals only appear as constants in arithmetic (denorm has no interval
//! values): the planner parses the literal into an [`Interval`] carried by
//! [`Func::PlusInterval`](crate::Func::PlusInterval).

use denorm_types::temporal;

use crate::eval::EvalError;
use crate::expr::Interval;

const MICROS_PER_SECOND: f64 = 1_000_000.0;
const MICROS_PER_DAY: i64 = 86_400_000_000;

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

fn days_in_month(year: i64, month: u32) -> i64 {
    let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
    temporal::days_from_civil(next_year, next_month, 1) - temporal::days_from_civil(year, month, 1)
}

/// PostgreSQL's first date, 4714-11-24 BC (astronomical year −4713).
fn first_day() -> i64 {
    temporal::days_from_civil(-4713, 11, 24)
}

/// Whether `days` (since 1970-01-01) is a date PostgreSQL can hold.
pub(crate) fn date_in_range(days: i64) -> bool {
    (first_day()..=temporal::days_from_civil(5_874_897, 12, 31)).contains(&days)
}

fn timestamp_in_range(micros: i64) -> bool {
    let first = i128::from(first_day()) * i128::from(MICROS_PER_DAY);
    let end = i128::from(temporal::days_from_civil(294_277, 1, 1)) * i128::from(MICROS_PER_DAY);
    (first..end).contains(&i128::from(micros))
}

/// `timestamp + interval` as PostgreSQL's `timestamp_pl_interval`.
pub(crate) fn plus_interval(t: i64, i: Interval) -> Result<i64, EvalError> {
    if t == temporal::TIMESTAMP_INFINITY || t == temporal::TIMESTAMP_NEG_INFINITY {
        return Ok(t);
    }
    let out_of_range = || EvalError::InvalidArgument("timestamp out of range".to_string());
    let mut days = t.div_euclid(MICROS_PER_DAY);
    let time = t.rem_euclid(MICROS_PER_DAY);
    if i.months != 0 {
        let (year, month, day) = temporal::civil_from_days(days);
        let total = year * 12 + i64::from(month) - 1 + i64::from(i.months);
        let (year, month) = (total.div_euclid(12), (total.rem_euclid(12) + 1) as u32);
        if !(-4713..=294_276).contains(&year) {
            return Err(out_of_range());
        }
        let day = i64::from(day).min(days_in_month(year, month));
        days = temporal::days_from_civil(year, month, day as u32);
    }
    days += i64::from(i.days);
    let result = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(time) + i128::from(i.micros);
    let result = i64::try_from(result).map_err(|_| out_of_range())?;
    if !timestamp_in_range(result) {
        return Err(out_of_range());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No text panics the parser; no timestamp and interval panic the
        /// addition (out of range is an error).
        #[test]
        fn never_panics(text in "[-+@ 0-9.:a-zA-Z]{0,40}", t in any::<i64>(), months in any::<i32>(), days in any::<i32>(), micros in any::<i64>()) {
            let _ = parse(&text, "second");
            let _ = parse(&text, "day");
            let _ = plus_interval(t, Interval { months, days, micros });
        }
    }

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
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
    fn months_clamp_to_the_last_day() {
        let ts = |s: &str| temporal::parse_timestamp(s).unwrap();
        let plus = |s: &str, i| plus_interval(ts(s), i).unwrap();
        assert_eq!(plus("2024-01-31 10:00:00", iv(1, 0, 0)), ts("2024-02-29 10:00:00"));
        assert_eq!(plus("2023-03-31 00:00:00", iv(-1, 0, 0)), ts("2023-02-28 00:00:00"));
        assert_eq!(plus("2024-12-31 23:00:00", iv(0, 1, 3_600_000_000)), ts("2025-01-02 00:00:00"));
        let latest = temporal::TIMESTAMP_INFINITY - 1;
        assert!(plus_interval(latest, iv(0, 1, 0)).is_err());
        assert!(plus_interval(latest, iv(1, 0, 0)).is_err());
        assert_eq!(plus_interval(latest, iv(-1, 0, 0)).map(|t| t < latest), Ok(true));
        let first = temporal::days_from_civil(-4713, 11, 24) * MICROS_PER_DAY;
        assert!(plus_interval(first, iv(0, 0, 0)).is_ok());
        assert!(plus_interval(first, iv(0, 0, -1)).is_err());
        assert_eq!(plus_interval(temporal::TIMESTAMP_INFINITY, iv(1, 1, 1)), Ok(temporal::TIMESTAMP_INFINITY));
    }
}
