//! Views heal: a failed view is retried when its cause can have cleared,
//! without a restart of the process.
//!
//! ```text
//!  cause of the failure                 retried when                    how
//!  ───────────────────────────────────  ──────────────────────────────  ─────────────────────────────────────
//!  a computation error (SUM past 2^63,  a batch changed one of its      trial: the view alone, built from the
//!  a division the dialect refuses, …)   tables (at most every 1 s,      stored input rows (state directory);
//!                                       doubling to 60 s)               clean → that view alone is rebuilt
//!                                                                       from the stored rows and published
//!  the schema no longer satisfies it    every 1 s: the catalog is       plans again → the session ends, the
//!  (a column renamed, a table dropped)  read and the view planned       next one re-plans and captures it
//!  (PostgreSQL) a captured table        every 2 s: the catalog is read  the session ends: the views reading
//!  dropped: the stream says nothing                                     it fail, then heal as above
//! ```
//!
//! A trial never touches the published state: it builds a throw-away
//! dataflow of the one view and applies the stored rows of its tables (the
//! exact input at the flow's position). When that is free of errors the
//! view is rebuilt in place ([`Engine::rebuild_healed`]): its slot is
//! dropped from the session's dataflows (`Flow::remap`), a dataflow of its
//! own is built from the stored rows of its tables and fed every later batch
//! (`Flow::add`, as a live reload adds a view), and its whole contents are
//! published at the flow's position. The other views are neither rebuilt
//! nor republished: their readers see no gap and no change. Without a state
//! directory there are no stored rows to try a computation on: such a view
//! heals at the next session (a schema change, a TRUNCATE). Views failed by
//! the memory budget are not retried (freeing memory is the operator's
//! decision).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use denorm_core::SourceBatch;
use denorm_sql::{plan_each, ViewDef};
use denorm_types::{Catalog, Dialect, Position};

use super::flow::Flow;
use super::{Engine, EngineError, ViewSources};
use crate::state_dir::StateDir;

/// The first wait between two trials of a view failed by a computation.
const TRIAL_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two trials (a trial reads the view's input).
const TRIAL_MAX: Duration = Duration::from_secs(60);
/// How often the catalog is read while a view fails by the schema.
const SCHEMA_EVERY: Duration = Duration::from_secs(1);
/// How often the catalog is read on PostgreSQL to notice a captured table
/// dropped (logical decoding sends nothing for a DROP TABLE, so the stream
/// alone would leave the views reading it stale).
const DROPPED_EVERY: Duration = Duration::from_secs(2);

/// What `/views` and `/health` add to the reason of a view failed by a
/// computation: it is healing.
pub(crate) const COMPUTE_NOTE: &str = " (healing: denorm tries the view again when its tables change)";
/// The same for a view failed by the schema.
pub(crate) const SCHEMA_NOTE: &str = " (healing: denorm plans the view again when the source schema changes)";

/// Why a view failed, as far as healing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The dataflow could not compute it (overflow, …).
    Compute,
    /// It no longer plans against the source's schema.
    Schema,
}

#[derive(Debug)]
struct Failed {
    cause: Cause,
    /// The source tables it reads (catalog names), for [`Cause::Compute`].
    tables: BTreeSet<String>,
    /// A batch changed one of its tables since the last trial.
    dirty: bool,
    next_try: Instant,
    wait: Duration,
}

/// The failed views of a session and when each is retried.
#[derive(Debug, Default)]
pub(crate) struct Heal {
    failed: BTreeMap<usize, Failed>,
    schema_due: Option<Instant>,
    dropped_due: Option<Instant>,
    /// Per publishing slot: the tables the view reads (empty when it did
    /// not plan).
    tables: Vec<BTreeSet<String>>,
}

impl Heal {
    /// Forgets every failure: a new session plans and fails views anew.
    pub(crate) fn begin_session(&mut self) {
        self.failed.clear();
        self.schema_due = None;
        self.dropped_due = None;
        self.tables.clear();
    }

    /// The tables each planned view reads.
    pub(crate) fn planned(&mut self, planned: &[Option<ViewDef>], catalog: &Catalog) {
        self.tables = planned.iter().map(|d| d.as_ref().map(|d| view_tables(d, catalog)).unwrap_or_default()).collect();
    }

    /// A live reload moved the views: `map[old slot]` is the new slot (None:
    /// dropped). Failures follow their views; the tables are read again.
    pub(crate) fn remap(&mut self, map: &[Option<usize>], planned: &[Option<ViewDef>], catalog: &Catalog) {
        let failed = std::mem::take(&mut self.failed);
        self.failed =
            failed.into_iter().filter_map(|(old, f)| map.get(old).copied().flatten().map(|new| (new, f))).collect();
        self.planned(planned, catalog);
    }

    /// Records that the view in `slot` failed.
    pub(crate) fn failed(&mut self, slot: usize, cause: Cause) {
        let now = Instant::now();
        let tables = self.tables.get(slot).cloned().unwrap_or_default();
        self.failed.entry(slot).or_insert(Failed { cause, tables, dirty: false, next_try: now, wait: TRIAL_FIRST });
    }

    /// The view in `slot` was rebuilt and is maintained again.
    pub(crate) fn healed(&mut self, slot: usize) {
        self.failed.remove(&slot);
    }

    /// A batch changed `tables`: the views failed by a computation over
    /// them are tried again when due.
    pub(crate) fn touched<'a>(&mut self, tables: impl Iterator<Item = &'a String> + Clone) {
        for f in self.failed.values_mut().filter(|f| f.cause == Cause::Compute) {
            if tables.clone().any(|t| f.tables.contains(t)) {
                f.dirty = true;
            }
        }
    }

    /// What must happen now, if anything: a view failed by a computation
    /// computes cleanly from the stored input rows (rebuild it), a view
    /// failed by the schema plans again, or (no view) a captured table was
    /// dropped on PostgreSQL (the session ends, the next one re-plans).
    /// Errors reading the state or the catalog only postpone the check.
    pub(crate) fn ready(&mut self, ctx: &Trial<'_>) -> Option<Ready> {
        let now = Instant::now();
        for (&slot, f) in self.failed.iter_mut() {
            if f.cause != Cause::Compute || !f.dirty || now < f.next_try {
                continue;
            }
            f.dirty = false;
            if ctx.computes(slot) {
                return Some(Ready::Rebuild(slot));
            }
            f.next_try = now + f.wait;
            f.wait = (f.wait * 2).min(TRIAL_MAX);
        }
        if ctx.watches_drops() && self.dropped_due.is_none_or(|due| now >= due) {
            self.dropped_due = Some(now + DROPPED_EVERY);
            if let Some(table) = ctx.changed_table(self.tables.iter().flatten()) {
                tracing::warn!(%table, "a captured table was dropped or changed (seen in the catalog); re-planning the views");
                return Some(Ready::Replan(None, "a captured table was dropped or changed"));
            }
        }
        let schema: Vec<usize> =
            self.failed.iter().filter(|(_, f)| f.cause == Cause::Schema).map(|(&s, _)| s).collect();
        if schema.is_empty() || self.schema_due.is_some_and(|due| now < due) {
            return None;
        }
        self.schema_due = Some(now + SCHEMA_EVERY);
        let slot = ctx.plans_again(&schema)?;
        Some(Ready::Replan(Some(slot), "the source schema satisfies it again"))
    }
}

/// What [`Heal::ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// The view in this slot computes cleanly from the stored input rows:
    /// rebuild it alone.
    Rebuild(usize),
    /// The session must end and the next one re-plan (the view that plans
    /// again, if one, and why).
    Replan(Option<usize>, &'static str),
}

impl Engine {
    /// Rebuilds the view in `slot` alone from the stored input rows of its
    /// tables, at the flow's position, and publishes its whole contents
    /// (the other views are untouched). False when the stored rows are not
    /// at the flow's position (then the caller ends the session instead).
    pub(super) fn rebuild_healed(
        &mut self,
        slot: usize,
        catalog: &Catalog,
        planned: &[Option<ViewDef>],
        state: &StateDir,
        flow: &mut Flow,
    ) -> Result<bool, EngineError> {
        let Some(Some(def)) = planned.get(slot) else { return Ok(false) };
        let tables: Vec<String> = view_tables(def, catalog).into_iter().collect();
        let stored = state.rows_of(&tables)?;
        if stored.position != flow.position {
            return Ok(false);
        }
        let started = Instant::now();
        let slots = self.sources.names.len();
        let others: Vec<Option<usize>> = (0..slots).map(|s| (s != slot).then_some(s)).collect();
        flow.remap(&others);
        let batch = SourceBatch { position: flow.position, tables: stored.tables };
        let step = flow.add(catalog.clone(), &[(slot, def.clone())], self.source.dialect(), &batch, started)?;
        self.heal.healed(slot);
        self.publisher.clear(slot);
        self.publish(step, flow.position, &[], started);
        tracing::info!(
            view = %self.sources.names[slot],
            seconds = started.elapsed().as_secs_f64(),
            "the view healed: rebuilt alone from the stored input rows (the other views kept serving)"
        );
        Ok(true)
    }
}

/// What a trial needs from the session.
pub(crate) struct Trial<'a> {
    pub catalog: &'a Catalog,
    pub planned: &'a [Option<ViewDef>],
    pub dialect: Dialect,
    pub state: Option<&'a StateDir>,
    pub position: Position,
    pub sources: &'a ViewSources,
    pub source: &'a crate::config::SourceConfig,
}

impl Trial<'_> {
    /// Whether the view in `slot` computes without error from the stored
    /// input rows of its tables.
    fn computes(&self, slot: usize) -> bool {
        let (Some(state), Some(Some(def))) = (self.state, self.planned.get(slot)) else { return false };
        let tables: Vec<String> = view_tables(def, self.catalog).into_iter().collect();
        let rows = match state.rows_of(&tables) {
            Ok(stored) => stored.tables,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the stored rows for a heal trial");
                return false;
            }
        };
        let planned = [Some(def.clone())];
        let Ok(mut flow) = Flow::new(self.catalog.clone(), &planned, self.dialect, Instant::now()) else {
            return false;
        };
        let step = flow.snapshot(&SourceBatch { position: self.position, tables: rows });
        step.failures.is_empty()
    }

    /// Whether the catalog must be read to notice dropped tables
    /// (PostgreSQL; SQLite's capture notices its triggers gone).
    fn watches_drops(&self) -> bool {
        matches!(self.source, crate::config::SourceConfig::Postgres(_))
    }

    /// The first of `tables` (captured by the session) that is gone from
    /// the source's catalog or differs from the session's.
    fn changed_table<'t>(&self, tables: impl Iterator<Item = &'t String>) -> Option<String> {
        let now = match denorm_source::read_catalog(&self.source.capture()) {
            Ok(catalog) => catalog,
            Err(e) => {
                tracing::debug!(error = %super::error_chain(&e), "cannot read the catalog to look for dropped tables");
                return None;
            }
        };
        let mut seen = BTreeSet::new();
        tables.filter(|t| seen.insert(t.as_str())).find(|t| now.get(t) != self.catalog.get(t)).cloned()
    }

    /// The first of `slots` (views failed by the schema) that plans against
    /// the source's current catalog.
    fn plans_again(&self, slots: &[usize]) -> Option<usize> {
        let catalog = match denorm_source::read_catalog(&self.source.capture()) {
            Ok(catalog) => catalog,
            Err(e) => {
                tracing::debug!(error = %super::error_chain(&e), "cannot read the catalog for a heal check");
                return None;
            }
        };
        let mut planned = BTreeSet::new();
        for (_, sql) in &self.sources.files {
            let (views, _) = plan_each(sql, &catalog, self.dialect);
            planned.extend(views.into_iter().map(|v| v.name.to_lowercase()));
        }
        slots.iter().copied().find(|&slot| planned.contains(&self.sources.names[slot].to_lowercase()))
    }
}

/// The catalog names of the tables `def` reads.
pub(crate) fn view_tables(def: &ViewDef, catalog: &Catalog) -> BTreeSet<String> {
    def.dependencies.iter().map(|d| catalog.get(&d.table).map_or(d.table.clone(), |t| t.name.clone())).collect()
}
