//! Installing, re-installing and uninstalling capture, and what schema
//! changes made by another connection do to a running capture.

mod common;

use common::{contents, drain, from_snapshot, non_empty, spec, Db};
use denorm_source::sqlite::{uninstall, CaptureSpec, CapturedTable, Poll, SqliteCapture, Uninstalled};
use denorm_source::SourceError;
use denorm_types::Position;

const SCHEMA: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
                      CREATE TABLE posts (id INTEGER PRIMARY KEY, author INT, body TEXT);";

fn trigger_sql(db: &Db) -> Vec<(String, String)> {
    let conn = db.writer();
    let mut stmt = conn.prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn reinstalling_the_same_spec_changes_nothing() {
    let db = Db::new(SCHEMA);
    let spec = spec(&[("users", &["name", "id"]), ("posts", &["author"])]);
    drop(db.open(&spec));
    let version = db.schema_version();
    let triggers = trigger_sql(&db);
    // Per table: insert, delete, update, and the three REPLACE triggers.
    assert_eq!(triggers.len(), 12);
    // Same columns in another order: the same triggers.
    drop(db.open(&common::spec(&[("posts", &["author"]), ("users", &["id", "name", "ID"])])));
    assert_eq!(db.schema_version(), version, "an identical install must not touch the schema");
    assert_eq!(trigger_sql(&db), triggers);
}

#[test]
fn a_changed_spec_replaces_the_triggers() {
    let db = Db::new(SCHEMA);
    drop(db.open(&spec(&[("users", &["name"]), ("posts", &["author"])])));
    let mut capture = db.open(&spec(&[("users", &["name", "email"])]));
    let names: Vec<String> = trigger_sql(&db).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        vec![
            "_denorm_delete_users",
            "_denorm_insert_users",
            "_denorm_preinsert_users",
            "_denorm_preupdate_users",
            "_denorm_replaced_users",
            "_denorm_update_users"
        ]
    );
    capture.snapshot(&mut |_| {}).unwrap();
    db.writer()
        .execute_batch("INSERT INTO posts VALUES (1, 1, 'x'); INSERT INTO users VALUES (1, 'a', 'e'); UPDATE users SET email = 'f'")
        .unwrap();
    let mut state = common::Contents::new();
    drain(&mut capture, &mut state);
    assert_eq!(state, contents(&db.path, &[("users", &["name", "email"])]));
}

#[test]
fn uninstall_removes_every_denorm_object() {
    let db = Db::new(SCHEMA);
    drop(db.open(&spec(&[("users", &["name"]), ("posts", &[])])));
    db.writer().execute_batch("INSERT INTO users VALUES (1, 'a', NULL)").unwrap();
    let removed = uninstall(&db.path).unwrap();
    assert_eq!(
        removed.triggers,
        vec![
            "_denorm_delete_posts",
            "_denorm_delete_users",
            "_denorm_insert_posts",
            "_denorm_insert_users",
            "_denorm_preinsert_posts",
            "_denorm_preinsert_users",
            "_denorm_preupdate_posts",
            "_denorm_preupdate_users",
            "_denorm_replaced_posts",
            "_denorm_replaced_users",
            "_denorm_update_users"
        ]
    );
    assert_eq!(removed.tables, vec!["_denorm_capture", "_denorm_changes", "_denorm_pending"]);
    assert!(db.denorm_objects().is_empty());
    // The application goes on writing; nothing is left to log it.
    db.writer().execute_batch("INSERT INTO users VALUES (2, 'b', NULL)").unwrap();
    assert_eq!(uninstall(&db.path).unwrap(), Uninstalled::default());
}

#[test]
fn adding_a_column_is_a_schema_change_and_reopening_captures_it() {
    let db = Db::new(SCHEMA);
    let all_users = CaptureSpec { tables: vec![CapturedTable::all("users")] };
    let mut capture = db.open(&all_users);
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch("INSERT INTO users VALUES (1, 'a', NULL); ALTER TABLE users ADD COLUMN age INT").unwrap();
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
    assert_eq!(capture.position(), Position(0), "no change consumed");
    let err = capture.snapshot(&mut |_| {}).unwrap_err();
    assert!(matches!(&err, SourceError::SchemaChanged { tables } if tables == &["users"]), "{err:?}");

    drop(capture);
    let mut capture = db.open(&all_users);
    assert!(trigger_sql(&db).iter().any(|(n, sql)| n == "_denorm_insert_users" && sql.contains("NEW.\"age\"")));
    let tables: &[(&str, &[&str])] = &[("users", &["*"])];
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    w.execute_batch("INSERT INTO users VALUES (2, 'b', NULL, 42); UPDATE users SET age = 7 WHERE id = 1").unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(state, contents(&db.path, tables));
}

#[test]
fn opening_with_a_stale_catalog_is_refused() {
    let db = Db::new(SCHEMA);
    let catalog = db.catalog();
    db.writer().execute_batch("ALTER TABLE users ADD COLUMN age INT").unwrap();
    let err = SqliteCapture::open(&db.path, &catalog, &spec(&[("users", &["name"]), ("posts", &["id"])])).unwrap_err();
    assert!(matches!(&err, SourceError::SchemaChanged { tables } if tables == &["users"]), "{err:?}");
    assert!(err.to_string().contains("re-read the catalog"), "{err}");
}

#[test]
fn dropping_an_unread_column_works_dropping_a_read_one_is_refused() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(&[("users", &["id", "name"])]));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch("ALTER TABLE users DROP COLUMN email").unwrap();
    // The table's shape changed, so the rows handed out would be narrower.
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
    let err = w.execute_batch("ALTER TABLE users DROP COLUMN name").unwrap_err();
    let message = err.to_string();
    assert!(message.contains("_denorm_") && message.contains("name"), "{message}");
}

#[test]
fn a_twelve_step_rebuild_is_detected() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(&[("users", &["id", "name"]), ("posts", &["id"])]));
    capture.snapshot(&mut |_| {}).unwrap();
    db.writer()
        .execute_batch(
            "BEGIN;
             CREATE TABLE users_new (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
             INSERT INTO users_new SELECT * FROM users;
             DROP TABLE users;
             ALTER TABLE users_new RENAME TO users;
             COMMIT;",
        )
        .unwrap();
    // Same columns, but the triggers went with the old table.
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
}

#[test]
fn unrelated_schema_changes_are_accepted() {
    let db = Db::new(SCHEMA);
    let tables: &[(&str, &[&str])] = &[("users", &["id", "name"])];
    let mut capture = db.open(&spec(tables));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    let w = db.writer();
    w.execute_batch(
        "INSERT INTO users VALUES (1, 'a', NULL);
         CREATE TABLE other (x INT);
         CREATE INDEX users_name ON users (name);
         ALTER TABLE posts ADD COLUMN title TEXT;
         INSERT INTO users VALUES (2, 'b', NULL);",
    )
    .unwrap();
    drain(&mut capture, &mut state);
    // Another capture installing the same spec is not a change either.
    drop(db.open(&spec(tables)));
    w.execute_batch("DELETE FROM users WHERE id = 1").unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(non_empty(state), contents(&db.path, tables));
}

#[test]
fn dropping_a_captured_table_is_a_schema_change() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(&[("users", &["id"]), ("posts", &["id"])]));
    db.writer().execute_batch("DROP TABLE posts").unwrap();
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["posts".into()] });
}

#[test]
fn uninstalling_under_a_running_capture_is_a_schema_change() {
    let db = Db::new(SCHEMA);
    let mut capture = db.open(&spec(&[("users", &["id"])]));
    db.writer().execute_batch("INSERT INTO users (id) VALUES (1)").unwrap();
    assert!(matches!(capture.poll().unwrap(), Poll::Changes(_)));
    uninstall(&db.path).unwrap();
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
}

#[test]
fn a_new_unique_index_is_a_schema_change_and_reopening_follows_it() {
    let db = Db::new(SCHEMA);
    let tables: &[(&str, &[&str])] = &[("users", &["id", "name"])];
    let mut capture = db.open(&spec(tables));
    capture.snapshot(&mut |_| {}).unwrap();
    let w = db.writer();
    w.execute_batch("INSERT INTO users VALUES (1, 'a', 'e@x'); CREATE UNIQUE INDEX users_email ON users (email)")
        .unwrap();
    // REPLACE may now delete rows on email conflicts: the triggers must know.
    assert_eq!(capture.poll().unwrap(), Poll::SchemaChanged { tables: vec!["users".into()] });
    drop(capture);
    let mut capture = db.open(&spec(tables));
    assert!(trigger_sql(&db).iter().any(|(n, sql)| n == "_denorm_preinsert_users" && sql.contains("\"email\"")));
    let mut state = from_snapshot(&capture.snapshot(&mut |_| {}).unwrap());
    w.execute_batch("INSERT OR REPLACE INTO users VALUES (2, 'b', 'e@x')").unwrap();
    drain(&mut capture, &mut state);
    assert_eq!(non_empty(state), contents(&db.path, tables));
}
