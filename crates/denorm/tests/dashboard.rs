//! The dashboard (`GET /ui`) in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/test`) loads the page while a writer
//! runs, takes a screenshot, and the rendered DOM must show charts with
//! points drawn from the view's history and a failed view as failed with
//! its reason.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{committed_position, Denorm, Project};

const SCHEMA: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, amount INTEGER NOT NULL);
CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW totals WITH (max_staleness = '1s') AS
  SELECT grp, count(*) AS n, sum(amount) AS total FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW big_sum AS SELECT sum(v) AS s FROM big;
";

/// Runs headless Chromium on `url` with `args`; its stdout.
fn chromium(url: &str, profile: &Path, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg("90")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs (scripts/test installs Debian's chromium)");
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The text of the element whose opening tag contains `marker`, up to `end`.
fn element<'a>(dom: &'a str, marker: &str, end: &str) -> &'a str {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find(end).map_or(rest.len(), |e| e + end.len())]
}

#[test]
fn the_dashboard_draws_history_and_shows_a_failed_view_in_chromium() {
    let project = Project::new(SCHEMA, VIEWS);
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    // A writer for a few seconds: every commit is a freshness observation.
    let until = Instant::now() + Duration::from_secs(3);
    let mut id = 0;
    while Instant::now() < until {
        for _ in 0..5 {
            id += 1;
            conn.execute("INSERT INTO items (id, grp, amount) VALUES (?1, ?1 % 7, ?1)", [id]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SQLite's integer overflow fails big_sum.
    conn.execute_batch("INSERT INTO big (id, v) VALUES (1, 9223372036854775807), (2, 1)").unwrap();
    denorm.wait_for_position(committed_position(&conn));

    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/ui", denorm.base);
    let screenshot = profile.path().join("ui.png");
    chromium(&url, &profile.path().join("a"), &[&format!("--screenshot={}", screenshot.display())]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot: {} bytes", png.len());

    // Writes go on while the page is loaded again.
    for _ in 0..50 {
        id += 1;
        conn.execute("INSERT INTO items (id, grp, amount) VALUES (?1, ?1 % 7, ?1)", [id]).unwrap();
    }
    let dom = chromium(&url, &profile.path().join("b"), &["--dump-dom"]);

    let totals = element(&dom, "id=\"view-totals\"", "</article>");
    assert!(totals.contains("data-status=\"ok\""), "{totals}");
    let freshness = element(totals, "id=\"freshness-totals\"", "</svg>");
    let drawn = freshness.matches("<circle class=\"p99\"").count();
    assert!(drawn >= 1, "the p99 series has points: {freshness}");
    assert!(freshness.contains("<path class=\"p99\" d=\"M"), "{freshness}");
    assert!(freshness.contains("class=\"budget\""), "the 1 s budget is drawn: {freshness}");
    let rate = element(totals, "id=\"rate-totals\"", "</svg>");
    let rates: Vec<f64> = rate
        .match_indices("data-value=\"")
        .map(|(i, m)| rate[i + m.len()..].split('"').next().unwrap().parse().unwrap())
        .collect();
    assert!(rates.iter().any(|r| *r > 0.0), "changes/s drawn from the writes: {rates:?}");

    let failed = element(&dom, "id=\"view-big_sum\"", "</article>");
    assert!(failed.contains("data-status=\"failed\""), "{failed}");
    assert!(failed.contains("overflow"), "the reason is shown: {failed}");
    assert!(dom.contains("1 failed"), "the header counts it");
    denorm.terminate();
}
