//! A bounded top-k over a join's checkpoint: per partition its key, held
//! and total copies, and its held rows in order (as held: partition
//! columns NULL when shared), with their copies. The rows not held are in
//! the join's arrangements, which are saved with their own nodes. A load
//! checks that each partition is one the operator could have built (held
//! copies add up, at most k of them and no more than the partition has,
//! the rows in the operator's order) and interns the rows again, so equal
//! rows held by many partitions are stored once, as before the save.

use std::cmp::Ordering;
use std::collections::VecDeque;

use super::{compare, JoinTopK, Part};
use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};

impl JoinTopK {
    pub(crate) fn save(&self, w: &mut Writer) {
        w.count(self.partitions.len());
        for (key, part) in &self.partitions {
            w.row(key);
            w.i64(part.held);
            w.i64(part.total);
            write_changes(w, part.top.len(), part.top.iter().map(|(row, d)| (row, *d)));
        }
    }

    /// Loads what [`JoinTopK::save`] wrote into an empty operator.
    pub(crate) fn load(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        let corrupt = |what: &str| CheckpointError::Corrupt(format!("a join top-k partition {what}"));
        for _ in 0..r.count()? {
            let key = r.row()?;
            let (held, total) = (r.i64()?, r.i64()?);
            let rows = r.changes()?;
            if rows.iter().any(|(_, d)| *d <= 0) || rows.iter().map(|(_, d)| *d).sum::<i64>() != held {
                return Err(corrupt("whose held copies do not add up"));
            }
            if held > self.limit as i64 || held > total {
                return Err(corrupt("holding more than k or than it has"));
            }
            if rows.windows(2).any(|w| compare(&self.order, &w[0].0, &w[1].0) != Ordering::Less) {
                return Err(corrupt("whose rows are out of order"));
            }
            let top: VecDeque<_> = rows.into_iter().map(|(row, d)| (self.content.intern(row), d)).collect();
            if self.partitions.insert(key, Part { top, held, total }).is_some() {
                return Err(corrupt("saved twice"));
            }
        }
        Ok(())
    }
}
