//! SQL of the wire protocol, translated into the HTTP API's read
//! [`Query`](crate::query::Query): one evaluation path for both.
//!
//! ```text
//!  "SELECT id, name FROM users WHERE id = $1 ORDER BY name LIMIT 5"
//!        │ split (quote-aware) into statements; SET/SHOW/BEGIN/… by keyword
//!        │ SELECT: sqlparser (PostgreSQL dialect)
//!        ▼
//!  Select { view, template: filters/order/limit with operands that are
//!           literals or $n parameters, output columns }
//!        │ bind(parameters as text)  — each operand parsed by its column's
//!        ▼                             type with query::parse_value
//!  Query { filters, order, limit, offset, select } ─► query::execute
//! ```
//!
//! What the HTTP API supports is supported: comparisons (`= <> < <= > >=`,
//! either side), `IN (…)`, `= ANY(array)` (an `IN` whose list is one
//! array parameter or `ARRAY[…]`), `IS [NOT] NULL|TRUE|FALSE`, `NOT`, `BETWEEN`,
//! `AND`, `ORDER BY` (columns or select-list positions, `ASC/DESC`,
//! `NULLS FIRST/LAST`), `LIMIT/OFFSET`, a column list or `*`. Anything else
//! is a [`SqlError`] with SQLSTATE `0A000` naming what is missing. A
//! comparison with NULL matches no row, as in SQL.

use denorm_types::ScalarType;
use sqlparser::ast::{
    self, BinaryOperator, Expr, GroupByExpr, LimitClause, OrderByKind, SelectItem, SetExpr, TableFactor, UnaryOperator,
    Value as SqlValue,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use crate::query::{parse_value, Filter, Op, OrderTerm, Query};
use crate::state::{Published, ViewInfo};

/// A statement the wire protocol answers, with SQLSTATE-coded errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// A read of one view.
    Select(Select),
    /// A `SELECT` without `FROM` (`SELECT version()`, `SELECT 1`).
    Constant(Vec<(String, Constant)>),
    /// A read of `pg_catalog` or `information_schema`, answered by
    /// [`super::catalog`]; the parsed query.
    Catalog(Box<ast::Query>),
    /// `SET name = value` / `SET name TO value`; `RESET name` sets `None`.
    Set {
        name: String,
        value: Option<String>,
    },
    /// `SHOW name`.
    Show(String),
    /// `BEGIN`, `START TRANSACTION`: reads only, so a no-op.
    Begin,
    /// `COMMIT`, `END`, `ROLLBACK`, `ABORT`.
    End {
        tag: &'static str,
    },
    /// `DISCARD …`, `DEALLOCATE …`, `CLOSE …`: acknowledged.
    Ack {
        tag: String,
    },
    Empty,
}

/// One item of a `SELECT` without `FROM`.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    Text(Option<String>),
    Int(i64),
    Bool(bool),
    /// `current_setting('name')`: the session's setting, read at execution.
    Setting(String),
    Version,
}

/// A `SELECT` over one view, with `$n` parameters still unbound.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub view: String,
    /// Output column indexes and names, in output order.
    pub columns: Vec<(usize, String)>,
    filters: Vec<FilterTemplate>,
    order: Vec<OrderTerm>,
    limit: Option<Operand>,
    offset: Option<Operand>,
    /// What each `$n` (index n-1) is compared with; `None` when unused.
    pub parameters: Vec<Option<ParamUse>>,
}

/// Where a parameter is used: decides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamUse {
    Column(ScalarType),
    /// An array of the column's type (`col = ANY($1)`).
    Array(ScalarType),
    Count,
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    /// A literal's text (a number's digits, a string's content).
    Literal(String),
    Null,
    /// `$n`, zero-based.
    Param(usize),
}

#[derive(Debug, Clone, PartialEq)]
struct FilterTemplate {
    column: usize,
    negated: bool,
    op: OpTemplate,
}

#[derive(Debug, Clone, PartialEq)]
enum OpTemplate {
    Cmp(Cmp, Operand),
    In(Vec<Operand>),
    /// `col = ANY($1)`: an array operand, as PostgreSQL's text `{a,b}`.
    InArray(Operand),
    IsNull,
    IsTrue,
    IsFalse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    fn flipped(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Lte => Cmp::Gte,
            Cmp::Gt => Cmp::Lt,
            Cmp::Gte => Cmp::Lte,
            other => other,
        }
    }
}

/// An error with its SQLSTATE, PostgreSQL's primary/detail/hint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SqlError {
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
pub const SYNTAX_ERROR: &str = "42601";
pub const UNDEFINED_TABLE: &str = "42P01";
pub const UNDEFINED_COLUMN: &str = "42703";
pub const INVALID_TEXT: &str = "22P02";
pub const UNDEFINED_PARAMETER: &str = "42P02";
pub const PROTOCOL_VIOLATION: &str = "08P01";

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        SqlError { code, message: message.into(), detail: None, hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn unsupported(what: impl std::fmt::Display) -> Self {
        SqlError::new(FEATURE_NOT_SUPPORTED, format!("{what} is not supported by denorm")).hint(SUPPORTED_HINT)
    }
}

const SUPPORTED_HINT: &str = "denorm answers SELECT <columns or *> FROM <one view> [WHERE comparisons, IN, IS [NOT] NULL joined by AND] [ORDER BY columns] [LIMIT n] [OFFSET n]; joins, aggregates and functions belong in the view's definition";

/// Splits a simple-query string into statements at `;` outside quotes
/// and comments, dropping empty ones.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let (mut out, mut start, mut i) = (Vec::new(), 0, 0);
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b';' => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(&sql[start.min(sql.len())..]);
    out.into_iter().filter(|s| !strip_comments(s).trim().is_empty()).collect()
}

/// `sql` without leading `--` and `/* */` comments.
fn strip_comments(sql: &str) -> &str {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("--") {
            s = rest.split_once('\n').map_or("", |(_, r)| r).trim_start();
        } else if let Some(rest) = s.strip_prefix("/*") {
            s = rest.split_once("*/").map_or("", |(_, r)| r).trim_start();
        } else {
            return s;
        }
    }
}

/// Parses one statement against the views of `published`.
pub fn parse(published: &Published, sql: &str) -> Result<Statement, SqlError> {
    let text = strip_comments(sql).trim().trim_end_matches(';').trim();
    if text.is_empty() {
        return Ok(Statement::Empty);
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let first = words[0].to_ascii_lowercase();
    match first.as_str() {
        "set" => parse_set(&words[1..], text),
        "reset" => Ok(Statement::Set { name: setting_name(words.get(1).copied().unwrap_or("")), value: None }),
        "show" => Ok(Statement::Show(setting_name(&words[1..].join(" ")))),
        "begin" | "start" => Ok(Statement::Begin),
        "commit" | "end" => Ok(Statement::End { tag: "COMMIT" }),
        "rollback" | "abort" => Ok(Statement::End { tag: "ROLLBACK" }),
        "discard" | "deallocate" | "close" | "unlisten" => Ok(Statement::Ack { tag: first.to_ascii_uppercase() }),
        "select" | "with" | "table" | "values" | "(" => parse_select(published, text),
        _ => Err(SqlError::unsupported(format!("the {} statement", first.to_ascii_uppercase()))
            .detail("denorm serves read-only views: there is nothing to write or change over this connection")),
    }
}

/// A setting's name as PostgreSQL stores it: lower case, quotes removed.
fn setting_name(raw: &str) -> String {
    raw.trim().trim_matches('"').to_ascii_lowercase()
}

fn parse_set(words: &[&str], text: &str) -> Result<Statement, SqlError> {
    let mut words = words;
    if words.first().is_some_and(|w| matches!(w.to_ascii_lowercase().as_str(), "session" | "local")) {
        words = &words[1..];
    }
    let rest = words.join(" ");
    let lower = rest.to_ascii_lowercase();
    // Every read sees one published snapshot: isolation and read-only
    // settings hold already.
    if lower.starts_with("transaction ") || lower.starts_with("characteristics ") {
        return Ok(Statement::Ack { tag: "SET".into() });
    }
    if lower.starts_with("time zone ") {
        let zone = &rest["time zone ".len()..];
        return Ok(Statement::Set { name: "timezone".into(), value: Some(unquote(zone.trim())) });
    }
    let (name, value) = match rest.split_once('=') {
        Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
        None => match words {
            [name, to, value @ ..] if to.eq_ignore_ascii_case("to") && !value.is_empty() => {
                ((*name).to_owned(), value.join(" "))
            }
            _ => {
                return Err(
                    SqlError::new(SYNTAX_ERROR, format!("cannot read \"{text}\"")).hint("write SET name = value")
                )
            }
        },
    };
    let value = if value.eq_ignore_ascii_case("default") { None } else { Some(unquote(&value)) };
    Ok(Statement::Set { name: setting_name(&name), value })
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    match v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => v.trim_matches('"').to_owned(),
    }
}

fn parse_select(published: &Published, text: &str) -> Result<Statement, SqlError> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, text).map_err(|e| {
        SqlError::new(SYNTAX_ERROR, format!("cannot parse the query: {e}"))
            .hint("denorm understands PostgreSQL's SELECT syntax")
    })?;
    if statements.len() != 1 {
        return Err(SqlError::new(SYNTAX_ERROR, "expected one statement"));
    }
    let ast::Statement::Query(query) = statements.remove(0) else {
        return Err(SqlError::unsupported("this statement"));
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::unsupported("UNION, INTERSECT, EXCEPT, VALUES or a parenthesized query"));
    };
    if select.from.is_empty() {
        return constant_select(select);
    }
    if is_catalog_query(select) {
        return Ok(Statement::Catalog(query));
    }
    view_select(published, &query, select).map(Statement::Select)
}

/// Whether the query reads `pg_catalog` or `information_schema` tables
/// (anywhere in its FROM clause).
fn is_catalog_query(select: &ast::Select) -> bool {
    let catalog = |factor: &TableFactor| match factor {
        TableFactor::Table { name, .. } => {
            let text = name.to_string().to_ascii_lowercase();
            text.starts_with("pg_catalog.") || text.starts_with("information_schema.") || text.starts_with("pg_")
        }
        _ => false,
    };
    select.from.iter().any(|t| catalog(&t.relation) || t.joins.iter().any(|j| catalog(&j.relation)))
}

fn constant_select(select: &ast::Select) -> Result<Statement, SqlError> {
    if select.selection.is_some() {
        return Err(SqlError::unsupported("WHERE without FROM"));
    }
    select
        .projection
        .iter()
        .map(|item| {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(e) => (e, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
                _ => return Err(SqlError::unsupported("this select item without FROM")),
            };
            let (default_name, constant) = constant(expr)?;
            Ok((alias.unwrap_or(default_name), constant))
        })
        .collect::<Result<_, _>>()
        .map(Statement::Constant)
}

fn constant(expr: &Expr) -> Result<(String, Constant), SqlError> {
    let unnamed = |c| Ok(("?column?".to_owned(), c));
    match expr {
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => constant(e),
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => match n.parse::<i64>() {
                Ok(i) => unnamed(Constant::Int(i)),
                Err(_) => unnamed(Constant::Text(Some(n.clone()))),
            },
            SqlValue::Boolean(b) => Ok(("bool".to_owned(), Constant::Bool(*b))),
            SqlValue::Null => unnamed(Constant::Text(None)),
            v => match string_value(v) {
                Some(s) => unnamed(Constant::Text(Some(s))),
                None => Err(SqlError::unsupported(format!("the value {v}"))),
            },
        },
        Expr::Function(f) => {
            let name = f.name.0.last().map(|p| p.to_string().to_ascii_lowercase()).unwrap_or_default();
            let args = function_args(f);
            match (name.as_str(), args.as_slice()) {
                ("version", []) => Ok((name, Constant::Version)),
                ("current_setting", [arg, ..]) => match constant(arg)? {
                    (_, Constant::Text(Some(setting))) => Ok((name, Constant::Setting(setting_name(&setting)))),
                    _ => Err(SqlError::unsupported("current_setting() of anything but a string")),
                },
                ("current_database", []) => Ok((name, Constant::Text(Some("denorm".into())))),
                ("current_schema", []) => Ok((name, Constant::Text(Some("public".into())))),
                ("current_user" | "session_user" | "user", _) => {
                    Ok((name, Constant::Setting("session_authorization".into())))
                }
                ("pg_backend_pid", []) => Ok((name, Constant::Int(i64::from(std::process::id())))),
                _ => Err(SqlError::unsupported(format!("the function {}()", f.name))),
            }
        }
        Expr::Identifier(id) if matches!(id.value.to_ascii_lowercase().as_str(), "current_user" | "session_user") => {
            Ok((id.value.to_ascii_lowercase(), Constant::Setting("session_authorization".into())))
        }
        other => Err(SqlError::unsupported(format!("the expression {other}"))),
    }
}

fn function_args(f: &ast::Function) -> Vec<&Expr> {
    match &f.args {
        ast::FunctionArguments::List(list) => list
            .args
            .iter()
            .filter_map(|a| match a {
                ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

fn string_value(v: &SqlValue) -> Option<String> {
    match v {
        SqlValue::SingleQuotedString(s)
        | SqlValue::EscapedStringLiteral(s)
        | SqlValue::UnicodeStringLiteral(s)
        | SqlValue::NationalStringLiteral(s)
        | SqlValue::DoubleQuotedString(s) => Some(s.clone()),
        SqlValue::DollarQuotedString(d) => Some(d.value.clone()),
        _ => None,
    }
}

/// The view a FROM clause names, and the names its columns may be
/// qualified with.
struct Source<'v> {
    info: &'v ViewInfo,
    qualifiers: Vec<String>,
}

fn view_select(published: &Published, query: &ast::Query, select: &ast::Select) -> Result<Select, SqlError> {
    reject_unsupported_clauses(query, select)?;
    let from = resolve_from(published, select)?;
    let mut parameters = Vec::new();
    let columns = output_columns(&from, &select.projection)?;
    let mut filters = Vec::new();
    if let Some(selection) = &select.selection {
        conjuncts(&from, selection, &mut filters, &mut parameters)?;
    }
    let order = match &query.order_by {
        None => from.info.order.clone(),
        Some(order_by) => match &order_by.kind {
            OrderByKind::All(_) => return Err(SqlError::unsupported("ORDER BY ALL")),
            OrderByKind::Expressions(terms) => {
                terms.iter().map(|t| order_term(&from, &columns, t)).collect::<Result<_, _>>()?
            }
        },
    };
    let (limit, offset) = match &query.limit_clause {
        None => (None, None),
        Some(LimitClause::LimitOffset { limit, offset, limit_by }) => {
            if !limit_by.is_empty() {
                return Err(SqlError::unsupported("LIMIT BY"));
            }
            let limit = limit.as_ref().map(|e| count_operand(e, &mut parameters)).transpose()?;
            let offset = offset.as_ref().map(|o| count_operand(&o.value, &mut parameters)).transpose()?;
            (limit, offset)
        }
        Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
            (Some(count_operand(limit, &mut parameters)?), Some(count_operand(offset, &mut parameters)?))
        }
    };
    let (limit, offset) = match &query.fetch {
        None => (limit, offset),
        Some(fetch) if !fetch.percent && !fetch.with_ties && limit.is_none() => {
            let quantity = fetch.quantity.as_ref().map(|e| count_operand(e, &mut parameters)).transpose()?;
            (quantity, offset)
        }
        Some(_) => return Err(SqlError::unsupported("FETCH … PERCENT or WITH TIES")),
    };
    Ok(Select { view: from.info.name.clone(), columns, filters, order, limit, offset, parameters })
}

fn reject_unsupported_clauses(query: &ast::Query, select: &ast::Select) -> Result<(), SqlError> {
    let group_by = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(e, _) => !e.is_empty(),
    };
    let unsupported = [
        (query.with.is_some(), "WITH (common table expressions)"),
        (!query.locks.is_empty(), "FOR UPDATE/SHARE"),
        (select.distinct.is_some(), "DISTINCT"),
        (group_by, "GROUP BY"),
        (select.having.is_some(), "HAVING"),
        (!select.named_window.is_empty(), "WINDOW"),
        (select.into.is_some(), "SELECT INTO"),
        (select.from.len() > 1, "a join (more than one table in FROM)"),
    ];
    match unsupported.iter().find(|(present, _)| *present) {
        Some((_, what)) => Err(SqlError::unsupported(what)),
        None => Ok(()),
    }
}

fn resolve_from<'p>(published: &'p Published, select: &ast::Select) -> Result<Source<'p>, SqlError> {
    let table = &select.from[0];
    if !table.joins.is_empty() {
        return Err(
            SqlError::unsupported("JOIN").detail("each view is served on its own; define the join in a view instead")
        );
    }
    let TableFactor::Table { name, alias, args: None, .. } = &table.relation else {
        return Err(SqlError::unsupported("a subquery or function in FROM"));
    };
    let parts: Vec<ast::Ident> = name.0.iter().filter_map(|p| p.as_ident().cloned()).collect();
    let (schema, view) = match parts.as_slice() {
        [view] => (None, view),
        [schema, view] => (Some(schema), view),
        _ => return Err(SqlError::new(UNDEFINED_TABLE, format!("relation \"{name}\" does not exist"))),
    };
    if let Some(schema) = schema.filter(|s| !s.value.eq_ignore_ascii_case("public")) {
        return Err(SqlError::new(UNDEFINED_TABLE, format!("relation \"{name}\" does not exist"))
            .hint(format!("denorm's views are in schema \"public\", not \"{}\"", schema.value)));
    }
    let found = published
        .views
        .iter()
        .find(|v| v.info.name == view.value)
        .or_else(|| {
            let folded = view.value.to_lowercase();
            published.views.iter().find(|v| view.quote_style.is_none() && v.info.name.to_lowercase() == folded)
        })
        .ok_or_else(|| {
            let names: Vec<&str> = published.views.iter().map(|v| v.info.name.as_str()).collect();
            SqlError::new(UNDEFINED_TABLE, format!("relation \"{}\" does not exist", view.value))
                .hint(format!("denorm serves these views: {}", names.join(", ")))
        })?;
    let mut qualifiers = vec![found.info.name.clone(), format!("public.{}", found.info.name)];
    if let Some(alias) = alias {
        qualifiers = vec![alias.name.value.clone()];
    }
    Ok(Source { info: &found.info, qualifiers })
}

/// The view column an expression names, if it is a column reference.
fn column_of(from: &Source<'_>, expr: &Expr) -> Result<Option<usize>, SqlError> {
    let (qualifier, ident) = match expr {
        Expr::Identifier(id) => (None, id),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            let (last, prefix) = parts.split_last().expect("two parts");
            (Some(prefix.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(".")), last)
        }
        Expr::Nested(inner) => return column_of(from, inner),
        _ => return Ok(None),
    };
    if let Some(q) = &qualifier {
        if !from.qualifiers.iter().any(|known| known.eq_ignore_ascii_case(q)) {
            return Err(SqlError::new(UNDEFINED_TABLE, format!("missing FROM-clause entry for table \"{q}\"")));
        }
    }
    let info = from.info;
    let found = info.column_index(&ident.value).or_else(|| {
        let folded = ident.value.to_lowercase();
        (ident.quote_style.is_none())
            .then(|| info.columns.iter().position(|c| c.name.to_lowercase() == folded))
            .flatten()
    });
    match found {
        Some(c) => Ok(Some(c)),
        None => Err(unknown_column(info, &ident.value)),
    }
}

fn unknown_column(info: &ViewInfo, name: &str) -> SqlError {
    let names: Vec<&str> = info.columns.iter().map(|c| c.name.as_str()).collect();
    SqlError::new(UNDEFINED_COLUMN, format!("column \"{name}\" does not exist")).hint(format!(
        "view \"{}\" has columns: {}",
        info.name,
        names.join(", ")
    ))
}

fn require_column(from: &Source<'_>, expr: &Expr, role: &str) -> Result<usize, SqlError> {
    column_of(from, expr)?.ok_or_else(|| SqlError::unsupported(format!("the expression {expr} in {role}")))
}

fn output_columns(from: &Source<'_>, projection: &[SelectItem]) -> Result<Vec<(usize, String)>, SqlError> {
    let all = || from.info.columns.iter().enumerate().map(|(i, c)| (i, c.name.clone()));
    let mut columns = Vec::new();
    for item in projection {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => columns.extend(all()),
            SelectItem::UnnamedExpr(expr) => {
                let c = select_column(from, expr)?;
                columns.push((c, from.info.columns[c].name.clone()));
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                columns.push((select_column(from, expr)?, alias.value.clone()))
            }
            SelectItem::ExprWithAliases { .. } => return Err(SqlError::unsupported("multiple aliases")),
        }
    }
    Ok(columns)
}

fn select_column(from: &Source<'_>, expr: &Expr) -> Result<usize, SqlError> {
    if let Expr::Function(f) = expr {
        return Err(SqlError::unsupported(format!("the function {}() in the select list", f.name))
            .hint("list columns of the view; aggregates and functions belong in the view's definition (CREATE VIEW)"));
    }
    require_column(from, expr, "the select list")
}

fn order_term(from: &Source<'_>, columns: &[(usize, String)], term: &ast::OrderByExpr) -> Result<OrderTerm, SqlError> {
    let column = match &term.expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => {
                let position =
                    n.parse::<usize>().ok().filter(|p| (1..=columns.len()).contains(p)).ok_or_else(|| {
                        SqlError::new(SYNTAX_ERROR, format!("ORDER BY position {n} is not in select list"))
                    })?;
                columns[position - 1].0
            }
            _ => return Err(SqlError::unsupported(format!("ORDER BY {}", term.expr))),
        },
        Expr::Identifier(id) if from.info.column_index(&id.value).is_none() => {
            match columns.iter().find(|(_, name)| name == &id.value) {
                Some((c, _)) => *c,
                None => require_column(from, &term.expr, "ORDER BY")?,
            }
        }
        expr => require_column(from, expr, "ORDER BY")?,
    };
    let descending = match term.options.sort {
        None | Some(ast::OrderBySort::Asc) => false,
        Some(ast::OrderBySort::Desc) => true,
        Some(ast::OrderBySort::Using(_)) => return Err(SqlError::unsupported("ORDER BY … USING")),
    };
    Ok(OrderTerm { column, descending, nulls_first: term.options.nulls_first.unwrap_or(descending), collation: None })
}

fn count_operand(expr: &Expr, parameters: &mut Vec<Option<ParamUse>>) -> Result<Operand, SqlError> {
    let operand = operand(expr)?;
    note_param(&operand, ParamUse::Count, parameters);
    Ok(operand)
}

fn note_param(operand: &Operand, usage: ParamUse, parameters: &mut Vec<Option<ParamUse>>) {
    if let Operand::Param(n) = operand {
        if parameters.len() <= *n {
            parameters.resize(n + 1, None);
        }
        parameters[*n].get_or_insert(usage);
    }
}

fn operand(expr: &Expr) -> Result<Operand, SqlError> {
    match expr {
        Expr::Nested(e) | Expr::Cast { expr: e, .. } => operand(e),
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr: inner } => {
            match (expr, operand(inner)?) {
                (Expr::UnaryOp { op: UnaryOperator::Minus, .. }, Operand::Literal(n)) => {
                    Ok(Operand::Literal(match n.strip_prefix('-') {
                        Some(positive) => positive.to_owned(),
                        None => format!("-{n}"),
                    }))
                }
                (_, operand) => Ok(operand),
            }
        }
        Expr::TypedString(typed) => match string_value(&typed.value.value) {
            Some(s) => Ok(Operand::Literal(s)),
            None => Err(SqlError::unsupported(format!("the value {expr}"))),
        },
        Expr::Value(v) => match &v.value {
            SqlValue::Number(n, _) => Ok(Operand::Literal(n.clone())),
            SqlValue::Boolean(b) => Ok(Operand::Literal(b.to_string())),
            SqlValue::Null => Ok(Operand::Null),
            SqlValue::Placeholder(p) => p
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .map(|n| Operand::Param(n - 1))
                .ok_or_else(|| SqlError::new(SYNTAX_ERROR, format!("bad parameter \"{p}\"")).hint("write $1, $2, …")),
            other => string_value(other)
                .map(Operand::Literal)
                .ok_or_else(|| SqlError::unsupported(format!("the value {other}"))),
        },
        other => Err(SqlError::unsupported(format!("the expression {other} as a value"))),
    }
}

fn conjuncts(
    from: &Source<'_>,
    expr: &Expr,
    out: &mut Vec<FilterTemplate>,
    parameters: &mut Vec<Option<ParamUse>>,
) -> Result<(), SqlError> {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(from, left, out, parameters)?;
            conjuncts(from, right, out, parameters)
        }
        Expr::Nested(inner) => conjuncts(from, inner, out, parameters),
        Expr::Value(v) if v.value == SqlValue::Boolean(true) => Ok(()),
        Expr::UnaryOp { op: UnaryOperator::Not, expr: inner } => {
            let mut negated = Vec::new();
            conjuncts(from, inner, &mut negated, parameters)?;
            match <[FilterTemplate; 1]>::try_from(negated) {
                Ok([mut f]) => {
                    f.negated = !f.negated;
                    out.push(f);
                    Ok(())
                }
                Err(_) => Err(SqlError::unsupported("NOT over several conditions (it is an OR)")),
            }
        }
        _ => {
            let filters = condition(from, expr)?;
            for f in &filters {
                let ty = from.info.columns[f.column].ty;
                let operands: Vec<&Operand> = match &f.op {
                    OpTemplate::Cmp(_, o) => vec![o],
                    OpTemplate::In(os) => os.iter().collect(),
                    OpTemplate::InArray(o) => {
                        note_param(o, ParamUse::Array(ty), parameters);
                        vec![]
                    }
                    _ => vec![],
                };
                operands.into_iter().for_each(|o| note_param(o, ParamUse::Column(ty), parameters));
            }
            out.extend(filters);
            Ok(())
        }
    }
}

/// One condition (not AND/NOT) as filters.
fn condition(from: &Source<'_>, expr: &Expr) -> Result<Vec<FilterTemplate>, SqlError> {
    let filter = |column, negated, op| FilterTemplate { column, negated, op };
    let is = |e: &Expr, negated, op| Ok(vec![filter(require_column(from, e, "WHERE")?, negated, op)]);
    match expr {
        Expr::BinaryOp { left, op, right } => {
            let cmp = match op {
                BinaryOperator::Eq => Cmp::Eq,
                BinaryOperator::NotEq => Cmp::Neq,
                BinaryOperator::Lt => Cmp::Lt,
                BinaryOperator::LtEq => Cmp::Lte,
                BinaryOperator::Gt => Cmp::Gt,
                BinaryOperator::GtEq => Cmp::Gte,
                BinaryOperator::Or => {
                    return Err(SqlError::unsupported("OR")
                        .hint("use col IN (a, b) for alternatives of one column; other ORs are not served yet"))
                }
                other => return Err(SqlError::unsupported(format!("the operator {other}"))),
            };
            match (column_of(from, left)?, column_of(from, right)?) {
                (Some(c), None) => Ok(vec![filter(c, false, OpTemplate::Cmp(cmp, operand(right)?))]),
                (None, Some(c)) => Ok(vec![filter(c, false, OpTemplate::Cmp(cmp.flipped(), operand(left)?))]),
                (Some(_), Some(_)) => Err(SqlError::unsupported("comparing two columns")),
                (None, None) => Err(SqlError::unsupported(format!("the condition {expr} (no column)"))),
            }
        }
        Expr::IsNull(e) => is(e, false, OpTemplate::IsNull),
        Expr::IsNotNull(e) => is(e, true, OpTemplate::IsNull),
        Expr::IsTrue(e) => is(e, false, OpTemplate::IsTrue),
        Expr::IsNotTrue(e) => is(e, true, OpTemplate::IsTrue),
        Expr::IsFalse(e) => is(e, false, OpTemplate::IsFalse),
        Expr::IsNotFalse(e) => is(e, true, OpTemplate::IsFalse),
        Expr::InList { expr: e, list, negated } => {
            let operands = list.iter().map(operand).collect::<Result<_, _>>()?;
            is(e, *negated, OpTemplate::In(operands))
        }
        Expr::Between { expr: e, negated: false, low, high } => {
            let c = require_column(from, e, "WHERE")?;
            Ok(vec![
                filter(c, false, OpTemplate::Cmp(Cmp::Gte, operand(low)?)),
                filter(c, false, OpTemplate::Cmp(Cmp::Lte, operand(high)?)),
            ])
        }
        Expr::Between { negated: true, .. } => Err(SqlError::unsupported("NOT BETWEEN")),
        Expr::AnyOp { left, compare_op: BinaryOperator::Eq, right, .. } => match right.as_ref() {
            Expr::Array(array) => {
                let operands = array.elem.iter().map(operand).collect::<Result<_, _>>()?;
                is(left, false, OpTemplate::In(operands))
            }
            other => is(left, false, OpTemplate::InArray(operand(other)?)),
        },
        Expr::AnyOp { .. } | Expr::AllOp { .. } => Err(SqlError::unsupported("ANY/ALL with another operator than =")),
        Expr::Like { .. } | Expr::ILike { .. } | Expr::SimilarTo { .. } | Expr::RLike { .. } => {
            Err(SqlError::unsupported("LIKE, ILIKE and pattern matching"))
        }
        Expr::InSubquery { .. } | Expr::Exists { .. } | Expr::Subquery(_) => Err(SqlError::unsupported("a subquery")),
        Expr::Function(f) => Err(SqlError::unsupported(format!("the function {}()", f.name))),
        other => Err(SqlError::unsupported(format!("the condition {other}"))),
    }
}

/// A catalog query with its `$n` parameters replaced by their values as
/// string literals (NULL for NULL): catalog queries (DBeaver's) take the
/// schema's oid as a parameter.
pub fn substitute_params(query: &ast::Query, params: &[Param]) -> Result<ast::Query, SqlError> {
    if params.is_empty() {
        return Ok(query.clone());
    }
    let text = query.to_string();
    let bytes = text.as_bytes();
    let (mut out, mut i, mut quoted) = (String::with_capacity(text.len()), 0, false);
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\'' {
            quoted = !quoted;
        } else if c == b'$' && !quoted && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let end = (i + 1..bytes.len()).find(|&j| !bytes[j].is_ascii_digit()).unwrap_or(bytes.len());
            let n: usize = text[i + 1..end].parse().unwrap_or(0);
            match params.get(n.wrapping_sub(1)) {
                Some(Some(v)) => out.push_str(&format!("'{}'", v.replace('\'', "''"))),
                Some(None) => out.push_str("NULL"),
                None => return Err(SqlError::new(UNDEFINED_PARAMETER, format!("there is no parameter ${n}"))),
            }
            i = end;
            continue;
        }
        let next = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + next]);
        i += next;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &out)
        .map_err(|e| SqlError::new(SYNTAX_ERROR, format!("cannot parse the query with its parameters: {e}")))?;
    match statements.pop() {
        Some(ast::Statement::Query(q)) => Ok(*q),
        _ => Err(SqlError::new(SYNTAX_ERROR, "expected a query")),
    }
}

/// A one-dimensional array in PostgreSQL's text form (`{1,2}`,
/// `{"a,b",NULL}`): its elements, `None` for NULL.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>, SqlError> {
    let bad = || {
        SqlError::new(INVALID_TEXT, format!("malformed array literal: \"{text}\""))
            .hint("write a one-dimensional array such as {1,2,3}")
    };
    let inner = text.trim().strip_prefix('{').and_then(|t| t.strip_suffix('}')).ok_or_else(bad)?;
    if inner.trim().is_empty() {
        return Ok(vec![]);
    }
    let (mut items, mut current, mut quoted_item, mut in_quotes) = (Vec::new(), String::new(), false, false);
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                quoted_item = true;
            }
            '\\' => current.push(chars.next().ok_or_else(bad)?),
            ',' if !in_quotes => {
                items.push(array_item(std::mem::take(&mut current), quoted_item));
                quoted_item = false;
            }
            '{' | '}' if !in_quotes => return Err(bad()),
            c => current.push(c),
        }
    }
    if in_quotes {
        return Err(bad());
    }
    items.push(array_item(current, quoted_item));
    Ok(items)
}

fn array_item(item: String, quoted: bool) -> Option<String> {
    if quoted {
        return Some(item);
    }
    let trimmed = item.trim();
    (!trimmed.eq_ignore_ascii_case("null")).then(|| trimmed.to_owned())
}

/// A parameter's value as the client sent it, in text form (binary
/// parameters are converted to text by the caller); `None` is NULL.
pub type Param = Option<String>;

/// The bound query, or `None` when a comparison with NULL makes it match
/// nothing.
impl Select {
    pub fn bind(&self, info: &ViewInfo, params: &[Param]) -> Result<Option<Query>, SqlError> {
        let value = |o: &Operand| -> Result<Option<String>, SqlError> {
            match o {
                Operand::Literal(s) => Ok(Some(s.clone())),
                Operand::Null => Ok(None),
                Operand::Param(n) => params.get(*n).cloned().ok_or_else(|| {
                    SqlError::new(UNDEFINED_PARAMETER, format!("there is no parameter ${}", n + 1))
                        .detail(format!("{} parameters were bound", params.len()))
                }),
            }
        };
        let mut filters = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            let column = &info.columns[f.column];
            let typed = |text: String| {
                parse_value(&column.name, column.ty, &text)
                    .map_err(|e| SqlError::new(INVALID_TEXT, e.message).hint(e.hint.unwrap_or_default()))
            };
            let op = match &f.op {
                OpTemplate::Cmp(cmp, o) => {
                    let Some(text) = value(o)? else { return Ok(None) };
                    let v = typed(text)?;
                    match cmp {
                        Cmp::Eq => Op::Eq(v),
                        Cmp::Neq => Op::Neq(v),
                        Cmp::Lt => Op::Lt(v),
                        Cmp::Lte => Op::Lte(v),
                        Cmp::Gt => Op::Gt(v),
                        Cmp::Gte => Op::Gte(v),
                    }
                }
                OpTemplate::In(_) | OpTemplate::InArray(_) => {
                    let items = match &f.op {
                        OpTemplate::In(os) => os.iter().map(&value).collect::<Result<Vec<_>, _>>()?,
                        OpTemplate::InArray(o) => match value(o)? {
                            Some(text) => parse_array(&text)?,
                            // x = ANY(NULL) is NULL.
                            None => return Ok(None),
                        },
                        _ => unreachable!("matched above"),
                    };
                    let mut values = Vec::with_capacity(items.len());
                    let mut null = false;
                    for item in items {
                        match item {
                            Some(text) => values.push(typed(text)?),
                            None => null = true,
                        }
                    }
                    // x NOT IN (…, NULL) is never true.
                    if null && f.negated {
                        return Ok(None);
                    }
                    Op::In(values)
                }
                OpTemplate::IsNull => Op::IsNull,
                OpTemplate::IsTrue => Op::IsTrue,
                OpTemplate::IsFalse => Op::IsFalse,
            };
            filters.push(Filter { column: f.column, negated: f.negated, op });
        }
        let count = |o: &Option<Operand>, what: &str| -> Result<Option<usize>, SqlError> {
            let Some(o) = o else { return Ok(None) };
            let Some(text) = value(o)? else { return Ok(None) };
            text.trim().parse::<usize>().map(Some).map_err(|_| {
                SqlError::new(INVALID_TEXT, format!("{what} must be a non-negative integer, got \"{text}\""))
            })
        };
        let select = Some(self.columns.iter().map(|(c, _)| *c).collect());
        // `..Query::default()`: fields the HTTP API may add (or/and groups
        // …) keep their defaults when the branches are merged.
        #[allow(clippy::needless_update)]
        let query = Query {
            filters,
            order: self.order.clone(),
            limit: count(&self.limit, "LIMIT")?,
            offset: count(&self.offset, "OFFSET")?.unwrap_or(0),
            select,
            ..Query::default()
        };
        Ok(Some(query))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::OrderTerm;
    use crate::state::{channel, ColumnInfo};
    use denorm_types::Datum;

    fn published() -> std::sync::Arc<Published> {
        let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
        let (_, reader) = channel(vec![ViewInfo {
            name: "cards".into(),
            columns: vec![
                col("id", ScalarType::Int),
                col("region", ScalarType::Text),
                col("score", ScalarType::Float),
                col("active", ScalarType::Bool),
            ],
            key: vec![0],
            ..Default::default()
        }]);
        reader.snapshot()
    }

    fn select(sql: &str) -> Result<Select, SqlError> {
        match parse(&published(), sql)? {
            Statement::Select(s) => Ok(s),
            other => panic!("{sql}: {other:?}"),
        }
    }

    fn bound(sql: &str, params: &[Param]) -> Result<Option<Query>, SqlError> {
        let p = published();
        select(sql)?.bind(&p.views[0].info, params)
    }

    fn code(sql: &str) -> &'static str {
        match parse(&published(), sql) {
            Ok(Statement::Select(s)) => s.bind(&published().views[0].info, &[]).unwrap_err().code,
            Ok(other) => panic!("{sql}: {other:?}"),
            Err(e) => e.code,
        }
    }

    fn f(column: usize, negated: bool, op: Op) -> Filter {
        Filter { column, negated, op }
    }

    #[test]
    fn where_clauses_translate_into_the_http_filters() {
        let cases: Vec<(&str, Vec<Filter>)> = vec![
            ("id = 5", vec![f(0, false, Op::Eq(Datum::Int(5)))]),
            ("5 < id", vec![f(0, false, Op::Gt(Datum::Int(5)))]),
            ("id <> -5", vec![f(0, false, Op::Neq(Datum::Int(-5)))]),
            ("id >= 2.5", vec![f(0, false, Op::Gte(Datum::Float(2.5)))]),
            (
                "region = 'eu' AND NOT (score <= 1)",
                vec![f(1, false, Op::Eq("eu".into())), f(2, true, Op::Lte(Datum::Float(1.0)))],
            ),
            ("id IN (1, '2')", vec![f(0, false, Op::In(vec![Datum::Int(1), Datum::Int(2)]))]),
            ("id NOT IN (1)", vec![f(0, true, Op::In(vec![Datum::Int(1)]))]),
            ("region IS NULL", vec![f(1, false, Op::IsNull)]),
            ("cards.region IS NOT NULL", vec![f(1, true, Op::IsNull)]),
            ("active IS TRUE AND active IS NOT FALSE", vec![f(3, false, Op::IsTrue), f(3, true, Op::IsFalse)]),
            ("id BETWEEN 1 AND 3", vec![f(0, false, Op::Gte(Datum::Int(1))), f(0, false, Op::Lte(Datum::Int(3)))]),
            ("\"ID\" = 1", vec![]),
            ("ID = $1::int8", vec![f(0, false, Op::Eq(Datum::Int(7)))]),
        ];
        for (condition, want) in cases {
            let sql = format!("SELECT * FROM cards WHERE {condition}");
            if want.is_empty() {
                assert_eq!(code(&sql), UNDEFINED_COLUMN, "{sql}");
                continue;
            }
            let q = bound(&sql, &[Some("7".into())]).unwrap().unwrap();
            assert_eq!(q.filters, want, "{sql}");
        }
    }

    #[test]
    fn any_of_an_array_is_in() {
        let s = select("SELECT * FROM cards WHERE id = ANY($1) AND region = ANY(ARRAY['eu', $2])").unwrap();
        assert_eq!(
            s.parameters,
            vec![Some(ParamUse::Array(ScalarType::Int)), Some(ParamUse::Column(ScalarType::Text))]
        );
        let q = s.bind(&published().views[0].info, &[Some("{1, 2,NULL}".into()), Some("us".into())]).unwrap().unwrap();
        assert_eq!(
            q.filters,
            vec![
                f(0, false, Op::In(vec![Datum::Int(1), Datum::Int(2)])),
                f(1, false, Op::In(vec!["eu".into(), "us".into()])),
            ]
        );
        assert_eq!(bound("SELECT * FROM cards WHERE id = ANY($1)", &[None]).unwrap(), None);
        assert_eq!(bound("SELECT * FROM cards WHERE NOT id = ANY('{1,NULL}')", &[]).unwrap(), None);
        assert_eq!(code("SELECT * FROM cards WHERE id = ANY('1,2')"), INVALID_TEXT);
        assert_eq!(code("SELECT * FROM cards WHERE id > ANY('{1}')"), FEATURE_NOT_SUPPORTED);
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            parse_array(r#"{"a,b", c ,NULL,"NULL","x\"y",""}"#).unwrap(),
            vec![some("a,b"), some("c"), None, some("NULL"), some("x\"y"), some(""),]
        );
        assert_eq!(parse_array("{}").unwrap(), vec![]);
        assert!(parse_array("{{1},{2}}").is_err() && parse_array("{\"a}").is_err());
    }

    #[test]
    fn comparisons_with_null_match_nothing() {
        assert_eq!(bound("SELECT * FROM cards WHERE id = NULL", &[]).unwrap(), None);
        assert_eq!(bound("SELECT * FROM cards WHERE id = $1", &[None]).unwrap(), None);
        assert_eq!(bound("SELECT * FROM cards WHERE id NOT IN (1, NULL)", &[]).unwrap(), None);
        let q = bound("SELECT * FROM cards WHERE id IN (1, NULL)", &[]).unwrap().unwrap();
        assert_eq!(q.filters, vec![f(0, false, Op::In(vec![Datum::Int(1)]))]);
    }

    #[test]
    fn columns_order_limit_offset_and_parameter_uses() {
        let s = select("SELECT score, id AS ident FROM public.cards c WHERE c.region = $2 ORDER BY 2 DESC, score NULLS FIRST LIMIT $1 OFFSET 3").unwrap();
        assert_eq!(s.columns, vec![(2, "score".into()), (0, "ident".into())]);
        assert_eq!(s.parameters, vec![Some(ParamUse::Count), Some(ParamUse::Column(ScalarType::Text))]);
        let q = s.bind(&published().views[0].info, &[Some("10".into()), Some("eu".into())]).unwrap().unwrap();
        let term = |column, descending, nulls_first| OrderTerm { column, descending, nulls_first, collation: None };
        assert_eq!(q.order, vec![term(0, true, true), term(2, false, true)]);
        assert_eq!((q.limit, q.offset, q.select), (Some(10), 3, Some(vec![2, 0])));
        let q = bound("SELECT * FROM cards ORDER BY ident LIMIT ALL", &[]);
        assert_eq!(q.unwrap_err().code, UNDEFINED_COLUMN);
        let q = bound("SELECT * FROM cards FETCH FIRST 2 ROWS ONLY", &[]).unwrap().unwrap();
        assert_eq!((q.limit, q.select), (Some(2), Some(vec![0, 1, 2, 3])));
    }

    #[test]
    fn everything_else_is_refused_with_a_sqlstate_naming_it() {
        let cases = [
            ("SELECT count(*) FROM cards", FEATURE_NOT_SUPPORTED, "count"),
            ("SELECT * FROM cards a JOIN cards b ON a.id = b.id", FEATURE_NOT_SUPPORTED, "JOIN"),
            ("SELECT * FROM cards WHERE id = 1 OR id = 2", FEATURE_NOT_SUPPORTED, "OR"),
            ("SELECT * FROM cards WHERE region LIKE 'e%'", FEATURE_NOT_SUPPORTED, "LIKE"),
            ("SELECT region FROM cards GROUP BY region", FEATURE_NOT_SUPPORTED, "GROUP BY"),
            ("SELECT DISTINCT region FROM cards", FEATURE_NOT_SUPPORTED, "DISTINCT"),
            ("INSERT INTO cards VALUES (1)", FEATURE_NOT_SUPPORTED, "INSERT"),
            ("SELECT * FROM nope", UNDEFINED_TABLE, "nope"),
            ("SELECT * FROM other.cards", UNDEFINED_TABLE, "other"),
            ("SELECT nope FROM cards", UNDEFINED_COLUMN, "nope"),
            ("SELECT * FROM cards WHERE id = 'x'", INVALID_TEXT, "x"),
            ("SELECT * FROM cards WHERE id = $2", UNDEFINED_PARAMETER, "$2"),
            ("SELEC 1", FEATURE_NOT_SUPPORTED, "SELEC"),
            ("SELECT * FROM cards WHERE", SYNTAX_ERROR, "parse"),
        ];
        for (sql, want, named) in cases {
            let e = match parse(&published(), sql) {
                Ok(Statement::Select(s)) => s.bind(&published().views[0].info, &[]).unwrap_err(),
                Ok(other) => panic!("{sql}: {other:?}"),
                Err(e) => e,
            };
            assert_eq!(e.code, want, "{sql}: {e:?}");
            let text = format!("{} {}", e.message, e.hint.clone().unwrap_or_default());
            assert!(text.contains(named), "{sql}: {e:?}");
        }
        let e = parse(&published(), "SELECT * FROM nope").unwrap_err();
        assert!(e.hint.unwrap().contains("cards"));
    }

    #[test]
    fn session_statements_and_splitting() {
        let p = published();
        let set = |name: &str, value: Option<&str>| Statement::Set { name: name.into(), value: value.map(Into::into) };
        assert_eq!(parse(&p, "SET extra_float_digits = 3").unwrap(), set("extra_float_digits", Some("3")));
        assert_eq!(parse(&p, "SET application_name TO 'a b'").unwrap(), set("application_name", Some("a b")));
        assert_eq!(
            parse(&p, "set denorm.min_position = '0/16B3748'").unwrap(),
            set("denorm.min_position", Some("0/16B3748"))
        );
        assert_eq!(parse(&p, "SET SESSION TIME ZONE 'UTC'").unwrap(), set("timezone", Some("UTC")));
        assert_eq!(parse(&p, "RESET denorm.min_position").unwrap(), set("denorm.min_position", None));
        assert_eq!(parse(&p, "SHOW DateStyle").unwrap(), Statement::Show("datestyle".into()));
        assert_eq!(parse(&p, "BEGIN").unwrap(), Statement::Begin);
        let ack = Statement::Ack { tag: "SET".into() };
        assert_eq!(parse(&p, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").unwrap(), ack);
        assert_eq!(parse(&p, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY").unwrap(), ack);
        assert_eq!(parse(&p, "-- hi\n").unwrap(), Statement::Empty);
        assert!(matches!(parse(&p, "SELECT version(), 1 AS one").unwrap(), Statement::Constant(c) if c.len() == 2));
        assert!(matches!(parse(&p, "SELECT c.relname FROM pg_catalog.pg_class c").unwrap(), Statement::Catalog(_)));
        assert_eq!(split_statements("SET a = ';'; SELECT 1; -- x;\n ;"), vec!["SET a = ';'", " SELECT 1"]);
    }

    #[test]
    fn catalog_parameters_become_literals() {
        let sql = "SELECT c.relname FROM pg_class c WHERE c.relnamespace = $1 AND c.relname <> '$2' AND $2 IS NULL";
        let Statement::Catalog(q) = parse(&published(), sql).unwrap() else { panic!("{sql}") };
        let bound = substitute_params(&q, &[Some("2200".into()), None]).unwrap();
        assert_eq!(
            bound.to_string(),
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = '2200' AND c.relname <> '$2' AND NULL IS NULL"
        );
        assert_eq!(substitute_params(&q, &[]).unwrap(), *q);
        assert_eq!(substitute_params(&q, &[Some("x".into())]).unwrap_err().code, UNDEFINED_PARAMETER);
    }
}
