//! From-scratch evaluation of a [`Plan`] over whole tables: the oracle the
//! incremental operators are tested against. Deliberately naive (nested-loop
//! join, grouping by sorting) so that it is obviously right; never used on a
//! hot path.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use denorm_expr::{Aggregate, AggregateFunc, EvalError, Expr, JoinKind, Plan, SortKey};
use denorm_types::{consolidate, Datum, Dialect, Diff, Row, RowPacker, Value};

mod concat;
mod json;

/// Table contents by table name (as the plan's `Get` names them).
pub type Tables = BTreeMap<String, Vec<(Row, Diff)>>;

/// The plan's result over `tables`, consolidated.
pub fn evaluate(plan: &Plan, tables: &Tables, dialect: Dialect) -> Result<Vec<(Row, Diff)>, EvalError> {
    let mut out = match plan {
        Plan::Get { table, .. } => tables.get(table).cloned().unwrap_or_default(),
        Plan::Filter { input, predicate } => {
            let mut out = Vec::new();
            for (row, diff) in evaluate(input, tables, dialect)? {
                if predicate.holds(&row.unpack(), dialect)? {
                    out.push((row, diff));
                }
            }
            out
        }
        Plan::Map { input, exprs } => {
            let mut out = Vec::new();
            for (row, diff) in evaluate(input, tables, dialect)? {
                let datums = row.unpack();
                let values: Result<Vec<Datum<'_>>, EvalError> =
                    exprs.iter().map(|e| e.eval(&datums, dialect)).collect();
                out.push((Row::pack(values?), diff));
            }
            out
        }
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            let left_rows = evaluate(left, tables, dialect)?;
            let right_rows = evaluate(right, tables, dialect)?;
            join(&left_rows, &right_rows, *kind, left_key, right_key, residual.as_ref(), right.arity(), dialect)?
        }
        Plan::Reduce { input, group_key, aggregates } => {
            reduce(&evaluate(input, tables, dialect)?, group_key, aggregates, dialect)?
        }
        Plan::Distinct { input } => {
            evaluate(input, tables, dialect)?.into_iter().filter(|(_, d)| *d > 0).map(|(r, _)| (r, 1)).collect()
        }
        Plan::TopK { input, partition, order, limit, rank } => {
            top_k(evaluate(input, tables, dialect)?, partition, order, *limit, *rank)
        }
    };
    consolidate(&mut out);
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn join(
    left: &[(Row, Diff)],
    right: &[(Row, Diff)],
    kind: JoinKind,
    left_key: &[usize],
    right_key: &[usize],
    residual: Option<&Expr>,
    right_arity: usize,
    dialect: Dialect,
) -> Result<Vec<(Row, Diff)>, EvalError> {
    let mut out = Vec::new();
    for (l, ld) in left {
        let lv = l.unpack();
        let mut matched = false;
        for (r, rd) in right {
            let rv = r.unpack();
            let keys_equal = left_key.iter().zip(right_key).all(|(&a, &b)| lv[a].sql_eq(&rv[b]) == Some(true));
            if !keys_equal {
                continue;
            }
            let both: Vec<Datum<'_>> = lv.iter().chain(&rv).cloned().collect();
            if residual.map_or(Ok(true), |p| p.holds(&both, dialect))? {
                matched = true;
                out.push((Row::pack(&both), ld * rd));
            }
        }
        if kind == JoinKind::Left && !matched {
            let padded: Vec<Datum<'_>> =
                lv.iter().cloned().chain(std::iter::repeat_n(Datum::Null, right_arity)).collect();
            out.push((Row::pack(&padded), *ld));
        }
    }
    Ok(out)
}

fn reduce(
    input: &[(Row, Diff)],
    group_key: &[usize],
    aggregates: &[Aggregate],
    dialect: Dialect,
) -> Result<Vec<(Row, Diff)>, EvalError> {
    let mut groups: BTreeMap<Row, Vec<(Row, Diff)>> = BTreeMap::new();
    for (row, diff) in input {
        let datums = row.unpack();
        let key = Row::pack(group_key.iter().map(|&c| datums[c].clone()));
        groups.entry(key).or_default().push((row.clone(), *diff));
    }
    if group_key.is_empty() && groups.is_empty() {
        groups.insert(Row::empty(), Vec::new());
    }
    let mut out = Vec::new();
    for (key, rows) in groups {
        let mut packer = RowPacker::new();
        packer.extend_from_row(&key);
        for agg in aggregates {
            packer.push(&aggregate(agg, &rows, dialect)?);
        }
        out.push((packer.finish(), 1));
    }
    Ok(out)
}

fn aggregate(agg: &Aggregate, rows: &[(Row, Diff)], dialect: Dialect) -> Result<Value, EvalError> {
    if let AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. } = agg.func {
        return json::aggregate(agg, rows, dialect);
    }
    if let AggregateFunc::GroupConcat(_) = agg.func {
        return concat::aggregate(agg, rows, dialect);
    }
    let mut values: Vec<Value> = Vec::new();
    for (row, diff) in rows {
        let v = match &agg.arg {
            Some(e) => e.eval(&row.unpack(), dialect)?.into_owned(),
            None => Datum::Int(1),
        };
        if !v.is_null() {
            values.extend(std::iter::repeat_n(v, usize::try_from(*diff).unwrap_or(0)));
        }
    }
    Ok(match agg.func {
        AggregateFunc::Count => Datum::Int(values.len() as i64),
        AggregateFunc::CountDistinct => {
            let mut packed: Vec<Row> = values
                .iter()
                .map(|v| {
                    let mut p = RowPacker::new();
                    p.push_key(v);
                    p.finish()
                })
                .collect();
            packed.sort();
            packed.dedup();
            Datum::Int(packed.len() as i64)
        }
        _ if values.is_empty() => Datum::Null,
        AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct => {
            values.sort_by(|a, b| a.total_cmp(b));
            values.dedup_by(|a, b| a.total_cmp(b) == Ordering::Equal);
            let mut sum = denorm_expr::SqliteSum::default();
            values.iter().for_each(|v| sum.add(v));
            if agg.func == AggregateFunc::AvgDistinct {
                sum.avg()
            } else {
                sum.sum()?
            }
        }
        AggregateFunc::Sum | AggregateFunc::Avg if matches!(values[0], Datum::Numeric(_)) => {
            // Exact, at the largest display scale; AVG at PostgreSQL's division scale.
            let mut sum = denorm_types::numeric::Decimal::ZERO;
            for v in &values {
                if let Datum::Numeric(n) = v {
                    sum = denorm_types::numeric::add(sum, *n, false)?;
                }
            }
            if agg.func == AggregateFunc::Avg {
                let count = denorm_types::numeric::from_i64(values.len() as i64);
                Datum::Numeric(denorm_types::numeric::div(sum, count)?)
            } else {
                Datum::Numeric(sum)
            }
        }
        AggregateFunc::Sum | AggregateFunc::Avg => {
            let all_int = values.iter().all(|v| matches!(v, Datum::Int(_)));
            let total: f64 = values.iter().filter_map(Datum::as_f64).sum();
            if agg.func == AggregateFunc::Avg {
                Datum::Float(total / values.len() as f64)
            } else if all_int {
                let sum: i128 = values.iter().map(|v| if let Datum::Int(i) = v { i128::from(*i) } else { 0 }).sum();
                Datum::Int(i64::try_from(sum).map_err(|_| EvalError::IntegerOverflow)?)
            } else {
                Datum::Float(total)
            }
        }
        AggregateFunc::Min => values.into_iter().min_by(|a, b| a.total_cmp(b)).unwrap(),
        AggregateFunc::Max => values.into_iter().max_by(|a, b| a.total_cmp(b)).unwrap(),
        AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. } | AggregateFunc::GroupConcat(_) => {
            unreachable!("evaluated above")
        }
    })
}

/// Each partition's rows sorted (by SQL order, NULLs where asked, ties by
/// the row's bytes), one copy per multiplicity, the first `limit` kept.
fn top_k(
    input: Vec<(Row, Diff)>,
    partition: &[usize],
    order: &[SortKey],
    limit: usize,
    rank: bool,
) -> Vec<(Row, Diff)> {
    let mut partitions: BTreeMap<Row, Vec<Row>> = BTreeMap::new();
    for (row, diff) in input {
        let mut key = RowPacker::new();
        for &c in partition {
            key.push_key(&row.get(c));
        }
        let copies = usize::try_from(diff).unwrap_or(0);
        partitions.entry(key.finish()).or_default().extend(std::iter::repeat_n(row, copies));
    }
    let mut out = Vec::new();
    for (_, mut rows) in partitions {
        rows.sort_by(|a, b| compare(a, b, order).then_with(|| a.cmp(b)));
        for (i, row) in rows.into_iter().take(limit).enumerate() {
            if rank {
                let mut packer = RowPacker::new();
                packer.extend_from_row(&row);
                packer.push(&Datum::Int(i as i64 + 1));
                out.push((packer.finish(), 1));
            } else {
                out.push((row, 1));
            }
        }
    }
    out
}

fn compare(a: &Row, b: &Row, order: &[SortKey]) -> Ordering {
    for key in order {
        let (x, y) = (a.get(key.column), b.get(key.column));
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if key.nulls_first => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (false, true) if key.nulls_first => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) if key.descending => x.total_cmp(&y).reverse(),
            (false, false) => x.total_cmp(&y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}
