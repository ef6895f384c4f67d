//! `SUM(DISTINCT x)` and `AVG(DISTINCT x)`: the group's distinct values are
//! the ordered multiset MIN/MAX keep (a value stays while its count is
//! positive, so it enters the sum when its count goes 0 → 1 and leaves at
//! 1 → 0); the sum is made from them when the group's row is emitted. A
//! value spelled apart (`1` and `1.0`, `1.5` and `1.50`, `0.0` and `-0.0`)
//! counts once, as its least spelling (the sources keep the one they scan
//! first). A change costs O(log n); the emitted value costs O(distinct
//! values) of the touched group.
//!
//! SQLite: as its `sumStep` adds them (exact integers until a double
//! arrives, then a compensated sum), in ascending order, which is the order
//! of its DISTINCT index. PostgreSQL: the distinct values go through the
//! accumulator of the plain `SUM`/`AVG` (exact numerics at the largest
//! scale present, AVG at PostgreSQL's division scale; doubles summed exactly
//! and rounded once), so the DISTINCT form promises what the plain one does.

use std::cmp::Ordering;

use denorm_expr::{AggregateFunc, EvalError, SqliteSum};
use denorm_types::{affinity, Datum, Dialect, RowPacker, Value};

use super::{Accumulator, Input};

/// The aggregate over `values`, the group's distinct non-NULL values in
/// ascending order (equal values spelled apart next to one another).
pub(super) fn value<'v>(
    func: AggregateFunc,
    values: impl Iterator<Item = &'v Value>,
    dialect: Dialect,
) -> Result<Value, EvalError> {
    let mut last: Option<&Value> = None;
    let distinct = values.filter(move |v| {
        let repeated = matches!(last, Some(l) if l.total_cmp(v) == Ordering::Equal);
        last = Some(v);
        !repeated
    });
    let avg = func == AggregateFunc::AvgDistinct;
    match dialect {
        Dialect::Sqlite => {
            // Text and BLOBs add as SQLite reads them (after DISTINCT, which
            // keeps the text '1' apart from the integer 1).
            let mut sum = SqliteSum::default();
            distinct.for_each(|v| match v {
                Datum::Text(t) => sum.add(&affinity::summand(t)),
                Datum::Blob(b) => sum.add(&Datum::Float(affinity::real(&String::from_utf8_lossy(b)))),
                v => sum.add(v),
            });
            if avg {
                Ok(sum.avg())
            } else {
                sum.sum()
            }
        }
        Dialect::Postgres => {
            let plain = if avg { AggregateFunc::Avg } else { AggregateFunc::Sum };
            let mut accumulator = Accumulator::new(plain);
            let mut packer = RowPacker::new();
            distinct.for_each(|v| accumulator.update(&mut Input::Value(v.clone()), 1, &mut packer));
            accumulator.value(plain, 1, dialect)
        }
    }
}

#[cfg(test)]
mod tests {
    use denorm_types::numeric;

    use super::*;

    fn dec(s: &str) -> Value {
        Datum::Numeric(numeric::parse(s).unwrap())
    }

    #[test]
    fn postgres_numeric_sum_keeps_the_largest_scale_of_the_distinct_values() {
        let values = [dec("1.5"), dec("1.50"), dec("2.25"), dec("3")];
        let sum = value(AggregateFunc::SumDistinct, values.iter(), Dialect::Postgres).unwrap();
        assert_eq!(sum, dec("6.75"));
        let avg = value(AggregateFunc::AvgDistinct, values.iter(), Dialect::Postgres).unwrap();
        let want = numeric::div(numeric::parse("6.75").unwrap(), numeric::from_i64(3)).unwrap();
        assert_eq!(avg, Datum::Numeric(want));
    }

    #[test]
    fn postgres_double_sum_is_rounded_once() {
        let values = [Datum::Float(0.1), Datum::Float(0.2), Datum::Float(0.3)];
        let sum = value(AggregateFunc::SumDistinct, values.iter(), Dialect::Postgres).unwrap();
        assert_eq!(sum, Datum::Float(0.6));
        let avg = value(AggregateFunc::AvgDistinct, values.iter(), Dialect::Postgres).unwrap();
        assert_eq!(avg, Datum::Float(0.6 / 3.0));
    }

    #[test]
    fn a_value_spelled_twice_counts_once() {
        let values = [Datum::Int(1), Datum::Float(1.0), Datum::Float(2.0)];
        let avg = value(AggregateFunc::AvgDistinct, values.iter(), Dialect::Sqlite).unwrap();
        assert_eq!(avg, Datum::Float(1.5));
        let sum = value(AggregateFunc::SumDistinct, values.iter(), Dialect::Sqlite).unwrap();
        assert_eq!(sum, Datum::Float(3.0));
    }

    #[test]
    fn sqlite_text_adds_as_a_number_and_stays_distinct_from_it() {
        let values = [Datum::Int(1), Value::from("1"), Value::from("2.5")];
        let sum = value(AggregateFunc::SumDistinct, values.iter(), Dialect::Sqlite).unwrap();
        assert_eq!(sum, Datum::Float(4.5));
    }
}
