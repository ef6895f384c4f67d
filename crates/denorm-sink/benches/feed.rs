//! A feed view's write rate into each kind of sink
//! (`cargo bench -p denorm-sink --bench feed`; `DENORM_BENCH_SCALE` scales
//! the 500k changes; PostgreSQL needs `DENORM_TEST_POSTGRES_URL`, Redis
//! `DENORM_TEST_REDIS_URL`, each skipped without).
//!
//! The feed `home_feed(owner_id, post_id, created_at, body, author_name)`
//! is written as its three parts (`denorm_sink::feed::part_specs`) in
//! batches of 10k changes: 80% fanned-out rows inserted (a post reaching a
//! follower), 10% fanned-out rows deleted, 5% celebrity posts, 5% celebrity
//! edges — one `Sink::apply` per batch, positions included. Beside it, in
//! the same run and sink, the same number of rows written to one plain
//! keyed view of the same columns (the sink's ordinary path): the ratio is
//! what writing a feed as parts costs.

use std::time::Instant;

use denorm_serve::feed::FeedInfo;
use denorm_serve::query::OrderTerm;
use denorm_sink::redis::{Format, RedisOptions, RedisSink};
use denorm_sink::{ColumnSpec, Sink, SinkBatch, ViewSpec};
use denorm_types::{Datum, Diff, Position, Row, ScalarType};

const BATCH: usize = 10_000;

fn scale(n: usize) -> usize {
    let s: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * s).max(BATCH as f64) as usize
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

fn feed_spec() -> (ViewSpec, FeedInfo) {
    let column = |name: &str, ty| ColumnSpec { name: name.into(), ty, nullable: false };
    let spec = ViewSpec {
        name: "home_feed".into(),
        columns: vec![
            column("owner_id", ScalarType::Int),
            column("post_id", ScalarType::Int),
            column("created_at", ScalarType::Int),
            column("body", ScalarType::Text),
            column("author_name", ScalarType::Text),
        ],
        key: vec![0],
        partition_by: Some(0),
        order: vec![(2, true), (1, true)],
        ..Default::default()
    };
    let desc = |column| OrderTerm { column, descending: true, nulls_first: true, collation: None };
    let info = FeedInfo {
        partition: 0,
        order: vec![desc(2), desc(1)],
        retain: None,
        fanout_limit: 1000,
        fan_column: "followee_id".into(),
        reference: Some(vec![1]),
    };
    (spec, info)
}

fn post(owner: i64, id: i64) -> Row {
    Row::pack(
        [
            Datum::Int(owner),
            Datum::Int(id),
            Datum::Int(1_700_000_000 + id),
            Datum::owned_text(format!("post number {id} says hello")),
            Datum::owned_text(format!("author {}", id % 997)),
        ]
        .iter(),
    )
}

/// Per batch: changes of (fanout, celebrities, edges).
type Batch = [Vec<(Row, Diff)>; 3];

fn batches(changes: usize) -> Vec<Batch> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Row> = Vec::new();
    let (mut next, mut edge) = (0, 0);
    let mut out = Vec::new();
    for _ in 0..changes.div_ceil(BATCH) {
        let mut batch: Batch = Default::default();
        let mut deleted = std::collections::HashSet::new();
        for _ in 0..BATCH {
            match rng.below(20) {
                0 | 1 if !live.is_empty() => {
                    let i = rng.below(live.len() as u64) as usize;
                    if deleted.insert(i) {
                        batch[0].push((live[i].clone(), -1));
                    }
                }
                2 => {
                    next += 1;
                    batch[1].push((post(rng.below(100) as i64, next), 1));
                }
                3 => {
                    edge += 1;
                    batch[2].push((Row::pack([Datum::Int(edge), Datum::Int(rng.below(100) as i64)].iter()), 1));
                }
                _ => {
                    next += 1;
                    let row = post(rng.below(20_000) as i64, next);
                    live.push(row.clone());
                    batch[0].push((row, 1));
                }
            }
        }
        let mut gone: Vec<usize> = deleted.into_iter().collect();
        gone.sort_unstable_by(|a, b| b.cmp(a));
        for i in gone {
            live.swap_remove(i);
        }
        out.push(batch);
    }
    out
}

/// Rows/s of `Sink::apply` writing the feed's parts, then the same rows as
/// one plain keyed view.
fn rates(sink: &mut dyn Sink, batches: &[Batch], name: &str) -> (f64, f64) {
    let (spec, info) = feed_spec();
    let parts: Vec<ViewSpec> = denorm_sink::feed::part_specs(&spec, &info).into();
    sink.open(&parts).unwrap();
    for i in 0..3 {
        sink.rebuild(i, &mut std::iter::empty(), Position(0)).unwrap();
    }
    let started = Instant::now();
    let mut rows = 0;
    for (i, batch) in batches.iter().enumerate() {
        rows += batch.iter().map(Vec::len).sum::<usize>();
        let views = batch.iter().map(|c| Some(c.clone())).collect();
        sink.apply(&SinkBatch { position: Position(i as u64 + 1), committed_at: None, views }).unwrap();
    }
    let feed = rows as f64 / started.elapsed().as_secs_f64();
    let plain =
        ViewSpec { name: format!("{name}_plain"), key: vec![0, 1], partition_by: None, order: Vec::new(), ..spec };
    sink.open(&[plain]).unwrap();
    sink.rebuild(0, &mut std::iter::empty(), Position(0)).unwrap();
    let started = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        // The same number of rows, all in the one view (edges as posts).
        let mut changes: Vec<(Row, Diff)> = batch[0].iter().chain(&batch[1]).cloned().collect();
        changes.extend(batch[2].iter().map(|(r, d)| (post(-1, r.get(0).as_f64().unwrap_or(0.0) as i64), *d)));
        sink.apply(&SinkBatch { position: Position(i as u64 + 1), committed_at: None, views: vec![Some(changes)] })
            .unwrap();
    }
    (feed, rows as f64 / started.elapsed().as_secs_f64())
}

fn report(kind: &str, (feed, plain): (f64, f64)) {
    println!(
        "{kind:<8} feed parts {feed:>10.0} rows/s   baseline one keyed view {plain:>10.0} rows/s   ratio {:.2}",
        feed / plain
    );
}

fn main() {
    let changes = scale(500_000);
    let batches = batches(changes);
    println!("feed sink bench: {} batches of {BATCH} changes", batches.len());
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = denorm_sink::sqlite::SqliteSink::new(dir.path().join("feed.db"));
    report("sqlite", rates(&mut sqlite, &batches, "bench"));
    match std::env::var("DENORM_TEST_POSTGRES_URL") {
        Ok(url) => {
            let schema = format!("feed_bench_{}", std::process::id());
            let mut pg = denorm_sink::postgres::PostgresSink::new(url.clone(), schema.clone());
            report("postgres", rates(&mut pg, &batches, "bench"));
            let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).unwrap();
        }
        Err(_) => println!("postgres skipped: DENORM_TEST_POSTGRES_URL is not set"),
    }
    match std::env::var("DENORM_TEST_REDIS_URL") {
        Ok(url) => {
            let prefix = format!("feed_bench_{}:", std::process::id());
            let options = RedisOptions { url: url.clone(), prefix: prefix.clone(), format: Format::Hash, ttl: None };
            let mut redis = RedisSink::new(options).unwrap();
            report("redis", rates(&mut redis, &batches, "bench"));
            let mut connection = redis::Client::open(url).unwrap().get_connection().unwrap();
            let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{prefix}*")).query(&mut connection).unwrap();
            for chunk in keys.chunks(1000) {
                redis::cmd("DEL").arg(chunk).query::<()>(&mut connection).unwrap();
            }
        }
        Err(_) => println!("redis skipped: DENORM_TEST_REDIS_URL is not set"),
    }
}
