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
    let denorm = Denorm::start(&project.config);
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
    denorm.terminate();
}
