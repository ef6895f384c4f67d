//! Views heal on PostgreSQL too (issue 13 item 3): a column renamed away
//! and back, and a table dropped and recreated, through the real binary on
//! the server `scripts/test` starts.

mod common;
mod pg_project;

use common::Denorm;
use pg_project::PgProject;
use serde_json::json;

fn wait_failed(denorm: &Denorm, name: &str) {
    denorm.wait_for(|views| views.as_array().unwrap().iter().any(|v| v["name"] == name && v["status"] == "failed"));
    let (status, body) = denorm.get(&format!("/views/{name}"));
    assert_eq!((status, body["code"].as_str()), (503, Some("view_failed")), "{body}");
}

#[test]
fn renamed_and_recreated_tables_heal_on_postgres() {
    let project = PgProject::new(
        "heal",
        "CREATE TABLE tags (id bigint PRIMARY KEY, tag text NOT NULL);
         CREATE TABLE other (id bigint PRIMARY KEY);
         ALTER TABLE tags REPLICA IDENTITY FULL;
         ALTER TABLE other REPLICA IDENTITY FULL;
         INSERT INTO tags VALUES (1, 'a'), (2, 'a'), (3, 'b');",
        "CREATE MATERIALIZED VIEW per_tag AS SELECT tag, count(*) AS n FROM tags GROUP BY tag;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let mut client = project.client();
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_rows("per_tag", json!([{"tag": "a", "n": 2}, {"tag": "b", "n": 1}]));

    client.batch_execute("ALTER TABLE tags RENAME COLUMN tag TO label").unwrap();
    // A change of the table makes the stream report its new shape.
    client.batch_execute("INSERT INTO tags VALUES (4, 'c')").unwrap();
    wait_failed(&denorm, "per_tag");
    client.batch_execute("ALTER TABLE tags RENAME COLUMN label TO tag").unwrap();
    denorm.wait_rows("per_tag", json!([{"tag": "a", "n": 2}, {"tag": "b", "n": 1}, {"tag": "c", "n": 1}]));

    client.batch_execute("DROP TABLE tags").unwrap();
    client.batch_execute("INSERT INTO other VALUES (1)").unwrap();
    wait_failed(&denorm, "per_tag");
    denorm.wait_rows("others", json!([{"n": 1}]));
    client
        .batch_execute(
            "CREATE TABLE tags (id bigint PRIMARY KEY, tag text NOT NULL);
             ALTER TABLE tags REPLICA IDENTITY FULL;
             INSERT INTO tags VALUES (7, 'z');",
        )
        .unwrap();
    denorm.wait_rows("per_tag", json!([{"tag": "z", "n": 1}]));
    client.batch_execute("INSERT INTO tags VALUES (8, 'z')").unwrap();
    denorm.wait_rows("per_tag", json!([{"tag": "z", "n": 2}]));
    // Each heal read only tags (a temporary slot's snapshot), never a
    // full snapshot after the first start.
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    assert_eq!(denorm.lines.iter().filter(|l| l.contains("snapshot read")).count(), 1, "{:#?}", denorm.lines);
    assert!(denorm.lines.iter().any(|l| l.contains("read=[\"tags\"]")), "{:#?}", denorm.lines);
    denorm.terminate();
}

/// On PostgreSQL too, a view failed by a computation (a division by zero
/// the dialect refuses) is rebuilt alone once its input computes again:
/// the other view keeps serving, the session goes on.
#[test]
fn a_computation_heal_rebuilds_only_that_view_on_postgres() {
    let project = PgProject::new(
        "heal_alone",
        "CREATE TABLE t (id bigint PRIMARY KEY, v bigint NOT NULL);
         CREATE TABLE other (id bigint PRIMARY KEY);
         ALTER TABLE t REPLICA IDENTITY FULL;
         ALTER TABLE other REPLICA IDENTITY FULL;
         INSERT INTO t VALUES (1, 2); INSERT INTO other VALUES (1);",
        "CREATE MATERIALIZED VIEW q AS SELECT id, 10 / v AS r FROM t;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let mut client = project.client();
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_rows("q", json!([{"id": 1, "r": 5}]));
    client.batch_execute("INSERT INTO t VALUES (2, 0)").unwrap();
    wait_failed(&denorm, "q");
    client.batch_execute("INSERT INTO other VALUES (2)").unwrap();
    denorm.wait_rows("others", json!([{"n": 2}]));
    client.batch_execute("UPDATE t SET v = 5 WHERE id = 2").unwrap();
    denorm.wait_rows("q", json!([{"id": 1, "r": 5}, {"id": 2, "r": 2}]));
    denorm.wait_for_log("rebuilt alone from the stored input rows");
    client.batch_execute("UPDATE t SET v = 1 WHERE id = 1; INSERT INTO other VALUES (3)").unwrap();
    denorm.wait_rows("q", json!([{"id": 1, "r": 10}, {"id": 2, "r": 2}]));
    denorm.wait_rows("others", json!([{"n": 3}]));
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    let log = denorm.lines.join("\n");
    assert!(!log.contains("loading the views again"), "the session went on:\n{log}");
    denorm.terminate();
}
