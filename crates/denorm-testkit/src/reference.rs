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
];

/// The SQL to compare view `name` with: its reference query, else its own SELECT.
pub fn reference_sql<'a>(name: &str, select: &'a str) -> &'a str {
    REFERENCE_SQL.iter().find(|(n, _)| *n == name).map_or(select, |(_, sql)| sql)
}
