//! A PostgreSQL database, replication slot and publication of a test's own,
//! with a views file and a config pointing at them; all dropped at the end.
//! Shared by the tests that run `denorm` against the server `scripts/test`
//! starts.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

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
        let database = format!("denorm_{name}");
        let slot = database.clone();
        let mut admin = Client::connect(&server_url(), NoTls).expect("the test server accepts connections");
        drop_slot(&mut admin, &slot);
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).unwrap();
        // The "C" collation: text compares bytewise, as in denorm.
        admin
            .batch_execute(&format!("CREATE DATABASE {database} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"))
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
