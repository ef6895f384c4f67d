//! Published view state: what readers see, one batch boundary at a time.
//!
//! ```text
//!  engine thread                                   readers (HTTP handlers, any thread)
//!  ─────────────                                   ───────────────────────────────────
//!  Publisher::apply(view, changes) ─┐ working copy
//!  Publisher::fail / clear         ─┤ (private)
//!  Publisher::publish(position) ────┴─► ArcSwap<Published> ──load──► Arc<Published>
//!                                   └─► watch<Option<Position>> ───► Reader::wait_for_position
//! ```
//!
//! The publisher keeps a private working copy of every view. `apply` edits
//! only that copy; `publish` freezes it into a new immutable [`Published`]
//! and swaps it in atomically. A reader holds one `Arc<Published>` for a
//! whole request, so it never sees half a batch, and every view in it
//! reflects the same source position (except failed views, which keep the
//! position of their last good state).
//!
//! Rows live in persistent hash maps (`imbl`): cloning one is O(1) and the
//! working copy and published copies share structure, so publishing costs
//! O(changes), not O(view size). Keys and slots are behind `Arc`s because
//! copy-on-write clones every entry of a touched map node.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use denorm_types::{Diff, Position, Row, RowPacker, ScalarType};
use tokio::sync::watch;

use crate::metrics::Metrics;
pub use crate::rows::{pack_key, ViewRows};

/// One view as the engine declares it to the serving layer.
#[derive(Debug, Clone, PartialEq)]
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
}

/// One output column of a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub ty: ScalarType,
}

impl ViewInfo {
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
}

/// One view in a [`Published`] snapshot.
#[derive(Debug, Clone)]
pub struct PublishedView {
    pub info: Arc<ViewInfo>,
    pub rows: ViewRows,
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
}

impl PublishedView {
    /// The view's freshness at unix time `now`, in seconds.
    ///
    /// When the source has committed changes not yet visible here (its head
    /// is past the view's position) and knows the oldest pending commit's
    /// time, that is `now − oldest pending commit`: how far the view lags
    /// right now. Otherwise it is the last observed commit→visible latency
    /// ([`PublishedView::last_freshness_seconds`]).
    pub fn freshness_seconds(&self, source: &SourceStatus, now: f64) -> f64 {
        let behind = match (source.head, self.position) {
            (Some(head), Some(at)) => head > at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match source.oldest_pending_commit_at {
            Some(committed_at) if behind => (now - committed_at).max(0.0),
            _ => self.last_freshness_seconds,
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
}

/// How many freshness observations per view [`Reader::view_stats`] keeps.
const RECENT: usize = 4096;

#[derive(Debug, Default, Clone)]
struct Recent {
    samples: Vec<f64>,
    next: usize,
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
            metrics.declare_view(&info.name);
            PublishedView {
                info: info.clone(),
                rows: ViewRows::default(),
                status: ViewStatus::Starting,
                position: None,
                last_freshness_seconds: 0.0,
                changes_total: 0,
                undecodable_changes: 0,
            }
        })
        .collect();
    let published =
        Published { position: None, views: published_views.clone().into(), source: SourceStatus::default() };
    let recent = Mutex::new(vec![Recent::default(); published_views.len()]);
    let shared = Arc::new(Shared { published: ArcSwap::from_pointee(published), metrics, recent });
    let (position_tx, position_rx) = watch::channel(None);
    let publisher =
        Publisher { shared: shared.clone(), working: published_views, position_tx, packer: RowPacker::new() };
    (publisher, Reader { shared, position: position_rx })
}

/// The engine's handle: edits a private working copy, then publishes it.
pub struct Publisher {
    shared: Arc<Shared>,
    working: Vec<PublishedView>,
    position_tx: watch::Sender<Option<Position>>,
    packer: RowPacker,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").field("views", &self.working.len()).finish_non_exhaustive()
    }
}

impl Publisher {
    /// Applies a view's consolidated output changes of the current batch to
    /// the working copy; readers see them at the next [`Publisher::publish`].
    /// Changes to a failed view are ignored until it is [cleared](Publisher::clear).
    pub fn apply(&mut self, view: usize, changes: &[(Row, Diff)]) {
        let v = &mut self.working[view];
        if matches!(v.status, ViewStatus::Failed(_)) {
            tracing::debug!(view = %v.info.name, "changes to a failed view ignored");
            return;
        }
        v.rows.apply(&v.info.key, changes, &mut self.packer);
        v.changes_total += changes.iter().map(|(_, d)| d.unsigned_abs()).sum::<u64>();
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
        v.position = last.position;
        v.status = ViewStatus::Failed(reason);
    }

    /// Empties a view before it is snapshotted again; a failed view becomes
    /// maintained again. Readers keep seeing the old rows until the next publish.
    pub fn clear(&mut self, view: usize) {
        let v = &mut self.working[view];
        v.rows = ViewRows::default();
        v.status = ViewStatus::Starting;
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
        let mut recent = self.shared.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (v, recent) in self.working.iter_mut().zip(recent.iter_mut()) {
            if matches!(v.status, ViewStatus::Failed(_)) {
                continue;
            }
            v.status = ViewStatus::Ok;
            v.position = Some(position);
            let mut worst: Option<f64> = None;
            for (_, committed_at) in commits.iter().filter(|(t, _)| v.info.tables.iter().any(|vt| vt == t)) {
                let latency = (now - committed_at).max(0.0);
                metrics.observe_freshness(&v.info.name, latency);
                recent.push(latency);
                worst = Some(worst.map_or(latency, |w: f64| w.max(latency)));
            }
            if let Some(w) = worst {
                v.last_freshness_seconds = w;
            }
        }
        drop(recent);
        for v in &self.working {
            let failed = matches!(v.status, ViewStatus::Failed(_));
            metrics.set_view(&v.info.name, v.rows.len(), v.position.map(|p| p.0), failed);
        }
        let source = self.shared.published.load().source.clone();
        self.store(Published { position: Some(position), views: self.working.clone().into(), source });
        self.position_tx.send_replace(Some(position));
    }

    /// Records the source's status; readers see it at once (it does not
    /// touch view state, so no batch boundary is needed).
    pub fn set_source(&mut self, status: SourceStatus) {
        let current = self.shared.published.load_full();
        self.store(Published { position: current.position, views: current.views.clone(), source: status });
    }

    fn store(&self, published: Published) {
        self.shared.metrics.set_source(published.source.head.map(|p| p.0), published.position.map(|p| p.0));
        self.shared.published.store(Arc::new(published));
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
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

    /// Waits until the published position is at least `position`, then
    /// returns a snapshot at or past it (read-your-writes).
    pub async fn wait_for_position(&self, position: Position, timeout: Duration) -> Result<Arc<Published>, WaitError> {
        let mut rx = self.position.clone();
        let reached = |p: &Option<Position>| p.is_some_and(|p| p >= position);
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
        }
    }

    fn row(id: i64, v: &str) -> Row {
        Row::pack([Datum::Int(id), Datum::text(v)])
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
}
