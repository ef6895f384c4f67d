//! The PostgreSQL source's figures (issue 4), printed side by side: run it
//! with `scripts/bench-pg` (which starts a throwaway server), or by hand:
//!
//! ```sh
//! DENORM_BENCH_POSTGRES_URL=postgres://denorm:denorm@127.0.0.1:55460/denorm \
//!     cargo bench -p denorm --bench postgres
//! ```
//!
//! Everything goes through the release `denorm` binary (`denorm run`, HTTP)
//! and PostgreSQL's own `pgbench`, on a database `denorm_bench` created
//! afresh (`ALTER DATABASE … SET synchronous_commit = on`: a commit returns
//! once its WAL is flushed, as in production; the test cluster's `fsync =
//! off` makes the figures CPU, not disk). Views read the pgbench tables
//! (TPC-B: a transaction updates an account, a teller and a branch and
//! inserts a history row: 4 changes).
//!
//! 1. **Freshness** under `pgbench --rate` (TPC-B, 4 changes a transaction)
//!    at 1k and 10k changes/s: a probe commits a marker row every
//!    `DENORM_BENCH_PROBE_MS` ms, reads `pg_current_wal_lsn()`, and GETs the
//!    marker from the view with that position in `Denorm-Min-Position` (the
//!    read waits in the server until the view reflects it). Freshness = the
//!    probe's COMMIT returning → the HTTP response with the row; it includes
//!    one SQL round trip and one HTTP round trip, so it overstates the
//!    engine's commit→publish time slightly.
//! 2. **Decode + apply throughput from one slot**: denorm is frozen
//!    (SIGSTOP) while a procedure commits `DENORM_BENCH_CHANGES` changes
//!    (default 1M) to the pgbench tables — as TPC-B transactions of 4
//!    changes, and again as transactions of 1,000 changes — then thawed
//!    (SIGCONT); changes/s = changes / (thaw → a read with the final
//!    position in `Denorm-Min-Position` answers). The walsender decodes
//!    and denorm applies concurrently, so this is the pipeline's rate; the
//!    CPU each used says which one limited it. Beside it, the server's
//!    ceiling: a second slot created at the same point is read to the same
//!    position by `pg_recvlogical` (PostgreSQL's own client: it writes the
//!    stream to /dev/null and does nothing else).
//! 3. **Source write overhead**: `pgbench` TPS (TPC-B, as fast as it goes,
//!    `DENORM_BENCH_CLIENTS` clients) with denorm attached (REPLICA IDENTITY
//!    FULL, publication, slot, `denorm run` following) vs detached (identity
//!    DEFAULT, no slot, no denorm), and with identity FULL but no denorm (the
//!    extra WAL alone), `DENORM_BENCH_ROUNDS` rounds of each (order reversed
//!    every other round) of `DENORM_BENCH_SECONDS` seconds; the CPU denorm
//!    and the walsender used meanwhile (`/proc/<pid>/stat`; the server must
//!    run on this machine for the walsender's figure). A fourth mode
//!    attaches `pg_recvlogical` to the same tables instead of denorm: the
//!    loss logical decoding itself causes with a consumer that does no
//!    work, which any pgoutput consumer pays.
//! 4. **Snapshot rows/s** of a `DENORM_BENCH_SNAPSHOT_ROWS`-row table
//!    (default 10M; id, integer, text, double): `denorm run` with one
//!    aggregate view over it logs its progress and its read and total rates;
//!    beside it, a raw `COPY … TO STDOUT` of the same columns read by a
//!    client that only counts lines.
//!
//! `DENORM_BENCH_RATES` (default `1000,10000`) sets the freshness loads
//! in changes/s. `DENORM_BENCH_PARTS` (default `snapshot,throughput,freshness,overhead`)
//! picks parts; `DENORM_BENCH_SCALE` is pgbench's scale (default 10: 1M
//! accounts). Each figure is printed with the load average (`uptime`) at
//! the time: other work on the machine changes the figures. Nothing here
//! asserts: benchmarks are not tests.

#[path = "../tests/common/process.rs"]
mod process;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

const DATABASE: &str = "denorm_bench";
const SLOT: &str = "denorm_bench";
/// pg_recvlogical's slot and publication (the baselines).
const CEILING_SLOT: &str = "denorm_bench_ceiling";
const RAW: &str = "denorm_bench_raw";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW branch_accounts AS
  SELECT bid, COUNT(*) AS accounts, SUM(abalance) AS balance FROM pgbench_accounts GROUP BY bid;
CREATE MATERIALIZED VIEW teller_cards AS
  SELECT t.tid, t.tbalance, b.bbalance AS branch_balance
  FROM pgbench_tellers t JOIN pgbench_branches b ON b.bid = t.bid;
CREATE MATERIALIZED VIEW teller_history AS
  SELECT tid, COUNT(*) AS n, SUM(delta) AS total FROM pgbench_history GROUP BY tid;
CREATE MATERIALIZED VIEW probes AS SELECT id FROM bench_probe;
";

const PGBENCH_TABLES: [&str; 4] = ["pgbench_accounts", "pgbench_tellers", "pgbench_branches", "pgbench_history"];

/// TPC-B-like transactions committed from inside the server (a procedure
/// that COMMITs in its loop): `n` transactions of `per` account updates
/// (and, per account, a teller update, a branch update and a history row:
/// 4 changes each).
const LOAD_PROCEDURE: &str = "
CREATE OR REPLACE PROCEDURE bench_load(n integer, per integer, accounts integer, tellers integer, branches integer)
LANGUAGE plpgsql AS $$
DECLARE
  a integer; t integer; b integer; d integer;
BEGIN
  FOR i IN 1..n LOOP
    FOR j IN 1..per LOOP
      a := 1 + floor(random() * accounts)::integer;
      t := 1 + floor(random() * tellers)::integer;
      b := 1 + floor(random() * branches)::integer;
      d := floor(random() * 10001)::integer - 5000;
      UPDATE pgbench_accounts SET abalance = abalance + d WHERE aid = a;
      UPDATE pgbench_tellers SET tbalance = tbalance + d WHERE tid = t;
      UPDATE pgbench_branches SET bbalance = bbalance + d WHERE bid = b;
      INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (t, b, a, d, now());
    END LOOP;
    COMMIT;
  END LOOP;
END $$;
";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

/// The load average, as `uptime` shows it.
fn load() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("load {}", fields.join(" "))
}

fn url_for(url: &str, database: &str) -> String {
    let (prefix, _) = url.rsplit_once('/').expect("a URL ending in /database");
    format!("{prefix}/{database}")
}

struct Bench {
    admin_url: String,
    url: String,
    pgbench: PathBuf,
    work: tempfile::TempDir,
    scale: u32,
    clients: u32,
    results: Vec<String>,
}

fn main() {
    let Ok(admin_url) = std::env::var("DENORM_BENCH_POSTGRES_URL") else {
        eprintln!(
            "benches/postgres: DENORM_BENCH_POSTGRES_URL is not set; run scripts/bench-pg (it starts a server), or \
             set it to a superuser URL of a server with wal_level=logical"
        );
        return;
    };
    let parts = std::env::var("DENORM_BENCH_PARTS").unwrap_or_else(|_| "snapshot,throughput,freshness,overhead".into());
    let mut bench = Bench {
        url: url_for(&admin_url, DATABASE),
        admin_url,
        pgbench: pgbench_path(),
        work: tempfile::tempdir().unwrap(),
        scale: env_or("DENORM_BENCH_SCALE", 10),
        clients: env_or("DENORM_BENCH_CLIENTS", 4),
        results: Vec::new(),
    };
    println!("machine: {} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), load());
    bench.create_database();
    if parts.contains("snapshot") {
        bench.snapshot(env_or("DENORM_BENCH_SNAPSHOT_ROWS", 10_000_000));
    }
    bench.pgbench_init();
    if parts.contains("throughput") {
        let changes = env_or("DENORM_BENCH_CHANGES", 1_000_000);
        bench.throughput(changes, "TCP", &bench.url.clone());
        if let Ok(socket) = std::env::var("DENORM_BENCH_POSTGRES_SOCKET_URL") {
            bench.throughput(changes, "Unix socket", &url_for(&socket, DATABASE));
        }
    }
    if parts.contains("freshness") {
        let rates = std::env::var("DENORM_BENCH_RATES").unwrap_or_else(|_| "1000,10000".into());
        for rate in rates.split(',') {
            bench.freshness(rate.trim().parse().expect("DENORM_BENCH_RATES: changes/s, comma-separated"));
        }
    }
    if parts.contains("overhead") {
        bench.overhead(env_or("DENORM_BENCH_ROUNDS", 3), env_or("DENORM_BENCH_SECONDS", 20));
    }
    println!("\n=== PostgreSQL source: summary ===");
    for line in &bench.results {
        println!("{line}");
    }
    bench.admin().batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")).ok();
}

fn pgbench_path() -> PathBuf {
    if let Ok(path) = std::env::var("PGBENCH") {
        return path.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.flatten().map(|e| e.path().join("bin/pgbench")).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| "pgbench".into())
}

impl Bench {
    fn admin(&self) -> Client {
        Client::connect(&self.admin_url, NoTls).expect("the benchmark server accepts connections")
    }

    fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    fn report(&mut self, line: String) {
        println!("{line}");
        self.results.push(line);
    }

    fn create_database(&self) {
        let mut admin = self.admin();
        admin
            .query(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
                &[&SLOT],
            )
            .ok();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")).unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {DATABASE} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"))
            .unwrap();
        admin.batch_execute(&format!("ALTER DATABASE {DATABASE} SET synchronous_commit = on")).unwrap();
    }

    /// A config for `views` in its own directory.
    fn config(&self, name: &str, views: &str) -> PathBuf {
        self.config_at(name, views, &self.url)
    }

    /// A config for `views` reading the database at `url`.
    fn config_at(&self, name: &str, views: &str, url: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("views.sql"), views).unwrap();
        let config = dir.join("denorm.toml");
        std::fs::write(
            &config,
            format!(
                "views = [\"views.sql\"]\n[source]\nurl = \"{url}\"\nslot = \"{SLOT}\"\npublication = \"{SLOT}\"\n\
                 [server]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        config
    }

    // --- 4. snapshot ---------------------------------------------------------

    fn snapshot(&mut self, rows: u64) {
        println!("\n--- snapshot of a {rows}-row table ---");
        let mut client = self.client();
        client
            .batch_execute(
                "CREATE TABLE bench_big (id bigint NOT NULL, k integer NOT NULL, name text NOT NULL, amount double precision);
                 ALTER TABLE bench_big REPLICA IDENTITY FULL;",
            )
            .unwrap();
        let started = Instant::now();
        let chunk = 1_000_000u64;
        let mut done = 0;
        while done < rows {
            let upto = (done + chunk).min(rows);
            client
                .batch_execute(&format!(
                    "SET synchronous_commit = off; INSERT INTO bench_big \
                     SELECT g, (g % 1000)::integer, 'name ' || g, g * 0.25 FROM generate_series({}, {upto}) g",
                    done + 1
                ))
                .unwrap();
            done = upto;
            eprintln!("  loading bench_big: {done}/{rows} rows ({:.0} s)", started.elapsed().as_secs_f64());
        }
        client.batch_execute("VACUUM ANALYZE bench_big").unwrap();
        let bytes: i64 = client.query_one("SELECT pg_table_size('bench_big')", &[]).unwrap().get(0);

        // The floor: a client reading the same COPY and counting lines.
        let load_before = load();
        let copy_started = Instant::now();
        let mut reader = client.copy_out("COPY (SELECT id, k, name, amount FROM bench_big) TO STDOUT").unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut lines = 0u64;
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        drop(reader);
        let copy_seconds = copy_started.elapsed().as_secs_f64();
        let copy_rate = lines as f64 / copy_seconds;

        let config = self.config(
            "snapshot",
            "CREATE MATERIALIZED VIEW big_by_k AS SELECT k, COUNT(*) AS n, SUM(amount) AS total FROM bench_big GROUP BY k;\n",
        );
        let mut denorm = Denorm::spawn(&config);
        let line = denorm.wait_for_log("snapshot published", Duration::from_secs(1800), true);
        let field = |name: &str| -> f64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let (read_rate, total_rate) = (field("read_rows_per_second"), field("rows_per_second"));
        let (read_seconds, total_seconds) = (field("read_seconds"), field("total_seconds"));
        denorm.stop();
        self.uninstall(&config);
        client.batch_execute("DROP TABLE bench_big").unwrap();
        self.report(format!(
            "snapshot {rows} rows ({:.0} MB table): denorm read {:.2}M rows/s ({read_seconds:.1} s), read + \
             maintained + published {:.2}M rows/s ({total_seconds:.1} s); raw COPY to a line-counting client \
             {:.2}M rows/s ({copy_seconds:.1} s); denorm read / raw COPY = {:.2} [target >= 1M rows/s] [{load_before}]",
            bytes as f64 / 1e6,
            read_rate / 1e6,
            total_rate / 1e6,
            copy_rate / 1e6,
            read_rate / copy_rate,
        ));
    }

    // --- pgbench tables -----------------------------------------------------

    fn pgbench_init(&mut self) {
        println!("\n--- pgbench -i -s {} ---", self.scale);
        let status = self.pgbench_command().args(["-i", "-q", "-s", &self.scale.to_string()]).status().unwrap();
        assert!(status.success(), "pgbench -i failed");
        let mut client = self.client();
        client
            .batch_execute(
                "CREATE TABLE bench_probe (id bigint PRIMARY KEY); ALTER TABLE bench_probe REPLICA IDENTITY FULL;",
            )
            .unwrap();
        client.batch_execute(LOAD_PROCEDURE).unwrap();
        self.replica_identity(true);
    }

    fn pgbench_command(&self) -> Command {
        self.tool_command(&self.pgbench, &self.url)
    }

    /// `tool` (a PostgreSQL client program) set to reach the database at
    /// `url` (host or socket directory, port, user, password, database).
    fn tool_command(&self, tool: &Path, url: &str) -> Command {
        let config: postgres::Config = url.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let mut command = Command::new(tool);
        command
            .args(["-h", &host, "-p", &config.get_ports().first().copied().unwrap_or(5432).to_string()])
            .args(["-U", config.get_user().unwrap_or("postgres")])
            .env(
                "PGPASSWORD",
                config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default(),
            )
            .env("PGDATABASE", DATABASE);
        command
    }

    /// Runs pgbench with `args`; its TPS and the whole output.
    fn pgbench(&self, args: &[&str]) -> (f64, String) {
        let output = self.pgbench_command().args(args).stderr(Stdio::inherit()).output().unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "pgbench {args:?} failed:\n{text}");
        let tps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN);
        (tps, text)
    }

    fn replica_identity(&self, full: bool) {
        let identity = if full { "FULL" } else { "DEFAULT" };
        let sql: String =
            PGBENCH_TABLES.iter().map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY {identity};")).collect();
        self.client().batch_execute(&sql).unwrap();
    }

    fn uninstall(&self, config: &Path) {
        let status = Command::new(env!("CARGO_BIN_EXE_denorm"))
            .args(["source", "uninstall", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "denorm source uninstall failed");
    }

    /// `pg_current_wal_lsn()` as text.
    fn lsn(client: &mut Client) -> String {
        client.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0)
    }

    /// `pg_recvlogical`, PostgreSQL's own logical-replication client, set
    /// to reach the database at `url`. It writes what the walsender sends to
    /// /dev/null and does no other work: what logical decoding costs with a
    /// consumer that costs nothing, the baseline denorm is compared with.
    fn recvlogical(&self, url: &str, slot: &str, publication: &str) -> Command {
        let mut command = self.tool_command(&self.pgbench.with_file_name("pg_recvlogical"), url);
        command
            .args(["-d", DATABASE, "--slot", slot, "--start", "--no-loop", "-f", "/dev/null", "-F", "0"])
            .args(["-o", "proto_version=1", "-o", &format!("publication_names={publication}")])
            .stdout(Stdio::null());
        command
    }

    fn drop_slot(&self, slot: &str) {
        let mut client = self.client();
        for _ in 0..100 {
            let sql = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1";
            if client.query(sql, &[&slot]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100)); // still active
        }
        panic!("slot {slot} stayed active");
    }

    /// The walsender serving `slot`, once a client streams from it.
    fn walsender_of(&self, slot: &str) -> u32 {
        let mut client = self.client();
        for _ in 0..300 {
            let row =
                client.query_one("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).unwrap();
            if let Some(pid) = row.get::<_, Option<i32>>(0) {
                return pid as u32;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nothing streams from slot {slot}");
    }

    // --- 2. decode + apply throughput ------------------------------------------

    /// `url`: the database as denorm reaches it (`transport` names how).
    fn throughput(&mut self, changes: u64, transport: &str, url: &str) {
        let config = self.config_at("pgbench", VIEWS, url);
        let mut denorm = Denorm::spawn(&config);
        denorm.connect();
        let mut client = self.client();
        client.batch_execute("SET synchronous_commit = off").unwrap();
        let (accounts, tellers, branches) = (self.scale * 100_000, self.scale * 10, self.scale);
        for per in [1u64, 250] {
            let transactions = changes / (4 * per);
            let changes = transactions * 4 * per;
            println!(
                "\n--- decode + apply: {changes} changes in {transactions} transactions of {} changes ---",
                4 * per
            );
            // Caught up first.
            let lsn = Self::lsn(&mut client);
            assert_eq!(denorm.read_at(&lsn, "60s").0, 200, "denorm did not catch up");
            // A second slot from here: pg_recvlogical decodes the same WAL
            // from it afterwards, the server's own ceiling.
            client.execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&CEILING_SLOT]).unwrap();
            denorm.signal("STOP");
            let generating = Instant::now();
            client
                .execute(
                    "CALL bench_load($1, $2, $3, $4, $5)",
                    &[&(transactions as i32), &(per as i32), &(accounts as i32), &(tellers as i32), &(branches as i32)],
                )
                .unwrap();
            client.batch_execute("SET synchronous_commit = on; SELECT 1").unwrap();
            let target = Self::lsn(&mut client);
            let generated_in = generating.elapsed().as_secs_f64();
            eprintln!("  generated in {generated_in:.1} s, up to {target}; thawing denorm");
            let load_before = load();
            let walsender: u32 = client
                .query_one("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&SLOT])
                .unwrap()
                .get::<_, Option<i32>>(0)
                .unwrap_or(0) as u32;
            let cpu_before = (cpu_seconds(denorm.child.id()), cpu_seconds(walsender));
            let thawed = Instant::now();
            denorm.signal("CONT");
            loop {
                let (status, _, _) = denorm.read_at(&target, "60s");
                if status == 200 {
                    break;
                }
                assert!(thawed.elapsed() < Duration::from_secs(1800), "denorm never caught up");
            }
            let seconds = thawed.elapsed().as_secs_f64();
            let ceiling_started = Instant::now();
            let status = self
                .recvlogical(url, CEILING_SLOT, SLOT)
                .args(["--endpos", &target])
                .status()
                .expect("pg_recvlogical runs");
            assert!(status.success(), "pg_recvlogical failed");
            let ceiling = changes as f64 / ceiling_started.elapsed().as_secs_f64();
            self.drop_slot(CEILING_SLOT);
            // Who was the bottleneck: a side near 100% of a core.
            let busy = |now: f64, then: f64| 100.0 * (now - then) / seconds;
            let (engine, sender) =
                (busy(cpu_seconds(denorm.child.id()), cpu_before.0), busy(cpu_seconds(walsender), cpu_before.1));
            self.report(format!(
                "decode + apply from one slot over {transport}, transactions of {} changes: {changes} changes in \
                 {seconds:.2} s = \
                 {:.0}k changes/s ({:.0} transactions/s) [target >= 300k changes/s]; CPU while catching up: denorm \
                 {engine:.0}%, walsender {sender:.0}% of a core; the same WAL to pg_recvlogical (decoding and \
                 sending only, the server's ceiling): {:.0}k changes/s [{load_before}; generated in \
                 {generated_in:.1} s while denorm was stopped]",
                4 * per,
                changes as f64 / seconds / 1e3,
                transactions as f64 / seconds,
                ceiling / 1e3,
            ));
        }
        denorm.stop();
        self.uninstall(&config);
    }

    // --- 1. freshness ----------------------------------------------------------------

    fn freshness(&mut self, changes_per_second: u32) {
        let seconds: u64 = env_or("DENORM_BENCH_FRESHNESS_SECONDS", 20);
        let probe_every = Duration::from_millis(env_or("DENORM_BENCH_PROBE_MS", 20));
        let tps = changes_per_second / 4;
        println!("\n--- freshness at {changes_per_second} changes/s (pgbench --rate {tps}, TPC-B) ---");
        let config = self.config("pgbench", VIEWS);
        let mut denorm = Denorm::spawn(&config);
        denorm.connect();
        let stop = Arc::new(AtomicBool::new(false));
        let probe = {
            let (url, base, stop) = (self.url.clone(), denorm.base.clone(), stop.clone());
            std::thread::spawn(move || probe_loop(&url, &base, probe_every, &stop))
        };
        std::thread::sleep(Duration::from_secs(1));
        let load_before = load();
        let (achieved, output) = self.pgbench(&[
            "-n",
            "-c",
            &self.clients.to_string(),
            "-j",
            "2",
            "-R",
            &tps.to_string(),
            "-T",
            &seconds.to_string(),
        ]);
        stop.store(true, Ordering::SeqCst);
        let (mut samples, failures) = probe.join().unwrap();
        let lag = output.lines().find(|l| l.contains("schedule lag")).unwrap_or("").trim().to_string();
        denorm.stop();
        self.uninstall(&config);
        let (p50, p99, max) = percentiles(&mut samples);
        self.report(format!(
            "freshness at {changes_per_second} changes/s (pgbench -R {tps}, achieved {:.0} tps = {:.0} changes/s): \
             commit -> visible over HTTP p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} probes ({failures} \
             timed out) [target p99 < 10 ms at 10k/s] [{load_before}] {lag}",
            achieved,
            achieved * 4.0,
            p50 * 1e3,
            p99 * 1e3,
            max * 1e3,
            samples.len(),
        ));
    }

    // --- 3. write overhead -----------------------------------------------------------

    fn overhead(&mut self, rounds: u32, seconds: u64) {
        println!(
            "\n--- pgbench TPS: detached / REPLICA IDENTITY FULL only / pg_recvlogical attached / denorm attached, \
             {rounds} rounds of {seconds} s each ---"
        );
        let config = self.config("pgbench", VIEWS);
        let tables: Vec<&str> = PGBENCH_TABLES.iter().copied().chain(["bench_probe"]).collect();
        self.client()
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {RAW}; CREATE PUBLICATION {RAW} FOR TABLE {}",
                tables.join(", ")
            ))
            .unwrap();
        let names = ["detached", "identity FULL only", "pg_recvlogical attached", "denorm attached"];
        let mut tps_by_mode: [Vec<f64>; 4] = Default::default();
        // (consumer, walsender) CPU, % of a core, per attached mode.
        let mut cpu: [Vec<(f64, f64)>; 4] = Default::default();
        let mut loads = Vec::new();
        for round in 0..rounds {
            let mut order = [0usize, 1, 2, 3];
            if round % 2 == 1 {
                order.reverse();
            }
            for mode in order {
                self.client().batch_execute("TRUNCATE pgbench_history; CHECKPOINT").unwrap();
                self.replica_identity(mode > 0);
                let mut denorm = (mode == 3).then(|| {
                    let mut denorm = Denorm::spawn(&config);
                    denorm.connect();
                    denorm
                });
                let mut raw = (mode == 2).then(|| {
                    self.client()
                        .execute("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", &[&RAW])
                        .unwrap();
                    self.recvlogical(&self.url, RAW, RAW).spawn().expect("pg_recvlogical starts")
                });
                let consumer = denorm.as_ref().map(|d| d.child.id()).or(raw.as_ref().map(Child::id));
                let walsender = match mode {
                    2 => Some(self.walsender_of(RAW)),
                    3 => Some(self.walsender_of(SLOT)),
                    _ => None,
                };
                let before = (consumer.map(cpu_seconds), walsender.map(cpu_seconds));
                loads.push(load());
                let (tps, _) =
                    self.pgbench(&["-n", "-c", &self.clients.to_string(), "-j", "2", "-T", &seconds.to_string()]);
                println!("  round {round}: {} {tps:.0} tps [{}]", names[mode], loads.last().unwrap());
                if let (Some(consumer), Some(walsender)) = (consumer, walsender) {
                    let used = |now: f64, then: Option<f64>| 100.0 * (now - then.unwrap_or(now)) / seconds as f64;
                    let used = (used(cpu_seconds(consumer), before.0), used(cpu_seconds(walsender), before.1));
                    println!("  CPU during the round: consumer {:.0}% of a core, walsender {:.0}%", used.0, used.1);
                    cpu[mode].push(used);
                }
                if let Some(denorm) = denorm.as_mut() {
                    // It kept up: what was committed is visible.
                    let lsn = Self::lsn(&mut self.client());
                    let (status, _, _) = denorm.read_at(&lsn, "60s");
                    println!("  denorm caught up with the round: HTTP {status}");
                }
                if let Some(mut denorm) = denorm {
                    denorm.stop();
                    self.uninstall(&config);
                }
                if let Some(mut raw) = raw.take() {
                    raw.kill().ok();
                    raw.wait().ok();
                    self.drop_slot(RAW);
                }
                tps_by_mode[mode].push(tps);
            }
        }
        self.client().batch_execute(&format!("DROP PUBLICATION IF EXISTS {RAW}")).unwrap();
        self.replica_identity(true);
        let median = |v: &[f64]| {
            let mut v = v.to_vec();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let list = |v: &[f64]| v.iter().map(|t| format!("{t:.0}")).collect::<Vec<_>>().join(", ");
        let [d, f, r, a] = [0, 1, 2, 3].map(|m| median(&tps_by_mode[m]));
        let cpu_of = |m: usize, side: fn(&(f64, f64)) -> f64| median(&cpu[m].iter().map(side).collect::<Vec<_>>());
        self.report(format!(
            "write overhead (pgbench TPC-B, {} clients, {rounds}x{seconds} s per mode, alternating order): detached \
             median {d:.0} tps [{}], REPLICA IDENTITY FULL only {f:.0} tps [{}], pg_recvlogical attached {r:.0} tps \
             [{}], denorm attached {a:.0} tps [{}]: loss vs detached: denorm {:.1}% [target < 3%], pg_recvlogical \
             {:.1}%, identity FULL alone {:.1}%; CPU (median, % of a core): denorm {:.0} + its walsender {:.0}, \
             pg_recvlogical {:.0} + its walsender {:.0} [{}]",
            self.clients,
            list(&tps_by_mode[0]),
            list(&tps_by_mode[1]),
            list(&tps_by_mode[2]),
            list(&tps_by_mode[3]),
            100.0 * (1.0 - a / d),
            100.0 * (1.0 - r / d),
            100.0 * (1.0 - f / d),
            cpu_of(3, |c| c.0),
            cpu_of(3, |c| c.1),
            cpu_of(2, |c| c.0),
            cpu_of(2, |c| c.1),
            loads.join("; "),
        ));
    }
}

/// User + system CPU seconds a process has used (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesized command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Commits a marker row every `every`, then reads it back through the view
/// with `Denorm-Min-Position` = `pg_current_wal_lsn()` after the commit:
/// the seconds from COMMIT returning to the row in the HTTP response, and
/// how many reads timed out or missed the row.
fn probe_loop(url: &str, base: &str, every: Duration, stop: &AtomicBool) -> (Vec<f64>, usize) {
    let mut client = Client::connect(url, NoTls).unwrap();
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut samples = Vec::new();
    let mut failures = 0;
    let mut id: i64 = client.query_one("SELECT coalesce(max(id), 0) FROM bench_probe", &[]).unwrap().get(0);
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        id += 1;
        client.execute("INSERT INTO bench_probe VALUES ($1)", &[&id]).unwrap();
        let committed = Instant::now();
        let lsn: String = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0);
        let mut reply = agent
            .get(format!("{base}/views/probes?id=eq.{id}"))
            .header("Denorm-Min-Position", lsn.as_str())
            .header("Denorm-Timeout", "5s")
            .call()
            .unwrap();
        let body = reply.body_mut().read_to_string().unwrap();
        let seen = committed.elapsed().as_secs_f64();
        if reply.status().as_u16() == 200 && body.contains(&id.to_string()) {
            samples.push(seen);
        } else {
            failures += 1;
        }
        next += every;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        } else {
            next = Instant::now();
        }
    }
    (samples, failures)
}

/// p50, p99 and max; NaN when empty.
fn percentiles(samples: &mut [f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99), samples[samples.len() - 1])
}

/// A running `denorm run`.
struct Denorm {
    child: Child,
    base: String,
    log: mpsc::Receiver<String>,
}

impl Denorm {
    fn spawn(config: &Path) -> Denorm {
        let (child, log) = process::spawn_run(config, false);
        Denorm { child, base: String::new(), log }
    }

    /// The first log line containing `needle`; `echo` prints progress lines.
    fn wait_for_log(&mut self, needle: &str, limit: Duration, echo: bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.log.recv_timeout(left).unwrap_or_else(|_| panic!("denorm did not log {needle:?}"));
            if echo && line.contains("snapshot in progress") {
                eprintln!("  {}", line.split_once("INFO ").map_or(line.as_str(), |(_, rest)| rest));
            }
            if line.contains(" WARN ") || line.contains(" ERROR ") {
                eprintln!("  denorm: {line}");
            }
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Waits until the server listens and the snapshot is published.
    fn connect(&mut self) {
        let line = self.wait_for_log("serving http://", Duration::from_secs(120), false);
        let addr = line.split("serving http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        self.base = format!("http://{addr}");
        self.wait_for_log("snapshot published", Duration::from_secs(600), true);
        // Keep draining the log so that the process never blocks on stderr.
        let (tx, rx) = mpsc::channel();
        let log = std::mem::replace(&mut self.log, rx);
        std::thread::spawn(move || {
            for line in log {
                if line.contains(" WARN ") || line.contains(" ERROR ") {
                    eprintln!("  denorm: {line}");
                }
                if tx.send(line).is_err() {
                    // Nobody listens any more; keep draining.
                }
            }
        });
    }

    /// GET the probes view with `Denorm-Min-Position: lsn`.
    fn read_at(&self, lsn: &str, timeout: &str) -> (u16, Option<u64>, String) {
        let mut reply = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent()
            .get(format!("{}/views/probes?limit=1", self.base))
            .header("Denorm-Min-Position", lsn)
            .header("Denorm-Timeout", timeout)
            .call()
            .unwrap();
        let position = reply.headers().get("denorm-position").and_then(|v| v.to_str().ok()?.parse().ok());
        (reply.status().as_u16(), position, reply.body_mut().read_to_string().unwrap_or_default())
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// SIGTERM, then wait for the exit.
    fn stop(&mut self) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Denorm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
