//! PostgREST-style read queries over one published view: parameter
//! parsing, the lookup-or-scan plan, SQL filter semantics, ordering and
//! pagination.
//!
//! ```text
//!  ?id=eq.7&or=(a.lt.1,b->>c.like.x*)&order=name.desc&limit=10
//!        │ parse_query (by the view's column types)
//!        ▼
//!  Query { filters, conditions, order, limit, offset, select, projection }
//!        │ plan (top-level `filters` only): `eq` on every key column?
//!        ├── yes ─► Lookup(packed key) ─► rows under that key
//!        └── no ──► Scan ──────────────► every row
//!        ▼ all filters and conditions (SQL: NULL matches no comparison;
//!        ▼ or/and groups in three-valued logic)
//!        ▼ order terms, then key, then whole row (a total, stable order)
//!        ▼ offset, limit (a row of multiplicity n counts n times)
//! ```
//!
//! Filter values are parsed by the column's type: an integer column takes
//! an integer or any number (compared numerically and exactly: `id=eq.2.5`
//! matches nothing, `id=eq.2.0` matches 2); a double column takes a finite
//! number; a text column takes the raw, percent-decoded string; a boolean
//! column takes `true` or `false` (an integer column too, as 1 and 0). The
//! operators beyond comparison (`like`, `match`, text search, containment)
//! are documented in `ops.rs`; a JSON path's `->` value compares as the
//! JSON scalar it holds, its `->>` value as text.

use std::cmp::Ordering;

use denorm_types::{Collation, Datum, Diff, Row, ScalarType, Value};

use serde_json::Value as Json;

use crate::ops::{
    json_contains, json_of, json_overlaps, parse_json_operand, sqlite_truth, text_of, words, Pattern, Tsquery,
};
pub use crate::select::{Cast, SelectItem};
use crate::state::{pack_key, PublishedView, ViewInfo};

/// A parsed read query.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// All must hold (AND); only these choose a key lookup ([`plan`]).
    pub filters: Vec<Filter>,
    /// Further conditions that must all hold too (AND with `filters`):
    /// logical groups (`or=(…)`, `and=(…)`, `not.or=(…)`) and filters on
    /// JSON paths (`data->>kind=eq.x`).
    pub conditions: Vec<Condition>,
    pub order: Vec<OrderTerm>,
    pub limit: Option<usize>,
    pub offset: usize,
    /// Output columns by index; `None` for all, in view order.
    pub select: Option<Vec<usize>>,
    /// The `select` list with aliases, casts and JSON paths (its items'
    /// columns are `select`); `None`: the plain columns of `select`.
    pub projection: Option<Vec<SelectItem>>,
}

/// A condition of a logical group, or a filter on a JSON path.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `column[->path]=[not.]op.value`.
    Filter { filter: Filter, path: JsonPath },
    /// `or(…)` (`or`) or `and(…)`, negated by `not.`; SQL's three-valued
    /// logic: a NULL item makes an OR without a true item NULL.
    Group { or: bool, negated: bool, items: Vec<Condition> },
}

/// A JSON path into a column: `->a->0` (`text: false`, the JSON value) or
/// `->a->>b` (`text: true`, the value as text). Empty: the column itself.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonPath {
    pub steps: Vec<String>,
    pub text: bool,
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
    /// `is.true`: true for SQLite's true values too (non-zero numbers).
    IsTrue,
    IsFalse,
    /// `IS DISTINCT FROM`: never NULL.
    IsDistinct(Value),
    /// `like`/`ilike` (the pattern folds case) and `match`/`imatch`.
    Like(Pattern),
    Match(Pattern),
    /// `fts`, `plfts`, `phfts`, `wfts`: the parsed text-search query.
    Fts(Tsquery),
    /// `cs` (`@>`), `cd` (`<@`), `ov` (`&&`) with a JSON operand.
    Contains(Json),
    ContainedIn(Json),
    Overlaps(Json),
}

/// One `order` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerm {
    pub column: usize,
    pub descending: bool,
    pub nulls_first: bool,
    /// The collation the column's text sorts under: `None` for the
    /// column's own ([`ViewInfo::collations`]), as `order=` asks; a view's
    /// `ORDER BY city COLLATE NOCASE` (or `COLLATE BINARY` over a NOCASE
    /// column) read order names its own.
    pub collation: Option<Collation>,
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
    pub(crate) fn new(parameter: &str, message: impl Into<String>) -> Self {
        BadParameter { parameter: parameter.to_owned(), message: message.into(), hint: None }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
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
            "select" => {
                let items = crate::select::parse_select(view, value)?;
                query.select = Some(items.iter().map(|i| i.column).collect());
                query.projection = Some(items);
            }
            // Read-your-writes wait bound, read by the HTTP layer (a column
            // named `timeout` is filtered with `timeout=eq.…` as usual).
            "timeout" if view.column_index("timeout").is_none() => {}
            "or" | "and" | "not.or" | "not.and" if view.column_index(name).is_none() => {
                let negated = name.starts_with("not.");
                let inner = value.strip_prefix('(').and_then(|v| v.strip_suffix(')')).ok_or_else(|| {
                    BadParameter::new(name, format!("expected {name}=(filter,filter,...), got \"{value}\""))
                        .hint(LOGIC_HINT)
                })?;
                let items = parse_group_items(view, name, inner)?;
                query.conditions.push(Condition::Group { or: name.ends_with("or"), negated, items });
            }
            column => match parse_condition(view, name, column, value)? {
                Condition::Filter { filter, path } if path.steps.is_empty() => query.filters.push(filter),
                condition => query.conditions.push(condition),
            },
        }
    }
    Ok(query)
}

const LOGIC_HINT: &str =
    "write or=(col.op.value,and(col.op.value,col.not.op.value)); quote values holding , ( ) with double quotes";

/// The items of `or(…)`/`and(…)`: filters `col.[not.]op.value` and nested groups.
fn parse_group_items(view: &ViewInfo, parameter: &str, inner: &str) -> Result<Vec<Condition>, BadParameter> {
    split_top_level(inner)
        .iter()
        .map(|item| {
            let item = item.trim();
            for (prefix, or, negated) in
                [("or(", true, false), ("and(", false, false), ("not.or(", true, true), ("not.and(", false, true)]
            {
                if let Some(rest) = item.strip_prefix(prefix) {
                    let body = rest.strip_suffix(')').ok_or_else(|| {
                        BadParameter::new(parameter, format!("unbalanced parentheses in \"{item}\"")).hint(LOGIC_HINT)
                    })?;
                    return Ok(Condition::Group { or, negated, items: parse_group_items(view, parameter, body)? });
                }
            }
            let (column, value) = item.split_once('.').ok_or_else(|| {
                BadParameter::new(parameter, format!("expected col.op.value, got \"{item}\"")).hint(LOGIC_HINT)
            })?;
            parse_condition(view, parameter, column, &unquote_operand(value))
        })
        .collect()
}

/// `op."a,b"` → `op.a,b`: a logical group's double-quoted operand.
fn unquote_operand(value: &str) -> String {
    let (negation, rest) = value.strip_prefix("not.").map_or(("", value), |r| ("not.", r));
    match rest.split_once('.') {
        Some((op, operand)) if operand.len() >= 2 && operand.starts_with('"') && operand.ends_with('"') => {
            format!("{negation}{op}.{}", operand[1..operand.len() - 1].replace("\\\"", "\""))
        }
        _ => value.to_owned(),
    }
}

/// Splits at commas outside parentheses, brackets, braces (a JSON or
/// array operand) and double quotes.
pub(crate) fn split_top_level(text: &str) -> Vec<&str> {
    let mut items = vec![];
    let (mut start, mut depth, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' | '}' if !quoted => depth = depth.saturating_sub(1),
            ',' if !quoted && depth == 0 => {
                items.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// `data->a->>b` → the column and its path.
pub(crate) fn parse_path(name: &str) -> (&str, JsonPath) {
    let Some(start) = name.find("->") else { return (name, JsonPath::default()) };
    let mut path = JsonPath::default();
    let mut rest = &name[start..];
    while let Some(after) = rest.strip_prefix("->") {
        let (text, after) = after.strip_prefix('>').map_or((false, after), |a| (true, a));
        let end = after.find("->").unwrap_or(after.len());
        path.steps.push(after[..end].trim_matches(|c| c == '\'' || c == '"').to_owned());
        path.text = text;
        rest = &after[end..];
    }
    (&name[..start], path)
}

pub(crate) fn column(view: &ViewInfo, parameter: &str, name: &str, role: &str) -> Result<usize, BadParameter> {
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

fn parse_order(view: &ViewInfo, value: &str) -> Result<Vec<OrderTerm>, BadParameter> {
    value.split(',').map(|term| parse_order_term(view, term.trim())).collect()
}

fn parse_order_term(view: &ViewInfo, term: &str) -> Result<OrderTerm, BadParameter> {
    let mut parts = term.split('.');
    let name = parts.next().unwrap_or_default();
    if name.contains("->") {
        return Err(BadParameter::new("order", format!("ordering by a JSON path (\"{name}\") is not supported"))
            .hint("order by the view's columns; a view can expose the JSON value as a column of its own"));
    }
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
    Ok(OrderTerm { column, descending, nulls_first, collation: None })
}

const OPERATORS_HINT: &str = "write column=op.value with op one of eq, neq, lt, lte, gt, gte, like, ilike, match, imatch, \
     in.(a,b), is.null|true|false|unknown, isdistinct, fts, plfts, phfts, wfts, cs, cd, ov, optionally prefixed by not.";

/// `column[->path]=[not.]op.value`; `parameter` names the query parameter
/// in errors.
fn parse_condition(view: &ViewInfo, parameter: &str, name: &str, value: &str) -> Result<Condition, BadParameter> {
    let (column_name, path) = parse_path(name.trim());
    let column = column(view, parameter, column_name, "filter")?;
    let ty = match (path.steps.is_empty(), path.text) {
        (true, _) => view.columns[column].ty,
        (false, true) => ScalarType::Text,
        (false, false) => ScalarType::Json,
    };
    if !path.steps.is_empty() && !json_capable(view.columns[column].ty) {
        return Err(BadParameter::new(
            parameter,
            format!("\"{column_name}\" is {}: a JSON path needs a json or text column", view.columns[column].ty),
        ));
    }
    let (negated, rest) = match value.strip_prefix("not.") {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let Some((op, operand)) = rest.split_once('.') else {
        return Err(BadParameter::new(parameter, format!("expected op.value, got \"{value}\"")).hint(OPERATORS_HINT));
    };
    let op = parse_op(parameter, name, ty, op, operand)?;
    Ok(Condition::Filter { filter: Filter { column, negated, op }, path })
}

fn json_capable(ty: ScalarType) -> bool {
    matches!(ty, ScalarType::Json | ScalarType::Text | ScalarType::Any | ScalarType::Null)
}

fn parse_op(parameter: &str, name: &str, ty: ScalarType, op: &str, operand: &str) -> Result<Op, BadParameter> {
    let bad = |message: String| BadParameter::new(parameter, message);
    // A JSON path's `->` value compares as the JSON scalar it holds.
    let scalar = |ctor: fn(Value) -> Op| match ty {
        ScalarType::Json => Ok(ctor(json_scalar(operand))),
        _ => {
            parse_value(name, ty, operand).map(ctor).map_err(|e| BadParameter { parameter: parameter.to_owned(), ..e })
        }
    };
    let textual = |what: &str| {
        if json_capable(ty) {
            Ok(())
        } else {
            Err(bad(format!("{what} needs a text column; \"{name}\" is {ty}")).hint(
                "filter text columns (or a JSON path with ->>) with like, ilike, match, imatch and the fts operators",
            ))
        }
    };
    let pattern = |result: Result<Pattern, String>| result.map_err(|e| bad(format!("{op}: {e}")));
    let (base, config) = match op.split_once('(') {
        Some((base, config)) => (base, config.strip_suffix(')')),
        None => (op, None),
    };
    if let Some(config) = config.filter(|c| !c.eq_ignore_ascii_case("simple")) {
        return Err(bad(format!("text search configuration \"{config}\" is not supported: denorm searches text with the simple configuration only"))
            .hint(format!("write {base}.words or {base}(simple).words")));
    }
    Ok(match base {
        "eq" => scalar(Op::Eq)?,
        "neq" => scalar(Op::Neq)?,
        "lt" => scalar(Op::Lt)?,
        "lte" => scalar(Op::Lte)?,
        "gt" => scalar(Op::Gt)?,
        "gte" => scalar(Op::Gte)?,
        "isdistinct" => scalar(Op::IsDistinct)?,
        "in" => Op::In(parse_list(parameter, name, ty, operand)?),
        "is" => parse_is(parameter, name, ty, operand)?,
        "like" | "ilike" => {
            textual(base)?;
            Op::Like(pattern(Pattern::like(operand, base == "ilike"))?)
        }
        "match" | "imatch" => {
            textual(base)?;
            Op::Match(pattern(Pattern::regex(operand, base == "imatch"))?)
        }
        "fts" | "plfts" | "phfts" | "wfts" => {
            textual(base)?;
            Op::Fts(match base {
                "fts" => Tsquery::parse(operand).map_err(|e| bad(format!("fts: {e}")))?,
                "plfts" => Tsquery::plain(operand),
                "phfts" => Tsquery::phrase_of(operand),
                _ => Tsquery::websearch(operand),
            })
        }
        "cs" | "cd" | "ov" => {
            if !json_capable(ty) {
                return Err(bad(format!(
                    "{base} compares arrays, JSON or ranges; \"{name}\" is {ty}, which has no containment"
                ))
                .hint("use cs, cd and ov on json columns (or text columns holding JSON)"));
            }
            let json = parse_json_operand(operand).map_err(|e| bad(format!("{base}: {e}")))?;
            match base {
                "cs" => Op::Contains(json),
                "cd" => Op::ContainedIn(json),
                _ => Op::Overlaps(json),
            }
        }
        "sl" | "sr" | "nxr" | "nxl" | "adj" => {
            return Err(bad(format!(
                "operator \"{base}\" compares ranges (PostgreSQL's << >> &< &> -|-); denorm has no range types and \"{name}\" is {ty}"
            ))
            .hint("compare the range's bounds as two columns with lt, lte, gt, gte"));
        }
        other => return Err(bad(format!("unknown operator \"{other}\"")).hint(OPERATORS_HINT)),
    })
}

/// A JSON path value's operand: the JSON scalar it reads as, else text.
fn json_scalar(raw: &str) -> Value {
    match serde_json::from_str::<Json>(raw) {
        Ok(json) => crate::select::json_datum(&json),
        Err(_) => Datum::owned_text(raw),
    }
}

fn parse_is(parameter: &str, name: &str, ty: ScalarType, operand: &str) -> Result<Op, BadParameter> {
    let truthy = matches!(
        ty,
        ScalarType::Bool
            | ScalarType::Int
            | ScalarType::Float
            | ScalarType::Any
            | ScalarType::Numeric
            | ScalarType::Null
            | ScalarType::Json
    );
    match operand {
        "null" | "unknown" => Ok(Op::IsNull),
        "true" | "false" if !truthy => Err(BadParameter::new(
            parameter,
            format!("is.{operand} needs a boolean (or SQLite 0/1 number) column; \"{name}\" is {ty}"),
        )),
        "true" => Ok(Op::IsTrue),
        "false" => Ok(Op::IsFalse),
        other => Err(BadParameter::new(
            parameter,
            format!("expected is.null, is.true, is.false or is.unknown, got is.{other}"),
        )),
    }
}

/// `(a,b,"c,d")`: a comma-separated list in parentheses; double quotes
/// protect commas, `\"` is a quote.
fn parse_list(parameter: &str, name: &str, ty: ScalarType, operand: &str) -> Result<Vec<Value>, BadParameter> {
    let inner = operand
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| BadParameter::new(parameter, format!("expected in.(a,b,...), got in.{operand}")))?;
    split_list(inner)
        .iter()
        .map(|(item, _)| match ty {
            ScalarType::Json => Ok(json_scalar(item)),
            _ => parse_value(name, ty, item).map_err(|e| BadParameter { parameter: parameter.to_owned(), ..e }),
        })
        .collect()
}

/// The items of a comma-separated list, each with whether it was (partly)
/// double-quoted; double quotes protect commas, `\"` is a quote.
pub(crate) fn split_list(inner: &str) -> Vec<(String, bool)> {
    let mut items = vec![(String::new(), false)];
    let mut quoted = false;
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        let Some(last) = items.last_mut() else { break };
        match c {
            '"' => {
                quoted = !quoted;
                last.1 = true;
            }
            '\\' if quoted => last.0.extend(chars.next()),
            ',' if !quoted => items.push((String::new(), false)),
            c => last.0.push(c),
        }
    }
    items
}

/// Parses a filter operand by the column's type.
pub fn parse_value(name: &str, ty: ScalarType, raw: &str) -> Result<Value, BadParameter> {
    let number = || raw.trim().parse::<f64>().ok().filter(|x| x.is_finite());
    let value = match ty {
        // SQLite reads `true`/`false` as 1/0.
        ScalarType::Int => match raw {
            "true" => Some(Datum::Int(1)),
            "false" => Some(Datum::Int(0)),
            _ => raw.trim().parse::<i64>().ok().map(Datum::Int).or_else(|| number().map(Datum::Float)),
        },
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
        ScalarType::Numeric
        | ScalarType::Date
        | ScalarType::Timestamp
        | ScalarType::TimestampTz
        | ScalarType::Uuid
        | ScalarType::Interval => match denorm_types::pgtext::parse(ty, raw) {
            Some(Ok(v)) => Some(v),
            Some(Err(e)) => {
                let example = match ty {
                    ScalarType::Numeric => "an exact number such as 12.50",
                    ScalarType::Date => "an ISO date such as 2024-05-01",
                    ScalarType::Uuid => "a UUID such as a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
                    ScalarType::Interval => "an interval such as 1 day 02:00:00 or P1DT2H",
                    _ => "an ISO timestamp such as 2024-05-01T10:00:00 (with an offset such as +02:00 for timestamptz)",
                };
                return Err(BadParameter::new(
                    name,
                    format!("expected {example} for {ty} column \"{name}\", got \"{raw}\" ({e})"),
                ));
            }
            None => None,
        },
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
        // A collated column's stored bytes are not its key (`collate.rs`).
        if crate::collate::of(&view.collations, k).is_some() {
            break;
        }
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
        Op::IsTrue => Some(sqlite_truth(datum) == Some(true)),
        Op::IsFalse => Some(sqlite_truth(datum) == Some(false)),
        Op::IsDistinct(v) => Some(match (datum.is_null(), v.is_null()) {
            (true, true) => false,
            (true, false) | (false, true) => true,
            (false, false) => cmp(v) != Some(Ordering::Equal),
        }),
        Op::Like(p) | Op::Match(p) => text_of(datum).map(|t| p.matches(&t)),
        Op::Fts(q) => text_of(datum).map(|t| q.matches(&words(&t))),
        Op::Contains(v) => json_of(datum).map(|j| json_contains(&j, v)),
        Op::ContainedIn(v) => json_of(datum).map(|j| json_contains(v, &j)),
        Op::Overlaps(v) => json_of(datum).map(|j| json_overlaps(&j, v)),
    }
}

/// Whether a row passes a filter: only a true comparison passes, so NULL
/// matches neither `eq` nor `not.eq`.
/// Columns with a `collations` entry compare under it (the filters'
/// operands keyed by [`crate::collate::keyed_query`]).
pub fn passes(filter: &Filter, datums: &[Datum<'_>], collations: &[Option<Collation>]) -> bool {
    filter_result(filter, datums, collations) == Some(true)
}

fn filter_result(filter: &Filter, datums: &[Datum<'_>], collations: &[Option<Collation>]) -> Option<bool> {
    let datum = crate::collate::datum_for(&filter.op, &datums[filter.column], filter.column, collations);
    compare(&filter.op, &datum).map(|b| b != filter.negated)
}

/// SQL's three-valued result of a condition on a row.
pub fn evaluate(condition: &Condition, datums: &[Datum<'_>], collations: &[Option<Collation>]) -> Option<bool> {
    match condition {
        Condition::Filter { filter, path } if path.steps.is_empty() => filter_result(filter, datums, collations),
        Condition::Filter { filter, path } => {
            let value = crate::select::extract(&datums[filter.column], path);
            compare(&filter.op, &value).map(|b| b != filter.negated)
        }
        Condition::Group { or, negated, items } => {
            let mut unknown = false;
            for item in items {
                match evaluate(item, datums, collations) {
                    Some(b) if b == *or => return Some(*or != *negated),
                    None => unknown = true,
                    Some(_) => {}
                }
            }
            (!unknown).then_some(*or == *negated)
        }
    }
}

/// Whether a row passes every filter and condition of `query`.
pub fn matches(query: &Query, datums: &[Datum<'_>]) -> bool {
    matches_under(query, datums, &[])
}

/// [`matches`] with columns compared under `collations` (the query keyed
/// by [`crate::collate::keyed_query`]).
fn matches_under(query: &Query, datums: &[Datum<'_>], collations: &[Option<Collation>]) -> bool {
    query.filters.iter().all(|f| passes(f, datums, collations))
        && query.conditions.iter().all(|c| evaluate(c, datums, collations) == Some(true))
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
    let collations = &view.info.collations;
    let keyed = collations.iter().any(Option::is_some).then(|| crate::collate::keyed_query(query, collations));
    let filtered = keyed.as_ref().unwrap_or(query);
    let keep = |(row, count): (&'a Row, Diff)| {
        let datums = row.unpack();
        matches_under(filtered, &datums, collations).then_some(Match { datums, count })
    };
    let plan = plan(&view.info, &query.filters);
    let matches: Vec<Match<'a>> = match &plan {
        Plan::Lookup(key) => view.rows.get(key).iter().filter_map(|(r, d)| keep((r, *d))).collect(),
        Plan::Prefix(prefix) => view.rows.prefixed(prefix).filter_map(keep).collect(),
        Plan::Scan => view.rows.iter().filter_map(keep).collect(),
    };
    order_and_trim(&view.info.key, query, matches, collations)
}

/// Runs `query` over rows given as values (one entry per row, e.g. read
/// from the source by a [`Fallback`](crate::Fallback)) exactly as
/// [`execute`] runs it over a view's rows: the same filters, order and
/// trimming; [`paginate`] then pages. Every row must have one value per
/// column of `view`.
pub fn execute_values(view: &ViewInfo, query: &Query, rows: Vec<Vec<Value>>) -> Vec<Match<'static>> {
    let keyed = crate::collate::keyed_query(query, &view.collations);
    let matches = rows
        .into_iter()
        .filter(|datums| matches_under(&keyed, datums, &view.collations))
        .map(|datums| Match { datums, count: 1 })
        .collect();
    order_and_trim(&view.key, query, matches, &view.collations)
}

/// Sorts matches in the served order, keeping only the first
/// `offset + limit` entries.
fn order_and_trim<'a>(
    key: &[usize],
    query: &Query,
    mut matches: Vec<Match<'a>>,
    collations: &[Option<Collation>],
) -> Vec<Match<'a>> {
    let order = |a: &Match<'_>, b: &Match<'_>| row_order_under(key, &query.order, &a.datums, &b.datums, collations);
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
    row_order_under(key, order, a, b, &[])
}

/// [`row_order`] with the `order` terms' columns compared under their
/// `collations`, or the term's own when it names one (the tie-breaks stay
/// bytewise).
fn row_order_under(
    key: &[usize],
    order: &[OrderTerm],
    a: &[Datum<'_>],
    b: &[Datum<'_>],
    collations: &[Option<Collation>],
) -> Ordering {
    for term in order {
        let c = match term.collation {
            Some(c) => Some(c).filter(|c| *c != Collation::Binary),
            None => crate::collate::of(collations, term.column),
        };
        let (x, y) = (crate::collate::key(&a[term.column], c), crate::collate::key(&b[term.column], c));
        let o = order_term(term, &x, &y);
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
            ("region=is.true", Err(())),
            ("id=is.true", f(false, Op::IsTrue)),
            ("id=eq.true", f(false, Op::Eq(Datum::Int(1)))),
            ("id=isdistinct.3", f(false, Op::IsDistinct(Datum::Int(3)))),
            ("id=sl.(1,2)", Err(())),
            ("id=cs.{1}", Err(())),
            ("region=fts(english).a", Err(())),
            ("region=fts.a b", Err(())),
            ("region=match.(", Err(())),
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
        let e = parse("id=nope.5").unwrap_err();
        assert!(e.message.contains("unknown operator \"nope\""), "{e:?}");
        let e = parse("id=like.5").unwrap_err();
        assert!(e.message.contains("like needs a text column"), "{e:?}");
        let e = parse("id=adj.(1,2)").unwrap_err();
        assert!(e.message.contains("\"adj\" compares ranges"), "{e:?}");
        assert_eq!(parse("or=(id.eq.1,nope.eq.2)").unwrap_err().parameter, "or");
        assert!(parse("or=id.eq.1").unwrap_err().message.contains("or=(filter"));
        assert_eq!(parse("limit=-1").unwrap_err().parameter, "limit");
        assert_eq!(parse("offset=x").unwrap_err().parameter, "offset");
        assert_eq!(parse("select=id,nope").unwrap_err().parameter, "select");
        assert_eq!(parse("order=nope.desc").unwrap_err().parameter, "order");
        assert!(parse("order=id.up").unwrap_err().message.contains("\"up\""));
    }

    #[test]
    fn order_select_limit_offset_parsing() {
        let term = |column, descending, nulls_first| OrderTerm { column, descending, nulls_first, collation: None };
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
        assert!(!passes(&filter(0, false, Op::Eq(int(1))), &null, &[]));
        assert!(!passes(&filter(0, true, Op::Eq(int(1))), &null, &[]));
        assert!(passes(&filter(0, true, Op::IsNull), &[int(1)], &[]));
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

    /// Rows of `view()` with the ids for which `raw` holds.
    fn ids_matching(raw: &str) -> Vec<i64> {
        let q = parse(raw).unwrap();
        let rows: Vec<Vec<Value>> = vec![
            vec![Datum::Int(1), "eu north".into(), Datum::Float(1.5), Datum::Bool(true)],
            vec![Datum::Int(2), "US west".into(), Datum::Null, Datum::Bool(false)],
            vec![Datum::Int(3), Datum::Null, Datum::Float(-2.0), Datum::Null],
            vec![Datum::Int(4), "eu, south".into(), Datum::Float(0.0), Datum::Bool(true)],
        ];
        rows.iter().filter(|r| matches(&q, r)).map(|r| if let Datum::Int(i) = r[0] { i } else { 0 }).collect()
    }

    #[test]
    fn operators_and_logical_groups() {
        let cases: &[(&str, &[i64])] = &[
            ("region=like.eu*", &[1, 4]),
            ("region=like.EU*", &[]),
            ("region=ilike.EU%25", &[1, 4]),
            ("region=not.like.eu*", &[2]),
            ("region=match.^US", &[2]),
            ("region=imatch.^us", &[2]),
            ("region=fts.eu%26south", &[4]),
            ("region=plfts.North EU", &[1]),
            ("region=phfts.eu north", &[1]),
            ("region=wfts.west or south", &[2, 4]),
            ("region=fts(simple).us", &[2]),
            ("score=isdistinct.1.5", &[2, 3, 4]),
            ("score=not.isdistinct.1.5", &[1]),
            ("active=is.unknown", &[3]),
            ("score=is.true", &[1, 3]),
            ("score=is.false", &[4]),
            ("or=(id.eq.1,score.lt.0)", &[1, 3]),
            ("or=(score.gt.100,region.eq.x)", &[]),
            ("not.or=(score.gt.0,id.eq.4)", &[3]),
            ("and=(id.gt.1,or(score.is.null,score.lt.0))", &[2, 3]),
            ("or=(and(id.gte.3,region.not.is.null),id.eq.1)", &[1, 4]),
            ("or=(region.eq.\"eu, south\",id.in.(2,3))", &[2, 3, 4]),
            ("or=(region.not.and(a))", &[]),
            ("id=gt.1&or=(score.lt.0,active.is.false)", &[2, 3]),
            // NULL OR false is NULL: row 2's score is NULL; NOT keeps it out.
            ("not.or=(score.gt.1,id.eq.9)", &[3, 4]),
        ];
        for (raw, want) in cases {
            if raw.contains("region.not.and") {
                assert!(parse(raw).is_err(), "{raw}");
                continue;
            }
            assert_eq!(ids_matching(raw), *want, "{raw}");
        }
    }

    #[test]
    fn logical_groups_and_json_paths_are_conditions_not_filters() {
        let q = parse("id=eq.5&region=eq.eu&or=(id.eq.1,id.eq.2)").unwrap();
        assert_eq!(q.filters.len(), 2);
        assert_eq!(q.conditions.len(), 1);
        // The keyed lookup stays: the group is checked on the looked-up rows.
        assert_eq!(plan(&view(), &q.filters), Plan::Lookup(pack_key(&[Datum::Int(5), "eu".into()])));
        let q = parse("region->>a=eq.x").unwrap();
        assert!(q.filters.is_empty());
        assert_eq!(
            q.conditions,
            vec![Condition::Filter {
                filter: filter(1, false, Op::Eq("x".into())),
                path: JsonPath { steps: vec!["a".into()], text: true }
            }]
        );
        assert!(parse("score->a=eq.1").is_err());
    }

    #[test]
    fn json_path_filters() {
        let q = |raw| parse(raw).unwrap();
        let row = |json: &str| vec![Datum::Int(1), Datum::owned_text(json), Datum::Null, Datum::Null];
        let doc = row(r#"{"a":{"b":"x","n":2},"tags":["red","blue"]}"#);
        assert!(matches(&q("region->a->>b=eq.x"), &doc));
        assert!(matches(&q("region->a->n=gt.1"), &doc));
        assert!(matches(&q("region->a->>n=eq.2"), &doc));
        assert!(!matches(&q("region->a->n=eq.3"), &doc));
        assert!(matches(&q("region->tags=cs.[\"red\"]"), &doc));
        assert!(matches(&q("region=cs.{\"a\":{\"n\":2}}"), &doc));
        assert!(matches(&q("region->tags=ov.{blue,green}"), &doc));
        assert!(matches(&q("region->tags=cd.[\"red\",\"blue\",\"green\"]"), &doc));
        assert!(!matches(&q("region->missing->>x=eq.x"), &doc));
        assert!(matches(&q("region->missing=is.null"), &doc));
        assert!(!matches(&q("region->>a=eq.x"), &row("not json")));
    }

    #[test]
    fn order_puts_nulls_like_postgresql() {
        let asc = OrderTerm { column: 0, descending: false, nulls_first: false, collation: None };
        let desc = OrderTerm { column: 0, descending: true, nulls_first: true, collation: None };
        let mut rows = vec![vec![Datum::Int(2)], vec![Datum::Null], vec![Datum::Float(1.5)]];
        rows.sort_by(|a, b| row_order(&[], &[asc], a, b));
        assert_eq!(rows, vec![vec![Datum::Float(1.5)], vec![Datum::Int(2)], vec![Datum::Null]]);
        rows.sort_by(|a, b| row_order(&[], &[desc], a, b));
        assert_eq!(rows, vec![vec![Datum::Null], vec![Datum::Int(2)], vec![Datum::Float(1.5)]]);
    }

    /// A term naming a collation sorts under it whatever the column's own
    /// (`None` keeps the column's); ties still break bytewise.
    #[test]
    fn a_term_sorts_under_the_collation_it_names() {
        let text = |t: &'static str| vec![Datum::text(t)];
        let sorted = |term: OrderTerm, own: Option<Collation>| {
            let mut rows = [text("b"), text("B"), text("a "), text("A")];
            rows.sort_by(|a, b| row_order_under(&[], &[term], a, b, &[own]));
            rows.iter().map(|r| format!("{:?}", r[0])).collect::<Vec<_>>().join(",")
        };
        let term = |collation| OrderTerm { column: 0, descending: false, nulls_first: true, collation };
        let binary = sorted(term(None), None);
        assert_eq!(binary, r#"Text("A"),Text("B"),Text("a "),Text("b")"#);
        assert_eq!(sorted(term(Some(Collation::Binary)), Some(Collation::NoCase)), binary);
        let nocase = r#"Text("A"),Text("a "),Text("B"),Text("b")"#;
        assert_eq!(sorted(term(Some(Collation::NoCase)), None), nocase);
        assert_eq!(sorted(term(None), Some(Collation::NoCase)), nocase);
        let rtrim = r#"Text("A"),Text("B"),Text("a "),Text("b")"#;
        assert_eq!(sorted(term(Some(Collation::Rtrim)), Some(Collation::NoCase)), rtrim);
    }
}
