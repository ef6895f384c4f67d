//! Random insert/update/delete workloads, applied to the reference database
//! with every change captured as (old row, new row) for the engine.

use denorm_types::{Catalog, Datum, Diff, Row, Value};
use proptest::prelude::*;
use rusqlite::Connection;

use crate::sqlite::{to_sql, SqliteReference};

/// How to generate one table's rows. The first column is the integer
/// primary key `id`; `columns` generate the rest, in schema order.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: &'static str,
    /// Primary keys are drawn from `0..ids` (small, so rows collide and move).
    pub ids: i64,
    pub columns: Vec<BoxedStrategy<Value>>,
}

impl TableSpec {
    fn row(&self) -> BoxedStrategy<Vec<Value>> {
        let id = (0..self.ids).prop_map(Datum::Int).boxed();
        let all: Vec<BoxedStrategy<Value>> = std::iter::once(id).chain(self.columns.iter().cloned()).collect();
        all.prop_map(|v| v).boxed()
    }
}

/// One write to the reference database.
#[derive(Debug, Clone)]
pub enum Op {
    /// Insert a row (skipped if its id exists).
    Insert { table: usize, values: Vec<Value> },
    /// Replace every column, the primary key included, of the n-th row.
    Update { table: usize, target: usize, values: Vec<Value> },
    /// Delete the n-th row.
    Delete { table: usize, target: usize },
}

impl Op {
    /// A strategy for writes to `tables`, mostly inserts so tables fill up.
    pub fn strategy(tables: &[TableSpec]) -> BoxedStrategy<Op> {
        let n = tables.len();
        let rows: Vec<BoxedStrategy<(usize, Vec<Value>)>> =
            tables.iter().enumerate().map(|(i, t)| t.row().prop_map(move |r| (i, r)).boxed()).collect();
        let row = proptest::strategy::Union::new(rows).boxed();
        prop_oneof![
            5 => row.clone().prop_map(|(table, values)| Op::Insert { table, values }),
            3 => (row, any::<usize>()).prop_map(|((table, values), target)| Op::Update { table, target, values }),
            2 => (0..n, any::<usize>()).prop_map(|(table, target)| Op::Delete { table, target }),
        ]
        .boxed()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("reference database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

fn nth_id(connection: &Connection, table: &str, n: usize) -> rusqlite::Result<Option<i64>> {
    let count: i64 = connection.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
    if count == 0 {
        return Ok(None);
    }
    let offset = (n % count as usize) as i64;
    connection
        .query_row(&format!("SELECT id FROM {table} ORDER BY id LIMIT 1 OFFSET {offset}"), [], |r| r.get(0))
        .map(Some)
}

fn exists(reference: &SqliteReference, table: &str, id: &Value) -> rusqlite::Result<bool> {
    let Datum::Int(id) = id else { return Ok(false) };
    Ok(reference.row(table, *id)?.is_some())
}

/// Changes grouped by table, as a `SourceBatch` carries them.
pub type TableChanges = Vec<(String, Vec<(Row, Diff)>)>;

/// Applies `ops` to the reference database in one transaction; returns the
/// changes per table as the engine must see them.
pub fn apply_workload(
    reference: &SqliteReference,
    tables: &[TableSpec],
    ops: &[Op],
) -> Result<TableChanges, WorkloadError> {
    let connection = &reference.connection;
    // IMMEDIATE, as a writer beside denorm should: a deferred transaction
    // that reads and then writes fails with SQLITE_BUSY_SNAPSHOT (which no
    // busy timeout retries) when another connection — denorm deleting
    // applied change-log rows — committed in between.
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let mut changes: TableChanges = Vec::new();
    for op in ops {
        let (table, change) = match op {
            Op::Insert { table, values } => {
                let name = tables[*table].name;
                if exists(reference, name, &values[0])? {
                    continue;
                }
                let marks = vec!["?"; values.len()].join(", ");
                let params: Vec<_> = values.iter().map(to_sql).collect();
                connection
                    .execute(&format!("INSERT INTO {name} VALUES ({marks})"), rusqlite::params_from_iter(params))?;
                let Datum::Int(id) = values[0] else { unreachable!("ids are integers") };
                (name, vec![(reference.row(name, id)?.expect("just inserted"), 1)])
            }
            Op::Update { table, target, values } => {
                let spec = &tables[*table];
                let Some(old_id) = nth_id(connection, spec.name, *target)? else { continue };
                let old = reference.row(spec.name, old_id)?.expect("exists");
                let mut values = values.clone();
                if values[0] != Datum::Int(old_id) && exists(reference, spec.name, &values[0])? {
                    values[0] = Datum::Int(old_id);
                }
                let columns = read_columns(connection, spec.name)?;
                let sets: Vec<String> = columns.iter().map(|c| format!("{c} = ?")).collect();
                let mut params: Vec<_> = values.iter().map(to_sql).collect();
                params.push(rusqlite::types::Value::Integer(old_id));
                let sql = format!("UPDATE {} SET {} WHERE id = ?", spec.name, sets.join(", "));
                connection.execute(&sql, rusqlite::params_from_iter(params))?;
                let Datum::Int(new_id) = values[0] else { unreachable!("ids are integers") };
                let new = reference.row(spec.name, new_id)?.expect("just updated");
                (spec.name, vec![(old, -1), (new, 1)])
            }
            Op::Delete { table, target } => {
                let name = tables[*table].name;
                let Some(id) = nth_id(connection, name, *target)? else { continue };
                let old = reference.row(name, id)?.expect("exists");
                connection.execute(&format!("DELETE FROM {name} WHERE id = {id}"), [])?;
                (name, vec![(old, -1)])
            }
        };
        match changes.iter_mut().find(|(t, _)| t == table) {
            Some((_, c)) => c.extend(change),
            None => changes.push((table.to_string(), change)),
        }
    }
    connection.execute_batch("COMMIT")?;
    Ok(changes)
}

fn read_columns(connection: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut s = connection.prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))?;
    let names = s.query_map([], |r| r.get::<_, String>(0))?.collect();
    names
}

pub(crate) fn read_catalog(connection: &Connection) -> Catalog {
    denorm_source::sqlite::read_catalog(connection).expect("reference schema is supported")
}
