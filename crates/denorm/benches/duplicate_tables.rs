//! Duplicate tables per access pattern: the memory of 1 view vs 3 views over
//! the same 1M-row table, in one shared dataflow and as separate pipelines,
//! counting both the operator state (denorm-core) and the published state
//! readers are served from (denorm-serve). Exact live bytes from a counting
//! global allocator (`cargo bench -p denorm --bench duplicate_tables`;
//! `DENORM_BENCH_SCALE=0.1` for a tenth).

use std::alloc::System;

use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_serve::{channel, ViewInfo};
use denorm_sql::{plan_views, ViewDef};
use denorm_types::{Catalog, ColumnSchema, Datum, Dialect, Diff, Position, Row, ScalarType, TableSchema};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const VIEWS: &str = "
CREATE MATERIALIZED VIEW trips_by_driver WITH (key = 'driver_id, trip_id') AS
  SELECT t.driver_id, t.id AS trip_id, t.day, t.city, t.fare, u.name AS driver_name
  FROM trips t JOIN users u ON u.id = t.driver_id;
CREATE MATERIALIZED VIEW trips_by_city_date WITH (key = 'city, day, trip_id') AS
  SELECT t.city, t.day, t.id AS trip_id, t.driver_id, t.fare, u.name AS driver_name
  FROM trips t JOIN users u ON u.id = t.driver_id;
CREATE MATERIALIZED VIEW trips_by_id WITH (key = 'trip_id') AS
  SELECT t.id AS trip_id, t.driver_id, t.city, t.day, t.fare, u.name AS driver_name
  FROM trips t JOIN users u ON u.id = t.driver_id;
";

fn scale(n: usize) -> usize {
    let factor: f64 = std::env::var("DENORM_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    ((n as f64) * factor).max(1.0) as usize
}

fn column(name: &str, ty: ScalarType) -> ColumnSchema {
    ColumnSchema { name: name.into(), ty, nullable: false }
}

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    catalog.add(TableSchema {
        name: "trips".into(),
        columns: vec![
            column("id", ScalarType::Int),
            column("driver_id", ScalarType::Int),
            column("city", ScalarType::Text),
            column("day", ScalarType::Text),
            column("fare", ScalarType::Int),
        ],
        primary_key: vec![0],
        unique_keys: vec![],
    });
    catalog.add(TableSchema {
        name: "users".into(),
        columns: vec![column("id", ScalarType::Int), column("name", ScalarType::Text)],
        primary_key: vec![0],
        unique_keys: vec![],
    });
    catalog
}

const CITIES: &[&str] = &["Lisbon", "Porto", "Berlin", "Paris", "Madrid", "Rome", "Austin", "Osaka"];

fn snapshot(trips: usize, users: usize) -> SourceBatch {
    let user_rows: Vec<(Row, Diff)> =
        (0..users as i64).map(|u| (Row::pack([Datum::Int(u), Datum::owned_text(format!("Driver {u}"))]), 1)).collect();
    let trip_rows: Vec<(Row, Diff)> = (0..trips as i64)
        .map(|t| {
            let city = CITIES[(t % 8) as usize];
            let day = format!("2025-{:02}-{:02}", 1 + t % 12, 1 + t % 28);
            let row = [
                Datum::Int(t),
                Datum::Int(t % users as i64),
                Datum::text(city),
                Datum::owned_text(day),
                Datum::Int(500 + t % 4000),
            ];
            (Row::pack(row), 1)
        })
        .collect();
    SourceBatch { position: Position(1), tables: vec![("trips".into(), trip_rows), ("users".into(), user_rows)] }
}

fn info(def: &ViewDef) -> ViewInfo {
    denorm::serving_info(def)
}

/// Live bytes held after loading `batch` into `pipelines` (each a list of
/// views sharing one dataflow): (operator state, published state, rows
/// published).
fn measure(defs: &[ViewDef], pipelines: &[Vec<usize>], batch: &SourceBatch) -> (isize, isize, u64) {
    let live = |region: &Region<'_, System>| {
        let c = region.change();
        c.bytes_allocated as isize - c.bytes_deallocated as isize
    };
    let everything = Region::new(GLOBAL);
    let mut flows = Vec::new();
    let mut outputs = Vec::new();
    for views in pipelines {
        let mut flow = Dataflow::new(catalog(), Dialect::Sqlite);
        for &v in views {
            // As the engine does: the published state holds the rows.
            flow.add_view_emitting(&defs[v].name, &defs[v].plan).unwrap();
        }
        outputs.push(flow.apply(batch));
        flows.push(flow);
    }
    let publishing = Region::new(GLOBAL);
    let infos: Vec<ViewInfo> = pipelines.iter().flatten().map(|&v| info(&defs[v])).collect();
    let (mut publisher, reader) = channel(infos);
    let mut slot = 0;
    for (output, views) in outputs.iter().zip(pipelines) {
        for view in &output.views {
            publisher.apply(slot + view.view.0, &view.changes);
        }
        slot += views.len();
    }
    publisher.publish(Position(1), &[]);
    let published = live(&publishing);
    // The batch's output changes were handed over; only state remains.
    drop(outputs);
    let operator = live(&everything) - published;
    let rows = reader.snapshot().views.iter().map(|v| v.rows.len()).sum();
    std::hint::black_box((&flows, &reader, &publisher));
    (operator, published, rows)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (trips, users) = (scale(1_000_000), scale(20_000));
    let defs = plan_views(VIEWS, &catalog(), Dialect::Sqlite).unwrap();
    let batch = snapshot(trips, users);
    let raw: usize = batch
        .tables
        .iter()
        .flat_map(|(_, rows)| rows)
        .map(|(r, _)| r.iter().map(|d| d.as_str().map_or(8, str::len)).sum::<usize>())
        .sum();
    let rows = trips as f64;
    println!("duplicate tables: {trips} trips ⋈ {users} users (driver name copied), views keyed per access pattern");
    println!("  raw source bytes: {:.1} MB ({:.1} bytes/trip)", raw as f64 / 1e6, raw as f64 / rows);
    println!("  {:<44} {:>12} {:>12} {:>12} {:>10}", "", "operator MB", "published MB", "total MB", "bytes/trip");
    let cases: [(&str, Vec<Vec<usize>>); 3] = [
        ("1 view", vec![vec![0]]),
        ("3 views, one shared dataflow", vec![vec![0, 1, 2]]),
        ("3 views, three separate pipelines", vec![vec![0], vec![1], vec![2]]),
    ];
    let mut totals = Vec::new();
    for (name, pipelines) in cases {
        let (operator, published, published_rows) = measure(&defs, &pipelines, &batch);
        assert_eq!(published_rows as usize, trips * pipelines.iter().flatten().count(), "every view holds every trip");
        let total = operator + published;
        totals.push(total);
        println!(
            "  {name:<44} {:>12.1} {:>12.1} {:>12.1} {:>10.1}",
            operator as f64 / 1e6,
            published as f64 / 1e6,
            total as f64 / 1e6,
            total as f64 / rows
        );
    }
    println!(
        "  each view after the first costs {:.1} MB shared vs {:.1} MB as its own pipeline ({:.2}x)",
        (totals[1] - totals[0]) as f64 / 2e6,
        (totals[2] - totals[0]) as f64 / 2e6,
        (totals[2] - totals[0]) as f64 / (totals[1] - totals[0]) as f64
    );
}
