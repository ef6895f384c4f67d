//! The demo's periodic table: per view its rows, freshness p50/p99 and
//! changes/s, and the same read served by the view over HTTP beside the
//! normalized SQL on SQLite, latency side by side.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use denorm_serve::{percentiles, read_rows, Reader};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};

use super::seed::{day, Rng, Volumes, DAYS, FIRST_ID};

/// One read, two ways: the view over HTTP and the normalized query on SQLite.
struct Comparison {
    view: &'static str,
    /// The query string of the read for key `k`.
    query: fn(i64) -> String,
    /// The normalized SQL, with `?1` bound to `bind(key)`.
    sql: &'static str,
    bind: fn(i64) -> SqlValue,
    /// A key for sample `n`.
    key: fn(&mut Rng, Volumes) -> i64,
}

const COMPARISONS: &[Comparison] = &[
    Comparison {
        view: "product_stats",
        query: |k| format!("product_id=eq.{k}"),
        sql: "SELECT p.id, p.name, COUNT(r.id), AVG(r.rating),
                     SUM(CASE WHEN r.rating = 5 THEN 1 ELSE 0 END), SUM(CASE WHEN r.rating = 4 THEN 1 ELSE 0 END),
                     SUM(CASE WHEN r.rating = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN r.rating = 2 THEN 1 ELSE 0 END),
                     SUM(CASE WHEN r.rating = 1 THEN 1 ELSE 0 END)
              FROM products p LEFT JOIN reviews r ON r.product_id = p.id WHERE p.id = ?1 GROUP BY p.id, p.name",
        bind: SqlValue::Integer,
        key: |rng, v| rng.skewed(v.products),
    },
    Comparison {
        view: "post_cards",
        query: |k| format!("post_id=eq.{k}"),
        sql: "SELECT p.id, p.body, p.created_at, u.id, u.name, u.avatar_url
              FROM posts p JOIN users u ON u.id = p.author_id WHERE p.id = ?1",
        bind: SqlValue::Integer,
        key: |rng, v| FIRST_ID + rng.below(v.posts),
    },
    Comparison {
        view: "trips_by_driver",
        query: |k| format!("driver_id=eq.{k}"),
        sql: "SELECT t.driver_id, t.id, t.started_on, t.city, t.fare_cents FROM trips t WHERE t.driver_id = ?1",
        bind: SqlValue::Integer,
        key: |rng, v| FIRST_ID + rng.below(v.users / 10 + 1),
    },
    Comparison {
        view: "daily_sales",
        query: |k| format!("day=eq.{}", day(k)),
        sql: "SELECT o.ordered_on, COUNT(DISTINCT o.id), SUM(i.quantity), SUM(i.quantity * i.unit_price_cents),
                     MAX(i.unit_price_cents)
              FROM orders o JOIN order_items i ON i.order_id = o.id
              WHERE o.status <> 'cancelled' AND o.ordered_on = ?1 GROUP BY o.ordered_on",
        bind: |k| SqlValue::Text(day(k)),
        key: |rng, _| rng.below(DAYS),
    },
];

/// Reads per comparison per report.
const SAMPLES: usize = 200;

/// One comparison's result: p50/p99 seconds of the same read served by the
/// view in process (what the engine costs), by the view over HTTP (plus the
/// transport), and by the normalized SQL on SQLite in process.
#[derive(Debug, Clone, Copy)]
pub struct ReadComparison {
    pub view: &'static str,
    pub in_process: (f64, f64),
    pub http: (f64, f64),
    pub sql: (f64, f64),
}

/// Measures every comparison.
pub struct ReadBench {
    reader: Reader,
    agent: ureq::Agent,
    base: String,
    conn: Connection,
    rng: Rng,
    volumes: Volumes,
}

impl ReadBench {
    pub fn new(reader: Reader, db: &Path, base: String, volumes: Volumes) -> rusqlite::Result<ReadBench> {
        let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
        Ok(ReadBench { reader, agent, base, conn, rng: Rng::new(99), volumes })
    }

    fn http_read(&self, path: &str) -> f64 {
        let started = Instant::now();
        if let Ok(mut response) = self.agent.get(&format!("{}{path}", self.base)).call() {
            let _ = response.body_mut().read_to_string();
        }
        started.elapsed().as_secs_f64()
    }

    fn in_process_read(&self, view: &str, query: &str) -> f64 {
        let started = Instant::now();
        let _ = read_rows(&self.reader.snapshot(), view, query);
        started.elapsed().as_secs_f64()
    }

    fn sql_read(&self, sql: &str, key: SqlValue) -> f64 {
        let started = Instant::now();
        if let Ok(mut statement) = self.conn.prepare_cached(sql) {
            let mut n = 0usize;
            let _ = statement.query_map([key], |_| Ok(())).map(|rows| rows.for_each(|_| n += 1));
        }
        started.elapsed().as_secs_f64()
    }

    /// Runs `SAMPLES` reads each way for every comparison.
    pub fn measure(&mut self) -> Vec<ReadComparison> {
        COMPARISONS
            .iter()
            .map(|c| {
                let keys: Vec<i64> = (0..SAMPLES).map(|_| (c.key)(&mut self.rng, self.volumes)).collect();
                let path = |k: i64| format!("/views/{}?{}", c.view, (c.query)(k));
                let mut in_process: Vec<f64> =
                    keys.iter().map(|&k| self.in_process_read(c.view, &(c.query)(k))).collect();
                let mut http: Vec<f64> = keys.iter().map(|&k| self.http_read(&path(k))).collect();
                let mut sql: Vec<f64> = keys.iter().map(|&k| self.sql_read(c.sql, (c.bind)(k))).collect();
                ReadComparison {
                    view: c.view,
                    in_process: percentiles(&mut in_process),
                    http: percentiles(&mut http),
                    sql: percentiles(&mut sql),
                }
            })
            .collect()
    }
}

/// Formats seconds as a short latency.
pub fn latency(seconds: f64) -> String {
    if seconds.is_nan() {
        "-".to_string()
    } else if seconds < 1e-3 {
        format!("{:.0}µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.1}ms", seconds * 1e3)
    } else {
        format!("{seconds:.2}s")
    }
}

/// The table printed every few seconds: per view its rows, freshness and
/// changes/s, and for the compared reads their p50 latency three ways.
pub fn render(
    elapsed: Duration,
    reader: &Reader,
    interval: Duration,
    previous: &mut Vec<u64>,
    writer_tps: f64,
    reads: &[ReadComparison],
) -> String {
    let stats = reader.view_stats();
    let mut out = String::new();
    let position = stats.first().and_then(|s| s.position).map_or(0, |p| p.0);
    let _ = writeln!(
        out,
        "\n── t={:>4}s ── position {position} ── writer {writer_tps:.0} txn/s ── reads: p50 of {SAMPLES} random keys ──",
        elapsed.as_secs()
    );
    let _ = writeln!(
        out,
        "{:<25} {:>7} {:>9} {:>9} {:>9} │ {:>8} {:>8} {:>9} {:>9}",
        "view", "rows", "fresh p50", "fresh p99", "changes/s", "view", "via HTTP", "SQL", "SQL/view"
    );
    previous.resize(stats.len(), 0);
    for (i, s) in stats.iter().enumerate() {
        let rate = (s.changes_total.saturating_sub(previous[i])) as f64 / interval.as_secs_f64();
        previous[i] = s.changes_total;
        let (p50, p99) = s.freshness_recent;
        let read = reads.iter().find(|r| r.view == s.name);
        let columns = match read {
            Some(r) => [
                latency(r.in_process.0),
                latency(r.http.0),
                latency(r.sql.0),
                format!("{:.0}×", r.sql.0 / r.in_process.0),
            ],
            None => Default::default(),
        };
        let _ = writeln!(
            out,
            "{:<25} {:>7} {:>9} {:>9} {:>9.0} │ {:>8} {:>8} {:>9} {:>9}",
            s.name,
            s.rows,
            latency(p50),
            latency(p99),
            rate,
            columns[0],
            columns[1],
            columns[2],
            columns[3]
        );
    }
    out
}
