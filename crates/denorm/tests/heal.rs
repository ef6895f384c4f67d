//! Views heal without a restart (issue 13 item 3), through the real binary
//! over a real SQLite file: a SUM past 2^63 that clears, a column renamed
//! away and back, a table dropped and recreated. While failed, reads answer
//! 503 with a hint that says the view is retried; once healed, the view is
//! exact and `denorm_view_heals_total` counts it.

mod common;

use common::{committed_position, get_text, Denorm, Project};
use serde_json::Value as Json;

/// The view's `/views` entry.
fn view_entry(denorm: &Denorm, name: &str) -> Json {
    let (_, views) = denorm.get("/views");
    views.as_array().unwrap().iter().find(|v| v["name"] == name).cloned().unwrap_or(Json::Null)
}

/// Waits until the view is failed; returns its 503 body.
fn wait_failed(denorm: &Denorm, name: &str) -> Json {
    denorm.wait_for(|views| views.as_array().unwrap().iter().any(|v| v["name"] == name && v["status"] == "failed"));
    let (status, body) = denorm.get(&format!("/views/{name}"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "view_failed", "{body}");
    let hint = body["hint"].as_str().unwrap();
    assert!(hint.contains("retries it by itself") && !hint.contains("last good rows"), "a truthful hint: {hint}");
    body
}

fn heals(denorm: &Denorm, view: &str) -> u64 {
    let (_, metrics) = get_text(&format!("{}/metrics", denorm.base));
    let line = format!("denorm_view_heals_total{{view=\"{view}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&line)).map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn an_overflow_that_clears_heals_the_view_exactly() {
    let project = Project::new(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         CREATE TABLE other (id INTEGER PRIMARY KEY);
         INSERT INTO big VALUES (1, 5), (2, 7);",
        "CREATE MATERIALIZED VIEW big_sum AS SELECT sum(v) AS s, count(*) AS n FROM big;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("big_sum", serde_json::json!([{"s": 12, "n": 2}]));
    conn.execute_batch("INSERT INTO big VALUES (3, 9223372036854775807)").unwrap();
    let failed = wait_failed(&denorm, "big_sum");
    assert!(failed["message"].as_str().unwrap().contains("overflow"), "{failed}");
    let error = view_entry(&denorm, "big_sum")["error"].as_str().unwrap().to_string();
    assert!(error.contains("overflow") && error.contains("healing"), "/views shows it healing: {error}");
    assert_eq!(heals(&denorm, "big_sum"), 0);

    // Still out of range: the view stays failed, the other views go on.
    conn.execute_batch("INSERT INTO big VALUES (4, 1); INSERT INTO other VALUES (1)").unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows("others", serde_json::json!([{"n": 1}]));
    assert_eq!(view_entry(&denorm, "big_sum")["status"], "failed");

    // Back in range: the view heals, exact, without a restart.
    conn.execute_batch("DELETE FROM big WHERE id = 3").unwrap();
    denorm.wait_rows("big_sum", serde_json::json!([{"s": 13, "n": 3}]));
    assert_eq!(view_entry(&denorm, "big_sum")["status"], "ok");
    assert_eq!(heals(&denorm, "big_sum"), 1);
    // And it is maintained from there on.
    conn.execute_batch("UPDATE big SET v = 100 WHERE id = 4").unwrap();
    denorm.wait_rows("big_sum", serde_json::json!([{"s": 112, "n": 3}]));
    denorm.wait_rows("others", serde_json::json!([{"n": 1}]));
    denorm.terminate();
}

#[test]
fn a_column_renamed_away_and_back_heals_the_view() {
    let project = Project::new(
        "CREATE TABLE tags (id INTEGER PRIMARY KEY, tag TEXT NOT NULL);
         CREATE TABLE other (id INTEGER PRIMARY KEY);
         INSERT INTO tags VALUES (1, 'a'), (2, 'a'), (3, 'b');",
        "CREATE MATERIALIZED VIEW per_tag AS SELECT tag, count(*) AS n FROM tags GROUP BY tag;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("per_tag", serde_json::json!([{"tag": "a", "n": 2}, {"tag": "b", "n": 1}]));
    conn.execute_batch("ALTER TABLE tags RENAME COLUMN tag TO label").unwrap();
    let failed = wait_failed(&denorm, "per_tag");
    assert!(failed["message"].as_str().unwrap().contains("tag"), "{failed}");
    let (_, health) = denorm.get("/health");
    let shown = health["failed_views"][0]["error"].as_str().unwrap_or_default().to_string();
    assert!(shown.contains("healing"), "/health shows it healing: {health}");
    // Written while the view cannot read the table (nothing captures it).
    conn.execute_batch("INSERT INTO tags VALUES (4, 'c')").unwrap();
    conn.execute_batch("ALTER TABLE tags RENAME COLUMN label TO tag").unwrap();
    denorm.wait_rows("per_tag", serde_json::json!([{"tag": "a", "n": 2}, {"tag": "b", "n": 1}, {"tag": "c", "n": 1}]));
    assert_eq!(heals(&denorm, "per_tag"), 1);
    conn.execute_batch("DELETE FROM tags WHERE id = 1").unwrap();
    denorm.wait_rows("per_tag", serde_json::json!([{"tag": "a", "n": 1}, {"tag": "b", "n": 1}, {"tag": "c", "n": 1}]));
    denorm.terminate();
}

#[test]
fn a_table_dropped_and_recreated_heals_the_views_reading_it() {
    let project = Project::new(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL);
         CREATE TABLE other (id INTEGER PRIMARY KEY);
         INSERT INTO items VALUES (1, 10), (2, 20);
         INSERT INTO other VALUES (1);",
        "CREATE MATERIALIZED VIEW total AS SELECT sum(price) AS s FROM items;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("total", serde_json::json!([{"s": 30}]));
    conn.execute_batch("DROP TABLE items").unwrap();
    wait_failed(&denorm, "total");
    // The other view is still maintained meanwhile.
    conn.execute_batch("INSERT INTO other VALUES (2)").unwrap();
    denorm.wait_rows("others", serde_json::json!([{"n": 2}]));
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); INSERT INTO items VALUES (7, 70);",
    )
    .unwrap();
    denorm.wait_rows("total", serde_json::json!([{"s": 70}]));
    assert_eq!(heals(&denorm, "total"), 1);
    conn.execute_batch("INSERT INTO items VALUES (8, 1)").unwrap();
    denorm.wait_rows("total", serde_json::json!([{"s": 71}]));
    denorm.wait_rows("others", serde_json::json!([{"n": 2}]));
    denorm.terminate();
}

/// A heal rebuilds the failed view alone (issue 13): the session goes on
/// (no reload of every view), the other views answer every read meanwhile,
/// and the healed view is maintained from its own dataflow — twice, so a
/// view healed before heals again.
#[test]
fn a_heal_rebuilds_only_the_failed_view() {
    let project = Project::new(
        "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
         CREATE TABLE other (id INTEGER PRIMARY KEY);
         INSERT INTO big VALUES (1, 5), (2, 7); INSERT INTO other VALUES (1), (2);",
        "CREATE MATERIALIZED VIEW big_sum AS SELECT sum(v) AS s, count(*) AS n FROM big;
         CREATE MATERIALIZED VIEW big_rows AS SELECT id, v FROM big;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;",
    );
    let mut denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("big_sum", serde_json::json!([{"s": 12, "n": 2}]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (base, stop) = (denorm.base.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for view in ["others", "big_rows"] {
                    let (status, body) = common::get(&format!("{base}/views/{view}"));
                    assert_eq!(status, 200, "{view} answered {body} during a heal of another view");
                    assert!(!body.as_array().unwrap().is_empty(), "{view} served no rows during a heal: {body}");
                    reads += 1;
                }
            }
            reads
        })
    };
    for round in 1..=2u64 {
        conn.execute_batch("INSERT INTO big VALUES (3, 9223372036854775807)").unwrap();
        wait_failed(&denorm, "big_sum");
        conn.execute_batch(&format!("DELETE FROM big WHERE id = 3; INSERT INTO other VALUES ({})", 100 + round))
            .unwrap();
        denorm.wait_rows("big_sum", serde_json::json!([{"s": 12, "n": 2}]));
        assert_eq!(heals(&denorm, "big_sum"), round);
        denorm.wait_for_log("rebuilt alone from the stored input rows");
        denorm.lines.retain(|l| !l.contains("rebuilt alone"));
    }
    conn.execute_batch("UPDATE big SET v = 100 WHERE id = 2").unwrap();
    denorm.wait_rows("big_sum", serde_json::json!([{"s": 105, "n": 2}]));
    denorm.wait_rows("others", serde_json::json!([{"n": 4}]));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    let log = denorm.lines.join("\n");
    assert!(!log.contains("loading the views again"), "the session was not restarted for the heal:\n{log}");
    denorm.terminate();
}
