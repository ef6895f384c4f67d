//! A real PostgREST client library, unmodified, against the real binary:
//! PyPI's `postgrest` (postgrest-py, pinned in scripts/test, which installs
//! it into a virtualenv under `target/`) runs
//! `tests/postgrest_client/client.py` against `denorm run` on a SQLite file:
//! select, filters, or/and, order, range, count, single object, CSV; PyPI's
//! `openapi-spec-validator` checks that `GET /` is a valid OpenAPI 3
//! document; and `[server] cors_origins` from the configuration file
//! reaches the server.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{committed_position, Denorm, Project};

const SCHEMA: &str =
    "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL, in_stock INTEGER, tags TEXT);";

const VIEWS: &str = "CREATE MATERIALIZED VIEW catalog AS SELECT id, name, price, in_stock, tags FROM products;";

/// The Python with postgrest-py: `DENORM_TEST_POSTGREST_PYTHON`, or the
/// virtualenv scripts/test makes.
fn python() -> PathBuf {
    if let Ok(python) = std::env::var("DENORM_TEST_POSTGREST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/postgrest-venv/bin/python");
    assert!(
        venv.exists(),
        "postgrest-py is missing: run scripts/test (it installs it into target/postgrest-venv), \
         or set DENORM_TEST_POSTGREST_PYTHON to a Python that has `postgrest` installed"
    );
    venv
}

#[test]
fn postgrest_py_reads_views() {
    let project = Project::new(SCHEMA, VIEWS);
    let conn = project.connect();
    conn.execute_batch(
        r#"INSERT INTO products VALUES
             (1, 'red mug', 2.5, 1, '["kitchen","red"]'),
             (2, 'blue mug', 3.0, 0, '["kitchen"]'),
             (3, 'red, chair', NULL, 1, '[]'),
             (4, 'lamp', 40.0, 0, '["light"]'),
             (5, 'desk', 120.0, 1, '["office","wood"]');"#,
    )
    .unwrap();
    // The [server] HTTP settings reach the server: CORS for this origin.
    let mut config = std::fs::read_to_string(&project.config).unwrap();
    config.push_str("cors_origins = [\"https://app.example\"]\nheader_timeout = \"5s\"\nmax_connections = 64\n");
    std::fs::write(&project.config, config).unwrap();
    let denorm = Denorm::start(&project.config);
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let response = agent
        .get(format!("{}/views/catalog?id=eq.1", denorm.base))
        .header("Origin", "https://app.example")
        .call()
        .unwrap();
    let allowed = response.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(allowed.as_deref(), Some("https://app.example"));
    denorm.wait_for_position(committed_position(&conn));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/postgrest_client/client.py");
    let output =
        Command::new(python()).arg(&script).arg(format!("{}/views", denorm.base)).output().expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.contains("all ok"), "postgrest-py failed:\n{stdout}\n{stderr}");
}
