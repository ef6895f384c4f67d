//! `WITH (on_stale = 'fallback')`: while such a view is beyond its
//! `max_staleness` budget, key lookups are answered by the source database
//! running the view's defining query restricted to the key — the seeds'
//! "fall back to the join on the normalized database".
//!
//! The query is `SELECT * FROM (<defining SELECT>) WHERE "k1" = ?1 AND …`;
//! SQLite flattens the subquery, so the key predicate reaches the base
//! tables' indexes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use denorm_serve::{Fallback, ViewInfo};
use denorm_types::{Datum, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};

/// Read-only connections to the source, reused across lookups.
#[derive(Debug)]
pub struct SqliteFallback {
    database: PathBuf,
    /// View name → the defining SELECT.
    queries: HashMap<String, String>,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteFallback {
    /// `queries`: (view name, defining SELECT) of the views with fallback.
    pub fn new(database: PathBuf, queries: impl IntoIterator<Item = (String, String)>) -> SqliteFallback {
        SqliteFallback { database, queries: queries.into_iter().collect(), idle: Mutex::new(Vec::new()) }
    }

    fn connection(&self) -> Result<Connection, String> {
        if let Some(c) = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop() {
            return Ok(c);
        }
        let c = Connection::open_with_flags(&self.database, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("cannot open the source {}: {e}", self.database.display()))?;
        c.busy_timeout(std::time::Duration::from_secs(2)).map_err(|e| e.to_string())?;
        Ok(c)
    }
}

impl Fallback for SqliteFallback {
    fn lookup(&self, view: &ViewInfo, key: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        let select = self.queries.get(&view.name).ok_or_else(|| format!("view {} has no fallback query", view.name))?;
        let conditions: Vec<String> = view
            .key
            .iter()
            .enumerate()
            .map(|(i, &k)| format!("\"{}\" = ?{}", view.columns[k].name.replace('"', "\"\""), i + 1))
            .collect();
        let sql = format!("SELECT * FROM ({select}) WHERE {}", conditions.join(" AND "));
        let conn = self.connection()?;
        let rows = query(&conn, &sql, key, view.columns.len()).map_err(|e| format!("the source query failed: {e}"));
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
        rows
    }
}

fn query(conn: &Connection, sql: &str, key: &[Value], width: usize) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let params: Vec<SqlValue> = key.iter().map(to_sql).collect();
    let rows = statement.query_map(rusqlite::params_from_iter(params), |row| {
        (0..width).map(|i| row.get_ref(i).map(from_sql)).collect::<rusqlite::Result<Vec<Value>>>()
    })?;
    rows.collect()
}

fn to_sql(value: &Value) -> SqlValue {
    match value {
        Datum::Null => SqlValue::Null,
        Datum::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Datum::Int(i) => SqlValue::Integer(*i),
        Datum::Float(f) => SqlValue::Real(*f),
        Datum::Text(t) => SqlValue::Text(t.to_string()),
    }
}

fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Datum::Null,
        ValueRef::Integer(i) => Datum::Int(i),
        ValueRef::Real(f) => Datum::Float(f),
        ValueRef::Text(t) => Datum::owned_text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Datum::owned_text(format!("<blob of {} bytes>", b.len())),
    }
}
