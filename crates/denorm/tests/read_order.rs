//! A view's `ORDER BY` over HTTP: the real binary on a SQLite file; a read
//! without `order=` returns the rows in the view's declared order (then by
//! key), exactly as SQLite's own `SELECT … ORDER BY` returns them, through
//! the snapshot and later writes; `order=` still overrides it; a top-N view
//! serves its rows in its ORDER BY order and follows deletions inside it.
//! (An ORDER BY term that is not an output column cannot order reads: a
//! top-N view ordered by one serves in key order after its output terms.)

mod common;

use common::{committed_position, view_rows, Denorm, Project};
use denorm_types::{Datum, Value};
use rusqlite::Connection;

const SCHEMA: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, score INTEGER);";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW by_score AS SELECT id, title, score FROM posts ORDER BY score DESC, title;
CREATE MATERIALIZED VIEW top_three AS SELECT title, id, score AS s FROM posts ORDER BY s, id DESC LIMIT 3;
CREATE MATERIALIZED VIEW titles AS
  SELECT title FROM posts WHERE score > 2 UNION SELECT title FROM posts WHERE id < 3 ORDER BY 1 DESC;
";

/// SQLite's answer, in its order.
fn source_rows(conn: &Connection, sql: &str, width: usize) -> Vec<Vec<Value>> {
    let mut statement = conn.prepare(sql).unwrap();
    let rows =
        statement.query_map([], |row| (0..width).map(|i| row.get::<_, rusqlite::types::Value>(i).map(datum)).collect());
    rows.unwrap().map(Result::unwrap).collect()
}

fn datum(v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as V;
    match v {
        V::Null => Datum::Null,
        V::Integer(i) => Datum::Int(i),
        V::Real(f) => Datum::Float(f),
        V::Text(t) => Datum::owned_text(t),
        V::Blob(_) => panic!("no blobs here"),
    }
}

fn check(denorm: &Denorm, conn: &Connection) {
    denorm.wait_for_position(committed_position(conn));
    let cases = [
        ("by_score", "SELECT id, title, score FROM posts ORDER BY score DESC, title, id", vec!["id", "title", "score"]),
        ("top_three", "SELECT title, id, score FROM posts ORDER BY score, id DESC LIMIT 3", vec!["title", "id", "s"]),
        (
            "titles",
            "SELECT title FROM posts WHERE score > 2 UNION SELECT title FROM posts WHERE id < 3 ORDER BY 1 DESC",
            vec!["title"],
        ),
    ];
    for (view, sql, columns) in cases {
        let columns: Vec<String> = columns.into_iter().map(String::from).collect();
        let want = source_rows(conn, sql, columns.len());
        assert!(!want.is_empty(), "{view}: the workload leaves rows to order");
        assert_eq!(view_rows(denorm, view, &columns), want, "{view} in its declared order");
    }
}

#[test]
fn reads_without_order_follow_the_views_order_by() {
    let project = Project::new(SCHEMA, VIEWS);
    let conn = project.connect();
    // Ties on score (broken by title, then by the key), NULL scores (first
    // ascending, last descending in SQLite) and NULL titles.
    conn.execute_batch(
        "INSERT INTO posts VALUES (1, 'b', 5), (2, 'a', 5), (3, NULL, 1), (4, 'c', NULL), (5, 'a', 9), (6, 'd', 1);",
    )
    .unwrap();
    let denorm = Denorm::start(&project.config);
    check(&denorm, &conn);
    conn.execute_batch(
        "INSERT INTO posts VALUES (7, 'e', 0), (8, 'f', 7); DELETE FROM posts WHERE id = 6; \
         UPDATE posts SET score = 10 WHERE id = 3;",
    )
    .unwrap();
    check(&denorm, &conn);
    // An explicit order= replaces the declared one.
    let columns: Vec<String> = ["id", "title", "score"].into_iter().map(String::from).collect();
    let (status, rows) = denorm.get("/views/by_score?order=id.desc");
    assert_eq!(status, 200, "{rows}");
    let ids: Vec<i64> = rows.as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![8, 7, 5, 4, 3, 2, 1]);
    assert_eq!(view_rows(&denorm, "by_score", &columns).len(), 7);
    // /views shows the declared order in the syntax of order=.
    let (_, views) = denorm.get("/views");
    let listed = views.as_array().unwrap().iter().find(|v| v["name"] == "by_score").unwrap();
    assert_eq!(listed["order"], serde_json::json!(["score.desc.nullslast", "title.asc.nullsfirst"]));
}
