//! Reads of columns that compare under a collation (SQLite's NOCASE and
//! RTRIM; PostgreSQL's `character(n)`, marked RTRIM: trailing blanks do not
//! count), as the source compares them in a WHERE: `?city=eq.paris` finds
//! `Paris` in a NOCASE column, `in`, `neq`, `lt`…, `is.distinct` too, and
//! `order=city` sorts under the collation (ties then by the key columns and
//! the whole row, bytewise, as every read order). Both sides are compared
//! by their collation key ([`Collation::key`], bytewise as the text
//! compares under the collation); pattern operators (`like`, `match`, text
//! search) read the value itself, as SQLite's LIKE ignores the column's
//! collation. A key lookup needs the stored key bytes, so an `eq` on a
//! collated key column reads by scan (or by the index range of the key
//! columns before it) instead.

use std::borrow::Cow;

use denorm_types::{Collation, Datum, Value};

use crate::query::{Condition, Op, Query};

/// The collation column `column` compares under, if it is not BINARY.
pub fn of(collations: &[Option<Collation>], column: usize) -> Option<Collation> {
    collations.get(column).copied().flatten().filter(|c| *c != Collation::Binary)
}

/// `datum` as its key under `collation` (text only; other values as they are).
pub fn key<'d, 'a>(datum: &'d Datum<'a>, collation: Option<Collation>) -> Cow<'d, Datum<'a>> {
    match (datum, collation) {
        (Datum::Text(t), Some(c)) => match c.key(t) {
            Cow::Borrowed(k) if k.len() == t.len() => Cow::Borrowed(datum),
            k => Cow::Owned(Datum::owned_text(k.into_owned())),
        },
        _ => Cow::Borrowed(datum),
    }
}

fn key_value(v: &Value, c: Collation) -> Value {
    key(v, Some(c)).into_owned()
}

/// `op` with its operands replaced by their keys under `collation`, when
/// it compares values (the datum compared must be keyed alike); `None`
/// when `op` reads the value itself or there is no collation.
pub fn keyed_op(op: &Op, collation: Option<Collation>) -> Option<Op> {
    let c = collation?;
    Some(match op {
        Op::Eq(v) => Op::Eq(key_value(v, c)),
        Op::Neq(v) => Op::Neq(key_value(v, c)),
        Op::Lt(v) => Op::Lt(key_value(v, c)),
        Op::Lte(v) => Op::Lte(key_value(v, c)),
        Op::Gt(v) => Op::Gt(key_value(v, c)),
        Op::Gte(v) => Op::Gte(key_value(v, c)),
        Op::IsDistinct(v) => Op::IsDistinct(key_value(v, c)),
        Op::In(vs) => Op::In(vs.iter().map(|v| key_value(v, c)).collect()),
        _ => return None,
    })
}

/// `query` with the operands of comparisons on collated columns keyed
/// once (the rows' values are keyed as they are compared, [`datum_for`]).
pub fn keyed_query(query: &Query, collations: &[Option<Collation>]) -> Query {
    let mut out = query.clone();
    for f in &mut out.filters {
        if let Some(op) = keyed_op(&f.op, of(collations, f.column)) {
            f.op = op;
        }
    }
    out.conditions.iter_mut().for_each(|c| key_condition(c, collations));
    out
}

fn key_condition(condition: &mut Condition, collations: &[Option<Collation>]) {
    match condition {
        Condition::Filter { filter, path } if path.steps.is_empty() => {
            if let Some(op) = keyed_op(&filter.op, of(collations, filter.column)) {
                filter.op = op;
            }
        }
        Condition::Filter { .. } => {}
        Condition::Group { items, .. } => items.iter_mut().for_each(|c| key_condition(c, collations)),
    }
}

/// The value a filter of [`keyed_query`] compares for `datum` (column
/// `column`): its key when the filter's operator compares values.
pub fn datum_for<'d, 'a>(
    op: &Op,
    datum: &'d Datum<'a>,
    column: usize,
    collations: &[Option<Collation>],
) -> Cow<'d, Datum<'a>> {
    match of(collations, column) {
        Some(c) if keyed_op(op, Some(c)).is_some() => key(datum, Some(c)),
        _ => Cow::Borrowed(datum),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::compare;

    #[test]
    fn comparisons_read_keys_patterns_read_values() {
        let paris = Datum::text("Paris");
        let nocase = Some(Collation::NoCase);
        let eq = Op::Eq(Value::from("PARIS"));
        assert_eq!(compare(&eq, &paris), Some(false));
        let keyed = keyed_op(&eq, nocase).unwrap();
        assert_eq!(compare(&keyed, &key(&paris, nocase)), Some(true));
        let within = keyed_op(&Op::In(vec![Value::from("x"), Value::from("pARIS")]), nocase).unwrap();
        assert_eq!(compare(&within, &key(&paris, nocase)), Some(true));
        let rtrim = Some(Collation::Rtrim);
        assert_eq!(
            compare(&keyed_op(&Op::Eq(Value::from("ab")), rtrim).unwrap(), &key(&Datum::text("ab  "), rtrim)),
            Some(true)
        );
        assert!(keyed_op(&Op::IsNull, nocase).is_none());
        assert!(keyed_op(&eq, None).is_none());
        assert_eq!(of(&[Some(Collation::Binary), nocase], 0), None);
        assert_eq!(of(&[None, nocase], 1), nocase);
    }
}
