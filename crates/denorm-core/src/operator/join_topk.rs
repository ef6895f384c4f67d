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
//! compared by reading their order columns, so the state is one
//! `(Row, Diff)` per held row (a `Row` clone shares its buffer with the row
//! emitted downstream), plus one key and two counters per partition.
//!
//! Cost: an insertion or deletion O(log k) comparisons plus a move of the
//! partition's held rows (at most k handles); a refill O(n log n) for the
//! partition's n rows, paid when a batch deletes held rows from a partition
//! that has more than k (a deleted or hidden post, an unfollow, an author
//! whose content moves elsewhere).

use std::cmp::Ordering;

use hashbrown::HashMap;

use denorm_expr::{EvalError, SortKey};
use denorm_types::{consolidate_unordered, Diff, Row, RowPacker};

use crate::index::Index;
use crate::operator::Join;
use crate::Hasher;

#[derive(Debug, Default)]
struct Part {
    /// A prefix of the partition's rows in order, with multiplicities; at
    /// most `limit` copies in all.
    top: Vec<(Row, Diff)>,
    /// Copies in `top`.
    held: Diff,
    /// Copies in the partition.
    total: Diff,
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
}

/// What a bounded top-k holds, for tests and state-size reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopKState {
    pub partitions: usize,
    /// Held rows (copies) in all partitions.
    pub rows: usize,
    /// Held rows (copies) of the largest partition.
    pub largest: usize,
}

impl JoinTopK {
    pub(crate) fn new(partition: Vec<usize>, order: Vec<SortKey>, limit: usize, left: bool) -> Self {
        JoinTopK { partition, order, limit, left, partitions: HashMap::default() }
    }

    /// Whether the partition comes from the join's left side (the join's
    /// right arrangement is then the other side).
    pub(crate) fn partition_on_left(&self) -> bool {
        self.left
    }

    pub(crate) fn state(&self) -> TopKState {
        let mut state = TopKState { partitions: self.partitions.len(), ..TopKState::default() };
        for p in self.partitions.values() {
            state.rows += p.held as usize;
            state.largest = state.largest.max(p.held as usize);
        }
        state
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
        let mut by_key: HashMap<Row, Vec<(&Row, Diff)>, Hasher> = HashMap::default();
        for (row, diff) in input {
            for &c in &self.partition {
                packer.push_key_column(row, c);
            }
            by_key.entry(packer.finish()).or_default().push((row, *diff));
        }
        let mut out = Vec::new();
        let limit = self.limit as Diff;
        for (key, changes) in by_key {
            let part = self.partitions.entry(key.clone()).or_default();
            for (row, diff) in changes {
                let at = part.top.binary_search_by(|(r, _)| compare(&self.order, r, row));
                // Before this change, is every row of the partition held?
                let whole = part.held == part.total;
                part.total += diff;
                if diff > 0 {
                    // Every copy of a held row before the last one is held;
                    // the last may be held partially, so more copies of it
                    // (or rows after it) go in only when the partition is
                    // held whole.
                    let inside = match at {
                        Ok(i) => i + 1 < part.top.len() || whole,
                        Err(i) => i < part.top.len() || whole,
                    };
                    if !inside {
                        continue;
                    }
                    match at {
                        Ok(i) => part.top[i].1 += diff,
                        Err(i) => part.top.insert(i, (row.clone(), diff)),
                    }
                    part.held += diff;
                    out.push((row.clone(), diff));
                    trim(part, limit, &mut out);
                } else if let Ok(i) = at {
                    let removed = part.top[i].1.min(-diff);
                    part.top[i].1 -= removed;
                    part.held -= removed;
                    out.push((part.top[i].0.clone(), -removed));
                    if part.top[i].1 == 0 {
                        part.top.remove(i);
                    }
                }
            }
            if part.held < part.total.min(limit) {
                let rows = self.enumerate(&key, join, by_partition, other)?;
                let part = self.partitions.get_mut(&key).expect("entry made above");
                refill(part, rows, &self.order, limit, &mut out);
            }
            if self.partitions.get(&key).is_some_and(|p| p.total <= 0 && p.top.is_empty()) {
                self.partitions.remove(&key);
            }
        }
        consolidate_unordered(&mut out);
        Ok(out)
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

/// Drops copies from the end of `top` until it holds at most `limit`.
fn trim(part: &mut Part, limit: Diff, out: &mut Vec<(Row, Diff)>) {
    while part.held > limit {
        let last = part.top.last_mut().expect("held copies are in top");
        let take = last.1.min(part.held - limit);
        last.1 -= take;
        part.held -= take;
        out.push((last.0.clone(), -take));
        if last.1 == 0 {
            part.top.pop();
        }
    }
}

/// Replaces `top` with the first `limit` copies of `rows` (the whole
/// partition), emitting the difference.
fn refill(part: &mut Part, mut rows: Vec<(Row, Diff)>, order: &[SortKey], limit: Diff, out: &mut Vec<(Row, Diff)>) {
    consolidate_unordered(&mut rows);
    rows.retain(|(_, d)| *d > 0);
    part.total = rows.iter().map(|(_, d)| d).sum();
    rows.sort_unstable_by(|(a, _), (b, _)| compare(order, a, b));
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
    for (row, d) in part.top.drain(..) {
        out.push((row, -d));
    }
    out.extend(rows.iter().cloned());
    part.top = rows;
    part.held = held;
}

/// The operator's order: the `order` terms, then the rows' bytes.
fn compare(order: &[SortKey], a: &Row, b: &Row) -> Ordering {
    for key in order {
        let (x, y) = (a.get(key.column), b.get(key.column));
        let o = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if key.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if key.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) if key.descending => y.total_cmp(&x),
            (false, false) => x.total_cmp(&y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.cmp(b)
}
