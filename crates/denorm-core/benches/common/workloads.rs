//! The maintenance benchmarks' two workloads, generated once and shared by
//! `benches/maintenance.rs` and the peer comparison in `bench/peers` (which
//! runs differential-dataflow on exactly these changes), so both measure the
//! same batches.
//!
//! (a) aggregate: COUNT/SUM/AVG of `reviews.rating` by `product_id`, 10M
//!     changes over 1M keys (90% inserts, 10% deletes of live rows), batches
//!     of 10k.
//! (b) field copy: `posts ⋈ users` projecting the author's name onto each
//!     post, 1M posts × 100k users loaded, then 100k renames in batches of 1k
//!     (each rename re-emits the author's ~10 posts twice: 2M view changes).

use super::{scale, table, Rng};
use denorm_core::{Dataflow, SourceBatch};
use denorm_expr::{Aggregate, AggregateFunc, Expr, JoinKind, Plan};
use denorm_types::{Catalog, Datum, Dialect, Diff, Position, Row, ScalarType};

/// The three tables both workloads read.
pub fn catalog() -> Catalog {
    use ScalarType::*;
    let mut c = Catalog::new();
    c.add(table("reviews", &[("id", Int), ("product_id", Int), ("rating", Int)]));
    c.add(table("posts", &[("id", Int), ("author_id", Int), ("title", Text)]));
    c.add(table("users", &[("id", Int), ("name", Text)]));
    c
}

/// A dataflow over [`catalog`] holding the one view `plan`: its rows kept
/// by the columns `key` (the dataflow keeps them for readers) or, with
/// `None`, only its changes emitted (as `denorm run` drives it, the
/// publisher keeping the rows).
pub fn dataflow(name: &str, plan: &Plan, key: Option<Vec<usize>>) -> Dataflow {
    let mut dataflow = Dataflow::new(catalog(), Dialect::Sqlite);
    match key {
        Some(key) => dataflow.add_view(name, plan, key, false),
        None => dataflow.add_view_emitting(name, plan),
    }
    .expect("the workload's view plans");
    dataflow
}

fn get(t: &str, arity: usize) -> Box<Plan> {
    Box::new(Plan::Get { table: t.into(), arity })
}

fn batch(position: u64, table: &str, changes: Vec<(Row, Diff)>) -> SourceBatch {
    SourceBatch { position: Position(position), tables: vec![(table.into(), changes)] }
}

/// Workload (a).
pub struct Aggregates {
    pub changes: usize,
    pub keys: u64,
    pub batch_size: usize,
    /// `reviews` changes, one source batch per batch.
    pub batches: Vec<SourceBatch>,
    /// The same changes typed: (id, product_id, rating, diff).
    pub typed: Vec<Vec<(i64, i64, i64, Diff)>>,
    /// `SELECT product_id, COUNT(*), SUM(rating), AVG(rating) … GROUP BY product_id`.
    pub plan: Plan,
}

pub fn aggregates() -> Aggregates {
    let (changes, keys, batch_size) = (scale(10_000_000), scale(1_000_000) as u64, 10_000);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut live: Vec<Row> = Vec::new();
    let (mut batches, mut typed_batches) = (Vec::new(), Vec::new());
    let mut id = 0;
    for b in 0..changes.div_ceil(batch_size) {
        let (mut rows, mut typed) = (Vec::with_capacity(batch_size), Vec::with_capacity(batch_size));
        for _ in 0..batch_size {
            if rng.below(10) == 0 && !live.is_empty() {
                let row = live.swap_remove(rng.below(live.len() as u64) as usize);
                let (i, k, r) = match (row.get(0), row.get(1), row.get(2)) {
                    (Datum::Int(i), Datum::Int(k), Datum::Int(r)) => (i, k, r),
                    _ => unreachable!("reviews rows are three integers"),
                };
                typed.push((i, k, r, -1));
                rows.push((row, -1));
            } else {
                id += 1;
                let (k, r) = (rng.below(keys) as i64, 1 + rng.below(5) as i64);
                let row = Row::pack([Datum::Int(id), Datum::Int(k), Datum::Int(r)]);
                live.push(row.clone());
                typed.push((id, k, r, 1));
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
    Aggregates { changes, keys, batch_size, batches, typed: typed_batches, plan }
}

/// Workload (b).
pub struct FieldCopy {
    pub posts: i64,
    pub users: i64,
    pub renames: usize,
    pub batch_size: usize,
    /// `users` and `posts` loaded at position 1.
    pub snapshot: SourceBatch,
    /// `users` renames (a delete and an insert each), from position 2.
    pub batches: Vec<SourceBatch>,
    /// `SELECT p.id, p.title, u.name FROM posts p JOIN users u ON u.id = p.author_id`.
    pub plan: Plan,
}

fn post(id: i64, author: i64) -> Row {
    Row::pack([Datum::Int(id), Datum::Int(author), Datum::owned_text(format!("post number {id} about rust"))])
}

fn user(id: i64, generation: u64) -> Row {
    Row::pack([Datum::Int(id), Datum::owned_text(format!("user {id} gen {generation}"))])
}

pub fn field_copy() -> FieldCopy {
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
    let snapshot = SourceBatch {
        position: Position(1),
        tables: vec![
            ("users".into(), (0..users).map(|u| (user(u, 0), 1)).collect()),
            ("posts".into(), (0..posts).map(|p| (post(p, rng.below(users as u64) as i64), 1)).collect()),
        ],
    };
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
    FieldCopy { posts, users, renames, batch_size, snapshot, batches, plan }
}
