//! A view's current contents, indexed by its key.

use hashbrown::hash_map::{Entry, EntryRef};
use hashbrown::HashMap;

use denorm_expr::EvalError;
use denorm_types::{Diff, Row, RowPacker};

use crate::index::key_of;
use crate::{memory, Hasher};

/// A runtime failure that stops one view; the other views go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("key violation: two rows have key {key}")]
    KeyViolation { key: String },
    #[error("{0}")]
    Eval(#[from] EvalError),
    /// Failed to bring the engine's state back under its memory budget.
    #[error(
        "memory budget exceeded: operator state is {state_bytes} bytes, over max_memory = {budget} bytes; this view \
         held the most ({view_bytes} bytes) and was stopped to free it"
    )]
    MemoryBudget { state_bytes: u64, budget: u64, view_bytes: u64 },
}

/// The rows of one view by key. A keyed view holds at most one live row per
/// key (a second one is a [`ViewError::KeyViolation`], never an overwrite);
/// a multiset view (keyed by all columns) holds rows with multiplicities.
#[derive(Debug)]
pub(crate) struct ViewState {
    key: Vec<usize>,
    multiset: bool,
    rows: HashMap<Row, (Row, Diff), Hasher>,
    packer: RowPacker,
}

impl ViewState {
    pub(crate) fn new(key: Vec<usize>, arity: usize) -> Self {
        let multiset = key.len() == arity && key.iter().enumerate().all(|(i, &k)| i == k);
        ViewState { key, multiset, rows: HashMap::default(), packer: RowPacker::new() }
    }

    /// Applies consolidated changes as if all retractions came first, so
    /// that a row moving within one batch (delete + insert under the same key)
    /// is no conflict. One pass does it: an insertion that finds its key
    /// taken waits until every retraction has been applied, and only then is
    /// a conflict. A retraction directly followed by an insertion under the
    /// same key (an updated row, as operators emit them) replaces the row in
    /// place with one lookup.
    pub(crate) fn apply(&mut self, changes: &[(Row, Diff)]) -> Result<(), ViewError> {
        let mut waiting: Vec<&(Row, Diff)> = Vec::new();
        let mut at = 0;
        while at < changes.len() {
            let change = &changes[at];
            at += 1;
            let (row, diff) = change;
            let key = self.key_of(row);
            if *diff < 0 {
                let ViewState { rows, packer, key: key_columns, multiset } = self;
                if let EntryRef::Occupied(mut slot) = rows.entry_ref(&key) {
                    let (live, count) = slot.get_mut();
                    if live == row {
                        *count += diff;
                        match changes.get(at) {
                            Some((next, 1))
                                if *count == 0 && !*multiset && key_of(key_columns, next, packer).0 == key =>
                            {
                                *live = next.clone();
                                *count = 1;
                                at += 1;
                            }
                            _ if *count <= 0 => {
                                slot.remove();
                            }
                            _ => {}
                        }
                    }
                }
                continue;
            }
            match self.rows.entry(key) {
                Entry::Vacant(slot) if self.multiset || *diff == 1 => {
                    slot.insert((row.clone(), *diff));
                }
                Entry::Occupied(mut slot) if self.multiset => slot.get_mut().1 += diff,
                Entry::Occupied(_) => waiting.push(change),
                Entry::Vacant(slot) => return Err(ViewError::KeyViolation { key: format!("{:?}", slot.key()) }),
            }
        }
        for (row, diff) in waiting {
            let key = self.key_of(row);
            match self.rows.entry(key) {
                Entry::Vacant(slot) if *diff == 1 => {
                    slot.insert((row.clone(), *diff));
                }
                slot => return Err(ViewError::KeyViolation { key: format!("{:?}", slot.key()) }),
            }
        }
        Ok(())
    }

    fn key_of(&mut self, row: &Row) -> Row {
        if self.multiset {
            row.clone()
        } else {
            key_of(&self.key, row, &mut self.packer).0
        }
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = (&Row, Diff)> {
        self.rows.values().map(|(r, d)| (r, *d))
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Live heap bytes: the table, each key and row (a multiset view's key
    /// is its row, one buffer counted once; see [`crate::memory`]).
    pub(crate) fn state_bytes(&self) -> usize {
        let entries: usize = if self.multiset {
            self.rows.values().map(|(row, _)| memory::row(row)).sum()
        } else {
            self.rows.iter().map(|(key, (row, _))| memory::row(key) + memory::row(row)).sum()
        };
        self.rows.allocation_size() + self.packer.allocated_bytes() + entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use denorm_types::Datum;

    fn row(k: i64, v: &str) -> Row {
        Row::pack([Datum::Int(k), Datum::text(v)])
    }

    #[test]
    fn an_update_replaces_in_place_and_a_second_insert_still_conflicts() {
        let mut view = ViewState::new(vec![0], 2);
        view.apply(&[(row(1, "a"), 1), (row(2, "b"), 1)]).unwrap();
        // Retraction then insertion under one key: replaced in place.
        view.apply(&[(row(1, "a"), -1), (row(1, "c"), 1)]).unwrap();
        let mut rows: Vec<_> = view.rows().map(|(r, d)| (r.clone(), d)).collect();
        rows.sort();
        assert_eq!(rows, vec![(row(1, "c"), 1), (row(2, "b"), 1)]);
        // An insertion before the retraction that frees its key waits for it.
        view.apply(&[(row(2, "d"), 1), (row(2, "b"), -1)]).unwrap();
        assert_eq!(view.len(), 2);
        // Two rows end up under key 1, whatever the order: a violation.
        let err = view.apply(&[(row(1, "e"), 1), (row(1, "c"), -1), (row(1, "f"), 1)]).unwrap_err();
        assert!(matches!(err, ViewError::KeyViolation { .. }));
    }
}
