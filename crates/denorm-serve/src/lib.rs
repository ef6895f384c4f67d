//! denorm's published view state and its HTTP API.
//!
//! ```text
//!  engine thread ──Publisher──► ArcSwap<Published> ◄──Reader── HTTP handlers (axum)
//!   apply / fail / clear         one immutable snapshot         GET /views, /views/{name},
//!   publish(position, commits)   per batch boundary             /health, /metrics
//! ```
//!
//! The engine applies each source batch to the dataflow, hands every
//! view's consolidated output changes to the [`Publisher`], then calls
//! [`Publisher::publish`]. Readers see state only through a [`Reader`]:
//! every view as of one batch boundary, never half a batch, and reads never
//! wait for maintenance: [`Publisher::publish`] swaps in an immutable
//! [`Published`] snapshot whose per-view rows are persistent maps that
//! share structure with the previous snapshot, so publishing costs
//! O(changes).
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
//! // tokio listener, e.g. in a `#[tokio::main]` function:
//! // let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await?;
//! // denorm_serve::serve(listener, reader, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! ```
//!
//! # HTTP API
//!
//! - `GET /views`: an array of `{name, columns, key, rows, position,
//!   freshness_seconds, max_staleness_seconds, within_sla, status, error,
//!   column_types, tables}` ([`ViewSummary`]). `freshness_seconds`: when the
//!   source has committed changes not yet visible in the view (its head is
//!   past the view's position) and knows the oldest pending commit's time,
//!   now minus that time; otherwise the last observed commit→visible latency
//!   of the view (the worst one of the last batch that touched its tables;
//!   0 before any change). `within_sla` is true when the view has no
//!   `max_staleness` or its freshness is within it.
//! - `GET /views/{name}`: an array of row objects (see [`json`] for the
//!   rendering of values; non-finite doubles are `null`), PostgREST-style
//!   parameters `col=[not.]op.value` with op `eq, neq, lt, lte, gt, gte,
//!   in.(a,b), is.null, is.true, is.false` (ANDed), `order=col.desc,col2`
//!   with `.nullsfirst`/`.nullslast`, `limit`, `offset`, `select`; see
//!   [`query`] for value parsing and semantics. Without `order` rows come by
//!   key. `eq` on every key column is served by a key lookup, not a scan.
//!   The `Denorm-Position` header gives the position of the rows.
//! - `GET /health`: [`Health`]; HTTP 503 while `starting`.
//! - `GET /metrics`: Prometheus text format; see [`Metrics`].
//!
//! Errors are `{"error": {"code", "message", "hint"}}` ([`ApiError`]):
//! `unknown_view` 404, `bad_parameter` 400, `view_failed` 503, `starting` 503,
//! `not_found` 404.

mod http;
pub mod json;
mod metrics;
pub mod query;
mod rows;
mod state;

pub use http::{read_rows, router, serve, ApiError, POSITION_HEADER};
pub use json::{Health, ViewSummary};
pub use metrics::{Metrics, CONTENT_TYPE as METRICS_CONTENT_TYPE};
pub use state::{
    channel, pack_key, percentiles, ColumnInfo, Published, PublishedView, Publisher, Reader, SourceState, SourceStatus,
    ViewInfo, ViewRows, ViewStats, ViewStatus, WaitError,
};
