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

mod json;
mod table;

use table::{GroupTable, Hashed};

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
    /// Integers summed exactly in 128 bits (so a transient overflow that later
    /// retractions undo is harmless); doubles summed apart.
    Sum {
        non_null: Diff,
        ints: Wide,
        floats: f64,
        float_count: Diff,
    },
    /// SUM/AVG of PostgreSQL numerics: the accumulator a `Sum` becomes at
    /// its first numeric value (a column's values all have one type).
    Numeric(Box<NumericSum>),
    Extreme(BTreeMap<Ordered, Diff>),
    Distinct(Box<HashMap<Row, Diff, Hasher>>),
    /// `json_group_array` / `json_group_object`: rendered elements in order.
    Json(json::Elements),
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
            AggregateFunc::Sum | AggregateFunc::Avg => {
                Accumulator::Sum { non_null: 0, ints: Wide::default(), floats: 0.0, float_count: 0 }
            }
            AggregateFunc::Min | AggregateFunc::Max => Accumulator::Extreme(BTreeMap::new()),
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
        if let (Accumulator::Sum { non_null: 0, float_count: 0, .. }, Datum::Numeric(_)) = (&*self, &*value) {
            *self = Accumulator::Numeric(Box::new(NumericSum::new()));
        }
        match self {
            Accumulator::Numeric(sum) => match value {
                Datum::Numeric(n) => sum.add(*n, diff),
                Datum::Int(i) => sum.add(numeric::from_i64(*i), diff),
                _ => {}
            },
            Accumulator::Count(n) => *n += diff,
            Accumulator::Sum { non_null, ints, floats, float_count } => {
                *non_null += diff;
                match value {
                    Datum::Int(i) => ints.add(i128::from(*i) * i128::from(diff)),
                    Datum::Bool(b) => ints.add(i128::from(*b) * i128::from(diff)),
                    other => {
                        *floats += other.as_f64().unwrap_or(0.0) * diff as f64;
                        *float_count += diff;
                        if *float_count == 0 {
                            // No double left: drop rounding residue.
                            *floats = 0.0;
                        }
                    }
                }
            }
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
            Accumulator::Sum { non_null, ints, floats, float_count } if *non_null != 0 => match func {
                AggregateFunc::Avg => packer.push_float((wide_to_f64(ints.get()) + floats) / *non_null as f64),
                _ if *float_count > 0 => packer.push_float(wide_to_f64(ints.get()) + floats),
                _ => packer.push_int(i64::try_from(ints.get()).map_err(|_| EvalError::IntegerOverflow)?),
            },
            _ => packer.push(&self.value(func, rows, dialect)?),
        }
        Ok(())
    }

    fn value(&self, func: AggregateFunc, rows: Diff, dialect: Dialect) -> Result<Value, EvalError> {
        Ok(match self {
            Accumulator::Count(n) => Datum::Int(*n),
            Accumulator::Sum { non_null: 0, .. } => Datum::Null,
            Accumulator::Sum { non_null, ints, floats, float_count } => {
                let ints = ints.get();
                let total = wide_to_f64(ints) + floats;
                match func {
                    AggregateFunc::Avg => Datum::Float(total / *non_null as f64),
                    _ if *float_count > 0 => Datum::Float(total),
                    _ => Datum::Int(i64::try_from(ints).map_err(|_| EvalError::IntegerOverflow)?),
                }
            }
            Accumulator::Numeric(sum) => sum.value(func)?,
            Accumulator::Extreme(values) => {
                let v = if func == AggregateFunc::Min { values.keys().next() } else { values.keys().next_back() };
                v.map_or(Datum::Null, |o| o.0.clone())
            }
            Accumulator::Distinct(values) => Datum::Int(values.len() as i64),
            Accumulator::Json(elements) => json::value(func, elements, dialect),
        })
        .map(|v| if func == AggregateFunc::Count && rows == 0 { Datum::Int(0) } else { v })
    }
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
/// live row count and accumulators.
#[derive(Debug, Clone)]
struct Group {
    hash: u64,
    key: Row,
    rows: Diff,
    accumulators: Accumulators,
}

impl Hashed for Group {
    fn hash(&self) -> u64 {
        self.hash
    }
}

impl Group {
    fn new(hash: u64, key: Row, slots: &[Slot]) -> Self {
        let mut accumulators = slots.iter().map(|s| Accumulator::new(s.func));
        let accumulators = if slots.len() <= 1 {
            Accumulators::One(accumulators.next())
        } else {
            Accumulators::Many(accumulators.collect())
        };
        Group { hash, key, rows: 0, accumulators }
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
        const KEEP: usize = 1 << 16;
        if self.keys.capacity() > KEEP || self.local.capacity() > KEEP {
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
                AggregateFunc::Max => AggregateFunc::Min,
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
        }
    }

    /// Applies one batch. Each distinct group the batch touches is visited
    /// once: its output row before, all its changes, its output row after.
    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Result<Vec<(Row, Diff)>, EvalError> {
        let first_batch = !self.started;
        self.started = true;
        let Reduce { group_key, slots, columns, dialect, bare_columns, groups, hasher, packer, batch, .. } = self;
        let global = group_key.is_empty();
        batch.fill(group_key, input, packer, hasher);
        let mut out = Vec::with_capacity(batch.chains.len() * 2);
        if first_batch && global && input.is_empty() {
            // A global aggregate has its row (COUNT(*) = 0, SUM = NULL, …)
            // from the first batch on.
            let key = Row::empty();
            let hash = hasher.hash_one(key.as_bytes());
            let (at, _) = groups.find_or_insert(hash, |_| true, || Group::new(hash, key, slots));
            output(global, columns, groups.get(at), *dialect, packer, &mut out, 1)?;
            return Ok(out);
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
                |g| g.key.as_bytes() == key,
                || Group::new(hash, RowRef::from_prefix(key, key.len()).to_row(), slots),
            );
            // A new group had no row (the global group is created, and first
            // emitted, by the first batch).
            // The old row goes out as a retraction now, and is taken back
            // below if the new row equals it.
            let old = !inserted && output(global, columns, groups.get(at), *dialect, packer, &mut out, -1)?;
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
            let new = output(global, columns, group, *dialect, packer, &mut out, 1)?;
            if group.rows == 0 && !global {
                groups.remove(at);
            }
            if old && new && out[out.len() - 2].0 == out[out.len() - 1].0 {
                out.truncate(out.len() - 2);
            }
        }
        batch.release_if_large();
        Ok(out)
    }
}

/// Pushes the output row of a group onto `out` with `diff`; `false` when the
/// group has no row (no input rows, unless it is the single group of a global
/// aggregate).
fn output(
    global: bool,
    columns: &[Column],
    state: &Group,
    dialect: Dialect,
    packer: &mut RowPacker,
    out: &mut Vec<(Row, Diff)>,
    diff: Diff,
) -> Result<bool, EvalError> {
    if state.rows <= 0 && !global {
        return Ok(false);
    }
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
            packer.finish();
            return Err(e);
        }
    }
    out.push((packer.finish(), diff));
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
}
