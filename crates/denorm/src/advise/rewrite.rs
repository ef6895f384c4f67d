//! From an application's parameterized read query to the SELECT of a view
//! that answers it for every parameter value at once (pure; no database).
//!
//! ```text
//!  SELECT p.title, count(c.id) FROM posts p LEFT JOIN comments c ON c.post_id = p.id
//!  WHERE p.id = $1 GROUP BY p.title
//!        │ every `column = $n` conjunct of WHERE leaves the WHERE …
//!        ▼ … and its column becomes an output (and a GROUP BY column)
//!  SELECT p.title, count(c.id), p.id AS id FROM posts p LEFT JOIN comments c ON c.post_id = p.id
//!  GROUP BY p.title, p.id                    read: ?id=eq.<value>
//! ```
//!
//! `ORDER BY` and `LIMIT`/`OFFSET` leave the view too: they become the
//! read's `order=`/`limit=` (the view is keyed by the parameter columns,
//! then the order's columns, so such a read is a range of the view's index),
//! or a feed's `order_by`. A parameter anywhere else (`x > $1`, inside a
//! function, in ON or HAVING) cannot become a view key: the query is
//! reported as not expressible, with where the parameter is.

use std::fmt;

use sqlparser::ast::{
    self, BinaryOperator, Expr, GroupByExpr, Ident, LimitClause, ObjectNamePart, Query, Select, SelectItem, SetExpr,
    Statement, TableFactor, Value,
};
use sqlparser::dialect::{Dialect as SqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;

use denorm_types::Dialect;

/// Why a query cannot become a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotExpressible(pub String);

impl fmt::Display for NotExpressible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A base table the query reads, with the alias it is read under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub name: String,
    pub alias: Option<String>,
}

/// A `column = $n` conjunct taken out of WHERE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The parameter: `$N` (SQLite's `?` as its number in order, `?N` as
    /// `$N`), or `:name` as written.
    pub placeholder: String,
    /// The column's qualifier as written (`p` in `p.id`), if any.
    pub qualifier: Option<String>,
    pub column: String,
    /// The base table the column belongs to, once resolved against the
    /// catalog (see `advise::resolve`).
    pub table: Option<String>,
    /// The view's output column that holds it (what the read filters).
    pub output: String,
}

/// A read query rewritten as a view's SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewritten {
    /// The view's SELECT (no parameters, no ORDER BY/LIMIT).
    pub select: String,
    pub tables: Vec<TableRef>,
    pub params: Vec<Param>,
    /// GROUP BY or an aggregate: each source change updates one row per group.
    pub grouped: bool,
    /// The query's ORDER BY as output column names with direction, when
    /// every term is an output column (or was added as one).
    pub order: Vec<(String, bool)>,
    /// The query's LIMIT: a number, or a parameter (`$2`: pg_stat_statements
    /// writes every constant as a parameter).
    pub limit: Option<String>,
}

/// Parses one read query of `dialect` (parameters as `$1`, `?`, `?1` or
/// `:name`) and rewrites it.
pub fn rewrite(sql: &str, dialect: Dialect) -> Result<Rewritten, NotExpressible> {
    let parser_dialect: Box<dyn SqlDialect> = match dialect {
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
    };
    let mut statements =
        Parser::parse_sql(parser_dialect.as_ref(), sql).map_err(|e| NotExpressible(format!("does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(NotExpressible(format!("{} statements where one query was expected", statements.len())));
    }
    let Statement::Query(mut query) = statements.remove(0) else {
        return Err(NotExpressible("not a SELECT".into()));
    };
    let limit = take_limit(&mut query)?;
    let order_by = query.order_by.take();
    let SetExpr::Select(select) = query.body.as_mut() else {
        if contains_placeholder(&query.to_string()) {
            return Err(NotExpressible("a parameter inside a set operation (UNION, …)".into()));
        }
        return Ok(Rewritten {
            select: query.to_string(),
            tables: Vec::new(),
            params: Vec::new(),
            grouped: false,
            order: Vec::new(),
            limit,
        });
    };
    let tables = base_tables(select);
    let params = take_params(select)?;
    let grouped = is_grouped(select);
    let mut rewritten = Rewritten { select: String::new(), tables, params, grouped, order: Vec::new(), limit };
    for i in 0..rewritten.params.len() {
        let column = column_expr(&rewritten.params[i]);
        rewritten.params[i].output = output_for(select, &column, &rewritten.params[i].column);
        if grouped {
            group_by(select, column)?;
        }
    }
    if let Some(order_by) = order_by {
        rewritten.order = order_terms(select, &order_by)?;
    }
    let remaining = select.to_string();
    if contains_placeholder(&remaining) {
        return Err(NotExpressible(
            "a parameter outside a top-level `column = parameter` condition of WHERE (in a range, a function, ON, \
             HAVING or the SELECT list) cannot become a view key"
                .into(),
        ));
    }
    rewritten.select = query.to_string();
    Ok(rewritten)
}

/// Takes LIMIT/OFFSET off the query: the limit when it is a number or a
/// parameter.
fn take_limit(query: &mut Query) -> Result<Option<String>, NotExpressible> {
    let Some(clause) = query.limit_clause.take() else { return Ok(None) };
    let limit = match &clause {
        LimitClause::LimitOffset { limit: Some(Expr::Value(v)), .. } => match &v.value {
            Value::Number(n, _) => Some(n.clone()),
            Value::Placeholder(p) => Some(p.clone()),
            _ => None,
        },
        _ => None,
    };
    Ok(limit)
}

fn contains_placeholder(sql: &str) -> bool {
    let bytes = sql.as_bytes();
    let mut quoted = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\'' {
            quoted = !quoted;
        } else if !quoted {
            let next_is_word = bytes.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
            if b == b'?' || (b == b'$' && next_is_word) || (b == b':' && next_is_word && i > 0 && bytes[i - 1] != b':')
            {
                return true;
            }
        }
    }
    false
}

/// The base tables of FROM and its joins (derived tables are not listed).
fn base_tables(select: &Select) -> Vec<TableRef> {
    let mut out = Vec::new();
    for from in &select.from {
        std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation)).for_each(|factor| {
            collect_factor(factor, &mut out);
        });
    }
    out
}

fn collect_factor(factor: &TableFactor, out: &mut Vec<TableRef>) {
    match factor {
        TableFactor::Table { name, alias, .. } => out.push(TableRef {
            name: name.0.last().map(part_name).unwrap_or_default(),
            alias: alias.as_ref().map(|a| a.name.value.clone()),
        }),
        TableFactor::NestedJoin { table_with_joins, .. } => {
            collect_factor(&table_with_joins.relation, out);
            for join in &table_with_joins.joins {
                collect_factor(&join.relation, out);
            }
        }
        _ => {}
    }
}

fn part_name(part: &ObjectNamePart) -> String {
    match part {
        ObjectNamePart::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

/// Removes every top-level `column = parameter` conjunct from WHERE.
fn take_params(select: &mut Select) -> Result<Vec<Param>, NotExpressible> {
    let Some(selection) = select.selection.take() else { return Ok(Vec::new()) };
    let mut conjuncts = Vec::new();
    split_and(selection, &mut conjuncts);
    let mut params = Vec::new();
    let mut kept = Vec::new();
    for conjunct in conjuncts {
        match param_equality(&conjunct) {
            Some(mut param) => {
                // `?` is the next parameter, `?N` the Nth: both written `$N`.
                if param.placeholder == "?" {
                    param.placeholder = format!("${}", params.len() + 1);
                } else if let Some(n) = param.placeholder.strip_prefix('?') {
                    param.placeholder = format!("${n}");
                }
                params.push(param);
            }
            None => kept.push(conjunct),
        }
    }
    select.selection = kept.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    });
    Ok(params)
}

fn split_and(expr: Expr, out: &mut Vec<Expr>) {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            split_and(*left, out);
            split_and(*right, out);
        }
        Expr::Nested(inner) if matches!(inner.as_ref(), Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            split_and(*inner, out);
        }
        other => out.push(other),
    }
}

fn param_equality(expr: &Expr) -> Option<Param> {
    let Expr::BinaryOp { left, op: BinaryOperator::Eq, right } = expr else { return None };
    let (column, placeholder) = match (column_of(left), placeholder_of(right)) {
        (Some(c), Some(p)) => (c, p),
        _ => (column_of(right)?, placeholder_of(left)?),
    };
    Some(Param { placeholder, qualifier: column.0, column: column.1, table: None, output: String::new() })
}

fn column_of(expr: &Expr) -> Option<(Option<String>, String)> {
    match expr {
        Expr::Identifier(ident) => Some((None, ident.value.clone())),
        Expr::CompoundIdentifier(parts) if parts.len() >= 2 => {
            Some((Some(parts[parts.len() - 2].value.clone()), parts[parts.len() - 1].value.clone()))
        }
        Expr::Nested(inner) => column_of(inner),
        _ => None,
    }
}

fn placeholder_of(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => Some(p.clone()),
            _ => None,
        },
        Expr::Cast { expr, .. } | Expr::Nested(expr) => placeholder_of(expr),
        _ => None,
    }
}

fn column_expr(param: &Param) -> Expr {
    match &param.qualifier {
        Some(q) => Expr::CompoundIdentifier(vec![Ident::new(q), Ident::new(&param.column)]),
        None => Expr::Identifier(Ident::new(&param.column)),
    }
}

fn is_grouped(select: &Select) -> bool {
    let has_group_by = match &select.group_by {
        GroupByExpr::All(_) => true,
        GroupByExpr::Expressions(exprs, _) => !exprs.is_empty(),
    };
    has_group_by || select.having.is_some() || select.projection.iter().any(|item| has_aggregate(&item.to_string()))
}

/// Whether a SELECT item calls an aggregate (by name; window calls aside).
fn has_aggregate(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "count(",
        "sum(",
        "avg(",
        "min(",
        "max(",
        "total(",
        "group_concat(",
        "string_agg(",
        "json_group_array(",
        "json_agg(",
        "array_agg(",
        "bool_and(",
        "bool_or(",
        "every(",
    ]
    .iter()
    .any(|f| lower.contains(f))
        && !lower.contains(" over ")
        && !lower.contains(" over(")
}

/// The output column that holds `column`: an item selecting it (by its
/// alias or name), or a new item `column AS name` appended.
fn output_for(select: &mut Select, column: &Expr, name: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::UnnamedExpr(expr) => {
                if same_column(expr, column) {
                    return name.to_string();
                }
                if let Some((_, n)) = column_of(expr) {
                    names.push(n);
                }
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                if same_column(expr, column) {
                    return alias.value.clone();
                }
                names.push(alias.value.clone());
            }
            SelectItem::ExprWithAliases { expr, aliases } => {
                if same_column(expr, column) {
                    if let Some(alias) = aliases.first() {
                        return alias.value.clone();
                    }
                }
                names.extend(aliases.iter().map(|a| a.value.clone()));
            }
            SelectItem::Wildcard(_) => return name.to_string(),
            SelectItem::QualifiedWildcard(kind, _) => {
                let qualifier = kind.to_string();
                if let Some((Some(q), _)) = column_of(column) {
                    if q == qualifier {
                        return name.to_string();
                    }
                }
            }
        }
    }
    let mut output = name.to_string();
    if names.iter().any(|n| n.eq_ignore_ascii_case(&output)) {
        let prefix = column_of(column).and_then(|(q, _)| q).unwrap_or_else(|| "param".into());
        output = format!("{prefix}_{name}");
    }
    select.projection.push(SelectItem::ExprWithAlias { expr: column.clone(), alias: Ident::new(&output) });
    output
}

/// Same column, comparing `p.id` with `id` as equal when one side is
/// unqualified (the rewrite only needs "already selected").
fn same_column(a: &Expr, b: &Expr) -> bool {
    match (column_of(a), column_of(b)) {
        (Some((qa, na)), Some((qb, nb))) => na.eq_ignore_ascii_case(&nb) && (qa.is_none() || qb.is_none() || qa == qb),
        _ => false,
    }
}

fn group_by(select: &mut Select, column: Expr) -> Result<(), NotExpressible> {
    match &mut select.group_by {
        GroupByExpr::All(_) => Ok(()),
        GroupByExpr::Expressions(exprs, _) => {
            if !exprs.iter().any(|e| same_column(e, &column)) {
                exprs.push(column);
            }
            Ok(())
        }
    }
}

/// ORDER BY terms as output column names (added to the SELECT list when
/// the term is a column not yet selected), with `true` for descending.
fn order_terms(select: &mut Select, order_by: &ast::OrderBy) -> Result<Vec<(String, bool)>, NotExpressible> {
    let ast::OrderByKind::Expressions(terms) = &order_by.kind else {
        return Err(NotExpressible("ORDER BY ALL".into()));
    };
    let mut out = Vec::new();
    for term in terms {
        let descending = matches!(term.options.sort, Some(ast::OrderBySort::Desc));
        let name = match (&term.expr, column_of(&term.expr)) {
            (_, Some((_, column))) => {
                let by_alias = select.projection.iter().find_map(|item| match item {
                    SelectItem::ExprWithAlias { alias, .. } if alias.value.eq_ignore_ascii_case(&column) => {
                        Some(alias.value.clone())
                    }
                    _ => None,
                });
                match by_alias {
                    Some(alias) => alias,
                    None if select.group_by_is_empty_or_contains(&term.expr) => output_for(select, &term.expr, &column),
                    None => return Err(NotExpressible(format!("ORDER BY {} is not a GROUP BY column", term.expr))),
                }
            }
            (expr, None) => {
                let alias = select.projection.iter().find_map(|item| match item {
                    SelectItem::ExprWithAlias { expr: e, alias } if e == expr => Some(alias.value.clone()),
                    _ => None,
                });
                alias.ok_or_else(|| NotExpressible(format!("ORDER BY {expr}: order by an output column")))?
            }
        };
        out.push((name, descending));
    }
    Ok(out)
}

trait GroupByCheck {
    fn group_by_is_empty_or_contains(&self, expr: &Expr) -> bool;
}

impl GroupByCheck for Select {
    fn group_by_is_empty_or_contains(&self, expr: &Expr) -> bool {
        match &self.group_by {
            GroupByExpr::All(_) => true,
            GroupByExpr::Expressions(exprs, _) => {
                (exprs.is_empty() && !is_grouped(self)) || exprs.iter().any(|e| same_column(e, expr))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(sql: &str) -> Rewritten {
        rewrite(sql, Dialect::Postgres).unwrap()
    }

    #[test]
    fn a_key_lookup_becomes_an_output_column() {
        let r = pg("SELECT p.title, u.name FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = $1");
        assert_eq!(r.select, "SELECT p.title, u.name, p.id AS id FROM posts p JOIN users u ON u.id = p.author_id");
        assert_eq!(r.params.len(), 1);
        assert_eq!((r.params[0].output.as_str(), r.params[0].placeholder.as_str()), ("id", "$1"));
        assert_eq!(r.tables.len(), 2);
        assert!(!r.grouped);
    }

    #[test]
    fn a_grouped_query_groups_by_the_parameter_column() {
        let r = pg("SELECT count(*) AS n, avg(rating) FROM reviews WHERE product_id = $1 AND rating > 0");
        assert_eq!(
            r.select,
            "SELECT count(*) AS n, avg(rating), product_id AS product_id FROM reviews WHERE rating > 0 GROUP BY product_id"
        );
        assert!(r.grouped);
    }

    #[test]
    fn an_already_selected_column_is_reused_and_order_and_limit_leave() {
        let r = pg("SELECT t.driver_id AS driver, t.id, t.started_on FROM trips t \
                    WHERE $1 = t.driver_id ORDER BY t.started_on DESC LIMIT 10");
        assert_eq!(r.select, "SELECT t.driver_id AS driver, t.id, t.started_on FROM trips t");
        assert_eq!(r.params[0].output, "driver");
        assert_eq!(r.order, vec![("started_on".to_string(), true)]);
        assert_eq!(r.limit.as_deref(), Some("10"));
    }

    #[test]
    fn sqlite_placeholders_are_parameters_too() {
        let r = rewrite("SELECT name FROM users WHERE id = ?", Dialect::Sqlite).unwrap();
        assert_eq!(r.params[0].placeholder, "$1", "written as PostgreSQL numbers it");
        assert_eq!(r.select, "SELECT name, id AS id FROM users");
    }

    #[test]
    fn a_parameter_that_is_not_an_equality_is_refused() {
        let e = rewrite("SELECT id FROM posts WHERE created_at > $1", Dialect::Postgres).unwrap_err();
        assert!(e.0.contains("cannot become a view key"), "{e}");
        let e = rewrite("SELECT id FROM posts WHERE id = $1 OR id = $2", Dialect::Postgres).unwrap_err();
        assert!(e.0.contains("cannot become a view key"), "{e}");
        assert!(rewrite("UPDATE posts SET x = 1", Dialect::Postgres).unwrap_err().0.contains("not a SELECT"));
    }

    #[test]
    fn a_name_clash_is_prefixed() {
        let r = pg("SELECT c.id FROM comments c JOIN posts p ON p.id = c.post_id WHERE p.id = $1");
        assert_eq!(r.params[0].output, "p_id");
    }

    #[test]
    fn placeholders_in_strings_do_not_count() {
        assert!(!contains_placeholder("SELECT '$1 ?' FROM t"));
        assert!(contains_placeholder("SELECT x FROM t WHERE y > $2"));
        assert!(!contains_placeholder("SELECT x::text FROM t"));
    }
}
