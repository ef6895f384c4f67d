//! The HTTP API (axum): `/views`, `/views/{name}`, `/health`, `/metrics`.
//!
//! Every handler loads one [`Published`](crate::Published) snapshot and
//! answers from it alone, so a response never mixes two batches and never
//! waits for the engine.

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::fallback::{output_columns, render_source_rows, source_key, Fallback};
use crate::json::{health, render_rows, view_summary, ViewSummary};
use crate::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::query::{decode_pairs, execute, paginate, parse_query, BadParameter, Query};
use crate::state::{now, Published, Reader, ViewInfo, ViewStatus, WaitError};
use denorm_types::{Position, Value};

/// The response header carrying the source position a response reflects.
pub const POSITION_HEADER: &str = "denorm-position";
/// The response header of `GET /views/{name}` saying where the rows come
/// from: `view` (the published view) or `source` (a [`Fallback`] lookup).
pub const SERVED_BY_HEADER: &str = "denorm-served-by";
/// The response header `Denorm-Stale: true`, on rows served from a view
/// that is beyond its `max_staleness` budget.
pub const STALE_HEADER: &str = "denorm-stale";

/// Everything an API request can fail with; each maps to one HTTP status
/// and one stable `error_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("unknown view \"{name}\"")]
    UnknownView { name: String, views: Vec<String> },
    #[error("bad parameter \"{}\": {}", .0.parameter, .0.message)]
    BadParameter(BadParameter),
    #[error("view \"{name}\" failed and is no longer maintained: {reason}")]
    ViewFailed { name: String, reason: String },
    #[error("view \"{name}\" is not available yet: its initial snapshot is under way")]
    Starting { name: String },
    #[error("no such endpoint: {path}")]
    NotFound { path: String },
    #[error("position {wanted} was not reached within {timeout_ms} ms (the views reflect position {})", published.map_or("none".to_owned(), |p| p.to_string()))]
    PositionTimeout { wanted: u64, published: Option<u64>, timeout_ms: u64 },
    #[error("view \"{name}\" is beyond its staleness budget and reading the source failed: {message}")]
    FallbackFailed { name: String, message: String },
}

impl From<BadParameter> for ApiError {
    fn from(e: BadParameter) -> Self {
        ApiError::BadParameter(e)
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::UnknownView { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::BadParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::ViewFailed { .. } | ApiError::Starting { .. } | ApiError::FallbackFailed { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::PositionTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The stable machine-readable code in the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownView { .. } => "unknown_view",
            ApiError::BadParameter(_) => "bad_parameter",
            ApiError::ViewFailed { .. } => "view_failed",
            ApiError::Starting { .. } => "starting",
            ApiError::NotFound { .. } => "not_found",
            ApiError::PositionTimeout { .. } => "position_timeout",
            ApiError::FallbackFailed { .. } => "fallback_failed",
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ApiError::UnknownView { views, .. } => Some(format!("views: {}", views.join(", "))),
            ApiError::BadParameter(e) => e.hint.clone(),
            ApiError::ViewFailed { .. } => {
                Some("the view keeps its last good rows; restart denorm after fixing the cause".to_owned())
            }
            ApiError::Starting { .. } => Some("retry shortly; GET /health shows snapshot progress".to_owned()),
            ApiError::NotFound { .. } => Some("endpoints: /views, /views/{name}, /health, /metrics".to_owned()),
            ApiError::PositionTimeout { .. } => Some(format!(
                "denorm is behind the source; retry, raise {TIMEOUT_HEADER} (at most {} s), or check /health",
                MAX_WAIT.as_secs()
            )),
            ApiError::FallbackFailed { .. } => Some(
                "retry; a read without eq on every key column is served from the view's rows (marked Denorm-Stale)"
                    .to_owned(),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code(), "message": self.to_string(), "hint": self.hint()}});
        let response = (self.status(), Json(body)).into_response();
        match self {
            ApiError::PositionTimeout { published, .. } => with_position(response, published),
            _ => response,
        }
    }
}

/// Read-your-writes: a request carrying this header (a source position, as
/// the application read it after its commit) is answered only once the
/// views reflect at least that position.
pub const MIN_POSITION_HEADER: &str = "denorm-min-position";
/// How long such a request may wait (`250ms`, `2s`, or milliseconds); also
/// accepted as the `timeout` query parameter. Default [`DEFAULT_WAIT`].
pub const TIMEOUT_HEADER: &str = "denorm-timeout";
pub const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The minimum position and the wait of a read-your-writes request, if any.
/// The `timeout` query parameter counts only when the view has no column of
/// that name (`column_named_timeout`).
fn wait_request(
    headers: &HeaderMap,
    raw_query: &str,
    column_named_timeout: bool,
) -> Result<Option<(Position, std::time::Duration)>, ApiError> {
    let bad = |parameter: &str, message: String| {
        ApiError::BadParameter(BadParameter { parameter: parameter.to_owned(), message, hint: None })
    };
    let Some(min) = headers.get(MIN_POSITION_HEADER) else { return Ok(None) };
    let min = min.to_str().ok().and_then(parse_position).ok_or_else(|| {
        bad(
            MIN_POSITION_HEADER,
            "expected a source position: a non-negative integer, or a PostgreSQL LSN such as 16/B374D848".to_owned(),
        )
    })?;
    let from_query =
        decode_pairs(raw_query).into_iter().find(|(k, _)| k == "timeout" && !column_named_timeout).map(|(_, v)| v);
    let from_header = headers.get(TIMEOUT_HEADER).map(|v| v.to_str().unwrap_or("?").to_owned());
    let timeout = match from_header.or(from_query) {
        None => DEFAULT_WAIT,
        Some(text) => parse_wait(&text).ok_or_else(|| {
            bad(TIMEOUT_HEADER, format!("expected a duration such as 250ms or 2s (at most 60s), got \"{text}\""))
        })?,
    };
    Ok(Some((Position(min), timeout)))
}

/// A position as an integer (SQLite's change-log id; PostgreSQL's LSN as a
/// number, as `/views` shows it) or as PostgreSQL writes an LSN, `X/Y` in
/// hexadecimal (what `SELECT pg_current_wal_lsn()` returns).
pub(crate) fn parse_position(text: &str) -> Option<u64> {
    let text = text.trim();
    let Some((high, low)) = text.split_once('/') else { return text.parse().ok() };
    let hex = |part: &str| {
        (!part.is_empty() && part.len() <= 8 && part.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(part, 16).ok())
            .flatten()
    };
    Some(hex(high)? << 32 | hex(low)?)
}

/// `250ms`, `2s`, `1.5s` or a number of milliseconds, at most [`MAX_WAIT`].
pub(crate) fn parse_wait(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1e-3)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds >= 0.0 && seconds <= MAX_WAIT.as_secs_f64())
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

/// What the handlers share: the published state and the optional source
/// reader for `on_stale = 'fallback'` views.
#[derive(Clone)]
struct App {
    reader: Reader,
    fallback: Option<Arc<dyn Fallback>>,
}

/// The router over `reader`'s published state, without a [`Fallback`]:
/// every read is served from the views.
pub fn router(reader: Reader) -> Router {
    router_with(reader, None)
}

/// The router over `reader`'s published state; key lookups of stale views
/// with `on_stale = 'fallback'` go to `fallback` when one is given (see
/// [`crate::fallback`]).
pub fn router_with(reader: Reader, fallback: Option<Arc<dyn Fallback>>) -> Router {
    let app = App { reader, fallback };
    Router::new()
        .route("/views", get(list_views))
        .route("/views/{name}", get(read_view))
        .route("/health", get(get_health))
        .route("/metrics", get(get_metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), count_request))
        .with_state(app)
}

/// Serves the API on an already bound listener until `shutdown` resolves,
/// without a [`Fallback`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    reader: Reader,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, reader, None, shutdown).await
}

/// [`serve`] with the source reader that answers key lookups of stale
/// views declared `on_stale = 'fallback'`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    reader: Reader,
    fallback: Option<Arc<dyn Fallback>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, fallback = fallback.is_some(), "serving HTTP");
    }
    // Responses are small and latency is the point: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router_with(reader, fallback)).with_graceful_shutdown(shutdown).await
}

async fn count_request(State(app): State<App>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    app.reader.metrics().http_request(route, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound { path: request.uri().path().to_owned() }
}

async fn list_views(State(app): State<App>) -> Response {
    let published = app.reader.snapshot();
    let now = now();
    let metrics = app.reader.metrics();
    let views: Vec<_> = published
        .views
        .iter()
        .map(|v| ViewSummary {
            state_bytes: metrics.view_state_bytes(&v.info.name),
            ..view_summary(v, &published.source, now)
        })
        .collect();
    with_position(Json(views).into_response(), published.position.map(|p| p.0))
}

async fn read_view(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let raw = raw.as_deref().unwrap_or("");
    let current = app.reader.snapshot();
    let column_named_timeout = current.view(&name).is_some_and(|v| v.info.column_index("timeout").is_some());
    let Some((min, timeout)) = wait_request(&headers, raw, column_named_timeout)? else {
        return answer(&app, &current, &name, raw).await;
    };
    // A read the source answers needs no wait: the source holds every
    // committed write.
    if to_source(&app, &current, &name, raw).is_some() {
        return answer(&app, &current, &name, raw).await;
    }
    // A scheduled view reflects a position only once refreshed at or past
    // it, so wait for the view itself; others move with every publish.
    let scheduled = current.views.iter().position(|v| v.info.name == name && v.info.refresh.is_some());
    let waited = match scheduled {
        Some(view) => app.reader.wait_for_view(view, min, timeout).await,
        None => app.reader.wait_for_position(min, timeout).await,
    };
    match waited {
        Ok(published) => answer(&app, &published, &name, raw).await,
        Err(WaitError::Timeout { wanted, published } | WaitError::Closed { wanted, published }) => {
            let latest = app.reader.snapshot();
            if to_source(&app, &latest, &name, raw).is_some() {
                return answer(&app, &latest, &name, raw).await;
            }
            Err(ApiError::PositionTimeout {
                wanted: wanted.0,
                published: published.map(|p| p.0),
                timeout_ms: timeout.as_millis() as u64,
            })
        }
    }
}

/// The view, parsed query and key of a read that goes to the source, if it does.
fn to_source(app: &App, published: &Published, name: &str, raw: &str) -> Option<(Arc<ViewInfo>, Query, Vec<Value>)> {
    let view = published.view(name)?;
    let query = parse_query(&view.info, &decode_pairs(raw)).ok()?;
    let key = source_key(app.fallback.is_some(), view, &published.source, &query, now())?;
    Some((view.info.clone(), query, key))
}

/// Answers a read from `published`, or from the source when it goes there.
async fn answer(app: &App, published: &Published, name: &str, raw: &str) -> Result<Response, ApiError> {
    if let (Some(fallback), Some((info, query, key))) = (&app.fallback, to_source(app, published, name, raw)) {
        return from_source(app, fallback.clone(), info, query, key).await;
    }
    let (body, position, merges) = read_counted(published, name, raw)?;
    if merges > 0 {
        app.reader.metrics().fanout_read_merges(name, merges);
    }
    let stale = published.view(name).is_some_and(|v| !v.within_sla(&published.source, now()));
    let mut response = ([(header::CONTENT_TYPE, "application/json")], Body::from(body)).into_response();
    response.headers_mut().insert(SERVED_BY_HEADER, HeaderValue::from_static("view"));
    if stale {
        response.headers_mut().insert(STALE_HEADER, HeaderValue::from_static("true"));
    }
    Ok(with_position(response, position.map(|p| p.0)))
}

/// Answers a key lookup from the source, on a blocking thread.
async fn from_source(
    app: &App,
    fallback: Arc<dyn Fallback>,
    info: Arc<ViewInfo>,
    query: Query,
    key: Vec<Value>,
) -> Result<Response, ApiError> {
    let view = info.clone();
    let rows = tokio::task::spawn_blocking(move || fallback.lookup(&view, &key))
        .await
        .unwrap_or_else(|e| Err(format!("the source lookup did not complete: {e}")));
    let body = rows.and_then(|rows| render_source_rows(&info, &query, rows));
    app.reader.metrics().fallback_read(&info.name, body.is_err());
    let body = body.map_err(|message| {
        tracing::warn!(view = %info.name, %message, "fallback lookup failed");
        ApiError::FallbackFailed { name: info.name.clone(), message }
    })?;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], Body::from(body)).into_response();
    response.headers_mut().insert(SERVED_BY_HEADER, HeaderValue::from_static("source"));
    Ok(response)
}

/// `GET /views/{name}?{raw_query}` without HTTP, from the view's rows only
/// (no [`Fallback`]): the JSON body and the position it reflects. The HTTP
/// handler and in-process readers (the demo's latency comparison, a later
/// pgwire reader) share it.
pub fn read_rows(published: &Published, name: &str, raw_query: &str) -> Result<(Vec<u8>, Option<Position>), ApiError> {
    read_counted(published, name, raw_query).map(|(body, position, _)| (body, position))
}

/// [`read_rows`], also returning how many celebrities' content a feed read
/// merged in (0 for other views).
fn read_counted(
    published: &Published,
    name: &str,
    raw_query: &str,
) -> Result<(Vec<u8>, Option<Position>, u64), ApiError> {
    let Some(view) = published.view(name) else {
        let views = published.views.iter().map(|v| v.info.name.clone()).collect();
        return Err(ApiError::UnknownView { name: name.to_owned(), views });
    };
    let query = parse_query(&view.info, &decode_pairs(raw_query))?;
    match &view.status {
        ViewStatus::Ok => {}
        ViewStatus::Starting => return Err(ApiError::Starting { name: name.to_owned() }),
        ViewStatus::Failed(reason) => {
            return Err(ApiError::ViewFailed { name: name.to_owned(), reason: reason.clone() })
        }
    }
    let (matches, merges) = match &view.info.feed {
        Some(feed) => {
            let read = crate::feed::execute(view, feed, &query)?;
            (read.matches, read.merges)
        }
        None => (execute(view, &query), 0),
    };
    Ok((render_rows(&output_columns(&view.info, &query), paginate(&matches, &query)), view.position, merges))
}

fn with_position(mut response: Response, position: Option<u64>) -> Response {
    if let Some(p) = position {
        response.headers_mut().insert(POSITION_HEADER, HeaderValue::from(p));
    }
    response
}

async fn get_health(State(app): State<App>) -> Response {
    let health = health(&app.reader.snapshot());
    let status = if health.status == "starting" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    (status, Json(health)).into_response()
}

async fn get_metrics(State(app): State<App>) -> Response {
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], app.reader.metrics().render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_a_status_code_and_hint() {
        let bad = BadParameter { parameter: "id".into(), message: "m".into(), hint: None };
        let cases = [
            (ApiError::UnknownView { name: "x".into(), views: vec!["a".into(), "b".into()] }, 404, "unknown_view"),
            (ApiError::BadParameter(bad), 400, "bad_parameter"),
            (ApiError::ViewFailed { name: "x".into(), reason: "r".into() }, 503, "view_failed"),
            (ApiError::Starting { name: "x".into() }, 503, "starting"),
            (ApiError::NotFound { path: "/x".into() }, 404, "not_found"),
            (ApiError::FallbackFailed { name: "x".into(), message: "m".into() }, 503, "fallback_failed"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e}");
        }
        let e = ApiError::UnknownView { name: "x".into(), views: vec!["a".into(), "b".into()] };
        assert_eq!(e.hint().unwrap(), "views: a, b");
    }

    #[test]
    fn positions_are_integers_or_postgres_lsns() {
        assert_eq!(parse_position(" 42 "), Some(42));
        assert_eq!(parse_position("0/16B3748"), Some(0x16B_3748));
        assert_eq!(parse_position("16/B374D848"), Some(0x16 << 32 | 0xB374_D848));
        assert_eq!(parse_position("FFFFFFFF/FFFFFFFF"), Some(u64::MAX));
        for bad in ["", "-1", "x", "1/", "/1", "1/2/3", "100000000/0", "0/+1", "g/1"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }
}
