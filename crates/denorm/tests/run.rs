//! `denorm run` end to end: the real binary on a temporary SQLite file,
//! written by this test process (a separate process and connection, as an
//! application would), every view compared over HTTP with SQLite's own
//! answer to the view's SELECT — through the snapshot, random transactions,
//! a graceful restart, kill -9 with writes while down, writes by the stock
//! `sqlite3` shell, and schema changes.

mod common;

use common::{committed_position, page_rows, Denorm, Project};
use denorm_testkit::{apply_workload, same_rows, Op, SqliteReference, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar TEXT, karma INTEGER);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT, score INTEGER, created_at INTEGER);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, user_id INTEGER, rating INTEGER, helpful REAL);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
CREATE TABLE tags (post_id INTEGER, tag TEXT);
CREATE TABLE ledger (id INTEGER PRIMARY KEY, acct INTEGER, amount REAL, qty INTEGER, note TEXT, raw);
";

/// Every construct of the differential suite, plus a table without a
/// primary key (rows form a multiset; captured by rowid-less triggers).
fn views() -> String {
    let differential = include_str!("../../denorm-testkit/tests/differential.sql");
    format!(
        "{differential}\n\
         CREATE MATERIALIZED VIEW tag_counts AS SELECT tag, COUNT(*) AS n, COUNT(DISTINCT post_id) AS posts FROM tags GROUP BY tag;\n\
         CREATE MATERIALIZED VIEW tagged_titles AS SELECT t.tag, p.title FROM tags t JOIN posts p ON p.id = t.post_id;\n"
    )
}

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Datum::Null), 5 => s].boxed()
}
fn int(lo: i64, hi: i64) -> BoxedStrategy<Value> {
    (lo..hi).prop_map(Datum::Int).boxed()
}
fn text(choices: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(choices).prop_map(Value::from).boxed()
}
fn quarter() -> BoxedStrategy<Value> {
    (-8i32..12).prop_map(|q| Datum::Float(f64::from(q) * 0.25)).boxed()
}

fn tables() -> Vec<TableSpec> {
    let names = &["ann", "Bob", "cy", "dee", "it's", "a,b"];
    let titles = &["alpha", "Beta", "gamma", "apple", "DATA", "new\nline"];
    vec![
        TableSpec {
            name: "users",
            ids: 8,
            columns: vec![text(names), nullable(text(&["a.png", "b.png"])), nullable(int(-2, 6))],
        },
        TableSpec {
            name: "posts",
            ids: 12,
            columns: vec![nullable(int(0, 9)), nullable(text(titles)), nullable(int(-3, 7)), nullable(int(0, 40))],
        },
        TableSpec {
            name: "products",
            ids: 6,
            columns: vec![nullable(text(&["mug", "pen", "Cup"])), nullable(text(&["a", "b"])), nullable(quarter())],
        },
        TableSpec {
            name: "reviews",
            ids: 14,
            columns: vec![nullable(int(0, 7)), nullable(int(0, 9)), nullable(int(1, 6)), nullable(quarter())],
        },
        TableSpec { name: "follows", ids: 12, columns: vec![int(0, 8), int(0, 8)] },
        // Every storage class in typed and untyped columns (no BLOBs: the
        // HTTP API serves them as "\\x…" strings, see storage_classes.rs).
        TableSpec {
            name: "ledger",
            ids: 10,
            columns: vec![
                nullable(int(0, 4)),
                nullable(mixed(&[0.1, 0.2, 1e16, -1e16], &["abc", "7"])),
                nullable(mixed(&[2.5, 1.0], &["abc", "12x", "7"])),
                nullable(text(&["12", "abc"])),
                nullable(mixed(&[1.0, 2.5], &["1", "abc"])),
            ],
        },
    ]
}

/// Small integers, the given doubles and texts.
fn mixed(doubles: &'static [f64], texts: &'static [&'static str]) -> BoxedStrategy<Value> {
    prop_oneof![int(-3, 4), proptest::sample::select(doubles).prop_map(Datum::Float), text(texts),].boxed()
}

/// Deterministic random transactions, written by this process.
struct Writer {
    reference: SqliteReference,
    specs: Vec<TableSpec>,
    runner: TestRunner,
}

impl Writer {
    fn new(project: &Project) -> Writer {
        let config = Config { rng_algorithm: RngAlgorithm::ChaCha, ..Config::default() };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]);
        Writer {
            reference: SqliteReference { connection: project.connect() },
            specs: tables(),
            runner: TestRunner::new_with_rng(config, rng),
        }
    }

    /// One random transaction of 1..12 writes (plus some tag writes, which
    /// the id-keyed workload generator does not cover).
    fn transaction(&mut self) {
        let ops: Vec<Op> =
            proptest::collection::vec(Op::strategy(&self.specs), 1..12).new_tree(&mut self.runner).unwrap().current();
        apply_workload(&self.reference, &self.specs, &ops).unwrap();
        let n: i64 = (0i64..4).new_tree(&mut self.runner).unwrap().current();
        let c = &self.reference.connection;
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        for i in 0..n {
            let post = (i * 7 + n) % 12;
            let tag = ["x", "y", "z"][(i % 3) as usize];
            if i % 3 == 2 {
                c.execute("DELETE FROM tags WHERE rowid = (SELECT min(rowid) FROM tags)", []).unwrap();
            } else {
                c.execute("INSERT INTO tags (post_id, tag) VALUES (?1, ?2)", rusqlite::params![post, tag]).unwrap();
            }
        }
        c.execute_batch("COMMIT").unwrap();
    }

    fn transactions(&mut self, n: usize) {
        for _ in 0..n {
            self.transaction();
        }
    }
}

/// Every view over HTTP equals SQLite's answer to its SELECT, once the views
/// reflect everything committed.
fn assert_views_equal_sqlite(denorm: &Denorm, db: &Connection, except: &[&str]) {
    denorm.wait_for_position(committed_position(db));
    let catalog = denorm_source::sqlite::read_catalog(db).unwrap();
    let (defs, _) = denorm_sql::plan_each(&views(), &catalog, denorm_types::Dialect::Sqlite);
    let (_, listed) = denorm.get("/views");
    let listed = listed.as_array().unwrap().clone();
    assert!(listed.len() >= 20, "{listed:?}");
    for view in &listed {
        let name = view["name"].as_str().unwrap();
        if except.contains(&name) {
            continue;
        }
        assert_eq!(view["status"], "ok", "{view}");
        let columns: Vec<String> =
            view["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let def = defs.iter().find(|d| d.name == name).unwrap();
        let reference = SqliteReference { connection: Connection::open(db.path().unwrap()).unwrap() };
        let (names, mut want) = reference.query(denorm_testkit::reference_sql(name, &def.select_sql)).unwrap();
        assert_eq!(columns, names, "columns of {name}");
        // JSON columns (embedded documents) compare parsed.
        let json: Vec<usize> = (0..columns.len()).filter(|&i| view["column_types"][&columns[i]] == "json").collect();
        let mut got = page_rows(denorm, name, "", &columns, &json);
        denorm_testkit::normalize_json(&mut got, &json);
        denorm_testkit::normalize_json(&mut want, &json);
        // Over HTTP a JSON document `null` and SQL NULL are both `null`.
        for row in &mut want {
            for &i in &json {
                if matches!(&row[i], Datum::Text(t) if t == "null") {
                    row[i] = Datum::Null;
                }
            }
        }
        if let Err(m) = same_rows(got, want) {
            panic!("view {name} differs from SQLite: {m}");
        }
    }
}

#[test]
fn views_equal_sqlite_through_snapshot_writes_restart_and_kill() {
    let project = Project::new(SCHEMA, &views());
    let mut writer = Writer::new(&project);
    let db = project.connect();
    // Rows present before denorm ever ran reach the views by the snapshot.
    writer.transactions(30);

    let denorm = Denorm::start(&project.config);
    assert_views_equal_sqlite(&denorm, &db, &[]);
    for _ in 0..6 {
        writer.transactions(5);
        assert_views_equal_sqlite(&denorm, &db, &[]);
    }

    // Graceful stop: exit 0; writes while down are picked up on start.
    assert_eq!(denorm.terminate(), Some(0));
    writer.transactions(10);
    let denorm = Denorm::start(&project.config);
    assert_views_equal_sqlite(&denorm, &db, &[]);

    // kill -9 in the middle of a stream of writes, then more writes while down.
    for _ in 0..5 {
        writer.transaction();
    }
    denorm.kill();
    writer.transactions(10);
    let denorm = Denorm::start(&project.config);
    assert_views_equal_sqlite(&denorm, &db, &[]);
    writer.transactions(10);
    assert_views_equal_sqlite(&denorm, &db, &[]);
}

/// Any process writing with a stock SQLite is captured: here the `sqlite3`
/// shell that Debian ships (the test script installs it).
#[test]
fn writes_by_the_sqlite3_shell_are_captured() {
    let project = Project::new(SCHEMA, &views());
    let db = project.connect();
    let denorm = Denorm::start(&project.config);
    let sql = "BEGIN;\
        INSERT INTO users VALUES (1, 'ann', NULL, 3), (2, 'bob', 'b.png', NULL);\
        INSERT INTO posts VALUES (10, 1, 'hello', 5, 1), (11, 2, 'it''s', NULL, 2);\
        INSERT INTO tags VALUES (10, 'x'), (10, 'x'), (11, NULL);\
        COMMIT;\
        UPDATE users SET name = 'Ann' WHERE id = 1;\
        UPDATE posts SET id = 12 WHERE id = 11;\
        DELETE FROM tags WHERE rowid = 1;";
    let status = std::process::Command::new("sqlite3")
        .arg(&project.db)
        .arg(sql)
        .status()
        .expect("the sqlite3 shell is installed (apt-get install -y sqlite3; scripts/test does this)");
    assert!(status.success());
    assert_views_equal_sqlite(&denorm, &db, &[]);
    let (_, cards) = denorm.get("/views/post_cards?post_id=eq.10");
    assert_eq!(cards[0]["author_name"], "Ann", "{cards}");
}

/// A schema change: adding a column breaks nothing; renaming a column a view
/// reads fails that view (with the reason) while the others go on.
#[test]
fn schema_changes_fail_only_the_views_they_break() {
    let project = Project::new(SCHEMA, &views());
    let mut writer = Writer::new(&project);
    let db = project.connect();
    writer.transactions(10);
    let mut denorm = Denorm::start(&project.config);
    assert_views_equal_sqlite(&denorm, &db, &[]);

    db.execute_batch("ALTER TABLE tags ADD COLUMN note TEXT").unwrap();
    writer.transactions(5);
    denorm.wait_for_log("re-planning");
    assert_views_equal_sqlite(&denorm, &db, &[]);

    db.execute_batch("ALTER TABLE products RENAME COLUMN price TO list_price").unwrap();
    // The views that must fail are exactly those that no longer plan.
    let catalog = denorm_source::sqlite::read_catalog(&db).unwrap();
    let (_, errors) = denorm_sql::plan_each(&views(), &catalog, denorm_types::Dialect::Sqlite);
    let mut broken: Vec<String> = errors.iter().map(|e| e.view.clone().unwrap()).collect();
    // A view reports each of its independent errors: one name per view.
    broken.sort();
    broken.dedup();
    assert!(broken.len() >= 2 && broken.contains(&"catalog_totals".to_string()), "{broken:?}");
    denorm.wait_for_log("view failed after a source schema change");
    // The failures are published with the next batch boundary (the re-snapshot).
    let views = denorm.wait_for(|views| views.as_array().unwrap().iter().any(|v| v["status"] == "failed"));
    let views = views.as_array().unwrap();
    let mut failed: Vec<String> =
        views.iter().filter(|v| v["status"] == "failed").map(|v| v["name"].as_str().unwrap().to_string()).collect();
    failed.sort();
    assert_eq!(failed, broken, "{views:?}");
    let catalog_totals = views.iter().find(|v| v["name"] == "catalog_totals").unwrap();
    assert!(catalog_totals["error"].as_str().unwrap().contains("price"), "{catalog_totals}");
    let (status, body) = denorm.get("/views/catalog_totals");
    assert_eq!(status, 503, "{body}");
    writer.transactions(5);
    let broken: Vec<&str> = broken.iter().map(String::as_str).collect();
    assert_views_equal_sqlite(&denorm, &db, &broken);
}
