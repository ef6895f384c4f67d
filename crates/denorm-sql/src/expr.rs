//! sqlparser expressions → typed [`denorm_expr::Expr`] over the joined row
//! (or, after GROUP BY, over the `Reduce` output).
//!
//! ```text
//!  scalar mode   (WHERE, ON, GROUP BY, aggregate arguments, ungrouped SELECT)
//!     column refs → Column(position in the joined row); aggregates refused
//!  grouped mode  (SELECT list and HAVING of a grouped query)
//!     a sub-expression equal to a GROUP BY expression i → Column(i)
//!     an aggregate → registered in Grouping → Column(groups + j)
//!     any other column ref → "must appear in the GROUP BY clause"
//! ```
//!
//! Lowering recurses once per AST level and refuses expressions deeper than
//! [`MAX_DEPTH`], so no input can exhaust the stack.

use std::cell::RefCell;

use denorm_expr::{AggregateFunc, AggregateOrder, BinaryOp, Expr, Func};
use denorm_types::{Catalog, Collation, Datum, Dialect, ScalarType};
use sqlparser::ast::{self, BinaryOperator, UnaryOperator};

use crate::date_arith;
use crate::scope::Scope;
use crate::source::{location, Statement};
use crate::subquery::Subqueries;
use crate::types::{self, bool_as_int, comparison_operands, condition, Typed};
use crate::{Location, PlanError};

/// Deepest expression accepted (`a AND b AND …` counts one level per operator).
pub(crate) const MAX_DEPTH: usize = 200;

/// Where a scalar-mode expression appears, for the aggregate refusal message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clause {
    Where,
    JoinOn,
    GroupBy,
    Select,
    AggregateArgument,
}

impl Clause {
    pub(crate) fn aggregate_error(self) -> &'static str {
        match self {
            Clause::Where => "aggregate functions are not allowed in WHERE",
            Clause::JoinOn => "aggregate functions are not allowed in JOIN conditions",
            Clause::GroupBy => "aggregate functions are not allowed in GROUP BY",
            Clause::Select => "aggregate functions are not allowed here",
            Clause::AggregateArgument => "aggregate function calls cannot be nested",
        }
    }

    /// Where the clause is, for "… is not supported {place}".
    pub(crate) fn place(self) -> &'static str {
        match self {
            Clause::Where => "in WHERE",
            Clause::JoinOn => "in JOIN conditions",
            Clause::GroupBy => "in GROUP BY",
            Clause::Select => "here",
            Clause::AggregateArgument => "in aggregate arguments",
        }
    }
}

/// The GROUP BY expressions and aggregates of a grouped query, filled while
/// its SELECT list and HAVING are lowered.
#[derive(Debug, Default)]
pub(crate) struct Grouping {
    /// Group expressions over the joined row; `Reduce` output columns 0..g.
    pub groups: Vec<Typed>,
    /// Distinct aggregate arguments over the joined row.
    pub args: Vec<Expr>,
    /// `Reduce` output columns g.., deduplicated.
    pub aggregates: Vec<AggregateColumn>,
    /// Each group expression as written, before its collation key replaced
    /// it (`GROUP BY city` over a NOCASE column groups by the key; `city` in
    /// the SELECT list is that group column).
    pub written: Vec<Expr>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AggregateColumn {
    pub func: AggregateFunc,
    /// Index into [`Grouping::args`]; `None` for `COUNT(*)`.
    pub arg: Option<usize>,
    /// For an aggregate of several inputs (`Expr::List`), their indexes
    /// into [`Grouping::args`], each its own column of the Map below the
    /// Reduce.
    pub list: Vec<usize>,
    pub ty: ScalarType,
    pub nullable: bool,
}

impl AggregateColumn {
    /// The aggregate's argument over the Map that computes the group
    /// expressions (`width` columns) and then the arguments.
    pub fn input(&self, width: usize) -> Option<Expr> {
        if !self.list.is_empty() {
            return Some(Expr::List(self.list.iter().map(|i| Expr::Column(width + i)).collect()));
        }
        self.arg.map(|i| Expr::Column(width + i))
    }
}

impl Grouping {
    /// The `Reduce` output column computing `aggregate`, added if new.
    pub fn register(&mut self, func: AggregateFunc, arg: Option<Expr>, ty: ScalarType, nullable: bool) -> usize {
        let (arg, list) = match arg {
            Some(Expr::List(items)) => (None, items.into_iter().map(|a| self.argument(a)).collect()),
            arg => (arg.map(|a| self.argument(a)), Vec::new()),
        };
        let column = AggregateColumn { func, arg, list, ty, nullable };
        let j = match self.aggregates.iter().position(|a| *a == column) {
            Some(j) => j,
            None => {
                self.aggregates.push(column);
                self.aggregates.len() - 1
            }
        };
        self.groups.len() + j
    }

    /// Group column `i` over the `Reduce` output, with its collation (and
    /// whether it holds the collation key).
    pub fn column(&self, i: usize) -> Typed {
        let group = &self.groups[i];
        let keyed = self.written.get(i).is_some_and(|w| *w != group.expr);
        let t = Typed::new(Expr::Column(i), group.ty, group.nullable).collated(group.collation, group.explicit);
        let no_affinity = !crate::types::has_affinity(group);
        Typed { keyed, bpchar: group.bpchar, narrow: group.narrow, no_affinity, ..t }
    }

    /// The group column computing `expr` (as keyed or as written).
    pub fn position(&self, expr: &Expr) -> Option<usize> {
        let written = |i: usize| self.written.get(i) == Some(expr);
        (0..self.groups.len()).find(|&i| self.groups[i].expr == *expr || written(i))
    }

    /// The index of `arg` in [`Grouping::args`], added if new.
    fn argument(&mut self, arg: Expr) -> usize {
        match self.args.iter().position(|x| *x == arg) {
            Some(i) => i,
            None => {
                self.args.push(arg);
                self.args.len() - 1
            }
        }
    }
}

/// The prefix of the collation name [`collation_key_ast`] writes.
const KEY_COLLATION: &str = "__denorm_key_";

/// `e` replaced by its collation key under `c`, as an AST the planner
/// re-plans (a subquery's correlation side, grouped, deduplicated and
/// projected by the key): `e COLLATE __denorm_key_<c>`, which no source
/// accepts, so no view text can name it.
pub(crate) fn collation_key_ast(e: ast::Expr, c: denorm_types::Collation) -> ast::Expr {
    ast::Expr::Collate {
        expr: Box::new(ast::Expr::Nested(Box::new(e))),
        collation: ast::ObjectName::from(vec![ast::Ident::new(format!("{KEY_COLLATION}{}", c.name()))]),
    }
}

/// The SQLite collation `COLLATE name` names.
pub(crate) fn sqlite_collation(name: &ast::ObjectName, at: Option<Location>) -> Result<Collation, PlanError> {
    let text = name.to_string();
    let unquoted = text.trim_matches(|c| c == '"' || c == '`' || c == '[' || c == ']');
    denorm_types::Collation::from_name(unquoted).ok_or_else(|| {
        PlanError::new(format!("collation \"{unquoted}\" is not supported"), at)
            .hint("use one of SQLite's built-in collations: BINARY, NOCASE or RTRIM")
    })
}

/// Lowers expressions in one clause of one query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lowerer<'a, 'c> {
    pub scope: &'a Scope<'c>,
    pub statement: &'a Statement,
    pub dialect: Dialect,
    pub clause: Clause,
    /// Set in grouped mode.
    pub grouping: Option<&'a RefCell<Grouping>>,
    /// Where to report errors whose own position is unknown.
    pub fallback: Option<Location>,
    /// Set where subqueries in expressions are planned (WHERE, the SELECT
    /// list, HAVING): they join the clause's input (see [`crate::subquery`]).
    pub subqueries: Option<&'a Subqueries<'a, 'c>>,
    /// Window calls already planned (`LAG`/`LEAD`, see [`crate::shift`]):
    /// each call's node, found by address, reads its column.
    pub windows: &'a [crate::shift::Column<'a>],
    /// The view is refreshed on a schedule: the current-time functions read
    /// the engine's clock (see [`crate::subquery::Subqueries::clock`]).
    pub clock: bool,
}

type Lowered = Result<Typed, PlanError>;

impl<'a, 'c> Lowerer<'a, 'c> {
    /// Scalar mode in `clause`, without subqueries (GROUP BY, aggregate
    /// arguments and the speculative lowering in grouped mode have no input
    /// for a subquery to join).
    pub fn scalar(&self, clause: Clause) -> Self {
        Lowerer { clause, grouping: None, subqueries: None, ..*self }
    }

    pub fn at(&self, e: &ast::Expr) -> Option<Location> {
        self.statement.start_of(e).and_then(location).or(self.fallback)
    }

    pub fn lower(&self, e: &ast::Expr, depth: usize) -> Lowered {
        if depth > MAX_DEPTH {
            return Err(PlanError::new(
                format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"),
                self.at(e),
            ));
        }
        if let ast::Expr::Function(f) = e {
            if f.over.is_some() {
                if let Some((_, t)) = self.windows.iter().find(|(w, _)| std::ptr::eq(*w, e)) {
                    return Ok(t.clone());
                }
            }
        }
        match self.grouping {
            Some(grouping) => self.lower_grouped(e, grouping, depth),
            None => self.lower_node(e, depth),
        }
    }

    /// A condition: lowered, then checked (or, in SQLite, coerced) to boolean.
    pub fn lower_condition(&self, e: &ast::Expr, context: &str, depth: usize) -> Lowered {
        let t = self.lower(e, depth)?;
        condition(t, context, self.dialect, self.at(e))
    }

    fn lower_grouped(&self, e: &ast::Expr, grouping: &RefCell<Grouping>, depth: usize) -> Lowered {
        let whole = self.scalar(Clause::Select).lower(e, depth);
        if let Ok(t) = whole {
            let g = grouping.borrow();
            if let Some(i) = g.position(&t.expr) {
                return Ok(g.column(i));
            }
        }
        match e {
            ast::Expr::Function(f) if is_aggregate(f) && f.over.is_none() => {
                self.lower_aggregate(f, e, grouping, depth)
            }
            ast::Expr::Identifier(_) | ast::Expr::CompoundIdentifier(_) => {
                let t = self.scalar(Clause::Select).lower_node(e, depth)?;
                let dependent = self.dependent_column(&t, &grouping.borrow());
                if let Some(column) = dependent {
                    return Ok(self.dependent_value(column, t, grouping));
                }
                Err(PlanError::new(
                    format!("column \"{e}\" must appear in the GROUP BY clause or be used in an aggregate function"),
                    self.at(e),
                ))
            }
            _ => self.lower_node(e, depth),
        }
    }

    /// The position of a column that the GROUP BY determines: its table's
    /// primary key (a derived table's proven key) is grouped by, column for
    /// column, so every row of a group holds the same value (`SELECT p.title
    /// … GROUP BY p.id`, which PostgreSQL and SQLite accept).
    fn dependent_column(&self, t: &Typed, g: &Grouping) -> Option<usize> {
        let Expr::Column(position) = t.expr else { return None };
        let relation =
            self.scope.relations.iter().find(|r| (r.offset..r.offset + r.table.columns.len()).contains(&position))?;
        let key = &relation.table.primary_key;
        let grouped = |c: &usize| g.position(&Expr::Column(relation.offset + c)).is_some();
        (!key.is_empty() && key.iter().all(grouped)).then_some(position)
    }

    /// A dependent column's value in its group: `MIN` over rows that all hold
    /// the same value (NULL when they hold NULL), so the group key stays as
    /// written.
    fn dependent_value(&self, position: usize, t: Typed, grouping: &RefCell<Grouping>) -> Typed {
        let column = grouping.borrow_mut().register(AggregateFunc::Min, Some(Expr::Column(position)), t.ty, t.nullable);
        Typed::new(Expr::Column(column), t.ty, t.nullable)
            .collated(t.collation, false)
            .narrowed(t.narrow)
            .without_affinity(t.no_affinity)
    }

    /// A column of the joined row (wildcard expansion) in the current mode;
    /// with `merged` (`*`), a FULL JOIN … USING pair's `COALESCE`.
    pub fn lower_position(&self, relation: usize, column: usize, merged: bool) -> Lowered {
        self.scope.check_supported(relation, column, self.fallback)?;
        let c = match merged {
            true => self.scope.merged_column(relation, column),
            false => self.scope.column(relation, column),
        };
        let t = column_value(&c);
        let Some(grouping) = self.grouping else { return Ok(t) };
        let g = grouping.borrow();
        match g.position(&t.expr) {
            Some(i) => Ok(g.column(i)),
            None if self.dependent_column(&t, &g).is_some() => {
                drop(g);
                Ok(self.dependent_value(c.position, t, grouping))
            }
            None => Err(PlanError::new(
                format!(
                    "column \"{}.{}\" must appear in the GROUP BY clause or be used in an aggregate function",
                    self.scope.relations[relation].name, c.name
                ),
                self.fallback,
            )),
        }
    }

    fn lower_node(&self, e: &ast::Expr, depth: usize) -> Lowered {
        use ast::Expr as E;
        let at = self.at(e);
        let d = depth + 1;
        match e {
            E::Identifier(i) => self.column(std::slice::from_ref(i)),
            E::CompoundIdentifier(idents) => self.column(idents),
            E::Nested(inner) => self.lower(inner, d),
            E::Value(v) => self.literal(&v.value, false, at),
            E::UnaryOp { op, expr } => self.unary(*op, expr, at, d),
            E::BinaryOp { left, op, right } => self.binary(left, op, right, at, d),
            E::IsNull(x) => Ok(is_null(self.lower(x, d)?)),
            E::IsNotNull(x) => Ok(not(is_null(self.lower(x, d)?))),
            E::InList { expr, list, negated } => self.in_list(expr, list, *negated, at, d),
            E::Between { expr, negated, low, high } => self.between(expr, *negated, low, high, at, d),
            E::Like { negated, any, expr, pattern, escape_char } => {
                self.like(LikeParts { negated: *negated, any: *any, expr, pattern, escape_char, ilike: false }, at, d)
            }
            E::ILike { negated, any, expr, pattern, escape_char } => {
                self.like(LikeParts { negated: *negated, any: *any, expr, pattern, escape_char, ilike: true }, at, d)
            }
            E::Case { operand, conditions, else_result, .. } => {
                self.case(operand.as_deref(), conditions, else_result.as_deref(), at, d)
            }
            E::Function(f) => self.function(f, e, d),
            E::Substring { special: false, substring_from: Some(_), .. } if self.dialect == Dialect::Sqlite => {
                Err(PlanError::new("SUBSTRING(… FROM … FOR …) is not supported by SQLite", at)
                    .hint("write substr(x, start, length)"))
            }
            E::Position { expr, r#in } => self.position(expr, r#in, at, d),
            E::Extract { field, expr, .. } => self.extract(field, expr, at, d),
            E::Substring { expr, substring_from, substring_for, .. } => {
                let args: Vec<&ast::Expr> = [Some(&**expr), substring_from.as_deref(), substring_for.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                self.call("substr", &args, at, d)
            }
            E::Trim { trim_where, trim_what, expr, trim_characters } => {
                self.trim(trim_where.as_ref(), trim_what.as_deref(), expr, trim_characters.as_deref(), at, d)
            }
            E::Collate { expr, collation } => self.collate(expr, collation, at, d),
            E::Interval(_) | E::Cast { data_type: ast::DataType::Interval { .. }, .. }
                if self.dialect == Dialect::Postgres =>
            {
                match date_arith::interval_literal(e, at) {
                    Some(interval) => {
                        Ok(Typed::new(Expr::Literal(Datum::Interval(interval?)), ScalarType::Interval, false))
                    }
                    None => Err(refusal(e, at)),
                }
            }
            E::Cast { kind, expr, data_type, format } => self.cast(kind, expr, data_type, format.is_some(), at, d),
            E::TypedString(literal) => crate::types::typed_literal(literal, self.dialect, at),
            E::Subquery(_) | E::InSubquery { .. } | E::Exists { .. } => match self.subqueries {
                Some(subqueries) => self.subquery(subqueries, e, at, d),
                None => Err(crate::subquery::refusal(self.clause, at)),
            },
            _ => Err(refusal(e, at)),
        }
    }

    fn column(&self, idents: &[ast::Ident]) -> Lowered {
        let c = self.scope.resolve(idents)?;
        let t = column_value(&c);
        // PostgreSQL text has no collation but "C": RTRIM marks character(n)
        // (see `Typed::bpchar`), a source column's or a subquery's.
        if self.dialect == Dialect::Postgres && c.collation == Some(denorm_types::Collation::Rtrim) {
            return Ok(Typed { bpchar: true, ..t });
        }
        Ok(t.collated(c.collation, false))
    }

    /// `x COLLATE name`: SQLite's built-in collations; the expression keeps
    /// its value and carries the collation explicitly.
    fn collate(&self, x: &ast::Expr, name: &ast::ObjectName, at: Option<Location>, d: usize) -> Lowered {
        let text = name.to_string();
        if self.dialect == Dialect::Postgres {
            // denorm compares PostgreSQL text bytewise, as "C" and "POSIX" do.
            if matches!(text.as_str(), "\"C\"" | "\"POSIX\"" | "ucs_basic") {
                return self.lower(x, d);
            }
            return Err(PlanError::new(format!("collation {text} is not supported"), at)
                .detail("denorm compares PostgreSQL text bytewise")
                .hint("remove the COLLATE clause, or write COLLATE \"C\""));
        }
        if let Some(c) = text.strip_prefix(KEY_COLLATION).and_then(denorm_types::Collation::from_name) {
            let t = self.lower(x, d)?;
            return Ok(types::collation_key(t, c));
        }
        let collation = sqlite_collation(name, at)?;
        Ok(self.lower(x, d)?.collated(Some(collation), true))
    }

    pub fn literal(&self, v: &ast::Value, negative: bool, at: Option<Location>) -> Lowered {
        let sign = if negative { "-" } else { "" };
        match v {
            ast::Value::Number(n, _) => number(&format!("{sign}{n}"), self.dialect, at),
            ast::Value::SingleQuotedString(s) => {
                Ok(Typed::new(Expr::Literal(Datum::Text(s.clone().into())), ScalarType::Text, false))
            }
            ast::Value::Boolean(b) => Ok(match self.dialect {
                Dialect::Sqlite => Typed::new(Expr::Literal(Datum::Int(i64::from(*b))), ScalarType::Int, false),
                Dialect::Postgres => Typed::new(Expr::Literal(Datum::Bool(*b)), ScalarType::Bool, false),
            }),
            ast::Value::Null => Ok(Typed::null()),
            ast::Value::Placeholder(p) => Err(PlanError::new(format!("parameter {p} is not supported in a view"), at)
                .hint("a view's query cannot take parameters; filter at read time with ?col=eq.value")),
            other => Err(PlanError::new(format!("literal {other} is not supported"), at)
                .hint("use a number, a 'single-quoted' string, TRUE, FALSE or NULL")),
        }
    }

    fn unary(&self, op: UnaryOperator, x: &ast::Expr, at: Option<Location>, d: usize) -> Lowered {
        match op {
            UnaryOperator::Minus => {
                if let ast::Expr::Value(v) = x {
                    if let ast::Value::Number(..) = v.value {
                        return self.literal(&v.value, true, at);
                    }
                }
                let t = self.lower(x, d)?;
                if t.ty == ScalarType::Interval {
                    let negated = Expr::Call { func: denorm_expr::Func::IntervalNegate, args: vec![t.expr] };
                    return Ok(Typed::new(negated, ScalarType::Interval, t.nullable));
                }
                let t = self.numeric(t, "-", at)?;
                Ok(Typed::new(Expr::Negate(Box::new(t.expr)), t.ty, t.nullable).narrowed(t.narrow))
            }
            UnaryOperator::Plus => self.numeric(self.lower(x, d)?, "+", at),
            UnaryOperator::Not => Ok(not(self.lower_condition(x, "NOT", d)?)),
            other => Err(PlanError::new(format!("operator {other} is not supported"), at)),
        }
    }

    fn numeric(&self, t: Typed, symbol: &str, at: Option<Location>) -> Lowered {
        let t = bool_as_int(t, self.dialect);
        if t.ty.is_numeric() || t.ty == ScalarType::Null {
            return Ok(t);
        }
        // SQLite reads any value as a number (text by its numeric prefix).
        if t.ty == ScalarType::Any {
            return Ok(Typed::new(t.expr, ScalarType::Float, t.nullable));
        }
        Err(PlanError::new(format!("operator does not exist: {symbol} {}", t.ty), at)
            .hint("CAST the operand explicitly, e.g. CAST(x AS INTEGER)"))
    }

    fn binary(&self, l: &ast::Expr, op: &BinaryOperator, r: &ast::Expr, at: Option<Location>, d: usize) -> Lowered {
        use BinaryOperator as B;
        let bop = match op {
            B::Arrow | B::LongArrow => return self.json_arrow(l, r, matches!(op, B::LongArrow), at, d),
            B::HashArrow | B::HashLongArrow => {
                return self.json_path_operator(l, r, matches!(op, B::HashLongArrow), at, d)
            }
            B::Plus => BinaryOp::Add,
            B::Minus => BinaryOp::Sub,
            B::Multiply => BinaryOp::Mul,
            B::Divide => BinaryOp::Div,
            B::Modulo => BinaryOp::Mod,
            B::StringConcat => BinaryOp::Concat,
            B::Eq => BinaryOp::Eq,
            B::NotEq => BinaryOp::NotEq,
            B::Lt => BinaryOp::Lt,
            B::LtEq => BinaryOp::LtEq,
            B::Gt => BinaryOp::Gt,
            B::GtEq => BinaryOp::GtEq,
            B::And => BinaryOp::And,
            B::Or => BinaryOp::Or,
            other => return Err(PlanError::new(format!("operator {other} is not supported"), at)),
        };
        match bop {
            BinaryOp::And | BinaryOp::Or => {
                let left = self.lower_condition(l, bop.symbol(), d)?;
                let right = self.lower_condition(r, bop.symbol(), d)?;
                let nullable = left.nullable || right.nullable;
                Ok(Typed::new(Expr::binary(bop, left.expr, right.expr), ScalarType::Bool, nullable))
            }
            BinaryOp::Add | BinaryOp::Sub if self.dialect == Dialect::Postgres && has_interval(l, r) => {
                self.interval_arithmetic(l, bop, r, at, d)
            }
            _ => {
                let (left, right) = (self.lower(l, d)?, self.lower(r, d)?);
                self.apply_binary(bop, left, right, at)
            }
        }
    }

    /// `x ± interval` / `interval + x` (PostgreSQL), kept out of
    /// [`Self::binary`] so that its frame stays small for deep nesting.
    #[inline(never)]
    fn interval_arithmetic(
        &self,
        l: &ast::Expr,
        op: BinaryOp,
        r: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Lowered {
        let dated = |t: &Typed| matches!(t.ty, ScalarType::Date | ScalarType::Timestamp | ScalarType::TimestampTz);
        if let Some(interval) = date_arith::interval_literal(r, self.at(r).or(at)) {
            let left = self.lower(l, d)?;
            if dated(&left) {
                return date_arith::plus_interval(left, interval?, op == BinaryOp::Sub, at);
            }
        } else if let Some(interval) = date_arith::interval_literal(l, self.at(l).or(at)) {
            let right = self.lower(r, d)?;
            if op == BinaryOp::Add && dated(&right) {
                return date_arith::plus_interval(right, interval?, false, at);
            }
        }
        // Interval values: interval ± interval, or a constant interval beside
        // a value that is not a date or timestamp (typed by date_arith).
        let (left, right) = (self.lower(l, d)?, self.lower(r, d)?);
        self.apply_binary(op, left, right, at)
    }

    /// Types a non-logical binary operator over lowered operands.
    pub fn apply_binary(&self, op: BinaryOp, left: Typed, right: Typed, at: Option<Location>) -> Lowered {
        let nullable = left.nullable || right.nullable;
        match op {
            BinaryOp::Concat | BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod
                if left.explicit || right.explicit =>
            {
                Err(nested_collate(at))
            }
            BinaryOp::Concat => concat(left, right, self.dialect, at),
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                self.arithmetic(op, left, right, at)
            }
            _ => {
                let (left, right) = comparison_operands(left, right, op.symbol(), self.dialect, at)?;
                Ok(Typed::new(Expr::binary(op, left.expr, right.expr), ScalarType::Bool, nullable))
            }
        }
    }

    fn arithmetic(&self, op: BinaryOp, left: Typed, right: Typed, at: Option<Location>) -> Lowered {
        let (left, right) = (bool_as_int(left, self.dialect), bool_as_int(right, self.dialect));
        let numeric = |t: ScalarType| t.is_numeric() || t == ScalarType::Null;
        let temporal = |t: ScalarType| matches!(t, ScalarType::Date | ScalarType::Timestamp | ScalarType::TimestampTz);
        if self.dialect == Dialect::Postgres {
            if let Some(lowered) = date_arith::arithmetic(op, &left, &right, at) {
                return lowered;
            }
        }
        if temporal(left.ty) || temporal(right.ty) {
            return Err(PlanError::new(
                format!("date/time arithmetic is not supported: {} {} {}", left.ty, op.symbol(), right.ty),
                at,
            )
            .hint("compare dates and timestamps with literals instead (d >= '2024-05-01'), or compute the value at read time"));
        }
        let any = left.ty == ScalarType::Any || right.ty == ScalarType::Any;
        if any && (numeric(left.ty) || numeric(right.ty) || left.ty == right.ty) {
            // A column without affinity: SQLite converts each value (text
            // by its numeric prefix); the result is an integer or a double.
            let nullable = left.nullable || right.nullable || self.dialect == Dialect::Sqlite;
            return Ok(Typed::new(Expr::binary(op, left.expr, right.expr), ScalarType::Float, nullable));
        }
        if !numeric(left.ty) || !numeric(right.ty) {
            return Err(types::operator_error(op.symbol(), left.ty, right.ty, at));
        }
        if op == BinaryOp::Mod && (left.ty == ScalarType::Float || right.ty == ScalarType::Float) {
            return Err(PlanError::new("operator % is not supported for double: SQLite and PostgreSQL disagree", at)
                .hint("CAST the operands to integer"));
        }
        let ty = types::unify(left.ty, right.ty).unwrap_or(ScalarType::Null);
        // SQLite yields NULL for a division by zero (PostgreSQL raises an error).
        let by_zero = self.dialect == Dialect::Sqlite && matches!(op, BinaryOp::Div | BinaryOp::Mod);
        let nullable = left.nullable || right.nullable || by_zero;
        let narrow = Typed::all_narrow([&left, &right]);
        Ok(Typed::new(Expr::binary(op, left.expr, right.expr), ty, nullable).narrowed(narrow))
    }

    fn in_list(&self, x: &ast::Expr, list: &[ast::Expr], negated: bool, at: Option<Location>, d: usize) -> Lowered {
        let mut needle = self.lower(x, d)?;
        // character(n): compared without trailing blanks, as are the literals.
        let bpchar = needle.bpchar;
        needle = types::strip_bpchar(needle);
        let mut items = Vec::with_capacity(list.len());
        let mut nullable = needle.nullable;
        // SQLite (3.54) compares an IN list under the left operand's
        // collation (explicit or its column's), whatever the items carry.
        let collation = needle.own_collation();
        for item in list {
            let at_item = self.at(item).or(at);
            let item = self.lower(item, d)?;
            let item = if bpchar { types::bpchar_literal(item) } else { item };
            let (n, t) = types::uncollated_operands(needle, item, "=", self.dialect, at_item)?;
            needle = n;
            nullable |= t.nullable;
            items.push(t);
        }
        let needle = types::collation_key(needle, collation);
        let items = items.into_iter().map(|t| types::collation_key(t, collation).expr).collect();
        let e = Typed::new(Expr::InList { expr: Box::new(needle.expr), list: items }, ScalarType::Bool, nullable);
        Ok(if negated { not(e) } else { e })
    }

    fn between(
        &self,
        x: &ast::Expr,
        negated: bool,
        low: &ast::Expr,
        high: &ast::Expr,
        at: Option<Location>,
        d: usize,
    ) -> Lowered {
        let x = self.lower(x, d)?;
        let ge = self.apply_binary(BinaryOp::GtEq, x.clone(), self.lower(low, d)?, at)?;
        let le = self.apply_binary(BinaryOp::LtEq, x, self.lower(high, d)?, at)?;
        let nullable = ge.nullable || le.nullable;
        let e = Typed::new(Expr::binary(BinaryOp::And, ge.expr, le.expr), ScalarType::Bool, nullable);
        Ok(if negated { not(e) } else { e })
    }

    fn like(&self, p: LikeParts<'_>, at: Option<Location>, d: usize) -> Lowered {
        let op = if p.ilike { "ILIKE" } else { "LIKE" };
        if p.any {
            return Err(PlanError::new(format!("{op} ANY is not supported"), at));
        }
        if p.ilike && self.dialect == Dialect::Sqlite {
            return Err(PlanError::new("ILIKE is not supported by SQLite", at)
                .hint("SQLite's LIKE is already case-insensitive for ASCII letters"));
        }
        let (x, pattern) = (self.lower(p.expr, d)?, self.lower(p.pattern, d)?);
        for t in [&x, &pattern] {
            if !matches!(t.ty, ScalarType::Text | ScalarType::Null) {
                return Err(PlanError::new(format!("operator does not exist: {} {op} {}", x.ty, pattern.ty), at)
                    .hint("LIKE compares text; CAST the operand to TEXT"));
            }
        }
        let escape = match p.escape_char {
            None => None,
            Some(e) => Some(self.escape_char(e, at)?),
        };
        let nullable = x.nullable || pattern.nullable;
        let (mut x, mut pattern) = (x.expr, pattern.expr);
        let mut case_insensitive = p.ilike || self.dialect == Dialect::Sqlite;
        // PostgreSQL's ILIKE under a UTF-8 locale is LIKE of lower() of both
        // sides (`Generic_Text_IC_like`); under LC_CTYPE C it folds ASCII.
        if p.ilike && !self.ascii_case_mapping() {
            let lower = |e: Expr| Expr::Call { func: Func::Lower { ascii_only: false }, args: vec![e] };
            (x, pattern, case_insensitive) = (lower(x), lower(pattern), false);
        }
        let like = Expr::Like { expr: Box::new(x), pattern: Box::new(pattern), case_insensitive, escape };
        let e = Typed::new(like, ScalarType::Bool, nullable);
        Ok(if p.negated { not(e) } else { e })
    }

    /// Whether `upper`/`lower`/`initcap`/`ILIKE` map only ASCII letters:
    /// always in SQLite (without ICU), in PostgreSQL under `LC_CTYPE` C.
    pub(crate) fn ascii_case_mapping(&self) -> bool {
        self.dialect == Dialect::Sqlite || self.scope.catalog.is_some_and(Catalog::ascii_case_mapping)
    }

    fn escape_char(&self, e: &ast::Expr, at: Option<Location>) -> Result<char, PlanError> {
        if let ast::Expr::Value(v) = e {
            if let ast::Value::SingleQuotedString(s) = &v.value {
                let mut chars = s.chars();
                if let (Some(c), None) = (chars.next(), chars.next()) {
                    return Ok(c);
                }
            }
        }
        Err(PlanError::new("ESCAPE must be a single character string literal", self.at(e).or(at)))
    }

    fn case(
        &self,
        operand: Option<&ast::Expr>,
        whens: &[ast::CaseWhen],
        otherwise: Option<&ast::Expr>,
        at: Option<Location>,
        d: usize,
    ) -> Lowered {
        let operand = operand.map(|o| self.lower(o, d)).transpose()?;
        let mut conditions = Vec::with_capacity(whens.len());
        let mut results = Vec::with_capacity(whens.len() + 1);
        for w in whens {
            let c = match &operand {
                // `CASE x WHEN v` is `CASE WHEN x = v`.
                Some(x) => {
                    self.apply_binary(BinaryOp::Eq, x.clone(), self.lower(&w.condition, d)?, self.at(&w.condition))?
                }
                None => self.lower_condition(&w.condition, "CASE/WHEN", d)?,
            };
            conditions.push(c.expr);
            results.push(self.lower(&w.result, d)?);
        }
        results.push(match otherwise {
            Some(e) => self.lower(e, d)?,
            None => Typed::null(),
        });
        let (mut results, ty) = types::unify_all(results, "CASE", self.dialect, at)?;
        let nullable = results.iter().any(|r| r.nullable);
        let narrow = Typed::all_narrow(&results);
        let otherwise = results.pop().map(|r| r.expr).unwrap_or(Expr::Literal(Datum::Null));
        let branches = conditions.into_iter().zip(results.into_iter().map(|r| r.expr)).collect();
        Ok(Typed::new(Expr::Case { branches, otherwise: Box::new(otherwise) }, ty, nullable).narrowed(narrow))
    }
}

struct LikeParts<'e> {
    negated: bool,
    any: bool,
    expr: &'e ast::Expr,
    pattern: &'e ast::Expr,
    escape_char: &'e Option<Box<ast::Expr>>,
    ilike: bool,
}

pub(crate) fn is_aggregate(f: &ast::Function) -> bool {
    aggregate_func(f).is_some() || {
        let [ast::ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else { return false };
        crate::func::is_json_aggregate(&name.value.to_ascii_lowercase())
    }
}

/// COUNT, SUM, AVG, MIN or MAX by name (DISTINCT decided by the caller).
pub(crate) fn aggregate_func(f: &ast::Function) -> Option<AggregateFunc> {
    let [ast::ObjectNamePart::Identifier(name)] = f.name.0.as_slice() else { return None };
    let name = name.value.to_ascii_lowercase();
    // SQLite's min(a, b, …) and max(a, b, …) are scalar functions.
    let several = matches!(&f.args, ast::FunctionArguments::List(l) if l.args.len() > 1);
    if several && matches!(name.as_str(), "min" | "max") {
        return None;
    }
    match name.as_str() {
        "count" => Some(AggregateFunc::Count),
        "sum" => Some(AggregateFunc::Sum),
        "avg" => Some(AggregateFunc::Avg),
        "min" => Some(AggregateFunc::Min),
        "max" => Some(AggregateFunc::Max),
        // total(x) is the sum, made a double and 0.0 for no values.
        "total" => Some(AggregateFunc::Sum),
        // PostgreSQL's boolean aggregates: false sorts before true.
        "bool_and" | "every" => Some(AggregateFunc::Min),
        "bool_or" => Some(AggregateFunc::Max),
        "group_concat" | "string_agg" => AggregateOrder::new(&[])
            .map(|order| AggregateFunc::GroupConcat(denorm_expr::ConcatSpec { order, distinct: false })),
        _ => None,
    }
}

fn number(text: &str, dialect: Dialect, at: Option<Location>) -> Lowered {
    // PostgreSQL: a literal with a point or an exponent, or an integer
    // beyond bigint, is numeric.
    let numeric_literal = |text: &str| match denorm_types::numeric::parse(text) {
        Ok(n) => Ok(Typed::new(Expr::Literal(Datum::Numeric(n)), ScalarType::Numeric, false)),
        Err(_) => Err(PlanError::new(format!("numeric literal {text} is out of range"), at).hint(
            "denorm's numeric holds at most 28 digits after the point and 29 before it; \
             write CAST('…' AS double precision) if an approximate value will do",
        )),
    };
    if dialect == Dialect::Postgres && (text.contains(['.', 'e', 'E']) || text.parse::<i64>().is_err()) {
        return numeric_literal(text);
    }
    if text.contains(['.', 'e', 'E']) {
        return match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Typed::new(Expr::Literal(Datum::Float(f)), ScalarType::Float, false)),
            _ => Err(PlanError::new(format!("numeric literal {text} is out of range"), at)),
        };
    }
    match text.parse::<i64>() {
        Ok(i) => {
            // PostgreSQL: an integer literal is an `integer` when its digits
            // fit in 32 bits (`-2147483648` is a minus before a bigint).
            let narrow = text.trim_start_matches('-').parse::<i32>().is_ok();
            Ok(Typed::new(Expr::Literal(Datum::Int(i)), ScalarType::Int, false).narrowed(narrow))
        }
        Err(_) => Err(PlanError::new(format!("integer literal {text} is out of range"), at)
            .hint("integers are 64-bit; write a floating-point literal (with a decimal point) if that is meant")),
    }
}

fn concat(left: Typed, right: Typed, dialect: Dialect, at: Option<Location>) -> Lowered {
    let (left, right) = (types::strip_bpchar(left), types::strip_bpchar(right));
    for t in [&left, &right] {
        match t.ty {
            // SQLite's text of a double is computed exactly (`%!.17g`, as
            // its JSON functions write doubles).
            ScalarType::Float if dialect == Dialect::Postgres => {
                return Err(PlanError::new("operator || is not supported for double", at)
                    .detail("SQLite and PostgreSQL format doubles as text differently")
                    .hint("CAST the operand to integer, or format the number at read time"))
            }
            ScalarType::Bool => {
                return Err(types::operator_error("||", left.ty, right.ty, at));
            }
            _ => {}
        }
    }
    if left.ty != ScalarType::Text && right.ty != ScalarType::Text {
        // PostgreSQL has no `integer || integer`.
        return Err(types::operator_error("||", left.ty, right.ty, at));
    }
    let as_text = |t: Typed| match t.ty {
        ScalarType::Int
        | ScalarType::Numeric
        | ScalarType::Date
        | ScalarType::Timestamp
        | ScalarType::TimestampTz
        | ScalarType::Uuid
        | ScalarType::Float
        | ScalarType::Any => Expr::Cast { expr: Box::new(t.expr), to: ScalarType::Text },
        _ => t.expr,
    };
    let nullable = left.nullable || right.nullable;
    Ok(Typed::new(Expr::binary(BinaryOp::Concat, as_text(left), as_text(right)), ScalarType::Text, nullable))
}

pub(crate) fn not(t: Typed) -> Typed {
    Typed::new(Expr::Not(Box::new(t.expr)), ScalarType::Bool, t.nullable)
}

fn is_null(t: Typed) -> Typed {
    Typed::new(Expr::IsNull(Box::new(t.expr)), ScalarType::Bool, false)
}

/// SQLite lets an explicit COLLATE inside an operator's or a function's
/// operand decide how the whole expression compares; denorm does not
/// follow it there.
pub(crate) fn nested_collate(at: Option<Location>) -> PlanError {
    PlanError::new("COLLATE inside an operand of an operator or a function is not supported", at)
        .hint("write COLLATE on the whole operand of the comparison: (a || b) COLLATE NOCASE = 'x'")
}

/// The error for an expression form denorm does not support.
fn refusal(e: &ast::Expr, at: Option<Location>) -> PlanError {
    use ast::Expr as E;
    match e {
        E::GroupingSets(_) | E::Cube(_) | E::Rollup(_) => {
            PlanError::new("GROUPING SETS, ROLLUP and CUBE are not supported", at).hint("define one view per grouping")
        }
        E::Wildcard(_) | E::QualifiedWildcard(..) => PlanError::new("* is not allowed here", at),
        E::IsTrue(_) | E::IsNotTrue(_) | E::IsFalse(_) | E::IsNotFalse(_) | E::IsUnknown(_) | E::IsNotUnknown(_) => {
            PlanError::new("IS TRUE, IS FALSE and IS UNKNOWN are not supported", at)
                .hint("use = TRUE, COALESCE or IS NULL")
        }
        E::IsDistinctFrom(..) | E::IsNotDistinctFrom(..) => {
            PlanError::new("IS [NOT] DISTINCT FROM is not supported", at).hint("compare with = and IS NULL")
        }
        E::SimilarTo { .. } | E::RLike { .. } => PlanError::new("regular expression matching is not supported", at),
        E::AnyOp { .. } | E::AllOp { .. } => PlanError::new("ANY and ALL are not supported", at).hint("use IN (…)"),
        E::Interval(_) => PlanError::new("interval values are not supported", at)
            .detail("denorm has no interval values")
            .hint("add or subtract a constant interval to a date or timestamp: d + INTERVAL '90 days'"),
        E::AtTimeZone { .. } => PlanError::new("AT TIME ZONE is not supported", at),
        E::Overlay { .. } => {
            PlanError::new("function overlay(…) is not supported", at).hint("build the text with substring(…) and ||")
        }
        E::Ceil { .. } => PlanError::new("function ceil(…) is not supported", at),
        E::Floor { .. } => PlanError::new("function floor(…) is not supported", at),
        E::Tuple(_) => PlanError::new("row constructors are not supported", at),
        _ => PlanError::new("this expression is not supported", at),
    }
}

/// Whether either operand is written as an interval (`INTERVAL '…'`,
/// `'…'::interval`).
fn has_interval(l: &ast::Expr, r: &ast::Expr) -> bool {
    let interval = |mut e: &ast::Expr| {
        while let ast::Expr::Nested(inner) = e {
            e = inner;
        }
        matches!(e, ast::Expr::Interval(_) | ast::Expr::Cast { data_type: ast::DataType::Interval { .. }, .. })
    };
    interval(l) || interval(r)
}

/// A resolved column's value: the column, or a FULL JOIN … USING pair's
/// `COALESCE(left, right)`.
fn column_value(c: &crate::scope::ColumnRef) -> Typed {
    if let Some(t) = &c.merged {
        return t.clone();
    }
    Typed::new(Expr::Column(c.position), c.ty, c.nullable).narrowed(c.narrow).without_affinity(c.no_affinity)
}
