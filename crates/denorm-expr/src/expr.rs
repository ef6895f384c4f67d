//! Scalar expressions over one row's columns.

use std::fmt;

use denorm_types::{Collation, ScalarType, Value};

pub use crate::json_path::JsonAccess;

/// A scalar expression. Column references are positions in the input row of
/// the plan node that evaluates the expression. The planner has already
/// type-checked it and lowered sugar (`BETWEEN`, `CASE x WHEN`, `NOT IN`, …)
/// into these forms.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Column(usize),
    Literal(Value),
    /// Three-valued NOT: NULL stays NULL.
    Not(Box<Expr>),
    /// Arithmetic negation.
    Negate(Box<Expr>),
    /// `expr IS NULL` (never NULL itself). `IS NOT NULL` is `Not(IsNull)`.
    IsNull(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `expr LIKE pattern` with `%` and `_` wildcards. `case_insensitive` is
    /// SQLite's default (ASCII letters only); PostgreSQL's LIKE is
    /// case-sensitive.
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        case_insensitive: bool,
        escape: Option<char>,
    },
    /// `expr IN (list)` with SQL's three-valued result: TRUE if some element
    /// equals, else NULL if `expr` or some element is NULL, else FALSE.
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
    },
    /// Searched CASE: the first branch whose condition is TRUE; else `otherwise`.
    Case {
        branches: Vec<(Expr, Expr)>,
        otherwise: Box<Expr>,
    },
    /// The first non-NULL argument.
    Coalesce(Vec<Expr>),
    /// NULL when both sides are equal, else the first.
    NullIf(Box<Expr>, Box<Expr>),
    Call {
        func: Func,
        args: Vec<Expr>,
    },
    Cast {
        expr: Box<Expr>,
        to: ScalarType,
    },
    /// Several values that travel together: the inputs of an aggregate that
    /// reads more than one (`json_group_array`'s element and ORDER BY keys,
    /// `json_group_object`'s key and value). The `Reduce` evaluates the items
    /// one by one; the planner never uses a list as a scalar, and evaluated
    /// as one it is its first item.
    List(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

/// Scalar functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Abs,
    /// `ascii_only` is SQLite's LOWER/UPPER without ICU, and PostgreSQL's
    /// under `LC_CTYPE` C; otherwise PostgreSQL's under a UTF-8 locale,
    /// every letter mapped to one letter (`towupper`/`towlower`, see
    /// [`crate::pg::upper_char`]).
    Lower {
        ascii_only: bool,
    },
    Upper {
        ascii_only: bool,
    },
    /// Length of text in characters.
    Length,
    /// `json_array(v, …)` (PostgreSQL `json_build_array`): never NULL; NULL
    /// arguments become `null`. Bit i of `raw` marks argument i as JSON,
    /// embedded as it is rather than as a string (arguments past 63 are never
    /// JSON: the planner refuses such calls).
    JsonArray {
        raw: u64,
    },
    /// `json_object(k, v, …)` (PostgreSQL `json_build_object`): keys are
    /// text and must not be NULL; bit i of `raw` marks argument i (a value)
    /// as JSON.
    JsonObject {
        raw: u64,
    },
    /// SQLite `substr(x, start[, length])` (also `substring`): characters,
    /// 1-based; a negative start counts from the end, a negative length takes
    /// the characters before the start.
    Substr,
    /// SQLite `trim`/`ltrim`/`rtrim(x[, characters])` (default: spaces).
    Trim(TrimSide),
    /// SQLite `replace(x, from, to)`; an empty `from` returns `x` unchanged.
    Replace,
    /// SQLite `instr(x, y)`: the 1-based character position of the first
    /// `y` in `x`, 0 when absent.
    Instr,
    /// SQLite `round(x[, digits])`: always a double.
    Round,
    /// SQLite `sign(x)`: -1, 0 or 1; NULL for what is not a number.
    Sign,
    /// SQLite scalar `min(a, b, …)`/`max(…)`: NULL if any argument is.
    Min,
    Max,
    /// SQLite `typeof(x)`: the storage class of the value.
    Typeof,
    /// SQLite `hex(x)`: upper-case hex of the value's text (UTF-8 bytes).
    Hex,
    /// SQLite `quote(x)`: the value as an SQL literal.
    Quote,
    /// SQLite `unicode(x)`: the code point of the first character.
    Unicode,
    /// SQLite `char(c, …)`: text of the code points.
    Char,
    /// SQLite `printf(format, …)` (also `format`).
    Printf,
    /// SQLite's date and time functions.
    Date(DateFunc),
    /// PostgreSQL `substring(s from start for count)` (also `substr`).
    PgSubstring,
    /// PostgreSQL `strpos(s, sub)` / `position(sub in s)`.
    Strpos,
    /// PostgreSQL `split_part(s, delimiter, n)`.
    SplitPart,
    /// PostgreSQL `concat(…)`: NULLs skipped, never NULL.
    Concat,
    /// PostgreSQL `concat_ws(separator, …)`.
    ConcatWs,
    /// PostgreSQL `left(s, n)` / `right(s, n)`.
    Left,
    Right,
    /// PostgreSQL `round(x)` (double: half to even; numeric: half away from
    /// zero) and `round(numeric, places)`.
    PgRound,
    /// PostgreSQL `make_date(y, m, d)`.
    MakeDate,
    /// PostgreSQL `reverse(s)`, `repeat(s, n)`, `lpad`/`rpad(s, n[, fill])`,
    /// `initcap(s)`, `starts_with(s, prefix)`.
    Reverse,
    Repeat,
    Lpad,
    Rpad,
    /// PostgreSQL's `initcap`; `ascii_only` under `LC_CTYPE` C.
    Initcap {
        ascii_only: bool,
    },
    StartsWith,
    /// `octet_length(x)`: bytes of the value's text (both dialects).
    OctetLength,
    /// SQLite `json_extract(j, path)`, `j -> path`, `j ->> path`.
    JsonAccess(JsonAccess),
    /// PostgreSQL `date_trunc('field', timestamp)`.
    DateTrunc(DateField),
    /// PostgreSQL `extract(field from date|timestamp)`: numeric.
    Extract(DateField),
    /// PostgreSQL `date_part('field', timestamp)`: double precision.
    DatePart(DateField),
    /// PostgreSQL `to_char(timestamp, format)` (see `to_char.rs`).
    ToChar,
    /// PostgreSQL `date + integer` (`date - integer` negates the integer
    /// first): a date.
    DatePlusDays,
    /// PostgreSQL `date - date`: the days between, an integer.
    DateMinusDate,
    /// PostgreSQL `date|timestamp + interval` with a constant interval
    /// (`- interval` negates it first): months first (the day clamped to
    /// the month's last), then days, then microseconds; a timestamp.
    PlusInterval(Interval),
    /// PostgreSQL `timestamp - timestamp` (also `timestamptz -
    /// timestamptz`, a date read as a timestamp): an interval of days and
    /// time (`timestamp_mi`).
    TimestampMinus,
    /// PostgreSQL `age(timestamp, timestamp)`: an interval of years, months,
    /// days and time (`timestamp_age`).
    Age,
    /// PostgreSQL `date|timestamp + interval` with an interval value (a
    /// constant interval is [`Func::PlusInterval`]); `- interval` negates it
    /// first.
    TimestampPlusInterval,
    /// PostgreSQL `interval + interval`.
    IntervalPlus,
    /// PostgreSQL `interval - interval`.
    IntervalMinus,
    /// PostgreSQL `- interval`.
    IntervalNegate,
    /// PostgreSQL `interval * number` (`interval_mul`; the number as a double).
    IntervalMul,
    /// PostgreSQL `interval / number` (`interval_div`).
    IntervalDiv,
    /// PostgreSQL `justify_hours(interval)`.
    JustifyHours,
    /// PostgreSQL `justify_days(interval)`.
    JustifyDays,
    /// PostgreSQL `justify_interval(interval)`.
    JustifyInterval,
    /// The collation key of a text ([`Collation::key`]); other values
    /// unchanged. The planner compares, groups and deduplicates text under a
    /// SQLite collation by comparing these keys bytewise, so the core stays
    /// collation-agnostic.
    CollationKey(Collation),
    /// SQLite's NUMERIC affinity applied to a comparison operand
    /// (`applyNumericAffinity`, datatype3.html §4.2): text that reads
    /// wholly as a number (spaces around allowed) becomes that integer or
    /// double; other values unchanged. With `key`, a double that is an
    /// integer in range becomes that integer too, so that values SQLite
    /// finds equal (`1 = 1.0`) are one join key, compared bytewise.
    NumericAffinity {
        key: bool,
    },
    /// What MIN (`max` false) or MAX of text under a SQLite collation
    /// compares: the key, then the value, so the extreme is a row's value
    /// (the least of those tied under the collation; see `extreme.rs`).
    ExtremeKey {
        collation: Collation,
        max: bool,
    },
    /// The value an [`Func::ExtremeKey`] of the same `max` encodes.
    ExtremeValue {
        max: bool,
    },
    /// PostgreSQL `greatest(…)` / `least(…)` over arguments of one type
    /// (the planner casts them): NULLs ignored, NULL when all are; the
    /// first of equal values.
    Greatest,
    Least,
}

pub use denorm_types::interval::Interval;

/// A field of PostgreSQL's `extract`, `date_part` and `date_trunc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateField {
    Microseconds,
    Milliseconds,
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    Decade,
    Century,
    Millennium,
    Dow,
    Isodow,
    Doy,
    Isoyear,
    Epoch,
}

impl DateField {
    /// The field named `name` (PostgreSQL's spellings, any case).
    pub fn parse(name: &str) -> Option<DateField> {
        use DateField::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "microsecond" | "microseconds" | "us" => Microseconds,
            "millisecond" | "milliseconds" | "ms" => Milliseconds,
            "second" | "seconds" | "sec" | "secs" => Second,
            "minute" | "minutes" | "min" | "mins" => Minute,
            "hour" | "hours" | "h" => Hour,
            "day" | "days" | "d" => Day,
            "week" | "weeks" | "w" => Week,
            "month" | "months" | "mon" | "mons" => Month,
            "quarter" | "qtr" => Quarter,
            "year" | "years" | "y" | "yr" | "yrs" => Year,
            "decade" | "decades" => Decade,
            "century" | "centuries" => Century,
            "millennium" | "millennia" => Millennium,
            "dow" => Dow,
            "isodow" => Isodow,
            "doy" => Doy,
            "isoyear" => Isoyear,
            "epoch" => Epoch,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use DateField::*;
        match self {
            Microseconds => "microseconds",
            Milliseconds => "milliseconds",
            Second => "second",
            Minute => "minute",
            Hour => "hour",
            Day => "day",
            Week => "week",
            Month => "month",
            Quarter => "quarter",
            Year => "year",
            Decade => "decade",
            Century => "century",
            Millennium => "millennium",
            Dow => "dow",
            Isodow => "isodow",
            Doy => "doy",
            Isoyear => "isoyear",
            Epoch => "epoch",
        }
    }

    /// Whether `extract` takes the field from a date (the time fields no).
    pub fn of_date(self) -> bool {
        !matches!(
            self,
            DateField::Microseconds | DateField::Milliseconds | DateField::Second | DateField::Minute | DateField::Hour
        )
    }

    /// Whether `date_trunc` takes the field.
    pub fn truncates(self) -> bool {
        !matches!(self, DateField::Dow | DateField::Isodow | DateField::Doy | DateField::Isoyear | DateField::Epoch)
    }
}

/// Which side(s) [`Func::Trim`] trims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrimSide {
    Both,
    Leading,
    Trailing,
}

/// SQLite's date and time functions: `f(time value, modifier, …)`;
/// `strftime(format, time value, modifier, …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateFunc {
    Date,
    Time,
    DateTime,
    JulianDay,
    UnixEpoch,
    Strftime,
}

impl Func {
    pub fn name(self) -> &'static str {
        match self {
            Func::Abs => "abs",
            Func::Lower { .. } => "lower",
            Func::Upper { .. } => "upper",
            Func::Length => "length",
            Func::JsonArray { .. } => "json_array",
            Func::JsonObject { .. } => "json_object",
            Func::Substr => "substr",
            Func::Trim(TrimSide::Both) => "trim",
            Func::Trim(TrimSide::Leading) => "ltrim",
            Func::Trim(TrimSide::Trailing) => "rtrim",
            Func::Replace => "replace",
            Func::Instr => "instr",
            Func::Round => "round",
            Func::Sign => "sign",
            Func::Min => "min",
            Func::Max => "max",
            Func::Greatest => "greatest",
            Func::Least => "least",
            Func::Typeof => "typeof",
            Func::Hex => "hex",
            Func::Quote => "quote",
            Func::Unicode => "unicode",
            Func::Char => "char",
            Func::Printf => "printf",
            Func::Date(DateFunc::Date) => "date",
            Func::Date(DateFunc::Time) => "time",
            Func::Date(DateFunc::DateTime) => "datetime",
            Func::Date(DateFunc::JulianDay) => "julianday",
            Func::Date(DateFunc::UnixEpoch) => "unixepoch",
            Func::Date(DateFunc::Strftime) => "strftime",
            Func::PgSubstring => "substring",
            Func::Strpos => "strpos",
            Func::SplitPart => "split_part",
            Func::Concat => "concat",
            Func::ConcatWs => "concat_ws",
            Func::Left => "left",
            Func::Right => "right",
            Func::PgRound => "round",
            Func::MakeDate => "make_date",
            Func::Reverse => "reverse",
            Func::Repeat => "repeat",
            Func::Lpad => "lpad",
            Func::Rpad => "rpad",
            Func::Initcap { .. } => "initcap",
            Func::StartsWith => "starts_with",
            Func::OctetLength => "octet_length",
            Func::JsonAccess(JsonAccess::Extract) => "json_extract",
            Func::JsonAccess(JsonAccess::Json | JsonAccess::PgJson | JsonAccess::PgJsonbJson) => "->",
            Func::JsonAccess(JsonAccess::Value | JsonAccess::PgText | JsonAccess::PgJsonbText) => "->>",
            Func::JsonAccess(JsonAccess::PgPathJson) => "#>",
            Func::JsonAccess(JsonAccess::PgPathText) => "#>>",
            Func::DateTrunc(_) => "date_trunc",
            Func::Extract(_) => "extract",
            Func::DatePart(_) => "date_part",
            Func::ToChar => "to_char",
            Func::DatePlusDays => "date_pli",
            Func::DateMinusDate => "date_mi",
            Func::PlusInterval(_) => "timestamp_pl_interval",
            Func::TimestampMinus => "timestamp_mi",
            Func::Age => "age",
            Func::TimestampPlusInterval => "timestamp_pl_interval",
            Func::IntervalPlus => "interval_pl",
            Func::IntervalMinus => "interval_mi",
            Func::IntervalNegate => "interval_um",
            Func::IntervalMul => "interval_mul",
            Func::IntervalDiv => "interval_div",
            Func::JustifyHours => "justify_hours",
            Func::JustifyDays => "justify_days",
            Func::JustifyInterval => "justify_interval",
            Func::NumericAffinity { key: false } => "numeric_affinity",
            Func::NumericAffinity { key: true } => "numeric_key",
            Func::CollationKey(Collation::Binary) => "collation_key_binary",
            Func::CollationKey(Collation::NoCase) => "collation_key_nocase",
            Func::CollationKey(Collation::Rtrim) => "collation_key_rtrim",
            Func::ExtremeKey { max: false, .. } => "min_key",
            Func::ExtremeKey { max: true, .. } => "max_key",
            Func::ExtremeValue { max: false } => "min_value",
            Func::ExtremeValue { max: true } => "max_value",
        }
    }
}

impl Expr {
    pub fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
        Expr::Binary { op, left: Box::new(left), right: Box::new(right) }
    }

    /// Calls `f` on every column this expression reads.
    pub fn visit_columns(&self, f: &mut impl FnMut(usize)) {
        self.visit(&mut |e| {
            if let Expr::Column(c) = e {
                f(*c)
            }
        });
    }

    /// The columns this expression reads, sorted and deduplicated.
    pub fn columns(&self) -> Vec<usize> {
        let mut out = Vec::new();
        self.visit_columns(&mut |c| out.push(c));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// This expression read over a Map's output, rewritten over the Map's
    /// input: each column reference `#i` replaced by `exprs[i]`. `None`
    /// when it reads a column past `exprs`.
    pub fn substitute(&self, exprs: &[Expr]) -> Option<Expr> {
        // Substituted columns are moved out of the way while the walk goes
        // on into the expressions put in, then moved back.
        const MOVED: usize = usize::MAX / 2;
        if self.columns().iter().any(|&c| c >= exprs.len()) {
            return None;
        }
        let mut out = self.clone();
        out.visit_mut(&mut |e| {
            if let Expr::Column(c) = e {
                if *c < MOVED {
                    let mut put = exprs[*c].clone();
                    put.remap_columns(&|i| i + MOVED);
                    *e = put;
                }
            }
        });
        out.remap_columns(&|c| c - MOVED);
        Some(out)
    }

    /// Renumbers column references (`map[old] = new`).
    pub fn remap_columns(&mut self, map: &impl Fn(usize) -> usize) {
        self.visit_mut(&mut |e| {
            if let Expr::Column(c) = e {
                *c = map(*c)
            }
        });
    }

    fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Column(_) | Expr::Literal(_) => vec![],
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e) | Expr::Cast { expr: e, .. } => vec![e],
            Expr::Binary { left, right, .. } | Expr::NullIf(left, right) => vec![left, right],
            Expr::Like { expr, pattern, .. } => vec![expr, pattern],
            Expr::InList { expr, list } => std::iter::once(&**expr).chain(list).collect(),
            Expr::Case { branches, otherwise } => {
                branches.iter().flat_map(|(c, v)| [c, v]).chain(std::iter::once(&**otherwise)).collect()
            }
            Expr::Coalesce(args) | Expr::Call { args, .. } | Expr::List(args) => args.iter().collect(),
        }
    }

    fn visit(&self, f: &mut impl FnMut(&Expr)) {
        f(self);
        for c in self.children() {
            c.visit(f);
        }
    }

    fn visit_mut(&mut self, f: &mut impl FnMut(&mut Expr)) {
        f(self);
        match self {
            Expr::Column(_) | Expr::Literal(_) => {}
            Expr::Not(e) | Expr::Negate(e) | Expr::IsNull(e) | Expr::Cast { expr: e, .. } => e.visit_mut(f),
            Expr::Binary { left, right, .. } | Expr::NullIf(left, right) => {
                left.visit_mut(f);
                right.visit_mut(f);
            }
            Expr::Like { expr, pattern, .. } => {
                expr.visit_mut(f);
                pattern.visit_mut(f);
            }
            Expr::InList { expr, list } => {
                expr.visit_mut(f);
                list.iter_mut().for_each(|e| e.visit_mut(f));
            }
            Expr::Case { branches, otherwise } => {
                for (c, v) in branches {
                    c.visit_mut(f);
                    v.visit_mut(f);
                }
                otherwise.visit_mut(f);
            }
            Expr::Coalesce(args) | Expr::Call { args, .. } | Expr::List(args) => {
                args.iter_mut().for_each(|e| e.visit_mut(f))
            }
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

/// Renders the expression in SQL-like syntax with `#n` for column n, as shown
/// by `denorm check`.
impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Column(c) => write!(f, "#{c}"),
            Expr::Literal(v) => write!(f, "{v}"),
            Expr::Not(e) => write!(f, "NOT ({e})"),
            Expr::Negate(e) => write!(f, "-({e})"),
            Expr::IsNull(e) => write!(f, "({e}) IS NULL"),
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Like { expr, pattern, case_insensitive, .. } => {
                let op = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(f, "({expr} {op} {pattern})")
            }
            Expr::InList { expr, list: items } => {
                write!(f, "({expr} IN (")?;
                list(f, items)?;
                f.write_str("))")
            }
            Expr::Case { branches, otherwise } => {
                f.write_str("CASE")?;
                for (c, v) in branches {
                    write!(f, " WHEN {c} THEN {v}")?;
                }
                write!(f, " ELSE {otherwise} END")
            }
            Expr::Coalesce(args) => {
                f.write_str("coalesce(")?;
                list(f, args)?;
                f.write_str(")")
            }
            Expr::NullIf(a, b) => write!(f, "nullif({a}, {b})"),
            Expr::Call { func: Func::Extract(field), args } if args.len() == 1 => {
                write!(f, "extract({} from {})", field.name(), args[0])
            }
            Expr::Call { func: func @ (Func::DateTrunc(field) | Func::DatePart(field)), args } if args.len() == 1 => {
                write!(f, "{}('{}', {})", func.name(), field.name(), args[0])
            }
            Expr::Call { func: func @ Func::JsonAccess(kind), args }
                if *kind != JsonAccess::Extract && args.len() == 2 =>
            {
                write!(f, "({} {} {})", args[0], func.name(), args[1])
            }
            Expr::Call { func, args } => {
                write!(f, "{}(", func.name())?;
                list(f, args)?;
                f.write_str(")")
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::List(items) => {
                f.write_str("(")?;
                list(f, items)?;
                f.write_str(")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_reads_through_a_map_once() {
        // (#1 <> #2) over Map [#0, #3, coalesce(#1, #0)].
        let computed = vec![Expr::Column(0), Expr::Column(3), Expr::Coalesce(vec![Expr::Column(1), Expr::Column(0)])];
        let e = Expr::binary(BinaryOp::NotEq, Expr::Column(1), Expr::Column(2));
        let want =
            Expr::binary(BinaryOp::NotEq, Expr::Column(3), Expr::Coalesce(vec![Expr::Column(1), Expr::Column(0)]));
        assert_eq!(e.substitute(&computed), Some(want));
        assert_eq!(Expr::Column(3).substitute(&computed), None, "past the Map's columns");
    }
}
