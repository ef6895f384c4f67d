//! The PostgreSQL wire protocol of the real binary with psycopg, a real
//! driver: parameterized queries (text and binary results, unnamed and
//! prepared statements) over views of a SQLite source, each compared with
//! the same SELECT run by SQLite on the source; read-your-writes with
//! `SET denorm.min_position`; an unsupported query's SQLSTATE.
//!
//! psycopg runs in the virtualenv `scripts/test` installs; its python is
//! `DENORM_TEST_PSYCOPG_PYTHON` (default `target/wire-venv/bin/python`).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::{committed_position, Denorm, Project};
use rusqlite::types::ValueRef;
use serde_json::{json, Value as Json};

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, karma INTEGER, score REAL);
INSERT INTO users VALUES (1, 'ada', 10, 1.5), (2, 'bob', NULL, 2.25), (3, 'cy', 30, NULL),
  (4, 'ada', 40, 0.1), (5, NULL, 5, -3.0), (6, 'dee', 12, 1e20), (7, 'it''s', 7, 2.0);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW users_v AS SELECT id, name, karma, score FROM users;
CREATE MATERIALIZED VIEW karma_by_name AS SELECT name, COUNT(*) AS n, SUM(karma) AS total FROM users GROUP BY name;
";

/// Runs each step with psycopg and prints the results as JSON: a query's
/// rows four times (text/binary results × unnamed/prepared statement), a
/// `set` as null, an `error` step as its SQLSTATE.
const CLIENT: &str = r#"
import json, sys, psycopg
spec = json.load(sys.stdin)
out = []
with psycopg.connect(host=spec["host"], port=spec["port"], user="app", dbname="denorm") as conn:
    for step in spec["steps"]:
        if "set" in step:
            conn.execute(step["set"])
            out.append(None)
        elif "error" in step:
            try:
                conn.execute(step["error"])
                out.append("no error")
            except psycopg.Error as e:
                out.append(e.sqlstate)
                conn.rollback()
        else:
            results = []
            for binary in (False, True):
                for prepare in (False, True):
                    with conn.cursor(binary=binary) as cur:
                        cur.execute(step["sql"], step["params"], prepare=prepare)
                        results.append([list(r) for r in cur.fetchall()])
            out.append(results)
print(json.dumps(out))
"#;

fn python() -> PathBuf {
    std::env::var_os("DENORM_TEST_PSYCOPG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wire-venv/bin/python"))
}

/// Runs `steps` with psycopg against the wire protocol at `port`.
fn psycopg(port: u16, steps: &[Json]) -> Vec<Json> {
    let python = python();
    let mut child = Command::new(&python)
        .args(["-c", CLIENT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} ({e}): scripts/test installs psycopg there", python.display()));
    let spec = json!({"host": "127.0.0.1", "port": port, "steps": steps});
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "psycopg failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The rows SQLite gives for `sql` with `params`, as JSON values.
fn sqlite_rows(conn: &rusqlite::Connection, sql: &str, params: &[Json]) -> Json {
    let params: Vec<rusqlite::types::Value> = params
        .iter()
        .map(|p| match p {
            Json::Number(n) if n.is_i64() => rusqlite::types::Value::Integer(n.as_i64().unwrap()),
            Json::Number(n) => rusqlite::types::Value::Real(n.as_f64().unwrap()),
            Json::String(s) => rusqlite::types::Value::Text(s.clone()),
            _ => rusqlite::types::Value::Null,
        })
        .collect();
    let mut statement = conn.prepare(sql).unwrap();
    let n = statement.column_count();
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), |row| {
            Ok((0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Integer(i) => json!(i),
                    ValueRef::Real(x) => json!(x),
                    ValueRef::Text(t) => json!(String::from_utf8_lossy(t)),
                    _ => Json::Null,
                })
                .collect::<Vec<_>>())
        })
        .unwrap()
        .map(Result::unwrap)
        .collect::<Vec<_>>();
    json!(rows)
}

fn start() -> (Project, Denorm, u16) {
    let project = Project::new(SCHEMA, VIEWS);
    let config = std::fs::read_to_string(&project.config).unwrap();
    std::fs::write(&project.config, format!("{config}pg_listen = \"127.0.0.1:0\"\n")).unwrap();
    let mut denorm = Denorm::start(&project.config);
    let line = denorm.wait_for_log("serving the PostgreSQL wire protocol on ");
    let address = line.split("protocol on ").nth(1).unwrap().split_whitespace().next().unwrap();
    let port = address.rsplit(':').next().unwrap().parse().unwrap();
    (project, denorm, port)
}

#[test]
fn psycopg_reads_views_like_sqlite_reads_the_source() {
    let (project, denorm, port) = start();
    let conn = project.connect();
    // (PostgreSQL text for psycopg, the same SELECT for SQLite, parameters)
    let queries: Vec<(&str, &str, Json)> = vec![
        (
            "SELECT id, name, karma, score FROM users_v WHERE id = %s",
            "SELECT id, name, karma, score FROM users WHERE id = ?",
            json!([3]),
        ),
        (
            "SELECT * FROM users_v WHERE karma >= %s AND name IS NOT NULL ORDER BY karma DESC, id LIMIT %s",
            "SELECT * FROM users WHERE karma >= ? AND name IS NOT NULL ORDER BY karma DESC, id LIMIT ?",
            json!([10, 3]),
        ),
        (
            "SELECT name, id FROM users_v WHERE name = %s ORDER BY id",
            "SELECT name, id FROM users WHERE name = ? ORDER BY id",
            json!(["ada"]),
        ),
        ("SELECT name FROM users_v WHERE name = %s", "SELECT name FROM users WHERE name = ?", json!(["it's"])),
        (
            "SELECT id FROM users_v WHERE score IS NULL ORDER BY id",
            "SELECT id FROM users WHERE score IS NULL ORDER BY id",
            json!([]),
        ),
        (
            "SELECT id, score FROM users_v WHERE score < %s AND id IN (%s, %s, %s) ORDER BY id",
            "SELECT id, score FROM users WHERE score < ? AND id IN (?, ?, ?) ORDER BY id",
            json!([2.5, 1, 2, 4]),
        ),
        (
            "SELECT id FROM users_v WHERE name <> %s ORDER BY id OFFSET %s",
            "SELECT id FROM users WHERE name <> ? ORDER BY id LIMIT -1 OFFSET ?",
            json!(["ada", 2]),
        ),
        ("SELECT score FROM users_v WHERE id = %s", "SELECT score FROM users WHERE id = ?", json!([6])),
        (
            "SELECT n, total FROM karma_by_name WHERE name = %s",
            "SELECT COUNT(*), SUM(karma) FROM users WHERE name = ? GROUP BY name",
            json!(["ada"]),
        ),
        (
            "SELECT n, total FROM karma_by_name WHERE name IS NULL",
            "SELECT COUNT(*), SUM(karma) FROM users WHERE name IS NULL",
            json!([]),
        ),
        ("SELECT id FROM users_v WHERE id = %s", "SELECT id FROM users WHERE id = ?", json!([Json::Null])),
    ];
    let steps: Vec<Json> = queries.iter().map(|(pg, _, params)| json!({"sql": pg, "params": params})).collect();
    let results = psycopg(port, &steps);
    assert_eq!(results.len(), queries.len());
    for ((pg, sqlite, params), result) in queries.iter().zip(&results) {
        let want = sqlite_rows(&conn, sqlite, params.as_array().unwrap());
        assert_eq!(result.as_array().unwrap().len(), 4);
        for (i, got) in result.as_array().unwrap().iter().enumerate() {
            assert_eq!(got, &want, "{pg} {params} (variant {i}: binary={}, prepared={})", i >= 2, i % 2 == 1);
        }
    }

    // A list parameter as psycopg sends it, in text (%s) and binary (%b).
    let want = sqlite_rows(
        &conn,
        "SELECT id, name FROM users WHERE id IN (?, ?, ?) ORDER BY id",
        &[json!(1), json!(3), json!(99)],
    );
    let steps: Vec<Json> = ["%s", "%b"]
        .iter()
        .map(|p| json!({"sql": format!("SELECT id, name FROM users_v WHERE id = ANY({p}) ORDER BY id"), "params": [[1, 3, 99]]}))
        .collect();
    for (step, result) in steps.iter().zip(psycopg(port, &steps)) {
        for got in result.as_array().unwrap() {
            assert_eq!(got, &want, "{step}");
        }
    }

    // Read-your-writes: the write's position, then a read that waits for it.
    conn.execute("INSERT INTO users VALUES (8, 'eve', 1, 0.5)", []).unwrap();
    let position = committed_position(&conn);
    let steps = [
        json!({"set": format!("SET denorm.min_position = '{position}'")}),
        json!({"sql": "SELECT name FROM users_v WHERE id = %s", "params": [8]}),
        json!({"error": "SELECT count(*) FROM users_v"}),
        json!({"error": "SELECT * FROM users_v WHERE id = 1 OR id = 2"}),
        json!({"error": "SELECT * FROM nope"}),
    ];
    let results = psycopg(port, &steps);
    assert_eq!(results[1][0], json!([["eve"]]), "{results:?}");
    assert_eq!(results[2..], [json!("0A000"), json!("0A000"), json!("42P01")]);
    drop(denorm);
}

/// A missing TLS certificate stops `denorm run` before it serves, naming
/// the file and the settings.
#[test]
fn unreadable_tls_files_are_refused_at_start() {
    let project = Project::new(SCHEMA, VIEWS);
    let config = std::fs::read_to_string(&project.config).unwrap();
    let tls = "pg_listen = \"127.0.0.1:0\"\npg_tls_cert = \"missing.crt\"\npg_tls_key = \"missing.key\"\n";
    std::fs::write(&project.config, format!("{config}{tls}")).unwrap();
    let (code, log) = Denorm::spawn(&project.config).exit();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("missing.crt") && log.contains("pg_tls_cert"), "{log}");
}
