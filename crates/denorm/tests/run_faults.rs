//! `denorm run` given bad input: a bad config, an invalid view, a missing or
//! locked database, a taken port, and change-log rows that cannot be decoded.
//! Each gets a clear message; nothing crashes or is silently dropped.

mod common;

use common::{committed_position, get_text, Denorm, Project};

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW post_cards AS
SELECT p.id AS post_id, p.title, u.name AS author FROM posts p JOIN users u ON u.id = p.author_id;
CREATE MATERIALIZED VIEW post_counts AS SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id;
";

fn refused(config: &std::path::Path) -> String {
    let (code, log) = Denorm::spawn(config).exit();
    assert_eq!(code, Some(1), "exit code; log:\n{log}");
    log
}

#[test]
fn bad_config_names_file_line_and_key() {
    let project = Project::new(SCHEMA, VIEWS);
    std::fs::write(&project.config, "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\nlisten = 1\n")
        .unwrap();
    let log = refused(&project.config);
    assert!(log.contains("denorm.toml:4:1") && log.contains("unknown field `listen`"), "{log}");

    std::fs::write(&project.config, "views = [\"views.sql\"]\n[source]\nurl = 7\n").unwrap();
    let log = refused(&project.config);
    assert!(log.contains("denorm.toml:3:7") && log.contains("invalid type"), "{log}");

    std::fs::write(&project.config, "views = [\"views.sql\"]\n").unwrap();
    let log = refused(&project.config);
    assert!(log.contains("missing field `source`"), "{log}");
}

#[test]
fn invalid_views_are_all_listed_before_anything_starts() {
    let project = Project::new(
        SCHEMA,
        "CREATE MATERIALIZED VIEW a AS SELECT nope FROM users;\n\
         CREATE MATERIALIZED VIEW b AS SELECT id, ROW_NUMBER() OVER () FROM posts;\n",
    );
    let log = refused(&project.config);
    assert!(log.contains("views.sql:1:") && log.contains("\"nope\""), "{log}");
    assert!(log.contains("views.sql:2:") && log.contains("ROW_NUMBER() needs an ORDER BY"), "{log}");
    assert!(log.contains("refusing to start: 2 view errors"), "{log}");
    assert!(!log.contains("serving http"), "{log}");
}

#[test]
fn a_fallback_query_the_source_cannot_run_is_refused_at_start() {
    // LIMIT inside an aggregate is denorm's syntax, which SQLite cannot run,
    // so the view cannot fall back to its SELECT on the source.
    let project = Project::new(
        SCHEMA,
        "CREATE MATERIALIZED VIEW latest WITH (max_staleness = '1s', on_stale = 'fallback') AS\n\
         SELECT author_id, json_group_array(title ORDER BY id DESC LIMIT 3) AS titles FROM posts GROUP BY author_id;\n\
         CREATE MATERIALIZED VIEW counts WITH (max_staleness = '1s', on_stale = 'fallback') AS\n\
         SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id;\n",
    );
    let log = refused(&project.config);
    assert!(log.contains("view latest: on_stale = 'fallback'") && log.contains("SQLite cannot run it"), "{log}");
    assert!(!log.contains("view counts"), "{log}");
    assert!(log.contains("hint: remove on_stale = 'fallback'"), "{log}");
    assert!(!log.contains("serving http"), "{log}");
}

#[test]
fn missing_database_is_refused_with_a_hint() {
    let project = Project::new(SCHEMA, VIEWS);
    std::fs::remove_file(&project.db).unwrap();
    let log = refused(&project.config);
    assert!(log.contains("does not exist") && log.contains("hint"), "{log}");
    assert!(!project.db.exists(), "denorm must not create the source database");
}

#[test]
fn a_taken_port_is_refused_with_a_hint() {
    let project = Project::new(SCHEMA, VIEWS);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        &project.config,
        format!(
            "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n[server]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let log = refused(&project.config);
    assert!(log.contains(&format!("cannot listen on 127.0.0.1:{port}")), "{log}");
}

/// A locked database is waited for (retry with backoff), not a crash.
#[test]
fn a_locked_database_is_retried_until_it_is_free() {
    let project = Project::new(SCHEMA, VIEWS);
    let locker = project.connect();
    locker
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; INSERT INTO users VALUES (1, 'ann');")
        .unwrap();
    let mut denorm = Denorm::spawn(&project.config);
    denorm.wait_for_log("source unavailable; retrying");
    denorm.wait_for_log("source unavailable; retrying");
    locker.execute_batch("INSERT INTO posts VALUES (1, 1, 'hello'); COMMIT; PRAGMA locking_mode = NORMAL;").unwrap();
    // The exclusive lock is only given up by the next read once NORMAL is set.
    locker.query_row("SELECT count(*) FROM users", [], |_| Ok(())).unwrap();
    drop(locker);
    denorm.connect();
    let (_, cards) = denorm.get("/views/post_cards");
    assert_eq!(cards, serde_json::json!([{"post_id": 1, "title": "hello", "author": "ann"}]));
}

/// A change-log row that cannot be decoded is recorded — log, metric,
/// `/views`, `/health` — and the engine keeps serving and applying the rest.
#[test]
fn undecodable_changes_are_recorded_not_dropped() {
    let project = Project::new(SCHEMA, VIEWS);
    let db = project.connect();
    let mut denorm = Denorm::start(&project.config);
    db.execute_batch(
        "BEGIN;
         INSERT INTO _denorm_changes (tbl, old, new, committed_at) VALUES ('users', NULL, 'garbage(', 0);
         INSERT INTO users VALUES (1, 'ann');
         INSERT INTO posts VALUES (1, 1, 'hello');
         COMMIT;",
    )
    .unwrap();
    denorm.wait_for_position(committed_position(&db));
    denorm.wait_for_log("cannot be decoded; it is skipped");
    let (_, cards) = denorm.get("/views/post_cards");
    assert_eq!(cards, serde_json::json!([{"post_id": 1, "title": "hello", "author": "ann"}]));
    let (_, views) = denorm.get("/views");
    let by_name = |n: &str| views.as_array().unwrap().iter().find(|v| v["name"] == n).unwrap().clone();
    assert_eq!(by_name("post_cards")["undecodable_changes"], 1, "{views}");
    assert_eq!(by_name("post_counts")["undecodable_changes"], 0, "{views}");
    let (status, health) = denorm.get("/health");
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    let (_, metrics) = get_text(&format!("{}/metrics", denorm.base));
    assert!(metrics.contains("denorm_changes_undecodable_total{table=\"users\"} 1"), "{metrics}");
}

/// A declared key that turns out not unique fails that view with the
/// reason (keeping its last good rows); the other views go on.
#[test]
fn a_declared_key_violated_at_runtime_fails_only_that_view() {
    let project = Project::new(
        SCHEMA,
        "CREATE MATERIALIZED VIEW by_title WITH (key = 'title') AS SELECT title, id FROM posts;\n\
         CREATE MATERIALIZED VIEW post_counts AS SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id;\n",
    );
    let db = project.connect();
    let denorm = Denorm::start(&project.config);
    db.execute_batch("INSERT INTO posts VALUES (1, 1, 'hello');").unwrap();
    denorm.wait_for_position(committed_position(&db));
    db.execute_batch("INSERT INTO posts VALUES (2, 1, 'hello');").unwrap();
    let views = denorm.wait_for(|v| v.as_array().unwrap().iter().any(|v| v["status"] == "failed"));
    let by_title = views.as_array().unwrap().iter().find(|v| v["name"] == "by_title").unwrap();
    assert!(by_title["error"].as_str().unwrap().contains("key violation"), "{views}");
    denorm.wait_for_position(committed_position(&db));
    let (_, counts) = denorm.get("/views/post_counts");
    assert_eq!(counts, serde_json::json!([{"author_id": 1, "n": 2}]));
    let (status, _) = denorm.get("/views/by_title");
    assert_eq!(status, 503);
}
