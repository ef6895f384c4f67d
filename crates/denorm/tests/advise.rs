//! `denorm advise` end to end on SQLite (`--queries`) and on the PostgreSQL
//! that `scripts/test` starts (`pg_stat_statements`): a synthetic
//! application with a hot joined read, a write-heavy table and a join whose
//! fan-out is huge. advise must rank the hot read first, advise against the
//! write-heavy one, suggest a feed for the fan-out one; every view it writes
//! must pass `denorm check`, and once running answer the original query's
//! rows for sampled parameters.

mod common;
mod pg_project;

use std::path::Path;
use std::process::Command;

use std::time::Duration;

use common::{eventually, page_rows, Denorm, Project};
use denorm_testkit::{same_rows, SqliteReference};
use pg_project::PgProject;
use serde_json::Value as Json;

/// The application's schema: a hot read over posts ⋈ users ⋈ comments,
/// events (written all the time, rarely read), follows ⋈ posts (10 authors
/// with 1,000 followers each: a post is copied 1,000 times).
const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL, title TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE comments (id INTEGER PRIMARY KEY, post_id INTEGER NOT NULL, body TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at INTEGER NOT NULL);
CREATE TABLE follows (follower_id INTEGER NOT NULL, followee_id INTEGER NOT NULL, PRIMARY KEY (follower_id, followee_id));
";

/// Rows for the schema, as SQL (SQLite and PostgreSQL both run it).
fn data() -> String {
    let mut sql = String::from("INSERT INTO users (id, name) VALUES ");
    sql.push_str(&(1..=1000).map(|i| format!("({i}, 'user {i}')")).collect::<Vec<_>>().join(", "));
    sql.push_str(";\nINSERT INTO posts (id, author_id, title, created_at) VALUES ");
    sql.push_str(
        &(1..=200)
            .map(|i| format!("({i}, {}, 'post {i}', {})", i % 10 + 1, 1000 + i * 7 % 97))
            .collect::<Vec<_>>()
            .join(", "),
    );
    sql.push_str(";\nINSERT INTO comments (id, post_id, body) VALUES ");
    sql.push_str(&(1..=20000).map(|i| format!("({i}, {}, 'c')", i % 200 + 1)).collect::<Vec<_>>().join(", "));
    sql.push_str(";\nINSERT INTO events (id, kind, at) VALUES ");
    sql.push_str(&(1..=500).map(|i| format!("({i}, 'k{}', {i})", i % 5)).collect::<Vec<_>>().join(", "));
    sql.push_str(";\nINSERT INTO follows (follower_id, followee_id) VALUES ");
    let follows: Vec<String> = (1..=10).flat_map(|a| (1..=1000).map(move |f| format!("({f}, {a})"))).collect();
    sql.push_str(&follows.join(", "));
    sql.push_str(";\n");
    sql
}

const HOT: &str = "SELECT p.title, u.name AS author, count(c.id) AS comments FROM posts p \
                   JOIN users u ON u.id = p.author_id LEFT JOIN comments c ON c.post_id = p.id \
                   WHERE p.id = $1 GROUP BY p.id, p.title, u.name";
const EVENTS: &str = "SELECT count(*) AS n FROM events WHERE kind = $1";
const FEED: &str = "SELECT p.id AS post_id, p.title, p.created_at FROM follows f \
                    JOIN posts p ON p.author_id = f.followee_id WHERE f.follower_id = $1 \
                    ORDER BY p.created_at DESC, p.id DESC LIMIT 20";

/// The `--queries` file: SQLite's `?` placeholders, with call counts.
fn queries_file() -> String {
    let q = |sql: &str| sql.replace("$1", "?");
    format!(
        "-- calls: 50000\n{};\n-- calls: 100\n{};\n-- calls: 200000\nINSERT INTO events (kind, at) VALUES (?, ?);\n\
         -- calls: 2000\n{};\n-- calls: 40\nINSERT INTO posts (author_id, title, created_at) VALUES (?, ?, ?);\n\
         -- calls: 300\nINSERT INTO comments (post_id, body) VALUES (?, ?);\n",
        q(HOT),
        q(EVENTS),
        q(FEED)
    )
}

fn advise(args: &[&str], dir: &Path) -> Vec<Json> {
    let output = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .arg("advise")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("denorm advise runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "denorm advise failed: {}{stdout}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str::<Json>(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}")).as_array().unwrap().clone()
}

/// The advice on the query that contains `needle`.
fn on<'a>(advice: &'a [Json], needle: &str) -> &'a Json {
    advice
        .iter()
        .find(|a| a["query"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no advice on a query with {needle}: {advice:?}"))
}

/// The checks shared by both sources: ranks and verdicts.
fn check_verdicts(advice: &[Json]) {
    let hot = on(advice, "count(c.id)");
    assert_eq!(hot["rank"], 1, "the hot read ranks first: {advice:#?}");
    assert_eq!(hot["verdict"], "denormalize", "{hot:#}");
    assert!(hot["reason"].as_str().unwrap().contains("3-table join"), "{hot:#}");
    let events = on(advice, "FROM events");
    assert_eq!(events["verdict"], "leave_normalized", "{events:#}");
    assert!(events["reason"].as_str().unwrap().contains("writes dominate"), "{events:#}");
    let feed = on(advice, "FROM follows");
    assert_eq!(feed["verdict"], "feed", "{feed:#}");
    assert!(feed["reason"].as_str().unwrap().contains("use a feed with fanout_limit"), "{feed:#}");
    assert!(feed["copies_per_write"].as_f64().unwrap() >= 500.0, "{feed:#}");
    assert!(feed["view"].as_str().unwrap().contains("partition_by"), "{feed:#}");
}

#[test]
fn advise_on_sqlite_ranks_verdicts_and_writes_views_that_answer_the_queries() {
    let project = Project::new(SCHEMA, "");
    project.connect().execute_batch(&data()).unwrap();
    let dir = project.dir.path();
    std::fs::write(dir.join("queries.sql"), queries_file()).unwrap();
    std::fs::remove_file(dir.join("views.sql")).unwrap();
    let advice =
        advise(&["--source", "sqlite://app.db", "--queries", "queries.sql", "--json", "--write", "views.sql"], dir);
    check_verdicts(&advice);

    // The written views pass `denorm check`.
    let check =
        Command::new(env!("CARGO_BIN_EXE_denorm")).args(["check", "--config"]).arg(&project.config).output().unwrap();
    assert!(check.status.success(), "denorm check: {}", String::from_utf8_lossy(&check.stderr));
    let written = std::fs::read_to_string(dir.join("views.sql")).unwrap();
    assert_eq!(written.matches("CREATE MATERIALIZED VIEW").count(), 2, "{written}");

    // Running, each view answers the original query for sampled parameters.
    let denorm = Denorm::start(&project.config);
    let reference = SqliteReference { connection: project.connect() };
    for a in advice.iter().filter(|a| a["view"].is_string()) {
        let name = a["view_name"].as_str().unwrap();
        let read = a["read"].as_str().unwrap();
        let column = a["params"][0]["column"].as_str().unwrap();
        let query = a["query"].as_str().unwrap().replace('?', "$1");
        for value in [1, 2, 3, 7, 150] {
            let sql = query.replace("$1", &value.to_string());
            let (columns, expected) = reference.query(&sql).unwrap();
            let path_query = read.split_once('?').unwrap().1.replace("$1", &value.to_string());
            let select = format!("select={}", columns.join(","));
            let got = page_rows(&denorm, name, &format!("{path_query}&{select}"), &columns, &[]);
            if let Err(e) = same_rows(got, expected) {
                panic!("{name} for {column} = {value}: {e:?}");
            }
        }
    }
    denorm.terminate();
}

/// The same application on PostgreSQL: its statements run for real, so
/// pg_stat_statements and pg_stat_user_tables hold the workload.
#[test]
fn advise_on_postgres_reads_pg_stat_statements() {
    let pg_schema = SCHEMA.replace("INTEGER PRIMARY KEY", "bigint PRIMARY KEY").replace("INTEGER", "bigint");
    let project = PgProject::new("advise", &pg_schema, "");
    project.client().batch_execute(&format!("{}\nANALYZE;", data())).unwrap();
    let mut client = project.client();
    // The load's statistics reach pg_stat_user_tables once its session has
    // ended; only then can they be reset.
    let inserted = |client: &mut postgres::Client, table: &str| -> i64 {
        client.query_one("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = $1", &[&table]).unwrap().get(0)
    };
    eventually(Duration::from_millis(50), || match inserted(&mut client, "comments") {
        20000.. => Ok(()),
        n => Err(format!("the load is not counted yet: {n}")),
    });
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset(); SELECT pg_stat_reset();")
        .expect("pg_stat_statements is preloaded (scripts/postgres sets shared_preload_libraries)");
    {
        let mut app = project.client();
        let hot = app.prepare(HOT).unwrap();
        let events = app.prepare(EVENTS).unwrap();
        let feed = app.prepare(FEED).unwrap();
        for i in 0..600i64 {
            app.query(&hot, &[&(i % 200 + 1)]).unwrap();
            if i % 20 == 0 {
                app.query(&events, &[&format!("k{}", i % 5)]).unwrap();
            }
            if i % 5 == 0 {
                app.query(&feed, &[&(i % 1000 + 1)]).unwrap();
            }
        }
        app.batch_execute(
            "INSERT INTO events (id, kind, at) SELECT g, 'k' || (g % 5), g FROM generate_series(1000, 6000) g;
             INSERT INTO comments (id, post_id, body) SELECT g, g % 200 + 1, 'new' FROM generate_series(30000, 30020) g;",
        )
        .unwrap();
    }
    // The statistics collector has the writes once the session is gone.
    eventually(Duration::from_millis(50), || match inserted(&mut client, "events") {
        5000.. => Ok(()),
        n => Err(format!("the inserts into events are not counted yet: {n}")),
    });
    let dir = project.dir.path();
    std::fs::remove_file(dir.join("views.sql")).unwrap();
    let advice = advise(&["--source", &project.url, "--json", "--write", "views.sql"], dir);
    check_verdicts(&advice);
    let hot = on(&advice, "count(c.id)");
    assert!(hot["p99_ms"].as_f64().unwrap() > 0.0 && hot["calls"].as_f64().unwrap() == 600.0, "{hot:#}");

    for a in &advice {
        for statement in a["prerequisites"].as_array().unwrap() {
            client.batch_execute(statement.as_str().unwrap()).unwrap();
        }
    }
    let check = project.denorm(&["check"]);
    assert!(check.status.success(), "denorm check: {}", String::from_utf8_lossy(&check.stderr));

    let denorm = Denorm::start(&project.config);
    for a in advice.iter().filter(|a| a["view"].is_string()) {
        let name = a["view_name"].as_str().unwrap();
        let read = a["read"].as_str().unwrap();
        let (_, listed) = denorm.get("/views");
        let view = listed.as_array().unwrap().iter().find(|v| v["name"] == name).unwrap().clone();
        let types = pg_project::column_types(&view);
        for value in [1, 2, 3, 7, 150] {
            // pg_stat_statements wrote the LIMIT's 20 as $2.
            let bind = |text: &str| text.replace("$1", &value.to_string()).replace("$2", "20");
            let sql = bind(a["query"].as_str().unwrap());
            let (columns, expected) = pg_project::reference(&mut client, &sql, &types);
            let path_query = bind(read.split_once('?').unwrap().1);
            let got = page_rows(&denorm, name, &format!("{path_query}&select={}", columns.join(",")), &columns, &[]);
            let got = got.into_iter().map(|r| r.into_iter().collect()).collect();
            if let Err(e) = same_rows(got, expected) {
                panic!("{name} for $1 = {value}: {e:?}");
            }
        }
    }
    denorm.terminate();
}

/// What bad input gets: a message saying what to do, exit 1.
#[test]
fn advise_refuses_with_what_to_do() {
    let project = Project::new(SCHEMA, "");
    let dir = project.dir.path();
    let run = |args: &[&str]| {
        let output =
            Command::new(env!("CARGO_BIN_EXE_denorm")).arg("advise").args(args).current_dir(dir).output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    assert!(run(&["--source", "sqlite://app.db"]).contains("pass --queries FILE"));
    assert!(run(&["--source", "sqlite://app.db", "--queries", "missing.sql"]).contains("cannot read missing.sql"));
    std::fs::write(dir.join("bad.sql"), "-- calls: lots\nSELECT 1;").unwrap();
    assert!(run(&["--source", "sqlite://app.db", "--queries", "bad.sql"]).contains("number of calls"));
    assert!(run(&["--source", "mysql://x"]).contains("invalid --source"));
    assert!(run(&["--source", "sqlite://none.db", "--queries", "bad.sql"]).contains("does not exist"));
}
