//! `denorm run` over SQLite columns whose values are not of their declared
//! type: untyped columns, BLOB columns and BLOB values.

mod common;

use common::{committed_position, Denorm, Project};
use serde_json::json;

/// Regression: one untyped column in any table, even one no view reads,
/// refused start-up ("has no declared type"), and a BLOB in a column a
/// view reads stopped the whole engine. Now both are read: BLOBs are served
/// as PostgreSQL's bytea text (`"\\x00ff"`), values without affinity keep
/// their storage class, and every view stays ok.
#[test]
fn untyped_columns_and_blobs_are_served() {
    let project = Project::new(
        "CREATE TABLE files (id INTEGER PRIMARY KEY, name TEXT, data BLOB, extra);
         CREATE TABLE other (id INTEGER PRIMARY KEY, anything);
         INSERT INTO files VALUES (1, 'a', X'00FF', 1), (2, X'6869', 'text', 1.0), (3, 'c', NULL, '1');",
        "CREATE MATERIALIZED VIEW files_view AS SELECT id, name, data, extra FROM files;
         CREATE MATERIALIZED VIEW extras AS SELECT extra, COUNT(*) AS n FROM files GROUP BY extra;
         CREATE MATERIALIZED VIEW sizes AS SELECT id, extra + 1 AS next FROM files WHERE extra;",
    );
    let denorm = Denorm::start(&project.config);
    let conn = project.connect();
    conn.execute_batch("INSERT INTO files VALUES (4, 'd', X'', X'31'); UPDATE files SET data = X'0A' WHERE id = 3;")
        .unwrap();
    denorm.wait_for_position(committed_position(&conn));
    let (status, rows) = denorm.get("/views/files_view?order=id");
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        json!([
            {"id": 1, "name": "a", "data": "\\x00ff", "extra": 1},
            {"id": 2, "name": "\\x6869", "data": "text", "extra": 1.0},
            {"id": 3, "name": "c", "data": "\\x0a", "extra": "1"},
            {"id": 4, "name": "d", "data": "\\x", "extra": "\\x31"},
        ])
    );
    // 1 and 1.0 are one group (SQLite: equal); '1' and X'31' are not.
    let (_, groups) = denorm.get("/views/extras");
    let mut counts: Vec<i64> = groups.as_array().unwrap().iter().map(|g| g["n"].as_i64().unwrap()).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 1, 2], "{groups}");
    // Text and BLOBs read as numbers where SQLite reads them so.
    let (_, sizes) = denorm.get("/views/sizes?order=id");
    assert_eq!(
        sizes,
        json!([{"id": 1, "next": 2}, {"id": 2, "next": 2.0}, {"id": 3, "next": 2}, {"id": 4, "next": 2}])
    );
    let (_, views) = denorm.get("/views");
    assert!(views.as_array().unwrap().iter().all(|v| v["status"] == "ok"), "{views}");
}
