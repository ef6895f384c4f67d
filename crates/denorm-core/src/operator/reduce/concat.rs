//! `group_concat(x, sep ORDER BY …)` / `string_agg(x, sep …)`: the same
//! ordered multiset of rendered elements as the JSON array aggregate
//! ([`super::json`]), so a change costs O(log n) and the group is never
//! revisited.
//!
//! ```text
//!  input row ──► sort bytes: ORDER BY keys (order-preserving) ++ separator ++ its length (4 bytes)
//!                text: the value's text (SQLite's text of a number: 12, 0.5, 1.0e+20)
//!  output: text₁ ++ sep₂ ++ text₂ ++ sep₃ ++ … (each element after the first
//!          preceded by its own row's separator, as SQLite does)
//! ```
//!
//! Without ORDER BY the sort bytes hold no keys, so elements come in the
//! byte order of their text (the sources leave the order unspecified). NULL
//! values are skipped; a group without a non-NULL value gives NULL.

use denorm_expr::{AggregateOrder, EvalError, Expr, SortKey};
use denorm_types::{Datum, Dialect, Row, Value};

use super::json::{Elements, Entry};
use crate::operator::topk::encode_sort_key;

/// The entry one input row contributes, `None` for a NULL value (or a NULL
/// separator: PostgreSQL then joins without one, SQLite too).
pub(super) fn entry(
    order: AggregateOrder,
    arg: &Expr,
    row: &[Datum<'_>],
    dialect: Dialect,
) -> Result<Option<Entry>, EvalError> {
    let Expr::List(items) = arg else { unreachable!("the planner passes group_concat's inputs as a list") };
    let value = items[0].eval(row, dialect)?;
    let Some(text) = sqlite_text(&value) else { return Ok(None) };
    let separator = items[1].eval(row, dialect)?;
    let separator = sqlite_text(&separator).unwrap_or_default();
    let keys: Vec<Value> =
        items[2..].iter().map(|k| k.eval(row, dialect).map(Datum::into_owned)).collect::<Result<_, _>>()?;
    let terms: Vec<SortKey> = (0..order.len())
        .map(|i| {
            let term = order.term(i);
            SortKey { column: i, descending: term.descending, nulls_first: term.nulls_first }
        })
        .collect();
    let mut sort = Vec::new();
    encode_sort_key(&Row::pack(keys), &terms, &mut sort);
    sort.extend_from_slice(separator.as_bytes());
    sort.extend_from_slice(&u32::try_from(separator.len()).unwrap_or(u32::MAX).to_be_bytes());
    Ok(Some((sort.into_boxed_slice(), text.into_boxed_str())))
}

/// The text SQLite concatenates for a value (PostgreSQL's arguments are
/// text already).
fn sqlite_text(value: &Datum<'_>) -> Option<String> {
    match value {
        Datum::Null => None,
        Datum::Text(t) => Some(t.to_string()),
        Datum::Int(i) => Some(i.to_string()),
        Datum::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
        Datum::Float(x) => Some(denorm_types::json::sqlite_float_text(*x)),
        other => Some(other.pg_text().unwrap_or_else(|| other.to_string())),
    }
}

/// The separator an entry's sort bytes end with.
fn separator(sort: &[u8]) -> &str {
    let (rest, len) = sort.split_at(sort.len() - 4);
    let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
    std::str::from_utf8(&rest[rest.len() - len..]).unwrap_or_default()
}

/// The joined text, NULL for an empty group; with `distinct` each text once
/// (equal texts are neighbours: the planner orders DISTINCT by the value).
pub(super) fn value(elements: &Elements, distinct: bool) -> Value {
    if elements.is_empty() {
        return Datum::Null;
    }
    let mut out = String::new();
    let mut first = true;
    let mut previous: Option<&str> = None;
    for ((sort, text), &count) in elements {
        if distinct && count > 0 {
            if previous == Some(&**text) {
                continue;
            }
            previous = Some(text);
        }
        let copies = if distinct { count.clamp(0, 1) } else { count.max(0) };
        for _ in 0..copies {
            if !first {
                out.push_str(separator(sort));
            }
            first = false;
            out.push_str(text);
        }
    }
    Datum::owned_text(out)
}

#[cfg(test)]
mod tests {
    use denorm_expr::{Aggregate, AggregateFunc, ConcatSpec, OrderTerm};

    use super::super::Reduce;
    use super::*;

    /// Rows (group, id, value); `group_concat(value, '-' ORDER BY id DESC)`.
    fn concat() -> Reduce {
        let order = AggregateOrder::new(&[OrderTerm { descending: true, nulls_first: false }]).unwrap();
        let arg = Expr::List(vec![Expr::Column(2), Expr::Literal(Datum::text("-")), Expr::Column(1)]);
        Reduce::new(
            vec![0],
            vec![Aggregate { func: AggregateFunc::GroupConcat(ConcatSpec { order, distinct: false }), arg: Some(arg) }],
            Dialect::Sqlite,
        )
    }

    fn row(id: i64, value: Datum<'static>) -> Row {
        Row::pack([Datum::Int(1), Datum::Int(id), value])
    }

    fn out(text: Option<&str>) -> Row {
        Row::pack([Datum::Int(1), text.map_or(Datum::Null, Datum::text)])
    }

    #[test]
    fn joins_in_order_skips_nulls_and_follows_deletes() {
        let mut reduce = concat();
        let got = reduce.step(&[(row(1, Datum::text("a")), 1), (row(2, Datum::Float(0.5)), 1)]).unwrap();
        assert_eq!(got, vec![(out(Some("0.5-a")), 1)]);
        let got = reduce.step(&[(row(3, Datum::Null), 1), (row(0, Datum::Int(7)), 2)]).unwrap();
        assert_eq!(got, vec![(out(Some("0.5-a")), -1), (out(Some("0.5-a-7-7")), 1)]);
        let got = reduce
            .step(&[(row(1, Datum::text("a")), -1), (row(2, Datum::Float(0.5)), -1), (row(0, Datum::Int(7)), -2)])
            .unwrap();
        assert_eq!(got, vec![(out(Some("0.5-a-7-7")), -1), (out(None), 1)]);
    }
}
