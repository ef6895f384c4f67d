//! `[engine] max_memory` through `denorm run`: at start, views whose
//! estimated state exceeds it are refused (exit 1, with the estimates);
//! while running, the operators' state is sampled (after the snapshot and
//! every few seconds) and past the budget the view holding the most fails
//! with the reason (`/views`, the log), its state is freed, and the other
//! view keeps serving and following the source. `/views` and `/metrics`
//! show each view's state bytes; `denorm check` prints the estimates.

mod common;

use std::process::Command;

use common::{committed_position, get_text, Denorm, Project};

const SCHEMA: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT);";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW small AS SELECT a, COUNT(*) AS n FROM t GROUP BY a;
CREATE MATERIALIZED VIEW big AS SELECT id, b, COUNT(*) AS n FROM t GROUP BY id, b;
";

#[test]
fn a_small_budget_fails_the_big_view_and_the_small_one_serves() {
    let project = Project::new(SCHEMA, VIEWS);
    let config = std::fs::read_to_string(&project.config).unwrap();
    std::fs::write(&project.config, format!("{config}[engine]\nmax_memory = \"2MB\"\n")).unwrap();
    let db = project.connect();
    db.execute_batch("INSERT INTO t VALUES (1, 1, 'a')").unwrap();
    let mut denorm = Denorm::start(&project.config);
    let (_, views) = denorm.get("/views");
    assert!(
        views.as_array().unwrap().iter().all(|v| v["status"] == "ok" && v["state_bytes"].as_u64() > Some(0)),
        "{views}"
    );
    // 20,000 groups of a 200-byte text in `big` (several MB); `small`
    // has 10 groups (and its batch buffers). The next sample fails `big`.
    db.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO t SELECT i, i % 10, printf('%0200d', i) FROM n;",
    )
    .unwrap();
    let line = denorm.wait_for_log("over the memory budget");
    assert!(line.contains("big"), "{line}");
    let views = denorm.wait_for(|views| views.as_array().unwrap().iter().any(|v| v["status"] == "failed"));
    let views = views.as_array().unwrap();
    let view = |name: &str| views.iter().find(|v| v["name"] == name).unwrap().clone();
    let (big, small) = (view("big"), view("small"));
    assert_eq!(big["status"], "failed", "{big}");
    let reason = big["error"].as_str().unwrap();
    assert!(reason.contains("memory budget exceeded") && reason.contains("2097152"), "{reason}");
    assert_eq!(small["status"], "ok", "{small}");
    let small_bytes = small["state_bytes"].as_u64().unwrap();
    assert!(small_bytes > 0 && small_bytes <= 2 << 20, "{small}");
    assert_eq!(big["state_bytes"].as_u64(), Some(0), "the failed view's state is freed: {big}");

    // The small view goes on following the source.
    db.execute_batch("INSERT INTO t VALUES (20001, 3, 'x'); DELETE FROM t WHERE id = 3;").unwrap();
    denorm.wait_for_position(committed_position(&db));
    let (status, rows) = denorm.get("/views/small?a=eq.3");
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows[0]["n"], 2000, "{rows}");
    let (status, body) = denorm.get("/views/big");
    assert_eq!(status, 503, "{body}");

    let (status, metrics) = get_text(&format!("{}/metrics", denorm.base));
    assert_eq!(status, 200);
    let series: Vec<&str> = metrics.lines().filter(|l| l.starts_with("denorm_state_bytes{")).collect();
    assert!(
        series.iter().any(|l| l.starts_with("denorm_state_bytes{view=\"small\",operator=\"") && l.contains("Reduce")),
        "{metrics}"
    );
    assert!(!series.iter().any(|l| l.contains("view=\"big\"")), "{metrics}");
    let sum: u64 = series.iter().map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap()).sum();
    assert!(sum <= 2 << 20, "{metrics}");
    assert_eq!(denorm.terminate(), Some(0));
}

/// Over the budget by the source's statistics: `denorm run` refuses to
/// start, listing each view's estimate and the budget; `denorm check`
/// prints the estimates per operator and warns.
#[test]
fn an_estimate_over_the_budget_refuses_to_start() {
    let project = Project::new(SCHEMA, VIEWS);
    let config = std::fs::read_to_string(&project.config).unwrap();
    std::fs::write(&project.config, format!("{config}[engine]\nmax_memory = \"1MB\"\n")).unwrap();
    project
        .connect()
        .execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT i, i % 10, printf('%0200d', i) FROM n;",
        )
        .unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_denorm")).args(["run", "--config"]).arg(&project.config).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to start: the views' operator state is estimated at ~"), "{stderr}");
    assert!(stderr.contains("over [engine] max_memory = 1.0 MB"), "{stderr}");
    let big = stderr.find("    big: ~").expect("big's estimate");
    let small = stderr.find("    small: ~").expect("small's estimate");
    assert!(big < small, "largest first: {stderr}");

    let output =
        Command::new(env!("CARGO_BIN_EXE_denorm")).args(["check", "--config"]).arg(&project.config).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_eq!(stdout.matches("  state (estimate from the source's statistics):\n").count(), 2, "{stdout}");
    // small: 10 groups (the sample has 10 distinct values of a); big: one
    // group per row.
    assert!(stdout.contains("Reduce [1]: ~10 rows, ~"), "{stdout}");
    assert!(stdout.contains("Reduce [0, 2]: ~20,000 rows, ~"), "{stdout}");
    assert!(stdout.contains("operator state, estimated: ~"), "{stdout}");
    assert!(stdout.contains("warning: denorm run would refuse to start"), "{stdout}");
}
