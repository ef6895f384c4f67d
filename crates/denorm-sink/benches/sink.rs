//! Table sinks' write rate and the freshness they add
//! (`cargo bench -p denorm-sink --bench sink`; `DENORM_BENCH_SCALE`
//! scales the row counts, default 1.0; the PostgreSQL half needs
//! `DENORM_TEST_POSTGRES_URL`).
//!
//! Prints, per kind of sink, from one run:
//! - rows/s applied by `Sink::apply` to a keyed view (id, product_id,
//!   rating) in batches of 10k changes (80% inserts, 10% updates as a
//!   retraction and an insertion, 10% deletes), positions included;
//! - the baseline beside it: a plain prepared `INSERT` loop of the same
//!   number of rows, one transaction per 10k (what an application's own
//!   fan-out code would do at best, without deletes or positions);
//! - the freshness the sink adds through the hub: small batches (100
//!   changes) published every 2 ms by a `Publisher` + `SinkHub` as the
//!   engine does, and the time from each publish until the sink has
//!   committed it (p50/p99), beside the publish itself (the engine's cost).

use std::sync::Arc;
use std::time::{Duration, Instant};

use denorm_serve::{channel, ColumnInfo, ViewInfo};
use denorm_sink::contract::ColumnSpec;
use denorm_sink::{Sink, SinkBatch, SinkConfig, SinkHub, ViewSpec};
use denorm_types::{Datum, Diff, Position, Row, ScalarType};

const BATCH: usize = 10_000;

fn scale() -> f64 {
    std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spec() -> ViewSpec {
    let column = |name: &str| ColumnSpec { name: name.into(), ty: ScalarType::Int, nullable: false };
    ViewSpec {
        name: "bench_reviews".into(),
        columns: vec![column("id"), column("product_id"), column("rating")],
        key: vec![0],
        ..Default::default()
    }
}

fn row(id: i64, product: i64, rating: i64) -> Row {
    Row::pack([Datum::Int(id), Datum::Int(product), Datum::Int(rating)])
}

/// Batches of `BATCH` consolidated keyed changes over `rows` changes.
fn batches(rows: usize) -> Vec<Vec<(Row, Diff)>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Row> = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for _ in 0..rows.div_ceil(BATCH) {
        let mut changes = Vec::with_capacity(BATCH + BATCH / 10);
        let mut touched = std::collections::HashSet::new();
        while changes.len() < BATCH {
            let dice = rng.below(10);
            if dice == 0 && !live.is_empty() {
                let i = rng.below(live.len() as u64) as usize;
                if touched.insert(live[i].get(0).as_f64().unwrap_or(0.0) as i64) {
                    changes.push((live.swap_remove(i), -1));
                }
            } else if dice == 1 && !live.is_empty() {
                let i = rng.below(live.len() as u64) as usize;
                let id = live[i].get(0).as_f64().unwrap_or(0.0) as i64;
                if touched.insert(id) {
                    let new = row(id, rng.below(100_000) as i64, 1 + rng.below(5) as i64);
                    changes.push((std::mem::replace(&mut live[i], new.clone()), -1));
                    changes.push((new, 1));
                }
            } else {
                next += 1;
                touched.insert(next);
                let new = row(next, rng.below(100_000) as i64, 1 + rng.below(5) as i64);
                live.push(new.clone());
                changes.push((new, 1));
            }
        }
        out.push(changes);
    }
    out
}

/// Rows/s of `Sink::apply` over `batches` (after a rebuild to empty).
fn apply_rate(sink: &mut dyn Sink, batches: &[Vec<(Row, Diff)>]) -> f64 {
    sink.open(&[spec()]).unwrap();
    sink.rebuild(0, &mut std::iter::empty(), Position(0)).unwrap();
    let started = Instant::now();
    let mut rows = 0;
    for (i, changes) in batches.iter().enumerate() {
        rows += changes.len();
        let batch =
            SinkBatch { position: Position(i as u64 + 1), committed_at: None, views: vec![Some(changes.clone())] };
        sink.apply(&batch).unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// Publish → committed in the sink, through a `SinkHub` (p50, p99 ms), and
/// the publish itself (p50 µs).
fn freshness(sink: Box<dyn Sink>, publishes: usize) -> (f64, f64, f64) {
    let info = ViewInfo {
        name: "bench_reviews".into(),
        columns: ["id", "product_id", "rating"]
            .iter()
            .map(|n| ColumnInfo { name: (*n).into(), ty: ScalarType::Int })
            .collect(),
        key: vec![0],
        ..Default::default()
    };
    let (mut publisher, reader) = channel(vec![info]);
    let config = SinkConfig {
        name: "bench".into(),
        sink,
        views: vec![(0, spec())],
        queue_rows: 1_000_000,
        reconcile_every: None,
        repair: false,
        reconcile_sample: None,
    };
    let hub = Arc::new(SinkHub::start(vec![config], reader));
    hub.publish(&mut publisher, Position(1), &[], &[], true);
    wait_position(&hub, 1);
    let mut rng = Rng(7);
    let mut published_at = Vec::new();
    let mut publish_us = Vec::new();
    let watcher = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen.len() < publishes && Instant::now() < deadline {
                let at = hub.state("bench").and_then(|s| s.positions[0]).map_or(0, |p| p.0);
                let now = Instant::now();
                while (seen.len() as u64) + 2 <= at {
                    seen.push(now);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            seen
        })
    };
    for p in 0..publishes {
        let changes: Vec<(Row, Diff)> =
            (0..100).map(|i| (row((p * 100 + i) as i64, rng.below(1000) as i64, 1 + rng.below(5) as i64), 1)).collect();
        publisher.apply(0, &changes);
        let started = Instant::now();
        hub.publish(&mut publisher, Position(p as u64 + 2), &[], &[(0, 0, changes)], false);
        publish_us.push(started.elapsed().as_secs_f64() * 1e6);
        published_at.push(started);
        std::thread::sleep(Duration::from_millis(2));
    }
    let seen = watcher.join().unwrap();
    let applies = hub.state("bench").map_or(0, |s| s.applies);
    println!("  ({publishes} publishes applied in {applies} transactions: consecutive queued batches are merged)");
    let mut latencies: Vec<f64> =
        seen.iter().zip(&published_at).map(|(s, p)| s.saturating_duration_since(*p).as_secs_f64() * 1e3).collect();
    latencies.sort_by(f64::total_cmp);
    publish_us.sort_by(f64::total_cmp);
    let pick = |v: &[f64], q: f64| v.get(((v.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(f64::NAN);
    (pick(&latencies, 0.5), pick(&latencies, 0.99), pick(&publish_us, 0.5))
}

/// Median ms per 100-change batch applied by the one-round-trip path and by
/// COPY + merge, the two interleaved so that both see the same load.
fn small_batches(url: &str, schema: &str, batches: usize) -> (f64, f64) {
    let mut one = denorm_sink::postgres::PostgresSink::new(url.to_owned(), format!("{schema}_one"));
    let mut copy =
        denorm_sink::postgres::PostgresSink::new(url.to_owned(), format!("{schema}_copy")).with_small_batch(0);
    let mut times = [Vec::new(), Vec::new()];
    for sink in [&mut one, &mut copy] {
        sink.open(&[spec()]).unwrap();
        sink.rebuild(0, &mut std::iter::empty(), Position(0)).unwrap();
    }
    let mut rng = Rng(11);
    for b in 0..batches {
        let changes: Vec<(Row, Diff)> =
            (0..100).map(|i| (row((b * 100 + i) as i64, rng.below(1000) as i64, 3), 1)).collect();
        for (t, sink) in [&mut one, &mut copy].into_iter().enumerate() {
            let batch =
                SinkBatch { position: Position(b as u64 + 1), committed_at: None, views: vec![Some(changes.clone())] };
            let started = Instant::now();
            sink.apply(&batch).unwrap();
            times[t].push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client.batch_execute(&format!("DROP SCHEMA {schema}_one CASCADE; DROP SCHEMA {schema}_copy CASCADE")).unwrap();
    (times[0][times[0].len() / 2], times[1][times[1].len() / 2])
}

fn wait_position(hub: &SinkHub, position: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while hub.state("bench").and_then(|s| s.positions[0]).is_none_or(|p| p.0 < position) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn sqlite_baseline(path: &std::path::Path, rows: usize) -> f64 {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    // The settings the sink gives a file it creates (WAL, synchronous = NORMAL).
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; DROP TABLE IF EXISTS plain; CREATE TABLE plain (id INTEGER PRIMARY KEY, product_id INTEGER NOT NULL, rating INTEGER NOT NULL)").unwrap();
    let started = Instant::now();
    for chunk in 0..rows.div_ceil(BATCH) {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare_cached("INSERT INTO plain VALUES (?1, ?2, ?3)").unwrap();
            for i in 0..BATCH {
                insert.execute([(chunk * BATCH + i) as i64, i as i64 % 1000, 3]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn postgres_baseline(url: &str, schema: &str, rows: usize) -> f64 {
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS {schema}.plain; CREATE TABLE {schema}.plain (id bigint PRIMARY KEY, product_id bigint NOT NULL, rating bigint NOT NULL)"))
        .unwrap();
    let started = Instant::now();
    for chunk in 0..rows.div_ceil(BATCH) {
        let mut tx = client.transaction().unwrap();
        let insert = tx.prepare(&format!("INSERT INTO {schema}.plain VALUES ($1, $2, $3)")).unwrap();
        for i in 0..BATCH {
            tx.execute(&insert, &[&((chunk * BATCH + i) as i64), &(i as i64 % 1000), &3i64]).unwrap();
        }
        tx.commit().unwrap();
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rows = ((1_000_000.0 * scale()) as usize).max(BATCH);
    let publishes = ((2000.0 * scale()) as usize).max(100);
    let batches = batches(rows);
    let changes: usize = batches.iter().map(Vec::len).sum();
    println!(
        "sink bench: {changes} changes in {} batches of ~{BATCH}; freshness over {publishes} publishes of 100",
        batches.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.db");
    let mut sqlite = denorm_sink::sqlite::SqliteSink::new(path.clone());
    let sink_rate = apply_rate(&mut sqlite, &batches);
    let baseline = sqlite_baseline(&dir.path().join("plain.db"), rows);
    println!(
        "sqlite   apply {sink_rate:>10.0} rows/s   baseline plain INSERT loop {baseline:>10.0} rows/s   ratio {:.2}",
        sink_rate / baseline
    );
    let (p50, p99, publish) =
        freshness(Box::new(denorm_sink::sqlite::SqliteSink::new(dir.path().join("fresh.db"))), publishes);
    println!("sqlite   freshness added: publish → committed in the sink p50 {p50:.2} ms, p99 {p99:.2} ms (the publish itself: p50 {publish:.1} µs)");
    let Ok(url) = std::env::var("DENORM_TEST_POSTGRES_URL") else {
        println!("postgres skipped: DENORM_TEST_POSTGRES_URL is not set");
        return;
    };
    let schema = format!("sink_bench_{}", std::process::id());
    let mut pg = denorm_sink::postgres::PostgresSink::new(url.clone(), schema.clone());
    let sink_rate = apply_rate(&mut pg, &batches);
    let baseline = postgres_baseline(&url, &schema, rows);
    println!(
        "postgres apply {sink_rate:>10.0} rows/s   baseline plain INSERT loop {baseline:>10.0} rows/s   ratio {:.2}",
        sink_rate / baseline
    );
    let (one_trip, copied) = small_batches(&url, &schema, publishes);
    println!(
        "postgres batches of 100 changes: one round trip (VALUES) {one_trip:.2} ms/batch, COPY + merge {copied:.2} ms/batch (median, interleaved)"
    );
    let fresh_schema = format!("{schema}_fresh");
    let (p50, p99, publish) =
        freshness(Box::new(denorm_sink::postgres::PostgresSink::new(url.clone(), fresh_schema.clone())), publishes);
    println!("postgres freshness added: publish → committed in the sink p50 {p50:.2} ms, p99 {p99:.2} ms (the publish itself: p50 {publish:.1} µs)");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE; DROP SCHEMA {fresh_schema} CASCADE")).unwrap();
}
