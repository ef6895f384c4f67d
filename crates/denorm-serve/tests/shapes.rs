//! The "shapes" options over a real server: scheduled refresh
//! (`WITH (refresh = '1h')`) and staleness budgets acted on
//! (`WITH (on_stale = 'fallback')`). Time is controlled through
//! `publish_at` (commit and publish times relative to the real clock),
//! never by sleeping.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Reply, Server};
use denorm_serve::{channel, ColumnInfo, Fallback, Publisher, SourceState, SourceStatus, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};
use serde_json::{json, Value as Json};

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn following(head: u64, oldest_pending_commit_at: Option<f64>) -> SourceStatus {
    SourceStatus {
        state: SourceState::Following,
        head: Some(Position(head)),
        oldest_pending_commit_at,
        last_error: None,
        disconnected_since: None,
    }
}

fn body(reply: &Reply) -> Json {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

fn metric(server: &Server, sample: &str) -> bool {
    server.get("/metrics").body.lines().any(|l| l == sample)
}

// ---------------------------------------------------------------- refresh

fn scheduled_views() -> Vec<ViewInfo> {
    let columns = vec![
        ColumnInfo { name: "id".into(), ty: ScalarType::Int },
        ColumnInfo { name: "total".into(), ty: ScalarType::Int },
    ];
    vec![
        ViewInfo {
            name: "live".into(),
            columns: columns.clone(),
            key: vec![0],
            tables: vec!["orders".into()],
            ..Default::default()
        },
        ViewInfo {
            name: "hourly".into(),
            columns,
            key: vec![0],
            max_staleness: Some(Duration::from_secs(60)),
            tables: vec!["orders".into()],
            refresh: Some(Duration::from_secs(3600)),
            ..Default::default()
        },
    ]
}

fn total(id: i64, total: i64) -> Row {
    Row::pack([Datum::Int(id), Datum::Int(total)])
}

#[test]
fn a_scheduled_view_serves_its_last_refresh_until_the_next() {
    let (mut publisher, reader) = channel(scheduled_views());
    let server = Server::start(reader);
    // The snapshot, published 100 s ago, is the scheduled view's first refresh.
    let snapshot_at = (now() - 100.0).floor();
    for view in [0, 1] {
        publisher.apply(view, &[(total(1, 10), 1)]);
    }
    publisher.publish_at(Position(1), &[], snapshot_at);
    publisher.set_source(following(1, None));
    let (_, views) = server.json("/views");
    assert_eq!(
        (views[0]["refresh"].clone(), views[0]["refreshed_at"].clone()),
        (json!("on_change"), json!(snapshot_at))
    );
    assert_eq!((views[1]["refresh"].clone(), views[1]["refreshed_at"].clone()), (json!(3600.0), json!(snapshot_at)));
    assert_eq!(views[1]["within_sla"], true, "up to date with the source");
    assert_eq!(views[1]["on_stale"], "serve");

    // A batch: the engine applies it to the on-change view only (a
    // scheduled view gathers it); the scheduled view keeps its refresh.
    publisher.apply(0, &[(total(1, 10), -1), (total(1, 15), 1)]);
    publisher.publish_at(Position(2), &[("orders".into(), now() - 0.5)], now());
    publisher.set_source(following(2, None));
    let live = server.get("/views/live");
    assert_eq!((live.position.as_deref(), body(&live)), (Some("2"), json!([{"id": 1, "total": 15}])));
    let hourly = server.get("/views/hourly");
    assert_eq!((hourly.position.as_deref(), body(&hourly)), (Some("1"), json!([{"id": 1, "total": 10}])));
    assert_eq!(hourly.stale.as_deref(), Some("true"), "100 s since its refresh, budget 60 s");
    assert_eq!(hourly.served_by.as_deref(), Some("view"), "no fallback: served from the view");
    let (_, views) = server.json("/views");
    let hourly = &views[1];
    assert_eq!((hourly["position"].clone(), hourly["refreshed_at"].clone()), (json!(1), json!(snapshot_at)));
    assert!(hourly["freshness_seconds"].as_f64().unwrap() >= 100.0, "{hourly}");
    assert_eq!(hourly["within_sla"], false);
    assert!(views[0]["refreshed_at"].as_f64().unwrap() > snapshot_at);
    assert!(metric(&server, &format!("denorm_view_refreshed_at{{view=\"hourly\"}} {snapshot_at:?}")));
    assert!(metric(&server, "denorm_staleness_budget_exceeded_total{view=\"hourly\"} 1"));
    assert!(metric(&server, "denorm_view_within_sla{view=\"hourly\"} 0"));
    assert!(metric(&server, "denorm_view_within_sla{view=\"live\"} 1"));

    // Read-your-writes: a scheduled view reflects position 2 only after
    // its next refresh.
    let wanted = [("Denorm-Min-Position", "2"), ("Denorm-Timeout", "30ms")];
    assert_eq!(server.get_with("/views/live", &wanted).status, 200);
    let late = server.get_with("/views/hourly", &wanted);
    assert_eq!((late.status, late.position.as_deref()), (504, Some("1")), "{}", late.body);
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| server.get_with("/views/hourly", &[("Denorm-Min-Position", "2")]));
        publisher.publish_at(Position(3), &[], now());
        // The refresh: the engine applies the gathered changes, marks it.
        publisher.apply(1, &[(total(1, 10), -1), (total(1, 15), 1)]);
        publisher.refreshed(1);
        publisher.publish_at(Position(3), &[], now());
        let reply = waiting.join().unwrap();
        assert_eq!((reply.status, reply.position.as_deref()), (200, Some("3")), "{}", reply.body);
        assert_eq!(body(&reply), json!([{"id": 1, "total": 15}]));
    });
    publisher.set_source(following(3, None));
    let (_, views) = server.json("/views");
    assert_eq!(views[1]["position"], 3);
    assert!(views[1]["refreshed_at"].as_f64().unwrap() > snapshot_at + 99.0);
    assert_eq!(views[1]["within_sla"], true);
    assert_eq!(server.get("/views/hourly").stale, None);
}

// --------------------------------------------------------------- fallback

/// The source database of the tests: rows by id, shared with the server.
#[derive(Default)]
struct Source {
    rows: Mutex<BTreeMap<i64, Vec<Value>>>,
    broken: AtomicBool,
    lookups: AtomicUsize,
}

impl Fallback for Source {
    fn lookup(&self, view: &ViewInfo, key: &[Value]) -> Result<Vec<Vec<Value>>, String> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        assert_eq!(view.key.len(), key.len());
        if self.broken.load(Ordering::SeqCst) {
            return Err("database is locked".into());
        }
        let Datum::Int(id) = key[0] else { return Ok(vec![]) };
        Ok(self.rows.lock().unwrap().get(&id).cloned().into_iter().collect())
    }
}

fn card_views() -> Vec<ViewInfo> {
    let columns = vec![
        ColumnInfo { name: "id".into(), ty: ScalarType::Int },
        ColumnInfo { name: "region".into(), ty: ScalarType::Text },
        ColumnInfo { name: "score".into(), ty: ScalarType::Float },
    ];
    let view = |name: &str, fallback| ViewInfo {
        name: name.into(),
        columns: columns.clone(),
        key: vec![0],
        max_staleness: Some(Duration::from_secs(1)),
        tables: vec!["products".into()],
        fallback,
        ..Default::default()
    };
    vec![view("cards", true), view("plain", false)]
}

fn card(id: i64, region: &str, score: f64) -> Vec<Value> {
    vec![Datum::Int(id), Datum::owned_text(region), Datum::Float(score)]
}

/// Both views hold id 1 with score 1.0; the source has moved on (score 9.0)
/// and has id 2 too. Published at position 1 within budget.
fn fallback_fixture(fallback: bool) -> (Publisher, Server, Arc<Source>) {
    let (mut publisher, reader) = channel(card_views());
    for view in [0, 1] {
        publisher.apply(view, &[(Row::pack(card(1, "eu", 1.0)), 1), (Row::pack(card(3, "us", 3.0)), 1)]);
    }
    publish_fresh(&mut publisher, 1);
    let source = Arc::new(Source::default());
    source.rows.lock().unwrap().extend([(1, card(1, "eu", 9.0)), (2, card(2, "us", 2.0))]);
    let server = Server::start_with(reader, fallback.then(|| source.clone() as Arc<dyn Fallback>));
    (publisher, server, source)
}

/// Publishes `position` with a commit seen 10 ms after it was made.
fn publish_fresh(publisher: &mut Publisher, position: u64) {
    let now = now();
    publisher.publish_at(Position(position), &[("products".into(), now - 0.01)], now);
    publisher.set_source(following(position, None));
}

/// Publishes `position` with a commit that took 100 s to become visible.
fn publish_late(publisher: &mut Publisher, position: u64) {
    let now = now();
    publisher.publish_at(Position(position), &[("products".into(), now - 100.0)], now);
    publisher.set_source(following(position, None));
}

#[test]
fn within_budget_reads_are_served_by_the_view() {
    let (_p, server, source) = fallback_fixture(true);
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!((reply.status, reply.served_by.as_deref(), reply.stale.as_deref()), (200, Some("view"), None));
    assert_eq!(reply.position.as_deref(), Some("1"));
    assert_eq!(body(&reply), json!([{"id": 1, "region": "eu", "score": 1.0}]));
    assert_eq!(server.get("/views/cards").served_by.as_deref(), Some("view"));
    assert_eq!(source.lookups.load(Ordering::SeqCst), 0);
    let (_, views) = server.json("/views");
    assert_eq!((views[0]["on_stale"].clone(), views[1]["on_stale"].clone()), (json!("fallback"), json!("serve")));
}

#[test]
fn beyond_budget_key_lookups_are_answered_by_the_source() {
    let (mut publisher, server, source) = fallback_fixture(true);
    publish_late(&mut publisher, 2);

    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!((reply.status, reply.served_by.as_deref()), (200, Some("source")), "{}", reply.body);
    assert_eq!(reply.position, None, "the source's rows are as of the read, not of a published position");
    assert_eq!(body(&reply), json!([{"id": 1, "region": "eu", "score": 9.0}]));
    // The rest of the query applies to the source's rows.
    assert_eq!(body(&server.get("/views/cards?id=eq.1&select=score,id")), json!([{"score": 9.0, "id": 1}]));
    assert_eq!(body(&server.get("/views/cards?id=eq.1&region=eq.us")), json!([]));
    assert_eq!(body(&server.get("/views/cards?id=eq.1&offset=1")), json!([]));
    assert_eq!(body(&server.get("/views/cards?id=eq.2")), json!([{"id": 2, "region": "us", "score": 2.0}]));
    assert_eq!(body(&server.get("/views/cards?id=eq.3")), json!([]), "deleted at the source");
    assert_eq!(source.lookups.load(Ordering::SeqCst), 6);
    // Bad parameters are still refused before anything is read.
    assert_eq!(server.get("/views/cards?id=eq.1&colour=eq.red").status, 400);
    assert_eq!(source.lookups.load(Ordering::SeqCst), 6);

    // Anything but a full-key lookup is served from the view, marked stale.
    for path in ["/views/cards", "/views/cards?id=gte.1", "/views/cards?id=in.(1)", "/views/cards?region=eq.eu"] {
        let reply = server.get(path);
        assert_eq!(
            (reply.status, reply.served_by.as_deref(), reply.stale.as_deref()),
            (200, Some("view"), Some("true"))
        );
        assert_eq!(reply.position.as_deref(), Some("2"));
    }
    assert_eq!(body(&server.get("/views/cards"))[0]["score"], 1.0);
    // A view with on_stale = 'serve' is served from its rows, marked stale.
    let reply = server.get("/views/plain?id=eq.1");
    assert_eq!((reply.served_by.as_deref(), reply.stale.as_deref()), (Some("view"), Some("true")));
    assert_eq!(body(&reply)[0]["score"], 1.0);
    assert_eq!(source.lookups.load(Ordering::SeqCst), 6);

    assert!(metric(&server, "denorm_fallback_reads_total{view=\"cards\"} 6"));
    assert!(metric(&server, "denorm_fallback_errors_total{view=\"cards\"} 0"));
    assert!(metric(&server, "denorm_staleness_budget_exceeded_total{view=\"cards\"} 1"));
    assert!(metric(&server, "denorm_staleness_budget_exceeded_total{view=\"plain\"} 1"));
    assert!(metric(&server, "denorm_view_within_sla{view=\"cards\"} 0"));

    // Back within budget: the view again.
    publish_fresh(&mut publisher, 3);
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!((reply.served_by.as_deref(), reply.stale.as_deref()), (Some("view"), None));
    assert!(metric(&server, "denorm_view_within_sla{view=\"cards\"} 1"));
    assert!(metric(&server, "denorm_staleness_budget_exceeded_total{view=\"cards\"} 1"));
}

#[test]
fn a_source_ahead_with_an_old_pending_commit_sends_lookups_to_the_source() {
    let (mut publisher, server, _source) = fallback_fixture(true);
    publisher.set_source(following(1, None));
    assert_eq!(server.get("/views/cards?id=eq.1").served_by.as_deref(), Some("view"));
    // The source has seen position 5, committed 30 s ago, not yet published.
    publisher.set_source(following(5, Some(now() - 30.0)));
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!(reply.served_by.as_deref(), Some("source"), "{}", reply.body);
    assert_eq!(body(&reply)[0]["score"], 9.0);
    let (_, views) = server.json("/views");
    assert_eq!(views[0]["within_sla"], false);
}

#[test]
fn a_failing_source_is_a_503_and_is_counted() {
    let (mut publisher, server, source) = fallback_fixture(true);
    publish_late(&mut publisher, 2);
    source.broken.store(true, Ordering::SeqCst);
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!(reply.status, 503, "{}", reply.body);
    let error = &body(&reply);
    assert_eq!(error["code"], "fallback_failed");
    assert!(error["message"].as_str().unwrap().contains("database is locked"), "{error}");
    assert!(error["hint"].is_string());
    assert!(metric(&server, "denorm_fallback_reads_total{view=\"cards\"} 1"));
    assert!(metric(&server, "denorm_fallback_errors_total{view=\"cards\"} 1"));
    assert!(metric(&server, "denorm_http_requests_total{route=\"/views/{name}\",status=\"503\"} 1"));
}

#[test]
fn failed_and_starting_views_with_fallback_answer_lookups_from_the_source() {
    let (mut publisher, server, _source) = fallback_fixture(true);
    publisher.fail(0, "integer overflow".into());
    publish_fresh(&mut publisher, 2);
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!((reply.status, reply.served_by.as_deref()), (200, Some("source")), "{}", reply.body);
    assert_eq!(body(&reply)[0]["score"], 9.0);
    let scan = server.get("/views/cards");
    assert_eq!(scan.status, 503);
    assert_eq!(body(&scan)["code"], "view_failed");

    let (_publisher, reader) = channel(card_views());
    let source = Arc::new(Source::default());
    source.rows.lock().unwrap().insert(2, card(2, "us", 2.0));
    let server = Server::start_with(reader, Some(source));
    let reply = server.get("/views/cards?id=eq.2");
    assert_eq!((reply.status, reply.served_by.as_deref()), (200, Some("source")), "{}", reply.body);
    assert_eq!(server.get("/views/cards").status, 503, "starting");
    assert_eq!(server.get("/views/plain?id=eq.2").status, 503, "starting, no fallback");
}

#[test]
fn without_a_fallback_stale_lookups_are_served_by_the_view() {
    let (mut publisher, server, source) = fallback_fixture(false);
    publish_late(&mut publisher, 2);
    let reply = server.get("/views/cards?id=eq.1");
    assert_eq!((reply.status, reply.served_by.as_deref(), reply.stale.as_deref()), (200, Some("view"), Some("true")));
    assert_eq!(body(&reply)[0]["score"], 1.0);
    assert_eq!(source.lookups.load(Ordering::SeqCst), 0);
}

#[test]
fn read_your_writes_with_fallback() {
    let (mut publisher, server, _source) = fallback_fixture(true);
    // Within budget: the wait applies as usual.
    let late = server.get_with("/views/cards?id=eq.1", &[("Denorm-Min-Position", "9"), ("Denorm-Timeout", "30ms")]);
    assert_eq!(late.status, 504, "{}", late.body);
    // Beyond budget, a lookup is answered by the source at once: the source
    // holds every committed write, so no wait is needed.
    publish_late(&mut publisher, 2);
    let reply = server.get_with("/views/cards?id=eq.1", &[("Denorm-Min-Position", "9"), ("Denorm-Timeout", "60s")]);
    assert_eq!((reply.status, reply.served_by.as_deref()), (200, Some("source")), "{}", reply.body);
    // A scan still waits for the position.
    let late = server.get_with("/views/cards", &[("Denorm-Min-Position", "9"), ("Denorm-Timeout", "30ms")]);
    assert_eq!(late.status, 504, "{}", late.body);
}
