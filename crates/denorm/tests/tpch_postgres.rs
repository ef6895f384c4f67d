//! TPC-H's 22 queries as the specification writes them for PostgreSQL
//! (typed date literals, `extract`, `substring … from … for`) are accepted
//! by `denorm check` and, under `denorm run` on a real PostgreSQL (the server
//! `scripts/test` starts; `DENORM_TEST_POSTGRES_URL`), every view equals
//! PostgreSQL's own answer after the snapshot and after each round of RF1
//! (new orders), RF2 (deleted orders) and updates of every column the
//! queries read, captured by logical replication.
//!
//! Scale: `DENORM_TPCH_SCALE` (default 0.01); rounds: `DENORM_TPCH_ROUNDS`
//! (default 3); `DENORM_TPCH_ONLY=q01,q06` runs only those views (to debug one).

mod common;
mod pg_project;

use std::io::Write as _;

use common::Denorm;
use denorm_testkit::tpch::{self, Random, Refresh};
use pg_project::{assert_views_equal, PgProject};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The specification's schema as it is, CHAR(n) columns included (compared
/// ignoring trailing blanks, output padded: see `postgres_intervals.rs`).
fn schema() -> String {
    let identity: String = tpch::TABLES.iter().map(|t| format!("ALTER TABLE {t} REPLICA IDENTITY FULL;\n")).collect();
    format!("{}\n{identity}", tpch::SCHEMA)
}

fn queries() -> Vec<(&'static str, String)> {
    let only: String = env("DENORM_TPCH_ONLY", String::new());
    tpch::QUERIES
        .iter()
        .filter(|(name, _)| only.is_empty() || only.split(',').any(|o| o == *name))
        .map(|(name, query)| (*name, tpch::postgres_query(query)))
        .collect()
}

#[test]
fn tpch_views_equal_postgres_through_refresh() {
    let scale: f64 = env("DENORM_TPCH_SCALE", 0.01);
    let rounds: usize = env("DENORM_TPCH_ROUNDS", 3);
    let queries = queries();
    let views: String = queries.iter().map(|(name, query)| tpch::view(name, query)).collect();
    let project = PgProject::new("tpch", &schema(), &views);
    let mut client = project.client();
    for table in tpch::TABLES {
        let mut copy = client.copy_in(&format!("COPY {table} FROM STDIN WITH (DELIMITER '|')")).unwrap();
        for line in tpch::lines(table, scale) {
            copy.write_all(line.strip_suffix('|').unwrap_or(&line).as_bytes()).unwrap();
            copy.write_all(b"\n").unwrap();
        }
        copy.finish().unwrap();
    }
    client.batch_execute("ANALYZE").unwrap();

    let check = project.denorm(&["check"]);
    assert!(
        check.status.success(),
        "denorm check refuses TPC-H on PostgreSQL:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let denorm = Denorm::start(&project.config);
    let listed: Vec<(&str, &str)> = queries.iter().map(|(name, query)| (*name, query.as_str())).collect();
    assert_views_equal(&denorm, &mut client, &listed, &[]);
    let mut refresh = Refresh::new(
        |sql| client.query_one(sql, &[]).map(|r| i64::from(r.get::<_, i32>(0))),
        (scale * 1500.0).max(1.0) as i64,
    )
    .unwrap();
    let mut random = Random::new(0x7c91_1000);
    for _ in 0..rounds {
        let mut transaction = client.transaction().unwrap();
        for statement in refresh.round(&mut random, 60) {
            transaction.batch_execute(&statement.sql).unwrap();
        }
        transaction.commit().unwrap();
        assert_views_equal(&denorm, &mut client, &listed, &[]);
    }
    denorm.terminate();
}
