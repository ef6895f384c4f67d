//! A query's `ORDER BY`: terms resolved to output columns, or to hidden
//! columns computed beside them.
//!
//! ```text
//!  ORDER BY 2            the second output column
//!  ORDER BY total        the output column named total (output names win over
//!                        input columns, as in both sources)
//!  ORDER BY a + b        an output column computing exactly a + b, else a hidden
//!                        column after the output columns, projected away later
//! ```
//!
//! Without NULLS FIRST/LAST the dialect's default holds (SQLite: NULLs
//! first ascending; PostgreSQL: NULLs last ascending). A compound query
//! (UNION, …) orders by output names and positions only, as PostgreSQL
//! requires.

use denorm_expr::SortKey;
use denorm_types::{Collation, Dialect, ScalarType};
use sqlparser::ast;

use crate::expr::{sqlite_collation, Lowerer};
use crate::select::Item;
use crate::types;
use crate::{Location, OutputColumn, PlanError};

/// Resolved terms over the output columns then the hidden ones.
#[derive(Debug, Default)]
pub(crate) struct Ordering {
    pub order: Vec<SortKey>,
    /// Per term of `order`, the collation its text sorts under (`None`:
    /// not text, or a `character(n)` sorted by its stripped value).
    pub collations: Vec<Option<Collation>>,
    pub hidden: Vec<Item>,
}

/// The terms of one SELECT's ORDER BY, lowered with `lw` (grouped or not).
pub(crate) fn resolve(
    terms: &[ast::OrderByExpr],
    items: &[Item],
    lw: &Lowerer<'_, '_>,
    distinct: bool,
) -> Result<Ordering, PlanError> {
    let mut out = Ordering::default();
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    for term in terms {
        let at = lw.at(&term.expr);
        let (descending, nulls_first) = direction(term, lw.dialect, at)?;
        let mut collation = None;
        // SQLite reads `ORDER BY total COLLATE NOCASE` (an output name or
        // position under a COLLATE) as that output column under it.
        let (bare, named) = match &term.expr {
            ast::Expr::Collate { expr, collation } if lw.dialect == Dialect::Sqlite => (expr.as_ref(), Some(collation)),
            e => (e, None),
        };
        let column = match output_position(bare, &names, at)? {
            Some(c) => {
                if let Some(name) = named {
                    collation = Some(sqlite_collation(name, at)?);
                }
                c
            }
            None => {
                let t = lw.lower(&term.expr, 0)?;
                collation = t.collation;
                match items.iter().position(|i| i.typed.expr == t.expr) {
                    Some(c) => c,
                    None if distinct => {
                        return Err(PlanError::new(
                            "for SELECT DISTINCT, ORDER BY expressions must appear in select list",
                            at,
                        )
                        .hint("add the expression to the select list, or order by an output column"))
                    }
                    None => {
                        out.hidden.push(Item { typed: t, name: String::new(), at });
                        items.len() + out.hidden.len() - 1
                    }
                }
            }
        };
        let typed = match items.get(column) {
            Some(item) => &item.typed,
            None => &out.hidden[column - items.len()].typed,
        };
        orderable(typed.ty, at)?;
        let collation = collation.or(typed.collation).unwrap_or_default();
        // The value shown: a DISTINCT column holds its key under its own
        // collation, and so does a GROUP BY column grouped under it.
        let holds_key = distinct || typed.keyed;
        let own = typed.own_collation();
        if holds_key && typed.ty == ScalarType::Text && own != Collation::Binary && collation != own {
            // The value shown stands for rows equal under `own`; SQLite
            // shows whichever it scanned, and its order under another
            // collation depends on which.
            return Err(PlanError::new(
                format!("ORDER BY under {collation} of a column grouped or deduplicated under {own} is not supported"),
                at,
            )
            .detail("SQLite shows any one of the values equal under the column's collation, and their order differs")
            .hint(format!("order by the column under its own collation (drop the COLLATE {collation})")));
        }
        let sorts_under = (typed.ty == ScalarType::Text && !typed.bpchar).then_some(collation);
        let column = match collation {
            // PostgreSQL sorts character(n) without its trailing blanks
            // (`bpcharcmp`): by a hidden column of the value stripped (as
            // padded they differ for characters below the blank: 'a' sorts
            // before 'a<tab>', 'a   ' after 'a<tab>  ').
            _ if typed.bpchar => {
                out.hidden.push(Item { typed: types::strip_bpchar(typed.clone()), name: String::new(), at });
                items.len() + out.hidden.len() - 1
            }
            _ if typed.ty != ScalarType::Text => column,
            Collation::Binary => column,
            c if holds_key && own == c => column,
            // Text under another collation sorts by its key of the value
            // shown, a hidden column (under DISTINCT a function of the
            // shown value, so it merges no further rows).
            c => {
                let shown = match distinct {
                    true => types::collation_key(typed.clone(), own),
                    false => typed.clone(),
                };
                out.hidden.push(Item { typed: types::collation_key(shown, c), name: String::new(), at });
                items.len() + out.hidden.len() - 1
            }
        };
        out.order.push(SortKey { column, descending, nulls_first });
        out.collations.push(sorts_under);
    }
    Ok(out)
}

/// The terms of a compound query's ORDER BY: output names and positions.
pub(crate) fn resolve_output(
    terms: &[ast::OrderByExpr],
    columns: &[OutputColumn],
    dialect: Dialect,
    at_of: impl Fn(&ast::Expr) -> Option<Location>,
) -> Result<Vec<SortKey>, PlanError> {
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut order = Vec::new();
    for term in terms {
        let at = at_of(&term.expr);
        let (descending, nulls_first) = direction(term, dialect, at)?;
        let Some(column) = output_position(&term.expr, &names, at)? else {
            return Err(PlanError::new(
                "ORDER BY of a UNION, EXCEPT or INTERSECT must name an output column or its position",
                at,
            )
            .hint(format!("order by one of: {}, or by a position 1 to {}", names.join(", "), names.len())));
        };
        orderable(columns[column].ty, at)?;
        let collation = columns[column].collation.unwrap_or_default();
        if collation != Collation::Binary && columns[column].ty == ScalarType::Text {
            return Err(PlanError::new(
                format!("ORDER BY of a UNION, EXCEPT or INTERSECT over a {collation} column is not supported"),
                at,
            )
            .hint("order the compound as a subquery in FROM: SELECT * FROM (… UNION ALL …) ORDER BY c LIMIT n"));
        }
        order.push(SortKey { column, descending, nulls_first });
    }
    Ok(order)
}

/// ASC/DESC and where NULLs go, the dialect's default unless written.
fn direction(term: &ast::OrderByExpr, dialect: Dialect, at: Option<Location>) -> Result<(bool, bool), PlanError> {
    if term.with_fill.is_some() {
        return Err(PlanError::new("WITH FILL is not supported", at));
    }
    let descending = match &term.options.sort {
        None | Some(ast::OrderBySort::Asc) => false,
        Some(ast::OrderBySort::Desc) => true,
        Some(ast::OrderBySort::Using(_)) => {
            return Err(PlanError::new("ORDER BY … USING is not supported", at).hint("write ASC or DESC"))
        }
    };
    let nulls_first = term.options.nulls_first.unwrap_or(match dialect {
        Dialect::Sqlite => !descending,
        Dialect::Postgres => descending,
    });
    Ok((descending, nulls_first))
}

/// `ORDER BY 2` or `ORDER BY name` of an output column; `None` for any
/// other expression.
fn output_position(e: &ast::Expr, names: &[&str], at: Option<Location>) -> Result<Option<usize>, PlanError> {
    match e {
        ast::Expr::Value(v) => {
            let ast::Value::Number(n, _) = &v.value else { return Ok(None) };
            match n.parse::<usize>().ok().and_then(|p| p.checked_sub(1)).filter(|&p| p < names.len()) {
                Some(p) => Ok(Some(p)),
                None => Err(PlanError::new(format!("ORDER BY position {n} is not in select list"), at)
                    .hint(format!("positions count the output columns from 1 to {}", names.len()))),
            }
        }
        ast::Expr::Identifier(ident) => {
            let quoted = ident.quote_style.is_some();
            Ok(names.iter().position(|n| if quoted { *n == ident.value } else { n.eq_ignore_ascii_case(&ident.value) }))
        }
        _ => Ok(None),
    }
}

pub(crate) fn orderable(ty: ScalarType, at: Option<Location>) -> Result<(), PlanError> {
    match ty {
        ScalarType::Json | ScalarType::Unsupported => {
            Err(PlanError::new(format!("cannot order by a value of type {ty}"), at))
        }
        _ => Ok(()),
    }
}
