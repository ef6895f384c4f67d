//! The central property of capture: snapshot + every polled change ==
//! the tables' contents, for random workloads written by another
//! connection, and for writes made by the stock `sqlite3` shell.

mod common;

use common::{apply, contents, drain, from_snapshot, non_empty, run_shell, spec, Contents, Db};
use denorm_source::sqlite::{Poll, SqliteCapture};
use proptest::prelude::*;
use rusqlite::Connection;

/// `r` and `s` take the REPLACE family: a primary key and a separate
/// UNIQUE column each; `r.u` is not read, so an `UPDATE OR REPLACE` of it
/// changes no logged column yet may delete another row; `s` is WITHOUT ROWID
/// with a NOCASE key. `b` has no key, but its rowid can be replaced.
const SCHEMA: &str = "CREATE TABLE a (id INTEGER PRIMARY KEY, k INT, v TEXT, f REAL, unread TEXT);
                      CREATE TABLE b (x INT, y TEXT);
                      CREATE TABLE w (code TEXT PRIMARY KEY, n INT) WITHOUT ROWID;
                      CREATE TABLE r (id INTEGER PRIMARY KEY, u INT UNIQUE, v TEXT);
                      CREATE TABLE s (code TEXT PRIMARY KEY COLLATE NOCASE, u INT UNIQUE, n INT) WITHOUT ROWID;";
const TABLES: &[(&str, &[&str])] = &[
    ("a", &["id", "k", "v", "f"]),
    ("b", &["x"]),
    ("w", &["code", "n"]),
    ("r", &["id", "v"]),
    ("s", &["code", "u", "n"]),
];

/// How a row is written into `r` or `s`.
#[derive(Debug, Clone, Copy)]
enum Insert {
    OrReplace,
    ReplaceInto,
    OrIgnore,
    /// `ON CONFLICT (<primary key>) DO UPDATE`.
    UpsertKey,
    /// `ON CONFLICT (u) DO UPDATE`.
    UpsertUnique,
    UpsertNothing,
    /// Plain INSERT: fails on a conflict.
    Plain,
    /// Keeps the rows before the conflicting one, and their log rows, but
    /// SQLite skips the `sqlite_sequence` update of the failed statement.
    OrFail,
}

impl Insert {
    fn sql(self, table: &str, columns: &str, values: &str, key: &str, set: &str) -> String {
        match self {
            Insert::OrReplace => format!("INSERT OR REPLACE INTO {table} ({columns}) {values}"),
            Insert::ReplaceInto => format!("REPLACE INTO {table} ({columns}) {values}"),
            Insert::OrIgnore => format!("INSERT OR IGNORE INTO {table} ({columns}) {values}"),
            Insert::UpsertKey => {
                format!("INSERT INTO {table} ({columns}) {values} ON CONFLICT ({key}) DO UPDATE SET {set}")
            }
            Insert::UpsertUnique => {
                format!("INSERT INTO {table} ({columns}) {values} ON CONFLICT (u) DO UPDATE SET {set}")
            }
            Insert::UpsertNothing => format!("INSERT INTO {table} ({columns}) {values} ON CONFLICT DO NOTHING"),
            Insert::Plain => format!("INSERT INTO {table} ({columns}) {values}"),
            Insert::OrFail => format!("INSERT OR FAIL INTO {table} ({columns}) {values}"),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    InsertA(i64, Option<String>, Option<f64>),
    SetK(i64, i64),
    MoveId(i64, i64),
    SetUnread(i64, String),
    DeleteA(i64),
    InsertB(i64, String),
    SetX(i64, i64),
    DeleteB(i64),
    UpsertW(String, i64),
    DeleteW(String),
    /// A row of `r`; a NULL id takes the next rowid.
    WriteR(Insert, Option<i64>, Option<i64>, String),
    /// Two rows in one statement: the second may replace the first.
    WriteTwoR(Insert, (i64, Option<i64>), (i64, Option<i64>)),
    /// `INSERT … SELECT` from `r` itself, every row with the same `u`.
    CopyR(Insert, i64, i64),
    /// `UPDATE OR REPLACE r SET u = ?2 WHERE id >= ?1`, possibly many rows.
    SetUFrom(i64, Option<i64>),
    MoveR(i64, i64),
    /// `UPDATE OR REPLACE r SET rowid = …`: no `UPDATE OF id` trigger fires.
    SetRowidR(i64, i64),
    SetVR(i64, String),
    DeleteR(i64),
    WriteS(Insert, String, Option<i64>, i64),
    SetUS(String, Option<i64>),
    MoveS(String, String),
    DeleteS(String),
    /// `INSERT OR REPLACE INTO b (rowid, …)`: a table without a key.
    ReplaceRowidB(i64, i64),
    MoveRowidB(i64, i64),
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<Op>),
    Poll,
    Release,
    /// `PRAGMA recursive_triggers` on the writer: REPLACE then fires the
    /// DELETE triggers.
    Recursive(bool),
}

fn insert() -> impl Strategy<Value = Insert> {
    prop_oneof![
        3 => Just(Insert::OrReplace),
        1 => Just(Insert::ReplaceInto),
        1 => Just(Insert::OrIgnore),
        1 => Just(Insert::UpsertKey),
        1 => Just(Insert::UpsertUnique),
        1 => Just(Insert::UpsertNothing),
        1 => Just(Insert::Plain),
        1 => Just(Insert::OrFail),
    ]
}

fn replace_op() -> impl Strategy<Value = Op> {
    let id = 0..5i64;
    let u = proptest::option::of(0..4i64);
    let code = "[aAbBc]";
    prop_oneof![
        4 => (insert(), proptest::option::of(id.clone()), u.clone(), "[xyz]")
            .prop_map(|(how, id, u, v)| Op::WriteR(how, id, u, v)),
        1 => (insert(), (id.clone(), u.clone()), (id.clone(), u.clone()))
            .prop_map(|(how, a, b)| Op::WriteTwoR(how, a, b)),
        1 => (insert(), 0..6i64, 0..4i64).prop_map(|(how, shift, u)| Op::CopyR(how, shift, u)),
        2 => (id.clone(), u.clone()).prop_map(|(id, u)| Op::SetUFrom(id, u)),
        1 => (id.clone(), id.clone()).prop_map(|(id, to)| Op::MoveR(id, to)),
        1 => (id.clone(), id.clone()).prop_map(|(id, to)| Op::SetRowidR(id, to)),
        1 => (id.clone(), "[xyz]").prop_map(|(id, v)| Op::SetVR(id, v)),
        1 => id.clone().prop_map(Op::DeleteR),
        3 => (insert(), code, u.clone(), 0..3i64).prop_map(|(how, c, u, n)| Op::WriteS(how, c, u, n)),
        1 => (code, u).prop_map(|(c, u)| Op::SetUS(c, u)),
        1 => (code, code).prop_map(|(c, to)| Op::MoveS(c, to)),
        1 => code.prop_map(Op::DeleteS),
        1 => (1..4i64, 0..3i64).prop_map(|(rowid, x)| Op::ReplaceRowidB(rowid, x)),
        1 => (1..4i64, 1..4i64).prop_map(|(rowid, to)| Op::MoveRowidB(rowid, to)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![1 => plain_op(), 2 => replace_op()]
}

fn plain_op() -> impl Strategy<Value = Op> {
    let small = 0..6i64;
    let text = proptest::option::of("[a-c',]{0,3}");
    let float = proptest::option::of(prop_oneof![Just(1.0), Just(0.1), Just(-2.5), Just(1e300)]);
    prop_oneof![
        (small.clone(), text, float).prop_map(|(k, v, f)| Op::InsertA(k, v, f)),
        (small.clone(), small.clone()).prop_map(|(id, k)| Op::SetK(id, k)),
        (small.clone(), 0..12i64).prop_map(|(id, to)| Op::MoveId(id, to)),
        (small.clone(), "[xy]").prop_map(|(id, u)| Op::SetUnread(id, u)),
        small.clone().prop_map(Op::DeleteA),
        (0..3i64, "[pq]").prop_map(|(x, y)| Op::InsertB(x, y)),
        (0..3i64, 0..3i64).prop_map(|(x, to)| Op::SetX(x, to)),
        (0..3i64).prop_map(Op::DeleteB),
        ("[rst]", small.clone()).prop_map(|(c, n)| Op::UpsertW(c, n)),
        "[rst]".prop_map(Op::DeleteW),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => proptest::collection::vec(op(), 1..5).prop_map(Step::Write),
        2 => Just(Step::Poll),
        1 => Just(Step::Release),
        1 => any::<bool>().prop_map(Step::Recursive),
    ]
}

/// Runs one write transaction; statements that violate a constraint (a
/// moved id that is taken) fail alone, as in an application.
fn write(conn: &Connection, ops: &[Op]) {
    conn.execute_batch("BEGIN").unwrap();
    for op in ops {
        let result = match op {
            Op::InsertA(k, v, f) => conn.execute("INSERT INTO a (k, v, f) VALUES (?1, ?2, ?3)", (k, v, f)),
            Op::SetK(id, k) => conn.execute("UPDATE a SET k = ?2 WHERE id = ?1", (id, k)),
            Op::MoveId(id, to) => conn.execute("UPDATE a SET id = ?2 WHERE id = ?1", (id, to)),
            Op::SetUnread(id, u) => conn.execute("UPDATE a SET unread = ?2 WHERE id = ?1", (id, u)),
            Op::DeleteA(id) => conn.execute("DELETE FROM a WHERE id = ?1", [id]),
            Op::InsertB(x, y) => conn.execute("INSERT INTO b VALUES (?1, ?2)", (x, y)),
            Op::SetX(x, to) => conn.execute("UPDATE b SET x = ?2 WHERE x = ?1", (x, to)),
            Op::DeleteB(x) => conn.execute("DELETE FROM b WHERE x = ?1", [x]),
            Op::UpsertW(c, n) => {
                conn.execute("INSERT INTO w VALUES (?1, ?2) ON CONFLICT (code) DO UPDATE SET n = excluded.n", (c, n))
            }
            Op::DeleteW(c) => conn.execute("DELETE FROM w WHERE code = ?1", [c]),
            Op::WriteR(how, id, u, v) => {
                let sql = how.sql("r", "id, u, v", "VALUES (?1, ?2, ?3)", "id", "u = excluded.u, v = excluded.v");
                conn.execute(&sql, (id, u, v))
            }
            Op::WriteTwoR(how, (id1, u1), (id2, u2)) => {
                let sql = how.sql("r", "id, u, v", "VALUES (?1, ?2, 'one'), (?3, ?4, 'two')", "id", "v = excluded.v");
                conn.execute(&sql, (id1, u1, id2, u2))
            }
            Op::CopyR(how, shift, u) => {
                // `WHERE true` keeps an UPSERT's ON CONFLICT from being
                // parsed as a join constraint.
                let select = "SELECT id + ?1, ?2, v || 'c' FROM r WHERE true ORDER BY id";
                let sql = how.sql("r", "id, u, v", select, "id", "v = excluded.v");
                conn.execute(&sql, (shift, u))
            }
            Op::SetUFrom(id, u) => conn.execute("UPDATE OR REPLACE r SET u = ?2 WHERE id >= ?1", (id, u)),
            Op::MoveR(id, to) => conn.execute("UPDATE OR REPLACE r SET id = ?2 WHERE id = ?1", (id, to)),
            Op::SetRowidR(id, to) => conn.execute("UPDATE OR REPLACE r SET rowid = ?2 WHERE id = ?1", (id, to)),
            Op::SetVR(id, v) => conn.execute("UPDATE OR REPLACE r SET v = ?2 WHERE id = ?1", (id, v)),
            Op::DeleteR(id) => conn.execute("DELETE FROM r WHERE id = ?1", [id]),
            Op::WriteS(how, code, u, n) => {
                let sql = how.sql("s", "code, u, n", "VALUES (?1, ?2, ?3)", "code", "u = excluded.u, n = excluded.n");
                conn.execute(&sql, (code, u, n))
            }
            Op::SetUS(code, u) => conn.execute("UPDATE OR REPLACE s SET u = ?2 WHERE code = ?1", (code, u)),
            Op::MoveS(code, to) => conn.execute("UPDATE OR REPLACE s SET code = ?2 WHERE code = ?1", (code, to)),
            Op::DeleteS(code) => conn.execute("DELETE FROM s WHERE code = ?1", [code]),
            Op::ReplaceRowidB(rowid, x) => {
                conn.execute("INSERT OR REPLACE INTO b (rowid, x, y) VALUES (?1, ?2, 'r')", (rowid, x))
            }
            Op::MoveRowidB(rowid, to) => {
                conn.execute("UPDATE OR REPLACE b SET rowid = ?2 WHERE rowid = ?1", (rowid, to))
            }
        };
        if let Err(e) = result {
            assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{op:?}: {e}");
        }
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn set_recursive(conn: &Connection, on: bool) {
    conn.execute_batch(&format!("PRAGMA recursive_triggers = {}", if on { "ON" } else { "OFF" })).unwrap();
}

fn poll_into(capture: &mut SqliteCapture, state: &mut Contents) {
    match capture.poll().unwrap() {
        Poll::Idle => {}
        Poll::Changes(batch) => {
            assert!(batch.undecodable.is_empty(), "{:?}", batch.undecodable);
            assert_eq!(batch.skipped, 0);
            apply(state, &batch);
        }
        other => panic!("unexpected {other:?}"),
    }
}

proptest! {
    #[test]
    fn snapshot_plus_changes_equals_the_tables(
        recursive in any::<bool>(),
        before in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 0..4),
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let db = Db::new(SCHEMA);
        let writer = db.writer();
        set_recursive(&writer, recursive);
        let mut capture = db.open(&spec(TABLES));
        // Written after the triggers exist but before the snapshot: they
        // are in the log *and* the snapshot, and must count once.
        for ops in &before {
            write(&writer, ops);
        }
        let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
        for step in &steps {
            match step {
                Step::Write(ops) => write(&writer, ops),
                Step::Poll => poll_into(&mut capture, &mut state),
                Step::Release => {
                    let position = capture.position();
                    capture.release(position).unwrap();
                }
                Step::Recursive(on) => set_recursive(&writer, *on),
            }
        }
        drain(&mut capture, &mut state);
        prop_assert_eq!(non_empty(state), non_empty(contents(&db.path, TABLES)));
    }
}

#[test]
fn writes_by_the_sqlite3_shell_are_captured() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(TABLES));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    run_shell(
        &db.path,
        "INSERT INTO a (id, k, v, f) VALUES
           (1, -9223372036854775808, 'it''s, a
line', 0.1),
           (2, 9223372036854775807, 'żółw 🐢', 1.0),
           (3, NULL, '', 1e308 * 10),
           (4, 0, 'NULL', 4.9406564584124654e-324),
           (5, 7, NULL, 2.2250738585072014e-308),
           (6, 8, 'x', 123456789.123456789),
           (7, 9, 'y', -1.7976931348623157e308);
         BEGIN;
         UPDATE a SET unread = 'ignored' WHERE id = 1;
         UPDATE a SET id = 10, v = 'moved' WHERE id = 2;
         DELETE FROM a WHERE id = 3;
         INSERT INTO b VALUES (1, 'p'), (1, 'p'), (2, 'q');
         DELETE FROM b WHERE rowid = 1;
         INSERT INTO w VALUES ('r', 1) ON CONFLICT (code) DO UPDATE SET n = excluded.n;
         INSERT INTO w VALUES ('r', 2) ON CONFLICT (code) DO UPDATE SET n = excluded.n;
         COMMIT;",
    );
    drain(&mut capture, &mut state);
    assert_eq!(non_empty(state), non_empty(contents(&db.path, TABLES)));
    // The log was written by the shell's SQLite: the unread-column update
    // cost nothing.
    let logged: i64 =
        db.writer().query_row("SELECT count(*) FROM _denorm_changes WHERE tbl = 'a'", [], |r| r.get(0)).unwrap();
    assert_eq!(logged, 9);
}
