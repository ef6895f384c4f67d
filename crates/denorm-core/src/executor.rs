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
pub(crate) struct View {
    pub(crate) name: String,
    node: NodeId,
    /// The view's rows, unless its consumer keeps them (see
    /// [`Dataflow::add_view_emitting`]).
    pub(crate) state: Option<ViewState>,
    pub(crate) error: Option<ViewError>,
}

/// The single-threaded runtime: one operator graph shared by all views.
#[derive(Debug)]
pub struct Dataflow {
    pub(crate) catalog: Catalog,
    dialect: Dialect,
    pub(crate) graph: Graph,
    pub(crate) views: Vec<View>,
    pub(crate) position: Option<Position>,
    /// Each node's output for the batch in flight.
    outputs: Vec<Vec<(Row, Diff)>>,
    /// For each node, the last view whose root it is.
    views_reading: Vec<usize>,
    /// Tables whose changes go unconsolidated (see
    /// `tables_read_only_by_reduce`), as of the last view added.
    reduce_only: HashSet<String>,
    /// For each node, the nodes whose step frees the outputs it no longer
    /// needs (see [`Dataflow::last_readers`]), as of the last view added.
    frees: Vec<Vec<NodeId>>,
    /// Column projections of a source table that only fused filters read
    /// (see `graph/projection.rs`): they do not run.
    pub(crate) skipped: Vec<bool>,
    /// Insertion-only batches larger than this run in chunks (see
    /// [`Runtime::apply`] for `Dataflow`).
    chunk: usize,
    /// Views failed by [`Dataflow::fail_view`] not yet reported in a
    /// batch's output.
    failed_unreported: Vec<ViewId>,
    /// Per node, time spent in its step and changes it output, while
    /// profiling (see [`Dataflow::set_profiling`]).
    profile: Option<Vec<NodeProfile>>,
}

/// One node's share of the work since profiling started.
#[derive(Debug, Clone, Copy, Default)]
struct NodeProfile {
    seconds: f64,
    changes_out: usize,
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
            frees: Vec::new(),
            skipped: Vec::new(),
            chunk: CHUNK,
            failed_unreported: Vec::new(),
            profile: None,
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
        self.frees = self.last_readers();
        self.skipped = self.skipped_projections();
        Ok(ViewId(self.views.len() - 1))
    }

    /// Tells the dataflow the plans of the views about to be added, so that
    /// joins of different views reading one table by one key share one
    /// arrangement of it, holding the columns they all read, instead of
    /// one arrangement each (see `graph/share.rs`). Call it once with every
    /// view's plan, before [`Dataflow::add_view`]; the views then added
    /// compute the same rows as without it. A group of joins the hint
    /// widened keeps its columns: views added later whose columns are
    /// within them share it too, the others get arrangements of their own.
    pub fn share_arrangements<'p>(&mut self, plans: impl IntoIterator<Item = &'p Plan>) {
        let plans: Vec<Plan> = plans.into_iter().map(|p| optimize(p.clone())).collect();
        self.graph.share_arrangements(&plans, &self.catalog);
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

    /// Sets the number of changes an insertion-only batch is cut into
    /// (default 65,536): smaller pieces hold fewer intermediate results at
    /// once. Tests set it small so that every shape runs chunked.
    pub fn set_chunk_size(&mut self, changes: usize) {
        self.chunk = changes.max(1);
    }

    /// Starts (or stops and forgets) timing each node's step: where a
    /// batch's time goes, for benchmarks (see [`Dataflow::node_profile`]).
    /// Off by default; when off it costs one branch per node and batch.
    pub fn set_profiling(&mut self, on: bool) {
        self.profile = on.then(Vec::new);
    }

    /// Each node that ran since profiling started, busiest first: `(view,
    /// label, seconds, changes output)`, attributed as in
    /// [`Dataflow::state_bytes`] (an arrangement's time is its indexing;
    /// its readers take its input's changes, so it outputs none).
    pub fn node_profile(&self) -> Vec<(String, String, f64, usize)> {
        let Some(profile) = &self.profile else { return Vec::new() };
        let readers = self.readers();
        let mut out: Vec<_> = profile
            .iter()
            .enumerate()
            .filter(|(_, p)| p.seconds > 0.0)
            .filter_map(|(id, p)| {
                let kind = self.graph.nodes[id].operator.kind();
                let (view, label) = self.attribute(id, &kind, &readers)?;
                Some((view, label, p.seconds, p.changes_out))
            })
            .collect();
        out.sort_by(|a, b| b.2.total_cmp(&a.2));
        out
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

    /// Live heap bytes of every stateful node and kept view state:
    /// `(view, operator label, bytes)`, in node order, then the views' rows.
    /// A node several views read is reported once, under the first view
    /// (in the order added) that reads it, its label ending `shared by N
    /// views`. Exact from the state's sizes and capacities (see the rules
    /// in `memory.rs`: a buffer held by two operators is in both figures);
    /// arrangements keep a running count (O(1)), the other operators are
    /// walked (O(groups)), so callers sample it periodically rather than
    /// per batch.
    pub fn state_bytes(&self) -> Vec<(String, String, usize)> {
        let readers = self.readers();
        let mut out = Vec::new();
        for (id, node) in self.graph.nodes.iter().enumerate() {
            let Some((kind, bytes)) = node.operator.state_bytes() else { continue };
            if let Some((view, label)) = self.attribute(id, &kind, &readers) {
                out.push((view, label, bytes));
            }
        }
        for view in &self.views {
            if let Some(state) = &view.state {
                out.push((view.name.clone(), "view rows".to_string(), state.state_bytes()));
            }
        }
        out
    }

    /// The sum of [`Dataflow::state_bytes`].
    pub fn total_state_bytes(&self) -> usize {
        self.state_bytes().iter().map(|(_, _, bytes)| bytes).sum()
    }

    /// Each live view's bytes that failing it would free: its kept rows and
    /// the state of the nodes no other live view reads.
    pub fn exclusive_state_bytes(&self) -> Vec<(ViewId, usize)> {
        let readers = self.readers();
        let mut bytes = vec![0; self.views.len()];
        for (id, node) in self.graph.nodes.iter().enumerate() {
            if let ([only], Some((_, b))) = (readers[id].as_slice(), node.operator.state_bytes()) {
                bytes[*only] += b;
            }
        }
        self.views
            .iter()
            .enumerate()
            .filter(|(_, v)| v.error.is_none())
            .map(|(i, v)| (ViewId(i), bytes[i] + v.state.as_ref().map_or(0, ViewState::state_bytes)))
            .collect()
    }

    /// Fails `view` with `error` (a later batch reports it like any view
    /// failure) and frees the state of the nodes no live view reads any
    /// more; they compute nothing from then on.
    pub fn fail_view(&mut self, view: ViewId, error: ViewError) {
        let Some(v) = self.views.get_mut(view.0) else { return };
        if v.error.is_some() {
            return;
        }
        v.error = Some(error);
        v.state = None;
        self.failed_unreported.push(view);
        let readers = self.readers();
        for (id, node) in self.graph.nodes.iter_mut().enumerate() {
            if readers[id].is_empty() && !matches!(node.operator, Operator::Input { .. }) {
                node.operator = Operator::Released;
            }
        }
    }

    /// The view node `id` is reported under (the first live view reading
    /// it) and its label (`{id} {kind}`, and `shared by N views`); `None`
    /// when no live view reads it.
    pub(crate) fn attribute(&self, id: NodeId, kind: &str, readers: &[Vec<usize>]) -> Option<(String, String)> {
        let &first = readers[id].first()?;
        let mut label = format!("{id} {kind}");
        if readers[id].len() > 1 {
            label.push_str(&format!(", shared by {} views", readers[id].len()));
        }
        Some((self.views[first].name.clone(), label))
    }

    /// Each view's name and output node, in the order they were added.
    pub(crate) fn view_nodes(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.views.iter().map(|v| (v.name.as_str(), v.node))
    }

    /// For each node, the live views reading it (directly or through other
    /// nodes), in the order they were added.
    pub(crate) fn readers(&self) -> Vec<Vec<usize>> {
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); self.graph.nodes.len()];
        for (i, view) in self.views.iter().enumerate().filter(|(_, v)| v.error.is_none()) {
            let mut stack = vec![view.node];
            while let Some(id) = stack.pop() {
                if readers[id].last() != Some(&i) {
                    readers[id].push(i);
                    stack.extend(&self.graph.nodes[id].inputs);
                }
            }
        }
        readers
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

    /// Whether node `id` is a filter fused with the projection below it:
    /// it reads the projection's input (see `graph/projection.rs`).
    fn fused(&self, id: NodeId) -> bool {
        matches!(&self.graph.nodes[id].operator, Operator::Filter(f) if f.fused.is_some())
    }

    /// For each node, whether it is a projection that runs for no one: a
    /// `Map` that no view ends at and that only fused filters read.
    fn skipped_projections(&self) -> Vec<bool> {
        let nodes = &self.graph.nodes;
        let mut read_by_others = vec![false; nodes.len()];
        let mut read_by_fused = vec![false; nodes.len()];
        for (id, node) in nodes.iter().enumerate() {
            let fused = self.fused(id);
            for &input in &node.inputs {
                if fused {
                    read_by_fused[input] = true;
                } else {
                    read_by_others[input] = true;
                }
            }
        }
        (0..nodes.len())
            .map(|id| {
                matches!(nodes[id].operator, Operator::Map(_))
                    && read_by_fused[id]
                    && !read_by_others[id]
                    && !self.views.iter().any(|v| v.node == id)
            })
            .collect()
    }

    /// For each node id, the nodes whose outputs nothing after `id` reads:
    /// freed right after `id` runs, so a snapshot-sized batch holds only the
    /// outputs still to be read, not every intermediate result at once. A
    /// node reads its inputs' outputs, and through an arrangement the
    /// arrangement's input's (see `delta_of`); a view's root is read at the
    /// end of the batch and never freed early.
    fn last_readers(&self) -> Vec<Vec<NodeId>> {
        let nodes = &self.graph.nodes;
        let mut last: Vec<Option<NodeId>> = vec![None; nodes.len()];
        for (id, node) in nodes.iter().enumerate() {
            for &input in &node.inputs {
                last[input] = Some(id);
                if let Operator::Arrange(_) = nodes[input].operator {
                    last[nodes[input].inputs[0]] = Some(id);
                }
                if self.fused(id) {
                    last[nodes[input].inputs[0]] = Some(id);
                }
            }
        }
        let mut frees = vec![Vec::new(); nodes.len()];
        for (node, reader) in last.into_iter().enumerate() {
            if let Some(reader) = reader {
                if !self.views.iter().any(|v| v.node == node) {
                    frees[reader].push(node);
                }
            }
        }
        frees
    }

    /// The changes node `id` passed on in this batch: an arrangement passes
    /// on its input's changes.
    fn delta_of(&self, id: NodeId) -> &[(Row, Diff)] {
        match self.graph.nodes[id].operator {
            Operator::Arrange(_) => &self.outputs[self.graph.nodes[id].inputs[0]],
            // Only fused filters read it: they take its input's changes.
            _ if self.skipped.get(id) == Some(&true) => &self.outputs[self.graph.nodes[id].inputs[0]],
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
        if matches!(self.graph.nodes[id].operator, Operator::Released) {
            return inputs;
        }
        if node_inputs.iter().any(|&i| self.graph.nodes[i].failed.is_some()) {
            self.graph.nodes[id].failed = node_inputs.iter().find_map(|&i| self.graph.nodes[i].failed.clone());
            return inputs;
        }
        let quiet = node_inputs.iter().all(|&i| self.delta_of(i).is_empty());
        if quiet && !first && !node_inputs.is_empty() || self.skipped.get(id) == Some(&true) {
            return inputs;
        }
        // What a fused filter reads: its projection's input.
        let below = node_inputs.first().and_then(|&i| self.graph.nodes[i].inputs.first().copied());
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
            // Fused with the projection it reads: the projection's input.
            Operator::Filter(f) if f.fused.is_some() => f.step(below.map_or(&[][..], |b| &outputs[b][..])),
            Operator::Filter(f) => f.step(input(0)),
            Operator::Map(m) => m.step(input(0)).map(|mut out| {
                consolidate_unordered(&mut out);
                out
            }),
            Operator::Arrange(index) => {
                // An arrangement only indexes; its readers take the delta
                // from its input (see `delta_of`), so nothing is copied.
                index.apply(input(0));
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
            Operator::Released => unreachable!("skipped above"),
        };
        match result {
            Ok(out) => self.outputs[id] = out,
            Err(e) => self.graph.nodes[id].failed = Some(e),
        }
        inputs
    }
}

/// By default, a batch of insertions larger than this runs in chunks of
/// this many changes (see [`Dataflow::set_chunk_size`]).
const CHUNK: usize = 1 << 16;

/// `batch` cut into consecutive pieces of at most `size` changes, each
/// copied only when it is taken: one piece's copies are alive at a time,
/// not a second copy of the whole batch.
fn chunks(batch: &SourceBatch, size: usize) -> impl Iterator<Item = SourceBatch> + '_ {
    let (mut table, mut offset) = (0, 0);
    std::iter::from_fn(move || {
        let mut chunk = SourceBatch { position: batch.position, tables: Vec::new() };
        let mut room = size;
        while room > 0 && table < batch.tables.len() {
            let (name, changes) = &batch.tables[table];
            let piece = &changes[offset..changes.len().min(offset + room)];
            if !piece.is_empty() {
                chunk.tables.push((name.clone(), piece.to_vec()));
            }
            room -= piece.len();
            offset += piece.len();
            if offset == changes.len() {
                table += 1;
                offset = 0;
            }
        }
        (!chunk.tables.is_empty()).then_some(chunk)
    })
}

impl Runtime for Dataflow {
    /// A large batch of insertions only (a snapshot) runs in chunks of
    /// [`Dataflow::set_chunk_size`] changes, its views' changes summed: every operator is
    /// linear in its input's changes, so the result is the batch's, while
    /// the intermediate results alive at once are a chunk's, not the whole
    /// table's. With insertions only, every intermediate state is a subset
    /// of the final one, so no chunk can see a key conflict the batch has
    /// not. (An integer SUM whose partial total over the first chunks
    /// leaves 64 bits fails, as SQLite's scan does when a partial sum does.)
    fn apply(&mut self, batch: &SourceBatch) -> BatchOutput {
        let total: usize = batch.tables.iter().map(|(_, c)| c.len()).sum();
        if total <= self.chunk || batch.tables.iter().any(|(_, c)| c.iter().any(|(_, d)| *d < 0)) {
            return self.apply_whole(batch);
        }
        let mut output = BatchOutput { position: batch.position, ..BatchOutput::default() };
        let mut views: Vec<Option<Vec<(Row, Diff)>>> = vec![None; self.views.len()];
        for chunk in chunks(batch, self.chunk) {
            let part = self.apply_whole(&chunk);
            for out in part.views {
                views[out.view.0].get_or_insert_with(Vec::new).extend(out.changes);
            }
            output.errors.extend(part.errors);
            output.rejected.extend(part.rejected);
        }
        for (i, changes) in views.into_iter().enumerate() {
            let Some(mut changes) = changes else { continue };
            if self.views[i].error.is_some() {
                continue;
            }
            consolidate_unordered(&mut changes);
            if !changes.is_empty() {
                output.views.push(ViewOutput { view: ViewId(i), changes });
            }
        }
        output
    }
}

impl Dataflow {
    /// Runs one batch through every node at once.
    fn apply_whole(&mut self, batch: &SourceBatch) -> BatchOutput {
        let mut output = BatchOutput { position: batch.position, ..BatchOutput::default() };
        let first = self.position.is_none();
        let mut inputs = self.input_changes(batch, &mut output.rejected);
        self.outputs.resize_with(self.graph.nodes.len(), Vec::new);
        if let Some(profile) = &mut self.profile {
            profile.resize(self.graph.nodes.len(), NodeProfile::default());
        }
        for id in 0..self.graph.nodes.len() {
            let clock = self.profile.is_some().then(std::time::Instant::now);
            inputs = self.step(id, inputs, first);
            if let (Some(clock), Some(profile)) = (clock, &mut self.profile) {
                profile[id].seconds += clock.elapsed().as_secs_f64();
                profile[id].changes_out += self.outputs[id].len();
            }
            for &done in &self.frees[id] {
                self.outputs[done] = Vec::new();
            }
        }
        for failed in std::mem::take(&mut self.failed_unreported) {
            if let Some(e) = &self.views[failed.0].error {
                output.errors.push((failed, e.clone()));
            }
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

#[cfg(test)]
mod tests {
    use denorm_types::{Datum, Diff, Position, Row};

    use super::{chunks, SourceBatch};

    fn rows(table: &str, n: i64) -> (String, Vec<(Row, Diff)>) {
        (table.to_string(), (0..n).map(|i| (Row::pack([Datum::Int(i)]), 1)).collect())
    }

    /// The pieces cover the batch in order, each at most `size` changes,
    /// cut across tables, skipping empty ones; each is copied when taken.
    #[test]
    fn chunks_cut_the_batch_in_order() {
        let batch = SourceBatch {
            position: Position(7),
            tables: vec![rows("a", 5), rows("empty", 0), rows("b", 4), rows("c", 1)],
        };
        let pieces: Vec<SourceBatch> = chunks(&batch, 3).collect();
        let shape: Vec<Vec<(&str, usize)>> =
            pieces.iter().map(|p| p.tables.iter().map(|(t, c)| (t.as_str(), c.len())).collect()).collect();
        assert_eq!(shape, vec![vec![("a", 3)], vec![("a", 2), ("b", 1)], vec![("b", 3)], vec![("c", 1)]]);
        assert!(pieces.iter().all(|p| p.position == Position(7)));
        let rejoined: Vec<(String, Row)> = pieces
            .iter()
            .flat_map(|p| p.tables.iter().flat_map(|(t, c)| c.iter().map(|(r, _)| (t.clone(), r.clone()))))
            .collect();
        let whole: Vec<(String, Row)> =
            batch.tables.iter().flat_map(|(t, c)| c.iter().map(|(r, _)| (t.clone(), r.clone()))).collect();
        assert_eq!(rejoined, whole);
        assert_eq!(chunks(&batch, 10).count(), 1);
        assert_eq!(chunks(&SourceBatch { position: Position(0), tables: vec![rows("a", 0)] }, 3).count(), 0);
    }
}
