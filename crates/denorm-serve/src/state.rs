//! Published view state: what readers see, one batch boundary at a time.
//!
//! ```text
//!  engine thread                                   readers (HTTP handlers, any thread)
//!  ─────────────                                   ───────────────────────────────────
//!  Publisher::apply(view, changes) ─┐ working copy
//!  Publisher::fail / clear         ─┤ (private)
//!  Publisher::publish(position) ────┴─► ArcSwap<Published> ──load──► Arc<Published>
//!                                   └─► watch<Option<Position>> ───► Reader::wait_for_position
//!  Publisher::wanted() ◄──────────── positions readers wait for ◄──┘ (registered while waiting)
//! ```
//!
//! The publisher keeps a private working copy of every view. `apply` edits
//! only that copy; `publish` freezes it into a new immutable [`Published`]
//! and swaps it in atomically. A reader holds one `Arc<Published>` for a
//! whole request, so it never sees half a batch, and every view in it
//! reflects the same source position (except failed views, which keep the
//! position of their last good state, and scheduled views, which keep the
//! position of their last refresh: see [`Publisher::refreshed`]).
//!
//! Rows live in [`ViewRows`]: immutable sorted runs behind `Arc`s (an
//! apply adds a run of the keys it changed and merges runs of similar
//! size), so cloning one is O(runs), the working copy and the published
//! copies share every run, and publishing costs O(changes) amortized, not
//! O(view size).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use denorm_types::{Diff, Position, Row, RowPacker, ScalarType};
use tokio::sync::watch;

use crate::feed::{self, FeedInfo};
use crate::history::{Point, ViewHistory};
use crate::metrics::Metrics;
use crate::rows::SharedRows;
pub use crate::rows::{pack_key, ViewRows};

/// One view as the engine declares it to the serving layer.
///
/// `Default` gives an empty on-change view without budget or fallback, so
/// that callers can write `ViewInfo { name, columns, key, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ViewInfo {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Indexes of the key columns. A view keyed by all its columns in order
    /// is a multiset: equal rows are kept with their multiplicity.
    pub key: Vec<usize>,
    /// The staleness budget declared with `max_staleness`.
    pub max_staleness: Option<Duration>,
    /// Source tables the view reads; commits to them count toward its freshness.
    pub tables: Vec<String>,
    /// `WITH (refresh = '1h')`: the view is brought up to date only every
    /// period (see [`Publisher::refreshed`]); `None` (the default) refreshes
    /// it at every change.
    pub refresh: Option<Duration>,
    /// `WITH (on_stale = 'fallback')`: while the view is beyond its
    /// `max_staleness` budget (or failed, or starting), full-key lookups are
    /// answered by the source through the server's [`Fallback`](crate::Fallback).
    pub fallback: bool,
    /// `WITH (partition_by = …)`: a feed view. Its rows are the rows fanned
    /// out on write (whole, or references to content stored once), it has
    /// [`PublishedView::parts`] for the celebrities' content and edges and
    /// the references' content, and it is read one partition at a time (see
    /// [`crate::feed`]).
    pub feed: Option<FeedInfo>,
    /// The view's declared `ORDER BY`: the order of a read that gives no
    /// `order=` (then the key, as always).
    pub order: Vec<crate::query::OrderTerm>,
    /// Each column's collation (empty or `None`: bytewise): filters and
    /// `order=` compare such a column as the source does (see `collate.rs`).
    pub collations: Vec<Option<denorm_types::Collation>>,
}

/// One output column of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: ScalarType,
}

impl ViewInfo {
    /// Whether the view is keyed by all its columns in order: rows form a
    /// multiset and may repeat.
    pub fn is_multiset(&self) -> bool {
        self.key.len() == self.columns.len() && self.key.iter().enumerate().all(|(i, &k)| i == k)
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Whether a view's published rows can be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewStatus {
    /// Nothing published yet (the initial snapshot is under way).
    Starting,
    Ok,
    /// No longer maintained; its last good rows and position are kept.
    Failed(String),
}

/// What the source reports about itself (see [`Publisher::set_source`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceStatus {
    pub state: SourceState,
    /// The latest position the source has seen (committed, maybe not yet published).
    pub head: Option<Position>,
    /// Commit time (unix seconds) of the oldest change the source has seen
    /// that is not yet published; `None` when everything seen is published.
    pub oldest_pending_commit_at: Option<f64>,
    /// The last error the source met, kept after it recovered.
    pub last_error: Option<String>,
    /// Since when (unix seconds) the source has been unreachable, while
    /// denorm retries it: the views may miss every change since, so their
    /// freshness is at least `now` minus this.
    pub disconnected_since: Option<f64>,
}

/// How far a replication slot is behind its server (PostgreSQL), set by
/// [`Publisher::set_replication`]; `/health` shows it and reports a problem
/// when the slot retains more WAL than allowed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReplicationStatus {
    /// The server's WAL position minus the slot's confirmed flush position
    /// (what denorm acknowledged), in bytes.
    pub lag_bytes: u64,
    /// Seconds between now and the commit of the newest applied
    /// transaction while the stream still delivers transactions; 0 when
    /// the last read of the stream found nothing more (caught up).
    pub lag_seconds: f64,
    /// WAL the slot keeps on the server's disk (server position minus the
    /// slot's restart position), in bytes.
    pub retained_bytes: u64,
    /// The warning threshold for `retained_bytes` (`[source]
    /// max_retained_wal`).
    pub max_retained_bytes: u64,
    /// The slot's name, for messages.
    pub slot: String,
    /// The server's WAL position in the source's own notation (`0/16B3748`).
    pub head_text: Option<String>,
}

impl ReplicationStatus {
    /// The `/health` problem when the slot retains more WAL than allowed.
    pub fn problem(&self) -> Option<String> {
        (self.retained_bytes > self.max_retained_bytes).then(|| {
            format!(
                "replication slot {} retains {} of WAL on the source server, above max_retained_wal = {}: \
                 the server cannot free it until denorm consumes it (is denorm keeping up?); a slot nobody \
                 reads fills the disk: `denorm source uninstall` drops it",
                self.slot,
                human_bytes(self.retained_bytes),
                human_bytes(self.max_retained_bytes)
            )
        })
    }
}

/// Bytes with a binary unit, for messages: `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The source's life cycle.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SourceState {
    #[default]
    Starting,
    Snapshotting {
        rows_read: u64,
        /// An estimate when the source knows one.
        rows_total: Option<u64>,
    },
    Following,
    /// A transient error; the source retries with backoff.
    Retrying {
        error: String,
    },
}

impl SourceState {
    pub fn name(&self) -> &'static str {
        match self {
            SourceState::Starting => "starting",
            SourceState::Snapshotting { .. } => "snapshotting",
            SourceState::Following => "following",
            SourceState::Retrying { .. } => "retrying",
        }
    }

    /// Whether denorm is connected to the source (`denorm_source_connected`):
    /// not before the first connection, nor while it retries.
    pub fn connected(&self) -> bool {
        matches!(self, SourceState::Snapshotting { .. } | SourceState::Following)
    }
}

/// One view in a [`Published`] snapshot.
#[derive(Debug, Clone)]
pub struct PublishedView {
    pub info: Arc<ViewInfo>,
    pub rows: ViewRows,
    /// A feed view's other parts (empty for other views): the celebrities'
    /// content, the celebrity edges and the references' content (empty
    /// when the feed fans out whole rows), see [`crate::feed`].
    pub parts: Vec<ViewRows>,
    pub status: ViewStatus,
    /// The source position the rows reflect; `None` before the first publish.
    pub position: Option<Position>,
    /// The largest commit→visible latency (seconds) among the commits of
    /// the last published batch that touched the view's tables; 0 before any.
    pub last_freshness_seconds: f64,
    /// Output changes (rows inserted or retracted) applied since start.
    pub changes_total: u64,
    /// Source changes to the view's tables skipped as undecodable.
    pub undecodable_changes: u64,
    /// Rows in which the view differed from the source at its last check
    /// (`denorm reconcile` or the drift sampler); 0 when it agreed.
    pub drift_rows: u64,
    /// When (unix seconds) the rows were last brought up to date: the time
    /// of the last publish for an on-change view, of the last refresh for a
    /// scheduled one; `None` before the first publish.
    pub refreshed_at: Option<f64>,
}

impl PublishedView {
    /// The view's freshness at unix time `now`, in seconds.
    ///
    /// When the source has committed changes not yet visible here (its head
    /// is past the view's position) and knows the oldest pending commit's
    /// time, that is `now − oldest pending commit`: how far the view lags
    /// right now. Otherwise it is the last observed commit→visible latency
    /// ([`PublishedView::last_freshness_seconds`]).
    ///
    /// A scheduled view ([`ViewInfo::refresh`]) whose position the source
    /// has moved past shows the state of its last refresh, so it is at
    /// least `now − refreshed_at` old: its freshness is that (or the
    /// pending-commit figure above when larger).
    pub fn freshness_seconds(&self, source: &SourceStatus, now: f64) -> f64 {
        let behind = match (source.head, self.position) {
            (Some(head), Some(at)) => head > at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let usual = match source.oldest_pending_commit_at {
            Some(committed_at) if behind => (now - committed_at).max(0.0),
            _ => self.last_freshness_seconds,
        };
        let known = match self.refreshed_at {
            Some(refreshed_at) if behind && self.info.refresh.is_some() => usual.max(now - refreshed_at),
            _ => usual,
        };
        match source.disconnected_since {
            Some(since) => known.max(now - since),
            None => known,
        }
    }

    /// True when the view has no staleness budget or its freshness at `now` is within it.
    pub fn within_sla(&self, source: &SourceStatus, now: f64) -> bool {
        match self.info.max_staleness {
            None => true,
            Some(budget) => self.freshness_seconds(source, now) <= budget.as_secs_f64(),
        }
    }
}

/// An immutable snapshot of every view as of one batch boundary.
#[derive(Debug, Clone)]
pub struct Published {
    /// Position of the last published batch; `None` before the first.
    pub position: Option<Position>,
    pub views: Arc<[PublishedView]>,
    pub source: SourceStatus,
    /// Replication figures, for sources that replicate (PostgreSQL).
    pub replication: Option<ReplicationStatus>,
}

impl Published {
    pub fn view(&self, name: &str) -> Option<&PublishedView> {
        self.views.iter().find(|v| v.info.name == name)
    }
}

struct Shared {
    published: ArcSwap<Published>,
    metrics: Metrics,
    /// Per view, the latest freshness observations (a ring), for
    /// percentiles over a recent window; not part of the published data.
    recent: Mutex<Vec<Recent>>,
    /// Positions readers wait for (read-your-writes), with how many wait
    /// for each; see [`Publisher::wanted`].
    waiting: Mutex<BTreeMap<Position, usize>>,
    /// The dead-letter queue ([`crate::dlq`]).
    dlq: crate::dlq::DeadLetters,
}

/// One reader's wait for a position, registered in [`Shared::waiting`]
/// for as long as it lives (a request given up or cancelled drops it).
struct Waiting<'a> {
    shared: &'a Shared,
    position: Position,
}

impl<'a> Waiting<'a> {
    fn new(shared: &'a Shared, position: Position) -> Self {
        *shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).entry(position).or_default() += 1;
        Waiting { shared, position }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = waiting.get_mut(&self.position) {
            *n -= 1;
            if *n == 0 {
                waiting.remove(&self.position);
            }
        }
    }
}

/// How many freshness observations per view [`Reader::view_stats`] keeps.
const RECENT: usize = 4096;

#[derive(Debug, Default, Clone)]
struct Recent {
    samples: Vec<f64>,
    next: usize,
    /// The last hour, for the dashboard.
    history: ViewHistory,
    /// `changes_total` when the history last recorded it.
    recorded_changes: u64,
}

impl Recent {
    fn push(&mut self, value: f64) {
        if self.samples.len() < RECENT {
            self.samples.push(value);
        } else {
            self.samples[self.next] = value;
        }
        self.next = (self.next + 1) % RECENT;
    }
}

/// A view's figures for a report (the demo's table, `denorm bench`).
#[derive(Debug, Clone)]
pub struct ViewStats {
    pub name: String,
    pub rows: u64,
    pub position: Option<Position>,
    pub failed: bool,
    /// Output changes applied since start.
    pub changes_total: u64,
    /// p50 and p99 commit→visible latency (seconds) over the latest
    /// observations (up to 4096); NaN before any.
    pub freshness_recent: (f64, f64),
}

/// Creates the publishing side (for the engine thread) and the reading side
/// (for servers) of the published state of `views`.
pub fn channel(views: Vec<ViewInfo>) -> (Publisher, Reader) {
    let metrics = Metrics::new();
    let infos: Vec<Arc<ViewInfo>> = views.into_iter().map(Arc::new).collect();
    let published_views: Vec<PublishedView> = infos
        .iter()
        .map(|info| {
            metrics.declare_view(&info.name, info.max_staleness.is_some(), info.fallback, info.feed.is_some());
            PublishedView {
                info: info.clone(),
                rows: ViewRows::default(),
                parts: vec![ViewRows::default(); if info.feed.is_some() { feed::PARTS } else { 0 }],
                status: ViewStatus::Starting,
                position: None,
                last_freshness_seconds: 0.0,
                changes_total: 0,
                undecodable_changes: 0,
                drift_rows: 0,
                refreshed_at: None,
            }
        })
        .collect();
    let published = Published {
        position: None,
        views: published_views.clone().into(),
        source: SourceStatus::default(),
        replication: None,
    };
    let recent = Mutex::new(vec![Recent::default(); published_views.len()]);
    let shared = Arc::new(Shared {
        published: ArcSwap::from_pointee(published),
        dlq: crate::dlq::DeadLetters::new(metrics.clone()),
        metrics,
        recent,
        waiting: Mutex::new(BTreeMap::new()),
    });
    let (position_tx, position_rx) = watch::channel(None);
    let views = published_views.len();
    let publisher = Publisher {
        shared: shared.clone(),
        working: published_views,
        // Every view's first publish shows it (the initial snapshot is its first refresh).
        refresh: vec![true; views],
        gathered: vec![None; views],
        position_tx,
        packer: RowPacker::new(),
        feed_rows: (0..views).map(|_| SharedRows::default()).collect(),
        engine_wants: None,
    };
    (publisher, Reader { shared, position: position_rx })
}

/// The engine's handle: edits a private working copy, then publishes it.
pub struct Publisher {
    shared: Arc<Shared>,
    working: Vec<PublishedView>,
    /// Per view: whether the next publish shows its working copy. Always
    /// true for on-change views; for scheduled views set by
    /// [`Publisher::refreshed`] and [`Publisher::clear`].
    refresh: Vec<bool>,
    /// Per scheduled view: the oldest commit time of its tables published
    /// since its last refresh (the changes it does not show yet).
    gathered: Vec<Option<f64>>,
    position_tx: watch::Sender<Option<Position>>,
    packer: RowPacker,
    /// Per view: a feed's stored rows, each distinct one once (see
    /// [`crate::feed`]).
    feed_rows: Vec<SharedRows>,
    /// A position the engine itself waits for (see [`Publisher::want`]).
    engine_wants: Option<Position>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("views", &self.working.len()).finish_non_exhaustive()
    }
}

impl Publisher {
    /// Applies a view's consolidated output changes of the current batch to
    /// the working copy; readers see them at the next [`Publisher::publish`]
    /// (for a scheduled view: at the next publish after [`Publisher::refreshed`]).
    /// Changes to a failed view are ignored until it is [cleared](Publisher::clear).
    pub fn apply(&mut self, view: usize, changes: &[(Row, Diff)]) {
        self.apply_part(view, 0, changes);
    }

    /// [`Publisher::apply`] for one part of a view: part 0 is the view's
    /// rows; a feed view also has [`feed::CELEBRITY_CONTENT`],
    /// [`feed::CELEBRITY_EDGES`] and, fanning out references,
    /// [`feed::CONTENT`]. Changes to a feed's rows (part 0) are the
    /// rows fanned out on write, counted in `denorm_fanout_rows_written_total`.
    pub fn apply_part(&mut self, view: usize, part: usize, changes: &[(Row, Diff)]) {
        let v = &mut self.working[view];
        if matches!(v.status, ViewStatus::Failed(_)) {
            tracing::debug!(view = %v.info.name, "changes to a failed view ignored");
            return;
        }
        let written = changes.iter().map(|(_, d)| d.unsigned_abs()).sum::<u64>();
        match (&v.info.feed, part) {
            (None, 0) => {
                let unique = !v.info.is_multiset();
                if let Err(key) = v.rows.apply_checked(&v.info.key, unique, changes, &mut self.packer) {
                    let reason = format!("key violation: two rows have key {key:?}");
                    self.fail(view, reason);
                    return;
                }
            }
            (Some(feed), 0) => {
                let shared = &mut self.feed_rows[view];
                v.rows.apply_feed(feed, changes, shared);
                self.shared.metrics.fanout_rows_written(&v.info.name, written);
            }
            (Some(feed), feed::CELEBRITY_CONTENT) => v.parts[0].apply_keyed(changes, |row| feed.row_key(row)),
            (Some(_), feed::CELEBRITY_EDGES) => v.parts[1].apply(&[0, 1], changes, &mut self.packer),
            (Some(FeedInfo { reference: Some(key), .. }), feed::CONTENT) => {
                v.parts[2].apply(key, changes, &mut self.packer)
            }
            _ => {
                tracing::error!(view = %v.info.name, part, "changes to a part the view does not have (bug); ignored");
                return;
            }
        }
        v.changes_total += written;
    }

    /// Loads a view's rows read back from a checkpoint (in
    /// [`ViewRows::iter`]'s order) into its empty working copy in one run
    /// (see [`ViewRows::load_sorted`]); rows in another order, or a view
    /// holding rows, take [`Publisher::apply`]'s path.
    pub fn load(&mut self, view: usize, rows: Vec<(Row, Diff)>) {
        let v = &mut self.working[view];
        if v.info.feed.is_some() || matches!(v.status, ViewStatus::Failed(_)) {
            self.apply(view, &rows);
            return;
        }
        let unique = !v.info.is_multiset();
        let written = rows.iter().map(|(_, d)| d.unsigned_abs()).sum::<u64>();
        match v.rows.load_sorted(&v.info.key, unique, rows, &mut self.packer) {
            Ok(()) => v.changes_total += written,
            Err(rows) => self.apply(view, &rows),
        }
    }

    /// Records `n` source changes to `table` that could not be decoded: every
    /// view reading the table reports them (visible at the next publish) and
    /// the metric counts them.
    pub fn undecodable(&mut self, table: &str, n: u64) {
        self.shared.metrics.undecodable(table, n);
        for v in self.working.iter_mut().filter(|v| v.info.tables.iter().any(|t| t == table)) {
            v.undecodable_changes += n;
        }
    }

    /// Marks a view failed. It keeps its last published rows and position
    /// (changes applied since then are dropped); the failure is visible at
    /// the next publish.
    pub fn fail(&mut self, view: usize, reason: String) {
        tracing::warn!(view = %self.working[view].info.name, %reason, "view failed");
        let published = self.shared.published.load();
        let last = &published.views[view];
        let v = &mut self.working[view];
        v.rows = last.rows.clone();
        v.parts = last.parts.clone();
        v.position = last.position;
        v.status = ViewStatus::Failed(reason);
    }

    /// Empties a view before it is snapshotted again; a failed view becomes
    /// maintained again. Readers keep seeing the old rows until the next
    /// publish, which shows the view again even if it is scheduled (a
    /// snapshot is a refresh).
    pub fn clear(&mut self, view: usize) {
        let v = &mut self.working[view];
        if let ViewStatus::Failed(reason) = &v.status {
            tracing::info!(view = %v.info.name, was = %reason, "failed view heals: maintained again");
            self.shared.metrics.view_healed(&v.info.name);
        }
        v.rows = ViewRows::default();
        v.parts.iter_mut().for_each(|p| *p = ViewRows::default());
        self.feed_rows[view] = SharedRows::default();
        v.status = ViewStatus::Starting;
        self.refresh[view] = true;
    }

    /// Marks a scheduled view ([`ViewInfo::refresh`]) as brought up to date
    /// in the current batch: the next [`Publisher::publish`] shows its
    /// working copy (every change [applied](Publisher::apply) to it so far)
    /// at that publish's position and time. Without this, a publish leaves
    /// a scheduled view's rows, position, status and `refreshed_at` as they
    /// were (changes applied meanwhile wait in the working copy), while
    /// on-change views advance. A failure ([`Publisher::fail`]) is shown at
    /// the next publish either way. No effect on on-change views, which are
    /// refreshed at every publish.
    pub fn refreshed(&mut self, view: usize) {
        self.refresh[view] = true;
    }

    /// Publishes the working copy as the state at `position`. `commits` are
    /// the distinct `(table, committed_at unix seconds)` pairs of the batch.
    pub fn publish(&mut self, position: Position, commits: &[(String, f64)]) {
        self.publish_at(position, commits, unix_now());
    }

    /// [`Publisher::publish`] with the current time given (unix seconds),
    /// for tests and replays.
    pub fn publish_at(&mut self, position: Position, commits: &[(String, f64)], now: f64) {
        let metrics = &self.shared.metrics;
        let previous = self.shared.published.load_full();
        let mut recent = self.shared.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut views = Vec::with_capacity(self.working.len());
        for (i, (v, recent)) in self.working.iter_mut().zip(recent.iter_mut()).enumerate() {
            let info = v.info.clone();
            let relevant = || commits.iter().filter(|(t, _)| info.tables.iter().any(|vt| vt == t)).map(|(_, at)| *at);
            let failed = matches!(v.status, ViewStatus::Failed(_));
            let shown = failed || v.info.refresh.is_none() || self.refresh[i];
            if !shown {
                // A scheduled view between refreshes: readers keep its last
                // refreshed state; the commits it misses are remembered for
                // the freshness observed at its next refresh.
                let oldest = relevant().fold(self.gathered[i], |o, at| Some(o.map_or(at, |o: f64| o.min(at))));
                self.gathered[i] = oldest;
                let last = &previous.views[i];
                views.push(PublishedView { rows: last.rows.clone(), parts: last.parts.clone(), ..v.clone() });
                continue;
            }
            self.refresh[i] = false;
            if !failed {
                v.status = ViewStatus::Ok;
                v.position = Some(position);
                v.refreshed_at = Some(now);
                let mut worst: Option<f64> = None;
                let mut observed = Vec::new();
                for committed_at in relevant().chain(self.gathered[i].take()) {
                    let latency = (now - committed_at).max(0.0);
                    metrics.observe_freshness(&v.info.name, latency);
                    recent.push(latency);
                    observed.push(latency);
                    worst = Some(worst.map_or(latency, |w: f64| w.max(latency)));
                }
                let changes = v.changes_total.saturating_sub(recent.recorded_changes);
                recent.recorded_changes = v.changes_total;
                recent.history.record(now, observed, changes);
                if let Some(w) = worst {
                    v.last_freshness_seconds = w;
                }
            }
            views.push(v.clone());
        }
        drop(recent);
        let source = previous.source.clone();
        // The source is at least at the position being published (its
        // status is usually updated just after a publish).
        let at_publish = SourceStatus { head: source.head.max(Some(position)), ..source.clone() };
        for v in &views {
            let failed = matches!(v.status, ViewStatus::Failed(_));
            metrics.set_view(&v.info.name, v.rows.len(), v.position.map(|p| p.0), failed);
            let within = v.within_sla(&at_publish, now);
            metrics.set_view_sla(&v.info.name, within, v.info.max_staleness.is_some(), v.refreshed_at);
        }
        let replication = previous.replication.clone();
        self.store(Published { position: Some(position), views: views.into(), source, replication });
        self.position_tx.send_replace(Some(position));
    }

    /// Makes [`Publisher::wanted`] ask for `position` too (`None`: no
    /// more), as a waiting reader does: the engine's own wait for the
    /// source to report a position (reconcile on PostgreSQL).
    pub fn want(&mut self, position: Option<Position>) {
        self.engine_wants = position;
    }

    /// What readers see now (the last publish).
    pub fn published(&self) -> Arc<Published> {
        self.shared.published.load_full()
    }

    /// Changes the set of views (a live reload): the views become `views`,
    /// in that order; `kept[i] = Some(old)` keeps the old view at slot `old`
    /// as it is (rows, status, position, history: readers see no change),
    /// `None` starts view `i` empty (`Starting` until its first publish).
    /// Views not kept are gone. Readers see the new set at once.
    pub fn reconfigure(&mut self, views: Vec<ViewInfo>, kept: &[Option<usize>]) {
        let current = self.shared.published.load_full();
        let mut recent = self.shared.recent.lock().unwrap_or_else(PoisonError::into_inner);
        let mut working = Vec::with_capacity(views.len());
        let (mut refresh, mut gathered, mut feed_rows, mut recents, mut published) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (info, old) in views.into_iter().zip(kept.iter().copied().chain(std::iter::repeat(None))) {
            match old.filter(|&o| o < self.working.len()) {
                Some(o) => {
                    working.push(self.working[o].clone());
                    refresh.push(self.refresh[o]);
                    gathered.push(self.gathered[o]);
                    feed_rows.push(std::mem::take(&mut self.feed_rows[o]));
                    recents.push(recent.get(o).cloned().unwrap_or_default());
                    published.push(current.views[o].clone());
                }
                None => {
                    let info = Arc::new(info);
                    self.shared.metrics.declare_view(
                        &info.name,
                        info.max_staleness.is_some(),
                        info.fallback,
                        info.feed.is_some(),
                    );
                    let view = PublishedView {
                        parts: vec![ViewRows::default(); if info.feed.is_some() { feed::PARTS } else { 0 }],
                        info,
                        rows: ViewRows::default(),
                        status: ViewStatus::Starting,
                        position: None,
                        last_freshness_seconds: 0.0,
                        changes_total: 0,
                        undecodable_changes: 0,
                        drift_rows: 0,
                        refreshed_at: None,
                    };
                    working.push(view.clone());
                    refresh.push(true);
                    gathered.push(None);
                    feed_rows.push(SharedRows::default());
                    recents.push(Recent::default());
                    published.push(view);
                }
            }
        }
        *recent = recents;
        drop(recent);
        self.working = working;
        self.refresh = refresh;
        self.gathered = gathered;
        self.feed_rows = feed_rows;
        self.store(Published { views: published.into(), ..(*current).clone() });
    }

    /// Records the result of checking view `view` against the source:
    /// `checked` rows compared, `drifted` different (`/health` is degraded
    /// while any view has drifted). Readers see it at once.
    pub fn set_drift(&mut self, view: usize, checked: u64, drifted: u64) {
        self.shared.metrics.reconciled(&self.working[view].info.name, checked, drifted);
        self.working[view].drift_rows = drifted;
        let current = self.shared.published.load_full();
        let mut views: Vec<PublishedView> = current.views.to_vec();
        if let Some(v) = views.get_mut(view) {
            v.drift_rows = drifted;
        }
        self.store(Published { views: views.into(), ..(*current).clone() });
    }

    /// Records the source's status; readers see it at once (it does not
    /// touch view state, so no batch boundary is needed).
    /// While the source is unreachable, each view's `denorm_view_within_sla`
    /// follows its staleness budget here (no publish happens meanwhile).
    pub fn set_source(&mut self, status: SourceStatus) {
        let current = self.shared.published.load_full();
        if status.disconnected_since.is_some() || current.source.disconnected_since.is_some() {
            let now = unix_now();
            for v in current.views.iter().filter(|v| v.position.is_some()) {
                self.shared.metrics.set_view_within_sla(&v.info.name, v.within_sla(&status, now));
            }
        }
        self.store(Published {
            position: current.position,
            views: current.views.clone(),
            source: status,
            replication: current.replication.clone(),
        });
    }

    /// Records the replication slot's lag (PostgreSQL); readers see it at
    /// once on `/health` and `/metrics`.
    pub fn set_replication(&mut self, status: ReplicationStatus) {
        self.shared.metrics.set_replication(status.lag_bytes, status.lag_seconds, status.retained_bytes);
        let current = self.shared.published.load_full();
        self.store(Published { replication: Some(status), ..(*current).clone() });
    }

    fn store(&self, published: Published) {
        self.shared.metrics.set_source(published.source.head.map(|p| p.0), published.position.map(|p| p.0));
        self.shared.metrics.set_source_connected(published.source.state.connected());
        self.shared.published.store(Arc::new(published));
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The dead-letter queue ([`crate::dlq`]).
    pub fn dead_letters(&self) -> &crate::dlq::DeadLetters {
        &self.shared.dlq
    }

    /// The furthest position a reader waits for (read-your-writes), when it
    /// is past the published position: a source that can learn how far it
    /// is complete without new changes (PostgreSQL: a keepalive) should ask
    /// now rather than let the reader wait for the next change.
    pub fn wanted(&self) -> Option<Position> {
        let readers = self.shared.waiting.lock().unwrap_or_else(PoisonError::into_inner).keys().next_back().copied();
        let furthest = readers.max(self.engine_wants)?;
        let published = *self.position_tx.borrow();
        published.is_none_or(|p| p < furthest).then_some(furthest)
    }
}

/// A cheap, cloneable, thread-safe handle on the published state.
#[derive(Clone)]
pub struct Reader {
    shared: Arc<Shared>,
    position: watch::Receiver<Option<Position>>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("position", &*self.position.borrow()).finish_non_exhaustive()
    }
}

/// Why [`Reader::wait_for_position`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("position {wanted} was not published within the timeout (published: {published:?})")]
    Timeout { wanted: Position, published: Option<Position> },
    #[error("the publisher stopped before position {wanted} was published (published: {published:?})")]
    Closed { wanted: Position, published: Option<Position> },
}

impl Reader {
    /// The current published state; hold it for one whole request.
    pub fn snapshot(&self) -> Arc<Published> {
        self.shared.published.load_full()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The dead-letter queue ([`crate::dlq`]).
    pub fn dead_letters(&self) -> &crate::dlq::DeadLetters {
        &self.shared.dlq
    }

    /// Every view's figures: rows, position, changes applied, and
    /// freshness percentiles over its latest observations.
    pub fn view_stats(&self) -> Vec<ViewStats> {
        let published = self.snapshot();
        let recent = self.shared.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        published
            .views
            .iter()
            .zip(recent)
            .map(|(v, mut recent)| ViewStats {
                name: v.info.name.clone(),
                rows: v.rows.len(),
                position: v.position,
                failed: matches!(v.status, ViewStatus::Failed(_)),
                changes_total: v.changes_total,
                freshness_recent: percentiles(&mut recent.samples),
            })
            .collect()
    }

    /// Every view's last hour (see [`crate::history`]), in view order.
    pub fn history(&self, now: f64) -> Vec<Vec<Point>> {
        let recent = self.shared.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.iter().map(|r| r.history.series(now)).collect()
    }

    /// Waits until the published position is at least `position`, then
    /// returns a snapshot at or past it (read-your-writes).
    pub async fn wait_for_position(&self, position: Position, timeout: Duration) -> Result<Arc<Published>, WaitError> {
        let mut rx = self.position.clone();
        let reached = |p: &Option<Position>| p.is_some_and(|p| p >= position);
        let _waiting = (!reached(&self.position.borrow())).then(|| Waiting::new(&self.shared, position));
        let waited = tokio::time::timeout(timeout, rx.wait_for(reached)).await;
        let published = *self.position.borrow();
        match waited {
            // The state is stored before the position is announced, so this
            // snapshot is at or past the position waited for.
            Ok(Ok(_)) => Ok(self.snapshot()),
            Ok(Err(_)) => Err(WaitError::Closed { wanted: position, published }),
            Err(_) => Err(WaitError::Timeout { wanted: position, published }),
        }
    }
}

impl Reader {
    /// Like [`Reader::wait_for_position`], but waits until the view at
    /// index `view` itself reflects at least `position`: for a scheduled
    /// view ([`ViewInfo::refresh`]) that is its next refresh at or past the
    /// position, not merely the next publish. A failed view never gets
    /// there, so the wait ends with the timeout. The error reports the
    /// view's position.
    pub async fn wait_for_view(
        &self,
        view: usize,
        position: Position,
        timeout: Duration,
    ) -> Result<Arc<Published>, WaitError> {
        let mut rx = self.position.clone();
        let view_position = || self.shared.published.load().views.get(view).and_then(|v| v.position);
        // The state is stored before the position is announced, so looking
        // at the stored state on every announcement misses nothing.
        let _waiting = view_position().is_none_or(|p| p < position).then(|| Waiting::new(&self.shared, position));
        let waited =
            tokio::time::timeout(timeout, rx.wait_for(|_| view_position().is_some_and(|p| p >= position))).await;
        match waited {
            Ok(Ok(_)) => Ok(self.snapshot()),
            Ok(Err(_)) => Err(WaitError::Closed { wanted: position, published: view_position() }),
            Err(_) => Err(WaitError::Timeout { wanted: position, published: view_position() }),
        }
    }
}

/// p50 and p99 of `samples` (reordered); NaN when empty.
pub fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.50), at(0.99))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The current unix time in seconds, the clock HTTP handlers read.
pub(crate) fn now() -> f64 {
    unix_now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;

    fn info(name: &str, key: Vec<usize>, tables: &[&str], budget: Option<f64>) -> ViewInfo {
        ViewInfo {
            name: name.into(),
            columns: vec![
                ColumnInfo { name: "id".into(), ty: ScalarType::Int },
                ColumnInfo { name: "v".into(), ty: ScalarType::Text },
            ],
            key,
            max_staleness: budget.map(Duration::from_secs_f64),
            tables: tables.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        }
    }

    fn row(id: i64, v: &str) -> Row {
        Row::pack([Datum::Int(id), Datum::text(v)])
    }

    /// The published state enforces a keyed view's key (the engine keeps no
    /// second copy of view rows to check it): two rows under one key fail
    /// the view with its last good rows kept; a row moving within a batch,
    /// and copies in a multiset view, are fine.
    #[test]
    fn a_second_row_under_a_key_fails_a_keyed_view() {
        let (mut publisher, reader) =
            channel(vec![info("keyed", vec![0], &[], None), info("bag", vec![0, 1], &[], None)]);
        publisher.apply(0, &[(row(1, "a"), 1)]);
        publisher.apply(1, &[(row(1, "a"), 2)]);
        publisher.publish(Position(1), &[]);
        publisher.apply(0, &[(row(1, "a"), -1), (row(1, "b"), 1)]);
        publisher.publish(Position(2), &[]);
        assert_eq!(reader.snapshot().views[0].status, ViewStatus::Ok);
        publisher.apply(0, &[(row(1, "c"), 1)]);
        publisher.publish(Position(3), &[]);
        let published = reader.snapshot();
        assert!(matches!(&published.views[0].status, ViewStatus::Failed(r) if r.starts_with("key violation")));
        assert_eq!(published.views[0].rows.len(), 1, "the last good rows stay");
        assert_eq!(published.views[1].status, ViewStatus::Ok);
        assert_eq!(published.views[1].rows.len(), 2);
    }

    fn rows_of(view: &PublishedView) -> Vec<(Row, Diff)> {
        let mut rows: Vec<_> = view.rows.iter().map(|(r, d)| (r.clone(), d)).collect();
        rows.sort();
        rows
    }

    #[test]
    fn handles_cross_threads() {
        fn reader<T: Clone + Send + Sync + 'static>() {}
        fn publisher<T: Send + 'static>() {}
        reader::<Reader>();
        reader::<Metrics>();
        publisher::<Publisher>();
    }

    #[test]
    fn readers_see_state_as_of_one_publish() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], None), info("b", vec![0, 1], &["t"], None)]);
        let before = r.snapshot();
        p.apply(0, &[(row(1, "x"), 1)]);
        p.apply(1, &[(row(1, "x"), 2)]);
        // Applied but not published: a reader sees nothing of the batch.
        assert!(r.snapshot().views.iter().all(|v| v.rows.is_empty() && v.status == ViewStatus::Starting));
        p.publish_at(Position(5), &[], 100.0);
        let first = r.snapshot();
        p.apply(0, &[(row(1, "x"), -1), (row(1, "y"), 1)]);
        p.apply(1, &[(row(1, "x"), -1)]);
        // A snapshot taken before the next publish keeps the old state.
        assert_eq!(rows_of(&r.snapshot().views[0]), vec![(row(1, "x"), 1)]);
        p.publish_at(Position(6), &[], 100.0);
        let second = r.snapshot();

        assert!(before.views.iter().all(|v| v.rows.is_empty()) && before.position.is_none());
        assert_eq!(first.position, Some(Position(5)));
        assert_eq!(rows_of(&first.views[0]), vec![(row(1, "x"), 1)]);
        assert_eq!(rows_of(&first.views[1]), vec![(row(1, "x"), 2)]);
        assert_eq!(first.views[1].rows.len(), 2);
        assert_eq!(second.position, Some(Position(6)));
        assert_eq!(rows_of(&second.views[0]), vec![(row(1, "y"), 1)]);
        assert_eq!(rows_of(&second.views[1]), vec![(row(1, "x"), 1)]);
        assert!(second.views.iter().all(|v| v.position == Some(Position(6)) && v.status == ViewStatus::Ok));
    }

    #[test]
    fn a_row_moving_under_its_key_within_a_batch_is_no_conflict() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], None)]);
        p.apply(0, &[(row(1, "x"), 1)]);
        p.publish_at(Position(1), &[], 0.0);
        // Insertion listed first: retractions must still go first.
        p.apply(0, &[(row(1, "y"), 1), (row(1, "x"), -1)]);
        p.publish_at(Position(2), &[], 0.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].rows.get(&pack_key(&[Datum::Int(1)])), &[(row(1, "y"), 1)]);
        assert_eq!(s.views[0].rows.len(), 1);
    }

    #[test]
    fn keys_fold_sql_equal_numbers() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], None)]);
        p.apply(0, &[(Row::pack([Datum::Float(3.0), Datum::text("x")]), 1)]);
        p.publish_at(Position(1), &[], 0.0);
        assert_eq!(r.snapshot().views[0].rows.get(&pack_key(&[Datum::Int(3)])).len(), 1);
    }

    #[test]
    fn failed_view_keeps_last_published_rows_and_position() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], None), info("b", vec![0], &["t"], None)]);
        p.apply(0, &[(row(1, "x"), 1)]);
        p.publish_at(Position(1), &[], 0.0);
        p.apply(0, &[(row(2, "x"), 1)]);
        p.apply(1, &[(row(2, "x"), 1)]);
        p.fail(0, "key violation".into());
        p.apply(0, &[(row(3, "x"), 1)]);
        p.publish_at(Position(2), &[], 0.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].status, ViewStatus::Failed("key violation".into()));
        assert_eq!(s.views[0].position, Some(Position(1)));
        assert_eq!(rows_of(&s.views[0]), vec![(row(1, "x"), 1)]);
        assert_eq!(s.views[1].position, Some(Position(2)));
        // A re-snapshot brings it back.
        p.clear(0);
        p.apply(0, &[(row(9, "z"), 1)]);
        assert_eq!(r.snapshot().views[0].rows.len(), 1, "clear is invisible until publish");
        p.publish_at(Position(3), &[], 0.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].status, ViewStatus::Ok);
        assert_eq!(rows_of(&s.views[0]), vec![(row(9, "z"), 1)]);
    }

    #[test]
    fn freshness_and_sla_with_an_injected_clock() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], Some(1.0)), info("b", vec![0], &["u"], None)]);
        let s = r.snapshot();
        assert_eq!(s.views[0].freshness_seconds(&s.source, 50.0), 0.0, "0 before any change");
        // Two commits of t in one batch: the worst latency is kept.
        p.publish_at(Position(10), &[("t".into(), 99.5), ("t".into(), 99.8)], 100.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].last_freshness_seconds, 0.5);
        assert_eq!(s.views[1].last_freshness_seconds, 0.0, "b does not read t");
        assert_eq!(s.views[0].freshness_seconds(&s.source, 1000.0), 0.5, "nothing pending: last latency");
        assert!(s.views[0].within_sla(&s.source, 1000.0));

        let pending = |head: u64| SourceStatus {
            state: SourceState::Following,
            head: Some(Position(head)),
            oldest_pending_commit_at: Some(200.0),
            last_error: None,
            disconnected_since: None,
        };
        p.set_source(pending(12));
        let s = r.snapshot();
        assert_eq!(s.views[0].freshness_seconds(&s.source, 200.75), 0.75);
        assert!(s.views[0].within_sla(&s.source, 201.0), "freshness == budget is within");
        assert!(!s.views[0].within_sla(&s.source, 201.5));
        assert!(s.views[1].within_sla(&s.source, 10_000.0), "no budget: always within");
        // Head not past the view: the pending time is not about this view.
        p.set_source(pending(10));
        let s = r.snapshot();
        assert_eq!(s.views[0].freshness_seconds(&s.source, 500.0), 0.5);
    }

    fn scheduled(name: &str, tables: &[&str], budget: Option<f64>) -> ViewInfo {
        ViewInfo { refresh: Some(Duration::from_secs(3600)), ..info(name, vec![0], tables, budget) }
    }

    fn following(head: u64, oldest_pending_commit_at: Option<f64>) -> SourceStatus {
        SourceStatus {
            state: SourceState::Following,
            head: Some(Position(head)),
            oldest_pending_commit_at,
            last_error: None,
            disconnected_since: None,
        }
    }

    #[test]
    fn a_scheduled_view_changes_only_when_refreshed() {
        let (mut p, r) = channel(vec![info("live", vec![0], &["t"], None), scheduled("hourly", &["t"], Some(60.0))]);
        // The first publish shows every view: the snapshot is a refresh.
        p.apply(0, &[(row(1, "a"), 1)]);
        p.apply(1, &[(row(1, "a"), 1)]);
        p.publish_at(Position(1), &[], 100.0);
        let s = r.snapshot();
        for v in s.views.iter() {
            assert_eq!(
                (v.position, v.refreshed_at, v.rows.len()),
                (Some(Position(1)), Some(100.0), 1),
                "{}",
                v.info.name
            );
            assert_eq!(v.status, ViewStatus::Ok);
        }

        // Changes applied to the scheduled view without `refreshed` wait in
        // the working copy; the on-change view advances.
        p.apply(0, &[(row(2, "b"), 1)]);
        p.apply(1, &[(row(2, "b"), 1)]);
        p.publish_at(Position(2), &[("t".into(), 150.0)], 151.0);
        p.publish_at(Position(3), &[("t".into(), 160.0), ("u".into(), 120.0)], 161.0);
        p.set_source(following(3, None));
        let s = r.snapshot();
        let (live, hourly) = (&s.views[0], &s.views[1]);
        assert_eq!((live.position, live.refreshed_at, live.rows.len()), (Some(Position(3)), Some(161.0), 2));
        assert_eq!((hourly.position, hourly.refreshed_at, hourly.rows.len()), (Some(Position(1)), Some(100.0), 1));
        assert_eq!(rows_of(hourly), vec![(row(1, "a"), 1)]);
        assert_eq!(s.position, Some(Position(3)));

        // The source moved past it: it is as old as its last refresh.
        assert_eq!(live.freshness_seconds(&s.source, 200.0), 1.0);
        assert_eq!(hourly.freshness_seconds(&s.source, 150.0), 50.0);
        assert!(hourly.within_sla(&s.source, 160.0), "60 s old, budget 60 s");
        assert_eq!(hourly.freshness_seconds(&s.source, 200.0), 100.0);
        assert!(!hourly.within_sla(&s.source, 200.0));
        // An unpublished commit older than the refresh counts when larger.
        let pending = following(4, Some(90.0));
        assert_eq!(hourly.freshness_seconds(&pending, 200.0), 110.0);
        let metrics = r.metrics().render();
        assert!(metrics.contains("denorm_view_refreshed_at{view=\"hourly\"} 100.0"), "{metrics}");
        assert!(metrics.contains("denorm_view_refreshed_at{view=\"live\"} 161.0"), "{metrics}");
        assert!(metrics.contains("denorm_view_position{view=\"hourly\"} 1"), "{metrics}");
        // Publish 3 at 161 s: 61 s since the refresh, beyond 60 s.
        assert!(metrics.contains("denorm_staleness_budget_exceeded_total{view=\"hourly\"} 1"), "{metrics}");
        assert!(metrics.contains("denorm_view_within_sla{view=\"hourly\"} 0"), "{metrics}");
        assert!(metrics.contains("denorm_view_within_sla{view=\"live\"} 1"), "{metrics}");

        // The refresh shows everything applied so far at the publish's
        // position; its latency is the oldest commit it gathered.
        p.refreshed(1);
        p.publish_at(Position(3), &[], 3700.0);
        p.set_source(following(3, None));
        let s = r.snapshot();
        let hourly = &s.views[1];
        assert_eq!((hourly.position, hourly.refreshed_at, hourly.rows.len()), (Some(Position(3)), Some(3700.0), 2));
        assert_eq!(hourly.last_freshness_seconds, 3550.0);
        assert_eq!(hourly.freshness_seconds(&s.source, 3800.0), 3550.0, "up to date: the usual figure");
        assert_eq!(s.views[0].position, Some(Position(3)));
        assert!(r.metrics().render().contains("denorm_view_refreshed_at{view=\"hourly\"} 3700.0"));

        // The mark lasts one publish.
        p.apply(1, &[(row(3, "c"), 1)]);
        p.publish_at(Position(4), &[("t".into(), 3800.0)], 3801.0);
        assert_eq!(r.snapshot().views[1].position, Some(Position(3)));
        assert_eq!(r.snapshot().views[1].rows.len(), 2);
    }

    #[test]
    fn a_scheduled_view_shows_failures_and_snapshots_without_a_refresh_mark() {
        let (mut p, r) = channel(vec![scheduled("hourly", &["t"], None)]);
        p.apply(0, &[(row(1, "a"), 1)]);
        p.publish_at(Position(1), &[], 10.0);
        p.apply(0, &[(row(2, "b"), 1)]);
        p.fail(0, "integer overflow".into());
        p.publish_at(Position(2), &[], 20.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].status, ViewStatus::Failed("integer overflow".into()));
        assert_eq!(
            (s.views[0].position, s.views[0].refreshed_at, s.views[0].rows.len()),
            (Some(Position(1)), Some(10.0), 1)
        );
        // A re-snapshot is a refresh.
        p.clear(0);
        p.apply(0, &[(row(7, "z"), 1)]);
        p.publish_at(Position(5), &[], 30.0);
        let s = r.snapshot();
        assert_eq!(s.views[0].status, ViewStatus::Ok);
        assert_eq!((s.views[0].position, s.views[0].refreshed_at), (Some(Position(5)), Some(30.0)));
        assert_eq!(rows_of(&s.views[0]), vec![(row(7, "z"), 1)]);
    }

    #[tokio::test]
    async fn wait_for_view_waits_for_a_scheduled_view_to_be_refreshed() {
        let (mut p, r) = channel(vec![info("live", vec![0], &["t"], None), scheduled("hourly", &["t"], None)]);
        p.publish_at(Position(1), &[], 0.0);
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_for_view(1, Position(2), Duration::from_secs(3600)).await })
        };
        tokio::task::yield_now().await;
        p.publish_at(Position(2), &[], 0.0);
        p.publish_at(Position(3), &[], 0.0);
        tokio::task::yield_now().await;
        assert!(r.wait_for_view(0, Position(3), Duration::ZERO).await.is_ok(), "on-change views move with publishes");
        assert_eq!(
            r.wait_for_view(1, Position(2), Duration::ZERO).await.unwrap_err(),
            WaitError::Timeout { wanted: Position(2), published: Some(Position(1)) }
        );
        assert!(!waiter.is_finished());
        p.refreshed(1);
        p.publish_at(Position(4), &[], 0.0);
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got.views[1].position, Some(Position(4)));
    }

    #[tokio::test]
    async fn wait_for_position_returns_once_published() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], None)]);
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait_for_position(Position(7), Duration::from_secs(3600)).await })
        };
        p.publish_at(Position(3), &[], 0.0);
        p.publish_at(Position(8), &[], 0.0);
        let got = waiter.await.unwrap().unwrap();
        assert!(got.position >= Some(Position(7)));
        // Already reached: returns at once even with a zero timeout.
        assert!(r.wait_for_position(Position(8), Duration::ZERO).await.is_ok());
        // Not reached within a zero timeout.
        assert_eq!(
            r.wait_for_position(Position(9), Duration::ZERO).await.unwrap_err(),
            WaitError::Timeout { wanted: Position(9), published: Some(Position(8)) }
        );
        drop(p);
        assert!(matches!(
            r.wait_for_position(Position(9), Duration::from_secs(3600)).await,
            Err(WaitError::Closed { .. })
        ));
    }

    /// While the source is unreachable, a view's freshness grows from the
    /// moment it was lost, so a budgeted view leaves its SLA (in `/views` and
    /// in `denorm_view_within_sla`, with no publish); `denorm_source_connected`
    /// follows the state.
    #[test]
    fn a_disconnected_source_makes_views_stale_and_is_shown() {
        let (mut p, r) = channel(vec![info("a", vec![0], &["t"], Some(1.0)), info("b", vec![0], &["t"], None)]);
        let connected = |r: &Reader| {
            r.metrics().render().lines().find(|l| l.starts_with("denorm_source_connected ")).map(str::to_owned)
        };
        assert_eq!(connected(&r).as_deref(), Some("denorm_source_connected 0"), "0 before connecting");
        p.publish_at(Position(10), &[("t".into(), 99.9)], 100.0);
        p.set_source(SourceStatus { state: SourceState::Following, head: Some(Position(10)), ..Default::default() });
        assert_eq!(connected(&r).as_deref(), Some("denorm_source_connected 1"));
        let since = unix_now() - 5.0;
        let down = SourceStatus {
            state: SourceState::Retrying { error: "connection refused".into() },
            head: Some(Position(10)),
            disconnected_since: Some(since),
            ..Default::default()
        };
        p.set_source(down.clone());
        let s = r.snapshot();
        assert!((s.views[0].freshness_seconds(&s.source, since + 0.5) - 0.5).abs() < 1e-6);
        assert!(s.views[0].within_sla(&s.source, since + 0.5));
        assert!(!s.views[0].within_sla(&s.source, since + 2.0), "past the 1 s budget while down");
        assert!(s.views[1].within_sla(&s.source, since + 2.0), "no budget: always within");
        let metrics = r.metrics().render();
        assert!(metrics.contains("denorm_view_within_sla{view=\"a\"} 0"), "{metrics}");
        assert!(metrics.contains("denorm_source_connected 0"), "{metrics}");
        assert_eq!(crate::json::health(&s).status, "degraded");
        p.set_source(SourceStatus { state: SourceState::Following, head: Some(Position(10)), ..Default::default() });
        let metrics = r.metrics().render();
        assert!(metrics.contains("denorm_view_within_sla{view=\"a\"} 1"), "{metrics}");
        assert!(metrics.contains("denorm_source_connected 1"), "{metrics}");
    }

    /// Replication lag reaches `/health` and `/metrics`, survives publishes
    /// and source updates, and a slot retaining more WAL than allowed makes
    /// the status degraded with a problem naming the slot.
    #[test]
    fn replication_status_is_shown_and_warns_above_the_threshold() {
        let (mut p, r) = channel(vec![ViewInfo { name: "v".into(), ..Default::default() }]);
        p.publish(Position(1), &[]);
        let status = |retained_bytes| ReplicationStatus {
            lag_bytes: 300,
            lag_seconds: 0.25,
            retained_bytes,
            max_retained_bytes: 1 << 30,
            slot: "denorm".into(),
            head_text: Some("0/16B3748".into()),
        };
        p.set_replication(status(2048));
        p.publish(Position(2), &[]);
        p.set_source(SourceStatus { state: SourceState::Following, ..Default::default() });
        let health = crate::json::health(&r.snapshot());
        assert_eq!(health.status, "ok", "{health:?}");
        let replication = health.source.replication.expect("replication figures");
        assert_eq!((replication.lag_bytes, replication.retained_wal_bytes), (300, 2048));
        let metrics = r.metrics().render();
        for series in
            ["denorm_source_lag_bytes 300", "denorm_source_lag_seconds 0.25", "denorm_source_retained_wal_bytes 2048"]
        {
            assert!(metrics.lines().any(|l| l == series), "missing {series}:\n{metrics}");
        }

        p.set_replication(status(3 << 30));
        let health = crate::json::health(&r.snapshot());
        assert_eq!(health.status, "degraded");
        assert_eq!(
            health.problems,
            ["replication slot denorm retains 3.0 GiB of WAL on the source server, above max_retained_wal = 1.0 GiB: \
              the server cannot free it until denorm consumes it (is denorm keeping up?); a slot nobody reads fills \
              the disk: `denorm source uninstall` drops it"]
        );
        assert_eq!(human_bytes(512), "512 B");
    }

    #[test]
    fn waiting_readers_are_wanted_until_published_or_gone() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let (mut publisher, reader) = channel(vec![info("v", vec![0], &["t"], None)]);
        publisher.publish_at(Position(5), &[], 0.0);
        assert_eq!(publisher.wanted(), None);
        runtime.block_on(async {
            // Already reached: nothing is registered.
            assert!(reader.wait_for_position(Position(3), Duration::from_millis(1)).await.is_ok());
            assert_eq!(publisher.wanted(), None);
            let far = reader.wait_for_position(Position(100), Duration::from_secs(60));
            let near = reader.wait_for_position(Position(10), Duration::from_secs(60));
            let mut far = Box::pin(far);
            let mut near = Box::pin(near);
            // Poll both once so that they register.
            assert!(futures_poll(&mut far).is_none() && futures_poll(&mut near).is_none());
            assert_eq!(publisher.wanted(), Some(Position(100)));
            publisher.publish_at(Position(10), &[], 0.0);
            assert_eq!(near.await.unwrap().position, Some(Position(10)));
            assert_eq!(publisher.wanted(), Some(Position(100)));
            drop(far); // a reader that gave up is no longer waited for
            assert_eq!(publisher.wanted(), None);
            let timed_out = reader.wait_for_position(Position(11), Duration::from_millis(1)).await;
            assert!(matches!(timed_out, Err(WaitError::Timeout { .. })));
            assert_eq!(publisher.wanted(), None);
        });
    }

    /// A reload's new view set: a kept view keeps its rows, status and
    /// position (readers see no change), a new one starts empty, a dropped
    /// one is gone; later applies and publishes address the new slots.
    #[test]
    fn reconfigure_keeps_moves_adds_and_drops_views() {
        let (mut publisher, reader) = channel(vec![info("a", vec![0], &["t"], None), info("b", vec![0], &["t"], None)]);
        publisher.apply(0, &[(row(1, "a1"), 1)]);
        publisher.apply(1, &[(row(2, "b2"), 1)]);
        publisher.publish_at(Position(7), &[], 0.0);
        publisher
            .reconfigure(vec![info("c", vec![0], &["t"], None), info("b", vec![0], &["t"], None)], &[None, Some(1)]);
        let now = reader.snapshot();
        assert!(now.view("a").is_none());
        let b = now.view("b").unwrap();
        assert_eq!((b.rows.len(), b.position, &b.status), (1, Some(Position(7)), &ViewStatus::Ok));
        let c = now.view("c").unwrap();
        assert_eq!((c.rows.len(), &c.status), (0, &ViewStatus::Starting));
        assert_eq!(now.position, Some(Position(7)));
        publisher.apply(0, &[(row(3, "c3"), 1)]);
        publisher.apply(1, &[(row(4, "b4"), 1)]);
        publisher.publish_at(Position(8), &[], 0.0);
        let now = reader.snapshot();
        assert_eq!(now.view("c").unwrap().rows.len(), 1);
        assert_eq!(now.view("b").unwrap().rows.len(), 2);
        assert_eq!(reader.view_stats().len(), 2);
    }

    /// Drift found by a check is shown at once (a `/health` problem) and
    /// cleared by a clean check; the engine's own wanted position is asked
    /// for like a reader's.
    #[test]
    fn drift_is_shown_and_the_engine_may_want_a_position() {
        let (mut publisher, reader) = channel(vec![info("v", vec![0], &["t"], None)]);
        publisher.publish_at(Position(5), &[], 0.0);
        publisher.set_drift(0, 10, 2);
        assert_eq!(reader.snapshot().views[0].drift_rows, 2);
        assert!(crate::json::health(&reader.snapshot()).problems.iter().any(|p| p.contains("differs from the source")));
        publisher.set_drift(0, 10, 0);
        assert_eq!(reader.snapshot().views[0].drift_rows, 0);
        publisher.want(Some(Position(9)));
        assert_eq!(publisher.wanted(), Some(Position(9)));
        publisher.publish_at(Position(9), &[], 0.0);
        assert_eq!(publisher.wanted(), None);
        publisher.want(None);
    }

    /// Polls a future once without a runtime's scheduling.
    fn futures_poll<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match std::pin::Pin::new(future).poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }
}
