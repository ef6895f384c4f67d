//! Feed views checkpointed (SQLite, the real binary): a feed fanning out
//! references, with celebrities read at request time, saves its parts —
//! the fanned-out references, the celebrities' content and edges, the
//! content stored once — and a restart after SIGTERM, and after `kill -9`
//! with writes while down, loads them from the checkpoint (no replay of
//! the input rows); every partition reads as SQLite's answer to the
//! defining query.

mod common;

use common::{committed_position, Denorm, Project, SplitMix};
use rusqlite::Connection;
use serde_json::{json, Value as Json};

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, body TEXT, created_at INTEGER);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
";

/// The post's key among the columns: the feed fans out references.
const SELECT: &str = "SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, u.name AS author_name \
     FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id";

const COLUMNS: [&str; 5] = ["owner_id", "post_id", "body", "created_at", "author_name"];

/// Authors with more than 2 followers are celebrities (read at request time).
fn views_sql() -> String {
    format!(
        "CREATE MATERIALIZED VIEW home_feed WITH (partition_by = 'owner_id', \
         order_by = 'created_at DESC, post_id DESC', fanout_limit = 2) AS {SELECT};\n\
         CREATE MATERIALIZED VIEW posts_per_author AS SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id;\n"
    )
}

const WRITTEN: &str = "checkpoint written to the state directory";
const RESUMED: &str = "resumed from the state directory";

/// One transaction: posts written, moved and deleted, follows added and
/// removed (authors cross the fan-out limit both ways), authors renamed.
fn transaction(conn: &Connection, rng: &mut SplitMix) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for _ in 0..1 + rng.below(4) {
        let (author, post, other) = (rng.below(6) as i64, rng.below(40) as i64, rng.below(8) as i64);
        let created = (rng.below(10) != 0).then(|| rng.below(20) as i64);
        let sql_result = match rng.below(6) {
            0 | 1 => conn.execute(
                "INSERT INTO posts VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET body = excluded.body, \
                 created_at = excluded.created_at",
                (post, author, format!("post {post} v{other}"), created),
            ),
            2 => conn.execute("DELETE FROM posts WHERE id = ?1", [post]),
            3 => conn.execute("INSERT INTO follows (follower_id, followee_id) VALUES (?1, ?2)", (other, author)),
            4 => conn.execute(
                "DELETE FROM follows WHERE id = (SELECT min(id) FROM follows WHERE followee_id = ?1)",
                [author],
            ),
            _ => conn.execute("UPDATE users SET name = ?2 WHERE id = ?1", (author, format!("user {author}.{other}"))),
        };
        sql_result.unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

fn transactions(db: &Connection, rng: &mut SplitMix, n: usize) {
    for _ in 0..n {
        transaction(db, rng);
    }
}

fn sqlite_json(value: rusqlite::types::ValueRef<'_>) -> Json {
    match value {
        rusqlite::types::ValueRef::Null => Json::Null,
        rusqlite::types::ValueRef::Integer(i) => json!(i),
        rusqlite::types::ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
        other => panic!("unexpected {other:?}"),
    }
}

/// Every owner's partition, and every row of the other view, equal
/// SQLite's answer (rows compared as multisets; the feed's order is the
/// feed tests' subject).
fn assert_equal_sqlite(denorm: &Denorm, db: &Connection) {
    denorm.wait_for_position(committed_position(db));
    for owner in 0..8 {
        let (status, body) = denorm.get(&format!("/views/home_feed?owner_id=eq.{owner}"));
        assert_eq!(status, 200, "{body}");
        let mut served: Vec<Vec<Json>> = body
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {body}"))
            .iter()
            .map(|row| COLUMNS.iter().map(|c| row[*c].clone()).collect())
            .collect();
        let mut statement = db.prepare(&format!("SELECT * FROM ({SELECT}) WHERE owner_id = {owner}")).unwrap();
        let mut want: Vec<Vec<Json>> = statement
            .query_map([], |r| (0..COLUMNS.len()).map(|i| r.get_ref(i).map(sqlite_json)).collect())
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let key = |row: &Vec<Json>| row.iter().map(Json::to_string).collect::<Vec<_>>();
        served.sort_by_key(key);
        want.sort_by_key(key);
        assert_eq!(served, want, "owner {owner}");
    }
    let select = "SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id";
    assert_eq!(common::view_differs_from_select(denorm, db, "posts_per_author", select), None);
}

/// Starts and checks that the views came from the checkpoint.
fn start_from_checkpoint(project: &Project) -> (Denorm, String) {
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log(RESUMED);
    assert!(line.contains("from_checkpoint=true"), "{}", denorm.lines.join("\n"));
    (denorm, line)
}

/// SIGTERM saves the feed's parts; the next start loads them, follows the
/// writes made while down; a `kill -9` after logged writes, more writes
/// while down, and the start loads the checkpoint plus the logged changes.
#[test]
fn a_feed_restarts_from_its_checkpoint() {
    let project = Project::new(SCHEMA, &views_sql());
    let db = project.connect();
    db.execute_batch(
        "INSERT INTO users VALUES (0, 'ann'), (1, 'bob'), (2, 'cy'), (3, 'dee'), (4, 'eve'), (5, 'fay');
         INSERT INTO follows (follower_id, followee_id) VALUES (0, 1), (2, 1), (3, 1), (0, 2), (1, 2), (4, 0), (5, 3), (5, 3);",
    )
    .unwrap();
    let mut rng = SplitMix(3);
    transactions(&db, &mut rng, 40);
    let denorm = Denorm::start(&project.config);
    assert_equal_sqlite(&denorm, &db);
    let (_, feed) = denorm.get("/views");
    let home = feed.as_array().unwrap().iter().find(|v| v["name"] == "home_feed").unwrap().clone();
    assert!(home["feed"]["celebrity_content_rows"].as_u64().unwrap() > 0, "no celebrity: {home}");
    let log = denorm.stop_cleanly();
    assert!(log.contains(WRITTEN), "{log}");
    transactions(&db, &mut rng, 10);
    let (denorm, _) = start_from_checkpoint(&project);
    assert_equal_sqlite(&denorm, &db);
    transactions(&db, &mut rng, 20);
    assert_equal_sqlite(&denorm, &db);
    // Past a durable commit of the state directory.
    common::wait_until_released(&db);
    denorm.kill();
    transactions(&db, &mut rng, 10);
    let (denorm, line) = start_from_checkpoint(&project);
    assert!(!line.contains("logged_changes=0"), "{line}");
    assert_equal_sqlite(&denorm, &db);
    transactions(&db, &mut rng, 10);
    assert_equal_sqlite(&denorm, &db);
    denorm.stop_cleanly();
}
