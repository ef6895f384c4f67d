//! Aggregate functions of `GROUP BY` views.

use std::fmt;

use crate::expr::Expr;

/// What an aggregate computes over the non-NULL values of its argument.
///
/// Result types follow the source: COUNT is an integer (0 for an empty group),
/// SUM of integers is an integer (overflow is an error, as in SQLite) and of
/// doubles a double, NULL when no non-NULL value exists; AVG is a double or
/// NULL; MIN/MAX keep their argument's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunc {
    /// `COUNT(*)` when the argument is `None`, else `COUNT(expr)`.
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

impl AggregateFunc {
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Count | AggregateFunc::CountDistinct => "count",
            AggregateFunc::Sum => "sum",
            AggregateFunc::Avg => "avg",
            AggregateFunc::Min => "min",
            AggregateFunc::Max => "max",
        }
    }
}

/// One aggregate column: a function and its argument, an expression over the
/// input row of the `Reduce` that computes it. Only `COUNT(*)` has no argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub func: AggregateFunc,
    pub arg: Option<Expr>,
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.arg, self.func) {
            (None, _) => write!(f, "count(*)"),
            (Some(a), AggregateFunc::CountDistinct) => write!(f, "count(DISTINCT {a})"),
            (Some(a), func) => write!(f, "{}({a})", func.name()),
        }
    }
}
