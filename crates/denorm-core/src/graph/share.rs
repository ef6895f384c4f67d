//! One arrangement per (table, join key), shared by the joins of all views
//! and holding the union of the columns they read.
//!
//! Column pruning gives every view its own projection of a table, so two
//! views joining `lineitem` on `l_orderkey` would arrange it twice, each
//! copy with other columns, and every change to `lineitem` would update
//! both. Before the views are built, [`Graph::share_arrangements`] walks
//! their plans and collects, for each join side that is a column
//! projection of a source table (`Map #a, #b, … ← Get t`, or `Get t`
//! itself) and has a key, the column list it reads, grouped by the table
//! and the key (as the table's columns). A group with two or more
//! different lists is *widened*: every join side of the group then reads
//! one `Map (union, ascending) ← Get t` and one arrangement of it, and the
//! join's keys, residual and fused projection are renumbered over that
//! wider layout ([`renumber`]), so it emits exactly the rows its plan
//! promises:
//!
//! ```text
//!  Join … project p              Join … project p' (same rows)
//!    Arrange k                     Arrange k'
//!      Map #0, #4   ← Get t   ══►    Map #0, #2, #4  ← Get t   (shared)
//! ```
//!
//! Equal rows of the narrow layout are distinct rows of the wide one (an
//! update of a column only the other views read is a retraction and an
//! insertion of the wide row): the join pairs, pads and tests the residual
//! per wide row, whose narrow columns are the narrow row's, and the pairs'
//! projections sum to the same weights (the join consolidates its output,
//! so such an update's pair cancels there). An outer join pads the wide
//! row, then projects.
//!
//! Left as they are: groups of one column list (their nodes and
//! signatures, hence checkpoints, are unchanged), keyless joins (products,
//! among them the scalar subqueries of `graph/scalar.rs`), and the join
//! under a [`crate::operator::JoinTopK`], which refills partitions from
//! its join's arrangements in the side's own layout. A join side whose
//! columns are not within its group's union (a view added after the hint)
//! keeps its own arrangement.

use std::collections::{BTreeSet, HashMap};

use denorm_expr::{Expr, Numbering, Plan};
use denorm_types::{Catalog, Dialect};

use super::{top_k_join, Graph, NodeId};
use crate::executor::BuildError;
use crate::operator::Join;

/// A group of join sides: a source table (as the catalog names it) and a
/// join key as that table's columns.
pub(super) type Group = (String, Vec<usize>);

/// A join side read through its group's shared arrangement: the wide
/// node, and where each of the side's own columns sits in it.
#[derive(Debug)]
pub(super) struct WideSide {
    pub(super) node: NodeId,
    at: Vec<usize>,
    arity: usize,
}

impl WideSide {
    /// Whether the wide layout is the side's own (the side reads the
    /// union's columns in order): nothing to renumber.
    pub(super) fn is_identity(&self) -> bool {
        self.arity == self.at.len() && self.at.iter().enumerate().all(|(i, &c)| i == c)
    }
}

/// The source table a join side projects and the table columns it keeps,
/// when it is a column projection of a table (or the table itself).
fn table_columns(side: &Plan) -> Option<(&str, Vec<usize>)> {
    match side {
        Plan::Get { table, arity } => Some((table, (0..*arity).collect())),
        Plan::Map { input, exprs } => {
            let Plan::Get { table, .. } = &**input else { return None };
            let columns = exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None });
            Some((table, columns.collect::<Option<Vec<_>>>()?))
        }
        _ => None,
    }
}

/// The group a join side belongs to: its table (as the catalog names it),
/// its key as the table's columns, and the table columns it keeps.
fn group_of(side: &Plan, key: &[usize], catalog: &Catalog) -> Option<(Group, Vec<usize>)> {
    if key.is_empty() {
        return None;
    }
    let (table, columns) = table_columns(side)?;
    let table = catalog.get(table)?.name.clone();
    let key = key.iter().map(|&k| columns[k]).collect();
    Some(((table, key), columns))
}

impl Graph {
    /// Finds in `plans` (as they will be built: optimized) the (table,
    /// key) arrangements that joins read with different columns, and makes
    /// the joins built after it read one arrangement per such group, of
    /// the union of the columns (see the module documentation). Call it
    /// with every view's plan before building them; a group already
    /// widened keeps its union (nodes built over it stay valid).
    pub(crate) fn share_arrangements<'p>(&mut self, plans: impl IntoIterator<Item = &'p Plan>, catalog: &Catalog) {
        let mut groups: HashMap<Group, BTreeSet<Vec<usize>>> = HashMap::new();
        for plan in plans {
            collect(plan, catalog, &mut groups);
        }
        for (group, lists) in groups {
            if lists.len() < 2 || self.widened.contains_key(&group) {
                continue;
            }
            let union: BTreeSet<usize> = lists.into_iter().flatten().collect();
            self.widened.insert(group, union.into_iter().collect());
        }
    }

    /// The shared wide node a join side reads instead of its own
    /// projection, built on first use; `None` when the side is not in a
    /// widened group (or reads columns outside its union).
    pub(super) fn wide_side(
        &mut self,
        side: &Plan,
        key: &[usize],
        catalog: &Catalog,
        dialect: Dialect,
    ) -> Result<Option<WideSide>, BuildError> {
        if self.widened.is_empty() {
            return Ok(None);
        }
        let Some((group, columns)) = group_of(side, key, catalog) else { return Ok(None) };
        let Some(union) = self.widened.get(&group) else { return Ok(None) };
        let Some(at) = columns.iter().map(|c| union.iter().position(|u| u == c)).collect::<Option<Vec<_>>>() else {
            return Ok(None);
        };
        let arity = union.len();
        let schema = catalog.get(&group.0).ok_or_else(|| BuildError::UnknownTable(group.0.clone()))?;
        let get = Plan::Get { table: group.0.clone(), arity: schema.columns.len() };
        let wide = if union.iter().copied().eq(0..schema.columns.len()) {
            get
        } else {
            Plan::Map { input: Box::new(get), exprs: union.iter().map(|&c| Expr::Column(c)).collect() }
        };
        let node = self.build(&wide, catalog, dialect)?;
        Ok(Some(WideSide { node, at, arity }))
    }
}

/// Renumbers `join` (over its plan's sides) over its wide sides: the keys,
/// the residual and the projection (every column of the narrow `left ++
/// right` when it had none), and the sides' arities.
pub(super) fn renumber(join: &mut Join, left: Option<&WideSide>, right: Option<&WideSide>) {
    let (narrow_left, narrow_right) = (join.left_arity, join.right_arity);
    let wide_left = left.map_or(narrow_left, |w| w.arity);
    let side = |wide: Option<&WideSide>, c: usize| wide.map_or(c, |w| w.at[c]);
    let column = |c: usize| match c.checked_sub(narrow_left) {
        None => side(left, c),
        Some(r) => wide_left + side(right, r),
    };
    join.left_key = join.left_key.iter().map(|&k| side(left, k)).collect();
    join.right_key = join.right_key.iter().map(|&k| side(right, k)).collect();
    if let Some(residual) = &mut join.residual {
        residual.remap_columns(&column);
    }
    let project = join.project.take().unwrap_or_else(|| (0..narrow_left + narrow_right).collect());
    join.project = Some(project.into_iter().map(column).collect());
    join.left_arity = wide_left;
    join.right_arity = right.map_or(narrow_right, |w| w.arity);
}

/// Adds to `groups` the column list of every join side of `plan` that
/// [`Graph::wide_side`] may widen.
fn collect(plan: &Plan, catalog: &Catalog, groups: &mut HashMap<Group, BTreeSet<Vec<usize>>>) {
    match plan {
        Plan::Join { left, right, left_key, right_key, .. } => {
            for (side, key) in [(left, left_key), (right, right_key)] {
                if let Some((group, columns)) = group_of(side, key, catalog) {
                    groups.entry(group).or_default().insert(columns);
                }
                collect(side, catalog, groups);
            }
        }
        // Built as a JoinTopK: its join keeps its own arrangements.
        Plan::TopK { input, partition, rank: false, numbering: Numbering::RowNumber, .. }
            if top_k_join(input, partition).is_some() =>
        {
            let join = top_k_join(input, partition).map(|t| t.join);
            if let Some(Plan::Join { left, right, .. }) = join {
                collect(left, catalog, groups);
                collect(right, catalog, groups);
            }
        }
        Plan::Filter { input, .. }
        | Plan::Map { input, .. }
        | Plan::Reduce { input, .. }
        | Plan::Distinct { input }
        | Plan::TopK { input, .. }
        | Plan::Negate { input }
        | Plan::Threshold { input } => collect(input, catalog, groups),
        Plan::Union { inputs } => inputs.iter().for_each(|i| collect(i, catalog, groups)),
        Plan::Get { .. } | Plan::Values { .. } => {}
    }
}
