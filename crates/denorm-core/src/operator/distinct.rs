//! SELECT DISTINCT: each row present once while its multiplicity is positive.
//!
//! Rows are told apart by SQL equality, not by their bytes: 1 and 1.0 (and
//! 0.0 and -0.0) are one row, counted under its key form
//! ([`RowPacker::push_key`](denorm_types::RowPacker::push_key)). The row
//! output for it is the one that made it present (SQLite outputs the first
//! in its scan order; for a table scan that is the order rows arrived in),
//! kept until the count drops to zero: if that row leaves while an equal
//! one of another type stays, the output keeps the first one's type.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use denorm_types::{Diff, Row, RowPacker, RowRef};

use crate::checkpoint::{CheckpointError, Reader, Writer};
use crate::{memory, Hasher};

#[derive(Debug, Default)]
pub(crate) struct Distinct {
    /// By key form: the multiplicity, and the row output for it when it is
    /// not the key form itself.
    counts: HashMap<Row, (Diff, Option<Row>), Hasher>,
    packer: RowPacker,
}

impl Distinct {
    /// `input` must be consolidated (each row once).
    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
        let mut out = Vec::new();
        for (row, diff) in input {
            let variant = RowRef::from(row).has_key_variants();
            let key = if variant {
                self.packer.extend_key_form(row.into());
                let key = self.packer.finish();
                (key != *row).then_some(key)
            } else {
                None
            };
            let (before, after, shown) = match self.counts.entry_ref(key.as_ref().unwrap_or(row)) {
                EntryRef::Occupied(mut o) => {
                    let (count, shown) = o.get_mut();
                    let before = *count;
                    *count += diff;
                    let (after, shown) = (*count, shown.clone());
                    if after == 0 {
                        o.remove();
                    }
                    (before, after, shown)
                }
                EntryRef::Vacant(v) => {
                    let shown = key.is_some().then(|| row.clone());
                    v.insert((*diff, shown.clone()));
                    (0, *diff, shown)
                }
            };
            let shown = || shown.clone().unwrap_or_else(|| key.clone().unwrap_or_else(|| row.clone()));
            match (before > 0, after > 0) {
                (false, true) => out.push((shown(), 1)),
                (true, false) => out.push((shown(), -1)),
                _ => {}
            }
        }
        out
    }
}

impl Distinct {
    /// Checkpoint: each key form with its count and the row shown for it.
    pub(crate) fn save(&self, w: &mut Writer) {
        w.count(self.counts.len());
        for (key, (count, shown)) in &self.counts {
            w.row(key);
            w.i64(*count);
            match shown {
                Some(row) => {
                    w.u8(1);
                    w.row(row);
                }
                None => w.u8(0),
            }
        }
    }

    /// Loads what [`Distinct::save`] wrote into an empty operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        let n = r.count()?;
        self.counts.reserve(n);
        for _ in 0..n {
            let key = r.row()?;
            let count = r.i64()?;
            let shown = if r.u8()? != 0 { Some(r.row()?) } else { None };
            self.counts.insert(key, (count, shown));
        }
        Ok(())
    }

    /// Live heap bytes: the table, each key form and each row shown for
    /// it (see [`crate::memory`]).
    pub(crate) fn state_bytes(&self) -> usize {
        let entries: usize =
            self.counts.iter().map(|(key, (_, shown))| memory::row(key) + shown.as_ref().map_or(0, memory::row)).sum();
        self.counts.allocation_size() + self.packer.allocated_bytes() + entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;

    /// Regression: DISTINCT told 1 from 1.0 and 0.0 from -0.0 (SQLite:
    /// equal), giving two rows where SQLite gives one.
    #[test]
    fn numerically_equal_rows_are_one() {
        let row = |d: Datum<'static>| Row::pack([d, Datum::text("a")]);
        let mut distinct = Distinct::default();
        let out = distinct.step(&[(row(Datum::Float(1.0)), 1), (row(Datum::Int(1)), 1)]);
        assert_eq!(out, vec![(row(Datum::Float(1.0)), 1)]);
        assert_eq!(distinct.step(&[(row(Datum::Int(1)), -1)]), vec![]);
        // The last one leaving retracts the row that was output.
        assert_eq!(distinct.step(&[(row(Datum::Float(1.0)), -1)]), vec![(row(Datum::Float(1.0)), -1)]);
        let out = distinct.step(&[(row(Datum::Float(-0.0)), 1), (row(Datum::Float(0.0)), 1), (row(Datum::Int(0)), 1)]);
        assert_eq!(out.len(), 1);
        let out = distinct.step(&[(row(Datum::Float(2.5)), 1), (row(Datum::Int(2)), 1)]);
        assert_eq!(out.len(), 2);
        assert!(distinct.counts.values().all(|(n, _)| *n > 0));
    }
}
