//! The engine thread: it connects the source, the dataflow and the published
//! state, and does nothing else.
//!
//! ```text
//!  ChangeSource ──snapshot, then poll──► SourceBatch ──Dataflow::apply──► view changes
//!  (SQLite triggers │                                                        │
//!   or PostgreSQL   │                                    Publisher::apply + publish (one batch
//!   replication)    │                                    boundary, all views at once)
//!        └──────── release(position): only what was published is released
//! ```
//!
//! A *session* is one life of the capture: plan against the current schema,
//! install capture (SQLite triggers; a PostgreSQL publication and slot),
//! snapshot, then follow the changes. It ends on shutdown, on a schema
//! change of a captured table (the next session re-plans: views the change
//! breaks fail with the reason, the others are re-snapshotted and go on), on
//! a TRUNCATE of a captured table (PostgreSQL: the next session snapshots
//! again, see below), or on a definite source error (the engine stops with
//! the error, which says what to fix).
//!
//! Transient source errors (`SourceError::kind`) never stop the engine:
//! they are retried forever with capped exponential backoff and jitter
//! ([`retry`]), logged once per state change, while readers keep the last
//! published state (`/health` degraded with the reason,
//! `denorm_source_connected 0`, each view's `within_sla` false once its
//! budget passes). A session that has state resumes the stream after the
//! last published position instead of snapshotting again (PostgreSQL: the
//! slot survives a server restart; SQLite: the next poll reads on from the
//! change log); only a slot that is gone costs a new snapshot. A failure
//! before the first snapshot of a session retries the whole session.
//!
//! **Durable state** (`[engine] state_dir`, see [`crate::state_dir`]): the
//! captured input rows and their position are written with every batch (one
//! atomic write, not fsynced) and made durable at least every
//! `release_interval` (at most every [`DURABLE_MIN`]); the source forgets
//! changes (SQLite log rows deleted, PostgreSQL slot acknowledged) only up to
//! the last *durable* position. A session starts from the state directory
//! when it is valid for the source (identity), the captured tables' shape is
//! unchanged and the source still holds every change after its position
//! ([`ChangeSource::follow_from`]): the stored rows are the snapshot, and
//! the source tables are not read. Otherwise (the reason is logged) it
//! snapshots the source and rewrites the directory. So a crash at any point
//! loses nothing and applies nothing twice. Without a state directory
//! (`denorm demo`) every session snapshots, and the source is released up
//! to what was published.
//!
//! TRUNCATE: with a state directory, a truncated table's stored rows are
//! retracted from the views in the same batch. Without one the operators
//! keep no copy of a table's rows that could be retracted, so the batch ends
//! the session unapplied and the next one snapshots again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use denorm_core::{BuildError, SourceBatch};
use denorm_serve::{Publisher, ReplicationStatus, SourceState, SourceStatus};
use denorm_source::postgres::Lag;
use denorm_source::sqlite::{CaptureSpec, CapturedTable};
use denorm_source::{Batch, ChangeSource, Polled, SourceError};
use denorm_sql::{plan_each, ViewDef};
use denorm_types::{Catalog, Diff, Position};
use tracing::{error, info, warn};

use flow::{Flow, Step};
use heal::{Cause, Heal, Ready, Trial};
use retry::{Backoff, Outage};

use crate::config::SourceConfig;
use crate::state_dir::{self, Opened, StateDir, StateError, Stored};

pub(crate) mod admin;
pub(crate) mod checkpoint;
mod compare;
mod dead;
mod dlq_retry;
pub(crate) mod flow;
pub(crate) mod heal;
pub(crate) mod partial;
pub(crate) mod retry;

/// How long the follow loop waits for a wake-up before it checks for
/// shutdown again. Changes wake it at once; this only bounds shutdown time.
const WAIT: Duration = Duration::from_millis(100);
/// The replication slot's lag is read this often.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// The warning about a slot retaining too much WAL is logged again this often.
const RETAINED_WARNING_EVERY: Duration = Duration::from_secs(60);
/// The operators' state bytes are sampled (for `denorm_state_bytes`,
/// `/views` and the memory budget) this often, and after every snapshot:
/// sampling walks most operators' state (O(groups); arrangements keep a
/// running count), so not per batch, and never more often than
/// [`STATE_BYTES_SHARE`] of the time allows.
const STATE_BYTES_EVERY: Duration = Duration::from_secs(5);
/// Sampling takes at most 1/this of the engine thread's time: the next
/// sample waits at least this many times as long as the last one took.
const STATE_BYTES_SHARE: u32 = 50;
/// A batch whose oldest change took longer than this (seconds) from commit
/// to visible is logged.
const SLOW_BATCH: f64 = 0.1;
/// Slow batches are logged at most this often.
const SLOW_BATCH_LOG_EVERY: Duration = Duration::from_secs(5);
/// Durable commits of the state directory (an fsync) happen at most this
/// often, however small the source's release interval.
const DURABLE_MIN: Duration = Duration::from_millis(200);

/// The views files' text, read once at start: a running engine re-plans the
/// same definitions after a schema change.
#[derive(Debug, Clone)]
pub struct ViewSources {
    pub files: Vec<(PathBuf, String)>,
    /// View names in publishing order (the order of the views files).
    pub names: Vec<String>,
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("cannot build the dataflow (bug)")]
    Build(#[from] BuildError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// How a session ended.
enum End {
    Shutdown,
    /// A schema change or a TRUNCATE: re-plan and snapshot again at once.
    Resnapshot,
    /// A reload changed the views: re-plan them (see [`admin`]).
    Reload,
}

#[derive(Debug)]
pub struct Engine {
    source: SourceConfig,
    sources: ViewSources,
    publisher: Publisher,
    shutdown: Arc<AtomicBool>,
    /// Commit time of the newest applied transaction.
    newest_commit: Option<f64>,
    /// Whether the last poll found nothing to read.
    caught_up: bool,
    /// When the retained-WAL warning was last logged.
    retained_warned: Option<Instant>,
    /// When a slow batch was last logged, and how many were slow since.
    slow_logged: Option<Instant>,
    slow_batches: u64,
    /// `[engine] max_memory`: the operators' state budget, in bytes.
    max_memory: Option<u64>,
    /// When the state bytes are sampled next.
    state_due: Option<Instant>,
    /// The waits between retries of an unreachable source.
    backoff: Backoff,
    /// Set while the source is unreachable.
    outage: Option<Outage>,
    /// `[engine] state_dir`; `None`: nothing is kept across restarts.
    state_dir: Option<PathBuf>,
    /// `[[sink]]`: every publish is handed to the sinks too.
    sinks: Option<Arc<denorm_sink::SinkHub>>,
    /// Set by `load`: the next publish is a session's first state.
    first_publish: bool,
    /// The failed views and when each is retried ([`heal`]).
    heal: Heal,
    /// Dead-letter retries in progress ([`dlq_retry`]).
    retries: dlq_retry::Retries,
    /// The admin channel, reload and reconcile (see [`admin`]).
    admin: admin::AdminState,
    /// Periodic checkpoints (`[engine] checkpoint_interval`).
    checkpoints: checkpoint::Periodic,
}

impl Engine {
    pub fn new(source: SourceConfig, sources: ViewSources, publisher: Publisher, shutdown: Arc<AtomicBool>) -> Self {
        Engine {
            source,
            sources,
            publisher,
            shutdown,
            newest_commit: None,
            caught_up: false,
            retained_warned: None,
            slow_logged: None,
            slow_batches: 0,
            max_memory: None,
            state_due: None,
            backoff: Backoff::default(),
            outage: None,
            state_dir: None,
            sinks: None,
            first_publish: false,
            heal: Heal::default(),
            retries: dlq_retry::Retries::default(),
            admin: admin::AdminState::default(),
            checkpoints: checkpoint::Periodic::default(),
        }
    }

    /// Hands every publish to `sinks` too (`[[sink]]`).
    pub fn with_sinks(mut self, sinks: Option<Arc<denorm_sink::SinkHub>>) -> Self {
        self.sinks = sinks;
        self
    }

    /// Publishes `position` and hands the step's view changes to the sinks
    /// (which never block the engine); a session's first publish makes them
    /// sync with the published state instead.
    fn publish_state(&mut self, position: Position, commits: &[(String, f64)], views: &[flow::PartChanges]) {
        let first = std::mem::take(&mut self.first_publish);
        match &self.sinks {
            Some(hub) => hub.publish(&mut self.publisher, position, commits, views, first),
            None => self.publisher.publish(position, commits),
        }
    }

    /// Answers `POST /admin/*` requests from `inbox` between batches; a
    /// reload reads `config_path` again; `drift` sets the drift sampler.
    pub fn with_admin(
        mut self,
        inbox: Option<denorm_serve::admin::AdminInbox>,
        config_path: Option<PathBuf>,
        drift: crate::config::drift::DriftConfig,
    ) -> Self {
        self.admin = admin::AdminState::new(inbox, config_path, drift);
        self
    }

    /// Keeps the captured input rows in `state_dir` (`[engine] state_dir`),
    /// so that a restart resumes without reading the source tables.
    pub fn with_state_dir(mut self, state_dir: Option<PathBuf>) -> Self {
        self.state_dir = state_dir;
        self
    }

    /// Sets the operators' state budget (`[engine] max_memory`): when a
    /// sample of the state passes it, the view holding the most fails.
    pub fn with_max_memory(mut self, max_memory: Option<u64>) -> Self {
        self.max_memory = max_memory;
        self
    }

    /// Runs sessions until shutdown. Transient source errors (a locked or
    /// busy database, a lost connection, a server restarting) are retried
    /// forever with backoff; a definite one ends the engine.
    pub fn run(mut self) -> Result<(), EngineError> {
        loop {
            match self.session() {
                Ok(End::Shutdown) => return Ok(()),
                Ok(End::Resnapshot | End::Reload) => self.backoff.reset(),
                // The schema moved between reading the catalog and opening
                // the capture: plan again against the new one.
                Err(EngineError::Source(SourceError::SchemaChanged { tables })) => {
                    warn!(?tables, "the schema of a captured table changed while the session started; re-planning");
                    let wait = self.backoff.next_wait();
                    if self.sleep(wait) {
                        return Ok(());
                    }
                }
                // A failed state write: the directory is consistent at its
                // last commit, the next session starts from it.
                Err(EngineError::State(e)) if !matches!(e, StateError::InUse { .. }) => {
                    let wait = self.backoff.next_wait();
                    warn!(error = %error_chain(&e), retry_in = ?wait, "state directory write failed; retrying");
                    if self.sleep(wait) {
                        return Ok(());
                    }
                }
                Err(EngineError::Source(e)) if e.is_transient() => {
                    let wait = self.source_down(&e, None);
                    if self.sleep(wait) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records a failed attempt to reach the source (`head`: the position
    /// the engine's state is at, when it has state) and returns how long to
    /// wait before the next.
    fn source_down(&mut self, error: &SourceError, head: Option<Position>) -> Duration {
        let wait = self.backoff.next_wait();
        let text = error_chain(error);
        match &mut self.outage {
            None => self.outage = Some(Outage::begin(text.clone(), wait, "readers keep the last published state")),
            Some(outage) => outage.again(text.clone(), wait),
        }
        self.publisher.set_source(SourceStatus {
            state: SourceState::Retrying { error: text.clone() },
            head,
            last_error: Some(text),
            disconnected_since: self.outage.as_ref().map(|o| o.since_unix),
            ..SourceStatus::default()
        });
        wait
    }

    /// The source answered: ends an outage (logged once, the status back to
    /// following at `position`).
    fn source_up(&mut self, position: Position, how: &str) {
        let Some(outage) = self.outage.take() else { return };
        self.backoff.reset();
        let last_error = outage.end(how);
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(position),
            last_error: Some(last_error),
            ..SourceStatus::default()
        });
    }

    /// Sleeps up to `duration`; true when shutdown was asked for meanwhile.
    fn sleep(&self, duration: Duration) -> bool {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            if self.stopping() {
                return true;
            }
            std::thread::sleep(WAIT.min(until.saturating_duration_since(Instant::now())));
        }
        self.stopping()
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn session(&mut self) -> Result<End, EngineError> {
        let catalog = denorm_source::read_catalog(&self.source.capture())?;
        self.heal.begin_session();
        let mut planned = self.plan(&catalog);
        self.describe_replanned(&planned);
        self.heal.planned(&planned, &catalog);
        let spec = capture_spec(&planned, &catalog);
        let mut capture = denorm_source::open(&self.source.capture(), &catalog, &spec)?;
        let shape = state_dir::shape(&catalog, &spec);
        let mut flow = Flow::new(catalog.clone(), &planned, self.source.dialect(), Instant::now())?;

        let mut state = match self.resume_checkpoint(&catalog, &mut *capture, &mut flow, &planned, &shape)? {
            Some(state) => Some(state),
            None => self.start(&mut *capture, &mut flow, &planned, &shape)?,
        };
        // The first batch (a snapshot, the stored rows or a checkpoint's
        // replay) and its rows are dropped by now.
        crate::alloc::release_free_memory();
        if let Some(state) = state.as_mut() {
            dead::restore(&self.publisher, state);
            state.set_logging(self.checkpoints.logging())?;
        }
        self.checkpoints.begin();
        self.reload_done(flow.position);
        self.source_up(flow.position, if state.is_some() { "resumed" } else { "took a new snapshot" });
        let release_every = capture.release_interval().max(if state.is_some() { DURABLE_MIN } else { Duration::ZERO });
        release_durable(&mut *capture, state.as_mut(), flow.position)?;
        let mut released_at = Instant::now();
        let mut lag_at: Option<Instant> = None;
        // Changes applied since freed pages were last handed back.
        let mut freed_since_collect = false;
        loop {
            if self.stopping() {
                release_durable(&mut *capture, state.as_mut(), flow.position)?;
                self.write_checkpoint(&flow, state.as_mut());
                return Ok(End::Shutdown);
            }
            let wait = flow.next_due().map_or(WAIT, |due| due.saturating_duration_since(Instant::now()).min(WAIT));
            let publisher = &self.publisher;
            let polled = match capture.poll(wait, &|| publisher.wanted()) {
                Ok(polled) => {
                    self.source_up(
                        flow.position,
                        "resumed the stream after the last published position (no new snapshot)",
                    );
                    polled
                }
                Err(e) if e.is_transient() && capture.can_resume() => {
                    match self.resume(&mut *capture, flow.position, e)? {
                        Some(end) => return Ok(end),
                        None => continue,
                    }
                }
                // The slot went away before the stream started (dropped
                // while the state directory was written): as after a
                // resume that finds it gone, one new snapshot.
                Err(e @ SourceError::SlotMissing { .. }) => {
                    warn!(error = %error_chain(&e), "cannot resume; taking a new snapshot");
                    return Ok(End::Resnapshot);
                }
                Err(e) => return Err(e.into()),
            };
            match polled {
                Polled::Idle => {
                    self.caught_up = true;
                    // A burst of changes is over: hand the pages its
                    // batches freed back to the OS (mimalloc would keep
                    // them resident until later allocations purge them).
                    if std::mem::take(&mut freed_since_collect) {
                        crate::alloc::release_free_memory();
                    }
                }
                Polled::Progress(position) => {
                    self.caught_up = true;
                    if let Some(state) = state.as_mut() {
                        state.advance(position)?;
                    }
                    self.progress(&mut flow, position);
                }
                Polled::SchemaChanged { tables } => {
                    warn!(?tables, "the schema of a captured table changed; re-planning the views");
                    return Ok(End::Resnapshot);
                }
                Polled::Changes(batch) if !batch.truncated.is_empty() && state.is_none() => {
                    warn!(
                        tables = ?batch.truncated,
                        at = %capture.describe(batch.position),
                        "a captured table was truncated; taking a new snapshot (readers keep the last published \
                         state meanwhile)"
                    );
                    return Ok(End::Resnapshot);
                }
                Polled::Changes(mut batch) => {
                    self.caught_up = false;
                    self.newest_commit = batch.newest_commit().or(self.newest_commit);
                    if let Some(state) = state.as_mut() {
                        let retracted = state.apply(batch.position, &batch.truncated, &batch.tables)?;
                        if !retracted.is_empty() {
                            info!(tables = ?batch.truncated, at = %capture.describe(batch.position), "a captured table was truncated; its stored rows are retracted");
                            batch.tables = retracted.into_iter().chain(batch.tables).collect();
                        }
                        dead::absent(&self.publisher, state, &mut batch)?;
                    }
                    dead::undecodable(&self.publisher, state.as_mut(), &batch)?;
                    self.heal.touched(batch.tables.iter().map(|(t, _)| t));
                    self.retries.saw(&batch);
                    self.follow(&mut flow, batch);
                    freed_since_collect = true;
                }
            }
            let mut between = admin::Session {
                catalog: &catalog,
                planned: &mut planned,
                spec: &spec,
                shape: &shape,
                flow: &mut flow,
                state: state.as_mut(),
                capture: &mut *capture,
            };
            if let Some(end) = self.between_batches(&mut between)? {
                // Durable first: the next session resumes at this position.
                release_durable(&mut *capture, state.as_mut(), flow.position)?;
                return Ok(end);
            }
            if let Some(step) = flow.refresh_due(Instant::now()) {
                self.publish(step, flow.position, &[], Instant::now());
            }
            let asked = dead::requests(&self.publisher, state.as_mut())?;
            self.dlq_retries(asked, &catalog, &mut *capture, &mut flow, state.as_mut())?;
            if self.heals(&catalog, &planned, state.as_ref(), &mut flow)? {
                release_durable(&mut *capture, state.as_mut(), flow.position)?;
                return Ok(End::Resnapshot);
            }
            if released_at.elapsed() >= release_every {
                release_durable(&mut *capture, state.as_mut(), flow.position)?;
                released_at = Instant::now();
            }
            self.periodic_checkpoint(&flow, state.as_mut())?;
            if lag_at.is_none_or(|at| at.elapsed() >= LAG_EVERY) {
                lag_at = Some(Instant::now());
                self.report_lag(&mut *capture);
            }
            if self.state_due.is_none_or(|due| Instant::now() >= due) {
                self.account(&mut flow);
            }
        }
    }

    /// Heals what can heal now ([`heal`]): a view failed by a computation
    /// is rebuilt alone in place; true when the session must end instead
    /// (the next one re-plans and loads every view from the state
    /// directory, no source read when it is valid).
    fn heals(
        &mut self,
        catalog: &Catalog,
        planned: &[Option<ViewDef>],
        state: Option<&StateDir>,
        flow: &mut Flow,
    ) -> Result<bool, EngineError> {
        let trial = Trial {
            catalog,
            planned,
            dialect: self.source.dialect(),
            state,
            position: flow.position,
            sources: &self.sources,
            source: &self.source,
        };
        let (slot, why) = match self.heal.ready(&trial) {
            None => return Ok(false),
            Some(Ready::Rebuild(slot)) => match state {
                Some(state) if self.rebuild_healed(slot, catalog, planned, state, flow)? => {
                    crate::alloc::release_free_memory();
                    return Ok(false);
                }
                _ => (Some(slot), "its input computes cleanly again"),
            },
            Some(Ready::Replan(slot, why)) => (slot, why),
        };
        match slot.and_then(|slot| self.sources.names.get(slot)) {
            Some(view) => info!(%view, why, "a failed view can heal; loading the views again"),
            None => info!(why, "loading the views again"),
        }
        Ok(true)
    }

    /// Samples the operators' state bytes into the metrics and `/views`;
    /// past the budget, fails the views whose state frees the most until
    /// it holds (each with the reason, logged and shown in `/views`), and
    /// publishes the failures. The other views go on.
    fn account(&mut self, flow: &mut Flow) {
        let started = Instant::now();
        let mut entries = flow.state_bytes(&self.sources.names);
        if let Some(budget) = self.max_memory {
            let total: usize = entries.iter().map(|(_, _, bytes)| bytes).sum();
            if total as u64 > budget {
                let failures = flow.enforce_budget(budget, &self.sources.names);
                for (slot, reason) in failures {
                    error!(view = %self.sources.names[slot], error = %reason, "view failed: over the memory budget");
                    self.publisher.fail(slot, reason);
                }
                self.publish_state(flow.position, &[], &[]);
                entries = flow.state_bytes(&self.sources.names);
            }
        }
        self.publisher.metrics().set_state_bytes(&entries);
        self.state_due = Some(Instant::now() + STATE_BYTES_EVERY.max(started.elapsed() * STATE_BYTES_SHARE));
    }

    /// Reconnects a source whose stream dropped (`error`), continuing after
    /// `at` without a new snapshot; retries forever with backoff while the
    /// errors are transient. `Some(end)` when the session must end instead
    /// (shutdown, or the slot is gone).
    fn resume(
        &mut self,
        capture: &mut dyn ChangeSource,
        at: Position,
        error: SourceError,
    ) -> Result<Option<End>, EngineError> {
        let mut error = error;
        loop {
            let wait = self.source_down(&error, Some(at));
            if self.sleep(wait) {
                return Ok(Some(End::Shutdown));
            }
            match capture.resume(at) {
                Ok(()) => {
                    tracing::debug!(from = %capture.describe(at), "reconnected; streaming on");
                    return Ok(None);
                }
                Err(e @ SourceError::SlotMissing { .. }) => {
                    warn!(error = %error_chain(&e), "cannot resume; taking a new snapshot");
                    return Ok(Some(End::Resnapshot));
                }
                Err(e) if e.is_transient() => error = e,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads the replication slot's lag (PostgreSQL) and shows it; warns
    /// loudly while the slot retains more WAL than allowed.
    fn report_lag(&mut self, capture: &mut dyn ChangeSource) {
        let SourceConfig::Postgres(config) = &self.source else { return };
        let lag: Lag = match capture.lag() {
            None => return,
            Some(Ok(lag)) => lag,
            Some(Err(e)) => {
                tracing::debug!(error = %error_chain(&e), "cannot read the replication slot's lag");
                return;
            }
        };
        let lag_seconds = match self.newest_commit {
            Some(at) if !self.caught_up => (unix_now() - at).max(0.0),
            _ => 0.0,
        };
        let status = ReplicationStatus {
            lag_bytes: lag.lag_bytes,
            lag_seconds,
            retained_bytes: lag.retained_bytes,
            max_retained_bytes: config.max_retained_wal,
            slot: config.slot.clone(),
            head_text: Some(denorm_source::postgres::format_lsn(lag.server_position)),
        };
        match status.problem() {
            Some(problem) if self.retained_warned.is_none_or(|at| at.elapsed() >= RETAINED_WARNING_EVERY) => {
                self.retained_warned = Some(Instant::now());
                warn!(
                    retained_wal_bytes = lag.retained_bytes,
                    max_retained_wal_bytes = config.max_retained_wal,
                    "{problem}"
                );
            }
            None if self.retained_warned.take().is_some() => {
                info!(
                    retained_wal_bytes = lag.retained_bytes,
                    "the replication slot's retained WAL is below max_retained_wal again"
                );
            }
            _ => {}
        }
        self.publisher.set_replication(status);
    }

    /// Plans every view against `catalog`. A view that no longer plans (a
    /// column it reads was renamed or dropped) fails with the reason; the
    /// others are returned in publishing order.
    fn plan(&mut self, catalog: &Catalog) -> Vec<Option<ViewDef>> {
        let mut defs: BTreeMap<String, ViewDef> = BTreeMap::new();
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        for (path, sql) in &self.sources.files {
            let (views, failed) = plan_each(sql, catalog, self.source.dialect());
            defs.extend(views.into_iter().map(|v| (v.name.to_lowercase(), v)));
            for e in failed {
                let name = e.view.clone().unwrap_or_default().to_lowercase();
                // A view may have several errors: its first is its reason.
                errors.entry(name).or_insert_with(|| e.render(&path.display().to_string()));
            }
        }
        let mut planned = Vec::with_capacity(self.sources.names.len());
        for (i, name) in self.sources.names.iter().enumerate() {
            let def = defs.remove(&name.to_lowercase());
            if def.is_none() {
                let reason = errors
                    .get(&name.to_lowercase())
                    .cloned()
                    .unwrap_or_else(|| format!("view {name} no longer plans against the source schema"));
                error!(view = %name, %reason, "view failed after a source schema change");
                self.publisher.fail(i, format!("{reason}{}", heal::SCHEMA_NOTE));
                self.heal.failed(i, Cause::Schema);
            }
            planned.push(def);
        }
        planned
    }

    /// After a re-plan (a source schema change), a view whose description
    /// changed — its columns' names or types (`SELECT *` over a renamed
    /// column), its key, its tables — is served with the new one: the
    /// publisher restarts that view (empty, `Starting`, until this session
    /// publishes it); every other view is kept as it is.
    fn describe_replanned(&mut self, planned: &[Option<ViewDef>]) {
        let published = self.publisher.published();
        if published.views.len() != planned.len() {
            return;
        }
        let (mut infos, mut kept, mut changed) = (Vec::new(), Vec::new(), false);
        for (slot, (view, def)) in published.views.iter().zip(planned).enumerate() {
            match def.as_ref().map(crate::run::serving_info) {
                Some(info) if info != *view.info => {
                    info!(view = %info.name, "the view's columns changed with the source schema; serving the new ones");
                    changed = true;
                    infos.push(info);
                    kept.push(None);
                }
                _ => {
                    infos.push((*view.info).clone());
                    kept.push(Some(slot));
                }
            }
        }
        if changed {
            self.publisher.reconfigure(infos, &kept);
        }
    }

    /// Brings the views to their first state: from the state directory
    /// when it is valid and the source still holds every change after it,
    /// else from a snapshot of the source (written to the directory). The
    /// directory (when configured) is returned open.
    fn start(
        &mut self,
        capture: &mut dyn ChangeSource,
        flow: &mut Flow,
        planned: &[Option<ViewDef>],
        shape: &str,
    ) -> Result<Option<StateDir>, EngineError> {
        let Some(dir) = self.state_dir.clone() else {
            let snapshot = self.snapshot(capture)?;
            self.load(capture, flow, planned, &snapshot_batch(snapshot), Instant::now(), "snapshot published");
            return Ok(None);
        };
        let identity = capture.identity()?;
        let started = Instant::now();
        let opened = StateDir::open(&dir, &identity, shape)?;
        // Before the first state is published: a reader of a started
        // denorm sees the kept dead letters, never an empty queue.
        dead::restore(&self.publisher, opened.state());
        let mut state = match opened {
            Opened::Resume(state, _) if self.must_snapshot() => {
                info!(dir = %dir.display(), "repair: taking a new snapshot of the source into the state directory");
                state
            }
            Opened::Resume(state, stored) => match capture.follow_from(stored.position)? {
                None => {
                    let read_seconds = started.elapsed().as_secs_f64();
                    let rows = stored.rows();
                    let position = stored.position;
                    self.load(capture, flow, planned, &stored_batch(stored), started, "state loaded and published");
                    info!(
                        dir = %dir.display(),
                        rows,
                        state_bytes = state.file_bytes(),
                        read_seconds,
                        from = %capture.describe(position),
                        "resumed from the state directory without reading the source tables"
                    );
                    return Ok(Some(state));
                }
                // A table's capture reinstalled (dropped and recreated
                // with the same shape): re-read only it, if the source can.
                Some(reason) => match self.resume_reshaped(capture, flow, planned, state, stored, shape)? {
                    Ok(state) => return Ok(Some(state)),
                    Err(state) => {
                        warn!(dir = %dir.display(), %reason, "cannot resume from the state directory; taking a snapshot of the source");
                        state
                    }
                },
            },
            Opened::Rebuild(state, reason) => {
                info!(dir = %dir.display(), %reason, "taking a snapshot of the source into the state directory");
                state
            }
            Opened::Reshape(state, stored) if !self.must_snapshot() => {
                match self.resume_reshaped(capture, flow, planned, state, stored, shape)? {
                    Ok(state) => return Ok(Some(state)),
                    Err(state) => state,
                }
            }
            Opened::Reshape(state, _) => state,
        };
        // Published first, written after: readers need not wait for the
        // write, and nothing is released before it is durable.
        let batch = snapshot_batch(self.snapshot(capture)?);
        self.load(capture, flow, planned, &batch, started, "snapshot published");
        let writing = Instant::now();
        state.reset(&identity, shape, batch.position, batch.tables)?;
        info!(
            dir = %dir.display(),
            state_bytes = state.file_bytes(),
            write_seconds = writing.elapsed().as_secs_f64(),
            "snapshot written to the state directory"
        );
        Ok(Some(state))
    }

    /// Reads a snapshot of every captured table, reporting progress.
    fn snapshot(&mut self, capture: &mut dyn ChangeSource) -> Result<denorm_source::Snapshot, EngineError> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        let publisher = &mut self.publisher;
        publisher.set_source(SourceStatus {
            state: SourceState::Snapshotting { rows_read: 0, rows_total: None },
            ..SourceStatus::default()
        });
        let snapshot = capture.snapshot(&mut |p| {
            if last_report.elapsed() >= Duration::from_secs(1) {
                last_report = Instant::now();
                let rate = p.rows_read as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let percent = 100.0 * p.rows_read as f64 / p.estimated_total.max(1) as f64;
                info!(
                    table = p.table,
                    rows = p.rows_read,
                    estimated_total = p.estimated_total,
                    percent = format!("{:.0}", percent.min(100.0)),
                    rows_per_second = rate as u64,
                    "snapshot in progress"
                );
                publisher.set_source(SourceStatus {
                    state: SourceState::Snapshotting { rows_read: p.rows_read, rows_total: Some(p.estimated_total) },
                    ..SourceStatus::default()
                });
            }
        })?;
        let rows: usize = snapshot.tables.iter().map(|(_, rows)| rows.len()).sum();
        let read_in = started.elapsed();
        info!(
            rows,
            at = %capture.describe(snapshot.position),
            read_seconds = read_in.as_secs_f64(),
            read_rows_per_second = (rows as f64 / read_in.as_secs_f64().max(1e-9)) as u64,
            "snapshot read"
        );
        Ok(snapshot)
    }

    /// Applies the first batch of a session (a snapshot, or the stored
    /// rows) to fresh views and publishes it as their first state.
    fn load(
        &mut self,
        capture: &mut dyn ChangeSource,
        flow: &mut Flow,
        planned: &[Option<ViewDef>],
        batch: &SourceBatch,
        started: Instant,
        what: &str,
    ) {
        let rows: usize = batch.tables.iter().map(|(_, rows)| rows.len()).sum();
        // A reload's unchanged views keep their published rows.
        let kept = self.kept_slots(batch.position, planned.len());
        // A repair publishes the difference from the published rows instead.
        let repairing = self.must_snapshot();
        for (i, def) in planned.iter().enumerate() {
            if def.is_some() && !kept[i] && !repairing {
                self.publisher.clear(i);
            }
        }
        self.publisher.metrics().snapshot_rows(rows as u64);
        let applying = Instant::now();
        let step = admin::without_slots(flow.snapshot(batch), &kept);
        if repairing {
            self.publish_repaired(planned, step, batch.position);
        } else {
            self.first_publish = true;
            self.publish(step, batch.position, &[], applying);
        }
        info!(
            rows,
            position = batch.position.0,
            at = %capture.describe(batch.position),
            total_seconds = started.elapsed().as_secs_f64(),
            rows_per_second = (rows as f64 / started.elapsed().as_secs_f64().max(1e-9)) as u64,
            "{what} (rows_per_second: read, maintained and published)"
        );
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(batch.position),
            ..SourceStatus::default()
        });
        // Sampled with the first publish (before a snapshot is written to
        // the state directory): `/views` shows state bytes once ready.
        self.account(flow);
    }

    /// Applies one polled batch of committed transactions.
    fn follow(&mut self, flow: &mut Flow, batch: Batch) {
        for u in &batch.undecodable {
            error!(at = %u.at, table = %u.table, key = %u.key, reason = %u.reason, "source change cannot be decoded; it is skipped (dead-letter queue: GET /dlq)");
            self.publisher.undecodable(&u.table, 1);
        }
        let commits = batch.commits;
        let source = SourceBatch { position: batch.position, tables: batch.tables };
        for (table, changes) in &source.tables {
            self.publisher.metrics().changes_applied(table, changes.len() as u64);
        }
        let applying = Instant::now();
        let step = flow.apply(&source);
        self.publish(step, source.position, &commits, applying);
        let changes: usize = source.tables.iter().map(|(_, changes)| changes.len()).sum();
        drop(source);
        if changes > crate::alloc::LARGE_BATCH {
            crate::alloc::release_free_memory();
        }
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(batch.head),
            ..SourceStatus::default()
        });
    }

    /// Publishes the unchanged state at `position`: the source reported
    /// that nothing captured committed since the flow's position, so the
    /// views equal their queries as of `position` (read-your-writes for a
    /// position read after a write no view reads, PostgreSQL).
    fn progress(&mut self, flow: &mut Flow, position: Position) {
        if position <= flow.position {
            return;
        }
        flow.position = position;
        self.publish_state(position, &[], &[]);
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(position),
            ..SourceStatus::default()
        });
    }

    /// Hands one step's view changes to the publisher and publishes them
    /// at `position`, all views at once.
    fn publish(&mut self, step: Step, position: Position, commits: &[(String, f64)], started: Instant) {
        for (table, row, reason) in &step.rejected {
            error!(%table, ?row, %reason, "malformed change rejected");
            self.publisher.undecodable(table, 1);
        }
        for (slot, part, changes) in &step.views {
            self.publisher.apply_part(*slot, *part, changes);
        }
        for slot in &step.refreshed {
            self.publisher.refreshed(*slot);
        }
        for (slot, reason) in step.failures {
            error!(view = %self.sources.names[slot], error = %reason, "view failed");
            let note = if self.state_dir.is_some() { heal::COMPUTE_NOTE } else { "" };
            self.publisher.fail(slot, format!("{reason}{note}"));
            self.heal.failed(slot, Cause::Compute);
        }
        self.publish_state(position, commits, &step.views);
        let applied_in = started.elapsed().as_secs_f64();
        self.publisher.metrics().batch_applied(applied_in);
        let oldest = commits.iter().map(|(_, at)| *at).fold(f64::INFINITY, f64::min);
        let lag = unix_now() - oldest;
        if lag > SLOW_BATCH {
            // Catching up after a pause makes every batch slow: one line per
            // SLOW_BATCH_LOG_EVERY, counting the others.
            self.slow_batches += 1;
            if self.slow_logged.is_none_or(|at| at.elapsed() >= SLOW_BATCH_LOG_EVERY) {
                let changes: usize = step.views.iter().map(|(_, _, c)| c.len()).sum();
                warn!(
                    position = position.0,
                    view_changes = changes,
                    lag_seconds = lag,
                    apply_seconds = applied_in,
                    slow_batches = self.slow_batches,
                    "slow batch: its oldest change became visible long after its commit (slow_batches: since the \
                     last such line)"
                );
                self.slow_logged = Some(Instant::now());
                self.slow_batches = 0;
            }
        }
    }
}

/// The tables and columns the planned views read: what the triggers log.
pub fn capture_spec(planned: &[Option<ViewDef>], catalog: &Catalog) -> CaptureSpec {
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for def in planned.iter().flatten() {
        for dependency in &def.dependencies {
            let name = catalog.get(&dependency.table).map_or(dependency.table.clone(), |t| t.name.clone());
            tables.entry(name).or_default().extend(dependency.columns.iter().cloned());
        }
    }
    CaptureSpec {
        tables: tables
            .into_iter()
            .map(|(name, columns)| CapturedTable { name, columns: columns.into_iter().collect() })
            .collect(),
    }
}

/// A snapshot as the first batch: every row once.
fn snapshot_batch(snapshot: denorm_source::Snapshot) -> SourceBatch {
    SourceBatch {
        position: snapshot.position,
        tables: snapshot
            .tables
            .into_iter()
            .map(|(table, rows)| (table, rows.into_iter().map(|r| (r, 1 as Diff)).collect()))
            .collect(),
    }
}

/// The stored rows as the first batch: each with its multiplicity.
fn stored_batch(stored: Stored) -> SourceBatch {
    SourceBatch { position: stored.position, tables: stored.tables }
}

/// Makes the state directory durable and lets the source forget what is
/// both published (`published`) and durable; without a state directory,
/// what is published.
fn release_durable(
    capture: &mut dyn ChangeSource,
    state: Option<&mut StateDir>,
    published: Position,
) -> Result<(), StateError> {
    let upto = match state {
        Some(state) => state.make_durable()?.min(published),
        None => published,
    };
    release(capture, upto);
    Ok(())
}

/// Lets the source forget what is published. Failing is harmless (it is
/// released next time, or superseded by the next snapshot), so it is only
/// logged.
fn release(capture: &mut dyn ChangeSource, position: Position) {
    if let Err(e) = capture.release(position) {
        tracing::debug!(error = %error_chain(&e), "could not release applied changes yet");
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An error and its causes on one line, passwords hidden (it is logged
/// and shown on `/health`).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    denorm_source::redact(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `/health` and the log show of a source error never holds a
    /// password, whichever error in the chain quotes the URL.
    #[test]
    fn error_chains_hide_passwords() {
        let error = SourceError::PostgresUrl {
            url: "postgres://app:pw@db/app?password=pw2".into(),
            reason: "bad host=db password='pw3'".into(),
        };
        let text = error_chain(&error);
        assert!(!text.contains("pw@") && !text.contains("pw2") && !text.contains("pw3"), "{text}");
        assert!(text.contains("postgres://app:***@db/app?password=***"), "{text}");
    }
}
