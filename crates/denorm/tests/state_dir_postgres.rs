//! The state directory on PostgreSQL: the real binary killed with `kill -9`
//! at random points under a concurrent writer, with writes while it is down,
//! resumes from the kept replication slot and its state directory without
//! reading the source tables (`pg_stat_user_tables` shows no scan of them
//! across a restart, and does show the first start's snapshot), and every
//! view equals PostgreSQL's answer; a TRUNCATE is applied without a new
//! snapshot.

mod common;
mod pg_project;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Denorm, SplitMix};
use pg_project::{assert_views_equal, PgProject};
use postgres::{Client, NoTls};

const SCHEMA: &str = "
CREATE TABLE items (id bigint PRIMARY KEY, grp integer NOT NULL, amount integer NOT NULL);
CREATE TABLE tags (item_id bigint, tag text);
ALTER TABLE items REPLICA IDENTITY FULL;
ALTER TABLE tags REPLICA IDENTITY FULL;
INSERT INTO items SELECT g, g % 7, g % 100 FROM generate_series(1, 3000) g;
INSERT INTO tags SELECT g % 3000, 't' || (g % 5) FROM generate_series(1, 2000) g;
";

const VIEWS: &[(&str, &str)] = &[
    ("by_grp", "SELECT grp, SUM(amount) AS total, COUNT(*) AS n FROM items GROUP BY grp"),
    ("tag_counts", "SELECT tag, COUNT(*) AS n FROM tags GROUP BY tag"),
    ("item_tags", "SELECT i.id, i.grp, t.tag FROM items i JOIN tags t ON t.item_id = i.id"),
];

const RESUMED: &str = "resumed from the state directory without reading the source tables";
const SNAPSHOT_READ: &str = "snapshot read";

fn views_sql() -> String {
    VIEWS.iter().map(|(name, select)| format!("CREATE MATERIALIZED VIEW {name} AS {select};\n")).collect()
}

fn transaction(client: &mut Client, rng: &mut SplitMix) {
    let mut sql = String::from("BEGIN;");
    for _ in 0..1 + rng.below(5) {
        let id = 1 + rng.below(3200);
        let grp = rng.below(7);
        let amount = rng.below(100);
        sql.push_str(&match rng.below(6) {
            0 | 1 => format!(
                "INSERT INTO items VALUES ({id}, {grp}, {amount}) ON CONFLICT (id) DO UPDATE SET amount = {amount};"
            ),
            2 => format!("UPDATE items SET grp = {grp} WHERE id = {id};"),
            3 => format!("DELETE FROM items WHERE id = {id};"),
            4 => format!("INSERT INTO tags VALUES ({id}, 't{grp}');"),
            _ => format!("DELETE FROM tags WHERE ctid = (SELECT min(ctid) FROM tags WHERE item_id = {id});"),
        });
    }
    sql.push_str("COMMIT;");
    client.batch_execute(&sql).unwrap();
}

/// Sequential and index scans of the captured tables, and the rows they
/// read, as the statistics collector counts them.
fn reads(url: &str) -> (i64, i64, i64, i64) {
    let mut client = Client::connect(url, NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT sum(seq_scan)::bigint, sum(seq_tup_read)::bigint, sum(coalesce(idx_scan, 0))::bigint, \
             sum(coalesce(idx_tup_fetch, 0))::bigint FROM pg_stat_user_tables WHERE relname IN ('items', 'tags')",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

/// Stats reach the collector when a backend ends (or idles a while): kill
/// denorm, then wait until the counts stop moving.
fn settled_reads(url: &str) -> (i64, i64, i64, i64) {
    let mut last = reads(url);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = reads(url);
        if now == last {
            return now;
        }
        last = now;
    }
}

fn assert_resumed(denorm: &mut Denorm) {
    denorm.wait_for_log(RESUMED);
    assert!(!denorm.lines.iter().any(|l| l.contains(SNAPSHOT_READ)), "a resumed start read a snapshot");
}

#[test]
fn kill_under_a_writer_resumes_from_the_slot_without_reading_the_tables() {
    let project = PgProject::new("state_dir_kill", SCHEMA, &views_sql());
    let mut client = project.client();

    // Control: the first start snapshots, and the statistics show it.
    let before = settled_reads(&project.url);
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_log("snapshot written to the state directory");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    // The comparison's own scans are counted when its backend flushes its
    // statistics — up to 10 s later while the connection idles, after the
    // counts below would seem settled; a backend flushes as it exits.
    client = project.client();
    denorm.kill();
    let after_snapshot = settled_reads(&project.url);
    assert!(after_snapshot.0 > before.0, "the snapshot's scans are not counted: {before:?} → {after_snapshot:?}");

    // A restart (after kill -9) reads nothing of the tables.
    let mut denorm = Denorm::start(&project.config);
    assert_resumed(&mut denorm);
    denorm.kill();
    let after_restart = settled_reads(&project.url);
    assert_eq!(
        after_restart, after_snapshot,
        "a restart read the source tables (seq_scan, seq_tup_read, idx_scan, idx_tup_fetch)"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (url, stop) = (project.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut client = Client::connect(&url, NoTls).unwrap();
            let mut rng = SplitMix(11);
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                transaction(&mut client, &mut rng);
                n += 1;
                std::thread::sleep(Duration::from_millis(rng.below(3)));
            }
            n
        })
    };
    let mut rng = SplitMix(5);
    let mut denorm = Denorm::start(&project.config);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(rng.below(1200)));
        denorm.kill();
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        denorm = Denorm::start(&project.config);
        assert_resumed(&mut denorm);
    }
    stop.store(true, Ordering::SeqCst);
    let transactions = background.join().unwrap();
    assert!(transactions > 30, "the writer committed only {transactions} transactions");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);

    // TRUNCATE: the stored rows are retracted, no snapshot is taken.
    client.batch_execute("BEGIN; TRUNCATE tags; INSERT INTO tags VALUES (1, 'after'); COMMIT;").unwrap();
    denorm.wait_for_log("its stored rows are retracted");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    assert!(!denorm.lines.iter().any(|l| l.contains(SNAPSHOT_READ)), "TRUNCATE took a snapshot");
    assert_eq!(denorm.terminate(), Some(0));
    transaction(&mut client, &mut rng);
    // This connection's scans must be counted before the counts settle
    // (see above): a backend flushes its statistics as it exits.
    client = project.client();
    // After SIGTERM the views' state comes from the checkpoint; the
    // tables are not read either.
    let before_checkpoint = settled_reads(&project.url);
    let mut denorm = Denorm::start(&project.config);
    assert_resumed(&mut denorm);
    let line = denorm.wait_for_log(RESUMED);
    assert!(line.contains("from_checkpoint=true"), "{line}");
    assert_eq!(settled_reads(&project.url), before_checkpoint, "a restart from a checkpoint read the source tables");
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
}

/// The slot dropped while denorm is down: the next start logs why and
/// snapshots again, exactly.
#[test]
fn a_dropped_slot_rebuilds_from_a_snapshot() {
    let project = PgProject::new("state_dir_slot", SCHEMA, &views_sql());
    let mut client = project.client();
    let denorm = Denorm::start(&project.config);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
    assert_eq!(denorm.terminate(), Some(0));
    let mut admin = Client::connect(&pg_project::server_url(), NoTls).unwrap();
    pg_project::drop_slot(&mut admin, &project.slot);
    transaction(&mut client, &mut SplitMix(9));
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("cannot resume from the state directory");
    assert!(line.contains("is gone"), "{line}");
    denorm.wait_for_log(SNAPSHOT_READ);
    assert_views_equal(&denorm, &mut client, VIEWS, &[]);
}
