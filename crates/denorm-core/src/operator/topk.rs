//! Top-k per partition: `ROW_NUMBER() OVER (PARTITION BY … ORDER BY …) <= k`.
//!
//! ```text
//!  (row, diff) ──partition key──► Partition { rows: BTreeMap<(sort bytes, row), count>,
//!                                             boundary: key of the k-th copy }
//!                 changes below the boundary (or a partition under k rows):
//!                   old top-k from the first changed key on  ─┐
//!                   apply the changes                          ├─► new − old, consolidated
//!                   new top-k from the first changed key on  ─┘
//!                 changes past the boundary: state only, no output
//! ```
//!
//! Every row of a partition is kept, not only the top k: a deletion inside
//! the top k must bring the next row in. State is therefore one entry per
//! distinct input row (its order-preserving sort bytes beside the row), plus
//! one key per partition for the boundary.
//!
//! Cost per change: O(log n) to place it in its partition (n = the
//! partition's rows). A batch that touches a partition's top k also walks
//! that partition's first k rows once, O(k), and emits only the rows whose
//! presence or row number changed: an insertion above the k-th row brings it
//! in and pushes the k-th out (renumbering the rows in between when the row
//! number is kept); a deletion does the reverse; an update that moves a row
//! within the top k renumbers only the rows between its old and new places.
//! Changes past the k-th row emit nothing.
//!
//! Sort keys are encoded so that byte order is the requested order (see
//! [`encode_sort_key`]); rows that tie on it are ordered by their own bytes.
//!
//! `RANK()` and `DENSE_RANK()` number a row by its sort bytes alone (1 + the
//! copies, or the distinct sort keys, strictly before it), so ties share a
//! number and every row tied at the k-th place is kept. Their boundary is
//! the first entry whose number exceeds k: a change at or past its sort key
//! cannot renumber or bring in anything (its number is at least the
//! boundary's). A batch that reaches above it walks the partition's kept
//! rows, O(kept rows), re-emitting those from its first changed entry on
//! (earlier rows keep their numbers); the consolidation leaves only what
//! changed.

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

use hashbrown::HashMap;

use denorm_expr::{Numbering, Shift, SortKey};
use denorm_types::{consolidate_unordered, Datum, Diff, Row, RowPacker};

use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};
use crate::{memory, Hasher};

/// A partition's entry: the encoded sort key, then the row (ties).
type Key = (Box<[u8]>, Row);

#[derive(Debug, Default)]
struct Partition {
    /// Every row of the partition with its multiplicity, in output order.
    rows: BTreeMap<Key, Diff>,
    /// The entry holding the k-th copy; `None` while the partition has
    /// fewer than k rows (then every change reaches the output). For ranks:
    /// the first entry numbered past k.
    boundary: Option<Key>,
}

#[derive(Debug)]
pub(crate) struct TopK {
    partition: Vec<usize>,
    order: Vec<SortKey>,
    emit: Emit,
    partitions: HashMap<Row, Partition, Hasher>,
}

/// What a partition's top k emits: its copies numbered at most `limit`,
/// with their number appended when `rank`.
#[derive(Debug, Clone, Copy)]
struct Emit {
    limit: usize,
    rank: bool,
    numbering: Numbering,
}

impl TopK {
    pub(crate) fn new(
        partition: Vec<usize>,
        order: Vec<SortKey>,
        limit: usize,
        rank: bool,
        numbering: Numbering,
    ) -> Self {
        TopK { partition, order, emit: Emit { limit, rank, numbering }, partitions: HashMap::default() }
    }

    /// The partition columns, the sort columns and k.
    pub(crate) fn shape(&self) -> (&[usize], &[SortKey], usize) {
        (&self.partition, &self.order, self.emit.limit)
    }

    /// Live heap bytes: the partition table, each partition's key, its
    /// ordered map (nodes estimated past 11 rows, see [`crate::memory`]),
    /// each entry's sort bytes and row, and the boundary's sort bytes (its
    /// row is the boundary entry's, one buffer).
    pub(crate) fn state_bytes(&self) -> usize {
        let partitions: usize = self
            .partitions
            .iter()
            .map(|(key, partition)| {
                let entries: usize =
                    partition.rows.keys().map(|(sort, row)| memory::slice(sort) + memory::row(row)).sum();
                let boundary = partition.boundary.as_ref().map_or(0, |(sort, _)| memory::slice(sort));
                memory::row(key) + memory::btree_map(&partition.rows) + entries + boundary
            })
            .sum();
        self.partitions.allocation_size() + partitions
    }

    /// Checkpoint: every kept row with its multiplicity (the state is a
    /// function of them: [`TopK::load`] steps them in).
    pub(crate) fn save(&self, w: &mut Writer) {
        let n = self.partitions.values().map(|p| p.rows.len()).sum();
        let rows = self.partitions.values().flat_map(|p| p.rows.iter().map(|((_, row), d)| (row, *d)));
        write_changes(w, n, rows);
    }

    /// Loads what [`TopK::save`] wrote into an empty operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        self.step(&r.changes()?);
        Ok(())
    }

    /// `input` must be consolidated (each row once).
    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
        let mut by_partition: HashMap<Row, Vec<(Key, Diff)>, Hasher> = HashMap::default();
        let mut packer = RowPacker::new();
        let mut bytes = Vec::new();
        for (row, diff) in input {
            for &c in &self.partition {
                packer.push_key_column(row, c);
            }
            let partition = packer.finish();
            encode_sort_key(row, &self.order, &mut bytes);
            by_partition.entry(partition).or_default().push(((bytes.as_slice().into(), row.clone()), *diff));
        }
        let mut out = Vec::new();
        for (key, changes) in by_partition {
            let partition = self.partitions.entry(key.clone()).or_default();
            self.emit.update(partition, changes, &mut out);
            if partition.rows.is_empty() {
                self.partitions.remove(&key);
            }
        }
        consolidate_unordered(&mut out);
        out
    }
}

impl Emit {
    fn update(&self, partition: &mut Partition, changes: Vec<(Key, Diff)>, out: &mut Vec<(Row, Diff)>) {
        if let Numbering::Shift(shift) = self.numbering {
            return self.update_shifted(shift, partition, changes, out);
        }
        if self.numbering != Numbering::RowNumber {
            return self.update_ranked(partition, changes, out);
        }
        let Some(first) = changes.iter().map(|(k, _)| k).min().cloned() else { return };
        let affected = self.limit > 0 && partition.boundary.as_ref().is_none_or(|b| first <= *b);
        if affected {
            self.emit(partition, &first, -1, out);
        }
        for (key, diff) in changes {
            let count = partition.rows.entry(key.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                partition.rows.remove(&key);
            }
        }
        if affected {
            self.emit(partition, &first, 1, out);
            partition.boundary = self.boundary(partition);
        }
    }

    /// The output rows of the partition's top k from `from` on, with `sign`.
    fn emit(&self, partition: &Partition, from: &Key, sign: Diff, out: &mut Vec<(Row, Diff)>) {
        let limit = self.limit as Diff;
        let mut rank: Diff = 0;
        for (_, &count) in partition.rows.range(..from.clone()) {
            rank += count.max(0);
            if rank >= limit {
                return;
            }
        }
        let mut packer = RowPacker::new();
        for ((_, row), &count) in partition.rows.range(from.clone()..) {
            if rank >= limit {
                break;
            }
            let take = count.max(0).min(limit - rank);
            if self.rank {
                for n in rank + 1..=rank + take {
                    packer.extend_from_row(row);
                    packer.push(&Datum::Int(n));
                    out.push((packer.finish(), sign));
                }
            } else if take > 0 {
                out.push((row.clone(), sign * take));
            }
            rank += take;
        }
    }

    /// `update` for `RANK()` / `DENSE_RANK()`.
    fn update_ranked(&self, partition: &mut Partition, changes: Vec<(Key, Diff)>, out: &mut Vec<(Row, Diff)>) {
        let Some(first) = changes.iter().map(|(k, _)| k).min().cloned() else { return };
        let affected = self.limit > 0 && partition.boundary.as_ref().is_none_or(|b| first.0 < b.0);
        if affected {
            self.emit_ranked(partition, &first, -1, out);
        }
        for (key, diff) in changes {
            let count = partition.rows.entry(key.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                partition.rows.remove(&key);
            }
        }
        if affected {
            partition.boundary = self.emit_ranked(partition, &first, 1, out);
        }
    }

    /// The partition's rows numbered at most k from `from` on, with `sign`
    /// (a row before the first change keeps its number: it depends only on
    /// the rows before it); returns the first entry numbered past k (the
    /// new boundary).
    fn emit_ranked(&self, partition: &Partition, from: &Key, sign: Diff, out: &mut Vec<(Row, Diff)>) -> Option<Key> {
        let limit = self.limit as Diff;
        let (mut before, mut distinct, mut number): (Diff, Diff, Diff) = (0, 0, 0);
        let mut previous: Option<&[u8]> = None;
        let mut packer = RowPacker::new();
        for (key, &count) in &partition.rows {
            let count = count.max(0);
            if count == 0 {
                continue;
            }
            if previous != Some(&key.0) {
                distinct += 1;
                number = match self.numbering {
                    Numbering::DenseRank => distinct,
                    _ => before + 1,
                };
                previous = Some(&key.0);
            }
            if number > limit {
                return Some(key.clone());
            }
            if key >= from {
                if self.rank {
                    packer.extend_from_row(&key.1);
                    packer.push(&Datum::Int(number));
                    out.push((packer.finish(), sign * count));
                } else {
                    out.push((key.1.clone(), sign * count));
                }
            }
            before += count;
        }
        None
    }

    /// `update` for `LAG`/`LEAD`: re-emits the rows from `|offset|` copies
    /// before the first change (LEAD) or the first change (LAG) to the last
    /// change (LEAD) or `|offset|` copies after it (LAG). The entries before
    /// the first change and after the last are the same before and after
    /// the batch, so the rows outside that span keep their neighbours.
    fn update_shifted(
        &self,
        shift: Shift,
        partition: &mut Partition,
        changes: Vec<(Key, Diff)>,
        out: &mut Vec<(Row, Diff)>,
    ) {
        let (Some(first), Some(last)) =
            (changes.iter().map(|(k, _)| k).min().cloned(), changes.iter().map(|(k, _)| k).max().cloned())
        else {
            return;
        };
        let reach = shift.offset.unsigned_abs();
        let after = |key: &Key| partition.rows.range((Excluded(key.clone()), Unbounded));
        let (from, to) = match shift.offset {
            0 => (first, Some(last)),
            1.. => {
                let head = partition.rows.keys().next().filter(|k| **k < first).cloned();
                let from = nth_copy(partition.rows.range(..first.clone()).rev(), reach).or(head).unwrap_or(first);
                (from, Some(last))
            }
            _ => (first, nth_copy(after(&last), reach)),
        };
        self.emit_shifted(shift, partition, &from, to.as_ref(), -1, out);
        for (key, diff) in changes {
            let count = partition.rows.entry(key.clone()).or_insert(0);
            *count += diff;
            if *count == 0 {
                partition.rows.remove(&key);
            }
        }
        self.emit_shifted(shift, partition, &from, to.as_ref(), 1, out);
    }

    /// Each copy of the entries from `from` to `to` (inclusive; `None`: to
    /// the partition's end) with its shifted value appended (when `rank`).
    fn emit_shifted(
        &self,
        shift: Shift,
        partition: &Partition,
        from: &Key,
        to: Option<&Key>,
        sign: Diff,
        out: &mut Vec<(Row, Diff)>,
    ) {
        let reach = usize::try_from(shift.offset.unsigned_abs()).unwrap_or(usize::MAX);
        let mut rows: Vec<&Row> = if shift.offset < 0 {
            partition.rows.range(..from.clone()).rev().flat_map(copies).take(reach).collect()
        } else {
            Vec::new()
        };
        rows.reverse();
        let start = rows.len();
        let span = partition.rows.range(from.clone()..).take_while(|(k, _)| to.is_none_or(|t| *k <= t));
        rows.extend(span.flat_map(copies));
        let end = rows.len();
        if let (1.., Some(t)) = (shift.offset, to) {
            rows.extend(partition.rows.range((Excluded(t.clone()), Unbounded)).flat_map(copies).take(reach));
        }
        let mut packer = RowPacker::new();
        for (i, row) in rows.iter().enumerate().take(end).skip(start) {
            if self.rank {
                packer.extend_from_row(row);
                packer.push(&shift.pick(&rows, i));
                out.push((packer.finish(), sign));
            } else {
                out.push(((*row).clone(), sign));
            }
        }
    }

    fn boundary(&self, partition: &Partition) -> Option<Key> {
        let mut rank: Diff = 0;
        for (key, &count) in &partition.rows {
            rank += count.max(0);
            if rank >= self.limit as Diff {
                return Some(key.clone());
            }
        }
        None
    }
}

/// An entry's row once per copy.
fn copies<'a>((key, &count): (&'a Key, &'a Diff)) -> std::iter::RepeatN<&'a Row> {
    std::iter::repeat_n(&key.1, usize::try_from(count).unwrap_or(0))
}

/// The entry holding the `n`-th copy (n ≥ 1) of `entries`, in their order,
/// or `None` when they hold fewer copies (or `n` is 0).
fn nth_copy<'a>(entries: impl Iterator<Item = (&'a Key, &'a Diff)>, n: u64) -> Option<Key> {
    if n == 0 {
        return None;
    }
    let mut seen: u64 = 0;
    for (key, &count) in entries {
        seen = seen.saturating_add(u64::try_from(count).unwrap_or(0));
        if seen >= n {
            return Some(key.clone());
        }
    }
    None
}

/// Appends to `out` (after clearing it) bytes whose lexicographic order is
/// the SQL order of `row` by `order`: per term a tag placing NULL first or
/// last, then the value; a descending term is bit-inverted. Every term's
/// encoding is prefix-free, so terms never bleed into each other.
///
/// * numbers (integers and doubles, compared exactly by value): the nearest
///   double `d` (order-preserving bits), then the exact remainder
///   `value − d` as a big-endian i16 with its sign bit flipped (rounding to
///   the nearest double is monotonic, so `d` orders first and the remainder,
///   below 2^10 in magnitude, breaks ties between integers beyond 2^53);
/// * booleans as the numbers 0 and 1;
/// * text bytewise, each 0x00 escaped as 0x00 0xFF, ended by 0x00 0x00;
///   BLOBs the same after a higher class byte;
/// * numerics (PostgreSQL, never mixed with other numbers in one column: the
///   planner casts CASE/COALESCE branches to the common type) exactly: a
///   sign class, then for non-zero values the decimal exponent and the
///   significant digits (1–10 per byte, trailing zeros dropped, so `1.5` and
///   `1.50` encode alike) ended by 0, all inverted for negative values;
/// * dates and timestamps as their integer with the sign bit flipped, UUIDs
///   as their 16 bytes, intervals as their span (months of 30 days) with
///   the sign bit flipped.
pub(crate) fn encode_sort_key(row: &Row, order: &[SortKey], out: &mut Vec<u8>) {
    out.clear();
    for key in order {
        let start = out.len();
        let datum = row.get(key.column);
        // Before a descending term's inversion, NULL must sit at the other end.
        let null_low = key.nulls_first != key.descending;
        match datum {
            Datum::Null => out.push(if null_low { 0x00 } else { 0xFF }),
            Datum::Bool(b) => encode_number(f64::from(u8::from(b)), 0, out),
            Datum::Int(i) => {
                let d = i as f64;
                encode_number(d, i128::from(i) - d as i128, out);
            }
            Datum::Float(x) => encode_number(x, 0, out),
            Datum::Numeric(n) => encode_numeric(n, out),
            Datum::Date(d) => {
                out.push(0x40);
                out.extend_from_slice(&((d as u32) ^ 0x8000_0000).to_be_bytes());
            }
            Datum::Timestamp(t) | Datum::TimestampTz(t) => {
                out.push(0x40);
                out.extend_from_slice(&((t as u64) ^ (1 << 63)).to_be_bytes());
            }
            Datum::Uuid(u) => {
                out.push(0x50);
                out.extend_from_slice(&u);
            }
            Datum::Interval(i) => {
                out.push(0x60);
                out.extend_from_slice(&((i.span() as u128) ^ (1 << 127)).to_be_bytes());
            }
            Datum::Text(t) => encode_bytes(0x30, t.as_bytes(), out),
            Datum::Blob(b) => encode_bytes(0x38, &b, out),
        }
        if key.descending {
            out[start..].iter_mut().for_each(|b| *b = !*b);
        }
    }
}

/// Text or a BLOB (which sorts after all text): bytewise, each 0x00
/// escaped as 0x00 0xFF, ended by 0x00 0x00.
pub(crate) fn encode_bytes(class: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(class);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

pub(crate) fn encode_numeric(n: denorm_types::numeric::Decimal, out: &mut Vec<u8>) {
    out.push(0x21);
    denorm_types::numeric::write_sort_key(n, out);
}

pub(crate) fn encode_number(d: f64, remainder: i128, out: &mut Vec<u8>) {
    out.push(0x20);
    // -0.0 equals 0.0 in SQL.
    let d = if d == 0.0 { 0.0 } else { d };
    let bits = d.to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits | 1 << 63 };
    out.extend_from_slice(&ordered.to_be_bytes());
    let remainder = i16::try_from(remainder).expect("an i64 is within 2^10 of its nearest double");
    out.extend_from_slice(&((remainder as u16) ^ 0x8000).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use denorm_types::Value;

    use super::*;

    fn key(column: usize, descending: bool, nulls_first: bool) -> SortKey {
        SortKey { column, descending, nulls_first }
    }

    fn encoded(v: &Value, k: SortKey) -> Vec<u8> {
        let mut out = Vec::new();
        encode_sort_key(&Row::pack([v.clone()]), &[SortKey { column: 0, ..k }], &mut out);
        out
    }

    /// The order the encoding must reproduce, written directly.
    fn sql_order(a: &Value, b: &Value, k: SortKey) -> Ordering {
        let o = match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => return if k.nulls_first { Ordering::Less } else { Ordering::Greater },
            (false, true) => return if k.nulls_first { Ordering::Greater } else { Ordering::Less },
            _ => a.total_cmp(b),
        };
        if k.descending {
            o.reverse()
        } else {
            o
        }
    }

    #[test]
    fn encoding_orders_like_sql() {
        let values: Vec<Value> = vec![
            Datum::Null,
            Datum::Int(i64::MIN),
            Datum::Int(i64::MIN + 1),
            Datum::Float(-9.3e18),
            Datum::Float(-1.5),
            Datum::Int(-1),
            Datum::Float(-0.0),
            Datum::Int(0),
            Datum::Float(0.25),
            Datum::Int(1),
            Datum::Float(1.0),
            Datum::Int(9_007_199_254_740_993),
            Datum::Float(9_007_199_254_740_992.0),
            Datum::Int(i64::MAX - 1),
            Datum::Int(i64::MAX),
            Datum::Float(9.3e18),
        ];
        let texts: Vec<Value> = ["", "\0", "\0a", "a", "a\0", "ab", "b", "é"].iter().map(|&t| Value::from(t)).collect();
        let numerics: Vec<Value> = [
            "-79228162514264337593543950335",
            "-100",
            "-12.5",
            "-12.45",
            "-1",
            "-0.001",
            "0",
            "0.00",
            "0.0000000000000000000000000001",
            "0.001",
            "0.0010",
            "1",
            "1.5",
            "1.50",
            "1.51",
            "9.99",
            "10",
            "12345678901234567890.123456789",
            "79228162514264337593543950335",
        ]
        .iter()
        .map(|t| Datum::Numeric(denorm_types::numeric::parse(t).unwrap()))
        .chain([Datum::Null])
        .collect();
        let dates: Vec<Value> = [i32::MIN, -800_000, -1, 0, 1, 19_000, i32::MAX]
            .into_iter()
            .map(Datum::Date)
            .chain([Datum::Null])
            .collect();
        let stamps: Vec<Value> = [i64::MIN, -1, 0, 1, i64::MAX].into_iter().map(Datum::Timestamp).collect();
        let uuids: Vec<Value> = [[0u8; 16], [1; 16], [0xff; 16]].into_iter().map(Datum::Uuid).collect();
        // SQLite's storage classes mixed, BLOBs after text.
        let blob = |b: &[u8]| Datum::Blob(b.to_vec().into());
        let classes: Vec<Value> = vec![
            Datum::Null,
            Datum::Int(1),
            Datum::Float(1.5),
            "a".into(),
            "a\0".into(),
            blob(b""),
            blob(b"\0"),
            blob(b"a"),
        ];
        for set in [&values, &texts, &numerics, &dates, &stamps, &uuids, &classes] {
            for k in [key(0, false, true), key(0, false, false), key(0, true, true), key(0, true, false)] {
                for a in set.iter() {
                    for b in set.iter() {
                        assert_eq!(encoded(a, k).cmp(&encoded(b, k)), sql_order(a, b, k), "{a:?} vs {b:?} by {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn deletion_in_the_top_k_brings_the_next_row_in() {
        let row = |id: i64, score: i64| Row::pack([Datum::Int(id), Datum::Int(score)]);
        let mut top = TopK::new(vec![], vec![key(1, true, false)], 2, true, Numbering::RowNumber);
        let with_rank = |id, score, n| Row::pack([Datum::Int(id), Datum::Int(score), Datum::Int(n)]);
        let mut out = top.step(&[(row(1, 10), 1), (row(2, 20), 1), (row(3, 5), 1)]);
        out.sort();
        let mut want = vec![(with_rank(2, 20, 1), 1), (with_rank(1, 10, 2), 1)];
        want.sort();
        assert_eq!(out, want);
        // Past the boundary: nothing.
        assert!(top.step(&[(row(4, 1), 1)]).is_empty());
        let mut out = top.step(&[(row(2, 20), -1)]);
        out.sort();
        let mut want = vec![
            (with_rank(2, 20, 1), -1),
            (with_rank(1, 10, 2), -1),
            (with_rank(1, 10, 1), 1),
            (with_rank(3, 5, 2), 1),
        ];
        want.sort();
        assert_eq!(out, want);
    }

    #[test]
    fn ranks_keep_every_tie_at_the_boundary() {
        let row = |id: i64, score: i64| Row::pack([Datum::Int(id), Datum::Int(score)]);
        let ranked = |id, score, n| Row::pack([Datum::Int(id), Datum::Int(score), Datum::Int(n)]);
        let sorted = |mut v: Vec<(Row, Diff)>| {
            v.sort();
            v
        };
        let mut rank = TopK::new(vec![], vec![key(1, true, false)], 2, true, Numbering::Rank);
        let mut dense = TopK::new(vec![], vec![key(1, true, false)], 2, true, Numbering::DenseRank);
        let rows = [(row(1, 20), 1), (row(2, 20), 1), (row(3, 10), 1), (row(4, 5), 1)];
        // RANK: 1, 1, 3, 4; DENSE_RANK: 1, 1, 2, 3.
        assert_eq!(rank.step(&rows), sorted(vec![(ranked(1, 20, 1), 1), (ranked(2, 20, 1), 1)]));
        assert_eq!(
            sorted(dense.step(&rows)),
            sorted(vec![(ranked(1, 20, 1), 1), (ranked(2, 20, 1), 1), (ranked(3, 10, 2), 1)])
        );
        // Deleting one of the tied rows brings the next in under RANK.
        assert_eq!(sorted(rank.step(&[(row(2, 20), -1)])), sorted(vec![(ranked(2, 20, 1), -1), (ranked(3, 10, 2), 1)]));
        // A new tie at the boundary joins it; past the boundary nothing.
        assert_eq!(rank.step(&[(row(5, 10), 1)]), vec![(ranked(5, 10, 2), 1)]);
        assert!(rank.step(&[(row(6, 1), 1)]).is_empty());
        assert_eq!(dense.step(&[(row(5, 10), 1)]), vec![(ranked(5, 10, 2), 1)]);
    }
}
