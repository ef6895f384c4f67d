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

    /// A captured text value is not UTF-8.
    #[error("table {table}, column {column} holds text that is not valid UTF-8; denorm's text is UTF-8: fix the value or leave the column out of the views")]
    InvalidText { table: String, column: String },

    /// The source URL is not a valid PostgreSQL connection URL.
    #[error("invalid PostgreSQL URL {url}: {reason}")]
    PostgresUrl { url: String, reason: String },

    /// A PostgreSQL query or connection failed. Transient when the
    /// connection broke or the SQLSTATE says so (see
    /// [`SourceError::is_transient`]).
    #[error("PostgreSQL at {server}: {what} failed")]
    Postgres {
        server: String,
        what: String,
        #[source]
        source: postgres::Error,
    },

    /// A query against PostgreSQL's catalog failed.
    #[error("cannot read the schema of the PostgreSQL database ({what})")]
    PostgresIntrospect {
        what: String,
        #[source]
        source: postgres::Error,
    },

    /// The replication connection failed.
    #[error("PostgreSQL at {server}: {what} failed on the replication connection")]
    PostgresReplication {
        server: String,
        what: String,
        #[source]
        source: crate::postgres::WireError,
    },

    /// The replication stream sent bytes that are not a valid message.
    #[error("the PostgreSQL replication stream sent an undecodable message ({what})")]
    PostgresStream {
        what: String,
        #[source]
        source: crate::postgres::pgoutput::DecodeError,
    },

    /// A snapshot row holds a value that does not decode as its column's
    /// type.
    #[error("table {table} holds a value denorm cannot decode")]
    PostgresValue {
        table: String,
        #[source]
        source: crate::postgres::ValueError,
    },

    /// A column of a type denorm has no value for yet.
    #[error("column {table}.{column} has PostgreSQL type {type_name}, which denorm cannot read yet (it reads smallint, integer, bigint, real, double precision, text, varchar, char, name and boolean); change the column's type or move the table out of schema public")]
    PostgresUnsupportedType { table: String, column: String, type_name: String },

    /// Logical decoding needs `wal_level = logical`.
    #[error("PostgreSQL at {server} has wal_level = {actual}, and logical replication needs wal_level = logical: set it in postgresql.conf (or run ALTER SYSTEM SET wal_level = logical) and restart the server; a reload is not enough")]
    WalLevel { server: String, actual: String },

    /// The role may not open replication connections.
    #[error("role {role} may not use replication, and denorm reads changes over a replication connection: run ALTER ROLE {role} REPLICATION as a superuser, or connect as a role that has REPLICATION")]
    ReplicationPrivilege { role: String },

    /// Every replication slot is taken.
    #[error("all {max} replication slots of the PostgreSQL server are in use (max_replication_slots = {max}): drop an unused one (see SELECT slot_name, active FROM pg_replication_slots; then SELECT pg_drop_replication_slot('name')), or raise max_replication_slots and restart the server")]
    NoFreeReplicationSlot { max: i64 },

    /// Every WAL sender process is taken.
    #[error("all {max} WAL senders of the PostgreSQL server are in use (max_wal_senders = {max}): stop an unused replication client (see pg_stat_replication), or raise max_wal_senders and restart the server")]
    NoFreeWalSender { max: i64 },

    /// A captured table's REPLICA IDENTITY does not put in the WAL the old
    /// rows views need to retract.
    #[error("{}", describe_replica_identity(table, identity, columns))]
    ReplicaIdentity {
        table: String,
        /// `relreplident` described: "DEFAULT (primary key id)", "NOTHING", …
        identity: String,
        /// The columns views read that the identity does not carry.
        columns: Vec<String>,
    },

    /// Another connection streams from the slot. Transient: a previous
    /// connection of denorm's may not have ended yet.
    #[error("replication slot {slot} is in use by another connection (see pg_replication_slots.active_pid); another denorm may be attached to it, or its previous connection has not ended yet: retrying later usually succeeds")]
    SlotInUse { slot: String },

    /// The slot to resume from is gone: only a new snapshot can continue.
    #[error("replication slot {slot} does not exist (it was dropped, or never created): changes since the last position are lost to denorm; take a new snapshot, which creates the slot again")]
    SlotMissing { slot: String },

    /// A slot or publication name PostgreSQL would refuse or fold.
    #[error(
        "invalid replication slot or publication name {name:?}: use 1 to 63 lower-case letters, digits and underscores"
    )]
    PostgresName { name: String },
}

/// Whether an error may pass by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A passing condition (a busy database, a lost connection, a server
    /// restarting): retrying the same call later, with backoff, may succeed.
    Transient,
    /// Retrying fails the same way until something is changed (the
    /// configuration, a privilege, the schema, a dropped slot): the message
    /// says what.
    Definite,
}

impl SourceError {
    /// Whether retrying may succeed. Every variant answers (no catch-all),
    /// so a new variant must be classified.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind::{Definite, Transient};
        let transient = |yes: bool| if yes { Transient } else { Definite };
        match self {
            SourceError::Busy { .. } | SourceError::SlotInUse { .. } => Transient,
            SourceError::Capture { source, .. }
            | SourceError::Open { source, .. }
            | SourceError::Introspect { source, .. } => transient(is_transient_sqlite(source)),
            SourceError::Postgres { source, .. } | SourceError::PostgresIntrospect { source, .. } => {
                transient(is_transient_postgres(source))
            }
            SourceError::PostgresReplication { source, .. } => transient(source.is_transient()),
            SourceError::NotFound { .. }
            | SourceError::NotADatabase { .. }
            | SourceError::Init { .. }
            | SourceError::ReadOnly { .. }
            | SourceError::JournalMode { .. }
            | SourceError::UnknownTable { .. }
            | SourceError::UnknownColumn { .. }
            | SourceError::SchemaChanged { .. }
            | SourceError::InvalidText { .. }
            | SourceError::PostgresUrl { .. }
            | SourceError::PostgresStream { .. }
            | SourceError::PostgresValue { .. }
            | SourceError::PostgresUnsupportedType { .. }
            | SourceError::WalLevel { .. }
            | SourceError::ReplicationPrivilege { .. }
            | SourceError::NoFreeReplicationSlot { .. }
            | SourceError::NoFreeWalSender { .. }
            | SourceError::ReplicaIdentity { .. }
            | SourceError::SlotMissing { .. }
            | SourceError::PostgresName { .. } => Definite,
        }
    }

    /// `kind() == Transient`: retrying the same call later (with backoff)
    /// may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }
}

/// SQLite result codes that describe a passing condition rather than the
/// database or the request.
pub(crate) fn is_transient_sqlite(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked | SystemIoFailure | FileLockingProtocolFailed))
}

/// Whether a PostgreSQL error describes a passing condition: a broken
/// connection, an I/O error, or a transient SQLSTATE.
pub(crate) fn is_transient_postgres(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return crate::postgres::is_transient_sqlstate(code.code());
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn describe_replica_identity(table: &str, identity: &str, columns: &[String]) -> String {
    let fix = format!("run ALTER TABLE {table} REPLICA IDENTITY FULL");
    if columns.is_empty() {
        format!(
            "table {table} has REPLICA IDENTITY {identity}, so PostgreSQL logs nothing of the rows UPDATE and DELETE \
             replace (and, once the table is published, refuses those statements); {fix}"
        )
    } else {
        format!(
            "table {table} has REPLICA IDENTITY {identity}, so PostgreSQL logs only the key of the rows UPDATE and \
             DELETE replace, but views read {table}.{}; denorm keeps no copy of source rows and needs the whole old \
             row to retract it: {fix}",
            columns.join(&format!(", {table}."))
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    fn replication(source: crate::postgres::WireError) -> SourceError {
        SourceError::PostgresReplication { server: "db".into(), what: "streaming".into(), source }
    }

    fn server_error(code: &str) -> crate::postgres::WireError {
        crate::postgres::WireError::Server(Box::new(crate::postgres::ServerError {
            severity: "FATAL".into(),
            code: code.into(),
            message: "m".into(),
            detail: None,
            hint: None,
        }))
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
            (SourceError::SlotInUse { slot: "denorm".into() }, true),
            (SourceError::SlotMissing { slot: "denorm".into() }, false),
            (SourceError::WalLevel { server: "db".into(), actual: "replica".into() }, false),
            (SourceError::ReplicationPrivilege { role: "app".into() }, false),
            (SourceError::NoFreeReplicationSlot { max: 10 }, false),
            (replication(crate::postgres::WireError::Closed), true),
            (replication(crate::postgres::WireError::Protocol("x".into())), false),
            (replication(server_error("57P01")), true),
            (replication(server_error("42501")), false),
        ];
        for (error, transient) in cases {
            assert_eq!(error.is_transient(), transient, "{error:?}");
            let kind = if transient { ErrorKind::Transient } else { ErrorKind::Definite };
            assert_eq!(error.kind(), kind, "{error:?}");
        }
    }

    #[test]
    fn postgres_messages_say_what_to_do() {
        let error = SourceError::WalLevel { server: "db:5432/app".into(), actual: "replica".into() };
        assert_eq!(
            error.to_string(),
            "PostgreSQL at db:5432/app has wal_level = replica, and logical replication needs wal_level = logical: \
             set it in postgresql.conf (or run ALTER SYSTEM SET wal_level = logical) and restart the server; a \
             reload is not enough"
        );
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
