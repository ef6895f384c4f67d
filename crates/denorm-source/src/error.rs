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
    #[error("column {table}.{column} {}: denorm cannot type it; declare it INTEGER, REAL or TEXT", describe_declared(declared_type))]
    UnsupportedColumn { table: String, column: String, declared_type: String },
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
