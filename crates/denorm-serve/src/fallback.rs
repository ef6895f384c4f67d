//! `WITH (on_stale = 'fallback')`: key lookups of a stale view answered by
//! the source.
//!
//! The binary provides a [`Fallback`] (for SQLite: the view's defining
//! query restricted to the key, run on a read-only connection) and hands it
//! to [`serve_with`](crate::serve_with). A read of `GET /views/{name}` goes
//! to it when all of these hold:
//!
//! - the view was declared with `on_stale = 'fallback'` ([`ViewInfo::fallback`]);
//! - the view is beyond its `max_staleness` budget at the time of the read
//!   ([`PublishedView::within_sla`] is false), or failed, or still starting;
//! - the query has an `eq` filter on every key column ([`Plan::Lookup`](crate::query::Plan::Lookup)).
//!
//! The rows the source returns then go through the same filters, order,
//! `select`, `offset` and `limit` as view rows ([`render_source_rows`]).
//! Any other read is served from the view as usual.

use denorm_types::{ScalarType, Value};

use crate::query::{execute_values, lookup_key, paginate, Query};
use crate::state::{PublishedView, SourceStatus, ViewInfo, ViewStatus};

/// Reads a view's rows from the source database, for key lookups of views
/// with `on_stale = 'fallback'` while they are beyond their budget.
///
/// The server calls it on a blocking thread (`tokio::task::spawn_blocking`),
/// so it may block on I/O.
pub trait Fallback: Send + Sync + 'static {
    /// Rows of `view`'s defining query whose key columns equal `key` (values
    /// in key-column order), read from the source now. Each row has one
    /// value per column of the view, in column order. An error is answered
    /// as 503 `fallback_failed` with its text as the message.
    fn lookup(&self, view: &ViewInfo, key: &[Value]) -> Result<Vec<Vec<Value>>, String>;
}

/// Whether a read of `view` with `query` at unix time `now` goes to the
/// source (see the [module docs](self)), and with which key; `fallback`
/// says whether the server has a [`Fallback`] at all.
pub fn source_key(
    fallback: bool,
    view: &PublishedView,
    source: &SourceStatus,
    query: &Query,
    now: f64,
) -> Option<Vec<Value>> {
    if !fallback || !view.info.fallback {
        return None;
    }
    let unusable = match view.status {
        ViewStatus::Failed(_) | ViewStatus::Starting => true,
        ViewStatus::Ok => !view.within_sla(source, now),
    };
    if !unusable {
        return None;
    }
    lookup_key(&view.info, &query.filters)
}

/// Renders rows read from the source for `query` on `view` as view rows
/// are rendered: filters, order, `offset`, `limit` and `select` applied.
/// Rows whose width is not the view's are refused with a message.
pub fn render_source_rows(view: &ViewInfo, query: &Query, rows: Vec<Vec<Value>>) -> Result<Vec<u8>, String> {
    let rows = check_source_rows(view, rows)?;
    let matches = execute_values(view, query, rows);
    crate::select::render(view, query, paginate(&matches, query), crate::select::Format::Json, false)
}

/// `rows` when each has one value per column of `view`, else a message.
pub fn check_source_rows(view: &ViewInfo, rows: Vec<Vec<Value>>) -> Result<Vec<Vec<Value>>, String> {
    if let Some(bad) = rows.iter().find(|r| r.len() != view.columns.len()) {
        return Err(format!(
            "the source returned a row of {} values for view \"{}\", which has {} columns",
            bad.len(),
            view.name,
            view.columns.len()
        ));
    }
    Ok(rows)
}

/// The output columns of `query` as (index into the row, name).
pub(crate) fn output_columns<'v>(view: &'v ViewInfo, query: &Query) -> Vec<(usize, &'v str, ScalarType)> {
    let column = |i: usize| (i, view.columns[i].name.as_str(), view.columns[i].ty);
    match &query.select {
        Some(select) => select.iter().map(|&i| column(i)).collect(),
        None => (0..view.columns.len()).map(column).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::query::{decode_pairs, parse_query};
    use crate::state::{channel, ColumnInfo};
    use denorm_types::{Datum, Position, ScalarType};

    fn info(fallback: bool) -> ViewInfo {
        ViewInfo {
            name: "v".into(),
            columns: vec![
                ColumnInfo { name: "id".into(), ty: ScalarType::Int },
                ColumnInfo { name: "n".into(), ty: ScalarType::Text },
            ],
            key: vec![0],
            max_staleness: Some(Duration::from_secs(1)),
            tables: vec!["t".into()],
            fallback,
            ..Default::default()
        }
    }

    fn query(raw: &str) -> Query {
        parse_query(&info(true), &decode_pairs(raw)).unwrap()
    }

    #[test]
    fn only_full_key_lookups_of_unusable_fallback_views_go_to_the_source() {
        let (mut p, r) = channel(vec![info(true), info(false)]);
        let source = SourceStatus::default();
        let s = r.snapshot();
        let starting = &s.views[0];
        assert_eq!(source_key(true, starting, &source, &query("id=eq.1"), 0.0), Some(vec![Datum::Int(1)]));
        p.publish_at(Position(1), &[("t".into(), 99.5)], 100.0);
        let s = r.snapshot();
        assert_eq!(source_key(true, &s.views[0], &source, &query("id=eq.1"), 100.0), None, "within budget");
        p.publish_at(Position(2), &[("t".into(), 90.0)], 100.0);
        let s = r.snapshot();
        let (stale, no_fallback) = (&s.views[0], &s.views[1]);
        assert_eq!(source_key(true, stale, &source, &query("id=eq.1&n=eq.x"), 100.0), Some(vec![Datum::Int(1)]));
        assert_eq!(source_key(false, stale, &source, &query("id=eq.1"), 100.0), None, "no Fallback configured");
        assert_eq!(source_key(true, no_fallback, &source, &query("id=eq.1"), 100.0), None, "on_stale = 'serve'");
        assert_eq!(source_key(true, stale, &source, &query("id=gt.1"), 100.0), None, "not a lookup");
        assert_eq!(source_key(true, stale, &source, &query("id=not.eq.1"), 100.0), None, "not a lookup");
        assert_eq!(source_key(true, stale, &source, &query(""), 100.0), None, "a scan");
        p.publish_at(Position(3), &[], 100.0);
        p.fail(0, "boom".into());
        p.publish_at(Position(4), &[("t".into(), 100.0)], 100.0);
        let s = r.snapshot();
        assert!(matches!(s.views[0].status, ViewStatus::Failed(_)));
        assert_eq!(source_key(true, &s.views[0], &source, &query("id=eq.2"), 100.0), Some(vec![Datum::Int(2)]));
    }

    #[test]
    fn source_rows_get_the_query_applied() {
        let v = info(true);
        let rows = || vec![vec![Datum::Int(1), Datum::text("b")], vec![Datum::Int(1), Datum::text("a")]];
        let render = |raw: &str| String::from_utf8(render_source_rows(&v, &query(raw), rows()).unwrap()).unwrap();
        assert_eq!(render("id=eq.1"), r#"[{"id":1,"n":"a"},{"id":1,"n":"b"}]"#);
        assert_eq!(render("id=eq.1&n=neq.a&select=n"), r#"[{"n":"b"}]"#);
        assert_eq!(render("id=eq.1&order=n.desc&limit=1"), r#"[{"id":1,"n":"b"}]"#);
        assert_eq!(render("id=eq.1&offset=1"), r#"[{"id":1,"n":"b"}]"#);
        let err = render_source_rows(&v, &query("id=eq.1"), vec![vec![Datum::Int(1)]]).unwrap_err();
        assert!(err.contains("1 values") && err.contains("2 columns"), "{err}");
    }
}
