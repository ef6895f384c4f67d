//! Bad source changes (issue 13 item 4), through the real binary over a real
//! SQLite file: text holding NUL survives unchanged; a change that cannot be
//! applied goes to the dead-letter queue (`GET /dlq`, `denorm dlq`), the
//! view stays exact, and a later fixing change repairs it.

mod common;

use std::time::Duration;

use common::{committed_position, eventually, Denorm, Project};
use serde_json::{json, Value as Json};

/// Waits until GET /views/{name} answers 200 with `expected`.
fn wait_rows(denorm: &Denorm, name: &str, expected: Json) {
    eventually(Duration::from_millis(50), || {
        let (status, rows) = denorm.get(&format!("/views/{name}"));
        if status == 200 && rows == expected {
            Ok(())
        } else {
            Err(format!("/views/{name}: {status} {rows}, want {expected}"))
        }
    });
}

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
    wait_rows(&denorm, "bodies", json!([{"id": 1, "body": "a\u{0}b"}]));
    conn.execute_batch(
        "INSERT INTO notes VALUES (2, 'c' || char(0) || char(0) || 'd'), (3, 'a' || char(0) || 'b');
         INSERT INTO notes VALUES (4, char(0));",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    wait_rows(
        &denorm,
        "bodies",
        json!([
            {"id": 1, "body": "a\u{0}b"},
            {"id": 2, "body": "c\u{0}\u{0}d"},
            {"id": 3, "body": "a\u{0}b"},
            {"id": 4, "body": "\u{0}"},
        ]),
    );
    // The snapshot's row and the logged one are the same value: one group.
    wait_rows(
        &denorm,
        "per_body",
        json!([{"body": "\u{0}", "n": 1}, {"body": "a\u{0}b", "n": 2}, {"body": "c\u{0}\u{0}d", "n": 1}]),
    );
    // An update and a delete retract exactly what was inserted.
    conn.execute_batch("UPDATE notes SET body = 'x' WHERE id = 1; DELETE FROM notes WHERE id IN (2, 4);").unwrap();
    wait_rows(&denorm, "per_body", json!([{"body": "a\u{0}b", "n": 1}, {"body": "x", "n": 1}]));
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "ok", "{health}");
    denorm.terminate();
}
