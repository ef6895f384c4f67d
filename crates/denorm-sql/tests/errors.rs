//! Every refused construct, with its exact message and position.

mod common;

use denorm_types::Dialect;

const V: &str = "CREATE MATERIALIZED VIEW v AS ";

/// (case, dialect, SQL after `CREATE MATERIALIZED VIEW v AS ` unless it starts with `!`).
const CASES: &[(&str, Dialect, &str)] = &[
    ("window_function", Dialect::Sqlite, "SELECT id, ROW_NUMBER() OVER (ORDER BY id) FROM posts"),
    ("window_clause", Dialect::Sqlite, "SELECT id FROM posts WINDOW w AS (ORDER BY id)"),
    ("scalar_subquery", Dialect::Sqlite, "SELECT id, (SELECT 1) AS one FROM posts"),
    ("in_subquery", Dialect::Sqlite, "SELECT id FROM posts WHERE author_id IN (SELECT id FROM users)"),
    ("exists", Dialect::Sqlite, "SELECT id FROM posts WHERE NOT EXISTS (SELECT 1 FROM users)"),
    ("from_subquery", Dialect::Sqlite, "SELECT x.id FROM (SELECT id FROM posts) x"),
    ("cte", Dialect::Sqlite, "WITH p AS (SELECT id FROM posts) SELECT id FROM p"),
    ("union", Dialect::Sqlite, "SELECT id FROM posts UNION SELECT id FROM users"),
    ("except", Dialect::Postgres, "SELECT id FROM posts EXCEPT SELECT id FROM users"),
    ("order_by", Dialect::Sqlite, "SELECT id FROM posts ORDER BY id"),
    ("limit", Dialect::Sqlite, "SELECT id FROM posts LIMIT 10"),
    ("offset", Dialect::Postgres, "SELECT id FROM posts OFFSET 10"),
    ("fetch", Dialect::Postgres, "SELECT id FROM posts FETCH FIRST 10 ROWS ONLY"),
    ("right_join", Dialect::Sqlite, "SELECT p.id FROM posts p RIGHT JOIN users u ON u.id = p.author_id"),
    ("full_join", Dialect::Postgres, "SELECT p.id FROM posts p FULL OUTER JOIN users u ON u.id = p.author_id"),
    ("cross_join", Dialect::Sqlite, "SELECT p.id FROM posts p CROSS JOIN users u"),
    ("natural_join", Dialect::Sqlite, "SELECT id FROM posts NATURAL JOIN users"),
    ("comma_from", Dialect::Sqlite, "SELECT p.id FROM posts p, users u WHERE u.id = p.author_id"),
    ("using_join", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users u USING (id)"),
    ("join_without_on", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users u"),
    ("join_without_equality", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users u ON u.id > p.author_id"),
    ("join_equality_one_side", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users u ON u.id = u.id"),
    ("unknown_function", Dialect::Sqlite, "SELECT id, md5(title) FROM posts"),
    ("aggregate_in_where", Dialect::Sqlite, "SELECT product_id FROM reviews WHERE COUNT(*) > 1 GROUP BY product_id"),
    ("aggregate_in_on", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users u ON u.id = p.author_id AND MAX(u.id) > 1"),
    ("aggregate_in_group_by", Dialect::Postgres, "SELECT COUNT(*) FROM reviews GROUP BY COUNT(*)"),
    ("nested_aggregate", Dialect::Sqlite, "SELECT product_id, SUM(COUNT(*)) FROM reviews GROUP BY product_id"),
    ("distinct_sum", Dialect::Sqlite, "SELECT product_id, SUM(DISTINCT rating) FROM reviews GROUP BY product_id"),
    ("filter_clause", Dialect::Postgres, "SELECT product_id, COUNT(*) FILTER (WHERE rating > 3) FROM reviews GROUP BY product_id"),
    ("grouping_sets", Dialect::Postgres, "SELECT product_id, COUNT(*) FROM reviews GROUP BY GROUPING SETS ((product_id), ())"),
    ("rollup", Dialect::Postgres, "SELECT product_id, COUNT(*) FROM reviews GROUP BY ROLLUP (product_id)"),
    ("placeholder", Dialect::Sqlite, "SELECT id FROM posts WHERE author_id = ?"),
    ("numbered_placeholder", Dialect::Postgres, "SELECT id FROM posts WHERE author_id = $1"),
    ("plain_view", Dialect::Sqlite, "!CREATE VIEW v AS SELECT id FROM posts"),
    ("other_statement", Dialect::Sqlite, "!CREATE TABLE t (id INT)"),
    ("insert_statement", Dialect::Sqlite, "!INSERT INTO posts VALUES (1)"),
    ("duplicate_view", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v AS SELECT id FROM posts;\nCREATE MATERIALIZED VIEW V AS SELECT id FROM users"),
    ("unknown_table", Dialect::Sqlite, "SELECT id FROM post"),
    ("unknown_column", Dialect::Sqlite, "SELECT nme FROM users"),
    ("unknown_qualified_column", Dialect::Sqlite, "SELECT u.nme FROM users u"),
    ("unknown_qualifier", Dialect::Sqlite, "SELECT x.name FROM users u"),
    ("ambiguous_column", Dialect::Sqlite, "SELECT id FROM posts p JOIN users u ON u.id = p.author_id"),
    ("duplicate_alias", Dialect::Sqlite, "SELECT p.id FROM posts p JOIN users p ON p.id = p.author_id"),
    ("text_plus_int", Dialect::Sqlite, "SELECT 'a' + 1 AS x FROM posts"),
    ("text_eq_int", Dialect::Postgres, "SELECT id FROM posts WHERE title = 1"),
    ("float_modulo", Dialect::Sqlite, "SELECT score % 2 AS x FROM posts"),
    ("float_concat", Dialect::Sqlite, "SELECT title || score AS x FROM posts"),
    ("int_concat_int", Dialect::Postgres, "SELECT id || author_id AS x FROM posts"),
    ("bool_concat", Dialect::Postgres, "SELECT title || (id > 1) AS x FROM posts"),
    ("where_int_postgres", Dialect::Postgres, "SELECT id FROM posts WHERE author_id"),
    ("where_text_sqlite", Dialect::Sqlite, "SELECT id FROM posts WHERE title"),
    ("having_text", Dialect::Sqlite, "SELECT product_id FROM reviews GROUP BY product_id HAVING MAX(body)"),
    ("case_mismatch", Dialect::Sqlite, "SELECT CASE WHEN id > 1 THEN 'a' ELSE 1 END AS x FROM posts"),
    ("coalesce_mismatch", Dialect::Postgres, "SELECT COALESCE(title, id) AS x FROM posts"),
    ("coalesce_one_arg", Dialect::Sqlite, "SELECT COALESCE(title) AS x FROM posts"),
    ("sum_text", Dialect::Sqlite, "SELECT SUM(title) AS s FROM posts"),
    ("avg_text", Dialect::Postgres, "SELECT author_id, AVG(title) FROM posts GROUP BY author_id"),
    ("lower_int", Dialect::Postgres, "SELECT LOWER(id) AS x FROM posts"),
    ("length_int", Dialect::Sqlite, "SELECT LENGTH(id) AS x FROM posts"),
    ("abs_text", Dialect::Sqlite, "SELECT ABS(title) AS x FROM posts"),
    ("like_int", Dialect::Sqlite, "SELECT id FROM posts WHERE id LIKE '1%'"),
    ("ilike_sqlite", Dialect::Sqlite, "SELECT id FROM posts WHERE title ILIKE 'a%'"),
    ("bad_escape", Dialect::Sqlite, "SELECT id FROM posts WHERE title LIKE 'a%' ESCAPE 'xy'"),
    ("cast_float_text", Dialect::Sqlite, "SELECT CAST(score AS TEXT) AS x FROM posts"),
    ("cast_unknown_type", Dialect::Sqlite, "SELECT CAST(id AS DATE) AS x FROM posts"),
    ("cast_varchar_length", Dialect::Postgres, "SELECT CAST(title AS VARCHAR(3)) AS x FROM posts"),
    ("cast_real_postgres", Dialect::Postgres, "SELECT CAST(id AS REAL) AS x FROM posts"),
    ("double_colon_sqlite", Dialect::Sqlite, "SELECT id::text AS x FROM posts"),
    ("ungrouped_column", Dialect::Sqlite, "SELECT product_id, rating FROM reviews GROUP BY product_id"),
    ("ungrouped_qualified", Dialect::Postgres, "SELECT r.product_id, COUNT(*), r.rating FROM reviews r GROUP BY r.product_id"),
    ("ungrouped_global", Dialect::Sqlite, "SELECT id, COUNT(*) FROM posts"),
    ("ungrouped_wildcard", Dialect::Sqlite, "SELECT *, COUNT(*) AS n FROM follows GROUP BY follower_id"),
    ("group_by_position", Dialect::Sqlite, "SELECT product_id FROM reviews GROUP BY 3"),
    ("two_arg_max", Dialect::Sqlite, "SELECT MAX(id, author_id) AS m FROM posts"),
    ("duplicate_output_name", Dialect::Sqlite, "SELECT p.id, u.id FROM posts p JOIN users u ON u.id = p.author_id"),
    ("duplicate_output_name_pg_functions", Dialect::Postgres, "SELECT product_id, COUNT(*), COUNT(user_id) FROM reviews GROUP BY product_id"),
    ("key_not_a_column", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v WITH (key = 'nope') AS SELECT id FROM posts"),
    ("key_not_unique_group_by", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW product_hist WITH (key = 'product_id') AS\n  SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating"),
    ("key_not_unique_distinct", Dialect::Postgres, "!CREATE MATERIALIZED VIEW v WITH (key = 'title') AS SELECT DISTINCT title, author_id FROM posts"),
    ("unknown_option", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v WITH (refresh = '1h') AS SELECT id FROM posts"),
    ("bad_staleness", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v WITH (max_staleness = '2 weeks') AS SELECT id FROM posts"),
    ("option_not_string", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v WITH (max_staleness = 2) AS SELECT id FROM posts"),
    ("malformed_key", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v WITH (key = 'a,') AS SELECT id FROM posts"),
    ("or_replace", Dialect::Sqlite, "!CREATE OR REPLACE MATERIALIZED VIEW v AS SELECT id FROM posts"),
    ("view_column_list", Dialect::Sqlite, "!CREATE MATERIALIZED VIEW v (a) AS SELECT id FROM posts"),
    ("syntax_error", Dialect::Sqlite, "SELECT id FROM posts WHERE"),
    ("syntax_error_trailing", Dialect::Sqlite, "SELECT id FROM posts p q r"),
    ("unterminated_string", Dialect::Sqlite, "SELECT 'abc FROM posts"),
    ("no_from", Dialect::Sqlite, "SELECT 1 AS one"),
    ("empty_select", Dialect::Postgres, "SELECT FROM posts"),
    ("distinct_on", Dialect::Postgres, "SELECT DISTINCT ON (author_id) id FROM posts"),
    ("integer_out_of_range", Dialect::Sqlite, "SELECT 99999999999999999999 AS big FROM posts"),
    ("is_true", Dialect::Postgres, "SELECT id FROM posts WHERE (id > 1) IS TRUE"),
    ("wildcard_in_expression", Dialect::Sqlite, "SELECT COALESCE(*, 1) FROM posts"),
    ("deep_expression", Dialect::Sqlite, "@"),
];

#[test]
fn refused_constructs() {
    let mut report = String::new();
    for (name, dialect, sql) in CASES {
        let sql = match *sql {
            "@" => format!("{V}SELECT {}1 AS x FROM posts", "1 + ".repeat(300)),
            s => match s.strip_prefix('!') {
                Some(full) => full.to_string(),
                None => format!("{V}{s}"),
            },
        };
        let shown = if sql.len() > 200 { format!("{}…", &sql[..120]) } else { sql.clone() };
        report.push_str(&format!("## {name} ({dialect:?})\n{shown}\n{}\n\n", common::error(&sql, *dialect)));
    }
    insta::assert_snapshot!("refused_constructs", report);
}
