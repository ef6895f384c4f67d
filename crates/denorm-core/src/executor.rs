//! The single-threaded executor.
//!
//! [`Runtime`] is the seam a parallel (timely-dataflow) runtime will replace:
//! it takes one [`SourceBatch`] and returns every view's changes. The
//! operators below it never learn which runtime drives them.

use std::collections::{HashMap, HashSet};

use denorm_expr::{optimize, Plan};
use denorm_types::{consolidate_unordered, Catalog, Dialect, Diff, Position, Row};

use crate::graph::{Graph, NodeId, Operator};
use crate::operator::TopKState;
use crate::view::{ViewError, ViewState};

/// One atomic step of the source: every change of one or more committed
/// transactions, grouped by table, and the source position after them. An
/// update is the retraction of the old row plus the insertion of the new one.
#[derive(Debug, Clone, Default)]
pub struct SourceBatch {
    pub position: Position,
    pub tables: Vec<(String, Vec<(Row, Diff)>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewId(pub usize);

/// A view's consolidated changes for one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewOutput {
    pub view: ViewId,
    pub changes: Vec<(Row, Diff)>,
}

/// What one batch did.
#[derive(Debug, Clone, Default)]
pub struct BatchOutput {
    pub position: Position,
    /// Changes of every view that changed.
    pub views: Vec<ViewOutput>,
    /// Views that failed during this batch; they stay failed.
    pub errors: Vec<(ViewId, ViewError)>,
    /// Source changes refused as malformed, with the reason. They changed no view.
    pub rejected: Vec<(String, Row, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown source table {0}")]
    UnknownTable(String),
    #[error("plan reads {plan} columns of {table} but its schema has {schema} (bug)")]
    ArityMismatch { table: String, plan: usize, schema: usize },
    #[error("views must be added before the first batch")]
    AfterFirstBatch,
}

/// The seam a parallel runtime replaces: apply one batch, get every view's
/// changes.
pub trait Runtime {
    fn apply(&mut self, batch: &SourceBatch) -> BatchOutput;
}

#[derive(Debug)]
struct View {
    name: String,
    node: NodeId,
    /// The view's rows, unless its consumer keeps them (see
    /// [`Dataflow::add_view_emitting`]).
    state: Option<ViewState>,
    error: Option<ViewError>,
}

/// The single-threaded runtime: one operator graph shared by all views.
#[derive(Debug)]
pub struct Dataflow {
    catalog: Catalog,
    dialect: Dialect,
    graph: Graph,
    views: Vec<View>,
    position: Option<Position>,
    /// Each node's output for the batch in flight.
    outputs: Vec<Vec<(Row, Diff)>>,
    /// For each node, the last view whose root it is.
    views_reading: Vec<usize>,
    /// Tables whose changes go unconsolidated (see
    /// `tables_read_only_by_reduce`), as of the last view added.
    reduce_only: HashSet<String>,
}

impl Dataflow {
    pub fn new(catalog: Catalog, dialect: Dialect) -> Self {
        Dataflow {
            catalog,
            dialect,
            graph: Graph::default(),
            views: Vec::new(),
            position: None,
            outputs: Vec::new(),
            views_reading: Vec::new(),
            reduce_only: HashSet::new(),
        }
    }

    /// Adds a view before the first batch. `key` holds the view's key
    /// columns; two live rows with one key fail the view. `check_key` is kept
    /// for callers that know the key is proven; the check is cheap and always on.
    pub fn add_view(
        &mut self,
        name: &str,
        plan: &Plan,
        key: Vec<usize>,
        check_key: bool,
    ) -> Result<ViewId, BuildError> {
        let _ = check_key;
        if self.position.is_some() {
            return Err(BuildError::AfterFirstBatch);
        }
        let arity = plan.arity();
        let plan = optimize(plan.clone());
        let node = self.graph.build(&plan, &self.catalog, self.dialect)?;
        self.views.push(View { name: name.to_string(), node, state: Some(ViewState::new(key, arity)), error: None });
        self.views_reading.resize(self.graph.nodes.len(), usize::MAX);
        self.views_reading[node] = self.views.len() - 1;
        self.reduce_only = self.tables_read_only_by_reduce();
        Ok(ViewId(self.views.len() - 1))
    }

    /// Adds a view whose rows the dataflow does not keep: each batch's
    /// changes are emitted and the consumer holds the view's state (the
    /// published state does, and enforces the key there), so a served view
    /// is stored once, not twice. [`Dataflow::view_rows`] of such a view is
    /// empty.
    pub fn add_view_emitting(&mut self, name: &str, plan: &Plan) -> Result<ViewId, BuildError> {
        let id = self.add_view(name, plan, Vec::new(), false)?;
        self.views[id.0].state = None;
        Ok(id)
    }

    pub fn view_name(&self, view: ViewId) -> &str {
        &self.views[view.0].name
    }

    /// The current contents of a view with multiplicities (in no order).
    pub fn view_rows(&self, view: ViewId) -> Vec<(Row, Diff)> {
        self.views[view.0].state.iter().flat_map(|s| s.rows()).map(|(r, d)| (r.clone(), d)).collect()
    }

    pub fn view_len(&self, view: ViewId) -> usize {
        self.views[view.0].state.as_ref().map_or(0, ViewState::len)
    }

    /// The error that stopped a view, if any.
    pub fn view_error(&self, view: ViewId) -> Option<&ViewError> {
        self.views[view.0].error.as_ref()
    }

    /// The source position the views reflect (`None` before the first batch).
    pub fn position(&self) -> Option<Position> {
        self.position
    }

    /// Operator nodes in the shared graph (views reuse equal sub-plans).
    pub fn node_count(&self) -> usize {
        self.graph.nodes.len()
    }

    /// What each bounded top-k (a top-k over a join, see
    /// `operator::join_topk`) holds: its partitions and held rows.
    pub fn bounded_top_k(&self) -> Vec<TopKState> {
        self.graph
            .nodes
            .iter()
            .filter_map(|n| if let Operator::JoinTopK(t) = &n.operator { Some(t.state()) } else { None })
            .collect()
    }

    /// How many comparisons of outer rows with a scalar subquery's one row
    /// the graph maintains ordered (see `operator::scalar_filter`), rather
    /// than as a product.
    pub fn scalar_filter_count(&self) -> usize {
        self.graph.nodes.iter().filter(|n| matches!(n.operator, Operator::ScalarFilter(_))).count()
    }

    fn input_changes(
        &self,
        batch: &SourceBatch,
        rejected: &mut Vec<(String, Row, String)>,
    ) -> HashMap<String, Vec<(Row, Diff)>> {
        let mut by_table: HashMap<String, Vec<(Row, Diff)>> = HashMap::new();
        for (table, changes) in &batch.tables {
            let Some(schema) = self.catalog.get(table) else {
                continue;
            };
            let arity = schema.columns.len();
            let slot = by_table.entry(schema.name.clone()).or_default();
            slot.reserve(changes.len());
            for (row, diff) in changes {
                if row.len() == arity {
                    slot.push((row.clone(), *diff));
                } else {
                    let reason = format!("row has {} columns, table {} has {arity}", row.len(), schema.name);
                    rejected.push((table.clone(), row.clone(), reason));
                }
            }
        }
        for (table, changes) in by_table.iter_mut() {
            if !self.reduce_only.contains(table) {
                consolidate_unordered(changes);
            }
        }
        by_table
    }

    /// The tables whose changes only GROUP BYs read directly: they need not
    /// be consolidated. A `Reduce` folds each change into its group's totals,
    /// whatever their order, and emits one consolidated row pair per group,
    /// so a row inserted and deleted in one batch costs it less than finding
    /// the pair would.
    fn tables_read_only_by_reduce(&self) -> HashSet<String> {
        let nodes = &self.graph.nodes;
        let needs_consolidated = |input: NodeId| {
            self.views.iter().any(|v| v.node == input)
                || nodes.iter().any(|n| n.inputs.contains(&input) && !matches!(n.operator, Operator::Reduce(_)))
        };
        let mut tables: HashMap<&str, bool> = HashMap::new();
        for (id, node) in nodes.iter().enumerate() {
            if let Operator::Input { table } = &node.operator {
                *tables.entry(table.as_str()).or_insert(true) &= !needs_consolidated(id);
            }
        }
        tables.into_iter().filter(|&(_, only)| only).map(|(t, _)| t.to_string()).collect()
    }

    /// The changes node `id` passed on in this batch: an arrangement passes
    /// on its input's changes.
    fn delta_of(&self, id: NodeId) -> &[(Row, Diff)] {
        match self.graph.nodes[id].operator {
            Operator::Arrange(_) => &self.outputs[self.graph.nodes[id].inputs[0]],
            _ => &self.outputs[id],
        }
    }

    /// Runs one node over its inputs' outputs for this batch.
    fn step(
        &mut self,
        id: NodeId,
        mut inputs: HashMap<String, Vec<(Row, Diff)>>,
        first: bool,
    ) -> HashMap<String, Vec<(Row, Diff)>> {
        let node_inputs = self.graph.nodes[id].inputs.clone();
        if node_inputs.iter().any(|&i| self.graph.nodes[i].failed.is_some()) {
            self.graph.nodes[id].failed = node_inputs.iter().find_map(|&i| self.graph.nodes[i].failed.clone());
            return inputs;
        }
        let quiet = node_inputs.iter().all(|&i| self.delta_of(i).is_empty());
        if quiet && !first && !node_inputs.is_empty() {
            return inputs;
        }
        let (nodes, outputs) = (&mut self.graph.nodes, &self.outputs);
        let input = |k: usize| &outputs[node_inputs[k]];
        if let Operator::Join(join) = &nodes[id].operator {
            let (l, r) = (node_inputs[0], node_inputs[1]);
            let (Operator::Arrange(left), Operator::Arrange(right)) = (&nodes[l].operator, &nodes[r].operator) else {
                unreachable!("join inputs are arrangements")
            };
            let delta = |n: NodeId| &outputs[nodes[n].inputs[0]];
            match join.step(left, right, delta(l), delta(r)) {
                Ok(mut out) => {
                    consolidate_unordered(&mut out);
                    self.outputs[id] = out;
                }
                Err(e) => self.graph.nodes[id].failed = Some(e),
            }
            return inputs;
        }
        if let Operator::JoinTopK(_) = &nodes[id].operator {
            let (upstream, rest) = nodes.split_at_mut(id);
            let Operator::JoinTopK(top) = &mut rest[0].operator else { unreachable!("checked above") };
            let join_node = &upstream[node_inputs[0]];
            let Operator::Join(join) = &join_node.operator else { unreachable!("a JoinTopK reads a join") };
            let other = join_node.inputs[usize::from(top.partition_on_left())];
            let (Operator::Arrange(by_partition), Operator::Arrange(other)) =
                (&upstream[node_inputs[1]].operator, &upstream[other].operator)
            else {
                unreachable!("a JoinTopK reads arrangements")
            };
            match top.step(&outputs[node_inputs[0]], join, by_partition, other) {
                Ok(out) => self.outputs[id] = out,
                Err(e) => self.graph.nodes[id].failed = Some(e),
            }
            return inputs;
        }
        let result = match &mut nodes[id].operator {
            Operator::Input { table } => Ok(inputs.remove(table.as_str()).unwrap_or_default()),
            Operator::Filter(f) => f.step(input(0)),
            Operator::Map(m) => m.step(input(0)).map(|mut out| {
                consolidate_unordered(&mut out);
                out
            }),
            Operator::Arrange(index) => {
                // An arrangement only indexes; its readers take the delta
                // from its input (see `delta_of`), so nothing is copied.
                for (row, diff) in input(0) {
                    let (key, _) = index.key_of(row);
                    index.update(key, row, *diff);
                }
                Ok(Vec::new())
            }
            Operator::Join(_) => unreachable!("handled above"),
            Operator::Reduce(r) => r.step(input(0)),
            Operator::ScalarFilter(s) => s.step(input(0), input(1)),
            Operator::Distinct(d) => Ok(d.step(input(0))),
            Operator::TopK(t) => Ok(t.step(input(0))),
            Operator::Union => {
                let deltas: Vec<&[(Row, Diff)]> = node_inputs.iter().map(|&i| &outputs[i][..]).collect();
                Ok(crate::operator::union(&deltas))
            }
            Operator::Negate => Ok(crate::operator::negate(input(0))),
            Operator::Threshold(t) => Ok(t.step(input(0))),
            Operator::Values(v) => Ok(v.step()),
            Operator::JoinTopK(_) => unreachable!("handled above"),
        };
        match result {
            Ok(out) => self.outputs[id] = out,
            Err(e) => self.graph.nodes[id].failed = Some(e),
        }
        inputs
    }
}

impl Runtime for Dataflow {
    fn apply(&mut self, batch: &SourceBatch) -> BatchOutput {
        let mut output = BatchOutput { position: batch.position, ..BatchOutput::default() };
        let first = self.position.is_none();
        let mut inputs = self.input_changes(batch, &mut output.rejected);
        self.outputs.resize_with(self.graph.nodes.len(), Vec::new);
        for id in 0..self.graph.nodes.len() {
            inputs = self.step(id, inputs, first);
        }
        for (i, view) in self.views.iter_mut().enumerate() {
            if view.error.is_some() {
                continue;
            }
            if let Some(e) = &self.graph.nodes[view.node].failed {
                view.error = Some(ViewError::Eval(e.clone()));
            } else {
                if self.outputs[view.node].is_empty() {
                    continue;
                }
                // The last view reading a node takes its changes; others copy.
                let changes = if self.views_reading[view.node] == i {
                    std::mem::take(&mut self.outputs[view.node])
                } else {
                    self.outputs[view.node].clone()
                };
                match view.state.as_mut().map_or(Ok(()), |state| state.apply(&changes)) {
                    Ok(()) => output.views.push(ViewOutput { view: ViewId(i), changes }),
                    Err(e) => view.error = Some(e),
                }
            }
            if let Some(e) = &view.error {
                output.errors.push((ViewId(i), e.clone()));
            }
        }
        for out in &mut self.outputs {
            // Free, not just clear: a snapshot-sized batch must not stay
            // allocated for the life of the dataflow.
            *out = Vec::new();
        }
        self.position = Some(batch.position);
        output
    }
}
