//! Checkpoints end to end (SQLite, the real binary): a SIGTERM, and every
//! `checkpoint_interval`, writes the operators' state and the published
//! rows beside the input rows, and the next start loads them instead of
//! replaying the input rows, applies the changes the state directory
//! logged since (after a `kill -9`), then follows the writes made while it
//! was down exactly once. A checkpoint that does not apply — the change
//! log off, torn (a crash while writing it), garbled, or of other views —
//! is logged and the start replays the input rows as before; every view
//! equals SQLite's answer to its SELECT throughout.

mod common;

use std::time::Duration;

use common::{committed_position, view_differs_from_select, Background, Denorm, Project, SplitMix};
use rusqlite::Connection;

use common::items::SCHEMA;

/// The items' notes the writes choose from.
const NOTES: &[&str] = &["a", "b", "c"];

/// A Reduce with a sum, a count and a MIN, a join (two
/// arrangements), a DISTINCT and a top-k: every kind of state saved.
const VIEWS: &str = "
CREATE MATERIALIZED VIEW by_grp AS SELECT grp, SUM(amount) AS total, COUNT(*) AS n, MIN(note) AS first FROM items GROUP BY grp;
CREATE MATERIALIZED VIEW item_tags AS SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id;
CREATE MATERIALIZED VIEW tag_names AS SELECT DISTINCT tag FROM tags;
CREATE MATERIALIZED VIEW top_items AS SELECT id, amount FROM items ORDER BY amount DESC, id LIMIT 5;
";

const QUERIES: [(&str, &str); 4] = [
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n, MIN(note) AS first FROM items GROUP BY grp"),
    ("item_tags", "SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id"),
    ("tag_names", "SELECT DISTINCT tag FROM tags"),
    ("top_items", "SELECT id, amount FROM items ORDER BY amount DESC, id LIMIT 5"),
];

const FROM_CHECKPOINT: &str = "from_checkpoint=true";
const WRITTEN: &str = "checkpoint written to the state directory";
const NOT_USED: &str = "checkpoint not used; starting from the input rows";
const REPLAYED: &str = "state loaded and published";

fn transaction(conn: &Connection, rng: &mut SplitMix) {
    common::items::transaction(conn, rng, NOTES);
}

fn transactions(db: &Connection, seed: u64, n: usize) {
    common::items::transactions(db, seed, n, NOTES);
}

fn assert_views_equal_sqlite(denorm: &Denorm, db: &Connection) {
    denorm.wait_for_position(committed_position(db));
    for (view, select) in QUERIES {
        if let Some(difference) = view_differs_from_select(denorm, db, view, select) {
            panic!("{difference}");
        }
    }
}

/// A concurrent writer for 300 ms (a transaction every 2 ms or so).
fn write_for_a_while(project: &Project, seed: u64) {
    let conn = project.connect();
    let mut rng = SplitMix(seed);
    let writer = Background::spawn(move || {
        transaction(&conn, &mut rng);
        std::thread::sleep(Duration::from_millis(2));
        true
    });
    std::thread::sleep(Duration::from_millis(300));
    writer.finish();
}

/// Starts and checks how the views were loaded: from the checkpoint, or
/// by a replay of the input rows (`replayed`); never from a snapshot.
fn start(project: &Project, from_checkpoint: bool) -> Denorm {
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("resumed from the state directory");
    assert_eq!(line.contains(FROM_CHECKPOINT), from_checkpoint, "{}", denorm.lines.join("\n"));
    if !from_checkpoint {
        denorm.wait_for_log(REPLAYED);
    }
    assert!(!denorm.lines.iter().any(|l| l.contains("snapshot read")), "{}", denorm.lines.join("\n"));
    denorm
}

/// SIGTERM writes a checkpoint; the next start loads it and then applies
/// the writes made while it was down, and those under a concurrent writer,
/// exactly once; repeated stops and starts keep the views exact.
#[test]
fn a_graceful_restart_loads_the_checkpoint_and_follows_exactly() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    transactions(&db, 1, 60);
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("snapshot written to the state directory");
    assert_views_equal_sqlite(&denorm, &db);
    for round in 0..4u64 {
        let log = denorm.stop_cleanly();
        assert!(log.contains(WRITTEN), "{log}");
        transactions(&db, 10 + round, 5);
        denorm = start(&project, true);
        assert_views_equal_sqlite(&denorm, &db);
        write_for_a_while(&project, 20 + round);
        assert_views_equal_sqlite(&denorm, &db);
    }
}

/// After a checkpoint was loaded, a `kill -9` leaves it older than the
/// input rows: the next start loads it and applies the changes logged
/// since (not a replay). With the change log off (`checkpoint_interval =
/// "off"`) the same kill makes the next start say so and replay the input
/// rows; the one after a SIGTERM loads a checkpoint again.
#[test]
fn a_kill_after_writes_loads_the_checkpoint_and_the_changes_since() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    transactions(&db, 2, 40);
    let denorm = Denorm::start(&project.config);
    denorm.stop_cleanly();
    let denorm = start(&project, true);
    transactions(&db, 3, 10);
    assert_views_equal_sqlite(&denorm, &db);
    // Past a durable commit of the state directory.
    common::wait_until_released(&db);
    denorm.kill();
    let mut denorm = start(&project, true);
    let line = denorm.wait_for_log(FROM_CHECKPOINT);
    assert!(!line.contains("logged_changes=0"), "{line}");
    assert_views_equal_sqlite(&denorm, &db);
    denorm.stop_cleanly();
    set_interval(&project, "off");
    let denorm = start(&project, true);
    transactions(&db, 4, 10);
    assert_views_equal_sqlite(&denorm, &db);
    common::wait_until_released(&db);
    denorm.kill();
    let mut denorm = start(&project, false);
    let line = denorm.wait_for_log(NOT_USED);
    assert!(line.contains("the change log does not hold every change"), "{line}");
    assert_views_equal_sqlite(&denorm, &db);
    denorm.stop_cleanly();
    let denorm = start(&project, true);
    assert_views_equal_sqlite(&denorm, &db);
}

/// Sets `[engine] checkpoint_interval` in the project's config.
fn set_interval(project: &Project, interval: &str) {
    let config = std::fs::read_to_string(&project.config).unwrap();
    let config = match config.find("[engine]") {
        Some(at) => config[..at].to_string(),
        None => config,
    };
    std::fs::write(&project.config, format!("{config}[engine]\ncheckpoint_interval = \"{interval}\"\n")).unwrap();
}

/// Periodic checkpoints (every second here) under a writer that never
/// stops, and `kill -9` at random points (some land while a checkpoint is
/// being written): every start after the first checkpoint loads one plus
/// the changes logged since, never replays the input rows, and once the
/// writer pauses every view equals SQLite (nothing lost, nothing applied
/// twice). Rounds: `DENORM_PROPTEST_CASES / 100` (at least 4; 20 in CI: each round
/// is a 0.6–2 s run and a restart, the suite's slowest loop).
#[test]
fn kill_9_under_a_writer_restarts_from_periodic_checkpoints() {
    let project = Project::new(SCHEMA, VIEWS);
    set_interval(&project, "1s");
    let db = project.connect();
    transactions(&db, 7, 50);
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("periodic=true");
    let conn = project.connect();
    let mut writes = SplitMix(31);
    let writer = Background::spawn(move || {
        transaction(&conn, &mut writes);
        std::thread::sleep(Duration::from_millis(1));
        true
    });
    let rounds = std::env::var("DENORM_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(4, |n| (n / 100).max(4));
    let mut rng = SplitMix(77);
    let mut with_changes = 0;
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(600 + rng.below(1400)));
        denorm.kill();
        denorm = Denorm::start(&project.config);
        let line = denorm.wait_for_log("resumed from the state directory");
        assert!(line.contains(FROM_CHECKPOINT), "round {round}: {}", denorm.lines.join("\n"));
        assert!(!denorm.lines.iter().any(|l| l.contains(REPLAYED) || l.contains("snapshot read")), "{line}");
        with_changes += usize::from(!line.contains("logged_changes=0"));
        if round % 2 == 1 {
            writer.pause();
            assert_views_equal_sqlite(&denorm, &db);
            writer.resume();
        }
    }
    let committed = writer.finish();
    assert!(committed > 0);
    // How many restarts applied logged changes (a kill right after a
    // checkpoint's durable commit finds none; that a checkpoint plus logged
    // changes is exact is asserted deterministically above).
    eprintln!("{with_changes} of {rounds} restarts applied logged changes");
    assert_views_equal_sqlite(&denorm, &db);
}

/// A crash while writing a checkpoint leaves a torn temporary file beside
/// the previous checkpoint (renamed into place only once complete); a torn
/// or garbled checkpoint fails its checksum. Each is logged, the start
/// replays the input rows, and the views are exact.
#[test]
fn torn_or_garbled_checkpoints_fall_back_to_the_input_rows() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    transactions(&db, 4, 40);
    let denorm = Denorm::start(&project.config);
    denorm.stop_cleanly();
    let state = project.dir.path().join("denorm.state");
    let checkpoint = state.join("checkpoint.bin");
    let good = std::fs::read(&checkpoint).unwrap();
    // A crash mid-write: the temporary file is half written, the previous
    // checkpoint is whole and still applies.
    std::fs::write(state.join("checkpoint.tmp"), &good[..good.len() / 2]).unwrap();
    let denorm = start(&project, true);
    assert_views_equal_sqlite(&denorm, &db);
    denorm.stop_cleanly();
    for corruption in ["truncate", "flip", "empty"] {
        let mut bytes = std::fs::read(&checkpoint).unwrap();
        match corruption {
            "truncate" => bytes.truncate(bytes.len() * 2 / 3),
            "flip" => {
                let at = bytes.len() / 2;
                bytes[at] ^= 0x10;
            }
            _ => bytes.clear(),
        }
        std::fs::write(&checkpoint, &bytes).unwrap();
        transactions(&db, 5, 3);
        let mut denorm = start(&project, false);
        let line = denorm.wait_for_log(NOT_USED);
        assert!(line.contains("corrupt"), "{corruption}: {line}");
        assert_views_equal_sqlite(&denorm, &db);
        denorm.stop_cleanly();
    }
}

/// A view counting tags per tag over the join `item_tags` arranges too.
const TAG_COUNTS: &str = "SELECT t.tag, COUNT(*) AS n FROM items i JOIN tags t ON t.item_id = i.id GROUP BY t.tag";

/// The views of [`a_views_change_rebuilds_only_the_changed_views`] after
/// the change: `by_grp` and `item_tags` unchanged, `tag_names` dropped,
/// `top_items` and `tag_stats` (over the join's arrangements, which
/// `item_tags` shares, widened by the change) changed, `grp_sizes` added.
const CHANGED: [(&str, &str); 5] = [
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n, MIN(note) AS first FROM items GROUP BY grp"),
    ("item_tags", "SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id"),
    ("top_items", "SELECT id, amount FROM items ORDER BY amount DESC, id LIMIT 3"),
    ("tag_stats", "SELECT t.tag, SUM(i.amount) AS total FROM items i JOIN tags t ON t.item_id = i.id GROUP BY t.tag"),
    ("grp_sizes", "SELECT grp, COUNT(*) AS n FROM items GROUP BY grp"),
];

/// A changed views.sql (one view's definition changed, one over a node it
/// shares with an unchanged view changed, one added, one dropped), with a
/// `kill -9` after logged writes and writes while down: the start loads
/// the unchanged views from the checkpoint, rebuilds the changed and added
/// ones (and an unchanged one whose shared arrangement the change widened)
/// from the stored input rows, applies the logged changes to all, and
/// every view equals SQLite, then and under a writer. The next SIGTERM
/// writes a checkpoint of the new views, which the next start loads whole.
/// An older checkpoint (format 2, loadable only into the same views) of
/// other views is logged and the input rows replayed.
#[test]
fn a_views_change_rebuilds_only_the_changed_views() {
    let old_views = format!("{VIEWS}CREATE MATERIALIZED VIEW tag_stats AS {TAG_COUNTS};\n");
    let project = Project::new(SCHEMA, &old_views);
    let db = project.connect();
    transactions(&db, 6, 40);
    Denorm::start(&project.config).stop_cleanly();
    let denorm = start(&project, true);
    transactions(&db, 8, 10);
    assert_views_equal_sqlite(&denorm, &db);
    common::wait_until_released(&db);
    denorm.kill();
    let views: String =
        CHANGED.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect();
    std::fs::write(project.dir.path().join("views.sql"), views).unwrap();
    transactions(&db, 9, 10);
    let mut denorm = start(&project, true);
    let line = denorm.wait_for_log(FROM_CHECKPOINT);
    assert!(!line.contains("logged_changes=0"), "{line}");
    // item_tags is unchanged, but its join reads `items` by id through the
    // arrangement it shares with tag_stats, now widened to tag_stats's
    // `amount` (denorm-core's `graph/share.rs`): a node the checkpoint does
    // not hold, so it is rebuilt too.
    assert!(line.contains("loaded_views=by_grp "), "{line}");
    assert!(line.contains("rebuilt_views=item_tags,top_items,tag_stats,grp_sizes "), "{line}");
    assert!(line.contains("dropped_views=tag_names "), "{line}");
    let changed_equal = |denorm: &Denorm| {
        denorm.wait_for_position(committed_position(&db));
        for (view, select) in CHANGED {
            if let Some(difference) = view_differs_from_select(denorm, &db, view, select) {
                panic!("{difference}");
            }
        }
    };
    changed_equal(&denorm);
    write_for_a_while(&project, 41);
    changed_equal(&denorm);
    denorm.stop_cleanly();
    let mut denorm = start(&project, true);
    let line = denorm.wait_for_log(FROM_CHECKPOINT);
    assert!(line.contains("rebuilt_views= "), "{line}");
    changed_equal(&denorm);
    denorm.stop_cleanly();

    // A format-2 checkpoint of other views: logged, replayed.
    let checkpoint = project.dir.path().join("denorm.state").join("checkpoint.bin");
    let mut bytes = std::fs::read(&checkpoint).unwrap();
    bytes.truncate(bytes.len() - 4);
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&checkpoint, bytes).unwrap();
    std::fs::write(project.dir.path().join("views.sql"), VIEWS).unwrap();
    let mut denorm = start(&project, false);
    let line = denorm.wait_for_log(NOT_USED);
    assert!(line.contains("other views (an older file)"), "{line}");
    assert_views_equal_sqlite(&denorm, &db);
}
