//! Regression test for issue 11: SQLite joins and filters comparing an
//! INTEGER or REAL column with a TEXT one (`JOIN b ON a.i = b.t`) were
//! refused ("operator does not exist: integer = text"). SQLite converts
//! before comparing (datatype3.html §4.2): NUMERIC affinity to the text when
//! the number is a column (`'1'`, `' 1'`, `'1.0'`, `'1e0'` equal 1, `'1x'`
//! and `'01x'` do not), TEXT affinity to the number when only the text is a
//! column (`a.i + 0 = b.t` compares `'1'` with the text). A subquery's
//! column has its expression's affinity: a bare column's or a CAST's, none
//! for a computed one, an aggregate's or a scalar subquery's `max(…)` (so
//! TEXT affinity converts the number there: `' 1'` no longer equals 1).
//! Random workloads
//! over such spellings run on a real SQLite and the engine; after every
//! batch every view must equal SQLite's answer, row for row.

use denorm_testkit::{Differential, Op, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;

const SCHEMA: &str = "
CREATE TABLE a (id INTEGER PRIMARY KEY, i INTEGER, r REAL);
CREATE TABLE b (id INTEGER PRIMARY KEY, t TEXT, n INTEGER);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW int_text AS SELECT a.id AS a_id, b.id AS b_id, a.i, b.t FROM a JOIN b ON a.i = b.t;
CREATE MATERIALIZED VIEW text_int AS SELECT a.id AS a_id, b.id AS b_id FROM b JOIN a ON b.t = a.i;
CREATE MATERIALIZED VIEW real_text AS SELECT a.id AS a_id, b.id AS b_id, a.r FROM a, b WHERE a.r = b.t;
CREATE MATERIALIZED VIEW left_int_text AS SELECT a.id AS a_id, b.id AS b_id FROM a LEFT JOIN b ON a.i = b.t;
CREATE MATERIALIZED VIEW counted AS SELECT b.t, COUNT(a.id) AS n FROM b LEFT JOIN a ON b.t = a.r GROUP BY b.t;
CREATE MATERIALIZED VIEW number_expr_text AS SELECT a.id AS a_id, b.id AS b_id FROM a JOIN b ON a.i + 0 = b.t;
CREATE MATERIALIZED VIEW real_expr_text AS SELECT a.id AS a_id, b.id AS b_id FROM a JOIN b ON a.r * 1 = b.t;
CREATE MATERIALIZED VIEW int_text_expr AS SELECT a.id AS a_id, b.id AS b_id FROM a JOIN b ON a.i = b.t || '';
CREATE MATERIALIZED VIEW cast_text AS SELECT a.id AS a_id, b.id AS b_id FROM a JOIN b ON CAST(b.n AS INTEGER) = b.t AND a.id = b.id;
CREATE MATERIALIZED VIEW compared AS
SELECT a.id AS a_id, b.id AS b_id, a.i = b.t AS eq, a.i < b.t AS lt, b.t >= a.r AS ge FROM a JOIN b ON a.id = b.id;
CREATE MATERIALIZED VIEW filtered AS SELECT id, t FROM b WHERE n = t OR t = n + 0;
CREATE MATERIALIZED VIEW sub_column AS SELECT s.id AS a_id, b.id AS b_id FROM (SELECT id, i AS x FROM a) AS s JOIN b ON s.x = b.t;
CREATE MATERIALIZED VIEW sub_computed AS
SELECT s.id AS a_id, b.id AS b_id FROM (SELECT id, i + 0 AS x FROM a) AS s JOIN b ON s.x = b.t;
CREATE MATERIALIZED VIEW sub_cast AS
SELECT s.id AS a_id, b.id AS b_id FROM (SELECT id, CAST(i AS INTEGER) AS x FROM a) AS s JOIN b ON s.x = b.t;
CREATE MATERIALIZED VIEW sub_count AS
SELECT g.i, b.id AS b_id, g.n FROM (SELECT i, COUNT(*) AS n FROM a GROUP BY i) AS g JOIN b ON g.n = b.t;
CREATE MATERIALIZED VIEW sub_group_expr AS
SELECT g.x, b.id AS b_id FROM (SELECT i + 0 AS x FROM a GROUP BY i + 0) AS g JOIN b ON g.x = b.t;
CREATE MATERIALIZED VIEW scalar_max AS SELECT b.id, b.t FROM b WHERE b.t = (SELECT max(i) FROM a);
";

const INTS: &[&str] = &["1", "1x", "01x", "abc", "2"];
const TEXTS: &[&str] = &["1", " 1", "1 ", "1.0", "1e0", "01", "1x", "01x", "abc", "2", " 2 ", "1.5", "-0", "0", ""];

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Datum::Null), 6 => s].boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-1i64..3).prop_map(Datum::Int),
        1 => proptest::sample::select(&[1.0, 1.5, 2.0, -0.0, 0.5][..]).prop_map(Datum::Float),
        1 => proptest::sample::select(INTS).prop_map(Value::from),
    ]
    .boxed()
}

fn text() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => proptest::sample::select(TEXTS).prop_map(Value::from),
        1 => (0i64..3).prop_map(Datum::Int),
        1 => Just(Datum::Float(1.0)),
    ]
    .boxed()
}

fn tables() -> Vec<TableSpec> {
    vec![
        TableSpec { name: "a", ids: 10, columns: vec![nullable(number()), nullable(number())] },
        TableSpec { name: "b", ids: 12, columns: vec![nullable(text()), nullable(number())] },
    ]
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(300, |c| (c / 4).max(50))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn number_text_comparisons_equal_sqlite(
        ops in proptest::collection::vec(Op::strategy(&tables()), 1..50),
        batch_sizes in proptest::collection::vec(1usize..10, 1..6),
    ) {
        let mut harness = Differential::new(SCHEMA, VIEWS, "differential_affinity");
        harness.run(&tables(), &ops, &batch_sizes).map_err(TestCaseError::fail)?;
    }
}

/// Every spelling against every number at once: the join matches SQLite's
/// row for row (`'1'`, `' 1'`, `'1.0'`, `'1e0'`, `'01'` join 1; `'1x'` and
/// NULL join nothing; `'1x'` in the INTEGER column joins the text `'1x'`).
#[test]
fn every_spelling_joins_as_in_sqlite() {
    let mut harness = Differential::new(SCHEMA, VIEWS, "differential_affinity");
    let mut ops = Vec::new();
    let numbers = [Datum::Int(1), Datum::Float(1.0), Datum::Float(1.5), Value::from("1x"), Datum::Null, Datum::Int(2)];
    for (id, i) in numbers.iter().enumerate() {
        ops.push(Op::Insert { table: 0, values: vec![Datum::Int(id as i64), i.clone(), i.clone()] });
    }
    for (id, t) in TEXTS.iter().enumerate() {
        ops.push(Op::Insert { table: 1, values: vec![Datum::Int(id as i64), Value::from(*t), Datum::Int(1)] });
    }
    ops.push(Op::Insert { table: 1, values: vec![Datum::Int(50), Datum::Null, Datum::Null] });
    harness.run(&tables(), &ops, &[7]).unwrap();
    let rows = harness.dataflow.view_rows(harness.views.iter().find(|(d, _)| d.name == "int_text").unwrap().1);
    assert!(rows.len() >= 10, "the join matched: {}", rows.len());
}
