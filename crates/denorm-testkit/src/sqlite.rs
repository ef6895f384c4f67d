//! The reference database: a real SQLite (rusqlite) running the same writes
//! and the views' SELECTs.

use denorm_types::{Catalog, Datum, Row, Value};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// A SQLite database used as the source of truth in tests.
#[derive(Debug)]
pub struct SqliteReference {
    pub connection: Connection,
}

pub(crate) fn to_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Datum::Null,
        ValueRef::Integer(i) => Datum::Int(i),
        ValueRef::Real(f) => Datum::Float(f),
        ValueRef::Text(t) => Datum::owned_text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Datum::Blob(b.to_vec().into()),
    }
}

/// A datum as a SQLite parameter.
pub(crate) fn to_sql(d: &Datum<'_>) -> rusqlite::types::Value {
    denorm_source::sqlite::to_sql_value(d)
}

impl SqliteReference {
    /// An in-memory database with `schema` (CREATE TABLE statements) applied.
    pub fn new(schema: &str) -> rusqlite::Result<Self> {
        let connection = Connection::open_in_memory()?;
        connection.execute_batch(schema)?;
        Ok(SqliteReference { connection })
    }

    /// The tables' schemas as the planner needs them.
    pub fn catalog(&self) -> Catalog {
        crate::workload::read_catalog(&self.connection)
    }

    /// Runs a query; returns its column names and rows.
    pub fn query(&self, sql: &str) -> rusqlite::Result<(Vec<String>, Vec<Vec<Value>>)> {
        let mut statement = self.connection.prepare(sql)?;
        let names: Vec<String> = statement.column_names().map(ToString::to_string).collect();
        let width = names.len();
        let rows = statement
            .query_map([], |r| (0..width).map(|i| r.get_ref(i).map(to_value)).collect::<rusqlite::Result<Vec<_>>>())?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((names, rows))
    }

    /// The full row of `table` with primary key `id`, in schema order.
    pub fn row(&self, table: &str, id: i64) -> rusqlite::Result<Option<Row>> {
        let (_, rows) = self.query(&format!("SELECT * FROM {table} WHERE id = {id}"))?;
        Ok(rows.into_iter().next().map(Row::pack))
    }
}
