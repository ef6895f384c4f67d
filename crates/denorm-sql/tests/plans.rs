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
        "top_k_rank_with_ties",
        "CREATE MATERIALIZED VIEW best_rated AS
           SELECT author_id, post_id, score, rk FROM (
             SELECT author_id, id AS post_id, score,
                    RANK() OVER (PARTITION BY author_id ORDER BY score DESC) AS rk
             FROM posts) AS ranked
           WHERE rk <= 3",
    ),
    (
        "top_k_dense_rank_unselected",
        "CREATE MATERIALIZED VIEW top_scores AS
           SELECT author_id, score FROM (
             SELECT author_id, score, DENSE_RANK() OVER (PARTITION BY author_id ORDER BY score) AS rk
             FROM posts) AS ranked
           WHERE rk < 3",
    ),
    (
        "lag_and_lead",
        "CREATE MATERIALIZED VIEW score_steps AS
           SELECT id, author_id, score - LAG(score, 1, 0) OVER (PARTITION BY author_id ORDER BY score, id) AS step,
                  LEAD(title, 2, 'last') OVER (ORDER BY id) AS later
           FROM posts",
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
    (
        "comma_join_order",
        "CREATE MATERIALIZED VIEW v AS
           SELECT p.title, r.rating, u.name FROM posts p, reviews r, users u
           WHERE u.id = r.user_id AND p.author_id = u.id AND r.rating > 3 AND p.score > r.rating",
    ),
    (
        "or_common_equality",
        "CREATE MATERIALIZED VIEW v AS
           SELECT r.id, p.name FROM reviews r, products p
           WHERE (p.id = r.product_id AND p.price < 10 AND r.rating = 5)
              OR (r.product_id = p.id AND p.price >= 10 AND r.rating >= 4)",
    ),
    (
        "cross_join_residual",
        "CREATE MATERIALIZED VIEW v AS
           SELECT u.name, p.name AS product FROM users u CROSS JOIN products p WHERE p.price > u.id",
    ),
    (
        "using_and_natural",
        "CREATE MATERIALIZED VIEW v AS
           SELECT users.id, name, p.title, f.followee_id FROM users NATURAL JOIN flags
           LEFT JOIN (follows f JOIN posts p ON p.author_id = f.followee_id) ON f.follower_id = users.id",
    ),
    (
        "cross_join_then_left_join",
        "CREATE MATERIALIZED VIEW v AS
           SELECT p.id AS post_id, u.name, f.follower_id
           FROM posts p CROSS JOIN users u LEFT JOIN follows f ON f.followee_id = u.id
           WHERE p.author_id = u.id AND (f.follower_id IS NULL OR f.follower_id <> p.id)",
    ),
    (
        "right_and_full",
        "CREATE MATERIALIZED VIEW v AS
           SELECT p.id AS post_id, u.id AS user_id, r.id AS review_id
           FROM posts p RIGHT JOIN users u ON u.id = p.author_id FULL JOIN reviews r ON r.user_id = u.id",
    ),
    (
        // A USING over a column a FULL JOIN merged: COALESCE(p.id, u.id) = r.id
        // (a computed join key), and COALESCE of all three after a second FULL.
        "using_over_full_merged",
        "CREATE MATERIALIZED VIEW v AS
           SELECT id, p.title, u.name, r.rating, f.on FROM posts p FULL JOIN users u USING (id)
           JOIN reviews r USING (id) FULL JOIN flags f USING (id)",
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
    // ROW_NUMBER() ... = 1 keeps one row per partition; RANK()/DENSE_RANK()
    // = 1 keep every tie, and their number is not unique in a partition.
    let top = |f: &str, rk: &str| {
        key(&format!(
            "CREATE MATERIALIZED VIEW v AS SELECT author_id{rk} FROM (SELECT author_id, \
             {f}() OVER (PARTITION BY author_id ORDER BY score DESC, id) AS rk FROM posts) AS r WHERE rk = 1"
        ))
    };
    let k = top("ROW_NUMBER", "");
    assert_eq!((k.columns, k.proven_unique), (vec![0], true));
    assert!(top("ROW_NUMBER", ", rk").proven_unique);
    for f in ["RANK", "DENSE_RANK"] {
        for rk in ["", ", rk"] {
            let k = top(f, rk);
            assert!(!k.proven_unique, "{f}{rk}: {k:?}");
        }
    }
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

/// Regression: PostgreSQL types SUM(bigint) as numeric and SUM(integer) as
/// bigint; denorm typed every integer SUM as bigint, so SUM(bigint) showed
/// the wrong type and failed the view on a sum past 2^63 that PostgreSQL
/// returns. reviews.rating is an `integer`, every other integer a `bigint`.
#[test]
fn postgres_sum_of_integers_is_typed_by_width() {
    let col = |select: &str, from: &str| {
        let sql = format!("CREATE MATERIALIZED VIEW v AS SELECT {select} AS x FROM {from}");
        plan_one(&sql, Dialect::Postgres).columns[0].ty
    };
    use ScalarType::*;
    let reviews = "reviews";
    let cases = [
        ("SUM(id)", reviews, Numeric),
        ("SUM(rating)", reviews, Int),
        ("SUM(DISTINCT id)", reviews, Numeric),
        ("SUM(DISTINCT rating)", reviews, Int),
        ("SUM(rating) FILTER (WHERE id > 1)", reviews, Int),
        ("SUM(rating + 1)", reviews, Int),
        ("SUM(-rating)", reviews, Int),
        ("SUM(rating + id)", reviews, Numeric),
        ("SUM(rating + 3000000000)", reviews, Numeric),
        ("SUM(CASE WHEN id > 1 THEN 1 ELSE 0 END)", reviews, Int),
        ("SUM(CASE WHEN id > 1 THEN id ELSE 0 END)", reviews, Numeric),
        ("SUM(COALESCE(rating, 0))", reviews, Int),
        ("SUM(NULLIF(rating, 0))", reviews, Int),
        ("SUM(CAST(id AS INTEGER))", reviews, Int),
        ("SUM(rating::bigint)", reviews, Numeric),
        ("SUM(INTEGER '3')", reviews, Int),
        ("SUM(length(body))", reviews, Int),
        ("SUM(abs(rating))", reviews, Int),
        ("SUM(1)", reviews, Int),
        ("SUM(CAST(body AS DATE) - CAST(body AS DATE))", reviews, Int),
        ("AVG(rating)", reviews, Numeric),
        ("AVG(id)", reviews, Numeric),
        ("COUNT(*)", reviews, Int),
        ("SUM(r)", "(SELECT rating AS r FROM reviews) AS d", Int),
        ("SUM(r)", "(SELECT MAX(rating) AS r FROM reviews GROUP BY product_id) AS d", Int),
        ("SUM(r)", "(SELECT SUM(rating) AS r FROM reviews GROUP BY product_id) AS d", Numeric),
        ("SUM(r)", "(SELECT COUNT(*) AS r FROM reviews GROUP BY product_id) AS d", Numeric),
        ("SUM(r)", "(SELECT rating AS r FROM reviews UNION ALL SELECT 1) AS d", Int),
        ("SUM(r)", "(SELECT rating AS r FROM reviews UNION ALL SELECT id FROM reviews) AS d", Numeric),
        ("SUM(r)", "(SELECT (SELECT MAX(rating) FROM reviews) AS r FROM users) AS d", Int),
        ("SUM(r)", "(SELECT LAG(rating) OVER (ORDER BY id) AS r FROM reviews) AS d", Int),
        ("SUM(r)", "(SELECT LAG(rating, 1, 5000000000) OVER (ORDER BY id) AS r FROM reviews) AS d", Numeric),
        ("SUM(r)", "(SELECT LAG(id) OVER (ORDER BY id) AS r FROM reviews) AS d", Numeric),
        ("SUM(r)", "(SELECT (SELECT MAX(r.rating) FROM reviews r WHERE r.user_id = u.id) AS r FROM users u) AS d", Int),
    ];
    for (select, from, want) in cases {
        assert_eq!(col(select, from), want, "SELECT {select} FROM {from}");
    }
    // SQLite has one integer type: every integer SUM is an integer.
    let v = plan_one("CREATE MATERIALIZED VIEW v AS SELECT SUM(id) AS x FROM reviews", Dialect::Sqlite);
    assert_eq!(v.columns[0].ty, Int);
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

/// A view with three independent problems (two select items, the WHERE)
/// reports all three, in source order, each naming the view; a view with
/// one problem still reports one.
#[test]
fn every_independent_error_of_a_view_is_reported() {
    let sql = "CREATE MATERIALIZED VIEW three AS
                 SELECT id, nope, soundex(name) AS s FROM users WHERE missing > 1;
               CREATE MATERIALIZED VIEW one AS SELECT id FROM users WHERE gone = 1;";
    let errors = plan_views(sql, &common::catalog(), Dialect::Sqlite).unwrap_err();
    let rendered: Vec<String> = errors.iter().map(|e| e.render("views.sql")).collect();
    assert_eq!(errors.len(), 4, "{}", rendered.join("\n"));
    assert!(errors[..3].iter().all(|e| e.view.as_deref() == Some("three")), "{rendered:?}");
    assert_eq!(errors[3].view.as_deref(), Some("one"));
    assert!(rendered[0].contains("nope"), "{}", rendered[0]);
    assert!(rendered[1].contains("soundex"), "{}", rendered[1]);
    assert!(rendered[2].contains("missing"), "{}", rendered[2]);
    let lines: Vec<_> = errors[..3].iter().map(|e| e.location).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "not in source order: {lines:?}");
}

/// A catalog of `n` tables `t{i}(id, next)` and the view joining them as a
/// chain `t{i}.next = t{i+1}.id`: with JOIN … ON in FROM order, or with
/// commas in reverse order and the conditions in WHERE.
fn chain(n: usize, commas: bool) -> (denorm_types::Catalog, String) {
    use denorm_types::{Catalog, ColumnSchema, TableSchema};
    let mut catalog = Catalog::new();
    for i in 0..n {
        let col = |name: &str| ColumnSchema { name: name.into(), ty: ScalarType::Int, nullable: false };
        catalog.add(TableSchema {
            name: format!("t{i}"),
            columns: vec![col("id"), col("next")],
            primary_key: vec![0],
            unique_keys: vec![],
        });
    }
    let select = format!("CREATE MATERIALIZED VIEW chain AS SELECT t0.id, t{}.next FROM", n - 1);
    if !commas {
        let joins: String = (1..n).map(|i| format!(" JOIN t{i} ON t{i}.id = t{}.next", i - 1)).collect();
        return (catalog, format!("{select} t0{joins}"));
    }
    let tables: Vec<String> = (0..n).rev().map(|i| format!("t{i}")).collect();
    let conditions: Vec<String> = (1..n).map(|i| format!("t{}.next = t{i}.id", i - 1)).collect();
    (catalog, format!("{select} {} WHERE {}", tables.join(", "), conditions.join(" AND ")))
}

/// A 64-table chain plans as 63 equi-joins without a product, both ways.
/// (Planning once cost twice as much per table: key properties were
/// computed twice per join side; 64 tables would not finish.)
#[test]
fn a_64_table_chain_plans_as_equi_joins() {
    let n = 64;
    for commas in [false, true] {
        let (catalog, sql) = chain(n, commas);
        let views = plan_views(&sql, &catalog, Dialect::Sqlite).unwrap_or_else(|e| panic!("{}", e[0].render("v.sql")));
        let plan = views[0].plan.to_string();
        assert_eq!(plan.matches("Join on left.").count(), n - 1, "{plan}");
        assert!(!plan.contains("product") && !plan.contains("Filter"), "{plan}");
        assert!(views[0].key.proven_unique, "t0.id identifies a row of the chain");
    }
}

/// Plans are walked recursively downstream, so their depth is bounded: a
/// FROM joins at most 200 relations.
#[test]
fn joining_more_than_200_relations_is_refused() {
    let (catalog, sql) = chain(200, true);
    assert!(plan_views(&sql, &catalog, Dialect::Sqlite).is_ok());
    let (catalog, sql) = chain(201, false);
    let errors = plan_views(&sql, &catalog, Dialect::Sqlite).unwrap_err();
    assert_eq!(errors[0].message, "a FROM clause may join at most 200 tables and subqueries");
}

/// `*` over `JOIN … USING`: the pair once, at the left column's place in
/// SQLite, first in PostgreSQL; a RIGHT JOIN's merged column is the right
/// one (never NULL here), qualified names still see both.
#[test]
fn star_over_using_follows_each_dialect() {
    let names = |sql: &str, dialect| {
        let v = plan_one(sql, dialect);
        v.columns.iter().map(|c| format!("{}{}", c.name, if c.nullable { "?" } else { "" })).collect::<Vec<_>>()
    };
    let users = "(SELECT id AS followee_id, name FROM users) AS u";
    let inner = format!("CREATE MATERIALIZED VIEW v AS SELECT * FROM follows f JOIN {users} USING (followee_id)");
    assert_eq!(names(&inner, Dialect::Sqlite), ["follower_id", "followee_id", "name"]);
    assert_eq!(names(&inner, Dialect::Postgres), ["followee_id", "follower_id", "name"]);
    let right = format!(
        "CREATE MATERIALIZED VIEW v AS SELECT *, f.followee_id AS f_id FROM follows f RIGHT JOIN {users} USING (followee_id)"
    );
    assert_eq!(names(&right, Dialect::Sqlite), ["follower_id?", "followee_id", "name", "f_id?"]);
    let natural =
        format!("CREATE MATERIALIZED VIEW v AS SELECT followee_id, name FROM follows NATURAL LEFT JOIN {users}");
    assert_eq!(names(&natural, Dialect::Postgres), ["followee_id", "name?"]);
}

/// An equality between expressions keys a join: each side is computed
/// below it. PostgreSQL compares an integer with a double as a double, so
/// the integer side is cast; SQLite compares them exactly, so that
/// equality stays a residual.
#[test]
fn expression_equalities_are_join_keys() {
    let sql = "CREATE MATERIALIZED VIEW v AS SELECT r.id, p.id AS post_id FROM reviews r, posts p
               WHERE r.rating + 1 = p.author_id * 2 AND p.score = r.user_id";
    let plan = |dialect| plan_one(sql, dialect).plan.to_string();
    let text = format!("{}\n{}", plan(Dialect::Postgres), plan(Dialect::Sqlite));
    insta::assert_snapshot!("expression_equalities_are_join_keys", text);
}

/// TPC-H's multi-table queries as the specification writes their FROM and
/// WHERE (comma joins, join keys among the filters, Q7's OR of names, Q19's
/// OR of branches that each repeat the join key) plan as equi-joins: no
/// product anywhere.
/// TPC-H's tables (the columns the queries below read), with row
/// estimates at scale factor 1 when `estimates`.
fn tpch_catalog(estimates: bool) -> denorm_types::Catalog {
    use denorm_types::{Catalog, ColumnSchema, TableSchema};
    let tables: &[(&str, &str, u64)] = &[
        ("part", "p_partkey p_name:t p_brand:t p_type:t p_size p_container:t", 200_000),
        ("supplier", "s_suppkey s_name:t s_nationkey", 10_000),
        ("partsupp", "ps_partkey ps_suppkey ps_supplycost:f", 800_000),
        ("customer", "c_custkey c_nationkey", 150_000),
        ("orders", "o_orderkey o_custkey o_orderdate:t o_orderstatus:t", 1_500_000),
        (
            "lineitem",
            "l_orderkey l_partkey l_suppkey l_quantity l_extendedprice:f l_discount:f l_shipdate:t l_shipmode:t l_shipinstruct:t",
            6_000_000,
        ),
        ("nation", "n_nationkey n_name:t n_regionkey", 25),
        ("region", "r_regionkey r_name:t", 5),
    ];
    let mut catalog = Catalog::new();
    for (name, columns, rows) in tables {
        let columns = columns
            .split(' ')
            .map(|c| {
                let (name, ty) = match c.split_once(':') {
                    Some((n, "t")) => (n, ScalarType::Text),
                    Some((n, _)) => (n, ScalarType::Float),
                    None => (c, ScalarType::Int),
                };
                ColumnSchema { name: name.into(), ty, nullable: false }
            })
            .collect();
        catalog.add(TableSchema { name: (*name).into(), columns, primary_key: vec![0], unique_keys: vec![] });
        if estimates {
            catalog.set_row_estimate(name, *rows);
        }
    }
    catalog
}

/// The tables of a plan's joins in the order they are joined (the
/// left-deep tree's leaves, deepest first).
fn join_order(plan: &str) -> Vec<String> {
    plan.lines().filter_map(|l| l.trim_start().strip_prefix("Get ")).map(str::to_string).collect()
}

/// Join order (issue 12): a restricted table joins first, the smallest
/// once restricted (by the catalog's row estimates, else by the guess
/// alone); an OR whose branches each restrict a table filters it before
/// the joins; equalities join by transitivity without redundant keys. The
/// intermediate results stay those of the restricted rows.
#[test]
fn restricted_tables_join_first() {
    let q7 = "SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, SUM(l_extendedprice) AS revenue
         FROM supplier, lineitem, orders, customer, nation n1, nation n2
         WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
           AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
           AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
           AND l_shipdate BETWEEN '1995-01-01' AND '1996-12-31'
         GROUP BY n1.n_name, n2.n_name";
    let q21 = "SELECT s_name, COUNT(*) AS numwait FROM supplier, lineitem, orders, nation
         WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND o_orderstatus = 'F'
           AND s_nationkey = n_nationkey AND n_name = 'SAUDI ARABIA' GROUP BY s_name";
    let q5 = "SELECT n_name, SUM(l_extendedprice) AS revenue
         FROM customer, orders, lineitem, supplier, nation, region
         WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
           AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
           AND r_name = 'ASIA' AND o_orderdate >= '1994-01-01' AND o_orderdate < '1995-01-01'
         GROUP BY n_name";
    let plan = |q: &str, estimates: bool| {
        let views =
            plan_views(&format!("CREATE MATERIALIZED VIEW v AS {q}"), &tpch_catalog(estimates), Dialect::Sqlite)
                .unwrap_or_else(|e| panic!("{}", e[0].render("q.sql")));
        denorm_expr::optimize(views[0].plan.clone()).to_string()
    };
    let order = |q: &str, estimates: bool| join_order(&plan(q, estimates));
    assert_eq!(order(q7, true), ["nation", "supplier", "lineitem", "orders", "customer", "nation"]);
    let q7_plan = plan(q7, true);
    assert_eq!(q7_plan.matches("Filter ((#1 = 'FRANCE') OR (#1 = 'GERMANY'))").count(), 1, "{q7_plan}");
    assert_eq!(q7_plan.matches("Filter ((#1 = 'GERMANY') OR (#1 = 'FRANCE'))").count(), 1, "{q7_plan}");
    assert_eq!(order(q21, true), ["nation", "supplier", "lineitem", "orders"]);
    // Without estimates orders ('F') and nation tie on the guess: FROM order.
    assert_eq!(order(q21, false), ["orders", "lineitem", "supplier", "nation"]);
    // Customers join their nation directly (c_nationkey = n_nationkey by
    // transitivity), not every supplier of it; suppliers join last on
    // their key and nation, each once.
    assert_eq!(order(q5, true), ["region", "nation", "customer", "orders", "lineitem", "supplier"]);
    let q5_plan = plan(q5, true);
    let last_join = q5_plan.lines().find(|l| l.trim_start().starts_with("Join")).unwrap_or_default();
    assert_eq!(last_join.matches(" = ").count(), 2, "{q5_plan}");
}

#[test]
fn tpch_comma_joins_plan_as_equi_joins() {
    let catalog = tpch_catalog(false);
    let queries = [
        "SELECT n_name, SUM(l_extendedprice * (1 - l_discount)) AS revenue
         FROM customer, orders, lineitem, supplier, nation, region
         WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey
           AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey
           AND r_name = 'ASIA' AND o_orderdate >= '1994-01-01' AND o_orderdate < '1995-01-01'
         GROUP BY n_name",
        "SELECT n1.n_name AS supp_nation, n2.n_name AS cust_nation, SUM(l_extendedprice) AS revenue
         FROM supplier, lineitem, orders, customer, nation n1, nation n2
         WHERE s_suppkey = l_suppkey AND o_orderkey = l_orderkey AND c_custkey = o_custkey
           AND s_nationkey = n1.n_nationkey AND c_nationkey = n2.n_nationkey
           AND ((n1.n_name = 'FRANCE' AND n2.n_name = 'GERMANY') OR (n1.n_name = 'GERMANY' AND n2.n_name = 'FRANCE'))
           AND l_shipdate BETWEEN '1995-01-01' AND '1996-12-31'
         GROUP BY n1.n_name, n2.n_name",
        "SELECT o_orderdate, SUM(CASE WHEN n2.n_name = 'BRAZIL' THEN l_extendedprice ELSE 0 END) AS brazil
         FROM part, supplier, lineitem, orders, customer, nation n1, nation n2, region
         WHERE p_partkey = l_partkey AND s_suppkey = l_suppkey AND l_orderkey = o_orderkey
           AND o_custkey = c_custkey AND c_nationkey = n1.n_nationkey AND n1.n_regionkey = r_regionkey
           AND r_name = 'AMERICA' AND s_nationkey = n2.n_nationkey AND p_type = 'ECONOMY ANODIZED STEEL'
         GROUP BY o_orderdate",
        "SELECT n_name, SUM(l_extendedprice * (1 - l_discount) - ps_supplycost * l_quantity) AS amount
         FROM part, supplier, lineitem, partsupp, orders, nation
         WHERE s_suppkey = l_suppkey AND ps_suppkey = l_suppkey AND ps_partkey = l_partkey
           AND p_partkey = l_partkey AND o_orderkey = l_orderkey AND s_nationkey = n_nationkey
           AND p_name LIKE '%green%'
         GROUP BY n_name",
        "SELECT SUM(l_extendedprice * (1 - l_discount)) AS revenue FROM lineitem, part
         WHERE (p_partkey = l_partkey AND p_brand = 'Brand#12' AND l_quantity >= 1 AND p_size BETWEEN 1 AND 5
                AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')
            OR (p_partkey = l_partkey AND p_brand = 'Brand#23' AND l_quantity >= 10 AND p_size BETWEEN 1 AND 10
                AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')
            OR (p_partkey = l_partkey AND p_brand = 'Brand#34' AND l_quantity >= 20 AND p_size BETWEEN 1 AND 15
                AND l_shipmode IN ('AIR', 'AIR REG') AND l_shipinstruct = 'DELIVER IN PERSON')",
    ];
    for (i, q) in queries.iter().enumerate() {
        let sql = format!("CREATE MATERIALIZED VIEW q{i} AS {q}");
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let views = plan_views(&sql, &catalog, dialect).unwrap_or_else(|e| panic!("{}", e[0].render("q.sql")));
            let plan = views[0].plan.to_string();
            let joins = plan.lines().filter(|l| l.trim_start().starts_with("Join")).count();
            assert_eq!(joins, plan.matches("Get ").count() - 1, "{plan}");
            assert!(!plan.contains("(a product)"), "query {i}:\n{plan}");
            if std::env::var("SHOW_PLANS").is_ok() {
                println!("{plan}");
            }
        }
    }
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
            "date_arithmetic_postgres",
            Dialect::Postgres,
            "CREATE MATERIALIZED VIEW d AS
               SELECT id, CAST(body AS DATE) + 30 AS d, CAST(body AS DATE) - CAST(title AS DATE) AS n,
                      CAST(body AS TIMESTAMP) - INTERVAL '1 mon 2 days' AS t, INTERVAL '90 days' + CAST(body AS DATE) AS u,
                      CAST(body AS DATE) + '1 hour'::interval AS h, CAST(body AS DATE) - 7 AS w
               FROM posts",
        ),
        (
            "interval_values_postgres",
            Dialect::Postgres,
            "CREATE MATERIALIZED VIEW iv AS
               SELECT id, CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP) AS took,
                      age(CAST(body AS TIMESTAMP), CAST(title AS TIMESTAMP)) AS a,
                      (CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP)) * 2 - INTERVAL '1 day' AS twice,
                      CAST(title AS TIMESTAMP) + (CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP)) / 2 AS middle,
                      extract(epoch FROM CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP)) AS seconds,
                      justify_interval(-INTERVAL '40 days') AS j,
                      date_trunc('hour', CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP)) AS hours
               FROM posts WHERE CAST(body AS TIMESTAMP) - CAST(title AS TIMESTAMP) > '1 day'",
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

/// `WITH (index = …)` names output columns; a sink creates the indexes.
#[test]
fn index_option_names_output_columns() {
    let sql =
        "CREATE MATERIALIZED VIEW v WITH (index = 'title, id; author_id') AS SELECT id, author_id, title FROM posts";
    let view = common::plan_one(sql, Dialect::Sqlite);
    assert_eq!(view.indexes, vec![vec![2, 0], vec![1]]);
    let bad = "CREATE MATERIALIZED VIEW v WITH (index = 'nope') AS SELECT id FROM posts";
    let error = common::error(bad, Dialect::Sqlite);
    assert!(error.contains("index column \"nope\" is not an output column"), "{error}");
}
