//! GROUP BY with aggregates whose per-change cost does not depend on group
//! size: COUNT/SUM/AVG keep running totals (O(1)); MIN/MAX keep an ordered
//! multiset of values and COUNT(DISTINCT) a hashed one (O(log n) / O(1));
//! the JSON aggregates keep their rendered elements in order (O(log n), see
//! [`json`]).
//!
//! For every group a batch touches, the operator remembers the group's output
//! row before its first change, applies all changes, and emits the retraction
//! of the old row and the insertion of the new one when they differ.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hashbrown::{HashMap, HashTable};

use denorm_expr::{Aggregate, AggregateFunc, EvalError, Expr};
use denorm_types::numeric::{self, Decimal, NumericError};
use denorm_types::{Datum, Dialect, Diff, Row, RowPacker, RowRef, Value};

use crate::Hasher;

mod concat;
mod distinct;
mod json;
mod table;

use table::GroupTable;

/// A value ordered by SQL's total order, for MIN/MAX multisets.
#[derive(Debug, Clone)]
struct Ordered(Value);

impl PartialEq for Ordered {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Ordered {}
impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// An i128 stored as two 8-byte halves, so that a group's state is aligned
/// to 8 rather than 16 bytes and packs tighter into its hash table slot.
#[derive(Debug, Clone, Copy, Default)]
struct Wide {
    low: u64,
    high: i64,
}

impl Wide {
    fn get(self) -> i128 {
        (i128::from(self.high) << 64) | i128::from(self.low)
    }

    fn add(&mut self, value: i128) {
        let sum = self.get().wrapping_add(value);
        *self = Wide { low: sum as u64, high: (sum >> 64) as i64 };
    }
}

/// One aggregate's running state for one group. NULL arguments are ignored
/// by every aggregate but COUNT(*).
#[derive(Debug, Clone)]
enum Accumulator {
    Count(Diff),
    /// SUM/AVG while every value present is an integer (or a boolean):
    /// summed exactly in 128 bits, so a transient overflow that later
    /// retractions undo is harmless. Where it starts.
    SumInts {
        non_null: Diff,
        ints: Wide,
    },
    /// SUM/AVG while every value present is a double (or text SQLite reads
    /// as one).
    SumFloats {
        non_null: Diff,
        floats: f64,
    },
    /// SUM/AVG once integers and doubles meet in one group (SQLite's columns
    /// may mix them): kept apart, out of line so that the common kinds keep
    /// a group within one cache line.
    SumMixed(Box<MixedSum>),
    /// SUM/AVG of PostgreSQL numerics: the accumulator a `Sum` becomes at
    /// its first numeric value (a column's values all have one type).
    Numeric(Box<NumericSum>),
    Extreme(BTreeMap<Ordered, Diff>),
    Distinct(Box<HashMap<Row, Diff, Hasher>>),
    /// `json_group_array` / `json_group_object`: rendered elements in order.
    Json(json::Elements),
}

/// Integers summed exactly, doubles apart.
#[derive(Debug, Clone, Default)]
struct MixedSum {
    non_null: Diff,
    ints: Wide,
    floats: f64,
    float_count: Diff,
}

impl MixedSum {
    fn add(&mut self, value: &Datum<'_>, diff: Diff) {
        self.non_null += diff;
        match value {
            Datum::Int(i) => self.ints.add(i128::from(*i) * i128::from(diff)),
            Datum::Bool(b) => self.ints.add(i128::from(*b) * i128::from(diff)),
            other => {
                self.floats += other.as_f64().unwrap_or(0.0) * diff as f64;
                self.float_count += diff;
            }
        }
    }
}

/// Whether SUM/AVG add `value` as an integer (else as a double).
fn sums_as_integer(value: &Datum<'_>) -> bool {
    matches!(value, Datum::Int(_) | Datum::Bool(_))
}

fn as_integer(value: &Datum<'_>) -> i128 {
    match value {
        Datum::Int(i) => i128::from(*i),
        Datum::Bool(b) => i128::from(*b),
        _ => 0,
    }
}

/// An exact running sum of numerics and the multiset of their display
/// scales: PostgreSQL's SUM has the largest scale of the values summed, so
/// a retraction of the only `1.50` turns `4.00` back into `4.0`.
#[derive(Debug, Clone)]
struct NumericSum {
    non_null: Diff,
    /// The exact sum, at the largest scale ever added; an error once it
    /// went out of range (the view fails: PostgreSQL's numeric is unbounded).
    sum: Result<Decimal, NumericError>,
    /// (scale, how many values present have it), by scale; a column
    /// usually has one scale, so this is one entry, not one per scale.
    scales: Vec<(u8, Diff)>,
}

impl NumericSum {
    fn new() -> Self {
        NumericSum { non_null: 0, sum: Ok(Decimal::ZERO), scales: Vec::new() }
    }

    fn add(&mut self, value: Decimal, diff: Diff) {
        self.non_null += diff;
        let scale = value.scale() as u8;
        match self.scales.binary_search_by_key(&scale, |&(s, _)| s) {
            Ok(at) => {
                self.scales[at].1 += diff;
                if self.scales[at].1 == 0 {
                    self.scales.remove(at);
                }
            }
            Err(at) => self.scales.insert(at, (scale, diff)),
        }
        let times = numeric::from_parts(i128::from(diff), 0);
        self.sum = match (self.sum, times) {
            (Ok(sum), Ok(times)) => numeric::mul(value, times).and_then(|v| numeric::add(sum, v, false)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
    }

    /// The sum at the largest scale among the values present.
    fn total(&self) -> Result<Decimal, NumericError> {
        let sum = self.sum?;
        let scale = self.scales.last().map_or(0, |&(s, _)| u32::from(s));
        let drop = sum.scale().saturating_sub(scale);
        // Every value present has at most `scale` digits after the point.
        numeric::from_parts(sum.mantissa() / 10i128.pow(drop), sum.scale() - drop)
    }

    fn value(&self, func: AggregateFunc) -> Result<Value, EvalError> {
        if self.non_null == 0 {
            return Ok(Datum::Null);
        }
        let total = self.total()?;
        Ok(Datum::Numeric(match func {
            AggregateFunc::Avg => numeric::div(total, numeric::from_i64(self.non_null))?,
            _ => total,
        }))
    }
}

/// What one input row gives an accumulator.
enum Input<'r> {
    Value(Datum<'r>),
    /// A JSON aggregate's element, or `None` when the source skips the row.
    Json(Option<json::Entry>),
}

impl Accumulator {
    fn new(func: AggregateFunc) -> Self {
        match func {
            AggregateFunc::Count => Accumulator::Count(0),
            AggregateFunc::Sum | AggregateFunc::Avg => Accumulator::SumInts { non_null: 0, ints: Wide::default() },
            AggregateFunc::Min | AggregateFunc::Max => Accumulator::Extreme(BTreeMap::new()),
            AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct => Accumulator::Extreme(BTreeMap::new()),
            AggregateFunc::GroupConcat(_) => Accumulator::Json(BTreeMap::new()),
            AggregateFunc::CountDistinct => Accumulator::Distinct(Box::default()),
            AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. } => Accumulator::Json(BTreeMap::new()),
        }
    }

    fn update(&mut self, input: &mut Input<'_>, diff: Diff, packer: &mut RowPacker) {
        let value = match input {
            Input::Value(v) => v,
            Input::Json(entry) => {
                if let (Accumulator::Json(elements), Some(entry)) = (self, entry.take()) {
                    json::update(elements, entry, diff);
                }
                return;
            }
        };
        if value.is_null() {
            return;
        }
        // An empty sum takes the kind of its first value.
        let empty = match *self {
            Accumulator::SumInts { non_null: 0, ints } => ints.get() == 0,
            Accumulator::SumFloats { non_null: 0, floats } => floats == 0.0,
            _ => false,
        };
        if empty {
            *self = match &*value {
                Datum::Numeric(_) => Accumulator::Numeric(Box::new(NumericSum::new())),
                v if sums_as_integer(v) => Accumulator::SumInts { non_null: 0, ints: Wide::default() },
                _ => Accumulator::SumFloats { non_null: 0, floats: 0.0 },
            };
        }
        // A value of the other kind: integers and doubles are kept apart.
        let mixed = match *self {
            Accumulator::SumInts { non_null, ints } if !sums_as_integer(value) => {
                Some(MixedSum { non_null, ints, ..MixedSum::default() })
            }
            Accumulator::SumFloats { non_null, floats } if sums_as_integer(value) => {
                Some(MixedSum { non_null, floats, float_count: non_null, ..MixedSum::default() })
            }
            _ => None,
        };
        if let Some(mixed) = mixed {
            *self = Accumulator::SumMixed(Box::new(mixed));
        }
        match self {
            Accumulator::Numeric(sum) => match value {
                Datum::Numeric(n) => sum.add(*n, diff),
                Datum::Int(i) => sum.add(numeric::from_i64(*i), diff),
                _ => {}
            },
            Accumulator::Count(n) => *n += diff,
            Accumulator::SumInts { non_null, ints } => {
                *non_null += diff;
                ints.add(as_integer(value) * i128::from(diff));
            }
            Accumulator::SumFloats { non_null, floats } => {
                *non_null += diff;
                *floats += value.as_f64().unwrap_or(0.0) * diff as f64;
            }
            Accumulator::SumMixed(sum) => sum.add(value, diff),
            Accumulator::Extreme(values) => {
                let key = Ordered(value.clone().into_owned());
                let count = values.entry(key.clone()).or_insert(0);
                *count += diff;
                if *count == 0 {
                    values.remove(&key);
                }
            }
            Accumulator::Distinct(values) => {
                packer.push_key(value);
                let key = packer.finish();
                let count = values.entry(key.clone()).or_insert(0);
                *count += diff;
                if *count == 0 {
                    values.remove(&key);
                }
            }
            Accumulator::Json(_) => {}
        }
    }

    /// After all of a batch's changes to the group: a double sum with no
    /// double left drops its rounding residue. Not after each change: a
    /// batch need not be consolidated, and a count may pass through zero
    /// while a row's delete comes before its insert.
    fn settle(&mut self) {
        match self {
            Accumulator::SumFloats { non_null: 0, floats } => *floats = 0.0,
            Accumulator::SumMixed(sum) if sum.float_count == 0 => sum.floats = 0.0,
            _ => {}
        }
    }

    /// Pushes the aggregate's value onto `packer`: COUNT and the running
    /// sums directly, the others through [`Accumulator::value`].
    fn push_value(
        &self,
        func: AggregateFunc,
        rows: Diff,
        dialect: Dialect,
        packer: &mut RowPacker,
    ) -> Result<(), EvalError> {
        match self {
            Accumulator::Count(n) => packer.push_int(if rows == 0 { 0 } else { *n }),
            Accumulator::SumInts { non_null, ints } if *non_null != 0 => match func {
                AggregateFunc::Avg => packer.push_float(wide_to_f64(ints.get()) / *non_null as f64),
                _ => packer.push_int(i64::try_from(ints.get()).map_err(|_| EvalError::IntegerOverflow)?),
            },
            Accumulator::SumFloats { non_null, floats } if *non_null != 0 => match func {
                AggregateFunc::Avg => packer.push_float(floats / *non_null as f64),
                _ => packer.push_float(*floats),
            },
            _ => packer.push(&self.value(func, rows, dialect)?),
        }
        Ok(())
    }

    fn value(&self, func: AggregateFunc, rows: Diff, dialect: Dialect) -> Result<Value, EvalError> {
        Ok(match self {
            Accumulator::Count(n) => Datum::Int(*n),
            Accumulator::SumInts { non_null: 0, .. } | Accumulator::SumFloats { non_null: 0, .. } => Datum::Null,
            Accumulator::SumMixed(sum) if sum.non_null == 0 => Datum::Null,
            Accumulator::SumInts { non_null, ints } => match func {
                AggregateFunc::Avg => Datum::Float(wide_to_f64(ints.get()) / *non_null as f64),
                _ => Datum::Int(i64::try_from(ints.get()).map_err(|_| EvalError::IntegerOverflow)?),
            },
            Accumulator::SumFloats { non_null, floats } => match func {
                AggregateFunc::Avg => Datum::Float(floats / *non_null as f64),
                _ => Datum::Float(*floats),
            },
            Accumulator::SumMixed(sum) => {
                let ints = sum.ints.get();
                let total = wide_to_f64(ints) + sum.floats;
                match func {
                    AggregateFunc::Avg => Datum::Float(total / sum.non_null as f64),
                    _ if sum.float_count > 0 => Datum::Float(total),
                    _ => Datum::Int(i64::try_from(ints).map_err(|_| EvalError::IntegerOverflow)?),
                }
            }
            Accumulator::Numeric(sum) => sum.value(func)?,
            Accumulator::Extreme(values) if matches!(func, AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct) => {
                distinct::value(func, values.keys().map(|o| &o.0))?
            }
            Accumulator::Extreme(values) => {
                let v = if func == AggregateFunc::Min { values.keys().next() } else { values.keys().next_back() };
                v.map_or(Datum::Null, |o| o.0.clone())
            }
            Accumulator::Distinct(values) => Datum::Int(values.len() as i64),
            Accumulator::Json(elements) if matches!(func, AggregateFunc::GroupConcat(_)) => {
                concat::value(elements, matches!(func, AggregateFunc::GroupConcat(spec) if spec.distinct))
            }
            Accumulator::Json(elements) => json::value(func, elements, dialect),
        })
        .map(|v| if func == AggregateFunc::Count && rows == 0 { Datum::Int(0) } else { v })
    }
}

/// Byte equality for the short strings of group keys and aggregate rows:
/// inline, where `==` on slices is a call to `memcmp`.
#[inline]
fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() > 16 {
        return a == b;
    }
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Most sums fit 64 bits, whose conversion to a double is one instruction;
/// the 128-bit conversion is a library call, kept out of line so the
/// compiler does not compute it speculatively for every row.
fn wide_to_f64(value: i128) -> f64 {
    #[cold]
    #[inline(never)]
    fn slow(value: i128) -> f64 {
        value as f64
    }
    match i64::try_from(value) {
        Ok(v) => v as f64,
        Err(_) => slow(value),
    }
}

/// A group's accumulators; most groups need at most one (COUNT(*) needs
/// none, SUM(x) and AVG(x) share one), kept inline in the group's slot.
#[derive(Debug, Clone)]
enum Accumulators {
    One(Option<Accumulator>),
    Many(Box<[Accumulator]>),
}

impl Accumulators {
    fn as_mut_slice(&mut self) -> &mut [Accumulator] {
        match self {
            Accumulators::One(one) => one.as_mut_slice(),
            Accumulators::Many(many) => many,
        }
    }

    fn as_slice(&self) -> &[Accumulator] {
        match self {
            Accumulators::One(one) => one.as_slice(),
            Accumulators::Many(many) => many,
        }
    }
}

/// A group: its key (the group columns exactly as the rows carry them),
/// live row count and accumulators. One cache line for the common
/// aggregates (see the assertion below): its hash is not kept but computed
/// again from the key when the table grows or shifts a run.
#[derive(Debug, Clone)]
struct Group {
    key: Row,
    rows: Diff,
    accumulators: Accumulators,
}

const _: () = assert!(std::mem::size_of::<Option<Group>>() <= 64, "a group fits one cache line");

impl Group {
    fn new(key: Row, slots: &[Slot]) -> Self {
        let mut accumulators = slots.iter().map(|s| Accumulator::new(s.func));
        let accumulators = if slots.len() <= 1 {
            Accumulators::One(accumulators.next())
        } else {
            Accumulators::Many(accumulators.collect())
        };
        Group { key, rows: 0, accumulators }
    }
}

/// One accumulator per distinct (kind, argument): `SUM(x)` and `AVG(x)` read
/// the same running sum, `MIN(x)` and `MAX(x)` the same ordered multiset.
#[derive(Debug, Clone, PartialEq)]
struct Slot {
    func: AggregateFunc,
    arg: Option<Expr>,
}

/// Where an output aggregate's value comes from: the group's row count
/// (COUNT(*)) or an accumulator slot.
#[derive(Debug, Clone, Copy)]
struct Column {
    func: AggregateFunc,
    slot: Option<usize>,
}

/// The GROUP BY operator. Output rows are the group key columns followed by
/// one column per aggregate.
#[derive(Debug)]
pub(crate) struct Reduce {
    group_key: Vec<usize>,
    slots: Vec<Slot>,
    columns: Vec<Column>,
    dialect: Dialect,
    /// Whether every accumulator argument is a bare column, read straight
    /// from the packed row without decoding the others.
    bare_columns: bool,
    groups: GroupTable<Group>,
    hasher: Hasher,
    /// Whether the first batch has run (a global aggregate emits its row then).
    started: bool,
    packer: RowPacker,
    /// Per-batch scratch, kept to reuse its allocation.
    batch: Box<BatchScratch>,
    /// The batch's output rows, packed back to back and made rows at the end
    /// of the batch (see [`RowPacker::row_end`]).
    emitted: Emitted,
}

/// Output rows packed back to back, each with its diff.
#[derive(Debug, Default)]
struct Emitted {
    rows: RowPacker,
    spans: Vec<Span>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    diff: Diff,
    /// The span before is the same group's old row: when the two rows are
    /// equal, neither goes out.
    replaces: bool,
}

impl Emitted {
    /// Turns the packed rows into the batch's output and starts anew.
    fn take(&mut self) -> Vec<(Row, Diff)> {
        let Emitted { rows, spans } = self;
        rows.seal();
        // Drop the pairs whose old and new rows are equal, then make rows.
        let (mut read, mut kept) = (0, 0);
        while read < spans.len() {
            let span = spans[read];
            if let Some(next) = spans.get(read + 1).filter(|n| n.replaces) {
                if short_eq(rows.packed_bytes(span.start, span.end), rows.packed_bytes(next.start, next.end)) {
                    read += 2;
                    continue;
                }
            }
            spans[kept] = span;
            (read, kept) = (read + 1, kept + 1);
        }
        spans.truncate(kept);
        // Written in place: building each row apart and moving it in would
        // read back bytes just stored (a store-forwarding stall per row).
        let mut out: Vec<(Row, Diff)> = vec![(Row::empty(), 0); kept];
        for ((row, diff), span) in out.iter_mut().zip(spans.iter()) {
            rows.packed_row_into(span.start, span.end, row);
            *diff = span.diff;
        }
        rows.clear();
        spans.clear();
        out
    }

    /// Frees the buffers after a snapshot-sized batch (see
    /// [`BatchScratch::release_if_large`]).
    fn release_if_large(&mut self) {
        if self.spans.capacity() > KEEP_SCRATCH {
            *self = Emitted::default();
        }
    }
}

/// The batch in flight grouped by key: each distinct key once, in order of
/// first appearance, with its changes chained.
#[derive(Debug, Default)]
struct BatchScratch {
    /// Each change's group key: a byte range of the change's row when the
    /// group columns are one run of adjacent columns (the planner puts them
    /// first), else a range of `packed`.
    keys: Vec<(u32, u32)>,
    packed: Vec<Row>,
    hashes: Vec<u64>,
    /// Index of the next change with the same key (`END` ends a chain).
    next: Vec<u32>,
    /// (first change, last change) of each distinct key.
    chains: Vec<(u32, u32)>,
    /// Distinct key → its index in `chains`.
    local: HashTable<u32>,
}

const END: u32 = u32::MAX;

/// Per-batch buffers larger than this many entries are freed after their
/// batch (a snapshot), not kept for reuse.
const KEEP_SCRATCH: usize = 1 << 16;

/// How many groups ahead of the one being updated the table is asked to
/// bring a group's memory into cache.
const PREFETCH_AHEAD: usize = 8;

impl BatchScratch {
    /// The group key of change `i`, as packed bytes.
    fn key<'a>(&'a self, input: &'a [(Row, Diff)], i: usize) -> &'a [u8] {
        let (start, end) = self.keys[i];
        let row = if self.packed.is_empty() { &input[i].0 } else { &self.packed[i] };
        &row.as_bytes()[start as usize..end as usize]
    }

    /// Frees the scratch after a snapshot-sized batch, so that it does not
    /// stay allocated for the life of the dataflow; ordinary batches keep it
    /// for reuse.
    fn release_if_large(&mut self) {
        if self.keys.capacity() > KEEP_SCRATCH || self.local.capacity() > KEEP_SCRATCH {
            *self = BatchScratch::default();
        }
    }

    fn fill(&mut self, group_key: &[usize], input: &[(Row, Diff)], packer: &mut RowPacker, hasher: &Hasher) {
        self.keys.clear();
        self.packed.clear();
        self.hashes.clear();
        self.next.clear();
        self.chains.clear();
        self.local.clear();
        let run = group_key.windows(2).all(|w| w[1] == w[0] + 1).then(|| (group_key.first().copied(), group_key.len()));
        for (i, (row, _)) in input.iter().enumerate() {
            match run {
                Some((Some(first), count)) => {
                    let span = row.columns_span(first, count);
                    self.keys.push((span.start as u32, span.end as u32));
                }
                Some((None, _)) => self.keys.push((0, 0)),
                None => {
                    for &c in group_key {
                        packer.push_column(row, c);
                    }
                    let key = packer.finish();
                    self.keys.push((0, key.as_bytes().len() as u32));
                    self.packed.push(key);
                }
            }
            let key = self.key(input, i);
            let hash = hasher.hash_one(key);
            let i = i as u32;
            let first_key = |g: &u32| self.key(input, self.chains[*g as usize].0 as usize);
            let found = self.local.find(hash, |g| first_key(g) == key).copied();
            self.next.push(END);
            match found {
                Some(g) => {
                    let chain = &mut self.chains[g as usize];
                    self.next[chain.1 as usize] = i;
                    chain.1 = i;
                }
                None => {
                    let BatchScratch { local, chains, keys, packed, .. } = self;
                    let rehash = |g: &u32| {
                        let at = chains[*g as usize].0 as usize;
                        let row = if packed.is_empty() { &input[at].0 } else { &packed[at] };
                        hasher.hash_one(&row.as_bytes()[keys[at].0 as usize..keys[at].1 as usize])
                    };
                    local.insert_unique(hash, chains.len() as u32, rehash);
                    chains.push((i, i));
                }
            }
            self.hashes.push(hash);
        }
    }
}

impl Reduce {
    pub(crate) fn new(group_key: Vec<usize>, aggregates: Vec<Aggregate>, dialect: Dialect) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        let mut columns = Vec::new();
        for agg in aggregates {
            let func = match agg.func {
                AggregateFunc::Count if agg.arg.is_none() => {
                    columns.push(Column { func: agg.func, slot: None });
                    continue;
                }
                AggregateFunc::Avg => AggregateFunc::Sum,
                // The ordered multiset of values serves all four.
                AggregateFunc::Max | AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct => AggregateFunc::Min,
                f => f,
            };
            let slot = Slot { func, arg: agg.arg };
            let index = slots.iter().position(|s| *s == slot).unwrap_or_else(|| {
                slots.push(slot);
                slots.len() - 1
            });
            columns.push(Column { func: agg.func, slot: Some(index) });
        }
        let bare_columns = slots.iter().all(|s| matches!(s.arg, None | Some(Expr::Column(_))));
        Reduce {
            group_key,
            slots,
            columns,
            dialect,
            bare_columns,
            groups: GroupTable::default(),
            hasher: Hasher::default(),
            started: false,
            packer: RowPacker::new(),
            batch: Box::default(),
            emitted: Emitted::default(),
        }
    }

    /// Applies one batch. Each distinct group the batch touches is visited
    /// once: its output row before, all its changes, its output row after.
    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let first_batch = !self.started;
        self.started = true;
        let Reduce { group_key, slots, columns, dialect, bare_columns, groups, hasher, packer, batch, emitted, .. } =
            self;
        let global = group_key.is_empty();
        batch.fill(group_key, input, packer, hasher);
        // A stored group's hash, when the table grows or shifts a run.
        let rehash = |g: &Group| hasher.hash_one(g.key.as_bytes());
        // What a batch that failed half-way left behind.
        emitted.rows.clear();
        emitted.spans.clear();
        emitted.spans.reserve(batch.chains.len() * 2);
        if first_batch && global && input.is_empty() {
            // A global aggregate has its row (COUNT(*) = 0, SUM = NULL, …)
            // from the first batch on.
            let key = Row::empty();
            let hash = hasher.hash_one(key.as_bytes());
            let (at, _) = groups.find_or_insert(hash, |_| true, || Group::new(key, slots), rehash);
            output(global, columns, groups.get(at), *dialect, emitted, 1)?;
            return Ok(emitted.take());
        }
        let mut datums: Vec<Datum<'_>> = Vec::new();
        let mut args: Vec<Input<'_>> = Vec::new();
        let hash_of = |chain: Option<&(u32, u32)>| chain.map(|&(first, _)| batch.hashes[first as usize]);
        for hash in (0..PREFETCH_AHEAD).map_while(|n| hash_of(batch.chains.get(n))) {
            groups.prefetch(hash);
        }
        for (n, &(first, _)) in batch.chains.iter().enumerate() {
            if let Some(ahead) = hash_of(batch.chains.get(n + PREFETCH_AHEAD)) {
                groups.prefetch(ahead);
            }
            let (key, hash) = (batch.key(input, first as usize), batch.hashes[first as usize]);
            let (at, inserted) = groups.find_or_insert(
                hash,
                |g| short_eq(g.key.as_bytes(), key),
                || Group::new(RowRef::from_prefix(key, key.len()).to_row(), slots),
                rehash,
            );
            // A new group had no row (the global group is created, and first
            // emitted, by the first batch).
            // The old row goes out as a retraction now, and is taken back
            // (by `Emitted::take`) if the new row equals it.
            let old = !inserted && output(global, columns, groups.get(at), *dialect, emitted, -1)?;
            let group = groups.get_mut(at);
            let mut change = first;
            while change != END {
                let (row, diff) = &input[change as usize];
                args.clear();
                if *bare_columns {
                    for slot in slots.iter() {
                        args.push(Input::Value(match slot.arg {
                            Some(Expr::Column(c)) => row.get(c),
                            _ => Datum::Int(1),
                        }));
                    }
                } else {
                    datums.clear();
                    datums.extend(row.iter());
                    for slot in slots.iter() {
                        args.push(match (&slot.arg, slot.func) {
                            (Some(e), AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. }) => {
                                Input::Json(json::entry(slot.func, e, &datums, *dialect)?)
                            }
                            (Some(e), AggregateFunc::GroupConcat(spec)) => {
                                Input::Json(concat::entry(spec.order, e, &datums, *dialect)?)
                            }
                            (Some(e), _) => Input::Value(e.eval(&datums, *dialect)?),
                            (None, _) => Input::Value(Datum::Int(1)),
                        });
                    }
                }
                group.rows += diff;
                for (acc, arg) in group.accumulators.as_mut_slice().iter_mut().zip(&mut args) {
                    acc.update(arg, *diff, packer);
                }
                change = batch.next[change as usize];
            }
            group.accumulators.as_mut_slice().iter_mut().for_each(Accumulator::settle);
            let new = output(global, columns, group, *dialect, emitted, 1)?;
            if group.rows == 0 && !global {
                groups.remove(at, rehash);
            }
            if old && new {
                emitted.spans.last_mut().expect("the new row").replaces = true;
            }
        }
        batch.release_if_large();
        let out = emitted.take();
        emitted.release_if_large();
        Ok(out)
    }
}

/// Packs the output row of a group onto `emitted` with `diff`; `false` when
/// the group has no row (no input rows, unless it is the single group of a
/// global aggregate).
fn output(
    global: bool,
    columns: &[Column],
    state: &Group,
    dialect: Dialect,
    emitted: &mut Emitted,
    diff: Diff,
) -> Result<bool, EvalError> {
    if state.rows <= 0 && !global {
        return Ok(false);
    }
    let packer = &mut emitted.rows;
    let start = packer.row_end();
    packer.extend_from_row(&state.key);
    let accumulators = state.accumulators.as_slice();
    for column in columns {
        let pushed = match column.slot {
            None => {
                packer.push_int(state.rows);
                Ok(())
            }
            Some(slot) => accumulators[slot].push_value(column.func, state.rows, dialect, packer),
        };
        if let Err(e) = pushed {
            packer.truncate(start);
            return Err(e);
        }
    }
    emitted.spans.push(Span { start, end: packer.row_end(), diff, replaces: false });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_sized_batch_does_not_keep_its_scratch() {
        let count = Aggregate { func: AggregateFunc::Count, arg: None };
        let mut reduce = Reduce::new(vec![0], vec![count], Dialect::Sqlite);
        let rows = |n: i64| (0..n).map(|i| (Row::pack([Datum::Int(i % 1000), Datum::Int(i)]), 1)).collect::<Vec<_>>();
        reduce.step(&rows(100)).unwrap();
        assert!(reduce.batch.keys.capacity() >= 100, "small batches keep their scratch for reuse");
        let out = reduce.step(&rows(200_000)).unwrap();
        assert_eq!(out.len(), 100 * 2 + 900, "groups 0..100 change, 100..1000 appear");
        assert_eq!(reduce.batch.keys.capacity(), 0, "a large batch's scratch is freed");
    }

    /// SUM/AVG/COUNT of one group from scratch, as SQLite computes them:
    /// the sum is an integer while every value present is one, NULL when
    /// none is present.
    fn from_scratch(live: &[(i64, Value)]) -> Vec<(Row, Diff)> {
        let mut present: Vec<&Value> = Vec::new();
        for (n, v) in live {
            present.extend(std::iter::repeat_n(v, usize::try_from(*n).expect("live counts are positive")));
        }
        if present.is_empty() {
            return Vec::new();
        }
        let values: Vec<&Value> = present.iter().copied().filter(|v| !v.is_null()).collect();
        let floats = values.iter().any(|v| matches!(v, Datum::Float(_)));
        let total: f64 = values.iter().map(|v| v.as_f64().unwrap()).sum();
        let sum = match (values.is_empty(), floats) {
            (true, _) => Datum::Null,
            (false, true) => Datum::Float(total),
            (false, false) => Datum::Int(values.iter().map(|v| if let Datum::Int(i) = v { *i } else { 0 }).sum()),
        };
        let avg = if values.is_empty() { Datum::Null } else { Datum::Float(total / values.len() as f64) };
        vec![(Row::pack([Datum::Int(7), Datum::Int(present.len() as i64), sum, avg]), 1)]
    }

    proptest::proptest! {
        /// One group whose values change kind (integers, doubles, NULLs,
        /// in any mix), fed in batches that are not consolidated (a row
        /// inserted and deleted in one batch, a delete before its insert):
        /// the accumulated output always equals the group from scratch.
        #[test]
        fn sums_follow_the_kinds_of_their_values(
            changes in proptest::collection::vec((0u8..12, proptest::bool::ANY), 1..80),
            cuts in proptest::collection::vec(1usize..6, 1..10),
        ) {
            let value = |v: u8| match v {
                0 => Datum::Null,
                1..=5 => Datum::Int(i64::from(v) - 3),
                _ => Datum::Float(f64::from(v) * 0.25 - 2.0),
            };
            let aggregates = vec![
                Aggregate { func: AggregateFunc::Count, arg: None },
                Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(1)) },
                Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(1)) },
            ];
            let mut reduce = Reduce::new(vec![0], aggregates, Dialect::Sqlite);
            // Deletes only of values present at the end of their batch, so
            // the multiset never goes negative between batches.
            let mut live: Vec<(i64, Value)> = Vec::new();
            let mut output: Vec<(Row, Diff)> = Vec::new();
            let (mut rest, mut cut) = (&changes[..], cuts.iter().cycle());
            while !rest.is_empty() {
                let (now, later) = rest.split_at((*cut.next().unwrap()).min(rest.len()));
                rest = later;
                let mut batch = Vec::new();
                for &(v, insert) in now {
                    let v = value(v);
                    let at = live.iter().position(|(n, x)| *n > 0 && *x == v);
                    if insert || at.is_none() {
                        // A delete of a value not present becomes an insert
                        // followed by its delete: unconsolidated on purpose.
                        batch.push((Row::pack([Datum::Int(7), v.clone()]), 1));
                        if !insert {
                            batch.push((Row::pack([Datum::Int(7), v.clone()]), -1));
                            continue;
                        }
                        match live.iter().position(|(_, x)| *x == v) {
                            Some(at) => live[at].0 += 1,
                            None => live.push((1, v)),
                        }
                    } else {
                        let at = at.unwrap();
                        // The delete first, then a re-insert and its delete.
                        batch.insert(0, (Row::pack([Datum::Int(7), v.clone()]), -1));
                        batch.push((Row::pack([Datum::Int(7), v.clone()]), 1));
                        batch.push((Row::pack([Datum::Int(7), v]), -1));
                        live[at].0 -= 1;
                    }
                }
                live.retain(|(n, _)| *n > 0);
                let out = reduce.step(&batch).unwrap();
                let mut check = out.clone();
                denorm_types::consolidate(&mut check);
                proptest::prop_assert_eq!(check.len(), out.len(), "the output is consolidated");
                output.extend(out);
                denorm_types::consolidate(&mut output);
                proptest::prop_assert_eq!(&output, &from_scratch(&live));
            }
        }
    }
}
