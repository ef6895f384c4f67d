//! PostgreSQL capture against a real server (`scripts/postgres start`,
//! `DENORM_TEST_POSTGRES_URL`): requirements, snapshot under concurrent
//! writes, every kind of change, TRUNCATE, schema changes, TOAST, a
//! terminated walsender, acknowledgement and uninstall.

mod postgres_common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use denorm_source::postgres::{self, CaptureSpec, CapturedTable, Names, Poll};
use denorm_source::SourceError;
use denorm_types::{Datum, Position};
use postgres_common::{follow_until, next_batch, row, server_url, table_rows, url_for, Model, Pg};

const USERS: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text, score double precision, active boolean, \
                     age integer) ; ALTER TABLE users REPLICA IDENTITY FULL;";

fn spec_all(tables: &[&str]) -> CaptureSpec {
    CaptureSpec { tables: tables.iter().map(|t| CapturedTable::all(*t)).collect() }
}

fn no_progress() -> impl FnMut(denorm_source::postgres::SnapshotProgress<'_>) {
    |_| {}
}

#[test]
fn replica_identity_must_supply_the_rows_views_read() {
    let pg = Pg::new(
        "identity",
        "CREATE TABLE keyed (id bigint PRIMARY KEY, name text);
         CREATE TABLE bare (id bigint, name text);
         CREATE TABLE full_rows (id bigint PRIMARY KEY, name text); ALTER TABLE full_rows REPLICA IDENTITY FULL;",
    );
    let error = pg.try_open(&CaptureSpec { tables: vec![CapturedTable::new("keyed", ["id", "name"])] }).unwrap_err();
    assert!(
        matches!(&error, SourceError::ReplicaIdentity { table, columns, .. } if table == "keyed" && columns == &["name"])
    );
    assert!(error.to_string().contains("ALTER TABLE keyed REPLICA IDENTITY FULL"), "{error}");
    assert!(!error.is_transient());

    let error = pg.try_open(&CaptureSpec { tables: vec![CapturedTable::new("bare", ["id"])] }).unwrap_err();
    assert!(matches!(&error, SourceError::ReplicaIdentity { table, .. } if table == "bare"), "{error}");
    assert!(error.to_string().contains("no primary key"), "{error}");

    // Reading only the key needs no old row beyond the key.
    pg.open(&CaptureSpec { tables: vec![CapturedTable::new("keyed", ["id"])] });
    pg.open(&spec_all(&["full_rows"]));
}

#[test]
fn a_role_without_replication_is_refused() {
    let pg = Pg::new("privilege", USERS);
    let mut admin = pg.client();
    admin
        .batch_execute(
            "DROP ROLE IF EXISTS denorm_norepl; CREATE ROLE denorm_norepl LOGIN PASSWORD 'norepl';
             GRANT SELECT ON users TO denorm_norepl;",
        )
        .unwrap();
    let url = url_for(&server_url(), &pg.database, Some(("denorm_norepl", "norepl")));
    let error = postgres::PgCapture::open(&url, &pg.catalog(), &spec_all(&["users"]), &pg.names).unwrap_err();
    assert!(matches!(&error, SourceError::ReplicationPrivilege { role } if role == "denorm_norepl"), "{error}");
    assert!(error.to_string().contains("ALTER ROLE denorm_norepl REPLICATION"), "{error}");
    admin.batch_execute("DROP OWNED BY denorm_norepl; DROP ROLE denorm_norepl").unwrap();
}

#[test]
fn catalog_maps_types_keys_and_nullability() {
    let pg = Pg::new(
        "catalog",
        "CREATE TABLE t (a smallint NOT NULL, b integer, c bigint, d real, e double precision, f text, \
         g varchar(10), h char(3), i name, j boolean, PRIMARY KEY (c, a), UNIQUE (g));
         CREATE TABLE u (id uuid, n numeric(10, 2), d date, ts timestamp, tz timestamptz, js json, jb jsonb, \
         p point, arr int[]);",
    );
    // Columns of unsupported types do not refuse the database: they are
    // kept with their type name, for the planner to refuse views reading them.
    let catalog = pg.catalog();
    let u = catalog.get("u").unwrap();
    use denorm_types::ScalarType::*;
    let types: Vec<_> = u.columns.iter().map(|c| c.ty).collect();
    assert_eq!(types, [Uuid, Numeric, Date, Timestamp, TimestampTz, Json, Json, Unsupported, Unsupported]);
    assert_eq!(catalog.unsupported_type("u", "p"), Some("point"));
    assert_eq!(catalog.unsupported_type("u", "arr"), Some("integer[]"));
    assert_eq!(catalog.unsupported_type("u", "id"), None);
    let t = catalog.get("t").unwrap();
    let types: Vec<_> = t.columns.iter().map(|c| c.ty).collect();
    // character(n) is text marked RTRIM: compared ignoring trailing blanks.
    assert_eq!(types, [Int, Int, Int, Float, Float, Text, Text, Text, Text, Bool]);
    assert_eq!(catalog.unsupported_type("t", "h"), None);
    assert_eq!(catalog.collation("t", "h"), denorm_types::Collation::Rtrim);
    assert_eq!(catalog.collation("t", "g"), denorm_types::Collation::Binary);
    assert_eq!(t.primary_key, vec![2, 0]);
    assert_eq!(t.unique_keys, vec![vec![6]]);
    let nullable: Vec<bool> = t.columns.iter().map(|c| c.nullable).collect();
    assert_eq!(nullable, [false, true, false, true, true, true, true, true, true, true]);
}

/// Regression (issue 11): text columns are compared bytewise, so a column
/// declared with another collation is kept but unsupported (only views
/// reading it are refused); "C", "POSIX" and the database default pass.
#[test]
fn catalog_marks_collated_columns_unsupported() {
    let pg = Pg::new(
        "collations",
        "CREATE COLLATION denorm_copy_of_c FROM \"C\";
         CREATE TABLE k (id integer PRIMARY KEY, a text COLLATE \"C\", b text COLLATE \"POSIX\", c text, \
         d varchar(5) COLLATE denorm_copy_of_c, n name);",
    );
    let catalog = pg.catalog();
    use denorm_types::ScalarType::*;
    let types: Vec<_> = catalog.get("k").unwrap().columns.iter().map(|c| c.ty).collect();
    assert_eq!(types, [Int, Text, Text, Text, Unsupported, Text]);
    assert_eq!(catalog.unsupported_type("k", "d"), Some("character varying(5) COLLATE \"denorm_copy_of_c\""));
}

#[test]
fn every_kind_of_change_is_one_batch_per_transaction() {
    let pg = Pg::new("changes", USERS);
    let spec = spec_all(&["users"]);
    let mut capture = pg.open(&spec);
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    assert!(snapshot.tables[0].1.is_empty());
    capture.release(snapshot.position).unwrap();
    let mut model = Model::from_snapshot(&snapshot);
    let mut app = pg.client();
    let transactions = [
        "INSERT INTO users VALUES (1, 'ada', 1.5, true, 36), (2, NULL, NULL, NULL, NULL)",
        "UPDATE users SET name = 'Ada' WHERE id = 1",
        "UPDATE users SET id = 10 WHERE id = 1",
        "BEGIN; INSERT INTO users VALUES (3, 'x', 0.1, false, 1); DELETE FROM users WHERE id = 2; COMMIT",
        "UPDATE users SET score = 'Infinity', name = E'tab\\there\\nnew' WHERE id = 3",
        "DELETE FROM users",
    ];
    let mut last = snapshot.position;
    for sql in transactions {
        app.batch_execute(sql).unwrap();
        let batch = next_batch(&mut capture, Duration::from_secs(30));
        assert!(batch.position > last, "{sql}: positions increase");
        last = batch.position;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        assert!((now - batch.committed_at).abs() < 60.0, "{sql}: commit time {}", batch.committed_at);
        model.apply(&batch);
        capture.release(batch.position).unwrap();
        assert_eq!(model.rows("users"), table_rows(&mut app, &pg.catalog(), "users", &["*"]), "after {sql}");
        if sql.starts_with("UPDATE users SET id") {
            let changes = &batch.tables[0].1;
            assert!(changes.iter().any(|(r, d)| *d == -1 && r.get(0) == Datum::Int(1)), "{changes:?}");
            assert!(changes.iter().any(|(r, d)| *d == 1 && r.get(0) == Datum::Int(10)));
        }
    }
}

#[test]
fn unread_columns_are_null_in_snapshot_and_stream() {
    let pg = Pg::new("projection", USERS);
    pg.client().batch_execute("INSERT INTO users VALUES (1, 'ada', 2.5, true, 36)").unwrap();
    let mut capture = pg.open(&CaptureSpec { tables: vec![CapturedTable::new("users", ["name", "id"])] });
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    let ada = row(&[1.into(), "ada".into(), Datum::Null, Datum::Null, Datum::Null]);
    assert_eq!(snapshot.tables[0].1, vec![ada.clone()]);
    pg.client().batch_execute("DELETE FROM users WHERE id = 1").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert_eq!(batch.tables, vec![("users".to_string(), vec![(ada, -1)])], "the retraction matches the snapshot row");
}

#[test]
fn snapshot_and_stream_join_exactly_under_concurrent_writes() {
    let pg = Pg::new(
        "concurrent",
        "CREATE TABLE counters (id bigint PRIMARY KEY, n bigint NOT NULL); ALTER TABLE counters REPLICA IDENTITY FULL;
         INSERT INTO counters SELECT g, 0 FROM generate_series(1, 2000) g;
         CREATE TABLE done (id bigint PRIMARY KEY); ALTER TABLE done REPLICA IDENTITY FULL;",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, stop) = (pg.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut app = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) || i < 200 {
                i += 1;
                let id = i % 2500 + 1;
                app.batch_execute(&format!(
                    "BEGIN; INSERT INTO counters VALUES ({id}, {i}) ON CONFLICT (id) DO UPDATE SET n = counters.n + 1; \
                     DELETE FROM counters WHERE id = {};COMMIT",
                    (i * 7) % 2500 + 1
                ))
                .unwrap();
            }
            app.batch_execute("INSERT INTO done VALUES (1)").unwrap();
            i
        })
    };
    let mut capture = pg.open(&spec_all(&["counters", "done"]));
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    stop.store(true, Ordering::Relaxed);
    capture.release(snapshot.position).unwrap();
    let mut model = Model::from_snapshot(&snapshot);
    follow_until(&mut capture, &mut model, |m| !m.rows("done").is_empty());
    let writes = writer.join().unwrap();
    assert!(writes >= 200);
    let mut app = pg.client();
    assert_eq!(model.rows("counters"), table_rows(&mut app, &pg.catalog(), "counters", &["*"]));
}

#[test]
fn truncate_empties_the_table() {
    let pg = Pg::new(
        "truncate",
        &format!("{USERS} CREATE TABLE other (id bigint PRIMARY KEY); ALTER TABLE other REPLICA IDENTITY FULL;"),
    );
    pg.client().batch_execute("INSERT INTO users (id) VALUES (1), (2); INSERT INTO other VALUES (1)").unwrap();
    let mut capture = pg.open(&spec_all(&["users", "other"]));
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    let mut model = Model::from_snapshot(&snapshot);
    pg.client()
        .batch_execute(
            "BEGIN; INSERT INTO users (id) VALUES (3); TRUNCATE users; INSERT INTO users (id) VALUES (4); COMMIT",
        )
        .unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert_eq!(batch.truncated, vec!["users".to_string()]);
    let four = row(&[4.into(), Datum::Null, Datum::Null, Datum::Null, Datum::Null]);
    assert_eq!(batch.tables, vec![("users".to_string(), vec![(four, 1)])]);
    model.apply(&batch);
    pg.client().batch_execute("TRUNCATE users, other").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert_eq!(batch.truncated, vec!["other".to_string(), "users".to_string()]);
    model.apply(&batch);
    let mut app = pg.client();
    assert_eq!(model.rows("users"), table_rows(&mut app, &pg.catalog(), "users", &["*"]));
    assert!(model.rows("other").is_empty());
}

#[test]
fn adding_or_dropping_a_column_is_a_schema_change() {
    for (test, alter) in [
        ("add_column", "ALTER TABLE users ADD COLUMN email text"),
        ("drop_column", "ALTER TABLE users DROP COLUMN age"),
    ] {
        let pg = Pg::new(test, USERS);
        let mut capture = pg.open(&spec_all(&["users"]));
        capture.snapshot(&mut no_progress()).unwrap();
        let mut app = pg.client();
        app.batch_execute("INSERT INTO users (id) VALUES (1)").unwrap();
        next_batch(&mut capture, Duration::from_secs(30));
        app.batch_execute(alter).unwrap();
        app.batch_execute("INSERT INTO users (id) VALUES (2)").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let found = loop {
            match capture.poll(Duration::from_millis(200)).unwrap() {
                Poll::Idle | Poll::Progress(_) if Instant::now() < deadline => continue,
                other => break other,
            }
        };
        assert_eq!(found, Poll::SchemaChanged { tables: vec!["users".into()] }, "{alter}");
        assert_eq!(capture.poll(Duration::ZERO).unwrap(), found, "it stays changed");
        // The old catalog no longer fits; the new one does.
        let stale = open_with_original_catalog(&pg);
        assert!(matches!(stale, Err(SourceError::SchemaChanged { .. })), "{alter}: {stale:?}");
        pg.open(&spec_all(&["users"]));
    }
}

/// Opens `users` with the catalog as it was before any ALTER TABLE.
fn open_with_original_catalog(pg: &Pg) -> Result<postgres::PgCapture, SourceError> {
    let mut catalog = denorm_types::Catalog::new();
    let original = denorm_types::TableSchema {
        name: "users".into(),
        columns: ["id", "name", "score", "active", "age"]
            .iter()
            .zip([
                denorm_types::ScalarType::Int,
                denorm_types::ScalarType::Text,
                denorm_types::ScalarType::Float,
                denorm_types::ScalarType::Bool,
                denorm_types::ScalarType::Int,
            ])
            .enumerate()
            .map(|(i, (n, ty))| denorm_types::ColumnSchema { name: n.to_string(), ty, nullable: i != 0 })
            .collect(),
        primary_key: vec![0],
        unique_keys: vec![],
    };
    catalog.add(original);
    postgres::PgCapture::open(&pg.url, &catalog, &spec_all(&["users"]), &pg.names)
}

#[test]
fn unchanged_toasted_values_keep_their_old_value() {
    let pg = Pg::new("toast", USERS);
    // md5 chains do not compress, so the value is stored out of line.
    pg.client()
        .batch_execute(
            "INSERT INTO users (id, name, age) \
             SELECT 1, string_agg(md5(g::text), ''), 1 FROM generate_series(1, 4000) g",
        )
        .unwrap();
    let mut capture = pg.open(&spec_all(&["users"]));
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    let mut model = Model::from_snapshot(&snapshot);
    let mut app = pg.client();
    app.batch_execute("UPDATE users SET age = 2 WHERE id = 1").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    let changes = &batch.tables[0].1;
    assert_eq!(changes.len(), 2);
    for (row, _) in changes {
        assert_eq!(row.get(1).as_str().map(str::len), Some(4000 * 32), "the long name is in both rows");
    }
    model.apply(&batch);
    assert_eq!(model.rows("users"), table_rows(&mut app, &pg.catalog(), "users", &["*"]));
}

#[test]
fn a_terminated_walsender_is_transient_and_resume_loses_and_repeats_nothing() {
    let pg = Pg::new("walsender", USERS);
    let spec = spec_all(&["users"]);
    let mut capture = pg.open(&spec);
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    let mut model = Model::from_snapshot(&snapshot);
    let mut published = snapshot.position;
    capture.release(published).unwrap();
    let mut app = pg.client();
    for i in 1..=5 {
        app.batch_execute(&format!("INSERT INTO users (id) VALUES ({i})")).unwrap();
    }
    follow_until(&mut capture, &mut model, |m| m.rows("users").len() == 5);
    published = capture.position();
    // Two more transactions: received, applied, but not released.
    app.batch_execute("INSERT INTO users (id) VALUES (6)").unwrap();
    app.batch_execute("UPDATE users SET age = 1 WHERE id = 6").unwrap();
    follow_until(&mut capture, &mut model, |m| m.rows("users").keys().any(|r| r.get(4) == Datum::Int(1)));
    published = published.max(capture.position());

    let pid = capture.backend_pid().unwrap();
    app.query("SELECT pg_terminate_backend($1)", &[&pid]).unwrap();
    app.batch_execute("INSERT INTO users (id) VALUES (7); DELETE FROM users WHERE id = 2").unwrap();
    let error = loop {
        match capture.poll(Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(Poll::Changes(batch)) => {
                model.apply(&batch);
                published = batch.position;
            }
            Ok(_) => {}
        }
    };
    assert!(error.is_transient(), "{error:?}");
    drop(capture);

    // Reconnect as the engine would: open again and resume at what it published.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut capture = loop {
        let mut capture = pg.open(&spec);
        match capture.resume(published) {
            Ok(()) => break capture,
            Err(e) if e.is_transient() && Instant::now() < deadline => continue,
            Err(e) => panic!("{e}"),
        }
    };
    follow_until(&mut capture, &mut model, |m| {
        let rows = m.rows("users");
        rows.keys().any(|r| r.get(0) == Datum::Int(7)) && !rows.keys().any(|r| r.get(0) == Datum::Int(2))
    });
    assert_eq!(model.rows("users"), table_rows(&mut app, &pg.catalog(), "users", &["*"]));
}

#[test]
fn release_moves_the_confirmed_flush_position() {
    let pg = Pg::new("release", USERS);
    let mut capture = pg.open(&spec_all(&["users"]));
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    let lag = capture.lag().unwrap();
    assert_eq!(lag.confirmed_flush, snapshot.position);
    pg.client().batch_execute("INSERT INTO users (id) VALUES (1)").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert!(capture.lag().unwrap().confirmed_flush < batch.position, "nothing acknowledged before release");
    capture.release(batch.position).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lag = capture.lag().unwrap();
        if lag.confirmed_flush >= batch.position {
            assert!(lag.server_position >= lag.confirmed_flush);
            assert_eq!(lag.lag_bytes, lag.server_position.0 - lag.confirmed_flush.0);
            break;
        }
        assert!(Instant::now() < deadline, "confirmed_flush_lsn stays at {:?}", lag.confirmed_flush);
        let polled = capture.poll(Duration::from_millis(50)).unwrap();
        assert!(matches!(polled, Poll::Idle | Poll::Progress(_)), "{polled:?}");
    }
}

#[test]
fn open_is_idempotent_and_the_publication_holds_exactly_the_captured_tables() {
    let pg = Pg::new(
        "publication",
        &format!("{USERS} CREATE TABLE posts (id bigint PRIMARY KEY); ALTER TABLE posts REPLICA IDENTITY FULL;"),
    );
    let published = |pg: &Pg| -> Vec<String> {
        let rows = pg
            .client()
            .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'denorm' ORDER BY 1", &[])
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    };
    pg.open(&spec_all(&["users"]));
    pg.open(&spec_all(&["users"]));
    assert_eq!(published(&pg), ["users"]);
    pg.open(&spec_all(&["users", "posts"]));
    assert_eq!(published(&pg), ["posts", "users"]);
    pg.open(&spec_all(&["posts"]));
    assert_eq!(published(&pg), ["posts"]);
}

#[test]
fn uninstall_drops_the_slot_and_the_publication() {
    let pg = Pg::new("uninstall", USERS);
    let mut capture = pg.open(&spec_all(&["users"]));
    capture.snapshot(&mut no_progress()).unwrap();
    capture.poll(Duration::from_millis(10)).unwrap();
    let in_use = postgres::uninstall(&pg.url, &pg.names).unwrap_err();
    assert!(matches!(in_use, SourceError::SlotInUse { .. }) && in_use.is_transient(), "{in_use:?}");
    drop(capture);
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped = loop {
        match postgres::uninstall(&pg.url, &pg.names) {
            Err(SourceError::SlotInUse { .. }) if Instant::now() < deadline => continue,
            other => break other.unwrap(),
        }
    };
    assert_eq!(dropped, postgres::Uninstalled { slot: true, publication: true });
    assert_eq!(
        postgres::uninstall(&pg.url, &pg.names).unwrap(),
        postgres::Uninstalled { slot: false, publication: false }
    );
    let mut capture = pg.open(&spec_all(&["users"]));
    let resumed = capture.resume(Position(0)).unwrap_err();
    assert!(matches!(resumed, SourceError::SlotMissing { .. }) && !resumed.is_transient(), "{resumed:?}");
}

#[test]
fn names_are_checked_before_connecting() {
    let names = Names { slot: "Bad-Name".into(), ..Names::default() };
    let error = postgres::uninstall("postgres://nobody@127.0.0.1:1/none", &names).unwrap_err();
    assert!(matches!(error, SourceError::PostgresName { .. }), "{error:?}");
}

#[test]
fn keepalives_keep_an_idle_stream_alive() {
    let pg = Pg::new("keepalive", USERS);
    // The walsender ends a stream that stays silent for wal_sender_timeout.
    let url = format!("{}?options=-c%20wal_sender_timeout%3D1s", pg.url);
    let mut capture = postgres::PgCapture::open(&url, &pg.catalog(), &spec_all(&["users"]), &pg.names).unwrap();
    capture.snapshot(&mut no_progress()).unwrap();
    let idle_until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < idle_until {
        let polled = capture.poll(Duration::from_millis(500)).unwrap();
        assert!(matches!(polled, Poll::Idle | Poll::Progress(_)), "{polled:?}");
    }
    pg.client().batch_execute("INSERT INTO users (id) VALUES (1)").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert_eq!(batch.tables[0].1.len(), 1);
}

/// The values of every PostgreSQL type beyond SQLite's, with NULLs and edge
/// values, decode alike from the snapshot (COPY text) and the stream
/// (pgoutput text), and render as PostgreSQL's own `::text` and `to_json`.
#[test]
fn postgres_types_round_trip_through_snapshot_and_stream() {
    let pg = Pg::new(
        "types",
        "CREATE TABLE v (id int PRIMARY KEY, n numeric, d date, ts timestamp, tz timestamptz, u uuid, j json, \
         jb jsonb, p point); ALTER TABLE v REPLICA IDENTITY FULL;",
    );
    let rows = [
        "1, 1.50, '2024-05-01', '2024-05-01 10:11:12.5', '2024-05-01 10:11:12.123456+02', \
         'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.50, \"é\"]}', '{\"b\": {\"c\": null}, \"a\": \"ü\\n\"}', '(1,2)'",
        "2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL",
        "3, -12345678901234567890.12345678, '0044-03-15 BC', '0044-03-15 23:59:59.999999 BC', \
         '1969-12-31 23:59:59.000001+00', '00000000-0000-0000-0000-000000000000', '\"str\"', '[]', '(0,0)'",
        "4, 0.0000000000000000000000000001, 'infinity', '-infinity', 'infinity', \
         'ffffffff-ffff-ffff-ffff-ffffffffffff', '  {\"sp\" :  1 }', '\"\\u00e9\"', NULL",
        "5, 79228162514264337593543950335, '294276-12-31', '2000-02-29 00:00:00', '2262-04-11 23:47:16.854775+05:30', \
         '123e4567-e89b-12d3-a456-426614174000', 'null', 'null', NULL",
        "6, -0.000, '1970-01-01', '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', \
         'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A12', '1', '1.50', NULL",
    ];
    let mut app = pg.client();
    for row in &rows[..3] {
        app.batch_execute(&format!("INSERT INTO v VALUES ({row})")).unwrap();
    }
    let read = ["id", "n", "d", "ts", "tz", "u", "j", "jb"];
    let spec = CaptureSpec { tables: vec![CapturedTable::new("v", read)] };
    let mut capture = pg.open(&spec);
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    capture.release(snapshot.position).unwrap();
    let mut model = postgres_common::Model::from_snapshot(&snapshot);
    let catalog = pg.catalog();
    assert_eq!(model.rows("v"), table_rows(&mut app, &catalog, "v", &read), "snapshot");
    for row in &rows[3..] {
        app.batch_execute(&format!("INSERT INTO v VALUES ({row})")).unwrap();
    }
    // Updates retract the snapshot's rows: their bytes must match.
    app.batch_execute("UPDATE v SET n = n * 2 WHERE id IN (1, 3); UPDATE v SET d = d + 1 WHERE id = 1").unwrap();
    app.batch_execute("DELETE FROM v WHERE id = 2").unwrap();
    let want = table_rows(&mut app, &catalog, "v", &read);
    follow_until(&mut capture, &mut model, |m| m.rows("v") == want);
    assert_eq!(model.rows("v").len(), 5);

    // Every value as PostgreSQL renders it.
    let columns = ["n", "d", "ts", "tz", "u", "j", "jb"];
    let select: Vec<String> = columns.iter().map(|c| format!("{c}::text, to_json({c})::text")).collect();
    let oracle = app.query(&format!("SELECT id, {} FROM v ORDER BY id", select.join(", ")), &[]).unwrap();
    let by_id: std::collections::BTreeMap<i64, denorm_types::Row> = model
        .rows("v")
        .into_keys()
        .map(|r| {
            let Datum::Int(id) = r.get(0) else { panic!("{r:?}") };
            (id, r)
        })
        .collect();
    for o in &oracle {
        let id = i64::from(o.get::<_, i32>(0));
        let row = &by_id[&id];
        for (c, name) in columns.iter().enumerate() {
            let text: Option<String> = o.get(1 + 2 * c);
            let json: Option<String> = o.get(2 + 2 * c);
            let datum = row.get(1 + c);
            let ours_text = match &datum {
                Datum::Null => None,
                Datum::Text(t) => Some(t.to_string()),
                d => d.pg_text(),
            };
            assert_eq!(ours_text, text, "row {id} column {name} as text");
            let raw = matches!(*name, "j" | "jb");
            let mut ours_json = String::new();
            denorm_types::json::write_datum(&mut ours_json, &datum, raw, denorm_types::Dialect::Postgres);
            let theirs = json.unwrap_or_else(|| "null".into());
            let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(parse(&ours_json), parse(&theirs), "row {id} column {name} as JSON");
            if *name == "n" {
                assert_eq!(ours_json, theirs, "row {id}: numeric JSON keeps its exact digits and scale");
            }
        }
    }
}

/// A numeric that denorm's decimal cannot hold is an undecodable change
/// naming the column, never a rounded value.
#[test]
fn numerics_beyond_the_representation_are_refused_by_name() {
    let pg = Pg::new(
        "numeric_range",
        "CREATE TABLE m (id int PRIMARY KEY, amount numeric); ALTER TABLE m REPLICA IDENTITY FULL;",
    );
    let spec = spec_all(&["m"]);
    let mut capture = pg.open(&spec);
    let snapshot = capture.snapshot(&mut no_progress()).unwrap();
    capture.release(snapshot.position).unwrap();
    pg.client().batch_execute("INSERT INTO m VALUES (1, 'NaN'), (2, 1e40), (3, 2.5)").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert_eq!(batch.undecodable.len(), 2, "{:?}", batch.undecodable);
    let reason = batch.undecodable[0].reason.to_string();
    assert!(reason.starts_with("column amount: numeric value NaN cannot be held exactly by denorm"), "{reason}");
    assert_eq!(batch.tables[0].1.len(), 1, "the representable row still arrives");
}

/// Read-your-writes past WAL with nothing captured: a write to a table no
/// view reads moves the server's position; the stream reports progress up
/// to it (a keepalive's WAL end), and a reader's wish gets it asked for.
#[test]
fn progress_passes_wal_that_concerns_no_captured_table() {
    let pg = Pg::new("progress", &format!("{USERS} CREATE TABLE other (id bigint PRIMARY KEY, v text);"));
    let mut capture = pg.open(&spec_all(&["users"]));
    let start = capture.snapshot(&mut no_progress()).unwrap().position;
    let mut app = pg.client();
    // The test server commits asynchronously; a synchronous commit is
    // flushed, so the write position read after it lies past it.
    app.batch_execute("SET synchronous_commit = on").unwrap();
    let lsn = |app: &mut ::postgres::Client| -> Position {
        let text: String = app.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0);
        postgres::parse_lsn(&text).unwrap()
    };
    // A captured write, then writes no view reads.
    app.batch_execute("INSERT INTO users (id) VALUES (1)").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    app.batch_execute("INSERT INTO other VALUES (1, 'a'); INSERT INTO other VALUES (2, 'b')").unwrap();
    let wanted = lsn(&mut app);
    assert!(wanted > batch.position && batch.position > start);
    let reached = |capture: &mut postgres::PgCapture, wanted: Position, ask: bool| -> Position {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let want = || Some(wanted);
            let polled = if ask {
                capture.poll_wanting(Duration::from_millis(200), &want).unwrap()
            } else {
                capture.poll(Duration::from_millis(200)).unwrap()
            };
            match polled {
                Poll::Progress(at) if at >= wanted => return at,
                Poll::Progress(at) => assert!(at > batch.position, "progress only moves forward"),
                Poll::Idle => {}
                other => panic!("nothing captured was written, got {other:?}"),
            }
            assert!(Instant::now() < deadline, "the stream never reported progress to {wanted:?}");
        }
    };
    let at = reached(&mut capture, wanted, false);
    assert_eq!(capture.position(), at, "progress is a position handed out");
    capture.release(at).unwrap();
    // Asked for: the walsender answers a status update with reply-requested
    // with a keepalive at once.
    app.batch_execute("INSERT INTO other VALUES (3, 'c')").unwrap();
    let wanted = lsn(&mut app);
    reached(&mut capture, wanted, true);
    // Captured writes still arrive whole and in order after progress.
    app.batch_execute("INSERT INTO users (id) VALUES (2)").unwrap();
    let batch = next_batch(&mut capture, Duration::from_secs(30));
    assert!(batch.position > wanted);
    assert_eq!(batch.tables[0].1.len(), 1);
}
