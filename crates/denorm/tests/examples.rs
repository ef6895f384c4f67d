//! Every example under `examples/` end to end: its directory copied to a
//! temporary one, the real binary started on it (the config's `[source]
//! init` creates `app.db` from `schema.sql`), every view compared over HTTP
//! with SQLite's own answer to the view's SELECT, then the example's
//! `writer.py` run as a separate process (a Python application on its own
//! connection, as in production), and every view compared again once it
//! reflects everything the writer committed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{committed_position, view_rows, Denorm};
use denorm_testkit::{same_rows, SqliteReference};
use rusqlite::Connection;

/// How many transactions the writer commits, and its seed.
const TRANSACTIONS: &str = "200";
const SEED: &str = "1";

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
        let def = defs.iter().find(|d| d.name == name).unwrap();
        let (want_columns, want) = reference.query(&def.select_sql).unwrap();
        assert_eq!(columns, want_columns, "examples/{}: columns of {name}", example.name);
        let got = view_rows(denorm, name, &columns);
        if let Err(m) = same_rows(got, want) {
            panic!("examples/{}: view {name} differs from SQLite: {m}", example.name);
        }
        compared += 1;
    }
    compared
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
}
