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
