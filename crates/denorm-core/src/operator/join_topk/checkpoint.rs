//! A bounded top-k over a join's checkpoint: per partition its key, held
//! and total copies, and its held rows in order (as held: partition
//! columns NULL when shared), each distinct row once with its copies. The rows not held are in
//! the join's arrangements, which are saved with their own nodes. A load
//! checks that each partition is one the operator could have built (held
//! copies add up, at most k of them and no more than the partition has,
//! the rows in the operator's order) and interns the rows again, so equal
//! rows held by many partitions are stored once, as before the save.

use std::cmp::Ordering;
use std::collections::VecDeque;

use denorm_types::Row;

use super::{compare, JoinTopK, Part};
use crate::checkpoint::{write_changes, CheckpointError, Reader, Writer};

impl JoinTopK {
    pub(crate) fn save(&self, w: &mut Writer) {
        w.count(self.partitions.len());
        for (key, part) in &self.partitions {
            w.row(key);
            w.i64(part.held());
            w.i64(part.total);
            let counted = counted(&part.top);
            write_changes(w, counted.len(), counted.into_iter());
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
            let mut top = VecDeque::with_capacity(held as usize);
            for (row, d) in rows {
                top.extend((0..d).map(|_| self.content.intern(row.clone())));
            }
            if self.partitions.insert(key, Part { top, total }).is_some() {
                return Err(corrupt("saved twice"));
            }
        }
        Ok(())
    }
}

/// Held rows with their copies: each run of equal adjacent rows once.
fn counted(top: &VecDeque<Row>) -> Vec<(&Row, i64)> {
    let mut out: Vec<(&Row, i64)> = Vec::new();
    for row in top {
        match out.last_mut() {
            Some((last, n)) if *last == row => *n += 1,
            _ => out.push((row, 1)),
        }
    }
    out
}
