//! Snapshot speed of SQLite capture, printed as figures and a ratio
//! (`cargo bench -p denorm-source --bench snapshot`).
//!
//! Builds a trips-like table of `DENORM_BENCH_ROWS` rows (default 1,000,000)
//! in a temporary directory (on `/dev/shm` when it exists, so the figures are
//! CPU and not disk), then times, `DENORM_BENCH_REPEATS` times (default 3),
//! interleaved:
//!
//! * `SqliteCapture::snapshot` of the table with every column captured
//!   (rows packed into `Row`s, as the engine receives them);
//! * the baseline: a plain rusqlite `SELECT` of the same columns into
//!   `Vec<Value>` per row, collected into one `Vec` as the snapshot does;
//! * the floor: the same `SELECT` stepping through every column as a
//!   `ValueRef` without keeping anything (what SQLite alone costs).
//!
//! Medians are printed with the spread (min–max), plus rows/s, MB/s of the
//! packed rows and of the database file, and the ratio snapshot / raw read.
//! Nothing here asserts: benchmarks are not tests.

use std::path::Path;
use std::time::{Duration, Instant};

use denorm_source::sqlite::{self, CaptureSpec, CapturedTable, SqliteCapture};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection};

const CITIES: &[&str] = &["Lisbon", "Porto", "Berlin", "Paris", "Madrid", "Rome", "Austin", "Osaka"];
const COLUMNS: &str = "id, driver_id, city, day, fare, km";

fn env_or(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

/// xorshift64*: deterministic, so every run reads the same bytes.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn build(path: &Path, rows: u64) -> rusqlite::Result<()> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;
         CREATE TABLE trips (id INTEGER PRIMARY KEY, driver_id INT, city TEXT, day TEXT, fare INT, km REAL);",
    )?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO trips VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for id in 1..=rows as i64 {
            let day = format!("2025-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
            let km = rng.below(300) as f64 / 10.0 + 0.5;
            insert.execute(params![
                id,
                1 + rng.below(20_000) as i64,
                CITIES[rng.below(CITIES.len() as u64) as usize],
                day,
                300 + rng.below(5_000) as i64,
                km
            ])?;
        }
    }
    tx.commit()?;
    // Leave a plain database file behind: everything in the main file.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
}

/// The baseline: every row as owned `Value`s.
fn raw_read(conn: &Connection) -> rusqlite::Result<Vec<Vec<Value>>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM trips"))?;
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(row.get::<_, Value>(i)?);
        }
        out.push(values);
    }
    Ok(out)
}

/// The floor: step through every column, keep nothing but a checksum.
fn raw_step(conn: &Connection) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM trips"))?;
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut sum = 0u64;
    while let Some(row) = rows.next()? {
        for i in 0..width {
            sum = sum.wrapping_add(match row.get_ref(i)? {
                ValueRef::Integer(n) => n as u64,
                ValueRef::Real(f) => f.to_bits(),
                ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
                ValueRef::Null => 0,
            });
        }
    }
    Ok(sum)
}

/// `/proc/loadavg`'s 1/5/15-minute figures: other work on the machine skews
/// every timing here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn spread(times: &[Duration]) -> String {
    let min = times.iter().min().unwrap().as_secs_f64();
    let max = times.iter().max().unwrap().as_secs_f64();
    format!("{:.3}–{:.3}s", min, max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; a filter argument has no meaning here.
    let load_start = load_average();
    let rows = env_or("DENORM_BENCH_ROWS", 1_000_000).max(1);
    let repeats = env_or("DENORM_BENCH_REPEATS", 3).max(1) as usize;
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::Builder::new().prefix("denorm-bench-snapshot-").tempdir_in(shm)?
    } else {
        tempfile::Builder::new().prefix("denorm-bench-snapshot-").tempdir()?
    };
    let path = dir.path().join("trips.db");

    let started = Instant::now();
    build(&path, rows)?;
    let file_bytes = std::fs::metadata(&path)?.len();
    println!(
        "snapshot bench: {rows} rows, {:.1} MB database file in {} (built in {:.1}s), {repeats} repeats",
        file_bytes as f64 / 1e6,
        dir.path().display(),
        started.elapsed().as_secs_f64()
    );

    let catalog = sqlite::read_catalog(&sqlite::open_read_only(&path)?)?;
    let spec = CaptureSpec { tables: vec![CapturedTable::all("trips")] };
    let started = Instant::now();
    let mut capture = SqliteCapture::open(&path, &catalog, &spec)?;
    println!("  SqliteCapture::open (WAL check + trigger install): {:.1}ms", started.elapsed().as_secs_f64() * 1e3);
    let raw = sqlite::open_read_only(&path)?;

    // Warm-up: the file into the OS page cache, the statements prepared once.
    let checksum = raw_step(&raw)?;
    std::hint::black_box(checksum);

    let (mut snap_times, mut raw_times, mut step_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut packed_bytes = 0u64;
    for _ in 0..repeats {
        let t = Instant::now();
        let snapshot = capture.snapshot(&mut |_| {})?;
        snap_times.push(t.elapsed());
        let (_, read) = &snapshot.tables[0];
        assert_eq!(read.len() as u64, rows, "the snapshot read every row");
        packed_bytes = read.iter().map(|r| r.as_bytes().len() as u64).sum();
        drop(snapshot); // outside the timing, as for the baseline

        let t = Instant::now();
        let values = raw_read(&raw)?;
        raw_times.push(t.elapsed());
        assert_eq!(values.len() as u64, rows);
        drop(values);

        let t = Instant::now();
        std::hint::black_box(raw_step(&raw)?);
        step_times.push(t.elapsed());
    }

    println!("  load average (1/5/15 min) at start: {load_start}, at the end: {}", load_average());
    let per_s = |d: Duration| rows as f64 / d.as_secs_f64();
    let mb_s = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    let (snap, raw_m, step) = (median(&snap_times), median(&raw_times), median(&step_times));
    println!();
    println!(
        "  {:<42} {:>9} {:>15} {:>12} {:>14} {:>16}",
        "median of runs", "seconds", "spread", "rows/s", "packed MB/s", "db file MB/s"
    );
    println!(
        "  {:<42} {:>9.3} {:>15} {:>12.0} {:>14.1} {:>16.1}",
        "SqliteCapture::snapshot → Vec<Row>",
        snap.as_secs_f64(),
        spread(&snap_times),
        per_s(snap),
        mb_s(packed_bytes, snap),
        mb_s(file_bytes, snap)
    );
    println!(
        "  {:<42} {:>9.3} {:>15} {:>12.0} {:>14} {:>16.1}",
        "raw SELECT → Vec<Vec<rusqlite::Value>>",
        raw_m.as_secs_f64(),
        spread(&raw_times),
        per_s(raw_m),
        "-",
        mb_s(file_bytes, raw_m)
    );
    println!(
        "  {:<42} {:>9.3} {:>15} {:>12.0} {:>14} {:>16.1}",
        "raw SELECT, step + ValueRef only (floor)",
        step.as_secs_f64(),
        spread(&step_times),
        per_s(step),
        "-",
        mb_s(file_bytes, step)
    );
    println!();
    println!(
        "  snapshot / raw read: {:.2}× the time ({:.0} vs {:.0} rows/s); snapshot / floor: {:.2}×",
        snap.as_secs_f64() / raw_m.as_secs_f64(),
        per_s(snap),
        per_s(raw_m),
        snap.as_secs_f64() / step.as_secs_f64()
    );
    println!(
        "  packed rows: {:.1} MB ({:.1} bytes/row); only SqliteCapture::snapshot is timed, not the dataflow load",
        packed_bytes as f64 / 1e6,
        packed_bytes as f64 / rows as f64
    );
    Ok(())
}
