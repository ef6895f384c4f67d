//! Top-k per partition of a join's output, holding only the top k.
//!
//! [`TopK`](super::TopK) keeps every row of a partition so that a deletion
//! inside the top k can bring the next row in. When its input is an inner
//! join whose partition columns all come from one side (a feed: `follows ⋈
//! posts` partitioned by `follows.follower_id`), those rows are already
//! held, once, by the join's two arrangements: the partition's rows are the
//! partition side's rows with that partition value (an arrangement of that
//! side by the partition columns), each paired with the other side's rows
//! under its join key. So this operator keeps only the top k:
//!
//! ```text
//!  join delta ──► per partition: top (a prefix of the partition's rows in order, ≤ k copies)
//!                                total (rows in the partition, held or not)
//!     insertion before the last held row, or into a partition held whole: into top, trim to k
//!     insertion after it: nothing (it is among the rows not held)
//!     deletion of a held row: out of top
//!  end of batch: top holds fewer than min(k, total) ──► refill: enumerate the
//!     partition through the arrangements (already updated with the batch),
//!     take its first k
//! ```
//!
//! `top` stays a prefix of the partition's rows after every change (only the
//! last held row may be held with fewer copies than the partition has), so
//! the refill is needed only when deletions left fewer than k held rows
//! while the partition has more. Output is exactly what changed in the top
//! k (no row numbers: `rank` views use [`TopK`](super::TopK)).
//!
//! The order is the `order` terms (NULLs placed as each says, values by
//! `Datum::total_cmp`), then the rows' bytes: a total order. Rows are
//! compared by reading their order columns, so the state is one `Row`
//! handle per held copy (24 bytes: a feed's reference lives in it; a longer
//! row shares its buffer with the row emitted downstream; a row held n
//! times is n adjacent copies), plus one key and a counter per partition.
//!
//! Cost: an insertion or deletion O(log k) comparisons plus a move of the
//! partition's held rows (at most k handles); a refill O(n log n) for the
//! partition's n rows, paid when a batch deletes held rows from a partition
//! that has more than k (a deleted or hidden post, an unfollow, an author
//! whose content moves elsewhere).

use std::cmp::Ordering;
use std::collections::VecDeque;

use hashbrown::HashMap;

use denorm_expr::{EvalError, SortKey};
use denorm_types::{consolidate_unordered, Datum, Diff, Row, RowPacker, RowRef};

mod checkpoint;

use crate::index::Index;
use crate::operator::Join;
use crate::{memory, Hasher};

#[derive(Debug, Default)]
struct Part {
    /// A prefix of the partition's rows in order, a row held n times as n
    /// adjacent copies; at most `limit` copies in all.
    top: VecDeque<Row>,
    /// Copies in the partition.
    total: Diff,
}

impl Part {
    /// Copies in `top`.
    fn held(&self) -> Diff {
        self.top.len() as Diff
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct JoinTopK {
    /// Output columns.
    partition: Vec<usize>,
    order: Vec<SortKey>,
    limit: usize,
    /// Whether the partition columns come from the join's left side.
    left: bool,
    partitions: HashMap<Row, Part, Hasher>,
    content: Content,
}

/// What a bounded top-k holds, for tests and state-size reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopKState {
    pub partitions: usize,
    /// Held rows (copies) in all partitions.
    pub rows: usize,
    /// Held rows (copies) of the largest partition.
    pub largest: usize,
    /// Distinct held rows once their partition columns are set aside
    /// (each stored once), short rows (kept in their handles) not counted.
    pub distinct: usize,
}

impl JoinTopK {
    pub(crate) fn new(partition: Vec<usize>, order: Vec<SortKey>, limit: usize, left: bool) -> Self {
        JoinTopK { partition, order, limit, left, partitions: HashMap::default(), content: Content::default() }
    }

    /// Whether the partition comes from the join's left side (the join's
    /// right arrangement is then the other side).
    pub(crate) fn partition_on_left(&self) -> bool {
        self.left
    }

    pub(crate) fn state(&self) -> TopKState {
        let mut state =
            TopKState { partitions: self.partitions.len(), distinct: self.content.rows.len(), ..TopKState::default() };
        for p in self.partitions.values() {
            state.rows += p.top.len();
            state.largest = state.largest.max(p.top.len());
        }
        state
    }

    /// k, the most rows a partition holds.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Live heap bytes: the partition table, each partition's key and ring
    /// of held rows, and the interned rows (every held row is a handle to
    /// one of them: counted once, there; see [`crate::memory`]).
    pub(crate) fn state_bytes(&self) -> usize {
        let partitions: usize = self
            .partitions
            .iter()
            .map(|(key, part)| memory::row(key) + part.top.capacity() * std::mem::size_of::<Row>())
            .sum();
        let content = self.content.rows.allocation_size()
            + memory::vec(&self.content.spans)
            + memory::vec(&self.content.key_spans)
            + self.content.packer.allocated_bytes()
            + self.content.rows.keys().map(memory::row).sum::<usize>();
        self.partitions.allocation_size() + partitions + content
    }

    /// `input` is the join's consolidated delta; `by_partition` the partition
    /// side arranged by the partition columns, `other` the other side
    /// arranged by the join key (both updated with this batch).
    pub(crate) fn step(
        &mut self,
        input: &[(Row, Diff)],
        join: &Join,
        by_partition: &Index,
        other: &Index,
    ) -> Result<Vec<(Row, Diff)>, EvalError> {
        let mut packer = RowPacker::new();
        // The changes grouped by partition key: one sort per batch (a
        // feed's new post touches a partition per follower), see
        // [`group_by_key`].
        let keys: Vec<Row> = input
            .iter()
            .map(|(row, _)| {
                for &c in &self.partition {
                    packer.push_key_column(row, c);
                }
                packer.finish()
            })
            .collect();
        let keyed = group_by_key(&keys);
        let mut out = Vec::new();
        let limit = self.limit as Diff;
        let mut changes: Vec<(&Row, Diff)> = Vec::new();
        let mut next = 0;
        while next < keyed.len() {
            let key = keys[keyed[next] as usize].clone();
            changes.clear();
            while next < keyed.len() && keys[keyed[next] as usize] == key {
                let (row, diff) = &input[keyed[next] as usize];
                changes.push((row, *diff));
                next += 1;
            }
            let mut part = self.partitions.remove(&key).unwrap_or_default();
            let bulk = part.total == 0 && changes.len() > 1;
            if bulk {
                // A partition that had no rows (the snapshot's partitions):
                // its rows are the changes; sort once instead of placing
                // each.
                let rows = changes.iter().map(|&(r, d)| (r.clone(), d)).collect();
                self.refill(&mut part, &key, rows, &mut out);
            }
            for (row, diff) in changes.drain(..).filter(|_| !bulk) {
                let stripped = self.content.strip(row, &self.partition, &mut packer);
                // The copies of the row held, or where it would go.
                let (start, end) = match locate(&part.top, &self.order, &stripped) {
                    Ok(i) => copies(&part.top, i),
                    Err(i) => (i, i),
                };
                // Before this change, is every row of the partition held?
                let whole = part.held() == part.total;
                part.total += diff;
                if diff > 0 {
                    // Every copy of a held row before the last one is held;
                    // the last may be held partially, so more copies of it
                    // (or rows after it) go in only when the partition is
                    // held whole.
                    if end == part.top.len() && !whole {
                        continue;
                    }
                    // More than k copies would be trimmed to k at most.
                    let n = diff.min(limit);
                    if part.top.len() + n as usize > part.top.capacity() {
                        // Grow by a quarter, never past k + 1: held rows
                        // are most of this operator's memory.
                        let room = (part.top.len() / 4 + 1).min(self.limit + 1 - part.top.len().min(self.limit));
                        part.top.reserve_exact(room.max(n as usize));
                    }
                    let held = self.content.intern(stripped);
                    for _ in 1..n {
                        part.top.insert(start, self.content.intern(held.clone()));
                    }
                    part.top.insert(start, held);
                    out.push((row.clone(), n));
                    self.trim(&mut part, &key, &mut out);
                } else if end > start {
                    let removed = (end - start).min(usize::try_from(-diff).unwrap_or(usize::MAX));
                    out.push((row.clone(), -(removed as Diff)));
                    for held in part.top.drain(start..start + removed) {
                        self.content.release(&held);
                    }
                }
            }
            if part.held() < part.total.min(limit) {
                let rows = self.enumerate(&key, join, by_partition, other)?;
                self.refill(&mut part, &key, rows, &mut out);
            }
            if part.total > 0 || !part.top.is_empty() {
                self.partitions.insert(key, part);
            }
        }
        consolidate_unordered(&mut out);
        Ok(out)
    }

    /// Drops copies from the end of `top` until it holds at most `limit`.
    fn trim(&mut self, part: &mut Part, key: &Row, out: &mut Vec<(Row, Diff)>) {
        while part.top.len() > self.limit {
            let last = part.top.pop_back().expect("held copies are in top");
            out.push((self.content.unstrip(&last, &self.partition, key), -1));
            self.content.release(&last);
        }
    }

    /// Replaces `top` with the first `limit` copies of `rows` (the whole
    /// partition), emitting the difference.
    fn refill(&mut self, part: &mut Part, key: &Row, mut rows: Vec<(Row, Diff)>, out: &mut Vec<(Row, Diff)>) {
        let limit = self.limit as Diff;
        consolidate_unordered(&mut rows);
        rows.retain(|(_, d)| *d > 0);
        part.total = rows.iter().map(|(_, d)| d).sum();
        sort(&mut rows, &self.order);
        let mut held = 0;
        let mut keep = 0;
        for (_, d) in rows.iter_mut() {
            if held >= limit {
                break;
            }
            *d = (*d).min(limit - held);
            held += *d;
            keep += 1;
        }
        rows.truncate(keep);
        for row in std::mem::take(&mut part.top) {
            out.push((self.content.unstrip(&row, &self.partition, key), -1));
            self.content.release(&row);
        }
        let mut packer = RowPacker::new();
        let mut top = VecDeque::with_capacity(held as usize);
        for (row, d) in rows {
            let stripped = self.content.strip(&row, &self.partition, &mut packer);
            let stripped = self.content.intern(stripped);
            for _ in 1..d {
                top.push_back(self.content.intern(stripped.clone()));
            }
            top.push_back(stripped);
            out.push((row, d));
        }
        part.top = top;
    }

    /// Every row of one partition: the partition side's rows under `key`,
    /// each paired with the other side's rows under its join key.
    fn enumerate(
        &self,
        key: &Row,
        join: &Join,
        by_partition: &Index,
        other: &Index,
    ) -> Result<Vec<(Row, Diff)>, EvalError> {
        let Some((group, _)) = by_partition.get(key) else { return Ok(Vec::new()) };
        join.pairs_of(group.iter(), self.left, other)
    }
}

/// Held rows with their partition columns set to NULL, stored once per
/// distinct row across partitions: a feed's post fanned out to a thousand
/// followers is one buffer, not a thousand. A row is stored whole (not
/// shared) when a partition column is a double or a numeric, whose key
/// form (an integral double packs as an integer, a numeric drops its
/// display scale) would not give its bytes back.
#[derive(Debug, Default)]
struct Content {
    /// Each shared row with the number of held entries using it.
    rows: HashMap<Row, u32, Hasher>,
    /// Scratch: the column spans of the row being stripped or unstripped,
    /// of its partition key, and the packer of unstripped rows (no
    /// allocation per row pushed out of a full window).
    spans: Vec<(u32, u32)>,
    key_spans: Vec<(u32, u32)>,
    packer: RowPacker,
}

impl Content {
    /// `row` with its partition columns NULL, or `row` itself when one is a
    /// double.
    fn strip(&mut self, row: &Row, partition: &[usize], packer: &mut RowPacker) -> Row {
        if let [c] = *partition {
            // One partition column (a feed's owner): the bytes around it
            // copied whole, NULL between.
            let bytes = row.as_bytes();
            let at = RowRef::from(row).prefix_len(c);
            let column = RowRef::from_prefix(&bytes[at..], bytes.len() - at);
            if matches!(column.iter().next(), Some(Datum::Float(_) | Datum::Numeric(_))) {
                return row.clone();
            }
            let end = at + column.prefix_len(1);
            packer.clear();
            packer.extend_from_ref(RowRef::from_prefix(bytes, at));
            packer.push(&Datum::Null);
            packer.extend_from_ref(RowRef::from_prefix(&bytes[end..], bytes.len() - end));
            return packer.finish();
        }
        let spans = &mut self.spans;
        spans.clear();
        row.spans(spans);
        // Equal values whose key form loses their display (3.0 packs as 3,
        // numeric 1.50 as 1.5) are kept whole.
        if partition.iter().any(|&c| matches!(row.get(c), Datum::Float(_) | Datum::Numeric(_))) {
            return row.clone();
        }
        for (c, &span) in spans.iter().enumerate() {
            if partition.contains(&c) {
                packer.push(&Datum::Null);
            } else {
                packer.push_encoded(row, span);
            }
        }
        packer.finish()
    }

    /// The shared copy of `stripped` (one more entry uses it).
    fn intern(&mut self, stripped: Row) -> Row {
        // A short row (a feed's reference) lives in its handle: nothing to
        // share, and no table entry.
        if stripped.heap_size() == 0 {
            return stripped;
        }
        match self.rows.get_key_value_mut(&stripped) {
            Some((shared, count)) => {
                *count += 1;
                shared.clone()
            }
            None => {
                self.rows.insert(stripped.clone(), 1);
                stripped
            }
        }
    }

    /// One entry no longer uses `stripped`.
    fn release(&mut self, stripped: &Row) {
        if stripped.heap_size() == 0 {
            return;
        }
        if let Some(count) = self.rows.get_mut(stripped) {
            *count -= 1;
            if *count == 0 {
                self.rows.remove(stripped);
            }
        }
    }

    /// The whole row of a held one: NULL partition columns take the
    /// partition's values from its key (`key` holds them, packed in
    /// partition order).
    fn unstrip(&mut self, held: &Row, partition: &[usize], key: &Row) -> Row {
        let Content { spans, key_spans, packer, .. } = self;
        key_spans.clear();
        key.spans(key_spans);
        spans.clear();
        held.spans(spans);
        for (c, &span) in spans.iter().enumerate() {
            match partition.iter().position(|&p| p == c) {
                Some(i) if held.get(c).is_null() => packer.push_encoded(key, key_spans[i]),
                _ => packer.push_encoded(held, span),
            }
        }
        packer.finish()
    }
}

/// The indexes of `keys` ordered by key bytes, then index: each key's
/// indexes adjacent, in input order. Sorted as 16-byte words (each key's
/// first 16 bytes, zero-padded, big-endian: a feed's packed partition
/// fits) with the index, so the sort moves and compares integers; only
/// runs whose words tie while their keys differ (keys longer than 16
/// bytes, or one a zero-padded prefix of another) are compared whole.
fn group_by_key(keys: &[Row]) -> Vec<u32> {
    let word = |key: &Row| {
        let bytes = key.as_bytes();
        let mut padded = [0; 16];
        let n = bytes.len().min(16);
        padded[..n].copy_from_slice(&bytes[..n]);
        u128::from_be_bytes(padded)
    };
    let mut keyed: Vec<(u128, u32)> = keys.iter().enumerate().map(|(i, k)| (word(k), i as u32)).collect();
    keyed.sort_unstable();
    let mut start = 0;
    while start < keyed.len() {
        let w = keyed[start].0;
        let end = start + keyed[start..].iter().take_while(|(x, _)| *x == w).count();
        let first = &keys[keyed[start].1 as usize];
        if keyed[start + 1..end].iter().any(|&(_, i)| keys[i as usize] != *first) {
            keyed[start..end].sort_unstable_by(|a, b| {
                keys[a.1 as usize].as_bytes().cmp(keys[b.1 as usize].as_bytes()).then(a.1.cmp(&b.1))
            });
        }
        start = end;
    }
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Where `row` is in `top` (`Ok`: one of its copies) or would go
/// (`Err`): the ends first (a feed's new post goes first, an old one past
/// the end), then a binary search. `top` is a ring buffer, so a row placed
/// first moves nothing.
fn locate(top: &VecDeque<Row>, order: &[SortKey], row: &Row) -> Result<usize, usize> {
    let Some(first) = top.front() else { return Err(0) };
    match compare(order, row, first) {
        Ordering::Less => return Err(0),
        Ordering::Equal => return Ok(0),
        Ordering::Greater => {}
    }
    let last = top.back().expect("not empty");
    match compare(order, row, last) {
        Ordering::Greater => Err(top.len()),
        Ordering::Equal => Ok(top.len() - 1),
        Ordering::Less => top.binary_search_by(|r| compare(order, r, row)),
    }
}

/// The copies of the row at `at` in `top`: the range `start..end` of the
/// equal rows around it (usually `at..at + 1`).
fn copies(top: &VecDeque<Row>, at: usize) -> (usize, usize) {
    let row = &top[at];
    let start = at - top.range(..at).rev().take_while(|r| *r == row).count();
    let end = at + 1 + top.range(at + 1..).take_while(|r| *r == row).count();
    (start, end)
}

/// Sorts rows in the operator's order, reading each row's order columns once.
fn sort(rows: &mut Vec<(Row, Diff)>, order: &[SortKey]) {
    let mut keyed: Vec<(Vec<Datum<'_>>, usize)> =
        rows.iter().enumerate().map(|(i, (r, _))| (order.iter().map(|k| r.get(k.column)).collect(), i)).collect();
    keyed.sort_unstable_by(|(x, i), (y, j)| {
        compare_datums(order, x, y).then_with(|| rows[*i].0.as_bytes().cmp(rows[*j].0.as_bytes()))
    });
    let permutation: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    let mut taken: Vec<Option<(Row, Diff)>> = std::mem::take(rows).into_iter().map(Some).collect();
    rows.extend(permutation.into_iter().map(|i| taken[i].take().expect("a permutation")));
}

/// The `order` terms of two rows, read as datums (`x[i]` is term `i`'s column).
fn compare_datums(order: &[SortKey], x: &[Datum<'_>], y: &[Datum<'_>]) -> Ordering {
    for ((key, a), b) in order.iter().zip(x).zip(y) {
        let o = compare_term(key, a, b);
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn compare_term(key: &SortKey, x: &Datum<'_>, y: &Datum<'_>) -> Ordering {
    match (x.is_null(), y.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) if key.nulls_first => Ordering::Less,
        (true, false) => Ordering::Greater,
        (false, true) if key.nulls_first => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) if key.descending => y.total_cmp(x),
        (false, false) => x.total_cmp(y),
    }
}

/// The operator's order: the `order` terms, then the rows' bytes.
fn compare(order: &[SortKey], a: &Row, b: &Row) -> Ordering {
    for key in order {
        let o = compare_term(key, &a.get(key.column), &b.get(key.column));
        if o != Ordering::Equal {
            return o;
        }
    }
    a.cmp(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: i64) -> Row {
        Row::pack([Datum::Int(v)])
    }

    /// The batch's changes are grouped by their packed partition key: each
    /// key's indexes adjacent and in input order, keys in byte order, also
    /// for keys longer than the 16 bytes sorted as a word and keys that
    /// differ only in trailing zero bytes.
    #[test]
    fn changes_group_by_key() {
        // Keys as bytes (only their bytes are compared).
        let raw = |bytes: &[u8]| RowRef::from_prefix(bytes, bytes.len()).to_row();
        let long = |tail: u8| raw(&[[7u8; 20].as_slice(), &[tail]].concat());
        let keys =
            vec![long(2), row(5), long(1), raw(&[1, 2]), row(5), raw(&[1, 2, 0]), long(2), raw(&[1, 2]), row(-3)];
        let got = group_by_key(&keys);
        let mut want: Vec<u32> = (0..keys.len() as u32).collect();
        want.sort_by(|&a, &b| keys[a as usize].as_bytes().cmp(keys[b as usize].as_bytes()).then(a.cmp(&b)));
        assert_eq!(got, want);
    }

    /// Stripping a row's one partition column copies the bytes around it
    /// and puts NULL there (the whole row kept when the value is a double
    /// or a numeric).
    #[test]
    fn strip_one_column_nulls_it() {
        let mut content = Content::default();
        let mut packer = RowPacker::new();
        let text = Datum::owned_text("a body long enough to live on the heap, not in the handle");
        for c in 0..4 {
            let datums = [Datum::Int(42), text.clone(), Datum::Null, Datum::Int(-7)];
            let mut stripped = datums.clone();
            stripped[c] = Datum::Null;
            let row = Row::pack(datums.iter());
            assert_eq!(content.strip(&row, &[c], &mut packer), Row::pack(stripped.iter()), "column {c}");
            // Two columns take the general path: the same bytes.
            let both = content.strip(&row, &[c, (c + 1) % 4], &mut packer);
            stripped[(c + 1) % 4] = Datum::Null;
            assert_eq!(both, Row::pack(stripped.iter()));
        }
        let double = Row::pack([Datum::Int(1), Datum::Float(3.0)].iter());
        assert_eq!(content.strip(&double, &[1], &mut packer), double);
    }

    /// Held copies are adjacent rows: `locate` finds one of a row's copies
    /// (or where it would go) and `copies` the whole run around it, at the
    /// ends and inside, with the ring buffer wrapped (rows placed first).
    #[test]
    fn copies_are_found_as_one_run() {
        let order = [SortKey { column: 0, descending: false, nulls_first: false }];
        let mut top = VecDeque::with_capacity(8);
        for v in [1, 1, 2, 3, 3, 3, 5] {
            top.push_back(row(v));
        }
        // Wrap the ring: take the first row off and put it back first.
        let first = top.pop_front().expect("a row");
        top.push_front(first);
        let run = |v: i64| locate(&top, &order, &row(v)).map(|at| copies(&top, at));
        assert_eq!(run(1), Ok((0, 2)));
        assert_eq!(run(2), Ok((2, 3)));
        assert_eq!(run(3), Ok((3, 6)));
        assert_eq!(run(5), Ok((6, 7)));
        assert_eq!(run(0), Err(0));
        assert_eq!(run(4), Err(6));
        assert_eq!(run(9), Err(7));
    }
}
