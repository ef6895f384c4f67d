//! Key lookup latency under 64 concurrent clients over the PostgreSQL wire
//! protocol, beside the same lookup over HTTP and on the PostgreSQL server
//! over its own protocol (`cargo bench -p denorm-serve --bench wire`).
//! `DENORM_BENCH_SCALE` scales the rows (default 1.0: 100k);
//! `DENORM_BENCH_SECONDS` each phase (default 3); `DENORM_BENCH_CLIENTS`
//! (default 64); `DENORM_BENCH_RATES` the open-loop rates (default
//! 5000,10000,20000,40000); `DENORM_BENCH_SERVER_THREADS` denorm's workers
//! (default 1).
//!
//! One view `users_v (id key, name, karma, score)` is published in process
//! and served by `serve_pg` and the HTTP API on loopback. The clients are
//! one load generator ([`common::load`]): 64 connections as futures on one
//! thread, a lookup of a random key each:
//! - wire: tokio-postgres, a prepared `SELECT … WHERE id = $1` (extended
//!   protocol, binary results);
//! - HTTP: `GET /views/users_v?id=eq.N` on a keep-alive connection;
//! - PostgreSQL over its own protocol, when `DENORM_TEST_POSTGRES_URL` is
//!   set (`scripts/postgres start`): the same rows with a primary key, the
//!   same tokio-postgres client.
//!
//! Each target runs a closed loop (saturation) and then the open-loop
//! rates (latency from the intended send time); the table prints p50,
//! p99, p99.9 and max of each, and the CPU used by the client thread and
//! by the whole process (clients + denorm; PostgreSQL's own processes are
//! outside it).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::load::{measure, print, rates, Driver, HttpClient, PgClient};
use common::{env_or, load, scale, server_runtime};

use denorm_serve::wire::{serve_pg, AllowAll, Backend};
use denorm_serve::{channel, ColumnInfo, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};

const WARMUP: usize = 20;

fn user(id: i64) -> (i64, String, i64, f64) {
    (id, format!("user {id}"), id % 97, id as f64 * 0.25)
}

fn main() {
    let rows = scale(100_000) as i64;
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

    let seconds = Duration::from_secs(env_or("DENORM_BENCH_SECONDS", 3));
    let clients = env_or("DENORM_BENCH_CLIENTS", 64) as usize;
    let runtime = server_runtime();
    let pg_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let http_listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let pg_port = pg_listener.local_addr().unwrap().port();
    let http_address = http_listener.local_addr().unwrap();
    runtime.spawn(serve_pg(
        pg_listener,
        Backend::new(reader.clone(), Arc::new(AllowAll)),
        None,
        std::future::pending(),
    ));
    runtime.spawn(denorm_serve::serve(http_listener, reader, std::future::pending()));
    println!(
        "wire: {rows} rows, {clients} connections on one client thread, {} s per phase, open loop at {:?}/s; \
         denorm on {} worker(s); machine: {} cores, {}",
        seconds.as_secs(),
        rates(),
        env_or("DENORM_BENCH_SERVER_THREADS", 1),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );

    let mut reports = Vec::new();
    let wire_url = format!("host=127.0.0.1 port={pg_port} user=bench dbname=denorm");
    let statement = "SELECT id, name, karma, score FROM users_v WHERE id = $1";
    let mut wire = Driver::new(clients, rows as u64, || PgClient::connect(&wire_url, statement));
    wire.warm_up(WARMUP);
    reports.push(measure("denorm, PostgreSQL wire protocol", &mut wire, seconds));
    drop(wire);
    let mut http =
        Driver::new(clients, rows as u64, || HttpClient::connect(http_address, "/views/users_v?id=eq.", "[{\"id\":"));
    http.warm_up(WARMUP);
    reports.push(measure("denorm, HTTP", &mut http, seconds));
    drop(http);
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
        let statement = "SELECT id, name, karma, score FROM bench_wire_users WHERE id = $1";
        let mut pg = Driver::new(clients, rows as u64, || PgClient::connect(&url, statement));
        pg.warm_up(WARMUP);
        reports.push(measure("PostgreSQL server, its own protocol", &mut pg, seconds));
        drop(pg);
        admin.batch_execute("DROP TABLE bench_wire_users").unwrap();
    } else {
        println!("  (set DENORM_TEST_POSTGRES_URL, e.g. from scripts/postgres start, to add a PostgreSQL server)");
    }
    print(&reports);
    println!("machine after: {}", load());
}
