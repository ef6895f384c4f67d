//! The SQLite table sink: one table per view in a SQLite file, which may be
//! the source database itself.
//!
//! - Tables are named after the views; `denorm_sink_positions(view,
//!   position)` holds each view's position, written in the transaction that
//!   writes its rows. A table is keyed by the view's key (`PRIMARY KEY`); a
//!   multiset view (no key: keyed by all its columns) has a `denorm_count`
//!   column holding each distinct row's multiplicity.
//! - Writes are short `BEGIN IMMEDIATE` transactions with a busy timeout:
//!   other writers (the application, denorm's own capture when the file is
//!   the source) go on between them. A rebuild fills `<view>__new` in
//!   transactions of [`REBUILD_CHUNK`] rows, then swaps it in (drop, rename,
//!   indexes, position) in one transaction.
//! - A file denorm creates is put in WAL mode with `synchronous = NORMAL`;
//!   an existing file keeps its journal mode.
//! - When the file is the source database, denorm's capture never sees the
//!   sink tables: triggers are installed only on the tables the views read,
//!   and the configuration refuses a sink table a view reads.
//! - A table of a view's name that denorm did not create (no position row)
//!   is never dropped: opening fails with what to do.

use std::path::PathBuf;
use std::time::Duration;

use denorm_types::{Diff, Position, Row};
use rusqlite::{params_from_iter, Connection, ErrorCode, OptionalExtension, TransactionBehavior};

use crate::contract::{Sink, SinkBatch, SinkError, ViewSpec};
use crate::value::{from_sqlite, quote, sqlite_stored, sqlite_type, to_sqlite};

/// How long a write waits for another writer's lock before it is retried.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Queued batches merged into one transaction, at most this many changes
/// (tens of milliseconds of the write lock).
pub const MERGE_LIMIT: usize = 10_000;
/// Rows written per transaction while a rebuild fills its new table.
pub const REBUILD_CHUNK: usize = 20_000;
/// The multiplicity column of a multiset view's table.
pub const COUNT_COLUMN: &str = "denorm_count";
const POSITIONS: &str = "denorm_sink_positions";

/// A SQLite file the views are written to.
#[derive(Debug)]
pub struct SqliteSink {
    path: PathBuf,
    conn: Option<Connection>,
    views: Vec<ViewSpec>,
}

impl SqliteSink {
    pub fn new(path: PathBuf) -> SqliteSink {
        SqliteSink { path, conn: None, views: Vec::new() }
    }

    fn target(&self) -> String {
        self.path.display().to_string()
    }

    fn error(&self, action: &str) -> impl Fn(rusqlite::Error) -> SinkError + '_ {
        let action = action.to_owned();
        move |e| classify(&self.target(), &action, e)
    }

    fn conn(&mut self) -> Result<&mut Connection, SinkError> {
        if self.conn.is_none() {
            let conn = Connection::open(&self.path)
                .map_err(|e| SinkError::Unreachable { target: self.target(), source: Box::new(e) })?;
            conn.busy_timeout(BUSY_TIMEOUT).map_err(self.error("setting the busy timeout"))?;
            // A file denorm creates is a read model: WAL (readers never
            // block the sink's commits) with one sync per checkpoint, not
            // per commit (a commit lost in an OS crash lowers the stored
            // position, and the view is rebuilt). An existing file (the
            // source database) keeps its own settings.
            let empty: i64 =
                conn.query_row("PRAGMA page_count", [], |r| r.get(0)).map_err(self.error("reading the file"))?;
            if empty == 0 {
                conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
                    .map_err(self.error("setting up a new file"))?;
            }
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }
}

/// Transient: busy, locked, I/O; definite: the rest (with a hint).
fn classify(target: &str, action: &str, e: rusqlite::Error) -> SinkError {
    let transient = matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen)
    );
    if transient {
        SinkError::Transient { target: target.to_owned(), action: action.to_owned(), source: Box::new(e) }
    } else {
        SinkError::Definite {
            target: target.to_owned(),
            action: action.to_owned(),
            hint: "check the sink file and its tables; a rebuild recreates a view's table".to_owned(),
            source: Some(Box::new(e)),
        }
    }
}

/// Creates the SQL view over a feed's part tables once all three exist.
fn create_feed_view(tx: &rusqlite::Transaction<'_>, feed: &crate::feed::FeedSpec) -> rusqlite::Result<()> {
    let tables = crate::feed::part_tables(&feed.feed);
    let found: i64 = tx.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN (?1, ?2, ?3)",
        rusqlite::params![tables[0], tables[1], tables[2]],
        |r| r.get(0),
    )?;
    if found == 3 {
        tx.execute_batch(&crate::feed::sql_view(feed, &|t| quote(t)))?;
    }
    Ok(())
}

/// The columns of a view's table, in order.
fn table_columns(spec: &ViewSpec) -> Vec<String> {
    let mut columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
    if spec.is_multiset() {
        columns.push(COUNT_COLUMN.to_owned());
    }
    columns
}

fn create_table(table: &str, spec: &ViewSpec) -> String {
    let mut defs: Vec<String> = spec
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            // `x INTEGER PRIMARY KEY` makes x the rowid, where NULL means
            // "the next number": a nullable key column is declared `INT`.
            let alias = c.nullable && spec.key == [i] && sqlite_type(c.ty) == "INTEGER";
            let ty = if alias { "INT" } else { sqlite_type(c.ty) };
            let not_null = if c.nullable { "" } else { " NOT NULL" };
            format!("{} {ty}{not_null}", quote(&c.name)).replace("  ", " ")
        })
        .collect();
    if spec.is_multiset() {
        defs.push(format!("{COUNT_COLUMN} INTEGER NOT NULL"));
    }
    let key: Vec<String> = spec.key.iter().map(|&k| quote(&spec.columns[k].name)).collect();
    if !key.is_empty() {
        defs.push(format!("PRIMARY KEY ({})", key.join(", ")));
    }
    format!("CREATE TABLE {} ({})", quote(table), defs.join(", "))
}

/// `"a" IS ?1 AND "b" IS ?2` over `columns` (NULL-safe: `IS` uses the index).
fn matches(spec: &ViewSpec, columns: &[usize], first: usize) -> String {
    let terms: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, &c)| format!("{} IS ?{}", quote(&spec.columns[c].name), first + i))
        .collect();
    if terms.is_empty() {
        "1".to_owned()
    } else {
        terms.join(" AND ")
    }
}

fn insert_sql(table: &str, spec: &ViewSpec) -> String {
    let columns = table_columns(spec);
    let names: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    let params: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!("INSERT INTO {} ({}) VALUES ({})", quote(table), names.join(", "), params.join(", "))
}

fn values(row: &Row) -> Vec<rusqlite::types::Value> {
    row.iter().map(|d| to_sqlite(&d)).collect()
}

/// Writes one view's consolidated changes in the open transaction.
fn write_changes(tx: &rusqlite::Transaction<'_>, spec: &ViewSpec, changes: &[(Row, Diff)]) -> rusqlite::Result<()> {
    let table = quote(&spec.name);
    if spec.is_multiset() {
        let all: Vec<usize> = (0..spec.columns.len()).collect();
        let n = spec.columns.len();
        let mut update = tx.prepare_cached(&format!(
            "UPDATE {table} SET {COUNT_COLUMN} = {COUNT_COLUMN} + ?{} WHERE {}",
            n + 1,
            matches(spec, &all, 1)
        ))?;
        let mut insert = tx.prepare_cached(&insert_sql(&spec.name, spec))?;
        let mut delete = tx
            .prepare_cached(&format!("DELETE FROM {table} WHERE {COUNT_COLUMN} <= 0 AND {}", matches(spec, &all, 1)))?;
        for (row, diff) in changes {
            let mut vals = values(row);
            vals.push(rusqlite::types::Value::Integer(*diff));
            if update.execute(params_from_iter(&vals))? == 0 && *diff > 0 {
                insert.execute(params_from_iter(&vals))?;
            }
            if *diff < 0 {
                vals.pop();
                delete.execute(params_from_iter(&vals))?;
            }
        }
        return Ok(());
    }
    // A row inserted replaces its key's old row (INSERT OR REPLACE on the
    // primary key); a key is deleted only when nothing replaces it. A NULL
    // in the key never conflicts, so such a key is deleted (with IS) first.
    let key_of = |row: &Row| Row::pack(spec.key.iter().map(|&k| row.get(k)));
    let replaced: std::collections::HashSet<Row> =
        changes.iter().filter(|(r, d)| *d > 0 && !key_of(r).has_null()).map(|(r, _)| key_of(r)).collect();
    let mut delete = tx.prepare_cached(&format!("DELETE FROM {table} WHERE {}", matches(spec, &spec.key, 1)))?;
    for (row, _) in changes {
        let key = key_of(row);
        if !replaced.contains(&key) {
            delete.execute(params_from_iter(key.iter().map(|d| to_sqlite(&d))))?;
        }
    }
    let mut insert = tx.prepare_cached(&insert_sql(&spec.name, spec).replacen("INSERT", "INSERT OR REPLACE", 1))?;
    for (row, _) in changes.iter().filter(|(_, d)| *d > 0) {
        insert.execute(params_from_iter(values(row)))?;
    }
    Ok(())
}

fn store_position(tx: &rusqlite::Transaction<'_>, view: &str, position: Position) -> rusqlite::Result<()> {
    tx.prepare_cached(&format!(
        "INSERT INTO {POSITIONS} (view, position) VALUES (?1, ?2) \
         ON CONFLICT (view) DO UPDATE SET position = excluded.position"
    ))?
    .execute(rusqlite::params![view, position.0 as i64])?;
    Ok(())
}

impl Sink for SqliteSink {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn open(&mut self, views: &[ViewSpec]) -> Result<Vec<Option<Position>>, SinkError> {
        // A feed's fanned-out rows are the table `{feed}__fanout`.
        self.views = views.iter().map(crate::feed::as_table).collect();
        let views = self.views.clone();
        let target = self.target();
        let conn = self.conn()?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {POSITIONS} (view TEXT PRIMARY KEY, position INTEGER NOT NULL)"
        ))
        .map_err(|e| classify(&target, "creating the positions table", e))?;
        let mut positions = Vec::with_capacity(views.len());
        for spec in &views {
            let columns: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
                .and_then(|mut s| s.query_map([&spec.name], |r| r.get(0))?.collect())
                .map_err(|e| classify(&target, "reading a table's columns", e))?;
            let stored: Option<i64> = conn
                .query_row(&format!("SELECT position FROM {POSITIONS} WHERE view = ?1"), [&spec.name], |r| r.get(0))
                .optional()
                .map_err(|e| classify(&target, "reading the positions", e))?;
            if !columns.is_empty() && stored.is_none() {
                return Err(SinkError::Definite {
                    target,
                    action: format!("opening table \"{}\"", spec.name),
                    hint: format!(
                        "a table \"{}\" exists that denorm did not create (it has no row in {POSITIONS}); rename or drop \
                         it, or write the view to another file",
                        spec.name
                    ),
                    source: None,
                });
            }
            // A table of another shape (the view changed) is rebuilt.
            let same = columns == table_columns(spec);
            positions.push(stored.filter(|_| same).map(|p| Position(p as u64)));
        }
        Ok(positions)
    }

    fn apply(&mut self, batch: &SinkBatch) -> Result<(), SinkError> {
        let target = self.target();
        let views = self.views.clone();
        let conn = self.conn()?;
        let err = |action: &str| {
            let target = target.clone();
            let action = action.to_owned();
            move |e| classify(&target, &action, e)
        };
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err("starting a transaction"))?;
        for (spec, changes) in views.iter().zip(&batch.views) {
            let Some(changes) = changes else { continue };
            write_changes(&tx, spec, changes).map_err(err(&format!("writing view \"{}\"", spec.name)))?;
            store_position(&tx, &spec.name, batch.position).map_err(err("storing the position"))?;
        }
        tx.commit().map_err(err("committing a batch"))
    }

    fn rebuild(
        &mut self,
        view: usize,
        rows: &mut dyn Iterator<Item = (&Row, Diff)>,
        position: Position,
    ) -> Result<(), SinkError> {
        let target = self.target();
        let spec = self.views[view].clone();
        let conn = self.conn()?;
        let err = |action: &str| {
            let target = target.clone();
            let action = action.to_owned();
            move |e| classify(&target, &action, e)
        };
        let new = format!("{}__new", spec.name);
        conn.execute_batch(&format!("DROP TABLE IF EXISTS {}; {}", quote(&new), create_table(&new, &spec)))
            .map_err(err("creating the new table"))?;
        let insert = insert_sql(&new, &spec);
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            let tx =
                conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err("filling the new table"))?;
            {
                let mut statement = tx.prepare_cached(&insert).map_err(err("filling the new table"))?;
                for (row, diff) in rows.by_ref().take(REBUILD_CHUNK) {
                    let mut vals = values(row);
                    if spec.is_multiset() {
                        vals.push(rusqlite::types::Value::Integer(diff));
                    }
                    statement.execute(params_from_iter(&vals)).map_err(err("filling the new table"))?;
                }
            }
            tx.commit().map_err(err("filling the new table"))?;
        }
        let tx =
            conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(err("swapping the new table in"))?;
        // A feed's SQL view is dropped before the swap (a rename checks the
        // views that name the table) and made again once every part exists.
        let mut swap = spec.feed.as_ref().map_or(String::new(), |f| format!("DROP VIEW IF EXISTS {};", quote(&f.feed)));
        swap += &format!(
            "DROP TABLE IF EXISTS {table}; ALTER TABLE {new} RENAME TO {table};",
            table = quote(&spec.name),
            new = quote(&new)
        );
        for (i, index) in spec.indexes.iter().enumerate() {
            let columns: Vec<String> = index.iter().map(|&c| quote(&spec.columns[c].name)).collect();
            swap.push_str(&format!(
                "CREATE INDEX {} ON {} ({});",
                quote(&format!("{}__i{i}", spec.name)),
                quote(&spec.name),
                columns.join(", ")
            ));
        }
        tx.execute_batch(&swap).map_err(err("swapping the new table in"))?;
        if let Some(feed) = &spec.feed {
            create_feed_view(&tx, feed).map_err(err("creating the feed's view"))?;
        }
        store_position(&tx, &spec.name, position).map_err(err("storing the position"))?;
        tx.commit().map_err(err("swapping the new table in"))
    }

    fn read(&mut self, view: usize) -> Result<Vec<(Row, Diff)>, SinkError> {
        let target = self.target();
        let spec = self.views[view].clone();
        let conn = self.conn()?;
        let names: Vec<String> = table_columns(&spec).iter().map(|c| quote(c)).collect();
        let sql = format!("SELECT {} FROM {}", names.join(", "), quote(&spec.name));
        let mut statement = conn.prepare(&sql).map_err(|e| classify(&target, "reading a view's table", e))?;
        let multiset = spec.is_multiset();
        let rows = statement
            .query_map([], |r| {
                let datums: Vec<_> = (0..spec.columns.len())
                    .map(|i| r.get_ref(i).map(|v| from_sqlite(spec.columns[i].ty, v)))
                    .collect::<Result<_, _>>()?;
                let diff: Diff = if multiset { r.get(spec.columns.len())? } else { 1 };
                Ok((Row::pack(datums.iter().map(|d| d.borrowed())), diff))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| classify(&target, "reading a view's table", e))?;
        Ok(rows)
    }

    fn read_keys(&mut self, view: usize, key: &[usize], keys: &[Row]) -> Result<Vec<(Row, Diff)>, SinkError> {
        let target = self.target();
        let spec = self.views[view].clone();
        let conn = self.conn()?;
        let names: Vec<String> = table_columns(&spec).iter().map(|c| quote(c)).collect();
        let sql = format!("SELECT {} FROM {} WHERE {}", names.join(", "), quote(&spec.name), matches(&spec, key, 1));
        let mut statement = conn.prepare(&sql).map_err(|e| classify(&target, "reading a view's table", e))?;
        let multiset = spec.is_multiset();
        let mut out = Vec::new();
        for k in keys {
            let rows = statement
                .query_map(params_from_iter(k.iter().map(|d| to_sqlite(&d))), |r| {
                    let datums: Vec<_> = (0..spec.columns.len())
                        .map(|i| r.get_ref(i).map(|v| from_sqlite(spec.columns[i].ty, v)))
                        .collect::<Result<_, _>>()?;
                    let diff: Diff = if multiset { r.get(spec.columns.len())? } else { 1 };
                    Ok((Row::pack(datums.iter().map(|d| d.borrowed())), diff))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(|e| classify(&target, "reading a view's table", e))?;
            out.extend(rows);
        }
        Ok(out)
    }

    /// Other writers share the file (maybe the source database): merged
    /// batches stay small so that the write lock is held briefly.
    fn merge_limit(&self) -> usize {
        MERGE_LIMIT
    }

    fn stored(&self, view: usize, row: &Row) -> Row {
        let spec = &self.views[view];
        Row::pack(
            row.iter()
                .zip(&spec.columns)
                .map(|(d, c)| sqlite_stored(c.ty, &d))
                .collect::<Vec<_>>()
                .iter()
                .map(|d| d.borrowed()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ColumnSpec;
    use denorm_types::{Datum, ScalarType};

    fn spec(key: Vec<usize>) -> ViewSpec {
        ViewSpec {
            name: "stats".into(),
            columns: vec![
                ColumnSpec { name: "id".into(), ty: ScalarType::Int, nullable: true },
                ColumnSpec { name: "n".into(), ty: ScalarType::Float, nullable: true },
            ],
            key,
            indexes: vec![vec![1]],
            ..Default::default()
        }
    }

    fn row(id: Option<i64>, n: f64) -> Row {
        Row::pack([id.map_or(Datum::Null, Datum::Int), Datum::Float(n)])
    }

    fn sorted(mut rows: Vec<(Row, Diff)>) -> Vec<(Row, Diff)> {
        rows.sort();
        rows
    }

    /// Rebuild, then batches (an update, a NULL key, a delete) and the
    /// positions, read back through the sink and through plain SQL.
    #[test]
    fn keyed_view_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sink.db");
        let mut sink = SqliteSink::new(path.clone());
        assert_eq!(sink.open(&[spec(vec![0])]).unwrap(), vec![None]);
        let initial = [(row(Some(1), 1.0), 1), (row(Some(2), 2.0), 1)];
        sink.rebuild(0, &mut initial.iter().map(|(r, d)| (r, *d)), Position(5)).unwrap();
        let batch = SinkBatch {
            position: Position(6),
            committed_at: None,
            views: vec![Some(vec![
                (row(Some(1), 1.0), -1),
                (row(Some(1), 1.5), 1),
                (row(Some(2), 2.0), -1),
                (row(None, 9.0), 1),
            ])],
        };
        sink.apply(&batch).unwrap();
        assert_eq!(sorted(sink.read(0).unwrap()), sorted(vec![(row(Some(1), 1.5), 1), (row(None, 9.0), 1)]));
        // The NULL key's row updated: deleted with IS, not left beside.
        let update = SinkBatch {
            position: Position(6),
            committed_at: None,
            views: vec![Some(vec![(row(None, 9.0), -1), (row(None, 10.0), 1)])],
        };
        sink.apply(&update).unwrap();
        assert_eq!(sorted(sink.read(0).unwrap()), sorted(vec![(row(Some(1), 1.5), 1), (row(None, 10.0), 1)]));
        assert_eq!(sink.open(&[spec(vec![0])]).unwrap(), vec![Some(Position(6))]);
        let conn = Connection::open(&path).unwrap();
        let index: String =
            conn.query_row("SELECT name FROM pragma_index_list('stats') WHERE origin = 'c'", [], |r| r.get(0)).unwrap();
        assert_eq!(index, "stats__i0");
    }

    #[test]
    fn multiset_view_counts_copies() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = SqliteSink::new(dir.path().join("sink.db"));
        sink.open(&[spec(vec![0, 1])]).unwrap();
        sink.rebuild(0, &mut std::iter::empty(), Position(1)).unwrap();
        let batch = |changes| SinkBatch { position: Position(2), committed_at: None, views: vec![Some(changes)] };
        sink.apply(&batch(vec![(row(None, 1.0), 3), (row(Some(2), 2.0), 1)])).unwrap();
        sink.apply(&batch(vec![(row(None, 1.0), -1), (row(Some(2), 2.0), -1)])).unwrap();
        assert_eq!(sink.read(0).unwrap(), vec![(row(None, 1.0), 2)]);
    }

    #[test]
    fn a_table_denorm_did_not_create_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE stats (id INTEGER, n REAL)").unwrap();
        let error = SqliteSink::new(path).open(&[spec(vec![0])]).unwrap_err();
        assert!(error.to_string().contains("did not create"), "{error}");
    }
}
