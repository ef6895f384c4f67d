//! SQLite change capture against a real database file written by a separate
//! connection: what gets logged, how it decodes, snapshot, release, wake-up
//! and opening errors.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{apply, contents, drain, from_snapshot, non_empty, spec, Contents, Db};
use denorm_source::sqlite::{uninstall, CaptureSpec, CapturedTable, DecodeError, Poll, SqliteCapture, WakeReason};
use denorm_source::SourceError;
use denorm_types::{Datum, Position, Row};

const USERS: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT COLLATE NOCASE, email TEXT, score REAL);";
const USERS_READ: &[&str] = &["id", "name", "score"];

fn user(id: i64, name: Option<&str>, score: Option<f64>) -> Row {
    let name = name.map_or(Datum::Null, Datum::text);
    let score = score.map_or(Datum::Null, Datum::Float);
    Row::pack([Datum::Int(id), name, Datum::Null, score])
}

fn changes(capture: &mut SqliteCapture) -> Vec<(Row, i64)> {
    match capture.poll().unwrap() {
        Poll::Changes(batch) => {
            assert!(batch.undecodable.is_empty(), "{:?}", batch.undecodable);
            batch.tables.into_iter().flat_map(|(_, rows)| rows).collect()
        }
        other => panic!("expected changes, got {other:?}"),
    }
}

#[test]
fn logs_inserts_updates_and_deletes_of_read_columns_only() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    assert_eq!(capture.snapshot(&mut |_| {}).unwrap().tables, vec![("users".to_string(), vec![])]);
    let w = db.writer();
    w.execute_batch("INSERT INTO users VALUES (1, 'Ada', 'ada@x', 1.0)").unwrap();
    assert_eq!(changes(&mut capture), vec![(user(1, Some("Ada"), Some(1.0)), 1)]);

    // Only an unread column changes, or a read one is set to its own value:
    // nothing is logged.
    w.execute_batch("UPDATE users SET email = 'a@y' WHERE id = 1; UPDATE users SET name = 'Ada' WHERE id = 1").unwrap();
    assert_eq!(capture.poll().unwrap(), Poll::Idle);

    // NOCASE would call this no change; the view must see the new spelling.
    w.execute_batch("UPDATE users SET name = 'ADA' WHERE id = 1").unwrap();
    assert_eq!(
        changes(&mut capture),
        vec![(user(1, Some("Ada"), Some(1.0)), -1), (user(1, Some("ADA"), Some(1.0)), 1)]
    );
    w.execute_batch("UPDATE users SET id = 7, score = NULL WHERE id = 1").unwrap();
    assert_eq!(changes(&mut capture), vec![(user(1, Some("ADA"), Some(1.0)), -1), (user(7, Some("ADA"), None), 1)]);
    w.execute_batch("DELETE FROM users").unwrap();
    assert_eq!(changes(&mut capture), vec![(user(7, Some("ADA"), None), -1)]);
    assert_eq!(db.log_rows(), 4);
}

#[test]
fn one_poll_returns_whole_transactions_with_commit_times() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    capture.snapshot(&mut |_| {}).unwrap();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let w = db.writer();
    w.execute_batch(
        "BEGIN; INSERT INTO users (id, name) VALUES (1, 'a'), (2, 'b'); DELETE FROM users WHERE id = 1; COMMIT",
    )
    .unwrap();
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!("expected changes") };
    assert_eq!(batch.position, Position(3));
    assert_eq!(batch.head, Position(3));
    assert_eq!(capture.position(), Position(3));
    assert_eq!(batch.tables[0].1.len(), 3);
    assert!(!batch.commits.is_empty());
    for commit in &batch.commits {
        assert_eq!(commit.table, "users");
        // SQLite's clock is milliseconds; allow for rounding.
        assert!(commit.committed_at >= before - 0.01 && commit.committed_at <= after + 0.01, "{commit:?}");
    }
}

#[test]
fn values_keep_their_types_through_the_log() {
    let db = Db::new("CREATE TABLE v (i INTEGER, f REAL, t TEXT, n NUMERIC);");
    let mut capture = db.open(&CaptureSpec { tables: vec![CapturedTable::all("v")] });
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch(
        "INSERT INTO v VALUES (-9223372036854775808, 1.0, 'it''s, a
line ✓', 2.5);
         INSERT INTO v VALUES (9223372036854775807, 0.1, '', NULL);
         INSERT INTO v VALUES (NULL, 1e308 * 10, 'NULL', 3);
         INSERT INTO v VALUES (1, -1e308 * 10, '''', 4.0);
         INSERT INTO v VALUES (2, 4.9e-324, 'x', -0.0);",
    )
    .unwrap();
    let mut captured = Contents::new();
    drain(&mut capture, &mut captured);
    assert_eq!(captured, contents(&db.path, &[("v", &["*"])]));
    // 1.0 in a REAL column stays a double, 4.0 in a NUMERIC one an integer.
    let rows: Vec<&Row> = captured["v"].keys().collect();
    assert!(rows.iter().any(|r| r.get(1) == Datum::Float(1.0)));
    assert!(rows.iter().any(|r| r.get(3) == Datum::Int(4)));
    assert!(rows.iter().any(|r| r.get(1) == Datum::Float(f64::INFINITY)));
}

#[test]
fn tables_without_primary_key_and_without_rowid() {
    let db = Db::new(
        "CREATE TABLE events (kind TEXT, n INT);
         CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT) WITHOUT ROWID;
         INSERT INTO events VALUES ('a', 1), ('a', 1);
         INSERT INTO codes VALUES ('x', 'X');",
    );
    let tables: &[(&str, &[&str])] = &[("events", &["kind", "n"]), ("codes", &["code", "label"])];
    let mut capture = db.open(&spec(tables));
    let mut progress = Vec::new();
    let snapshot =
        capture.snapshot(&mut |p| progress.push((p.table.to_string(), p.rows_read, p.estimated_total))).unwrap();
    assert_eq!(progress.last().unwrap().1, 3);
    assert!(progress.iter().all(|p| p.2 == 3), "{progress:?}");
    let mut state = from_snapshot(&snapshot);
    let w = db.writer();
    w.execute_batch(
        "INSERT INTO events VALUES ('a', 1); DELETE FROM events WHERE rowid = 1; UPDATE events SET n = 2 WHERE rowid = 2;
         UPDATE codes SET code = 'y' WHERE code = 'x'; INSERT INTO codes VALUES ('z', NULL);",
    )
    .unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(non_empty(state), non_empty(contents(&db.path, tables)));
}

#[test]
fn a_table_whose_views_read_no_column_still_counts_rows() {
    let db = Db::new("CREATE TABLE t (a INT, b TEXT); INSERT INTO t VALUES (1, 'x');");
    let mut capture = db.open(&spec(&[("t", &[])]));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    db.writer()
        .execute_batch("INSERT INTO t VALUES (2, 'y'); UPDATE t SET a = 5; DELETE FROM t WHERE a = 5 AND b = 'x'")
        .unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(state, contents(&db.path, &[("t", &[])]));
    assert_eq!(state["t"].values().sum::<i64>(), 1);
}

#[test]
fn writes_between_open_and_snapshot_are_in_the_snapshot_not_the_stream() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    let w = db.writer();
    w.execute_batch("INSERT INTO users VALUES (1, 'a', NULL, 1.5), (2, 'b', NULL, NULL)").unwrap();
    let snapshot = capture.snapshot(&mut |_| {}).unwrap();
    assert_eq!(snapshot.position, Position(2));
    let mut state = from_snapshot(&snapshot);
    w.execute_batch("UPDATE users SET score = 2.5 WHERE id = 1; DELETE FROM users WHERE id = 2").unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(non_empty(state), contents(&db.path, &[("users", USERS_READ)]));
}

#[test]
fn snapshot_under_concurrent_writes_joins_the_log_exactly() {
    let db = Db::new("CREATE TABLE c (id INTEGER PRIMARY KEY, n INT);");
    let tables: &[(&str, &[&str])] = &[("c", &["id", "n"])];
    let mut capture = db.open(&spec(tables));
    for round in 0..3 {
        let path = db.path.clone();
        let writing = std::thread::spawn(move || {
            let w = common::writer(&path);
            for i in 0..300 {
                w.execute("INSERT INTO c (n) VALUES (?1)", [i]).unwrap();
                w.execute("UPDATE c SET n = n + 1 WHERE id % 7 = ?1", [i % 7]).unwrap();
                w.execute("DELETE FROM c WHERE id % 11 = ?1 AND n > 100", [i % 11]).unwrap();
            }
        });
        // Snapshot while the writer is under way (once it has written something).
        while db.log_rows() <= 10 * round {
            std::thread::yield_now();
        }
        let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
        writing.join().unwrap();
        drain(&mut capture, &mut state);
        assert_eq!(non_empty(state), non_empty(contents(&db.path, tables)), "round {round}");
    }
}

#[test]
fn undecodable_log_rows_are_reported_and_the_rest_applies() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    let w = db.writer();
    w.execute_batch(
        "INSERT INTO users VALUES (1, 'a', NULL, NULL);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', NULL, 'garbage', 0);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', NULL, '1,2', 0);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', NULL, X'01', 0);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', NULL, '1,X''0'',NULL', 0);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('ghost', NULL, '1', 0);
         INSERT INTO users VALUES (2, 'b', NULL, NULL);",
    )
    .unwrap();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!("expected changes") };
    let reasons: Vec<(u64, &str, DecodeError)> =
        batch.undecodable.iter().map(|u| (u.seq.0, u.table.as_str(), u.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (2, "users", DecodeError::Number { column: 0, text: "garbage".into() }),
            (3, "users", DecodeError::ColumnCount { expected: 3, found: 2 }),
            (4, "users", DecodeError::NotText { kind: "blob" }),
            (5, "users", DecodeError::Syntax { offset: 4, expected: "pairs of hexadecimal digits" }),
        ]
    );
    assert_eq!(batch.skipped, 1);
    assert_eq!(batch.position, Position(7));
    apply(&mut state, &batch);
    assert_eq!(state, contents(&db.path, &[("users", USERS_READ)]));
}

/// Regression: a BLOB in a captured column failed the snapshot (and in the
/// log, the change): SQLite lets any column hold one. Snapshot and log now
/// carry it, byte for byte.
#[test]
fn blobs_are_captured_in_snapshot_and_log() {
    let db = Db::new(
        "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data); INSERT INTO files VALUES (1, X'00FF', 2);",
    );
    let mut capture = db.open(&spec(&[("files", &["id", "name", "data"])]));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    let w = db.writer();
    w.execute_batch("UPDATE files SET data = X'' WHERE id = 1; INSERT INTO files VALUES (2, 'x', X'0A2C27')").unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(state, contents(&db.path, &[("files", &["id", "name", "data"])]));
    let rows: Vec<&Row> = state["files"].keys().collect();
    assert!(rows.iter().any(|r| r.get(1) == Datum::Blob(vec![0, 255].into())), "{rows:?}");
    assert!(rows.iter().any(|r| r.get(2) == Datum::Blob(b"\n,'".to_vec().into())), "{rows:?}");
}

#[test]
fn release_deletes_applied_rows_and_positions_never_go_back() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch(
        "INSERT INTO users (id) VALUES (1); INSERT INTO users (id) VALUES (2); INSERT INTO users (id) VALUES (3);",
    )
    .unwrap();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!() };
    assert_eq!(batch.position, Position(3));
    assert_eq!(capture.release(Position(1)).unwrap(), 1);
    w.execute_batch("INSERT INTO users (id) VALUES (4)").unwrap();
    // Unread changes are never released, whatever the caller asks.
    assert_eq!(capture.release(Position(100)).unwrap(), 2);
    assert_eq!(db.log_rows(), 1);
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!() };
    assert_eq!(batch.position, Position(4));
    assert_eq!(capture.release(batch.position).unwrap(), 1);
    assert_eq!(db.log_rows(), 0);

    // An empty log still continues after the last seq, also after reopening.
    drop(capture);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    assert_eq!(capture.position(), Position(4));
    assert_eq!(capture.snapshot(&mut |_| {}).unwrap().position, Position(4));
    w.execute_batch("DELETE FROM users WHERE id = 4").unwrap();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!() };
    assert_eq!(batch.position, Position(5));
}

#[test]
fn release_on_a_locked_database_is_a_transient_error() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    let w = db.writer();
    w.execute_batch("INSERT INTO users (id) VALUES (1)").unwrap();
    assert!(matches!(capture.poll().unwrap(), Poll::Changes(_)));
    w.execute_batch("BEGIN IMMEDIATE; INSERT INTO users (id) VALUES (2)").unwrap();
    let err = capture.release(Position(1)).unwrap_err();
    assert!(matches!(err, SourceError::Busy { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("locked by another connection"), "{err}");
    // Reads go on while the writer holds its lock.
    assert_eq!(capture.poll().unwrap(), Poll::Idle);
    w.execute_batch("COMMIT").unwrap();
    assert_eq!(capture.release(Position(1)).unwrap(), 1);
}

/// Releasing takes the write lock only when there is something new to
/// delete, and deletes in transactions of at most `RELEASE_BATCH` rows;
/// a batch that finds the lock taken keeps what was deleted before it.
#[test]
fn release_takes_no_lock_when_idle_and_deletes_in_batches() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    let w = db.writer();
    let rows = 2 * denorm_source::sqlite::RELEASE_BATCH + 10;
    w.execute_batch(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         INSERT INTO users (id) SELECT i FROM n"
    ))
    .unwrap();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!() };
    assert_eq!(capture.release(batch.position).unwrap(), rows as usize);
    assert_eq!(db.log_rows(), 0);
    // Nothing new: no lock is needed, so another writer's lock is no error.
    w.execute_batch("BEGIN IMMEDIATE; INSERT INTO users (id) VALUES (-1)").unwrap();
    assert_eq!(capture.release(batch.position).unwrap(), 0);
    w.execute_batch("COMMIT").unwrap();
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!() };
    assert_eq!(capture.release(batch.position).unwrap(), 1);
}

#[test]
fn wakeup_returns_when_another_connection_commits() {
    let db = Db::new(USERS);
    let capture = db.open(&spec(&[("users", USERS_READ)]));
    let mut wakeup = capture.wakeup().unwrap();
    assert_eq!(wakeup.wait(Duration::from_millis(30)).unwrap(), WakeReason::Timeout);
    let path = db.path.clone();
    let writing = std::thread::spawn(move || {
        common::writer(&path).execute_batch("INSERT INTO users (id) VALUES (1)").unwrap();
    });
    assert_eq!(wakeup.wait(Duration::from_secs(60)).unwrap(), WakeReason::Changed);
    writing.join().unwrap();
    // A commit made before wait() is not lost.
    db.writer().execute_batch("INSERT INTO users (id) VALUES (2)").unwrap();
    assert_eq!(wakeup.wait(Duration::from_secs(60)).unwrap(), WakeReason::Changed);
}

#[test]
fn open_refuses_missing_and_read_only_databases() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let err = SqliteCapture::open(&missing, &Default::default(), &CaptureSpec::default()).unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
    assert!(!missing.exists(), "opening must not create the database");
    let err = uninstall(&missing).unwrap_err();
    assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");

    let db = Db::new(USERS);
    let catalog = db.catalog();
    let mut permissions = std::fs::metadata(&db.path).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&db.path, permissions).unwrap();
    let err = SqliteCapture::open(&db.path, &catalog, &spec(&[("users", USERS_READ)])).unwrap_err();
    assert!(matches!(err, SourceError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("needs write access"), "{err}");
    assert!(!err.is_transient());
}

#[test]
fn open_refuses_specs_that_do_not_fit_the_catalog() {
    let db = Db::new(USERS);
    let err = SqliteCapture::open(&db.path, &db.catalog(), &spec(&[("users", &["nope"])])).unwrap_err();
    assert!(matches!(err, SourceError::UnknownColumn { .. }), "{err:?}");
    let err = SqliteCapture::open(&db.path, &db.catalog(), &spec(&[("nope", &[])])).unwrap_err();
    assert!(matches!(err, SourceError::UnknownTable { .. }), "{err:?}");
    assert!(db.denorm_objects().is_empty(), "nothing installed on error");
}

#[test]
fn open_switches_to_wal() {
    let db = Db::new(USERS);
    db.open(&spec(&[("users", USERS_READ)]));
    let mode: String = db.writer().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn capture_and_wakeup_can_move_to_a_source_thread() {
    fn send<T: Send>() {}
    send::<SqliteCapture>();
    send::<denorm_source::sqlite::Wakeup>();
    send::<SourceError>();
}

/// Regression: the UPDATE trigger's `WHEN OLD.a IS NOT NEW.a` compared the
/// integer -2^63 and the REAL -9.223372036854775808e18 as equal, so turning
/// one into the other in place was never logged and the view kept a row the
/// source no longer had. Same for 1 → 1.0 in a column without affinity.
#[test]
fn an_update_that_only_changes_the_storage_class_is_logged() {
    let db = Db::new("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER);");
    let mut capture = db.open(&spec(&[("t", &["id", "a"])]));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch("INSERT INTO t VALUES (1, -9223372036854775808)").unwrap();
    let row = |a: Datum<'static>| Row::pack([Datum::Int(1), a]);
    assert_eq!(changes(&mut capture), vec![(row(Datum::Int(i64::MIN)), 1)]);
    // INTEGER affinity keeps -2^63 as a REAL: converting it would not round-trip.
    w.execute_batch("UPDATE t SET a = -9223372036854775808.0 WHERE id = 1").unwrap();
    let real_min = Datum::Float(-9_223_372_036_854_775_808.0);
    assert_eq!(changes(&mut capture), vec![(row(Datum::Int(i64::MIN)), -1), (row(real_min), 1)]);

    // A column without affinity keeps 1 and 1.0 apart (and '1', and X'31').
    let db = Db::new("CREATE TABLE u (id INTEGER PRIMARY KEY, b);");
    let mut capture = db.open(&spec(&[("u", &["id", "b"])]));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    let row = |b: Datum<'static>| Row::pack([Datum::Int(1), b]);
    w.execute_batch("INSERT INTO u VALUES (1, 1)").unwrap();
    changes(&mut capture);
    let steps: [(&str, Datum<'static>); 3] =
        [("1.0", Datum::Float(1.0)), ("'1'", Datum::text("1")), ("X'31'", Datum::Blob(b"1".to_vec().into()))];
    let mut before = Datum::Int(1);
    for (sql, after) in steps {
        w.execute_batch(&format!("UPDATE u SET b = {sql}")).unwrap();
        assert_eq!(changes(&mut capture), vec![(row(before), -1), (row(after.clone()), 1)], "SET b = {sql}");
        before = after;
    }
}

/// Regression: a view reading only a generated column got the trigger
/// `AFTER UPDATE OF g`, which SQLite does not fire for `SET a = …` although
/// `g` is computed from `a`: the view kept the old `g` forever.
#[test]
fn updates_of_the_columns_a_generated_column_reads_are_logged() {
    let db = Db::new(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INT, g INT GENERATED ALWAYS AS (a * 2) STORED,
                         v INT GENERATED ALWAYS AS (a + 1) VIRTUAL, other TEXT);",
    );
    for read in [&["g"][..], &["v"][..]] {
        let mut capture = db.open(&spec(&[("t", read)]));
        let mut seen = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
        let w = db.writer();
        w.execute_batch("DELETE FROM t; INSERT INTO t (id, a) VALUES (1, 2)").unwrap();
        drain(&mut capture, &mut seen);
        w.execute_batch("UPDATE t SET a = 5").unwrap();
        drain(&mut capture, &mut seen);
        assert_eq!(seen, non_empty(contents(&db.path, &[("t", read)])), "reading {read:?}");
        // An update of an unrelated column still logs nothing.
        let before = db.log_rows();
        w.execute_batch("UPDATE t SET other = 'x'").unwrap();
        assert_eq!(db.log_rows(), before, "reading {read:?}");
    }
}

/// `read_key` reads one key's rows as a snapshot decodes them, with the
/// change log's last `seq` (the position they are at), without moving the
/// capture's position; non-UTF-8 text is an error, as in a snapshot.
#[test]
fn read_key_reads_a_key_at_the_change_log_head() {
    let db = Db::new(USERS);
    let mut capture = db.open(&spec(&[("users", USERS_READ)]));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch("INSERT INTO users VALUES (1, 'Ada', 'a@x', 1.5), (2, 'O''Neil', NULL, NULL)").unwrap();
    let read = capture.read_key("users", &[("id".into(), Datum::Int(2))]).unwrap();
    assert_eq!((read.position, read.rows), (Position(2), vec![user(2, Some("O'Neil"), None)]));
    assert_eq!(capture.position(), Position(0), "the capture's position does not move");
    let by_name = capture.read_key("USERS", &[("name".into(), Datum::text("O'Neil"))]).unwrap();
    assert_eq!(by_name.rows, vec![user(2, Some("O'Neil"), None)]);
    assert!(capture.read_key("users", &[("id".into(), Datum::Int(9))]).unwrap().rows.is_empty());
    w.execute_batch("UPDATE users SET name = CAST(X'61FF' AS TEXT) WHERE id = 1").unwrap();
    let bad = capture.read_key("users", &[("id".into(), Datum::Int(1))]);
    assert!(matches!(bad, Err(SourceError::InvalidText { .. })), "{bad:?}");
    assert!(matches!(capture.read_key("nope", &[]), Err(SourceError::UnknownTable { .. })));
    let Poll::Changes(batch) = capture.poll().unwrap() else { panic!("the changes are still polled") };
    assert_eq!((batch.position, batch.undecodable.len()), (Position(3), 1));
}
