//! The audit log (`[audit]`, the seeds' access logs and metric M10): one
//! JSON line per read of a view, allowed or refused, to a file (appended)
//! or stdout.
//!
//! ```json
//! {"time":1765080000.123,"role":"tenant","subject":"u42","view":"orders","query":"status=eq.open","rows":3,"status":200}
//! {"time":1765080001.456,"role":null,"subject":null,"view":"orders","query":"","rows":null,"status":401,"denied":"missing_token"}
//! ```
//!
//! A line is written whole under a lock and flushed at once, so lines from
//! concurrent requests never interleave and a crash loses at most the line
//! being written. A failing write (disk full) is logged once as a warning
//! and the read itself still succeeds: the audit log must not become the
//! way to take the API down.

use std::fs::{File, OpenOptions};
use std::io::{LineWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Where the audit log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Stdout,
    File(PathBuf),
}

/// One read, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry<'a> {
    /// Unix seconds.
    pub time: f64,
    pub role: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub view: &'a str,
    /// The request's query string, as sent.
    pub query: &'a str,
    /// Rows returned (`None` when refused or failed).
    pub rows: Option<usize>,
    pub status: u16,
    /// The denial's reason label, when refused by `[auth]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied: Option<&'a str>,
}

/// The open audit log.
#[derive(Debug)]
pub struct AuditLog {
    out: Mutex<Out>,
    failed: AtomicBool,
}

#[derive(Debug)]
enum Out {
    Stdout,
    File(LineWriter<File>),
}

impl AuditLog {
    /// Opens `target` (a file is created or appended to).
    pub fn open(target: &AuditTarget) -> std::io::Result<AuditLog> {
        let out = match target {
            AuditTarget::Stdout => Out::Stdout,
            AuditTarget::File(path) => Out::File(LineWriter::new(open_append(path)?)),
        };
        Ok(AuditLog { out: Mutex::new(out), failed: AtomicBool::new(false) })
    }

    /// Writes one line.
    pub fn record(&self, entry: &AuditEntry<'_>) {
        let mut line = match serde_json::to_vec(entry) {
            Ok(line) => line,
            Err(_) => return,
        };
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let written = match &mut *out {
            Out::Stdout => std::io::stdout().lock().write_all(&line),
            Out::File(file) => file.write_all(&line),
        };
        if let Err(e) = written {
            if !self.failed.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot write the audit log; reads go on, unaudited lines are lost");
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "{\"earlier\":true}\n").unwrap();
        let log = AuditLog::open(&AuditTarget::File(path.clone())).unwrap();
        let entry = AuditEntry {
            time: 1.5,
            role: Some("tenant"),
            subject: Some("u1"),
            view: "orders",
            query: "id=eq.1",
            rows: Some(1),
            status: 200,
            denied: None,
        };
        log.record(&entry);
        log.record(&AuditEntry { rows: None, status: 401, denied: Some("missing_token"), role: None, ..entry });
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["view"], "orders");
        assert_eq!(lines[1]["rows"], 1);
        assert!(lines[1].get("denied").is_none());
        assert_eq!(lines[2]["denied"], "missing_token");
        assert_eq!(lines[2]["role"], serde_json::Value::Null);
    }
}
