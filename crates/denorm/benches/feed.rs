//! A home feed (`partition_by = 'owner_id'`, `fanout_limit = 1000`,
//! `retain = 500`) over users, a power-law follow graph and posts: snapshot
//! load and fan-out rows written/s, a stream of new posts (celebrity vs
//! normal author), page reads (limit 20, created_at desc) in process with
//! `read_rows` on the published snapshot, live bytes (counting global
//! allocator), and the same page via the normalized query on a SQLite file
//! (`cargo bench -p denorm --bench feed`; `DENORM_BENCH_SCALE=0.1` for a
//! tenth of the users, edges and posts).

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_serve::{Publisher, Reader, ViewInfo};
use denorm_sql::{plan_views, ViewDef};
use denorm_testkit::SqliteReference;
use denorm_types::{Datum, Dialect, Diff, Position, Row};

/// The binary's allocator (mimalloc), counting live bytes.
struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static FREED: AtomicUsize = AtomicUsize::new(0);

// The one unsafe block of the bench: a global allocator must implement
// this unsafe trait; it only forwards to mimalloc.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.fetch_add(layout.size(), Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        FREED.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated and not freed since the process started.
fn live_bytes() -> isize {
    ALLOCATED.load(Ordering::Relaxed) as isize - FREED.load(Ordering::Relaxed) as isize
}

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar_url TEXT);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, body TEXT, created_at INTEGER);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
";

const SELECT: &str = "SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, \
     u.name AS author_name, u.avatar_url AS author_avatar \
     FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id";

const NORMALIZED: &str =
    "SELECT p.id AS post_id, p.body, p.created_at, u.name AS author_name, u.avatar_url AS author_avatar \
     FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id \
     WHERE f.follower_id = ?1 ORDER BY p.created_at DESC, p.id DESC LIMIT 20";

const FANOUT_LIMIT: usize = 1000;

/// `retain` of the feed (`DENORM_BENCH_RETAIN`, default 500).
fn retain() -> usize {
    std::env::var("DENORM_BENCH_RETAIN").ok().and_then(|s| s.parse().ok()).unwrap_or(500)
}

fn factor() -> f64 {
    std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn scale(n: usize) -> usize {
    ((n as f64) * factor()).max(1.0) as usize
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> i64 {
        (self.next() % n as u64) as i64
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000_000) as f64 / 1_000_000_000.0
    }
}

/// What `denorm run` tells the serving layer about a planned view.
fn view_info(def: &ViewDef) -> ViewInfo {
    denorm::serving_info(def)
}

/// The engine's wiring in process: the feed's three plans on one dataflow
/// (`add_view_emitting`, as `engine::flow` does), published as the parts of
/// the feed's slot.
struct Engine {
    dataflow: Dataflow,
    parts: Vec<(usize, usize)>,
    publisher: Publisher,
    reader: Reader,
    position: u64,
    /// Live bytes added by publishing each part of slot 0 (net, counting
    /// allocator): part 0 is the feed's fanned-out rows.
    part_bytes: Vec<isize>,
}

impl Engine {
    fn new(sql: &str) -> Engine {
        let catalog = SqliteReference::new(SCHEMA).unwrap().catalog();
        let defs = plan_views(sql, &catalog, Dialect::Sqlite).unwrap_or_else(|e| panic!("{e:?}"));
        let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
        let mut parts = Vec::new();
        for (slot, def) in defs.iter().enumerate() {
            for (name, plan, part) in denorm::dataflow_views(def) {
                dataflow.add_view_emitting(&name, plan).unwrap();
                parts.push((slot, part));
            }
        }
        let (publisher, reader) = denorm_serve::channel(defs.iter().map(view_info).collect());
        Engine { dataflow, parts, publisher, reader, position: 0, part_bytes: vec![0; 8] }
    }

    /// One transaction: (seconds in the dataflow, seconds publishing).
    fn apply(&mut self, tables: Vec<(String, Vec<(Row, Diff)>)>) -> (f64, f64) {
        self.position += 1;
        let t = Instant::now();
        let output = self.dataflow.apply(&SourceBatch { position: Position(self.position), tables });
        let flow = t.elapsed().as_secs_f64();
        assert!(output.errors.is_empty(), "{:?}", output.errors);
        let t = Instant::now();
        for view in output.views {
            let (slot, part) = self.parts[view.view.0];
            let before = live_bytes();
            self.publisher.apply_part(slot, part, &view.changes);
            if slot == 0 {
                self.part_bytes[part] += live_bytes() - before;
            }
        }
        self.publisher.publish(Position(self.position), &[]);
        (flow, t.elapsed().as_secs_f64())
    }

    fn written(&self) -> u64 {
        let text = self.reader.metrics().render();
        let prefix = "denorm_fanout_rows_written_total{view=\"home_feed\"} ";
        text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap().parse().unwrap()
    }

    /// Dataflow state bytes of the nodes whose label contains `what`.
    fn node_bytes(&self, what: &str) -> usize {
        self.dataflow.state_bytes().iter().filter(|(_, label, _)| label.contains(what)).map(|(_, _, b)| b).sum()
    }
}

/// The same posts through a plain join (`posts ⋈ users`, keyed by the
/// post): its snapshot and stream rows/s are the baseline the feed's
/// fan-out is compared with, in the same run.
fn plain_join(users: &[(Row, Diff)], posts: &[(Row, Diff)], stream: &[Vec<(Row, Diff)>]) -> (f64, f64) {
    let catalog = SqliteReference::new(SCHEMA).unwrap().catalog();
    let sql = "CREATE MATERIALIZED VIEW post_cards AS SELECT p.id AS post_id, p.body, p.created_at, \
               u.name AS author_name, u.avatar_url AS author_avatar FROM posts p JOIN users u ON u.id = p.author_id";
    let defs = plan_views(sql, &catalog, Dialect::Sqlite).unwrap_or_else(|e| panic!("{e:?}"));
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    dataflow.add_view_emitting("post_cards", &defs[0].plan).unwrap();
    let (mut publisher, _reader) = denorm_serve::channel(defs.iter().map(view_info).collect());
    let mut run = |position: u64, tables: Vec<(String, Vec<(Row, Diff)>)>| {
        let output = dataflow.apply(&SourceBatch { position: Position(position), tables });
        let mut rows = 0;
        for view in output.views {
            rows += view.changes.len();
            publisher.apply(0, &view.changes);
        }
        publisher.publish(Position(position), &[]);
        rows
    };
    let started = Instant::now();
    let rows = run(1, vec![("users".into(), users.to_vec()), ("posts".into(), posts.to_vec())]);
    let snapshot = rows as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut rows = 0;
    for (i, batch) in stream.iter().enumerate() {
        rows += run(2 + i as u64, vec![("posts".into(), batch.clone())]);
    }
    (snapshot, rows as f64 / started.elapsed().as_secs_f64())
}

/// The stream of new posts through the engine: (wall seconds, on-CPU
/// seconds of this thread when Linux reports them). Its own function so a
/// profiler can select it (`valgrind --tool=callgrind
/// --toggle-collect='*stream_posts*'`).
#[inline(never)]
fn stream_posts(e: &mut Engine, stream: &[Vec<(Row, Diff)>]) -> (f64, Option<f64>) {
    let (started, cpu) = (Instant::now(), thread_cpu_seconds());
    for batch in stream {
        e.apply(vec![("posts".into(), batch.clone())]);
    }
    let cpu = match (cpu, thread_cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    (started.elapsed().as_secs_f64(), cpu)
}

/// This thread's time on CPU, from Linux's schedstat.
fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(s.split_whitespace().next()?.parse::<u64>().ok()? as f64 / 1e9)
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get =
        |k: &str| status.lines().find(|l| l.starts_with(k)).map(|l| l[k.len()..].trim().to_owned()).unwrap_or_default();
    format!("VmRSS {}, VmHWM {}", get("VmRSS:"), get("VmHWM:"))
}

fn post(id: i64, author: i64, created_at: i64) -> (Row, Diff) {
    (
        Row::pack([
            Datum::Int(id),
            Datum::Int(author),
            Datum::owned_text(format!("post {id} says hello")),
            Datum::Int(created_at),
        ]),
        1,
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (users, edges, posts) = (scale(100_000), scale(5_000_000), scale(1_000_000));
    let mut rng = Rng(0x2545f4914f6cdd1d);
    // Followees: the first `CELEBRITIES` users are followed by every user;
    // the rest of the edges draw the followee from a power law, followers
    // uniformly.
    const CELEBRITIES: i64 = 5;
    let mut follows: Vec<(i64, i64)> = Vec::with_capacity(edges);
    for c in 0..CELEBRITIES {
        for f in 0..users as i64 {
            follows.push((f, c));
        }
    }
    while follows.len() < edges {
        // Zipf-like (P(rank r) ∝ 1/(r + 50)): rank = 50·((n/50 + 1)^x − 1).
        let n = users as f64 - CELEBRITIES as f64;
        let rank = (50.0 * ((n / 50.0 + 1.0).powf(rng.unit()) - 1.0)) as i64;
        let followee = CELEBRITIES + rank.min(n as i64 - 1);
        follows.push((rng.below(users), followee));
    }
    let mut followers = vec![0u32; users];
    for &(_, e) in &follows {
        followers[e as usize] += 1;
    }
    let mut sorted = followers.clone();
    sorted.sort_unstable();
    let above = followers.iter().filter(|&&n| n as usize > FANOUT_LIMIT).count();
    let above_100k = followers.iter().filter(|&&n| n >= 100_000).count();
    // A normal author: the median follower count among those with followers.
    let nonzero: Vec<u32> = sorted.iter().copied().filter(|&n| n > 0).collect();
    let normal_count = nonzero[nonzero.len() / 2];
    let normal: Vec<i64> = (0..users as i64).filter(|&u| followers[u as usize] == normal_count).take(100).collect();
    println!(
        "feed: scale {}: {users} users, {} follow edges, {posts} posts; followers per author: median {} (of authors followed), p99 {}, max {}; {above} authors above fanout_limit {FANOUT_LIMIT}, {above_100k} with >= 100k ({}every user)",
        factor(),
        follows.len(),
        normal_count,
        sorted[sorted.len() * 99 / 100],
        sorted[sorted.len() - 1],
        if users >= 100_000 { "" } else { "none: fewer users; celebrities are followed by " },
    );

    let sql = format!(
        "CREATE MATERIALIZED VIEW home_feed WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', \
         fanout_limit = {FANOUT_LIMIT}, retain = {}) AS {SELECT}",
        retain()
    );
    let user_rows: Vec<(Row, Diff)> = (0..users as i64)
        .map(|u| {
            let avatar =
                if u % 3 == 0 { Datum::Null } else { Datum::owned_text(format!("https://cdn.example/a/{u}.png")) };
            (Row::pack([Datum::Int(u), Datum::owned_text(format!("user{u}")), avatar]), 1)
        })
        .collect();
    let follow_rows: Vec<(Row, Diff)> = follows
        .iter()
        .enumerate()
        .map(|(id, &(f, e))| (Row::pack([Datum::Int(id as i64), Datum::Int(f), Datum::Int(e)]), 1))
        .collect();
    let post_authors: Vec<i64> = (0..posts).map(|_| rng.below(users)).collect();
    let post_rows: Vec<(Row, Diff)> =
        post_authors.iter().enumerate().map(|(p, &a)| post(p as i64, a, p as i64)).collect();

    // SQLite first (it needs the rows; denorm's batch consumes clones).
    let dir = tempfile::tempdir().unwrap();
    let mut conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    let started = Instant::now();
    {
        let tx = conn.transaction().unwrap();
        {
            let mut s = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3)").unwrap();
            for u in 0..users as i64 {
                let avatar = (u % 3 != 0).then(|| format!("https://cdn.example/a/{u}.png"));
                s.execute(rusqlite::params![u, format!("user{u}"), avatar]).unwrap();
            }
            let mut s = tx.prepare("INSERT INTO follows VALUES (?1, ?2, ?3)").unwrap();
            for (id, &(f, e)) in follows.iter().enumerate() {
                s.execute(rusqlite::params![id as i64, f, e]).unwrap();
            }
            let mut s = tx.prepare("INSERT INTO posts VALUES (?1, ?2, ?3, ?4)").unwrap();
            for (p, &a) in post_authors.iter().enumerate() {
                s.execute(rusqlite::params![p as i64, a, format!("post {p} says hello"), p as i64]).unwrap();
            }
        }
        tx.execute_batch(
            "CREATE INDEX follows_follower ON follows (follower_id);
             CREATE INDEX posts_author_created ON posts (author_id, created_at); ANALYZE;",
        )
        .unwrap();
        tx.commit().unwrap();
    }
    println!("  SQLite file load (one transaction + 2 indexes): {:.1} s", started.elapsed().as_secs_f64());

    // A stream of new posts in batches of 50 (random authors: the mix a
    // real stream has), the same for the plain join and the feed.
    let mut next_id = posts as i64;
    let stream: Vec<Vec<(Row, Diff)>> = (0..scale(20_000).max(1000) / 50)
        .map(|_| {
            (0..50)
                .map(|_| {
                    next_id += 1;
                    post(next_id, rng.below(users), next_id)
                })
                .collect()
        })
        .collect();
    let (plain_snapshot, plain_stream) = plain_join(&user_rows, &post_rows, &stream);

    // denorm: snapshot load.
    let start = live_bytes();
    let live = |_: &()| live_bytes() - start;
    let region = ();
    let mut e = Engine::new(&sql);
    let started = Instant::now();
    let (flow, publish) =
        e.apply(vec![("users".into(), user_rows), ("follows".into(), follow_rows), ("posts".into(), post_rows)]);
    let seconds = started.elapsed().as_secs_f64();
    let written = e.written();
    let snapshot_live = live(&region);
    let summary = denorm_serve::json::view_summary(&e.reader.snapshot().views[0], &Default::default(), 0.0);
    let snapshot_rate = written as f64 / seconds;
    println!(
        "  snapshot load: {seconds:.1} s ({flow:.1} s dataflow + {publish:.1} s publish); {written} fan-out rows written = {snapshot_rate:.0} rows/s"
    );
    println!("  feed state: {:?}", summary.feed);
    println!("  bounded top-k (held rows): {:?}", e.dataflow.bounded_top_k());
    println!(
        "  memory after snapshot (live bytes, counting allocator; source rows handed in included): {:.2} GB; process {}",
        snapshot_live as f64 / 1e9,
        rss()
    );
    let stored = summary.feed.as_ref().map_or(0, |f| f.materialized_rows);
    let (top_k, published) = (e.node_bytes("JoinTopK"), e.part_bytes[0]);
    let fanout_bytes = (top_k as f64 + published as f64) / stored.max(1) as f64;
    println!(
        "  fan-out state: bounded top-k {:.1} MB + published fanned-out rows {:.1} MB = {fanout_bytes:.0} B per stored fan-out row; other parts published: {:?} B",
        top_k as f64 / 1e6,
        published as f64 / 1e6,
        &e.part_bytes[1..4]
    );
    for (view, label, bytes) in e.dataflow.state_bytes() {
        println!("    state {view} {label}: {:.1} MB", bytes as f64 / 1e6);
    }
    println!(
        "  live bytes per fan-out row written: {:.0} B; per fan-out row stored ({stored} stored): {:.0} B",
        snapshot_live as f64 / written as f64,
        snapshot_live as f64 / stored.max(1) as f64
    );

    // The stream of new posts (drawn before the snapshot), in batches of 50.
    let before = e.written();
    let (seconds, cpu) = stream_posts(&mut e, &stream);
    let written = e.written() - before;
    let stream_rate = written as f64 / seconds;
    let on_cpu = cpu.map_or(String::new(), |c| format!(" (on-CPU {:.0} rows/s)", written as f64 / c));
    println!(
        "  stream: {} new posts in batches of 50: {seconds:.2} s, {written} fan-out rows = {stream_rate:.0} rows/s{on_cpu}, {:.0} posts/s, {:.1} µs/post",
        stream.len() * 50,
        (stream.len() * 50) as f64 / seconds,
        seconds * 1e6 / (stream.len() * 50) as f64
    );
    println!(
        "  FAN-OUT ON NEW POSTS: {stream_rate:.0} rows/s{on_cpu} (snapshot {snapshot_rate:.0} rows/s; plain join posts ⋈ users: snapshot {plain_snapshot:.0} rows/s, new posts {plain_stream:.0} rows/s); \
         {fanout_bytes:.0} B per stored fan-out row (top-k + published rows)"
    );
    // Per-post cost, one post per batch: celebrities vs a normal author.
    let mut per_post = BTreeMap::new();
    for (label, authors) in [
        (format!("celebrity ({} followers)", followers[0]), (0..CELEBRITIES).collect::<Vec<_>>()),
        (format!("normal author ({normal_count} followers)"), normal.clone()),
    ] {
        let before = e.written();
        let (mut times, mut flows, mut publishes) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..500 {
            next_id += 1;
            let t = Instant::now();
            let (flow, publish) =
                e.apply(vec![("posts".into(), vec![post(next_id, authors[i % authors.len()], next_id)])]);
            times.push(t.elapsed().as_secs_f64() * 1e6);
            flows.push(flow * 1e6);
            publishes.push(publish * 1e6);
        }
        let rows = (e.written() - before) as f64 / 500.0;
        let (p50, p99) = denorm_serve::percentiles(&mut times);
        let (f50, _) = denorm_serve::percentiles(&mut flows);
        let (u50, _) = denorm_serve::percentiles(&mut publishes);
        per_post.insert(label.clone(), p50);
        println!("  post by a {label:<34}: p50 {p50:>8.1} µs (dataflow {f50:.1} + publish {u50:.1}), p99 {p99:>8.1} µs, {rows:.1} fan-out rows/post (500 posts, one per batch)");
    }
    let v: Vec<f64> = per_post.values().copied().collect();
    println!("  celebrity / normal per-post p50: {:.2}x", v[0] / v[1]);

    // Page reads: random owners, limit 20, created_at desc.
    let owners: Vec<i64> = (0..20_000).map(|_| rng.below(users)).collect();
    let snapshot = e.reader.snapshot();
    let mut ours = Vec::new();
    for &owner in &owners {
        let q = format!("owner_id=eq.{owner}&order=created_at.desc,post_id.desc&limit=20");
        let t = Instant::now();
        let (body, _) = denorm_serve::read_rows(&snapshot, "home_feed", &q).unwrap();
        ours.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(body.len() > 2);
    }
    drop(snapshot);
    // The same pages by the normalized query (SQLite has not seen the
    // streamed posts; the page shape and cost are the same).
    let mut stmt = conn.prepare(NORMALIZED).unwrap();
    let mut theirs = Vec::new();
    let n_sqlite = 2000;
    for &owner in &owners[..n_sqlite] {
        let t = Instant::now();
        let rows: Vec<(i64, String, i64, String, Option<String>)> = stmt
            .query_map([owner], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        theirs.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(rows);
    }
    let (o50, o99) = denorm_serve::percentiles(&mut ours);
    let (t50, t99) = denorm_serve::percentiles(&mut theirs);
    println!("  {:<44} {:>12} {:>12}", "feed page (limit 20, created_at desc)", "p50", "p99");
    println!("  {:<44} {:>9.1} µs {:>9.1} µs", format!("denorm read_rows ({} owners)", ours.len()), o50, o99);
    println!("  {:<44} {:>9.1} µs {:>9.1} µs", format!("SQLite normalized query ({n_sqlite} owners)"), t50, t99);
    println!("  {:<44} {:>11.1}x {:>11.1}x", "ratio SQLite / denorm", t50 / o50, t99 / o99);
    println!("  memory at the end: live {:.2} GB; process {}", live(&region) as f64 / 1e9, rss());
    println!("  bounded top-k at the end (held rows): {:?}", e.dataflow.bounded_top_k());
    std::hint::black_box(&e);
}
