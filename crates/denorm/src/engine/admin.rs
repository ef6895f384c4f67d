//! The engine's side of the admin surface (`denorm_serve::admin`): requests
//! are answered between batches, on the engine thread, so every one of them
//! sees the views and the dataflow at one batch boundary.
//!
//! **Reload** (`POST /admin/reload`, SIGHUP): the configuration and the
//! views files are read and planned against the session's catalog; any
//! error refuses the whole reload (400 with every error; nothing changes).
//! Otherwise the publisher's view set is replaced at once
//! ([`denorm_serve::Publisher::reconfigure`]): unchanged views (same definition, wherever
//! they sit in the files) keep their published state, added and changed
//! views start empty, dropped views are gone. When the new views capture the
//! same columns, that is all done in place: the running dataflow keeps the
//! unchanged views and drops the others ([`Flow::remap`]), and the added and
//! changed views are built beside it from the state directory's rows
//! ([`Flow::add`]; no source read, the unchanged views never stop). Else the
//! session ends and the next one re-plans (installing capture for the new
//! columns and snapshotting the source); while it loads, the kept views are
//! neither cleared nor re-applied when the load is at the position they were
//! published at, else every view is rebuilt and published at once (readers
//! keep the old rows until then). The reply is sent once the new views are
//! published.
//!
//! **Reconcile** (`POST /admin/reconcile`, `denorm reconcile`): each
//! view's defining SELECT runs on the source in one snapshot and its rows
//! are compared with the view's published rows by key (see [`compare`]).
//! SQLite: the snapshot is a read transaction in which the change log's
//! last `seq` equals the engine's position (else the engine applies more
//! and tries again at the next batch boundary, for up to [`PATIENCE`]): the
//! comparison is exact. PostgreSQL: a REPEATABLE READ snapshot whose WAL
//! insert position is L; the keys that differ are rechecked in a second
//! snapshot once the engine's position passed L (the publisher asks the
//! stream for progress meanwhile), and reported only when both sides' rows
//! are unchanged and still differ — a difference caused by a write in
//! flight is not reported (nor is a real one on a key written between the
//! two snapshots). `repair`, SQLite: every captured table is read at the
//! engine's position (a snapshot read on a second capture handle), the
//! dataflow is rebuilt from those rows, each view's difference from its
//! published rows is published as ordinary changes (feed, scheduled and
//! failed views are replaced whole), and the state directory's input rows
//! are rewritten; PostgreSQL: the session ends and the next one takes a new
//! snapshot (slot recreated with its exported snapshot), whose load
//! publishes the differences the same way. The views keep serving
//! throughout.
//!
//! **Drift sampler** (`[engine] drift_sample`, `drift_every`): each period,
//! for every keyed on-change view, `drift_sample` random keys of its
//! published rows are checked the same way (the SELECT restricted to each
//! key; on PostgreSQL confirmed at the next tick): `denorm_drift_rows{view}`,
//! `denorm_reconcile_checked_rows_total`, and `/health` degraded while a
//! view differs. It sees rows that are wrong or should not exist; a row
//! missing from the view is found by a full reconcile.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use denorm_serve::admin::{AdminCommand, AdminInbox, AdminReply, AdminRequest};
use denorm_serve::PublishedView;
use denorm_source::sqlite::SqliteCapture;
use denorm_source::{CaptureSpec, ChangeSource};
use denorm_sql::{OnStale, Refresh, ViewDef};
use denorm_types::{consolidate, Catalog, Diff, Position, Row};
use serde_json::{json, Value as Json};
use tracing::{error, info, warn};

use super::compare::{self, Cell, SourceReader, ViewReport};
use super::flow::{Flow, Step};
use super::{capture_spec, End, Engine, EngineError, ViewSources};
use crate::config::drift::DriftConfig;
use crate::config::SourceConfig;
use crate::state_dir::StateDir;

/// How long a reconcile waits for a moment at which the source's change
/// log is not ahead of the engine.
const PATIENCE: Duration = Duration::from_secs(30);
/// A drift sample that met a moving source is tried again this soon.
const DRIFT_RETRY: Duration = Duration::from_millis(200);

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
    /// A PostgreSQL repair: the request and its report, answered once the
    /// next session's snapshot is published.
    repairing: Option<(AdminRequest, Json)>,
    /// The drift sampler's keys to confirm (PostgreSQL): the snapshot's
    /// position, when it was taken, the reports.
    drift_suspects: Option<(u64, Instant, Vec<ViewReport>)>,
}

#[derive(Debug)]
struct Waiting {
    request: AdminRequest,
    views: Vec<String>,
    repair: bool,
    since: Instant,
    /// PostgreSQL: the first snapshot's position and reports, whose
    /// suspects are confirmed once the engine passed that position.
    first: Option<(u64, Vec<ViewReport>)>,
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
    /// The session's views by publishing slot (a reload replaces them).
    pub planned: &'a mut Vec<Option<ViewDef>>,
    pub spec: &'a CaptureSpec,
    pub shape: &'a str,
    pub flow: &'a mut Flow,
    pub state: Option<&'a mut StateDir>,
    pub capture: &'a mut dyn ChangeSource,
}

/// The views a reload installs, and how they relate to the running ones.
struct ReloadPlan {
    sources: ViewSources,
    /// The new views by publishing slot.
    planned: Vec<Option<ViewDef>>,
    infos: Vec<denorm_serve::ViewInfo>,
    kept: Vec<Option<usize>>,
    added: Vec<String>,
    changed: Vec<String>,
    dropped: Vec<String>,
    unchanged: Vec<String>,
}

impl Engine {
    /// Between two batches: answers a waiting or new admin request and runs
    /// the drift sampler when due. `Some(end)` ends the session (a reload).
    pub(super) fn between_batches(&mut self, s: &mut Session<'_>) -> Result<Option<End>, EngineError> {
        if let Some(waiting) = self.admin.waiting.take() {
            if let Some(end) = self.reconcile(s, waiting)? {
                return Ok(Some(end));
            }
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
                        if let Some(end) =
                            self.reconcile(s, Waiting { request, views, repair, since: Instant::now(), first: None })?
                        {
                            return Ok(Some(end));
                        }
                    }
                    AdminCommand::ReconcileSink { sink, repair } => self.reconcile_sink(request, sink, repair),
                }
            }
        }
        self.sample_drift(s);
        Ok(None)
    }

    /// `denorm reconcile --sink NAME`: the sink's runner compares (and
    /// repairs) once it has caught up; a thread of its own waits for it, so
    /// batches go on meanwhile.
    fn reconcile_sink(&mut self, request: AdminRequest, sink: String, repair: bool) {
        let Some(hub) = self.sinks.clone() else {
            request.answer(AdminReply::refused(
                404,
                format!("no sink named \"{sink}\": the configuration has no [[sink]]"),
                vec![],
            ));
            return;
        };
        info!(%sink, repair, "reconciling a sink by request");
        std::thread::spawn(move || {
            let reply = match hub.reconcile(&sink, repair) {
                Ok(views) => {
                    let differences: u64 = views.iter().map(|v| v.drift()).sum();
                    let repaired = repair && views.iter().all(|v| v.drift() == 0 || v.repaired);
                    let views: Vec<_> = views
                        .iter()
                        .map(|v| {
                            json!({
                                "view": v.view, "missing": v.missing, "extra": v.extra,
                                "different": v.different, "repaired": v.repaired,
                            })
                        })
                        .collect();
                    AdminReply::ok(json!({
                        "sink": sink, "views": views, "differences": differences, "repaired": repaired,
                    }))
                }
                Err(reason) => AdminReply::refused(409, reason, vec![]),
            };
            request.answer(reply);
        });
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

    fn reload(&mut self, s: &mut Session<'_>, request: AdminRequest) -> Option<End> {
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
        // The same captured columns: the new views are built beside the
        // running ones from the state directory's rows.
        let tables: Vec<String> = s.spec.tables.iter().map(|t| t.name.clone()).collect();
        let stored = match s.state.as_deref() {
            Some(state) if capture_spec(&plan.planned, s.catalog) == *s.spec => match state.rows_of(&tables) {
                Ok(stored) if stored.position == s.flow.position => Some(stored),
                Ok(_) => None,
                Err(e) => {
                    warn!(error = %super::error_chain(&e), "reload: cannot read the state directory; rebuilding every view");
                    None
                }
            },
            _ => None,
        };
        if let Some(stored) = stored {
            let count = self.sources.names.len();
            match self.reload_in_place(s, plan, stored) {
                Ok(position) => {
                    let mut body = summary;
                    body["position"] = json!(position.0);
                    body["rebuilt_all"] = json!(false);
                    info!("reload done: the new views were built beside the running ones");
                    request.answer(AdminReply::ok(body));
                    return None;
                }
                // The views are switched already: the next session rebuilds them all.
                Err(e) => {
                    warn!(error = %super::error_chain(&e), "reload: cannot build the new views in place; rebuilding every view");
                    let kept = vec![None; count.max(self.sources.names.len())];
                    self.admin.reloaded =
                        Some(Reloaded { request: Some(request), summary, kept, at: Position(u64::MAX) });
                    return Some(End::Reload);
                }
            }
        }
        self.publisher.reconfigure(plan.infos, &plan.kept);
        self.sources = plan.sources;
        self.admin.reloaded = Some(Reloaded { request: Some(request), summary, kept: plan.kept, at: s.flow.position });
        Some(End::Reload)
    }

    /// A reload whose views capture the same columns: the running dataflow
    /// keeps the unchanged views and drops the others; the added and
    /// changed views are built beside it from `stored` (the state
    /// directory's rows at the flow's position: no source read, no replay of
    /// the unchanged views). Returns the position they are published at.
    fn reload_in_place(
        &mut self,
        s: &mut Session<'_>,
        plan: ReloadPlan,
        stored: crate::state_dir::Stored,
    ) -> Result<Position, EngineError> {
        let mut map = vec![None; self.sources.names.len()];
        for (new, old) in plan.kept.iter().enumerate() {
            if let Some(old) = old {
                map[*old] = Some(new);
            }
        }
        self.publisher.reconfigure(plan.infos, &plan.kept);
        self.sources = plan.sources;
        s.flow.remap(&map);
        *s.planned = plan.planned;
        self.heal.remap(&map, s.planned, s.catalog);
        let built: Vec<(usize, ViewDef)> = s
            .planned
            .iter()
            .enumerate()
            .filter(|(slot, _)| plan.kept[*slot].is_none())
            .filter_map(|(slot, def)| def.clone().map(|d| (slot, d)))
            .collect();
        let batch = denorm_core::SourceBatch { position: s.flow.position, tables: stored.tables };
        let started = Instant::now();
        let step = s.flow.add(s.catalog.clone(), &built, self.source.dialect(), &batch, started)?;
        self.publish(step, s.flow.position, &[], started);
        Ok(s.flow.position)
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
        let planned = views.into_iter().map(|(v, _)| Some(v)).collect();
        Ok(ReloadPlan {
            sources: ViewSources { files, names },
            planned,
            infos,
            kept,
            added,
            changed,
            dropped,
            unchanged,
        })
    }

    fn reconcile(&mut self, s: &mut Session<'_>, mut waiting: Waiting) -> Result<Option<End>, EngineError> {
        let slots = match self.slots_named(&waiting.views) {
            Ok(slots) => slots,
            Err(unknown) => {
                waiting.request.answer(AdminReply::refused(400, "unknown view(s)", unknown));
                return Ok(None);
            }
        };
        let (at, reports) = match waiting.first.take() {
            Some(first) => first,
            None => match self.compare(s, &slots, None) {
                Ok(Some(checked)) => checked,
                Ok(None) => {
                    self.wait_longer(waiting);
                    return Ok(None);
                }
                Err(e) => {
                    waiting.request.answer(AdminReply::refused(500, e, vec![]));
                    return Ok(None);
                }
            },
        };
        let exact = matches!(self.source, SourceConfig::Sqlite(_));
        let reports = if exact || reports.iter().all(|r| r.suspects.is_empty()) {
            reports
        } else if s.flow.position.0 < at {
            // PostgreSQL: differences are confirmed once the engine passed
            // the snapshot's position.
            self.publisher.want(Some(Position(at)));
            waiting.first = Some((at, reports));
            self.wait_longer(waiting);
            return Ok(None);
        } else {
            self.publisher.want(None);
            match self.confirm(s, reports) {
                Ok(reports) => reports,
                Err(e) => {
                    waiting.request.answer(AdminReply::refused(500, e, vec![]));
                    return Ok(None);
                }
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
            let SourceConfig::Sqlite(sqlite) = &self.source else {
                // PostgreSQL: a new snapshot, its difference published by
                // the next session's load; answered then.
                info!(differences, "repair: taking a new snapshot of the source");
                self.admin.repairing = Some((waiting.request, body));
                return Ok(Some(End::Resnapshot));
            };
            let path = sqlite.path.clone();
            if !self.repair(s, &path)? {
                self.wait_longer(waiting);
                return Ok(None);
            }
            body["repaired"] = json!(true);
            // Checked again at once when the source has not moved meanwhile.
            if let Ok(Some((_, after))) = self.compare(s, &slots, None) {
                self.record_drift(&after);
                body["differences_after_repair"] = json!(after.iter().map(ViewReport::differences).sum::<u64>());
            }
        }
        info!(differences, repair = waiting.repair, "reconcile done");
        waiting.request.answer(AdminReply::ok(body));
        Ok(None)
    }

    /// Keeps a reconcile for the next batch boundary, or gives up.
    fn wait_longer(&mut self, waiting: Waiting) {
        if waiting.since.elapsed() < PATIENCE {
            self.admin.waiting = Some(waiting);
        } else {
            self.publisher.want(None);
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

    /// Compares `slots` with the source in one snapshot: all rows, or
    /// `sample` random keys per keyed view; returns the snapshot's
    /// position and the reports. SQLite: `Ok(None)` when the change log is
    /// ahead of the engine (the comparison is exact, at the engine's
    /// position). PostgreSQL: the reports' suspects still need
    /// [confirming](Self::confirm).
    fn compare(
        &mut self,
        s: &Session<'_>,
        slots: &[usize],
        sample: Option<u32>,
    ) -> Result<Option<(u64, Vec<ViewReport>)>, String> {
        let mut reader = SourceReader::open(&self.source)?;
        let at = reader.begin()?;
        if matches!(reader, SourceReader::Sqlite(_)) && at != s.flow.position.0 {
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
                let key = compare::match_columns(&view.info);
                let read = match sample {
                    None => {
                        reader.rows(&def.select_sql, &view.info, None).map(|rows| (rows, compare::view_cells(view)))
                    }
                    Some(n) => {
                        let rows = self.sample_rows(view, n as usize);
                        let mut found: Vec<Vec<Cell>> =
                            rows.iter().map(|row| row.unpack().iter().map(compare::cell).collect()).collect();
                        compare::normalize(&mut found, &view.info);
                        let mut source = Vec::new();
                        let mut failed = None;
                        for cells in &found {
                            let key_cells: Vec<Cell> = key.iter().map(|&k| cells[k].clone()).collect();
                            match reader.rows(&def.select_sql, &view.info, Some((&key, &key_cells))) {
                                Ok(rows) => source.extend(rows),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        failed.map_or(Ok((source, found)), Err)
                    }
                };
                match read {
                    Ok((source, found)) => compare::classify(&key, source, found, &mut report),
                    Err(e) => report.skipped = Some(e),
                }
            }
            reports.push(report);
        }
        reader.end()?;
        Ok(Some((at, reports)))
    }

    /// Rechecks every suspect of `reports` in a new snapshot (see
    /// [`compare::confirmed`]).
    fn confirm(&mut self, s: &Session<'_>, reports: Vec<ViewReport>) -> Result<Vec<ViewReport>, String> {
        let mut reader = SourceReader::open(&self.source)?;
        reader.begin()?;
        let published = self.publisher.published();
        let mut out = Vec::with_capacity(reports.len());
        for report in reports {
            let def = s.planned.get(report.slot).and_then(Option::as_ref);
            match (def, published.views.get(report.slot)) {
                (Some(def), Some(view)) if report.skipped.is_none() && !report.suspects.is_empty() => {
                    out.push(compare::confirmed(&mut reader, &def.select_sql, view, report)?);
                }
                _ => out.push(report),
            }
        }
        reader.end()?;
        Ok(out)
    }

    /// Up to `n` random rows of a keyed view (without walking it: see
    /// [`denorm_serve::ViewRows::sample`]).
    fn sample_rows(&mut self, view: &PublishedView, n: usize) -> Vec<Row> {
        let admin = &mut self.admin;
        view.rows.sample(n, || admin.random()).into_iter().flatten().map(|(row, _)| row.clone()).collect()
    }

    /// Rebuilds the dataflow from every captured table read at the engine's
    /// position (SQLite) and publishes each view's difference; false when
    /// the source moved past the position meanwhile (nothing changed).
    fn repair(&mut self, s: &mut Session<'_>, path: &Path) -> Result<bool, EngineError> {
        let mut reader = SqliteCapture::open(path, s.catalog, s.spec)?;
        let snapshot = reader.snapshot(&mut |_| {})?;
        drop(reader);
        if snapshot.position != s.flow.position {
            return Ok(false);
        }
        let batch = super::snapshot_batch(snapshot);
        let position = batch.position;
        let mut fresh = Flow::new(s.catalog.clone(), s.planned, self.source.dialect(), Instant::now())?;
        let step = fresh.snapshot(&batch);
        let changed = self.publish_rebuilt(s.planned, step);
        *s.flow = fresh;
        if let Some(state) = s.state.as_deref_mut() {
            let identity = s.capture.identity()?;
            state.reset(&identity, s.shape, batch.position, batch.tables)?;
        }
        // The sinks sync with the repaired published state (their rows were the view's).
        self.first_publish = true;
        self.publish_state(position, &[], &[]);
        info!(view_rows_changed = changed, at = %s.capture.describe(position), "repaired: the dataflow was rebuilt from the source's rows and the differences published");
        Ok(true)
    }

    /// Whether the session now starting must snapshot the source (a
    /// PostgreSQL repair), even with a valid state directory.
    pub(super) fn must_snapshot(&self) -> bool {
        self.admin.repairing.is_some()
    }

    /// Publishes the first step of a session loaded for a repair: each
    /// view's difference from its published rows, as ordinary changes;
    /// answers the repair.
    pub(super) fn publish_repaired(&mut self, planned: &[Option<ViewDef>], step: Step, position: Position) {
        let Some((request, mut body)) = self.admin.repairing.take() else { return };
        let changed = self.publish_rebuilt(planned, step);
        self.first_publish = true;
        self.publish_state(position, &[], &[]);
        info!(
            view_rows_changed = changed,
            "repaired: a new snapshot of the source was taken and the differences published"
        );
        body["repaired"] = json!(true);
        body["position"] = json!(position.0);
        request.answer(AdminReply::ok(body));
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
    /// keyed view are compared with the source (on PostgreSQL, the keys
    /// that differ are confirmed once the engine passed the snapshot).
    fn sample_drift(&mut self, s: &Session<'_>) {
        let DriftConfig { sample, every } = self.admin.drift;
        if sample == 0 {
            return;
        }
        let now = Instant::now();
        let due = *self.admin.drift_due.get_or_insert(now + every);
        if now < due {
            return;
        }
        if let Some((at, since, reports)) = self.admin.drift_suspects.take() {
            if s.flow.position.0 >= at {
                self.publisher.want(None);
                match self.confirm(s, reports) {
                    Ok(reports) => self.record_drift(&reports),
                    Err(e) => warn!(error = %e, "the drift sampler could not read the source"),
                }
                self.admin.drift_due = Some(now + every);
            } else if since.elapsed() > PATIENCE {
                self.publisher.want(None);
                self.admin.drift_due = Some(now + every);
            } else {
                self.admin.drift_suspects = Some((at, since, reports));
                self.admin.drift_due = Some(now + DRIFT_RETRY);
            }
            return;
        }
        let published = self.publisher.published();
        let slots: Vec<usize> = (0..s.planned.len())
            .filter(|&slot| {
                let (Some(def), Some(view)) = (&s.planned[slot], published.views.get(slot)) else { return false };
                !view.info.is_multiset() && skip_reason(def, view, s.flow.position).is_none()
            })
            .collect();
        match self.compare(s, &slots, Some(sample)) {
            Ok(Some((at, reports))) => {
                let exact = matches!(self.source, SourceConfig::Sqlite(_));
                let (suspect, clean): (Vec<ViewReport>, Vec<ViewReport>) =
                    reports.into_iter().partition(|r| !exact && !r.suspects.is_empty());
                self.record_drift(&clean);
                if suspect.is_empty() {
                    self.admin.drift_due = Some(now + every);
                } else {
                    self.publisher.want(Some(Position(at)));
                    self.admin.drift_suspects = Some((at, now, suspect));
                    self.admin.drift_due = Some(now + DRIFT_RETRY);
                }
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

#[cfg(test)]
mod tests {
    use super::*;

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
