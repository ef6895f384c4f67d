//! Whole queries: ORDER BY … LIMIT/OFFSET (top-N), ORDER BY as the read
//! order, UNION/EXCEPT/INTERSECT, WITH, and queries without FROM; plans
//! snapshot-tested in both dialects.

mod common;

use common::{describe, plan_one};
use denorm_sql::KeyOrigin;
use denorm_types::{Dialect, ScalarType};

const CASES: &[(&str, &str)] = &[
    ("top_n", "SELECT id, title, score FROM posts ORDER BY score DESC, id LIMIT 10"),
    ("top_n_offset_by_alias", "SELECT id AS post, title FROM posts ORDER BY post DESC LIMIT 5 OFFSET 10"),
    ("top_n_hidden_expression", "SELECT id, title FROM posts ORDER BY LENGTH(title) DESC, id LIMIT 3"),
    (
        "top_n_grouped_by_hidden_aggregate",
        "SELECT author_id FROM posts GROUP BY author_id ORDER BY COUNT(*) DESC, 1 LIMIT 3",
    ),
    ("read_order", "SELECT id, title FROM posts ORDER BY 2 DESC, id"),
    ("union", "SELECT id FROM posts UNION SELECT id FROM users"),
    (
        "union_all_ordered",
        "SELECT id, title AS label FROM posts UNION ALL SELECT id, name FROM users
           UNION ALL SELECT id, name FROM products ORDER BY label, 1 LIMIT 5",
    ),
    ("except", "SELECT author_id FROM posts EXCEPT SELECT id FROM users WHERE email IS NULL"),
    ("intersect", "SELECT user_id FROM reviews INTERSECT SELECT id FROM users"),
    ("precedence", "SELECT id FROM posts UNION SELECT id FROM users INTERSECT SELECT id FROM products"),
    ("parenthesized_limit", "SELECT x.id FROM (SELECT id FROM posts ORDER BY id DESC LIMIT 3) AS x"),
    ("int_and_float", "SELECT id AS v FROM posts UNION ALL SELECT score FROM posts"),
    (
        "cte_twice",
        "WITH s AS (SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id)
         SELECT a.author_id, a.n, b.n AS m FROM s a JOIN s b ON a.author_id = b.author_id",
    ),
    (
        "cte_chain_shadowing_a_table",
        "WITH users AS (SELECT id, title AS name FROM posts), u2 (k) AS (SELECT id FROM users) SELECT k FROM u2",
    ),
    (
        "cte_set_operation",
        "WITH ids AS (SELECT id FROM posts UNION SELECT id FROM users) SELECT COUNT(*) AS n FROM ids",
    ),
    ("no_from", "SELECT 1 AS one, 'x' AS s"),
    ("no_from_branch", "SELECT id, name FROM users UNION ALL SELECT 0, 'nobody'"),
    ("values", "VALUES (1, 'a'), (2, NULL), (1, 'a')"),
    ("values_operand", "SELECT id, name FROM users EXCEPT VALUES (1, 'ann'), (2 + 1, 'b' || 'c')"),
];

#[test]
fn query_plans() {
    for (name, sql) in CASES {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let view = plan_one(&format!("CREATE MATERIALIZED VIEW v AS {sql}"), dialect);
            let suffix = format!("{dialect:?}").to_lowercase();
            insta::assert_snapshot!(format!("{name}_{suffix}"), describe(&view), sql);
        }
    }
}

/// PostgreSQL's `OFFSET m ROWS FETCH FIRST n ROWS ONLY` is `LIMIT n OFFSET m`.
#[test]
fn fetch_first_is_a_limit() {
    let plan = |sql: &str| plan_one(&format!("CREATE MATERIALIZED VIEW v AS {sql}"), Dialect::Postgres).plan;
    assert_eq!(
        plan("SELECT id, title FROM posts ORDER BY id OFFSET 2 ROWS FETCH FIRST 3 ROWS ONLY"),
        plan("SELECT id, title FROM posts ORDER BY id LIMIT 3 OFFSET 2")
    );
    assert_eq!(
        plan("SELECT id FROM posts ORDER BY id FETCH FIRST ROW ONLY"),
        plan("SELECT id FROM posts ORDER BY id LIMIT 1")
    );
}

#[test]
fn keys_of_set_operations() {
    let key = |sql: &str| plan_one(&format!("CREATE MATERIALIZED VIEW v AS {sql}"), Dialect::Postgres).key;
    // UNION, EXCEPT and INTERSECT return sets: all columns, proven.
    for op in ["UNION", "EXCEPT", "INTERSECT"] {
        let k = key(&format!("SELECT author_id, title FROM posts {op} SELECT id, name FROM users"));
        assert_eq!((k.columns, k.origin, k.proven_unique), (vec![0, 1], KeyOrigin::AllColumns, true), "{op}");
    }
    // The ALL forms are bags: a row may repeat.
    for op in ["UNION ALL", "EXCEPT ALL", "INTERSECT ALL"] {
        let k = key(&format!("SELECT author_id FROM posts {op} SELECT id FROM users"));
        assert_eq!((k.origin, k.proven_unique), (KeyOrigin::AllColumns, false), "{op}");
    }
    // A top-N keeps its input's key; a constant row is unique.
    let k = key("SELECT id, title FROM posts ORDER BY title LIMIT 3");
    assert_eq!((k.columns, k.origin, k.proven_unique), (vec![0], KeyOrigin::PrimaryKey, true));
    assert!(key("SELECT 1 AS one").proven_unique);
    let declared = plan_one(
        "CREATE MATERIALIZED VIEW v WITH (key = 'id') AS SELECT id FROM posts UNION SELECT id FROM users",
        Dialect::Sqlite,
    );
    assert_eq!((declared.key.columns, declared.key.proven_unique), (vec![0], true));
}

#[test]
fn set_operation_columns_unify() {
    let v = plan_one(
        "CREATE MATERIALIZED VIEW v AS SELECT id AS v FROM posts UNION SELECT score FROM posts",
        Dialect::Postgres,
    );
    assert_eq!((v.columns[0].name.as_str(), v.columns[0].ty, v.columns[0].nullable), ("v", ScalarType::Float, true));
    let v = plan_one("CREATE MATERIALIZED VIEW v AS SELECT 1 AS a UNION ALL SELECT NULL", Dialect::Sqlite);
    assert_eq!((v.columns[0].ty, v.columns[0].nullable), (ScalarType::Int, true));
    assert!(v.dependencies.is_empty());
}

#[test]
fn long_set_operation_chains_are_refused_not_overflowed() {
    for n in [65, 2000] {
        let sql = format!("CREATE MATERIALIZED VIEW v AS SELECT 1 AS a{}", " UNION ALL SELECT 2".repeat(n));
        let e = common::error(&sql, Dialect::Sqlite);
        assert!(e.contains("more than 64 UNION/EXCEPT/INTERSECT") || e.contains("tokens"), "{e}");
    }
    // At the limit, a chain plans (one Union of all branches).
    let sql = format!("CREATE MATERIALIZED VIEW v AS SELECT 1 AS a{}", " EXCEPT SELECT 2".repeat(64));
    assert_eq!(plan_one(&sql, Dialect::Postgres).columns.len(), 1);
}
