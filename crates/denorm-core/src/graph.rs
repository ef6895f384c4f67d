//! The operator DAG shared by all views, built from plans.
//!
//! Nodes are stored in topological order (inputs before the nodes that read
//! them). A node is identified by its definition and its inputs; building a
//! plan whose sub-plan already exists reuses that node and its state, so two
//! views over the same table share its input, and two joins needing the same
//! arrangement share the index.

use std::collections::HashMap;

use denorm_expr::{EvalError, Expr, Numbering, Plan};
use denorm_types::{Catalog, Dialect};

use crate::executor::BuildError;
use crate::index::Index;
use crate::operator::{Distinct, Filter, Join, JoinTopK, Map, Reduce, ScalarFilter, Threshold, TopK, Values};

mod projection;
mod scalar;
mod share;

pub(crate) type NodeId = usize;

#[derive(Debug)]
pub(crate) enum Operator {
    Input {
        table: String,
    },
    Filter(Filter),
    Map(Map),
    Arrange(Index),
    Join(Join),
    /// Inputs: the join, and its partition side arranged by the partition.
    JoinTopK(JoinTopK),
    Reduce(Reduce),
    /// Inputs: the outer rows, and a relation of at most one row.
    ScalarFilter(ScalarFilter),
    Distinct(Distinct),
    TopK(TopK),
    /// Inputs: the summed plans, in order (one node may appear twice).
    Union,
    Negate,
    Threshold(Threshold),
    Values(Values),
    /// A node no live view reads any more (its views failed, see
    /// `Dataflow::fail_view`): its state is freed and it computes nothing.
    Released,
}

impl Operator {
    /// The node's kind for reports: the stateful kinds as in
    /// [`Operator::state_bytes`], the others by name.
    pub(crate) fn kind(&self) -> String {
        if let Some((kind, _)) = self.state_bytes() {
            return kind;
        }
        match self {
            Operator::Input { table } => format!("Input {table}"),
            Operator::Filter(_) => "Filter".to_string(),
            Operator::Map(_) => "Map".to_string(),
            Operator::Join(_) => "Join".to_string(),
            Operator::Union => "Union".to_string(),
            Operator::Negate => "Negate".to_string(),
            Operator::Values(_) => "Values".to_string(),
            Operator::Released => "Released".to_string(),
            _ => "?".to_string(),
        }
    }

    /// The kind of a stateful node (with its key) and its live heap bytes;
    /// `None` for stateless nodes.
    pub(crate) fn state_bytes(&self) -> Option<(String, usize)> {
        Some(match self {
            Operator::Arrange(index) => (format!("Arrange {:?}", index.key_columns()), index.state_bytes()),
            Operator::JoinTopK(top) => ("JoinTopK".to_string(), top.state_bytes()),
            Operator::Reduce(reduce) => (format!("Reduce {:?}", reduce.group_key()), reduce.state_bytes()),
            Operator::Distinct(distinct) => ("Distinct".to_string(), distinct.state_bytes()),
            Operator::TopK(top) => ("TopK".to_string(), top.state_bytes()),
            Operator::Threshold(threshold) => ("Threshold".to_string(), threshold.state_bytes()),
            Operator::ScalarFilter(filter) => ("ScalarFilter".to_string(), filter.state_bytes()),
            _ => return None,
        })
    }
}

#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) operator: Operator,
    pub(crate) inputs: Vec<NodeId>,
    /// Set when the node failed; it and everything downstream stop.
    pub(crate) failed: Option<EvalError>,
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    by_signature: HashMap<String, NodeId>,
    /// Join sides arranged wide (see `graph/share.rs`): for a source table
    /// and a join key (as the table's columns), the table columns the one
    /// shared arrangement holds.
    widened: HashMap<share::Group, Vec<usize>>,
}

impl Graph {
    /// Each node's signature (definition and inputs), in node order: what
    /// identifies it across processes (checkpoints).
    pub(crate) fn signatures(&self) -> Vec<&str> {
        let mut out = vec![""; self.nodes.len()];
        for (signature, &id) in &self.by_signature {
            out[id] = signature;
        }
        out
    }

    fn node(&mut self, signature: String, inputs: Vec<NodeId>, make: impl FnOnce() -> Operator) -> NodeId {
        let signature = format!("{signature} <- {inputs:?}");
        if let Some(&id) = self.by_signature.get(&signature) {
            return id;
        }
        let id = self.nodes.len();
        self.nodes.push(Node { operator: make(), inputs, failed: None });
        self.by_signature.insert(signature, id);
        id
    }

    /// Adds the nodes of `plan` (reusing equal ones) and returns its root.
    pub(crate) fn build(&mut self, plan: &Plan, catalog: &Catalog, dialect: Dialect) -> Result<NodeId, BuildError> {
        Ok(match plan {
            Plan::Get { table, arity } => {
                let schema = catalog.get(table).ok_or_else(|| BuildError::UnknownTable(table.clone()))?;
                if schema.columns.len() != *arity {
                    return Err(BuildError::ArityMismatch {
                        table: table.clone(),
                        plan: *arity,
                        schema: schema.columns.len(),
                    });
                }
                let table = schema.name.clone();
                self.node(format!("Input {table}"), vec![], || Operator::Input { table })
            }
            Plan::Filter { input: below, predicate } => {
                let input = self.build(below, catalog, dialect)?;
                let predicate = predicate.clone();
                self.node(format!("Filter {predicate:?}"), vec![input], || {
                    Operator::Filter(projection::filter_over(below, predicate, dialect))
                })
            }
            Plan::Map { input, exprs } => {
                let columns: Option<Vec<usize>> =
                    exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect();
                if let Some(id) = self.scalar_filter(exprs, input, catalog, dialect)? {
                    return Ok(id);
                }
                if let (Plan::Join { .. }, Some(columns)) = (input.as_ref(), columns) {
                    // A column projection of a join is fused into it: the
                    // join emits only the columns the projection keeps.
                    return self.join(input, Some(columns), true, catalog, dialect);
                }
                let input = self.build(input, catalog, dialect)?;
                let exprs = exprs.clone();
                self.node(format!("Map {exprs:?}"), vec![input], || Operator::Map(Map::new(exprs, dialect)))
            }
            Plan::Join { .. } => self.join(plan, None, true, catalog, dialect)?,
            Plan::Reduce { input, group_key, aggregates } => {
                let input = self.build(input, catalog, dialect)?;
                let (group_key, aggregates) = (group_key.clone(), aggregates.clone());
                self.node(format!("Reduce {group_key:?} {aggregates:?}"), vec![input], || {
                    Operator::Reduce(Reduce::new(group_key, aggregates, dialect))
                })
            }
            Plan::Distinct { input } => {
                let input = self.build(input, catalog, dialect)?;
                self.node("Distinct".into(), vec![input], || Operator::Distinct(Distinct::default()))
            }
            Plan::TopK { input, partition, order, limit, rank, numbering } => {
                // JoinTopK keeps only the first k rows: row numbers only.
                if !*rank && *numbering == Numbering::RowNumber {
                    if let Some(id) = self.join_top_k(input, partition, order, *limit, catalog, dialect)? {
                        return Ok(id);
                    }
                }
                let input = self.build(input, catalog, dialect)?;
                let (partition, order, limit, rank, numbering) =
                    (partition.clone(), order.clone(), *limit, *rank, *numbering);
                self.node(format!("TopK {partition:?} {order:?} {limit} {rank} {numbering:?}"), vec![input], || {
                    Operator::TopK(TopK::new(partition, order, limit, rank, numbering))
                })
            }
            Plan::Union { inputs } => {
                let inputs = inputs.iter().map(|i| self.build(i, catalog, dialect)).collect::<Result<Vec<_>, _>>()?;
                self.node("Union".into(), inputs, || Operator::Union)
            }
            Plan::Negate { input } => {
                let input = self.build(input, catalog, dialect)?;
                self.node("Negate".into(), vec![input], || Operator::Negate)
            }
            Plan::Threshold { input } => {
                let input = self.build(input, catalog, dialect)?;
                self.node("Threshold".into(), vec![input], || Operator::Threshold(Threshold::default()))
            }
            Plan::Values { rows, .. } => {
                let rows = rows.clone();
                self.node(format!("Values {rows:?}"), vec![], || Operator::Values(Values::new(rows)))
            }
        })
    }

    /// A top-k (without row numbers) directly over an inner join whose
    /// partition columns all come from one side: a [`JoinTopK`], which holds
    /// only the top k and refills a partition from the join's arrangements
    /// plus one arrangement of that side by the partition. `None` for any
    /// other shape (the general [`TopK`] keeps every row).
    fn join_top_k(
        &mut self,
        input: &Plan,
        partition: &[usize],
        order: &[denorm_expr::SortKey],
        limit: usize,
        catalog: &Catalog,
        dialect: Dialect,
    ) -> Result<Option<NodeId>, BuildError> {
        let Some(TopKJoin { join, project, on_left, side_columns }) = top_k_join(input, partition) else {
            return Ok(None);
        };
        let join_id = self.join(join, project, false, catalog, dialect)?;
        let side_arrangement = self.nodes[join_id].inputs[usize::from(!on_left)];
        let side_input = self.nodes[side_arrangement].inputs[0];
        let by_partition = self.arrange(side_input, &side_columns);
        let (partition, order) = (partition.to_vec(), order.to_vec());
        Ok(Some(self.node(format!("JoinTopK {partition:?} {order:?} {limit}"), vec![join_id, by_partition], || {
            Operator::JoinTopK(JoinTopK::new(partition, order, limit, on_left))
        })))
    }

    /// Builds a join node, emitting `project`'s columns of `left ++ right`
    /// when given. With `widen`, a side that is a column projection of a
    /// table sharing its arrangement with other joins (see
    /// `graph/share.rs`) reads the shared, wider arrangement, and the
    /// join's keys, residual and projection are renumbered over it: it
    /// emits the same rows.
    fn join(
        &mut self,
        plan: &Plan,
        project: Option<Vec<usize>>,
        widen: bool,
        catalog: &Catalog,
        dialect: Dialect,
    ) -> Result<NodeId, BuildError> {
        let Plan::Join { left, right, kind, left_key, right_key, residual } = plan else { unreachable!("join plan") };
        let wide_left = if widen { self.wide_side(left, left_key, catalog, dialect)? } else { None };
        let wide_right = if widen { self.wide_side(right, right_key, catalog, dialect)? } else { None };
        let (left_arity, right_arity) = (left.arity(), right.arity());
        let mut join = Join {
            kind: *kind,
            left_key: left_key.clone(),
            right_key: right_key.clone(),
            residual: residual.clone(),
            left_arity,
            right_arity,
            project,
            dialect,
        };
        let left = match &wide_left {
            Some(wide) => wide.node,
            None => self.build(left, catalog, dialect)?,
        };
        let right = match &wide_right {
            Some(wide) => wide.node,
            None => self.build(right, catalog, dialect)?,
        };
        if wide_left.iter().chain(&wide_right).any(|w| !w.is_identity()) {
            share::renumber(&mut join, wide_left.as_ref(), wide_right.as_ref());
        }
        let arrange_left = self.arrange(left, &join.left_key);
        let arrange_right = self.arrange(right, &join.right_key);
        let Join { left_key, right_key, residual, .. } = &join;
        Ok(self.node(
            format!("Join {kind:?} {left_key:?} {right_key:?} {residual:?} {:?}", join.project),
            vec![arrange_left, arrange_right],
            || Operator::Join(join),
        ))
    }

    fn arrange(&mut self, input: NodeId, key: &[usize]) -> NodeId {
        self.node(format!("Arrange {key:?}"), vec![input], || Operator::Arrange(Index::new(key.to_vec())))
    }
}

/// A top-k built as a [`JoinTopK`]: its inner join, the join's fused
/// projection, and the side holding the partition columns (numbered over
/// that side).
struct TopKJoin<'p> {
    join: &'p Plan,
    project: Option<Vec<usize>>,
    on_left: bool,
    side_columns: Vec<usize>,
}

/// The shape [`Graph::join_top_k`] builds as a [`JoinTopK`]: a top-k over
/// an inner join (under a column projection or not) whose partition
/// columns all come from one side.
fn top_k_join<'p>(input: &'p Plan, partition: &[usize]) -> Option<TopKJoin<'p>> {
    let (join, project) = match input {
        Plan::Map { input: join, exprs } if matches!(**join, Plan::Join { .. }) => {
            let columns: Option<Vec<usize>> =
                exprs.iter().map(|e| if let Expr::Column(c) = e { Some(*c) } else { None }).collect();
            (&**join, Some(columns?))
        }
        join @ Plan::Join { .. } => (join, None),
        _ => return None,
    };
    let Plan::Join { left, kind: denorm_expr::JoinKind::Inner, .. } = join else { return None };
    if partition.is_empty() {
        return None;
    }
    let left_arity = left.arity();
    let columns: Vec<usize> = partition.iter().map(|&c| project.as_ref().map_or(c, |p| p[c])).collect();
    let on_left = columns.iter().all(|&c| c < left_arity);
    if !on_left && !columns.iter().all(|&c| c >= left_arity) {
        return None;
    }
    let side_columns: Vec<usize> = columns.iter().map(|&c| if on_left { c } else { c - left_arity }).collect();
    Some(TopKJoin { join, project, on_left, side_columns })
}
