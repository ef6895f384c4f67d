//! The HTTP API (axum): `/` (OpenAPI), `/views`, `/views/{name}`,
//! `/health`, `/metrics`, with PostgREST's read protocol on
//! `/views/{name}`: `Accept` (JSON, CSV, the single-object type), `Range`
//! and `Content-Range`, `Prefer: count=…`, HEAD, OPTIONS and CORS.
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

use crate::audit::AuditEntry;
use crate::auth::{restrict, Auth, Denied, Mask, Principal, ViewAccess};
use crate::fallback::{check_source_rows, source_key, Fallback};
use crate::json::{health, view_summary, ViewSummary};
use crate::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::query::{decode_pairs, execute, execute_values, paginate, parse_query, BadParameter, Match, Query};
use crate::select::{render, Format};
use crate::server::ServeOptions;
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
    #[error("none of the media types in Accept: {accept} can be served")]
    NotAcceptable { accept: String },
    #[error("JSON object requested, multiple (or no) rows returned")]
    SingleObject { rows: usize },
    #[error("requested range not satisfiable: offset {offset} is past the {total} matching rows")]
    RangeNotSatisfiable { offset: usize, total: u64 },
    /// Refused by `[auth]`: 401 or 403.
    #[error("{0}")]
    Denied(Denied),
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
            ApiError::NotAcceptable { .. } | ApiError::SingleObject { .. } => StatusCode::NOT_ACCEPTABLE,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Denied(d) => StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN),
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
            ApiError::NotAcceptable { .. } => "not_acceptable",
            // PostgREST's own code, which its clients recognize.
            ApiError::SingleObject { .. } => "PGRST116",
            ApiError::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            // PostgREST's: no token where one is needed; a token that does
            // not verify; PostgreSQL's insufficient_privilege.
            ApiError::Denied(Denied::MissingToken) => "PGRST302",
            ApiError::Denied(Denied::InvalidToken(_) | Denied::Expired) => "PGRST301",
            ApiError::Denied(_) => "42501",
        }
    }

    /// PostgREST's `details`: what exactly was wrong, when there is more to say.
    pub fn details(&self) -> Option<String> {
        match self {
            ApiError::BadParameter(e) => Some(format!("query parameter or header: {}", e.parameter)),
            ApiError::SingleObject { rows: 0 } => Some("The result contains 0 rows".to_owned()),
            ApiError::SingleObject { .. } => Some("The result contains more than one row".to_owned()),
            ApiError::RangeNotSatisfiable { total, .. } => Some(format!("{total} rows match")),
            _ => None,
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            ApiError::UnknownView { views, .. } => Some(format!("views: {}", views.join(", "))),
            ApiError::BadParameter(e) => e.hint.clone(),
            ApiError::ViewFailed { .. } => Some(crate::VIEW_FAILED_HINT.to_owned()),
            ApiError::Starting { .. } => Some("retry shortly; GET /health shows snapshot progress".to_owned()),
            ApiError::NotFound { .. } => {
                Some("endpoints: / (OpenAPI), /views, /views/{name}, /health, /metrics".to_owned())
            }
            ApiError::PositionTimeout { .. } => Some(format!(
                "denorm is behind the source; retry, raise {TIMEOUT_HEADER} (at most {} s), or check /health",
                MAX_WAIT.as_secs()
            )),
            ApiError::FallbackFailed { .. } => Some(
                "retry; a read without eq on every key column is served from the view's rows (marked Denorm-Stale)"
                    .to_owned(),
            ),
            ApiError::NotAcceptable { .. } => {
                Some("accept application/json, text/csv or application/vnd.pgrst.object+json".to_owned())
            }
            ApiError::SingleObject { .. } => {
                Some("filter to exactly one row (eq on every key column), or accept application/json".to_owned())
            }
            ApiError::RangeNotSatisfiable { .. } => Some("ask for a range that starts within the count".to_owned()),
            ApiError::Denied(d) => Some(d.hint()),
        }
    }
}

/// Replaces absolute file paths in an error text (a source's message may
/// name its database file) by `<path>`: error bodies reveal no paths.
pub fn redact_paths(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('/') {
        let boundary = rest[..at].chars().next_back().is_none_or(|c| c.is_whitespace() || "\"'(=:[,".contains(c));
        let end = rest[at..].find(|c: char| c.is_whitespace() || "\"'),]".contains(c)).map_or(rest.len(), |e| at + e);
        // Trailing punctuation (`/a/b.db:`, `/a/b.`) ends the sentence, not the path.
        let end = at + rest[at..end].trim_end_matches([':', ';', ',', '.']).len();
        let token = &rest[at..end];
        out.push_str(&rest[..at]);
        // A path has a second component: `/a/b`, not `/` or `/views`.
        if boundary && token[1..].contains('/') && !token.starts_with("//") {
            out.push_str("<path>");
        } else {
            out.push_str(token);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let redact = |text: String| if matches!(self, ApiError::NotFound { .. }) { text } else { redact_paths(&text) };
        let body = json!({
            "code": self.code(),
            "message": redact(self.to_string()),
            "details": self.details().map(redact),
            "hint": self.hint().map(redact),
        });
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RangeNotSatisfiable { total, .. } = self {
            if let Ok(value) = HeaderValue::from_str(&format!("*/{total}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
        }
        match self {
            ApiError::PositionTimeout { published, .. } => with_position(response, published),
            ApiError::Denied(d) if d.status() == 401 => {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            _ => response,
        }
    }
}

/// Read-your-writes: a request carrying this header (a source position, as
/// the application read it after its commit) is answered only once the
/// views reflect at least that position.
pub const MIN_POSITION_HEADER: &str = "denorm-min-position";
/// How long such a request may wait (`250ms`, `2s`, or a bare number of
/// seconds such as `0.5`); also accepted as the `timeout` query
/// parameter. Default [`DEFAULT_WAIT`].
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
    let from_query = decode_pairs(raw_query)
        .into_iter()
        .find(|(k, _)| k == "timeout" && !column_named_timeout)
        .map(|(_, v)| ("timeout", v));
    let from_header = headers.get(TIMEOUT_HEADER).map(|v| (TIMEOUT_HEADER, v.to_str().unwrap_or("?").to_owned()));
    let timeout = match from_header.or(from_query) {
        None => DEFAULT_WAIT,
        Some((parameter, text)) => parse_wait(&text).ok_or_else(|| {
            bad(
                parameter,
                format!(
                    "expected a duration such as 500ms, 2s or 0.5 (seconds), at most {}s, got \"{text}\"",
                    MAX_WAIT.as_secs()
                ),
            )
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

/// `250ms`, `2s`, `1.5s` or a bare number of seconds (`0.5`), at most
/// [`MAX_WAIT`].
pub fn parse_wait(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let seconds = number.trim().parse::<f64>().ok()? * scale;
    (seconds.is_finite() && seconds >= 0.0 && seconds <= MAX_WAIT.as_secs_f64())
        .then(|| std::time::Duration::from_secs_f64(seconds))
}

/// What the handlers share: the published state and the optional source
/// reader for `on_stale = 'fallback'` views. Behind one `Arc`: axum clones
/// the state for the middleware and the handler of every request, and a
/// clone is then one reference count, not the reader's.
#[derive(Clone)]
pub(crate) struct App(Arc<AppState>);

pub(crate) struct AppState {
    reader: Reader,
    fallback: Option<Arc<dyn Fallback>>,
    pub(crate) options: ServeOptions,
}

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
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
    router_configured(reader, fallback, ServeOptions::default())
}

/// [`router_with`] with the server's [`ServeOptions`] (CORS origins).
pub fn router_configured(reader: Reader, fallback: Option<Arc<dyn Fallback>>, options: ServeOptions) -> Router {
    let app = App(Arc::new(AppState { reader, fallback, options }));
    Router::new()
        .route("/", get(get_openapi))
        .route("/views", get(list_views))
        .route("/views/{name}", get(read_view))
        .route("/health", get(get_health))
        .route("/metrics", get(get_metrics))
        .route("/ui", get(get_ui))
        .merge(crate::admin::routes())
        .route("/dlq", get(get_dlq))
        .route("/dlq/{id}/{action}", axum::routing::post(post_dlq))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app)
}

/// The one middleware of every request (one layer: each costs a boxed
/// service clone and a boxed future per request): OPTIONS on any path
/// (PostgREST answers it for its resources), CORS headers for allowed
/// origins ([`ServeOptions::cors_origins`]), and the request counted by
/// route and status (OPTIONS answered here are not counted).
async fn edge(State(app): State<App>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed = origin.as_ref().and_then(|o| o.to_str().ok()).is_some_and(|o| app.options.allows_origin(o));
    let mut response = if request.method() == axum::http::Method::OPTIONS {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
        if allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS"));
            let asked = request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                asked.unwrap_or(HeaderValue::from_static(ALLOWED_HEADERS)),
            );
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        }
        response
    } else {
        count_request(&app, request, next).await
    };
    if let (true, Some(origin)) = (allowed, origin) {
        let headers = response.headers_mut();
        let any = app.options.cors_origins.iter().any(|o| o == "*");
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, if any { HeaderValue::from_static("*") } else { origin });
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED_HEADERS));
    }
    response
}

const ALLOWED_HEADERS: &str =
    "Accept, Authorization, Content-Type, Prefer, Range, Range-Unit, Denorm-Min-Position, Denorm-Timeout, apikey, x-client-info";
const EXPOSED_HEADERS: &str = "Content-Range, Preference-Applied, Denorm-Position, Denorm-Served-By, Denorm-Stale";

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
    serve_configured(listener, reader, fallback, ServeOptions::default(), shutdown).await
}

/// [`serve_with`] under `options`: CORS origins, the header and idle
/// timeouts and the connection limit (see [`crate::server`]).
pub async fn serve_configured(
    listener: tokio::net::TcpListener,
    reader: Reader,
    fallback: Option<Arc<dyn Fallback>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, fallback = fallback.is_some(), "serving HTTP");
    }
    let router = router_configured(reader, fallback, options.clone());
    crate::server::serve_connections(listener, router, options, shutdown).await
}

async fn count_request(app: &App, request: Request, next: Next) -> Response {
    // The route as axum matched it (a shared string: cloned, not copied).
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    app.reader.metrics().http_request(route, response.status().as_u16());
    response
}

async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound { path: request.uri().path().to_owned() }
}

async fn list_views(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = app.caller(&headers, None, "")?;
    let published = app.reader.snapshot();
    let now = now();
    let metrics = app.reader.metrics();
    let views: Vec<_> = published
        .views
        .iter()
        .filter(|v| app.may_read(caller.as_ref(), &v.info.name))
        .map(|v| ViewSummary {
            state_bytes: metrics.view_state_bytes(&v.info.name),
            ..view_summary(v, &published.source, now)
        })
        .collect();
    Ok(with_position(Json(views).into_response(), published.position.map(|p| p.0)))
}

/// The rows a read returned, left on its response for the audit log.
#[derive(Debug, Clone, Copy)]
struct RowsReturned(usize);

impl App {
    /// Who is asking (`None` without `[auth]`), or the refusal, counted and
    /// audited (against `view` when the request reads one).
    pub(crate) fn caller(
        &self,
        headers: &HeaderMap,
        view: Option<&str>,
        raw: &str,
    ) -> Result<Option<Principal>, ApiError> {
        let Some(auth) = &self.options.auth else { return Ok(None) };
        let bearer = match headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("")) {
            None => None,
            Some(value) => match value.split_once(' ') {
                Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Some(token),
                Some((scheme, credentials)) if scheme.eq_ignore_ascii_case("basic") && !auth.users.is_empty() => {
                    return basic(auth, credentials).map(Some).map_err(|d| self.denied(d, None, view, raw));
                }
                _ => {
                    let expected = if auth.users.is_empty() { "Bearer <JWT>" } else { "Bearer <JWT> or Basic" };
                    return Err(self.denied(
                        Denied::InvalidToken(format!("expected Authorization: {expected}")),
                        None,
                        view,
                        raw,
                    ));
                }
            },
        };
        auth.authenticate(bearer).map(Some).map_err(|d| self.denied(d, None, view, raw))
    }

    /// Counts and audits a refusal.
    fn denied(&self, denied: Denied, caller: Option<&Principal>, view: Option<&str>, raw: &str) -> ApiError {
        self.reader.metrics().auth_denied(denied.reason());
        if let (Some(audit), Some(view)) = (&self.options.audit, view) {
            audit.record(&AuditEntry {
                time: now(),
                role: caller.map(|c| c.role.as_str()),
                subject: caller.and_then(|c| c.subject.as_deref()),
                view,
                query: raw,
                rows: None,
                status: denied.status(),
                denied: Some(denied.reason()),
            });
        }
        ApiError::Denied(denied)
    }

    fn may_read(&self, caller: Option<&Principal>, view: &str) -> bool {
        match (&self.options.auth, caller) {
            (Some(auth), Some(caller)) => auth.may_read(caller, view),
            _ => true,
        }
    }

    /// The caller's access to `view`: `None` without `[auth]` (or for an
    /// unknown view, which is then a 404 like any).
    fn access(&self, caller: Option<&Principal>, view: &str, raw: &str) -> Result<Option<ViewAccess>, ApiError> {
        let (Some(auth), Some(caller)) = (&self.options.auth, caller) else { return Ok(None) };
        let published = self.reader.snapshot();
        let Some(info) = published.view(view).map(|v| v.info.clone()) else {
            return if auth.may_read(caller, view) {
                Ok(None)
            } else {
                Err(self.denied(
                    Denied::View { role: caller.role.clone(), view: view.to_owned() },
                    Some(caller),
                    Some(view),
                    raw,
                ))
            };
        };
        auth.access(caller, &info).map(Some).map_err(|d| self.denied(d, Some(caller), Some(view), raw))
    }

    /// The monitoring endpoints: anyone without `[auth]`, else a role with
    /// `monitor = true`.
    fn monitor(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(auth) = &self.options.auth else { return Ok(()) };
        let caller = self.caller(headers, None, "")?.expect("a caller under [auth]");
        auth.monitor(&caller).map_err(|d| self.denied(d, Some(&caller), None, ""))
    }
}

async fn read_view(
    State(app): State<App>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    // The headers borrowed from the request (the `HeaderMap` extractor
    // would clone them all on every read).
    let headers = request.headers();
    let raw = raw.as_deref().unwrap_or("");
    let caller = app.caller(headers, Some(&name), raw)?;
    let access = app.access(caller.as_ref(), &name, raw)?;
    let restriction = access.as_ref().zip(caller.as_ref()).map(|(a, c)| (a, c.role.as_str()));
    let result = read_view_as(&app, &name, raw, headers, restriction).await;
    let role = caller.as_ref().map_or("anonymous", |c| c.role.as_str());
    let (status, rows) = match &result {
        Ok(response) => (response.status().as_u16(), response.extensions().get::<RowsReturned>().map(|r| r.0)),
        Err(e) => (e.status().as_u16(), None),
    };
    if let Err(ApiError::Denied(d)) = &result {
        app.reader.metrics().auth_denied(d.reason());
    } else if status < 300 {
        app.reader.metrics().read(&name, role);
    }
    if let Some(audit) = &app.options.audit {
        audit.record(&AuditEntry {
            time: now(),
            role: caller.as_ref().map(|c| c.role.as_str()),
            subject: caller.as_ref().and_then(|c| c.subject.as_deref()),
            view: &name,
            query: raw,
            rows,
            status,
            denied: match &result {
                Err(ApiError::Denied(d)) => Some(d.reason()),
                _ => None,
            },
        });
    }
    result
}

/// A role's access to the view read, and the role's name (`None`: no
/// restriction).
type Restriction<'a> = Option<(&'a ViewAccess, &'a str)>;

/// A read of view `name` under the caller's restrictions, if any.
async fn read_view_as(
    app: &App,
    name: &str,
    raw: &str,
    headers: &HeaderMap,
    restriction: Restriction<'_>,
) -> Result<Response, ApiError> {
    let options = ReadOptions::from_headers(headers)?;
    let current = app.reader.snapshot();
    let column_named_timeout = current.view(name).is_some_and(|v| v.info.column_index("timeout").is_some());
    let Some((min, timeout)) = wait_request(headers, raw, column_named_timeout)? else {
        return answer(app, &current, name, raw, &options, restriction).await;
    };
    // A read the source answers needs no wait: the source holds every
    // committed write.
    if to_source(app, &current, name, raw, restriction).is_some() {
        return answer(app, &current, name, raw, &options, restriction).await;
    }
    // A scheduled view reflects a position only once refreshed at or past
    // it, so wait for the view itself; others move with every publish.
    let scheduled = current.views.iter().position(|v| v.info.name == name && v.info.refresh.is_some());
    let waited = match scheduled {
        Some(view) => app.reader.wait_for_view(view, min, timeout).await,
        None => app.reader.wait_for_position(min, timeout).await,
    };
    match waited {
        Ok(published) => answer(app, &published, name, raw, &options, restriction).await,
        Err(WaitError::Timeout { wanted, published } | WaitError::Closed { wanted, published }) => {
            let latest = app.reader.snapshot();
            if to_source(app, &latest, name, raw, restriction).is_some() {
                return answer(app, &latest, name, raw, &options, restriction).await;
            }
            Err(ApiError::PositionTimeout {
                wanted: wanted.0,
                published: published.map(|p| p.0),
                timeout_ms: timeout.as_millis() as u64,
            })
        }
    }
}

/// What the request headers ask of a read: the media type (`Accept`), a
/// row range (`Range: 0-9`, `Range-Unit: items`) and a count (`Prefer:
/// count=exact|planned|estimated`; denorm always counts exactly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    pub format: Format,
    /// First row and last row (inclusive; `None`: to the end).
    pub range: Option<(usize, Option<usize>)>,
    /// The `count=` asked for, echoed in `Preference-Applied`.
    pub count: Option<&'static str>,
    /// `Accept: application/json;nulls=stripped`: NULL fields left out.
    pub strip_nulls: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { format: Format::Json, range: None, count: None, strip_nulls: false }
    }
}

impl ReadOptions {
    pub fn from_headers(headers: &HeaderMap) -> Result<ReadOptions, ApiError> {
        let text = |name: header::HeaderName| headers.get(name).map(|v| v.to_str().unwrap_or("?").trim().to_owned());
        let (format, strip_nulls) = match text(header::ACCEPT) {
            None => (Format::Json, false),
            Some(accept) => accept
                .split(',')
                .find_map(|media| {
                    let mut parts = media.split(';').map(|p| p.trim().to_ascii_lowercase());
                    let format = match parts.next().unwrap_or_default().as_str() {
                        "" | "*/*" | "application/*" | "application/json" => Format::Json,
                        "text/csv" | "text/*" => Format::Csv,
                        "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => Format::Object,
                        _ => return None,
                    };
                    Some((format, parts.any(|p| p.replace(' ', "") == "nulls=stripped")))
                })
                .ok_or(ApiError::NotAcceptable { accept })?,
        };
        let bad = |parameter: &str, message: String| {
            ApiError::BadParameter(BadParameter { parameter: parameter.to_owned(), message, hint: None })
        };
        if let Some(unit) = text(header::HeaderName::from_static("range-unit")) {
            if unit != "items" {
                return Err(bad("Range-Unit", format!("expected items, got \"{unit}\"")));
            }
        }
        let range = match text(header::RANGE) {
            None => None,
            Some(range) => Some(parse_range(&range).ok_or_else(|| {
                bad("Range", format!("expected first-last or first- (row numbers from 0), got \"{range}\""))
            })?),
        };
        let count = headers.get_all("prefer").iter().flat_map(|v| v.to_str().unwrap_or("").split(',')).find_map(|p| {
            match p.trim() {
                "count=exact" => Some("count=exact"),
                "count=planned" => Some("count=planned"),
                "count=estimated" => Some("count=estimated"),
                _ => None,
            }
        });
        Ok(ReadOptions { format, range, count, strip_nulls })
    }
}

/// `a-b` or `a-` (PostgREST's `Range` without the `items=` unit prefix,
/// which is accepted too).
fn parse_range(text: &str) -> Option<(usize, Option<usize>)> {
    let text = text.strip_prefix("items=").unwrap_or(text);
    let (first, last) = text.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = match last.trim() {
        "" => None,
        last => Some(last.parse().ok().filter(|&l| l >= first)?),
    };
    Some((first, last))
}

/// Narrows `query`'s offset and limit to the `Range` (their intersection,
/// as PostgREST takes it).
fn apply_range(query: &mut Query, range: Option<(usize, Option<usize>)>) {
    let Some((first, last)) = range else { return };
    let start = query.offset.max(first);
    let end_by_limit = query.limit.map(|l| query.offset.saturating_add(l));
    let end_by_range = last.map(|l| l.saturating_add(1));
    let end = match (end_by_limit, end_by_range) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    query.offset = start;
    query.limit = end.map(|e| e.saturating_sub(start));
}

/// The view, parsed query and key of a read that goes to the source, if it does.
fn to_source(
    app: &App,
    published: &Published,
    name: &str,
    raw: &str,
    restriction: Restriction<'_>,
) -> Option<(Arc<ViewInfo>, Query, Vec<Value>)> {
    let view = published.view(name)?;
    let mut query = parse_query(&view.info, &decode_pairs(raw)).ok()?;
    if let Some((access, role)) = restriction {
        restrict(&view.info, &mut query, access, role).ok()?;
    }
    let key = source_key(app.fallback.is_some(), view, &published.source, &query, now())?;
    Some((view.info.clone(), query, key))
}

/// Answers a read from `published`, or from the source when it goes there.
async fn answer(
    app: &App,
    published: &Published,
    name: &str,
    raw: &str,
    options: &ReadOptions,
    restriction: Restriction<'_>,
) -> Result<Response, ApiError> {
    let masks = restriction.map_or(&[][..], |(access, _)| access.masks.as_slice());
    if let (Some(fallback), Some((info, query, key))) =
        (&app.fallback, to_source(app, published, name, raw, restriction))
    {
        return from_source(app, fallback.clone(), info, query, key, options, masks).await;
    }
    let (page, position, merges) = read_page(published, name, raw, options, restriction)?;
    if merges > 0 {
        app.reader.metrics().fanout_read_merges(name, merges);
    }
    let stale = published.view(name).is_some_and(|v| !v.within_sla(&published.source, now()));
    let mut response = page.into_response(options);
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
    mut query: Query,
    key: Vec<Value>,
    options: &ReadOptions,
    masks: &[(usize, Mask)],
) -> Result<Response, ApiError> {
    let view = info.clone();
    let rows = tokio::task::spawn_blocking(move || fallback.lookup(&view, &key))
        .await
        .unwrap_or_else(|e| Err(format!("the source lookup did not complete: {e}")));
    let rows = rows.and_then(|rows| check_source_rows(&info, rows));
    app.reader.metrics().fallback_read(&info.name, rows.is_err());
    let rows = rows.map_err(|message| {
        tracing::warn!(view = %info.name, %message, "fallback lookup failed");
        ApiError::FallbackFailed { name: info.name.clone(), message }
    })?;
    apply_range(&mut query, options.range);
    let matches = execute_values(&info, &unpaged(&query, options), rows);
    let page = Page::render(&info, &query, &matches, options, masks)?;
    let mut response = page.into_response(options);
    response.headers_mut().insert(SERVED_BY_HEADER, HeaderValue::from_static("source"));
    Ok(response)
}

/// `query` as executed: without offset and limit when the total is
/// counted; at most two rows past the offset for a single object.
fn unpaged<'q>(query: &'q Query, options: &ReadOptions) -> std::borrow::Cow<'q, Query> {
    if options.count.is_none() && options.format != Format::Object {
        // The common read: executed as asked, no copy.
        return std::borrow::Cow::Borrowed(query);
    }
    let mut executed = query.clone();
    if options.count.is_some() {
        executed.offset = 0;
        executed.limit = None;
    } else {
        executed.limit = Some(query.limit.unwrap_or(usize::MAX).min(2));
    }
    std::borrow::Cow::Owned(executed)
}

/// A rendered page of a read.
struct Page {
    body: Vec<u8>,
    format: Format,
    /// The first row's number, the rows shown and the count if asked: the
    /// `Content-Range`, formatted only for HTTP.
    first: usize,
    shown: usize,
    total: Option<u64>,
    /// 206 when a counted result is returned only in part.
    partial: bool,
}

impl Page {
    /// `masks`: columns shown masked (`[auth]`), applied to the page's rows.
    fn render(
        view: &ViewInfo,
        query: &Query,
        matches: &[Match<'_>],
        options: &ReadOptions,
        masks: &[(usize, Mask)],
    ) -> Result<Page, ApiError> {
        let total: Option<u64> =
            options.count.map(|_| matches.iter().map(|m| u64::try_from(m.count).unwrap_or(0)).sum());
        if let Some(total) = total {
            if query.offset > 0 && query.offset as u64 >= total {
                return Err(ApiError::RangeNotSatisfiable { offset: query.offset, total });
            }
        }
        if options.format == Format::Object {
            let rows = paginate(matches, query).count();
            if rows != 1 {
                return Err(ApiError::SingleObject { rows });
            }
        }
        // Rows are counted as they are rendered.
        let shown = std::cell::Cell::new(0usize);
        let rows = paginate(matches, query).inspect(|_| shown.set(shown.get() + 1));
        let rendered = if masks.is_empty() {
            render(view, query, rows, options.format, options.strip_nulls)
        } else {
            let masked: Vec<Vec<Value>> = rows
                .map(|row| {
                    let cell = |(i, d): (usize, &denorm_types::Datum<'_>)| match masks.iter().find(|(c, _)| *c == i) {
                        Some((_, mask)) => mask.apply(d),
                        None => d.clone().into_owned(),
                    };
                    row.iter().enumerate().map(cell).collect()
                })
                .collect();
            render(view, query, masked.iter().map(Vec::as_slice), options.format, options.strip_nulls)
        };
        let body = rendered.map_err(|message| {
            ApiError::BadParameter(BadParameter { parameter: "select".into(), message, hint: None })
        })?;
        let shown = shown.get();
        let partial = total.is_some_and(|t| (shown as u64) < t);
        Ok(Page { body, format: options.format, first: query.offset, shown, total, partial })
    }

    /// `first-last/total` (`*` when not counted; `*/total` when empty).
    fn content_range(&self) -> String {
        let total = self.total.map_or("*".to_owned(), |t| t.to_string());
        match self.shown {
            0 => format!("*/{total}"),
            n => format!("{}-{}/{total}", self.first, self.first + n - 1),
        }
    }

    fn into_response(self, options: &ReadOptions) -> Response {
        let status = if self.partial { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
        let content_range = self.content_range();
        let mut response =
            (status, [(header::CONTENT_TYPE, self.format.content_type())], Body::from(self.body)).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            headers.insert(header::CONTENT_RANGE, value);
        }
        if let Some(count) = options.count {
            headers.insert("preference-applied", HeaderValue::from_static(count));
        }
        response.extensions_mut().insert(RowsReturned(self.shown));
        response
    }
}

/// `GET /views/{name}?{raw_query}` without HTTP, from the view's rows only
/// (no [`Fallback`]): the JSON body and the position it reflects. The HTTP
/// handler and in-process readers (the demo's latency comparison, a later
/// pgwire reader) share it.
pub fn read_rows(published: &Published, name: &str, raw_query: &str) -> Result<(Vec<u8>, Option<Position>), ApiError> {
    read_page(published, name, raw_query, &ReadOptions::default(), None)
        .map(|(page, position, _)| (page.body, position))
}

/// [`read_rows`] in the form `options` ask for, also returning how many
/// celebrities' content a feed read merged in (0 for other views).
fn read_page(
    published: &Published,
    name: &str,
    raw_query: &str,
    options: &ReadOptions,
    restriction: Restriction<'_>,
) -> Result<(Page, Option<Position>, u64), ApiError> {
    let Some(view) = published.view(name) else {
        let views = published.views.iter().map(|v| v.info.name.clone()).collect();
        return Err(ApiError::UnknownView { name: name.to_owned(), views });
    };
    let mut query = parse_query(&view.info, &decode_pairs(raw_query))?;
    if let Some((access, role)) = restriction {
        restrict(&view.info, &mut query, access, role).map_err(ApiError::Denied)?;
    }
    apply_range(&mut query, options.range);
    match &view.status {
        ViewStatus::Ok => {}
        ViewStatus::Starting => return Err(ApiError::Starting { name: name.to_owned() }),
        ViewStatus::Failed(reason) => {
            return Err(ApiError::ViewFailed { name: name.to_owned(), reason: reason.clone() })
        }
    }
    let executed = unpaged(&query, options);
    let (matches, merges) = match &view.info.feed {
        Some(feed) => {
            let read = crate::feed::execute(view, feed, &executed)?;
            (read.matches, read.merges)
        }
        None => (execute(view, &executed), 0),
    };
    let masks = restriction.map_or(&[][..], |(access, _)| access.masks.as_slice());
    Ok((Page::render(&view.info, &query, &matches, options, masks)?, view.position, merges))
}

fn with_position(mut response: Response, position: Option<u64>) -> Response {
    if let Some(p) = position {
        response.headers_mut().insert(POSITION_HEADER, HeaderValue::from(p));
    }
    response
}

async fn get_openapi(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = app.caller(&headers, None, "")?;
    let published = app.reader.snapshot();
    if app.options.auth.is_none() {
        return Ok(Json(crate::openapi::document(&published)).into_response());
    }
    // Only the views the caller may read.
    let views: Vec<_> =
        published.views.iter().filter(|v| app.may_read(caller.as_ref(), &v.info.name)).cloned().collect();
    let visible = Published { views: views.into(), ..(*published).clone() };
    Ok(Json(crate::openapi::document(&visible)).into_response())
}

async fn get_health(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    let mut health = health(&app.reader.snapshot());
    crate::json::add_sinks(&mut health, app.reader.metrics());
    let status = if health.status == "starting" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    // Under [auth], the details (source, problems, failed views) are for
    // monitoring roles; anyone may see the status.
    if app.options.auth.is_some() && app.monitor(&headers).is_err() {
        return Ok((status, Json(json!({ "status": health.status }))).into_response());
    }
    Ok((status, Json(health)).into_response())
}

async fn get_ui(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.monitor(&headers)?;
    let now = now();
    let metrics = app.reader.metrics();
    let published = app.reader.snapshot();
    let mut health = crate::json::health(&published);
    crate::json::add_sinks(&mut health, metrics);
    let page = crate::ui::render(
        &published,
        &health,
        &app.reader.history(now),
        &|v| metrics.view_state_bytes(v),
        now,
        app.reader.dead_letters(),
    );
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], page)
        .into_response())
}

async fn get_dlq(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.monitor(&headers)?;
    Ok(Json(crate::dlq::document(app.reader.dead_letters())).into_response())
}

/// `POST /dlq/{id}/drop` and `POST /dlq/{id}/retry`: queued for the
/// engine (202; a retry's outcome shows in `GET /dlq`: the entry gone, or
/// its `retries` counted up with the new reason). Under `[auth]`
/// a monitoring role; without it, loopback callers only.
async fn post_dlq(
    State(app): State<App>,
    Path((id, action)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let refuse = |status: StatusCode, code: &str, message: String, hint: &str| {
        (status, Json(json!({ "code": code, "message": message, "details": null, "hint": hint }))).into_response()
    };
    if app.options.auth.is_some() {
        app.monitor(&headers)?;
    } else {
        let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|p| p.0.ip());
        if !peer.is_some_and(|ip| ip.is_loopback()) {
            return Ok(refuse(
                StatusCode::FORBIDDEN,
                "forbidden",
                "changing the dead-letter queue is allowed from loopback only".into(),
                "run `denorm dlq` on the host denorm runs on, or configure [auth] and use a role with monitor = true",
            ));
        }
    }
    let Ok(id) = id.parse::<u64>() else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            format!("bad id {id:?}"),
            "ids are listed by GET /dlq",
        ));
    };
    let request = match action.as_str() {
        "drop" => crate::dlq::Request::Drop(id),
        "retry" => crate::dlq::Request::Retry(id),
        _ => return Ok(refuse(StatusCode::NOT_FOUND, "not_found", format!("no action {action:?}"), "drop or retry")),
    };
    if !app.reader.dead_letters().request(request) {
        return Ok(refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no dead-letter entry {id}"),
            "ids are listed by GET /dlq",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id, "action": action, "status": "queued" }))).into_response())
}

async fn get_metrics(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    app.monitor(&headers)?;
    Ok(([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], app.reader.metrics().render()).into_response())
}

/// `Authorization: Basic <base64(user:password)>` checked against `[auth.users]`.
fn basic(auth: &Auth, credentials: &str) -> Result<Principal, Denied> {
    use base64::Engine as _;
    let malformed = || Denied::InvalidToken("Basic credentials are not base64 of user:password".into());
    let decoded = base64::engine::general_purpose::STANDARD.decode(credentials.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (user, password) = text.split_once(':').ok_or_else(malformed)?;
    auth.basic(user, password)
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
            (ApiError::NotAcceptable { accept: "text/html".into() }, 406, "not_acceptable"),
            (ApiError::SingleObject { rows: 2 }, 406, "PGRST116"),
            (ApiError::RangeNotSatisfiable { offset: 9, total: 5 }, 416, "range_not_satisfiable"),
        ];
        for (e, status, code) in cases {
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{e}");
        }
        let e = ApiError::UnknownView { name: "x".into(), views: vec!["a".into(), "b".into()] };
        assert_eq!(e.hint().unwrap(), "views: a, b");
    }

    #[test]
    fn paths_are_redacted_from_error_texts() {
        let cases = [
            ("cannot open /var/lib/app.db: locked", "cannot open <path>: locked"),
            ("file \"/home/a/x.db\" busy", "file \"<path>\" busy"),
            ("(/srv/data/db) gone", "(<path>) gone"),
            ("no such endpoint: /views", "no such endpoint: /views"),
            ("ratio 1/2 and a/b/c", "ratio 1/2 and a/b/c"),
            ("see https://example.com/a/b", "see https://example.com/a/b"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(redact_paths(text), want, "{text}");
        }
    }

    #[test]
    fn waits_take_units_and_bare_seconds() {
        use std::time::Duration;
        assert_eq!(parse_wait("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_wait("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_wait("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_wait(" 1 "), Some(Duration::from_secs(1)));
        for bad in ["", "x", "-1", "61", "2h", "NaN", "infs"] {
            assert_eq!(parse_wait(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_and_their_intersection_with_limit_and_offset() {
        assert_eq!(parse_range("0-9"), Some((0, Some(9))));
        assert_eq!(parse_range("items=5-"), Some((5, None)));
        for bad in ["", "5", "-5", "9-1", "a-b"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        let paged = |offset, limit, range| {
            let mut q = Query { offset, limit, ..Query::default() };
            apply_range(&mut q, range);
            (q.offset, q.limit)
        };
        assert_eq!(paged(0, None, Some((2, Some(4)))), (2, Some(3)));
        assert_eq!(paged(3, Some(10), Some((0, Some(4)))), (3, Some(2)));
        assert_eq!(paged(3, Some(1), Some((0, Some(9)))), (3, Some(1)));
        assert_eq!(paged(5, None, Some((0, Some(2)))), (5, Some(0)));
        assert_eq!(paged(1, Some(2), None), (1, Some(2)));
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
