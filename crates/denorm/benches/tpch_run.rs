//! TPC-H's 22 queries as views of the release `denorm` binary, as a user
//! runs them (issue 12's headline rows measured on the product, not on an
//! in-process dataflow):
//!
//! ```sh
//! cargo bench -p denorm --bench tpch_run     # DENORM_BENCH_SCALE (0.05), DENORM_BENCH_ROUNDS (20)
//! ```
//!
//! 1. The data is `tpchgen`'s, loaded into a SQLite file (WAL); SQLite then
//!    recomputes the 22 queries as written, warm (a first pass fills the
//!    page cache), in this process: the baseline.
//! 2. `denorm run` with the 22 views in `views.sql` and the default
//!    configuration (a state directory beside the config): spawn → ready
//!    (`/health` 200: snapshot read, views built, first state published),
//!    then its resident memory (`VmRSS` of the child) and the operators'
//!    state (`denorm_state_bytes` summed from `/metrics`).
//! 3. Refresh: `DENORM_BENCH_ROUNDS` transactions of RF1/RF2 plus 200
//!    updates of the columns the queries read, written by this process
//!    while denorm follows, then waited for until every view reflects the
//!    last one; the changes per second of wall-clock and per CPU second of
//!    the denorm process (`utime + stime` over the phase, so the capture's
//!    reads, the dataflow, publishing and the state directory all count).
//! 4. Its resident memory after the refresh and its peak (`VmHWM`), each ÷
//!    the SQLite file.
//!
//! Nothing here asserts: benchmarks are not tests.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{committed_position, Denorm};
use denorm_testkit::tpch::{self, Random, Refresh};
use denorm_testkit::SqliteReference;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// `VmRSS` and `VmHWM` of process `pid`, in MB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Where process `pid`'s resident memory is, from `/proc/<pid>/smaps`, in
/// MB: anonymous memory in mappings of at least 32 MiB (mimalloc's
/// segments and arenas), in smaller ones (thread stacks, glibc's heap and
/// small mappings: SQLite's and redb's caches allocate there), the `[heap]`
/// and file-backed pages (the binary and libraries), and the thread count.
fn breakdown(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut large, mut small, mut heap, mut file, mut large_maps) = (0.0, 0.0, 0.0, 0.0, 0);
    let mut size = 0.0;
    let mut name = String::new();
    let kb = |line: &str| line.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 1e3;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            let fields: Vec<&str> = line.split_whitespace().collect();
            name = fields.get(5).map_or(String::new(), |n| (*n).to_string());
            let (start, end) = first.split_once('-').unwrap_or(("0", "0"));
            let parse = |h: &str| u64::from_str_radix(h, 16).unwrap_or(0);
            size = (parse(end) - parse(start)) as f64 / 1e6;
        } else if line.starts_with("Anonymous:") {
            let anon = kb(line);
            if name == "[heap]" {
                heap += anon;
            } else if size >= 33.5 {
                large += anon;
                large_maps += usize::from(anon > 0.0);
            } else {
                small += anon;
            }
        } else if line.starts_with("Rss:") && name.starts_with('/') {
            file += kb(line);
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status.lines().find(|l| l.starts_with("Threads:")).map_or("?", |l| l[8..].trim());
    format!(
        "anonymous in ≥ 32 MiB mappings {large:.0} MB ({large_maps} mappings), in smaller ones {small:.0} MB, [heap] \
         {heap:.0} MB, file-backed {file:.0} MB; {threads} threads"
    )
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

/// The sum of every `denorm_state_bytes` series, in MB.
fn state_mb(denorm: &Denorm) -> f64 {
    let (_, text) = common::get_text(&format!("{}/metrics", denorm.base));
    text.lines()
        .filter(|l| l.starts_with("denorm_state_bytes{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e6
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale: f64 = env("DENORM_BENCH_SCALE", 0.05);
    let rounds: usize = env("DENORM_BENCH_ROUNDS", 20);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tpch.db");
    let generating = Instant::now();
    let connection = rusqlite::Connection::open(&db).unwrap();
    connection.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    tpch::load(&connection, scale).unwrap();
    let file_mb = std::fs::metadata(&db).unwrap().len() as f64 / 1e6;
    println!(
        "TPC-H SF {scale}: SQLite file {file_mb:.0} MB, generated in {:.1} s (load average {})",
        generating.elapsed().as_secs_f64(),
        load()
    );

    // SQLite recomputing the queries as written, warm.
    let recompute = || {
        for (name, query) in tpch::QUERIES {
            let mut statement = connection.prepare(query).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut rows = statement.query([]).unwrap();
            while rows.next().unwrap().is_some() {}
        }
    };
    recompute();
    let clock = Instant::now();
    recompute();
    let sqlite = clock.elapsed().as_secs_f64();
    println!("SQLite recomputing the {} queries (warm):       {sqlite:>8.2} s", tpch::QUERIES.len());

    std::fs::write(dir.path().join("views.sql"), tpch::views()).unwrap();
    let config = dir.path().join("denorm.toml");
    std::fs::write(
        &config,
        "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://tpch.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let started = Instant::now();
    let (child, log) = common::process::spawn_run(&config, false);
    let mut denorm = Denorm { child, base: String::new(), log, lines: Vec::new() };
    denorm.connect();
    let ready = started.elapsed().as_secs_f64();
    let pid = denorm.child.id();
    let (rss, peak) = memory(pid);
    println!("denorm: spawn → ready (snapshot read, built, published) {ready:>8.2} s = {:.2}× SQLite", ready / sqlite);
    println!("denorm: RSS when ready {rss:.0} MB = {:.2}× file, peak so far {peak:.0} MB", rss / file_mb);
    println!("        {}", breakdown(pid));
    // The snapshot is written to the state directory after the publish:
    // the refresh starts once that is done, so it does not count twice.
    let written = denorm.wait_for_log("snapshot written");
    let field =
        |line: &str, name: &str| line.split_whitespace().find_map(|f| f.strip_prefix(name)).unwrap_or("?").to_string();
    let read = denorm.wait_for_log("snapshot read");
    println!(
        "denorm: snapshot read in {} s, written to the state directory in {} s",
        field(&read, "read_seconds="),
        field(&written, "write_seconds=")
    );
    // The engine hands the snapshot's freed pages back right after.
    std::thread::sleep(Duration::from_millis(500));
    let (rss, peak) = memory(pid);
    println!(
        "denorm: RSS once the snapshot is written to the state directory {rss:.0} MB = {:.2}× file, peak so far \
         {peak:.0} MB",
        rss / file_mb
    );
    println!("        {}", breakdown(pid));
    // Sampled right after the first publish: read once the write is done.
    let state = state_mb(&denorm);
    println!("denorm: operator state {state:.1} MB = {:.2}× file", state / file_mb);

    let reference = SqliteReference { connection };
    let mut refresh =
        Refresh::new(|sql| reference.connection.query_row(sql, [], |r| r.get(0)), (scale * 1500.0).max(1.0) as i64)
            .unwrap();
    let mut random = Random::new(0x7c91_1000);
    let (clock, cpu) = (Instant::now(), cpu_seconds(pid));
    let mut changes = 0;
    for _ in 0..rounds {
        let statements = refresh.round(&mut random, 200);
        let written = denorm_testkit::writes::capture(&reference, &statements).unwrap();
        changes += written.iter().map(|(_, c)| c.len()).sum::<usize>();
    }
    let writing = clock.elapsed().as_secs_f64();
    denorm.wait_for_position(committed_position(&reference.connection));
    let (refresh_s, refresh_cpu) = (clock.elapsed().as_secs_f64(), cpu_seconds(pid) - cpu);
    println!(
        "refresh: {changes} changes in {rounds} transactions, written in {writing:.2} s, every view at the last one after \
         {refresh_s:.2} s: {:.0} changes/s ({:.0} per CPU second of denorm: {refresh_cpu:.2} s)",
        changes as f64 / refresh_s,
        changes as f64 / refresh_cpu.max(1e-9)
    );
    // The sampler of `denorm_state_bytes` runs every few seconds.
    std::thread::sleep(Duration::from_secs(1));
    let (rss, peak) = memory(pid);
    println!(
        "denorm: RSS after the refresh {rss:.0} MB = {:.2}× file; peak {peak:.0} MB = {:.2}× file (load average {})",
        rss / file_mb,
        peak / file_mb,
        load()
    );
    println!("        {}; operator state {:.1} MB", breakdown(pid), state_mb(&denorm));
    // `DENORM_BENCH_SMAPS=<file>`: the child's whole smaps after the refresh.
    if let Some(path) = std::env::var_os("DENORM_BENCH_SMAPS") {
        let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
        std::fs::write(path, smaps).unwrap();
    }
    denorm.terminate();
}
