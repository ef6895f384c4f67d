//! JSON shapes of the HTTP API: rows, the `/views` listing and `/health`.
//!
//! Datums render as: integers → JSON integers; doubles → JSON numbers
//! (`3.0` stays `3.0`; NaN and ±infinity, which JSON cannot express, → `null`);
//! text → strings; booleans → `true`/`false`; NULL → `null`. A column of
//! type JSON (`json_object(…)`, `json_group_array(…)`) holds JSON text, which
//! is embedded as it is: `{"doc":{"id":1,"reviews":[…]}}`, not a string.
//! PostgreSQL's types render as its `to_json` does: numeric → the exact
//! number with its scale (`1.50`); date → `"2024-05-01"`; timestamp →
//! `"2024-05-01T10:00:00.5"`; timestamptz → `"2024-05-01T10:00:00.5+00:00"`;
//! uuid → `"a0eebc99-…"` (see `denorm_types::json`).

use std::collections::BTreeMap;

use denorm_types::{Datum, ScalarType};
use serde::Serialize;

use crate::metrics::lag;
use crate::state::{Published, PublishedView, SourceState, SourceStatus, ViewRows, ViewStatus};

/// Appends one datum as JSON.
pub fn write_datum(out: &mut Vec<u8>, datum: &Datum<'_>) {
    match datum {
        Datum::Null => out.extend_from_slice(b"null"),
        Datum::Bool(true) => out.extend_from_slice(b"true"),
        Datum::Bool(false) => out.extend_from_slice(b"false"),
        Datum::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        // serde_json writes non-finite doubles as null.
        Datum::Float(x) => write_json(out, x),
        Datum::Text(t) => write_json(out, t.as_ref()),
        // A BLOB is a string of PostgreSQL's bytea hex form, "\\x00ff".
        Datum::Numeric(_)
        | Datum::Date(_)
        | Datum::Timestamp(_)
        | Datum::TimestampTz(_)
        | Datum::Uuid(_)
        | Datum::Interval(_)
        | Datum::Blob(_) => {
            let mut text = String::new();
            denorm_types::json::write_datum(&mut text, datum, false, denorm_types::Dialect::Postgres);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("serializing a string or number into memory cannot fail");
}

/// Appends one cell: JSON text of a JSON column raw, anything else as
/// [`write_datum`] renders it.
pub fn write_cell(out: &mut Vec<u8>, datum: &Datum<'_>, ty: ScalarType) {
    match (ty, datum) {
        (ScalarType::Json, Datum::Text(json)) => out.extend_from_slice(json.as_bytes()),
        _ => write_datum(out, datum),
    }
}

/// Renders rows as a JSON array of objects; `columns` are the output
/// columns as (index into the row, name, type), in output order.
pub fn render_rows<'r, 'a: 'r>(
    columns: &[(usize, &str, ScalarType)],
    rows: impl Iterator<Item = &'r [Datum<'a>]>,
) -> Vec<u8> {
    let names: Vec<Vec<u8>> = columns.iter().map(|(_, name, _)| serde_json::to_vec(name).expect("a string")).collect();
    let mut out = Vec::with_capacity(1024);
    out.push(b'[');
    for (i, row) in rows.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (column, _, ty)) in columns.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&names[j]);
            out.push(b':');
            write_cell(&mut out, &row[*column], *ty);
        }
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// One entry of `GET /views`.
#[derive(Debug, Serialize, PartialEq)]
pub struct ViewSummary {
    pub name: String,
    pub columns: Vec<String>,
    pub key: Vec<String>,
    pub rows: u64,
    pub position: Option<u64>,
    pub freshness_seconds: f64,
    pub max_staleness_seconds: Option<f64>,
    pub within_sla: bool,
    /// "ok", "failed" or "starting".
    pub status: &'static str,
    pub error: Option<String>,
    pub column_types: BTreeMap<String, String>,
    pub tables: Vec<String>,
    /// Source changes to the view's tables that could not be decoded and
    /// were skipped (logged, counted in `denorm_changes_undecodable_total`):
    /// the view may miss them until the next snapshot.
    pub undecodable_changes: u64,
    /// `"on_change"` or the refresh period in seconds (`WITH (refresh = '1h')` → 3600).
    pub refresh: RefreshSummary,
    /// When the rows were last brought up to date (unix seconds): the last
    /// publish of an on-change view, the last refresh of a scheduled one;
    /// null before the first.
    pub refreshed_at: Option<f64>,
    /// What a read gets while the view is beyond its budget: `"serve"` (its
    /// rows, with `Denorm-Stale: true`) or `"fallback"` (key lookups are
    /// answered by the source).
    pub on_stale: &'static str,
    /// Live heap bytes of the view's operator state at the last sample
    /// (every few seconds; the `denorm_state_bytes` series summed over the
    /// view's operators; a node several views share counts under the first
    /// view reading it); null before the first sample. The published rows
    /// are not included.
    pub state_bytes: Option<u64>,
    /// A feed view's figures (absent for other views). Its `rows` count the
    /// rows fanned out on write plus the celebrities' content stored once
    /// (rows fanned out as references count once each, their content not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<FeedSummary>,
    /// The view's declared ORDER BY as an `order=` value (`score.desc.nullslast`):
    /// the order of reads without one. Absent for views without ORDER BY.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// Rows found different from the source at the view's last check
    /// (`denorm reconcile` or the drift sampler); 0 when it agreed.
    pub drift_rows: u64,
}

/// `feed` of a [`ViewSummary`].
#[derive(Debug, Serialize, PartialEq)]
pub struct FeedSummary {
    pub partition_by: String,
    /// E.g. `["created_at desc nulls first", "post_id desc nulls first"]`.
    pub order_by: Vec<String>,
    pub fanout_limit: u64,
    pub retain: Option<usize>,
    /// The edge table's column whose degree is compared with `fanout_limit`.
    pub fanout_column: String,
    /// Rows fanned out on write (one per partition and content row).
    pub materialized_rows: u64,
    /// Celebrities' content rows, stored once and merged in at read time.
    pub celebrity_content_rows: u64,
    /// Edges from partitions to celebrities.
    pub celebrity_edges: u64,
    /// Whether the rows fanned out are references (partition, order
    /// columns, content key) to content stored once.
    pub references: bool,
    /// The other authors' content rows, stored once and joined to the
    /// references at read time (0 when the fanned-out rows are whole).
    pub content_rows: u64,
}

/// `refresh` of a [`ViewSummary`]: serialized as the string `"on_change"`
/// or the period in seconds as a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RefreshSummary {
    OnChange,
    Every(f64),
}

impl Serialize for RefreshSummary {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            RefreshSummary::OnChange => serializer.serialize_str("on_change"),
            RefreshSummary::Every(seconds) => serializer.serialize_f64(*seconds),
        }
    }
}

pub fn view_summary(view: &PublishedView, source: &SourceStatus, now: f64) -> ViewSummary {
    let info = &view.info;
    let (status, error) = match &view.status {
        ViewStatus::Ok => ("ok", None),
        ViewStatus::Starting => ("starting", None),
        ViewStatus::Failed(reason) => ("failed", Some(reason.clone())),
    };
    ViewSummary {
        name: info.name.clone(),
        columns: info.columns.iter().map(|c| c.name.clone()).collect(),
        key: info.key.iter().map(|&k| info.columns[k].name.clone()).collect(),
        rows: view.rows.len() + view.parts.first().map_or(0, ViewRows::len),
        position: view.position.map(|p| p.0),
        freshness_seconds: view.freshness_seconds(source, now),
        max_staleness_seconds: info.max_staleness.map(|d| d.as_secs_f64()),
        within_sla: view.within_sla(source, now),
        status,
        error,
        column_types: info.columns.iter().map(|c| (c.name.clone(), c.ty.to_string())).collect(),
        tables: info.tables.clone(),
        undecodable_changes: view.undecodable_changes,
        drift_rows: view.drift_rows,
        refresh: info.refresh.map_or(RefreshSummary::OnChange, |d| RefreshSummary::Every(d.as_secs_f64())),
        refreshed_at: view.refreshed_at,
        on_stale: if info.fallback { "fallback" } else { "serve" },
        state_bytes: None,
        feed: info.feed.as_ref().map(|feed| FeedSummary {
            partition_by: info.columns[feed.partition].name.clone(),
            order_by: feed
                .order
                .iter()
                .map(|t| {
                    let direction = if t.descending { "desc" } else { "asc" };
                    let nulls = if t.nulls_first { "first" } else { "last" };
                    format!("{} {direction} nulls {nulls}", info.columns[t.column].name)
                })
                .collect(),
            fanout_limit: feed.fanout_limit,
            retain: feed.retain,
            fanout_column: feed.fan_column.clone(),
            materialized_rows: view.rows.len(),
            celebrity_content_rows: view.parts.first().map_or(0, ViewRows::len),
            celebrity_edges: view.parts.get(1).map_or(0, ViewRows::len),
            references: feed.reference.is_some(),
            content_rows: view.parts.get(2).map_or(0, ViewRows::len),
        }),
        order: info
            .order
            .iter()
            .map(|t| {
                let direction = if t.descending { "desc" } else { "asc" };
                let nulls = if t.nulls_first { "nullsfirst" } else { "nullslast" };
                format!("{}.{direction}.{nulls}", info.columns[t.column].name)
            })
            .collect(),
    }
}

/// The body of `GET /health`.
#[derive(Debug, Serialize, PartialEq)]
pub struct Health {
    /// "ok", "degraded" or "starting".
    pub status: &'static str,
    /// The source position of the state readers see; null before the first publish.
    pub source_position: Option<u64>,
    pub source: SourceHealth,
    pub views: usize,
    pub failed_views: Vec<FailedView>,
    /// Why the status is not "ok", one sentence each.
    pub problems: Vec<String>,
    /// Each configured sink (see `denorm-sink`): its name and its problem
    /// (null while in sync).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkHealth>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SinkHealth {
    pub name: String,
    pub problem: Option<String>,
}

/// Adds the sinks' states to `health`: a sink with a problem (behind,
/// failing) makes an "ok" status "degraded".
pub fn add_sinks(health: &mut Health, metrics: &crate::Metrics) {
    for (name, problem) in metrics.sink_problems() {
        if let Some(p) = &problem {
            health.problems.push(format!("sink \"{name}\": {p}"));
            if health.status == "ok" {
                health.status = "degraded";
            }
        }
        health.sinks.push(SinkHealth { name, problem });
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SourceHealth {
    /// "starting", "snapshotting", "following" or "retrying".
    pub state: &'static str,
    pub head_position: Option<u64>,
    /// Head position minus the published position.
    pub lag_changes: u64,
    pub oldest_pending_commit_at: Option<f64>,
    pub last_error: Option<String>,
    /// Progress of the snapshot while snapshotting.
    pub snapshot: Option<SnapshotProgress>,
    /// Replication slot figures (PostgreSQL sources only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationHealth>,
}

/// A replication slot's lag, see [`crate::ReplicationStatus`].
#[derive(Debug, Serialize, PartialEq)]
pub struct ReplicationHealth {
    pub slot: String,
    /// The server's WAL position as PostgreSQL writes it (`0/16B3748`).
    pub head_lsn: Option<String>,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    pub retained_wal_bytes: u64,
    pub max_retained_wal_bytes: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SnapshotProgress {
    pub rows_read: u64,
    pub rows_total: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FailedView {
    pub name: String,
    pub error: String,
}

/// Health of the published state: "starting" until the first publish,
/// "degraded" while a view has failed or the source is retrying, else "ok".
pub fn health(published: &Published) -> Health {
    let source = &published.source;
    let failed_views: Vec<FailedView> = published
        .views
        .iter()
        .filter_map(|v| match &v.status {
            ViewStatus::Failed(reason) => Some(FailedView { name: v.info.name.clone(), error: reason.clone() }),
            _ => None,
        })
        .collect();
    let mut problems: Vec<String> =
        failed_views.iter().map(|f| format!("view \"{}\" failed: {}", f.name, f.error)).collect();
    for v in published.views.iter().filter(|v| v.undecodable_changes > 0) {
        problems.push(format!(
            "view \"{}\" skipped {} undecodable source change(s); they are listed by GET /dlq (a later change \
             that fixes the row repairs the view)",
            v.info.name, v.undecodable_changes
        ));
    }
    for v in published.views.iter().filter(|v| v.drift_rows > 0) {
        problems.push(format!(
            "view \"{}\" differs from the source in {} row(s) (found by reconcile or the drift sampler); run \
             denorm reconcile --repair",
            v.info.name, v.drift_rows
        ));
    }
    if let SourceState::Retrying { error } = &source.state {
        // How long it has been unreachable: the views may lack every change since.
        let down = source
            .disconnected_since
            .map(|since| {
                format!(
                    " (unreachable for {:.0} s; readers get the state published before)",
                    (crate::state::now() - since).max(0.0)
                )
            })
            .unwrap_or_default();
        problems.push(format!("the source is retrying after an error{down}: {error}"));
    }
    problems.extend(published.replication.as_ref().and_then(|r| r.problem()));
    let status = if published.position.is_none() {
        problems.insert(0, "the initial snapshot is not yet published".to_owned());
        "starting"
    } else if problems.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let snapshot = match source.state {
        SourceState::Snapshotting { rows_read, rows_total } => Some(SnapshotProgress { rows_read, rows_total }),
        _ => None,
    };
    Health {
        status,
        source_position: published.position.map(|p| p.0),
        source: SourceHealth {
            state: source.state.name(),
            head_position: source.head.map(|p| p.0),
            lag_changes: lag(source.head.map(|p| p.0), published.position.map(|p| p.0)),
            oldest_pending_commit_at: source.oldest_pending_commit_at,
            last_error: source.last_error.clone(),
            snapshot,
            replication: published.replication.as_ref().map(|r| ReplicationHealth {
                slot: r.slot.clone(),
                head_lsn: r.head_text.clone(),
                lag_bytes: r.lag_bytes,
                lag_seconds: r.lag_seconds,
                retained_wal_bytes: r.retained_bytes,
                max_retained_wal_bytes: r.max_retained_bytes,
            }),
        },
        views: published.views.len(),
        failed_views,
        problems,
        sinks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{channel, ColumnInfo, ViewInfo};
    use denorm_types::{Position, Row, ScalarType};
    use std::time::Duration;

    fn json(d: Datum<'_>) -> String {
        let mut out = Vec::new();
        write_datum(&mut out, &d);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn datum_rendering_table() {
        let cases: Vec<(Datum<'_>, &str)> = vec![
            (Datum::Null, "null"),
            (Datum::Bool(true), "true"),
            (Datum::Bool(false), "false"),
            (Datum::Int(-42), "-42"),
            (Datum::Int(i64::MAX), "9223372036854775807"),
            (Datum::Float(3.0), "3.0"),
            (Datum::Float(0.1), "0.1"),
            (Datum::Float(-2.5e300), "-2.5e+300"),
            (Datum::Float(f64::NAN), "null"),
            (Datum::Float(f64::INFINITY), "null"),
            (Datum::Float(f64::NEG_INFINITY), "null"),
            (Datum::text("a\"b\\c\n"), r#""a\"b\\c\n""#),
            (Datum::text("żółw 🐢"), "\"żółw 🐢\""),
            // A SQLite BLOB: PostgreSQL's bytea text.
            (Datum::Blob(vec![0, 0xab, 0xff].into()), r#""\\x00abff""#),
            (Datum::Blob(vec![].into()), r#""\\x""#),
        ];
        for (datum, want) in cases {
            assert_eq!(json(datum.clone()), want, "{datum:?}");
        }
    }

    #[test]
    fn rows_render_as_objects_in_column_order() {
        let row = [Datum::Int(1), Datum::text("x"), Datum::Null];
        let rows: Vec<&[Datum<'_>]> = vec![&row, &row];
        let out = render_rows(&[(2, "c", ScalarType::Text), (0, "a\"", ScalarType::Int)], rows.into_iter());
        assert_eq!(String::from_utf8(out).unwrap(), r#"[{"c":null,"a\"":1},{"c":null,"a\"":1}]"#);
        assert_eq!(render_rows(&[(0, "a", ScalarType::Int)], std::iter::empty()), b"[]");
    }

    #[test]
    fn json_columns_are_embedded_raw() {
        let row = [Datum::text(r#"{"a":[1,2.5,null]}"#), Datum::text(r#"{"a":1}"#), Datum::Null];
        let rows: Vec<&[Datum<'_>]> = vec![&row];
        let columns = [(0, "doc", ScalarType::Json), (1, "text", ScalarType::Text), (2, "none", ScalarType::Json)];
        let out = String::from_utf8(render_rows(&columns, rows.into_iter())).unwrap();
        assert_eq!(out, r#"[{"doc":{"a":[1,2.5,null]},"text":"{\"a\":1}","none":null}]"#);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed[0]["doc"]["a"][1], 2.5);
    }

    fn views() -> Vec<ViewInfo> {
        let cols = vec![
            ColumnInfo { name: "id".into(), ty: ScalarType::Int },
            ColumnInfo { name: "n".into(), ty: ScalarType::Float },
        ];
        vec![
            ViewInfo {
                name: "a".into(),
                columns: cols.clone(),
                key: vec![0],
                max_staleness: Some(Duration::from_millis(1500)),
                tables: vec!["t".into()],
                ..Default::default()
            },
            ViewInfo {
                name: "b".into(),
                columns: cols,
                key: vec![0, 1],
                max_staleness: None,
                tables: vec!["u".into()],
                refresh: Some(Duration::from_secs(3600)),
                fallback: false,
                feed: None,
                order: Vec::new(),
                collations: Vec::new(),
            },
        ]
    }

    #[test]
    fn summary_and_health_through_a_life_cycle() {
        let (mut p, r) = channel(views());
        let h = health(&r.snapshot());
        assert_eq!((h.status, h.source_position, h.source.state), ("starting", None, "starting"));
        p.set_source(SourceStatus {
            state: SourceState::Snapshotting { rows_read: 10, rows_total: Some(100) },
            ..Default::default()
        });
        let h = health(&r.snapshot());
        assert_eq!(h.source.snapshot, Some(SnapshotProgress { rows_read: 10, rows_total: Some(100) }));
        let s = view_summary(&r.snapshot().views[0], &r.snapshot().source, 0.0);
        assert_eq!((s.status, s.position, s.rows), ("starting", None, 0));

        p.apply(0, &[(Row::pack([Datum::Int(1), Datum::Float(2.0)]), 1)]);
        p.publish_at(Position(4), &[("t".into(), 10.0)], 12.0);
        p.set_source(SourceStatus {
            state: SourceState::Following,
            head: Some(Position(9)),
            oldest_pending_commit_at: Some(20.0),
            last_error: None,
            disconnected_since: None,
        });
        let snap = r.snapshot();
        let s = view_summary(&snap.views[0], &snap.source, 21.0);
        assert_eq!(s.columns, vec!["id", "n"]);
        assert_eq!(s.key, vec!["id"]);
        assert_eq!((s.rows, s.position, s.status, s.error.clone()), (1, Some(4), "ok", None));
        assert_eq!((s.freshness_seconds, s.max_staleness_seconds, s.within_sla), (1.0, Some(1.5), true));
        assert_eq!(s.column_types.get("n").map(String::as_str), Some("double"));
        assert_eq!((s.refresh, s.refreshed_at, s.on_stale), (RefreshSummary::OnChange, Some(12.0), "serve"));
        let s = view_summary(&snap.views[0], &snap.source, 22.0);
        assert!(!s.within_sla);
        let h = health(&snap);
        assert_eq!(
            (h.status, h.source_position, h.source.head_position, h.source.lag_changes),
            ("ok", Some(4), Some(9), 5)
        );

        p.fail(1, "key violation: two rows have key (1)".into());
        p.publish_at(Position(9), &[], 30.0);
        p.set_source(SourceStatus {
            state: SourceState::Retrying { error: "database is locked".into() },
            last_error: Some("database is locked".into()),
            ..Default::default()
        });
        let h = health(&r.snapshot());
        assert_eq!(h.status, "degraded");
        assert_eq!(
            h.failed_views,
            vec![FailedView { name: "b".into(), error: "key violation: two rows have key (1)".into() }]
        );
        assert_eq!(h.problems.len(), 2, "{:?}", h.problems);
        let value = serde_json::to_value(view_summary(&r.snapshot().views[1], &r.snapshot().source, 30.0)).unwrap();
        assert_eq!(value["status"], "failed");
        assert_eq!(value["max_staleness_seconds"], serde_json::Value::Null);
        assert_eq!(value["refresh"], 3600.0);
        assert_eq!(value["refreshed_at"], 12.0, "the first publish refreshed it; failing keeps it");
        let value = serde_json::to_value(view_summary(&r.snapshot().views[0], &r.snapshot().source, 30.0)).unwrap();
        assert_eq!((value["refresh"].as_str(), value["refreshed_at"].as_f64()), (Some("on_change"), Some(30.0)));
    }
}
