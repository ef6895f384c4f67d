//! TPC-H on SQLite: the 22 queries as views, beside SQLite recomputing them
//! (`cargo bench -p denorm-testkit --bench tpch`). Scale with
//! `DENORM_BENCH_SCALE` (default 0.1: about 100 MB of SQLite file); refresh
//! rounds with `DENORM_BENCH_ROUNDS` (default 40); `DENORM_BENCH_VIEWS`
//! (e.g. `q11,q15,q22`) builds and times only the views named (default: all
//! 22).
//!
//! Prints, from one run on one machine:
//! - SQLite running every accepted query from scratch (the baseline);
//! - the snapshot: reading every table, then the dataflow building all views;
//!   and its ratio to the baseline;
//! - refresh catch-up: a backlog of RF1/RF2 rounds plus updates, captured
//!   first, then applied one round per batch: source changes/s, by the
//!   clock and per second on a CPU (this thread's schedstat);
//! - resident memory after the snapshot and at its peak, beside the file size;
//! - with `DENORM_BENCH_PER_VIEW=1`, first each view's snapshot alone (its
//!   own dataflow): where the build time goes.

use std::time::Instant;

use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_sql::plan_views;
use denorm_testkit::tpch::{self, Random, Refresh};
use denorm_testkit::SqliteReference;
use denorm_types::{Dialect, Position};

/// mimalloc, counting live heap bytes: what a view's state costs, exactly.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: forwards to mimalloc unchanged; only counts the sizes.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes of the process, in MB.
fn live_mb() -> f64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Seconds this thread has spent on a CPU (the kernel's schedstat, in
/// nanoseconds): on a shared machine, the figure that other processes'
/// load does not inflate. 0 where /proc does not have it. The kernel brings
/// a running thread's figure up to date at scheduler ticks only, so a phase
/// of a few tens of milliseconds is off by up to a few milliseconds: give
/// short refreshes more rounds.
fn on_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|ns| ns.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

/// VmRSS and VmHWM of this process, in MB.
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The operators' state after the snapshot (exact, `Dataflow::state_bytes`):
/// per view (a shared node under the first view reading it) and the 20
/// largest nodes, so that one sees where the memory goes.
fn print_state(dataflow: &Dataflow, file_mb: f64, dataflow_live_mb: f64) {
    let clock = Instant::now();
    let state = dataflow.state_bytes();
    let walk = clock.elapsed().as_secs_f64();
    let mb = |bytes: usize| bytes as f64 / 1e6;
    let total: usize = state.iter().map(|(_, _, b)| b).sum();
    println!(
        "operator state (Dataflow::state_bytes, a {:.0} ms walk) {:.1} MB = {:.1}× file; live heap the dataflow \
         holds {dataflow_live_mb:.1} MB",
        walk * 1e3,
        mb(total),
        mb(total) / file_mb
    );
    let mut per_view: Vec<(&str, usize)> = Vec::new();
    for (view, _, bytes) in &state {
        match per_view.iter_mut().find(|(v, _)| v == view) {
            Some((_, b)) => *b += bytes,
            None => per_view.push((view, *bytes)),
        }
    }
    per_view.sort_by_key(|&(_, bytes)| std::cmp::Reverse(bytes));
    println!("  per view:");
    for (view, bytes) in per_view {
        println!("    {view:<5} {:>9.1} MB", mb(bytes));
    }
    let mut nodes: Vec<&(String, String, usize)> = state.iter().collect();
    nodes.sort_by_key(|(_, _, bytes)| std::cmp::Reverse(*bytes));
    println!("  largest nodes:");
    for (view, label, bytes) in nodes.into_iter().take(20) {
        println!("    {:>9.1} MB  {view:<5} {label}", mb(*bytes));
    }
}

fn main() {
    let scale: f64 = env("DENORM_BENCH_SCALE", 0.1);
    let rounds: usize = env("DENORM_BENCH_ROUNDS", 40);
    let dir = std::env::temp_dir().join(format!("denorm-tpch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tpch.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    let load = Instant::now();
    tpch::load(&connection, scale).unwrap();
    drop(connection);
    let file_mb = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    println!("TPC-H SF {scale}: SQLite file {file_mb:.0} MB, generated and loaded in {:.1} s", load.elapsed().as_secs_f64());
    let reference = SqliteReference { connection: rusqlite::Connection::open(&path).unwrap() };

    let catalog = reference.catalog();
    let selected: Option<Vec<String>> =
        std::env::var("DENORM_BENCH_VIEWS").ok().map(|v| v.split(',').map(|n| n.trim().to_string()).collect());
    let mut defs = Vec::new();
    for (name, query) in tpch::QUERIES {
        if selected.as_ref().is_some_and(|names| !names.iter().any(|n| n == name)) {
            continue;
        }
        match plan_views(&tpch::view(name, query), &catalog, Dialect::Sqlite) {
            Ok(planned) => defs.extend(planned),
            Err(_) => println!("  {name}: refused by the planner (not measured)"),
        }
    }
    println!("{} of {} queries accepted as views", defs.len(), selected.as_ref().map_or(22, Vec::len));

    // Warm the page cache once, then time SQLite recomputing every view.
    for def in &defs {
        reference.query(&def.select_sql).unwrap();
    }
    let clock = Instant::now();
    for def in &defs {
        reference.query(&def.select_sql).unwrap();
    }
    let sqlite = clock.elapsed().as_secs_f64();
    println!("SQLite recomputing the {} queries:          {sqlite:>8.2} s", defs.len());

    let tables: Vec<(String, Vec<_>)> = tpch::TABLES
        .iter()
        .map(|table| {
            let read = denorm_testkit::writes::rows_where(&reference.connection, table, "1").unwrap();
            (table.to_string(), read.into_iter().map(|(_, row)| (row, 1)).collect())
        })
        .collect();
    if env("DENORM_BENCH_PER_VIEW", 0) == 1 {
        let mut per_view = Vec::new();
        for def in &defs {
            let before = live_mb();
            let batch = SourceBatch { position: Position(1), tables: tables.clone() };
            let mut alone = Dataflow::new(catalog.clone(), Dialect::Sqlite);
            let id = alone.add_view(&def.name, &def.plan, def.key.columns.clone(), !def.key.proven_unique).unwrap();
            let clock = Instant::now();
            alone.apply(&batch);
            let seconds = clock.elapsed().as_secs_f64();
            drop(batch);
            let state: usize = alone.state_bytes().iter().map(|(_, _, bytes)| bytes).sum();
            let live = live_mb() - before;
            per_view.push((seconds, def.name.clone(), alone.view_rows(id).len(), live, state as f64 / 1e6));
        }
        per_view.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (seconds, name, rows, mb, state) in per_view {
            println!(
                "  {name}: snapshot alone {seconds:>7.2} s, {rows} rows, live heap {mb:>7.1} MB, state_bytes {state:>7.1} MB"
            );
        }
    }
    drop(tables);

    // What the process holds before the dataflow (the data generator's
    // text pool among it), to compare the dataflow's share with its state.
    let live_before = live_mb();
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    for def in &defs {
        dataflow.add_view(&def.name, &def.plan, def.key.columns.clone(), !def.key.proven_unique).unwrap();
    }
    let clock = Instant::now();
    let mut rows = 0;
    let tables: Vec<_> = tpch::TABLES
        .iter()
        .map(|table| {
            let read = denorm_testkit::writes::rows_where(&reference.connection, table, "1").unwrap();
            rows += read.len();
            (table.to_string(), read.into_iter().map(|(_, row)| (row, 1)).collect())
        })
        .collect();
    let read = clock.elapsed().as_secs_f64();
    let (clock, cpu) = (Instant::now(), on_cpu());
    let out = dataflow.apply(&SourceBatch { position: Position(1), tables });
    let (build, build_cpu) = (clock.elapsed().as_secs_f64(), on_cpu() - cpu);
    assert!(out.errors.is_empty(), "view errors: {:?}", out.errors);
    let (rss, peak) = memory();
    println!("snapshot: read {rows} rows                {read:>8.2} s");
    println!("snapshot: build the {} views                 {build:>8.2} s ({build_cpu:.2} s on-CPU)", defs.len());
    println!(
        "snapshot ÷ SQLite recomputing:               {:>8.2}×  (build alone {:.2}×)",
        (read + build) / sqlite,
        build / sqlite
    );
    println!("RSS after snapshot {rss:.0} MB = {:.1}× file; peak {peak:.0} MB = {:.1}× file", rss / file_mb, peak / file_mb);
    println!("live heap after snapshot {:.0} MB = {:.1}× file", live_mb(), live_mb() / file_mb);
    print_state(&dataflow, file_mb, live_mb() - live_before);

    let mut refresh = Refresh::new(|sql| reference.connection.query_row(sql, [], |r| r.get(0)), (scale * 1500.0).max(1.0) as i64).unwrap();
    let mut random = Random::new(0x7c91_1000);
    let backlog: Vec<_> = (0..rounds)
        .map(|_| {
            let statements = refresh.round(&mut random, 200);
            denorm_testkit::writes::capture(&reference, &statements).unwrap()
        })
        .collect();
    let changes: usize = backlog.iter().flat_map(|t| t.iter().map(|(_, c)| c.len())).sum();
    let (clock, cpu) = (Instant::now(), on_cpu());
    for (i, tables) in backlog.into_iter().enumerate() {
        let out = dataflow.apply(&SourceBatch { position: Position(2 + i as u64), tables });
        assert!(out.errors.is_empty(), "view errors: {:?}", out.errors);
    }
    let (refresh_s, refresh_cpu) = (clock.elapsed().as_secs_f64(), on_cpu() - cpu);
    let per_cpu_second = if refresh_cpu > 0.0 {
        format!("{:.0} on-CPU", changes as f64 / refresh_cpu)
    } else {
        "too short to time on-CPU".to_string()
    };
    println!(
        "refresh catch-up: {changes} changes in {rounds} batches: {:>8.0} changes/s ({per_cpu_second})",
        changes as f64 / refresh_s
    );
    let (rss, peak) = memory();
    println!("RSS after refresh {rss:.0} MB = {:.1}× file; peak {peak:.0} MB = {:.1}× file", rss / file_mb, peak / file_mb);
    std::fs::remove_dir_all(&dir).ok();
}
