//! The engine's side of the admin surface (`denorm_serve::admin`): requests
//! are answered between batches, on the engine thread, so every one of them
//! sees the views and the dataflow at one batch boundary.
//!
//! **Reload** (`POST /admin/reload`, SIGHUP): the configuration and the
//! views files are read and planned against the session's catalog; any
//! error refuses the whole reload (400 with every error; nothing changes).
//! Otherwise the publisher's view set is replaced at once
//! ([`Publisher::reconfigure`]): unchanged views (same definition, wherever
//! they sit in the files) keep their published state, added and changed
//! views start empty, dropped views are gone. The session then ends and the
//! next one re-plans with the new views: with the state directory valid for
//! the (possibly new) captured columns, the dataflow is rebuilt from the
//! stored input rows, and no source table is read; a new column or table
//! makes the next session snapshot the source. While the new session
//! loads, the kept views are neither cleared nor re-applied (their rows are
//! already the dataflow's output at that position), so their readers see
//! no change at all; if the position moved (a new snapshot), every view is
//! rebuilt and published at once at the next publish (readers keep the old
//! rows until then). The reply is sent once the new views are published.
//!
//! **Reconcile** (`POST /admin/reconcile`, `denorm reconcile`): SQLite only.
//! In one read transaction on the source in which the change log's last
//! `seq` equals the engine's position (else the engine applies more and
//! tries again at the next batch boundary, for up to [`PATIENCE`]), each
//! view's defining SELECT runs on the source and its rows are compared with
//! the view's published rows (which are at that position) by key: rows
//! missing from the view, extra in it, and different (floats compared to a
//! relative 1e-9, booleans as 0/1, other types by their text). `repair`
//! reads every captured table at the same position (a snapshot read, no new
//! capture), rebuilds the dataflow from those rows, publishes each view's
//! difference from its published rows as ordinary changes (feed and
//! scheduled views are replaced whole), and rewrites the state directory's
//! input rows; the views keep serving throughout.
//!
//! **Drift sampler** (`[engine] drift_sample`, `drift_every`): each period,
//! for every keyed on-change view, `drift_sample` random keys of its
//! published rows are checked the same way (the SELECT restricted to each
//! key): `denorm_drift_rows{view}`, `denorm_reconcile_checked_rows_total`,
//! and `/health` degraded while a view differs. It sees rows that are wrong
//! or should not exist; a row missing from the view is found by a full
//! reconcile.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use denorm_serve::admin::{AdminCommand, AdminInbox, AdminReply, AdminRequest};
use denorm_serve::PublishedView;
use denorm_source::sqlite::SqliteCapture;
use denorm_source::{CaptureSpec, ChangeSource};
use denorm_sql::{OnStale, Refresh, ViewDef};
use denorm_types::{consolidate, Catalog, Datum, Diff, Position, Row};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value as Json};
use tracing::{error, info, warn};

use super::flow::{Flow, Step};
use super::{End, Engine, EngineError, ViewSources};
use crate::config::drift::DriftConfig;
use crate::config::SourceConfig;
use crate::state_dir::StateDir;

/// How long a reconcile waits for a moment at which the source's change
/// log is not ahead of the engine.
const PATIENCE: Duration = Duration::from_secs(30);
/// A drift sample that met a moving source is tried again this soon.
const DRIFT_RETRY: Duration = Duration::from_millis(200);
/// Rows shown per kind of difference.
const SAMPLES: usize = 5;
/// Floats closer than this (relative) are equal: a sum computed in another
/// order may differ in its last bits.
const FLOAT_TOLERANCE: f64 = 1e-9;

/// The admin channel's engine-side state.
#[derive(Debug, Default)]
pub(crate) struct AdminState {
    inbox: Option<AdminInbox>,
    /// The configuration file a reload reads again.
    config_path: Option<PathBuf>,
    drift: DriftConfig,
    drift_due: Option<Instant>,
    /// xorshift state for sampling keys.
    rng: u64,
    /// A reconcile waiting for the engine to reach the source's position.
    waiting: Option<Waiting>,
    /// A reload applied, waiting for the next session to load.
    reloaded: Option<Reloaded>,
}

#[derive(Debug)]
struct Waiting {
    request: AdminRequest,
    views: Vec<String>,
    repair: bool,
    since: Instant,
}

#[derive(Debug)]
struct Reloaded {
    request: Option<AdminRequest>,
    summary: Json,
    /// Per new slot, the old slot it keeps.
    kept: Vec<Option<usize>>,
    /// The position the kept views are at.
    at: Position,
}

impl AdminState {
    pub(crate) fn new(inbox: Option<AdminInbox>, config_path: Option<PathBuf>, drift: DriftConfig) -> AdminState {
        let seed =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        AdminState { inbox, config_path, drift, rng: seed | 1, ..AdminState::default() }
    }

    fn random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = 0x9E37_79B9_7F4A_7C15;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// What a session lends the admin handlers between batches.
pub(super) struct Session<'a> {
    pub catalog: &'a Catalog,
    pub planned: &'a [Option<ViewDef>],
    pub spec: &'a CaptureSpec,
    pub shape: &'a str,
    pub flow: &'a mut Flow,
    pub state: Option<&'a mut StateDir>,
    pub capture: &'a mut dyn ChangeSource,
}

/// The views a reload installs, and how they relate to the running ones.
struct ReloadPlan {
    sources: ViewSources,
    infos: Vec<denorm_serve::ViewInfo>,
    kept: Vec<Option<usize>>,
    added: Vec<String>,
    changed: Vec<String>,
    dropped: Vec<String>,
    unchanged: Vec<String>,
}

/// One view's comparison with the source.
#[derive(Debug, Default)]
pub(crate) struct ViewReport {
    pub view: String,
    pub slot: usize,
    pub checked: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    pub samples: Vec<Json>,
    pub skipped: Option<String>,
}

impl ViewReport {
    fn differences(&self) -> u64 {
        self.missing + self.extra + self.different
    }

    fn json(&self) -> Json {
        match &self.skipped {
            Some(reason) => json!({ "view": self.view, "skipped": reason }),
            None => json!({
                "view": self.view,
                "checked_rows": self.checked,
                "missing": self.missing,
                "extra": self.extra,
                "different": self.different,
                "samples": self.samples,
            }),
        }
    }
}

impl Engine {
    /// Between two batches: answers a waiting or new admin request and runs
    /// the drift sampler when due. `Some(end)` ends the session (a reload).
    pub(super) fn between_batches(&mut self, s: &mut Session<'_>) -> Result<Option<End>, EngineError> {
        if let Some(waiting) = self.admin.waiting.take() {
            self.reconcile(s, waiting)?;
        }
        if self.admin.waiting.is_none() {
            if let Some(request) = self.admin.inbox.as_ref().and_then(AdminInbox::try_next) {
                match request.command.clone() {
                    AdminCommand::Reload => {
                        if let Some(end) = self.reload(s, request) {
                            return Ok(Some(end));
                        }
                    }
                    AdminCommand::Reconcile { views, repair } => {
                        self.reconcile(s, Waiting { request, views, repair, since: Instant::now() })?
                    }
                }
            }
        }
        self.sample_drift(s);
        Ok(None)
    }

    /// Per slot: whether the session now loading keeps the view's
    /// published state (an unchanged view of a reload, when the load is at
    /// the position it was published at).
    pub(super) fn kept_slots(&self, position: Position, slots: usize) -> Vec<bool> {
        match &self.admin.reloaded {
            Some(r) if r.at == position => (0..slots).map(|i| r.kept.get(i).is_some_and(Option::is_some)).collect(),
            _ => vec![false; slots],
        }
    }

    /// After a session loaded: answers the reload that ended the last one.
    pub(super) fn reload_done(&mut self, position: Position) {
        let Some(mut reloaded) = self.admin.reloaded.take() else { return };
        let rebuilt_all = reloaded.at != position;
        info!(rebuilt_all, "reload done: the new views are published");
        if let Some(request) = reloaded.request.take() {
            let mut body = reloaded.summary;
            body["position"] = json!(position.0);
            body["rebuilt_all"] = json!(rebuilt_all);
            request.answer(AdminReply::ok(body));
        }
    }

    fn reload(&mut self, s: &Session<'_>, request: AdminRequest) -> Option<End> {
        info!("reload asked: reading the configuration and the views files again");
        let plan = match self.plan_reload(s) {
            Ok(plan) => plan,
            Err(errors) => {
                error!(errors = %errors.join("\n"), "reload refused: nothing changed, the running views go on");
                request.answer(AdminReply::refused(400, "reload refused: nothing changed", errors));
                return None;
            }
        };
        let summary = json!({
            "added": plan.added,
            "changed": plan.changed,
            "dropped": plan.dropped,
            "unchanged": plan.unchanged,
        });
        if plan.added.is_empty() && plan.changed.is_empty() && plan.dropped.is_empty() {
            info!("reload: the views are unchanged");
            request.answer(AdminReply::ok(summary));
            return None;
        }
        info!(added = ?plan.added, changed = ?plan.changed, dropped = ?plan.dropped, "reload: applying the new views");
        self.publisher.reconfigure(plan.infos, &plan.kept);
        self.sources = plan.sources;
        self.admin.reloaded = Some(Reloaded { request: Some(request), summary, kept: plan.kept, at: s.flow.position });
        Some(End::Reload)
    }

    /// Reads and plans the configuration again; every error when it cannot
    /// be applied.
    fn plan_reload(&self, s: &Session<'_>) -> Result<ReloadPlan, Vec<String>> {
        let Some(path) = &self.admin.config_path else {
            return Err(vec!["this engine was started without a configuration file: nothing to reload".into()]);
        };
        let config = crate::config::load(path).map_err(|e| vec![e.to_string()])?;
        if config.source != self.source {
            return Err(vec![format!(
                "{}: [source] changed\n  hint: a reload changes the views only; restart denorm to follow another \
                 source",
                path.display()
            )]);
        }
        let (views, mut errors) =
            crate::plan::plan_all(&config, s.catalog).map_err(|e| vec![crate::cli::render_error(&e)])?;
        let old: HashMap<String, (usize, Option<&ViewDef>)> = self
            .sources
            .names
            .iter()
            .enumerate()
            .map(|(slot, name)| (name.to_lowercase(), (slot, s.planned.get(slot).and_then(Option::as_ref))))
            .collect();
        let (mut kept, mut added, mut changed, mut unchanged) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (def, file) in &views {
            let keep = match old.get(&def.name.to_lowercase()) {
                Some(&(slot, Some(old_def))) if same_definition(old_def, def) => Some(slot),
                Some(_) => {
                    changed.push(def.name.clone());
                    None
                }
                None => {
                    added.push(def.name.clone());
                    None
                }
            };
            if keep.is_none() && def.on_stale == OnStale::Fallback {
                errors.push(format!(
                    "{}:{}: view {}: a view with on_stale = 'fallback' cannot be added or changed by a reload (the \
                     fallback reader is set up at start)\n  hint: restart denorm to apply it",
                    file.display(),
                    def.location,
                    def.name
                ));
            }
            if let Some(slot) = keep {
                unchanged.push(self.sources.names[slot].clone());
            }
            kept.push(keep);
        }
        let new_names: std::collections::HashSet<String> = views.iter().map(|(v, _)| v.name.to_lowercase()).collect();
        let dropped = self.sources.names.iter().filter(|n| !new_names.contains(&n.to_lowercase())).cloned().collect();
        let mut files = Vec::new();
        for file in &config.views {
            match std::fs::read_to_string(&file.path) {
                Ok(text) => files.push((file.path.clone(), text)),
                Err(e) => errors.push(format!("cannot read views file {}: {e}", file.path.display())),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let infos = views.iter().map(|(v, _)| crate::run::serving_info(v)).collect();
        let names = views.iter().map(|(v, _)| v.name.clone()).collect();
        Ok(ReloadPlan { sources: ViewSources { files, names }, infos, kept, added, changed, dropped, unchanged })
    }

    fn reconcile(&mut self, s: &mut Session<'_>, waiting: Waiting) -> Result<(), EngineError> {
        let SourceConfig::Sqlite(sqlite) = &self.source else {
            waiting.request.answer(AdminReply::refused(
                501,
                "reconcile compares views with a SQLite source only; this source is PostgreSQL",
                vec!["compare a view with its SELECT on the server by hand meanwhile".into()],
            ));
            return Ok(());
        };
        let path = sqlite.path.clone();
        let slots = match self.slots_named(&waiting.views) {
            Ok(slots) => slots,
            Err(unknown) => {
                waiting.request.answer(AdminReply::refused(400, "unknown view(s)", unknown));
                return Ok(());
            }
        };
        let reports = match self.compare(&path, s, &slots, None) {
            Ok(Some(reports)) => reports,
            Ok(None) => {
                self.wait_longer(waiting);
                return Ok(());
            }
            Err(e) => {
                waiting.request.answer(AdminReply::refused(500, e, vec![]));
                return Ok(());
            }
        };
        self.record_drift(&reports);
        let differences: u64 = reports.iter().map(ViewReport::differences).sum();
        let mut body = json!({
            "position": s.flow.position.0,
            "differences": differences,
            "views": reports.iter().map(ViewReport::json).collect::<Vec<_>>(),
            "repaired": false,
        });
        if waiting.repair && differences > 0 {
            if !self.repair(s, &path)? {
                self.wait_longer(waiting);
                return Ok(());
            }
            body["repaired"] = json!(true);
            // Checked again at once when the source has not moved meanwhile.
            if let Ok(Some(after)) = self.compare(&path, s, &slots, None) {
                self.record_drift(&after);
                body["differences_after_repair"] = json!(after.iter().map(ViewReport::differences).sum::<u64>());
            }
        }
        info!(differences, repair = waiting.repair, "reconcile done");
        waiting.request.answer(AdminReply::ok(body));
        Ok(())
    }

    /// Keeps a reconcile for the next batch boundary, or gives up.
    fn wait_longer(&mut self, waiting: Waiting) {
        if waiting.since.elapsed() < PATIENCE {
            self.admin.waiting = Some(waiting);
        } else {
            waiting.request.answer(AdminReply::refused(
                503,
                "the source kept changing: no moment was found at which the engine had applied every change",
                vec!["try again when writes are less frequent".into()],
            ));
        }
    }

    /// The publishing slots of `names` (empty: every view), or the unknown names.
    fn slots_named(&self, names: &[String]) -> Result<Vec<usize>, Vec<String>> {
        if names.is_empty() {
            return Ok((0..self.sources.names.len()).collect());
        }
        let mut slots = Vec::new();
        let mut unknown = Vec::new();
        for name in names {
            match self.sources.names.iter().position(|n| n.eq_ignore_ascii_case(name)) {
                Some(slot) => slots.push(slot),
                None => unknown.push(format!("no view is named {name:?}")),
            }
        }
        if unknown.is_empty() {
            Ok(slots)
        } else {
            Err(unknown)
        }
    }

    fn record_drift(&mut self, reports: &[ViewReport]) {
        for r in reports.iter().filter(|r| r.skipped.is_none()) {
            if r.differences() > 0 {
                warn!(view = %r.view, rows = r.differences(), "drift: the view differs from the source");
            }
            self.publisher.set_drift(r.slot, r.checked, r.differences());
        }
    }

    /// Compares `slots` with the source in one read transaction at the
    /// engine's position: all rows, or `sample` random keys per keyed view.
    /// `Ok(None)` when the source is ahead of the engine.
    fn compare(
        &mut self,
        path: &Path,
        s: &Session<'_>,
        slots: &[usize],
        sample: Option<u32>,
    ) -> Result<Option<Vec<ViewReport>>, String> {
        let sql_error = |e: rusqlite::Error| format!("reading the source {}: {e}", path.display());
        let conn = denorm_source::sqlite::open_read_only(path).map_err(|e| super::error_chain(&e))?;
        conn.busy_timeout(Duration::from_secs(2)).map_err(sql_error)?;
        let tx = conn.unchecked_transaction().map_err(sql_error)?;
        if log_head(&tx).map_err(sql_error)? != s.flow.position.0 {
            return Ok(None);
        }
        let published = self.publisher.published();
        let mut reports = Vec::new();
        for &slot in slots {
            let (Some(def), Some(view)) = (s.planned.get(slot).and_then(Option::as_ref), published.views.get(slot))
            else {
                continue;
            };
            let mut report = ViewReport { view: def.name.clone(), slot, ..ViewReport::default() };
            report.skipped = skip_reason(def, view, s.flow.position);
            if report.skipped.is_none() {
                let keys = sample.map(|n| self.sample_rows(view, n as usize));
                compare_view(&tx, def, view, keys.as_deref(), &mut report).map_err(sql_error)?;
            }
            reports.push(report);
        }
        tx.commit().map_err(sql_error)?;
        Ok(Some(reports))
    }

    /// Up to `n` random rows of a keyed view (reservoir sampling).
    fn sample_rows(&mut self, view: &PublishedView, n: usize) -> Vec<Row> {
        let mut chosen: Vec<Row> = Vec::with_capacity(n);
        for (i, (row, _)) in view.rows.iter().enumerate() {
            if chosen.len() < n {
                chosen.push(row.clone());
            } else {
                let j = (self.admin.random() % (i as u64 + 1)) as usize;
                if j < n {
                    chosen[j] = row.clone();
                }
            }
        }
        chosen
    }

    /// Rebuilds the dataflow from every captured table read at the engine's
    /// position and publishes each view's difference; false when the source
    /// moved past the position meanwhile (nothing changed).
    fn repair(&mut self, s: &mut Session<'_>, path: &Path) -> Result<bool, EngineError> {
        let mut reader = SqliteCapture::open(path, s.catalog, s.spec)?;
        let snapshot = reader.snapshot(&mut |_| {})?;
        drop(reader);
        if snapshot.position != s.flow.position {
            return Ok(false);
        }
        let batch = super::snapshot_batch(snapshot);
        let mut fresh = Flow::new(s.catalog.clone(), s.planned, self.source.dialect(), Instant::now())?;
        let step = fresh.snapshot(&batch);
        let changed = self.publish_rebuilt(s.planned, step);
        *s.flow = fresh;
        if let Some(state) = s.state.as_deref_mut() {
            let identity = s.capture.identity()?;
            state.reset(&identity, s.shape, batch.position, &batch.tables)?;
        }
        self.publisher.publish(batch.position, &[]);
        info!(view_rows_changed = changed, at = %s.capture.describe(batch.position), "repaired: the dataflow was rebuilt from the source's rows and the differences published");
        Ok(true)
    }

    /// Publishes a rebuilt dataflow's first step over the views' published
    /// rows: each on-change view gets its difference as ordinary changes,
    /// feed, scheduled and failed views are replaced whole. Returns the
    /// view rows changed.
    fn publish_rebuilt(&mut self, planned: &[Option<ViewDef>], step: Step) -> usize {
        let published = self.publisher.published();
        let mut contents: BTreeMap<(usize, usize), Vec<(Row, Diff)>> = BTreeMap::new();
        for (slot, part, changes) in step.views {
            contents.entry((slot, part)).or_default().extend(changes);
        }
        let mut changed = 0;
        for (slot, def) in planned.iter().enumerate() {
            let (Some(def), Some(view)) = (def, published.views.get(slot)) else { continue };
            let failed = matches!(view.status, denorm_serve::ViewStatus::Failed(_));
            if def.feed.is_none() && def.refresh == Refresh::OnChange && !failed {
                let mut diff = contents.remove(&(slot, 0)).unwrap_or_default();
                diff.extend(view.rows.iter().map(|(row, n)| (row.clone(), -n)));
                consolidate(&mut diff);
                changed += diff.len();
                self.publisher.apply(slot, &diff);
            } else {
                self.publisher.clear(slot);
                let parts: Vec<usize> = contents.range((slot, 0)..(slot + 1, 0)).map(|(&(_, p), _)| p).collect();
                for part in parts {
                    let rows = contents.remove(&(slot, part)).unwrap_or_default();
                    changed += rows.len();
                    self.publisher.apply_part(slot, part, &rows);
                }
                self.publisher.refreshed(slot);
            }
        }
        for (table, row, reason) in &step.rejected {
            error!(%table, ?row, %reason, "malformed row rejected while repairing");
        }
        for (slot, reason) in step.failures {
            error!(view = %self.sources.names[slot], error = %reason, "view failed while repairing");
            self.publisher.fail(slot, reason);
        }
        changed
    }

    /// The drift sampler: when due, `drift_sample` random keys of every
    /// keyed view are compared with the source.
    fn sample_drift(&mut self, s: &Session<'_>) {
        let DriftConfig { sample, every } = self.admin.drift;
        if sample == 0 {
            return;
        }
        let SourceConfig::Sqlite(sqlite) = &self.source else { return };
        let path = sqlite.path.clone();
        let now = Instant::now();
        let due = *self.admin.drift_due.get_or_insert(now + every);
        if now < due {
            return;
        }
        let published = self.publisher.published();
        let slots: Vec<usize> = (0..s.planned.len())
            .filter(|&slot| {
                let (Some(def), Some(view)) = (&s.planned[slot], published.views.get(slot)) else { return false };
                !view.info.is_multiset() && skip_reason(def, view, s.flow.position).is_none()
            })
            .collect();
        match self.compare(&path, s, &slots, Some(sample)) {
            Ok(Some(reports)) => {
                self.record_drift(&reports);
                self.admin.drift_due = Some(now + every);
            }
            Ok(None) => self.admin.drift_due = Some(now + DRIFT_RETRY),
            Err(e) => {
                warn!(error = %e, "the drift sampler could not read the source");
                self.admin.drift_due = Some(now + every);
            }
        }
    }
}

/// A step without the output of the kept slots (a reload's unchanged
/// views, whose published rows already are that output).
pub(super) fn without_slots(mut step: Step, kept: &[bool]) -> Step {
    let keep = |slot: &usize| !kept.get(*slot).copied().unwrap_or(false);
    step.views.retain(|(slot, _, _)| keep(slot));
    step.refreshed.retain(keep);
    step.failures.retain(|(slot, _)| keep(slot));
    step
}

/// Two definitions are the same view when only their place in the file differs.
fn same_definition(old: &ViewDef, new: &ViewDef) -> bool {
    let mut moved = old.clone();
    moved.location = new.location;
    moved == *new
}

/// Why a view is not compared with the source, if it is not.
fn skip_reason(def: &ViewDef, view: &PublishedView, position: Position) -> Option<String> {
    if matches!(view.status, denorm_serve::ViewStatus::Failed(_)) {
        return Some("the view failed; it is rebuilt by --repair".into());
    }
    if def.feed.is_some() {
        return Some("a feed view (partition_by) is not compared".into());
    }
    if def.refresh != Refresh::OnChange {
        return Some("a scheduled view (refresh = …) shows its last refresh, not the current position".into());
    }
    if view.position != Some(position) {
        return Some("the view is not at the engine's position yet".into());
    }
    None
}

/// The change log's last `seq` (what the capture calls its position).
fn log_head(conn: &Connection) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .query_row("SELECT seq FROM sqlite_sequence WHERE name = '_denorm_changes'", [], |r| r.get(0))
        .optional()
        .or_else(|e| match e {
            rusqlite::Error::SqliteFailure(_, Some(ref m)) if m.contains("no such table") => Ok(None),
            e => Err(e),
        })?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// Compares one view with its SELECT on the source (`keys`: only the keys
/// of these view rows), filling `report`.
fn compare_view(
    conn: &Connection,
    def: &ViewDef,
    view: &PublishedView,
    keys: Option<&[Row]>,
    report: &mut ViewReport,
) -> rusqlite::Result<()> {
    let info = &view.info;
    let width = info.columns.len();
    let key: Vec<usize> = if info.is_multiset() { (0..width).collect() } else { info.key.clone() };
    let mut source: Vec<Vec<Cell>> = Vec::new();
    let mut actual: Vec<Vec<Cell>> = Vec::new();
    match keys {
        None => {
            let sql = format!("SELECT * FROM ({})", def.select_sql);
            source = query_cells(conn, &sql, &[], width)?;
            for (row, n) in view.rows.iter() {
                let cells: Vec<Cell> = row.unpack().iter().map(cell).collect();
                for _ in 0..n.max(0) {
                    actual.push(cells.clone());
                }
            }
        }
        Some(rows) => {
            let conditions: Vec<String> = key
                .iter()
                .enumerate()
                .map(|(i, &k)| format!("\"{}\" IS ?{}", info.columns[k].name.replace('"', "\"\""), i + 1))
                .collect();
            let sql = format!("SELECT * FROM ({}) WHERE {}", def.select_sql, conditions.join(" AND "));
            for row in rows {
                let datums = row.unpack();
                let params: Vec<rusqlite::types::Value> =
                    key.iter().map(|&k| crate::fallback::to_sql(&datums[k])).collect();
                source.extend(query_cells(conn, &sql, &params, width)?);
                actual.push(datums.iter().map(cell).collect());
            }
        }
    }
    classify(&key, source, actual, report);
    Ok(())
}

fn query_cells(
    conn: &Connection,
    sql: &str,
    params: &[rusqlite::types::Value],
    width: usize,
) -> rusqlite::Result<Vec<Vec<Cell>>> {
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params.iter()), |row| {
        (0..width).map(|i| row.get_ref(i).map(|v| cell(&crate::fallback::from_sql(v)))).collect()
    })?;
    rows.collect()
}

/// Sorts the rows of both sides by key and counts the differences.
fn classify(key: &[usize], source: Vec<Vec<Cell>>, actual: Vec<Vec<Cell>>, report: &mut ViewReport) {
    // Per key: the source's rows, the view's rows.
    type Sides = (Vec<Vec<Cell>>, Vec<Vec<Cell>>);
    let mut by_key: BTreeMap<String, Sides> = BTreeMap::new();
    for row in source {
        by_key.entry(key_text(key, &row)).or_default().0.push(row);
    }
    for row in actual {
        by_key.entry(key_text(key, &row)).or_default().1.push(row);
    }
    for (_, (mut expected, mut found)) in by_key {
        report.checked += expected.len().max(found.len()) as u64;
        expected.retain(|e| match found.iter().position(|f| same_row(e, f)) {
            Some(i) => {
                found.swap_remove(i);
                false
            }
            None => true,
        });
        let sample = report.samples.len() < SAMPLES * 3;
        match (expected.is_empty(), found.is_empty()) {
            (true, true) => {}
            (false, true) => {
                report.missing += expected.len() as u64;
                if sample {
                    report.samples.push(json!({ "missing": rows_json(&expected) }));
                }
            }
            (true, false) => {
                report.extra += found.len() as u64;
                if sample {
                    report.samples.push(json!({ "extra": rows_json(&found) }));
                }
            }
            (false, false) => {
                report.different += expected.len().max(found.len()) as u64;
                if sample {
                    report.samples.push(json!({ "view": rows_json(&found), "source": rows_json(&expected) }));
                }
            }
        }
    }
}

/// A value as compared: the source's and the view's types meet here.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
}

fn cell(datum: &Datum<'_>) -> Cell {
    match datum {
        Datum::Null => Cell::Null,
        Datum::Bool(b) => Cell::Int(i64::from(*b)),
        Datum::Int(i) => Cell::Int(*i),
        Datum::Float(f) => Cell::Float(*f),
        Datum::Text(t) => Cell::Text(t.to_string()),
        Datum::Blob(b) => Cell::Bytes(b.to_vec()),
        other => Cell::Text(other.pg_text().unwrap_or_default()),
    }
}

fn same_cell(a: &Cell, b: &Cell) -> bool {
    let close = |x: f64, y: f64| x == y || (x - y).abs() <= FLOAT_TOLERANCE * x.abs().max(y.abs());
    match (a, b) {
        (Cell::Float(x), Cell::Float(y)) => close(*x, *y),
        (Cell::Int(i), Cell::Float(f)) | (Cell::Float(f), Cell::Int(i)) => close(*i as f64, *f),
        _ => a == b,
    }
}

fn same_row(a: &[Cell], b: &[Cell]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_cell(x, y))
}

/// The key columns of a row as text that equal keys share (an integral
/// float reads as the integer).
fn key_text(key: &[usize], row: &[Cell]) -> String {
    let mut out = String::new();
    for &k in key {
        match row.get(k) {
            None | Some(Cell::Null) => out.push('n'),
            Some(Cell::Int(i)) => out.push_str(&format!("i{i}")),
            Some(Cell::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => out.push_str(&format!("i{}", *f as i64)),
            Some(Cell::Float(f)) => out.push_str(&format!("f{f:e}")),
            Some(Cell::Text(t)) => out.push_str(&format!("t{}:{t}", t.len())),
            Some(Cell::Bytes(b)) => out.push_str(&format!("b{b:?}")),
        }
        out.push('\u{0}');
    }
    out
}

fn rows_json(rows: &[Vec<Cell>]) -> Json {
    Json::Array(
        rows.iter()
            .map(|row| {
                Json::Array(
                    row.iter()
                        .map(|c| match c {
                            Cell::Null => Json::Null,
                            Cell::Int(i) => json!(i),
                            Cell::Float(f) => json!(f),
                            Cell::Text(t) => json!(t),
                            Cell::Bytes(b) => {
                                json!(format!("\\x{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
                            }
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ints(values: &[i64]) -> Vec<Cell> {
        values.iter().map(|&v| Cell::Int(v)).collect()
    }

    /// Rows are matched by key: a key only in the source is missing, only
    /// in the view extra, in both with other values different; floats that
    /// differ in their last bits and integral floats against integers match.
    #[test]
    fn differences_are_classified_by_key() {
        let source = vec![ints(&[1, 10]), ints(&[2, 20]), ints(&[3, 30]), vec![Cell::Int(5), Cell::Float(0.3)]];
        let view = vec![ints(&[1, 10]), ints(&[2, 21]), ints(&[4, 40]), vec![Cell::Float(5.0), Cell::Float(0.1 + 0.2)]];
        let mut report = ViewReport::default();
        classify(&[0], source, view, &mut report);
        assert_eq!((report.missing, report.extra, report.different), (1, 1, 1), "{report:?}");
        assert_eq!(report.checked, 5);
        assert_eq!(report.samples.len(), 3);
        assert!(report.samples.contains(&json!({ "view": [[2, 21]], "source": [[2, 20]] })), "{:?}", report.samples);
    }

    /// A multiset view (no key) compares whole rows with their counts.
    #[test]
    fn multisets_compare_counts() {
        let source = vec![ints(&[1]), ints(&[1]), ints(&[2])];
        let view = vec![ints(&[1]), ints(&[2]), ints(&[2])];
        let mut report = ViewReport::default();
        classify(&[0], source, view, &mut report);
        assert_eq!((report.missing, report.extra, report.different), (1, 1, 0), "{report:?}");
        let mut report = ViewReport::default();
        classify(&[0], vec![ints(&[7])], vec![ints(&[7])], &mut report);
        assert_eq!((report.differences(), report.checked), (0, 1));
    }

    #[test]
    fn a_moved_view_is_the_same_definition() {
        let catalog = {
            let mut c = Catalog::new();
            c.add(denorm_types::TableSchema {
                name: "t".into(),
                columns: vec![denorm_types::ColumnSchema {
                    name: "id".into(),
                    ty: denorm_types::ScalarType::Int,
                    nullable: false,
                }],
                primary_key: vec![0],
                unique_keys: vec![],
            });
            c
        };
        let plan = |sql: &str| denorm_sql::plan_views(sql, &catalog, denorm_types::Dialect::Sqlite).unwrap();
        let a = plan("CREATE MATERIALIZED VIEW v AS SELECT id FROM t;");
        let b = plan("\n\n  CREATE MATERIALIZED VIEW v AS SELECT id FROM t;");
        let c = plan("CREATE MATERIALIZED VIEW v AS SELECT id FROM t WHERE id > 1;");
        assert_ne!(a[0].location, b[0].location);
        assert!(same_definition(&a[0], &b[0]));
        assert!(!same_definition(&a[0], &c[0]));
    }
}
