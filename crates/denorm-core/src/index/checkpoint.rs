//! An arrangement's checkpoint: each small group's buffer exactly as it is
//! in memory (key, then rows with diffs), then each large group's rows. A
//! load allocates one buffer per small group, as the running arrangement
//! does, and checks every buffer's structure before keeping it.

use denorm_types::Diff;

use super::{split, Index, Large, Small};
use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};
use crate::memory;

impl Index {
    pub(crate) fn save(&self, w: &mut Writer) {
        w.count(self.small.len());
        for buf in &self.small {
            w.bytes(buf);
        }
        w.count(self.large.len());
        for (key, large) in &self.large {
            w.row(key);
            write_changes(w, large.rows.len(), large.rows.iter().map(|(r, d)| (r, *d)));
        }
    }

    /// Loads into an empty arrangement.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        let small = r.count()?;
        self.small.reserve(small, |b| self.hasher.hash_one(split(b).0));
        for _ in 0..small {
            let buf = r.bytes()?;
            check_small(buf)?;
            let hash = self.hasher.hash_one(split(buf).0);
            let buf: Small = buf.into();
            self.heap += memory::slice(&buf);
            let hasher = &self.hasher;
            self.small.insert_unique(hash, buf, |b| hasher.hash_one(split(b).0));
        }
        for _ in 0..r.count()? {
            let key = r.row()?;
            let mut large = Large::default();
            for (row, diff) in r.changes()? {
                large.total += diff;
                large.rows.insert(row, diff);
            }
            self.heap += Self::large_bytes(&key, &large);
            self.large.insert(key, large);
        }
        Ok(())
    }
}

/// Walks a small group's buffer with bounds checks: a key, then entries
/// of a zigzag diff, a length and that many bytes, ending exactly.
fn check_small(buf: &[u8]) -> Result<(), CheckpointError> {
    let corrupt = || CheckpointError::Corrupt("an arrangement group's buffer is malformed".into());
    let varint = |at: &mut usize| -> Option<u64> {
        let (mut value, mut shift) = (0u64, 0u32);
        loop {
            let byte = *buf.get(*at)?;
            *at += 1;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(value);
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
    };
    let mut at = 0;
    let key = varint(&mut at).ok_or_else(corrupt)? as usize;
    at = at.checked_add(key).filter(|&e| e <= buf.len()).ok_or_else(corrupt)?;
    while at < buf.len() {
        let zigzag = varint(&mut at).ok_or_else(corrupt)?;
        let diff = (zigzag >> 1) as Diff ^ -((zigzag & 1) as Diff);
        let len = varint(&mut at).ok_or_else(corrupt)? as usize;
        at = at.checked_add(len).filter(|&e| e <= buf.len()).ok_or_else(corrupt)?;
        if diff == 0 {
            return Err(corrupt());
        }
    }
    Ok(())
}
