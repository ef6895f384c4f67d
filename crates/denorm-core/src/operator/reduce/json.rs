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

use denorm_expr::{AggregateFunc, EvalError, Expr, SortKey};
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
    let Expr::List(items) = arg else { unreachable!("the planner passes JSON aggregate inputs as a list") };
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
            json::write_datum(&mut text, &items[0].eval(row, dialect)?, spec.raw, dialect);
        }
        AggregateFunc::JsonObject { raw } => {
            let key = items[0].eval(row, dialect)?;
            let name = match &key {
                Datum::Null if dialect == Dialect::Sqlite => return Ok(None),
                Datum::Null => return Err(EvalError::NullJsonKey),
                Datum::Text(t) => t.to_string(),
                other => other.to_string(),
            };
            let ascending = SortKey { column: 0, descending: false, nulls_first: true };
            encode_sort_key(&Row::pack([key]), &[ascending], &mut sort);
            json::write_string(&mut text, &name);
            text.push_str(Construct::ObjectAggregate.layout(dialect).colon);
            json::write_datum(&mut text, &items[1].eval(row, dialect)?, raw, dialect);
        }
        _ => unreachable!("not a JSON aggregate: {func:?}"),
    }
    Ok(Some((sort.into_boxed_slice(), text.into_boxed_str())))
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
