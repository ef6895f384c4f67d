//! `WITH (on_stale = 'fallback')`: while such a view is beyond its
//! `max_staleness` budget, key lookups are answered by the source database
//! running the view's defining query restricted to the key — the seeds'
//! "fall back to the join on the normalized database".
//!
//! The query is `SELECT * FROM (<defining SELECT>) WHERE "k1" = ?1 AND …`;
//! SQLite flattens the subquery (and PostgreSQL pulls it up), so the key
//! predicate reaches the base tables' indexes.

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

    /// Prepares every fallback query on the source without running it, so
    /// that a defining query the source cannot run itself (denorm-only
    /// syntax such as a LIMIT inside an aggregate) is refused at start, not
    /// at the first stale lookup. One line per refused view.
    pub fn check(&self) -> Result<(), String> {
        let conn = self.connection()?;
        let refused: Vec<String> = sorted(&self.queries)
            .filter_map(|(view, select)| {
                conn.prepare(&format!("SELECT * FROM ({select}) LIMIT 0")).err().map(|e| refusal(view, "SQLite", &e))
            })
            .collect();
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
        refused_views(refused)
    }
}

fn sorted(queries: &HashMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    let mut queries: Vec<_> = queries.iter().collect();
    queries.sort();
    queries.into_iter()
}

fn refusal(view: &str, source: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "view {view}: on_stale = 'fallback' answers lookups with the view's own SELECT on the source, and {source} \
         cannot run it: {error}"
    )
}

fn refused_views(refused: Vec<String>) -> Result<(), String> {
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{}\nhint: remove on_stale = 'fallback' from these views, or write their SELECT without denorm-only \
         syntax (such as LIMIT inside an aggregate)",
        refused.join("\n")
    ))
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

pub(crate) fn to_sql(value: &Datum<'_>) -> SqlValue {
    denorm_source::sqlite::to_sql_value(value)
}

pub(crate) fn from_sql(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Datum::Null,
        ValueRef::Integer(i) => Datum::Int(i),
        ValueRef::Real(f) => Datum::Float(f),
        ValueRef::Text(t) => Datum::owned_text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Datum::Blob(b.to_vec().into()),
    }
}

/// Connections to a PostgreSQL source, reused across lookups. Key values
/// are written into the query as literals (integers, floats, booleans,
/// quoted text), so that each compares with the column in its own type, and
/// rows are read in the text format and typed by the view's columns.
pub struct PostgresFallback {
    url: String,
    queries: HashMap<String, String>,
    idle: Mutex<Vec<postgres::Client>>,
}

impl std::fmt::Debug for PostgresFallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresFallback").field("queries", &self.queries).finish_non_exhaustive()
    }
}

impl PostgresFallback {
    /// `queries`: (view name, defining SELECT) of the views with fallback.
    pub fn new(url: String, queries: impl IntoIterator<Item = (String, String)>) -> PostgresFallback {
        PostgresFallback { url, queries: queries.into_iter().collect(), idle: Mutex::new(Vec::new()) }
    }

    /// As [`SqliteFallback::check`]: every fallback query is prepared
    /// (parsed and analysed, not run) by the source.
    pub fn check(&self) -> Result<(), String> {
        let mut client = denorm_source::postgres::connect(&self.url).map_err(|e| crate::engine::error_chain(&e))?;
        let refused: Vec<String> = sorted(&self.queries)
            .filter_map(|(view, select)| {
                client.prepare(&format!("SELECT * FROM ({select}) AS denorm_fallback LIMIT 0")).err().map(|e| {
                    refusal(
                        view,
                        "PostgreSQL",
                        &e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string()),
                    )
                })
            })
            .collect();
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(client);
        refused_views(refused)
    }
}

impl Fallback for PostgresFallback {
    fn lookup(&self, view: &ViewInfo, key: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        let select = self.queries.get(&view.name).ok_or_else(|| format!("view {} has no fallback query", view.name))?;
        let conditions: Vec<String> = view
            .key
            .iter()
            .zip(key)
            .map(|(&k, value)| format!("\"{}\" = {}", view.columns[k].name.replace('"', "\"\""), pg_literal(value)))
            .collect();
        let sql = format!("SELECT * FROM ({select}) AS denorm_fallback WHERE {}", conditions.join(" AND "));
        let idle = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let mut client = match idle {
            Some(client) => client,
            None => denorm_source::postgres::connect(&self.url).map_err(|e| crate::engine::error_chain(&e))?,
        };
        let messages = client.simple_query(&sql).map_err(|e| format!("the source query failed: {e}"))?;
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(client);
        let mut rows = Vec::new();
        for message in messages {
            let postgres::SimpleQueryMessage::Row(row) = message else { continue };
            let values = view
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| from_pg_text(row.get(i), column.ty))
                .collect::<Result<Vec<Value>, String>>()?;
            rows.push(values);
        }
        Ok(rows)
    }
}

/// A key value as a PostgreSQL literal.
pub(crate) fn pg_literal(value: &Value) -> String {
    match value {
        Datum::Null => "NULL".to_string(),
        Datum::Bool(b) => b.to_string(),
        Datum::Int(i) => i.to_string(),
        Datum::Float(f) if f.is_finite() => format!("{f:?}"),
        Datum::Float(f) => format!("'{f}'::float8").replace("inf", "Infinity"),
        Datum::Text(t) => format!("'{}'", t.replace('\'', "''")),
        // '1.50'::numeric, '2024-05-01'::date, …: compared in the column's own type.
        other => denorm_types::pgtext::literal(other),
    }
}

/// A value of the text format as a datum of the view column's type.
pub(crate) fn from_pg_text(text: Option<&str>, ty: denorm_types::ScalarType) -> Result<Value, String> {
    use denorm_types::ScalarType;
    let Some(text) = text else { return Ok(Datum::Null) };
    let bad = || format!("the source returned {text:?} for a {ty:?} column");
    Ok(match ty {
        ScalarType::Int => Datum::Int(text.parse().map_err(|_| bad())?),
        ScalarType::Float => Datum::Float(match text {
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            _ => text.parse().map_err(|_| bad())?,
        }),
        ScalarType::Bool => Datum::Bool(match text {
            "t" => true,
            "f" => false,
            _ => return Err(bad()),
        }),
        ScalarType::Text | ScalarType::Json => Datum::owned_text(text.to_string()),
        // PostgreSQL has no column without a type.
        ScalarType::Null | ScalarType::Unsupported | ScalarType::Any => Datum::Null,
        ScalarType::Numeric
        | ScalarType::Date
        | ScalarType::Timestamp
        | ScalarType::TimestampTz
        | ScalarType::Uuid
        | ScalarType::Interval => match denorm_types::pgtext::parse(ty, text) {
            Some(Ok(v)) => v,
            Some(Err(e)) => return Err(format!("the source returned {text:?} for a {ty} column: {e}")),
            None => return Err(bad()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::ScalarType;

    #[test]
    fn postgres_literals_and_text_values() {
        assert_eq!(pg_literal(&Datum::Int(-3)), "-3");
        assert_eq!(pg_literal(&Datum::Float(1.5)), "1.5");
        assert_eq!(pg_literal(&Datum::Float(f64::NEG_INFINITY)), "'-Infinity'::float8");
        assert_eq!(pg_literal(&Datum::Bool(true)), "true");
        assert_eq!(pg_literal(&Datum::owned_text("it's".to_string())), "'it''s'");
        assert_eq!(pg_literal(&Datum::Null), "NULL");
        assert_eq!(from_pg_text(Some("42"), ScalarType::Int), Ok(Datum::Int(42)));
        assert_eq!(from_pg_text(Some("2.5000000000000000"), ScalarType::Float), Ok(Datum::Float(2.5)));
        assert_eq!(from_pg_text(Some("t"), ScalarType::Bool), Ok(Datum::Bool(true)));
        assert_eq!(from_pg_text(None, ScalarType::Text), Ok(Datum::Null));
        assert!(from_pg_text(Some("x"), ScalarType::Int).is_err());
        let date = from_pg_text(Some("2024-05-01"), ScalarType::Date).unwrap();
        assert_eq!(pg_literal(&date), "'2024-05-01'::date");
        let amount = from_pg_text(Some("1.50"), ScalarType::Numeric).unwrap();
        assert_eq!(pg_literal(&amount), "'1.50'::numeric");
        let stamp = from_pg_text(Some("2024-05-01 10:00:00.5+00"), ScalarType::TimestampTz).unwrap();
        assert_eq!(pg_literal(&stamp), "'2024-05-01 10:00:00.5+00'::timestamptz");
        assert!(from_pg_text(Some("NaN"), ScalarType::Numeric).is_err());
    }
}
