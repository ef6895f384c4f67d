//! Source table schemas: the planner's input about the normalized database.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The static type of a column or expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScalarType {
    Bool,
    Int,
    Float,
    Text,
    /// JSON built by the JSON functions and aggregates (`json_object`,
    /// `json_group_array`, …). Values are [`Datum::Text`](crate::Datum::Text)
    /// holding the JSON text exactly as the source database writes it (see
    /// [`crate::json`]); an enclosing JSON function or the HTTP API embeds it
    /// raw rather than as a string.
    Json,
    /// The type of a bare `NULL` literal before it meets a typed context.
    Null,
    /// PostgreSQL `numeric` ([`Datum::Numeric`](crate::Datum::Numeric)).
    Numeric,
    /// PostgreSQL `date` ([`Datum::Date`](crate::Datum::Date)).
    Date,
    /// PostgreSQL `timestamp` ([`Datum::Timestamp`](crate::Datum::Timestamp)).
    Timestamp,
    /// PostgreSQL `timestamptz` ([`Datum::TimestampTz`](crate::Datum::TimestampTz)).
    TimestampTz,
    /// PostgreSQL `uuid` ([`Datum::Uuid`](crate::Datum::Uuid)).
    Uuid,
    /// PostgreSQL `interval` ([`Datum::Interval`](crate::Datum::Interval)).
    Interval,
    /// A SQLite column without type affinity (declared with no type, or
    /// `BLOB`): its values keep the storage class they were written with,
    /// so any of NULL, integer, double, text or BLOB. Expressions over it
    /// are evaluated per value, as SQLite does.
    Any,
    /// A source column of a type denorm has no value for: the catalog keeps
    /// it (see [`Catalog::unsupported_type`]) so that only a view that reads
    /// it is refused, by the planner.
    Unsupported,
}

impl ScalarType {
    pub fn is_numeric(self) -> bool {
        matches!(self, ScalarType::Int | ScalarType::Float | ScalarType::Numeric)
    }

    /// Whether values of this type have an order (`<`, MIN/MAX, ORDER BY).
    pub fn is_ordered(self) -> bool {
        !matches!(self, ScalarType::Json | ScalarType::Unsupported)
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScalarType::Bool => "boolean",
            ScalarType::Int => "integer",
            ScalarType::Float => "double",
            ScalarType::Text => "text",
            ScalarType::Json => "json",
            ScalarType::Null => "null",
            ScalarType::Numeric => "numeric",
            ScalarType::Date => "date",
            ScalarType::Timestamp => "timestamp without time zone",
            ScalarType::TimestampTz => "timestamp with time zone",
            ScalarType::Uuid => "uuid",
            ScalarType::Interval => "interval",
            ScalarType::Any => "any (no type affinity)",
            ScalarType::Unsupported => "unsupported",
        })
    }
}

/// Which database's semantics a plan follows where SQLite and PostgreSQL differ
/// (see ARCHITECTURE.md, "Dialect differences").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A SQLite collating sequence (<https://www.sqlite.org/datatype3.html#collation>):
/// how two text values compare. It only affects text against text; numbers,
/// NULLs and BLOBs compare the same under every collation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Collation {
    /// Bytewise (`memcmp`), the default.
    #[default]
    Binary,
    /// ASCII letters compared as if lower-cased; other characters bytewise.
    NoCase,
    /// Trailing spaces (U+0020 only) ignored, then bytewise.
    Rtrim,
}

impl Collation {
    /// The collation named `name` (case-insensitive), if SQLite has it built in.
    pub fn from_name(name: &str) -> Option<Collation> {
        match name.to_ascii_uppercase().as_str() {
            "BINARY" => Some(Collation::Binary),
            "NOCASE" => Some(Collation::NoCase),
            "RTRIM" => Some(Collation::Rtrim),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Collation::Binary => "BINARY",
            Collation::NoCase => "NOCASE",
            Collation::Rtrim => "RTRIM",
        }
    }

    /// The collation key of a text: two texts compare under the collation
    /// exactly as their keys compare bytewise (NOCASE lower-cases ASCII
    /// letters, as SQLite's `sqlite3StrICmp` maps them; RTRIM drops trailing
    /// spaces). So equality, grouping *and* order under a collation are
    /// BINARY equality, grouping and order of the keys.
    pub fn key(self, text: &str) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Collation::Binary => Cow::Borrowed(text),
            Collation::NoCase if text.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Owned(text.to_ascii_lowercase()),
            Collation::NoCase => Cow::Borrowed(text),
            Collation::Rtrim => Cow::Borrowed(text.trim_end_matches(' ')),
        }
    }
}

impl fmt::Display for Collation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    pub name: String,
    pub ty: ScalarType,
    pub nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnSchema>,
    /// Column indexes of the primary key; empty when the table has none.
    pub primary_key: Vec<usize>,
    /// Other column sets declared UNIQUE.
    pub unique_keys: Vec<Vec<usize>>,
}

impl TableSchema {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// The source tables a set of views may read, by lower-cased name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    tables: BTreeMap<String, TableSchema>,
    /// The source's type name of every [`ScalarType::Unsupported`] column,
    /// by lower-cased (table, column).
    unsupported: BTreeMap<(String, String), String>,
    /// The declared collation of every column whose collation is not
    /// BINARY, by lower-cased (table, column).
    collations: BTreeMap<(String, String), Collation>,
    /// PostgreSQL's `smallint` and `integer` columns, by lower-cased (table,
    /// column): [`ScalarType::Int`] holds them and `bigint` alike, but
    /// PostgreSQL types `SUM` of the first two as `bigint` and of a
    /// `bigint` as `numeric`.
    narrow_ints: BTreeSet<(String, String)>,
    /// PostgreSQL's `jsonb` columns (not `json`), by lower-cased (table,
    /// column): both are [`ScalarType::Json`] text, but `jsonb -> 0` reads
    /// a bare scalar as a one-element array.
    jsonb: BTreeSet<(String, String)>,
    /// Each table's estimated number of rows, when the source gave one.
    rows: RowEstimates,
    /// PostgreSQL: the database's `LC_CTYPE` is `C` or `POSIX`, under which
    /// `upper`, `lower`, `initcap` and `ILIKE` map only ASCII letters (see
    /// [`Catalog::ascii_case_mapping`]).
    ascii_case_mapping: bool,
}

/// Tables' estimated row counts, by lower-cased name: a planner's hint
/// (join order), not part of the schema, so two catalogs that differ only
/// in them are equal (a grown table is not a schema change).
#[derive(Debug, Clone, Default)]
struct RowEstimates(BTreeMap<String, u64>);

impl PartialEq for RowEstimates {
    fn eq(&self, _: &RowEstimates) -> bool {
        true
    }
}

impl Eq for RowEstimates {}

impl Catalog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, table: TableSchema) {
        self.tables.insert(table.name.to_ascii_lowercase(), table);
    }

    pub fn get(&self, name: &str) -> Option<&TableSchema> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    pub fn tables(&self) -> impl Iterator<Item = &TableSchema> {
        self.tables.values()
    }

    /// Records the source's name for the type of a column added as
    /// [`ScalarType::Unsupported`].
    pub fn set_unsupported_type(&mut self, table: &str, column: &str, type_name: impl Into<String>) {
        self.unsupported.insert((table.to_ascii_lowercase(), column.to_ascii_lowercase()), type_name.into());
    }

    /// Records a column's declared collation (BINARY is the default and
    /// need not be recorded).
    pub fn set_collation(&mut self, table: &str, column: &str, collation: Collation) {
        let at = (table.to_ascii_lowercase(), column.to_ascii_lowercase());
        if collation == Collation::Binary {
            self.collations.remove(&at);
        } else {
            self.collations.insert(at, collation);
        }
    }

    /// A column's declared collation (BINARY unless recorded otherwise).
    pub fn collation(&self, table: &str, column: &str) -> Collation {
        let at = (table.to_ascii_lowercase(), column.to_ascii_lowercase());
        self.collations.get(&at).copied().unwrap_or_default()
    }

    /// Records that a PostgreSQL column is a `smallint` or an `integer`
    /// (not a `bigint`; see [`Catalog::narrow_int`]).
    pub fn set_narrow_int(&mut self, table: &str, column: &str) {
        self.narrow_ints.insert((table.to_ascii_lowercase(), column.to_ascii_lowercase()));
    }

    /// Whether a PostgreSQL integer column is a `smallint` or an `integer`
    /// (false for a `bigint` and every other column).
    pub fn narrow_int(&self, table: &str, column: &str) -> bool {
        self.narrow_ints.contains(&(table.to_ascii_lowercase(), column.to_ascii_lowercase()))
    }

    /// Records whether the source maps only ASCII letters between cases
    /// (PostgreSQL under `LC_CTYPE` `C`/`POSIX`).
    pub fn set_ascii_case_mapping(&mut self, ascii_only: bool) {
        self.ascii_case_mapping = ascii_only;
    }

    /// Whether PostgreSQL's `upper`, `lower`, `initcap` and `ILIKE` map only
    /// ASCII letters (the database's `LC_CTYPE` is `C` or `POSIX`); false
    /// under any other locale, where they map every letter (libc's
    /// `towupper`/`towlower`: one character to one, `ß` stays `ß`).
    pub fn ascii_case_mapping(&self) -> bool {
        self.ascii_case_mapping
    }

    /// Records that a PostgreSQL column is `jsonb` (see [`Catalog::jsonb`]).
    pub fn set_jsonb(&mut self, table: &str, column: &str) {
        self.jsonb.insert((table.to_ascii_lowercase(), column.to_ascii_lowercase()));
    }

    /// Whether a PostgreSQL JSON column is `jsonb` rather than `json`.
    pub fn jsonb(&self, table: &str, column: &str) -> bool {
        self.jsonb.contains(&(table.to_ascii_lowercase(), column.to_ascii_lowercase()))
    }

    /// Records a table's estimated number of rows (a hint for the planner's
    /// join order; see [`RowEstimates`]).
    pub fn set_row_estimate(&mut self, table: &str, rows: u64) {
        self.rows.0.insert(table.to_ascii_lowercase(), rows);
    }

    /// A table's estimated number of rows, if the source gave one.
    pub fn row_estimate(&self, table: &str) -> Option<u64> {
        self.rows.0.get(&table.to_ascii_lowercase()).copied()
    }

    /// The source's name for the type of an unsupported column.
    pub fn unsupported_type(&self, table: &str, column: &str) -> Option<&str> {
        self.unsupported.get(&(table.to_ascii_lowercase(), column.to_ascii_lowercase())).map(String::as_str)
    }
}
