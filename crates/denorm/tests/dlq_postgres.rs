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

/// `project`'s config with a fixed free `[server] listen` port (the `denorm
/// dlq` command finds the running denorm there).
fn fixed_port(project: &PgProject) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    std::fs::write(&project.config, config).unwrap();
}

const AMOUNTS: &str = "CREATE TABLE amounts (id bigint PRIMARY KEY, amount numeric NOT NULL);
     ALTER TABLE amounts REPLICA IDENTITY FULL;
     INSERT INTO amounts VALUES (1, 10);";
const AMOUNT_VIEWS: &[(&str, &str)] =
    &[("rows", "SELECT id, amount FROM amounts"), ("total", "SELECT count(*) AS n, sum(amount) AS s FROM amounts")];

fn amount_views() -> String {
    AMOUNT_VIEWS.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

/// On PostgreSQL a row whose value cannot be held (NaN) stays out even when
/// fixed, because the fixing update's old image is the bad row: a retry
/// reads the row at the engine's position and applies it, removing every
/// entry of its key; a later change of the row applies cleanly.
#[test]
fn a_retry_applies_the_fixed_row_on_postgres() {
    let project = PgProject::new("dlq_retry", AMOUNTS, &amount_views());
    fixed_port(&project);
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    client.batch_execute("INSERT INTO amounts VALUES (2, 'NaN')").unwrap();
    wait_dlq(&denorm, |d| d["count"] == 1);
    let output = project.denorm(&["dlq", "retry", "0"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && text.starts_with("kept 0: retried at LSN") && text.contains("NaN"), "{text}");

    client.batch_execute("UPDATE amounts SET amount = 5 WHERE id = 2").unwrap();
    let body = wait_dlq(&denorm, |d| d["count"] == 2);
    assert!(body["entries"].as_array().unwrap().iter().all(|e| e["key"] == "id=2"), "{body}");
    denorm.wait_rows("total", json!([{"n": 1, "s": 10}]));
    let output = project.denorm(&["dlq", "retry", "--all"]);
    let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("applied ")).count(), 2, "{text}");
    assert_eq!(dlq(&denorm)["count"], 0);
    pg_project::assert_views_equal(&denorm, &mut client, AMOUNT_VIEWS, &[]);
    client.batch_execute("UPDATE amounts SET amount = 6 WHERE id = 2").unwrap();
    denorm.wait_rows("total", json!([{"n": 2, "s": 16}]));
    assert_eq!(dlq(&denorm)["count"], 0, "{}", dlq(&denorm));
    denorm.terminate();
}

/// A retry racing a writer that keeps changing the same row (in bursts)
/// never applies a stale image (the read is at an LSN the engine reaches
/// later; a change of the key in between makes it read again): afterwards
/// every view equals PostgreSQL's answer.
#[test]
fn a_retry_racing_changes_of_the_row_applies_no_stale_row_on_postgres() {
    let project = PgProject::new("dlq_retry_race", AMOUNTS, &amount_views());
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    for round in 0..3i64 {
        let id = 10 + round;
        client.batch_execute(&format!("INSERT INTO amounts VALUES ({id}, 'NaN')")).unwrap();
        let body =
            wait_dlq(&denorm, |d| d["entries"].as_array().unwrap().iter().any(|e| e["key"] == format!("id={id}")));
        let entry = body["entries"].as_array().unwrap().iter().find(|e| e["key"] == format!("id={id}")).unwrap()["id"]
            .as_u64()
            .unwrap();
        let mut writer_client = project.client();
        let mut n = 0i64;
        let writer = common::Background::spawn(move || {
            n += 1;
            writer_client.execute("UPDATE amounts SET amount = $1::int8 WHERE id = $2", &[&n, &id]).unwrap();
            // Bursts: a retry must find the row quiet for as long as the
            // stream takes to pass its read (a few ms); within a burst the
            // race is on.
            std::thread::sleep(Duration::from_millis(if n % 8 == 0 { 40 } else { 2 }));
            true
        });
        let url = format!("{}/dlq/{entry}/retry", denorm.base);
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        let until = Instant::now() + Duration::from_secs(60);
        while agent.post(&url).send_empty().map(|r| r.status().as_u16()).ok() != Some(404) {
            assert!(Instant::now() < until, "the retry of entry {entry} never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.finish();
        pg_project::assert_views_equal(&denorm, &mut client, AMOUNT_VIEWS, &[]);
    }
    denorm.terminate();
}
