//! `/metrics` passes `promtool check metrics` (Prometheus' own linter).
//! scripts/test installs promtool (Debian's `prometheus` package); without
//! it this test fails rather than skips.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use denorm_serve::{channel, ColumnInfo, Fallback, ReplicationStatus, SourceState, SourceStatus, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};

struct Source;

impl Fallback for Source {
    fn lookup(&self, _view: &ViewInfo, key: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        Ok(vec![key.to_vec()])
    }
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let view = |name: &str| ViewInfo {
        name: name.into(),
        columns: vec![ColumnInfo { name: "id".into(), ty: ScalarType::Int }],
        key: vec![0],
        max_staleness: Some(Duration::from_millis(500)),
        tables: vec!["users".into()],
        ..Default::default()
    };
    let scheduled = ViewInfo { refresh: Some(Duration::from_secs(3600)), ..view("hourly") };
    let fallback = ViewInfo { fallback: true, ..view("cards") };
    let (mut publisher, reader) = channel(vec![view("a"), view("b \"quoted\""), scheduled, fallback]);
    publisher.apply(0, &[(Row::pack([Datum::Int(1)]), 1)]);
    publisher.metrics().changes_applied("users", 1);
    publisher.metrics().undecodable("users", 2);
    publisher.metrics().snapshot_rows(10);
    publisher.metrics().batch_applied(0.0001);
    publisher.publish_at(Position(3), &[("users".into(), 99.99)], 100.0);
    publisher.fail(1, "boom".into());
    publisher.publish(Position(4), &[]);
    publisher.publish_at(Position(5), &[("users".into(), 0.0)], 200.0);
    publisher.set_source(SourceStatus { state: SourceState::Following, head: Some(Position(6)), ..Default::default() });
    publisher.set_replication(ReplicationStatus {
        lag_bytes: 1024,
        lag_seconds: 0.5,
        retained_bytes: 4096,
        max_retained_bytes: 1 << 30,
        slot: "denorm".into(),
        head_text: None,
    });
    publisher.metrics().set_state_bytes(&[
        ("a".into(), "3 Reduce [0], shared by 2 views".into(), 4096),
        ("b \"quoted\"".into(), "celebrity_content: 5 Arrange [1]".into(), 0),
    ]);
    let server = Server::start_with(reader, Some(Arc::new(Source)));
    server.get("/views/a");
    server.get("/views/b%20%22quoted%22");
    assert_eq!(server.get("/views/cards?id=eq.1").served_by.as_deref(), Some("source"));
    let metrics = server.get("/metrics").body;
    for series in [
        "denorm_view_refreshed_at{view=\"hourly\"} 100.0",
        "denorm_view_within_sla{view=\"cards\"} 0",
        "denorm_staleness_budget_exceeded_total{view=\"cards\"} 1",
        "denorm_fallback_reads_total{view=\"cards\"} 1",
        "denorm_state_bytes{view=\"a\",operator=\"3 Reduce [0], shared by 2 views\"} 4096",
    ] {
        assert!(metrics.lines().any(|l| l == series), "missing {series}:\n{metrics}");
    }

    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => panic!(
            "promtool is needed to check /metrics but could not be run ({e}); install it with `apt-get install -y prometheus` (scripts/test does)"
        ),
    };
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics failed:\n{report}\n--- metrics ---\n{metrics}"
    );
}
