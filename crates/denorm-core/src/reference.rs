//! From-scratch evaluation of a [`Plan`] over whole tables: the oracle the
//! incremental operators are tested against. Deliberately naive (nested-loop
//! join, grouping by sorting) so that it is obviously right; never used on a
//! hot path.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::operator::spelling;
use denorm_expr::{Aggregate, AggregateFunc, EvalError, Expr, JoinKind, Numbering, Plan, SortKey};
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
            let arities = (left.arity(), right.arity());
            join(&left_rows, &right_rows, *kind, left_key, right_key, residual.as_ref(), arities, dialect)?
        }
        Plan::Reduce { input, group_key, aggregates } => {
            reduce(&evaluate(input, tables, dialect)?, group_key, aggregates, dialect)?
        }
        Plan::Distinct { input } => {
            // One row per SQL-equal value (1 and 1.0 are one), shown as the
            // first one in input order.
            let mut seen: BTreeMap<Row, Row> = BTreeMap::new();
            for (row, diff) in evaluate(input, tables, dialect)? {
                if diff > 0 {
                    seen.entry(key_form(row.iter())).or_insert(row);
                }
            }
            seen.into_values().map(|r| (r, 1)).collect()
        }
        Plan::TopK { input, partition, order, limit, rank, numbering } => {
            top_k(evaluate(input, tables, dialect)?, partition, order, (*limit, *numbering), *rank)
        }
        Plan::Union { inputs } => {
            let mut out = Vec::new();
            for input in inputs {
                out.extend(evaluate(input, tables, dialect)?);
            }
            out
        }
        Plan::Negate { input } => evaluate(input, tables, dialect)?.into_iter().map(|(r, d)| (r, -d)).collect(),
        Plan::Threshold { input } => evaluate(input, tables, dialect)?.into_iter().filter(|(_, d)| *d > 0).collect(),
        Plan::Values { rows, .. } => rows.iter().map(|r| (r.clone(), 1)).collect(),
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
    (left_arity, right_arity): (usize, usize),
    dialect: Dialect,
) -> Result<Vec<(Row, Diff)>, EvalError> {
    let mut out = Vec::new();
    let mut right_matched = vec![false; right.len()];
    for (l, ld) in left {
        let lv = l.unpack();
        let mut matched = false;
        for (i, (r, rd)) in right.iter().enumerate() {
            let rv = r.unpack();
            let keys_equal = left_key.iter().zip(right_key).all(|(&a, &b)| lv[a].sql_eq(&rv[b]) == Some(true));
            if !keys_equal {
                continue;
            }
            let both: Vec<Datum<'_>> = lv.iter().chain(&rv).cloned().collect();
            if residual.map_or(Ok(true), |p| p.holds(&both, dialect))? {
                matched = true;
                right_matched[i] = true;
                out.push((Row::pack(&both), ld * rd));
            }
        }
        if kind != JoinKind::Inner && !matched {
            let padded: Vec<Datum<'_>> =
                lv.iter().cloned().chain(std::iter::repeat_n(Datum::Null, right_arity)).collect();
            out.push((Row::pack(&padded), *ld));
        }
    }
    if kind == JoinKind::Full {
        for ((r, rd), matched) in right.iter().zip(right_matched) {
            if !matched {
                let padded: Vec<Datum<'_>> = std::iter::repeat_n(Datum::Null, left_arity).chain(r.unpack()).collect();
                out.push((Row::pack(&padded), *rd));
            }
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
    // By SQL equality (1 and 1.0 are one group), shown as the first row's
    // values in input order.
    let mut groups: BTreeMap<Row, (Row, Vec<(Row, Diff)>)> = BTreeMap::new();
    for (row, diff) in input {
        let datums = row.unpack();
        let key = Row::pack(group_key.iter().map(|&c| datums[c].clone()));
        let entry = groups.entry(key_form(key.iter())).or_insert_with(|| (key, Vec::new()));
        entry.1.push((row.clone(), *diff));
    }
    if group_key.is_empty() && groups.is_empty() {
        groups.insert(Row::empty(), (Row::empty(), Vec::new()));
    }
    let mut out = Vec::new();
    for (key, rows) in groups.into_values() {
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
    // A value spelled apart counts once, as its least spelling (as the
    // operator's `distinct.rs`); PostgreSQL then sums the distinct values
    // as its plain SUM/AVG does.
    let mut func = agg.func;
    if matches!(func, AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct) {
        values.sort_by(|a, b| a.total_cmp(b).then_with(|| spelling(a, b)));
        values.dedup_by(|later, first| later.total_cmp(first) == Ordering::Equal);
        if dialect == Dialect::Postgres {
            func = if func == AggregateFunc::AvgDistinct { AggregateFunc::Avg } else { AggregateFunc::Sum };
        }
    }
    Ok(match func {
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
            let mut sum = denorm_expr::SqliteSum::default();
            for v in &values {
                match v {
                    Datum::Text(t) => sum.add(&denorm_types::affinity::summand(t)),
                    Datum::Blob(b) => {
                        sum.add(&Datum::Float(denorm_types::affinity::real(&String::from_utf8_lossy(b))));
                    }
                    v => sum.add(v),
                }
            }
            if func == AggregateFunc::AvgDistinct {
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
            if func == AggregateFunc::Avg {
                let count = denorm_types::numeric::from_i64(values.len() as i64);
                Datum::Numeric(denorm_types::numeric::div(sum, count)?)
            } else {
                Datum::Numeric(sum)
            }
        }
        AggregateFunc::Sum | AggregateFunc::Avg if matches!(values[0], Datum::Interval(_)) => {
            // PostgreSQL's interval_accum (interval_pl, field by field) and interval_avg.
            let mut sum = denorm_types::interval::Interval::default();
            for v in &values {
                if let Datum::Interval(i) = v {
                    sum = denorm_expr::interval::plus(sum, *i)?;
                }
            }
            if func == AggregateFunc::Avg {
                sum = denorm_expr::interval::mul(sum, values.len() as f64, true)?;
            }
            Datum::Interval(sum)
        }
        AggregateFunc::Sum | AggregateFunc::Avg => {
            // SQLite's text in a sum, as it adds it.
            for v in &mut values {
                match v {
                    Datum::Text(t) => *v = denorm_types::affinity::summand(t),
                    Datum::Blob(b) => *v = Datum::Float(denorm_types::affinity::real(&String::from_utf8_lossy(b))),
                    _ => {}
                }
            }
            let ints: i128 = values.iter().map(|v| if let Datum::Int(i) = v { i128::from(*i) } else { 0 }).sum();
            if func == AggregateFunc::Sum && values.iter().all(|v| matches!(v, Datum::Int(_))) {
                let overflow = match dialect {
                    Dialect::Sqlite => EvalError::SumOverflow,
                    Dialect::Postgres => EvalError::IntegerOverflow,
                };
                return Ok(Datum::Int(i64::try_from(ints).map_err(|_| overflow)?));
            }
            // The integers' exact sum as two doubles whose sum is exact
            // (|ints| < 2^117 here), beside the doubles.
            let high = ints as f64;
            let low = (ints - high as i128) as f64;
            let mut floats: Vec<f64> =
                values.iter().filter(|v| !matches!(v, Datum::Int(_))).filter_map(Datum::as_f64).collect();
            floats.extend([high, low]);
            let total = fsum(&floats);
            if total.is_nan() && dialect == Dialect::Sqlite {
                Datum::Null
            } else if func == AggregateFunc::Avg {
                Datum::Float(total / values.len() as f64)
            } else {
                Datum::Float(total)
            }
        }
        // Equal values spelled apart in the operator's order (see `reduce.rs` `spelling`).
        AggregateFunc::Min => values.into_iter().min_by(|a, b| a.total_cmp(b).then_with(|| spelling(a, b))).unwrap(),
        AggregateFunc::Max => values.into_iter().max_by(|a, b| a.total_cmp(b).then_with(|| spelling(a, b))).unwrap(),
        AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. } | AggregateFunc::GroupConcat(_) => {
            unreachable!("evaluated above")
        }
    })
}

fn key_form<'a>(datums: impl Iterator<Item = Datum<'a>>) -> Row {
    let mut packer = RowPacker::new();
    for d in datums {
        packer.push_key(&d);
    }
    packer.finish()
}

/// The correctly rounded sum of `values` by Shewchuk's algorithm (Python's
/// `math.fsum`): independent of the operator's fixed-point `ExactSum`
/// (`operator/reduce/exact.rs`). Infinities and NaN as IEEE addition has
/// them; partial sums must stay finite (beyond ±1.8e308 the result is only
/// approximate).
pub(crate) fn fsum(values: &[f64]) -> f64 {
    let specials: Vec<f64> = values.iter().copied().filter(|v| !v.is_finite()).collect();
    if !specials.is_empty() {
        return specials.iter().sum();
    }
    let mut partials: Vec<f64> = Vec::new();
    for &v in values {
        let mut x = v;
        let mut i = 0;
        for j in 0..partials.len() {
            let mut y = partials[j];
            if x.abs() < y.abs() {
                std::mem::swap(&mut x, &mut y);
            }
            let hi = x + y;
            let lo = y - (hi - x);
            if lo != 0.0 {
                partials[i] = lo;
                i += 1;
            }
            x = hi;
        }
        partials.truncate(i);
        partials.push(x);
    }
    let Some(mut hi) = partials.pop() else { return 0.0 };
    let mut lo = 0.0;
    while let Some(y) = partials.pop() {
        let x = hi;
        hi = x + y;
        lo = y - (hi - x);
        if lo != 0.0 {
            break;
        }
    }
    // Halfway cases: the rest decides which way the last rounding goes.
    if let Some(&next) = partials.last() {
        if lo < 0.0 && next < 0.0 || lo > 0.0 && next > 0.0 {
            let y = lo * 2.0;
            let x = hi + y;
            if y == x - hi {
                hi = x;
            }
        }
    }
    hi + 0.0
}

/// Each partition's rows sorted (by SQL order, NULLs where asked, ties by
/// the row's bytes), one copy per multiplicity, the first `limit` kept.
fn top_k(
    input: Vec<(Row, Diff)>,
    partition: &[usize],
    order: &[SortKey],
    (limit, numbering): (usize, Numbering),
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
        if let Numbering::Shift(shift) = numbering {
            // Every row, with the value `offset` rows away (or its default).
            let refs: Vec<&Row> = rows.iter().collect();
            for (i, row) in rows.iter().enumerate() {
                let mut packer = RowPacker::new();
                packer.extend_from_row(row);
                if rank {
                    packer.push(&shift.pick(&refs, i));
                }
                out.push((packer.finish(), 1));
            }
            continue;
        }
        // The definitions, written directly: rows strictly before, distinct
        // ORDER BY values strictly before.
        let numbers: Vec<usize> = (0..rows.len())
            .map(|i| match numbering {
                Numbering::RowNumber => i + 1,
                Numbering::Rank => 1 + rows.iter().filter(|r| compare(r, &rows[i], order).is_lt()).count(),
                Numbering::Shift(_) => unreachable!("handled above"),
                Numbering::DenseRank => {
                    let mut earlier: Vec<&Row> = rows.iter().filter(|r| compare(r, &rows[i], order).is_lt()).collect();
                    earlier.dedup_by(|a, b| compare(a, b, order).is_eq());
                    1 + earlier.len()
                }
            })
            .collect();
        for (row, n) in rows.into_iter().zip(numbers) {
            if n > limit {
                continue;
            }
            if rank {
                let mut packer = RowPacker::new();
                packer.extend_from_row(&row);
                packer.push(&Datum::Int(n as i64));
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
