//! Bad source changes (issue 13 item 4), through the real binary over a real
//! SQLite file: text holding NUL survives unchanged; a change that cannot be
//! applied goes to the dead-letter queue (`GET /dlq`, `denorm dlq`), the
//! view stays exact, and a later fixing change repairs it.

mod common;

use std::time::Duration;

use common::{committed_position, eventually, Denorm, Project};
use serde_json::{json, Value as Json};

#[test]
fn text_with_nul_is_served_unchanged_from_the_snapshot_and_the_change_log() {
    let project = Project::new(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO notes VALUES (1, 'a' || char(0) || 'b');",
        "CREATE MATERIALIZED VIEW bodies AS SELECT id, body FROM notes;
         CREATE MATERIALIZED VIEW per_body AS SELECT body, count(*) AS n FROM notes GROUP BY body;",
    );
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("bodies", json!([{"id": 1, "body": "a\u{0}b"}]));
    conn.execute_batch(
        "INSERT INTO notes VALUES (2, 'c' || char(0) || char(0) || 'd'), (3, 'a' || char(0) || 'b');
         INSERT INTO notes VALUES (4, char(0));",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows(
        "bodies",
        json!([
            {"id": 1, "body": "a\u{0}b"},
            {"id": 2, "body": "c\u{0}\u{0}d"},
            {"id": 3, "body": "a\u{0}b"},
            {"id": 4, "body": "\u{0}"},
        ]),
    );
    // The snapshot's row and the logged one are the same value: one group.
    denorm.wait_rows(
        "per_body",
        json!([{"body": "\u{0}", "n": 1}, {"body": "a\u{0}b", "n": 2}, {"body": "c\u{0}\u{0}d", "n": 1}]),
    );
    // An update and a delete retract exactly what was inserted.
    conn.execute_batch("UPDATE notes SET body = 'x' WHERE id = 1; DELETE FROM notes WHERE id IN (2, 4);").unwrap();
    denorm.wait_rows("per_body", json!([{"body": "a\u{0}b", "n": 1}, {"body": "x", "n": 1}]));
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "ok", "{health}");
    denorm.terminate();
}

const PEOPLE: &str = "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER NOT NULL);
     INSERT INTO people VALUES (1, 'ann', 10), (2, 'bob', 20);";
const PEOPLE_VIEWS: &str = "CREATE MATERIALIZED VIEW names AS SELECT id, name, score FROM people;
     CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(score) AS s FROM people;";

fn dlq(denorm: &Denorm) -> Json {
    let (status, body) = denorm.get("/dlq");
    assert_eq!(status, 200, "{body}");
    body
}

fn post(url: &str) -> (u16, Json) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut response = agent.post(url).send_empty().unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

fn metric(denorm: &Denorm, name: &str) -> f64 {
    let (_, text) = common::get_text(&format!("{}/metrics", denorm.base));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Text that is not UTF-8 cannot enter the views: the insert (or update)
/// goes to the dead-letter queue with its key and raw bytes, the views stay
/// exact without it, and the change that fixes the row at the source brings
/// it in and removes the entry. The queue survives a restart.
#[test]
fn invalid_utf8_is_dead_lettered_and_the_fix_at_the_source_repairs_the_view() {
    let project = Project::new(PEOPLE, PEOPLE_VIEWS);
    let mut denorm = Denorm::start(&project.config);
    let conn = project.connect();
    assert_eq!(dlq(&denorm)["count"], 0);
    conn.execute_batch(
        "INSERT INTO people VALUES (3, CAST(X'63ff' AS TEXT), 30);
         UPDATE people SET name = CAST(X'62ff' AS TEXT) WHERE id = 2;
         INSERT INTO people VALUES (4, 'dan', 40);",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    // Rows 2 and 3 hold bad text: out of the views, both dead-lettered.
    denorm.wait_rows("names", json!([{"id": 1, "name": "ann", "score": 10}, {"id": 4, "name": "dan", "score": 40}]));
    denorm.wait_rows("total", json!([{"n": 2, "s": 50}]));
    let queue = dlq(&denorm);
    assert_eq!(queue["count"], 2, "{queue}");
    let entries = queue["entries"].as_array().unwrap();
    let keys: Vec<&str> = entries.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["id=3", "id=2"], "{queue}");
    assert_eq!(entries[0]["table"], "people");
    assert!(entries[0]["reason"].as_str().unwrap().contains("UTF-8"), "{queue}");
    assert!(entries[0]["raw"].as_str().unwrap().contains("63ff"), "the raw bytes, as hex: {queue}");
    assert!(entries[0]["position"].as_u64().unwrap() > 0, "{queue}");
    assert_eq!(metric(&denorm, "denorm_dlq_entries"), 2.0);
    let ratio = metric(&denorm, "denorm_update_success_ratio");
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "degraded", "{health}");

    // The queue survives a restart (kept in the state directory).
    assert_eq!(denorm.terminate(), Some(0));
    denorm = Denorm::start(&project.config);
    let queue = dlq(&denorm);
    assert_eq!(queue["count"], 2, "after a restart: {queue}");

    // Fixed at the source: the rows come in, the entries go.
    conn.execute_batch("UPDATE people SET name = 'cat' WHERE id = 3; UPDATE people SET name = 'bo' WHERE id = 2;")
        .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows(
        "names",
        json!([
            {"id": 1, "name": "ann", "score": 10},
            {"id": 2, "name": "bo", "score": 20},
            {"id": 3, "name": "cat", "score": 30},
            {"id": 4, "name": "dan", "score": 40},
        ]),
    );
    denorm.wait_rows("total", json!([{"n": 4, "s": 100}]));
    assert_eq!(dlq(&denorm)["count"], 0, "{}", dlq(&denorm));
    assert_eq!(metric(&denorm, "denorm_dlq_entries"), 0.0);
    denorm.terminate();
}

/// A well-formed delete of a row that never existed, written into the
/// change log by hand, does not reach the aggregate: the stored input rows
/// show it retracts nothing, so it goes to the dead-letter queue. An
/// operator drops the entry over loopback HTTP.
#[test]
fn a_forged_retraction_is_dead_lettered_not_applied() {
    let project = Project::new(PEOPLE, PEOPLE_VIEWS);
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    conn.execute_batch(
        "BEGIN;
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('people', '99,''ghost'',1000', NULL, 0);
         INSERT INTO people VALUES (5, 'eve', 5);
         COMMIT;",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows("total", json!([{"n": 3, "s": 35}]));
    let queue = dlq(&denorm);
    assert_eq!(queue["count"], 1, "{queue}");
    let entry = &queue["entries"][0];
    assert!(entry["reason"].as_str().unwrap().contains("retraction of a row the input does not hold"), "{queue}");
    assert!(entry["key"].as_str().unwrap().contains("ghost"), "{queue}");
    let (_, page) = common::get_text(&format!("{}/ui", denorm.base));
    assert!(page.contains("id=\"dlq\" data-count=\"1\""), "the dashboard shows the queue: {page}");

    // Dropped by an operator (loopback, no [auth]).
    let id = entry["id"].as_u64().unwrap();
    let (status, body) = post(&format!("{}/dlq/{id}/drop", denorm.base));
    assert_eq!(status, 202, "{body}");
    let (status, body) = post(&format!("{}/dlq/{}/drop", denorm.base, id + 100));
    assert_eq!(status, 404, "{body}");
    eventually(Duration::from_millis(20), || match dlq(&denorm)["count"].as_u64() {
        Some(0) => Ok(()),
        other => Err(format!("still {other:?} entries")),
    });
    // The views are exact throughout.
    conn.execute_batch("DELETE FROM people WHERE id = 1").unwrap();
    denorm.wait_rows("total", json!([{"n": 2, "s": 25}]));
    denorm.terminate();
}

/// `denorm dlq list|drop --config FILE`: over HTTP while `denorm run` holds
/// the state directory, from the directory itself once it stopped.
#[test]
fn the_dlq_command_lists_and_drops_running_or_stopped() {
    let project = Project::new(PEOPLE, PEOPLE_VIEWS);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&project.config, config).unwrap();
    let dlq_command = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_denorm"))
            .arg("dlq")
            .arg(args[0])
            .arg("--config")
            .arg(&project.config)
            .args(&args[1..])
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    conn.execute_batch(
        "INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('people', '98,''ghost'',1', NULL, 0);
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('people', '99,''ghoul'',2', NULL, 0);
         INSERT INTO people VALUES (5, 'eve', 5);",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    eventually(Duration::from_millis(20), || match dlq(&denorm)["count"].as_u64() {
        Some(2) => Ok(()),
        other => Err(format!("{other:?} entries")),
    });
    let (code, text) = dlq_command(&["list"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ghost") && text.contains("ghoul") && text.contains("2 entries"), "{text}");
    let (code, text) = dlq_command(&["drop", "0"]);
    assert_eq!((code, text.trim()), (Some(0), "dropped 0"));
    eventually(Duration::from_millis(20), || match dlq(&denorm)["count"].as_u64() {
        Some(1) => Ok(()),
        other => Err(format!("{other:?} entries")),
    });
    assert_eq!(denorm.terminate(), Some(0));

    let (code, text) = dlq_command(&["list"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("ghoul") && !text.contains("ghost") && text.contains("1 entries"), "{text}");
    let (code, text) = dlq_command(&["drop", "7"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("no dead-letter entry [7]"), "{text}");
    let (code, text) = dlq_command(&["drop", "1"]);
    assert_eq!((code, text.trim()), (Some(0), "dropped 1"));
    let denorm = Denorm::start(&project.config);
    assert_eq!(dlq(&denorm)["count"], 0);
    denorm.wait_rows("total", json!([{"n": 3, "s": 35}]));
    denorm.terminate();
}
