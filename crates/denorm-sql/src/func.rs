//! Function calls, aggregates and CAST.

use std::cell::RefCell;

use denorm_expr::function::{self, Arg, Clock, FunctionDef, Kind, Nulls, Returns};
use denorm_expr::{AggregateFunc, BinaryOp, DateFunc, Expr, Func};
use denorm_types::{Collation, Datum, Dialect, ScalarType};
use sqlparser::ast::{
    self, CastKind, DataType, DuplicateTreatment, ExactNumberInfo, FunctionArg, FunctionArgExpr, TimezoneInfo,
};

use crate::expr::{aggregate_func, is_aggregate, Clause, Grouping, Lowerer};
use crate::types::{self, bool_as_int, Typed};
use crate::{Location, PlanError};

mod aggregate;
mod json;
mod postgres;

use aggregate::total;
pub(crate) use json::{is_json_aggregate, outside_subquery};

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
        return Err(PlanError::new(format!("window function {}() is not supported here", name.to_uppercase()), at)
            .detail("LAG() and LEAD() are maintained in the SELECT list of a query that does not group; ROW_NUMBER(), RANK() and DENSE_RANK() in the top-k form")
            .hint("compute the window in a subquery in FROM and use its column in the outer query"));
    }
    if f.filter.is_some() {
        return Err(PlanError::new(format!("FILTER is only allowed on aggregates, not on {name}(…)"), at));
    }
    if !f.within_group.is_empty() || f.null_treatment.is_some() || !matches!(f.parameters, ast::FunctionArguments::None)
    {
        return Err(PlanError::new(format!("this form of {name}(…) is not supported"), at));
    }
    let list = match &f.args {
        ast::FunctionArguments::List(list) => list,
        ast::FunctionArguments::None => return Ok((Args::List(vec![]), false)),
        ast::FunctionArguments::Subquery(_) => {
            return Err(PlanError::new(format!("a subquery as the argument list of {name}(…) is not supported"), at)
                .hint(format!("pass a scalar subquery as one argument: {name}((SELECT …))")))
        }
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

fn call_func(def: &FunctionDef) -> Func {
    match def.kind {
        Kind::Call(func) => func,
        _ => Func::Abs,
    }
}

fn is_postgres_only(ty: ScalarType) -> bool {
    use ScalarType::*;
    matches!(ty, Numeric | Date | Timestamp | TimestampTz | Uuid | Interval)
}

/// The text of a string literal argument, if it is one.
pub(crate) fn string_literal(e: &ast::Expr) -> Option<&str> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        ast::Expr::Nested(inner) => string_literal(inner),
        _ => None,
    }
}

/// Where a date function's time value is: after `strftime`'s format.
fn time_value_at(kind: DateFunc) -> usize {
    usize::from(kind == DateFunc::Strftime)
}

/// Whether the date function's time value is `'now'`, or left out (SQLite
/// reads `date()` as `date('now')`).
fn reads_now(kind: DateFunc, args: &[&ast::Expr]) -> bool {
    match args.get(time_value_at(kind)) {
        None => true,
        Some(a) => string_literal(a).is_some_and(|t| t.eq_ignore_ascii_case("now")),
    }
}

/// Refuses `'subsec'` as a time value, `'localtime'` and `'utc'` written in
/// a date function (`'now'` reads the engine's clock: see [`reads_now`]).
fn check_date_literals(name: &str, kind: DateFunc, args: &[&ast::Expr], at: Option<Location>) -> Result<(), PlanError> {
    let values = args.get(time_value_at(kind)..).unwrap_or_default();
    for (i, a) in values.iter().enumerate() {
        let now = i == 0 && string_literal(a).is_some_and(|t| t.eq_ignore_ascii_case("now"));
        if let Some(text) = string_literal(a).filter(|t| !now && denorm_expr::reads_the_clock(i, t)) {
            let hint = match i {
                0 => {
                    "write the time value 'now' and the modifier 'subsec', in a view refreshed on a schedule \
                      (WITH (refresh = '1m'))"
                }
                _ => "denorm computes dates in UTC: compare with a fixed date, or convert to local time when reading",
            };
            return Err(PlanError::new(format!("{name}(…) with '{text}' is not supported in a maintained view"), at)
                .detail("it reads the clock or the machine's time zone, which change without a change in the source")
                .hint(hint));
        }
    }
    Ok(())
}

/// SQLite's time value of the clock (whose first column is at `first`): its
/// julian day number, which SQLite's date functions read to the
/// millisecond as they read `'now'`.
fn julian_day(first: usize) -> Typed {
    let ms = Expr::Column(first + denorm_types::clock::EPOCH_MS);
    let days = Expr::binary(BinaryOp::Div, ms, Expr::Literal(Datum::Float(86_400_000.0)));
    let jd = Expr::binary(BinaryOp::Add, days, Expr::Literal(Datum::Float(2_440_587.5)));
    Typed::new(jd, ScalarType::Float, false)
}

/// SQLite's `'now'` at the clock (whose first column is at `first`): its
/// text to the millisecond, `YYYY-MM-DD HH:MM:SS.SSS`, which the date
/// functions read as they read `'now'` (a number would not do: the
/// modifiers `unixepoch`, `julianday` and `auto` reinterpret a numeric time
/// value, and make `'now'` NULL).
fn now_text(first: usize) -> Typed {
    let format = Expr::Literal(Datum::owned_text("%Y-%m-%d %H:%M:%f"));
    let text = Expr::Call { func: Func::Date(DateFunc::Strftime), args: vec![format, julian_day(first).expr] };
    Typed::new(text, ScalarType::Text, false)
}

/// The format of printf must be a literal using the supported conversions.
fn check_printf_format(format: &ast::Expr, at: Option<Location>) -> Result<(), PlanError> {
    let Some(text) = string_literal(format) else {
        return Err(PlanError::new("the format of printf(…) must be a string literal", at));
    };
    denorm_expr::printf::check(text).map_err(|why| {
        PlanError::new(format!("printf format '{text}': {why}"), at)
            .hint("supported: %d %i %x %X %f %s %c %% with the flags - + space 0, a width and a precision")
    })
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
        self.call(&name, &args, at, d)
    }

    /// A scalar function call by name, planned from the function table.
    pub(crate) fn call(
        &self,
        name: &str,
        args: &[&ast::Expr],
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        if json::is_json_function(name) {
            let lowered = args.iter().map(|a| self.lower(a, d)).collect::<Result<Vec<_>, _>>()?;
            return self.json_function(name, lowered, at);
        }
        let def = self.function_def(name, at)?;
        if let Kind::Refused(why) = def.kind {
            return Err(
                PlanError::new(format!("function {name}() is not supported in a maintained view"), at).detail(why)
            );
        }
        if let Kind::Clock(clock) = def.kind {
            if !def.takes(args.len()) {
                return Err(arity_error(name, &def.arity_text(), at));
            }
            return self.clock_call(&format!("{name}()"), clock, at);
        }
        // SQLite's date functions of 'now' (or of no time value) read the
        // clock in place of the time value.
        let now = match call_func(def) {
            Func::Date(kind) if reads_now(kind, args) => {
                let first = self.read_clock(&format!("{name}(…) with 'now'"), at)?;
                Some((time_value_at(kind), now_text(first)))
            }
            _ => None,
        };
        let arity = args.len() + usize::from(now.as_ref().is_some_and(|(i, _)| *i == args.len()));
        // age(t) is age(current_date, t): the clock's date as a timestamp.
        let today = match call_func(def) == Func::Age && args.len() == 1 {
            true if !self.clock => {
                return Err(PlanError::new(
                    "age(timestamp) reads the current date, which changes without a change in the source",
                    at,
                )
                .detail("age(t) is age(current_date, t): it changes every day")
                .hint(format!("write age(a, b) over two columns, or {}", function::CLOCK_HINT)))
            }
            true => {
                let date = self.clock_call("age(timestamp)", Clock::Date, at)?.expr;
                Some(Typed::new(
                    Expr::Cast { expr: Box::new(date), to: ScalarType::Timestamp },
                    ScalarType::Timestamp,
                    false,
                ))
            }
            false => None,
        };
        let arity = arity + usize::from(today.is_some());
        if !def.takes(arity) {
            return Err(arity_error(name, &def.arity_text(), at));
        }
        if let Func::Date(kind) = call_func(def) {
            check_date_literals(name, kind, args, at)?;
        }
        if call_func(def) == Func::Printf {
            check_printf_format(args[0], at)?;
        }
        let mut lowered = Vec::with_capacity(arity);
        for (i, a) in args.iter().enumerate() {
            match &now {
                Some((at_now, jd)) if *at_now == i => lowered.push(jd.clone()),
                _ => lowered.push(self.lower(a, d)?),
            }
        }
        if let Some((at_now, jd)) = now.filter(|(i, _)| *i == args.len()) {
            lowered.insert(at_now, jd);
        }
        if let Some(today) = today {
            lowered.insert(0, today);
        }
        if lowered.iter().any(|t| t.explicit) {
            return Err(crate::expr::nested_collate(at));
        }
        let signature: Vec<String> =
            lowered.iter().map(|t| bool_as_int(t.clone(), self.dialect).ty.to_string()).collect();
        let signature = signature.join(", ");
        let lowered = lowered
            .into_iter()
            .enumerate()
            .map(|(i, t)| self.check_argument(def, i, t, &signature, at))
            .collect::<Result<Vec<_>, _>>()?;
        match def.kind {
            Kind::Coalesce => {
                let (items, ty) = types::unify_all(lowered, &name.to_uppercase(), self.dialect, at)?;
                let nullable = items.iter().all(|t| t.nullable);
                let narrow = Typed::all_narrow(&items);
                let coalesce = Expr::Coalesce(items.into_iter().map(|t| t.expr).collect());
                Ok(Typed::new(coalesce, ty, nullable).narrowed(narrow))
            }
            Kind::NullIf => self.nullif(lowered, at),
            Kind::Iif => self.iif(lowered, at),
            _ if call_func(def) == Func::PgRound => self.pg_round(lowered, at),
            _ => {
                let last_type = lowered.last().map(|t| t.ty);
                let mut typed = self.scalar_call(def, lowered, at)?;
                match call_func(def) {
                    Func::DateTrunc(_) | Func::DatePart(_) => self.field_call(typed, args[0], last_type, at),
                    // unixepoch(…, 'subsec') is a double.
                    Func::Date(DateFunc::UnixEpoch)
                        if args
                            .iter()
                            .filter_map(|a| string_literal(a))
                            .any(|t| t.eq_ignore_ascii_case("subsec") || t.eq_ignore_ascii_case("subsecond")) =>
                    {
                        typed.ty = ScalarType::Float;
                        Ok(typed)
                    }
                    _ => Ok(typed),
                }
            }
        }
    }

    /// The placeholder column of the engine's clock for `what` (a
    /// current-time call), or the error: the view is refreshed on every
    /// change, or the clause has no input to join the clock to.
    fn read_clock(&self, what: &str, at: Option<Location>) -> Result<usize, PlanError> {
        if !self.clock {
            return Err(PlanError::new(
                format!("{what} reads the current time, which changes without a change in the source"),
                at,
            )
            .detail("a view refreshed on every change cannot follow it")
            .hint(function::CLOCK_HINT));
        }
        let Some(subqueries) = self.subqueries else {
            // JOIN … ON, GROUP BY, aggregate arguments, a subquery's
            // correlation: no input to join the clock to.
            return Err(PlanError::new(format!("{what} is not supported {}", self.clause.place()), at).hint(
                "read the current time in WHERE, the SELECT list or HAVING, in a condition that does not \
                 correlate a subquery",
            ));
        };
        Ok(subqueries.clock())
    }

    /// A current-time function (`now()`, `current_date`, …) over the clock.
    fn clock_call(&self, what: &str, clock: Clock, at: Option<Location>) -> Result<Typed, PlanError> {
        let first = self.read_clock(what, at)?;
        let at_column = Expr::Column(first + denorm_types::clock::AT);
        let (expr, ty) = match clock {
            Clock::TimestampTz => (at_column, ScalarType::TimestampTz),
            Clock::Date => (Expr::Cast { expr: Box::new(at_column), to: ScalarType::Date }, ScalarType::Date),
            Clock::Timestamp => {
                (Expr::Cast { expr: Box::new(at_column), to: ScalarType::Timestamp }, ScalarType::Timestamp)
            }
            Clock::Sqlite(kind) => {
                (Expr::Call { func: Func::Date(kind), args: vec![julian_day(first).expr] }, ScalarType::Text)
            }
        };
        Ok(Typed::new(expr, ty, false))
    }

    /// The table entry for `name`, or the error naming it.
    fn function_def(&self, name: &str, at: Option<Location>) -> Result<&'static FunctionDef, PlanError> {
        if let Some(def) = function::lookup(name, self.dialect) {
            return Ok(def);
        }
        let other = match self.dialect {
            Dialect::Sqlite => Dialect::Postgres,
            Dialect::Postgres => Dialect::Sqlite,
        };
        let source = |d: Dialect| if d == Dialect::Sqlite { "SQLite" } else { "PostgreSQL" };
        let message = if function::lookup(name, other).is_some() {
            format!("function {name}(…) is a {} function, not supported on {}", source(other), source(self.dialect))
        } else {
            format!("function {name}(…) is not supported")
        };
        Err(PlanError::new(message, at).hint(function::supported(self.dialect)))
    }

    /// Checks argument `i` against the table (SQLite: a comparison is the
    /// integer 0 or 1; a number where text is wanted is read as its text).
    fn check_argument(
        &self,
        def: &FunctionDef,
        i: usize,
        t: Typed,
        signature: &str,
        at: Option<Location>,
    ) -> Result<Typed, PlanError> {
        let t = bool_as_int(t, self.dialect);
        // character(n) read as text loses its trailing blanks, except where
        // PostgreSQL reads it by its output function or has a bpchar variant
        // keeping them (octet_length, concat).
        let keeps_blanks = matches!(call_func(def), Func::OctetLength | Func::Concat | Func::ConcatWs);
        let t = if def.arg(i) == Arg::Text && !keeps_blanks { types::strip_bpchar(t) } else { t };
        let sqlite = self.dialect == Dialect::Sqlite;
        let ok = match (def.arg(i), t.ty) {
            (_, ScalarType::Null) => true,
            (_, ScalarType::Unsupported) => false,
            // A value without affinity: SQLite converts it as the function needs.
            (_, ScalarType::Any) => sqlite,
            (Arg::Any, ty) => !sqlite || !is_postgres_only(ty),
            (Arg::Text, ScalarType::Text | ScalarType::Json) => true,
            (Arg::Text, ty) => sqlite && ty.is_numeric() && ty != ScalarType::Numeric,
            (Arg::Number, ty) => ty.is_numeric(),
            (Arg::Integer, ty) => ty == ScalarType::Int || (sqlite && ty.is_numeric()),
            (Arg::DateOrTimestamp, ty) => matches!(ty, ScalarType::Date | ScalarType::Timestamp),
            (Arg::Timestamp, ty) => ty == ScalarType::Timestamp,
            (Arg::Interval, ty) => ty == ScalarType::Interval,
            (Arg::DateTimestampOrInterval, ty) => {
                matches!(ty, ScalarType::Date | ScalarType::Timestamp | ScalarType::Interval)
            }
            (Arg::TimestampOrInterval, ty) => matches!(ty, ScalarType::Timestamp | ScalarType::Interval),
        };
        if ok {
            return Ok(t);
        }
        let wants = match def.arg(i) {
            Arg::Text => "text",
            Arg::Number => "a number",
            Arg::Integer => "an integer",
            Arg::DateOrTimestamp => "a date or a timestamp (a timestamptz depends on the session's time zone)",
            Arg::Timestamp => {
                "a timestamp (PostgreSQL reads a date here as a timestamptz, which depends on the \
                               session's time zone: CAST it AS timestamp)"
            }
            Arg::Any => "a value",
            Arg::Interval => "an interval",
            Arg::DateTimestampOrInterval => "a date, a timestamp or an interval",
            Arg::TimestampOrInterval => {
                "a timestamp or an interval (PostgreSQL reads a date here as a timestamptz, which depends on the \
                 session's time zone: CAST it AS timestamp)"
            }
        };
        Err(PlanError::new(format!("function {}({signature}) does not exist", def.name), at).hint(format!(
            "argument {} of {} takes {wants}; CAST it explicitly",
            i + 1,
            def.name
        )))
    }

    fn nullif(&self, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let [a, b]: [Typed; 2] = args.try_into().map_err(|_| arity_error("nullif", "two arguments", at))?;
        let collation = types::comparison_collation(&a, &b);
        let narrow = Typed::all_narrow([&a, &b]);
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
            return Ok(Typed::new(case, ty, true).narrowed(narrow));
        }
        Ok(Typed::new(Expr::NullIf(Box::new(a.expr), Box::new(b.expr)), ty, true).narrowed(narrow))
    }

    /// `iif(c₁, a₁[, c₂, a₂ …][, b])` (also `if`) → `CASE WHEN c₁ THEN a₁ … ELSE b END`.
    fn iif(&self, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        let mut args = args.into_iter();
        while let Some(first) = args.next() {
            match args.next() {
                Some(value) => {
                    conditions.push(types::condition(first, "IIF", self.dialect, at)?);
                    values.push(value);
                }
                None => values.push(first),
            }
        }
        if values.len() == conditions.len() {
            values.push(Typed::null());
        }
        let (items, ty) = types::unify_all(values, "IIF", self.dialect, at)?;
        let nullable = items.iter().any(|t| t.nullable);
        let mut items = items.into_iter().map(|t| t.expr);
        let branches: Vec<(Expr, Expr)> =
            conditions.into_iter().map(|c| (c.expr, items.next().expect("a value per condition"))).collect();
        let otherwise = items.next().expect("the ELSE value");
        Ok(Typed::new(Expr::Case { branches, otherwise: Box::new(otherwise) }, ty, nullable))
    }

    fn scalar_call(&self, def: &FunctionDef, args: Vec<Typed>, at: Option<Location>) -> Result<Typed, PlanError> {
        let ascii_only = self.ascii_case_mapping();
        let func = match call_func(def) {
            Func::Lower { .. } => Func::Lower { ascii_only },
            Func::Upper { .. } => Func::Upper { ascii_only },
            Func::Initcap { .. } => Func::Initcap { ascii_only },
            func => func,
        };
        // PostgreSQL casts the arguments of greatest/least to their common type.
        let args = match (self.dialect, def.returns) {
            (Dialect::Postgres, Returns::Unified) => types::unify_all(args, def.name, self.dialect, at)?.0,
            _ => args,
        };
        let any_nullable = args.iter().any(|t| t.nullable);
        // PostgreSQL: the table's integer-valued functions (length, strpos,
        // octet_length, …) return `integer`; abs keeps its argument's type.
        let narrow = match def.returns {
            Returns::Type(_) => true,
            Returns::FirstArgument => args.first().is_some_and(|t| t.narrow),
            Returns::Unified => Typed::all_narrow(&args),
        };
        let ty = match def.returns {
            Returns::Type(ty) => ty,
            Returns::FirstArgument => args.first().map_or(ScalarType::Null, |t| t.ty),
            Returns::Unified => {
                let types: Vec<Typed> =
                    args.iter().map(|t| Typed::new(Expr::Literal(denorm_types::Datum::Null), t.ty, true)).collect();
                types::unify_all(types, def.name, self.dialect, at)?.1
            }
        };
        let nullable = match def.nulls {
            Nulls::Strict => any_nullable,
            Nulls::Always => true,
            Nulls::Never => false,
        };
        let call = Expr::Call { func, args: args.into_iter().map(|t| t.expr).collect() };
        Ok(Typed::new(call, ty, nullable).narrowed(narrow))
    }

    /// `TRIM(x)`, SQLite's `trim(x, characters)`; the standard's `TRIM(LEADING
    /// c FROM x)` is PostgreSQL syntax SQLite does not run.
    pub(crate) fn trim(
        &self,
        side: Option<&ast::TrimWhereField>,
        what: Option<&ast::Expr>,
        x: &ast::Expr,
        characters: Option<&[ast::Expr]>,
        at: Option<Location>,
        d: usize,
    ) -> Result<Typed, PlanError> {
        if self.dialect == Dialect::Postgres {
            if characters.is_some() {
                return Err(PlanError::new("TRIM(x, characters) is not PostgreSQL syntax", at)
                    .hint("write btrim(x, characters) or TRIM(BOTH characters FROM x)"));
            }
            return self.pg_trim(side, what, x, at, d);
        }
        if side.is_some() || what.is_some() {
            return Err(PlanError::new("TRIM(… FROM …) is not supported by SQLite", at)
                .hint("write trim(x, characters), ltrim(x, characters) or rtrim(x, characters)"));
        }
        let mut args = vec![x];
        args.extend(characters.unwrap_or_default());
        self.call("trim", &args, at, d)
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
            if f.over.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
                return Err(PlanError::new(format!("this form of {name}(…) is not supported"), at));
            }
            return self.json_aggregate(f, &name, grouping, at, d);
        }
        if matches!(name.as_str(), "group_concat" | "string_agg") {
            return self.group_concat(f, &name, grouping, at, d);
        }
        if name == "total" && self.dialect != Dialect::Sqlite {
            return Err(PlanError::new("function total(…) is a SQLite function, not supported on PostgreSQL", at)
                .hint("write COALESCE(SUM(x), 0)"));
        }
        // FILTER (WHERE c) is planned as the argument CASE WHEN c THEN x END:
        // every aggregate here skips NULLs, so the two agree row for row.
        let unfiltered = ast::Function { filter: None, ..f.clone() };
        let (args, distinct) = call_args(&unfiltered, &name, at)?;
        let Some(mut func) = aggregate_func(f) else { return Err(PlanError::new("not an aggregate", at)) };
        let arg = match args {
            Args::Star if func == AggregateFunc::Count && !distinct => None,
            Args::Star => return Err(PlanError::new(format!("{name}(*) is not supported"), at)),
            Args::List(list) => {
                let [arg]: [&ast::Expr; 1] =
                    list.try_into().map_err(|_| arity_error(&name, "exactly one argument", at))?;
                Some(self.scalar(Clause::AggregateArgument).lower(arg, d + 1)?)
            }
        };
        let arg = match f.filter.as_deref() {
            Some(condition) => Some(self.filtered(arg, condition, d)?),
            None => arg,
        };
        if distinct {
            func = match func {
                AggregateFunc::Count => AggregateFunc::CountDistinct,
                AggregateFunc::Sum => AggregateFunc::SumDistinct,
                AggregateFunc::Avg => AggregateFunc::AvgDistinct,
                // The extremes of the distinct values are the extremes.
                f => f,
            };
        }
        // PostgreSQL sums the distinct values as its plain SUM/AVG does
        // (`denorm-core` `reduce/distinct.rs`).
        let pg_distinct_sum = self.dialect == Dialect::Postgres
            && match (func, arg.as_ref().map(|a| a.ty)) {
                (AggregateFunc::SumDistinct, Some(ScalarType::Int | ScalarType::Float | ScalarType::Numeric)) => false,
                (AggregateFunc::AvgDistinct, Some(ScalarType::Int | ScalarType::Float | ScalarType::Numeric)) => false,
                (AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct, _) => true,
                _ => false,
            };
        if pg_distinct_sum {
            return Err(PlanError::new(format!("{name}(DISTINCT …) of this type is not supported on PostgreSQL"), at)
                .detail("denorm computes SUM(DISTINCT x) and AVG(DISTINCT x) of integers, doubles and numerics")
                .hint("aggregate a subquery that selects DISTINCT"));
        }
        if matches!(name.as_str(), "bool_and" | "bool_or" | "every") {
            return self.bool_aggregate(func, &name, arg, grouping, at);
        }
        // MIN/MAX and DISTINCT compare under the argument's collation: over
        // its collation key; MIN/MAX over the key and then the value, so
        // that they return a row's value (`extreme_key`).
        let extreme = matches!(func, AggregateFunc::Min | AggregateFunc::Max);
        // MIN/MAX of a smallint/integer is one (SUM's type is below).
        let narrow = extreme && arg.as_ref().is_some_and(|a| a.narrow);
        let arg = match func {
            AggregateFunc::Min | AggregateFunc::Max => arg.map(|a| extreme_key(a, func == AggregateFunc::Max)),
            AggregateFunc::CountDistinct => arg.map(|a| {
                let c = a.own_collation();
                types::collation_key(a, c)
            }),
            _ => arg,
        };
        let decoded =
            extreme && arg.as_ref().is_some_and(|a| matches!(a.expr, Expr::Call { func: Func::ExtremeKey { .. }, .. }));
        // MIN/MAX of character(n) is character(n): padded, compared without blanks.
        let bpchar = arg.as_ref().is_some_and(|a| a.bpchar) && matches!(func, AggregateFunc::Min | AggregateFunc::Max);
        let arg = if bpchar { arg.map(bpchar_extreme_key) } else { arg };
        let type_func = match func {
            AggregateFunc::SumDistinct => AggregateFunc::Sum,
            AggregateFunc::AvgDistinct => AggregateFunc::Avg,
            f => f,
        };
        let (arg, ty, nullable) = self.aggregate_type(type_func, &name, arg, at)?;
        let column = grouping.borrow_mut().register(func, arg, ty, nullable);
        if name == "total" {
            return Ok(total(column));
        }
        let value = match bpchar {
            // The padded value after the key's NUL (see `bpchar_extreme_key`).
            true => Expr::Call {
                func: Func::SplitPart,
                args: vec![Expr::Column(column), Expr::Literal(Datum::text("\0")), Expr::Literal(Datum::Int(2))],
            },
            false if decoded => Expr::Call {
                func: Func::ExtremeValue { max: func == AggregateFunc::Max },
                args: vec![Expr::Column(column)],
            },
            false => Expr::Column(column),
        };
        // An aggregate's result has no affinity in SQLite.
        Ok(Typed { bpchar, ..Typed::new(value, ty, nullable) }.narrowed(narrow).without_affinity(true))
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
        // PostgreSQL's AVG of integers is numeric: the integer sum over the
        // count at numeric's division scale, which is exactly AVG of the same
        // values as numerics (`1, 2` → 1.5000000000000000).
        // Its SUM of a bigint is numeric too (so exact past 2^63), of a
        // smallint or an integer bigint (see `Typed::narrow`).
        let pg_numeric = match func {
            AggregateFunc::Avg => true,
            AggregateFunc::Sum => !arg.narrow,
            _ => false,
        };
        if self.dialect == Dialect::Postgres && pg_numeric && arg.ty == ScalarType::Int {
            let numeric = Expr::Cast { expr: Box::new(arg.expr), to: ScalarType::Numeric };
            return Ok((Some(numeric), ScalarType::Numeric, true));
        }
        let ty = match (func, arg.ty) {
            (AggregateFunc::Avg, ScalarType::Numeric) => ScalarType::Numeric,
            (AggregateFunc::Avg, t) if t.is_numeric() || t == ScalarType::Any => ScalarType::Float,
            (AggregateFunc::Sum, t) if t.is_numeric() => t,
            // SQLite sums any value as a number (text by NUMERIC affinity,
            // else its numeric prefix): an integer or a double.
            (AggregateFunc::Sum, ScalarType::Any) => ScalarType::Float,
            (AggregateFunc::Sum | AggregateFunc::Avg, ScalarType::Text) if self.dialect == Dialect::Sqlite => {
                ScalarType::Float
            }
            (AggregateFunc::Min | AggregateFunc::Max, ScalarType::Json) if self.dialect == Dialect::Postgres => {
                return Err(PlanError::new(format!("function {name}(json) does not exist"), at)
                    .hint("json values have no order; CAST the argument to text"))
            }
            (AggregateFunc::Min | AggregateFunc::Max, t) if t != ScalarType::Bool => t,
            // Months, days and time summed apart, as PostgreSQL's interval_accum.
            (AggregateFunc::Sum | AggregateFunc::Avg, ScalarType::Interval) => ScalarType::Interval,
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
        // PostgreSQL: character(n) cast to text or varchar loses its trailing blanks.
        let arg = if target.ty == ScalarType::Text { types::strip_bpchar(arg) } else { arg };
        self.check_cast(&arg, target.ty, data_type, at)?;
        let arg = bool_as_int(arg, self.dialect);
        let (nullable, collation, explicit) = (arg.nullable, arg.collation, arg.explicit);
        // SQLite: a CAST keeps its operand's collation.
        let cast = Typed::new(Expr::Cast { expr: Box::new(arg.expr), to: target.ty }, target.ty, nullable);
        Ok(cast.collated(collation, explicit).narrowed(target.narrow()))
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
            (Numeric | Date | Timestamp | TimestampTz | Uuid | Json | Interval, _) => false,
            (_, Interval) => false,
            (_, Numeric | Date | Timestamp | TimestampTz | Uuid) => false,
            _ => true,
        };
        if !allowed {
            return Err(PlanError::new(format!("cannot cast type {} to {data_type}", arg.ty), at)
                .hint("PostgreSQL has no such cast; CAST through TEXT if the text form is what you mean"));
        }
        let refused = match (arg.ty, to) {
            (Float, Text) if !sqlite => Some("SQLite and PostgreSQL format doubles as text differently"),
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

impl CastTarget {
    /// Whether the target is PostgreSQL's `smallint` or `integer` (see
    /// [`Typed::narrow`](crate::types::Typed::narrow)).
    pub fn narrow(&self) -> bool {
        matches!(self.pg_name, "int2" | "int4")
    }
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

/// What MIN (`max` false) or MAX of `t` compare: under a collation other
/// than BINARY, text's key then its value (`Func::ExtremeKey`: the extreme
/// is the least of the values tied under the collation, a row's value as
/// SQLite returns, never the key); a column that already holds its key
/// (grouped under the collation in a subquery) compares as it is.
fn extreme_key(t: Typed, max: bool) -> Typed {
    let collation = t.own_collation();
    if collation == Collation::Binary || t.ty != ScalarType::Text || (t.keyed && t.collation == Some(collation)) {
        return types::collation_key(t, collation);
    }
    let expr = Expr::Call { func: Func::ExtremeKey { collation, max }, args: vec![t.expr] };
    Typed::new(expr, t.ty, t.nullable)
}

/// What MIN/MAX of a `character(n)` value compare: `rtrim(x) || NUL || x`.
/// PostgreSQL orders character(n) without its trailing blanks
/// (`bpcharcmp`: 'a' before 'a<tab>', which as padded values sort the other
/// way), and shows the padded value, which follows the NUL (text holds no
/// NUL in PostgreSQL, so the stripped value ends there and a shorter one
/// sorts first).
fn bpchar_extreme_key(t: Typed) -> Typed {
    let (ty, nullable) = (t.ty, t.nullable);
    let padded = Typed::new(t.expr.clone(), ty, nullable);
    let stripped = types::strip_bpchar(t).expr;
    let key = Expr::binary(
        BinaryOp::Concat,
        Expr::binary(BinaryOp::Concat, stripped, Expr::Literal(Datum::text("\0"))),
        padded.expr,
    );
    Typed::new(key, ty, nullable)
}
