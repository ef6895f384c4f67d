//! A feed's fanned-out rows (part 0 of a feed view, see [`crate::feed`]):
//! per partition one sorted array of its stored rows, the partition's
//! packed key kept once.
//!
//! ```text
//!  chunks (each an Arc of ≤ 2×CHUNK partitions), partitions in key order
//!  [ p1 → Arc[r r r … r]  p2 → Arc[r r … r]  … ]  [ p65 → Arc[…] … ]  …
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
//! Writes are copy-on-write per batch. A batch's changes are sorted by key
//! and grouped by partition; each touched partition's array is rebuilt once
//! by one merge of the old array with its changes (stretches between
//! changes copied whole, a change placed by a galloping search from the
//! previous one: a new post, first in the order, costs one comparison, and
//! the row it pushes out of a full window, last, none), and each touched
//! chunk is copied once (its partitions' handles) when a published copy
//! shares it. Cloning (publishing) costs one `Arc` per chunk, and a reader
//! keeps the arrays its snapshot holds: it never sees half a batch.

use std::sync::Arc;

use denorm_types::{Diff, Row, RowPacker, RowRef};

use super::{consolidate, sort_changes, Change, Key, SharedRows};
use crate::feed::FeedInfo;

/// Partitions per chunk: a chunk past twice this is split in two.
const CHUNK: usize = 64;

/// One partition: its packed value and its rows in the feed's order.
#[derive(Debug, Clone)]
struct Partition {
    /// The partition value packed as for equality (its keys' prefix).
    key: Row,
    rows: Arc<Vec<Row>>,
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
    pub(crate) fn partition(&self, prefix: &[u8]) -> &[Row] {
        match self.locate(prefix) {
            (c, Ok(p)) => &self.chunks[c][p].rows,
            _ => &[],
        }
    }

    /// Every partition's packed value and rows, in key order.
    pub(crate) fn partitions(&self) -> impl Iterator<Item = (&[u8], &[Row])> {
        self.chunks.iter().flat_map(|c| c.iter()).map(|p| (p.key.as_bytes(), p.rows.as_slice()))
    }

    /// The chunk that holds (or would hold) partition `prefix`, and its
    /// position there (`Err`: where it would go).
    fn locate(&self, prefix: &[u8]) -> (usize, Result<usize, usize>) {
        if self.chunks.is_empty() {
            return (0, Err(0));
        }
        let c = self.chunks.partition_point(|c| c.last().is_some_and(|p| p.key.as_bytes() < prefix));
        let c = c.min(self.chunks.len() - 1);
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
        let mut start = 0;
        while start < changes.len() {
            let key = changes[start].0.as_bytes();
            let len = RowRef::from_prefix(key, key.len()).prefix_len(1);
            let prefix = RowRef::from_prefix(key, len).to_row();
            let end = start + changes[start..].iter().take_while(|c| c.0.as_bytes().starts_with(&key[..len])).count();
            self.apply_partition(feed, prefix, &changes[start..end], shared, &mut scratch);
            start = end;
        }
    }

    /// Applies one partition's changes (sorted, consolidated).
    fn apply_partition(
        &mut self,
        feed: &FeedInfo,
        prefix: Row,
        changes: &[Change],
        shared: &mut SharedRows,
        scratch: &mut Vec<u8>,
    ) {
        let (c, found) = self.locate(prefix.as_bytes());
        let old: &[Row] = match found {
            Ok(p) => &self.chunks[c][p].rows,
            Err(_) => &[],
        };
        let rows = merge(feed, old, changes, prefix.as_bytes().len(), shared, scratch);
        self.len = self.len + rows.len() as u64 - old.len() as u64;
        if rows.is_empty() && found.is_err() {
            return;
        }
        if self.chunks.is_empty() {
            self.chunks.push(Arc::default());
        }
        let chunk = Arc::make_mut(&mut self.chunks[c]);
        match found {
            Ok(p) if rows.is_empty() => {
                chunk.remove(p);
                if chunk.is_empty() {
                    self.chunks.remove(c);
                }
            }
            Ok(p) => chunk[p].rows = Arc::new(rows),
            Err(p) => {
                chunk.insert(p, Partition { key: prefix, rows: Arc::new(rows) });
                if chunk.len() > 2 * CHUNK {
                    let tail = chunk.split_off(CHUNK);
                    self.chunks.insert(c + 1, Arc::new(tail));
                }
            }
        }
    }
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
pub(crate) fn counted(rows: &[Row]) -> impl Iterator<Item = (&Row, Diff)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let row = rows.get(at)?;
        let n = rows[at..].iter().take_while(|r| *r == row).count();
        at += n;
        Some((row, n as Diff))
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
        let term = |column| OrderTerm { column, descending: true, nulls_first: false };
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
        let got: Vec<(Vec<u8>, Vec<Row>)> = rows.partitions().map(|(p, r)| (p.to_vec(), r.to_vec())).collect();
        let expected = model.partitions();
        prop_assert_eq!(rows.len(), expected.iter().map(|(_, r)| r.len() as u64).sum::<u64>());
        for (prefix, held) in &expected {
            prop_assert_eq!(rows.partition(prefix), &held[..]);
        }
        prop_assert_eq!(got, expected);
        prop_assert!(rows.chunks.iter().all(|c| !c.is_empty() && c.len() <= 2 * CHUNK));
        Ok(())
    }

    fn change(owners: i64) -> impl Strategy<Value = (Row, Diff)> {
        (0..owners, 0..6i64, prop_oneof![Just(None), (0..4i64).prop_map(Some)], prop_oneof![
            Just(-2),
            Just(-1),
            Just(-1),
            Just(1),
            Just(1),
            Just(2)
        ])
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
        fn chunks_split_and_empty(batches in proptest::collection::vec(proptest::collection::vec(change(400), 0..200), 1..12)) {
            check(&batches)?;
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
        let held: Vec<Row> = rows.partition(prefix.as_bytes()).to_vec();
        let mut packer = RowPacker::new();
        let expected: Vec<Row> = (70..120).rev().map(|i| feed.strip(&row(7, i, Some(i)), &mut packer)).collect();
        assert_eq!(held, expected);
        assert_eq!(rows.len(), 50);
        assert_eq!(counted(&held).count(), 50);
    }
}
