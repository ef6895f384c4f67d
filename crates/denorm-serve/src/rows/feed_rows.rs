//! A feed's fanned-out rows (part 0 of a feed view, see [`crate::feed`]):
//! per partition one sorted array of its stored rows, the partition's
//! packed key kept once.
//!
//! ```text
//!  chunks (each an Arc of ≤ 2×CHUNK partitions), partitions in key order
//!  [ p1 → front Arc[r r] + base Arc[r r r … r|✝ ✝]  p2 → …  … ]  [ p33 → … ]  …
//!          newest rows        older rows | pushed out (hidden)
//! ```
//!
//! A stored row is the row with its partition column NULL (see
//! [`FeedInfo::strip`]; a reference is about 14 bytes, inside its 24-byte
//! handle). A partition's rows are in the feed's order: by their ordered
//! key's suffix after the partition ([`FeedInfo::suffix_into`]), then by
//! their bytes, which is the order of the generic runs' keys and slots. The
//! suffix is computed when a row is compared, never stored. A row held n
//! times is n adjacent copies.
//!
//! A partition's rows are a short *front* (the newest rows, at most
//! [`FRONT`]) followed by the first `base_len` rows of a *base* array; the
//! base rows past `base_len` were pushed out and are hidden. Writes are
//! copy-on-write per batch, and a feed's usual batch touches only the
//! ends of a window: a new post goes first (into the front, which is
//! copied: at most [`FRONT`] handles) and pushes the window's last row out
//! (`base_len` shrinks: nothing copied). Any other change (a deleted post
//! inside the window, a refill, a new partition) rebuilds the partition's
//! rows into one base array, by one merge of its rows with its changes
//! (stretches between changes copied whole, each change placed by a
//! galloping search from the previous one); so does a front grown past
//! [`FRONT`] or as many rows hidden, so a partition costs O(its rows) per
//! [`FRONT`] new posts, not per post. A batch's changes are sorted by key
//! and grouped by partition; each touched chunk is copied once (its
//! partitions' handles) when a published copy shares it. Cloning
//! (publishing) costs one `Arc` per chunk, and a reader keeps the arrays
//! its snapshot holds: it never sees half a batch.

use std::sync::Arc;

use denorm_types::{Diff, Row, RowPacker, RowRef};

use super::{consolidate, sort_changes, Change, Key, SharedRows};
use crate::feed::FeedInfo;

/// Partitions per chunk: a chunk past twice this is split in two.
const CHUNK: usize = 32;

/// The most rows a partition's front holds, and hides in its base, before
/// its rows are rebuilt into one base array.
const FRONT: usize = 32;

/// One partition: its packed value and its rows in the feed's order.
#[derive(Debug, Clone)]
struct Partition {
    /// The partition value packed as for equality (its keys' prefix).
    key: Row,
    /// The newest rows, in order, each before (or equal to) `base[0]`.
    front: Arc<[Row]>,
    /// The older rows in order: the first `base_len` are the partition's.
    base: Arc<Vec<Row>>,
    base_len: usize,
}

impl Partition {
    fn rows(&self) -> PartitionRows<'_> {
        PartitionRows { front: &self.front, base: &self.base[..self.base_len] }
    }
}

/// A partition's rows in the feed's order (a row held n times n times).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PartitionRows<'a> {
    front: &'a [Row],
    base: &'a [Row],
}

impl<'a> PartitionRows<'a> {
    pub(crate) fn iter(self) -> impl Iterator<Item = &'a Row> + Clone + 'a {
        self.front.iter().chain(self.base)
    }

    pub(crate) fn len(self) -> usize {
        self.front.len() + self.base.len()
    }
}

/// A feed's stored rows, per partition; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct FeedRows {
    /// Never empty chunks; partitions in key byte order across them.
    chunks: Vec<Arc<Vec<Partition>>>,
    /// Rows counted with multiplicity.
    len: u64,
}

impl FeedRows {
    /// Rows counted with multiplicity.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The stored rows of the partition whose packed value is `prefix`, in
    /// the feed's order (a row held n times n times).
    pub(crate) fn partition(&self, prefix: &[u8]) -> PartitionRows<'_> {
        match self.locate(0, prefix) {
            (c, Ok(p)) => self.chunks[c][p].rows(),
            _ => PartitionRows::default(),
        }
    }

    /// Every partition's packed value and rows, in key order.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = (&[u8], PartitionRows<'_>)> {
        self.chunks.iter().flat_map(|c| c.iter()).map(|p| (p.key.as_bytes(), p.rows()))
    }

    /// The chunk that holds (or would hold) partition `prefix`, and its
    /// position there (`Err`: where it would go). Every chunk before
    /// `from` must end below `prefix` (a batch's partitions come in key
    /// order: the next one is usually in the same chunk, checked first).
    fn locate(&self, from: usize, prefix: &[u8]) -> (usize, Result<usize, usize>) {
        if self.chunks.is_empty() {
            return (0, Err(0));
        }
        let below = |c: &Arc<Vec<Partition>>| c.last().is_some_and(|p| p.key.as_bytes() < prefix);
        let mut c = from.min(self.chunks.len() - 1);
        if below(&self.chunks[c]) {
            c += 1 + self.chunks[c + 1..].partition_point(below);
            c = c.min(self.chunks.len() - 1);
        }
        (c, self.chunks[c].binary_search_by(|p| p.key.as_bytes().cmp(prefix)))
    }

    /// Applies a batch of a feed's changes (whole rows, as the dataflow
    /// emits them): stored stripped, one buffer per distinct stripped row
    /// through `shared`. Per (row) the batch's net diff; a retraction of a
    /// row not held is an upstream bug, logged and ignored.
    pub(crate) fn apply(&mut self, feed: &FeedInfo, changes: &[(Row, Diff)], shared: &mut SharedRows) {
        let (mut bytes, mut packer) = (Vec::new(), RowPacker::new());
        let mut changes: Vec<Change> = changes
            .iter()
            .map(|(row, diff)| {
                feed.row_key_into(row, &mut bytes, &mut packer);
                (Key::new(&bytes), feed.strip(row, &mut packer), *diff)
            })
            .collect();
        sort_changes(&mut changes);
        consolidate(&mut changes);
        let mut scratch = Vec::new();
        let (mut start, mut chunk) = (0, 0);
        while start < changes.len() {
            let key = changes[start].0.as_bytes();
            let len = RowRef::from_prefix(key, key.len()).prefix_len(1);
            let prefix = RowRef::from_prefix(key, len).to_row();
            let end = start + changes[start..].iter().take_while(|c| c.0.as_bytes().starts_with(&key[..len])).count();
            chunk = self.apply_partition(feed, chunk, prefix, &changes[start..end], shared, &mut scratch);
            start = end;
        }
    }

    /// Applies one partition's changes (sorted, consolidated), located
    /// from chunk `from` on (see [`FeedRows::locate`]); returns the chunk
    /// to locate the batch's next partition from.
    fn apply_partition(
        &mut self,
        feed: &FeedInfo,
        from: usize,
        prefix: Row,
        changes: &[Change],
        shared: &mut SharedRows,
        scratch: &mut Vec<u8>,
    ) -> usize {
        let plen = prefix.as_bytes().len();
        let (c, found) = self.locate(from, prefix.as_bytes());
        let old = match found {
            Ok(p) => Some(&self.chunks[c][p]),
            Err(_) => None,
        };
        let before = old.map_or(0, |p| p.rows().len());
        let new = match old.and_then(|p| at_the_ends(feed, p, changes, plen, shared, scratch)) {
            Some(new) => new,
            None => {
                let rows: Vec<Row> = old.map(|p| p.rows().iter().cloned().collect()).unwrap_or_default();
                let rows = merge(feed, &rows, changes, plen, shared, scratch);
                Partition { key: prefix, front: Arc::new([]), base_len: rows.len(), base: Arc::new(rows) }
            }
        };
        let after = new.rows().len();
        self.len = self.len + after as u64 - before as u64;
        if after == 0 && found.is_err() {
            return c;
        }
        if self.chunks.is_empty() {
            self.chunks.push(Arc::default());
        }
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        match found {
            Ok(p) if after == 0 => {
                chunk.remove(p);
                if chunk.is_empty() {
                    self.chunks.remove(c);
                }
            }
            Ok(p) => chunk[p] = new,
            Err(p) => {
                chunk.insert(p, new);
                if chunk.len() > 2 * CHUNK {
                    let tail = chunk.split_off(CHUNK);
                    self.chunks.insert(c + 1, Arc::new(tail));
                }
            }
        }
        c
    }
}

/// `old` after `changes` when they touch only its ends: retractions of its
/// last rows (hidden in the base: nothing copied) and changes before its
/// first base row left (merged into the front, at most [`FRONT`] rows).
/// `None` for any other changes, or when the front or the hidden rows
/// would pass [`FRONT`]: the caller rebuilds the partition.
fn at_the_ends(
    feed: &FeedInfo,
    old: &Partition,
    changes: &[Change],
    plen: usize,
    shared: &mut SharedRows,
    scratch: &mut Vec<u8>,
) -> Option<Partition> {
    // Retractions of the last rows, from the end.
    let mut base_len = old.base_len;
    let mut rest = changes.len();
    while let Some((_, row, diff)) = rest.checked_sub(1).map(|i| &changes[i]) {
        let n = usize::try_from(-diff).unwrap_or(0);
        if n == 0 || n > base_len || old.base[base_len - n..base_len].iter().any(|r| r != row) {
            break;
        }
        base_len -= n;
        rest -= 1;
    }
    let changes = &changes[..rest];
    let front_len = old.front.len() + changes.iter().map(|c| usize::try_from(c.2).unwrap_or(0)).sum::<usize>();
    if front_len > FRONT || old.base.len() - base_len > FRONT {
        return None;
    }
    // Every other change must come before the first base row left.
    // (The last change is the largest; a copy equal to it may go into the
    // front, a retraction of it is a retraction of a base row.)
    if let (Some(first), Some((key, row, diff))) = (old.base[..base_len].first(), changes.last()) {
        feed.suffix_into(first, scratch);
        match (&key.as_bytes()[plen..], row).cmp(&(scratch.as_slice(), first)) {
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Equal if *diff < 0 => return None,
            _ => {}
        }
    }
    for row in &old.base[base_len..old.base_len] {
        shared.release(row);
    }
    let front = if changes.is_empty() {
        old.front.clone()
    } else {
        Arc::from(merge(feed, &old.front, changes, plen, shared, scratch))
    };
    Some(Partition { key: old.key.clone(), front, base: old.base.clone(), base_len })
}

/// A partition's rows after its `changes` (sorted by key then row,
/// consolidated; `plen` bytes of each key are the partition): the old rows'
/// stretches between changes copied, insertions interned, retractions
/// released.
fn merge(
    feed: &FeedInfo,
    old: &[Row],
    changes: &[Change],
    plen: usize,
    shared: &mut SharedRows,
    scratch: &mut Vec<u8>,
) -> Vec<Row> {
    let inserted: usize = changes.iter().map(|c| usize::try_from(c.2).unwrap_or(0)).sum();
    let mut out = Vec::with_capacity(old.len() + inserted);
    let mut at = 0;
    for (key, row, diff) in changes {
        let pos = lower_bound(feed, old, at, (&key.as_bytes()[plen..], row), scratch);
        out.extend_from_slice(&old[at..pos]);
        at = pos;
        if *diff < 0 {
            let mut left = -diff;
            while left > 0 && old.get(at) == Some(row) {
                shared.release(row);
                at += 1;
                left -= 1;
            }
            if left == -diff {
                tracing::warn!(?row, "retraction of a row the feed does not hold (upstream bug); ignored");
            }
        } else {
            for _ in 0..*diff {
                out.push(shared.intern(row.clone()));
            }
        }
    }
    out.extend_from_slice(&old[at..]);
    out
}

/// The first index at or after `from` whose row is not below `(suffix,
/// row)` in the partition's order. The row at `from` is compared first (a
/// new post: first), then the last row by equality (the row a new post
/// pushes out of a full window: no suffix computed), then a galloping
/// search.
fn lower_bound(feed: &FeedInfo, old: &[Row], from: usize, probe: (&[u8], &Row), scratch: &mut Vec<u8>) -> usize {
    let mut below = |r: &Row| {
        feed.suffix_into(r, scratch);
        (scratch.as_slice(), r) < probe
    };
    let n = old.len();
    if from == n || !below(&old[from]) {
        return from;
    }
    if old[n - 1] == *probe.1 {
        // Equal rows are adjacent; `old[from]` is below, so not equal.
        let mut at = n - 1;
        while at > from + 1 && old[at - 1] == *probe.1 {
            at -= 1;
        }
        return at;
    }
    if below(&old[n - 1]) {
        return n;
    }
    // `old[from]` is below, `old[n - 1]` is not.
    let (mut lo, mut step) = (from, 1);
    while lo + step < n - 1 && below(&old[lo + step]) {
        lo += step;
        step *= 2;
    }
    let hi = (lo + step).min(n - 1);
    lo + 1 + old[lo + 1..hi].partition_point(below)
}

/// A partition's rows with their multiplicities: each run of equal rows
/// once.
pub(crate) fn counted<'a>(rows: impl Iterator<Item = &'a Row>) -> impl Iterator<Item = (&'a Row, Diff)> {
    let mut rows = rows.peekable();
    std::iter::from_fn(move || {
        let row = rows.next()?;
        let mut n = 1;
        while rows.next_if(|r| *r == row).is_some() {
            n += 1;
        }
        Some((row, n))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use denorm_types::Datum;
    use proptest::prelude::*;

    use super::*;
    use crate::query::OrderTerm;

    /// `created_at DESC NULLS LAST, id DESC` over rows `(owner, id, created_at)`.
    fn feed() -> FeedInfo {
        let term = |column| OrderTerm { column, descending: true, nulls_first: false, collation: None };
        FeedInfo { partition: 0, order: vec![term(2), term(1)], ..FeedInfo::default() }
    }

    fn row(owner: i64, id: i64, at: Option<i64>) -> Row {
        Row::pack([Datum::Int(owner), Datum::Int(id), at.map_or(Datum::Null, Datum::Int)])
    }

    /// The simple structure the layout replaces: per full ordered key the
    /// rows under it with their counts (the generic runs' semantics:
    /// per row the net diff, a retraction clamped to what is held).
    #[derive(Debug, Clone, Default)]
    struct Model {
        keys: BTreeMap<Vec<u8>, BTreeMap<Row, Diff>>,
    }

    impl Model {
        fn apply(&mut self, feed: &FeedInfo, changes: &[(Row, Diff)]) {
            let mut net: BTreeMap<(Vec<u8>, Row), Diff> = BTreeMap::new();
            let mut packer = RowPacker::new();
            for (row, diff) in changes {
                *net.entry((feed.row_key(row), feed.strip(row, &mut packer))).or_default() += diff;
            }
            for ((key, row), diff) in net {
                let rows = self.keys.entry(key.clone()).or_default();
                let held = rows.entry(row.clone()).or_default();
                *held = (*held + diff).max(0);
                if *held == 0 {
                    rows.remove(&row);
                }
                if rows.is_empty() {
                    self.keys.remove(&key);
                }
            }
        }

        /// Per partition prefix, its rows in order (copies repeated).
        fn partitions(&self) -> Vec<(Vec<u8>, Vec<Row>)> {
            let mut out: Vec<(Vec<u8>, Vec<Row>)> = Vec::new();
            for (key, rows) in &self.keys {
                let len = RowRef::from_prefix(key, key.len()).prefix_len(1);
                if out.last().is_none_or(|(p, _)| p[..] != key[..len]) {
                    out.push((key[..len].to_vec(), Vec::new()));
                }
                let (_, held) = out.last_mut().expect("pushed");
                for (row, n) in rows {
                    held.extend(std::iter::repeat_n(row.clone(), *n as usize));
                }
            }
            out
        }
    }

    fn same(rows: &FeedRows, model: &Model) -> Result<(), TestCaseError> {
        let got: Vec<(Vec<u8>, Vec<Row>)> =
            rows.partitions().map(|(p, r)| (p.to_vec(), r.iter().cloned().collect())).collect();
        let expected = model.partitions();
        prop_assert_eq!(rows.len(), expected.iter().map(|(_, r)| r.len() as u64).sum::<u64>());
        for (prefix, held) in &expected {
            prop_assert_eq!(rows.partition(prefix).iter().cloned().collect::<Vec<_>>(), held.clone());
        }
        for p in rows.chunks.iter().flat_map(|c| c.iter()) {
            prop_assert!(p.front.len() <= FRONT && p.base.len() - p.base_len <= FRONT);
        }
        prop_assert_eq!(got, expected);
        prop_assert!(rows.chunks.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK));
        Ok(())
    }

    fn change(owners: i64) -> impl Strategy<Value = (Row, Diff)> {
        (
            0..owners,
            0..6i64,
            prop_oneof![Just(None), (0..4i64).prop_map(Some)],
            prop_oneof![Just(-2), Just(-1), Just(-1), Just(1), Just(1), Just(2)],
        )
            .prop_map(|(owner, id, at, diff)| (row(owner, id, at), diff))
    }

    fn check(batches: &[Vec<(Row, Diff)>]) -> Result<(), TestCaseError> {
        let feed = feed();
        let (mut rows, mut model, mut shared) = (FeedRows::default(), Model::default(), SharedRows::default());
        let mut published = Vec::new();
        for changes in batches {
            rows.apply(&feed, changes, &mut shared);
            model.apply(&feed, changes);
            same(&rows, &model)?;
            published.push((rows.clone(), model.clone()));
        }
        for (rows, model) in &published {
            same(rows, model)?;
        }
        Ok(())
    }

    proptest! {
        /// Batches of any changes (retractions of rows not held, copies,
        /// ties on the order, NULL order values) applied to the layout and
        /// to the simple map agree on every partition's rows and order and
        /// on the count; a clone taken after a batch (a published copy) is
        /// unchanged by later batches.
        #[test]
        fn partitions_read_like_the_map(batches in proptest::collection::vec(proptest::collection::vec(change(4), 0..16), 1..30)) {
            check(&batches)?;
        }

        /// Many partitions: chunks split as partitions come and are removed
        /// as they empty, in key order throughout.
        #[test]
        fn chunks_split_and_empty(batches in proptest::collection::vec(proptest::collection::vec(change(200), 0..100), 1..8)) {
            check(&batches)?;
        }
    }

    /// One step of a window workload: a new post (newest so far) in a
    /// partition, or a retraction of its last held row or of its i-th.
    #[derive(Debug, Clone)]
    enum Step {
        Post(i64),
        RetractLast(i64),
        RetractAt(i64, usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0..3i64).prop_map(Step::Post),
            3 => (0..3i64).prop_map(Step::RetractLast),
            1 => (0..3i64, 0..40usize).prop_map(|(p, i)| Step::RetractAt(p, i)),
        ]
    }

    proptest! {
        /// A feed's usual batches (new posts first, the last rows pushed
        /// out, now and then a row inside retracted) take the ends' path
        /// (front, hidden rows) and rebuild when it fills; every partition
        /// reads like the simple map, and published copies stay as they were.
        #[test]
        fn windows_read_like_the_map(batches in proptest::collection::vec(proptest::collection::vec(step(), 0..8), 1..80)) {
            let feed = feed();
            let (mut rows, mut model, mut shared) = (FeedRows::default(), Model::default(), SharedRows::default());
            let load: Vec<(Row, Diff)> = (0..120).map(|i| (row(i % 3, i, Some(i)), 1)).collect();
            rows.apply(&feed, &load, &mut shared);
            model.apply(&feed, &load);
            let mut next = 120;
            let mut published = Vec::new();
            for steps in &batches {
                let mut changes = Vec::new();
                for s in steps {
                    let held = |p: i64| {
                        let prefix = crate::rows::pack_key(&[Datum::Int(p)]);
                        model.partitions().into_iter().find(|(k, _)| k[..] == *prefix.as_bytes()).map(|(_, r)| r).unwrap_or_default()
                    };
                    let whole = |p: i64, r: &Row| {
                        let mut d = r.unpack();
                        d[0] = Datum::Int(p);
                        Row::pack(d.iter())
                    };
                    match *s {
                        Step::Post(p) => {
                            next += 1;
                            changes.push((row(p, next, Some(next)), 1));
                        }
                        Step::RetractLast(p) => {
                            if let Some(r) = held(p).last() {
                                changes.push((whole(p, r), -1));
                            }
                        }
                        Step::RetractAt(p, i) => {
                            if let Some(r) = held(p).get(i) {
                                changes.push((whole(p, r), -1));
                            }
                        }
                    }
                }
                rows.apply(&feed, &changes, &mut shared);
                model.apply(&feed, &changes);
                same(&rows, &model)?;
                published.push((rows.clone(), model.clone()));
            }
            for (rows, model) in &published {
                same(rows, model)?;
            }
        }
    }

    /// A window's steady state: each new post goes first and pushes the
    /// last row out; the search finds both ends without walking.
    #[test]
    fn new_posts_go_first_and_push_the_last_out() {
        let feed = feed();
        let (mut rows, mut shared) = (FeedRows::default(), SharedRows::default());
        let load: Vec<(Row, Diff)> = (0..50).map(|i| (row(7, i, Some(i)), 1)).collect();
        rows.apply(&feed, &load, &mut shared);
        for i in 50..120 {
            rows.apply(&feed, &[(row(7, i, Some(i)), 1), (row(7, i - 50, Some(i - 50)), -1)], &mut shared);
        }
        let prefix = crate::rows::pack_key(&[Datum::Int(7)]);
        let held: Vec<Row> = rows.partition(prefix.as_bytes()).iter().cloned().collect();
        let mut packer = RowPacker::new();
        let expected: Vec<Row> = (70..120).rev().map(|i| feed.strip(&row(7, i, Some(i)), &mut packer)).collect();
        assert_eq!(held, expected);
        assert_eq!(rows.len(), 50);
        assert_eq!(counted(held.iter()).count(), 50);
        // The last posts went into the front and hid the rows they pushed
        // out, without a rebuild.
        let p = &rows.chunks[0][0];
        assert_eq!((p.front.len(), p.base.len() - p.base_len), (70 % (FRONT + 1), 70 % (FRONT + 1)));
    }
}
