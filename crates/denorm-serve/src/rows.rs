//! A view's rows as sorted runs keyed by the view's packed key.
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
//!
//! ```text
//!  runs, oldest (largest) first: each immutable, sorted by key, shared (Arc)
//!  [ k1 k2 k3 … k900000 ]   [ k2 k7 … k870000 ]   [ k3✝ k9 ]
//!                             a newer run's entry for a key supersedes the
//!                             older ones (✝ a tombstone: the key removed)
//! ```
//!
//! Like an LSM tree (or differential dataflow's spine of batches): an apply
//! sorts its changes, reads the current rows of each key it touches (one
//! galloping pass over every run, keys in increasing order) and appends one
//! run holding those keys' new contents. Above the bottom (oldest, largest)
//! run, the newest two runs are merged while the older is no larger (a
//! binary counter: O(log n) runs, an entry copied O(log n) times there);
//! once the runs above the bottom hold more than 1/[`BOTTOM_RATIO`] of its
//! entries, all are merged into it, so the entries superseded by newer runs
//! (and tombstones) stay a small fraction of the live ones.
//!
//! A keyed view's update or delete (one retraction, at most one insertion
//! under a key) is written without reading the key's rows: the view holds
//! at most one row per key, and the retraction names it (the dataflow's
//! retractions are trusted there; see [`ViewRows::apply_checked`]).
//!
//! Runs are never edited: cloning a [`ViewRows`] clones a short list of
//! `Arc`s, so publishing the working copy costs O(runs), and the published
//! and the working copy share every run (one copy of the rows, no
//! copy-on-write of tree nodes). An entry is a key with its whole slot
//! (every row under the key), so a lookup is one binary search per run,
//! newest first, and a range is a merge of the runs' ranges where the
//! newest entry of a key wins.

use std::sync::Arc;

use denorm_types::{Diff, Row, RowPacker};

mod feed_rows;

use feed_rows::FeedRows;
pub(crate) use feed_rows::{counted, PartitionRows};

/// A packed key: up to [`Key::INLINE`] bytes inside the handle (a feed's
/// partition and order columns, most views' keys), longer ones shared. An
/// inline key costs no allocation, and copying an entry into a merged run
/// copies it without touching a reference count.
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
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Byte order. Two inline keys compare as their zero-padded buffers
    /// read as big-endian words, then by length (a key that is a prefix of
    /// another sorts first; padding with zeros, the smallest byte, keeps
    /// that order): no call to `memcmp` on the hot paths.
    #[inline(always)]
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        match (self, other) {
            (Key::Inline { len: a, bytes: x }, Key::Inline { len: b, bytes: y }) => {
                // Most keys differ in their first eight bytes (a packed
                // integer key is at most nine: a tag, then 1-8 bytes).
                let word = |bytes: &[u8; Key::INLINE]| u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
                word(x).cmp(&word(y)).then_with(|| Key::words(x).cmp(&Key::words(y)).then(a.cmp(b)))
            }
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

impl Key {
    /// The key's first eight bytes as a big-endian word, zero-padded: keys
    /// whose words differ are in the words' order (a shorter key's padding
    /// is below any byte only where it is a prefix of the other).
    #[inline]
    fn first_word(&self) -> u64 {
        let bytes = self.as_bytes();
        let mut word = [0; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        u64::from_be_bytes(word)
    }

    /// An inline key's buffer as big-endian words (the last one padded).
    #[inline]
    fn words(bytes: &[u8; Key::INLINE]) -> [u64; 4] {
        let word = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let mut last = [0; 8];
        last[..Key::INLINE - 24].copy_from_slice(&bytes[24..]);
        [word(0), word(8), word(16), u64::from_be_bytes(last)]
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

/// The distinct rows under one key with their multiplicities, in row byte
/// order (a feed's rows tied on its order come out in that order). Almost
/// every key holds one distinct row, kept inline (a `Row` clone is cheap:
/// short rows are inline, long ones share their buffer). `Gone` is a
/// tombstone: the key was removed, and the older runs' entries for it are
/// hidden until a merge drops them.
#[derive(Debug, Clone)]
enum Slot {
    Gone,
    One([(Row, Diff); 1]),
    Many(Arc<[(Row, Diff)]>),
}

impl Slot {
    fn as_slice(&self) -> &[(Row, Diff)] {
        match self {
            Slot::Gone => &[],
            Slot::One(one) => one,
            Slot::Many(many) => many,
        }
    }

    /// The slot of `rows`, which it empties.
    fn from_rows(rows: &mut Vec<(Row, Diff)>) -> Slot {
        let slot = match rows.len() {
            0 => Slot::Gone,
            1 => Slot::One([rows.pop().expect("one row")]),
            _ => Slot::Many(rows.as_slice().into()),
        };
        rows.clear();
        slot
    }
}

/// One key and everything under it, as of the run holding it.
#[derive(Debug, Clone)]
struct Entry {
    key: Key,
    slot: Slot,
}

/// An immutable run of entries sorted by key, each key at most once.
type Run = Arc<Vec<Entry>>;

/// The runs above the bottom one are merged into it once they hold more
/// than 1/this of its entries. Larger keeps fewer superseded entries and
/// copies the bottom run more often.
const BOTTOM_RATIO: usize = 8;

/// A view's rows indexed by packed key.
///
/// The key is the view's key columns packed with [`RowPacker::push_key`]
/// (SQL-equal numbers get equal bytes). A slot holds every distinct row
/// under its key with its multiplicity: one row for a keyed view, the
/// copies of one row for a multiset view. Keeping a list rather than a
/// single row keeps the structure consistent even if an upstream bug sent
/// two rows under one key. See the module documentation for the runs.
#[derive(Debug, Clone, Default)]
pub struct ViewRows {
    /// Oldest (and largest) first.
    runs: Vec<Run>,
    /// Rows counted with multiplicity.
    len: u64,
    /// A feed's fanned-out rows (no runs then): per partition one sorted
    /// array, see [`FeedRows`]. Set by [`ViewRows::apply_feed`].
    feed: Option<FeedRows>,
}

/// One change as applied: the packed key, the row as stored, the diff.
type Change = (Key, Row, Diff);

impl ViewRows {
    /// Rows counted with their multiplicity.
    pub fn len(&self) -> u64 {
        self.feed.as_ref().map_or(self.len, FeedRows::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows under a packed key (see [`pack_key`]), with multiplicities: one
    /// binary search per run, newest first. A feed's rows are read by
    /// partition ([`ViewRows::prefixed`], [`crate::feed`]), not by key:
    /// none here.
    pub fn get(&self, key: &Row) -> &[(Row, Diff)] {
        self.slot(key.as_bytes())
    }

    fn slot(&self, key: &[u8]) -> &[(Row, Diff)] {
        // Probed as a `Key`: an inline key compares as four words, not by
        // a `memcmp` call at each step of the search.
        let probe = Key::new(key);
        for run in self.runs.iter().rev() {
            if let Ok(at) = run.binary_search_by(|e| e.key.cmp(&probe)) {
                return run[at].slot.as_slice();
            }
        }
        &[]
    }

    /// Rows whose key starts with the packed `prefix` (the leading key
    /// columns, see [`pack_key`]), with multiplicities: a range of each
    /// run, merged; O(runs × (log n + matches)).
    ///
    /// A feed's rows: `prefix` is a partition value (a feed view's key), or
    /// empty for every partition.
    pub fn prefixed<'a>(&'a self, prefix: &Row) -> Box<dyn Iterator<Item = (&'a Row, Diff)> + 'a> {
        if let Some(feed) = &self.feed {
            if prefix.as_bytes().is_empty() {
                return Box::new(feed.partitions().flat_map(|(_, rows)| feed_rows::counted(rows.iter())));
            }
            return Box::new(feed_rows::counted(feed.partition(prefix.as_bytes()).iter()));
        }
        Box::new(self.entries_prefixed(prefix.as_bytes()).flat_map(|(_, rows)| rows.iter().map(|(r, d)| (r, *d))))
    }

    /// A feed's fanned-out rows (see [`ViewRows::apply_feed`]): `None` for
    /// other views and a feed that never had a row.
    pub(crate) fn feed(&self) -> Option<&FeedRows> {
        self.feed.as_ref()
    }

    /// The entries whose packed key starts with `prefix`, in key byte
    /// order: each key with the rows under it (a feed's ordered index reads
    /// them with their keys to merge partitions, see [`crate::feed`]). A
    /// feed's fanned-out rows keep no keys: read through [`ViewRows::feed`].
    pub fn entries_prefixed<'a>(&'a self, prefix: &[u8]) -> impl Iterator<Item = (&'a [u8], &'a [(Row, Diff)])> + 'a {
        Merge::new(&self.runs, prefix).map(|e| (e.key.as_bytes(), e.slot.as_slice()))
    }

    /// The rows under up to `n` distinct keys picked at random (`random`
    /// draws the numbers): entries of the runs picked uniformly, each read
    /// back as the key's current rows (a superseded or removed key is
    /// skipped). O(n × runs × log n), whatever the view's size: the drift
    /// sampler's keys. Keys in the upper runs (at most 1/8 of the bottom
    /// one's entries) are picked as often as their entries are.
    pub fn sample(&self, n: usize, mut random: impl FnMut() -> u64) -> Vec<&[(Row, Diff)]> {
        let total: usize = self.runs.iter().map(|r| r.len()).sum();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        if total == 0 {
            return out;
        }
        for _ in 0..n.saturating_mul(2) {
            if out.len() == n {
                break;
            }
            let mut at = (random() % total as u64) as usize;
            let Some(run) = self.runs.iter().find(|r| {
                let inside = at < r.len();
                if !inside {
                    at -= r.len();
                }
                inside
            }) else {
                break;
            };
            let key = run[at].key.as_bytes();
            let rows = self.slot(key);
            if !rows.is_empty() && seen.insert(key) {
                out.push(rows);
            }
        }
        out
    }

    /// Loads rows read back in [`ViewRows::iter`]'s order (a checkpoint's)
    /// into empty rows as one run, moving them in: no sort, no copy, one
    /// allocation for the run. Each key must be greater than the one
    /// before and hold one row, with a positive count (1 for a keyed
    /// view, `unique`). Otherwise, or when not empty, nothing changes and
    /// the rows are given back, for [`ViewRows::apply_checked`].
    pub(crate) fn load_sorted(
        &mut self,
        key_columns: &[usize],
        unique: bool,
        rows: Vec<(Row, Diff)>,
        packer: &mut RowPacker,
    ) -> Result<(), Vec<(Row, Diff)>> {
        if !self.runs.is_empty() || self.len != 0 {
            return Err(rows);
        }
        let leading = key_columns.iter().enumerate().all(|(i, &k)| i == k);
        let mut run: Vec<Entry> = Vec::with_capacity(rows.len());
        let mut len = 0u64;
        let mut rows = rows.into_iter();
        for (row, diff) in rows.by_ref() {
            let key = match leading.then(|| leading_key(&row, key_columns.len())).flatten() {
                Some(key) => Key::new(key),
                None => Key::new(pack_row_key(key_columns, &row, packer).as_bytes()),
            };
            let ascending = run.last().is_none_or(|last| last.key < key);
            if !ascending || diff < 1 || (unique && diff != 1) {
                // Given back as they came: the run's rows, this one, the rest.
                let mut back: Vec<(Row, Diff)> = run.into_iter().flat_map(|e| e.slot.as_slice().to_vec()).collect();
                back.push((row, diff));
                back.extend(rows);
                return Err(back);
            }
            len += diff as u64;
            run.push(Entry { key, slot: Slot::One([(row, diff)]) });
        }
        if !run.is_empty() {
            self.runs.push(Arc::new(run));
        }
        self.len = len;
        Ok(())
    }

    /// Every row with its multiplicity (in key order).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Row, Diff)> + '_> {
        if let Some(feed) = &self.feed {
            return Box::new(feed.partitions().flat_map(|(_, rows)| feed_rows::counted(rows.iter())));
        }
        Box::new(Merge::new(&self.runs, &[]).flat_map(|e| e.slot.as_slice().iter().map(|(r, d)| (r, *d))))
    }

    /// Applies changes: each row's net diff over `changes` (changes that
    /// cancel do nothing), under each key retractions first, so a row
    /// moving under one key within a batch (delete then insert) is no
    /// conflict.
    pub(crate) fn apply(&mut self, key_columns: &[usize], changes: &[(Row, Diff)], packer: &mut RowPacker) {
        let _ = self.apply_checked(key_columns, false, changes, packer);
    }

    /// [`ViewRows::apply`] that, for a keyed view (`unique`), reports the
    /// first key (in key order) left holding two distinct rows or a row
    /// twice: the view's declared key is not unique in its query result.
    /// The changes are applied either way; after a violation the caller
    /// must not apply more changes with `unique` to these rows (the
    /// publisher fails the view and goes back to its last published rows):
    /// with `unique`, a key's update or delete is written as the retraction
    /// says, without reading what the key holds.
    pub(crate) fn apply_checked(
        &mut self,
        key_columns: &[usize],
        unique: bool,
        changes: &[(Row, Diff)],
        packer: &mut RowPacker,
    ) -> Result<(), Row> {
        let leading = key_columns.iter().enumerate().all(|(i, &k)| i == k);
        let changes = changes
            .iter()
            .map(|(row, diff)| {
                let key = match leading.then(|| leading_key(row, key_columns.len())).flatten() {
                    Some(key) => Key::new(key),
                    None => Key::new(pack_row_key(key_columns, row, packer).as_bytes()),
                };
                (key, row.clone(), *diff)
            })
            .collect();
        self.apply_changes(changes, unique, None)
            .map_err(|key| denorm_types::RowRef::from_prefix(key.as_bytes(), key.as_bytes().len()).to_row())
    }

    /// [`ViewRows::apply`] with the key bytes of each row made by `key`
    /// (a feed's ordered key, see [`crate::feed`]).
    pub(crate) fn apply_keyed(&mut self, changes: &[(Row, Diff)], mut key: impl FnMut(&Row) -> Vec<u8>) {
        let changes = changes.iter().map(|(row, diff)| (Key::new(&key(row)), row.clone(), *diff)).collect();
        let _ = self.apply_changes(changes, false, None);
    }

    /// Applies a batch of a feed's fanned-out rows (whole rows, as the
    /// dataflow emits them) to its per-partition layout ([`FeedRows`]):
    /// stored with the partition column set aside, one buffer per distinct
    /// stored row through `shared` (a post fanned out to a thousand readers
    /// is stored once, see [`crate::feed`]). The rows must hold no runs
    /// (a feed's part 0 is only ever applied here).
    pub(crate) fn apply_feed(
        &mut self,
        feed: &crate::feed::FeedInfo,
        changes: &[(Row, Diff)],
        shared: &mut SharedRows,
    ) {
        debug_assert!(self.runs.is_empty(), "a feed's rows hold no runs");
        self.feed.get_or_insert_with(FeedRows::default).apply(feed, changes, shared);
    }

    /// Applies `changes` as one new run (then merges runs): each touched
    /// key's new slot is its current one with the key's changes applied.
    /// With `unique`, returns the first key left with more than one row.
    ///
    /// With `unique`, every key holds at most one row once (the publisher
    /// fails a view at its first violation and goes back to its last
    /// published rows), so a key whose changes are one retraction and at
    /// most one insertion (an update, a delete) is written without reading
    /// its current rows: the retraction names them. Only keys gaining a row
    /// are looked up (is the key free?).
    fn apply_changes(
        &mut self,
        mut changes: Vec<Change>,
        unique: bool,
        mut shared: Option<&mut SharedRows>,
    ) -> Result<(), Key> {
        sort_changes(&mut changes);
        consolidate(&mut changes);
        let mut cursors = vec![0usize; self.runs.len()];
        let mut run = Vec::new();
        let mut violation = None;
        // Scratch buffers, reused from key to key.
        let (mut of_key, mut rows) = (Vec::new(), Vec::new());
        let mut changes = changes.into_iter().peekable();
        while let Some(first) = changes.next() {
            let key = first.0;
            of_key.push((first.1, first.2));
            while let Some(next) = changes.next_if(|c| c.0 == key) {
                of_key.push((next.1, next.2));
            }
            if unique {
                if let Some(new) = replacement(&mut of_key) {
                    self.len = self.len + u64::from(new.is_some()) - 1;
                    let slot = new.map_or(Slot::Gone, |row| Slot::One([(row, 1)]));
                    run.push(Entry { key, slot });
                    continue;
                }
            }
            let (old, held) = self.current(&key, &mut cursors);
            rows.extend_from_slice(old);
            let before = count(&rows);
            edit(&mut rows, &mut of_key, shared.as_deref_mut());
            let after = count(&rows);
            self.len = self.len + after - before;
            if unique && violation.is_none() && (rows.len() > 1 || rows.first().is_some_and(|(_, n)| *n > 1)) {
                violation = Some(key.clone());
            }
            if rows.is_empty() && !held {
                continue;
            }
            run.push(Entry { key, slot: Slot::from_rows(&mut rows) });
        }
        if !run.is_empty() {
            self.push(run);
        }
        violation.map_or(Ok(()), Err)
    }

    /// The current rows under `key` and whether some run holds an entry for
    /// it (a live one: a removal then needs a tombstone). `cursors` (one
    /// per run) move forward only: keys are looked up in increasing order.
    fn current(&self, key: &Key, cursors: &mut [usize]) -> (&[(Row, Diff)], bool) {
        for (run, at) in self.runs.iter().zip(cursors.iter_mut()).rev() {
            *at = gallop(run, *at, key);
            if let Some(entry) = run.get(*at).filter(|e| e.key == *key) {
                let rows = entry.slot.as_slice();
                return (rows, !rows.is_empty());
            }
        }
        (&[], false)
    }

    /// Appends a run, then merges the newest runs while the one before the
    /// newest is no larger (a binary counter: an entry above the bottom
    /// run is copied O(log n) times); once the runs above the bottom one
    /// hold more than 1/[`BOTTOM_RATIO`] of its entries, all are merged
    /// into it (superseded entries and tombstones stay a small fraction).
    fn push(&mut self, mut run: Vec<Entry>) {
        run.shrink_to_fit();
        self.runs.push(Arc::new(run));
        while let [_, .., older, newer] = &self.runs[..] {
            if older.len() > newer.len() {
                break;
            }
            self.merge_newest();
        }
        if let [bottom, above @ ..] = &self.runs[..] {
            if above.iter().map(|r| r.len()).sum::<usize>() * BOTTOM_RATIO > bottom.len() {
                while self.runs.len() > 1 {
                    self.merge_newest();
                }
            }
        }
    }

    /// Merges the newest two runs.
    fn merge_newest(&mut self) {
        let [.., older, newer] = &self.runs[..] else { return };
        let bottom = self.runs.len() == 2;
        let mut merged = merge(older, newer, bottom);
        self.runs.truncate(self.runs.len() - 2);
        if !merged.is_empty() {
            merged.shrink_to_fit();
            self.runs.push(Arc::new(merged));
        }
    }

    /// How many runs hold the rows, and how many entries they hold
    /// together (superseded ones and tombstones included): for tests and
    /// figures.
    pub fn runs(&self) -> (usize, usize) {
        (self.runs.len(), self.runs.iter().map(|r| r.len()).sum())
    }
}

/// Rows counted with multiplicity.
fn count(rows: &[(Row, Diff)]) -> u64 {
    rows.iter().map(|(_, d)| *d as u64).sum()
}

/// For a key's changes (consolidated) that are one retraction of one copy
/// and at most one insertion of one copy: the row inserted, if any (the
/// changes are taken). `None` for any other changes (left as they are).
fn replacement(changes: &mut Vec<(Row, Diff)>) -> Option<Option<Row>> {
    match &changes[..] {
        [(_, -1)] => {
            changes.clear();
            Some(None)
        }
        [(_, -1), (_, 1)] | [(_, 1), (_, -1)] => {
            let inserted = changes.drain(..).find(|(_, d)| *d == 1).map(|(row, _)| row);
            Some(inserted)
        }
        _ => None,
    }
}

/// Sorts changes by key, then row. A change is 64 bytes, so they are
/// sorted by each key's first eight bytes as one word (with the change's
/// index: 16 bytes each, see [`Key::first_word`]) and moved once; only
/// changes whose words tie (one key's several changes, keys sharing their
/// first eight bytes) are then compared whole.
fn sort_changes(changes: &mut [Change]) {
    changes.sort_by_cached_key(|(key, _, _)| key.first_word());
    let mut start = 0;
    while start < changes.len() {
        let word = changes[start].0.first_word();
        let end = start + changes[start..].iter().take_while(|c| c.0.first_word() == word).count();
        // One key's two changes need no order: [`consolidate`] finds equal
        // rows adjacent either way, and [`replacement`] takes both orders.
        let one_pair = end - start == 2 && changes[start].0 == changes[start + 1].0;
        if end - start > 1 && !one_pair {
            changes[start..end].sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        }
        start = end;
    }
}

/// Sums the diffs of equal (key, row) changes (sorted), dropping zeros.
fn consolidate(changes: &mut Vec<Change>) {
    let mut out = 0;
    for i in 0..changes.len() {
        if out > 0 && changes[out - 1].0 == changes[i].0 && changes[out - 1].1 == changes[i].1 {
            changes[out - 1].2 += changes[i].2;
        } else {
            changes.swap(out, i);
            out += 1;
        }
    }
    changes.truncate(out);
    changes.retain(|c| c.2 != 0);
}

/// Applies one key's changes (sorted by row) to its rows (sorted by row),
/// retractions first. A retraction of a row not held is an upstream bug:
/// logged and ignored, as is the part of a retraction beyond the count
/// held. With `shared`, rows inserted are interned and rows gone released.
/// Empties `changes`.
fn edit(rows: &mut Vec<(Row, Diff)>, changes: &mut Vec<(Row, Diff)>, mut shared: Option<&mut SharedRows>) {
    for (row, diff) in changes.iter().filter(|(_, d)| *d < 0) {
        let Ok(at) = rows.binary_search_by(|(r, _)| r.cmp(row)) else {
            tracing::warn!(?row, "retraction of a row the view does not hold (upstream bug); ignored");
            continue;
        };
        rows[at].1 -= (-diff).min(rows[at].1);
        if rows[at].1 == 0 {
            rows.remove(at);
            if let Some(shared) = shared.as_deref_mut() {
                shared.release(row);
            }
        }
    }
    for (row, diff) in changes.drain(..).filter(|(_, d)| *d > 0) {
        match rows.binary_search_by(|(r, _)| r.cmp(&row)) {
            Ok(at) => rows[at].1 += diff,
            Err(at) => {
                let row = match shared.as_deref_mut() {
                    Some(shared) => shared.intern(row),
                    None => row,
                };
                rows.insert(at, (row, diff));
            }
        }
    }
}

/// The first index at or after `from` whose key is not below `key`: a
/// short linear scan (the next key is usually a few entries on), then
/// exponential and binary search, so a sorted sequence of lookups costs
/// O(log gap) each.
fn gallop(run: &[Entry], from: usize, key: &Key) -> usize {
    let below = |e: &Entry| e.key < *key;
    let mut lo = from;
    for _ in 0..8 {
        match run.get(lo) {
            Some(e) if below(e) => lo += 1,
            _ => return lo,
        }
    }
    let mut step = 1;
    while lo + step < run.len() && below(&run[lo + step]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step + 1).min(run.len());
    lo + run[lo.min(hi)..hi].partition_point(below)
}

/// Merges two runs; `newer`'s entry of a key replaces `older`'s. At the
/// bottom (no run is older) tombstones are dropped.
///
/// Between two keys of the newer run the older one usually holds a stretch
/// of entries (it is the larger): each stretch is copied whole, written
/// straight into the merged run rather than entry by entry.
fn merge(older: &[Entry], newer: &[Entry], bottom: bool) -> Vec<Entry> {
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let mut i = 0;
    for entry in newer {
        let mut end = i;
        while end < older.len() && older[end].key < entry.key {
            end += 1;
        }
        copy_entries(&older[i..end], bottom, &mut out);
        i = end + usize::from(older.get(end).is_some_and(|e| e.key == entry.key));
        if !(bottom && matches!(entry.slot, Slot::Gone)) {
            out.push(entry.clone());
        }
    }
    copy_entries(&older[i..], bottom, &mut out);
    out
}

/// Appends `entries` to `out`, without tombstones at the `bottom`.
fn copy_entries(entries: &[Entry], bottom: bool, out: &mut Vec<Entry>) {
    if bottom && entries.iter().any(|e| matches!(e.slot, Slot::Gone)) {
        out.extend(entries.iter().filter(|e| !matches!(e.slot, Slot::Gone)).cloned());
    } else {
        out.extend_from_slice(entries);
    }
}

/// The entries of several runs whose keys start with a prefix, merged in
/// key order; of a key held by several runs the newest entry is the one,
/// and tombstones are skipped.
struct Merge<'a> {
    /// Per run (oldest first), its entries not yet read from the prefix on.
    heads: Vec<&'a [Entry]>,
    prefix: Box<[u8]>,
}

impl<'a> Merge<'a> {
    fn new(runs: &'a [Run], prefix: &[u8]) -> Merge<'a> {
        let heads = runs
            .iter()
            .map(|run| {
                let run: &'a [Entry] = run;
                &run[run.partition_point(|e| e.key.as_bytes() < prefix)..]
            })
            .collect();
        Merge { heads, prefix: prefix.into() }
    }
}

impl<'a> Iterator for Merge<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        loop {
            let mut best: Option<&'a Entry> = None;
            for head in &self.heads {
                if let Some(entry) = head.first() {
                    // `<=`: on a tie the newer run (later) wins.
                    if best.is_none_or(|b| entry.key.as_bytes() <= b.key.as_bytes()) {
                        best = Some(entry);
                    }
                }
            }
            let entry = best?;
            let key = entry.key.as_bytes();
            if !key.starts_with(&self.prefix) {
                self.heads.clear();
                return None;
            }
            for head in &mut self.heads {
                if head.first().is_some_and(|e| e.key.as_bytes() == key) {
                    *head = &head[1..];
                }
            }
            if !matches!(entry.slot, Slot::Gone) {
                return Some(entry);
            }
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
        // A short row lives in its handle: nothing to share.
        if row.heap_size() == 0 {
            return row;
        }
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
        if row.heap_size() == 0 {
            return;
        }
        if let Some(count) = self.rows.get_mut(row.as_bytes()) {
            *count -= 1;
            if *count == 0 {
                self.rows.remove(row.as_bytes());
            }
        }
    }
}

/// The key of a row whose key is its first `count` columns, when their
/// encoding is already their key form (no double or numeric among them):
/// the row's leading bytes, with no packing.
fn leading_key(row: &Row, count: usize) -> Option<&[u8]> {
    let bytes = row.as_bytes();
    let len = denorm_types::RowRef::from(row).prefix_len(count);
    let key = &bytes[..len];
    (!denorm_types::RowRef::from_prefix(bytes, len).has_key_variants()).then_some(key)
}

/// Packs the key of `row` for a view keyed by `key_columns`.
pub(crate) fn pack_row_key(key_columns: &[usize], row: &Row, packer: &mut RowPacker) -> Row {
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use denorm_types::Datum;
    use proptest::prelude::*;

    use super::*;

    /// A key's bytes with the rows under it.
    type Keyed = (Vec<u8>, Vec<(Row, Diff)>);

    /// The simple structure the runs replace: every key's rows in an
    /// ordered map, edited in place.
    #[derive(Debug, Clone, Default)]
    struct Model {
        keys: BTreeMap<Vec<u8>, BTreeMap<Row, Diff>>,
    }

    impl Model {
        /// The documented semantics: per (key, row) the batch's net diff
        /// (changes that cancel do nothing);
        /// per key retractions first (clamped to what is held), then
        /// insertions; with `unique`, the first key in key order left with
        /// more than one row.
        fn apply(&mut self, key_columns: &[usize], unique: bool, changes: &[(Row, Diff)]) -> Option<Vec<u8>> {
            let mut net: BTreeMap<(Vec<u8>, Row), Diff> = BTreeMap::new();
            let mut packer = RowPacker::new();
            for (row, diff) in changes {
                let key = pack_row_key(key_columns, row, &mut packer).as_bytes().to_vec();
                *net.entry((key, row.clone())).or_default() += diff;
            }
            for ((key, row), diff) in net.iter().filter(|(_, d)| **d < 0) {
                let rows = self.keys.entry(key.clone()).or_default();
                if let Some(n) = rows.get_mut(row) {
                    *n -= (-diff).min(*n);
                    if *n == 0 {
                        rows.remove(row);
                    }
                }
            }
            for ((key, row), diff) in net.iter().filter(|(_, d)| **d > 0) {
                *self.keys.entry(key.clone()).or_default().entry(row.clone()).or_default() += diff;
            }
            self.keys.retain(|_, rows| !rows.is_empty());
            // A key whose changes cancel is not touched.
            let touched: std::collections::BTreeSet<Vec<u8>> =
                net.into_iter().filter(|(_, d)| *d != 0).map(|((k, _), _)| k).collect();
            let violation = touched
                .into_iter()
                .find(|k| self.keys.get(k).is_some_and(|rows| rows.len() > 1 || rows.values().any(|n| *n > 1)));
            violation.filter(|_| unique)
        }

        fn entries(&self, prefix: &[u8]) -> Vec<Keyed> {
            self.keys
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, rows)| (k.clone(), rows.iter().map(|(r, d)| (r.clone(), *d)).collect()))
                .collect()
        }
    }

    fn same(rows: &ViewRows, model: &Model) -> Result<(), TestCaseError> {
        let entries = |prefix: &[u8]| -> Vec<Keyed> {
            rows.entries_prefixed(prefix).map(|(k, rows)| (k.to_vec(), rows.to_vec())).collect()
        };
        prop_assert_eq!(entries(&[]), model.entries(&[]));
        let total: Diff = model.keys.values().flat_map(|r| r.values()).sum();
        prop_assert_eq!(rows.len(), total as u64);
        let all: Vec<(Row, Diff)> = rows.iter().map(|(r, d)| (r.clone(), d)).collect();
        let expected: Vec<(Row, Diff)> = model.entries(&[]).into_iter().flat_map(|(_, rows)| rows).collect();
        prop_assert_eq!(all, expected);
        for a in 0..5 {
            let prefix = pack_key(&[Datum::Int(a)]);
            prop_assert_eq!(entries(prefix.as_bytes()), model.entries(prefix.as_bytes()));
            let prefixed: Vec<(Row, Diff)> = rows.prefixed(&prefix).map(|(r, d)| (r.clone(), d)).collect();
            let expected: Vec<(Row, Diff)> =
                model.entries(prefix.as_bytes()).into_iter().flat_map(|(_, rows)| rows).collect();
            prop_assert_eq!(prefixed, expected);
            for b in 0..5 {
                let key = pack_key(&[Datum::Int(a), Datum::Int(b)]);
                let expected: Vec<(Row, Diff)> = model
                    .keys
                    .get(key.as_bytes())
                    .map(|rows| rows.iter().map(|(r, d)| (r.clone(), *d)).collect())
                    .unwrap_or_default();
                prop_assert_eq!(rows.get(&key).to_vec(), expected);
            }
        }
        Ok(())
    }

    fn change() -> impl Strategy<Value = (Row, Diff)> {
        (0..5i64, 0..5i64, 0..3i64, prop_oneof![Just(-2), Just(-1), Just(1), Just(1), Just(2)])
            .prop_map(|(a, b, c, d)| (Row::pack([Datum::Int(a), Datum::Int(b), Datum::Int(c)]), d))
    }

    /// A keyed view's batch as a correct dataflow sends it: `ops` are
    /// (key a, key b, value, insert?) read against the model's rows; a
    /// retraction names the row the key holds (skipped if it holds none),
    /// an insertion may land on a held key (a violation).
    fn keyed_batch(model: &Model, ops: &[(i64, i64, i64, bool)]) -> Vec<(Row, Diff)> {
        let mut out = Vec::new();
        let mut retracted = std::collections::BTreeSet::new();
        for &(a, b, c, insert) in ops {
            let key = pack_key(&[Datum::Int(a), Datum::Int(b)]).as_bytes().to_vec();
            if insert {
                out.push((Row::pack([Datum::Int(a), Datum::Int(b), Datum::Int(c)]), 1));
            } else if let Some((row, _)) = model.keys.get(&key).and_then(|rows| rows.iter().next()) {
                if retracted.insert(key) {
                    out.push((row.clone(), -1));
                }
            }
        }
        out
    }

    fn check(
        rows: &mut ViewRows,
        model: &mut Model,
        unique: bool,
        changes: &[(Row, Diff)],
    ) -> Result<bool, TestCaseError> {
        let mut packer = RowPacker::new();
        let got = rows.apply_checked(&[0, 1], unique, changes, &mut packer);
        let expected = model.apply(&[0, 1], unique, changes);
        let violated = expected.is_some();
        prop_assert_eq!(got.err().map(|k| k.as_bytes().to_vec()), expected);
        same(rows, model)?;
        Ok(violated)
    }

    proptest! {
        /// Batches of any changes (retractions of rows not held, several
        /// rows under a key) applied to the runs and to the simple map
        /// agree on every read (lookups, prefix ranges in key order, whole
        /// iteration, counts); a clone taken after a batch (a published
        /// copy) is unchanged by later batches.
        #[test]
        fn runs_read_like_a_map(batches in proptest::collection::vec(proptest::collection::vec(change(), 0..12), 1..40)) {
            let (mut rows, mut model) = (ViewRows::default(), Model::default());
            let mut published = Vec::new();
            for changes in &batches {
                check(&mut rows, &mut model, false, changes)?;
                published.push((rows.clone(), model.clone()));
            }
            for (rows, model) in &published {
                same(rows, model)?;
            }
        }

        /// A keyed view fed as a correct dataflow feeds it (updates and
        /// deletes written without a lookup) agrees with the simple map up
        /// to and including the first key violation, which both report.
        #[test]
        fn keyed_runs_read_like_a_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0..4i64, 0..4i64, 0..3i64, any::<bool>()), 0..10), 1..40),
        ) {
            let (mut rows, mut model) = (ViewRows::default(), Model::default());
            for ops in &batches {
                let changes = keyed_batch(&model, ops);
                if check(&mut rows, &mut model, true, &changes)? {
                    break;
                }
            }
        }
    }

    proptest! {
        /// Many keys, then small batches: the rows sit in several runs
        /// (older ones much larger), so lookups, ranges and tombstones cross
        /// runs; reads agree with the simple map all along.
        #[test]
        fn several_runs_read_like_a_map(
            batches in proptest::collection::vec(
                proptest::collection::vec((0..5i64, 0..60i64, 0..2i64, prop_oneof![Just(-1), Just(1)]), 1..6), 1..60),
        ) {
            let (mut rows, mut model) = (ViewRows::default(), Model::default());
            let load: Vec<(Row, Diff)> =
                (0..300).map(|i| (Row::pack([Datum::Int(i % 5), Datum::Int(i / 5), Datum::Int(0)]), 1)).collect();
            check(&mut rows, &mut model, false, &load)?;
            let mut most = 0;
            for batch in &batches {
                let changes: Vec<(Row, Diff)> = batch
                    .iter()
                    .map(|&(a, b, c, d)| (Row::pack([Datum::Int(a), Datum::Int(b), Datum::Int(c)]), d))
                    .collect();
                check(&mut rows, &mut model, false, &changes)?;
                most = most.max(rows.runs().0);
            }
            prop_assert!(most >= 2 || batches.len() < 2, "{most} runs at most");
        }
    }

    /// One change at a time (the worst case for runs) keeps O(log n) runs
    /// and no more entries than keys touched plus the runs' overlap.
    #[test]
    fn runs_stay_logarithmic() {
        let mut rows = ViewRows::default();
        let mut packer = RowPacker::new();
        for i in 0..5000i64 {
            let row = |v: i64| Row::pack([Datum::Int(i % 1000), Datum::Int(v)]);
            if i >= 1000 {
                rows.apply(&[0], &[(row(i - 1000), -1)], &mut packer);
            }
            rows.apply(&[0], &[(row(i), 1)], &mut packer);
            let (runs, _) = rows.runs();
            assert!(runs <= 14, "{runs} runs after {i} changes");
        }
        assert_eq!(rows.len(), 1000);
        let (_, entries) = rows.runs();
        assert!(entries <= 3000, "{entries} entries for 1000 rows");
    }

    /// Sampled keys are distinct live keys holding their current rows,
    /// however the runs superseded them; at most the keys there are.
    #[test]
    fn samples_are_live_distinct_keys() {
        let mut rows = ViewRows::default();
        let mut packer = RowPacker::new();
        let row = |k: i64, v: i64| Row::pack([Datum::Int(k), Datum::Int(v)]);
        rows.apply(&[0], &(0..100).map(|k| (row(k, 0), 1)).collect::<Vec<_>>(), &mut packer);
        rows.apply(&[0], &(0..50).map(|k| (row(k, 0), -1)).collect::<Vec<_>>(), &mut packer);
        rows.apply(&[0], &(50..60).flat_map(|k| [(row(k, 0), -1), (row(k, 1), 1)]).collect::<Vec<_>>(), &mut packer);
        let mut state = 7u64;
        let mut random = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 11
        };
        let sampled = rows.sample(20, &mut random);
        assert!(!sampled.is_empty() && sampled.len() <= 20);
        let mut keys = std::collections::BTreeSet::new();
        for rows_of_key in &sampled {
            assert_eq!(rows_of_key.len(), 1);
            let (r, n) = &rows_of_key[0];
            let values = r.unpack();
            let Datum::Int(k) = values[0] else { panic!("{values:?}") };
            assert!((50..100).contains(&k), "key {k} was removed");
            assert_eq!((values[1].clone(), *n), (Datum::Int(i64::from(k < 60)), 1), "key {k} holds its current row");
            assert!(keys.insert(k), "key {k} sampled twice");
        }
        assert!(rows.sample(1000, &mut random).len() <= 50);
        assert!(ViewRows::default().sample(5, &mut random).is_empty());
    }

    /// A key taken from a row's leading bytes is the packed key, and rows
    /// whose leading columns need folding (a double, a numeric) are packed.
    #[test]
    fn leading_keys_are_packed_keys() {
        let rows = [
            Row::pack([Datum::Int(7), Datum::text("a"), Datum::Float(2.5)]),
            Row::pack([Datum::Null, Datum::Int(-300_000), Datum::Float(1.0)]),
            Row::pack([Datum::Float(3.0), Datum::Int(1), Datum::Int(2)]),
            Row::pack([Datum::Int(1), Datum::Float(-0.0), Datum::Int(2)]),
        ];
        let mut packer = RowPacker::new();
        let mut taken = 0;
        for row in &rows {
            for count in 0..=3 {
                let columns: Vec<usize> = (0..count).collect();
                let packed = pack_row_key(&columns, row, &mut packer);
                if let Some(key) = leading_key(row, count) {
                    assert_eq!(key, packed.as_bytes(), "{row:?}, {count} columns");
                    taken += 1;
                }
            }
        }
        assert_eq!(leading_key(&rows[2], 1), None, "3.0 is folded to 3");
        // 2.5, a short decimal that is not integral, is its own key form.
        assert!(leading_key(&rows[0], 3).is_some());
        assert_eq!(taken, 10);
    }

    /// Lookups probe with a `Key` (inline keys compared as words): text
    /// keys short enough to sit inline and long ones on the heap, sharing
    /// prefixes and spread over several runs, are each found, and keys
    /// that are not held (a held key's prefix or extension) find nothing.
    #[test]
    fn inline_and_heap_keys_are_found_across_runs() {
        let texts: Vec<String> =
            (0..40).map(|i| format!("{}{i}", "k".repeat(if i % 2 == 0 { 3 } else { 40 }))).collect();
        let mut rows = ViewRows::default();
        let mut packer = RowPacker::new();
        // A large first run, then small ones above it (see `push`).
        let (first, rest) = texts.split_at(36);
        for batch in std::iter::once(first).chain(rest.chunks(1)) {
            let changes: Vec<(Row, Diff)> =
                batch.iter().map(|t| (Row::pack([Datum::text(t), Datum::Int(t.len() as i64)]), 1)).collect();
            rows.apply(&[0], &changes, &mut packer);
        }
        assert!(rows.runs().0 >= 2, "{:?}", rows.runs());
        for t in &texts {
            let found = rows.get(&pack_key(&[Datum::owned_text(t.clone())]));
            assert_eq!(found.len(), 1, "{t}");
            assert_eq!(found[0].0.unpack()[1], Datum::Int(t.len() as i64), "{t}");
            for missing in [format!("{t}x"), t[..t.len() - 1].to_owned()] {
                if !texts.contains(&missing) {
                    assert!(rows.get(&pack_key(&[Datum::owned_text(missing.clone())])).is_empty(), "{missing}");
                }
            }
        }
    }

    /// Inline keys order like their bytes, a prefix first.
    #[test]
    fn inline_keys_compare_as_bytes() {
        let keys: [&[u8]; 7] = [b"", b"\0", b"a", b"a\0", b"ab", &[0xff; 30], &[0xff; 31]];
        for a in keys {
            for b in keys {
                assert_eq!(Key::new(a).cmp(&Key::new(b)), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// Keys of 0–40 bytes over a two-letter alphabet: short ones, inline
    /// and heap ones, many sharing their first eight bytes.
    fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(0u8), Just(7u8)], 0..40)
    }

    proptest! {
        /// The word-first sort against the simple one it replaces (the
        /// whole changes compared): the same keys in the same order, and
        /// the same changes once consolidated.
        #[test]
        fn sorting_by_first_words_sorts_like_the_whole_changes(
            changes in proptest::collection::vec((key_bytes(), 0..3i64, prop_oneof![Just(-1i64), Just(1), Just(2)]), 0..60),
        ) {
            let changes: Vec<Change> = changes
                .into_iter()
                .map(|(key, row, diff)| (Key::new(&key), Row::pack([Datum::Int(row)]), diff))
                .collect();
            let mut fast = changes.clone();
            sort_changes(&mut fast);
            let mut simple = changes;
            simple.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            let keys = |c: &[Change]| c.iter().map(|c| c.0.as_bytes().to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(keys(&fast), keys(&simple));
            consolidate(&mut fast);
            consolidate(&mut simple);
            let whole = |c: &[Change]| c.iter().map(|c| (c.0.as_bytes().to_vec(), c.1.clone(), c.2)).collect::<Vec<_>>();
            let (mut fast, simple) = (whole(&fast), whole(&simple));
            // One key's two changes may come in either order.
            fast.sort();
            prop_assert_eq!(fast, simple);
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use denorm_types::Datum;

    fn row(k: i64, v: &str) -> Row {
        Row::pack([Datum::Int(k), Datum::text(v)])
    }

    fn rows_of(rows: &ViewRows) -> Vec<(Row, Diff)> {
        rows.iter().map(|(r, d)| (r.clone(), d)).collect()
    }

    /// Rows read back in `iter` order load into one run equal to the
    /// original, and both take the same later changes alike; rows out of
    /// key order, a repeated key or a keyed view's count above 1 are given
    /// back unchanged.
    #[test]
    fn loads_rows_in_key_order_and_gives_back_others() {
        let mut packer = RowPacker::new();
        for (key, unique) in [(vec![0], true), (vec![0, 1], false), (vec![1], true)] {
            let mut original = ViewRows::default();
            let changes: Vec<(Row, Diff)> =
                (0..300).map(|i| (row(i, &format!("value {} of a long enough row", i * 7 % 300)), 1)).collect();
            original.apply_checked(&key, unique, &changes, &mut packer).unwrap();
            original.apply_checked(&key, unique, &[(changes[5].0.clone(), -1)], &mut packer).unwrap();
            let mut loaded = ViewRows::default();
            loaded.load_sorted(&key, unique, rows_of(&original), &mut packer).unwrap();
            assert_eq!(loaded.runs(), (1, 299));
            assert_eq!(loaded.len(), original.len());
            assert_eq!(rows_of(&loaded), rows_of(&original));
            let later = [(changes[7].0.clone(), -1), (row(1000, "new"), 1)];
            original.apply_checked(&key, unique, &later, &mut packer).unwrap();
            loaded.apply_checked(&key, unique, &later, &mut packer).unwrap();
            assert_eq!(rows_of(&loaded), rows_of(&original));
        }
        let mut reversed = vec![(row(2, "b"), 1), (row(1, "a"), 1), (row(3, "c"), 1)];
        let back = ViewRows::default().load_sorted(&[0], true, reversed.clone(), &mut packer).unwrap_err();
        assert_eq!(back, reversed);
        reversed.sort();
        reversed[1].1 = 2;
        let back = ViewRows::default().load_sorted(&[0], true, reversed.clone(), &mut packer).unwrap_err();
        assert_eq!(back, reversed);
    }
}
