//! SQLite: open the source database, read its catalog, and capture its
//! changes.
//!
//! * [`read_catalog`] — the tables the planner checks views against.
//! * [`SqliteCapture`] — trigger-based change data capture: installs
//!   triggers that log every change of the columns views read into
//!   `_denorm_changes`, then hands out a [`Snapshot`] and [`ChangeBatch`]es
//!   that join it exactly. See [`capture`] for the protocol and its traps,
//!   and [`wakeup`] for blocking until the next commit.
//! * [`uninstall`] — removes every `_denorm_` object.
//! * [`decode_row`] — the pure decoder of the log's row text.
//!
//! Traps worth knowing about the catalog:
//!
//! * SQLite types are per value, not per column. A column's *declared* type
//!   only gives it an affinity (<https://www.sqlite.org/datatype3.html>,
//!   section 3.1), which is all [`column_type`] can go by.
//! * A `PRIMARY KEY` column may hold NULL in an ordinary rowid table (a
//!   historical SQLite bug kept for compatibility), unless it is the
//!   `INTEGER PRIMARY KEY` rowid alias or the table is `WITHOUT ROWID`.
//! * A UNIQUE index lets several rows hold NULL in its columns; the planner
//!   must combine [`TableSchema::unique_keys`] with column nullability before
//!   it calls a key proven.

use std::path::{Path, PathBuf};

use denorm_types::{Catalog, Collation, ColumnSchema, ScalarType, TableSchema};
use rusqlite::{Connection, OpenFlags};

use crate::error::InitError;
use crate::SourceError;

mod batch;
pub mod capture;
mod decode;
mod source;
mod triggers;
pub mod wakeup;

pub use capture::{
    CaptureSpec, CapturedTable, ChangeBatch, CommitTime, Poll, Snapshot, SnapshotProgress, SqliteCapture, Undecodable,
    INSTALL_BUSY_TIMEOUT, RELEASE_BATCH, RELEASE_BUSY_TIMEOUT,
};
pub use decode::{decode_row, DecodeError};
pub use source::SqliteSource;
pub use triggers::{uninstall, Uninstalled};
pub use wakeup::{WakeReason, Wakeup, POLL_INTERVAL};

/// Opens an existing SQLite database read-only. A missing file is an error
/// (naming the path) rather than a new empty database, and so is a file that
/// is not a SQLite database.
pub fn open_read_only(path: impl AsRef<Path>) -> Result<Connection, SourceError> {
    let path = path.as_ref();
    if !path.is_file() {
        return Err(SourceError::NotFound { path: path.to_path_buf() });
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|source| SourceError::Open { path: path.to_path_buf(), source })?;
    // Opening is lazy: the header is only read by the first statement.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())).map_err(|source| {
        if crate::error::is_busy(&source) {
            SourceError::Busy { path: path.to_path_buf(), what: "opening the database".into(), source }
        } else {
            SourceError::NotADatabase { path: path.to_path_buf(), source }
        }
    })?;
    Ok(conn)
}

/// Creates the database at `path` by running the SQL in `schema`, unless
/// `path` already exists. Returns whether it created the database.
///
/// The database is built under a temporary name beside `path` and renamed
/// into place, so a failing schema leaves no half-made file behind and a
/// concurrent reader never sees one.
pub fn create_if_missing(path: &Path, schema: &Path) -> Result<bool, SourceError> {
    if path.exists() {
        return Ok(false);
    }
    let init_error = |source| SourceError::Init { path: path.to_path_buf(), schema: schema.to_path_buf(), source };
    let sql = std::fs::read_to_string(schema).map_err(|e| init_error(InitError::Read(e)))?;
    let staging = staging_path(path);
    let built = build_database(&staging, &sql);
    if let Err(e) = built {
        let _ = std::fs::remove_file(&staging);
        return Err(init_error(InitError::Sql(e)));
    }
    if let Err(e) = std::fs::rename(&staging, path) {
        let _ = std::fs::remove_file(&staging);
        return Err(init_error(InitError::Rename(e)));
    }
    Ok(true)
}

fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".init-{}", std::process::id()));
    path.with_file_name(name)
}

fn build_database(path: &Path, sql: &str) -> Result<(), rusqlite::Error> {
    let _ = std::fs::remove_file(path);
    let mut conn = Connection::open(path)?;
    let tx = conn.transaction()?;
    tx.execute_batch(sql)?;
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)
}

/// Reads every user table of the `main` schema: columns with types and
/// nullability, the primary key in key order, and the unique indexes.
///
/// Skipped: SQLite's own tables (`sqlite_%`), denorm's bookkeeping tables
/// (`_denorm_%`), views, virtual tables and their shadow tables (none of them
/// can carry the triggers change capture needs).
pub fn read_catalog(conn: &Connection) -> Result<Catalog, SourceError> {
    // One read transaction (a savepoint: it nests in a caller's): every
    // statement below sees one schema, so a table another connection drops
    // or renames meanwhile (an application's DDL, a sink swapping in a
    // rebuilt table) is wholly there or wholly gone, never listed and then
    // missing. Nothing is written: releasing commits nothing.
    conn.execute_batch("SAVEPOINT denorm_read_catalog").map_err(introspect("opening a read transaction"))?;
    let read = read_catalog_in_transaction(conn);
    let released = conn.execute_batch("RELEASE denorm_read_catalog");
    let catalog = read?;
    released.map_err(introspect("ending the read transaction"))?;
    Ok(catalog)
}

fn read_catalog_in_transaction(conn: &Connection) -> Result<Catalog, SourceError> {
    let mut catalog = Catalog::new();
    for (name, without_rowid) in user_tables(conn)? {
        let mut table = read_table(conn, &name, without_rowid)?;
        read_collations(conn, &mut table, &mut catalog)?;
        if !without_rowid {
            // The largest rowid: the row count of a table rows are appended
            // to, found in O(log n) (a hint for the planner's join order).
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            let largest: Option<i64> = conn
                .query_row(&format!("SELECT max(rowid) FROM {quoted}"), [], |r| r.get(0))
                .map_err(introspect(format!("estimating the rows of {name}")))?;
            catalog.set_row_estimate(&name, largest.unwrap_or(0).max(0) as u64);
        }
        catalog.add(table);
    }
    Ok(catalog)
}

/// A datum as a SQLite statement parameter; the values only PostgreSQL has
/// (numeric, dates, intervals…) as their PostgreSQL text.
pub fn to_sql_value(value: &denorm_types::Datum<'_>) -> rusqlite::types::Value {
    use denorm_types::Datum;
    use rusqlite::types::Value as V;
    match value {
        Datum::Null => V::Null,
        Datum::Bool(b) => V::Integer(i64::from(*b)),
        Datum::Int(i) => V::Integer(*i),
        Datum::Float(f) => V::Real(*f),
        Datum::Text(t) => V::Text(t.to_string()),
        Datum::Blob(b) => V::Blob(b.to_vec()),
        other => V::Text(other.pg_text().unwrap_or_default()),
    }
}

fn introspect(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Introspect { what, source }
}

/// Names of the user tables, with whether each is `WITHOUT ROWID`.
fn user_tables(conn: &Connection) -> Result<Vec<(String, bool)>, SourceError> {
    let query = "SELECT name, wr FROM pragma_table_list WHERE schema = 'main' AND type = 'table' ORDER BY name";
    let mut stmt = conn.prepare(query).map_err(introspect("listing tables"))?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, bool>(1)?)))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(introspect("listing tables"))?;
    Ok(rows.into_iter().filter(|(name, _)| is_user_table(name)).collect())
}

fn is_user_table(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !lower.starts_with("sqlite_") && !lower.starts_with("_denorm_")
}

/// One row of `PRAGMA table_xinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawColumn {
    name: String,
    declared_type: String,
    not_null: bool,
    /// 1-based position in the primary key, 0 when not part of it.
    pk: usize,
}

fn read_table(conn: &Connection, table: &str, without_rowid: bool) -> Result<TableSchema, SourceError> {
    let raw = raw_columns(conn, table)?;
    let mut pk: Vec<(usize, usize)> =
        raw.iter().enumerate().filter(|(_, c)| c.pk > 0).map(|(i, c)| (c.pk, i)).collect();
    pk.sort_unstable();
    let primary_key: Vec<usize> = pk.into_iter().map(|(_, i)| i).collect();
    let rowid_alias =
        !without_rowid && primary_key.len() == 1 && raw[primary_key[0]].declared_type.eq_ignore_ascii_case("INTEGER");
    let mut columns = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let ty = column_type(&c.declared_type).unwrap_or(ScalarType::Any);
        // Only these primary keys reject NULL without a NOT NULL constraint.
        let pk_not_null = primary_key.contains(&i) && (rowid_alias || without_rowid);
        columns.push(ColumnSchema { name: c.name.clone(), ty, nullable: !(c.not_null || pk_not_null) });
    }
    let mut schema = TableSchema { name: table.to_string(), columns, primary_key, unique_keys: Vec::new() };
    schema.unique_keys = unique_keys(conn, &schema)?;
    Ok(schema)
}

fn raw_columns(conn: &Connection, table: &str) -> Result<Vec<RawColumn>, SourceError> {
    let what = || format!("columns of table {table}");
    // hidden: 0 ordinary, 1 hidden column of a virtual table, 2/3 generated
    // (virtual/stored). Generated columns are readable like any other.
    let query = "SELECT name, type, \"notnull\", pk FROM pragma_table_xinfo(?1) WHERE hidden <> 1 ORDER BY cid";
    let mut stmt = conn.prepare(query).map_err(introspect(what()))?;
    let rows = stmt
        .query_map([table], |r| {
            Ok(RawColumn {
                name: r.get(0)?,
                declared_type: r.get(1)?,
                not_null: r.get(2)?,
                pk: r.get::<_, i64>(3)? as usize,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(introspect(what()))?;
    Ok(rows)
}

/// Records each column's declared collation (`c TEXT COLLATE NOCASE`) in
/// the catalog, as SQLite itself resolves it (`sqlite3_table_column_metadata`,
/// so no DDL parsing). A collation SQLite does not build in (an application
/// or extension collation such as ICU's) has no known order: the column
/// becomes unsupported, so only the views that read it are refused.
fn read_collations(conn: &Connection, table: &mut TableSchema, catalog: &mut Catalog) -> Result<(), SourceError> {
    for column in &mut table.columns {
        let what = || format!("collation of column {}.{}", table.name, column.name);
        let (_, collation, ..) =
            conn.column_metadata(None, table.name.as_str(), column.name.as_str()).map_err(introspect(what()))?;
        let name = collation.map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        match Collation::from_name(if name.is_empty() { "BINARY" } else { &name }) {
            Some(c) => catalog.set_collation(&table.name, &column.name, c),
            None => {
                catalog.set_unsupported_type(&table.name, &column.name, format!("{} COLLATE {name}", column.ty));
                column.ty = ScalarType::Unsupported;
            }
        }
    }
    Ok(())
}

/// Column sets of the table's complete (not partial) UNIQUE indexes and
/// constraints, other than the primary key. Indexes over expressions are
/// skipped: they constrain no column set.
fn unique_keys(conn: &Connection, table: &TableSchema) -> Result<Vec<Vec<usize>>, SourceError> {
    let what = || format!("indexes of table {}", table.name);
    let query =
        "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" = 1 AND partial = 0 AND origin <> 'pk' ORDER BY name";
    let mut stmt = conn.prepare(query).map_err(introspect(what()))?;
    let indexes = stmt
        .query_map([&table.name], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(introspect(what()))?;
    let mut keys: Vec<Vec<usize>> = Vec::new();
    for index in indexes {
        if let Some(key) = index_columns(conn, table, &index)? {
            if key != table.primary_key && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    Ok(keys)
}

/// The table column positions of `index` in index order, or `None` when a
/// part of it is an expression.
fn index_columns(conn: &Connection, table: &TableSchema, index: &str) -> Result<Option<Vec<usize>>, SourceError> {
    let what = || format!("columns of index {index}");
    let query = "SELECT name FROM pragma_index_info(?1) ORDER BY seqno";
    let mut stmt = conn.prepare(query).map_err(introspect(what()))?;
    let names = stmt
        .query_map([index], |r| r.get::<_, Option<String>>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(introspect(what()))?;
    Ok(names.iter().map(|n| n.as_deref().and_then(|n| table.column_index(n))).collect())
}

/// The scalar type denorm reads a column as, from its declared type by
/// SQLite's affinity rules, applied in SQLite's order:
///
/// 1. contains `INT` → integer;
/// 2. contains `CHAR`, `CLOB` or `TEXT` → text;
/// 3. contains `BLOB`, or no declared type → `None`: BLOB affinity (no
///    affinity), values keep whatever storage class they were written with;
///    [`read_catalog`] types the column [`ScalarType::Any`];
/// 4. contains `REAL`, `FLOA` or `DOUB` → double;
/// 5. otherwise NUMERIC affinity, which denorm refines:
///    * contains `BOOL` → integer (SQLite stores booleans as 0 and 1);
///    * contains `DATE` or `TIME` → text (SQLite has no date type; its date
///      functions read and write ISO-8601 text, which NUMERIC affinity keeps
///      as text);
///    * anything else (`NUMERIC`, `DECIMAL(10,2)`, …) → double, so exact
///      decimals become binary floating point.
pub fn column_type(declared: &str) -> Option<ScalarType> {
    let t = declared.to_ascii_uppercase();
    let has = |parts: &[&str]| parts.iter().any(|p| t.contains(p));
    if has(&["INT"]) {
        Some(ScalarType::Int)
    } else if has(&["CHAR", "CLOB", "TEXT"]) {
        Some(ScalarType::Text)
    } else if t.trim().is_empty() || has(&["BLOB"]) {
        None
    } else if has(&["REAL", "FLOA", "DOUB"]) {
        Some(ScalarType::Float)
    } else if has(&["BOOL"]) {
        Some(ScalarType::Int)
    } else if has(&["DATE", "TIME"]) {
        Some(ScalarType::Text)
    } else {
        Some(ScalarType::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog_of(sql: &str) -> Result<Catalog, SourceError> {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(sql).unwrap();
        read_catalog(&conn)
    }

    fn column<'a>(table: &'a TableSchema, name: &str) -> &'a ColumnSchema {
        &table.columns[table.column_index(name).unwrap()]
    }

    /// Regression (issue 11): declared collations were not read, so a
    /// NOCASE column grouped `Paris` and `paris` apart.
    #[test]
    fn declared_collations_are_read() {
        let catalog = catalog_of(
            "CREATE TABLE \"Cities\" (id INTEGER PRIMARY KEY, city TEXT COLLATE nocase NOT NULL, \
             code VARCHAR(3) COLLATE RTRIM, plain TEXT, b TEXT COLLATE BINARY, \
             g TEXT GENERATED ALWAYS AS (city) STORED COLLATE NOCASE);",
        )
        .unwrap();
        let collation = |c: &str| catalog.collation("cities", c);
        assert_eq!(collation("city"), Collation::NoCase);
        assert_eq!(collation("CODE"), Collation::Rtrim);
        assert_eq!(collation("plain"), Collation::Binary);
        assert_eq!(collation("b"), Collation::Binary);
        assert_eq!(collation("g"), Collation::NoCase);
        assert_eq!(column(catalog.get("cities").unwrap(), "city").ty, ScalarType::Text);
    }

    #[test]
    fn affinity_rules_in_sqlite_order() {
        use ScalarType::*;
        let cases = [
            ("INTEGER", Some(Int)),
            ("int", Some(Int)),
            ("BIGINT", Some(Int)),
            ("UNSIGNED BIG INT", Some(Int)),
            // Rule 1 wins over rule 4: SQLite's own documented example.
            ("FLOATING POINT", Some(Int)),
            ("POINT", Some(Int)),
            ("VARCHAR(255)", Some(Text)),
            ("NCHAR(55)", Some(Text)),
            ("CLOB", Some(Text)),
            ("text", Some(Text)),
            // Rule 2 wins over rule 3.
            ("CHARBLOB", Some(Text)),
            ("BLOB", None),
            ("", None),
            ("  ", None),
            ("REAL", Some(Float)),
            ("DOUBLE PRECISION", Some(Float)),
            ("FLOAT", Some(Float)),
            ("BOOLEAN", Some(Int)),
            ("bool", Some(Int)),
            ("DATE", Some(Text)),
            ("DATETIME", Some(Text)),
            ("TIMESTAMP", Some(Text)),
            ("NUMERIC", Some(Float)),
            ("DECIMAL(10,5)", Some(Float)),
            ("STRING", Some(Float)),
        ];
        for (declared, expected) in cases {
            assert_eq!(column_type(declared), expected, "declared type {declared:?}");
        }
    }

    #[test]
    fn reads_columns_types_and_nullability() {
        let catalog = catalog_of(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar VARCHAR(200), score REAL, joined_on DATE);",
        )
        .unwrap();
        let users = catalog.get("USERS").unwrap();
        assert_eq!(users.name, "users");
        let got: Vec<(&str, ScalarType, bool)> =
            users.columns.iter().map(|c| (c.name.as_str(), c.ty, c.nullable)).collect();
        assert_eq!(
            got,
            vec![
                ("id", ScalarType::Int, false),
                ("name", ScalarType::Text, false),
                ("avatar", ScalarType::Text, true),
                ("score", ScalarType::Float, true),
                ("joined_on", ScalarType::Text, true),
            ]
        );
        assert_eq!(users.primary_key, vec![0]);
        assert!(users.unique_keys.is_empty());
    }

    #[test]
    fn primary_key_in_key_order_not_column_order() {
        let catalog =
            catalog_of("CREATE TABLE follows (a INT NOT NULL, b INT NOT NULL, at TEXT, PRIMARY KEY (b, a));").unwrap();
        assert_eq!(catalog.get("follows").unwrap().primary_key, vec![1, 0]);
    }

    #[test]
    fn only_rowid_alias_and_without_rowid_keys_are_implicitly_not_null() {
        let catalog = catalog_of(
            "CREATE TABLE alias (id INTEGER PRIMARY KEY, v INT);
             CREATE TABLE bigint_key (id BIGINT PRIMARY KEY, v INT);
             CREATE TABLE text_key (code TEXT PRIMARY KEY, v INT);
             CREATE TABLE wr (code TEXT PRIMARY KEY, v INT) WITHOUT ROWID;",
        )
        .unwrap();
        assert!(!column(catalog.get("alias").unwrap(), "id").nullable);
        // SQLite lets these hold NULL: only INTEGER PRIMARY KEY aliases the rowid.
        assert!(column(catalog.get("bigint_key").unwrap(), "id").nullable);
        assert!(column(catalog.get("text_key").unwrap(), "code").nullable);
        assert!(!column(catalog.get("wr").unwrap(), "code").nullable);
        assert_eq!(catalog.get("wr").unwrap().primary_key, vec![0]);
    }

    #[test]
    fn table_without_primary_key_has_empty_key() {
        let catalog = catalog_of("CREATE TABLE events (kind TEXT, n INT);").unwrap();
        assert!(catalog.get("events").unwrap().primary_key.is_empty());
    }

    #[test]
    fn unique_constraints_and_indexes_become_unique_keys() {
        let catalog = catalog_of(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, shop INT, slug TEXT,
                                    UNIQUE (shop, slug));
             CREATE UNIQUE INDEX products_slug ON products (slug, shop);
             CREATE UNIQUE INDEX products_sku_again ON products (sku);
             CREATE UNIQUE INDEX products_partial ON products (shop) WHERE shop > 0;
             CREATE UNIQUE INDEX products_expr ON products (lower(slug));
             CREATE INDEX products_shop ON products (shop);",
        )
        .unwrap();
        let mut keys = catalog.get("products").unwrap().unique_keys.clone();
        keys.sort();
        assert_eq!(keys, vec![vec![1], vec![2, 3], vec![3, 2]]);
    }

    #[test]
    fn skips_internal_virtual_and_view_tables() {
        let catalog = catalog_of(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, body TEXT);
             CREATE TABLE _denorm_changes (id INTEGER PRIMARY KEY, payload TEXT);
             CREATE TABLE _DENORM_state (k TEXT);
             CREATE TABLE counters (id INTEGER PRIMARY KEY AUTOINCREMENT, n INT);
             CREATE VIEW recent AS SELECT * FROM posts;
             CREATE VIRTUAL TABLE docs USING fts5(body);
             ANALYZE;",
        )
        .unwrap();
        let names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
        assert_eq!(names, vec!["counters", "posts"]);
    }

    #[test]
    fn generated_columns_are_read() {
        let catalog = catalog_of(
            "CREATE TABLE items (price INT NOT NULL, qty INT NOT NULL, total INT GENERATED ALWAYS AS (price * qty));",
        )
        .unwrap();
        let names: Vec<&str> = catalog.get("items").unwrap().columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["price", "qty", "total"]);
    }

    #[test]
    fn untyped_and_blob_columns_hold_any_value() {
        let catalog = catalog_of("CREATE TABLE files (id INTEGER PRIMARY KEY, data, raw BLOB, name TEXT);").unwrap();
        let files = catalog.get("files").unwrap();
        let types: Vec<ScalarType> = files.columns.iter().map(|c| c.ty).collect();
        assert_eq!(types, vec![ScalarType::Int, ScalarType::Any, ScalarType::Any, ScalarType::Text]);
    }

    #[test]
    fn open_read_only_names_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.db");
        let err = open_read_only(&path).unwrap_err();
        assert!(matches!(err, SourceError::NotFound { .. }));
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert!(!path.exists(), "opening must not create the database");
    }

    #[test]
    fn open_read_only_refuses_a_non_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.db");
        std::fs::write(&path, "this is not a database, just a long enough text file to have a header").unwrap();
        let err = open_read_only(&path).unwrap_err();
        assert!(matches!(err, SourceError::NotADatabase { .. }), "{err:?}");
    }

    #[test]
    fn open_read_only_reads_but_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)").unwrap();
        let conn = open_read_only(&path).unwrap();
        assert!(read_catalog(&conn).unwrap().get("t").is_some());
        assert!(conn.execute("INSERT INTO t VALUES (1)", []).is_err());
    }

    #[test]
    fn create_if_missing_builds_once_and_cleans_up_failures() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("schema.sql");
        let path = dir.path().join("app.db");
        std::fs::write(&schema, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);").unwrap();
        assert!(create_if_missing(&path, &schema).unwrap());
        assert!(!create_if_missing(&path, &schema).unwrap(), "an existing database is left alone");
        let conn = open_read_only(&path).unwrap();
        assert_eq!(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).unwrap(), 1);

        let broken = dir.path().join("broken.sql");
        std::fs::write(&broken, "CREATE TABLE ok (id INT); CREATE TABLE oops (").unwrap();
        let other = dir.path().join("other.db");
        let err = create_if_missing(&other, &broken).unwrap_err();
        assert!(matches!(err, SourceError::Init { source: InitError::Sql(_), .. }), "{err:?}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 3, "no partial database left behind: {left:?}");

        let err = create_if_missing(&other, &dir.path().join("nope.sql")).unwrap_err();
        assert!(matches!(err, SourceError::Init { source: InitError::Read(_), .. }), "{err:?}");
    }
}
