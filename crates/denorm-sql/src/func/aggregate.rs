//! The aggregates beyond COUNT/SUM/AVG/MIN/MAX and the JSON ones:
//!
//! | written | planned as |
//! |---|---|
//! | `agg(x) FILTER (WHERE c)` | `agg(CASE WHEN c THEN x END)` (`COUNT(*)`: of `1`); the aggregates skip NULLs, so both agree |
//! | `total(x)` (SQLite) | `CAST(COALESCE(SUM(x), 0.0) AS REAL)` over the `Reduce`'s SUM column |
//! | `SUM`/`AVG(DISTINCT x)` | [`AggregateFunc::SumDistinct`]/[`AggregateFunc::AvgDistinct`]; `MIN`/`MAX(DISTINCT x)` are MIN/MAX |
//! | `group_concat(x [, sep] [ORDER BY …])`, `string_agg(x, sep [ORDER BY …])` | [`AggregateFunc::GroupConcat`] over `[x, sep, keys…]` |
//!
//! `total` differs from SQLite's in one case only: where the integer sum
//! overflows, SQLite's `total` returns its approximate double while SUM (and
//! so denorm's total) fails with "integer overflow".

use std::cell::RefCell;

use denorm_expr::{AggregateFunc, AggregateOrder, ConcatSpec, Expr};
use denorm_types::{Datum, Dialect, ScalarType};
use sqlparser::ast::{self, DuplicateTreatment, FunctionArg, FunctionArgExpr, FunctionArgumentClause};

use crate::expr::{Clause, Grouping, Lowerer};
use crate::types::{self, Typed};
use crate::{Location, PlanError};

/// `total(x)` from the SUM column `column`.
pub(super) fn total(column: usize) -> Typed {
    let sum = Expr::Coalesce(vec![Expr::Column(column), Expr::Literal(Datum::Float(0.0))]);
    Typed::new(Expr::Cast { expr: Box::new(sum), to: ScalarType::Float }, ScalarType::Float, false)
        .without_affinity(true)
}

impl Lowerer<'_, '_> {
    /// `CASE WHEN condition THEN arg END`; `arg` `None` is COUNT(*)'s `1`.
    pub(super) fn filtered(&self, arg: Option<Typed>, condition: &ast::Expr, d: usize) -> Result<Typed, PlanError> {
        let scalar = self.scalar(Clause::AggregateArgument);
        let condition = scalar.lower_condition(condition, "FILTER", d + 1)?;
        let arg = arg.unwrap_or_else(|| Typed::new(Expr::Literal(Datum::Int(1)), ScalarType::Int, false));
        let expr =
            Expr::Case { branches: vec![(condition.expr, arg.expr)], otherwise: Box::new(Expr::Literal(Datum::Null)) };
        Ok(Typed::new(expr, arg.ty, true).narrowed(arg.narrow))
    }

    /// `group_concat(x [, sep] [ORDER BY …])` / `string_agg(x, sep [ORDER BY …])`.
    pub(super) fn group_concat(
        &self,
        f: &ast::Function,
        name: &str,
        grouping: &RefCell<Grouping>,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        if name == "group_concat" && self.dialect == Dialect::Postgres {
            return Err(PlanError::new(
                "function group_concat(…) is a SQLite function, not supported on PostgreSQL",
                at,
            )
            .hint("write string_agg(x, separator ORDER BY …)"));
        }
        if f.over.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
            return Err(PlanError::new(format!("this form of {name}(…) is not supported"), at));
        }
        let ast::FunctionArguments::List(list) = &f.args else {
            return Err(PlanError::new(format!("{name} takes arguments"), at));
        };
        let scalar = self.scalar(Clause::AggregateArgument);
        let mut args = Vec::with_capacity(list.args.len());
        for arg in &list.args {
            match arg {
                // string_agg(text, text): a character(n) value is read as text.
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                    args.push(crate::types::strip_bpchar(scalar.lower(e, d + 1)?))
                }
                _ => return Err(PlanError::new(format!("unsupported argument to {name}(…)"), at)),
            }
        }
        let wanted = if name == "string_agg" { 2..=2 } else { 1..=2 };
        if !wanted.contains(&args.len()) {
            let expected = if name == "string_agg" { "two arguments" } else { "one or two arguments" };
            return Err(PlanError::new(format!("{name} takes {expected}"), at));
        }
        let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
        if distinct && name == "group_concat" && args.len() > 1 {
            return Err(PlanError::new("DISTINCT aggregates must have exactly one argument", at)
                .hint("group_concat(DISTINCT x) joins with ','"));
        }
        let mut order_by = None;
        for clause in &list.clauses {
            match clause {
                FunctionArgumentClause::OrderBy(terms) => order_by = Some(terms),
                _ => return Err(PlanError::new(format!("this clause is not supported inside {name}(…)"), at)),
            }
        }
        let (order, keys) = match order_by {
            Some(terms) => self.aggregate_order(terms, name, at, d)?,
            None => (AggregateOrder::new(&[]).expect("no terms"), Vec::new()),
        };
        let mut args = args.into_iter();
        let value = self.concat_value(args.next().expect("one argument"), name, at)?;
        let separator = match args.next() {
            Some(s) => self.concat_value(s, name, at)?,
            None => Typed::new(Expr::Literal(Datum::text(",")), ScalarType::Text, false),
        };
        if distinct && !(keys.is_empty() || keys == [value.expr.clone()]) {
            return Err(PlanError::new(format!("with DISTINCT, {name}(…) can only be ordered by its value"), at)
                .hint(format!("write {name}(DISTINCT x, … ORDER BY x)")));
        }
        let mut list = vec![value.expr, separator.expr];
        list.extend(keys);
        if let Some(condition) = f.filter.as_deref() {
            let filtered = self.filtered(Some(Typed::new(list[0].clone(), ScalarType::Text, true)), condition, d)?;
            list[0] = filtered.expr;
        }
        let func = AggregateFunc::GroupConcat(ConcatSpec { order, distinct });
        let column = grouping.borrow_mut().register(func, Some(Expr::List(list)), ScalarType::Text, true);
        Ok(Typed::new(Expr::Column(column), ScalarType::Text, true))
    }

    /// `bool_and(x)`/`every(x)` as MIN, `bool_or(x)` as MAX over booleans
    /// (PostgreSQL only: SQLite has no boolean type).
    pub(super) fn bool_aggregate(
        &self,
        func: AggregateFunc,
        name: &str,
        arg: Option<Typed>,
        grouping: &RefCell<Grouping>,
        at: Option<Location>,
    ) -> Result<Typed, PlanError> {
        if self.dialect == Dialect::Sqlite {
            return Err(PlanError::new(
                format!("function {name}(…) is a PostgreSQL aggregate, not supported on SQLite"),
                at,
            )
            .hint("write MIN(x) for bool_and, MAX(x) for bool_or (x a comparison: 0 or 1)"));
        }
        let Some(arg) = arg.filter(|a| matches!(a.ty, ScalarType::Bool | ScalarType::Null)) else {
            return Err(PlanError::new(format!("{name} takes a boolean"), at));
        };
        let column = grouping.borrow_mut().register(func, Some(arg.expr), ScalarType::Bool, true);
        Ok(Typed::new(Expr::Column(column), ScalarType::Bool, true))
    }

    /// A value or separator of group_concat: text, or in SQLite a number
    /// (joined as its text).
    fn concat_value(&self, t: Typed, name: &str, at: Option<Location>) -> Result<Typed, PlanError> {
        let t = types::bool_as_int(t, self.dialect);
        let sqlite = self.dialect == Dialect::Sqlite;
        let ok = match t.ty {
            ScalarType::Text | ScalarType::Null => true,
            ScalarType::Int | ScalarType::Float => sqlite,
            _ => false,
        };
        if ok {
            return Ok(t);
        }
        Err(PlanError::new(format!("function {name}({}) does not exist", t.ty), at).hint("CAST the value to TEXT"))
    }
}
