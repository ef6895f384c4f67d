//! No input text may panic the planner: random strings, and valid views
//! mutated by truncation, token deletion and token duplication.

mod common;

use denorm_sql::plan_views;
use denorm_types::Dialect;
use proptest::prelude::*;

const VALID: &[&str] = &[
    "CREATE MATERIALIZED VIEW post_cards WITH (key = 'id', max_staleness = '2s') AS SELECT p.*, u.name AS author_name FROM posts p JOIN users u ON u.id = p.author_id WHERE p.score > 0.5",
    "CREATE MATERIALIZED VIEW product_cards AS SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, AVG(r.rating) AS avg_rating FROM products p LEFT JOIN reviews r ON r.product_id = p.id AND r.rating > 1 GROUP BY p.id, p.name HAVING COUNT(*) > 2",
    "CREATE MATERIALIZED VIEW h AS SELECT DISTINCT product_id, rating, CASE rating WHEN 5 THEN 'top' ELSE LOWER(body) END AS b, COALESCE(user_id, 0) FROM reviews WHERE body LIKE '%x%' ESCAPE '!' AND rating BETWEEN 1 AND 5 AND NOT user_id IN (1, 2)",
    "CREATE MATERIALIZED VIEW j AS SELECT p.id, u.name, r.rating, h.n FROM posts p, users u LEFT JOIN (reviews r JOIN follows f ON f.follower_id = r.user_id) ON r.user_id = u.id RIGHT JOIN products pr ON pr.id = r.product_id FULL JOIN flags g ON g.id = pr.id CROSS JOIN follows f2 JOIN (SELECT rating, COUNT(*) AS n FROM reviews GROUP BY rating) AS h USING (rating) WHERE (p.author_id = u.id AND p.score > 1) OR (u.id = p.author_id AND f2.follower_id = 1)",
    "CREATE MATERIALIZED VIEW t AS SELECT COUNT(*), SUM(rating) / COUNT(*), MAX(CAST(rating AS TEXT)) FROM reviews; CREATE MATERIALIZED VIEW u AS SELECT rating % 2 AS parity, COUNT(DISTINCT user_id) AS n FROM reviews GROUP BY 1",
    "CREATE MATERIALIZED VIEW q AS WITH c (k, n) AS (SELECT author_id, COUNT(*) FROM posts GROUP BY author_id) SELECT k, n FROM c UNION ALL SELECT id, 0 FROM users EXCEPT (SELECT 1, 2 INTERSECT VALUES (1, 2)) ORDER BY n DESC, 1 LIMIT 5 OFFSET 1",
    "CREATE MATERIALIZED VIEW s AS SELECT p.id, (SELECT COUNT(*) FROM reviews r WHERE r.user_id = p.author_id AND r.rating > p.score) AS n, p.author_id NOT IN (SELECT user_id FROM reviews WHERE rating > 3) AS x FROM posts p WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = p.author_id AND u.name <> p.title AND u.id IN (SELECT user_id FROM reviews))",
    "CREATE MATERIALIZED VIEW l AS SELECT u.id, (SELECT p.title FROM posts p WHERE p.author_id = u.id ORDER BY p.score DESC, p.id LIMIT 1) AS best FROM users u GROUP BY u.id HAVING COUNT(*) > (SELECT COUNT(*) FROM follows f WHERE f.followee_id = u.id)",
    "CREATE MATERIALIZED VIEW fu AS SELECT id, u.name, COUNT(*) AS n, SUM(DISTINCT p.score) AS s FROM users u FULL OUTER JOIN posts p USING (id) FULL JOIN follows f ON f.follower_id = id WHERE id > 1 AND EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = id) GROUP BY id, u.name ORDER BY id LIMIT 3",
    "CREATE MATERIALIZED VIEW w AS SELECT id, score - LAG(score, 2, 0) OVER (PARTITION BY author_id ORDER BY score DESC NULLS LAST, id) AS step, LEAD(title, 1) OVER (ORDER BY id) AS t FROM posts WHERE LENGTH(title) > 1 ORDER BY id LIMIT 9",
];

/// Seeds valid in PostgreSQL only (mutated in both dialects too).
const VALID_POSTGRES: &[&str] = &[
    "CREATE MATERIALIZED VIEW d AS SELECT id, CAST(body AS DATE) + 30 AS a, CAST(body AS DATE) - CAST(title AS DATE) AS b, CAST(body AS TIMESTAMP) - INTERVAL '1 year 2 mons 3 days 04:05:06.5 ago' AS c, '90 days'::interval + CAST(body AS DATE) AS e, CAST(body AS DATE) + INTERVAL '3' DAY AS f, to_char(CAST(body AS TIMESTAMP), 'FMDay, DDth \"of\" Month YYYY HH12:MI am') AS g FROM posts",
];

/// Seeds over collated columns (`users.name` NOCASE, `posts.title` RTRIM
/// in SQLite; `posts.title` a `character(n)` in PostgreSQL), valid in
/// SQLite: collated MIN/MAX, compounds, read orders, windows.
const VALID_COLLATED: &[&str] = &[
    "CREATE MATERIALIZED VIEW c AS SELECT u.name, MIN(p.title) AS lo, MAX(u.name COLLATE RTRIM) AS hi, COUNT(DISTINCT p.title COLLATE NOCASE) AS k FROM users u JOIN posts p ON p.author_id = u.id GROUP BY u.name ORDER BY u.name LIMIT 3",
    "CREATE MATERIALIZED VIEW k AS SELECT name FROM users UNION SELECT title FROM posts EXCEPT SELECT body FROM reviews INTERSECT SELECT name COLLATE NOCASE FROM users",
    "CREATE MATERIALIZED VIEW r AS SELECT author_id, id, title FROM (SELECT author_id, id, title, ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY title COLLATE NOCASE DESC, id) AS rn FROM posts) AS x WHERE rn <= 3",
    "CREATE MATERIALIZED VIEW g AS SELECT DISTINCT u.name, p.score * 1.0 AS s FROM users u, posts p WHERE u.name = p.title AND p.title IN ('a ', 'B') ORDER BY u.name LIMIT 4",
    "CREATE MATERIALIZED VIEW o AS SELECT id, name FROM users WHERE name > 'm' ORDER BY name DESC, id",
];

/// The test catalog with collated columns (see [`VALID_COLLATED`]).
fn collated_catalog(dialect: Dialect) -> denorm_types::Catalog {
    let mut catalog = common::catalog();
    if dialect == Dialect::Sqlite {
        catalog.set_collation("users", "name", denorm_types::Collation::NoCase);
    }
    catalog.set_collation("posts", "title", denorm_types::Collation::Rtrim);
    catalog
}

fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in sql.chars() {
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
        } else {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn plan_all(sql: &str) {
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        for catalog in [common::catalog(), collated_catalog(dialect)] {
            if let Err(errors) = plan_views(sql, &catalog, dialect) {
                for e in errors {
                    let _ = e.render("views.sql");
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Delete(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Insert(usize, &'static str),
}

const INSERTS: &[&str] = &[
    "COLLATE NOCASE",
    "(",
    ")",
    ",",
    "'",
    "\"",
    "*",
    "SELECT",
    "JOIN",
    "NULL",
    "RIGHT",
    "FULL",
    "NATURAL",
    "USING (id)",
    "CROSS JOIN users",
    "OR",
    "-",
    "::",
    ";",
    "GROUP BY",
    "é",
    "\n",
    "9999999999999999999999",
    "UNION",
    "INTERSECT ALL",
    "ORDER BY 1",
    "LIMIT",
    "WITH",
    "VALUES",
    "OVER (ORDER BY id)",
    "LAG(id, -9223372036854775808)",
    "INTERVAL '1.5 weeks'",
    "INTERVAL '99999999999 years'",
    "'-2147483648 mons'::interval",
    "ROW_NUMBER() OVER (PARTITION BY name ORDER BY title)",
    "EXCEPT SELECT title FROM posts",
    "MIN(name)",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        (any::<usize>(), prop::sample::select(INSERTS)).prop_map(|(a, s)| Mutation::Insert(a, s)),
    ]
}

fn apply(mut toks: Vec<String>, mutations: &[Mutation]) -> String {
    for m in mutations {
        if toks.is_empty() {
            break;
        }
        let n = toks.len();
        match m {
            Mutation::Truncate(i) => toks.truncate(i % n),
            Mutation::Delete(i) => {
                toks.remove(i % n);
            }
            Mutation::Duplicate(i) => {
                let t = toks[i % n].clone();
                toks.insert(i % n, t);
            }
            Mutation::Swap(a, b) => toks.swap(a % n, b % n),
            Mutation::Insert(i, s) => toks.insert(i % n, format!(" {s} ")),
        }
    }
    toks.concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_text_does_not_panic(sql in "\\PC{0,200}") {
        plan_all(&sql);
    }

    #[test]
    fn sql_flavoured_text_does_not_panic(sql in "(CREATE|MATERIALIZED|VIEW|v|AS|SELECT|FROM|posts|users|p|u|JOIN|LEFT|ON|WHERE|GROUP|BY|HAVING|COUNT|SUM|\\(|\\)|\\*|,|=|\\.|id|'x'|1|2\\.5|AND|NOT|CASE|WHEN|THEN|END|CAST|INTEGER|WITH|key|;| )*") {
        plan_all(&sql);
    }

    #[test]
    fn mutated_views_do_not_panic(
        which in 0..VALID.len() + VALID_POSTGRES.len() + VALID_COLLATED.len(),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let seed = VALID.iter().chain(VALID_POSTGRES).chain(VALID_COLLATED).nth(which).copied().unwrap_or_default();
        plan_all(&apply(tokens(seed), &mutations));
    }
}

#[test]
fn valid_seeds_plan() {
    for sql in VALID {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            if let Err(e) = plan_views(sql, &common::catalog(), dialect) {
                panic!("{sql}: {}", e[0].render("views.sql"));
            }
        }
    }
    for sql in VALID_POSTGRES {
        if let Err(e) = plan_views(sql, &common::catalog(), Dialect::Postgres) {
            panic!("{sql}: {}", e[0].render("views.sql"));
        }
    }
    for sql in VALID_COLLATED {
        if let Err(e) = plan_views(sql, &collated_catalog(Dialect::Sqlite), Dialect::Sqlite) {
            panic!("{sql}: {}", e[0].render("views.sql"));
        }
    }
}

#[test]
fn long_operator_chains_are_refused_not_overflowed() {
    // sqlparser builds left-deep trees for operator chains; walking or even
    // dropping one that is tens of thousands of levels deep overflows the
    // stack, so long statements must be refused before parsing completes.
    for n in [150, 250, 4_000, 50_000] {
        let sql = format!("CREATE MATERIALIZED VIEW v AS SELECT {}1 AS x FROM posts", "id + ".repeat(n));
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || plan_views(&sql, &common::catalog(), Dialect::Sqlite).is_ok())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result, n < 200, "chain of {n}");
    }
    let and = format!("CREATE MATERIALIZED VIEW v AS SELECT id FROM posts WHERE {}TRUE", "NOT ".repeat(60));
    assert!(plan_views(&and, &common::catalog(), Dialect::Sqlite).is_err(), "sqlparser's recursion limit");
}
