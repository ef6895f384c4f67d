//! Dates and timestamps as PostgreSQL writes them, and their arithmetic-free
//! calendar (proleptic Gregorian, astronomical years: year 0 is 1 BC).
//!
//! | type | value | `infinity` / `-infinity` |
//! |---|---|---|
//! | [`Datum::Date`](crate::Datum::Date) | days since 1970-01-01 (`i32`) | `i32::MAX` / `i32::MIN` |
//! | [`Datum::Timestamp`](crate::Datum::Timestamp) | microseconds since 1970-01-01 00:00:00 (`i64`) | `i64::MAX` / `i64::MIN` |
//! | [`Datum::TimestampTz`](crate::Datum::TimestampTz) | microseconds since 1970-01-01 00:00:00 UTC (`i64`) | `i64::MAX` / `i64::MIN` |
//!
//! The infinities are PostgreSQL's own sentinels: they order below and above
//! every other value as in PostgreSQL, so comparison, MIN/MAX and sort keys
//! need nothing special. Text is PostgreSQL's ISO output under `DateStyle =
//! ISO` and `TimeZone = UTC` (the settings of denorm's sessions):
//! `2024-05-01`, `2024-05-01 10:00:00.5`, `2024-05-01 10:00:00.5+00`, with
//! ` BC` after years before 1 AD. JSON is `to_json`'s ISO 8601 form:
//! `"2024-05-01T10:00:00.5"`, `"2024-05-01T10:00:00.5+00:00"`.
//!
//! Parsing reads what PostgreSQL writes (any offset `+HH[:MM[:SS]]`) and, for
//! casts and literals, the ISO 8601 forms `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`,
//! `YYYY-MM-DD[T ]HH:MM:SS[.ffffff][Z|±HH[:MM]]` (a timestamp with time zone
//! without an offset is read as UTC; a date ignores a time of day; a
//! timestamp without time zone ignores an offset, as PostgreSQL does).
//! Fractions beyond microseconds round half away from zero, as PostgreSQL's.

use std::fmt::Write;

pub const DATE_INFINITY: i32 = i32::MAX;
pub const DATE_NEG_INFINITY: i32 = i32::MIN;
pub const TIMESTAMP_INFINITY: i64 = i64::MAX;
pub const TIMESTAMP_NEG_INFINITY: i64 = i64::MIN;

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// PostgreSQL's range: 4713-11-24 BC … 5874897-12-31 for dates, 294276 AD
/// for timestamps; denorm accepts years −4712 ..= 294276 for both (dates
/// beyond are refused rather than stored).
const MIN_YEAR: i64 = -4713;
const MAX_YEAR: i64 = 294_276;

/// Days since 1970-01-01 of a proleptic Gregorian date (`year` astronomical).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (astronomical year, month, day) of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        _ => 28,
    }
}

fn write_date_part(out: &mut String, year: i64, month: u32, day: u32) {
    let shown = if year <= 0 { 1 - year } else { year };
    let _ = write!(out, "{shown:04}-{month:02}-{day:02}");
}

fn bc(year: i64) -> bool {
    year <= 0
}

/// Appends a date as PostgreSQL's ISO output (`2024-05-01`, `0044-03-15 BC`).
pub fn write_date(out: &mut String, days: i32) {
    match days {
        DATE_INFINITY => out.push_str("infinity"),
        DATE_NEG_INFINITY => out.push_str("-infinity"),
        _ => {
            let (y, m, d) = civil_from_days(i64::from(days));
            write_date_part(out, y, m, d);
            if bc(y) {
                out.push_str(" BC");
            }
        }
    }
}

/// `T` separates date and time in JSON (ISO 8601), a space in text output;
/// `tz` adds the UTC offset (`+00` in text, `+00:00` in JSON).
fn write_timestamp_with(out: &mut String, micros: i64, json: bool, tz: bool) {
    match micros {
        TIMESTAMP_INFINITY => return out.push_str("infinity"),
        TIMESTAMP_NEG_INFINITY => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY);
    let time = micros.rem_euclid(MICROS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    write_date_part(out, y, m, d);
    out.push(if json { 'T' } else { ' ' });
    let seconds = time / 1_000_000;
    let fraction = time % 1_000_000;
    let _ = write!(out, "{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    if tz {
        out.push_str(if json { "+00:00" } else { "+00" });
    }
    if bc(y) {
        out.push_str(" BC");
    }
}

/// Appends a timestamp as PostgreSQL's ISO text output.
pub fn write_timestamp(out: &mut String, micros: i64) {
    write_timestamp_with(out, micros, false, false);
}

/// Appends a timestamp with time zone as PostgreSQL's ISO text output in UTC.
pub fn write_timestamptz(out: &mut String, micros: i64) {
    write_timestamp_with(out, micros, false, true);
}

/// Appends the text of a date or timestamp as PostgreSQL's `to_json` writes
/// it, without the quotes.
pub fn write_json_date(out: &mut String, days: i32) {
    write_date(out, days);
}

pub fn write_json_timestamp(out: &mut String, micros: i64, tz: bool) {
    write_timestamp_with(out, micros, true, tz);
}

/// A cursor over ASCII text.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, min: usize, max: usize) -> Option<(i64, usize)> {
        let start = self.at;
        let mut value: i64 = 0;
        while self.at < self.s.len() && self.at - start < max && self.s[self.at].is_ascii_digit() {
            value = value * 10 + i64::from(self.s[self.at] - b'0');
            self.at += 1;
        }
        let n = self.at - start;
        (n >= min).then_some((value, n))
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn done(&self) -> bool {
        self.at == self.s.len()
    }
}

/// The parts of a date/time text.
struct Parsed {
    days: i64,
    /// Microseconds since midnight (may be a whole day after rounding).
    time: i64,
    /// Offset east of UTC in seconds, when written.
    offset: Option<i64>,
}

fn parse_parts(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let (text, bc) = match text.strip_suffix(" BC").or_else(|| text.strip_suffix(" bc")) {
        Some(rest) => (rest.trim_end(), true),
        None => (text, false),
    };
    let mut c = Cursor { s: text.as_bytes(), at: 0 };
    let (mut year, _) = c.digits(4, 7)?;
    if !c.eat(b'-') {
        return None;
    }
    let (month, _) = c.digits(1, 2)?;
    if !c.eat(b'-') {
        return None;
    }
    let (day, _) = c.digits(1, 2)?;
    if bc {
        if year == 0 {
            return None;
        }
        year = 1 - year;
    }
    let (month, day) = (u32::try_from(month).ok()?, u32::try_from(day).ok()?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let mut time = 0;
    let mut offset = None;
    if !c.done() {
        if !(c.eat(b' ') || c.eat(b'T') || c.eat(b't')) {
            return None;
        }
        while c.eat(b' ') {}
        let (hour, _) = c.digits(1, 2)?;
        if !c.eat(b':') {
            return None;
        }
        let (minute, _) = c.digits(2, 2)?;
        let mut second = 0;
        let mut micros = 0;
        if c.eat(b':') {
            second = c.digits(2, 2)?.0;
            if c.eat(b'.') {
                let start = c.at;
                while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                    c.at += 1;
                }
                let frac = &text[start..c.at];
                if frac.is_empty() {
                    return None;
                }
                let mut padded: String = frac.chars().take(7).collect();
                while padded.len() < 7 {
                    padded.push('0');
                }
                let seven: i64 = padded.parse().ok()?;
                micros = (seven + 5) / 10;
            }
        }
        let valid =
            hour < 24 && minute < 60 && second < 60 || (hour == 24 && minute == 0 && second == 0 && micros == 0);
        if !valid {
            return None;
        }
        time = ((hour * 60 + minute) * 60 + second) * 1_000_000 + micros;
        while c.eat(b' ') {}
        if c.eat(b'Z') || c.eat(b'z') {
            offset = Some(0);
        } else if let Some(sign @ (b'+' | b'-')) = c.peek() {
            c.at += 1;
            let (hours, n) = c.digits(1, 4)?;
            let (hours, mut minutes) = if n > 2 { (hours / 100, hours % 100) } else { (hours, 0) };
            let mut seconds = 0;
            if n <= 2 && c.eat(b':') {
                minutes = c.digits(2, 2)?.0;
                if c.eat(b':') {
                    seconds = c.digits(2, 2)?.0;
                }
            }
            if hours > 15 || minutes > 59 || seconds > 59 {
                return None;
            }
            let total = (hours * 60 + minutes) * 60 + seconds;
            offset = Some(if sign == b'-' { -total } else { total });
        }
        if !c.done() {
            return None;
        }
    }
    Some(Parsed { days, time, offset })
}

fn special(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "infinity" | "+infinity" => Some(true),
        "-infinity" => Some(false),
        _ => None,
    }
}

/// A date from PostgreSQL's output or an ISO 8601 literal (a time of day is
/// ignored).
pub fn parse_date(text: &str) -> Option<i32> {
    if let Some(positive) = special(text) {
        return Some(if positive { DATE_INFINITY } else { DATE_NEG_INFINITY });
    }
    let parsed = parse_parts(text)?;
    i32::try_from(parsed.days).ok().filter(|d| *d != DATE_INFINITY && *d != DATE_NEG_INFINITY)
}

/// A timestamp without time zone (an offset, if written, is ignored).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    if let Some(positive) = special(text) {
        return Some(if positive { TIMESTAMP_INFINITY } else { TIMESTAMP_NEG_INFINITY });
    }
    let parsed = parse_parts(text)?;
    parsed.days.checked_mul(MICROS_PER_DAY)?.checked_add(parsed.time)
}

/// A timestamp with time zone, as microseconds UTC (no offset: UTC).
pub fn parse_timestamptz(text: &str) -> Option<i64> {
    if let Some(positive) = special(text) {
        return Some(if positive { TIMESTAMP_INFINITY } else { TIMESTAMP_NEG_INFINITY });
    }
    let parsed = parse_parts(text)?;
    let local = parsed.days.checked_mul(MICROS_PER_DAY)?.checked_add(parsed.time)?;
    local.checked_sub(parsed.offset.unwrap_or(0) * 1_000_000)
}

/// The date of a timestamp (infinities stay infinite).
pub fn timestamp_date(micros: i64) -> i32 {
    match micros {
        TIMESTAMP_INFINITY => DATE_INFINITY,
        TIMESTAMP_NEG_INFINITY => DATE_NEG_INFINITY,
        _ => micros.div_euclid(MICROS_PER_DAY) as i32,
    }
}

/// Midnight of a date as a timestamp.
pub fn date_timestamp(days: i32) -> i64 {
    match days {
        DATE_INFINITY => TIMESTAMP_INFINITY,
        DATE_NEG_INFINITY => TIMESTAMP_NEG_INFINITY,
        _ => i64::from(days) * MICROS_PER_DAY,
    }
}

/// Formats with `write` into a new string.
pub fn to_string(write: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        for days in (-2_500_000i64..110_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn dates_as_postgres_writes_them() {
        let cases = [
            ("2024-05-01", "2024-05-01"),
            ("0044-03-15 BC", "0044-03-15 BC"),
            ("0001-01-01 BC", "0001-01-01 BC"),
            ("4713-11-24 BC", "4713-11-24 BC"),
            ("294276-12-31", "294276-12-31"),
            ("infinity", "infinity"),
            ("-infinity", "-infinity"),
            ("2024-02-29 10:00", "2024-02-29"),
        ];
        for (text, want) in cases {
            let days = parse_date(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(to_string(|o| write_date(o, days)), want);
        }
        for bad in ["2023-02-29", "2024-13-01", "0000-01-01 BC", "24-01-01", "2024-01-01x", "", "2024-01-01 25:00"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("0044-03-15 BC") < parse_date("0001-01-01"));
    }

    #[test]
    fn timestamps_as_postgres_writes_them() {
        let cases = [
            ("2024-05-01 10:11:12", "2024-05-01 10:11:12", "2024-05-01T10:11:12"),
            ("2024-05-01 10:11:12.5", "2024-05-01 10:11:12.5", "2024-05-01T10:11:12.5"),
            ("2024-05-01T10:11:12.123456", "2024-05-01 10:11:12.123456", "2024-05-01T10:11:12.123456"),
            ("2024-05-01 10:11:12.1234565", "2024-05-01 10:11:12.123457", "2024-05-01T10:11:12.123457"),
            ("0044-03-15 10:11:12 BC", "0044-03-15 10:11:12 BC", "0044-03-15T10:11:12 BC"),
            ("1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999", "1969-12-31T23:59:59.999999"),
            ("2024-05-01", "2024-05-01 00:00:00", "2024-05-01T00:00:00"),
            ("2024-05-01 24:00:00", "2024-05-02 00:00:00", "2024-05-02T00:00:00"),
            ("infinity", "infinity", "infinity"),
        ];
        for (text, want, json) in cases {
            let t = parse_timestamp(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(to_string(|o| write_timestamp(o, t)), want);
            assert_eq!(to_string(|o| write_json_timestamp(o, t, false)), json);
        }
        let tz = [
            ("2024-05-01 10:11:12+00", "2024-05-01 10:11:12+00", "2024-05-01T10:11:12+00:00"),
            ("2024-05-01 10:11:12.5+02", "2024-05-01 08:11:12.5+00", "2024-05-01T08:11:12.5+00:00"),
            ("2024-05-01T10:11:12-05:30", "2024-05-01 15:41:12+00", "2024-05-01T15:41:12+00:00"),
            ("2024-05-01 10:11:12Z", "2024-05-01 10:11:12+00", "2024-05-01T10:11:12+00:00"),
            ("2024-05-01", "2024-05-01 00:00:00+00", "2024-05-01T00:00:00+00:00"),
            ("0044-03-15 10:11:12+00 BC", "0044-03-15 10:11:12+00 BC", "0044-03-15T10:11:12+00:00 BC"),
            ("-infinity", "-infinity", "-infinity"),
        ];
        for (text, want, json) in tz {
            let t = parse_timestamptz(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(to_string(|o| write_timestamptz(o, t)), want);
            assert_eq!(to_string(|o| write_json_timestamp(o, t, true)), json);
        }
        for bad in ["2024-05-01 10", "2024-05-01 10:60", "2024-05-01 10:00:00+16", "now", "2024-05-01 10:00:00."] {
            assert_eq!(parse_timestamptz(bad), None, "{bad}");
        }
    }
}
