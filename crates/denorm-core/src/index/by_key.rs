//! A batch's changes grouped by key in one flat array: what an arrangement
//! update and a join's delta need, without a list allocated per key.

use hashbrown::HashTable;

use denorm_types::{Diff, Row, RowPacker, RowRef};

use super::key_of;
use crate::Hasher;

/// Changes grouped by the SQL-normalized key of some columns. Each group's
/// rows keep their order in the batch; groups iterate in the order their
/// keys first appear.
#[derive(Debug)]
pub(crate) struct ByKey<'a> {
    /// Each key's group number, hashed by the key's bytes.
    slots: HashTable<u32>,
    hasher: Hasher,
    /// Per group: where its rows start and end in `rows`, and whether its
    /// key has a NULL column (such a key matches nothing).
    groups: Vec<(u32, u32, bool)>,
    /// Per group, its key.
    keys: Vec<Row>,
    rows: Vec<(RowRef<'a>, Diff)>,
}

impl<'a> ByKey<'a> {
    pub(crate) fn new(key_columns: &[usize], changes: &'a [(Row, Diff)], packer: &mut RowPacker) -> Self {
        let hasher = Hasher::default();
        // Sized for a key per change (a snapshot's common case): no rehash.
        let mut slots: HashTable<u32> = HashTable::with_capacity(changes.len());
        let mut groups: Vec<(u32, u32, bool)> = Vec::with_capacity(changes.len());
        let mut keys: Vec<Row> = Vec::with_capacity(changes.len());
        let mut group_of = Vec::with_capacity(changes.len());
        for (row, _) in changes {
            let (key, has_null) = key_of(key_columns, row, packer);
            let hash = hasher.hash_one(key.as_bytes());
            let id = match slots.find(hash, |&id| keys[id as usize] == key) {
                Some(&id) => id,
                None => {
                    let id = groups.len() as u32;
                    groups.push((0, 0, has_null));
                    keys.push(key);
                    slots.insert_unique(hash, id, |&id| hasher.hash_one(keys[id as usize].as_bytes()));
                    id
                }
            };
            groups[id as usize].1 += 1;
            group_of.push(id);
        }
        // Counts to starts; `end` then advances as rows are placed.
        let mut start = 0;
        for group in &mut groups {
            let count = group.1;
            *group = (start, start, group.2);
            start += count;
        }
        let mut order = vec![0u32; changes.len()];
        for (i, &id) in group_of.iter().enumerate() {
            let group = &mut groups[id as usize];
            order[group.1 as usize] = i as u32;
            group.1 += 1;
        }
        let rows = order.into_iter().map(|i| ((&changes[i as usize].0).into(), changes[i as usize].1)).collect();
        ByKey { slots, hasher, groups, keys, rows }
    }

    /// The rows under `key`.
    pub(crate) fn get(&self, key: &Row) -> Option<&[(RowRef<'a>, Diff)]> {
        let &id = self.slot(key)?;
        let (start, end, _) = self.groups[id as usize];
        Some(&self.rows[start as usize..end as usize])
    }

    pub(crate) fn contains_key(&self, key: &Row) -> bool {
        self.slot(key).is_some()
    }

    fn slot(&self, key: &Row) -> Option<&u32> {
        let hash = self.hasher.hash_one(key.as_bytes());
        self.slots.find(hash, |&id| self.keys[id as usize] == *key)
    }

    /// Each key, its rows, and whether the key has a NULL column.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Row, &[(RowRef<'a>, Diff)], bool)> {
        self.keys
            .iter()
            .zip(&self.groups)
            .map(|(key, &(start, end, has_null))| (key, &self.rows[start as usize..end as usize], has_null))
    }

    /// Calls `f` with each key (owned) and its rows, in order.
    pub(crate) fn for_each(self, mut f: impl FnMut(Row, &[(RowRef<'a>, Diff)])) {
        for (key, (start, end, _)) in self.keys.into_iter().zip(self.groups) {
            f(key, &self.rows[start as usize..end as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;
    use proptest::prelude::*;
    use std::collections::HashMap as StdMap;

    proptest! {
        /// Grouping equals a plain map of keys to the batch's rows in order.
        #[test]
        fn equals_a_map_of_lists(rows in proptest::collection::vec((proptest::option::of(0i64..6), 0i64..50, -2i64..3), 0..200)) {
            let changes: Vec<(Row, Diff)> = rows
                .iter()
                .map(|&(k, v, d)| (Row::pack([k.map_or(Datum::Null, Datum::Int), Datum::Int(v)]), d))
                .collect();
            let mut packer = RowPacker::new();
            let by = ByKey::new(&[0], &changes, &mut packer);
            let mut model: StdMap<Vec<u8>, Vec<(Vec<u8>, Diff)>> = StdMap::new();
            let mut firsts = Vec::new();
            for (row, d) in &changes {
                let (key, _) = key_of(&[0], row, &mut packer);
                let list = model.entry(key.as_bytes().to_vec()).or_default();
                if list.is_empty() {
                    firsts.push(key.as_bytes().to_vec());
                }
                list.push((row.as_bytes().to_vec(), *d));
            }
            let order: Vec<Vec<u8>> = by.iter().map(|(k, _, _)| k.as_bytes().to_vec()).collect();
            prop_assert_eq!(order, firsts);
            for (key, rows, has_null) in by.iter() {
                let got: Vec<(Vec<u8>, Diff)> = rows.iter().map(|(r, d)| (r.as_bytes().to_vec(), *d)).collect();
                prop_assert_eq!(Some(&got), model.get(key.as_bytes()));
                prop_assert_eq!(by.get(key).map(<[_]>::len), Some(got.len()));
                prop_assert_eq!(has_null, key_of(&[0], &Row::pack([Datum::Null, Datum::Int(0)]), &mut packer).0 == *key);
            }
        }
    }
}
