//! Published view state and the HTTP API (being written).
mod metrics;
mod state;
pub use metrics::Metrics;
pub use state::*;
