//! Static typing rules shared by every expression form.
//!
//! The planner types every expression before the view exists, so both
//! databases' silent conversions are refused rather than imitated: SQLite
//! compares `'1' = 1` by column affinity and evaluates `'a' + 1` as `1`;
//! PostgreSQL resolves `unknown` literals by context. denorm asks for an
//! explicit CAST instead, which then means the same thing everywhere.

use denorm_expr::{Expr, Func};
use denorm_types::{pgtext, Collation, Datum, Dialect, ScalarType};

use crate::{Location, PlanError};

/// A lowered expression with its static type and whether it may be NULL.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Typed {
    pub expr: Expr,
    pub ty: ScalarType,
    pub nullable: bool,
    /// The SQLite collation the expression carries
    /// (<https://www.sqlite.org/datatype3.html#collation>): a column's
    /// declared one, or one written with `COLLATE` (`explicit`); `None` for
    /// any other expression.
    pub collation: Option<Collation>,
    pub explicit: bool,
    /// The value is already its key under `collation` (a GROUP BY column
    /// grouped under it), so comparing or sorting it needs no other key.
    pub keyed: bool,
    /// PostgreSQL `character(n)`: the value keeps its blank padding (as the
    /// server outputs it) and compares ignoring trailing blanks; read as
    /// text (`||`, text functions, CAST) it loses them ([`strip_bpchar`]).
    pub bpchar: bool,
    /// PostgreSQL: an integer of type `smallint` or `integer` rather than
    /// `bigint` (a source column's, a literal within 32 bits, a CAST, or
    /// arithmetic over such). `SUM` of it is `bigint`; `SUM` of any other
    /// integer is `numeric`, as PostgreSQL types them. For a JSON value: a
    /// `jsonb` one (a source column's, or what `->`/`#>` take from one),
    /// whose bare scalars `->` reads as one-element arrays.
    pub narrow: bool,
    /// SQLite: a column that has no type affinity although it is read as
    /// a column — a subquery's computed column, an aggregate's or a window
    /// function's result — so [`has_affinity`] does not convert the other
    /// operand of a comparison by it (datatype3.html §3.2: only a column
    /// reference or a CAST has an affinity, and a subquery's column takes
    /// its expression's).
    pub no_affinity: bool,
}

impl Typed {
    pub fn new(expr: Expr, ty: ScalarType, nullable: bool) -> Self {
        Typed {
            expr,
            ty,
            nullable,
            collation: None,
            explicit: false,
            keyed: false,
            bpchar: false,
            narrow: false,
            no_affinity: false,
        }
    }

    /// The same expression carrying `collation`.
    pub fn collated(self, collation: Option<Collation>, explicit: bool) -> Self {
        Typed { collation, explicit, ..self }
    }

    /// The collation that GROUP BY, DISTINCT, ORDER BY and set operations
    /// use for this expression (BINARY when it carries none).
    pub fn own_collation(&self) -> Collation {
        self.collation.unwrap_or_default()
    }

    /// The same expression marked as a PostgreSQL `smallint`/`integer`
    /// (see [`Typed::narrow`]) when `narrow` and it is an integer.
    pub fn narrowed(self, narrow: bool) -> Self {
        let narrow = narrow && matches!(self.ty, ScalarType::Int | ScalarType::Json);
        Typed { narrow, ..self }
    }

    /// Whether every one of `items` that is an integer is narrow (see
    /// [`Typed::narrow`]): PostgreSQL's type for arithmetic, CASE and
    /// COALESCE over them (a NULL takes the other operands' type).
    pub fn all_narrow<'t>(items: impl IntoIterator<Item = &'t Typed>) -> bool {
        items.into_iter().all(|t| t.narrow || t.ty == ScalarType::Null)
    }

    /// The same value marked as having no SQLite affinity (see
    /// [`Typed::no_affinity`]).
    pub fn without_affinity(self, no_affinity: bool) -> Self {
        Typed { no_affinity, ..self }
    }

    pub fn null() -> Self {
        Typed::new(Expr::Literal(Datum::Null), ScalarType::Null, true)
    }
}

/// SQLite has no boolean type: a comparison is the integer 0 or 1 wherever a
/// number is expected (`SUM(x > 0)`, `(a < b) + 1`). Elsewhere unchanged.
pub(crate) fn bool_as_int(t: Typed, dialect: Dialect) -> Typed {
    if dialect == Dialect::Sqlite && t.ty == ScalarType::Bool {
        let expr = Expr::Cast { expr: Box::new(t.expr), to: ScalarType::Int };
        return Typed::new(expr, ScalarType::Int, t.nullable);
    }
    t
}

/// The common type of two branches (CASE, COALESCE): NULL joins anything,
/// an integer joins a double as a double (values are not cast: integers stay
/// integers, as in SQLite).
pub(crate) fn unify(a: ScalarType, b: ScalarType) -> Option<ScalarType> {
    use ScalarType::*;
    match (a, b) {
        (Null, t) | (t, Null) => Some(t),
        (x, y) if x == y => Some(x),
        // A SQLite column without affinity meets anything: values keep their
        // storage class.
        (Any, _) | (_, Any) => Some(Any),
        (Int, Float) | (Float, Int) => Some(Float),
        // PostgreSQL: integer and numeric meet as numeric, numeric and
        // double precision as double precision.
        (Int, Numeric) | (Numeric, Int) => Some(Numeric),
        (Float, Numeric) | (Numeric, Float) => Some(Float),
        _ => None,
    }
}

/// Whether a value of the type has a text form PostgreSQL reads a string
/// literal as (`d >= '2024-01-01'`: the literal is `unknown`, resolved to
/// the other side's type).
fn takes_string_literal(ty: ScalarType) -> bool {
    use ScalarType::*;
    matches!(ty, Numeric | Date | Timestamp | TimestampTz | Uuid | Interval)
}

/// A string literal read as a value of `to`, as PostgreSQL resolves an
/// `unknown` literal by context; other expressions unchanged.
pub(crate) fn coerce_literal(t: Typed, to: ScalarType, at: Option<Location>) -> Result<Typed, PlanError> {
    if t.ty != ScalarType::Text || !takes_string_literal(to) {
        return Ok(t);
    }
    let Expr::Literal(Datum::Text(text)) = &t.expr else { return Ok(t) };
    match pgtext::parse(to, text) {
        Some(Ok(v)) => Ok(Typed::new(Expr::Literal(v), to, false)),
        Some(Err(e)) => Err(PlanError::new(format!("{e}: \"{text}\""), at).hint(match to {
            ScalarType::Numeric => "write a number with at most 28 digits after the point and 29 before it",
            ScalarType::Uuid => "write 32 hexadecimal digits, e.g. 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            _ => "write an ISO 8601 date or time, e.g. '2024-05-01' or '2024-05-01 12:00:00+00', or 'infinity'",
        })),
        None => Ok(t),
    }
}

/// PostgreSQL's typed literal `DATE '2024-05-01'` (`TIMESTAMP '…'`,
/// `NUMERIC '1.5'`, `INTEGER '3'`, …): the text read as a value of the type
/// at plan time, as the server reads it. SQLite has no such syntax.
pub(crate) fn typed_literal(
    literal: &sqlparser::ast::TypedString,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<Typed, PlanError> {
    if dialect == Dialect::Sqlite {
        return Err(PlanError::new(format!("SQLite has no typed literals such as {literal}"), at)
            .hint("write the text alone, e.g. '2024-05-01': SQLite keeps dates as text"));
    }
    let target = crate::func::cast_target(&literal.data_type, dialect).map_err(|e| PlanError { location: at, ..e })?;
    let Some(text) = literal.value.value.clone().into_string() else {
        return Err(PlanError::new(format!("{literal} is not a typed string literal"), at));
    };
    let text = Typed::new(Expr::Literal(Datum::Text(text.into())), ScalarType::Text, false);
    match target.ty {
        ScalarType::Text => Ok(text),
        ty if takes_string_literal(ty) => coerce_literal(text, ty, at),
        ty => Ok(Typed::new(Expr::Cast { expr: Box::new(text.expr), to: ty }, ty, false).narrowed(target.narrow())),
    }
}

/// Casts `t` to `to` when it is an integer or numeric meeting a numeric or
/// double precision type (PostgreSQL's implicit casts); others unchanged.
pub(crate) fn widen(t: Typed, to: ScalarType) -> Typed {
    use ScalarType::*;
    match (t.ty, to) {
        (Int, Numeric) | (Numeric, Float) => Typed::new(Expr::Cast { expr: Box::new(t.expr), to }, to, t.nullable),
        _ => t,
    }
}

/// Whether `=`/`<` may compare the two types: both numeric, both text or
/// both boolean; NULL, and a SQLite column without affinity (compared by
/// storage class then value, as SQLite compares values with no affinity),
/// with anything.
pub(crate) fn comparable(a: ScalarType, b: ScalarType) -> bool {
    use ScalarType::*;
    matches!((a, b), (Null, _) | (_, Null) | (Text, Text) | (Bool, Bool) | (Any, _) | (_, Any))
        || (a.is_numeric() && b.is_numeric())
        || (a == b && matches!(a, Date | Timestamp | TimestampTz | Uuid | Interval))
}

/// Checks and coerces both sides of a comparison (SQLite: booleans compare
/// as integers with numbers).
pub(crate) fn comparison_operands(
    left: Typed,
    right: Typed,
    symbol: &str,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Typed, Typed), PlanError> {
    let c = comparison_collation(&left, &right);
    let (left, right) = uncollated_operands(left, right, symbol, dialect, at)?;
    Ok((collation_key(left, c), collation_key(right, c)))
}

/// [`comparison_operands`] without the collation keys.
pub(crate) fn uncollated_operands(
    left: Typed,
    right: Typed,
    symbol: &str,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Typed, Typed), PlanError> {
    let (left, right) = if dialect == Dialect::Sqlite && (left.ty == ScalarType::Bool) != (right.ty == ScalarType::Bool)
    {
        (bool_as_int(left, dialect), bool_as_int(right, dialect))
    } else {
        (left, right)
    };
    let (left, right) = bpchar_operands(left, right);
    let left = coerce_literal(left, right.ty, at)?;
    let right = coerce_literal(right, left.ty, at)?;
    for (untyped, typed) in [(&left, &right), (&right, &left)] {
        if untyped.ty == ScalarType::Any && has_affinity(typed) {
            return Err(affinity_error(symbol, typed.ty, at));
        }
    }
    if comparable(left.ty, right.ty) {
        return Ok((left, right));
    }
    if dialect == Dialect::Sqlite {
        if let Some((left, right)) = number_text_operands(&left, &right, false) {
            return Ok((left, right));
        }
    }
    Err(operator_error(symbol, left.ty, right.ty, at))
}

/// SQLite's conversions before comparing a number with text
/// (datatype3.html §4.2): when the numeric operand is a column (or a CAST)
/// of INTEGER/REAL affinity, NUMERIC affinity is applied to the text
/// operand (`'1'`, `' 1'`, `'1.0'` become numbers, `'1x'` stays text); when
/// instead the text operand is a column of TEXT affinity, TEXT affinity is
/// applied to the number (`CAST(n AS TEXT)`). `None` when neither operand
/// has an affinity: SQLite then converts nothing, so a number never equals
/// a text — denorm refuses that comparison as a type mismatch. With `key`
/// (a join key, compared bytewise), both sides of the first case are read
/// as [`Func::NumericAffinity`](denorm_expr::Func::NumericAffinity) keys,
/// so `1`, `1.0` and `'1'` are one key.
pub(crate) fn number_text_operands(left: &Typed, right: &Typed, key: bool) -> Option<(Typed, Typed)> {
    use ScalarType::{Float, Int, Text};
    let numeric = |t: &Typed| matches!(t.ty, Int | Float);
    let numeric_affinity = |t: &Typed, key: bool| {
        let func = denorm_expr::Func::NumericAffinity { key };
        Typed::new(Expr::Call { func, args: vec![t.expr.clone()] }, ScalarType::Any, t.nullable)
    };
    let text_affinity =
        |t: &Typed| Typed::new(Expr::Cast { expr: Box::new(t.expr.clone()), to: Text }, Text, t.nullable);
    let convert = |number: &Typed, text: &Typed| -> Option<(Typed, Typed)> {
        if has_affinity(number) {
            let number = if key { numeric_affinity(number, true) } else { number.clone() };
            Some((number, numeric_affinity(text, key)))
        } else if has_affinity(text) {
            Some((text_affinity(number), text.clone()))
        } else {
            None
        }
    };
    if numeric(left) && right.ty == Text {
        convert(left, right)
    } else if left.ty == Text && numeric(right) {
        convert(right, left).map(|(number, text)| (text, number))
    } else {
        None
    }
}

/// A `character(n)` value read as text, as PostgreSQL casts it: trailing
/// blanks dropped (`rtrim(x, ' ')`); other values unchanged.
pub(crate) fn strip_bpchar(t: Typed) -> Typed {
    if !t.bpchar {
        return t;
    }
    let args = vec![t.expr, Expr::Literal(Datum::text(" ").into_owned())];
    Typed::new(Expr::Call { func: denorm_expr::Func::Trim(denorm_expr::TrimSide::Trailing), args }, t.ty, t.nullable)
}

/// The operands of a comparison with a `character(n)` side, as PostgreSQL
/// compares them: trailing blanks are insignificant, so a `character(n)`
/// side and a string literal beside it (read as `character`) are compared
/// without them; any other text beside it is compared as it is (PostgreSQL
/// compares `bpchar` with `text` as text, the `bpchar` side cast).
fn bpchar_operands(left: Typed, right: Typed) -> (Typed, Typed) {
    if !left.bpchar && !right.bpchar {
        return (left, right);
    }
    let (left, right) = (strip_bpchar(left), strip_bpchar(right));
    (bpchar_literal(left), bpchar_literal(right))
}

/// A string literal compared with `character(n)`, which PostgreSQL reads as
/// `character`: without its trailing blanks. Other expressions unchanged.
pub(crate) fn bpchar_literal(t: Typed) -> Typed {
    match &t.expr {
        Expr::Literal(Datum::Text(s)) if t.ty == ScalarType::Text => {
            Typed::new(Expr::Literal(Datum::owned_text(s.trim_end_matches(' '))), t.ty, t.nullable)
        }
        _ => t,
    }
}

/// Whether SQLite gives the operand a type affinity that it then applies to
/// an operand without one: a column of a table, or of a subquery whose
/// expression is one, or a CAST — not an aggregate's, a window function's
/// or a subquery's computed column ([`Typed::no_affinity`]).
pub(crate) fn has_affinity(t: &Typed) -> bool {
    matches!(t.ty, ScalarType::Int | ScalarType::Float | ScalarType::Text)
        && matches!(t.expr, Expr::Column(_) | Expr::Cast { .. })
        && !t.no_affinity
}

/// SQLite compares a value without affinity with a typed column after
/// converting it by the column's affinity (`'12'` equals the INTEGER 12,
/// `12` equals the TEXT '12'); denorm refuses rather than compare
/// differently.
fn affinity_error(symbol: &str, ty: ScalarType, at: Option<Location>) -> PlanError {
    PlanError::new(format!("operator {symbol} between a column without type affinity and a column of type {ty}"), at)
        .detail(
            "SQLite first converts the untyped value by the other column's affinity, which denorm does not reproduce",
        )
        .hint("CAST the untyped column to the other side's type, or compare it with a literal")
}

/// The collation SQLite compares two operands with: an explicit `COLLATE`
/// on either (the left first), else the left operand's column collation,
/// else the right's, else BINARY.
pub(crate) fn comparison_collation(left: &Typed, right: &Typed) -> Collation {
    let explicit = |t: &Typed| t.collation.filter(|_| t.explicit);
    explicit(left).or(explicit(right)).or(left.collation).or(right.collation).unwrap_or_default()
}

/// `t` replaced by its collation key under `c` when `c` is not BINARY and
/// `t` is text (the key compares bytewise as `t` compares under `c`); the
/// key carries no collation (it compares bytewise, even where `t` carried
/// another collation and `c` is BINARY).
pub(crate) fn collation_key(t: Typed, c: Collation) -> Typed {
    if c == Collation::Binary || t.ty != ScalarType::Text || (t.keyed && t.collation == Some(c)) {
        // A character(n) value is its own key (padded alike within a column).
        return Typed { bpchar: t.bpchar, no_affinity: t.no_affinity, ..Typed::new(t.expr, t.ty, t.nullable) };
    }
    let expr = match t.expr {
        Expr::Literal(Datum::Text(s)) => Expr::Literal(Datum::Text(c.key(&s).into_owned().into())),
        e => Expr::Call { func: Func::CollationKey(c), args: vec![e] },
    };
    Typed::new(expr, t.ty, t.nullable)
}

pub(crate) fn operator_error(symbol: &str, left: ScalarType, right: ScalarType, at: Option<Location>) -> PlanError {
    let error = PlanError::new(format!("operator does not exist: {left} {symbol} {right}"), at)
        .hint("CAST one side explicitly, e.g. CAST(x AS INTEGER)");
    if left == right {
        return error;
    }
    error.detail(format!("a type mismatch: the left operand is {left}, the right one {right}"))
}

/// A condition (WHERE, HAVING, ON, CASE WHEN, AND/OR/NOT operands). In
/// SQLite a number is true when non-zero, and so is text whose numeric
/// prefix is (an INTEGER column may hold '12x'): the value is kept as it is
/// and read as a truth value by whatever consumes the condition (`flags <> 0`
/// would call 'abc' true); PostgreSQL requires a boolean.
pub(crate) fn condition(t: Typed, context: &str, dialect: Dialect, at: Option<Location>) -> Result<Typed, PlanError> {
    match t.ty {
        ScalarType::Bool | ScalarType::Null => Ok(t),
        ty if (ty.is_numeric() || ty == ScalarType::Any) && dialect == Dialect::Sqlite => {
            Ok(Typed::new(t.expr, ScalarType::Bool, t.nullable))
        }
        ty => Err(PlanError::new(format!("argument of {context} must be type boolean, not type {ty}"), at)),
    }
}

/// Unifies the types of several branches; in SQLite booleans among numbers
/// become integers first.
pub(crate) fn unify_all(
    mut items: Vec<Typed>,
    construct: &str,
    dialect: Dialect,
    at: Option<Location>,
) -> Result<(Vec<Typed>, ScalarType), PlanError> {
    if dialect == Dialect::Sqlite && items.iter().any(|t| t.ty.is_numeric()) {
        items = items.into_iter().map(|t| bool_as_int(t, dialect)).collect();
    }
    let is_string_literal = |t: &Typed| matches!(t.expr, Expr::Literal(Datum::Text(_)));
    if let Some(typed) = items.iter().map(|t| t.ty).find(|&ty| takes_string_literal(ty)) {
        if items.iter().all(|t| !matches!(t.ty, ScalarType::Text) || is_string_literal(t)) {
            items = items.into_iter().map(|t| coerce_literal(t, typed, at)).collect::<Result<_, _>>()?;
        }
    }
    let mut ty = ScalarType::Null;
    for t in &items {
        ty = unify(ty, t.ty).ok_or_else(|| {
            PlanError::new(format!("{construct} types {ty} and {} cannot be matched", t.ty), at)
                .hint("CAST the branches to a common type")
        })?;
    }
    if matches!(ty, ScalarType::Numeric | ScalarType::Float) {
        items = items.into_iter().map(|t| widen(t, ty)).collect();
    }
    Ok((items, ty))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ScalarType::*;

    #[test]
    fn unification_table() {
        let cases = [
            (Int, Int, Some(Int)),
            (Int, Float, Some(Float)),
            (Null, Text, Some(Text)),
            (Text, Int, None),
            (Bool, Int, None),
            (Bool, Null, Some(Bool)),
        ];
        for (a, b, want) in cases {
            assert_eq!(unify(a, b), want, "{a} {b}");
            assert_eq!(unify(b, a), want, "{b} {a}");
        }
    }

    #[test]
    fn comparability_table() {
        assert!(comparable(Int, Float));
        assert!(comparable(Text, Null));
        assert!(!comparable(Text, Int));
        assert!(!comparable(Bool, Int));
    }

    /// SQLite converts an untyped value by a typed column's affinity before
    /// comparing ('12' = an INTEGER 12 column is true): refused, not
    /// compared differently; a literal or an expression has no affinity.
    #[test]
    fn untyped_columns_compare_with_literals_not_typed_columns() {
        let untyped = Typed::new(Expr::Column(0), Any, true);
        let column = Typed::new(Expr::Column(1), Int, true);
        let literal = Typed::new(Expr::Literal(Datum::Int(12)), Int, false);
        let e = comparison_operands(untyped.clone(), column, "=", Dialect::Sqlite, None).unwrap_err();
        assert_eq!(e.message, "operator = between a column without type affinity and a column of type integer");
        assert!(comparison_operands(untyped.clone(), literal, "=", Dialect::Sqlite, None).is_ok());
        let cast = Typed::new(Expr::Cast { expr: Box::new(Expr::Column(2)), to: Text }, Text, true);
        assert!(comparison_operands(cast, untyped, "<", Dialect::Sqlite, None).is_err());
    }

    #[test]
    fn sqlite_numbers_are_conditions() {
        let t = Typed::new(Expr::Column(0), Int, false);
        let c = condition(t.clone(), "WHERE", Dialect::Sqlite, None).unwrap();
        // Read as a truth value where it is consumed: `<> 0` would call the
        // text 'abc' (which an INTEGER column may hold) true.
        assert_eq!((c.expr.to_string().as_str(), c.ty), ("#0", Bool));
        let e = condition(t, "WHERE", Dialect::Postgres, None).unwrap_err();
        assert_eq!(e.message, "argument of WHERE must be type boolean, not type integer");
    }
}
