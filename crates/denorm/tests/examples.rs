//! Every example under `examples/` end to end: its directory copied to a
//! temporary one, the real binary started on it (the config's `[source]
//! init` creates `app.db` from `schema.sql`), every view compared over HTTP
//! with SQLite's own answer to the view's SELECT, then the example's
//! `writer.py` run as a separate process (a Python application on its own
//! connection, as in production), and every view compared again once it
//! reflects everything the writer committed.
//!
//! JSON columns (`column_types` says `json`: the API embeds them as real
//! JSON, SQLite returns text) compare as parsed JSON. A view whose SELECT
//! SQLite cannot run (`LIMIT` inside a JSON aggregate is a denorm extension)
//! is compared with the equivalent standard SQL in [`REFERENCE_SQL`]. A feed
//! view (`partition_by`) has no full read: it is compared page by page, for
//! every user, with SQLite's `WHERE owner = X ORDER BY … LIMIT 20 OFFSET …`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{committed_position, page_rows, Denorm};
use denorm_testkit::{normalize_json, same_rows, SqliteReference};
use rusqlite::Connection;
use serde_json::Value as Json;

/// How many transactions the writer commits, and its seed.
const TRANSACTIONS: &str = "200";
const SEED: &str = "1";

/// (example, view, SQL): what SQLite runs instead of a view's SELECT when
/// that uses a denorm extension. `json_group_array(… ORDER BY o LIMIT 3)` is
/// the same aggregate over the rows numbered 1-3 by `ROW_NUMBER() OVER
/// (PARTITION BY group ORDER BY o)`: `FILTER (WHERE rn <= 3)`.
const REFERENCE_SQL: &[(&str, &str, &str)] = &[(
    "listing-documents",
    "product_pages",
    "SELECT product_id, name, price_cents, seller_id, seller_name,
            COUNT(rid) AS review_count,
            AVG(rating) AS avg_rating,
            json_group_array(
              CASE WHEN rid IS NULL THEN NULL
                   ELSE json_object('id', rid, 'author', author, 'rating', rating, 'title', title,
                                    'created_at', created_at) END
              ORDER BY created_at DESC, rid DESC) FILTER (WHERE rn <= 3) AS newest_reviews,
            json_object('1', SUM(CASE WHEN rating = 1 THEN 1 ELSE 0 END),
                        '2', SUM(CASE WHEN rating = 2 THEN 1 ELSE 0 END),
                        '3', SUM(CASE WHEN rating = 3 THEN 1 ELSE 0 END),
                        '4', SUM(CASE WHEN rating = 4 THEN 1 ELSE 0 END),
                        '5', SUM(CASE WHEN rating = 5 THEN 1 ELSE 0 END)) AS rating_histogram
     FROM (SELECT p.id AS product_id, p.name, p.price_cents, s.id AS seller_id, s.name AS seller_name,
                  r.id AS rid, r.author, r.rating, r.title, r.created_at,
                  ROW_NUMBER() OVER (PARTITION BY p.id ORDER BY r.created_at DESC, r.id DESC) AS rn
           FROM products p
           JOIN sellers s ON s.id = p.seller_id
           LEFT JOIN reviews r ON r.product_id = p.id)
     GROUP BY product_id, name, price_cents, seller_id, seller_name",
)];

/// How many rows a feed page holds, and how many pages of each partition
/// are compared.
const PAGE: usize = 20;
const PAGES: usize = 2;

/// An example copied to a temporary directory, with a config beside it
/// that listens on a free port.
struct Example {
    name: &'static str,
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
    db: PathBuf,
    views_sql: String,
}

impl Example {
    fn copy(name: &'static str) -> Example {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(name);
        std::fs::create_dir(&root).unwrap();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display())) {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            // A database left by trying the example by hand is not copied:
            // the test starts from schema.sql, as a first run does.
            if path.is_file() && !file.contains(".db") {
                std::fs::copy(&path, root.join(&file)).unwrap();
                files.push(file);
            }
        }
        // The driver every writer.py imports from the examples directory.
        let driver = source.parent().unwrap().join("example_writer.py");
        std::fs::copy(&driver, dir.path().join("example_writer.py")).unwrap();
        for required in ["denorm.toml", "schema.sql", "views.sql", "writer.py", "README.md"] {
            assert!(files.iter().any(|f| f == required), "examples/{name} has no {required}");
        }

        let text = std::fs::read_to_string(root.join("denorm.toml")).unwrap();
        let mut config: toml::Table = text.parse().unwrap_or_else(|e| panic!("examples/{name}/denorm.toml: {e}"));
        let source_table = config["source"].as_table().unwrap();
        assert_eq!(source_table["url"].as_str(), Some("sqlite://app.db"), "examples/{name}: url");
        assert_eq!(source_table["init"].as_str(), Some("schema.sql"), "examples/{name}: init");
        let server = config.entry("server").or_insert_with(|| toml::Value::Table(toml::Table::new()));
        server.as_table_mut().unwrap().insert("listen".into(), "127.0.0.1:0".into());
        let views_sql = config["views"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| std::fs::read_to_string(root.join(file.as_str().unwrap())).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let config_path = root.join("denorm.test.toml");
        std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
        Example { name, config: config_path, db: root.join("app.db"), root, views_sql, _dir: dir }
    }

    fn connect(&self) -> Connection {
        let c = Connection::open(&self.db).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
        c
    }

    /// Runs `python3 writer.py app.db --transactions … --seed …` in the
    /// example's directory, as a separate process.
    fn run_writer(&self) {
        let output = Command::new("python3")
            .arg("writer.py")
            .arg(&self.db)
            .args(["--transactions", TRANSACTIONS, "--seed", SEED])
            .current_dir(&self.root)
            .output()
            .unwrap_or_else(|e| {
                panic!("examples/{}: cannot run `python3` ({e}); python3 is required by the example tests", self.name)
            });
        assert!(
            output.status.success(),
            "examples/{}: python3 writer.py failed ({}):\n{}{}",
            self.name,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!("[writer] {}", String::from_utf8_lossy(&output.stdout).trim());
    }
}

/// Every view over HTTP equals SQLite's answer to its SELECT once the views
/// refreshed on change reflect everything committed. Scheduled views
/// (`refresh = '…'`) are compared only when `scheduled` is set; returns how
/// many views were compared.
fn assert_views_equal_sqlite(example: &Example, denorm: &Denorm, db: &Connection, scheduled: bool) -> usize {
    denorm.wait_for_position(committed_position(db));
    let catalog = denorm_source::sqlite::read_catalog(db).unwrap();
    let (defs, errors) = denorm_sql::plan_each(&example.views_sql, &catalog, denorm_types::Dialect::Sqlite);
    assert!(errors.is_empty(), "examples/{}: {errors:?}", example.name);
    let (status, listed) = denorm.get("/views");
    assert_eq!(status, 200, "{listed}");
    let listed = listed.as_array().unwrap().clone();
    let mut names: Vec<&str> = listed.iter().map(|v| v["name"].as_str().unwrap()).collect();
    let mut planned: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    planned.sort_unstable();
    assert_eq!(names, planned, "examples/{}: served views", example.name);
    let reference = SqliteReference { connection: Connection::open(&example.db).unwrap() };
    let mut compared = 0;
    for view in &listed {
        let name = view["name"].as_str().unwrap();
        assert_eq!(view["status"], "ok", "examples/{}: {view}", example.name);
        if view["refresh"] != "on_change" && !scheduled {
            continue;
        }
        let columns: Vec<String> =
            view["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let json: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| view["column_types"][c.as_str()] == "json")
            .map(|(i, _)| i)
            .collect();
        let def = defs.iter().find(|d| d.name == name).unwrap();
        let sql = REFERENCE_SQL
            .iter()
            .find(|(e, v, _)| *e == example.name && *v == name)
            .map_or(def.select_sql.as_str(), |(_, _, sql)| sql);
        let (want_columns, mut want) = reference.query(sql).unwrap();
        assert_eq!(columns, want_columns, "examples/{}: columns of {name}", example.name);
        if view["feed"].is_object() {
            assert_feed_pages_equal_sqlite(example, denorm, &reference, view, sql, &columns, &json);
            compared += 1;
            continue;
        }
        let mut got = page_rows(denorm, name, "", &columns, &json);
        normalize_json(&mut got, &json);
        normalize_json(&mut want, &json);
        if let Err(m) = same_rows(got, want) {
            panic!("examples/{}: view {name} differs from SQLite: {m}", example.name);
        }
        compared += 1;
    }
    compared
}

/// Every partition's first `PAGES` pages of feed `view` (its SELECT, or
/// reference, is `sql`) equal SQLite's answer, in order: one partition per
/// user (the `users` table: the feed examples are social networks) and one
/// that does not exist. The pages are within `retain`, where reads are exact.
fn assert_feed_pages_equal_sqlite(
    example: &Example,
    denorm: &Denorm,
    reference: &SqliteReference,
    view: &Json,
    sql: &str,
    columns: &[String],
    json: &[usize],
) {
    let name = view["name"].as_str().unwrap();
    let feed = &view["feed"];
    let partition = feed["partition_by"].as_str().unwrap();
    if let Some(retain) = feed["retain"].as_u64() {
        assert!(PAGE * PAGES <= retain as usize, "examples/{}: {name}: pages beyond retain", example.name);
    }
    // ["created_at desc nulls first", …]: SQLite's ORDER BY as it is, and
    // the HTTP order `created_at.desc,…` (whose NULL placement is the same:
    // DESC puts NULLs first).
    let terms: Vec<&str> = feed["order_by"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    let order_sql = terms.join(", ");
    let order_http: Vec<String> = terms
        .iter()
        .map(|t| {
            let mut words = t.split_whitespace();
            format!("{}.{}", words.next().unwrap(), words.next().unwrap())
        })
        .collect();
    let order_http = order_http.join(",");
    let (_, owners) = reference.query("SELECT id FROM users UNION SELECT -1").unwrap();
    let mut rows = 0;
    for owner in owners {
        let denorm_types::Datum::Int(owner) = owner[0] else { panic!("users.id {:?}", owner[0]) };
        for page in 0..PAGES {
            let offset = page * PAGE;
            let query = format!("{partition}=eq.{owner}&order={order_http}&offset={offset}&limit={PAGE}");
            let mut got = page_rows(denorm, name, &query, columns, json);
            let (_, mut want) = reference
                .query(&format!(
                    "SELECT * FROM ({sql}) WHERE {partition} = {owner} ORDER BY {order_sql} LIMIT {PAGE} OFFSET {offset}"
                ))
                .unwrap();
            normalize_json(&mut got, json);
            normalize_json(&mut want, json);
            let in_order = got.len() == want.len()
                && got.iter().zip(&want).all(|(g, w)| same_rows(vec![g.clone()], vec![w.clone()]).is_ok());
            if !in_order {
                let m = same_rows(got.clone(), want.clone())
                    .err()
                    .map_or("same rows, another order".into(), |m| m.to_string());
                panic!(
                    "examples/{}: {name}?{query} differs from SQLite:\n  served {got:?}\n  sqlite {want:?}\n{m}",
                    example.name
                );
            }
            rows += got.len();
        }
    }
    // The example exercises both paths: rows fanned out on write and
    // celebrities' content merged in at read time.
    assert!(rows > 0, "examples/{}: every page of {name} is empty", example.name);
    assert!(
        feed["materialized_rows"].as_u64() > Some(0),
        "examples/{}: {name}: nothing fanned out: {feed}",
        example.name
    );
    assert!(
        feed["celebrity_content_rows"].as_u64() > Some(0),
        "examples/{}: {name}: no celebrity above fanout_limit: {feed}",
        example.name
    );
}

fn scheduled_views(denorm: &Denorm) -> usize {
    let (_, listed) = denorm.get("/views");
    listed.as_array().unwrap().iter().filter(|v| v["refresh"] != "on_change").count()
}

/// Start on the example's own schema and rows, check every view, run its
/// writer, check again.
fn exercise(name: &'static str) {
    let example = Example::copy(name);
    let denorm = Denorm::start(&example.config);
    let db = example.connect();
    let before = committed_position(&db);

    // Right after the start every view, scheduled ones included, is the
    // snapshot: all of them equal SQLite.
    let all = assert_views_equal_sqlite(&example, &denorm, &db, true);
    assert!(all > 0, "examples/{name} has no views");

    example.run_writer();
    let after = committed_position(&db);
    assert!(after > before + 100, "examples/{name}: the writer logged only {} changes", after - before);

    // Scheduled views (refresh = '…') move only at their refresh, which is
    // an hour or more away: they are skipped here; the others must reflect
    // every transaction the writer committed.
    let live = assert_views_equal_sqlite(&example, &denorm, &db, false);
    assert_eq!(live + scheduled_views(&denorm), all, "examples/{name}: every view compared or scheduled");
    assert_eq!(denorm.terminate(), Some(0), "examples/{name}: graceful stop");
}

macro_rules! examples {
    ($($test:ident => $dir:literal,)*) => {
        $(
            #[test]
            fn $test() {
                exercise($dir);
            }
        )*

        /// Every directory under examples/ has its test above.
        #[test]
        fn every_example_is_tested() {
            let tested = [$($dir),*];
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
            let mut found: Vec<String> = std::fs::read_dir(&root)
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            found.sort();
            let mut tested: Vec<String> = tested.iter().map(|s| s.to_string()).collect();
            tested.sort();
            assert_eq!(found, tested, "a test per directory under examples/");
        }
    };
}

examples! {
    marketplace => "marketplace",
    product_reviews => "product-reviews",
    post_cards => "post-cards",
    trips => "trips",
    daily_sales => "daily-sales",
    digg_friends => "digg-friends",
    friendfeed => "friendfeed",
    home_feed => "home-feed",
    listing_documents => "listing-documents",
    billing_reconciliation => "billing-reconciliation",
}

/// One billing row (customer, name, plan, events, amount) as `a|b|c|d|e`.
fn billing_line(r: &rusqlite::Row<'_>) -> rusqlite::Result<String> {
    Ok(format!(
        "{}|{}|{}|{}|{}",
        r.get::<_, i64>(0)?,
        r.get::<_, String>(1)?,
        r.get::<_, String>(2)?,
        r.get::<_, i64>(3)?,
        r.get::<_, i64>(4)?
    ))
}

/// The sink's copy (`billing_totals` in app.db) as sorted text lines
/// (an error until the sink has created its table).
fn sink_rows(db: &Connection) -> Result<Vec<String>, String> {
    let mut statement = db
        .prepare("SELECT customer_id, name, plan, events, amount_cents FROM billing_totals ORDER BY customer_id")
        .map_err(|e| e.to_string())?;
    statement.query_map([], billing_line).and_then(|rows| rows.collect()).map_err(|e| e.to_string())
}

/// The same lines from SQLite's own answer to the view's SELECT.
fn billing_from_source(db: &Connection) -> Vec<String> {
    let select = "SELECT c.id, c.name, c.plan, COUNT(e.id), COALESCE(SUM(e.units * e.unit_price_cents), 0) \
                  FROM customers c LEFT JOIN usage_events e ON e.customer_id = c.id \
                  GROUP BY c.id, c.name, c.plan ORDER BY c.id";
    let mut statement = db.prepare(select).unwrap();
    statement.query_map([], billing_line).unwrap().map(Result::unwrap).collect()
}

/// `denorm reconcile` of the example: exit code and output.
fn reconcile(example: &Example, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .arg("reconcile")
        .args(args)
        .arg("--config")
        .arg(&example.config)
        .output()
        .unwrap();
    (
        output.status.code(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

/// The seeds' incident (Scenario #3, "reconciliation after pipeline
/// failure") on examples/billing-reconciliation: the pipeline is down while
/// the application writes, a migration renames a column the billing views
/// read, and an old fix-up job edits the copy by hand. denorm restarts
/// without re-reading the source, the views wait failed for the schema,
/// heal by themselves when the migration is rolled back, the edited copy
/// is found and repaired, and `denorm reconcile` confirms view = source.
#[test]
fn billing_reconciliation_incident() {
    let example = Example::copy("billing-reconciliation");
    // The sink is compared with the view every 300 ms instead of 10 s.
    let text = std::fs::read_to_string(&example.config).unwrap();
    std::fs::write(&example.config, text.replace("reconcile_every = \"10s\"", "reconcile_every = \"300ms\"")).unwrap();
    let mut denorm = Denorm::start(&example.config);
    let db = example.connect();
    denorm.wait_for_position(committed_position(&db));
    common::eventually(std::time::Duration::from_millis(50), || {
        let (sink, source) = (sink_rows(&db)?, billing_from_source(&db));
        if sink == source {
            Ok(())
        } else {
            Err(format!("sink {sink:?}\nsource {source:?}"))
        }
    });

    // The pipeline stops; the application goes on metering usage, and the
    // old nightly fix-up job "corrects" a total in the copy by hand.
    assert_eq!(denorm.terminate(), Some(0));
    example.run_writer();
    db.execute_batch("UPDATE billing_totals SET amount_cents = 0 WHERE customer_id = 1").unwrap();

    // Back up: it resumes from its state directory (no table re-read) and
    // catches up with everything written while it was down.
    denorm = Denorm::start(&example.config);
    denorm.wait_for_position(committed_position(&db));
    assert_views_equal_sqlite(&example, &denorm, &db, false);

    // A migration renames a column the views read; usage goes on under
    // the new name. The two views fail and say why.
    db.execute_batch("ALTER TABLE usage_events RENAME COLUMN units TO quantity").unwrap();
    let failed = denorm
        .wait_for(|views| views.as_array().is_some_and(|v| v.iter().filter(|v| v["status"] == "failed").count() == 2));
    assert!(failed.to_string().contains("units"), "the failure names the column: {failed}");
    db.execute_batch(
        "INSERT INTO usage_events (id, customer_id, quantity, unit_price_cents, billed_on)
         SELECT max(id) + 1, 2, 7, 20, '2026-12-09' FROM usage_events;
         UPDATE usage_events SET quantity = quantity + 1 WHERE customer_id = 3;",
    )
    .unwrap();

    // The migration is rolled back: the views heal without a restart and
    // include what was written meanwhile, exactly once.
    let rolled_back = std::time::Instant::now();
    db.execute_batch("ALTER TABLE usage_events RENAME COLUMN quantity TO units").unwrap();
    denorm.wait_for(|views| views.as_array().is_some_and(|v| v.iter().all(|v| v["status"] == "ok")));
    eprintln!("healed {:.2} s after the rollback", rolled_back.elapsed().as_secs_f64());
    denorm.wait_for_position(committed_position(&db));
    assert_views_equal_sqlite(&example, &denorm, &db, false);

    // The hand-edited copy is found and repaired: the application's table
    // equals the source again.
    common::eventually(std::time::Duration::from_millis(50), || {
        let (sink, source) = (sink_rows(&db)?, billing_from_source(&db));
        if sink == source {
            Ok(())
        } else {
            Err(format!("sink {sink:?}\nsource {source:?}"))
        }
    });
    let (status, metrics) = common::get_text(&format!("{}/metrics", denorm.base));
    assert_eq!(status, 200);
    assert!(
        metrics.lines().any(|l| l.starts_with("denorm_sink_drift_rows_total") && !l.ends_with(" 0")),
        "the repaired row is counted as drift:\n{metrics}"
    );

    // The fix-up job's successor: reconcile (run against the instance's
    // port) confirms every view equals the source.
    let address = denorm.base.trim_start_matches("http://").to_string();
    let text = std::fs::read_to_string(&example.config).unwrap().replace("127.0.0.1:0", &address);
    std::fs::write(&example.config, text).unwrap();
    let (code, out) = reconcile(&example, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(denorm.terminate(), Some(0));
}
