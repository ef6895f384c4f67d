//! `denorm check` estimates the views' operator state from PostgreSQL's
//! statistics (`pg_class.reltuples`, `pg_stats.avg_width` and `n_distinct`),
//! and `denorm run` refuses to start when the estimate exceeds `[engine]
//! max_memory`. Needs the test server (`scripts/postgres start`).

mod common;
mod pg_project;

use pg_project::PgProject;

const SCHEMA: &str = "
CREATE TABLE t (id integer PRIMARY KEY, a integer NOT NULL, b text NOT NULL);
INSERT INTO t SELECT i, i % 10, lpad(i::text, 200, '0') FROM generate_series(1, 20000) AS i;
ANALYZE t;
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW small AS SELECT a, COUNT(*) AS n FROM t GROUP BY a;
CREATE MATERIALIZED VIEW big AS SELECT id, b, COUNT(*) AS n FROM t GROUP BY id, b;
";

#[test]
fn check_estimates_from_pg_stats_and_run_refuses_over_the_budget() {
    let project = PgProject::with_options("estimate", SCHEMA, VIEWS, "[engine]\nmax_memory = \"1MB\"\n");
    let output = project.denorm(&["check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    // n_distinct of a is 10; id is unique (n_distinct -1: every row).
    assert!(stdout.contains("Reduce [1]: ~10 rows, ~"), "{stdout}");
    assert!(stdout.contains("Reduce [0, 2]: ~20,000 rows, ~"), "{stdout}");
    // 20,000 keys of ~205 bytes on the heap: several MB.
    let big = stdout.split("view big (").nth(1).unwrap();
    let total = big.lines().find(|l| l.starts_with("    total: ~")).unwrap();
    assert!(total.ends_with(" MB"), "{total}");
    assert!(stdout.contains("warning: denorm run would refuse to start"), "{stdout}");

    let output = project.denorm(&["run"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("over [engine] max_memory = 1.0 MB"), "{stderr}");
}
