//! Regression test for issue 11's group representatives: `GROUP BY x` and
//! `SELECT DISTINCT x` over SQLite values that are equal but spelled apart
//! (`1` and `1.0` in an untyped column, `0.0` and `-0.0` computed) showed
//! the value of the row that created the group, even after that row was
//! deleted. A group now shows the least spelling among its current rows;
//! SQLite shows the first its scan meets, so the views are compared with
//! reference queries that compute the rule (`BY_RULE`, storage classes
//! compared too).

use denorm_testkit::{Differential, Op, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;

const SCHEMA: &str = "CREATE TABLE spelled (id INTEGER PRIMARY KEY, x, r REAL, s INTEGER);";
const VIEWS: &str = include_str!("differential_spellings.sql");
const FILE: &str = "differential_spellings.sql";

fn values() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Datum::Null),
        (0i64..3).prop_map(Datum::Int),
        (0i64..3).prop_map(|i| Datum::Float(i as f64)),
        Just(Datum::Float(-0.0)),
        Just(Value::from("1")),
    ]
    .boxed()
}

fn tables() -> Vec<TableSpec> {
    vec![TableSpec {
        name: "spelled",
        ids: 10,
        columns: vec![
            values(),
            prop_oneof![Just(Datum::Null), Just(Datum::Float(0.0)), Just(Datum::Float(1.5))].boxed(),
            prop_oneof![Just(Datum::Int(1)), Just(Datum::Int(-1))].boxed(),
        ],
    }]
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(256, |c| (c / 8).max(50))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_group_shows_the_least_spelling_of_its_rows(
        ops in proptest::collection::vec(Op::strategy(&tables()), 1..40),
        batch_sizes in proptest::collection::vec(1usize..6, 1..6),
    ) {
        let mut harness = Differential::new(SCHEMA, VIEWS, FILE);
        harness.run(&tables(), &ops, &batch_sizes).map_err(TestCaseError::fail)?;
    }
}

fn shown(harness: &Differential, view: &str) -> Vec<Value> {
    let (_, id) = harness.views.iter().find(|(d, _)| d.name == view).unwrap();
    let mut rows: Vec<Value> =
        harness.dataflow.view_rows(*id).iter().map(|(r, _)| r.iter().next().unwrap().into_owned()).collect();
    rows.sort_by(|a, b| a.total_cmp(b));
    rows
}

fn insert(id: i64, x: Value, r: f64, s: i64) -> Op {
    Op::Insert { table: 0, values: vec![Datum::Int(id), x, Datum::Float(r), Datum::Int(s)] }
}

/// The group of `1.0` and `1`: created by `1.0`, it shows `1` while the
/// integer is there and `1.0` again once it goes; `-0.0` gives way to `0.0`
/// when its row is deleted (SQLite, scanning the rows left, shows them).
#[test]
fn a_deleted_rows_spelling_is_not_shown() {
    let mut harness = Differential::new(SCHEMA, VIEWS, FILE);
    harness.step(&tables(), &[insert(1, Datum::Float(1.0), 0.0, -1)]).unwrap();
    harness.step(&tables(), &[insert(2, Datum::Int(1), 0.0, 1)]).unwrap();
    assert_eq!(shown(&harness, "spelled_groups"), [Datum::Int(1)]);
    assert_eq!(shown(&harness, "spelled_distinct"), [Datum::Int(1)]);
    let p = shown(&harness, "spelled_products");
    assert!(matches!(p[..], [Datum::Float(z)] if z == 0.0 && z.is_sign_negative()), "{p:?}");
    // Delete id 1 (the row that created both groups): SQLite's values.
    harness.step(&tables(), &[Op::Delete { table: 0, target: 0 }]).unwrap();
    let (_, sqlite) = harness.reference.query("SELECT x, r * s FROM spelled").unwrap();
    assert_eq!(shown(&harness, "spelled_groups"), [sqlite[0][0].clone()]);
    let p = shown(&harness, "spelled_products");
    assert!(matches!(p[..], [Datum::Float(z)] if z == 0.0 && !z.is_sign_negative()), "{p:?}");
    assert!(matches!(sqlite[0][1], Datum::Float(z) if !z.is_sign_negative()));
    // And back: the integer goes, the double is shown.
    harness.step(&tables(), &[insert(3, Datum::Float(1.0), 0.0, 1), Op::Delete { table: 0, target: 0 }]).unwrap();
    assert_eq!(shown(&harness, "spelled_groups"), [Datum::Float(1.0)]);
    assert_eq!(shown(&harness, "spelled_distinct"), [Datum::Float(1.0)]);
}
