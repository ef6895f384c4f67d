//! PostgreSQL: read the catalog, and capture changes by logical replication
//! (the `pgoutput` plugin) joined to an exported snapshot.
//!
//! * [`read_catalog`] — the tables of schema `public` the planner checks
//!   views against, column types mapped by [`PgType`].
//! * [`PgCapture`] — checks the server's requirements, keeps a publication
//!   for exactly the captured tables, creates a logical replication slot
//!   with an exported snapshot, reads the tables inside that snapshot, then
//!   streams committed transactions from the slot. See [`capture`] for the
//!   protocol, the replica identity rule and the traps.
//! * [`uninstall`] — drops the slot and the publication.
//! * [`pgoutput`] — the pure decoder of the replication stream.
//!
//! ```text
//!  application ── INSERT/UPDATE/DELETE/TRUNCATE ──► PostgreSQL ── WAL
//!                                                       │ logical decoding, pgoutput,
//!                                                       │ publication "denorm" (captured tables)
//!  PgCapture::snapshot ─ CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT ─► slot "denorm"
//!      │                   (consistent point = Snapshot::position)
//!      └─ COPY each table TO STDOUT inside SET TRANSACTION SNAPSHOT
//!  PgCapture::poll ◄──── START_REPLICATION SLOT denorm LOGICAL <position> ──── Begin … Commit
//!  PgCapture::release(p) ── standby status update (flush = p) ──► confirmed_flush_lsn
//! ```
//!
//! Traps of the catalog:
//!
//! * Only ordinary tables of schema `public` are read (not partitioned
//!   tables: their changes are published under the partitions' names).
//! * Generated columns are left out: pgoutput (before PostgreSQL 18) sends
//!   neither their values nor their names.
//! * Unquoted identifiers are folded to lower case by PostgreSQL, so a table
//!   created as `"Users"` differs from `users`; denorm's catalog matches
//!   names without regard to ASCII case, so two tables whose names differ
//!   only in case would collide (the later one wins).

use std::fmt;

use denorm_types::{Catalog, ColumnSchema, Position, TableSchema};

use crate::SourceError;

mod batch;
pub mod capture;
pub mod pgoutput;
mod source;
pub mod types;
mod wire;

pub use batch::{ChangeBatch, Undecodable};
pub use capture::{read_lag, uninstall, Lag, Names, PgCapture, Poll, Uninstalled};
pub use source::PostgresSource;
pub use types::{PgType, ValueError};
pub use wire::{is_transient_sqlstate, ServerError, WireError};

// The spec, the progress report and the snapshot are the same as SQLite's.
pub use crate::sqlite::{CaptureSpec, CapturedTable, Snapshot, SnapshotProgress};

/// The schema whose tables are read.
pub const SCHEMA: &str = "public";

/// Parses a `postgres://user:password@host:port/database` URL (or a
/// `key=value` connection string).
pub fn parse_url(url: &str) -> Result<postgres::Config, SourceError> {
    url.parse::<postgres::Config>().map_err(|e| SourceError::PostgresUrl { url: redact(url), reason: e.to_string() })
}

/// A URL or connection string with its password replaced by `***`, for
/// messages and logs: [`crate::redact`].
pub fn redact(url: &str) -> String {
    crate::redact(url)
}

/// `host:port/database` of a configuration, naming the server in messages.
pub(crate) fn describe_server(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(dir)) => dir.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// Connects an ordinary (non-replication) session with denorm's session
/// settings.
pub fn connect(url: &str) -> Result<postgres::Client, SourceError> {
    let config = parse_url(url)?;
    connect_config(&config)
}

pub(crate) fn connect_config(config: &postgres::Config) -> Result<postgres::Client, SourceError> {
    let server = describe_server(config);
    let mut client = config.connect(postgres::NoTls).map_err(|source| SourceError::Postgres {
        server: server.clone(),
        what: "connecting".into(),
        source,
    })?;
    let settings: Vec<String> =
        types::SESSION_SETTINGS.iter().map(|(name, value)| format!("SET {name} = '{value}';")).collect();
    client.batch_execute(&settings.concat()).map_err(|source| SourceError::Postgres {
        server,
        what: "setting up the session".into(),
        source,
    })?;
    Ok(client)
}

/// A log sequence number in PostgreSQL's text form, `X/Y` (hexadecimal).
pub fn parse_lsn(text: &str) -> Option<Position> {
    let (high, low) = text.split_once('/')?;
    let high = u64::from_str_radix(high, 16).ok()?;
    let low = u64::from_str_radix(low, 16).ok()?;
    (high <= u64::from(u32::MAX) && low <= u64::from(u32::MAX)).then_some(Position(high << 32 | low))
}

/// A position as an LSN in PostgreSQL's text form.
pub fn format_lsn(position: Position) -> String {
    Lsn(position.0).to_string()
}

struct Lsn(u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Reads every ordinary table of schema `public`: columns with types and
/// nullability, the primary key in key order, and the complete unique
/// indexes over plain columns.
///
/// A column of a type denorm has no value for (see [`PgType`]) is kept as
/// [`ScalarType::Unsupported`](denorm_types::ScalarType::Unsupported) with
/// the server's type name ([`Catalog::unsupported_type`]): only a view that
/// reads it is refused, by the planner.
pub fn read_catalog(client: &mut postgres::Client) -> Result<Catalog, SourceError> {
    let mut catalog = Catalog::new();
    for table in read_tables(client, None)? {
        for (column, type_name) in &table.unsupported {
            catalog.set_unsupported_type(&table.schema.name, column, type_name.clone());
        }
        // character(n): its values keep their blank padding; the planner
        // compares them as PostgreSQL does, ignoring trailing blanks, which
        // the catalog marks with the RTRIM collation (PostgreSQL text has
        // no other use for it).
        for (column, ty) in table.schema.columns.iter().zip(&table.types) {
            if *ty == PgType::Bpchar {
                catalog.set_collation(&table.schema.name, &column.name, denorm_types::Collation::Rtrim);
            }
            // SUM of a smallint or integer is bigint, of a bigint numeric.
            if matches!(ty, PgType::Int2 | PgType::Int4) {
                catalog.set_narrow_int(&table.schema.name, &column.name);
            }
            if *ty == PgType::Jsonb {
                catalog.set_jsonb(&table.schema.name, &column.name);
            }
        }
        catalog.add(table.schema);
    }
    // upper/lower/initcap/ILIKE map only ASCII letters under the C locale.
    let ctype = client
        .query_one("SELECT datctype FROM pg_database WHERE datname = current_database()", &[])
        .map_err(|source| SourceError::PostgresIntrospect { what: "reading the database's LC_CTYPE".into(), source })?;
    catalog.set_ascii_case_mapping(ascii_ctype(ctype.get(0)));
    // The planner's hint for join order: the statistics' row counts of the
    // tables analyzed at least once (`reltuples` is -1 before).
    let estimates = client
        .query(
            "SELECT c.relname, c.reltuples::float8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' AND c.reltuples >= 0",
            &[&SCHEMA],
        )
        .map_err(|source| SourceError::PostgresIntrospect { what: "estimating the tables' rows".into(), source })?;
    for row in estimates {
        let (name, rows): (String, f64) = (row.get(0), row.get(1));
        catalog.set_row_estimate(&name, rows as u64);
    }
    Ok(catalog)
}

/// Whether a database's `LC_CTYPE` is one under which PostgreSQL maps only
/// ASCII letters between cases (`C`, `POSIX`; PostgreSQL's
/// `lc_ctype_is_c`).
pub(crate) fn ascii_ctype(ctype: &str) -> bool {
    matches!(ctype, "C" | "POSIX")
}

/// A table as read from PostgreSQL's catalog.
#[derive(Debug, Clone)]
pub(crate) struct PgTable {
    pub(crate) oid: u32,
    pub(crate) schema: TableSchema,
    pub(crate) types: Vec<PgType>,
    /// `relreplident`: 'd', 'n', 'f' or 'i'.
    pub(crate) replica_identity: u8,
    /// Column indexes of the replica identity index ('d': the primary key,
    /// 'i': the chosen index), empty for 'f' and 'n'.
    pub(crate) identity_columns: Vec<usize>,
    /// (column, the server's type name) of the columns of unsupported types.
    pub(crate) unsupported: Vec<(String, String)>,
}

/// The tables of [`SCHEMA`], or only those named in `only` (lower-case
/// names).
pub(crate) fn read_tables(
    client: &mut impl postgres::GenericClient,
    only: Option<&[String]>,
) -> Result<Vec<PgTable>, SourceError> {
    let introspect = |what: &str| {
        let what = what.to_string();
        move |source| SourceError::PostgresIntrospect { what, source }
    };
    let rows = client
        .query(
            "SELECT c.oid, c.relname, c.relreplident::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY c.relname",
            &[&SCHEMA],
        )
        .map_err(introspect("listing tables"))?;
    let mut tables = Vec::new();
    for row in rows {
        let oid: u32 = row.get(0);
        let name: String = row.get(1);
        if only.is_some_and(|names| !names.contains(&name.to_ascii_lowercase())) {
            continue;
        }
        let identity: String = row.get(2);
        tables.push(read_table(client, oid, name, identity.bytes().next().unwrap_or(b'd'))?);
    }
    Ok(tables)
}

/// Collations that compare text as denorm does (bytewise), or the
/// database's default, which denorm takes to be "C".
fn is_bytewise_collation(name: &str) -> bool {
    matches!(name, "default" | "C" | "POSIX" | "ucs_basic")
}

fn read_table(
    client: &mut impl postgres::GenericClient,
    oid: u32,
    name: String,
    replica_identity: u8,
) -> Result<PgTable, SourceError> {
    let introspect = |what: String| move |source| SourceError::PostgresIntrospect { what, source };
    let columns = client
        .query(
            "SELECT attnum, attname, atttypid, format_type(atttypid, atttypmod), attnotnull, \
             (SELECT collname::text FROM pg_collation WHERE oid = attcollation) FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&oid],
        )
        .map_err(introspect(format!("columns of table {name}")))?;
    let mut attnums = Vec::with_capacity(columns.len());
    let mut schema_columns = Vec::with_capacity(columns.len());
    let mut types = Vec::with_capacity(columns.len());
    let mut unsupported = Vec::new();
    for column in &columns {
        let column_name: String = column.get(1);
        let type_oid: u32 = column.get(2);
        let ty = PgType::from_oid(type_oid);
        let mut scalar = ty.scalar_type();
        if let PgType::Unsupported(_) = ty {
            unsupported.push((column_name.clone(), column.get::<_, String>(3)));
        }
        if let Some(collation) = column.get::<_, Option<String>>(5).filter(|c| !is_bytewise_collation(c)) {
            // denorm compares text bytewise; a column declared with another
            // collation is read by no view (the database default is taken
            // as bytewise: give the database the "C" collation).
            let declared = format!("{} COLLATE \"{collation}\"", column.get::<_, String>(3));
            unsupported.push((column_name.clone(), declared));
            scalar = denorm_types::ScalarType::Unsupported;
        }
        attnums.push(column.get::<_, i16>(0));
        types.push(ty);
        schema_columns.push(ColumnSchema { name: column_name, ty: scalar, nullable: !column.get::<_, bool>(4) });
    }
    let indexes = client
        .query(
            "SELECT indisprimary, indisreplident, indkey::int2[] FROM pg_index \
             WHERE indrelid = $1 AND indisunique AND indisvalid AND indpred IS NULL AND indexprs IS NULL \
             ORDER BY indisprimary DESC, indexrelid",
            &[&oid],
        )
        .map_err(introspect(format!("indexes of table {name}")))?;
    let mut schema = TableSchema { name, columns: schema_columns, primary_key: Vec::new(), unique_keys: Vec::new() };
    let mut identity_columns = Vec::new();
    for index in indexes {
        let keys: Vec<i16> = index.get(2);
        // An index over a generated column names no column of ours.
        let Some(key) = keys.iter().map(|k| attnums.iter().position(|a| a == k)).collect::<Option<Vec<usize>>>() else {
            continue;
        };
        let (primary, replica_identity_index): (bool, bool) = (index.get(0), index.get(1));
        if (replica_identity == b'd' && primary) || (replica_identity == b'i' && replica_identity_index) {
            identity_columns = key.clone();
        }
        if primary {
            schema.primary_key = key;
        } else if !schema.unique_keys.contains(&key) && key != schema.primary_key {
            schema.unique_keys.push(key);
        }
    }
    Ok(PgTable { oid, schema, types, replica_identity, identity_columns, unsupported })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trips() {
        let cases = [("0/0", 0u64), ("0/16B3748", 0x16B_3748), ("1/0", 1 << 32), ("FFFFFFFF/FFFFFFFF", u64::MAX)];
        for (text, value) in cases {
            assert_eq!(parse_lsn(text), Some(Position(value)), "{text}");
            assert_eq!(format_lsn(Position(value)), text);
        }
        for bad in ["", "12", "x/1", "1/", "100000000/0"] {
            assert_eq!(parse_lsn(bad), None, "{bad}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        let cases = [
            ("postgres://ada:secret@db:5432/app", "postgres://ada:***@db:5432/app"),
            ("postgres://ada@db/app", "postgres://ada@db/app"),
            ("postgres://db/app?user=a", "postgres://db/app?user=a"),
            ("host=db user=ada", "host=db user=ada"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want);
        }
    }
}
