//! Published view state and the HTTP API (being written).
mod metrics;
mod query;
mod state;
pub use metrics::Metrics;
pub use state::*;
