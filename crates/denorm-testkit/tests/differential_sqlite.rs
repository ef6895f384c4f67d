//! The central correctness test: random insert/update/delete workloads —
//! primary-key and join-key changes, deletes of referenced rows, NULLs in
//! keys and values, duplicates, groups that empty out — applied in random
//! batch sizes to a real SQLite database and to the engine. After every batch
//! every view must equal SQLite's own answer to the view's SELECT, and carry
//! the column names SQLite gives.
//!
//! Cases: `DENORM_PROPTEST_CASES` (default 2000; `scripts/test` passes
//! `DENORM_PROPTEST_CASES` through as `DENORM_PROPTEST_CASES`).

use denorm_testkit::{Differential, Op, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;

const SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, avatar TEXT, karma INTEGER);
CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT, score INTEGER, created_at INTEGER);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);
CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, user_id INTEGER, rating INTEGER, helpful REAL);
CREATE TABLE follows (id INTEGER PRIMARY KEY, follower_id INTEGER, followee_id INTEGER);
CREATE TABLE ledger (id INTEGER PRIMARY KEY, acct INTEGER, amount REAL, qty INTEGER, note TEXT, raw);
";

const VIEWS: &str = concat!(include_str!("differential.sql"), "\n", include_str!("differential_json.sql"));

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Datum::Null), 5 => s].boxed()
}
fn int(lo: i64, hi: i64) -> BoxedStrategy<Value> {
    (lo..hi).prop_map(Datum::Int).boxed()
}
fn text(choices: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(choices).prop_map(Value::from).boxed()
}
/// Quarter multiples: exact in binary, so sums are exact in any order.
fn quarter() -> BoxedStrategy<Value> {
    (-8i32..12).prop_map(|q| Datum::Float(f64::from(q) * 0.25)).boxed()
}

fn tables() -> Vec<TableSpec> {
    let names = &["ann", "Bob", "cy", "dee"];
    let titles = &["alpha", "Beta", "gamma", "apple", "DATA"];
    vec![
        TableSpec {
            name: "users",
            ids: 8,
            columns: vec![text(names), nullable(text(&["a.png", "b.png"])), nullable(int(-2, 6))],
        },
        TableSpec {
            name: "posts",
            ids: 12,
            columns: vec![nullable(int(0, 9)), nullable(text(titles)), nullable(int(-3, 7)), nullable(int(0, 40))],
        },
        TableSpec {
            name: "products",
            ids: 6,
            columns: vec![nullable(text(&["mug", "pen", "Cup"])), nullable(text(&["a", "b"])), nullable(quarter())],
        },
        TableSpec {
            name: "reviews",
            ids: 14,
            columns: vec![nullable(int(0, 7)), nullable(int(0, 9)), nullable(int(1, 6)), nullable(quarter())],
        },
        TableSpec { name: "follows", ids: 12, columns: vec![int(0, 8), int(0, 8)] },
        TableSpec {
            name: "ledger",
            ids: 10,
            columns: vec![
                nullable(int(0, 4)),
                nullable(amount()),
                nullable(mixed_qty()),
                nullable(note()),
                nullable(untyped()),
            ],
        },
    ]
}

/// REAL values whose sums cancel and depend on the order of additions:
/// tenths, magnitudes far apart, and text the column keeps as text.
fn amount() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (-20i32..20).prop_map(|t| Datum::Float(f64::from(t) * 0.1)),
        2 => proptest::sample::select(&[1e16, -1e16, 1e300, -1e300, 0.3, 1e-300, -0.0][..]).prop_map(Datum::Float),
        1 => text(&["abc", "7", " 2.5 ", "1e2x"]),
    ]
    .boxed()
}

/// Every storage class in an INTEGER column: integers (some large enough
/// that only exact sums keep them apart), REALs SQLite cannot make integers,
/// and text, numeric-looking or not.
fn mixed_qty() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => int(-5, 6),
        1 => proptest::sample::select(&[1i64 << 59, -(1 << 59), (1 << 53) + 1][..]).prop_map(Datum::Int),
        1 => proptest::sample::select(&[2.5, -3.5, 1.0, 0.1][..]).prop_map(Datum::Float),
        2 => text(&["abc", "12x", "7", "-3.5", " 4 ", ""]),
    ]
    .boxed()
}

const BLOBS: &[&[u8]] = &[b"1", b"", &[0, 255], b"2.5"];

/// A column without type affinity: every storage class, 1 and 1.0 side by
/// side (equal in SQLite), numeric text and BLOBs.
fn untyped() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => int(-2, 3),
        1 => proptest::sample::select(&[1.0, -0.0, 2.5, 1e16][..]).prop_map(Datum::Float),
        1 => text(&["1", "abc", " 2x", ""]),
        1 => proptest::sample::select(BLOBS).prop_map(|b| Datum::Blob(b.to_vec().into())),
    ]
    .boxed()
}

/// A TEXT column: SQLite stores the numbers written to it as text, and
/// BLOBs as BLOBs.
fn note() -> BoxedStrategy<Value> {
    prop_oneof![
        text(&["12", "abc", "0.5", "x1"]),
        int(-2, 3),
        Just(Datum::Float(1.5)),
        proptest::sample::select(BLOBS).prop_map(|b| Datum::Blob(b.to_vec().into())),
    ]
    .boxed()
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_view_equals_sqlite(
        ops in proptest::collection::vec(Op::strategy(&tables()), 1..80),
        batch_sizes in proptest::collection::vec(1usize..12, 1..6),
    ) {
        let mut harness = Differential::new(SCHEMA, VIEWS, "differential.sql");
        harness.run(&tables(), &ops, &batch_sizes).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn every_view_plans_and_starts_empty_equal() {
    let harness = Differential::new(SCHEMA, VIEWS, "differential.sql");
    assert!(harness.views.len() >= 20);
    harness.check().unwrap();
}
