//! Function calls, aggregates and CAST.

use std::cell::RefCell;

use denorm_expr::{AggregateFunc, Expr, Func};
use denorm_types::{Dialect, ScalarType};
use sqlparser::ast::{
    self, CastKind, DataType, DuplicateTreatment, ExactNumberInfo, FunctionArg, FunctionArgExpr, TimezoneInfo,
};

use crate::expr::{aggregate_func, is_aggregate, Clause, Grouping, Lowerer};
use crate::types::{self, bool_as_int, Typed};
use crate::{Location, PlanError};

mod json;

pub(crate) use json::{is_json_aggregate, outside_subquery};

pub(crate) const SUPPORTED_FUNCTIONS: &str = "supported functions: abs, coalesce, length, lower, nullif, upper, \
     json_array, json_object (PostgreSQL: json_build_array, json_build_object); aggregates: count, sum, avg, min, max, \
     json_group_array, json_group_object (PostgreSQL: json_agg, json_object_agg)";

const SUPPORTED_TYPES: &str =
    "supported types: INTEGER, BIGINT, SMALLINT, DOUBLE PRECISION, FLOAT, REAL (SQLite), TEXT, VARCHAR, BOOLEAN; \
     PostgreSQL also NUMERIC, DATE, TIMESTAMP, TIMESTAMPTZ, UUID";

/// The arguments of a plain call `f(a, b)`, or `None` for `f(*)`.
enum Args<'e> {
    Star,
    List(Vec<&'e ast::Expr>),
}

/// Checks the parts of a call that denorm never supports and returns its
/// arguments and whether DISTINCT was given.
fn call_args<'e>(f: &'e ast::Function, name: &str, at: Option<Location>) -> Result<(Args<'e>, bool), PlanError> {
    if f.over.is_some() {
        return Err(PlanError::new("window functions are not supported", at)
            .hint("compute the aggregate with GROUP BY in its own view"));
    }
    if f.filter.is_some() {
        return Err(PlanError::new("FILTER clauses are not supported", at)
            .hint("move the condition into the argument: SUM(CASE WHEN cond THEN x END)"));
    }
    if !f.within_group.is_empty() || f.null_treatment.is_some() || !matches!(f.parameters, ast::FunctionArguments::None)
    {
        return Err(PlanError::new(format!("this form of {name}(…) is not supported"), at));
    }
    let list = match &f.args {
        ast::FunctionArguments::List(list) => list,
        ast::FunctionArguments::None => return Ok((Args::List(vec![]), false)),
        ast::FunctionArguments::Subquery(_) => return Err(PlanError::new("subqueries are not supported", at)),
    };
    if !list.clauses.is_empty() {
        return Err(PlanError::new(
            format!("ORDER BY, LIMIT and similar clauses inside {name}(…) are not supported"),
            at,
        ));
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if list.args.len() == 1 => {
                return Ok((Args::Star, distinct))
            }
            _ => return Err(PlanError::new(format!("unsupported argument to {name}(…)"), at)),
        }
    }
    Ok((Args::List(args), distinct))
}

fn function_name(f: &ast::Function) -> String {
    match f.name.0.as_slice() {
        [ast::ObjectNamePart::Identifier(i)] => i.value.to_ascii_lowercase(),
        _ => f.name.to_string(),
    }
}

fn arity_error(name: &str, expected: &str, at: Option<Location>) -> PlanError {
    PlanError::new(format!("{name} takes {expected}"), at)
}

impl Lowerer<'_, '_> {
    pub(crate) fn function(&self, f: &ast::Function, e: &ast::Expr, d: usize) -> Result<Typed, PlanError> {
        let at = self.at(e);
        let name = function_name(f);
        if is_aggregate(f) && f.over.is_none() {
            return Err(PlanError::new(self.clause.aggregate_error(), at));
        }
        let (args, distinct) = call_args(f, &name, at)?;
        let Args::List(args) = args else {
            return Err(PlanError::new(format!("{name}(*) is not supported"), at));
        };
        if distinct {
            return Err(PlanError::new(format!("DISTINCT is not supported in {name}(…)"), at));
        }
        let lowered = args.iter().map(|a| self.lower(a, d)).collect::<Result<Vec<_>, _>>()?;
        if lowered.iter().any(|t| t.explicit) {
            return Err(crate::expr::nested_collate(at));
        }
        match name.as_str() {
            "coalesce" if lowered.len() >= 2 => {
                let (items, ty) = types::unify_all(lowered, "COALESCE", self.dialect, at)?;
                let nullable = items.iter().all(|t| t.nullable);
                Ok(Typed::new(Expr::Coalesce(items.into_iter().map(|t| t.expr).collect()), ty, nullable))
            }
            "coalesce" => Err(arity_error("coalesce", "at least two arguments", at)),
            "nullif" => self.nullif(lowered, at),
            "abs" | "lower" | "upper" | "length" => self.scalar_call(&name, lowered, at),
            _ if json::is_json_function(&name) => self.json_function(&name, lowered, at),
            _ => Err(PlanError::new(format!("function {name}(…) is not supported"), at).hint(SUPPORTED_FUNCTIONS)),
        }
    }

    fn nullif(&self, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let [a, b]: [Typed; 2] = args.try_into().map_err(|_| arity_error("nullif", "two arguments", at))?;
        let collation = types::comparison_collation(&a, &b);
        let (a, b) = types::uncollated_operands(a, b, "=", self.dialect, at)?;
        let ty = if a.ty == ScalarType::Null { b.ty } else { a.ty };
        if collation != denorm_types::Collation::Binary && a.ty == ScalarType::Text {
            // Compared under the collation, but the value returned is `a` itself.
            let (ka, kb) = (types::collation_key(a.clone(), collation), types::collation_key(b, collation));
            let equal = Expr::binary(denorm_expr::BinaryOp::Eq, ka.expr, kb.expr);
            let case = Expr::Case {
                branches: vec![(equal, Expr::Literal(denorm_types::Datum::Null))],
                otherwise: Box::new(a.expr),
            };
            return Ok(Typed::new(case, ty, true));
        }
        Ok(Typed::new(Expr::NullIf(Box::new(a.expr), Box::new(b.expr)), ty, true))
    }

    fn scalar_call(&self, name: &str, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let [arg]: [Typed; 1] = args.try_into().map_err(|_| arity_error(name, "one argument", at))?;
        let ascii_only = self.dialect == Dialect::Sqlite;
        let (func, arg, ty) = match name {
            "abs" => {
                let arg = bool_as_int(arg, self.dialect);
                let ty = arg.ty;
                (Func::Abs, arg, ty)
            }
            "lower" => (Func::Lower { ascii_only }, arg, ScalarType::Text),
            "upper" => (Func::Upper { ascii_only }, arg, ScalarType::Text),
            _ => (Func::Length, arg, ScalarType::Int),
        };
        let accepted = match func {
            Func::Abs => arg.ty.is_numeric(),
            _ => arg.ty == ScalarType::Text,
        };
        if !accepted && arg.ty != ScalarType::Null {
            let wants = if func == Func::Abs { "a number" } else { "text" };
            return Err(PlanError::new(format!("function {name}({}) does not exist", arg.ty), at)
                .hint(format!("{name} takes {wants}; CAST the argument explicitly")));
        }
        let nullable = arg.nullable;
        Ok(Typed::new(Expr::Call { func, args: vec![arg.expr] }, ty, nullable))
    }

    /// An aggregate in the SELECT list or HAVING of a grouped query: its
    /// argument is lowered over the joined row and the aggregate becomes a
    /// column of the `Reduce` output.
    pub(crate) fn lower_aggregate(
        &self,
        f: &ast::Function,
        e: &ast::Expr,
        grouping: &RefCell<Grouping>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        let at = self.at(e);
        let name = function_name(f);
        if is_json_aggregate(&name) {
            // call_args refuses the ORDER BY and LIMIT clauses these take.
            if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
                return Err(PlanError::new(format!("this form of {name}(…) is not supported"), at));
            }
            return self.json_aggregate(f, &name, grouping, at, d);
        }
        let (args, distinct) = call_args(f, &name, at)?;
        let Some(mut func) = aggregate_func(f) else { return Err(PlanError::new("not an aggregate", at)) };
        if distinct && func != AggregateFunc::Count {
            return Err(PlanError::new(
                format!("DISTINCT is only supported in count(DISTINCT …), not in {name}(…)"),
                at,
            ));
        }
        let arg = match args {
            Args::Star if func == AggregateFunc::Count && !distinct => None,
            Args::Star => return Err(PlanError::new(format!("{name}(*) is not supported"), at)),
            Args::List(list) => {
                let [arg]: [&ast::Expr; 1] = list.try_into().map_err(|_| {
                    let hint = "in SQLite, min(a, b) and max(a, b) are scalar functions; use CASE instead";
                    arity_error(&name, "exactly one argument", at).hint(hint)
                })?;
                Some(self.scalar(Clause::AggregateArgument).lower(arg, d + 1)?)
            }
        };
        if distinct {
            func = AggregateFunc::CountDistinct;
        }
        // MIN/MAX and DISTINCT compare under the argument's collation: over
        // its collation key (so MIN/MAX return the key, a deterministic
        // representative of the rows that tie under the collation).
        let arg = match func {
            AggregateFunc::Min | AggregateFunc::Max | AggregateFunc::CountDistinct => arg.map(|a| {
                let c = a.own_collation();
                types::collation_key(a, c)
            }),
            _ => arg,
        };
        let (arg, ty, nullable) = self.aggregate_type(func, &name, arg, at)?;
        let column = grouping.borrow_mut().register(func, arg, ty, nullable);
        Ok(Typed::new(Expr::Column(column), ty, nullable))
    }

    fn aggregate_type(
        &self,
        func: AggregateFunc,
        name: &str,
        arg: Option<Typed>,
        at: Option<Location>,
    ) -> Result<(Option<Expr>, ScalarType, bool), PlanError> {
        let Some(arg) = arg else { return Ok((None, ScalarType::Int, false)) };
        if matches!(func, AggregateFunc::Count | AggregateFunc::CountDistinct) {
            return Ok((Some(arg.expr), ScalarType::Int, false));
        }
        let arg = bool_as_int(arg, self.dialect);
        let ty = match (func, arg.ty) {
            (AggregateFunc::Avg, ScalarType::Numeric) => ScalarType::Numeric,
            (AggregateFunc::Avg, t) if t.is_numeric() => ScalarType::Float,
            (AggregateFunc::Sum, t) if t.is_numeric() => t,
            (AggregateFunc::Min | AggregateFunc::Max, ScalarType::Json) if self.dialect == Dialect::Postgres => {
                return Err(PlanError::new(format!("function {name}(json) does not exist"), at)
                    .hint("json values have no order; CAST the argument to text"))
            }
            (AggregateFunc::Min | AggregateFunc::Max, t) if t != ScalarType::Bool => t,
            (_, ScalarType::Null) => ScalarType::Null,
            (_, t) => {
                return Err(PlanError::new(format!("function {name}({t}) does not exist"), at)
                    .hint("CAST the argument explicitly"))
            }
        };
        Ok((Some(arg.expr), ty, true))
    }

    pub(crate) fn cast(
        &self,
        kind: &CastKind,
        x: &ast::Expr,
        data_type: &DataType,
        has_format: bool,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        match kind {
            CastKind::Cast => {}
            CastKind::DoubleColon if self.dialect == Dialect::Postgres => {}
            CastKind::DoubleColon => {
                return Err(
                    PlanError::new("the :: cast syntax is not supported by SQLite", at).hint("write CAST(x AS type)")
                )
            }
            _ => return Err(PlanError::new(format!("{kind:?} is not supported").to_uppercase(), at).hint("use CAST")),
        }
        if has_format {
            return Err(PlanError::new("CAST … FORMAT is not supported", at));
        }
        let target = cast_target(data_type, self.dialect).map_err(|e| PlanError { location: at, ..e })?;
        let arg = self.lower(x, d)?;
        self.check_cast(&arg, target.ty, data_type, at)?;
        let arg = bool_as_int(arg, self.dialect);
        let (nullable, collation, explicit) = (arg.nullable, arg.collation, arg.explicit);
        // SQLite: a CAST keeps its operand's collation.
        let cast = Typed::new(Expr::Cast { expr: Box::new(arg.expr), to: target.ty }, target.ty, nullable);
        Ok(cast.collated(collation, explicit))
    }

    fn check_cast(
        &self,
        arg: &Typed,
        to: ScalarType,
        data_type: &DataType,
        at: Option<Location>,
    ) -> Result<(), PlanError> {
        use ScalarType::*;
        let sqlite = self.dialect == Dialect::Sqlite;
        let sqlite_boolean = sqlite && matches!(data_type, DataType::Bool | DataType::Boolean);
        let pg_only = matches!(to, Numeric | Date | Timestamp | TimestampTz | Uuid);
        if sqlite && pg_only {
            return Err(PlanError::new(format!("CAST to {data_type} is not supported by SQLite"), at)
                .hint("SQLite has no such type; keep the value as TEXT or a number"));
        }
        let temporal = |t: ScalarType| matches!(t, Date | Timestamp | TimestampTz);
        let allowed = match (arg.ty, to) {
            (Null, _) | (_, Text) => true,
            (a, b) if a == b => true,
            (Text, _) => true,
            (Int | Float | Numeric, Numeric) | (Numeric, Int | Float) => true,
            (a, b) if temporal(a) && temporal(b) => true,
            (Numeric | Date | Timestamp | TimestampTz | Uuid | Json, _) => false,
            (_, Numeric | Date | Timestamp | TimestampTz | Uuid) => false,
            _ => true,
        };
        if !allowed {
            return Err(PlanError::new(format!("cannot cast type {} to {data_type}", arg.ty), at)
                .hint("PostgreSQL has no such cast; CAST through TEXT if the text form is what you mean"));
        }
        let refused = match (arg.ty, to) {
            (Float, Text) => Some("SQLite and PostgreSQL format doubles as text differently"),
            (Float, Bool) => Some("PostgreSQL has no cast from double to boolean"),
            (Bool, Float) if !sqlite => Some("PostgreSQL has no cast from boolean to double"),
            (Float | Text, Int) if sqlite_boolean => {
                Some("SQLite's BOOLEAN has numeric affinity and keeps fractions and text as they are")
            }
            _ => None,
        };
        match refused {
            Some(detail) => {
                Err(PlanError::new(format!("CAST of {} to {data_type} is not supported", arg.ty), at).detail(detail))
            }
            None => Ok(()),
        }
    }
}

/// A CAST target: denorm's type and PostgreSQL's name for it (the column
/// name PostgreSQL gives `CAST(1 AS INTEGER)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CastTarget {
    pub ty: ScalarType,
    pub pg_name: &'static str,
}

pub(crate) fn cast_target(data_type: &DataType, dialect: Dialect) -> Result<CastTarget, PlanError> {
    use DataType as T;
    let pg = dialect == Dialect::Postgres;
    let target = |ty, pg_name| Ok(CastTarget { ty, pg_name });
    let refuse =
        |hint: &str| Err(PlanError::new(format!("CAST to {data_type} is not supported"), None).hint(hint.to_string()));
    match data_type {
        T::Int(None) | T::Integer(None) | T::Int4(None) => target(ScalarType::Int, "int4"),
        T::BigInt(None) | T::Int8(None) => target(ScalarType::Int, "int8"),
        T::SmallInt(None) | T::Int2(None) => target(ScalarType::Int, "int2"),
        T::DoublePrecision | T::Float8 | T::Float(ExactNumberInfo::None) => target(ScalarType::Float, "float8"),
        T::Real | T::Double(ExactNumberInfo::None) if !pg => target(ScalarType::Float, "float8"),
        T::Real => refuse("PostgreSQL's REAL is single precision; use DOUBLE PRECISION"),
        T::Double(ExactNumberInfo::None) => refuse("PostgreSQL has no DOUBLE type; use DOUBLE PRECISION"),
        T::Text => target(ScalarType::Text, "text"),
        T::Varchar(None) | T::CharacterVarying(None) | T::CharVarying(None) => target(ScalarType::Text, "varchar"),
        T::Char(None) | T::Character(None) if !pg => target(ScalarType::Text, "bpchar"),
        T::Char(None) | T::Character(None) => refuse("PostgreSQL's CHAR is CHAR(1) and truncates; use TEXT"),
        T::Bool | T::Boolean if pg => target(ScalarType::Bool, "bool"),
        T::Bool | T::Boolean => target(ScalarType::Int, "bool"),
        T::Numeric(ExactNumberInfo::None) | T::Decimal(ExactNumberInfo::None) if pg => {
            target(ScalarType::Numeric, "numeric")
        }
        T::Numeric(_) | T::Decimal(_) if pg => {
            refuse("NUMERIC(p, s) is not supported; CAST to NUMERIC and round with the scale you need at read time")
        }
        T::Date if pg => target(ScalarType::Date, "date"),
        T::Timestamp(None, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) if pg => {
            target(ScalarType::Timestamp, "timestamp")
        }
        T::Timestamp(None, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) if pg => {
            target(ScalarType::TimestampTz, "timestamptz")
        }
        T::Timestamp(Some(_), _) if pg => refuse("TIMESTAMP(p) is not supported; leave the precision out"),
        T::Uuid if pg => target(ScalarType::Uuid, "uuid"),
        T::Numeric(_) | T::Decimal(_) | T::Date | T::Timestamp(..) | T::Uuid => {
            refuse("SQLite has no such type; keep the value as TEXT or a number")
        }
        T::Int(Some(_))
        | T::Integer(Some(_))
        | T::BigInt(Some(_))
        | T::SmallInt(Some(_))
        | T::Varchar(Some(_))
        | T::Char(Some(_))
        | T::Character(Some(_))
        | T::CharacterVarying(Some(_)) => {
            refuse("type modifiers such as VARCHAR(10) are not supported; leave them out")
        }
        _ => refuse(SUPPORTED_TYPES),
    }
}
