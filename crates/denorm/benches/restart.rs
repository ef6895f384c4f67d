//! Restart time vs snapshot time vs state directory size (issue 13): the
//! release `denorm` binary on a SQLite source of `DENORM_BENCH_ROWS` rows
//! (default 1,000,000; `DENORM_BENCH_ROWS=10000000` for the issue's 10M):
//!
//! ```sh
//! cargo bench -p denorm --bench restart
//! ```
//!
//! 1. **first start** (empty state directory): spawn → snapshot read, views
//!    built and published, then → the snapshot written to the state
//!    directory (durable), with the log's read / write / total figures;
//! 2. **snapshot start** (state directory removed before each start): spawn
//!    → published: a start that reads the source, as every start did before
//!    the state directory;
//! 3. **restart after SIGTERM from the checkpoint**: spawn → ready, the
//!    operators' state and the published rows read from the checkpoint the
//!    SIGTERM wrote (no replay of the input rows), with the checkpoint's
//!    write time at that SIGTERM and its size;
//!
//!    **restart with one of N views changed** (`by_grp` given another
//!    aggregate in views.sql, then changed back: best of the two starts):
//!    spawn → ready, the unchanged views from the checkpoint, the changed
//!    one rebuilt from the stored input rows of its table;
//! 4. **restart after SIGTERM replaying the input rows** (the checkpoint
//!    removed before the start): spawn → ready, the stored rows loaded
//!    into the dataflow, no source read — every restart before checkpoints;
//! 5. **restart after kill -9** (redb checks the file after an unclean
//!    shutdown; no new writes, so the checkpoint still applies): spawn →
//!    ready.
//! 6. **restart after kill -9 following writes** (`checkpoint_interval =
//!    "20s"`): 1% of the rows updated, a periodic checkpoint, another 1%
//!    updated, `kill -9`: spawn → ready from the periodic checkpoint plus
//!    the changes logged since it (compare with 4, the replay every such
//!    restart did before the change log).
//! 7. **the change log's cost on the write path**: `StateDir::apply` of
//!    the same update batches with the log on and off (in process,
//!    alternating rounds, best of each), per change.
//! 8. **the checkpoint's pause of the engine thread** (in process): the
//!    encode a periodic checkpoint does between two batches
//!    (`Dataflow::save_checkpoint`, what `Flow::save_checkpoint` runs for
//!    the shared dataflow) of a join whose other side is empty, so that
//!    its state is an arrangement of every row (the restart views' state
//!    is 1,000 groups: no pause to speak of); the published rows are
//!    encoded on the writer thread. `DENORM_BENCH_PAUSE_ONLY=1` runs only
//!    this step (e.g. at `DENORM_BENCH_ROWS=10000000`).
//!
//! The views: an aggregate over every row (1,000 groups) and a filter that
//! keeps half of the rows (so the published state is large, as a per-key
//! view's is). Each figure is printed with the load average (other work on
//! the machine changes it). Nothing here asserts: benchmarks are not tests.

#[path = "../tests/common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const VIEWS: &str = "
CREATE MATERIALIZED VIEW by_grp AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW big_items AS SELECT id, grp, amount, note FROM items WHERE amount >= 50;
";

struct Running {
    child: Child,
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Running {
    fn spawn(config: &Path) -> Running {
        let (child, log) = process::spawn_run(config, false);
        Running { child, log, lines: Vec::new() }
    }

    /// Waits for a log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .log
                .recv_timeout(Duration::from_secs(1800))
                .unwrap_or_else(|_| panic!("denorm never logged {needle:?}:\n{}", self.lines.join("\n")));
            self.lines.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// SIGTERM; the log line containing `needle` written before the exit.
    fn terminate(mut self, needle: &str) -> Option<String> {
        Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        self.child.wait().unwrap();
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(5)) {
            self.lines.push(line);
        }
        self.lines.iter().find(|l| l.contains(needle)).cloned()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// The value of `key=` in a log line.
fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map_or_else(|| "?".to_string(), |v| v.trim_matches('"').to_string())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".into(), |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map_or(0, |entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Starts denorm, waits until its first state is published; the seconds
/// from spawn and the process, still running.
fn start(config: &Path, published: &str) -> (f64, String, Running) {
    let started = Instant::now();
    let mut denorm = Running::spawn(config);
    let line = denorm.wait_for(published);
    (started.elapsed().as_secs_f64(), line, denorm)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rows: u64 = std::env::var("DENORM_BENCH_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
    if std::env::var_os("DENORM_BENCH_PAUSE_ONLY").is_some() {
        checkpoint_pause(rows);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let setup = Instant::now();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, amount INTEGER NOT NULL, note TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO items SELECT i, i % 1000, (i * 7919) % 100, 'note ' || (i % 977) FROM n;"
    ))
    .unwrap();
    drop(conn);
    std::fs::write(dir.path().join("views.sql"), VIEWS).unwrap();
    let config = dir.path().join("denorm.toml");
    std::fs::write(
        &config,
        "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let state: PathBuf = dir.path().join("denorm.state");
    println!(
        "restart bench: {rows} rows, SQLite file {:.1} MB (made in {:.1} s)",
        mb(std::fs::metadata(&db).unwrap().len()),
        setup.elapsed().as_secs_f64()
    );
    println!("{:<34} {:>9} {:>30} {:>16}", "start", "seconds", "detail (from the log)", "load avg");

    let (first, published, mut denorm) = start(&config, "snapshot published");
    let written = denorm.wait_for("snapshot written");
    let durable = first + field(&written, "write_seconds").parse::<f64>().unwrap_or(f64::NAN);
    let read =
        denorm.lines.iter().find(|l| l.contains("snapshot read")).map_or("?".into(), |l| field(l, "read_seconds"));
    println!(
        "{:<34} {:>9.2} {:>30} {:>16}",
        "first start: snapshot published",
        first,
        format!("read {read} s, total {}", field(&published, "total_seconds")),
        load()
    );
    println!(
        "{:<34} {:>9.2} {:>30} {:>16}",
        "first start: state written",
        durable,
        format!("write {} s", field(&written, "write_seconds")),
        load()
    );
    denorm.terminate("");
    let state_size = dir_bytes(&state);

    // A start that reads the source, as every start did before the state
    // directory (its write comes after the publish).
    let mut snapshot_only = f64::MAX;
    for _ in 0..2 {
        std::fs::remove_dir_all(&state).unwrap();
        let (seconds, _, mut denorm) = start(&config, "snapshot published");
        denorm.wait_for("snapshot written");
        denorm.terminate("");
        snapshot_only = snapshot_only.min(seconds);
    }
    println!("{:<34} {:>9.2} {:>30} {:>16}", "snapshot start: published", snapshot_only, "best of 2", load());

    let checkpoint_file = state.join("checkpoint.bin");
    let checkpoint_size = std::fs::metadata(&checkpoint_file).map_or(0, |m| m.len());
    let mut from_checkpoint = f64::MAX;
    let mut detail = String::new();
    let mut written = String::new();
    for _ in 0..2 {
        let (seconds, line, denorm) = start(&config, "resumed from the state directory");
        assert!(line.contains("from_checkpoint=true"), "not from the checkpoint: {line}");
        let wrote = denorm.terminate("checkpoint written").unwrap_or_default();
        written = format!("written in {} s", field(&wrote, "total_seconds"));
        if seconds < from_checkpoint {
            from_checkpoint = seconds;
            detail = format!("read {} s, total {} s", field(&line, "read_seconds"), field(&line, "total_seconds"));
        }
    }
    println!("{:<34} {:>9.2} {:>30} {:>16}", "restart after SIGTERM: checkpoint", from_checkpoint, detail, load());
    println!(
        "{:<34} {:>9} {:>30} {:>16}",
        "  checkpoint at SIGTERM",
        "",
        format!("{:.1} MB, {written}", mb(checkpoint_size)),
        load()
    );

    let one_changed = one_view_changed(&config, VIEWS.matches("CREATE").count());

    let mut restart = f64::MAX;
    let mut loaded = String::new();
    for _ in 0..2 {
        std::fs::remove_file(&checkpoint_file).unwrap();
        let (seconds, line, mut denorm) = start(&config, "state loaded and published");
        let read = field(&denorm.wait_for("resumed from the state directory"), "read_seconds");
        denorm.terminate("");
        if seconds < restart {
            restart = seconds;
            loaded = format!("read {read} s, read+build {} s", field(&line, "total_seconds"));
        }
    }
    println!(
        "{:<34} {:>9.2} {:>30} {:>16}",
        "restart after SIGTERM: replay",
        restart,
        format!("best of 2: {loaded}"),
        load()
    );

    let (_, _, denorm) = start(&config, "resumed from the state directory");
    denorm.kill();
    let (killed, line, denorm) = start(&config, "resumed from the state directory");
    denorm.terminate("");
    let how = if line.contains("from_checkpoint=true") { "checkpoint" } else { "replay" };
    println!(
        "{:<34} {:>9.2} {:>30} {:>16}",
        "restart after kill -9",
        killed,
        format!("{how}, total {} s", field(&line, "total_seconds")),
        load()
    );
    let after_writes = kill_after_writes(&config, &db, rows);
    println!(
        "state directory {:.1} MB ({:.2}x the SQLite file); from the checkpoint: {:.1}x faster than a snapshot-only \
         start, {:.1}x faster than the input-row replay; the replay {:.1}x faster than a snapshot-only start; \
         with one view changed: {:.1}x faster than the replay; after kill -9 following writes: {:.1}x faster than \
         the replay",
        mb(state_size),
        state_size as f64 / std::fs::metadata(&db).unwrap().len() as f64,
        snapshot_only / from_checkpoint,
        restart / from_checkpoint,
        snapshot_only / restart,
        restart / one_changed,
        restart / after_writes,
    );
    log_cost(rows);
    checkpoint_pause(rows);
}

/// Step 8: the seconds `Dataflow::save_checkpoint` holds the engine thread
/// for a join arranging all `rows` items (best of 3), and the bytes.
fn checkpoint_pause(rows: u64) {
    use denorm_core::checkpoint::Writer;
    use denorm_core::{Dataflow, Runtime, SourceBatch};
    use denorm_types::{Catalog, ColumnSchema, Datum, Dialect, Position, Row, ScalarType, TableSchema};
    let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: true };
    let mut catalog = Catalog::new();
    catalog.add(TableSchema {
        name: "items".into(),
        columns: vec![
            col("id", ScalarType::Int),
            col("grp", ScalarType::Int),
            col("amount", ScalarType::Int),
            col("note", ScalarType::Text),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
    });
    catalog.add(TableSchema {
        name: "tags".into(),
        columns: vec![col("item_id", ScalarType::Int), col("tag", ScalarType::Text)],
        primary_key: vec![],
        unique_keys: vec![],
    });
    let sql = "CREATE MATERIALIZED VIEW item_tags AS SELECT i.id, i.note, t.tag FROM items i \
               JOIN tags t ON t.item_id = i.id;";
    let def = denorm_sql::plan_views(sql, &catalog, Dialect::Sqlite).unwrap().remove(0);
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    for (name, plan, _) in denorm::dataflow_views(&def) {
        dataflow.add_view_emitting(&name, plan).unwrap();
    }
    let built = Instant::now();
    let item = |id: u64| {
        let note = format!("note {}", id % 977);
        Row::pack([
            Datum::Int(id as i64),
            Datum::Int((id % 1000) as i64),
            Datum::Int((id * 7919 % 100) as i64),
            Datum::text(&note),
        ])
    };
    let chunk = 1_000_000;
    for start in (1..=rows).step_by(chunk as usize) {
        let changes: Vec<(Row, i64)> = (start..(start + chunk).min(rows + 1)).map(|id| (item(id), 1)).collect();
        dataflow.apply(&SourceBatch { position: Position(start), tables: vec![("items".into(), changes)] });
    }
    let load_seconds = built.elapsed().as_secs_f64();
    // Best of 3, into a growing buffer (as the engine does) and into one
    // sized beforehand (what pre-sizing alone would save).
    let mut best = [f64::MAX; 2];
    let mut bytes = 0;
    for round in 0..6 {
        let mut w = Writer::default();
        if round % 2 == 1 {
            w.buf.reserve_exact(bytes + 4096);
        }
        let started = Instant::now();
        dataflow.save_checkpoint(&mut w).unwrap();
        best[round % 2] = best[round % 2].min(started.elapsed().as_secs_f64());
        bytes = w.buf.len();
    }
    println!(
        "checkpoint pause: a join arranging {rows} rows ({:.0} MB of state, loaded in {load_seconds:.1} s): the engine \
         thread encodes {:.1} MB in {:.3} s (best of 3; into a buffer sized beforehand {:.3} s) (load {})",
        mb(dataflow.total_state_bytes() as u64),
        mb(bytes as u64),
        best[0],
        best[1],
        load()
    );
}

/// Step 3b: the best seconds from spawn to ready of two starts after
/// views.sql changed one of its `n` views (and then changed it back), each
/// following a SIGTERM that wrote a checkpoint of the views before.
fn one_view_changed(config: &Path, n: usize) -> f64 {
    let views = config.with_file_name("views.sql");
    let changed = VIEWS.replace("COUNT(*) AS n FROM items", "COUNT(*) AS n, MAX(amount) AS top FROM items");
    let mut best = f64::MAX;
    let mut detail = String::new();
    for text in [changed.as_str(), VIEWS] {
        std::fs::write(&views, text).unwrap();
        let (seconds, line, denorm) = start(config, "resumed from the state directory");
        assert!(line.contains("rebuilt_views=by_grp "), "not rebuilt from the checkpoint: {line}");
        denorm.terminate("checkpoint written");
        if seconds < best {
            best = seconds;
            detail =
                format!("rebuild {} s, total {} s", field(&line, "rebuild_seconds"), field(&line, "total_seconds"));
        }
    }
    println!("{:<34} {:>9.2} {:>30} {:>16}", format!("restart with one of {n} views changed"), best, detail, load());
    best
}

/// Updates `n` random rows' `amount` in transactions of 100.
fn update(db: &Path, rows: u64, n: u64, seed: u64) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    let mut x = seed;
    for _ in 0..n / 100 {
        let tx = conn.transaction().unwrap();
        for _ in 0..100 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let id = 1 + (x >> 33) % rows;
            tx.execute("UPDATE items SET amount = (amount + 1) % 100 WHERE id = ?1", [id as i64]).unwrap();
        }
        tx.commit().unwrap();
    }
}

/// Step 6: the seconds from spawn to ready after a `kill -9` that follows
/// a periodic checkpoint and more writes.
fn kill_after_writes(config: &Path, db: &Path, rows: u64) -> f64 {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{text}[engine]\ncheckpoint_interval = \"20s\"\n")).unwrap();
    let changes = (rows / 100).max(100);
    let (_, _, mut denorm) = start(config, "resumed from the state directory");
    update(db, rows, changes, 1);
    let periodic = denorm.wait_for("periodic=true");
    update(db, rows, changes, 2);
    // Past the state directory's next durable commit (every 500 ms).
    std::thread::sleep(Duration::from_millis(1500));
    denorm.kill();
    let (killed, line, denorm) = start(config, "resumed from the state directory");
    denorm.terminate("");
    let how = if line.contains("from_checkpoint=true") { "checkpoint" } else { "replay" };
    println!(
        "{:<34} {:>9.2} {:>30} {:>16}",
        "restart after kill -9 with writes",
        killed,
        format!("{how} + {} logged changes, total {} s", field(&line, "logged_changes"), field(&line, "total_seconds")),
        load()
    );
    println!(
        "{:<34} {:>9} {:>30} {:>16}",
        "  periodic checkpoint",
        "",
        format!("encode {} s, written in {} s", field(&periodic, "encode_seconds"), field(&periodic, "total_seconds")),
        load()
    );
    killed
}

/// Step 7: `StateDir::apply` of update batches (a retraction and an
/// insertion per change) with the change log off and on.
fn log_cost(rows: u64) {
    use denorm::state_dir::{Opened, StateDir};
    use denorm_types::{Datum, Position, Row};
    let item = |id: u64, amount: u64| {
        Row::pack([
            Datum::Int(id as i64),
            Datum::Int((id % 1000) as i64),
            Datum::Int(amount as i64),
            Datum::text(&format!("note {}", id % 977)),
        ])
    };
    let dir = tempfile::tempdir().unwrap();
    let Ok(Opened::Rebuild(mut state, _)) = StateDir::open(dir.path(), "bench", "items") else { panic!() };
    let stored = rows.min(200_000);
    let all: Vec<(Row, i64)> = (1..=stored).map(|id| (item(id, 0), 1)).collect();
    state.reset("bench", "items", Position(1), vec![("items".into(), all)]).unwrap();
    let (batches, per_batch) = (200u64, 50u64);
    let mut position = 1;
    let mut best = [f64::MAX; 2];
    for round in 0..6u64 {
        let logging = round % 2 == 1;
        state.set_logging(logging).unwrap();
        let started = Instant::now();
        for b in 0..batches {
            let changes: Vec<(Row, i64)> = (0..per_batch)
                .flat_map(|i| {
                    let id = 1 + (b * per_batch + i) * 7919 % stored;
                    [(item(id, round), -1), (item(id, round + 1), 1)]
                })
                .collect();
            position += 1;
            state.apply(Position(position), &[], &[("items".into(), changes)]).unwrap();
            if b % 20 == 19 {
                state.make_durable().unwrap();
            }
        }
        state.make_durable().unwrap();
        state.forget_log(state.log_seq()).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        best[usize::from(logging)] = best[usize::from(logging)].min(seconds);
    }
    let per_change = |s: f64| s * 1e6 / (batches * per_batch * 2) as f64;
    println!(
        "change log cost: StateDir::apply of {batches} batches x {} changes (durable every 20), best of 3: log off \
         {:.2} us/change, on {:.2} us/change ({:+.0}%) (load {})",
        per_batch * 2,
        per_change(best[0]),
        per_change(best[1]),
        100.0 * (best[1] / best[0] - 1.0),
        load()
    );
}
