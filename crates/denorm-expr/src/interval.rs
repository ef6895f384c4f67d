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
use denorm_types::interval::Interval;

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
