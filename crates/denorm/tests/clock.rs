//! `now()` and friends in a view refreshed on a schedule, through the real
//! binary (issue 11): with `refresh = '1s'`, a row leaves
//! `created_at > datetime('now', '-1 hour')` once it is an hour old,
//! without any change in the source, and the view equals SQLite's own
//! query; across a graceful restart (a checkpoint loaded) the clock goes
//! on from the new current time. `denorm check` says the view reads the
//! clock. Rows sit far from the edge but for the one that ages out, so the
//! comparison with SQLite does not depend on when either reads the clock;
//! waits poll the view, never a duration.

mod common;

use common::{view_differs_from_select, wait_for_ids, Denorm, Project};
use rusqlite::Connection;
use serde_json::json;

const SCHEMA: &str = "CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, created_at TEXT NOT NULL);";

const SELECT: &str = "SELECT id FROM events WHERE created_at > datetime('now', '-1 hour')";

fn views() -> String {
    format!(
        "CREATE MATERIALIZED VIEW recent WITH (refresh = '1s') AS {SELECT};
         CREATE MATERIALIZED VIEW by_kind WITH (refresh = '1s') AS
         SELECT kind, COUNT(*) AS n FROM events WHERE created_at > datetime('now', '-1 hour') GROUP BY kind;
         CREATE MATERIALIZED VIEW everything AS SELECT id FROM events;"
    )
}

/// Inserts an event created `offset` (an SQLite modifier, from now).
fn insert(db: &Connection, id: i64, kind: &str, offset: &str) {
    db.execute(
        "INSERT INTO events (id, kind, created_at) VALUES (?1, ?2, datetime('now', ?3))",
        rusqlite::params![id, kind, offset],
    )
    .unwrap();
}

fn same_as_sqlite(denorm: &Denorm, db: &Connection) {
    for (view, select) in [
        ("recent", SELECT.to_string()),
        (
            "by_kind",
            "SELECT kind, COUNT(*) AS n FROM events WHERE created_at > datetime('now', '-1 hour') GROUP BY kind"
                .to_string(),
        ),
    ] {
        if let Some(difference) = view_differs_from_select(denorm, db, view, &select) {
            panic!("{difference}");
        }
    }
}

#[test]
fn a_row_ages_out_without_a_source_change_and_across_a_restart() {
    let project = Project::new(SCHEMA, &views());
    let db = project.connect();
    insert(&db, 1, "a", "-10 minutes");
    insert(&db, 2, "b", "-2 hours");
    insert(&db, 3, "a", "-50 minutes");

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["check", "--config"])
        .arg(&project.config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}{}", String::from_utf8_lossy(&check.stderr));
    let recent = &stdout[stdout.find("view recent").unwrap()..stdout.find("view by_kind").unwrap()];
    assert!(recent.contains("  clock: reads the current time, taken once per refresh"), "{recent}");
    let everything = &stdout[stdout.find("view everything").unwrap()..];
    assert!(!everything.contains("clock:"), "{everything}");

    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("snapshot written to the state directory");
    wait_for_ids(&denorm, "recent", &[1, 3]);
    same_as_sqlite(&denorm, &db);

    // An event that turns an hour old 15 s from now: in the view, then out
    // of it with no write in between.
    insert(&db, 4, "b", "-3585 seconds");
    wait_for_ids(&denorm, "recent", &[1, 3, 4]);
    denorm.wait_rows("everything", json!([{"id": 1}, {"id": 2}, {"id": 3}, {"id": 4}]));
    wait_for_ids(&denorm, "recent", &[1, 3]);
    same_as_sqlite(&denorm, &db);

    // Another one, then a graceful restart (the checkpoint holds the clock
    // of the last refresh): after it the clock moves on and the row ages
    // out, still without a write.
    insert(&db, 5, "a", "-3585 seconds");
    wait_for_ids(&denorm, "recent", &[1, 3, 5]);
    let log = denorm.stop_cleanly();
    assert!(log.contains("checkpoint written to the state directory"), "{log}");
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("resumed from the state directory");
    assert!(line.contains("from_checkpoint=true"), "{}", denorm.lines.join("\n"));
    wait_for_ids(&denorm, "recent", &[1, 3]);
    same_as_sqlite(&denorm, &db);
    denorm.stop_cleanly();
}
