//! The flow's part of a checkpoint: its one shared dataflow and the
//! publishing slot of each of its views, then (file format 2) each view
//! refreshed on a schedule: its slot, its own dataflow (as of its last
//! refresh), the changes it gathered since, and the time left until its
//! next refresh. Flows with views added by a live reload (dataflows of
//! their own, rebuilt as one at the next session), failed views, or feed
//! views (the publisher's extra parts are not saved) are not saved.

use std::time::{Duration, Instant};

use denorm_core::checkpoint::{CheckpointError, Reader, Writer};
use denorm_types::Position;

use super::Flow;

impl Flow {
    /// Appends the flow's state to `w`.
    pub fn save_checkpoint(&self, w: &mut Writer) -> Result<(), CheckpointError> {
        let scheduled_parts = self.scheduled.iter().flat_map(|s| &s.parts);
        if self.slots.iter().chain(scheduled_parts).any(|&(_, part)| part != 0) {
            return Err(CheckpointError::Unsupported("feed views".into()));
        }
        if !self.added.is_empty() || !self.failed.is_empty() {
            return Err(CheckpointError::Unsupported("views added by a reload, or failed".into()));
        }
        w.count(self.slots.len());
        for &(slot, part) in &self.slots {
            w.u64(slot as u64);
            w.u64(part as u64);
        }
        self.main.save_checkpoint(w)?;
        let now = Instant::now();
        w.count(self.scheduled.len());
        for s in &self.scheduled {
            w.u64(s.slot as u64);
            s.dataflow.save_checkpoint(w)?;
            w.count(s.pending.len());
            for (table, changes) in &s.pending {
                w.str(table);
                w.count(changes.len());
                for (row, diff) in changes {
                    w.row(row);
                    w.i64(*diff);
                }
            }
            w.u64(s.due.saturating_duration_since(now).as_millis() as u64);
        }
        Ok(())
    }

    /// Loads what [`Flow::save_checkpoint`] wrote into a new flow (built
    /// from the same views, no batch applied); returns its position, which
    /// becomes the flow's. `scheduled`: the file holds the scheduled views'
    /// section (format 2; format 1 files were written only without them).
    pub fn load_checkpoint(&mut self, r: &mut Reader<'_>, scheduled: bool) -> Result<Position, CheckpointError> {
        if !scheduled && !self.scheduled.is_empty() {
            return Err(CheckpointError::Unsupported("views refreshed on a schedule (an older file)".into()));
        }
        let n = r.count()?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push((r.u64()? as usize, r.u64()? as usize));
        }
        if slots != self.slots {
            return Err(CheckpointError::Mismatch("the views are published in other slots".into()));
        }
        let position = self.main.load_checkpoint(r)?;
        if scheduled {
            self.load_scheduled(r)?;
        }
        self.position = position;
        Ok(position)
    }

    fn load_scheduled(&mut self, r: &mut Reader<'_>) -> Result<(), CheckpointError> {
        if r.count()? != self.scheduled.len() {
            return Err(CheckpointError::Mismatch("other views refreshed on a schedule".into()));
        }
        let now = Instant::now();
        for s in &mut self.scheduled {
            if r.u64()? != s.slot as u64 {
                return Err(CheckpointError::Mismatch("the scheduled views are published in other slots".into()));
            }
            s.dataflow.load_checkpoint(r)?;
            s.pending.clear();
            for _ in 0..r.count()? {
                let table = r.str()?.to_string();
                s.pending.insert(table, r.changes()?);
            }
            s.pending_changes = s.pending.values().map(Vec::len).sum();
            s.due = now + Duration::from_millis(r.u64()?).min(s.every);
        }
        Ok(())
    }

    /// The publishing slots of the flow's views (part 0: the view's rows),
    /// scheduled ones included.
    pub fn published_slots(&self) -> Vec<usize> {
        let scheduled = self.scheduled.iter().flat_map(|s| &s.parts);
        self.slots.iter().chain(scheduled).filter(|(_, part)| *part == 0).map(|(slot, _)| *slot).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use denorm_core::SourceBatch;
    use denorm_sql::{plan_views, ViewDef};
    use denorm_types::{consolidate, Catalog, ColumnSchema, Datum, Dialect, Diff, Row, ScalarType, TableSchema};

    use super::*;
    use crate::engine::flow::Step;

    fn catalog() -> Catalog {
        let col = |name: &str, ty| ColumnSchema { name: name.into(), ty, nullable: false };
        let mut catalog = Catalog::new();
        catalog.add(TableSchema {
            name: "sales".into(),
            columns: vec![col("id", ScalarType::Int), col("day", ScalarType::Text), col("amount", ScalarType::Int)],
            primary_key: vec![0],
            unique_keys: vec![],
        });
        catalog
    }

    fn flow(now: Instant) -> Flow {
        let sql = "CREATE MATERIALIZED VIEW live AS SELECT day, SUM(amount) AS total FROM sales GROUP BY day;
                   CREATE MATERIALIZED VIEW hourly WITH (refresh = '1h') AS
                   SELECT day, COUNT(*) AS n, MAX(amount) AS top FROM sales GROUP BY day;";
        let planned: Vec<Option<ViewDef>> =
            plan_views(sql, &catalog(), Dialect::Sqlite).unwrap().into_iter().map(Some).collect();
        Flow::new(catalog(), &planned, Dialect::Sqlite, now).unwrap()
    }

    fn batch(position: u64, changes: Vec<(i64, &str, i64, Diff)>) -> SourceBatch {
        let rows = changes
            .into_iter()
            .map(|(id, day, amount, d)| (Row::pack([Datum::Int(id), Datum::text(day), Datum::Int(amount)]), d))
            .collect();
        SourceBatch { position: Position(position), tables: vec![("sales".into(), rows)] }
    }

    fn by_slot(step: Option<Step>) -> BTreeMap<usize, Vec<(Row, Diff)>> {
        let mut out: BTreeMap<usize, Vec<(Row, Diff)>> = BTreeMap::new();
        for (slot, _, changes) in step.map(|s| s.views).unwrap_or_default() {
            out.entry(slot).or_default().extend(changes);
        }
        out.values_mut().for_each(consolidate);
        out
    }

    /// A scheduled view's dataflow and the changes it gathered since its
    /// last refresh are saved: a loaded flow gathers the next batch too,
    /// refreshes when due with exactly the original's changes, and keeps
    /// the time left to the refresh (never more than its period).
    #[test]
    fn scheduled_views_are_saved_with_their_gathered_changes() {
        let start = Instant::now();
        let mut original = flow(start);
        original.snapshot(&batch(1, vec![(1, "mon", 5, 1), (2, "tue", 7, 1)]));
        original.apply(&batch(2, vec![(3, "mon", 9, 1), (1, "mon", 5, -1)]));
        assert_eq!(original.published_slots(), vec![0, 1]);
        let mut w = Writer::default();
        original.save_checkpoint(&mut w).unwrap();
        let mut loaded = flow(start);
        let mut r = Reader::new(&w.buf);
        assert_eq!(loaded.load_checkpoint(&mut r, true).unwrap(), Position(2));
        assert!(r.at_end());
        let due = loaded.next_due().unwrap();
        assert!(due > Instant::now() + Duration::from_secs(3500) && due <= Instant::now() + Duration::from_secs(3600));
        let next = batch(3, vec![(4, "tue", 1, 1), (2, "tue", 7, -1)]);
        assert_eq!(by_slot(Some(loaded.apply(&next))), by_slot(Some(original.apply(&next))));
        let later = start + Duration::from_secs(7200);
        let (a, b) = (by_slot(original.refresh_due(later)), by_slot(loaded.refresh_due(later)));
        assert_eq!(a, b);
        assert_eq!(a.get(&1).map(Vec::len), Some(4), "{a:?}");
        // A format-1 file holds no scheduled views' section.
        assert!(matches!(
            flow(start).load_checkpoint(&mut Reader::new(&w.buf), false),
            Err(CheckpointError::Unsupported(_))
        ));
    }
}
