//! A view's rows as a persistent ordered map keyed by the view's packed key.
//!
//! The key is the view's key columns packed with [`RowPacker::push_key`], so
//! SQL-equal numbers (`3` and `3.0`) find the same entry. A multiset view
//! (keyed by all its columns) needs no special case: its key is the whole
//! row and the slot holds the multiplicity.
//!
//! Keys are ordered by their bytes. Every packed datum is self-delimiting
//! (a tag, then a fixed width or a length), so the keys whose leading
//! columns equal given values are exactly the keys that start with those
//! values' packed bytes, and they are contiguous in byte order: an `eq` on
//! a leading part of the key (`driver_id` of a view keyed by
//! `driver_id, trip_id`) is a range of the index, not a scan.

use std::sync::Arc;

use denorm_types::{Diff, Row, RowPacker};

/// A packed key: up to [`Key::INLINE`] bytes inside the handle (a feed's
/// partition and order columns, most views' keys), longer ones shared. An
/// inline key costs no allocation, and copying a map node on write (imbl
/// copies the nodes on the path it changes) copies it without touching a
/// reference count.
#[derive(Clone)]
enum Key {
    Inline { len: u8, bytes: [u8; Key::INLINE] },
    Heap(Arc<[u8]>),
}

impl Key {
    const INLINE: usize = 30;

    fn new(key: &[u8]) -> Key {
        if key.len() <= Key::INLINE {
            let mut bytes = [0; Key::INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline { len: key.len() as u8, bytes }
        } else {
            Key::Heap(Arc::from(key))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// Keys compare as their bytes, so the map is probed with borrowed bytes.
impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_bytes())
    }
}

/// The distinct rows under one key, with multiplicities. Almost every key
/// holds one distinct row, kept inline (a `Row` clone is cheap: short rows
/// are inline, long ones share their buffer); several rows are shared behind
/// an `Arc`, because imbl copies every entry of a node it changes.
#[derive(Debug, Clone)]
enum Slot {
    One([(Row, Diff); 1]),
    Many(Arc<Vec<(Row, Diff)>>),
}

impl Slot {
    fn as_slice(&self) -> &[(Row, Diff)] {
        match self {
            Slot::One(one) => one,
            Slot::Many(many) => many,
        }
    }

    /// The rows as a vector to edit; the caller stores the result back with
    /// [`Slot::from_rows`].
    fn take(&mut self) -> Vec<(Row, Diff)> {
        match std::mem::replace(self, Slot::Many(Arc::default())) {
            Slot::One([one]) => vec![one],
            Slot::Many(many) => Arc::unwrap_or_clone(many),
        }
    }

    fn from_rows(mut rows: Vec<(Row, Diff)>) -> Slot {
        if rows.len() == 1 {
            Slot::One([rows.pop().expect("one row")])
        } else {
            Slot::Many(Arc::new(rows))
        }
    }
}

/// A view's rows indexed by packed key.
///
/// The key is the view's key columns packed with [`RowPacker::push_key`]
/// (SQL-equal numbers get equal bytes). A slot holds every distinct row
/// under its key with its multiplicity: one row for a keyed view, the
/// copies of one row for a multiset view. Keeping a list rather than a
/// single row keeps the structure consistent even if an upstream bug sent
/// two rows under one key.
#[derive(Debug, Clone, Default)]
pub struct ViewRows {
    map: imbl::OrdMap<Key, Slot>,
    /// Rows counted with multiplicity.
    len: u64,
}

impl ViewRows {
    /// Rows counted with their multiplicity.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rows under a packed key (see [`pack_key`]), with multiplicities.
    pub fn get(&self, key: &Row) -> &[(Row, Diff)] {
        self.map.get(key.as_bytes()).map_or(&[], |slot| slot.as_slice())
    }

    /// Rows whose key starts with the packed `prefix` (the leading key
    /// columns, see [`pack_key`]), with multiplicities: a range of the
    /// index, O(log n + matches).
    pub fn prefixed<'a>(&'a self, prefix: &Row) -> impl Iterator<Item = (&'a Row, Diff)> + 'a {
        let start = prefix.as_bytes();
        let prefix: Box<[u8]> = start.into();
        self.map
            .range::<_, [u8]>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .take_while(move |(key, _)| key.as_bytes().starts_with(&prefix))
            .flat_map(|(_, slot)| slot.as_slice().iter().map(|(r, d)| (r, *d)))
    }

    /// The entries whose packed key starts with `prefix`, in key byte
    /// order: each key with the rows under it (a feed's ordered index reads
    /// them with their keys to merge partitions, see [`crate::feed`]).
    pub fn entries_prefixed<'a>(&'a self, prefix: &[u8]) -> impl Iterator<Item = (&'a [u8], &'a [(Row, Diff)])> + 'a {
        let owned: Box<[u8]> = prefix.into();
        self.map
            .range::<_, [u8]>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(move |(key, _)| key.as_bytes().starts_with(&owned))
            .map(|(key, slot)| (key.as_bytes(), slot.as_slice()))
    }

    /// Every row with its multiplicity, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Row, Diff)> {
        self.map.values().flat_map(|slot| slot.as_slice().iter().map(|(r, d)| (r, *d)))
    }

    /// Applies changes, retractions first: a row moving under one key
    /// within a batch (delete then insert) is then no conflict.
    pub(crate) fn apply(&mut self, key_columns: &[usize], changes: &[(Row, Diff)], packer: &mut RowPacker) {
        let _ = self.apply_checked(key_columns, false, changes, packer);
    }

    /// [`ViewRows::apply`] that, for a keyed view (`unique`), reports the
    /// first key left holding two distinct rows or a row twice: the view's
    /// declared key is not unique in its query result. The changes are
    /// applied either way.
    pub(crate) fn apply_checked(
        &mut self,
        key_columns: &[usize],
        unique: bool,
        changes: &[(Row, Diff)],
        packer: &mut RowPacker,
    ) -> Result<(), Row> {
        for (row, diff) in changes.iter().filter(|(_, d)| *d < 0) {
            let key = pack_row_key(key_columns, row, packer);
            self.retract(key.as_bytes(), row, -diff);
        }
        let mut violation = None;
        for (row, diff) in changes.iter().filter(|(_, d)| *d > 0) {
            let key = pack_row_key(key_columns, row, packer);
            self.insert(key.as_bytes(), row, *diff);
            if unique && violation.is_none() {
                let slot = self.get(&key);
                if slot.len() > 1 || slot.first().is_some_and(|(_, n)| *n > 1) {
                    violation = Some(key);
                }
            }
        }
        violation.map_or(Ok(()), Err)
    }

    /// [`ViewRows::apply`] with the key bytes of each row made by `key`
    /// (a feed's ordered key, see [`crate::feed`]).
    pub(crate) fn apply_keyed(&mut self, changes: &[(Row, Diff)], mut key: impl FnMut(&Row) -> Vec<u8>) {
        for (row, diff) in changes.iter().filter(|(_, d)| *d < 0) {
            self.retract(&key(row), row, -diff);
        }
        for (row, diff) in changes.iter().filter(|(_, d)| *d > 0) {
            self.insert(&key(row), row, *diff);
        }
    }

    /// [`ViewRows::apply_keyed`] storing each row as `strip` makes it, one
    /// buffer per distinct stripped row through `shared` (a feed's rows
    /// with the partition column set aside: a post fanned out to a thousand
    /// readers is stored once, see [`crate::feed`]).
    pub(crate) fn apply_shared(
        &mut self,
        changes: &[(Row, Diff)],
        mut key: impl FnMut(&Row) -> Vec<u8>,
        mut strip: impl FnMut(&Row) -> Row,
        shared: &mut SharedRows,
    ) {
        for (row, diff) in changes.iter().filter(|(_, d)| *d < 0) {
            let stripped = strip(row);
            if self.retract(&key(row), &stripped, -diff) {
                shared.release(&stripped);
            }
        }
        for (row, diff) in changes.iter().filter(|(_, d)| *d > 0) {
            let (key, stripped) = (key(row), strip(row));
            let held = self.map.get(&key[..]).is_some_and(|slot| slot.as_slice().iter().any(|(r, _)| *r == stripped));
            let stored = if held { stripped } else { shared.intern(stripped) };
            self.insert(&key, &stored, *diff);
        }
    }

    /// Removes `count` copies of `row`; true when none is left.
    fn retract(&mut self, key: &[u8], row: &Row, count: Diff) -> bool {
        let Some(slot) = self.map.get_mut(key) else {
            tracing::warn!(?row, "retraction of a row the view does not hold (upstream bug); ignored");
            return false;
        };
        let Some(at) = slot.as_slice().iter().position(|(r, _)| r == row) else {
            tracing::warn!(?row, "retraction of a row the view does not hold (upstream bug); ignored");
            return false;
        };
        let mut rows = slot.take();
        let removed = count.min(rows[at].1);
        rows[at].1 -= removed;
        self.len -= removed as u64;
        let gone = rows[at].1 == 0;
        if gone {
            rows.remove(at);
        }
        if rows.is_empty() {
            self.map.remove(key);
        } else {
            *slot = Slot::from_rows(rows);
        }
        gone
    }

    fn insert(&mut self, key: &[u8], row: &Row, count: Diff) {
        self.len += count as u64;
        if let Some(slot) = self.map.get_mut(key) {
            let mut rows = slot.take();
            match rows.iter_mut().find(|(r, _)| r == row) {
                Some(entry) => entry.1 += count,
                None => {
                    // Rows under one key stay in byte order: a feed's rows
                    // tied on its order come out in that order.
                    let at = rows.partition_point(|(r, _)| r < row);
                    rows.insert(at, (row.clone(), count));
                }
            }
            *slot = Slot::from_rows(rows);
        } else {
            self.map.insert(Key::new(key), Slot::One([(row.clone(), count)]));
        }
    }
}

/// Rows stored once however many entries hold them: each distinct row with
/// the number of entries using it. The publisher's own (never published:
/// published maps hold clones, which share the buffer).
#[derive(Debug, Default)]
pub(crate) struct SharedRows {
    rows: std::collections::HashMap<Row, u32, ahash::RandomState>,
}

impl SharedRows {
    /// The shared copy of `row` (one more entry uses it).
    fn intern(&mut self, row: Row) -> Row {
        match self.rows.entry(row) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                *o.get_mut() += 1;
                o.key().clone()
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let row = v.key().clone();
                v.insert(1);
                row
            }
        }
    }

    /// One entry no longer uses `row`.
    fn release(&mut self, row: &Row) {
        if let Some(count) = self.rows.get_mut(row.as_bytes()) {
            *count -= 1;
            if *count == 0 {
                self.rows.remove(row.as_bytes());
            }
        }
    }
}

/// Packs the key of `row` for a view keyed by `key_columns`.
fn pack_row_key(key_columns: &[usize], row: &Row, packer: &mut RowPacker) -> Row {
    let mut datums = row.iter();
    let mut at = 0;
    for &k in key_columns {
        // Key columns are usually in increasing order; fall back to random
        // access otherwise.
        let datum = if k >= at {
            let d = datums.nth(k - at).expect("key column out of range (planner bug)");
            at = k + 1;
            d
        } else {
            row.get(k)
        };
        packer.push_key(&datum);
    }
    packer.finish()
}

/// Packs key values (in key column order) the way stored keys are packed.
pub fn pack_key<'a>(values: impl IntoIterator<Item = &'a denorm_types::Value>) -> Row {
    let mut packer = RowPacker::new();
    for v in values {
        packer.push_key(v);
    }
    packer.finish()
}
