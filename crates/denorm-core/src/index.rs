//! An arrangement: a collection indexed by key columns, the state a join
//! probes.
//!
//! Rows are kept whole with their multiplicity, grouped by the SQL-normalized
//! key ([`RowPacker::push_key`]). A group starts as one inline row (most keys
//! of a primary-key index hold one), then packs a few rows into one buffer,
//! and becomes a hash map once it grows, so updating a celebrity's group of a
//! million rows stays O(1).

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use denorm_types::{Diff, Row, RowPacker, RowRef};

use crate::{memory, Hasher};

/// Groups larger than this are hashed instead of scanned.
const SCAN_LIMIT: usize = 16;

/// The rows sharing one key. Most keys of a primary-key index hold one row,
/// kept inline without a separate allocation; a few rows share one exactly
/// sized buffer (a row costs its bytes plus about two); a large group is a
/// hash map so that updating a celebrity's group stays O(1).
#[derive(Debug, Clone)]
pub(crate) enum Group {
    One(Row, Diff),
    /// Up to [`SCAN_LIMIT`] rows back to back, each encoded as its diff
    /// (zigzag LEB128), its length (LEB128) and its bytes.
    Few(Box<[u8]>),
    Many(Box<HashMap<Row, Diff, Hasher>>),
}

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

/// The rows of a [`Group::Few`] buffer.
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

/// The rows of a group with their multiplicities.
#[derive(Debug)]
pub(crate) enum GroupIter<'a> {
    One(Option<(RowRef<'a>, Diff)>),
    Few(Packed<'a>),
    Many(hashbrown::hash_map::Iter<'a, Row, Diff>),
}

impl<'a> Iterator for GroupIter<'a> {
    type Item = (RowRef<'a>, Diff);

    fn next(&mut self) -> Option<(RowRef<'a>, Diff)> {
        match self {
            GroupIter::One(one) => one.take(),
            GroupIter::Few(packed) => packed.next(),
            GroupIter::Many(rows) => rows.next().map(|(r, d)| (r.into(), *d)),
        }
    }
}

impl Group {
    /// Applies one change; returns how the group's heap bytes changed.
    fn update(&mut self, row: &Row, diff: Diff) -> isize {
        let before = self.small_heap_bytes();
        match self {
            Group::One(r, d) if r == row => *d += diff,
            Group::One(r, d) => {
                let mut buf = Vec::new();
                push_entry(&mut buf, (&*r).into(), *d);
                push_entry(&mut buf, row.into(), diff);
                *self = Group::Few(buf.into_boxed_slice());
            }
            Group::Few(buf) => {
                // Rebuilt exactly sized on every change: groups here are
                // short, and an exact buffer keeps the state compact.
                let mut next = Vec::with_capacity(buf.len() + row.as_bytes().len() + 4);
                let (mut found, mut count) = (false, 0);
                for (r, d) in (Packed { buf, at: 0 }) {
                    let d = if r.as_bytes() == row.as_bytes() {
                        found = true;
                        d + diff
                    } else {
                        d
                    };
                    if d != 0 {
                        push_entry(&mut next, r, d);
                        count += 1;
                    }
                }
                if !found {
                    push_entry(&mut next, row.into(), diff);
                    count += 1;
                }
                *self = if count > SCAN_LIMIT {
                    Group::Many(Box::new(Packed { buf: &next, at: 0 }.map(|(r, d)| (r.to_row(), d)).collect()))
                } else {
                    Group::Few(next.into_boxed_slice())
                };
                if let Group::Many(_) = self {
                    return self.heap_bytes() as isize - before as isize;
                }
            }
            Group::Many(rows) => {
                let table = rows.allocation_size() as isize;
                let count = rows.entry_ref(row).or_insert(0);
                let added = *count == 0;
                *count += diff;
                let removed = *count == 0;
                if removed {
                    rows.remove(row);
                }
                let rows_delta = match (added, removed) {
                    (true, false) => memory::row(row) as isize,
                    (false, true) => -(memory::row(row) as isize),
                    _ => 0,
                };
                return rows.allocation_size() as isize - table + rows_delta;
            }
        }
        self.small_heap_bytes() as isize - before as isize
    }

    /// [`Group::heap_bytes`] in O(1), for a group that is not a map (a map
    /// counts only its box and table here).
    fn small_heap_bytes(&self) -> usize {
        match self {
            Group::Many(rows) => memory::boxed::<HashMap<Row, Diff, Hasher>>() + rows.allocation_size(),
            other => other.heap_bytes(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Group::One(_, d) => *d == 0,
            Group::Few(buf) => buf.is_empty(),
            Group::Many(rows) => rows.is_empty(),
        }
    }

    /// The group's rows with their multiplicities.
    pub(crate) fn iter(&self) -> GroupIter<'_> {
        match self {
            Group::One(r, d) => GroupIter::One(Some((r.into(), *d))),
            Group::Few(buf) => GroupIter::Few(Packed { buf, at: 0 }),
            Group::Many(rows) => GroupIter::Many(rows.iter()),
        }
    }

    /// Heap bytes of the group (see [`crate::memory`]).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Group::One(row, _) => memory::row(row),
            Group::Few(buf) => memory::slice(buf),
            Group::Many(rows) => {
                memory::boxed::<HashMap<Row, Diff, Hasher>>()
                    + rows.allocation_size()
                    + rows.keys().map(memory::row).sum::<usize>()
            }
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
    groups: HashMap<Row, (Group, Diff), Hasher>,
    packer: RowPacker,
    /// Heap bytes of the keys and groups, kept up to date by
    /// [`Index::update`] so that [`Index::state_bytes`] is O(1).
    heap: usize,
}

impl Index {
    pub(crate) fn new(key_columns: Vec<usize>) -> Self {
        Index { key_columns, groups: HashMap::default(), packer: RowPacker::new(), heap: 0 }
    }

    pub(crate) fn key_columns(&self) -> &[usize] {
        &self.key_columns
    }

    /// The key of `row`, and whether it has a NULL column.
    pub(crate) fn key_of(&mut self, row: &Row) -> (Row, bool) {
        key_of(&self.key_columns, row, &mut self.packer)
    }

    pub(crate) fn update(&mut self, key: Row, row: &Row, diff: Diff) {
        match self.groups.entry(key) {
            Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                let delta = slot.0.update(row, diff);
                self.heap = self.heap.wrapping_add_signed(delta);
                slot.1 += diff;
                if slot.0.is_empty() {
                    // An empty group's heap is O(1): a map holds no row.
                    self.heap -= memory::row(o.key()) + o.get().0.small_heap_bytes();
                    o.remove();
                }
            }
            Entry::Vacant(v) => {
                self.heap += memory::row(v.key()) + memory::row(row);
                v.insert((Group::One(row.clone(), diff), diff));
            }
        }
    }

    /// Live heap bytes of the arrangement: its table, and each key and
    /// group (see [`crate::memory`]), kept as a running count: O(1).
    pub(crate) fn state_bytes(&self) -> usize {
        self.groups.allocation_size() + self.packer.allocated_bytes() + self.heap
    }

    /// [`Index::state_bytes`] computed by walking every group (tests check
    /// the running count against it).
    #[cfg(test)]
    pub(crate) fn walked_state_bytes(&self) -> usize {
        self.groups.allocation_size()
            + self.packer.allocated_bytes()
            + self.groups.iter().map(|(key, (group, _))| memory::row(key) + group.heap_bytes()).sum::<usize>()
    }

    /// The rows under `key` and their total multiplicity.
    pub(crate) fn get(&self, key: &Row) -> Option<&(Group, Diff)> {
        self.groups.get(key)
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
