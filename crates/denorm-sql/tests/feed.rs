//! Feed views (`WITH (partition_by, order_by, fanout_limit, retain)`): the
//! decomposition into the feed's plans, and every refused shape with its
//! message and position.

use denorm_sql::{plan_views, FeedOrder, ViewDef};
use denorm_types::{Catalog, ColumnSchema, Dialect, ScalarType, TableSchema};

fn table(name: &str, columns: &[(&str, ScalarType, bool)], primary_key: Vec<usize>) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: columns
            .iter()
            .map(|(n, ty, nullable)| ColumnSchema { name: (*n).into(), ty: *ty, nullable: *nullable })
            .collect(),
        primary_key,
        unique_keys: vec![],
    }
}

fn catalog() -> Catalog {
    use ScalarType::*;
    let mut c = Catalog::new();
    c.add(table("users", &[("id", Int, false), ("name", Text, false), ("avatar_url", Text, true)], vec![0]));
    c.add(table(
        "posts",
        &[("id", Int, false), ("author_id", Int, false), ("body", Text, true), ("created_at", Int, true)],
        vec![0],
    ));
    c.add(table(
        "follows",
        &[("follower_id", Int, false), ("followee_id", Int, false), ("muted", Int, true)],
        vec![0, 1],
    ));
    c
}

const FEED: &str = "CREATE MATERIALIZED VIEW home_feed
  WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 1000, retain = 500)
AS SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, u.name AS author_name, u.avatar_url AS author_avatar
   FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id";

fn plan(sql: &str) -> ViewDef {
    match plan_views(sql, &catalog(), Dialect::Sqlite) {
        Ok(mut views) => views.remove(0),
        Err(errors) => panic!("{}", errors.iter().map(|e| e.render("views.sql")).collect::<Vec<_>>().join("\n")),
    }
}

fn describe(v: &ViewDef) -> String {
    let feed = v.feed.as_ref().expect("a feed");
    format!(
        "partition: {}\norder: {:?}\nfanout_limit: {}\nretain: {:?}\nedge: {}.{}\n\ndegree:\n{}\nmaterialized:\n{}\ncelebrity_content:\n{}\ncelebrity_edges:\n{}",
        v.columns[feed.partition].name,
        feed.order,
        feed.fanout_limit,
        feed.retain,
        feed.edge_table,
        feed.fan_column,
        feed.degree,
        feed.materialized,
        feed.celebrity_content,
        feed.celebrity_edges,
    ) + &match &feed.reference {
        Some(r) => format!("\nreference: columns {:?}, content key {:?}\ncontent:\n{}", r.columns, r.key, r.content),
        None => "\nreference: none (rows fanned out whole)".to_string(),
    }
}

#[test]
fn the_home_feed_decomposes_into_four_plans() {
    let v = plan(FEED);
    let feed = v.feed.as_ref().unwrap();
    assert_eq!(feed.partition, 0);
    assert_eq!(
        feed.order,
        vec![
            FeedOrder { column: 3, descending: true, nulls_first: true },
            FeedOrder { column: 1, descending: true, nulls_first: true }
        ]
    );
    assert_eq!((feed.fanout_limit, feed.retain), (1000, Some(500)));
    for plan in [&feed.materialized, &feed.celebrity_content] {
        assert_eq!(plan.arity(), v.columns.len());
    }
    assert_eq!(feed.celebrity_edges.arity(), 2);
    // posts.id is the content's key: fanned-out rows are references
    // (owner_id, post_id, created_at), the content stored once.
    let reference = feed.reference.as_ref().expect("posts.id is a key of the content");
    assert_eq!((reference.columns.as_slice(), reference.key.as_slice()), (&[1, 3][..], &[1][..]));
    assert_eq!(reference.content.arity(), v.columns.len());
    insta::assert_snapshot!("home_feed", describe(&v));
}

#[test]
fn the_edge_table_may_come_anywhere_and_its_join_column_may_be_read() {
    // E in the middle; the users join goes through E's join column, which is
    // read as the content's key; a WHERE on the content is kept.
    let v = plan(
        "CREATE MATERIALIZED VIEW feed WITH (partition_by = 'reader', order_by = 'created_at', fanout_limit = '2')
         AS SELECT p.id, f.follower_id AS reader, f.followee_id AS author, u.name, p.created_at
         FROM posts p JOIN follows f ON f.followee_id = p.author_id JOIN users u ON u.id = f.followee_id
         WHERE p.body IS NOT NULL",
    );
    insta::assert_snapshot!("edge_in_the_middle", describe(&v));
    let order = &v.feed.unwrap().order;
    assert_eq!(order, &vec![FeedOrder { column: 4, descending: false, nulls_first: false }]);
}

/// (case, SQL). `{F}` is `CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at DESC', fanout_limit = 10) AS`.
const CASES: &[(&str, &str)] = &[
    ("partition_not_a_column", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'reader', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("order_by_not_a_column", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("order_by_partition", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'owner_id', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("order_by_malformed", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at DOWN', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("missing_order_by", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("missing_fanout_limit", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at') AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("missing_partition_by", "CREATE MATERIALIZED VIEW v WITH (order_by = 'created_at', fanout_limit = 1) AS SELECT p.created_at FROM posts p"),
    ("negative_fanout_limit", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = -1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("fractional_fanout_limit", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1.5) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("zero_retain", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1, retain = 0) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("retain_text", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1, retain = 'many') AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("declared_key", "CREATE MATERIALIZED VIEW v WITH (key = 'post_id', partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.id AS post_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("fallback", "CREATE MATERIALIZED VIEW v WITH (max_staleness = '1s', on_stale = 'fallback', partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("partition_expression", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id + 0 AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("single_table", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT p.author_id AS owner_id, p.created_at FROM posts p"),
    ("partition_from_content", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT u.id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = f.follower_id"),
    ("partition_is_join_column", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.followee_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("two_edge_columns", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id AND p.id = f.muted"),
    ("edge_column_selected", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, f.muted, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("edge_column_in_where", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id WHERE f.muted IS NULL"),
    ("edge_without_equality", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at FROM posts p JOIN users u ON u.id = p.author_id JOIN follows f ON f.muted > 0 AND f.followee_id = u.id AND f.follower_id = f.followee_id"),
    ("left_join", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, p.created_at, u.name FROM follows f JOIN posts p ON p.author_id = f.followee_id LEFT JOIN users u ON u.id = p.author_id"),
    ("group_by", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'n', fanout_limit = 1) AS SELECT f.follower_id AS owner_id, COUNT(*) AS n FROM follows f JOIN posts p ON p.author_id = f.followee_id GROUP BY f.follower_id"),
    ("aggregate", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'n', fanout_limit = 1) AS SELECT MAX(f.follower_id) AS owner_id, COUNT(*) AS n FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
    ("distinct", "CREATE MATERIALIZED VIEW v WITH (partition_by = 'owner_id', order_by = 'created_at', fanout_limit = 1) AS SELECT DISTINCT f.follower_id AS owner_id, p.created_at FROM follows f JOIN posts p ON p.author_id = f.followee_id"),
];

#[test]
fn refused_feed_shapes() {
    let mut report = String::new();
    for (name, sql) in CASES {
        let errors = plan_views(sql, &catalog(), Dialect::Sqlite).err().unwrap_or_else(|| panic!("{name}: planned"));
        report.push_str(&format!("## {name}\n{sql}\n{}\n\n", errors[0].render("views.sql")));
    }
    insta::assert_snapshot!("refused_feed_shapes", report);
}
