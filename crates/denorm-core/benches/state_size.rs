//! Bytes of operator state per source row held, against the row's raw bytes
//! (8 per integer, UTF-8 length per text, for the columns the state keeps),
//! measured exactly by a counting global allocator: live bytes after loading
//! minus live bytes before (`cargo bench -p denorm-core --bench state_size`;
//! `DENORM_BENCH_SCALE` scales the 1M posts / 100k users).

use std::alloc::System;

mod common;

use common::{scale, table};
use denorm_core::{Dataflow, Runtime, SourceBatch};
use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Datum, Dialect, Diff, Position, Row, ScalarType};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let (posts, users) = (scale(1_000_000) as i64, scale(100_000) as i64);
    let mut catalog = Catalog::new();
    catalog
        .add(table("posts", &[("id", ScalarType::Int), ("author_id", ScalarType::Int), ("title", ScalarType::Text)]));
    catalog.add(table("users", &[("id", ScalarType::Int), ("name", ScalarType::Text)]));
    // COUNT over the join with a residual reading both sides' text: the
    // arrangements hold (author_id, title) and (id, name) per row while the
    // view is a single row, so what is measured is operator state.
    let join = Plan::Join {
        left: Box::new(Plan::Get { table: "posts".into(), arity: 3 }),
        right: Box::new(Plan::Get { table: "users".into(), arity: 2 }),
        kind: JoinKind::Inner,
        left_key: vec![1],
        right_key: vec![0],
        residual: Some(Expr::binary(BinaryOp::NotEq, Expr::Column(2), Expr::Column(4))),
    };
    let plan = Plan::Reduce {
        input: Box::new(join),
        group_key: vec![],
        aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
    };
    let user_rows: Vec<(Row, Diff)> =
        (0..users).map(|u| (Row::pack([Datum::Int(u), Datum::owned_text(format!("user {u}"))]), 1)).collect();
    let post_rows: Vec<(Row, Diff)> = (0..posts)
        .map(|p| {
            (Row::pack([Datum::Int(p), Datum::Int(p % users), Datum::owned_text(format!("post {p} about rust"))]), 1)
        })
        .collect();
    let text_len = |r: &Row| r.iter().filter_map(|d| d.as_str().map(str::len)).sum::<usize>();
    let raw: usize = post_rows.iter().chain(&user_rows).map(|(r, _)| 8 + text_len(r)).sum();
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    dataflow.add_view("count", &plan, vec![], false).unwrap();
    let users_batch = SourceBatch { position: Position(1), tables: vec![("users".into(), user_rows)] };
    let snapshot = SourceBatch { position: Position(2), tables: vec![("posts".into(), post_rows)] };
    let region = Region::new(GLOBAL);
    dataflow.apply(&users_batch);
    dataflow.apply(&snapshot);
    let change = region.change();
    // stats_alloc already adds a realloc's growth to `bytes_allocated` (and its
    // shrinkage to `bytes_deallocated`); `bytes_reallocated` is the same delta
    // again, so adding it would count every reallocation twice.
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize;
    let held_old_formula = held + change.bytes_reallocated;
    let rows = (posts + users) as f64;
    println!("(c) operator state, {posts} posts + {users} users arranged for a join (exact live bytes)");
    println!("    raw bytes/row       {:>10.1}   (8 per integer + text length, columns held)", raw as f64 / rows);
    println!(
        "    held bytes/row      {:>10.1}   ({:.2}x raw; target <= 2x)",
        held as f64 / rows,
        held as f64 / raw as f64
    );
    println!("    (old formula        {:>10.1}   counting reallocations twice)", held_old_formula as f64 / rows);
    std::hint::black_box(&dataflow);
}
