//! Maintenance throughput and state size, printed as figures and ratios
//! (`cargo bench -p denorm-core --bench maintenance`). Scale with
//! `DENORM_BENCH_SCALE` (default 1.0 = the sizes named below).
//!
//! (a) aggregate view: 10M changes over 1M keys (90% inserts, 10% deletes) in
//!     batches of 10k — changes/s, beside a hand-written typed hash map doing
//!     the same COUNT/SUM/AVG bookkeeping.
//! (b) field-copy join: 1M posts × 100k users, then 100k user renames in
//!     batches of 1k — view output changes/s.
//!
//! Operator state size is measured by `benches/state_size.rs`.

use std::collections::HashMap;
use std::time::Instant;

mod common;

use common::{scale, table, Clock, Rng};
use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_expr::{Aggregate, AggregateFunc, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Datum, Dialect, Diff, Position, Row, ScalarType};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn catalog() -> Catalog {
    use ScalarType::*;
    let mut c = Catalog::new();
    c.add(table("reviews", &[("id", Int), ("product_id", Int), ("rating", Int)]));
    c.add(table("posts", &[("id", Int), ("author_id", Int), ("title", Text)]));
    c.add(table("users", &[("id", Int), ("name", Text)]));
    c
}

fn get(t: &str, arity: usize) -> Box<Plan> {
    Box::new(Plan::Get { table: t.into(), arity })
}

fn batch(position: u64, table: &str, changes: Vec<(Row, Diff)>) -> SourceBatch {
    SourceBatch { position: Position(position), tables: vec![(table.into(), changes)] }
}

fn aggregate_view() {
    let (changes, keys, batch_size) = (scale(10_000_000), scale(1_000_000) as u64, 10_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Row> = Vec::new();
    let mut batches = Vec::new();
    let mut typed_batches: Vec<Vec<(i64, i64, Diff)>> = Vec::new();
    let mut id = 0;
    for b in 0..changes.div_ceil(batch_size) {
        let (mut rows, mut typed) = (Vec::with_capacity(batch_size), Vec::with_capacity(batch_size));
        for _ in 0..batch_size {
            if rng.below(10) == 0 && !live.is_empty() {
                let row = live.swap_remove(rng.below(live.len() as u64) as usize);
                let (k, r) = match (row.get(1), row.get(2)) {
                    (Datum::Int(k), Datum::Int(r)) => (k, r),
                    _ => unreachable!(),
                };
                typed.push((k, r, -1));
                rows.push((row, -1));
            } else {
                id += 1;
                let (k, r) = (rng.below(keys) as i64, 1 + rng.below(5) as i64);
                let row = Row::pack([Datum::Int(id), Datum::Int(k), Datum::Int(r)]);
                live.push(row.clone());
                typed.push((k, r, 1));
                rows.push((row, 1));
            }
        }
        batches.push(batch(b as u64 + 1, "reviews", rows));
        typed_batches.push(typed);
    }
    let plan = Plan::Reduce {
        input: get("reviews", 3),
        group_key: vec![1],
        aggregates: vec![
            Aggregate { func: AggregateFunc::Count, arg: None },
            Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(2)) },
            Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(2)) },
        ],
    };
    // As `denorm run` drives it: the dataflow emits the view's changes and the
    // published state (measured end to end by scripts/bench-e2e) keeps the
    // rows. Then with the dataflow keeping the view's rows itself.
    let run = |keep_rows: bool| {
        let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
        if keep_rows {
            dataflow.add_view("product_stats", &plan, vec![0], false).unwrap();
        } else {
            dataflow.add_view_emitting("product_stats", &plan).unwrap();
        }
        let clock = Clock::start();
        for b in &batches {
            dataflow.apply(b);
        }
        (changes as f64 / clock.elapsed().0, clock.rate(changes))
    };
    let (engine, engine_rate) = run(false);
    let (_, kept_rate) = run(true);

    let started = Instant::now();
    let mut typed: HashMap<i64, (i64, i64)> = HashMap::new();
    let mut emitted = 0usize;
    for b in &typed_batches {
        for &(k, r, d) in b {
            let e = typed.entry(k).or_default();
            e.0 += d;
            e.1 += r * d;
            if e.0 == 0 {
                typed.remove(&k);
            }
            emitted += 1;
        }
    }
    let baseline = emitted as f64 / started.elapsed().as_secs_f64();
    println!("(a) aggregate view, {changes} changes over {keys} keys, batches of {batch_size}");
    println!("    denorm              {engine_rate} changes   (view changes emitted)");
    println!("    denorm, rows kept   {kept_rate} changes   (the dataflow also keeps the view's rows)");
    println!(
        "    typed hash map      {:>12.0} changes/s   (denorm at {:.0}% of it)",
        baseline,
        100.0 * engine / baseline
    );
    println!("    target              {:>12} changes/s", 5_000_000);
}

fn post(id: i64, author: i64) -> Row {
    Row::pack([Datum::Int(id), Datum::Int(author), Datum::owned_text(format!("post number {id} about rust"))])
}

fn user(id: i64, generation: u64) -> Row {
    Row::pack([Datum::Int(id), Datum::owned_text(format!("user {id} gen {generation}"))])
}

fn field_copy_join() {
    let (posts, users, renames, batch_size) = (scale(1_000_000) as i64, scale(100_000) as i64, scale(100_000), 1_000);
    let mut rng = Rng(42);
    let join = Plan::Join {
        left: get("posts", 3),
        right: get("users", 2),
        kind: JoinKind::Inner,
        left_key: vec![1],
        right_key: vec![0],
        residual: None,
    };
    let plan = Plan::Map { input: Box::new(join), exprs: vec![Expr::Column(0), Expr::Column(2), Expr::Column(4)] };
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    dataflow.add_view("post_cards", &plan, vec![0], false).unwrap();
    let snapshot = SourceBatch {
        position: Position(1),
        tables: vec![
            ("users".into(), (0..users).map(|u| (user(u, 0), 1)).collect()),
            ("posts".into(), (0..posts).map(|p| (post(p, rng.below(users as u64) as i64), 1)).collect()),
        ],
    };
    let clock = Clock::start();
    dataflow.apply(&snapshot);
    let load = clock.rate((posts + users) as usize);
    let mut batches = Vec::new();
    let mut generation = vec![0u64; users as usize];
    for b in 0..renames.div_ceil(batch_size) {
        let mut changes = Vec::with_capacity(batch_size * 2);
        for _ in 0..batch_size {
            let u = rng.below(users as u64) as usize;
            changes.push((user(u as i64, generation[u]), -1));
            generation[u] += 1;
            changes.push((user(u as i64, generation[u]), 1));
        }
        batches.push(batch(b as u64 + 2, "users", changes));
    }
    let clock = Clock::start();
    let mut output = 0usize;
    for b in &batches {
        output += dataflow.apply(b).views.iter().map(|v| v.changes.len()).sum::<usize>();
    }
    let rate = clock.rate(output);
    println!("(b) field-copy join, {posts} posts x {users} users, {renames} renames in batches of {batch_size}");
    println!("    initial load        {load} source rows");
    println!("    renames             {rate} view output changes ({output} changes)");
    println!("    target              {:>12} view output changes/s", 3_000_000);
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only run on `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // DENORM_BENCH_ONLY=a or =b runs one of the two (e.g. under a profiler).
    let only = std::env::var("DENORM_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "a" {
        aggregate_view();
    }
    if only.is_empty() || only == "b" {
        field_copy_join();
    }
}
