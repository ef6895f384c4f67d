//! SQLite's date and time functions (`date.c`): `date`, `time`, `datetime`,
//! `julianday`, `unixepoch` and `strftime`, ported step for step so that
//! every result equals SQLite's, including its arithmetic quirks (month
//! overflow normalisation, `+N months` on the 31st, rounding to the
//! millisecond).
//!
//! ```text
//!  time value ──parse──► DateTime ──modifier…──► DateTime ──format──► text / number
//!  'YYYY-MM-DD[ HH:MM[:SS[.SSS]]][±HH:MM|Z]', 'HH:MM[:SS]', a number (julian day;
//!  with 'unixepoch' or 'auto' seconds since 1970)
//! ```
//!
//! A date held as `iJD` (milliseconds since the julian epoch) and/or as
//! Y-M-D h:m:s fields, each with a validity flag, exactly as SQLite's
//! `DateTime`: conversions between them happen lazily and in SQLite's order,
//! which is what makes results such as `date('2024-01-31', '+1 month')` =
//! `2024-03-02` come out the same.
//!
//! Not deterministic, hence an error: the time value `'now'` (and
//! `'subsec'` as a time value), the modifiers `localtime` and `utc` (they
//! read the machine's time zone). The planner refuses them when written as
//! literals; a column holding them stops the view with [`EvalError`].

use denorm_types::Datum;

use crate::eval::EvalError;
use crate::expr::DateFunc;
use crate::scalar::{double, text, whole_number};

mod strftime;

use strftime::strftime;

type Result<T> = std::result::Result<T, EvalError>;

/// Milliseconds from the julian epoch to 1970-01-01.
const UNIX_EPOCH_MS: i64 = 210_866_760_000_000;
/// The julian day number of 9999-12-31 23:59:59.999, in milliseconds.
const MAX_JD: i64 = 464_269_060_799_999;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, Default)]
struct DateTime {
    jd: i64,
    year: i32,
    month: i32,
    day: i32,
    hour: i32,
    minute: i32,
    /// Timezone offset in minutes.
    tz: i32,
    seconds: f64,
    valid_jd: bool,
    valid_ymd: bool,
    valid_hms: bool,
    floor_days: i32,
    raw_seconds: bool,
    error: bool,
    subsec: bool,
}

/// Whether a literal argument of a date function (`index` counts from
/// the time value, 0) reads the clock or the machine's time zone: the time
/// value `'now'` (or `'subsec'`), the modifiers `localtime` and `utc`.
pub fn reads_the_clock(index: usize, value: &str) -> bool {
    let now = ["now", "subsec", "subsecond"].iter().any(|n| value.eq_ignore_ascii_case(n));
    let zone = ["localtime", "utc"].iter().any(|n| value.eq_ignore_ascii_case(n));
    (index == 0 && now) || (index > 0 && zone)
}

fn refused(what: &str) -> EvalError {
    EvalError::NotDeterministic(format!("the date/time value or modifier '{what}'"))
}

/// Evaluates one of the date and time functions (arguments already
/// evaluated; `strftime`'s format first).
pub(crate) fn call<'r>(kind: DateFunc, args: &[Datum<'_>]) -> Result<Datum<'r>> {
    let (format, values) = match kind {
        DateFunc::Strftime => match text(&args[0]) {
            Some(f) => (Some(f.into_owned()), &args[1..]),
            None => return Ok(Datum::Null),
        },
        _ => (None, args),
    };
    let Some(mut x) = is_date(values)? else { return Ok(Datum::Null) };
    Ok(match kind {
        DateFunc::JulianDay => {
            x.compute_jd();
            Datum::Float(x.jd as f64 / DAY_MS as f64)
        }
        DateFunc::UnixEpoch => {
            x.compute_jd();
            if x.subsec {
                Datum::Float((x.jd - UNIX_EPOCH_MS) as f64 / 1000.0)
            } else {
                Datum::Int(x.jd / 1000 - UNIX_EPOCH_MS / 1000)
            }
        }
        DateFunc::Date => {
            x.compute_ymd();
            Datum::owned_text(ymd_text(&x))
        }
        DateFunc::Time => {
            x.compute_hms();
            Datum::owned_text(hms_text(&x))
        }
        DateFunc::DateTime => {
            x.compute_ymd_hms();
            Datum::owned_text(format!("{} {}", ymd_text(&x), hms_text(&x)))
        }
        DateFunc::Strftime => match strftime(format.as_deref().unwrap_or_default(), &mut x) {
            Some(s) => Datum::owned_text(s),
            None => Datum::Null,
        },
    })
}

fn ymd_text(x: &DateTime) -> String {
    let y = x.year.unsigned_abs();
    let sign = if x.year < 0 { "-" } else { "" };
    format!("{sign}{:04}-{:02}-{:02}", y % 10000, x.month % 100, x.day % 100)
}

fn hms_text(x: &DateTime) -> String {
    if x.subsec {
        let s = (1000.0 * x.seconds + 0.5) as i32;
        format!("{:02}:{:02}:{:02}.{:03}", x.hour % 100, x.minute % 100, (s / 1000) % 100, s % 1000)
    } else {
        format!("{:02}:{:02}:{:02}", x.hour % 100, x.minute % 100, (x.seconds as i32) % 100)
    }
}

/// `isDate`: the time value and modifiers; `None` where SQLite returns NULL.
fn is_date(args: &[Datum<'_>]) -> Result<Option<DateTime>> {
    let mut p = DateTime::default();
    match &args[0] {
        Datum::Int(_) | Datum::Float(_) | Datum::Bool(_) => p.set_raw_number(double(&args[0])),
        other => match text(other) {
            Some(z) => {
                if !parse_date_or_time(&z, &mut p)? {
                    return Ok(None);
                }
            }
            None => return Ok(None),
        },
    }
    for (i, m) in args.iter().enumerate().skip(1) {
        let Some(z) = text(m) else { return Ok(None) };
        if !p.modify(&z, i)? {
            return Ok(None);
        }
    }
    p.compute_jd();
    if p.error || !valid_jd(p.jd) {
        return Ok(None);
    }
    if args.len() == 1 && p.valid_ymd && p.day > 28 {
        p.valid_ymd = false;
    }
    Ok(Some(p))
}

fn valid_jd(jd: i64) -> bool {
    (0..=MAX_JD).contains(&jd)
}

/// `getDigits` for one field: `n` digits in `min..=max` at the start of `z`.
fn field(z: &[u8], n: usize, min: i32, max: i32) -> Option<i32> {
    if z.len() < n || !z[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = z[..n].iter().fold(0i32, |v, d| v * 10 + i32::from(d - b'0'));
    (min..=max).contains(&v).then_some(v)
}

/// Two fields `n1` digits, `sep`, `n2` digits (`getDigits("20c:20e")`, …).
fn pair(z: &[u8], first: (i32, i32), sep: u8, second: (i32, i32)) -> Option<(i32, i32)> {
    let a = field(z, 2, first.0, first.1)?;
    if z.get(2) != Some(&sep) {
        return None;
    }
    let b = field(&z[3..], 2, second.0, second.1)?;
    Some((a, b))
}

fn at(z: &[u8], i: usize) -> u8 {
    z.get(i).copied().unwrap_or(0)
}

fn skip_spaces(z: &[u8]) -> &[u8] {
    let n = z.iter().take_while(|c| c.is_ascii_whitespace() || **c == 0x0b).count();
    &z[n..]
}

/// `parseTimezone`: false on a syntax error.
fn parse_timezone(z: &[u8], p: &mut DateTime) -> bool {
    let z = skip_spaces(z);
    p.tz = 0;
    let rest = match at(z, 0) {
        c @ (b'-' | b'+') => {
            let Some((hours, minutes)) = pair(&z[1..], (0, 14), b':', (0, 59)) else { return false };
            let sign = if c == b'-' { -1 } else { 1 };
            p.tz = sign * (minutes + hours * 60);
            &z[6..]
        }
        b'Z' | b'z' => &z[1..],
        0 => return true,
        _ => return false,
    };
    skip_spaces(rest).is_empty()
}

/// `parseHhMmSs`: false on a syntax error.
fn parse_hh_mm_ss(z: &[u8], p: &mut DateTime) -> bool {
    let Some((h, m)) = pair(z, (0, 24), b':', (0, 59)) else { return false };
    let mut z = &z[5..];
    let mut s = 0;
    let mut ms = 0.0f64;
    if at(z, 0) == b':' {
        let Some(sec) = field(&z[1..], 2, 0, 59) else { return false };
        s = sec;
        z = &z[3..];
        if at(z, 0) == b'.' && at(z, 1).is_ascii_digit() {
            let mut scale = 1.0;
            z = &z[1..];
            while at(z, 0).is_ascii_digit() {
                ms = ms * 10.0 + f64::from(z[0] - b'0');
                scale *= 10.0;
                z = &z[1..];
            }
            ms /= scale;
            if ms > 0.999 {
                ms = 0.999;
            }
        }
    }
    if h == 24 && (m != 0 || s != 0 || ms != 0.0) {
        return false;
    }
    p.valid_jd = false;
    p.raw_seconds = false;
    p.valid_hms = true;
    p.hour = h;
    p.minute = m;
    p.seconds = f64::from(s) + ms;
    parse_timezone(z, p)
}

fn days_of_month(y: i32, m: i32) -> i32 {
    if (1i32 << m.clamp(0, 30)) & 0x15aa != 0 {
        31
    } else if m != 2 {
        30
    } else if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
        29
    } else {
        28
    }
}

/// `parseYyyyMmDd`: false on a syntax error.
fn parse_yyyy_mm_dd(z: &[u8], p: &mut DateTime) -> bool {
    let (negative, z) = if at(z, 0) == b'-' { (true, &z[1..]) } else { (false, z) };
    let (Some(mut y), Some(mut m), Some(mut d)) = (
        field(z, 4, 0, 14712),
        (at(z, 4) == b'-').then(|| field(&z[5..], 2, 1, 12)).flatten(),
        (at(z, 7) == b'-').then(|| field(&z[8..], 2, 1, 31)).flatten(),
    ) else {
        return false;
    };
    let mut rest = &z[10..];
    while at(rest, 0).is_ascii_whitespace() || at(rest, 0) == 0x0b || at(rest, 0) == b'T' {
        rest = &rest[1..];
    }
    if parse_hh_mm_ss(rest, p) {
        if p.hour == 24 {
            let max = days_of_month(y, m);
            p.hour = 0;
            d += 1;
            if d > max {
                d -= max;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    } else if rest.is_empty() {
        p.valid_hms = false;
    } else {
        return false;
    }
    p.valid_jd = false;
    p.valid_ymd = true;
    p.year = if negative { -y } else { y };
    p.month = m;
    p.day = d;
    p.compute_floor();
    if p.tz != 0 {
        p.compute_jd();
    }
    true
}

/// `parseDateOrTime`: false when SQLite returns NULL.
fn parse_date_or_time(z: &str, p: &mut DateTime) -> Result<bool> {
    if parse_yyyy_mm_dd(z.as_bytes(), p) {
        return Ok(true);
    }
    if parse_hh_mm_ss(z.as_bytes(), p) {
        return Ok(true);
    }
    if z.eq_ignore_ascii_case("now") || z.eq_ignore_ascii_case("subsec") || z.eq_ignore_ascii_case("subsecond") {
        return Err(refused(z));
    }
    if let Some(r) = whole_number(z) {
        p.set_raw_number(r);
        return Ok(true);
    }
    Ok(false)
}

/// The `NNN unit` modifiers: name, limit, seconds per unit.
const UNITS: [(&str, f64, f64); 6] = [
    ("second", 4.6427e+14, 1.0),
    ("minute", 7.7379e+12, 60.0),
    ("hour", 1.2897e+11, 3600.0),
    ("day", 5373485.0, 86400.0),
    ("month", 176546.0, 2592000.0),
    ("year", 14713.0, 31536000.0),
];

impl DateTime {
    fn set_raw_number(&mut self, r: f64) {
        self.seconds = r;
        self.raw_seconds = true;
        if (0.0..5373484.5).contains(&r) {
            self.jd = (r * 86400000.0 + 0.5) as i64;
            self.valid_jd = true;
        }
    }

    fn set_error(&mut self) {
        *self = DateTime { error: true, ..DateTime::default() };
    }

    fn compute_jd(&mut self) {
        if self.valid_jd {
            return;
        }
        let (mut y, mut m, d) = if self.valid_ymd {
            (self.year, self.month, self.day)
        } else {
            let mut d = 1;
            if self.valid_hms && self.hour == 24 {
                self.hour = 0;
                d = 2;
            }
            (2000, 1, d)
        };
        if !(-4713..=9999).contains(&y) || self.raw_seconds {
            self.set_error();
            return;
        }
        if m <= 2 {
            y -= 1;
            m += 12;
        }
        let a = (y + 4800) / 100;
        let b = 38 - a + (a / 4);
        let x1 = 36525 * (y + 4716) / 100;
        let x2 = 306001 * (m + 1) / 10000;
        self.jd = ((f64::from(x1 + x2 + d + b) - 1524.5) * 86400000.0) as i64;
        self.valid_jd = true;
        if self.valid_hms {
            self.jd +=
                i64::from(self.hour) * 3600000 + i64::from(self.minute) * 60000 + (self.seconds * 1000.0 + 0.5) as i64;
            if self.tz != 0 {
                self.jd -= i64::from(self.tz) * 60000;
                self.valid_ymd = false;
                self.valid_hms = false;
                self.tz = 0;
            }
        }
    }

    fn compute_floor(&mut self) {
        let max = days_of_month(self.year, self.month);
        self.floor_days = if self.day > max { self.day - max } else { 0 };
    }

    fn compute_ymd(&mut self) {
        if self.valid_ymd {
            return;
        }
        if !self.valid_jd {
            self.year = 2000;
            self.month = 1;
            self.day = 1;
        } else if !valid_jd(self.jd) {
            self.set_error();
            return;
        } else {
            let z = ((self.jd + 43200000) / DAY_MS) as i32;
            let alpha = ((f64::from(z) + 32044.75) / 36524.25) as i32 - 52;
            let a = z + 1 + alpha - ((alpha + 100) / 4) + 25;
            let b = a + 1524;
            let c = ((f64::from(b) - 122.1) / 365.25) as i32;
            let d = (36525 * (c & 32767)) / 100;
            let e = (f64::from(b - d) / 30.6001) as i32;
            let x1 = (30.6001 * f64::from(e)) as i32;
            self.day = b - d - x1;
            self.month = if e < 14 { e - 1 } else { e - 13 };
            self.year = if self.month > 2 { c - 4716 } else { c - 4715 };
        }
        self.valid_ymd = true;
    }

    fn compute_hms(&mut self) {
        if self.valid_hms {
            return;
        }
        self.compute_jd();
        let day_ms = ((self.jd + 43200000) % DAY_MS) as i32;
        self.seconds = f64::from(day_ms % 60000) / 1000.0;
        let day_min = day_ms / 60000;
        self.minute = day_min % 60;
        self.hour = day_min / 60;
        self.raw_seconds = false;
        self.valid_hms = true;
    }

    fn compute_ymd_hms(&mut self) {
        self.compute_ymd();
        self.compute_hms();
    }

    fn clear_ymd_hms_tz(&mut self) {
        self.valid_ymd = false;
        self.valid_hms = false;
        self.tz = 0;
    }

    /// Normalises a month outside 1..=12 into the year.
    fn carry_months(&mut self) {
        let x = if self.month > 0 { (self.month - 1) / 12 } else { (self.month - 12) / 12 };
        self.year += x;
        self.month -= x * 12;
    }

    /// `parseModifier`: false where SQLite returns NULL.
    fn modify(&mut self, z: &str, index: usize) -> Result<bool> {
        let lower = z.to_ascii_lowercase();
        let lower = lower.as_str();
        Ok(match lower.as_bytes().first().copied().unwrap_or(0) {
            b'a' if lower == "auto" => {
                index <= 1 && {
                    self.auto_adjust();
                    true
                }
            }
            b'c' if lower == "ceiling" => {
                self.compute_jd();
                self.clear_ymd_hms_tz();
                self.floor_days = 0;
                true
            }
            b'f' if lower == "floor" => {
                self.compute_jd();
                self.jd = self.jd.wrapping_sub(i64::from(self.floor_days) * DAY_MS);
                self.clear_ymd_hms_tz();
                true
            }
            b'j' if lower == "julianday" => {
                index <= 1 && self.valid_jd && self.raw_seconds && {
                    self.raw_seconds = false;
                    true
                }
            }
            b'l' if lower == "localtime" => return Err(refused(z)),
            b'u' if lower == "utc" => return Err(refused(z)),
            b'u' if lower == "unixepoch" => self.raw_seconds && index <= 1 && self.set_unix_seconds(),
            b'w' if lower.starts_with("weekday ") => self.weekday(&z[8..]),
            b's' if lower == "subsec" || lower == "subsecond" => {
                self.subsec = true;
                true
            }
            b's' if lower.starts_with("start of ") => self.start_of(&lower[9..]),
            b'e' if lower.starts_with("end of ") => self.end_of(&lower[7..]),
            b'+' | b'-' | b'0'..=b'9' => self.numeric_modifier(z.as_bytes()),
            _ => false,
        })
    }

    fn auto_adjust(&mut self) {
        if !self.raw_seconds || self.valid_jd {
            self.raw_seconds = false;
        } else if self.seconds >= -210866760000.0 && self.seconds <= 253402300799.0 {
            let r = self.seconds * 1000.0 + UNIX_EPOCH_MS as f64;
            self.clear_ymd_hms_tz();
            self.jd = (r + 0.5) as i64;
            self.valid_jd = true;
            self.raw_seconds = false;
        }
    }

    fn set_unix_seconds(&mut self) -> bool {
        let r = self.seconds * 1000.0 + UNIX_EPOCH_MS as f64;
        if !(0.0..464269060800000.0).contains(&r) {
            return false;
        }
        self.clear_ymd_hms_tz();
        self.jd = (r + 0.5) as i64;
        self.valid_jd = true;
        self.raw_seconds = false;
        true
    }

    fn weekday(&mut self, arg: &str) -> bool {
        let Some(r) = whole_number(arg) else { return false };
        if !(-6.0..=6.0).contains(&r) || r != f64::from(r as i32) {
            return false;
        }
        let n = i64::from((r as i32).abs());
        self.compute_ymd_hms();
        self.tz = 0;
        self.valid_jd = false;
        self.compute_jd();
        let mut z = ((self.jd + 129600000) / DAY_MS) % 7;
        if z != n {
            if z > n {
                z -= 7;
            }
            self.jd = self.jd.wrapping_add((n - z) * DAY_MS);
            if arg.contains('-') {
                self.jd = self.jd.wrapping_sub(7 * DAY_MS);
            }
        }
        self.clear_ymd_hms_tz();
        true
    }

    /// The shared start of `start of …` and `end of …`.
    fn day_boundary(&mut self, hour: i32, minute: i32, seconds: f64) -> bool {
        if !self.valid_jd && !self.valid_ymd && !self.valid_hms {
            return false;
        }
        self.compute_ymd();
        self.valid_hms = true;
        self.hour = hour;
        self.minute = minute;
        self.seconds = seconds;
        self.raw_seconds = false;
        self.tz = 0;
        self.valid_jd = false;
        true
    }

    fn start_of(&mut self, unit: &str) -> bool {
        if !self.day_boundary(0, 0, 0.0) {
            return false;
        }
        match unit {
            "month" => self.day = 1,
            "year" => {
                self.month = 1;
                self.day = 1;
            }
            "day" => {}
            _ => return false,
        }
        true
    }

    fn end_of(&mut self, unit: &str) -> bool {
        if !self.day_boundary(23, 59, 59.999) {
            return false;
        }
        match unit {
            "month" => {
                self.day = 1;
                self.month += 1;
                if self.month > 12 {
                    self.year += 1;
                    self.month = 1;
                }
                self.compute_floor();
                self.compute_jd();
                self.jd -= i64::from(self.floor_days + 1) * DAY_MS;
                self.clear_ymd_hms_tz();
            }
            "year" => {
                self.month = 12;
                self.day = 31;
            }
            "day" => {}
            _ => return false,
        }
        true
    }

    /// `±NNN unit`, `±HH:MM[:SS[.SSS]]`, `±YYYY-MM-DD[ HH:MM[:SS]]`.
    fn numeric_modifier(&mut self, z: &[u8]) -> bool {
        let z0 = z[0];
        let mut n = 1;
        while n < z.len() {
            let c = z[n];
            if c == b':' || c.is_ascii_whitespace() || c == 0x0b {
                break;
            }
            if c == b'-' {
                if n == 5 && field(&z[1..], 4, 0, 14712).is_some() {
                    break;
                }
                if n == 6 && field(&z[1..], 5, 0, 14712).is_some() {
                    break;
                }
            }
            n += 1;
        }
        let Some(r) = std::str::from_utf8(&z[..n]).ok().and_then(whole_number) else { return false };
        let mut time_at: Option<(&[u8], usize)> = None;
        if at(z, n) == b'-' {
            match self.add_ymd(z, z0, n) {
                Some(Some(time)) => time_at = Some((time, 2)),
                Some(None) => return true,
                None => return false,
            }
        }
        let (z2, n2) = time_at.unwrap_or((z, n));
        if at(z2, n2) == b':' {
            return self.add_time(z2, z0);
        }
        self.add_units(&z[n..], r)
    }

    /// `±YYYY-MM-DD`: `None` on error, `Some(None)` when done, `Some(time)`
    /// when a ` HH:MM…` follows.
    fn add_ymd<'z>(&mut self, z: &'z [u8], z0: u8, n: usize) -> Option<Option<&'z [u8]>> {
        if z0 != b'+' && z0 != b'-' {
            return None;
        }
        let z = if n == 6 { &z[1..] } else { z };
        let digits = if n == 6 { 5 } else { 4 };
        let body = &z[1..];
        let y = field(body, digits, 0, 14712)?;
        let body = &body[digits - 4..];
        if at(body, 4) != b'-' || at(body, 7) != b'-' {
            return None;
        }
        let m = field(&body[5..], 2, 0, 12)?;
        let mut d = field(&body[8..], 2, 0, 31)?;
        if m >= 12 || d >= 31 {
            return None;
        }
        self.compute_ymd_hms();
        self.valid_jd = false;
        if z0 == b'-' {
            self.year -= y;
            self.month -= m;
            d = -d;
        } else {
            self.year += y;
            self.month += m;
        }
        self.carry_months();
        self.compute_floor();
        self.compute_jd();
        self.valid_hms = false;
        self.valid_ymd = false;
        self.jd = self.jd.wrapping_add(i64::from(d) * DAY_MS);
        let z11 = at(z, 11);
        if z11 == 0 {
            return Some(None);
        }
        if (z11.is_ascii_whitespace() || z11 == 0x0b) && pair(&z[12..], (0, 24), b':', (0, 59)).is_some() {
            return Some(Some(&z[12..]));
        }
        None
    }

    fn add_time(&mut self, z2: &[u8], z0: u8) -> bool {
        let z2 = if z2[0].is_ascii_digit() { z2 } else { &z2[1..] };
        let mut tx = DateTime::default();
        if !parse_hh_mm_ss(z2, &mut tx) {
            return false;
        }
        tx.compute_jd();
        tx.jd -= 43200000;
        let day = tx.jd / DAY_MS;
        tx.jd -= day * DAY_MS;
        if z0 == b'-' {
            tx.jd = -tx.jd;
        }
        self.compute_jd();
        self.clear_ymd_hms_tz();
        self.jd = self.jd.wrapping_add(tx.jd);
        true
    }

    fn add_units(&mut self, rest: &[u8], mut r: f64) -> bool {
        let unit = skip_spaces(rest);
        let mut n = unit.len();
        if !(3..=10).contains(&n) {
            return false;
        }
        if unit[n - 1].eq_ignore_ascii_case(&b's') {
            n -= 1;
        }
        self.compute_jd();
        let rounder = if r < 0.0 { -0.5 } else { 0.5 };
        self.floor_days = 0;
        let mut ok = false;
        for (i, (name, limit, seconds)) in UNITS.iter().enumerate() {
            if name.len() != n || !unit[..n].eq_ignore_ascii_case(name.as_bytes()) || r <= -limit || r >= *limit {
                continue;
            }
            if i == 4 {
                self.compute_ymd_hms();
                self.month += r as i32;
                self.carry_months();
                self.compute_floor();
                self.valid_jd = false;
                r -= f64::from(r as i32);
            } else if i == 5 {
                self.compute_ymd_hms();
                self.year += r as i32;
                self.compute_floor();
                self.valid_jd = false;
                r -= f64::from(r as i32);
            }
            self.compute_jd();
            // Modifiers are not range-checked until the end (as in date.c,
            // whose signed overflow wraps): many huge ones must not panic.
            self.jd = self.jd.wrapping_add((r * 1000.0 * seconds + rounder) as i64);
            ok = true;
            break;
        }
        self.clear_ymd_hms_tz();
        ok
    }

    fn days_after_jan01(&self) -> i64 {
        let mut jan01 = *self;
        jan01.valid_jd = false;
        jan01.month = 1;
        jan01.day = 1;
        jan01.compute_jd();
        (self.jd - jan01.jd + 43200000) / DAY_MS
    }

    fn days_after_monday(&self) -> i64 {
        ((self.jd + 43200000) / DAY_MS) % 7
    }

    fn days_after_sunday(&self) -> i64 {
        ((self.jd + 129600000) / DAY_MS) % 7
    }

    /// The Thursday of the ISO week of this date.
    fn iso_thursday(&self) -> DateTime {
        let mut y = *self;
        y.jd += (3 - self.days_after_monday()) * DAY_MS;
        y.valid_ymd = false;
        y.compute_ymd();
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: DateFunc, args: &[&str]) -> Datum<'static> {
        let args: Vec<Datum<'_>> = args.iter().map(|a| Datum::text(a)).collect();
        call(kind, &args).unwrap()
    }

    #[test]
    fn month_arithmetic_overflows_as_sqlite() {
        assert_eq!(run(DateFunc::Date, &["2024-01-31", "+1 month"]), Datum::text("2024-03-02"));
        assert_eq!(run(DateFunc::Date, &["2024-01-31", "+1 month", "floor"]), Datum::text("2024-02-29"));
        assert_eq!(run(DateFunc::Date, &["2024-03-15", "start of month", "-1 day"]), Datum::text("2024-02-29"));
        assert_eq!(
            run(DateFunc::DateTime, &["2024-03-15 10:20:30", "+90 minutes"]),
            Datum::text("2024-03-15 11:50:30")
        );
        assert_eq!(run(DateFunc::Strftime, &["%Y", "1998-12-01"]), Datum::text("1998"));
        assert_eq!(run(DateFunc::Date, &["2024-02-30"]), Datum::text("2024-03-01"));
        assert_eq!(run(DateFunc::Date, &["bogus"]), Datum::Null);
        assert!(call(DateFunc::Date, &[Datum::text("now")]).is_err());
    }
}
