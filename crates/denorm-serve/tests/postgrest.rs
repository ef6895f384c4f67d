//! PostgREST's read protocol over a real socket: media types, ranges and
//! counts, HEAD, OPTIONS and CORS, the OpenAPI document, the error shape,
//! time units, and the connection protections (slowloris, idle, limit).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{column, raw_request, RawReply, Server};
use denorm_serve::{channel, Publisher, ServeOptions, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};
use serde_json::json;

fn views() -> Vec<ViewInfo> {
    vec![
        ViewInfo {
            name: "items".into(),
            columns: vec![
                column("id", ScalarType::Int),
                column("name", ScalarType::Text),
                column("price", ScalarType::Float),
                column("flag", ScalarType::Int),
                column("tags", ScalarType::Json),
            ],
            key: vec![0],
            ..Default::default()
        },
        ViewInfo {
            name: "broken".into(),
            columns: vec![column("id", ScalarType::Int)],
            key: vec![0],
            ..Default::default()
        },
    ]
}

fn item(id: i64, name: &str, price: Option<f64>, flag: i64, tags: &str) -> Row {
    let values: [Value; 5] = [Datum::Int(id), name.into(), price.into(), Datum::Int(flag), Datum::owned_text(tags)];
    Row::pack(&values)
}

fn start(options: ServeOptions) -> (Publisher, Server) {
    let (mut publisher, reader) = channel(views());
    publisher.apply(
        0,
        &[
            (item(1, "red mug", Some(2.5), 1, r#"["kitchen","red"]"#), 1),
            (item(2, "blue mug", Some(3.0), 0, r#"["kitchen"]"#), 1),
            (item(3, "red, chair", None, 1, r#"[]"#), 1),
            (item(4, "lamp \"deluxe\"", Some(40.0), 0, r#"["light"]"#), 1),
            (item(5, "desk", Some(120.0), 1, r#"["office","wood"]"#), 1),
        ],
    );
    publisher.publish(Position(5), &[]);
    publisher.fail(1, "cannot read /home/alice/secret/app.db: disk I/O error".into());
    publisher.publish(Position(6), &[]);
    let server = Server::start_configured(reader, None, options);
    (publisher, server)
}

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> RawReply {
    raw_request(&server.url, "GET", path, headers)
}

#[test]
fn ranges_counts_and_content_range() {
    let (_p, server) = start(ServeOptions::default());
    let counted = [("Range", "0-1"), ("Prefer", "count=exact")];
    let r = get(&server, "/views/items?select=id", &counted);
    assert_eq!((r.status, r.header("content-range")), (206, Some("0-1/5")), "{}", r.body);
    assert_eq!(r.header("preference-applied"), Some("count=exact"));
    assert_eq!(r.json(), json!([{"id": 1}, {"id": 2}]));
    let r = get(&server, "/views/items?select=id", &[("Range", "0-1")]);
    assert_eq!((r.status, r.header("content-range")), (200, Some("0-1/*")));
    let r = get(&server, "/views/items?select=id&limit=2&offset=1", &[]);
    assert_eq!((r.header("content-range"), r.json()), (Some("1-2/*"), json!([{"id": 2}, {"id": 3}])));
    // Range and limit/offset intersect.
    let r = get(&server, "/views/items?select=id&offset=1", &[("Range", "0-2"), ("Range-Unit", "items")]);
    assert_eq!((r.header("content-range"), r.json()), (Some("1-2/*"), json!([{"id": 2}, {"id": 3}])));
    let r = get(&server, "/views/items?select=id", &[("Range", "3-")]);
    assert_eq!(r.json(), json!([{"id": 4}, {"id": 5}]));
    let r = get(&server, "/views/items?id=gt.100", &[("Prefer", "count=planned")]);
    assert_eq!((r.status, r.header("content-range"), r.body.as_str()), (200, Some("*/0"), "[]"));
    let r = get(&server, "/views/items?id=gt.100", &[]);
    assert_eq!(r.header("content-range"), Some("*/*"));
    let r = get(&server, "/views/items", &[("Range", "9-10"), ("Prefer", "count=exact")]);
    assert_eq!((r.status, r.header("content-range")), (416, Some("*/5")), "{}", r.body);
    assert_eq!(r.json()["code"], "range_not_satisfiable");
    for bad in ["x", "5-2", "-3"] {
        let r = get(&server, "/views/items", &[("Range", bad)]);
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
    let r = get(&server, "/views/items", &[("Range", "0-1"), ("Range-Unit", "bytes")]);
    assert_eq!(r.status, 400);
    // Multiplicities count: every row of the count is a row of the body.
    let r = get(&server, "/views/items?name=like.*mug", &[("Prefer", "count=estimated")]);
    assert_eq!(r.header("content-range"), Some("0-1/2"));
}

#[test]
fn media_types_csv_and_single_object() {
    let (_p, server) = start(ServeOptions::default());
    let r = get(&server, "/views/items?select=id,name,price&id=in.(3,4)", &[("Accept", "text/csv")]);
    assert_eq!((r.status, r.header("content-type")), (200, Some("text/csv; charset=utf-8")));
    assert_eq!(r.body, "id,name,price\n3,\"red, chair\",\n4,\"lamp \"\"deluxe\"\"\",40.0");
    let single = [("Accept", "application/vnd.pgrst.object+json")];
    let r = get(&server, "/views/items?id=eq.2&select=id,name", &single);
    assert_eq!((r.status, r.json()), (200, json!({"id": 2, "name": "blue mug"})));
    assert!(r.header("content-type").unwrap().starts_with("application/vnd.pgrst.object+json"));
    for (path, details) in [
        ("/views/items", "The result contains more than one row"),
        ("/views/items?id=eq.9", "The result contains 0 rows"),
    ] {
        let r = get(&server, path, &single);
        assert_eq!(r.status, 406, "{}", r.body);
        assert_eq!((r.json()["code"].as_str(), r.json()["details"].as_str()), (Some("PGRST116"), Some(details)));
    }
    let r = get(&server, "/views/items?id=eq.3&select=id,price", &[("Accept", "application/json;nulls=stripped")]);
    assert_eq!(r.body, r#"[{"id":3}]"#);
    let r = get(&server, "/views/items", &[("Accept", "text/html")]);
    assert_eq!((r.status, r.json()["code"].as_str()), (406, Some("not_acceptable")));
    // A browser's Accept list ends in */*: JSON.
    let r = get(&server, "/views/items?id=eq.1&select=id", &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")]);
    assert_eq!((r.status, r.body.as_str()), (200, r#"[{"id":1}]"#));
}

#[test]
fn head_options_and_cors() {
    let options = ServeOptions { cors_origins: vec!["https://app.example".into()], ..Default::default() };
    let (_p, server) = start(options);
    let r = raw_request(&server.url, "HEAD", "/views/items?select=id", &[("Prefer", "count=exact")]);
    assert_eq!((r.status, r.body.as_str(), r.header("content-range")), (200, "", Some("0-4/5")));
    let r = raw_request(&server.url, "OPTIONS", "/views/items", &[]);
    assert_eq!((r.status, r.header("allow")), (200, Some("GET, HEAD, OPTIONS")));
    assert_eq!(r.header("access-control-allow-origin"), None);
    let preflight = [
        ("Origin", "https://app.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "prefer, range"),
    ];
    let r = raw_request(&server.url, "OPTIONS", "/views/items", &preflight);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(r.header("access-control-allow-headers"), Some("prefer, range"));
    assert!(r.header("access-control-allow-methods").unwrap().contains("GET"));
    let r = get(&server, "/views/items?id=eq.1", &[("Origin", "https://app.example")]);
    assert_eq!(r.header("access-control-allow-origin"), Some("https://app.example"));
    assert!(r.header("access-control-expose-headers").unwrap().contains("Content-Range"));
    let r = get(&server, "/views/items?id=eq.1", &[("Origin", "https://evil.example")]);
    assert_eq!((r.status, r.header("access-control-allow-origin")), (200, None));
}

#[test]
fn openapi_document_describes_the_views() {
    let (_p, server) = start(ServeOptions::default());
    let doc = get(&server, "/", &[]).json();
    assert_eq!(doc["openapi"], "3.0.3");
    let items = &doc["paths"]["/views/items"]["get"];
    let names: Vec<&str> =
        items["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for name in ["select", "order", "limit", "offset", "Range", "Prefer", "id", "name", "tags"] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    let schema = &doc["components"]["schemas"]["items"];
    assert_eq!(schema["properties"]["id"], json!({"type": "integer", "format": "int64"}));
    assert_eq!(schema["properties"]["price"]["type"], "number");
    assert_eq!(schema["x-key"], json!(["id"]));
    assert!(items["responses"]["200"]["content"]["text/csv"].is_object());
}

#[test]
fn errors_have_postgrest_shape_and_no_paths() {
    let (_p, server) = start(ServeOptions::default());
    let r = get(&server, "/views/items?nope=eq.1", &[]);
    let body = r.json();
    assert_eq!((r.status, body["code"].as_str()), (400, Some("bad_parameter")));
    for field in ["message", "details", "hint"] {
        assert!(body[field].is_string(), "{field}: {body}");
    }
    assert!(body.get("error").is_none());
    let r = get(&server, "/views/broken", &[]);
    assert_eq!(r.status, 503);
    assert!(r.body.contains("<path>") && !r.body.contains("alice"), "{}", r.body);
    let r = get(&server, "/views/items?id=sl.(1,2)", &[]);
    assert!(r.json()["message"].as_str().unwrap().contains("\"sl\" compares ranges"), "{}", r.body);
    let r = get(&server, "/views/items?select=name::int", &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("invalid input syntax for type integer"));
}

#[test]
fn operators_over_http() {
    let (_p, server) = start(ServeOptions::default());
    let ids = |query: &str| -> Vec<i64> {
        let r = get(&server, &format!("/views/items?select=id&{query}"), &[]);
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        r.json().as_array().unwrap().iter().map(|v| v["id"].as_i64().unwrap()).collect()
    };
    assert_eq!(ids("flag=is.true"), [1, 3, 5]);
    assert_eq!(ids("flag=is.false"), [2, 4]);
    assert_eq!(ids("flag=eq.true"), [1, 3, 5]);
    assert_eq!(ids("name=ilike.*MUG"), [1, 2]);
    assert_eq!(ids("name=fts.red"), [1, 3]);
    assert_eq!(ids("name=wfts.%22red%20mug%22"), [1]);
    assert_eq!(ids("tags=cs.%7Bkitchen%7D"), [1, 2]);
    assert_eq!(ids("tags=ov.%5B%22wood%22,%22light%22%5D"), [4, 5]);
    assert_eq!(ids("tags=cd.%5B%22kitchen%22,%22red%22%5D"), [1, 2, 3]);
    assert_eq!(ids("or=(price.gt.100,price.is.null)"), [3, 5]);
    assert_eq!(ids("not.and=(flag.eq.1,price.lt.10)&order=id.desc"), [5, 4, 2]);
    assert_eq!(ids("price=isdistinct.2.5"), [2, 3, 4, 5]);
    assert_eq!(ids("order=price.desc.nullslast&limit=2"), [5, 4]);
    assert_eq!(ids("order=price.asc.nullsfirst&limit=2"), [3, 1]);
    let r = get(&server, "/views/items?select=*&id=eq.1", &[]);
    assert_eq!(r.json(), json!([{"id": 1, "name": "red mug", "price": 2.5, "flag": 1, "tags": ["kitchen", "red"]}]));
    let r = get(&server, "/views/items?select=n:name,p:price::text,first:tags-%3E%3E0&id=eq.1", &[]);
    assert_eq!(r.json(), json!([{"n": "red mug", "p": "2.5", "first": "kitchen"}]));
}

/// `Denorm-Timeout` and `timeout=` take `500ms`, `2s`, or seconds.
#[test]
fn wait_timeouts_take_units() {
    let (_p, server) = start(ServeOptions::default());
    let r = get(&server, "/views/items?id=eq.1", &[("Denorm-Min-Position", "99"), ("Denorm-Timeout", "0.05")]);
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.json()["message"].as_str().unwrap().contains("within 50 ms"), "{}", r.body);
    let r = get(&server, "/views/items?id=eq.1&timeout=20ms", &[("Denorm-Min-Position", "99")]);
    assert!(r.json()["message"].as_str().unwrap().contains("within 20 ms"), "{}", r.body);
    let r = get(&server, "/views/items?id=eq.1&timeout=soon", &[("Denorm-Min-Position", "99")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["details"], "query parameter or header: timeout");
    let r = get(&server, "/views/items", &[("Denorm-Min-Position", "99"), ("Denorm-Timeout", "61")]);
    assert_eq!(r.json()["details"], "query parameter or header: denorm-timeout");
}

/// Reads until the server closes the connection (or 20 s pass); true if it did.
fn closed_by_server(tcp: &mut TcpStream) -> bool {
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let options = ServeOptions {
        header_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(800),
        max_connections: 12,
        ..Default::default()
    };
    let (_p, server) = start(options);
    let address = server.url.strip_prefix("http://").unwrap().to_owned();
    // Slowloris: partial request lines, some trickling a byte at a time.
    let mut slow: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut tcp = TcpStream::connect(&address).unwrap();
            tcp.write_all(b"GET /views/items HTTP/1.1\r\nHo").unwrap();
            tcp
        })
        .collect();
    for round in 0..6 {
        for tcp in slow.iter_mut().take(4) {
            let _ = tcp.write_all(b"s");
        }
        // Normal requests succeed meanwhile.
        let r = get(&server, &format!("/views/items?id=eq.{}", round % 5 + 1), &[]);
        assert_eq!(r.status, 200, "{}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
    for tcp in &mut slow {
        assert!(closed_by_server(tcp), "a slowloris connection stayed open");
    }
    // An idle keep-alive connection is closed after its request.
    let mut idle = TcpStream::connect(&address).unwrap();
    idle.write_all(format!("GET /health HTTP/1.1\r\nHost: {address}\r\n\r\n").as_bytes()).unwrap();
    assert!(closed_by_server(&mut idle), "an idle keep-alive connection stayed open");
    // With every connection slot held by silent clients, a request waits
    // for them to time out and is then served.
    let _hogs: Vec<TcpStream> = (0..12)
        .map(|_| {
            let mut tcp = TcpStream::connect(&address).unwrap();
            tcp.write_all(b"G").unwrap();
            tcp
        })
        .collect();
    let r = get(&server, "/views/items?id=eq.2", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
}
