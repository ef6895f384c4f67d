//! Key lookups over HTTP under load beside the same lookup on SQLite
//! (`cargo bench -p denorm-serve --bench http_lookup`; `DENORM_BENCH_SCALE`
//! scales the rows, default 100k; `DENORM_BENCH_SECONDS` each phase,
//! default 5; `DENORM_BENCH_CLIENTS`, default 64).
//!
//! A view of `users (id, name, score)` keyed by `id` is published, served
//! on 127.0.0.1, and read by as many client threads, each on its own
//! keep-alive connection, `GET /views/users?id=eq.K` for random K; the
//! same rows sit in a SQLite file (WAL) read by as many threads, each with
//! its own connection, `SELECT id, name, score FROM users WHERE id = ?`.
//! Prints p50/p99 of each, of `read_rows` alone (in process, one thread),
//! and of the same HTTP load on `axum::serve`
//! (the connection loop before the slowloris protections) as the baseline
//! of [`denorm_serve::serve_configured`]'s own loop.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{env_or, hammer, load, scale, Rng, Until};

use denorm_serve::{channel, ColumnInfo, Reader, ServeOptions, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};

fn row(id: i64) -> [Value; 3] {
    [Datum::Int(id), Datum::owned_text(format!("user {id}")), Datum::Float(id as f64 / 7.0)]
}

/// Serves `reader` on a 2-worker runtime, with the old or the new loop.
fn serve(reader: Reader, old_loop: bool) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    if old_loop {
        let router = denorm_serve::router(reader);
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        runtime.spawn(async move { axum::serve(listener, router).await });
    } else {
        runtime.spawn(denorm_serve::serve_configured(listener, reader, None, ServeOptions::default(), async {
            std::future::pending::<()>().await;
        }));
    }
    (url, runtime)
}

fn http_phase(url: &str, clients: usize, seconds: u64, rows: u64) -> Vec<f64> {
    let connect = || ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let lookup = |agent: &mut ureq::Agent, key: i64| {
        let mut response = agent.get(format!("{url}/views/users?id=eq.{key}")).call().unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        assert!(body.len() > 10, "{body}");
    };
    hammer(clients, rows, 0, Until::Elapsed(Duration::from_secs(seconds)), &connect, &lookup).0
}

fn main() {
    let rows = scale(100_000) as u64;
    let seconds = env_or("DENORM_BENCH_SECONDS", 5);
    let clients = env_or("DENORM_BENCH_CLIENTS", 64) as usize;
    println!(
        "http_lookup: {rows} rows, {clients} clients, {seconds} s per phase; machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load()
    );
    let info = ViewInfo {
        name: "users".into(),
        columns: vec![
            ColumnInfo { name: "id".into(), ty: ScalarType::Int },
            ColumnInfo { name: "name".into(), ty: ScalarType::Text },
            ColumnInfo { name: "score".into(), ty: ScalarType::Float },
        ],
        key: vec![0],
        ..Default::default()
    };
    let (mut publisher, reader) = channel(vec![info]);
    let changes: Vec<(Row, i64)> = (1..=rows as i64).map(|id| (Row::pack(&row(id)), 1)).collect();
    publisher.apply(0, &changes);
    publisher.publish(Position(1), &[]);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    {
        let mut db = rusqlite::Connection::open(&path).unwrap();
        db.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL);",
        )
        .unwrap();
        let tx = db.transaction().unwrap();
        {
            let mut insert = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3)").unwrap();
            for id in 1..=rows as i64 {
                insert.execute(rusqlite::params![id, format!("user {id}"), id as f64 / 7.0]).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    let mut results = Vec::new();
    // The read path alone, in process (parse, plan, execute, render), one thread.
    let snapshot = reader.snapshot();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut samples: Vec<f64> = (0..200_000)
        .map(|_| {
            let query = format!("id=eq.{}", 1 + rng.below(rows));
            let t = Instant::now();
            let (body, _) = denorm_serve::read_rows(&snapshot, "users", &query).unwrap();
            let elapsed = t.elapsed().as_secs_f64() * 1e6;
            std::hint::black_box(body);
            elapsed
        })
        .collect();
    drop(snapshot);
    results.push(("read_rows in process, 1 thread", samples.len(), denorm_serve::percentiles(&mut samples)));
    for (label, old_loop) in [("HTTP, denorm's connection loop", false), ("HTTP, axum::serve (before)", true)] {
        let (url, runtime) = serve(reader.clone(), old_loop);
        let mut samples = http_phase(&url, clients, seconds, rows);
        results.push((label, samples.len(), denorm_serve::percentiles(&mut samples)));
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
    let path = Arc::new(path);
    let connect = || rusqlite::Connection::open(path.as_ref()).unwrap();
    let lookup = |db: &mut rusqlite::Connection, key: i64| {
        let mut statement = db.prepare_cached("SELECT id, name, score FROM users WHERE id = ?1").unwrap();
        let found: (i64, String, f64) = statement.query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        std::hint::black_box(found);
    };
    let (mut samples, _) = hammer(clients, rows, 0, Until::Elapsed(Duration::from_secs(seconds)), &connect, &lookup);
    results.push(("SQLite, a connection per client", samples.len(), denorm_serve::percentiles(&mut samples)));
    println!("  {:<36} {:>10} {:>12} {:>12}", "key lookup", "lookups", "p50", "p99");
    for (label, n, (p50, p99)) in &results {
        println!("  {label:<36} {n:>10} {p50:>9.1} µs {p99:>9.1} µs");
    }
    println!("machine after: {}", load());
}
