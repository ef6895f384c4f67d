//! Output column names: what the source database itself would call each
//! column of the SELECT, so a view reads like the query run on the source.
//!
//! | item | SQLite | PostgreSQL |
//! |---|---|---|
//! | `x AS Total` | `Total` | `total` (unquoted identifiers fold to lower case) |
//! | `p.name` | `name` | `name` |
//! | `COUNT(*)` | `COUNT(*)` (the text as written) | `count` |
//! | `CAST(price AS TEXT)` | `CAST(price AS TEXT)` | `price` (a cast keeps its argument's name) |
//! | `CAST(1 AS INTEGER)` | `CAST(1 AS INTEGER)` | `int4` |
//! | `CASE … END` | the text | `case` |
//! | `a + 1` | `a + 1` | `?column?` |

use denorm_types::Dialect;
use sqlparser::ast::{self, Ident};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::func::cast_target;
use crate::source::Source;

/// An alias as the source reports it.
pub(crate) fn alias_name(alias: &Ident, dialect: Dialect) -> String {
    match (dialect, alias.quote_style) {
        (Dialect::Postgres, None) => alias.value.to_lowercase(),
        _ => alias.value.clone(),
    }
}

/// The identifiers of a bare column reference (also inside parentheses).
pub(crate) fn bare_column(mut e: &ast::Expr) -> Option<&[Ident]> {
    loop {
        match e {
            ast::Expr::Identifier(i) => return Some(std::slice::from_ref(i)),
            ast::Expr::CompoundIdentifier(v) => return Some(v),
            ast::Expr::Nested(inner) => e = inner,
            _ => return None,
        }
    }
}

/// PostgreSQL's name for an unaliased expression (its `FigureColname`): a
/// column's or function's name, `case`, a cast's type unless its argument
/// has a better name, else `?column?`.
pub(crate) fn postgres_name(e: &ast::Expr) -> String {
    let mut casts = Vec::new();
    let mut e = e;
    // (name, strength): 2 = a real name, 1 = a fallback such as `case`.
    let (mut name, mut strength) = loop {
        match e {
            ast::Expr::Nested(inner) => e = inner,
            ast::Expr::Cast { expr, data_type, .. } => {
                casts.push(data_type);
                e = expr;
            }
            ast::Expr::Identifier(i) => break (fold(i), 2),
            ast::Expr::CompoundIdentifier(v) => break (v.last().map(fold).unwrap_or_default(), 2),
            ast::Expr::Function(f) => break (function_name(f), 2),
            ast::Expr::Case { .. } => break ("case".to_string(), 1),
            // The special call syntaxes are named by the function they call.
            ast::Expr::Extract { .. } => break ("extract".to_string(), 2),
            ast::Expr::Position { .. } => break ("position".to_string(), 2),
            ast::Expr::Substring { shorthand: true, .. } => break ("substr".to_string(), 2),
            ast::Expr::Substring { .. } => break ("substring".to_string(), 2),
            ast::Expr::Trim { trim_where: Some(ast::TrimWhereField::Leading), .. } => break ("ltrim".to_string(), 2),
            ast::Expr::Trim { trim_where: Some(ast::TrimWhereField::Trailing), .. } => break ("rtrim".to_string(), 2),
            ast::Expr::Trim { .. } => break ("btrim".to_string(), 2),
            _ => break ("?column?".to_string(), 0),
        }
    };
    for data_type in casts.into_iter().rev() {
        if strength <= 1 {
            if let Ok(target) = cast_target(data_type, Dialect::Postgres) {
                name = target.pg_name.to_string();
                strength = 1;
            }
        }
    }
    name
}

fn fold(i: &Ident) -> String {
    match i.quote_style {
        None => i.value.to_lowercase(),
        Some(_) => i.value.clone(),
    }
}

fn function_name(f: &ast::Function) -> String {
    match f.name.0.last() {
        Some(ast::ObjectNamePart::Identifier(i)) => fold(i),
        _ => "?column?".to_string(),
    }
}

/// SQLite's name for an unaliased expression: its text exactly as written,
/// from the item's first token to its last.
pub(crate) fn sqlite_name(item: &[&TokenWithSpan], source: &Source<'_>) -> Option<String> {
    let (first, last) = (item.first()?, item.last()?);
    source.slice(first.span.start, last.span.end).map(str::to_string)
}

/// Drops the `DISTINCT`/`ALL` that the token list of the first select item
/// starts with.
pub(crate) fn strip_set_quantifier(items: &mut [Vec<&TokenWithSpan>]) {
    if let Some(first) = items.first_mut() {
        while let Some(Token::Word(w)) = first.first().map(|t| &t.token) {
            if w.quote_style.is_none() && matches!(w.keyword, Keyword::DISTINCT | Keyword::ALL) {
                first.remove(0);
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    use super::*;

    fn pg(sql: &str) -> String {
        let e = Parser::new(&GenericDialect {}).try_with_sql(sql).unwrap().parse_expr().unwrap();
        postgres_name(&e)
    }

    #[test]
    fn postgres_names() {
        let cases = [
            ("COUNT(*)", "count"),
            ("Avg(x)", "avg"),
            ("t.Name", "name"),
            ("CAST(price AS TEXT)", "price"),
            ("CAST(1 AS INTEGER)", "int4"),
            ("CAST(1 AS BIGINT)", "int8"),
            ("1::float8", "float8"),
            ("CAST(CASE WHEN a THEN 1 END AS BOOLEAN)", "bool"),
            ("CASE WHEN a THEN 1 END", "case"),
            ("coalesce(a, 0)", "coalesce"),
            ("a + 1", "?column?"),
            ("(a)", "a"),
        ];
        for (sql, want) in cases {
            assert_eq!(pg(sql), want, "{sql}");
        }
    }

    #[test]
    fn aliases_fold_in_postgres_only() {
        let id = Ident::new("Total");
        assert_eq!(alias_name(&id, Dialect::Postgres), "total");
        assert_eq!(alias_name(&id, Dialect::Sqlite), "Total");
        assert_eq!(alias_name(&Ident::with_quote('"', "Total"), Dialect::Postgres), "Total");
    }
}
