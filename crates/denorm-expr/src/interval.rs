//! PostgreSQL's constant intervals: `INTERVAL '1 year 2 mons 3 days
//! 04:05:06'` read as PostgreSQL 15's `interval_in` reads it (units and
//! their abbreviations, fractions spilling into smaller units, `hh:mm:ss`,
//! `ago`), and `timestamp + interval` computed as `timestamp_pl_interval`:
//! months first (the day clamped to the month's last), then days, then
//! microseconds.
//!
//! A constant interval added to a date or timestamp is carried by
//! [`Func::PlusInterval`](crate::Func::PlusInterval); interval *values*
//! ([`Datum::Interval`]) are computed here as PostgreSQL 15 computes them:
//! `timestamp - timestamp` ([`timestamp_mi`]: microseconds, then
//! `justify_hours`), `age` ([`age`]: the field-wise difference, borrowing
//! as `timestamp_age` does), `interval ± interval`, `- interval`,
//! `interval * / number` ([`mul`]: fractions of months and days cascading
//! down, rounded as `interval_mul`), `justify_hours/days/interval`, and
//! `extract`/`date_part` of an interval's fields ([`part`]).

use denorm_types::interval::Interval;
use denorm_types::numeric::{self, Decimal};
use denorm_types::{temporal, Datum};

use crate::eval::EvalError;
use crate::expr::{DateField, Func};

const MICROS_PER_DAY: i64 = 86_400_000_000;

pub use denorm_types::interval::{field_unit, parse};

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

fn out_of_range() -> EvalError {
    EvalError::InvalidArgument("interval out of range".to_string())
}

/// Whether [`call`] computes `func` (the functions of interval values).
pub(crate) fn computes(func: Func) -> bool {
    matches!(
        func,
        Func::TimestampMinus
            | Func::Age
            | Func::TimestampPlusInterval
            | Func::IntervalPlus
            | Func::IntervalMinus
            | Func::IntervalNegate
            | Func::IntervalMul
            | Func::IntervalDiv
            | Func::JustifyHours
            | Func::JustifyDays
            | Func::JustifyInterval
    )
}

/// Evaluates an interval function over non-NULL arguments of the types the
/// planner checked.
pub(crate) fn call<'r>(func: Func, args: &[Datum<'_>]) -> Result<Datum<'r>, EvalError> {
    let wrong = || EvalError::InvalidArgument(format!("{}() does not take the values {args:?}", func.name()));
    let timestamp = |d: &Datum<'_>| match d {
        Datum::Timestamp(t) | Datum::TimestampTz(t) => Some(*t),
        Datum::Date(days) => Some(temporal::date_timestamp(*days)),
        _ => None,
    };
    let interval = |d: &Datum<'_>| match d {
        Datum::Interval(i) => Some(*i),
        _ => None,
    };
    let factor = |d: &Datum<'_>| d.as_f64();
    Ok(match (func, args) {
        (Func::TimestampMinus, [a, b]) => {
            Datum::Interval(timestamp_mi(timestamp(a).ok_or_else(wrong)?, timestamp(b).ok_or_else(wrong)?)?)
        }
        (Func::Age, [a, b]) => Datum::Interval(age(timestamp(a).ok_or_else(wrong)?, timestamp(b).ok_or_else(wrong)?)?),
        (Func::TimestampPlusInterval, [t, i]) => {
            let i = interval(i).ok_or_else(wrong)?;
            match t {
                Datum::Date(_) | Datum::Timestamp(_) => {
                    Datum::Timestamp(plus_interval(timestamp(t).ok_or_else(wrong)?, i)?)
                }
                _ => return Err(wrong()),
            }
        }
        (Func::IntervalPlus, [a, b]) => {
            Datum::Interval(plus(interval(a).ok_or_else(wrong)?, interval(b).ok_or_else(wrong)?)?)
        }
        (Func::IntervalMinus, [a, b]) => {
            let b = interval(b).ok_or_else(wrong)?;
            Datum::Interval(minus(interval(a).ok_or_else(wrong)?, b)?)
        }
        (Func::IntervalNegate, [a]) => {
            Datum::Interval(interval(a).ok_or_else(wrong)?.negated().ok_or_else(out_of_range)?)
        }
        (Func::IntervalMul, [a, f]) => {
            Datum::Interval(mul(interval(a).ok_or_else(wrong)?, factor(f).ok_or_else(wrong)?, false)?)
        }
        (Func::IntervalDiv, [a, f]) => {
            Datum::Interval(mul(interval(a).ok_or_else(wrong)?, factor(f).ok_or_else(wrong)?, true)?)
        }
        (Func::JustifyHours, [a]) => Datum::Interval(justify_hours(interval(a).ok_or_else(wrong)?)?),
        (Func::JustifyDays, [a]) => Datum::Interval(justify_days(interval(a).ok_or_else(wrong)?)?),
        (Func::JustifyInterval, [a]) => Datum::Interval(justify_interval(interval(a).ok_or_else(wrong)?)?),
        _ => return Err(wrong()),
    })
}

fn infinite(t: i64) -> bool {
    t == temporal::TIMESTAMP_INFINITY || t == temporal::TIMESTAMP_NEG_INFINITY
}

/// `timestamp - timestamp` (`timestamp_mi`): the microseconds between,
/// whole days moved out of the time (`justify_hours`).
pub fn timestamp_mi(a: i64, b: i64) -> Result<Interval, EvalError> {
    if infinite(a) || infinite(b) {
        return Err(EvalError::InvalidArgument("cannot subtract infinite timestamps".to_string()));
    }
    let micros = a.checked_sub(b).ok_or_else(out_of_range)?;
    justify_hours(Interval { months: 0, days: 0, micros })
}

/// A timestamp's fields as `timestamp2tm` gives them: astronomical year,
/// month 1–12, day, hour, minute, second, microseconds. PostgreSQL stores
/// `infinity` as the largest microsecond count after 2000-01-01 and reads
/// it as that date when it takes fields apart (`age` does): so does this.
fn fields(t: i64) -> [i64; 7] {
    const PG_EPOCH_MICROS: i128 = 946_684_800_000_000;
    let t = if t == temporal::TIMESTAMP_INFINITY { i128::from(t) + PG_EPOCH_MICROS } else { i128::from(t) };
    let day = i128::from(MICROS_PER_DAY);
    let days = t.div_euclid(day) as i64;
    let time = t.rem_euclid(day) as i64;
    let (y, m, d) = temporal::civil_from_days(days);
    let seconds = time / 1_000_000;
    [y, i64::from(m), i64::from(d), seconds / 3600, seconds / 60 % 60, seconds % 60, time % 1_000_000]
}

/// `age(a, b)` (`timestamp_age`): the field-wise difference, negative
/// fields borrowing from the next larger one (a month borrows the length of
/// the earlier timestamp's month), the sign taken from `a - b`.
pub fn age(a: i64, b: i64) -> Result<Interval, EvalError> {
    if a == temporal::TIMESTAMP_NEG_INFINITY || b == temporal::TIMESTAMP_NEG_INFINITY {
        return Err(EvalError::InvalidArgument("timestamp out of range".to_string()));
    }
    let (f1, f2) = (fields(a), fields(b));
    let mut tm: [i64; 7] = std::array::from_fn(|k| f1[k] - f2[k]);
    let flip = a < b;
    if flip {
        tm.iter_mut().for_each(|v| *v = -*v);
    }
    let [year, mon, mday, hour, min, sec, usec] = &mut tm;
    // Each borrow in turn, as timestamp_age's loops do.
    while *usec < 0 {
        *usec += 1_000_000;
        *sec -= 1;
    }
    while *sec < 0 {
        *sec += 60;
        *min -= 1;
    }
    while *min < 0 {
        *min += 60;
        *hour -= 1;
    }
    while *hour < 0 {
        *hour += 24;
        *mday -= 1;
    }
    let earlier = if flip { f1 } else { f2 };
    let month_days = days_in_month(earlier[0], earlier[1] as u32);
    while *mday < 0 {
        *mday += month_days;
        *mon -= 1;
    }
    while *mon < 0 {
        *mon += 12;
        *year -= 1;
    }
    if flip {
        tm.iter_mut().for_each(|v| *v = -*v);
    }
    let [year, mon, mday, hour, min, sec, usec] = tm;
    let months = i32::try_from(year * 12 + mon).map_err(|_| out_of_range())?;
    let days = i32::try_from(mday).map_err(|_| out_of_range())?;
    Ok(Interval { months, days, micros: ((hour * 60 + min) * 60 + sec) * 1_000_000 + usec })
}

/// `interval + interval`, field by field.
pub fn plus(a: Interval, b: Interval) -> Result<Interval, EvalError> {
    Ok(Interval {
        months: a.months.checked_add(b.months).ok_or_else(out_of_range)?,
        days: a.days.checked_add(b.days).ok_or_else(out_of_range)?,
        micros: a.micros.checked_add(b.micros).ok_or_else(out_of_range)?,
    })
}

/// `interval - interval`, field by field.
pub fn minus(a: Interval, b: Interval) -> Result<Interval, EvalError> {
    Ok(Interval {
        months: a.months.checked_sub(b.months).ok_or_else(out_of_range)?,
        days: a.days.checked_sub(b.days).ok_or_else(out_of_range)?,
        micros: a.micros.checked_sub(b.micros).ok_or_else(out_of_range)?,
    })
}

/// PostgreSQL's `TSROUND`: to the nearest microsecond-sized fraction.
fn ts_round(x: f64) -> f64 {
    (x * 1_000_000.0).round_ties_even() / 1_000_000.0
}

/// `interval * factor` (`interval_mul`) or `interval / factor`
/// (`interval_div`): each field scaled and truncated, the fraction of the
/// months cascading into days (30 a month) and the fraction of the days into
/// seconds, never up.
pub fn mul(i: Interval, factor: f64, divide: bool) -> Result<Interval, EvalError> {
    if divide && factor == 0.0 {
        return Err(EvalError::DivisionByZero);
    }
    let scale = |v: f64| if divide { v / factor } else { v * factor };
    let to_i32 = |v: f64| -> Result<i32, EvalError> {
        if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
            return Err(out_of_range());
        }
        Ok(v as i32)
    };
    let months = to_i32(scale(f64::from(i.months)))?;
    let mut days = to_i32(scale(f64::from(i.days)))?;
    let month_days = ts_round((scale(f64::from(i.months)) - f64::from(months)) * 30.0);
    let mut sec_remainder =
        ts_round((scale(f64::from(i.days)) - f64::from(days) + month_days - f64::from(month_days as i32)) * 86_400.0);
    if sec_remainder.abs() >= 86_400.0 {
        let whole = (sec_remainder / 86_400.0) as i32;
        days = days.checked_add(whole).ok_or_else(out_of_range)?;
        sec_remainder -= f64::from(whole) * 86_400.0;
    }
    days = days.checked_add(month_days as i32).ok_or_else(out_of_range)?;
    let micros = (scale(i.micros as f64) + sec_remainder * 1_000_000.0).round_ties_even();
    if micros.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&micros) {
        return Err(out_of_range());
    }
    Ok(Interval { months, days, micros: micros as i64 })
}

/// `justify_hours`: whole days of the time moved to the days, the time's
/// sign made the days'.
pub fn justify_hours(i: Interval) -> Result<Interval, EvalError> {
    let whole = i.micros / MICROS_PER_DAY;
    let mut micros = i.micros - whole * MICROS_PER_DAY;
    let mut days = i32::try_from(i64::from(i.days) + whole).map_err(|_| out_of_range())?;
    if days > 0 && micros < 0 {
        micros += MICROS_PER_DAY;
        days -= 1;
    } else if days < 0 && micros > 0 {
        micros -= MICROS_PER_DAY;
        days += 1;
    }
    Ok(Interval { months: i.months, days, micros })
}

/// `justify_days`: whole 30-day runs moved to the months, the days' sign
/// made the months'.
pub fn justify_days(i: Interval) -> Result<Interval, EvalError> {
    let whole = i.days / 30;
    let mut days = i.days - whole * 30;
    let mut months = i.months.checked_add(whole).ok_or_else(out_of_range)?;
    if months > 0 && days < 0 {
        days += 30;
        months -= 1;
    } else if months < 0 && days > 0 {
        days -= 30;
        months += 1;
    }
    Ok(Interval { months, days, micros: i.micros })
}

/// `justify_interval`: both, with one sign for all fields.
pub fn justify_interval(i: Interval) -> Result<Interval, EvalError> {
    let whole_days = i.micros / MICROS_PER_DAY;
    let mut micros = i.micros - whole_days * MICROS_PER_DAY;
    let day_total = i64::from(i.days) + whole_days;
    let whole_months = day_total / 30;
    let mut days = i32::try_from(day_total - whole_months * 30).map_err(|_| out_of_range())?;
    let mut months = i32::try_from(i64::from(i.months) + whole_months).map_err(|_| out_of_range())?;
    if months > 0 && (days < 0 || (days == 0 && micros < 0)) {
        days += 30;
        months -= 1;
    } else if months < 0 && (days > 0 || (days == 0 && micros > 0)) {
        days -= 30;
        months += 1;
    }
    if days > 0 && micros < 0 {
        micros += MICROS_PER_DAY;
        days -= 1;
    } else if days < 0 && micros > 0 {
        micros -= MICROS_PER_DAY;
        days += 1;
    }
    Ok(Interval { months, days, micros })
}

/// `date_trunc(field, interval)` (`interval_trunc`): the fields below
/// `field` zeroed (years, months, days, hours, minutes, seconds taken apart
/// as `extract` takes them); `week` is refused as PostgreSQL refuses it.
pub fn trunc(field: DateField, i: Interval) -> Result<Interval, EvalError> {
    let (mut year, mut month) = (i64::from(i.months / 12), i64::from(i.months % 12));
    let mut day = i64::from(i.days);
    let mut hour = i.micros / 3_600_000_000;
    let mut minute = i.micros / 60_000_000 % 60;
    let mut second = i.micros / 1_000_000 % 60;
    let mut fraction = i.micros % 1_000_000;
    match field {
        DateField::Millennium => year = year / 1000 * 1000,
        DateField::Century => year = year / 100 * 100,
        DateField::Decade => year = year / 10 * 10,
        DateField::Quarter => month = 3 * (month / 3),
        DateField::Milliseconds => fraction = fraction / 1000 * 1000,
        DateField::Year
        | DateField::Month
        | DateField::Day
        | DateField::Hour
        | DateField::Minute
        | DateField::Second
        | DateField::Microseconds => {}
        _ => {
            return Err(EvalError::InvalidArgument(format!(
                "unit \"{}\" not supported for type interval",
                field.name()
            )))
        }
    }
    let rank = |f: DateField| match f {
        DateField::Millennium | DateField::Century | DateField::Decade | DateField::Year => 0,
        DateField::Quarter | DateField::Month => 1,
        DateField::Day => 2,
        DateField::Hour => 3,
        DateField::Minute => 4,
        DateField::Second => 5,
        _ => 6,
    };
    let keep = rank(field);
    if keep < 1 {
        month = 0;
    }
    if keep < 2 {
        day = 0;
    }
    if keep < 3 {
        hour = 0;
    }
    if keep < 4 {
        minute = 0;
    }
    if keep < 5 {
        second = 0;
    }
    if keep < 6 {
        fraction = 0;
    }
    let months = i32::try_from(year * 12 + month).map_err(|_| out_of_range())?;
    Ok(Interval { months, days: day as i32, micros: ((hour * 60 + minute) * 60 + second) * 1_000_000 + fraction })
}

/// Whether `extract`/`date_part` take `field` from an interval.
pub fn field_of_interval(field: DateField) -> bool {
    !matches!(field, DateField::Week | DateField::Dow | DateField::Isodow | DateField::Doy | DateField::Isoyear)
}

/// Seconds in the months and days of an interval as `extract(epoch …)`
/// counts them: a year of 365.25 days, a month of 30.
fn epoch_seconds_of_date_part(i: Interval) -> i64 {
    let years = i64::from(i.months / 12);
    let months = i64::from(i.months % 12);
    years * 31_557_600 + months * 2_592_000 + i64::from(i.days) * 86_400
}

/// `extract(field from interval)` (numeric) or `date_part(field,
/// interval)` (double), as `interval_part_common` computes them from the
/// interval's fields: years and months from the months, the days as they
/// are, hours, minutes and seconds truncated from the time.
pub fn part<'r>(field: DateField, i: Interval, numeric_result: bool) -> Result<Datum<'r>, EvalError> {
    if !field_of_interval(field) {
        return Err(EvalError::InvalidArgument(format!("unit \"{}\" not supported for type interval", field.name())));
    }
    let (year, month) = (i64::from(i.months / 12), i64::from(i.months % 12));
    let hour = i.micros / 3_600_000_000;
    let minute = i.micros / 60_000_000 % 60;
    let second = i.micros / 1_000_000 % 60;
    let fraction = i.micros % 1_000_000;
    let second_micros = second * 1_000_000 + fraction;
    let whole = match field {
        DateField::Minute => minute,
        DateField::Hour => hour,
        DateField::Day => i64::from(i.days),
        DateField::Month => month,
        DateField::Quarter => month / 3 + 1,
        DateField::Year => year,
        DateField::Decade => year / 10,
        DateField::Century => year / 100,
        DateField::Millennium => year / 1000,
        DateField::Microseconds if !numeric_result => return Ok(Datum::Float(second as f64 * 1e6 + fraction as f64)),
        DateField::Milliseconds if !numeric_result => {
            return Ok(Datum::Float(second as f64 * 1000.0 + fraction as f64 / 1000.0))
        }
        DateField::Second if !numeric_result => return Ok(Datum::Float(second as f64 + fraction as f64 / 1e6)),
        DateField::Epoch if !numeric_result => {
            let mut x = i.micros as f64 / 1e6;
            x += 365.25 * 86_400.0 * f64::from(i.months / 12);
            x += 30.0 * 86_400.0 * f64::from(i.months % 12);
            x += 86_400.0 * f64::from(i.days);
            return Ok(Datum::Float(x));
        }
        DateField::Microseconds => return decimal(i128::from(second_micros), 0),
        DateField::Milliseconds => return decimal(i128::from(second_micros), 3),
        DateField::Second => return decimal(i128::from(second_micros), 6),
        DateField::Epoch => {
            let micros = i128::from(i.micros) + i128::from(epoch_seconds_of_date_part(i)) * 1_000_000;
            return decimal(micros, 6);
        }
        _ => {
            return Err(EvalError::InvalidArgument(format!(
                "unit \"{}\" not supported for type interval",
                field.name()
            )))
        }
    };
    Ok(if numeric_result { Datum::Numeric(Decimal::from(whole)) } else { Datum::Float(whole as f64) })
}

fn decimal<'r>(mantissa: i128, scale: u32) -> Result<Datum<'r>, EvalError> {
    Ok(Datum::Numeric(numeric::from_parts(mantissa, scale)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No timestamp and interval panic the addition (out of range is an
        /// error).
        #[test]
        fn never_panics(t in any::<i64>(), months in any::<i32>(), days in any::<i32>(), micros in any::<i64>()) {
            let _ = plus_interval(t, Interval { months, days, micros });
        }
    }

    fn iv(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
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
