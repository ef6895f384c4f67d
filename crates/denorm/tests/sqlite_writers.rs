//! Other writers of the SQLite source while denorm runs. denorm writes to
//! the database too (it deletes applied change-log rows), so a writer
//! without a busy timeout (a plain `sqlite3` shell, or a connection with
//! `busy_timeout = 0`) can meet `database is locked` when it collides with
//! one of those short transactions. This test measures how often, against
//! a baseline without denorm, and checks that a writer that sets `PRAGMA
//! busy_timeout` (as README tells application writers to) never fails and
//! that every committed row reaches the views.
//!
//! Run with `--nocapture` to see the figures:
//! `cargo test -p denorm --test sqlite_writers -- --nocapture`.

mod common;

use std::time::Duration;

use common::{committed_position, Denorm, Project};
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, amount INTEGER);";
const VIEWS: &str = "
CREATE MATERIALIZED VIEW totals AS SELECT kind, COUNT(*) AS n, SUM(amount) AS total FROM events GROUP BY kind;
";
/// Single-row transactions per writer run (the figure was 4 of 300).
const INSERTS: i64 = 400;

/// `INSERTS` autocommit single-row inserts from a fresh connection with
/// `busy_timeout` (0: fail at once when the database is locked, like a
/// plain `sqlite3` shell); the number that failed with `database is
/// locked`. Any other error fails the test.
fn insert_many(project: &Project, first_id: i64, busy_timeout: Duration) -> usize {
    let conn = Connection::open(&project.db).unwrap();
    conn.busy_timeout(busy_timeout).unwrap();
    let mut failed = 0;
    for id in first_id..first_id + INSERTS {
        match conn.execute("INSERT INTO events VALUES (?1, ?2, ?3)", (id, ["a", "b", "c"][id as usize % 3], id % 10)) {
            Ok(_) => {}
            Err(e) if matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy)) => failed += 1,
            Err(e) => panic!("insert {id}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    failed
}

#[test]
fn other_writers_and_the_busy_timeout() {
    let project = Project::new(SCHEMA, VIEWS);
    let baseline = insert_many(&project, 0, Duration::ZERO);
    let denorm = Denorm::start(&project.config);
    let without_timeout = insert_many(&project, 10_000, Duration::ZERO);
    let with_timeout = insert_many(&project, 20_000, Duration::from_secs(5));
    eprintln!(
        "sqlite_writers: {INSERTS} single-row inserts each, failed with `database is locked`: \
         without denorm {baseline}; with denorm, busy_timeout 0: {without_timeout}; \
         with denorm, busy_timeout 5000: {with_timeout}"
    );
    assert_eq!(baseline, 0, "nothing else writes the database");
    assert_eq!(with_timeout, 0, "a writer with a busy timeout never fails");
    // Every committed row reached the view.
    let conn = project.connect();
    denorm.wait_for_position(committed_position(&conn));
    let committed: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap();
    assert_eq!(committed, 3 * INSERTS - without_timeout as i64);
    let (_, totals) = denorm.get("/views/totals");
    let served: i64 = totals.as_array().unwrap().iter().map(|r| r["n"].as_i64().unwrap()).sum();
    assert_eq!(served, committed);
    // denorm's own writes kept the change log short.
    let logged: i64 = conn.query_row("SELECT count(*) FROM _denorm_changes", [], |r| r.get(0)).unwrap();
    eprintln!("sqlite_writers: change-log rows left: {logged}");
    assert_eq!(denorm.terminate(), Some(0));
}
