//! REPLACE conflict resolution deletes rows without firing DELETE triggers
//! (unless the writer set `PRAGMA recursive_triggers = ON`): every way of
//! writing one, each checked for the exact changes it must yield, written by
//! a rusqlite connection and by the stock `sqlite3` shell, with recursive
//! triggers off and on.

mod common;

use std::collections::BTreeMap;

use common::{contents, drain, from_snapshot, non_empty, run_shell_output, spec, Db};
use denorm_types::{Datum, Row};

/// `t.k` is UNIQUE but not read; `c` declares its conflict policy; `w` is
/// WITHOUT ROWID with a NOCASE key; `x` has a UNIQUE index whose collation
/// is not its column's, and a partial one; `b` has no key at all.
const SCHEMA: &str = "
    CREATE TABLE t (id INTEGER PRIMARY KEY, u INT UNIQUE, v TEXT, k INT UNIQUE);
    INSERT INTO t VALUES (1, 10, 'a', 100), (2, 20, 'b', 200), (3, 30, 'c', 300);
    CREATE TABLE c (id INTEGER PRIMARY KEY, u INT UNIQUE ON CONFLICT REPLACE, v TEXT);
    INSERT INTO c VALUES (1, 10, 'a'), (2, 20, 'b');
    CREATE TABLE w (code TEXT PRIMARY KEY COLLATE NOCASE, u INT UNIQUE, n INT) WITHOUT ROWID;
    INSERT INTO w VALUES ('a', 1, 0), ('b', 2, 0);
    CREATE TABLE x (id INTEGER PRIMARY KEY, name TEXT, k INT);
    CREATE UNIQUE INDEX x_name ON x (name COLLATE NOCASE);
    CREATE UNIQUE INDEX x_k ON x (k) WHERE k > 0;
    INSERT INTO x VALUES (1, 'ann', 1), (2, 'bob', -1), (3, 'cy', -1);
    CREATE TABLE b (x INT, y TEXT);
    INSERT INTO b (rowid, x, y) VALUES (1, 1, 'p'), (2, 2, 'q');";

const TABLES: &[(&str, &[&str])] = &[
    ("t", &["id", "u", "v"]),
    ("c", &["id", "u", "v"]),
    ("w", &["code", "u", "n"]),
    ("x", &["id", "name", "k"]),
    ("b", &["x", "y"]),
];

struct Case {
    name: &'static str,
    sql: &'static str,
    /// Whether the last statement fails on a constraint.
    fails: bool,
    /// Net changes: `table row ±n`, rows as `(1, 'a', NULL)`.
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "insert or replace on the primary key",
        sql: "INSERT OR REPLACE INTO t VALUES (1, 11, 'x', 0)",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (1, 11, 'x', NULL) +1"],
    },
    Case {
        name: "replace into on a unique column",
        sql: "REPLACE INTO t VALUES (4, 20, 'x', 0)",
        fails: false,
        expect: &["t (2, 20, 'b', NULL) -1", "t (4, 20, 'x', NULL) +1"],
    },
    Case {
        name: "one row replaces two rows, on two different keys",
        sql: "INSERT OR REPLACE INTO t VALUES (1, 20, 'x', 300)",
        fails: false,
        expect: &[
            "t (1, 10, 'a', NULL) -1",
            "t (2, 20, 'b', NULL) -1",
            "t (3, 30, 'c', NULL) -1",
            "t (1, 20, 'x', NULL) +1",
        ],
    },
    Case {
        name: "a row replaced by the same row",
        sql: "REPLACE INTO t VALUES (1, 10, 'a', 100)",
        fails: false,
        expect: &[],
    },
    Case {
        name: "a later row of one statement replaces an earlier one",
        sql: "INSERT OR REPLACE INTO t VALUES (5, 50, 'x', 0), (6, 50, 'y', 1), (5, 60, 'z', 2)",
        fails: false,
        expect: &["t (5, 60, 'z', NULL) +1", "t (6, 50, 'y', NULL) +1"],
    },
    Case {
        name: "insert or replace from a select of the same table",
        sql: "INSERT OR REPLACE INTO t SELECT id + 10, 99, v, NULL FROM t ORDER BY id",
        fails: false,
        expect: &["t (13, 99, 'c', NULL) +1"],
    },
    Case {
        name: "an automatic rowid next to a row whose rowid is -1",
        sql: "INSERT INTO t VALUES (-1, -10, 'm', -100); INSERT OR REPLACE INTO t (u, v) VALUES (40, 'n')",
        fails: false,
        expect: &["t (-1, -10, 'm', NULL) +1", "t (4, 40, 'n', NULL) +1"],
    },
    Case {
        name: "update or replace of an unread unique column",
        sql: "UPDATE OR REPLACE t SET k = 200 WHERE id = 1",
        fails: false,
        expect: &["t (2, 20, 'b', NULL) -1"],
    },
    Case {
        name: "update or replace of the primary key",
        sql: "UPDATE OR REPLACE t SET id = 2 WHERE id = 1",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (2, 20, 'b', NULL) -1", "t (2, 10, 'a', NULL) +1"],
    },
    Case {
        name: "update or replace of the rowid",
        sql: "UPDATE OR REPLACE t SET rowid = 3 WHERE id = 1",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (3, 30, 'c', NULL) -1", "t (3, 10, 'a', NULL) +1"],
    },
    Case {
        name: "setting the rowid changes the rowid alias",
        sql: "UPDATE t SET rowid = 9 WHERE id = 1",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (9, 10, 'a', NULL) +1"],
    },
    Case {
        name: "update or replace of many rows, each replacing the one before",
        sql: "UPDATE OR REPLACE t SET u = 5",
        fails: false,
        expect: &[
            "t (1, 10, 'a', NULL) -1",
            "t (2, 20, 'b', NULL) -1",
            "t (3, 30, 'c', NULL) -1",
            "t (3, 5, 'c', NULL) +1",
        ],
    },
    Case {
        name: "an ignored insert leaves nothing behind for the next insert",
        sql: "INSERT OR IGNORE INTO t VALUES (1, 20, 'x', 300); INSERT INTO t VALUES (4, 40, 'd', 400)",
        fails: false,
        expect: &["t (4, 40, 'd', NULL) +1"],
    },
    Case {
        name: "an ignored insert leaves nothing behind for the next update or delete",
        sql: "INSERT OR IGNORE INTO t VALUES (1, 20, 'x', 300); UPDATE t SET u = 11, k = 101 WHERE id = 1;
              DELETE FROM t WHERE id = 2",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (1, 11, 'a', NULL) +1", "t (2, 20, 'b', NULL) -1"],
    },
    Case {
        name: "an upsert that updates",
        sql: "INSERT INTO t VALUES (1, 10, 'x', 0) ON CONFLICT (id) DO UPDATE SET v = excluded.v;
              INSERT INTO t VALUES (5, 50, 'e', 500)",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (1, 10, 'x', NULL) +1", "t (5, 50, 'e', NULL) +1"],
    },
    Case {
        name: "an upsert that updates an unread key, then an update that replaces",
        sql: "INSERT INTO t VALUES (2, 30, 'x', 0) ON CONFLICT (id) DO UPDATE SET k = 222;
              UPDATE OR REPLACE t SET u = 10 WHERE id = 3",
        fails: false,
        expect: &["t (1, 10, 'a', NULL) -1", "t (3, 30, 'c', NULL) -1", "t (3, 10, 'c', NULL) +1"],
    },
    Case {
        name: "an upsert that does nothing",
        sql: "INSERT INTO t VALUES (1, 20, 'x', 0) ON CONFLICT DO NOTHING; INSERT INTO t VALUES (4, 40, 'd', 400)",
        fails: false,
        expect: &["t (4, 40, 'd', NULL) +1"],
    },
    Case {
        name: "a plain insert that fails logs nothing",
        sql: "INSERT INTO t VALUES (4, 20, 'x', 0)",
        fails: true,
        expect: &[],
    },
    Case {
        name: "insert or abort rolls back the statement's earlier rows",
        sql: "INSERT OR ABORT INTO t VALUES (4, 40, 'd', 400), (1, 50, 'x', 0)",
        fails: true,
        expect: &[],
    },
    Case {
        name: "insert or fail keeps the statement's earlier rows",
        sql: "INSERT OR FAIL INTO t VALUES (4, 40, 'd', 400), (1, 50, 'x', 0)",
        fails: true,
        expect: &["t (4, 40, 'd', NULL) +1"],
    },
    Case {
        name: "an upsert whose update conflicts fails whole",
        sql: "INSERT OR REPLACE INTO t VALUES (1, 0, 'x', 0) ON CONFLICT (id) DO UPDATE SET u = 20",
        fails: true,
        expect: &[],
    },
    Case {
        name: "a plain insert into a column declared ON CONFLICT REPLACE",
        sql: "INSERT INTO c VALUES (4, 10, 'x')",
        fails: false,
        expect: &["c (1, 10, 'a') -1", "c (4, 10, 'x') +1"],
    },
    Case {
        name: "a plain update of a column declared ON CONFLICT REPLACE",
        sql: "UPDATE c SET u = 10 WHERE id = 2",
        fails: false,
        expect: &["c (1, 10, 'a') -1", "c (2, 20, 'b') -1", "c (2, 10, 'b') +1"],
    },
    Case {
        name: "without rowid: a NOCASE key and a unique column",
        sql: "INSERT OR REPLACE INTO w VALUES ('A', 2, 5)",
        fails: false,
        expect: &["w ('a', 1, 0) -1", "w ('b', 2, 0) -1", "w ('A', 2, 5) +1"],
    },
    Case {
        name: "without rowid: update or replace of the key",
        sql: "UPDATE OR REPLACE w SET code = 'B' WHERE code = 'a'",
        fails: false,
        expect: &["w ('a', 1, 0) -1", "w ('b', 2, 0) -1", "w ('B', 1, 0) +1"],
    },
    Case {
        name: "without rowid: update or replace of a unique column",
        sql: "UPDATE OR REPLACE w SET u = 2 WHERE code = 'A'",
        fails: false,
        expect: &["w ('a', 1, 0) -1", "w ('b', 2, 0) -1", "w ('a', 2, 0) +1"],
    },
    Case {
        name: "a unique index collates unlike its column",
        sql: "INSERT OR REPLACE INTO x VALUES (4, 'ANN', 0)",
        fails: false,
        expect: &["x (1, 'ann', 1) -1", "x (4, 'ANN', 0) +1"],
    },
    Case {
        name: "a partial unique index: rows outside it do not conflict",
        sql: "INSERT OR REPLACE INTO x VALUES (4, 'dee', -1); INSERT OR REPLACE INTO x VALUES (5, 'eve', 1)",
        fails: false,
        expect: &["x (1, 'ann', 1) -1", "x (4, 'dee', -1) +1", "x (5, 'eve', 1) +1"],
    },
    Case {
        name: "a table without a key: replace by rowid",
        sql: "INSERT OR REPLACE INTO b (rowid, x, y) VALUES (1, 9, 'z')",
        fails: false,
        expect: &["b (1, 'p') -1", "b (9, 'z') +1"],
    },
    Case {
        name: "a table without a key: update or replace of the rowid",
        sql: "UPDATE OR REPLACE b SET rowid = 2 WHERE rowid = 1",
        fails: false,
        expect: &["b (2, 'q') -1"],
    },
];

/// Who writes the case's SQL.
#[derive(Debug, Clone, Copy)]
enum Writer {
    Rusqlite,
    Shell,
}

fn render(row: &Row) -> String {
    let datums: Vec<String> = row
        .iter()
        .map(|d| match d {
            Datum::Null => "NULL".to_string(),
            Datum::Int(i) => i.to_string(),
            Datum::Float(f) => format!("{f:?}"),
            Datum::Text(t) => format!("'{t}'"),
            other => format!("{other:?}"),
        })
        .collect();
    format!("({})", datums.join(", "))
}

fn run(case: &Case, writer: Writer, recursive: bool) {
    let label = format!("{} ({writer:?}, recursive_triggers = {recursive})", case.name);
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(TABLES));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    let pragma = format!("PRAGMA recursive_triggers = {};", if recursive { "ON" } else { "OFF" });
    let failure = match writer {
        Writer::Rusqlite => {
            let conn = db.writer();
            conn.execute_batch(&pragma).unwrap();
            conn.execute_batch(case.sql).err().map(|e| {
                assert_eq!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{label}: {e}");
                e.to_string()
            })
        }
        Writer::Shell => {
            let output = run_shell_output(&db.path, &format!("{pragma}\n{};", case.sql));
            let stderr = String::from_utf8_lossy(&output.stderr).to_string();
            assert!(output.status.success() || stderr.contains("constraint failed"), "{label}: {stderr}");
            (!output.status.success()).then_some(stderr)
        }
    };
    assert_eq!(failure.is_some(), case.fails, "{label}: {failure:?}");

    let mut net: BTreeMap<String, i64> = BTreeMap::new();
    for batch in drain(&mut capture, &mut state) {
        for (table, changes) in &batch.tables {
            for (row, diff) in changes {
                *net.entry(format!("{table} {}", render(row))).or_default() += diff;
            }
        }
    }
    let mut got: Vec<String> = net.into_iter().filter(|(_, n)| *n != 0).map(|(r, n)| format!("{r} {n:+}")).collect();
    let mut expected: Vec<String> = case.expect.iter().map(|s| s.to_string()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{label}");
    assert_eq!(non_empty(state), non_empty(contents(&db.path, TABLES)), "{label}");
}

#[test]
fn every_replace_is_captured_by_rusqlite_writers() {
    for case in CASES {
        for recursive in [false, true] {
            run(case, Writer::Rusqlite, recursive);
        }
    }
}

#[test]
fn every_replace_is_captured_by_the_sqlite3_shell() {
    for case in CASES {
        for recursive in [false, true] {
            run(case, Writer::Shell, recursive);
        }
    }
}

#[test]
fn replaced_rows_are_retracted_once_with_the_insert_stamp() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(TABLES));
    capture.snapshot(&mut |_| {}).unwrap();
    for recursive in ["OFF", "ON"] {
        let conn = db.writer();
        conn.execute_batch(&format!("PRAGMA recursive_triggers = {recursive}")).unwrap();
        conn.execute_batch("INSERT OR REPLACE INTO t VALUES (1, 20, 'x', 300)").unwrap();
        let log: Vec<(Option<String>, Option<String>, f64)> = conn
            .prepare("SELECT old, new, committed_at FROM _denorm_changes WHERE tbl = 't' ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut rows: Vec<(Option<&str>, Option<&str>)> =
            log.iter().map(|(o, n, _)| (o.as_deref(), n.as_deref())).collect();
        rows.sort();
        let expected: Vec<(Option<&str>, Option<&str>)> = if recursive == "OFF" {
            vec![(None, Some("1,20,'x'")), (Some("1,10,'a'"), None), (Some("2,20,'b'"), None), (Some("3,30,'c'"), None)]
        } else {
            vec![(None, Some("1,20,'x'")), (Some("1,20,'x'"), None)]
        };
        assert_eq!(rows, expected, "recursive_triggers = {recursive}");
        assert!(log.iter().all(|(_, _, at)| *at == log[0].2), "one statement, one stamp: {log:?}");
        let pending: i64 = conn.query_row("SELECT count(*) FROM _denorm_pending", [], |r| r.get(0)).unwrap();
        assert_eq!(pending, 0);
        conn.execute_batch("DELETE FROM _denorm_changes").unwrap();
    }
}

/// A failed `OR FAIL` statement keeps its earlier rows and their log rows
/// but not its `sqlite_sequence` update: the position must still cover
/// them, in the snapshot and after a release.
#[test]
fn a_failed_insert_or_fail_is_positioned_and_released_correctly() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(TABLES));
    let w = db.writer();
    let or_fail = |id: i64| {
        let sql = format!("INSERT OR FAIL INTO t VALUES ({id}, {id}, 'f', NULL), (1, 99, 'x', NULL)");
        assert!(w.execute_batch(&sql).is_err());
    };
    or_fail(4);
    // Written before the snapshot: in it, and not again in the stream.
    let snapshot = capture.snapshot(&mut |_| {}).unwrap();
    assert_eq!(snapshot.position.0, 1);
    let mut state = from_snapshot(&snapshot);
    or_fail(5);
    drain(&mut capture, &mut state);
    assert_eq!(capture.position().0, 2);
    assert_eq!(capture.release(capture.position()).unwrap(), 2);
    or_fail(6);
    drain(&mut capture, &mut state);
    assert_eq!(capture.position().0, 3, "a released seq is never reused");
    assert_eq!(non_empty(state), non_empty(contents(&db.path, TABLES)));
}
