//! The dead-letter queue: source changes that could not be applied, kept
//! for an operator (`GET /dlq`, `denorm dlq list|retry|drop`).
//!
//! ```text
//!  engine thread                         HTTP handlers             operator
//!  ─────────────                         ─────────────             ────────
//!  DeadLetters::add (+ state dir) ──►  entries (shared)  ◄── GET /dlq (monitor)
//!  DeadLetters::take_requests ◄──────  requests         ◄── POST /dlq/{id}/drop|retry (loopback or monitor)
//!  DeadLetters::remove (+ state dir)
//! ```
//!
//! The engine owns the list (it writes each entry to the state directory
//! before it is shown, so what `/dlq` lists survives a restart); handlers
//! read it and queue requests, which the engine carries out between
//! batches. `denorm_dlq_entries` and `denorm_update_success_ratio`
//! (applied ÷ (applied + dead-lettered) source changes) follow it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// One source change that could not be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    /// The source table.
    pub table: String,
    /// The row's primary key as text (`id=4`), or the whole row when the
    /// table has none or the key cannot be read.
    pub key: String,
    /// The source position of the change.
    pub position: u64,
    pub reason: String,
    /// The value as the source gave it (SQLite: the logged row text's
    /// bytes; a retraction: the row as text).
    #[serde(with = "hex_bytes")]
    pub raw: Vec<u8>,
    /// When it was dead-lettered (unix seconds).
    pub at: f64,
    /// How many retries kept it (`denorm dlq retry`); the reason is the
    /// last one's.
    #[serde(default)]
    pub retries: u32,
}

/// What an operator asked for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Discard the entry.
    Drop(u64),
    /// Read the row from the source again and apply it if it now decodes.
    Retry(u64),
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u64, DeadLetter>,
    next_id: u64,
    applied: u64,
    dead_lettered: u64,
    requests: Vec<Request>,
}

/// The shared dead-letter list (clones share it).
#[derive(Debug, Clone, Default)]
pub struct DeadLetters {
    inner: Arc<Mutex<Inner>>,
    metrics: Option<Metrics>,
}

impl DeadLetters {
    pub(crate) fn new(metrics: Metrics) -> DeadLetters {
        let dlq = DeadLetters { inner: Arc::default(), metrics: Some(metrics) };
        dlq.update_metrics(&dlq.lock());
        dlq
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_metrics(&self, inner: &Inner) {
        if let Some(metrics) = &self.metrics {
            metrics.set_dlq(inner.entries.len() as u64, inner.applied, inner.dead_lettered);
        }
    }

    /// Replaces the list with entries kept from before (the state
    /// directory, at start).
    pub fn restore(&self, entries: Vec<DeadLetter>) {
        let mut inner = self.lock();
        inner.next_id = entries.iter().map(|e| e.id + 1).max().unwrap_or(0).max(inner.next_id);
        inner.entries = entries.into_iter().map(|e| (e.id, e)).collect();
        self.update_metrics(&inner);
    }

    /// Assigns the next id to `entry` (its `id` is ignored), lists it and
    /// returns it as listed.
    pub fn add(&self, mut entry: DeadLetter) -> DeadLetter {
        let mut inner = self.lock();
        entry.id = inner.next_id;
        inner.next_id += 1;
        inner.dead_lettered += 1;
        inner.entries.insert(entry.id, entry.clone());
        self.update_metrics(&inner);
        entry
    }

    /// Counts `n` source changes applied (for `denorm_update_success_ratio`).
    pub fn applied(&self, n: u64) {
        let mut inner = self.lock();
        inner.applied += n;
        self.update_metrics(&inner);
    }

    /// Replaces the listed entry with the same id (a retry that kept it);
    /// false when there is none.
    pub fn replace(&self, entry: DeadLetter) -> bool {
        let mut inner = self.lock();
        match inner.entries.get_mut(&entry.id) {
            Some(listed) => {
                *listed = entry;
                true
            }
            None => false,
        }
    }

    /// Removes an entry; `None` when there is none with `id`.
    pub fn remove(&self, id: u64) -> Option<DeadLetter> {
        let mut inner = self.lock();
        let removed = inner.entries.remove(&id);
        self.update_metrics(&inner);
        removed
    }

    /// The entries, oldest first.
    pub fn list(&self) -> Vec<DeadLetter> {
        self.lock().entries.values().cloned().collect()
    }

    pub fn get(&self, id: u64) -> Option<DeadLetter> {
        self.lock().entries.get(&id).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `applied / (applied + dead-lettered)` since start; 1 before any.
    pub fn success_ratio(&self) -> f64 {
        let inner = self.lock();
        let total = inner.applied + inner.dead_lettered;
        if total == 0 {
            1.0
        } else {
            inner.applied as f64 / total as f64
        }
    }

    /// Queues an operator's request for the engine; false when no entry
    /// has the id.
    pub fn request(&self, request: Request) -> bool {
        let mut inner = self.lock();
        let (Request::Drop(id) | Request::Retry(id)) = request;
        if !inner.entries.contains_key(&id) {
            return false;
        }
        inner.requests.push(request);
        true
    }

    /// The requests queued since the last call (the engine's side).
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.lock().requests)
    }
}

/// Bytes as lower-case hex in JSON (`"raw": "610062"`).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        super::unhex(&text).ok_or_else(|| serde::de::Error::custom("not hexadecimal"))
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// The JSON `GET /dlq` answers: the entries (each with its raw value as
/// hex and as text, invalid UTF-8 replaced) and the figures.
pub fn document(dlq: &DeadLetters) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = dlq
        .list()
        .into_iter()
        .map(|e| {
            let text = String::from_utf8_lossy(&e.raw).into_owned();
            let mut value = serde_json::to_value(&e).unwrap_or_default();
            value["raw_text"] = serde_json::Value::String(text);
            value
        })
        .collect();
    serde_json::json!({
        "entries": entries,
        "count": dlq.len(),
        "update_success_ratio": dlq.success_ratio(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(table: &str) -> DeadLetter {
        DeadLetter {
            id: 99,
            table: table.into(),
            key: "id=1".into(),
            position: 7,
            reason: "r".into(),
            raw: vec![0x61, 0xff, 0],
            at: 1.5,
            retries: 0,
        }
    }

    /// Ids are assigned in order and survive a restore; requests name only
    /// listed entries; the ratio and the metrics follow.
    #[test]
    fn entries_requests_and_figures() {
        let metrics = Metrics::new();
        let dlq = DeadLetters::new(metrics.clone());
        assert_eq!(dlq.success_ratio(), 1.0);
        dlq.applied(3);
        let a = dlq.add(entry("t"));
        let b = dlq.add(entry("u"));
        assert_eq!((a.id, b.id), (0, 1));
        assert_eq!(dlq.success_ratio(), 0.6);
        let text = metrics.render();
        assert!(text.contains("denorm_dlq_entries 2"), "{text}");
        assert!(text.contains("denorm_update_success_ratio 0.6"), "{text}");
        assert!(dlq.request(Request::Drop(1)));
        assert!(!dlq.request(Request::Drop(5)), "no such entry");
        assert!(dlq.request(Request::Retry(0)));
        assert!(!dlq.request(Request::Retry(5)));
        assert_eq!(dlq.take_requests(), vec![Request::Drop(1), Request::Retry(0)]);
        let kept = DeadLetter { reason: "still bad".into(), retries: 1, ..a.clone() };
        assert!(dlq.replace(kept.clone()));
        assert_eq!(dlq.get(0), Some(kept));
        assert!(!dlq.replace(DeadLetter { id: 7, ..a.clone() }), "no entry 7");
        assert!(dlq.take_requests().is_empty());
        assert_eq!(dlq.remove(1).map(|e| e.table), Some("u".into()));
        let restored = DeadLetters::new(Metrics::new());
        restored.restore(dlq.list());
        assert_eq!(restored.add(entry("v")).id, 1, "ids go on after the largest kept");
        let doc = document(&dlq);
        assert_eq!(doc["count"], 1);
        assert_eq!(doc["entries"][0]["raw"], "61ff00");
        assert_eq!(doc["entries"][0]["raw_text"], "a\u{fffd}\u{0}");
        let back: DeadLetter = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
        assert_eq!(back, a, "entries round-trip through JSON (the state directory's encoding)");
        let mut older = serde_json::to_value(&a).unwrap();
        older.as_object_mut().unwrap().remove("retries");
        let back: DeadLetter = serde_json::from_value(older).unwrap();
        assert_eq!(back, a, "an entry written before retries existed reads with none");
    }
}
