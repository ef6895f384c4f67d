//! `[auth]` and `[audit]` through the real binary over HTTP: every denial
//! path (no token, bad signature, expired, unknown role, a view or a
//! monitoring endpoint not granted, a masked column filtered on, a claim
//! the row filter needs but the token lacks), masking and row filters on
//! what is served, `/views` listing only what the caller may read, and one
//! audit line per read. Users with passwords (`[auth.users]`): SCRAM with
//! psql and psycopg on the wire protocol, Basic on HTTP, with verifiers
//! made by `denorm auth hash-password` and by a real PostgreSQL.

mod common;

use common::{committed_position, Denorm, Project};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value as Json};
use std::process::Command;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

const SCHEMA: &str = "
CREATE TABLE orders (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, email TEXT, total INTEGER NOT NULL);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW tenant_stats AS
  SELECT tenant_id, count(*) AS orders, sum(total) AS total FROM orders GROUP BY tenant_id;
CREATE MATERIALIZED VIEW order_list AS SELECT id, tenant_id, email, total FROM orders;
";

fn config(project: &Project) -> String {
    format!(
        "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
         pg_listen = \"127.0.0.1:0\"\n[auth]\njwt_secret = \"{SECRET}\"\nanonymous_role = \"anon\"\n\
         [auth.roles.anon]\nviews = [\"tenant_stats\"]\n\
         [auth.roles.tenant]\nviews = [\"order_list\"]\nmask = {{ \"order_list.email\" = \"last4\" }}\n\
         where = \"tenant_id = claim.tenant_id\"\n\
         [auth.roles.ops]\nmonitor = true\n\
         [audit]\npath = \"{}\"\n",
        project.dir.path().join("audit.jsonl").display()
    )
}

/// The port of the wire protocol, from the log line that announces it.
fn wire_port(denorm: &mut Denorm) -> u16 {
    let line = denorm.wait_for_log("serving the PostgreSQL wire protocol on ");
    let address = line.split("protocol on ").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// Runs `sql` with psql as `user`/`password`: stdout and stderr.
fn psql(port: u16, user: &str, password: &str, sql: &str) -> (String, String) {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", &format!("host=127.0.0.1 port={port} user={user} dbname=denorm"), "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql is installed (scripts/test installs postgresql-client)");
    (String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn token(claims: Json, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()).unwrap()).unwrap()
}

/// GET with an optional bearer token: status and JSON body.
fn get(denorm: &Denorm, path: &str, bearer: Option<&str>) -> (u16, Json) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut request = agent.get(&format!("{}{path}", denorm.base));
    if let Some(t) = bearer {
        request = request.header("Authorization", &format!("Bearer {t}"));
    }
    let mut response = request.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Json::String(body)))
}

#[test]
fn every_denial_path_masks_row_filters_and_audit() {
    let project = Project::new(SCHEMA, VIEWS);
    std::fs::write(&project.config, config(&project)).unwrap();
    let conn = project.connect();
    conn.execute_batch(
        "INSERT INTO orders VALUES (1, 1, 'ada@example.com', 10), (2, 1, 'bob@example.org', 20),
                                   (3, 2, 'eve@example.net', 30), (4, 2, NULL, 40);",
    )
    .unwrap();
    let mut denorm = Denorm::start(&project.config);
    denorm.wait_for_position(committed_position(&conn));
    let port = wire_port(&mut denorm);
    let far = 4_000_000_000u64;

    // Anonymous: the granted view only, and no monitoring.
    let (status, rows) = get(&denorm, "/views/tenant_stats", None);
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(get(&denorm, "/views/order_list", None).0, 403);
    let (_, listed) = get(&denorm, "/views", None);
    let names: Vec<&str> = listed.as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["tenant_stats"], "/views lists only what the caller may read");
    assert_eq!(get(&denorm, "/metrics", None).0, 403);
    assert_eq!(get(&denorm, "/ui", None).0, 403);
    assert_eq!(get(&denorm, "/dlq", None).0, 403, "the dead-letter queue is for monitoring roles");
    let (status, health) = get(&denorm, "/health", None);
    assert_eq!(status, 200);
    assert!(health.get("status").is_some() && health.get("source").is_none(), "health without details: {health}");

    // Tokens that do not authenticate.
    let forged = token(json!({"role": "ops", "exp": far}), "another-secret-of-at-least-32-bytes!!");
    assert_eq!(get(&denorm, "/views/tenant_stats", Some(&forged)).0, 401);
    let expired = token(json!({"role": "ops", "exp": 1000}), SECRET);
    assert_eq!(get(&denorm, "/views/tenant_stats", Some(&expired)).0, 401);
    assert_eq!(get(&denorm, "/views/tenant_stats", Some("garbage")).0, 401);
    let stranger = token(json!({"role": "root", "exp": far}), SECRET);
    assert_eq!(get(&denorm, "/views/tenant_stats", Some(&stranger)).0, 403);

    // A tenant: its rows only, the email masked, no filtering on it.
    let tenant = token(json!({"role": "tenant", "tenant_id": 1, "sub": "user-1", "exp": far}), SECRET);
    let (status, rows) = get(&denorm, "/views/order_list?order=id", Some(&tenant));
    assert_eq!(status, 200, "{rows}");
    assert_eq!(
        rows,
        json!([
            {"id": 1, "tenant_id": 1, "email": "***.com", "total": 10},
            {"id": 2, "tenant_id": 1, "email": "***.org", "total": 20}
        ])
    );
    assert_eq!(get(&denorm, "/views/order_list?id=eq.3", Some(&tenant)).1, json!([]), "another tenant's row");
    assert_eq!(get(&denorm, "/views/order_list?email=eq.ada@example.com", Some(&tenant)).0, 403);
    assert_eq!(get(&denorm, "/views/order_list?order=email", Some(&tenant)).0, 403);
    assert_eq!(get(&denorm, "/views/tenant_stats", Some(&tenant)).0, 403);
    let no_claim = token(json!({"role": "tenant", "exp": far}), SECRET);
    assert_eq!(get(&denorm, "/views/order_list", Some(&no_claim)).0, 403);

    // The same rules over the wire protocol: the password is the JWT.
    let psql = |password: &str, sql: &str| psql(port, "app", password, sql);
    let (rows, err) = psql(&tenant, "SELECT id, email FROM order_list ORDER BY id");
    assert_eq!(rows, "1|***.com\n2|***.org", "{err}");
    let (_, err) = psql(&tenant, "SELECT id FROM order_list WHERE email = 'ada@example.com'");
    assert!(err.contains("masked"), "{err}");
    let (_, err) = psql(&tenant, "SELECT * FROM tenant_stats");
    assert!(err.contains("may not read view"), "{err}");
    let (_, err) = psql(&forged, "SELECT 1");
    assert!(err.contains("invalid token"), "{err}");
    let (listed, err) = psql(&tenant, "SELECT table_name FROM information_schema.tables ORDER BY 1");
    assert_eq!(listed, "order_list", "the catalog lists only the granted views: {err}");
    let (_, err) = psql(&tenant, "SET denorm.auth.role = 'ops'");
    assert!(err.contains("cannot be changed"), "{err}");

    // Operations: everything, unmasked, and the monitoring endpoints.
    let ops = token(json!({"role": "ops", "exp": far}), SECRET);
    let (status, rows) = get(&denorm, "/views/order_list", Some(&ops));
    assert_eq!(status, 200);
    assert_eq!(rows.as_array().unwrap().len(), 4);
    let (status, metrics) = get(&denorm, "/metrics", Some(&ops));
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_string();
    for reason in ["invalid_token", "expired", "unknown_role", "view", "masked_column", "missing_claim", "monitor"] {
        let line = format!("denorm_auth_denied_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} in /metrics");
    }
    assert!(metrics.contains("denorm_reads_total{view=\"order_list\",role=\"tenant\"}"), "{metrics}");
    assert!(get(&denorm, "/health", Some(&ops)).1.get("source").is_some());
    let (status, dlq) = get(&denorm, "/dlq", Some(&ops));
    assert_eq!((status, &dlq["count"]), (200, &json!(0)), "{dlq}");
    assert_eq!(get(&denorm, "/ui", Some(&ops)).0, 200);
    denorm.terminate();

    // One audit line per read of a view, allowed or not.
    let audit = std::fs::read_to_string(project.dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<Json> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let tenant_read = lines
        .iter()
        .find(|l| l["role"] == "tenant" && l["status"] == 200 && l["view"] == "order_list")
        .unwrap_or_else(|| panic!("no audited tenant read in {audit}"));
    assert_eq!(tenant_read["subject"], "user-1");
    assert_eq!(tenant_read["rows"], 2);
    assert!(lines.iter().any(|l| l["status"] == 401 && l["denied"] == "invalid_token"), "{audit}");
    assert!(lines.iter().any(|l| l["status"] == 403 && l["denied"] == "masked_column"), "{audit}");
}

/// `denorm auth hash-password` with `password` on standard input.
fn hash_password(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_denorm"))
        .args(["auth", "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The verifier a real PostgreSQL stores for `password` (a throwaway role).
fn postgres_verifier(password: &str) -> String {
    let url = std::env::var("DENORM_TEST_POSTGRES_URL")
        .expect("DENORM_TEST_POSTGRES_URL: run the tests through scripts/test, which starts PostgreSQL");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; DROP ROLE IF EXISTS denorm_auth_probe; \
             CREATE ROLE denorm_auth_probe PASSWORD '{password}'"
        ))
        .unwrap();
    let verifier: String =
        client.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = 'denorm_auth_probe'", &[]).unwrap().get(0);
    client.batch_execute("DROP ROLE denorm_auth_probe").unwrap();
    verifier
}

#[test]
fn users_log_in_with_scram_on_the_wire_and_basic_on_http() {
    let project = Project::new(SCHEMA, VIEWS);
    let ann = hash_password("correct horse");
    assert!(ann.starts_with("SCRAM-SHA-256$4096:"), "{ann}");
    let ops = postgres_verifier("battery staple");
    std::fs::write(
        &project.config,
        format!(
            "views = [\"views.sql\"]\n[source]\nurl = \"sqlite://app.db\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             pg_listen = \"127.0.0.1:0\"\n[auth]\n\
             [auth.roles.tenant]\nviews = [\"order_list\"]\nmask = {{ \"order_list.email\" = \"last4\" }}\n\
             where = \"tenant_id = claim.tenant_id\"\n[auth.roles.ops]\nmonitor = true\n\
             [auth.users.ann]\npassword = \"{ann}\"\nrole = \"tenant\"\nclaims = {{ tenant_id = 1 }}\n\
             [auth.users.ops]\npassword = \"{ops}\"\nrole = \"ops\"\n"
        ),
    )
    .unwrap();
    let conn = project.connect();
    conn.execute_batch(
        "INSERT INTO orders VALUES (1, 1, 'ada@example.com', 10), (2, 1, 'bob@example.org', 20),
                                   (3, 2, 'eve@example.net', 30);",
    )
    .unwrap();
    let mut denorm = Denorm::start(&project.config);
    let port = wire_port(&mut denorm);
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let basic = |user: &str, password: &str, path: &str| {
        use base64::Engine as _;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut response = agent
            .get(&format!("{}{path}", denorm.base))
            .header("Authorization", &format!("Basic {credentials}"))
            .call()
            .unwrap();
        let body = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), serde_json::from_str(&body).unwrap_or(Json::String(body)))
    };
    // Without an anonymous role, /views needs a login: wait as ops.
    common::eventually(std::time::Duration::from_millis(20), || {
        match basic("ops", "battery staple", "/views/order_list") {
            (200, rows) if rows.as_array().is_some_and(|r| r.len() == 3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // SCRAM with psql: the user's role, masks and claims apply.
    let (rows, err) = psql(port, "ann", "correct horse", "SELECT id, email FROM order_list ORDER BY id");
    assert_eq!(rows, "1|***.com\n2|***.org", "{err}");
    let (_, err) = psql(port, "ann", "wrong horse", "SELECT 1");
    assert!(err.contains("password authentication failed for user \"ann\""), "{err}");
    let (_, err) = psql(port, "mallory", "correct horse", "SELECT 1");
    assert!(err.contains("password authentication failed for user \"mallory\""), "unknown users fail alike: {err}");
    let (rows, err) = psql(port, "ops", "battery staple", "SELECT id FROM order_list ORDER BY id");
    assert_eq!(rows, "1\n2\n3", "a verifier made by PostgreSQL logs in: {err}");
    let (_, err) = psql(port, "ops", "correct horse", "SELECT 1");
    assert!(err.contains("password authentication failed"), "{err}");

    // SCRAM with psycopg (libpq underneath, over the extended protocol).
    let python = std::env::var("DENORM_TEST_PSYCOPG_PYTHON")
        .expect("DENORM_TEST_PSYCOPG_PYTHON: run the tests through scripts/test, which installs psycopg");
    let script = format!(
        "import psycopg\n\
         with psycopg.connect(host='127.0.0.1', port={port}, user='ann', password='correct horse', dbname='denorm') as c:\n\
         \x20   print(c.execute('SELECT id FROM order_list WHERE total > %s ORDER BY id', [5]).fetchall())\n"
    );
    let out = Command::new(&python).args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[(1,), (2,)]", "{}", String::from_utf8_lossy(&out.stderr));

    // HTTP Basic against the same verifiers; no JWT key, so bearer tokens are refused.
    let (status, rows) = basic("ann", "correct horse", "/views/order_list?select=id&order=id");
    assert_eq!((status, rows), (200, json!([{"id": 1}, {"id": 2}])));
    assert_eq!(basic("ann", "wrong horse", "/views/order_list").0, 401);
    assert_eq!(basic("ann", "correct horse", "/metrics").0, 403);
    let (status, metrics) = basic("ops", "battery staple", "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.as_str().unwrap().contains("denorm_auth_denied_total{reason=\"bad_password\"}"), "{metrics}");
    let forged = token(json!({"role": "ops"}), SECRET);
    assert_eq!(get(&denorm, "/views/order_list", Some(&forged)).0, 401);
    denorm.terminate();
}
