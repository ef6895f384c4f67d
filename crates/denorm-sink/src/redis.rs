//! The Redis sink.

pub mod layout;
