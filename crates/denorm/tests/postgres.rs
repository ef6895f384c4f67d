//! `denorm run`, `check` and `source uninstall` on a real PostgreSQL (the
//! server `scripts/postgres` starts; `DENORM_TEST_POSTGRES_URL`). Every test
//! has a database, a replication slot and a publication of its own, so the
//! tests run in parallel. Every view is compared over HTTP with PostgreSQL's
//! own answer to the view's SELECT — after the snapshot, random
//! transactions, a snapshot taken under a running writer, kill -9 with
//! writes while down, a terminated walsender, TRUNCATE and ALTER TABLE.

mod common;
mod pg_project;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{get_text, Denorm, SplitMix, PATIENCE};
use denorm_types::Value;
use pg_project::{assert_views_equal, datum, debug_rows, reference, PgProject};
use postgres::{Client, NoTls};
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, karma integer);
CREATE TABLE posts (id bigint PRIMARY KEY, author_id integer, title text, score integer);
CREATE TABLE products (id integer PRIMARY KEY, name text, category text, price double precision, active boolean);
CREATE TABLE reviews (id integer PRIMARY KEY, product_id integer, user_id integer, rating smallint);
CREATE TABLE follows (id integer PRIMARY KEY, follower_id integer, followee_id integer);
ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE posts REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE reviews REPLICA IDENTITY FULL;
ALTER TABLE follows REPLICA IDENTITY FULL;
";

/// (name, SELECT): joins, LEFT JOIN, GROUP BY aggregates, DISTINCT, WHERE.
const VIEWS: &[(&str, &str)] = &[
    (
        "post_cards",
        "SELECT p.id AS post_id, p.title, u.name AS author_name, u.karma FROM posts p JOIN users u ON u.id = p.author_id",
    ),
    (
        "posts_with_author",
        "SELECT p.id AS post_id, p.score, u.name AS author FROM posts p LEFT JOIN users u ON u.id = p.author_id",
    ),
    (
        "author_stats",
        "SELECT author_id, COUNT(*) AS posts, SUM(score) AS total_score, AVG(score) AS avg_score, \
         MIN(title) AS first_title, MAX(score) AS best FROM posts GROUP BY author_id",
    ),
    (
        "product_cards",
        "SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, AVG(r.rating) AS avg_rating \
         FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name",
    ),
    (
        "reviewer_categories",
        "SELECT DISTINCT r.user_id, p.category FROM reviews r JOIN products p ON p.id = r.product_id",
    ),
    ("rating_histogram", "SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating"),
    (
        "follower_counts",
        "SELECT followee_id, COUNT(DISTINCT follower_id) AS followers, COUNT(*) AS edges FROM follows GROUP BY followee_id",
    ),
    ("active_products", "SELECT id, name, price, active FROM products WHERE active AND price > 1.0"),
    // SUM/AVG(DISTINCT) of a double: each value once, summed as SUM is.
    (
        "category_totals",
        "SELECT category, SUM(price) AS total, MAX(price) AS top, SUM(DISTINCT price) AS distinct_total, \
         AVG(DISTINCT price) AS distinct_mean FROM products GROUP BY category",
    ),
    // SUM of a bigint is numeric, of an integer bigint (PostgreSQL's types).
    (
        "post_id_sums",
        "SELECT author_id, SUM(id) AS id_sum, SUM(DISTINCT id) AS distinct_ids, SUM(score) AS total, \
         SUM(id + score) AS mixed FROM posts GROUP BY author_id",
    ),
    // FULL JOIN … USING / NATURAL FULL JOIN: the merged column is
    // COALESCE(left.c, right.c) (integer and bigint merge as bigint).
    ("users_full_posts", "SELECT id, u.name, p.title FROM users u FULL JOIN posts p USING (id)"),
    ("users_natural_full_products", "SELECT id, name, karma, category FROM users NATURAL FULL JOIN products"),
    (
        "full_using_groups",
        "SELECT id, COUNT(*) AS n, MAX(r.rating) AS best FROM products p FULL OUTER JOIN reviews r USING (id) GROUP BY id",
    ),
    // A USING over a column a FULL JOIN merged joins on the COALESCE; a
    // FULL pair of two types merges as their common type (integer and
    // numeric as numeric, bigint and double precision as double precision).
    (
        "full_using_chained",
        "SELECT id, u.name, p.title, r.rating FROM users u FULL JOIN posts p USING (id) JOIN reviews r USING (id)",
    ),
    (
        "full_using_numeric",
        "SELECT id, u.name, p.name AS product FROM users u FULL JOIN (SELECT id::numeric AS id, name FROM products) p USING (id)",
    ),
    ("full_using_double", "SELECT id, p.title FROM (SELECT price AS id FROM products) pr FULL JOIN posts p USING (id)"),
    // Whole queries: top-N (OFFSET), the ALL set operations SQLite lacks,
    // PostgreSQL's INTERSECT-first precedence, a CTE read twice, a constant row.
    ("top_scores", "SELECT id, title, score FROM posts ORDER BY score DESC NULLS LAST, id LIMIT 4"),
    ("score_page", "SELECT id, score FROM posts ORDER BY score, id DESC LIMIT 3 OFFSET 2"),
    ("authors_except_all", "SELECT author_id FROM posts EXCEPT ALL SELECT user_id FROM reviews"),
    ("authors_intersect_all", "SELECT author_id FROM posts INTERSECT ALL SELECT user_id FROM reviews"),
    (
        "set_precedence",
        "SELECT author_id FROM posts UNION SELECT user_id FROM reviews INTERSECT SELECT follower_id FROM follows",
    ),
    ("karma_or_rating", "SELECT karma FROM users UNION ALL SELECT rating FROM reviews"),
    (
        "counts_twice",
        "WITH c AS (SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id) \
         SELECT a.author_id, a.n, b.n AS m FROM c a JOIN c b ON b.author_id = a.author_id",
    ),
    ("constant_row", "SELECT 1 AS one, 'x' AS s"),
    ("unlisted_users", "SELECT id, name FROM users EXCEPT VALUES (1, 'ann'), (2, 'Bob')"),
    (
        "nested_compound",
        "(SELECT author_id FROM posts EXCEPT SELECT user_id FROM reviews) \
         UNION ALL (SELECT follower_id FROM follows ORDER BY follower_id DESC, id LIMIT 2)",
    ),
    // RANK / DENSE_RANK top-k: ties kept, PostgreSQL's NULLS FIRST for DESC.
    (
        "posts_ranked",
        "SELECT author_id, id, score, rk FROM (SELECT author_id, id, score, \
         RANK() OVER (PARTITION BY author_id ORDER BY score DESC) AS rk FROM posts) AS r WHERE rk <= 2",
    ),
    // LAG / LEAD: neighbours within partitions, a default typed with the
    // value (int4 and numeric meet as numeric), PostgreSQL's negative offset.
    (
        "price_neighbours",
        "SELECT id, category, price, LAG(price) OVER (PARTITION BY category ORDER BY price, id) AS prev, \
         LEAD(name, 2, 'none') OVER (PARTITION BY category ORDER BY price DESC, id) AS later FROM products",
    ),
    (
        "score_steps",
        "SELECT id, score - LAG(score, 1, 0) OVER (PARTITION BY author_id ORDER BY id) AS step, \
         LAG(title, -1) OVER (ORDER BY score NULLS FIRST, id) AS next_title, \
         LEAD(score, 1, 0.5) OVER (ORDER BY id DESC) AS before_score FROM posts",
    ),
    (
        "ratings_dense_ranked",
        "SELECT product_id, rating, rk FROM (SELECT product_id, rating, \
         DENSE_RANK() OVER (PARTITION BY product_id ORDER BY rating) AS rk FROM reviews) AS r WHERE rk < 3",
    ),
];

fn views_sql(views: &[(&str, &str)]) -> String {
    views.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

// --- a deterministic random writer ------------------------------------------

/// Random transactions (inserts, updates, deletes, key changes, NULLs) on
/// the tables of [`SCHEMA`].
struct Writer {
    client: Client,
    rng: SplitMix,
    next_post: i64,
    /// `products.price` was dropped.
    no_price: bool,
}

impl Writer {
    fn new(url: &str, seed: u64) -> Writer {
        // Writers with different seeds change keys to different ranges.
        let next_post = 1000 + seed as i64 * 10_000;
        Writer { client: Client::connect(url, NoTls).unwrap(), rng: SplitMix(seed), next_post, no_price: false }
    }

    fn below(&mut self, n: u64) -> i64 {
        self.rng.below(n) as i64
    }

    /// An integer literal, or NULL one time in six.
    fn int(&mut self, lo: i64, hi: i64) -> String {
        if self.below(6) == 0 {
            "NULL".into()
        } else {
            (lo + self.below((hi - lo) as u64)).to_string()
        }
    }

    fn text(&mut self, choices: &[&str]) -> String {
        if self.below(6) == 0 {
            return "NULL".into();
        }
        let pick = choices[self.below(choices.len() as u64) as usize];
        format!("'{}'", pick.replace('\'', "''"))
    }

    fn statement(&mut self) -> String {
        let names = ["ann", "Bob", "cy", "dee", "it's", "a,b", "żółw"];
        let titles = ["alpha", "Beta", "gamma", "apple", "DATA", "new\nline"];
        match self.below(14) {
            0 | 1 => {
                let id = self.below(8);
                let name = names[self.below(names.len() as u64) as usize].replace('\'', "''");
                let karma = self.int(-2, 6);
                format!(
                    "INSERT INTO users VALUES ({id}, '{name}', {karma}) \
                     ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, karma = EXCLUDED.karma"
                )
            }
            2 => format!("DELETE FROM users WHERE id = {}", self.below(8)),
            3 | 4 => {
                let id = self.below(14);
                let (author, title, score) = (self.int(0, 9), self.text(&titles), self.int(-3, 7));
                format!(
                    "INSERT INTO posts VALUES ({id}, {author}, {title}, {score}) ON CONFLICT (id) DO UPDATE \
                     SET author_id = EXCLUDED.author_id, title = EXCLUDED.title, score = EXCLUDED.score"
                )
            }
            5 => format!("UPDATE posts SET author_id = {} WHERE id = {}", self.int(0, 9), self.below(14)),
            6 => {
                // A key change, to a fresh key.
                self.next_post += 1;
                format!("UPDATE posts SET id = {} WHERE id = (SELECT min(id) FROM posts)", self.next_post)
            }
            7 => format!("DELETE FROM posts WHERE id = {}", self.below(14)),
            8 => {
                let id = self.below(6);
                let name = self.text(&["mug", "pen", "Cup"]);
                let category = self.text(&["a", "b"]);
                let price =
                    if self.below(6) == 0 { "NULL".into() } else { format!("{}", self.below(20) as f64 * 0.25) };
                let active = ["true", "false", "NULL"][self.below(3) as usize];
                if self.no_price {
                    return format!(
                        "INSERT INTO products VALUES ({id}, {name}, {category}, {active}) ON CONFLICT (id) DO UPDATE \
                         SET name = EXCLUDED.name, category = EXCLUDED.category, active = EXCLUDED.active"
                    );
                }
                format!(
                    "INSERT INTO products VALUES ({id}, {name}, {category}, {price}, {active}) ON CONFLICT (id) DO UPDATE \
                     SET name = EXCLUDED.name, category = EXCLUDED.category, price = EXCLUDED.price, active = EXCLUDED.active"
                )
            }
            9 => format!("DELETE FROM products WHERE id = {}", self.below(6)),
            10 | 11 => {
                let id = self.below(16);
                let (product, user, rating) = (self.int(0, 7), self.int(0, 9), self.int(1, 6));
                format!(
                    "INSERT INTO reviews VALUES ({id}, {product}, {user}, {rating}) ON CONFLICT (id) DO UPDATE \
                     SET product_id = EXCLUDED.product_id, user_id = EXCLUDED.user_id, rating = EXCLUDED.rating"
                )
            }
            12 => format!("DELETE FROM reviews WHERE id = {}", self.below(16)),
            _ => {
                let id = self.below(12);
                if self.below(3) == 0 {
                    format!("DELETE FROM follows WHERE id = {id}")
                } else {
                    let (a, b) = (self.below(8), self.below(8));
                    format!(
                        "INSERT INTO follows VALUES ({id}, {a}, {b}) ON CONFLICT (id) DO UPDATE \
                         SET follower_id = EXCLUDED.follower_id, followee_id = EXCLUDED.followee_id"
                    )
                }
            }
        }
    }

    /// One transaction of 1 to 8 statements.
    fn transaction(&mut self) {
        let n = 1 + self.below(8);
        let statements: Vec<String> = (0..n).map(|_| self.statement()).collect();
        self.client.batch_execute(&format!("BEGIN; {}; COMMIT;", statements.join("; "))).unwrap();
    }

    fn transactions(&mut self, n: usize) {
        for _ in 0..n {
            self.transaction();
        }
    }
}

fn wait_for_log_count(denorm: &mut Denorm, needle: &str, count: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        while let Ok(line) = denorm.log.try_recv() {
            denorm.lines.push(line);
        }
        if denorm.lines.iter().filter(|l| l.contains(needle)).count() >= count {
            return;
        }
        assert!(Instant::now() < deadline, "denorm did not log {needle:?} {count} times:\n{}", denorm.lines.join("\n"));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_count(denorm: &mut Denorm, needle: &str) -> usize {
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    denorm.lines.iter().filter(|l| l.contains(needle)).count()
}

// --- the tests ---------------------------------------------------------------

/// (a) + (c): random transactions through the snapshot and the stream, a
/// graceful restart, and kill -9 in the middle of a stream of writes with
/// more writes while denorm is down.
#[test]
fn views_equal_postgres_through_snapshot_writes_restart_and_kill() {
    let project = PgProject::new("run_differential", SCHEMA, &views_sql(VIEWS));
    let mut writer = Writer::new(&project.url, 7);
    let mut client = project.client();
    writer.transactions(40);

    let denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    for _ in 0..8 {
        writer.transactions(10);
        assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    }
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(health["source"]["replication"]["head_lsn"].as_str().unwrap().contains('/'), "{health}");
    let (_, metrics) = get_text(&format!("{}/metrics", denorm.base));
    for name in ["denorm_source_lag_bytes ", "denorm_source_lag_seconds ", "denorm_source_retained_wal_bytes "] {
        assert!(metrics.lines().any(|l| l.starts_with(name)), "{name}missing:\n{metrics}");
    }
    // Positions are LSNs, shown as integers.
    let (_, views) = denorm.get("/views");
    assert!(views[0]["position"].as_u64().unwrap() > 0, "{views}");

    assert_eq!(denorm.terminate(), Some(0));
    writer.transactions(20);
    let denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (url, stop) = (project.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut writer = Writer::new(&url, 99);
            while !stop.load(Ordering::SeqCst) {
                writer.transaction();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    denorm.kill();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    background.join().unwrap();
    writer.transactions(20);
    let denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    writer.transactions(20);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
}

/// (b) The snapshot is taken while a writer commits as fast as it can:
/// the snapshot and the stream join at one LSN, so nothing is missed or
/// applied twice (counts and sums would show it).
#[test]
fn snapshot_under_a_running_writer_has_no_gap_or_overlap() {
    let schema = "CREATE TABLE events (id bigint PRIMARY KEY, account integer NOT NULL, amount integer NOT NULL);
                  ALTER TABLE events REPLICA IDENTITY FULL;
                  INSERT INTO events SELECT g, g % 10, 1 FROM generate_series(1, 20000) g;";
    let views: &[(&str, &str)] = &[
        ("balances", "SELECT account, COUNT(*) AS n, SUM(amount) AS total FROM events GROUP BY account"),
        ("event_count", "SELECT COUNT(*) AS n, SUM(amount) AS total FROM events"),
    ];
    let project = PgProject::new("run_snapshot_writer", schema, &views_sql(views));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, stop) = (project.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut client = Client::connect(&url, NoTls).unwrap();
            let mut id = 100_000i64;
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                id += 1;
                client
                    .batch_execute(&format!(
                        "BEGIN; INSERT INTO events VALUES ({id}, {}, 2); \
                         UPDATE events SET amount = amount + 1 WHERE id = {}; \
                         DELETE FROM events WHERE id = {}; COMMIT;",
                        id % 10,
                        id % 20000 + 1,
                        id - 50
                    ))
                    .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let denorm = Denorm::start(&project.config);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert!(written > 50, "the writer ran during the snapshot ({written} transactions)");
    let mut client = project.client();
    assert_views_equal(&denorm, &mut client, views, &[]);
}

/// (d) The walsender is terminated under load: denorm resumes the stream
/// from the last published position without a new snapshot, and nothing
/// is lost or applied twice.
#[test]
fn walsender_termination_resumes_without_a_snapshot() {
    let project = PgProject::new("run_walsender", SCHEMA, &views_sql(VIEWS));
    let mut writer = Writer::new(&project.url, 11);
    let mut client = project.client();
    writer.transactions(20);
    let mut denorm = Denorm::start(&project.config);
    // Streaming starts once the snapshot is in the state directory.
    denorm.wait_for_log("snapshot written to the state directory");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    for round in 1..=3 {
        writer.transactions(10);
        let terminated = client
            .query(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&project.slot],
            )
            .unwrap();
        assert_eq!(terminated.len(), 1, "the slot's walsender was found");
        writer.transactions(10);
        wait_for_log_count(&mut denorm, "resumed the stream", round);
        assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    }
    assert_eq!(log_count(&mut denorm, "snapshot published"), 1, "resumed, never re-snapshotted");
}

/// (e) TRUNCATE empties the table's input: denorm takes a new snapshot.
#[test]
fn truncate_empties_the_views_inputs() {
    let project = PgProject::new("run_truncate", SCHEMA, &views_sql(VIEWS));
    let mut writer = Writer::new(&project.url, 5);
    let mut client = project.client();
    writer.transactions(30);
    let mut denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    client.batch_execute("TRUNCATE reviews").unwrap();
    denorm.wait_for_log("a captured table was truncated");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    let (_, histogram) = denorm.get("/views/rating_histogram");
    assert_eq!(histogram, serde_json::json!([]));
    // TRUNCATE of two tables and writes in the same transaction.
    writer.transactions(10);
    client
        .batch_execute("BEGIN; TRUNCATE posts, follows; INSERT INTO posts VALUES (1, 1, 'after', 3); COMMIT;")
        .unwrap();
    writer.transactions(10);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
}

/// (f) ADD COLUMN breaks nothing; DROP COLUMN of a column views read fails
/// exactly those views, with the reason; the others go on.
#[test]
fn alter_table_fails_only_the_views_it_breaks() {
    let project = PgProject::new("run_alter", SCHEMA, &views_sql(VIEWS));
    let mut writer = Writer::new(&project.url, 3);
    let mut client = project.client();
    writer.transactions(20);
    let mut denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);

    client.batch_execute("ALTER TABLE posts ADD COLUMN note text").unwrap();
    writer.transactions(10); // the Relation message comes with the table's next change
    client.batch_execute("INSERT INTO posts VALUES (500, 1, 'with note', 1, 'n')").unwrap();
    denorm.wait_for_log("re-planning");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);

    client.batch_execute("ALTER TABLE products DROP COLUMN price").unwrap();
    writer.no_price = true;
    client.batch_execute("UPDATE products SET name = 'renamed' WHERE id = (SELECT min(id) FROM products)").unwrap();
    client.batch_execute("INSERT INTO products VALUES (99, 'new', 'a', true)").unwrap();
    let broken = ["active_products", "category_totals", "full_using_double", "price_neighbours"];
    let views = denorm
        .wait_for(|views| views.as_array().unwrap().iter().filter(|v| v["status"] == "failed").count() == broken.len());
    for name in broken {
        let view = views.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap();
        assert_eq!(view["status"], "failed", "{view}");
        assert!(view["error"].as_str().unwrap().contains("price"), "{view}");
    }
    writer.transactions(20);
    assert_views_equal(&denorm, &mut client, VIEWS, &broken);
    let _ = log_count(&mut denorm, "");
}

/// (g) A table whose non-key columns a view reads without REPLICA IDENTITY
/// FULL: denorm refuses to start, naming the ALTER TABLE fix; wal_level and
/// privileges are checked by the library (unit and capture tests).
#[test]
fn missing_replica_identity_is_refused_at_start_with_the_fix() {
    let schema = "CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, karma integer);
                  CREATE TABLE posts (id bigint PRIMARY KEY, author_id integer, title text, score integer);
                  ALTER TABLE users REPLICA IDENTITY FULL;";
    let project = PgProject::new("run_identity", schema, &views_sql(&VIEWS[..2]));
    let (code, log) = Denorm::spawn(&project.config).exit();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("ALTER TABLE posts REPLICA IDENTITY FULL"), "{log}");
    assert!(log.contains("REPLICA IDENTITY DEFAULT (primary key id)"), "{log}");
    assert!(!log.contains("serving http"), "refused before serving:\n{log}");
}

/// `denorm check` plans against PostgreSQL; `denorm source uninstall` drops
/// the slot and the publication; a slot retaining more WAL than
/// `max_retained_wal` makes /health degraded and is logged.
#[test]
fn check_uninstall_and_the_retained_wal_warning() {
    let project = PgProject::with_options("run_cli", SCHEMA, &views_sql(VIEWS), "max_retained_wal = \"1B\"\n");
    let out = project.denorm(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "ok: {} views in 1 file planned against 5 source tables of postgres://denorm:***@",
            VIEWS.len()
        )),
        "{stdout}"
    );

    let mut writer = Writer::new(&project.url, 1);
    writer.transactions(5);
    let mut denorm = Denorm::start(&project.config);
    writer.transactions(5);
    denorm.wait_for_log("retains");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, health) = denorm.get("/health");
        if health["status"] == "degraded" {
            let problems = health["problems"].to_string();
            assert!(problems.contains(&format!("replication slot {} retains", project.slot)), "{health}");
            break;
        }
        assert!(Instant::now() < deadline, "/health never reported the retained WAL: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(denorm.terminate(), Some(0));

    let out = project.denorm(&["source", "uninstall"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("dropped replication slot {}", project.slot)), "{stdout}");
    assert!(stdout.contains(&format!("dropped publication {}", project.slot)), "{stdout}");
    let mut client = project.client();
    let slots = client.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&project.slot]).unwrap();
    let publications = client.query("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&project.slot]).unwrap();
    assert!(slots.is_empty() && publications.is_empty());
    let out = project.denorm(&["source", "uninstall"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to remove"));
}

/// An unreachable server at start is refused (exit 1) with the URL's
/// position in the config and the password hidden.
#[test]
fn unreachable_server_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("views.sql"), views_sql(&VIEWS[..1])).unwrap();
    let config = dir.path().join("denorm.toml");
    std::fs::write(&config, "views = [\"views.sql\"]\n[source]\nurl = \"postgres://u:secret@127.0.0.1:1/app\"\n")
        .unwrap();
    let (code, log) = Denorm::spawn(&config).exit();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("denorm.toml:3:7: cannot connect to the source postgres://u:***@127.0.0.1:1/app"), "{log}");
    assert!(!log.contains("secret"), "{log}");
}

// --- read-your-writes --------------------------------------------------------

/// GET with `Denorm-Min-Position` and `Denorm-Timeout`: the status, the
/// `Denorm-Position` header and the JSON body.
fn get_at(denorm: &Denorm, path: &str, min_position: &str, timeout: &str) -> (u16, Option<u64>, Json) {
    let mut reply = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
        .get(format!("{}{path}", denorm.base))
        .header("Denorm-Min-Position", min_position)
        .header("Denorm-Timeout", timeout)
        .call()
        .unwrap();
    let position = reply.headers().get("denorm-position").and_then(|v| v.to_str().ok()?.parse().ok());
    let body = reply.body_mut().read_to_string().unwrap();
    (reply.status().as_u16(), position, serde_json::from_str(&body).unwrap_or(Json::Null))
}

/// `SELECT pg_current_wal_lsn()` as text (`X/Y`) and as the integer
/// denorm shows.
fn current_lsn(client: &mut Client) -> (String, u64) {
    let row = client.query_one("SELECT pg_current_wal_lsn()::text, (pg_current_wal_lsn() - '0/0')::int8", &[]).unwrap();
    (row.get(0), row.get::<_, i64>(1) as u64)
}

/// An application writes, reads `pg_current_wal_lsn()` after its commit and
/// sends it as `Denorm-Min-Position`: the read answers with the write
/// reflected — also when the position lies past WAL no view reads (another
/// table's writes), where no captured commit would ever reach it. A
/// position in the future still times out with the current position.
#[test]
fn read_your_writes_with_pg_current_wal_lsn() {
    let schema = format!("{SCHEMA} CREATE TABLE audit (id serial PRIMARY KEY, note text);");
    let views = "CREATE MATERIALIZED VIEW user_names AS SELECT id, name FROM users;\n";
    let project = PgProject::new("run_read_your_writes", &schema, views);
    let denorm = Denorm::start(&project.config);
    let mut client = project.client();
    // The test server commits asynchronously (synchronous_commit = off), and
    // an asynchronous commit may not be written when it returns; a
    // synchronous one is flushed, so the write position read after it
    // lies past it.
    client.batch_execute("SET synchronous_commit = on").unwrap();
    for id in 1..=3 {
        client.batch_execute(&format!("INSERT INTO users (id, name) VALUES ({id}, 'user {id}')")).unwrap();
        let (lsn, number) = current_lsn(&mut client);
        // Both notations of the position are accepted.
        let wanted = if id % 2 == 0 { number.to_string() } else { lsn };
        let (status, position, rows) = get_at(&denorm, &format!("/views/user_names?id=eq.{id}"), &wanted, "30s");
        assert_eq!(status, 200, "{rows}");
        assert_eq!(rows, serde_json::json!([{"id": id, "name": format!("user {id}")}]));
        assert!(position.unwrap() >= number);
    }
    // Writes to a table no view reads: the position moves past every
    // captured commit, and is reached all the same.
    for round in 0..3 {
        client.batch_execute(&format!("INSERT INTO audit (note) VALUES ('{round}')")).unwrap();
        let (lsn, number) = current_lsn(&mut client);
        let (status, position, rows) = get_at(&denorm, "/views/user_names?order=id", &lsn, "30s");
        assert_eq!(status, 200, "round {round}: {rows}");
        assert_eq!(rows.as_array().unwrap().len(), 3);
        assert!(position.unwrap() >= number);
    }
    // Far ahead of the server: 504 with the current position.
    let (_, now) = current_lsn(&mut client);
    let (status, position, body) = get_at(&denorm, "/views/user_names", "FFFFFFFF/0", "200ms");
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["code"], "position_timeout", "{body}");
    let position = position.expect("a 504 carries the current position");
    assert!(position > 0 && position <= now + (1 << 24), "{position} vs server {now}");
}

// --- the shapes of issue 5 on PostgreSQL -------------------------------------

const SHAPES_SCHEMA: &str = "
CREATE TABLE users (id integer PRIMARY KEY, name text NOT NULL, avatar_url text);
CREATE TABLE posts (id integer PRIMARY KEY, author_id integer, body text, created_at bigint NOT NULL);
CREATE TABLE follows (id integer PRIMARY KEY, follower_id integer, followee_id integer);
ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE posts REPLICA IDENTITY FULL;
ALTER TABLE follows REPLICA IDENTITY FULL;
";

const FEED_SELECT: &str = "SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, \
     u.name AS author_name, u.avatar_url AS author_avatar \
     FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id";

const FEED_COLUMNS: [&str; 6] = ["owner_id", "post_id", "body", "created_at", "author_name", "author_avatar"];

/// Top-k per group (the ROW_NUMBER form) and a document with an embedded,
/// ordered child list: compared whole with PostgreSQL.
const SHAPE_VIEWS: &[(&str, &str)] = &[
    (
        "newest_per_author",
        "SELECT author_id, post_id, created_at, rn FROM (SELECT author_id, id AS post_id, created_at, \
         ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY created_at DESC, id DESC) AS rn FROM posts) AS ranked \
         WHERE rn <= 3",
    ),
    (
        "author_documents",
        "SELECT u.id AS author_id, u.name, COUNT(p.id) AS post_count, \
         json_agg(json_build_object('post_id', p.id, 'body', p.body) ORDER BY p.id) AS posts \
         FROM users u JOIN posts p ON p.author_id = u.id GROUP BY u.id, u.name",
    ),
];

/// Random follows, unfollows, posts, deletes, author changes and renames.
fn shapes_statement(rng: &mut Writer, next_id: &mut i64) -> String {
    *next_id += 1;
    let id = *next_id;
    let user = rng.below(8);
    match rng.below(9) {
        0 | 1 => {
            let (follower, followee) = (rng.below(6), rng.below(8));
            format!("INSERT INTO follows VALUES ({id}, {follower}, {followee})")
        }
        2 => format!(
            "DELETE FROM follows WHERE id = (SELECT id FROM follows ORDER BY id LIMIT 1 OFFSET {})",
            rng.below(8)
        ),
        3 => format!("UPDATE follows SET followee_id = {user} WHERE id % 7 = {}", rng.below(7)),
        4 | 5 => {
            let body = rng.text(&["hello", "a day out", "rust 2.0", "x"]);
            format!("INSERT INTO posts VALUES ({id}, {user}, {body}, {})", rng.below(40))
        }
        6 => format!("DELETE FROM posts WHERE id % 5 = {} AND author_id = {user}", rng.below(5)),
        7 => format!("UPDATE posts SET author_id = {user} WHERE id % 11 = {}", rng.below(11)),
        _ => {
            let (name, avatar) =
                (rng.text(&["ann", "bob", "cy"]).replace("NULL", "'anon'"), rng.text(&["a.png", "b.png"]));
            format!(
                "INSERT INTO users VALUES ({user}, {name}, {avatar}) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, avatar_url = EXCLUDED.avatar_url"
            )
        }
    }
}

/// PostgreSQL's page of the feed for `owner`: the first `retain` rows in
/// the feed's order (what the feed keeps), then `filter`, then `limit`.
fn feed_page(client: &mut Client, owner: i64, filter: &str, limit: usize, retain: usize) -> Vec<Vec<Value>> {
    let order = "created_at DESC, post_id DESC";
    let window =
        format!("SELECT * FROM ({FEED_SELECT}) AS feed WHERE owner_id = {owner} ORDER BY {order} LIMIT {retain}");
    let sql = format!("SELECT * FROM ({window}) AS w WHERE {filter} ORDER BY {order} LIMIT {limit}");
    let types: BTreeMap<String, String> = [("owner_id", "integer"), ("post_id", "integer"), ("created_at", "integer")]
        .into_iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
    reference(client, &sql, &types).1
}

#[test]
fn feeds_top_k_and_documents_equal_postgres() {
    let retain = 4;
    let views = format!(
        "CREATE MATERIALIZED VIEW home_feed WITH (partition_by = 'owner_id', \
         order_by = 'created_at DESC, post_id DESC', fanout_limit = 2, retain = {retain}) AS {FEED_SELECT};\n{}",
        views_sql(SHAPE_VIEWS)
    );
    let project = PgProject::new("run_shapes", SHAPES_SCHEMA, &views);
    let mut client = project.client();
    let mut writer = Writer::new(&project.url, 7);
    let mut next_id = 0;
    // Part of the data is there before the snapshot.
    for _ in 0..40 {
        client.batch_execute(&shapes_statement(&mut writer, &mut next_id)).unwrap();
    }
    let denorm = Denorm::start(&project.config);
    client.batch_execute("SET synchronous_commit = on").unwrap();
    for round in 0..25 {
        let statements: Vec<String> =
            (0..1 + writer.below(6)).map(|_| shapes_statement(&mut writer, &mut next_id)).collect();
        client.batch_execute(&format!("BEGIN; {}; COMMIT;", statements.join("; "))).unwrap();
        // Read-your-writes: the first read waits for this commit.
        let (lsn, _) = current_lsn(&mut client);
        let (status, _, _) = get_at(&denorm, "/views/home_feed?owner_id=eq.0&limit=1", &lsn, "30s");
        assert_eq!(status, 200);
        for owner in 0..6 {
            let t = writer.below(40);
            let reads = [
                (format!("owner_id=eq.{owner}&limit=3"), "true".to_string(), 3),
                (
                    format!("owner_id=eq.{owner}&created_at=lt.{t}&order=created_at.desc,post_id.desc&limit=3"),
                    format!("created_at < {t}"),
                    3,
                ),
                (format!("owner_id=eq.{owner}"), "true".to_string(), retain),
            ];
            for (query, filter, limit) in reads {
                let want = feed_page(&mut client, owner, &filter, limit, retain);
                let (status, body) = denorm.get(&format!("/views/home_feed?{query}"));
                assert_eq!(status, 200, "{query}: {body}");
                let got: Vec<Vec<Value>> = body
                    .as_array()
                    .unwrap_or_else(|| panic!("{query}: not an array: {body}"))
                    .iter()
                    .map(|row| FEED_COLUMNS.iter().map(|c| datum(&row[*c])).collect())
                    .collect();
                assert_eq!(debug_rows(&got), debug_rows(&want), "round {round}, {query}: denorm vs PostgreSQL");
            }
        }
        assert_views_equal(&denorm, &mut client, SHAPE_VIEWS, &[]);
    }
    for (name, _) in SHAPE_VIEWS {
        let (_, rows) = denorm.get(&format!("/views/{name}"));
        assert!(!rows.as_array().unwrap().is_empty(), "the workload leaves rows in {name}");
    }
    let (_, documents) = denorm.get("/views/author_documents");
    assert!(documents[0]["posts"].is_array(), "documents are served as JSON: {documents}");
}
