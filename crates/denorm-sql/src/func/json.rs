//! JSON functions and aggregates → [`Func::JsonArray`]/[`Func::JsonObject`]
//! and [`AggregateFunc::JsonArray`]/[`AggregateFunc::JsonObject`].
//!
//! | SQLite | PostgreSQL | result |
//! |---|---|---|
//! | `json_array(v, …)` | `json_build_array(v, …)` | JSON, never NULL |
//! | `json_object(k, v, …)` | `json_build_object(k, v, …)` | JSON, never NULL; keys are text |
//! | `json_group_array(v ORDER BY … [LIMIT n])` | `json_agg(v ORDER BY … [LIMIT n])` | JSON: `[]` for no rows in SQLite, NULL in PostgreSQL |
//! | `json_group_object(k, v)` | `json_object_agg(k, v)` | JSON, members in key order |
//!
//! Values are integers, doubles, text (a JSON string), booleans (SQLite:
//! 0/1), NULL (`null`) or JSON (embedded as it is: `json_object('r',
//! json_group_array(…))` nests). ORDER BY is required in the array
//! aggregates, because without it the sources' element order is
//! unspecified. `LIMIT n` inside the call is a denorm extension neither
//! source runs: the first n elements in order ("the 3 newest reviews"),
//! maintained without revisiting the group.

use std::cell::RefCell;

use denorm_expr::{AggregateFunc, AggregateOrder, Expr, Func, JsonAccess, JsonArraySpec, OrderTerm};
use denorm_types::{Dialect, ScalarType};
use sqlparser::ast::{self, FunctionArg, FunctionArgExpr, FunctionArgumentClause, OrderBySort};

use crate::expr::{Clause, Grouping, Lowerer};
use crate::types::{bool_as_int, Typed};
use crate::{Location, PlanError};

/// The type a subquery's column has outside it. SQLite marks JSON as JSON
/// with a value subtype that does not cross subquery boundaries (3.45 on):
/// `SELECT json_group_array(j) FROM (SELECT json_object('a', 1) AS j)` is
/// `["{\"a\":1}"]`, so there a JSON column of a subquery is text.
/// PostgreSQL's `json` is a real type and stays JSON.
pub(crate) fn outside_subquery(ty: ScalarType, dialect: Dialect) -> ScalarType {
    match (ty, dialect) {
        (ScalarType::Json, Dialect::Sqlite) => ScalarType::Text,
        (ty, _) => ty,
    }
}

/// The names of the JSON aggregates in either dialect.
pub(crate) fn is_json_aggregate(name: &str) -> bool {
    matches!(name, "json_group_array" | "json_agg" | "json_group_object" | "json_object_agg")
}

/// The names of the scalar JSON functions in either dialect.
pub(crate) fn is_json_function(name: &str) -> bool {
    matches!(name, "json_array" | "json_object" | "json_build_array" | "json_build_object")
}

/// The name `dialect` uses for a JSON function, when `name` is the other
/// dialect's.
fn dialect_name(name: &str, dialect: Dialect) -> Option<&'static str> {
    match (dialect, name) {
        (Dialect::Sqlite, "json_build_array") => Some("json_array"),
        (Dialect::Sqlite, "json_build_object") => Some("json_object"),
        (Dialect::Sqlite, "json_agg") => Some("json_group_array"),
        (Dialect::Sqlite, "json_object_agg") => Some("json_group_object"),
        (Dialect::Postgres, "json_array") => Some("json_build_array"),
        (Dialect::Postgres, "json_object") => Some("json_build_object"),
        (Dialect::Postgres, "json_group_array") => Some("json_agg"),
        (Dialect::Postgres, "json_group_object") => Some("json_object_agg"),
        _ => None,
    }
}

fn check_dialect(name: &str, dialect: Dialect, at: Option<Location>) -> Result<(), PlanError> {
    match dialect_name(name, dialect) {
        None => Ok(()),
        Some(ours) => {
            let source = if dialect == Dialect::Sqlite { "SQLite" } else { "PostgreSQL" };
            Err(PlanError::new(format!("function {name}(…) is not supported by {source}"), at)
                .hint(format!("write {ours}(…)")))
        }
    }
}

/// A JSON function's value argument: every type is one (text becomes a JSON
/// string, JSON is embedded); SQLite's comparisons are the integers 0 and 1.
fn json_value(t: Typed, dialect: Dialect) -> Typed {
    bool_as_int(t, dialect)
}

/// Bit i set when argument i is JSON.
fn raw_mask(args: &[Typed], at: Option<Location>) -> Result<u64, PlanError> {
    let mut raw = 0u64;
    for (i, a) in args.iter().enumerate() {
        if a.ty == ScalarType::Json {
            if i >= 64 {
                return Err(PlanError::new("JSON functions take at most 64 arguments", at));
            }
            raw |= 1 << i;
        }
    }
    Ok(raw)
}

impl Lowerer<'_, '_> {
    /// `json_array(…)`, `json_object(…)` and their PostgreSQL spellings.
    pub(crate) fn json_function(&self, name: &str, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        check_dialect(name, self.dialect, at)?;
        let args = args.into_iter().map(|a| json_value(a, self.dialect)).collect::<Vec<_>>();
        let raw = raw_mask(&args, at)?;
        let func = if name.ends_with("array") {
            Func::JsonArray { raw }
        } else {
            if args.len() % 2 != 0 {
                return Err(PlanError::new(format!("{name} takes an even number of arguments (key, value, …)"), at));
            }
            for key in args.iter().step_by(2) {
                if key.ty != ScalarType::Text {
                    return Err(PlanError::new(format!("{name} keys must be text, not {}", key.ty), at)
                        .hint("write the key as a 'string' or CAST it to TEXT"));
                }
            }
            Func::JsonObject { raw }
        };
        Ok(Typed::new(Expr::Call { func, args: args.into_iter().map(|a| a.expr).collect() }, ScalarType::Json, false))
    }

    /// SQLite's `j -> path` (the element's JSON text) and `j ->> path` (its
    /// SQL value: text, integer or double, whatever the element holds).
    pub(crate) fn json_arrow(
        &self,
        l: &ast::Expr,
        r: &ast::Expr,
        value: bool,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        let symbol = if value { "->>" } else { "->" };
        if self.dialect == Dialect::Postgres {
            return self.pg_json_arrow(l, r, value, at, d);
        }
        let document = bool_as_int(self.lower(l, d)?, self.dialect);
        let path = bool_as_int(self.lower(r, d)?, self.dialect);
        let accepted = |t: ScalarType| {
            matches!(t, ScalarType::Text | ScalarType::Json | ScalarType::Null | ScalarType::Int | ScalarType::Float)
        };
        if !accepted(document.ty) || !accepted(path.ty) {
            return Err(crate::types::operator_error(symbol, document.ty, path.ty, at));
        }
        let (func, ty) = if value {
            (Func::JsonAccess(JsonAccess::Value), ScalarType::Text)
        } else {
            (Func::JsonAccess(JsonAccess::Json), ScalarType::Json)
        };
        Ok(Typed::new(Expr::Call { func, args: vec![document.expr, path.expr] }, ty, true))
    }

    /// PostgreSQL's `j -> key`, `j -> index` (JSON) and `j ->> key`, `j ->>
    /// index` (text) on a `json`/`jsonb` value: the key is text, the index
    /// an integer (negative counts from the end of an array).
    fn pg_json_arrow(
        &self,
        l: &ast::Expr,
        r: &ast::Expr,
        value: bool,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        let symbol = if value { "->>" } else { "->" };
        let document = self.lower(l, d)?;
        let key = self.lower(r, d)?;
        if document.ty != ScalarType::Json || !matches!(key.ty, ScalarType::Text | ScalarType::Int) {
            return Err(crate::types::operator_error(symbol, document.ty, key.ty, at).hint(format!(
                "PostgreSQL's {symbol} takes a json or jsonb value and a text key or an integer index"
            )));
        }
        // jsonb reads a bare scalar as a one-element array (`'42'::jsonb -> 0`
        // is 42); what `->` takes from a jsonb value is jsonb again.
        let jsonb = document.narrow;
        let kind = match (value, jsonb) {
            (false, false) => JsonAccess::PgJson,
            (true, false) => JsonAccess::PgText,
            (false, true) => JsonAccess::PgJsonbJson,
            (true, true) => JsonAccess::PgJsonbText,
        };
        let ty = if value { ScalarType::Text } else { ScalarType::Json };
        let call = Expr::Call { func: Func::JsonAccess(kind), args: vec![document.expr, key.expr] };
        Ok(Typed::new(call, ty, true).narrowed(jsonb))
    }

    /// PostgreSQL's `j #> '{a,0}'` (JSON) and `j #>> '{a,0}'` (text): the
    /// path is a `text[]` literal.
    pub(crate) fn json_path_operator(
        &self,
        l: &ast::Expr,
        r: &ast::Expr,
        value: bool,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        let symbol = if value { "#>>" } else { "#>" };
        if self.dialect != Dialect::Postgres {
            return Err(PlanError::new(format!("operator {symbol} is not supported by SQLite"), at)
                .hint("write json_extract(j, '$.a[0]') or j -> '$.a[0]'"));
        }
        let document = self.lower(l, d)?;
        if document.ty != ScalarType::Json {
            return Err(crate::types::operator_error(symbol, document.ty, ScalarType::Text, at)
                .hint(format!("PostgreSQL's {symbol} takes a json or jsonb value and a text[] path")));
        }
        let literal = match r {
            ast::Expr::Value(v) => match &v.value {
                ast::Value::SingleQuotedString(s) => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        let Some(literal) = literal else {
            return Err(PlanError::new(format!("the path of {symbol} must be a text[] literal such as '{{a,0}}'"), at)
                .hint("write the path as a constant, e.g. doc #>> '{address,city}'"));
        };
        let path = Expr::Literal(denorm_types::Datum::owned_text(literal));
        let (kind, ty) =
            if value { (JsonAccess::PgPathText, ScalarType::Text) } else { (JsonAccess::PgPathJson, ScalarType::Json) };
        let jsonb = document.narrow;
        let call = Expr::Call { func: Func::JsonAccess(kind), args: vec![document.expr, path] };
        Ok(Typed::new(call, ty, true).narrowed(jsonb))
    }

    /// A JSON aggregate in the SELECT list or HAVING of a grouped query.
    pub(crate) fn json_aggregate(
        &self,
        f: &ast::Function,
        name: &str,
        grouping: &RefCell<Grouping>,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        check_dialect(name, self.dialect, at)?;
        let list = match &f.args {
            ast::FunctionArguments::List(list) => list,
            _ => return Err(PlanError::new(format!("{name} takes arguments"), at)),
        };
        if list.duplicate_treatment.is_some() {
            return Err(PlanError::new(format!("DISTINCT is not supported in {name}(…)"), at));
        }
        let scalar = self.scalar(Clause::AggregateArgument);
        let mut args = Vec::with_capacity(list.args.len());
        for arg in &list.args {
            match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(scalar.lower(e, d + 1)?),
                _ => return Err(PlanError::new(format!("unsupported argument to {name}(…)"), at)),
            }
        }
        let (mut order_by, mut limit) = (None, None);
        for clause in &list.clauses {
            match clause {
                FunctionArgumentClause::OrderBy(terms) => order_by = Some(terms),
                FunctionArgumentClause::Limit(e) => limit = Some(self.aggregate_limit(e, name)?),
                _ => return Err(PlanError::new(format!("this clause is not supported inside {name}(…)"), at)),
            }
        }
        let nullable = self.dialect == Dialect::Postgres;
        let (func, list) = if name.ends_with("array") || name == "json_agg" {
            let [element]: [Typed; 1] =
                args.try_into().map_err(|_| PlanError::new(format!("{name} takes exactly one argument"), at))?;
            let element = json_value(element, self.dialect);
            let Some(terms) = order_by else {
                return Err(PlanError::new(format!("{name}(…) needs ORDER BY inside the call"), at)
                    .detail("without it the source's element order is unspecified")
                    .hint(format!("write e.g. {name}(x ORDER BY created_at DESC, id DESC)")));
            };
            let (order, keys) = self.aggregate_order(terms, name, at, d)?;
            let spec =
                JsonArraySpec { raw: element.ty == ScalarType::Json, order, limit, filtered: f.filter.is_some() };
            (AggregateFunc::JsonArray(spec), std::iter::once(element.expr).chain(keys).collect::<Vec<_>>())
        } else {
            if order_by.is_some() || limit.is_some() {
                return Err(PlanError::new(format!("ORDER BY and LIMIT are not supported inside {name}(…)"), at)
                    .detail("the object's members come out in key order"));
            }
            let [key, value]: [Typed; 2] =
                args.try_into().map_err(|_| PlanError::new(format!("{name} takes two arguments (key, value)"), at))?;
            let key = bool_as_int(key, self.dialect);
            if !matches!(key.ty, ScalarType::Text | ScalarType::Int | ScalarType::Bool) {
                return Err(PlanError::new(format!("{name} keys must be text or integers, not {}", key.ty), at)
                    .hint("CAST the key to TEXT or INTEGER"));
            }
            let value = json_value(value, self.dialect);
            let func = AggregateFunc::JsonObject { raw: value.ty == ScalarType::Json, filtered: f.filter.is_some() };
            (func, vec![key.expr, value.expr])
        };
        let mut list = list;
        if let Some(condition) = f.filter.as_deref() {
            list.push(scalar.lower_condition(condition, "FILTER", d + 1)?.expr);
        }
        let column = grouping.borrow_mut().register(func, Some(Expr::List(list)), ScalarType::Json, nullable);
        Ok(Typed::new(Expr::Column(column), ScalarType::Json, nullable))
    }

    fn aggregate_limit(&self, e: &ast::Expr, name: &str) -> Result<u32, PlanError> {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::Number(n, _) = &v.value {
                if let Ok(limit) = n.parse::<u32>() {
                    return Ok(limit);
                }
            }
        }
        Err(PlanError::new(format!("LIMIT inside {name}(…) must be a non-negative integer literal"), self.at(e)))
    }

    pub(crate) fn aggregate_order(
        &self,
        terms: &[ast::OrderByExpr],
        name: &str,
        at: Option<Location>,
        d: usize,
    ) -> Result<(AggregateOrder, Vec<Expr>), PlanError> {
        let scalar = self.scalar(Clause::AggregateArgument);
        let mut order = Vec::with_capacity(terms.len());
        let mut keys = Vec::with_capacity(terms.len());
        for term in terms {
            let key_at = self.at(&term.expr).or(at);
            if term.with_fill.is_some() {
                return Err(PlanError::new("WITH FILL is not supported", key_at));
            }
            let descending = match &term.options.sort {
                None | Some(OrderBySort::Asc) => false,
                Some(OrderBySort::Desc) => true,
                Some(OrderBySort::Using(_)) => return Err(PlanError::new("ORDER BY … USING is not supported", key_at)),
            };
            // PostgreSQL sorts character(n) without its trailing blanks.
            let key = bool_as_int(crate::types::strip_bpchar(scalar.lower(&term.expr, d + 1)?), self.dialect);
            if key.ty == ScalarType::Json {
                return Err(PlanError::new(format!("cannot order {name}(…) by a JSON value"), key_at));
            }
            // SQLite sorts NULL as the smallest value, PostgreSQL as the largest.
            let null_smallest = self.dialect == Dialect::Sqlite;
            let nulls_first = term.options.nulls_first.unwrap_or(null_smallest != descending);
            order.push(OrderTerm { descending, nulls_first });
            keys.push(key.expr);
        }
        let order = AggregateOrder::new(&order).ok_or_else(|| {
            PlanError::new(format!("ORDER BY inside {name}(…) takes at most {} terms", AggregateOrder::MAX_TERMS), at)
        })?;
        Ok((order, keys))
    }
}
