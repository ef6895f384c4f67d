//! Writes on the reference database captured as the engine's input: each
//! statement's old and new rows, found by rowid before and after it runs
//! (what a trigger-based capture logs), for workloads written as SQL.

use denorm_types::{Diff, Row, Value};
use rusqlite::Connection;

use crate::sqlite::{to_value, SqliteReference};
use crate::workload::TableChanges;

/// One write: `sql` changes rows of `table` only, and
/// `rows` (a WHERE condition) selects every row it changes, before it runs;
/// an insert names none (its new rows are found by rowid).
#[derive(Debug, Clone)]
pub struct Statement {
    pub table: String,
    pub sql: String,
    pub rows: Option<String>,
}

impl Statement {
    pub fn insert(table: &str, values: &[String]) -> Self {
        Statement {
            table: table.to_string(),
            sql: format!("INSERT INTO {table} VALUES ({})", values.join(", ")),
            rows: None,
        }
    }

    pub fn update(table: &str, set: String, rows: String) -> Self {
        Statement { table: table.to_string(), sql: format!("UPDATE {table} SET {set} WHERE {rows}"), rows: Some(rows) }
    }

    pub fn delete(table: &str, rows: String) -> Self {
        Statement { table: table.to_string(), sql: format!("DELETE FROM {table} WHERE {rows}"), rows: Some(rows) }
    }
}

/// Runs `statements` in one transaction on the reference database and
/// returns the rows they removed and added, per table: the change log a
/// capture would have written.
pub fn capture(reference: &SqliteReference, statements: &[Statement]) -> rusqlite::Result<TableChanges> {
    let connection = &reference.connection;
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let mut changes: TableChanges = Vec::new();
    for statement in statements {
        let table = statement.table.as_str();
        let mut change: Vec<(Row, Diff)> = Vec::new();
        let rowids: Vec<i64> = match &statement.rows {
            Some(rows) => {
                let old = rows_where(connection, table, rows)?;
                let rowids = old.iter().map(|(id, _)| *id).collect();
                change.extend(old.into_iter().map(|(_, row)| (row, -1)));
                connection.execute(&statement.sql, [])?;
                rowids
            }
            None => {
                connection.execute(&statement.sql, [])?;
                vec![connection.last_insert_rowid()]
            }
        };
        for id in rowids {
            let new = rows_where(connection, table, &format!("rowid = {id}"))?;
            change.extend(new.into_iter().map(|(_, row)| (row, 1)));
        }
        match changes.iter_mut().find(|(t, _)| t == table) {
            Some((_, c)) => c.extend(change),
            None => changes.push((table.to_string(), change)),
        }
    }
    connection.execute_batch("COMMIT")?;
    Ok(changes)
}

/// Every row of `table` (the whole table when `condition` is `1`), with its rowid.
pub fn rows_where(connection: &Connection, table: &str, condition: &str) -> rusqlite::Result<Vec<(i64, Row)>> {
    let mut statement = connection.prepare(&format!("SELECT rowid, * FROM {table} WHERE {condition}"))?;
    let width = statement.column_count();
    let rows = statement.query_map([], |r| {
        let id: i64 = r.get(0)?;
        let values = (1..width).map(|i| r.get_ref(i).map(to_value)).collect::<rusqlite::Result<Vec<Value>>>()?;
        Ok((id, Row::pack(values)))
    })?;
    rows.collect()
}
