//! From-scratch `group_concat`: every row of the group evaluated, the
//! non-NULL values sorted with
//! [`AggregateOrder::compare`](denorm_expr::AggregateOrder::compare) (ties,
//! and the whole order without ORDER BY, by separator then text), joined.

use denorm_expr::{Aggregate, AggregateFunc, EvalError, Expr};
use denorm_types::{Datum, Dialect, Diff, Row, Value};

fn text(v: &Value) -> Option<String> {
    match v {
        Datum::Null => None,
        Datum::Text(t) => Some(t.to_string()),
        Datum::Float(x) => Some(denorm_types::json::sqlite_float_text(*x)),
        Datum::Bool(b) => Some(u8::from(*b).to_string()),
        Datum::Int(i) => Some(i.to_string()),
        other => Some(other.pg_text().unwrap_or_else(|| other.to_string())),
    }
}

/// `group_concat(x, sep ORDER BY …)` over a whole group.
pub(super) fn aggregate(agg: &Aggregate, rows: &[(Row, Diff)], dialect: Dialect) -> Result<Value, EvalError> {
    let (Some(Expr::List(items)), AggregateFunc::GroupConcat(spec)) = (&agg.arg, agg.func) else {
        unreachable!("group_concat takes a list")
    };
    // (sort values, separator, text) per copy of each row.
    let mut elements: Vec<(Vec<Value>, String, String)> = Vec::new();
    for (row, diff) in rows {
        let datums = row.unpack();
        let values: Vec<Value> =
            items.iter().map(|e| e.eval(&datums, dialect).map(Datum::into_owned)).collect::<Result<_, _>>()?;
        let Some(element) = text(&values[0]) else { continue };
        let separator = text(&values[1]).unwrap_or_default();
        for _ in 0..usize::try_from(*diff).unwrap_or(0) {
            elements.push((values[2..].to_vec(), separator.clone(), element.clone()));
        }
    }
    let order = spec.order;
    elements.sort_by(|a, b| {
        order
            .compare(&a.0, &b.0)
            .then_with(|| (a.1.as_bytes(), a.1.len(), &a.2).cmp(&(b.1.as_bytes(), b.1.len(), &b.2)))
    });
    if spec.distinct {
        elements.dedup_by(|a, b| a.2 == b.2);
    }
    let mut out: Option<String> = None;
    for (_, separator, element) in elements {
        match &mut out {
            None => out = Some(element),
            Some(o) => {
                o.push_str(&separator);
                o.push_str(&element);
            }
        }
    }
    Ok(out.map_or(Datum::Null, Datum::owned_text))
}
