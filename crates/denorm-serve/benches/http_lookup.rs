//! Key lookups over HTTP under 64 concurrent clients
//! (`cargo bench -p denorm-serve --bench http_lookup`; `DENORM_BENCH_SCALE`
//! scales the rows, default 100k; `DENORM_BENCH_SECONDS` each phase,
//! default 3; `DENORM_BENCH_CLIENTS`, default 64; `DENORM_BENCH_RATES`
//! the open-loop rates; `DENORM_BENCH_SERVER_THREADS` denorm's workers,
//! default 1).
//!
//! A view of `users (id, name, score)` keyed by `id` is published and
//! served on 127.0.0.1 by [`denorm_serve::serve_configured`]'s connection
//! loop; one load generator thread ([`common::load`]) drives 64 keep-alive
//! connections, `GET /views/users?id=eq.K` for random K, in a closed loop
//! and then open loop at fixed offered rates (latency from the intended
//! send time). Also prints, in process on one thread, `read_rows` alone
//! (the read path without HTTP: the floor) and the router (the read path
//! with axum's routing, the middleware and the response headers, without
//! hyper and the sockets), as CPU time per lookup.

mod common;

use std::time::{Duration, Instant};

use common::load::{measure, print, rates, Driver, HttpClient};
use common::{env_or, load, scale, server_runtime, Rng};

use denorm_serve::{channel, ColumnInfo, ServeOptions, ViewInfo};
use denorm_types::{Datum, Position, Row, ScalarType, Value};

fn row(id: i64) -> [Value; 3] {
    [Datum::Int(id), Datum::owned_text(format!("user {id}")), Datum::Float(id as f64 / 7.0)]
}

fn main() {
    let rows = scale(100_000) as u64;
    let seconds = Duration::from_secs(env_or("DENORM_BENCH_SECONDS", 3));
    let clients = env_or("DENORM_BENCH_CLIENTS", 64) as usize;
    println!(
        "http_lookup: {rows} rows, {clients} connections on one client thread, {} s per phase, open loop at {:?}/s; \
         denorm on {} worker(s); machine: {} cores, {}",
        seconds.as_secs(),
        rates(),
        env_or("DENORM_BENCH_SERVER_THREADS", 1),
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
    let (p50, p99) = denorm_serve::percentiles(&mut samples);
    println!("  read_rows in process, 1 thread: p50 {p50:.2} µs, p99 {p99:.2} µs");

    router_in_process(&reader, rows);

    let runtime = server_runtime();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(denorm_serve::serve_configured(listener, reader, None, ServeOptions::default(), async {
        std::future::pending::<()>().await;
    }));
    let mut http = Driver::new(clients, rows, || HttpClient::connect(address, "/views/users?id=eq.", "[{\"id\":"));
    http.warm_up(20);
    let report = measure("denorm, HTTP", &mut http, seconds);
    print(&[report]);
    println!("machine after: {}", load());
}

/// The router called in process (no hyper, no socket) for random keys on
/// a current-thread runtime: the mean time per request, body read.
fn router_in_process(reader: &denorm_serve::Reader, rows: u64) {
    use tower_service::Service;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut router = denorm_serve::router(reader.clone());
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let n = 200_000;
    let elapsed = runtime.block_on(async {
        let start = Instant::now();
        for _ in 0..n {
            let uri = format!("/views/users?id=eq.{}", 1 + rng.below(rows));
            let request = axum::http::Request::get(uri).body(axum::body::Body::empty()).unwrap();
            let response = router.call(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
            std::hint::black_box(body);
        }
        start.elapsed()
    });
    println!(
        "  router in process, 1 thread: {:.2} µs per lookup (mean of {n})",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
