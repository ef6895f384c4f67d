//! From-scratch JSON aggregates: every row of the group evaluated, sorted
//! with [`AggregateOrder::compare`](denorm_expr::AggregateOrder::compare)
//! and rendered, with none of the incremental version's sort encoding.

use denorm_expr::{Aggregate, AggregateFunc, EvalError, Expr};
use denorm_types::json::{self, Construct};
use denorm_types::{Datum, Dialect, Diff, Row, Value};

/// `json_group_array` / `json_group_object` over a whole group.
/// SQLite's JSON aggregates refuse a BLOB value.
fn json_value(value: &Value) -> Result<&Value, EvalError> {
    match value {
        Datum::Blob(_) => Err(EvalError::JsonBlob),
        v => Ok(v),
    }
}

pub(super) fn aggregate(agg: &Aggregate, rows: &[(Row, Diff)], dialect: Dialect) -> Result<Value, EvalError> {
    let Some(Expr::List(all)) = &agg.arg else { unreachable!("JSON aggregates take a list") };
    let (items, filter) = denorm_expr::split_filter(all, agg.func.filtered());
    // (sort values, JSON text) per copy of each row.
    let mut elements: Vec<(Vec<Value>, String)> = Vec::new();
    for (row, diff) in rows {
        let datums = row.unpack();
        if let Some(condition) = filter {
            if !condition.holds(&datums, dialect)? {
                continue;
            }
        }
        let values: Vec<Value> =
            items.iter().map(|e| e.eval(&datums, dialect).map(Datum::into_owned)).collect::<Result<_, _>>()?;
        let mut text = String::new();
        let keys = match agg.func {
            AggregateFunc::JsonArray(spec) => {
                json::write_datum(&mut text, json_value(&values[0])?, spec.raw, dialect);
                values[1..].to_vec()
            }
            AggregateFunc::JsonObject { raw, .. } => {
                match &values[0] {
                    Datum::Null if dialect == Dialect::Sqlite => continue,
                    Datum::Null => return Err(EvalError::NullJsonKey),
                    Datum::Text(t) => json::write_string(&mut text, t),
                    other => json::write_string(&mut text, &other.to_string()),
                }
                text.push_str(Construct::ObjectAggregate.layout(dialect).colon);
                json::write_datum(&mut text, json_value(&values[1])?, raw, dialect);
                vec![values[0].clone()]
            }
            _ => unreachable!("not a JSON aggregate"),
        };
        for _ in 0..usize::try_from(*diff).unwrap_or(0) {
            elements.push((keys.clone(), text.clone()));
        }
    }
    if elements.is_empty() && dialect == Dialect::Postgres {
        return Ok(Datum::Null);
    }
    let (construct, limit) = match agg.func {
        AggregateFunc::JsonArray(spec) => {
            let order = spec.order;
            elements.sort_by(|a, b| order.compare(&a.0, &b.0).then_with(|| a.1.cmp(&b.1)));
            (Construct::Array, spec.limit.map_or(usize::MAX, |l| l as usize))
        }
        _ => {
            elements.sort_by(|a, b| a.0[0].total_cmp(&b.0[0]).then_with(|| a.1.cmp(&b.1)));
            (Construct::ObjectAggregate, usize::MAX)
        }
    };
    let layout = construct.layout(dialect);
    let texts: Vec<&str> = elements.iter().take(limit).map(|(_, t)| t.as_str()).collect();
    Ok(Datum::owned_text(format!("{}{}{}", layout.open, texts.join(layout.separator), layout.close)))
}
