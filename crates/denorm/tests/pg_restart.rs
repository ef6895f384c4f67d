//! The PostgreSQL server restarts under a running `denorm run` and a writer:
//! `pg_ctl restart -m fast`, `-m immediate`, and a stop of a few seconds.
//! denorm keeps running (no restart of its own, no new snapshot: the stream
//! resumes from the slot), `/health` is degraded and
//! `denorm_source_connected` 0 while the server is down, and the views
//! converge to exactly PostgreSQL's rows afterwards.
//!
//! A dropped slot costs one new snapshot; a definite error (the
//! publication dropped under denorm, credentials refused) stops it with the
//! fix in the message instead.
//!
//! These tests restart the server of `DENORM_TEST_POSTGRES_URL` (the one
//! `scripts/postgres` runs, found by its port): they live in a test binary
//! of their own, so no other test binary's connections see the restarts,
//! and take [`SERVER`] so that they restart it one at a time.

mod common;
mod pg_project;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{get_text, Denorm, PATIENCE};
use pg_project::server::{pg_ctl, ServerBack, Writer};
use pg_project::{assert_views_equal, server_url, PgProject};
use postgres::{Client, NoTls};

/// One test at a time: the others restart the server.
static SERVER: Mutex<()> = Mutex::new(());

const SCHEMA: &str = "
CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance integer);
CREATE TABLE transfers (id bigint PRIMARY KEY, account_id integer, amount integer);
ALTER TABLE accounts REPLICA IDENTITY FULL;
ALTER TABLE transfers REPLICA IDENTITY FULL;
INSERT INTO accounts SELECT i, 'owner' || (i % 7), i * 10 FROM generate_series(1, 50) i;
INSERT INTO transfers SELECT i, i % 50 + 1, i % 100 FROM generate_series(1, 200) i;
";

const VIEWS: &[(&str, &str)] = &[
    (
        "balances",
        "SELECT a.id, a.owner, a.balance, COUNT(t.id) AS transfers, SUM(t.amount) AS total \
         FROM accounts a LEFT JOIN transfers t ON t.account_id = a.id GROUP BY a.id, a.owner, a.balance",
    ),
    ("owners", "SELECT owner, COUNT(*) AS accounts, SUM(balance) AS total FROM accounts GROUP BY owner"),
    ("large_transfers", "SELECT id, account_id, amount FROM transfers WHERE amount > 50"),
];

fn views_sql() -> String {
    let mut sql = String::new();
    for (i, (name, select)) in VIEWS.iter().enumerate() {
        // One view with a staleness budget: within_sla turns false while the
        // server is down long enough.
        let with = if i == 0 { " WITH (max_staleness = '1s')" } else { "" };
        sql.push_str(&format!("CREATE MATERIALIZED VIEW {name}{with} AS {select};\n"));
    }
    sql
}

// --- the tests --------------------------------------------------------------

fn metric(denorm: &Denorm, name: &str) -> Option<String> {
    let (_, text) = get_text(&format!("{}/metrics", denorm.base));
    text.lines().find(|l| l.starts_with(name)).map(|l| l.rsplit(' ').next().unwrap().to_string())
}

/// Waits until `check` holds for `/health`'s JSON.
fn wait_health(denorm: &Denorm, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, health) = denorm.get("/health");
        if check(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "/health never became {what}: {health}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts denorm and a writer, runs `outage` on the server, then checks
/// that denorm survived without a new snapshot and converges.
fn survives(name: &str, outage: impl FnOnce(&Denorm)) {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let _back = ServerBack;
    let project = PgProject::new(name, SCHEMA, &views_sql());
    let mut denorm = Denorm::start(&project.config);
    assert_eq!(metric(&denorm, "denorm_source_connected").as_deref(), Some("1"));
    let writer = Writer::start(project.url.clone(), 7);
    std::thread::sleep(Duration::from_millis(500));

    outage(&denorm);

    std::thread::sleep(Duration::from_millis(500));
    let committed = writer.finish();
    assert!(committed > 0, "the writer committed nothing");
    assert!(denorm.child.try_wait().unwrap().is_none(), "denorm exited:\n{}", denorm.lines.join("\n"));
    denorm.wait_for_log("source reachable again");
    wait_health(&denorm, "ok", |h| h["status"] == "ok");
    assert_eq!(metric(&denorm, "denorm_source_connected").as_deref(), Some("1"));
    assert_views_equal(&denorm, &mut project.client(), VIEWS, &[]);
    while let Ok(line) = denorm.log.try_recv() {
        denorm.lines.push(line);
    }
    let snapshots = denorm.lines.iter().filter(|l| l.contains("snapshot published")).count();
    assert_eq!(snapshots, 1, "the stream resumed; no new snapshot:\n{}", denorm.lines.join("\n"));
    assert!(!denorm.lines.iter().any(|l| l.contains("did not expect")), "{}", denorm.lines.join("\n"));
    assert_eq!(denorm.terminate(), Some(0));
}

#[test]
fn a_fast_restart_of_the_server_is_survived() {
    survives("restart_fast", |_| pg_ctl(&["restart", "-m", "fast"]));
}

#[test]
fn an_immediate_restart_of_the_server_is_survived() {
    survives("restart_immediate", |_| pg_ctl(&["restart", "-m", "immediate"]));
}

#[test]
fn a_stopped_server_degrades_health_until_it_is_back() {
    survives("restart_stopped", |denorm| {
        pg_ctl(&["stop", "-m", "fast"]);
        let health = wait_health(denorm, "degraded", |h| h["status"] == "degraded");
        assert!(health["problems"].to_string().contains("unreachable for"), "{health}");
        assert_eq!(metric(denorm, "denorm_source_connected").as_deref(), Some("0"));
        // Readers keep the last published state.
        let (status, _) = denorm.get("/views/owners");
        assert_eq!(status, 200);
        // Past the 1 s budget while disconnected, the budgeted view is out of it.
        std::thread::sleep(Duration::from_millis(2500));
        let (_, views) = denorm.get("/views");
        let balances = views.as_array().unwrap().iter().find(|v| v["name"] == "balances").unwrap().clone();
        assert_eq!(balances["within_sla"], false, "{balances}");
        assert_eq!(metric(denorm, "denorm_view_within_sla{view=\"balances\"}").as_deref(), Some("0"));
        pg_ctl(&["start"]);
    });
}

#[test]
fn a_dropped_publication_stops_denorm_with_the_fix() {
    // The server must be up: the other tests restart it.
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let project = PgProject::new("dropped_publication", SCHEMA, &views_sql());
    let denorm = Denorm::start(&project.config);
    let mut client = project.client();
    client.batch_execute(&format!("DROP PUBLICATION {}", project.slot)).unwrap();
    client.batch_execute("INSERT INTO transfers VALUES (99999, 1, 1)").unwrap();
    let (code, log) = denorm.exit();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("publication denorm_dropped_publication does not exist"), "{log}");
    assert!(log.contains("restart denorm, which creates the publication again"), "{log}");
}

/// Credentials that stop working while denorm runs (the password changed,
/// then the connection dropped) are definite: denorm stops with the fix
/// instead of retrying forever.
#[test]
fn credentials_refused_mid_run_stop_denorm_with_the_fix() {
    // The server must be up: the other tests restart it.
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let project = PgProject::new("refused_credentials", SCHEMA, &views_sql());
    let mut admin = Client::connect(&server_url(), NoTls).unwrap();
    admin.batch_execute("DROP ROLE IF EXISTS denorm_refused; CREATE ROLE denorm_refused LOGIN SUPERUSER REPLICATION PASSWORD 'Pw1stXyz'").unwrap();
    let credentials = server_url().split("://").nth(1).unwrap().split('@').next().unwrap().to_string();
    let config = std::fs::read_to_string(&project.config).unwrap().replace(&credentials, "denorm_refused:Pw1stXyz");
    std::fs::write(&project.config, config).unwrap();
    let denorm = Denorm::start(&project.config);
    admin.batch_execute("ALTER ROLE denorm_refused PASSWORD 'Pw2ndXyz'").unwrap();
    admin
        .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'denorm_refused'", &[])
        .unwrap();
    let (code, log) = denorm.exit();
    admin.batch_execute("DROP ROLE IF EXISTS denorm_refused").ok();
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("password authentication failed"), "{log}");
    assert!(log.contains("hint: the server refused denorm's credentials"), "{log}");
    assert!(!log.contains("Pw1stXyz") && !log.contains("Pw2ndXyz"), "no password printed: {log}");
}

/// The slot dropped under a running denorm (its walsender terminated so
/// that the drop succeeds): the stream cannot resume, so denorm takes a
/// new snapshot (creating the slot again) and converges; it never exits.
#[test]
fn a_dropped_slot_costs_one_new_snapshot() {
    let _server = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let project = PgProject::new("dropped_slot", SCHEMA, &views_sql());
    let mut denorm = Denorm::start(&project.config);
    let mut admin = Client::connect(&server_url(), NoTls).unwrap();
    pg_project::drop_slot(&mut admin, &project.slot);
    project.client().batch_execute("INSERT INTO transfers VALUES (99999, 1, 99)").unwrap();
    denorm.wait_for_log("cannot resume; taking a new snapshot");
    assert_views_equal(&denorm, &mut project.client(), VIEWS, &[]);
    assert!(denorm.child.try_wait().unwrap().is_none(), "denorm exited");
    assert_eq!(denorm.terminate(), Some(0));
}
