//! The published state's cost beside the operators that feed it
//! (`cargo bench -p denorm-serve --bench publish`). Scale with
//! `DENORM_BENCH_SCALE` (default 1.0 = the sizes named below).
//!
//! The workload is `denorm-core`'s maintenance bench (a) (`common/workloads.rs`): an aggregate view
//! (COUNT/SUM/AVG by product) over 10M review changes on 1M products (90%
//! inserts, 10% deletes), in batches of 10k. Prints, from one run:
//! - the operators alone (`Dataflow::add_view_emitting`, changes dropped);
//! - the operators with the real [`Publisher`] as `denorm run` drives it
//!   (apply the view's changes, publish once per batch): the target;
//! - the publisher alone, replaying the recorded view changes;
//! - lookups of random keys in the published snapshot, µs each;
//! - live heap bytes per published row (a counting allocator), with the
//!   publisher's whole state (working and published copies) counted, after
//!   each batch of the second half of the replay: mean and largest.

#[path = "../../denorm-core/benches/common/mod.rs"]
mod common;

use common::{workloads, Clock, Rng};
use denorm_core::Runtime;
use denorm_serve::{channel, pack_key, ColumnInfo, ViewInfo};
use denorm_types::{Datum, Diff, Position, Row, ScalarType};

#[global_allocator]
static GLOBAL: denorm_testkit::alloc::Counting = denorm_testkit::alloc::Counting;

fn live() -> isize {
    denorm_testkit::alloc::live_bytes()
}

fn view_info() -> ViewInfo {
    let column = |name: &str, ty| ColumnInfo { name: name.into(), ty };
    ViewInfo {
        name: "product_stats".into(),
        columns: vec![
            column("product_id", ScalarType::Int),
            column("reviews", ScalarType::Int),
            column("rating_sum", ScalarType::Int),
            column("rating_avg", ScalarType::Float),
        ],
        key: vec![0],
        tables: vec!["reviews".into()],
        ..Default::default()
    }
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only run on `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let workloads::Aggregates { changes, keys, batch_size, batches, plan, .. } = workloads::aggregates();
    println!("aggregate view, {changes} changes over {keys} keys, batches of {batch_size}");

    // The operators alone; the view's changes are recorded (outside the
    // clock's interest: a move) for the publisher-alone replay.
    let mut flow = workloads::dataflow("product_stats", &plan, None);
    let mut recorded: Vec<Vec<(Row, Diff)>> = Vec::with_capacity(batches.len());
    let clock = Clock::start();
    for b in &batches {
        let mut out = flow.apply(b);
        recorded.push(out.views.pop().map(|v| v.changes).unwrap_or_default());
    }
    let operators = clock.rate(changes);
    let operators_cpu = on_cpu(&clock, changes);
    drop(flow);
    let view_changes: usize = recorded.iter().map(Vec::len).sum();

    // The operators and the publisher, as `denorm run` drives them.
    let mut flow = workloads::dataflow("product_stats", &plan, None);
    let (mut publisher, reader) = channel(vec![view_info()]);
    let clock = Clock::start();
    for b in &batches {
        let out = flow.apply(b);
        if let Some(v) = out.views.first() {
            publisher.apply(0, &v.changes);
        }
        publisher.publish_at(b.position, &[], 0.0);
    }
    let both = clock.rate(changes);
    let both_cpu = on_cpu(&clock, changes);
    drop((flow, publisher, reader));

    // The publisher alone, replaying the recorded changes; its live bytes
    // per row after each batch of the second half (steady state: the view
    // holds about all its keys), mean and largest.
    let before = live();
    let (mut publisher, reader) = channel(vec![view_info()]);
    let clock = Clock::start();
    let mut per_row = Vec::new();
    for (i, changes) in recorded.iter().enumerate() {
        publisher.apply(0, changes);
        publisher.publish_at(Position(i as u64 + 1), &[], 0.0);
        if i >= recorded.len() / 2 {
            let bytes = live() - before;
            per_row.push(bytes as f64 / reader.snapshot().views[0].rows.len().max(1) as f64);
        }
    }
    let alone = clock.rate(view_changes);
    let mean = per_row.iter().sum::<f64>() / per_row.len().max(1) as f64;
    let largest = per_row.iter().copied().fold(0.0, f64::max);
    let snapshot = reader.snapshot();
    let rows = snapshot.views[0].rows.len();
    let (runs, entries) = snapshot.views[0].rows.runs();

    // Readers: lookups of random products in the published snapshot.
    let lookups = 200_000;
    let mut rng = Rng(7);
    let probes: Vec<Row> = (0..lookups).map(|_| pack_key(&[Datum::Int(rng.below(keys) as i64)])).collect();
    let clock = Clock::start();
    let found: usize = probes.iter().map(|k| snapshot.views[0].rows.get(k).len()).sum();
    let (wall, cpu) = clock.elapsed();
    let lookup_us = 1e6 * cpu.unwrap_or(wall) / lookups as f64;

    println!("    operators alone          {operators} source changes");
    println!(
        "    operators + publisher    {both} source changes   ({:.0}% of the operators alone, on-CPU)",
        100.0 * both_cpu / operators_cpu
    );
    println!("    publisher alone          {alone} view changes   ({view_changes} view changes replayed)");
    println!("    published rows           {rows:>12}   live bytes per row {mean:.1} (mean), {largest:.1} (largest), working + published state");
    println!("    runs                     {runs:>12}   holding {entries} entries");
    println!("    lookups                  {lookup_us:>12.2} µs each on-CPU   ({lookups} random keys, {found} found)");
    println!("    target                   {:>12} source changes/s with the publisher", 5_000_000);
}

/// Items per on-CPU second (wall time when the platform has no thread clock).
fn on_cpu(clock: &Clock, n: usize) -> f64 {
    let (wall, cpu) = clock.elapsed();
    n as f64 / cpu.unwrap_or(wall)
}
