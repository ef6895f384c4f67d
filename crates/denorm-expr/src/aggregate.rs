//! Aggregate functions of `GROUP BY` views.

use std::cmp::Ordering;
use std::fmt;

use denorm_types::{Datum, Value};

use crate::eval::EvalError;
use crate::expr::Expr;

/// What an aggregate computes over the non-NULL values of its argument.
///
/// Result types follow the source: COUNT is an integer (0 for an empty group),
/// SUM of integers is an integer (overflow is an error, as in SQLite) and of
/// doubles a double, NULL when no non-NULL value exists; AVG is a double or
/// NULL; MIN/MAX keep their argument's type. SUM/AVG of numerics are exact
/// numerics and of PostgreSQL intervals intervals (months, days and time
/// summed apart; AVG divides the sum as `interval / count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFunc {
    /// `COUNT(*)` when the argument is `None`, else `COUNT(expr)`.
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    /// `json_group_array(x ORDER BY …)` (PostgreSQL `json_agg`): the
    /// argument is `Expr::List([x, key₁, …, keyₙ])`. NULL elements are
    /// `null`; an empty group is `[]` in SQLite, NULL in PostgreSQL.
    JsonArray(JsonArraySpec),
    /// `json_group_object(k, v)` (PostgreSQL `json_object_agg`): the argument
    /// is `Expr::List([k, v])`; `raw` marks a JSON value. Members are ordered
    /// by key, then value (the sources append them in their unspecified
    /// aggregation order). SQLite skips NULL keys; PostgreSQL fails.
    JsonObject {
        raw: bool,
        /// The list's last item is a FILTER condition (see
        /// [`JsonArraySpec::filtered`]).
        filtered: bool,
    },
    /// `SUM(DISTINCT x)` / `AVG(DISTINCT x)`: the sum (average) of the
    /// distinct non-NULL values, as SQLite's `sumStep` adds them (see
    /// [`SqliteSum`]) in ascending order.
    SumDistinct,
    AvgDistinct,
    /// `group_concat(x, sep ORDER BY …)` (also SQLite's and PostgreSQL's
    /// `string_agg(x, sep)`): the argument is `Expr::List([x, sep, key₁, …,
    /// keyₙ])`. The non-NULL values' text joined, each after the first
    /// preceded by its row's separator; NULL for no such value. Without ORDER
    /// BY the values come in ascending order of their text (the sources
    /// leave that order unspecified).
    GroupConcat(ConcatSpec),
}

/// The parameters of [`AggregateFunc::GroupConcat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcatSpec {
    pub order: AggregateOrder,
    /// `group_concat(DISTINCT x)`: each distinct text once. The planner
    /// allows it only without ORDER BY or ordered by the value itself, so
    /// equal values are neighbours in the element order.
    pub distinct: bool,
}

/// SQLite's `sum()`/`avg()`/`total()` accumulator (`func.c`'s `sumStep`):
/// integers added exactly until a double (or an overflow) arrives, from
/// then on a Kahan–Babuška–Neumaier sum of doubles.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteSum {
    count: i64,
    int_sum: i64,
    sum: f64,
    error: f64,
    approximate: bool,
    overflow: bool,
}

impl SqliteSum {
    fn kbn(&mut self, r: f64) {
        let s = self.sum;
        let t = s + r;
        if s.abs() > r.abs() {
            self.error += (s - t) + r;
        } else {
            self.error += (r - t) + s;
        }
        self.sum = t;
    }

    fn kbn_int(&mut self, v: i64) {
        if !(-4503599627370495..=4503599627370495).contains(&v) {
            let small = v % 16384;
            self.kbn((v - small) as f64);
            self.kbn(small as f64);
        } else {
            self.kbn(v as f64);
        }
    }

    fn start_approximate(&mut self) {
        let v = self.int_sum;
        if !(-4503599627370495..=4503599627370495).contains(&v) {
            let small = v % 16384;
            self.sum = (v - small) as f64;
            self.error = small as f64;
        } else {
            self.sum = v as f64;
            self.error = 0.0;
        }
        self.approximate = true;
    }

    /// Adds one non-NULL value (an integer, or anything else as a double).
    pub fn add(&mut self, value: &Datum<'_>) {
        self.count += 1;
        let int = match value {
            Datum::Int(i) => Some(*i),
            Datum::Bool(b) => Some(i64::from(*b)),
            _ => None,
        };
        let double = || value.as_f64().unwrap_or(0.0);
        match (self.approximate, int) {
            (false, Some(i)) => match self.int_sum.checked_add(i) {
                Some(sum) => self.int_sum = sum,
                None => {
                    self.overflow = true;
                    self.start_approximate();
                    self.kbn_int(i);
                }
            },
            (false, None) => {
                self.start_approximate();
                self.kbn(double());
            }
            (true, Some(i)) => self.kbn_int(i),
            (true, None) => {
                self.overflow = false;
                self.kbn(double());
            }
        }
    }

    fn approximation(&self) -> f64 {
        if self.error.is_finite() {
            self.sum + self.error
        } else {
            self.sum
        }
    }

    /// `sum()`: NULL for no values, an integer while every value was one.
    pub fn sum(&self) -> Result<Value, EvalError> {
        Ok(match (self.count, self.approximate) {
            (0, _) => Datum::Null,
            (_, false) => Datum::Int(self.int_sum),
            _ if self.overflow => return Err(EvalError::IntegerOverflow),
            _ => Datum::Float(self.approximation()),
        })
    }

    /// `avg()`: NULL for no values.
    pub fn avg(&self) -> Value {
        match (self.count, self.approximate) {
            (0, _) => Datum::Null,
            (n, false) => Datum::Float(self.int_sum as f64 / n as f64),
            (n, true) => Datum::Float(self.approximation() / n as f64),
        }
    }
}

/// The parameters of [`AggregateFunc::JsonArray`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JsonArraySpec {
    /// The element is JSON, embedded as it is rather than as a string.
    pub raw: bool,
    pub order: AggregateOrder,
    /// Only the first `limit` elements in order (a denorm extension:
    /// `json_group_array(x ORDER BY t DESC LIMIT 3)`).
    pub limit: Option<u32>,
    /// `FILTER (WHERE c)`: the list's last item is `c`, and a row where it
    /// is not true contributes no element (the JSON aggregates keep NULL
    /// elements, so the filter cannot become the argument as elsewhere).
    pub filtered: bool,
}

impl AggregateFunc {
    /// Whether the argument list ends with a FILTER condition.
    pub fn filtered(self) -> bool {
        match self {
            AggregateFunc::JsonArray(spec) => spec.filtered,
            AggregateFunc::JsonObject { filtered, .. } => filtered,
            _ => false,
        }
    }
}

/// One ORDER BY term inside an aggregate call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderTerm {
    pub descending: bool,
    /// The planner fixes each dialect's default: SQLite sorts NULLs as the
    /// smallest value, PostgreSQL as the largest.
    pub nulls_first: bool,
}

/// The ORDER BY terms of an aggregate call, packed so that
/// [`AggregateFunc`] stays `Copy`: at most [`AggregateOrder::MAX_TERMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggregateOrder {
    terms: u8,
    descending: u32,
    nulls_first: u32,
}

impl AggregateOrder {
    pub const MAX_TERMS: usize = 32;

    /// `None` when there are more than [`Self::MAX_TERMS`] terms.
    pub fn new(terms: &[OrderTerm]) -> Option<Self> {
        if terms.len() > Self::MAX_TERMS {
            return None;
        }
        let mut order = AggregateOrder { terms: terms.len() as u8, descending: 0, nulls_first: 0 };
        for (i, t) in terms.iter().enumerate() {
            order.descending |= u32::from(t.descending) << i;
            order.nulls_first |= u32::from(t.nulls_first) << i;
        }
        Some(order)
    }

    pub fn len(self) -> usize {
        usize::from(self.terms)
    }

    pub fn is_empty(self) -> bool {
        self.terms == 0
    }

    pub fn term(self, i: usize) -> OrderTerm {
        OrderTerm { descending: self.descending >> i & 1 == 1, nulls_first: self.nulls_first >> i & 1 == 1 }
    }

    /// Compares two rows of sort key values (one per term).
    pub fn compare(self, a: &[Datum<'_>], b: &[Datum<'_>]) -> Ordering {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            let term = self.term(i);
            let o = match (x.is_null(), y.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) if term.nulls_first => Ordering::Less,
                (true, false) => Ordering::Greater,
                (false, true) if term.nulls_first => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) if term.descending => y.total_cmp(x),
                (false, false) => x.total_cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    }
}

impl AggregateFunc {
    pub fn name(self) -> &'static str {
        match self {
            AggregateFunc::Count | AggregateFunc::CountDistinct => "count",
            AggregateFunc::Sum => "sum",
            AggregateFunc::Avg => "avg",
            AggregateFunc::Min => "min",
            AggregateFunc::Max => "max",
            AggregateFunc::JsonArray(_) => "json_group_array",
            AggregateFunc::JsonObject { .. } => "json_group_object",
            AggregateFunc::SumDistinct => "sum",
            AggregateFunc::AvgDistinct => "avg",
            AggregateFunc::GroupConcat(_) => "group_concat",
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
            (Some(a), AggregateFunc::CountDistinct | AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct) => {
                write!(f, "{}(DISTINCT {a})", self.func.name())
            }
            (Some(Expr::List(items)), AggregateFunc::GroupConcat(spec)) if items.len() >= 2 => {
                let order = spec.order;
                let distinct = if spec.distinct { "DISTINCT " } else { "" };
                write!(f, "group_concat({distinct}{}, {}", items[0], items[1])?;
                for (i, key) in items[2..].iter().enumerate() {
                    let term = order.term(i);
                    let lead = if i == 0 { " ORDER BY " } else { ", " };
                    let direction = if term.descending { "DESC" } else { "ASC" };
                    let nulls = if term.nulls_first { "FIRST" } else { "LAST" };
                    write!(f, "{lead}{key} {direction} NULLS {nulls}")?;
                }
                if order.is_empty() {
                    f.write_str(" ORDER BY its text")?;
                }
                f.write_str(")")
            }
            (Some(Expr::List(all)), AggregateFunc::JsonArray(spec)) if all.len() > usize::from(spec.filtered) => {
                let (items, filter) = split_filter(all, spec.filtered);
                write!(f, "json_group_array({}", items[0])?;
                for (i, key) in items[1..].iter().enumerate() {
                    let term = spec.order.term(i);
                    let lead = if i == 0 { " ORDER BY " } else { ", " };
                    let direction = if term.descending { "DESC" } else { "ASC" };
                    let nulls = if term.nulls_first { "FIRST" } else { "LAST" };
                    write!(f, "{lead}{key} {direction} NULLS {nulls}")?;
                }
                if let Some(limit) = spec.limit {
                    write!(f, " LIMIT {limit}")?;
                }
                f.write_str(")")?;
                write_filter(f, filter)
            }
            (Some(Expr::List(all)), AggregateFunc::JsonObject { filtered, .. }) => {
                let (items, filter) = split_filter(all, filtered);
                f.write_str("json_group_object(")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i == 0 { "" } else { ", " })?;
                }
                f.write_str(")")?;
                write_filter(f, filter)
            }
            (Some(a), func) => write!(f, "{}({a})", func.name()),
        }
    }
}

/// The items of an aggregate's argument list and its FILTER condition.
pub fn split_filter(items: &[Expr], filtered: bool) -> (&[Expr], Option<&Expr>) {
    match items.split_last() {
        Some((condition, rest)) if filtered => (rest, Some(condition)),
        _ => (items, None),
    }
}

fn write_filter(f: &mut fmt::Formatter<'_>, filter: Option<&Expr>) -> fmt::Result {
    match filter {
        Some(c) => write!(f, " FILTER (WHERE {c})"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_terms_round_trip_and_compare() {
        let terms =
            [OrderTerm { descending: true, nulls_first: false }, OrderTerm { descending: false, nulls_first: true }];
        let order = AggregateOrder::new(&terms).unwrap();
        assert_eq!((order.len(), order.term(0), order.term(1)), (2, terms[0], terms[1]));
        let row = |a: Datum<'static>, b: Datum<'static>| [a, b];
        let mut rows = vec![
            row(Datum::Int(1), Datum::Int(2)),
            row(Datum::Null, Datum::Int(0)),
            row(Datum::Int(3), Datum::Int(1)),
            row(Datum::Int(1), Datum::Null),
        ];
        rows.sort_by(|a, b| order.compare(a, b));
        assert_eq!(
            rows,
            vec![
                row(Datum::Int(3), Datum::Int(1)),
                row(Datum::Int(1), Datum::Null),
                row(Datum::Int(1), Datum::Int(2)),
                row(Datum::Null, Datum::Int(0)),
            ]
        );
        assert!(AggregateOrder::new(&[terms[0]; 33]).is_none());
    }
}
