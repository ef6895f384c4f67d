//! Aggregate functions of `GROUP BY` views.

use std::cmp::Ordering;
use std::fmt;

use denorm_types::Datum;

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
    },
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
            (Some(Expr::List(items)), AggregateFunc::JsonArray(spec)) if !items.is_empty() => {
                write!(f, "json_group_array({}", items[0])?;
                for (i, key) in items[1..].iter().enumerate() {
                    let term = spec.order.term(i);
                    let lead = if i == 0 { " ORDER BY " } else { ", " };
                    let direction = if term.descending { "DESC" } else { "ASC" };
                    let nulls = if term.nulls_first { "FIRST" } else { "LAST" };
                    write!(f, "{lead}{key} {direction} NULLS {nulls}")?;
                }
                match spec.limit {
                    Some(limit) => write!(f, " LIMIT {limit})"),
                    None => f.write_str(")"),
                }
            }
            (Some(Expr::List(items)), AggregateFunc::JsonObject { .. }) => {
                f.write_str("json_group_object(")?;
                for (i, item) in items.iter().enumerate() {
                    write!(f, "{}{item}", if i == 0 { "" } else { ", " })?;
                }
                f.write_str(")")
            }
            (Some(a), func) => write!(f, "{}({a})", func.name()),
        }
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
