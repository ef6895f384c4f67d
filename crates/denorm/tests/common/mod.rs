//! Driving the real `denorm` binary over real HTTP, beside a real SQLite file
//! written by this (separate) process.

#![allow(dead_code)]

pub mod items;
pub mod process;
pub mod shells;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use denorm_types::{Datum, Value};
use rusqlite::Connection;
use serde_json::Value as Json;

/// Generous upper bound for anything the tests wait for; a healthy run takes
/// milliseconds. Only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Retries `check` every `every` until it passes; panics with its last
/// error once [`PATIENCE`] has run out.
pub fn eventually<E: std::fmt::Display>(every: Duration, mut check: impl FnMut() -> Result<(), E>) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{e}"),
            Err(_) => std::thread::sleep(every),
        }
    }
}

/// A running `denorm run` process.
pub struct Denorm {
    pub child: Child,
    pub base: String,
    /// stderr lines, collected by a thread.
    pub log: mpsc::Receiver<String>,
    pub lines: Vec<String>,
}

impl Denorm {
    /// Starts `denorm run --config config` (whose `[server] listen` should be
    /// `127.0.0.1:0`) and waits until it serves its initial snapshot.
    pub fn start(config: &Path) -> Denorm {
        let mut denorm = Denorm::spawn(config);
        denorm.connect();
        denorm
    }

    /// Waits until the process prints the address it serves, then until it
    /// is ready.
    pub fn connect(&mut self) {
        let line = self.wait_for_log("serving http://");
        let addr = line.split("serving http://").nth(1).unwrap().split('/').next().unwrap().to_string();
        self.base = format!("http://{addr}");
        self.wait_ready();
    }

    /// Starts `denorm run --config config` without waiting for anything.
    pub fn spawn(config: &Path) -> Denorm {
        let (child, log) = process::spawn_run(config, true);
        Denorm { child, base: String::new(), log, lines: Vec::new() }
    }

    /// Waits for the process to exit; its exit code and full stderr.
    pub fn exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.log.recv_timeout(Duration::from_millis(200)) {
                    self.lines.push(line);
                }
                return (status.code(), self.lines.join("\n"));
            }
            assert!(Instant::now() < deadline, "denorm did not exit");
            while let Ok(line) = self.log.try_recv() {
                self.lines.push(line);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the initial snapshot is published (`/health` is no
    /// longer "starting"): from then on the triggers are installed.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, health) = self.get("/health");
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "denorm did not become ready: {health}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a stderr line containing `needle`; panics with the log if
    /// the process exits or `PATIENCE` passes first.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.lines.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match self.log.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    self.lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        panic!("denorm exited ({status}) before logging {needle:?}:\n{}", self.lines.join("\n"));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    panic!("denorm exited ({status}) before logging {needle:?}:\n{}", self.lines.join("\n"));
                }
            }
        }
        panic!("denorm did not log {needle:?} in time:\n{}", self.lines.join("\n"));
    }

    pub fn get(&self, path: &str) -> (u16, Json) {
        get(&format!("{}{path}", self.base))
    }

    /// Waits until GET /views/{name} answers 200 with `expected`.
    pub fn wait_rows(&self, name: &str, expected: Json) {
        eventually(Duration::from_millis(50), || {
            let (status, rows) = self.get(&format!("/views/{name}"));
            if status == 200 && rows == expected {
                Ok(())
            } else {
                Err(format!("/views/{name}: {status} {rows}, want {expected}"))
            }
        });
    }

    /// Polls `/views` until `done` holds for it; returns it.
    pub fn wait_for(&self, done: impl Fn(&Json) -> bool) -> Json {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (_, views) = self.get("/views");
            if done(&views) {
                return views;
            }
            assert!(Instant::now() < deadline, "/views never reached the expected state: {views}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until every view refreshed on change reflects at least `position`.
    pub fn wait_for_position(&self, position: i64) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, views) = self.get("/views");
            if status == 200 {
                // Scheduled views (refresh = '…') move only at their refresh.
                let maintained = |v: &&Json| v["status"] != "failed" && v["refresh"] == "on_change";
                let behind = views
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(maintained)
                    .any(|v| v["position"].as_i64().is_none_or(|p| p < position));
                if !behind {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "views did not reach position {position}: {views}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGTERM and returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        signal(&self.child, "TERM");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "denorm did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; the process must exit cleanly (code 0). Its stderr lines
    /// until it exited.
    pub fn stop_cleanly(self) -> String {
        signal(&self.child, "TERM");
        let (code, log) = self.exit();
        assert_eq!(code, Some(0), "{log}");
        log
    }

    /// kill -9.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Denorm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// GET `url`; the status and the JSON body (Null when the body is not JSON).
pub fn get(url: &str) -> (u16, Json) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut response = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

pub fn get_text(url: &str) -> (u16, String) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut response = agent.get(url).call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
}

/// A project directory: schema applied to `app.db`, views and a config that
/// listens on a free port.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
}

impl Project {
    pub fn new(schema: &str, views: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        Connection::open(&db).unwrap().execute_batch(schema).unwrap();
        std::fs::write(dir.path().join("views.sql"), views).unwrap();
        let config = dir.path().join("denorm.toml");
        std::fs::write(
            &config,
            "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        Project { dir, config, db }
    }

    pub fn connect(&self) -> Connection {
        let c = Connection::open(&self.db).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }
}

/// The change-log position after everything committed so far: what an
/// application reads after its write to wait for its own change.
pub fn committed_position(conn: &Connection) -> i64 {
    conn.query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '_denorm_changes'), 0)", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Waits until denorm has released every logged change of the source
/// (`_denorm_changes` empty): it releases only what its state directory
/// made durable, so after this a `kill -9` loses nothing it logged. (A
/// fixed sleep past the durable interval was not enough on a loaded
/// machine.)
pub fn wait_until_released(conn: &Connection) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let left: i64 = conn.query_row("SELECT count(*) FROM _denorm_changes", [], |r| r.get(0)).unwrap();
        if left == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{left} logged changes not released after 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `id`s of view `view`'s rows, in order.
pub fn view_ids(denorm: &Denorm, view: &str) -> Vec<i64> {
    let (status, rows) = denorm.get(&format!("/views/{view}?order=id"));
    assert_eq!(status, 200, "{rows}");
    rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

/// Waits until view `view` holds exactly the rows `want` (by `id`).
pub fn wait_for_ids(denorm: &Denorm, view: &str, want: &[i64]) {
    eventually(Duration::from_millis(50), || match view_ids(denorm, view) {
        got if got == want => Ok(()),
        got => Err(format!("/views/{view}: {got:?}, want {want:?}")),
    });
}

/// A JSON value from the API as a datum.
pub fn datum(json: &Json) -> Value {
    match json {
        Json::Null => Datum::Null,
        Json::Bool(b) => Datum::Int(i64::from(*b)),
        Json::Number(n) => n.as_i64().map_or_else(|| Datum::Float(n.as_f64().unwrap()), Datum::Int),
        Json::String(s) => Datum::owned_text(s.clone()),
        other => panic!("unexpected JSON value {other}"),
    }
}

/// The rows of view `name` over HTTP, in the view's column order.
pub fn view_rows(denorm: &Denorm, name: &str, columns: &[String]) -> Vec<Vec<Value>> {
    let (status, rows) = denorm.get(&format!("/views/{name}"));
    assert_eq!(status, 200, "GET /views/{name}: {rows}");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let object = row.as_object().unwrap();
            let keys: Vec<&String> = object.keys().collect();
            assert_eq!(keys, columns.iter().collect::<Vec<_>>(), "row keys in column order");
            columns.iter().map(|c| datum(&object[c])).collect()
        })
        .collect()
}

/// A value of a JSON column from the API as a datum: a document (object,
/// array, string, number, boolean) as its JSON text, to compare parsed with
/// the source's JSON text (`denorm_testkit::normalize_json`); null as NULL.
pub fn json_datum(json: &Json) -> Value {
    match json {
        Json::Null => Datum::Null,
        other => Datum::owned_text(other.to_string()),
    }
}

/// The rows of a GET `/views/{name}?{query}` in column order, the columns
/// whose index is in `json` as JSON text ([`json_datum`]).
pub fn page_rows(denorm: &Denorm, name: &str, query: &str, columns: &[String], json: &[usize]) -> Vec<Vec<Value>> {
    let path = if query.is_empty() { format!("/views/{name}") } else { format!("/views/{name}?{query}") };
    let (status, rows) = denorm.get(&path);
    assert_eq!(status, 200, "GET {path}: {rows}");
    rows.as_array()
        .unwrap_or_else(|| panic!("GET {path}: not an array: {rows}"))
        .iter()
        .map(|row| {
            let object = row.as_object().unwrap();
            let keys: Vec<&String> = object.keys().collect();
            assert_eq!(keys, columns.iter().collect::<Vec<_>>(), "row keys in column order");
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| if json.contains(&i) { json_datum(&object[c]) } else { datum(&object[c]) })
                .collect()
        })
        .collect()
}

/// splitmix64: a deterministic random stream for the tests' writers.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// View `view` over HTTP against `select` run by SQLite, both as sorted
/// rows of text (NULL as "NULL", JSON strings unquoted): `Some(what
/// differs)`, or `None` when they are equal.
pub fn view_differs_from_select(denorm: &Denorm, db: &Connection, view: &str, select: &str) -> Option<String> {
    let mut stmt = db.prepare(select).unwrap_or_else(|e| panic!("{select}: {e}"));
    let width = stmt.column_count();
    let mut want: Vec<Vec<String>> = stmt
        .query_map([], |r| (0..width).map(|i| r.get::<_, rusqlite::types::Value>(i).map(sql_text)).collect())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let columns: Vec<String> = stmt.column_names().map(String::from).collect();
    let (status, rows) = denorm.get(&format!("/views/{view}"));
    assert_eq!(status, 200, "GET /views/{view}: {rows}");
    let mut got: Vec<Vec<String>> =
        rows.as_array().unwrap().iter().map(|row| columns.iter().map(|c| json_text(&row[c])).collect()).collect();
    want.sort();
    got.sort();
    (got != want).then(|| format!("view {view} differs from its SELECT: denorm {got:?}, source {want:?}"))
}

fn sql_text(value: rusqlite::types::Value) -> String {
    use rusqlite::types::Value as Sql;
    match value {
        Sql::Null => "NULL".into(),
        Sql::Integer(i) => i.to_string(),
        Sql::Real(f) => f.to_string(),
        Sql::Text(t) => t,
        Sql::Blob(b) => format!("{b:?}"),
    }
}

fn json_text(value: &Json) -> String {
    match value {
        Json::Null => "NULL".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value of the first `/metrics` line starting with `prefix` (a metric
/// name with its labels), as a number.
pub fn metric(denorm: &Denorm, prefix: &str) -> Option<f64> {
    let (_, text) = get_text(&format!("{}/metrics", denorm.base));
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Kills `denorm run` with `project`'s config three times, 200–800 ms after
/// it serves each time, while another thread commits `transaction` on its
/// own connection throughout; how many transactions it committed.
pub fn kill_three_times_under_a_writer(project: &Project, transaction: fn(&mut Connection, &mut SplitMix)) -> usize {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, mut conn) = (stop.clone(), project.connect());
        std::thread::spawn(move || {
            let mut rng = SplitMix(9);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                transaction(&mut conn, &mut rng);
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            n
        })
    };
    let mut rng = SplitMix(3);
    for _ in 0..3 {
        let mut denorm = Denorm::spawn(&project.config);
        denorm.connect();
        std::thread::sleep(Duration::from_millis(200 + rng.below(600)));
        denorm.kill();
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("the writer thread panicked")
}

/// A writer on a thread of its own: `step` commits one transaction per call
/// (and says whether it did), called until [`Background::finish`];
/// [`Background::pause`] returns once the writer is between two calls.
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    paused: std::sync::Arc<std::sync::atomic::AtomicBool>,
    idle: std::sync::Arc<std::sync::atomic::AtomicBool>,
    committed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn spawn(mut step: impl FnMut() -> bool + Send + 'static) -> Background {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let (stop, paused, idle) =
            (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let committed = Arc::new(AtomicU64::new(0));
        let (s, p, i, c) = (stop.clone(), paused.clone(), idle.clone(), committed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if p.load(Ordering::SeqCst) {
                    i.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                }
                i.store(false, Ordering::SeqCst);
                if step() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Background { stop, paused, idle, committed, thread: Some(thread) }
    }

    /// Waits until the writer is between two transactions and keeps it there.
    pub fn pause(&self) {
        use std::sync::atomic::Ordering;
        self.paused.store(true, Ordering::SeqCst);
        while !self.idle.load(Ordering::SeqCst) && self.thread.as_ref().is_some_and(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn resume(&self) {
        use std::sync::atomic::Ordering;
        self.idle.store(false, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Transactions committed so far.
    pub fn committed(&self) -> u64 {
        self.committed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the writer; the transactions it committed.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the writer thread panicked");
        }
        self.committed()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many random source transactions a test runs: `DENORM_PROPTEST_CASES`
/// (default 100; the suite sets it) kept within `20..=max`, so a binary
/// driving real servers stays within the suite's budget.
pub fn transactions(max: usize) -> usize {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(100).clamp(20, max)
}
