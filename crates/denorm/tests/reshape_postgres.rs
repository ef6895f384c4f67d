//! Only the changed tables are read again on PostgreSQL (issue 13): a
//! table recreated with another shape and a table newly captured while
//! denorm is down are read alone at the next start — in a snapshot
//! exported by a temporary slot, the kept slot's stream cut at its point —
//! with a writer running on every table across the restart; the other
//! table is not scanned (`pg_stat_user_tables.seq_scan`), no snapshot is
//! taken (the slot is kept), and every view equals PostgreSQL's answer.

mod common;
mod pg_project;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{Denorm, SplitMix};
use pg_project::{assert_views_equal, PgProject};
use postgres::{Client, NoTls};

const SCHEMA: &str = "
CREATE TABLE items (id bigint PRIMARY KEY, grp integer NOT NULL, amount integer NOT NULL);
CREATE TABLE tags (id bigint PRIMARY KEY, item_id bigint, tag text);
ALTER TABLE items REPLICA IDENTITY FULL;
ALTER TABLE tags REPLICA IDENTITY FULL;
INSERT INTO items SELECT g, g % 7, g % 100 FROM generate_series(1, 3000) g;
INSERT INTO tags SELECT g, g % 3000, 't' || (g % 5) FROM generate_series(1, 2000) g;
";

/// `tags` again with another column, and rows of its own.
const RECREATE: &str = "
DROP TABLE tags;
CREATE TABLE tags (id bigint PRIMARY KEY, item_id bigint, tag text, note text);
ALTER TABLE tags REPLICA IDENTITY FULL;
INSERT INTO tags SELECT g, g % 3000, 't' || (g % 4), 'n' FROM generate_series(1, 30000) g;
CREATE TABLE notes (id bigint PRIMARY KEY, item_id bigint NOT NULL);
ALTER TABLE notes REPLICA IDENTITY FULL;
INSERT INTO notes SELECT g, g % 50 FROM generate_series(1, 500) g;
";

const VIEWS: &[(&str, &str)] = &[
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp"),
    ("tag_counts", "SELECT tag, COUNT(*) AS n FROM tags GROUP BY tag"),
    ("item_tags", "SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id"),
];

/// The view over the table captured from the second start on.
const ADDED: (&str, &str) = ("per_item_notes", "SELECT item_id, COUNT(*) AS n FROM notes GROUP BY item_id");

const RESHAPED: &str = "re-read only the changed tables";

fn views_sql(views: &[(&str, &str)]) -> String {
    views.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

/// One transaction by primary key only (index scans), so that a scan of
/// `items` can only be denorm's: `items` always, `tags` and `notes` when
/// they are `fresh`.
fn transaction(client: &mut Client, rng: &mut SplitMix, fresh: bool) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..1 + rng.below(4) {
        let id = 1 + rng.below(3200);
        let (grp, amount) = (rng.below(7), rng.below(100));
        sql.push_str(&match rng.below(if fresh { 7 } else { 3 }) {
            0 => format!(
                "INSERT INTO items VALUES ({id}, {grp}, {amount}) ON CONFLICT (id) DO UPDATE SET amount = {amount};"
            ),
            1 => format!("UPDATE items SET grp = {grp} WHERE id = {id};"),
            2 => format!("DELETE FROM items WHERE id = {id};"),
            3 => format!(
                "INSERT INTO tags VALUES ({}, {id}, 'w{grp}', 'x') ON CONFLICT (id) DO UPDATE SET tag = 'u{grp}';",
                1 + rng.below(40_000)
            ),
            4 => format!("DELETE FROM tags WHERE id = {};", 1 + rng.below(40_000)),
            5 => format!("INSERT INTO notes VALUES ({}, {grp}) ON CONFLICT (id) DO NOTHING;", 1 + rng.below(1000)),
            _ => format!("DELETE FROM notes WHERE id = {};", 1 + rng.below(1000)),
        });
    }
    sql.push_str("COMMIT;");
    client.batch_execute(&sql).unwrap();
}

struct Writer {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    thread: JoinHandle<u64>,
}

impl Writer {
    fn start(url: &str, seed: u64, fresh: bool) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let committed = Arc::new(AtomicU64::new(0));
        let (url, stopped, count) = (url.to_string(), stop.clone(), committed.clone());
        let thread = std::thread::spawn(move || {
            let mut client = Client::connect(&url, NoTls).unwrap();
            let mut rng = SplitMix(seed);
            while !stopped.load(Ordering::SeqCst) {
                transaction(&mut client, &mut rng, fresh);
                count.fetch_add(1, Ordering::SeqCst);
            }
            count.load(Ordering::SeqCst)
        });
        Writer { stop, committed, thread }
    }

    /// Waits until `n` more transactions are committed.
    fn wait_for(&self, n: u64) {
        let target = self.committed.load(Ordering::SeqCst) + n;
        while self.committed.load(Ordering::SeqCst) < target {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// Sequential scans per table, as the statistics collector counts them
/// once they settle (a backend flushes its counts as it exits or idles).
fn seq_scans(url: &str) -> Vec<(String, i64)> {
    let read = || -> Vec<(String, i64)> {
        let mut client = Client::connect(url, NoTls).unwrap();
        client
            .query("SELECT relname::text, seq_scan FROM pg_stat_user_tables ORDER BY relname", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    let mut last = read();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = read();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn scans_of(scans: &[(String, i64)], table: &str) -> i64 {
    scans.iter().find(|(t, _)| t == table).map_or(0, |(_, n)| *n)
}

#[test]
fn a_recreated_and_an_added_table_are_read_alone_under_a_writer() {
    let project = PgProject::new("reshape", SCHEMA, &views_sql(VIEWS));
    let mut client = project.client();
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("snapshot written to the state directory");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    denorm.kill();

    // While denorm is down: a writer on items, tags recreated with another
    // shape, notes created and captured by a new view.
    let writer = Writer::start(&project.url, 3, false);
    writer.wait_for(20);
    client.batch_execute(RECREATE).unwrap();
    writer.wait_for(20);
    let mut views = VIEWS.to_vec();
    views.push(ADDED);
    std::fs::write(project.dir.path().join("views.sql"), views_sql(&views)).unwrap();
    let down = writer.stop();
    client = project.client(); // this backend's statistics flush as it exits
    let before = seq_scans(&project.url);

    // Restart with a writer on every table: transactions straddle the
    // point the fresh tables are read at.
    let writer = Writer::start(&project.url, 7, true);
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log(RESHAPED);
    writer.wait_for(20);
    let during = writer.stop();
    assert!(line.contains("notes") && line.contains("tags"), "{line}");
    assert!(!denorm.lines.iter().any(|l| l.contains("snapshot read")), "the restart read a snapshot");
    assert!(down > 10 && during > 10, "the writers committed {down} and {during} transactions");
    denorm.kill();
    let after = seq_scans(&project.url);
    assert_eq!(scans_of(&after, "items"), scans_of(&before, "items"), "items was read: {before:?} → {after:?}");
    assert_eq!(scans_of(&after, "notes"), scans_of(&before, "notes") + 1, "{before:?} → {after:?}");
    assert!(scans_of(&after, "tags") > scans_of(&before, "tags"), "{before:?} → {after:?}");

    // What the restart built and made durable is exact: the next start
    // resumes from it (no table read) and equals PostgreSQL.
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("resumed from the state directory without reading the source tables");
    assert_views_equal(&denorm, &mut client, &views, &[]);
    transaction(&mut client, &mut SplitMix(1), true);
    assert_views_equal(&denorm, &mut client, &views, &[]);
    denorm.terminate();
}
