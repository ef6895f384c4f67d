//! The denorm binary's library half: the command line ([`cli`]), the
//! configuration file ([`config`]) and the commands that wire sources, the
//! planner and the engine together. `main.rs` only tunes the allocator
//! ([`alloc::purge_promptly`]) and calls [`cli::main`].

mod admin_cli;
pub mod advise;
pub mod alloc;
mod check;
pub mod cli;
pub mod config;
mod demo;
mod describe;
mod dlq;
mod engine;
mod estimate;
mod fallback;
mod plan;
mod redacting;
mod run;
mod sinks;
mod source;
pub mod state_dir;

pub use engine::flow::dataflow_views;
pub use run::serving_info;
