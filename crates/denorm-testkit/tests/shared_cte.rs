//! A WITH query read twice is one shared sub-graph: both references plan to
//! the same sub-plan, which the operator graph builds once (the GROUP BY
//! below keeps one set of groups, not two).

use denorm_core::Dataflow;
use denorm_sql::plan_views;
use denorm_testkit::SqliteReference;
use denorm_types::Dialect;

const SCHEMA: &str = "CREATE TABLE posts (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT);";

fn node_count(views: &str) -> usize {
    let reference = SqliteReference::new(SCHEMA).unwrap();
    let catalog = reference.catalog();
    let defs = plan_views(views, &catalog, Dialect::Sqlite).unwrap();
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    for def in &defs {
        dataflow.add_view_emitting(&def.name, &def.plan).unwrap();
    }
    dataflow.node_count()
}

#[test]
fn a_cte_read_twice_is_built_once() {
    let counts = "SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id";
    // Input, Map, Reduce (and a final projection, if any).
    let alone = node_count(&format!("CREATE MATERIALIZED VIEW c AS {counts}"));
    let twice = node_count(&format!(
        "CREATE MATERIALIZED VIEW v AS WITH c AS ({counts})
         SELECT a.author_id, a.n, b.n AS m FROM c a JOIN c b ON b.author_id = a.author_id"
    ));
    // The self-join adds one arrangement (both sides are the same node by
    // the same key), the join and its projection; a second copy of the
    // grouped sub-graph would add its Map and Reduce as well.
    assert!(twice <= alone + 3, "the CTE's sub-graph was built twice: {alone} nodes alone, {twice} joined with itself");
    // Written out twice as subqueries in FROM, the same sharing holds: it is
    // the graph's deduplication of equal sub-plans, not a special case.
    let inline = node_count(&format!(
        "CREATE MATERIALIZED VIEW v AS
         SELECT a.author_id, a.n, b.n AS m FROM ({counts}) AS a JOIN ({counts}) AS b ON b.author_id = a.author_id"
    ));
    assert_eq!(inline, twice);
    // Both views together share everything the CTE view builds.
    let both = node_count(&format!(
        "CREATE MATERIALIZED VIEW c AS {counts};
         CREATE MATERIALIZED VIEW v AS WITH c AS ({counts})
         SELECT a.author_id, a.n, b.n AS m FROM c a JOIN c b ON b.author_id = a.author_id"
    ));
    assert!(both <= twice + 1, "{both} nodes for both views, {twice} for the CTE view");
}

/// The longest compound the planner accepts (64 operators), alternating
/// UNION, EXCEPT and INTERSECT so that no chain flattens, is optimized and
/// built without exhausting a test thread's stack, and computes the right
/// rows.
#[test]
fn the_longest_accepted_compound_builds_and_runs() {
    use denorm_core::{Runtime, SourceBatch};
    let sql = format!(
        "CREATE MATERIALIZED VIEW v AS SELECT id FROM posts{}",
        (0..64)
            .map(|i| match i % 3 {
                0 => format!(" EXCEPT SELECT {i}"),
                1 => format!(" UNION SELECT {}", 1000 + i),
                _ => format!(" INTERSECT SELECT id FROM posts WHERE id <> {}", 1000 + i),
            })
            .collect::<String>()
    );
    let reference = SqliteReference::new(SCHEMA).unwrap();
    let catalog = reference.catalog();
    let defs = plan_views(&sql, &catalog, Dialect::Sqlite).unwrap();
    let mut dataflow = Dataflow::new(catalog, Dialect::Sqlite);
    let view = dataflow.add_view("v", &defs[0].plan, vec![0], false).unwrap();
    let rows = [0, 3, 62, 63, 500, 1060].map(|id| {
        (
            denorm_types::Row::pack([
                denorm_types::Datum::Int(id),
                denorm_types::Datum::Null,
                denorm_types::Datum::Null,
            ]),
            1,
        )
    });
    let out = dataflow.apply(&SourceBatch { tables: vec![("posts".into(), rows.to_vec())], ..SourceBatch::default() });
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let mut ids: Vec<i64> = dataflow
        .view_rows(view)
        .iter()
        .map(|(r, _)| if let denorm_types::Datum::Int(i) = r.get(0) { i } else { panic!("an id") })
        .collect();
    ids.sort_unstable();
    // What SQLite answers over the same rows (left to right: EXCEPT i drops
    // i for i = 0, 3, …, 63; the UNIONs add 1000 + i, which the next
    // INTERSECT removes unless a post has that id, as 1060 has).
    assert_eq!(ids, vec![62, 500, 1060]);
}
