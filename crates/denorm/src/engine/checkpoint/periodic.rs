//! Periodic checkpoints (`[engine] checkpoint_interval`, default 5 min): so
//! that a restart after a `kill -9` loads the operators' state instead of
//! replaying every stored row.
//!
//! Between two batches, once the interval has passed and the views moved:
//! the state directory is made durable at the flow's position, the header
//! and the flow are encoded on the engine thread ([`Engine::begin_checkpoint`]:
//! the operators' state is mutable, so this is the only part that stalls the
//! pipeline), and a thread appends the published rows (an immutable
//! snapshot), the checksum, and writes and fsyncs the file. Once that
//! thread reports the file durable, the change log up to the checkpoint's
//! sequence is deleted ([`StateDir::forget_log`]); never before, so the
//! previous checkpoint stays usable with its log until the new one
//! replaces it. One write at a time: shutdown waits for a write under way
//! before writing its own.
//!
//! A checkpoint that cannot be taken (a view not covered: see the parent
//! module) removes the stale file and deletes the log (nothing could use
//! it), so the log never grows past one interval of changes.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use denorm_types::Position;
use tracing::{info, warn};

use super::super::flow::Flow;
use super::super::{Engine, EngineError};
use crate::state_dir::StateDir;

/// `[engine] checkpoint_interval` when it is not set.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// The periodic checkpoints of one engine: see the module documentation.
#[derive(Debug)]
pub struct Periodic {
    /// `None`: off (only shutdown writes one, and batches are not logged).
    interval: Option<Duration>,
    due: Option<Instant>,
    writing: Option<Writing>,
    /// The log sequence of the last checkpoint written (nothing new: skip).
    last_seq: Option<u64>,
}

#[derive(Debug)]
struct Writing {
    thread: JoinHandle<std::io::Result<usize>>,
    seq: u64,
    position: Position,
    encode_seconds: f64,
    started: Instant,
}

impl Default for Periodic {
    fn default() -> Self {
        Periodic::new(Some(DEFAULT_INTERVAL))
    }
}

impl Periodic {
    pub fn new(interval: Option<Duration>) -> Periodic {
        Periodic { interval, due: None, writing: None, last_seq: None }
    }

    /// Whether batches should be logged (periodic checkpoints are on).
    pub fn logging(&self) -> bool {
        self.interval.is_some()
    }

    /// A session starts: the first checkpoint is one interval away.
    pub fn begin(&mut self) {
        self.due = self.interval.map(|every| Instant::now() + every);
    }

    /// Collects a finished write: on success the change log it holds is
    /// deleted. With `block`, waits for one under way.
    fn collect(&mut self, state: &mut StateDir, block: bool) {
        let Some(writing) = self.writing.take_if(|w| block || w.thread.is_finished()) else { return };
        let written = writing.thread.join().unwrap_or_else(|_| Err(std::io::Error::other("the writer panicked")));
        match written {
            Ok(bytes) => {
                info!(
                    bytes,
                    position = writing.position.0,
                    encode_seconds = writing.encode_seconds,
                    total_seconds = writing.started.elapsed().as_secs_f64(),
                    periodic = true,
                    "checkpoint written to the state directory"
                );
                self.last_seq = Some(writing.seq);
                if let Err(e) = state.forget_log(writing.seq) {
                    warn!(error = %e, "cannot truncate the change log");
                }
            }
            Err(e) => warn!(error = %e, "cannot write a periodic checkpoint; the previous one is kept"),
        }
    }

    /// Waits for a write under way (at shutdown, before writing one).
    pub fn wait(&mut self, state: &mut StateDir) {
        self.collect(state, true);
    }
}

impl Engine {
    /// Between two batches: collects a finished checkpoint write and starts
    /// the next when one is due (see the module documentation).
    pub(in crate::engine) fn periodic_checkpoint(
        &mut self,
        flow: &Flow,
        state: Option<&mut StateDir>,
    ) -> Result<(), EngineError> {
        let (Some(dir), Some(state)) = (self.state_dir.clone(), state) else { return Ok(()) };
        self.checkpoints.collect(state, false);
        let (Some(every), Some(due)) = (self.checkpoints.interval, self.checkpoints.due) else { return Ok(()) };
        if Instant::now() < due || self.checkpoints.writing.is_some() {
            return Ok(());
        }
        self.checkpoints.due = Some(Instant::now() + every);
        if self.checkpoints.last_seq == Some(state.log_seq()) {
            return Ok(());
        }
        let started = Instant::now();
        // The checkpoint must never be ahead of the durable rows.
        state.make_durable()?;
        let pending = match self.begin_checkpoint(flow, state) {
            Ok(pending) => pending,
            Err(e) => {
                info!(reason = %e, "no periodic checkpoint; a restart after a crash replays the input rows");
                super::remove(&dir);
                state.forget_log(state.log_seq())?;
                self.checkpoints.last_seq = Some(state.log_seq());
                return Ok(());
            }
        };
        let (seq, position, encode_seconds) = (pending.seq, pending.position, pending.encode_seconds);
        match std::thread::Builder::new().name("denorm-checkpoint".into()).spawn(move || pending.write(&dir)) {
            Ok(thread) => self.checkpoints.writing = Some(Writing { thread, seq, position, encode_seconds, started }),
            Err(e) => warn!(error = %e, "cannot start the checkpoint writer; trying again next interval"),
        }
        Ok(())
    }

    /// Sets `[engine] checkpoint_interval` (`None`: off).
    pub fn with_checkpoint_interval(mut self, interval: Option<Duration>) -> Self {
        self.checkpoints = Periodic::new(interval);
        self
    }
}
