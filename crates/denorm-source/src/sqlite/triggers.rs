//! The SQL denorm installs in a captured database: the change-log table and
//! three `AFTER` triggers per captured table, all named `_denorm_…`.
//!
//! Trigger text is generated deterministically from the table name and the
//! logged columns (in table order), so installing twice produces the same
//! text: [`sync`] compares it with what `sqlite_schema` stores and touches
//! nothing when they agree (the schema version stays put).

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::capture::{sqlite_error, writable_connection};
use crate::SourceError;

/// The change-log table.
pub(crate) const LOG_TABLE: &str = "_denorm_changes";

/// `seq` is AUTOINCREMENT so that it never goes back, even after
/// [`release`](super::SqliteCapture::release) deleted every row: a plain
/// INTEGER PRIMARY KEY would reuse `max(seq) + 1`.
const LOG_TABLE_SQL: &str = "CREATE TABLE _denorm_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
     tbl TEXT NOT NULL, old TEXT, new TEXT, committed_at REAL NOT NULL)";

/// Unix seconds with SQLite's clock resolution (milliseconds). SQLite 3.38
/// has neither `unixepoch('subsec')` (3.42) nor a finer clock.
const NOW_SQL: &str = "(julianday('now') - 2440587.5) * 86400.0";

/// A trigger denorm wants in the database: its name, table and full text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trigger {
    pub name: String,
    pub sql: String,
}

/// The triggers that log changes of `table`'s `logged` columns (names in
/// table order). A table whose views read no column (only `COUNT(*)`) gets
/// no UPDATE trigger: no update can change what views see.
pub(crate) fn table_triggers(table: &str, logged: &[&str]) -> Vec<Trigger> {
    let new = encode_row("NEW", logged);
    let old = encode_row("OLD", logged);
    let mut triggers = vec![
        trigger(table, "insert", "AFTER INSERT", "", "NULL", &new),
        trigger(table, "delete", "AFTER DELETE", "", &old, "NULL"),
    ];
    if !logged.is_empty() {
        let columns: Vec<String> = logged.iter().map(|c| quote_ident(c)).collect();
        let event = format!("AFTER UPDATE OF {}", columns.join(", "));
        triggers.push(trigger(table, "update", &event, &changed_condition(logged), &old, &new));
    }
    triggers
}

fn trigger(table: &str, op: &str, event: &str, when: &str, old: &str, new: &str) -> Trigger {
    // The op comes first so that names of different tables never collide.
    let name = format!("_denorm_{op}_{table}");
    let sql = format!(
        "CREATE TRIGGER {} {event} ON {}{when} BEGIN INSERT INTO {LOG_TABLE} (tbl, old, new, committed_at) \
         VALUES ({}, {old}, {new}, {NOW_SQL}); END",
        quote_ident(&name),
        quote_ident(table),
        quote_literal(table),
    );
    Trigger { name, sql }
}

/// `quote(NEW."a")||','||quote(NEW."b")`, or `''` for no columns.
fn encode_row(alias: &str, columns: &[&str]) -> String {
    if columns.is_empty() {
        return "''".to_string();
    }
    let parts: Vec<String> = columns.iter().map(|c| format!("quote({alias}.{})", quote_ident(c))).collect();
    parts.join("||','||")
}

/// ` WHEN OLD."a" IS NOT NEW."a" COLLATE BINARY OR …`. BINARY because a
/// column declared `COLLATE NOCASE` would otherwise call 'Ada' → 'ADA' no
/// change, and the view would keep the old spelling.
fn changed_condition(columns: &[&str]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let c = quote_ident(c);
            format!("OLD.{c} IS NOT NEW.{c} COLLATE BINARY")
        })
        .collect();
    format!(" WHEN {}", parts.join(" OR "))
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// denorm's triggers present in the database: name (lower case) → text.
pub(crate) fn installed_triggers(conn: &Connection) -> rusqlite::Result<BTreeMap<String, String>> {
    let mut stmt = conn.prepare(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND name LIKE '\\_denorm\\_%' ESCAPE '\\'",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?.to_ascii_lowercase(), r.get(1)?)))?;
    rows.collect()
}

/// Makes the database hold exactly `wanted` as denorm's triggers, plus the
/// change-log table, inside the caller's write transaction. Returns whether
/// it changed anything.
pub(crate) fn sync(conn: &Connection, wanted: &[Trigger]) -> rusqlite::Result<bool> {
    let mut changed = false;
    if !log_table_exists(conn)? {
        conn.execute_batch(LOG_TABLE_SQL)?;
        changed = true;
    }
    let present = installed_triggers(conn)?;
    let wanted_by_name: BTreeMap<String, &Trigger> = wanted.iter().map(|t| (t.name.to_ascii_lowercase(), t)).collect();
    for (name, sql) in &present {
        if wanted_by_name.get(name).is_none_or(|t| &t.sql != sql) {
            conn.execute_batch(&format!("DROP TRIGGER {}", quote_ident(name)))?;
            changed = true;
        }
    }
    for (name, trigger) in &wanted_by_name {
        if present.get(name) != Some(&trigger.sql) {
            conn.execute_batch(&trigger.sql)?;
            changed = true;
        }
    }
    Ok(changed)
}

pub(crate) fn log_table_exists(conn: &Connection) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [LOG_TABLE], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// The last `seq` the change log assigned, 0 before the first change. Read
/// from `sqlite_sequence`, so it survives deleting every log row.
pub(crate) fn last_seq(conn: &Connection) -> rusqlite::Result<u64> {
    // sqlite_sequence only exists once some AUTOINCREMENT table does.
    let exists: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'", [], |r| r.get(0))
        .optional()?;
    if exists.is_none() {
        return Ok(0);
    }
    let seq: Option<i64> =
        conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [LOG_TABLE], |r| r.get(0)).optional()?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// What [`uninstall`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uninstalled {
    pub triggers: Vec<String>,
    pub tables: Vec<String>,
    /// Views and indexes named `_denorm_…` (denorm creates none today).
    pub other: Vec<String>,
}

impl Uninstalled {
    pub fn is_empty(&self) -> bool {
        self.triggers.is_empty() && self.tables.is_empty() && self.other.is_empty()
    }
}

/// Removes every `_denorm_` object (triggers first, then views, indexes and
/// tables, with the change log) in one transaction, and says what it
/// removed. The database stays in WAL mode: that is harmless to other
/// writers and switching back would need an exclusive lock.
pub fn uninstall(path: &Path) -> Result<Uninstalled, SourceError> {
    let mut conn = writable_connection(path)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error(path, "starting the uninstall transaction"))?;
    let objects = denorm_objects(&tx).map_err(sqlite_error(path, "listing denorm's objects"))?;
    let mut removed = Uninstalled::default();
    for (kind, name) in objects {
        let drop = format!("DROP {} IF EXISTS {}", kind.to_ascii_uppercase(), quote_ident(&name));
        tx.execute_batch(&drop).map_err(sqlite_error(path, format!("dropping {kind} {name}")))?;
        match kind.as_str() {
            "trigger" => removed.triggers.push(name),
            "table" => removed.tables.push(name),
            _ => removed.other.push(name),
        }
    }
    tx.commit().map_err(sqlite_error(path, "committing the uninstall"))?;
    Ok(removed)
}

/// `(type, name)` of every `_denorm_` object, in a dropping order.
fn denorm_objects(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(
        "SELECT type, name FROM sqlite_schema WHERE name LIKE '\\_denorm\\_%' ESCAPE '\\' \
         ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 WHEN 'index' THEN 2 ELSE 3 END, name",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_text_for_a_table() {
        let triggers = table_triggers("users", &["id", "name"]);
        let sql: Vec<&str> = triggers.iter().map(|t| t.sql.as_str()).collect();
        assert_eq!(
            sql,
            vec![
                "CREATE TRIGGER \"_denorm_insert_users\" AFTER INSERT ON \"users\" BEGIN INSERT INTO _denorm_changes \
                 (tbl, old, new, committed_at) VALUES ('users', NULL, quote(NEW.\"id\")||','||quote(NEW.\"name\"), \
                 (julianday('now') - 2440587.5) * 86400.0); END",
                "CREATE TRIGGER \"_denorm_delete_users\" AFTER DELETE ON \"users\" BEGIN INSERT INTO _denorm_changes \
                 (tbl, old, new, committed_at) VALUES ('users', quote(OLD.\"id\")||','||quote(OLD.\"name\"), NULL, \
                 (julianday('now') - 2440587.5) * 86400.0); END",
                "CREATE TRIGGER \"_denorm_update_users\" AFTER UPDATE OF \"id\", \"name\" ON \"users\" WHEN \
                 OLD.\"id\" IS NOT NEW.\"id\" COLLATE BINARY OR OLD.\"name\" IS NOT NEW.\"name\" COLLATE BINARY \
                 BEGIN INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', \
                 quote(OLD.\"id\")||','||quote(OLD.\"name\"), quote(NEW.\"id\")||','||quote(NEW.\"name\"), \
                 (julianday('now') - 2440587.5) * 86400.0); END",
            ]
        );
    }

    #[test]
    fn odd_names_are_quoted_and_no_columns_means_no_update_trigger() {
        let triggers = table_triggers("it's \"x\"", &[]);
        assert_eq!(triggers.len(), 2);
        assert!(triggers[0].sql.contains("ON \"it's \"\"x\"\"\""), "{}", triggers[0].sql);
        assert!(triggers[0].sql.contains("VALUES ('it''s \"x\"', NULL, ''"), "{}", triggers[0].sql);
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE \"it's \"\"x\"\"\" (a INT)").unwrap();
        let tx = conn.unchecked_transaction().unwrap();
        assert!(sync(&tx, &triggers).unwrap());
        tx.commit().unwrap();
        conn.execute_batch("INSERT INTO \"it's \"\"x\"\"\" VALUES (1)").unwrap();
        let (tbl, new): (String, String) =
            conn.query_row("SELECT tbl, new FROM _denorm_changes", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((tbl.as_str(), new.as_str()), ("it's \"x\"", ""));
    }

    #[test]
    fn sync_is_idempotent_and_replaces_changed_triggers() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INT, b TEXT); CREATE TABLE u (c INT)").unwrap();
        let version = |c: &Connection| c.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)).unwrap();
        let mut wanted = table_triggers("t", &["a"]);
        wanted.extend(table_triggers("u", &["c"]));
        assert!(sync(&conn, &wanted).unwrap());
        let before = version(&conn);
        assert!(!sync(&conn, &wanted).unwrap());
        assert_eq!(version(&conn), before);
        let changed = table_triggers("t", &["a", "b"]);
        assert!(sync(&conn, &changed).unwrap());
        let present = installed_triggers(&conn).unwrap();
        assert_eq!(present.len(), 3, "u's triggers are gone: {present:?}");
        assert!(present["_denorm_update_t"].contains("\"b\""));
    }
}
