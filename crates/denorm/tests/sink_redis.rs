//! The Redis sink through the real binary: `denorm run` with `[[sink]]
//! kind = "redis"` entries writing to a real `redis-server`, read back with
//! `redis-cli`.
//!
//! - random source transactions → the hashes (and the JSON strings, with
//!   their TTL) equal the views over HTTP and the source's own query;
//! - a feed page read with one `ZREVRANGE` equals the view's page;
//! - kill -9 of denorm while it writes: nothing lost, nothing applied twice;
//! - a redis-server killed and restarted empty: errors counted, the sink
//!   catches up;
//! - keys edited by hand are found (`denorm_sink_drift_rows_total`) and
//!   repaired by the periodic reconcile.
//!
//! Needs `DENORM_TEST_REDIS_URL` (scripts/redis start), `redis-cli` and
//! `redis-server` (Debian's redis-server package, which scripts/test installs).

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{committed_position, eventually, kill_three_times_under_a_writer, metric, Denorm, Project, SplitMix};
use rusqlite::Connection;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, rating INTEGER NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, body TEXT, created_at TEXT NOT NULL);
CREATE TABLE follows (follower_id INTEGER NOT NULL, followee_id INTEGER NOT NULL, PRIMARY KEY (follower_id, followee_id));
INSERT INTO products VALUES (1, 'lamp', 'home'), (2, 'desk', NULL), (3, 'pen', 'office');
INSERT INTO reviews VALUES (1, 1, 5), (2, 1, 3), (3, 2, 4);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW product_stats WITH (key = 'product_id') AS
  SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, SUM(r.rating) AS rating_sum
  FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name;
CREATE MATERIALIZED VIEW categories AS SELECT category, COUNT(*) AS products FROM products GROUP BY category;
CREATE MATERIALIZED VIEW home_feed WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC',
  fanout_limit = 1000) AS
  SELECT f.follower_id AS owner_id, p.id AS post_id, p.author_id, p.body, p.created_at
  FROM follows f JOIN posts p ON p.author_id = f.followee_id;
";

/// Per keyed view: its columns (key first) and the source's query of them.
const CHECKS: &[(&str, &[&str], &str)] = &[
    (
        "product_stats",
        &["product_id", "name", "review_count", "rating_sum"],
        "SELECT p.id, p.name, COUNT(r.id), SUM(r.rating) FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name",
    ),
    ("categories", &["category", "products"], "SELECT category, COUNT(*) FROM products GROUP BY category"),
];

fn redis_url() -> String {
    std::env::var("DENORM_TEST_REDIS_URL").expect(
        "DENORM_TEST_REDIS_URL is not set: run `export \"$(scripts/redis start | tail -n1)\"` (scripts/test does this)",
    )
}

/// `redis-cli -u url args…`, its output lines (raw: not a terminal).
fn redis_cli(url: &str, args: &[&str]) -> Result<Vec<String>, String> {
    let output =
        Command::new("redis-cli").arg("-u").arg(url).args(args).output().map_err(|e| format!("redis-cli: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || stdout.starts_with("ERR") || stdout.starts_with("Could not connect") {
        return Err(format!("redis-cli {args:?}: {stdout}{}", String::from_utf8_lossy(&output.stderr)));
    }
    Ok(stdout.lines().map(str::to_owned).collect())
}

/// Every key matching `pattern`, sorted.
fn keys(url: &str, pattern: &str) -> Result<Vec<String>, String> {
    let mut keys = redis_cli(url, &["--scan", "--pattern", pattern])?;
    keys.sort();
    Ok(keys)
}

/// `key|col|col…` lines of a hash-layout view: its key name and each
/// column's field (absent: NULL, empty).
fn hash_rows(url: &str, prefix: &str, view: &str, columns: &[&str]) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    for key in keys(url, &format!("{prefix}{view}:*"))? {
        let lines = redis_cli(url, &["HGETALL", &key])?;
        let fields: BTreeMap<&str, &str> =
            lines.chunks(2).map(|p| (p[0].as_str(), p.get(1).map_or("", |v| v.as_str()))).collect();
        if let Some(extra) = fields.keys().find(|f| !columns.contains(f)) {
            return Err(format!("{key} has a field of no column: {extra}"));
        }
        let values: Vec<&str> = columns.iter().map(|c| fields.get(c).copied().unwrap_or("")).collect();
        rows.push(format!("{}|{}", key.trim_start_matches(&format!("{prefix}{view}:")), values.join("|")));
    }
    rows.sort();
    Ok(rows)
}

/// The same lines for a JSON-layout view; every key must have a TTL.
fn json_rows(url: &str, prefix: &str, view: &str, columns: &[&str]) -> Result<Vec<String>, String> {
    let mut rows = Vec::new();
    for key in keys(url, &format!("{prefix}{view}:*"))? {
        let text = redis_cli(url, &["GET", &key])?.join("\n");
        let json: Json = serde_json::from_str(&text).map_err(|e| format!("{key}: {e}: {text}"))?;
        let values: Vec<String> = columns.iter().map(|c| cell(&json[c])).collect();
        let ttl: i64 = redis_cli(url, &["PTTL", &key])?.join("").trim().parse().map_err(|e| format!("{e}"))?;
        if ttl <= 0 {
            return Err(format!("{key} has no TTL ({ttl})"));
        }
        rows.push(format!("{}|{}", key.trim_start_matches(&format!("{prefix}{view}:")), values.join("|")));
    }
    rows.sort();
    Ok(rows)
}

fn cell(json: &Json) -> String {
    match json {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the keys must hold: the source's rows with the key name first
/// (a NULL key is `\N`).
fn source_rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(sql).unwrap();
    let n = statement.column_count();
    let mut rows: Vec<String> = statement
        .query_map([], |r| {
            let values: Vec<String> = (0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect();
            let key = if values[0].is_empty() { "\\N".to_owned() } else { values[0].clone() };
            Ok(format!("{key}|{}", values.join("|")))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.sort();
    rows
}

/// The view over HTTP in the same lines.
fn http_rows(denorm: &Denorm, view: &str, columns: &[&str]) -> Vec<String> {
    let (_, rows) = denorm.get(&format!("/views/{view}"));
    let mut lines: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let values: Vec<String> = columns.iter().map(|c| cell(&row[c])).collect();
            let key = if values[0].is_empty() { "\\N".to_owned() } else { values[0].clone() };
            format!("{key}|{}", values.join("|"))
        })
        .collect();
    lines.sort();
    lines
}

/// A sink of `format` under `prefix` writing both keyed views (and the
/// feed), with `extra` settings.
fn sink(url: &str, name: &str, prefix: &str, format: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nname = \"{name}\"\nkind = \"redis\"\nurl = \"{url}\"\nprefix = \"{prefix}\"\nformat = \"{format}\"\n\
         views = [\"product_stats\", \"categories\", \"home_feed\"]\n{extra}"
    )
}

fn project(sinks: &str) -> Project {
    let project = Project::new(SCHEMA, VIEWS);
    let mut config = std::fs::read_to_string(&project.config).unwrap();
    config.push_str(sinks);
    std::fs::write(&project.config, config).unwrap();
    project
}

/// A prefix of this test's own on the shared server.
fn prefix(test: &str) -> String {
    format!("t{}_{test}:", std::process::id())
}

/// Waits until every sink (`(url, prefix, json)`) equals the view over HTTP
/// and the source's query, and every partition's first page in Redis
/// equals the feed's page over HTTP.
fn assert_converged(denorm: &Denorm, conn: &Connection, sinks: &[(String, String, bool)]) {
    denorm.wait_for_position(committed_position(conn));
    eventually(Duration::from_millis(100), || -> Result<(), String> {
        for (view, columns, source_sql) in CHECKS {
            let expected = source_rows(conn, source_sql);
            let served = http_rows(denorm, view, columns);
            if served != expected {
                return Err(format!("view {view} over HTTP {served:?} != source {expected:?}"));
            }
            for (url, prefix, json) in sinks {
                let rows =
                    if *json { json_rows(url, prefix, view, columns)? } else { hash_rows(url, prefix, view, columns)? };
                if rows != expected {
                    return Err(format!("sink {prefix} view {view}: {rows:?} != source {expected:?}"));
                }
            }
        }
        for (url, prefix, _) in sinks {
            check_feed(denorm, conn, url, prefix)?;
        }
        Ok(())
    });
}

/// Every partition's page of 5 (and the whole partition) by ZREVRANGE
/// equals the feed over HTTP; no other partition exists in Redis.
fn check_feed(denorm: &Denorm, conn: &Connection, url: &str, prefix: &str) -> Result<(), String> {
    let owners: Vec<i64> = conn
        .prepare("SELECT DISTINCT f.follower_id FROM follows f JOIN posts p ON p.author_id = f.followee_id ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let expected_keys: Vec<String> = {
        let mut k: Vec<String> = owners.iter().map(|o| format!("{prefix}home_feed:{o}")).collect();
        k.sort();
        k
    };
    let found = keys(url, &format!("{prefix}home_feed:*"))?;
    if found != expected_keys {
        return Err(format!("feed partitions {found:?} != {expected_keys:?}"));
    }
    for owner in owners {
        for limit in [5, 1000] {
            let (_, page) = denorm.get(&format!("/views/home_feed?owner_id=eq.{owner}&limit={limit}"));
            let served: Vec<i64> = page.as_array().unwrap().iter().map(|r| r["post_id"].as_i64().unwrap()).collect();
            let members =
                redis_cli(url, &["ZREVRANGE", &format!("{prefix}home_feed:{owner}"), "0", &(limit - 1).to_string()])?;
            let mut in_redis = Vec::new();
            for member in &members {
                let (_, json) = member.split_once('|').ok_or_else(|| format!("member without '|': {member}"))?;
                let row: Json = serde_json::from_str(json).map_err(|e| format!("{e}: {json}"))?;
                if row != page[in_redis.len()] {
                    return Err(format!("owner {owner}: member {row} != served {}", page[in_redis.len()]));
                }
                in_redis.push(row["post_id"].as_i64().unwrap_or(-1));
            }
            if in_redis != served {
                return Err(format!("owner {owner} page of {limit}: ZREVRANGE {in_redis:?} != HTTP {served:?}"));
            }
        }
    }
    Ok(())
}

/// One random transaction over products, reviews, posts and follows.
fn random_transaction(conn: &mut Connection, rng: &mut SplitMix) {
    let tx = conn.transaction().unwrap();
    for _ in 0..1 + rng.below(4) {
        let product = 1 + rng.below(8) as i64;
        let review = 1 + rng.below(40) as i64;
        let category = ["home", "office", "garden"].get(rng.below(4) as usize).copied();
        let (user, other) = (1 + rng.below(6) as i64, 1 + rng.below(6) as i64);
        let post = 1 + rng.below(30) as i64;
        // Text timestamps with ties, so the member (not the score) orders them.
        let at = format!("2024-01-0{} 10:00", 1 + rng.below(3));
        match rng.below(10) {
            0 => tx.execute(
                "INSERT OR REPLACE INTO products VALUES (?1, ?2, ?3)",
                rusqlite::params![product, format!("p:{}", rng.below(5)), category],
            ),
            1 => tx.execute("DELETE FROM products WHERE id = ?1", [product]),
            2 | 3 => tx.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?1, ?2, ?3)",
                rusqlite::params![review, product, 1 + rng.below(5) as i64],
            ),
            4 => tx.execute("DELETE FROM reviews WHERE id = ?1", [review]),
            5 | 6 => tx.execute(
                "INSERT OR REPLACE INTO posts VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![post, user, format!("body {}", rng.below(3)), at],
            ),
            7 => tx.execute("DELETE FROM posts WHERE id = ?1", [post]),
            8 => tx.execute("INSERT OR IGNORE INTO follows VALUES (?1, ?2)", [user, other]),
            _ => tx.execute("DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2", [user, other]),
        }
        .unwrap();
    }
    tx.commit().unwrap();
}

fn delete_prefix(url: &str, prefix: &str) {
    for key in keys(url, &format!("{prefix}*")).unwrap_or_default() {
        let _ = redis_cli(url, &["DEL", &key]);
    }
}

/// Random source transactions in bursts: a hash sink and a JSON sink with a
/// TTL equal the views and the source's queries after each burst, and each
/// feed partition's pages by ZREVRANGE equal the feed's over HTTP.
#[test]
fn redis_equals_the_views_and_the_source_after_random_transactions() {
    let url = redis_url();
    let (hash, json) = (prefix("hash"), prefix("json"));
    let project =
        project(&format!("{}{}", sink(&url, "h", &hash, "hash", ""), sink(&url, "j", &json, "json", "ttl = \"1h\"\n")));
    let denorm = Denorm::start(&project.config);
    let mut conn = project.connect();
    let sinks = vec![(url.clone(), hash.clone(), false), (url.clone(), json.clone(), true)];
    assert_converged(&denorm, &conn, &sinks);
    // The documented layout, read by hand.
    assert_eq!(redis_cli(&url, &["HGET", &format!("{hash}product_stats:1"), "rating_sum"]).unwrap(), ["8"]);
    assert_eq!(redis_cli(&url, &["HGET", &format!("{hash}categories:\\N"), "products"]).unwrap(), ["1"]);
    let mut rng = SplitMix(15);
    let total = common::transactions(600);
    for burst in 0..3 {
        for _ in 0..total / 3 {
            random_transaction(&mut conn, &mut rng);
        }
        assert_converged(&denorm, &conn, &sinks);
        eprintln!("burst {burst} converged");
    }
    let partitions = keys(&url, &format!("{hash}home_feed:*")).unwrap();
    assert!(!partitions.is_empty(), "the workload made no feed partition");
    let position = redis_cli(&url, &["HGET", &format!("{hash}denorm:sink:positions"), "product_stats"]).unwrap();
    assert!(position[0].parse::<u64>().is_ok_and(|p| p > 0), "{position:?}");
    drop(denorm);
    delete_prefix(&url, &hash);
    delete_prefix(&url, &json);
}

/// kill -9 of denorm while a writer commits and the sink is written, three
/// times: after the last restart Redis equals the source exactly.
#[test]
fn kill_9_during_redis_writes_loses_and_duplicates_nothing() {
    let url = redis_url();
    let hash = prefix("kill");
    let project = project(&sink(&url, "h", &hash, "hash", ""));
    let written = kill_three_times_under_a_writer(&project, random_transaction);
    assert!(written > 10, "the writer committed {written} transactions");
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    assert_converged(&denorm, &conn, &[(url.clone(), hash.clone(), false)]);
    drop(denorm);
    delete_prefix(&url, &hash);
}

/// A `redis-server` of this test's own (no persistence) on a free port.
struct OwnServer {
    port: u16,
    child: Option<Child>,
}

impl OwnServer {
    fn start() -> OwnServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = OwnServer { port, child: None };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (Debian's redis-server package; scripts/test installs it)");
        self.child = Some(child);
        let url = self.url();
        eventually(Duration::from_millis(50), || redis_cli(&url, &["PING"]).map(|_| ()));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The sink's redis-server is killed while the source is written: the
/// errors are counted and retried, `/health` shows the sink failing; it is
/// restarted empty (no persistence: the positions are gone too) and the
/// sink rebuilds every view and catches up.
#[test]
fn a_redis_restart_is_caught_up() {
    let mut server = OwnServer::start();
    let url = server.url();
    let project = project(&sink(&url, "h", "", "hash", ""));
    let denorm = Denorm::start(&project.config);
    let mut conn = project.connect();
    let sinks = [(url.clone(), String::new(), false)];
    assert_converged(&denorm, &conn, &sinks);
    server.kill();
    let mut rng = SplitMix(21);
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng);
    }
    eventually(Duration::from_millis(50), || match metric(&denorm, "denorm_sink_errors_total{sink=\"h\"}") {
        Some(n) if n >= 1.0 => Ok(()),
        other => Err(format!("no sink error counted yet: {other:?}")),
    });
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "degraded", "{health}");
    server.restart();
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng);
    }
    assert_converged(&denorm, &conn, &sinks);
    eventually(Duration::from_millis(50), || {
        let (_, health) = denorm.get("/health");
        if health["status"] == "ok" {
            Ok(())
        } else {
            Err(format!("{health}"))
        }
    });
}

/// Keys edited by hand — a changed value, an extra field, a deleted key, a
/// key replaced by a string, a stray key — are found by the periodic
/// reconcile, comparing every row or a sample of keys (`reconcile_sample`:
/// only those keys are read), and rewritten.
#[test]
fn keys_edited_by_hand_are_found_and_repaired() {
    let url = redis_url();
    let (whole, sampled) = (prefix("drift"), prefix("drift_sampled"));
    let every = "reconcile_every = \"300ms\"\nrepair = true\n";
    let project = project(&format!(
        "{}{}",
        sink(&url, "h", &whole, "hash", every),
        sink(&url, "s", &sampled, "hash", &format!("{every}reconcile_sample = 1000\n"))
    ));
    let denorm = Denorm::start(&project.config);
    let mut conn = project.connect();
    let mut rng = SplitMix(33);
    for _ in 0..40 {
        random_transaction(&mut conn, &mut rng);
    }
    conn.execute_batch(
        "INSERT OR REPLACE INTO products VALUES (1, 'lamp', 'home'), (2, 'desk', NULL), (3, 'pen', 'x');",
    )
    .unwrap();
    let sinks = [(url.clone(), whole.clone(), false), (url.clone(), sampled.clone(), false)];
    assert_converged(&denorm, &conn, &sinks);
    for (name, prefix) in [("h", &whole), ("s", &sampled)] {
        let key = |k: &str| format!("{prefix}{k}");
        redis_cli(&url, &["HSET", &key("product_stats:1"), "name", "edited"]).unwrap();
        redis_cli(&url, &["HSET", &key("product_stats:2"), "extra", "x"]).unwrap();
        redis_cli(&url, &["DEL", &key("categories:home")]).unwrap();
        redis_cli(&url, &["DEL", &key("product_stats:3")]).unwrap();
        redis_cli(&url, &["SET", &key("product_stats:3"), "not a hash"]).unwrap();
        if name == "h" {
            // A stray key: only a whole comparison sees keys no row has.
            redis_cli(&url, &["HSET", &key("product_stats:999"), "product_id", "999"]).unwrap();
        }
    }
    for sink in ["h", "s"] {
        for view in ["product_stats", "categories"] {
            eventually(Duration::from_millis(50), || {
                match metric(&denorm, &format!("denorm_sink_drift_rows_total{{sink=\"{sink}\",view=\"{view}\"}}")) {
                    Some(n) if n >= 1.0 => Ok(()),
                    other => Err(format!("no drift counted for {sink}/{view}: {other:?}")),
                }
            });
        }
    }
    assert_converged(&denorm, &conn, &sinks);
    drop(denorm);
    delete_prefix(&url, &whole);
    delete_prefix(&url, &sampled);
}
