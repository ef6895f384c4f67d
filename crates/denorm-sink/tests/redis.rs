//! The Redis sink against a real `redis-server` (the one `scripts/redis`
//! starts; `DENORM_TEST_REDIS_URL`): what `apply`, `rebuild` and `read`
//! leave in Redis, read back by a separate client. Each test writes under
//! a prefix of its own, so the tests share the server.

use std::time::Duration;

use denorm_sink::hub::differences;
use denorm_sink::redis::{Format, RedisOptions, RedisSink};
use denorm_sink::{ColumnSpec, Sink, SinkBatch, SinkError, ViewSpec};
use denorm_types::{consolidate, Datum, Diff, Position, Row, ScalarType};
use proptest::prelude::*;
use redis::Commands;
use rust_decimal::Decimal;

fn url() -> String {
    std::env::var("DENORM_TEST_REDIS_URL").expect(
        "DENORM_TEST_REDIS_URL is not set: the Redis sink tests need a server; \
         run `export \"$(scripts/redis start | tail -n1)\"` (scripts/test does)",
    )
}

fn client() -> redis::Connection {
    redis::Client::open(url()).unwrap().get_connection().unwrap()
}

/// A sink writing under `prefix`, which is emptied first.
fn sink(prefix: &str, format: Format, ttl: Option<Duration>) -> RedisSink {
    let mut c = client();
    let keys: Vec<String> = c.keys(format!("{prefix}*")).unwrap();
    for key in keys {
        let _: () = c.del(key).unwrap();
    }
    RedisSink::new(RedisOptions { url: url(), prefix: prefix.into(), format, ttl }).unwrap()
}

fn column(name: &str, ty: ScalarType) -> ColumnSpec {
    ColumnSpec { name: name.into(), ty, nullable: true }
}

/// `products(id int key, name text, price numeric, rating float, tags json)`.
fn products() -> ViewSpec {
    ViewSpec {
        name: "products".into(),
        columns: vec![
            column("id", ScalarType::Int),
            column("name", ScalarType::Text),
            column("price", ScalarType::Numeric),
            column("rating", ScalarType::Float),
            column("tags", ScalarType::Json),
        ],
        key: vec![0],
        ..Default::default()
    }
}

fn product(id: i64, name: &str, cents: i64, rating: Option<f64>) -> Row {
    Row::pack(
        [
            Datum::Int(id),
            Datum::text(name),
            Datum::Numeric(Decimal::new(cents, 2)),
            rating.map_or(Datum::Null, Datum::Float),
            Datum::text("[\"a\",1]"),
        ]
        .iter(),
    )
}

fn batch(position: u64, changes: Vec<(Row, Diff)>) -> SinkBatch {
    SinkBatch { position: Position(position), committed_at: None, views: vec![Some(changes)] }
}

fn hash(key: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = client().hgetall(key).unwrap();
    fields.sort();
    fields
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn sorted(mut rows: Vec<(Row, Diff)>) -> Vec<(Row, Diff)> {
    consolidate(&mut rows);
    rows
}

#[test]
fn hash_rows_follow_inserts_updates_and_deletes_with_the_position() {
    let mut sink = sink("t1:", Format::Hash, None);
    assert_eq!(sink.open(&[products()]).unwrap(), vec![None]);
    let (a, b) = (product(1, "lamp", 1950, Some(4.5)), product(2, "desk", 10000, None));
    sink.apply(&batch(10, vec![(a.clone(), 1), (b.clone(), 1)])).unwrap();
    assert_eq!(
        hash("t1:products:1"),
        pairs(&[("id", "1"), ("name", "lamp"), ("price", "19.50"), ("rating", "4.5"), ("tags", "[\"a\",1]")])
    );
    // NULL: no field.
    assert_eq!(hash("t1:products:2").len(), 4);
    // An update (rating set to NULL, price changed) and a delete.
    let a2 = product(1, "lamp", 1800, None);
    sink.apply(&batch(11, vec![(a.clone(), -1), (a2.clone(), 1), (b.clone(), -1)])).unwrap();
    assert_eq!(
        hash("t1:products:1"),
        pairs(&[("id", "1"), ("name", "lamp"), ("price", "18.00"), ("tags", "[\"a\",1]")])
    );
    assert!(!client().exists::<_, bool>("t1:products:2").unwrap());
    let position: String = client().hget("t1:denorm:sink:positions", "products").unwrap();
    assert_eq!(position, "11");
    // A new sink over the same keys finds the position and the rows.
    let mut again = sink_without_clearing("t1:", Format::Hash);
    assert_eq!(again.open(&[products()]).unwrap(), vec![Some(Position(11))]);
    assert_eq!(again.read(0).unwrap(), vec![(a2, 1)]);
}

fn sink_without_clearing(prefix: &str, format: Format) -> RedisSink {
    RedisSink::new(RedisOptions { url: url(), prefix: prefix.into(), format, ttl: None }).unwrap()
}

#[test]
fn json_rows_are_the_api_objects_and_carry_the_ttl() {
    let mut sink = sink("t2:", Format::Json, Some(Duration::from_secs(600)));
    sink.open(&[products()]).unwrap();
    sink.apply(&batch(3, vec![(product(7, "chair \"x\"", 5, None), 1)])).unwrap();
    let json: String = client().get("t2:products:7").unwrap();
    assert_eq!(json, r#"{"id":7,"name":"chair \"x\"","price":0.05,"rating":null,"tags":["a",1]}"#);
    let ttl: i64 = client().pttl("t2:products:7").unwrap();
    assert!(ttl > 590_000 && ttl <= 600_000, "pttl {ttl}");
    assert_eq!(sink.read(0).unwrap(), vec![(product(7, "chair \"x\"", 5, None), 1)]);
}

#[test]
fn rebuild_replaces_the_keys_and_reconcile_repairs_hand_edits() {
    let mut sink = sink("t3:", Format::Hash, None);
    sink.open(&[products()]).unwrap();
    let rows: Vec<Row> = (1..=50).map(|i| product(i, &format!("p{i}"), i * 100, Some(i as f64 / 4.0))).collect();
    sink.apply(&batch(1, rows.iter().map(|r| (r.clone(), 1)).collect())).unwrap();
    // The view moved on while the sink was away: rows 1..=10 gone, 51 new.
    let view: Vec<(Row, Diff)> =
        sorted(rows[10..].iter().cloned().chain([product(51, "new", 1, None)]).map(|r| (r, 1)).collect());
    sink.rebuild(0, &mut view.iter().map(|(r, d)| (r, *d)), Position(9)).unwrap();
    assert_eq!(sorted(sink.read(0).unwrap()), view);
    assert_eq!(sink.open(&[products()]).unwrap(), vec![Some(Position(9))]);

    // Hand edits: a changed value, an extra field, a deleted key, a key of
    // another type, a stray key under the view's prefix.
    let mut c = client();
    let _: () = c.hset("t3:products:20", "name", "edited").unwrap();
    let _: () = c.hset("t3:products:21", "extra", "x").unwrap();
    let _: () = c.del("t3:products:22").unwrap();
    let _: () = c.del("t3:products:23").unwrap();
    let _: () = c.set("t3:products:23", "not a hash").unwrap();
    let _: () = c.hset("t3:products:999", "id", "999").unwrap();
    let found = sink.read(0).unwrap();
    let (report, diff) = differences(&products(), &view, found);
    assert!(report.drift() >= 4, "{report:?}");
    sink.apply(&SinkBatch { position: Position(9), committed_at: None, views: vec![Some(diff)] }).unwrap();
    assert_eq!(sorted(sink.read(0).unwrap()), view);
    assert_eq!(hash("t3:products:21").len(), 5, "the extra field is gone");
    let (report, _) = differences(&products(), &view, sink.read(0).unwrap());
    assert_eq!(report.drift(), 0);

    // A sample of keys reads just those keys (a missing one reads nothing).
    let _: () = c.hset("t3:products:30", "name", "edited again").unwrap();
    let sample: Vec<Row> = [30, 31, 5].iter().map(|&id| Row::pack([Datum::Int(id)].iter())).collect();
    let found = sink.read_keys(0, &[0], &sample).unwrap();
    let mut expected: Vec<(Row, Diff)> =
        vec![(product(30, "edited again", 3000, Some(7.5)), 1), (view[20].0.clone(), 1)];
    expected.sort();
    assert_eq!(found, expected);
}

fn feed() -> ViewSpec {
    // home_feed(owner_id, post_id, created_at text, body): order_by created_at DESC, post_id DESC.
    ViewSpec {
        name: "home_feed".into(),
        columns: vec![
            column("owner_id", ScalarType::Int),
            column("post_id", ScalarType::Int),
            column("created_at", ScalarType::Text),
            column("body", ScalarType::Text),
        ],
        key: vec![0, 1, 2, 3],
        partition_by: Some(0),
        order: vec![(2, true), (1, true)],
        indexes: Vec::new(),
        feed: None,
    }
}

fn post(owner: i64, id: i64, at: &str) -> Row {
    Row::pack([Datum::Int(owner), Datum::Int(id), Datum::text(at), Datum::text("hi")].iter())
}

#[test]
fn a_feed_page_is_one_zrevrange() {
    let mut sink = sink("t4:", Format::Hash, None);
    sink.open(&[feed()]).unwrap();
    let posts = [
        post(1, 10, "2024-01-01 10:00"),
        post(1, 11, "2024-01-03 09:00"),
        post(1, 12, "2024-01-03 09:00"),
        post(1, 13, "2024-01-02 23:59"),
        post(2, 14, "2024-01-05 00:00"),
    ];
    sink.apply(&batch(5, posts.iter().map(|r| (r.clone(), 1)).collect())).unwrap();
    let page: Vec<String> = client().zrevrange("t4:home_feed:1", 0, 2).unwrap();
    let ids: Vec<i64> = page
        .iter()
        .map(|m| {
            let json: serde_json::Value = serde_json::from_str(m.split_once('|').unwrap().1).unwrap();
            json["post_id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids, [12, 11, 13]);
    sink.apply(&batch(6, vec![(posts[1].clone(), -1)])).unwrap();
    assert_eq!(client().zcard::<_, i64>("t4:home_feed:1").unwrap(), 3);
    let expected = sorted(posts.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, r)| (r.clone(), 1)).collect());
    assert_eq!(sorted(sink.read(0).unwrap()), expected);
}

/// Regression: a view named `denorm` (keys `denorm:…`) once found the
/// positions hash `denorm:sink:positions` among its keys, and a rebuild
/// deleted it as a stray key.
#[test]
fn a_view_named_denorm_keeps_the_positions() {
    let mut sink = sink("t7:", Format::Hash, None);
    let views = [ViewSpec { name: "denorm".into(), ..products() }, products()];
    sink.open(&views).unwrap();
    let rows = [(product(1, "a", 1, None), 1)];
    let both =
        SinkBatch { position: Position(4), committed_at: None, views: vec![Some(rows.to_vec()), Some(rows.to_vec())] };
    sink.apply(&both).unwrap();
    sink.rebuild(0, &mut rows.iter().map(|(r, d)| (r, *d)), Position(5)).unwrap();
    assert_eq!(sink.open(&views).unwrap(), vec![Some(Position(5)), Some(Position(4))]);
    assert_eq!(sink.read(0).unwrap(), rows.to_vec());
}

#[test]
fn a_view_without_a_key_is_refused_with_a_hint() {
    let mut sink = sink("t5:", Format::Hash, None);
    let mut spec = products();
    spec.key = vec![0, 1, 2, 3, 4];
    let error = sink.open(&[spec]).unwrap_err();
    assert!(matches!(error, SinkError::Unsupported { .. }), "{error}");
    assert!(error.to_string().contains("no key"), "{error}");
}

#[test]
fn an_unreachable_server_is_a_transient_error() {
    let mut sink = RedisSink::new(RedisOptions {
        url: "redis://127.0.0.1:1".into(),
        prefix: String::new(),
        format: Format::Hash,
        ttl: None,
    })
    .unwrap();
    let error = sink.open(&[products()]).unwrap_err();
    assert!(error.is_transient(), "{error}");
}

/// Any value of a column type, as the engine can produce it.
fn datum(ty: ScalarType) -> BoxedStrategy<Datum<'static>> {
    let text = "[a-z:\\\\' 0-9.]{0,6}".prop_map(Datum::owned_text);
    let value = match ty {
        ScalarType::Int => any::<i64>().prop_map(Datum::Int).boxed(),
        ScalarType::Float => prop_oneof![any::<f64>().prop_map(Datum::Float), Just(Datum::Float(-0.0))].boxed(),
        ScalarType::Text => text.boxed(),
        ScalarType::Numeric => (any::<i64>(), 0u32..6).prop_map(|(m, s)| Datum::Numeric(Decimal::new(m, s))).boxed(),
        ScalarType::Timestamp => (-1_000_000_000_000_000i64..4_000_000_000_000_000).prop_map(Datum::Timestamp).boxed(),
        ScalarType::Date => (-100_000i32..100_000).prop_map(Datum::Date).boxed(),
        ScalarType::Uuid => any::<[u8; 16]>().prop_map(Datum::Uuid).boxed(),
        ScalarType::Bool => any::<bool>().prop_map(Datum::Bool).boxed(),
        // A typeless SQLite column: numbers, text that looks like numbers, BLOBs.
        _ => prop_oneof![
            any::<i64>().prop_map(Datum::Int),
            any::<f64>().prop_map(Datum::Float),
            text,
            "-?[0-9]{1,3}(\\.[0-9])?".prop_map(Datum::owned_text),
            proptest::collection::vec(any::<u8>(), 0..4).prop_map(|b| Datum::Blob(b.into())),
        ]
        .boxed(),
    };
    prop_oneof![1 => Just(Datum::Null), 6 => value].boxed()
}

const TYPES: [ScalarType; 9] = [
    ScalarType::Int,
    ScalarType::Float,
    ScalarType::Text,
    ScalarType::Numeric,
    ScalarType::Timestamp,
    ScalarType::Date,
    ScalarType::Uuid,
    ScalarType::Bool,
    ScalarType::Any,
];

fn typed_view() -> ViewSpec {
    let mut columns = vec![column("k", ScalarType::Int)];
    columns.extend(TYPES.iter().enumerate().map(|(i, ty)| column(&format!("c{i}"), *ty)));
    ViewSpec { name: "typed".into(), columns, key: vec![0], ..Default::default() }
}

fn typed_row() -> impl Strategy<Value = Vec<Datum<'static>>> {
    TYPES.iter().map(|ty| datum(*ty)).collect::<Vec<_>>()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every value of every column type reads back as itself (NaN and the
    /// infinities too in the hash layout; the JSON layout writes them as
    /// null, as the HTTP API does, which `stored` says).
    #[test]
    fn values_read_back_exactly(rows in proptest::collection::vec(typed_row(), 1..8), json in any::<bool>()) {
        let format = if json { Format::Json } else { Format::Hash };
        let prefix = if json { "t6j:" } else { "t6h:" };
        let mut sink = sink(prefix, format, None);
        sink.open(&[typed_view()]).unwrap();
        let rows: Vec<(Row, Diff)> = rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| (Row::pack([Datum::Int(i as i64)].iter().chain(&r)), 1))
            .collect();
        sink.apply(&batch(1, rows.clone())).unwrap();
        let expected: Vec<(Row, Diff)> = rows.iter().map(|(r, d)| (sink.stored(0, r), *d)).collect();
        if !json {
            prop_assert_eq!(&expected, &rows);
        }
        prop_assert_eq!(sorted(sink.read(0).unwrap()), sorted(expected));
    }
}
