//! Feed views in sinks: a feed is written as three parts, each an ordinary
//! view spec of the sink, so that a page can be read from the target alone.
//!
//! ```text
//!  feed home_feed (partition owner_id, fan-out column followee_id)
//!   Fanout       spec "home_feed"               the rows fanned out on write, whole
//!                                               (tables: "home_feed__fanout")
//!   Celebrities  spec "home_feed__celebrities"  each celebrity's content once, the
//!                                               partition column holding the author
//!   Edges        spec "home_feed__edges"        (partition, fan): the celebrities
//!                                               each partition follows
//!  page(X) = Fanout where partition = X
//!            ∪ Celebrities of every f in Edges(X), partition := X
//!            in the feed's order, first `retain`
//! ```
//!
//! The parts are views of one publishing slot: the hub hands each its own
//! changes (`denorm_serve::feed` part numbers) and rebuilds each from the
//! published state, and a sink applies a batch of all three in one
//! transaction, so a page read from the target is the merge of parts at
//! one position (an author crossing `fanout_limit` moves between the
//! parts in one batch). Table sinks join them in a SQL view named after
//! the feed ([`sql_view`]); the Redis sink answers a page with a function
//! (`redis/feed.lua`).

use crate::contract::{ColumnSpec, ViewSpec};
use crate::value::quote;
use denorm_serve::feed::FeedInfo;

/// Which part of a feed view a spec stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedPart {
    /// The rows fanned out on write (whole: references joined to content).
    Fanout,
    /// The celebrities' content, once each, the partition column holding
    /// the author's fan-out key.
    Celebrities,
    /// `(partition, fan)`: which celebrities each partition follows.
    Edges,
}

/// A spec's place in a feed (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSpec {
    /// The feed view's name.
    pub feed: String,
    pub part: FeedPart,
    /// The feed's partition column (an index of the feed's columns).
    pub partition: usize,
    /// The feed's columns (for the SQL view over the parts).
    pub columns: Vec<ColumnSpec>,
    /// The edges' fan-out column name (`followee_id`).
    pub fan: String,
    /// `order_by`: column index, descending.
    pub order: Vec<(usize, bool)>,
    /// Rows a page holds at most (`retain`).
    pub retain: Option<usize>,
}

/// The suffix of the celebrities part's name.
pub const CELEBRITIES: &str = "__celebrities";
/// The suffix of the edges part's name.
pub const EDGES: &str = "__edges";
/// The suffix of the fanned-out rows' table in table sinks (the feed's own
/// name is the SQL view over the parts).
pub const FANOUT_TABLE: &str = "__fanout";

/// The three specs a feed view is written as (see the module
/// documentation). `spec` is the feed's own spec, `feed` what the serving
/// layer knows of it. The fanned-out rows and the celebrities' content are
/// keyed by the partition and the content's key when the feed has one
/// (`FeedInfo::reference`), else multisets; the edges are a multiset.
pub fn part_specs(spec: &ViewSpec, feed: &FeedInfo) -> [ViewSpec; 3] {
    let partition = feed.partition;
    let order: Vec<(usize, bool)> = feed.order.iter().map(|t| (t.column, t.descending)).collect();
    let key: Vec<usize> = match &feed.reference {
        Some(key) => std::iter::once(partition).chain(key.iter().copied().filter(|&k| k != partition)).collect(),
        None => (0..spec.columns.len()).collect(),
    };
    let ordered_index: Vec<usize> = std::iter::once(partition).chain(order.iter().map(|o| o.0)).collect();
    let fan_name = if feed.fan_column == spec.columns[partition].name || feed.fan_column.is_empty() {
        format!("{}_fan", spec.columns[partition].name)
    } else {
        feed.fan_column.clone()
    };
    let info = |part| FeedSpec {
        feed: spec.name.clone(),
        part,
        partition,
        columns: spec.columns.clone(),
        fan: fan_name.clone(),
        order: order.clone(),
        retain: feed.retain,
    };
    let fanout = ViewSpec {
        name: spec.name.clone(),
        columns: spec.columns.clone(),
        key: key.clone(),
        partition_by: Some(partition),
        order: order.clone(),
        indexes: vec![ordered_index.clone()],
        feed: Some(info(FeedPart::Fanout)),
    };
    let celebrities = ViewSpec {
        name: format!("{}{CELEBRITIES}", spec.name),
        feed: Some(info(FeedPart::Celebrities)),
        ..fanout.clone()
    };
    let partition_column = spec.columns[partition].clone();
    let ty = partition_column.ty;
    let edges = ViewSpec {
        name: format!("{}{EDGES}", spec.name),
        columns: vec![partition_column, ColumnSpec { name: fan_name.clone(), ty, nullable: true }],
        key: vec![0, 1],
        // A set per partition in Redis (ordered by the fan-out key).
        partition_by: Some(0),
        order: vec![(1, false)],
        indexes: Vec::new(),
        feed: Some(info(FeedPart::Edges)),
    };
    [fanout, celebrities, edges]
}

/// The spec as a table sink writes it: the fanned-out rows' table is
/// `{feed}__fanout` (the feed's name is the SQL view); others unchanged.
pub fn as_table(spec: &ViewSpec) -> ViewSpec {
    match &spec.feed {
        Some(f) if f.part == FeedPart::Fanout => ViewSpec { name: format!("{}{FANOUT_TABLE}", f.feed), ..spec.clone() },
        _ => spec.clone(),
    }
}

/// The SQL view over a feed's part tables (PostgreSQL and SQLite alike):
/// the fanned-out rows, and each followed celebrity's content with the
/// partition column set to the follower's. `table` qualifies a table or
/// view name. A row held twice (an edge stored twice) appears once.
pub fn sql_view(feed: &FeedSpec, table: &dyn Fn(&str) -> String) -> String {
    let names: Vec<String> = feed.columns.iter().map(|c| quote(&c.name)).collect();
    let partition = &names[feed.partition];
    let celebrity: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| if i == feed.partition { format!("e.{n} AS {n}") } else { format!("c.{n}") })
        .collect();
    format!(
        "CREATE VIEW {view} AS SELECT {plain} FROM {fanout} UNION ALL SELECT {celebrity} FROM {edges} e \
         JOIN {celebrities} c ON c.{partition} = e.{fan}",
        view = table(&feed.feed),
        plain = names.join(", "),
        fanout = table(&format!("{}{FANOUT_TABLE}", feed.feed)),
        celebrity = celebrity.join(", "),
        edges = table(&format!("{}{EDGES}", feed.feed)),
        celebrities = table(&format!("{}{CELEBRITIES}", feed.feed)),
        fan = quote(&feed.fan),
    )
}

/// The names of a feed's part tables in table sinks.
pub fn part_tables(feed: &str) -> [String; 3] {
    [format!("{feed}{FANOUT_TABLE}"), format!("{feed}{CELEBRITIES}"), format!("{feed}{EDGES}")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_serve::query::OrderTerm;
    use denorm_types::ScalarType;

    fn home_feed(reference: Option<Vec<usize>>) -> (ViewSpec, FeedInfo) {
        let column = |name: &str, ty| ColumnSpec { name: name.into(), ty, nullable: true };
        let spec = ViewSpec {
            name: "home_feed".into(),
            columns: vec![
                column("owner_id", ScalarType::Int),
                column("post_id", ScalarType::Int),
                column("created_at", ScalarType::Int),
                column("body", ScalarType::Text),
            ],
            key: vec![0],
            partition_by: Some(0),
            order: vec![(2, true), (1, true)],
            ..Default::default()
        };
        let desc = |column| OrderTerm { column, descending: true, nulls_first: true, collation: None };
        let info = FeedInfo {
            partition: 0,
            order: vec![desc(2), desc(1)],
            retain: Some(50),
            fanout_limit: 10,
            fan_column: "followee_id".into(),
            reference,
        };
        (spec, info)
    }

    #[test]
    fn a_feed_is_three_specs() {
        let (spec, info) = home_feed(Some(vec![1]));
        let [fanout, celebrities, edges] = part_specs(&spec, &info);
        assert_eq!((fanout.name.as_str(), fanout.key.as_slice()), ("home_feed", &[0, 1][..]));
        assert_eq!(fanout.indexes, vec![vec![0, 2, 1]]);
        assert_eq!(celebrities.name, "home_feed__celebrities");
        assert_eq!(celebrities.feed.as_ref().map(|f| f.part), Some(FeedPart::Celebrities));
        assert_eq!(edges.name, "home_feed__edges");
        assert!(edges.is_multiset());
        assert_eq!(edges.columns[1].name, "followee_id");
        assert_eq!(as_table(&fanout).name, "home_feed__fanout");
        assert_eq!(as_table(&edges).name, "home_feed__edges");
        // Without a content key the rows are a multiset.
        let (spec, info) = home_feed(None);
        assert!(part_specs(&spec, &info)[0].is_multiset());
    }

    #[test]
    fn the_sql_view_puts_the_follower_in_the_partition_column() {
        let (spec, info) = home_feed(Some(vec![1]));
        let [fanout, ..] = part_specs(&spec, &info);
        let sql = sql_view(fanout.feed.as_ref().unwrap(), &|t| quote(t));
        assert_eq!(
            sql,
            "CREATE VIEW \"home_feed\" AS SELECT \"owner_id\", \"post_id\", \"created_at\", \"body\" FROM \
             \"home_feed__fanout\" UNION ALL SELECT e.\"owner_id\" AS \"owner_id\", c.\"post_id\", c.\"created_at\", \
             c.\"body\" FROM \"home_feed__edges\" e JOIN \"home_feed__celebrities\" c ON c.\"owner_id\" = \
             e.\"followee_id\""
        );
    }
}
