//! Feed views in sinks through the real binary: a feed with celebrities
//! (a tiny `fanout_limit`, so authors cross it both ways) written to a
//! SQLite file, a PostgreSQL schema and Redis; after random follows,
//! unfollows, posts, edits, renames and deletes every page read from the
//! target alone (`sqlite3` and `psql` on the feed's SQL view, `redis-cli
//! FCALL_RO denorm_feed_page`, or `EVAL` of the stored script, also at an
//! offset) equals denorm's own page over HTTP;
//! - parts edited by hand (a table's rows, a Redis key) are found and
//!   repaired by `denorm reconcile --sink`; every Redis key has the TTL;
//! - kill -9 of denorm under a writer, restarted: the pages still equal.
//!
//! Needs `DENORM_TEST_POSTGRES_URL` (scripts/postgres start),
//! `DENORM_TEST_REDIS_URL` (scripts/redis start) and the `sqlite3`,
//! `psql` and `redis-cli` shells.

mod common;

use std::process::Command;
use std::time::Duration;

use common::shells::{pg_url, psql, shell, sqlite3};
use common::{committed_position, eventually, Denorm, Project, SplitMix};
use rusqlite::Connection;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, body TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE follows (follower_id INTEGER NOT NULL, followee_id INTEGER NOT NULL, PRIMARY KEY (follower_id, followee_id));
INSERT INTO users VALUES (1, 'ann'), (2, 'bob'), (3, 'cy'), (4, 'dee'), (5, 'eve'), (6, 'fay');
";

const COLUMNS: &str = "owner_id, post_id, body, created_at, author_name";

/// Two feeds: every row kept, and a window of 5.
const FEEDS: [(&str, &str, Option<usize>); 2] =
    [("home_feed", "fanout_limit = 2", None), ("capped_feed", "fanout_limit = 3, retain = 5", Some(5))];

fn views() -> String {
    FEEDS
        .iter()
        .map(|(name, options, _)| {
            format!(
                "CREATE MATERIALIZED VIEW {name} WITH (partition_by = 'owner_id', \
                 order_by = 'created_at DESC, post_id DESC', {options}) AS \
                 SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, u.name AS author_name \
                 FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id;\n"
            )
        })
        .collect()
}

fn project(sinks: &str) -> Project {
    let project = Project::new(SCHEMA, &views());
    let mut config = std::fs::read_to_string(&project.config).unwrap();
    config.push_str(sinks);
    std::fs::write(&project.config, config).unwrap();
    project
}

fn feed_names() -> String {
    FEEDS.iter().map(|(n, _, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")
}

fn redis_url() -> String {
    std::env::var("DENORM_TEST_REDIS_URL").expect(
        "DENORM_TEST_REDIS_URL is not set: run `export \"$(scripts/redis start | tail -n1)\"` (scripts/test does this)",
    )
}

/// A page read with the sink's function (`FCALL_RO denorm_feed_page`), or
/// with `EVAL` of the script the sink stores, as `a|b|c` lines.
fn redis_page(
    prefix: &str,
    feed: &str,
    (owner, limit, offset): (i64, usize, usize),
    eval: bool,
) -> Result<Vec<String>, String> {
    let (owner, limit, offset) = (owner.to_string(), limit.to_string(), offset.to_string());
    let mut command = Command::new("redis-cli");
    command.arg("-u").arg(redis_url());
    if eval {
        let script = shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args([
            "HGET",
            &format!("{prefix}denorm:sink:feeds"),
            ":page_script",
        ]))?
        .join("\n");
        command.args(["EVAL", &script, "0"]);
    } else {
        command.args(["FCALL_RO", "denorm_feed_page", "0"]);
    }
    let lines = shell(command.args([prefix, feed, &owner, &limit, &offset]))?;
    if lines.first().is_some_and(|l| l.starts_with("ERR")) {
        return Err(lines.join("\n"));
    }
    lines
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str::<Json>(l).map(|row| line(&row)).map_err(|e| format!("{l}: {e}")))
        .collect()
}

/// A page over HTTP as `a|b|c` lines, in order.
fn http_page(denorm: &Denorm, feed: &str, owner: i64, limit: usize, offset: usize) -> Vec<String> {
    let (status, rows) = denorm.get(&format!("/views/{feed}?owner_id=eq.{owner}&limit={limit}&offset={offset}"));
    assert_eq!(status, 200, "{rows}");
    rows.as_array().unwrap().iter().map(line).collect()
}

/// A row object as `a|b|c` in `COLUMNS` order.
fn line(row: &Json) -> String {
    COLUMNS
        .split(", ")
        .map(|c| match &row[c] {
            Json::Null => String::new(),
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// One random transaction: follows and unfollows, posts, edits of a body
/// or a time, deletes, renames.
fn random_transaction(conn: &mut Connection, rng: &mut SplitMix) {
    let tx = conn.transaction().unwrap();
    for _ in 0..1 + rng.below(3) {
        let (a, b) = (1 + rng.below(6) as i64, 1 + rng.below(6) as i64);
        let post = 1 + rng.below(30) as i64;
        match rng.below(9) {
            0 | 1 => tx.execute("INSERT OR IGNORE INTO follows VALUES (?1, ?2)", [a, b]),
            2 => tx.execute("DELETE FROM follows WHERE follower_id = ?1 AND followee_id = ?2", [a, b]),
            3 | 4 => tx.execute(
                "INSERT OR REPLACE INTO posts VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![post, a, format!("post {}", rng.below(100)), rng.below(20) as i64],
            ),
            5 => tx.execute("UPDATE posts SET body = body || '!' WHERE id = ?1", [post]),
            6 => tx.execute("UPDATE posts SET created_at = ?2 WHERE id = ?1", [post, rng.below(20) as i64]),
            7 => tx.execute("DELETE FROM posts WHERE id = ?1", [post]),
            _ => tx.execute("UPDATE users SET name = name || 'x' WHERE id = ?1", [a]),
        }
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Reads a page `(feed, owner, limit)` from the sinks, as `a|b|c` lines.
type ReadPage<'a> = &'a dyn Fn(&str, i64, usize) -> Result<Vec<String>, String>;

/// Waits until every page (each owner, each feed, limits 3 and the
/// window) read from every target equals the HTTP page.
fn assert_pages_equal(denorm: &Denorm, conn: &Connection, read: ReadPage<'_>) {
    denorm.wait_for_position(committed_position(conn));
    eventually(Duration::from_millis(100), || -> Result<(), String> {
        for (feed, _, retain) in FEEDS {
            for owner in 1..=6 {
                for limit in [3, retain.unwrap_or(40)] {
                    let served = http_page(denorm, feed, owner, limit, 0);
                    let found = read(feed, owner, limit)?;
                    if found != served {
                        let (_, health) = denorm.get("/health");
                        return Err(format!(
                            "{feed} owner {owner} limit {limit}: sink {found:?} != HTTP {served:?} (sinks: {})",
                            health["sinks"]
                        ));
                    }
                }
            }
        }
        Ok(())
    });
}

/// The page query a user writes against the feed's SQL view.
fn page_sql(table: &str, owner: i64, limit: usize) -> String {
    format!(
        "SELECT {COLUMNS} FROM {table} WHERE owner_id = {owner} ORDER BY created_at DESC, post_id DESC LIMIT {limit}"
    )
}

/// The same random workload, in bursts, pages compared after each.
fn run_bursts(denorm: &Denorm, conn: &mut Connection, read: ReadPage<'_>) {
    assert_pages_equal(denorm, conn, read);
    let mut rng = SplitMix(18);
    let total = common::transactions(600);
    for burst in 0..3 {
        for _ in 0..total / 3 {
            random_transaction(conn, &mut rng);
        }
        assert_pages_equal(denorm, conn, read);
        eprintln!("burst {burst}: pages equal");
    }
}

/// Where one test's sinks write: a SQLite file, a PostgreSQL schema, a
/// Redis prefix.
struct Targets {
    db: std::path::PathBuf,
    schema: String,
    prefix: String,
}

/// A project whose feeds are written to the three kinds of sink, with
/// followers enough that authors 1 and 2 are celebrities of both feeds.
fn setup(test: &str) -> (Project, Targets) {
    let schema = format!("sink_feed_{test}_{}", std::process::id());
    let prefix = format!("{schema}:");
    let _ = psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
    let project = project(&format!(
        "[[sink]]\nname = \"file\"\nkind = \"sqlite\"\npath = \"read_models.db\"\nviews = [{names}]\n\
         [[sink]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\"\nviews = [{names}]\n\
         [[sink]]\nname = \"redis\"\nkind = \"redis\"\nurl = \"{redis}\"\nprefix = \"{prefix}\"\nttl = \"1h\"\nviews = [{names}]\n",
        names = feed_names(),
        url = pg_url(),
        redis = redis_url(),
    ));
    project
        .connect()
        .execute_batch(
            "INSERT INTO follows VALUES (3, 1), (4, 1), (5, 1), (6, 1), (3, 2), (4, 2), (5, 2), (6, 2), (1, 3), (2, 4);
             INSERT INTO posts VALUES (1, 1, 'a', 5), (2, 2, 'b', 7), (3, 3, 'c', 7), (4, 4, 'd', 1), (5, 1, 'e', 9);",
        )
        .unwrap();
    let db = project.dir.path().join("read_models.db");
    (project, Targets { db, schema, prefix })
}

/// A page read from every sink (all equal, else an error), and Redis's
/// page at an offset compared with the HTTP one.
fn read_sinks(denorm: &Denorm, targets: &Targets, feed: &str, owner: i64, limit: usize) -> Result<Vec<String>, String> {
    let Targets { db, schema, prefix } = targets;
    let lite = sqlite3(db, &page_sql(feed, owner, limit))?;
    let pg = psql(&page_sql(&format!("{schema}.{feed}"), owner, limit))?;
    // Half the reads through EVAL of the stored script.
    let redis = redis_page(prefix, feed, (owner, limit, 0), owner % 2 == 0)?;
    // A page at an offset (through the window's end with `retain`).
    let deeper = redis_page(prefix, feed, (owner, limit, 2), owner % 2 == 1)?;
    let served = http_page(denorm, feed, owner, limit, 2);
    if deeper != served {
        return Err(format!("redis at offset 2 {deeper:?} != HTTP {served:?}"));
    }
    if lite != pg || lite != redis {
        let (_, health) = denorm.get("/health");
        return Err(format!("sqlite {lite:?} != postgres {pg:?} or redis {redis:?} (sinks: {})", health["sinks"]));
    }
    Ok(lite)
}

fn clean_up(targets: &Targets) {
    let _ = psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", targets.schema));
    let keys = shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args([
        "--scan",
        "--pattern",
        &format!("{}*", targets.prefix),
    ]))
    .unwrap_or_default();
    for key in keys {
        let _ = shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args(["DEL", &key]));
    }
}

#[test]
fn sqlite_postgres_and_redis_feed_pages_equal_the_http_pages() {
    let (project, targets) = setup("pages");
    let Targets { db, schema, prefix } = &targets;
    let mut conn = project.connect();
    let denorm = Denorm::start(&project.config);
    let read = |feed: &str, owner: i64, limit: usize| read_sinks(&denorm, &targets, feed, owner, limit);
    run_bursts(&denorm, &mut conn, &read);
    // The page query is served by the parts' indexes in PostgreSQL: no part
    // is scanned whole, and the fanned-out rows' (partition, order) index
    // gives a partition's rows in the page's order without a sort (checked
    // on that part alone with sorts disabled: on these few rows the view's
    // plan may as well take the key index and sort one row, as autovacuum's
    // statistics decide).
    let plan = psql(&format!("SET enable_seqscan = off; EXPLAIN {}", page_sql(&format!("{schema}.home_feed"), 3, 10)))
        .unwrap()
        .join("\n");
    assert!(!plan.contains("Seq Scan") && plan.contains("Index Cond: (owner_id = 3)"), "{plan}");
    let plan = psql(&format!(
        "SET enable_seqscan = off; SET enable_sort = off; EXPLAIN {}",
        page_sql(&format!("{schema}.home_feed__fanout"), 3, 10)
    ))
    .unwrap()
    .join("\n");
    assert!(plan.contains("home_feed__fanout_i0") && !plan.contains("Sort"), "{plan}");
    // Parts edited by hand are found and repaired by `denorm reconcile`.
    let address = denorm.base.trim_start_matches("http://").to_string();
    let config = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &address);
    std::fs::write(&project.config, config).unwrap();
    let reconcile = |sink: &str, repair: bool| {
        let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
            .args(["reconcile", "--sink", sink])
            .args(repair.then_some("--repair"))
            .arg("--config")
            .arg(&project.config)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };
    // A celebrity with followers, so that every part has rows.
    conn.execute_batch(
        "INSERT OR IGNORE INTO follows VALUES (2, 1), (3, 1), (4, 1), (5, 1), (6, 1);
         INSERT OR REPLACE INTO posts VALUES (99, 1, 'celebrity post', 19);",
    )
    .unwrap();
    assert_pages_equal(&denorm, &conn, &read);
    sqlite3(db, "DELETE FROM home_feed__edges; UPDATE home_feed__fanout SET body = 'edited'").unwrap();
    psql(&format!("UPDATE {schema}.home_feed__celebrities SET body = 'edited'")).unwrap();
    let redis_cli = |args: &[&str]| shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args(args)).unwrap();
    redis_cli(&["DEL", &format!("{prefix}home_feed__celebrities:1")]);
    for (sink, part) in
        [("file", "home_feed__edges"), ("pg", "home_feed__celebrities"), ("redis", "home_feed__celebrities")]
    {
        let (code, out) = reconcile(sink, false);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(&format!("sink {sink}, view {part}:")), "{out}");
        let (code, out) = reconcile(sink, true);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("(repaired)"), "{out}");
    }
    assert_pages_equal(&denorm, &conn, &read);
    // Every key the Redis sink wrote has the configured time to live.
    let keys = shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args([
        "--scan",
        "--pattern",
        &format!("{prefix}*"),
    ]))
    .unwrap();
    assert!(
        keys.iter().any(|k| k.contains("__celebrities:")) && keys.iter().any(|k| k.contains("__edges:")),
        "{keys:?}"
    );
    for key in keys.iter().filter(|k| !k.contains("denorm:sink:")) {
        let ttl = shell(Command::new("redis-cli").arg("-u").arg(redis_url()).args(["PTTL", key])).unwrap();
        assert!(ttl[0].parse::<i64>().unwrap() > 0, "{key}: {ttl:?}");
    }
    drop(denorm);
    clean_up(&targets);
}

/// kill -9 of denorm three times while a writer changes follows and
/// posts: restarted, every sink's pages equal the HTTP pages (nothing
/// lost, nothing applied twice).
#[test]
fn kill_9_during_feed_sink_writes_loses_and_duplicates_nothing() {
    let (project, targets) = setup("kill");
    let written = common::kill_three_times_under_a_writer(&project, random_transaction);
    assert!(written > 10, "the writer committed {written} transactions");
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    assert_pages_equal(&denorm, &conn, &|feed, owner, limit| read_sinks(&denorm, &targets, feed, owner, limit));
    drop(denorm);
    clean_up(&targets);
}
