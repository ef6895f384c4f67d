//! The JSON aggregates' state: `json_group_array(x ORDER BY … [LIMIT k])`
//! (PostgreSQL `json_agg`) and `json_group_object(k, v)` (`json_object_agg`).
//!
//! ```text
//!  input row ──eval──► (sort bytes, element JSON text) ──► BTreeMap<entry, count>
//!                         │                                  O(log n) per change
//!                         └ ORDER BY keys in an order-preserving encoding
//!  output: open ++ the first `limit` elements' texts, in map order ++ close
//! ```
//!
//! Each element is rendered to JSON once, when its row arrives; the group's
//! rows and expressions are never revisited. A change costs O(log n) in the
//! group's state, and emitting the changed document costs its length (with a
//! LIMIT, O(k) however large the group). Elements that tie on the ORDER BY
//! keys are ordered by their JSON text; the sources leave that order
//! unspecified (SQLite keeps arrival order), so a view should order by keys
//! that identify the element (e.g. `created_at DESC, id DESC`).
//!
//! `json_group_object` is the same multiset with the member's key as the
//! sort key and `"key":value` as the text: members come out in key order.

use std::collections::{btree_map, BTreeMap};

use denorm_expr::{split_filter, AggregateFunc, EvalError, Expr, SortKey};
use denorm_types::json::{self, Construct};
use denorm_types::{Datum, Dialect, Diff, Row, Value};

use crate::operator::topk::encode_sort_key;

/// One element (or object member): its sort bytes, then its JSON text.
pub(super) type Entry = (Box<[u8]>, Box<str>);

/// A group's elements with their multiplicities, in output order.
pub(super) type Elements = BTreeMap<Entry, Diff>;

/// The entry one input row contributes, or `None` when the source skips the
/// row (a NULL key in SQLite's `json_group_object`).
pub(super) fn entry(
    func: AggregateFunc,
    arg: &Expr,
    row: &[Datum<'_>],
    dialect: Dialect,
) -> Result<Option<Entry>, EvalError> {
    let Expr::List(all) = arg else { unreachable!("the planner passes JSON aggregate inputs as a list") };
    let (items, filter) = split_filter(all, func.filtered());
    if let Some(condition) = filter {
        if !condition.holds(row, dialect)? {
            return Ok(None);
        }
    }
    let mut text = String::new();
    let mut sort = Vec::new();
    match func {
        AggregateFunc::JsonArray(spec) => {
            let keys: Vec<Value> =
                items[1..].iter().map(|k| k.eval(row, dialect).map(Datum::into_owned)).collect::<Result<_, _>>()?;
            let order: Vec<SortKey> = (0..spec.order.len())
                .map(|i| {
                    let term = spec.order.term(i);
                    SortKey { column: i, descending: term.descending, nulls_first: term.nulls_first }
                })
                .collect();
            encode_sort_key(&Row::pack(keys), &order, &mut sort);
            json::write_datum(&mut text, &no_blob(items[0].eval(row, dialect)?)?, spec.raw, dialect);
        }
        AggregateFunc::JsonObject { raw, .. } => {
            let key = items[0].eval(row, dialect)?;
            let name = match &key {
                Datum::Null if dialect == Dialect::Sqlite => return Ok(None),
                Datum::Null => return Err(EvalError::NullJsonKey),
                Datum::Text(t) => t.to_string(),
                other => other.pg_text().unwrap_or_else(|| other.to_string()),
            };
            let ascending = SortKey { column: 0, descending: false, nulls_first: true };
            encode_sort_key(&Row::pack([key]), &[ascending], &mut sort);
            json::write_string(&mut text, &name);
            text.push_str(Construct::ObjectAggregate.layout(dialect).colon);
            json::write_datum(&mut text, &no_blob(items[1].eval(row, dialect)?)?, raw, dialect);
        }
        _ => unreachable!("not a JSON aggregate: {func:?}"),
    }
    Ok(Some((sort.into_boxed_slice(), text.into_boxed_str())))
}

/// A JSON element's value: SQLite's JSON aggregates refuse a BLOB.
pub(crate) fn no_blob(value: Datum<'_>) -> Result<Datum<'_>, EvalError> {
    match value {
        Datum::Blob(_) => Err(EvalError::JsonBlob),
        v => Ok(v),
    }
}

/// Adds `diff` copies of `entry`.
pub(super) fn update(elements: &mut Elements, entry: Entry, diff: Diff) {
    match elements.entry(entry) {
        btree_map::Entry::Occupied(mut slot) => {
            *slot.get_mut() += diff;
            if *slot.get() == 0 {
                slot.remove();
            }
        }
        btree_map::Entry::Vacant(slot) => {
            if diff != 0 {
                slot.insert(diff);
            }
        }
    }
}

/// The aggregate's value: the document, or NULL for an empty group in
/// PostgreSQL (SQLite gives `[]` / `{}`).
pub(super) fn value(func: AggregateFunc, elements: &Elements, dialect: Dialect) -> Value {
    if elements.is_empty() && dialect == Dialect::Postgres {
        return Datum::Null;
    }
    let (construct, limit) = match func {
        AggregateFunc::JsonArray(spec) => (Construct::Array, spec.limit.map_or(usize::MAX, |l| l as usize)),
        _ => (Construct::ObjectAggregate, usize::MAX),
    };
    let layout = construct.layout(dialect);
    let mut out = String::from(layout.open);
    let copies =
        elements.iter().flat_map(|((_, text), &count)| std::iter::repeat_n(text, usize::try_from(count).unwrap_or(0)));
    for (i, text) in copies.take(limit).enumerate() {
        if i > 0 {
            out.push_str(layout.separator);
        }
        out.push_str(text);
    }
    out.push_str(layout.close);
    Datum::owned_text(out)
}

#[cfg(test)]
mod tests {
    use denorm_expr::{Aggregate, AggregateOrder, JsonArraySpec, OrderTerm};

    use super::super::Reduce;
    use super::*;

    /// Rows (group, id, value); `json_group_array(value ORDER BY id DESC LIMIT 2)`.
    fn newest_two(dialect: Dialect) -> Reduce {
        let order = AggregateOrder::new(&[OrderTerm { descending: true, nulls_first: false }]).unwrap();
        let func = AggregateFunc::JsonArray(JsonArraySpec { raw: false, order, limit: Some(2), filtered: false });
        let arg = Expr::List(vec![Expr::Column(2), Expr::Column(1)]);
        Reduce::new(vec![0], vec![Aggregate { func, arg: Some(arg) }], dialect)
    }

    fn row(group: i64, id: i64, value: &str) -> Row {
        Row::pack([Datum::Int(group), Datum::Int(id), Datum::text(value)])
    }

    fn out(group: i64, json: &str) -> Row {
        Row::pack([Datum::Int(group), Datum::text(json)])
    }

    #[test]
    fn a_limit_keeps_the_first_elements_and_refills_on_delete() {
        let mut reduce = newest_two(Dialect::Sqlite);
        let got = reduce.step(&[(row(1, 1, "a"), 1), (row(1, 2, "b\""), 1)]).unwrap();
        assert_eq!(got, vec![(out(1, r#"["b\"","a"]"#), 1)]);
        // An older element past the limit changes nothing visible.
        assert_eq!(reduce.step(&[(row(1, 0, "z"), 1)]).unwrap(), vec![]);
        // A newer one pushes the oldest shown out.
        let got = reduce.step(&[(row(1, 3, "c"), 1)]).unwrap();
        assert_eq!(got, vec![(out(1, r#"["b\"","a"]"#), -1), (out(1, r#"["c","b\""]"#), 1)]);
        // Deleting a shown element brings the next one in.
        let got = reduce.step(&[(row(1, 3, "c"), -1), (row(1, 2, "b\""), -1)]).unwrap();
        assert_eq!(got, vec![(out(1, r#"["c","b\""]"#), -1), (out(1, r#"["a","z"]"#), 1)]);
        // The group disappears with its last row.
        let got = reduce.step(&[(row(1, 1, "a"), -1), (row(1, 0, "z"), -1)]).unwrap();
        assert_eq!(got, vec![(out(1, r#"["a","z"]"#), -1)]);
    }

    #[test]
    fn duplicates_repeat_and_postgres_separates_with_spaces() {
        let mut reduce = newest_two(Dialect::Postgres);
        let got = reduce.step(&[(row(1, 1, "a"), 2)]).unwrap();
        assert_eq!(got, vec![(out(1, r#"["a", "a"]"#), 1)]);
    }

    #[test]
    fn objects_skip_null_keys_in_sqlite_and_fail_in_postgres() {
        let func = AggregateFunc::JsonObject { raw: true, filtered: false };
        let arg = Expr::List(vec![Expr::Column(1), Expr::Column(2)]);
        let rows = [
            (Row::pack([Datum::Int(1), Datum::Int(5), Datum::text("[1]")]), 1),
            (Row::pack([Datum::Int(1), Datum::Null, Datum::text("[2]")]), 1),
            (Row::pack([Datum::Int(1), Datum::Int(10), Datum::text("{}")]), 1),
        ];
        let mut sqlite = Reduce::new(vec![], vec![Aggregate { func, arg: Some(arg.clone()) }], Dialect::Sqlite);
        let got = sqlite.step(&rows).unwrap();
        assert_eq!(got, vec![(Row::pack([Datum::text(r#"{"5":[1],"10":{}}"#)]), 1)]);
        let mut postgres = Reduce::new(vec![], vec![Aggregate { func, arg: Some(arg) }], Dialect::Postgres);
        assert_eq!(postgres.step(&rows), Err(EvalError::NullJsonKey));
    }

    #[test]
    fn an_empty_global_aggregate_is_an_empty_document_in_sqlite_and_null_in_postgres() {
        let empty = |dialect| newest_two(dialect).step(&[]).unwrap();
        let mut global = newest_two(Dialect::Sqlite);
        global.group_key.clear();
        assert_eq!(global.step(&[]).unwrap(), vec![(Row::pack([Datum::text("[]")]), 1)]);
        let mut global = newest_two(Dialect::Postgres);
        global.group_key.clear();
        assert_eq!(global.step(&[]).unwrap(), vec![(Row::pack([Datum::Null]), 1)]);
        assert_eq!(empty(Dialect::Sqlite), vec![]);
    }
}
