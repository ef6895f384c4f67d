//! TPC-H's subquery shapes (Q2, Q4, Q11, Q16, Q17, Q18, Q20, Q21, Q22:
//! EXISTS / NOT EXISTS correlated by `=` and `<>`, IN / NOT IN, scalar
//! aggregates correlated or not, in WHERE and HAVING, nested) kept by the
//! engine under random writes to a small TPC-H-like schema, and compared
//! with SQLite's own answer after every batch. Keys draw from tiny domains
//! so that rows collide, groups empty out and correlation values repeat;
//! columns are nullable, so NULL correlation values and NULL `IN` operands
//! occur.
//!
//! Cases: a quarter of `DENORM_PROPTEST_CASES` (500 in CI; default 300).

use denorm_testkit::{Differential, Op, TableSpec};
use denorm_types::{Datum, Value};
use proptest::prelude::*;

const SCHEMA: &str = "
CREATE TABLE nation (id INTEGER PRIMARY KEY, n_name TEXT);
CREATE TABLE part (id INTEGER PRIMARY KEY, p_name TEXT, p_brand TEXT, p_size INTEGER);
CREATE TABLE supplier (id INTEGER PRIMARY KEY, s_name TEXT, s_nationkey INTEGER, s_comment TEXT);
CREATE TABLE partsupp (id INTEGER PRIMARY KEY, ps_partkey INTEGER, ps_suppkey INTEGER, ps_availqty INTEGER, ps_supplycost REAL);
CREATE TABLE customer (id INTEGER PRIMARY KEY, c_nationkey INTEGER, c_acctbal REAL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, o_custkey INTEGER, o_orderstatus TEXT, o_orderdate TEXT);
CREATE TABLE lineitem (id INTEGER PRIMARY KEY, l_orderkey INTEGER, l_partkey INTEGER, l_suppkey INTEGER,
                       l_quantity REAL, l_shipdate TEXT, l_commitdate TEXT, l_receiptdate TEXT);
";

const VIEWS: &str = "
CREATE MATERIALIZED VIEW q2 AS
SELECT s.s_name, p.id AS p_partkey, ps.ps_supplycost FROM part p
JOIN partsupp ps ON p.id = ps.ps_partkey JOIN supplier s ON s.id = ps.ps_suppkey
WHERE p.p_size > 1 AND ps.ps_supplycost = (SELECT MIN(ps2.ps_supplycost) FROM partsupp ps2
                                          JOIN supplier s2 ON s2.id = ps2.ps_suppkey
                                          WHERE p.id = ps2.ps_partkey AND s2.s_nationkey < 2);

CREATE MATERIALIZED VIEW q4 AS
SELECT o_orderstatus, COUNT(*) AS order_count FROM orders
WHERE o_orderdate >= '1994' AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = orders.id AND l_commitdate < l_receiptdate)
GROUP BY o_orderstatus;

CREATE MATERIALIZED VIEW q11 AS
SELECT ps_partkey, SUM(ps_supplycost * ps_availqty) AS value FROM partsupp
GROUP BY ps_partkey
HAVING SUM(ps_supplycost * ps_availqty) > (SELECT SUM(ps_supplycost * ps_availqty) * 0.25 FROM partsupp);

CREATE MATERIALIZED VIEW q16 AS
SELECT p.p_brand, p.p_size, COUNT(DISTINCT ps.ps_suppkey) AS supplier_cnt
FROM partsupp ps JOIN part p ON p.id = ps.ps_partkey
WHERE p.p_brand <> 'b1' AND ps.ps_suppkey NOT IN (SELECT id FROM supplier WHERE s_comment LIKE '%complaint%')
GROUP BY p.p_brand, p.p_size;

CREATE MATERIALIZED VIEW q17 AS
SELECT SUM(l.l_quantity) / 7.0 AS avg_yearly FROM lineitem l JOIN part p ON p.id = l.l_partkey
WHERE p.p_brand = 'b2' AND l.l_quantity < (SELECT 0.8 * AVG(l2.l_quantity) FROM lineitem l2 WHERE l2.l_partkey = p.id);

CREATE MATERIALIZED VIEW q18 AS
SELECT o.id AS o_orderkey, o.o_custkey, SUM(l.l_quantity) AS quantity
FROM orders o JOIN lineitem l ON o.id = l.l_orderkey
WHERE o.id IN (SELECT l_orderkey FROM lineitem GROUP BY l_orderkey HAVING SUM(l_quantity) > 2)
GROUP BY o.id, o.o_custkey;

CREATE MATERIALIZED VIEW q20 AS
SELECT s.id, s.s_name FROM supplier s
WHERE s.id IN (SELECT ps_suppkey FROM partsupp
               WHERE ps_partkey IN (SELECT id FROM part WHERE p_name LIKE 'f%')
                 AND ps_availqty > (SELECT 0.5 * SUM(l_quantity) FROM lineitem
                                    WHERE l_partkey = ps_partkey AND l_suppkey = ps_suppkey AND l_shipdate >= '1994'));

CREATE MATERIALIZED VIEW q21 AS
SELECT s.s_name, COUNT(*) AS numwait FROM supplier s
JOIN lineitem l1 ON s.id = l1.l_suppkey JOIN orders o ON o.id = l1.l_orderkey
WHERE o.o_orderstatus = 'F' AND l1.l_receiptdate > l1.l_commitdate
  AND EXISTS (SELECT * FROM lineitem l2 WHERE l2.l_orderkey = l1.l_orderkey AND l2.l_suppkey <> l1.l_suppkey)
  AND NOT EXISTS (SELECT * FROM lineitem l3 WHERE l3.l_orderkey = l1.l_orderkey
                  AND l3.l_suppkey <> l1.l_suppkey AND l3.l_receiptdate > l3.l_commitdate)
GROUP BY s.s_name;

CREATE MATERIALIZED VIEW q22 AS
SELECT c_nationkey, COUNT(*) AS numcust, SUM(c_acctbal) AS totacctbal FROM customer
WHERE c_nationkey IN (0, 1, 3)
  AND c_acctbal > (SELECT AVG(c_acctbal) FROM customer WHERE c_acctbal > 0.0 AND c_nationkey IN (0, 1, 3))
  AND NOT EXISTS (SELECT * FROM orders WHERE o_custkey = customer.id)
GROUP BY c_nationkey;
";

fn nullable(s: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![1 => Just(Datum::Null), 6 => s].boxed()
}
fn int(lo: i64, hi: i64) -> BoxedStrategy<Value> {
    (lo..hi).prop_map(Datum::Int).boxed()
}
fn text(choices: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(choices).prop_map(Value::from).boxed()
}
/// Quarter multiples: exact in binary, so sums are exact in any order.
fn quarter() -> BoxedStrategy<Value> {
    (0i32..12).prop_map(|q| Datum::Float(f64::from(q) * 0.25)).boxed()
}

fn tables() -> Vec<TableSpec> {
    let dates = &["1993-06", "1994-01", "1995-01"];
    vec![
        TableSpec { name: "nation", ids: 4, columns: vec![nullable(text(&["x", "y"]))] },
        TableSpec {
            name: "part",
            ids: 3,
            columns: vec![
                nullable(text(&["forest", "fig", "oak"])),
                nullable(text(&["b1", "b2"])),
                nullable(int(0, 4)),
            ],
        },
        TableSpec {
            name: "supplier",
            ids: 3,
            columns: vec![
                nullable(text(&["s1", "s2", "s3"])),
                nullable(int(0, 4)),
                nullable(text(&["ok", "a complaint", "fine"])),
            ],
        },
        TableSpec {
            name: "partsupp",
            ids: 10,
            columns: vec![nullable(int(0, 3)), nullable(int(0, 3)), nullable(int(0, 4)), nullable(quarter())],
        },
        TableSpec { name: "customer", ids: 4, columns: vec![nullable(int(0, 4)), nullable(quarter())] },
        TableSpec {
            name: "orders",
            ids: 3,
            columns: vec![nullable(int(0, 4)), nullable(text(&["F", "O"])), nullable(text(dates))],
        },
        TableSpec {
            name: "lineitem",
            ids: 16,
            columns: vec![
                nullable(int(0, 3)),
                nullable(int(0, 3)),
                nullable(int(0, 3)),
                nullable(quarter()),
                nullable(text(dates)),
                nullable(text(dates)),
                nullable(text(dates)),
            ],
        },
    ]
}

fn cases() -> u32 {
    std::env::var("DENORM_PROPTEST_CASES").ok().and_then(|c| c.parse::<u32>().ok()).map_or(300, |c| (c / 4).max(50))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn tpch_subquery_views_equal_sqlite(
        ops in proptest::collection::vec(Op::strategy(&tables()), 1..120),
        batch_sizes in proptest::collection::vec(1usize..16, 1..6),
    ) {
        let mut harness = Differential::new(SCHEMA, VIEWS, "tpch.sql");
        harness.run(&tables(), &ops, &batch_sizes).map_err(TestCaseError::fail)?;
    }
}
