//! denorm's published view state and its HTTP API.
//!
//! ```text
//!  engine thread ──Publisher──► ArcSwap<Published> ◄──Reader── HTTP handlers (axum)
//!   apply / fail / clear         one immutable snapshot         GET /views, /views/{name},
//!   publish(position, commits)   per batch boundary             /health, /metrics, /ui (dashboard)
//! ```
//!
//! The engine applies each source batch to the dataflow, hands every
//! view's consolidated output changes to the [`Publisher`], then calls
//! [`Publisher::publish`]. Readers see state only through a [`Reader`]:
//! every view as of one batch boundary, never half a batch, and reads never
//! wait for maintenance: [`Publisher::publish`] swaps in an immutable
//! [`Published`] snapshot whose per-view rows are immutable sorted runs
//! shared with the previous snapshot and the working copy, so publishing
//! costs O(changes) (amortized: see [`ViewRows`]).
//!
//! ```
//! use std::time::Duration;
//! use denorm_serve::{channel, ColumnInfo, ViewInfo};
//! use denorm_types::{Datum, Position, Row, ScalarType};
//!
//! let (mut publisher, reader) = channel(vec![ViewInfo {
//!     name: "user_names".into(),
//!     columns: vec![
//!         ColumnInfo { name: "id".into(), ty: ScalarType::Int },
//!         ColumnInfo { name: "name".into(), ty: ScalarType::Text },
//!     ],
//!     key: vec![0],
//!     max_staleness: Some(Duration::from_secs(1)),
//!     tables: vec!["users".into()],
//!     ..Default::default()
//! }]);
//!
//! // One batch: the engine's output changes for view 0, then publish.
//! publisher.apply(0, &[(Row::pack([Datum::Int(1), Datum::text("ada")]), 1)]);
//! publisher.metrics().changes_applied("users", 1);
//! publisher.publish(Position(42), &[("users".into(), 1_700_000_000.0)]);
//!
//! let published = reader.snapshot();
//! assert_eq!(published.position, Some(Position(42)));
//! let view = published.view("user_names").unwrap();
//! assert_eq!(view.rows.len(), 1);
//! assert_eq!(view.position, Some(Position(42)));
//!
//! // Serving: `denorm_serve::serve(listener, reader, shutdown)` on a bound
//! // tokio listener (or `serve_with(listener, reader, Some(fallback), shutdown)`
//! // with a source reader for `on_stale = 'fallback'`), e.g. in a
//! // `#[tokio::main]` function:
//! // let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
//! // denorm_serve::serve(listener, reader, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! ```
//!
//! # Scheduled refresh (`WITH (refresh = '1h')`)
//!
//! A view with [`ViewInfo::refresh`] set is brought up to date only every
//! period: the engine gathers its source changes and, at refresh time,
//! [applies](Publisher::apply) them and calls [`Publisher::refreshed`]
//! before [`Publisher::publish`]. A publish without that mark leaves the
//! view's rows, position, status and `refreshed_at` as they were (changes
//! applied meanwhile wait in the working copy) while on-change views
//! advance; a failure and a re-snapshot ([`Publisher::clear`]) are shown at
//! the next publish anyway, and the first publish shows every view. The
//! view's position is the one of the publish that last refreshed it, and
//! [`PublishedView::refreshed_at`] its time (for on-change views: the last
//! publish). While the source is past its position, its freshness is
//! `now − refreshed_at`. A read-your-writes read (`Denorm-Min-Position`)
//! of a scheduled view waits until the view itself reflects the position,
//! that is for its next refresh at or past it, bounded by the timeout.
//!
//! # Staleness budgets acted on (`WITH (on_stale = 'fallback')`)
//!
//! Given a [`Fallback`] (a reader of the source, [`serve_with`]), a read
//! of a view with [`ViewInfo::fallback`] that has an `eq` filter on every
//! key column is answered by the source while the view is beyond its
//! `max_staleness` budget, failed or still starting: the source's rows go
//! through the same filters, order, `select` and paging, and the response
//! has `Denorm-Served-By: source` (and no `Denorm-Position`: the rows are
//! as of the read). Such a read needs no read-your-writes wait, since the
//! source holds every committed write. Every other read is served from the
//! view (`Denorm-Served-By: view`), with `Denorm-Stale: true` when the view
//! is beyond its budget, whatever its `on_stale`. See [`fallback`].
//!
//! # HTTP API
//!
//! - `GET /views`: an array of `{name, columns, key, rows, position,
//!   freshness_seconds, max_staleness_seconds, within_sla, status, error,
//!   column_types, tables, undecodable_changes, refresh, refreshed_at,
//!   on_stale}` ([`ViewSummary`]). `freshness_seconds`: when the
//!   source has committed changes not yet visible in the view (its head is
//!   past the view's position) and knows the oldest pending commit's time,
//!   now minus that time; otherwise the last observed commit→visible latency
//!   of the view (the worst one of the last batch that touched its tables;
//!   0 before any change). For a scheduled view whose position the source
//!   has moved past, at least now minus `refreshed_at`. `within_sla` is true
//!   when the view has no `max_staleness` or its freshness is within it.
//!   `refresh` is `"on_change"` or the period in seconds; `refreshed_at`
//!   unix seconds (null before the first publish); `on_stale` `"serve"` or
//!   `"fallback"`.
//! - `GET /views/{name}`: an array of row objects (see [`json`] for the
//!   rendering of values; non-finite doubles are `null`), PostgREST's read
//!   protocol: filters `col=[not.]op.value` with every PostgREST read
//!   operator, `or=(…)`/`and=(…)` groups, JSON paths, `select` with `*`,
//!   aliases, casts and JSON paths, `order`, `limit`, `offset` ([`query`],
//!   [`select`]); headers `Range`/`Range-Unit` (answered with
//!   `Content-Range`, 206 when a counted result is partial, 416 past it),
//!   `Prefer: count=…`, `Accept` (`application/json`, `text/csv`,
//!   `application/vnd.pgrst.object+json`, `;nulls=stripped`; 406
//!   otherwise). HEAD and OPTIONS too; CORS for [`ServeOptions::cors_origins`].
//!   Without `order` rows come by key. `eq` on every key column is served by
//!   a key lookup, not a scan.
//!   Response headers: `Denorm-Position`, the position of the rows (absent
//!   when served by the source); `Denorm-Served-By`, `view` or `source`;
//!   `Denorm-Stale: true` on view rows beyond the view's budget.
//!   `Denorm-Min-Position: P` (with `Denorm-Timeout` or `timeout`: `500ms`,
//!   `2s` or seconds, default 5 s, at most 60 s) answers only once the view
//!   reflects position P, else 504 `position_timeout`.
//! - `GET /`: an OpenAPI 3 document of the views ([`openapi`]).
//! - `GET /health`: [`Health`]; HTTP 503 while `starting`.
//! - `GET /metrics`: Prometheus text format; see [`Metrics`]. Per view,
//!   among others: `denorm_view_refreshed_at` (unix seconds),
//!   `denorm_view_within_sla` (0/1 at the last publish),
//!   `denorm_staleness_budget_exceeded_total` (publishes at which the view
//!   was beyond its budget), `denorm_fallback_reads_total` and
//!   `denorm_fallback_errors_total` (lookups sent to the source).
//!
//! Errors have PostgREST's shape, `{"code", "message", "details", "hint"}`
//! ([`ApiError`]), with file paths redacted: `unknown_view` 404,
//! `bad_parameter` 400, `view_failed` 503, `starting` 503, `not_found` 404,
//! `position_timeout` 504, `fallback_failed` 503 (the source lookup failed;
//! the message says why), `not_acceptable` 406, `PGRST116` 406 (not exactly
//! one row for the single-object type), `range_not_satisfiable` 416.
//!
//! Connections ([`server`]): a request head must arrive within
//! `header_timeout` of its first byte, an idle connection is closed after
//! `idle_timeout`, at most `max_connections` are served at once.

pub mod admin;
pub mod audit;
pub mod auth;
mod collate;
pub mod dlq;
pub mod fallback;
pub mod feed;
pub mod history;
mod http;
pub mod json;
mod metrics;
pub mod openapi;
mod ops;
pub mod query;
mod rows;
pub mod scram;
pub mod select;
pub mod server;
mod state;
pub mod ui;
pub mod wire;

pub use fallback::Fallback;
pub use http::{
    parse_wait, read_rows, redact_paths, router, router_configured, router_with, serve, serve_configured, serve_with,
    ApiError, ReadOptions, DEFAULT_WAIT, MAX_WAIT, MIN_POSITION_HEADER, POSITION_HEADER, SERVED_BY_HEADER,
    STALE_HEADER, TIMEOUT_HEADER,
};
pub use json::{FeedSummary, Health, RefreshSummary, ViewSummary};
pub use metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
pub use server::ServeOptions;
pub use state::{
    channel, pack_key, percentiles, ColumnInfo, Published, PublishedView, Publisher, Reader, ReplicationStatus,
    SourceState, SourceStatus, ViewInfo, ViewRows, ViewStats, ViewStatus, WaitError,
};

/// The hint of a read of a failed view (HTTP `view_failed`, the wire
/// protocol's error): what happens to it, truthfully.
pub const VIEW_FAILED_HINT: &str = "reads fail while the view is failed; denorm retries it by itself once its \
     cause can have cleared (a computation error: when its tables change; a schema change: when the schema satisfies \
     it again); a view over the memory budget comes back at the next re-plan or restart";
