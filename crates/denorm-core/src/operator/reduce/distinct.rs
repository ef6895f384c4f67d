//! `SUM(DISTINCT x)` and `AVG(DISTINCT x)`: the group's distinct values are
//! the ordered multiset MIN/MAX keep (a value stays while its count is
//! positive); the sum is made from them when the group's row is emitted,
//! as SQLite's `sumStep` adds them (exact integers until a double arrives,
//! then a compensated sum), in ascending order. A change costs O(log n); the
//! emitted value costs O(distinct values) of the touched group.

use denorm_expr::{AggregateFunc, EvalError, SqliteSum};
use denorm_types::Value;

/// The aggregate over `values`, the group's distinct non-NULL values in
/// ascending order.
pub(super) fn value<'v>(func: AggregateFunc, values: impl Iterator<Item = &'v Value>) -> Result<Value, EvalError> {
    let mut sum = SqliteSum::default();
    values.for_each(|v| sum.add(v));
    match func {
        AggregateFunc::AvgDistinct => Ok(sum.avg()),
        _ => sum.sum(),
    }
}
