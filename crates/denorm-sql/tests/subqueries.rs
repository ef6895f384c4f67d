//! Subqueries in expressions: their decorrelated plans, the keys and reads
//! they leave the view, and every refused form with its message.

mod common;

use common::{describe, error, plan_one};
use denorm_sql::KeyOrigin;
use denorm_types::Dialect;

const V: &str = "CREATE MATERIALIZED VIEW v AS ";

/// (snapshot, SQL after `CREATE MATERIALIZED VIEW v AS `).
const PLANS: &[(&str, &str)] = &[
    (
        "exists_correlated",
        "SELECT u.id, u.name FROM users u WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.score > 0)",
    ),
    ("not_exists", "SELECT id FROM products p WHERE NOT EXISTS (SELECT * FROM reviews r WHERE r.product_id = p.id)"),
    ("in_not_null", "SELECT id FROM posts WHERE author_id IN (SELECT id FROM users WHERE name = 'ann')"),
    ("not_in_nullable", "SELECT id, author_id NOT IN (SELECT user_id FROM reviews) AS not_reviewer FROM posts"),
    (
        "scalar_correlated_count",
        "SELECT u.id, (SELECT COUNT(*) FROM posts p WHERE p.author_id = u.id) AS posts FROM users u",
    ),
    (
        "scalar_correlated_avg",
        "SELECT r.id FROM reviews r WHERE r.rating > (SELECT 0.5 * AVG(r2.rating) FROM reviews r2 WHERE r2.product_id = r.product_id)",
    ),
    ("scalar_uncorrelated", "SELECT id, price - (SELECT AVG(price) FROM products) AS above FROM products"),
    ("scalar_unique_row", "SELECT p.id, (SELECT u.name FROM users u WHERE u.id = p.author_id) AS author FROM posts p"),
    (
        "having_uncorrelated",
        "SELECT product_id, COUNT(*) AS n FROM reviews GROUP BY product_id HAVING COUNT(*) > (SELECT COUNT(*) FROM products)",
    ),
    (
        "exists_not_equal",
        "SELECT r1.id FROM reviews r1 WHERE EXISTS (SELECT 1 FROM reviews r2 WHERE r2.product_id = r1.product_id AND r2.user_id <> r1.user_id)",
    ),
    (
        "exists_outer_only_term",
        "SELECT p.id FROM posts p WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = p.author_id AND p.score > 1)",
    ),
    (
        "correlated_over_groups",
        "SELECT p.author_id, (SELECT u.name FROM users u WHERE u.id = p.author_id) AS author FROM posts p GROUP BY p.author_id HAVING COUNT(*) > (SELECT COUNT(*) FROM reviews r WHERE r.user_id = p.author_id)",
    ),
    (
        "correlation_on_expression",
        "SELECT p.id FROM posts p WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.rating = p.author_id + 1)",
    ),
];

#[test]
fn subquery_plans() {
    for (name, sql) in PLANS {
        for (dialect, suffix) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
            let view = plan_one(&format!("{V}{sql}"), dialect);
            insta::assert_snapshot!(format!("{name}_{suffix}"), describe(&view));
        }
    }
}

#[test]
fn subqueries_keep_the_outer_key_and_add_their_reads() {
    let sql = "CREATE MATERIALIZED VIEW v AS SELECT p.id, p.title FROM posts p
               WHERE p.author_id NOT IN (SELECT user_id FROM reviews WHERE rating > 3)
                 AND EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = p.author_id)";
    let view = plan_one(sql, Dialect::Sqlite);
    assert_eq!(
        (view.key.columns.clone(), view.key.origin, view.key.proven_unique),
        (vec![0], KeyOrigin::PrimaryKey, true)
    );
    let reads: Vec<String> =
        view.dependencies.iter().map(|d| format!("{}({})", d.table, d.columns.join(", "))).collect();
    assert_eq!(reads, ["posts(id, author_id, title)", "reviews(user_id, rating)", "follows(followee_id)"]);
}

/// (case, dialect, SQL after `CREATE MATERIALIZED VIEW v AS `).
const REFUSED: &[(&str, Dialect, &str)] = &[
    (
        "in_correlated_non_equality",
        Dialect::Sqlite,
        "SELECT id FROM posts p WHERE author_id IN (SELECT r.user_id FROM reviews r WHERE r.rating > p.score)",
    ),
    (
        "scalar_correlated_outer_only",
        Dialect::Sqlite,
        "SELECT id, (SELECT MAX(rating) FROM reviews r WHERE p.score > 1) AS m FROM posts p",
    ),
    (
        "exists_grouped_non_equality",
        Dialect::Sqlite,
        "SELECT id FROM posts p WHERE EXISTS (SELECT r.product_id FROM reviews r WHERE r.rating <> p.author_id GROUP BY r.product_id)",
    ),
    (
        "correlated_in_select_list_of_subquery",
        Dialect::Postgres,
        "SELECT id, (SELECT MAX(r.rating) + p.score FROM reviews r WHERE r.user_id = p.author_id) AS x FROM posts p",
    ),
    (
        "correlated_in_having",
        Dialect::Sqlite,
        "SELECT author_id, COUNT(*) FROM posts p GROUP BY author_id HAVING COUNT(*) > (SELECT COUNT(*) FROM reviews r WHERE r.user_id = p.id)",
    ),
    (
        "correlated_in_having_not_equality",
        Dialect::Sqlite,
        "SELECT author_id, COUNT(*) FROM posts p GROUP BY author_id HAVING EXISTS (SELECT 1 FROM reviews r WHERE r.user_id < p.author_id)",
    ),
    ("scalar_many_rows", Dialect::Postgres, "SELECT id, (SELECT name FROM users) AS any_name FROM posts"),
    (
        "scalar_grouped",
        Dialect::Sqlite,
        "SELECT id, (SELECT COUNT(*) FROM reviews GROUP BY product_id) AS n FROM posts",
    ),
    ("scalar_two_columns", Dialect::Sqlite, "SELECT id, (SELECT id, name FROM users WHERE id = 1) AS x FROM posts"),
    (
        "exists_global_aggregate",
        Dialect::Sqlite,
        "SELECT id FROM posts p WHERE EXISTS (SELECT COUNT(*) FROM reviews r WHERE r.user_id = p.author_id)",
    ),
    ("in_type_mismatch", Dialect::Postgres, "SELECT id FROM posts WHERE title IN (SELECT id FROM users)"),
    (
        "correlation_type_mismatch",
        Dialect::Postgres,
        "SELECT id FROM posts p WHERE EXISTS (SELECT 1 FROM users u WHERE u.name = p.author_id)",
    ),
    (
        "subquery_in_join_on",
        Dialect::Sqlite,
        "SELECT p.id FROM posts p JOIN users u ON u.id = p.author_id AND u.id IN (SELECT user_id FROM reviews)",
    ),
    ("subquery_in_group_by", Dialect::Sqlite, "SELECT COUNT(*) FROM posts GROUP BY (SELECT 1 FROM users)"),
    (
        "subquery_in_aggregate",
        Dialect::Sqlite,
        "SELECT author_id, SUM((SELECT COUNT(*) FROM users)) FROM posts GROUP BY author_id",
    ),
    (
        "correlation_two_levels_out",
        Dialect::Sqlite,
        "SELECT u.id FROM users u WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = u.id))",
    ),
    (
        "feed_with_subquery",
        Dialect::Sqlite,
        "!CREATE MATERIALIZED VIEW f WITH (partition_by = 'follower_id', order_by = 'post_id DESC', fanout_limit = 100) AS SELECT f.follower_id, p.id AS post_id FROM follows f JOIN posts p ON p.author_id = f.followee_id WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = p.author_id)",
    ),
    (
        "grouped_select_uses_subquery_aggregate",
        Dialect::Sqlite,
        "SELECT author_id, COUNT(*) IN (SELECT rating FROM reviews) AS hit FROM posts",
    ),
    ("subquery_inner_error", Dialect::Sqlite, "SELECT id FROM posts WHERE EXISTS (SELECT nope FROM users WHERE x = 1)"),
];

#[test]
fn refused_subqueries() {
    let mut report = String::new();
    for (name, dialect, sql) in REFUSED {
        let sql = match sql.strip_prefix('!') {
            Some(full) => full.to_string(),
            None => format!("{V}{sql}"),
        };
        report.push_str(&format!("## {name} ({dialect:?})\n{sql}\n{}\n\n", error(&sql, *dialect)));
    }
    insta::assert_snapshot!("refused_subqueries", report);
}
