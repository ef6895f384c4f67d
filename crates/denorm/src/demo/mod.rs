//! `denorm demo`: the main job on the embedded default, with no set-up.
//!
//! It creates a SQLite database in a work directory with the marketplace
//! example's schema (products and reviews, users and posts, trips, orders),
//! fills it with realistic volumes, starts a background writer at a steady
//! rate on its own connection, runs the same engine and HTTP server as
//! `denorm run`, and every few seconds prints per view its rows, freshness
//! p50/p99 and changes/s, and one read served by the view beside the same
//! read by the normalized SQL on SQLite.

mod report;
mod seed;
mod writer;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use denorm_serve::Reader;

use crate::config;
use crate::engine::Engine;
use crate::run;
use seed::Volumes;
use writer::{Writer, WriterStats};

/// What `denorm demo` was asked to do.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// The work directory; the demo's files are (re)created in it.
    pub dir: PathBuf,
    /// Stop after this long (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    pub listen: SocketAddr,
    /// Writer transactions per second.
    pub rate: f64,
    /// Data volume; 1.0 is about 270,000 rows.
    pub scale: f64,
    /// Seconds between reports.
    pub every: Duration,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let volumes = Volumes::at_scale(args.scale);
    let config_path = prepare_dir(&args.dir, args.listen)?;
    let db = args.dir.join("demo.db");
    create_database(&db, volumes)?;

    let config = config::load(&config_path)?;
    let prepared = run::prepare(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(args.listen))
        .with_context(|| format!("cannot listen on {}\n  hint: choose another port with --listen", args.listen))?;
    let base = format!("http://{}", listener.local_addr()?);
    print_urls(&base, &config_path);

    let shutdown = Arc::new(AtomicBool::new(false));
    let prepared_fallback = prepared.fallback;
    let (publisher, reader) = denorm_serve::channel(prepared.infos);
    let engine = Engine::new(config.source.clone(), prepared.sources, publisher, shutdown.clone());

    let stop_writer = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(WriterStats::default());
    let writer = {
        let writer = Writer::open(&db, volumes)?;
        let (stop, stats, reader) = (stop_writer.clone(), stats.clone(), reader.clone());
        let rate = args.rate;
        std::thread::Builder::new().name("demo-writer".into()).spawn(move || {
            // Steady state is what the table measures: write once the
            // initial snapshot is served.
            while reader.snapshot().position.is_none() && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            writer.run(rate, stop, stats)
        })?
    };
    let reporter = runtime.spawn(report_loop(reader.clone(), db.clone(), base, volumes, stats, args.every));
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = tokio::time::sleep(d) => "--duration elapsed",
                    signal = run::termination() => signal,
                }
            }
            None => run::termination().await,
        }
    };
    let result = runtime.block_on(run::serve_until(
        listener,
        reader,
        prepared_fallback,
        config.server.http.clone(),
        engine,
        shutdown,
        stop,
    ));
    reporter.abort();
    stop_writer.store(true, Ordering::SeqCst);
    let _ = writer.join();
    result
}

/// Writes the demo's config, schema and views into `dir` (so that
/// `denorm run --config DIR/denorm.toml` can be tried on the same files) and
/// removes an earlier run's database.
fn prepare_dir(dir: &Path, listen: SocketAddr) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the work directory {}", dir.display()))?;
    for stale in ["demo.db", "demo.db-wal", "demo.db-shm"] {
        let path = dir.join(stale);
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    std::fs::write(dir.join("schema.sql"), seed::SCHEMA)?;
    std::fs::write(dir.join("views.sql"), seed::VIEWS)?;
    let config = dir.join("denorm.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `denorm demo`.\nviews = [\"views.sql\"]\n\n[source]\nurl = \"sqlite://demo.db\"\n\n\
             [server]\nlisten = \"{listen}\"\n"
        ),
    )?;
    Ok(config)
}

fn create_database(db: &Path, volumes: Volumes) -> anyhow::Result<()> {
    let total = volumes.total();
    println!("denorm demo: creating {} with about {total} rows …", db.display());
    let started = Instant::now();
    seed::create(db, volumes, &mut |done| {
        println!("  {done:>8} / {total} rows ({:.1}s)", started.elapsed().as_secs_f64());
    })
    .with_context(|| format!("cannot create the demo database {}", db.display()))?;
    Ok(())
}

fn print_urls(base: &str, config: &Path) {
    println!("\ndenorm demo: serving {base}");
    println!("  curl '{base}/views'");
    println!("  curl '{base}/views/product_stats?product_id=eq.10001'");
    println!("  curl '{base}/views/post_cards?author_id=eq.10000&order=post_id.desc&limit=5'");
    println!("  curl '{base}/views/trips_by_city_date?city=eq.Lisbon&started_on=eq.2025-02-28&limit=10'");
    println!("  curl '{base}/views/daily_sales?order=day.desc&limit=7'");
    println!("  curl '{base}/metrics'");
    println!("  the same views on your own files: denorm run --config {}\n", config.display());
}

/// Prints the table every `every` once the first snapshot is published.
async fn report_loop(
    reader: Reader,
    db: PathBuf,
    base: String,
    volumes: Volumes,
    stats: Arc<WriterStats>,
    every: Duration,
) {
    let started = Instant::now();
    let mut previous: Vec<u64> = Vec::new();
    let mut last_transactions = 0;
    let mut bench = None;
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if reader.view_stats().iter().all(|s| s.position.is_none()) {
            println!("denorm demo: waiting for the initial snapshot …");
            continue;
        }
        if previous.is_empty() {
            // Rates count from the first published state, not from zero.
            previous = reader.view_stats().iter().map(|s| s.changes_total).collect();
        }
        let mut b = match bench.take() {
            Some(b) => b,
            None => match report::ReadBench::new(reader.clone(), &db, base.clone(), volumes) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the database for the read comparison");
                    return;
                }
            },
        };
        let (b, reads) = tokio::task::spawn_blocking(move || {
            let reads = b.measure();
            (b, reads)
        })
        .await
        .expect("the read comparison does not panic");
        bench = Some(b);
        let transactions = stats.transactions.load(Ordering::Relaxed);
        let tps = (transactions - last_transactions) as f64 / every.as_secs_f64();
        last_transactions = transactions;
        print!("{}", report::render(started.elapsed(), &reader, every, &mut previous, tps, &reads));
    }
}
