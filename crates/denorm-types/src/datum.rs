//! One SQL value: [`Datum`], borrowed from a packed [`Row`](crate::Row) or owned
//! ([`Value`]).
//!
//! Comparison follows SQL: [`Datum::sql_cmp`] is three-valued (any NULL gives
//! `None`), integers and doubles compare numerically, text compares bytewise
//! (SQLite's BINARY collation, PostgreSQL's "C" collation). [`Datum::total_cmp`]
//! is the total order used for sorting, MIN/MAX and ordered multisets:
//! NULL < booleans < numbers < text < BLOBs, as SQLite orders mixed storage
//! classes (BLOBs compare bytewise),
//! then PostgreSQL's dates < timestamps < timestamps with time zone < UUIDs
//! < intervals (the planner never compares across these); intervals compare
//! by their span, a month being 30 days (`'1 day'` equals `'24 hours'`).
//!
//! PostgreSQL's types beyond SQLite's carry their type in the datum: exact
//! [`Datum::Numeric`] (see [`crate::numeric`]), [`Datum::Date`],
//! [`Datum::Timestamp`], [`Datum::TimestampTz`] (see [`crate::temporal`])
//! and [`Datum::Uuid`]. `json`/`jsonb` columns are [`Datum::Text`] holding
//! the JSON text (type [`ScalarType::Json`](crate::ScalarType::Json)).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use crate::interval::Interval;
use crate::numeric::{self, Decimal};
use crate::temporal;

/// A SQL value. Text borrows from the row it was read from, or owns what an
/// expression computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Datum<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
    /// PostgreSQL `numeric`: exact, with its display scale (`1.50`).
    Numeric(Decimal),
    /// PostgreSQL `date`: days since 1970-01-01; `i32::MAX`/`MIN` are ±infinity.
    Date(i32),
    /// PostgreSQL `timestamp`: microseconds since 1970-01-01 00:00:00;
    /// `i64::MAX`/`MIN` are ±infinity.
    Timestamp(i64),
    /// PostgreSQL `timestamptz`: microseconds since 1970-01-01 00:00:00 UTC.
    TimestampTz(i64),
    /// PostgreSQL `uuid`: its 16 bytes (ordered bytewise, as PostgreSQL does).
    Uuid([u8; 16]),
    /// A SQLite BLOB (any column may hold one).
    Blob(Cow<'a, [u8]>),
    /// PostgreSQL `interval`: months, days, microseconds (see
    /// [`crate::interval`]); compared by its 30-day-month span.
    Interval(Interval),
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
            Datum::Numeric(n) => Datum::Numeric(n),
            Datum::Date(d) => Datum::Date(d),
            Datum::Timestamp(t) => Datum::Timestamp(t),
            Datum::TimestampTz(t) => Datum::TimestampTz(t),
            Datum::Uuid(u) => Datum::Uuid(u),
            Datum::Blob(b) => Datum::Blob(Cow::Owned(b.into_owned())),
            Datum::Interval(i) => Datum::Interval(i),
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
            Datum::Numeric(n) => Datum::Numeric(*n),
            Datum::Date(d) => Datum::Date(*d),
            Datum::Timestamp(t) => Datum::Timestamp(*t),
            Datum::TimestampTz(t) => Datum::TimestampTz(*t),
            Datum::Uuid(u) => Datum::Uuid(*u),
            Datum::Blob(b) => Datum::Blob(Cow::Borrowed(b.as_ref())),
            Datum::Interval(i) => Datum::Interval(*i),
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
            Datum::Numeric(n) => Some(numeric::to_f64(*n)),
            _ => None,
        }
    }

    fn class_rank(&self) -> u8 {
        match self {
            Datum::Null => 0,
            Datum::Bool(_) => 1,
            Datum::Int(_) | Datum::Float(_) | Datum::Numeric(_) => 2,
            Datum::Text(_) => 3,
            Datum::Blob(_) => 4,
            Datum::Date(_) => 5,
            Datum::Timestamp(_) => 6,
            Datum::TimestampTz(_) => 7,
            Datum::Uuid(_) => 8,
            Datum::Interval(_) => 9,
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
            (Datum::Blob(a), Datum::Blob(b)) => a.as_ref().cmp(b.as_ref()),
            (Datum::Bool(a), Datum::Bool(b)) => a.cmp(b),
            (Datum::Numeric(a), Datum::Numeric(b)) => numeric::cmp(*a, *b),
            (Datum::Numeric(a), Datum::Int(b)) => numeric::cmp(*a, Decimal::from(*b)),
            (Datum::Int(a), Datum::Numeric(b)) => numeric::cmp(Decimal::from(*a), *b),
            (Datum::Numeric(a), Datum::Float(b)) => cmp_f64(numeric::to_f64(*a), *b),
            (Datum::Float(a), Datum::Numeric(b)) => cmp_f64(*a, numeric::to_f64(*b)),
            (Datum::Date(a), Datum::Date(b)) => a.cmp(b),
            (Datum::Timestamp(a), Datum::Timestamp(b)) | (Datum::TimestampTz(a), Datum::TimestampTz(b)) => a.cmp(b),
            (Datum::Uuid(a), Datum::Uuid(b)) => a.cmp(b),
            (Datum::Interval(a), Datum::Interval(b)) => a.pg_cmp(*b),
            _ => self.class_rank().cmp(&other.class_rank()),
        }
    }

    /// The text PostgreSQL outputs for a value of the types beyond SQLite's
    /// (`CAST(x AS text)`), `None` for the others.
    pub fn pg_text(&self) -> Option<String> {
        let mut out = String::new();
        match self {
            Datum::Numeric(n) => numeric::write(&mut out, *n),
            Datum::Date(d) => temporal::write_date(&mut out, *d),
            Datum::Timestamp(t) => temporal::write_timestamp(&mut out, *t),
            Datum::TimestampTz(t) => temporal::write_timestamptz(&mut out, *t),
            Datum::Uuid(u) => write_uuid(&mut out, u),
            Datum::Interval(i) => crate::interval::write(&mut out, *i),
            _ => return None,
        }
        Some(out)
    }

    /// SQL equality as a join or group key sees it: NULL equals nothing.
    pub fn sql_eq(&self, other: &Datum<'_>) -> Option<bool> {
        self.sql_cmp(other).map(|o| o == Ordering::Equal)
    }
}

/// Appends a UUID in PostgreSQL's form (lower-case hex, 8-4-4-4-12).
pub fn write_uuid(out: &mut String, u: &[u8; 16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// Parses a UUID as PostgreSQL's input does: 32 hex digits, optionally in
/// braces, with a hyphen allowed after any group of four digits.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(t);
    let mut out = [0u8; 16];
    let mut n = 0;
    let bytes = t.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            // A hyphen only after a group of four digits, never first or doubled.
            if n == 0 || n % 4 != 0 || i + 1 == bytes.len() || bytes[i + 1] == b'-' {
                return None;
            }
            i += 1;
            continue;
        }
        let digit = (bytes[i] as char).to_digit(16)? as u8;
        if n >= 32 {
            return None;
        }
        out[n / 2] |= if n % 2 == 0 { digit << 4 } else { digit };
        n += 1;
        i += 1;
    }
    (n == 32).then_some(out)
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
            Datum::Blob(b) => {
                f.write_str("X'")?;
                b.iter().try_for_each(|byte| write!(f, "{byte:02X}"))?;
                f.write_str("'")
            }
            Datum::Numeric(n) => f.write_str(&numeric::to_string(*n)),
            Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_) | Datum::Uuid(_) | Datum::Interval(_) => {
                write!(f, "'{}'", self.pg_text().unwrap_or_default())
            }
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
        let blob = |b: &[u8]| Datum::Blob(b.to_vec().into());
        let mut v: Vec<Value> = vec![
            blob(b"\x01"),
            "x".into(),
            Datum::Int(3),
            Datum::Null,
            blob(b""),
            Datum::Float(-1.5),
            Datum::Bool(true),
        ];
        v.sort_by(|a, b| a.total_cmp(b));
        // SQLite's order of storage classes: NULL, numbers, text, BLOBs.
        let want = vec![
            Datum::Null,
            Datum::Bool(true),
            Datum::Float(-1.5),
            Datum::Int(3),
            "x".into(),
            blob(b""),
            blob(b"\x01"),
        ];
        assert_eq!(v, want);
        assert_eq!(blob(&[0, 255]).to_string(), "X'00FF'");
    }
}
