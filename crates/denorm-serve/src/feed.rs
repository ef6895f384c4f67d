//! Feed views: partitions served in order by merging the rows fanned out on
//! write with the content of the celebrities a partition follows (fan-out
//! on read).
//!
//! ```text
//!  GET /views/home_feed?owner_id=eq.42&order=created_at.desc&limit=20
//!
//!  rows (materialized)           range owner_id = 42 ──────────────┐
//!  parts[1] (celebrity_edges)    range owner_id = 42 → f1, f2, …     │ k-way merge by the
//!  parts[0] (celebrity_content)  range author = f1 (owner_id := 42) ─┤ ordered key, first
//!                                range author = f2 (owner_id := 42) ─┘ `retain` rows, filters,
//!                                                                     offset, limit
//! ```
//!
//! A feed's published view holds three [`ViewRows`](crate::ViewRows): its
//! rows (the materialized, fanned-out rows, stored with the partition
//! column NULL so that a post's copies share one buffer: the read puts the
//! requested partition back) and two parts, the celebrities' content
//! (stored once, the partition column holding the author's key) and the
//! celebrity edges `(partition, fan)`. The rows and the content are
//! keyed by an *ordered key*: the partition value packed as for equality
//! (so a partition is a range of the index), then the order columns encoded
//! so that byte order is the feed's order (descending columns inverted,
//! NULLs placed as the order says). Rows tied on the order share a key and
//! sit under it in byte order (the order denorm-core's bounded top-k
//! retains them in). Within a partition the index is therefore already in
//! the served order, and the suffix after the partition is comparable
//! across the partition's own rows and any celebrity's content: a read is a
//! k-way merge that stops after `offset + limit` matching rows.
//!
//! A feed whose content has a key among its columns ([`FeedInfo::reference`])
//! fans out *references*: its rows keep the partition, the order columns
//! and the key (NULL elsewhere, a row short enough to live in its handle),
//! and a third part, [`CONTENT`], holds the other authors' content once,
//! keyed by that key. The merge joins each reference it reaches to its
//! content (one lookup), so a post's edit is one content row for every
//! reader's page.
//!
//! The served order of a feed is the request's `order` terms, then the
//! feed's `order_by`; rows tied on both come in an unspecified but stable
//! order (the defining query's `ORDER BY … LIMIT` leaves ties unspecified
//! too: end `order_by` with a unique column). A request without
//! `order`, or whose `order` is a prefix of `order_by` (the usual
//! `order=created_at.desc`), is served by the merge directly; any other
//! order reads the whole (retained) partition and sorts it.
//!
//! `retain = N` bounds a partition to its first N rows in the feed's
//! order, whichever path they took: the rows fanned out on write are
//! stored N per partition at most (the dataflow's bounded top-k), and a
//! read merges them with the celebrities' content and cuts the merge at N.
//! Filters, order and paging apply within that window, so reads within it
//! are exact; a read past it (a large `offset`, a keyset page beyond the
//! N-th row, `limit` > N) is truncated at the window, never an error.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use denorm_types::{Datum, Diff, Row, RowPacker, RowRef};

use crate::query::{row_order, BadParameter, Match, OrderTerm, Query};
use crate::state::{PublishedView, ViewInfo};

/// Index of the celebrities' content in [`PublishedView::parts`] + 1, as
/// [`Publisher::apply_part`](crate::Publisher::apply_part) numbers parts
/// (0 is the view's own rows: the materialized, fanned-out rows).
pub const CELEBRITY_CONTENT: usize = 1;
/// The celebrity edges `(partition, fan)`, as numbered for `apply_part`.
pub const CELEBRITY_EDGES: usize = 2;
/// A feed fanning out references: the other authors' content, stored once
/// and keyed by its key ([`FeedInfo::reference`]), as numbered for
/// `apply_part`.
pub const CONTENT: usize = 3;
/// How many parts a feed view has besides its rows.
pub const PARTS: usize = 3;

/// What the serving layer knows about a feed view ([`ViewInfo::feed`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FeedInfo {
    /// The partition column (a column index of the view).
    pub partition: usize,
    /// The feed's order (`order_by`), with its NULL placement.
    pub order: Vec<OrderTerm>,
    /// Rows served per partition, at most.
    pub retain: Option<usize>,
    /// The fan-out degree above which content is merged at read time.
    pub fanout_limit: u64,
    /// The edge table's fan-out column (e.g. `followee_id`), for `/views`.
    pub fan_column: String,
    /// `Some(key)`: the rows fanned out are references (the partition, the
    /// order columns and the content's unique `key` columns, NULL
    /// elsewhere) and the content is the [`CONTENT`] part, keyed by `key`;
    /// a read joins them. `None`: the fanned-out rows are whole.
    pub reference: Option<Vec<usize>>,
}

impl FeedInfo {
    /// The ordered key of a row of the materialized rows or of the
    /// celebrities' content (see the module documentation).
    pub fn row_key(&self, row: &Row) -> Vec<u8> {
        let mut out = Vec::new();
        self.row_key_into(row, &mut out, &mut RowPacker::new());
        out
    }

    /// [`FeedInfo::row_key`] written into `out` (cleared first), `packer`
    /// as scratch: no allocation once both have grown.
    pub(crate) fn row_key_into(&self, row: &Row, out: &mut Vec<u8>, packer: &mut RowPacker) {
        out.clear();
        packer.clear();
        packer.push_key(&row.get(self.partition));
        out.extend_from_slice(packer.packed_bytes(0, packer.row_end()));
        packer.clear();
        self.encode_order(row, out);
    }

    /// The ordered key's suffix after the partition (the `order_by`
    /// columns encoded), written into `out` (cleared first): comparable
    /// across partitions. A stored row (partition column NULL) has its
    /// whole row's suffix: `order_by` never names the partition.
    pub(crate) fn suffix_into(&self, row: &Row, out: &mut Vec<u8>) {
        out.clear();
        self.encode_order(row, out);
    }

    fn encode_order(&self, row: &Row, out: &mut Vec<u8>) {
        for term in &self.order {
            encode(out, &row.get(term.column), term.descending, term.nulls_first);
        }
    }
}

impl FeedInfo {
    /// A materialized row as stored: its partition column NULL (the read
    /// puts the requested partition back), so that every reader's copy of
    /// one post is one shared buffer. A row whose partition value is a
    /// double or a numeric is stored whole: values equal to the requested
    /// one may display differently (`3.0`, `1.50`).
    pub(crate) fn strip(&self, row: &Row, packer: &mut RowPacker) -> Row {
        if matches!(row.get(self.partition), Datum::Null | Datum::Float(_) | Datum::Numeric(_)) {
            return row.clone();
        }
        let at = RowRef::from(row).prefix_len(self.partition);
        let end = RowRef::from(row).prefix_len(self.partition + 1);
        let (start, end) = (at as u32, end as u32);
        let bytes = row.as_bytes();
        packer.clear();
        packer.extend_from_ref(RowRef::from_prefix(bytes, start as usize));
        packer.push(&Datum::Null);
        packer.extend_from_ref(RowRef::from_prefix(&bytes[end as usize..], bytes.len() - end as usize));
        packer.finish()
    }
}

impl FeedInfo {
    /// A stored row with its partition column put back (the inverse of
    /// [`FeedInfo::strip`]); `partition` is the value of the row's key.
    fn unstrip(&self, row: &Row, partition: &Datum<'_>) -> Row {
        if partition.is_null() || !row.get(self.partition).is_null() {
            return row.clone();
        }
        let mut datums = row.unpack();
        datums[self.partition] = partition.clone();
        Row::pack(datums.iter())
    }
}

/// A feed view's rows (its fanned-out rows, part 0) as the engine produced
/// them: each stored row with its partition column put back from its key,
/// for the sinks, which store whole rows.
pub fn rows(view: &PublishedView, feed: &FeedInfo) -> Vec<(Row, Diff)> {
    let mut out = Vec::with_capacity(usize::try_from(view.rows.len()).unwrap_or(0));
    let mut packer = RowPacker::new();
    for (key, rows) in stored(view) {
        // The partition's packed value.
        let partition = RowRef::from_prefix(key, key.len()).iter().next().unwrap_or(Datum::Null);
        for (row, diff) in crate::rows::counted(rows.iter()) {
            if feed.reference.is_none() {
                out.push((feed.unstrip(row, &partition), diff));
                continue;
            }
            // The reference's partition (NULL: the key's) into its content.
            let p = match row.get(feed.partition) {
                Datum::Null => partition.clone(),
                stored => stored,
            };
            for (content, times) in resolve(view, feed, row, &mut packer) {
                let mut datums = content.unpack();
                datums[feed.partition] = p.clone();
                out.push((Row::pack(datums.iter()), diff * times));
            }
        }
    }
    out
}

/// One part of a feed view as the engine produced it — what
/// [`Publisher::apply_part`](crate::Publisher::apply_part) takes back (a
/// checkpoint saves it, a restart applies it): part 0 its fanned-out rows
/// with the partition put back (references stay references), the others
/// ([`CELEBRITY_CONTENT`], [`CELEBRITY_EDGES`], [`CONTENT`]) as stored.
pub fn part_rows(view: &PublishedView, feed: &FeedInfo, part: usize) -> Vec<(Row, Diff)> {
    if part > 0 {
        return view.parts.get(part - 1).map_or_else(Vec::new, |p| p.iter().map(|(r, d)| (r.clone(), d)).collect());
    }
    let mut out = Vec::with_capacity(usize::try_from(view.rows.len()).unwrap_or(0));
    for (key, rows) in stored(view) {
        // The partition's packed value.
        let partition = RowRef::from_prefix(key, key.len()).iter().next().unwrap_or(Datum::Null);
        out.extend(crate::rows::counted(rows.iter()).map(|(row, diff)| (feed.unstrip(row, &partition), diff)));
    }
    out
}

/// A feed's stored (fanned-out) rows: each partition's packed value with
/// its rows in the feed's order (see [`crate::rows`]'s feed layout).
fn stored(view: &PublishedView) -> impl Iterator<Item = (&[u8], crate::rows::PartitionRows<'_>)> {
    view.rows.feed().into_iter().flat_map(|f| f.partitions())
}

/// The whole rows a stored row stands for: itself, or for a reference the
/// content under its key (one row: the key is unique; none only if the
/// published state is inconsistent), each with its multiplicity. The
/// partition column is as stored (NULL, or the content's fan-out key).
fn resolve<'a>(
    view: &'a PublishedView,
    feed: &FeedInfo,
    row: &'a Row,
    packer: &mut RowPacker,
) -> impl Iterator<Item = (&'a Row, Diff)> + 'a {
    let found: &'a [(Row, Diff)] = match (&feed.reference, view.parts.get(2)) {
        (Some(key), Some(content)) => content.get(&crate::rows::pack_row_key(key, row, packer)),
        _ => &[],
    };
    let whole = feed.reference.is_none();
    found.iter().map(|(r, d)| (r, *d)).chain(whole.then_some((row, 1)))
}

/// A feed's changes of one batch as whole rows (what a sink stores), from
/// the changes to its fanned-out rows (`rows`, part 0) and to its content
/// (`content`, [`CONTENT`]), with `view` as published after the batch.
///
/// A retracted reference stands for the content the batch retracted under
/// its key, an inserted one for the published content. Content edited
/// under an unchanged reference (a body, an author's name) changes every
/// stored copy of it while no reference changed: the published references
/// are scanned for its key (O(stored rows), only for a batch with such an
/// edit, only when a sink asks), each holder's copy replaced; the batch's
/// own references to it then stand for the old content, so that a holder
/// that came or went in the same batch is counted once.
pub fn whole_changes(
    view: &PublishedView,
    feed: &FeedInfo,
    rows: &[(Row, Diff)],
    content: &[(Row, Diff)],
) -> Vec<(Row, Diff)> {
    let (Some(key), Some(current)) = (&feed.reference, view.parts.get(2)) else { return rows.to_vec() };
    let mut packer = RowPacker::new();
    let mut gone: std::collections::HashMap<Row, &Row> = std::collections::HashMap::new();
    let mut added = std::collections::HashSet::new();
    for (row, diff) in content {
        let k = crate::rows::pack_row_key(key, row, &mut packer);
        if *diff < 0 {
            gone.insert(k, row);
        } else {
            added.insert(k);
        }
    }
    // The columns a reference keeps besides its partition: content that
    // keeps them keeps every reader's reference to it (an author changed
    // to another the reader follows too included).
    let referenced: Vec<usize> = feed.order.iter().map(|t| t.column).chain(key.iter().copied()).collect();
    let same_reference = |a: &Row, b: &Row| referenced.iter().all(|&c| a.get(c) == b.get(c));
    // Keys edited in place: (old, new) content.
    let mut edited: std::collections::HashMap<&Row, (&Row, &Row)> = std::collections::HashMap::new();
    for (k, old) in &gone {
        if !added.contains(k) {
            continue;
        }
        if let Some((new, _)) = current.get(k).first() {
            if new != *old && same_reference(new, old) {
                edited.insert(k, (*old, new));
            }
        }
    }
    let whole = |content: &Row, partition: Datum<'_>| {
        let mut datums = content.unpack();
        datums[feed.partition] = partition;
        Row::pack(datums.iter())
    };
    let mut out = Vec::with_capacity(rows.len());
    for (reference, diff) in rows {
        let k = crate::rows::pack_row_key(key, reference, &mut packer);
        let content = match gone.get(&k) {
            Some(old) if *diff < 0 || edited.contains_key(&k) => *old,
            _ => match current.get(&k).first() {
                Some((row, _)) => row,
                None => {
                    tracing::error!(view = %view.info.name, ?reference, "a reference without content (bug); not written");
                    continue;
                }
            },
        };
        out.push((whole(content, reference.get(feed.partition)), *diff));
    }
    if !edited.is_empty() {
        for (entry, slot) in stored(view) {
            let partition = RowRef::from_prefix(entry, entry.len()).iter().next().unwrap_or(Datum::Null);
            for (reference, diff) in crate::rows::counted(slot.iter()) {
                let k = crate::rows::pack_row_key(key, reference, &mut packer);
                if let Some((old, new)) = edited.get(&k) {
                    let p = match reference.get(feed.partition) {
                        Datum::Null => partition.clone(),
                        stored => stored,
                    };
                    out.push((whole(old, p.clone()), -diff));
                    out.push((whole(new, p), diff));
                }
            }
        }
    }
    out
}

/// A partition value packed as for equality (`3` and `3.0` alike): the
/// prefix of its keys.
fn key_prefix(datum: &Datum<'_>) -> Vec<u8> {
    let mut packer = RowPacker::new();
    packer.push_key(datum);
    packer.finish().as_bytes().to_vec()
}

/// Appends `datum` so that byte order is its order (`Datum::total_cmp`,
/// reversed when `descending`), NULL first or last as asked.
fn encode(out: &mut Vec<u8>, datum: &Datum<'_>, descending: bool, nulls_first: bool) {
    if datum.is_null() {
        out.push(if nulls_first { 0x00 } else { 0x02 });
        return;
    }
    out.push(0x01);
    let start = out.len();
    match datum {
        Datum::Null => unreachable!("handled above"),
        Datum::Bool(b) => out.extend_from_slice(&[0x10, u8::from(*b)]),
        // Numbers are the hot case (a feed's timestamps and ids): written
        // as one fixed-size array, inverted there when descending.
        Datum::Int(i) => {
            let x = *i as f64;
            // Below 2^53 in magnitude an integer is its double exactly:
            // no remainder (and no 128-bit conversion on the hot path).
            let remainder = if i.unsigned_abs() <= 1 << 53 { 0 } else { i128::from(*i) - x as i128 };
            out.extend_from_slice(&number(x, remainder, descending));
            return;
        }
        // NaN below every number (as `Datum::total_cmp`), above booleans.
        Datum::Float(x) if x.is_nan() => out.push(0x1f),
        Datum::Float(x) => {
            out.extend_from_slice(&number(*x, 0, descending));
            return;
        }
        Datum::Numeric(n) => {
            out.push(0x21);
            denorm_types::numeric::write_sort_key(*n, out);
        }
        Datum::Date(d) => {
            out.push(0x40);
            out.extend_from_slice(&((*d as u32) ^ 0x8000_0000).to_be_bytes());
        }
        Datum::Timestamp(t) | Datum::TimestampTz(t) => {
            out.push(0x40);
            out.extend_from_slice(&((*t as u64) ^ (1 << 63)).to_be_bytes());
        }
        Datum::Uuid(u) => {
            out.push(0x50);
            out.extend_from_slice(u);
        }
        // By span, as PostgreSQL orders intervals.
        Datum::Interval(i) => {
            out.push(0x60);
            out.extend_from_slice(&((i.span() as u128) ^ (1 << 127)).to_be_bytes());
        }
        Datum::Text(_) | Datum::Blob(_) => {
            // A BLOB sorts after all text.
            let (class, bytes) = match datum {
                Datum::Text(t) => (0x30, t.as_bytes()),
                Datum::Blob(b) => (0x38, b.as_ref()),
                _ => unreachable!("matched above"),
            };
            out.push(class);
            for &b in bytes {
                if b == 0 {
                    out.extend_from_slice(&[0x00, 0xff]);
                } else {
                    out.push(b);
                }
            }
            out.extend_from_slice(&[0x00, 0x00]);
        }
    }
    if descending {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
}

/// A number: its double (ordered bits), then the exact remainder of an
/// integer from its nearest double (below 2^10 in magnitude, a big-endian
/// i16 with its sign flipped), which orders integers that share a double
/// (above 2^53) and an integer against an integral double exactly, as
/// `Datum::total_cmp`. Rounding to the nearest double is monotonic, so the
/// double orders first. The class byte (0x20) leads; `descending` inverts
/// the whole (class included, as [`encode`] inverts after the NULL marker).
fn number(x: f64, remainder: i128, descending: bool) -> [u8; 11] {
    let x = if x == 0.0 { 0.0 } else { x };
    let bits = x.to_bits();
    let ordered = if bits >> 63 == 1 { !bits } else { bits ^ (1 << 63) };
    let remainder = i16::try_from(remainder).unwrap_or(if remainder < 0 { i16::MIN } else { i16::MAX });
    let mut bytes = [0x20; 11];
    bytes[1..9].copy_from_slice(&ordered.to_be_bytes());
    bytes[9..].copy_from_slice(&((remainder as u16) ^ 0x8000).to_be_bytes());
    if descending {
        bytes = bytes.map(|b| !b);
    }
    bytes
}

/// A feed read: the matching rows in the served order (one entry per
/// distinct row, trimmed to what `offset + limit` needs), and how many
/// celebrities' content was merged in.
#[derive(Debug)]
pub struct FeedRead<'a> {
    pub matches: Vec<Match<'a>>,
    pub merges: u64,
}

/// The partition value of a read: the first `eq` filter on the partition
/// column; a read without one is refused.
fn partition_value<'q>(info: &ViewInfo, feed: &FeedInfo, query: &'q Query) -> Result<&'q Datum<'static>, BadParameter> {
    query
        .filters
        .iter()
        .find_map(|f| match &f.op {
            crate::query::Op::Eq(v) if f.column == feed.partition && !f.negated => Some(v),
            _ => None,
        })
        .ok_or_else(|| {
            let column = &info.columns[feed.partition].name;
            BadParameter {
                parameter: column.clone(),
                message: format!("a read of feed view \"{}\" needs {column}=eq.<value>", info.name),
                hint: Some(format!(
                    "a feed is read one partition at a time, e.g. ?{column}=eq.42&limit=20 (served in order_by order)"
                )),
            }
        })
}

/// One row of an ordered stream: its ordered key's suffix after the
/// partition, the row, its multiplicity.
type Entry<'a> = (Cow<'a, [u8]>, &'a Row, Diff);

/// One ordered stream of the merge: a partition's stored rows, or a range
/// of an ordered index (a celebrity's content).
struct Stream<'a> {
    entries: Box<dyn Iterator<Item = Entry<'a>> + 'a>,
    /// The partition datum to put in the rows: the reader's (celebrity
    /// content holds its author there, stored rows NULL).
    partition: Option<Datum<'a>>,
    /// Each row counts this many times (the reader's edges to the celebrity).
    times: Diff,
}

/// The entries of an ordered index under `prefix`, each row with its key's
/// suffix after the prefix.
fn index_stream<'a>(index: &'a crate::ViewRows, prefix: Vec<u8>) -> Box<dyn Iterator<Item = Entry<'a>> + 'a> {
    let skip = prefix.len();
    Box::new(
        index
            .entries_prefixed(&prefix)
            .flat_map(move |(key, slot)| slot.iter().map(move |(row, n)| (Cow::Borrowed(&key[skip..]), row, *n))),
    )
}

/// Runs `query` over feed `view`: see the module documentation.
pub fn execute<'a>(view: &'a PublishedView, feed: &FeedInfo, query: &Query) -> Result<FeedRead<'a>, BadParameter> {
    let x = partition_value(&view.info, feed, query)?;
    let prefix = key_prefix(x);
    let own = view.rows.feed().map(|f| f.partition(&prefix)).unwrap_or_default();
    let order = feed.clone();
    let own = crate::rows::counted(own.iter()).map(move |(row, n)| {
        let mut suffix = Vec::new();
        order.suffix_into(row, &mut suffix);
        (Cow::Owned(suffix), row, n)
    });
    let mut streams = vec![Stream { entries: Box::new(own), partition: Some(x.clone()), times: 1 }];
    if let (Some(content), Some(edges)) = (view.parts.first(), view.parts.get(1)) {
        for (edge, times) in edges.entries_prefixed(&prefix).flat_map(|(_, slot)| slot.iter()) {
            let entries = index_stream(content, key_prefix(&edge.get(1)));
            streams.push(Stream { entries, partition: Some(edge.get(0)), times: *times });
        }
    }
    let merges = (streams.len() - 1) as u64;

    let fast = query.order.len() <= feed.order.len() && feed.order[..query.order.len()] == query.order[..];
    let wanted = query.limit.map_or(usize::MAX, |l| l.saturating_add(query.offset));
    let mut window = feed.retain.unwrap_or(usize::MAX);
    let mut passing = 0usize;
    let mut matches = Vec::new();
    let mut heads: Vec<Option<(&'a Row, Diff)>> = Vec::with_capacity(streams.len());
    let mut resolved: Vec<(&'a Row, Diff, Option<Datum<'a>>)> = Vec::new();
    let mut packer = RowPacker::new();
    let mut heap = BinaryHeap::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        let head = s.entries.next().map(|(key, row, n)| {
            heap.push(Reverse((key, i)));
            (row, n)
        });
        heads.push(head);
    }
    // Rows tied on their key come stream by stream (the stored rows
    // first), each stream's in its order.
    'merge: while let Some(Reverse((_, i))) = heap.pop() {
        let (row, count) = heads[i].take().expect("a stream in the heap has a head");
        let stream = &mut streams[i];
        // The rows fanned out (stream 0) may be references: their content.
        resolved.clear();
        if i == 0 {
            // A reference's content holds its author there: the
            // partition is the stored row's (NULL: the reader's).
            let stored = feed.reference.is_some().then(|| row.get(feed.partition)).filter(|d| !d.is_null());
            let partition = stored.or_else(|| stream.partition.clone());
            resolved.extend(resolve(view, feed, row, &mut packer).map(|(r, d)| (r, d * count, partition.clone())));
        } else {
            resolved.push((row, count, stream.partition.clone()));
        }
        for (row, count, partition) in resolved.drain(..) {
            if window == 0 || (fast && passing >= wanted) {
                break 'merge;
            }
            let count = usize::try_from(count * stream.times).unwrap_or(0).min(window);
            window -= count;
            let mut datums = row.unpack();
            // Celebrities' content and references' content hold their
            // author there, stored rows NULL (see `FeedInfo::strip`): the
            // reader's partition.
            if let Some(p) = partition {
                if i > 0 || feed.reference.is_some() || datums[feed.partition].is_null() {
                    datums[feed.partition] = p;
                }
            }
            if crate::query::matches(query, &datums) {
                passing = passing.saturating_add(count);
                matches.push(Match { datums, count: count as Diff });
            }
        }
        if let Some((key, row, n)) = stream.entries.next() {
            heap.push(Reverse((key, i)));
            heads[i] = Some((row, n));
        }
    }
    if !fast {
        let order: Vec<OrderTerm> = query.order.iter().chain(&feed.order).copied().collect();
        let compare = |a: &Match<'_>, b: &Match<'_>| row_order(&[], &order, &a.datums, &b.datums);
        matches.sort_by(compare);
        let mut total = 0usize;
        let keep = matches
            .iter()
            .position(|m| {
                total = total.saturating_add(m.count as usize);
                total >= wanted
            })
            .map_or(matches.len(), |at| at + 1);
        matches.truncate(keep);
    }
    Ok(FeedRead { matches, merges })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn datum() -> impl Strategy<Value = Datum<'static>> {
        prop_oneof![
            Just(Datum::Null),
            any::<bool>().prop_map(Datum::Bool),
            any::<i64>().prop_map(Datum::Int),
            (-5i64..5).prop_map(Datum::Int),
            (-5i64..5).prop_map(|i| Datum::Float(i as f64)),
            any::<f64>().prop_map(Datum::Float),
            // Around 2^53, where an integer stops being its double exactly
            // (the encoding's remainder starts there).
            prop_oneof![
                Just(9007199254740993i64),
                Just(i64::MAX),
                Just(i64::MIN),
                (-2i64..=2).prop_map(|d| (1 << 53) + d),
                (-2i64..=2).prop_map(|d| -(1 << 53) + d),
            ]
            .prop_map(Datum::Int),
            prop_oneof![Just(9007199254740992.0f64), Just(9.223_372_036_854_776e18), Just(-0.0), Just(f64::NAN)]
                .prop_map(Datum::Float),
            "[a\\x00b]{0,3}".prop_map(Datum::owned_text),
            proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(255)], 0..3)
                .prop_map(|b| Datum::Blob(b.into())),
        ]
    }

    fn term(descending: bool, nulls_first: bool) -> OrderTerm {
        OrderTerm { column: 0, descending, nulls_first, collation: None }
    }

    proptest! {
        /// Byte order of the encoding is the served order of one column.
        #[test]
        fn encoding_orders_like_row_order(a in datum(), b in datum(), descending: bool, nulls_first: bool) {
            let t = term(descending, nulls_first);
            let (mut ka, mut kb) = (Vec::new(), Vec::new());
            encode(&mut ka, &a, descending, nulls_first);
            encode(&mut kb, &b, descending, nulls_first);
            let want = row_order(&[], &[t], std::slice::from_ref(&a), std::slice::from_ref(&b));
            prop_assert_eq!(ka.cmp(&kb), want, "{:?} {:?}", a, b);
        }

        /// Keys of whole rows (partition first) order like the feed's order
        /// within a partition.
        #[test]
        fn row_keys_order_like_the_feed(
            a in proptest::collection::vec(datum(), 3),
            b in proptest::collection::vec(datum(), 3),
            d1: bool, n1: bool, d2: bool, n2: bool,
        ) {
            let feed = FeedInfo {
                partition: 0,
                order: vec![OrderTerm { column: 2, descending: d1, nulls_first: n1, collation: None }, OrderTerm { column: 1, descending: d2, nulls_first: n2, collation: None }],
                ..FeedInfo::default()
            };
            let mut b = b;
            b[0] = a[0].clone();
            let (ra, rb) = (Row::pack(a.iter().cloned()), Row::pack(b.iter().cloned()));
            let (ka, kb) = (feed.row_key(&ra), feed.row_key(&rb));
            // Keys hold the order columns only: compare those.
            let terms: Vec<OrderTerm> =
                feed.order.iter().enumerate().map(|(i, t)| OrderTerm { column: i, ..*t }).collect();
            let (oa, ob): (Vec<_>, Vec<_>) = feed.order.iter().map(|t| (a[t.column].clone(), b[t.column].clone())).unzip();
            let want = row_order(&[], &terms, &oa, &ob);
            prop_assert_eq!(ka.cmp(&kb), want);
        }
    }

    /// `rows` gives the sinks the rows the engine published, though the
    /// publisher stores them without their partition column (whole when
    /// the partition is NULL, a double or a numeric).
    #[test]
    fn rows_put_the_partition_back() {
        use crate::state::{channel, ColumnInfo};
        use denorm_types::{Position, ScalarType};
        let column = |name: &str, ty| ColumnInfo { name: name.into(), ty };
        let feed = FeedInfo {
            partition: 0,
            order: vec![OrderTerm { column: 1, descending: true, nulls_first: true, collation: None }],
            ..FeedInfo::default()
        };
        let info = ViewInfo {
            name: "home".into(),
            columns: vec![column("owner", ScalarType::Any), column("post", ScalarType::Int)],
            key: vec![0],
            feed: Some(feed.clone()),
            ..ViewInfo::default()
        };
        let (mut publisher, reader) = channel(vec![info]);
        let mut rows: Vec<(Row, Diff)> =
            [Datum::Int(1), Datum::text("a"), Datum::Null, Datum::Float(2.5), Datum::Int(1)]
                .into_iter()
                .enumerate()
                .map(|(i, owner)| (Row::pack([owner, Datum::Int(i as i64)].iter()), 1))
                .collect();
        publisher.apply_part(0, 0, &rows);
        publisher.publish(Position(1), &[]);
        let published = reader.snapshot();
        let mut got = super::rows(&published.views[0], &feed);
        got.sort();
        rows.sort();
        assert_eq!(got, rows);
    }
}
