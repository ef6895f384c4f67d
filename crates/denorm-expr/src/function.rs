//! The scalar function table: every function a view may call, per dialect,
//! in one place.
//!
//! The planner (`denorm-sql`) looks a call up here to check its arity and
//! argument types and to build its [`Expr`]; `denorm check` shows the
//! function by [`Func::name`]; the README's function list and the planner's
//! "not supported" hint are [`supported`]'s output. Adding a function is one
//! entry here plus its evaluation (`eval.rs` dispatches every [`Func`];
//! SQLite's text and number functions live in `scalar.rs`, its date and time
//! functions in `datetime.rs`).
//!
//! Every function here is deterministic: its result depends only on its
//! arguments, except the current-time functions ([`Kind::Clock`]: `now()`,
//! `current_date`, …), which a view refreshed on a schedule reads from the
//! engine's clock (`denorm_types::clock`) and any other view refuses. Other
//! functions that are not (`random()`, `changes()`) are listed as
//! [`Kind::Refused`] so that the planner names them and says why.

use denorm_types::{Dialect, ScalarType};

use crate::expr::{DateField, DateFunc, Func, JsonAccess, TrimSide};

/// How the planner checks one argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Any value (SQLite converts it as the function needs).
    Any,
    /// Text; in SQLite also a number, converted to its text as SQLite does.
    Text,
    /// A number (integer, double, PostgreSQL numeric).
    Number,
    /// An integer.
    Integer,
    /// A PostgreSQL date or timestamp (without time zone).
    DateOrTimestamp,
    /// A PostgreSQL interval.
    Interval,
    /// A PostgreSQL date, timestamp (without time zone) or interval (`extract`).
    DateTimestampOrInterval,
    /// A PostgreSQL timestamp (without time zone) or interval (`date_part`).
    TimestampOrInterval,
    /// A PostgreSQL timestamp (without time zone): PostgreSQL reads a date
    /// given to `date_trunc`/`date_part` as a timestamptz, which depends on
    /// the session's time zone.
    Timestamp,
}

/// The static type of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    Type(ScalarType),
    /// The first argument's type.
    FirstArgument,
    /// The common type of all arguments (scalar `min`/`max`).
    Unified,
}

/// Whether the result may be NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    /// NULL exactly when some argument is NULL.
    Strict,
    /// Possibly NULL whatever the arguments (e.g. an invalid date).
    Always,
    /// Never NULL.
    Never,
}

/// What a call becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Expr::Call` of this function.
    Call(Func),
    /// `Expr::Coalesce` (`coalesce`, SQLite's `ifnull`).
    Coalesce,
    /// `Expr::NullIf`.
    NullIf,
    /// `iif(c, a[, b])`: `CASE WHEN c THEN a ELSE b END`.
    Iif,
    /// A JSON constructor (planned by `denorm-sql`'s JSON module).
    Json,
    /// A current-time function: read from the engine's clock in a view
    /// refreshed on a schedule (`WITH (refresh = '1m')`), refused in others.
    Clock(Clock),
    /// A function denorm cannot maintain: the text says why and what to do.
    Refused(&'static str),
}

/// What a current-time function ([`Kind::Clock`]) computes from the clock's
/// one value per refresh (one instant for the whole view, as PostgreSQL's
/// transaction timestamp is one for the whole statement).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// PostgreSQL `now()`, `current_timestamp`, `transaction_timestamp()`,
    /// `statement_timestamp()`, `clock_timestamp()`: the `timestamptz`.
    TimestampTz,
    /// PostgreSQL `current_date`: the date in UTC, the `TimeZone` of
    /// denorm's sessions.
    Date,
    /// PostgreSQL `localtimestamp`: the `timestamp` in UTC.
    Timestamp,
    /// SQLite's `CURRENT_DATE`, `CURRENT_TIME`, `CURRENT_TIMESTAMP`: this
    /// date function of `'now'` (UTC).
    Sqlite(DateFunc),
}

/// One entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionDef {
    pub name: &'static str,
    /// `None`: both dialects.
    pub dialect: Option<Dialect>,
    pub min_args: usize,
    /// `None`: any number from `min_args` on.
    pub max_args: Option<usize>,
    /// The check of argument i is `args[min(i, args.len() - 1)]`.
    pub args: &'static [Arg],
    pub returns: Returns,
    pub nulls: Nulls,
    pub kind: Kind,
}

impl FunctionDef {
    /// The check of argument `i`.
    pub fn arg(&self, i: usize) -> Arg {
        self.args.get(i).or(self.args.last()).copied().unwrap_or(Arg::Any)
    }

    /// Whether `n` arguments are accepted.
    pub fn takes(&self, n: usize) -> bool {
        n >= self.min_args && self.max_args.is_none_or(|max| n <= max)
    }

    /// "two arguments", "one to three arguments", … for arity errors.
    pub fn arity_text(&self) -> String {
        let word = |n: usize| match n {
            0 => "no".to_string(),
            1 => "one".to_string(),
            2 => "two".to_string(),
            3 => "three".to_string(),
            n => n.to_string(),
        };
        let unit = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.max_args {
            Some(max) if max == self.min_args => format!("{} {}", word(max), unit(max)),
            Some(max) => format!("{} to {} {}", word(self.min_args), word(max), unit(max)),
            None => format!("at least {} {}", word(self.min_args), unit(self.min_args)),
        }
    }
}

const fn def(
    name: &'static str,
    dialect: Option<Dialect>,
    arity: (usize, Option<usize>),
    args: &'static [Arg],
    returns: Returns,
    nulls: Nulls,
    kind: Kind,
) -> FunctionDef {
    FunctionDef { name, dialect, min_args: arity.0, max_args: arity.1, args, returns, nulls, kind }
}

const fn refused(name: &'static str, dialect: Option<Dialect>, why: &'static str) -> FunctionDef {
    def(name, dialect, (0, None), &[Arg::Any], Returns::Type(ScalarType::Null), Nulls::Always, Kind::Refused(why))
}

const fn clock(name: &'static str, dialect: Option<Dialect>, ty: ScalarType, clock: Clock) -> FunctionDef {
    def(name, dialect, (0, Some(0)), &[Arg::Any], Returns::Type(ty), Nulls::Never, Kind::Clock(clock))
}

const SQLITE: Option<Dialect> = Some(Dialect::Sqlite);
const PG: Option<Dialect> = Some(Dialect::Postgres);
const BOTH: Option<Dialect> = None;
const TEXT: Returns = Returns::Type(ScalarType::Text);
const INT: Returns = Returns::Type(ScalarType::Int);
const FLOAT: Returns = Returns::Type(ScalarType::Float);
const DATE: &[Arg] = &[Arg::Any, Arg::Text];
const NOT_DETERMINISTIC: &str = "its result changes without a change in the source, so a maintained view \
     cannot follow it; compute it when reading, or store the value in a column";
/// The hint of a current-time function in a view without a refresh
/// schedule.
pub const CLOCK_HINT: &str = "add WITH (refresh = '1m') to the view to recompute it with the current time every \
     minute, or compare with a fixed date";
const TIME_TYPE: &str = "it returns a time with time zone, a type denorm does not hold; use current_timestamp";

const INTERVAL_TYPE: Returns = Returns::Type(ScalarType::Interval);

use Arg::{Any, DateTimestampOrInterval, Integer, Interval, Number, Text, Timestamp, TimestampOrInterval};
use Nulls::{Always, Never, Strict};

/// Every function, in the order the documentation lists them.
pub static FUNCTIONS: &[FunctionDef] = &[
    def("abs", BOTH, (1, Some(1)), &[Number], Returns::FirstArgument, Strict, Kind::Call(Func::Abs)),
    def("coalesce", BOTH, (2, None), &[Any], Returns::Unified, Always, Kind::Coalesce),
    def("ifnull", SQLITE, (2, Some(2)), &[Any], Returns::Unified, Always, Kind::Coalesce),
    def("iif", SQLITE, (2, None), &[Any], Returns::Unified, Always, Kind::Iif),
    def("if", SQLITE, (2, None), &[Any], Returns::Unified, Always, Kind::Iif),
    def("nullif", BOTH, (2, Some(2)), &[Any], Returns::FirstArgument, Always, Kind::NullIf),
    def("length", BOTH, (1, Some(1)), &[Text], INT, Strict, Kind::Call(Func::Length)),
    def("lower", BOTH, (1, Some(1)), &[Text], TEXT, Strict, Kind::Call(Func::Lower { ascii_only: true })),
    def("upper", BOTH, (1, Some(1)), &[Text], TEXT, Strict, Kind::Call(Func::Upper { ascii_only: true })),
    def("substr", SQLITE, (2, Some(3)), &[Text, Number], TEXT, Strict, Kind::Call(Func::Substr)),
    def("substring", SQLITE, (2, Some(3)), &[Text, Number], TEXT, Strict, Kind::Call(Func::Substr)),
    def("trim", SQLITE, (1, Some(2)), &[Text], TEXT, Strict, Kind::Call(Func::Trim(TrimSide::Both))),
    def("btrim", PG, (1, Some(2)), &[Text], TEXT, Strict, Kind::Call(Func::Trim(TrimSide::Both))),
    def("ltrim", BOTH, (1, Some(2)), &[Text], TEXT, Strict, Kind::Call(Func::Trim(TrimSide::Leading))),
    def("rtrim", BOTH, (1, Some(2)), &[Text], TEXT, Strict, Kind::Call(Func::Trim(TrimSide::Trailing))),
    def("replace", SQLITE, (3, Some(3)), &[Text], TEXT, Strict, Kind::Call(Func::Replace)),
    def("instr", SQLITE, (2, Some(2)), &[Text], INT, Strict, Kind::Call(Func::Instr)),
    def("round", SQLITE, (1, Some(2)), &[Number], FLOAT, Strict, Kind::Call(Func::Round)),
    def("sign", SQLITE, (1, Some(1)), &[Any], INT, Always, Kind::Call(Func::Sign)),
    def("min", SQLITE, (2, None), &[Any], Returns::Unified, Strict, Kind::Call(Func::Min)),
    def("max", SQLITE, (2, None), &[Any], Returns::Unified, Strict, Kind::Call(Func::Max)),
    def("greatest", PG, (1, None), &[Any], Returns::Unified, Always, Kind::Call(Func::Greatest)),
    def("least", PG, (1, None), &[Any], Returns::Unified, Always, Kind::Call(Func::Least)),
    def("typeof", SQLITE, (1, Some(1)), &[Any], TEXT, Never, Kind::Call(Func::Typeof)),
    def("hex", SQLITE, (1, Some(1)), &[Any], TEXT, Never, Kind::Call(Func::Hex)),
    def("quote", SQLITE, (1, Some(1)), &[Any], TEXT, Never, Kind::Call(Func::Quote)),
    def("unicode", SQLITE, (1, Some(1)), &[Text], INT, Always, Kind::Call(Func::Unicode)),
    def("char", SQLITE, (0, None), &[Number], TEXT, Never, Kind::Call(Func::Char)),
    def("printf", SQLITE, (1, None), &[Text, Any], TEXT, Always, Kind::Call(Func::Printf)),
    def("format", SQLITE, (1, None), &[Text, Any], TEXT, Always, Kind::Call(Func::Printf)),
    def("date", SQLITE, (1, None), DATE, TEXT, Always, Kind::Call(Func::Date(DateFunc::Date))),
    def("time", SQLITE, (1, None), DATE, TEXT, Always, Kind::Call(Func::Date(DateFunc::Time))),
    def("datetime", SQLITE, (1, None), DATE, TEXT, Always, Kind::Call(Func::Date(DateFunc::DateTime))),
    def("julianday", SQLITE, (1, None), DATE, FLOAT, Always, Kind::Call(Func::Date(DateFunc::JulianDay))),
    def("unixepoch", SQLITE, (1, None), DATE, INT, Always, Kind::Call(Func::Date(DateFunc::UnixEpoch))),
    def("strftime", SQLITE, (2, None), &[Text, Any, Text], TEXT, Always, Kind::Call(Func::Date(DateFunc::Strftime))),
    def("substr", PG, (2, Some(3)), &[Text, Integer], TEXT, Strict, Kind::Call(Func::PgSubstring)),
    def("substring", PG, (2, Some(3)), &[Text, Integer], TEXT, Strict, Kind::Call(Func::PgSubstring)),
    def("strpos", PG, (2, Some(2)), &[Text], INT, Strict, Kind::Call(Func::Strpos)),
    def("split_part", PG, (3, Some(3)), &[Text, Text, Integer], TEXT, Strict, Kind::Call(Func::SplitPart)),
    def("concat", BOTH, (1, None), &[Any], TEXT, Never, Kind::Call(Func::Concat)),
    def("concat_ws", BOTH, (2, None), &[Text, Any], TEXT, Always, Kind::Call(Func::ConcatWs)),
    def("left", PG, (2, Some(2)), &[Text, Integer], TEXT, Strict, Kind::Call(Func::Left)),
    def("right", PG, (2, Some(2)), &[Text, Integer], TEXT, Strict, Kind::Call(Func::Right)),
    def("round", PG, (1, Some(2)), &[Number, Integer], Returns::FirstArgument, Strict, Kind::Call(Func::PgRound)),
    def("replace", PG, (3, Some(3)), &[Text], TEXT, Strict, Kind::Call(Func::Replace)),
    def("reverse", PG, (1, Some(1)), &[Text], TEXT, Strict, Kind::Call(Func::Reverse)),
    def("repeat", PG, (2, Some(2)), &[Text, Integer], TEXT, Strict, Kind::Call(Func::Repeat)),
    def("lpad", PG, (2, Some(3)), &[Text, Integer, Text], TEXT, Strict, Kind::Call(Func::Lpad)),
    def("rpad", PG, (2, Some(3)), &[Text, Integer, Text], TEXT, Strict, Kind::Call(Func::Rpad)),
    def("initcap", PG, (1, Some(1)), &[Text], TEXT, Strict, Kind::Call(Func::Initcap { ascii_only: false })),
    def(
        "starts_with",
        PG,
        (2, Some(2)),
        &[Text],
        Returns::Type(ScalarType::Bool),
        Strict,
        Kind::Call(Func::StartsWith),
    ),
    def("char_length", PG, (1, Some(1)), &[Text], INT, Strict, Kind::Call(Func::Length)),
    def("character_length", PG, (1, Some(1)), &[Text], INT, Strict, Kind::Call(Func::Length)),
    def("octet_length", BOTH, (1, Some(1)), &[Text], INT, Strict, Kind::Call(Func::OctetLength)),
    def("make_date", PG, (3, Some(3)), &[Integer], Returns::Type(ScalarType::Date), Strict, Kind::Call(Func::MakeDate)),
    def(
        "date_trunc",
        PG,
        (2, Some(2)),
        &[Text, TimestampOrInterval],
        Returns::Type(ScalarType::Timestamp),
        Strict,
        Kind::Call(Func::DateTrunc(DateField::Day)),
    ),
    def(
        "to_char",
        PG,
        (2, Some(2)),
        &[Timestamp, Text],
        Returns::Type(ScalarType::Text),
        Always,
        Kind::Call(Func::ToChar),
    ),
    def(
        "date_part",
        PG,
        (2, Some(2)),
        &[Text, TimestampOrInterval],
        FLOAT,
        Strict,
        Kind::Call(Func::DatePart(DateField::Day)),
    ),
    def("age", PG, (1, Some(2)), &[Timestamp], INTERVAL_TYPE, Strict, Kind::Call(Func::Age)),
    def("justify_hours", PG, (1, Some(1)), &[Interval], INTERVAL_TYPE, Strict, Kind::Call(Func::JustifyHours)),
    def("justify_days", PG, (1, Some(1)), &[Interval], INTERVAL_TYPE, Strict, Kind::Call(Func::JustifyDays)),
    def("justify_interval", PG, (1, Some(1)), &[Interval], INTERVAL_TYPE, Strict, Kind::Call(Func::JustifyInterval)),
    def(
        "extract",
        PG,
        (1, Some(1)),
        &[DateTimestampOrInterval],
        Returns::Type(ScalarType::Numeric),
        Strict,
        Kind::Call(Func::Extract(DateField::Day)),
    ),
    def(
        "json_extract",
        SQLITE,
        (2, Some(2)),
        &[Any, Text],
        TEXT,
        Always,
        Kind::Call(Func::JsonAccess(JsonAccess::Extract)),
    ),
    def("json_array", SQLITE, (0, None), &[Any], Returns::Type(ScalarType::Json), Never, Kind::Json),
    def("json_object", SQLITE, (0, None), &[Any], Returns::Type(ScalarType::Json), Never, Kind::Json),
    def(
        "json_build_array",
        Some(Dialect::Postgres),
        (0, None),
        &[Any],
        Returns::Type(ScalarType::Json),
        Never,
        Kind::Json,
    ),
    def(
        "json_build_object",
        Some(Dialect::Postgres),
        (0, None),
        &[Any],
        Returns::Type(ScalarType::Json),
        Never,
        Kind::Json,
    ),
    refused("random", BOTH, NOT_DETERMINISTIC),
    refused("randomblob", SQLITE, NOT_DETERMINISTIC),
    refused("changes", SQLITE, NOT_DETERMINISTIC),
    refused("total_changes", SQLITE, NOT_DETERMINISTIC),
    refused("last_insert_rowid", SQLITE, NOT_DETERMINISTIC),
    refused("sqlite_version", SQLITE, "it describes the server, not the data; read it when needed"),
    clock("now", PG, ScalarType::TimestampTz, Clock::TimestampTz),
    clock("current_timestamp", PG, ScalarType::TimestampTz, Clock::TimestampTz),
    clock("transaction_timestamp", PG, ScalarType::TimestampTz, Clock::TimestampTz),
    clock("statement_timestamp", PG, ScalarType::TimestampTz, Clock::TimestampTz),
    clock("clock_timestamp", PG, ScalarType::TimestampTz, Clock::TimestampTz),
    clock("current_date", PG, ScalarType::Date, Clock::Date),
    clock("localtimestamp", PG, ScalarType::Timestamp, Clock::Timestamp),
    refused("current_time", PG, TIME_TYPE),
    clock("current_date", SQLITE, ScalarType::Text, Clock::Sqlite(DateFunc::Date)),
    clock("current_time", SQLITE, ScalarType::Text, Clock::Sqlite(DateFunc::Time)),
    clock("current_timestamp", SQLITE, ScalarType::Text, Clock::Sqlite(DateFunc::DateTime)),
    refused("gen_random_uuid", Some(Dialect::Postgres), NOT_DETERMINISTIC),
];

/// The entry for `name` (lower case) in `dialect`.
pub fn lookup(name: &str, dialect: Dialect) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().find(|f| f.name == name && f.dialect.is_none_or(|d| d == dialect))
}

/// The aggregates a grouped view may call, per dialect (planned by
/// `denorm-sql`; listed here so that [`supported`] names them).
pub static AGGREGATES: &[(&str, Option<Dialect>)] = &[
    ("count", BOTH),
    ("sum", BOTH),
    ("avg", BOTH),
    ("min", BOTH),
    ("max", BOTH),
    ("total", SQLITE),
    ("group_concat", SQLITE),
    ("string_agg", BOTH),
    ("bool_and", PG),
    ("bool_or", PG),
    ("every", PG),
    ("json_group_array", SQLITE),
    ("json_group_object", SQLITE),
    ("json_agg", Some(Dialect::Postgres)),
    ("json_object_agg", Some(Dialect::Postgres)),
];

/// The window functions denorm maintains: `ROW_NUMBER`, `RANK` and
/// `DENSE_RANK` in the top-k form, `LAG` and `LEAD` in a SELECT list that
/// does not group (see the planner's `window.rs` and `shift.rs`).
pub static WINDOWS: &[&str] = &["row_number", "rank", "dense_rank", "lag", "lead"];

/// "supported functions: …; aggregates: …; window functions: …" for
/// `dialect`: the planner's hint and the README's list.
pub fn supported(dialect: Dialect) -> String {
    let available = |d: Option<Dialect>| d.is_none_or(|d| d == dialect);
    let scalar: Vec<&str> = FUNCTIONS
        .iter()
        .filter(|f| available(f.dialect) && !matches!(f.kind, Kind::Refused(_)))
        .map(|f| f.name)
        .collect();
    let aggregates: Vec<&str> = AGGREGATES.iter().filter(|(_, d)| available(*d)).map(|(n, _)| *n).collect();
    format!(
        "supported functions: {}; aggregates: {}; window functions: {}",
        scalar.join(", "),
        aggregates.join(", "),
        WINDOWS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_dialect() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let mut names: Vec<&str> =
                FUNCTIONS.iter().filter(|f| f.dialect.is_none_or(|d| d == dialect)).map(|f| f.name).collect();
            let n = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), n, "{dialect:?}");
        }
    }

    #[test]
    fn every_call_is_named_as_its_entry() {
        for f in FUNCTIONS {
            if let Kind::Call(func) = f.kind {
                let aliases = ["substring", "substr", "format", "btrim", "char_length", "character_length"];
                let same = func.name() == f.name || aliases.contains(&f.name);
                assert!(same, "{} is shown as {}", f.name, func.name());
            }
        }
    }

    /// The README lists exactly the table's functions.
    #[test]
    fn readme_lists_the_table() {
        let readme = include_str!("../../../README.md");
        for (dialect, label) in [(Dialect::Sqlite, "SQLite"), (Dialect::Postgres, "PostgreSQL")] {
            let line = format!("{label} — {}", supported(dialect));
            assert!(readme.contains(&line), "README.md must contain the line:\n{line}");
        }
    }

    #[test]
    fn arity_texts() {
        let f = |name| lookup(name, Dialect::Sqlite).unwrap().arity_text();
        assert_eq!(f("nullif"), "two arguments");
        assert_eq!(f("substr"), "two to three arguments");
        assert_eq!(f("coalesce"), "at least two arguments");
        assert!(!lookup("trim", Dialect::Postgres).is_some_and(|t| t.takes(3)));
        assert!(supported(Dialect::Sqlite).contains("strftime"));
        assert!(!supported(Dialect::Postgres).contains("strftime"));
    }
}
