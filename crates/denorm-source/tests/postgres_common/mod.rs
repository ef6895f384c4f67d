//! Helpers shared by the PostgreSQL capture tests: a database of its own per
//! test on the server `scripts/postgres` started, an application connection,
//! and a model of the captured tables (snapshot + batches) to compare with
//! the tables' contents read by plain SELECTs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use denorm_source::postgres::{self, CaptureSpec, ChangeBatch, Names, PgCapture, Poll, Snapshot};
use denorm_source::SourceError;
use denorm_types::{Catalog, Datum, Diff, Row, ScalarType};
use postgres_client::{Client, NoTls};

pub use ::postgres as postgres_client;

/// The server's URL. A test that was promised a server fails without it.
pub fn server_url() -> String {
    std::env::var("DENORM_TEST_POSTGRES_URL").expect(
        "DENORM_TEST_POSTGRES_URL is not set: the PostgreSQL source tests need a server with wal_level=logical; \
         run `export \"$(scripts/postgres start | tail -n1)\"` (scripts/test does this)",
    )
}

/// `url` with its database (and optionally its user and password) replaced.
pub fn url_for(url: &str, database: &str, user: Option<(&str, &str)>) -> String {
    let config: postgres_client::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres_client::config::Host::Tcp(h) => h.clone(),
        postgres_client::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let (name, password) = match user {
        Some(u) => (u.0.to_string(), u.1.to_string()),
        None => (
            config.get_user().unwrap().to_string(),
            String::from_utf8(config.get_password().unwrap_or_default().to_vec()).unwrap(),
        ),
    };
    format!("postgres://{name}:{password}@{host}:{port}/{database}")
}

/// A database of the test's own, dropped (with its slot) at the end.
pub struct Pg {
    pub database: String,
    pub url: String,
    pub names: Names,
}

impl Pg {
    pub fn new(test: &str, schema: &str) -> Pg {
        let server = server_url();
        let database = format!("denorm_test_{test}");
        let names = Names { publication: "denorm".into(), slot: format!("denorm_test_{test}") };
        let mut admin = Client::connect(&server, NoTls).unwrap();
        drop_slot(&mut admin, &names.slot);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {database}")).unwrap();
        let url = url_for(&server, &database, None);
        let pg = Pg { database, url, names };
        pg.client().batch_execute(schema).unwrap();
        pg
    }

    /// A connection of "the application".
    pub fn client(&self) -> Client {
        Client::connect(&self.url, NoTls).unwrap()
    }

    pub fn catalog(&self) -> Catalog {
        postgres::read_catalog(&mut postgres::connect(&self.url).unwrap()).unwrap()
    }

    pub fn try_open(&self, spec: &CaptureSpec) -> Result<PgCapture, SourceError> {
        PgCapture::open(&self.url, &self.catalog(), spec, &self.names)
    }

    pub fn open(&self, spec: &CaptureSpec) -> PgCapture {
        self.try_open(spec).unwrap()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Ok(mut admin) = Client::connect(&server_url(), NoTls) {
            drop_slot(&mut admin, &self.names.slot);
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database));
        }
    }
}

/// Drops a slot, waiting for a walsender that still holds it to go.
fn drop_slot(admin: &mut Client, slot: &str) {
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
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
            &[&slot],
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The captured tables as denorm sees them: a multiset of rows per table.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Model {
    pub tables: BTreeMap<String, BTreeMap<Row, Diff>>,
}

impl Model {
    pub fn from_snapshot(snapshot: &Snapshot) -> Model {
        let mut model = Model::default();
        for (table, rows) in &snapshot.tables {
            let entry = model.tables.entry(table.clone()).or_default();
            for row in rows {
                *entry.entry(row.clone()).or_default() += 1;
            }
        }
        model
    }

    pub fn apply(&mut self, batch: &ChangeBatch) {
        assert!(batch.undecodable.is_empty(), "undecodable changes: {:?}", batch.undecodable);
        for table in &batch.truncated {
            self.tables.entry(table.clone()).or_default().clear();
        }
        for (table, changes) in &batch.tables {
            let entry = self.tables.entry(table.clone()).or_default();
            for (row, diff) in changes {
                let count = entry.entry(row.clone()).or_default();
                *count += diff;
                assert!(*count >= 0, "{table}: {row:?} retracted more often than inserted");
                if *count == 0 {
                    entry.remove(row);
                }
            }
        }
    }

    pub fn rows(&self, table: &str) -> BTreeMap<Row, Diff> {
        self.tables.get(table).cloned().unwrap_or_default()
    }
}

/// The table's rows read by a plain SELECT, full width, columns not in
/// `read` NULL (as capture delivers them).
pub fn table_rows(client: &mut Client, catalog: &Catalog, table: &str, read: &[&str]) -> BTreeMap<Row, Diff> {
    let schema = catalog.get(table).unwrap();
    // The types beyond SQLite's are read as PostgreSQL's text and parsed.
    let as_text =
        |ty: ScalarType| !matches!(ty, ScalarType::Int | ScalarType::Float | ScalarType::Bool | ScalarType::Text);
    let select: Vec<String> = schema
        .columns
        .iter()
        .map(|c| if as_text(c.ty) { format!("\"{}\"::text", c.name) } else { format!("\"{}\"", c.name) })
        .collect();
    let rows = client.query(&format!("SELECT {} FROM {table}", select.join(", ")), &[]).unwrap();
    let mut out = BTreeMap::new();
    for row in rows {
        let datums: Vec<Datum<'static>> = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if !read.contains(&"*") && !read.iter().any(|r| r.eq_ignore_ascii_case(&c.name)) {
                    return Datum::Null;
                }
                match c.ty {
                    ScalarType::Int => {
                        let v: Option<i64> = match row.columns()[i].type_().name() {
                            "int2" => row.get::<_, Option<i16>>(i).map(i64::from),
                            "int4" => row.get::<_, Option<i32>>(i).map(i64::from),
                            _ => row.get(i),
                        };
                        v.into()
                    }
                    ScalarType::Float => {
                        let v: Option<f64> = match row.columns()[i].type_().name() {
                            "float4" => row.get::<_, Option<f32>>(i).map(|f| f.to_string().parse().unwrap()),
                            _ => row.get(i),
                        };
                        v.into()
                    }
                    ScalarType::Text | ScalarType::Json => row.get::<_, Option<String>>(i).into(),
                    ScalarType::Bool => row.get::<_, Option<bool>>(i).into(),
                    ScalarType::Null | ScalarType::Unsupported => Datum::Null,
                    ty => match row.get::<_, Option<String>>(i) {
                        None => Datum::Null,
                        Some(text) => denorm_types::pgtext::parse(ty, &text).unwrap().unwrap(),
                    },
                }
            })
            .collect();
        *out.entry(Row::pack(datums.iter().map(|d| d.borrowed()))).or_default() += 1;
    }
    out
}

/// Polls until a batch arrives (or fails after `limit`).
pub fn next_batch(capture: &mut PgCapture, limit: Duration) -> ChangeBatch {
    let deadline = Instant::now() + limit;
    loop {
        match capture.poll(Duration::from_millis(200)).unwrap() {
            Poll::Changes(batch) => return batch,
            Poll::Idle | Poll::Progress(_) if Instant::now() < deadline => continue,
            other => panic!("expected a batch, got {other:?}"),
        }
    }
}

/// Polls, applying every batch to `model`, until `done(model)`.
pub fn follow_until(capture: &mut PgCapture, model: &mut Model, done: impl Fn(&Model) -> bool) -> Vec<ChangeBatch> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut batches = Vec::new();
    while !done(model) {
        assert!(Instant::now() < deadline, "the stream did not deliver the expected changes");
        match capture.poll(Duration::from_millis(200)).unwrap() {
            Poll::Changes(batch) => {
                model.apply(&batch);
                capture.release(batch.position).unwrap();
                batches.push(batch);
            }
            Poll::Idle | Poll::Progress(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    batches
}

pub fn row(values: &[Datum<'static>]) -> Row {
    Row::pack(values.iter().map(|d| d.borrowed()))
}
