//! An arrangement's checkpoint: each small group's buffer exactly as it is
//! in memory (key, then rows with diffs), then each large group's rows. A
//! load allocates one buffer per small group, as the running arrangement
//! does, and checks every buffer's structure before keeping it. A buffer
//! of an older row encoding (the reader re-packs rows) is rebuilt from its
//! key and rows re-packed.

use denorm_types::{Diff, RowRef};

use super::{push_entry, push_varint, split, Index, Large, Packed, Small};
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
            let buf: Small = if r.repacks_rows() { repacked(buf) } else { buf.into() };
            let hash = self.hasher.hash_one(split(&buf).0);
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

/// A small group's buffer (checked) with its key and rows re-packed in
/// today's row encoding.
fn repacked(buf: &[u8]) -> Small {
    let (key, rows) = split(buf);
    let key = RowRef::from_prefix(key, key.len()).repacked();
    let mut out = Vec::with_capacity(buf.len());
    push_varint(&mut out, key.as_bytes().len() as u64);
    out.extend_from_slice(key.as_bytes());
    for (row, diff) in (Packed { buf, at: rows }) {
        push_entry(&mut out, RowRef::from(&row.repacked()), diff);
    }
    out.into()
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use denorm_types::{Datum, Row, RowRef};
    use proptest::prelude::*;

    use super::*;

    fn row(k: i64, v: i64) -> Row {
        Row::pack([Datum::Int(k), Datum::owned_text(format!("value {v} of a row long enough for the heap"))])
    }

    /// The rows of every group, by key bytes.
    fn groups(index: &Index, keys: &[Row]) -> BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Diff>> {
        keys.iter()
            .filter_map(|key| {
                let (group, _) = index.get(key)?;
                Some((key.as_bytes().to_vec(), group.iter().map(|(r, d)| (r.as_bytes().to_vec(), d)).collect()))
            })
            .collect()
    }

    proptest! {
        /// Small groups and groups past the scan limit load back with the
        /// same rows, totals and heap bytes, and apply later changes alike.
        #[test]
        fn loads_the_same_groups(
            changes in proptest::collection::vec((0i64..4, 0i64..120, -1i64..3), 1..600),
            later in proptest::collection::vec((0i64..4, 0i64..120, -1i64..2), 1..40),
        ) {
            let mut index = Index::new(vec![0]);
            let mut batch: BTreeMap<Row, Diff> = BTreeMap::new();
            for &(k, v, d) in &changes {
                *batch.entry(row(k, v)).or_default() += d;
            }
            // Never below zero, as an arrangement's input never is.
            let batch: Vec<(Row, Diff)> = batch.into_iter().filter(|(_, d)| *d > 0).collect();
            index.apply(&batch);
            let mut w = Writer::default();
            index.save(&mut w);
            let mut copy = Index::new(vec![0]);
            let mut r = Reader::new(&w.buf);
            copy.load(&mut r).unwrap();
            prop_assert!(r.at_end());
            let keys: Vec<Row> = (0..4).map(|k| index.key_of(&row(k, 0)).0).collect();
            prop_assert_eq!(groups(&copy, &keys), groups(&index, &keys));
            prop_assert_eq!(copy.heap, index.heap);
            prop_assert_eq!(copy.state_bytes() - copy.scratch.capacity() - copy.packer.allocated_bytes(),
                copy.walked_state_bytes() - copy.scratch.capacity() - copy.packer.allocated_bytes());
            // New rows (each once): insertions into small and large groups.
            let next: BTreeMap<Row, Diff> = later.iter().map(|&(k, v, d)| (row(k, v + 1000), d.max(1))).collect();
            let next: Vec<(Row, Diff)> = next.into_iter().collect();
            index.apply(&next);
            copy.apply(&next);
            prop_assert_eq!(groups(&copy, &keys), groups(&index, &keys));
            prop_assert_eq!(copy.heap, index.heap);
        }
    }

    /// A row as a checkpoint before the short decimal form held it: the
    /// double in tag 7 (its 8 bytes), then an integer.
    fn old_row(x: f64, v: i64) -> Row {
        let bytes = [&[7][..], &x.to_le_bytes(), &[3, v as u8]].concat();
        RowRef::from_prefix(&bytes, bytes.len()).to_row()
    }

    /// An arrangement saved with rows of the old encoding (doubles in tag
    /// 7), read by a reader that re-packs, loads as the arrangement of the
    /// same rows packed today, in small groups and in groups past the scan
    /// limit, and retracts today's rows.
    #[test]
    fn rows_of_an_old_encoding_load_repacked() {
        let new_row = |x: f64, v: i64| Row::pack([Datum::Float(x), Datum::Int(v)]);
        let sizes = [(0.5, 3), (2.25, 1), (7.0, 100)];
        let batch = |row: &dyn Fn(f64, i64) -> Row| -> Vec<(Row, Diff)> {
            sizes.iter().flat_map(|&(x, n)| (0..n).map(move |v| (row(x, v), 1 + v % 2))).collect()
        };
        let mut old = Index::new(vec![0]);
        old.apply(&batch(&old_row));
        assert_ne!(old_row(0.5, 1), new_row(0.5, 1));
        let mut w = Writer::default();
        old.save(&mut w);
        let mut loaded = Index::new(vec![0]);
        let mut r = Reader::new(&w.buf);
        r.repack_rows();
        loaded.load(&mut r).unwrap();
        assert!(r.at_end());
        let mut today = Index::new(vec![0]);
        today.apply(&batch(&new_row));
        let keys: Vec<Row> = sizes.iter().map(|&(x, _)| today.key_of(&new_row(x, 0)).0).collect();
        assert_eq!(groups(&loaded, &keys), groups(&today, &keys));
        assert_eq!(loaded.heap, today.heap);
        let retract = [(new_row(0.5, 0), -1), (new_row(7.0, 0), -1)];
        loaded.apply(&retract);
        today.apply(&retract);
        assert_eq!(groups(&loaded, &keys), groups(&today, &keys));
    }

    #[test]
    fn a_malformed_group_buffer_is_refused() {
        let mut index = Index::new(vec![0]);
        index.apply(&[(row(1, 1), 1), (row(1, 2), 1)]);
        let mut w = Writer::default();
        index.save(&mut w);
        // The first buffer's length prefix (after the group count) made
        // shorter: the buffer ends inside a row.
        let mut bytes = w.buf.clone();
        bytes[8] -= 3;
        let err = Index::new(vec![0]).load(&mut Reader::new(&bytes)).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt(_)), "{err}");
    }
}
