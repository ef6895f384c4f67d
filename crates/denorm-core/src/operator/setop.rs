//! The set operations' building blocks over Z-sets (`UNION`, `EXCEPT`,
//! `INTERSECT`, their `ALL` forms) and constant rows:
//!
//! ```text
//!  UNION ALL      Union [a, b]                     sum of multiplicities
//!  UNION          Distinct(Union [a, b])
//!  EXCEPT ALL     Threshold(Union [a, Negate b])   max(0, a − b)
//!  EXCEPT         Threshold(Union [Distinct a, Negate Distinct b])
//!  INTERSECT ALL  Union [a, Negate Threshold(Union [a, Negate b])]   min(a, b)
//! ```
//!
//! `Union` and `Negate` are linear and keep no state; `Threshold` keeps each
//! row's input multiplicity (like `Distinct`); `Values` emits its rows once.
//!
//! # Contract
//! Every `step` takes consolidated batches and returns consolidated changes.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use denorm_types::{consolidate_unordered, Diff, Row};

use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};
use crate::{memory, Hasher};

/// The sum of the inputs' changes.
pub(crate) fn union(inputs: &[&[(Row, Diff)]]) -> Vec<(Row, Diff)> {
    let mut out: Vec<(Row, Diff)> = inputs.iter().flat_map(|i| i.iter().cloned()).collect();
    if inputs.len() > 1 {
        consolidate_unordered(&mut out);
    }
    out
}

/// The input's changes with their signs flipped.
pub(crate) fn negate(input: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
    input.iter().map(|(row, diff)| (row.clone(), -diff)).collect()
}

/// Each row at multiplicity `max(0, m)`.
#[derive(Debug, Default)]
pub(crate) struct Threshold {
    /// Every row's input multiplicity, when not zero (it may be negative).
    counts: HashMap<Row, Diff, Hasher>,
}

impl Threshold {
    /// Checkpoint: every row's multiplicity.
    pub(crate) fn save(&self, w: &mut Writer) {
        write_changes(w, self.counts.len(), self.counts.iter().map(|(r, d)| (r, *d)));
    }

    /// Loads what [`Threshold::save`] wrote into an empty operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        self.counts = r.changes()?.into_iter().collect();
        Ok(())
    }

    /// Live heap bytes: the table and each row (see [`crate::memory`]).
    pub(crate) fn state_bytes(&self) -> usize {
        self.counts.allocation_size() + self.counts.keys().map(memory::row).sum::<usize>()
    }

    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
        let mut out = Vec::new();
        for (row, diff) in input {
            let (before, after) = match self.counts.entry_ref(row) {
                EntryRef::Occupied(mut o) => {
                    let before = *o.get();
                    let after = before + diff;
                    if after == 0 {
                        o.remove();
                    } else {
                        *o.get_mut() = after;
                    }
                    (before, after)
                }
                EntryRef::Vacant(v) => {
                    v.insert(*diff);
                    (0, *diff)
                }
            };
            let change = after.max(0) - before.max(0);
            if change != 0 {
                out.push((row.clone(), change));
            }
        }
        out
    }
}

/// Constant rows, emitted by the first batch.
#[derive(Debug)]
pub(crate) struct Values {
    rows: Vec<Row>,
    emitted: bool,
}

impl Values {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn new(rows: Vec<Row>) -> Self {
        Values { rows, emitted: false }
    }

    /// Whether the rows went out (checkpoints).
    pub(crate) fn emitted(&self) -> bool {
        self.emitted
    }

    pub(crate) fn step(&mut self) -> Vec<(Row, Diff)> {
        if std::mem::replace(&mut self.emitted, true) {
            return Vec::new();
        }
        let mut out: Vec<(Row, Diff)> = self.rows.iter().map(|r| (r.clone(), 1)).collect();
        consolidate_unordered(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;

    fn row(i: i64) -> Row {
        Row::pack([Datum::Int(i)])
    }

    #[test]
    fn threshold_emits_only_positive_multiplicity_changes() {
        let mut t = Threshold::default();
        type Changes = Vec<(Row, Diff)>;
        let cases: [(Changes, Changes); 4] = [
            (vec![(row(1), -2)], vec![]),
            (vec![(row(1), 3)], vec![(row(1), 1)]),
            (vec![(row(1), 2), (row(2), 1)], vec![(row(1), 2), (row(2), 1)]),
            (vec![(row(1), -4)], vec![(row(1), -3)]),
        ];
        for (input, expected) in cases {
            assert_eq!(t.step(&input), expected);
        }
    }

    #[test]
    fn union_sums_and_values_emit_once() {
        let a = [(row(1), 1), (row(2), 1)];
        let b = [(row(1), -1)];
        assert_eq!(union(&[&a, &b]), vec![(row(2), 1)]);
        assert_eq!(negate(&b), vec![(row(1), 1)]);
        let mut v = Values::new(vec![row(7), row(7)]);
        assert_eq!(v.step(), vec![(row(7), 2)]);
        assert!(v.step().is_empty());
    }
}
