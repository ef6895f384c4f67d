//! The PostgreSQL table sink: one table per view in a schema of the
//! application's database (`schema`, default `denorm`).
//!
//! - A table has the view's columns with their types (see [`crate::value`]:
//!   numeric stays `numeric`, timestamps stay timestamps) and a primary key
//!   on the view's key (`UNIQUE NULLS NOT DISTINCT` when a key column may be
//!   NULL); a multiset view (no key) has a `denorm_count bigint` column with
//!   each distinct row's multiplicity. `WITH (index = …)` indexes are
//!   `<view>_i<N>`. `denorm_sink_positions(view, position)` holds each view's
//!   position.
//! - Every batch is one transaction. Up to [`SMALL_BATCH`] changes: one
//!   round trip of statements over a `VALUES` list of typed literals;
//!   more: the changes are `COPY`ed into a session's temporary table and merged with one `DELETE
//!   … USING` and one `INSERT … SELECT` per view (multisets: `INSERT … ON
//!   CONFLICT DO UPDATE` on the count, then the rows whose count fell to 0
//!   are deleted through a partial index), then the positions are updated.
//! - A rebuild creates `<view>__new`, `COPY`s the rows, adds the key and
//!   indexes, drops the old table and renames the new one (and its indexes)
//!   in one transaction: readers see the old rows until the commit, then
//!   the new ones.
//! - A table of a view's name that denorm did not create (no position row)
//!   is never dropped: opening fails with what to do.

use std::io::Write;

use denorm_types::{Diff, Position, Row, ScalarType};
use postgres::{Client, NoTls, Transaction};

use crate::contract::{Sink, SinkBatch, SinkError, ViewSpec};
use crate::feed::FeedSpec;
use crate::value::{from_pg_text, pg_stored, pg_text, quote};

/// The multiplicity column of a multiset view's table.
pub const COUNT_COLUMN: &str = "denorm_count";
const POSITIONS: &str = "denorm_sink_positions";
/// Batches of at most this many changes are written as one
/// multi-statement transaction of literals (one round trip); larger ones
/// are `COPY`ed into a temporary table and merged.
pub const SMALL_BATCH: usize = 200;
/// Session settings that make the text of values unambiguous.
const SESSION: &str =
    "SET client_encoding = 'UTF8'; SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET extra_float_digits = 3;";

/// A PostgreSQL database the views are written to.
pub struct PostgresSink {
    url: String,
    schema: String,
    client: Option<Client>,
    views: Vec<ViewSpec>,
    /// Batches of at most this many changes take one round trip
    /// ([`SMALL_BATCH`] by default).
    small_batch: usize,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("target", &self.target())
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresSink {
    pub fn new(url: String, schema: String) -> PostgresSink {
        PostgresSink { url, schema, client: None, views: Vec::new(), small_batch: SMALL_BATCH }
    }

    /// Sets the largest batch written in one round trip (0: every batch
    /// is `COPY`ed and merged); for measuring the two paths.
    pub fn with_small_batch(mut self, changes: usize) -> PostgresSink {
        self.small_batch = changes;
        self
    }

    /// `host:port/db` (never the password).
    fn target(&self) -> String {
        match self.url.parse::<postgres::Config>() {
            Ok(config) => {
                let host = match config.get_hosts().first() {
                    Some(postgres::config::Host::Tcp(h)) => h.clone(),
                    #[cfg(unix)]
                    Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
                    None => "localhost".to_owned(),
                };
                let port = config.get_ports().first().copied().unwrap_or(5432);
                format!("postgres {host}:{port}/{}", config.get_dbname().unwrap_or(""))
            }
            Err(_) => "postgres (invalid url)".to_owned(),
        }
    }

    fn table(&self, name: &str) -> String {
        format!("{}.{}", quote(&self.schema), quote(name))
    }

    fn connect(&mut self) -> Result<(), SinkError> {
        let target = self.target();
        let config: postgres::Config = self.url.parse().map_err(|e| SinkError::Definite {
            target: target.clone(),
            action: "reading the url".into(),
            hint: "write url = \"postgres://user@host/db\"".into(),
            source: Some(Box::new(e)),
        })?;
        let mut client = config
            .connect(NoTls)
            .map_err(|e| SinkError::Unreachable { target: target.clone(), source: Box::new(e) })?;
        client.batch_execute(SESSION).map_err(|e| classify(&target, "setting up the session", e))?;
        self.client = Some(client);
        Ok(())
    }
}

/// Transient: connection, serialization, resources, shutdown; the rest is
/// definite (with a hint).
fn classify(target: &str, action: &str, e: postgres::Error) -> SinkError {
    let transient = match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("40") || c.starts_with("53") || c.starts_with("57") || c == "55P03"
        }
    };
    if transient {
        SinkError::Transient { target: target.to_owned(), action: action.to_owned(), source: Box::new(e) }
    } else {
        SinkError::Definite {
            target: target.to_owned(),
            action: action.to_owned(),
            hint: "check the sink role's privileges on the schema and its tables; a rebuild recreates a view's table"
                .to_owned(),
            source: Some(Box::new(e)),
        }
    }
}

/// A column's type as `format_type` prints it (and as it is created).
fn column_type(spec: &ViewSpec, column: usize) -> &'static str {
    let ty = spec.columns[column].ty;
    // json has no equality: a key column holds its text.
    if ty == ScalarType::Json && spec.key.contains(&column) {
        return "text";
    }
    match crate::value::postgres_type(ty) {
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        other => other,
    }
}

fn table_columns(spec: &ViewSpec) -> Vec<(String, &'static str)> {
    let mut columns: Vec<(String, &'static str)> =
        (0..spec.columns.len()).map(|i| (spec.columns[i].name.clone(), column_type(spec, i))).collect();
    if spec.is_multiset() {
        columns.push((COUNT_COLUMN.to_owned(), "bigint"));
    }
    columns
}

fn nullable_key(spec: &ViewSpec) -> bool {
    spec.key.iter().any(|&k| spec.columns[k].nullable)
}

/// `CREATE TABLE` (no constraints: they are added after a rebuild's COPY).
fn create_table(table: &str, spec: &ViewSpec) -> String {
    let defs: Vec<String> = table_columns(spec)
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| {
            let not_null = spec.columns.get(i).is_none_or(|c| !c.nullable);
            format!("{} {ty}{}", quote(name), if not_null { " NOT NULL" } else { "" })
        })
        .collect();
    format!("CREATE TABLE {table} ({})", defs.join(", "))
}

/// One row as a line of `COPY … FROM STDIN` text, with `extra` appended.
fn copy_line(out: &mut Vec<u8>, row: &Row, extra: Option<Diff>) {
    for (i, datum) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match pg_text(&datum) {
            None => out.extend_from_slice(b"\\N"),
            Some(text) => {
                for b in text.bytes() {
                    match b {
                        b'\\' => out.extend_from_slice(b"\\\\"),
                        b'\t' => out.extend_from_slice(b"\\t"),
                        b'\n' => out.extend_from_slice(b"\\n"),
                        b'\r' => out.extend_from_slice(b"\\r"),
                        _ => out.push(b),
                    }
                }
            }
        }
    }
    if let Some(extra) = extra {
        let _ = write!(out, "\t{extra}");
    }
    out.push(b'\n');
}

fn copy_in(
    tx: &mut impl postgres::GenericClient,
    table: &str,
    rows: &mut dyn Iterator<Item = (&Row, Diff)>,
    with_diff: bool,
) -> Result<u64, postgres::Error> {
    let mut writer = tx.copy_in(&format!("COPY {table} FROM STDIN"))?;
    let mut buffer = Vec::with_capacity(1 << 16);
    for (row, diff) in rows {
        copy_line(&mut buffer, row, with_diff.then_some(diff));
        if buffer.len() >= 1 << 16 {
            // An I/O error here shows again (as a postgres::Error) at finish.
            if writer.write_all(&buffer).is_err() {
                break;
            }
            buffer.clear();
        }
    }
    let _ = writer.write_all(&buffer);
    writer.finish()
}

/// `t.a = c.a AND …` over the key (`IS NOT DISTINCT FROM` where NULL may be).
fn key_match(spec: &ViewSpec, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|&k| {
            let name = quote(&spec.columns[k].name);
            if spec.columns[k].nullable {
                format!("t.{name} IS NOT DISTINCT FROM c.{name}")
            } else {
                format!("t.{name} = c.{name}")
            }
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// `'text'` with quotes doubled (standard_conforming_strings is on since
/// PostgreSQL 9.1).
fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One change as a `VALUES` row: each value as its text cast to the
/// column's type (what COPY reads), then the diff.
fn values_row(spec: &ViewSpec, row: &Row, diff: Diff) -> String {
    let mut out = String::from("(");
    for (i, datum) in row.iter().enumerate() {
        let ty = column_type(spec, i);
        match pg_text(&datum) {
            None => out.push_str(&format!("NULL::{ty}, ")),
            Some(text) => out.push_str(&format!("{}::{ty}, ", text_literal(&text))),
        }
    }
    out.push_str(&format!("{diff}::bigint)"));
    out
}

fn changes_table(view: usize) -> String {
    format!("denorm_changes_{view}")
}

impl PostgresSink {
    /// The SQL that merges `changes` into view `view`'s table: read from
    /// the temporary table they were `COPY`ed into (large batches), or from
    /// a `VALUES` list of typed literals (small ones: one round trip).
    fn merge_sql(&self, view: usize, changes: Option<&[(Row, Diff)]>) -> String {
        let spec = &self.views[view];
        let table = self.table(&spec.name);
        let names: Vec<String> = spec.columns.iter().map(|c| quote(&c.name)).collect();
        let names = names.join(", ");
        let source = match changes {
            None => changes_table(view),
            Some(changes) => {
                let rows: Vec<String> = changes.iter().map(|(row, diff)| values_row(spec, row, *diff)).collect();
                format!("(VALUES {}) AS v ({names}, denorm_diff)", rows.join(", "))
            }
        };
        if spec.is_multiset() {
            format!(
                "INSERT INTO {table} AS t ({names}, {COUNT_COLUMN}) SELECT {names}, denorm_diff FROM {source} \
                 ON CONFLICT ({names}) DO UPDATE SET {COUNT_COLUMN} = t.{COUNT_COLUMN} + excluded.{COUNT_COLUMN}; \
                 DELETE FROM {table} WHERE {COUNT_COLUMN} <= 0;"
            )
        } else {
            format!(
                "DELETE FROM {table} AS t USING (SELECT * FROM {source}) AS c WHERE {}; \
                 INSERT INTO {table} ({names}) SELECT {names} FROM {source} WHERE denorm_diff > 0;",
                key_match(spec, &spec.key)
            )
        }
    }

    fn store_position(
        &self,
        tx: &mut Transaction<'_>,
        views: &[&str],
        position: Position,
    ) -> Result<(), postgres::Error> {
        let names: Vec<String> = views.iter().map(|v| v.to_string()).collect();
        tx.execute(
            &format!(
                "INSERT INTO {} (view, position) SELECT v, $2 FROM unnest($1::text[]) AS v \
                 ON CONFLICT (view) DO UPDATE SET position = excluded.position",
                self.table(POSITIONS)
            ),
            &[&names, &(position.0 as i64)],
        )?;
        Ok(())
    }

    /// A batch's statements up to its COMMIT: the merge of each view's
    /// changes (from a `VALUES` list, or — `copied` — from the temporary
    /// table they were `COPY`ed into, after a BEGIN already sent) and the
    /// positions.
    fn batch_sql(&self, batch: &SinkBatch, copied: bool) -> String {
        let mut sql = String::from(if copied { "" } else { "BEGIN;" });
        let mut advanced = Vec::new();
        for (i, changes) in batch.views.iter().enumerate() {
            let Some(changes) = changes else { continue };
            if !changes.is_empty() {
                sql.push_str(&self.merge_sql(i, (!copied).then_some(changes.as_slice())));
            }
            advanced.push(text_literal(&self.views[i].name));
        }
        if !advanced.is_empty() {
            sql.push_str(&format!(
                "INSERT INTO {} (view, position) SELECT v, {} FROM unnest(ARRAY[{}]::text[]) AS v \
                 ON CONFLICT (view) DO UPDATE SET position = excluded.position;",
                self.table(POSITIONS),
                batch.position.0 as i64,
                advanced.join(", ")
            ));
        }
        sql.push_str("COMMIT;");
        sql
    }

    /// The key constraint and indexes of `table` (named after `name`).
    fn constraints(&self, spec: &ViewSpec, table: &str, name: &str) -> String {
        let quoted = |cols: &[usize]| cols.iter().map(|&c| quote(&spec.columns[c].name)).collect::<Vec<_>>().join(", ");
        let mut sql = String::new();
        let key_columns = if spec.is_multiset() { (0..spec.columns.len()).collect() } else { spec.key.clone() };
        if !key_columns.is_empty() {
            let kind =
                if spec.is_multiset() || nullable_key(spec) { "UNIQUE NULLS NOT DISTINCT" } else { "PRIMARY KEY" };
            sql.push_str(&format!(
                "ALTER TABLE {table} ADD CONSTRAINT {} {kind} ({});",
                quote(&format!("{name}_key")),
                quoted(&key_columns)
            ));
        }
        if spec.is_multiset() {
            sql.push_str(&format!(
                "CREATE INDEX {} ON {table} ({COUNT_COLUMN}) WHERE {COUNT_COLUMN} <= 0;",
                quote(&format!("{name}_gone"))
            ));
        }
        for (i, index) in spec.indexes.iter().enumerate() {
            sql.push_str(&format!("CREATE INDEX {} ON {table} ({});", quote(&format!("{name}_i{i}")), quoted(index)));
        }
        sql
    }

    /// Creates the SQL view over a feed's part tables once all three exist
    /// (in the rebuild's transaction, which dropped it before its swap).
    fn create_feed_view(&self, tx: &mut postgres::Transaction<'_>, feed: &FeedSpec) -> Result<(), postgres::Error> {
        let tables: Vec<String> = crate::feed::part_tables(&feed.feed).into();
        let found: i64 = tx
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = ANY($2) AND c.relkind = 'r'",
                &[&self.schema, &tables],
            )?
            .get(0);
        if found == 3 {
            tx.batch_execute(&crate::feed::sql_view(feed, &|t| self.table(t)))?;
        }
        Ok(())
    }

    /// The names of the key constraint and the indexes of a view's table.
    fn index_names(spec: &ViewSpec, name: &str) -> Vec<String> {
        let mut names = Vec::new();
        if !spec.key.is_empty() {
            names.push(format!("{name}_key"));
        }
        if spec.is_multiset() {
            names.push(format!("{name}_gone"));
        }
        names.extend((0..spec.indexes.len()).map(|i| format!("{name}_i{i}")));
        names
    }
}

impl Sink for PostgresSink {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn open(&mut self, views: &[ViewSpec]) -> Result<Vec<Option<Position>>, SinkError> {
        // A feed's fanned-out rows are the table `{feed}__fanout`.
        self.views = views.iter().map(crate::feed::as_table).collect();
        let views = self.views.clone();
        let views = views.as_slice();
        self.client = None;
        self.connect()?;
        let target = self.target();
        let schema = self.schema.clone();
        let positions_table = self.table(POSITIONS);
        let mut setup = format!(
            "CREATE SCHEMA IF NOT EXISTS {}; CREATE TABLE IF NOT EXISTS {positions_table} (view text PRIMARY KEY, position bigint NOT NULL);",
            quote(&schema)
        );
        for (i, spec) in views.iter().enumerate() {
            let defs: Vec<String> = table_columns(spec).iter().map(|(n, ty)| format!("{} {ty}", quote(n))).collect();
            setup.push_str(&format!(
                "CREATE TEMP TABLE IF NOT EXISTS {} ({}, denorm_diff bigint);",
                changes_table(i),
                defs[..spec.columns.len()].join(", ")
            ));
        }
        let client = self.client.as_mut().expect("connected");
        client
            .batch_execute(&setup)
            .map_err(|e| classify(&target, "creating the schema and the positions table", e))?;
        let mut positions = Vec::with_capacity(views.len());
        for spec in views {
            let columns: Vec<(String, String)> = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                     JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                    &[&schema, &spec.name],
                )
                .map_err(|e| classify(&target, "reading a table's columns", e))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let stored: Option<i64> = client
                .query_opt(&format!("SELECT position FROM {positions_table} WHERE view = $1"), &[&spec.name])
                .map_err(|e| classify(&target, "reading the positions", e))?
                .map(|r| r.get(0));
            if !columns.is_empty() && stored.is_none() {
                return Err(SinkError::Definite {
                    target,
                    action: format!("opening table {schema}.{}", spec.name),
                    hint: format!(
                        "a table {schema}.{} exists that denorm did not create (it has no row in {schema}.{POSITIONS}); \
                         rename or drop it, or set another schema",
                        spec.name
                    ),
                    source: None,
                });
            }
            let expected: Vec<(String, String)> =
                table_columns(spec).into_iter().map(|(n, t)| (n, t.to_owned())).collect();
            positions.push(stored.filter(|_| columns == expected).map(|p| Position(p as u64)));
        }
        Ok(positions)
    }

    fn apply(&mut self, batch: &SinkBatch) -> Result<(), SinkError> {
        if self.client.is_none() {
            self.connect()?;
        }
        let target = self.target();
        let mut client = self.client.take().expect("connected");
        let result = if batch.changes() <= self.small_batch {
            // One round trip.
            client.batch_execute(&self.batch_sql(batch, false))
        } else {
            // BEGIN + emptying the temporary tables, one COPY per view,
            // then the merges, the positions and COMMIT in one round trip.
            (|| {
                let changed: Vec<usize> = (0..batch.views.len())
                    .filter(|&i| batch.views[i].as_ref().is_some_and(|c| !c.is_empty()))
                    .collect();
                let truncate: Vec<String> =
                    changed.iter().map(|&i| format!("TRUNCATE {};", changes_table(i))).collect();
                client.batch_execute(&format!("BEGIN;{}", truncate.concat()))?;
                for &i in &changed {
                    let changes = batch.views[i].as_deref().unwrap_or_default();
                    copy_in(&mut client, &changes_table(i), &mut changes.iter().map(|(r, d)| (r, *d)), true)?;
                }
                client.batch_execute(&self.batch_sql(batch, true))
            })()
        };
        if result.is_err() {
            // A failed statement leaves the transaction aborted.
            let _ = client.batch_execute("ROLLBACK");
        }
        self.client = Some(client);
        result.map_err(|e| classify(&target, "writing a batch", e))
    }

    fn rebuild(
        &mut self,
        view: usize,
        rows: &mut dyn Iterator<Item = (&Row, Diff)>,
        position: Position,
    ) -> Result<(), SinkError> {
        if self.client.is_none() {
            self.connect()?;
        }
        let target = self.target();
        let spec = self.views[view].clone();
        let new_name = format!("{}__new", spec.name);
        let (table, new) = (self.table(&spec.name), self.table(&new_name));
        let mut client = self.client.take().expect("connected");
        let result = (|| {
            let mut tx = client.transaction()?;
            tx.batch_execute(&format!("DROP TABLE IF EXISTS {new}; {};", create_table(&new, &spec)))?;
            copy_in(&mut tx, &new, rows, spec.is_multiset())?;
            let mut swap = self.constraints(&spec, &new, &new_name);
            swap.push_str(&format!("DROP TABLE IF EXISTS {table}; ALTER TABLE {new} RENAME TO {};", quote(&spec.name)));
            for (old, fresh) in Self::index_names(&spec, &new_name).iter().zip(Self::index_names(&spec, &spec.name)) {
                swap.push_str(&format!("ALTER INDEX {} RENAME TO {};", self.table(old), quote(&fresh)));
            }
            if let Some(feed) = &spec.feed {
                swap.insert_str(0, &format!("DROP VIEW IF EXISTS {};", self.table(&feed.feed)));
            }
            tx.batch_execute(&swap)?;
            if let Some(feed) = &spec.feed {
                self.create_feed_view(&mut tx, feed)?;
            }
            self.store_position(&mut tx, &[&spec.name], position)?;
            tx.commit()
        })();
        self.client = Some(client);
        result.map_err(|e| classify(&target, &format!("rebuilding view \"{}\"", spec.name), e))
    }

    fn read(&mut self, view: usize) -> Result<Vec<(Row, Diff)>, SinkError> {
        if self.client.is_none() {
            self.connect()?;
        }
        let target = self.target();
        let spec = self.views[view].clone();
        let mut select: Vec<String> = spec.columns.iter().map(|c| format!("{}::text", quote(&c.name))).collect();
        select.push(if spec.is_multiset() { COUNT_COLUMN.to_owned() } else { "1::bigint".to_owned() });
        let sql = format!("SELECT {} FROM {}", select.join(", "), self.table(&spec.name));
        let client = self.client.as_mut().expect("connected");
        let rows = client.query(&sql, &[]).map_err(|e| classify(&target, "reading a view's table", e))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let datums: Vec<_> = spec
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let text: Option<String> = r.get(i);
                    text.and_then(|t| from_pg_text(c.ty, &t)).unwrap_or(denorm_types::Datum::Null)
                })
                .collect();
            let diff: i64 = r.get(spec.columns.len());
            out.push((Row::pack(datums.iter().map(|d| d.borrowed())), diff));
        }
        Ok(out)
    }

    fn stored(&self, view: usize, row: &Row) -> Row {
        let spec = &self.views[view];
        let values: Vec<_> = row.iter().zip(&spec.columns).map(|(d, c)| pg_stored(c.ty, &d)).collect();
        Row::pack(values.iter().map(|d| d.borrowed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ColumnSpec;
    use denorm_types::{numeric, Datum};

    /// `DENORM_TEST_POSTGRES_URL` (scripts/postgres start); skipped without.
    fn url() -> Option<String> {
        std::env::var("DENORM_TEST_POSTGRES_URL").ok()
    }

    fn spec(name: &str, key: Vec<usize>) -> ViewSpec {
        ViewSpec {
            name: name.into(),
            columns: vec![
                ColumnSpec { name: "id".into(), ty: ScalarType::Int, nullable: false },
                ColumnSpec { name: "amount".into(), ty: ScalarType::Numeric, nullable: true },
                ColumnSpec { name: "at".into(), ty: ScalarType::Timestamp, nullable: true },
                ColumnSpec { name: "note".into(), ty: ScalarType::Text, nullable: true },
            ],
            key,
            indexes: vec![vec![3]],
            ..Default::default()
        }
    }

    fn row(id: i64, amount: &str, note: &str) -> Row {
        Row::pack([
            Datum::Int(id),
            Datum::Numeric(numeric::parse(amount).unwrap()),
            Datum::Timestamp(1_700_000_000_000_000 + id),
            Datum::text(note),
        ])
    }

    fn sorted(mut rows: Vec<(Row, Diff)>) -> Vec<(Row, Diff)> {
        rows.sort();
        rows
    }

    /// Rebuild (twice: the rename of the indexes must not collide), a batch
    /// with an update, a delete and text needing COPY escapes, then the
    /// rows and position read back; a multiset counts its copies.
    #[test]
    fn tables_round_trip() {
        let Some(url) = url() else { return };
        let schema = format!("sink_test_{}", std::process::id());
        let mut sink = PostgresSink::new(url.clone(), schema.clone());
        let views = [spec("stats", vec![0]), spec("bag", vec![0, 1, 2, 3])];
        assert_eq!(sink.open(&views).unwrap(), vec![None, None]);
        let initial = [(row(1, "1.50", "a"), 1), (row(2, "2", "b"), 1)];
        sink.rebuild(0, &mut initial.iter().map(|(r, d)| (r, *d)), Position(5)).unwrap();
        sink.rebuild(0, &mut initial.iter().map(|(r, d)| (r, *d)), Position(5)).unwrap();
        sink.rebuild(1, &mut std::iter::empty(), Position(5)).unwrap();
        let batch = SinkBatch {
            position: Position(6),
            committed_at: None,
            views: vec![
                Some(vec![(row(1, "1.50", "a"), -1), (row(1, "7.000", "tab\there\\n"), 1), (row(2, "2", "b"), -1)]),
                Some(vec![(row(3, "1", "x"), 2)]),
            ],
        };
        sink.apply(&batch).unwrap();
        let minus = SinkBatch {
            position: Position(7),
            committed_at: None,
            views: vec![None, Some(vec![(row(3, "1", "x"), -1)])],
        };
        sink.apply(&minus).unwrap();
        assert_eq!(sink.read(0).unwrap(), vec![(row(1, "7.000", "tab\there\\n"), 1)]);
        assert_eq!(sorted(sink.read(1).unwrap()), vec![(row(3, "1", "x"), 1)]);
        assert_eq!(sink.open(&views).unwrap(), vec![Some(Position(6)), Some(Position(7))]);
        // A batch past SMALL_BATCH goes through COPY and the merge.
        let many: Vec<(Row, Diff)> = (10..10 + 2 * SMALL_BATCH as i64).map(|id| (row(id, "0.5", "m"), 1)).collect();
        let mut changes = many.clone();
        changes.push((row(1, "7.000", "tab\there\\n"), -1));
        let big =
            SinkBatch { position: Position(8), committed_at: None, views: vec![Some(changes), Some(many.clone())] };
        sink.apply(&big).unwrap();
        assert_eq!(sorted(sink.read(0).unwrap()), sorted(many.clone()));
        assert_eq!(sink.read(1).unwrap().len(), many.len() + 1);
        assert_eq!(sink.open(&views).unwrap(), vec![Some(Position(8)), Some(Position(8))]);
        let mut client = Client::connect(&url, NoTls).unwrap();
        let indexes: Vec<String> = client
            .query(
                "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 AND tablename = 'stats' ORDER BY 1",
                &[&schema],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(indexes, vec!["stats_i0", "stats_key"]);
        client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
    }
}
