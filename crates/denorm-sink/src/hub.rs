//! The runner: one thread and one bounded queue per sink, fed by the engine
//! thread without ever blocking it.
//!
//! ```text
//!  engine: SinkHub::publish(publisher, position, commits, changes)
//!    boundary lock { Publisher::publish; per sink: queue the batch, or — the
//!                    queue is full — drop the queue and queue one Sync of the
//!                    state just published (an Arc, O(1)) }
//!  runner (per sink): open (stored positions) ─► pop ─► Batch: Sink::apply (several queued
//!                     batches merged and consolidated into one transaction)
//!                                              └► Sync: rebuild each view whose stored
//!                                                 position is not the published one
//! ```
//!
//! Invariants:
//! - The engine never waits for a sink: the only lock it shares with the
//!   runners is held by a runner for an `Arc` load and a queue swap.
//! - A queued `Sync` carries the state published exactly at its place in the
//!   queue (taken under the boundary lock), so the batches behind it are
//!   precisely those published after it: nothing is applied twice or missed.
//! - A session's first publish ([`SinkHub::loaded`]) queues a `Sync` that
//!   rebuilds only the views whose stored position differs from the
//!   published one (a sink caught up across a restart is not rewritten).
//! - Errors are retried with capped exponential backoff and jitter; after an
//!   error the sink is reopened and its stored positions say whether the
//!   failed batch was committed (then it is done), not (it is retried), or
//!   neither (the sink re-syncs from the published state).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use denorm_serve::{Metrics, Published, PublishedView, Publisher, Reader, ViewStatus};
use denorm_types::{consolidate, Diff, Position, Row};
use tracing::{info, warn};

use crate::contract::{error_chain, Sink, SinkBatch, SinkError, ViewSpec};
use crate::feed::FeedPart;

/// Queued view changes per sink, at most (by default); past it the queue is
/// dropped and the sink catches up from the published state.
pub const QUEUE_ROWS: usize = 1_000_000;
/// Queued batches merged into one `apply`, at most this many changes (by
/// default: see [`Sink::merge_limit`]).
pub const MERGE_ROWS: usize = 200_000;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long a runner waits for work before it checks for shutdown.
const IDLE: Duration = Duration::from_millis(100);
/// How long a stopping runner keeps applying what is queued.
const DRAIN: Duration = Duration::from_secs(10);
/// How long a reconcile waits for the sink to catch up with the engine.
const RECONCILE_CATCH_UP: Duration = Duration::from_secs(30);

/// One sink as configured: its name, the sink, its views (publishing slots
/// and specs), its queue bound.
#[derive(Debug)]
pub struct SinkConfig {
    pub name: String,
    pub sink: Box<dyn Sink>,
    /// `(publishing slot, spec)` per view the sink writes.
    pub views: Vec<(usize, ViewSpec)>,
    /// Queued changes at most ([`QUEUE_ROWS`] by default).
    pub queue_rows: usize,
    /// Reconcile the sink with its views this often (`reconcile_every`),
    /// counting `denorm_sink_drift_rows`; `None`: only on request.
    pub reconcile_every: Option<Duration>,
    /// With `reconcile_every`: also write the differences found.
    pub repair: bool,
    /// With `reconcile_every`: compare this many random keys per view
    /// instead of every row (`None`: every row; a sample cannot see rows
    /// the sink has under keys the view lacks).
    pub reconcile_sample: Option<usize>,
}

/// A sink's state, for `/health` and tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SinkState {
    /// Positions stored for each view (after the last apply or rebuild).
    pub positions: Vec<Option<Position>>,
    /// True from an overflow or a forced re-sync until it is done.
    pub behind: bool,
    /// The last error, until the next success.
    pub error: Option<String>,
    /// Rebuilds done since start, all views together.
    pub rebuilds: u64,
    /// Batches applied since start (merged ones count once).
    pub applies: u64,
}

/// The differences a reconcile found for one view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciled {
    pub view: String,
    /// Rows of the view the sink lacks (keyed: keys absent from the sink).
    pub missing: u64,
    /// Rows the sink holds that the view does not.
    pub extra: u64,
    /// Keyed views: keys present in both with different rows.
    pub different: u64,
    /// Whether the differences were written to the sink (one transaction).
    pub repaired: bool,
}

impl Reconciled {
    pub fn drift(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

/// A failed step: what to retry (if anything) and why it failed.
type Failed = Box<(Option<Message>, SinkError)>;

/// One view part's changes of a batch, as the engine hands them to the
/// publisher: `(slot, part, changes)`.
pub type PartChanges = (usize, usize, Vec<(Row, Diff)>);

enum Message {
    Batch(SinkBatch),
    /// Bring every view to the published state; `force`: even a view whose
    /// stored position equals the published one.
    Sync {
        published: Arc<Published>,
        force: bool,
    },
    Reconcile {
        repair: bool,
        reply: mpsc::Sender<Result<Vec<Reconciled>, String>>,
    },
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Message>,
    rows: usize,
}

struct Shared {
    name: String,
    queue: Mutex<Queue>,
    ready: Condvar,
    state: Mutex<SinkState>,
    stop: AtomicBool,
    capacity: usize,
    /// Sink view index → publishing slot.
    slots: Vec<usize>,
    /// Sink view index → the feed part it is (`None`: a view's rows).
    parts: Vec<Option<FeedPart>>,
}

impl Shared {
    fn push(&self, message: Message, rows: usize) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.items.push_back(message);
        queue.rows += rows;
        drop(queue);
        self.ready.notify_one();
    }

    /// Drops everything queued and queues a sync of `published`.
    fn replace_with_sync(&self, published: Arc<Published>, force: bool) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        // Reconcile requests are kept (answered after the sync).
        let kept: Vec<Message> = queue.items.drain(..).filter(|m| matches!(m, Message::Reconcile { .. })).collect();
        queue.rows = 0;
        queue.items.push_back(Message::Sync { published, force });
        queue.items.extend(kept);
        drop(queue);
        self.state.lock().unwrap_or_else(PoisonError::into_inner).behind = true;
        self.ready.notify_one();
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Handle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Every configured sink, fed from the engine thread.
pub struct SinkHub {
    sinks: Vec<Handle>,
    reader: Reader,
    /// Held while a publish and its queuing happen, and while a runner takes
    /// a snapshot to sync from: the snapshot and the queue agree.
    boundary: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SinkHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.sinks.iter().map(|h| h.shared.name.as_str()).collect();
        f.debug_struct("SinkHub").field("sinks", &names).finish_non_exhaustive()
    }
}

impl SinkHub {
    /// Starts one runner thread per sink. Nothing is written before the
    /// engine's first publish ([`SinkHub::loaded`]).
    pub fn start(sinks: Vec<SinkConfig>, reader: Reader) -> SinkHub {
        let boundary = Arc::new(Mutex::new(()));
        let handles = sinks
            .into_iter()
            .map(|config| {
                let shared = Arc::new(Shared {
                    name: config.name.clone(),
                    queue: Mutex::default(),
                    ready: Condvar::new(),
                    state: Mutex::new(SinkState { positions: vec![None; config.views.len()], ..SinkState::default() }),
                    stop: AtomicBool::new(false),
                    capacity: config.queue_rows.max(1),
                    slots: config.views.iter().map(|(slot, _)| *slot).collect(),
                    parts: config.views.iter().map(|(_, spec)| spec.feed.as_ref().map(|f| f.part)).collect(),
                });
                reader.metrics().set_sink_state(&config.name, true, Some("starting".to_owned()));
                let runner = Runner {
                    shared: shared.clone(),
                    sink: config.sink,
                    specs: config.views.into_iter().map(|(_, spec)| spec).collect(),
                    stored: None,
                    metrics: reader.metrics().clone(),
                    reader: reader.clone(),
                    boundary: boundary.clone(),
                    backoff: BACKOFF_MIN,
                    synced: false,
                    after_error: false,
                    written: vec![None; shared.slots.len()],
                    reconcile_every: config.reconcile_every,
                    repair: config.repair,
                    sample: config.reconcile_sample,
                    reconcile_due: config.reconcile_every.map(|every| Instant::now() + every),
                };
                let thread =
                    std::thread::Builder::new().name(format!("sink-{}", config.name)).spawn(move || runner.run()).ok();
                Handle { shared, thread }
            })
            .collect();
        SinkHub { sinks: handles, reader, boundary }
    }

    /// Publishes `position` (as [`Publisher::publish`]) and hands the
    /// batch's view changes — `(slot, part, changes)`, as given to
    /// [`Publisher::apply_part`]; part 0 is a view's rows — to every sink.
    /// Never blocks on a sink.
    ///
    /// `first`: the session's first publish (a snapshot, or the state
    /// directory): instead of the changes, every sink drops what it had
    /// queued and brings each view whose stored position differs from the
    /// published one to the published state.
    pub fn publish(
        &self,
        publisher: &mut Publisher,
        position: Position,
        commits: &[(String, f64)],
        changes: &[PartChanges],
        first: bool,
    ) {
        let _boundary = self.boundary.lock().unwrap_or_else(PoisonError::into_inner);
        publisher.publish(position, commits);
        if self.sinks.is_empty() {
            return;
        }
        let published = self.reader.snapshot();
        if first {
            for handle in &self.sinks {
                handle.shared.replace_with_sync(published.clone(), false);
            }
            return;
        }
        let committed_at = commits.iter().map(|(_, at)| *at).reduce(f64::min);
        for handle in &self.sinks {
            let shared = &handle.shared;
            let mut rows = 0;
            let views: Vec<Option<Vec<(Row, Diff)>>> = shared
                .slots
                .iter()
                .enumerate()
                .map(|(i, &slot)| {
                    // A failed view is left as it was (and keeps its position).
                    let view = published.views.get(slot)?;
                    if matches!(view.status, ViewStatus::Failed(_)) || view.position != Some(position) {
                        return None;
                    }
                    let part = |n: usize| {
                        changes.iter().find(|(s, part, _)| *s == slot && *part == n).map_or(&[][..], |(_, _, c)| c)
                    };
                    let found = part_changes(view, shared.parts[i], &part);
                    rows += found.len();
                    Some(found)
                })
                .collect();
            let queued = shared.queue.lock().unwrap_or_else(PoisonError::into_inner).rows;
            if queued + rows > shared.capacity {
                warn!(sink = %shared.name, queued, rows, "sink queue full; the sink is behind and catches up from the published state");
                shared.replace_with_sync(published.clone(), true);
                continue;
            }
            shared.push(Message::Batch(SinkBatch { position, committed_at, views }), rows);
        }
    }

    /// Compares sink `name`'s rows with its views at the same position and,
    /// with `repair`, writes the differences (one transaction). Waits for the
    /// sink to catch up; `Err` says why it could not compare.
    pub fn reconcile(&self, name: &str, repair: bool) -> Result<Vec<Reconciled>, String> {
        let handle = self
            .sinks
            .iter()
            .find(|h| h.shared.name == name)
            .ok_or_else(|| format!("no sink named \"{name}\" (sinks: {})", self.names().join(", ")))?;
        let (reply, answer) = mpsc::channel();
        handle.shared.push(Message::Reconcile { repair, reply }, 0);
        answer
            .recv_timeout(RECONCILE_CATCH_UP * 4)
            .map_err(|_| format!("sink \"{name}\" did not answer the reconcile in time"))?
    }

    pub fn names(&self) -> Vec<String> {
        self.sinks.iter().map(|h| h.shared.name.clone()).collect()
    }

    /// Sink `name`'s state.
    pub fn state(&self, name: &str) -> Option<SinkState> {
        self.sinks.iter().find(|h| h.shared.name == name).map(|h| h.shared.state().clone())
    }
}

impl Drop for SinkHub {
    fn drop(&mut self) {
        for handle in &self.sinks {
            handle.shared.stop.store(true, Ordering::SeqCst);
            handle.shared.ready.notify_all();
        }
        for handle in &mut self.sinks {
            if let Some(thread) = handle.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

struct Runner {
    shared: Arc<Shared>,
    sink: Box<dyn Sink>,
    specs: Vec<ViewSpec>,
    /// Stored positions as of the last open/apply/rebuild; `None`: not open.
    stored: Option<Vec<Option<Position>>>,
    metrics: Metrics,
    reader: Reader,
    boundary: Arc<Mutex<()>>,
    backoff: Duration,
    /// Whether the sink has been synced with a published state since start
    /// (batches before that are dropped: the first sync holds them).
    synced: bool,
    /// Set by an error: the next apply checks the reopened positions for
    /// whether the failed attempt committed.
    after_error: bool,
    /// Per view, the position this runner last stored (or found in sync).
    written: Vec<Option<Position>>,
    reconcile_every: Option<Duration>,
    repair: bool,
    sample: Option<usize>,
    reconcile_due: Option<Instant>,
}

impl Runner {
    fn run(mut self) {
        let mut pending: Option<Message> = None;
        let mut stop_at: Option<Instant> = None;
        loop {
            // On shutdown the queue is drained first (at most DRAIN long,
            // and not past an error), so that a clean restart finds the
            // sink at the engine's position and rewrites nothing.
            if self.stopping() {
                let until = *stop_at.get_or_insert_with(|| Instant::now() + DRAIN);
                let empty = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).items.is_empty();
                if (empty && pending.is_none()) || self.after_error || Instant::now() >= until {
                    return;
                }
            }
            if self.stored.is_none() && !self.open() {
                continue;
            }
            if pending.is_none()
                && !self.stopping()
                && self.synced
                && self.reconcile_due.is_some_and(|due| Instant::now() >= due)
            {
                self.reconcile_due = self.reconcile_every.map(|every| Instant::now() + every);
                if let Err(e) = self.reconcile(self.repair, self.sample) {
                    self.failed(&e);
                    self.stored = None;
                }
                continue;
            }
            let message = match pending.take() {
                Some(m) => m,
                None => match self.pop() {
                    Some(m) => m,
                    None => continue,
                },
            };
            match self.handle(message) {
                Ok(()) => self.succeeded(),
                Err(failed) => {
                    let (message, error) = *failed;
                    pending = message;
                    self.after_error = true;
                    self.failed(&error);
                    // Reopened before the retry: the stored positions say
                    // what the failed attempt left.
                    self.stored = None;
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
    }

    fn open(&mut self) -> bool {
        match self.sink.open(&self.specs) {
            Ok(positions) => {
                self.shared.state().positions = positions.clone();
                self.stored = Some(positions);
                true
            }
            Err(e) => {
                self.after_error = true;
                self.failed(&e);
                false
            }
        }
    }

    /// The next message; several queued batches are merged into one.
    fn pop(&self) -> Option<Message> {
        let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.items.is_empty() {
            queue = self.shared.ready.wait_timeout(queue, IDLE).unwrap_or_else(PoisonError::into_inner).0;
        }
        let first = queue.items.pop_front()?;
        let Message::Batch(mut batch) = first else {
            return Some(first);
        };
        let mut rows = batch.changes();
        let mut merged = false;
        while let Some(Message::Batch(next)) = queue.items.front() {
            if rows + next.changes() > self.sink.merge_limit() {
                break;
            }
            let Some(Message::Batch(next)) = queue.items.pop_front() else { break };
            rows += next.changes();
            merge(&mut batch, next);
            merged = true;
        }
        queue.rows = queue.rows.saturating_sub(rows);
        drop(queue);
        if merged {
            for changes in batch.views.iter_mut().flatten() {
                consolidate(changes);
            }
        }
        Some(Message::Batch(batch))
    }

    /// Handles one message; on failure returns what to retry (if anything).
    fn handle(&mut self, message: Message) -> Result<(), Failed> {
        match message {
            Message::Batch(batch) => self.apply(batch),
            Message::Sync { published, force } => {
                self.sync(&published, force).map_err(|e| Box::new((Some(Message::Sync { published, force: false }), e)))
            }
            Message::Reconcile { repair, reply } => {
                let answer = self.reconcile(repair, None);
                let _ = reply.send(answer.map_err(|e| error_chain(&e)));
                Ok(())
            }
        }
    }

    fn apply(&mut self, batch: SinkBatch) -> Result<(), Failed> {
        if !self.synced {
            return Ok(());
        }
        let stored = self.stored.clone().unwrap_or_default();
        if std::mem::take(&mut self.after_error) {
            // Reopened after an error: the positions show the failed
            // attempt committed (done), or are those this runner wrote last
            // (retry); anything else (the target was restored, or written by
            // someone else) is re-synced from the published state.
            let done = batch.views.iter().zip(&stored).all(|(v, at)| v.is_none() || *at == Some(batch.position));
            if done && batch.views.iter().any(Option::is_some) {
                return Ok(());
            }
            let unchanged =
                batch.views.iter().zip(&stored).zip(&self.written).all(|((v, at), w)| v.is_none() || at == w);
            if !unchanged {
                return self.resync_now(false);
            }
        }
        // A view not at the position before this batch cannot take it: the
        // sink syncs from the published state (the batch is in it).
        let behind =
            batch.views.iter().zip(&stored).any(|(v, at)| v.is_some() && at.is_none_or(|at| at > batch.position));
        if behind {
            return self.resync_now(false);
        }
        if let Err(e) = self.sink.apply(&batch) {
            return Err(Box::new((Some(Message::Batch(batch)), e)));
        }
        let now = unix_now();
        let lag = batch.committed_at.map_or(0.0, |at| (now - at).max(0.0));
        let mut state = self.shared.state();
        for (i, v) in batch.views.iter().enumerate() {
            if v.is_some() {
                if let Some(stored) = self.stored.as_mut() {
                    stored[i] = Some(batch.position);
                }
                self.written[i] = Some(batch.position);
                state.positions[i] = Some(batch.position);
                self.metrics.sink_applied(&self.shared.name, &self.specs[i].name, batch.position.0, lag);
            }
        }
        state.applies += 1;
        Ok(())
    }

    /// Drops the queue and syncs from the state published right now.
    fn resync_now(&mut self, force: bool) -> Result<(), Failed> {
        let published = {
            let _boundary = self.boundary.lock().unwrap_or_else(PoisonError::into_inner);
            let published = self.reader.snapshot();
            let mut queue = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.items.retain(|m| matches!(m, Message::Reconcile { .. }));
            queue.rows = 0;
            published
        };
        self.shared.state().behind = true;
        self.sync(&published, force).map_err(|e| Box::new((Some(Message::Sync { published, force: false }), e)))
    }

    fn sync(&mut self, published: &Published, force: bool) -> Result<(), SinkError> {
        for i in 0..self.specs.len() {
            let Some(view) = published.views.get(self.shared.slots[i]) else { continue };
            let Some(position) = view.position else { continue };
            if matches!(view.status, ViewStatus::Failed(_)) {
                continue;
            }
            let stored = self.stored.as_ref().and_then(|s| s[i]);
            if !force && stored == Some(position) {
                self.written[i] = stored;
                continue;
            }
            let started = Instant::now();
            let rows = part_rows(view, self.shared.parts[i]);
            let count = rows.len();
            self.sink.rebuild(i, &mut rows.iter(), position)?;
            info!(sink = %self.shared.name, view = %self.specs[i].name, rows = count, position = position.0,
                  seconds = started.elapsed().as_secs_f64(), ?stored, "sink view rebuilt from the published state");
            if let Some(s) = self.stored.as_mut() {
                s[i] = Some(position);
            }
            self.written[i] = Some(position);
            let mut state = self.shared.state();
            state.positions[i] = Some(position);
            state.rebuilds += 1;
            drop(state);
            self.metrics.sink_applied(&self.shared.name, &self.specs[i].name, position.0, 0.0);
        }
        self.synced = true;
        self.after_error = false;
        self.shared.state().behind = false;
        Ok(())
    }

    /// Waits until the sink has applied everything queued, then compares.
    fn reconcile(&mut self, repair: bool, sample: Option<usize>) -> Result<Vec<Reconciled>, SinkError> {
        let until = Instant::now() + RECONCILE_CATCH_UP;
        loop {
            // Apply what is queued before the comparison point.
            let published = {
                let _boundary = self.boundary.lock().unwrap_or_else(PoisonError::into_inner);
                let empty = self.shared.queue.lock().unwrap_or_else(PoisonError::into_inner).items.is_empty();
                (empty || Instant::now() >= until).then(|| self.reader.snapshot())
            };
            if let Some(published) = published {
                return self.compare(&published, repair, sample);
            }
            match self.pop() {
                Some(Message::Reconcile { repair: r, reply }) => {
                    let _ = reply
                        .send(Err(format!("another reconcile of sink \"{}\" is under way; retry", self.shared.name)));
                    let _ = r;
                }
                Some(message) => {
                    if let Err(failed) = self.handle(message) {
                        return Err(failed.1);
                    }
                }
                None => {}
            }
        }
    }

    /// Compares every row, or `sample` random keys, of each view.
    fn compare(
        &mut self,
        published: &Published,
        repair: bool,
        sample: Option<usize>,
    ) -> Result<Vec<Reconciled>, SinkError> {
        let mut reports = Vec::new();
        for i in 0..self.specs.len() {
            let Some(view) = published.views.get(self.shared.slots[i]) else { continue };
            let (Some(position), false) = (view.position, matches!(view.status, ViewStatus::Failed(_))) else {
                continue;
            };
            if self.stored.as_ref().and_then(|s| s[i]) != Some(position) {
                // Not at the same position (it failed meanwhile): a rebuild
                // is the repair.
                continue;
            }
            let key: Vec<usize> = if self.specs[i].is_multiset() {
                (0..self.specs[i].columns.len()).collect()
            } else {
                self.specs[i].key.clone()
            };
            let rows = part_rows(view, self.shared.parts[i]);
            let published = rows.iter();
            let (mut expected, sink_rows) = match sample {
                None => {
                    let expected: Vec<(Row, Diff)> = published.map(|(r, d)| (self.sink.stored(i, r), d)).collect();
                    (expected, self.sink.read(i)?)
                }
                Some(n) => {
                    let expected: Vec<(Row, Diff)> =
                        reservoir(published, n).into_iter().map(|(r, d)| (self.sink.stored(i, r), d)).collect();
                    let keys: Vec<Row> =
                        expected.iter().map(|(r, _)| Row::pack(key.iter().map(|&k| r.get(k)))).collect();
                    (expected, self.sink.read_keys(i, &key, &keys)?)
                }
            };
            consolidate(&mut expected);
            let (report, diff) = differences(&self.specs[i], &expected, sink_rows);
            self.metrics.sink_drift(&self.shared.name, &self.specs[i].name, report.drift());
            let mut report = Reconciled { view: self.specs[i].name.clone(), ..report };
            if repair && !diff.is_empty() {
                let mut views = vec![None; self.specs.len()];
                views[i] = Some(diff);
                self.sink.apply(&SinkBatch { position, committed_at: None, views })?;
                report.repaired = true;
            }
            if report.drift() > 0 {
                warn!(sink = %self.shared.name, view = %report.view, missing = report.missing, extra = report.extra,
                      different = report.different, repaired = report.repaired, "sink drift found");
            }
            reports.push(report);
        }
        Ok(reports)
    }

    fn succeeded(&mut self) {
        if self.backoff != BACKOFF_MIN {
            info!(sink = %self.shared.name, "sink writes succeed again");
        }
        self.backoff = BACKOFF_MIN;
        let mut state = self.shared.state();
        state.error = None;
        let problem = state.behind.then(|| "behind: catching up from the published state".to_owned());
        self.metrics.set_sink_state(&self.shared.name, state.behind, problem);
    }

    fn failed(&mut self, error: &SinkError) {
        let text = error_chain(error);
        self.metrics.sink_error(&self.shared.name);
        let wait = if error.is_transient() { self.backoff } else { BACKOFF_MAX };
        let wait = wait.mul_f64(0.8 + 0.4 * jitter());
        warn!(sink = %self.shared.name, error = %text, retry_in = ?wait, "sink write failed; retrying");
        self.shared.state().error = Some(text.clone());
        self.metrics.set_sink_state(&self.shared.name, true, Some(format!("failing, retrying: {text}")));
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        let until = Instant::now() + wait;
        while Instant::now() < until && !self.stopping() {
            std::thread::sleep(IDLE.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

/// The rows a sink view holds: a view's published rows, or one part of a
/// feed (see [`crate::feed`]).
enum PartRows<'a> {
    Published(&'a denorm_serve::ViewRows),
    Owned(Vec<(Row, Diff)>),
}

impl PartRows<'_> {
    fn len(&self) -> u64 {
        match self {
            PartRows::Published(rows) => rows.len(),
            PartRows::Owned(rows) => rows.len() as u64,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = (&Row, Diff)> + '_> {
        match self {
            PartRows::Published(rows) => Box::new(rows.iter()),
            PartRows::Owned(rows) => Box::new(rows.iter().map(|(r, d)| (r, *d))),
        }
    }
}

/// The published rows of sink view `part` of `view`. A feed's fanned-out
/// rows are stored without their partition column (and as references):
/// they are given back whole; its celebrities' content and edges are its
/// parts 1 and 2.
fn part_rows(view: &PublishedView, part: Option<FeedPart>) -> PartRows<'_> {
    use denorm_serve::feed::{CELEBRITY_CONTENT, CELEBRITY_EDGES};
    let Some(feed) = &view.info.feed else { return PartRows::Published(&view.rows) };
    let stored = |n: usize| view.parts.get(n - 1).map_or(PartRows::Owned(Vec::new()), PartRows::Published);
    match part {
        None | Some(FeedPart::Fanout) => PartRows::Owned(denorm_serve::feed::rows(view, feed)),
        Some(FeedPart::Celebrities) => stored(CELEBRITY_CONTENT),
        Some(FeedPart::Edges) => stored(CELEBRITY_EDGES),
    }
}

/// A batch's changes of sink view `part` of `view` (as published after the
/// batch), `changes(n)` giving the batch's changes of the view's part `n`
/// as numbered for `Publisher::apply_part`.
fn part_changes<'c>(
    view: &PublishedView,
    part: Option<FeedPart>,
    changes: &dyn Fn(usize) -> &'c [(Row, Diff)],
) -> Vec<(Row, Diff)> {
    use denorm_serve::feed::{whole_changes, CELEBRITY_CONTENT, CELEBRITY_EDGES, CONTENT};
    let Some(feed) = &view.info.feed else { return changes(0).to_vec() };
    match part {
        // A feed fanning out references: its whole rows.
        // (Consolidated: an edit meeting a new holder in one batch gives
        // `+old, -old, +new` for its row.)
        None | Some(FeedPart::Fanout) => {
            let mut whole = whole_changes(view, feed, changes(0), changes(CONTENT));
            consolidate(&mut whole);
            whole
        }
        Some(FeedPart::Celebrities) => changes(CELEBRITY_CONTENT).to_vec(),
        Some(FeedPart::Edges) => changes(CELEBRITY_EDGES).to_vec(),
    }
}

/// Up to `n` items of `items` chosen uniformly (reservoir sampling).
fn reservoir<T>(items: impl Iterator<Item = T>, n: usize) -> Vec<T> {
    let mut rng = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1;
    let mut chosen = Vec::with_capacity(n);
    for (seen, item) in items.enumerate() {
        if chosen.len() < n {
            chosen.push(item);
            continue;
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let j = (rng % (seen as u64 + 1)) as usize;
        if j < n {
            chosen[j] = item;
        }
    }
    chosen
}

/// Appends `next`'s changes to `batch` (which then ends at `next`'s position).
fn merge(batch: &mut SinkBatch, next: SinkBatch) {
    batch.position = next.position;
    batch.committed_at = match (batch.committed_at, next.committed_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    for (mine, theirs) in batch.views.iter_mut().zip(next.views) {
        match (mine.as_mut(), theirs) {
            (Some(m), Some(t)) => m.extend(t),
            // A view that failed in a later batch stays where it was.
            (_, None) => *mine = None,
            (None, Some(_)) => {}
        }
    }
}

/// What differs between a view's rows and a sink's, and the changes that
/// make the sink equal the view.
pub fn differences(spec: &ViewSpec, view: &[(Row, Diff)], sink: Vec<(Row, Diff)>) -> (Reconciled, Vec<(Row, Diff)>) {
    let mut diff: Vec<(Row, Diff)> = view.iter().cloned().chain(sink.into_iter().map(|(r, d)| (r, -d))).collect();
    consolidate(&mut diff);
    let mut report = Reconciled::default();
    if spec.is_multiset() {
        for (_, d) in &diff {
            if *d > 0 {
                report.missing += d.unsigned_abs();
            } else {
                report.extra += d.unsigned_abs();
            }
        }
        return (report, diff);
    }
    let mut by_key: BTreeMap<Vec<u8>, (bool, bool)> = BTreeMap::new();
    for (row, d) in &diff {
        let key = Row::pack(spec.key.iter().map(|&k| row.get(k))).as_bytes().to_vec();
        let entry = by_key.entry(key).or_default();
        if *d > 0 {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
    }
    for (in_view, in_sink) in by_key.values() {
        match (in_view, in_sink) {
            (true, true) => report.different += 1,
            (true, false) => report.missing += 1,
            _ => report.extra += 1,
        }
    }
    (report, diff)
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A number in [0, 1) from the clock's nanoseconds (jitter only).
fn jitter() -> f64 {
    f64::from(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos()) % 1000) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ColumnSpec;
    use denorm_serve::{channel, ColumnInfo, ViewInfo};
    use denorm_types::{Datum, ScalarType};

    type Table = (BTreeMap<Row, Diff>, Option<Position>);

    /// A sink keeping its rows in memory, shared with the test (a complete
    /// implementation of the contract: atomic under its lock).
    #[derive(Debug, Clone, Default)]
    struct MemorySink {
        tables: Arc<Mutex<Vec<Table>>>,
        fail_next: Arc<AtomicBool>,
    }

    impl Sink for MemorySink {
        fn kind(&self) -> &'static str {
            "memory"
        }
        fn open(&mut self, views: &[ViewSpec]) -> Result<Vec<Option<Position>>, SinkError> {
            let mut tables = self.tables.lock().unwrap();
            tables.resize(views.len(), (BTreeMap::new(), None));
            Ok(tables.iter().map(|t| t.1).collect())
        }
        fn apply(&mut self, batch: &SinkBatch) -> Result<(), SinkError> {
            if self.fail_next.swap(false, Ordering::SeqCst) {
                return Err(SinkError::Unreachable { target: "memory".into(), source: "down".into() });
            }
            let mut tables = self.tables.lock().unwrap();
            for (table, changes) in tables.iter_mut().zip(&batch.views) {
                let Some(changes) = changes else { continue };
                for (row, d) in changes {
                    *table.0.entry(row.clone()).or_default() += d;
                }
                table.0.retain(|_, d| *d != 0);
                table.1 = Some(batch.position);
            }
            Ok(())
        }
        fn rebuild(
            &mut self,
            view: usize,
            rows: &mut dyn Iterator<Item = (&Row, Diff)>,
            position: Position,
        ) -> Result<(), SinkError> {
            let fresh = rows.map(|(r, d)| (r.clone(), d)).collect();
            self.tables.lock().unwrap()[view] = (fresh, Some(position));
            Ok(())
        }
        fn read(&mut self, view: usize) -> Result<Vec<(Row, Diff)>, SinkError> {
            Ok(self.tables.lock().unwrap()[view].0.iter().map(|(r, d)| (r.clone(), *d)).collect())
        }
    }

    fn row(id: i64, v: &str) -> Row {
        Row::pack([Datum::Int(id), Datum::text(v)])
    }

    fn setup(queue_rows: usize) -> (Publisher, Reader, SinkHub, MemorySink) {
        let info = ViewInfo {
            name: "v".into(),
            columns: vec![
                ColumnInfo { name: "id".into(), ty: ScalarType::Int },
                ColumnInfo { name: "t".into(), ty: ScalarType::Text },
            ],
            key: vec![0],
            ..Default::default()
        };
        let (publisher, reader) = channel(vec![info]);
        let spec = ViewSpec {
            name: "v".into(),
            columns: vec![
                ColumnSpec { name: "id".into(), ty: ScalarType::Int, nullable: false },
                ColumnSpec { name: "t".into(), ty: ScalarType::Text, nullable: true },
            ],
            key: vec![0],
            ..Default::default()
        };
        let sink = MemorySink::default();
        let config = SinkConfig {
            name: "mem".into(),
            sink: Box::new(sink.clone()),
            views: vec![(0, spec)],
            queue_rows,
            reconcile_every: None,
            repair: false,
            reconcile_sample: None,
        };
        let hub = SinkHub::start(vec![config], reader.clone());
        (publisher, reader, hub, sink)
    }

    fn publish(hub: &SinkHub, publisher: &mut Publisher, at: u64, changes: Vec<(Row, Diff)>, first: bool) {
        publisher.apply(0, &changes);
        hub.publish(publisher, Position(at), &[], &[(0, 0, changes)], first);
    }

    fn wait_for(hub: &SinkHub, position: u64) -> SinkState {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let state = hub.state("mem").unwrap();
            if state.positions == vec![Some(Position(position))] || Instant::now() > until {
                return state;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The first publish syncs (a rebuild), the next ones are applied as
    /// batches, and the sink ends equal to the view; a reconcile finds a
    /// row edited behind denorm's back and repairs it.
    #[test]
    fn batches_follow_the_first_sync_and_reconcile_repairs() {
        let (mut publisher, _reader, hub, sink) = setup(1000);
        publish(&hub, &mut publisher, 1, vec![(row(1, "a"), 1), (row(2, "b"), 1)], true);
        publish(&hub, &mut publisher, 2, vec![(row(1, "a"), -1), (row(1, "x"), 1)], false);
        sink.fail_next.store(true, Ordering::SeqCst);
        publish(&hub, &mut publisher, 3, vec![(row(3, "c"), 1)], false);
        let state = wait_for(&hub, 3);
        assert_eq!(state.positions, vec![Some(Position(3))]);
        assert_eq!(state.rebuilds, 1, "{state:?}");
        let rows: Vec<Row> = sink.tables.lock().unwrap()[0].0.keys().cloned().collect();
        assert_eq!(rows, vec![row(1, "x"), row(2, "b"), row(3, "c")]);

        sink.tables.lock().unwrap()[0].0.insert(row(9, "edited"), 1);
        let report = hub.reconcile("mem", true).unwrap();
        assert_eq!(report[0].extra, 1);
        assert!(report[0].repaired);
        assert_eq!(hub.reconcile("mem", false).unwrap()[0].drift(), 0);
        assert!(hub.reconcile("other", false).is_err());
    }

    /// After an error, a target whose positions are neither the runner's
    /// last write nor the failed batch's (restored from an old backup
    /// meanwhile) is rebuilt from the published state, not patched.
    #[test]
    fn a_target_changed_behind_the_runner_is_rebuilt() {
        let (mut publisher, _reader, hub, sink) = setup(1000);
        publish(&hub, &mut publisher, 1, vec![(row(1, "a"), 1)], true);
        publish(&hub, &mut publisher, 2, vec![(row(2, "b"), 1)], false);
        wait_for(&hub, 2);
        sink.tables.lock().unwrap()[0] = (BTreeMap::new(), Some(Position(1)));
        sink.fail_next.store(true, Ordering::SeqCst);
        publish(&hub, &mut publisher, 3, vec![(row(3, "c"), 1)], false);
        let state = wait_for(&hub, 3);
        assert_eq!(state.rebuilds, 2, "{state:?}");
        let rows: Vec<Row> = sink.tables.lock().unwrap()[0].0.keys().cloned().collect();
        assert_eq!(rows, vec![row(1, "a"), row(2, "b"), row(3, "c")]);
    }

    /// A queue past its bound is dropped and the sink catches up from the
    /// published state: the engine never waits, nothing is lost.
    #[test]
    fn overflow_catches_up_from_the_published_state() {
        let (mut publisher, _reader, hub, sink) = setup(2);
        publish(&hub, &mut publisher, 1, vec![(row(1, "a"), 1)], true);
        for i in 2..200 {
            publish(&hub, &mut publisher, i, vec![(row(i as i64, "n"), 1), (row(i as i64 + 1000, "m"), 1)], false);
        }
        let state = wait_for(&hub, 199);
        assert_eq!(state.positions, vec![Some(Position(199))]);
        assert_eq!(sink.tables.lock().unwrap()[0].0.len(), 1 + 198 * 2);
    }

    #[test]
    fn reservoir_picks_distinct_items() {
        let mut picked = reservoir(0..1000, 10);
        picked.sort_unstable();
        picked.dedup();
        assert_eq!(picked.len(), 10);
        assert_eq!(reservoir(0..3, 10), vec![0, 1, 2]);
    }

    #[test]
    fn differences_count_keys() {
        let spec = ViewSpec {
            key: vec![0],
            columns: vec![ColumnSpec { name: "id".into(), ty: ScalarType::Int, nullable: false }; 2],
            ..Default::default()
        };
        let view = vec![(row(1, "a"), 1), (row(2, "b"), 1)];
        let sink = vec![(row(1, "z"), 1), (row(3, "c"), 1)];
        let (report, diff) = differences(&spec, &view, sink);
        assert_eq!((report.missing, report.extra, report.different), (1, 1, 1));
        assert_eq!(diff.len(), 4);
    }
}
