//! One SQL value: [`Datum`], borrowed from a packed [`Row`](crate::Row) or owned
//! ([`Value`]).
//!
//! Comparison follows SQL: [`Datum::sql_cmp`] is three-valued (any NULL gives
//! `None`), integers and doubles compare numerically, text compares bytewise
//! (SQLite's BINARY collation, PostgreSQL's "C" collation). [`Datum::total_cmp`]
//! is the total order used for sorting, MIN/MAX and ordered multisets:
//! NULL < booleans < numbers < text, as SQLite orders mixed storage classes.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// A SQL value. Text borrows from the row it was read from, or owns what an
/// expression computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

/// A datum that owns its text.
pub type Value = Datum<'static>;

impl<'a> Datum<'a> {
    pub fn text(s: &'a str) -> Self {
        Datum::Text(Cow::Borrowed(s))
    }

    pub fn owned_text(s: impl Into<String>) -> Value {
        Datum::Text(Cow::Owned(s.into()))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// Detach from the row it borrows from.
    pub fn into_owned(self) -> Value {
        match self {
            Datum::Null => Datum::Null,
            Datum::Bool(b) => Datum::Bool(b),
            Datum::Int(i) => Datum::Int(i),
            Datum::Float(f) => Datum::Float(f),
            Datum::Text(t) => Datum::Text(Cow::Owned(t.into_owned())),
        }
    }

    /// A cheap borrowed copy.
    pub fn borrowed(&self) -> Datum<'_> {
        match self {
            Datum::Text(t) => Datum::Text(Cow::Borrowed(t.as_ref())),
            Datum::Null => Datum::Null,
            Datum::Bool(b) => Datum::Bool(*b),
            Datum::Int(i) => Datum::Int(*i),
            Datum::Float(f) => Datum::Float(*f),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Datum::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The numeric value as a double (integers and booleans convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Datum::Int(i) => Some(*i as f64),
            Datum::Float(f) => Some(*f),
            Datum::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    fn class_rank(&self) -> u8 {
        match self {
            Datum::Null => 0,
            Datum::Bool(_) => 1,
            Datum::Int(_) | Datum::Float(_) => 2,
            Datum::Text(_) => 3,
        }
    }

    /// SQL comparison: `None` when either side is NULL.
    pub fn sql_cmp(&self, other: &Datum<'_>) -> Option<Ordering> {
        if self.is_null() || other.is_null() {
            return None;
        }
        Some(self.total_cmp(other))
    }

    /// A total order over all datums (NULL first, then booleans, numbers, text).
    /// Integers and doubles compare by numeric value; NaN sorts below every
    /// other number so the order stays total.
    pub fn total_cmp(&self, other: &Datum<'_>) -> Ordering {
        match (self, other) {
            (Datum::Int(a), Datum::Int(b)) => a.cmp(b),
            (Datum::Float(a), Datum::Float(b)) => cmp_f64(*a, *b),
            (Datum::Int(a), Datum::Float(b)) => cmp_int_f64(*a, *b),
            (Datum::Float(a), Datum::Int(b)) => cmp_int_f64(*b, *a).reverse(),
            (Datum::Text(a), Datum::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Datum::Bool(a), Datum::Bool(b)) => a.cmp(b),
            _ => self.class_rank().cmp(&other.class_rank()),
        }
    }

    /// SQL equality as a join or group key sees it: NULL equals nothing.
    pub fn sql_eq(&self, other: &Datum<'_>) -> Option<bool> {
        self.sql_cmp(other).map(|o| o == Ordering::Equal)
    }
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    match a.partial_cmp(&b) {
        Some(o) => o,
        None => a.is_nan().cmp(&b.is_nan()).reverse(),
    }
}

/// Exact comparison of an integer with a double (no rounding through f64 for
/// integers above 2^53).
fn cmp_int_f64(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater;
    }
    if f >= 9_223_372_036_854_775_808.0 {
        return Ordering::Less;
    }
    if f < -9_223_372_036_854_775_808.0 {
        return Ordering::Greater;
    }
    let truncated = f.trunc() as i64;
    match i.cmp(&truncated) {
        Ordering::Equal => {
            let frac = f - f.trunc();
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

impl fmt::Display for Datum<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Datum::Null => f.write_str("NULL"),
            Datum::Bool(b) => write!(f, "{b}"),
            Datum::Int(i) => write!(f, "{i}"),
            Datum::Float(x) => write!(f, "{x:?}"),
            Datum::Text(t) => write!(f, "'{}'", t.replace('\'', "''")),
        }
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Datum::Int(i)
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Datum::Float(x)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Datum::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Datum::owned_text(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Datum::Text(Cow::Owned(s))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Datum::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_comparison_table() {
        let cases: &[(Value, Value, Option<Ordering>)] = &[
            (Datum::Int(1), Datum::Int(2), Some(Ordering::Less)),
            (Datum::Int(1), Datum::Float(1.0), Some(Ordering::Equal)),
            (Datum::Float(1.5), Datum::Int(1), Some(Ordering::Greater)),
            (Datum::Int(i64::MAX), Datum::Float(9.223372036854776e18), Some(Ordering::Less)),
            (Datum::Null, Datum::Int(1), None),
            (Datum::Int(1), Datum::Null, None),
            ("a".into(), "b".into(), Some(Ordering::Less)),
            ("B".into(), "a".into(), Some(Ordering::Less)),
            (Datum::Int(5), "a".into(), Some(Ordering::Less)),
        ];
        for (a, b, want) in cases {
            assert_eq!(a.sql_cmp(b), *want, "{a} vs {b}");
        }
    }

    #[test]
    fn total_order_puts_null_first() {
        let mut v: Vec<Value> = vec!["x".into(), Datum::Int(3), Datum::Null, Datum::Float(-1.5), Datum::Bool(true)];
        v.sort_by(|a, b| a.total_cmp(b));
        assert_eq!(v, vec![Datum::Null, Datum::Bool(true), Datum::Float(-1.5), Datum::Int(3), "x".into()]);
    }
}
