//! An arrangement: a collection indexed by key columns, the state a join
//! probes.
//!
//! Rows are kept whole with their multiplicity, grouped by the SQL-normalized
//! key ([`RowPacker::push_key`]). A group of up to [`SCAN_LIMIT`] rows is one
//! exactly sized buffer holding its key and its rows back to back, and the
//! table holds only that buffer's pointer (16 bytes a slot): a key with one
//! short row costs its bytes plus about 4, where a map of `Row` keys to row
//! lists cost 72 bytes a slot plus an `Arc` per row longer than 22 bytes.
//! A larger group moves to a second map of hash maps, so updating a
//! celebrity's group of a million rows stays O(1).

use hashbrown::{HashMap, HashTable};

use denorm_types::{Diff, Row, RowPacker, RowRef};

use crate::{memory, Hasher};

mod by_key;
mod checkpoint;

pub(crate) use by_key::ByKey;

/// Groups larger than this are hashed instead of scanned.
const SCAN_LIMIT: usize = 64;

fn push_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push(value as u8 | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn read_varint(buf: &[u8], at: &mut usize) -> u64 {
    let (mut value, mut shift) = (0u64, 0);
    loop {
        let byte = buf[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

fn push_entry(buf: &mut Vec<u8>, row: RowRef<'_>, diff: Diff) {
    push_varint(buf, ((diff << 1) ^ (diff >> 63)) as u64);
    push_varint(buf, row.as_bytes().len() as u64);
    buf.extend_from_slice(row.as_bytes());
}

/// A small group's buffer: the key's length (LEB128) and bytes, then each
/// row as its diff (zigzag LEB128), its length (LEB128) and its bytes.
type Small = Box<[u8]>;

/// The key bytes of a small group and where its rows start.
fn split(buf: &[u8]) -> (&[u8], usize) {
    let mut at = 0;
    let len = read_varint(buf, &mut at) as usize;
    (&buf[at..at + len], at + len)
}

/// Rows packed back to back (the rows of a [`Small`] group).
#[derive(Debug, Clone)]
pub(crate) struct Packed<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Packed<'a> {
    type Item = (RowRef<'a>, Diff);

    fn next(&mut self) -> Option<(RowRef<'a>, Diff)> {
        if self.at == self.buf.len() {
            return None;
        }
        let zigzag = read_varint(self.buf, &mut self.at);
        let diff = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
        let len = read_varint(self.buf, &mut self.at) as usize;
        let row = RowRef::from_prefix(&self.buf[self.at..], len);
        self.at += len;
        Some((row, diff))
    }
}

/// A group too large to scan: its rows hashed, and their total.
#[derive(Debug, Default)]
struct Large {
    rows: HashMap<Row, Diff, Hasher>,
    total: Diff,
}

/// The rows sharing one key, borrowed from an arrangement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Group<'a> {
    /// The rows of a small group, packed.
    Few(&'a [u8]),
    Many(&'a HashMap<Row, Diff, Hasher>),
}

/// The rows of a group with their multiplicities.
#[derive(Debug)]
pub(crate) enum GroupIter<'a> {
    Few(Packed<'a>),
    Many(hashbrown::hash_map::Iter<'a, Row, Diff>),
}

impl<'a> Iterator for GroupIter<'a> {
    type Item = (RowRef<'a>, Diff);

    fn next(&mut self) -> Option<(RowRef<'a>, Diff)> {
        match self {
            GroupIter::Few(packed) => packed.next(),
            GroupIter::Many(rows) => rows.next().map(|(r, d)| (r.into(), *d)),
        }
    }
}

impl<'a> Group<'a> {
    /// The group's rows with their multiplicities.
    pub(crate) fn iter(&self) -> GroupIter<'a> {
        match *self {
            Group::Few(buf) => GroupIter::Few(Packed { buf, at: 0 }),
            Group::Many(rows) => GroupIter::Many(rows.iter()),
        }
    }

    /// The multiplicity of one row.
    pub(crate) fn count(&self, row: RowRef<'_>) -> Diff {
        match self {
            Group::Many(rows) => rows.get(row.as_bytes()).copied().unwrap_or(0),
            _ => self.iter().find(|(r, _)| *r == row).map_or(0, |(_, d)| d),
        }
    }
}

/// A collection indexed by some of its columns.
#[derive(Debug)]
pub(crate) struct Index {
    key_columns: Vec<usize>,
    hasher: Hasher,
    small: HashTable<Small>,
    large: HashMap<Row, Large, Hasher>,
    packer: RowPacker,
    /// Reused to rebuild a small group.
    scratch: Vec<u8>,
    /// Heap bytes of the small groups' buffers and the large groups (keys,
    /// maps and rows), kept up to date by [`Index::update`] so that
    /// [`Index::state_bytes`] is O(1).
    heap: usize,
}

impl Index {
    pub(crate) fn new(key_columns: Vec<usize>) -> Self {
        Index {
            key_columns,
            hasher: Hasher::default(),
            small: HashTable::new(),
            large: HashMap::default(),
            packer: RowPacker::new(),
            scratch: Vec::new(),
            heap: 0,
        }
    }

    pub(crate) fn key_columns(&self) -> &[usize] {
        &self.key_columns
    }

    /// The key of `row`, and whether it has a NULL column.
    pub(crate) fn key_of(&mut self, row: &Row) -> (Row, bool) {
        key_of(&self.key_columns, row, &mut self.packer)
    }

    /// Applies one change.
    pub(crate) fn update(&mut self, key: Row, row: &Row, diff: Diff) {
        self.update_group(key, &[(row.into(), diff)]);
    }

    /// Applies a batch of changes: each group the batch touches is rebuilt
    /// once, whatever the number of its changes (a snapshot inserts a whole
    /// group at once).
    pub(crate) fn apply(&mut self, changes: &[(Row, Diff)]) {
        if changes.len() <= 1 {
            for (row, diff) in changes {
                let (key, _) = self.key_of(row);
                self.update(key, row, *diff);
            }
            return;
        }
        let mut packer = std::mem::take(&mut self.packer);
        ByKey::new(&self.key_columns, changes, &mut packer).for_each(|key, rows| self.update_group(key, rows));
        self.packer = packer;
    }

    /// Applies `changes` (each row at most once) to the group of `key`.
    fn update_group(&mut self, key: Row, changes: &[(RowRef<'_>, Diff)]) {
        if let Some(large) = self.large.get_mut(key.as_bytes()) {
            // O(changes): the map's table and the changed rows' buffers.
            self.heap -= large.rows.allocation_size();
            for &(row, diff) in changes.iter().filter(|(_, d)| *d != 0) {
                large.total += diff;
                match large.rows.get_mut(row.as_bytes()) {
                    Some(count) => {
                        *count += diff;
                        if *count == 0 {
                            let (gone, _) = large.rows.remove_entry(row.as_bytes()).expect("present");
                            self.heap -= memory::row(&gone);
                        }
                    }
                    None => {
                        let row = row.to_row();
                        self.heap += memory::row(&row);
                        large.rows.insert(row, diff);
                    }
                }
            }
            if large.rows.is_empty() {
                self.heap -= memory::row(&key);
                self.large.remove(key.as_bytes());
            } else {
                self.heap += large.rows.allocation_size();
            }
            return;
        }
        let hash = self.hasher.hash_one(key.as_bytes());
        let hasher = &self.hasher;
        let entry = self.small.find_entry(hash, |buf| split(buf).0 == key.as_bytes());
        // The group's rows after the changes, in order: kept rows first.
        let mut rows: Vec<(RowRef<'_>, Diff)> = Vec::new();
        let start = match &entry {
            Ok(entry) => {
                let buf = entry.get();
                let start = split(buf).1;
                rows.extend(Packed { buf, at: start });
                start
            }
            Err(_) => 0,
        };
        merge(&mut rows, changes);
        let old_bytes = entry.as_ref().map_or(0, |e| memory::slice(e.get()));
        self.scratch.clear();
        push_varint(&mut self.scratch, key.as_bytes().len() as u64);
        self.scratch.extend_from_slice(key.as_bytes());
        debug_assert!(start == 0 || start == self.scratch.len());
        let count = rows.len();
        if count > SCAN_LIMIT {
            let mut large = Large::default();
            for &(r, d) in &rows {
                large.rows.insert(r.to_row(), d);
                large.total += d;
            }
            drop(rows);
            if let Ok(entry) = entry {
                entry.remove();
            }
            self.heap -= old_bytes;
            self.heap += Self::large_bytes(&key, &large);
            self.large.insert(key, large);
            return;
        }
        for &(r, d) in &rows {
            push_entry(&mut self.scratch, r, d);
        }
        drop(rows);
        self.heap -= old_bytes;
        match entry {
            Ok(entry) if count == 0 => {
                entry.remove();
            }
            Ok(mut entry) => {
                *entry.get_mut() = self.scratch.as_slice().into();
                self.heap += self.scratch.len();
            }
            Err(_) if count == 0 => {}
            Err(_) => {
                self.heap += self.scratch.len();
                let buf: Small = self.scratch.as_slice().into();
                self.small.insert_unique(hash, buf, |b| hasher.hash_one(split(b).0));
            }
        }
    }

    /// Heap bytes of a large group: its key, its map, and its rows.
    fn large_bytes(key: &Row, large: &Large) -> usize {
        memory::row(key) + large.rows.allocation_size() + large.rows.keys().map(memory::row).sum::<usize>()
    }

    /// Live heap bytes of the arrangement: its tables, the small groups'
    /// buffers and the large groups (see [`crate::memory`]), kept as a
    /// running count: O(1) but for large groups, walked.
    pub(crate) fn state_bytes(&self) -> usize {
        self.small.allocation_size()
            + self.large.allocation_size()
            + self.packer.allocated_bytes()
            + self.scratch.capacity()
            + self.heap
    }

    /// [`Index::state_bytes`] computed by walking every group (tests check
    /// the running count against it).
    #[cfg(test)]
    pub(crate) fn walked_state_bytes(&self) -> usize {
        self.small.allocation_size()
            + self.large.allocation_size()
            + self.packer.allocated_bytes()
            + self.scratch.capacity()
            + self.small.iter().map(|b| memory::slice(b)).sum::<usize>()
            + self.large.iter().map(|(k, l)| Self::large_bytes(k, l)).sum::<usize>()
    }

    /// The rows under `key` and their total multiplicity.
    pub(crate) fn get(&self, key: &Row) -> Option<(Group<'_>, Diff)> {
        let hash = self.hasher.hash_one(key.as_bytes());
        if let Some(buf) = self.small.find(hash, |buf| split(buf).0 == key.as_bytes()) {
            let rows = &buf[split(buf).1..];
            let total = (Packed { buf: rows, at: 0 }).map(|(_, d)| d).sum();
            return Some((Group::Few(rows), total));
        }
        if self.large.is_empty() {
            return None;
        }
        self.large.get(key.as_bytes()).map(|l| (Group::Many(&l.rows), l.total))
    }
}

/// Adds `changes` (each row at most once) to `rows` (each row once), in
/// place; rows whose count reaches zero are dropped.
pub(crate) fn merge<'a>(rows: &mut Vec<(RowRef<'a>, Diff)>, changes: &[(RowRef<'a>, Diff)]) {
    if rows.len() * changes.len() <= 256 {
        for &(row, diff) in changes {
            match rows.iter_mut().find(|(r, _)| *r == row) {
                Some((_, count)) => *count += diff,
                None => rows.push((row, diff)),
            }
        }
    } else {
        let mut at: HashMap<&[u8], usize, Hasher> = HashMap::default();
        for (i, (row, _)) in rows.iter().enumerate() {
            at.insert(row.as_bytes(), i);
        }
        for &(row, diff) in changes {
            match at.get(row.as_bytes()) {
                Some(&i) => rows[i].1 += diff,
                None => {
                    at.insert(row.as_bytes(), rows.len());
                    rows.push((row, diff));
                }
            }
        }
    }
    rows.retain(|(_, d)| *d != 0);
}

/// Packs `key_columns` of `row` for SQL equality; the flag is true when some
/// key column is NULL (such a key matches nothing).
pub(crate) fn key_of(key_columns: &[usize], row: &Row, packer: &mut RowPacker) -> (Row, bool) {
    let mut has_null = false;
    for &c in key_columns {
        has_null |= packer.push_key_column(row, c);
    }
    (packer.finish(), has_null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn row(k: i64, v: i64) -> Row {
        Row::pack([Datum::Int(k), Datum::owned_text(format!("value number {v} of a row long enough for the heap"))])
    }

    proptest! {
        /// The arrangement equals a plain map of keys to row counts after
        /// any changes: groups growing past the scan limit and shrinking
        /// back, rows cancelling out, keys disappearing.
        #[test]
        fn equals_a_map_of_row_counts(
            changes in proptest::collection::vec((0i64..4, 0i64..40, -2i64..3), 1..400),
            batch in 1usize..40,
        ) {
            let mut index = Index::new(vec![0]);
            let mut model: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Diff>> = BTreeMap::new();
            for chunk in changes.chunks(batch) {
                // A consolidated batch (each row once), applied at once.
                let mut rows: BTreeMap<Vec<u8>, (Row, Diff)> = BTreeMap::new();
                for &(k, v, diff) in chunk {
                    let r = row(k, v);
                    rows.entry(r.as_bytes().to_vec()).or_insert((r, 0)).1 += diff;
                    let (key, _) = index.key_of(&row(k, v));
                    let group = model.entry(key.as_bytes().to_vec()).or_default();
                    *group.entry(row(k, v).as_bytes().to_vec()).or_default() += diff;
                    group.retain(|_, d| *d != 0);
                    model.retain(|_, g| !g.is_empty());
                }
                let batch: Vec<(Row, Diff)> = rows.into_values().filter(|(_, d)| *d != 0).collect();
                index.apply(&batch);
                prop_assert_eq!(index.state_bytes(), index.walked_state_bytes());
            }
            for k in 0..4 {
                let (key, _) = index.key_of(&row(k, 0));
                let want = model.get(key.as_bytes());
                match index.get(&key) {
                    None => prop_assert!(want.is_none()),
                    Some((group, total)) => {
                        let got: BTreeMap<Vec<u8>, Diff> = group.iter().map(|(r, d)| (r.as_bytes().to_vec(), d)).collect();
                        prop_assert_eq!(Some(&got), want);
                        prop_assert_eq!(total, got.values().sum::<Diff>());
                        for (r, d) in &got {
                            prop_assert_eq!(group.count(RowRef::from_prefix(r, r.len())), *d);
                        }
                    }
                }
            }
        }
    }
}
