//! The engine thread: it connects the source, the dataflow and the published
//! state, and does nothing else.
//!
//! ```text
//!  SqliteCapture ──snapshot, then poll──► SourceBatch ──Dataflow::apply──► view changes
//!        ▲                                                                     │
//!        │                                              Publisher::apply + publish (one batch
//!        │                                              boundary, all views at once)
//!        └────────── release(position): log rows are deleted only once published
//! ```
//!
//! A *session* is one life of the capture: plan against the current schema,
//! install triggers, snapshot, then follow the change log. It ends on
//! shutdown, on a schema change of a captured table (the next session
//! re-plans: views the change breaks fail with the reason, the others are
//! re-snapshotted and go on), or on a transient source error (the next
//! session starts after a backoff). Restart costs one snapshot: nothing is
//! persisted, and log rows are deleted only after the state that contains
//! them was published, so a crash at any point loses nothing and applies
//! nothing twice (the next snapshot supersedes every log row at or below
//! its position).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use denorm_core::{BuildError, SourceBatch};
use denorm_serve::{Publisher, SourceState, SourceStatus};
use denorm_source::sqlite::{self, CaptureSpec, CapturedTable, ChangeBatch, Poll, SqliteCapture};
use denorm_source::SourceError;
use denorm_sql::{plan_each, ViewDef};
use denorm_types::{Catalog, Dialect, Diff, Position};
use tracing::{error, info, warn};

use flow::{Flow, Step};

mod flow;

/// How long the follow loop waits for a wake-up before it checks for
/// shutdown again. Changes wake it at once; this only bounds shutdown time.
const WAIT: Duration = Duration::from_millis(100);
/// Applied log rows are deleted at most this often, so that denorm's own
/// writes do not compete with the application's for the write lock.
const RELEASE_EVERY: Duration = Duration::from_millis(500);
/// A batch whose oldest change took longer than this (seconds) from commit
/// to visible is logged.
const SLOW_BATCH: f64 = 0.1;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

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
}

/// How a session ended.
enum End {
    Shutdown,
    SchemaChanged,
}

#[derive(Debug)]
pub struct Engine {
    database: PathBuf,
    sources: ViewSources,
    publisher: Publisher,
    shutdown: Arc<AtomicBool>,
}

impl Engine {
    pub fn new(database: PathBuf, sources: ViewSources, publisher: Publisher, shutdown: Arc<AtomicBool>) -> Self {
        Engine { database, sources, publisher, shutdown }
    }

    /// Runs sessions until shutdown. Transient source errors (a locked or
    /// busy database, an I/O hiccup) are retried with exponential backoff;
    /// a definite one ends the engine.
    pub fn run(mut self) -> Result<(), EngineError> {
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.session() {
                Ok(End::Shutdown) => return Ok(()),
                Ok(End::SchemaChanged) => backoff = BACKOFF_MIN,
                Err(EngineError::Source(e)) if e.is_transient() => {
                    warn!(error = %error_chain(&e), retry_in = ?backoff, "source unavailable; retrying");
                    self.publisher.set_source(SourceStatus {
                        state: SourceState::Retrying { error: error_chain(&e) },
                        ..SourceStatus::default()
                    });
                    if self.sleep(backoff) {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
                Err(e) => return Err(e),
            }
        }
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
        let catalog = sqlite::read_catalog(&sqlite::open_read_only(&self.database)?)?;
        let planned = self.plan(&catalog);
        let spec = capture_spec(&planned, &catalog);
        let mut capture = SqliteCapture::open(&self.database, &catalog, &spec)?;
        let mut wakeup = capture.wakeup()?;
        let mut flow = Flow::new(catalog, &planned, Instant::now())?;

        self.snapshot(&mut capture, &mut flow, &planned)?;
        let mut released_at = Instant::now();
        loop {
            if self.stopping() {
                release(&mut capture, flow.position);
                return Ok(End::Shutdown);
            }
            let wait = flow.next_due().map_or(WAIT, |due| due.saturating_duration_since(Instant::now()).min(WAIT));
            wakeup.wait(wait)?;
            match capture.poll()? {
                Poll::Idle => {}
                Poll::SchemaChanged { tables } => {
                    warn!(?tables, "the schema of a captured table changed; re-planning the views");
                    return Ok(End::SchemaChanged);
                }
                Poll::Changes(batch) => self.follow(&mut flow, batch),
            }
            if let Some(step) = flow.refresh_due(Instant::now()) {
                self.publish(step, flow.position, &[], Instant::now());
            }
            if released_at.elapsed() >= RELEASE_EVERY {
                release(&mut capture, flow.position);
                released_at = Instant::now();
            }
        }
    }

    /// Plans every view against `catalog`. A view that no longer plans (a
    /// column it reads was renamed or dropped) fails with the reason; the
    /// others are returned in publishing order.
    fn plan(&mut self, catalog: &Catalog) -> Vec<Option<ViewDef>> {
        let mut defs: BTreeMap<String, ViewDef> = BTreeMap::new();
        let mut errors: BTreeMap<String, String> = BTreeMap::new();
        for (path, sql) in &self.sources.files {
            let (views, failed) = plan_each(sql, catalog, Dialect::Sqlite);
            defs.extend(views.into_iter().map(|v| (v.name.to_lowercase(), v)));
            for e in failed {
                let name = e.view.clone().unwrap_or_default().to_lowercase();
                errors.insert(name, e.render(&path.display().to_string()));
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
                self.publisher.fail(i, reason);
            }
            planned.push(def);
        }
        planned
    }

    /// Reads the snapshot and publishes it as the views' first state.
    fn snapshot(
        &mut self,
        capture: &mut SqliteCapture,
        flow: &mut Flow,
        planned: &[Option<ViewDef>],
    ) -> Result<(), EngineError> {
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
        let batch = SourceBatch {
            position: snapshot.position,
            tables: snapshot
                .tables
                .into_iter()
                .map(|(table, rows)| (table, rows.into_iter().map(|r| (r, 1 as Diff)).collect()))
                .collect(),
        };
        for (i, def) in planned.iter().enumerate() {
            if def.is_some() {
                self.publisher.clear(i);
            }
        }
        self.publisher.metrics().snapshot_rows(rows as u64);
        let applying = Instant::now();
        let step = flow.snapshot(&batch);
        self.publish(step, batch.position, &[], applying);
        info!(
            rows,
            position = snapshot.position.0,
            read_seconds = read_in.as_secs_f64(),
            total_seconds = started.elapsed().as_secs_f64(),
            read_rows_per_second = (rows as f64 / read_in.as_secs_f64().max(1e-9)) as u64,
            rows_per_second = (rows as f64 / started.elapsed().as_secs_f64().max(1e-9)) as u64,
            "snapshot published (rows_per_second: read, maintained and published)"
        );
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(snapshot.position),
            ..SourceStatus::default()
        });
        Ok(())
    }

    /// Applies one polled batch of committed transactions.
    fn follow(&mut self, flow: &mut Flow, batch: ChangeBatch) {
        for bad in &batch.undecodable {
            error!(seq = bad.seq.0, table = %bad.table, reason = %bad.reason, "change-log row cannot be decoded; it is skipped");
            self.publisher.undecodable(&bad.table, 1);
        }
        let commits: Vec<(String, f64)> = batch.commits.into_iter().map(|c| (c.table, c.committed_at)).collect();
        let source = SourceBatch { position: batch.position, tables: batch.tables };
        for (table, changes) in &source.tables {
            self.publisher.metrics().changes_applied(table, changes.len() as u64);
        }
        let applying = Instant::now();
        let step = flow.apply(&source);
        self.publish(step, source.position, &commits, applying);
        self.publisher.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(batch.head),
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
            self.publisher.fail(slot, reason);
        }
        self.publisher.publish(position, commits);
        let applied_in = started.elapsed().as_secs_f64();
        self.publisher.metrics().batch_applied(applied_in);
        let oldest = commits.iter().map(|(_, at)| *at).fold(f64::INFINITY, f64::min);
        let lag = unix_now() - oldest;
        if lag > SLOW_BATCH {
            let changes: usize = step.views.iter().map(|(_, _, c)| c.len()).sum();
            warn!(
                position = position.0,
                view_changes = changes,
                lag_seconds = lag,
                apply_seconds = applied_in,
                "slow batch: its oldest change became visible long after its commit"
            );
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

/// Deletes applied log rows. Failing is harmless (the rows are deleted
/// next time, or superseded by the next snapshot), so it is only logged.
fn release(capture: &mut SqliteCapture, position: Position) {
    if let Err(e) = capture.release(position) {
        tracing::debug!(error = %error_chain(&e), "could not delete applied change-log rows yet");
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// An error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
