//! The Redis sink's throughput and the freshness it adds
//! (`cargo bench -p denorm-sink --bench redis`; needs a server:
//! `DENORM_TEST_REDIS_URL`, e.g. `export "$(scripts/redis start | tail -n1)"`;
//! `DENORM_BENCH_SCALE` scales the 200k rows).
//!
//! Throughput: the same rows (`products(id, name, price numeric, rating
//! float, stock int)`, keyed by `id`) written in `MULTI/EXEC` batches of
//! 10k rows, first as raw pipelined `HSET`s built by hand with the same
//! client crate (the baseline: what any client pays for these commands),
//! then through `RedisSink::apply` (key and value encoding, grouping by
//! key, the position in the same transaction): inserts, then an update of
//! one column of every row (one `HSET` of the changed field each), then
//! the deletes; a rebuild of the whole view from nothing and one that
//! finds every key equal. Ops are Redis commands applied per second.
//!
//! Freshness: batches of 10 changed rows published every 2 ms to a
//! `SinkHub` running the sink; the time from `SinkHub::publish` to the
//! position being stored in Redis (the runner's state after `EXEC`), p50
//! and p99 — what the sink adds to a change's way from the source's commit
//! to the application.

use std::time::{Duration, Instant};

use denorm_serve::{channel, ColumnInfo, ViewInfo};
use denorm_sink::redis::{Format, RedisOptions, RedisSink};
use denorm_sink::{ColumnSpec, Sink, SinkBatch, SinkConfig, SinkHub, ViewSpec};
use denorm_types::{Datum, Diff, Position, Row, ScalarType};
use rust_decimal::Decimal;

const BATCH: usize = 10_000;

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(1.0) as usize
}

fn url() -> String {
    std::env::var("DENORM_TEST_REDIS_URL").expect("DENORM_TEST_REDIS_URL: start a server with scripts/redis start")
}

const COLUMNS: [(&str, ScalarType); 5] = [
    ("id", ScalarType::Int),
    ("name", ScalarType::Text),
    ("price", ScalarType::Numeric),
    ("rating", ScalarType::Float),
    ("stock", ScalarType::Int),
];

fn spec() -> ViewSpec {
    let columns = COLUMNS.iter().map(|(n, ty)| ColumnSpec { name: (*n).into(), ty: *ty, nullable: true }).collect();
    ViewSpec { name: "products".into(), columns, key: vec![0], ..Default::default() }
}

fn row(id: i64, stock: i64) -> Row {
    Row::pack(
        [
            Datum::Int(id),
            Datum::owned_text(format!("product number {id}")),
            Datum::Numeric(Decimal::new(id * 7 % 100_000, 2)),
            Datum::Float((id % 50) as f64 / 10.0),
            Datum::Int(stock),
        ]
        .iter(),
    )
}

fn flush(prefix: &str) {
    let mut c = redis::Client::open(url()).unwrap().get_connection().unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut c).unwrap();
    for chunk in keys.chunks(10_000) {
        redis::cmd("DEL").arg(chunk).query::<()>(&mut c).unwrap();
    }
}

fn report(label: &str, ops: usize, elapsed: Duration, baseline: Option<f64>) -> f64 {
    let rate = ops as f64 / elapsed.as_secs_f64();
    let ratio = baseline.map(|b| format!("  ({:.2}× the baseline)", rate / b)).unwrap_or_default();
    println!("{label:<44} {ops:>9} ops in {:>7.3} s = {:>9.0} ops/s{ratio}", elapsed.as_secs_f64(), rate);
    rate
}

/// Raw pipelined HSETs of every column (the text each value has in the sink's layout).
fn baseline(rows: &[Row], stock_only: bool) -> Duration {
    let mut c = redis::Client::open(url()).unwrap().get_connection().unwrap();
    let started = Instant::now();
    for chunk in rows.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for row in chunk {
            let id = match row.get(0) {
                Datum::Int(i) => i,
                _ => unreachable!(),
            };
            let hset = pipe.cmd("HSET").arg(format!("raw:products:{id}"));
            for (i, (name, _)) in COLUMNS.iter().enumerate() {
                if stock_only && i != 4 {
                    continue;
                }
                let value = match row.get(i) {
                    Datum::Int(v) => v.to_string(),
                    Datum::Text(t) => t.into_owned(),
                    Datum::Numeric(n) => n.to_string(),
                    Datum::Float(x) => format!("{x:?}"),
                    _ => String::new(),
                };
                hset.arg(*name).arg(value);
            }
            hset.ignore();
        }
        pipe.query::<()>(&mut c).unwrap();
    }
    started.elapsed()
}

fn through_sink(sink: &mut RedisSink, batches: &[Vec<(Row, Diff)>], first_position: u64) -> Duration {
    let started = Instant::now();
    for (i, changes) in batches.iter().enumerate() {
        let batch = SinkBatch {
            position: Position(first_position + i as u64),
            committed_at: None,
            views: vec![Some(changes.clone())],
        };
        sink.apply(&batch).unwrap();
    }
    started.elapsed()
}

fn throughput(n: usize) {
    flush("raw:");
    flush("bench:");
    let rows: Vec<Row> = (0..n as i64).map(|id| row(id, 1)).collect();
    let updated: Vec<Row> = (0..n as i64).map(|id| row(id, 2)).collect();
    let chunked = |f: &dyn Fn(usize) -> Vec<(Row, Diff)>| -> Vec<Vec<(Row, Diff)>> {
        (0..n).step_by(BATCH).map(|start| (start..(start + BATCH).min(n)).flat_map(f).collect()).collect()
    };
    let inserts = chunked(&|i| vec![(rows[i].clone(), 1)]);
    let updates = chunked(&|i| vec![(rows[i].clone(), -1), (updated[i].clone(), 1)]);
    let deletes = chunked(&|i| vec![(updated[i].clone(), -1)]);
    let mut sink =
        RedisSink::new(RedisOptions { url: url(), prefix: "bench:".into(), format: Format::Hash, ttl: None }).unwrap();
    sink.open(&[spec()]).unwrap();

    let base = report("baseline: raw pipelined HSET (5 fields)", n, baseline(&rows, false), None);
    report("sink apply: inserts (HSET 5 fields)", n, through_sink(&mut sink, &inserts, 1), Some(base));
    let base_update = report("baseline: raw pipelined HSET (1 field)", n, baseline(&updated, true), None);
    report(
        "sink apply: updates (HSET 1 changed field)",
        n,
        through_sink(&mut sink, &updates, 1_000),
        Some(base_update),
    );
    report("sink apply: deletes (DEL)", n, through_sink(&mut sink, &deletes, 2_000), Some(base_update));

    let started = Instant::now();
    sink.rebuild(0, &mut rows.iter().map(|r| (r, 1)), Position(3_000)).unwrap();
    report("sink rebuild from nothing (one MULTI/EXEC)", n, started.elapsed(), Some(base));
    let started = Instant::now();
    sink.rebuild(0, &mut rows.iter().map(|r| (r, 1)), Position(3_001)).unwrap();
    report("sink rebuild finding every key equal (rows read)", n, started.elapsed(), None);
    flush("raw:");
    flush("bench:");
}

fn freshness(batches: usize) {
    flush("fresh:");
    let info = ViewInfo {
        name: "products".into(),
        columns: COLUMNS.iter().map(|(n, ty)| ColumnInfo { name: (*n).into(), ty: *ty }).collect(),
        key: vec![0],
        ..ViewInfo::default()
    };
    let (mut publisher, reader) = channel(vec![info]);
    let sink =
        RedisSink::new(RedisOptions { url: url(), prefix: "fresh:".into(), format: Format::Hash, ttl: None }).unwrap();
    let config = SinkConfig {
        name: "redis".into(),
        sink: Box::new(sink),
        views: vec![(0, spec())],
        queue_rows: 1_000_000,
        reconcile_every: None,
        repair: false,
        reconcile_sample: None,
    };
    let hub = SinkHub::start(vec![config], reader.clone());
    let wait_for = |position: u64| {
        let until = Instant::now() + Duration::from_secs(30);
        while hub.state("redis").and_then(|s| s.positions[0]) != Some(Position(position)) {
            assert!(Instant::now() < until, "the sink did not store position {position}");
            std::thread::sleep(Duration::from_micros(20));
        }
    };
    hub.publish(&mut publisher, Position(1), &[], &[], true);
    wait_for(1);
    let mut latencies = Vec::with_capacity(batches);
    for b in 0..batches as i64 {
        let changes: Vec<(Row, Diff)> = (0..10).map(|i| (row(b * 10 + i, 1), 1)).collect();
        publisher.apply(0, &changes);
        let position = 2 + b as u64;
        let started = Instant::now();
        hub.publish(&mut publisher, Position(position), &[], &[(0, 0, changes)], false);
        wait_for(position);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(2));
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "freshness added by the sink (publish → position stored in Redis, {batches} batches of 10 rows): p50 {:.3} ms, p99 {:.3} ms",
        at(0.5),
        at(0.99)
    );
    drop(hub);
    flush("fresh:");
}

fn main() {
    let n = scale(200_000);
    println!("Redis sink, {n} rows, batches of {BATCH} (DENORM_BENCH_SCALE scales the rows)");
    throughput(n);
    freshness(scale(2_000).max(100));
}
