//! The differential views' reference queries: for a view whose own SELECT
//! SQLite cannot run, or whose SELECT leaves an order unspecified, the
//! standard SQL that gives its rows. Shared by the tests that compare
//! `tests/differential.sql` with SQLite (through the dataflow and through
//! `denorm run`).

/// Standard SQL equal to a view whose own SELECT SQLite cannot run (LIMIT
/// inside an aggregate call is a denorm extension): the first n elements by
/// ROW_NUMBER over the same order, aggregated with FILTER. Also a view whose
/// SELECT leaves an order unspecified: unordered group_concat is joined in
/// the order of the values' text.
pub const REFERENCE_SQL: &[(&str, &str)] = &[
    (
        "distinct_titles",
        "SELECT author_id, group_concat(DISTINCT title ORDER BY title) AS titles, COUNT(DISTINCT title) AS n
         FROM posts GROUP BY author_id",
    ),
    (
        "user_names_concat",
        "SELECT group_concat(name, ',' ORDER BY name) AS names, total(karma) AS karma_total,
                COUNT(*) FILTER (WHERE avatar IS NULL) AS no_avatar, AVG(DISTINCT karma) AS distinct_karma
         FROM users",
    ),
    (
        "product_newest_reviews",
        "SELECT product_id,
                json_group_array(json_object('id', id, 'user', user_id, 'rating', rating) ORDER BY id DESC)
                  FILTER (WHERE rn <= 3) AS newest,
                COUNT(*) AS reviews
         FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY id DESC) AS rn FROM reviews)
         GROUP BY product_id",
    ),
    (
        "author_documents",
        "SELECT id, json_object('name', name, 'avatar', avatar,
                  'posts', json_group_array(json_array(pid, title, score, score > 2) ORDER BY created_at DESC, pid DESC)
                           FILTER (WHERE rn <= 2),
                  'post_count', COUNT(pid)) AS doc
         FROM (SELECT u.id, u.name, u.avatar, p.id AS pid, p.title, p.score, p.created_at,
                      ROW_NUMBER() OVER (PARTITION BY u.id ORDER BY p.created_at DESC, p.id DESC) AS rn
               FROM users u LEFT JOIN posts p ON p.author_id = u.id)
         GROUP BY id, name, avatar",
    ),
    // MIN/MAX of text under a collation: the least value (bytewise) among
    // those tied with the extreme under the collation (SQLite returns the
    // first of them its scan meets; denorm's documented rule).
    (
        "city_min_max",
        "SELECT (SELECT min(c.city COLLATE BINARY) FROM cities c WHERE c.city = (SELECT min(city) FROM cities)) AS lo,
                (SELECT min(c.city COLLATE BINARY) FROM cities c WHERE c.city = (SELECT max(city) FROM cities)) AS hi,
                (SELECT min(c.code COLLATE BINARY) FROM cities c WHERE c.code = (SELECT min(code) FROM cities)) AS lo_code,
                (SELECT min(c.code COLLATE BINARY) FROM cities c WHERE c.code = (SELECT max(code) FROM cities)) AS hi_code",
    ),
    (
        "visit_extremes",
        "SELECT n,
                (SELECT min(x.city COLLATE BINARY) FROM visits x
                 WHERE x.n IS v.n AND x.city = (SELECT min(y.city) FROM visits y WHERE y.n IS v.n)) AS lo,
                (SELECT min(x.city COLLATE BINARY) FROM visits x
                 WHERE x.n IS v.n AND x.city = (SELECT max(y.city) FROM visits y WHERE y.n IS v.n)) AS hi,
                COUNT(*) AS k
         FROM visits v GROUP BY n",
    ),
    // A compound over collated columns shows per key the least value among
    // the rows of that key (both operands' for UNION, the left's for EXCEPT).
    (
        "union_cities",
        "SELECT min(city COLLATE BINARY) AS city
         FROM (SELECT city FROM cities UNION ALL SELECT city FROM visits) GROUP BY city COLLATE NOCASE",
    ),
    (
        "city_except_visits",
        "SELECT min(c.city COLLATE BINARY) AS city, min(c.code COLLATE BINARY) AS code FROM cities c
         WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE c.city IS v.city AND c.code IS 'ab')
         GROUP BY c.city, c.code",
    ),
    // A group of equal values spelled apart shows the least spelling among
    // its rows: an integer before the double equal to it.
    (
        "spelled_groups",
        "SELECT (SELECT y.x FROM spelled y WHERE y.x = g.x ORDER BY typeof(y.x) = 'real' LIMIT 1) AS x,
                COUNT(*) AS n
         FROM spelled g GROUP BY g.x",
    ),
    (
        "spelled_distinct",
        "SELECT DISTINCT (SELECT y.x FROM spelled y WHERE y.x = g.x ORDER BY typeof(y.x) = 'real' LIMIT 1) AS x
         FROM spelled g",
    ),
    (
        "spelled_expressions",
        "SELECT typeof(r) AS t, abs(r) AS a, n
         FROM (SELECT (SELECT y.x FROM spelled y WHERE y.x = g.x ORDER BY typeof(y.x) = 'real' LIMIT 1) AS r,
                      COUNT(*) AS n
               FROM spelled g GROUP BY g.x)",
    ),
    (
        "spelled_products",
        "SELECT (SELECT y.r * y.s FROM spelled y WHERE y.r * y.s = g.r * g.s ORDER BY typeof(y.r * y.s) = 'real' LIMIT 1) AS p,
                COUNT(*) AS n
         FROM spelled g GROUP BY g.r * g.s",
    ),
    (
        "spelled_sums",
        "SELECT s, SUM(v) AS sd, AVG(v) AS ad, total(v) AS td
         FROM (SELECT DISTINCT g.s,
                      (SELECT y.x FROM spelled y WHERE y.x = g.x AND y.s = g.s ORDER BY typeof(y.x) = 'real' LIMIT 1) AS v
               FROM spelled g)
         GROUP BY s",
    ),
];

/// Views whose reference query computes the value denorm's documented rule
/// picks where the source's choice depends on its scan order: compared
/// exactly, collated columns included.
pub const BY_RULE: &[&str] = &[
    "city_min_max",
    "visit_extremes",
    "spelled_groups",
    "spelled_distinct",
    "spelled_products",
    "spelled_expressions",
    "spelled_sums",
    "union_cities",
    "city_except_visits",
];

/// The SQL to compare view `name` with: its reference query, else its own SELECT.
pub fn reference_sql<'a>(name: &str, select: &'a str) -> &'a str {
    REFERENCE_SQL.iter().find(|(n, _)| *n == name).map_or(select, |(_, sql)| sql)
}
