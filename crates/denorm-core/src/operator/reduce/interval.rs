//! SUM/AVG of PostgreSQL intervals: months, days and microseconds summed
//! apart (`interval_accum` adds with `interval_pl`, field by field), so the
//! running state is three exact integers and a count, invertible under
//! retractions. The sums are wider than an interval's fields: a transient
//! excess that later retractions undo is harmless, and only the present
//! total must fit (PostgreSQL fails with "interval out of range" as soon as
//! a partial sum in its scan order leaves a field's range — an order no
//! incremental state knows, as for integer SUM: a total in range whose
//! partial sums were not is a value here and an error there).
//!
//! AVG is `interval_avg`: the sum divided by the count as a double
//! (`interval_div`: each field divided and truncated, the months' fraction
//! carried down into days at 30 a month and the days' into seconds).

use denorm_expr::{interval, AggregateFunc, EvalError};
use denorm_types::interval::Interval;
use denorm_types::{Datum, Diff, Value};

/// The running sum of a group's intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct IntervalSum {
    pub(super) non_null: Diff,
    pub(super) months: i64,
    pub(super) days: i64,
    pub(super) micros: i128,
}

impl IntervalSum {
    pub(super) fn add(&mut self, value: Interval, diff: Diff) {
        self.non_null += diff;
        self.months += i64::from(value.months) * diff;
        self.days += i64::from(value.days) * diff;
        self.micros += i128::from(value.micros) * i128::from(diff);
    }

    /// The sum as an interval, an error when a field does not fit.
    fn total(&self) -> Result<Interval, EvalError> {
        let out_of_range = || EvalError::InvalidArgument("interval out of range".to_string());
        Ok(Interval {
            months: i32::try_from(self.months).map_err(|_| out_of_range())?,
            days: i32::try_from(self.days).map_err(|_| out_of_range())?,
            micros: i64::try_from(self.micros).map_err(|_| out_of_range())?,
        })
    }

    /// SUM or AVG: NULL for no values.
    pub(super) fn value(&self, func: AggregateFunc) -> Result<Value, EvalError> {
        if self.non_null == 0 {
            return Ok(Datum::Null);
        }
        let total = self.total()?;
        Ok(Datum::Interval(match func {
            AggregateFunc::Avg => interval::mul(total, self.non_null as f64, true)?,
            _ => total,
        }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn interval_of(months: i32, days: i32, micros: i64) -> Interval {
        Interval { months, days, micros }
    }

    /// Sums by `interval::plus` over the values present, then divides as
    /// `interval_avg` does.
    fn from_scratch(values: &[Interval], func: AggregateFunc) -> Result<Value, EvalError> {
        let Some((first, rest)) = values.split_first() else { return Ok(Datum::Null) };
        let sum = rest.iter().try_fold(*first, |s, v| interval::plus(s, *v))?;
        Ok(Datum::Interval(match func {
            AggregateFunc::Avg => interval::mul(sum, values.len() as f64, true)?,
            _ => sum,
        }))
    }

    #[test]
    fn avg_carries_fractions_down() {
        let mut sum = IntervalSum::default();
        sum.add(interval_of(1, 0, 0), 1);
        sum.add(interval_of(0, 1, 0), 1);
        // (1 mon 1 day) / 2 = 15 days 12:00:00, as PostgreSQL prints it.
        assert_eq!(sum.value(AggregateFunc::Avg).unwrap(), Datum::Interval(interval_of(0, 15, 43_200_000_000)));
        assert_eq!(sum.value(AggregateFunc::Sum).unwrap(), Datum::Interval(interval_of(1, 1, 0)));
    }

    #[test]
    fn a_transient_excess_is_harmless_and_a_present_one_fails() {
        let mut sum = IntervalSum::default();
        let big = interval_of(i32::MAX, 0, 0);
        sum.add(big, 1);
        sum.add(big, 1);
        assert!(sum.value(AggregateFunc::Sum).is_err());
        sum.add(big, -1);
        assert_eq!(sum.value(AggregateFunc::Sum).unwrap(), Datum::Interval(big));
        sum.add(big, -1);
        assert_eq!(sum.value(AggregateFunc::Avg).unwrap(), Datum::Null);
    }

    proptest! {
        /// Insertions and retractions in any order give what summing the
        /// values present from scratch gives.
        #[test]
        fn equals_a_sum_from_scratch(ops in proptest::collection::vec(
            (-30i32..30, -40i32..40, -200_000_000_000i64..200_000_000_000, any::<bool>()), 0..60)) {
            let mut sum = IntervalSum::default();
            let mut present: Vec<Interval> = Vec::new();
            for (months, days, micros, insert) in ops {
                let value = interval_of(months, days, micros);
                if insert || present.is_empty() {
                    sum.add(value, 1);
                    present.push(value);
                } else {
                    let gone = present.remove(micros.unsigned_abs() as usize % present.len());
                    sum.add(gone, -1);
                }
                for func in [AggregateFunc::Sum, AggregateFunc::Avg] {
                    prop_assert_eq!(sum.value(func).ok(), from_scratch(&present, func).ok());
                }
            }
        }
    }
}
