//! `denorm dlq retry` on SQLite (issue 13), through the real binary: a
//! dead-lettered row is read again at the engine's position and applied if
//! it now decodes (exactly once), or kept with the new reason.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{committed_position, eventually, view_differs_from_select, Background, Denorm, Project};
use rusqlite::config::DbConfig;
use rusqlite::Connection;
use serde_json::{json, Value as Json};

const PEOPLE: &str = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER NOT NULL);
     INSERT INTO people VALUES (1, 'ann', 10), (2, 'bob', 20);";
const PEOPLE_VIEWS: &str = "CREATE MATERIALIZED VIEW names AS SELECT id, name, score FROM people;
     CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(score) AS s FROM people;";

fn dlq(denorm: &Denorm) -> Json {
    let (status, body) = denorm.get("/dlq");
    assert_eq!(status, 200, "{body}");
    body
}

/// A project whose `[server] listen` is a fixed free port (the command
/// finds the running denorm there).
fn project() -> Project {
    let project = Project::new(PEOPLE, PEOPLE_VIEWS);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&project.config, config).unwrap();
    project
}

fn dlq_command(config: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_denorm"))
        .arg("dlq")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

/// A connection whose writes fire no trigger: a fix made outside the
/// change log (a restore, a repair with triggers off), which only a retry
/// can bring in.
fn without_triggers(project: &Project) -> Connection {
    let conn = project.connect();
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false).unwrap();
    conn
}

/// Still undecodable at the source: the retry keeps the entry with the new
/// reason (`retries` counted). Fixed outside the change log: the retry
/// applies the row, removes the entry, and the input holds exactly that
/// row (a later change of it applies cleanly, nothing dead-lettered).
#[test]
fn a_retry_applies_a_row_fixed_at_the_source_or_keeps_it() {
    let project = project();
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    conn.execute_batch("INSERT INTO people VALUES (3, CAST(X'63ff' AS TEXT), 30)").unwrap();
    denorm.wait_for_position(committed_position(&conn));
    eventually(Duration::from_millis(20), || match dlq(&denorm)["count"].as_u64() {
        Some(1) => Ok(()),
        other => Err(format!("{other:?} entries")),
    });

    let (code, text) = dlq_command(&project.config, &["retry", "0"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("kept 0: retried at change-log seq") && text.contains("UTF-8"), "{text}");
    let entry = &dlq(&denorm)["entries"][0];
    assert_eq!((&entry["retries"], &entry["key"]), (&json!(1), &json!("id=3")), "{entry}");
    denorm.wait_rows("total", json!([{"n": 2, "s": 30}]));

    without_triggers(&project).execute_batch("UPDATE people SET name = 'cat' WHERE id = 3").unwrap();
    let (code, text) = dlq_command(&project.config, &["retry", "--all"]);
    assert_eq!((code, text.trim()), (Some(0), "applied 0"), "{text}");
    assert_eq!(dlq(&denorm)["count"], 0);
    denorm.wait_rows("total", json!([{"n": 3, "s": 60}]));
    let (_, metrics) = common::get_text(&format!("{}/metrics", denorm.base));
    assert!(metrics.contains("denorm_dlq_entries 0"), "{metrics}");

    conn.execute_batch("UPDATE people SET score = 31 WHERE id = 3").unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows("total", json!([{"n": 3, "s": 61}]));
    assert_eq!(dlq(&denorm)["count"], 0, "the later change retracted the applied row: {}", dlq(&denorm));

    let (code, text) = dlq_command(&project.config, &["retry", "9"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no dead-letter entry [9]"), "{text}");
    assert_eq!(denorm.terminate(), Some(0));
    let (code, text) = dlq_command(&project.config, &["retry", "--all"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("denorm is not running"), "{text}");
}

/// A retry racing later changes of the same row never applies a stale
/// image: while a writer keeps updating the row (through the change log),
/// retries are asked again and again; afterwards the views equal their
/// SELECTs and a further change of the row applies cleanly.
#[test]
fn a_retry_racing_changes_of_the_row_applies_no_stale_row() {
    let project = project();
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    for round in 0..5u64 {
        let id = 10 + round;
        conn.execute_batch(&format!("INSERT INTO people VALUES ({id}, CAST(X'63ff' AS TEXT), 1)")).unwrap();
        denorm.wait_for_position(committed_position(&conn));
        let entry = wait_entry(&denorm, &format!("id={id}"));
        without_triggers(&project).execute_batch(&format!("UPDATE people SET name = 'fixed' WHERE id = {id}")).unwrap();
        let writes = Arc::new(AtomicU64::new(0));
        let writer = {
            let (writes, path) = (writes.clone(), project.db.clone());
            let conn = Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            Background::spawn(move || {
                let n = writes.fetch_add(1, Ordering::SeqCst);
                conn.execute(&format!("UPDATE people SET score = ?1 WHERE id = {id}"), [n as i64 + 2]).unwrap();
                std::thread::sleep(Duration::from_millis(2));
                true
            })
        };
        let url = format!("{}/dlq/{entry}/retry", denorm.base);
        eventually(Duration::from_millis(1), || {
            let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
            match agent.post(&url).send_empty().map(|r| r.status().as_u16()) {
                Ok(404) => Ok(()),
                other => Err(format!("the retry of {entry} is still open: {other:?}")),
            }
        });
        writer.finish();
        denorm.wait_for_position(committed_position(&conn));
        for (view, select) in [
            ("names", "SELECT id, name, score FROM people"),
            ("total", "SELECT count(*) AS n, sum(score) AS s FROM people"),
        ] {
            assert_eq!(view_differs_from_select(&denorm, &conn, view, select), None, "round {round}");
        }
        conn.execute_batch(&format!("UPDATE people SET score = 0 WHERE id = {id}")).unwrap();
        denorm.wait_for_position(committed_position(&conn));
        assert_eq!(
            view_differs_from_select(&denorm, &conn, "total", "SELECT count(*) AS n, sum(score) AS s FROM people"),
            None
        );
    }
    denorm.terminate();
}

/// The id of the entry with `key`, once listed.
fn wait_entry(denorm: &Denorm, key: &str) -> u64 {
    let mut id = None;
    eventually(Duration::from_millis(20), || {
        let queue = dlq(denorm);
        id = queue["entries"].as_array().unwrap().iter().find(|e| e["key"] == key).and_then(|e| e["id"].as_u64());
        id.map(|_| ()).ok_or_else(|| format!("no entry for {key}: {queue}"))
    });
    id.unwrap()
}
