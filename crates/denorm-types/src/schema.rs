//! Source table schemas: the planner's input about the normalized database.

use std::collections::BTreeMap;
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
}

impl ScalarType {
    pub fn is_numeric(self) -> bool {
        matches!(self, ScalarType::Int | ScalarType::Float)
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
}

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
}
