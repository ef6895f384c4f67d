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

/// Groups larger than this are hashed instead of scanned.
const SCAN_LIMIT: usize = 16;

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

    pub(crate) fn update(&mut self, key: Row, row: &Row, diff: Diff) {
        if diff == 0 {
            return;
        }
        if let Some(large) = self.large.get_mut(key.as_bytes()) {
            // O(1): the map's table and the one row's buffer.
            self.heap -= large.rows.allocation_size();
            large.total += diff;
            let count = large.rows.entry_ref(row).or_insert(0);
            if *count == 0 {
                self.heap += memory::row(row);
            }
            *count += diff;
            if *count == 0 {
                large.rows.remove(row);
                self.heap -= memory::row(row);
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
        match self.small.find_entry(hash, |buf| split(buf).0 == key.as_bytes()) {
            Ok(entry) => {
                let buf = entry.get();
                self.heap -= memory::slice(buf);
                let (key_bytes, start) = split(buf);
                // Rebuilt exactly sized on every change: groups here are
                // short, and an exact buffer keeps the state compact.
                self.scratch.clear();
                self.scratch.extend_from_slice(&buf[..start]);
                let (mut found, mut count) = (false, 0);
                for (r, d) in (Packed { buf, at: start }) {
                    let d = if r.as_bytes() == row.as_bytes() {
                        found = true;
                        d + diff
                    } else {
                        d
                    };
                    if d != 0 {
                        push_entry(&mut self.scratch, r, d);
                        count += 1;
                    }
                }
                if !found {
                    push_entry(&mut self.scratch, row.into(), diff);
                    count += 1;
                }
                if count == 0 {
                    entry.remove();
                } else if count > SCAN_LIMIT {
                    let mut large = Large::default();
                    for (r, d) in (Packed { buf: &self.scratch, at: start }) {
                        large.rows.insert(r.to_row(), d);
                        large.total += d;
                    }
                    let key = RowRef::from_prefix(key_bytes, key_bytes.len()).to_row();
                    entry.remove();
                    self.heap += Self::large_bytes(&key, &large);
                    self.large.insert(key, large);
                } else {
                    let mut entry = entry;
                    *entry.get_mut() = self.scratch.as_slice().into();
                    self.heap += self.scratch.len();
                }
            }
            Err(_) => {
                self.scratch.clear();
                push_varint(&mut self.scratch, key.as_bytes().len() as u64);
                self.scratch.extend_from_slice(key.as_bytes());
                push_entry(&mut self.scratch, row.into(), diff);
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
        fn equals_a_map_of_row_counts(changes in proptest::collection::vec((0i64..4, 0i64..40, -2i64..3), 1..400)) {
            let mut index = Index::new(vec![0]);
            let mut model: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Diff>> = BTreeMap::new();
            for (k, v, diff) in changes {
                let r = row(k, v);
                let (key, _) = index.key_of(&r);
                index.update(key.clone(), &r, diff);
                let group = model.entry(key.as_bytes().to_vec()).or_default();
                *group.entry(r.as_bytes().to_vec()).or_default() += diff;
                group.retain(|_, d| *d != 0);
                model.retain(|_, g| !g.is_empty());
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
