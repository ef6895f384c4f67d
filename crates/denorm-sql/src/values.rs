//! `VALUES (…), (…)` as a query or an operand of UNION/EXCEPT/INTERSECT:
//! constant rows, evaluated at plan time into a `Values` node.
//!
//! Columns are named `column1`, `column2`, … (both sources); their types
//! unify across rows like a UNION's (PostgreSQL casts the values to the
//! common type, SQLite keeps them). Only constant expressions are allowed.

use denorm_expr::{Expr, Plan};
use denorm_types::{Dialect, Row, ScalarType};
use sqlparser::ast;

use crate::expr::{Clause, Lowerer};
use crate::scope::Scope;
use crate::select::Context;
use crate::source::location;
use crate::types::{bool_as_int, unify, Typed};
use crate::{Location, OutputColumn, PlanError};

/// The rows of `values`, packed, and their columns.
pub(crate) fn plan_values(values: &ast::Values, cx: &Context<'_, '_>) -> Result<(Plan, Vec<OutputColumn>), PlanError> {
    let first = values.rows.first().map(|r| location(r.opening_token.0.span.start)).unwrap_or(Some(cx.view.location));
    let width = values.rows.first().map_or(0, |r| r.content.len());
    if width == 0 {
        return Err(PlanError::new("VALUES needs at least one column", first));
    }
    let mut scope = Scope::default();
    scope.catalog = Some(cx.catalog);
    let lw = Lowerer {
        scope: &scope,
        statement: &cx.view.tokens,
        dialect: cx.dialect,
        clause: Clause::Select,
        grouping: None,
        fallback: first,
        subqueries: None,
        windows: &[],
        clock: cx.reads_clock(),
    };
    let mut rows: Vec<Vec<Typed>> = Vec::with_capacity(values.rows.len());
    for row in &values.rows {
        if row.content.len() != width {
            let at = location(row.opening_token.0.span.start);
            return Err(PlanError::new("VALUES lists must all be the same length", at)
                .detail(format!("the first row has {width} values, this one {}", row.content.len())));
        }
        let typed = row.content.iter().map(|e| lw.lower(e, 0).map(|t| bool_as_int(t, cx.dialect)));
        rows.push(typed.collect::<Result<_, _>>()?);
    }
    let columns = columns(&rows, first)?;
    let mut packed = Vec::with_capacity(rows.len());
    for (row, source) in rows.iter().zip(&values.rows) {
        let mut datums = Vec::with_capacity(width);
        for ((t, column), e) in row.iter().zip(&columns).zip(&source.content) {
            let expr = match cx.dialect {
                Dialect::Postgres if t.ty != column.ty && t.ty != ScalarType::Null => {
                    Expr::Cast { expr: Box::new(t.expr.clone()), to: column.ty }
                }
                _ => t.expr.clone(),
            };
            let value = expr.eval(&[], cx.dialect).map_err(|err| PlanError::new(err.to_string(), lw.at(e)))?;
            datums.push(value.into_owned());
        }
        packed.push(Row::pack(datums));
    }
    Ok((Plan::Values { rows: packed, arity: width }, columns))
}

fn columns(rows: &[Vec<Typed>], at: Option<Location>) -> Result<Vec<OutputColumn>, PlanError> {
    let mut columns: Vec<OutputColumn> = Vec::new();
    for (i, first) in rows[0].iter().enumerate() {
        let mut ty = first.ty;
        let mut nullable = false;
        for row in rows {
            ty = unify(ty, row[i].ty).ok_or_else(|| {
                PlanError::new(format!("VALUES types {ty} and {} cannot be matched", row[i].ty), at)
                    .detail(format!("column{}", i + 1))
                    .hint("CAST the values to one type")
            })?;
            nullable |= row[i].nullable || row[i].ty == ScalarType::Null;
        }
        // VALUES columns have no affinity in SQLite.
        let name = format!("column{}", i + 1);
        columns.push(OutputColumn { name, ty, nullable, collation: None, narrow: false, no_affinity: true });
    }
    Ok(columns)
}
