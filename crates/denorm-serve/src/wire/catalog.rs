//! Enough `pg_catalog` and `information_schema` for clients to list the
//! views and their columns (psql's `\d`, `\dv`, `\d view`; BI tools'
//! `information_schema.tables/columns`).
//!
//! The catalog is a handful of small virtual tables built from the
//! published views ([`tables`]), and a catalog query is evaluated over them
//! by a small interpreter: FROM with (LEFT) JOINs as nested loops, WHERE,
//! the select list, ORDER BY, LIMIT. Its expressions are the ones catalog
//! queries use: comparisons (an oid against its text), AND/OR/NOT, IN,
//! IS NULL, CASE, `||`, casts (ignored but `::text`), COLLATE (ignored),
//! regular expressions (`~`, `!~`, `OPERATOR(pg_catalog.~)`), and the
//! catalog functions psql calls (`pg_table_is_visible` true,
//! `pg_get_userbyid` the owner, `format_type` the type's name). Columns a
//! virtual table lacks, scalar subqueries and other catalog functions are
//! NULL: every view has no defaults, collations, comments, indexes or
//! constraints. Aggregates and GROUP BY are refused (`0A000`).
//!
//! Every view is a relation of kind `v` in schema `public` with oid
//! `16384 + its index`; its columns have the types of
//! [`encode::pg_type`](super::encode::pg_type).

use std::cmp::Ordering;

use denorm_types::{Datum, ScalarType, Value};
use sqlparser::ast::{self, BinaryOperator, Expr, JoinOperator, SelectItem, SetExpr, TableFactor, UnaryOperator};

use super::encode::pg_type;
use super::sql::{SqlError, FEATURE_NOT_SUPPORTED};
use crate::state::Published;

const FIRST_OID: i64 = 16384;
const PUBLIC_OID: i64 = 2200;
const CATALOG_OID: i64 = 11;
const OWNER_OID: i64 = 10;
const OWNER: &str = "denorm";

/// A virtual table: its column names and rows.
struct Table {
    columns: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
}

fn text(s: impl Into<String>) -> Value {
    Datum::owned_text(s.into())
}

fn type_name(ty: ScalarType) -> &'static str {
    match ty {
        ScalarType::Bool => "boolean",
        ScalarType::Int => "bigint",
        ScalarType::Float => "double precision",
        ScalarType::Json => "json",
        ScalarType::Numeric => "numeric",
        ScalarType::Date => "date",
        ScalarType::Timestamp => "timestamp without time zone",
        ScalarType::TimestampTz => "timestamp with time zone",
        ScalarType::Uuid => "uuid",
        _ => "text",
    }
}

/// The catalog table `name` (`pg_class`, `information_schema.columns` …).
fn table(published: &Published, schema: Option<&str>, name: &str) -> Option<Table> {
    let views = published.views.iter().enumerate().map(|(i, v)| (FIRST_OID + i as i64, &v.info));
    let t = |columns: Vec<&'static str>, rows: Vec<Vec<Value>>| Some(Table { columns, rows });
    let info_schema = schema == Some("information_schema");
    match (info_schema, name) {
        (false, "pg_namespace") => t(
            vec!["oid", "nspname", "nspowner"],
            vec![
                vec![Datum::Int(CATALOG_OID), text("pg_catalog"), Datum::Int(OWNER_OID)],
                vec![Datum::Int(PUBLIC_OID), text("public"), Datum::Int(OWNER_OID)],
            ],
        ),
        (false, "pg_class") => t(
            vec![
                "oid",
                "relname",
                "relnamespace",
                "relkind",
                "relowner",
                "relam",
                "reltoastrelid",
                "relchecks",
                "relhasindex",
                "relhasrules",
                "relhastriggers",
                "relrowsecurity",
                "relforcerowsecurity",
                "relispartition",
                "reltablespace",
                "reloftype",
                "relpersistence",
                "relreplident",
                "relnatts",
                "reltuples",
            ],
            views
                .map(|(oid, v)| {
                    let no = Datum::Bool(false);
                    vec![
                        Datum::Int(oid),
                        text(&v.name),
                        Datum::Int(PUBLIC_OID),
                        text("v"),
                        Datum::Int(OWNER_OID),
                        Datum::Int(0),
                        Datum::Int(0),
                        Datum::Int(0),
                        no.clone(),
                        no.clone(),
                        no.clone(),
                        no.clone(),
                        no.clone(),
                        no,
                        Datum::Int(0),
                        Datum::Int(0),
                        text("p"),
                        text("n"),
                        Datum::Int(v.columns.len() as i64),
                        Datum::Float(-1.0),
                    ]
                })
                .collect(),
        ),
        (false, "pg_attribute") => t(
            vec![
                "attrelid",
                "attname",
                "atttypid",
                "atttypmod",
                "attnum",
                "attnotnull",
                "atthasdef",
                "attisdropped",
                "attidentity",
                "attgenerated",
                "attcollation",
                "attlen",
            ],
            views
                .flat_map(|(oid, v)| {
                    v.columns.iter().enumerate().map(move |(i, c)| {
                        vec![
                            Datum::Int(oid),
                            text(&c.name),
                            Datum::Int(i64::from(pg_type(c.ty).oid())),
                            Datum::Int(-1),
                            Datum::Int(i as i64 + 1),
                            Datum::Bool(false),
                            Datum::Bool(false),
                            Datum::Bool(false),
                            text(""),
                            text(""),
                            Datum::Int(0),
                            Datum::Int(-1),
                        ]
                    })
                })
                .collect(),
        ),
        (false, "pg_type") => t(
            vec!["oid", "typname", "typnamespace", "typtype", "typcollation", "typlen"],
            [
                ScalarType::Bool,
                ScalarType::Int,
                ScalarType::Float,
                ScalarType::Text,
                ScalarType::Json,
                ScalarType::Numeric,
                ScalarType::Date,
                ScalarType::Timestamp,
                ScalarType::TimestampTz,
                ScalarType::Uuid,
            ]
            .iter()
            .map(|ty| {
                let t = pg_type(*ty);
                vec![
                    Datum::Int(i64::from(t.oid())),
                    text(t.name()),
                    Datum::Int(CATALOG_OID),
                    text("b"),
                    Datum::Int(0),
                    Datum::Int(-1),
                ]
            })
            .collect(),
        ),
        (false, "pg_database") => {
            t(vec!["oid", "datname", "datdba"], vec![vec![Datum::Int(1), text(OWNER), Datum::Int(OWNER_OID)]])
        }
        (false, "pg_roles" | "pg_user" | "pg_authid") => {
            t(vec!["oid", "rolname", "usename"], vec![vec![Datum::Int(OWNER_OID), text(OWNER), text(OWNER)]])
        }
        (
            false,
            "pg_am"
            | "pg_attrdef"
            | "pg_collation"
            | "pg_index"
            | "pg_description"
            | "pg_constraint"
            | "pg_inherits"
            | "pg_trigger"
            | "pg_rewrite"
            | "pg_policy"
            | "pg_statistic_ext"
            | "pg_publication"
            | "pg_publication_rel"
            | "pg_extension"
            | "pg_proc"
            | "pg_tablespace"
            | "pg_depend"
            | "pg_sequence"
            | "pg_enum"
            | "pg_range"
            | "pg_event_trigger"
            | "pg_foreign_table"
            | "pg_partitioned_table"
            | "pg_matviews"
            | "pg_tables"
            | "pg_settings"
            | "pg_auth_members"
            | "pg_stat_activity",
        ) => t(vec!["oid"], vec![]),
        (false, "pg_views") => t(
            vec!["schemaname", "viewname", "viewowner", "definition"],
            views.map(|(_, v)| vec![text("public"), text(&v.name), text(OWNER), Datum::Null]).collect(),
        ),
        (true, "schemata") => {
            t(vec!["catalog_name", "schema_name", "schema_owner"], vec![vec![text(OWNER), text("public"), text(OWNER)]])
        }
        (true, "tables" | "views") => t(
            vec!["table_catalog", "table_schema", "table_name", "table_type", "is_insertable_into", "view_definition"],
            views
                .map(|(_, v)| vec![text(OWNER), text("public"), text(&v.name), text("VIEW"), text("NO"), Datum::Null])
                .collect(),
        ),
        (true, "columns") => t(
            vec![
                "table_catalog",
                "table_schema",
                "table_name",
                "column_name",
                "ordinal_position",
                "is_nullable",
                "data_type",
                "udt_name",
                "column_default",
            ],
            views
                .flat_map(|(_, v)| {
                    v.columns.iter().enumerate().map(move |(i, c)| {
                        vec![
                            text(OWNER),
                            text("public"),
                            text(&v.name),
                            text(&c.name),
                            Datum::Int(i as i64 + 1),
                            text("YES"),
                            text(type_name(c.ty)),
                            text(pg_type(c.ty).name()),
                            Datum::Null,
                        ]
                    })
                })
                .collect(),
        ),
        _ => None,
    }
}

/// One table of the FROM clause as bound in a row: its alias, columns and
/// current row (`None`: the NULL row of a LEFT JOIN).
#[derive(Clone)]
struct Binding<'t> {
    alias: String,
    columns: &'t [&'static str],
    row: Option<&'t [Value]>,
}

type Env<'t> = Vec<Binding<'t>>;

/// Output columns (name, type) and rows.
pub type Rows = (Vec<(String, ScalarType)>, Vec<Vec<Value>>);

/// Answers a catalog query: its output columns and rows.
pub fn answer(published: &Published, query: &ast::Query) -> Result<Rows, SqlError> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(unsupported("UNION in a catalog query"));
    };
    let group_by = matches!(&select.group_by, ast::GroupByExpr::Expressions(e, _) if !e.is_empty());
    if group_by || select.having.is_some() || select.distinct.is_some() {
        return Err(unsupported("GROUP BY, HAVING or DISTINCT in a catalog query"));
    }
    // Load every table of the FROM clause first (they outlive the rows).
    let mut loaded = Vec::new();
    for item in &select.from {
        loaded.push(load(published, &item.relation)?);
        for join in &item.joins {
            loaded.push(load(published, &join.relation)?);
        }
    }
    let mut envs: Vec<Env<'_>> = vec![vec![]];
    let mut next = loaded.iter();
    for item in &select.from {
        let (alias, t) = next.next().expect("loaded");
        envs = cross(envs, alias, t, None, false)?;
        for join in &item.joins {
            let (alias, t) = next.next().expect("loaded");
            let (on, left) = match &join.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => (constraint(c)?, false),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (constraint(c)?, true),
                JoinOperator::CrossJoin(_) => (None, false),
                _ => return Err(unsupported("this kind of join in a catalog query")),
            };
            envs = cross(envs, alias, t, on, left)?;
        }
    }
    let mut kept = Vec::new();
    for env in envs {
        if select.selection.as_ref().map_or(Ok(true), |w| eval(&env, w).map(|v| truthy(&v)))? {
            kept.push(env);
        }
    }
    let names = output_names(select, kept.first(), &loaded);
    let mut rows = Vec::with_capacity(kept.len());
    for env in &kept {
        rows.push(project(env, &select.projection)?);
    }
    let mut ordered: Vec<(usize, Vec<Value>)> = rows.into_iter().enumerate().collect();
    if let Some(order_by) = &query.order_by {
        if let ast::OrderByKind::Expressions(terms) = &order_by.kind {
            let mut keys = Vec::with_capacity(ordered.len());
            for (i, row) in &ordered {
                let mut key = Vec::with_capacity(terms.len());
                for term in terms {
                    key.push(order_key(&kept[*i], row, &names, &term.expr)?);
                }
                keys.push(key);
            }
            ordered.sort_by(|(a, _), (b, _)| {
                terms
                    .iter()
                    .enumerate()
                    .map(|(k, term)| {
                        let o = keys[*a][k].total_cmp(&keys[*b][k]);
                        if term.options.sort == Some(ast::OrderBySort::Desc) {
                            o.reverse()
                        } else {
                            o
                        }
                    })
                    .find(|o| *o != Ordering::Equal)
                    .unwrap_or(Ordering::Equal)
            });
        }
    }
    let mut rows: Vec<Vec<Value>> = ordered.into_iter().map(|(_, r)| r).collect();
    if let Some(ast::LimitClause::LimitOffset { limit: Some(limit), .. }) = &query.limit_clause {
        if let Datum::Int(n) = eval(&vec![], limit)? {
            rows.truncate(usize::try_from(n).unwrap_or(0));
        }
    }
    // Every column is text (an oid as its digits, a boolean as t/f, as
    // PostgreSQL prints them): the description of a statement does not
    // depend on the rows it will find.
    let columns = names.into_iter().map(|name| (name, ScalarType::Text)).collect();
    let rows = rows
        .into_iter()
        .map(|row| row.into_iter().map(|d| if d.is_null() { d } else { text(super::encode::text(&d)) }).collect())
        .collect();
    Ok((columns, rows))
}

fn unsupported(what: &str) -> SqlError {
    SqlError::new(FEATURE_NOT_SUPPORTED, format!("{what} is not supported by denorm"))
        .hint("denorm answers the catalog queries clients use to list views and columns")
}

fn load(published: &Published, relation: &TableFactor) -> Result<(String, Table), SqlError> {
    let TableFactor::Table { name, alias, .. } = relation else {
        return Err(unsupported("a subquery in a catalog query's FROM"));
    };
    let parts: Vec<String> = name.0.iter().filter_map(|p| p.as_ident()).map(|i| i.value.to_lowercase()).collect();
    let (schema, table_name) = match parts.as_slice() {
        [t] => (None, t.as_str()),
        [s, t] => (Some(s.as_str()), t.as_str()),
        _ => return Err(unsupported("this catalog table name")),
    };
    let found = table(published, schema, table_name).ok_or_else(|| {
        SqlError::new(FEATURE_NOT_SUPPORTED, format!("catalog table \"{name}\" is not provided by denorm"))
            .hint("denorm provides pg_class, pg_namespace, pg_attribute, pg_type and information_schema tables, columns, views, schemata")
    })?;
    let alias = alias.as_ref().map_or(table_name.to_owned(), |a| a.name.value.to_lowercase());
    Ok((alias, found))
}

fn constraint(c: &ast::JoinConstraint) -> Result<Option<&Expr>, SqlError> {
    match c {
        ast::JoinConstraint::On(e) => Ok(Some(e)),
        ast::JoinConstraint::None => Ok(None),
        _ => Err(unsupported("USING or NATURAL in a catalog query")),
    }
}

/// Every env extended by every row of `t` that satisfies `on`; with
/// `left`, an env no row satisfies is kept with the NULL row.
fn cross<'t>(
    envs: Vec<Env<'t>>,
    alias: &str,
    t: &'t Table,
    on: Option<&Expr>,
    left: bool,
) -> Result<Vec<Env<'t>>, SqlError> {
    let mut out = Vec::new();
    for env in envs {
        let mut matched = false;
        for row in &t.rows {
            let mut extended = env.clone();
            extended.push(Binding { alias: alias.to_owned(), columns: &t.columns, row: Some(row) });
            if on.map_or(Ok(true), |e| eval(&extended, e).map(|v| truthy(&v)))? {
                matched = true;
                out.push(extended);
            }
        }
        if left && !matched {
            let mut extended = env;
            extended.push(Binding { alias: alias.to_owned(), columns: &t.columns, row: None });
            out.push(extended);
        }
    }
    Ok(out)
}

fn truthy(v: &Value) -> bool {
    matches!(v, Datum::Bool(true))
}

fn column(env: &Env<'_>, qualifier: Option<&str>, name: &str) -> Value {
    let name = name.to_lowercase();
    for b in env.iter().filter(|b| qualifier.is_none_or(|q| q.eq_ignore_ascii_case(&b.alias))) {
        if let Some(i) = b.columns.iter().position(|c| *c == name) {
            return b.row.map_or(Datum::Null, |r| r[i].clone());
        }
    }
    Datum::Null
}

fn output_names(select: &ast::Select, env: Option<&Env<'_>>, loaded: &[(String, Table)]) -> Vec<String> {
    let mut names = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(e) => names.push(expr_name(e)),
            SelectItem::ExprWithAlias { alias, .. } => names.push(alias.value.clone()),
            SelectItem::Wildcard(_) => match env {
                Some(env) => env.iter().for_each(|b| names.extend(b.columns.iter().map(|c| c.to_string()))),
                None => loaded.iter().for_each(|(_, t)| names.extend(t.columns.iter().map(|c| c.to_string()))),
            },
            SelectItem::QualifiedWildcard(kind, _) => {
                let alias = wildcard_alias(kind);
                loaded
                    .iter()
                    .filter(|(a, _)| *a == alias)
                    .for_each(|(_, t)| names.extend(t.columns.iter().map(|c| c.to_string())));
            }
            _ => names.push("?column?".into()),
        }
    }
    names
}

/// The table alias of `alias.*`.
fn wildcard_alias(kind: &ast::SelectItemQualifiedWildcardKind) -> String {
    match kind {
        ast::SelectItemQualifiedWildcardKind::ObjectName(name) => name.to_string().to_lowercase(),
        ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string().to_lowercase(),
    }
}

fn expr_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => parts.last().map_or_else(String::new, |p| p.value.clone()),
        Expr::Function(f) => f.name.0.last().map_or_else(String::new, |p| p.to_string()),
        Expr::Cast { expr, .. } | Expr::Nested(expr) => expr_name(expr),
        _ => "?column?".into(),
    }
}

fn project(env: &Env<'_>, projection: &[SelectItem]) -> Result<Vec<Value>, SqlError> {
    let mut row = Vec::new();
    for item in projection {
        match item {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => row.push(eval(env, e)?),
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                let only = match item {
                    SelectItem::QualifiedWildcard(kind, _) => Some(wildcard_alias(kind)),
                    _ => None,
                };
                for b in env.iter().filter(|b| only.as_ref().is_none_or(|a| *a == b.alias)) {
                    match b.row {
                        Some(r) => row.extend(r.iter().cloned()),
                        None => row.extend(b.columns.iter().map(|_| Datum::Null)),
                    }
                }
            }
            _ => return Err(unsupported("this select item in a catalog query")),
        }
    }
    Ok(row)
}

/// An ORDER BY term's value: a select-list position, an output column's
/// name, or an expression over the row's tables.
fn order_key(env: &Env<'_>, row: &[Value], names: &[String], e: &Expr) -> Result<Value, SqlError> {
    if let Expr::Identifier(id) = e {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(&id.value)) {
            return Ok(row[i].clone());
        }
    }
    if let Expr::Value(v) = e {
        if let ast::Value::Number(n, _) = &v.value {
            let i = n.parse::<usize>().ok().filter(|i| (1..=row.len()).contains(i));
            return i.map(|i| row[i - 1].clone()).ok_or_else(|| unsupported("this ORDER BY position"));
        }
    }
    eval(env, e)
}

fn eval(env: &Env<'_>, e: &Expr) -> Result<Value, SqlError> {
    Ok(match e {
        Expr::Identifier(i) => column(env, None, &i.value),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [.., q, c] => column(env, Some(&q.value), &c.value),
            [c] => column(env, None, &c.value),
            [] => Datum::Null,
        },
        Expr::Value(v) => literal(&v.value),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => eval(env, inner)?,
        Expr::Cast { expr, data_type, .. } => {
            let v = eval(env, expr)?;
            let to_text = matches!(data_type, ast::DataType::Text)
                || data_type.to_string().eq_ignore_ascii_case("pg_catalog.text");
            match v {
                Datum::Null => Datum::Null,
                v if to_text => text(super::encode::text(&v)),
                v => v,
            }
        }
        Expr::UnaryOp { op: UnaryOperator::Not, expr } => match eval(env, expr)? {
            Datum::Bool(b) => Datum::Bool(!b),
            _ => Datum::Null,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match eval(env, expr)? {
            Datum::Int(i) => Datum::Int(-i),
            Datum::Float(x) => Datum::Float(-x),
            _ => Datum::Null,
        },
        Expr::IsNull(inner) => Datum::Bool(eval(env, inner)?.is_null()),
        Expr::IsNotNull(inner) => Datum::Bool(!eval(env, inner)?.is_null()),
        Expr::IsTrue(inner) => Datum::Bool(truthy(&eval(env, inner)?)),
        Expr::IsFalse(inner) => Datum::Bool(matches!(eval(env, inner)?, Datum::Bool(false))),
        Expr::InList { expr, list, negated } => {
            let v = eval(env, expr)?;
            if v.is_null() {
                return Ok(Datum::Null);
            }
            let mut found = false;
            for item in list {
                found |= compare(&v, &eval(env, item)?) == Some(Ordering::Equal);
            }
            Datum::Bool(found != *negated)
        }
        Expr::BinaryOp { left, op, right } => binary(env, left, op, right)?,
        Expr::Case { operand, conditions, else_result, .. } => {
            let subject = operand.as_ref().map(|o| eval(env, o)).transpose()?;
            for when in conditions {
                let hit = match &subject {
                    Some(s) => compare(s, &eval(env, &when.condition)?) == Some(Ordering::Equal),
                    None => truthy(&eval(env, &when.condition)?),
                };
                if hit {
                    return eval(env, &when.result);
                }
            }
            else_result.as_ref().map_or(Ok(Datum::Null), |e| eval(env, e))?
        }
        Expr::Function(f) => function(env, f)?,
        Expr::Like { negated, expr, pattern, any: false, .. } => {
            like(eval(env, expr)?, eval(env, pattern)?, false, *negated)?
        }
        Expr::ILike { negated, expr, pattern, any: false, .. } => {
            like(eval(env, expr)?, eval(env, pattern)?, true, *negated)?
        }
        Expr::Subquery(_) => Datum::Null,
        Expr::Exists { negated, .. } => Datum::Bool(*negated),
        Expr::TypedString(t) => literal(&t.value.value),
        _ => Datum::Null,
    })
}

fn literal(v: &ast::Value) -> Value {
    match v {
        ast::Value::Number(n, _) => {
            n.parse::<i64>().map(Datum::Int).unwrap_or_else(|_| n.parse::<f64>().map_or(Datum::Null, Datum::Float))
        }
        ast::Value::Boolean(b) => Datum::Bool(*b),
        ast::Value::SingleQuotedString(s) | ast::Value::EscapedStringLiteral(s) | ast::Value::DoubleQuotedString(s) => {
            text(s.clone())
        }
        _ => Datum::Null,
    }
}

/// SQL comparison where an integer (an oid) meets its text (`'16385'`).
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Datum::Int(i), Datum::Text(t)) | (Datum::Text(t), Datum::Int(i)) => {
            let parsed = t.trim().parse::<i64>().ok()?;
            let o = i.cmp(&parsed);
            Some(if matches!(a, Datum::Int(_)) { o } else { o.reverse() })
        }
        _ => a.sql_cmp(b),
    }
}

fn binary(env: &Env<'_>, left: &Expr, op: &BinaryOperator, right: &Expr) -> Result<Value, SqlError> {
    let (l, r) = (eval(env, left)?, eval(env, right)?);
    let cmp = |f: fn(Ordering) -> bool| compare(&l, &r).map_or(Datum::Null, |o| Datum::Bool(f(o)));
    Ok(match op {
        BinaryOperator::Eq => cmp(|o| o == Ordering::Equal),
        BinaryOperator::NotEq => cmp(|o| o != Ordering::Equal),
        BinaryOperator::Lt => cmp(|o| o == Ordering::Less),
        BinaryOperator::LtEq => cmp(|o| o != Ordering::Greater),
        BinaryOperator::Gt => cmp(|o| o == Ordering::Greater),
        BinaryOperator::GtEq => cmp(|o| o != Ordering::Less),
        BinaryOperator::And => match (&l, &r) {
            (Datum::Bool(false), _) | (_, Datum::Bool(false)) => Datum::Bool(false),
            (Datum::Bool(true), Datum::Bool(true)) => Datum::Bool(true),
            _ => Datum::Null,
        },
        BinaryOperator::Or => match (&l, &r) {
            (Datum::Bool(true), _) | (_, Datum::Bool(true)) => Datum::Bool(true),
            (Datum::Bool(false), Datum::Bool(false)) => Datum::Bool(false),
            _ => Datum::Null,
        },
        BinaryOperator::StringConcat => match (&l, &r) {
            (Datum::Null, _) | (_, Datum::Null) => Datum::Null,
            _ => text(super::encode::text(&l) + &super::encode::text(&r)),
        },
        BinaryOperator::PGRegexMatch => regex_match(&l, &r, false, false)?,
        BinaryOperator::PGRegexIMatch => regex_match(&l, &r, true, false)?,
        BinaryOperator::PGRegexNotMatch => regex_match(&l, &r, false, true)?,
        BinaryOperator::PGRegexNotIMatch => regex_match(&l, &r, true, true)?,
        BinaryOperator::PGCustomBinaryOperator(parts) => match parts.last().map(String::as_str) {
            Some("~") => regex_match(&l, &r, false, false)?,
            Some("~*") => regex_match(&l, &r, true, false)?,
            Some("!~") => regex_match(&l, &r, false, true)?,
            Some("=") => cmp(|o| o == Ordering::Equal),
            _ => return Err(unsupported(&format!("the operator {op} in a catalog query"))),
        },
        other => return Err(unsupported(&format!("the operator {other} in a catalog query"))),
    })
}

/// `subject [NOT] [I]LIKE pattern` (`%`, `_`, `\\` escapes).
fn like(subject: Value, pattern: Value, insensitive: bool, negated: bool) -> Result<Value, SqlError> {
    let Datum::Text(p) = &pattern else { return Ok(Datum::Null) };
    let mut re = String::from("^");
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => re.push_str(".*"),
            '_' => re.push('.'),
            '\\' => re.push_str(&regex::escape(&chars.next().map(String::from).unwrap_or_default())),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex_match(&subject, &text(re), insensitive, negated)
}

fn regex_match(l: &Value, r: &Value, insensitive: bool, negated: bool) -> Result<Value, SqlError> {
    let (Datum::Text(subject), Datum::Text(pattern)) = (l, r) else { return Ok(Datum::Null) };
    let re = regex::RegexBuilder::new(pattern)
        .case_insensitive(insensitive)
        .build()
        .map_err(|e| SqlError::new("2201B", format!("invalid regular expression: {e}")))?;
    Ok(Datum::Bool(re.is_match(subject) != negated))
}

fn function(env: &Env<'_>, f: &ast::Function) -> Result<Value, SqlError> {
    let name = f.name.0.last().map(|p| p.to_string().to_lowercase()).unwrap_or_default();
    let args: Vec<Value> = match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => eval(env, e),
                _ => Ok(Datum::Null),
            })
            .collect::<Result<_, _>>()?,
        _ => vec![],
    };
    Ok(match name.as_str() {
        "pg_table_is_visible" | "has_table_privilege" | "has_schema_privilege" => Datum::Bool(true),
        "pg_get_userbyid" => text(OWNER),
        "current_schema" => text("public"),
        "current_database" => text(OWNER),
        "format_type" => match args.first() {
            Some(Datum::Int(oid)) => {
                let ty = postgres_types::Type::from_oid(u32::try_from(*oid).unwrap_or(0));
                ty.map_or(Datum::Null, |t| text(sql_type_name(&t)))
            }
            _ => Datum::Null,
        },
        "count" | "sum" | "min" | "max" | "avg" | "array_agg" | "string_agg" => {
            return Err(unsupported("an aggregate in a catalog query"))
        }
        "coalesce" => args.into_iter().find(|a| !a.is_null()).unwrap_or(Datum::Null),
        _ => Datum::Null,
    })
}

fn sql_type_name(t: &postgres_types::Type) -> &'static str {
    [
        ScalarType::Bool,
        ScalarType::Int,
        ScalarType::Float,
        ScalarType::Json,
        ScalarType::Numeric,
        ScalarType::Date,
        ScalarType::Timestamp,
        ScalarType::TimestampTz,
        ScalarType::Uuid,
    ]
    .into_iter()
    .find(|ty| pg_type(*ty) == *t)
    .map_or("text", type_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{channel, ColumnInfo, ViewInfo};
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn published() -> std::sync::Arc<Published> {
        let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
        let view = |name: &str| ViewInfo {
            name: name.into(),
            columns: vec![col("id", ScalarType::Int), col("total", ScalarType::Numeric)],
            key: vec![0],
            ..Default::default()
        };
        channel(vec![view("orders"), view("users")]).1.snapshot()
    }

    fn run(sql: &str) -> (Vec<(String, ScalarType)>, Vec<Vec<String>>) {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        let ast::Statement::Query(q) = statements.remove(0) else { panic!() };
        let (columns, rows) = answer(&published(), &q).unwrap();
        (columns, rows.iter().map(|r| r.iter().map(super::super::encode::text).collect()).collect())
    }

    /// psql 15's `\dv`: the views, with schema, type and owner.
    #[test]
    fn psql_lists_views() {
        let (columns, rows) = run(r#"SELECT n.nspname as "Schema", c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast'
  AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2 DESC;"#);
        assert_eq!(columns.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), ["Schema", "Name", "Type", "Owner"]);
        assert_eq!(rows, vec![vec!["public", "users", "view", "denorm"], vec!["public", "orders", "view", "denorm"]]);
    }

    /// psql 15's `\d users`: the oid by name, then the columns by oid.
    #[test]
    fn psql_describes_a_view() {
        let (_, rows) = run(r#"SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(users)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3;"#);
        assert_eq!(rows, vec![vec!["16385", "public", "users"]]);
        let (_, rows) = run(r#"SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull, a.attidentity
FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16385' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"#);
        assert_eq!(rows, vec![vec!["id", "bigint", "", "f", ""], vec!["total", "numeric", "", "f", ""]]);
        let (_, rows) = run("SELECT c.relkind, c.relhasindex, am.amname, c.reloftype::pg_catalog.regtype::pg_catalog.text FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid) WHERE c.oid = '16384'");
        assert_eq!(rows, vec![vec!["v", "f", "", "0"]]);
    }

    #[test]
    fn information_schema_lists_views_and_columns() {
        let (_, rows) = run("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position");
        assert_eq!(rows, vec![vec!["orders", "id", "bigint"], vec!["orders", "total", "numeric"]]);
        let (_, rows) = run(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW' ORDER BY table_name LIMIT 1",
        );
        assert_eq!(rows, vec![vec!["orders"]]);
    }

    /// pgJDBC's `DatabaseMetaData.getTables(null, "public", "%", {"VIEW"})`.
    #[test]
    fn jdbc_lists_views() {
        let (_, rows) = run(r#"SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME,
 CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema' WHEN true THEN CASE WHEN n.nspname = 'pg_catalog' OR n.nspname = 'information_schema' THEN CASE c.relkind WHEN 'r' THEN 'SYSTEM TABLE' WHEN 'v' THEN 'SYSTEM VIEW' ELSE NULL END ELSE NULL END
 WHEN false THEN CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' ELSE NULL END ELSE NULL END AS TABLE_TYPE,
 d.description AS REMARKS, '' as TYPE_CAT, '' as TYPE_SCHEM, '' as TYPE_NAME, '' AS SELF_REFERENCING_COL_NAME, '' AS REF_GENERATION
 FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_description d ON (c.oid = d.objoid AND d.objsubid = 0 and d.classoid = 'pg_class'::regclass)
 WHERE c.relnamespace = n.oid AND n.nspname LIKE 'public' AND c.relname LIKE '%'
 AND (false OR ( c.relkind = 'v' AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ) )
 ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME"#);
        let views: Vec<(&str, &str, &str)> =
            rows.iter().map(|r| (r[1].as_str(), r[2].as_str(), r[3].as_str())).collect();
        assert_eq!(views, [("public", "orders", "VIEW"), ("public", "users", "VIEW")]);
        let (_, rows) = run("SELECT relname FROM pg_class WHERE relname ILIKE 'U\\_%' OR relname NOT LIKE '_r%'");
        assert_eq!(rows, vec![vec!["users"]]);
    }

    /// DBeaver-style column listing: `a.*`, several LEFT JOINs to empty
    /// catalogs, an oid given as text.
    #[test]
    fn dbeaver_style_column_listing() {
        let (columns, rows) = run("SELECT c.relname,a.*,pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) as def_value,dsc.description,dep.objid
 FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON (a.attrelid=c.oid)
 LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid=ad.adrelid AND a.attnum = ad.adnum)
 LEFT OUTER JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid)
 LEFT OUTER JOIN pg_depend dep on dep.refobjid = a.attrelid AND dep.deptype = 'i' and dep.refobjsubid = a.attnum
 WHERE NOT a.attisdropped AND c.relkind not in ('i','I','c') AND c.oid='16384' ORDER BY a.attnum");
        let at = |name: &str| columns.iter().position(|c| c.0 == name).unwrap();
        let names: Vec<(&str, &str)> =
            rows.iter().map(|r| (r[at("attname")].as_str(), r[at("relname")].as_str())).collect();
        assert_eq!(names, [("id", "orders"), ("total", "orders")]);
        assert_eq!(rows[1][at("atttypid")], "1700");
        let (_, rows) = run("SELECT viewname FROM pg_catalog.pg_views WHERE schemaname = 'public' ORDER BY 1");
        assert_eq!(rows, vec![vec!["orders"], vec!["users"]]);
    }

    /// DBeaver-style: `alias.*` beside other columns.
    #[test]
    fn qualified_wildcards() {
        let (columns, rows) = run("SELECT n.oid, n.* FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'");
        let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, ["oid", "oid", "nspname", "nspowner"]);
        assert_eq!(rows, vec![vec!["2200", "2200", "public", "10"]]);
    }

    #[test]
    fn unknown_catalog_tables_and_aggregates_are_refused() {
        let parse = |sql| match Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0) {
            ast::Statement::Query(q) => q,
            _ => panic!(),
        };
        let e = answer(&published(), &parse("SELECT * FROM pg_catalog.pg_stat_statements")).err().unwrap();
        assert_eq!(e.code, FEATURE_NOT_SUPPORTED);
        assert!(e.message.contains("pg_stat_statements"));
        let e = answer(&published(), &parse("SELECT count(*) FROM pg_class")).err().unwrap();
        assert!(e.message.contains("aggregate"), "{e:?}");
    }
}
