//! Live reload end to end (SQLite): under a writer and a reader loop,
//! `POST /admin/reload` and SIGHUP add, drop and change views; no read of an
//! untouched view fails or sees it empty; the new and changed views equal the
//! source; an invalid views file is refused whole (every error) and nothing
//! changes. On PostgreSQL (`denorm reload`): the added view is built in
//! place from the state directory, no table is read again, and the
//! untouched view keeps serving.

mod common;
mod pg_project;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{committed_position, view_differs_from_select, Background, Denorm, Project, SplitMix};
use rusqlite::Connection;
use serde_json::Value as Json;

const SCHEMA: &str = "
CREATE TABLE items (id INTEGER PRIMARY KEY, grp INTEGER NOT NULL, amount INTEGER NOT NULL, note TEXT);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW keep_totals AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW to_change AS SELECT id, amount FROM items WHERE amount > 50;
CREATE MATERIALIZED VIEW to_drop AS SELECT grp, MAX(amount) AS top FROM items GROUP BY grp;
";

/// keep_totals moved down (same definition), to_change changed, to_drop
/// gone, added new (same captured columns: no snapshot needed).
const VIEWS_2: &str = "
CREATE MATERIALIZED VIEW to_change AS SELECT id, amount, grp FROM items WHERE amount > 20;
CREATE MATERIALIZED VIEW added AS SELECT grp, MIN(amount) AS low FROM items GROUP BY grp;

CREATE MATERIALIZED VIEW keep_totals AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
";

/// A syntax error and an unknown column: both reported, nothing applied.
const INVALID: &str = "
CREATE MATERIALIZED VIEW keep_totals AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW broken AS SELEKT 1;
CREATE MATERIALIZED VIEW unknown_column AS SELECT nope FROM items;
";

/// Adds a view reading a column not captured so far (a new snapshot).
const VIEWS_3: &str = "
CREATE MATERIALIZED VIEW keep_totals AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW added AS SELECT grp, MIN(amount) AS low FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW notes AS SELECT id, note FROM items WHERE note IS NOT NULL;
";

fn query_of(view: &str) -> &'static str {
    match view {
        "keep_totals" => "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp",
        "to_change" => "SELECT id, amount, grp FROM items WHERE amount > 20",
        "added" => "SELECT grp, MIN(amount) AS low FROM items GROUP BY grp",
        "notes" => "SELECT id, note FROM items WHERE note IS NOT NULL",
        other => panic!("no query for {other}"),
    }
}

/// Waits until denorm reached everything committed, then compares `views`
/// with their SELECTs.
fn assert_exact(denorm: &Denorm, db: &Connection, views: &[&str]) {
    denorm.wait_for_position(committed_position(db));
    for view in views {
        if let Some(difference) = view_differs_from_select(denorm, db, view, query_of(view)) {
            panic!("{difference}");
        }
    }
}

/// Upserts and deletes of items on a connection of its own until finished.
fn writer(project: &Project) -> Background {
    let conn = project.connect();
    let mut rng = SplitMix(7);
    Background::spawn(move || {
        let (id, grp, amount) = (rng.below(80) as i64, rng.below(4) as i64, rng.below(100) as i64);
        match rng.below(4) {
            0 => conn.execute("DELETE FROM items WHERE id = ?1", [id]).map(drop),
            _ => conn
                .execute(
                    "INSERT INTO items (id, grp, amount, note) VALUES (?1, ?2, ?3, 'n' || ?3) \
                     ON CONFLICT (id) DO UPDATE SET amount = excluded.amount, grp = excluded.grp",
                    (id, grp, amount),
                )
                .map(drop),
        }
        .unwrap();
        std::thread::sleep(Duration::from_millis(1 + rng.below(3)));
        true
    })
}

/// Reads `view` in a loop until stopped; counts reads and failures (a
/// status other than 200, or no rows at all).
struct Reader {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Reader {
    fn start(base: &str, view: &str) -> Reader {
        let url = format!("{base}/views/{view}");
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, r, f) = (stop.clone(), reads.clone(), failures.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let (status, rows) = common::get(&url);
                if status != 200 || rows.as_array().is_none_or(Vec::is_empty) {
                    f.lock().unwrap().push(format!("{status}: {rows}"));
                }
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
        Reader { stop, reads, failures, thread: Some(thread) }
    }

    /// Stops it; the reads made. Panics on any failed read.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let failures = self.failures.lock().unwrap();
        assert!(failures.is_empty(), "reads of an untouched view failed during reloads: {failures:?}");
        self.reads.load(Ordering::SeqCst)
    }
}

fn post(denorm: &Denorm, path: &str) -> (u16, Json) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut response = agent.post(format!("{}{path}", denorm.base)).send("").unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Json::Null))
}

fn view_names(denorm: &Denorm) -> Vec<String> {
    let (_, views) = denorm.get("/views");
    let mut names: Vec<String> =
        views.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    names
}

#[test]
fn reload_adds_drops_and_changes_views_under_load() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    for id in 0..40 {
        db.execute(
            "INSERT INTO items (id, grp, amount, note) VALUES (?1, ?2, ?3, NULL)",
            (id, id % 4, (id * 37) % 100),
        )
        .unwrap();
    }
    let mut denorm = Denorm::start(&project.config);
    let writer = writer(&project);
    let reader = Reader::start(&denorm.base, "keep_totals");
    std::thread::sleep(Duration::from_millis(200));

    // Added, changed, dropped; the untouched view moved in the file.
    let views_file = project.dir.path().join("views.sql");
    std::fs::write(&views_file, VIEWS_2).unwrap();
    let (status, reply) = post(&denorm, "/admin/reload");
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["added"], serde_json::json!(["added"]), "{reply}");
    assert_eq!(reply["changed"], serde_json::json!(["to_change"]), "{reply}");
    assert_eq!(reply["dropped"], serde_json::json!(["to_drop"]), "{reply}");
    assert_eq!(reply["unchanged"], serde_json::json!(["keep_totals"]), "{reply}");
    assert_eq!(reply["rebuilt_all"], false, "the same captured columns: built from the state directory");
    denorm.wait_for_log("reload done: the new views were built beside the running ones");
    assert!(
        !denorm.lines.iter().any(|l| l.contains("state loaded and published")),
        "the running views were not rebuilt:\n{}",
        denorm.lines.join("\n")
    );
    assert_eq!(view_names(&denorm), ["added", "keep_totals", "to_change"]);
    assert_eq!(denorm.get("/views/to_drop").0, 404);
    std::thread::sleep(Duration::from_millis(200));
    writer.pause();
    assert_exact(&denorm, &db, &["keep_totals", "to_change", "added"]);
    writer.resume();

    // An invalid file: refused whole with every error, nothing changes.
    std::fs::write(&views_file, INVALID).unwrap();
    let (status, reply) = post(&denorm, "/admin/reload");
    assert_eq!(status, 400, "{reply}");
    let errors = reply["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{reply}");
    assert!(reply.to_string().contains("SELEKT") && reply.to_string().contains("nope"), "{reply}");
    assert_eq!(view_names(&denorm), ["added", "keep_totals", "to_change"]);
    denorm.wait_for_log("reload refused: nothing changed");

    // SIGHUP: logged, and applied; a view over a column not captured yet
    // makes the source be snapshotted again (still no failed read).
    std::fs::write(&views_file, VIEWS_3).unwrap();
    let status = Command::new("kill").arg("-HUP").arg(denorm.child.id().to_string()).status().unwrap();
    assert!(status.success());
    denorm.wait_for_log("SIGHUP: reloading the configuration and the views files");
    denorm.wait_for_log("SIGHUP reload done");
    assert_eq!(view_names(&denorm), ["added", "keep_totals", "notes"]);
    std::thread::sleep(Duration::from_millis(200));
    writer.pause();
    assert_exact(&denorm, &db, &["keep_totals", "added", "notes"]);
    writer.resume();

    std::thread::sleep(Duration::from_millis(100));
    let reads = reader.stop();
    writer.finish();
    assert!(reads > 10, "the reader ran ({reads} reads)");
    assert_exact(&denorm, &db, &["keep_totals", "added", "notes"]);
    let snapshots = denorm.lines.iter().filter(|l| l.contains("snapshot read")).count();
    assert!(snapshots <= 2, "only the initial start and the new column read the source ({snapshots})");
    assert_eq!(denorm.terminate(), Some(0));
}

/// At start, a views.sql whose views read the same columns resumes from the
/// state directory (no snapshot) even though a view changed.
#[test]
fn a_changed_views_file_at_start_resumes_without_a_snapshot() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    for id in 0..20 {
        db.execute(
            "INSERT INTO items (id, grp, amount, note) VALUES (?1, ?2, ?3, NULL)",
            (id, id % 4, (id * 37) % 100),
        )
        .unwrap();
    }
    let denorm = Denorm::start(&project.config);
    denorm.wait_for_position(committed_position(&db));
    assert_eq!(denorm.terminate(), Some(0));
    std::fs::write(project.dir.path().join("views.sql"), VIEWS_2).unwrap();
    db.execute("UPDATE items SET amount = amount + 1 WHERE grp = 2", []).unwrap();
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("resumed from the state directory without reading the source tables");
    assert!(!denorm.lines.iter().any(|l| l.contains("snapshot read")), "{}", denorm.lines.join("\n"));
    assert_exact(&denorm, &db, &["keep_totals", "to_change", "added"]);
}

/// `kill -9` in the middle of reloads (in place, and one that snapshots for
/// a new column), with writes meanwhile: the restart resumes and every view
/// of the file on disk equals the source.
#[test]
fn kill_during_a_reload_restarts_exactly() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    for id in 0..40 {
        db.execute("INSERT INTO items (id, grp, amount, note) VALUES (?1, ?2, ?3, 'x')", (id, id % 4, (id * 37) % 100))
            .unwrap();
    }
    let views_file = project.dir.path().join("views.sql");
    for (round, views) in [VIEWS_2, VIEWS_3].into_iter().enumerate() {
        let mut denorm = Denorm::start(&project.config);
        let writer = writer(&project);
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(&views_file, views).unwrap();
        let status = Command::new("kill").arg("-HUP").arg(denorm.child.id().to_string()).status().unwrap();
        assert!(status.success());
        denorm.wait_for_log("reload asked");
        std::thread::sleep(Duration::from_millis(5 + 20 * round as u64));
        denorm.kill();
        writer.finish();
        let mut denorm = Denorm::start(&project.config);
        denorm.wait_for_log("published");
        let names: Vec<&str> =
            if round == 0 { vec!["keep_totals", "to_change", "added"] } else { vec!["keep_totals", "added", "notes"] };
        assert_exact(&denorm, &db, &names);
        assert_eq!(denorm.terminate(), Some(0));
    }
}

#[test]
fn postgres_reload_builds_new_views_in_place_without_reading_the_tables() {
    let schema = "
        CREATE TABLE items (id bigint PRIMARY KEY, grp integer NOT NULL, amount integer NOT NULL);
        ALTER TABLE items REPLICA IDENTITY FULL;
        INSERT INTO items SELECT g, g % 4, (g * 37) % 100 FROM generate_series(1, 300) g;";
    let keep = ("keep_totals", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp");
    let added = ("added", "SELECT grp, MIN(amount) AS low FROM items GROUP BY grp");
    let views = |list: &[(&str, &str)]| -> String {
        list.iter().map(|(n, q)| format!("CREATE MATERIALIZED VIEW {n} AS {q};\n")).collect()
    };
    let project = pg_project::PgProject::new("reload", schema, &views(&[keep]));
    let mut client = project.client();
    let mut denorm = Denorm::start(&project.config);
    let address = denorm.base.trim_start_matches("http://").to_string();
    let text = std::fs::read_to_string(&project.config).unwrap().replace("127.0.0.1:0", &address);
    std::fs::write(&project.config, text).unwrap();
    let reader = Reader::start(&denorm.base, "keep_totals");
    std::fs::write(project.dir.path().join("views.sql"), views(&[added, keep])).unwrap();
    let output = project.denorm(&["reload"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("added [added], changed [], dropped []"), "{stdout}");
    client
        .batch_execute("UPDATE items SET amount = amount + 1 WHERE grp = 1; DELETE FROM items WHERE id = 4;")
        .unwrap();
    pg_project::assert_views_equal(&denorm, &mut client, &[keep, added], &[]);
    assert!(reader.stop() > 10);
    denorm.wait_for_log("reload done: the new views were built beside the running ones");
    let snapshots = denorm.lines.iter().filter(|l| l.contains("snapshot read")).count();
    assert_eq!(snapshots, 1, "only the first start read the tables");
}
