//! PostgreSQL's call forms that need more than the function table: the
//! special syntax (`position(a IN b)`, `extract(f FROM x)`, `TRIM(LEADING c
//! FROM x)`), a field named by a literal (`date_trunc('month', t)`), and
//! `round`'s overloads (`round(double)` is a double rounded half to even,
//! `round(numeric[, n])` a numeric).

use denorm_expr::{DateField, Expr, Func};
use denorm_types::{Dialect, ScalarType};
use sqlparser::ast;

use super::string_literal;
use crate::expr::Lowerer;
use crate::types::Typed;
use crate::{Location, PlanError};

fn postgres_only(what: &str, hint: &str, at: Option<Location>) -> PlanError {
    PlanError::new(format!("{what} is PostgreSQL syntax, not supported by SQLite"), at).hint(hint.to_string())
}

fn unknown_field(name: &str, at: Option<Location>) -> PlanError {
    PlanError::new(format!("unit \"{name}\" is not supported"), at).hint(
        "use year, month, day, hour, minute, second, milliseconds, microseconds, week, quarter, dow, isodow, doy, \
         isoyear, decade, century, millennium or epoch",
    )
}

fn interval_field(field: DateField, at: Option<Location>) -> PlanError {
    PlanError::new(format!("unit \"{}\" not supported for type interval", field.name()), at).hint(
        "an interval has microseconds, milliseconds, second, minute, hour, day, month, quarter, year, decade, \
         century, millennium and epoch",
    )
}

impl Lowerer<'_, '_> {
    /// `position(sub IN s)` → `strpos(s, sub)`.
    pub(crate) fn position(
        &self,
        sub: &ast::Expr,
        s: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        if self.dialect == Dialect::Sqlite {
            return Err(postgres_only("position(… IN …)", "write instr(s, sub)", at));
        }
        self.call("strpos", &[s, sub], at, d)
    }

    /// `extract(field FROM x)`: a numeric, from a date or a timestamp.
    pub(crate) fn extract(
        &self,
        field: &ast::DateTimeField,
        x: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        if self.dialect == Dialect::Sqlite {
            return Err(postgres_only("extract(… FROM …)", "write strftime('%Y', x) and CAST it", at));
        }
        let name = field.to_string();
        let field = DateField::parse(&name).ok_or_else(|| unknown_field(&name, at))?;
        let value = self.call("extract", &[x], at, d)?;
        let Expr::Call { args, .. } = value.expr else { unreachable!("extract is a call") };
        if args.len() == 1 {
            let arg_type = self.lower(x, d)?.ty;
            if arg_type == ScalarType::Date && !field.of_date() {
                return Err(PlanError::new(format!("unit \"{}\" not supported for type date", field.name()), at));
            }
            if arg_type == ScalarType::Interval && !denorm_expr::interval::field_of_interval(field) {
                return Err(interval_field(field, at));
            }
        }
        Ok(Typed::new(Expr::Call { func: Func::Extract(field), args }, ScalarType::Numeric, value.nullable))
    }

    /// `date_trunc('field', t)` and `date_part('field', t)`: the field is a
    /// literal, so the call carries it and takes one argument.
    pub(crate) fn field_call(
        &self,
        typed: Typed,
        field: &ast::Expr,
        value_type: Option<ScalarType>,
        at: Option<Location>,
    ) -> Result<Typed, PlanError> {
        let Some(name) = string_literal(field) else {
            return Err(PlanError::new("the field of date_trunc and date_part must be a string literal", at));
        };
        let field = DateField::parse(name).ok_or_else(|| unknown_field(name, at))?;
        if value_type == Some(ScalarType::Interval) && !denorm_expr::interval::field_of_interval(field) {
            return Err(interval_field(field, at));
        }
        let Expr::Call { func, mut args } = typed.expr else { unreachable!("a call") };
        args.remove(0);
        let (func, arg_type) = match func {
            Func::DateTrunc(_) if !field.truncates() => return Err(unknown_field(name, at)),
            Func::DateTrunc(_) if value_type == Some(ScalarType::Interval) && field == DateField::Week => {
                return Err(PlanError::new(
                    "interval units \"week\" not supported because months usually have fractional weeks",
                    at,
                ))
            }
            Func::DateTrunc(_) if value_type == Some(ScalarType::Interval) => {
                (Func::DateTrunc(field), ScalarType::Interval)
            }
            Func::DateTrunc(_) => (Func::DateTrunc(field), ScalarType::Timestamp),
            _ => (Func::DatePart(field), ScalarType::Float),
        };
        Ok(Typed::new(Expr::Call { func, args }, arg_type, typed.nullable))
    }

    /// `round(x)` / `round(x, n)` in PostgreSQL: double for a double or an
    /// integer alone, numeric otherwise (an integer read as numeric).
    pub(crate) fn pg_round(&self, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let nullable = args.iter().any(|t| t.nullable);
        let first = args[0].ty;
        let ty = match (first, args.len()) {
            (ScalarType::Numeric, _) => ScalarType::Numeric,
            (ScalarType::Float, 2) => {
                return Err(PlanError::new("function round(double precision, integer) does not exist", at)
                    .hint("CAST the value to NUMERIC"))
            }
            (ScalarType::Int | ScalarType::Null, 2) => ScalarType::Numeric,
            _ => ScalarType::Float,
        };
        let mut exprs: Vec<Expr> = args.into_iter().map(|t| t.expr).collect();
        if ty == ScalarType::Numeric && first == ScalarType::Int {
            let value = std::mem::replace(&mut exprs[0], Expr::Literal(denorm_types::Datum::Null));
            exprs[0] = Expr::Cast { expr: Box::new(value), to: ScalarType::Numeric };
        }
        Ok(Typed::new(Expr::Call { func: Func::PgRound, args: exprs }, ty, nullable))
    }

    /// PostgreSQL's `TRIM([BOTH | LEADING | TRAILING] [characters] FROM x)`.
    pub(crate) fn pg_trim(
        &self,
        side: Option<&ast::TrimWhereField>,
        what: Option<&ast::Expr>,
        x: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        let name = match side {
            None | Some(ast::TrimWhereField::Both) => "btrim",
            Some(ast::TrimWhereField::Leading) => "ltrim",
            Some(ast::TrimWhereField::Trailing) => "rtrim",
        };
        let mut args = vec![x];
        args.extend(what);
        self.call(name, &args, at, d)
    }
}
