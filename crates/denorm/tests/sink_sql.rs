//! Table sinks through the real binary: `denorm run` with `[[sink]]`
//! entries writing a SQLite file (the source database itself, or another)
//! and a PostgreSQL schema, read back with the `sqlite3` shell and `psql`.
//!
//! - random source transactions → each sink table equals the view (HTTP)
//!   equals the source's own query;
//! - kill -9 of denorm while it writes the sinks, restarted: nothing lost,
//!   nothing applied twice;
//! - a PostgreSQL restart under a PostgreSQL sink: the sink catches up;
//! - rows edited by hand in the sinks are found (`denorm_sink_drift_rows`)
//!   and repaired (`reconcile_every`, `repair = true`).
//!
//! Needs `DENORM_TEST_POSTGRES_URL` (scripts/postgres start) and the
//! `sqlite3` and `psql` shells.

mod common;
mod pg_project;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::shells::{self, pg_url};
use common::{committed_position, eventually, kill_three_times_under_a_writer, metric, Denorm, Project, SplitMix};
use denorm_types::Datum;
use pg_project::server::try_pg_ctl;
use rusqlite::Connection;

/// One test at a time touches the PostgreSQL server (one restarts it).
static SERVER: Mutex<()> = Mutex::new(());

const SCHEMA: &str = "
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, rating INTEGER NOT NULL);
INSERT INTO products VALUES (1, 'lamp', 'home'), (2, 'desk', NULL), (3, 'pen', 'office');
INSERT INTO reviews VALUES (1, 1, 5), (2, 1, 3), (3, 2, 4);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW product_stats WITH (index = 'review_count') AS
  SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, SUM(r.rating) AS rating_sum
  FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name;
CREATE MATERIALIZED VIEW ratings AS SELECT product_id, rating FROM reviews;
CREATE MATERIALIZED VIEW categories AS SELECT category, COUNT(*) AS products FROM products GROUP BY category;
";

/// Per view: the sink query, the source query (same columns, the multiset's
/// copies counted) and the view's columns over HTTP.
const CHECKS: &[(&str, &str, &str)] = &[
    (
        "product_stats",
        "SELECT product_id, name, review_count, rating_sum FROM {t}",
        "SELECT p.id, p.name, COUNT(r.id), SUM(r.rating) FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name",
    ),
    (
        "ratings",
        "SELECT product_id, rating, denorm_count FROM {t}",
        "SELECT product_id, rating, COUNT(*) FROM reviews GROUP BY product_id, rating",
    ),
    ("categories", "SELECT category, products FROM {t}", "SELECT category, COUNT(*) FROM products GROUP BY category"),
];

/// A source project whose config has `sinks` appended.
fn project(sinks: &str) -> Project {
    let project = Project::new(SCHEMA, VIEWS);
    let mut config = std::fs::read_to_string(&project.config).unwrap();
    config.push_str(sinks);
    std::fs::write(&project.config, config).unwrap();
    project
}

fn sqlite_sink(name: &str, path: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nname = \"{name}\"\nkind = \"sqlite\"\npath = \"{path}\"\nviews = [\"product_stats\", \"ratings\", \"categories\"]\n{extra}"
    )
}

fn pg_sink(schema: &str, extra: &str) -> String {
    format!(
        "[[sink]]\nname = \"pg\"\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\nviews = [\"product_stats\", \"ratings\", \"categories\"]\n{extra}",
        pg_url()
    )
}

fn unique_schema(test: &str) -> String {
    format!("sink_{test}_{}", std::process::id())
}

/// Sorted `a|b|c` lines, NULL as empty: what both shells print.
fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

/// A command's lines, sorted.
fn shell(command: &mut Command) -> Result<Vec<String>, String> {
    shells::shell(command).map(sorted)
}

/// Rows of `sql` on a SQLite file through the `sqlite3` shell, sorted.
fn sqlite3(db: &Path, sql: &str) -> Result<Vec<String>, String> {
    shells::sqlite3(db, sql).map(sorted)
}

/// Rows of `sql` through `psql`, sorted.
fn psql(sql: &str) -> Result<Vec<String>, String> {
    shells::psql(sql).map(sorted)
}

/// The rows of the source's own query, in the shells' text.
fn source_rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut statement = conn.prepare(sql).unwrap();
    let n = statement.column_count();
    let rows = statement
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    sorted(rows)
}

/// The view's rows over HTTP in the same text (multiset copies counted).
fn http_rows(denorm: &Denorm, view: &str) -> Vec<String> {
    let (_, rows) = denorm.get(&format!("/views/{view}"));
    let mut lines: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .values()
                .map(|v| match common::datum(v) {
                    Datum::Null => String::new(),
                    Datum::Int(i) => i.to_string(),
                    Datum::Text(t) => t.to_string(),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    if view == "ratings" {
        let mut counted: std::collections::BTreeMap<String, u64> = Default::default();
        for line in lines.drain(..) {
            *counted.entry(line).or_default() += 1;
        }
        lines = counted.into_iter().map(|(line, n)| format!("{line}|{n}")).collect();
    }
    sorted(lines)
}

/// Waits until every sink in `sinks` ("sqlite:<path>" or "pg:<schema>")
/// equals the view and the source's query, for every view.
fn assert_converged(denorm: &Denorm, conn: &Connection, sinks: &[String]) {
    denorm.wait_for_position(committed_position(conn));
    eventually(Duration::from_millis(100), || -> Result<(), String> {
        for (view, sink_sql, source_sql) in CHECKS {
            let expected = source_rows(conn, source_sql);
            let served = http_rows(denorm, view);
            if served != expected {
                return Err(format!("view {view} over HTTP {served:?} != source {expected:?}"));
            }
            for sink in sinks {
                let rows = match sink.split_once(':') {
                    Some(("sqlite", path)) => sqlite3(Path::new(path), &sink_sql.replace("{t}", view))?,
                    Some(("pg", schema)) => psql(&sink_sql.replace("{t}", &format!("{schema}.{view}")))?,
                    _ => unreachable!(),
                };
                if rows != expected {
                    return Err(format!("sink {sink} view {view}: {rows:?} != source {expected:?}"));
                }
            }
        }
        Ok(())
    });
}

/// One random transaction over products and reviews.
fn random_transaction(conn: &mut Connection, rng: &mut SplitMix) {
    let tx = conn.transaction().unwrap();
    for _ in 0..1 + rng.below(4) {
        let product = 1 + rng.below(8) as i64;
        let review = 1 + rng.below(40) as i64;
        let category = ["home", "office", "garden"].get(rng.below(4) as usize).copied();
        match rng.below(6) {
            0 => tx.execute(
                "INSERT OR REPLACE INTO products VALUES (?1, ?2, ?3)",
                rusqlite::params![product, format!("p{}", rng.below(5)), category],
            ),
            1 => tx.execute("DELETE FROM products WHERE id = ?1", [product]),
            2 | 3 => tx.execute(
                "INSERT OR REPLACE INTO reviews VALUES (?1, ?2, ?3)",
                rusqlite::params![review, product, 1 + rng.below(5) as i64],
            ),
            4 => tx.execute("UPDATE reviews SET rating = rating % 5 + 1 WHERE id = ?1", [review]),
            _ => tx.execute("DELETE FROM reviews WHERE id = ?1", [review]),
        }
        .unwrap();
    }
    tx.commit().unwrap();
}

fn drop_schema(schema: &str) {
    let _ = psql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
}

/// Random source transactions in bursts: the SQLite sink in the source
/// database itself, a SQLite sink in its own file and a PostgreSQL sink all
/// equal the views and the source's queries after each burst; the source
/// database's sink tables are never captured (no view reads them, and
/// denorm's triggers are only on the tables the views read).
#[test]
fn sinks_equal_the_views_and_the_source_after_random_transactions() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("differential");
    drop_schema(&schema);
    let project = project(&format!(
        "{}{}{}",
        sqlite_sink("same_db", "app.db", ""),
        sqlite_sink("own_file", "read_models.db", ""),
        pg_sink(&schema, "")
    ));
    let denorm = Denorm::start(&project.config);
    let mut conn = project.connect();
    let sinks = vec![
        format!("sqlite:{}", project.db.display()),
        format!("sqlite:{}", project.dir.path().join("read_models.db").display()),
        format!("pg:{schema}"),
    ];
    assert_converged(&denorm, &conn, &sinks);
    let mut rng = SplitMix(15);
    let total = common::transactions(2000);
    for burst in 0..3 {
        for _ in 0..total / 3 {
            random_transaction(&mut conn, &mut rng);
        }
        assert_converged(&denorm, &conn, &sinks);
        eprintln!("burst {burst} converged");
    }
    // The sink tables in the source database carry no capture triggers.
    let triggers = sqlite3(&project.db, "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'").unwrap();
    assert!(triggers.iter().all(|t| t == "products" || t == "reviews"), "{triggers:?}");
    // The index of WITH (index = …) exists in both kinds of sink.
    assert_eq!(
        sqlite3(&project.db, "SELECT name FROM pragma_index_list('product_stats') WHERE origin = 'c'").unwrap(),
        ["product_stats__i0"]
    );
    let indexes = psql(&format!(
        "SELECT indexname FROM pg_indexes WHERE schemaname = '{schema}' AND tablename = 'product_stats'"
    ))
    .unwrap();
    assert_eq!(indexes, ["product_stats_i0", "product_stats_key"]);
    // Types: numbers stay numbers in PostgreSQL.
    let types = psql(&format!(
        "SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = 'product_stats'"
    ))
    .unwrap();
    assert_eq!(types, ["name text", "product_id bigint", "rating_sum bigint", "review_count bigint"]);
    let (_, health) = denorm.get("/health");
    assert_eq!(health["sinks"].as_array().map(Vec::len), Some(3), "{health}");
    assert!(metric(&denorm, "denorm_sink_position{sink=\"pg\",view=\"ratings\"}").is_some_and(|p| p > 0.0));
    drop(denorm);
    drop_schema(&schema);
}

/// A clean restart (SIGTERM, then `denorm run` again, resuming from the
/// state directory) finds every sink at the engine's position: the queue
/// was drained at shutdown and nothing is rebuilt.
#[test]
fn a_clean_restart_rewrites_nothing() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("clean");
    drop_schema(&schema);
    let project = project(&format!("{}{}", sqlite_sink("own_file", "read_models.db", ""), pg_sink(&schema, "")));
    let sinks = vec![format!("sqlite:{}", project.dir.path().join("read_models.db").display()), format!("pg:{schema}")];
    let mut conn = project.connect();
    let mut rng = SplitMix(5);
    let denorm = Denorm::start(&project.config);
    for _ in 0..50 {
        random_transaction(&mut conn, &mut rng);
    }
    assert_converged(&denorm, &conn, &sinks);
    assert_eq!(denorm.terminate(), Some(0));
    let denorm = Denorm::start(&project.config);
    for _ in 0..20 {
        random_transaction(&mut conn, &mut rng);
    }
    assert_converged(&denorm, &conn, &sinks);
    let stopped = Command::new("kill").arg("-TERM").arg(denorm.child.id().to_string()).status().unwrap();
    assert!(stopped.success());
    let (code, log) = denorm.exit();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("resumed from the state directory"), "{log}");
    assert!(!log.contains("sink view rebuilt"), "a sink was rebuilt after a clean restart:\n{log}");
    drop_schema(&schema);
}

/// kill -9 of denorm while a writer commits and the sinks are written,
/// three times: after each restart (from the state directory) the sinks
/// converge to the source exactly — a batch lost or applied twice would
/// show in the counts.
#[test]
fn kill_9_during_sink_writes_loses_and_duplicates_nothing() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("kill");
    drop_schema(&schema);
    let project = project(&format!("{}{}", sqlite_sink("own_file", "read_models.db", ""), pg_sink(&schema, "")));
    let sinks = vec![format!("sqlite:{}", project.dir.path().join("read_models.db").display()), format!("pg:{schema}")];
    let written = kill_three_times_under_a_writer(&project, random_transaction);
    assert!(written > 10, "the writer committed {written} transactions");
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    assert_converged(&denorm, &conn, &sinks);
    drop(denorm);
    drop_schema(&schema);
}

/// The PostgreSQL server of a PostgreSQL sink restarts (immediate mode)
/// while the SQLite source is written: the sink's errors are counted and
/// retried, `/health` shows it, and it catches up with no loss.
#[test]
fn a_postgres_restart_under_a_postgres_sink_is_caught_up() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("restart");
    drop_schema(&schema);
    let project = project(&pg_sink(&schema, ""));
    let denorm = Denorm::start(&project.config);
    let mut conn = project.connect();
    assert_converged(&denorm, &conn, &[format!("pg:{schema}")]);
    let mut rng = SplitMix(21);
    assert!(try_pg_ctl(&["stop", "-m", "immediate"]), "pg_ctl stop");
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng);
    }
    eventually(Duration::from_millis(50), || match metric(&denorm, "denorm_sink_errors_total{sink=\"pg\"}") {
        Some(n) if n >= 1.0 => Ok(()),
        other => Err(format!("no sink error counted yet: {other:?}")),
    });
    let (_, health) = denorm.get("/health");
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(try_pg_ctl(&["start"]), "pg_ctl start");
    for _ in 0..30 {
        random_transaction(&mut conn, &mut rng);
    }
    assert_converged(&denorm, &conn, &[format!("pg:{schema}")]);
    eventually(Duration::from_millis(50), || {
        let (_, health) = denorm.get("/health");
        if health["status"] == "ok" {
            Ok(())
        } else {
            Err(format!("{health}"))
        }
    });
    drop(denorm);
    drop_schema(&schema);
}

/// Rows edited by hand in a SQLite sink (compared by a sample of random
/// keys, `reconcile_sample`) and a PostgreSQL sink (every row compared) are
/// found by the periodic reconcile (`denorm_sink_drift_rows`) and repaired.
#[test]
fn rows_edited_by_hand_are_found_and_repaired() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("drift");
    drop_schema(&schema);
    let every = "reconcile_every = \"300ms\"\nrepair = true\n";
    let sampled = format!("{every}reconcile_sample = 1000\n");
    let project =
        project(&format!("{}{}", sqlite_sink("own_file", "read_models.db", &sampled), pg_sink(&schema, every)));
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    let read_models = project.dir.path().join("read_models.db");
    let sinks = vec![format!("sqlite:{}", read_models.display()), format!("pg:{schema}")];
    assert_converged(&denorm, &conn, &sinks);
    sqlite3(
        &read_models,
        "UPDATE product_stats SET review_count = 999 WHERE product_id = 1; DELETE FROM categories; \
         UPDATE ratings SET denorm_count = denorm_count + 1 WHERE rowid IN (SELECT rowid FROM ratings LIMIT 1)",
    )
    .unwrap();
    psql(&format!(
        "UPDATE {schema}.product_stats SET name = 'edited' WHERE product_id = 2; INSERT INTO {schema}.ratings VALUES (7, 7, 1); \
         DELETE FROM {schema}.categories"
    ))
    .unwrap();
    let edited = [
        ("own_file", "product_stats"),
        ("own_file", "categories"),
        ("own_file", "ratings"),
        ("pg", "product_stats"),
        ("pg", "ratings"),
        ("pg", "categories"),
    ];
    for (sink, view) in edited {
        eventually(Duration::from_millis(50), || {
            match metric(&denorm, &format!("denorm_sink_drift_rows_total{{sink=\"{sink}\",view=\"{view}\"}}")) {
                Some(n) if n >= 1.0 => Ok(()),
                other => Err(format!("no drift counted for {sink}/{view}: {other:?}")),
            }
        });
    }
    assert_converged(&denorm, &conn, &sinks);
    drop(denorm);
    drop_schema(&schema);
}

/// A PostgreSQL source written to a PostgreSQL sink: numeric stays numeric
/// (scale kept), timestamps stay timestamps, and the sink's rows, printed
/// by psql, equal the source query's rows printed by psql.
#[test]
fn a_postgres_source_keeps_its_types_in_a_postgres_sink() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let schema = unique_schema("types");
    drop_schema(&schema);
    let source = pg_project::PgProject::new(
        "sink_types",
        "CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, amount numeric(12,2), placed_at timestamp, paid_at timestamptz);
         ALTER TABLE orders REPLICA IDENTITY FULL;
         INSERT INTO orders VALUES (1, 'ann', 10.50, '2024-05-01 10:00:00', '2024-05-01 10:05:00+00'), (2, 'bob', NULL, NULL, NULL);",
        "CREATE MATERIALIZED VIEW customer_totals AS
           SELECT customer, SUM(amount) AS total, MAX(placed_at) AS last_placed, MAX(paid_at) AS last_paid, COUNT(*) AS orders
           FROM orders GROUP BY customer;",
    );
    let mut config = std::fs::read_to_string(&source.config).unwrap();
    config.push_str(&format!(
        "[[sink]]\nkind = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\nviews = [\"customer_totals\"]\nreconcile_every = \"200ms\"\n",
        pg_url()
    ));
    std::fs::write(&source.config, config).unwrap();
    let denorm = Denorm::start(&source.config);
    let mut client = source.client();
    let mut rng = SplitMix(77);
    for i in 3..60 {
        let customer = ["ann", "bob", "cy"][rng.below(3) as usize];
        let cents = rng.below(100_000);
        let sql = match rng.below(4) {
            0 | 1 => format!(
                "INSERT INTO orders VALUES ({i}, '{customer}', {}.{:02}, '2024-06-{:02} 08:30:00.25', '2024-06-{:02} 09:00:00+02')",
                cents / 100,
                cents % 100,
                1 + rng.below(28),
                1 + rng.below(28)
            ),
            2 => format!("UPDATE orders SET amount = amount + 0.01 WHERE id = {}", 1 + rng.below(i)),
            _ => format!("DELETE FROM orders WHERE id = {}", 1 + rng.below(i)),
        };
        client.batch_execute(&sql).unwrap();
    }
    let source_sql =
        "SELECT customer, SUM(amount), MAX(placed_at), MAX(paid_at), COUNT(*) FROM orders GROUP BY customer";
    let source_rows =
        || shell(Command::new("psql").args(["-X", "-q", "-At", "-F", "|", "-d", &source.url, "-c", source_sql]));
    eventually(Duration::from_millis(100), || -> Result<(), String> {
        let expected = source_rows()?;
        let sunk =
            psql(&format!("SELECT customer, total, last_placed, last_paid, orders FROM {schema}.customer_totals"))?;
        if sunk == expected {
            Ok(())
        } else {
            Err(format!("sink {sunk:?} != source {expected:?}"))
        }
    });
    let types = psql(&format!(
        "SELECT column_name || ' ' || data_type FROM information_schema.columns WHERE table_schema = '{schema}' AND table_name = 'customer_totals'"
    ))
    .unwrap();
    assert_eq!(
        types,
        [
            "customer text",
            "last_paid timestamp with time zone",
            "last_placed timestamp without time zone",
            "orders bigint",
            "total numeric"
        ]
    );
    // The periodic reconcile compares these types without finding drift.
    eventually(Duration::from_millis(50), || {
        match metric(&denorm, "denorm_sink_drift_rows_total{sink=\"postgres\",view=\"customer_totals\"}") {
            Some(0.0) => Ok(()),
            other => Err(format!("drift metric: {other:?}")),
        }
    });
    drop(denorm);
    drop_schema(&schema);
}

/// `denorm reconcile --sink NAME` against the running instance: a row
/// edited by hand in a SQLite sink (no periodic reconcile) is reported
/// (exit 1), `--repair` rewrites it (exit 0), and the sink equals the views
/// and the source again.
#[test]
fn denorm_reconcile_sink_reports_and_repairs() {
    let project = project(&sqlite_sink("own_file", "read_models.db", ""));
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    let read_models = project.dir.path().join("read_models.db");
    let sinks = vec![format!("sqlite:{}", read_models.display())];
    assert_converged(&denorm, &conn, &sinks);
    // The CLI finds the instance at [server] listen: pin the chosen port.
    let address = denorm.base.trim_start_matches("http://").to_string();
    let config = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &address);
    std::fs::write(&project.config, config).unwrap();
    let reconcile = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
            .args(["reconcile", "--sink", "own_file"])
            .args(args)
            .arg("--config")
            .arg(&project.config)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    };

    let (code, out) = reconcile(&[]);
    assert_eq!(code, Some(0), "a clean sink: {out}");
    assert!(out.contains("0 difference(s)"), "{out}");

    sqlite3(&read_models, "UPDATE product_stats SET review_count = 999 WHERE product_id = 1").unwrap();
    let (code, out) = reconcile(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("sink own_file, view product_stats: 0 missing, 0 extra, 1 different"), "{out}");
    let (code, out) = reconcile(&["--repair"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("(repaired)"), "{out}");
    assert_converged(&denorm, &conn, &sinks);

    let (code, out) = reconcile(&["--repair", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["reconcile", "--sink", "nope", "--config"])
        .arg(&project.config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("no sink named \"nope\""), "{stderr}");
}
