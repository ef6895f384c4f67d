//! Feed views: fan-out on write, with fan-out on read for content whose
//! fan-out degree exceeds `fanout_limit` (the celebrity hybrid).
//!
//! ```sql
//! CREATE MATERIALIZED VIEW home_feed
//!   WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 1000, retain = 500)
//! AS SELECT f.follower_id AS owner_id, p.id AS post_id, p.body, p.created_at, u.name AS author_name
//!    FROM follows f JOIN posts p ON p.author_id = f.followee_id JOIN users u ON u.id = p.author_id;
//! ```
//!
//! The shape: the partition column comes from one table E (the *edge*
//! table, `follows`) that joins the rest of the query (the *content* C,
//! `posts ⋈ users`) through one column equality `E.fan = C.k`
//! (`f.followee_id = p.author_id`); every other output column, WHERE
//! condition and ON condition reads C only (or `E.fan`, which equals `C.k`).
//! Such a query is `E ⋈[fan = k] C`, and it is maintained as four ordinary
//! incremental plans, no new operator:
//!
//! ```text
//!  degree             Map[fan, count > fanout_limit] (Reduce E group by fan, count(*))
//!  materialized       E ⋈[fan = k] (C ⋈[k = fan] degree where not celebrity)   view columns;
//!                     with retain = N: TopK N per partition of that join
//!  celebrity_content  C ⋈[k = fan] degree where celebrity                      view columns, the
//!                                                                              partition column holding k
//!  celebrity_edges    E ⋈[fan = fan] degree where celebrity                     (partition, fan)
//! ```
//!
//! `degree`'s Map output is consolidated by the core, so a follow that does
//! not cross the threshold turns into `-(f, false) +(f, false)`, which
//! cancels: only crossings reach the joins below it. A crossing moves the
//! author's content between `materialized` (one row per follower) and
//! `celebrity_content` (one row per content row), and its edges into or
//! out of `celebrity_edges`. Content of a celebrity is filtered before it
//! meets E, so a post by an author with a million followers writes one
//! row. Content of an author without followers has no `degree` row and is
//! dropped (it fans out to nobody).
//!
//! A read of partition X merges X's `materialized` rows with, for each
//! celebrity f that X follows (`celebrity_edges` rows of X), f's
//! `celebrity_content` rows with the partition column set to X
//! (multiplied by the number of X's edges to f, as the join would).

use denorm_expr::{Aggregate, AggregateFunc, BinaryOp, Expr, JoinKind, Plan, SortKey};
use denorm_types::{Catalog, Datum};

use crate::{Location, PlanError, ViewDef};

/// The feed options as written (`WITH (partition_by, order_by, fanout_limit, retain)`).
#[derive(Debug, Clone)]
pub(crate) struct FeedOptions {
    pub partition_by: String,
    pub partition_at: Option<Location>,
    pub order_by: Vec<OrderItem>,
    pub order_at: Option<Location>,
    pub fanout_limit: u64,
    pub retain: Option<usize>,
}

/// One `order_by` term as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderItem {
    pub name: String,
    pub descending: bool,
    pub nulls_first: Option<bool>,
}

/// A planned feed: what [`ViewDef::feed`] holds.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedDef {
    /// The partition column (an output column index).
    pub partition: usize,
    /// The order a partition is served in. Rows equal on these columns are
    /// ordered by their other columns, ascending, so the order is total.
    pub order: Vec<FeedOrder>,
    /// Content whose fan-out degree exceeds this is not fanned out on write.
    pub fanout_limit: u64,
    /// A partition serves its first `retain` rows in `order`; `None`: all.
    pub retain: Option<usize>,
    /// The edge table (E) and its fan-out column (`E.fan`).
    pub edge_table: String,
    pub fan_column: String,
    /// `(fan, celebrity)`: one row per fan-out key with at least one edge;
    /// `celebrity` is `count(*) > fanout_limit` (a boolean).
    pub degree: Plan,
    /// The rows fanned out on write: the view's columns. With `retain`, a
    /// `TopK` (no row number) of `retain` rows per partition in `order`
    /// over the fan-out join, which the core maintains holding only those
    /// rows (a bounded top-k over a join).
    pub materialized: Plan,
    /// Celebrities' content, stored once: the view's columns, with the
    /// partition column holding the content's fan-out key (`C.k`).
    pub celebrity_content: Plan,
    /// `(partition, fan)`: which celebrities each partition follows, one
    /// row per edge.
    pub celebrity_edges: Plan,
    /// Fan-out by reference, when the content has a unique key among the
    /// view's columns (other than the partition): `materialized` then
    /// carries only references, see [`FeedReference`]. `None`: its rows are
    /// whole.
    pub reference: Option<FeedReference>,
}

/// A feed whose fanned-out rows are references to content stored once.
///
/// `materialized` keeps, of each row, the partition, the order columns and
/// the content's key (`columns`); every other column is NULL. The content
/// of non-celebrities is its own plan, stored once and looked up by `key`
/// at read time, so a post's body or its author's name changing rewrites
/// one content row and no fanned-out row (the references do not change,
/// and the dataflow consolidates the unchanged references away).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedReference {
    /// Output columns a reference keeps besides the partition: the order
    /// columns and `key`, ascending.
    pub columns: Vec<usize>,
    /// The content's unique key (output columns, ascending).
    pub key: Vec<usize>,
    /// Non-celebrities' content with at least one follower, stored once:
    /// the view's columns, the partition column holding the fan-out key
    /// (`C.k`), as `celebrity_content` is for celebrities.
    pub content: Plan,
}

/// One column of a feed's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOrder {
    /// An output column index.
    pub column: usize,
    pub descending: bool,
    /// Where NULLs go: by default as if larger than every value (first in
    /// DESC, last in ASC), like PostgreSQL and the HTTP API's `order`.
    pub nulls_first: bool,
}

const ORDER_HINT: &str = "list output columns, each optionally followed by ASC or DESC and NULLS FIRST or NULLS LAST, \
                          e.g. order_by = 'created_at DESC, post_id DESC'";

/// Parses `order_by = 'created_at DESC, post_id DESC NULLS LAST'`.
pub(crate) fn parse_order_by(text: &str, at: Option<Location>) -> Result<Vec<OrderItem>, PlanError> {
    let malformed = || PlanError::new(format!("malformed order_by '{text}'"), at).hint(ORDER_HINT);
    let mut items: Vec<OrderItem> = Vec::new();
    for term in text.split(',') {
        let words: Vec<&str> = term.split_whitespace().collect();
        let Some((name, rest)) = words.split_first() else { return Err(malformed()) };
        let upper: Vec<String> = rest.iter().map(|w| w.to_ascii_uppercase()).collect();
        let mut rest: Vec<&str> = upper.iter().map(String::as_str).collect();
        let mut descending = false;
        if let Some(&first) = rest.first() {
            if first == "ASC" || first == "DESC" {
                descending = first == "DESC";
                rest.remove(0);
            }
        }
        let nulls_first = match rest.as_slice() {
            [] => None,
            ["NULLS", "FIRST"] => Some(true),
            ["NULLS", "LAST"] => Some(false),
            _ => return Err(malformed()),
        };
        if items.iter().any(|i| i.name.eq_ignore_ascii_case(name)) {
            return Err(PlanError::new(format!("column \"{name}\" appears more than once in order_by"), at));
        }
        items.push(OrderItem { name: name.to_string(), descending, nulls_first });
    }
    Ok(items)
}

/// One table of the FROM clause, as the feed planner needs it.
#[derive(Debug)]
pub(crate) struct Rel {
    /// The alias or table name.
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    /// Position of its first column in the joined row.
    pub offset: usize,
}

impl Rel {
    fn arity(&self) -> usize {
        self.columns.len()
    }

    fn holds(&self, column: usize) -> bool {
        column >= self.offset && column < self.offset + self.arity()
    }
}

/// Where the feed planner points its errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Places {
    pub left_join: Option<Location>,
}

/// A join of the left-deep tree, with positions in the joined row.
struct JoinStep {
    kind: JoinKind,
    equalities: Vec<(usize, usize)>,
    residual: Option<Expr>,
}

/// Decomposes a planned view into its feed plans, or says why its shape
/// is not a feed.
pub(crate) fn plan_feed(
    def: &ViewDef,
    options: &FeedOptions,
    rels: &[Rel],
    places: Places,
    catalog: &Catalog,
) -> Result<FeedDef, PlanError> {
    let at = options.partition_at;
    let names: Vec<&str> = def.columns.iter().map(|c| c.name.as_str()).collect();
    let find = |name: &str| {
        names.iter().position(|n| *n == name).or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(name)))
    };
    let partition = find(&options.partition_by).ok_or_else(|| {
        PlanError::new(
            format!("partition_by column \"{}\" is not a column of view {}", options.partition_by, def.name),
            at,
        )
        .hint(format!("the view's columns are: {}", names.join(", ")))
    })?;
    let mut order = Vec::with_capacity(options.order_by.len());
    for item in &options.order_by {
        let column = find(&item.name).ok_or_else(|| {
            PlanError::new(
                format!("order_by column \"{}\" is not a column of view {}", item.name, def.name),
                options.order_at,
            )
            .hint(format!("order_by names output columns; the view's columns are: {}", names.join(", ")))
        })?;
        if column == partition {
            return Err(PlanError::new(
                format!("order_by cannot name the partition column \"{}\"", names[partition]),
                options.order_at,
            )
            .hint("every row of a partition has the same partition value: order by the content's columns"));
        }
        order.push(FeedOrder {
            column,
            descending: item.descending,
            nulls_first: item.nulls_first.unwrap_or(item.descending),
        });
    }

    let (exprs, input) = match &def.plan {
        Plan::Map { input, exprs } => (exprs, &**input),
        _ => return Err(PlanError::new("a feed view must be a plain SELECT over joined tables", at)),
    };
    let (predicate, tree) = match input {
        Plan::Filter { input, predicate } => (Some(predicate), &**input),
        other => (None, other),
    };
    let mut joins = Vec::new();
    flatten(tree, &mut joins)
        .ok_or_else(|| PlanError::new("a feed view must be a plain SELECT over joined tables", at))?;
    if let Some(j) = joins.iter().find(|j| j.kind != JoinKind::Inner) {
        let what = if j.kind == JoinKind::Full { "FULL JOIN" } else { "LEFT JOIN" };
        return Err(PlanError::new(format!("{what} is not supported in a feed view"), places.left_join.or(at))
            .hint("a feed's tables are joined with JOIN … ON (inner joins)"));
    }

    // E: the table the partition column comes from.
    let partition_name = &names[partition];
    let Expr::Column(p) = exprs[partition] else {
        return Err(PlanError::new(format!("partition column \"{partition_name}\" must be a column of a table"), at)
            .hint("select the reader's column as it is, e.g. f.follower_id AS owner_id"));
    };
    let e = rels.iter().position(|r| r.holds(p)).expect("a column of the joined row belongs to a relation");
    let edge = &rels[e];
    if rels.len() < 2 {
        return Err(PlanError::new(
            format!("partition column \"{partition_name}\" must come from a table joined to the content"),
            at,
        )
        .detail(format!("the view reads only {}", edge.table))
        .hint("a feed joins an edge table (whose column is the partition) to the content, e.g. follows f JOIN posts p ON p.author_id = f.followee_id"));
    }
    let edge_column = |c: usize| format!("{}.{}", edge.name, edge.columns[c - edge.offset]);
    let column_name = |c: usize| {
        let r = rels.iter().find(|r| r.holds(c)).expect("a column of the joined row belongs to a relation");
        format!("{}.{}", r.name, r.columns[c - r.offset])
    };
    let one_equality = || {
        format!(
            "{} must join the rest of the query through one column equality, e.g. ON p.author_id = {}.followee_id",
            edge.table, edge.name
        )
    };

    // The fan-out column: the one E column E's equalities use.
    let mut fan: Option<usize> = None;
    let mut fan_partners: Vec<usize> = Vec::new();
    for &(a, b) in joins.iter().flat_map(|j| &j.equalities) {
        let (mine, other) = match (edge.holds(a), edge.holds(b)) {
            (false, false) => continue,
            (true, true) => {
                return Err(PlanError::new(
                    format!("{} is compared with itself ({} = {})", edge.table, column_name(a), column_name(b)),
                    at,
                )
                .hint(one_equality()))
            }
            (true, false) => (a, b),
            (false, true) => (b, a),
        };
        match fan {
            Some(f) if f != mine => {
                return Err(PlanError::new(
                    format!(
                        "{} joins the content through more than one of its columns ({} and {})",
                        edge.table,
                        edge_column(f),
                        edge_column(mine)
                    ),
                    at,
                )
                .hint(one_equality()))
            }
            _ => fan = Some(mine),
        }
        fan_partners.push(other);
    }
    let Some(fan) = fan else {
        return Err(PlanError::new(
            format!(
                "partition column \"{partition_name}\" comes from {}, which is not joined by a column equality",
                edge.table
            ),
            at,
        )
        .hint(one_equality()));
    };
    if fan == p {
        return Err(PlanError::new(
            format!(
                "the partition column \"{partition_name}\" is also the join column of {} ({})",
                edge.table,
                edge_column(fan)
            ),
            at,
        )
        .hint(
            "partition by the reader (e.g. follows.follower_id) and join on the followed key (follows.followee_id)",
        ));
    }

    // C: every other relation, in FROM order, laid out side by side.
    let content: Vec<&Rel> = rels.iter().enumerate().filter(|(i, _)| *i != e).map(|(_, r)| r).collect();
    let mut local_offsets = Vec::with_capacity(content.len());
    let mut width = 0;
    for r in &content {
        local_offsets.push(width);
        width += r.arity();
    }
    let local = |c: usize| -> (usize, usize) {
        let i = content.iter().position(|r| r.holds(c)).expect("a content column");
        (i, local_offsets[i] + c - content[i].offset)
    };
    // k: the fan column's partner in the earliest content relation.
    let k_global = *fan_partners.iter().min_by_key(|&&c| local(c)).expect("at least one equality");
    let k = local(k_global).1;
    let rewrite = |c: usize| -> Option<usize> {
        if c == fan {
            Some(k)
        } else if edge.holds(c) {
            None
        } else {
            Some(local(c).1)
        }
    };
    let rewrite_expr = |expr: &Expr, what: &str| -> Result<Expr, PlanError> {
        let mut bad = None;
        expr.visit_columns(&mut |c| {
            if rewrite(c).is_none() && bad.is_none() {
                bad = Some(c);
            }
        });
        if let Some(c) = bad {
            return Err(PlanError::new(format!("{what} reads {}", column_name(c)), at)
                .detail(format!(
                    "in a feed view, {} provides only the partition column and the join column {}",
                    edge.table,
                    edge_column(fan)
                ))
                .hint("read the content's columns instead"));
        }
        let mut expr = expr.clone();
        expr.remap_columns(&|c| rewrite(c).expect("checked above"));
        Ok(expr)
    };

    // The content's joins and conditions, with E.fan read as C.k.
    let mut predicates: Vec<Expr> = Vec::new();
    if let Some(w) = predicate {
        predicates.push(rewrite_expr(w, "the WHERE condition")?);
    }
    for j in &joins {
        if let Some(r) = &j.residual {
            predicates.push(rewrite_expr(r, "a JOIN … ON condition")?);
        }
    }
    let mut keys: Vec<Vec<(usize, usize)>> = vec![Vec::new(); content.len()];
    for &(a, b) in joins.iter().flat_map(|j| &j.equalities) {
        let (a, b) = match (rewrite(a), rewrite(b)) {
            (Some(a), Some(b)) => (a, b),
            _ => continue, // an equality with E's own column is only the fan join
        };
        if a == b {
            continue;
        }
        let (ra, rb) = (content_of(&local_offsets, a), content_of(&local_offsets, b));
        if ra == rb {
            predicates.push(Expr::binary(BinaryOp::Eq, Expr::Column(a), Expr::Column(b)));
        } else {
            let (earlier, later, r) = if ra < rb { (a, b, rb) } else { (b, a, ra) };
            keys[r].push((earlier, later - local_offsets[r]));
        }
    }
    let get = |r: &Rel| Plan::Get { table: r.table.clone(), arity: r.arity() };
    let mut c_plan = get(content[0]);
    for (i, r) in content.iter().enumerate().skip(1) {
        if keys[i].is_empty() {
            return Err(PlanError::new(
                format!("{} is joined to the rest of the content only through {}", r.table, edge.table),
                at,
            )
            .hint(format!("join {} to the content's tables, e.g. ON u.id = p.author_id", r.name)));
        }
        let (left_key, right_key) = keys[i].iter().copied().unzip();
        c_plan = Plan::Join {
            left: Box::new(c_plan),
            right: Box::new(get(r)),
            kind: JoinKind::Inner,
            left_key,
            right_key,
            residual: None,
        };
    }
    if let Some(condition) = conjoin(predicates) {
        c_plan = Plan::Filter { input: Box::new(c_plan), predicate: condition };
    }

    // The view's columns over C, the partition column holding k.
    let mut content_exprs = Vec::with_capacity(exprs.len());
    for (i, expr) in exprs.iter().enumerate() {
        if i == partition {
            content_exprs.push(Expr::Column(k));
        } else {
            content_exprs.push(rewrite_expr(expr, &format!("column \"{}\"", names[i]))?);
        }
    }

    let limit = i64::try_from(options.fanout_limit).unwrap_or(i64::MAX);
    let edges = Plan::Get { table: edge.table.clone(), arity: edge.arity() };
    let (fan_e, part_e) = (fan - edge.offset, p - edge.offset);
    let degree = Plan::Map {
        input: Box::new(Plan::Reduce {
            input: Box::new(edges.clone()),
            group_key: vec![fan_e],
            aggregates: vec![Aggregate { func: AggregateFunc::Count, arg: None }],
        }),
        exprs: vec![Expr::Column(0), Expr::binary(BinaryOp::Gt, Expr::Column(1), Expr::Literal(Datum::Int(limit)))],
    };
    let fans = |celebrity: bool| {
        let flag = Expr::Column(1);
        Plan::Map {
            input: Box::new(Plan::Filter {
                input: Box::new(degree.clone()),
                predicate: if celebrity { flag } else { Expr::Not(Box::new(flag)) },
            }),
            exprs: vec![Expr::Column(0)],
        }
    };
    let content_of_fans = |celebrity: bool| Plan::Map {
        input: Box::new(Plan::Join {
            left: Box::new(c_plan.clone()),
            right: Box::new(fans(celebrity)),
            kind: JoinKind::Inner,
            left_key: vec![k],
            right_key: vec![0],
            residual: None,
        }),
        exprs: content_exprs.clone(),
    };
    let arity = exprs.len();
    // The content's key among the view's columns: fan out references.
    let content = content_of_fans(false);
    let key = content_key(&content, partition, &order, catalog);
    let reference = key.map(|key| {
        let mut columns: Vec<usize> = order.iter().map(|o| o.column).chain(key.iter().copied()).collect();
        columns.sort_unstable();
        columns.dedup();
        FeedReference { columns, key, content: content.clone() }
    });
    let fanned = match &reference {
        // The reference: the partition (k here), the order columns and the
        // key; NULL elsewhere. The Map's output is consolidated, so a
        // content change that keeps them is no change downstream.
        Some(r) => Plan::Map {
            input: Box::new(content),
            exprs: (0..arity)
                .map(|i| {
                    if i == partition || r.columns.contains(&i) {
                        Expr::Column(i)
                    } else {
                        Expr::Literal(Datum::Null)
                    }
                })
                .collect(),
        },
        None => content,
    };
    let materialized = Plan::Map {
        input: Box::new(Plan::Join {
            left: Box::new(edges.clone()),
            right: Box::new(fanned),
            kind: JoinKind::Inner,
            left_key: vec![fan_e],
            right_key: vec![partition],
            residual: None,
        }),
        exprs: (0..arity)
            .map(|i| if i == partition { Expr::Column(part_e) } else { Expr::Column(edge.arity() + i) })
            .collect(),
    };
    // `retain`: only a partition's first `retain` rows are stored. A top-k
    // over the join holds them and refills a partition from the join's
    // arrangements when deletions empty its window (denorm-core's
    // JoinTopK); its order (the feed's, then the rows' bytes) is the order
    // the published rows are kept in.
    let materialized = match options.retain {
        Some(limit) => Plan::TopK {
            input: Box::new(materialized),
            partition: vec![partition],
            order: order
                .iter()
                .map(|o| SortKey { column: o.column, descending: o.descending, nulls_first: o.nulls_first })
                .collect(),
            limit,
            rank: false,
            numbering: denorm_expr::Numbering::RowNumber,
        },
        None => materialized,
    };
    let celebrity_content = content_of_fans(true);
    let celebrity_edges = Plan::Map {
        input: Box::new(Plan::Join {
            left: Box::new(edges),
            right: Box::new(fans(true)),
            kind: JoinKind::Inner,
            left_key: vec![fan_e],
            right_key: vec![0],
            residual: None,
        }),
        exprs: vec![Expr::Column(part_e), Expr::Column(fan_e)],
    };
    Ok(FeedDef {
        partition,
        order,
        fanout_limit: options.fanout_limit,
        retain: options.retain,
        edge_table: edge.table.clone(),
        fan_column: edge.columns[fan_e].clone(),
        materialized,
        celebrity_content,
        celebrity_edges,
        degree,
        reference,
    })
}

/// The smallest unique column set of the content (view columns, the
/// partition holding `C.k`) that does not use the partition column,
/// preferring one inside the order columns (a reference then holds nothing
/// more); `None` when the planner proves none.
fn content_key(content: &Plan, partition: usize, order: &[FeedOrder], catalog: &Catalog) -> Option<Vec<usize>> {
    let props = crate::key::properties(content, catalog);
    let in_order = |c: &usize| order.iter().any(|o| o.column == *c);
    props
        .unique
        .iter()
        .filter(|set| !set.contains(&partition))
        .min_by_key(|set| (set.iter().filter(|c| !in_order(c)).count(), set.len()))
        .cloned()
}

/// Which content relation a content-local column belongs to.
fn content_of(offsets: &[usize], column: usize) -> usize {
    offsets.iter().rposition(|&o| o <= column).expect("offsets start at 0")
}

fn conjoin(parts: Vec<Expr>) -> Option<Expr> {
    parts.into_iter().reduce(|acc, e| Expr::binary(BinaryOp::And, acc, e))
}

/// The joins of a left-deep tree of tables, with positions in the joined
/// row; `None` for any other shape.
fn flatten(plan: &Plan, out: &mut Vec<JoinStep>) -> Option<()> {
    match plan {
        Plan::Get { .. } => Some(()),
        Plan::Join { left, right, kind, left_key, right_key, residual } => {
            flatten(left, out)?;
            let Plan::Get { .. } = **right else { return None };
            let offset = left.arity();
            let equalities = left_key.iter().zip(right_key).map(|(&l, &r)| (l, offset + r)).collect();
            out.push(JoinStep { kind: *kind, equalities, residual: residual.clone() });
            Some(())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_parsing() {
        let item = |name: &str, descending, nulls_first| OrderItem { name: name.into(), descending, nulls_first };
        assert_eq!(
            parse_order_by("created_at DESC, post_id desc nulls last,x", None).unwrap(),
            vec![item("created_at", true, None), item("post_id", true, Some(false)), item("x", false, None)]
        );
        assert_eq!(parse_order_by("a asc nulls first", None).unwrap(), vec![item("a", false, Some(true))]);
        for bad in ["", "a,", "a DESC DESC", "a NULLS", "a b", "a, A"] {
            assert!(parse_order_by(bad, None).is_err(), "{bad}");
        }
    }
}
