//! A dropped and recreated table is read again alone (issue 13): the
//! other captured tables resume from the state directory (not read), their
//! views answer every read meanwhile, and the recreated table's views come
//! back with its new rows. SQLite, through the real binary.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{committed_position, Denorm, Project};
use serde_json::json;

const REREAD: &str = "re-read only the changed tables";

#[test]
fn a_recreated_table_is_read_again_alone() {
    let project = Project::new(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL);
         CREATE TABLE other (id INTEGER PRIMARY KEY);
         INSERT INTO items VALUES (1, 10), (2, 20);
         INSERT INTO other VALUES (1);",
        "CREATE MATERIALIZED VIEW total AS SELECT sum(price) AS s FROM items;
         CREATE MATERIALIZED VIEW others AS SELECT count(*) AS n FROM other;
         CREATE MATERIALIZED VIEW other_ids AS SELECT id FROM other;",
    );
    let mut denorm = Denorm::start(&project.config);
    let conn = project.connect();
    denorm.wait_rows("total", json!([{"s": 30}]));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (base, stop) = (denorm.base.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = common::get(&format!("{base}/views/other_ids"));
                assert_eq!(status, 200, "other_ids answered {body} while another table was read again");
                assert!(!body.as_array().unwrap().is_empty(), "other_ids served no rows: {body}");
                reads += 1;
            }
            reads
        })
    };

    // Dropped, noticed, recreated: each session start reads only the
    // changed table (none at the drop).
    conn.execute_batch("DROP TABLE items; INSERT INTO other VALUES (2)").unwrap();
    denorm.wait_rows("others", json!([{"n": 2}]));
    denorm.wait_for_log(REREAD);
    conn.execute_batch(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); INSERT INTO items VALUES (7, 70);",
    )
    .unwrap();
    denorm.wait_rows("total", json!([{"s": 70}]));
    let line = denorm.wait_for_log("read=[\"items\"]");
    assert!(line.contains(REREAD) && line.contains("kept=[\"other\"]"), "{line}");

    // Dropped and recreated with the same shape at once, writes around it.
    conn.execute_batch(
        "DROP TABLE items; CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL);
         INSERT INTO items VALUES (9, 5); INSERT INTO other VALUES (3);",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    denorm.wait_rows("total", json!([{"s": 5}]));
    denorm.wait_rows("others", json!([{"n": 3}]));
    conn.execute_batch("INSERT INTO items VALUES (10, 1); DELETE FROM other WHERE id = 1").unwrap();
    denorm.wait_rows("total", json!([{"s": 6}]));
    denorm.wait_rows("others", json!([{"n": 2}]));
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() > 0);
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    let log = denorm.lines.join("\n");
    let snapshots = log.matches("snapshot read").count();
    assert_eq!(snapshots, 1, "only the first start snapshots every table:\n{log}");
    denorm.terminate();
}
