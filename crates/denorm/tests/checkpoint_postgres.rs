//! Periodic checkpoints on PostgreSQL (the real binary): `kill -9` under a
//! writer, and each restart loads the newest checkpoint plus the changes
//! the state directory logged since it — no replay of the input rows, and
//! no scan of the source tables (`pg_stat_user_tables` does not move
//! across the restarts) — then follows the kept slot exactly: every view
//! equals PostgreSQL's answer.

mod common;
mod pg_project;

use std::time::Duration;

use common::{Background, Denorm, SplitMix};
use pg_project::{assert_views_equal, PgProject};
use postgres::{Client, NoTls};

const SCHEMA: &str = "
CREATE TABLE items (id bigint PRIMARY KEY, grp integer NOT NULL, amount integer NOT NULL);
ALTER TABLE items REPLICA IDENTITY FULL;
INSERT INTO items SELECT g, g % 7, g % 100 FROM generate_series(1, 2000) g;
";

const VIEWS: &[(&str, &str)] = &[
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp"),
    ("top_items", "SELECT id, amount FROM items ORDER BY amount DESC, id LIMIT 5"),
    ("pairs", "SELECT a.id, b.id AS other FROM items a JOIN items b ON b.id = a.amount"),
];

const RESUMED: &str = "resumed from the state directory without reading the source tables";

fn views_sql() -> String {
    VIEWS.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

/// One transaction of inserts, updates and deletes by primary key.
fn transaction(client: &mut Client, rng: &mut SplitMix) {
    let id = 1 + rng.below(2200);
    let (grp, amount) = (rng.below(7), rng.below(100));
    let sql = match rng.below(3) {
        0 => {
            format!("INSERT INTO items VALUES ({id}, {grp}, {amount}) ON CONFLICT (id) DO UPDATE SET amount = {amount}")
        }
        1 => format!("UPDATE items SET grp = {grp}, amount = {amount} WHERE id = {id}"),
        _ => format!("DELETE FROM items WHERE id = {id}"),
    };
    client.batch_execute(&sql).unwrap();
}

/// Sequential scans of `items` and the rows they read.
fn seq_reads(url: &str) -> (i64, i64) {
    let mut client = Client::connect(url, NoTls).unwrap();
    let row = client
        .query_one("SELECT seq_scan, seq_tup_read FROM pg_stat_user_tables WHERE relname = 'items'", &[])
        .unwrap();
    (row.get(0), row.get(1))
}

/// Statistics reach the collector when a backend ends (or idles a
/// while): waits until the counts stop moving.
fn settled(url: &str) -> (i64, i64) {
    let mut last = seq_reads(url);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = seq_reads(url);
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Waits for a periodic checkpoint written after this call.
fn wait_for_new_checkpoint(denorm: &mut Denorm) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = denorm.log.recv_timeout(Duration::from_millis(200)) {
            denorm.lines.push(line.clone());
            if line.contains("periodic=true") {
                return;
            }
        }
    }
    panic!("no periodic checkpoint:\n{}", denorm.lines.join("\n"));
}

/// Three rounds: a writer runs while denorm (checkpoints every 2 s) takes
/// a checkpoint, goes on for 700 ms (durable commits every 200 ms), and
/// denorm is killed before the next checkpoint; with the writer stopped,
/// the restart loads the checkpoint and the changes logged since, reading
/// no source table; the views are exact.
#[test]
fn kill_9_restarts_load_the_checkpoint_and_the_logged_changes_without_a_scan() {
    let project = PgProject::new("checkpoint_kill", SCHEMA, &views_sql());
    let config = std::fs::read_to_string(&project.config).unwrap();
    std::fs::write(&project.config, format!("{config}[engine]\ncheckpoint_interval = \"2s\"\n")).unwrap();
    let mut client;
    let mut denorm = Denorm::start(&project.config);
    let mut with_changes = 0;
    for round in 0..3u64 {
        let mut writer_client = project.client();
        let mut rng = SplitMix(40 + round);
        let writer = Background::spawn(move || {
            transaction(&mut writer_client, &mut rng);
            true
        });
        wait_for_new_checkpoint(&mut denorm);
        std::thread::sleep(Duration::from_millis(700));
        denorm.kill();
        assert!(writer.finish() > 10, "the writer committed too little");
        // This connection's own scans must be counted before the counts
        // settle: a backend flushes its statistics as it exits.
        client = project.client();
        let before = settled(&project.url);
        denorm = Denorm::start(&project.config);
        let line = denorm.wait_for_log(RESUMED);
        assert!(line.contains("from_checkpoint=true"), "round {round}: {}", denorm.lines.join("\n"));
        with_changes += usize::from(!line.contains("logged_changes=0"));
        assert_eq!(settled(&project.url), before, "round {round}: a restart from a checkpoint scanned the table");
        assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    }
    assert!(with_changes > 0, "no restart applied logged changes");
    assert_eq!(denorm.terminate(), Some(0));
}

/// The views after [`a_views_change_rebuilds_only_the_changed_views_without_a_scan`]'s
/// change: `pairs` unchanged, `top_items` changed, `by_grp` dropped,
/// `pair_groups` added over the self-join's arrangements (which `pairs`
/// shares; it reads no column `pairs` does not, so the shared arrangements
/// are not widened and `pairs` loads from the checkpoint) and `grp_counts`
/// added.
const CHANGED: &[(&str, &str)] = &[
    ("top_items", "SELECT id, amount FROM items ORDER BY amount DESC, id LIMIT 3"),
    ("pairs", "SELECT a.id, b.id AS other FROM items a JOIN items b ON b.id = a.amount"),
    ("pair_groups", "SELECT b.id, COUNT(*) AS n FROM items a JOIN items b ON b.id = a.amount GROUP BY b.id"),
    ("grp_counts", "SELECT grp, COUNT(*) AS n FROM items GROUP BY grp"),
];

/// A changed views.sql after a SIGTERM, with writes while down: the start
/// loads the unchanged view from the checkpoint, rebuilds the changed and
/// added ones from the stored input rows (no scan of the source table:
/// `pg_stat_user_tables` does not move), and every view equals
/// PostgreSQL's answer, then under a writer.
#[test]
fn a_views_change_rebuilds_only_the_changed_views_without_a_scan() {
    let project = PgProject::new("checkpoint_views_change", SCHEMA, &views_sql());
    let mut client = project.client();
    let mut denorm = Denorm::start(&project.config);
    let mut rng = SplitMix(7);
    for _ in 0..30 {
        transaction(&mut client, &mut rng);
    }
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    assert_eq!(denorm.terminate(), Some(0));
    let views: String =
        CHANGED.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect();
    std::fs::write(project.dir.path().join("views.sql"), views).unwrap();
    for _ in 0..30 {
        transaction(&mut client, &mut rng);
    }
    drop(client);
    let mut client = project.client();
    let before = settled(&project.url);
    denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log(RESUMED);
    assert!(line.contains("from_checkpoint=true"), "{}", denorm.lines.join("\n"));
    assert!(line.contains("loaded_views=pairs "), "{line}");
    assert!(line.contains("rebuilt_views=top_items,pair_groups,grp_counts "), "{line}");
    assert!(line.contains("dropped_views=by_grp "), "{line}");
    assert_eq!(settled(&project.url), before, "a restart with changed views scanned the table");
    assert_views_equal(&denorm, &mut client, CHANGED, &[]);
    let mut writer_client = project.client();
    let mut writes = SplitMix(8);
    let writer = Background::spawn(move || {
        transaction(&mut writer_client, &mut writes);
        true
    });
    std::thread::sleep(Duration::from_millis(500));
    writer.finish();
    assert_views_equal(&denorm, &mut client, CHANGED, &[]);
    assert_eq!(denorm.terminate(), Some(0));
}
