//! The `denorm` binary end to end: real config files, real SQLite databases,
//! real exit codes. Tests that reach the planner (`plan_views`) need it
//! implemented; the configuration and source tests do not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VIEWS: &str = "\
CREATE MATERIALIZED VIEW user_names
AS SELECT id, name FROM users;
";

const SCHEMA: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);";

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(config: &Path) -> Run {
    let Output { status, stdout, stderr } = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("the denorm binary runs");
    let run = Run {
        code: status.code(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    eprintln!("exit {:?}\n--- stdout\n{}--- stderr\n{}", run.code, run.stdout, run.stderr);
    run
}

/// A temporary directory holding `denorm.toml` with `config`, `schema.sql`
/// with `schema`, and `views.sql` with `views`.
fn project(config: &str, schema: &str, views: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.sql"), schema).unwrap();
    std::fs::write(dir.path().join("views.sql"), views).unwrap();
    let config_path = dir.path().join("denorm.toml");
    std::fs::write(&config_path, config).unwrap();
    (dir, config_path)
}

const GOOD_CONFIG: &str = "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\ninit = \"schema.sql\"\n";

fn assert_refused(run: &Run, needles: &[&str]) {
    assert_eq!(run.code, Some(1), "exit code");
    for needle in needles {
        assert!(run.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", run.stderr);
    }
}

#[test]
fn marketplace_example_checks() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/marketplace");
    let dir = tempfile::tempdir().unwrap();
    for file in ["denorm.toml", "schema.sql", "views.sql"] {
        std::fs::copy(example.join(file), dir.path().join(file)).unwrap();
    }
    let run = check(&dir.path().join("denorm.toml"));
    assert_eq!(run.code, Some(0), "exit code");
    assert!(dir.path().join("app.db").is_file(), "[source] init created the database");
    for view in [
        "post_cards",
        "product_stats",
        "product_rating_histogram",
        "trips_by_driver",
        "trips_by_city_date",
        "daily_sales",
    ] {
        assert!(run.stdout.contains(&format!("view {view} (")), "no report for {view}");
    }
    for section in ["  key: (", "  columns:\n", "  max_staleness: ", "  triggers:", "  propagates: ", "  plan:\n"] {
        assert_eq!(run.stdout.matches(section).count(), 6, "one {section:?} per view");
    }
    assert!(run.stdout.contains("a change to users re-joins matching rows of posts"), "post_cards propagation");
    assert!(run.stdout.contains("ok: 6 views in 1 file"), "summary line");
}

#[test]
fn success_prints_every_view_section() {
    let (dir, config) = project(GOOD_CONFIG, SCHEMA, VIEWS);
    let run = check(&config);
    assert_eq!(run.code, Some(0), "exit code");
    let views_sql = dir.path().join("views.sql");
    assert!(run.stdout.starts_with(&format!("view user_names ({}:1:1)\n", views_sql.display())), "header");
    assert!(run.stdout.contains("  key: (id) from the source primary key; proven unique\n"));
    assert!(run.stdout.contains("    id    integer  not null  key\n"), "id column");
    assert!(run.stdout.contains("    name  text     not null\n"), "name column");
    assert!(run.stdout.contains("  max_staleness: none\n"));
    assert!(run.stdout.contains("  triggers:\n    users: id, name\n"));
    assert!(run.stdout.contains("  propagates: each change to users updates at most one view row, in O(1)\n"));
    assert!(run.stdout.contains("  plan:\n    "));
}

#[test]
fn check_shows_where_sinks_write_each_view() {
    let views = "CREATE MATERIALIZED VIEW user_names WITH (index = 'name; name, id') AS SELECT id, name FROM users;\n\
                 CREATE MATERIALIZED VIEW ids AS SELECT id FROM users;\n";
    let (_dir, config) = project(
        "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\ninit = \"schema.sql\"\n\
         [[sink]]\nname = \"models\"\nkind = \"sqlite\"\npath = \"models.db\"\nviews = [\"user_names\"]\n\
         [[sink]]\nname = \"cache\"\nkind = \"redis\"\nurl = \"redis://127.0.0.1:1\"\nprefix = \"app:\"\nviews = [\"user_names\"]\n",
        SCHEMA,
        views,
    );
    let run = check(&config);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let models = config.parent().unwrap().join("models.db");
    let line = format!(
        "  sinks: models (sqlite table user_names in {}), cache (redis keys app:user_names:…)\n",
        models.display()
    );
    assert!(run.stdout.contains(&line), "{}", run.stdout);
    assert!(run.stdout.contains("  sink indexes: (name), (name, id)\n"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("  sinks: ").count(), 1, "ids is written by no sink: {}", run.stdout);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let (_dir, config) = project(
        "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\ninit = \"schema.sql\"\nlisen = \"x\"\n",
        SCHEMA,
        VIEWS,
    );
    let run = check(&config);
    assert_refused(&run, &[&format!("{}:5:1: ", config.display()), "unknown field `lisen`"]);
}

#[test]
fn wrong_type_names_file_and_line() {
    let (_dir, config) = project("views = \"views.sql\"\n[source]\nurl = \"sqlite://app.db\"\n", SCHEMA, VIEWS);
    let run = check(&config);
    assert_refused(&run, &[&format!("{}:1:9: ", config.display()), "invalid type"]);
}

#[test]
fn missing_source_section_is_refused() {
    let (_dir, config) = project("views = [\"views.sql\"]\n", SCHEMA, VIEWS);
    let run = check(&config);
    assert_refused(&run, &[&format!("{}:1:1: ", config.display()), "missing field `source`"]);
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nope.toml");
    let run = check(&config);
    assert_refused(&run, &[&format!("error: cannot read config file {}", config.display())]);
}

#[test]
fn missing_views_file_points_at_its_config_entry() {
    let (_dir, config) = project(
        "views = [\"views.sql\", \"gone.sql\"]\n[source]\nurl = \"sqlite://app.db\"\ninit = \"schema.sql\"\n",
        SCHEMA,
        VIEWS,
    );
    let run = check(&config);
    assert_refused(&run, &[&format!("{}:1:23: cannot read views file ", config.display()), "gone.sql"]);
}

#[test]
fn missing_database_without_init_gets_a_hint() {
    let (dir, config) = project("views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n", SCHEMA, VIEWS);
    let run = check(&config);
    assert_refused(&run, &[&format!("{}:3:7: the source database ", config.display()), "does not exist", "hint: "]);
    assert!(!dir.path().join("app.db").exists(), "check never creates a database without [source] init");
}

/// An unreachable PostgreSQL server is named (password hidden) with the
/// config position of its URL.
#[test]
fn unreachable_postgres_source_is_refused_with_its_position() {
    let (_dir, config) =
        project("views = [\"views.sql\"]\n[source]\nurl = \"postgres://u:secret@127.0.0.1:1/app\"\n", SCHEMA, VIEWS);
    let run = check(&config);
    assert_refused(
        &run,
        &[&format!("{}:3:7: cannot connect to the source postgres://u:***@127.0.0.1:1/app", config.display()), "hint:"],
    );
    assert!(!run.stderr.contains("secret"), "{}", run.stderr);
}

#[test]
fn failing_init_schema_is_reported_and_leaves_no_database() {
    let (dir, config) = project(GOOD_CONFIG, "CREATE TABLE users (id INTEGER PRIMARY KEY,", VIEWS);
    let run = check(&config);
    assert_refused(&run, &["[source] init failed", "the schema SQL failed"]);
    assert!(!dir.path().join("app.db").exists());
}

/// Regression: a column without type affinity (no declared type, or BLOB)
/// in any table refused the whole check, even when no view read it. It
/// holds values of any storage class, and views may read it.
#[test]
fn untyped_source_columns_are_accepted() {
    let schema = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
                  CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB, extra);";
    let views =
        format!("{VIEWS}\nCREATE MATERIALIZED VIEW extras AS SELECT extra, COUNT(*) AS n FROM files GROUP BY extra;\n");
    let (_dir, config) = project(GOOD_CONFIG, schema, &views);
    let run = check(&config);
    assert_eq!(run.code, Some(0), "exit code");
    assert!(run.stdout.contains("    extra  any (no type affinity)"), "extra column");
}

#[test]
fn unsupported_construct_is_refused_with_its_position() {
    let views = "\
CREATE MATERIALIZED VIEW ranked
AS SELECT id, ROW_NUMBER() OVER (ORDER BY name) AS n FROM users;
";
    let (dir, config) = project(GOOD_CONFIG, SCHEMA, views);
    let run = check(&config);
    let views_sql = dir.path().join("views.sql");
    assert_refused(&run, &[&format!("({}:2:", views_sql.display()), "error: "]);
    assert!(run.stdout.is_empty(), "nothing is reported as checked");
}

#[test]
fn view_names_are_unique_across_files() {
    let (dir, _) = project(GOOD_CONFIG, SCHEMA, VIEWS);
    std::fs::write(dir.path().join("more.sql"), VIEWS).unwrap();
    let config = dir.path().join("two.toml");
    std::fs::write(
        &config,
        "views = [\"views.sql\", \"more.sql\"]\n[source]\nurl = \"sqlite://app.db\"\ninit = \"schema.sql\"\n",
    )
    .unwrap();
    let run = check(&config);
    assert_refused(
        &run,
        &["view user_names is defined twice", &format!("{}:1:1", dir.path().join("more.sql").display())],
    );
}
