//! `denorm demo` end to end: a bounded run at a small scale creates its
//! database, serves, writes, prints the table with every view and the read
//! comparison, and exits 0 when `--duration` elapses.

use std::process::Command;

#[test]
fn demo_runs_reports_and_stops_after_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args([
            "demo",
            "--duration",
            "4",
            "--every",
            "1",
            "--scale",
            "0.02",
            "--rate",
            "200",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("denorm demo: serving http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("/views/product_stats?product_id=eq."), "{stdout}");
    for view in [
        "post_cards",
        "product_stats",
        "product_rating_histogram",
        "trips_by_driver",
        "trips_by_city_date",
        "daily_sales",
    ] {
        assert!(stdout.lines().any(|l| l.starts_with(view)), "no row for {view}:\n{stdout}");
    }
    assert!(stdout.contains("fresh p99") && stdout.contains("SQL/view"), "{stdout}");
    // The files to try `denorm run` on are left in the work directory.
    for file in ["denorm.toml", "schema.sql", "views.sql", "demo.db"] {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    assert!(stderr.contains("snapshot published"), "{stderr}");
}
