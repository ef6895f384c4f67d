//! A PostgreSQL database, replication slot and publication of a test's own,
//! with a views file and a config pointing at them; all dropped at the end.
//! Shared by the tests that run `denorm` against the server `scripts/test`
//! starts.

#![allow(dead_code)]

pub mod server;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use denorm_testkit::same_rows;
use denorm_types::{Datum, Value};
use postgres::{Client, NoTls, SimpleQueryMessage};
use serde_json::Value as Json;

use crate::common::{eventually, Denorm};

pub fn server_url() -> String {
    std::env::var("DENORM_TEST_POSTGRES_URL").expect(
        "DENORM_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a server with wal_level=logical; \
         run `export \"$(scripts/postgres start | tail -n1)\"` (scripts/test does this)",
    )
}

/// `url` with another database.
pub fn url_for(url: &str, database: &str) -> String {
    let (prefix, _) = url.rsplit_once('/').expect("a URL ending in /database");
    format!("{prefix}/{database}")
}

pub struct PgProject {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub database: String,
    pub url: String,
    pub slot: String,
}

impl PgProject {
    /// `name` must be unique among the tests run against the server: it
    /// names the database (`denorm_<name>`), the slot and the publication.
    pub fn new(name: &str, schema: &str, views: &str) -> PgProject {
        PgProject::with_options(name, schema, views, "")
    }

    /// As [`PgProject::new`], with `options` added to the config's
    /// `[source]` table.
    pub fn with_options(name: &str, schema: &str, views: &str, options: &str) -> PgProject {
        PgProject::with_ctype(name, schema, views, options, "C")
    }

    /// As [`PgProject::with_options`], the database created with
    /// `LC_CTYPE ctype` (the collation stays "C").
    pub fn with_ctype(name: &str, schema: &str, views: &str, options: &str, ctype: &str) -> PgProject {
        let database = format!("denorm_{name}");
        let slot = database.clone();
        let mut admin = Client::connect(&server_url(), NoTls).expect("the test server accepts connections");
        drop_slot(&mut admin, &slot);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).unwrap();
        // The "C" collation: text compares bytewise, as in denorm.
        admin
            .batch_execute(&format!("CREATE DATABASE {database} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE '{ctype}'"))
            .unwrap();
        let url = url_for(&server_url(), &database);
        Client::connect(&url, NoTls).unwrap().batch_execute(schema).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("views.sql"), views).unwrap();
        let config = dir.path().join("denorm.toml");
        std::fs::write(
            &config,
            format!(
                "views = [\"views.sql\"]\n[source]\nurl = \"{url}\"\nslot = \"{slot}\"\npublication = \"{slot}\"\n\
                 {options}[server]\nlisten = \"127.0.0.1:0\"\n"
            ),
        )
        .unwrap();
        PgProject { dir, config, database, url, slot }
    }

    /// A connection whose session renders timestamptz in UTC, as denorm does.
    pub fn client(&self) -> Client {
        let mut client = Client::connect(&self.url, NoTls).unwrap();
        client.batch_execute("SET TimeZone = 'UTC'").unwrap();
        client
    }

    /// Runs the `denorm` binary with `args` and this project's config.
    pub fn denorm(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_denorm")).args(args).arg("--config").arg(&self.config).output().unwrap()
    }
}

impl Drop for PgProject {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&server_url(), NoTls) {
            drop_slot(&mut admin, &self.slot);
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database));
        }
    }
}

/// Drops a slot, ending a walsender that still holds it.
pub fn drop_slot(admin: &mut Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = admin.query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        );
        if result.is_ok() || Instant::now() > deadline {
            return;
        }
        let _ = admin.query(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = $1 AND active_pid IS NOT NULL",
            &[&slot],
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// --- comparing views with PostgreSQL ----------------------------------------

/// PostgreSQL's rows for `select`, typed by the view's column types, and
/// its column names.
pub fn reference(
    client: &mut Client,
    select: &str,
    types: &BTreeMap<String, String>,
) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut names = Vec::new();
    let mut rows = Vec::new();
    for message in client.simple_query(select).unwrap_or_else(|e| panic!("{select}: {e:?}")) {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                names = columns.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len())
                    .map(|i| {
                        let ty = types.get(row.columns()[i].name()).map_or("text", String::as_str);
                        match (row.get(i), ty) {
                            (None, _) => Datum::Null,
                            (Some(v), "integer") => Datum::Int(v.parse().unwrap()),
                            (Some(v), "double" | "numeric") => Datum::Float(v.parse().unwrap()),
                            (Some(v), "boolean") => Datum::Bool(v == "t"),
                            (Some(v), "json") => Datum::owned_text(canonical(&serde_json::from_str(v).unwrap())),
                            (Some(v), _) => Datum::owned_text(v.to_string()),
                        }
                    })
                    .collect();
                rows.push(values);
            }
            _ => {}
        }
    }
    (names, rows)
}

/// A view's `column_types` as `/views` lists them.
pub fn column_types(view: &Json) -> BTreeMap<String, String> {
    view["column_types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// A JSON value from the API as a datum.
pub fn datum(json: &Json) -> Value {
    match json {
        Json::Null => Datum::Null,
        Json::Bool(b) => Datum::Bool(*b),
        Json::Number(n) => n.as_i64().map_or_else(|| Datum::Float(n.as_f64().unwrap()), Datum::Int),
        Json::String(s) => Datum::owned_text(s.clone()),
        // An embedded document (a json column).
        document => Datum::owned_text(canonical(document)),
    }
}

/// JSON text with object keys sorted, so that documents compare by content.
pub fn canonical(json: &Json) -> String {
    match json {
        Json::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}:{}", Json::from(k.as_str()), canonical(v))).collect();
            format!("{{{}}}", fields.join(","))
        }
        Json::Array(items) => format!("[{}]", items.iter().map(canonical).collect::<Vec<_>>().join(",")),
        scalar => scalar.to_string(),
    }
}

/// One comparison of every listed view (but `except`) with PostgreSQL;
/// the first difference, if any.
pub fn compare(denorm: &Denorm, client: &mut Client, views: &[(&str, &str)], except: &[&str]) -> Result<(), String> {
    let (_, listed) = denorm.get("/views");
    for (name, select) in views.iter().filter(|(name, _)| !except.contains(name)) {
        let view = listed.as_array().unwrap().iter().find(|v| v["name"] == *name).unwrap();
        if view["status"] != "ok" {
            return Err(format!("view {name} is not ok: {view}"));
        }
        let columns: Vec<String> =
            view["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let types = column_types(view);
        let (names, want) = reference(client, select, &types);
        assert_eq!(columns, names, "columns of {name}: denorm names them as PostgreSQL does");
        let (status, rows) = denorm.get(&format!("/views/{name}"));
        assert_eq!(status, 200, "GET /views/{name}: {rows}");
        let got: Vec<Vec<Value>> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|row| columns.iter().map(|c| datum(&row[c.as_str()])).collect())
            .collect();
        if let Err(m) = same_rows(got.clone(), want.clone()) {
            let (got, want) = (debug_rows(&got), debug_rows(&want));
            let only_denorm: Vec<&String> = got.iter().filter(|r| !want.contains(r)).collect();
            let only_postgres: Vec<&String> = want.iter().filter(|r| !got.contains(r)).collect();
            return Err(format!(
                "view {name} at position {} differs from PostgreSQL: {}\nonly in denorm: {only_denorm:?}\n\
                 only in PostgreSQL: {only_postgres:?}",
                view["position"], m.first_difference
            ));
        }
    }
    Ok(())
}

/// PostgreSQL's rows of `select` as `row_to_json` documents, each read by
/// `read` (how the test compares numbers), sorted.
pub fn json_reference(client: &mut Client, select: &str, read: fn(&str) -> Json) -> Vec<Json> {
    let rows = client
        .query(&format!("SELECT row_to_json(t)::text FROM ({select}) AS t"), &[])
        .unwrap_or_else(|e| panic!("{select}: {e:?}"));
    let mut out: Vec<Json> = rows.iter().map(|r| read(&r.get::<_, String>(0))).collect();
    out.sort_by_key(|v| v.to_string());
    out
}

/// denorm's answer to `GET path`: the status and, when 200, the rows read
/// by `read`, sorted (else the body as one string).
pub fn json_served(denorm: &Denorm, path: &str, read: fn(&str) -> Json) -> (u16, Vec<Json>) {
    let (status, body) = crate::common::get_text(&format!("{}{path}", denorm.base));
    if status != 200 {
        return (status, vec![Json::String(body)]);
    }
    let Json::Array(mut rows) = read(&body) else { panic!("{body}") };
    rows.sort_by_key(|v| v.to_string());
    (status, rows)
}

/// One comparison of every view's JSON rows with PostgreSQL's
/// `row_to_json` of its SELECT (both read by `read`); the first difference.
pub fn json_compare(
    denorm: &Denorm,
    client: &mut Client,
    views: &[(&str, &str)],
    read: fn(&str) -> Json,
) -> Result<(), String> {
    for (name, select) in views {
        let (status, got) = json_served(denorm, &format!("/views/{name}"), read);
        if status != 200 {
            return Err(format!("GET /views/{name}: {status} {got:?}"));
        }
        let want = json_reference(client, select, read);
        if got != want {
            let only_denorm: Vec<&Json> = got.iter().filter(|r| !want.contains(r)).collect();
            let only_postgres: Vec<&Json> = want.iter().filter(|r| !got.contains(r)).collect();
            return Err(format!(
                "view {name} differs from PostgreSQL\nonly in denorm: {only_denorm:?}\nonly in PostgreSQL: {only_postgres:?}"
            ));
        }
    }
    Ok(())
}

pub fn debug_rows(rows: &[Vec<Value>]) -> Vec<String> {
    rows.iter().map(|r| format!("{r:?}")).collect()
}

/// Every view (but `except`) equals PostgreSQL's answer to its SELECT once
/// denorm has caught up with what is committed (the writes are done: the
/// reference no longer moves).
pub fn assert_views_equal(denorm: &Denorm, client: &mut Client, views: &[(&str, &str)], except: &[&str]) {
    eventually(Duration::from_millis(20), || compare(denorm, client, views, except));
}

/// JSON text with every number turned into the string `"#<its text>"`, so
/// that parsed documents compare numbers by their exact digits and scale
/// (`1.50` ≠ `1.5`), everything else structurally.
pub fn exact_numbers(text: &str) -> Json {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if c == '-' || c.is_ascii_digit() {
            out.push_str("\"#");
            out.push(c);
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E' | '+' | '-') {
                    out.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push('"');
        } else {
            out.push(c);
        }
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}
