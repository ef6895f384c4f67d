//! Chaos (issue 13): the release `denorm run` under a writer, through cycles
//! of faults, on SQLite and — when `DENORM_TEST_POSTGRES_URL` is set
//! (`scripts/postgres start`) — on PostgreSQL:
//!
//! ```sh
//! cargo bench -p denorm --bench chaos     # DENORM_BENCH_CYCLES (default 12), DENORM_BENCH_ROWS (default 100000)
//! ```
//!
//! Faults, drawn at random per cycle: `kill -9` while following; `kill -9`
//! of the next start a few hundred milliseconds in (while it loads its state
//! or snapshots), then a start; SIGTERM and a start; on PostgreSQL also
//! `pg_ctl restart -m fast` and `-m immediate` under the running denorm.
//! The writer keeps committing random transactions throughout (also while
//! denorm is down). After each fault the writer runs on for a moment, then
//! pauses, and the cycle measures how long the views take to equal the
//! source's own answer to their SELECTs; whatever still differs after 60 s
//! is counted: rows the source has that a view lacks (**lost**) and rows a
//! view has beyond the source's (**duplicated**; a wrong aggregate counts
//! one of each). Printed: cycles, faults, lost, duplicated, time to
//! converge (an upper bound: one comparison of every view takes part of it)
//! and restart time (p50/max), and restart time beside the time of
//! a start that snapshots the same data (state directory removed; medians
//! of three alternated starts). Nothing
//! asserts: benchmarks are not tests.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/pg_project/mod.rs"]
mod pg_project;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{view_rows, Background, Denorm, Project, SplitMix};
use denorm_types::{Datum, Value};
use pg_project::server::{pg_ctl, transaction, ServerBack};
use pg_project::{column_types, reference, PgProject};

/// The views: one row per source row (a lost or repeated change shows
/// as a missing or extra row), a join with an aggregate, an aggregate.
const VIEWS: &[(&str, &str)] = &[
    ("all_transfers", "SELECT id, account_id, amount FROM transfers"),
    (
        "balances",
        "SELECT a.id, a.owner, a.balance, COUNT(t.id) AS transfers, SUM(t.amount) AS total \
         FROM accounts a LEFT JOIN transfers t ON t.account_id = a.id GROUP BY a.id, a.owner, a.balance",
    ),
    ("owners", "SELECT owner, COUNT(*) AS accounts, SUM(balance) AS total FROM accounts GROUP BY owner"),
];

/// How long a cycle waits for the views to equal the source.
const CONVERGE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Kill,
    KillDuringStart,
    Terminate,
    PgRestartFast,
    PgRestartImmediate,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::KillDuringStart => "kill -9 during start",
            Fault::Terminate => "SIGTERM",
            Fault::PgRestartFast => "pg restart fast",
            Fault::PgRestartImmediate => "pg restart immediate",
        }
    }
}

#[derive(Default)]
struct Tally {
    cycles: usize,
    faults: HashMap<&'static str, usize>,
    lost: usize,
    duplicated: usize,
    converge: Vec<f64>,
    restart: Vec<f64>,
}

/// The source side of a run: how to read its rows and the writer's state.
trait Source {
    /// The source's rows for `select`; `None` while it cannot answer.
    fn reference(&mut self, denorm: &Denorm, view: &str, select: &str) -> Option<Vec<Vec<Value>>>;
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn views_sql() -> String {
    VIEWS.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

/// Rows the source has that the view lacks, and rows beyond the source's.
fn differences(got: &[Vec<Value>], want: &[Vec<Value>]) -> (usize, usize) {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for row in want {
        *counts.entry(format!("{row:?}")).or_default() += 1;
    }
    for row in got {
        *counts.entry(format!("{row:?}")).or_default() -= 1;
    }
    let lost = counts.values().filter(|&&c| c > 0).map(|&c| c as usize).sum();
    let duplicated = counts.values().filter(|&&c| c < 0).map(|&c| (-c) as usize).sum();
    (lost, duplicated)
}

/// Every view against the source: total (lost, duplicated), or `None`
/// while the server cannot answer.
fn compare(denorm: &Denorm, source: &mut dyn Source) -> Option<(usize, usize)> {
    let (status, listed) = denorm.get("/views");
    if status != 200 {
        return None;
    }
    let mut total = (0, 0);
    for (name, select) in VIEWS {
        let view = listed.as_array()?.iter().find(|v| v["name"] == *name)?;
        let columns: Vec<String> =
            view["columns"].as_array()?.iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let got = view_rows(denorm, name, &columns);
        let want = source.reference(denorm, name, select)?;
        let (lost, duplicated) = differences(&got, &want);
        total = (total.0 + lost, total.1 + duplicated);
    }
    Some(total)
}

/// Waits until the views equal the source (the writer is paused): the
/// seconds it took and what still differs at the limit.
fn converge(denorm: &Denorm, source: &mut dyn Source) -> (f64, (usize, usize)) {
    let started = Instant::now();
    let mut last = (0, 0);
    while started.elapsed() < CONVERGE_LIMIT {
        match compare(denorm, source) {
            Some((0, 0)) => return (started.elapsed().as_secs_f64(), (0, 0)),
            Some(differ) => last = differ,
            None => {}
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (started.elapsed().as_secs_f64(), last)
}

/// Starts denorm and waits until it serves; the seconds it took.
fn start(config: &Path) -> (Denorm, f64) {
    let started = Instant::now();
    let denorm = Denorm::start(config);
    (denorm, started.elapsed().as_secs_f64())
}

/// Random transactions on the SQLite file from another connection, as an
/// application writes (busy timeout set, as the README advises).
fn sqlite_writer(db: &Path, first: i64) -> Background {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut rng = SplitMix(11);
    let mut next_transfer = first;
    Background::spawn(move || {
        let sql = transaction(&mut rng, &mut next_transfer);
        let committed = match conn.execute_batch(&sql) {
            Ok(()) => true,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                eprintln!("writer: {e}");
                false
            }
        };
        std::thread::sleep(Duration::from_millis(2));
        committed
    })
}

struct Sqlite(rusqlite::Connection);

impl Source for Sqlite {
    fn reference(&mut self, _denorm: &Denorm, _view: &str, select: &str) -> Option<Vec<Vec<Value>>> {
        let mut statement = self.0.prepare(select).ok()?;
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                Ok((0..width)
                    .map(|i| match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => Datum::Null,
                        rusqlite::types::ValueRef::Integer(v) => Datum::Int(v),
                        rusqlite::types::ValueRef::Real(v) => Datum::Float(v),
                        rusqlite::types::ValueRef::Text(t) => {
                            Datum::owned_text(String::from_utf8_lossy(t).into_owned())
                        }
                        rusqlite::types::ValueRef::Blob(b) => Datum::owned_text(format!("{b:?}")),
                    })
                    .collect())
            })
            .ok()?
            .collect::<Result<Vec<_>, _>>();
        rows.ok()
    }
}

/// A connection per comparison: the server restarts between them.
struct Postgres(String);

impl Source for Postgres {
    fn reference(&mut self, denorm: &Denorm, view: &str, select: &str) -> Option<Vec<Vec<Value>>> {
        let mut client = postgres::Client::connect(&self.0, postgres::NoTls).ok()?;
        client.batch_execute("SET TimeZone = 'UTC'").ok()?;
        let (_, listed) = denorm.get("/views");
        let info = listed.as_array()?.iter().find(|v| v["name"] == view)?;
        Some(reference(&mut client, select, &column_types(info)).1)
    }
}

/// Runs `cycles` faults; `faults` are the kinds drawn from.
fn cycles(
    cycles: usize,
    faults: &[Fault],
    config: &Path,
    source: &mut dyn Source,
    pause: &dyn Fn(bool),
    seed: u64,
) -> (Tally, f64, f64) {
    let mut rng = SplitMix(seed);
    let mut tally = Tally::default();
    let (mut denorm, first_start) = start(config);
    for cycle in 0..cycles {
        std::thread::sleep(Duration::from_millis(200 + rng.below(600)));
        let fault = faults[rng.below(faults.len() as u64) as usize];
        *tally.faults.entry(fault.name()).or_default() += 1;
        match fault {
            Fault::Kill | Fault::KillDuringStart | Fault::Terminate => {
                if fault == Fault::Terminate {
                    denorm.terminate();
                } else {
                    denorm.kill();
                }
                std::thread::sleep(Duration::from_millis(100 + rng.below(400)));
                if fault == Fault::KillDuringStart {
                    let early = Denorm::spawn(config);
                    std::thread::sleep(Duration::from_millis(rng.below(300)));
                    early.kill();
                }
                let (next, seconds) = start(config);
                tally.restart.push(seconds);
                denorm = next;
            }
            Fault::PgRestartFast => pg_ctl(&["restart", "-m", "fast"]),
            Fault::PgRestartImmediate => pg_ctl(&["restart", "-m", "immediate"]),
        }
        std::thread::sleep(Duration::from_millis(300));
        pause(true);
        let (seconds, (lost, duplicated)) = converge(&denorm, source);
        pause(false);
        tally.cycles += 1;
        tally.converge.push(seconds);
        tally.lost += lost;
        tally.duplicated += duplicated;
        eprintln!(
            "  cycle {:>3}: {:<22} converged in {seconds:>6.2} s, lost {lost}, duplicated {duplicated}",
            cycle + 1,
            fault.name()
        );
    }
    // Restart with the state directory vs a start that snapshots the same
    // data, alternated three times (the machine is shared): the medians.
    pause(true);
    denorm.terminate();
    let state = config.with_extension("state");
    let (mut restarts, mut snapshots) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (again, restart) = start(config);
        again.terminate();
        restarts.push(restart);
        std::fs::remove_dir_all(&state).unwrap_or_else(|e| panic!("{}: {e}", state.display()));
        let (fresh, snapshot) = start(config);
        fresh.terminate();
        snapshots.push(snapshot);
    }
    pause(false);
    let (restart, snapshot) = (percentile(&restarts, 0.5), percentile(&snapshots, 0.5));
    eprintln!("  first start {first_start:.2} s");
    (tally, restart, snapshot)
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(source: &str, rows: u64, committed: u64, tally: &Tally, restart: f64, snapshot: f64) {
    let mut faults: Vec<_> = tally.faults.iter().collect();
    faults.sort();
    let faults: Vec<String> = faults.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
    println!("{source}: {rows} transfers at start, {committed} writer transactions, load {}", load());
    println!("  cycles {:>4}   faults: {}", tally.cycles, faults.join(", "));
    println!("  lost {:>6}   duplicated {:>6}", tally.lost, tally.duplicated);
    println!(
        "  converge p50 {:.2} s, max {:.2} s   restart p50 {:.2} s, max {:.2} s",
        percentile(&tally.converge, 0.5),
        percentile(&tally.converge, 1.0),
        percentile(&tally.restart, 0.5),
        percentile(&tally.restart, 1.0)
    );
    println!(
        "  restart with the state directory {restart:.2} s, start by snapshot {snapshot:.2} s (medians of 3; \
         snapshot ÷ restart = {:.2})",
        snapshot / restart.max(1e-9)
    );
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER);
CREATE TABLE transfers (id INTEGER PRIMARY KEY, account_id INTEGER, amount INTEGER);
";

fn sqlite(rows: u64, count: usize) {
    let project = Project::new(SQLITE_SCHEMA, &views_sql());
    {
        let mut conn = project.connect();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO accounts SELECT i, 'owner' || (i % 7), i * 10 FROM n;",
        )
        .unwrap();
        tx.execute(
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
                 INSERT INTO transfers SELECT i, i % 1000 + 1, i % 100 FROM n"
            ),
            [],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let writer = sqlite_writer(&project.db, rows as i64 + 1_000);
    let mut source = Sqlite(project.connect());
    let pause = |on: bool| if on { writer.pause() } else { writer.resume() };
    let (tally, restart, snapshot) = cycles(
        count,
        &[Fault::Kill, Fault::KillDuringStart, Fault::Terminate],
        &project.config,
        &mut source,
        &pause,
        3,
    );
    let committed = writer.finish();
    report("SQLite", rows, committed, &tally, restart, snapshot);
}

fn postgres(rows: u64, count: usize) {
    let _back = ServerBack;
    let schema = format!(
        "CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance integer);
         CREATE TABLE transfers (id bigint PRIMARY KEY, account_id integer, amount integer);
         ALTER TABLE accounts REPLICA IDENTITY FULL;
         ALTER TABLE transfers REPLICA IDENTITY FULL;
         INSERT INTO accounts SELECT i, 'owner' || (i % 7), i * 10 FROM generate_series(1, 1000) i;
         INSERT INTO transfers SELECT i, i % 1000 + 1, i % 100 FROM generate_series(1, {rows}) i;"
    );
    let project = PgProject::new("bench_chaos", &schema, &views_sql());
    let writer = pg_project::server::Writer::starting_at(project.url.clone(), 5, rows as i64 + 1_000);
    let mut source = Postgres(project.url.clone());
    let pause = |on: bool| if on { writer.pause() } else { writer.resume() };
    let faults =
        [Fault::Kill, Fault::KillDuringStart, Fault::Terminate, Fault::PgRestartFast, Fault::PgRestartImmediate];
    let (tally, restart, snapshot) = cycles(count, &faults, &project.config, &mut source, &pause, 4);
    let committed = writer.finish();
    report("PostgreSQL", rows, committed, &tally, restart, snapshot);
}

fn main() {
    let rows = env_or("DENORM_BENCH_ROWS", 100_000);
    let count = env_or("DENORM_BENCH_CYCLES", 12) as usize;
    println!("chaos: {count} fault cycles per source under a writer (machine load {})", load());
    sqlite(rows, count);
    if std::env::var("DENORM_TEST_POSTGRES_URL").is_ok() {
        postgres(rows, count);
    } else {
        println!("PostgreSQL: skipped (set DENORM_TEST_POSTGRES_URL, e.g. from scripts/postgres start)");
    }
}
