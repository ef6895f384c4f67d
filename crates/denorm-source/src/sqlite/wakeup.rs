//! Blocking until a SQLite database may hold new committed changes.
//!
//! ```text
//!  other process commits ──► writes <db>-wal ──inotify──► channel ─┐
//!                        └─► wal-index header ──PRAGMA data_version┤ every POLL_INTERVAL
//!                                                                  ▼
//!                                                        Wakeup::wait → Changed
//! ```
//!
//! Two signals, because neither suffices alone: a file event arrives as soon
//! as the writer touches the WAL but may come before the commit is visible
//! (and never comes on file systems without inotify, or when the watch
//! limit is reached); `PRAGMA data_version` changes exactly when another
//! connection committed, but has to be asked. So a file event triggers an
//! immediate `data_version` check, and `data_version` is also checked every
//! [`POLL_INTERVAL`] — never a long fixed sleep.
//!
//! No lost wake-ups: `wait` compares `data_version` with the value it saw
//! when it last returned, so a commit made after the caller's last poll but
//! before `wait` makes `wait` return at once. At worst a wake-up is spurious
//! (the poll then finds nothing).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};
use rusqlite::Connection;

use super::capture::sqlite_error;
use crate::SourceError;

/// How often `data_version` is checked when no file event arrives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Why [`Wakeup::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeReason {
    /// Another connection committed since the last return: poll.
    Changed,
    /// Nothing was committed within the timeout.
    Timeout,
}

/// Blocks until the database may hold new committed changes; usable from
/// any plain thread (it is `Send`).
pub struct Wakeup {
    path: PathBuf,
    conn: Connection,
    data_version: i64,
    events: Option<Receiver<()>>,
    /// Kept alive: dropping it stops the watch.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl fmt::Debug for Wakeup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wakeup")
            .field("path", &self.path)
            .field("data_version", &self.data_version)
            .field("watching", &self._watcher.is_some())
            .finish()
    }
}

impl Wakeup {
    /// Watches the database at `path`. When the directory cannot be watched
    /// it logs a warning and relies on `data_version` polling alone.
    pub fn new(path: &Path) -> Result<Self, SourceError> {
        let conn = super::open_read_only(path)?;
        let data_version = data_version(&conn, path)?;
        let (events, watcher) = match watch(path) {
            Ok((events, watcher)) => (Some(events), Some(watcher)),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot watch the database directory; polling only");
                (None, None)
            }
        };
        Ok(Wakeup { path: path.to_path_buf(), conn, data_version, events, _watcher: watcher })
    }

    /// Blocks until another connection commits ([`WakeReason::Changed`]) or
    /// `timeout` passes ([`WakeReason::Timeout`]).
    pub fn wait(&mut self, timeout: Duration) -> Result<WakeReason, SourceError> {
        let deadline = Instant::now() + timeout;
        if self.changed()? {
            return Ok(WakeReason::Changed);
        }
        // Events from before this call are covered by the check above.
        if let Some(events) = &self.events {
            while events.try_recv().is_ok() {}
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(WakeReason::Timeout);
            }
            self.sleep((deadline - now).min(POLL_INTERVAL));
            if self.changed()? {
                return Ok(WakeReason::Changed);
            }
        }
    }

    /// Sleeps for `interval` or until a file event, whichever comes first.
    fn sleep(&mut self, interval: Duration) {
        match &self.events {
            Some(events) => match events.recv_timeout(interval) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    tracing::warn!(path = %self.path.display(), "the file watcher stopped; polling only");
                    self.events = None;
                }
            },
            None => std::thread::sleep(interval),
        }
    }

    fn changed(&mut self) -> Result<bool, SourceError> {
        let version = data_version(&self.conn, &self.path)?;
        let changed = version != self.data_version;
        self.data_version = version;
        Ok(changed)
    }
}

fn data_version(conn: &Connection, path: &Path) -> Result<i64, SourceError> {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).map_err(sqlite_error(path, "reading PRAGMA data_version"))
}

/// Watches the database's directory for changes to the database file and
/// its `-wal` file; each such event sends a unit (coalesced: the channel
/// holds one).
fn watch(path: &Path) -> notify::Result<(Receiver<()>, notify::RecommendedWatcher)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    let mut wal = name.clone();
    wal.push("-wal");
    let watched: [OsString; 2] = [name, wal];
    let (sender, receiver) = sync_channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.paths.iter().any(|p| p.file_name().is_some_and(|n| watched.iter().any(|w| w == n))) {
            let _ = sender.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok((receiver, watcher))
}
