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
use denorm_types::{affinity, Datum, Dialect, Diff, Row, RowPacker, RowRef, Value};

use crate::{memory, Hasher};

mod checkpoint;
mod concat;
mod distinct;
mod exact;
mod interval;
mod json;
mod table;

use exact::{ExactSum, Rounded};
use interval::IntervalSum;
use table::GroupTable;

/// A value ordered by SQL's total order, for MIN/MAX multisets; values
/// SQL calls equal but the source spells apart (PostgreSQL's `'1 day'` and
/// `'24 hours'`, `1.5` and `1.50`; SQLite's `1` and `1.0`, `0.0` and
/// `-0.0`) are kept apart, after one another, so each spelling is counted
/// and a retraction never leaves a spelling no row has (MIN/MAX of such a
/// tie show the least or greatest spelling; the sources show the first or
/// last they scanned). A group's shown value is the MIN of its values
/// (`denorm-sql` `select.rs` `representatives`).
#[derive(Debug, Clone)]
struct Ordered(Value);

/// The order of two spellings of one value (see [`Ordered`]).
pub(crate) fn spelling(a: &Datum<'_>, b: &Datum<'_>) -> Ordering {
    match (a, b) {
        (Datum::Interval(x), Datum::Interval(y)) => (x.months, x.days, x.micros).cmp(&(y.months, y.days, y.micros)),
        (Datum::Numeric(x), Datum::Numeric(y)) => x.scale().cmp(&y.scale()),
        // An integer before the double equal to it, -0.0 before 0.0.
        (Datum::Int(_), Datum::Float(_)) => Ordering::Less,
        (Datum::Float(_), Datum::Int(_)) => Ordering::Greater,
        (Datum::Float(x), Datum::Float(y)) => y.is_sign_negative().cmp(&x.is_sign_negative()),
        _ => Ordering::Equal,
    }
}

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
        self.0.total_cmp(&other.0).then_with(|| spelling(&self.0, &other.0))
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
    /// as one): summed exactly, out of line (see [`exact`]).
    SumFloats {
        non_null: Diff,
        floats: Box<ExactSum>,
    },
    /// SUM/AVG once integers and doubles meet in one group (SQLite's columns
    /// may mix them): kept apart, out of line so that the common kinds keep
    /// a group within one cache line.
    SumMixed(Box<MixedSum>),
    /// SUM/AVG of PostgreSQL numerics: the accumulator a `Sum` becomes at
    /// its first numeric value (a column's values all have one type).
    Numeric(Box<NumericSum>),
    /// SUM/AVG of PostgreSQL intervals: the accumulator a `Sum` becomes at
    /// its first interval (see [`interval`]).
    Interval(Box<IntervalSum>),
    Extreme(BTreeMap<Ordered, Diff>),
    Distinct(Box<HashMap<Row, Diff, Hasher>>),
    /// `json_group_array` / `json_group_object`: rendered elements in order.
    Json(json::Elements),
}

/// Integers summed exactly, doubles exactly apart: the integer sum is the
/// result while no double is present.
#[derive(Debug, Clone, Default)]
struct MixedSum {
    non_null: Diff,
    ints: Wide,
    floats: ExactSum,
    float_count: Diff,
}

impl MixedSum {
    fn add(&mut self, value: &Datum<'_>, diff: Diff) {
        self.non_null += diff;
        match value {
            Datum::Int(i) => self.ints.add(i128::from(*i) * i128::from(diff)),
            Datum::Bool(b) => self.ints.add(i128::from(*b) * i128::from(diff)),
            other => {
                self.floats.add(other.as_f64().unwrap_or(0.0), diff);
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
    /// Heap bytes the accumulator owns (see [`crate::memory`]).
    fn heap_bytes(&self) -> usize {
        match self {
            Accumulator::Count(_) | Accumulator::SumInts { .. } => 0,
            Accumulator::SumFloats { floats, .. } => memory::boxed::<ExactSum>() + floats.heap_bytes(),
            Accumulator::SumMixed(sum) => memory::boxed::<MixedSum>() + sum.floats.heap_bytes(),
            Accumulator::Numeric(sum) => memory::boxed::<NumericSum>() + memory::vec(&sum.scales),
            Accumulator::Interval(_) => memory::boxed::<IntervalSum>(),
            Accumulator::Extreme(values) => {
                memory::btree_map(values) + values.keys().map(|v| memory::datum(&v.0)).sum::<usize>()
            }
            Accumulator::Distinct(values) => {
                memory::boxed::<HashMap<Row, Diff, Hasher>>()
                    + values.allocation_size()
                    + values.keys().map(memory::row).sum::<usize>()
            }
            Accumulator::Json(elements) => {
                memory::btree_map(elements)
                    + elements.keys().map(|(sort, text)| memory::slice(sort) + text.len()).sum::<usize>()
            }
        }
    }

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

    fn is_sum(&self) -> bool {
        matches!(
            self,
            Accumulator::SumInts { .. }
                | Accumulator::SumFloats { .. }
                | Accumulator::SumMixed(_)
                | Accumulator::Numeric(_)
                | Accumulator::Interval(_)
        )
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
        // SQLite's text in a sum (an INTEGER column may hold 'abc').
        match (&*value, self.is_sum()) {
            (Datum::Text(t), true) => *value = affinity::summand(t),
            // A BLOB adds as the double of its bytes read as text.
            (Datum::Blob(b), true) => *value = Datum::Float(affinity::real(&String::from_utf8_lossy(b))),
            _ => {}
        }
        // An empty sum takes the kind of its first value.
        let empty = match self {
            Accumulator::SumInts { non_null: 0, ints } => ints.get() == 0,
            Accumulator::SumFloats { non_null: 0, floats } => floats.is_zero(),
            _ => false,
        };
        if empty {
            *self = match &*value {
                Datum::Numeric(_) => Accumulator::Numeric(Box::new(NumericSum::new())),
                Datum::Interval(_) => Accumulator::Interval(Box::default()),
                v if sums_as_integer(v) => Accumulator::SumInts { non_null: 0, ints: Wide::default() },
                _ => Accumulator::SumFloats { non_null: 0, floats: Box::default() },
            };
        }
        // A value of the other kind: integers and doubles are kept apart.
        let mixed = match self {
            Accumulator::SumInts { non_null, ints } if !sums_as_integer(value) => {
                Some(MixedSum { non_null: *non_null, ints: *ints, ..MixedSum::default() })
            }
            Accumulator::SumFloats { non_null, floats } if sums_as_integer(value) => Some(MixedSum {
                non_null: *non_null,
                floats: std::mem::take(&mut **floats),
                float_count: *non_null,
                ..MixedSum::default()
            }),
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
            Accumulator::Interval(sum) => {
                if let Datum::Interval(i) = value {
                    sum.add(*i, diff);
                }
            }
            Accumulator::Count(n) => *n += diff,
            Accumulator::SumInts { non_null, ints } => {
                *non_null += diff;
                ints.add(as_integer(value) * i128::from(diff));
            }
            Accumulator::SumFloats { non_null, floats } => {
                *non_null += diff;
                floats.add(value.as_f64().unwrap_or(0.0), diff);
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
                _ => packer.push_int(int_sum(ints.get(), dialect)?),
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
                _ => Datum::Int(int_sum(ints.get(), dialect)?),
            },
            Accumulator::SumFloats { non_null, floats } => float_sum(func, floats, *non_null, dialect),
            Accumulator::SumMixed(sum) => {
                let ints = sum.ints.get();
                if func != AggregateFunc::Avg && sum.float_count == 0 {
                    Datum::Int(int_sum(ints, dialect)?)
                } else {
                    let mut total = sum.floats.clone();
                    total.add_integer(ints);
                    float_sum(func, &total, sum.non_null, dialect)
                }
            }
            Accumulator::Numeric(sum) => sum.value(func)?,
            Accumulator::Interval(sum) => sum.value(func)?,
            Accumulator::Extreme(values) if matches!(func, AggregateFunc::SumDistinct | AggregateFunc::AvgDistinct) => {
                distinct::value(func, values.keys().map(|o| &o.0), dialect)?
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

/// SUM of integers: the exact total, an error beyond 64 bits.
///
/// SQLite adds in scan order and fails ("integer overflow") as soon as a
/// partial sum leaves the range, even if later rows bring it back: that
/// depends on the order SQLite reads the rows in, which no incremental
/// state knows. This is the one place denorm cannot match it: a total
/// within range whose partial sums in SQLite's order were not (e.g.
/// 2^63 - 1, then 1, then -1) is a value here and an error there. Every
/// total out of range fails in both (some partial sum, the last, is out).
/// With doubles in the group too the result is a double, and SQLite fails
/// only if an integer overflow came after its last double in scan order:
/// denorm never fails there.
fn int_sum(total: i128, dialect: Dialect) -> Result<i64, EvalError> {
    i64::try_from(total).map_err(|_| match dialect {
        Dialect::Sqlite => EvalError::SumOverflow,
        Dialect::Postgres => EvalError::IntegerOverflow,
    })
}

/// SUM or AVG of doubles: the exact sum rounded once. A NaN (SQLite's
/// `+Inf + -Inf`) is NULL on SQLite, which stores no NaN.
fn float_sum(func: AggregateFunc, sum: &ExactSum, non_null: Diff, dialect: Dialect) -> Value {
    let total = match sum.value() {
        Rounded::Finite(f) => f,
        Rounded::Infinite(positive) => {
            if positive {
                f64::INFINITY
            } else {
                f64::NEG_INFINITY
            }
        }
        Rounded::NotANumber if dialect == Dialect::Sqlite => return Datum::Null,
        Rounded::NotANumber => f64::NAN,
    };
    Datum::Float(if func == AggregateFunc::Avg { total / non_null as f64 } else { total })
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
    /// Whether this batch's keys are in key form (`packed`), because some
    /// key holds a double or numeric: then 1 and 1.0 are one group.
    normalized: bool,
}

const END: u32 = u32::MAX;

/// Per-batch buffers larger than this many entries are freed after their
/// batch (a snapshot), not kept for reuse.
pub(crate) const KEEP_SCRATCH: usize = 1 << 14;

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

    /// Each change's group key: a byte range of its row when the group
    /// columns are adjacent, else packed; in key form (packed) for the
    /// whole batch when some key holds a double or numeric.
    fn find_keys(&mut self, group_key: &[usize], input: &[(Row, Diff)], packer: &mut RowPacker) {
        let run = group_key.windows(2).all(|w| w[1] == w[0] + 1).then(|| (group_key.first().copied(), group_key.len()));
        self.normalized = false;
        for (row, _) in input {
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
            let (start, end) = *self.keys.last().expect("just pushed");
            let bytes = if self.packed.is_empty() { row.as_bytes() } else { self.packed.last().unwrap().as_bytes() };
            let key = &bytes[start as usize..end as usize];
            if RowRef::from_prefix(key, key.len()).has_key_variants() {
                self.normalized = true;
                break;
            }
        }
        if !self.normalized {
            return;
        }
        self.keys.clear();
        self.packed.clear();
        for (row, _) in input {
            for &c in group_key {
                packer.push_key_column(row, c);
            }
            let key = packer.finish();
            self.keys.push((0, key.as_bytes().len() as u32));
            self.packed.push(key);
        }
    }

    fn fill(&mut self, group_key: &[usize], input: &[(Row, Diff)], packer: &mut RowPacker, hasher: &Hasher) {
        self.keys.clear();
        self.packed.clear();
        self.hashes.clear();
        self.next.clear();
        self.chains.clear();
        self.local.clear();
        self.find_keys(group_key, input, packer);
        for i in 0..input.len() {
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

    pub(crate) fn group_key(&self) -> &[usize] {
        &self.group_key
    }

    /// The output's aggregate columns, and whether some accumulator keeps
    /// every value (MIN/MAX, DISTINCT, JSON and string aggregates).
    pub(crate) fn aggregates(&self) -> (usize, bool) {
        let ordered = self
            .slots
            .iter()
            .any(|s| !matches!(s.func, AggregateFunc::Count | AggregateFunc::Sum | AggregateFunc::Avg));
        (self.columns.len(), ordered)
    }

    /// Live heap bytes: the group table, each group's key and accumulators
    /// (see [`crate::memory`]), and the per-batch scratch kept for reuse.
    pub(crate) fn state_bytes(&self) -> usize {
        let groups: usize = self
            .groups
            .iter()
            .map(|group| {
                let accumulators = match &group.accumulators {
                    Accumulators::One(one) => one.as_ref().map_or(0, Accumulator::heap_bytes),
                    Accumulators::Many(many) => {
                        memory::slice(many) + many.iter().map(Accumulator::heap_bytes).sum::<usize>()
                    }
                };
                memory::row(&group.key) + accumulators
            })
            .sum();
        let batch = &self.batch;
        let scratch = memory::boxed::<BatchScratch>()
            + memory::vec(&batch.keys)
            + memory::vec(&batch.packed)
            + batch.packed.iter().map(memory::row).sum::<usize>()
            + memory::vec(&batch.hashes)
            + memory::vec(&batch.next)
            + memory::vec(&batch.chains)
            + batch.local.allocation_size()
            + self.emitted.rows.allocated_bytes()
            + memory::vec(&self.emitted.spans);
        self.groups.table_bytes() + groups + self.packer.allocated_bytes() + scratch
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
        let key_columns = group_key.len();
        let rehash = |g: &Group| hasher.hash_one(lookup_key(&g.key, key_columns));
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
            output(global, columns, groups.get(at), key_columns, *dialect, emitted, 1)?;
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
                |g| g.key.as_bytes().len() >= key.len() && short_eq(&g.key.as_bytes()[..key.len()], key),
                || {
                    // The first insertion shows the group (a batch need not
                    // be consolidated: a deletion may come first).
                    let mut shown = first;
                    while input[shown as usize].1 <= 0 && batch.next[shown as usize] != END {
                        shown = batch.next[shown as usize];
                    }
                    let row = &input[shown as usize].0;
                    Group::new(stored_key(key, batch.normalized, row, group_key, packer), slots)
                },
                rehash,
            );
            // A new group had no row (the global group is created, and first
            // emitted, by the first batch).
            // The old row goes out as a retraction now, and is taken back
            // (by `Emitted::take`) if the new row equals it.
            let old = !inserted && output(global, columns, groups.get(at), key_columns, *dialect, emitted, -1)?;
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
            let new = output(global, columns, group, key_columns, *dialect, emitted, 1)?;
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

/// A group's stored key: its key form, followed by the group columns as
/// the change that created the group carries them when they differ (1.0
/// where the key form says 1): SQLite outputs the first row's value of a
/// group mixing 1 and 1.0 in its scan order, which for a table scan is the
/// order rows arrived in, as long as that row stays. Packed datums are
/// self-delimiting, so the key form is the stored key's first columns.
fn stored_key(key: &[u8], normalized: bool, first: &Row, group_key: &[usize], packer: &mut RowPacker) -> Row {
    let key = RowRef::from_prefix(key, key.len());
    if !normalized {
        return key.to_row();
    }
    packer.extend_from_ref(key);
    let start = packer.row_end();
    for &c in group_key {
        packer.push_column(first, c);
    }
    if packer.packed_bytes(start, packer.row_end()) == key.as_bytes() {
        packer.truncate(start);
    }
    packer.finish()
}

/// The key form of a stored key: what lookups compare and hash.
fn lookup_key(stored: &Row, key_columns: usize) -> &[u8] {
    let bytes = stored.as_bytes();
    &bytes[..RowRef::from(stored).prefix_len(key_columns)]
}

/// The group columns as output: the representative when stored.
fn output_key(stored: &Row, key_columns: usize) -> RowRef<'_> {
    let bytes = stored.as_bytes();
    let form = RowRef::from(stored).prefix_len(key_columns);
    if form == bytes.len() {
        RowRef::from(stored)
    } else {
        RowRef::from_prefix(&bytes[form..], bytes.len() - form)
    }
}

/// Packs the output row of a group onto `emitted` with `diff`; `false` when
/// the group has no row (no input rows, unless it is the single group of a
/// global aggregate).
fn output(
    global: bool,
    columns: &[Column],
    state: &Group,
    key_columns: usize,
    dialect: Dialect,
    emitted: &mut Emitted,
    diff: Diff,
) -> Result<bool, EvalError> {
    if state.rows <= 0 && !global {
        return Ok(false);
    }
    let packer = &mut emitted.rows;
    let start = packer.row_end();
    packer.extend_from_ref(output_key(&state.key, key_columns));
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

    /// Regression: a double sum was a running `f64`, so it depended on the
    /// history of the group: 0.1, 0.2, 1e16 inserted and 1e16 deleted gave
    /// 0.0 (SQLite: 0.30000000000000004); 0.1, 0.2, 0.3 inserted and 0.1,
    /// 0.2 deleted gave 0.3000000000000001 (SQLite: 0.3).
    #[test]
    fn a_double_sum_is_that_of_the_rows_present() {
        let sum = Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(1)) };
        let avg = Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(1)) };
        let row = |v: f64| Row::pack([Datum::Int(1), Datum::Float(v)]);
        let cases: [(&[f64], &[f64], f64); 2] =
            [(&[0.1, 0.2, 1e16], &[1e16], 0.30000000000000004), (&[0.1, 0.2, 0.3], &[0.1, 0.2], 0.3)];
        for (inserted, deleted, want) in cases {
            let mut reduce = Reduce::new(vec![0], vec![sum.clone(), avg.clone()], Dialect::Sqlite);
            let mut output = Vec::new();
            for &v in inserted {
                output.extend(reduce.step(&[(row(v), 1)]).unwrap());
            }
            for &v in deleted {
                output.extend(reduce.step(&[(row(v), -1)]).unwrap());
            }
            denorm_types::consolidate(&mut output);
            let count = (inserted.len() - deleted.len()) as f64;
            let expected = Row::pack([Datum::Int(1), Datum::Float(want), Datum::Float(want / count)]);
            assert_eq!(output, vec![(expected, 1)], "{inserted:?} minus {deleted:?}");
        }
    }

    /// Regression: GROUP BY told 1 from 1.0 and 0.0 from -0.0 (SQLite:
    /// equal), so `GROUP BY x` gave two rows with the same key, and a view
    /// keyed by it failed with a false key violation. The group's output
    /// value is the first row's, as SQLite outputs the first in scan order.
    #[test]
    fn numerically_equal_keys_are_one_group() {
        let count = Aggregate { func: AggregateFunc::Count, arg: None };
        let mut reduce = Reduce::new(vec![0], vec![count], Dialect::Sqlite);
        let row = |k: Datum<'static>| Row::pack([k, Datum::Int(0)]);
        let group = |k: Datum<'static>, n: i64| Row::pack([k, Datum::Int(n)]);
        let out = reduce.step(&[(row(Datum::Float(1.0)), 1), (row(Datum::Int(1)), 1)]).unwrap();
        assert_eq!(out, vec![(group(Datum::Float(1.0), 2), 1)]);
        // A batch of integers only finds the group too.
        let mut out = reduce.step(&[(row(Datum::Int(1)), 1), (row(Datum::Int(2)), 1)]).unwrap();
        out.sort();
        let mut want =
            vec![(group(Datum::Float(1.0), 2), -1), (group(Datum::Float(1.0), 3), 1), (group(Datum::Int(2), 1), 1)];
        want.sort();
        assert_eq!(out, want);
        let out = reduce.step(&[(row(Datum::Float(2.0)), 1), (row(Datum::Float(-0.0)), 1)]).unwrap();
        assert_eq!(out.len(), 3, "group 2 changes, group 0 appears: {out:?}");
        let out = reduce.step(&[(row(Datum::Float(0.0)), 1)]).unwrap();
        assert_eq!(out, vec![(group(Datum::Float(-0.0), 1), -1), (group(Datum::Float(-0.0), 2), 1)]);
        // An unconsolidated batch whose first change of a new group is a
        // deletion (of a row it inserts later): the first insertion shows it.
        let batch = [(row(Datum::Float(5.0)), -1), (row(Datum::Int(5)), 1), (row(Datum::Float(5.0)), 1)];
        assert_eq!(reduce.step(&batch).unwrap(), vec![(group(Datum::Int(5), 1), 1)]);
    }

    /// MIN/MAX of PostgreSQL intervals that tie by span but are spelled
    /// apart: once the spelling that came first leaves, the other shows
    /// (it used to keep showing the first, which no row had any more).
    #[test]
    fn a_tie_shows_a_spelling_still_present() {
        use denorm_types::interval::Interval;
        let min = Aggregate { func: AggregateFunc::Min, arg: Some(Expr::Column(1)) };
        let max = Aggregate { func: AggregateFunc::Max, arg: Some(Expr::Column(1)) };
        let mut reduce = Reduce::new(vec![0], vec![min, max], Dialect::Postgres);
        let day = Datum::Interval(Interval { months: 0, days: 1, micros: 0 });
        let hours = Datum::Interval(Interval { months: 0, days: 0, micros: 86_400_000_000 });
        let row = |v: &Value| Row::pack([Datum::Int(1), v.clone()]);
        reduce.step(&[(row(&day), 1), (row(&hours), 1)]).unwrap();
        let out = reduce.step(&[(row(&day), -1)]).unwrap();
        assert_eq!(out.last(), Some(&(Row::pack([Datum::Int(1), hours.clone(), hours.clone()]), 1)));
        let one_and_a_half =
            |scale| Datum::Numeric(denorm_types::numeric::from_parts(15 * 10i128.pow(scale), scale + 1).unwrap());
        let mut reduce = Reduce::new(
            vec![0],
            vec![Aggregate { func: AggregateFunc::Max, arg: Some(Expr::Column(1)) }],
            Dialect::Postgres,
        );
        reduce.step(&[(row(&one_and_a_half(1)), 1), (row(&one_and_a_half(0)), 1)]).unwrap();
        let out = reduce.step(&[(row(&one_and_a_half(1)), -1)]).unwrap();
        assert_eq!(out.last(), Some(&(Row::pack([Datum::Int(1), one_and_a_half(0)]), 1)));
    }

    /// Regression: text in a SQLite INTEGER column was summed as 0.0
    /// whatever it said. SQLite adds '12' as the integer 12 and 'abc' or
    /// '2.5x' as the double of its numeric prefix (the sum becomes a double).
    #[test]
    fn text_in_a_sum_adds_as_sqlite_adds_it() {
        let sum = Aggregate { func: AggregateFunc::Sum, arg: Some(Expr::Column(1)) };
        let avg = Aggregate { func: AggregateFunc::Avg, arg: Some(Expr::Column(1)) };
        let mut reduce = Reduce::new(vec![0], vec![sum, avg], Dialect::Sqlite);
        let row = |v: Value| Row::pack([Datum::Int(1), v]);
        let out = reduce.step(&[(row(1.into()), 1), (row(" 12 ".into()), 1)]).unwrap();
        assert_eq!(out, vec![(Row::pack([Datum::Int(1), Datum::Int(13), Datum::Float(6.5)]), 1)]);
        let out = reduce.step(&[(row("abc".into()), 1), (row("2.5x".into()), 1)]).unwrap();
        let new = Row::pack([Datum::Int(1), Datum::Float(15.5), Datum::Float(15.5 / 4.0)]);
        assert_eq!(out.last(), Some(&(new, 1)));
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
