//! The HTTP API over a real socket with a real client.

mod common;

use std::time::Duration;

use common::{column, Server};
use denorm_serve::{channel, Publisher, SourceState, SourceStatus, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};
use serde_json::{json, Value as Json};

fn views() -> Vec<ViewInfo> {
    vec![
        ViewInfo {
            name: "cards".into(),
            columns: vec![
                column("id", ScalarType::Int),
                column("region", ScalarType::Text),
                column("score", ScalarType::Float),
                column("active", ScalarType::Bool),
                column("note", ScalarType::Text),
            ],
            key: vec![0],
            max_staleness: Some(Duration::from_secs(1)),
            tables: vec!["products".into(), "reviews".into()],
            ..Default::default()
        },
        ViewInfo {
            name: "tags".into(),
            columns: vec![column("tag", ScalarType::Text), column("n", ScalarType::Int)],
            key: vec![0, 1],
            max_staleness: None,
            tables: vec!["tags".into()],
            ..Default::default()
        },
        ViewInfo {
            name: "broken".into(),
            columns: vec![column("id", ScalarType::Int)],
            key: vec![0],
            max_staleness: None,
            tables: vec!["other".into()],
            ..Default::default()
        },
    ]
}

fn card(id: i64, region: &str, score: Option<f64>, active: Option<bool>, note: Option<&str>) -> Row {
    let values: [Value; 5] = [Datum::Int(id), region.into(), score.into(), active.into(), note.into()];
    Row::pack(&values)
}

fn tag(t: &str, n: i64) -> Row {
    Row::pack([Datum::text(t), Datum::Int(n)])
}

/// A server over the fixture, published at position 7; `broken` has failed.
fn fixture() -> (Publisher, Server) {
    let (mut publisher, reader) = channel(views());
    publisher.apply(
        0,
        &[
            (card(3, "eu", Some(2.0), None, Some("x,y")), 1),
            (card(1, "eu", Some(4.5), Some(true), Some("a b")), 1),
            (card(5, "us", Some(4.5), Some(false), Some("q")), 1),
            (card(2, "us", None, Some(false), None), 1),
            (card(4, "asia", Some(3.25), Some(true), Some("ż")), 1),
        ],
    );
    publisher.apply(1, &[(tag("red", 1), 2), (tag("blue", 2), 1)]);
    publisher.apply(2, &[(Row::pack([Datum::Int(1)]), 1)]);
    publisher.publish(Position(5), &[("products".into(), 0.0)]);
    publisher.fail(2, "key violation: two rows have key (1)".into());
    publisher.publish(Position(7), &[]);
    publisher.set_source(SourceStatus {
        state: SourceState::Following,
        head: Some(Position(7)),
        oldest_pending_commit_at: None,
        last_error: None,
        disconnected_since: None,
    });
    let server = Server::start(reader);
    (publisher, server)
}

fn ids(server: &Server, path: &str) -> Vec<i64> {
    let (status, body) = server.json(path);
    assert_eq!(status, 200, "{path}: {body}");
    body.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn views_lists_every_view_with_its_contract_fields() {
    let (_p, server) = fixture();
    let (status, body) = server.json("/views");
    assert_eq!(status, 200);
    let cards = &body[0];
    assert_eq!(cards["name"], "cards");
    assert_eq!(cards["columns"], json!(["id", "region", "score", "active", "note"]));
    assert_eq!(cards["key"], json!(["id"]));
    assert_eq!(cards["rows"], 5);
    assert_eq!(cards["position"], 7);
    assert!(cards["freshness_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(cards["max_staleness_seconds"], 1.0);
    assert!(cards["within_sla"].is_boolean());
    assert_eq!(cards["status"], "ok");
    assert_eq!(cards["error"], Json::Null);
    assert_eq!(
        cards["column_types"],
        json!({"id": "integer", "region": "text", "score": "double", "active": "boolean", "note": "text"})
    );
    assert_eq!(cards["tables"], json!(["products", "reviews"]));
    let tags = &body[1];
    assert_eq!(
        (tags["rows"].clone(), tags["max_staleness_seconds"].clone(), tags["within_sla"].clone()),
        (json!(3), Json::Null, json!(true))
    );
    let broken = &body[2];
    assert_eq!((broken["status"].clone(), broken["position"].clone()), (json!("failed"), json!(5)));
    assert_eq!(broken["error"], "key violation: two rows have key (1)");
}

#[test]
fn rows_render_every_type_in_key_order() {
    let (_p, server) = fixture();
    let reply = server.get("/views/cards");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.position.as_deref(), Some("7"));
    assert!(reply.content_type.starts_with("application/json"), "{}", reply.content_type);
    assert!(
        reply.body.starts_with(r#"[{"id":1,"region":"eu","score":4.5,"active":true,"note":"a b"},"#),
        "{}",
        reply.body
    );
    let rows: Json = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(rows[1], json!({"id": 2, "region": "us", "score": null, "active": false, "note": null}));
    assert!(rows[2]["score"].is_f64() && rows[2]["id"].is_i64(), "doubles stay doubles: {}", rows[2]);
    assert_eq!(ids(&server, "/views/cards"), vec![1, 2, 3, 4, 5]);
    // A multiset view returns each copy.
    let (_, tags) = server.json("/views/tags");
    assert_eq!(tags, json!([{"tag": "blue", "n": 2}, {"tag": "red", "n": 1}, {"tag": "red", "n": 1}]));
}

#[test]
fn filters_follow_sql_semantics() {
    let (_p, server) = fixture();
    let cases: &[(&str, &[i64])] = &[
        ("region=eq.eu", &[1, 3]),
        ("region=neq.eu", &[2, 4, 5]),
        ("score=lt.4", &[3, 4]),
        ("score=lte.4.5", &[1, 3, 4, 5]),
        ("score=gt.2", &[1, 4, 5]),
        ("score=gte.4.5&region=eq.us", &[5]),
        ("score=is.null", &[2]),
        ("score=not.is.null", &[1, 3, 4, 5]),
        ("score=neq.4.5", &[3, 4]),
        ("active=eq.true", &[1, 4]),
        ("active=is.false", &[2, 5]),
        ("active=not.eq.true", &[2, 5]),
        ("id=in.(2,4,9)", &[2, 4]),
        ("id=gt.1.5&id=lt.4", &[2, 3]),
        ("id=eq.2.0", &[2]),
        ("id=eq.2.5", &[]),
        ("note=eq.a%20b", &[1]),
        ("note=eq.a+b", &[1]),
        ("note=in.(%22x,y%22,q)", &[3, 5]),
        ("note=eq.%C5%BC", &[4]),
        ("region=eq.mars", &[]),
    ];
    for (query, want) in cases {
        assert_eq!(ids(&server, &format!("/views/cards?{query}")), *want, "{query}");
    }
}

#[test]
fn key_lookups_return_the_row_and_apply_remaining_filters() {
    let (_p, server) = fixture();
    assert_eq!(ids(&server, "/views/cards?id=eq.4"), vec![4]);
    assert_eq!(ids(&server, "/views/cards?id=eq.4&region=eq.eu"), Vec::<i64>::new());
    assert_eq!(ids(&server, "/views/cards?id=eq.4&id=eq.5"), Vec::<i64>::new());
    assert_eq!(ids(&server, "/views/cards?id=eq.42"), Vec::<i64>::new());
    let (_, tags) = server.json("/views/tags?tag=eq.red&n=eq.1");
    assert_eq!(tags.as_array().unwrap().len(), 2, "a multiset lookup returns every copy");
}

#[test]
fn ordering_pagination_and_select() {
    let (_p, server) = fixture();
    let cases: &[(&str, &[i64])] = &[
        ("order=score.desc", &[2, 1, 5, 4, 3]),
        ("order=score.desc.nullslast", &[1, 5, 4, 3, 2]),
        ("order=score.asc", &[3, 4, 1, 5, 2]),
        ("order=score.nullsfirst", &[2, 3, 4, 1, 5]),
        ("order=region,score.desc", &[4, 1, 3, 2, 5]),
        ("order=region.desc,id.desc", &[5, 2, 3, 1, 4]),
        ("limit=2", &[1, 2]),
        ("limit=2&offset=2", &[3, 4]),
        ("limit=2&offset=4", &[5]),
        ("offset=9", &[]),
        ("limit=0", &[]),
        ("order=score.desc&limit=2&offset=1", &[1, 5]),
    ];
    for (query, want) in cases {
        assert_eq!(ids(&server, &format!("/views/cards?{query}")), *want, "{query}");
    }
    let (_, rows) = server.json("/views/cards?select=note,id&id=lte.2");
    assert_eq!(rows, json!([{"note": "a b", "id": 1}, {"note": null, "id": 2}]));
    assert_eq!(server.get("/views/cards?select=note,id&limit=1").body, r#"[{"note":"a b","id":1}]"#);
    let (_, tags) = server.json("/views/tags?limit=2&offset=1");
    assert_eq!(tags, json!([{"tag": "red", "n": 1}, {"tag": "red", "n": 1}]));
}

fn error(server: &Server, path: &str) -> (u16, String, Json) {
    let (status, body) = server.json(path);
    let e = &body;
    assert!(e["message"].is_string(), "{path}: {body}");
    (status, e["code"].as_str().unwrap().to_owned(), body)
}

#[test]
fn errors_have_status_code_and_message() {
    let (_p, server) = fixture();
    let (status, code, body) = error(&server, "/views/nope");
    assert_eq!((status, code.as_str()), (404, "unknown_view"));
    assert_eq!(body["hint"], "views: cards, tags, broken");

    let bad = [
        ("/views/cards?colour=eq.red", "colour"),
        ("/views/cards?id=like.1", "like"),
        ("/views/cards?id=eq.one", "one"),
        ("/views/cards?active=eq.yes", "yes"),
        ("/views/cards?id=1", "op.value"),
        ("/views/cards?limit=ten", "limit"),
        ("/views/cards?offset=-1", "offset"),
        ("/views/cards?order=colour.desc", "colour"),
        ("/views/cards?order=id.sideways", "sideways"),
        ("/views/cards?select=id,colour", "colour"),
    ];
    for (path, mentioned) in bad {
        let (status, code, body) = error(&server, path);
        assert_eq!((status, code.as_str()), (400, "bad_parameter"), "{path}");
        assert!(body["message"].as_str().unwrap().contains(mentioned), "{path}: {body}");
    }

    let (status, code, body) = error(&server, "/views/broken");
    assert_eq!((status, code.as_str()), (503, "view_failed"));
    assert!(body["message"].as_str().unwrap().contains("key violation"), "{body}");

    let (status, code, _) = error(&server, "/nowhere");
    assert_eq!((status, code.as_str()), (404, "not_found"));
}

#[test]
fn a_view_is_starting_until_the_first_publish() {
    let (mut publisher, reader) = channel(views());
    let server = Server::start(reader);
    let (status, code, _) = error(&server, "/views/cards");
    assert_eq!((status, code.as_str()), (503, "starting"));
    let (status, body) = server.json("/views");
    assert_eq!((status, body[0]["status"].clone(), body[0]["position"].clone()), (200, json!("starting"), Json::Null));
    publisher.publish(Position(1), &[]);
    assert_eq!(ids(&server, "/views/cards"), Vec::<i64>::new());
}

#[test]
fn health_through_starting_ok_and_degraded() {
    let (mut publisher, reader) = channel(views());
    let server = Server::start(reader);
    publisher.set_source(SourceStatus {
        state: SourceState::Snapshotting { rows_read: 250, rows_total: Some(1000) },
        head: Some(Position(10)),
        ..Default::default()
    });
    let (status, body) = server.json("/health");
    assert_eq!(status, 503);
    assert_eq!(body["status"], "starting");
    assert_eq!(body["source_position"], Json::Null);
    assert_eq!(body["source"]["state"], "snapshotting");
    assert_eq!(body["source"]["snapshot"], json!({"rows_read": 250, "rows_total": 1000}));

    publisher.publish(Position(10), &[]);
    publisher.set_source(SourceStatus {
        state: SourceState::Following,
        head: Some(Position(13)),
        ..Default::default()
    });
    let (status, body) = server.json("/health");
    assert_eq!((status, body["status"].clone()), (200, json!("ok")));
    assert_eq!(body["source_position"], 10);
    assert_eq!(body["source"]["head_position"], 13);
    assert_eq!(body["source"]["lag_changes"], 3);
    assert_eq!(body["failed_views"], json!([]));
    assert_eq!(body["problems"], json!([]));

    publisher.fail(2, "integer overflow".into());
    publisher.publish(Position(13), &[]);
    let (status, body) = server.json("/health");
    assert_eq!((status, body["status"].clone()), (200, json!("degraded")));
    assert_eq!(body["failed_views"], json!([{"name": "broken", "error": "integer overflow"}]));
    assert!(body["problems"][0].as_str().unwrap().contains("broken"), "{body}");

    publisher.set_source(SourceStatus {
        state: SourceState::Retrying { error: "connection refused".into() },
        head: Some(Position(13)),
        last_error: Some("connection refused".into()),
        ..Default::default()
    });
    let (_, body) = server.json("/health");
    assert_eq!(body["source"]["state"], "retrying");
    assert_eq!(body["source"]["last_error"], "connection refused");
    assert!(body["problems"][1].as_str().unwrap().contains("connection refused"), "{body}");
}

#[test]
fn metrics_are_prometheus_text_with_route_templates() {
    let (publisher, server) = fixture();
    publisher.metrics().changes_applied("products", 5);
    publisher.metrics().undecodable("reviews", 1);
    publisher.metrics().snapshot_rows(100);
    publisher.metrics().batch_applied(0.002);
    server.get("/views/cards?id=eq.1");
    server.get("/views/nope");
    server.get("/nowhere");
    let reply = server.get("/metrics");
    assert_eq!(reply.status, 200);
    assert!(reply.content_type.starts_with("text/plain; version=0.0.4"), "{}", reply.content_type);
    let text = reply.body;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let name = line.trim_start_matches("# HELP ").trim_start_matches("# TYPE ");
        assert!(name.starts_with("denorm_"), "{line}");
    }
    for expected in [
        r#"denorm_changes_applied_total{table="products"} 5"#,
        r#"denorm_changes_undecodable_total{table="reviews"} 1"#,
        "denorm_snapshot_rows_total 100",
        r#"denorm_view_rows{view="cards"} 5"#,
        r#"denorm_view_rows{view="tags"} 3"#,
        r#"denorm_view_position{view="cards"} 7"#,
        r#"denorm_view_failed{view="broken"} 1"#,
        r#"denorm_view_failed{view="cards"} 0"#,
        r#"denorm_freshness_seconds_count{view="cards"} 1"#,
        r#"denorm_freshness_seconds_bucket{le="0.0005",view="cards"} 0"#,
        r#"denorm_freshness_seconds_bucket{le="30.0",view="cards"} 0"#,
        "denorm_batch_apply_seconds_count 1",
        "denorm_source_lag_changes 0",
        r#"denorm_http_requests_total{route="/views/{name}",status="200"} 1"#,
        r#"denorm_http_requests_total{route="/views/{name}",status="404"} 1"#,
        r#"denorm_http_requests_total{route="unmatched",status="404"} 1"#,
        "# HELP denorm_freshness_seconds ",
        "# TYPE denorm_freshness_seconds histogram",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
}

/// Read-your-writes: `Denorm-Min-Position` waits until the views reflect the
/// position (bounded by `Denorm-Timeout` or `timeout`), else 504 with the
/// current position.
#[test]
fn min_position_waits_for_the_position_or_times_out() {
    let (mut publisher, server) = fixture();
    let reached = server.get_with("/views/cards?id=eq.1", &[("Denorm-Min-Position", "7")]);
    assert_eq!((reached.status, reached.position.as_deref()), (200, Some("7")), "{}", reached.body);

    let late = server.get_with("/views/cards?id=eq.1", &[("Denorm-Min-Position", "9"), ("Denorm-Timeout", "30ms")]);
    assert_eq!((late.status, late.position.as_deref()), (504, Some("7")), "{}", late.body);
    let body: Json = serde_json::from_str(&late.body).unwrap();
    assert_eq!(body["code"], "position_timeout");
    let late = server.get_with("/views/cards?id=eq.1&timeout=0", &[("Denorm-Min-Position", "9")]);
    assert_eq!(late.status, 504, "{}", late.body);

    for (headers, parameter) in [
        (vec![("Denorm-Min-Position", "x")], "denorm-min-position"),
        (vec![("Denorm-Min-Position", "9"), ("Denorm-Timeout", "2h")], "denorm-timeout"),
    ] {
        let bad = server.get_with("/views/cards", &headers);
        assert_eq!(bad.status, 400, "{}", bad.body);
        assert!(bad.body.contains(parameter), "{}", bad.body);
    }

    // A request waiting for position 8 is answered by the publish of 8,
    // with the row that batch brought.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| server.get_with("/views/cards?id=eq.6", &[("Denorm-Min-Position", "8")]));
        publisher.apply(0, &[(card(6, "eu", Some(1.0), None, None), 1)]);
        publisher.publish(Position(8), &[]);
        let reply = waiting.join().unwrap();
        assert_eq!((reply.status, reply.position.as_deref()), (200, Some("8")), "{}", reply.body);
        let rows: Json = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(rows[0]["id"], 6, "{rows}");
    });
}

#[test]
fn json_columns_are_served_as_json() {
    let docs = ViewInfo {
        name: "docs".into(),
        columns: vec![column("id", ScalarType::Int), column("doc", ScalarType::Json), column("note", ScalarType::Text)],
        key: vec![0],
        tables: vec!["products".into()],
        ..Default::default()
    };
    let (mut publisher, reader) = channel(vec![docs]);
    let doc = r#"{"name":"mug","reviews":[{"id":9,"rating":5},{"id":4,"rating":null}],"price":2.5}"#;
    let rows = [
        (Row::pack([Datum::Int(1), Datum::text(doc), Datum::text("[1]")]), 1),
        (Row::pack([Datum::Int(2), Datum::Null, Datum::Null]), 1),
    ];
    publisher.apply(0, &rows);
    publisher.publish(Position(3), &[]);
    let server = Server::start(reader);
    let (status, body) = server.json("/views/docs?order=id.asc");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!([
            {"id": 1, "doc": {"name": "mug", "reviews": [{"id": 9, "rating": 5}, {"id": 4, "rating": null}], "price": 2.5},
             "note": "[1]"},
            {"id": 2, "doc": null, "note": null},
        ])
    );
    let (_, views) = server.json("/views");
    assert_eq!(views[0]["column_types"]["doc"], "json");
    // JSON columns take JSON paths and containment.
    let (status, body) = server.json("/views/docs?doc=eq.x");
    assert_eq!((status, body), (200, json!([])));
    let (status, body) =
        server.json("/views/docs?doc=cs.%7B%22name%22:%22mug%22%7D&select=id,name:doc-%3E%3Ename,doc-%3Eprice");
    assert_eq!((status, body), (200, json!([{"id": 1, "name": "mug", "price": 2.5}])));
    let (_, body) = server.json("/views/docs?doc-%3Ereviews-%3E0-%3Erating=gte.5&select=id");
    assert_eq!(body, json!([{"id": 1}]));
}
