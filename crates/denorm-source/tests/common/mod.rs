//! Helpers shared by the capture tests: a temporary database, a separate
//! writing connection, and an oracle that reads table contents directly.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use denorm_source::sqlite::{self, CaptureSpec, CapturedTable, ChangeBatch, Poll, Snapshot, SqliteCapture};
use denorm_types::{Catalog, Datum, Row};
use rusqlite::types::ValueRef;
use rusqlite::Connection;

/// A database file in its own temporary directory.
pub struct Db {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl Db {
    pub fn new(schema: &str) -> Db {
        let dir = temp_dir();
        let path = dir.path().join("app.db");
        Connection::open(&path).unwrap().execute_batch(schema).unwrap();
        Db { _dir: dir, path }
    }

    /// A connection of "the application": not denorm's.
    pub fn writer(&self) -> Connection {
        writer(&self.path)
    }

    pub fn catalog(&self) -> Catalog {
        sqlite::read_catalog(&sqlite::open_read_only(&self.path).unwrap()).unwrap()
    }

    pub fn open(&self, spec: &CaptureSpec) -> SqliteCapture {
        SqliteCapture::open(&self.path, &self.catalog(), spec).unwrap()
    }

    pub fn schema_version(&self) -> i64 {
        self.writer().query_row("PRAGMA schema_version", [], |r| r.get(0)).unwrap()
    }

    pub fn denorm_objects(&self) -> Vec<(String, String)> {
        let conn = self.writer();
        let mut stmt = conn
            .prepare(
                "SELECT type, name FROM sqlite_schema WHERE name LIKE '\\_denorm%' ESCAPE '\\' ORDER BY type, name",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    }

    pub fn log_rows(&self) -> i64 {
        self.writer().query_row("SELECT count(*) FROM _denorm_changes", [], |r| r.get(0)).unwrap()
    }
}

/// A temporary directory, in memory when the machine has /dev/shm: the
/// tests commit thousands of times, and fsync on a disk would dominate.
fn temp_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("denorm-source-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

pub fn writer(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
    conn
}

pub fn spec(tables: &[(&str, &[&str])]) -> CaptureSpec {
    CaptureSpec { tables: tables.iter().map(|(t, cols)| CapturedTable::new(*t, cols.iter().copied())).collect() }
}

/// Multiset contents per table.
pub type Contents = BTreeMap<String, BTreeMap<Row, i64>>;

pub fn from_snapshot(snapshot: &Snapshot) -> Contents {
    let mut contents = Contents::new();
    for (table, rows) in &snapshot.tables {
        let entry = contents.entry(table.clone()).or_default();
        for row in rows {
            *entry.entry(row.clone()).or_default() += 1;
        }
    }
    contents
}

pub fn apply(contents: &mut Contents, batch: &ChangeBatch) {
    for (table, changes) in &batch.tables {
        let entry = contents.entry(table.clone()).or_default();
        for (row, diff) in changes {
            *entry.entry(row.clone()).or_default() += diff;
        }
        entry.retain(|_, n| *n != 0);
    }
}

/// Polls until idle, applying every batch; panics on a schema change.
pub fn drain(capture: &mut SqliteCapture, contents: &mut Contents) -> Vec<ChangeBatch> {
    let mut batches = Vec::new();
    loop {
        match capture.poll().unwrap() {
            Poll::Idle => return batches,
            Poll::Changes(batch) => {
                assert!(batch.undecodable.is_empty(), "{:?}", batch.undecodable);
                apply(contents, &batch);
                batches.push(batch);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The oracle: `tables`' contents read with plain SQL, full width, columns
/// not in the read set NULL.
pub fn contents(path: &Path, tables: &[(&str, &[&str])]) -> Contents {
    let conn = writer(path);
    let mut out = Contents::new();
    for (table, read) in tables {
        let mut stmt = conn.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let keep: Vec<bool> = names.iter().map(|n| read.contains(&"*") || read.iter().any(|r| r == n)).collect();
        let mut rows = stmt.query([]).unwrap();
        let entry = out.entry(table.to_string()).or_default();
        while let Some(row) = rows.next().unwrap() {
            let datums: Vec<Datum<'_>> =
                (0..names.len()).map(|i| if keep[i] { datum(row.get_ref(i).unwrap()) } else { Datum::Null }).collect();
            *entry.entry(Row::pack(&datums)).or_default() += 1;
        }
    }
    out
}

fn datum(value: ValueRef<'_>) -> Datum<'_> {
    match value {
        ValueRef::Null => Datum::Null,
        ValueRef::Integer(i) => Datum::Int(i),
        ValueRef::Real(f) => Datum::Float(f),
        ValueRef::Text(t) => Datum::text(std::str::from_utf8(t).unwrap()),
        ValueRef::Blob(b) => Datum::Blob(b.into()),
    }
}

/// Drops tables with no rows, so that "never seen" and "emptied" compare equal.
pub fn non_empty(mut contents: Contents) -> Contents {
    contents.retain(|_, rows| !rows.is_empty());
    contents
}

/// The stock shell, a separate process linked against the system's SQLite.
pub fn sqlite3_shell() -> &'static Path {
    let shell = Path::new("/usr/bin/sqlite3");
    assert!(
        shell.is_file(),
        "{} is missing: install the Debian package sqlite3 (apt-get install -y sqlite3); \
         this test proves that writes by a stock SQLite are captured",
        shell.display()
    );
    let version = Command::new(shell).arg("--version").output().expect("run sqlite3 --version");
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let parts: Vec<u32> = version.split(['.', ' ']).take(2).map(|p| p.parse().unwrap_or(0)).collect();
    assert!(parts >= vec![3, 38], "{} is SQLite {version}; capture supports 3.38 and later", shell.display());
    shell
}

/// Runs `sql` in the stock shell, stopping at the first error.
pub fn run_shell_output(db: &Path, sql: &str) -> Output {
    let mut child = Command::new(sqlite3_shell())
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!(".timeout 10000\n{sql}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs `sql` in the stock shell; panics when it fails.
pub fn run_shell(db: &Path, sql: &str) {
    let output = run_shell_output(db, sql);
    assert!(output.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&output.stderr));
}
