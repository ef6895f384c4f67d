//! TPC-H's 22 queries exactly as the specification writes them (SQLite
//! syntax, dates precomputed) are accepted as views and stay equal to
//! SQLite's own answers through the specification's refresh functions (RF1:
//! new orders, RF2: deleted orders) and updates of every column they read.
//!
//! Scale: `DENORM_TPCH_SCALE` (default 0.01: 60k line items); rounds:
//! `DENORM_TPCH_ROUNDS` (default 6).

use denorm_core::{Dataflow, Runtime, SourceBatch, ViewId};
use denorm_sql::{plan_views, ViewDef};
use denorm_testkit::tpch::{self, Random, Refresh};
use denorm_testkit::{same_rows, SqliteReference};
use denorm_types::{Datum, Dialect, Position, Value};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Plans each query on its own; the refused ones with their errors.
fn plan_each(reference: &SqliteReference) -> (Vec<ViewDef>, Vec<String>) {
    let catalog = reference.catalog();
    let mut planned = Vec::new();
    let mut refused = Vec::new();
    for (name, query) in tpch::QUERIES {
        match plan_views(&tpch::view(name, query), &catalog, Dialect::Sqlite) {
            Ok(defs) => planned.extend(defs),
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(|e| e.render(name)).collect();
                refused.push(text.join("\n"));
            }
        }
    }
    (planned, refused)
}

#[test]
fn all_22_queries_plan_as_written() {
    let reference = SqliteReference::new(tpch::SCHEMA).unwrap();
    let (_, refused) = plan_each(&reference);
    assert!(refused.is_empty(), "{} of 22 TPC-H queries refused:\n{}", refused.len(), refused.join("\n\n"));
}

/// q11, q15 and q22 compare rows with an uncorrelated scalar subquery: each
/// is maintained as outer rows ordered by the compared value (a move of the
/// scalar visits the rows it passes), never as a product that re-joins
/// every row.
#[test]
fn uncorrelated_scalar_comparisons_are_ordered_not_products() {
    let reference = SqliteReference::new(tpch::SCHEMA).unwrap();
    let (defs, _) = plan_each(&reference);
    for def in defs {
        let mut dataflow = Dataflow::new(reference.catalog(), Dialect::Sqlite);
        dataflow.add_view_emitting(&def.name, &def.plan).unwrap();
        let want = usize::from(["q11", "q15", "q22"].contains(&def.name.as_str()));
        assert_eq!(dataflow.scalar_filter_count(), want, "{}", def.name);
    }
}

struct Harness {
    reference: SqliteReference,
    dataflow: Dataflow,
    views: Vec<(ViewDef, ViewId)>,
    position: u64,
}

impl Harness {
    fn apply(&mut self, tables: Vec<(String, Vec<(denorm_types::Row, denorm_types::Diff)>)>) {
        self.position += 1;
        let out = self.dataflow.apply(&SourceBatch { position: Position(self.position), tables });
        assert!(out.errors.is_empty(), "view errors after batch {}: {:?}", self.position, out.errors);
        assert!(out.rejected.is_empty(), "rejected after batch {}: {:?}", self.position, out.rejected);
    }

    fn check(&self) {
        for (def, id) in &self.views {
            let (names, want) = self.reference.query(&def.select_sql).unwrap();
            let ours: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(ours, names, "column names of {}", def.name);
            let mut got = Vec::new();
            for (row, diff) in self.dataflow.view_rows(*id) {
                let values: Vec<Value> = row.iter().map(Datum::into_owned).collect();
                got.extend(std::iter::repeat_n(values, usize::try_from(diff).unwrap()));
            }
            if let Err(m) = same_rows(got, want) {
                panic!("view {} differs after batch {}: {m}", def.name, self.position);
            }
        }
    }
}

#[test]
fn views_equal_sqlite_through_refresh() {
    let scale: f64 = env("DENORM_TPCH_SCALE", 0.01);
    let rounds: usize = env("DENORM_TPCH_ROUNDS", 6);
    let reference = SqliteReference::new("").unwrap();
    tpch::load(&reference.connection, scale).unwrap();
    let (defs, refused) = plan_each(&reference);
    // Refused queries fail `all_22_queries_plan_as_written`; the accepted
    // ones are checked here all the same.
    eprintln!("{} views planned, {} refused", defs.len(), refused.len());
    let mut dataflow = Dataflow::new(reference.catalog(), Dialect::Sqlite);
    // As the engine builds them: joins of different views reading one
    // table by one key share one arrangement of it, widened.
    dataflow.share_arrangements(defs.iter().map(|def| &def.plan));
    let views: Vec<_> = defs
        .into_iter()
        .map(|def| {
            let id = dataflow.add_view(&def.name, &def.plan, def.key.columns.clone(), !def.key.proven_unique).unwrap();
            (def, id)
        })
        .collect();
    let arrangements = |d: &Dataflow| d.state_bytes().iter().filter(|(_, l, _)| l.contains("Arrange")).count();
    let mut apart = Dataflow::new(reference.catalog(), Dialect::Sqlite);
    for (def, _) in &views {
        apart.add_view_emitting(&def.name, &def.plan).unwrap();
    }
    // lineitem by l_orderkey and l_partkey, orders, partsupp, customer…
    assert!(arrangements(&dataflow) + 10 <= arrangements(&apart), "arranged once per (table, key)");
    let mut harness = Harness { reference, dataflow, views, position: 0 };
    let snapshot = tpch::TABLES
        .iter()
        .map(|table| {
            let rows = denorm_testkit::writes::rows_where(&harness.reference.connection, table, "1").unwrap();
            (table.to_string(), rows.into_iter().map(|(_, row)| (row, 1)).collect())
        })
        .collect();
    harness.apply(snapshot);
    harness.check();
    let mut refresh = Refresh::new(|sql| harness.reference.connection.query_row(sql, [], |r| r.get(0)), 15).unwrap();
    let mut random = Random::new(0x7c91_1000);
    for _ in 0..rounds {
        let statements = refresh.round(&mut random, 60);
        let changes = denorm_testkit::writes::capture(&harness.reference, &statements).unwrap();
        harness.apply(changes);
        harness.check();
    }
}
