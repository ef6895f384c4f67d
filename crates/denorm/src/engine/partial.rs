//! A session start whose captured tables changed (a table dropped, added,
//! or dropped and recreated): only the changed tables are read from the
//! source; the others resume from the state directory.
//!
//! ```text
//!  StateDir::open → Opened::Reshape(kept rows at P)       kept: tables whose shape line is unchanged
//!  ChangeSource::follow_reading(P, fresh) → Resync        SQLite: one read transaction at L:
//!      fresh tables (+ any whose capture was reinstalled)   their rows at L
//!      the other tables' logged changes in (P, L]
//!                                                         PostgreSQL: fresh tables read in a
//!                                                         snapshot exported at C by a temporary
//!                                                         slot; the kept slot followed from P to
//!                                                         L ≥ C, fresh tables' changes up to C
//!                                                         dropped (denorm-source capture/partial.rs)
//!  StateDir::reshape (drop void tables, write the rows read) + apply (P, L] at L
//!  load every view from the state directory at L           the other tables are not read
//! ```
//!
//! Invariant: the load is every captured table at one position L (the kept
//! rows with their changes up to L, and the rows read with their later
//! changes), exactly what a snapshot at L would give, and the stream
//! continues after L. Where the source cannot do this (SQLite: the change
//! log was recreated or lost rows above P; PostgreSQL: the slot is gone, no
//! slot is free for the temporary one, or a kept table was truncated while
//! denorm was down) the start falls back to a full snapshot.

use std::time::Instant;

use denorm_source::ChangeSource;
use denorm_sql::ViewDef;
use denorm_types::{Diff, Row};
use tracing::{info, warn};

use super::flow::Flow;
use super::{dead, stored_batch, Engine, EngineError};
use crate::state_dir::{StateDir, Stored};

/// The tables of `shape` whose line (name, columns, key, captured columns)
/// is the same in `stored`: their stored rows are still valid.
pub(crate) fn unchanged_tables<'a>(stored: &str, shape: &'a str) -> Vec<&'a str> {
    shape
        .lines()
        .filter(|line| stored.lines().any(|s| s == *line))
        .filter_map(|line| line.split('\t').next())
        .filter(|name| !name.is_empty())
        .collect()
}

impl Engine {
    /// Resumes from `stored` (the unchanged tables' rows) and reads only
    /// the other captured tables (see the module documentation). `Ok(Err)`
    /// hands the state back when the source cannot: then snapshot.
    pub(super) fn resume_reshaped(
        &mut self,
        capture: &mut dyn ChangeSource,
        flow: &mut Flow,
        planned: &[Option<ViewDef>],
        mut state: StateDir,
        stored: Stored,
        shape: &str,
    ) -> Result<Result<StateDir, StateDir>, EngineError> {
        let started = Instant::now();
        let all: Vec<String> =
            shape.lines().filter_map(|l| l.split('\t').next()).filter(|n| !n.is_empty()).map(String::from).collect();
        let kept: Vec<String> = stored.tables.iter().map(|(t, _)| t.clone()).collect();
        let fresh: Vec<String> = all.iter().filter(|t| !kept.contains(t)).cloned().collect();
        let resync = match capture.follow_reading(stored.position, &fresh)? {
            Ok(resync) => resync,
            Err(reason) => {
                warn!(%reason, "cannot read only the changed tables; taking a snapshot of the source");
                return Ok(Err(state));
            }
        };
        let read: Vec<String> = resync.tables.iter().map(|(t, _)| t.clone()).collect();
        let still: Vec<String> = kept.into_iter().filter(|t| !read.contains(t)).collect();
        state.reshape(shape, &still, stored.position, &resync.tables)?;
        let mut changes = resync.changes;
        state.apply(resync.position, &[], &changes.tables)?;
        let touched: Vec<String> =
            changes.tables.iter().filter(|(_, rows)| !rows.is_empty()).map(|(t, _)| t.clone()).collect();
        dead::absent(&self.publisher, &mut state, &mut changes)?;
        dead::undecodable(&self.publisher, Some(&mut state), &changes)?;
        let loaded = loaded_rows(&state, &all, stored.tables, &still, &touched)?;
        let rows = loaded.rows();
        self.load(capture, flow, planned, &stored_batch(loaded), started, "state loaded and published");
        state.make_durable()?;
        let rows_read: usize = resync.tables.iter().map(|(_, rows)| rows.len()).sum();
        info!(
            read = ?read,
            rows_read,
            kept = ?still,
            rows,
            changes = changes.tables.iter().map(|(_, c)| c.len()).sum::<usize>(),
            at = %capture.describe(resync.position),
            seconds = started.elapsed().as_secs_f64(),
            "the captured tables changed: re-read only the changed tables, the others resumed from the state directory"
        );
        Ok(Ok(state))
    }
}

/// Every captured table's rows at the directory's position: the kept
/// tables no change `touched` are the rows `open` read and checked already
/// (`stored`: read once, not twice); the others are read from the
/// directory. In `all`'s order.
fn loaded_rows(
    state: &StateDir,
    all: &[String],
    stored: Vec<(String, Vec<(Row, Diff)>)>,
    still: &[String],
    touched: &[String],
) -> Result<Stored, EngineError> {
    let untouched = |t: &String| still.contains(t) && !touched.contains(t);
    let read: Vec<String> = all.iter().filter(|t| !untouched(t)).cloned().collect();
    let mut loaded = state.rows_of(&read)?;
    loaded.tables.extend(stored.into_iter().filter(|(t, _)| untouched(t) && all.contains(t)));
    loaded.tables.sort_by_key(|(t, _)| all.iter().position(|a| a == t));
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only tables whose whole line is unchanged are kept.
    #[test]
    fn unchanged_lines_name_the_kept_tables() {
        let stored = "tags\tid int, tag text\tkey [0]\tcaptured tag\nother\tid int\tkey [0]\tcaptured *";
        let shape = "other\tid int\tkey [0]\tcaptured *\ntags\tid int, tag int\tkey [0]\tcaptured tag\nnew\tx int\tkey []\tcaptured x";
        assert_eq!(unchanged_tables(stored, shape), vec!["other"]);
        assert_eq!(unchanged_tables(shape, shape), vec!["other", "tags", "new"]);
        assert!(unchanged_tables("", shape).is_empty());
    }
}
