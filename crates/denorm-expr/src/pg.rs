//! PostgreSQL's string, number and date functions, as PostgreSQL 15
//! computes them: `substring`, `strpos`/`position`, `split_part`,
//! `concat`, `concat_ws`, `left`, `right`, `round`, `date_trunc`,
//! `extract`/`date_part`, `make_date`.
//!
//! PostgreSQL is strictly typed, so the planner has already checked every
//! argument's type; a value that PostgreSQL rejects at run time (a zero
//! `split_part` field, a negative substring length, an invalid date) is an
//! [`EvalError`] here too. Years are PostgreSQL's: no year zero, 1 BC is -1
//! (denorm's days count astronomical years: 1 BC is 0).

use denorm_types::numeric::{self, Decimal};
use denorm_types::{temporal, Datum};

use crate::eval::EvalError;
use crate::expr::{DateField, Func};

type Result<T> = std::result::Result<T, EvalError>;

const DAY_MICROS: i64 = 86_400_000_000;

fn invalid(message: impl Into<String>) -> EvalError {
    EvalError::InvalidArgument(message.into())
}

/// Evaluates one of PostgreSQL's functions over its evaluated arguments.
/// `greatest`/`least` (`ExecEvalMinMax`): NULLs skipped, the first of
/// equal values kept; NULL when every argument is.
fn greatest<'r>(max: bool, args: Vec<Datum<'r>>) -> Datum<'r> {
    let mut best = Datum::Null;
    for a in args.into_iter().filter(|a| !a.is_null()) {
        let better = best.is_null()
            || match a.total_cmp(&best) {
                std::cmp::Ordering::Greater => max,
                std::cmp::Ordering::Less => !max,
                std::cmp::Ordering::Equal => false,
            };
        if better {
            best = a;
        }
    }
    best
}

pub(crate) fn call<'r>(func: Func, args: Vec<Datum<'r>>) -> Result<Datum<'r>> {
    match func {
        Func::Concat => return Ok(Datum::owned_text(args.iter().filter_map(text).collect::<String>())),
        Func::ConcatWs => return Ok(concat_ws(&args)),
        Func::Greatest | Func::Least => return Ok(greatest(func == Func::Greatest, args)),
        _ => {}
    }
    if args.iter().any(Datum::is_null) {
        return Ok(Datum::Null);
    }
    Ok(match (func, args.as_slice()) {
        (func, args) if crate::interval::computes(func) => crate::interval::call(func, args)?,
        (Func::DateTrunc(field), [Datum::Interval(i)]) => Datum::Interval(crate::interval::trunc(field, *i)?),
        (Func::Extract(field), [Datum::Interval(i)]) => crate::interval::part(field, *i, true)?,
        (Func::DatePart(field), [Datum::Interval(i)]) => crate::interval::part(field, *i, false)?,
        (Func::PgSubstring, [Datum::Text(s), start, rest @ ..]) => {
            Datum::owned_text(substring(s, int(start), rest.first().map(int))?)
        }
        (Func::Strpos, [Datum::Text(s), Datum::Text(sub)]) => Datum::Int(match s.find(&**sub) {
            Some(byte) => s[..byte].chars().count() as i64 + 1,
            None => 0,
        }),
        (Func::SplitPart, [Datum::Text(s), Datum::Text(delimiter), n]) => {
            Datum::owned_text(split_part(s, delimiter, int(n))?)
        }
        (Func::Left, [Datum::Text(s), n]) => Datum::owned_text(left(s, int(n))),
        (Func::Right, [Datum::Text(s), n]) => Datum::owned_text(right(s, int(n))),
        (Func::Reverse, [Datum::Text(s)]) => Datum::owned_text(s.chars().rev().collect::<String>()),
        (Func::Repeat, [Datum::Text(s), n]) => Datum::owned_text(repeat(s, int(n))?),
        (Func::Lpad | Func::Rpad, [Datum::Text(s), n, rest @ ..]) => {
            let fill = match rest.first() {
                Some(Datum::Text(f)) => f.to_string(),
                _ => " ".to_string(),
            };
            Datum::owned_text(pad(s, int(n), &fill, func == Func::Lpad))
        }
        (Func::Initcap { ascii_only }, [Datum::Text(s)]) => Datum::owned_text(initcap(s, ascii_only)),
        (Func::StartsWith, [Datum::Text(s), Datum::Text(prefix)]) => Datum::Bool(s.starts_with(&**prefix)),
        (Func::PgRound, [Datum::Float(x)]) => Datum::Float(x.round_ties_even()),
        (Func::PgRound, [Datum::Int(i)]) => Datum::Float((*i as f64).round_ties_even()),
        (Func::PgRound, [n]) => Datum::Numeric(round_numeric(decimal(n), 0)?),
        (Func::PgRound, [n, places]) => Datum::Numeric(round_numeric(decimal(n), int(places))?),
        (Func::MakeDate, [y, m, d]) => Datum::Date(make_date(int(y), int(m), int(d))?),
        (Func::DateTrunc(_), [Datum::Timestamp(t)]) if infinite(&Datum::Timestamp(*t)).is_some() => {
            Datum::Timestamp(*t)
        }
        (Func::DateTrunc(field), [Datum::Timestamp(t)]) => Datum::Timestamp(date_trunc(field, *t)),
        (Func::Extract(field) | Func::DatePart(field), [d]) if infinite(d).is_some() => {
            // PostgreSQL: ±Infinity for the fields that grow with time, else NULL.
            let grows = matches!(
                field,
                DateField::Year
                    | DateField::Decade
                    | DateField::Century
                    | DateField::Millennium
                    | DateField::Isoyear
                    | DateField::Epoch
            );
            match (grows, func) {
                (false, _) => Datum::Null,
                (true, Func::DatePart(_)) => Datum::Float(infinite(d).unwrap_or(f64::INFINITY)),
                (true, _) => return Err(EvalError::Numeric(numeric::NumericError::NotFinite)),
            }
        }
        // PostgreSQL: NULL for an infinite timestamp.
        (Func::ToChar, [Datum::Timestamp(t), Datum::Text(_)]) if infinite(&Datum::Timestamp(*t)).is_some() => {
            Datum::Null
        }
        (Func::ToChar, [Datum::Timestamp(t), Datum::Text(f)]) => {
            crate::to_char::to_char(*t, f).map_or(Datum::Null, Datum::owned_text)
        }
        (Func::DatePlusDays, [Datum::Date(d), n]) => Datum::Date(date_plus_days(*d, int(n))?),
        (Func::DateMinusDate, [Datum::Date(a), Datum::Date(b)]) => Datum::Int(date_minus_date(*a, *b)?),
        (Func::PlusInterval(i), [d @ (Datum::Date(_) | Datum::Timestamp(_))]) => {
            let Datum::Timestamp(t) = as_timestamp(d) else { unreachable!("a date or timestamp") };
            Datum::Timestamp(crate::interval::plus_interval(t, i)?)
        }
        // A time of day only (the planner's check): no time zone involved.
        (Func::PlusInterval(i), [Datum::TimestampTz(t)]) if i.months == 0 && i.days == 0 => {
            Datum::TimestampTz(crate::interval::plus_interval(*t, i)?)
        }
        (Func::Extract(field), [d]) => Datum::Numeric(extract(field, d)?),
        (Func::DatePart(field), [d]) => Datum::Float(numeric::to_f64(extract(field, &as_timestamp(d))?)),
        // The planner types PostgreSQL's functions; a value of another type
        // is refused rather than trusted.
        (func, args) => {
            return Err(invalid(format!("{}() does not take the values {args:?}", func.name())));
        }
    })
}

/// `Some(±∞)` for PostgreSQL's infinite dates and timestamps.
fn infinite(d: &Datum<'_>) -> Option<f64> {
    match d {
        Datum::Date(temporal::DATE_INFINITY) | Datum::Timestamp(temporal::TIMESTAMP_INFINITY) => Some(f64::INFINITY),
        Datum::Date(temporal::DATE_NEG_INFINITY) | Datum::Timestamp(temporal::TIMESTAMP_NEG_INFINITY) => {
            Some(f64::NEG_INFINITY)
        }
        _ => None,
    }
}

fn int(d: &Datum<'_>) -> i64 {
    match d {
        Datum::Int(i) => *i,
        Datum::Numeric(n) => numeric::to_i64(*n).unwrap_or(0),
        _ => 0,
    }
}

fn decimal(d: &Datum<'_>) -> Decimal {
    match d {
        Datum::Numeric(n) => *n,
        Datum::Int(i) => numeric::from_i64(*i),
        _ => Decimal::ZERO,
    }
}

/// A value's text as `concat` writes it (PostgreSQL's output functions).
fn text(d: &Datum<'_>) -> Option<String> {
    Some(match d {
        Datum::Null => return None,
        Datum::Text(t) => t.to_string(),
        Datum::Int(i) => i.to_string(),
        Datum::Bool(b) => if *b { "t" } else { "f" }.to_string(),
        Datum::Float(x) if x.is_nan() => "NaN".to_string(),
        Datum::Float(x) if x.is_infinite() => if *x > 0.0 { "Infinity" } else { "-Infinity" }.to_string(),
        Datum::Float(x) => {
            let mut out = String::new();
            denorm_types::json::write_float(&mut out, *x, denorm_types::Dialect::Postgres);
            out
        }
        other => other.pg_text().unwrap_or_default(),
    })
}

/// Longest text `repeat` builds (PostgreSQL's limit is 1 GB).
const MAX_REPEAT_BYTES: usize = 1 << 26;

fn repeat(s: &str, n: i64) -> Result<String> {
    let n = usize::try_from(n).unwrap_or(0);
    if s.len().saturating_mul(n) > MAX_REPEAT_BYTES {
        return Err(invalid("requested length too large"));
    }
    Ok(s.repeat(n))
}

/// `lpad`/`rpad(s, n, fill)`: `s` cut or filled to `n` characters.
fn pad(s: &str, n: i64, fill: &str, left: bool) -> String {
    let n = usize::try_from(n).unwrap_or(0).min(MAX_REPEAT_BYTES);
    let len = s.chars().count();
    if len >= n || fill.is_empty() {
        return s.chars().take(n).collect();
    }
    let filling: String = fill.chars().cycle().take(n - len).collect();
    if left {
        format!("{filling}{s}")
    } else {
        format!("{s}{filling}")
    }
}

/// `initcap`: the first letter of each run of letters and digits upper
/// case, the others lower case.
/// `initcap` (`str_initcap`): the first letter or digit of every run of
/// them upper-cased, the rest lower-cased. Under `LC_CTYPE` C
/// (`ascii_only`) only ASCII letters and digits are alphanumeric (`éLan`
/// from `élan`), and only they change case.
fn initcap(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        let mapped = match (in_word, ascii_only) {
            (true, true) => c.to_ascii_lowercase(),
            (false, true) => c.to_ascii_uppercase(),
            (true, false) => lower_char(c),
            (false, false) => upper_char(c),
        };
        out.push(mapped);
        in_word = if ascii_only { mapped.is_ascii_alphanumeric() } else { libc_alnum(mapped) };
    }
    out
}

/// glibc's `iswalnum` under a UTF-8 locale: letters (Unicode's Alphabetic
/// property, combining letters included) and digits, but not the other
/// numbers (`²`, `½`, `⅓` are not alphanumeric; `٣` and `０` are).
fn libc_alnum(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.is_alphabetic() || c.is_ascii_digit() || c.general_category() == GeneralCategory::DecimalNumber
}

/// A character's upper case as PostgreSQL gives it under a UTF-8 libc
/// locale (`towupper`): Unicode's simple mapping, one character to one —
/// `ß` and `ﬁ` stay as they are (their upper case is two letters).
pub(crate) fn upper_char(c: char) -> char {
    match c as u32 {
        // Greek letters with ypogegrammeni: the simple mapping is the
        // prosgegrammeni form (the full one is two letters).
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => char::from_u32(c as u32 + 8).unwrap_or(c),
        0x1FB3 => '\u{1FBC}',
        0x1FC3 => '\u{1FCC}',
        0x1FF3 => '\u{1FFC}',
        _ => single(c.to_uppercase()).unwrap_or(c),
    }
}

/// A character's lower case as PostgreSQL gives it under a UTF-8 libc
/// locale (`towlower`): Unicode's simple mapping, one character to one (a
/// final sigma is `σ`, not `ς`: there is no context).
pub(crate) fn lower_char(c: char) -> char {
    match c {
        '\u{130}' => 'i',
        _ => single(c.to_lowercase()).unwrap_or(c),
    }
}

fn single(mut mapped: impl Iterator<Item = char>) -> Option<char> {
    let first = mapped.next()?;
    mapped.next().is_none().then_some(first)
}

/// `upper(s)`/`lower(s)` under a UTF-8 libc locale: character by character.
pub(crate) fn map_case(s: &str, upper: bool) -> String {
    s.chars().map(if upper { upper_char } else { lower_char }).collect()
}

fn concat_ws<'r>(args: &[Datum<'_>]) -> Datum<'r> {
    let Some(separator) = text(&args[0]) else { return Datum::Null };
    let parts: Vec<String> = args[1..].iter().filter_map(text).collect();
    Datum::owned_text(parts.join(&separator))
}

/// `substring(s from start for count)`: the characters at positions
/// `start .. start + count` that exist.
fn substring(s: &str, start: i64, count: Option<i64>) -> Result<String> {
    let end = match count {
        Some(c) if c < 0 => return Err(invalid("negative substring length not allowed")),
        Some(c) => start.saturating_add(c),
        None => i64::MAX,
    };
    let from = start.max(1);
    if end <= from {
        return Ok(String::new());
    }
    let skip = usize::try_from(from - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(end - from).unwrap_or(usize::MAX);
    Ok(s.chars().skip(skip).take(take).collect())
}

fn split_part(s: &str, delimiter: &str, n: i64) -> Result<String> {
    if n == 0 {
        return Err(invalid("field position must not be zero"));
    }
    if delimiter.is_empty() {
        return Ok(if n == 1 || n == -1 { s.to_string() } else { String::new() });
    }
    let fields: Vec<&str> = s.split(delimiter).collect();
    let index = if n > 0 { usize::try_from(n - 1).ok() } else { fields.len().checked_sub(n.unsigned_abs() as usize) };
    Ok(index.and_then(|i| fields.get(i)).map_or(String::new(), |f| f.to_string()))
}

fn left(s: &str, n: i64) -> String {
    let len = s.chars().count() as i64;
    let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) };
    s.chars().take(keep as usize).collect()
}

fn right(s: &str, n: i64) -> String {
    let len = s.chars().count() as i64;
    let keep = if n >= 0 { n.min(len) } else { (len + n).max(0) };
    s.chars().skip((len - keep) as usize).collect()
}

/// `round(numeric, places)`: half away from zero, the result's scale is
/// `places` (0 when negative: `round(1234.5, -2)` is 1200).
fn round_numeric(n: Decimal, places: i64) -> Result<Decimal> {
    if places >= 0 {
        let mut r = n;
        r.rescale(places.min(i64::from(numeric::MAX_SCALE)) as u32);
        return Ok(r);
    }
    let factor = numeric::from_parts(10i128.pow(places.unsigned_abs().min(28) as u32), 0)?;
    let mut scaled = numeric::div(n, factor)?;
    scaled.rescale(0);
    let mut r = numeric::mul(scaled, factor)?;
    r.rescale(0);
    Ok(r)
}

/// PostgreSQL's year from an astronomical one (no year zero).
fn pg_year(astronomical: i64) -> i64 {
    if astronomical <= 0 {
        astronomical - 1
    } else {
        astronomical
    }
}

fn make_date(y: i64, m: i64, d: i64) -> Result<i32> {
    let bad = || invalid(format!("date field value out of range: {y}-{m:02}-{d:02}"));
    // Beyond PostgreSQL's date range (5874897 AD) nothing is valid either.
    if y == 0 || !(-4713..=5_874_897).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let astronomical = if y < 0 { y + 1 } else { y };
    let days = temporal::days_from_civil(astronomical, m as u32, d as u32);
    if temporal::civil_from_days(days) != (astronomical, m as u32, d as u32) {
        return Err(bad());
    }
    i32::try_from(days).map_err(|_| bad())
}

/// `date + n`: infinities stay; a result outside PostgreSQL's dates is an
/// error, as there.
fn date_plus_days(d: i32, n: i64) -> Result<i32> {
    if d == temporal::DATE_INFINITY || d == temporal::DATE_NEG_INFINITY {
        return Ok(d);
    }
    let days = i64::from(d).checked_add(n).filter(|&x| crate::interval::date_in_range(x));
    days.and_then(|x| i32::try_from(x).ok()).ok_or_else(|| invalid("date out of range"))
}

/// `a - b` in days; PostgreSQL refuses infinite dates.
fn date_minus_date(a: i32, b: i32) -> Result<i64> {
    let infinite = |d: i32| d == temporal::DATE_INFINITY || d == temporal::DATE_NEG_INFINITY;
    if infinite(a) || infinite(b) {
        return Err(invalid("cannot subtract infinite dates"));
    }
    Ok(i64::from(a) - i64::from(b))
}

fn as_timestamp<'r>(d: &Datum<'_>) -> Datum<'r> {
    match d {
        Datum::Date(days) => Datum::Timestamp(temporal::date_timestamp(*days)),
        Datum::Timestamp(t) => Datum::Timestamp(*t),
        _ => Datum::Null,
    }
}

/// The ISO 8601 (year, week) of a day count, weeks starting on Monday.
fn iso_week(days: i64) -> (i64, i64) {
    // 1970-01-01 was a Thursday; the week's Thursday decides its year.
    let weekday = (days + 3).rem_euclid(7); // 0 = Monday
    let thursday = days - weekday + 3;
    let (year, _, _) = temporal::civil_from_days(thursday);
    let jan1 = temporal::days_from_civil(year, 1, 1);
    (year, (thursday - jan1) / 7 + 1)
}

fn extract(field: DateField, d: &Datum<'_>) -> Result<Decimal> {
    let (micros, is_date) = match d {
        Datum::Date(days) => (i64::from(*days) * DAY_MICROS, true),
        Datum::Timestamp(t) => (*t, false),
        _ => return Err(invalid("extract needs a date or a timestamp")),
    };
    let days = micros.div_euclid(DAY_MICROS);
    let of_day = micros.rem_euclid(DAY_MICROS);
    let (y, m, day) = temporal::civil_from_days(days);
    let year = pg_year(y);
    let whole = |v: i64| numeric::from_parts(i128::from(v), 0);
    let seconds_micros = i128::from(of_day % 60_000_000);
    let value = match field {
        DateField::Year => whole(year),
        DateField::Month => whole(i64::from(m)),
        DateField::Day => whole(i64::from(day)),
        DateField::Hour => whole(of_day / 3_600_000_000),
        DateField::Minute => whole(of_day / 60_000_000 % 60),
        DateField::Second => numeric::from_parts(seconds_micros, 6),
        DateField::Milliseconds => numeric::from_parts(seconds_micros, 3),
        DateField::Microseconds => numeric::from_parts(seconds_micros, 0),
        DateField::Dow => whole((days + 4).rem_euclid(7)),
        DateField::Isodow => whole((days + 3).rem_euclid(7) + 1),
        DateField::Doy => whole(days - temporal::days_from_civil(y, 1, 1) + 1),
        DateField::Quarter => whole((i64::from(m) - 1) / 3 + 1),
        DateField::Week => whole(iso_week(days).1),
        DateField::Isoyear => whole(pg_year(iso_week(days).0)),
        // PostgreSQL's formulas, over the astronomical year.
        DateField::Decade => whole(if y >= 0 { y / 10 } else { -((8 - (y - 1)) / 10) }),
        DateField::Century => whole(if y > 0 { (y + 99) / 100 } else { -((99 - (y - 1)) / 100) }),
        DateField::Millennium => whole(if y > 0 { (y + 999) / 1000 } else { -((999 - (y - 1)) / 1000) }),
        DateField::Epoch if is_date => whole(days * 86_400),
        DateField::Epoch => numeric::from_parts(i128::from(micros), 6),
    };
    Ok(value?)
}

/// `date_trunc(field, timestamp)`.
fn date_trunc(field: DateField, t: i64) -> i64 {
    let days = t.div_euclid(DAY_MICROS);
    let of_day = t.rem_euclid(DAY_MICROS);
    let (y, m, _) = temporal::civil_from_days(days);
    let start_of_year = |y: i64| temporal::days_from_civil(y, 1, 1) * DAY_MICROS;
    match field {
        DateField::Microseconds => t,
        DateField::Milliseconds => t - t.rem_euclid(1000),
        DateField::Second => t - t.rem_euclid(1_000_000),
        DateField::Minute => t - t.rem_euclid(60_000_000),
        DateField::Hour => t - t.rem_euclid(3_600_000_000),
        DateField::Day => t - of_day,
        DateField::Week => (days - (days + 3).rem_euclid(7)) * DAY_MICROS,
        DateField::Month => temporal::days_from_civil(y, m, 1) * DAY_MICROS,
        DateField::Quarter => temporal::days_from_civil(y, (m - 1) / 3 * 3 + 1, 1) * DAY_MICROS,
        DateField::Year => start_of_year(y),
        // PostgreSQL's formulas (timestamp_trunc), over the astronomical year.
        DateField::Decade => start_of_year(if y > 0 { y / 10 * 10 } else { -((8 - (y - 1)) / 10) * 10 }),
        DateField::Century => {
            start_of_year(if y > 0 { (y + 99) / 100 * 100 - 99 } else { -((99 - (y - 1)) / 100) * 100 + 1 })
        }
        DateField::Millennium => {
            start_of_year(if y > 0 { (y + 999) / 1000 * 1000 - 999 } else { -((999 - (y - 1)) / 1000) * 1000 + 1 })
        }
        _ => t,
    }
}
