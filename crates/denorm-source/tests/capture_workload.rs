//! The central property of capture: snapshot + every polled change ==
//! the tables' contents, for random workloads written by another
//! connection, and for writes made by the stock `sqlite3` shell.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{apply, contents, drain, from_snapshot, non_empty, spec, Contents, Db};
use denorm_source::sqlite::{Poll, SqliteCapture};
use proptest::prelude::*;
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE a (id INTEGER PRIMARY KEY, k INT, v TEXT, f REAL, unread TEXT);
                      CREATE TABLE b (x INT, y TEXT);
                      CREATE TABLE w (code TEXT PRIMARY KEY, n INT) WITHOUT ROWID;";
const TABLES: &[(&str, &[&str])] = &[("a", &["id", "k", "v", "f"]), ("b", &["x"]), ("w", &["code", "n"])];

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
}

#[derive(Debug, Clone)]
enum Step {
    Write(Vec<Op>),
    Poll,
    Release,
}

fn op() -> impl Strategy<Value = Op> {
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
    ]
}

/// Runs one write transaction; statements that violate a constraint (a
/// moved id that is taken) fail alone, as in an application.
fn write(conn: &Connection, ops: &[Op]) {
    conn.execute_batch("BEGIN").unwrap();
    for op in ops {
        let _ = match op {
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
        };
    }
    conn.execute_batch("COMMIT").unwrap();
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
        before in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 0..4),
        steps in proptest::collection::vec(step(), 0..12),
    ) {
        let db = Db::new(SCHEMA);
        let writer = db.writer();
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
            }
        }
        drain(&mut capture, &mut state);
        prop_assert_eq!(non_empty(state), non_empty(contents(&db.path, TABLES)));
    }
}

/// The stock shell, a separate process linked against the system's SQLite.
fn sqlite3_shell() -> &'static Path {
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

fn run_shell(db: &Path, sql: &str) {
    let mut child = Command::new(sqlite3_shell())
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!(".timeout 10000\n{sql}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&output.stderr));
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
