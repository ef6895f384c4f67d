//! Key lookup latency under load over the PostgreSQL wire protocol, beside
//! the same lookup over HTTP and on the source databases
//! (`cargo bench -p denorm-serve --bench wire`). Scale with
//! `DENORM_BENCH_SCALE` (default 1.0: 100k rows, 500 lookups per client).
//!
//! One view `users_v (id key, name, karma, score)` is published in process
//! and served by `serve_pg` and `serve` on loopback; 64 client threads (then
//! one, for the latency without queueing), each with its own connection,
//! look up random keys one after the other:
//! - wire: the `postgres` crate, a prepared `SELECT … WHERE id = $1`
//!   (extended protocol, binary results);
//! - HTTP: `GET /views/users_v?id=eq.N` with a keep-alive agent;
//! - SQLite: the same rows in a file, a prepared statement per connection
//!   (in process: SQLite has no protocol);
//! - PostgreSQL over its own protocol, when `DENORM_TEST_POSTGRES_URL` is
//!   set (`scripts/postgres start`): the same rows with a primary key.
//!
//! Prints p50/p99 of the lookups (the first 20 per client are warm-up) and
//! lookups/s per target, side by side.

mod common;

use std::sync::Arc;

use common::{hammer, scale, Until};

use denorm_serve::wire::{serve_pg, AllowAll, Backend};
use denorm_serve::{channel, percentiles, ColumnInfo, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};

const CLIENTS: [usize; 2] = [64, 1];
const WARMUP: usize = 20;

fn user(id: i64) -> (i64, String, i64, f64) {
    (id, format!("user {id}"), id % 97, id as f64 * 0.25)
}

/// Runs `lookup` from 64 threads, then from 1, each with its own state
/// from `connect`, `per_client` times after the warm-up: per run, the
/// label, latencies (µs) and lookups per second.
fn load<C>(
    name: &str,
    rows: i64,
    per_client: usize,
    connect: impl Fn() -> C + Sync,
    lookup: impl Fn(&mut C, i64) + Sync,
) -> Vec<(String, Vec<f64>, f64)> {
    CLIENTS.iter().map(|&clients| load_with(clients, name, rows, per_client, &connect, &lookup)).collect()
}

fn load_with<C>(
    clients: usize,
    name: &str,
    rows: i64,
    per_client: usize,
    connect: &(impl Fn() -> C + Sync),
    lookup: &(impl Fn(&mut C, i64) + Sync),
) -> (String, Vec<f64>, f64) {
    let (samples, rate) = hammer(clients, rows as u64, WARMUP, Until::Lookups(per_client), connect, lookup);
    (format!("{name}, {clients} client{}", if clients == 1 { "" } else { "s" }), samples, rate)
}

fn main() {
    let rows = scale(100_000) as i64;
    let per_client = scale(500).max(20);
    let (mut publisher, reader) = channel(vec![ViewInfo {
        name: "users_v".into(),
        columns: vec![
            ColumnInfo { name: "id".into(), ty: ScalarType::Int },
            ColumnInfo { name: "name".into(), ty: ScalarType::Text },
            ColumnInfo { name: "karma".into(), ty: ScalarType::Int },
            ColumnInfo { name: "score".into(), ty: ScalarType::Float },
        ],
        key: vec![0],
        ..Default::default()
    }]);
    let changes: Vec<(Row, i64)> = (1..=rows)
        .map(|id| {
            let (id, name, karma, score) = user(id);
            let values: [Value; 4] = [Datum::Int(id), Datum::owned_text(name), Datum::Int(karma), Datum::Float(score)];
            (Row::pack(&values), 1)
        })
        .collect();
    publisher.apply(0, &changes);
    publisher.publish(Position(1), &[]);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pg_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let http_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let pg_port = pg_listener.local_addr().unwrap().port();
    let http_base = format!("http://{}/views/users_v?id=eq.", http_listener.local_addr().unwrap());
    runtime.spawn(serve_pg(
        pg_listener,
        Backend::new(reader.clone(), Arc::new(AllowAll)),
        None,
        std::future::pending(),
    ));
    runtime.spawn(denorm_serve::serve(http_listener, reader, std::future::pending()));

    let dir = std::env::temp_dir().join(format!("denorm-wire-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("app.db");
    {
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, karma INTEGER, score REAL);").unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx.prepare("INSERT INTO users VALUES (?, ?, ?, ?)").unwrap();
            for id in 1..=rows {
                let (id, name, karma, score) = user(id);
                insert.execute(rusqlite::params![id, name, karma, score]).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    println!("wire: {rows} rows, 64 clients, then 1, × {per_client} key lookups each (after {WARMUP} warm-up)");

    let mut results = Vec::new();
    let wire_url = format!("host=127.0.0.1 port={pg_port} user=bench dbname=denorm");
    results.extend(load(
        "denorm, PostgreSQL wire protocol",
        rows,
        per_client,
        || {
            let mut client = postgres::Client::connect(&wire_url, postgres::NoTls).unwrap();
            let statement = client.prepare("SELECT id, name, karma, score FROM users_v WHERE id = $1").unwrap();
            (client, statement)
        },
        |(client, statement), key| {
            let row = client.query_one(&*statement, &[&key]).unwrap();
            assert_eq!(row.get::<_, i64>(0), key);
        },
    ));
    results.extend(load("denorm, HTTP", rows, per_client, ureq::Agent::new_with_defaults, |agent, key| {
        let body = agent.get(format!("{http_base}{key}")).call().unwrap().body_mut().read_to_string().unwrap();
        assert!(body.starts_with("[{\"id\":"), "{body}");
    }));
    results.extend(load(
        "SQLite, in process (prepared statement)",
        rows,
        per_client,
        || rusqlite::Connection::open(&db).unwrap(),
        |conn, key| {
            let mut statement = conn.prepare_cached("SELECT id, name, karma, score FROM users WHERE id = ?").unwrap();
            let id: i64 = statement.query_row([key], |r| r.get(0)).unwrap();
            assert_eq!(id, key);
        },
    ));
    if let Ok(url) = std::env::var("DENORM_TEST_POSTGRES_URL") {
        let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        admin.batch_execute("DROP TABLE IF EXISTS bench_wire_users; CREATE TABLE bench_wire_users (id bigint PRIMARY KEY, name text, karma bigint, score float8)").unwrap();
        let mut writer = admin.copy_in("COPY bench_wire_users FROM STDIN").unwrap();
        let mut text = String::new();
        for id in 1..=rows {
            let (id, name, karma, score) = user(id);
            text.push_str(&format!("{id}\t{name}\t{karma}\t{score}\n"));
        }
        std::io::Write::write_all(&mut writer, text.as_bytes()).unwrap();
        writer.finish().unwrap();
        admin.batch_execute("ANALYZE bench_wire_users").unwrap();
        results.extend(load(
            "PostgreSQL server, its own protocol",
            rows,
            per_client,
            || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let statement =
                    client.prepare("SELECT id, name, karma, score FROM bench_wire_users WHERE id = $1").unwrap();
                (client, statement)
            },
            |(client, statement), key| {
                let row = client.query_one(&*statement, &[&key]).unwrap();
                assert_eq!(row.get::<_, i64>(0), key);
            },
        ));
        admin.batch_execute("DROP TABLE bench_wire_users").unwrap();
    } else {
        println!("  (set DENORM_TEST_POSTGRES_URL, e.g. from scripts/postgres start, to add a PostgreSQL server)");
    }
    println!("  {:<52} {:>10} {:>10} {:>12}", "key lookup", "p50", "p99", "lookups/s");
    for (name, mut samples, rate) in results {
        let (p50, p99) = percentiles(&mut samples);
        println!("  {name:<52} {p50:>7.0} µs {p99:>7.0} µs {rate:>12.0}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
