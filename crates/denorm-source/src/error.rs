use std::path::PathBuf;

/// Everything that can go wrong reading a source database.
///
/// Messages say what was wrong and, where there is something to do, what to
/// do; they never repeat their `source()`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database file named by the configuration is missing. denorm only
    /// reads the source, so it never creates one implicitly.
    #[error("SQLite database {} does not exist; check the path, or create the database first", path.display())]
    NotFound { path: PathBuf },

    #[error("cannot open SQLite database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("{} is not a SQLite database (or is encrypted or corrupt)", path.display())]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("cannot create SQLite database {} from {}", path.display(), schema.display())]
    Init {
        path: PathBuf,
        schema: PathBuf,
        #[source]
        source: InitError,
    },

    /// A query against SQLite's catalog failed.
    #[error("cannot read the schema of the source database ({what})")]
    Introspect {
        what: String,
        #[source]
        source: rusqlite::Error,
    },

    /// A column whose declared type denorm cannot map to one of its scalar
    /// types.
    #[error(
        "column {table}.{column} {}: denorm cannot type it; declare it INTEGER, REAL or TEXT",
        describe_declared(declared_type)
    )]
    UnsupportedColumn { table: String, column: String, declared_type: String },

    /// Change capture writes triggers and a change-log table into the
    /// database, so it needs write access.
    #[error("SQLite database {} is read-only; change capture installs triggers and a change-log table in it, so denorm needs write access to the file and its directory (for the -wal and -shm files)", path.display())]
    ReadOnly { path: PathBuf },

    /// Another connection holds a lock denorm needs. Transient: retry later.
    #[error("SQLite database {} is locked by another connection while {what}; retrying later usually succeeds", path.display())]
    Busy {
        path: PathBuf,
        what: String,
        #[source]
        source: rusqlite::Error,
    },

    /// Any other SQLite failure during change capture. Transient when it is
    /// an I/O error (see [`SourceError::is_transient`]).
    #[error("change capture on SQLite database {} failed while {what}", path.display())]
    Capture {
        path: PathBuf,
        what: String,
        #[source]
        source: rusqlite::Error,
    },

    /// The database cannot be put in WAL mode (an in-memory or read-only
    /// medium, or a VFS without shared memory).
    #[error("cannot switch SQLite database {} to WAL mode (its journal mode stays {mode}); change capture needs WAL so that denorm's reads never block the application's writes: put the database on a local file system", path.display())]
    JournalMode { path: PathBuf, mode: String },

    /// The capture spec names a table the catalog does not have.
    #[error("a view reads table {table}, which is not in the source database's catalog; re-read the catalog and re-plan the views")]
    UnknownTable { table: String },

    /// The capture spec names a column its table does not have.
    #[error("a view reads column {table}.{column}, which the table does not have; re-read the catalog and re-plan the views")]
    UnknownColumn { table: String, column: String },

    /// The captured tables no longer match the catalog the views were planned
    /// against, or denorm's triggers on them are gone (a table rebuilt by the
    /// 12-step ALTER TABLE procedure loses its triggers).
    #[error("the schema of captured table(s) {} changed since the catalog was read; re-read the catalog, re-plan the views and open the capture again", tables.join(", "))]
    SchemaChanged { tables: Vec<String> },

    /// A captured column holds a value denorm has no type for.
    #[error("table {table}, column {column} holds a BLOB value; denorm has no blob type: store TEXT (e.g. hex() or base64) or INTEGER there, or leave the column out of the views")]
    BlobValue { table: String, column: String },

    /// A captured text value is not UTF-8.
    #[error("table {table}, column {column} holds text that is not valid UTF-8; denorm's text is UTF-8: fix the value or leave the column out of the views")]
    InvalidText { table: String, column: String },
}

impl SourceError {
    /// Whether retrying the same call later (with backoff) may succeed:
    /// a busy or locked database, or an I/O hiccup. Everything else is
    /// definite: retrying without changing something fails the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Busy { .. } => true,
            SourceError::Capture { source, .. }
            | SourceError::Open { source, .. }
            | SourceError::Introspect { source, .. } => is_transient_sqlite(source),
            _ => false,
        }
    }
}

/// SQLite result codes that describe a passing condition rather than the
/// database or the request.
pub(crate) fn is_transient_sqlite(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | FileLockingProtocolFailed))
}

/// Whether `e` says another connection holds a lock.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked))
}

/// Why creating a database from a schema file failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot read the schema file")]
    Read(#[source] std::io::Error),
    #[error("the schema SQL failed")]
    Sql(#[source] rusqlite::Error),
    #[error("cannot move the new database into place")]
    Rename(#[source] std::io::Error),
}

fn describe_declared(declared: &str) -> String {
    if declared.trim().is_empty() {
        "has no declared type (BLOB affinity)".to_string()
    } else {
        format!("has declared type {declared:?} (BLOB affinity)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn transient_errors_are_the_passing_ones() {
        let path = || PathBuf::from("app.db");
        let capture = |code| SourceError::Capture { path: path(), what: "x".into(), source: sqlite(code) };
        let cases = [
            (SourceError::Busy { path: path(), what: "x".into(), source: sqlite(ffi::SQLITE_BUSY) }, true),
            (capture(ffi::SQLITE_LOCKED), true),
            (capture(ffi::SQLITE_IOERR), true),
            (capture(ffi::SQLITE_CONSTRAINT), false),
            (capture(ffi::SQLITE_CORRUPT), false),
            (SourceError::Open { path: path(), source: sqlite(ffi::SQLITE_BUSY) }, true),
            (SourceError::NotFound { path: path() }, false),
            (SourceError::ReadOnly { path: path() }, false),
            (SourceError::SchemaChanged { tables: vec!["users".into()] }, false),
            (SourceError::BlobValue { table: "t".into(), column: "c".into() }, false),
        ];
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let error = SourceError::SchemaChanged { tables: vec!["users".into(), "posts".into()] };
        assert_eq!(
            error.to_string(),
            "the schema of captured table(s) users, posts changed since the catalog was read; \
             re-read the catalog, re-plan the views and open the capture again"
        );
    }
}
