//! PostgREST-style read queries over one published view: parameter
//! parsing, the lookup-or-scan plan, SQL filter semantics, ordering and
//! pagination.
//!
//! ```text
//!  ?id=eq.7&order=name.desc&limit=10
//!        │ parse_query (by the view's column types)
//!        ▼
//!  Query { filters, order, limit, offset, select }
//!        │ plan: `eq` on every key column?
//!        ├── yes ─► Lookup(packed key) ─► rows under that key
//!        └── no ──► Scan ──────────────► every row
//!        ▼ all filters (SQL: NULL matches no comparison)
//!        ▼ order terms, then key, then whole row (a total, stable order)
//!        ▼ offset, limit (a row of multiplicity n counts n times)
//! ```
//!
//! Filter values are parsed by the column's type: an integer column takes
//! an integer or any number (compared numerically and exactly: `id=eq.2.5`
//! matches nothing, `id=eq.2.0` matches 2); a double column takes a finite
//! number; a text column takes the raw, percent-decoded string; a boolean
//! column takes `true` or `false`.

use std::cmp::Ordering;

use denorm_types::{Datum, Diff, Row, ScalarType, Value};

use crate::state::{pack_key, PublishedView, ViewInfo};

/// A parsed read query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// All must hold (AND).
    pub filters: Vec<Filter>,
    pub order: Vec<OrderTerm>,
    pub limit: Option<usize>,
    pub offset: usize,
    /// Output columns by index; `None` for all, in view order.
    pub select: Option<Vec<usize>>,
}

/// `column=[not.]op.value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub column: usize,
    pub negated: bool,
    pub op: Op,
}

/// A filter operator with its parsed operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Eq(Value),
    Neq(Value),
    Lt(Value),
    Lte(Value),
    Gt(Value),
    Gte(Value),
    In(Vec<Value>),
    IsNull,
    IsTrue,
    IsFalse,
}

/// One `order` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerm {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
}

/// How the candidate rows are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Every key column has an `eq` filter: read the rows under this packed key.
    Lookup(Row),
    /// The leading key columns have `eq` filters: read the range of keys
    /// starting with these packed values.
    Prefix(Row),
    /// Read every row.
    Scan,
}

/// A parameter the query cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParameter {
    pub parameter: String,
    pub message: String,
    pub hint: Option<String>,
}

impl BadParameter {
    fn new(parameter: &str, message: impl Into<String>) -> Self {
        BadParameter { parameter: parameter.to_owned(), message: message.into(), hint: None }
    }

    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Splits a raw query string into decoded `(name, value)` pairs, in order.
/// `+` is a space and `%XX` a byte, as in HTML form encoding.
pub fn decode_pairs(raw: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((n, v)) => (decode(n), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Parses the query parameters of a read of `view`.
pub fn parse_query(view: &ViewInfo, pairs: &[(String, String)]) -> Result<Query, BadParameter> {
    let mut query = Query { order: view.order.clone(), ..Query::default() };
    for (name, value) in pairs {
        match name.as_str() {
            "order" => query.order = parse_order(view, value)?,
            "limit" => query.limit = Some(parse_count("limit", value)?),
            "offset" => query.offset = parse_count("offset", value)?,
            "select" => query.select = Some(parse_select(view, value)?),
            // Read-your-writes wait bound, read by the HTTP layer (a column
            // named `timeout` is filtered with `timeout=eq.…` as usual).
            "timeout" if view.column_index("timeout").is_none() => {}
            column => query.filters.push(parse_filter(view, column, value)?),
        }
    }
    Ok(query)
}

fn column(view: &ViewInfo, parameter: &str, name: &str, role: &str) -> Result<usize, BadParameter> {
    view.column_index(name).ok_or_else(|| {
        let names: Vec<&str> = view.columns.iter().map(|c| c.name.as_str()).collect();
        BadParameter::new(parameter, format!("unknown column \"{name}\" in {role}")).hint(format!(
            "view \"{}\" has columns: {}",
            view.name,
            names.join(", ")
        ))
    })
}

fn parse_count(parameter: &str, value: &str) -> Result<usize, BadParameter> {
    value
        .parse::<usize>()
        .map_err(|_| BadParameter::new(parameter, format!("expected a non-negative integer, got \"{value}\"")))
}

fn parse_select(view: &ViewInfo, value: &str) -> Result<Vec<usize>, BadParameter> {
    value.split(',').map(|name| column(view, "select", name.trim(), "select")).collect()
}

fn parse_order(view: &ViewInfo, value: &str) -> Result<Vec<OrderTerm>, BadParameter> {
    value.split(',').map(|term| parse_order_term(view, term.trim())).collect()
}

fn parse_order_term(view: &ViewInfo, term: &str) -> Result<OrderTerm, BadParameter> {
    let mut parts = term.split('.');
    let name = parts.next().unwrap_or_default();
    let column = column(view, "order", name, "order")?;
    let mut descending = false;
    let mut nulls: Option<bool> = None;
    for modifier in parts {
        match modifier {
            "asc" => descending = false,
            "desc" => descending = true,
            "nullsfirst" => nulls = Some(true),
            "nullslast" => nulls = Some(false),
            other => {
                return Err(BadParameter::new("order", format!("unknown modifier \"{other}\" in \"{term}\""))
                    .hint("write order=col, col.asc, col.desc, optionally followed by .nullsfirst or .nullslast"))
            }
        }
    }
    // PostgreSQL's default: NULLs sort as if larger than every value.
    let nulls_first = nulls.unwrap_or(descending);
    Ok(OrderTerm { column, descending, nulls_first })
}

const OPERATORS_HINT: &str =
    "write column=op.value with op one of eq, neq, lt, lte, gt, gte, in.(a,b), is.null, is.true, is.false, optionally prefixed by not.";

fn parse_filter(view: &ViewInfo, name: &str, value: &str) -> Result<Filter, BadParameter> {
    let column = column(view, name, name, "filter")?;
    let ty = view.columns[column].ty;
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let Some((op, operand)) = rest.split_once('.') else {
        return Err(BadParameter::new(name, format!("expected op.value, got \"{value}\"")).hint(OPERATORS_HINT));
    };
    let scalar = |ctor: fn(Value) -> Op| parse_value(name, ty, operand).map(ctor);
    let op = match op {
        "eq" => scalar(Op::Eq)?,
        "neq" => scalar(Op::Neq)?,
        "lt" => scalar(Op::Lt)?,
        "lte" => scalar(Op::Lte)?,
        "gt" => scalar(Op::Gt)?,
        "gte" => scalar(Op::Gte)?,
        "in" => Op::In(parse_list(name, ty, operand)?),
        "is" => parse_is(name, ty, operand)?,
        other => {
            return Err(BadParameter::new(name, format!("unknown operator \"{other}\"")).hint(OPERATORS_HINT));
        }
    };
    Ok(Filter { column, negated, op })
}

fn parse_is(name: &str, ty: ScalarType, operand: &str) -> Result<Op, BadParameter> {
    match operand {
        "null" => Ok(Op::IsNull),
        "true" | "false" if ty != ScalarType::Bool => {
            Err(BadParameter::new(name, format!("is.{operand} needs a boolean column; \"{name}\" is {ty}")))
        }
        "true" => Ok(Op::IsTrue),
        "false" => Ok(Op::IsFalse),
        other => Err(BadParameter::new(name, format!("expected is.null, is.true or is.false, got is.{other}"))),
    }
}

/// `(a,b,"c,d")`: a comma-separated list in parentheses; double quotes
/// protect commas, `\"` is a quote.
fn parse_list(name: &str, ty: ScalarType, operand: &str) -> Result<Vec<Value>, BadParameter> {
    let inner = operand
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| BadParameter::new(name, format!("expected in.(a,b,...), got in.{operand}")))?;
    split_list(inner).iter().map(|item| parse_value(name, ty, item)).collect()
}

fn split_list(inner: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => items.last_mut().unwrap().extend(chars.next()),
            ',' if !quoted => items.push(String::new()),
            c => items.last_mut().unwrap().push(c),
        }
    }
    items
}

/// Parses a filter operand by the column's type.
pub fn parse_value(name: &str, ty: ScalarType, raw: &str) -> Result<Value, BadParameter> {
    let number = || raw.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let value = match ty {
        ScalarType::Int => raw.trim().parse::<i64>().ok().map(Datum::Int).or_else(|| number().map(Datum::Float)),
        ScalarType::Float => number().map(Datum::Float),
        ScalarType::Bool => match raw {
            "true" => Some(Datum::Bool(true)),
            "false" => Some(Datum::Bool(false)),
            _ => None,
        },
        // A NULL-typed column matches no comparison whatever the operand.
        ScalarType::Text | ScalarType::Null => Some(Datum::owned_text(raw)),
        ScalarType::Json => {
            return Err(BadParameter::new(name, format!("JSON column \"{name}\" cannot be filtered"))
                .hint("filter on the view's other columns"));
        }
        ScalarType::Unsupported => None,
        // A column without affinity: a number when the operand reads as
        // one (SQLite compares 12 and '12' as different values), else text.
        ScalarType::Any => Some(match raw.trim().parse::<i64>() {
            Ok(i) => Datum::Int(i),
            Err(_) => number().map_or_else(|| Datum::owned_text(raw), Datum::Float),
        }),
        ScalarType::Numeric | ScalarType::Date | ScalarType::Timestamp | ScalarType::TimestampTz | ScalarType::Uuid => {
            match denorm_types::pgtext::parse(ty, raw) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    let example = match ty {
                        ScalarType::Numeric => "an exact number such as 12.50",
                        ScalarType::Date => "an ISO date such as 2024-05-01",
                        ScalarType::Uuid => "a UUID such as a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                        _ => "an ISO timestamp such as 2024-05-01T10:00:00 (with an offset such as +02:00 for timestamptz)",
                    };
                    return Err(BadParameter::new(
                        name,
                        format!("expected {example} for {ty} column \"{name}\", got \"{raw}\" ({e})"),
                    ));
                }
                None => None,
            }
        }
    };
    value.ok_or_else(|| {
        let expected = match ty {
            ScalarType::Int => "an integer or a number",
            ScalarType::Float => "a finite number",
            _ => "true or false",
        };
        BadParameter::new(name, format!("expected {expected} for {ty} column \"{name}\", got \"{raw}\""))
    })
}

/// The values of the leading key columns that have a (non-negated) `eq`
/// filter, in key column order (the first such filter of each column).
fn key_values<'f>(view: &ViewInfo, filters: &'f [Filter]) -> Vec<&'f Value> {
    let mut values = Vec::with_capacity(view.key.len());
    for &k in &view.key {
        let eq = filters.iter().find_map(|f| match &f.op {
            Op::Eq(v) if f.column == k && !f.negated => Some(v),
            _ => None,
        });
        match eq {
            Some(v) => values.push(v),
            None => break,
        }
    }
    values
}

/// Chooses a key lookup when every key column has a (non-negated) `eq`
/// filter, a range of the index when a leading part of the key has, and a
/// scan otherwise.
pub fn plan(view: &ViewInfo, filters: &[Filter]) -> Plan {
    let values = key_values(view, filters);
    if values.is_empty() {
        Plan::Scan
    } else if values.len() == view.key.len() {
        Plan::Lookup(pack_key(values))
    } else {
        Plan::Prefix(pack_key(values))
    }
}

/// The key values (in key column order) of a query that [`plan`]s as a
/// [`Plan::Lookup`], unpacked: what a source-side lookup is asked for.
/// `None` for any other plan.
pub fn lookup_key(view: &ViewInfo, filters: &[Filter]) -> Option<Vec<Value>> {
    let values = key_values(view, filters);
    (!values.is_empty() && values.len() == view.key.len()).then(|| values.into_iter().cloned().collect())
}

/// SQL's three-valued result of `datum op operand`: `None` is NULL.
pub fn compare(op: &Op, datum: &Datum<'_>) -> Option<bool> {
    let cmp = |v: &Value| datum.sql_cmp(v);
    match op {
        Op::Eq(v) => cmp(v).map(|o| o == Ordering::Equal),
        Op::Neq(v) => cmp(v).map(|o| o != Ordering::Equal),
        Op::Lt(v) => cmp(v).map(|o| o == Ordering::Less),
        Op::Lte(v) => cmp(v).map(|o| o != Ordering::Greater),
        Op::Gt(v) => cmp(v).map(|o| o == Ordering::Greater),
        Op::Gte(v) => cmp(v).map(|o| o != Ordering::Less),
        Op::In(vs) => {
            if datum.is_null() {
                None
            } else {
                Some(vs.iter().any(|v| cmp(v) == Some(Ordering::Equal)))
            }
        }
        Op::IsNull => Some(datum.is_null()),
        Op::IsTrue => Some(matches!(datum, Datum::Bool(true))),
        Op::IsFalse => Some(matches!(datum, Datum::Bool(false))),
    }
}

/// Whether a row passes a filter: only a true comparison passes, so NULL
/// matches neither `eq` nor `not.eq`.
pub fn passes(filter: &Filter, datums: &[Datum<'_>]) -> bool {
    compare(&filter.op, &datums[filter.column]).map(|b| b != filter.negated) == Some(true)
}

/// A matching row, decoded once, with its multiplicity.
#[derive(Debug)]
pub struct Match<'a> {
    pub datums: Vec<Datum<'a>>,
    pub count: Diff,
}

/// Runs `query` over `view`: the matching rows in order, one entry per
/// distinct row; [`paginate`] then expands multiplicities and pages.
pub fn execute<'a>(view: &'a PublishedView, query: &Query) -> Vec<Match<'a>> {
    let keep = |(row, count): (&'a Row, Diff)| {
        let datums = row.unpack();
        query.filters.iter().all(|f| passes(f, &datums)).then_some(Match { datums, count })
    };
    let plan = plan(&view.info, &query.filters);
    let matches: Vec<Match<'a>> = match &plan {
        Plan::Lookup(key) => view.rows.get(key).iter().filter_map(|(r, d)| keep((r, *d))).collect(),
        Plan::Prefix(prefix) => view.rows.prefixed(prefix).filter_map(keep).collect(),
        Plan::Scan => view.rows.iter().filter_map(keep).collect(),
    };
    order_and_trim(&view.info.key, query, matches)
}

/// Runs `query` over rows given as values (one entry per row, e.g. read
/// from the source by a [`Fallback`](crate::Fallback)) exactly as
/// [`execute`] runs it over a view's rows: the same filters, order and
/// trimming; [`paginate`] then pages. Every row must have one value per
/// column of `view`.
pub fn execute_values(view: &ViewInfo, query: &Query, rows: Vec<Vec<Value>>) -> Vec<Match<'static>> {
    let matches = rows
        .into_iter()
        .filter(|datums| query.filters.iter().all(|f| passes(f, datums)))
        .map(|datums| Match { datums, count: 1 })
        .collect();
    order_and_trim(&view.key, query, matches)
}

/// Sorts matches in the served order, keeping only the first
/// `offset + limit` entries.
fn order_and_trim<'a>(key: &[usize], query: &Query, mut matches: Vec<Match<'a>>) -> Vec<Match<'a>> {
    let order = |a: &Match<'_>, b: &Match<'_>| row_order(key, &query.order, &a.datums, &b.datums);
    // Each entry is at least one output row, so only the first
    // offset + limit entries in order can be returned.
    if let Some(limit) = query.limit {
        let wanted = query.offset.saturating_add(limit);
        if wanted < matches.len() {
            if wanted == 0 {
                matches.clear();
            } else {
                matches.select_nth_unstable_by(wanted - 1, order);
                matches.truncate(wanted);
            }
        }
    }
    matches.sort_unstable_by(order);
    matches
}

/// The served order: the `order` terms, then the key columns ascending,
/// then the whole row, so that every order is total and pages are stable.
pub fn row_order(key: &[usize], order: &[OrderTerm], a: &[Datum<'_>], b: &[Datum<'_>]) -> Ordering {
    for term in order {
        let o = order_term(term, &a[term.column], &b[term.column]);
        if o != Ordering::Equal {
            return o;
        }
    }
    for &k in key {
        let o = a[k].total_cmp(&b[k]);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.iter().zip(b).map(|(x, y)| x.total_cmp(y)).find(|o| *o != Ordering::Equal).unwrap_or(Ordering::Equal)
}

fn order_term(term: &OrderTerm, a: &Datum<'_>, b: &Datum<'_>) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) if term.nulls_first => Ordering::Less,
        (true, false) => Ordering::Greater,
        (false, true) if term.nulls_first => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) if term.descending => b.total_cmp(a),
        (false, false) => a.total_cmp(b),
    }
}

/// Expands multiplicities and applies `offset` and `limit`.
pub fn paginate<'m, 'a>(matches: &'m [Match<'a>], query: &Query) -> impl Iterator<Item = &'m [Datum<'a>]> {
    matches
        .iter()
        .flat_map(|m| std::iter::repeat_n(m.datums.as_slice(), usize::try_from(m.count).unwrap_or(0)))
        .skip(query.offset)
        .take(query.limit.unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ColumnInfo;

    fn view() -> ViewInfo {
        let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
        ViewInfo {
            name: "cards".into(),
            columns: vec![
                col("id", ScalarType::Int),
                col("region", ScalarType::Text),
                col("score", ScalarType::Float),
                col("active", ScalarType::Bool),
            ],
            key: vec![0, 1],
            max_staleness: None,
            tables: vec![],
            ..Default::default()
        }
    }

    fn parse(raw: &str) -> Result<Query, BadParameter> {
        parse_query(&view(), &decode_pairs(raw))
    }

    fn filter(column: usize, negated: bool, op: Op) -> Filter {
        Filter { column, negated, op }
    }

    #[test]
    fn filter_parsing_table() {
        let f = |negated, op| Ok(vec![filter(0, negated, op)]);
        let cases: Vec<(&str, Result<Vec<Filter>, ()>)> = vec![
            ("id=eq.5", f(false, Op::Eq(Datum::Int(5)))),
            ("id=neq.-5", f(false, Op::Neq(Datum::Int(-5)))),
            ("id=lt.2.5", f(false, Op::Lt(Datum::Float(2.5)))),
            ("id=lte.1e3", f(false, Op::Lte(Datum::Float(1000.0)))),
            ("id=gt.9223372036854775807", f(false, Op::Gt(Datum::Int(i64::MAX)))),
            ("id=gte.0", f(false, Op::Gte(Datum::Int(0)))),
            ("id=in.(1,2,3)", f(false, Op::In(vec![Datum::Int(1), Datum::Int(2), Datum::Int(3)]))),
            ("id=is.null", f(false, Op::IsNull)),
            ("id=not.is.null", f(true, Op::IsNull)),
            ("id=not.eq.1", f(true, Op::Eq(Datum::Int(1)))),
            ("region=eq.a.b%20c+d", Ok(vec![filter(1, false, Op::Eq("a.b c d".into()))])),
            ("region=eq.", Ok(vec![filter(1, false, Op::Eq("".into()))])),
            ("region=in.(\"x,y\",z)", Ok(vec![filter(1, false, Op::In(vec!["x,y".into(), "z".into()]))])),
            ("score=gt.3", Ok(vec![filter(2, false, Op::Gt(Datum::Float(3.0)))])),
            ("active=eq.true", Ok(vec![filter(3, false, Op::Eq(Datum::Bool(true)))])),
            ("active=is.false", Ok(vec![filter(3, false, Op::IsFalse)])),
            (
                "id=gt.1&id=lt.9",
                Ok(vec![filter(0, false, Op::Gt(Datum::Int(1))), filter(0, false, Op::Lt(Datum::Int(9)))]),
            ),
            ("id=eq.abc", Err(())),
            ("id=eq.", Err(())),
            ("id=eq.NaN", Err(())),
            ("score=eq.inf", Err(())),
            ("score=eq.x", Err(())),
            ("active=eq.yes", Err(())),
            ("id=is.true", Err(())),
            ("id=is.nothing", Err(())),
            ("id=like.5", Err(())),
            ("id=5", Err(())),
            ("id=in.1,2", Err(())),
            ("nope=eq.1", Err(())),
        ];
        for (raw, want) in cases {
            let got = parse(raw).map(|q| q.filters).map_err(|_| ());
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn errors_name_the_parameter_and_the_problem() {
        let e = parse("nope=eq.1").unwrap_err();
        assert_eq!(e.parameter, "nope");
        assert!(e.message.contains("unknown column \"nope\""), "{e:?}");
        assert!(e.hint.unwrap().contains("id, region, score, active"));
        let e = parse("id=eq.abc").unwrap_err();
        assert_eq!((e.parameter.as_str(), e.message.contains("\"abc\"")), ("id", true), "{e:?}");
        let e = parse("id=like.5").unwrap_err();
        assert!(e.message.contains("unknown operator \"like\""), "{e:?}");
        assert_eq!(parse("limit=-1").unwrap_err().parameter, "limit");
        assert_eq!(parse("offset=x").unwrap_err().parameter, "offset");
        assert_eq!(parse("select=id,nope").unwrap_err().parameter, "select");
        assert_eq!(parse("order=nope.desc").unwrap_err().parameter, "order");
        assert!(parse("order=id.up").unwrap_err().message.contains("\"up\""));
    }

    #[test]
    fn order_select_limit_offset_parsing() {
        let term = |column, descending, nulls_first| OrderTerm { column, descending, nulls_first };
        let cases = [
            ("order=id", vec![term(0, false, false)]),
            ("order=id.asc", vec![term(0, false, false)]),
            ("order=id.desc", vec![term(0, true, true)]),
            ("order=id.desc.nullslast", vec![term(0, true, false)]),
            ("order=id.nullsfirst", vec![term(0, false, true)]),
            ("order=score.desc,region.asc", vec![term(2, true, true), term(1, false, false)]),
        ];
        for (raw, want) in cases {
            assert_eq!(parse(raw).unwrap().order, want, "{raw}");
        }
        let q = parse("select=score,id&limit=10&offset=20").unwrap();
        assert_eq!((q.select, q.limit, q.offset), (Some(vec![2, 0]), Some(10), 20));
    }

    #[test]
    fn lookup_with_eq_on_every_key_column_range_with_eq_on_leading_ones() {
        let v = view();
        let plan_of = |raw: &str| plan(&v, &parse(raw).unwrap().filters);
        let key = pack_key(&[Datum::Int(5), "eu".into()]);
        assert_eq!(plan_of("id=eq.5&region=eq.eu"), Plan::Lookup(key.clone()));
        assert_eq!(plan_of("region=eq.eu&score=gt.1&id=eq.5"), Plan::Lookup(key));
        // An integral double operand finds the integer key.
        assert_eq!(plan_of("id=eq.5.0&region=eq.eu"), Plan::Lookup(pack_key(&[Datum::Int(5), "eu".into()])));
        assert_eq!(plan_of("id=eq.5"), Plan::Prefix(pack_key(&[Datum::Int(5)])));
        assert_eq!(plan_of("id=eq.5&score=lt.3"), Plan::Prefix(pack_key(&[Datum::Int(5)])));
        assert_eq!(plan_of("region=eq.eu"), Plan::Scan);
        assert_eq!(plan_of("id=gte.5&region=eq.eu"), Plan::Scan);
        assert_eq!(plan_of("id=not.eq.5&region=eq.eu"), Plan::Scan);
        assert_eq!(plan_of("id=in.(5)&region=eq.eu"), Plan::Scan);
        assert_eq!(plan_of(""), Plan::Scan);
    }

    #[test]
    fn sql_comparison_semantics() {
        let int = Datum::Int;
        let cases: Vec<(Op, Value, Option<bool>)> = vec![
            (Op::Eq(int(1)), Datum::Float(1.0), Some(true)),
            (Op::Eq(Datum::Float(2.5)), int(2), Some(false)),
            (Op::Lt(Datum::Float(2.5)), int(2), Some(true)),
            (Op::Gt(Datum::Float(9.223372036854776e18)), int(i64::MAX), Some(false)),
            (Op::Eq(int(9007199254740993)), Datum::Float(9007199254740992.0), Some(false)),
            (Op::Lte(int(3)), int(3), Some(true)),
            (Op::Gte(int(4)), int(3), Some(false)),
            (Op::Neq(int(1)), int(2), Some(true)),
            (Op::Eq(int(1)), Datum::Null, None),
            (Op::Neq(int(1)), Datum::Null, None),
            (Op::Lt(int(1)), Datum::Null, None),
            (Op::In(vec![int(1), int(2)]), int(2), Some(true)),
            (Op::In(vec![int(1), int(2)]), int(3), Some(false)),
            (Op::In(vec![int(1)]), Datum::Null, None),
            (Op::IsNull, Datum::Null, Some(true)),
            (Op::IsNull, int(0), Some(false)),
            (Op::IsTrue, Datum::Null, Some(false)),
            (Op::IsFalse, Datum::Bool(false), Some(true)),
            (Op::Lt("b".into()), "a".into(), Some(true)),
            (Op::Lt("a".into()), "B".into(), Some(true)),
        ];
        for (op, datum, want) in cases {
            assert_eq!(compare(&op, &datum), want, "{datum} {op:?}");
        }
        // NULL passes neither a comparison nor its negation.
        let null = [Datum::Null];
        assert!(!passes(&filter(0, false, Op::Eq(int(1))), &null));
        assert!(!passes(&filter(0, true, Op::Eq(int(1))), &null));
        assert!(passes(&filter(0, true, Op::IsNull), &[int(1)]));
    }

    /// A SQLite column without affinity holds any storage class: a filter
    /// operand is a number when it reads as one, else text.
    #[test]
    fn untyped_columns_parse_operands_as_numbers_or_text() {
        let parse = |raw| parse_value("x", ScalarType::Any, raw).unwrap();
        assert_eq!(parse("12"), Datum::Int(12));
        assert_eq!(parse("2.5"), Datum::Float(2.5));
        assert_eq!(parse("abc"), Datum::text("abc"));
        assert_eq!(compare(&Op::Eq(parse("1")), &Datum::Float(1.0)), Some(true));
        assert_eq!(compare(&Op::Eq(parse("1")), &Datum::text("1")), Some(false));
    }

    #[test]
    fn order_puts_nulls_like_postgresql() {
        let asc = OrderTerm { column: 0, descending: false, nulls_first: false };
        let desc = OrderTerm { column: 0, descending: true, nulls_first: true };
        let mut rows = vec![vec![Datum::Int(2)], vec![Datum::Null], vec![Datum::Float(1.5)]];
        rows.sort_by(|a, b| row_order(&[], &[asc], a, b));
        assert_eq!(rows, vec![vec![Datum::Float(1.5)], vec![Datum::Int(2)], vec![Datum::Null]]);
        rows.sort_by(|a, b| row_order(&[], &[desc], a, b));
        assert_eq!(rows, vec![vec![Datum::Null], vec![Datum::Int(2)], vec![Datum::Float(1.5)]]);
    }
}
