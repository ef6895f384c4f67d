//! A `Reduce`'s checkpoint: whether its first batch ran, then each group's
//! stored key, live row count and accumulators (one tag each, then its
//! exact state: 128-bit integer sums as two words, exact double sums as
//! their words, MIN/MAX multisets as one-column rows). A load checks that
//! each accumulator is of a kind its slot can hold, so a loaded group is
//! one the operator could have built.

use std::collections::BTreeMap;

use denorm_expr::AggregateFunc;
use denorm_types::{numeric, Datum, Row};

use super::exact::ExactSum;
use super::interval::IntervalSum;
use super::{lookup_key, Accumulator, Accumulators, Group, MixedSum, NumericSum, Ordered, Reduce, Wide};
use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};

const COUNT: u8 = 0;
const SUM_INTS: u8 = 1;
const SUM_FLOATS: u8 = 2;
const SUM_MIXED: u8 = 3;
const NUMERIC: u8 = 4;
const EXTREME: u8 = 5;
const DISTINCT: u8 = 6;
const JSON: u8 = 7;
const INTERVAL: u8 = 8;

impl Reduce {
    pub(crate) fn save(&self, w: &mut Writer) -> Result<(), CheckpointError> {
        w.u8(u8::from(self.started));
        w.count(self.groups.iter().count());
        for group in self.groups.iter() {
            w.row(&group.key);
            w.i64(group.rows);
            let accumulators = group.accumulators.as_slice();
            w.count(accumulators.len());
            for accumulator in accumulators {
                save_accumulator(accumulator, w)?;
            }
        }
        Ok(())
    }

    /// Loads into a fresh operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        self.started = r.u8()? != 0;
        let key_columns = self.group_key.len();
        for _ in 0..r.count()? {
            let key = r.row()?;
            let rows = r.i64()?;
            let n = r.count()?;
            if n != self.slots.len() {
                return Err(corrupt("a group's accumulators do not match its aggregates"));
            }
            let mut accumulators = Vec::with_capacity(n);
            for slot in &self.slots {
                let accumulator = load_accumulator(r)?;
                if !fits(&accumulator, slot.func) {
                    return Err(corrupt("an accumulator of another kind than its aggregate"));
                }
                accumulators.push(accumulator);
            }
            let accumulators = if n <= 1 {
                Accumulators::One(accumulators.pop())
            } else {
                Accumulators::Many(accumulators.into_boxed_slice())
            };
            let hasher = &self.hasher;
            let hash = hasher.hash_one(lookup_key(&key, key_columns));
            let lookup = lookup_key(&key, key_columns).to_vec();
            let group = Group { key, rows, accumulators };
            let rehash = |g: &Group| hasher.hash_one(lookup_key(&g.key, key_columns));
            let (_, inserted) = self.groups.find_or_insert(
                hash,
                |g| lookup_key(&g.key, key_columns) == lookup.as_slice(),
                || group,
                rehash,
            );
            if !inserted {
                return Err(corrupt("a group appears twice"));
            }
        }
        Ok(())
    }
}

fn corrupt(what: &str) -> CheckpointError {
    CheckpointError::Corrupt(what.to_string())
}

/// Whether `accumulator` is one a slot of `func` holds (see `Accumulator::new`
/// and the sums' transitions).
fn fits(accumulator: &Accumulator, func: AggregateFunc) -> bool {
    match accumulator {
        Accumulator::Count(_) => func == AggregateFunc::Count,
        Accumulator::SumInts { .. }
        | Accumulator::SumFloats { .. }
        | Accumulator::SumMixed(_)
        | Accumulator::Numeric(_)
        | Accumulator::Interval(_) => func == AggregateFunc::Sum,
        Accumulator::Extreme(_) => func == AggregateFunc::Min,
        Accumulator::Distinct(_) => func == AggregateFunc::CountDistinct,
        Accumulator::Json(_) => {
            matches!(
                func,
                AggregateFunc::GroupConcat(_) | AggregateFunc::JsonArray(_) | AggregateFunc::JsonObject { .. }
            )
        }
    }
}

fn save_wide(w: &mut Writer, wide: Wide) {
    w.u64(wide.low);
    w.i64(wide.high);
}

fn load_wide(r: &mut Reader<'_>) -> Result<Wide, CheckpointError> {
    Ok(Wide { low: r.u64()?, high: r.i64()? })
}

fn save_exact(w: &mut Writer, sum: &ExactSum) {
    let (words, base, counts) = sum.parts();
    w.count(words.len());
    for word in words {
        w.u64(*word);
    }
    w.i64(i64::from(base));
    for count in counts {
        w.i64(count);
    }
}

fn load_exact(r: &mut Reader<'_>) -> Result<ExactSum, CheckpointError> {
    let n = r.count()?;
    let words = (0..n).map(|_| r.u64()).collect::<Result<Vec<_>, _>>()?;
    let base = i32::try_from(r.i64()?).map_err(|_| corrupt("an exact sum's exponent is out of range"))?;
    let counts = [r.i64()?, r.i64()?, r.i64()?];
    ExactSum::from_parts(words, base, counts).ok_or_else(|| corrupt("an exact sum's words are malformed"))
}

fn save_accumulator(accumulator: &Accumulator, w: &mut Writer) -> Result<(), CheckpointError> {
    match accumulator {
        Accumulator::Count(n) => {
            w.u8(COUNT);
            w.i64(*n);
        }
        Accumulator::SumInts { non_null, ints } => {
            w.u8(SUM_INTS);
            w.i64(*non_null);
            save_wide(w, *ints);
        }
        Accumulator::SumFloats { non_null, floats } => {
            w.u8(SUM_FLOATS);
            w.i64(*non_null);
            save_exact(w, floats);
        }
        Accumulator::SumMixed(mixed) => {
            w.u8(SUM_MIXED);
            w.i64(mixed.non_null);
            save_wide(w, mixed.ints);
            save_exact(w, &mixed.floats);
            w.i64(mixed.float_count);
        }
        Accumulator::Numeric(sum) => {
            let Ok(total) = sum.sum else {
                return Err(CheckpointError::Unsupported("a numeric sum out of range".into()));
            };
            w.u8(NUMERIC);
            w.i64(sum.non_null);
            w.u64(total.mantissa() as u64);
            w.i64((total.mantissa() >> 64) as i64);
            w.u32(total.scale());
            w.count(sum.scales.len());
            for (scale, n) in &sum.scales {
                w.u8(*scale);
                w.i64(*n);
            }
        }
        Accumulator::Interval(sum) => {
            w.u8(INTERVAL);
            w.i64(sum.non_null);
            w.i64(sum.months);
            w.i64(sum.days);
            save_wide(w, Wide { low: sum.micros as u64, high: (sum.micros >> 64) as i64 });
        }
        Accumulator::Extreme(values) => {
            w.u8(EXTREME);
            w.count(values.len());
            for (value, n) in values {
                w.row(&Row::pack([&value.0]));
                w.i64(*n);
            }
        }
        Accumulator::Distinct(values) => {
            w.u8(DISTINCT);
            write_changes(w, values.len(), values.iter().map(|(r, d)| (r, *d)));
        }
        Accumulator::Json(elements) => {
            w.u8(JSON);
            w.count(elements.len());
            for ((sort, text), n) in elements {
                w.bytes(sort);
                w.str(text);
                w.i64(*n);
            }
        }
    }
    Ok(())
}

fn load_accumulator(r: &mut Reader<'_>) -> Result<Accumulator, CheckpointError> {
    Ok(match r.u8()? {
        COUNT => Accumulator::Count(r.i64()?),
        SUM_INTS => Accumulator::SumInts { non_null: r.i64()?, ints: load_wide(r)? },
        SUM_FLOATS => Accumulator::SumFloats { non_null: r.i64()?, floats: Box::new(load_exact(r)?) },
        SUM_MIXED => Accumulator::SumMixed(Box::new(MixedSum {
            non_null: r.i64()?,
            ints: load_wide(r)?,
            floats: load_exact(r)?,
            float_count: r.i64()?,
        })),
        NUMERIC => {
            let non_null = r.i64()?;
            let mantissa = Wide { low: r.u64()?, high: r.i64()? }.get();
            let sum = numeric::from_parts(mantissa, r.u32()?).map_err(|_| corrupt("a numeric sum is out of range"))?;
            let scales = (0..r.count()?).map(|_| Ok((r.u8()?, r.i64()?))).collect::<Result<Vec<_>, _>>()?;
            Accumulator::Numeric(Box::new(NumericSum { non_null, sum: Ok(sum), scales }))
        }
        INTERVAL => Accumulator::Interval(Box::new(IntervalSum {
            non_null: r.i64()?,
            months: r.i64()?,
            days: r.i64()?,
            micros: load_wide(r)?.get(),
        })),
        EXTREME => {
            let mut values = BTreeMap::new();
            for _ in 0..r.count()? {
                let row = r.row()?;
                if row.len() != 1 {
                    return Err(corrupt("a MIN/MAX value is not one column"));
                }
                let value: Datum<'_> = row.get(0);
                values.insert(Ordered(value.into_owned()), r.i64()?);
            }
            Accumulator::Extreme(values)
        }
        DISTINCT => Accumulator::Distinct(Box::new(r.changes()?.into_iter().collect())),
        JSON => {
            let mut elements = BTreeMap::new();
            for _ in 0..r.count()? {
                let sort: Box<[u8]> = r.bytes()?.into();
                let text: Box<str> = r.str()?.into();
                elements.insert((sort, text), r.i64()?);
            }
            Accumulator::Json(elements)
        }
        tag => return Err(corrupt(&format!("unknown accumulator tag {tag}"))),
    })
}
