//! Scheduled refresh and staleness budgets through the real binary:
//! `refresh = '1h'` serves its last refreshed state while on-change views
//! advance, `refresh = '1s'` catches up on its own, and `on_stale =
//! 'fallback'` answers key lookups from SQLite while the view is beyond its
//! `max_staleness` budget.

mod common;

use std::time::{Duration, Instant};

use common::{committed_position, Denorm, Project, PATIENCE};

const SCHEMA: &str = "
CREATE TABLE sales (id INTEGER PRIMARY KEY, day TEXT NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, rating INTEGER NOT NULL);
INSERT INTO sales VALUES (1, 'mon', 10), (2, 'tue', 5);
INSERT INTO products VALUES (1, 'mug'), (2, 'pen');
INSERT INTO reviews VALUES (1, 1, 5);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW live_sales AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;
CREATE MATERIALIZED VIEW hourly_sales WITH (refresh = '1h') AS
  SELECT day, SUM(amount) AS total FROM sales GROUP BY day;
CREATE MATERIALIZED VIEW quick_sales WITH (refresh = '1s') AS
  SELECT day, COUNT(*) AS n FROM sales GROUP BY day;
CREATE MATERIALIZED VIEW product_stats WITH (key = 'product_id', max_staleness = '10s', on_stale = 'fallback') AS
  SELECT p.id AS product_id, p.name, COUNT(r.id) AS reviews, AVG(r.rating) AS avg_rating
  FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name;
";

fn view<'a>(views: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    views.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap()
}

#[test]
fn scheduled_views_serve_their_last_refresh_until_due() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    let denorm = Denorm::start(&project.config);
    let (_, views) = denorm.get("/views");
    let snapshot_position = view(&views, "hourly_sales")["position"].as_i64().unwrap();
    assert_eq!(view(&views, "hourly_sales")["refresh"], 3600.0, "{views}");
    assert_eq!(view(&views, "live_sales")["refresh"], "on_change", "{views}");

    db.execute_batch("INSERT INTO sales VALUES (3, 'mon', 7); UPDATE sales SET amount = 6 WHERE id = 2;").unwrap();
    let position = committed_position(&db);
    let views = denorm.wait_for(|v| view(v, "live_sales")["position"].as_i64() >= Some(position));
    // The hourly view still shows the snapshot; the live one the writes.
    assert_eq!(view(&views, "hourly_sales")["position"].as_i64(), Some(snapshot_position), "{views}");
    let (_, hourly) = denorm.get("/views/hourly_sales?day=eq.mon");
    assert_eq!(hourly, serde_json::json!([{"day": "mon", "total": 10}]));
    let (_, live) = denorm.get("/views/live_sales?order=day");
    assert_eq!(live, serde_json::json!([{"day": "mon", "total": 17}, {"day": "tue", "total": 6}]));

    // The one-second view catches up by itself, with everything gathered.
    let views = denorm.wait_for(|v| view(v, "quick_sales")["position"].as_i64() >= Some(position));
    assert!(view(&views, "quick_sales")["refreshed_at"].as_f64().is_some(), "{views}");
    let (_, quick) = denorm.get("/views/quick_sales?order=day");
    assert_eq!(quick, serde_json::json!([{"day": "mon", "n": 2}, {"day": "tue", "n": 1}]));

    // Read-your-writes on a scheduled view waits for its own refresh.
    let reply = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("{}/views/hourly_sales", denorm.base))
        .header("Denorm-Min-Position", position.to_string())
        .header("Denorm-Timeout", "50ms")
        .call()
        .unwrap();
    assert_eq!(reply.status().as_u16(), 504);
}

/// Freshness is measured from the commit time the trigger stamps on each
/// change-log row. Back-dating one row (in the writing transaction, so the
/// view sees it as one batch) makes the view deterministically beyond its
/// 10 s budget without waiting 10 s.
#[test]
fn fallback_answers_key_lookups_from_the_source_while_beyond_budget() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    let denorm = Denorm::start(&project.config);
    let lookup = |id: i64| {
        let reply = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .get(format!("{}/views/product_stats?product_id=eq.{id}", denorm.base))
            .call()
            .unwrap();
        let served_by = reply.headers().get("denorm-served-by").map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = serde_json::from_str(&reply.into_body().read_to_string().unwrap()).unwrap();
        (served_by, body)
    };
    assert_eq!(lookup(1).0.as_deref(), Some("view"));

    db.execute_batch(
        "BEGIN;
         INSERT INTO reviews VALUES (2, 1, 3);
         UPDATE _denorm_changes SET committed_at = 1.0 WHERE seq = (SELECT max(seq) FROM _denorm_changes);
         COMMIT;",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&db));
    let (_, views) = denorm.get("/views");
    assert_eq!(view(&views, "product_stats")["within_sla"], false, "{views}");
    let (served_by, rows) = lookup(1);
    assert_eq!(served_by.as_deref(), Some("source"));
    assert_eq!(rows, serde_json::json!([{"product_id": 1, "name": "mug", "reviews": 2, "avg_rating": 4.0}]));
    // A scan of a stale view is served from the view, marked stale.
    let reply = ureq::get(format!("{}/views/product_stats", denorm.base)).call().unwrap();
    assert_eq!(reply.headers().get("denorm-stale").map(|v| v.to_str().unwrap()), Some("true"));
    let (_, metrics) = common::get_text(&format!("{}/metrics", denorm.base));
    assert!(metrics.contains("denorm_fallback_reads_total{view=\"product_stats\"} 1"), "{metrics}");

    // A fresh change brings the view back within budget: served by the view.
    db.execute_batch("INSERT INTO reviews VALUES (3, 2, 4);").unwrap();
    denorm.wait_for_position(committed_position(&db));
    let deadline = Instant::now() + PATIENCE;
    while lookup(2).0.as_deref() != Some("view") {
        assert!(Instant::now() < deadline, "the view never came back within budget");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lookup(2).1, serde_json::json!([{"product_id": 2, "name": "pen", "reviews": 1, "avg_rating": 4.0}]));
}
