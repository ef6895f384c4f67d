//! Plans of the seed scenarios, snapshot-tested in both dialects.

mod common;

use common::{describe, plan_one};
use denorm_sql::{plan_views, KeyOrigin};
use denorm_types::{Dialect, ScalarType};

const CASES: &[(&str, &str)] = &[
    (
        "top_k_per_group",
        "CREATE MATERIALIZED VIEW top_posts AS
           SELECT author_id, post_id, score FROM (
             SELECT author_id, id AS post_id, score,
                    ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY score DESC, id) AS rn
             FROM posts) AS ranked
           WHERE rn <= 10",
    ),
    (
        "top_k_with_row_number",
        "CREATE MATERIALIZED VIEW newest AS
           SELECT r.id, r.rn, u.name FROM (
             SELECT id, user_id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY LENGTH(body) DESC NULLS LAST, id) AS rn
             FROM reviews) AS r JOIN users u ON u.id = r.user_id
           WHERE r.rn BETWEEN 1 AND 3 AND u.name <> 'x'",
    ),
    (
        "aggregate_over_aggregate",
        "CREATE MATERIALIZED VIEW ratings_per_product AS
           SELECT product_id, COUNT(*) AS ratings
           FROM (SELECT product_id, rating FROM reviews GROUP BY product_id, rating) AS h
           GROUP BY product_id",
    ),
    (
        "field_copy_join",
        "CREATE MATERIALIZED VIEW post_cards AS
           SELECT p.*, u.name AS author_name FROM posts p JOIN users u ON u.id = p.author_id",
    ),
    (
        "product_review_stats",
        "CREATE MATERIALIZED VIEW product_cards WITH (key = 'product_id', max_staleness = '1s') AS
           SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, AVG(r.rating) AS avg_rating
           FROM products p LEFT JOIN reviews r ON r.product_id = p.id
           GROUP BY p.id, p.name",
    ),
    (
        "rating_histogram",
        "CREATE MATERIALIZED VIEW product_hist AS
           SELECT product_id, rating, COUNT(*) FROM reviews GROUP BY product_id, rating",
    ),
    (
        "having_with_hidden_aggregate",
        "CREATE MATERIALIZED VIEW busy_products AS
           SELECT product_id, SUM(rating) / COUNT(*) AS mean FROM reviews
           GROUP BY product_id HAVING COUNT(*) > 10 AND MAX(rating) = 5",
    ),
    (
        "distinct_reviewers",
        "CREATE MATERIALIZED VIEW reviewers AS SELECT DISTINCT user_id, product_id FROM reviews WHERE rating >= 4",
    ),
    ("global_count", "CREATE MATERIALIZED VIEW review_total AS SELECT COUNT(*) AS n, SUM(rating) FROM reviews"),
    (
        "expressions",
        "CREATE MATERIALIZED VIEW shouty AS
           SELECT id, UPPER(name) AS loud, id || '-' || name AS slug, price * 2 AS double_price,
                  CASE WHEN price > 10 THEN 'dear' WHEN price BETWEEN 1 AND 10 THEN 'fair' ELSE 'cheap' END AS band,
                  CASE id WHEN 1 THEN 'first' END AS firstness,
                  COALESCE(NULL, price, 0) AS p, NULLIF(name, '') AS n, ABS(-price) AS a, LENGTH(name) AS len,
                  CAST(price AS INTEGER) AS whole, name LIKE 'a%' AS a_name, id IN (1, 2, 3) AS small, price > 3 AS dear
           FROM products WHERE name IS NOT NULL AND NOT id NOT IN (7)",
    ),
    (
        "feed_join",
        "CREATE MATERIALIZED VIEW feed AS
           SELECT f.follower_id, p.id AS post_id, p.title
           FROM follows f JOIN posts p ON p.author_id = f.followee_id AND p.score > 0.5",
    ),
    (
        "group_by_expression",
        "CREATE MATERIALIZED VIEW by_band AS
           SELECT rating / 2 AS band, COUNT(*) + 1 AS c, (rating / 2) * 10 AS scaled FROM reviews GROUP BY rating / 2",
    ),
    (
        "group_by_ordinal_and_alias",
        "CREATE MATERIALIZED VIEW by_product AS
           SELECT product_id AS pid, rating % 2 AS parity, COUNT(DISTINCT user_id) AS users FROM reviews GROUP BY 1, parity",
    ),
    (
        "default_names",
        "CREATE MATERIALIZED VIEW named AS
           SELECT product_id, COUNT(*), sum( r.rating ), CAST(product_id + 0 AS TEXT), max(rating) + 1, CASE WHEN product_id > 1 THEN 1 END
           FROM reviews r GROUP BY product_id",
    ),
];

#[test]
fn seed_plans() {
    for (name, sql) in CASES {
        for (dialect, suffix) in [(Dialect::Sqlite, "sqlite"), (Dialect::Postgres, "postgres")] {
            let view = plan_one(sql, dialect);
            insta::assert_snapshot!(format!("{name}_{suffix}"), describe(&view));
        }
    }
}

#[test]
fn keys_are_derived() {
    let key = |sql: &str| plan_one(sql, Dialect::Sqlite).key;
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT title, id FROM posts");
    assert_eq!((k.columns, k.origin, k.proven_unique), (vec![1], KeyOrigin::PrimaryKey, true));
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT p.id, u.name FROM posts p JOIN users u ON u.id = p.author_id");
    assert_eq!((k.columns, k.origin), (vec![0], KeyOrigin::PrimaryKey));
    // Joining to the many side multiplies posts: the post id is no longer a key.
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT u.id, p.title FROM users u JOIN posts p ON p.author_id = u.id");
    assert_eq!((k.origin, k.proven_unique), (KeyOrigin::AllColumns, false));
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT title FROM posts");
    assert_eq!((k.columns, k.origin, k.proven_unique), (vec![0], KeyOrigin::AllColumns, false));
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT DISTINCT title FROM posts");
    assert_eq!((k.origin, k.proven_unique), (KeyOrigin::AllColumns, true));
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT COUNT(*) FROM posts");
    assert_eq!((k.columns, k.origin, k.proven_unique), (vec![], KeyOrigin::GroupBy, true));
    // A group expression left out of the select list: no key can be derived.
    let k = key("CREATE MATERIALIZED VIEW v AS SELECT COUNT(*) AS n FROM reviews GROUP BY product_id");
    assert_eq!((k.origin, k.proven_unique), (KeyOrigin::AllColumns, false));
    // A declared key that is not proven but checkable at runtime.
    let k = key("CREATE MATERIALIZED VIEW v WITH (key = 'title') AS SELECT title FROM posts");
    assert_eq!((k.columns, k.origin, k.proven_unique), (vec![0], KeyOrigin::Declared, false));
    let k = key("CREATE MATERIALIZED VIEW v WITH (key = 'id, title') AS SELECT title, id FROM posts");
    assert_eq!((k.columns, k.proven_unique), (vec![1, 0], true));
    let k = key("CREATE MATERIALIZED VIEW v WITH (key = 'f, p') AS SELECT f.follower_id AS f, p.id AS p FROM follows f JOIN posts p ON p.author_id = f.followee_id");
    assert!(k.proven_unique);
}

#[test]
fn typing_rules() {
    let col = |sql: &str, dialect| {
        let v = plan_one(&format!("CREATE MATERIALIZED VIEW v AS SELECT {sql} AS x FROM products"), dialect);
        (v.columns[0].ty, v.columns[0].nullable)
    };
    use ScalarType::*;
    let s = Dialect::Sqlite;
    let p = Dialect::Postgres;
    assert_eq!(col("id + 1", s), (Int, false));
    assert_eq!(col("id + price", s), (Float, false));
    assert_eq!(col("id / 2", s), (Int, true), "SQLite: division by zero is NULL");
    assert_eq!(col("id / 2", p), (Int, false));
    assert_eq!(col("id > 1", s), (Int, false), "SQLite returns booleans as 0/1");
    assert_eq!(col("id > 1", p), (Bool, false));
    assert_eq!(col("TRUE", s), (Int, false));
    assert_eq!(col("TRUE", p), (Bool, false));
    assert_eq!(col("NULL", p), (Null, true));
    assert_eq!(col("CASE WHEN id > 1 THEN 1 ELSE 2.5 END", s), (Float, false));
    assert_eq!(col("CASE WHEN id > 1 THEN 1 ELSE 2.5 END", p), (Numeric, false), "PostgreSQL: 2.5 is numeric");
    assert_eq!(col("price * 1.5", p), (Float, false), "double precision * numeric");
    assert_eq!(col("CASE WHEN id > 1 THEN 1 END", p), (Int, true));
    assert_eq!(col("COALESCE(NULL, id)", p), (Int, false));
    assert_eq!(col("CAST(name AS BOOLEAN)", p), (Bool, false));
    assert_eq!(col("CAST(id AS BOOLEAN)", s), (Int, false));
    assert_eq!(col("LENGTH(name)", s), (Int, false));
    assert_eq!(col("name || id", s), (Text, false));
    assert_eq!(col("(id > 1) + 1", s), (Int, false));
}

#[test]
fn outer_join_columns_become_nullable() {
    let v = plan_one(
        "CREATE MATERIALIZED VIEW v AS SELECT p.name, r.rating FROM products p LEFT JOIN reviews r ON r.product_id = p.id",
        Dialect::Postgres,
    );
    assert!(!v.columns[0].nullable);
    assert!(v.columns[1].nullable);
}

#[test]
fn several_views_and_errors_are_all_reported() {
    let sql = "CREATE MATERIALIZED VIEW a AS SELECT id FROM users;
               CREATE MATERIALIZED VIEW b AS SELECT nope FROM users;
               CREATE MATERIALIZED VIEW c AS SELECT FROM WHERE;
               CREATE MATERIALIZED VIEW a AS SELECT id FROM posts;
               CREATE MATERIALIZED VIEW d AS SELECT id FROM posts;";
    let errors = plan_views(sql, &common::catalog(), Dialect::Sqlite).unwrap_err();
    let rendered: Vec<String> = errors.iter().map(|e| e.render("views.sql")).collect();
    insta::assert_snapshot!("several_views_errors", rendered.join("\n"));
    let ok = plan_views(
        "CREATE MATERIALIZED VIEW a AS SELECT id FROM users; -- first\n\nCREATE MATERIALIZED VIEW b AS SELECT id FROM posts;",
        &common::catalog(),
        Dialect::Sqlite,
    )
    .unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok[1].select_sql, "SELECT id FROM posts");
    assert_eq!((ok[1].location.line, ok[1].location.column), (3, 1));
}

/// The function library (issue 11): each call as `denorm check` shows it.
#[test]
fn function_library_plans() {
    let cases = [
        (
            "functions_sqlite",
            Dialect::Sqlite,
            "CREATE MATERIALIZED VIEW f AS
               SELECT id, substr(title, 2, 3) AS s, strftime('%Y', body, '+1 month') AS y, iif(score > 1, 'a', 'b') AS i,
                      printf('%5.1f', score) AS p, max(score, 1) AS m, trim(title, 'x') AS t, ifnull(body, '') AS b
               FROM posts",
        ),
        (
            "aggregates_sqlite",
            Dialect::Sqlite,
            "CREATE MATERIALIZED VIEW g AS
               SELECT product_id, total(rating) AS t, SUM(DISTINCT rating) AS s, COUNT(*) FILTER (WHERE rating > 3) AS good,
                      group_concat(body, '; ' ORDER BY id DESC) AS bodies, group_concat(body) AS any_order
               FROM reviews GROUP BY product_id",
        ),
        (
            "functions_postgres",
            Dialect::Postgres,
            "CREATE MATERIALIZED VIEW f AS
               SELECT id, extract(year from CAST(body AS DATE)) AS y, date_trunc('month', CAST(body AS TIMESTAMP)) AS m,
                      substring(title from 2 for 3) AS s, split_part(title, ',', 2) AS p,
                      round(CAST(score AS NUMERIC), 2) AS r, position('a' in title), TRIM(LEADING 'x' FROM title)
               FROM posts",
        ),
        (
            "aggregates_postgres",
            Dialect::Postgres,
            "CREATE MATERIALIZED VIEW g AS
               SELECT product_id, bool_and(rating > 2) AS all_good, string_agg(body, ',' ORDER BY id) AS bodies,
                      SUM(DISTINCT rating) AS s, AVG(rating) FILTER (WHERE user_id IS NOT NULL) AS a
               FROM reviews GROUP BY product_id",
        ),
    ];
    for (name, dialect, sql) in cases {
        insta::assert_snapshot!(name, describe(&plan_one(sql, dialect)));
    }
}
