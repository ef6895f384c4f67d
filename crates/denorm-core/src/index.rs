//! An arrangement: a collection indexed by key columns, the state a join
//! probes.
//!
//! Rows are kept whole with their multiplicity, grouped by the SQL-normalized
//! key ([`RowPacker::push_key`]). A group starts as a short vector (most keys
//! of a primary-key index hold one row) and becomes a hash map once it grows,
//! so updating a celebrity's group of a million rows stays O(1).

use hashbrown::hash_map::Entry;
use hashbrown::HashMap;

use denorm_types::{Diff, Row, RowPacker};

use crate::Hasher;

/// Groups larger than this are hashed instead of scanned.
const SCAN_LIMIT: usize = 16;

/// The rows sharing one key. Most keys of a primary-key index hold one row,
/// kept inline without a separate allocation.
#[derive(Debug, Clone)]
pub(crate) enum Group {
    One(Row, Diff),
    Few(Vec<(Row, Diff)>),
    Many(Box<HashMap<Row, Diff, Hasher>>),
}

impl Group {
    fn update(&mut self, row: &Row, diff: Diff) {
        match self {
            Group::One(r, d) if r == row => *d += diff,
            Group::One(r, d) => {
                let first = (std::mem::take(r), *d);
                *self = Group::Few(vec![first, (row.clone(), diff)]);
            }
            Group::Few(rows) => {
                if let Some(i) = rows.iter().position(|(r, _)| r == row) {
                    rows[i].1 += diff;
                    if rows[i].1 == 0 {
                        rows.swap_remove(i);
                    }
                } else {
                    rows.push((row.clone(), diff));
                    if rows.len() > SCAN_LIMIT {
                        *self = Group::Many(Box::new(rows.drain(..).collect()));
                    }
                }
            }
            Group::Many(rows) => {
                let count = rows.entry_ref(row).or_insert(0);
                *count += diff;
                if *count == 0 {
                    rows.remove(row);
                }
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Group::One(_, d) => *d == 0,
            Group::Few(rows) => rows.is_empty(),
            Group::Many(rows) => rows.is_empty(),
        }
    }

    /// The group's rows with their multiplicities.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = (&Row, Diff)> + '_> {
        match self {
            Group::One(r, d) => Box::new(std::iter::once((r, *d))),
            Group::Few(rows) => Box::new(rows.iter().map(|(r, d)| (r, *d))),
            Group::Many(rows) => Box::new(rows.iter().map(|(r, d)| (r, *d))),
        }
    }

    /// The multiplicity of one row.
    pub(crate) fn count(&self, row: &Row) -> Diff {
        match self {
            Group::One(r, d) => if r == row { *d } else { 0 },
            Group::Few(rows) => rows.iter().find(|(r, _)| r == row).map_or(0, |(_, d)| *d),
            Group::Many(rows) => rows.get(row).copied().unwrap_or(0),
        }
    }
}

/// A collection indexed by some of its columns.
#[derive(Debug)]
pub(crate) struct Index {
    key_columns: Vec<usize>,
    groups: HashMap<Row, (Group, Diff), Hasher>,
    packer: RowPacker,
}

impl Index {
    pub(crate) fn new(key_columns: Vec<usize>) -> Self {
        Index { key_columns, groups: HashMap::default(), packer: RowPacker::new() }
    }

    /// The key of `row`, and whether it has a NULL column.
    pub(crate) fn key_of(&mut self, row: &Row) -> (Row, bool) {
        key_of(&self.key_columns, row, &mut self.packer)
    }

    pub(crate) fn update(&mut self, key: Row, row: &Row, diff: Diff) {
        match self.groups.entry(key) {
            Entry::Occupied(mut o) => {
                let slot = o.get_mut();
                slot.0.update(row, diff);
                slot.1 += diff;
                if slot.0.is_empty() {
                    o.remove();
                }
            }
            Entry::Vacant(v) => {
                v.insert((Group::One(row.clone(), diff), diff));
            }
        }
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
        let d = row.get(c);
        has_null |= d.is_null();
        packer.push_key(&d);
    }
    (packer.finish(), has_null)
}

