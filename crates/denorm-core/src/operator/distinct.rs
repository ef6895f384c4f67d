//! SELECT DISTINCT: each row present once while its multiplicity is positive.

use hashbrown::hash_map::EntryRef;
use hashbrown::HashMap;

use denorm_types::{Diff, Row};

use crate::Hasher;

#[derive(Debug, Default)]
pub(crate) struct Distinct {
    counts: HashMap<Row, Diff, Hasher>,
}

impl Distinct {
    /// `input` must be consolidated (each row once).
    pub(crate) fn step(&mut self, input: &[(Row, Diff)]) -> Vec<(Row, Diff)> {
        let mut out = Vec::new();
        for (row, diff) in input {
            let (before, after) = match self.counts.entry_ref(row) {
                EntryRef::Occupied(mut o) => {
                    let before = *o.get();
                    *o.get_mut() += diff;
                    let after = *o.get();
                    if after == 0 {
                        o.remove();
                    }
                    (before, after)
                }
                EntryRef::Vacant(v) => {
                    v.insert(*diff);
                    (0, *diff)
                }
            };
            match (before > 0, after > 0) {
                (false, true) => out.push((row.clone(), 1)),
                (true, false) => out.push((row.clone(), -1)),
                _ => {}
            }
        }
        out
    }
}
