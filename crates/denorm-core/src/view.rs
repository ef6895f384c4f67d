//! A view's current contents, indexed by its key.

use hashbrown::hash_map::{Entry, EntryRef};
use hashbrown::HashMap;

use denorm_expr::EvalError;
use denorm_types::{Diff, Row, RowPacker};

use crate::index::key_of;
use crate::Hasher;

/// A runtime failure that stops one view; the other views go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    #[error("key violation: two rows have key {key}")]
    KeyViolation { key: String },
    #[error("{0}")]
    Eval(#[from] EvalError),
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
    /// a conflict.
    pub(crate) fn apply(&mut self, changes: &[(Row, Diff)]) -> Result<(), ViewError> {
        let mut waiting: Vec<&(Row, Diff)> = Vec::new();
        for change in changes {
            let (row, diff) = change;
            let key = self.key_of(row);
            if *diff < 0 {
                if let EntryRef::Occupied(mut slot) = self.rows.entry_ref(&key) {
                    let (live, count) = slot.get_mut();
                    if live == row {
                        *count += diff;
                        if *count <= 0 {
                            slot.remove();
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
}
