//! The state directory end to end (SQLite): the real binary killed with
//! `kill -9` at random points under a concurrent writer, with writes while
//! it is down, resumes from its state directory without reading the source
//! tables, and every view equals SQLite's answer to its SELECT (nothing lost,
//! nothing applied twice); a corrupt state file is logged and rebuilt; a
//! views.sql change that captures a new column rebuilds, one that does not
//! resumes.

mod common;

use std::time::Duration;

use common::{committed_position, view_differs_from_select, Background, Denorm, Project, SplitMix};
use rusqlite::Connection;

use common::items::SCHEMA;

/// The items' notes the writes choose from.
const NOTES: &[&str] = &["n"];

/// Views over a keyed table and a table without a key (a multiset).
const VIEWS: &str = "
CREATE MATERIALIZED VIEW by_grp AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW tag_counts AS SELECT tag, COUNT(*) AS n FROM tags GROUP BY tag;
CREATE MATERIALIZED VIEW item_tags AS SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id;
";

/// `(view, its SELECT)`, to compare with.
const QUERIES: [(&str, &str); 3] = [
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp"),
    ("tag_counts", "SELECT tag, COUNT(*) AS n FROM tags GROUP BY tag"),
    ("item_tags", "SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id"),
];

const RESUMED: &str = "resumed from the state directory without reading the source tables";
const SNAPSHOT_READ: &str = "snapshot read";
/// Logged once a snapshot is durable in the state directory (after it is
/// published: a kill before leaves no usable state).
const SNAPSHOT_WRITTEN: &str = "snapshot written to the state directory";

/// Random transactions on a connection of its own until finished.
fn writer(project: &Project, seed: u64) -> Background {
    let conn = project.connect();
    let mut rng = SplitMix(seed);
    Background::spawn(move || {
        transaction(&conn, &mut rng);
        std::thread::sleep(Duration::from_millis(rng.below(3)));
        true
    })
}

fn transaction(conn: &Connection, rng: &mut SplitMix) {
    common::items::transaction(conn, rng, NOTES);
}

/// Waits until denorm reached everything committed, then compares every
/// view with its SELECT on the source (as sorted multisets of rows).
fn assert_views_equal_sqlite(denorm: &Denorm, db: &Connection) {
    denorm.wait_for_position(committed_position(db));
    for (view, select) in QUERIES {
        if let Some(difference) = view_differs_from_select(denorm, db, view, select) {
            panic!("{difference}");
        }
    }
}

fn seed(db: &Connection) {
    common::items::transactions(db, 1, 40, NOTES);
}

/// The log lines of a process after it served (for a resumed start: no
/// snapshot was read).
fn assert_resumed(denorm: &mut Denorm) {
    denorm.wait_for_log(RESUMED);
    assert!(
        !denorm.lines.iter().any(|l| l.contains(SNAPSHOT_READ)),
        "a resumed start read a snapshot:\n{}",
        denorm.lines.join("\n")
    );
}

/// kill -9 at random points (while following, while loading the state,
/// right after start) under a concurrent writer, with writes while down:
/// every restart resumes from the state directory without a snapshot, and
/// the views stay exactly equal to the source.
#[test]
fn kill_at_random_points_under_a_writer_resumes_exactly() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    seed(&db);
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log(SNAPSHOT_WRITTEN);
    assert_views_equal_sqlite(&denorm, &db);
    let writer = writer(&project, 42);
    let mut rng = SplitMix(7);
    for cycle in 0..12 {
        // Up to past two durable commits (every 500 ms on SQLite).
        std::thread::sleep(Duration::from_millis(rng.below(1300)));
        denorm.kill();
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        if cycle % 4 == 3 {
            // Killed again before it is ready (loading its state, or
            // following its first batches).
            let early = Denorm::spawn(&project.config);
            std::thread::sleep(Duration::from_millis(rng.below(80)));
            early.kill();
        }
        denorm = Denorm::start(&project.config);
        assert_resumed(&mut denorm);
        if cycle % 3 == 0 {
            writer.pause();
            assert_views_equal_sqlite(&denorm, &db);
            writer.resume();
        }
    }
    let transactions = writer.finish();
    assert!(transactions > 50, "the writer committed only {transactions} transactions");
    assert_views_equal_sqlite(&denorm, &db);
    // A graceful stop and start resumes too.
    assert_eq!(denorm.terminate(), Some(0));
    transaction(&db, &mut rng);
    let mut denorm = Denorm::start(&project.config);
    assert_resumed(&mut denorm);
    assert_views_equal_sqlite(&denorm, &db);
}

/// A state file with truncated or flipped bytes: the start logs why, takes
/// a snapshot, and the views are exact; the next start resumes again.
#[test]
fn a_corrupt_state_directory_is_logged_and_rebuilt() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    seed(&db);
    let state = project.dir.path().join("denorm.state").join("state.redb");
    for corruption in ["truncate", "flip"] {
        let denorm = Denorm::start(&project.config);
        transaction(&db, &mut SplitMix(3));
        assert_views_equal_sqlite(&denorm, &db);
        assert_eq!(denorm.terminate(), Some(0));
        let mut bytes = std::fs::read(&state).unwrap();
        match corruption {
            "truncate" => bytes.truncate(bytes.len() / 3),
            _ => {
                // Every 4th byte flipped past the header: the rows' pages too.
                for b in bytes.iter_mut().skip(4096).step_by(4) {
                    *b ^= 0xa5;
                }
            }
        }
        std::fs::write(&state, &bytes).unwrap();
        transaction(&db, &mut SplitMix(4));
        let mut denorm = Denorm::start(&project.config);
        let line = denorm.wait_for_log("state directory unusable");
        assert!(line.contains("rebuilt from a snapshot"), "{line}");
        denorm.wait_for_log(SNAPSHOT_WRITTEN);
        assert_views_equal_sqlite(&denorm, &db);
        denorm.kill();
        let mut denorm = Denorm::start(&project.config);
        assert_resumed(&mut denorm);
        assert_views_equal_sqlite(&denorm, &db);
        assert_eq!(denorm.terminate(), Some(0));
    }
}

/// A views.sql change: one that reads only captured columns resumes from
/// the state (no source read); one that reads a new column reads that
/// table alone again (the others resume), with the tables logged; both
/// exact.
#[test]
fn a_views_change_resumes_unless_it_captures_new_columns() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    seed(&db);
    let denorm = Denorm::start(&project.config);
    assert_eq!(denorm.terminate(), Some(0));

    let views = project.dir.path().join("views.sql");
    let regrouped = VIEWS.replace("GROUP BY tag;", "GROUP BY tag HAVING COUNT(*) > 0;");
    std::fs::write(&views, &regrouped).unwrap();
    transaction(&db, &mut SplitMix(5));
    let mut denorm = Denorm::start(&project.config);
    assert_resumed(&mut denorm);
    assert_views_equal_sqlite(&denorm, &db);
    assert_eq!(denorm.terminate(), Some(0));

    let notes = format!(
        "{regrouped}\nCREATE MATERIALIZED VIEW notes AS SELECT note, COUNT(*) AS n FROM items GROUP BY note;\n"
    );
    std::fs::write(&views, notes).unwrap();
    transaction(&db, &mut SplitMix(6));
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("re-read only the changed tables");
    assert!(line.contains("read=[\"items\"]"), "{line}");
    assert_views_equal_sqlite(&denorm, &db);
    let (status, rows) = denorm.get("/views/notes");
    assert_eq!((status, rows.as_array().map(|r| !r.is_empty())), (200, Some(true)), "{rows}");
}

/// The source no longer holds every change after the kept position: log
/// rows deleted by hand — the start says why, snapshots, and the views are
/// exact; a trigger dropped while denorm was down, so writes to its table
/// went unlogged — that table alone is read again, the views are exact.
#[test]
fn a_source_missing_changes_after_the_kept_position_rebuilds() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    seed(&db);
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log(SNAPSHOT_WRITTEN);
    assert_eq!(denorm.terminate(), Some(0));

    transaction(&db, &mut SplitMix(8));
    db.execute_batch("DELETE FROM _denorm_changes").unwrap();
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("cannot resume from the state directory");
    assert!(line.contains("were deleted"), "{line}");
    denorm.wait_for_log(SNAPSHOT_WRITTEN);
    assert_views_equal_sqlite(&denorm, &db);
    assert_eq!(denorm.terminate(), Some(0));

    db.execute_batch("DROP TRIGGER _denorm_insert_items").unwrap();
    db.execute_batch("INSERT INTO items VALUES (1000, 1, 7, 'unlogged'), (1001, 2, 9, 'unlogged')").unwrap();
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("re-read only the changed tables");
    assert!(line.contains("read=[\"items\"]"), "{line}");
    assert_views_equal_sqlite(&denorm, &db);
}
