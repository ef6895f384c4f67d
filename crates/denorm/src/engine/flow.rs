//! The dataflows of one engine session: one shared [`Dataflow`] for the
//! views refreshed on every change, and one per view refreshed on a schedule
//! (`WITH (refresh = '1h')`), which gathers the source changes of its tables
//! and applies them together when its period is due — consolidated, so a row
//! updated a thousand times in the period costs one change.
//!
//! A scheduled view calling `now()` and friends reads the engine's clock
//! (`denorm_types::clock`), an input of its dataflow alone: the flow feeds
//! it the wall-clock time with the snapshot, and just before each refresh
//! the new time with the old one's retraction (kept among the gathered
//! changes, so a checkpoint carries it and the refresh after a restart
//! moves the clock from the saved time to the new one). Views that do not
//! read it pay nothing.
//!
//! Pure bookkeeping: no I/O and no publishing; the engine hands what a step
//! produced to the publisher.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use denorm_core::{BuildError, Dataflow, Runtime, SourceBatch, StateEstimate, TableStats, ViewError, ViewId};
use denorm_expr::Plan;
use denorm_serve::feed::{CELEBRITY_CONTENT, CELEBRITY_EDGES, CONTENT};
use denorm_sql::{Refresh, ViewDef};
use denorm_types::{clock, consolidate, Catalog, Dialect, Diff, Position, Row};

mod checkpoint;
pub use checkpoint::SavedFlow;

/// The publishing slot of a view a reload dropped: its output is discarded.
const DROPPED: usize = usize::MAX;

/// Gathered changes are consolidated in place once they pass this many, so
/// a long period at a high write rate keeps only what differs.
const CONSOLIDATE_AT: usize = 1 << 16;

/// One view part's output changes of a step: `(slot, part, changes)`.
pub type PartChanges = (usize, usize, Vec<(Row, Diff)>);

/// What applying a batch (or a refresh) produced, by publishing slot.
#[derive(Debug, Default)]
pub struct Step {
    /// Output changes per view and part: `(slot, part, changes)`; part 0
    /// is the view's rows, a feed view also has its celebrities' content
    /// and edges (see [`denorm_serve::feed`]).
    pub views: Vec<PartChanges>,
    /// Views that failed in this step, with the reason.
    pub failures: Vec<(usize, String)>,
    /// Source changes refused as malformed: (table, row, reason).
    pub rejected: Vec<(String, Row, String)>,
    /// Scheduled views brought up to date in this step.
    pub refreshed: Vec<usize>,
}

#[derive(Debug)]
struct Scheduled {
    slot: usize,
    /// Dataflow view id → (publishing slot, part).
    parts: Vec<(usize, usize)>,
    every: Duration,
    dataflow: Dataflow,
    tables: BTreeSet<String>,
    pending: BTreeMap<String, Vec<(Row, Diff)>>,
    pending_changes: usize,
    due: Instant,
    /// The view reads the engine's clock.
    clock: bool,
}

#[derive(Debug)]
pub struct Flow {
    main: Dataflow,
    /// Main dataflow view id → (publishing slot, part).
    slots: Vec<(usize, usize)>,
    scheduled: Vec<Scheduled>,
    /// Views added by a live reload, each group in a dataflow of its own
    /// fed every batch: `(dataflow, view id → (slot, part))`.
    added: Vec<(Dataflow, Vec<(usize, usize)>)>,
    failed: BTreeSet<usize>,
    /// The source position the flow has consumed.
    pub position: Position,
    /// The wall-clock time (milliseconds since the Unix epoch) the clock
    /// of a scheduled view takes at its snapshot and refreshes.
    wall_ms: fn() -> i64,
}

impl Flow {
    /// The dataflows of `planned` (failed views are `None`), evaluating
    /// expressions with the source's `dialect`.
    pub fn new(
        catalog: Catalog,
        planned: &[Option<ViewDef>],
        dialect: Dialect,
        now: Instant,
    ) -> Result<Flow, BuildError> {
        Flow::sharing_with(catalog, planned, planned, dialect, now)
    }

    /// [`Flow::new`] of `planned`, its on-change views' joins sharing
    /// arrangements as in a flow of all of `all` (`planned` among them):
    /// the flow rebuilding some of a restart's views builds their nodes as
    /// the flow of all the views does, so that it can give them to it
    /// (see `Flow::load_partial`).
    pub fn sharing_with(
        catalog: Catalog,
        planned: &[Option<ViewDef>],
        all: &[Option<ViewDef>],
        dialect: Dialect,
        now: Instant,
    ) -> Result<Flow, BuildError> {
        let mut main = Dataflow::new(catalog.clone(), dialect);
        // The on-change views' joins reading one table by one key share
        // one arrangement of it (denorm-core's `graph/share.rs`).
        let on_change = all.iter().flatten().filter(|def| matches!(def.refresh, Refresh::OnChange));
        main.share_arrangements(on_change.flat_map(dataflow_views).map(|(_, plan, _)| plan));
        let mut slots = Vec::new();
        let mut scheduled = Vec::new();
        for (slot, def) in planned.iter().enumerate() {
            let Some(def) = def else { continue };
            match def.refresh {
                Refresh::OnChange => {
                    for (name, plan, part) in dataflow_views(def) {
                        main.add_view_emitting(&name, plan)?;
                        slots.push((slot, part));
                    }
                }
                Refresh::Every(every) => {
                    let reads_clock = dataflow_views(def).iter().any(|(_, plan, _)| plan.reads_clock());
                    let mut catalog = catalog.clone();
                    if reads_clock {
                        catalog.add(clock::schema());
                    }
                    let mut dataflow = Dataflow::new(catalog.clone(), dialect);
                    dataflow.share_arrangements(dataflow_views(def).into_iter().map(|(_, plan, _)| plan));
                    let mut parts = Vec::new();
                    for (name, plan, part) in dataflow_views(def) {
                        dataflow.add_view_emitting(&name, plan)?;
                        parts.push((slot, part));
                    }
                    let tables = def
                        .dependencies
                        .iter()
                        .map(|d| catalog.get(&d.table).map_or(d.table.clone(), |t| t.name.clone()))
                        .collect();
                    scheduled.push(Scheduled {
                        slot,
                        parts,
                        every,
                        dataflow,
                        tables,
                        pending: BTreeMap::new(),
                        pending_changes: 0,
                        due: now + every,
                        clock: reads_clock,
                    });
                }
            }
        }
        Ok(Flow {
            main,
            slots,
            scheduled,
            added: Vec::new(),
            failed: BTreeSet::new(),
            position: Position(0),
            wall_ms: clock::wall_ms,
        })
    }

    /// Reads the wall-clock time from `wall_ms` (tests freeze it).
    pub fn with_wall_clock(mut self, wall_ms: fn() -> i64) -> Self {
        self.wall_ms = wall_ms;
        self
    }

    /// A live reload: views move to new publishing slots (`map[old] =
    /// new`), and the views whose slot maps to `None` are dropped: their
    /// output is discarded from now on and their state freed.
    pub fn remap(&mut self, map: &[Option<usize>]) {
        let new = |slot: usize| map.get(slot).copied().flatten();
        let groups = std::iter::once((&mut self.main, &mut self.slots))
            .chain(self.added.iter_mut().map(|(dataflow, slots)| (dataflow, slots)));
        for (dataflow, slots) in groups {
            for (i, (slot, _)) in slots.iter_mut().enumerate() {
                match new(*slot) {
                    Some(to) => *slot = to,
                    None if *slot != DROPPED => {
                        *slot = DROPPED;
                        // Never reported (the slot is gone): frees the state.
                        let dropped = ViewError::KeyViolation { key: "(view dropped by a reload)".into() };
                        dataflow.fail_view(ViewId(i), dropped);
                    }
                    None => {}
                }
            }
        }
        self.scheduled.retain(|s| new(s.slot).is_some());
        for s in &mut self.scheduled {
            s.slot = new(s.slot).unwrap_or(DROPPED);
            for (slot, _) in &mut s.parts {
                *slot = new(*slot).unwrap_or(DROPPED);
            }
        }
        self.failed = self.failed.iter().filter_map(|&slot| new(slot)).collect();
    }

    /// A live reload: builds the views `views` (`(slot, definition)`) in a
    /// dataflow of their own, loads them with `batch` (every captured row
    /// at the flow's position) and feeds them every later batch. Returns
    /// their first step (their whole contents).
    pub fn add(
        &mut self,
        catalog: Catalog,
        views: &[(usize, ViewDef)],
        dialect: Dialect,
        batch: &SourceBatch,
        now: Instant,
    ) -> Result<Step, BuildError> {
        let slots = views.iter().map(|(slot, _)| slot + 1).max().unwrap_or(0);
        let mut planned: Vec<Option<ViewDef>> = vec![None; slots];
        for (slot, def) in views {
            planned[*slot] = Some(def.clone());
        }
        let mut fresh = Flow::new(catalog, &planned, dialect, now)?.with_wall_clock(self.wall_ms);
        let step = fresh.snapshot(batch);
        self.added.push((fresh.main, fresh.slots));
        self.scheduled.extend(fresh.scheduled);
        self.failed.extend(fresh.failed);
        Ok(step)
    }

    /// Applies the initial snapshot to every view, scheduled ones included
    /// (they are refreshed by it).
    pub fn snapshot(&mut self, batch: &SourceBatch) -> Step {
        let mut step = self.apply_main(batch);
        let now_ms = (self.wall_ms)();
        for s in &mut self.scheduled {
            let output = match s.clock {
                true => {
                    // The clock first (a small batch: the snapshot is not
                    // copied), then the rows; one output of both.
                    let clock = s.clock_batch(batch.position, now_ms);
                    let first = s.dataflow.apply(&clock);
                    merge(first, s.dataflow.apply(batch))
                }
                false => s.dataflow.apply(batch),
            };
            collect(&mut step, &mut self.failed, &s.parts, output);
            step.refreshed.push(s.slot);
        }
        self.position = batch.position;
        step
    }

    /// Applies a batch to the on-change views; scheduled views gather the
    /// changes of their tables for their next refresh.
    pub fn apply(&mut self, batch: &SourceBatch) -> Step {
        let step = self.apply_main(batch);
        // A failed view gathers nothing (its state was freed).
        for s in self.scheduled.iter_mut().filter(|s| !self.failed.contains(&s.slot)) {
            for (table, changes) in batch.tables.iter().filter(|(t, _)| s.tables.contains(t)) {
                s.pending.entry(table.clone()).or_default().extend(changes.iter().cloned());
                s.pending_changes += changes.len();
            }
            if s.pending_changes >= CONSOLIDATE_AT {
                for changes in s.pending.values_mut() {
                    consolidate(changes);
                }
                s.pending_changes = s.pending.values().map(Vec::len).sum();
            }
        }
        self.position = batch.position;
        step
    }

    /// Brings every scheduled view whose period is due at `now` up to the
    /// flow's position; `None` when none is due.
    pub fn refresh_due(&mut self, now: Instant) -> Option<Step> {
        let mut step = Step::default();
        let now_ms = (self.wall_ms)();
        for s in self.scheduled.iter_mut().filter(|s| s.due <= now) {
            let mut pending = std::mem::take(&mut s.pending);
            s.pending_changes = 0;
            if s.clock {
                // The retraction of the time of the last refresh is there.
                let (_, row) = s.clock_batch(self.position, now_ms).tables.remove(0);
                pending.entry(clock::TABLE.to_string()).or_default().extend(row);
            }
            let tables = pending.into_iter().collect();
            let output = s.dataflow.apply(&SourceBatch { position: self.position, tables });
            collect(&mut step, &mut self.failed, &s.parts, output);
            step.refreshed.push(s.slot);
            // Keep the cadence, but never queue refreshes to catch up.
            s.due = (s.due + s.every).max(now);
        }
        (!step.refreshed.is_empty()).then_some(step)
    }

    /// When the next scheduled refresh is due, if any view is scheduled.
    pub fn next_due(&self) -> Option<Instant> {
        self.scheduled.iter().map(|s| s.due).min()
    }

    /// Live heap bytes of the operators' state, `(view, operator, bytes)`:
    /// the shared dataflow's nodes (each once, under the first view reading
    /// it; a feed's parts under the feed's name, see
    /// [`Dataflow::state_bytes`]), each scheduled view's dataflow, and the
    /// changes a scheduled view has gathered for its next refresh. `names`
    /// are the publishing slots' view names. Walks the state: O(groups).
    pub fn state_bytes(&self, names: &[String]) -> Vec<(String, String, usize)> {
        let mut out: Vec<(String, String, usize)> = Vec::new();
        let groups = std::iter::once((&self.main, &self.slots)).chain(self.added.iter().map(|(d, s)| (d, s)));
        for (dataflow, slots) in groups {
            let rename = names_of(dataflow, slots, names);
            out.extend(dataflow.state_bytes().into_iter().map(|(view, label, bytes)| {
                let (view, label) = rename(view, label);
                (view, label, bytes)
            }));
        }
        for s in &self.scheduled {
            let name = &names[s.slot];
            out.extend(s.dataflow.state_bytes().into_iter().map(|(_, label, bytes)| (name.clone(), label, bytes)));
            let pending: usize = s
                .pending
                .values()
                .map(|changes| {
                    changes.capacity() * std::mem::size_of::<(Row, Diff)>()
                        + changes.iter().map(|(row, _)| heap_row_bytes(row)).sum::<usize>()
                })
                .sum();
            if pending > 0 {
                out.push((name.clone(), "changes gathered for the next refresh".to_string(), pending));
            }
        }
        out
    }

    /// The estimate of the state every dataflow will hold once loaded (see
    /// [`Dataflow::estimate_state_bytes`]), named as [`Flow::state_bytes`]
    /// names nodes.
    pub fn estimate_state_bytes(
        &self,
        stats: &std::collections::HashMap<String, TableStats>,
        names: &[String],
    ) -> Vec<StateEstimate> {
        let rename = names_of(&self.main, &self.slots, names);
        let mut out: Vec<StateEstimate> = self
            .main
            .estimate_state_bytes(stats)
            .into_iter()
            .map(|e| {
                let (view, operator) = rename(e.view, e.operator);
                StateEstimate { view, operator, ..e }
            })
            .collect();
        for s in &self.scheduled {
            let view = &names[s.slot];
            out.extend(
                s.dataflow.estimate_state_bytes(stats).into_iter().map(|e| StateEstimate { view: view.clone(), ..e }),
            );
        }
        out
    }

    /// Fails views until the operators' state is at most `budget` bytes:
    /// each time the view whose failure frees the most (the state no other
    /// live view reads), with the reason. Returns the failed slots.
    pub fn enforce_budget(&mut self, budget: u64, names: &[String]) -> Vec<(usize, String)> {
        let mut failures = Vec::new();
        loop {
            let total: usize = self.state_bytes(names).iter().map(|(_, _, bytes)| bytes).sum();
            if total as u64 <= budget {
                return failures;
            }
            // Bytes each live slot alone holds.
            let mut freed: BTreeMap<usize, usize> = BTreeMap::new();
            let groups = std::iter::once((&self.main, &self.slots)).chain(self.added.iter().map(|(d, s)| (d, s)));
            for (dataflow, slots) in groups {
                for (view, bytes) in dataflow.exclusive_state_bytes() {
                    *freed.entry(slots[view.0].0).or_default() += bytes;
                }
            }
            freed.remove(&DROPPED);
            for s in &self.scheduled {
                let bytes: usize = s.dataflow.exclusive_state_bytes().iter().map(|(_, b)| b).sum();
                *freed.entry(s.slot).or_default() += bytes;
            }
            freed.retain(|slot, _| !self.failed.contains(slot));
            let Some((&slot, &bytes)) = freed.iter().max_by_key(|&(slot, bytes)| (*bytes, std::cmp::Reverse(*slot)))
            else {
                return failures;
            };
            if bytes == 0 {
                return failures;
            }
            let error = ViewError::MemoryBudget { state_bytes: total as u64, budget, view_bytes: bytes as u64 };
            let groups =
                std::iter::once((&mut self.main, &self.slots)).chain(self.added.iter_mut().map(|(d, s)| (d, &*s)));
            for (dataflow, slots) in groups {
                for (i, &(s, _)) in slots.iter().enumerate() {
                    if s == slot {
                        dataflow.fail_view(ViewId(i), error.clone());
                    }
                }
            }
            for s in self.scheduled.iter_mut().filter(|s| s.slot == slot) {
                for view in 0..s.parts.len() {
                    s.dataflow.fail_view(ViewId(view), error.clone());
                }
                s.pending = BTreeMap::new();
                s.pending_changes = 0;
            }
            self.failed.insert(slot);
            failures.push((slot, error.to_string()));
        }
    }

    fn apply_main(&mut self, batch: &SourceBatch) -> Step {
        let mut step = Step::default();
        let output = self.main.apply(batch);
        collect(&mut step, &mut self.failed, &self.slots, output);
        for (dataflow, slots) in &mut self.added {
            let output = dataflow.apply(batch);
            collect(&mut step, &mut self.failed, slots, output);
        }
        step
    }
}

/// Maps a dataflow view's name and a node label to the publishing slot's
/// name and the label (prefixed with the part of a feed view).
fn names_of<'a>(
    dataflow: &'a Dataflow,
    slots: &'a [(usize, usize)],
    names: &'a [String],
) -> impl Fn(String, String) -> (String, String) + 'a {
    let slot_of: BTreeMap<&str, usize> =
        slots.iter().enumerate().map(|(i, &(slot, _))| (dataflow.view_name(ViewId(i)), slot)).collect();
    move |view: String, label: String| {
        let part = view.split_once('#').map(|(_, part)| format!("{part}: "));
        let label = format!("{}{label}", part.unwrap_or_default());
        match slot_of.get(view.as_str()).and_then(|&slot| names.get(slot)) {
            Some(name) => (name.clone(), label),
            None => (view, label),
        }
    }
}

/// The dataflow views that maintain `def`: `(name, plan, part)`. A
/// feed view is maintained by three plans (its rows fanned out on write,
/// its celebrities' content, its celebrity edges), and a fourth when it
/// fans out references (the other authors' content, stored once),
/// published as the parts of one slot; every other view by its plan.
/// Public so that tests and benchmarks wire a dataflow as the engine does.
pub fn dataflow_views(def: &ViewDef) -> Vec<(String, &Plan, usize)> {
    // The dataflow keeps no view rows: the published state holds them and
    // enforces keys (a feed's parts are multisets: a reader following an
    // author twice sees each post twice, as the join does).
    let Some(feed) = &def.feed else {
        return vec![(def.name.clone(), &def.plan, 0)];
    };
    let mut views = vec![
        (def.name.clone(), &feed.materialized, 0),
        (format!("{}#celebrity_content", def.name), &feed.celebrity_content, CELEBRITY_CONTENT),
        (format!("{}#celebrity_edges", def.name), &feed.celebrity_edges, CELEBRITY_EDGES),
    ];
    if let Some(reference) = &feed.reference {
        views.push((format!("{}#content", def.name), &reference.content, CONTENT));
    }
    views
}

/// The heap allocation of a row longer than [`Row::INLINE`]: its
/// `Arc<[u8]>` (two counts and the bytes, rounded to 8), as denorm-core
/// counts it.
fn heap_row_bytes(row: &Row) -> usize {
    match row.heap_size() {
        0 => 0,
        len => (16 + len).next_multiple_of(8),
    }
}

impl Scheduled {
    /// The clock's insertion at `now_ms`, whose retraction it keeps among
    /// the gathered changes for the next refresh.
    fn clock_batch(&mut self, position: Position, now_ms: i64) -> SourceBatch {
        let row = clock::row(now_ms);
        self.pending.insert(clock::TABLE.to_string(), vec![(row.clone(), -1)]);
        self.pending_changes += 1;
        SourceBatch { position, tables: vec![(clock::TABLE.to_string(), vec![(row, 1)])] }
    }
}

/// One output of two batches applied in turn: each view's changes
/// together, consolidated.
fn merge(first: denorm_core::BatchOutput, then: denorm_core::BatchOutput) -> denorm_core::BatchOutput {
    let mut by_view: BTreeMap<ViewId, Vec<(Row, Diff)>> = BTreeMap::new();
    for view in first.views.into_iter().chain(then.views) {
        by_view.entry(view.view).or_default().extend(view.changes);
    }
    let mut errors = first.errors;
    for (view, e) in then.errors {
        if !errors.iter().any(|(v, _)| *v == view) {
            errors.push((view, e));
        }
    }
    let views = by_view
        .into_iter()
        .filter_map(|(view, mut changes)| {
            consolidate(&mut changes);
            (!changes.is_empty() && !errors.iter().any(|(v, _)| *v == view))
                .then_some(denorm_core::ViewOutput { view, changes })
        })
        .collect();
    let mut rejected = first.rejected;
    rejected.extend(then.rejected);
    denorm_core::BatchOutput { position: then.position, views, errors, rejected }
}

/// Moves a dataflow's output into `step`, mapping its view ids to (slot,
/// part); each slot's failure is reported once.
fn collect(step: &mut Step, failed: &mut BTreeSet<usize>, slots: &[(usize, usize)], output: denorm_core::BatchOutput) {
    step.rejected.extend(output.rejected);
    for view in output.views {
        let (slot, part) = slots[view.view.0];
        if slot != DROPPED {
            step.views.push((slot, part, view.changes));
        }
    }
    for (view, e) in output.errors {
        let (slot, _) = slots[view.0];
        if slot != DROPPED && failed.insert(slot) {
            step.failures.push((slot, e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_sql::plan_views;
    use denorm_types::{ColumnSchema, Datum, ScalarType, TableSchema};

    fn catalog() -> Catalog {
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "sales".into(),
            columns: vec![
                ColumnSchema { name: "id".into(), ty: ScalarType::Int, nullable: false },
                ColumnSchema { name: "day".into(), ty: ScalarType::Text, nullable: false },
                ColumnSchema { name: "amount".into(), ty: ScalarType::Int, nullable: false },
            ],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog
    }

    fn sale(id: i64, day: &str, amount: i64) -> Row {
        Row::pack([Datum::Int(id), Datum::text(day), Datum::Int(amount)])
    }

    fn batch(position: u64, changes: Vec<(Row, Diff)>) -> SourceBatch {
        SourceBatch { position: Position(position), tables: vec![("sales".into(), changes)] }
    }

    /// A view refreshed every hour sees nothing between refreshes, then
    /// everything gathered, consolidated; an on-change view sees each batch.
    #[test]
    fn scheduled_views_gather_changes_until_due() {
        let sql = "CREATE MATERIALIZED VIEW live AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;
                   CREATE MATERIALIZED VIEW hourly WITH (refresh = '1h') AS
                   SELECT day, SUM(amount) AS total FROM sales GROUP BY day;";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        let start = Instant::now();
        let mut flow = Flow::new(catalog(), &planned, Dialect::Sqlite, start).unwrap();
        let step = flow.snapshot(&batch(1, vec![(sale(1, "mon", 5), 1)]));
        assert_eq!(step.refreshed, vec![1]);
        assert_eq!(step.views.iter().map(|(slot, _, _)| *slot).collect::<Vec<_>>(), vec![0, 1]);

        let step = flow.apply(&batch(2, vec![(sale(2, "mon", 7), 1)]));
        assert_eq!(step.views.iter().map(|(slot, _, _)| *slot).collect::<Vec<_>>(), vec![0]);
        flow.apply(&batch(3, vec![(sale(2, "mon", 7), -1), (sale(2, "mon", 9), 1)]));
        assert!(flow.refresh_due(start + Duration::from_secs(3599)).is_none());
        assert_eq!(flow.next_due(), Some(start + Duration::from_secs(3600)));

        let step = flow.refresh_due(start + Duration::from_secs(3600)).unwrap();
        assert_eq!(step.refreshed, vec![1]);
        let (slot, _, changes) = &step.views[0];
        assert_eq!(*slot, 1);
        let mut seen: Vec<(Datum<'_>, Diff)> = changes.iter().map(|(r, d)| (r.get(1), *d)).collect();
        seen.sort_by_key(|(_, d)| *d);
        assert_eq!(seen, vec![(Datum::Int(5), -1), (Datum::Int(14), 1)]);
        assert_eq!(flow.next_due(), Some(start + Duration::from_secs(7200)));
    }

    /// State is reported under the publishing slots' names, a scheduled
    /// view's gathered changes included; over a budget the slot holding the
    /// most fails (once), the others stay.
    #[test]
    fn state_by_view_and_the_budget_fails_the_largest() {
        let sql = "CREATE MATERIALIZED VIEW per_sale AS SELECT id, day, SUM(amount) AS total FROM sales GROUP BY id, day;
                   CREATE MATERIALIZED VIEW per_day AS SELECT day, COUNT(*) AS n FROM sales GROUP BY day;
                   CREATE MATERIALIZED VIEW hourly WITH (refresh = '1h') AS SELECT day, COUNT(*) AS n FROM sales GROUP BY day;";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        let names: Vec<String> = ["per_sale", "per_day", "hourly"].map(String::from).to_vec();
        let mut flow = Flow::new(catalog(), &planned, Dialect::Sqlite, Instant::now()).unwrap();
        let day = "a day name longer than an inline row can hold";
        flow.snapshot(&batch(1, (0..500).map(|i| (sale(i, &day[..(i % 3) as usize + 40], i), 1)).collect()));
        flow.apply(&batch(2, vec![(sale(900, day, 1), 1)]));
        let state = flow.state_bytes(&names);
        let of = |view: &str| state.iter().filter(|(v, _, _)| v == view).map(|(_, _, b)| b).sum::<usize>();
        assert!(of("per_sale") > of("per_day") && of("per_day") > 0, "{state:?}");
        assert!(state.iter().any(|(v, label, b)| v == "hourly" && label.starts_with("changes gathered") && *b > 0));
        let total: usize = state.iter().map(|(_, _, b)| b).sum();
        let failures = flow.enforce_budget((total - 1) as u64, &names);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0, 0);
        assert!(failures[0].1.contains("memory budget exceeded"), "{}", failures[0].1);
        assert_eq!(of_after(&flow, &names, "per_sale"), 0);
        assert!(of_after(&flow, &names, "per_day") > 0);
        // The failure is not reported again by the next batch.
        let step = flow.apply(&batch(3, vec![(sale(901, day, 1), 1)]));
        assert!(step.failures.is_empty(), "{:?}", step.failures);
        assert!(step.views.iter().any(|(slot, _, _)| *slot == 1));
        assert!(flow.enforce_budget(0, &names).len() == 2, "a zero budget fails every view holding state");
        flow.apply(&batch(4, vec![(sale(902, day, 1), 1)]));
        let gathered = flow.state_bytes(&names).iter().any(|(_, label, _)| label.starts_with("changes gathered"));
        assert!(!gathered, "a failed scheduled view gathers no changes");
    }

    /// A live reload: a dropped view's output stops and its state is freed,
    /// a kept view moves to its new slot and goes on incrementally, an added
    /// view is loaded from the rows given and then follows every batch,
    /// exactly as a view built from scratch.
    #[test]
    fn remapped_and_added_views_follow_the_batches() {
        let sql = "CREATE MATERIALIZED VIEW dropped AS SELECT id, amount FROM sales;
                   CREATE MATERIALIZED VIEW kept AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        let mut flow = Flow::new(catalog(), &planned, Dialect::Sqlite, Instant::now()).unwrap();
        let rows = vec![(sale(1, "mon", 5), 1), (sale(2, "tue", 7), 1)];
        flow.snapshot(&batch(1, rows.clone()));
        flow.remap(&[None, Some(0)]);
        let added = "CREATE MATERIALIZED VIEW added AS SELECT day, COUNT(*) AS n FROM sales GROUP BY day;";
        let def = plan_views(added, &catalog(), Dialect::Sqlite).unwrap().remove(0);
        let step = flow.add(catalog(), &[(1, def.clone())], Dialect::Sqlite, &batch(1, rows), Instant::now()).unwrap();
        assert_eq!(step.views.iter().map(|(slot, _, c)| (*slot, c.len())).collect::<Vec<_>>(), vec![(1, 2)]);
        let names: Vec<String> = ["kept", "added"].map(String::from).to_vec();
        assert!(flow.state_bytes(&names).iter().all(|(v, _, _)| names.contains(v)), "{:?}", flow.state_bytes(&names));
        let step = flow.apply(&batch(2, vec![(sale(3, "mon", 1), 1), (sale(2, "tue", 7), -1)]));
        let mut slots: Vec<usize> = step.views.iter().map(|(slot, _, _)| *slot).collect();
        slots.sort();
        assert_eq!(slots, vec![0, 1]);
        let changes = |slot: usize| -> Vec<(Row, Diff)> {
            let mut c: Vec<(Row, Diff)> =
                step.views.iter().filter(|(s, _, _)| *s == slot).flat_map(|(_, _, c)| c.clone()).collect();
            c.sort();
            c
        };
        // The added view changes as one built from scratch over all batches.
        let mut scratch = Flow::new(catalog(), &[Some(def)], Dialect::Sqlite, Instant::now()).unwrap();
        scratch.snapshot(&batch(1, vec![(sale(1, "mon", 5), 1), (sale(2, "tue", 7), 1)]));
        let mut want = scratch
            .apply(&batch(2, vec![(sale(3, "mon", 1), 1), (sale(2, "tue", 7), -1)]))
            .views
            .into_iter()
            .flat_map(|(_, _, c)| c)
            .collect::<Vec<_>>();
        want.sort();
        assert_eq!(changes(1), want);
        let kept_changes = changes(0);
        let kept: Vec<(Datum<'_>, Datum<'_>, Diff)> =
            kept_changes.iter().map(|(r, d)| (r.get(0), r.get(1), *d)).collect();
        assert_eq!(
            kept,
            vec![
                (Datum::text("mon"), Datum::Int(5), -1),
                (Datum::text("mon"), Datum::Int(6), 1),
                (Datum::text("tue"), Datum::Int(7), -1)
            ],
            "the kept view goes on incrementally"
        );
    }

    fn of_after(flow: &Flow, names: &[String], view: &str) -> usize {
        flow.state_bytes(names).iter().filter(|(v, _, _)| v == view).map(|(_, _, b)| b).sum()
    }

    /// The wall clock of the clock tests: set by the test, read by the flow.
    static WALL_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

    fn wall() -> i64 {
        WALL_MS.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn at(ms: i64) {
        WALL_MS.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// 2024-05-01 10:00:00 UTC.
    const TEN: i64 = 1_714_557_600_000;

    fn ids(step: &Step, slot: usize) -> Vec<(i64, Diff)> {
        let mut out: Vec<(i64, Diff)> = step
            .views
            .iter()
            .filter(|(s, _, _)| *s == slot)
            .flat_map(|(_, _, changes)| changes.iter())
            .map(|(r, d)| match r.get(0) {
                Datum::Int(id) => (id, *d),
                other => panic!("{other:?}"),
            })
            .collect();
        out.sort_unstable();
        out
    }

    fn clock_flow(start: Instant) -> Flow {
        let sql = "CREATE MATERIALIZED VIEW live AS SELECT id FROM sales;
                   CREATE MATERIALIZED VIEW recent WITH (refresh = '1m') AS
                   SELECT id FROM sales WHERE day > datetime('now', '-1 hour');";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        Flow::new(catalog(), &planned, Dialect::Sqlite, start).unwrap().with_wall_clock(wall)
    }

    /// A scheduled view reading the clock: the snapshot computes it at the
    /// wall-clock time; a refresh moves the clock, so a row ages out
    /// without a source change; after a checkpoint and a load, the next
    /// refresh moves the clock from the saved time to the new one.
    #[test]
    fn the_clock_moves_at_each_refresh_and_across_a_checkpoint() {
        let start = Instant::now();
        let minute = Duration::from_secs(60);
        let mut flow = clock_flow(start);
        at(TEN);
        let rows = vec![(sale(1, "2024-05-01 09:00:30", 1), 1), (sale(2, "2024-05-01 09:30:00", 1), 1)];
        let step = flow.snapshot(&batch(1, rows));
        assert_eq!(ids(&step, 1), vec![(1, 1), (2, 1)]);
        // The on-change view does not read the clock, and only moves with
        // the source.
        assert_eq!(ids(&step, 0), vec![(1, 1), (2, 1)]);
        // The comparison with the clock is maintained in order (a refresh
        // touches the rows crossing the bound), not as a product.
        let names = ["live", "recent"].map(String::from);
        let operators: Vec<String> =
            flow.state_bytes(&names).into_iter().filter(|(v, _, _)| v == "recent").map(|(_, o, _)| o).collect();
        assert!(operators.iter().any(|o| o.contains("ScalarFilter")), "{operators:?}");

        at(TEN + 60_000);
        let step = flow.refresh_due(start + minute).unwrap();
        assert_eq!(ids(&step, 1), vec![(1, -1)], "row 1 aged out without a source change");
        assert_eq!(ids(&step, 0), vec![]);

        let mut w = denorm_core::checkpoint::Writer::default();
        flow.save_checkpoint(&mut w).unwrap();
        let mut loaded = clock_flow(start);
        loaded.load_checkpoint(&mut denorm_core::checkpoint::Reader::new(&w.buf), true).unwrap();
        // Restarted 40 minutes later: the saved time is retracted, the new
        // one inserted, at the next refresh.
        at(TEN + 40 * 60_000);
        let step = loaded.refresh_due(start + 2 * minute).unwrap();
        assert_eq!(ids(&step, 1), vec![(2, -1)]);
        assert_eq!(ids(&step, 0), vec![]);
        // A source change gathered, then the clock moved back within the
        // hour of both rows: they return with the new one.
        loaded.apply(&batch(2, vec![(sale(3, "2024-05-01 10:10:00", 1), 1)]));
        at(TEN);
        let step = loaded.refresh_due(start + 3 * minute).unwrap();
        assert_eq!(ids(&step, 1), vec![(1, 1), (2, 1), (3, 1)]);
    }
}
