//! The dead-letter queue on PostgreSQL (issue 13): entries name the row by
//! its key (replica identity / primary key columns, as on SQLite), through
//! the real binary on the server `scripts/test` starts.

mod common;
mod pg_project;

use std::time::{Duration, Instant};

use common::Denorm;
use pg_project::PgProject;
use serde_json::{json, Value as Json};

fn dlq(denorm: &Denorm) -> Json {
    let (status, body) = denorm.get("/dlq");
    assert_eq!(status, 200, "{body}");
    body
}

/// `GET /dlq` once `done` holds for it (at most 30 s).
fn wait_dlq(denorm: &Denorm, done: impl Fn(&Json) -> bool) -> Json {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let body = dlq(denorm);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < until, "the dead-letter queue stays {body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A numeric NaN cannot be held by denorm: the insert is dead-lettered with
/// the row's key and the value's text, the view stays exact without it.
#[test]
fn undecodable_changes_carry_the_key_on_postgres() {
    let project = PgProject::new(
        "dlq_key",
        "CREATE TABLE amounts (id bigint PRIMARY KEY, amount numeric NOT NULL);
         CREATE TABLE pairs (a text, b int, amount numeric, PRIMARY KEY (a, b));
         ALTER TABLE amounts REPLICA IDENTITY FULL;
         ALTER TABLE pairs REPLICA IDENTITY FULL;
         INSERT INTO amounts VALUES (1, 10);",
        "CREATE MATERIALIZED VIEW total AS SELECT count(*) AS n, sum(amount) AS s FROM amounts;
         CREATE MATERIALIZED VIEW pair_total AS SELECT count(*) AS n, sum(amount) AS s FROM pairs;",
    );
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    denorm.wait_rows("total", json!([{"n": 1, "s": 10}]));
    client.batch_execute("INSERT INTO amounts VALUES (2, 'NaN'); INSERT INTO pairs VALUES ('o''k', 3, 'NaN')").unwrap();
    let body = wait_dlq(&denorm, |d| d["count"] == 2);
    let entries: Vec<(String, String, String)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_string();
            (s("table"), s("key"), s("raw_text"))
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("amounts".to_string(), "id=2".to_string(), "NaN".to_string()),
            ("pairs".to_string(), "a='o''k',b=3".to_string(), "NaN".to_string()),
        ],
        "{body}"
    );
    denorm.wait_rows("total", json!([{"n": 1, "s": 10}]));
    denorm.terminate();
}
