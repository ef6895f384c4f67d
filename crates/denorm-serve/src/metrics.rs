//! Prometheus metrics: every name starts with `denorm_`.
//!
//! [`Metrics`] is cheap to clone (one `Arc`); the engine thread counts
//! through it and the HTTP server renders it on `GET /metrics`. Rendering
//! uses `prometheus-client`'s OpenMetrics text encoder and rewrites it into
//! the Prometheus text format 0.0.4 that `promtool check metrics` and every
//! Prometheus scraper parse (see [`Metrics::render`]).

mod hot;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the freshness histogram: 0.5 ms to 30 s.
const FRESHNESS_BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

/// Upper bounds of the batch apply time histogram: 10 µs to 10 s.
const BATCH_BUCKETS: [f64; 13] = [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ViewLabel {
    view: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    view: String,
    operator: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkViewLabels {
    sink: String,
    view: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadLabels {
    view: String,
    role: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

fn freshness_histogram() -> Histogram {
    Histogram::new(FRESHNESS_BUCKETS)
}

fn batch_histogram() -> Histogram {
    Histogram::new(BATCH_BUCKETS)
}

type FreshnessFamily = Family<ViewLabel, Histogram, fn() -> Histogram>;

#[derive(Debug)]
struct Inner {
    registry: Registry,
    changes_applied: Family<TableLabel, Counter>,
    changes_undecodable: Family<TableLabel, Counter>,
    snapshot_rows: Counter,
    batch_apply: Histogram,
    view_rows: Family<ViewLabel, Gauge>,
    view_position: Family<ViewLabel, Gauge>,
    view_failed: Family<ViewLabel, Gauge>,
    view_within_sla: Family<ViewLabel, Gauge>,
    view_refreshed_at: Family<ViewLabel, Gauge<f64, AtomicU64>>,
    budget_exceeded: Family<ViewLabel, Counter>,
    fallback_reads: Family<ViewLabel, Counter>,
    fallback_errors: Family<ViewLabel, Counter>,
    fanout_rows_written: Family<ViewLabel, Counter>,
    fanout_read_merges: Family<ViewLabel, Counter>,
    freshness: FreshnessFamily,
    source_lag: Gauge,
    source_lag_bytes: Gauge,
    source_lag_seconds: Gauge<f64, AtomicU64>,
    source_retained_wal: Gauge,
    source_head: Gauge,
    source_connected: Gauge,
    published_position: Gauge,
    http_requests: Family<RequestLabels, Counter>,
    /// `http_requests` and `reads` by borrowed labels (no allocation a read).
    hot_requests: hot::HotCounters<u16>,
    hot_reads: hot::HotCounters<String>,
    auth_denied: Family<ReasonLabel, Counter>,
    reads: Family<ReadLabels, Counter>,
    state_bytes: Family<StateLabels, Gauge>,
    view_heals: Family<ViewLabel, Counter>,
    dlq_entries: Gauge,
    update_success_ratio: Gauge<f64, AtomicU64>,
    drift_rows: Family<ViewLabel, Gauge>,
    reconcile_checked_rows: Counter,
    /// The last sample of each view's operator state, for `/views`.
    view_state_bytes: Mutex<Option<HashMap<String, u64>>>,
    sink_position: Family<SinkViewLabels, Gauge>,
    sink_lag_seconds: Family<SinkViewLabels, Gauge<f64, AtomicU64>>,
    sink_errors: Family<SinkLabel, Counter>,
    sink_behind: Family<SinkLabel, Gauge>,
    sink_drift_rows: Family<SinkViewLabels, Counter>,
    /// Each sink's problem for `/health` (`None`: in sync).
    sink_problems: Mutex<std::collections::BTreeMap<String, Option<String>>>,
}

/// The sinks' section of the registry (see `denorm-sink`).
fn register_sinks(r: &mut Registry, inner: &Inner) {
    r.register(
        "sink_position",
        "Source position a sink has stored for a view (written with the rows, in one transaction)",
        inner.sink_position.clone(),
    );
    r.register(
        "sink_lag_seconds",
        "Time from the oldest source commit of the last batch a sink applied to its being stored there, in seconds",
        inner.sink_lag_seconds.clone(),
    );
    r.register("sink_errors", "Failed attempts to write to a sink (each retried)", inner.sink_errors.clone());
    r.register(
        "sink_behind",
        "1 while a sink is behind (its queue overflowed, it rebuilds from the published state) or failing, else 0",
        inner.sink_behind.clone(),
    );
    r.register(
        "sink_drift_rows",
        "Rows a reconcile found missing, extra or different in a sink compared with its view",
        inner.sink_drift_rows.clone(),
    );
}

/// denorm's Prometheus metrics. Clone it freely: clones share the counters.
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("denorm");
        let inner = Inner {
            changes_applied: Family::default(),
            changes_undecodable: Family::default(),
            drift_rows: Family::default(),
            reconcile_checked_rows: Counter::default(),
            snapshot_rows: Counter::default(),
            batch_apply: batch_histogram(),
            view_rows: Family::default(),
            view_position: Family::default(),
            view_failed: Family::default(),
            view_within_sla: Family::default(),
            view_refreshed_at: Family::default(),
            budget_exceeded: Family::default(),
            fallback_reads: Family::default(),
            fallback_errors: Family::default(),
            fanout_rows_written: Family::default(),
            fanout_read_merges: Family::default(),
            freshness: Family::new_with_constructor(freshness_histogram as fn() -> Histogram),
            source_lag: Gauge::default(),
            source_lag_bytes: Gauge::default(),
            source_lag_seconds: Gauge::default(),
            source_retained_wal: Gauge::default(),
            source_head: Gauge::default(),
            source_connected: Gauge::default(),
            published_position: Gauge::default(),
            http_requests: Family::default(),
            hot_requests: hot::HotCounters::default(),
            hot_reads: hot::HotCounters::default(),
            auth_denied: Family::default(),
            reads: Family::default(),
            state_bytes: Family::default(),
            view_heals: Family::default(),
            dlq_entries: Gauge::default(),
            update_success_ratio: Gauge::default(),
            view_state_bytes: Mutex::default(),
            sink_position: Family::default(),
            sink_lag_seconds: Family::default(),
            sink_errors: Family::default(),
            sink_behind: Family::default(),
            sink_drift_rows: Family::default(),
            sink_problems: Mutex::default(),
            registry: Registry::default(),
        };
        register_sinks(&mut registry, &inner);
        let r = &mut registry;
        r.register(
            "view_heals",
            "Times a failed view became maintained again without a restart (its cause cleared)",
            inner.view_heals.clone(),
        );
        r.register("dlq_entries", "Source changes in the dead-letter queue (GET /dlq)", inner.dlq_entries.clone());
        r.register(
            "update_success_ratio",
            "Source changes applied / (applied + dead-lettered) since start; 1 before any",
            inner.update_success_ratio.clone(),
        );
        r.register(
            "changes_applied",
            "Source row changes applied to the dataflow, by source table",
            inner.changes_applied.clone(),
        );
        r.register(
            "changes_undecodable",
            "Source row changes that could not be decoded and were set aside, by source table",
            inner.changes_undecodable.clone(),
        );
        r.register("snapshot_rows", "Rows read by initial snapshots of source tables", inner.snapshot_rows.clone());
        r.register(
            "drift_rows",
            "Rows in which a view differed from the source at its last check (reconcile or the drift sampler)",
            inner.drift_rows.clone(),
        );
        r.register(
            "reconcile_checked_rows",
            "View rows compared with the source by reconcile and the drift sampler",
            inner.reconcile_checked_rows.clone(),
        );
        r.register(
            "batch_apply_seconds",
            "Time to apply one source batch to the dataflow and publish it, in seconds",
            inner.batch_apply.clone(),
        );
        r.register("view_rows", "Rows in a view as last published", inner.view_rows.clone());
        r.register("view_position", "Source position a view reflects", inner.view_position.clone());
        r.register(
            "view_failed",
            "1 when a view has failed and is no longer maintained, else 0",
            inner.view_failed.clone(),
        );
        r.register(
            "view_within_sla",
            "1 when a view was within its staleness budget (or has none) at its last publish, else 0",
            inner.view_within_sla.clone(),
        );
        r.register(
            "view_refreshed_at",
            "When a view's rows were last brought up to date (its last refresh), in unix seconds",
            inner.view_refreshed_at.clone(),
        );
        r.register(
            "staleness_budget_exceeded",
            "Publishes at which a view with max_staleness was beyond its budget",
            inner.budget_exceeded.clone(),
        );
        r.register(
            "fallback_reads",
            "Key lookups of a stale, failed or starting view sent to the source (on_stale = 'fallback')",
            inner.fallback_reads.clone(),
        );
        r.register(
            "fallback_errors",
            "Key lookups sent to the source that failed (answered 503 fallback_failed)",
            inner.fallback_errors.clone(),
        );
        r.register(
            "fanout_rows_written",
            "Rows written (inserted or retracted) into a feed view's partitions by fan-out on write",
            inner.fanout_rows_written.clone(),
        );
        r.register(
            "fanout_read_merges",
            "Celebrities' content merged into a feed page at read time (fan-out on read), one per celebrity per read",
            inner.fanout_read_merges.clone(),
        );
        r.register(
            "freshness_seconds",
            "Time from a source commit to its changes being visible in a view, in seconds",
            inner.freshness.clone(),
        );
        r.register(
            "source_lag_changes",
            "Source head position minus the published position (changes not yet visible)",
            inner.source_lag.clone(),
        );
        r.register(
            "source_lag_bytes",
            "Replication sources (PostgreSQL): server WAL position minus the slot's confirmed flush position, in bytes",
            inner.source_lag_bytes.clone(),
        );
        r.register(
            "source_lag_seconds",
            "Replication sources (PostgreSQL): now minus the commit time of the newest applied transaction while the \
             stream still delivers transactions, 0 when caught up",
            inner.source_lag_seconds.clone(),
        );
        r.register(
            "source_retained_wal_bytes",
            "Replication sources (PostgreSQL): WAL the replication slot keeps on the server's disk, in bytes",
            inner.source_retained_wal.clone(),
        );
        r.register("source_head_position", "Latest position the source has seen", inner.source_head.clone());
        r.register(
            "source_connected",
            "1 while denorm is connected to the source, 0 before it first connects and while it retries an \
             unreachable source (readers keep the last published state)",
            inner.source_connected.clone(),
        );
        r.register(
            "published_position",
            "Source position of the state readers currently see",
            inner.published_position.clone(),
        );
        r.register(
            "http_requests",
            "HTTP requests served, by route template and status code",
            inner.http_requests.clone(),
        );
        r.register(
            "auth_denied",
            "Requests refused by authentication or authorization (metric M10), by reason: missing_token, \
             invalid_token, expired, unknown_role, view, masked_column, missing_claim, monitor",
            inner.auth_denied.clone(),
        );
        r.register("reads", "Reads of a view, by view and role (anonymous without [auth])", inner.reads.clone());
        r.register(
            "state_bytes",
            "Live heap bytes of an operator's state (a node several views share is reported once, under the first \
             view reading it), sampled periodically",
            inner.state_bytes.clone(),
        );
        Metrics { inner: Arc::new(Inner { registry, ..inner }) }
    }

    /// Counts `n` source changes of `table` applied to the dataflow.
    /// A sink stored view `view` at `position` (`denorm_sink_position`)
    /// `lag` seconds after the oldest commit it holds was committed.
    pub fn sink_applied(&self, sink: &str, view: &str, position: u64, lag: f64) {
        let labels = SinkViewLabels { sink: sink.to_owned(), view: view.to_owned() };
        self.inner.sink_position.get_or_create(&labels).set(position as i64);
        self.inner.sink_lag_seconds.get_or_create(&labels).set(lag);
    }

    /// A sink failed an attempt (`denorm_sink_errors_total`).
    pub fn sink_error(&self, sink: &str) {
        self.inner.sink_errors.get_or_create(&SinkLabel { sink: sink.to_owned() }).inc();
    }

    /// Whether a sink is behind (its queue overflowed or it is rebuilding)
    /// or failing: `denorm_sink_behind`, and `problem` on `/health`
    /// (degraded while any sink has one).
    pub fn set_sink_state(&self, sink: &str, behind: bool, problem: Option<String>) {
        self.inner.sink_behind.get_or_create(&SinkLabel { sink: sink.to_owned() }).set(i64::from(behind));
        self.inner.sink_problems.lock().unwrap_or_else(PoisonError::into_inner).insert(sink.to_owned(), problem);
    }

    /// Rows a reconcile found different between a sink and its view
    /// (`denorm_sink_drift_rows`).
    pub fn sink_drift(&self, sink: &str, view: &str, rows: u64) {
        let labels = SinkViewLabels { sink: sink.to_owned(), view: view.to_owned() };
        self.inner.sink_drift_rows.get_or_create(&labels).inc_by(rows);
    }

    /// Every sink's problem (`None`: in sync), by sink name.
    pub fn sink_problems(&self) -> Vec<(String, Option<String>)> {
        let problems = self.inner.sink_problems.lock().unwrap_or_else(PoisonError::into_inner);
        problems.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn changes_applied(&self, table: &str, n: u64) {
        self.inner.changes_applied.get_or_create(&TableLabel { table: table.to_owned() }).inc_by(n);
    }

    /// Records how long one batch took to apply, in seconds.
    pub fn batch_applied(&self, seconds: f64) {
        self.inner.batch_apply.observe(seconds);
    }

    /// Counts `n` changes of `table` that could not be decoded.
    /// Records a check of `view` against the source: `checked` rows
    /// compared, `drifted` of them different.
    pub fn reconciled(&self, view: &str, checked: u64, drifted: u64) {
        self.inner.reconcile_checked_rows.inc_by(checked);
        self.inner.drift_rows.get_or_create(&ViewLabel { view: view.to_owned() }).set(drifted as i64);
    }

    pub fn undecodable(&self, table: &str, n: u64) {
        self.inner.changes_undecodable.get_or_create(&TableLabel { table: table.to_owned() }).inc_by(n);
    }

    /// Counts a failed view that became maintained again.
    pub fn view_healed(&self, view: &str) {
        self.inner.view_heals.get_or_create(&ViewLabel { view: view.to_owned() }).inc();
    }

    /// Sets the dead-letter queue's size and the share of source changes
    /// applied (`applied / (applied + dead_lettered)`, 1 when both are 0).
    pub fn set_dlq(&self, entries: u64, applied: u64, dead_lettered: u64) {
        self.inner.dlq_entries.set(saturate(entries));
        let total = applied.saturating_add(dead_lettered);
        let ratio = if total == 0 { 1.0 } else { applied as f64 / total as f64 };
        self.inner.update_success_ratio.set(ratio);
    }

    /// Counts a request refused by `[auth]`, by [`crate::auth::Denied::reason`].
    pub fn auth_denied(&self, reason: &str) {
        self.inner.auth_denied.get_or_create(&ReasonLabel { reason: reason.to_owned() }).inc();
    }

    /// Counts a read of `view` by `role`.
    pub fn read(&self, view: &str, role: &str) {
        let reads = &self.inner.reads;
        self.inner.hot_reads.inc(view, role, || {
            reads.get_or_create(&ReadLabels { view: view.to_owned(), role: role.to_owned() }).clone()
        });
    }

    /// Counts `n` rows read by a snapshot.
    pub fn snapshot_rows(&self, n: u64) {
        self.inner.snapshot_rows.inc_by(n);
    }

    pub(crate) fn observe_freshness(&self, view: &str, seconds: f64) {
        self.inner.freshness.get_or_create(&ViewLabel { view: view.to_owned() }).observe(seconds);
    }

    pub(crate) fn set_view(&self, view: &str, rows: u64, position: Option<u64>, failed: bool) {
        let label = ViewLabel { view: view.to_owned() };
        self.inner.view_rows.get_or_create(&label).set(saturate(rows));
        self.inner.view_failed.get_or_create(&label).set(i64::from(failed));
        if let Some(p) = position {
            self.inner.view_position.get_or_create(&label).set(saturate(p));
        }
    }

    /// The staleness figures of a view at a publish: whether it is within
    /// its budget (counted as exceeded when it has one and is not), and when
    /// its rows were last refreshed.
    pub(crate) fn set_view_sla(&self, view: &str, within: bool, has_budget: bool, refreshed_at: Option<f64>) {
        let label = ViewLabel { view: view.to_owned() };
        self.inner.view_within_sla.get_or_create(&label).set(i64::from(within));
        if has_budget && !within {
            self.inner.budget_exceeded.get_or_create(&label).inc();
        }
        if let Some(at) = refreshed_at {
            self.inner.view_refreshed_at.get_or_create(&label).set(at);
        }
    }

    /// Whether a view is within its staleness budget, between publishes
    /// (while the source is unreachable).
    pub(crate) fn set_view_within_sla(&self, view: &str, within: bool) {
        self.inner.view_within_sla.get_or_create(&ViewLabel { view: view.to_owned() }).set(i64::from(within));
    }

    pub(crate) fn set_source_connected(&self, connected: bool) {
        self.inner.source_connected.set(i64::from(connected));
    }

    /// Counts a key lookup sent to the source, and whether it failed.
    pub(crate) fn fallback_read(&self, view: &str, failed: bool) {
        let label = ViewLabel { view: view.to_owned() };
        self.inner.fallback_reads.get_or_create(&label).inc();
        if failed {
            self.inner.fallback_errors.get_or_create(&label).inc();
        }
    }

    /// Counts rows written into a feed's partitions by fan-out on write.
    pub(crate) fn fanout_rows_written(&self, view: &str, n: u64) {
        self.inner.fanout_rows_written.get_or_create(&ViewLabel { view: view.to_owned() }).inc_by(n);
    }

    /// Counts celebrities' content merged into feed reads.
    pub(crate) fn fanout_read_merges(&self, view: &str, n: u64) {
        self.inner.fanout_read_merges.get_or_create(&ViewLabel { view: view.to_owned() }).inc_by(n);
    }

    /// Registers a view's series at zero so that they exist before its
    /// first change: the budget and fallback counters only for views with
    /// a budget or a fallback.
    pub(crate) fn declare_view(&self, view: &str, has_budget: bool, fallback: bool, feed: bool) {
        let label = ViewLabel { view: view.to_owned() };
        if feed {
            drop(self.inner.fanout_rows_written.get_or_create(&label));
            drop(self.inner.fanout_read_merges.get_or_create(&label));
        }
        drop(self.inner.view_rows.get_or_create(&label));
        drop(self.inner.view_failed.get_or_create(&label));
        drop(self.inner.view_heals.get_or_create(&label));
        self.inner.view_within_sla.get_or_create(&label).set(1);
        drop(self.inner.freshness.get_or_create(&label));
        if has_budget {
            drop(self.inner.budget_exceeded.get_or_create(&label));
        }
        if fallback {
            drop(self.inner.fallback_reads.get_or_create(&label));
            drop(self.inner.fallback_errors.get_or_create(&label));
        }
    }

    pub(crate) fn set_source(&self, head: Option<u64>, published: Option<u64>) {
        if let Some(h) = head {
            self.inner.source_head.set(saturate(h));
        }
        if let Some(p) = published {
            self.inner.published_position.set(saturate(p));
        }
        self.inner.source_lag.set(saturate(lag(head, published)));
    }

    pub(crate) fn set_replication(&self, lag_bytes: u64, lag_seconds: f64, retained_bytes: u64) {
        self.inner.source_lag_bytes.set(saturate(lag_bytes));
        self.inner.source_lag_seconds.set(lag_seconds);
        self.inner.source_retained_wal.set(saturate(retained_bytes));
    }

    pub(crate) fn http_request(&self, route: &str, status: u16) {
        let requests = &self.inner.http_requests;
        self.inner
            .hot_requests
            .inc(route, &status, || requests.get_or_create(&RequestLabels { route: route.to_owned(), status }).clone());
    }

    /// Replaces the operator state sample: `(view, operator, bytes)` per
    /// stateful node (series of nodes no longer reported disappear).
    pub fn set_state_bytes(&self, entries: &[(String, String, usize)]) {
        let mut per_view: HashMap<String, u64> = HashMap::new();
        self.inner.state_bytes.clear();
        for (view, operator, bytes) in entries {
            let label = StateLabels { view: view.clone(), operator: operator.clone() };
            self.inner.state_bytes.get_or_create(&label).set(saturate(*bytes as u64));
            *per_view.entry(view.clone()).or_default() += *bytes as u64;
        }
        *self.inner.view_state_bytes.lock().unwrap_or_else(PoisonError::into_inner) = Some(per_view);
    }

    /// A view's operator state bytes at the last sample (0 for a view
    /// holding none then; `None` before the first sample).
    pub fn view_state_bytes(&self, view: &str) -> Option<u64> {
        let sample = self.inner.view_state_bytes.lock().unwrap_or_else(PoisonError::into_inner);
        sample.as_ref().map(|per_view| per_view.get(view).copied().unwrap_or(0))
    }

    /// The metrics in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
    ///
    /// `prometheus-client` writes OpenMetrics, where a counter family is
    /// named without its `_total` suffix, `# UNIT` lines may appear and the
    /// text ends with `# EOF`. The 0.0.4 format names the family like its
    /// samples and has no EOF marker, so those lines are rewritten.
    pub fn render(&self) -> String {
        let mut open_metrics = String::new();
        text::encode_registry(&mut open_metrics, &self.inner.registry).expect("writing to a String cannot fail");
        to_prometheus_text(&open_metrics)
    }
}

/// Changes not yet visible: head minus published, 0 when unknown.
pub(crate) fn lag(head: Option<u64>, published: Option<u64>) -> u64 {
    match (head, published) {
        (Some(h), Some(p)) => h.saturating_sub(p),
        (Some(h), None) => h,
        _ => 0,
    }
}

fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_prometheus_text(open_metrics: &str) -> String {
    let mut counters = Vec::new();
    for line in open_metrics.lines() {
        if let Some(name) = line.strip_prefix("# TYPE ").and_then(|l| l.strip_suffix(" counter")) {
            counters.push(name.to_owned());
        }
    }
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.iter().any(|c| c == name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_prefixed_and_has_help() {
        let m = Metrics::new();
        m.changes_applied("users", 3);
        m.undecodable("users", 1);
        m.declare_view("v", true, true, false);
        m.set_view_sla("v", false, true, Some(1_700_000_000.25));
        m.fallback_read("v", false);
        m.observe_freshness("v", 0.002);
        m.http_request("/views/{name}", 200);
        assert_eq!(m.view_state_bytes("v"), None);
        m.set_state_bytes(&[("v".into(), "3 Reduce [0]".into(), 4096), ("v".into(), "1 Arrange [1]".into(), 100)]);
        let text = m.render();
        assert!(text.contains("denorm_state_bytes{view=\"v\",operator=\"3 Reduce [0]\"} 4096"), "{text}");
        assert_eq!(m.view_state_bytes("v"), Some(4196));
        m.set_state_bytes(&[("w".into(), "0 Distinct".into(), 7)]);
        assert!(!m.render().contains("Reduce"), "a series no longer sampled is gone");
        assert_eq!((m.view_state_bytes("v"), m.view_state_bytes("w")), (Some(0), Some(7)));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("denorm_"), "{line}");
        }
        assert!(text.contains("# HELP denorm_changes_applied_total "), "{text}");
        assert!(text.contains("# TYPE denorm_changes_applied_total counter"), "{text}");
        assert!(text.contains("denorm_changes_applied_total{table=\"users\"} 3"), "{text}");
        assert!(text.contains("denorm_freshness_seconds_bucket{le=\"0.0005\",view=\"v\"} 0"), "{text}");
        assert!(text.contains("denorm_view_within_sla{view=\"v\"} 0"), "{text}");
        assert!(text.contains("denorm_view_refreshed_at{view=\"v\"} 1700000000.25"), "{text}");
        assert!(text.contains("denorm_staleness_budget_exceeded_total{view=\"v\"} 1"), "{text}");
        assert!(text.contains("denorm_fallback_reads_total{view=\"v\"} 1"), "{text}");
        assert!(text.contains("denorm_fallback_errors_total{view=\"v\"} 0"), "{text}");
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn lag_is_head_minus_published() {
        assert_eq!(lag(Some(10), Some(7)), 3);
        assert_eq!(lag(Some(7), Some(10)), 0);
        assert_eq!(lag(Some(5), None), 5);
        assert_eq!(lag(None, Some(5)), 0);
    }
}
