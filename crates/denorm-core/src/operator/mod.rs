//! The incremental operators. Each is a pure state machine: a consolidated
//! batch of `(row, diff)` changes in, its output changes out, state updated in
//! place. None of them knows about threads, I/O, clocks or sources.

mod distinct;
mod join;
mod join_topk;
mod map;
mod reduce;
mod scalar_filter;
mod setop;
mod topk;

pub(crate) use distinct::Distinct;
pub(crate) use join::Join;
pub(crate) use join_topk::JoinTopK;
pub use join_topk::TopKState;
pub(crate) use map::{Filter, Map};
pub(crate) use reduce::{spelling, Reduce, KEEP_SCRATCH};
pub(crate) use scalar_filter::{ScalarComparison, ScalarFilter};
pub(crate) use setop::{negate, union, Threshold, Values};
pub(crate) use topk::TopK;
