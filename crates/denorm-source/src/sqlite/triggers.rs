//! The SQL denorm installs in a captured database: the change-log table, the
//! pending table of rows a `REPLACE` is about to delete, and up to six
//! triggers per captured table (see [`table_triggers`]), all named
//! `_denorm_…`.
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

/// One row: the id of this database's capture, a random hex string made
/// when capture is first installed (dropped by `uninstall` with the rest):
/// part of the source identity a state directory is tied to, so that a
/// database replaced by another file, or whose capture was re-installed,
/// is not mistaken for the one the state came from.
pub(crate) const CAPTURE_ID_TABLE: &str = "_denorm_capture";
const CAPTURE_ID_TABLE_SQL: &str = "CREATE TABLE _denorm_capture (id TEXT NOT NULL)";

/// Unix seconds with SQLite's clock resolution (milliseconds). SQLite 3.38
/// has neither `unixepoch('subsec')` (3.42) nor a finer clock.
const NOW_SQL: &str = "(julianday('now') - 2440587.5) * 86400.0";

/// A trigger denorm wants in the database: its name, table and full text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Trigger {
    pub name: String,
    pub sql: String,
}

/// Where rows replaced by a `REPLACE` conflict wait between the `BEFORE`
/// trigger that sees them and the `AFTER` trigger that logs their deletion
/// (see [`table_triggers`]). Empty between statements, except for the few
/// rows an ignored insert or an UPSERT's update left behind, which the next
/// `BEFORE` trigger of the same table clears.
pub(crate) const PENDING_TABLE: &str = "_denorm_pending";

/// `rid` is the rowid, or for a WITHOUT ROWID table the `quote()` encoding of
/// its primary key; `old` is encoded like the log's `old`. No constraint:
/// the outer statement's conflict policy (`OR FAIL`, `OR REPLACE`…)
/// overrides the trigger's own, so the triggers must never meet a conflict.
const PENDING_TABLE_SQL: &str = "CREATE TABLE _denorm_pending (tbl TEXT NOT NULL, rid NOT NULL, old TEXT)";

/// How a captured table's rows are told apart, and the keys a `REPLACE` can
/// conflict on: what its replace-capture triggers are generated from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RowKeys {
    /// A name that reaches the rowid (`rowid`, `_rowid_` or `oid`, the first
    /// that is not a column's name); `None` for a WITHOUT ROWID table.
    pub rowid: Option<String>,
    /// WITHOUT ROWID tables: the primary key columns, the row's identity.
    pub primary_key: Vec<String>,
    /// Every UNIQUE index (primary key included) as `(column, collation)`
    /// pairs: rows with equal values under these collations conflict.
    pub unique: Vec<Vec<(String, String)>>,
    /// The `INTEGER PRIMARY KEY` column that aliases the rowid, if any.
    pub rowid_alias: Option<String>,
    /// Indexes a `REPLACE` may conflict on that the triggers cannot follow
    /// (over expressions; partial ones of WITHOUT ROWID tables).
    pub unsupported: Vec<String>,
    /// Generated columns (VIRTUAL or STORED): an `UPDATE OF` list naming
    /// one does not fire when only a column it is computed from is set.
    pub generated: Vec<String>,
}

impl RowKeys {
    /// Whether the replace-capture triggers can identify rows at all (a
    /// rowid table whose columns are named `rowid`, `_rowid_` and `oid`
    /// hides its rowid).
    fn capturable(&self) -> bool {
        self.rowid.is_some() || !self.primary_key.is_empty()
    }

    /// The row identity stored in the pending table's `rid`, for `alias`.
    fn rid(&self, alias: &str) -> String {
        match &self.rowid {
            Some(rowid) => format!("{alias}.{}", quote_ident(rowid)),
            None => encode_row(alias, &self.primary_key.iter().map(String::as_str).collect::<Vec<_>>()),
        }
    }

    /// ` WHEN NEW.rowid IS NOT OLD.rowid OR NEW."u" IS NOT OLD."u" COLLATE
    /// BINARY …`: an UPDATE that changes no key column cannot conflict.
    fn key_changed(&self) -> String {
        let mut parts = Vec::new();
        if let Some(rowid) = &self.rowid {
            let rowid = quote_ident(rowid);
            parts.push(format!("NEW.{rowid} IS NOT OLD.{rowid}"));
        }
        let mut seen: Vec<&str> = Vec::new();
        for (column, _) in self.unique.iter().flatten() {
            if !seen.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                seen.push(column);
                let c = quote_ident(column);
                parts.push(format!("NEW.{c} IS NOT OLD.{c} COLLATE BINARY"));
            }
        }
        format!(" WHEN {}", parts.join(" OR "))
    }
}

/// Reads the rowid-ness, primary key and UNIQUE indexes (with collations)
/// of `table` from the database.
pub(crate) fn row_keys(conn: &Connection, table: &str, without_rowid: bool) -> rusqlite::Result<RowKeys> {
    let mut columns =
        conn.prepare("SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1) WHERE hidden <> 1 ORDER BY cid")?;
    let columns: Vec<(String, String, i64, i64)> =
        columns.query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
    // hidden: 2 a VIRTUAL, 3 a STORED generated column.
    let generated = columns.iter().filter(|c| matches!(c.3, 2 | 3)).map(|c| c.0.clone()).collect();
    let mut keys = RowKeys { generated, ..RowKeys::default() };
    let mut pk: Vec<(i64, &str, &str)> =
        columns.iter().filter(|c| c.2 > 0).map(|(name, ty, pk, _)| (*pk, name.as_str(), ty.as_str())).collect();
    pk.sort_unstable();
    if without_rowid {
        keys.primary_key = pk.iter().map(|(_, name, _)| name.to_string()).collect();
    } else {
        let is_column = |n: &str| columns.iter().any(|c| c.0.eq_ignore_ascii_case(n));
        keys.rowid = ["rowid", "_rowid_", "oid"].into_iter().find(|n| !is_column(n)).map(str::to_string);
        // `INTEGER PRIMARY KEY DESC` is no alias, but treating it as one
        // only costs an unfiltered UPDATE trigger.
        if let [(_, name, ty)] = pk[..] {
            if ty.trim().eq_ignore_ascii_case("INTEGER") {
                keys.rowid_alias = Some(name.to_string());
            }
        }
    }
    let mut indexes =
        conn.prepare("SELECT name, partial FROM pragma_index_list(?1) WHERE \"unique\" = 1 ORDER BY name")?;
    let indexes: Vec<(String, bool)> =
        indexes.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
    let mut parts = conn.prepare("SELECT name, coll FROM pragma_index_xinfo(?1) WHERE key = 1 ORDER BY seqno")?;
    for (index, partial) in indexes {
        let key: Vec<(Option<String>, String)> =
            parts.query_map([&index], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        let key: Option<Vec<(String, String)>> = key.into_iter().map(|(c, coll)| c.map(|c| (c, coll))).collect();
        match key {
            // A partial index is searched as if it were whole: the rowid
            // check of the AFTER trigger drops rows that did not conflict.
            Some(key) if !partial || keys.rowid.is_some() => {
                if !keys.unique.contains(&key) {
                    keys.unique.push(key);
                }
            }
            _ => keys.unsupported.push(index),
        }
    }
    Ok(keys)
}

/// The triggers that log changes of `table`'s `logged` columns (names in
/// table order), given its `keys`:
///
/// * `AFTER INSERT`, `AFTER DELETE` and `AFTER UPDATE OF <logged> WHEN
///   <a logged column changed>` log the row change. A table whose views read
///   no column (only `COUNT(*)`) gets no UPDATE trigger: no update can
///   change what views see. When the rowid alias is logged the UPDATE
///   trigger has no `OF` list: `SET rowid = …` changes the alias column yet
///   fires no `UPDATE OF` trigger. Nor when a generated column is logged:
///   `UPDATE OF g` does not fire on `SET a = …` for `g AS (a * 2)`. The
///   `WHEN` condition also compares `typeof()`: `IS NOT` calls the integer
///   -2^63 and the REAL -9.223372036854775808e18 equal (and 1 and 1.0 in a
///   column without affinity), yet the stored value changed.
/// * Rows a `REPLACE` conflict deletes fire no DELETE trigger (unless the
///   writer set `recursive_triggers`), so `BEFORE INSERT` copies every row
///   that conflicts with `NEW` on the rowid or a UNIQUE index into
///   [`PENDING_TABLE`], and the `AFTER INSERT` trigger logs their deletion
///   (for a rowid table only those whose rowid is gone or taken by `NEW`)
///   before it logs the insert. `BEFORE UPDATE`/`AFTER UPDATE` do the same
///   when an UPDATE changes a key column, excluding the updated row itself.
///   The DELETE trigger takes its row out of the pending table, so that a
///   deletion that did fire it (`recursive_triggers = ON`) is logged once.
pub(crate) fn table_triggers(table: &str, logged: &[&str], keys: &RowKeys) -> Vec<Trigger> {
    let new = encode_row("NEW", logged);
    let old = encode_row("OLD", logged);
    let replace = keys.capturable();
    let log = |old: &str, new: &str| {
        format!(
            "INSERT INTO {LOG_TABLE} (tbl, old, new, committed_at) VALUES ({}, {old}, {new}, {NOW_SQL});",
            quote_literal(table)
        )
    };
    let (mut on_insert, mut on_delete) = (log("NULL", &new), log(&old, "NULL"));
    if replace {
        on_insert = format!("{} {on_insert}", move_pending(table, keys));
        on_delete = format!(
            "{on_delete} DELETE FROM {PENDING_TABLE} WHERE tbl = {} AND rid = {};",
            quote_literal(table),
            keys.rid("OLD")
        );
    }
    let mut triggers = vec![
        trigger(table, "insert", "AFTER INSERT", "", &on_insert),
        trigger(table, "delete", "AFTER DELETE", "", &on_delete),
    ];
    if !logged.is_empty() {
        let is_logged = |name: &String| logged.iter().any(|c| c.eq_ignore_ascii_case(name));
        let alias_logged = keys.rowid_alias.as_ref().is_some_and(is_logged);
        let generated_logged = keys.generated.iter().any(is_logged);
        let event = if alias_logged || generated_logged {
            "AFTER UPDATE".to_string()
        } else {
            let columns: Vec<String> = logged.iter().map(|c| quote_ident(c)).collect();
            format!("AFTER UPDATE OF {}", columns.join(", "))
        };
        triggers.push(trigger(table, "update", &event, &changed_condition(logged), &log(&old, &new)));
    }
    if replace {
        let clear = format!("DELETE FROM {PENDING_TABLE} WHERE tbl = {};", quote_literal(table));
        let before_insert = format!("{clear} {}", collect_conflicts(table, logged, keys, None));
        triggers.push(trigger(table, "preinsert", "BEFORE INSERT", "", &before_insert));
        let when = keys.key_changed();
        let before_update = format!("{clear} {}", collect_conflicts(table, logged, keys, Some(&keys.rid("OLD"))));
        triggers.push(trigger(table, "preupdate", "BEFORE UPDATE", &when, &before_update));
        triggers.push(trigger(table, "replaced", "AFTER UPDATE", &when, &move_pending(table, keys)));
    }
    triggers
}

/// `INSERT INTO _denorm_pending … SELECT` of the rows that conflict with
/// `NEW` on the rowid or on any UNIQUE index (each row once; NULL conflicts
/// with nothing), other than the row whose rid is `except`.
fn collect_conflicts(table: &str, logged: &[&str], keys: &RowKeys, except: Option<&str>) -> String {
    const R: &str = "_denorm_r";
    let select = format!(
        "SELECT {}, {}, {} FROM {} AS {R} WHERE ",
        quote_literal(table),
        keys.rid(R),
        encode_row(R, logged),
        quote_ident(table)
    );
    let mut conditions = Vec::new();
    if let Some(rowid) = &keys.rowid {
        let rowid = quote_ident(rowid);
        conditions.push(format!("{R}.{rowid} = NEW.{rowid}"));
    }
    for key in &keys.unique {
        let parts: Vec<String> = key
            .iter()
            .map(|(column, collation)| {
                let c = quote_ident(column);
                format!("{R}.{c} = NEW.{c} COLLATE {}", quote_ident(collation))
            })
            .collect();
        conditions.push(parts.join(" AND "));
    }
    let except = except.map(|rid| format!(" AND {} IS NOT {rid}", keys.rid(R))).unwrap_or_default();
    let selects: Vec<String> = conditions.iter().map(|c| format!("{select}{c}{except}")).collect();
    format!("INSERT INTO {PENDING_TABLE} (tbl, rid, old) {};", selects.join(" UNION "))
}

/// Logs the deletion of `table`'s pending rows and empties them. For a
/// rowid table only the rows really gone count: its BEFORE trigger cannot
/// tell an automatic rowid (`NEW.rowid` is -1 there) from an explicit -1,
/// and searches partial indexes as if whole.
fn move_pending(table: &str, keys: &RowKeys) -> String {
    let tbl = quote_literal(table);
    let gone = match &keys.rowid {
        Some(rowid) => {
            let rowid = quote_ident(rowid);
            format!(
                " AND (p.rid = NEW.{rowid} OR NOT EXISTS (SELECT 1 FROM {} AS _denorm_r WHERE _denorm_r.{rowid} = \
                 p.rid))",
                quote_ident(table)
            )
        }
        None => String::new(),
    };
    format!(
        "INSERT INTO {LOG_TABLE} (tbl, old, new, committed_at) SELECT {tbl}, p.old, NULL, {NOW_SQL} FROM \
         {PENDING_TABLE} AS p WHERE p.tbl = {tbl}{gone} ORDER BY p.rowid; DELETE FROM {PENDING_TABLE} WHERE tbl = \
         {tbl};"
    )
}

fn trigger(table: &str, op: &str, event: &str, when: &str, body: &str) -> Trigger {
    // The op comes first so that names of different tables never collide
    // (no op is another op followed by `_`).
    let name = format!("_denorm_{op}_{table}");
    let sql = format!("CREATE TRIGGER {} {event} ON {}{when} BEGIN {body} END", quote_ident(&name), quote_ident(table));
    Trigger { name, sql }
}

/// `quote(NEW."a")||','||quote(NEW."b")` (each value as [`encode_value`]
/// renders it), or `''` for no columns.
fn encode_row(alias: &str, columns: &[&str]) -> String {
    if columns.is_empty() {
        return "''".to_string();
    }
    let parts: Vec<String> = columns.iter().map(|c| encode_value(&format!("{alias}.{}", quote_ident(c)))).collect();
    parts.join("||','||")
}

/// `quote(x)`, except for text holding a NUL byte, which `quote()` would
/// cut at the NUL (SQLite's C string handling): that is logged as `T`
/// followed by the quoted bytes (`TX'610062'`), decoded back to the same
/// text (see [`super::decode`]).
pub(crate) fn encode_value(x: &str) -> String {
    format!("CASE WHEN typeof({x})='text' AND instr(CAST({x} AS BLOB),X'00') THEN 'T'||quote(CAST({x} AS BLOB)) ELSE quote({x}) END")
}

/// ` WHEN OLD."a" IS NOT NEW."a" COLLATE BINARY OR typeof(OLD."a") <>
/// typeof(NEW."a") OR …`. BINARY because a column declared `COLLATE NOCASE`
/// would otherwise call 'Ada' → 'ADA' no change, and the view would keep the
/// old spelling; `typeof` because `IS NOT` compares an integer and a REAL by
/// value (-2^63 and -9.223372036854775808e18 are equal to it).
fn changed_condition(columns: &[&str]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| {
            let c = quote_ident(c);
            format!("OLD.{c} IS NOT NEW.{c} COLLATE BINARY OR typeof(OLD.{c}) <> typeof(NEW.{c})")
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
/// change-log and pending tables, inside the caller's write transaction.
/// Returns whether it changed anything.
pub(crate) fn sync(conn: &Connection, wanted: &[Trigger]) -> rusqlite::Result<bool> {
    let mut changed = false;
    for (table, sql) in
        [(LOG_TABLE, LOG_TABLE_SQL), (PENDING_TABLE, PENDING_TABLE_SQL), (CAPTURE_ID_TABLE, CAPTURE_ID_TABLE_SQL)]
    {
        if !table_exists(conn, table)? {
            conn.execute_batch(sql)?;
            changed = true;
        }
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

/// Whether the change-log and pending tables both exist.
/// The capture's id (see [`CAPTURE_ID_TABLE`]), made on first call; in a
/// write transaction, after [`sync`].
pub(crate) fn capture_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.execute(
        "INSERT INTO _denorm_capture (id) SELECT lower(hex(randomblob(16))) \
         WHERE NOT EXISTS (SELECT 1 FROM _denorm_capture)",
        [],
    )?;
    conn.query_row("SELECT id FROM _denorm_capture ORDER BY rowid LIMIT 1", [], |r| r.get(0))
}

/// The smallest `seq` still in the change log, if any.
pub(crate) fn first_seq(conn: &Connection) -> rusqlite::Result<Option<u64>> {
    let first: Option<i64> = conn.query_row(&format!("SELECT min(seq) FROM {LOG_TABLE}"), [], |r| r.get(0))?;
    Ok(first.map(|s| s.max(0) as u64))
}

pub(crate) fn log_tables_exist(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(table_exists(conn, LOG_TABLE)? && table_exists(conn, PENDING_TABLE)?)
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    let found: Option<i64> = conn
        .query_row("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1", [table], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// The last `seq` the change log assigned, 0 before the first change: the
/// larger of `sqlite_sequence`'s record (which survives deleting every log
/// row) and the log's largest `seq`. The second matters after a statement
/// run `OR FAIL` failed: the rows it had already changed stay, with their
/// log rows, but SQLite skips its `sqlite_sequence` update.
pub(crate) fn last_seq(conn: &Connection) -> rusqlite::Result<u64> {
    // sqlite_sequence only exists once some AUTOINCREMENT table does.
    let mut seq = 0;
    if table_exists(conn, "sqlite_sequence")? {
        let recorded: Option<i64> =
            conn.query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [LOG_TABLE], |r| r.get(0)).optional()?;
        seq = recorded.unwrap_or(0);
    }
    if table_exists(conn, LOG_TABLE)? {
        let largest: Option<i64> = conn.query_row(&format!("SELECT max(seq) FROM {LOG_TABLE}"), [], |r| r.get(0))?;
        seq = seq.max(largest.unwrap_or(0));
    }
    Ok(seq.max(0) as u64)
}

/// Deletes the log rows with `seq <= upto`, and raises `sqlite_sequence` to
/// `upto` so that no later change reuses a released `seq` (see [`last_seq`]:
/// `sqlite_sequence` may lag the log). Inside the caller's transaction.
pub(crate) fn release(conn: &Connection, upto: i64) -> rusqlite::Result<usize> {
    let deleted = conn.execute(&format!("DELETE FROM {LOG_TABLE} WHERE seq <= ?1"), [upto])?;
    if deleted > 0 {
        conn.execute("UPDATE sqlite_sequence SET seq = ?2 WHERE name = ?1 AND seq < ?2", (LOG_TABLE, upto))?;
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) SELECT ?1, ?2 \
             WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = ?1)",
            (LOG_TABLE, upto),
        )?;
    }
    Ok(deleted)
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
        // Keys that identify no row: the three logging triggers only.
        let triggers = table_triggers("users", &["id", "name"], &RowKeys::default());
        let sql: Vec<&str> = triggers.iter().map(|t| t.sql.as_str()).collect();
        assert_eq!(
            sql,
            vec![
                "CREATE TRIGGER \"_denorm_insert_users\" AFTER INSERT ON \"users\" BEGIN INSERT INTO _denorm_changes \
                 (tbl, old, new, committed_at) VALUES ('users', NULL, CASE WHEN typeof(NEW.\"id\")='text' AND instr(CAST(NEW.\"id\" AS BLOB),X'00') THEN 'T'||quote(CAST(NEW.\"id\" AS BLOB)) ELSE quote(NEW.\"id\") END||','||CASE WHEN typeof(NEW.\"name\")='text' AND instr(CAST(NEW.\"name\" AS BLOB),X'00') THEN 'T'||quote(CAST(NEW.\"name\" AS BLOB)) ELSE quote(NEW.\"name\") END, \
                 (julianday('now') - 2440587.5) * 86400.0); END",
                "CREATE TRIGGER \"_denorm_delete_users\" AFTER DELETE ON \"users\" BEGIN INSERT INTO _denorm_changes \
                 (tbl, old, new, committed_at) VALUES ('users', CASE WHEN typeof(OLD.\"id\")='text' AND instr(CAST(OLD.\"id\" AS BLOB),X'00') THEN 'T'||quote(CAST(OLD.\"id\" AS BLOB)) ELSE quote(OLD.\"id\") END||','||CASE WHEN typeof(OLD.\"name\")='text' AND instr(CAST(OLD.\"name\" AS BLOB),X'00') THEN 'T'||quote(CAST(OLD.\"name\" AS BLOB)) ELSE quote(OLD.\"name\") END, NULL, \
                 (julianday('now') - 2440587.5) * 86400.0); END",
                "CREATE TRIGGER \"_denorm_update_users\" AFTER UPDATE OF \"id\", \"name\" ON \"users\" WHEN \
                 OLD.\"id\" IS NOT NEW.\"id\" COLLATE BINARY OR typeof(OLD.\"id\") <> typeof(NEW.\"id\") OR \
                 OLD.\"name\" IS NOT NEW.\"name\" COLLATE BINARY OR typeof(OLD.\"name\") <> typeof(NEW.\"name\") \
                 BEGIN INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', \
                 CASE WHEN typeof(OLD.\"id\")='text' AND instr(CAST(OLD.\"id\" AS BLOB),X'00') THEN 'T'||quote(CAST(OLD.\"id\" AS BLOB)) ELSE quote(OLD.\"id\") END||','||CASE WHEN typeof(OLD.\"name\")='text' AND instr(CAST(OLD.\"name\" AS BLOB),X'00') THEN 'T'||quote(CAST(OLD.\"name\" AS BLOB)) ELSE quote(OLD.\"name\") END, CASE WHEN typeof(NEW.\"id\")='text' AND instr(CAST(NEW.\"id\" AS BLOB),X'00') THEN 'T'||quote(CAST(NEW.\"id\" AS BLOB)) ELSE quote(NEW.\"id\") END||','||CASE WHEN typeof(NEW.\"name\")='text' AND instr(CAST(NEW.\"name\" AS BLOB),X'00') THEN 'T'||quote(CAST(NEW.\"name\" AS BLOB)) ELSE quote(NEW.\"name\") END, \
                 (julianday('now') - 2440587.5) * 86400.0); END",
            ]
        );
    }

    fn keys_of(schema: &str, table: &str) -> RowKeys {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(schema).unwrap();
        let without_rowid: bool =
            conn.query_row("SELECT wr FROM pragma_table_list WHERE name = ?1", [table], |r| r.get(0)).unwrap();
        row_keys(&conn, table, without_rowid).unwrap()
    }

    #[test]
    fn keys_come_with_their_index_collations() {
        let keys = keys_of(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT COLLATE NOCASE UNIQUE, b TEXT, c INT,
                             UNIQUE (b COLLATE RTRIM, c), UNIQUE (c, b));
             CREATE UNIQUE INDEX t_a_binary ON t (a COLLATE BINARY);
             CREATE UNIQUE INDEX t_a_again ON t (a);
             CREATE UNIQUE INDEX t_partial ON t (c) WHERE c > 0;
             CREATE UNIQUE INDEX t_expr ON t (lower(b));
             CREATE INDEX t_plain ON t (b);",
            "t",
        );
        let pair = |c: &str, coll: &str| (c.to_string(), coll.to_string());
        assert_eq!(keys.rowid.as_deref(), Some("rowid"));
        assert_eq!(keys.rowid_alias.as_deref(), Some("id"));
        assert!(keys.primary_key.is_empty());
        let mut unique = keys.unique.clone();
        unique.sort();
        assert_eq!(
            unique,
            vec![
                vec![pair("a", "BINARY")],
                vec![pair("a", "NOCASE")],
                vec![pair("b", "RTRIM"), pair("c", "BINARY")],
                vec![pair("c", "BINARY")],
                vec![pair("c", "BINARY"), pair("b", "BINARY")],
            ]
        );
        assert_eq!(keys.unsupported, vec!["t_expr"]);

        let keys = keys_of(
            "CREATE TABLE w (k TEXT, \"rowid\" INT, n INT, PRIMARY KEY (n, k COLLATE NOCASE)) WITHOUT ROWID;
             CREATE UNIQUE INDEX w_partial ON w (\"rowid\") WHERE n > 0;",
            "w",
        );
        assert_eq!(keys.rowid, None);
        assert_eq!(keys.primary_key, vec!["n", "k"]);
        assert_eq!(keys.unique, vec![vec![pair("n", "BINARY"), pair("k", "NOCASE")]]);
        assert_eq!(keys.unsupported, vec!["w_partial"]);

        let keys = keys_of("CREATE TABLE odd (\"ROWID\" INT, _rowid_ INT, v TEXT)", "odd");
        assert_eq!(keys.rowid.as_deref(), Some("oid"));
        assert!(keys.unique.is_empty() && keys.rowid_alias.is_none());
    }

    #[test]
    fn keyed_tables_get_replace_triggers_that_run() {
        let schema = "CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT COLLATE NOCASE UNIQUE, v TEXT)";
        let keys = keys_of(schema, "t");
        let triggers = table_triggers("t", &["id", "v"], &keys);
        let names: Vec<&str> = triggers.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "_denorm_insert_t",
                "_denorm_delete_t",
                "_denorm_update_t",
                "_denorm_preinsert_t",
                "_denorm_preupdate_t",
                "_denorm_replaced_t"
            ]
        );
        // The rowid alias is logged: no `OF` list, or `SET rowid = …` would go unseen.
        assert!(triggers[2].sql.contains("AFTER UPDATE ON \"t\" WHEN"), "{}", triggers[2].sql);
        assert!(triggers[3].sql.contains("_denorm_r.\"u\" = NEW.\"u\" COLLATE \"NOCASE\""), "{}", triggers[3].sql);
        assert!(
            triggers[4].sql.contains(
                " WHEN NEW.\"rowid\" IS NOT OLD.\"rowid\" OR NEW.\"u\" IS NOT OLD.\"u\" COLLATE BINARY BEGIN"
            ),
            "{}",
            triggers[4].sql
        );

        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(schema).unwrap();
        assert!(sync(&conn, &triggers).unwrap());
        conn.execute_batch(
            "INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y');
             INSERT OR REPLACE INTO t VALUES (1, 'B', 'z');",
        )
        .unwrap();
        let log: Vec<(Option<String>, Option<String>)> = conn
            .prepare("SELECT old, new FROM _denorm_changes ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let row = |s: &str| Some(s.to_string());
        assert_eq!(
            log,
            vec![
                (None, row("1,'x'")),
                (None, row("2,'y'")),
                (row("1,'x'"), None),
                (row("2,'y'"), None),
                (None, row("1,'z'")),
            ]
        );
        let pending: i64 = conn.query_row("SELECT count(*) FROM _denorm_pending", [], |r| r.get(0)).unwrap();
        assert_eq!(pending, 0);
    }

    #[test]
    fn odd_names_are_quoted_and_no_columns_means_no_update_trigger() {
        let triggers = table_triggers("it's \"x\"", &[], &RowKeys::default());
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
        let keys = RowKeys { rowid: Some("rowid".into()), ..RowKeys::default() };
        let mut wanted = table_triggers("t", &["a"], &keys);
        wanted.extend(table_triggers("u", &["c"], &keys));
        assert!(sync(&conn, &wanted).unwrap());
        let before = version(&conn);
        assert!(!sync(&conn, &wanted).unwrap());
        assert_eq!(version(&conn), before);
        let changed = table_triggers("t", &["a", "b"], &keys);
        assert!(sync(&conn, &changed).unwrap());
        let present = installed_triggers(&conn).unwrap();
        assert_eq!(present.len(), 6, "u's triggers are gone: {present:?}");
        assert!(present["_denorm_update_t"].contains("\"b\""));
    }
}
